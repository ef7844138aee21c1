/**
 * The only WebSocket code of the server: upgrades a request and binds the socket to the hub.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Hub, Peer, SendFailure } from "./hub.ts";
import type { TokenBinding } from "./token_binding.ts";

const log = getLogger(["signal-fish", "websocket"]);

/** Options of {@linkcode acceptWebSocket}. */
export interface AcceptOptions {
  /** Client IP the connection is counted under (SERVER.md §1.9). */
  ip: string;
  /**
   * Idle timeout in seconds (`server.ping_timeout`): the runtime pings after half of it and
   * closes with 1001 "No response from ping frame." after all of it (PROTOCOL.md §7.10).
   */
  idleTimeoutSecs: number;
  /** Called once when the socket is gone, after the hub has torn the connection down. */
  onClosed?: () => void;
  /** Outbound budget and batching (SERVER.md §5.2, §5.3). */
  outbound: OutboundOptions;
  /**
   * Token binding negotiated for this connection (SERVER.md §1.8, §3.9): the subprotocol named
   * in the 101 response and what the hub needs to check each text frame.
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
 * and the hub closes it with 1013. With batching, frames wait in the queue until `batchSize`
 * are queued or the current task ends (a microtask), which is well within
 * `websocket.batch_interval_ms`: Deno writes every frame with its own call, so waiting longer
 * would add latency without saving work. Each message stays its own frame, in order.
 */
export class SocketPeer implements Peer {
  readonly #socket: WebSocket;
  readonly #options: OutboundOptions;
  #queue: (string | Uint8Array)[] = [];
  #queuedBytes = 0;
  #flushScheduled = false;
  readonly #flushTask = () => {
    this.#flushScheduled = false;
    this.flush();
  };

  /** Wraps an accepted socket. */
  constructor(socket: WebSocket, options: OutboundOptions) {
    this.#socket = socket;
    this.#options = options;
  }

  /** Queues (or writes) one frame of `bytes` bytes; see the class notes for refusals. */
  send(frame: string | Uint8Array, bytes: number): SendFailure | undefined {
    const socket = this.#socket;
    if (socket.readyState !== WebSocket.OPEN) return CLOSED;
    const pending = this.#queuedBytes + socket.bufferedAmount;
    if (pending > 0 && pending + bytes > this.#options.maxBufferedBytes) {
      const dropped = this.#queue.length + 1;
      this.#queue = [];
      this.#queuedBytes = 0;
      return { reason: "overflow", dropped };
    }
    if (!this.#options.enableBatching) {
      socket.send(frame);
      return undefined;
    }
    this.#queue.push(frame);
    this.#queuedBytes += bytes;
    if (this.#queue.length >= this.#options.batchSize) this.flush();
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flushTask);
    }
    return undefined;
  }

  /** Writes every queued frame, in order. */
  flush(): void {
    const queue = this.#queue;
    if (queue.length === 0) return;
    this.#queue = [];
    this.#queuedBytes = 0;
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    for (const frame of queue) this.#socket.send(frame);
  }

  /** Writes what is queued (the message a close is preceded by), then closes. */
  close(code: number, reason: string): void {
    const socket = this.#socket;
    this.flush();
    if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
      socket.close(code, reason);
    }
  }
}

const CLOSED: SendFailure = { reason: "closed" };

/**
 * Upgrades `request` (already admitted, SERVER.md §1.8) and wires the socket to `hub`.
 * Returns the 101 response. Throws if the request is not a valid upgrade.
 */
export function acceptWebSocket(request: Request, hub: Hub, options: AcceptOptions): Response {
  const { socket, response } = Deno.upgradeWebSocket(request, {
    idleTimeout: options.idleTimeoutSecs,
    protocol: options.tokenBinding?.subprotocol,
  });
  socket.binaryType = "arraybuffer";
  let id: string | undefined;
  let closed = false;
  socket.onopen = () => {
    id = hub.connect(new SocketPeer(socket, options.outbound), {
      ip: options.ip,
      tokenBinding: options.tokenBinding?.binding,
    });
  };
  socket.onmessage = (event) => {
    if (id === undefined) return;
    try {
      hub.receive(id, event.data, Date.now());
    } catch (error) {
      log.error("Cannot handle a frame from {connection_id}: {error}", {
        connection_id: id,
        error,
      });
      hub.close(id, 1011, "Internal error", Date.now());
    }
  };
  const teardown = () => {
    if (closed) return;
    closed = true;
    if (id !== undefined) hub.disconnect(id, Date.now());
    options.onClosed?.();
  };
  socket.onclose = teardown;
  socket.onerror = () => {
    if (id !== undefined) hub.transportError(id);
    // An error event is followed by close; tearing down here too keeps the count exact if not.
    if (socket.readyState === WebSocket.CLOSED) teardown();
  };
  return response;
}
