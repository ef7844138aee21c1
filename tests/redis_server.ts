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

/** A private CA and a certificate for 127.0.0.1 it signed, made with openssl in `dir`. */
export async function makeCertificates(dir: string): Promise<RedisTls> {
  const run = async (args: string[]) => {
    const { code, stderr } = await new Deno.Command("openssl", { args, cwd: dir, stderr: "piped" })
      .output();
    if (code !== 0) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(stderr)}`);
  };
  await run([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=Signal Fish test CA",
  ]);
  await run([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=127.0.0.1",
  ]);
  await Deno.writeTextFile(`${dir}/ext.cnf`, "subjectAltName=IP:127.0.0.1\n");
  await run([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  ]);
  return { cert: `${dir}/server.pem`, key: `${dir}/server.key`, ca: `${dir}/ca.pem` };
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
  // Its own working directory: a replica writes the primary's snapshot there during a full
  // sync even with saving off, and nothing may land in the caller's directory.
  const dir = Deno.makeTempDirSync({ prefix: "signal-fish-redis-" });
  let child: Deno.ChildProcess | undefined;
  const spawn = async () => {
    Deno.mkdirSync(dir, { recursive: true }); // again after a stop, which removes it
    child = new Deno.Command(REDIS_SERVER, {
      args: [
        ...portArgs,
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
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
  const stopAndClean = async () => {
    await stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  await spawn();
  return {
    url: `${tls ? "rediss" : "redis"}://127.0.0.1:${port}`,
    port,
    pid: () => child?.pid ?? -1,
    stop: stopAndClean,
    restart: async () => {
      await stop();
      await spawn();
    },
    [Symbol.asyncDispose]: stopAndClean,
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

/** A primary, its replica and one Redis Sentinel watching them (the README's HA setup, small). */
export interface SentinelSet extends AsyncDisposable {
  primary: RedisServer;
  replica: RedisServer;
  /** The sentinel's port (`cluster.redis_sentinels`: `127.0.0.1:<port>`). */
  sentinelPort: number;
  /** The monitored primary's name (`cluster.redis_sentinel_master`). */
  master: string;
  /** Asks the sentinel to fail over and waits (≤ 20 s) until it names the replica as primary. */
  failover(): Promise<void>;
  /** The `host:port` the sentinel names as primary now. */
  primaryAddress(): Promise<string>;
  stop(): Promise<void>;
}

/** How {@linkcode startSentinelSet} secures its servers. */
export interface SentinelSetOptions {
  /** `requirepass` of the primary, the replica and the sentinel (and the auth between them). */
  password?: string;
  /** TLS only, on every port (the replica and the sentinel reach the primary over TLS too). */
  tls?: RedisTls;
}

/**
 * Starts a primary, a replica of it and a sentinel (quorum 1, down after 1 s) on free ports,
 * and waits until the sentinel knows the replica and the replica has synced (so a failover
 * keeps what was written, but for the writes of its last moments, as in production). Stopped by pid like {@linkcode startRedis}.
 */
export async function startSentinelSet(options: SentinelSetOptions = {}): Promise<SentinelSet> {
  const { createClient } = await import("@redis/client");
  const { password, tls } = options;
  const auth = password === undefined ? [] : ["--requirepass", password, "--masterauth", password];
  const tlsReplication = tls ? ["--tls-replication", "yes"] : [];
  // No delay before a full sync (Redis 7's diskless sync waits 5 s by default for more replicas).
  const primary = await startRedis(
    [...auth, ...tlsReplication, "--repl-diskless-sync-delay", "0"],
    tls,
  );
  const replica = await startRedis(
    ["--replicaof", "127.0.0.1", String(primary.port), ...auth, ...tlsReplication],
    tls,
  );
  const sentinelPort = freePort();
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-sentinel-" });
  const master = "signal-fish-test";
  const config = `${dir}/sentinel.conf`;
  await Deno.writeTextFile(
    config,
    [
      ...(tls
        ? [
          "port 0",
          `tls-port ${sentinelPort}`,
          `tls-cert-file ${tls.cert}`,
          `tls-key-file ${tls.key}`,
          `tls-ca-cert-file ${tls.ca}`,
          "tls-auth-clients no",
          "tls-replication yes",
        ]
        : [`port ${sentinelPort}`]),
      "bind 127.0.0.1",
      `dir ${dir}`,
      `sentinel monitor ${master} 127.0.0.1 ${primary.port} 1`,
      `sentinel down-after-milliseconds ${master} 1000`,
      `sentinel failover-timeout ${master} 5000`,
      ...(password === undefined
        ? []
        : [`sentinel auth-pass ${master} ${password}`, `requirepass ${password}`]),
      "",
    ].join("\n"),
  );
  const sentinel = new Deno.Command(REDIS_SERVER, {
    args: [config, "--sentinel"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const client = createClient({
    url: `${tls ? "rediss" : "redis"}://127.0.0.1:${sentinelPort}`,
    ...(password === undefined ? {} : { password }),
    socket: {
      reconnectStrategy: 50,
      ...(tls ? { tls: true as const, ca: await Deno.readTextFile(tls.ca) } : {}),
    },
  });
  client.on("error", () => {});
  const stop = async () => {
    await client.destroy();
    try {
      sentinel.kill("SIGKILL");
    } catch { /* already gone */ }
    await sentinel.status;
    await replica.stop();
    await primary.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const primaryAddress = async () => {
    const reply = await client.sendCommand(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", master]);
    return (reply as unknown as string[]).join(":");
  };
  try {
    const deadline = Date.now() + 10_000;
    while (true) {
      try {
        if (!client.isOpen) await client.connect();
        const replicas = await client.sendCommand(["SENTINEL", "REPLICAS", master]) as unknown[];
        if (replicas.length > 0) break;
      } catch { /* not up yet */ }
      if (Date.now() > deadline) throw new Error("the sentinel never saw the replica");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // The replica has its first full copy: a failover before that promotes an empty replica
    // (the sentinel accepts it), losing everything written so far, the epoch key included.
    const replicaClient = createClient({
      url: replica.url,
      ...(password === undefined ? {} : { password }),
      socket: tls ? { tls: true as const, ca: await Deno.readTextFile(tls.ca) } : {},
    });
    replicaClient.on("error", () => {});
    try {
      await replicaClient.connect();
      while (
        !/^master_link_status:up\r?$/m.test(String(await replicaClient.info("replication")))
      ) {
        if (Date.now() > deadline) throw new Error("the replica never synced");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      await replicaClient.destroy();
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    primary,
    replica,
    sentinelPort,
    master,
    primaryAddress,
    failover: async () => {
      const target = `127.0.0.1:${replica.port}`;
      const deadline = Date.now() + 20_000;
      let asked = false;
      while ((await primaryAddress()) !== target) {
        if (Date.now() > deadline) throw new Error("no failover within 20 s");
        if (!asked) {
          // NOGOODSLAVE until the replica is in sync: ask again.
          asked = await client.sendCommand(["SENTINEL", "FAILOVER", master]).then(
            () => true,
            () => false,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
