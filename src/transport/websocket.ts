/**
 * The only WebSocket code of the server: upgrades a request and binds the socket to the edge.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { utf8Length } from "../protocol/utf8.ts";
import type { Edge } from "./edge.ts";
import type { Peer, SendFailure } from "./peer.ts";
import type { TokenBinding } from "./token_binding.ts";

const log = getLogger(["signal-fish", "websocket"]);

// `WebSocket.readyState` values (WHATWG WebSockets). Deno defines the `WebSocket` global lazily,
// so reading `WebSocket.OPEN` costs a getter call on every send; these are constants.
const CONNECTING = 0;
const OPEN = 1;
const CLOSED_STATE = 3;

/** Options of {@linkcode acceptWebSocket}. */
export interface AcceptOptions {
  /** Client IP the connection is counted under (SERVER.md §1.9). */
  ip: string;
  /**
   * Idle timeout in seconds (`server.ping_timeout`): the runtime pings after half of it and
   * closes with 1001 "No response from ping frame." after all of it (PROTOCOL.md §7.10).
   */
  idleTimeoutSecs: number;
  /** Called once when the socket is gone, after the edge has torn the connection down. */
  onClosed?: () => void;
  /** Outbound budget and batching (SERVER.md §5.2, §5.3). */
  outbound: OutboundOptions;
  /**
   * Token binding negotiated for this connection (SERVER.md §1.8, §3.9): the subprotocol named
   * in the 101 response and what the edge needs to check each text frame.
   */
  tokenBinding?: { subprotocol: string; binding: TokenBinding };
}

/** Per-connection outbound settings (`websocket.*`, SERVER.md §5.2–5.3). */
export interface OutboundOptions {
  /** Pending-byte budget before a connection is a slow consumer. @default 1_048_576 */
  maxBufferedBytes: number;
  /** Coalesce writes: queue messages and write them together. @default true */
  enableBatching: boolean;
  /** Write the queue as soon as this many messages wait. @default 10 */
  batchSize: number;
}

/**
 * The outbound side of one socket (SERVER.md §5.2–5.3). Pending bytes are the application
 * queue plus the runtime's `bufferedAmount`; a frame that would take them past the budget (when
 * something is already pending) makes the connection a slow consumer: the queue is discarded
 * and the edge closes it with 1013. With batching, frames wait in the queue until `batchSize`
 * are queued or the edge has carried out everything the current event produced (it then calls
 * {@linkcode SocketPeer.flush}), which is well within `websocket.batch_interval_ms`. Deno writes
 * every frame with its own call, so waiting longer would add latency without saving work (a
 * microtask per connection was measured at +2.5 ms p99 and +2 µs CPU per message, BENCHMARKS.md).
 * Each message stays its own frame, in order.
 *
 * Cost on the relay path: the exact byte counts (a UTF-8 scan of each text frame) and the
 * runtime's `bufferedAmount` (a call into the runtime) are only needed near the budget. The peer
 * keeps an upper bound of its pending bytes (a text frame is at most 3 bytes per UTF-16 code
 * unit; `bufferedAmount` grows by at most what was written since it was last read) and
 * measures exactly only when that bound could exceed the budget.
 */
export class SocketPeer implements Peer {
  readonly #socket: WebSocket;
  readonly #options: OutboundOptions;
  readonly #queue: (string | Uint8Array)[] = [];
  /** Upper bound of the queue's bytes. */
  #queuedBound = 0;
  /** Upper bound of `bufferedAmount`: its last reading plus what was written since. */
  #bufferedBound = 0;

  /** Wraps an accepted socket. */
  constructor(socket: WebSocket, options: OutboundOptions) {
    this.#socket = socket;
    this.#options = options;
    this.flush = options.enableBatching ? () => this.#flush() : undefined;
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

  #flush(): void {
    const queue = this.#queue;
    const count = queue.length;
    if (count === 0) return;
    this.#bufferedBound += this.#queuedBound;
    this.#queuedBound = 0;
    const socket = this.#socket;
    if (socket.readyState === OPEN) {
      for (let i = 0; i < count; i++) socket.send(queue[i]!);
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
        if (socket.readyState !== CLOSED_STATE) abortSocket(socket);
      }, CLOSE_GRACE_MS);
      Deno.unrefTimer(timer);
      socket.addEventListener("close", () => clearTimeout(timer), { once: true });
    }
  }
}

/** How long a server-initiated close may wait for the peer's close frame (SERVER.md §5.2). */
export const CLOSE_GRACE_MS = 2000;

/**
 * Drops a socket's connection without the close handshake. Deno has no public API for this (a
 * `close()` waits behind unsent data for as long as the peer does not read), so this closes the
 * socket's resource through the runtime's internal handle, when available; otherwise it does
 * nothing and the idle timeout remains the only way out. Returns whether it could.
 */
export function abortSocket(socket: WebSocket): boolean {
  try {
    const internal =
      (Deno as unknown as Record<symbol, { core?: { tryClose?(rid: number): void } }>)[
        (Deno as unknown as { internal: symbol }).internal
      ];
    const ridKey = Object.getOwnPropertySymbols(socket).find((key) =>
      key.description === "[[rid]]"
    );
    const rid = ridKey && (socket as unknown as Record<symbol, unknown>)[ridKey];
    if (typeof rid !== "number" || typeof internal?.core?.tryClose !== "function") return false;
    internal.core.tryClose(rid);
    return true;
  } catch {
    return false;
  }
}

const CLOSED: SendFailure = { reason: "closed" };

/** Exact size of a frame on the wire (payload bytes). */
function byteSize(frame: string | Uint8Array): number {
  return typeof frame === "string" ? utf8Length(frame) : frame.byteLength;
}

/** The close reason of a connection the runtime closed for not answering pings (1001). */
export const IDLE_TIMEOUT_REASON = "No response from ping frame.";

/**
 * True when a server socket's error or close event reports the idle timeout (PROTOCOL.md §7.10).
 * The runtime first fires an error event with {@linkcode IDLE_TIMEOUT_REASON} as its message,
 * then a close event with 1001 and that reason and no close handshake (a client sending that
 * code and reason itself closes cleanly, so it does not count).
 */
export function isIdleTimeout(event: Event): boolean {
  if (event instanceof CloseEvent) {
    return event.code === 1001 && !event.wasClean && event.reason === IDLE_TIMEOUT_REASON;
  }
  return event instanceof ErrorEvent && event.message === IDLE_TIMEOUT_REASON;
}

/**
 * Upgrades `request` (already admitted, SERVER.md §1.8) and wires the socket to `edge`.
 * Returns the 101 response. Throws if the request is not a valid upgrade.
 */
export function acceptWebSocket(request: Request, edge: Edge, options: AcceptOptions): Response {
  const { socket, response } = Deno.upgradeWebSocket(request, {
    idleTimeout: options.idleTimeoutSecs,
    protocol: options.tokenBinding?.subprotocol,
  });
  socket.binaryType = "arraybuffer";
  let id: string | undefined;
  let closed = false;
  socket.onopen = () => {
    id = edge.connect(new SocketPeer(socket, options.outbound), {
      ip: options.ip,
      tokenBinding: options.tokenBinding?.binding,
    });
  };
  socket.onmessage = (event) => {
    if (id === undefined) return;
    try {
      edge.receive(id, event.data, Date.now());
    } catch (error) {
      log.error("Cannot handle a frame from {connection_id}: {error}", {
        connection_id: id,
        error,
      });
      edge.close(id, 1011, "Internal error", Date.now());
    }
  };
  const teardown = (closeCode?: number, idleTimeout = false) => {
    if (closed) return;
    closed = true;
    if (id !== undefined) edge.disconnect(id, Date.now(), undefined, closeCode, idleTimeout);
    options.onClosed?.();
  };
  socket.onclose = (event) => teardown(event.code, isIdleTimeout(event));
  socket.onerror = (event) => {
    if (id !== undefined) edge.transportError(id);
    // An error event is followed by close; tearing down here too keeps the count exact if not.
    if (socket.readyState === CLOSED_STATE) {
      const idle = isIdleTimeout(event);
      teardown(idle ? 1001 : undefined, idle);
    }
  };
  return response;
}
