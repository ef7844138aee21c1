/**
 * A private `redis-server` per test (the cluster research note's test plan, §6.2): started on a free loopback port
 * with persistence off, stopped by its pid. CI (`.ci/run`) installs the Debian package
 * `redis-server` and sets `SIGNAL_FISH_REQUIRE_REDIS=1`, so a missing binary fails the Redis
 * tests there instead of skipping them.
 *
 * @module
 */

/** Path of the redis-server binary. */
export const REDIS_SERVER = "/usr/bin/redis-server";

/** True when redis-server is installed. */
export const HAVE_REDIS = await Deno.stat(REDIS_SERVER).then(() => true, () => false);

/** `ignore` flag for Redis tests: skip without redis-server unless CI requires it. */
export const IGNORE_WITHOUT_REDIS = !HAVE_REDIS &&
  Deno.env.get("SIGNAL_FISH_REQUIRE_REDIS") !== "1";

/** A running redis-server. */
export interface RedisServer extends AsyncDisposable {
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** The process id (for SIGSTOP/SIGCONT in chaos tests). */
  pid(): number;
  /** Kills the server (SIGKILL) and waits for it to exit. Idempotent. */
  stop(): Promise<void>;
  /** Starts it again, empty, on the same port (after {@linkcode stop}). */
  restart(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (the OS picks it; a race with another process is unlikely). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** PEM files for a TLS-only redis-server (`rediss://`). */
export interface RedisTls {
  cert: string;
  key: string;
  ca: string;
}

/**
 * Starts a redis-server on a free port and waits until it accepts connections (≤ 10 s). With
 * `tls`, the port speaks TLS only (its `url` is `rediss://`).
 */
export async function startRedis(
  extraArgs: string[] = [],
  tls?: RedisTls,
): Promise<RedisServer> {
  const port = freePort();
  const portArgs = tls
    ? [
      "--port",
      "0",
      "--tls-port",
      String(port),
      "--tls-cert-file",
      tls.cert,
      "--tls-key-file",
      tls.key,
      "--tls-ca-cert-file",
      tls.ca,
      "--tls-auth-clients",
      "no",
    ]
    : ["--port", String(port)];
  let child: Deno.ChildProcess | undefined;
  const spawn = async () => {
    child = new Deno.Command(REDIS_SERVER, {
      args: [
        ...portArgs,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        ...extraArgs,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 10_000;
    while (true) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.close();
        return;
      } catch (error) {
        if (Date.now() > deadline) {
          throw new Error(`redis-server did not start on port ${port}`, { cause: error });
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running) return;
    try {
      running.kill("SIGKILL");
    } catch { /* already gone */ }
    await running.status;
  };
  await spawn();
  return {
    url: `${tls ? "rediss" : "redis"}://127.0.0.1:${port}`,
    port,
    pid: () => child?.pid ?? -1,
    stop,
    restart: async () => {
      await stop();
      await spawn();
    },
    [Symbol.asyncDispose]: stop,
  };
}
