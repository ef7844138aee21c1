/**
 * The only WebSocket code of the server: takes over an upgraded socket with `npm:ws` and binds it
 * to the edge. `ws` enforces `security.max_message_size` on the running total of a message's frame
 * lengths, so a message is refused (close 1009) before more than the limit is buffered, however
 * it is fragmented (docs/spec/SERVER.md §3.6, SECURITY.md).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import process from "node:process";
import { setImmediate } from "node:timers";
import { getSystemErrorName } from "node:util";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
// @ts-types="./ws.d.ts"
import { type WebSocket as WsSocket, WebSocketServer } from "ws";
import { getLogger } from "@logtape/logtape";
import { bugFields } from "../logging.ts";
import { utf8Length } from "../protocol/utf8.ts";
import { type RequestHead, switchingProtocols, takeUpgradeSocket } from "../http/handover.ts";
import type { DisconnectLoss } from "../engine/engine.ts";
import type { Edge } from "./edge.ts";
import {
  type ReadHandle as RuntimeReadHandle,
  readTurn,
  readTurnSpent,
  readTurnStarts,
  readTurnWaits,
  replayRead,
} from "./read_turns.ts";
import { type ConnectionEnd, type Peer, type SendFailure, UNKNOWN_END } from "./peer.ts";
import type { TokenBinding } from "./token_binding.ts";
import { tlsReadError } from "./tls_reads.ts";

const log = getLogger(["signal-fish", "websocket"]);

// `WebSocket.readyState` values (WHATWG WebSockets, the same in `ws`).
const CONNECTING = 0;
const OPEN = 1;
const CLOSED_STATE = 3;

/**
 * What {@linkcode SocketPeer} needs from a socket: a `ws` WebSocket, or a stand-in in tests.
 * `bufferedAmount` is bytes accepted by `send` and not yet written to the kernel.
 */
export interface OutboundSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(frame: string | Uint8Array): void;
  /** Writes `frames[0..count)` at once, in order (optional; else `send` is called per frame). */
  sendMany?(frames: readonly (string | Uint8Array)[], count: number): void;
  close(code?: number, reason?: string): void;
  /** Writes an empty ping frame (optional; {@linkcode SocketPeer.ping} does nothing without). */
  ping?(): void;
  addEventListener(type: "close", listener: () => void, options?: { once?: boolean }): void;
}

/**
 * What every connection of an endpoint shares ({@linkcode acceptWebSocketWith}): one object for
 * all of them, not one per connection.
 */
export interface AcceptSettings {
  /**
   * Largest inbound message, bytes (`security.max_message_size`, docs/spec/SERVER.md §3.6): a message whose
   * frames add up to more is refused with close 1009 while it arrives. @default 65536
   */
  maxMessageSize?: number;
  /**
   * Idle timeout in seconds (`server.ping_timeout`): a connection that sent nothing for half of
   * it is pinged, and closed with 1001 "No response from ping frame." when still silent after
   * all of it (docs/spec/PROTOCOL.md §7.10).
   */
  idleTimeoutSecs: number;
  /**
   * Called once when the socket is gone, after the edge has torn the connection down, with the
   * connection's client IP.
   */
  onClosed?: (ip: string) => void;
  /** Outbound budget and batching (docs/spec/SERVER.md §5.2, §5.3). */
  outbound: OutboundOptions;
}

/** Token binding negotiated for one connection (docs/spec/SERVER.md §1.8, §3.9). */
export interface NegotiatedBinding {
  /** The subprotocol named in the 101 response. */
  subprotocol: string;
  /** What the edge needs to check each text frame. */
  binding: TokenBinding;
}

/** Options of {@linkcode acceptWebSocket}: the shared settings and this connection's. */
export interface AcceptOptions extends AcceptSettings {
  /** Client IP the connection is counted under (docs/spec/SERVER.md §1.9). */
  ip: string;
  /**
   * Token binding negotiated for this connection (docs/spec/SERVER.md §1.8, §3.9): the subprotocol named
   * in the 101 response and what the edge needs to check each text frame.
   */
  tokenBinding?: NegotiatedBinding;
}

/** Per-connection outbound settings (`websocket.*`, docs/spec/SERVER.md §5.2–5.3). */
export interface OutboundOptions {
  /** Pending-byte budget before a connection is a slow consumer. @default 1_048_576 */
  maxBufferedBytes: number;
  /** Coalesce writes: queue messages and write them together. @default true */
  enableBatching: boolean;
  /** Write the queue as soon as this many messages wait. @default 10 */
  batchSize: number;
}

/**
 * The outbound side of one socket (docs/spec/SERVER.md §5.2–5.3). Pending bytes are the application
 * queue plus the runtime's `bufferedAmount`; a frame that would take them past the budget (when
 * something is already pending) makes the connection a slow consumer: the queue is discarded
 * and the edge closes it with 1013. With batching, frames wait in the queue until `batchSize`
 * are queued or the edge has carried out everything the current event produced (it then calls
 * {@linkcode SocketPeer.flush}), or, for WebSockets, until the end of the event-loop turn
 * under load ({@linkcode endTurn}); both well within `websocket.batch_interval_ms`. A batch is one
 * write (`FramedSocket`), so waiting for the turn's end saves writes under load. (Under the
 * earlier `Deno.serve` transport every frame was its own write, and a microtask per connection
 * measured +2.5 ms p99 and +2 µs CPU per message, BENCHMARKS.md.) Each message stays its own
 * frame, in order.
 *
 * Cost on the relay path: the exact byte counts (a UTF-8 scan of each text frame) and the
 * runtime's `bufferedAmount` (a call into the runtime) are only needed near the budget. The peer
 * keeps an upper bound of its pending bytes (a text frame is at most 3 bytes per UTF-16 code
 * unit; `bufferedAmount` grows by at most what was written since it was last read) and
 * measures exactly only when that bound could exceed the budget.
 */
export class SocketPeer implements Peer {
  readonly #socket: OutboundSocket;
  readonly #options: OutboundOptions;
  readonly #stream: SocketStream | undefined;
  readonly #queue: (string | Uint8Array)[] = [];
  /** Upper bound of the queue's bytes. */
  #queuedBound = 0;
  /** Upper bound of `bufferedAmount`: its last reading plus what was written since. */
  #bufferedBound = 0;
  /**
   * A frame was handed to this socket since the client was last heard from (cleared by the
   * transport on every frame, ping or pong it reads). When the connection then ends without a
   * close handshake or by the idle timeout, those frames may not have arrived
   * (docs/spec/EXTENSIONS.md E3).
   */
  sentSinceHeard = false;

  /**
   * Wraps an accepted socket. `stream`, the connection under it, is corked while a batch is
   * written (one write for the batch) and destroyed when a close is not answered in time.
   */
  constructor(
    socket: OutboundSocket,
    options: OutboundOptions,
    stream?: SocketStream,
    /**
     * With batching, under load: while the last event-loop turn wrote some connection twice,
     * `flush` only marks the peer, and its queue is written once at the end of the turn with
     * what later events of the same turn queued for it ({@linkcode endTurn}). @default false
     */
    turnEnd = false,
  ) {
    this.#socket = socket;
    this.#options = options;
    this.#stream = stream;
    // Shared functions, not a closure per peer (BENCHMARKS.md "Session 6: memory").
    this.flush = !options.enableBatching
      ? undefined
      : turnEnd
      ? SocketPeer.#flushDeferrable
      : SocketPeer.#flushAtOnce;
  }

  /** `flush` without turn-end deferral: writes the queue now. */
  static readonly #flushAtOnce = function (this: SocketPeer): void {
    this.#flush();
  };

  /** `flush` with turn-end deferral (the `turnEnd` option of the constructor). */
  static readonly #flushDeferrable = function (this: SocketPeer): void {
    if (!deferring) {
      this.#flush();
      // Two batches for this connection within a millisecond: the server is busy; from now
      // on writes wait for the turn's end (a timer per turn only then, not per message).
      const now = Date.now();
      if (this.#lastFlushMs === now) startDeferring();
      this.#lastFlushMs = now;
      return;
    }
    // A second batch for this connection in one turn: one write could have carried both.
    if (this.#turn === turn) repeated = true;
    else this.#turn = turn;
    if (!this.#waiting && this.#queue.length > 0) {
      this.#waiting = true;
      turnPeers.push(this);
    }
  };

  /** On the list of peers written at the end of the turn. */
  #waiting = false;
  /** The last turn this peer was flushed in (while deferring). */
  #turn = -1;
  /** When this peer was last flushed while writing at once, ms since the epoch. */
  #lastFlushMs = 0;

  /** Writes the queue now (the end of the turn, see {@linkcode endTurn}). */
  flushNow(): void {
    this.#waiting = false;
    this.#flush();
  }

  /**
   * Writes every queued frame, in order (the edge calls it at the end of each event). Undefined
   * without batching: frames are then written as they are sent, and the fanout has no peer to
   * remember for the end of the event.
   */
  readonly flush: (() => void) | undefined;

  /** Queues (or writes) one frame; see the class notes for refusals. */
  send(frame: string | Uint8Array): SendFailure | undefined {
    const socket = this.#socket;
    if (socket.readyState !== OPEN) return CLOSED;
    this.sentSinceHeard = true;
    const max = this.#options.maxBufferedBytes;
    let bound = typeof frame === "string" ? frame.length * 3 : frame.byteLength;
    const pendingBound = this.#queuedBound + this.#bufferedBound;
    if (pendingBound > 0 && pendingBound + bound > max) {
      // Near the budget: measure exactly.
      const buffered = socket.bufferedAmount;
      let queued = 0;
      for (const queuedFrame of this.#queue) queued += byteSize(queuedFrame);
      this.#bufferedBound = buffered;
      this.#queuedBound = queued;
      bound = byteSize(frame);
      const pending = queued + buffered;
      if (pending > 0 && pending + bound > max) {
        const dropped = this.#queue.length + 1;
        this.#queue.length = 0;
        this.#queuedBound = 0;
        return { reason: "overflow", dropped };
      }
    }
    if (!this.#options.enableBatching) {
      socket.send(frame);
      this.#bufferedBound += bound;
      return undefined;
    }
    this.#queue.push(frame);
    this.#queuedBound += bound;
    if (this.#queue.length >= this.#options.batchSize) this.#flush();
    return undefined;
  }

  /**
   * Pending bytes, measured exactly ({@linkcode Peer.pendingBytes}): the runtime's
   * `bufferedAmount` plus the queue's UTF-8 bytes. Leaves the upper bounds of `send` exact too.
   */
  pendingBytes(): number {
    const buffered = this.#socket.bufferedAmount;
    let queued = 0;
    for (const frame of this.#queue) queued += byteSize(frame);
    this.#bufferedBound = buffered;
    this.#queuedBound = queued;
    return buffered + queued;
  }

  /**
   * Notes `bytes` of a control frame (a pong) written to the connection beside the queue, so the
   * upper bound of `bufferedAmount` that {@linkcode send} relies on stays one.
   */
  wroteControl(bytes: number): void {
    this.#bufferedBound += bytes;
  }

  /**
   * Writes the idle timeout's empty ping (docs/spec/PROTOCOL.md §7.10) while the socket is open,
   * its {@linkcode PING_FRAME_BYTES} counted like a pong ({@linkcode wroteControl}): they wait in
   * the runtime's buffer behind the rest when the client reads nothing.
   */
  ping(): void {
    const socket = this.#socket;
    if (socket.readyState !== OPEN || socket.ping === undefined) return;
    socket.ping();
    this.#bufferedBound += PING_FRAME_BYTES;
  }

  /**
   * How the connection ended ({@linkcode Peer.ended}): called once its socket is no longer open
   * while the edge still has it, which happens only when it ended without a close handshake
   * (close frames, the client's and the server's, reach the edge first), so 1006 with the cause
   * {@linkcode abnormalEnd} reads from the connection's state.
   */
  ended(): ConnectionEnd {
    return abnormalEnd(this.#stream);
  }

  #flush(): void {
    const queue = this.#queue;
    const count = queue.length;
    if (count === 0) return;
    this.#bufferedBound += this.#queuedBound;
    this.#queuedBound = 0;
    const socket = this.#socket;
    if (socket.readyState === OPEN) {
      if (socket.sendMany) socket.sendMany(queue, count);
      else for (let i = 0; i < count; i++) socket.send(queue[i]!);
    }
    queue.length = 0;
  }

  /**
   * Writes what is queued (the message a close is preceded by), then closes. A peer that does
   * not complete the close handshake within {@linkcode CLOSE_GRACE_MS} (typically one that stopped
   * reading, so the close frame waits behind unsent data forever) has its connection dropped.
   */
  close(code: number, reason: string): void {
    const socket = this.#socket;
    this.#flush();
    if (socket.readyState === OPEN || socket.readyState === CONNECTING) {
      socket.close(code, reason);
      const timer = setTimeout(() => {
        if (socket.readyState !== CLOSED_STATE) this.#stream?.destroy();
      }, CLOSE_GRACE_MS);
      Deno.unrefTimer(timer);
      socket.addEventListener("close", () => clearTimeout(timer), { once: true });
    }
  }

  /**
   * Pauses the connection's reads for `ms` (cluster mode's forwarding budget,
   * src/transport/forward_budget.ts): the socket stops being read, so the client's sends wait in
   * its TCP window; what was read already is still handled. A hold while held keeps the later
   * end. Nothing per connection is kept unless held ({@linkcode held}).
   */
  holdReads(ms: number): void {
    const stream = this.#stream;
    if (stream?.pause === undefined || stream.resume === undefined) return;
    const until = Date.now() + ms;
    const hold = held.get(this);
    if (hold !== undefined) {
      if (hold.until >= until) return;
      clearTimeout(hold.timer);
    } else {
      stream.pause();
    }
    const timer = setTimeout(() => {
      held.delete(this);
      stream.resume!();
    }, ms);
    Deno.unrefTimer(timer);
    held.set(this, { until, timer });
  }
}

/** Peers whose reads are held ({@linkcode SocketPeer.holdReads}): until when, and the timer. */
const held = new Map<SocketPeer, { until: number; timer: ReturnType<typeof setTimeout> }>();

/** Peers whose queue is written at the end of this event-loop turn, each once. */
let turnPeers: SocketPeer[] = [];
/** Counts event-loop turns in which some peer was flushed. */
let turn = 0;
/** Some connection was flushed twice in this turn. */
let repeated = false;
/** This turn's writes wait for its end. */
let deferring = false;

/** Writes wait for the end of each turn until a turn has at most one batch per connection. */
function startDeferring(): void {
  if (deferring) return;
  deferring = true;
  repeated = false;
  setImmediate(endTurn);
}

/**
 * The end of an event-loop turn while deferring (`setImmediate`: after the runtime has delivered
 * every socket read that was ready): writes each waiting peer's queue, so one write carries
 * everything the turn's events produced for a connection instead of one write each (the write is
 * most of a delivery's cost, BENCHMARKS.md "Socket layer"). Deferring starts when a connection
 * gets two batches within a millisecond, and lasts while some connection gets two batches in a
 * turn; a turn with at most one per connection switches back to writing at once, so a lightly
 * loaded server adds neither latency nor a timer per message. Well within
 * `websocket.batch_interval_ms` (docs/spec/SERVER.md §5.3); one timer for all connections.
 */
function endTurn(): void {
  turn++;
  // Busy still: the next turn defers too (one timer per turn); else back to writing at once.
  deferring = repeated;
  repeated = false;
  if (deferring) setImmediate(endTurn);
  const peers = turnPeers;
  turnPeers = [];
  for (const peer of peers) {
    try {
      peer.flushNow();
    } catch (error) {
      // One connection's failure must not keep the others' messages back.
      log.error("Cannot write a batch: {error}", bugFields(error));
    }
  }
}

/** How long a server-initiated close may wait for the peer's close frame (docs/spec/SERVER.md §5.2). */
export const CLOSE_GRACE_MS = 2000;

/** Bytes of the idle timeout's ping: a server frame (unmasked) with no payload (RFC 6455 section 5.5.2). */
export const PING_FRAME_BYTES = 2;

/**
 * What {@linkcode abnormalEnd} reads of a connection's socket (`node:net`'s public stream state),
 * once it is closed or closing. Every field is optional: a stand-in without them ended `unknown`.
 */
export interface EndedStream {
  /** The error the socket was destroyed with (`code` such as `ECONNRESET`, `syscall`). */
  readonly errored?: (Error & { code?: unknown; syscall?: unknown }) | null;
  /** The client's end of the stream (EOF) was read. */
  readonly readableEnded?: boolean;
  /** Destroyed (closed, or about to be). */
  readonly destroyed?: boolean;
}

/** The end of a connection closed by the client without a close frame: its FIN, an EOF. */
const EOF_END: ConnectionEnd = Object.freeze({ code: 1006, initiator: "client", cause: "eof" });
/** The end of a connection the server destroyed itself. */
const DESTROYED_END: ConnectionEnd = Object.freeze({
  code: 1006,
  initiator: "server",
  cause: "destroyed",
});

/**
 * How a connection that ended without a close handshake (close code 1006) ended, read from its
 * socket's state after the fact, so no connection carries a listener for it (docs/spec/SERVER.md
 * §6.3 #97, §7.4). In order:
 *
 * - over TLS, a read failed ({@linkcode tlsReadError}; the runtime ends the TLS socket as for an
 *   EOF then): `reset`, initiator `client`, the read's error;
 * - the client's EOF was read: `eof`, initiator `client` (it ended its side without a close frame;
 *   whatever failed after it followed from it);
 * - the socket was destroyed with a write's error (`syscall` `write`, or `EPIPE`): `write_error`,
 *   initiator `server`; with any other error, a read's (`ECONNRESET`, `ETIMEDOUT`, …): `reset`,
 *   initiator `client`; the error's `code` as `error` either way;
 * - the socket was destroyed with neither an error nor an EOF: `destroyed`, initiator `server`
 *   (only code of the server process destroys a socket so: a close not answered within
 *   {@linkcode CLOSE_GRACE_MS}, `ws`' own close timer or `terminate()`);
 * - else `unknown`, initiator `client` (not ended as far as its state tells).
 *
 * A failed write is counted as the server's although the client's reset is its usual reason: the
 * write saw the reset before a read did.
 */
export function abnormalEnd(stream: EndedStream | undefined): ConnectionEnd {
  if (stream === undefined) return UNKNOWN_END;
  // Over TLS the runtime ends the stream as for an EOF when a read fails: the read's error first.
  const tlsError = tlsReadError(stream);
  if (tlsError !== undefined) {
    return { code: 1006, initiator: "client", cause: "reset", error: tlsError };
  }
  if (stream.readableEnded === true) return EOF_END;
  const error = stream.errored;
  if (error === null || error === undefined) {
    return stream.destroyed === true ? DESTROYED_END : UNKNOWN_END;
  }
  const code = typeof error.code === "string" ? error.code : undefined;
  if (error.syscall === "write" || code === "EPIPE") {
    return { code: 1006, initiator: "server", cause: "write_error", error: code };
  }
  return { code: 1006, initiator: "client", cause: "reset", error: code };
}

/**
 * The connection under a socket (a `node:net` socket), for forced closes; its state tells how it
 * ended ({@linkcode abnormalEnd}).
 */
export interface SocketStream extends EndedStream {
  destroy(): void;
  /** Stops reading (`node:net`); {@linkcode SocketPeer.holdReads} needs both. */
  pause?(): unknown;
  /** Reads again. */
  resume?(): unknown;
}

const encoder = new TextEncoder();

/**
 * Encodes `frames[0..count)` as unmasked, unfragmented server frames (RFC 6455 §5.2): text for
 * strings (UTF-8), binary for bytes, into one buffer, so a batch costs one write. Into `scratch`
 * when the frames surely fit there (the result is then a view of it), else into a new buffer.
 */
export function encodeFrames(
  frames: readonly (string | Uint8Array)[],
  count: number,
  scratch?: Buffer,
): Uint8Array {
  let bound = 0;
  for (let i = 0; i < count; i++) {
    const frame = frames[i]!;
    bound += (typeof frame === "string" ? frame.length * 3 : frame.byteLength) + 10;
  }
  const out = scratch !== undefined && bound <= scratch.length
    ? scratch
    : Buffer.allocUnsafe(bound);
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const frame = frames[i]!;
    if (typeof frame === "string" && frame.length * 3 < 65_536) {
      // Encode after room for a 4-byte header; move it back when a 2-byte header suffices.
      const n = encoder.encodeInto(frame, out.subarray(pos + 4)).written;
      out[pos] = 0x81;
      if (n < 126) {
        out.copyWithin(pos + 2, pos + 4, pos + 4 + n);
        out[pos + 1] = n;
        pos += 2 + n;
      } else {
        out[pos + 1] = 126;
        out[pos + 2] = n >> 8;
        out[pos + 3] = n & 0xff;
        pos += 4 + n;
      }
      continue;
    }
    const bytes = typeof frame === "string" ? encoder.encode(frame) : frame;
    const n = bytes.byteLength;
    out[pos] = typeof frame === "string" ? 0x81 : 0x82;
    if (n < 126) {
      out[pos + 1] = n;
      pos += 2;
    } else if (n < 65_536) {
      out[pos + 1] = 126;
      out[pos + 2] = n >> 8;
      out[pos + 3] = n & 0xff;
      pos += 4;
    } else {
      out[pos + 1] = 127;
      out.fill(0, pos + 2, pos + 6);
      out.writeUInt32BE(n, pos + 6);
      pos += 10;
    }
    out.set(bytes, pos);
    pos += n;
  }
  return out.subarray(0, pos);
}

/**
 * Size of the buffer batches are encoded into, bytes (a batch of 10 messages of up to ~270
 * characters fits); larger batches get their own. As large as a `Buffer.allocUnsafe` pool, which
 * a queued write kept alive before.
 */
const SCRATCH_BYTES = 8 * 1024;
/**
 * The buffer every connection's batches are encoded into while the kernel takes each write at
 * once, so a delivery allocates no buffer (one per write cost a pool refill every ~80 writes
 * and a tenth of the garbage collector's time, BENCHMARKS.md "Socket layer").
 */
let scratch: Buffer = Buffer.allocUnsafeSlow(SCRATCH_BYTES);

/**
 * A `ws` WebSocket as an {@linkcode OutboundSocket} whose data frames are written straight to
 * the connection, a batch in one write (`ws`' own `send` costs two writes per frame). Control
 * frames (close, ping) still go through `ws`, on the same connection, so order is kept.
 */
class FramedSocket implements OutboundSocket {
  readonly #ws: WsSocket;
  readonly #stream: Socket;
  /** The socket's TCP handle when batches are handed to it directly ({@linkcode writeHandle}). */
  readonly #handle: WriteHandle | undefined;
  readonly #state: WritableState;
  /** Bytes handed to {@linkcode #handle} that the kernel has not taken yet. */
  pending = 0;

  constructor(ws: WsSocket, stream: Socket) {
    this.#ws = ws;
    this.#stream = stream;
    this.#handle = writeHandle(stream);
    this.#state = (stream as unknown as { _writableState: WritableState })._writableState;
  }

  get readyState(): number {
    return this.#ws.readyState;
  }

  /** Bytes written to the connection and not yet taken by the kernel. */
  get bufferedAmount(): number {
    return this.#stream.writableLength + this.pending;
  }

  send(frame: string | Uint8Array): void {
    this.sendMany([frame], 1);
  }

  sendMany(frames: readonly (string | Uint8Array)[], count: number): void {
    const stream = this.#stream;
    const handle = this.#handle;
    const state = this.#state;
    // Straight to the handle while the stream holds nothing (nothing of `ws`' to overtake) and
    // is open for writing.
    if (handle !== undefined && state.length === 0 && !state.ending && !state.destroyed) {
      const queued = this.pending !== 0;
      const bytes = encodeFrames(frames, count, queued ? undefined : scratch);
      const request = new DirectWrite(this, stream, bytes.byteLength);
      const status = handle.writeBuffer(request, bytes);
      if (status !== 0) {
        stream.destroy(writeError(status));
        return;
      }
      if ((streamBaseState?.[kLastWriteWasAsync] ?? 1) !== 0) {
        // The kernel did not take it all: the handle keeps a view until written.
        request.counted = true;
        this.pending += bytes.byteLength;
        if (bytes.buffer === scratch.buffer) scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
      }
      return;
    }
    if (stream.writableLength !== 0 || this.pending !== 0) {
      // Queued behind earlier bytes: the stream keeps this buffer until then; one of its own.
      stream.write(encodeFrames(frames, count));
      return;
    }
    const bytes = encodeFrames(frames, count, scratch);
    stream.write(bytes);
    // Taken by the kernel at once (the usual case): the scratch buffer is free again. Else (the
    // kernel's buffer just filled up) the stream keeps a view of it until written, so the next
    // batch needs another one; a slow consumer holds at most one scratch buffer that way.
    if (bytes.buffer === scratch.buffer && stream.writableLength !== 0) {
      scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
    }
  }

  close(code?: number, reason?: string): void {
    this.#ws.close(code, reason);
  }

  ping(): void {
    this.#ws.ping();
  }

  addEventListener(type: "close", listener: () => void, options?: { once?: boolean }): void {
    this.#ws.addEventListener(type, listener, options);
  }
}

/**
 * The write side of the native TCP handle under a `node:net` socket (Deno 2.x, private to the
 * runtime, like `ReadHandle`): `writeBuffer` writes what the kernel takes at once and queues the
 * rest behind every write handed to the handle before (the stream's own included), keeping a
 * view of it; `streamBaseState[kLastWriteWasAsync]` then says whether it queued, and only then
 * is `request.oncomplete` called, with 0 when written, or with a negative error number when the
 * write failed or the socket was closed first. A shutdown (`end()`) waits for queued writes.
 */
interface WriteHandle {
  writeBuffer(request: { oncomplete(status: number): void }, bytes: Uint8Array): number;
}

/**
 * The runtime's record of the last handle write (Node's `internalBinding('stream_wrap')`). User
 * code reaches it only through `process.binding` (deprecated in Node's docs, DEP0111; Deno 2.9.6
 * warns only under `--pending-deprecation`): `ext:` modules cannot be imported, `internalBinding`
 * is not a global, and neither the handle (no `writeQueueSize`) nor the write request (no
 * `async`) tells whether a write was queued (checked in session 29, `read_turns.ts` likewise).
 */
const { streamBaseState, kLastWriteWasAsync } = streamWrap();

function streamWrap(): { streamBaseState?: Uint8Array | Int32Array; kLastWriteWasAsync: number } {
  try {
    const binding = (process as unknown as { binding(name: string): Record<string, unknown> })
      .binding("stream_wrap");
    const state = binding.streamBaseState;
    const index = binding.kLastWriteWasAsync;
    if (ArrayBuffer.isView(state) && typeof index === "number") {
      return { streamBaseState: state as Int32Array, kLastWriteWasAsync: index };
    }
  } catch {
    // Not available: batches go through the stream.
  }
  return { kLastWriteWasAsync: 0 };
}

/** What `FramedSocket` reads of a `Writable`'s state (Node's `_writableState`). */
interface WritableState {
  /** Bytes the stream holds: written to the handle and not done, or waiting. */
  readonly length: number;
  readonly ending: boolean;
  readonly destroyed: boolean;
}

/** Connections whose batches go straight to the TCP handle (see {@linkcode writeHandle}). */
export const directWrites = {
  sockets: 0,
  /** Off: sockets accepted from then on write through the stream (for A/B measurements). */
  enabled: true,
};

/**
 * The TCP handle of a plain-TCP socket whose batches can be handed to it directly, skipping the
 * socket's `Writable` (`write` → `_writeGeneric` → a `WriteWrap` with an async id per write →
 * completion callbacks): the write's JavaScript besides the system call went from 1.04 to 0.29
 * profiled µs per delivery (BENCHMARKS.md "Session 5: relay CPU per delivered message").
 * Order is kept: a batch goes to the handle only while the stream holds nothing (`ws`' control
 * frames, when one waits, go first; after a close frame nothing more is sent), and the handle
 * writes in the order it was given. Bytes the kernel did not take count towards
 * `bufferedAmount`, so the slow-consumer budget sees them. Undefined (write through the stream)
 * for TLS sockets and anything that does not look as expected (`tests/direct_reads_test.ts`).
 */
function writeHandle(stream: Socket): WriteHandle | undefined {
  const handle = (stream as unknown as { _handle?: { constructor?: { name?: string } } | null })
    ._handle;
  if (
    !directWrites.enabled || streamBaseState === undefined ||
    (stream as { encrypted?: boolean }).encrypted === true || !handle ||
    handle.constructor?.name !== "TCPWrap" ||
    typeof (handle as Partial<WriteHandle>).writeBuffer !== "function"
  ) return undefined;
  directWrites.sockets++;
  return handle as unknown as WriteHandle;
}

/** One batch handed to the TCP handle: its completion, when the kernel did not take it at once. */
class DirectWrite {
  readonly #socket: FramedSocket;
  readonly #stream: Socket;
  readonly #bytes: number;
  /** Queued by the handle, so counted in the socket's pending bytes. */
  counted = false;

  constructor(socket: FramedSocket, stream: Socket, bytes: number) {
    this.#socket = socket;
    this.#stream = stream;
    this.#bytes = bytes;
  }

  /** Called by the handle for a queued write: 0 when written, else a negative error number. */
  oncomplete(status: number): void {
    if (this.counted) {
      this.counted = false;
      this.#socket.pending -= this.#bytes;
    }
    // As the stream does when its own write fails: the connection is done.
    if (status < 0 && !this.#stream.destroyed) this.#stream.destroy(writeError(status));
  }
}

/**
 * The error a failed direct write ends its connection with: `code` the error's name (`EPIPE`,
 * `ECONNRESET`, …; `EDIRECTWRITE` for a number the runtime cannot name), `syscall` `write`, as
 * the stream's own write errors have (what {@linkcode abnormalEnd} reads).
 */
function writeError(status: number): Error {
  let code = "EDIRECTWRITE";
  try {
    code = getSystemErrorName(status);
  } catch {
    // Not an error number the runtime knows.
  }
  return Object.assign(new Error(`write failed: ${code} (${status})`), {
    code,
    status,
    syscall: "write",
  });
}

const CLOSED: SendFailure = { reason: "closed" };

/** Exact size of a frame on the wire (payload bytes). */
function byteSize(frame: string | Uint8Array): number {
  return typeof frame === "string" ? utf8Length(frame) : frame.byteLength;
}

/** The parser `ws` keeps in `_receiver` (private to `ws` 8.x; pinned in deno.json). */
interface Receiver {
  prependListener(event: "error", listener: (error: Error & { code?: string }) => void): void;
  on(event: "conclude" | "error", listener: (code: number) => void): void;
  on(event: "message", listener: (data: Uint8Array, isBinary: boolean) => void): void;
  listeners(event: "message"): ((...args: never[]) => unknown)[];
  removeListener(event: "message", listener: (...args: never[]) => unknown): void;
  /** `Writable.write`: parses `chunk`; false when its buffer is over the high-water mark. */
  write(chunk: Uint8Array): boolean;
  /**
   * The parse step `Writable.write` calls: parses `chunk` and calls `done` (with the protocol
   * error, if any); synchronously while events are emitted synchronously (a `ws` server's
   * default) and no extension is negotiated (this server negotiates none).
   */
  _write(chunk: Uint8Array, encoding: string, done: (error?: Error | null) => void): void;
  readonly _allowSynchronousEvents?: boolean;
  /** `EventEmitter`'s listener table: an event's listener, or an array of them. */
  readonly _events?: Record<string, unknown>;
  readonly _extensions?: Record<string, unknown>;
  destroy(error: Error): void;
}

/**
 * Non-empty frames one message may arrive in (RFC 6455 §5.4 fragmentation); the next one closes the
 * connection like a message past `max_message_size` (SECURITY.md "Fragments of one message").
 * `ws` keeps each fragment as a `Buffer` until the message is whole: 65,000 one-byte fragments (a
 * message within the size limit) held 7.6 MB of the server's memory per connection, 120 times
 * the limit. Browsers send a message as one frame; websocket-sharp (Unity) cuts one into 1,016-byte
 * fragments, 65 for the largest message.
 */
export const MAX_MESSAGE_FRAGMENTS = 256;

/** The error code of a message refused for {@linkcode MAX_MESSAGE_FRAGMENTS}. */
const TOO_MANY_FRAGMENTS = "SIGNAL_FISH_TOO_MANY_FRAGMENTS";

/** What {@linkcode limitFragments} uses of `ws`' parser (its `Receiver`, private state). */
interface FragmentState {
  _fragmented: number;
  _fragments: unknown[];
  _opcode: number;
  _payloadLength: number;
  haveLength(cb: (error?: Error) => void): unknown;
  createError(
    ctor: typeof RangeError,
    message: string,
    prefix: boolean,
    statusCode: number,
    errorCode: string,
  ): Error;
}

/** The parser prototypes {@linkcode limitFragments} changed. */
const fragmentsLimited = new WeakSet<object>();

/**
 * Makes `ws`' parser refuse a data frame that would be a message's fragment number
 * {@linkcode MAX_MESSAGE_FRAGMENTS} + 1 (empty fragments, which it does not keep, are not
 * counted), with the status 1009 and {@linkcode TOO_MANY_FRAGMENTS}. The check sits in the step
 * that already checks the message's size as each frame's length is known (`haveLength`), once
 * for every parser (its prototype, changed at the first connection). Returns whether the parser
 * has the check: false when it does not look as expected (`tests/hostile_input_test.ts` fails).
 */
function limitFragments(receiver: object): boolean {
  const proto = Object.getPrototypeOf(receiver) as FragmentState;
  if (fragmentsLimited.has(proto)) return true;
  const state = receiver as Partial<FragmentState>;
  const haveLength = proto.haveLength;
  if (
    typeof haveLength !== "function" || typeof proto.createError !== "function" ||
    !Array.isArray(state._fragments) || typeof state._fragmented !== "number"
  ) return false;
  proto.haveLength = function (this: FragmentState, cb: (error?: Error) => void) {
    if (
      this._fragmented !== 0 && this._fragments.length >= MAX_MESSAGE_FRAGMENTS &&
      this._payloadLength > 0 && this._opcode < 0x08
    ) {
      cb(this.createError(RangeError, "Too many fragments", false, 1009, TOO_MANY_FRAGMENTS));
      return;
    }
    return haveLength.call(this, cb);
  };
  fragmentsLimited.add(proto);
  return true;
}

/**
 * Takes each message from `ws`' parser itself instead of through the `WebSocket`, whose only
 * listener of the parser's `message` event re-emits it on the `WebSocket` (one emit and one
 * call less per message). False, and nothing changed, when the parser's listeners are not that
 * one (`tests/direct_reads_test.ts` pins it).
 */
function hearParser(
  receiver: Receiver,
  onMessage: (data: Uint8Array, isBinary: boolean) => void,
): boolean {
  const listeners = receiver.listeners("message");
  if (listeners.length !== 1 || listeners[0]!.name !== "receiverOnMessage") return false;
  // The listener is swapped in place in the emitter's table when it is where `EventEmitter`
  // keeps a single listener: `removeListener` deletes the event's entry, which turns the table
  // into a dictionary (about 0.4 kB more per connection, BENCHMARKS.md "Session 6: memory").
  const events = receiver._events;
  if (events && events.message === listeners[0]) {
    events.message = onMessage;
    return true;
  }
  receiver.removeListener("message", listeners[0]!);
  receiver.on("message", onMessage);
  return true;
}

/**
 * The native TCP handle under a `node:net` socket (Deno 2.x, private to the runtime): it calls
 * `onread` with each read's bytes, as an `ArrayBuffer` of the bytes read, and `undefined` at
 * the end of the stream or on an error. `readStart` takes the `onread` set at that moment.
 */
interface ReadHandle extends RuntimeReadHandle {
  /** `node:net`'s own note of whether it started the handle reading (its `tryReadStart`). */
  reading?: boolean;
}

/** What {@linkcode readsDirect} reads of a `Readable`'s state (Node's `_readableState`). */
interface ReadableState {
  readonly destroyed: boolean;
  readonly flowing: boolean | null;
  readonly length: number;
}

/**
 * Connections whose reads go straight to the `ws` parser, and of those, the ones whose reads
 * skip `Writable.write` too (for the test that pins this, `tests/direct_reads_test.ts`).
 */
export const directReads = {
  sockets: 0,
  parsedAtOnce: 0,
  /**
   * Off: sockets accepted from then on read through the `Readable` and hear messages from the
   * `WebSocket` (for A/B measurements, `bench/transport_micro.ts --direct-ab`).
   */
  enabled: true,
};

/**
 * Hands each read of an upgraded plain-TCP socket straight to `ws`' parser instead of through
 * the socket's `Readable` (`push` → `addChunk` → `emit("data")` → `ws`' listener →
 * `Writable.write`): that machinery went from 2.37 to 0.90 profiled µs per delivery with
 * {@linkcode hearParser} (BENCHMARKS.md "Session 5: relay CPU per delivered message"). The chunk
 * goes to the parser's own step (`_write`) when it parses synchronously, else to
 * `receiver.write`, the socket paused when that returns false, as `ws`' listener does. Whenever
 * the plain path could differ, the read takes it: the socket paused
 * or holding unread data (order), destroyed, `ws` no longer reading it (after a close frame or
 * a protocol error, it stops feeding the parser), the end of the stream and errors. TLS
 * sockets and handles that do not look as expected keep the plain path everywhere
 * (`tests/direct_reads_test.ts` fails when the runtime or `ws` changes what this relies on).
 */
function readsDirect(stream: Socket, receiver: Receiver, connection: DirectReads): void {
  const handle = (stream as unknown as { _handle?: Partial<ReadHandle> | null })._handle;
  if (
    !directReads.enabled || (stream as { encrypted?: boolean }).encrypted === true || !handle ||
    typeof handle.onread !== "function" || typeof handle.readStop !== "function" ||
    typeof handle.readStart !== "function"
  ) return;
  const plain = handle.onread;
  // `readable.destroyed`, `readableFlowing` and `readableLength` without their getters.
  const state = (stream as unknown as { _readableState: ReadableState })._readableState;
  // Cleared by the connection's shared listeners of the parser's `conclude` and `error` and of
  // the socket's `close` (no listener of its own: three fewer entries in their tables).
  connection.feeding = true;
  // Parsing synchronously, the parser needs none of `Writable.write`'s queueing: call its parse
  // step, and end it with the error as `Writable` would (`destroy` emits `error` on the next
  // tick, which `ws` answers with the close code).
  const parseAtOnce = typeof receiver._write === "function" &&
    receiver._allowSynchronousEvents === true &&
    Object.keys(receiver._extensions ?? {}).length === 0;
  const parsed = (error?: Error | null) => {
    if (!error) return;
    connection.feeding = false;
    receiver.destroy(error);
  };
  // This socket's reads in the current turn (`readTurn`): the runtime reads it again within the
  // turn while it has data waiting.
  let turn = -1;
  let reads = 0;
  // Set once the budget has stopped it: from then on, a read in a turn that has spent the budget
  // is kept for later even if it is the turn's first.
  let heavy = false;
  // The read the budget kept for later (`read_turns.ts`).
  let kept: ArrayBuffer | undefined;
  // A kept read goes where a read would go now: to the parser, or the plain path when the socket
  // was paused or `ws` stopped reading meanwhile.
  const handOn = (bytes: ArrayBuffer) => {
    if (connection.feeding && !state.destroyed && state.flowing === true && state.length === 0) {
      if (parseAtOnce) receiver._write(Buffer.from(bytes), "buffer", parsed);
      else if (!receiver.write(Buffer.from(bytes))) stream.pause();
    } else replayRead(handle as ReadHandle, plain, bytes);
  };
  // Its turn: the kept read handed on as a read of this turn, and the socket reading again,
  // unless the connection ended, was paused meanwhile (its `resume` then starts reading, as
  // usual) or `node:net` started it again itself. The stop keeps `node:net`'s `reading` note as
  // its own pauses do, so the handle is started once.
  const resume = () => {
    const bytes = kept;
    kept = undefined;
    const handed = bytes !== undefined && !state.destroyed;
    if (handed) {
      turn = readTurn;
      reads = 1;
      handOn(bytes);
    }
    if (
      connection.feeding && !state.destroyed && state.flowing === true && handle.reading === false
    ) {
      handle.reading = true;
      handle.readStart!();
    }
    return handed;
  };
  handle.onread = function (bytes) {
    // `node:net` started the socket again before its turn (a `resume`): the kept read first.
    if (kept !== undefined) {
      const earlier = kept;
      kept = undefined;
      handOn(earlier);
    }
    if (
      connection.feeding && bytes instanceof ArrayBuffer && bytes.byteLength > 0 &&
      !state.destroyed &&
      state.flowing === true && state.length === 0
    ) {
      readTurnStarts();
      if (turn !== readTurn) {
        turn = readTurn;
        reads = 0;
      }
      if ((++reads > 1 || heavy) && readTurnSpent()) {
        // Read again within a turn whose reads took their budget: the socket keeps this read
        // and stops until its turn, after the runtime has polled every socket (SECURITY.md "One
        // connection's reads"). A socket read once in a long turn (a collection, the process
        // descheduled) does not wait, unless the budget stopped it before.
        kept = bytes;
        heavy = true;
        handle.reading = false;
        handle.readStop!();
        readTurnWaits(resume);
        return undefined;
      }
      if (parseAtOnce) receiver._write(Buffer.from(bytes), "buffer", parsed);
      else if (!receiver.write(Buffer.from(bytes))) stream.pause();
      return undefined;
    }
    return plain.apply(this, arguments as unknown as [ArrayBuffer | undefined]);
  };
  // The handle took `onread` when it started reading: restart it to take this one.
  handle.readStop();
  handle.readStart();
  directReads.sockets++;
  if (parseAtOnce) directReads.parsedAtOnce++;
}

/** A writable stream whose `end` may be called again after it finished. */
interface EndableStream {
  end(...args: unknown[]): unknown;
  readonly writableFinished: boolean;
  readonly destroyed: boolean;
}

/**
 * Makes `end()` on a finished or destroyed stream a no-op. `ws` ends the connection and its
 * parser again when the peer's FIN arrives after the close handshake; the runtime then builds an
 * `ERR_STREAM_ALREADY_FINISHED` error with a stack trace each time, which measured about a
 * quarter of the server's CPU in the connect/close benchmark (BENCHMARKS.md, "Transport").
 */
function quietEnd(stream: EndableStream): void {
  const end = stream.end;
  let quiet = quietEnds.get(end);
  if (!quiet) {
    quiet = function (this: EndableStream, ...args: unknown[]) {
      if (this.writableFinished || this.destroyed) return this;
      return end.apply(this, args);
    };
    quietEnds.set(end, quiet);
  }
  stream.end = quiet;
}

/**
 * One quiet `end` per original `end` (in practice two: the socket's and the parser's), shared by
 * every connection instead of a closure per stream.
 */
const quietEnds = new Map<EndableStream["end"], EndableStream["end"]>();

/** What {@linkcode readsDirect} keeps on the connection. */
interface DirectReads {
  /** Reads may go to the parser: not after its `conclude` or `error`, nor the socket's `close`. */
  feeding: boolean;
}

/** One connection as the idle sweep sees it. */
interface IdleWatch {
  /** When the peer last sent something (a message, ping or pong), ms since the epoch. */
  heardMs: number;
  /** Pinged since it was last heard from. */
  pinged: boolean;
  ping(): void;
  /** Closes the connection for not answering (1001). */
  expire(): void;
}

/**
 * The idle timeout of every connection with the same `server.ping_timeout` (docs/spec/PROTOCOL.md
 * §7.10), checked by one interval timer, every quarter of the timeout, while it watches any
 * connection: a connection silent for half of the timeout is pinged, one silent for all of it
 * after a ping is closed with 1001, each within a quarter of the timeout of the due time. One
 * timer for all connections instead of one per connection (a `Timeout` and its runtime timer
 * per connect and close).
 */
class IdleSweep {
  readonly #watches = new Set<IdleWatch>();
  readonly #timeoutMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** `timeoutMs`: the idle timeout, ms (at least 1000). */
  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  add(watch: IdleWatch): void {
    this.#watches.add(watch);
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#sweep(Date.now()), this.#timeoutMs / 4);
    Deno.unrefTimer(this.#timer as unknown as number);
  }

  delete(watch: IdleWatch): void {
    this.#watches.delete(watch);
    this.#stopWhenIdle();
  }

  /** No connection left to watch: no timer either. */
  #stopWhenIdle(): void {
    if (this.#watches.size > 0 || this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #sweep(now: number): void {
    const half = this.#timeoutMs / 2;
    for (const watch of this.#watches) {
      const silentMs = now - watch.heardMs;
      try {
        if (silentMs < half) watch.pinged = false;
        else if (!watch.pinged) {
          watch.pinged = true;
          watch.ping();
        } else if (silentMs >= this.#timeoutMs) {
          this.#watches.delete(watch);
          watch.expire();
        }
      } catch (error) {
        // One connection's failure must not stop the sweep for the others.
        log.error("Idle sweep: {error}", bugFields(error));
      }
    }
    this.#stopWhenIdle();
  }
}

/** One idle sweep per timeout, seconds. */
const idleSweeps = new Map<number, IdleSweep>();

function idleSweep(timeoutSecs: number): IdleSweep {
  let sweep = idleSweeps.get(timeoutSecs);
  if (!sweep) {
    sweep = new IdleSweep(Math.max(1000, timeoutSecs * 1000));
    idleSweeps.set(timeoutSecs, sweep);
  }
  return sweep;
}

/** The close reason of a connection closed for not answering pings (1001, docs/spec/PROTOCOL.md §7.10). */
export const IDLE_TIMEOUT_REASON = "No response from ping frame.";

/** The end of a connection closed by the idle timeout. */
const IDLE_END: ConnectionEnd = Object.freeze({ code: 1001, initiator: "server" });

/** The loss of a connection gone silent after frames went out to it (docs/spec/EXTENSIONS.md E3). */
const UNHEARD: DisconnectLoss = Object.freeze({ truncated: true });

/** One `ws` server per message size limit (they hold no sockets, only options). */
const servers = new Map<number, WebSocketServer>();
/** The subprotocol chosen for an upgrade request, read by `handleProtocols`. */
const chosenProtocol = new WeakMap<IncomingMessage, string>();

function wsServer(maxPayload: number): WebSocketServer {
  let server = servers.get(maxPayload);
  if (!server) {
    server = new WebSocketServer({
      noServer: true,
      maxPayload,
      perMessageDeflate: false,
      clientTracking: false,
      // Pings are answered by `onPing` (one pong in flight per connection). `ws`' own answer
      // writes a pong per ping and ends the connection without a close frame (1006) once 60 of
      // them are unwritten, which 61 pings in one read do (SECURITY.md "Pings").
      autoPong: false,
      handleProtocols: (_offered, request) => chosenProtocol.get(request) ?? false,
    });
    servers.set(maxPayload, server);
  }
  return server;
}

/** What `ws` keeps of a message it stopped reading: the running total of its frame lengths. */
function refusedSize(socket: WsSocket, maxPayload: number): number {
  const receiver = (socket as unknown as { _receiver?: { _totalPayloadLength?: unknown } })
    ._receiver;
  const total = receiver?._totalPayloadLength;
  return typeof total === "number" && total > maxPayload ? total : maxPayload + 1;
}

/** Where the shared listeners below find their connection: a property of the emitter. */
const CONNECTION = Symbol("signal-fish connection");

/** An emitter the listeners of {@linkcode acceptWebSocket} are attached to. */
interface WithConnection {
  [CONNECTION]?: WsConnection;
}

/**
 * One accepted WebSocket connection's state: one object per connection instead of a closure per
 * listener. The listeners are shared functions that find it on the emitter ({@linkcode CONNECTION}),
 * and it is the connection's {@linkcode IdleWatch}.
 */
class WsConnection implements IdleWatch, DirectReads {
  heardMs = 0;
  pinged = false;
  feeding = false;
  id: string | undefined = undefined;
  ws: WsSocket | undefined = undefined;
  peer: SocketPeer | undefined = undefined;
  closed = false;
  watched = false;
  readonly edge: Edge;
  readonly settings: AcceptSettings;
  readonly ip: string;
  readonly stream: Socket;
  readonly maxPayload: number;

  constructor(
    edge: Edge,
    settings: AcceptSettings,
    ip: string,
    stream: Socket,
    maxPayload: number,
  ) {
    this.edge = edge;
    this.settings = settings;
    this.ip = ip;
    this.stream = stream;
    this.maxPayload = maxPayload;
  }

  /**
   * The socket is gone: gives the slot back. A connection the edge still has ended without a close
   * handshake (a close frame either way ends it for the edge first), so it is reported as 1006
   * with the cause its socket's state tells ({@linkcode abnormalEnd}).
   */
  teardown(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watched) idleSweep(this.settings.idleTimeoutSecs).delete(this);
    if (this.id !== undefined) {
      // Gone without a close handshake (1006): what it was sent since it was last heard from may
      // not have arrived.
      this.edge.disconnect(this.id, Date.now(), this.#unheard(), abnormalEnd(this.stream));
    }
    this.settings.onClosed?.(this.ip);
  }

  /** The replay is truncated when frames went out after the client was last heard from. */
  #unheard(): DisconnectLoss | undefined {
    return this.peer?.sentSinceHeard ? UNHEARD : undefined;
  }

  /** Called for every frame, ping or pong read from the client. */
  heard(now: number): void {
    this.heardMs = now;
    if (this.peer !== undefined) this.peer.sentSinceHeard = false;
  }

  /** A pong is written and its write not done yet ({@linkcode answerPing}). */
  pongInFlight = false;
  /** The payload of the latest ping read while a pong was in flight: answered after it. */
  #nextPong: Uint8Array | undefined = undefined;
  /** The write callback of this connection's pongs, made at its first ping. */
  #pongDone: ((error?: Error | null) => void) | undefined = undefined;

  /**
   * Answers a ping with a pong of the same payload (RFC 6455 section 5.5.2), at most one pong in
   * flight per connection: a ping read while the last pong's write is not done only replaces the
   * payload to answer next, which is written when that write is done (RFC 6455 section 5.5.3
   * lets an endpoint answer only the most recent ping). So however many pings arrive, a
   * connection holds one pong and one payload of at most 125 bytes, the pong counted in its
   * pending bytes (docs/spec/SERVER.md §5.2): a client that pings without reading cannot pile
   * pongs up, and one that reads gets its latest ping answered. Nothing is written once the
   * WebSocket is closing (after a close frame either way).
   */
  answerPing(payload: Uint8Array): void {
    if (this.pongInFlight) {
      // Copied: the parser's slice would keep its whole read alive.
      this.#nextPong = new Uint8Array(payload);
      return;
    }
    const ws = this.ws;
    const stream = this.stream;
    if (ws === undefined || ws.readyState !== OPEN || !stream.writable) return;
    const frame = pongFrame(payload);
    this.pongInFlight = true;
    this.peer?.wroteControl(frame.byteLength);
    // Through the stream, as `ws` writes control frames: behind anything unwritten of ours.
    stream.write(frame, this.#pongDone ??= (error) => this.#pongWritten(error));
  }

  #pongWritten(error?: Error | null): void {
    this.pongInFlight = false;
    const next = this.#nextPong;
    this.#nextPong = undefined;
    if (next !== undefined && !error) this.answerPing(next);
  }

  ping(): void {
    this.peer!.ping();
  }

  expire(): void {
    // The peer answers nothing: send the close frame and end the connection after it.
    const loss = this.#unheard();
    this.peer!.close(1001, IDLE_TIMEOUT_REASON);
    this.edge.disconnect(this.id!, Date.now(), loss, IDLE_END, true);
    this.stream.end();
  }
}

// The connection's end, whatever happened before: the only place a slot is given back. It runs
// before `ws` hears of it (it was attached before `ws`' own listener), so the edge still has the
// connection only if no close frame was sent or received.
function onRawClose(this: WithConnection): void {
  const connection = this[CONNECTION]!;
  connection.feeding = false;
  connection.teardown();
}

function onHeard(this: WithConnection): void {
  this[CONNECTION]!.heard(Date.now());
}

function onPing(this: WithConnection, payload: Uint8Array): void {
  const connection = this[CONNECTION]!;
  connection.heard(Date.now());
  connection.answerPing(payload);
}

/**
 * An unmasked pong frame (RFC 6455 section 5.5.3) carrying `payload` (at most 125 bytes), in a
 * buffer of its own (a slice of the shared pool would keep all 8 KiB of it alive while the pong
 * waits).
 */
function pongFrame(payload: Uint8Array): Uint8Array {
  const frame = Buffer.allocUnsafeSlow(2 + payload.byteLength);
  frame[0] = 0x8a;
  frame[1] = payload.byteLength;
  frame.set(payload, 2);
  return frame;
}

function onMessage(this: WithConnection, data: Uint8Array, isBinary: boolean): void {
  const connection = this[CONNECTION]!;
  const now = Date.now();
  connection.heard(now);
  const id = connection.id!;
  try {
    connection.edge.receive(id, isBinary ? data : (data as Buffer).toString(), now);
  } catch (error) {
    log.error("Cannot handle a frame from {connection_id}: {error}", {
      connection_id: id,
      ...bugFields(error),
    });
    connection.edge.close(id, 1011, "Internal error", Date.now());
  }
}

// Runs before `ws`' own handler, which closes with 1009 at once: the client first gets the
// `Error` frame telling why (docs/spec/SERVER.md §3.6).
function onReceiverError(this: WithConnection, error: Error & { code?: string }): void {
  const connection = this[CONNECTION]!;
  connection.feeding = false;
  if (error.code === TOO_MANY_FRAGMENTS) {
    const receiver = this as unknown as { _totalPayloadLength?: number };
    connection.edge.refuseTooFragmented(
      connection.id!,
      receiver._totalPayloadLength ?? 0,
      MAX_MESSAGE_FRAGMENTS,
      Date.now(),
    );
  } else if (error.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") {
    connection.edge.refuseTooLarge(
      connection.id!,
      refusedSize(connection.ws!, connection.maxPayload),
      Date.now(),
    );
  } else return;
  // Read nothing more of this message (`ws` would read and discard it until the close
  // handshake): the close frame still goes out, and the grace timer ends the connection.
  const stream = connection.stream;
  setTimeout(() => stream.pause(), 0);
}

// The client's close frame ends the connection for the edge at once (`ws` has answered it by
// now); the slot stays taken until the TCP connection is gone. Unless the server had closed it
// first (the edge has it no more then), the close is the client's, with its code (1005 when it
// named none).
function onConclude(this: WithConnection, code: number): void {
  const connection = this[CONNECTION]!;
  connection.feeding = false;
  connection.edge.disconnect(connection.id!, Date.now(), undefined, {
    code,
    initiator: "client",
  });
}

function onSocketError(this: WithConnection, error: Error & { code?: string }): void {
  if (error.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") return;
  const connection = this[CONNECTION]!;
  log.debug("WebSocket error on {connection_id}: {error}", {
    connection_id: connection.id,
    error: error.message,
  });
  connection.edge.transportError(connection.id!);
  // A frame `ws`' parser refused (RFC 6455 section 7.4.1): it has sent its close frame with the
  // error's status (1002, 1007, 1008, 1009). The server closed the connection, so it ends for the
  // edge now, as after the server's own closes, not when the client answers.
  const status = protocolErrorStatus(error);
  if (status !== undefined) connection.edge.close(connection.id!, status, "", Date.now());
}

/**
 * The close code `ws` closed the connection with for a protocol error: the number its parser
 * keeps under the symbol `status-code` (private to `ws` 8.x, pinned in deno.json); `undefined`
 * for other errors (a failed write).
 */
function protocolErrorStatus(error: Error): number | undefined {
  for (const key of Object.getOwnPropertySymbols(error)) {
    if (key.description !== "status-code") continue;
    const status = (error as unknown as Record<symbol, unknown>)[key];
    return typeof status === "number" ? status : undefined;
  }
  return undefined;
}

function onSocketClose(this: WithConnection): void {
  const connection = this[CONNECTION]!;
  connection.teardown();
  // `ws` destroys the socket after the close handshake; make sure of it.
  connection.stream.destroy();
}

/**
 * Takes over the raw socket of `request` (already admitted, docs/spec/SERVER.md §1.8; the listener attached
 * the socket, `../http/handover.ts`), completes the handshake with `ws` and wires the WebSocket to
 * `edge`. Returns the marker response of `switchingProtocols()`. Throws when `request` did not
 * arrive as an HTTP/1.1 upgrade (the caller answers 400). `options.onClosed` runs exactly once,
 * when the connection is gone, on every path: handshake refused by `ws`, reset before the 101,
 * closed after it.
 */
export function acceptWebSocket(
  request: RequestHead,
  edge: Edge,
  options: AcceptOptions,
): Response {
  return acceptWebSocketWith(request, edge, options, options.ip, options.tokenBinding);
}

/**
 * {@linkcode acceptWebSocket} with the endpoint's shared `settings` and this connection's client
 * IP and token binding as arguments (no options object per connection). Same answers and errors.
 */
export function acceptWebSocketWith(
  request: RequestHead,
  edge: Edge,
  settings: AcceptSettings,
  ip: string,
  tokenBinding: NegotiatedBinding | undefined,
): Response {
  const upgrade = takeUpgradeSocket(request);
  if (!upgrade) throw new TypeError("Not an HTTP/1.1 upgrade request");
  const { message, socket: raw, head } = upgrade;
  const stream = raw as Socket;
  const maxPayload = settings.maxMessageSize ?? 65_536;
  const connection = new WsConnection(edge, settings, ip, stream, maxPayload);
  (raw as WithConnection)[CONNECTION] = connection;
  // `on`, not `once`: a socket closes once, and `teardown` runs once (`once` costs a wrapper
  // and a bound function per connection).
  raw.on("close", onRawClose);
  if (raw.destroyed) {
    queueMicrotask(() => connection.teardown());
    return switchingProtocols();
  }
  if (tokenBinding) chosenProtocol.set(message, tokenBinding.subprotocol);
  // `head` is a `Buffer` from the listener; `Buffer.from` would copy it.
  const headBuffer = Buffer.isBuffer(head) ? head : Buffer.from(head);
  wsServer(maxPayload).handleUpgrade(message, raw, headBuffer, (socket) => {
    connection.ws = socket;
    if (connection.closed) {
      socket.terminate();
      return;
    }
    socket.binaryType = "nodebuffer";
    const peer = new SocketPeer(new FramedSocket(socket, stream), settings.outbound, stream, true);
    connection.peer = peer;
    connection.id = edge.connect(peer, {
      ip,
      tokenBinding: tokenBinding?.binding,
    });
    (socket as WithConnection)[CONNECTION] = connection;
    // Idle timeout (docs/spec/PROTOCOL.md §7.10): one sweep for all connections (`IdleSweep`);
    // traffic or a pong resets it.
    connection.heardMs = Date.now();
    connection.watched = true;
    idleSweep(settings.idleTimeoutSecs).add(connection);
    socket.on("pong", onHeard);
    socket.on("ping", onPing);
    const receiver = (socket as unknown as { _receiver?: Receiver })._receiver;
    if (receiver) (receiver as WithConnection)[CONNECTION] = connection;
    if (!receiver || !directReads.enabled || !hearParser(receiver, onMessage)) {
      socket.on("message", onMessage);
    }
    if (receiver) {
      limitFragments(receiver);
      readsDirect(stream, receiver, connection);
    }
    quietEnd(stream);
    if (receiver) quietEnd(receiver as unknown as EndableStream);
    receiver?.prependListener("error", onReceiverError);
    receiver?.on("conclude", onConclude);
    socket.on("error", onSocketError);
    socket.on("close", onSocketClose);
  });
  return switchingProtocols();
}
