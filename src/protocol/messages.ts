/**
 * The Signal Fish v2 wire messages on the server: zod schemas for everything a client may send
 * (docs/spec/PROTOCOL.md §5) and the server's view of what it sends (docs/spec/PROTOCOL.md §6), whose shapes are the
 * types-only `wire.ts` shared with the client. Field names are the spec's wire names; output field
 * order is the order of the spec's tables (docs/spec/PROTOCOL.md §2.1).
 *
 * @module
 */
import { z } from "zod";
import type * as wire from "./wire.ts";

export type {
  LobbyState,
  PeerConnectionInfo,
  PlayerInfo,
  PlayerNameRules,
  RateLimitInfo,
  RoomSnapshot,
  SpectatorInfo,
  SpectatorStateChangeReason,
} from "./wire.ts";

// ---------------------------------------------------------------------------------------------
// Scalars (docs/spec/PROTOCOL.md §2.4, §3)

const HYPHENATED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SIMPLE = /^[0-9a-f]{32}$/i;

/**
 * Normalises any UUID spelling a standard parser accepts (hyphenated, 32 hex digits, `{braced}`,
 * `urn:uuid:`; any case) to lower-case hyphenated form, or returns `undefined` when `text` is not
 * a UUID (docs/spec/PROTOCOL.md §2.4).
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

/** `null` on input means "absent" for optional fields (docs/spec/PROTOCOL.md §2.2). */
function optional<T extends z.ZodType>(schema: T) {
  return schema.nullish().transform((value) => value ?? undefined).optional();
}

/** Lobby states (docs/spec/PROTOCOL.md §3, §7.4). */
export const LOBBY_STATES = [
  "waiting",
  "lobby",
  "finalized",
] as const satisfies readonly wire.LobbyState[];

/** Relay transports a client may name (docs/spec/PROTOCOL.md §3). */
export const RelayTransport = z.enum(
  ["tcp", "udp", "websocket", "auto"] as const satisfies readonly wire.RelayTransport[],
);
/** One of `tcp`, `udp`, `websocket`, `auto`. */
export type RelayTransport = z.infer<typeof RelayTransport>;

/** Game-data encodings (docs/spec/PROTOCOL.md §3, §7.1.5). */
export const GameDataEncoding = z.enum(
  ["json", "message_pack", "rkyv"] as const satisfies readonly wire.GameDataEncoding[],
);
/** One of `json`, `message_pack`, `rkyv`. */
export type GameDataEncoding = z.infer<typeof GameDataEncoding>;

/** `JoinRoom.create` values (docs/spec/EXTENSIONS.md E9). */
export const JoinCreateMode = z.enum(
  ["if_missing", "never", "always"] as const satisfies readonly wire.JoinCreateMode[],
);
/** One of `if_missing`, `never`, `always`. */
export type JoinCreateMode = z.infer<typeof JoinCreateMode>;

/** The feature string that opts a connection in to presence events (docs/spec/EXTENSIONS.md E10). */
export const PRESENCE_EVENTS: wire.ConnectionFeature = "presence-events";

// ---------------------------------------------------------------------------------------------
// ConnectionInfo (docs/spec/PROTOCOL.md §4.3): parsed, then re-emitted in canonical form.

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
  // May be omitted (then "auto"), but `null` is a parse error (docs/spec/PROTOCOL.md §2.2).
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

/** Peer connection details a player provides (docs/spec/PROTOCOL.md §4.3), in canonical output form. */
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
// Client -> server (docs/spec/PROTOCOL.md §5)

/** Payload-less messages accept a missing `data`, `null` or any object (docs/spec/PROTOCOL.md §2.1). */
const NoPayload = z.object({}).nullish().transform(() => undefined);

const Authenticate = z.object({
  type: z.literal("Authenticate"),
  data: z.object({
    app_id: z.string(),
    sdk_version: optional(z.string()),
    platform: optional(z.string()),
    game_data_format: optional(GameDataEncoding),
    app_secret: optional(z.string()),
    // docs/spec/EXTENSIONS.md E10: unknown strings are ignored, so any string array is accepted.
    features: optional(z.array(z.string())),
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
    // docs/spec/EXTENSIONS.md E9: any other value is a parse error (INVALID_INPUT).
    create: optional(JoinCreateMode),
    // docs/spec/EXTENSIONS.md E11: read only when the JoinRoom creates the room.
    authority_handover: optional(z.boolean()),
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

/** Every message a client may send, discriminated by `type` (docs/spec/PROTOCOL.md §5). */
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
// Shared objects (docs/spec/PROTOCOL.md §4): the shapes are in wire.ts.

/**
 * Exact JSON text forwarded without re-serialisation, so game data keeps its number spelling
 * and integers beyond 2^53 (docs/spec/PROTOCOL.md §7.6). `text` must be one valid JSON value.
 */
export class RawJson {
  constructor(readonly text: string) {}
}

// ---------------------------------------------------------------------------------------------
// Server -> client (docs/spec/PROTOCOL.md §6)

/**
 * Every message the server sends as a JSON text frame (docs/spec/PROTOCOL.md §6): the wire union, except
 * that `Reconnected.missed_events` holds the replayed messages already serialised (each a
 * {@linkcode RawJson} of one wire `ServerMessage`), so a replay is never re-encoded.
 */
export type ServerMessage =
  | Exclude<wire.ServerMessage, { type: "Reconnected" }>
  | {
    type: "Reconnected";
    data: Omit<wire.ReconnectedData, "missed_events"> & { missed_events: RawJson[] };
  };

/** The `type` of a server message. */
export type ServerMessageType = ServerMessage["type"];
