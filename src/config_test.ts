import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  type Config,
  ConfigSchema,
  DEFAULT_CONFIG,
  loadConfig,
  type LoadOptions,
  type LoadResult,
  redactConfig,
  validationSummary,
} from "./config.ts";

const CWD = "/srv/app";
const FILE = "/srv/app/config.json";

/** A fake file system: `files` maps absolute paths to contents; anything else is NotFound. */
function reader(files: Record<string, string | object> = {}): (path: string) => string {
  return (path) => {
    const content = files[path];
    if (content === undefined) throw new Deno.errors.NotFound(`No such file: ${path}`);
    return typeof content === "string" ? content : JSON.stringify(content);
  };
}

function load(
  files: Record<string, string | object> = {},
  env: Record<string, string> = {},
  options: Partial<LoadOptions> = {},
): LoadResult {
  return loadConfig({ env, cwd: CWD, readTextFile: reader(files), ...options });
}

function loaded(result: LoadResult): { config: Config; warnings: string[] } {
  if (!result.ok) assert.fail(`expected a valid configuration, got:\n${result.errors.join("\n")}`);
  return result;
}

function failed(result: LoadResult): string[] {
  if (result.ok) assert.fail("expected configuration errors");
  return result.errors;
}

/** DEFAULT_CONFIG with `patch` applied (deep, for objects; wholesale for arrays and scalars). */
function withDefaults(patch: Record<string, unknown>): Config {
  const merge = (base: unknown, over: unknown): unknown =>
    typeof over === "object" && over !== null && !Array.isArray(over)
      ? Object.fromEntries(
        Object.entries({ ...(base as object), ...over }).map((
          [k, v],
        ) => [k, k in over ? merge((base as Record<string, unknown>)[k], v) : v]),
      )
      : over;
  return merge(structuredClone(DEFAULT_CONFIG), patch) as Config;
}

Deno.test("DEFAULT_CONFIG has the documented defaults of SERVER.md §2.7", () => {
  assert.equal(DEFAULT_CONFIG.port, 3536);
  assert.equal(DEFAULT_CONFIG.server.default_max_players, 8);
  assert.equal(DEFAULT_CONFIG.server.room_code_prefix, null);
  assert.equal(DEFAULT_CONFIG.security.cors_origins, "*");
  assert.equal(DEFAULT_CONFIG.security.require_websocket_auth, false);
  assert.equal(DEFAULT_CONFIG.security.require_metrics_auth, false);
  assert.equal(DEFAULT_CONFIG.protocol.sdk_compatibility.enforce, false);
  assert.deepEqual(DEFAULT_CONFIG.protocol.sdk_compatibility.minimum_versions, {
    unity: "1.10.0",
    godot: "0.9.0",
    "godot-rust": "0.9.0",
    test: "1.0.0",
  });
  assert.equal(DEFAULT_CONFIG.logging.format, "json");
  assert.equal(DEFAULT_CONFIG.logging.level, null);
  assert.equal(DEFAULT_CONFIG.coordination.membership_snapshot_interval_secs, 30);
  assert.deepEqual(DEFAULT_CONFIG.security.authorized_apps, []);
  assert.equal(DEFAULT_CONFIG.cluster.key_prefix, "signal_fish:");
  assert.ok(Object.isFrozen(DEFAULT_CONFIG.server));
  assert.deepEqual(ConfigSchema.parse({}), DEFAULT_CONFIG);
});

Deno.test("loadConfig() with no file and no environment gives the defaults and a warning", () => {
  const { config, warnings } = loaded(load());
  assert.deepEqual(config, DEFAULT_CONFIG);
  assert.deepEqual(warnings, [
    "metrics endpoints are unauthenticated (security.require_metrics_auth is false)",
  ]);
});

Deno.test("config.example.json lists every key with its default and loads as DEFAULT_CONFIG", () => {
  const path = fileURLToPath(new URL("../config.example.json", import.meta.url));
  assert.deepEqual(JSON.parse(Deno.readTextFileSync(path)), DEFAULT_CONFIG);
  const { config } = loaded(loadConfig({ configPath: path, env: {} }));
  assert.deepEqual(config, DEFAULT_CONFIG);
});

Deno.test("loadConfig() merges fixed-schema objects from the file key by key", () => {
  const { config } = loaded(load({
    [FILE]: { server: { default_max_players: 4 }, security: { transport: { tls: {} } } },
  }));
  assert.deepEqual(config, withDefaults({ server: { default_max_players: 4 } }));
  assert.equal(config.server.ping_timeout, 30);
});

Deno.test("loadConfig() replaces maps and arrays from the file wholesale", () => {
  const { config } = loaded(load({
    [FILE]: {
      protocol: {
        sdk_compatibility: { minimum_versions: {}, capabilities: { unity: ["x"] } },
        player_name_validation: { allowed_symbols: ["."] },
      },
    },
  }));
  const sdk = config.protocol.sdk_compatibility;
  assert.deepEqual(sdk.minimum_versions, {});
  assert.deepEqual(sdk.capabilities, { unity: ["x"] });
  assert.deepEqual(
    sdk.recommended_versions,
    DEFAULT_CONFIG.protocol.sdk_compatibility.recommended_versions,
  );
  assert.deepEqual(config.protocol.player_name_validation.allowed_symbols, ["."]);
});

Deno.test("loadConfig() rejects unknown keys in the file, naming them", () => {
  const errors = failed(load({
    [FILE]: { server: { defualt_max_players: 4 }, colour: "blue", auth: {}, coordination: {} },
  }));
  assert.deepEqual(errors, [
    `invalid configuration: server.defualt_max_players = 4 (from config file ${FILE}): unknown key`,
    `invalid configuration: colour = "blue" (from config file ${FILE}): unknown key`,
  ]);
});

Deno.test("loadConfig() rejects unknown fields of authorized_apps entries", () => {
  const errors = failed(load({
    [FILE]: { security: { authorized_apps: [{ app_id: "a", app_name: "A", owner: "me" }] } },
  }));
  assert.deepEqual(errors, [
    `invalid configuration: security.authorized_apps[0].owner = "me" (from config file ${FILE}): unknown key`,
  ]);
});

Deno.test("loadConfig() accepts enum values in any case and stores the canonical spelling", () => {
  const { config } = loaded(load({
    [FILE]: {
      logging: { format: "Json", level: "WARNING", rotation: "Hourly" },
      security: { transport: { tls: { client_auth: "NONE" } } },
      metrics: { dashboard_cache_history_fields: ["activerooms", "ROOMSCREATED"] },
    },
  }));
  assert.equal(config.logging.format, "json");
  assert.equal(config.logging.level, "warn");
  assert.equal(config.logging.rotation, "hourly");
  assert.equal(config.security.transport.tls.client_auth, "none");
  assert.deepEqual(config.metrics.dashboard_cache_history_fields, ["ActiveRooms", "RoomsCreated"]);

  const aliases = loaded(
    load({}, { SIGNAL_FISH_LOGGING__LEVEL: "Err", SIGNAL_FISH_LOGGING__FORMAT: "pretty" }),
  );
  assert.equal(aliases.config.logging.level, "error");
  assert.equal(aliases.config.logging.format, "text");
  assert.deepEqual(failed(load({ [FILE]: { logging: { format: "xml" } } })), [
    `invalid configuration: logging.format = "xml" (from config file ${FILE}): must be one of json|text|pretty`,
  ]);
});

Deno.test("loadConfig() accepts heartbeat_db_throttle_secs as an alias, but not both names", () => {
  const { config } = loaded(load({ [FILE]: { server: { heartbeat_db_throttle_secs: 5 } } }));
  assert.equal(config.server.heartbeat_throttle_secs, 5);
  assert.deepEqual(
    failed(
      load({ [FILE]: { server: { heartbeat_db_throttle_secs: 5, heartbeat_throttle_secs: 6 } } }),
    ),
    [
      `invalid configuration: server.heartbeat_db_throttle_secs = 5 (from config file ${FILE}): alias of server.heartbeat_throttle_secs; set only one`,
    ],
  );
  const env = loaded(load({}, { SIGNAL_FISH_SERVER__HEARTBEAT_DB_THROTTLE_SECS: "7" }));
  assert.equal(env.config.server.heartbeat_throttle_secs, 7);
});

Deno.test("loadConfig() picks --config, then SIGNAL_FISH_CONFIG_PATH, then ./config.json", () => {
  const files = {
    [FILE]: { port: 1 },
    "/etc/env.json": { port: 2 },
    "/srv/app/conf/flag.json": { port: 3 },
  };
  assert.equal(loaded(load(files)).config.port, 1);
  assert.equal(loaded(load(files, { SIGNAL_FISH_CONFIG_PATH: "/etc/env.json" })).config.port, 2);
  const flag = load(files, { SIGNAL_FISH_CONFIG_PATH: "/etc/env.json" }, {
    configPath: "conf/flag.json",
  });
  assert.equal(loaded(flag).config.port, 3);
});

Deno.test("loadConfig() fails on a named file that is missing, not JSON or not an object", () => {
  assert.deepEqual(failed(load({}, {}, { configPath: "/nope.json" })), [
    "invalid configuration: cannot read config file /nope.json (from --config): No such file: /nope.json",
  ]);
  assert.match(
    failed(load({}, { SIGNAL_FISH_CONFIG_PATH: "/nope.json" }))[0]!,
    /cannot read config file \/nope\.json \(from SIGNAL_FISH_CONFIG_PATH\)/,
  );
  assert.deepEqual(failed(load({ [FILE]: '{"security": {"metrics_auth_token": "hunter2" x}' })), [
    `invalid configuration: config file ${FILE} must be valid JSON (syntax error at position 46)`,
  ]);
  assert.deepEqual(failed(load({ [FILE]: "[1]" })), [
    `invalid configuration: config file ${FILE} must contain a JSON object`,
  ]);
});

Deno.test("loadConfig() reports an unreadable implicit ./config.json but skips a missing one", () => {
  const denied = loadConfig({
    env: {},
    cwd: CWD,
    readTextFile: () => {
      throw new Deno.errors.PermissionDenied("denied");
    },
  });
  assert.deepEqual(failed(denied), [
    `invalid configuration: cannot read config file ${FILE} (found in the working directory): denied`,
  ]);
});

Deno.test("loadConfig() applies SIGNAL_FISH_ variables over the file", () => {
  const { config } = loaded(load({ [FILE]: { port: 1, server: { default_max_players: 4 } } }, {
    SIGNAL_FISH_PORT: "8080",
    SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS: "16",
  }));
  assert.equal(config.port, 8080);
  assert.equal(config.server.default_max_players, 16);
});

Deno.test("loadConfig() accepts the upstream SIGNAL_FISH__ form and any case in segments", () => {
  const { config } = loaded(load({}, {
    SIGNAL_FISH__SECURITY__REQUIRE_METRICS_AUTH: "true",
    SIGNAL_FISH__SECURITY__METRICS_AUTH_TOKEN: "0123456789abcdef",
    SIGNAL_FISH_server__Ping_Timeout: "40",
  }));
  assert.equal(config.security.require_metrics_auth, true);
  assert.equal(config.security.metrics_auth_token, "0123456789abcdef");
  assert.equal(config.server.ping_timeout, 40);
});

Deno.test("loadConfig() parses environment values by the key's type", () => {
  const { config } = loaded(load({}, {
    SIGNAL_FISH_SERVER__ENABLE_RECONNECTION: " FALSE ",
    SIGNAL_FISH_WEBSOCKET__ENABLE_BATCHING: "0",
    SIGNAL_FISH_SECURITY__PUBLIC_ROOM_LISTING: "1",
    SIGNAL_FISH_SECURITY__CORS_ORIGINS: "https://a.example,https://b.example",
    SIGNAL_FISH_SECURITY__METRICS_AUTH_TOKEN: "12345678901234567890",
    SIGNAL_FISH_SERVER__REGION_ID: " eu-west ",
    SIGNAL_FISH_SERVER__ROOM_CODE_PREFIX: "",
    SIGNAL_FISH_CLUSTER__INSTANCE_ID: "",
    SIGNAL_FISH_LOGGING__FORMAT: "Text",
    SIGNAL_FISH_SECURITY__TRUSTED_PROXIES: "10.0.0.0/8, 192.168.1.1",
    SIGNAL_FISH_PROTOCOL__PLAYER_NAME_VALIDATION__ALLOWED_SYMBOLS: '[",", "."]',
    SIGNAL_FISH_METRICS__DASHBOARD_CACHE_HISTORY_FIELDS: "",
    SIGNAL_FISH_SECURITY__AUTHORIZED_APPS: '[{"app_id":"a","app_name":"A"}]',
    SIGNAL_FISH_RELAY_TYPES__GAME_RELAY_MAPPINGS: '{"chess":"mirror"}',
    SIGNAL_FISH_WEBSOCKET: '{"batch_size": 3}',
    SIGNAL_FISH_WEBSOCKET__BATCH_INTERVAL_MS: "20",
  }));
  assert.equal(config.server.enable_reconnection, false);
  assert.equal(config.websocket.enable_batching, false);
  assert.equal(config.security.public_room_listing, true);
  assert.equal(config.security.cors_origins, "https://a.example,https://b.example");
  assert.equal(config.security.metrics_auth_token, "12345678901234567890");
  assert.equal(config.server.region_id, " eu-west ");
  assert.equal(config.server.room_code_prefix, null);
  assert.equal(config.cluster.instance_id, null);
  assert.equal(config.logging.format, "text");
  assert.deepEqual(config.security.trusted_proxies, ["10.0.0.0/8", "192.168.1.1"]);
  assert.deepEqual(config.protocol.player_name_validation.allowed_symbols, [",", "."]);
  assert.deepEqual(config.metrics.dashboard_cache_history_fields, []);
  assert.deepEqual(config.security.authorized_apps, [{
    app_id: "a",
    app_name: "A",
    app_secret: null,
    max_rooms: null,
    max_players_per_room: null,
    rate_limit_per_minute: null,
  }]);
  assert.deepEqual(config.relay_types.game_relay_mappings, { chess: "mirror" });
  assert.equal(config.websocket.batch_size, 3);
  assert.equal(config.websocket.batch_interval_ms, 20);
});

Deno.test("loadConfig() ignores variables that name no key, with a warning", () => {
  const { config, warnings } = loaded(load({}, {
    SIGNAL_FISH_TEST_MODE: "1",
    SIGNAL_FISH_PROTOCOL__SDK_COMPATIBILITY__MINIMUM_VERSIONS__UNITY: "2.0.0",
    SIGNAL_FISH_CONFIG_PATH: "",
    OTHER: "x",
  }));
  assert.deepEqual(config, DEFAULT_CONFIG);
  assert.deepEqual(warnings.slice(0, 2), [
    "ignoring environment variable SIGNAL_FISH_PROTOCOL__SDK_COMPATIBILITY__MINIMUM_VERSIONS__UNITY: not a configuration key",
    "ignoring environment variable SIGNAL_FISH_TEST_MODE: not a configuration key",
  ]);
});

Deno.test("loadConfig() fails when both variable forms set a key to different values", () => {
  assert.deepEqual(failed(load({}, { SIGNAL_FISH_PORT: "8080", SIGNAL_FISH__PORT: "9090" })), [
    "invalid configuration: port = 9090 (from SIGNAL_FISH__PORT): conflicts with SIGNAL_FISH_PORT = 8080; set only one of them",
  ]);
  const same = load({}, {
    SIGNAL_FISH_SERVER__ENABLE_RECONNECTION: "true",
    SIGNAL_FISH__SERVER__ENABLE_RECONNECTION: "1",
  });
  assert.equal(loaded(same).config.server.enable_reconnection, true);
});

Deno.test("loadConfig() refuses SIGNAL_FISH_CONFIG_JSON and SIGNAL_FISH_CONFIG_STDIN", () => {
  const errors = failed(load({}, { SIGNAL_FISH_CONFIG_JSON: "{}", SIGNAL_FISH_CONFIG_STDIN: "" }));
  assert.equal(errors.length, 2);
  assert.match(errors[0]!, /SIGNAL_FISH_CONFIG_JSON is not supported.*--config <path>/);
  assert.match(errors[1]!, /SIGNAL_FISH_CONFIG_STDIN is not supported.*--config <path>/);
});

Deno.test("loadConfig() names key, value, source and rule of an invalid value", () => {
  assert.deepEqual(failed(load({}, { SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS: "0" })), [
    "invalid configuration: server.default_max_players = 0 (from SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS): must be between 1 and protocol.max_players_limit (100)",
  ]);
  assert.deepEqual(failed(load({}, { SIGNAL_FISH_PORT: "80a" })), [
    'invalid configuration: port = "80a" (from SIGNAL_FISH_PORT): must be an integer between 0 and 65535',
  ]);
  assert.deepEqual(failed(load({}, { SIGNAL_FISH_SERVER__ENABLE_RECONNECTION: "yes" })), [
    'invalid configuration: server.enable_reconnection = "yes" (from SIGNAL_FISH_SERVER__ENABLE_RECONNECTION): must be a boolean',
  ]);
  assert.deepEqual(failed(load({ [FILE]: { websocket: { batch_interval_ms: 0 } } })), [
    `invalid configuration: websocket.batch_interval_ms = 0 (from config file ${FILE}): must be an integer between 1 and 1000`,
  ]);
  // A default that breaks a rule because of another key reports the default as the source.
  assert.deepEqual(failed(load({ [FILE]: { protocol: { max_players_limit: 4 } } })), [
    "invalid configuration: server.default_max_players = 8 (from default): must be between 1 and protocol.max_players_limit (4)",
  ]);
});

Deno.test("loadConfig() collects every error before failing", () => {
  const errors = failed(load(
    {
      [FILE]: {
        server: { ping_timeout: 1, room_cleanup_interval: 0 },
        websocket: { auth_timeout_secs: 61, max_buffered_bytes: 1000 },
        rate_limit: { time_window: "60" },
        protocol: { room_code_length: 3 },
        logging: { level: "loud" },
        security: { require_websocket_auth: "yes" },
      },
    },
    { SIGNAL_FISH_PORT: "70000" },
  ));
  assert.deepEqual(errors.map((line) => line.split(" = ")[0]), [
    "invalid configuration: port",
    "invalid configuration: server.ping_timeout",
    "invalid configuration: server.room_cleanup_interval",
    "invalid configuration: rate_limit.time_window",
    "invalid configuration: protocol.room_code_length",
    "invalid configuration: logging.level",
    "invalid configuration: security.require_websocket_auth",
    "invalid configuration: websocket.auth_timeout_secs",
    "invalid configuration: websocket.max_buffered_bytes",
  ]);
});

Deno.test("loadConfig() never shows secrets in error messages", () => {
  const errors = failed(load(
    {
      [FILE]: {
        security: {
          metrics_auth_token: 123456789,
          authorized_apps: [{ app_id: "a", app_name: "", app_secret: "s3cr3t-app" }],
        },
        cluster: { redis_url: "http://user:hunter2@cache:6379" },
      },
    },
    {
      SIGNAL_FISH_SECURITY__AUTHORIZED_APPS: '[{"app_secret":"s3cr3t-env"',
      SIGNAL_FISH__SECURITY__AUTHORIZED_APPS: "[]",
    },
  ));
  const text = errors.join("\n");
  for (const secret of ["123456789", "s3cr3t", "hunter2"]) assert.ok(!text.includes(secret), text);
  assert.deepEqual(errors, [
    "invalid configuration: security.authorized_apps = <redacted> (from SIGNAL_FISH_SECURITY__AUTHORIZED_APPS): must be valid JSON (syntax error at position 27)",
    `invalid configuration: security.metrics_auth_token = <redacted> (from config file ${FILE}): must be a string or null`,
    `invalid configuration: security.authorized_apps[0].app_name = "" (from config file ${FILE}): must not be empty`,
    `invalid configuration: cluster.redis_url = "http://user:<redacted>@cache:6379" (from config file ${FILE}): must be null or a redis:// or rediss:// URL`,
  ]);
});

Deno.test("redactConfig() hides app secrets, the metrics token and the Redis password", () => {
  const { config } = loaded(load({
    [FILE]: {
      security: {
        require_metrics_auth: true,
        metrics_auth_token: "0123456789abcdef",
        authorized_apps: [
          { app_id: "a", app_name: "A", app_secret: "s3cr3t" },
          { app_id: "b", app_name: "B" },
        ],
      },
      cluster: { redis_url: "rediss://user:hunter2@cache:6380/1" },
    },
  }));
  const redacted = redactConfig(config);
  assert.equal(redacted.security.metrics_auth_token, "<redacted>");
  assert.deepEqual(redacted.security.authorized_apps.map((app) => app.app_secret), [
    "<redacted>",
    null,
  ]);
  assert.equal(redacted.cluster.redis_url, "rediss://user:<redacted>@cache:6380/1");
  assert.equal(config.security.metrics_auth_token, "0123456789abcdef", "input left unchanged");
  assert.equal(redactConfig(DEFAULT_CONFIG).security.metrics_auth_token, null);
  assert.equal(
    redactConfig(withDefaults({ cluster: { redis_url: "redis://cache:6379" } })).cluster.redis_url,
    "redis://cache:6379",
  );
});

Deno.test("loadConfig() validates security.cors_origins as * or a list of origins", () => {
  const ok = loaded(load({}, {
    SIGNAL_FISH_SECURITY__CORS_ORIGINS:
      " https://a.example , http://localhost:5173,http://[::1]:8080",
  }));
  assert.equal(
    ok.config.security.cors_origins,
    " https://a.example , http://localhost:5173,http://[::1]:8080",
  );
  for (
    const bad of [
      "https://a.example/",
      "https://a.example/app",
      "ftp://a.example",
      "a.example",
      "https://a.example,",
      "*,https://a.example",
      "http://a:99999",
    ]
  ) {
    const errors = failed(load({}, { SIGNAL_FISH_SECURITY__CORS_ORIGINS: bad }));
    assert.equal(errors.length, 1, bad);
    assert.match(
      errors[0]!,
      /^invalid configuration: security\.cors_origins = .* must be "\*" or a comma-separated list of origins/,
    );
  }
});

Deno.test("loadConfig() requires a metrics token when metrics auth is on and warns about a short one", () => {
  assert.deepEqual(failed(load({}, { SIGNAL_FISH__SECURITY__REQUIRE_METRICS_AUTH: "true" })), [
    "invalid configuration: security.require_metrics_auth = true (from SIGNAL_FISH__SECURITY__REQUIRE_METRICS_AUTH): Metrics authentication is enabled but no credentials are configured (set security.metrics_auth_token)",
  ]);
  const short = loaded(load({}, {
    SIGNAL_FISH_SECURITY__REQUIRE_METRICS_AUTH: "true",
    SIGNAL_FISH_SECURITY__METRICS_AUTH_TOKEN: "short",
  }));
  assert.deepEqual(short.warnings, ["security.metrics_auth_token is shorter than 16 characters"]);
});

Deno.test("loadConfig() warns when auth has no apps or apps have secrets", () => {
  const none = loaded(load({}, { SIGNAL_FISH_SECURITY__REQUIRE_WEBSOCKET_AUTH: "true" }));
  assert.match(
    none.warnings.join("\n"),
    /authorized_apps is empty: every Authenticate fails with INVALID_APP_ID/,
  );
  const secrets = loaded(load({
    [FILE]: {
      security: {
        require_websocket_auth: true,
        authorized_apps: [
          { app_id: "a", app_name: "A", app_secret: "x" },
          { app_id: "b", app_name: "B" },
          { app_id: "c", app_name: "C", app_secret: "y" },
        ],
      },
    },
  }));
  assert.match(secrets.warnings.join("\n"), /apps with an app_secret .*: a, c$/m);
});

Deno.test("loadConfig() lets the port option beat the environment and the file", () => {
  const result = load({ [FILE]: { port: 1 } }, { SIGNAL_FISH_PORT: "8080" }, { port: 0 });
  assert.equal(loaded(result).config.port, 0);
  assert.deepEqual(failed(load({}, {}, { port: 70000 })), [
    "invalid configuration: port = 70000 (from --port): must be an integer between 0 and 65535",
  ]);
});

Deno.test("loadConfig() applies the TLS and token-binding rules", () => {
  const tls = { security: { transport: { tls: { enabled: true, client_auth: "Require" } } } };
  assert.deepEqual(failed(load({ [FILE]: tls })).map((e) => e.split(" = ")[0]), [
    "invalid configuration: security.transport.tls.certificate_path",
    "invalid configuration: security.transport.tls.private_key_path",
    "invalid configuration: security.transport.tls.client_auth",
  ]);
  const files = {
    [FILE]: {
      security: {
        transport: {
          tls: { enabled: true, certificate_path: "cert.pem", private_key_path: "/k.pem" },
        },
      },
    },
    "/srv/app/cert.pem": "CERT",
  };
  assert.deepEqual(failed(load(files)), [
    `invalid configuration: security.transport.tls.private_key_path = "/k.pem" (from config file ${FILE}): cannot read file: No such file: /k.pem`,
  ]);
  assert.ok(loaded(load({ ...files, "/k.pem": "KEY" })).config.security.transport.tls.enabled);

  const binding = {
    enabled: true,
    required: true,
    require_client_fingerprint: true,
    subprotocol: " ",
  };
  assert.deepEqual(
    failed(load({ [FILE]: { security: { transport: { token_binding: binding } } } }))
      .map((e) => e.split(" (from")[0]),
    [
      'invalid configuration: security.transport.token_binding.subprotocol = " "',
      "invalid configuration: security.transport.token_binding.required = true",
      "invalid configuration: security.transport.token_binding.require_client_fingerprint = true",
    ],
  );
  const behindProxy = {
    security: {
      trusted_proxies: ["10.0.0.1"],
      transport: { token_binding: { ...binding, subprotocol: "x" } },
    },
  };
  assert.ok(loaded(load({ [FILE]: behindProxy })).config.security.transport.token_binding.required);
});

Deno.test("loadConfig() normalises room_code_prefix and checks it against room_code_length", () => {
  assert.equal(
    loaded(load({ [FILE]: { server: { room_code_prefix: " ab1 " } } })).config.server
      .room_code_prefix,
    "AB1",
  );
  assert.equal(
    loaded(load({ [FILE]: { server: { room_code_prefix: "   " } } })).config.server
      .room_code_prefix,
    null,
  );
  assert.deepEqual(failed(load({ [FILE]: { server: { room_code_prefix: "a-b" } } })), [
    `invalid configuration: server.room_code_prefix = "a-b" (from config file ${FILE}): must be ASCII letters and digits`,
  ]);
  assert.deepEqual(failed(load({ [FILE]: { server: { room_code_prefix: "abcdef" } } })), [
    `invalid configuration: server.room_code_prefix = "abcdef" (from config file ${FILE}): must be shorter than protocol.room_code_length (6)`,
  ]);
});

Deno.test("loadConfig() validates proxies, apps, versions, symbols and cluster keys", () => {
  const errors = failed(load({
    [FILE]: {
      security: {
        trusted_proxies: ["10.0.0.0/8", "::1", "fe80::/10", "10.0.0.0/33", "proxy.local"],
        authorized_apps: [
          { app_id: "a", app_name: "A", max_players_per_room: 101 },
          { app_id: "a", app_name: "A2", rate_limit_per_minute: 0 },
          { app_name: "B", max_rooms: 0 },
        ],
      },
      protocol: {
        sdk_compatibility: {
          recommended_versions: { unity: "v1.2.3" },
          capabilities: { unity: [""] },
        },
        player_name_validation: { allowed_symbols: ["-", "ab"] },
      },
      cluster: {
        redis_url: "redis//nope",
        instance_id: "has space",
        key_prefix: "",
        directory_ttl_secs: 2,
      },
    },
  }));
  assert.deepEqual(errors.map((e) => e.split(" (from")[0]), [
    'invalid configuration: protocol.sdk_compatibility.recommended_versions.unity = "v1.2.3"',
    'invalid configuration: protocol.sdk_compatibility.capabilities.unity[0] = ""',
    'invalid configuration: protocol.player_name_validation.allowed_symbols[1] = "ab"',
    'invalid configuration: security.trusted_proxies[3] = "10.0.0.0/33"',
    'invalid configuration: security.trusted_proxies[4] = "proxy.local"',
    "invalid configuration: security.authorized_apps[1].rate_limit_per_minute = 0",
    "invalid configuration: security.authorized_apps[2].app_id = <missing>",
    "invalid configuration: security.authorized_apps[2].max_rooms = 0",
    'invalid configuration: cluster.redis_url = "redis//nope"',
    'invalid configuration: cluster.instance_id = "has space"',
    'invalid configuration: cluster.key_prefix = ""',
    "invalid configuration: cluster.directory_ttl_secs = 2",
  ]);
  assert.match(errors[6]!, /: is required$/);

  assert.deepEqual(
    failed(
      load({
        [FILE]: {
          security: {
            authorized_apps: [{ app_id: "a", app_name: "A" }, { app_id: "a", app_name: "B" }],
          },
        },
      }),
    ),
    [
      `invalid configuration: security.authorized_apps[1].app_id = "a" (from config file ${FILE}): must be unique`,
    ],
  );
  const limits = { max_players_limit: 50 };
  assert.deepEqual(
    failed(
      load({
        [FILE]: {
          protocol: limits,
          security: { authorized_apps: [{ app_id: "a", app_name: "A", max_players_per_room: 51 }] },
        },
      }),
    ),
    [
      `invalid configuration: security.authorized_apps[0].max_players_per_room = 51 (from config file ${FILE}): must be between 1 and protocol.max_players_limit (50)`,
    ],
  );
});

Deno.test("loadConfig() rejects null for keys that are not nullable", () => {
  assert.deepEqual(failed(load({ [FILE]: { server: { region_id: null }, security: null } })), [
    `invalid configuration: security = null (from config file ${FILE}): must be an object`,
    `invalid configuration: server.region_id = null (from config file ${FILE}): must be a string`,
  ]);
});

Deno.test("validationSummary() prints the --validate-config summary", () => {
  const config = withDefaults({
    port: 9000,
    cluster: { redis_url: "redis://cache:6379" },
    server: { region_id: "eu-west" },
  });
  assert.equal(
    validationSummary(config),
    [
      "Configuration validation passed",
      "",
      "Configuration summary:",
      "  Port: 9000",
      "  Storage backend: Redis",
      "  TLS enabled: false",
      "  Metrics auth required: false",
      "  Reconnection enabled: true",
      "  Max players per room: 8",
      "  Deployment region: eu-west",
      "",
    ].join("\n"),
  );
  assert.match(validationSummary(DEFAULT_CONFIG), /Storage backend: InMemory/);
});
