/**
 * What the edge needs from a connection's socket: a `send`/`flush`/`close` triple, so the same
 * edge serves WebSockets and test doubles.
 *
 * @module
 */

/**
 * Why a peer did not take a frame (docs/spec/SERVER.md §5.2): its socket is no longer open, or it is a
 * slow consumer whose outbound buffer would overflow (`dropped` = messages discarded, this one
 * included; the peer's application queue is already emptied).
 */
export type SendFailure = { reason: "closed" } | { reason: "overflow"; dropped: number };

/**
 * Which side ended a connection (docs/spec/SERVER.md §6.3 #97): `client` when the client sent the
 * first close frame or its side of the connection ended without one (a reset, an EOF); `server`
 * when the server closed it (a close code of docs/spec/PROTOCOL.md §1.6, a protocol error, a write
 * that failed, the server destroying the socket).
 */
export type CloseInitiator = "client" | "server";

/**
 * Why a connection ended without a close handshake (close code 1006), as far as its socket tells
 * (docs/spec/SERVER.md §6.3 #97, §7.4): `reset` — a read failed, the client's side reset it
 * (ECONNRESET; other read errors such as ETIMEDOUT too, named in `ConnectionEnd.error`); `eof` —
 * the client ended its side of the TCP connection without a close frame; `write_error` — a write
 * of the server failed (EPIPE, ECONNRESET on a write, …); `destroyed` — the server destroyed the
 * socket itself (with neither an error nor an EOF seen: a close not answered in time); `unknown` —
 * none of these is known.
 */
export type AbnormalCause = "reset" | "eof" | "write_error" | "destroyed" | "unknown";

/** How a connection ended (docs/spec/SERVER.md §6.3 #97, §7.4): reported by the edge once. */
export interface ConnectionEnd {
  /**
   * The WebSocket close code: the one the server sent when it closed, the client's when the
   * client closed (1005 for a close frame without one), 1006 when there was no close handshake.
   */
  readonly code: number;
  readonly initiator: CloseInitiator;
  /** With code 1006 only: why there was no close handshake. */
  readonly cause?: AbnormalCause;
  /** The socket error's code (`ECONNRESET`, `EPIPE`, …) when a read or write failed. */
  readonly error?: string;
}

/**
 * The end of a connection whose transport or socket cannot tell how it ended: 1006 from the
 * client, cause `unknown` (docs/spec/SERVER.md §6.3 #97).
 */
export const UNKNOWN_END: ConnectionEnd = Object.freeze({
  code: 1006,
  initiator: "client",
  cause: "unknown",
});

/** The three things the edge needs from a connection's socket. */
export interface Peer {
  /**
   * Queues one frame (text = JSON message, binary = MessagePack envelope). Returns
   * `undefined` when taken, else why not.
   */
  send(frame: string | Uint8Array): SendFailure | undefined;
  /**
   * Writes what `send` queued (write batching, docs/spec/SERVER.md §5.3). The edge calls it once it has
   * carried out everything one event produced. Peers that write at once do not define it.
   */
  flush?(): void;
  /** Closes the connection with a WebSocket close code (docs/spec/PROTOCOL.md §1.6). */
  close(code: number, reason: string): void;
  /**
   * Stops reading the connection for `ms` (backpressure: cluster mode's forwarding budget,
   * src/transport/forward_budget.ts); frames already received are still handled, and reading
   * resumes after `ms` unless the connection closed. A hold while held keeps the later end.
   * Peers without reads of their own to stop do not define it.
   */
  holdReads?(ms: number): void;
  /**
   * Bytes waiting to go out now, exactly: queued by `send` and accepted by the socket but not yet
   * written to the kernel (docs/spec/SERVER.md §5.2 "pending bytes"). Read once a second for
   * `websocket.max_buffered_bytes_total`; peers that buffer nothing do not define it.
   */
  pendingBytes?(): number;
  /**
   * How the connection ended, once its socket is no longer open (`send` answered `closed`) and
   * before the transport reported it: read from the socket's state, not from listeners. Peers
   * that cannot tell do not define it (the edge then reports code 1006, cause `unknown`).
   */
  ended?(): ConnectionEnd;
}
