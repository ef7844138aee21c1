/**
 * The end-to-end suite through a load balancer (issue 15 item 3, docs/spec/SERVER.md §8.6 "nothing
 * different in normal operation"): with `SIGNAL_FISH_TEST_CLUSTER=<n>` in the environment,
 * `serve()` of tests/helpers.ts starts, instead of one in-process server, a private redis-server,
 * `n` server processes (`main.ts`) in cluster mode with the configuration the test asked for, and a
 * round-robin TCP proxy (tests/tcp_proxy.ts) in front of them. The returned server's `url`,
 * `wsUrl` and `port` are the proxy's, so consecutive connections of a test land on different
 * instances. The in-process internals (`engine`, `edge`, `metrics`, `admin`, `operatorFeed`) do
 * not exist as such: in process mode `engine` and `edge` are a read-only view over the
 * instances (`clusterView`); anything else throws. Tests that cannot run behind the proxy opt out
 * with {@linkcode notInCluster} (a difference docs/spec/SERVER.md §8.6 allows, or the proxy's own
 * buffering) or {@linkcode clusterGap} (a known cluster bug), each with a reason.
 *
 * @module
 */
import type { Config } from "../src/config/schema.ts";
import type { Engine } from "../src/engine/engine.ts";
import type { Edge } from "../src/transport/edge.ts";
import { type SignalFishServer, type StartOptions, startServer } from "../src/server.ts";
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
  return ignored(TEST_CLUSTER > 0, reason);
}

/** Says on stderr why a test is ignored (deno test only prints "ignored"). */
function ignored(ignore: boolean, reason: string): boolean {
  if (ignore) console.error(`ignored behind the cluster proxy (${TEST_CLUSTER_MODE}): ${reason}`);
  return ignore;
}

/**
 * Where the instances run, `SIGNAL_FISH_TEST_CLUSTER_MODE`: `inprocess` (default: `startServer`
 * in the test process, each instance with its own cluster node, its own two Redis connections
 * and its own listener; ~0.2 s per test) or `process` (`main.ts` subprocesses; ~1 s more per
 * test for three process starts, and tests that read internals, pass `onEvent` or set values
 * below the file schema's minimums cannot run there).
 */
export const TEST_CLUSTER_MODE: "process" | "inprocess" =
  Deno.env.get("SIGNAL_FISH_TEST_CLUSTER_MODE") === "process" ? "process" : "inprocess";

/**
 * `ignore` value for a test that needs the instances in the test process (it reads `engine` or
 * `edge`, passes `onEvent`, or sets a value the configuration file would refuse): true in
 * `process` mode only. `reason` says which.
 */
export function inProcessOnly(reason: string): boolean {
  if (reason.trim().length < 10) throw new Error("an opt-out needs a reason");
  return ignored(TEST_CLUSTER > 0 && TEST_CLUSTER_MODE === "process", reason);
}

/**
 * `ignore` value for a test that meets a known cluster gap: behaviour §8 promises (or single
 * instance has) that cluster mode does not have yet. True in cluster mode. Each use is a bug to
 * fix, listed in the report of issue 15, not a permanent exemption.
 */
export function clusterGap(reason: string): boolean {
  return notInCluster(reason);
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

/**
 * The counters of docs/spec/SERVER.md §6.3 that only move when an envelope, a publish, a request
 * or Redis's data was lost, a node died or a code was claimed twice. The proxied suite injects none
 * of these faults, so each must read 0 when its cluster stops: a non-zero one is a cluster bug the
 * clients' assertions may not show (a resync that happened to replay what the test expected).
 */
const FAULT_COUNTERS = [
  "signal_fish_cluster_sequence_gaps_total",
  "signal_fish_cluster_duplicate_envelopes_total",
  "signal_fish_cluster_publishes_unanswered_total",
  "signal_fish_cluster_resyncs_total",
  "signal_fish_cluster_resync_closes_total",
  "signal_fish_cluster_bind_timeouts_total",
  "signal_fish_cluster_binds_expired_total",
  "signal_fish_cluster_code_conflicts_total",
  "signal_fish_cluster_epoch_changes_total",
  "signal_fish_cluster_peer_deaths_total",
  "signal_fish_cluster_redis_reconnects_total",
] as const;

/**
 * Reads {@linkcode FAULT_COUNTERS} from the instance's Prometheus exposition (`GET /metrics/prom`, with
 * the configured metrics token when the test set one) and returns "" when all are 0, else one line
 * naming the instance and each non-zero counter. An instance that does not answer (a test stopped
 * it, or refuses metrics) is not read.
 */
async function faultCounts(instance: Instance, config: Config): Promise<string> {
  const headers: Record<string, string> = {};
  const token = config.security.metrics_auth_token;
  if (config.security.require_metrics_auth && token) headers.authorization = `Bearer ${token}`;
  let text: string;
  try {
    const response = await fetch(`http://127.0.0.1:${instance.port}/metrics/prom`, {
      headers,
      signal: AbortSignal.timeout(5_000),
    });
    text = await response.text();
    if (response.status !== 200) return "";
  } catch {
    return "";
  }
  const nonZero: string[] = [];
  for (const name of FAULT_COUNTERS) {
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    if (line === undefined) return `instance ${instance.port}: ${name} missing from /metrics`;
    const value = Number(line.slice(name.length + 1));
    if (value !== 0) nonZero.push(`${name} ${value}`);
  }
  return nonZero.length > 0 ? `instance ${instance.port}: ${nonZero.join(", ")}` : "";
}

/** One instance of a proxied cluster. */
interface Instance {
  port: number;
  /** Its log so far (processes) or "" (in process). */
  output(): string;
  /** Graceful shutdown (SIGTERM or `close()`), killed after {@linkcode EXIT_TIMEOUT_MS}. */
  stop(): Promise<void>;
  /** The in-process server, when there is one. */
  server?: SignalFishServer;
}

async function startProcess(configPath: string, host: string, id: string): Promise<Instance> {
  const server: ServerProcess = await spawnServer({
    args: ["--config", configPath, "--host", host],
    env: { SIGNAL_FISH_CLUSTER__INSTANCE_ID: id },
    permissions: ["--allow-net", "--allow-read", "--allow-write", `--allow-env=${ENV_ALLOW}`],
  });
  return {
    port: server.port,
    output: server.output,
    stop: async () => {
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
    },
  };
}

async function startInProcess(
  config: Config,
  options: StartOptions,
  id: string,
): Promise<Instance> {
  const own = structuredClone(config);
  own.cluster.instance_id = id;
  const server = await startServer(own, {
    hostname: "127.0.0.1",
    ...options,
    onListening: undefined,
  });
  return { port: server.port, output: () => "", stop: () => server.close(), server };
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
  const inProcess = TEST_CLUSTER_MODE === "inprocess";
  if (!inProcess && (options.onEvent || options.logStats)) {
    internals(options.onEvent ? "onEvent" : "logStats");
  }
  const clusterConfig = structuredClone(config);
  if (config.cluster.drain_timeout_secs === 900) clusterConfig.cluster.drain_timeout_secs = 0;
  const redis = await startRedis();
  const instances: Instance[] = [];
  let configPath: string | undefined;
  let proxy: ReturnType<typeof startTcpProxy> | undefined;
  const stopAll = async () => {
    const faults = await Promise.all(instances.map((instance) => faultCounts(instance, config)));
    await Promise.all(instances.map((instance) => instance.stop()));
    await proxy?.close();
    await redis.stop();
    if (configPath) await Deno.remove(configPath).catch(() => {});
    const found = faults.filter((line) => line !== "");
    if (found.length > 0) {
      throw new Error(`the cluster recorded faults no test injected:\n${found.join("\n")}`);
    }
  };
  try {
    if (config.cluster.redis_url === null) clusterConfig.cluster.redis_url = redis.url;
    await seedEpoch(
      redis.port,
      `${clusterConfig.cluster.key_prefix}epoch`,
      10 * clusterConfig.cluster.directory_ttl_secs * 1000,
    );
    let start: (i: number) => Promise<Instance>;
    if (inProcess) {
      start = (i) => startInProcess(clusterConfig, options, `proxied-${i}`);
    } else {
      configPath = await Deno.makeTempFile({ prefix: "signal-fish-cluster-", suffix: ".json" });
      await Deno.writeTextFile(configPath, JSON.stringify(clusterConfig));
      start = (i) => startProcess(configPath!, options.hostname ?? "127.0.0.1", `proxied-${i}`);
    }
    const started = await Promise.allSettled(Array.from({ length: n }, (_, i) => start(i)));
    for (const outcome of started) {
      if (outcome.status === "fulfilled") instances.push(outcome.value);
    }
    const failed = started.find((outcome) => outcome.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const deadline = Date.now() + HEALTHY_TIMEOUT_MS;
    for (const instance of instances) {
      for (;;) {
        const response = await fetch(`http://127.0.0.1:${instance.port}/v2/health`);
        await response.body?.cancel();
        if (response.status === 200) break;
        if (Date.now() > deadline) {
          throw new Error(`instance ${instance.port} never became healthy:\n${instance.output()}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }
    proxy = startTcpProxy(instances.map((instance) => instance.port));
  } catch (error) {
    await stopAll();
    throw error;
  }
  const port = proxy.port;
  const url = `http://127.0.0.1:${port}`;
  options.onListening?.(url);
  let closing: Promise<void> | undefined;
  const close = () => closing ??= stopAll();
  const servers = instances.flatMap((instance) => instance.server ? [instance.server] : []);
  const view = servers.length > 0 ? clusterView(servers) : undefined;
  return {
    url,
    wsUrl: `ws://127.0.0.1:${port}/v2/ws`,
    port,
    get engine() {
      return view?.engine ?? internals("engine");
    },
    get edge() {
      return view?.edge ?? internals("edge");
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

/**
 * The cluster seen as one server, in process mode only, for the read-only checks end-to-end tests
 * make: `engine.lookup()` (the room's home answers), `engine.stats()` (sums over the instances),
 * `edge.size` (sum) and `edge.close()` (the instance holding the connection). Anything else
 * throws.
 */
function clusterView(servers: SignalFishServer[]): Pick<SignalFishServer, "engine" | "edge"> {
  const engine = {
    lookup: (...args: Parameters<Engine["lookup"]>) => {
      for (const server of servers) {
        const found = server.engine.lookup(...args);
        if (found) return found;
      }
      return undefined;
    },
    stats: () => {
      const total: Record<string, number> = {};
      for (const server of servers) {
        for (const [key, value] of Object.entries(server.engine.stats())) {
          if (typeof value === "number") total[key] = (total[key] ?? 0) + value;
        }
      }
      return total;
    },
  };
  const edge = {
    get size() {
      return servers.reduce((sum, server) => sum + server.edge.size, 0);
    },
    close: (...args: Parameters<Edge["close"]>) => {
      for (const server of servers) server.edge.close(...args);
    },
  };
  const only = <T extends object>(name: string, target: T) =>
    new Proxy(target, {
      get: (object, key) =>
        key in object ? Reflect.get(object, key) : internals(`${name}.${String(key)}`),
    }) as never;
  return { engine: only("engine", engine), edge: only("edge", edge) };
}
