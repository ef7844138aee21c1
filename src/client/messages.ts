/**
 * The wire messages as the client sees them (docs/spec/PROTOCOL.md §4–§6; docs/spec/EXTENSIONS.md E1–E4). Types
 * only: the server messages and shared objects are `src/protocol/wire.ts` (the one copy, shared
 * with the server), so the published client has explicit types and no dependency (zod is never
 * bundled); this module adds what only the client sends or decodes.
 *
 * @module
 */
import type {
  ConnectionFeature,
  ConnectionInfo,
  GameDataEncoding,
  JoinCreateMode,
  ServerMessage,
  ServerMessageType,
} from "../protocol/wire.ts";

export type * from "../protocol/wire.ts";

/** The payload of the server message named `T` (`undefined` for `RoomLeft` and `Pong`). */
export type ServerData<T extends ServerMessageType> = Extract<ServerMessage, { type: T }> extends
  { data: infer D } ? D : undefined;

/**
 * A decoded binary game-data envelope (docs/spec/PROTOCOL.md §7.7), received only by connections that
 * negotiated `message_pack`. `payload` holds the sender's bytes unchanged.
 */
export interface GameDataBinary {
  /** The sender's player id (from the envelope's 16 raw UUID bytes). */
  from_player: string;
  /** Always `"message_pack"` from this server. */
  encoding: GameDataEncoding;
  /** The sender's frame, exactly as sent. */
  payload: Uint8Array;
}

/** `Authenticate` fields a client may send (docs/spec/PROTOCOL.md §5.1, docs/spec/EXTENSIONS.md E7). */
export interface AuthenticateData {
  /** Public application id; any string when the server has auth disabled. */
  app_id: string;
  /** The SDK's version (semver); only checked by the SDK gate (§7.1.4). */
  sdk_version?: string;
  /** Platform name, e.g. `"web"`; compared case-insensitively with the SDK manifest. */
  platform?: string;
  /** Preferred binary game-data encoding. @default "json" */
  game_data_format?: GameDataEncoding;
  /** The app's shared secret, when the operator configured one (docs/spec/EXTENSIONS.md E7). */
  app_secret?: string;
  /** Opt-in features of this connection, e.g. `["presence-events"]` (docs/spec/EXTENSIONS.md E10). */
  features?: (ConnectionFeature | (string & Record<never, never>))[];
}

/** `JoinRoom` fields (docs/spec/PROTOCOL.md §5.2). */
export interface JoinRoomData {
  /** Namespace for room codes (§8.1). */
  game_name: string;
  /** Code to join or create; omit to create a room with a generated code. */
  room_code?: string;
  /** This player's name (§8.2), unique in the room (case-insensitive). */
  player_name: string;
  /** Room size when creating (1–100). @default 8 (server setting) */
  max_players?: number;
  /** Whether the room has an authority seat, when creating. @default true */
  supports_authority?: boolean;
  /** Join-only (`"never"`), create-only (`"always"`) or v2 join-or-create (docs/spec/EXTENSIONS.md E9). */
  create?: JoinCreateMode;
  /** When creating: pass authority on when its holder's seat is released (docs/spec/EXTENSIONS.md E11). */
  authority_handover?: boolean;
}

/** `JoinAsSpectator` fields (docs/spec/PROTOCOL.md §5.10). */
export interface SpectateData {
  /** The room's game name. */
  game_name: string;
  /** The room's code (any case). */
  room_code: string;
  /** Name shown to the room (§8.2; need not be unique). */
  spectator_name: string;
}

/** Every message a client sends as JSON (docs/spec/PROTOCOL.md §5). */
export type ClientMessage =
  | { type: "Authenticate"; data: AuthenticateData }
  | { type: "JoinRoom"; data: JoinRoomData }
  | { type: "LeaveRoom" }
  | { type: "GameData"; data: { data: unknown; to_player?: string } }
  | { type: "AuthorityRequest"; data: { become_authority: boolean } }
  | { type: "PlayerReady" }
  | { type: "ProvideConnectionInfo"; data: { connection_info: ConnectionInfo } }
  | { type: "Ping" }
  | { type: "Reconnect"; data: { player_id: string; room_id: string; auth_token: string } }
  | { type: "JoinAsSpectator"; data: SpectateData }
  | { type: "LeaveSpectator" };
