/**
 * Server configuration (SERVER.md §2): one zod schema mirroring `config.example.json`, and the
 * loader that layers built-in defaults < config file < environment variables < `--port` and applies
 * the startup validation rules of §2.6.
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
import { resolve } from "node:path";
import { z } from "zod";

const REDACTED = "<redacted>";

// ---------------------------------------------------------------------------------------------
// Schema building blocks. Each carries its own rule text, which becomes the `<rule>` part of
// `invalid configuration: <key> = <value> (from <source>): <rule>`.

/** Error text for a type mismatch, or "is required" for a missing field of an array entry. */
function expected(what: string) {
  return (issue: { input?: unknown }) =>
    issue.input === undefined ? "is required" : `must be ${what}`;
}

function int(min = 0, max?: number) {
  const rule = max !== undefined
    ? `must be an integer between ${min} and ${max}`
    : min === 0
    ? "must be a non-negative integer"
    : `must be an integer >= ${min}`;
  const schema = z.int({ error: rule }).min(min, { error: rule });
  return max === undefined ? schema : schema.max(max, { error: rule });
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

/** Every key of SERVER.md §2.7 with its default, in the order of the tables. */
const ConfigFields = z.strictObject({
  port: int(0, 65535).default(3536),
  server: z.strictObject({
    // 1..=protocol.max_players_limit is a cross-field rule (crossFieldIssues).
    default_max_players: int(0).default(8),
    ping_timeout: int(2).default(30),
    room_cleanup_interval: int(1).default(60),
    max_rooms_per_game: int().default(1000),
    empty_room_timeout: int().default(300),
    inactive_room_timeout: int(1).default(3600),
    reconnection_window: int(1).default(300),
    event_buffer_size: int().default(100),
    event_buffer_max_bytes: int(1024).default(262144),
    enable_reconnection: bool(true),
    heartbeat_throttle_secs: int().default(30),
    region_id: text().default("default"),
    room_code_prefix: roomCodePrefix,
    max_spectators_per_room: int().default(0),
    drain_timeout_secs: int().default(10),
  }).prefault({}),
  rate_limit: z.strictObject({
    max_room_creations: int(1).default(5),
    time_window: int(1).default(60),
    max_join_attempts: int(1).default(20),
  }).prefault({}),
  protocol: z.strictObject({
    max_game_name_length: int().default(64),
    room_code_length: int(4, 32).default(6),
    max_player_name_length: int().default(32),
    max_players_limit: int(1, 255).default(100),
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
  }).prefault({}),
  security: z.strictObject({
    cors_origins: corsOrigins.default("*"),
    require_websocket_auth: bool(false),
    require_metrics_auth: bool(false),
    metrics_auth_token: nullableText(),
    max_message_size: int(1024, 16777216).default(65536),
    max_connections_per_ip: int(1).default(10),
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
    dashboard_cache_refresh_interval_secs: int(1).default(5),
    dashboard_cache_ttl_secs: int(1).default(30),
    dashboard_cache_history_window_secs: int(1).default(300),
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
  }).prefault({}),
  cluster: z.strictObject({
    redis_url: nullableText().refine(
      (url) => url === null || (/^rediss?:\/\/\S+$/i.test(url) && URL.canParse(url)),
      { error: "must be null or a redis:// or rediss:// URL" },
    ),
    instance_id: nullableText().refine((id) => id === null || INSTANCE_ID.test(id), {
      error: "must be null or 1-64 characters of A-Z a-z 0-9 . _ -",
    }),
    key_prefix: nonEmptyText().default("signal_fish:"),
    directory_ttl_secs: int(3).default(30),
    forward_timeout_ms: int(100).default(5000),
  }).prefault({}),
});

/** The effective configuration: every key present, defaults filled in, enums canonical. */
export type Config = z.output<typeof ConfigFields>;

type Path = readonly (string | number)[];
type Issue = { path: Path; message: string };

/** The §2.6 rules that relate two or more keys (single-key rules live in the schema). */
function crossFieldIssues(config: Config): Issue[] {
  const issues: Issue[] = [];
  const { server, protocol, security } = config;
  const { tls, token_binding: binding } = security.transport;
  const limit = protocol.max_players_limit;
  if (security.require_metrics_auth && (security.metrics_auth_token ?? "").trim() === "") {
    issues.push({
      path: ["security", "require_metrics_auth"],
      message: "Metrics authentication is enabled but no credentials are configured " +
        "(set security.metrics_auth_token)",
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
 * The configuration file's schema (SERVER.md §2.7) with every single-key and cross-key rule of
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

/** The built-in defaults (SERVER.md §2.7, equal to `config.example.json`). Frozen. */
export const DEFAULT_CONFIG: Config = deepFreeze(ConfigFields.parse({}));

// ---------------------------------------------------------------------------------------------
// The key tree, derived once from the schema. It tells the file walker which keys exist and which
// are objects to descend into, and the environment parser which type each key's value has.

type ScalarType = "int" | "bool" | "string" | "enum";
type Leaf = {
  kind: "leaf";
  path: string[];
  type: ScalarType | "list" | "json";
  element?: ScalarType;
  nullable: boolean;
};
type Branch = { kind: "branch"; path: string[]; children: Map<string, Node> };
type Node = Leaf | Branch;

/** Alternative key names (full path => canonical key of the same object). */
const ALIASES: Record<string, string> = {
  "server.heartbeat_db_throttle_secs": "heartbeat_throttle_secs",
};

function unwrap(schema: z.ZodType): { core: z.ZodType; nullable: boolean } {
  let core = schema;
  let nullable = false;
  for (;;) {
    if (core instanceof z.ZodNullable) nullable = true;
    if (
      core instanceof z.ZodNullable || core instanceof z.ZodDefault ||
      core instanceof z.ZodPrefault || core instanceof z.ZodOptional
    ) {
      core = core.unwrap() as z.ZodType;
    } else if (core instanceof z.ZodPipe) {
      // z.preprocess() is transform -> schema; .transform() is schema -> transform.
      core = (core.in instanceof z.ZodTransform ? core.out : core.in) as z.ZodType;
    } else {
      return { core, nullable };
    }
  }
}

function scalarType(schema: z.ZodType): ScalarType | undefined {
  const { core } = unwrap(schema);
  if (core instanceof z.ZodNumber) return "int";
  if (core instanceof z.ZodBoolean) return "bool";
  if (core instanceof z.ZodString) return "string";
  if (core instanceof z.ZodEnum) return "enum";
  return undefined;
}

function describe(schema: z.ZodType, path: string[]): Node {
  const { core, nullable } = unwrap(schema);
  if (core instanceof z.ZodObject) {
    const entries = Object.entries(core.shape as Record<string, z.ZodType>);
    return {
      kind: "branch",
      path,
      children: new Map(entries.map(([key, child]) => [key, describe(child, [...path, key])])),
    };
  }
  const scalar = scalarType(core);
  if (scalar) return { kind: "leaf", path, type: scalar, nullable };
  const element = core instanceof z.ZodArray ? scalarType(core.element as z.ZodType) : undefined;
  return element
    ? { kind: "leaf", path, type: "list", element, nullable }
    : { kind: "leaf", path, type: "json", nullable };
}

const KEY_TREE = describe(ConfigFields, []) as Branch;

function child(branch: Branch, key: string): Node | undefined {
  return branch.children.get(key) ??
    branch.children.get(ALIASES[[...branch.path, key].join(".")] ?? "");
}

/** The leaf (or, for a path that leaves the tree, the path itself) a value at `path` belongs to. */
function leafKey(path: Path): string {
  let node: Node = KEY_TREE;
  for (const [depth, segment] of path.entries()) {
    const next: Node | undefined = node.kind === "branch"
      ? child(node, String(segment))
      : undefined;
    if (!next) return path.slice(0, depth + 1).join(".");
    if (next.kind === "leaf") return next.path.join(".");
    node = next;
  }
  return path.join(".");
}

// ---------------------------------------------------------------------------------------------
// Error text and secrets.

const SECRET_KEY = /secret|token|password/i;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function redactUrlPassword(url: string): string {
  const scheme = url.indexOf("://");
  if (scheme < 0) return url.includes("@") ? REDACTED : url;
  const rest = url.slice(scheme + 3);
  const at = rest.lastIndexOf("@");
  const colon = rest.slice(0, Math.max(at, 0)).indexOf(":");
  if (at < 0 || colon < 0) return url;
  return `${url.slice(0, scheme + 3)}${rest.slice(0, colon)}:${REDACTED}${rest.slice(at)}`;
}

/** Hides secrets in a value of any shape (also unvalidated input, so matched by key name). */
function redactValue(value: unknown, key?: string | number): unknown {
  if (key === "redis_url" && typeof value === "string") return redactUrlPassword(value);
  if (typeof key === "string" && SECRET_KEY.test(key) && value != null && !isRecord(value)) {
    return REDACTED;
  }
  if (Array.isArray(value)) return value.map((item) => redactValue(item));
  if (isRecord(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValue(v, k)]));
  }
  return value;
}

function formatPath(path: Path): string {
  return path.reduce<string>((out, segment) => {
    if (typeof segment === "number") return `${out}[${segment}]`;
    if (out !== "" && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(segment)) {
      return `${out}[${JSON.stringify(segment)}]`;
    }
    return out === "" ? segment : `${out}.${segment}`;
  }, "");
}

function formatValue(path: Path, value: unknown): string {
  if (value === undefined) return "<missing>";
  const shown = redactValue(value, path.at(-1));
  return shown === REDACTED ? REDACTED : JSON.stringify(shown);
}

function configError(path: Path, value: unknown, source: string, rule: string): string {
  return `invalid configuration: ${formatPath(path)} = ${formatValue(path, value)} ` +
    `(from ${source}): ${rule}`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** JSON.parse's position only: V8's message may quote the (possibly secret) input. */
function parseJson(text: string): { ok: true; value: unknown } | { ok: false; rule: string } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    const position = /at position (\d+)/.exec(errorMessage(error))?.[1];
    return {
      ok: false,
      rule: `must be valid JSON${position ? ` (syntax error at position ${position})` : ""}`,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Collecting values from the file and the environment.

type Assigned = { leaf: Leaf; value: unknown; source: string };

class Collector {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  /** Winning value per leaf key (later sources overwrite earlier ones). */
  readonly values = new Map<string, Assigned>();
  /** Leaves whose value could not even be read; cross-field rules skip them. */
  readonly failed = new Set<string>();

  assign(leaf: Leaf, value: unknown, source: string): void {
    this.values.set(leaf.path.join("."), { leaf, value, source });
  }

  reject(path: Path, value: unknown, source: string, rule: string): void {
    this.errors.push(configError(path, value, source, rule));
    this.failed.add(leafKey(path));
  }

  /** The source of the value at `path`, which may lie inside a map or array leaf. */
  sourceOf(path: Path): string {
    return this.values.get(leafKey(path))?.source ?? "default";
  }

  /** The raw (pre-schema) input: the assigned leaves, minus `exclude`, as a nested object. */
  input(exclude: ReadonlySet<string> = new Set()): Record<string, unknown> {
    const root: Record<string, unknown> = {};
    for (const [key, { leaf, value }] of this.values) {
      if (exclude.has(key)) continue;
      let object = root;
      for (const segment of leaf.path.slice(0, -1)) {
        object = (object[segment] ??= {}) as Record<string, unknown>;
      }
      object[leaf.path.at(-1)!] = value;
    }
    return root;
  }
}

/** Walks one JSON object of the file (or of an object-valued env var) against the key tree. */
function collectObject(
  branch: Branch,
  object: Record<string, unknown>,
  source: string,
  out: Collector,
): void {
  for (const [key, value] of Object.entries(object)) {
    const path = [...branch.path, key];
    const alias = ALIASES[path.join(".")];
    if (alias !== undefined && Object.hasOwn(object, alias)) {
      out.reject(
        path,
        value,
        source,
        `alias of ${[...branch.path, alias].join(".")}; set only one`,
      );
      continue;
    }
    const node = child(branch, key);
    if (!node) {
      out.reject(path, value, source, "unknown key");
    } else if (node.kind === "leaf") {
      out.assign(node, value, source);
    } else if (isRecord(value)) {
      collectObject(node, value, source, out);
    } else {
      out.reject(path, value, source, "must be an object");
    }
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound ||
    (isRecord(error) && error.code === "ENOENT");
}

function collectFile(
  explicit: { path: string; origin: string } | undefined,
  cwd: string,
  read: (path: string) => string,
  out: Collector,
): void {
  const path = resolve(cwd, explicit?.path ?? "config.json");
  let text: string;
  try {
    text = read(path);
  } catch (error) {
    if (!explicit && isNotFound(error)) return; // ./config.json is optional
    const origin = explicit ? `from ${explicit.origin}` : "found in the working directory";
    out.errors.push(
      `invalid configuration: cannot read config file ${path} (${origin}): ${errorMessage(error)}`,
    );
    return;
  }
  const parsed = parseJson(text);
  if (!parsed.ok) {
    out.errors.push(`invalid configuration: config file ${path} ${parsed.rule}`);
  } else if (!isRecord(parsed.value)) {
    out.errors.push(`invalid configuration: config file ${path} must contain a JSON object`);
  } else {
    collectObject(KEY_TREE, parsed.value, `config file ${path}`, out);
  }
}

const ENV_PREFIXES = ["SIGNAL_FISH__", "SIGNAL_FISH_"];
const ENV_CONFIG_PATH = "SIGNAL_FISH_CONFIG_PATH";
const ENV_UNSUPPORTED = ["SIGNAL_FISH_CONFIG_JSON", "SIGNAL_FISH_CONFIG_STDIN"];

function resolveEnvName(name: string): Node | undefined {
  const prefix = ENV_PREFIXES.find((p) => name.startsWith(p));
  if (prefix === undefined || name.length === prefix.length) return undefined;
  let node: Node = KEY_TREE;
  for (const segment of name.slice(prefix.length).split("__")) {
    const next: Node | undefined = node.kind === "branch"
      ? child(node, segment.toLowerCase())
      : undefined; // no paths into maps and arrays
    if (!next) return undefined;
    node = next;
  }
  return node;
}

function parseScalar(type: ScalarType, text: string): unknown {
  if (type === "int") return /^\d+$/.test(text) ? Number(text) : text;
  if (type === "bool") {
    const lower = text.toLowerCase();
    if (lower === "true" || lower === "1") return true;
    if (lower === "false" || lower === "0") return false;
  }
  return text; // strings; anything unparsed is left for the schema to reject with its rule
}

/** Parses an environment value by its key's type (SERVER.md §2.3 table). */
function parseEnvValue(node: Node, raw: string): { ok: true; value: unknown } | {
  ok: false;
  rule: string;
} {
  if (node.kind === "branch") return parseJson(raw);
  if (node.type === "string") return { ok: true, value: node.nullable && raw === "" ? null : raw };
  const trimmed = raw.trim();
  if (node.nullable && trimmed === "") return { ok: true, value: null };
  switch (node.type) {
    case "json":
      return parseJson(trimmed);
    case "list":
      if (trimmed.startsWith("[")) return parseJson(trimmed);
      return {
        ok: true,
        value: trimmed === ""
          ? []
          : trimmed.split(",").map((item) => parseScalar(node.element!, item.trim())),
      };
    default:
      return { ok: true, value: parseScalar(node.type, trimmed) };
  }
}

/** True when the value at `path` may hold a secret, so its raw text must not be echoed. */
function holdsSecret(path: Path): boolean {
  const key = path.join(".");
  return ["security.metrics_auth_token", "security.authorized_apps", "cluster.redis_url"]
    .some((secret) => secret === key || secret.startsWith(`${key}.`));
}

function collectEnv(env: Record<string, string>, out: Collector): void {
  for (const name of ENV_UNSUPPORTED) {
    if (name in env) {
      out.errors.push(
        `invalid configuration: ${name} is not supported; put the configuration in a file and ` +
          `pass --config <path> (or set ${ENV_CONFIG_PATH})`,
      );
    }
  }
  // Sorted names put the documented SIGNAL_FISH_X before upstream's SIGNAL_FISH__X, so it is the
  // reported source when both forms agree.
  const byPath = new Map<string, { node: Node; names: string[] }>();
  for (const name of Object.keys(env).sort()) {
    if (!ENV_PREFIXES.some((p) => name.startsWith(p))) continue;
    if (name === ENV_CONFIG_PATH || ENV_UNSUPPORTED.includes(name)) continue;
    const node = resolveEnvName(name);
    if (!node) {
      out.warnings.push(`ignoring environment variable ${name}: not a configuration key`);
      continue;
    }
    const key = node.path.join(".");
    byPath.set(key, { node, names: [...byPath.get(key)?.names ?? [], name] });
  }
  // Whole objects first, so a variable naming one of their keys wins over them.
  const targets = [...byPath.values()].sort((a, b) => a.node.path.length - b.node.path.length);
  for (const { node, names } of targets) {
    const values: { name: string; value: unknown }[] = [];
    for (const name of names) {
      const result = parseEnvValue(node, env[name]!);
      if (result.ok) values.push({ name, value: result.value });
      else out.reject(node.path, holdsSecret(node.path) ? REDACTED : env[name], name, result.rule);
    }
    if (values.length < names.length) continue;
    const [first, ...others] = values as [(typeof values)[number], ...typeof values];
    const conflict = others.find((o) => JSON.stringify(o.value) !== JSON.stringify(first.value));
    if (conflict) {
      const rule = `conflicts with ${first.name} = ${formatValue(node.path, first.value)}; ` +
        "set only one of them";
      out.reject(node.path, conflict.value, conflict.name, rule);
    } else if (node.kind === "leaf") {
      out.assign(node, first.value, first.name);
    } else if (isRecord(first.value)) {
      collectObject(node, first.value, first.name, out);
    } else {
      out.reject(node.path, first.value, first.name, "must be a JSON object");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Validation.

/** Messages for issues the building blocks above do not word themselves. */
function fallbackRule(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code !== "invalid_type") return undefined;
  if (issue.input === undefined) return "is required";
  const article = /^[aeiou]/.test(issue.expected) ? "an" : "a";
  return `must be ${article} ${issue.expected === "record" ? "object" : issue.expected}`;
}

/** Expands zod issues into one [path, rule] per offending key. */
function issuesOf(error: z.ZodError): Issue[] {
  return error.issues.flatMap((issue) =>
    issue.code === "unrecognized_keys"
      ? issue.keys.map((key) => ({ path: [...issue.path, key] as Path, message: "unknown key" }))
      : [{ path: issue.path as Path, message: issue.message }]
  );
}

function valueAt(root: unknown, path: Path): unknown {
  let value = root;
  for (const segment of path) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, segment)) {
      return undefined;
    }
    value = (value as Record<string | number, unknown>)[segment];
  }
  return value;
}

function unreadableTlsFiles(
  config: Config,
  cwd: string,
  read: (path: string) => string,
  out: Collector,
): void {
  const { tls } = config.security.transport;
  if (!tls.enabled) return;
  for (const key of ["certificate_path", "private_key_path"] as const) {
    const file = tls[key];
    const path = ["security", "transport", "tls", key];
    if (file === null || file.trim() === "" || out.failed.has(path.join("."))) continue;
    try {
      read(resolve(cwd, file));
    } catch (error) {
      out.reject(path, file, out.sourceOf(path), `cannot read file: ${errorMessage(error)}`);
    }
  }
}

function configWarnings(config: Config): string[] {
  const { security } = config;
  const warnings: string[] = [];
  if (!security.require_metrics_auth) {
    warnings.push(
      "metrics endpoints are unauthenticated (security.require_metrics_auth is false)",
    );
  } else if ((security.metrics_auth_token ?? "").length < 16) {
    warnings.push("security.metrics_auth_token is shorter than 16 characters");
  }
  if (security.require_websocket_auth) {
    if (security.authorized_apps.length === 0) {
      warnings.push(
        "security.require_websocket_auth is true but security.authorized_apps is empty: " +
          "every Authenticate fails with INVALID_APP_ID",
      );
    }
    const withSecret = security.authorized_apps.filter((app) => app.app_secret !== null);
    if (withSecret.length > 0) {
      warnings.push(
        `apps with an app_secret accept only clients that send Authenticate.app_secret ` +
          `(released SDKs do not): ${withSecret.map((app) => app.app_id).join(", ")}`,
      );
    }
  }
  return warnings;
}

/** Where and how to load the configuration; everything external is injectable for tests. */
export interface LoadOptions {
  /** Config file named by `--config` (relative to `cwd`); it must exist and parse. */
  configPath?: string;
  /** `--port` override; beats every other source. */
  port?: number;
  /** The process environment (`SIGNAL_FISH_*` overrides, `SIGNAL_FISH_CONFIG_PATH`). */
  env: Record<string, string>;
  /**
   * Directory that relative paths and the implicit `./config.json` are resolved against.
   * @default Deno.cwd()
   */
  cwd?: string;
  /**
   * Reads a file as UTF-8 text (config file, TLS certificate and key); throws when unreadable.
   * @default Deno.readTextFileSync
   */
  readTextFile?: (path: string) => string;
}

/**
 * The outcome of {@linkcode loadConfig}: the effective configuration plus warnings for stderr, or
 * every error found, each a line `invalid configuration: <key> = <value> (from <source>): <rule>`.
 */
export type LoadResult =
  | { ok: true; config: Config; warnings: string[] }
  | { ok: false; errors: string[] };

/**
 * Builds the effective configuration from defaults < config file < environment < `port`
 * (SERVER.md §2.1) and validates it (§2.6), collecting all errors. Never throws.
 */
export function loadConfig(options: LoadOptions): LoadResult {
  const out = new Collector();
  try {
    const { env } = options;
    const cwd = options.cwd ?? Deno.cwd();
    const read = options.readTextFile ?? Deno.readTextFileSync;
    const envPath = env[ENV_CONFIG_PATH];
    const explicit = options.configPath !== undefined
      ? { path: options.configPath, origin: "--config" }
      : envPath // an empty value counts as unset
      ? { path: envPath, origin: ENV_CONFIG_PATH }
      : undefined;
    collectFile(explicit, cwd, read, out);
    collectEnv(env, out);
    if (options.port !== undefined) {
      out.assign(KEY_TREE.children.get("port") as Leaf, options.port, "--port");
    }

    const input = out.input();
    const parsed = ConfigFields.safeParse(input, { error: fallbackRule });
    const invalid = new Set(out.failed);
    if (!parsed.success) {
      for (const { path, message } of issuesOf(parsed.error)) {
        out.errors.push(configError(path, valueAt(input, path), out.sourceOf(path), message));
        invalid.add(leafKey(path));
      }
    }
    // Cross-field rules run on the valid keys, with defaults standing in for invalid ones.
    const config = parsed.success ? parsed.data : ConfigFields.safeParse(out.input(invalid)).data;
    if (config) {
      for (const { path, message } of crossFieldIssues(config)) {
        if (invalid.has(leafKey(path))) continue;
        const value = valueAt(input, path) ?? valueAt(config, path);
        out.errors.push(configError(path, value, out.sourceOf(path), message));
      }
      unreadableTlsFiles(config, cwd, read, out);
    }
    if (out.errors.length > 0 || !config) return { ok: false, errors: out.errors };
    return { ok: true, config, warnings: [...out.warnings, ...configWarnings(config)] };
  } catch (error) {
    // A bug here must still surface as a configuration failure, not an exception.
    return {
      ok: false,
      errors: [...out.errors, `cannot load configuration: ${errorMessage(error)}`],
    };
  }
}

/**
 * Returns a copy of `config` with the secrets (`app_secret`, `metrics_auth_token`, the password of
 * `cluster.redis_url`) replaced by `"<redacted>"`; unset secrets stay `null`.
 */
export function redactConfig(config: Config): Config {
  const copy = structuredClone(config);
  const { security, cluster } = copy;
  if (security.metrics_auth_token !== null) security.metrics_auth_token = REDACTED;
  for (const app of security.authorized_apps) {
    if (app.app_secret !== null) app.app_secret = REDACTED;
  }
  if (cluster.redis_url !== null) cluster.redis_url = redactUrlPassword(cluster.redis_url);
  return copy;
}

/** The stdout text of a successful `--validate-config` (SERVER.md §2.5), newline-terminated. */
export function validationSummary(config: Config): string {
  return [
    "Configuration validation passed",
    "",
    "Configuration summary:",
    `  Port: ${config.port}`,
    `  Storage backend: ${config.cluster.redis_url === null ? "InMemory" : "Redis"}`,
    `  TLS enabled: ${config.security.transport.tls.enabled}`,
    `  Metrics auth required: ${config.security.require_metrics_auth}`,
    `  Reconnection enabled: ${config.server.enable_reconnection}`,
    `  Max players per room: ${config.server.default_max_players}`,
    `  Deployment region: ${config.server.region_id}`,
    "",
  ].join("\n");
}

/**
 * Every environment variable name the configuration reads, upper case (SERVER.md §2.3): both
 * prefixes (`SIGNAL_FISH_` and `SIGNAL_FISH__`) for every key and object of the key tree, the
 * aliases, and the reserved names. Used when the process may read only `SIGNAL_FISH_*` variables
 * and so cannot list the environment.
 */
export function configEnvNames(): string[] {
  const paths: string[][] = [];
  const walk = (node: Node) => {
    if (node.path.length > 0) paths.push(node.path);
    if (node.kind === "branch") node.children.forEach(walk);
  };
  walk(KEY_TREE);
  for (const alias of Object.keys(ALIASES)) paths.push(alias.split("."));
  const names = new Set([ENV_CONFIG_PATH, ...ENV_UNSUPPORTED]);
  for (const path of paths) {
    for (const prefix of ENV_PREFIXES) names.add(prefix + path.join("__").toUpperCase());
  }
  return [...names].sort();
}

/**
 * The environment the configuration is loaded from. With full env access that is the whole
 * environment (so unknown `SIGNAL_FISH_*` names get their warning and lower-case spellings work);
 * with access limited to `SIGNAL_FISH_*` (the compiled executable, `--allow-env=SIGNAL_FISH_*`)
 * it is the upper-case names of {@linkcode configEnvNames} that are set.
 */
export function readConfigEnv(): Record<string, string> {
  try {
    return Deno.env.toObject();
  } catch (error) {
    if (
      !(error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied)
    ) {
      throw error;
    }
    const env: Record<string, string> = {};
    for (const name of configEnvNames()) {
      const value = Deno.env.get(name);
      if (value !== undefined) env[name] = value;
    }
    return env;
  }
}
