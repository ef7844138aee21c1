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
