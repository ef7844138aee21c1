/**
 * The room engine: every room, lobby, authority, spectator and relay rule of PROTOCOL.md §7,
 * with no I/O. Callers pass the time in and get back effects (messages to send, sockets to
 * close, events to log or count). Recipients are connection ids, so the engine does not care
 * whether a connection's socket lives in this process (SERVER.md §8.2).
 *
 * @module
 */
import { encodeServerMessage } from "../protocol/codec.ts";
import type { ErrorCode } from "../protocol/error_codes.ts";
import {
  type ClientData,
  type ClientMessage,
  type ConnectionInfo,
  type GameDataEncoding,
  type PlayerNameRules,
  RawJson,
  type RoomSnapshot,
  type ServerMessage,
} from "../protocol/messages.ts";
import { encodeGameDataEnvelope, msgpackToJson } from "../protocol/msgpack.ts";
import { secretEquals } from "../util/secrets.ts";
import { utf8Length } from "../protocol/utf8.ts";
import { type ConnId, Room, roomKey, type Seat } from "./room.ts";
import {
  AppRegistry,
  AppRoomCounts,
  type AuthFailure,
  type AuthOptions,
  type AuthorizedApp,
  rateLimitInfo,
} from "./app_auth.ts";
import { creationLimitReason, joinLimitReason, type RateLimits } from "./rate_limits.ts";
import { checkSdk } from "./sdk_gate.ts";
import {
  checkGameName,
  checkPlayerName,
  checkRoomCode,
  nameKey,
  type NameRules,
} from "./validation.ts";

export type { ConnId } from "./room.ts";

/** Something the transport must do as a result of an engine call, in order. */
export type Effect =
  /**
   * Send `message` to each connection in `to` (serialise once, SERVER.md §5.1). `frame` is its
   * serialisation when the engine already made one (for a replay buffer); reuse it.
   */
  | { kind: "send"; to: readonly ConnId[]; message: ServerMessage; frame?: string }
  /** Send an already serialised frame (binary envelope or JSON conversion, PROTOCOL.md §7.7). */
  | { kind: "frame"; to: readonly ConnId[]; frame: string | Uint8Array }
  /** Close a connection with a WebSocket close code (PROTOCOL.md §1.6). */
  | { kind: "close"; to: ConnId; code: number; reason: string }
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
    reason: "leave" | "disconnect" | "expired" | "room_deleted";
  }
  | {
    type: "room_deleted";
    gameName: string;
    roomCode: string;
    roomId: string;
    reason: "empty" | "inactive";
  }
  | { type: "spectator_joined"; gameName: string; roomCode: string; spectatorId: string }
  | { type: "spectator_left"; gameName: string; roomCode: string; spectatorId: string }
  | { type: "join_failed"; errorCode: ErrorCode; creating: boolean }
  | { type: "game_data"; recipients: number }
  | { type: "code_collision" }
  /** A player's socket closed unexpectedly and the seat is held (PROTOCOL.md §7.11.2). */
  | { type: "seat_held"; gameName: string; roomCode: string; playerId: string; truncated: boolean }
  /** A held seat's window ended; its release follows (PROTOCOL.md §7.11.3). */
  | { type: "seat_expired"; gameName: string; roomCode: string; playerId: string }
  /** A `Reconnect` succeeded (PROTOCOL.md §7.11.5). `missed` = replayed messages. */
  | {
    type: "player_reconnected";
    gameName: string;
    roomCode: string;
    playerId: string;
    takeover: boolean;
    missed: number;
  }
  /** A `Reconnected` carried `replay_truncated: true` (EXTENSIONS.md E3). */
  | { type: "replay_truncated" }
  /** A `Reconnect` failed with `errorCode` (PROTOCOL.md §7.11.4). */
  | { type: "reconnect_failed"; errorCode: ErrorCode }
  /** A request was refused because a token bucket was empty (PROTOCOL.md §7.13). */
  | { type: "rate_limited"; scope: "create" | "join" | "app" }
  /** An `Authenticate` failed, a pre-auth message arrived, or the auth deadline passed. */
  | { type: "auth_failed"; errorCode: ErrorCode; connectionId: ConnId }
  /** `Authenticated` was sent; `appId` is the app when auth is enabled. */
  | { type: "authenticated"; appId?: string; connectionId: ConnId };

/** SDK compatibility manifest (PROTOCOL.md §7.1.4, `protocol.sdk_compatibility`). */
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

/** Engine settings; times are milliseconds. Defaults are those of SERVER.md §2.7. */
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
  /** Spectators per room, `0` = unlimited. @default 0 */
  maxSpectatorsPerRoom: number;
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
  /** Whether `message_pack` is offered in format negotiation (PROTOCOL.md §7.1.5). */
  messagePack: boolean;
  /** The SDK manifest reported in `ProtocolInfo`. */
  sdk: SdkManifest;
  /** Extension capabilities appended to `ProtocolInfo.capabilities` (EXTENSIONS.md). */
  extensionCapabilities: readonly string[];
  /** Returns a fresh UUIDv4 (room ids). */
  newId: () => string;
  /** Returns a random room code of `roomCodeLength` characters (prefix included). */
  newRoomCode: () => string;
  /** Tokens, held seats and `Reconnect` (`server.enable_reconnection`, PROTOCOL.md §7.11). */
  enableReconnection: boolean;
  /** How long a seat is held after an unexpected disconnect (ms). @default 300_000 */
  reconnectionWindowMs: number;
  /** Most messages in a held seat's replay buffer; `0` = no replay. @default 100 */
  eventBufferSize: number;
  /** Most bytes (serialised UTF-8) in a held seat's replay buffer. @default 262_144 */
  eventBufferMaxBytes: number;
  /** Returns a fresh reconnection token: 32 random bytes, base64url (PROTOCOL.md §7.11.1). */
  newToken: () => string;
  /** App authentication (SERVER.md §3.1). @default undefined (auth disabled, §3.2) */
  auth?: AuthOptions;
  /**
   * Per-IP creation and join buckets (SERVER.md §3.4), shared with the HTTP room lookup.
   * @default undefined (unlimited)
   */
  rateLimits?: RateLimits;
}

/** What the transport knows about a new connection. */
export interface ConnectInfo {
  /** Client IP (SERVER.md §1.9); keys the rate-limit buckets. @default "" */
  ip?: string;
  /** Accept time in ms; the auth deadline runs from here (SERVER.md §4.5). @default 0 */
  now?: number;
}

/** Attempts at a unique generated room code before giving up (PROTOCOL.md §7.2.3). */
export const CODE_ATTEMPTS = 16;

/** Rate limits advertised when auth is disabled (PROTOCOL.md §7.1.2). */
const DEFAULT_RATE_LIMITS = { per_minute: 1000, per_hour: 60000, per_day: 1440000 };

const FORMAT_NAMES: Record<GameDataEncoding, string> = {
  json: "Json",
  message_pack: "MessagePack",
  rkyv: "Rkyv",
};

/** Per-connection state. */
interface Session {
  /** The connection id the transport knows the socket by. */
  readonly id: ConnId;
  /**
   * The identity used on the wire and in rooms (player id, spectator id). Equal to `id` until a
   * `Reconnect` makes the connection adopt the reconnected player's id (PROTOCOL.md §7.11.5).
   */
  playerId: string;
  /** Client IP, the key of its rate-limit buckets. */
  readonly ip: string;
  /** False until a successful `Authenticate` when auth is required (PROTOCOL.md §7.1.1). */
  authenticated: boolean;
  /** The authenticated app (auth enabled only); its per-app limits apply (SERVER.md §3.3). */
  app?: AuthorizedApp;
  /** `Authenticate` already answered (PROTOCOL.md §7.1.2: only the first is). */
  authenticateAnswered: boolean;
  /** Negotiated game-data format (PROTOCOL.md §7.1.5). */
  format: "json" | "message_pack";
  /** The room this connection is a player of, if any. */
  playing?: Room;
  /** The room this connection spectates, if any (exclusive with `playing`). */
  watching?: Room;
}

/** A seat held after an unexpected disconnect, with its replay buffer (PROTOCOL.md §7.11.2). */
interface Hold {
  readonly room: Room;
  readonly playerId: string;
  /** The connection that dropped (frames still addressed to it land here). */
  readonly conn: ConnId;
  /** When the window ends, ms. */
  readonly expiresAt: number;
  /** Serialised server messages in delivery order, and their UTF-8 sizes. */
  frames: string[];
  sizes: number[];
  bytes: number;
  /** Some message for this seat was lost (EXTENSIONS.md E3). */
  truncated: boolean;
}

/** What the server remembers of one issued reconnection token (PROTOCOL.md §7.11.1). */
interface TokenRecord {
  readonly playerId: string;
  readonly token: string;
  readonly room: Room;
  /** The app the seat's connection authenticated with (auth enabled), else undefined. */
  readonly appId: string | undefined;
  state: "valid" | "used" | "superseded" | "left" | "expired" | "room_gone";
  /** When it stopped being valid, ms (records are forgotten a window later). */
  invalidSince: number;
}

/** Why a connection went away, as far as the replay buffer is concerned (SERVER.md §5.2). */
export interface DisconnectLoss {
  /** Messages were discarded (slow consumer): the hold starts truncated. */
  truncated?: boolean;
  /** Frames that could not be written, to replay first, oldest first. */
  unsent?: readonly string[];
}

/** Room summary for the HTTP lookup (EXTENSIONS.md E5). */
export interface RoomSummary {
  room_code: string;
  game_name: string;
  players: number;
  max_players: number;
  spectators: number;
  lobby_state: string;
  supports_authority: boolean;
  relay_type: string;
}

/** Live counts for status pages and metrics. */
export interface EngineStats {
  /** Rooms, empty ones awaiting cleanup included. */
  rooms: number;
  /** Occupied seats. */
  players: number;
  /** Spectators attached to rooms. */
  spectators: number;
  /** Registered connections, seated or not. */
  connections: number;
  /** Seats held for a reconnection (PROTOCOL.md §7.11.2). */
  heldSeats: number;
  /** Messages appended to replay buffers since the engine started (SERVER.md §6.3 #37). */
  eventsBuffered: number;
}

function send(to: ConnId | readonly ConnId[], message: ServerMessage): Effect {
  return { kind: "send", to: typeof to === "string" ? [to] : to, message };
}

function error(to: ConnId, message: string, code: ErrorCode): Effect {
  return send(to, { type: "Error", data: { message, error_code: code } });
}

function joinFailed(to: ConnId, reason: string, code: ErrorCode, creating: boolean): Effect[] {
  return [
    send(to, { type: "RoomJoinFailed", data: { reason, error_code: code } }),
    { kind: "event", event: { type: "join_failed", errorCode: code, creating } },
  ];
}

function spectatorJoinFailed(to: ConnId, reason: string, code: ErrorCode): Effect {
  return send(to, { type: "SpectatorJoinFailed", data: { reason, error_code: code } });
}

/** The pure room engine (PROTOCOL.md §7). One instance owns every room of this process. */
export class Engine {
  readonly #options: EngineOptions;
  readonly #sessions = new Map<ConnId, Session>();
  readonly #rooms = new Map<string, Room>();
  readonly #roomsPerGame = new Map<string, number>();
  readonly #nameRules: PlayerNameRules;
  /** Held seats by player id. */
  readonly #holds = new Map<string, Hold>();
  /** Messages appended to replay buffers so far (`stats().eventsBuffered`). */
  #eventsBuffered = 0;
  /** Held seats by the connection id that dropped. */
  readonly #heldByConn = new Map<ConnId, Hold>();
  /** Identity → connection id, for connections that adopted another player id. */
  readonly #moved = new Map<string, ConnId>();
  /** Token records by player id (a handful each: the valid one and recently invalidated ones). */
  readonly #tokens = new Map<string, TokenRecord[]>();
  /** Records that stopped being valid, oldest first, to forget a window later. */
  readonly #invalidated: TokenRecord[] = [];
  readonly #apps: AppRegistry;
  readonly #appRooms = new AppRoomCounts();
  /** Auth deadlines (ms) of unauthenticated connections, in accept order (SERVER.md §4.5). */
  readonly #authDeadlines = new Map<ConnId, number>();

  /** Creates an engine with no rooms and no connections. */
  constructor(options: EngineOptions) {
    this.#options = options;
    this.#apps = new AppRegistry(options.auth?.apps ?? []);
    const rules = options.nameRules;
    this.#nameRules = {
      max_length: rules.maxLength,
      min_length: 1,
      allow_unicode_alphanumeric: rules.allowUnicodeAlphanumeric,
      allow_spaces: rules.allowSpaces,
      allow_leading_trailing_whitespace: rules.allowLeadingTrailingWhitespace,
      allowed_symbols: [...rules.allowedSymbols],
      additional_allowed_characters: rules.additionalAllowedCharacters,
    };
  }

  /**
   * Registers a newly accepted connection (PROTOCOL.md §1.2). When auth is required its
   * deadline starts at `info.now` (SERVER.md §4.5).
   */
  connect(id: ConnId, info: ConnectInfo = {}): void {
    const auth = this.#options.auth;
    const authenticated = !auth?.required;
    this.#sessions.set(id, {
      id,
      playerId: id,
      ip: info.ip ?? "",
      authenticated,
      authenticateAnswered: false,
      format: "json",
    });
    if (!authenticated) this.#authDeadlines.set(id, (info.now ?? 0) + auth!.timeoutMs);
  }

  /**
   * Applies one validated client message from connection `from`, received at `now` (ms), and
   * returns the effects in delivery order. Unknown connections get no effects.
   */
  handle(from: ConnId, message: ClientMessage, now: number): Effect[] {
    const session = this.#sessions.get(from);
    if (!session) return [];
    if (!session.authenticated && message.type !== "Authenticate") {
      return this.#authenticationRequired(from, "Authentication required");
    }
    return this.#route(this.#dispatch(session, message, now));
  }

  #dispatch(session: Session, message: ClientMessage, now: number): Effect[] {
    switch (message.type) {
      case "Authenticate":
        return this.#authenticate(session, message.data, now);
      case "JoinRoom":
        return this.#joinRoom(session, message.data, now);
      case "LeaveRoom":
        return this.#leaveRoom(session, now);
      case "GameData":
        return this.#gameData(session, message.data, now);
      case "AuthorityRequest":
        return this.#authorityRequest(session, message.data.become_authority, now);
      case "PlayerReady":
        return this.#playerReady(session, now);
      case "ProvideConnectionInfo":
        return this.#provideConnectionInfo(session, message.data.connection_info, now);
      case "Ping":
        return [send(session.playerId, { type: "Pong" })];
      case "Reconnect":
        return this.#reconnect(session, message.data, now);
      case "JoinAsSpectator":
        return this.#joinAsSpectator(session, message.data, now);
      case "LeaveSpectator":
        return this.#leaveSpectator(session, now);
    }
  }

  /**
   * Applies one binary frame from `from` (the raw MessagePack game payload, PROTOCOL.md §7.7):
   * every other seat and spectator gets the envelope (`message_pack` connections) or the JSON
   * conversion (`json` connections and held seats' replay buffers), each built at most once.
   * The returned `frame` effects are already addressed to connection ids.
   */
  handleBinary(from: ConnId, payload: Uint8Array, now: number): Effect[] {
    const session = this.#sessions.get(from);
    if (!session) return [];
    if (!session.authenticated) {
      return this.#authenticationRequired(
        from,
        "Authentication required before sending binary data",
      );
    }
    const me = session.playerId;
    if (session.watching) {
      return this.#route([error(me, "Spectators cannot send game data", "SPECTATOR_NOT_ALLOWED")]);
    }
    if (session.format === "json") {
      return this.#route([
        error(me, "Binary payloads are disabled for this connection", "INVALID_INPUT"),
      ]);
    }
    const room = session.playing;
    if (!room) return [];
    room.lastActivity = now;
    const binaryTo: ConnId[] = [];
    const textTo: ConnId[] = [];
    // undefined: not converted yet; null: the payload has no JSON form.
    let text: string | null | undefined;
    const jsonFrame = () => {
      if (text === undefined) {
        const json = msgpackToJson(payload);
        text = json === undefined ? null : encodeServerMessage({
          type: "GameData",
          data: { from_player: me, data: new RawJson(json) },
        });
      }
      return text;
    };
    let recipients = 0;
    for (const member of room.membersExcept(me)) {
      const hold = this.#holds.get(member);
      if (hold) {
        const frame = jsonFrame();
        if (frame === null) hold.truncated = true;
        else this.#append(hold, frame, utf8Length(frame));
        recipients++;
        continue;
      }
      const conn = this.#moved.get(member) ?? member;
      if (this.#sessions.get(conn)?.format === "message_pack") binaryTo.push(conn);
      else textTo.push(conn);
    }
    const effects: Effect[] = [];
    if (binaryTo.length > 0) {
      effects.push({ kind: "frame", to: binaryTo, frame: encodeGameDataEnvelope(me, payload) });
      recipients += binaryTo.length;
    }
    if (textTo.length > 0) {
      const frame = jsonFrame();
      if (frame !== null) {
        effects.push({ kind: "frame", to: textTo, frame });
        recipients += textTo.length;
      }
    }
    effects.push({ kind: "event", event: { type: "game_data", recipients } });
    return effects;
  }

  /**
   * Handles a closed connection (PROTOCOL.md §7.3.2, SERVER.md §5.5): a player's seat is held
   * for `reconnectionWindowMs` (reconnection enabled; nobody is told) or released at once; a
   * spectator is detached with reason `disconnected`. `loss` describes messages the transport
   * could not deliver (SERVER.md §5.2). Idempotent.
   */
  disconnect(id: ConnId, now: number, loss: DisconnectLoss = {}): Effect[] {
    const session = this.#sessions.get(id);
    if (!session) return [];
    this.#sessions.delete(id);
    this.#authDeadlines.delete(id);
    const me = session.playerId;
    if (me !== id) this.#moved.delete(me);
    const room = session.playing;
    if (room) {
      if (!this.#options.enableReconnection) {
        return this.#route(this.#releaseSeat(room, me, now, "disconnect"));
      }
      return this.#hold(room, me, id, now, loss);
    }
    if (session.watching) {
      return this.#route(this.#detachSpectator(session, "disconnected", now, false));
    }
    return [];
  }

  /**
   * Puts a frame that could not be written to connection `conn` into the replay buffer of the
   * seat held since that connection dropped (SERVER.md §5.2). Binary frames cannot be replayed,
   * so they mark the buffer truncated. Returns false when `conn` held no seat.
   */
  replayUndelivered(conn: ConnId, frame: string | Uint8Array): boolean {
    const hold = this.#heldByConn.get(conn);
    if (!hold) return false;
    if (typeof frame === "string") this.#append(hold, frame, utf8Length(frame));
    else hold.truncated = true;
    return true;
  }

  /**
   * The once-a-second timer (SERVER.md §4.1): releases held seats whose window ended
   * (PROTOCOL.md §7.11.3) and forgets token records invalid for longer than a window.
   */
  tick(now: number): Effect[] {
    const effects: Effect[] = [];
    for (const hold of [...this.#holds.values()]) {
      // Routed one expiry at a time: a later expiry in this loop must not change where the
      // earlier ones' messages go (a seat still held then gets them in its replay buffer).
      if (now >= hold.expiresAt) effects.push(...this.#route(this.#expire(hold, now)));
    }
    // Forget records invalid for a window; they were queued in invalidation (time) order.
    const window = this.#options.reconnectionWindowMs;
    const queue = this.#invalidated;
    let head = 0;
    while (head < queue.length && now - queue[head]!.invalidSince >= window) {
      const record = queue[head++]!;
      const records = this.#tokens.get(record.playerId);
      const kept = records?.filter((r) => r !== record) ?? [];
      if (kept.length === 0) this.#tokens.delete(record.playerId);
      else this.#tokens.set(record.playerId, kept);
    }
    if (head > 0) queue.splice(0, head);
    return effects;
  }

  /**
   * The maintenance sweep (PROTOCOL.md §7.12, SERVER.md §4.2): deletes rooms empty for
   * `emptyRoomTimeoutMs` and rooms with seats inactive for `inactiveRoomTimeoutMs`, telling
   * their members (`RoomLeft`, `SpectatorLeft{room_closed}`).
   */
  sweep(now: number): Effect[] {
    return this.#route(this.#sweep(now));
  }

  #sweep(now: number): Effect[] {
    const effects: Effect[] = this.expireAuthentication(now);
    this.#options.rateLimits?.sweep(now);
    const { emptyRoomTimeoutMs, inactiveRoomTimeoutMs } = this.#options;
    for (const room of [...this.#rooms.values()]) {
      if (room.seats.size === 0) {
        if (room.emptySince !== null && now - room.emptySince >= emptyRoomTimeoutMs) {
          effects.push(...this.#deleteRoom(room, "empty", now));
        }
      } else if (now - room.lastActivity > inactiveRoomTimeoutMs) {
        effects.push(...this.#deleteRoom(room, "inactive", now));
      }
    }
    return effects;
  }

  /**
   * Closes connections whose auth deadline has passed at `now` (ms): `Error`
   * `AUTHENTICATION_TIMEOUT`, then close 1008 (SERVER.md §4.5). Cheap when nothing expired.
   */
  expireAuthentication(now: number): Effect[] {
    const effects: Effect[] = [];
    const timeoutMs = this.#options.auth?.timeoutMs ?? 0;
    for (const [id, deadline] of this.#authDeadlines) {
      // Deadlines are in accept order, so the first one still running ends the scan.
      if (deadline > now) break;
      this.#authDeadlines.delete(id);
      effects.push(
        error(
          id,
          `Authentication timeout - must authenticate within ${timeoutMs / 1000} seconds`,
          "AUTHENTICATION_TIMEOUT",
        ),
        { kind: "close", to: id, code: 1008, reason: "Authentication timeout" },
        {
          kind: "event",
          event: {
            type: "auth_failed",
            errorCode: "AUTHENTICATION_TIMEOUT",
            connectionId: id,
          },
        },
      );
    }
    return effects;
  }

  /** The lookup summary of a room, or `undefined` (EXTENSIONS.md E5). `code` must be upper-case. */
  lookup(gameName: string, code: string): RoomSummary | undefined {
    const room = this.#rooms.get(roomKey(gameName, code));
    return room && summarize(room);
  }

  /** Rooms of a game with at least one seat, oldest first, at most `limit` (EXTENSIONS.md E6). */
  list(gameName: string, limit: number): RoomSummary[] {
    const out: RoomSummary[] = [];
    for (const room of this.#rooms.values()) {
      if (out.length >= limit) break;
      if (room.gameName === gameName && room.seats.size > 0) out.push(summarize(room));
    }
    return out;
  }

  /** Live counts of rooms, seats, spectators and connections. */
  stats(): EngineStats {
    let players = 0;
    let spectators = 0;
    for (const room of this.#rooms.values()) {
      players += room.seats.size;
      spectators += room.spectators.size;
    }
    return {
      rooms: this.#rooms.size,
      players,
      spectators,
      connections: this.#sessions.size,
      heldSeats: this.#holds.size,
      eventsBuffered: this.#eventsBuffered,
    };
  }

  /** Game name and seat count (held seats included) of every room, oldest first (metrics). */
  seatCounts(): { gameName: string; seats: number }[] {
    return [...this.#rooms.values()].map((room) => ({
      gameName: room.gameName,
      seats: room.seats.size,
    }));
  }

  // -------------------------------------------------------------------------------------------
  // Authenticate (PROTOCOL.md §7.1.2, auth disabled)

  #authenticate(session: Session, data: ClientData<"Authenticate">, now: number): Effect[] {
    if (session.authenticateAnswered) return [];
    if (this.#options.auth?.required) {
      const refused = this.#checkApp(session, data, now);
      if (refused) return refused;
    }
    session.authenticateAnswered = true;
    const effects: Effect[] = [];
    const requested = data.game_data_format ?? "json";
    const supported: GameDataEncoding[] = this.#options.messagePack
      ? ["json", "message_pack"]
      : ["json"];
    if (requested === "json" || (requested === "message_pack" && this.#options.messagePack)) {
      session.format = requested;
    } else {
      session.format = "json";
      const names = supported.map((format) => FORMAT_NAMES[format]).join(", ");
      effects.push(error(
        session.playerId,
        `Requested game data format ${
          FORMAT_NAMES[requested]
        } is not supported. Server supports: ${names}. Falling back to JSON.`,
        "UNSUPPORTED_GAME_DATA_FORMAT",
      ));
    }
    effects.push(
      send(session.playerId, {
        type: "Authenticated",
        data: session.app
          ? {
            app_name: session.app.appName,
            rate_limits: rateLimitInfo(session.app.rateLimitPerMinute),
          }
          : { app_name: "default", rate_limits: { ...DEFAULT_RATE_LIMITS } },
      }),
      send(session.playerId, { type: "ProtocolInfo", data: this.#protocolInfo(data, supported) }),
      {
        kind: "event",
        event: { type: "authenticated", appId: session.app?.appId, connectionId: session.id },
      },
    );
    return effects;
  }

  /**
   * Steps 2–5 of PROTOCOL.md §7.1.3 (auth enabled). On success marks the session
   * authenticated, remembers its app, stops its deadline and returns `undefined`; otherwise
   * returns the refusal (`AuthenticationError`, then close 1008 except for the SDK gate).
   */
  #checkApp(
    session: Session,
    data: ClientData<"Authenticate">,
    now: number,
  ): Effect[] | undefined {
    const checked = this.#apps.check(data.app_id, data.app_secret, now);
    if (!checked.ok) return this.#authFailed(session.id, checked.failure);
    if (this.#options.auth?.enforceSdkGate) {
      const problem = checkSdk(this.#options.sdk, data.platform, data.sdk_version);
      if (problem !== undefined) {
        return this.#authFailed(session.id, {
          error: problem,
          errorCode: "SDK_VERSION_UNSUPPORTED",
          close: false,
        });
      }
    }
    session.authenticated = true;
    session.app = checked.app;
    this.#authDeadlines.delete(session.id);
    return undefined;
  }

  #authFailed(id: ConnId, failure: AuthFailure): Effect[] {
    const effects: Effect[] = [
      send(id, {
        type: "AuthenticationError",
        data: { error: failure.error, error_code: failure.errorCode },
      }),
    ];
    if (failure.errorCode === "RATE_LIMIT_EXCEEDED") {
      effects.push({ kind: "event", event: { type: "rate_limited", scope: "app" } });
    }
    effects.push({
      kind: "event",
      event: { type: "auth_failed", errorCode: failure.errorCode, connectionId: id },
    });
    if (failure.close) {
      effects.push({ kind: "close", to: id, code: 1008, reason: "Authentication failed" });
    }
    return effects;
  }

  /** A message before authentication (PROTOCOL.md §7.1.1): `Error`, then close 1008. */
  #authenticationRequired(id: ConnId, message: string): Effect[] {
    return [
      error(id, message, "AUTHENTICATION_REQUIRED"),
      { kind: "close", to: id, code: 1008, reason: "Authentication required" },
      {
        kind: "event",
        event: { type: "auth_failed", errorCode: "AUTHENTICATION_REQUIRED", connectionId: id },
      },
    ];
  }

  /**
   * Takes one token from the client IP's creation or join bucket (PROTOCOL.md §7.13). Returns
   * `undefined` when taken, else the rejection reason and its `rate_limited` event.
   */
  #takeToken(
    session: Session,
    scope: "create" | "join",
    now: number,
  ): { reason: string; event: Effect } | undefined {
    const limits = this.#options.rateLimits;
    if (!limits) return undefined;
    const taken = scope === "create"
      ? limits.takeCreation(session.ip, now)
      : limits.takeJoin(session.ip, now);
    if (taken.ok) return undefined;
    return {
      reason: scope === "create"
        ? creationLimitReason(taken.retryAfterSecs)
        : joinLimitReason(taken.retryAfterSecs),
      event: { kind: "event", event: { type: "rate_limited", scope } },
    };
  }

  #protocolInfo(
    data: ClientData<"Authenticate">,
    formats: GameDataEncoding[],
  ): Extract<ServerMessage, { type: "ProtocolInfo" }>["data"] {
    const { sdk, extensionCapabilities } = this.#options;
    const key = data.platform?.toLowerCase();
    const platformOnly = <T>(map: Readonly<Record<string, T>>) =>
      key !== undefined && Object.hasOwn(map, key) ? map[key] : undefined;
    const capabilities = new Set<string>([
      ...(sdk.capabilities["_default"] ?? []),
      ...(platformOnly(sdk.capabilities) ?? []),
      ...extensionCapabilities,
    ]);
    return {
      platform: data.platform,
      sdk_version: data.sdk_version,
      minimum_version: platformOnly(sdk.minimumVersions),
      recommended_version: platformOnly(sdk.recommendedVersions),
      capabilities: [...capabilities],
      notes: platformOnly(sdk.notes) ??
        (Object.hasOwn(sdk.notes, "_default") ? sdk.notes["_default"] : undefined),
      game_data_formats: formats,
      player_name_rules: this.#nameRules,
    };
  }

  // -------------------------------------------------------------------------------------------
  // JoinRoom (PROTOCOL.md §7.2)

  #joinRoom(session: Session, data: ClientData<"JoinRoom">, now: number): Effect[] {
    const options = this.#options;
    const id = session.playerId;
    const creating = data.room_code === undefined;
    const limited = this.#takeToken(session, creating ? "create" : "join", now);
    if (limited) {
      return [...joinFailed(id, limited.reason, "RATE_LIMIT_EXCEEDED", creating), limited.event];
    }
    const gameNameProblem = checkGameName(data.game_name, options.maxGameNameLength);
    if (gameNameProblem) return joinFailed(id, gameNameProblem, "INVALID_GAME_NAME", creating);
    const nameProblem = checkPlayerName(data.player_name, options.nameRules);
    if (nameProblem) return joinFailed(id, nameProblem, "INVALID_INPUT", creating);
    // An app's max_players_per_room caps the default and the explicit value (SERVER.md §3.3).
    const appCap = session.app?.maxPlayersPerRoom;
    const maxPlayers = data.max_players ??
      Math.min(options.defaultMaxPlayers, appCap ?? options.defaultMaxPlayers);
    if (maxPlayers < 1) {
      return joinFailed(id, "Max players must be at least 1", "INVALID_INPUT", creating);
    }
    if (maxPlayers > options.maxPlayersLimit) {
      return joinFailed(
        id,
        `Max players cannot exceed ${options.maxPlayersLimit}`,
        "INVALID_INPUT",
        creating,
      );
    }
    if (appCap !== undefined && maxPlayers > appCap) {
      return joinFailed(id, `Max players cannot exceed ${appCap}`, "INVALID_INPUT", creating);
    }
    if (session.playing || session.watching) {
      return joinFailed(id, "Already in a room", "ALREADY_IN_ROOM", creating);
    }

    if (data.room_code !== undefined) {
      const codeProblem = checkRoomCode(data.room_code, options.roomCodeLength);
      if (codeProblem) return joinFailed(id, codeProblem, "INVALID_ROOM_CODE", creating);
      const room = this.#rooms.get(roomKey(data.game_name, data.room_code.toUpperCase()));
      if (room) return this.#joinExisting(session, room, data.player_name, now);
    }

    // Creating: with the requested code (join-or-create) or a generated one.
    if (!creating) {
      const limitedCreate = this.#takeToken(session, "create", now);
      if (limitedCreate) {
        return [
          ...joinFailed(id, limitedCreate.reason, "RATE_LIMIT_EXCEEDED", true),
          limitedCreate.event,
        ];
      }
    }
    const count = this.#roomsPerGame.get(data.game_name) ?? 0;
    if (count >= options.maxRoomsPerGame) {
      return joinFailed(
        id,
        `Game \`${data.game_name}\` already has ${count} rooms (limit ${options.maxRoomsPerGame})`,
        "MAX_ROOMS_PER_GAME_EXCEEDED",
        true,
      );
    }
    const app = session.app;
    if (app?.maxRooms !== undefined && this.#appRooms.count(app.appId) >= app.maxRooms) {
      return joinFailed(
        id,
        `App \`${app.appId}\` already has ${
          this.#appRooms.count(app.appId)
        } rooms (limit ${app.maxRooms})`,
        "MAX_ROOMS_PER_GAME_EXCEEDED",
        true,
      );
    }
    if (data.room_code !== undefined) {
      return this.#create(session, data, data.room_code.toUpperCase(), maxPlayers, now);
    }
    const generated = this.#generateCode(data.game_name);
    if (!generated.code) {
      return [
        ...generated.effects,
        ...joinFailed(id, "Failed to create room", "ROOM_CREATION_FAILED", true),
      ];
    }
    return [...generated.effects, ...this.#create(session, data, generated.code, maxPlayers, now)];
  }

  #generateCode(gameName: string): { code?: string; effects: Effect[] } {
    const effects: Effect[] = [];
    for (let attempt = 0; attempt < CODE_ATTEMPTS; attempt++) {
      const code = this.#options.newRoomCode();
      if (!this.#rooms.has(roomKey(gameName, code))) return { code, effects };
      effects.push({ kind: "event", event: { type: "code_collision" } });
    }
    return { effects };
  }

  #create(
    session: Session,
    data: ClientData<"JoinRoom">,
    code: string,
    maxPlayers: number,
    now: number,
  ): Effect[] {
    const options = this.#options;
    const room = new Room({
      id: options.newId(),
      code,
      gameName: data.game_name,
      maxPlayers,
      supportsAuthority: data.supports_authority ?? true,
      relayType: Object.hasOwn(options.relayTypeByGame, data.game_name)
        ? options.relayTypeByGame[data.game_name]!
        : options.defaultRelayType,
      now,
    });
    this.#rooms.set(room.key, room);
    if (session.app) this.#appRooms.add(session.app.appId, room.key);
    this.#roomsPerGame.set(room.gameName, (this.#roomsPerGame.get(room.gameName) ?? 0) + 1);
    this.#seat(session, room, data.player_name, now);
    if (room.supportsAuthority) room.authority = session.playerId;
    return [
      {
        kind: "event",
        event: {
          type: "room_created",
          gameName: room.gameName,
          roomCode: room.code,
          roomId: room.id,
          playerId: session.playerId,
        },
      },
      ...this.#announceJoin(session.playerId, room, now),
    ];
  }

  #joinExisting(session: Session, room: Room, playerName: string, now: number): Effect[] {
    if (room.hasName(playerName)) {
      return joinFailed(
        session.playerId,
        "Player name already exists in this room",
        "ROOM_CREATION_FAILED",
        false,
      );
    }
    if (room.seats.size >= room.maxPlayers) {
      return joinFailed(session.playerId, "Room is full", "ROOM_FULL", false);
    }
    this.#seat(session, room, playerName, now);
    return [
      {
        kind: "event",
        event: {
          type: "room_joined",
          gameName: room.gameName,
          roomCode: room.code,
          roomId: room.id,
          playerId: session.playerId,
        },
      },
      ...this.#announceJoin(session.playerId, room, now),
    ];
  }

  #seat(session: Session, room: Room, name: string, now: number): void {
    const seat: Seat = {
      id: session.playerId,
      name,
      nameKey: nameKey(name),
      connectedAt: new Date(now).toISOString(),
    };
    room.addSeat(seat);
    room.emptySince = null;
    room.lastActivity = now;
    session.playing = room;
  }

  /** Replies and broadcasts after a successful join (PROTOCOL.md §7.2.4), in order. */
  #announceJoin(joiner: string, room: Room, now: number): Effect[] {
    const seat = room.seats.get(joiner)!;
    const data: RoomSnapshot & { reconnection_token?: string } = this.#snapshot(room, joiner);
    if (this.#options.enableReconnection) {
      data.reconnection_token = this.#issueToken(joiner, room, now);
    }
    const effects: Effect[] = [send(joiner, { type: "RoomJoined", data })];
    const others = room.membersExcept(joiner);
    if (others.length > 0) {
      const player = room.playerInfo(seat);
      // The joiner never holds authority in the announcement (PROTOCOL.md §7.2.4 step 2).
      player.is_authority = false;
      effects.push(send(others, { type: "PlayerJoined", data: { player } }));
    }
    if (room.maxPlayers > 1 && room.seats.size === room.maxPlayers) {
      effects.push(this.#lobbyChanged(room));
    }
    if (room.maxPlayers === 1) {
      effects.push(send([joiner, ...room.spectators.keys()], {
        type: "GameStarting",
        data: { peer_connections: room.peerConnections() },
      }));
    }
    return effects;
  }

  /** The 12 fields `RoomJoined` and `Reconnected` share (PROTOCOL.md §6.4, §6.16). */
  #snapshot(room: Room, playerId: string): RoomSnapshot {
    return {
      room_id: room.id,
      room_code: room.code,
      player_id: playerId,
      game_name: room.gameName,
      max_players: room.maxPlayers,
      supports_authority: room.supportsAuthority,
      current_players: room.players(),
      is_authority: room.authority === playerId,
      lobby_state: room.lobbyState,
      ready_players: [...room.ready],
      relay_type: room.relayType,
      current_spectators: room.spectatorInfos(),
    };
  }

  #lobbyChanged(room: Room): Effect {
    const state = room.lobbyState;
    return send(room.members(), {
      type: "LobbyStateChanged",
      data: {
        lobby_state: state,
        ready_players: [...room.ready],
        all_ready: state === "finalized",
      },
    });
  }

  // -------------------------------------------------------------------------------------------
  // Leaving (PROTOCOL.md §7.3)

  #leaveRoom(session: Session, now: number): Effect[] {
    const room = session.playing;
    if (!room) return [];
    this.#invalidateToken(session.playerId, "left", now);
    return [
      send(session.playerId, { type: "RoomLeft" }),
      ...this.#releaseSeat(room, session.playerId, now, "leave"),
    ];
  }

  /** The seat release sequence (PROTOCOL.md §7.3.3). */
  #releaseSeat(
    room: Room,
    playerId: string,
    now: number,
    reason: "leave" | "disconnect" | "expired",
  ): Effect[] {
    const wasFull = room.lobbyState !== "waiting";
    room.removeSeat(playerId);
    room.ready.delete(playerId);
    const session = this.#sessionOf(playerId);
    if (session?.playing === room) session.playing = undefined;
    room.lastActivity = now;
    const effects: Effect[] = [{
      kind: "event",
      event: {
        type: "seat_released",
        gameName: room.gameName,
        roomCode: room.code,
        playerId,
        reason,
      },
    }];
    const members = room.members();
    if (members.length > 0) {
      effects.push(send(members, { type: "PlayerLeft", data: { player_id: playerId } }));
    }
    if (room.authority === playerId) {
      room.authority = null;
      if (members.length > 0) {
        effects.push(send(members, {
          type: "AuthorityChanged",
          data: { authority_player: null, you_are_authority: false },
        }));
      }
    }
    if (wasFull) {
      room.ready.clear();
      if (members.length > 0) effects.push(this.#lobbyChanged(room));
    }
    if (room.seats.size === 0) room.emptySince = now;
    return effects;
  }

  #deleteRoom(room: Room, reason: "empty" | "inactive", now: number): Effect[] {
    this.#rooms.delete(room.key);
    this.#appRooms.remove(room.key);
    const left = (this.#roomsPerGame.get(room.gameName) ?? 1) - 1;
    if (left > 0) this.#roomsPerGame.set(room.gameName, left);
    else this.#roomsPerGame.delete(room.gameName);
    const effects: Effect[] = [{
      kind: "event",
      event: {
        type: "room_deleted",
        gameName: room.gameName,
        roomCode: room.code,
        roomId: room.id,
        reason,
      },
    }];
    for (const playerId of room.seats.keys()) {
      this.#invalidateToken(playerId, "room_gone", now);
      const hold = this.#holds.get(playerId);
      if (hold) {
        // Nobody to tell: the seat's connection is gone and its replay buffer goes with it.
        this.#holds.delete(playerId);
        this.#heldByConn.delete(hold.conn);
      } else {
        const session = this.#sessionOf(playerId);
        if (session?.playing === room) session.playing = undefined;
        effects.push(send(playerId, { type: "RoomLeft" }));
      }
      effects.push({
        kind: "event",
        event: {
          type: "seat_released",
          gameName: room.gameName,
          roomCode: room.code,
          playerId,
          reason: "room_deleted",
        },
      });
    }
    const spectators = [...room.spectators.keys()];
    for (const spectatorId of spectators) {
      const session = this.#sessionOf(spectatorId);
      if (session?.watching === room) session.watching = undefined;
    }
    if (spectators.length > 0) {
      effects.push(send(spectators, {
        type: "SpectatorLeft",
        data: {
          room_id: room.id,
          room_code: room.code,
          reason: "room_closed",
          current_spectators: [],
        },
      }));
    }
    room.clearMembers();
    room.ready.clear();
    return effects;
  }

  // -------------------------------------------------------------------------------------------
  // Game data (PROTOCOL.md §7.6)

  #gameData(session: Session, data: ClientData<"GameData">, now: number): Effect[] {
    if (session.watching) {
      return [error(session.playerId, "Spectators cannot send game data", "SPECTATOR_NOT_ALLOWED")];
    }
    const room = session.playing;
    if (!room) return [];
    const message: ServerMessage = {
      type: "GameData",
      data: { from_player: session.playerId, data: data.data },
    };
    const target = data.to_player;
    if (target !== undefined) {
      if (target === session.playerId) {
        return [error(session.playerId, "Cannot send game data to yourself", "INVALID_INPUT")];
      }
      if (!room.seats.has(target)) {
        return [error(session.playerId, "Target player is not in this room", "INVALID_INPUT")];
      }
      room.lastActivity = now;
      return [send(target, message), {
        kind: "event",
        event: { type: "game_data", recipients: 1 },
      }];
    }
    room.lastActivity = now;
    const recipients = room.membersExcept(session.playerId);
    const event: Effect = {
      kind: "event",
      event: { type: "game_data", recipients: recipients.length },
    };
    return recipients.length > 0 ? [send(recipients, message), event] : [event];
  }

  // -------------------------------------------------------------------------------------------
  // Authority (PROTOCOL.md §7.5)

  #authorityRequest(session: Session, claim: boolean, now: number): Effect[] {
    const id = session.playerId;
    if (session.watching) {
      return [error(id, "Spectators cannot request authority", "SPECTATOR_NOT_ALLOWED")];
    }
    const room = session.playing;
    const deny = (reason: string, code: ErrorCode): Effect =>
      send(id, {
        type: "AuthorityResponse",
        data: { granted: false, reason, error_code: code },
      });
    if (!room) return [deny("Not in a room", "NOT_IN_ROOM")];
    room.lastActivity = now;
    if (!room.supportsAuthority) {
      return [deny("Room does not support authority", "AUTHORITY_NOT_SUPPORTED")];
    }
    const granted = send(id, { type: "AuthorityResponse", data: { granted: true, reason: null } });
    if (claim) {
      if (room.authority === id) return [granted];
      if (room.authority !== null) {
        return [deny("Another player already has authority", "AUTHORITY_CONFLICT")];
      }
      room.authority = id;
    } else {
      if (room.authority !== id) {
        return [deny("You do not have authority to release", "AUTHORITY_DENIED")];
      }
      room.authority = null;
    }
    return [granted, ...this.#authorityChanged(room)];
  }

  /** `AuthorityChanged` to every member, personalised for the holder (PROTOCOL.md §7.5). */
  #authorityChanged(room: Room): Effect[] {
    const holder = room.authority;
    const effects: Effect[] = [];
    if (holder !== null) {
      effects.push(send(holder, {
        type: "AuthorityChanged",
        data: { authority_player: holder, you_are_authority: true },
      }));
    }
    const others = room.membersExcept(holder ?? "");
    if (others.length > 0) {
      effects.push(send(others, {
        type: "AuthorityChanged",
        data: { authority_player: holder, you_are_authority: false },
      }));
    }
    return effects;
  }

  // -------------------------------------------------------------------------------------------
  // Lobby (PROTOCOL.md §7.4) and connection info (§7.8)

  #playerReady(session: Session, now: number): Effect[] {
    if (session.watching) {
      return [
        error(session.playerId, "Spectators cannot change ready status", "SPECTATOR_NOT_ALLOWED"),
      ];
    }
    const room = session.playing;
    if (!room) return [error(session.playerId, "Not in a room", "NOT_IN_ROOM")];
    room.lastActivity = now;
    const before = room.lobbyState;
    if (!room.ready.delete(session.playerId)) room.ready.add(session.playerId);
    const effects = [this.#lobbyChanged(room)];
    if (room.lobbyState === "finalized" && before !== "finalized") {
      effects.push(send(room.members(), {
        type: "GameStarting",
        data: { peer_connections: room.peerConnections() },
      }));
    }
    return effects;
  }

  #provideConnectionInfo(session: Session, info: ConnectionInfo, now: number): Effect[] {
    if (session.watching) {
      return [
        error(
          session.playerId,
          "Spectators cannot provide connection info",
          "SPECTATOR_NOT_ALLOWED",
        ),
      ];
    }
    const room = session.playing;
    if (!room) return [error(session.playerId, "Not in a room", "NOT_IN_ROOM")];
    room.lastActivity = now;
    room.seats.get(session.playerId)!.connectionInfo = info;
    return [];
  }

  // -------------------------------------------------------------------------------------------
  // Reconnection (PROTOCOL.md §7.11)

  #reconnect(session: Session, data: ClientData<"Reconnect">, now: number): Effect[] {
    const effects: Effect[] = [];
    const fail = (reason: string, code: ErrorCode): Effect[] => [
      ...effects,
      send(session.playerId, { type: "ReconnectionFailed", data: { reason, error_code: code } }),
      { kind: "event", event: { type: "reconnect_failed", errorCode: code } },
    ];
    if (!this.#options.enableReconnection) {
      return fail("Reconnection is not enabled", "RECONNECTION_FAILED");
    }
    if (session.playing || session.watching) return fail("Already in a room", "ALREADY_IN_ROOM");
    const playerId = data.player_id;
    const record = this.#findToken(playerId, data.auth_token);
    if (
      !record || record.room.id !== data.room_id ||
      (this.#options.auth?.required && record.appId !== session.app?.appId) ||
      !(record.state === "valid" || record.state === "expired" || record.state === "room_gone")
    ) {
      return fail("Invalid reconnection token", "RECONNECTION_TOKEN_INVALID");
    }
    let hold = this.#holds.get(playerId);
    if (hold && now >= hold.expiresAt) {
      // The window ended before the timer got to it: expire it now (PROTOCOL.md §7.11.3).
      effects.push(...this.#expire(hold, now));
      hold = undefined;
    }
    if (record.state === "expired") {
      return fail("Reconnection window has expired", "RECONNECTION_EXPIRED");
    }
    if (record.state === "room_gone") return fail("Room no longer exists", "RECONNECTION_FAILED");

    const room = record.room;
    let missed: RawJson[] = [];
    let truncated = false;
    if (hold) {
      missed = hold.frames.map((frame) => new RawJson(frame));
      truncated = hold.truncated;
      this.#holds.delete(playerId);
      this.#heldByConn.delete(hold.conn);
    } else {
      // Takeover: the seat is live on another socket (PROTOCOL.md §7.11.5 step 1).
      const oldConn = this.#moved.get(playerId) ?? playerId;
      const old = this.#sessions.get(oldConn);
      if (old) {
        this.#sessions.delete(oldConn);
        old.playing = undefined;
      }
      effects.push({
        kind: "close",
        to: oldConn,
        code: 4001,
        reason: "Replaced by a new connection",
      });
    }
    session.playerId = playerId;
    session.playing = room;
    if (session.id === playerId) this.#moved.delete(playerId);
    else this.#moved.set(playerId, session.id);
    this.#invalidate(record, "used", now);
    room.lastActivity = now;
    effects.push(
      send(playerId, {
        type: "Reconnected",
        data: {
          ...this.#snapshot(room, playerId),
          missed_events: missed,
          reconnection_token: this.#issueToken(playerId, room, now),
          replay_truncated: truncated,
        },
      }),
      {
        kind: "event",
        event: {
          type: "player_reconnected",
          gameName: room.gameName,
          roomCode: room.code,
          playerId,
          takeover: hold === undefined,
          missed: missed.length,
        },
      },
    );
    if (truncated) effects.push({ kind: "event", event: { type: "replay_truncated" } });
    const others = room.membersExcept(playerId);
    if (others.length > 0) {
      effects.push(send(others, { type: "PlayerReconnected", data: { player_id: playerId } }));
    }
    return effects;
  }

  /** Holds a dropped player's seat (PROTOCOL.md §7.11.2); nobody is told. */
  #hold(room: Room, playerId: string, conn: ConnId, now: number, loss: DisconnectLoss): Effect[] {
    const hold: Hold = {
      room,
      playerId,
      conn,
      expiresAt: now + this.#options.reconnectionWindowMs,
      frames: [],
      sizes: [],
      bytes: 0,
      truncated: loss.truncated ?? false,
    };
    this.#holds.set(playerId, hold);
    this.#heldByConn.set(conn, hold);
    for (const frame of loss.unsent ?? []) this.#append(hold, frame, utf8Length(frame));
    return [{
      kind: "event",
      event: {
        type: "seat_held",
        gameName: room.gameName,
        roomCode: room.code,
        playerId,
        truncated: hold.truncated,
      },
    }];
  }

  /** Ends a hold whose window is over: the seat release sequence (PROTOCOL.md §7.11.3). */
  #expire(hold: Hold, now: number): Effect[] {
    this.#holds.delete(hold.playerId);
    this.#heldByConn.delete(hold.conn);
    this.#invalidateToken(hold.playerId, "expired", now);
    const { room } = hold;
    return [
      {
        kind: "event",
        event: {
          type: "seat_expired",
          gameName: room.gameName,
          roomCode: room.code,
          playerId: hold.playerId,
        },
      },
      ...this.#releaseSeat(room, hold.playerId, now, "expired"),
    ];
  }

  /**
   * Appends one serialised message of `size` UTF-8 bytes to a replay buffer, dropping the oldest
   * to stay within `eventBufferSize` messages and `eventBufferMaxBytes` bytes (PROTOCOL.md
   * §7.11.2); any drop marks the buffer truncated.
   */
  #append(hold: Hold, frame: string, size: number): void {
    const { eventBufferSize, eventBufferMaxBytes } = this.#options;
    if (eventBufferSize === 0 || size > eventBufferMaxBytes) {
      hold.truncated = true;
      return;
    }
    while (hold.frames.length >= eventBufferSize || hold.bytes + size > eventBufferMaxBytes) {
      hold.frames.shift();
      hold.bytes -= hold.sizes.shift()!;
      hold.truncated = true;
    }
    hold.frames.push(frame);
    hold.sizes.push(size);
    hold.bytes += size;
    this.#eventsBuffered++;
  }

  /** Mints the seat's token, superseding the previous one (PROTOCOL.md §7.11.1). */
  #issueToken(playerId: string, room: Room, now: number): string {
    this.#invalidateToken(playerId, "superseded", now);
    const token = this.#options.newToken();
    const records = this.#tokens.get(playerId);
    const appId = this.#sessionOf(playerId)?.app?.appId;
    const record: TokenRecord = { playerId, token, room, appId, state: "valid", invalidSince: 0 };
    if (records) records.push(record);
    else this.#tokens.set(playerId, [record]);
    return token;
  }

  /** Moves the seat's valid token (if any) to `state`. */
  #invalidateToken(playerId: string, state: TokenRecord["state"], now: number): void {
    for (const record of this.#tokens.get(playerId) ?? []) {
      if (record.state === "valid") this.#invalidate(record, state, now);
    }
  }

  #invalidate(record: TokenRecord, state: TokenRecord["state"], now: number): void {
    record.state = state;
    record.invalidSince = now;
    this.#invalidated.push(record);
  }

  /** The record of `token` among `playerId`'s, compared in constant time. */
  #findToken(playerId: string, token: string): TokenRecord | undefined {
    let found: TokenRecord | undefined;
    for (const record of this.#tokens.get(playerId) ?? []) {
      if (secretEquals(record.token, token)) found = record;
    }
    return found;
  }

  /** The live session whose identity is `playerId`, if any. */
  #sessionOf(playerId: string): Session | undefined {
    const session = this.#sessions.get(this.#moved.get(playerId) ?? playerId);
    return session?.playerId === playerId ? session : undefined;
  }

  /**
   * Turns recipients (identities) into connection ids: messages for held seats go to their
   * replay buffers (serialised once per message), adopted identities map to their connection.
   * Costs nothing while no seat is held and no connection has adopted an identity.
   */
  #route(effects: Effect[]): Effect[] {
    if (this.#holds.size === 0 && this.#moved.size === 0) return effects;
    for (const effect of effects) {
      if (effect.kind !== "send") continue;
      let routed: ConnId[] | undefined;
      let size = -1;
      const to = effect.to;
      for (let i = 0; i < to.length; i++) {
        const id = to[i]!;
        const hold = this.#holds.get(id);
        const moved = hold ? undefined : this.#moved.get(id);
        if (!hold && moved === undefined) {
          routed?.push(id);
          continue;
        }
        routed ??= to.slice(0, i);
        if (moved !== undefined) {
          routed.push(moved);
          continue;
        }
        effect.frame ??= encodeServerMessage(effect.message);
        if (size < 0) size = utf8Length(effect.frame);
        this.#append(hold!, effect.frame, size);
      }
      if (routed) effect.to = routed;
    }
    return effects;
  }

  // -------------------------------------------------------------------------------------------
  // Spectators (PROTOCOL.md §7.9)

  #joinAsSpectator(session: Session, data: ClientData<"JoinAsSpectator">, now: number): Effect[] {
    const options = this.#options;
    const id = session.playerId;
    const limited = this.#takeToken(session, "join", now);
    if (limited) {
      return [spectatorJoinFailed(id, limited.reason, "RATE_LIMIT_EXCEEDED"), limited.event];
    }
    const gameNameProblem = checkGameName(data.game_name, options.maxGameNameLength);
    if (gameNameProblem) return [spectatorJoinFailed(id, gameNameProblem, "INVALID_GAME_NAME")];
    const nameProblem = checkPlayerName(data.spectator_name, options.nameRules);
    if (nameProblem) return [spectatorJoinFailed(id, nameProblem, "INVALID_PLAYER_NAME")];
    if (session.playing) return [spectatorJoinFailed(id, "Already in a room", "ALREADY_IN_ROOM")];
    const codeProblem = checkRoomCode(data.room_code, options.roomCodeLength);
    if (codeProblem) return [spectatorJoinFailed(id, codeProblem, "INVALID_ROOM_CODE")];
    const room = this.#rooms.get(roomKey(data.game_name, data.room_code.toUpperCase()));
    if (!room) return [spectatorJoinFailed(id, "Room not found", "ROOM_NOT_FOUND")];
    const others = room.spectators.size - (room.spectators.has(id) ? 1 : 0);
    if (options.maxSpectatorsPerRoom > 0 && others >= options.maxSpectatorsPerRoom) {
      return [spectatorJoinFailed(id, "Spectator limit reached", "TOO_MANY_SPECTATORS")];
    }

    // A JoinAsSpectator while spectating is a switch: leave the old room quietly first.
    const effects = session.watching
      ? this.#detachSpectator(session, "voluntary_leave", now, false)
      : [];
    const spectator = { id, name: data.spectator_name, connectedAt: new Date(now).toISOString() };
    room.addSpectator(spectator);
    room.lastActivity = now;
    session.watching = room;
    const current = room.spectatorInfos();
    effects.push(
      send(id, {
        type: "SpectatorJoined",
        data: {
          room_id: room.id,
          room_code: room.code,
          spectator_id: id,
          game_name: room.gameName,
          current_players: room.players(),
          current_spectators: current,
          lobby_state: room.lobbyState,
          reason: "joined",
        },
      }),
      {
        kind: "event",
        event: {
          type: "spectator_joined",
          gameName: room.gameName,
          roomCode: room.code,
          spectatorId: id,
        },
      },
    );
    const audience = room.membersExcept(id);
    if (audience.length > 0) {
      effects.push(send(audience, {
        type: "NewSpectatorJoined",
        data: {
          spectator: { id, name: spectator.name, connected_at: spectator.connectedAt },
          current_spectators: current,
          reason: "joined",
        },
      }));
    }
    return effects;
  }

  #leaveSpectator(session: Session, now: number): Effect[] {
    if (!session.watching) {
      return [
        error(session.playerId, "You are not currently spectating a room", "NOT_A_SPECTATOR"),
      ];
    }
    return this.#detachSpectator(session, "voluntary_leave", now, true);
  }

  /** Detaches a spectator; `tellSpectator` sends it `SpectatorLeft` (LeaveSpectator only). */
  #detachSpectator(
    session: Session,
    reason: "voluntary_leave" | "disconnected",
    now: number,
    tellSpectator: boolean,
  ): Effect[] {
    const room = session.watching!;
    session.watching = undefined;
    room.removeSpectator(session.playerId);
    room.lastActivity = now;
    const remaining = room.spectatorInfos();
    const effects: Effect[] = [{
      kind: "event",
      event: {
        type: "spectator_left",
        gameName: room.gameName,
        roomCode: room.code,
        spectatorId: session.playerId,
      },
    }];
    if (tellSpectator) {
      effects.push(send(session.playerId, {
        type: "SpectatorLeft",
        data: {
          room_id: room.id,
          room_code: room.code,
          reason,
          current_spectators: remaining,
        },
      }));
    }
    const members = room.members();
    if (members.length > 0) {
      effects.push(send(members, {
        type: "SpectatorDisconnected",
        data: { spectator_id: session.playerId, reason, current_spectators: remaining },
      }));
    }
    return effects;
  }
}

function summarize(room: Room): RoomSummary {
  return {
    room_code: room.code,
    game_name: room.gameName,
    players: room.seats.size,
    max_players: room.maxPlayers,
    spectators: room.spectators.size,
    lobby_state: room.lobbyState,
    supports_authority: room.supportsAuthority,
    relay_type: room.relayType,
  };
}
