/**
 * The log lines of edge and engine events (docs/spec/SERVER.md §7): one observer of the event stream,
 * beside the metrics. Category `signal-fish.hub` (kept from before the edge had its name, so
 * log filters keep working).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { EdgeEvent } from "../transport/events.ts";

const log = getLogger(["signal-fish", "hub"]);

/** Writes the log line of `event`, if it has one. Never throws on unknown events. */
export function logEvent(event: EdgeEvent): void {
  switch (event.type) {
    case "connected":
      log.info("Connection {connection_id} opened from {client_ip}", {
        connection_id: event.connectionId,
        client_ip: event.ip,
      });
      break;
    case "disconnected":
      log.info("Connection {connection_id} closed ({code})", {
        connection_id: event.connectionId,
        code: event.code,
      });
      break;
    case "invalid_message":
      log.debug("Invalid message from {connection_id}: {detail}", {
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
      log.info("Room {room_code} created for {game_name}", {
        game_name: event.gameName,
        room_code: event.roomCode,
        room_id: event.roomId,
        player_id: event.playerId,
      });
      break;
    case "room_joined":
      log.debug("Player {player_id} joined room {room_code}", {
        game_name: event.gameName,
        room_code: event.roomCode,
        room_id: event.roomId,
        player_id: event.playerId,
      });
      break;
    case "seat_released":
      log.debug("Player {player_id} left room {room_code} ({reason})", {
        game_name: event.gameName,
        room_code: event.roomCode,
        player_id: event.playerId,
        reason: event.reason,
      });
      break;
    case "room_deleted":
      log.info("Room {room_code} deleted ({reason})", {
        game_name: event.gameName,
        room_code: event.roomCode,
        room_id: event.roomId,
        reason: event.reason,
      });
      break;
    case "spectator_joined":
    case "spectator_left":
      log.debug("Spectator {player_id} {action} room {room_code}", {
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
      log.info("Client authenticated", { connection_id: event.connectionId, app_id: event.appId });
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
