/**
 * The hand-over between the listener and the WebSocket layer (docs/spec/SERVER.md §1.8): the listener
 * turns an HTTP upgrade into a `Request` and remembers its raw socket here; the WebSocket layer
 * takes the socket over and answers with a marker response telling the listener that the socket
 * is no longer its to answer.
 *
 * @module
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";

/** The raw side of one upgrade request. */
export interface UpgradeSocket {
  /** The parsed request head. */
  message: IncomingMessage;
  /** The connection (TCP or TLS), not yet written to. */
  socket: Duplex;
  /** Bytes that followed the request head (the first frames, if the client did not wait). */
  head: Uint8Array;
}

const sockets = new WeakMap<Request, UpgradeSocket>();
const switched = new WeakSet<Response>();

/** Remembers the raw socket of an upgrade `request` (the listener calls this). */
export function attachUpgradeSocket(request: Request, upgrade: UpgradeSocket): void {
  sockets.set(request, upgrade);
}

/**
 * The raw socket of `request`, once: a second call returns undefined, so a socket is taken over
 * by one owner only. Undefined for requests that did not arrive as an HTTP/1.1 upgrade.
 */
export function takeUpgradeSocket(request: Request): UpgradeSocket | undefined {
  const upgrade = sockets.get(request);
  sockets.delete(request);
  return upgrade;
}

/** A fresh marker response meaning "the socket was taken over" (the 101 was or will be sent). */
export function switchingProtocols(): Response {
  const response = new Response(null, { status: 200 });
  switched.add(response);
  return response;
}

/** True for a response made by {@linkcode switchingProtocols}. */
export function isSwitchingProtocols(response: Response): boolean {
  return switched.has(response);
}
