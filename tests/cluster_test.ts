/**
 * Cluster mode end to end (docs/spec/SERVER.md §8, issue 15 item 3): a private redis-server and three
 * server processes. A room created on one instance is joined through the others; game data,
 * `to_player`, authority, ready → `GameStarting` and a spectator cross instances; `Reconnect`
 * works through another instance; 30 concurrent joins of one code make one room; the per-game
 * cap is global.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { joinAsSpectator, joinRoom, type Received, TestClient } from "./helpers.ts";
import { startCluster } from "./cluster_helpers.ts";
import { IGNORE_WITHOUT_REDIS } from "./redis_server.ts";
import { parseExposition } from "./exposition.ts";

/** promtool lints the exposition when installed (CI installs it, tests/metrics_test.ts). */
const PROMTOOL = await new Deno.Command("promtool", { args: ["--version"], stdout: "null" })
  .output().then((result) => result.success, () => false);

const opts = { ignore: IGNORE_WITHOUT_REDIS, sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...opts,
  name:
    "cluster: a room on instance 0 joined through 1 and 2 — relay, to_player, authority, ready, spectator",
  fn: async () => {
    await using cluster = await startCluster(3);
    await using alice = await TestClient.connect(cluster.wsUrl(0));
    await using bob = await TestClient.connect(cluster.wsUrl(1));
    await using carol = await TestClient.connect(cluster.wsUrl(2));
    await using sam = await TestClient.connect(cluster.wsUrl(2));
    // A generated code is claimed even in the grace window.
    alice.send(joinRoom(null, "Alice", { max_players: 3 }));
    const created = await alice.next("RoomJoined");
    const code = created.data.room_code as string;
    bob.send(joinRoom(code, "Bob"));
    const bobJoined = await bob.next("RoomJoined");
    equal(bobJoined.data.room_id, created.data.room_id);
    deepEqual(
      bobJoined.data.current_players.map((p: { name: string }) => p.name).sort(),
      ["Alice", "Bob"],
    );
    await alice.waitFor("PlayerJoined");
    carol.send(joinRoom(code, "Carol"));
    await carol.next("RoomJoined");
    await alice.waitFor("PlayerJoined");
    await bob.waitFor("PlayerJoined");

    sam.send(joinAsSpectator(code, "Sam"));
    const watching = await sam.next("SpectatorJoined");
    equal(watching.data.room_id, created.data.room_id);

    // Bob (instance 1) relays to everyone; the number keeps its spelling.
    bob.send('{"type":"GameData","data":{"data":{"x":1.50}}}');
    for (const client of [alice, carol, sam]) {
      const data = await client.waitFor("GameData");
      equal(data.data.from_player, bobJoined.data.player_id);
      deepEqual(data.data.data, { x: 1.5 });
    }
    // Carol (instance 2) to Alice only.
    carol.send({
      type: "GameData",
      data: { data: "psst", to_player: created.data.player_id },
    });
    equal((await alice.waitFor("GameData")).data.data, "psst");
    // Bob got no copy: everything before his Pong is lobby traffic.
    bob.send({ type: "Ping" });
    const seen: string[] = [];
    for (let m = await bob.next(); m.type !== "Pong"; m = await bob.next()) seen.push(m.type);
    ok(!seen.includes("GameData"), seen.join());

    // Authority: held by the creator; Bob's claim is refused.
    bob.send({ type: "AuthorityRequest", data: { become_authority: true } });
    equal((await bob.waitFor("AuthorityResponse")).data.granted, false);

    // Everyone ready → GameStarting with everyone's connection details, on every instance.
    for (const client of [alice, bob, carol]) client.send({ type: "PlayerReady" });
    for (const client of [alice, bob, carol, sam]) {
      const starting = await client.waitFor("GameStarting");
      equal(starting.data.peer_connections.length, 3);
    }
  },
});

Deno.test({
  ...opts,
  name:
    "cluster: Reconnect through another instance resumes the seat; the old socket is taken over (4001)",
  fn: async () => {
    await using cluster = await startCluster(3);
    await using alice = await TestClient.connect(cluster.wsUrl(0));
    const bob = await TestClient.connect(cluster.wsUrl(1));
    alice.send(joinRoom(null, "Alice"));
    const code = (await alice.next("RoomJoined")).data.room_code;
    bob.send(joinRoom(code, "Bob"));
    const joined = await bob.next("RoomJoined");
    await alice.waitFor("PlayerJoined");
    // Takeover while the old socket (instance 1) is still open, through instance 2.
    await using again = await TestClient.connect(cluster.wsUrl(2));
    again.send({
      type: "Reconnect",
      data: {
        player_id: joined.data.player_id,
        room_id: joined.data.room_id,
        auth_token: joined.data.reconnection_token,
      },
    });
    const reconnected = await again.next("Reconnected");
    equal(reconnected.data.room_code, code);
    equal((await bob.closed).code, 4001);
    equal((await alice.waitFor("PlayerReconnected")).data.player_id, joined.data.player_id);
    // The resumed seat plays on through instance 2.
    again.send({ type: "GameData", data: { data: "back" } });
    equal((await alice.waitFor("GameData")).data.data, "back");
    // A token used once is spent: a second Reconnect through instance 0 fails.
    await using late = await TestClient.connect(cluster.wsUrl(0));
    late.send({
      type: "Reconnect",
      data: {
        player_id: joined.data.player_id,
        room_id: joined.data.room_id,
        auth_token: joined.data.reconnection_token,
      },
    });
    equal((await late.next("ReconnectionFailed")).data.error_code, "RECONNECTION_TOKEN_INVALID");
  },
});

Deno.test({
  ...opts,
  name: "cluster: 30 concurrent joins of one code over three instances make exactly one room",
  fn: async () => {
    await using cluster = await startCluster(3);
    await cluster.pastGrace();
    const clients = await Promise.all(
      Array.from({ length: 30 }, (_, i) => TestClient.connect(cluster.wsUrl(i % 3))),
    );
    try {
      for (const [i, client] of clients.entries()) {
        client.send(joinRoom("RACE01", `P${i}`, { max_players: 30 }));
      }
      const answers: Received[] = await Promise.all(clients.map((c) => c.next(undefined, 8000)));
      const types = answers.map((a) => a.type);
      deepEqual(types.filter((t) => t !== "RoomJoined"), [], JSON.stringify(answers.slice(0, 3)));
      equal(new Set(answers.map((a) => a.data.room_id)).size, 1, "one room");
      // The room lives on one instance; the status of each shows where.
      const rooms = await Promise.all([0, 1, 2].map(async (i) => {
        const status = await (await fetch(`${cluster.httpUrl(i)}/v2/status`)).json();
        return status.rooms as number;
      }));
      equal(rooms.reduce((a, b) => a + b, 0), 1);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  },
});

Deno.test({
  ...opts,
  name:
    "cluster: max_rooms_per_game is global; /v2/status lists the instances; lookup from any instance; cluster metrics (promtool clean)",
  fn: async () => {
    await using cluster = await startCluster(3, { SIGNAL_FISH_SERVER__MAX_ROOMS_PER_GAME: "2" });
    const clients = await Promise.all([0, 1, 2].map((i) => TestClient.connect(cluster.wsUrl(i))));
    try {
      clients[0]!.send(joinRoom(null, "A"));
      const first = await clients[0]!.next("RoomJoined");
      clients[1]!.send(joinRoom(null, "B"));
      await clients[1]!.next("RoomJoined");
      clients[2]!.send(joinRoom(null, "C"));
      const refused = await clients[2]!.next("RoomJoinFailed");
      equal(refused.data.error_code, "MAX_ROOMS_PER_GAME_EXCEEDED");
      // The nodes seen are read at every T/3 refresh: wait (bounded) for the third.
      let status = await (await fetch(`${cluster.httpUrl(1)}/v2/status`)).json();
      const deadline = Date.now() + 5_000;
      while (status.cluster_nodes.length < 3 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        status = await (await fetch(`${cluster.httpUrl(1)}/v2/status`)).json();
      }
      ok(String(status.node).startsWith("test-1@"), status.node);
      equal(status.cluster_nodes.length, 3, JSON.stringify(status.cluster_nodes));
      ok(status.cluster_nodes.includes(status.node));
      const lookup = await fetch(`${cluster.httpUrl(2)}/v2/rooms/orbit/${first.data.room_code}`);
      equal(lookup.status, 200);
      equal((await lookup.json()).players, 1);

      // Cluster metrics (docs/spec/SERVER.md §6.3): a join through instance 2 of a room homed on 0.
      clients[2]!.send(joinRoom(first.data.room_code, "C"));
      await clients[2]!.next("RoomJoined");
      const text = await (await fetch(`${cluster.httpUrl(0)}/metrics/prom`)).text();
      const metrics = parseExposition(text);
      equal(metrics.get("signal_fish_cluster_redis_up"), 1);
      equal(metrics.get("signal_fish_cluster_remote_sessions"), 1);
      ok((metrics.get("signal_fish_cross_instance_messages_total") ?? 0) >= 1);
      ok((metrics.get("signal_fish_cluster_envelopes_received_total") ?? 0) >= 1);
      equal(metrics.get("signal_fish_cluster_sequence_gaps_total"), 0);
      equal(metrics.get("signal_fish_cluster_peer_deaths_total"), 0);
      equal(metrics.get("signal_fish_cluster_redis_reconnects_total"), 0);
      // Redis queries (§6.3 #19, #23, #63): the creation's claim and the liveness writes at least;
      // each answered command is one histogram sample.
      const queries = metrics.get("signal_fish_queries_total") ?? 0;
      const timed = metrics.get("signal_fish_query_latency_seconds_count") ?? 0;
      ok(queries >= 2, `queries ${queries}`);
      ok(timed >= 1 && timed <= queries, `timed ${timed} of ${queries}`);
      equal(metrics.get("signal_fish_query_latency_samples_total"), timed);
      equal(metrics.get('signal_fish_query_latency_seconds_bucket{le="+Inf"}'), timed);
      // Publish round trips (§6.3 #67): home 0 published the join's answer to instance 2; each
      // publish Redis answered (heartbeats included) is one sample, never more than were
      // published. The answer may still be on its way at the first scrape: scrape again (bounded).
      let published = 0;
      let publishes = 0;
      let publishMetrics = metrics;
      for (const until = Date.now() + 5_000; Date.now() < until;) {
        published = publishMetrics.get("signal_fish_cross_instance_messages_total") ?? 0;
        publishes = publishMetrics.get("signal_fish_cluster_publish_latency_seconds_count") ?? 0;
        if (publishes >= 1) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
        publishMetrics = parseExposition(
          await (await fetch(`${cluster.httpUrl(0)}/metrics/prom`)).text(),
        );
      }
      ok(publishes >= 1 && publishes <= published, `publishes ${publishes} of ${published}`);
      equal(
        publishMetrics.get('signal_fish_cluster_publish_latency_seconds_bucket{le="+Inf"}'),
        publishes,
      );
      const json = await (await fetch(`${cluster.httpUrl(0)}/metrics?includeSnapshot=true`)).json();
      ok(json.serverMetrics.performance.queries >= queries);
      ok(json.serverMetrics.performance.query_latency.sample_count >= timed);
      ok(json.metricsSnapshot.performance.query_count >= queries);
      if (PROMTOOL) {
        const child = new Deno.Command("promtool", {
          args: ["check", "metrics"],
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode(text));
        await writer.close();
        const { code, stdout, stderr } = await child.output();
        const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
        equal(code, 0, output);
        equal(output.trim(), "", output);
      }
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  },
});
