/**
 * The configuration schema (docs/spec/SERVER.md §2.7): ONE zod schema mirroring `config.example.json`, with
 * every single-key rule in its building blocks and the §2.6 rules that relate several keys in
 * {@linkcode crossFieldIssues}. Loading (file, environment, flags) is `load.ts`; hiding secrets is
 * `redact.ts`.
 *
 * Enum values are accepted case-insensitively and stored in one canonical spelling:
 * `logging.level` ∈ trace|debug|info|warn|error (`warning` ⇒ `warn`, `err` ⇒ `error`) or `null`;
 * `logging.format` ∈ json|text (`pretty` is accepted as a synonym of `text`); `logging.rotation`
 * ∈ hourly|daily|never; `security.transport.tls.client_auth` ∈ none|optional|require;
 * `security.transport.token_binding.scheme` = sec_websocket_key_sha256; and
 * `metrics.dashboard_cache_history_fields` keep the spec's PascalCase (`ActiveRooms`, …).
 *
 * @module
 */
import { z } from "zod";

// ---------------------------------------------------------------------------------------------
// Schema building blocks. Each carries its own rule text, which becomes the `<rule>` part of
// `invalid configuration: <key> = <value> (from <source>): <rule>`.

/** Error text for a type mismatch, or "is required" for a missing field of an array entry. */
function expected(what: string) {
  return (issue: { input?: unknown }) =>
    issue.input === undefined ? "is required" : `must be ${what}`;
}

function int(min = 0, max?: number, note = "") {
  const rule =
    (max !== undefined
      ? `must be an integer between ${min} and ${max}`
      : min === 0
      ? "must be a non-negative integer"
      : `must be an integer >= ${min}`) + note;
  const schema = z.int({ error: rule }).min(min, { error: rule });
  return max === undefined ? schema : schema.max(max, { error: rule });
}

/**
 * The longest delay a timer takes, ms: 2^31 − 1 (about 24.8 days). A longer one overflows and
 * fires after 1 ms, so every key that sets a timer is bounded by it (docs/spec/SERVER.md §2.6).
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** The longest timer in whole seconds: 2147483. */
export const MAX_TIMER_SECS = Math.floor(MAX_TIMER_MS / 1000);

const TIMER_NOTE = " (it sets a timer, and a timer takes at most 2^31 - 1 ms, about 24.8 days)";

/** Seconds that set a timer: `min` to {@linkcode MAX_TIMER_SECS}. */
function timerSecs(min: number) {
  return int(min, MAX_TIMER_SECS, TIMER_NOTE);
}

const DURATION_NOTE =
  " (a duration: at most 2147483 s, about 24.8 days, the bound of the keys that set timers)";

/**
 * Seconds of a duration that sets no timer of its own (a window, a timeout the sweep checks): `min`
 * to {@linkcode MAX_TIMER_SECS}, like timers, so that no expiry derived from it (a Redis key's TTL
 * in cluster mode, a bucket's refill) is out of range.
 */
function durationSecs(min: number) {
  return int(min, MAX_TIMER_SECS, DURATION_NOTE);
}

/** Milliseconds that set a timer: `min` to {@linkcode MAX_TIMER_MS}. */
function timerMs(min: number) {
  return int(min, MAX_TIMER_MS, TIMER_NOTE);
}

function bool(fallback: boolean) {
  return z.boolean({ error: expected("a boolean") }).default(fallback);
}

function text() {
  return z.string({ error: expected("a string") });
}

function nonEmptyText() {
  return text().min(1, { error: "must not be empty" });
}

function nullableText() {
  return z.string({ error: expected("a string or null") }).nullable().default(null);
}

/** A case-insensitive enum whose output is always the canonical spelling in `values`. */
function looseEnum<const T extends readonly [string, ...string[]]>(
  values: T,
  synonyms: Record<string, T[number]> = {},
) {
  const canonical = new Map<string, string>([
    ...values.map((value) => [value.toLowerCase(), value] as const),
    ...Object.entries(synonyms),
  ]);
  const rule = `must be one of ${[...values, ...Object.keys(synonyms)].join("|")}`;
  return z.preprocess(
    (input) => typeof input === "string" ? canonical.get(input.toLowerCase()) ?? input : input,
    z.enum(values, { error: rule }),
  );
}

function list<T extends z.ZodType>(element: T) {
  return z.array(element, { error: expected("an array") });
}

function map<T extends z.ZodType>(value: T) {
  return z.record(z.string(), value, { error: expected("an object") });
}

// Strict semver 2.0.0 (semver.org's recommended expression).
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
const ORIGIN =
  /^https?:\/\/(?:\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)(?::(\d{1,5}))?$/i;
const INSTANCE_ID = /^[A-Za-z0-9._-]{1,64}$/;

function isOrigin(entry: string): boolean {
  const match = ORIGIN.exec(entry);
  return match !== null && Number(match[1] ?? 0) <= 65535;
}

const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** `server.host`: an IPv4 or IPv6 literal (no brackets) or a host name (docs/spec/SERVER.md §2.7). */
const bindHost = text().refine(
  (value) => [z.ipv4(), z.ipv6()].some((f) => f.safeParse(value).success) || HOST_NAME.test(value),
  { error: "must be an IPv4 or IPv6 address (without brackets) or a host name" },
);

function isIpOrCidr(entry: string): boolean {
  return [z.ipv4(), z.ipv6(), z.cidrv4(), z.cidrv6()].some((f) => f.safeParse(entry).success);
}

const semver = text().regex(SEMVER, { error: "must be a strict semver version (e.g. 1.2.3)" });

const corsOrigins = text().superRefine((value, ctx) => {
  if (value === "*") return;
  const bad = value.split(",").map((entry) => entry.trim()).find((entry) => !isOrigin(entry));
  if (bad !== undefined) {
    ctx.addIssue({
      code: "custom",
      message: `must be "*" or a comma-separated list of origins http(s)://host[:port] ` +
        `without path or trailing slash (invalid entry ${JSON.stringify(bad)})`,
    });
  }
});

/** Generated room codes use the prefix trimmed and upper-cased; blank means no prefix. */
const roomCodePrefix = z.string({ error: expected("a string or null") })
  .transform((value) => value.trim().toUpperCase())
  .refine((value) => /^[A-Z0-9]*$/.test(value), { error: "must be ASCII letters and digits" })
  .transform((value) => value === "" ? null : value)
  .nullable()
  .default(null);

const AuthorizedApp = z.strictObject({
  app_id: nonEmptyText(),
  app_secret: nonEmptyText().nullable().default(null),
  app_name: nonEmptyText(),
  max_rooms: int(1).nullable().default(null),
  max_players_per_room: int(1, 255).nullable().default(null),
  rate_limit_per_minute: int(1).nullable().default(null),
}, { error: expected("an object") });

const authorizedApps = list(AuthorizedApp).superRefine((apps, ctx) => {
  const seen = new Set<string>();
  apps.forEach((app, index) => {
    if (seen.has(app.app_id)) {
      ctx.addIssue({ code: "custom", path: [index, "app_id"], message: "must be unique" });
    }
    seen.add(app.app_id);
  });
});

const HISTORY_FIELDS = [
  "ActiveRooms",
  "RoomsByGame",
  "PlayerPercentiles",
  "GamePercentiles",
  "ActiveConnections",
  "RoomsCreated",
] as const;

/**
 * Every key of docs/spec/SERVER.md §2.7 with its default, in the order of the tables, without the cross-key
 * rules (the loader walks its shape to build the key tree, then applies the rules itself).
 */
export const ConfigFields = z.strictObject({
  port: int(0, 65535).default(3536),
  server: z.strictObject({
    // 1..=protocol.max_players_limit is a cross-field rule (crossFieldIssues).
    default_max_players: int(0).default(8),
    ping_timeout: timerSecs(2).default(30),
    room_cleanup_interval: timerSecs(1).default(60),
    max_rooms_per_game: int().default(1000),
    empty_room_timeout: durationSecs(0).default(300),
    inactive_room_timeout: durationSecs(1).default(3600),
    reconnection_window: durationSecs(1).default(300),
    event_buffer_size: int().default(100),
    event_buffer_max_bytes: int(1024).default(262144),
    enable_reconnection: bool(true),
    heartbeat_throttle_secs: int().default(30),
    region_id: text().default("default"),
    room_code_prefix: roomCodePrefix,
    max_spectators_per_room: int().default(100),
    max_rooms_per_ip: int().default(20),
    // Rooms homed on this instance, every game together (SECURITY.md); 0 = unlimited.
    max_rooms: int().default(20000),
    // Seats held for a reconnection on this instance (SECURITY.md); 0 = unlimited.
    max_held_seats: int().default(20000),
    // Of those, seats held for the connections of one client address key; 0 = unlimited, null =
    // twice security.max_connections_per_ip.
    max_held_seats_per_ip: int().nullable().default(null),
    event_buffer_total_max_bytes: int().default(67108864),
    max_token_records: int(1).default(200000),
    drain_timeout_secs: timerSecs(0).default(10),
    // Bind address (docs/spec/SERVER.md §1.1 note): all IPv4 interfaces by default; `deno task dev` passes
    // `--host 127.0.0.1`.
    host: bindHost.default("0.0.0.0"),
    // Several processes on one port (SO_REUSEPORT; docs/spec/SERVER.md §1.1 note, README "Cluster mode").
    reuse_port: bool(false),
    // Rooms survive a restart (single instance): snapshot path, null = off (README "Rooms
    // survive a restart"); a larger file is refused at start and not written at shutdown.
    state_file: nonEmptyText().nullable().default(null),
    state_file_max_bytes: int(1024).default(67108864),
    // Snapshots while running, so rooms survive a crash too (0 = only at shutdown).
    state_save_interval_secs: timerSecs(0).default(0),
  }).prefault({}),
  rate_limit: z.strictObject({
    max_room_creations: int(1).default(5),
    time_window: durationSecs(1).default(60),
    max_join_attempts: int(1).default(20),
    max_reconnect_attempts: int(1).default(60),
    max_auth_failures: int(1).default(10),
    max_lobby_changes: int(1).default(20),
  }).prefault({}),
  protocol: z.strictObject({
    max_game_name_length: int().default(64),
    room_code_length: int(4, 32).default(6),
    max_player_name_length: int().default(32),
    max_players_limit: int(1, 255).default(100),
    max_connection_info_bytes: int(64).default(4096),
    enable_message_pack_game_data: bool(true),
    sdk_compatibility: z.strictObject({
      enforce: bool(false),
      minimum_versions: map(semver).default(() => ({
        unity: "1.10.0",
        godot: "0.9.0",
        "godot-rust": "0.9.0",
        test: "1.0.0",
      })),
      recommended_versions: map(semver).default(() => ({ unity: "1.12.0", "godot-rust": "0.9.2" })),
      capabilities: map(list(nonEmptyText())).default(() => ({
        _default: ["reconnection", "spectator-mode", "rate-limits-v2"],
        unity: ["relay-matchbox", "relay-mirror", "relay-fishnet"],
      })),
      notes: map(text()).default(() => ({
        unity: "Upgrade to 1.12.x for deterministic reconnect handling and spectator patches.",
      })),
    }).prefault({}),
    player_name_validation: z.strictObject({
      allow_unicode_alphanumeric: bool(true),
      allow_spaces: bool(true),
      allow_leading_trailing_whitespace: bool(false),
      allowed_symbols: list(
        text().refine((s) => [...s].length === 1, { error: "must be exactly one character" }),
      ).default(() => ["-", "_"]),
      additional_allowed_characters: nullableText(),
    }).prefault({}),
  }).prefault({}),
  logging: z.strictObject({
    dir: text().default("logs"),
    filename: text().default("server.log"),
    rotation: looseEnum(["hourly", "daily", "never"]).default("daily"),
    level: looseEnum(["trace", "debug", "info", "warn", "error"], { warning: "warn", err: "error" })
      .nullable().default(null),
    enable_file_logging: bool(true),
    // `pretty` is not in §2.6 rule 16; accepted on request of the issue tracker (json|pretty).
    format: looseEnum(["json", "text"], { pretty: "text" }).default("json"),
    // Issue 14 item 11 (SECURITY.md): lines per event kind per second (0 = no limit), the size
    // cap of one log file (0 = none) and how many files are kept (0 = all).
    max_lines_per_event_per_second: int().default(20),
    max_file_size_bytes: int().default(104857600),
    max_files: int().default(10),
  }).prefault({}),
  security: z.strictObject({
    cors_origins: corsOrigins.default("*"),
    require_websocket_auth: bool(false),
    require_metrics_auth: bool(false),
    metrics_auth_token: nullableText(),
    // docs/spec/EXTENSIONS.md E12: the operator console's bearer token (null = console off, 404).
    admin_token: nullableText(),
    max_message_size: int(1024, 16777216).default(65536),
    max_connections_per_ip: int(1).default(10),
    // Per-IP limits count an IPv6 client by its network of this many bits (issue 14 item 10).
    ipv6_prefix_length: int(0, 128).default(64),
    max_connections: int(1).nullable().default(null),
    trusted_proxies: list(
      text().refine(isIpOrCidr, { error: "must be an IP address or CIDR range" }),
    ).default(() => []),
    public_room_listing: bool(false),
    // Connections that are not WebSockets (yet): timeouts and caps (SECURITY.md, issue 14).
    http: z.strictObject({
      header_timeout_secs: int(1, 300).default(5),
      idle_timeout_secs: int(1, 3600).default(5),
      tls_handshake_timeout_secs: int(1, 300).default(5),
      max_pending_connections: int(1).default(1024),
      max_pending_connections_per_ip: int(1).default(32),
    }).prefault({}),
    transport: z.strictObject({
      tls: z.strictObject({
        enabled: bool(false),
        certificate_path: nullableText(),
        private_key_path: nullableText(),
        client_ca_cert_path: nullableText(),
        client_auth: looseEnum(["none", "optional", "require"]).default("none"),
      }).prefault({}),
      token_binding: z.strictObject({
        enabled: bool(false),
        required: bool(false),
        require_client_fingerprint: bool(false),
        subprotocol: text().default("signalfish.tokenbinding.v1"),
        scheme: looseEnum(["sec_websocket_key_sha256"]).default("sec_websocket_key_sha256"),
      }).prefault({}),
    }).prefault({}),
    authorized_apps: authorizedApps.default(() => []),
  }).prefault({}),
  auth: z.strictObject({
    rate_limit_cache_cleanup_interval_secs: int().default(300),
    rate_limit_cache_retention_secs: int().default(172800),
    rate_limit_cache_alert_rows: int().default(100000),
  }).prefault({}),
  coordination: z.strictObject({
    dedup_cache: z.strictObject({
      capacity: int().default(100000),
      ttl_secs: int().default(60),
      cleanup_interval_secs: int().default(30),
    }).prefault({}),
    membership_snapshot_interval_secs: int().default(30),
  }).prefault({}),
  metrics: z.strictObject({
    dashboard_cache_refresh_interval_secs: timerSecs(1).default(5),
    dashboard_cache_ttl_secs: int(1).default(30),
    dashboard_cache_history_window_secs: int(1).default(300),
    // Games listed by name in the JSON body; the rest are one "(other)" entry (issue 14 item 9).
    dashboard_max_games: int(1).default(20),
    dashboard_cache_history_fields: list(looseEnum(HISTORY_FIELDS)).default(
      (): (typeof HISTORY_FIELDS)[number][] => [
        "ActiveRooms",
        "RoomsByGame",
        "PlayerPercentiles",
        "GamePercentiles",
      ],
    ),
  }).prefault({}),
  relay_types: z.strictObject({
    default_relay_type: text().default("matchbox"),
    game_relay_mappings: map(text()).default(() => ({})),
  }).prefault({}),
  websocket: z.strictObject({
    enable_batching: bool(true),
    batch_size: int(1).default(10),
    batch_interval_ms: int(1, 1000).default(16),
    auth_timeout_secs: int(5, 60).default(10),
    max_buffered_bytes: int(65536).default(1048576),
    // Bytes buffered for all connections of this instance together (SECURITY.md); 0 = none.
    max_buffered_bytes_total: int().default(268435456),
  }).prefault({}),
  cluster: z.strictObject({
    redis_url: nullableText().refine(
      (url) => url === null || (/^rediss?:\/\/\S+$/i.test(url) && URL.canParse(url)),
      { error: "must be null or a redis:// or rediss:// URL" },
    ),
    instance_id: nullableText().refine((id) => id === null || INSTANCE_ID.test(id), {
      error: "must be null or 1-64 characters of A-Z a-z 0-9 . _ -",
    }),
    key_prefix: nonEmptyText().default("signal_fish:").refine(
      (prefix) => !/[{}]/.test(prefix),
      { error: "must not contain { or }" },
    ),
    directory_ttl_secs: timerSecs(3).default(30),
    forward_timeout_ms: timerMs(100).default(5000),
    heartbeat_ms: timerMs(100).default(1000),
    envelope_window_ms: int(0, 50).default(0),
    // Bytes a second one connection, and one client address, may forward to rooms homed on other
    // instances before its reads wait (src/transport/forward_budget.ts); 0 = no limit.
    max_forward_bytes_per_sec: int(0).default(1048576),
    max_forward_bytes_per_sec_per_ip: int(0).default(4194304),
    drain_timeout_secs: timerSecs(0).default(900),
    redis_tls_ca_path: nullableText(),
    // Redis Sentinel (README "Run a cluster"): `host:port` of sentinels to ask for the primary of
    // `redis_sentinel_master`; `redis_url` then gives the scheme, credentials and database only.
    redis_sentinels: list(
      text().refine((address) => sentinelAddress(address) !== undefined, {
        error: "must be host:port (port 1-65535)",
      }),
    ).default(() => []),
    redis_sentinel_master: nonEmptyText().default("mymaster"),
    // The sentinels' own `requirepass` (and ACL user), and TLS to them (trusting
    // `redis_tls_ca_path` when set); the primary's credentials stay in `redis_url`.
    redis_sentinel_username: nullableText(),
    redis_sentinel_password: nullableText(),
    redis_sentinel_tls: bool(false),
  }).prefault({}),
});

/**
 * `host` and `port` of a `cluster.redis_sentinels` entry (`host:port`, `[v6]:port`), or
 * `undefined` when it is not one.
 */
export function sentinelAddress(address: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(address);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1] ?? match[2]!, port };
}

/** The effective configuration: every key present, defaults filled in, enums canonical. */
export type Config = z.output<typeof ConfigFields>;

/** A key's path in the configuration, array indexes as numbers. */
export type Path = readonly (string | number)[];
/** One broken rule: the key it is reported against and the rule text. */
export type Issue = { path: Path; message: string };

/** Shortest accepted `security.admin_token` (docs/spec/EXTENSIONS.md E12). */
export const MIN_ADMIN_TOKEN_LENGTH = 32;

/** The §2.6 rules that relate two or more keys (single-key rules live in the schema). */
export function crossFieldIssues(config: Config): Issue[] {
  const issues: Issue[] = [];
  const { server, protocol, security, cluster } = config;
  const { tls, token_binding: binding } = security.transport;
  if (cluster.heartbeat_ms > (cluster.directory_ttl_secs * 1000) / 3) {
    issues.push({
      path: ["cluster", "heartbeat_ms"],
      message: "must be at most cluster.directory_ttl_secs × 1000 / 3",
    });
  }
  if (cluster.redis_sentinels.length > 0 && cluster.redis_url === null) {
    issues.push({
      path: ["cluster", "redis_sentinels"],
      message: "needs cluster.redis_url (its scheme, credentials and database are used)",
    });
  }
  if (
    cluster.redis_tls_ca_path !== null &&
    !(cluster.redis_url ?? "").toLowerCase().startsWith("rediss://") &&
    !(cluster.redis_sentinel_tls && cluster.redis_sentinels.length > 0)
  ) {
    issues.push({
      path: ["cluster", "redis_tls_ca_path"],
      message: "needs a rediss:// cluster.redis_url or cluster.redis_sentinel_tls",
    });
  }
  for (const key of ["redis_sentinel_username", "redis_sentinel_password"] as const) {
    if (cluster[key] !== null && cluster.redis_sentinels.length === 0) {
      issues.push({ path: ["cluster", key], message: "needs cluster.redis_sentinels" });
    }
  }
  if (cluster.redis_sentinel_tls && cluster.redis_sentinels.length === 0) {
    issues.push({
      path: ["cluster", "redis_sentinel_tls"],
      message: "needs cluster.redis_sentinels",
    });
  }
  if (cluster.redis_sentinel_username !== null && cluster.redis_sentinel_password === null) {
    issues.push({
      path: ["cluster", "redis_sentinel_username"],
      message: "needs cluster.redis_sentinel_password",
    });
  }
  const limit = protocol.max_players_limit;
  if (security.require_metrics_auth && (security.metrics_auth_token ?? "").trim() === "") {
    issues.push({
      path: ["security", "require_metrics_auth"],
      message: "Metrics authentication is enabled but no credentials are configured " +
        "(set security.metrics_auth_token)",
    });
  }
  if (security.admin_token !== null && security.admin_token.length < MIN_ADMIN_TOKEN_LENGTH) {
    issues.push({
      path: ["security", "admin_token"],
      message:
        `must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters (docs/spec/EXTENSIONS.md E12); ` +
        "generate one with `openssl rand -hex 32`",
    });
  }
  if (tls.enabled) {
    for (const key of ["certificate_path", "private_key_path"] as const) {
      if ((tls[key] ?? "").trim() === "") {
        issues.push({
          path: ["security", "transport", "tls", key],
          message: "must be set when security.transport.tls.enabled is true",
        });
      }
    }
    if (tls.client_auth !== "none") {
      issues.push({
        path: ["security", "transport", "tls", "client_auth"],
        message: "must be none: client certificates are not verified (terminate TLS at a " +
          "trusted proxy and pass the fingerprint header instead)",
      });
    }
  }
  if (binding.enabled) {
    const path = ["security", "transport", "token_binding"];
    if (binding.subprotocol.trim() === "") {
      issues.push({ path: [...path, "subprotocol"], message: "must not be blank" });
    }
    if (binding.required && !tls.enabled && security.trusted_proxies.length === 0) {
      issues.push({
        path: [...path, "required"],
        message: "requires security.transport.tls.enabled or non-empty security.trusted_proxies",
      });
    }
    if (binding.require_client_fingerprint && security.trusted_proxies.length === 0) {
      issues.push({
        path: [...path, "require_client_fingerprint"],
        message: "requires non-empty security.trusted_proxies",
      });
    }
  }
  const playersRule = `must be between 1 and protocol.max_players_limit (${limit})`;
  if (server.default_max_players < 1 || server.default_max_players > limit) {
    issues.push({ path: ["server", "default_max_players"], message: playersRule });
  }
  if (
    server.room_code_prefix !== null && server.room_code_prefix.length >= protocol.room_code_length
  ) {
    issues.push({
      path: ["server", "room_code_prefix"],
      message: `must be shorter than protocol.room_code_length (${protocol.room_code_length})`,
    });
  }
  security.authorized_apps.forEach((app, index) => {
    if (app.max_players_per_room !== null && app.max_players_per_room > limit) {
      issues.push({
        path: ["security", "authorized_apps", index, "max_players_per_room"],
        message: playersRule,
      });
    }
  });
  return issues;
}

/**
 * The configuration file's schema (docs/spec/SERVER.md §2.7) with every single-key and cross-key rule of
 * §2.6 except TLS file readability. Parsing `{}` gives the built-in defaults.
 */
export const ConfigSchema = ConfigFields.superRefine((config, ctx) => {
  for (const { path, message } of crossFieldIssues(config)) {
    ctx.addIssue({ code: "custom", path: [...path], message });
  }
});

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    Object.values(value).forEach(deepFreeze);
    Object.freeze(value);
  }
  return value;
}

/** The built-in defaults (docs/spec/SERVER.md §2.7, equal to `config.example.json`). Frozen. */
export const DEFAULT_CONFIG: Config = deepFreeze(ConfigFields.parse({}));
