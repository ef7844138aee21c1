/**
 * Engine settings (docs/spec/SERVER.md §2.7 mapped to milliseconds) and what the edge knows about a new
 * connection. Shared by every engine part.
 *
 * @module
 */
import type { AuthOptions } from "./app_auth.ts";
import type { RateLimits } from "./rate_limits.ts";
import type { NameRules } from "./validation.ts";

/** SDK compatibility manifest (docs/spec/PROTOCOL.md §7.1.4, `protocol.sdk_compatibility`). */
export interface SdkManifest {
  /** Lower-case platform → minimum semver, reported as `minimum_version`. */
  minimumVersions: Readonly<Record<string, string>>;
  /** Lower-case platform → recommended semver, reported as `recommended_version`. */
  recommendedVersions: Readonly<Record<string, string>>;
  /** Lower-case platform (or `_default`, for everyone) → capability strings. */
  capabilities: Readonly<Record<string, readonly string[]>>;
  /** Lower-case platform (or `_default`, the fallback) → a note for that SDK. */
  notes: Readonly<Record<string, string>>;
}

/** Engine settings; times are milliseconds. Defaults are those of docs/spec/SERVER.md §2.7. */
export interface EngineOptions {
  /** `max_players` when `JoinRoom` omits it. @default 8 */
  defaultMaxPlayers: number;
  /** Highest allowed `max_players`. @default 100 */
  maxPlayersLimit: number;
  /** Exact room-code length. @default 6 */
  roomCodeLength: number;
  /** Longest game name in UTF-8 bytes. @default 64 */
  maxGameNameLength: number;
  /** Rooms per game_name, empty rooms included. @default 1000 */
  maxRoomsPerGame: number;
  /**
   * Spectators per room, `0` = unlimited (`server.max_spectators_per_room`, docs/spec/PROTOCOL.md §7.9
   * check 7). @default 100 (this implementation; the spec's default is 0, SECURITY.md)
   */
  maxSpectatorsPerRoom: number;
  /**
   * Rooms of one game that connections from one client IP key (docs/spec/SERVER.md §1.9) may have created
   * and that still have a seat (`server.max_rooms_per_ip`); `0` = unlimited. Empty rooms do
   * not count (they are reclaimed). @default 20
   */
  maxRoomsPerIp?: number;
  /**
   * Rooms homed in this engine, whatever their game, app or creator (`server.max_rooms`,
   * SECURITY.md): the instance-wide bound on rooms, which `maxRoomsPerGame` alone leaves open
   * (game names are the client's choice). Empty rooms are reclaimed first, as for the other caps.
   * `0` = unlimited. @default 0 (the configuration's default is 20_000)
   */
  maxRooms?: number;
  /**
   * Seats held for a reconnection in this engine (`server.max_held_seats`, SECURITY.md): a
   * disconnect that would hold one more first ends the hold that has waited longest, as its window
   * ending would (the seat is released, its token then yields `RECONNECTION_EXPIRED`). `0` =
   * unlimited. @default 0 (the configuration's default is 20_000)
   */
  maxHeldSeats?: number;
  /**
   * Seats held for a reconnection in this engine for the connections of one client address key
   * (`server.max_held_seats_per_ip`, docs/spec/SERVER.md §4.6): a disconnect from an address that
   * already has this many held first ends that address's own oldest hold, as its window ending
   * would. Holds of an unknown address (`""`) are not counted. `0` = unlimited. @default 0 (the
   * configuration's default is twice `security.max_connections_per_ip`, 20)
   */
  maxHeldSeatsPerIp?: number;
  /**
   * Most bytes in all held seats' replay buffers together (`server.event_buffer_total_max_bytes`);
   * over it the oldest buffered messages, across seats, are dropped first and those buffers
   * marked truncated. `0` = no global budget. @default 67_108_864
   */
  eventBufferTotalMaxBytes?: number;
  /**
   * Most reconnection token records kept (`server.max_token_records`): past it the records that
   * stopped being valid longest ago are forgotten early. @default 200_000
   */
  maxTokenRecords?: number;
  /**
   * Whether directory entries carry the operator's search terms (player names and ids,
   * `DirectoryEntry.search`, docs/spec/EXTENSIONS.md E12): on while the operator console is
   * enabled (`security.admin_token`), so a cluster without it keeps player names out of Redis.
   * @default false
   */
  operatorSearch?: boolean;
  /** An empty room is deleted once empty this long. @default 300_000 */
  emptyRoomTimeoutMs: number;
  /** A room with seats is deleted when inactive this long. @default 3_600_000 */
  inactiveRoomTimeoutMs: number;
  /** Player and spectator name rules. */
  nameRules: NameRules;
  /** `relay_type` for games without a mapping. @default "matchbox" */
  defaultRelayType: string;
  /** `relay_type` per game name. @default {} */
  relayTypeByGame: Readonly<Record<string, string>>;
  /** Whether `message_pack` is offered in format negotiation (docs/spec/PROTOCOL.md §7.1.5). */
  messagePack: boolean;
  /** The SDK manifest reported in `ProtocolInfo`. */
  sdk: SdkManifest;
  /** Extension capabilities appended to `ProtocolInfo.capabilities` (docs/spec/EXTENSIONS.md). */
  extensionCapabilities: readonly string[];
  /** Returns a fresh UUIDv4 (room ids). */
  newId: () => string;
  /** Returns a random room code of `roomCodeLength` characters (prefix included). */
  newRoomCode: () => string;
  /** Tokens, held seats and `Reconnect` (`server.enable_reconnection`, docs/spec/PROTOCOL.md §7.11). */
  enableReconnection: boolean;
  /** How long a seat is held after an unexpected disconnect (ms). @default 300_000 */
  reconnectionWindowMs: number;
  /** Most messages in a held seat's replay buffer; `0` = no replay. @default 100 */
  eventBufferSize: number;
  /** Most bytes (serialised UTF-8) in a held seat's replay buffer. @default 262_144 */
  eventBufferMaxBytes: number;
  /** Returns a fresh reconnection token: 32 random bytes, base64url (docs/spec/PROTOCOL.md §7.11.1). */
  newToken: () => string;
  /**
   * One-way digest of a reconnection token (e.g. SHA-256, base64url), so a snapshot of the
   * rooms holds no token (docs/spec/SERVER.md §2.7 `state_file`). Required by `Engine.snapshot` and
   * `Engine.restore`. @default undefined
   */
  tokenDigest?: (token: string) => string;
  /** App authentication (docs/spec/SERVER.md §3.1). @default undefined (auth disabled, §3.2) */
  auth?: AuthOptions;
  /**
   * Per-IP creation and join buckets (docs/spec/SERVER.md §3.4), shared with the HTTP room lookup.
   * @default undefined (unlimited)
   */
  rateLimits?: RateLimits;
  /**
   * Most UTF-8 bytes of a stored `connection_info` in the form it is sent back
   * (`protocol.max_connection_info_bytes`, docs/spec/PROTOCOL.md §7.8 note): every player gets
   * every seat's value in each `GameStarting` and snapshot. @default 4096
   */
  maxConnectionInfoBytes?: number;
  /**
   * Per connection, the `PlayerReady` and `AuthorityRequest` messages of a player that each
   * announce to the whole room: `capacity` per `windowMs` (`rate_limit.max_lobby_changes` per
   * `rate_limit.time_window`, docs/spec/PROTOCOL.md §7.4 note). @default undefined (unlimited)
   */
  lobbyChanges?: { capacity: number; windowMs: number };
  /**
   * Cluster mode (docs/spec/SERVER.md §8.5.3): whether frames sent to `conn`, a connection being
   * replaced by a takeover, may not have reached it; `Reconnected.replay_truncated` says so.
   * @default undefined (never: a local socket took everything it was given)
   */
  takeoverTruncated?: (conn: string) => boolean;
}

/** What the transport knows about a new connection. */
export interface ConnectInfo {
  /** Client IP (docs/spec/SERVER.md §1.9); keys the rate-limit buckets. @default "" */
  ip?: string;
  /** Accept time in ms; the auth deadline runs from here (docs/spec/SERVER.md §4.5). @default 0 */
  now?: number;
}
