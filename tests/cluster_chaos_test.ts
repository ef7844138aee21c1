/**
 * Cluster failures, bounded (issue 15 item 4, docs/spec/SERVER.md §8.5.5): `kill -9` of a room's home and
 * of a player's edge, with a real redis-server and three server processes (T = 3 s, heartbeat
 * 250 ms). Each test ends within ~20 s.
 */
import { equal, ok } from "node:assert/strict";
import { joinRoom, type Received, TestClient } from "./helpers.ts";
import { startCluster, TEST_TTL_SECS } from "./cluster_helpers.ts";
import { IGNORE_WITHOUT_REDIS } from "./redis_server.ts";
import { parseExposition } from "./exposition.ts";

const opts = { ignore: IGNORE_WITHOUT_REDIS, sanitizeResources: false, sanitizeOps: false };

/** Sends `Reconnect` through `url` until `done(answer)` (every 300 ms, at most `ms`). */
async function reconnectUntil(
  url: string,
  data: { player_id: string; room_id: string; auth_token: string },
  done: (answer: Received) => boolean,
  ms: number,
): Promise<Received[]> {
  const answers: Received[] = [];
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    await using client = await TestClient.connect(url);
    client.send({ type: "Reconnect", data });
    const answer = await client.next(undefined, 4_000);
    answers.push(answer);
    if (done(answer)) return answers;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  throw new Error(`no final answer: ${JSON.stringify(answers.map((a) => a.data))}`);
}

Deno.test({
  ...opts,
  name:
    "cluster chaos: kill -9 of a room's home → remote members closed with 1012, Reconnect fails, the code is free again",
  fn: async () => {
    await using cluster = await startCluster(3);
    await using alice = await TestClient.connect(cluster.wsUrl(0));
    const bob = await TestClient.connect(cluster.wsUrl(1));
    alice.send(joinRoom(null, "Alice"));
    const created = await alice.next("RoomJoined");
    bob.send(joinRoom(created.data.room_code, "Bob"));
    const joined = await bob.next("RoomJoined");
    cluster.servers[0]!.child.kill("SIGKILL");
    const closed = await Promise.race([
      bob.closed,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no close")), 5_000)),
    ]);
    equal(closed.code, 1012);
    const metrics = parseExposition(
      await (await fetch(`${cluster.httpUrl(1)}/metrics/prom`)).text(),
    );
    ok((metrics.get("signal_fish_cluster_resync_closes_total") ?? 0) >= 1, "counted");
    ok((metrics.get("signal_fish_cluster_resyncs_total") ?? 0) >= 1, "counted");
    // Unreachable first (SERVICE_UNAVAILABLE), then held dead: RECONNECTION_FAILED.
    const answers = await reconnectUntil(
      cluster.wsUrl(2),
      {
        player_id: joined.data.player_id,
        room_id: joined.data.room_id,
        auth_token: joined.data.reconnection_token,
      },
      (a) => a.data?.error_code === "RECONNECTION_FAILED",
      4 * TEST_TTL_SECS * 1000,
    );
    for (const answer of answers) {
      equal(answer.type, "ReconnectionFailed");
      ok(
        ["SERVICE_UNAVAILABLE", "RECONNECTION_FAILED"].includes(answer.data.error_code),
        answer.data.error_code,
      );
    }
    // The dead home's code can be created again.
    await using carol = await TestClient.connect(cluster.wsUrl(2));
    carol.send(joinRoom(created.data.room_code, "Carol"));
    const again = await carol.next("RoomJoined");
    equal(again.data.room_code, created.data.room_code);
    ok(again.data.room_id !== created.data.room_id, "a new room");
  },
});

Deno.test({
  ...opts,
  name:
    "cluster chaos: Redis restarted empty → rooms re-registered, no duplicate room, play goes on",
  fn: async () => {
    await using cluster = await startCluster(3);
    await cluster.pastGrace();
    await using alice = await TestClient.connect(cluster.wsUrl(0));
    await using bob = await TestClient.connect(cluster.wsUrl(1));
    alice.send(joinRoom("LIVE01", "Alice", { max_players: 8 }));
    const created = await alice.next("RoomJoined");
    bob.send(joinRoom("LIVE01", "Bob"));
    await bob.next("RoomJoined");
    await cluster.redis.restart();
    // A new epoch, so a new grace window (docs/spec/SERVER.md §8.3): once a node answers again, an HTTP
    // lookup of a code the directory does not know is 503, not 404; after the window, 404.
    const unknown = `${cluster.httpUrl(2)}/v2/rooms/orbit/NONE99`;
    const healthyAgain = Date.now() + 3_000;
    for (;;) {
      const response = await fetch(`${cluster.httpUrl(2)}/v2/health`);
      await response.body?.cancel();
      if (response.status === 200) break;
      ok(Date.now() < healthyAgain, "healthy again after the restart");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const inGrace = await fetch(unknown);
    equal(inGrace.status, 503);
    equal((await inGrace.json()).error_code, "SERVICE_UNAVAILABLE");
    // Until instance 0 re-registers (at once after its reconnect, or at the next T/3), a join of
    // the live code must never create a second room: it joins it or is told to retry.
    const deadline = Date.now() + 4 * TEST_TTL_SECS * 1000;
    let joined: Received | undefined;
    for (let i = 0; !joined && Date.now() < deadline; i++) {
      await using carol = await TestClient.connect(cluster.wsUrl(2));
      carol.send(joinRoom("LIVE01", `Carol${i}`));
      const answer = await carol.next(undefined, 4_000);
      if (answer.type === "RoomJoined") {
        equal(answer.data.room_id, created.data.room_id, "the same room, never a duplicate");
        joined = answer;
      } else {
        equal(answer.data.error_code, "SERVICE_UNAVAILABLE", JSON.stringify(answer));
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    ok(joined, "joined the live room after the restart");
    // Relay between the first two instances goes on (or their pair resynced with 1012).
    bob.send({ type: "GameData", data: { data: "after the restart" } });
    const next = await Promise.race([
      alice.waitFor("GameData").then((m) => m.data.data),
      bob.closed.then((c) => `closed ${c.code}`),
    ]);
    ok(next === "after the restart" || next === "closed 1012", String(next));
    await new Promise((resolve) => setTimeout(resolve, TEST_TTL_SECS * 1000 + 200));
    const afterGrace = await fetch(unknown);
    equal(afterGrace.status, 404);
    await afterGrace.body?.cancel();
  },
});

// Reconnecting at once is a takeover (the home has not noticed the silence yet); a second later
// the seat is held. Either way the frame sent to the dead edge is reported missing
// (docs/spec/SERVER.md §8.5.3).
for (const [when, waitMs] of [["at once (a takeover)", 0], ["a second later", 1_000]] as const) {
  Deno.test({
    ...opts,
    name:
      `cluster chaos: kill -9 of a player's edge → the home keeps the seat; Reconnect through another instance ${when} resumes it, replay_truncated`,
    fn: async () => {
      await using cluster = await startCluster(3);
      await using alice = await TestClient.connect(cluster.wsUrl(0));
      const bob = await TestClient.connect(cluster.wsUrl(1));
      alice.send(joinRoom(null, "Alice"));
      const created = await alice.next("RoomJoined");
      bob.send(joinRoom(created.data.room_code, "Bob"));
      const joined = await bob.next("RoomJoined");
      await alice.waitFor("PlayerJoined");
      cluster.servers[1]!.child.kill("SIGKILL");
      // Alice keeps playing meanwhile; nobody is told about Bob.
      alice.send({ type: "GameData", data: { data: "while Bob is away" } });
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      const answers = await reconnectUntil(
        cluster.wsUrl(2),
        {
          player_id: joined.data.player_id,
          room_id: joined.data.room_id,
          auth_token: joined.data.reconnection_token,
        },
        (a) => a.type === "Reconnected",
        8_000,
      );
      const reconnected = answers.at(-1)!;
      equal(reconnected.data.room_id, created.data.room_id);
      equal(reconnected.data.replay_truncated, true, "the frame sent to the dead edge is lost");
      equal((await alice.waitFor("PlayerReconnected")).data.player_id, joined.data.player_id);
      const types = alice.drain().map((m) => (m as Received).type);
      ok(!types.includes("PlayerLeft"), types.join());
    },
  });
}
