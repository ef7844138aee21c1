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
}
