/**
 * Wires configuration, engine, hub and HTTP routes into a running server.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Config } from "./config.ts";
import { Engine, type EngineOptions } from "./engine/engine.ts";
import { roomCodeGenerator } from "./engine/room_code.ts";
import { createHandler } from "./http/routes.ts";
import { Hub, type HubEvent } from "./transport/hub.ts";

const log = getLogger(["signal-fish", "server"]);

const MAX_TIMER_MS = 2 ** 31 - 1;

/** Extension capabilities this build advertises in `ProtocolInfo` (EXTENSIONS.md). */
export const EXTENSION_CAPABILITIES: readonly string[] = ["targeted-game-data"];

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
  /** The connection hub. */
  readonly hub: Hub;
  /**
   * Graceful shutdown (SERVER.md §1.1): health turns 503, new upgrades get 503, every socket is
   * closed with 1001 "Server shutting down", then the listener stops. Idempotent.
   */
  close(): Promise<void>;
}

/** Options that are not part of the configuration file. */
export interface StartOptions {
  /** Address to bind. @default "0.0.0.0" (SERVER.md §1.1) */
  hostname?: string;
  /** Receives every hub and engine event (metrics, tests). */
  onEvent?: (event: HubEvent) => void;
}

/**
 * Settings this build accepts but cannot honour yet. `errors` are settings whose silent absence
 * would weaken security or split a cluster (the server must refuse to start); `warnings` name
 * features that are simply off (the server starts without them).
 */
export function unsupportedSettings(config: Config): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  const refuse = (key: string, what: string) =>
    errors.push(`${key} is set, but ${what} is not available in this build`);
  const { security, cluster, logging } = config;
  if (security.require_websocket_auth) {
    refuse("security.require_websocket_auth", "app authentication");
  }
  if (security.transport.tls.enabled) refuse("security.transport.tls.enabled", "TLS");
  if (security.transport.token_binding.enabled) {
    refuse("security.transport.token_binding.enabled", "token binding");
  }
  if (cluster.redis_url !== null) refuse("cluster.redis_url", "cluster mode");
  const off: string[] = [];
  off.push("per-IP rate limits (rate_limit.*)");
  if (logging.enable_file_logging) off.push("file logging (logging.enable_file_logging)");
  if (security.trusted_proxies.length > 0) off.push("trusted proxies (security.trusted_proxies)");
  if (security.public_room_listing) off.push("room listing (security.public_room_listing)");
  if (security.max_connections !== null) {
    off.push("global connection cap (security.max_connections)");
  }
  warnings.push(`not available in this build yet, so off: ${off.join(", ")}`);
  return { errors, warnings };
}

/** Maps the configuration onto engine settings (SERVER.md §2.7). */
export function engineOptions(config: Config): EngineOptions {
  const { server, protocol } = config;
  const names = protocol.player_name_validation;
  return {
    defaultMaxPlayers: server.default_max_players,
    maxPlayersLimit: protocol.max_players_limit,
    roomCodeLength: protocol.room_code_length,
    maxGameNameLength: protocol.max_game_name_length,
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
    extensionCapabilities: server.enable_reconnection
      ? ["reconnection-token", "replay-truncated", ...EXTENSION_CAPABILITIES]
      : EXTENSION_CAPABILITIES,
    newId: () => crypto.randomUUID(),
    newRoomCode: roomCodeGenerator(protocol.room_code_length, server.room_code_prefix),
    enableReconnection: server.enable_reconnection,
    reconnectionWindowMs: server.reconnection_window * 1000,
    eventBufferSize: server.event_buffer_size,
    eventBufferMaxBytes: server.event_buffer_max_bytes,
    newToken: newReconnectionToken,
  };
}

/** 32 bytes from the system's cryptographic RNG, base64url without padding (43 characters). */
export function newReconnectionToken(): string {
  return crypto.getRandomValues(new Uint8Array(32)).toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });
}

/** Starts serving `config` and resolves once the listener is bound. */
export async function startServer(
  config: Config,
  options: StartOptions = {},
): Promise<SignalFishServer> {
  const engine = new Engine(engineOptions(config));
  const hub = new Hub(engine, {
    maxMessageSize: config.security.max_message_size,
    newId: () => crypto.randomUUID(),
    onEvent: options.onEvent,
  });
  let draining = false;
  const corsOrigins = config.security.cors_origins.trim() === "*"
    ? "*" as const
    : config.security.cors_origins.split(",").map((origin) => origin.trim()).filter(Boolean);
  const handler = createHandler({ hub, isDraining: () => draining }, {
    corsOrigins,
    maxConnectionsPerIp: config.security.max_connections_per_ip,
    idleTimeoutSecs: config.server.ping_timeout,
    outbound: {
      maxBufferedBytes: config.websocket.max_buffered_bytes,
      enableBatching: config.websocket.enable_batching,
      batchSize: config.websocket.batch_size,
    },
  });

  const hostname = options.hostname ?? "0.0.0.0";
  const { promise: listening, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const httpServer = Deno.serve({
    hostname,
    port: config.port,
    onListen: resolve,
  }, (request, info) => {
    try {
      return handler(request, info);
    } catch (error) {
      log.error("Cannot handle {method} {url}: {error}", {
        method: request.method,
        url: request.url,
        error,
      });
      return new Response("Internal Server Error", { status: 500 });
    }
  });
  const addr = await listening;
  const sweep = setInterval(
    () => hub.sweep(Date.now()),
    // Timers treat delays above 2^31 - 1 ms as 1 ms; clamp so a huge interval stays huge.
    Math.min(config.server.room_cleanup_interval * 1000, MAX_TIMER_MS),
  );
  // Held-seat expiry is processed within a second of the window's end (PROTOCOL.md §7.11.3).
  const tick = setInterval(() => hub.tick(Date.now()), 1000);
  const host = hostname === "0.0.0.0" ? "127.0.0.1" : hostname;
  const url = `http://${host}:${addr.port}`;
  log.info("Listening on {hostname}:{port}", {
    hostname,
    port: addr.port,
    region_id: config.server.region_id,
    auth: config.security.require_websocket_auth,
  });

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      draining = true;
      clearInterval(sweep);
      clearInterval(tick);
      hub.closeAll(1001, "Server shutting down", Date.now());
      const timeout = Math.min(config.server.drain_timeout_secs * 1000, MAX_TIMER_MS);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        httpServer.shutdown(),
        new Promise<void>((resolve) => timer = setTimeout(resolve, timeout)),
      ]);
      clearTimeout(timer);
      log.info("Server stopped");
    })();
    return closing;
  };

  return {
    url,
    wsUrl: `${url.replace(/^http/, "ws")}/v2/ws`,
    port: addr.port,
    engine,
    hub,
    close,
    [Symbol.asyncDispose]: close,
  };
}
