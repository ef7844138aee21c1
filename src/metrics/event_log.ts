/**
 * The log lines of edge and engine events (docs/spec/SERVER.md §7): one observer of the event stream,
 * beside the metrics. Category `signal-fish.hub` (kept from before the edge had its name, so
 * log filters keep working).
 *
 * @module
 */
import { getLogger, type LogLevel } from "@logtape/logtape";
import type { EdgeEvent } from "../transport/events.ts";
import type { AbnormalCause } from "../transport/peer.ts";

const log = getLogger(["signal-fish", "hub"]);

/**
 * Tells, before a line's record is built, that the line would be dropped: below the configured
 * level, or by the per-event rate limit, which counts it (`RateLimitedSink.suppresses` of
 * `src/logging.ts`). `category` is the logger's array, `template` the literal message,
 * `timestamp` ms.
 */
export type SuppressedLine = (
  category: readonly string[],
  template: string,
  level: LogLevel,
  timestamp: number,
) => boolean;

let suppressed: SuppressedLine | undefined;

/**
 * Installs (or with `undefined` removes) the early check, so a flood of lifecycle events
 * (thousands of connections a second) does not build a logtape record per line only for the
 * level or the rate limit to drop it (docs/spec/SERVER.md §7.3 note). Lines that pass are logged
 * as before; without a check every line goes to logtape. `main.ts` installs one that mirrors its
 * configuration (the level of `["signal-fish"]`, its rate-limited sink).
 */
export function setSuppressedLineCheck(check: SuppressedLine | undefined): void {
  suppressed = check;
}

/** Whether a line of `template` at `level` is dropped now (see {@linkcode SuppressedLine}). */
function quiet(template: string, level: LogLevel): boolean {
  return suppressed !== undefined && suppressed(log.category, template, level, Date.now());
}

const OPENED = "Connection {connection_id} opened from {client_ip}";
const CLOSED = "Connection {connection_id} closed ({code}, by {initiator})";
/**
 * The line of a connection that ended without a close handshake (1006), by cause
 * (docs/spec/SERVER.md §7.4): the cause in words; `{error}` is the socket error's code.
 */
const CLOSED_ABNORMALLY: Readonly<Record<AbnormalCause, string>> = {
  reset: "Connection {connection_id} closed ({code}, reset by client: {error})",
  eof: "Connection {connection_id} closed ({code}, client ended it without a close frame)",
  write_error: "Connection {connection_id} closed ({code}, a write failed: {error})",
  destroyed: "Connection {connection_id} closed ({code}, ended by server)",
  unknown: "Connection {connection_id} closed ({code}, cause unknown)",
};
const ROOM_CREATED = "Room {room_code} created for {game_name}";
const ROOM_DELETED = "Room {room_code} deleted ({reason})";
const AUTHENTICATED = "Client authenticated";
const SPECTATOR = "Spectator {player_id} {action} room {room_code}";
const LEFT = "Player {player_id} left room {room_code} ({reason})";
const JOINED = "Player {player_id} joined room {room_code}";
const INVALID = "Invalid message from {connection_id}: {detail}";

/** Writes the log line of `event`, if it has one. Never throws on unknown events. */
export function logEvent(event: EdgeEvent): void {
  switch (event.type) {
    case "connected":
      if (quiet(OPENED, "info")) break;
      log.info(OPENED, {
        connection_id: event.connectionId,
        client_ip: event.ip,
      });
      break;
    case "disconnected": {
      if (event.code !== 1006) {
        if (quiet(CLOSED, "info")) break;
        log.info(CLOSED, {
          connection_id: event.connectionId,
          code: event.code,
          initiator: event.initiator,
        });
        break;
      }
      const cause = event.cause !== undefined && Object.hasOwn(CLOSED_ABNORMALLY, event.cause)
        ? event.cause
        : "unknown";
      const template = CLOSED_ABNORMALLY[cause];
      if (quiet(template, "info")) break;
      log.info(template, {
        connection_id: event.connectionId,
        code: event.code,
        initiator: event.initiator,
        cause,
        // The templates of read and write errors name it; an error without a code reads "?".
        ...(event.error !== undefined || template.includes("{error}")
          ? { error: event.error ?? "?" }
          : undefined),
      });
      break;
    }
    case "invalid_message":
      if (quiet(INVALID, "debug")) break;
      log.debug(INVALID, {
        connection_id: event.connectionId,
        detail: event.detail,
      });
      break;
    case "message_too_large":
      log.warn("Frame of {size} bytes from {connection_id} exceeds {max}", {
        connection_id: event.connectionId,
        size: event.size,
        max: event.max,
      });
      break;
    case "slow_consumer":
      log.warn("Closing slow consumer {connection_id} ({dropped} messages dropped)", {
        connection_id: event.connectionId,
        dropped: event.dropped,
      });
      break;
    case "room_created":
      if (quiet(ROOM_CREATED, "info")) break;
      log.info(ROOM_CREATED, {
        game_name: event.gameName,
        room_code: event.roomCode,
        room_id: event.roomId,
        player_id: event.playerId,
      });
      break;
    case "room_joined":
      if (quiet(JOINED, "debug")) break;
      log.debug(JOINED, {
        game_name: event.gameName,
        room_code: event.roomCode,
        room_id: event.roomId,
        player_id: event.playerId,
      });
      break;
    case "seat_released":
      if (quiet(LEFT, "debug")) break;
      log.debug(LEFT, {
        game_name: event.gameName,
        room_code: event.roomCode,
        player_id: event.playerId,
        reason: event.reason,
      });
      break;
    case "room_deleted":
      if (quiet(ROOM_DELETED, "info")) break;
      log.info(ROOM_DELETED, {
        game_name: event.gameName,
        room_code: event.roomCode,
        room_id: event.roomId,
        reason: event.reason,
      });
      break;
    case "spectator_joined":
    case "spectator_left":
      if (quiet(SPECTATOR, "debug")) break;
      log.debug(SPECTATOR, {
        game_name: event.gameName,
        room_code: event.roomCode,
        player_id: event.spectatorId,
        action: event.type === "spectator_joined" ? "joined" : "left",
      });
      break;
    case "seat_held":
      log.info("Seat of {player_id} in room {room_code} held for reconnection", {
        game_name: event.gameName,
        room_code: event.roomCode,
        player_id: event.playerId,
        truncated: event.truncated,
      });
      break;
    case "player_reconnected":
      log.info("Seat of {player_id} in room {room_code} restored", {
        game_name: event.gameName,
        room_code: event.roomCode,
        player_id: event.playerId,
        takeover: event.takeover,
        missed: event.missed,
      });
      break;
    case "seat_expired":
      log.info("Seat of {player_id} in room {room_code} expired", {
        game_name: event.gameName,
        room_code: event.roomCode,
        player_id: event.playerId,
      });
      break;
    case "authenticated":
      if (quiet(AUTHENTICATED, "info")) break;
      log.info(AUTHENTICATED, { connection_id: event.connectionId, app_id: event.appId });
      break;
    case "auth_failed":
      log.warn("Authentication failed for {connection_id}: {error_code}", {
        connection_id: event.connectionId,
        error_code: event.errorCode,
      });
      break;
    default:
      break;
  }
}
