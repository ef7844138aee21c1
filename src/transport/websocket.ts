/**
 * The only WebSocket code of the server: upgrades a request and binds the socket to the hub.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Hub } from "./hub.ts";

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
}

/**
 * Upgrades `request` (already admitted, SERVER.md §1.8) and wires the socket to `hub`.
 * Returns the 101 response. Throws if the request is not a valid upgrade.
 */
export function acceptWebSocket(request: Request, hub: Hub, options: AcceptOptions): Response {
  const { socket, response } = Deno.upgradeWebSocket(request, {
    idleTimeout: options.idleTimeoutSecs,
  });
  socket.binaryType = "arraybuffer";
  let id: string | undefined;
  let closed = false;
  socket.onopen = () => {
    id = hub.connect({
      send(frame) {
        if (socket.readyState === WebSocket.OPEN) socket.send(frame);
      },
      close(code, reason) {
        if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
          socket.close(code, reason);
        }
      },
    }, { ip: options.ip });
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
