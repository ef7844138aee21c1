/**
 * What the engine returns: effects (messages to send, sockets to close, directory writes, events
 * to log or count) and the small builders every engine part shares. The engine never performs
 * I/O; the edge carries effects out in order (docs/spec/SERVER.md §5).
 *
 * Recipients: inside the engine parts, `to` names identities (player or spectator ids). The
 * engine facade routes every effect before returning it ({@linkcode Reconnection.route}): held
 * seats' messages go to their replay buffers and adopted player ids become the connection id
 * that adopted them, so what leaves the engine is addressed to connection ids.
 *
 * @module
 */
import type { ErrorCode } from "../protocol/error_codes.ts";
import type { ServerMessage } from "../protocol/messages.ts";

/** A connection id: a UUIDv4 assigned at accept time (docs/spec/PROTOCOL.md §1.2). */
export type ConnId = string;

/** Room summary for the HTTP lookup and listing (docs/spec/EXTENSIONS.md E5/E6, docs/spec/SERVER.md §1.10). */
export interface RoomSummary {
  room_code: string;
  game_name: string;
  players: number;
  max_players: number;
  spectators: number;
  lobby_state: string;
  supports_authority: boolean;
  relay_type: string;
  /** Whether authority passes on when its holder's seat is released (docs/spec/EXTENSIONS.md E11). */
  authority_handover: boolean;
}

/** One seat as an operator sees it (docs/spec/EXTENSIONS.md E12). */
export interface SeatDetail {
  player_id: string;
  name: string;
  is_authority: boolean;
  is_ready: boolean;
  /** RFC 3339 with milliseconds. */
  connected_at: string;
  /** The connection dropped and the seat is held for a `Reconnect` (docs/spec/PROTOCOL.md §7.11.2). */
  held: boolean;
}

/** A room in detail for operators (docs/spec/EXTENSIONS.md E12): the summary plus members and activity. */
export interface RoomDetail extends RoomSummary {
  room_id: string;
  /** Creation time, ms since the epoch. */
  created_at: number;
  /** Age at the time of the answer, seconds. */
  age_secs: number;
  /** Seconds since the last room activity (docs/spec/PROTOCOL.md §7.12). */
  idle_secs: number;
  /** The authority holder's player id, or `null`. */
  authority: string | null;
  /** Player ids of ready seats, in readiness order. */
  ready_players: string[];
  members: SeatDetail[];
  spectator_list: { id: string; name: string; connected_at: string }[];
  /** Game messages members sent: since creation, and per second over the last 5 s window. */
  messages_total: number;
  messages_per_sec: number;
}

/**
 * One game's rooms (empty ones included), players (occupied seats, held ones included) and
 * spectators: the operator's counts per game (docs/spec/EXTENSIONS.md E12 `/admin/api/games`).
 */
export interface GameCounts {
  rooms: number;
  players: number;
  spectators: number;
}

/** A room as the directory knows it (docs/spec/SERVER.md §8.3 `room:` entry). */
export interface DirectoryEntry {
  /** The room id (UUIDv4). */
  roomId: string;
  gameName: string;
  /** Upper-case room code. */
  roomCode: string;
  /** The app whose connection created the room (auth enabled), for the per-app cap. */
  appId?: string;
  /**
   * The creating connection's client IP key (docs/spec/SERVER.md §1.9), for the global
   * `max_rooms_per_ip` count in a cluster (docs/spec/SERVER.md §8.3 "Claim").
   */
  creatorIp?: string;
  /** Creation time, ms since the epoch. */
  createdAt: number;
  /** The lookup summary at the time of the write. */
  summary: RoomSummary;
  /**
   * Present (`true`) when the room was unattended at the time of the write: seats, every one
   * held, and no spectator (docs/spec/SERVER.md §3.7). Like a room without a seat it then stops
   * counting against the cluster-wide game, app and IP caps, since its home reclaims it when
   * its own caps are reached (docs/spec/SERVER.md §8.3 "Claim").
   */
  unattended?: true;
  /**
   * What the operator's search matches besides the code (docs/spec/EXTENSIONS.md E12), as of the
   * write: the game name and each seat's player name, lower-cased, and each seat's player id
   * (held seats included). Written only while the operator console is enabled
   * (`EngineOptions.operatorSearch`); never in the public lookup (`summary` is).
   */
  search?: RoomSearch;
}

/**
 * Separates the terms of a {@linkcode RoomSearch}: DEL (U+007F), which no room code, game name
 * or (unless an operator allows it) player name holds and JSON leaves as it is, so a Redis
 * script can match the terms in an entry's JSON text without decoding it.
 */
export const SEARCH_SEPARATOR = "\u007f";

/**
 * The operator's search terms of a room ({@linkcode DirectoryEntry.search}), each term after a
 * {@linkcode SEARCH_SEPARATOR}, in seat order. A query matches `terms` anywhere and `ids` at the
 * start of an id (after a separator).
 */
export interface RoomSearch {
  /** Player ids of the seats. */
  ids: string;
  /**
   * The directory's game name (with app auth the app id and the game, as two terms) and the
   * seated players' names, lower-cased.
   */
  terms: string;
}

/** Something the edge must do as a result of an engine call, in order. */
export type Effect =
  /**
   * Send `message` to each connection in `to` (serialise once, docs/spec/SERVER.md §5.1). `frame` is its
   * serialisation when the engine already made one (for a replay buffer); reuse it.
   */
  | { kind: "send"; to: readonly ConnId[]; message: ServerMessage; frame?: string }
  /** Send an already serialised frame (binary envelope or JSON conversion, docs/spec/PROTOCOL.md §7.7). */
  | { kind: "frame"; to: readonly ConnId[]; frame: string | Uint8Array }
  /** Close a connection with a WebSocket close code (docs/spec/PROTOCOL.md §1.6). */
  | { kind: "close"; to: ConnId; code: number; reason: string }
  /**
   * A write to the room directory (docs/spec/SERVER.md §8.3): `refresh` after a room was created or its
   * lookup summary changed, `release` after it was deleted. The engine already applied its own
   * caps and code uniqueness; the directory mirrors what the home holds.
   */
  | { kind: "directory"; op: "refresh"; entry: DirectoryEntry }
  | { kind: "directory"; op: "release"; gameName: string; roomCode: string; roomId: string }
  /** Something worth logging or counting; never sent to clients. */
  | { kind: "event"; event: EngineEvent };

/** Lifecycle events the engine reports for logs and metrics. */
export type EngineEvent =
  | { type: "room_created"; gameName: string; roomCode: string; roomId: string; playerId: string }
  | { type: "room_joined"; gameName: string; roomCode: string; roomId: string; playerId: string }
  | {
    type: "seat_released";
    gameName: string;
    roomCode: string;
    playerId: string;
    reason: "leave" | "disconnect" | "expired" | "room_deleted" | "removed";
  }
  | {
    type: "room_deleted";
    gameName: string;
    roomCode: string;
    roomId: string;
    /**
     * `closed`: an operator closed it (docs/spec/EXTENSIONS.md E12); `unattended`: a creation at
     * a full cap reclaimed it, its held seats ended (docs/spec/SERVER.md §3.7).
     */
    reason: "empty" | "inactive" | "closed" | "unattended";
  }
  | { type: "spectator_joined"; gameName: string; roomCode: string; spectatorId: string }
  | { type: "spectator_left"; gameName: string; roomCode: string; spectatorId: string }
  | { type: "join_failed"; errorCode: ErrorCode; creating: boolean }
  | { type: "game_data"; recipients: number }
  | { type: "code_collision" }
  /** A player's socket closed unexpectedly and the seat is held (docs/spec/PROTOCOL.md §7.11.2). */
  | { type: "seat_held"; gameName: string; roomCode: string; playerId: string; truncated: boolean }
  /** A held seat's window ended; its release follows (docs/spec/PROTOCOL.md §7.11.3). */
  | { type: "seat_expired"; gameName: string; roomCode: string; playerId: string }
  /** A `Reconnect` succeeded (docs/spec/PROTOCOL.md §7.11.5). `missed` = replayed messages. */
  | {
    type: "player_reconnected";
    gameName: string;
    roomCode: string;
    playerId: string;
    takeover: boolean;
    missed: number;
  }
  /** A `Reconnected` carried `replay_truncated: true` (docs/spec/EXTENSIONS.md E3). */
  | { type: "replay_truncated" }
  /** A `Reconnect` failed with `errorCode` (docs/spec/PROTOCOL.md §7.11.4). */
  | { type: "reconnect_failed"; errorCode: ErrorCode }
  /** A request was refused because a token bucket was empty (docs/spec/PROTOCOL.md §7.13). */
  | { type: "rate_limited"; scope: "create" | "join" | "app" | "reconnect" | "auth_failures" }
  /** An `Authenticate` failed, a pre-auth message arrived, or the auth deadline passed. */
  | { type: "auth_failed"; errorCode: ErrorCode; connectionId: ConnId }
  /** `Authenticated` was sent; `appId` is the app when auth is enabled. */
  | { type: "authenticated"; appId?: string; connectionId: ConnId };

/** `message` to one recipient or a list of them. */
export function send(to: ConnId | readonly ConnId[], message: ServerMessage): Effect {
  return { kind: "send", to: typeof to === "string" ? [to] : to, message };
}

/** An `Error` message (docs/spec/PROTOCOL.md §6.20) with `code`. */
export function error(to: ConnId, message: string, code: ErrorCode): Effect {
  return send(to, { type: "Error", data: { message, error_code: code } });
}

/** `RoomJoinFailed` (docs/spec/PROTOCOL.md §7.2.1) and its `join_failed` event. */
export function joinFailed(
  to: ConnId,
  reason: string,
  code: ErrorCode,
  creating: boolean,
): Effect[] {
  return [
    send(to, { type: "RoomJoinFailed", data: { reason, error_code: code } }),
    { kind: "event", event: { type: "join_failed", errorCode: code, creating } },
  ];
}

/** `SpectatorJoinFailed` (docs/spec/PROTOCOL.md §7.9). */
export function spectatorJoinFailed(to: ConnId, reason: string, code: ErrorCode): Effect {
  return send(to, { type: "SpectatorJoinFailed", data: { reason, error_code: code } });
}

/** An event effect. */
export function event(event: EngineEvent): Effect {
  return { kind: "event", event };
}
