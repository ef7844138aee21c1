/**
 * Redis not answering, in one process (docs/spec/SERVER.md §8.5.4, §8.5.5 "Redis unreachable"): three
 * nodes over the in-memory twins with the store made unreachable. Requests that need Redis answer
 * `SERVICE_UNAVAILABLE` without waiting twice, rooms keep working for local members, `/v2/health`
 * (the node's `healthy`) is false until Redis answers again, and no death verdict is given until
 * Redis has answered without interruption for `T`.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { adminRoutes } from "../http/admin.ts";
import { type FeedEvent, OperatorFeed } from "../metrics/operator_feed.ts";
import {
  join,
  settle,
  type TestClient,
  testCluster,
  type TestNode,
  threeNodes,
  until,
} from "./testing.ts";

const answered = (client: TestClient) =>
  client.last("RoomJoined") ?? client.last("RoomJoinFailed") ?? client.last("SpectatorJoinFailed");

Deno.test("Cluster (twins): Redis unreachable → remote joins and creations SERVICE_UNAVAILABLE after one failed call, local members play on, health false until Redis answers", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
    const alice = a.connect();
    join(alice, "Alice", "DOWN01");
    await until(() => alice.last("RoomJoined") !== undefined, "RoomJoined");
    ok(a.cluster.healthy && b.cluster.healthy);
    cluster.store.unreachable = true;
    // A join by code through B: the bucket take fails (local bucket), then no second wait.
    const calls = cluster.store.calls;
    const bob = b.connect();
    join(bob, "Bob", "DOWN01");
    await until(() => answered(bob) !== undefined, "Bob's answer");
    equal(bob.last("RoomJoinFailed")?.data?.error_code, "SERVICE_UNAVAILABLE");
    equal(cluster.store.calls - calls, 1, "only the bucket take reached the store");
    equal(b.cluster.healthy, false, "health 503 while Redis does not answer");
    // A creation (generated code) needs the claim: SERVICE_UNAVAILABLE too.
    const erin = b.connect();
    join(erin, "Erin");
    await until(() => answered(erin) !== undefined, "Erin's answer");
    equal(erin.last("RoomJoinFailed")?.data?.error_code, "SERVICE_UNAVAILABLE");
    // A spectator of a remote room: the same.
    const sam = b.connect();
    sam.say({
      type: "JoinAsSpectator",
      data: { game_name: "orbit", room_code: "DOWN01", spectator_name: "Sam" },
    });
    await until(() => answered(sam) !== undefined, "Sam's answer");
    equal(sam.last("SpectatorJoinFailed")?.data?.error_code, "SERVICE_UNAVAILABLE");
    // The room's home serves its local members: a join by code (local first) and relay.
    const dave = a.connect();
    join(dave, "Dave", "DOWN01");
    await until(() => answered(dave) !== undefined, "Dave's answer");
    ok(dave.last("RoomJoined"), JSON.stringify(dave.messages));
    alice.say({ type: "GameData", data: { data: "still here" } });
    await until(() => dave.last("GameData") !== undefined, "relay on the home");
    // Redis answers again: the next call (here the T/3 refresh) restores health.
    cluster.store.unreachable = false;
    await b.cluster.refresh();
    equal(b.cluster.healthy, true);
    const bob2 = b.connect();
    join(bob2, "Bob", "DOWN01");
    await until(() => answered(bob2) !== undefined, "Bob's second answer");
    ok(bob2.last("RoomJoined"), JSON.stringify(bob2.messages));
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): no death verdict until Redis has answered for T again; each dead node counted once", async () => {
  const ttlMs = 300;
  const cluster = await testCluster({ nodes: 1, ttlMs, heartbeatMs: 100 });
  try {
    const node = cluster.nodes[0]!.cluster;
    const ghost = "ghost@00000000";
    await new Promise((resolve) => setTimeout(resolve, ttlMs + 50));
    // Up for more than T, no liveness key, nothing heard: dead.
    equal(await node.isDead(ghost), true);
    equal(node.peerDeaths, 1);
    equal(await node.isDead(ghost), true);
    equal(node.peerDeaths, 1, "counted once per node");
    // Redis stops answering, then answers again: the guard restarts.
    cluster.store.unreachable = true;
    await node.refresh();
    equal(node.healthy, false);
    cluster.store.unreachable = false;
    await node.refresh();
    equal(node.healthy, true);
    equal(await node.isDead("ghost@00000001"), false, "Redis answered for less than T");
    await new Promise((resolve) => setTimeout(resolve, ttlMs + 50));
    equal(await node.isDead("ghost@00000001"), true);
    equal(node.peerDeaths, 2);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): an epoch change found between the two reads of a death verdict gives no verdict (docs/spec/SERVER.md §8.5.4 guard 2)", async () => {
  const ttlMs = 300;
  const cluster = await testCluster({ nodes: 1, ttlMs, heartbeatMs: 100 });
  try {
    const node = cluster.nodes[0]!.cluster;
    await new Promise((resolve) => setTimeout(resolve, ttlMs + 50));
    // Guards 1 and 2 hold when the verdict starts; its first read finds no liveness key.
    const verdict = node.isDead("ghost@00000000");
    await settle(2);
    // Within the heartbeat between the two reads Redis loses its epoch key (the links stay up)
    // and the refresh reads the new one: the liveness keys may have gone with it.
    cluster.store.expire((key) => key === "epoch");
    await node.refresh();
    equal(node.epochChanges, 1, "the refresh saw the epoch change");
    equal(await verdict, false, "no death verdict across an epoch change");
    equal(node.peerDeaths, 0);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a Redis link that comes back counts a reconnect and re-registers at once", async () => {
  const cluster = await testCluster({ nodes: 1 });
  try {
    const node = cluster.nodes[0]!.cluster;
    equal(node.redisReconnects, 0);
    node.linkState("down");
    equal(node.healthy, false);
    cluster.store.flush(); // e.g. a Redis restarted empty
    node.linkState("up");
    node.linkState("up");
    equal(node.redisReconnects, 1);
    await until(
      () => cluster.store.keys().some((key) => key.startsWith("instance:")),
      "re-registered",
    );
    equal(node.healthy, true);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a subscriber cut off for a while → only the pairs that lost envelopes resync; lost heartbeats resync nothing", async () => {
  // Heartbeat 200 ms: a cut of 300 ms holds at least one heartbeat from C and stays under the
  // 600 ms of silence that makes a peer suspect.
  const cluster = await testCluster({ heartbeatMs: 200 });
  try {
    const [a, b, c] = threeNodes(cluster);
    const alice = a.connect();
    join(alice, "Alice", "CUT001");
    const carol = c.connect();
    join(carol, "Carol", "CUT002");
    await until(() => !!alice.last("RoomJoined") && !!carol.last("RoomJoined"), "rooms");
    const bob = b.connect();
    join(bob, "Bob", "CUT001");
    const dave = b.connect();
    join(dave, "Dave", "CUT002");
    await until(() => !!bob.last("RoomJoined") && !!dave.last("RoomJoined"), "joins");
    await new Promise((resolve) => setTimeout(resolve, 450)); // heartbeats running
    // B's subscription is gone: every publish to B reaches no subscriber.
    let fromC = 0;
    cluster.network.fault = (from, to) => {
      if (to !== b.name) return "deliver";
      if (from === c.name) fromC++;
      return "fail";
    };
    alice.say({ type: "GameData", data: { data: "lost" } });
    // C heartbeats B meanwhile (it sends B nothing else).
    await new Promise((resolve) => setTimeout(resolve, 300));
    cluster.network.fault = undefined;
    alice.say({ type: "GameData", data: { data: "after" } });
    carol.say({ type: "GameData", data: { data: "C after" } });
    await until(() => bob.closed !== undefined, "Bob's resync close");
    equal(bob.closed, 1012);
    await until(() => dave.last("GameData") !== undefined, "Carol's data reaches Dave");
    equal(dave.last("GameData")?.data?.data, "C after");
    ok(fromC >= 1, "a heartbeat from C was lost");
    equal(dave.closed, undefined, "the C–B pair lost only heartbeats: no resync");
    equal(carol.closed, undefined);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): while Redis does not answer the node probes every heartbeat, so health returns without traffic", async () => {
  // T = 30 s: the T/3 refresh would take 10 s; the probe (heartbeat 50 ms) is what brings it back.
  const cluster = await testCluster({ nodes: 1, heartbeatMs: 50 });
  try {
    const node = cluster.nodes[0]!.cluster;
    cluster.store.unreachable = true;
    await node.refresh();
    equal(node.healthy, false);
    cluster.store.unreachable = false;
    await until(() => node.healthy, "healthy again without any request");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a publish Redis does not answer times out after forward_timeout_ms → that pair resyncs, nothing more is sent until Redis answers, counted", async () => {
  // Heartbeats every 10 s: no peer turns suspect during the test, so only the timeout can resync.
  const cluster = await testCluster({ nodes: 2, forwardTimeoutMs: 200, heartbeatMs: 10_000 });
  try {
    const [a, b] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
    const alice = a.connect();
    join(alice, "Alice", "STALL1");
    await until(() => alice.last("RoomJoined") !== undefined, "Alice's RoomJoined");
    const bob = b.connect();
    join(bob, "Bob", "STALL1");
    await until(() => bob.last("RoomJoined") !== undefined, "Bob's RoomJoined");
    // Redis stalls on B's next publish to A for 600 ms (paused), then answers it.
    let stalled = 0;
    let sentToA = 0;
    cluster.network.fault = (from, to) => {
      if (from !== b.name || to !== a.name) return "deliver";
      sentToA++;
      return stalled++ === 0 ? { stallMs: 600 } : "deliver";
    };
    const unanswered = b.cluster.publishesUnanswered;
    bob.say({ type: "GameData", data: { data: "into the void" } });
    await until(() => bob.closed !== undefined, "Bob's resync close");
    equal(bob.closed, 1012, "the pair resyncs once the publish has no answer in time");
    ok(b.cluster.publishesUnanswered > unanswered, "counted");
    // While that publish is unanswered B sends A nothing: a request for A fails at once.
    const carol = b.connect();
    join(carol, "Carol", "STALL1");
    await until(() => answered(carol) !== undefined, "Carol's answer");
    equal(carol.last("RoomJoinFailed")?.data?.error_code, "SERVICE_UNAVAILABLE");
    equal(sentToA, 1, "nothing published behind the unanswered publish");
    // Redis answers (the stalled envelope arrives late): B publishes again. Its first envelope
    // shows A the gap left by the envelopes not sent, so A drops it and resyncs (§8.5.1): that
    // request fails; the stream goes on from there.
    await new Promise((resolve) => setTimeout(resolve, 600));
    const dave = b.connect();
    join(dave, "Dave", "STALL1");
    await until(() => answered(dave) !== undefined, "Dave's answer");
    equal(sentToA, 2, "published again once Redis answered");
    equal(dave.last("RoomJoinFailed")?.data?.error_code, "SERVICE_UNAVAILABLE");
    const erin = b.connect();
    join(erin, "Erin", "STALL1");
    await until(() => answered(erin) !== undefined, "Erin's answer");
    ok(erin.last("RoomJoined"), JSON.stringify(erin.messages));
    equal(alice.closed, undefined, "the home's local member is untouched");
  } finally {
    await cluster.close();
  }
});

/**
 * The operator API of `node` as server.ts wires it in cluster mode (token `TOKEN`); the events
 * its feed publishes go to `seen`.
 */
function operatorApi(node: TestNode, seen: FeedEvent[] = []) {
  const feed = new OperatorFeed({
    connections: () => node.edge.size,
    stats: () => ({ ...node.engine.stats(), heldSeats: 0 }),
    maintenance: () => node.cluster.maintenance,
  });
  feed.subscribe((event) => seen.push(event));
  const routes = adminRoutes({
    token: TOKEN,
    directory: node.edge.directory,
    command: (command, now) => node.edge.command({ kind: "room", command }, now)!,
    setMaintenance: (enabled) => node.cluster.setMaintenance(enabled),
    maintenance: () => node.cluster.readMaintenance(),
    feed,
    status: () => ({}),
    roomCodeLength: 6,
    maxGameNameLength: 64,
  });
  return async (method: string, path: string) => {
    const response = await routes.handle(
      new Request(`http://127.0.0.1${path}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}` },
      }),
      path,
      "127.0.0.1",
    )!;
    return { status: response.status, body: await response.json() };
  };
}

const TOKEN = "operator-token-for-tests-0123456789abcdef";

Deno.test("Cluster (twins): while Redis does not answer, the operator API answers 503 SERVICE_UNAVAILABLE for room commands, listings and counts (not 500), and works again once it answers (docs/spec/SERVER.md §8.5.5)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = cluster.nodes as [TestNode, TestNode];
    const alice = a.connect();
    join(alice, "Alice", "OPER01");
    await until(() => alice.last("RoomJoined") !== undefined, "Alice's room");
    const api = operatorApi(b);
    cluster.store.unreachable = true;
    for (
      const [method, path] of [
        ["GET", "/admin/api/rooms/orbit/OPER01"],
        ["DELETE", "/admin/api/rooms/orbit/OPER01"],
        ["DELETE", `/admin/api/rooms/orbit/OPER01/players/${crypto.randomUUID()}`],
        ["GET", "/admin/api/rooms"],
        ["GET", "/admin/api/games"],
        ["GET", "/admin/api/overview"],
      ] as const
    ) {
      const { status, body } = await api(method, path);
      equal(status, 503, `${method} ${path}: ${JSON.stringify(body)}`);
      equal(body.error_code, "SERVICE_UNAVAILABLE", `${method} ${path}`);
    }
    equal(alice.closed, undefined, "nothing was closed");
    cluster.store.unreachable = false;
    // The detail names the room's home (not the answering node).
    const detail = await api("GET", "/admin/api/rooms/orbit/OPER01");
    equal(detail.status, 200, JSON.stringify(detail.body));
    equal(detail.body.home, a.name);
    const { status, body } = await api("DELETE", "/admin/api/rooms/orbit/OPER01");
    equal(status, 200, JSON.stringify(body));
    await until(() => alice.last("RoomLeft") !== undefined, "Alice told her room closed");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a room action the home does not answer in time is 504 OUTCOME_UNKNOWN, logged as unknown, and may still be carried out (docs/spec/EXTENSIONS.md E12)", async () => {
  // Heartbeats every 10 s: no peer turns suspect; only the command's own timeout (200 ms) ends it.
  const cluster = await testCluster({ nodes: 2, forwardTimeoutMs: 200, heartbeatMs: 10_000 });
  try {
    const [a, b] = cluster.nodes as [TestNode, TestNode];
    const alice = a.connect();
    join(alice, "Alice", "LATE01");
    await until(() => alice.last("RoomJoined") !== undefined, "Alice's room");
    const seen: FeedEvent[] = [];
    const api = operatorApi(b, seen);
    // B's envelopes to A (the home) arrive 600 ms late: the close goes out, no answer in time.
    cluster.network.fault = (from, to) =>
      from === b.name && to === a.name ? { lateMs: 600 } : "deliver";
    const started = Date.now();
    const { status, body } = await api("DELETE", "/admin/api/rooms/orbit/LATE01");
    equal(status, 504, JSON.stringify(body));
    equal(body.error_code, "OUTCOME_UNKNOWN");
    equal(body.outcome, "unknown");
    equal(alice.last("RoomLeft"), undefined, "not closed yet when the API answered");
    const action = seen.find((event) => event.event === "action");
    deepEqual(
      action && { ...action.data, at: 0 },
      { action: "close_room", target: "orbit/LATE01", outcome: "unknown", at: 0 },
    );
    // The late envelope arrives: the room is closed after all (why the answer cannot be 503).
    await until(() => alice.last("RoomLeft") !== undefined, "Alice told her room closed");
    ok(Date.now() - started >= 400, "closed by the late envelope");
    cluster.network.fault = undefined;
    // Refused (nothing done): logged too, with its outcome.
    const again = await api("DELETE", "/admin/api/rooms/orbit/LATE01");
    equal(again.status, 404, JSON.stringify(again.body));
    equal(
      seen.filter((event) => event.event === "action").at(-1)?.data.outcome,
      "refused",
    );
  } finally {
    await cluster.close();
  }
});
