/**
 * The part of `npm:ws` (8.x) this server uses, typed here so that the type check does not pull
 * in `@types/node` (which changes Deno's global timer types).
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";

/** A server-side WebSocket of `ws`. */
export declare class WebSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  binaryType: "nodebuffer" | "arraybuffer" | "fragments";
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  ping(): void;
  terminate(): void;
  on(event: "message", listener: (data: Uint8Array, isBinary: boolean) => void): this;
  on(event: "close", listener: (code: number, reason: Uint8Array) => void): this;
  on(event: "error", listener: (error: Error & { code?: string }) => void): this;
  /** `ping` gets the ping's payload (at most 125 bytes), `pong` the pong's. */
  on(event: "ping" | "pong", listener: (data: Uint8Array) => void): this;
  addEventListener(type: "close", listener: () => void, options?: { once?: boolean }): void;
}

/** Options of {@linkcode WebSocketServer} used here. */
export interface ServerOptions {
  noServer: true;
  maxPayload: number;
  perMessageDeflate: false;
  clientTracking: false;
  /** Off: pings are answered by the server's own listener, not by `ws`. */
  autoPong?: false;
  handleProtocols: (offered: Set<string>, request: IncomingMessage) => string | false;
}

/** Completes handshakes of upgrade requests received elsewhere (`noServer`). */
export declare class WebSocketServer {
  constructor(options: ServerOptions);
  handleUpgrade(
    request: IncomingMessage,
    socket: Duplex,
    head: Uint8Array,
    callback: (socket: WebSocket) => void,
  ): void;
}
