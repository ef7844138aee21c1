/**
 * A dependency-free Signal Fish v2 client for browsers, Deno and Node ≥ 22 (anything with a
 * standard `WebSocket`). It wraps the protocol (docs/spec/PROTOCOL.md §5–§7, docs/spec/EXTENSIONS.md) in promises
 * and events:
 *
 * ```ts
 * const client = await SignalFishClient.connect("http://127.0.0.1:3536");
 * client.on("gameData", ({ from_player, data }) => console.log(from_player, data));
 * client.on("room", (room) => console.log(room?.players.map((p) => p.name)));
 * const room = await client.create({ game_name: "orbit", player_name: "Mira", max_players: 2 });
 * console.log("share this code:", room.room_code); // others: client.join({ …, room_code })
 * await client.setReady(true);
 * client.sendGameData({ op: "hello" });
 * ```
 *
 * Requests resolve with the server's answer and reject with {@linkcode SignalFishError}
 * (`code` = the spec's error code) or {@linkcode SignalFishConnectionError}; they never throw,
 * so a request made while the connection is not open (connecting, reconnecting, closed) rejects
 * with {@linkcode SignalFishConnectionError} — except `leave()`, which waits for a reconnection
 * to end and then leaves the restored seat. Only the fire-and-forget sends (`sendGameData`,
 * `sendTo`, `sendBinary`) throw. The server answers
 * each connection in order (docs/spec/PROTOCOL.md §1.5), so each reply settles the oldest request waiting
 * for that kind of reply.
 *
 * `join()` joins an existing room only, `create()` creates one, `joinOrCreate()` does either
 * (`JoinRoom.create`, docs/spec/EXTENSIONS.md E9); `create({ authority_handover: true })` lets authority
 * pass on when its holder leaves (E11); `presenceEvents: true` reports players who dropped (E10).
 *
 * While seated in a room, a dropped connection is restored automatically (docs/spec/PROTOCOL.md §7.11):
 * the client reopens the socket with exponential backoff and full jitter (bounded in attempts
 * and time, stopped by `cancelReconnect()`), re-sends `Authenticate` if it had authenticated,
 * sends `Reconnect` with the latest reconnection token, then delivers the `missed_events` in
 * order as ordinary events before emitting `reconnected`. Spectators watch the room again.
 * The seat is also kept in a session store (`sessionStorage` in browsers), so after a page
 * reload `resume()` takes it back.
 *
 * MessagePack game data (docs/spec/PROTOCOL.md §7.7) uses the small built-in codec in `msgpack.ts`:
 * `sendGameData(value, { binary: true })` encodes `value`; `sendBinary(bytes)` sends bytes the
 * app encoded itself. Received envelopes emit `gameData` with `binary: true`, the raw `payload`
 * and the decoded `data`.
 *
 * @module
 */
import { SignalFishConnectionError, SignalFishError } from "./errors.ts";
import { decodeMessagePack, encodeMessagePack } from "./msgpack.ts";
import type {
  AuthenticateData,
  ClientMessage,
  ConnectionInfo,
  ErrorCode,
  GameDataBinary,
  GameDataEncoding,
  JoinRoomData,
  LobbyState,
  PlayerInfo,
  ReconnectedData,
  RoomSnapshot,
  ServerData,
  ServerMessage,
  ServerMessageType,
  SpectateData,
  SpectatorInfo,
} from "./messages.ts";

export { SignalFishConnectionError, SignalFishError } from "./errors.ts";
export type { FailureMessageType } from "./errors.ts";
export { decodeMessagePack, encodeMessagePack } from "./msgpack.ts";
export { ERROR_CODES } from "../protocol/error_codes.ts";
export type * from "./messages.ts";

/**
 * Backoff settings of automatic reconnection (docs/spec/PROTOCOL.md §7.11). Attempt `n` (1-based) waits
 * `random() × min(maxDelayMs, initialDelayMs × 2^(n−1))` ms ("full jitter", so clients dropped
 * together by a server restart do not come back together), or with `jitter: "equal"` a delay
 * drawn from the upper half of that range. Reconnection stops after `maxAttempts` attempts or
 * once `maxElapsedMs` have passed since the drop, whichever comes first, and at once on
 * `close()` or `cancelReconnect()`.
 *
 * Refusals (of `Reconnect`, docs/spec/PROTOCOL.md §7.11.4, of authenticating again, or of watching
 * the room again) are of two kinds:
 *
 * - **Temporary** — `RATE_LIMIT_EXCEEDED` (e.g. the per-IP reconnect bucket, §7.13),
 *   `SERVICE_UNAVAILABLE` (a multi-instance server briefly cannot reach its shared store or the
 *   room's home) and `INTERNAL_ERROR`: the server still holds the seat, so the client keeps it
 *   and its token, counts the attempt as failed and tries again on a fresh connection after the
 *   next backoff. After `RATE_LIMIT_EXCEEDED` it waits at least the seconds the reason names
 *   ("Try again in <s> seconds.", even beyond `maxDelayMs`), and gives up at once when that
 *   wait would end after `maxElapsedMs`. Running out of attempts or time this way keeps the
 *   stored session, so `resume()` may take the seat back later.
 * - **Definitive** — every other code, e.g. `RECONNECTION_TOKEN_INVALID`,
 *   `RECONNECTION_EXPIRED`, `RECONNECTION_FAILED` (the room no longer exists, or the server has
 *   reconnection disabled) and authentication failures (`INVALID_APP_ID`, `UNAUTHORIZED`,
 *   `SDK_VERSION_UNSUPPORTED`): reconnection ends at once, the seat is lost and (except after
 *   an authentication failure) the stored session is forgotten; `reconnectFailed` carries the
 *   refusal and the connection stays open when it still is, so the app can join again.
 */
export interface ReconnectOptions {
  /** Attempts before giving up. @default 10 */
  maxAttempts?: number;
  /** Time budget from the drop to the last attempt, ms. @default 120000 */
  maxElapsedMs?: number;
  /** Backoff base before the first attempt, ms; doubles each attempt. @default 250 */
  initialDelayMs?: number;
  /** Upper bound of the backoff base, ms. @default 10000 */
  maxDelayMs?: number;
  /** `"full"`: delay in `[0, d)`; `"equal"`: delay in `[d/2, d)`. @default "full" */
  jitter?: "full" | "equal";
  /** Source of jitter in `[0, 1)`. @default Math.random */
  random?: () => number;
  /**
   * Also reopen the connection (and authenticate again) when it drops while the client is in no
   * room, so an idle lobby screen survives a server restart. @default false
   */
  whenIdle?: boolean;
}

/**
 * Where the client keeps what it needs to take its seat back after a page reload (the room, the
 * player id and the latest reconnection token; for spectators the room and name). The Web
 * Storage interface, so `sessionStorage` (the browser default: one tab's reload, not shared with
 * other tabs) or `localStorage` fit as they are; any object with these three methods works.
 * `getItem` may return a promise (e.g. a file or database behind it).
 */
export interface SessionStore {
  /** The stored text for `key`, or `null`. */
  getItem(key: string): string | null | Promise<string | null>;
  /** Stores `value` under `key`. */
  setItem(key: string, value: string): void | Promise<void>;
  /** Forgets `key`. */
  removeItem(key: string): void | Promise<void>;
}

/** What {@linkcode SessionStore} holds for one client (JSON, versioned). */
export type StoredSession =
  | {
    v: 1;
    role: "player";
    player_id: string;
    room_id: string;
    room_code: string;
    game_name: string;
    token: string;
  }
  | { v: 1; role: "spectator"; room_code: string; game_name: string; spectator_name: string };

/** What {@linkcode SignalFishClient.resume} restored. */
export type ResumeResult =
  | { role: "player"; reconnected: ReconnectedData }
  | { role: "spectator"; spectating: ServerData<"SpectatorJoined"> };

/**
 * A room as `GET /v2/rooms/{game_name}/{room_code}` describes it (docs/spec/EXTENSIONS.md E5, E11).
 */
export interface RoomSummary {
  /** Canonical upper-case code. */
  room_code: string;
  /** The game namespace the room belongs to. */
  game_name: string;
  /** Seats, held ones included. */
  players: number;
  /** The room's seat count. */
  max_players: number;
  /** Spectators watching now. */
  spectators: number;
  /** The room's lobby state (docs/spec/PROTOCOL.md §7.4). */
  lobby_state: LobbyState;
  /** Whether the room has authority (docs/spec/PROTOCOL.md §7.5). */
  supports_authority: boolean;
  /** The room's relay type (docs/spec/PROTOCOL.md §7.2.6). */
  relay_type: string;
  /** Whether authority passes on when its holder leaves (servers with E11). */
  authority_handover?: boolean;
}

/** Options of {@linkcode SignalFishClient}. */
export interface ClientOptions {
  /** How long a request waits for its answer, ms. @default 10000 */
  requestTimeoutMs?: number;
  /**
   * Interval of JSON `Ping` heartbeats while open, ms (docs/spec/PROTOCOL.md §7.10); `0` disables them.
   * With heartbeats on, a connection that receives nothing for 3 intervals is treated as
   * dropped (so a half-open TCP connection triggers reconnection). The heartbeat never sends a
   * connection's first message: on a server that requires authentication anything but
   * `Authenticate` first closes the connection (§7.1.1), and the client cannot tell such a server
   * from one that does not. So on each connection it starts once authentication succeeded there
   * (`auth`, `presenceEvents` or `authenticate()`), or once the app sent something else (a
   * request, game data); until then there are no `Ping`s and no silence check. @default 10000
   */
  heartbeatIntervalMs?: number;
  /** Automatic reconnection; `false` disables it. @default true (with the defaults above) */
  reconnect?: boolean | ReconnectOptions;
  /**
   * Sent as `Authenticate` right after every open (first connect and each reconnection), so the
   * app need not call `authenticate()` itself. Needed when the server requires auth.
   */
  auth?: AuthenticateData;
  /**
   * Ask for presence events (docs/spec/EXTENSIONS.md E10): adds `"presence-events"` to
   * `Authenticate.features` (authenticating automatically with `auth`, or with app id
   * `"signal-fish-client"` when `auth` is not given), so `PlayerDisconnected` arrives when
   * another player drops and `RoomState.dropped` lists the held seats. @default false
   */
  presenceEvents?: boolean;
  /**
   * Where to keep the seat for {@linkcode SignalFishClient.resume} after a reload; `false`
   * keeps nothing. @default globalThis.sessionStorage when the runtime has one, else nothing
   */
  session?: SessionStore | false;
  /** Key under which the session is stored. @default "signal-fish:" + the endpoint URL */
  sessionKey?: string;
  /**
   * Called when one of the app's event listeners throws, with the exception and the event's
   * name. The client catches every listener exception: the other listeners of the event still
   * run, the client carries on, and the exception never becomes an uncaught error (which would
   * end a Deno or Node process). Without this hook the exception is logged with
   * `console.error`; an exception thrown by the hook itself is logged the same way.
   * @default logs with console.error
   */
  onListenerError?: (error: unknown, event: ClientEventName) => void;
  /**
   * WebSocket constructor to use, for runtimes without a global one (any implementation of the
   * standard API, e.g. the `ws` package on older Node). @default globalThis.WebSocket
   */
  WebSocket?: new (url: string) => WebSocket;
}

/** The connection's state. */
export type ClientStatus = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** A seat held for a player who dropped (docs/spec/EXTENSIONS.md E10 `PlayerDisconnected`). */
export interface DroppedSeat {
  /** The dropped player's id. */
  player_id: string;
  /**
   * When the server will release the seat unless the player returns (epoch ms, local clock):
   * the arrival of `PlayerDisconnected` plus its `seat_held_secs`. When `replayed`, see there.
   */
  heldUntil: number;
  /**
   * True when the `PlayerDisconnected` came in `Reconnected.missed_events` (this client's own
   * seat was held meanwhile). `heldUntil` counts from the replay: this server gives the window
   * left at the replay (docs/spec/EXTENSIONS.md E10), so it is exact to the second; a server
   * that replays the value it first sent (older releases) makes it only the latest the release
   * can come, up to the length of this client's own absence late. A live `PlayerDisconnected` of
   * the same player replaces it.
   */
  replayed: boolean;
}

/** The room as this client currently knows it, rebuilt from snapshots and broadcasts. */
export interface RoomState {
  /** Whether this client holds a seat or watches. */
  role: "player" | "spectator";
  /** Room id (UUID). */
  roomId: string;
  /** Canonical upper-case room code. */
  roomCode: string;
  /** The room's game name. */
  gameName: string;
  /** This client's `player_id` or `spectator_id`. */
  selfId: string;
  /** Seats (`undefined` for spectators: `SpectatorJoined` does not say). */
  maxPlayers: number | undefined;
  /** Whether the room has an authority seat (`undefined` for spectators). */
  supportsAuthority: boolean | undefined;
  /** Seats in seat order, with `is_ready` and `is_authority` kept current. */
  players: PlayerInfo[];
  /**
   * Spectators in join order, every one of them: the whole list from the snapshot
   * (`RoomJoined`, `Reconnected` or `SpectatorJoined`), then each `NewSpectatorJoined.spectator`
   * appended and each `SpectatorDisconnected.spectator_id` removed. Their `current_spectators`
   * is not used: this server lists at most the first 16 spectators there (docs/spec/PROTOCOL.md
   * §7.9 note). The snapshots are not capped, so the list has no limit of its own; the server
   * caps a room's spectators (`server.max_spectators_per_room`, 100 by default).
   */
  spectators: SpectatorInfo[];
  /** `waiting`, `lobby` or `finalized` (docs/spec/PROTOCOL.md §7.4). */
  lobbyState: LobbyState;
  /** Ready seats' ids, in the order they became ready. */
  readyPlayers: string[];
  /** Id of the authority holder, or `null`. */
  authorityPlayer: string | null;
  /**
   * Seats whose player dropped and may come back (only with `presenceEvents`, docs/spec/EXTENSIONS.md
   * E10): added on `PlayerDisconnected`, removed on `PlayerReconnected` or `PlayerLeft`.
   */
  dropped: DroppedSeat[];
}

/** Game data received from another player, JSON or binary. */
export interface GameDataEvent {
  /** The sender's player id. */
  from_player: string;
  /**
   * The game value: the JSON value, or for binary data the decoded MessagePack value
   * (`undefined` when the payload is not MessagePack this client can decode).
   */
  data: unknown;
  /** True when it arrived as a binary MessagePack envelope (docs/spec/PROTOCOL.md §7.7). */
  binary: boolean;
  /** The sender's raw bytes, for binary data only. */
  payload?: Uint8Array;
  /** True when it was replayed from `Reconnected.missed_events`. */
  replayed: boolean;
}

/** Payload of the `close` event. */
export interface CloseEvent {
  /**
   * WebSocket close code (docs/spec/PROTOCOL.md §1.6): 1005 when the close frame gave none, 1006
   * when the connection was lost without a close frame (including a runtime's own code outside
   * 1000–4999, e.g. Deno's 0 for a reset), 4000 when the client abandoned a silent connection.
   * When reconnection gives up, the code and reason of the last close the client saw (the drop,
   * or a later attempt's connection closing).
   */
  code: number;
  /** Close reason (do not parse it, docs/spec/PROTOCOL.md §1.6). */
  reason: string;
  /** True when automatic reconnection will now try to restore the seat. */
  reconnecting: boolean;
}

/**
 * Events of {@linkcode SignalFishClient}: every server message type by its wire name (payload =
 * its `data`; replayed messages are emitted too), plus the client's own lower-case events.
 */
export type ClientEvents =
  & { [T in ServerMessageType]: ServerData<T> }
  & {
    /** Every JSON server message, live or replayed, before its typed event. */
    message: ServerMessage;
    /** Game data from another player (JSON `GameData` or a binary envelope). */
    gameData: GameDataEvent;
    /** A raw binary game-data envelope (MessagePack connections only). */
    GameDataBinary: GameDataBinary;
    /** The room changed (join, leave, lobby, authority, players, spectators); `null` = none. */
    room: RoomState | null;
    /** A server `Error` (or refusal) that answered no pending request, e.g. a bad `to_player`. */
    error: SignalFishError;
    /** The socket opened (also after each reconnection attempt that reached the server). */
    open: undefined;
    /** The socket closed. */
    close: CloseEvent;
    /** A reconnection attempt is scheduled in `delayMs` ms (1-based `attempt`). */
    reconnecting: { attempt: number; delayMs: number };
    /**
     * The seat was restored; missed events have already been emitted, in order. `replay_truncated`
     * is also `true` when the client gave the connection up because its heartbeat went
     * unanswered: the server may still have had that socket open and written to it, and what went
     * there is not replayed (docs/spec/PROTOCOL.md §7.11.5, docs/spec/EXTENSIONS.md E3).
     */
    reconnected: ReconnectedData;
    /** A spectator's connection dropped and the client watches the room again. */
    respectated: ServerData<"SpectatorJoined">;
    /**
     * Automatic reconnection gave up (refused for good, out of attempts or time, or cancelled;
     * see {@linkcode ReconnectOptions} for which refusals are retried); the seat is lost on this
     * client (`room` became `null`). The payload is the definitive refusal, or the last failure:
     * a {@linkcode SignalFishConnectionError}, or a temporary refusal such as
     * `RATE_LIMIT_EXCEEDED` (the stored session is then kept for `resume()`).
     */
    reconnectFailed: SignalFishError | SignalFishConnectionError;
    /** The connection's state changed (`status` is already the new one). */
    status: { status: ClientStatus; previous: ClientStatus };
  };

/** Name of an event of {@linkcode ClientEvents}. */
export type ClientEventName = keyof ClientEvents;

/** `Authenticated` and `ProtocolInfo` together, as `authenticate()` resolves them. */
export interface AuthenticateResult {
  /** The `Authenticated` payload (docs/spec/PROTOCOL.md §6.1). */
  authenticated: ServerData<"Authenticated">;
  /** The `ProtocolInfo` payload (docs/spec/PROTOCOL.md §6.2). */
  protocolInfo: ServerData<"ProtocolInfo">;
  /** The binary game-data format now in effect (docs/spec/PROTOCOL.md §7.1.5). */
  gameDataFormat: GameDataEncoding;
}

/** What a pending request does with one message: not mine, consumed but wait on, or finished. */
type Outcome<T> = undefined | "more" | { value: T } | { error: Error };

interface Pending {
  handle(message: ServerMessage): Outcome<unknown>;
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface Seat {
  playerId: string;
  roomId: string;
  token: string | undefined;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_HEARTBEAT_MS = 10_000;
const DEFAULT_RECONNECT: Required<ReconnectOptions> = {
  maxAttempts: 10,
  maxElapsedMs: 120_000,
  initialDelayMs: 250,
  maxDelayMs: 10_000,
  jitter: "full",
  random: Math.random,
  whenIdle: false,
};
/**
 * Error codes of refusals that mean "not now" rather than "never" (docs/spec/PROTOCOL.md §7.11.4,
 * §7.13, §9): the per-IP reconnect bucket or an app's `Authenticate` limit is empty
 * (`RATE_LIMIT_EXCEEDED`), a multi-instance server briefly cannot reach its shared store or the
 * room's home (`SERVICE_UNAVAILABLE`), or the server failed unexpectedly (`INTERNAL_ERROR`). The
 * server still holds the seat, so automatic reconnection keeps the token and tries again.
 */
const TEMPORARY_REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "RATE_LIMIT_EXCEEDED",
  "SERVICE_UNAVAILABLE",
  "INTERNAL_ERROR",
]);

/**
 * How long a `RATE_LIMIT_EXCEEDED` refusal asks the client to wait, ms: the `<s>` of its reason
 * "… Try again in <s> seconds." (docs/spec/PROTOCOL.md §7.11.4, §7.13), else 0. The reason is
 * meant for humans, so this is a hint only: a reason worded otherwise just means no hint.
 */
function retryAfterMs(error: SignalFishError): number {
  if (error.code !== "RATE_LIMIT_EXCEEDED") return 0;
  const seconds = /\bTry again in (\d{1,6}) seconds?\b/i.exec(error.message)?.[1];
  return seconds === undefined ? 0 : Number(seconds) * 1000;
}

/**
 * Most `PlayerReady` toggles one `setReady()` call sends (docs/spec/PROTOCOL.md §7.4): the first,
 * and more only when a reset of the ready set crossed the previous one.
 */
const READY_TOGGLES = 3;

/** Close codes after which the seat cannot or must not be taken back (docs/spec/PROTOCOL.md §1.6). */
const NO_RECONNECT_CLOSE_CODES = new Set([1008, 4001]);
/** `WebSocket.readyState` values (not read from a global `WebSocket`, which may be absent). */
const OPEN = 1;
const CLOSED = 3;
/** Close code the client uses when it abandons a silent connection (application range). */
const DEAD_CONNECTION_CLOSE_CODE = 4000;
/**
 * How the server's refusal of a too-large `ProvideConnectionInfo` begins (`Error{INVALID_INPUT}`,
 * docs/spec/PROTOCOL.md §7.8 note); other `INVALID_INPUT` errors (a bad `to_player` of a game
 * data send) are not that request's answer.
 */
const CONNECTION_INFO_REFUSAL = "Connection info too large";

/** Close code of a connection lost without a close frame (RFC 6455 §7.1.5). */
const ABNORMAL_CLOSE_CODE = 1006;

/**
 * `code` as the app should see it: a code in the range a close frame can carry (1000–4999) as
 * it is, anything else as 1006. Deno reports an abrupt drop as 0.
 */
function closeCode(code: number): number {
  return Number.isInteger(code) && code >= 1000 && code <= 4999 ? code : ABNORMAL_CLOSE_CODE;
}

/** Turns an http(s)/ws(s) base URL into the WebSocket endpoint (`/v2/ws` when no path). */
export function endpointUrl(url: string | URL): string {
  const parsed = new URL(url);
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  if (parsed.pathname === "/" || parsed.pathname === "") parsed.pathname = "/v2/ws";
  return parsed.href;
}

function uuidFromBytes(bytes: Uint8Array): string {
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}

function failure(
  code: ErrorCode | undefined,
  message: string,
  type: SignalFishError["messageType"],
): { error: SignalFishError } {
  return { error: new SignalFishError(code ?? "INTERNAL_ERROR", message, type) };
}

/**
 * The message of the `Error` every unparsable client message gets (docs/spec/PROTOCOL.md §2.3),
 * an exact wire string.
 */
const PARSE_ERROR_MESSAGE = "Invalid client message";

/**
 * The parse error of docs/spec/PROTOCOL.md §2.3 (`Error{INVALID_INPUT}` "Invalid client message")
 * fails a `JoinRoom` or `JoinAsSpectator` request (e.g. a `max_players` above 255); other
 * `INVALID_INPUT` errors are no answer to it: they refuse a fire-and-forget send made before it
 * (a bad `to_player`, §7.6) and go to the `error` event.
 */
function parseError(message: ServerMessage): Outcome<never> {
  return message.type === "Error" && message.data.error_code === "INVALID_INPUT" &&
      message.data.message === PARSE_ERROR_MESSAGE
    ? failure("INVALID_INPUT", message.data.message, "Error")
    : undefined;
}

/** An `Error` message with one of `codes` fails the request; anything else is not its answer. */
function errorWith(message: ServerMessage, codes: readonly ErrorCode[]): Outcome<never> {
  if (message.type !== "Error") return undefined;
  const code = message.data.error_code;
  return code !== undefined && codes.includes(code)
    ? failure(code, message.data.message, "Error")
    : undefined;
}

/**
 * A connection to a Signal Fish server. Create it with {@linkcode SignalFishClient.connect}
 * (or `new` + {@linkcode SignalFishClient.open}); close it with `close()` or `await using`.
 */
export class SignalFishClient implements AsyncDisposable {
  /** The WebSocket endpoint, e.g. `ws://127.0.0.1:3536/v2/ws`. */
  readonly url: string;
  readonly #options: ClientOptions;
  readonly #reconnect: Required<ReconnectOptions> | undefined;
  readonly #listeners = new Map<string, Set<(payload: never) => void>>();
  #socket: WebSocket | undefined;
  #status: ClientStatus = "idle";
  #pending: Pending[] = [];
  #authData: AuthenticateData | undefined;
  #authResult: AuthenticateResult | undefined;
  #seat: Seat | undefined;
  #room: RoomState | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  /**
   * Whether the heartbeat may send on the current socket: once it authenticated, or once the
   * app sent it another message (see `#armHeartbeat`).
   */
  #heartbeatArmed = false;
  #lastInbound = 0;
  /**
   * The last connection was given up for an unanswered heartbeat: what the server wrote to it in
   * the silence may be lost, so the next `Reconnected` reports its replay truncated.
   */
  #wentSilent = false;
  #lastError: SignalFishError | undefined;
  #closing = false;
  #wakeReconnect: (() => void) | undefined;
  /** Code and reason of the last close of an open connection (normalized by `closeCode`). */
  #lastClose: { code: number; reason: string } | undefined;
  /** `open()` calls made while connecting or reconnecting, settled when open or closed. */
  #openWaiters: { resolve(): void; reject(error: Error): void }[] = [];
  /** Why the client is closing, for those waiters (the failed open, the given-up reconnection). */
  #endError: Error | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #closed: Promise<void> | undefined;
  #cancelled = false;
  /** The spectated room, to watch it again after a drop or a reload. */
  #spectating: SpectateData | undefined;
  readonly #store: SessionStore | undefined;
  readonly #sessionKey: string;
  /** `Ping`s sent and `Pong`s received on the current socket (see `#pingRequest`). */
  #pingsSent = 0;
  #pongsReceived = 0;
  /** Settles when the last `setReady()` call has (calls run one at a time). */
  #readyTurn: Promise<void> = Promise.resolve();
  /** The `authenticate()` under way, which later calls share. */
  #authenticating: Promise<AuthenticateResult> | undefined;
  /** The `leave()` under way, which later calls share. */
  #leaving: Promise<void> | undefined;
  /** The `resume()` under way, which later calls share. */
  #resuming: Promise<ResumeResult | undefined> | undefined;
  /** Requests under way that may put this client in a room (joins, `spectate()`, `resume()`). */
  readonly #entering = new Set<Promise<unknown>>();

  /** Creates an unconnected client for `url` (http(s) base URL or the ws(s) endpoint). */
  constructor(url: string | URL, options: ClientOptions = {}) {
    this.url = endpointUrl(url);
    this.#options = options;
    this.#reconnect = options.reconnect === false
      ? undefined
      : { ...DEFAULT_RECONNECT, ...(options.reconnect === true ? {} : options.reconnect) };
    this.#store = options.session === false ? undefined : options.session ?? defaultSessionStore();
    this.#sessionKey = options.sessionKey ?? `signal-fish:${this.url}`;
  }

  /**
   * Creates a client and opens its connection (see {@linkcode SignalFishClient.open}, including
   * the automatic authentication with `auth`); when that fails, the client is closed and the
   * promise rejects with {@linkcode SignalFishConnectionError} or, for a refused
   * authentication, {@linkcode SignalFishError}.
   */
  static async connect(url: string | URL, options?: ClientOptions): Promise<SignalFishClient> {
    const client = new SignalFishClient(url, options);
    await client.open();
    return client;
  }

  /** The connection's state. */
  get status(): ClientStatus {
    return this.#status;
  }

  /** The room as currently known, or `undefined` when not in one. A fresh copy each call. */
  get room(): RoomState | undefined {
    return this.#room && cloneRoom(this.#room);
  }

  /** This client's id in its room (`player_id` or `spectator_id`), when in one. */
  get selfId(): string | undefined {
    return this.#room?.selfId;
  }

  /** The current reconnection token (docs/spec/EXTENSIONS.md E1/E2), when the server issued one. */
  get reconnectionToken(): string | undefined {
    return this.#seat?.token;
  }

  /** The negotiated binary game-data format: `json` until `authenticate()` negotiates more. */
  get gameDataFormat(): GameDataEncoding {
    return this.#authResult?.gameDataFormat ?? "json";
  }

  /**
   * Subscribes `listener` to `event` and returns a function that unsubscribes it. Listeners run
   * synchronously in subscription order. An exception thrown by one is caught: it goes to the
   * `onListenerError` option (by default `console.error`), the other listeners still run and
   * the client carries on — it is never rethrown or turned into an uncaught error.
   */
  on<E extends ClientEventName>(
    event: E,
    listener: (payload: ClientEvents[E]) => void,
  ): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, set = new Set());
    set.add(listener as (payload: never) => void);
    return () => this.off(event, listener);
  }

  /** Subscribes `listener` to the next `event` only. Returns the unsubscribe function. */
  once<E extends ClientEventName>(
    event: E,
    listener: (payload: ClientEvents[E]) => void,
  ): () => void {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  /** Removes `listener` from `event`. */
  off<E extends ClientEventName>(event: E, listener: (payload: ClientEvents[E]) => void): void {
    this.#listeners.get(event)?.delete(listener as (payload: never) => void);
  }

  /**
   * Opens the WebSocket and, when `auth` or `presenceEvents` is set, authenticates on it (the
   * status stays `"connecting"` until then); resolves once the client is open, at once if it
   * already is. Rejects with {@linkcode SignalFishConnectionError} when the socket cannot be
   * opened (e.g. HTTP 429 before the upgrade, docs/spec/PROTOCOL.md §1.2) or not within the
   * request timeout, and with {@linkcode SignalFishError} or
   * {@linkcode SignalFishConnectionError} when that authentication is refused or unanswered
   * (docs/spec/PROTOCOL.md §7.1). Whenever it rejects the client is closed: its socket is closed,
   * no timer is left running and the status is `"closed"` (create a new client to try again).
   *
   * It never opens a second socket. Called while an earlier `open()` is still connecting, it
   * settles as that one does. Called while the client is reconnecting (docs/spec/PROTOCOL.md
   * §7.11) it does not disturb the reconnection: it resolves once the connection is open again
   * (the seat restored — or, after a definitive refusal, lost: see `reconnectFailed`) and
   * rejects with the `reconnectFailed` error when reconnection gives up and the client closes
   * (or with {@linkcode SignalFishConnectionError} when `close()` ends it). On a closed client
   * it rejects with {@linkcode SignalFishConnectionError}.
   */
  open(): Promise<void> {
    switch (this.#status) {
      case "open":
        return Promise.resolve();
      case "closed":
        return Promise.reject(
          new SignalFishConnectionError("Cannot open a closed client; create a new one"),
        );
      case "connecting":
      case "reconnecting":
        return new Promise((resolve, reject) => this.#openWaiters.push({ resolve, reject }));
      case "idle":
        return this.#openFirst();
    }
  }

  /** `open()` from `"idle"`: the first socket, and automatic authentication on it. */
  async #openFirst(): Promise<void> {
    this.#closing = false;
    this.#setStatus("connecting");
    try {
      await this.#openSocket();
    } catch (error) {
      this.#endError = error as Error;
      this.#setStatus("closed");
      throw error;
    }
    const auto = this.#autoAuth;
    if (auto) {
      try {
        await this.#authenticateOnce(auto);
        this.#authData = auto;
      } catch (error) {
        this.#endError = error as Error;
        await this.close(); // Nobody else could: connect() never handed the client out.
        throw error;
      }
    }
    this.#setStatus("open");
  }

  /** The `Authenticate` sent after each open, from `auth` and `presenceEvents`, if any. */
  get #autoAuth(): AuthenticateData | undefined {
    const { auth, presenceEvents } = this.#options;
    if (!auth && !presenceEvents) return undefined;
    return this.#withFeatures(auth ?? { app_id: "signal-fish-client" });
  }

  /** `data` with `"presence-events"` added to its features when `presenceEvents` asks. */
  #withFeatures(data: AuthenticateData): AuthenticateData {
    if (!this.#options.presenceEvents) return data;
    const features = data.features ?? [];
    return features.includes("presence-events")
      ? data
      : { ...data, features: [...features, "presence-events"] };
  }

  /**
   * The features the server accepted in `Authenticated.features` (docs/spec/EXTENSIONS.md E10), e.g.
   * `["presence-events"]`; empty before authentication or when the server has none.
   */
  get features(): readonly string[] {
    return this.#authResult?.authenticated.features ?? [];
  }

  /**
   * Sends `Authenticate` (docs/spec/PROTOCOL.md §5.1, §7.1) and resolves with `Authenticated`,
   * `ProtocolInfo` and the negotiated game-data format. A second call resolves with the first
   * result without sending (the server ignores repeats), also while the first is under way (it
   * shares that call's promise). Rejects with {@linkcode SignalFishError}
   * for an `AuthenticationError` (`INVALID_APP_ID`, `UNAUTHORIZED`, `RATE_LIMIT_EXCEEDED`,
   * `SDK_VERSION_UNSUPPORTED`). The data is remembered and re-sent when reconnecting.
   */
  authenticate(data: AuthenticateData): Promise<AuthenticateResult> {
    if (this.#authResult) return Promise.resolve(this.#authResult);
    this.#authenticating ??= this.#authenticateNow(data).finally(() => {
      this.#authenticating = undefined;
    });
    return this.#authenticating;
  }

  /** One `authenticate()` that sends. */
  async #authenticateNow(data: AuthenticateData): Promise<AuthenticateResult> {
    this.#requireOpen();
    data = this.#withFeatures(data);
    const result = await this.#authenticateOnce(data);
    this.#authData = data;
    return result;
  }

  /**
   * Creates a room with a generated code (`JoinRoom` without `room_code`, docs/spec/PROTOCOL.md §7.2) and
   * resolves with the `RoomJoined` snapshot. Rejects with {@linkcode SignalFishError}
   * (`RoomJoinFailed`: `INVALID_GAME_NAME`, `INVALID_INPUT`, `ALREADY_IN_ROOM`,
   * `RATE_LIMIT_EXCEEDED`, `MAX_ROOMS_PER_GAME_EXCEEDED`, …).
   */
  createRoom(data: Omit<JoinRoomData, "room_code">): Promise<ServerData<"RoomJoined">> {
    return this.joinRoom({ ...data, room_code: undefined });
  }

  /**
   * Joins an existing room only (`JoinRoom.create: "never"`, docs/spec/EXTENSIONS.md E9): a mistyped code
   * rejects with {@linkcode SignalFishError} `ROOM_NOT_FOUND` instead of creating a room. Other
   * refusals as {@linkcode joinRoom}. Needs a server advertising the `join-modes` capability;
   * older servers ignore the field and create the room (check first with `lookupRoom()`).
   */
  join(
    data: Omit<JoinRoomData, "create" | "room_code"> & { room_code: string },
  ): Promise<ServerData<"RoomJoined">> {
    return this.joinRoom({ ...data, create: "never" });
  }

  /**
   * Creates a new room (docs/spec/EXTENSIONS.md E9): with `room_code`, that code (`create: "always"`;
   * rejects with `ROOM_CREATION_FAILED` "Room code already in use" when it exists), else a
   * generated code (as {@linkcode createRoom}). `authority_handover: true` makes authority pass
   * to the longest-seated player when its holder's seat is released (E11).
   */
  create(data: Omit<JoinRoomData, "create">): Promise<ServerData<"RoomJoined">> {
    if (data.room_code === undefined) return this.createRoom(data);
    return this.joinRoom({ ...data, create: "always" });
  }

  /**
   * Joins the room with `room_code`, creating it when it does not exist (v2 join-or-create,
   * docs/spec/PROTOCOL.md §7.2.2; no `create` field is sent, so any v2 server behaves the same).
   */
  joinOrCreate(
    data: Omit<JoinRoomData, "create" | "room_code"> & { room_code: string },
  ): Promise<ServerData<"RoomJoined">> {
    return this.joinRoom({ ...data, create: undefined });
  }

  /**
   * Looks a room up over HTTP (`GET /v2/rooms/{game_name}/{room_code}`, docs/spec/EXTENSIONS.md E5) on
   * this client's server; resolves `null` when there is no such room (404). Takes one
   * join-attempt token from the caller's IP, like a join. Rejects with
   * {@linkcode SignalFishError} `RATE_LIMIT_EXCEEDED` (429) or `SERVICE_UNAVAILABLE` (503), and
   * with {@linkcode SignalFishConnectionError} when the server cannot be reached.
   */
  lookupRoom(gameName: string, roomCode: string): Promise<RoomSummary | null> {
    // With app auth rooms belong to an app: look up in the one this client authenticates as.
    const auth = this.#authData ?? this.#options.auth;
    const app = auth ? { appId: auth.app_id, appSecret: auth.app_secret ?? undefined } : undefined;
    return lookupRoom(this.url, gameName, roomCode, app);
  }

  /**
   * Joins the room with `data.room_code` — or creates it, as the server does for unknown codes
   * (docs/spec/PROTOCOL.md §7.2.2) — and resolves with the `RoomJoined` snapshot. Rejects with
   * {@linkcode SignalFishError} (`ROOM_FULL`, `ROOM_CREATION_FAILED` for a taken name,
   * `INVALID_ROOM_CODE`, …).
   */
  joinRoom(data: JoinRoomData): Promise<ServerData<"RoomJoined">> {
    const message: ClientMessage = { type: "JoinRoom", data: withoutUndefined(data) };
    return this.#entered(this.#request(message, (reply) => {
      if (reply.type === "RoomJoined") return { value: reply.data };
      if (reply.type === "RoomJoinFailed") {
        return failure(reply.data.error_code, reply.data.reason, "RoomJoinFailed");
      }
      return parseError(reply);
    }));
  }

  /**
   * Watches a room as a spectator (`JoinAsSpectator`, docs/spec/PROTOCOL.md §7.9) and resolves with
   * `SpectatorJoined`. Rejects with {@linkcode SignalFishError} (`SpectatorJoinFailed`:
   * `ROOM_NOT_FOUND`, `ALREADY_IN_ROOM`, `TOO_MANY_SPECTATORS`, …).
   */
  spectate(data: SpectateData): Promise<ServerData<"SpectatorJoined">> {
    return this.#entered(this.#request({ type: "JoinAsSpectator", data }, (reply) => {
      if (reply.type === "SpectatorJoined") {
        this.#spectating = { ...data, room_code: reply.data.room_code };
        this.#saveSession();
        return { value: reply.data };
      }
      if (reply.type === "SpectatorJoinFailed") {
        return failure(reply.data.error_code, reply.data.reason, "SpectatorJoinFailed");
      }
      return parseError(reply);
    }));
  }

  /**
   * Leaves the current room: `LeaveRoom` for a player (resolves on `RoomLeft`,
   * docs/spec/PROTOCOL.md §7.3.1), `LeaveSpectator` for a spectator (resolves on `SpectatorLeft`,
   * §7.9); resolves at once when not in a room. The reconnection token is forgotten.
   *
   * - A join, `spectate()` or `resume()` still under way is waited for first, so the client ends
   *   out of the room it was entering.
   * - Unlike other requests it does not reject while the client is reconnecting (§7.11), nor
   *   when the connection drops while it waits for the answer: it waits for the reconnection to
   *   end, then leaves the restored seat, or resolves if reconnection gave the seat up.
   * - A call while another is under way returns the same promise (a second `LeaveRoom` would get
   *   no answer, a second `LeaveSpectator` `NOT_A_SPECTATOR`).
   * - When the room is deleted just as a spectator leaves (`SpectatorLeft` `room_closed` before
   *   the server reads the `LeaveSpectator`, §7.12), it resolves on the `Error`
   *   `NOT_A_SPECTATOR` that then answers the `LeaveSpectator`, and no `error` event is emitted.
   *
   * Rejects with {@linkcode SignalFishConnectionError} when the answer does not come in time, or
   * the connection closes for good (no reconnection follows) while the answer is awaited.
   */
  leave(): Promise<void> {
    this.#leaving ??= this.#leaveNow().finally(() => {
      this.#leaving = undefined;
    });
    return this.#leaving;
  }

  /**
   * One `leave()`: after the joins under way have settled, leaves the room they led to; a
   * reconnection under way (or one started by a drop while leaving) is waited out first, so the
   * seat it restores is left too.
   */
  async #leaveNow(): Promise<void> {
    if (this.#entering.size > 0) await Promise.allSettled([...this.#entering]);
    for (;;) {
      // open() while reconnecting settles when the reconnection ends, the seat restored or lost.
      // (An idle reconnection, with no room to leave, is not waited for.)
      if (this.#status === "reconnecting" && this.#room) await this.open().catch(() => {});
      try {
        return await this.#leaveOnce();
      } catch (error) {
        if (!(error instanceof SignalFishConnectionError) || this.#status !== "reconnecting") {
          throw error;
        }
      }
    }
  }

  /** Sends the `LeaveRoom` or `LeaveSpectator` the current room needs, if any. */
  async #leaveOnce(): Promise<void> {
    const role = this.#room?.role;
    if (role === "player") {
      await this.#request({ type: "LeaveRoom" }, (reply) => {
        return reply.type === "RoomLeft" ? { value: undefined } : undefined;
      });
    } else if (role === "spectator") {
      let roomClosed = false;
      await this.#request({ type: "LeaveSpectator" }, (reply) => {
        if (reply.type === "SpectatorLeft") {
          if (reply.data.reason !== "room_closed") return { value: undefined };
          // The room was deleted before the server read our LeaveSpectator (docs/spec/PROTOCOL.md
          // §7.12): we are out already, and its answer, NOT_A_SPECTATOR, is still to come.
          roomClosed = true;
          return "more";
        }
        if (roomClosed && reply.type === "Error" && reply.data.error_code === "NOT_A_SPECTATOR") {
          return { value: undefined };
        }
        return errorWith(reply, ["NOT_A_SPECTATOR"]);
      });
    }
  }

  /**
   * Sets this player's readiness (docs/spec/PROTOCOL.md §7.4) and resolves with the lobby once the
   * server has settled it, in `LobbyStateChanged`'s shape: `lobby_state`, `ready_players` (with
   * this player in it exactly when `ready`) and `all_ready`.
   *
   * `PlayerReady` toggles on the wire, so nothing is sent when the known readiness already is
   * `ready`. Otherwise the client sends `PlayerReady` and then `Ping`, and judges the room as it
   * stands when that `Ping`'s `Pong` arrives (the server answers in order, §1.5, so the toggle's
   * `LobbyStateChanged` and everything before it have been applied). A seat released from a full
   * room empties the ready set (§7.4); such a reset crossing the toggle can leave the readiness
   * the other way round (reset, then the toggle readies a player who asked not to be), and then
   * the client toggles again, sending at most three `PlayerReady` per call. Calls run one at a
   * time, in call order.
   *
   * Rejects with {@linkcode SignalFishError} `NOT_IN_ROOM`, `SPECTATOR_NOT_ALLOWED` or
   * `RATE_LIMIT_EXCEEDED` (this connection's lobby changes, §7.4 note; each toggle takes a
   * token), with {@linkcode SignalFishError} `INVALID_ROOM_STATE` (`messageType`
   * `"LobbyStateChanged"`) when the readiness is still not `ready` after the third toggle, and
   * with {@linkcode SignalFishConnectionError} when the connection is not open, closes or does
   * not answer in time. After a rejection the readiness may be either way: `room` tells which.
   */
  setReady(ready = true): Promise<ServerData<"LobbyStateChanged">> {
    const run = () => this.#setReadyNow(ready);
    const result = this.#readyTurn.then(run, run);
    this.#readyTurn = result.then(() => {}, () => {});
    return result;
  }

  /** One `setReady()` call, run when no other is under way. */
  async #setReadyNow(ready: boolean): Promise<ServerData<"LobbyStateChanged">> {
    for (let toggles = 0;; toggles++) {
      const room = this.#room;
      if (room?.role === "player" && room.readyPlayers.includes(room.selfId) === ready) {
        return {
          lobby_state: room.lobbyState,
          ready_players: [...room.readyPlayers],
          all_ready: room.lobbyState === "finalized",
        };
      }
      if (toggles === READY_TOGGLES) {
        throw new SignalFishError(
          "INVALID_ROOM_STATE",
          `Cannot set readiness to ${ready}: still ${!ready} after ${toggles} PlayerReady toggles`,
          "LobbyStateChanged",
        );
      }
      await this.#toggleReady();
    }
  }

  /**
   * Sends `PlayerReady` and then `Ping`; resolves on that `Ping`'s `Pong`, by when everything
   * the toggle caused on this connection has arrived, and rejects on the toggle's refusal.
   */
  #toggleReady(): Promise<void> {
    try {
      this.#send({ type: "PlayerReady" });
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#pingRequest((reply) => {
      return errorWith(reply, ["NOT_IN_ROOM", "SPECTATOR_NOT_ALLOWED", "RATE_LIMIT_EXCEEDED"]);
    });
  }

  /**
   * Claims (`true`) or releases (`false`) room authority (docs/spec/PROTOCOL.md §7.5) and resolves with
   * the granting `AuthorityResponse`. Rejects with {@linkcode SignalFishError}:
   * `AUTHORITY_CONFLICT`, `AUTHORITY_DENIED`, `AUTHORITY_NOT_SUPPORTED`, `NOT_IN_ROOM`,
   * `SPECTATOR_NOT_ALLOWED`.
   */
  requestAuthority(become = true): Promise<ServerData<"AuthorityResponse">> {
    const message: ClientMessage = {
      type: "AuthorityRequest",
      data: { become_authority: become },
    };
    return this.#request(message, (reply) => {
      if (reply.type === "AuthorityResponse") {
        return reply.data.granted
          ? { value: reply.data }
          : failure(reply.data.error_code, reply.data.reason ?? "Denied", "AuthorityResponse");
      }
      return errorWith(reply, ["SPECTATOR_NOT_ALLOWED"]);
    });
  }

  /**
   * Stores this seat's connection info (docs/spec/PROTOCOL.md §7.8); it reaches others in `GameStarting`.
   * The server does not acknowledge it, so the client follows it with a `Ping` and resolves on
   * the `Pong`; rejects with {@linkcode SignalFishError} `NOT_IN_ROOM`,
   * `SPECTATOR_NOT_ALLOWED` or `INVALID_INPUT` (longer than the server's
   * `protocol.max_connection_info_bytes`, docs/spec/PROTOCOL.md §7.8 note; the stored value stays).
   */
  provideConnectionInfo(connectionInfo: ConnectionInfo): Promise<void> {
    try {
      this.#send({ type: "ProvideConnectionInfo", data: { connection_info: connectionInfo } });
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#pingRequest((reply) => {
      return errorWith(reply, ["NOT_IN_ROOM", "SPECTATOR_NOT_ALLOWED"]) ??
        (reply.type === "Error" && reply.data.error_code === "INVALID_INPUT" &&
            reply.data.message.startsWith(CONNECTION_INFO_REFUSAL)
          ? failure("INVALID_INPUT", reply.data.message, "Error")
          : undefined);
    });
  }

  /**
   * Sends game data to every other member of the room, or with `to` only to that player
   * (`GameData.to_player`, docs/spec/EXTENSIONS.md E4). With `binary: true` the value is encoded as
   * MessagePack and sent as a binary frame (docs/spec/PROTOCOL.md §7.7; needs a connection that
   * negotiated `message_pack`, and has no targeted form). Fire and forget: refusals (bad
   * target, spectator) arrive as `error` events.
   *
   * @throws {SignalFishConnectionError} when the connection is not open.
   * @throws {TypeError} for `binary` on a JSON connection or combined with `to`.
   */
  sendGameData(data: unknown, options: { to?: string; binary?: boolean } = {}): void {
    if (options.binary) {
      if (options.to !== undefined) {
        throw new TypeError("Cannot send binary game data to one player: there is no such form");
      }
      this.sendBinary(encodeMessagePack(data));
      return;
    }
    const payload: { data: unknown; to_player?: string } = { data };
    if (options.to !== undefined) payload.to_player = options.to;
    this.#send({ type: "GameData", data: payload });
  }

  /** Sends JSON game data to one player of the room (`to_player`, docs/spec/EXTENSIONS.md E4). */
  sendTo(playerId: string, data: unknown): void {
    this.sendGameData(data, { to: playerId });
  }

  /**
   * Sends `payload` (the app's own MessagePack encoding of a game value) as one binary frame
   * (docs/spec/PROTOCOL.md §7.7).
   *
   * @throws {SignalFishConnectionError} when the connection is not open (also while
   *   reconnecting, when the format is negotiated again).
   * @throws {TypeError} on an open connection that did not negotiate `message_pack`.
   */
  sendBinary(payload: Uint8Array): void {
    // First: while reconnecting the format is being negotiated again on the new socket, and a
    // send then fails as every send does (docs/spec/PROTOCOL.md §7.1.5, §7.11).
    this.#requireOpen();
    if (this.gameDataFormat !== "message_pack") {
      throw new TypeError(
        'Cannot send binary game data: authenticate with game_data_format "message_pack" first',
      );
    }
    // A view over a plain ArrayBuffer as far as the DOM typings care (the bytes are only read).
    this.#socket!.send(payload as Uint8Array<ArrayBuffer>);
    this.#armHeartbeat();
  }

  /**
   * Takes back the seat (or the spectator place) kept in the session store after a page reload
   * or a restart of the app: a player sends `Reconnect` with the stored token (docs/spec/PROTOCOL.md
   * §7.11.4; missed events are emitted in order as on an automatic reconnection), a spectator
   * watches the same room again. Resolves `undefined` when nothing is stored. On a refusal
   * the promise rejects with {@linkcode SignalFishError} and the connection stays open so the
   * app can join afresh; a definitive refusal (`RECONNECTION_EXPIRED`,
   * `RECONNECTION_TOKEN_INVALID`, `RECONNECTION_FAILED`, `ROOM_NOT_FOUND`, …) also forgets the
   * stored session, a temporary one (`RATE_LIMIT_EXCEEDED`, `SERVICE_UNAVAILABLE`,
   * `INTERNAL_ERROR`, see {@linkcode ReconnectOptions}) keeps it, so `resume()` can be called
   * again later. Resolves `undefined` without sending anything while the client is already in
   * a room. A call while another is under way returns the same promise (a second `Reconnect`
   * would be refused `ALREADY_IN_ROOM` and forget the seat just taken back).
   */
  resume(): Promise<ResumeResult | undefined> {
    this.#resuming ??= this.#entered(this.#resumeNow()).finally(() => {
      this.#resuming = undefined;
    });
    return this.#resuming;
  }

  /** One `resume()`. */
  async #resumeNow(): Promise<ResumeResult | undefined> {
    const stored = await this.storedSession();
    if (!stored || this.#room !== undefined) return undefined; // Nothing stored, or seated.
    this.#requireOpen();
    try {
      if (stored.role === "spectator") {
        const { room_code, game_name, spectator_name } = stored;
        return {
          role: "spectator",
          spectating: await this.spectate({
            room_code,
            game_name,
            spectator_name,
          }),
        };
      }
      const data = await this.#sendReconnect({
        playerId: stored.player_id,
        roomId: stored.room_id,
        token: stored.token,
      }, false);
      this.#restore(data);
      return { role: "player", reconnected: data };
    } catch (error) {
      // A room entered meanwhile (a join that crossed this call) has stored its own seat: keep it.
      if (
        error instanceof SignalFishError && !TEMPORARY_REFUSALS.has(error.code) &&
        this.#room === undefined
      ) {
        await this.#clearSession();
      }
      throw error;
    }
  }

  /**
   * Registers `request` as one that may put this client in a room, until it settles, so that
   * `leave()` waits for it.
   */
  #entered<T>(request: Promise<T>): Promise<T> {
    this.#entering.add(request);
    const done = () => void this.#entering.delete(request);
    request.then(done, done);
    return request;
  }

  /** What the session store holds for this client (see {@linkcode resume}), if anything. */
  async storedSession(): Promise<StoredSession | undefined> {
    const store = this.#store;
    if (!store) return undefined;
    try {
      const text = await store.getItem(this.#sessionKey);
      const parsed = text ? JSON.parse(text) : undefined;
      return parsed?.v === 1 && (parsed.role === "player" || parsed.role === "spectator")
        ? parsed
        : undefined;
    } catch {
      return undefined; // Unreadable or foreign: as if nothing were stored.
    }
  }

  /**
   * Stops automatic reconnection now: the seat is given up on this client (the server still
   * holds it for its window, so the stored session can `resume()` it later), `reconnectFailed`
   * is emitted with {@linkcode SignalFishConnectionError} and the client is closed. No effect
   * unless reconnecting.
   */
  cancelReconnect(): void {
    if (this.#status !== "reconnecting") return;
    this.#cancelled = true;
    clearTimeout(this.#reconnectTimer);
    this.#wakeReconnect?.();
    const socket = this.#socket;
    if (socket && socket.readyState !== CLOSED) socket.close(1000);
  }

  /** Sends `Ping` and resolves with the round-trip time to its `Pong`, ms (docs/spec/PROTOCOL.md §7.10). */
  async ping(): Promise<number> {
    const started = performance.now();
    await this.#pingRequest();
    return performance.now() - started;
  }

  /**
   * Closes the connection on purpose (close code 1000; the server treats a player's close as an
   * unexpected disconnect unless it left first, docs/spec/PROTOCOL.md §7.3.2) and stops reconnecting.
   * Resolves once the socket is closed. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing = true;
      clearTimeout(this.#reconnectTimer);
      this.#wakeReconnect?.();
      const socket = this.#socket;
      if (socket && socket.readyState !== CLOSED) {
        const done = new Promise<void>((resolve) => {
          socket.addEventListener("close", () => resolve(), { once: true });
        });
        socket.close(1000);
        await done;
      } else {
        this.#finishClose(1000, "");
      }
    })();
    return this.#closed;
  }

  /** Closes the connection (see `close()`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // -------------------------------------------------------------------------------------------
  // Socket plumbing

  #openSocket(): Promise<void> {
    const Socket = this.#options.WebSocket ?? globalThis.WebSocket;
    const socket = new Socket(this.url);
    socket.binaryType = "arraybuffer";
    this.#socket = socket;
    this.#pingsSent = 0;
    this.#pongsReceived = 0;
    this.#heartbeatArmed = false;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.onclose = null;
        socket.close();
        reject(new SignalFishConnectionError(`Cannot connect to ${this.url}: timed out`));
      }, this.#timeoutMs);
      socket.onopen = () => {
        clearTimeout(timer);
        this.#lastInbound = Date.now();
        this.#lastError = undefined;
        socket.onclose = (event) => this.#onClose(socket, closeCode(event.code), event.reason);
        this.#startHeartbeat();
        this.#emit("open", undefined);
        resolve();
      };
      socket.onclose = (event) => {
        clearTimeout(timer);
        reject(
          new SignalFishConnectionError(`Cannot connect to ${this.url}`, closeCode(event.code)),
        );
      };
      socket.onmessage = (event) => this.#onFrame(socket, event.data);
    });
  }

  get #timeoutMs(): number {
    return this.#options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  #requireOpen(): void {
    if (this.#status !== "open" || this.#socket?.readyState !== OPEN) {
      const state = this.#status === "open" ? "closing" : this.#status;
      throw new SignalFishConnectionError(`Cannot send: the connection is ${state}`);
    }
  }

  #send(message: ClientMessage): void {
    this.#requireOpen();
    this.#socket!.send(JSON.stringify(message));
    if (message.type === "Ping") this.#pingsSent++;
    if (message.type !== "Authenticate") this.#armHeartbeat();
  }

  /**
   * Lets the heartbeat send on the current socket from now on. Called when authentication
   * succeeded on it, or when the app sent it a message other than `Authenticate`: until then the
   * client cannot know whether the server requires authentication, and there a `Ping` before
   * `Authenticate` closes the connection (docs/spec/PROTOCOL.md §7.1.1), so the heartbeat must
   * never be the first message. The silence count starts here too: before it nothing the
   * client sent asks for an answer.
   */
  #armHeartbeat(): void {
    if (this.#heartbeatArmed) return;
    this.#heartbeatArmed = true;
    this.#lastInbound = Date.now();
  }

  /**
   * Sends `message` (unless `null`) and waits for the replies `handle` accepts. Never throws:
   * a connection that is not open (checked unless `internal`) rejects the returned promise.
   */
  #request<T>(
    message: ClientMessage | null,
    handle: (reply: ServerMessage) => Outcome<T>,
    internal = false,
  ): Promise<T> {
    if (!internal) {
      try {
        this.#requireOpen();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    let pending!: Pending;
    // Not Promise.withResolvers: it is missing from Node 20 and older browsers.
    const promise = new Promise<T>((resolve, reject) => {
      pending = {
        handle,
        resolve: resolve as (value: unknown) => void,
        reject,
        timer: setTimeout(() => {
          this.#pending = this.#pending.filter((other) => other !== pending);
          reject(new SignalFishConnectionError(`No answer within ${this.#timeoutMs} ms`));
        }, this.#timeoutMs),
      };
    });
    this.#pending.push(pending);
    if (message) {
      try {
        this.#socket!.send(JSON.stringify(message));
        if (message.type === "Ping") this.#pingsSent++;
        if (message.type !== "Authenticate") this.#armHeartbeat();
      } catch (error) {
        this.#settle(pending, { error: error as Error });
      }
    }
    return promise;
  }

  /**
   * Sends `Ping` and resolves on its own `Pong`: the server answers every `Ping` with one `Pong`
   * in order (docs/spec/PROTOCOL.md §1.5, §7.10), so the n-th `Pong` on a socket answers its n-th
   * `Ping`, whichever request sent the others (a `Pong` whose request already settled, on an
   * error or a timeout, answers nobody). `handle` may settle the request on other replies first.
   */
  #pingRequest(
    handle: (reply: ServerMessage) => Outcome<void> = () => undefined,
    internal = false,
  ): Promise<void> {
    let mine = 0; // Set below: #request sends at once (or rejects without sending).
    const promise = this.#request<void>({ type: "Ping" }, (reply) => {
      if (reply.type !== "Pong") return handle(reply);
      return this.#pongsReceived === mine ? { value: undefined } : undefined;
    }, internal);
    mine = this.#pingsSent;
    return promise;
  }

  #settle(pending: Pending, outcome: { value: unknown } | { error: Error }): void {
    clearTimeout(pending.timer);
    this.#pending = this.#pending.filter((other) => other !== pending);
    if ("error" in outcome) pending.reject(outcome.error);
    else pending.resolve(outcome.value);
  }

  /** Offers `message` to the pending requests in order; true when one consumed it. */
  #offer(message: ServerMessage): boolean {
    for (const pending of this.#pending) {
      const outcome = pending.handle(message);
      if (outcome === undefined) continue;
      if (outcome !== "more") this.#settle(pending, outcome);
      return true;
    }
    return false;
  }

  #failPending(error: Error): void {
    const pending = this.#pending;
    this.#pending = [];
    for (const entry of pending) {
      clearTimeout(entry.timer);
      entry.reject(error);
    }
  }

  #onFrame(socket: WebSocket, frame: unknown): void {
    if (socket !== this.#socket) return;
    this.#lastInbound = Date.now();
    if (typeof frame === "string") {
      let message: ServerMessage;
      try {
        message = JSON.parse(frame);
      } catch {
        return; // The server sends only valid JSON (docs/spec/PROTOCOL.md §1.3); ignore anything else.
      }
      this.#dispatch(message, false);
    } else if (frame instanceof ArrayBuffer) {
      this.#onBinary(new Uint8Array(frame));
    }
  }

  #onBinary(bytes: Uint8Array): void {
    let envelope: GameDataBinary;
    try {
      const raw = decodeMessagePack(bytes) as Record<string, unknown>;
      const from = raw?.from_player;
      if (!(from instanceof Uint8Array) || from.length !== 16) return;
      if (!(raw.payload instanceof Uint8Array)) return;
      envelope = {
        from_player: uuidFromBytes(from),
        encoding: raw.encoding as GameDataEncoding,
        payload: raw.payload,
      };
    } catch {
      return; // Not an envelope of docs/spec/PROTOCOL.md §7.7.
    }
    let data: unknown;
    try {
      data = decodeMessagePack(envelope.payload);
    } catch {
      data = undefined;
    }
    this.#emit("GameDataBinary", envelope);
    this.#emit("gameData", {
      from_player: envelope.from_player,
      data,
      binary: true,
      payload: envelope.payload,
      replayed: false,
    });
  }

  /** Applies one server message: pending requests, room state, then events. */
  #dispatch(message: ServerMessage, replayed: boolean): void {
    if (!replayed && message.type === "Pong") this.#pongsReceived++;
    const consumed = replayed ? false : this.#offer(message);
    this.#track(message, replayed);
    this.#emit("message", message);
    this.#emit(message.type, (message as { data?: unknown }).data as never);
    if (message.type === "GameData") {
      this.#emit("gameData", { ...message.data, binary: false, replayed });
    }
    const refusal = unclaimedRefusal(message);
    if (refusal && !consumed) {
      this.#lastError = refusal;
      this.#emit("error", refusal);
    }
  }

  #emit<E extends ClientEventName>(event: E, payload: ClientEvents[E]): void {
    const listeners = this.#listeners.get(event);
    if (!listeners) return;
    for (const listener of [...listeners]) {
      try {
        (listener as (payload: ClientEvents[E]) => void)(payload);
      } catch (error) {
        this.#listenerFailed(error, event);
      }
    }
  }

  /**
   * Reports a listener's exception without ever throwing. Not `reportError`: in Deno (and
   * wherever it dispatches an unhandled `error` event) that ends the process.
   */
  #listenerFailed(error: unknown, event: ClientEventName): void {
    const hook = this.#options.onListenerError;
    if (hook) {
      try {
        hook(error, event);
        return;
      } catch (hookError) {
        console.error(`SignalFishClient: onListenerError threw for "${event}":`, hookError);
      }
    }
    console.error(`SignalFishClient: a "${event}" listener threw:`, error);
  }

  #startHeartbeat(): void {
    clearInterval(this.#heartbeat);
    const interval = this.#options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS;
    if (interval <= 0) return;
    this.#heartbeat = setInterval(() => {
      const socket = this.#socket;
      if (!socket || socket.readyState !== OPEN || !this.#heartbeatArmed) return;
      if (Date.now() - this.#lastInbound > 3 * interval) {
        // Nothing arrived for 3 intervals, not even a Pong: treat the connection as lost
        // instead of waiting for TCP to notice.
        this.#wentSilent = true;
        this.#onClose(socket, DEAD_CONNECTION_CLOSE_CODE, "No response to heartbeat");
        socket.onclose = null;
        socket.close(DEAD_CONNECTION_CLOSE_CODE);
        return;
      }
      this.#pingRequest(undefined, true).catch(() => {});
    }, interval);
  }

  #onClose(socket: WebSocket, code: number, reason: string): void {
    if (socket !== this.#socket) return;
    this.#lastClose = { code, reason };
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    this.#failPending(
      new SignalFishConnectionError(
        `Connection closed (${code}${reason ? ` ${reason}` : ""})`,
        code,
        {
          cause: this.#lastError,
        },
      ),
    );
    if (this.#status === "reconnecting") return; // The reconnection loop handles it.
    const options = this.#reconnect;
    const worthIt = this.#seat?.token !== undefined || this.#spectating !== undefined ||
      options?.whenIdle === true;
    // Not while open() is still connecting: it rejects and closes the client instead.
    const canReconnect = !this.#closing && this.#status !== "connecting" &&
      options !== undefined && worthIt && !NO_RECONNECT_CLOSE_CODES.has(code);
    if (!canReconnect) {
      this.#finishClose(code, reason);
      return;
    }
    this.#cancelled = false;
    this.#setStatus("reconnecting");
    this.#emit("close", { code, reason, reconnecting: true });
    void this.#reconnectLoop();
  }

  #finishClose(code: number, reason: string): void {
    const wasClosed = this.#status === "closed";
    this.#setStatus("closed");
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    this.#seat = undefined;
    this.#spectating = undefined;
    this.#setRoom(undefined);
    if (!wasClosed) this.#emit("close", { code, reason, reconnecting: false });
  }

  #setStatus(status: ClientStatus): void {
    const previous = this.#status;
    if (previous === status) return;
    this.#status = status;
    if (status === "open" || status === "closed") {
      const waiters = this.#openWaiters.splice(0);
      const error = this.#endError ?? new SignalFishConnectionError("The client was closed");
      for (const waiter of waiters) {
        if (status === "open") waiter.resolve();
        else waiter.reject(error);
      }
    }
    this.#emit("status", { status, previous });
  }

  // -------------------------------------------------------------------------------------------
  // Authentication and reconnection

  async #authenticateOnce(data: AuthenticateData): Promise<AuthenticateResult> {
    const message: ClientMessage = { type: "Authenticate", data: withoutUndefined(data) };
    let authenticated: ServerData<"Authenticated"> | undefined;
    const protocolInfo = await this.#request<ServerData<"ProtocolInfo">>(message, (reply) => {
      switch (reply.type) {
        case "AuthenticationError":
          return failure(reply.data.error_code, reply.data.error, "AuthenticationError");
        case "Authenticated":
          authenticated = reply.data;
          return "more";
        case "ProtocolInfo":
          return authenticated ? { value: reply.data } : undefined;
        case "Error":
          // Sent before Authenticated when the requested format is unsupported (§7.1.5).
          if (reply.data.error_code === "UNSUPPORTED_GAME_DATA_FORMAT") return "more";
          return errorWith(reply, ["AUTHENTICATION_REQUIRED"]);
      }
    }, true);
    const wanted = data.game_data_format ?? "json";
    const gameDataFormat = wanted !== "json" && protocolInfo.game_data_formats.includes(wanted)
      ? wanted
      : "json";
    this.#authResult = { authenticated: authenticated!, protocolInfo, gameDataFormat };
    this.#armHeartbeat();
    return this.#authResult;
  }

  /** Sends `Reconnect` for `seat` and resolves with `Reconnected` (not yet applied). */
  #sendReconnect(seat: Seat, internal: boolean): Promise<ReconnectedData> {
    const message: ClientMessage = {
      type: "Reconnect",
      data: { player_id: seat.playerId, room_id: seat.roomId, auth_token: seat.token! },
    };
    return this.#request<ReconnectedData>(message, (reply) => {
      if (reply.type === "Reconnected") return { value: reply.data };
      if (reply.type === "ReconnectionFailed") {
        return failure(reply.data.error_code, reply.data.reason, "ReconnectionFailed");
      }
      return errorWith(reply, ["AUTHENTICATION_REQUIRED"]);
    }, internal);
  }

  #backoffMs(attempt: number): number {
    const options = this.#reconnect!;
    const exponential = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** (attempt - 1));
    const floor = options.jitter === "equal" ? exponential / 2 : 0;
    return Math.round(floor + options.random() * (exponential - floor));
  }

  /** Waits `ms`, or less when `close()` or `cancelReconnect()` is called meanwhile. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wakeReconnect = resolve;
      this.#reconnectTimer = setTimeout(resolve, ms);
    });
  }

  /**
   * Abandons the current socket without a `close` event (a failed reconnection attempt): stops
   * its heartbeat, fails its pending requests (clearing their timers), ignores its frames and
   * closes it.
   */
  #abandonSocket(): void {
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    this.#failPending(new SignalFishConnectionError("Connection abandoned"));
    const socket = this.#socket;
    if (!socket) return;
    socket.onclose = null;
    socket.onmessage = null;
    if (socket.readyState !== CLOSED) socket.close();
  }

  /**
   * Gives the seat up after reconnection failed for good; `open` = the socket stays usable.
   * Otherwise the socket is abandoned and no timer of the client is left running.
   */
  #giveUp(error: SignalFishError | SignalFishConnectionError, open: boolean): void {
    if (!open) {
      this.#abandonSocket();
      clearTimeout(this.#reconnectTimer);
    }
    this.#seat = undefined;
    this.#spectating = undefined;
    this.#wentSilent = false;
    this.#setRoom(undefined);
    if (!open) this.#endError = error;
    this.#setStatus(open ? "open" : "closed");
    this.#emit("reconnectFailed", error);
    if (!open) {
      const { code, reason } = this.#lastClose ?? { code: ABNORMAL_CLOSE_CODE, reason: "" };
      this.#emit("close", { code, reason, reconnecting: false });
    }
  }

  async #reconnectLoop(): Promise<void> {
    const options = this.#reconnect!;
    const deadline = Date.now() + options.maxElapsedMs;
    let lastError: SignalFishError | SignalFishConnectionError = new SignalFishConnectionError(
      "Cannot reconnect",
    );
    /** Epoch ms before which the server said a `Reconnect` would be refused again. */
    let notBefore = 0;
    for (let attempt = 1; attempt <= options.maxAttempts; attempt++) {
      const now = Date.now();
      const delayMs = Math.min(
        Math.max(this.#backoffMs(attempt), notBefore - now),
        Math.max(0, deadline - now),
      );
      this.#emit("reconnecting", { attempt, delayMs });
      await this.#sleep(delayMs);
      if (this.#closing) return this.#finishClose(1000, "");
      if (this.#cancelled) break;
      try {
        await this.#openSocket();
        this.#authResult = undefined;
        const auth = this.#authData ?? this.#autoAuth;
        if (auth) {
          await this.#authenticateOnce(auth);
          this.#authData = auth;
        }
        if (this.#cancelled) throw new SignalFishConnectionError("Reconnection cancelled");
        const seat = this.#seat;
        const spectating = this.#spectating;
        if (seat?.token !== undefined) {
          const data = await this.#sendReconnect(seat, true);
          this.#setStatus("open");
          this.#restore(data);
        } else if (spectating) {
          const joined = await this.#request<ServerData<"SpectatorJoined">>(
            { type: "JoinAsSpectator", data: spectating },
            (reply) => {
              if (reply.type === "SpectatorJoined") return { value: reply.data };
              if (reply.type === "SpectatorJoinFailed") {
                return failure(reply.data.error_code, reply.data.reason, "SpectatorJoinFailed");
              }
              return parseError(reply);
            },
            true,
          );
          this.#setStatus("open");
          this.#emit("respectated", joined);
        } else {
          this.#setStatus("open");
        }
        return;
      } catch (error) {
        if (this.#closing) return this.#finishClose(1000, "");
        if (error instanceof SignalFishError && !TEMPORARY_REFUSALS.has(error.code)) {
          // The server refused for good: the seat is gone (or auth failed). Keep the socket if
          // it is open, so the app can join again, but give up on the seat.
          if (error.messageType !== "AuthenticationError") await this.#clearSession();
          return this.#giveUp(error, this.#socket?.readyState === OPEN);
        }
        // A lost connection, or a refusal that means "not now" (the server still holds the
        // seat): keep the seat and the token, and try again on a fresh connection.
        lastError = error as SignalFishError | SignalFishConnectionError;
        this.#abandonSocket();
        if (error instanceof SignalFishError) {
          notBefore = Date.now() + retryAfterMs(error);
          // The server will refuse until after the time budget: trying again cannot help.
          if (notBefore > deadline) break;
        }
        if (this.#cancelled || Date.now() >= deadline) break;
      }
    }
    if (this.#cancelled) lastError = new SignalFishConnectionError("Reconnection cancelled");
    this.#giveUp(lastError, false);
  }

  /** Applies a `Reconnected`: replays missed events in order, then takes the fresh snapshot. */
  #restore(data: ReconnectedData): void {
    if (this.#wentSilent) {
      // A takeover of the socket that went silent: the server counts what it wrote there as
      // delivered (docs/spec/PROTOCOL.md §7.11.5), and nothing says whether it arrived.
      this.#wentSilent = false;
      if (!data.replay_truncated) data = { ...data, replay_truncated: true };
    }
    // Without a room (resume() after a reload) the replay has no room to update, and the
    // snapshot does not say who is held: take that from the replay's presence events.
    const dropped = this.#room ? undefined : droppedIn(data.missed_events);
    for (const missed of data.missed_events) this.#dispatch(missed, true);
    this.#seat = { playerId: data.player_id, roomId: data.room_id, token: data.reconnection_token };
    this.#spectating = undefined;
    const room = roomFromSnapshot(data);
    // The snapshot does not say who is held; keep what presence events told us.
    const present = new Set(room.players.map((p) => p.id));
    room.dropped = (dropped ?? this.#room?.dropped ?? []).filter((d) => present.has(d.player_id));
    this.#setRoom(room);
    this.#saveSession();
    this.#emit("reconnected", data);
  }

  // -------------------------------------------------------------------------------------------
  // Session store (resume after a reload)

  #saveSession(): void {
    const store = this.#store;
    const room = this.#room;
    if (!store) return;
    let record: StoredSession | undefined;
    const seat = this.#seat;
    if (seat?.token !== undefined && room?.role === "player") {
      record = {
        v: 1,
        role: "player",
        player_id: seat.playerId,
        room_id: seat.roomId,
        room_code: room.roomCode,
        game_name: room.gameName,
        token: seat.token,
      };
    } else if (this.#spectating) {
      record = { v: 1, role: "spectator", ...this.#spectating };
    }
    if (!record) return;
    try {
      void Promise.resolve(store.setItem(this.#sessionKey, JSON.stringify(record))).catch(() => {});
    } catch {
      // A full or blocked store only costs the resume after a reload.
    }
  }

  async #clearSession(): Promise<void> {
    try {
      await this.#store?.removeItem(this.#sessionKey);
    } catch {
      // As above.
    }
  }

  // -------------------------------------------------------------------------------------------
  // Room state

  #setRoom(room: RoomState | undefined): void {
    if (room === undefined && this.#room === undefined) return;
    this.#room = room;
    this.#emit("room", room ? cloneRoom(room) : null);
  }

  /**
   * Updates the room model from one server message (docs/spec/PROTOCOL.md §6, §11); `replayed`
   * when it came in `Reconnected.missed_events`.
   */
  #track(message: ServerMessage, replayed: boolean): void {
    const room = this.#room;
    switch (message.type) {
      case "RoomJoined": {
        const { data } = message;
        this.#seat = {
          playerId: data.player_id,
          roomId: data.room_id,
          token: data.reconnection_token,
        };
        this.#spectating = undefined;
        this.#setRoom(roomFromSnapshot(data));
        return this.#saveSession();
      }
      case "Reconnected":
        return; // Applied by #restore after the replay.
      case "SpectatorJoined": {
        const { data } = message;
        return this.#setRoom({
          role: "spectator",
          roomId: data.room_id,
          roomCode: data.room_code,
          gameName: data.game_name,
          selfId: data.spectator_id,
          maxPlayers: undefined,
          supportsAuthority: undefined,
          players: data.current_players,
          spectators: data.current_spectators,
          lobbyState: data.lobby_state,
          readyPlayers: data.current_players.filter((p) => p.is_ready).map((p) => p.id),
          authorityPlayer: data.current_players.find((p) => p.is_authority)?.id ?? null,
          dropped: [],
        });
      }
      case "RoomLeft":
        this.#seat = undefined;
        void this.#clearSession();
        return this.#setRoom(undefined);
      case "SpectatorLeft":
        this.#spectating = undefined;
        void this.#clearSession();
        return this.#setRoom(undefined);
    }
    if (!room) return;
    switch (message.type) {
      case "PlayerJoined": {
        const players = room.players.filter((p) => p.id !== message.data.player.id);
        return this.#setRoom({ ...room, players: [...players, message.data.player] });
      }
      case "PlayerDisconnected": {
        const { player_id, seat_held_secs } = message.data;
        const dropped = room.dropped.filter((d) => d.player_id !== player_id);
        dropped.push({ player_id, heldUntil: Date.now() + seat_held_secs * 1000, replayed });
        return this.#setRoom({ ...room, dropped });
      }
      case "PlayerReconnected": {
        const id = message.data.player_id;
        if (!room.dropped.some((d) => d.player_id === id)) return;
        return this.#setRoom({ ...room, dropped: room.dropped.filter((d) => d.player_id !== id) });
      }
      case "PlayerLeft": {
        const id = message.data.player_id;
        return this.#setRoom({
          ...room,
          dropped: room.dropped.filter((d) => d.player_id !== id),
          players: room.players.filter((p) => p.id !== id),
          readyPlayers: room.readyPlayers.filter((ready) => ready !== id),
          authorityPlayer: room.authorityPlayer === id ? null : room.authorityPlayer,
        });
      }
      case "LobbyStateChanged": {
        const ready = message.data.ready_players;
        return this.#setRoom({
          ...room,
          lobbyState: message.data.lobby_state,
          readyPlayers: [...ready],
          players: room.players.map((p) => ({ ...p, is_ready: ready.includes(p.id) })),
        });
      }
      case "AuthorityChanged": {
        const holder = message.data.authority_player;
        return this.#setRoom({
          ...room,
          authorityPlayer: holder,
          players: room.players.map((p) => ({ ...p, is_authority: p.id === holder })),
        });
      }
      // The arrival or departure itself, not `current_spectators`: the server lists at most
      // the first 16 spectators there (docs/spec/PROTOCOL.md §7.9 note).
      case "NewSpectatorJoined": {
        const { spectator } = message.data;
        const spectators = room.spectators.filter((s) => s.id !== spectator.id);
        return this.#setRoom({ ...room, spectators: [...spectators, spectator] });
      }
      case "SpectatorDisconnected": {
        const id = message.data.spectator_id;
        return this.#setRoom({ ...room, spectators: room.spectators.filter((s) => s.id !== id) });
      }
    }
  }
}

/**
 * The seats a replay (`Reconnected.missed_events`) leaves marked dropped: each
 * `PlayerDisconnected` (docs/spec/EXTENSIONS.md E10) until a later `PlayerReconnected` or
 * `PlayerLeft` of the same player.
 */
function droppedIn(replay: readonly ServerMessage[]): DroppedSeat[] {
  let dropped: DroppedSeat[] = [];
  for (const message of replay) {
    if (message.type === "PlayerDisconnected") {
      const { player_id, seat_held_secs } = message.data;
      dropped = dropped.filter((d) => d.player_id !== player_id);
      dropped.push({ player_id, heldUntil: Date.now() + seat_held_secs * 1000, replayed: true });
    } else if (message.type === "PlayerReconnected" || message.type === "PlayerLeft") {
      const id = message.data.player_id;
      dropped = dropped.filter((d) => d.player_id !== id);
    }
  }
  return dropped;
}

function roomFromSnapshot(data: RoomSnapshot): RoomState {
  return {
    role: "player",
    roomId: data.room_id,
    roomCode: data.room_code,
    gameName: data.game_name,
    selfId: data.player_id,
    maxPlayers: data.max_players,
    supportsAuthority: data.supports_authority,
    players: data.current_players,
    spectators: data.current_spectators,
    lobbyState: data.lobby_state,
    readyPlayers: [...data.ready_players],
    authorityPlayer: data.current_players.find((p) => p.is_authority)?.id ?? null,
    dropped: [],
  };
}

function cloneRoom(room: RoomState): RoomState {
  return {
    ...room,
    players: room.players.map((p) => ({ ...p })),
    spectators: room.spectators.map((s) => ({ ...s })),
    readyPlayers: [...room.readyPlayers],
    dropped: room.dropped.map((d) => ({ ...d })),
  };
}

/** `globalThis.sessionStorage` when the runtime has a usable one (browsers, Deno). */
function defaultSessionStore(): SessionStore | undefined {
  try {
    const storage = (globalThis as { sessionStorage?: SessionStore }).sessionStorage;
    return storage && typeof storage.getItem === "function" ? storage : undefined;
  } catch {
    return undefined; // Access can throw (sandboxed iframes, disabled storage).
  }
}

/**
 * Looks a room up over HTTP (`GET /v2/rooms/{game_name}/{room_code}`, docs/spec/EXTENSIONS.md E5) on the
 * server at `url` (http(s) base URL or the ws(s) endpoint); resolves `null` for 404. Rejects
 * with {@linkcode SignalFishError} for 401 (`app` names an unknown app, `INVALID_APP_ID`, or its
 * secret is wrong, `UNAUTHORIZED`; docs/spec/SERVER.md §1.10), 429 (`RATE_LIMIT_EXCEEDED`) or 503, and with
 * {@linkcode SignalFishConnectionError} when the server cannot be reached. `app` names the app
 * whose rooms to search on a server that requires app authentication (rooms are per app there:
 * `?app_id=` and the `X-App-Secret` header); servers without it ignore both.
 */
export async function lookupRoom(
  url: string | URL,
  gameName: string,
  roomCode: string,
  app?: { appId: string; appSecret?: string },
): Promise<RoomSummary | null> {
  const base = new URL(endpointUrl(url));
  base.protocol = base.protocol === "wss:" ? "https:" : "http:";
  const target = new URL(
    `/v2/rooms/${encodeURIComponent(gameName)}/${encodeURIComponent(roomCode)}`,
    base,
  );
  const headers: Record<string, string> = { accept: "application/json" };
  if (app) {
    target.searchParams.set("app_id", app.appId);
    if (app.appSecret !== undefined) headers["x-app-secret"] = app.appSecret;
  }
  let response: Response;
  try {
    response = await fetch(target, { headers });
  } catch (error) {
    throw new SignalFishConnectionError(`Cannot reach ${target.origin}`, undefined, {
      cause: error,
    });
  }
  const body = await response.json().catch(() => undefined);
  if (response.status === 404) return null;
  if (!response.ok) {
    throw new SignalFishError(
      body?.error_code ?? "INTERNAL_ERROR",
      body?.message ?? `HTTP ${response.status}`,
      "Error",
    );
  }
  return body as RoomSummary;
}

/** The refusal a message carries, if any (for the `error` event). */
function unclaimedRefusal(message: ServerMessage): SignalFishError | undefined {
  switch (message.type) {
    case "Error":
      return new SignalFishError(
        message.data.error_code ?? "INTERNAL_ERROR",
        message.data.message,
        "Error",
      );
    case "AuthenticationError":
      return new SignalFishError(message.data.error_code, message.data.error, message.type);
    case "RoomJoinFailed":
    case "SpectatorJoinFailed":
      return new SignalFishError(
        message.data.error_code ?? "INTERNAL_ERROR",
        message.data.reason,
        message.type,
      );
    case "ReconnectionFailed":
      return new SignalFishError(message.data.error_code, message.data.reason, message.type);
  }
  return undefined;
}

function withoutUndefined<T extends object>(data: T): T {
  return Object.fromEntries(Object.entries(data).filter(([, value]) => value !== undefined)) as T;
}
