/**
 * The Signal Fish v2 wire messages: zod schemas for everything a client may send (PROTOCOL.md §5)
 * and TypeScript types for everything the server sends (PROTOCOL.md §6). Field names are the
 * spec's wire names; output field order is the order of the spec's tables (PROTOCOL.md §2.1).
 *
 * @module
 */
import { z } from "zod";
import type { ErrorCode } from "./error_codes.ts";

// ---------------------------------------------------------------------------------------------
// Scalars (PROTOCOL.md §2.4, §3)

const HYPHENATED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SIMPLE = /^[0-9a-f]{32}$/i;

/**
 * Normalises any UUID spelling a standard parser accepts (hyphenated, 32 hex digits, `{braced}`,
 * `urn:uuid:`; any case) to lower-case hyphenated form, or returns `undefined` when `text` is not
 * a UUID (PROTOCOL.md §2.4).
 */
export function normalizeUuid(text: string): string | undefined {
  let s = text;
  if (s.length === 45 && s.slice(0, 9).toLowerCase() === "urn:uuid:") s = s.slice(9);
  else if (s.length === 38 && s[0] === "{" && s[37] === "}") s = s.slice(1, 37);
  if (s.length === 36 && HYPHENATED.test(s)) return s.toLowerCase();
  if (s.length === 32 && SIMPLE.test(s) && s === text) {
    const h = s.toLowerCase();
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${
      h.slice(20)
    }`;
  }
  return undefined;
}

const Uuid = z.string().transform((value, ctx) => {
  const uuid = normalizeUuid(value);
  if (uuid === undefined) {
    ctx.addIssue({ code: "custom", message: "Invalid UUID" });
    return z.NEVER;
  }
  return uuid;
});
const U8 = z.number().int().min(0).max(255);
const U16 = z.number().int().min(0).max(65535);

/** `null` on input means "absent" for optional fields (PROTOCOL.md §2.2). */
function optional<T extends z.ZodType>(schema: T) {
  return schema.nullish().transform((value) => value ?? undefined).optional();
}

/** Lobby states (PROTOCOL.md §3, §7.4). */
export const LOBBY_STATES = ["waiting", "lobby", "finalized"] as const;
/** A room's lobby state. */
export type LobbyState = typeof LOBBY_STATES[number];

/** Relay transports a client may name (PROTOCOL.md §3). */
export const RelayTransport = z.enum(["tcp", "udp", "websocket", "auto"]);
/** One of `tcp`, `udp`, `websocket`, `auto`. */
export type RelayTransport = z.infer<typeof RelayTransport>;

/** Game-data encodings (PROTOCOL.md §3, §7.1.5). */
export const GameDataEncoding = z.enum(["json", "message_pack", "rkyv"]);
/** One of `json`, `message_pack`, `rkyv`. */
export type GameDataEncoding = z.infer<typeof GameDataEncoding>;

/** Why a spectator joined or left (PROTOCOL.md §3). `removed` is never sent. */
export type SpectatorStateChangeReason =
  | "joined"
  | "voluntary_leave"
  | "disconnected"
  | "removed"
  | "room_closed";

// ---------------------------------------------------------------------------------------------
// ConnectionInfo (PROTOCOL.md §4.3): parsed, then re-emitted in canonical form.

const DirectInfo = z.object({ type: z.literal("direct"), host: z.string(), port: U16 })
  .transform(({ host, port }) => ({ type: "direct" as const, host, port }));
const UnityRelayInfo = z.object({
  type: z.literal("unity_relay"),
  allocation_id: z.string(),
  connection_data: z.string(),
  key: z.string(),
}).transform(({ allocation_id, connection_data, key }) => ({
  type: "unity_relay" as const,
  allocation_id,
  connection_data,
  key,
}));
const RelayInfo = z.object({
  type: z.literal("relay"),
  host: z.string(),
  port: U16,
  // May be omitted (then "auto"), but `null` is a parse error (PROTOCOL.md §2.2).
  transport: RelayTransport.optional(),
  allocation_id: z.string(),
  token: z.string(),
  client_id: optional(U16),
}).transform(({ host, port, transport, allocation_id, token, client_id }) => ({
  type: "relay" as const,
  host,
  port,
  transport: transport ?? "auto",
  allocation_id,
  token,
  client_id,
}));
const WebRtcInfo = z.object({
  type: z.literal("webrtc"),
  sdp: z.string().nullish(),
  ice_candidates: z.array(z.string()),
}).transform(({ sdp, ice_candidates }) => ({
  type: "webrtc" as const,
  sdp: sdp ?? null,
  ice_candidates,
}));
const CustomInfo = z.object({ type: z.literal("custom"), data: z.unknown() })
  .refine((value) => Object.hasOwn(value, "data"), "data is required")
  .transform(({ data }) => ({ type: "custom" as const, data }));

/** Peer connection details a player provides (PROTOCOL.md §4.3), in canonical output form. */
export const ConnectionInfo = z.union([
  DirectInfo,
  UnityRelayInfo,
  RelayInfo,
  WebRtcInfo,
  CustomInfo,
]);
/** A canonical `ConnectionInfo` value as stored and re-emitted. */
export type ConnectionInfo = z.output<typeof ConnectionInfo>;

// ---------------------------------------------------------------------------------------------
// Client -> server (PROTOCOL.md §5)

/** Payload-less messages accept a missing `data`, `null` or any object (PROTOCOL.md §2.1). */
const NoPayload = z.object({}).nullish().transform(() => undefined);

const Authenticate = z.object({
  type: z.literal("Authenticate"),
  data: z.object({
    app_id: z.string(),
    sdk_version: optional(z.string()),
    platform: optional(z.string()),
    game_data_format: optional(GameDataEncoding),
    app_secret: optional(z.string()),
  }),
});
const JoinRoom = z.object({
  type: z.literal("JoinRoom"),
  data: z.object({
    game_name: z.string(),
    room_code: optional(z.string()),
    player_name: z.string(),
    max_players: optional(U8),
    supports_authority: optional(z.boolean()),
    relay_transport: optional(RelayTransport),
  }),
});
const LeaveRoom = z.object({ type: z.literal("LeaveRoom"), data: NoPayload });
const GameData = z.object({
  type: z.literal("GameData"),
  data: z.object({ data: z.unknown(), to_player: optional(Uuid) })
    .refine((value) => Object.hasOwn(value, "data"), "data is required"),
});
const AuthorityRequest = z.object({
  type: z.literal("AuthorityRequest"),
  data: z.object({ become_authority: z.boolean() }),
});
const PlayerReady = z.object({ type: z.literal("PlayerReady"), data: NoPayload });
const ProvideConnectionInfo = z.object({
  type: z.literal("ProvideConnectionInfo"),
  data: z.object({ connection_info: ConnectionInfo }),
});
const Ping = z.object({ type: z.literal("Ping"), data: NoPayload });
const Reconnect = z.object({
  type: z.literal("Reconnect"),
  data: z.object({ player_id: Uuid, room_id: Uuid, auth_token: z.string() }),
});
const JoinAsSpectator = z.object({
  type: z.literal("JoinAsSpectator"),
  data: z.object({ game_name: z.string(), room_code: z.string(), spectator_name: z.string() }),
});
const LeaveSpectator = z.object({ type: z.literal("LeaveSpectator"), data: NoPayload });

/** Every message a client may send, discriminated by `type` (PROTOCOL.md §5). */
export const ClientMessage = z.discriminatedUnion("type", [
  Authenticate,
  JoinRoom,
  LeaveRoom,
  GameData,
  AuthorityRequest,
  PlayerReady,
  ProvideConnectionInfo,
  Ping,
  Reconnect,
  JoinAsSpectator,
  LeaveSpectator,
]);
/** A validated client message; optional fields are `undefined` when absent or `null`. */
export type ClientMessage = z.output<typeof ClientMessage>;
/** The `type` of a client message. */
export type ClientMessageType = ClientMessage["type"];
/** The validated payload of the client message named `T`. */
export type ClientData<T extends ClientMessageType> = Extract<ClientMessage, { type: T }>["data"];

// ---------------------------------------------------------------------------------------------
// Shared objects (PROTOCOL.md §4)

/** A seat as listed in snapshots (PROTOCOL.md §4.1). `connected_at` is RFC 3339 with ms. */
export interface PlayerInfo {
  id: string;
  name: string;
  is_authority: boolean;
  is_ready: boolean;
  connected_at: string;
  connection_info?: ConnectionInfo;
}

/** A spectator as listed in snapshots (PROTOCOL.md §4.2). */
export interface SpectatorInfo {
  id: string;
  name: string;
  connected_at: string;
}

/** One entry of `GameStarting.peer_connections` (PROTOCOL.md §4.4). */
export interface PeerConnectionInfo {
  player_id: string;
  player_name: string;
  is_authority: boolean;
  relay_type: string;
  connection_info?: ConnectionInfo;
}

/** Rate limits advertised in `Authenticated` (PROTOCOL.md §4.5); informational. */
export interface RateLimitInfo {
  per_minute: number;
  per_hour: number;
  per_day: number;
}

/** Player-name rules advertised in `ProtocolInfo` (PROTOCOL.md §4.6). */
export interface PlayerNameRules {
  max_length: number;
  min_length: number;
  allow_unicode_alphanumeric: boolean;
  allow_spaces: boolean;
  allow_leading_trailing_whitespace: boolean;
  allowed_symbols: string[];
  additional_allowed_characters?: string;
}

/**
 * Exact JSON text forwarded without re-serialisation, so game data keeps its number spelling
 * and integers beyond 2^53 (PROTOCOL.md §7.6). `text` must be one valid JSON value.
 */
export class RawJson {
  constructor(readonly text: string) {}
}

/** The fields shared by `RoomJoined` and `Reconnected` (PROTOCOL.md §6.4, §6.16). */
export interface RoomSnapshot {
  room_id: string;
  room_code: string;
  player_id: string;
  game_name: string;
  max_players: number;
  supports_authority: boolean;
  current_players: PlayerInfo[];
  is_authority: boolean;
  lobby_state: LobbyState;
  ready_players: string[];
  relay_type: string;
  current_spectators: SpectatorInfo[];
}

// ---------------------------------------------------------------------------------------------
// Server -> client (PROTOCOL.md §6)

/** Every message the server sends as a JSON text frame (PROTOCOL.md §6). */
export type ServerMessage =
  | {
    type: "Authenticated";
    data: { app_name: string; organization?: string; rate_limits: RateLimitInfo };
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
  | { type: "RoomLeft" }
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
  | { type: "Pong" }
  | {
    type: "Reconnected";
    data: RoomSnapshot & {
      missed_events: RawJson[];
      reconnection_token: string;
      replay_truncated: boolean;
    };
  }
  | { type: "ReconnectionFailed"; data: { reason: string; error_code: ErrorCode } }
  | { type: "PlayerReconnected"; data: { player_id: string } }
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
