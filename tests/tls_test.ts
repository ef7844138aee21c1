/**
 * TLS (docs/spec/SERVER.md §3.10): HTTPS and WSS on the configured port with a PEM certificate and key.
 * The certificate is self-signed by openssl for 127.0.0.1; the client runs in a subprocess started
 * with `--cert`, the way to make Deno's WebSocket client trust an extra root.
 */
import { deepEqual, doesNotMatch, equal, match, ok, rejects } from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { tlsReadsTaken } from "../src/transport/tls_reads.ts";
import { selfSigned } from "./certificates.ts";
import { serve } from "./helpers.ts";
import { MAIN, runDeno, spawnServer } from "./process.ts";
import { FLOODER_FRAMES, FLOODERS, type SeveralFloods } from "./read_flood.ts";

/** A self-signed EC certificate for 127.0.0.1 valid 2 days, in `dir`: the paths of both files. */
async function selfSignedCertificate(dir: string): Promise<{ cert: string; key: string }> {
  const { cert, key } = await selfSigned(dir);
  return { cert, key };
}

/**
 * A server process with TLS on and more settings in `env`; its certificate and key live in a
 * temporary directory removed with it.
 */
async function tlsServer(env: Record<string, string> = {}) {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-tls-" });
  const removeDir = () => Deno.remove(dir, { recursive: true });
  try {
    const { cert, key } = await selfSignedCertificate(dir);
    const server = await spawnServer({
      permissions: ["--allow-all"],
      env: {
        SIGNAL_FISH_SECURITY__TRANSPORT__TLS__ENABLED: "true",
        SIGNAL_FISH_SECURITY__TRANSPORT__TLS__CERTIFICATE_PATH: cert,
        SIGNAL_FISH_SECURITY__TRANSPORT__TLS__PRIVATE_KEY_PATH: key,
        ...env,
      },
    });
    const stop = server[Symbol.asyncDispose].bind(server);
    const connect = async () =>
      await Deno.connectTls({
        hostname: "127.0.0.1",
        port: server.port,
        caCerts: [await Deno.readTextFile(cert)],
      });
    return Object.assign(server, {
      cert,
      connect,
      async [Symbol.asyncDispose]() {
        await stop();
        await removeDir();
      },
    });
  } catch (error) {
    await removeDir();
    throw error;
  }
}

/**
 * Runs `script` (a file beside this one) with `args` in a Deno process that trusts `cert` (`--cert`,
 * the way to make Deno's WebSocket client trust an extra root), and returns its output parsed as
 * JSON; fails when it exits with an error.
 */
async function runTrusting(cert: string, script: string, ...args: string[]): Promise<unknown> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--cert",
      cert,
      "--allow-net",
      // npm:ws, loaded with the server's modules, reads these two when it loads.
      "--allow-env=WS_NO_BUFFER_UTIL,WS_NO_UTF_8_VALIDATE",
      new URL(script, import.meta.url).pathname,
      ...args,
    ],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  equal(code, 0, new TextDecoder().decode(stderr));
  return JSON.parse(new TextDecoder().decode(stdout));
}

Deno.test("With TLS enabled a wss:// client completes a game session", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-tls-" });
  try {
    const { cert, key } = await selfSignedCertificate(dir);
    await using server = await serve((config) => {
      config.security.transport.tls.enabled = true;
      config.security.transport.tls.certificate_path = cert;
      config.security.transport.tls.private_key_path = key;
    });
    match(server.url, /^https:\/\//);
    const tlsConnections = tlsReadsTaken.connections;
    deepEqual(await runTrusting(cert, "./wss_client.ts", server.url), {
      health: 200,
      healthBody: "OK",
      relayed: { op: "hello-over-tls" },
    });
    // The health request's connection and both players' stop reading when paused and keep the
    // read budget (SECURITY.md "Reads of TLS connections"): the runtime's TLS socket still looks
    // as `tlsReads` expects.
    equal(tlsReadsTaken.connections - tlsConnections, 3);
    // Plain HTTP is not served on the TLS port.
    await rejects(fetch(`${server.url.replace("https", "http")}/v2/health`));
    // The served certificate's end, for an alert before it comes (docs/spec/SERVER.md §6.3 #83).
    const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(cert)] });
    try {
      const text = await (await fetch(`${server.url}/metrics/prom`, { client })).text();
      const found = text.match(/^signal_fish_tls_certificate_expiry_timestamp_seconds (\d+)$/m);
      ok(found, text);
      const end = new X509Certificate(await Deno.readTextFile(cert)).validTo;
      equal(Number(found[1]), Date.parse(end) / 1000);
    } finally {
      client.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("A TLS key file without a key makes startup fail", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-tls-" });
  try {
    const { cert } = await selfSignedCertificate(dir);
    await Deno.writeTextFile(`${dir}/empty.pem`, "not a key\n");
    await rejects(serve((config) => {
      config.security.transport.tls.enabled = true;
      config.security.transport.tls.certificate_path = cert;
      config.security.transport.tls.private_key_path = `${dir}/empty.pem`;
    }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs `main.ts` (all permissions) with `args` and TLS on with `cert` and `key` until it exits. */
function runMainWithTls(cert: string, key: string, args: string[]) {
  return runDeno(["run", "--allow-all", MAIN, ...args], {
    SIGNAL_FISH_SECURITY__TRANSPORT__TLS__ENABLED: "true",
    SIGNAL_FISH_SECURITY__TRANSPORT__TLS__CERTIFICATE_PATH: cert,
    SIGNAL_FISH_SECURITY__TRANSPORT__TLS__PRIVATE_KEY_PATH: key,
  });
}

Deno.test("A TLS key that is not the certificate's fails --validate-config and startup (exit 2), and the listener", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-tls-" });
  try {
    await Deno.mkdir(`${dir}/a`);
    await Deno.mkdir(`${dir}/b`);
    const a = await selfSignedCertificate(`${dir}/a`);
    const b = await selfSignedCertificate(`${dir}/b`);
    const rule = `security.transport.tls.private_key_path = "${b.key}" (from ` +
      "SIGNAL_FISH_SECURITY__TRANSPORT__TLS__PRIVATE_KEY_PATH): is not the private key of the " +
      "certificate in security.transport.tls.certificate_path (every TLS handshake would fail)\n";
    // Before: validation passed, the server said it was running and every handshake failed.
    for (const args of [["--validate-config"], ["--port", "0"]]) {
      const run = await runMainWithTls(a.cert, b.key, args);
      equal(run.code, 2, `${args}: ${run.stderr}`);
      ok(run.stderr.includes(rule), run.stderr);
      doesNotMatch(run.stderr, /is running/);
    }
    // Started without the configuration check, the listener refuses the pair too.
    await rejects(
      serve((config) => {
        config.security.transport.tls.enabled = true;
        config.security.transport.tls.certificate_path = a.cert;
        config.security.transport.tls.private_key_path = b.key;
      }),
      /Cannot serve TLS: the private key is not the private key of the certificate/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("A TLS certificate that expires within 14 days is warned about by --validate-config and at startup", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-tls-" });
  try {
    const { cert, key } = await selfSignedCertificate(dir); // valid for 2 days
    const warning = new RegExp(
      String.raw`Warning: security\.transport\.tls\.certificate_path "[^"]+/localhost\.crt": the ` +
        String.raw`certificate expires on \S+Z, in (1 day|less than a day): renew it\n`,
    );
    const validated = await runMainWithTls(cert, key, ["--validate-config"]);
    equal(validated.code, 0, validated.stderr);
    match(validated.stderr, warning);
    // Serving prints it too, before it starts.
    await using server = await tlsServer();
    match(server.output(), warning);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "One connection's reads over TLS: a client sending faster than its frames are handled does not hold a bystander's Ping back for its whole flood",
  sanitizeResources: false, // the subprocess' pipes close with it
  async fn() {
    await using server = await tlsServer();
    // The clients in a process of their own, which trusts the certificate (tests/read_flood.ts).
    // Before: the flooder's Pong came first, the instance reading the flooder's TCP handle for
    // as long as it had data (the TLS socket's own pause does not stop that handle).
    deepEqual(
      await runTrusting(server.cert, "./read_flood.ts", `wss://127.0.0.1:${server.port}/v2/ws`),
      ["bystander", "flooder"],
    );
  },
});

Deno.test({
  name:
    "One connection's reads over TLS: several clients flooding at once hold neither a bystander's Pings nor each other's first frames back",
  sanitizeResources: false, // the subprocess' pipes close with it
  async fn() {
    await using server = await tlsServer();
    // Most flood frames are read once the turn has spent its budget, kept and handed to node:tls
    // later: all of them answered says those reads arrived whole (tests/read_flood.ts).
    const seen = await runTrusting(
      server.cert,
      "./read_flood.ts",
      `wss://127.0.0.1:${server.port}/v2/ws`,
      "several",
    ) as SeveralFloods;
    equal(seen.total, FLOODERS * FLOODER_FRAMES);
    ok(seen.beforeLast < seen.total / 4, JSON.stringify(seen));
    ok(seen.whileWaiting < seen.total / 8, JSON.stringify(seen));
  },
});

/**
 * Writes 1-MiB chunks on `conn` until the server drops the connection (at most `limitMs`), and
 * returns the bytes the writes took.
 */
async function writtenUntilDropped(conn: Deno.TlsConn, limitMs: number): Promise<number> {
  const chunk = new Uint8Array(1 << 20);
  let written = 0;
  const started = Date.now();
  try {
    while (Date.now() - started < limitMs) written += await conn.write(chunk);
  } catch {
    // Dropped by the server.
  }
  try {
    conn.close();
  } catch { /* closed */ }
  ok(Date.now() - started < limitMs, "the server dropped the connection");
  return written;
}

Deno.test({
  name:
    "A TLS connection refused for a too-large message is read no further: its client cannot push more into the server while it is closed",
  sanitizeResources: false, // the subprocess' pipes close with it
  async fn() {
    await using server = await tlsServer();
    const conn = await server.connect();
    await conn.write(new TextEncoder().encode(
      "GET /v2/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ));
    const head = new Uint8Array(4096);
    const read = await conn.read(head);
    equal(
      new TextDecoder().decode(head.subarray(0, read ?? 0)).split("\r\n")[0],
      "HTTP/1.1 101 Switching Protocols",
    );
    // A masked binary frame announcing 100 MB: past max_message_size, so the server answers
    // MESSAGE_TOO_LARGE, closes with 1009 and reads nothing more; it drops the connection 2 s
    // later, as this client never answers the close. Meanwhile the client writes all it can.
    await conn.write(
      new Uint8Array([0x82, 0xff, 0, 0, 0, 0, 0x05, 0xf5, 0xe1, 0x00, 1, 2, 3, 4]),
    );
    const written = await writtenUntilDropped(conn, 10_000);
    // Before: the connection's TCP handle went on reading while the TLS socket was paused: this
    // client wrote 264–277 MiB in those 2 s (a faster one outside the tests 2.5 GiB, the
    // server's RSS 79 → 394 MB). Now what the socket buffers hold: 3.7 MiB.
    ok(written < 16 * 2 ** 20, `${(written / 2 ** 20).toFixed(0)} MiB written`);
  },
});

Deno.test({
  name:
    "An HTTPS request whose body the server does not read cannot push more into the server than the socket buffers hold",
  sanitizeResources: false, // the subprocess' pipes close with it
  async fn() {
    // The connection is dropped after a second without reads (security.http.idle_timeout_secs).
    await using server = await tlsServer({
      SIGNAL_FISH_SECURITY__HTTP__HEADER_TIMEOUT_SECS: "1",
      SIGNAL_FISH_SECURITY__HTTP__IDLE_TIMEOUT_SECS: "1",
    });
    for (const path of ["/v2/health", "/v2/ws", "/no-such-route"]) {
      const conn = await server.connect();
      await conn.write(new TextEncoder().encode(
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000000\r\n\r\n`,
      ));
      const written = await writtenUntilDropped(conn, 10_000);
      // Before: the TLS socket paused, its TCP handle went on reading into memory: 543–559 MiB
      // in the 5 s of the default timeout, the server's RSS 77 → 930 MB, for one connection
      // (32 pending per address).
      ok(written < 16 * 2 ** 20, `${path}: ${(written / 2 ** 20).toFixed(0)} MiB written`);
    }
  },
});

/** The first bytes a TLS client sends (its ClientHello), as Deno's client writes them. */
async function clientHello(): Promise<Uint8Array> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = Deno.connectTls({ hostname: "127.0.0.1", port: listener.addr.port })
    .then((conn) => conn.handshake().finally(() => conn.close()))
    .catch(() => {}); // the handshake fails when the capture closes
  const conn = await listener.accept();
  const buffer = new Uint8Array(16_384);
  const n = await conn.read(buffer);
  conn.close();
  listener.close();
  await client;
  ok(n !== null && n > 5 && buffer[0] === 0x16, "a TLS handshake record");
  return buffer.slice(0, n);
}

/**
 * How long after `since` (ms since the epoch; now unless given) the server closes `conn`, ms;
 * fails past `boundMs` after `since`.
 */
async function closedWithin(
  conn: Deno.Conn,
  boundMs: number,
  since: number = Date.now(),
): Promise<number> {
  const timer = setTimeout(() => conn.close(), Math.max(0, since + boundMs - Date.now()));
  try {
    while ((await conn.read(new Uint8Array(4096))) !== null);
  } catch {
    // Reset by the server, or closed by the timer (then the bound below fails).
  } finally {
    clearTimeout(timer);
  }
  const elapsed = Date.now() - since;
  ok(elapsed < boundMs, `still open after ${elapsed} ms`);
  try {
    conn.close();
  } catch { /* closed */ }
  return elapsed;
}

Deno.test({
  name:
    "A TLS handshake not over within security.http.tls_handshake_timeout_secs is closed, however its bytes come; one that is over is not",
  sanitizeResources: false, // the subprocess' pipes close with it
  async fn() {
    // The idle and header timeouts far beyond the bound: only the handshake timeout closes them.
    await using server = await tlsServer({
      SIGNAL_FISH_SECURITY__HTTP__TLS_HANDSHAKE_TIMEOUT_SECS: "1",
      SIGNAL_FISH_SECURITY__HTTP__IDLE_TIMEOUT_SECS: "30",
      SIGNAL_FISH_SECURITY__HTTP__HEADER_TIMEOUT_SECS: "30",
    });
    const hello = await clientHello();
    // When each connection was opened: before its accept, so before its handshake timer starts.
    // The closes are timed from there, not from when the waiting starts, which comes after the
    // completed handshake below (slow on a loaded machine).
    const openedAt = new Map<Deno.Conn, number>();
    const tcp = async () => {
      const at = Date.now();
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      openedAt.set(conn, at);
      return conn;
    };
    const silent = await tcp();
    const partial = await tcp();
    await partial.write(hello.subarray(0, 10));
    const stalled = await tcp();
    await stalled.write(hello);
    // One byte every 100 ms: the whole ClientHello would take far longer than the bound.
    const trickled = await tcp();
    let trickling = true;
    const trickle = (async () => {
      for (let i = 0; trickling && i < hello.length; i++) {
        await trickled.write(hello.subarray(i, i + 1)).catch(() => trickling = false);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    // A handshake that is over in time keeps its connection past the bound.
    const done = await server.connect();
    await done.handshake();
    // Before: each held until the idle timer plus the handshake time, 31 s here.
    const closed = await Promise.all(
      [silent, partial, stalled, trickled].map((conn) =>
        closedWithin(conn, 4_000, openedAt.get(conn))
      ),
    );
    trickling = false;
    await trickle;
    for (const elapsed of closed) ok(elapsed >= 800, `closed after ${elapsed} ms`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await done.write(
      new TextEncoder().encode(
        "GET /v2/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
      ),
    );
    const answer = new Uint8Array(4096);
    const n = await done.read(answer);
    match(new TextDecoder().decode(answer.subarray(0, n ?? 0)), /^HTTP\/1\.1 200 /);
    done.close();
  },
});
