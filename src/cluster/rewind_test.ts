/**
 * A Redis that comes back rewound with its `epoch` key intact (docs/spec/SERVER.md §8.3 "Epoch",
 * §8.5.5), over the in-memory twins: the store's `runId` changed (a restart from an old dump, a
 * failover to a replica that missed writes) and a room's keys gone, its home not reconnected yet.
 * Codes the directory does not know answer `SERVICE_UNAVAILABLE` until `T` after each node's
 * re-registration; a re-registration refused with `-LOADING` is retried every `heartbeat_ms`;
 * a Redis that refuses `INFO` leaves the node as before.
 */
import { equal, ok } from "node:assert/strict";
import {
  join,
  joined,
  type TestClient,
  testCluster,
  type TestNode,
  threeNodes,
  until,
} from "./testing.ts";
import type { MemoryStore } from "./memory_store.ts";

const answered = (client: TestClient) => client.last("RoomJoined") ?? client.last("RoomJoinFailed");

/** `client` joins room `code` through `node`; resolves with its answer. */
async function answer(node: TestNode, name: string, code: string) {
  const client = node.connect();
  join(client, name, code);
  await until(() => answered(client) !== undefined, `${name}'s answer`);
  return answered(client)!;
}

/** Redis comes back rewound: the room's keys gone (the epoch kept), a new run_id. */
function rewind(store: MemoryStore, code: string, roomId: string): void {
  store.expire((key) => key.includes(code) || key.includes(roomId));
  store.runId = crypto.randomUUID().replaceAll("-", "");
}

/** `node`'s Redis link drops and comes back. */
function reconnect(node: TestNode): void {
  node.cluster.linkState("down");
  node.cluster.linkState("up");
}

Deno.test("Cluster (twins): Redis back from an old dump (run_id changed, epoch kept) → a join of a live code the directory lost answers SERVICE_UNAVAILABLE until its home re-registered, then joins that room", async () => {
  const cluster = await testCluster();
  try {
    const [home, edge, other] = threeNodes(cluster);
    const alice = await joined(home, "Alice", "REWD01", 8);
    await joined(edge, "Bob", "REWD01", 8);
    const roomId = alice.last("RoomJoined")!.data!.room_id as string;
    const epochs = other.cluster.epochChanges;
    rewind(cluster.store, "REWD01", roomId);
    // The other instances reconnect first; the home has not yet.
    reconnect(edge);
    reconnect(other);
    const early = await answer(other, "Carol", "REWD01");
    equal(early.data?.error_code, "SERVICE_UNAVAILABLE", JSON.stringify(early));
    ok(other.cluster.inGrace(Date.now()), "grace window after the run_id changed");
    equal(other.cluster.epochChanges, epochs, "not an epoch change");
    // The home reconnects and re-registers: the join reaches the room.
    reconnect(home);
    await until(
      () => cluster.store.keys().some((key) => key.startsWith("room:") && key.includes("REWD01")),
      "the home re-registered",
    );
    const late = await answer(other, "Dave", "REWD01");
    equal(late.type, "RoomJoined", JSON.stringify(late));
    equal(late.data?.room_id, roomId, "the live room, not a second one");
    // Codes the directory does not know still answer SERVICE_UNAVAILABLE (T = 30 s here)...
    const unknown = await answer(other, "Erin", "NONE01");
    equal(unknown.data?.error_code, "SERVICE_UNAVAILABLE");
    // ...while generated codes are still claimed.
    const fresh = other.connect();
    join(fresh, "Fay");
    await until(() => answered(fresh) !== undefined, "Fay's answer");
    ok(fresh.last("RoomJoined"), JSON.stringify(fresh.messages));
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): the grace window after a run_id change ends T after the node's re-registration; an unchanged run_id opens none", async () => {
  const ttlMs = 600;
  const cluster = await testCluster({ nodes: 1, ttlMs, heartbeatMs: 50 });
  try {
    const [node] = cluster.nodes as [TestNode];
    // A reconnect to the same Redis: no grace window once its identity is read.
    reconnect(node);
    await until(() => !node.cluster.inGrace(Date.now()), "identity read again");
    cluster.store.runId = "another";
    reconnect(node);
    const changed = Date.now();
    await node.cluster.refresh();
    ok(node.cluster.inGrace(Date.now()), "in grace after the change");
    equal((await answer(node, "Erin", "NONE01")).data?.error_code, "SERVICE_UNAVAILABLE");
    await until(() => !node.cluster.inGrace(Date.now()), "grace over");
    ok(Date.now() - changed >= ttlMs - 10, `grace lasted ${Date.now() - changed} ms`);
    equal((await answer(node, "Gus", "NONE02")).type, "RoomJoined");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a re-registration refused with LOADING after a run_id change is retried every heartbeat_ms, not at the next T/3 refresh", async () => {
  const cluster = await testCluster({ nodes: 1, ttlMs: 30_000, heartbeatMs: 50 });
  try {
    const [node] = cluster.nodes as [TestNode];
    const alice = await joined(node, "Alice", "LOAD01");
    const roomId = alice.last("RoomJoined")!.data!.room_id as string;
    rewind(cluster.store, "LOAD01", roomId);
    cluster.store.loading = true;
    reconnect(node);
    await until(() => node.cluster.inGrace(Date.now()), "the run_id change seen");
    await new Promise((resolve) => setTimeout(resolve, 150));
    cluster.store.loading = false;
    const loaded = Date.now();
    await until(
      () => cluster.store.keys().some((key) => key.startsWith("room:") && key.includes("LOAD01")),
      "re-registered after the load",
    );
    ok(Date.now() - loaded < 1_000, `re-registered ${Date.now() - loaded} ms after the load`);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a Redis that refuses INFO (no run_id) → no grace window after a reconnect, as before", async () => {
  const cluster = await testCluster({ nodes: 1, heartbeatMs: 50 });
  try {
    const [node] = cluster.nodes as [TestNode];
    cluster.store.runId = undefined;
    reconnect(node);
    await until(() => !node.cluster.inGrace(Date.now()), "identity read (none)");
    equal((await answer(node, "Gus", "NONE03")).type, "RoomJoined");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a Sentinel failover the link's state never showed (primaryChanged) → unknown codes answer SERVICE_UNAVAILABLE at once, the new run_id is read at once, the home re-registers; no reconnect counted, no verdict for T, health kept", async () => {
  const ttlMs = 400;
  const cluster = await testCluster({ nodes: 1, ttlMs, heartbeatMs: 50 });
  try {
    const [node] = cluster.nodes as [TestNode];
    const alice = await joined(node, "Alice", "FAIL01");
    const roomId = alice.last("RoomJoined")!.data!.room_id as string;
    await new Promise((resolve) => setTimeout(resolve, ttlMs + 50));
    equal(await node.cluster.isDead("ghost@00000001"), true, "verdicts before the failover");
    const reconnects = node.cluster.redisReconnects;
    // The new primary missed the room's writes and has another run_id.
    rewind(cluster.store, "FAIL01", roomId);
    node.cluster.primaryChanged();
    ok(node.cluster.inGrace(Date.now()), "identity unknown until read");
    await until(
      () => cluster.store.keys().some((key) => key.startsWith("room:") && key.includes("FAIL01")),
      "the home re-registered",
    );
    ok(node.cluster.inGrace(Date.now()), "grace after the run_id changed");
    equal((await answer(node, "Erin", "NONE01")).data?.error_code, "SERVICE_UNAVAILABLE");
    equal(node.cluster.redisReconnects, reconnects, "not a reconnect");
    ok(node.cluster.healthy, "health kept");
    equal(
      await node.cluster.isDead("ghost@00000002"),
      false,
      "no verdict within T of the failover",
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a Redis that refuses INFO, failed over (primaryChanged) → no grace window, but no verdict for T", async () => {
  const ttlMs = 400;
  const cluster = await testCluster({ nodes: 1, ttlMs, heartbeatMs: 50 });
  try {
    const [node] = cluster.nodes as [TestNode];
    cluster.store.runId = undefined;
    await node.cluster.refresh();
    await new Promise((resolve) => setTimeout(resolve, ttlMs + 50));
    equal(await node.cluster.isDead("ghost@00000001"), true, "verdicts before the failover");
    node.cluster.primaryChanged();
    equal(await node.cluster.isDead("ghost@00000002"), false, "liveness keys may be rewound");
    await until(() => !node.cluster.inGrace(Date.now()), "identity read (none)");
    equal((await answer(node, "Gus", "NONE03")).type, "RoomJoined");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): an identity read begun before the link dropped, answered after it, does not count: unknown codes answer SERVICE_UNAVAILABLE until the new Redis's run_id is read", async () => {
  const cluster = await testCluster({ nodes: 1, heartbeatMs: 50 });
  try {
    const [node] = cluster.nodes as [TestNode];
    const store = cluster.store;
    // Every identity read answers for the Redis there when it was asked, once released.
    const pending: (() => void)[] = [];
    store.identity = () => {
      const runId = store.runId;
      return new Promise((resolve) => pending.push(() => resolve(runId)));
    };
    const stale = node.cluster.refresh();
    await until(() => pending.length === 1, "the first read asked");
    // Meanwhile the link moves to another Redis (a failover) with another run_id.
    store.runId = "another";
    node.cluster.linkState("down");
    node.cluster.linkState("up");
    await until(() => pending.length === 2, "the read after the reconnect asked");
    pending[0]!();
    await stale;
    ok(node.cluster.inGrace(Date.now()), "the old Redis's run_id, read before the drop, counted");
    equal((await answer(node, "Erin", "NONE01")).data?.error_code, "SERVICE_UNAVAILABLE");
    // The read after the reconnect finds the change: re-registration and grace for T.
    store.identity = () => Promise.resolve(store.runId);
    pending[1]!();
    await node.cluster.refresh();
    ok(node.cluster.inGrace(Date.now()), "grace after the run_id changed");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a Redis that refuses INFO, restarted empty → after a reconnect, codes the directory does not know answer SERVICE_UNAVAILABLE until the epoch is read again, not only until INFO answered", async () => {
  const cluster = await testCluster();
  try {
    const [home, , other] = threeNodes(cluster);
    const store = cluster.store;
    store.runId = undefined;
    await Promise.all(cluster.nodes.map((node) => node.cluster.refresh()));
    const alice = await joined(home, "Alice", "EPOC01", 8);
    const roomId = alice.last("RoomJoined")!.data!.room_id as string;
    // Every epoch read waits until the test lets it answer.
    const pending: (() => void)[] = [];
    const read = store.epoch.bind(store);
    store.epoch = () => new Promise((resolve) => pending.push(() => resolve(read())));
    // Redis restarts empty (the epoch key lost too); `other` reconnects first.
    store.flush();
    reconnect(other);
    await until(() => pending.length > 0, "the epoch read after the reconnect asked");
    const early = await answer(other, "Carol", "EPOC01");
    equal(early.data?.error_code, "SERVICE_UNAVAILABLE", JSON.stringify(early));
    // The read answers: a new epoch, whose grace window holds until the home re-registered.
    store.epoch = read;
    for (const release of pending.splice(0)) release();
    await until(() => other.cluster.epochChanges > 0, "the new epoch seen");
    equal((await answer(other, "Dave", "EPOC01")).data?.error_code, "SERVICE_UNAVAILABLE");
    await home.cluster.refresh();
    const late = await answer(other, "Erin", "EPOC01");
    equal(late.data?.room_id, roomId, `the live room, not a second one: ${JSON.stringify(late)}`);
  } finally {
    await cluster.close();
  }
});
