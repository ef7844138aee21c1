/**
 * The server's metrics (docs/spec/SERVER.md §6): the §6.3 Prometheus families fed by edge and engine events,
 * the dashboard cache of §6.6 and the JSON body of §6.4.
 *
 * @module
 */
import { VALIDATION_ERROR_CODES } from "../protocol/error_codes.ts";
import type { EdgeEvent } from "../transport/events.ts";
import {
  type Counter,
  type Histogram,
  type LabeledCounter,
  LatencySketch,
  type LatencySummary,
  Registry,
} from "./registry.ts";
import { upstreamRateLimitWindows, upstreamSnapshot } from "./upstream_json.ts";
import { defaultProcessReaders, type ProcessReaders, registerProcessMetrics } from "./process.ts";
import denoJson from "../../deno.json" with { type: "json" };

/**
 * The close codes that are a `code` label value of `signal_fish_connection_closes_total` of their
 * own (docs/spec/SERVER.md §6.3 #97): 1000 (a normal closure, what clients send), the codes of
 * docs/spec/PROTOCOL.md §1.6, 1002 and 1007 (protocol errors and text that is not UTF-8, RFC 6455
 * section 7.4.1), 1005 (a close frame without a code) and 1006 (no close handshake). Any other
 * code a client sends is counted as `other`, so clients cannot create series.
 */
export const CLOSE_CODE_LABELS: ReadonlySet<number> = new Set([
  1000,
  1001,
  1002,
  1005,
  1006,
  1007,
  1008,
  1009,
  1011,
  1012,
  1013,
  4001,
]);

/** The `cause` label values of 1006 closes (docs/spec/SERVER.md §6.3 #97). */
const CLOSE_CAUSES: ReadonlySet<string> = new Set([
  "reset",
  "eof",
  "write_error",
  "destroyed",
  "unknown",
]);

/**
 * The labels `code`, `initiator` and `cause` of `signal_fish_connection_closes_total` for a
 * `disconnected` event (docs/spec/SERVER.md §6.3 #97): the close code or `other`, `client` or
 * `server`, and for 1006 only the cause (`""`, no label, otherwise).
 */
export function closeLabels(
  event: Extract<EdgeEvent, { type: "disconnected" }>,
): [code: string, initiator: string, cause: string] {
  const code = CLOSE_CODE_LABELS.has(event.code) ? String(event.code) : "other";
  const initiator = event.initiator === "server" ? "server" : "client";
  const cause = event.code !== 1006
    ? ""
    : event.cause !== undefined && CLOSE_CAUSES.has(event.cause)
    ? event.cause
    : "unknown";
  return [code, initiator, cause];
}

/**
 * The rooms of one game by seat count: `histogram[n]` rooms have `n` seats (held seats included),
 * the last entry non-zero.
 */
export interface GameSeats {
  gameName: string;
  histogram: readonly number[];
}

/** Live state the gauges and the dashboard read at scrape/refresh time. */
export interface MetricsSources {
  /** Open WebSocket connections. */
  connections: () => number;
  /** Occupied seats, held seats included. */
  players: () => number;
  /**
   * Open rooms on this instance, empty rooms included (`signal_fish_rooms_active`).
   * @default the rooms counted in `seatHistograms()`
   */
  rooms?: () => number;
  /** Seats currently held for reconnection; `undefined` when the engine has no reconnection. */
  heldSeats: () => number | undefined;
  /** Messages appended to replay buffers so far (docs/spec/SERVER.md §6.3 #37); never decreases. */
  eventsBuffered: () => number;
  /** Bytes held in all replay buffers now (issue 14 item 8). @default 0 */
  replayBufferBytes?: () => number;
  /** Messages dropped from replay buffers for the global byte budget so far. @default 0 */
  replayTruncations?: () => number;
  /** Holds ended early for `server.max_held_seats` so far. @default 0 */
  heldSeatEvictions?: () => number;
  /** Holds ended early for `server.max_held_seats_per_ip` so far. @default 0 */
  heldSeatAddressEvictions?: () => number;
  /**
   * Unattended rooms (every seat held, no spectator) reclaimed by creations at a full room cap
   * so far (docs/spec/SERVER.md §3.7). @default 0
   */
  unattendedReclaims?: () => number;
  /**
   * Bytes buffered for this instance's connections at the last once-a-second check of
   * `websocket.max_buffered_bytes_total` (0 when that budget is off). @default 0
   */
  bufferedBytes?: () => number;
  /**
   * Rooms per seat count of each game on this instance (docs/spec/SERVER.md §6.6): read once per
   * dashboard refresh, in a time that grows with games, not rooms.
   */
  seatHistograms: () => readonly GameSeats[];
  /**
   * What the log sinks counted (src/logging.ts `LogStats`), read at scrape time; absent when
   * the process configured no logging (tests), then the log families read 0.
   */
  logStats?: Readonly<{ writeFailures: number; linesDropped: number; linesSuppressed: number }>;
}

/** Metrics settings (docs/spec/SERVER.md §2.7 `metrics.*`, `server.enable_reconnection`). */
export interface ServerMetricsOptions {
  /**
   * `server.enable_reconnection`: joins issue tokens (counted in #33). Off, the `reconnection_*`
   * families are still exposed and read 0 (docs/spec/SERVER.md §6.3 #33–#37).
   */
  reconnection: boolean;
  /** Server version for `signal_fish_build_info{version}`. @default deno.json `version` */
  version?: string;
  /** Process figures for the `process_*` families. @default defaultProcessReaders() */
  processReaders?: ProcessReaders;
  /** `metrics.dashboard_cache_refresh_interval_secs`. @default 5 */
  refreshIntervalSecs: number;
  /** `metrics.dashboard_cache_ttl_secs`. @default 30 */
  ttlSecs: number;
  /** `metrics.dashboard_cache_history_window_secs`. @default 300 */
  historyWindowSecs: number;
  /** `metrics.dashboard_cache_history_fields` (PascalCase names). */
  historyFields: readonly string[];
  /**
   * `metrics.dashboard_max_games`: games listed by name in `roomsByGame`/`gamePercentiles` of
   * each dashboard entry; the rest are summed into {@linkcode OTHER_GAMES}. @default 20
   */
  maxGames?: number;
}

/**
 * The `roomsByGame`/`gamePercentiles` key of the games beyond `metrics.dashboard_max_games`
 * (issue 14 item 9). No game can have this name: game names are letters, digits, spaces, `-`
 * and `_` (docs/spec/PROTOCOL.md §8.1).
 */
export const OTHER_GAMES = "(other)";

/** `metrics.dashboard_max_games` default. */
export const DEFAULT_MAX_GAMES = 20;

/** The six percentile keys of docs/spec/SERVER.md §6.6 (`{}` when there are no rooms). */
export type Percentiles = Record<string, number>;

interface DashboardEntry {
  fetchedAt: number;
  activeRooms: number;
  roomsByGame: Record<string, number>;
  playerPercentiles: Percentiles;
  gamePercentiles: Record<string, Percentiles>;
}

const PERCENTILES: readonly [string, number][] = [
  ["p50", 0.5],
  ["p90", 0.9],
  ["p99", 0.99],
  ["p99_5", 0.995],
  ["p99_9", 0.999],
];

/**
 * Nearest-rank percentiles of seat counts (docs/spec/SERVER.md §6.6): the element at index
 * `round(p × (n − 1))` of the ascending counts, `p100` = max; `{}` for no rooms.
 */
export function seatPercentiles(counts: readonly number[]): Percentiles {
  const histogram: number[] = [];
  for (let i = 0; i < counts.length; i++) countSeats(histogram, counts[i]!, 1);
  return histogramPercentiles(histogram, counts.length);
}

/**
 * Adds one room with `seats` seats to `histogram` (rooms per seat count). Seat counts are
 * non-negative integers no larger than `protocol.max_players_limit` (at most 255), so a
 * histogram has at most 256 entries.
 */
function countSeats(histogram: number[], seats: number, rooms: number): void {
  while (histogram.length <= seats) histogram.push(0);
  histogram[seats]! += rooms;
}

/** Adds every count of `from` into `into` (rooms per seat count). */
function addHistogram(into: number[], from: readonly number[]): void {
  for (let seats = 0; seats < from.length; seats++) {
    if (from[seats]! > 0) countSeats(into, seats, from[seats]!);
  }
}

/** Rooms and seats in a histogram (rooms per seat count). */
function histogramTotals(histogram: readonly number[]): { rooms: number; seats: number } {
  let rooms = 0;
  let seats = 0;
  for (let n = 0; n < histogram.length; n++) {
    rooms += histogram[n]!;
    seats += n * histogram[n]!;
  }
  return { rooms, seats };
}

/**
 * {@linkcode seatPercentiles} of the `rooms` rooms counted in `histogram` (index = seat count,
 * value = rooms with that many seats): the same nearest ranks, found by walking the counts
 * instead of sorting one entry per room.
 */
function histogramPercentiles(histogram: readonly number[], rooms: number): Percentiles {
  if (rooms === 0) return {};
  const out: Percentiles = {};
  let seats = 0;
  // Rooms with at most `seats` seats.
  let upTo = histogram[0] ?? 0;
  for (const [key, p] of PERCENTILES) {
    // Math.round rounds .5 up, which is "half away from zero" for these non-negative indices.
    const rank = Math.round(p * (rooms - 1));
    // (The histogram holds `rooms` rooms; the bound only guards against a caller's miscount.)
    while (upTo <= rank && seats < histogram.length - 1) upTo += histogram[++seats]!;
    out[key] = seats;
  }
  // The histogram ends at the largest seat count seen.
  out.p100 = histogram.length - 1;
  return out;
}

/** The dashboard part of the JSON body, serialised (see `ServerMetrics.jsonText`). */
interface RenderedDashboard {
  /** `"playerPercentiles":…,"roomsByGame":…,"gamePercentiles":…,"activeRooms":n`. */
  rooms: string;
  /** The `history` array. */
  history: string;
}

/**
 * Rooms and seat-count percentiles per game (docs/spec/SERVER.md §6.6) for at most `maxGames` games: those
 * with the most rooms (then most seats, then by name); every other game's rooms are summed under
 * {@linkcode OTHER_GAMES}, with percentiles over their seat counts together. Attacker-chosen game
 * names therefore cannot grow the JSON body (issue 14 item 9).
 *
 * Reads each game's seat histogram ({@linkcode GameSeats}, kept by the directory as seats come and
 * go) once: linear in games and seat counts, not rooms; the leaders are picked without sorting
 * every game.
 */
export function topGames(
  games: readonly GameSeats[],
  maxGames: number,
): { roomsByGame: Record<string, number>; gamePercentiles: Record<string, Percentiles> } {
  // Per game, rooms and seats packed in one number (rooms × 2^32 + seats), so that a larger
  // number is a game listed earlier, up to the name; the leaders, in order, kept to `maxGames`
  // entries as the games go by.
  const top: [name: string, rank: number, index: number][] = [];
  if (maxGames > 0) {
    for (let index = 0; index < games.length; index++) {
      const { gameName, histogram } = games[index]!;
      const { rooms, seats } = histogramTotals(histogram);
      if (rooms === 0) continue;
      const entry: [string, number, number] = [gameName, rooms * ROOM_UNIT + seats, index];
      if (top.length === maxGames && !listedBefore(entry, top[maxGames - 1]!)) continue;
      let at = top.length;
      while (at > 0 && listedBefore(entry, top[at - 1]!)) at--;
      top.splice(at, 0, entry);
      if (top.length > maxGames) top.pop();
    }
  }
  const roomsByGame: Record<string, number> = {};
  const gamePercentiles: Record<string, Percentiles> = {};
  const listed = new Set<number>();
  for (const [name, packed, index] of top) {
    const count = Math.floor(packed / ROOM_UNIT);
    roomsByGame[name] = count;
    gamePercentiles[name] = histogramPercentiles(games[index]!.histogram, count);
    listed.add(index);
  }
  // Everyone else's rooms together.
  const other: number[] = [];
  let otherRooms = 0;
  for (let index = 0; index < games.length; index++) {
    if (listed.has(index)) continue;
    addHistogram(other, games[index]!.histogram);
    otherRooms += histogramTotals(games[index]!.histogram).rooms;
  }
  if (otherRooms > 0) {
    roomsByGame[OTHER_GAMES] = otherRooms;
    gamePercentiles[OTHER_GAMES] = histogramPercentiles(other, otherRooms);
  }
  return { roomsByGame, gamePercentiles };
}

/** One room in {@linkcode topGames}' packed per-game count (seats stay below it). */
const ROOM_UNIT = 2 ** 32;

/** Game `a` is listed before `b`: more rooms, then more seats (both in the packed rank), then the lower name. */
function listedBefore(
  a: readonly [string, number, ...unknown[]],
  b: readonly [string, number, ...unknown[]],
): boolean {
  return a[1] !== b[1] ? a[1] > b[1] : a[0] < b[0];
}

function rfc3339(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * Where the Redis store reports its commands (cluster mode, docs/spec/SERVER.md §6.3 #19, #23,
 * #63): `sent()` once per command written (script loads and retries included, publishes
 * excluded), `answered(seconds)` with the round trip of each command Redis answered (an error
 * reply included; a command that failed without an answer — link down, timed out — is not timed).
 */
export interface QueryObserver {
  sent(): void;
  answered(seconds: number): void;
}

/** Query parameters of the JSON endpoint (docs/spec/SERVER.md §1.6), already validated. */
export interface JsonQuery {
  /** Echoed as `timeRange`. @default "1h" */
  timeRange: string;
  /** Append `metricsSnapshot`. @default false */
  includeSnapshot: boolean;
}

/** Counts what happens on this instance and renders it (docs/spec/SERVER.md §6). */
export class ServerMetrics {
  /** The registry behind `/metrics/prom`. */
  readonly registry = new Registry();
  readonly #sources: MetricsSources;
  readonly #options: ServerMetricsOptions;

  readonly #connections: Counter;
  readonly #disconnections: Counter;
  readonly #closes: LabeledCounter;
  readonly #roomsCreated: Counter;
  readonly #roomsJoined: Counter;
  readonly #roomsDeleted: Counter;
  readonly #capDenials: Counter;
  readonly #rateLimitRejections: Counter;
  readonly #creationSamples: Counter;
  readonly #joinSamples: Counter;
  readonly #clamped: Counter;
  readonly #errors: Counter;
  readonly #errorsInternal: Counter;
  readonly #errorsWebsocket: Counter;
  readonly #errorsValidation: Counter;
  readonly #playersJoined: Counter;
  readonly #playersLeft: Counter;
  readonly #gameData: Counter;
  readonly #tokensIssued: Counter;
  readonly #reconnectFailures: Counter;
  readonly #reconnectCompletions: Counter;
  readonly #eventsBuffered: Counter;
  readonly #cleanupEmpty: Counter;
  readonly #cleanupInactive: Counter;
  readonly #cleanupExpired: Counter;
  readonly #refreshFailures: Counter;
  readonly #slowConsumers: Counter;
  readonly #messagesDropped: Counter;
  #dropped = 0;
  readonly #creationLatency: Histogram;
  readonly #joinLatency: Histogram;
  readonly #relayLatency: Histogram;

  readonly #creationSketch = new LatencySketch();
  readonly #joinSketch = new LatencySketch();
  /** Cluster mode only (docs/spec/SERVER.md §6.3 #19, #23, #63): see {@linkcode ServerMetrics.queries}. */
  #queries:
    | { sent: Counter; samples: Counter; latency: Histogram; sketch: LatencySketch }
    | undefined;
  // Snapshot-only counts (docs/spec/SERVER.md §6.4 "Live in the snapshot").
  #creationFailures = 0;
  #joinFailures = 0;
  #codeCollisions = 0;
  #refreshCount = 0;
  #lastError: string | null = null;
  #history: DashboardEntry[] = [];
  /** The dashboard part of the JSON body since the last refresh. */
  #rendered: RenderedDashboard | undefined;
  #renders = 0;

  /**
   * Registers every family of docs/spec/SERVER.md §6.3 this build has, in the spec's order. The
   * `reconnection_*` families (#33–#37) are there whether `server.enable_reconnection` is on or
   * not: off, they read 0.
   */
  constructor(sources: MetricsSources, options: ServerMetricsOptions) {
    this.#sources = sources;
    this.#options = options;
    const r = this.registry;
    const p = "signal_fish_";
    this.#connections = r.counter(`${p}connections_total`, "WebSocket connections accepted");
    r.gauge(`${p}connections_active`, "WebSocket connections currently open", sources.connections);
    this.#disconnections = r.counter(
      `${p}connections_disconnections_total`,
      "WebSocket connections closed, for any reason",
    );
    this.#roomsCreated = r.counter(`${p}rooms_created_total`, "Rooms created");
    this.#roomsJoined = r.counter(`${p}rooms_joined_total`, "Successful joins of existing rooms");
    this.#roomsDeleted = r.counter(`${p}rooms_deleted_total`, "Rooms deleted");
    this.#capDenials = r.counter(
      `${p}room_cap_denials_total`,
      "Room creations refused by a rooms-per-game or per-app room cap",
    );
    this.#rateLimitRejections = r.counter(
      `${p}rate_limit_rejections_total`,
      "Requests refused by any rate or connection limiter",
    );
    this.#creationSamples = r.counter(
      `${p}room_creation_latency_samples_total`,
      "Room creations timed",
    );
    this.#joinSamples = r.counter(
      `${p}room_join_latency_samples_total`,
      "Joins of existing rooms timed",
    );
    this.#clamped = r.counter(
      `${p}latency_clamped_samples_total`,
      "Latency samples above 300 seconds, clamped",
    );
    this.#errors = r.counter(`${p}errors_total`, "Internal, WebSocket and validation errors");
    this.#errorsInternal = r.counter(
      `${p}errors_internal_total`,
      "Internal errors: handler exceptions and INTERNAL_ERROR replies",
    );
    this.#errorsWebsocket = r.counter(`${p}errors_websocket_total`, "WebSocket transport errors");
    this.#errorsValidation = r.counter(
      `${p}errors_validation_total`,
      "Client messages rejected as invalid",
    );
    r.gauge(`${p}players_active`, "Occupied seats, held seats included", sources.players);
    // Additions for operators (issue 16): open rooms, the running version, process figures.
    r.gauge(
      `${p}rooms_active`,
      "Rooms open now, empty rooms included",
      sources.rooms ??
        (() =>
          sources.seatHistograms().reduce(
            (sum, game) => sum + histogramTotals(game.histogram).rooms,
            0,
          )),
    );
    r.gauge(
      `${p}build_info`,
      "Always 1; the running server version is in the version label",
      () => 1,
      { version: options.version ?? denoJson.version },
    );
    registerProcessMetrics(r, options.processReaders ?? defaultProcessReaders());
    this.#playersJoined = r.counter(`${p}players_joined_total`, "Seats taken");
    this.#playersLeft = r.counter(`${p}players_left_total`, "Seats released");
    this.#gameData = r.counter(
      `${p}game_data_messages_total`,
      "Inbound game data messages accepted for relay",
    );
    this.#tokensIssued = r.counter(
      `${p}reconnection_tokens_issued_total`,
      "Reconnection tokens issued",
    );
    r.gauge(
      `${p}reconnection_sessions_active`,
      "Seats currently held for reconnection",
      () => sources.heldSeats() ?? 0,
    );
    this.#reconnectFailures = r.counter(
      `${p}reconnection_validation_failures_total`,
      "ReconnectionFailed replies",
    );
    this.#reconnectCompletions = r.counter(
      `${p}reconnection_completions_total`,
      "Reconnected replies",
    );
    this.#eventsBuffered = r.counter(
      `${p}reconnection_events_buffered_total`,
      "Messages appended to replay buffers of held seats",
      sources.eventsBuffered,
    );
    r.gauge(
      `${p}replay_buffer_bytes`,
      "Bytes held in the replay buffers of all held seats",
      () => sources.replayBufferBytes?.() ?? 0,
    );
    r.counter(
      `${p}replay_truncations_total`,
      "Messages dropped from replay buffers to stay within the global byte budget",
      () => sources.replayTruncations?.() ?? 0,
    );
    r.gauge(
      `${p}buffered_bytes`,
      "Bytes waiting to be written to this instance's connections, or queued from them, at the last check",
      () => sources.bufferedBytes?.() ?? 0,
    );
    r.counter(
      `${p}held_seat_evictions_total`,
      "Held seats released before their window ended to stay within server.max_held_seats",
      () => sources.heldSeatEvictions?.() ?? 0,
    );
    r.counter(
      `${p}held_seat_address_evictions_total`,
      "Held seats released before their window ended because their address held server.max_held_seats_per_ip",
      () => sources.heldSeatAddressEvictions?.() ?? 0,
    );
    r.counter(
      `${p}rooms_unattended_reclaimed_total`,
      "Rooms whose seats were all held, with no spectator, deleted to make way for a creation at a full room cap",
      () => sources.unattendedReclaims?.() ?? 0,
    );
    this.#cleanupEmpty = r.counter(
      `${p}cleanup_empty_rooms_total`,
      "Empty rooms deleted by the maintenance sweep",
    );
    this.#cleanupInactive = r.counter(
      `${p}cleanup_inactive_rooms_total`,
      "Rooms with seats deleted for inactivity",
    );
    this.#cleanupExpired = r.counter(
      `${p}cleanup_expired_players_total`,
      "Connections closed by the idle timeout (1001, no response to pings)",
    );
    r.gauge(
      `${p}dashboard_cache_age_seconds`,
      "Seconds since the last successful dashboard refresh (0 if never)",
      () => this.#cacheAgeSeconds(Date.now()) ?? 0,
    );
    this.#refreshFailures = r.counter(
      `${p}dashboard_cache_refresh_failures_total`,
      "Dashboard refresh failures",
    );
    this.#slowConsumers = r.counter(
      `${p}slow_consumer_disconnects_total`,
      "Connections closed with 1013 as slow consumers",
    );
    this.#messagesDropped = r.counter(
      `${p}websocket_messages_dropped_total`,
      "Outbound messages discarded: slow-consumer queues and frames for closed unseated sockets",
    );
    this.#creationLatency = r.histogram(
      `${p}room_creation_latency_seconds`,
      "JoinRoom received to RoomJoined queued, for room creations",
    );
    this.#joinLatency = r.histogram(
      `${p}room_join_latency_seconds`,
      "JoinRoom received to RoomJoined queued, for joins of existing rooms",
    );
    this.#relayLatency = r.histogram(
      `${p}game_data_relay_latency_seconds`,
      "GameData received to relayed frames queued for every recipient",
    );
    const logStats = sources.logStats;
    r.counter(
      `${p}log_write_failures_total`,
      "Failed log sink operations: log file open, write or rotation, stdout write, log directory",
      () => logStats?.writeFailures ?? 0,
    );
    r.counter(
      `${p}log_lines_dropped_total`,
      "Log lines lost to failed writes or to a disk that could not keep up",
      () => logStats?.linesDropped ?? 0,
    );
    r.counter(
      `${p}log_lines_suppressed_total`,
      "Log lines left out by the per-event rate limit (each summarised in a Suppressed line)",
      () => logStats?.linesSuppressed ?? 0,
    );
    this.#closes = r.labeledCounter(
      `${p}connection_closes_total`,
      "WebSocket connections closed, by close code, initiator (client or server) and, for 1006, cause",
      ["code", "initiator", "cause"],
    );
  }

  /** Counts one edge or engine event. Never throws on unknown events. */
  observe(event: EdgeEvent): void {
    switch (event.type) {
      case "connected":
        this.#connections.inc();
        break;
      case "disconnected":
        this.#disconnections.inc();
        this.#closes.inc(closeLabels(event));
        if (event.idleTimeout) this.#cleanupExpired.inc();
        break;
      case "room_created":
        this.#roomsCreated.inc();
        this.#playersJoined.inc();
        if (this.#options.reconnection) this.#tokensIssued.inc();
        break;
      case "room_joined":
        this.#roomsJoined.inc();
        this.#playersJoined.inc();
        if (this.#options.reconnection) this.#tokensIssued.inc();
        break;
      case "seat_released":
        // Expiry is also reported as seat_released (reason "expired"): counted once.
        this.#playersLeft.inc();
        break;
      case "room_deleted":
        this.#roomsDeleted.inc();
        if (event.reason === "empty") this.#cleanupEmpty.inc();
        else if (event.reason === "inactive") this.#cleanupInactive.inc();
        break;
      case "join_failed":
        if (event.creating) this.#creationFailures++;
        else this.#joinFailures++;
        if (event.errorCode === "MAX_ROOMS_PER_GAME_EXCEEDED") this.#capDenials.inc();
        break;
      case "code_collision":
        this.#codeCollisions++;
        break;
      case "game_data":
        this.#gameData.inc();
        break;
      case "invalid_message":
      case "message_too_large":
        this.#countError(this.#errorsValidation);
        break;
      case "error_reply":
        if (VALIDATION_ERROR_CODES.has(event.errorCode)) this.#countError(this.#errorsValidation);
        else if (event.errorCode === "INTERNAL_ERROR") this.#countError(this.#errorsInternal);
        break;
      case "internal_error":
        this.#countError(this.#errorsInternal);
        break;
      case "websocket_error":
        this.#countError(this.#errorsWebsocket);
        break;
      case "handled":
        this.#timed(event.outcome, event.seconds);
        break;
      case "player_reconnected":
        this.#tokensIssued.inc();
        this.#reconnectCompletions.inc();
        break;
      case "reconnect_failed":
        this.#reconnectFailures.inc();
        break;
      case "slow_consumer":
        this.#slowConsumers.inc();
        break;
      case "messages_dropped":
        this.#messagesDropped.inc(event.count);
        this.#dropped += event.count;
        break;
      case "rate_limited":
        this.#rateLimitRejections.inc();
        break;
      default:
        break;
    }
  }

  /**
   * Cluster mode: registers the Redis query families of docs/spec/SERVER.md §6.3 —
   * `signal_fish_queries_total` (#19, commands sent, publishes excluded),
   * `signal_fish_query_latency_samples_total` (#23) and the histogram
   * `signal_fish_query_latency_seconds` (#63, round trip of each answered command, the §6.2
   * buckets) — and returns the observer the Redis store reports to; the JSON body's
   * `performance.queries` and `query_latency` (§6.4) read the same counts. Called once; absent
   * in single-instance mode, where the families are omitted (§6.3 "cluster").
   */
  queries(): QueryObserver {
    if (this.#queries) throw new Error("The query families are already registered");
    const r = this.registry;
    const p = "signal_fish_";
    const queries = this.#queries = {
      sent: r.counter(`${p}queries_total`, "Commands sent to Redis, publishes excluded"),
      samples: r.counter(
        `${p}query_latency_samples_total`,
        "Redis command round trips timed, publishes excluded",
      ),
      latency: r.histogram(
        `${p}query_latency_seconds`,
        "Redis command round trip, publishes excluded",
      ),
      sketch: new LatencySketch(),
    };
    return {
      sent: () => queries.sent.inc(),
      answered: (seconds) => {
        queries.latency.observe(seconds);
        queries.samples.inc();
        if (queries.sketch.record(seconds)) this.#clamped.inc();
      },
    };
  }

  /**
   * Cluster mode: registers `signal_fish_cluster_publish_latency_seconds` (docs/spec/SERVER.md
   * §6.3 #67, the round trip of each publish Redis answered, the §6.2 buckets) and returns the
   * function the bus reports each round trip to, in seconds. Called once; absent in
   * single-instance mode.
   */
  publishLatency(): (seconds: number) => void {
    const histogram = this.registry.histogram(
      "signal_fish_cluster_publish_latency_seconds",
      "Publish round trip to Redis, heartbeats included",
    );
    return (seconds) => histogram.observe(seconds);
  }

  /** Counts an error no handler caught (the process-wide guard, SECURITY.md). */
  internalError(): void {
    this.#countError(this.#errorsInternal);
  }

  /** The Prometheus text (docs/spec/SERVER.md §6.2). */
  renderPrometheus(): string {
    return this.registry.render();
  }

  /**
   * Takes a dashboard snapshot from the rooms on this instance (docs/spec/SERVER.md §6.6) at `now` (ms).
   * A failure is counted and kept as `lastError`; the previous snapshot stays.
   */
  refreshDashboard(now: number): void {
    let games;
    try {
      games = this.#sources.seatHistograms();
    } catch (error) {
      this.#refreshFailures.inc();
      this.#lastError = error instanceof Error ? error.message : String(error);
      throw error;
    }
    const { roomsByGame, gamePercentiles } = topGames(
      games,
      this.#options.maxGames ?? DEFAULT_MAX_GAMES,
    );
    const all: number[] = [];
    for (const game of games) addHistogram(all, game.histogram);
    const activeRooms = histogramTotals(all).rooms;
    this.#history.push({
      fetchedAt: now,
      activeRooms,
      roomsByGame,
      playerPercentiles: histogramPercentiles(all, activeRooms),
      gamePercentiles,
    });
    const { refreshIntervalSecs, historyWindowSecs } = this.#options;
    const capacity = Math.min(
      720,
      Math.max(
        1,
        Math.ceil(Math.max(historyWindowSecs, refreshIntervalSecs) / refreshIntervalSecs),
      ),
    );
    if (this.#history.length > capacity) this.#history.splice(0, this.#history.length - capacity);
    this.#refreshCount++;
    this.#lastError = null;
    this.#rendered = undefined;
  }

  /**
   * How many times the dashboard part of the JSON body (snapshot and history) was serialised:
   * at most once per refresh, however many requests (issue 14 item 9). For tests and diagnostics.
   */
  get dashboardRenders(): number {
    return this.#renders;
  }

  /** The dashboard part of the JSON body, serialised once per refresh (docs/spec/SERVER.md §6.6). */
  #dashboardJson(): RenderedDashboard {
    if (this.#rendered) return this.#rendered;
    const latest = this.#history.at(-1);
    const fields = new Set(this.#options.historyFields);
    if (
      !["ActiveRooms", "RoomsByGame", "PlayerPercentiles", "GamePercentiles"].some((f) =>
        fields.has(f)
      )
    ) fields.add("ActiveRooms");
    const pick = <T>(field: string, value: T) => fields.has(field) ? value : null;
    const rooms = JSON.stringify({
      playerPercentiles: latest?.playerPercentiles ?? {},
      roomsByGame: latest?.roomsByGame ?? {},
      gamePercentiles: latest?.gamePercentiles ?? {},
      activeRooms: latest?.activeRooms ?? 0,
    });
    const history = JSON.stringify(this.#history.map((entry) => ({
      fetchedAt: rfc3339(entry.fetchedAt),
      activeRooms: pick("ActiveRooms", entry.activeRooms),
      roomsByGame: pick("RoomsByGame", entry.roomsByGame),
      playerPercentiles: pick("PlayerPercentiles", entry.playerPercentiles),
      gamePercentiles: pick("GamePercentiles", entry.gamePercentiles),
    })));
    this.#renders++;
    // `{"playerPercentiles":…,"activeRooms":n}` without its braces, to splice into the body.
    return this.#rendered = { rooms: rooms.slice(1, -1), history };
  }

  /** The JSON metrics body (docs/spec/SERVER.md §6.4) at `now` (ms), parsed (tests, diagnostics). */
  jsonBody(query: JsonQuery, now: number): Record<string, unknown> {
    return JSON.parse(this.jsonText(query, now));
  }

  /**
   * The JSON metrics body (docs/spec/SERVER.md §6.4) at `now` (ms), as sent. Its size is bounded whatever
   * the clients do: rooms are listed for at most `maxGames` games per dashboard entry (the rest
   * under {@linkcode OTHER_GAMES}), and the dashboard part, the large one, is serialised once per
   * refresh and reused (issue 14 item 9); only the small live part is built per request.
   */
  jsonText(query: JsonQuery, now: number): string {
    const dashboard = this.#dashboardJson();
    const latest = this.#history.at(-1);
    const age = this.#cacheAgeSeconds(now);
    const { refreshIntervalSecs, ttlSecs } = this.#options;
    const emptyLatency: LatencySummary = new LatencySketch().summary();
    const cache = JSON.stringify({
      fetchedAt: latest ? rfc3339(latest.fetchedAt) : null,
      ageSeconds: age ?? null,
      stale: age === undefined || age > Math.max(ttlSecs, refreshIntervalSecs),
      lastError: this.#lastError,
      refreshIntervalSeconds: refreshIntervalSecs,
    });
    const serverMetrics = JSON.stringify({
      connections: {
        total: this.#connections.value,
        active: this.#sources.connections(),
        disconnections: this.#disconnections.value,
      },
      rooms: {
        created: this.#roomsCreated.value,
        joined: this.#roomsJoined.value,
        deleted: this.#roomsDeleted.value,
      },
      performance: {
        queries: this.#queries?.sent.value ?? 0,
        room_creation_latency: this.#creationSketch.summary(),
        room_join_latency: this.#joinSketch.summary(),
        query_latency: this.#queries?.sketch.summary() ?? emptyLatency,
      },
      errors: {
        internal: this.#errorsInternal.value,
        websocket: this.#errorsWebsocket.value,
        total: this.#errors.value,
      },
      rateLimiting: {
        ...upstreamRateLimitWindows(),
        total_rejections: this.#rateLimitRejections.value,
        resets: 0,
      },
    });
    const snapshot = query.includeSnapshot
      ? `,"metricsSnapshot":${JSON.stringify(this.#snapshot(now))}`
      : "";
    return `{"timeRange":${JSON.stringify(query.timeRange)},${dashboard.rooms},"timestamp":"${
      rfc3339(now)
    }","dashboardCache":${cache.slice(0, -1)},"history":${dashboard.history}},` +
      `"serverMetrics":${serverMetrics}${snapshot}}`;
  }

  #snapshot(now: number): Record<string, unknown> {
    const latest = this.#history.at(-1);
    return upstreamSnapshot({
      total_connections: this.#connections.value,
      active_connections: this.#sources.connections(),
      disconnections: this.#disconnections.value,
      connection_errors: this.#errorsWebsocket.value,
      websocket_messages_dropped: this.#dropped,
      rooms_created: this.#roomsCreated.value,
      rooms_joined: this.#roomsJoined.value,
      room_creation_failures: this.#creationFailures,
      room_join_failures: this.#joinFailures,
      rooms_deleted: this.#roomsDeleted.value,
      room_cap_denials: this.#capDenials.value,
      room_code_collisions: this.#codeCollisions,
      room_creation_latency: this.#creationSketch.summary(),
      room_join_latency: this.#joinSketch.summary(),
      latency_histogram_clamped_samples: this.#clamped.value,
      ...(this.#queries
        ? { query_count: this.#queries.sent.value, query_latency: this.#queries.sketch.summary() }
        : {}),
      refresh_count: this.#refreshCount,
      refresh_failures: this.#refreshFailures.value,
      last_refresh_timestamp: latest ? Math.floor(latest.fetchedAt / 1000) : null,
      rate_limit_rejections: this.#rateLimitRejections.value,
      players_joined: this.#playersJoined.value,
      players_left: this.#playersLeft.value,
      game_data_messages: this.#gameData.value,
      validation_errors: this.#errorsValidation.value,
      internal_errors: this.#errorsInternal.value,
      websocket_errors: this.#errorsWebsocket.value,
      total_errors: this.#errors.value,
      empty_rooms_cleaned: this.#cleanupEmpty.value,
      inactive_rooms_cleaned: this.#cleanupInactive.value,
      expired_players_cleaned: this.#cleanupExpired.value,
      tokens_issued: this.#tokensIssued.value,
      sessions_active: this.#sources.heldSeats() ?? 0,
      validations_failed: this.#reconnectFailures.value,
      completions: this.#reconnectCompletions.value,
      events_buffered: this.#eventsBuffered.value,
    }, now);
  }

  #countError(counter: Counter): void {
    counter.inc();
    this.#errors.inc();
  }

  #timed(outcome: "created" | "joined" | "relayed", seconds: number): void {
    if (outcome === "created") {
      this.#creationLatency.observe(seconds);
      this.#creationSamples.inc();
      if (this.#creationSketch.record(seconds)) this.#clamped.inc();
    } else if (outcome === "joined") {
      this.#joinLatency.observe(seconds);
      this.#joinSamples.inc();
      if (this.#joinSketch.record(seconds)) this.#clamped.inc();
    } else if (outcome === "relayed") {
      this.#relayLatency.observe(seconds);
    }
  }

  #cacheAgeSeconds(now: number): number | undefined {
    const latest = this.#history.at(-1);
    return latest ? Math.max(0, Math.floor((now - latest.fetchedAt) / 1000)) : undefined;
  }
}
