/**
 * Pins what `src/transport/websocket.ts` relies on to hand socket reads straight to `ws`' parser
 * and batches straight to the TCP handle (BENCHMARKS.md "Session 5: relay CPU per delivered
 * message"): the runtime's TCP handle (`onread` taken at `readStart` and called with an
 * `ArrayBuffer` of exactly the bytes read; `writeBuffer` in order, with
 * `streamBaseState[kLastWriteWasAsync]` telling a queued write), the `Readable` state read
 * without getters, and `ws`' own reading (one `data` listener, a synchronous parser in
 * `_receiver` whose messages one listener re-emits). When a runtime or `ws` upgrade changes any
 * of it, a test here fails before the relay silently takes the slower path or misreads a socket.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Writable } from "node:stream";
// @ts-types="../src/transport/ws.d.ts"
import { WebSocketServer } from "ws";
import process from "node:process";
import { directReads, directWrites } from "../src/transport/websocket.ts";
import { connect, guardedRoom, serve } from "./helpers.ts";
import { RawWebSocket } from "./raw_websocket.ts";

const encoder = new TextEncoder();

Deno.test("The runtime's TCP handle and ws read as the direct reads expect", async () => {
  const sent = ["a".repeat(10), "b".repeat(300), "c".repeat(5)];
  // Bytes on the wire: each a masked frame (2-byte header, 2 more past 125, 4-byte mask).
  const total = sent.reduce((sum, text) => sum + text.length + 6 + (text.length > 125 ? 2 : 0), 0);
  const seen = Promise.withResolvers<{ chunks: ArrayBuffer[]; listeners: string[] }>();
  const messages: string[] = [];
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 1024,
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols: () => false,
  });
  const server = createServer();
  server.on("upgrade", (request, raw: Socket, head: Buffer) => {
    wss.handleUpgrade(request, raw, head, (ws) => {
      ws.on("message", (data) => messages.push(Buffer.from(data).toString()));
      // ws feeds its parser from one `data` listener, and keeps the parser in `_receiver`.
      const listeners = raw.listeners("data").map((listener) => listener.name);
      const receiver = (ws as unknown as { _receiver?: unknown })._receiver;
      ok(receiver instanceof Writable, "ws keeps its Receiver (a Writable) in _receiver");
      // Its own parse step, run synchronously: events emitted at once, no extension.
      const parser = receiver as unknown as Record<string, unknown>;
      ok(typeof parser._write === "function" && parser._write !== Writable.prototype._write);
      equal(parser._allowSynchronousEvents, true);
      deepEqual(parser._extensions, {});
      // The parser's messages reach the WebSocket through one listener of ws' that re-emits them.
      const onMessage = (receiver as unknown as { listeners(event: string): unknown[] })
        .listeners("message");
      deepEqual(onMessage.map((listener) => (listener as () => void).name), [
        "receiverOnMessage",
      ]);
      ok(/\.emit\('message', data, isBinary\)/.test(String(onMessage[0])));
      // A single listener is the table's entry itself, which `hearParser` swaps in place.
      equal((parser._events as Record<string, unknown>).message, onMessage[0]);
      // The Readable state the direct reads check instead of its getters.
      const state = (raw as unknown as { _readableState: Record<string, unknown> })._readableState;
      equal(state.flowing, raw.readableFlowing);
      equal(state.length, raw.readableLength);
      equal(state.destroyed, raw.destroyed);
      const handle = (raw as unknown as { _handle: Record<string, unknown> })._handle;
      for (const name of ["onread", "readStop", "readStart"]) {
        equal(typeof handle[name], "function", `the TCP handle has ${name}`);
      }
      const chunks: ArrayBuffer[] = [];
      let read = 0;
      const plain = handle.onread as (bytes?: ArrayBuffer) => unknown;
      handle.onread = function (bytes?: ArrayBuffer) {
        if (bytes !== undefined) chunks.push(bytes.slice(0));
        read += bytes?.byteLength ?? 0;
        // Still the runtime's reader: ws gets every byte through it.
        const result = plain.apply(this, [bytes]);
        if (read >= total) seen.resolve({ chunks, listeners });
        return result;
      };
      (handle.readStop as () => void)();
      (handle.readStart as () => void)();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    await using socket = await RawWebSocket.open(port);
    for (const text of sent) await socket.sendText(text);
    const { chunks, listeners } = await seen.promise;
    deepEqual(listeners, ["socketOnData"]);
    // Each read is an ArrayBuffer of exactly the bytes read (not a larger buffer with an
    // offset): together exactly the frames sent, which ws parsed into the messages sent.
    ok(chunks.every((chunk) => chunk instanceof ArrayBuffer));
    equal(chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0), total);
    deepEqual(messages, sent);
  } finally {
    await new Promise((resolve) => server.close(resolve));
    server.closeAllConnections();
  }
});

Deno.test("The server reads plain WebSockets directly, and relays fragmented messages intact", async () => {
  await using server = await serve();
  const before = { ...directReads };
  const writesBefore = directWrites.sockets;
  const [a, b] = await guardedRoom(server);
  ok(directWrites.sockets - writesBefore >= 2, "both players' batches go straight to the handle");
  ok(directReads.sockets - before.sockets >= 2, "both players' reads go straight to the parser");
  ok(directReads.parsedAtOnce - before.parsedAtOnce >= 2, "and skip Writable.write");
  a.send({ type: "GameData", data: { data: { n: 1 } } });
  deepEqual((await b.next("GameData")).data.data, { n: 1 });
  // A message in several frames, from another client.
  await using raw = await RawWebSocket.open(server.port);
  const join = encoder.encode(
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":"Ren","room_code":"SPLIT1"}}',
  );
  await raw.sendText(join.subarray(0, 30), { fin: false });
  await raw.sendFrame(0, join.subarray(30));
  const reply = JSON.parse(new TextDecoder().decode((await raw.readFrame())!.payload));
  equal(reply.type, "RoomJoined");
  await using c = await connect(server);
  c.send({ type: "Ping" });
  equal((await c.next("Pong")).type, "Pong");
  await a.close();
  await b.close();
});

Deno.test("Protocol errors found by the direct reads still close with ws' codes", async () => {
  await using server = await serve((config) => config.security.max_message_size = 1024);
  const cases: [string, (socket: RawWebSocket) => Promise<void>, number][] = [
    ["invalid UTF-8", (s) => s.sendText(new Uint8Array([0x7b, 0xff, 0x7d])), 1007],
    ["unmasked frame", (s) => s.sendText("{}", { mask: false }), 1002],
    ["message over the limit across fragments", async (s) => {
      await s.sendText(new Uint8Array(600), { fin: false });
      await s.sendFrame(0, new Uint8Array(600));
    }, 1009],
  ];
  for (const [name, send, expected] of cases) {
    await using socket = await RawWebSocket.open(server.port);
    await send(socket);
    equal((await socket.readClose(3000)).code, expected, name);
  }
});

Deno.test("An upgraded socket's TCP handle writes as the direct writes expect", async () => {
  const { streamBaseState, kLastWriteWasAsync } = (process as unknown as {
    binding(name: string): { streamBaseState: Int32Array; kLastWriteWasAsync: number };
  }).binding("stream_wrap");
  ok(ArrayBuffer.isView(streamBaseState) && typeof kLastWriteWasAsync === "number");
  const big = 32 << 20; // more than loopback buffers take at once
  const done = Promise.withResolvers<number>();
  const flags: number[] = [];
  const server = createServer();
  server.on("upgrade", (_request, raw: Socket) => {
    const handle = (raw as unknown as { _handle: { constructor: { name: string } } })._handle;
    equal(handle.constructor.name, "TCPWrap");
    const write = (bytes: Uint8Array, oncomplete = (_status: number) => {}) => {
      equal(
        (handle as unknown as {
          writeBuffer(r: { oncomplete(status: number): void }, b: Uint8Array): number;
        }).writeBuffer({ oncomplete }, bytes),
        0,
      );
      flags.push(streamBaseState[kLastWriteWasAsync]!);
    };
    write(new Uint8Array(100).fill(1)); // taken at once
    write(new Uint8Array(big).fill(2), (status) => done.resolve(status)); // queued
    raw.write(new Uint8Array(10).fill(3)); // the stream's own write, after both
    raw.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(
      encoder.encode(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      ),
    );
    // Everything arrives, in the order handed to the handle and the stream.
    const counts = [0, 0, 0, 0];
    let order = 1;
    let inOrder = true;
    const buffer = new Uint8Array(1 << 16);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      for (let i = 0; i < n; i++) {
        const byte = buffer[i]!;
        if (byte < order) inOrder = false;
        order = byte;
        counts[byte]!++;
      }
    }
    conn.close();
    deepEqual(counts, [0, 100, big, 10]);
    ok(inOrder);
    deepEqual(flags, [0, 1], "the small write was taken at once, the large one queued");
    equal(await done.promise, 0, "the queued write completed");
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});
