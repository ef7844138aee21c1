/**
 * Cluster mode keeps the per-IP limits the engine owns in single-instance mode (docs/spec/SERVER.md
 * §3.4, §8.2): the failed-`Authenticate` lockout and the `Reconnect` bucket, both global (in
 * Redis like the creation and join buckets). Instances in process on a private redis-server
 * behind the round-robin proxy (tests/cluster_serve.ts).
 */
import { deepEqual } from "node:assert/strict";
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
