/**
 * Cluster mode keeps the limits the engine owns in single-instance mode (docs/spec/SERVER.md §3.3,
 * §3.4, §8.2): the failed-`Authenticate` lockout and the `Reconnect` bucket, both global (in
 * Redis like the creation and join buckets), and an app's `max_rooms` counted over every instance.
 * Instances in process on a private redis-server behind the round-robin proxy
 * (tests/cluster_serve.ts).
 */
import { deepEqual, equal, notEqual } from "node:assert/strict";
import { serveCluster } from "./cluster_serve.ts";
import { TestClient, testConfig } from "./helpers.ts";
import { IGNORE_WITHOUT_REDIS } from "./redis_server.ts";

Deno.test({
  name:
    "cluster: wrong secrets through three instances lock out the address after max_auth_failures, globally",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    await using server = await serveCluster(
      testConfig((config) => {
        config.security.require_websocket_auth = true;
        config.rate_limit.max_auth_failures = 3;
        config.security.authorized_apps = [{
          app_id: "orbit-prod",
          app_secret: "correct horse battery staple",
          app_name: "Orbit",
          max_rooms: null,
          max_players_per_room: null,
          rate_limit_per_minute: null,
        }];
      }),
      {},
      3,
    );
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
    await using server = await serveCluster(
      testConfig((config) => {
        config.security.require_websocket_auth = true;
        config.security.authorized_apps = [{
          app_id: "orbit-prod",
          app_secret: "correct horse battery staple",
          app_name: "Orbit",
          max_rooms: 2,
          max_players_per_room: null,
          rate_limit_per_minute: null,
        }];
      }),
      {},
      3,
    );
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
