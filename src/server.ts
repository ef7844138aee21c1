/**
 * Wires configuration, engine, edge, timers and HTTP routes into a running server.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Config } from "./config/schema.ts";
import { Engine, type EngineOptions } from "./engine/engine.ts";
import { roomCodeGenerator } from "./engine/room_code.ts";
import { maxConnections, readOpenFileLimit, TrustedProxies } from "./http/admission.ts";
import { listen, type Listener, type PendingLimits, type TlsPem } from "./http/listener.ts";
import { TlsReload } from "./http/tls_reload.ts";
import { bugFields, type LogStats } from "./logging.ts";
import { createHandler, type Handler } from "./http/routes.ts";
import type { RequestHead } from "./http/handover.ts";
import type { TokenBindingOptions } from "./transport/token_binding.ts";
import { type RateLimitOptions, RateLimits } from "./engine/rate_limits.ts";
import { appRoomScope, roomRoutes } from "./http/rooms.ts";
import { type AdminRoutes, adminRoutes } from "./http/admin.ts";
import { OperatorFeed } from "./metrics/operator_feed.ts";
import { MemoryTokenBuckets } from "./coordination/memory.ts";
import { listGames } from "./coordination/game_counts.ts";
import { MAX_TIMER_MS, startMaintenance } from "./maintenance.ts";
import {
  consumeState,
  lockStateFile,
  PeriodicStateSaves,
  restoreState,
  saveState,
  sha256TokenDigest,
  type StateFileLock,
  type StateFileOptions,
} from "./state_file.ts";
import { randomToken } from "./util/secrets.ts";
import { logEvent } from "./metrics/event_log.ts";
import { Edge } from "./transport/edge.ts";
import { ForwardBudget } from "./transport/forward_budget.ts";
import type { EdgeEvent } from "./transport/events.ts";
import { ServerMetrics } from "./metrics/server_metrics.ts";
import type { StatusBody } from "./http/metrics_routes.ts";
import denoJson from "../deno.json" with { type: "json" };

const log = getLogger(["signal-fish", "server"]);

/** Extension capabilities this build advertises in `ProtocolInfo` (docs/spec/EXTENSIONS.md). */
export const EXTENSION_CAPABILITIES: readonly string[] = ["targeted-game-data", "room-lookup"];

/** A running server. `await using server = await startServer(config)` closes it on scope exit. */
export interface SignalFishServer extends AsyncDisposable {
  /** Base HTTP URL, e.g. `http://127.0.0.1:3536`. */
  readonly url: string;
  /** WebSocket endpoint URL, e.g. `ws://127.0.0.1:3536/v2/ws`. */
  readonly wsUrl: string;
  /** The bound TCP port. */
  readonly port: number;
  /** The room engine (read-only use: stats, lookups). */
  readonly engine: Engine;
  /** The edge: connections, the inbound pipeline and the command entry (docs/spec/SERVER.md §8.2). */
  readonly edge: Edge;
  /** The server's metrics (docs/spec/SERVER.md §6). */
  readonly metrics: ServerMetrics;
  /** The operator API and console (docs/spec/EXTENSIONS.md E12); absent without `security.admin_token`. */
  readonly admin?: AdminRoutes;
  /** The operator console's figures and live events; absent without `security.admin_token`. */
  readonly operatorFeed?: OperatorFeed;
  /**
   * Graceful shutdown (docs/spec/SERVER.md §1.1): health turns 503, new upgrades get 503, every socket is
   * closed with 1001 "Server shutting down", then the listener stops. Idempotent. In cluster mode
   * a drain comes first (docs/spec/SERVER.md §8.7) unless `drain` is false or `cluster.drain_timeout_secs`
   * is 0; a second call while draining (a second SIGTERM, or SIGINT) ends the drain.
   */
  close(options?: { drain?: boolean }): Promise<void>;
}

/** Options that are not part of the configuration file. */
export interface StartOptions {
  /** Address to bind. @default config.server.host (docs/spec/SERVER.md §1.1 and its note) */
  hostname?: string;
  /**
   * Called once the listener is bound, before the "Listening" log line, with the URL a browser on
   * this machine opens (`main.ts` prints its plain-words banner here).
   */
  onListening?: (url: string) => void;
  /** Receives every edge, engine and route event (metrics, tests). */
  onEvent?: (event: EdgeEvent) => void;
  /**
   * The log sinks' counts (src/logging.ts `newLogStats()`, filled by the sinks `main.ts`
   * configures), exposed as `signal_fish_log_*_total`. @default none: those read 0
   */
  logStats?: LogStats;
  /**
   * The config file the configuration was read from (absolute path), named in the "Listening"
   * line. @default none (built-in defaults and environment variables)
   */
  configFile?: string;
}

/**
 * Settings this build accepts but cannot honour yet: their silent absence would weaken security
 * or split a cluster, so the server must refuse to start (`errors`, one line each). None today:
 * `cluster.redis_url` starts cluster mode (docs/spec/SERVER.md §8).
 */
export function unsupportedSettings(_config: Config): { errors: string[] } {
  return { errors: [] };
}

/** Maps the configuration onto engine settings (docs/spec/SERVER.md §2.7). */
export function engineOptions(config: Config): EngineOptions {
  const { server, protocol } = config;
  const names = protocol.player_name_validation;
  return {
    defaultMaxPlayers: server.default_max_players,
    maxPlayersLimit: protocol.max_players_limit,
    maxConnectionInfoBytes: protocol.max_connection_info_bytes,
    lobbyChanges: {
      capacity: config.rate_limit.max_lobby_changes,
      windowMs: config.rate_limit.time_window * 1000,
    },
    roomCodeLength: protocol.room_code_length,
    maxGameNameLength: protocol.max_game_name_length,
    // The operator console's search reads player names and ids from the directory (E12).
    operatorSearch: config.security.admin_token !== null,
    maxRoomsPerGame: server.max_rooms_per_game,
    maxSpectatorsPerRoom: server.max_spectators_per_room,
    emptyRoomTimeoutMs: server.empty_room_timeout * 1000,
    inactiveRoomTimeoutMs: server.inactive_room_timeout * 1000,
    nameRules: {
      maxLength: protocol.max_player_name_length,
      allowUnicodeAlphanumeric: names.allow_unicode_alphanumeric,
      allowSpaces: names.allow_spaces,
      allowLeadingTrailingWhitespace: names.allow_leading_trailing_whitespace,
      allowedSymbols: names.allowed_symbols,
      additionalAllowedCharacters: names.additional_allowed_characters ?? undefined,
    },
    defaultRelayType: config.relay_types.default_relay_type,
    relayTypeByGame: config.relay_types.game_relay_mappings,
    messagePack: protocol.enable_message_pack_game_data,
    sdk: {
      minimumVersions: protocol.sdk_compatibility.minimum_versions,
      recommendedVersions: protocol.sdk_compatibility.recommended_versions,
      capabilities: protocol.sdk_compatibility.capabilities,
      notes: protocol.sdk_compatibility.notes,
    },
    extensionCapabilities: [
      ...(server.enable_reconnection ? ["reconnection-token", "replay-truncated"] : []),
      ...EXTENSION_CAPABILITIES,
      ...(config.security.public_room_listing ? ["room-listing"] : []),
      "join-modes",
      ...(server.enable_reconnection ? ["presence-events"] : []),
      "authority-handover",
    ],
    newId: () => crypto.randomUUID(),
    newRoomCode: roomCodeGenerator(protocol.room_code_length, server.room_code_prefix),
    enableReconnection: server.enable_reconnection,
    reconnectionWindowMs: server.reconnection_window * 1000,
    eventBufferSize: server.event_buffer_size,
    eventBufferMaxBytes: server.event_buffer_max_bytes,
    eventBufferTotalMaxBytes: server.event_buffer_total_max_bytes,
    maxTokenRecords: server.max_token_records,
    maxRoomsPerIp: server.max_rooms_per_ip,
    maxRooms: server.max_rooms,
    maxHeldSeats: server.max_held_seats,
    maxHeldSeatsPerIp: server.max_held_seats_per_ip ?? 2 * config.security.max_connections_per_ip,
    newToken: newReconnectionToken,
    tokenDigest: sha256TokenDigest,
    ...securityOptions(config),
  };
}

/** App authentication and per-IP rate limits (docs/spec/SERVER.md §3.1–§3.4) from the configuration. */
function securityOptions(config: Config): Pick<EngineOptions, "auth" | "rateLimits"> {
  const { security, rate_limit } = config;
  return {
    auth: {
      required: security.require_websocket_auth,
      apps: security.authorized_apps.map((app) => ({
        appId: app.app_id,
        appSecret: app.app_secret ?? undefined,
        appName: app.app_name,
        maxRooms: app.max_rooms ?? undefined,
        maxPlayersPerRoom: app.max_players_per_room ?? undefined,
        rateLimitPerMinute: app.rate_limit_per_minute ?? undefined,
      })),
      timeoutMs: config.websocket.auth_timeout_secs * 1000,
      enforceSdkGate: config.protocol.sdk_compatibility.enforce,
    },
    rateLimits: new RateLimits(rateLimitOptions(rate_limit)),
  };
}

/** The `rate_limit.*` settings as {@linkcode RateLimits} options (docs/spec/SERVER.md §3.4). */
function rateLimitOptions(rate_limit: Config["rate_limit"]): RateLimitOptions {
  return {
    maxRoomCreations: rate_limit.max_room_creations,
    maxJoinAttempts: rate_limit.max_join_attempts,
    maxReconnectAttempts: rate_limit.max_reconnect_attempts,
    maxAuthFailures: rate_limit.max_auth_failures,
    windowMs: rate_limit.time_window * 1000,
  };
}

/** 32 bytes from the system's cryptographic RNG, base64url without padding (43 characters). */
export function newReconnectionToken(): string {
  return randomToken();
}

/**
 * The server's metrics (docs/spec/SERVER.md §6) for `config`, reading gauges from `engine` and the open
 * connection count from `connections` when scraped.
 */
export function serverMetrics(
  config: Config,
  engine: Engine,
  connections: () => number,
  logStats?: LogStats,
  bufferedBytes?: () => number,
): ServerMetrics {
  return new ServerMetrics({
    connections,
    players: () => engine.stats().players,
    rooms: () => engine.stats().rooms,
    heldSeats: () => engine.stats().heldSeats,
    eventsBuffered: () => engine.stats().eventsBuffered,
    replayBufferBytes: () => engine.stats().replayBufferBytes,
    replayTruncations: () => engine.stats().replayTruncations,
    heldSeatEvictions: () => engine.stats().heldSeatEvictions,
    heldSeatAddressEvictions: () => engine.stats().heldSeatAddressEvictions,
    unattendedReclaims: () => engine.stats().unattendedReclaims,
    ...(bufferedBytes ? { bufferedBytes } : {}),
    seatHistograms: () => engine.seatHistograms(),
    logStats,
  }, {
    reconnection: config.server.enable_reconnection,
    version: denoJson.version,
    refreshIntervalSecs: config.metrics.dashboard_cache_refresh_interval_secs,
    ttlSecs: config.metrics.dashboard_cache_ttl_secs,
    historyWindowSecs: config.metrics.dashboard_cache_history_window_secs,
    historyFields: config.metrics.dashboard_cache_history_fields,
    maxGames: config.metrics.dashboard_max_games,
  });
}

/** `server.state_file` and its size bound, or undefined when rooms do not survive a restart. */
function stateFileOptions(config: Config): StateFileOptions | undefined {
  const { state_file: path, state_file_max_bytes: maxBytes } = config.server;
  return path === null ? undefined : { path, maxBytes };
}

/**
 * The URL that reaches a server bound to `hostname:port` from this machine: a wildcard address
 * (`0.0.0.0`, `::`) becomes the loopback address, an IPv6 literal is bracketed.
 */
export function localUrl(hostname: string, port: number, tls = false): string {
  const host = hostname === "0.0.0.0"
    ? "127.0.0.1"
    : hostname === "::" || hostname === "[::]"
    ? "[::1]"
    : hostname.includes(":") && !hostname.startsWith("[")
    ? `[${hostname}]`
    : hostname;
  return `${tls ? "https" : "http"}://${host}:${port}`;
}

/**
 * Starts serving `config` and resolves once the listener is bound. With `server.state_file`,
 * rooms are restored from it first and saved to it at {@linkcode SignalFishServer.close}.
 */
export async function startServer(
  config: Config,
  options: StartOptions = {},
): Promise<SignalFishServer> {
  // The state file is this process's alone while it runs (docs/spec/SERVER.md §2.7): taken before
  // anything else starts, given up at shutdown or when the start fails.
  const stateFile = stateFileOptions(config);
  const held = stateFile ? lockStateFile(stateFile) : undefined;
  if (held !== undefined && !held.ok) throw new Error(held.reason);
  const lock = held?.lock;
  try {
    return await startLocked(config, options, stateFile, lock);
  } catch (error) {
    lock?.release();
    throw error;
  }
}

/** {@linkcode startServer} once the state file, if any, is locked; `lock` is released by `close`. */
async function startLocked(
  config: Config,
  options: StartOptions,
  stateFile: StateFileOptions | undefined,
  lock: StateFileLock | undefined,
): Promise<SignalFishServer> {
  const startedAt = Date.now();
  const instanceId = config.cluster.instance_id ?? crypto.randomUUID();
  let settings = engineOptions(config);
  // Cluster mode (docs/spec/SERVER.md §8): the Redis client is loaded only when configured.
  const cluster = config.cluster.redis_url === null
    ? undefined
    : (await import("./cluster/open.ts")).openCluster(config, instanceId, settings.newRoomCode);
  if (cluster) settings = clusterEngineOptions(settings, config, cluster);
  const engine = new Engine(settings);
  cluster?.setEngine(engine);
  // `edge.size` is read at scrape time, after `edge` exists.
  const metrics = serverMetrics(
    config,
    engine,
    () => edge.size,
    options.logStats,
    () => edge.bufferedBytes,
  );
  const adminToken = config.security.admin_token;
  const feed = adminToken === null ? undefined : new OperatorFeed({
    connections: () => edge.size,
    stats: () => engine.stats(),
    maintenance: () => cluster?.node.maintenance ?? engine.maintenance,
  }, cluster ? { instance: cluster.node.node } : {});
  const onEvent = observers(metrics, feed, options.onEvent);
  const edge = new Edge(engine, {
    maxMessageSize: config.security.max_message_size,
    maxQueuedBytes: config.websocket.max_buffered_bytes,
    maxBufferedBytesTotal: config.websocket.max_buffered_bytes_total,
    newId: () => crypto.randomUUID(),
    onEvent,
    ...(cluster ? clusterEdgeOptions(cluster, engine, settings, config) : {}),
  });
  const restored = stateFile ? restoreRooms(engine, edge, stateFile, cluster) : undefined;
  if (restored?.ok && config.server.state_save_interval_secs > 0) {
    // With snapshots while running, the restored rooms replace the restored file before anyone
    // is served, as a snapshot while running: a crash before the first periodic one restores them
    // again, and then marks every replay truncated, as what was relayed meanwhile is lost
    // (docs/spec/SERVER.md §2.7 `state_save_interval_secs`).
    saveState(engine, stateFile!, Date.now(), true);
  }
  if (cluster) {
    const { registerClusterMetrics } = await import("./cluster/open.ts");
    registerClusterMetrics(metrics.registry, cluster.node, edge, cluster.refusals);
    // Redis queries and their round trips (docs/spec/SERVER.md §6.3 #19, #23, #63).
    cluster.store.onQuery = metrics.queries();
    cluster.bus.onPublished = metrics.publishLatency();
    cluster.start();
    // The console's event stream carries every instance's events (docs/spec/EXTENSIONS.md E12).
    if (feed) feed.setRelay(cluster.operatorEvents((event) => feed.deliver(event)));
  }
  if (cluster) {
    // Written with the liveness key, summed over the instances for the operator overview.
    cluster.node.counts = () => {
      const stats = engine.stats();
      return {
        connections: edge.size,
        rooms: stats.rooms,
        players: stats.players,
        spectators: stats.spectators,
      };
    };
    // Written with the liveness key as `instance-games:<node>`, summed for the operator's counts.
    cluster.node.gameCounts = () => engine.gameCounts();
  }
  let draining = false;
  const status = () => ({
    ...statusBody(engine, edge, instanceId, startedAt, draining),
    ...(cluster ? { node: cluster.node.node, cluster_nodes: [...cluster.node.seen] } : {}),
  });
  const admin = feed && adminToken !== null
    ? adminRoutes({
      token: adminToken,
      directory: edge.directory,
      command: (command, now) => edge.command({ kind: "room", command }, now)!,
      // Cluster mode: every instance's, through the shared key (docs/spec/SERVER.md §8.3).
      setMaintenance: cluster
        ? (enabled) => cluster.node.setMaintenance(enabled)
        : (enabled, now) => void edge.command({ kind: "maintenance", enabled }, now),
      maintenance: cluster ? () => cluster.node.readMaintenance() : () => engine.maintenance,
      // Counts per game: the engine's live ones, or every instance's `instance-games:` key.
      games: cluster ? () => cluster.node.games() : () => listGames(engine.gameCounts()),
      feed,
      // Cluster mode: the instance's own figures, plus the cluster's (docs/spec/EXTENSIONS.md E12).
      status: () => ({
        ...status(),
        ...(cluster ? { cluster_totals: cluster.node.totals() } : {}),
      }),
      roomCodeLength: config.protocol.room_code_length,
      maxGameNameLength: config.protocol.max_game_name_length,
    })
    : undefined;
  const sockets = new OpenSockets();
  const connectionCap = maxConnections(config.security.max_connections, readOpenFileLimit());
  const handler = createHandler({
    edge,
    onEvent,
    isDraining: () => draining,
    isHealthy: cluster ? () => cluster.node.healthy : undefined,
    metrics: {
      metrics,
      status,
      authToken: config.security.require_metrics_auth ? config.security.metrics_auth_token : null,
    },
    roomRoutes: roomRoutes({
      directory: edge.directory,
      buckets: cluster ? cluster.store : new MemoryTokenBuckets(settings.rateLimits),
      publicRoomListing: config.security.public_room_listing,
      ...(cluster
        ? {
          inGrace: (now: number) => cluster.node.inGrace(now),
          reachable: () => cluster.store.reachable,
        }
        : {}),
      scope: appRoomScope(settings.auth),
      roomCodeLength: config.protocol.room_code_length,
      maxGameNameLength: config.protocol.max_game_name_length,
      onEvent,
    }),
    adminRoutes: admin,
  }, routeOptions(config, connectionCap.limit, (open) => sockets.set(open)));

  const hostname = options.hostname ?? config.server.host;
  const tls = readTls(config);
  const warnProxy = cluster && config.security.trusted_proxies.length === 0
    ? untrustedProxyWarning()
    : undefined;
  const listener = await listen({
    hostname,
    port: config.port,
    tls,
    handler: warnProxy ? warned(warnProxy, guarded(handler)) : guarded(handler),
    upgrade: warnProxy ? warned(warnProxy, handler.websocket) : handler.websocket,
    limits: pendingLimits(config),
    reusePort: config.server.reuse_port,
    onRefused: () => onEvent({ type: "rate_limited", scope: "connections" }),
  });
  const stopTlsReload = tls ? watchTls(config, tls, listener, metrics) : undefined;
  const stopGuard = guardProcess(metrics);
  const maintenance = startMaintenance(edge, {
    sweepIntervalMs: config.server.room_cleanup_interval * 1000,
    authTimeoutMs: config.security.require_websocket_auth
      ? config.websocket.auth_timeout_secs * 1000
      : undefined,
    dashboardIntervalMs: config.metrics.dashboard_cache_refresh_interval_secs * 1000,
    refreshDashboard: (now) => metrics.refreshDashboard(now),
    operatorFeed: feed && { intervalMs: feed.liveIntervalMs, tick: (now) => feed.tick(now) },
  });
  // A restored file goes once the server serves, so that a crash cannot bring back stale rooms;
  // with snapshots while running it was replaced above (docs/spec/SERVER.md §2.7).
  if (restored?.ok && config.server.state_save_interval_secs === 0) consumeState(stateFile!);
  const url = localUrl(hostname, listener.addr.port, tls !== undefined);
  options.onListening?.(url);
  logListening(config, {
    hostname,
    port: listener.addr.port,
    instanceId,
    connectionCap,
    tls: tls !== undefined,
    configFile: options.configFile,
  });

  // Rooms survive a restart: the snapshot is written once, at shutdown, or when the program is
  // unloaded without one (`deno run --watch` restarts without a signal).
  // With `state_save_interval_secs`, also while running, so that they survive a crash.
  const periodic = stateFile ? periodicSaves(config, engine, stateFile, metrics) : undefined;
  let saved = false;
  const save = () => {
    if (!stateFile || saved) return;
    saved = true;
    globalThis.removeEventListener("unload", save);
    periodic?.stop(); // a snapshot on its way is older than this one
    saveState(engine, stateFile, Date.now());
  };
  if (stateFile) globalThis.addEventListener("unload", save);

  let closing: Promise<void> | undefined;
  let endDrain: (() => void) | undefined;
  const close = (options: { drain?: boolean } = {}) => {
    if (closing) {
      endDrain?.();
      return closing;
    }
    closing = (async () => {
      draining = true;
      if (cluster && config.cluster.drain_timeout_secs > 0 && options.drain !== false) {
        await drainHome({
          config,
          engine,
          edge,
          node: cluster.node,
          listener,
          onEndable: (end) => endDrain = end,
        });
      }
      maintenance.stop();
      stopTlsReload?.();
      admin?.close(); // event streams would hold the listener open
      // Wait for the close handshakes too: exiting earlier would reset sockets whose 1001 close
      // frame is still queued behind game data (docs/spec/SERVER.md §1.1, §5.5).
      const socketsClosed = sockets.allClosed();
      edge.command({ kind: "close_all", code: 1001, reason: "Server shutting down" }, Date.now());
      // Every seat is held now, with what it was sent during the shutdown in its replay buffer.
      save();
      lock?.release();
      // Room releases and CLOSED envelopes are on their way; then the liveness key goes.
      await cluster?.node.stop();
      const timeout = Math.min(config.server.drain_timeout_secs * 1000, MAX_TIMER_MS);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all([listener.shutdown(), socketsClosed]),
        new Promise<void>((resolve) => timer = setTimeout(resolve, timeout)),
      ]);
      clearTimeout(timer);
      stopGuard();
      log.info("Server stopped");
    })();
    return closing;
  };

  return {
    url,
    wsUrl: `${url.replace(/^http/, "ws")}/v2/ws`,
    port: listener.addr.port,
    engine,
    edge,
    metrics,
    admin,
    operatorFeed: feed,
    close,
    [Symbol.asyncDispose]: close,
  };
}

type Cluster = import("./cluster/open.ts").OpenCluster;

/**
 * Engine options in cluster mode (docs/spec/SERVER.md §8.2): the edge takes the (global)
 * creation, join and reconnect tokens and claims codes before the engine sees a request, and reads
 * the global failed-Authenticate budget for it; room ids and codes come from the cluster's staging.
 */
function clusterEngineOptions(
  settings: EngineOptions,
  config: Config,
  cluster: Cluster,
): EngineOptions {
  return {
    ...settings,
    rateLimits: new RateLimits({
      ...rateLimitOptions(config.rate_limit),
      roomTokensElsewhere: true,
      authFailuresElsewhere: true,
    }),
    newId: cluster.staging.roomId,
    newRoomCode: cluster.staging.roomCode,
    takeoverTruncated: (conn) => cluster.node.router.takeoverTruncated(conn),
  };
}

/** The edge's cluster wiring (docs/spec/SERVER.md §8.4): node, router, directory, resolver. */
function clusterEdgeOptions(
  cluster: Cluster,
  engine: Engine,
  settings: EngineOptions,
  config: Config,
) {
  return {
    node: cluster.node.node,
    router: cluster.node.router,
    forwardTimeoutMs: config.cluster.forward_timeout_ms,
    directory: cluster.store,
    ...forwardBudget(config),
    ...(settings.rateLimits
      ? {
        authFailures: {
          buckets: cluster.store,
          limits: settings.rateLimits,
          appTokens: (appId: string, perMinute: number, now: number) =>
            cluster.store.takeAppToken(appId, perMinute, now),
        },
      }
      : {}),
    resolver: cluster.resolver(engine, {
      maxRoomsPerGame: settings.maxRoomsPerGame,
      maxRoomsPerIp: settings.maxRoomsPerIp ?? 0,
      enableReconnection: settings.enableReconnection,
      roomCodeLength: settings.roomCodeLength,
      maxGameNameLength: settings.maxGameNameLength,
      nameRules: settings.nameRules,
    }),
  };
}

/**
 * Cluster mode's forwarding budget from `cluster.max_forward_bytes_per_sec` and
 * `…_per_ip` (src/transport/forward_budget.ts). 0 lifts that kind of limit; none at all when
 * both are 0.
 */
function forwardBudget(config: Config): { forwardBudget?: ForwardBudget } {
  const { max_forward_bytes_per_sec: perConnection, max_forward_bytes_per_sec_per_ip: perIp } =
    config.cluster;
  if (perConnection === 0 && perIp === 0) return {};
  return {
    forwardBudget: new ForwardBudget({
      perConnection: perConnection === 0 ? Infinity : perConnection,
      perIp: perIp === 0 ? Infinity : perIp,
    }),
  };
}

/**
 * Restores the rooms of `server.state_file` into `engine` and applies their effects. In cluster
 * mode the node's first registration claims the restored rooms' codes (their directory writes
 * would only fail before Redis is connected); a room whose code another room took meanwhile is
 * closed (docs/spec/SERVER.md §2.7 note). Returns `restoreState`'s verdict.
 */
function restoreRooms(
  engine: Engine,
  edge: Edge,
  stateFile: StateFileOptions,
  cluster: Cluster | undefined,
): ReturnType<typeof restoreState> {
  const restored = restoreState(engine, stateFile, Date.now());
  if (!restored?.ok) return restored;
  const effects = restored.effects ?? [];
  edge.apply(
    cluster ? effects.filter((effect) => effect.kind !== "directory") : effects,
    Date.now(),
  );
  cluster?.node.restored(engine.directoryEntries(), (gameName, roomCode) => {
    const now = Date.now();
    edge.apply(engine.closeRoom(gameName, roomCode, now) ?? [], now);
  });
  return restored;
}

/**
 * The drain of docs/spec/SERVER.md §8.7: connections that are not members of a room homed here
 * are closed with 1001 (first before the liveness write, then as they leave and every 250 ms),
 * liveness says `draining`, rooms without seats are deleted at once; it ends when no room is homed here, at
 * `cluster.drain_timeout_secs` or when the function given to `onEndable` is called, and deletes
 * the rooms still open. On a shared port (`server.reuse_port`) the listener stops accepting first.
 */
export async function drainHome(
  { config, engine, edge, node, listener, onEndable }: {
    config: Config;
    engine: Engine;
    edge: Edge;
    node: Cluster["node"];
    listener: { addr: { port: number }; shutdown(): Promise<void> };
    onEndable: (end: () => void) => void;
  },
): Promise<void> {
  const timeoutMs = Math.min(config.cluster.drain_timeout_secs * 1000, MAX_TIMER_MS);
  log.info("Draining for at most {seconds} s: {rooms} rooms homed here", {
    seconds: timeoutMs / 1000,
    rooms: engine.stats().rooms,
  });
  // Connections that are no members here go before the liveness write, which waits on Redis:
  // a request of theirs must not be resolved on this node in that round trip (step 2 "at once").
  edge.command({ kind: "drain", final: false }, Date.now());
  await node.drain();
  if (config.server.reuse_port) {
    // On a shared port the kernel would keep handing new connections to this instance, only
    // to have their upgrades refused: leave the port to the other instances (docs/spec/SERVER.md
    // §1.1 note). Upgraded sockets stay.
    log.info("Draining: no longer accepting on shared port {port}", { port: listener.addr.port });
    void listener.shutdown();
  }
  const { promise: ended, resolve } = Promise.withResolvers<void>();
  onEndable(resolve);
  const step = () => {
    edge.command({ kind: "drain", final: false }, Date.now());
    if (engine.stats().rooms === 0) resolve();
  };
  const timer = setTimeout(resolve, timeoutMs);
  const interval = setInterval(step, 250);
  step();
  await ended;
  clearTimeout(timer);
  clearInterval(interval);
  edge.command({ kind: "drain", final: true }, Date.now());
  log.info("Drain over");
}

/**
 * The start line of docs/spec/SERVER.md §7 (§7.4 and its note) with the settings an operator
 * checks first: where it listens, the version, the config file (`null`: none), the state file
 * (`server.state_file`, `null`: off), the instance, auth, TLS and the connection cap.
 */
function logListening(
  config: Config,
  { hostname, port, instanceId, connectionCap, tls, configFile }: {
    hostname: string;
    port: number;
    instanceId: string;
    connectionCap: { limit: number; source: string };
    tls: boolean;
    configFile: string | undefined;
  },
): void {
  log.info("Listening on {hostname}:{port}", {
    hostname,
    port,
    version: denoJson.version,
    config_file: configFile ?? null,
    state_file: config.server.state_file,
    region_id: config.server.region_id,
    auth: config.security.require_websocket_auth,
    instance_id: instanceId,
    metrics_auth: config.security.require_metrics_auth,
    tls,
    max_connections: connectionCap.limit,
    max_connections_from: connectionCap.source,
  });
}

/**
 * The one observer of every edge, engine and route event: the event log, the metrics, the
 * operator feed (when the console is on), then the caller's `onEvent` (docs/spec/SERVER.md §6, §7).
 */
function observers(
  metrics: ServerMetrics,
  feed: OperatorFeed | undefined,
  extra: ((event: EdgeEvent) => void) | undefined,
): (event: EdgeEvent) => void {
  return (event) => {
    logEvent(event);
    metrics.observe(event);
    feed?.observe(event);
    extra?.(event);
  };
}

/** Counts open sockets and tells shutdown when the last one is gone. */
class OpenSockets {
  #open = 0;
  #allClosed: (() => void) | undefined;

  set(open: number): void {
    this.#open = open;
    if (open === 0) this.#allClosed?.();
  }

  /** Resolves once no socket is open (at once when none is). */
  allClosed(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#allClosed = resolve);
    if (this.#open === 0) this.#allClosed?.();
    return closed;
  }
}

/**
 * The `/v2/status` body (docs/spec/EXTENSIONS.md E8) of `engine` and `edge` right now, for an
 * instance started at `startedAt` (ms since the epoch; `uptime_secs` is whole seconds since).
 * Single-instance fields only: cluster mode adds `node` and `cluster_nodes` where it serves it.
 */
export function statusBody(
  engine: Engine,
  edge: Edge,
  instanceId: string,
  startedAt: number,
  draining: boolean,
): StatusBody {
  const stats = engine.stats();
  return {
    status: draining ? "draining" : "ok",
    version: denoJson.version,
    instance_id: instanceId,
    uptime_secs: Math.floor((Date.now() - startedAt) / 1000),
    rooms: stats.rooms,
    players: stats.players,
    spectators: stats.spectators,
    connections: edge.size,
    held_seats: stats.heldSeats,
  };
}

/** Route settings from the configuration (docs/spec/SERVER.md §1.8, §3.5, §3.9, §5.2). */
function routeOptions(
  config: Config,
  maxConnections: number,
  onOpenSockets: (open: number) => void,
): Parameters<typeof createHandler>[1] {
  const { security, websocket } = config;
  return {
    corsOrigins: security.cors_origins.trim() === "*"
      ? "*" as const
      : security.cors_origins.split(",").map((origin) => origin.trim()).filter(Boolean),
    maxConnectionsPerIp: security.max_connections_per_ip,
    maxMessageSize: security.max_message_size,
    idleTimeoutSecs: config.server.ping_timeout,
    maxConnections,
    trustedProxies: new TrustedProxies(security.trusted_proxies),
    ipv6PrefixLength: security.ipv6_prefix_length,
    tokenBinding: tokenBindingOptions(config),
    onOpenSockets,
    outbound: {
      maxBufferedBytes: websocket.max_buffered_bytes,
      enableBatching: websocket.enable_batching,
      batchSize: websocket.batch_size,
    },
  };
}

/**
 * The process-wide guard (SECURITY.md): an exception or rejection no handler caught is logged
 * and counted in `errors_internal`, and the process keeps serving instead of exiting. Returns the
 * function that removes the guard.
 */
function guardProcess(metrics: ServerMetrics): () => void {
  const onError = (event: ErrorEvent) => {
    event.preventDefault();
    metrics.internalError();
    log.error("Uncaught error, still serving: {error}", bugFields(event.error ?? event.message));
  };
  const onRejection = (event: PromiseRejectionEvent) => {
    event.preventDefault();
    metrics.internalError();
    log.error("Unhandled rejection, still serving: {error}", bugFields(event.reason));
  };
  globalThis.addEventListener("error", onError);
  globalThis.addEventListener("unhandledrejection", onRejection);
  return () => {
    globalThis.removeEventListener("error", onError);
    globalThis.removeEventListener("unhandledrejection", onRejection);
  };
}

/** `security.http.*` as listener limits (SECURITY.md). */
function pendingLimits(config: Config): PendingLimits {
  const http = config.security.http;
  return {
    headerTimeoutMs: http.header_timeout_secs * 1000,
    idleTimeoutMs: http.idle_timeout_secs * 1000,
    tlsHandshakeTimeoutMs: http.tls_handshake_timeout_secs * 1000,
    maxPending: http.max_pending_connections,
    maxPendingPerIp: http.max_pending_connections_per_ip,
    ipv6PrefixLength: config.security.ipv6_prefix_length,
  };
}

/**
 * Cluster mode without `security.trusted_proxies`: the first request that carries
 * `X-Forwarded-For` logs a warning, once. Instances of a cluster sit behind a load balancer, and
 * without trusting it every client shares its address, so the per-IP limits throttle everyone
 * (docs/spec/SERVER.md §8.7 "Reconnect storms"). One header lookup per HTTP request and upgrade
 * until then.
 */
function untrustedProxyWarning(): (request: RequestHead, info: Deno.ServeHandlerInfo) => void {
  let warned = false;
  return (request, info) => {
    if (!warned && request.headers.has("x-forwarded-for")) {
      warned = true;
      const addr = info.remoteAddr as Deno.Addr;
      log.warn(
        "A request from {peer} carries X-Forwarded-For but security.trusted_proxies is empty: " +
          "behind a load balancer every client shares its address and its per-IP limits; " +
          "list the load balancer in security.trusted_proxies",
        { peer: "hostname" in addr ? addr.hostname : "unknown" },
      );
    }
  };
}

/** `handle`, with `warn` looking at each request first. */
function warned<R extends RequestHead, T>(
  warn: (request: RequestHead, info: Deno.ServeHandlerInfo) => void,
  handle: (request: R, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => T,
): (request: R, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => T {
  return (request, info) => {
    warn(request, info);
    return handle(request, info);
  };
}

/** `handler` with a last-resort 500 for a request it throws on (docs/spec/SERVER.md §1.11). */
function guarded(handler: Handler): Handler {
  const failed = (request: Request, error: unknown) => {
    log.error("Cannot handle {method} {url}: {error}", {
      method: request.method,
      url: request.url,
      ...bugFields(error),
    });
    return new Response("Internal Server Error", { status: 500 });
  };
  return (request, info) => {
    try {
      const response = handler(request, info);
      return response instanceof Promise
        ? response.catch((error) => failed(request, error))
        : response;
    } catch (error) {
      return failed(request, error);
    }
  };
}

/**
 * Reads the PEM certificate chain and key of `security.transport.tls` (docs/spec/SERVER.md §3.10), paths
 * relative to the working directory; undefined when TLS is off. Throws when a file is unreadable
 * (startup then fails with exit 1; a file without a certificate or key, or a key that is not the
 * certificate's, fails in `listen`). `main.ts` has checked both already (§2.6 rule 2).
 */
function readTls(config: Config): TlsPem | undefined {
  const { enabled, certificate_path: cert, private_key_path: key } = config.security.transport.tls;
  if (!enabled) return undefined;
  if (cert === null || key === null) {
    throw new TypeError("Cannot serve TLS: certificate_path and private_key_path must be set");
  }
  return { cert: Deno.readTextFileSync(cert), key: Deno.readTextFileSync(key) };
}

/**
 * Snapshots while the server runs (`server.state_save_interval_secs`, docs/spec/SERVER.md §2.7
 * `state_file`), started at once; the time of the last one is
 * `signal_fish_state_file_saved_timestamp_seconds` (§6.3 #84). Undefined when the interval is 0
 * (a snapshot at shutdown only).
 */
function periodicSaves(
  config: Config,
  engine: Engine,
  stateFile: StateFileOptions,
  metrics: ServerMetrics,
): PeriodicStateSaves | undefined {
  const seconds = config.server.state_save_interval_secs;
  if (seconds === 0) return undefined;
  const saves = new PeriodicStateSaves(engine, stateFile, seconds * 1000);
  metrics.registry.gauge(
    "signal_fish_state_file_saved_timestamp_seconds",
    "When the last snapshot of the rooms was written to server.state_file while running, Unix seconds (0 before the first)",
    () => saves.lastSavedAt / 1000,
  );
  saves.start();
  return saves;
}

/**
 * Serves a renewed certificate without a restart (docs/spec/SERVER.md §3.10 note): the files of
 * `security.transport.tls` are looked at every minute (`src/http/tls_reload.ts`), and the served
 * certificate's end is `signal_fish_tls_certificate_expiry_timestamp_seconds` (§6.3 #83). Returns
 * what stops the checks.
 */
function watchTls(config: Config, served: TlsPem, listener: Listener, metrics: ServerMetrics) {
  const { certificate_path, private_key_path } = config.security.transport.tls;
  const reload = new TlsReload({
    certificatePath: certificate_path!,
    privateKeyPath: private_key_path!,
    served,
    apply: (pem) => listener.setTls(pem),
  });
  metrics.registry.gauge(
    "signal_fish_tls_certificate_expiry_timestamp_seconds",
    "When the TLS certificate served ends (notAfter), Unix seconds",
    () => (reload.validTo?.getTime() ?? 0) / 1000,
  );
  return reload.start();
}

/** `security.transport.token_binding` as route options, or undefined when it is off (§3.9). */
function tokenBindingOptions(config: Config): TokenBindingOptions | undefined {
  const binding = config.security.transport.token_binding;
  if (!binding.enabled) return undefined;
  return {
    required: binding.required,
    requireClientFingerprint: binding.require_client_fingerprint,
    subprotocol: binding.subprotocol,
  };
}
