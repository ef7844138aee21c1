/**
 * Errors the client rejects with: {@linkcode SignalFishError} when the server refused a request
 * (carrying the spec's error code, docs/spec/PROTOCOL.md §9), {@linkcode SignalFishConnectionError} when
 * the connection failed, closed or did not answer in time.
 *
 * @module
 */
import type { ErrorCode } from "../protocol/error_codes.ts";

/**
 * Server message types that carry a refusal with an `error_code`, and `"LobbyStateChanged"`
 * for `setReady()` giving up (`INVALID_ROOM_STATE`: the lobby still showed the other readiness
 * after its last toggle, docs/spec/PROTOCOL.md §7.4).
 */
export type FailureMessageType =
  | "Error"
  | "AuthenticationError"
  | "RoomJoinFailed"
  | "SpectatorJoinFailed"
  | "AuthorityResponse"
  | "ReconnectionFailed"
  | "LobbyStateChanged";

/**
 * A refusal from the server. `code` is the wire `error_code` (docs/spec/PROTOCOL.md §9), `message` the
 * server's human-readable reason (do not parse it), `messageType` the message that carried it.
 */
export class SignalFishError extends Error {
  /** The spec's error code, e.g. `"ROOM_FULL"`. */
  readonly code: ErrorCode;
  /** The server message that carried the refusal, e.g. `"RoomJoinFailed"`. */
  readonly messageType: FailureMessageType;

  /** Creates an error for `code` reported in a `messageType` message with text `message`. */
  constructor(code: ErrorCode, message: string, messageType: FailureMessageType) {
    super(message);
    this.name = "SignalFishError";
    this.code = code;
    this.messageType = messageType;
  }
}

/**
 * The connection could not be opened, closed while a request was waiting, was not open when a
 * message had to be sent, or the server did not answer within the request timeout. `closeCode`
 * is the WebSocket close code when the socket closed (docs/spec/PROTOCOL.md §1.6; 1006 when it was
 * lost or refused without a close frame), else `undefined`.
 * `cause` is the server's last unanswered `Error` before the close, when there was one (e.g.
 * `AUTHENTICATION_REQUIRED` before close 1008).
 */
export class SignalFishConnectionError extends Error {
  /** WebSocket close code, when the socket closed. */
  readonly closeCode: number | undefined;

  /** Creates a connection error; `closeCode` when a close frame was received. */
  constructor(message: string, closeCode?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SignalFishConnectionError";
    this.closeCode = closeCode;
  }
}
