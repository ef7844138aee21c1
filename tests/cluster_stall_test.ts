/**
 * Cluster failures that stall rather than crash (issue 15 item 4, docs/spec/SERVER.md §8.5.5), bounded
 * (each ≤ 30 s): Redis paused (SIGSTOP) for longer than `forward_timeout_ms` and the heartbeat
 * but well under `T`; a node's subscriber cut off by Redis's pub/sub output-buffer limit; a home
 * too slow to answer a join. A real redis-server and three server processes; each test asserts
 * the outcome §8 names and that no client loses anything it is not told about.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { joinRoom, type Received, TestClient } from "./helpers.ts";
import { health, metric, pause, type RealCluster, startCluster } from "./cluster_helpers.ts";
import { IGNORE_WITHOUT_REDIS, redisCommand } from "./redis_server.ts";

const opts = { ignore: IGNORE_WITHOUT_REDIS, sanitizeResources: false, sanitizeOps: false };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with `promise`, or rejects after `ms` naming `what`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Polls `check` every 100 ms until true (at most `ms`). */
async function eventually(check: () => Promise<boolean>, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not ${what} within ${ms} ms`);
    await sleep(100);
  }
}

/** Waits until all three instances answer `/v2/health` with 200 (at most 5 s). */
function allHealthy(cluster: RealCluster): Promise<void> {
  return eventually(
    async () =>
      (await Promise.all([0, 1, 2].map((i) => health(cluster, i)))).every((s) => s === 200),
    5_000,
    "healthy",
  );
}

/** `Reconnect` through server `i`, retried while the answer is SERVICE_UNAVAILABLE (≤ `ms`). */
async function reconnect(
  cluster: RealCluster,
  i: number,
  joined: Received,
  ms = 6_000,
): Promise<{ client: TestClient; answer: Received }> {
  const deadline = Date.now() + ms;
  for (;;) {
    const client = await TestClient.connect(cluster.wsUrl(i));
    client.send({
      type: "Reconnect",
      data: {
        player_id: joined.data.player_id,
        room_id: joined.data.room_id,
        auth_token: joined.data.reconnection_token,
      },
    });
    const answer = await client.next(undefined, 4_000);
    if (answer.data?.error_code !== "SERVICE_UNAVAILABLE" || Date.now() > deadline) {
      return { client, answer };
    }
    await client.close();
    await sleep(200);
  }
}

Deno.test({
  ...opts,
  name:
    "cluster stall: a publish a paused Redis does not answer times out after forward_timeout_ms → that pair resyncs (1012) long before any peer is suspect; counted; recovery",
  fn: async () => {
    // Heartbeat 10 s: a peer turns suspect only after 30 s of silence, so within this test only
    // the publish's timeout (500 ms) can resync the pair.
    await using cluster = await startCluster(3, {}, {
      ttlSecs: 30,
      heartbeatMs: 10_000,
      forwardTimeoutMs: 500,
    });
    await using alice = await TestClient.connect(cluster.wsUrl(0));
    alice.send(joinRoom(null, "Alice"));
    const created = await alice.next("RoomJoined");
    const bob = await TestClient.connect(cluster.wsUrl(1));
    bob.send(joinRoom(created.data.room_code, "Bob"));
    const joined = await bob.next("RoomJoined");
    await alice.waitFor("PlayerJoined");
    const before = await metric(cluster, 1, "signal_fish_cluster_publishes_unanswered_total");
    const resume = pause(cluster.redis.pid());
    try {
      // Bob's frame is forwarded to the home in a publish Redis never answers while paused.
      bob.send({ type: "GameData", data: { data: "into a paused Redis" } });
      equal((await within(bob.closed, 5_000, "close of Bob")).code, 1012);
      ok(
        (await metric(cluster, 1, "signal_fish_cluster_publishes_unanswered_total")) > before,
        "the unanswered publish is counted",
      );
    } finally {
      resume();
    }
    // Recovery: Bob's seat resumes through another instance.
    await allHealthy(cluster);
    const { client: bob2, answer } = await reconnect(cluster, 2, joined);
    await using _bob2 = bob2;
    equal(answer.type, "Reconnected", JSON.stringify(answer));
    equal(answer.data.room_id, created.data.room_id);
    bob2.send({ type: "GameData", data: { data: "Bob is back" } });
    // The frame of the unanswered publish may have reached the home once Redis resumed (its
    // outcome was unknown, not lost for sure); nothing else comes before Bob's new frame.
    let relayed = (await alice.waitFor("GameData")).data.data;
    if (relayed === "into a paused Redis") relayed = (await alice.waitFor("GameData")).data.data;
    equal(relayed, "Bob is back");
    for (const i of [0, 1, 2]) {
      equal(await metric(cluster, i, "signal_fish_cluster_peer_deaths_total"), 0);
    }
  },
});

Deno.test({
  ...opts,
  name:
    "cluster stall: Redis paused longer than forward_timeout and the heartbeat, under T → SERVICE_UNAVAILABLE and health 503 meanwhile, local members play on; then recovery, no death verdict, resynced pairs resume with replay_truncated",
  fn: async () => {
    // T = 9 s: a pause of 3 s (longer on a loaded machine) stays well under the 2T/3 a directory
    // entry has left at worst, so no key expires meanwhile (that would be a split brain, §8.5.5).
    await using cluster = await startCluster(3, {}, { ttlSecs: 9 });
    await using alice = await TestClient.connect(cluster.wsUrl(0));
    alice.send(joinRoom(null, "Alice", { max_players: 8 }));
    const created = await alice.next("RoomJoined");
    const code = created.data.room_code;
    await using dave = await TestClient.connect(cluster.wsUrl(0));
    dave.send(joinRoom(code, "Dave"));
    await dave.next("RoomJoined");
    const bob = await TestClient.connect(cluster.wsUrl(1));
    bob.send(joinRoom(code, "Bob"));
    const joined = await bob.next("RoomJoined");
    await alice.waitFor("PlayerJoined");
    await alice.waitFor("PlayerJoined");
    alice.drain();
    const resume = pause(cluster.redis.pid());
    try {
      const pausedAt = Date.now();
      // Requests that need Redis, through the edge of a remote member: answered, not hung.
      await using erin = await TestClient.connect(cluster.wsUrl(1));
      await using frank = await TestClient.connect(cluster.wsUrl(1));
      erin.send(joinRoom(code, "Erin"));
      frank.send(joinRoom(null, "Frank"));
      // HTTP lookup through another node: 503, not 500 (docs/spec/SERVER.md §1.10).
      const lookup = fetch(`${cluster.httpUrl(2)}/v2/rooms/orbit/${code}`);
      for (const client of [erin, frank]) {
        const answer = await client.next(undefined, 2_500);
        equal(answer.type, "RoomJoinFailed", JSON.stringify(answer));
        equal(answer.data.error_code, "SERVICE_UNAVAILABLE");
      }
      equal(await health(cluster, 1), 503, "health while Redis does not answer");
      const looked = await lookup;
      equal(looked.status, 503);
      equal((await looked.json()).error_code, "SERVICE_UNAVAILABLE");
      // Bob's pair with the home resynced on silence: told with 1012.
      equal((await within(bob.closed, 2_000, "close of Bob")).code, 1012);
      // The home's local members keep playing.
      alice.send({ type: "GameData", data: { data: "during the pause" } });
      equal((await dave.waitFor("GameData")).data.data, "during the pause");
      await sleep(Math.max(0, pausedAt + 3_000 - Date.now()));
    } finally {
      resume();
    }
    // Recovery: every node healthy again, the room intact, Bob's seat resumes (truncated).
    await allHealthy(cluster);
    const { client: bob2, answer } = await reconnect(cluster, 2, joined);
    await using _bob2 = bob2;
    equal(answer.type, "Reconnected", JSON.stringify(answer));
    equal(answer.data.room_id, created.data.room_id);
    equal(answer.data.replay_truncated, true);
    // Alice's frame from the pause is in Bob's replay or he was told it may be missing.
    bob2.send({ type: "GameData", data: { data: "Bob is back" } });
    equal((await alice.waitFor("GameData")).data.data, "Bob is back");
    // New rooms and joins work again, through any node.
    await using gina = await TestClient.connect(cluster.wsUrl(1));
    gina.send(joinRoom(code, "Gina"));
    equal((await gina.next("RoomJoined")).data.room_id, created.data.room_id);
    await using hugo = await TestClient.connect(cluster.wsUrl(2));
    hugo.send(joinRoom(null, "Hugo"));
    await hugo.next("RoomJoined");
    // No node was held dead; the resyncs were counted.
    for (const i of [0, 1, 2]) {
      equal(await metric(cluster, i, "signal_fish_cluster_peer_deaths_total"), 0);
    }
    ok((await metric(cluster, 1, "signal_fish_cluster_resync_closes_total")) >= 1);
    ok((await metric(cluster, 0, "signal_fish_cluster_resyncs_total")) >= 1);
    for (const i of [0, 1, 2]) equal(await metric(cluster, i, "signal_fish_cluster_redis_up"), 1);
  },
});

Deno.test({
  ...opts,
  name:
    "cluster stall: a node's subscriber cut off at Redis's pub/sub output-buffer limit → it resubscribes, the gap resyncs only the pair that lost envelopes, the rest plays on",
  fn: async () => {
    // Heartbeat 2 s: a stall of 2 s makes no peer suspect (6 s), so only the lost envelopes act.
    await using cluster = await startCluster(3, {}, { ttlSecs: 6, heartbeatMs: 2_000 });
    await redisCommand(
      cluster.redis.port,
      "CONFIG",
      "SET",
      "client-output-buffer-limit",
      "pubsub 262144 131072 1",
    );
    // Room 1 homed on A (0) with Bob on B (1); room 2 homed on C (2) with Dave on B.
    await using alice = await TestClient.connect(cluster.wsUrl(0));
    alice.send(joinRoom(null, "Alice"));
    const room1 = await alice.next("RoomJoined");
    await using carol = await TestClient.connect(cluster.wsUrl(2));
    carol.send(joinRoom(null, "Carol"));
    const room2 = await carol.next("RoomJoined");
    const bob = await TestClient.connect(cluster.wsUrl(1));
    bob.send(joinRoom(room1.data.room_code, "Bob"));
    const joined = await bob.next("RoomJoined");
    await using dave = await TestClient.connect(cluster.wsUrl(1));
    dave.send(joinRoom(room2.data.room_code, "Dave"));
    await dave.next("RoomJoined");
    await alice.waitFor("PlayerJoined");
    await carol.waitFor("PlayerJoined");
    bob.drain();
    const reconnectsBefore = await metric(cluster, 1, "signal_fish_cluster_redis_reconnects_total");
    // Stall B while A publishes ~10 MB to it: Redis closes B's subscription at 256 KiB.
    const resume = pause(cluster.servers[1]!.child.pid);
    const frames = 200;
    try {
      const filler = "x".repeat(48_000);
      for (let i = 0; i < frames; i++) {
        alice.send({ type: "GameData", data: { data: { i, filler } } });
      }
      await sleep(2_000);
    } finally {
      resume();
    }
    // B notices its subscription was closed, reconnects and resubscribes; the next envelope
    // or heartbeat from A shows the gap: Bob is told with 1012.
    equal((await within(bob.closed, 8_000, "close of Bob")).code, 1012);
    // What Bob got is a prefix of what Alice sent: nothing missing that he was not told about.
    const got = bob.drain().filter((m): m is Received => !(m instanceof Uint8Array))
      .filter((m) => m.type === "GameData").map((m) => m.data.data.i as number);
    deepEqual(got, got.map((_, i) => i), "in order, no hole");
    ok(got.length < frames, `Bob got ${got.length} of ${frames} frames: some were lost`);
    ok(
      (await metric(cluster, 1, "signal_fish_cluster_redis_reconnects_total")) > reconnectsBefore,
      "B's subscription was re-established",
    );
    ok((await metric(cluster, 1, "signal_fish_cluster_sequence_gaps_total")) >= 1, "gap counted");
    // The C–B pair lost nothing: Dave and Carol play on.
    carol.send({ type: "GameData", data: { data: "C after the stall" } });
    equal((await dave.waitFor("GameData", 5_000)).data.data, "C after the stall");
    dave.send({ type: "GameData", data: { data: "B after the stall" } });
    equal((await carol.waitFor("GameData", 5_000)).data.data, "B after the stall");
    equal(await metric(cluster, 2, "signal_fish_cluster_resyncs_total"), 0, "C resynced nothing");
    // Bob resumes his seat through C, told that messages may be missing.
    const { client: bob2, answer } = await reconnect(cluster, 2, joined);
    await using _bob2 = bob2;
    equal(answer.type, "Reconnected", JSON.stringify(answer));
    equal(answer.data.replay_truncated, true);
    bob2.send({ type: "GameData", data: { data: "Bob is back" } });
    equal((await alice.waitFor("GameData", 5_000)).data.data, "Bob is back");
  },
});

Deno.test({
  ...opts,
  name:
    "cluster stall: a home too slow for forward_timeout → SERVICE_UNAVAILABLE, the home drops the expired BIND, a success crossing the timeout is undone; no ghost player",
  fn: async () => {
    // Heartbeat 2 s: the stalls below (≤ 2.5 s) make no peer suspect (6 s); the timer decides.
    await using cluster = await startCluster(3, {}, { ttlSecs: 6, heartbeatMs: 2_000 });
    await using alice = await TestClient.connect(cluster.wsUrl(0));
    alice.send(joinRoom(null, "Alice"));
    const created = await alice.next("RoomJoined");
    const code = created.data.room_code;
    const home = cluster.servers[0]!.child.pid;
    const edge = cluster.servers[1]!.child.pid;
    // 1. The home is stopped while Bob's BIND waits: the edge answers at forward_timeout, the
    // home finds the BIND expired when it runs again.
    await using bob = await TestClient.connect(cluster.wsUrl(1));
    let resume = pause(home);
    try {
      bob.send(joinRoom(code, "Bob"));
      const failed = await bob.next(undefined, 2_500);
      equal(failed.type, "RoomJoinFailed", JSON.stringify(failed));
      equal(failed.data.error_code, "SERVICE_UNAVAILABLE");
      await sleep(500);
    } finally {
      resume();
    }
    await eventually(
      async () => (await metric(cluster, 0, "signal_fish_cluster_binds_expired_total")) === 1,
      3_000,
      "the expired BIND dropped",
    );
    equal(await metric(cluster, 1, "signal_fish_cluster_bind_timeouts_total"), 1);
    // 2. The home answers in time but the edge is stopped until after its timer: the success
    // crosses the timeout.
    await using carl = await TestClient.connect(cluster.wsUrl(1));
    resume = pause(home);
    let resumeEdge: (() => void) | undefined;
    try {
      carl.send(joinRoom(code, "Carl"));
      await sleep(1_000); // the BIND waits at the stopped home
      resumeEdge = pause(edge);
      resume(); // the home answers before the deadline; the answer waits at the stopped edge
      await sleep(1_500);
    } finally {
      resume();
      resumeEdge?.();
    }
    // Carl is told SERVICE_UNAVAILABLE; the home's late success is undone, nothing of it
    // reaches him.
    const carlAnswer = await carl.next(undefined, 3_000);
    equal(carlAnswer.type, "RoomJoinFailed", JSON.stringify(carlAnswer));
    equal(carlAnswer.data.error_code, "SERVICE_UNAVAILABLE");
    await eventually(
      async () => (await metric(cluster, 1, "signal_fish_cluster_binds_undone_total")) === 1,
      3_000,
      "the late success undone",
    );
    const joinedThenLeft = await alice.waitFor("PlayerJoined");
    equal(joinedThenLeft.data.player.name, "Carl");
    equal((await alice.waitFor("PlayerLeft")).data.player_id, joinedThenLeft.data.player.id);
    await carl.expectNothingElse();
    // No ghost: a newcomer finds Alice alone; Bob and Carl can join now.
    await using dan = await TestClient.connect(cluster.wsUrl(2));
    dan.send(joinRoom(code, "Dan"));
    const danJoined = await dan.next("RoomJoined");
    deepEqual(danJoined.data.current_players.map((p: { name: string }) => p.name).sort(), [
      "Alice",
      "Dan",
    ]);
    for (const client of [bob, carl]) {
      client.send(joinRoom(code, client === bob ? "Bob" : "Carl"));
      await client.next("RoomJoined");
    }
    equal(await metric(cluster, 0, "signal_fish_cluster_peer_deaths_total"), 0);
  },
});
