/**
 * The end-to-end suite through a load balancer (issue 15 item 3, docs/spec/SERVER.md §8.6 "nothing
 * different in normal operation"): with `SIGNAL_FISH_TEST_CLUSTER=<n>` in the environment,
 * `serve()` of tests/helpers.ts starts, instead of one in-process server, a private redis-server,
 * `n` server processes (`main.ts`) in cluster mode with the configuration the test asked for, and a
 * round-robin TCP proxy (tests/tcp_proxy.ts) in front of them. The returned server's `url`,
 * `wsUrl` and `port` are the proxy's, so consecutive connections of a test land on different
 * instances. The in-process internals (`engine`, `edge`, `metrics`, `admin`, `operatorFeed`) do
 * not exist there: reading one throws, and the few tests that need them opt out with
 * {@linkcode notInCluster} and a reason.
 *
 * @module
 */
import type { Config } from "../src/config/schema.ts";
import type { SignalFishServer, StartOptions } from "../src/server.ts";
import { ENV_ALLOW } from "../scripts/permissions.ts";
import { type ServerProcess, spawnServer } from "./process.ts";
import { startRedis } from "./redis_server.ts";
import { startTcpProxy } from "./tcp_proxy.ts";

/**
 * Instances per test server: `SIGNAL_FISH_TEST_CLUSTER` (0 or unset = the ordinary in-process
 * single instance).
 */
export const TEST_CLUSTER: number = (() => {
  const value = Deno.env.get("SIGNAL_FISH_TEST_CLUSTER") ?? "";
  if (value === "" || value === "0") return 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 8) {
    throw new Error(`SIGNAL_FISH_TEST_CLUSTER must be 0-8, got ${JSON.stringify(value)}`);
  }
  return n;
})();

/**
 * `ignore` value for a test that cannot run behind the proxy: true in cluster mode. `reason`
 * documents why (it must name what is per instance or in-process, docs/spec/SERVER.md §8.6).
 */
export function notInCluster(reason: string): boolean {
  if (reason.trim().length < 10) throw new Error("an opt-out needs a reason");
  return TEST_CLUSTER > 0;
}

/** How long the instances may take to answer `/v2/health` 200, ms. */
const HEALTHY_TIMEOUT_MS = 20_000;
/** How long a SIGTERMed instance may take to exit before it is killed, ms. */
const EXIT_TIMEOUT_MS = 10_000;

/**
 * Writes the epoch key (docs/spec/SERVER.md §8.3) with a creation time `ageMs` in the past, so the
 * cluster starts past its grace window, as one that has been running for a while. One RESP
 * `SET` over a plain socket.
 */
async function seedEpoch(port: number, key: string, ageMs: number): Promise<void> {
  const value = JSON.stringify({ id: crypto.randomUUID(), createdAt: Date.now() - ageMs });
  const bulk = (s: string) => `$${new TextEncoder().encode(s).length}\r\n${s}\r\n`;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(`*3\r\n${bulk("SET")}${bulk(key)}${bulk(value)}`));
    const reply = new Uint8Array(64);
    const n = await conn.read(reply);
    const text = new TextDecoder().decode(reply.subarray(0, n ?? 0));
    if (!text.startsWith("+OK")) throw new Error(`SET ${key} answered ${text}`);
  } finally {
    conn.close();
  }
}

function internals(what: string): never {
  throw new Error(
    `server.${what} is the in-process server's; under SIGNAL_FISH_TEST_CLUSTER the servers are ` +
      `separate processes behind a proxy (opt the test out with notInCluster(reason))`,
  );
}

/**
 * Starts redis-server, `n` instances of `main.ts` with `config` (written to a temporary file;
 * per instance only `--port 0`, `--host 127.0.0.1` and `cluster.instance_id` differ) in cluster
 * mode, and the proxy; resolves once every instance answers `/v2/health` 200. The cluster
 * settings the test did not choose: `redis_url` (the private Redis) and `drain_timeout_secs` 0,
 * so `close()` shuts down as a single instance does (docs/spec/SERVER.md §8.7). The epoch is
 * created long ago, so there is no grace window.
 */
export async function serveCluster(
  config: Config,
  options: StartOptions,
  n: number,
): Promise<SignalFishServer> {
  if (options.onEvent || options.logStats) {
    internals(options.onEvent ? "onEvent" : "logStats");
  }
  const clusterConfig = structuredClone(config);
  clusterConfig.cluster.redis_url ??= "set below";
  if (config.cluster.drain_timeout_secs === 900) clusterConfig.cluster.drain_timeout_secs = 0;
  const redis = await startRedis();
  const servers: ServerProcess[] = [];
  let configPath: string | undefined;
  let proxy: ReturnType<typeof startTcpProxy> | undefined;
  const stopAll = async () => {
    await Promise.all(servers.map(async (server) => {
      try {
        server.child.kill("SIGTERM");
      } catch { /* already exited */ }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const exited = await Promise.race([
        server.exited.then(() => true),
        new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), EXIT_TIMEOUT_MS)),
      ]);
      clearTimeout(timer);
      if (!exited) await server[Symbol.asyncDispose]();
    }));
    await proxy?.close();
    await redis.stop();
    if (configPath) await Deno.remove(configPath).catch(() => {});
  };
  try {
    if (config.cluster.redis_url === null) clusterConfig.cluster.redis_url = redis.url;
    await seedEpoch(
      redis.port,
      `${clusterConfig.cluster.key_prefix}epoch`,
      10 * clusterConfig.cluster.directory_ttl_secs * 1000,
    );
    configPath = await Deno.makeTempFile({ prefix: "signal-fish-cluster-", suffix: ".json" });
    await Deno.writeTextFile(configPath, JSON.stringify(clusterConfig));
    const started = await Promise.allSettled(
      Array.from({ length: n }, (_, i) =>
        spawnServer({
          args: ["--config", configPath!, "--host", options.hostname ?? "127.0.0.1"],
          env: { SIGNAL_FISH_CLUSTER__INSTANCE_ID: `proxied-${i}` },
          permissions: [
            "--allow-net",
            "--allow-read",
            "--allow-write",
            `--allow-env=${ENV_ALLOW}`,
          ],
        })),
    );
    for (const outcome of started) {
      if (outcome.status === "fulfilled") servers.push(outcome.value);
    }
    const failed = started.find((outcome) => outcome.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const deadline = Date.now() + HEALTHY_TIMEOUT_MS;
    for (const server of servers) {
      for (;;) {
        const response = await fetch(`http://127.0.0.1:${server.port}/v2/health`);
        await response.body?.cancel();
        if (response.status === 200) break;
        if (Date.now() > deadline) {
          throw new Error(`instance ${server.port} never became healthy:\n${server.output()}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }
    proxy = startTcpProxy(servers.map((server) => server.port));
  } catch (error) {
    await stopAll();
    throw error;
  }
  const port = proxy.port;
  const url = `http://127.0.0.1:${port}`;
  options.onListening?.(url);
  let closing: Promise<void> | undefined;
  const close = () => closing ??= stopAll();
  return {
    url,
    wsUrl: `ws://127.0.0.1:${port}/v2/ws`,
    port,
    get engine() {
      return internals("engine");
    },
    get edge() {
      return internals("edge");
    },
    get metrics() {
      return internals("metrics");
    },
    get admin() {
      return internals("admin");
    },
    get operatorFeed() {
      return internals("operatorFeed");
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
