/**
 * Why connections end (docs/spec/SERVER.md §6.3 #97, §7.4), over real sockets: each way a
 * connection ends is counted once in `signal_fish_connection_closes_total` with its close code,
 * initiator and, for 1006, cause, and its `closed` log line says the same. The series add up to
 * `signal_fish_connections_disconnections_total` (#3).
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { Buffer } from "node:buffer";
import net from "node:net";
import tls from "node:tls";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import type { SignalFishServer } from "../src/server.ts";
import { connect, joinRoom, serve } from "./helpers.ts";
import { inProcessOnly } from "./cluster_serve.ts";
import { parseExposition } from "./exposition.ts";
import { RawWebSocket } from "./raw_websocket.ts";
import { selfSigned } from "./certificates.ts";

const CLOSES = "signal_fish_connection_closes_total";

/** One `closed` line of the event log: its text and its fields. */
interface ClosedLine {
  text: string;
  properties: Record<string, unknown>;
}

/**
 * Captures the event log's `Connection … closed …` lines (category `signal-fish.hub`) while the
 * returned handle lives.
 */
async function closedLines(): Promise<ClosedLine[] & AsyncDisposable> {
  const lines: ClosedLine[] = [];
  await configure({
    sinks: {
      capture: (record: LogRecord) => {
        const text = record.message.map(String).join("");
        if (/^Connection \S+ closed /.test(text)) {
          lines.push({ text, properties: { ...record.properties } });
        }
      },
    },
    loggers: [
      { category: ["signal-fish", "hub"], lowestLevel: "info", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
    reset: true,
  });
  return Object.assign(lines, { [Symbol.asyncDispose]: () => reset() });
}

/** Waits (at most `timeoutMs`) for the `closed` line after the first `seen` lines. */
async function nextLine(lines: ClosedLine[], seen: number, timeoutMs = 5000): Promise<ClosedLine> {
  const deadline = Date.now() + timeoutMs;
  while (lines.length <= seen) {
    if (Date.now() > deadline) {
      throw new Error(`No closed line after ${seen} within ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  equal(lines.length, seen + 1, `one closed line, got ${JSON.stringify(lines.slice(seen))}`);
  return lines[seen]!;
}

/** The closes series of the server's exposition (labels as rendered → count) and the old total. */
async function scrapeCloses(
  server: SignalFishServer,
  client?: Deno.HttpClient,
): Promise<{ series: Record<string, number>; disconnections: number }> {
  const response = await fetch(`${server.url}/metrics/prom`, { client });
  equal(response.status, 200);
  const series: Record<string, number> = {};
  let disconnections = -1;
  for (const [key, value] of parseExposition(await response.text())) {
    if (key.startsWith(`${CLOSES}{`)) series[key.slice(CLOSES.length)] = value;
    if (key === "signal_fish_connections_disconnections_total") disconnections = value;
  }
  return { series, disconnections };
}

/**
 * Asserts the series are `expected` and add up to `connections_disconnections_total`; `client`
 * fetches from a TLS server.
 */
async function assertCloses(
  server: SignalFishServer,
  expected: Record<string, number>,
  client?: Deno.HttpClient,
) {
  const { series, disconnections } = await scrapeCloses(server, client);
  deepEqual(series, expected);
  const sum = Object.values(series).reduce((a, b) => a + b, 0);
  equal(sum, disconnections, "every disconnection counted once in connection_closes_total");
}

/** The fields of a `closed` line this file checks. */
function fields(line: ClosedLine): Record<string, unknown> {
  const { code, initiator, cause, error } = line.properties;
  return Object.fromEntries(
    Object.entries({ code, initiator, cause, error }).filter(([, value]) => value !== undefined),
  );
}

/**
 * Completes a WebSocket handshake on `socket` (already connected, plain or TLS): resolves once
 * the 101 head was read, with nothing after it unread.
 */
function handshake(socket: net.Socket, port: number): Promise<void> {
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  socket.write(
    `GET /v2/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  return new Promise((resolve, reject) => {
    let head = "";
    const onData = (chunk: Buffer) => {
      head += chunk.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      socket.off("data", onData);
      socket.pause();
      if (head.startsWith("HTTP/1.1 101")) resolve();
      else reject(new Error(`Upgrade refused: ${head.split("\r\n")[0]}`));
    };
    socket.on("data", onData);
    socket.once("error", reject);
  });
}

/** A `node:net` client upgraded to a WebSocket at `port`, which can reset its connection. */
async function netClient(port: number): Promise<net.Socket> {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {}); // its own reset
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  await handshake(socket, port);
  return socket;
}

/** A masked client text frame (RFC 6455 section 5.3) of `text` (under 126 bytes). */
function maskedText(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const frame = new Uint8Array(6 + payload.length);
  frame[0] = 0x81;
  frame[1] = 0x80 | payload.length;
  frame.set(mask, 2);
  payload.forEach((byte, i) => frame[6 + i] = byte ^ mask[i % 4]!);
  return frame;
}

Deno.test({
  name:
    "Each way a connection ends is counted once by code, initiator and cause, and its log line says so",
  ignore: inProcessOnly("it captures the server's log"),
  async fn() {
    await using lines = await closedLines();
    await using server = await serve((config) => config.server.ping_timeout = 2);
    let seen = 0;
    const expectLine = async (text: RegExp, expected: Record<string, unknown>) => {
      const line = await nextLine(lines, seen++);
      match(line.text, text);
      deepEqual(fields(line), expected);
    };

    // The client closes with 1000 (a browser's close()).
    const polite = await connect(server);
    await polite.close(1000);
    await expectLine(/^Connection \S+ closed \(1000, by client\)$/, {
      code: 1000,
      initiator: "client",
    });

    // A close frame without a code (1005), and one with a code outside the label set.
    for (const [payload, code] of [[[], 1005], [[0x0b, 0xb8], 3000]] as const) {
      await using raw = await RawWebSocket.open(server.port);
      await raw.sendFrame(8, new Uint8Array(payload));
      equal((await raw.readClose()).code, code);
      await expectLine(new RegExp(`closed \\(${code}, by client\\)$`), {
        code,
        initiator: "client",
      });
    }

    // The client ends its side of the TCP connection without a close frame: EOF.
    const quitter = await RawWebSocket.open(server.port);
    quitter.close();
    await expectLine(/closed \(1006, client ended it without a close frame\)$/, {
      code: 1006,
      initiator: "client",
      cause: "eof",
    });

    // The client resets its connection: the server's read fails with ECONNRESET.
    const resetter = await netClient(server.port);
    resetter.resetAndDestroy();
    await expectLine(/closed \(1006, reset by client: ECONNRESET\)$/, {
      code: 1006,
      initiator: "client",
      cause: "reset",
      error: "ECONNRESET",
    });

    // Protocol errors: the server closes with 1002 (an unmasked frame) and 1007 (not UTF-8), and
    // the connection ends for it at once, not when the client answers.
    for (
      const [send, code] of [
        [(raw: RawWebSocket) => raw.sendText("{}", { mask: false }), 1002],
        [(raw: RawWebSocket) => raw.sendText(new Uint8Array([0x7b, 0xff, 0x7d])), 1007],
      ] as const
    ) {
      await using raw = await RawWebSocket.open(server.port);
      await send(raw);
      await expectLine(new RegExp(`closed \\(${code}, by server\\)$`), {
        code,
        initiator: "server",
      });
      equal((await raw.readClose()).code, code);
    }

    // The idle timeout: a client that answers no ping is closed with 1001 after 2 s.
    await using silent = await RawWebSocket.open(server.port);
    equal((await silent.readClose(10_000)).code, 1001);
    await expectLine(/closed \(1001, by server\)$/, { code: 1001, initiator: "server" });

    await assertCloses(server, {
      '{code="1000",initiator="client"}': 1,
      '{code="1005",initiator="client"}': 1,
      '{code="other",initiator="client"}': 1,
      '{code="1006",initiator="client",cause="eof"}': 1,
      '{code="1006",initiator="client",cause="reset"}': 1,
      '{code="1002",initiator="server"}': 1,
      '{code="1007",initiator="server"}': 1,
      '{code="1001",initiator="server"}': 1,
    });
    equal(lines.length, 8);
  },
});

Deno.test({
  name: "A slow consumer is counted once as closed by the server with 1013, not again when dropped",
  ignore: inProcessOnly("it captures the server's log"),
  async fn() {
    await using lines = await closedLines();
    await using server = await serve((config) => config.websocket.max_buffered_bytes = 65536);
    await using sender = await connect(server);
    sender.send(joinRoom("SLOW01", "sender"));
    await sender.next("RoomJoined");
    // A player that never reads again.
    await using stalled = await RawWebSocket.open(server.port);
    await stalled.sendText(JSON.stringify(joinRoom("SLOW01", "stalled")));
    await sender.waitFor("PlayerJoined");
    const chunk = "x".repeat(32 * 1024);
    for (let sent = 0; lines.length === 0 && sent < 2048; sent++) {
      sender.send({ type: "GameData", data: { data: chunk } });
      await sender.expectNothingElse();
    }
    const line = await nextLine(lines, 0);
    match(line.text, /closed \(1013, by server\)$/);
    deepEqual(fields(line), { code: 1013, initiator: "server" });
    // Its close is never answered: the server drops the connection after the close grace
    // (docs/spec/SERVER.md §5.2), which is not a second close.
    const deadline = Date.now() + 8000;
    while ((await (await fetch(`${server.url}/v2/status`)).json()).connections > 1) {
      ok(Date.now() < deadline, "the stalled connection was never dropped");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    equal(lines.length, 1);
    await assertCloses(server, { '{code="1013",initiator="server"}': 1 });
  },
});

Deno.test({
  name: "A write that fails because the client reset the connection is counted as the server's",
  ignore: inProcessOnly("it captures the server's log"),
  async fn() {
    await using lines = await closedLines();
    await using server = await serve();
    // The client sends a Ping and resets at once: the server reads the Ping before the reset
    // (Linux hands queued data over first) and its Pong's write is the first to fail.
    const client = await netClient(server.port);
    client.write(maskedText(JSON.stringify({ type: "Ping" })), () => client.resetAndDestroy());
    const line = await nextLine(lines, 0);
    match(line.text, /closed \(1006, a write failed: (ECONNRESET|EPIPE)\)$/);
    deepEqual(fields(line), {
      code: 1006,
      initiator: "server",
      cause: "write_error",
      error: line.properties.error === "ECONNRESET" ? "ECONNRESET" : "EPIPE",
    });
    await assertCloses(server, { '{code="1006",initiator="server",cause="write_error"}': 1 });
  },
});

Deno.test({
  name: "Over TLS a client's reset and its EOF are told apart as over plain TCP",
  ignore: inProcessOnly("it captures the server's log"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "signal-fish-closes-" });
    try {
      const { cert, key } = await selfSigned(dir);
      await using lines = await closedLines();
      await using server = await serve((config) => {
        config.security.transport.tls.enabled = true;
        config.security.transport.tls.certificate_path = cert;
        config.security.transport.tls.private_key_path = key;
      });
      const ca = await Deno.readTextFile(cert);
      /** A TLS WebSocket client over a `node:net` socket that can reset the TCP connection. */
      const tlsClient = async () => {
        const tcp = net.connect(server.port, "127.0.0.1");
        tcp.on("error", () => {});
        const socket = tls.connect({ socket: tcp, ca, servername: "localhost" });
        socket.on("error", () => {});
        await new Promise<void>((resolve, reject) => {
          socket.once("secureConnect", resolve);
          socket.once("error", reject);
        });
        await handshake(socket, server.port);
        return { tcp, socket };
      };
      const resetter = await tlsClient();
      resetter.tcp.resetAndDestroy();
      const reset = await nextLine(lines, 0);
      deepEqual(fields(reset), {
        code: 1006,
        initiator: "client",
        cause: "reset",
        error: "ECONNRESET",
      });
      const quitter = await tlsClient();
      quitter.tcp.end();
      const eof = await nextLine(lines, 1);
      deepEqual(fields(eof), { code: 1006, initiator: "client", cause: "eof" });
      quitter.tcp.destroy();
      using client = Deno.createHttpClient({ caCerts: [ca] });
      await assertCloses(server, {
        '{code="1006",initiator="client",cause="reset"}': 1,
        '{code="1006",initiator="client",cause="eof"}': 1,
      }, client);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
