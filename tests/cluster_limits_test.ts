/**
 * Cluster mode keeps the limits the engine owns in single-instance mode (docs/spec/SERVER.md §3.3,
 * §3.4, §8.2): the failed-`Authenticate` lockout, the `Reconnect` bucket and an app's
 * `rate_limit_per_minute` bucket, all global (in Redis like the creation and join buckets), and an
 * app's `max_rooms` counted over every instance.
 * Instances in process on a private redis-server behind the round-robin proxy
 * (tests/cluster_serve.ts).
 */
import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { serveCluster } from "./cluster_serve.ts";
import { metric, startCluster } from "./cluster_helpers.ts";
import { secretApp, TestClient, testConfig } from "./helpers.ts";
import { IGNORE_WITHOUT_REDIS } from "./redis_server.ts";

/**
 * Three instances behind the proxy, app auth required for app "orbit-prod" (secret "correct horse
 * battery staple") with the per-app `limits` given (none by default, docs/spec/SERVER.md §3.3);
 * `maxAuthFailures`, when given, is the failed-`Authenticate` budget per address (§3.4).
 */
function authCluster(
  limits: Partial<ReturnType<typeof secretApp>> = {},
  maxAuthFailures?: number,
): ReturnType<typeof serveCluster> {
  return serveCluster(
    testConfig((config) => {
      config.security.require_websocket_auth = true;
      if (maxAuthFailures !== undefined) config.rate_limit.max_auth_failures = maxAuthFailures;
      config.security.authorized_apps = [{
        ...secretApp("orbit-prod", "correct horse battery staple"),
        ...limits,
      }];
    }),
    {},
    3,
  );
}

Deno.test({
  name:
    "cluster: wrong secrets through three instances lock out the address after max_auth_failures, globally",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    await using server = await authCluster({}, 3);
    const codes: string[] = [];
    // One connection per attempt, spread over the instances by the round-robin proxy: per
    // instance (3 each) none would be refused.
    for (let i = 0; i < 5; i++) {
      await using guess = await TestClient.connect(server.wsUrl);
      guess.send({
        type: "Authenticate",
        data: { app_id: "orbit-prod", app_secret: `guess-${i}` },
      });
      codes.push((await guess.next("AuthenticationError")).data.error_code);
    }
    deepEqual(codes, [
      "UNAUTHORIZED",
      "UNAUTHORIZED",
      "UNAUTHORIZED",
      "RATE_LIMIT_EXCEEDED",
      "RATE_LIMIT_EXCEEDED",
    ]);
  },
});

Deno.test({
  name:
    "cluster: an app's rate_limit_per_minute through three instances draws from one global bucket",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    await using server = await authCluster({ rate_limit_per_minute: 2 });
    const answers: string[] = [];
    // One connection per attempt, spread over the instances by the round-robin proxy: with a
    // bucket per instance (2 each) none would be refused.
    for (let i = 0; i < 4; i++) {
      await using client = await TestClient.connect(server.wsUrl);
      client.send({
        type: "Authenticate",
        data: { app_id: "orbit-prod", app_secret: "correct horse battery staple" },
      });
      for (;;) {
        const answer = await client.next();
        if (answer.type === "Authenticated") answers.push("Authenticated");
        else if (answer.type === "AuthenticationError") answers.push(answer.data.error_code);
        else continue;
        break;
      }
    }
    deepEqual(answers, [
      "Authenticated",
      "Authenticated",
      "RATE_LIMIT_EXCEEDED",
      "RATE_LIMIT_EXCEEDED",
    ]);
  },
});

Deno.test({
  name: "cluster: Reconnect attempts through three instances draw from one global per-IP bucket",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    await using server = await serveCluster(
      testConfig((config) => config.rate_limit.max_reconnect_attempts = 4),
      {},
      3,
    );
    const codes: string[] = [];
    // One connection per attempt: the round-robin proxy spreads them over the three instances,
    // so a per-instance bucket (4 each) would never refuse.
    for (let i = 0; i < 6; i++) {
      await using client = await TestClient.connect(server.wsUrl);
      client.send({
        type: "Reconnect",
        data: { player_id: crypto.randomUUID(), room_id: crypto.randomUUID(), auth_token: "x" },
      });
      codes.push((await client.next("ReconnectionFailed")).data.error_code);
    }
    deepEqual(codes, [
      "RECONNECTION_TOKEN_INVALID",
      "RECONNECTION_TOKEN_INVALID",
      "RECONNECTION_TOKEN_INVALID",
      "RECONNECTION_TOKEN_INVALID",
      "RATE_LIMIT_EXCEEDED",
      "RATE_LIMIT_EXCEEDED",
    ]);
  },
});

Deno.test({
  name:
    "cluster: an app's max_rooms counts its rooms on every instance, and rooms without a seat stop counting",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    await using server = await authCluster({ max_rooms: 2 });
    const connect = async () => {
      const client = await TestClient.connect(server.wsUrl);
      client.send({
        type: "Authenticate",
        data: { app_id: "orbit-prod", app_secret: "correct horse battery staple" },
      });
      await client.waitFor("Authenticated");
      return client;
    };
    const create = async (client: TestClient) => {
      client.send({ type: "JoinRoom", data: { game_name: "orbit", player_name: "p" } });
      for (;;) {
        const answer = await client.next();
        if (answer.type === "RoomJoined") return answer.data.room_code as string;
        if (answer.type === "RoomJoinFailed") return answer.data.error_code as string;
      }
    };
    // Two rooms through two instances (round robin): the third creation, on the third, is refused.
    await using a = await connect();
    await using b = await connect();
    await using c = await connect();
    const first = await create(a);
    await create(b);
    equal(await create(c), "MAX_ROOMS_PER_GAME_EXCEEDED");
    // The first room loses its last seat (kept until cleanup): it no longer counts, anywhere.
    a.send({ type: "LeaveRoom" });
    await a.waitFor("RoomLeft");
    // Its home's refresh (which marks it empty) writes the entry the HTTP lookup reads.
    for (let tries = 0;; tries++) {
      const lookup = await fetch(`${server.url}/v2/rooms/orbit/${first}?app_id=orbit-prod`, {
        headers: { "x-app-secret": "correct horse battery staple" },
      });
      equal(lookup.status, 200);
      if ((await lookup.json()).players === 0) break;
      if (tries > 200) throw new Error("the emptied room's entry still shows a player");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    notEqual(await create(c), "MAX_ROOMS_PER_GAME_EXCEEDED");
    equal(await create(a), "MAX_ROOMS_PER_GAME_EXCEEDED");
  },
});

Deno.test({
  name:
    "cluster: a client flooding its room homed on another instance is read at its forwarding budget, and nothing is lost",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    const perSecond = 256 * 1024;
    await using server = await serveCluster(
      testConfig((config) => {
        config.cluster.max_forward_bytes_per_sec = perSecond;
        config.cluster.max_forward_bytes_per_sec_per_ip = 4 * perSecond;
      }),
      {},
      3,
    );
    // The round-robin proxy: the first connection lands on instance 0 and homes the room, the
    // second on instance 1, whose edge forwards through Redis.
    await using host = await TestClient.connect(server.wsUrl);
    host.send({
      type: "JoinRoom",
      data: { game_name: "orbit", room_code: "FLOOD1", player_name: "host", max_players: 2 },
    });
    await host.next("RoomJoined");
    await using flooder = await TestClient.connect(server.wsUrl);
    flooder.send({
      type: "JoinRoom",
      data: { game_name: "orbit", room_code: "FLOOD1", player_name: "flooder" },
    });
    await flooder.next("RoomJoined");
    await flooder.next("LobbyStateChanged");
    await host.next("PlayerJoined");
    await host.next("LobbyStateChanged");
    // 40 frames of ~60 KiB (~2.3 MiB) in one go: without the budget they all arrive within a
    // fraction of a second; with it, past the first 2 s worth (the burst) at 256 KiB/s.
    const frames = 40;
    const payload = "x".repeat(60 * 1024);
    const frameBytes = JSON.stringify({ type: "GameData", data: { data: { i: 0, payload } } })
      .length;
    const start = performance.now();
    for (let i = 0; i < frames; i++) {
      flooder.send({ type: "GameData", data: { data: { i, payload } } });
    }
    const arrivals: number[] = [];
    for (let i = 0; i < frames; i++) {
      const message = await host.next("GameData", 60_000);
      equal(message.data.data.i, i, "in order, none lost");
      arrivals.push(performance.now() - start);
    }
    // Whenever a frame arrived, everything up to it fit in the budget so far: the burst plus
    // the rate over the time since the first send (the edge may read one frame past its debt).
    for (let i = 0; i < frames; i++) {
      const allowed = 2 * perSecond + perSecond * arrivals[i]! / 1000 + 2 * frameBytes;
      ok((i + 1) * frameBytes <= allowed, `frame ${i} at ${arrivals[i]!.toFixed(0)} ms`);
    }
    ok(arrivals[frames - 1]! > 3_000, `all ${frames} frames within ${arrivals[frames - 1]} ms`);
    await flooder.expectNothingElse();
    await host.expectNothingElse();
  },
});

Deno.test({
  name:
    "cluster: concurrent wrong secrets from one address get at most max_auth_failures + instances - 1 checked",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    await using server = await authCluster({}, 3);
    // 12 connections, 4 per instance, each sends its guess at the same moment: before, each
    // read the budget before any failure was taken and all 12 secrets were checked.
    const guesses: TestClient[] = [];
    try {
      for (let i = 0; i < 12; i++) guesses.push(await TestClient.connect(server.wsUrl));
      guesses.forEach((guess, i) =>
        guess.send({ type: "Authenticate", data: { app_id: "orbit-prod", app_secret: `g-${i}` } })
      );
      const codes = await Promise.all(
        guesses.map(async (guess) => (await guess.next("AuthenticationError")).data.error_code),
      );
      const checked = codes.filter((code) => code === "UNAUTHORIZED").length;
      ok(checked >= 3 && checked <= 3 + 3 - 1, `secrets checked: ${checked} of 12 (${codes})`);
      equal(codes.filter((code) => code === "RATE_LIMIT_EXCEEDED").length, 12 - checked);
    } finally {
      await Promise.all(guesses.map((guess) => guess.close()));
    }
  },
});

Deno.test({
  name: "cluster: a repeated Authenticate, which gets no answer, reads no budget from Redis",
  ignore: IGNORE_WITHOUT_REDIS,
  sanitizeResources: false,
  fn: async () => {
    await using cluster = await startCluster(1, {
      SIGNAL_FISH_SECURITY__REQUIRE_WEBSOCKET_AUTH: "true",
      SIGNAL_FISH_SECURITY__AUTHORIZED_APPS: JSON.stringify([secretApp("orbit-prod", null)]),
    });
    await using client = await TestClient.connect(cluster.wsUrl(0));
    const authenticate = { type: "Authenticate", data: { app_id: "orbit-prod" } };
    client.send(authenticate);
    await client.next("Authenticated");
    await client.next("ProtocolInfo");
    const before = await metric(cluster, 0, "signal_fish_queries_total");
    for (let i = 0; i < 300; i++) client.send(authenticate);
    await client.expectNothingElse();
    const sent = await metric(cluster, 0, "signal_fish_queries_total") - before;
    // Only the node's own refreshes and liveness (a few a second); before, one script per frame.
    ok(sent < 30, `${sent} Redis commands for 300 repeated Authenticate`);
  },
});
