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

/**
 * Sends one command to the Redis server on `port` over a fresh connection and returns its reply:
 * a simple or bulk string as text, an integer as a number, an error as a thrown Error (RESP2;
 * arrays are not parsed). For test setup and inspection (`CONFIG SET`, `INFO`).
 */
export async function redisCommand(port: number, ...args: string[]): Promise<string | number> {
  const encoder = new TextEncoder();
  const request = `*${args.length}\r\n` +
    args.map((arg) => `$${encoder.encode(arg).byteLength}\r\n${arg}\r\n`).join("");
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(encoder.encode(request));
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
      const text = new TextDecoder().decode(concat(chunks));
      const reply = parseReply(text);
      if (reply !== undefined) return reply;
    }
    throw new Error("Redis closed the connection without a reply");
  } finally {
    conn.close();
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

/** A complete RESP2 reply in `text`, or undefined when more is needed. */
function parseReply(text: string): string | number | undefined {
  const end = text.indexOf("\r\n");
  if (end < 0) return undefined;
  const head = text.slice(1, end);
  switch (text[0]) {
    case "+":
      return head;
    case "-":
      throw new Error(head);
    case ":":
      return Number(head);
    case "$": {
      const length = Number(head);
      if (length < 0) return "";
      const body = text.slice(end + 2);
      // Bulk strings here are ASCII (INFO, CONFIG): characters = bytes.
      return body.length >= length + 2 ? body.slice(0, length) : undefined;
    }
    default:
      throw new Error(`Unsupported reply: ${text.slice(0, 40)}`);
  }
}
