/**
 * The Signal Fish v2 wire shapes (docs/spec/PROTOCOL.md §3, §4, §6; docs/spec/EXTENSIONS.md E1–E4, E9–E11): types only, no
 * runtime code and no dependency, so the server (`protocol/messages.ts`, with its zod schemas for
 * client input) and the dependency-free client (`client/messages.ts`) import the same union with
 * `import type` and neither bundles the other's code. Field names are the spec's wire names, in the
 * order of the spec's tables.
 *
 * @module
 */
import type { ErrorCode } from "./error_codes.ts";

export type { ErrorCode };

/** A room's lobby state (docs/spec/PROTOCOL.md §3, §7.4). */
export type LobbyState = "waiting" | "lobby" | "finalized";

/** Game-data encodings (docs/spec/PROTOCOL.md §3, §7.1.5). */
export type GameDataEncoding = "json" | "message_pack" | "rkyv";

/** Relay transports (docs/spec/PROTOCOL.md §3). */
export type RelayTransport = "tcp" | "udp" | "websocket" | "auto";

/** Why a spectator joined or left (docs/spec/PROTOCOL.md §3). */
export type SpectatorStateChangeReason =
  | "joined"
  | "voluntary_leave"
  | "disconnected"
  | "removed"
  | "room_closed";

/**
 * Peer connection details (docs/spec/PROTOCOL.md §4.3), tagged by `type`, as a client may send them. The
 * server re-emits them in canonical form (`relay.transport` filled in as `"auto"`, `webrtc.sdp`
 * as `null` when absent), which fits this type.
 */
export type ConnectionInfo =
  | { type: "direct"; host: string; port: number }
  | { type: "unity_relay"; allocation_id: string; connection_data: string; key: string }
  | {
    type: "relay";
    host: string;
    port: number;
    transport?: RelayTransport;
    allocation_id: string;
    token: string;
    client_id?: number;
  }
  | { type: "webrtc"; sdp?: string | null; ice_candidates: string[] }
  | { type: "custom"; data: unknown };

/**
 * `JoinRoom.create` (docs/spec/EXTENSIONS.md E9): `"if_missing"` joins or creates (v2, also when absent),
 * `"never"` only joins (`ROOM_NOT_FOUND` when the room does not exist), `"always"` only creates
 * (`ROOM_CREATION_FAILED` "Room code already in use" when it exists).
 */
export type JoinCreateMode = "if_missing" | "never" | "always";

/**
 * Per-connection features a client may list in `Authenticate.features` (docs/spec/EXTENSIONS.md E10);
 * the server echoes those it accepted in `Authenticated.features`. Unknown strings are ignored.
 */
export type ConnectionFeature = "presence-events";

/** A seat as listed in snapshots (docs/spec/PROTOCOL.md §4.1). `connected_at` is RFC 3339 with ms. */
export interface PlayerInfo {
  /** The seat's player id (a UUID; the id of the connection that took the seat). */
  id: string;
  /** The validated `player_name` (docs/spec/PROTOCOL.md §8.2). */
  name: string;
  /** Whether the seat holds the room's authority (docs/spec/PROTOCOL.md §7.5). */
  is_authority: boolean;
  /** Whether the seat is in the room's ready set (docs/spec/PROTOCOL.md §7.4). */
  is_ready: boolean;
  /** When the seat was taken (RFC 3339 with ms); a reconnection does not change it. */
  connected_at: string;
  /** The seat's last `ProvideConnectionInfo` value; absent until it sends one. */
  connection_info?: ConnectionInfo;
}

/** A spectator as listed in snapshots (docs/spec/PROTOCOL.md §4.2). */
export interface SpectatorInfo {
  /** The spectator's id (a UUID: its connection's id). */
  id: string;
  /** The validated `spectator_name` (docs/spec/PROTOCOL.md §8.2). */
  name: string;
  /** When it started watching (RFC 3339 with ms). */
  connected_at: string;
}

/** One entry of `GameStarting.peer_connections` (docs/spec/PROTOCOL.md §4.4). */
export interface PeerConnectionInfo {
  /** The seat's player id (a UUID). */
  player_id: string;
  /** The seat's player name. */
  player_name: string;
  /** Whether the seat holds authority as the game starts (docs/spec/PROTOCOL.md §7.5). */
  is_authority: boolean;
  /** The room's relay type, the same for every peer (docs/spec/PROTOCOL.md §7.2.6). */
  relay_type: string;
  /** How to reach this peer, as it provided; absent when it provided nothing. */
  connection_info?: ConnectionInfo;
}

/** Rate limits advertised in `Authenticated` (docs/spec/PROTOCOL.md §4.5); informational. */
export interface RateLimitInfo {
  /** Requests allowed per minute. */
  per_minute: number;
  /** Requests allowed per hour. */
  per_hour: number;
  /** Requests allowed per day. */
  per_day: number;
}

/** Player-name rules advertised in `ProtocolInfo` (docs/spec/PROTOCOL.md §4.6). */
export interface PlayerNameRules {
  /** Longest name accepted, in characters (32 by default). */
  max_length: number;
  /** Shortest name accepted, in characters (always 1). */
  min_length: number;
  /** Whether letters and digits outside ASCII are accepted. */
  allow_unicode_alphanumeric: boolean;
  /** Whether spaces inside a name are accepted. */
  allow_spaces: boolean;
  /** Whether a name may begin or end with whitespace. */
  allow_leading_trailing_whitespace: boolean;
  /** Symbols accepted besides letters and digits, one character each (`["-", "_"]` by default). */
  allowed_symbols: string[];
  /** Further accepted characters, as one string; absent when none are configured. */
  additional_allowed_characters?: string;
}

/** The fields shared by `RoomJoined` and `Reconnected` (docs/spec/PROTOCOL.md §6.4, §6.16). */
export interface RoomSnapshot {
  /** The room's id (a UUID), which `Reconnect` names. */
  room_id: string;
  /** The room code, canonical upper case. */
  room_code: string;
  /** The recipient's player id (its seat's id). */
  player_id: string;
  /** The game namespace the room belongs to. */
  game_name: string;
  /** The room's seat count (not necessarily what the joiner asked for). */
  max_players: number;
  /** Whether the room has authority (docs/spec/PROTOCOL.md §7.5). */
  supports_authority: boolean;
  /** Every seat, the recipient's and held ones included, in the order taken. */
  current_players: PlayerInfo[];
  /** Whether the recipient holds authority. */
  is_authority: boolean;
  /** The room's lobby state after the join (docs/spec/PROTOCOL.md §7.4). */
  lobby_state: LobbyState;
  /** Player ids of the ready set, in the order they became ready. */
  ready_players: string[];
  /** The room's relay type (docs/spec/PROTOCOL.md §7.2.6). */
  relay_type: string;
  /** Spectators watching now, in the order they came. */
  current_spectators: SpectatorInfo[];
}

/**
 * `Reconnected` as received (docs/spec/PROTOCOL.md §6.16, docs/spec/EXTENSIONS.md E2/E3): the 12 snapshot fields,
 * the replay buffer as complete server messages in original order, a fresh token and whether
 * the replay is incomplete.
 */
export interface ReconnectedData extends RoomSnapshot {
  /** What the seat missed while held, as complete server messages in the order sent. */
  missed_events: ServerMessage[];
  /** The seat's new reconnection token; the one just used is spent. */
  reconnection_token: string;
  /** True when some of what was missed could not be kept: the replay is incomplete. */
  replay_truncated: boolean;
}

/**
 * Every JSON message the server sends (docs/spec/PROTOCOL.md §6), discriminated by `type`. `GameData.data`
 * is the sender's JSON value; binary game data arrives as {@linkcode GameDataBinary} instead.
 */
export type ServerMessage =
  | {
    type: "Authenticated";
    data: {
      app_name: string;
      organization?: string;
      rate_limits: RateLimitInfo;
      /** Accepted features; present only when `Authenticate` listed some (docs/spec/EXTENSIONS.md E10). */
      features?: ConnectionFeature[];
    };
  }
  | {
    type: "ProtocolInfo";
    data: {
      platform?: string;
      sdk_version?: string;
      minimum_version?: string;
      recommended_version?: string;
      capabilities: string[];
      notes?: string;
      game_data_formats: GameDataEncoding[];
      player_name_rules?: PlayerNameRules;
    };
  }
  | { type: "AuthenticationError"; data: { error: string; error_code: ErrorCode } }
  | { type: "RoomJoined"; data: RoomSnapshot & { reconnection_token?: string } }
  | { type: "RoomJoinFailed"; data: { reason: string; error_code?: ErrorCode } }
  | { type: "RoomLeft"; data?: undefined }
  | { type: "PlayerJoined"; data: { player: PlayerInfo } }
  | { type: "PlayerLeft"; data: { player_id: string } }
  | { type: "GameData"; data: { from_player: string; data: unknown } }
  | {
    type: "AuthorityChanged";
    data: { authority_player: string | null; you_are_authority: boolean };
  }
  | {
    type: "AuthorityResponse";
    data: { granted: boolean; reason: string | null; error_code?: ErrorCode };
  }
  | {
    type: "LobbyStateChanged";
    data: { lobby_state: LobbyState; ready_players: string[]; all_ready: boolean };
  }
  | { type: "GameStarting"; data: { peer_connections: PeerConnectionInfo[] } }
  | { type: "Pong"; data?: undefined }
  | { type: "Reconnected"; data: ReconnectedData }
  | { type: "ReconnectionFailed"; data: { reason: string; error_code: ErrorCode } }
  | { type: "PlayerReconnected"; data: { player_id: string } }
  /**
   * A seat became held (docs/spec/EXTENSIONS.md E10): only to connections that opted in with
   * `Authenticate.features: ["presence-events"]`. `seat_held_secs` is the window left, whole
   * seconds rounded up; `PlayerReconnected` or `PlayerLeft` follows.
   */
  | { type: "PlayerDisconnected"; data: { player_id: string; seat_held_secs: number } }
  | {
    type: "SpectatorJoined";
    data: {
      room_id: string;
      room_code: string;
      spectator_id: string;
      game_name: string;
      current_players: PlayerInfo[];
      current_spectators: SpectatorInfo[];
      lobby_state: LobbyState;
      reason?: SpectatorStateChangeReason;
    };
  }
  | { type: "SpectatorJoinFailed"; data: { reason: string; error_code?: ErrorCode } }
  | {
    type: "SpectatorLeft";
    data: {
      room_id?: string;
      room_code?: string;
      reason?: SpectatorStateChangeReason;
      current_spectators: SpectatorInfo[];
    };
  }
  | {
    type: "NewSpectatorJoined";
    data: {
      spectator: SpectatorInfo;
      current_spectators: SpectatorInfo[];
      reason?: SpectatorStateChangeReason;
    };
  }
  | {
    type: "SpectatorDisconnected";
    data: {
      spectator_id: string;
      reason?: SpectatorStateChangeReason;
      current_spectators: SpectatorInfo[];
    };
  }
  | { type: "Error"; data: { message: string; error_code?: ErrorCode } };

/** The `type` of a server message. */
export type ServerMessageType = ServerMessage["type"];
