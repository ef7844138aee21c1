import { deepEqual, equal, ok } from "node:assert/strict";
import { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";
import {
  abnormalEnd,
  CLOSE_GRACE_MS,
  encodeFrames,
  PING_FRAME_BYTES,
  SocketPeer,
} from "./websocket.ts";
import { LocalPeers } from "./local_peers.ts";

/** A stand-in for a server-side WebSocket that records what it is sent. */
class RecordingSocket {
  readyState = 1; // OPEN
  bufferedAmount = 0;
  sent: (string | Uint8Array)[] = [];
  /** When set, the peer reads nothing: every frame stays in the runtime's buffer. */
  stalled = false;
  send(frame: string | Uint8Array): void {
    this.sent.push(frame);
    if (this.stalled) {
      this.bufferedAmount += typeof frame === "string"
        ? new TextEncoder().encode(frame).length
        : frame.byteLength;
    }
  }
  close(): void {
    this.readyState = 3;
  }
  /** An empty ping: 2 bytes in the runtime's buffer while stalled. */
  ping(): void {
    this.sent.push("<ping>");
    if (this.stalled) this.bufferedAmount += 2;
  }
  addEventListener(): void {}
}

function peer(options: { enableBatching: boolean; batchSize?: number; max?: number }) {
  const socket = new RecordingSocket();
  const sockPeer = new SocketPeer(socket as unknown as WebSocket, {
    maxBufferedBytes: options.max ?? 1 << 20,
    enableBatching: options.enableBatching,
    batchSize: options.batchSize ?? 10,
  });
  return { socket, peer: sockPeer };
}

Deno.test("SocketPeer with batching queues frames until flushed or batchSize is reached", () => {
  const { socket, peer: p } = peer({ enableBatching: true, batchSize: 3 });
  equal(p.send("a"), undefined);
  equal(p.send("b"), undefined);
  deepEqual(socket.sent, []);
  p.flush!();
  deepEqual(socket.sent, ["a", "b"]);
  p.send("c");
  p.send("d");
  p.send("e"); // the third queued frame writes the batch at once
  deepEqual(socket.sent, ["a", "b", "c", "d", "e"]);
  p.flush!();
  equal(socket.sent.length, 5, "nothing left to write");
});

Deno.test("SocketPeer without batching writes at once and has nothing to flush", () => {
  const { socket, peer: p } = peer({ enableBatching: false });
  equal(p.flush, undefined);
  p.send("a");
  deepEqual(socket.sent, ["a"]);
  // LocalPeers then keeps no list of peers to flush, and delivery still works.
  const fanout = new LocalPeers();
  fanout.attach("c1", p);
  equal(fanout.deliver("b", ["c1"]), undefined);
  fanout.flush();
  deepEqual(socket.sent, ["a", "b"]);
});

Deno.test("SocketPeer refuses frames to a socket that is not open, and past its budget", () => {
  const closed = peer({ enableBatching: true });
  closed.socket.readyState = 2; // CLOSING
  deepEqual(closed.peer.send("x"), { reason: "closed" });

  const slow = peer({ enableBatching: true, batchSize: 100, max: 65_536 });
  const frame = "x".repeat(30_000);
  equal(slow.peer.send(frame), undefined); // a frame into an empty buffer is always taken
  equal(slow.peer.send(frame), undefined);
  deepEqual(slow.peer.send(frame), { reason: "overflow", dropped: 3 });
  slow.peer.flush!();
  deepEqual(slow.socket.sent, [], "the queue was discarded");
  // Bytes the runtime has not written yet count too: a peer that reads nothing fills them.
  const stalled = peer({ enableBatching: true, max: 65_536 });
  stalled.socket.stalled = true;
  stalled.peer.send(frame);
  stalled.peer.flush!();
  equal(stalled.socket.bufferedAmount, 30_000);
  equal(stalled.peer.send(frame), undefined); // 30,000 + 30,000 fits
  stalled.peer.flush!();
  deepEqual(stalled.peer.send("z".repeat(10_000)), { reason: "overflow", dropped: 1 });
  equal(stalled.socket.sent.length, 2);
});

Deno.test("SocketPeer.pendingBytes() is the runtime's unwritten bytes plus the queue's UTF-8 bytes", () => {
  const { socket, peer: p } = peer({ enableBatching: true, batchSize: 100 });
  equal(p.pendingBytes(), 0);
  socket.stalled = true;
  p.send("ab");
  p.flush!();
  p.send("é"); // 2 bytes in UTF-8
  p.send(new Uint8Array(5));
  equal(p.pendingBytes(), 2 + 2 + 5);
  // LocalPeers adds them up over the peers that have any.
  const fanout = new LocalPeers();
  fanout.attach("c1", p);
  fanout.attach("c2", peer({ enableBatching: true }).peer);
  deepEqual(fanout.pending(), { total: 9, peers: [{ id: "c1", bytes: 9 }] });
});

/** Parses unmasked server frames back into [opcode, payload] pairs. */
function parseFrames(bytes: Uint8Array): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  for (let pos = 0; pos < bytes.length;) {
    equal(bytes[pos]! & 0xf0, 0x80, "FIN set, no RSV bits");
    const opcode = bytes[pos]! & 0x0f;
    let length = bytes[pos + 1]!;
    equal(length & 0x80, 0, "server frames are not masked");
    pos += 2;
    if (length === 126) {
      length = (bytes[pos]! << 8) | bytes[pos + 1]!;
      pos += 2;
    } else if (length === 127) {
      length = new DataView(bytes.buffer, bytes.byteOffset + pos).getUint32(4);
      pos += 8;
    }
    out.push([opcode, bytes.slice(pos, pos + length)]);
    pos += length;
  }
  return out;
}

Deno.test("encodeFrames() writes text and binary frames with the shortest length encoding", () => {
  const frames: (string | Uint8Array)[] = [
    "",
    "x".repeat(125),
    "é".repeat(63), // 126 bytes from 63 code units: the 2-byte length form
    "€".repeat(21_845), // 65,535 bytes, the largest 16-bit length
    "y".repeat(65_536), // 64-bit length form
    new Uint8Array([1, 2, 3]),
    new Uint8Array(70_000).fill(7),
  ];
  const parsed = parseFrames(encodeFrames(frames, frames.length));
  equal(parsed.length, frames.length);
  for (const [i, frame] of frames.entries()) {
    const [opcode, payload] = parsed[i]!;
    if (typeof frame === "string") {
      equal(opcode, 1);
      equal(new TextDecoder().decode(payload), frame);
    } else {
      equal(opcode, 2);
      deepEqual(payload, frame);
    }
  }
  // Only the first `count` frames are written.
  equal(parseFrames(encodeFrames(["a", "b", "c"], 2)).length, 2);
});

Deno.test("encodeFrames() encodes into the scratch buffer only when the frames surely fit", () => {
  const scratch = Buffer.alloc(64);
  const small = encodeFrames(["hello", new Uint8Array([9])], 2, scratch);
  equal(small.buffer, scratch.buffer);
  deepEqual(parseFrames(small).map(([opcode]) => opcode), [1, 2]);
  deepEqual(parseFrames(small)[0]![1], new TextEncoder().encode("hello"));
  // 30 code units may need 90 bytes: a buffer of its own, the scratch left as it was.
  const before = Uint8Array.from(scratch);
  const large = encodeFrames(["z".repeat(30)], 1, scratch);
  ok(large.buffer !== scratch.buffer);
  deepEqual(Uint8Array.from(scratch), before);
  equal(new TextDecoder().decode(parseFrames(large)[0]![1]), "z".repeat(30));
});

Deno.test("SocketPeer under load writes each connection's batches of a turn at its end, in order", async () => {
  const options = { maxBufferedBytes: 1 << 20, enableBatching: true, batchSize: 10 };
  const writes: string[][] = [];
  const socket = (name: string) => ({
    ...new RecordingSocket(),
    readyState: 1,
    send: (frame: string | Uint8Array) => writes.push([name, String(frame)]),
    sendMany: (frames: readonly (string | Uint8Array)[], count: number) =>
      writes.push([name, ...frames.slice(0, count).map(String)]),
    close() {},
    addEventListener() {},
  });
  const a = new SocketPeer(socket("a"), options, undefined, true);
  const b = new SocketPeer(socket("b"), options, undefined, true);
  const endOfTurn = () => new Promise((resolve) => setImmediate(resolve)); // queued after ours
  const event = (...peers: SocketPeer[]) => {
    for (const peer of peers) peer.send(`${writes.length}`);
    for (const peer of peers) peer.flush!();
  };
  // A quiet turn (one batch per connection): written at once.
  event(a, b);
  deepEqual(writes, [["a", "0"], ["b", "0"]]);
  await endOfTurn();
  // A busy turn: batch after batch for a; two within a millisecond and the writes start waiting.
  let before: number;
  let events = 0;
  do {
    before = writes.length;
    event(a);
  } while (writes.length > before && ++events < 100_000);
  equal(writes.length, before, "writes never started to wait");
  event(a); // a second waiting batch for a in this turn: the next turn waits too
  await endOfTurn();
  equal(writes.length, before + 1);
  deepEqual(writes.at(-1), ["a", `${before}`, `${before}`]);
  event(a, b);
  event(a);
  equal(writes.length, before + 1);
  await endOfTurn();
  deepEqual(writes.slice(-2), [["a", `${before + 1}`, `${before + 1}`], ["b", `${before + 1}`]]);
  // Still waiting (a twice in that turn): a close writes what is queued at once, before its frame.
  event(b);
  b.close(1000, "bye");
  deepEqual(writes.at(-1), ["b", `${before + 3}`]);
  await endOfTurn();
  equal(writes.length, before + 4);
  // That turn had one batch per connection: writes are immediate again.
  event(a);
  equal(writes.length, before + 5);
  await endOfTurn();
});

Deno.test("SocketPeer counts control frames written beside its queue towards its budget", () => {
  // A pong the runtime could not write (the client reads nothing) is pending bytes: the next
  // frame that would take them past the budget is refused without a write since then.
  const { socket, peer: p } = peer({ enableBatching: false, max: 1000 });
  socket.bufferedAmount = 127;
  p.wroteControl(127);
  deepEqual(p.send("x".repeat(900)), { reason: "overflow", dropped: 1 });
  equal(p.pendingBytes(), 127);
  deepEqual(socket.sent, []);
});

Deno.test("SocketPeer.ping() counts the idle timeout's ping towards the budget, as a pong", () => {
  // Exact bounds with binary frames: 500 bytes wait in the runtime's buffer, then the ping's 2.
  const { socket, peer: p } = peer({ enableBatching: false, max: 1000 });
  socket.stalled = true;
  equal(p.send(new Uint8Array(500)), undefined);
  p.ping();
  equal(PING_FRAME_BYTES, 2);
  equal(socket.bufferedAmount, 502);
  // 502 + 499 is past the budget: the peer must measure and refuse, not trust a bound of 999.
  deepEqual(p.send(new Uint8Array(499)), { reason: "overflow", dropped: 1 });
  equal(p.send(new Uint8Array(498)), undefined); // 502 + 498 = 1000 fits
  // Nothing is written to a socket that is not open.
  socket.readyState = 2;
  p.ping();
  equal(socket.sent.filter((frame) => frame === "<ping>").length, 1);
});

Deno.test("abnormalEnd() tells a reset, an EOF, a failed write and the unknown apart from the socket's state", () => {
  const error = (code: string, syscall?: string) =>
    Object.assign(new Error(code), { code, ...(syscall ? { syscall } : {}) });
  deepEqual(abnormalEnd({ errored: error("ECONNRESET", "read"), readableEnded: false }), {
    code: 1006,
    initiator: "client",
    cause: "reset",
    error: "ECONNRESET",
  });
  deepEqual(abnormalEnd({ errored: error("ETIMEDOUT", "read") }), {
    code: 1006,
    initiator: "client",
    cause: "reset",
    error: "ETIMEDOUT",
  });
  deepEqual(abnormalEnd({ errored: null, readableEnded: true }), {
    code: 1006,
    initiator: "client",
    cause: "eof",
  });
  // A write's failure after the client's EOF followed from it.
  deepEqual(abnormalEnd({ errored: error("EPIPE", "write"), readableEnded: true }).cause, "eof");
  for (const errored of [error("ECONNRESET", "write"), error("EPIPE")]) {
    deepEqual(abnormalEnd({ errored, readableEnded: false }), {
      code: 1006,
      initiator: "server",
      cause: "write_error",
      error: errored.code,
    });
  }
  // Destroyed with neither an error nor an EOF: only the server process does that.
  deepEqual(abnormalEnd({ errored: null, readableEnded: false, destroyed: true }), {
    code: 1006,
    initiator: "server",
    cause: "destroyed",
  });
  deepEqual(abnormalEnd({ errored: null, readableEnded: false, destroyed: false }), {
    code: 1006,
    initiator: "client",
    cause: "unknown",
  });
  deepEqual(abnormalEnd(undefined).cause, "unknown");
});

Deno.test("A close the client does not answer within the grace ends with the server destroying the socket", async () => {
  const socket = new RecordingSocket();
  socket.close = () => {
    socket.readyState = 2; // CLOSING: the close frame waits for the client's
  };
  const stream = { destroyed: false, readableEnded: false, errored: null, destroy() {} };
  stream.destroy = () => {
    stream.destroyed = true;
  };
  const p = new SocketPeer(socket as unknown as WebSocket, {
    maxBufferedBytes: 1 << 20,
    enableBatching: true,
    batchSize: 10,
  }, stream);
  p.close(1013, "Slow consumer");
  equal(stream.destroyed, false);
  equal(p.ended().cause, "unknown");
  await new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS + 100));
  equal(stream.destroyed, true);
  deepEqual(p.ended(), { code: 1006, initiator: "server", cause: "destroyed" });
  // A socket that had ended already is not counted as destroyed by the server.
  const ended = { destroyed: true, readableEnded: true, errored: null, destroy() {} };
  deepEqual(
    new SocketPeer(socket as unknown as WebSocket, {
      maxBufferedBytes: 1 << 20,
      enableBatching: true,
      batchSize: 10,
    }, ended).ended().cause,
    "eof",
  );
});
