/**
 * A real cluster for end-to-end tests (the cluster research note's test plan, §6.2): a private redis-server and N
 * server processes (`main.ts` under the executables' permissions) in cluster mode with short
 * timers, each stopped by pid.
 *
 * @module
 */
import { type RedisServer, startRedis } from "./redis_server.ts";
import { type ServerProcess, spawnServer } from "./process.ts";
import { parseExposition } from "./exposition.ts";

/** A running cluster. */
export interface RealCluster extends AsyncDisposable {
  redis: RedisServer;
  servers: ServerProcess[];
  /** `ws://127.0.0.1:<port>/v2/ws` of server `i`. */
  wsUrl(i: number): string;
  /** `http://127.0.0.1:<port>` of server `i`. */
  httpUrl(i: number): string;
  /** Resolves when every server's grace window is over (T after the epoch's creation). */
  pastGrace(): Promise<void>;
  /**
   * Kills server `i` (SIGKILL, if still running) and starts it again with the same environment:
   * a new node (docs/spec/SERVER.md §8.2), on a new port (`wsUrl(i)` and `httpUrl(i)` follow).
   * Resolves once its `/v2/health` answers 200; rejects after 15 s.
   */
  restart(i: number): Promise<void>;
}

/** `T` of test clusters, seconds. */
export const TEST_TTL_SECS = 3;

/** Settings of {@linkcode startCluster} beyond the servers' environment. */
export interface ClusterOptions {
  /** `cluster.directory_ttl_secs` (`T`). @default TEST_TTL_SECS */
  ttlSecs?: number;
  /** `cluster.heartbeat_ms`. @default 250 */
  heartbeatMs?: number;
  /** `cluster.forward_timeout_ms`. @default 1500 */
  forwardTimeoutMs?: number;
  /** The servers' permission flags. @default RUNTIME_PERMISSIONS (the executables') */
  permissions?: readonly string[];
}

/**
 * The environment of test cluster server `i` (instance id `test-<i>`) on `redisUrl`: `T`,
 * heartbeat and forward timeout from `options`, file logging off, reconnection on, and per-address
 * and rate limits high enough for a test's clients.
 */
export function clusterEnv(
  i: number,
  redisUrl: string,
  options: ClusterOptions = {},
): Record<string, string> {
  return {
    SIGNAL_FISH_CLUSTER__REDIS_URL: redisUrl,
    SIGNAL_FISH_CLUSTER__INSTANCE_ID: `test-${i}`,
    SIGNAL_FISH_CLUSTER__DIRECTORY_TTL_SECS: String(options.ttlSecs ?? TEST_TTL_SECS),
    SIGNAL_FISH_CLUSTER__FORWARD_TIMEOUT_MS: String(options.forwardTimeoutMs ?? 1500),
    SIGNAL_FISH_CLUSTER__HEARTBEAT_MS: String(options.heartbeatMs ?? 250),
    SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING: "false",
    SIGNAL_FISH_SECURITY__MAX_CONNECTIONS_PER_IP: "1000",
    SIGNAL_FISH_RATE_LIMIT__MAX_ROOM_CREATIONS: "1000",
    SIGNAL_FISH_RATE_LIMIT__MAX_JOIN_ATTEMPTS: "1000",
    SIGNAL_FISH_SERVER__ENABLE_RECONNECTION: "true",
  };
}

/** Resolves once `server`'s `/v2/health` answers 200; throws with its output past `deadline` (ms). */
export async function waitHealthy(server: ServerProcess, deadline: number): Promise<void> {
  for (;;) {
    const response = await fetch(`http://127.0.0.1:${server.port}/v2/health`);
    await response.body?.cancel();
    if (response.status === 200) return;
    if (Date.now() > deadline) {
      throw new Error(`Server ${server.port} never became healthy:\n${server.output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Starts redis-server and `n` servers; resolves once every `/v2/health` answers 200. */
export async function startCluster(
  n = 3,
  env: Record<string, string> = {},
  options: ClusterOptions = {},
): Promise<RealCluster> {
  const ttlSecs = options.ttlSecs ?? TEST_TTL_SECS;
  const redis = await startRedis();
  const servers: ServerProcess[] = [];
  const spawn = (i: number) =>
    spawnServer({
      env: { ...clusterEnv(i, redis.url, options), ...env },
      ...(options.permissions ? { permissions: options.permissions } : {}),
    });
  // The epoch is created by the first node to register, before every server is healthy.
  let healthyAt = Date.now();
  try {
    for (let i = 0; i < n; i++) servers.push(await spawn(i));
    const deadline = Date.now() + 15_000;
    for (const server of servers) await waitHealthy(server, deadline);
    healthyAt = Date.now();
  } catch (error) {
    for (const server of servers) await server[Symbol.asyncDispose]();
    await redis.stop();
    throw error;
  }
  return {
    redis,
    servers,
    wsUrl: (i) => `ws://127.0.0.1:${servers[i]!.port}/v2/ws`,
    httpUrl: (i) => `http://127.0.0.1:${servers[i]!.port}`,
    pastGrace: async () => {
      const left = healthyAt + ttlSecs * 1000 + 200 - Date.now();
      if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
    },
    restart: async (i) => {
      await servers[i]![Symbol.asyncDispose]();
      servers[i] = await spawn(i);
      await waitHealthy(servers[i]!, Date.now() + 15_000);
    },
    async [Symbol.asyncDispose]() {
      for (const server of servers) await server[Symbol.asyncDispose]();
      await redis.stop();
    },
  };
}

/** The value of metric `name` (summed over label sets) on server `i`'s `/metrics/prom`. */
export async function metric(cluster: RealCluster, i: number, name: string): Promise<number> {
  const text = await (await fetch(`${cluster.httpUrl(i)}/metrics/prom`)).text();
  return parseExposition(text).get(name) ?? 0;
}

/** The status of server `i`'s `/v2/health`. */
export async function health(cluster: RealCluster, i: number): Promise<number> {
  const response = await fetch(`${cluster.httpUrl(i)}/v2/health`);
  await response.body?.cancel();
  return response.status;
}

/** Stops (SIGSTOP) process `pid`; the returned function resumes it (SIGCONT), once. */
export function pause(pid: number): () => void {
  Deno.kill(pid, "SIGSTOP");
  let resumed = false;
  return () => {
    if (resumed) return;
    resumed = true;
    Deno.kill(pid, "SIGCONT");
  };
}
