/**
 * Cluster mode with Redis out of reach, at the default log level (docs/spec/SERVER.md §8.5,
 * src/cluster/link_report.ts): a refused password or an address nobody listens on is a warning at
 * once, with the client's error and without the password, and Redis coming back is an info line.
 * Before, both were debug lines only: `/v2/health` answered 503 and the log said nothing. A clean
 * stop, which closes the link itself, is an info line and no warning.
 * A real server process and redis-server.
 */
import { equal, ok } from "node:assert/strict";
import { logged, type ServerProcess, spawnServer } from "./process.ts";
import { IGNORE_WITHOUT_REDIS, startRedis } from "./redis_server.ts";

const opts = { ignore: IGNORE_WITHOUT_REDIS, sanitizeResources: false, sanitizeOps: false };

/** A server in cluster mode on `redisUrl`, logging at the default level. */
function clusterServer(redisUrl: string): Promise<ServerProcess> {
  return spawnServer({
    env: {
      SIGNAL_FISH_CLUSTER__REDIS_URL: redisUrl,
      SIGNAL_FISH_CLUSTER__DRAIN_TIMEOUT_SECS: "0",
      SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING: "false",
    },
  });
}

/** How long each expected log line may take (a reconnect backs off up to 5 s). */
const WAIT_MS = 10_000;

const WARNINGS = /"level":"WARN","category":"signal-fish\.cluster","message":"Redis link[^"]*"/g;

Deno.test({
  ...opts,
  name: "cluster: a password Redis refuses is a warning, once per 30 s, without the password",
  fn: async () => {
    await using redis = await startRedis(["--requirepass", "right"]);
    const url = redis.url.replace("redis://", "redis://default:WRONG-PW-1234@");
    await using server = await clusterServer(url);
    equal(
      await logged(server, WARNINGS, WAIT_MS),
      '"level":"WARN","category":"signal-fish.cluster","message":"Redis link down: ' +
        'WRONGPASS invalid username-password pair or user is disabled.; retrying"',
    );
    // The client retries several times a second meanwhile: still one warning.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    equal(server.output().match(WARNINGS)?.length, 1, server.output());
    ok(!server.output().includes("WRONG-PW-1234"), server.output());
    const health = await fetch(`http://127.0.0.1:${server.port}/v2/health`);
    await health.body?.cancel();
    equal(health.status, 503);
  },
});

Deno.test({
  ...opts,
  name: "cluster: Redis unreachable at start is a warning; its return an info line",
  fn: async () => {
    await using redis = await startRedis();
    await redis.stop(); // nothing listens on its port now
    await using server = await clusterServer(redis.url);
    await logged(
      server,
      /"message":"Redis link down: connect ECONNREFUSED 127\.0\.0\.1:\d+; retrying"/,
      WAIT_MS,
    );
    await redis.restart();
    await logged(
      server,
      /"level":"INFO","category":"signal-fish\.cluster","message":"Redis link up again after \d+ s"/,
      WAIT_MS,
    );
  },
});

Deno.test({
  ...opts,
  name: "cluster: a clean stop closes the Redis link without a warning (no 'Redis link down')",
  fn: async () => {
    await using redis = await startRedis();
    await using server = await clusterServer(redis.url);
    await logged(server, /"message":"Cluster node \S+ registered"/, WAIT_MS);
    server.child.kill("SIGTERM");
    equal((await server.exited).code, 0, server.output());
    ok(server.output().includes('"message":"Server stopped"'), server.output());
    // The server closing its own connections is not an outage: nothing says "retrying".
    equal(server.output().match(/"level":"WARN"[^\n]*/g), null, server.output());
    ok(
      /"level":"INFO","category":"signal-fish\.cluster","message":"Redis link closed"/.test(
        server.output(),
      ),
      server.output(),
    );
  },
});
