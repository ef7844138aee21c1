/**
 * The seam between rooms and connections (SERVER.md §8.2): the engine addresses its output to
 * connection ids, and a `Fanout` gets each serialised frame to those connections, wherever their
 * sockets are. In one process that is a map of local peers ({@linkcode LocalFanout} in
 * `memory.ts`); in a cluster an adapter delivers local ids directly and publishes the frame once
 * per other instance that hosts recipients (SERVER.md §8.4).
 *
 * @module
 */

/** A connection id (UUIDv4, PROTOCOL.md §1.2). */
export type ConnId = string;

/**
 * Why a peer did not take a frame (SERVER.md §5.2): its socket is no longer open, or it is a
 * slow consumer whose outbound buffer would overflow (`dropped` = messages discarded, this one
 * included; the peer's application queue is already emptied).
 */
export type SendFailure = { reason: "closed" } | { reason: "overflow"; dropped: number };

/** The two things a room needs from a connection's socket. */
export interface Peer {
  /**
   * Queues one frame (text = JSON message, binary = MessagePack envelope). Returns
   * `undefined` when taken, else why not.
   */
  send(frame: string | Uint8Array): SendFailure | undefined;
  /**
   * Writes what `send` queued (write batching, SERVER.md §5.3). The hub calls it once it has
   * carried out everything one event produced. Peers that write at once do not define it.
   */
  flush?(): void;
  /** Closes the connection with a WebSocket close code (PROTOCOL.md §1.6). */
  close(code: number, reason: string): void;
}

/** Delivers room output to connections by id. */
export interface Fanout {
  /**
   * Hands one already-serialised frame to every connection in `to`, in order (the frame is
   * built once per message, SERVER.md §5.1). Unknown or closed ids are skipped.
   */
  deliver(frame: string | Uint8Array, to: readonly ConnId[]): void;
  /** Closes connection `to` with `code` and `reason`. Unknown ids are ignored. */
  close(to: ConnId, code: number, reason: string): void;
}
