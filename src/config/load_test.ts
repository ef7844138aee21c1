import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadConfig, stateFileProblem, validationSummary } from "./load.ts";
import { DEFAULT_CONFIG } from "./schema.ts";
import { CWD, failed, FILE, load, loaded, withDefaults } from "./testing.ts";

Deno.test("loadConfig() with no file and no environment gives the defaults and a warning", () => {
  const { config, warnings } = loaded(load());
  assert.deepEqual(config, DEFAULT_CONFIG);
  assert.deepEqual(warnings, [
    "metrics endpoints are unauthenticated (security.require_metrics_auth is false)",
  ]);
});

Deno.test("config.example.json lists every key with its default and loads as DEFAULT_CONFIG", () => {
  const path = fileURLToPath(new URL("../../config.example.json", import.meta.url));
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
    `invalid configuration: server.defualt_max_players (from config file ${FILE}): unknown key`,
    `invalid configuration: colour (from config file ${FILE}): unknown key`,
  ]);
});

Deno.test("loadConfig() rejects unknown fields of authorized_apps entries", () => {
  const errors = failed(load({
    [FILE]: { security: { authorized_apps: [{ app_id: "a", app_name: "A", owner: "me" }] } },
  }));
  assert.deepEqual(errors, [
    `invalid configuration: security.authorized_apps[0].owner (from config file ${FILE}): unknown key`,
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
    `invalid configuration: config file ${FILE} is not valid JSON: syntax error at line 1, column 47`,
  ]);
  // Line and column as an editor shows them; the text itself (it may hold a secret) is not quoted.
  assert.deepEqual(
    failed(load({ [FILE]: '{\n  "port": 1,\n  "server": { "region_id": "é" x }\n}' })),
    [
      `invalid configuration: config file ${FILE} is not valid JSON: syntax error at line 3, column 32`,
    ],
  );
  assert.deepEqual(failed(load({ [FILE]: '{\n  "port": 1,\n' })), [
    `invalid configuration: config file ${FILE} is not valid JSON: unexpected end of input at line 3, column 1`,
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
    "ignoring environment variable SIGNAL_FISH_PROTOCOL__SDK_COMPATIBILITY__MINIMUM_VERSIONS__UNITY: not a configuration key (did you mean SIGNAL_FISH_PROTOCOL__SDK_COMPATIBILITY__MINIMUM_VERSIONS?)",
    "ignoring environment variable SIGNAL_FISH_TEST_MODE: not a configuration key",
  ]);
});

Deno.test("loadConfig() lists unknown variables with the documented name a typo is closest to", () => {
  const result = load({}, {
    SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYER: "4",
    SIGNAL_FISH_PROT: "1",
    SIGNAL_FISH_TEST_MODE: "1",
    SIGNAL_FISH_SERVER__MAX_PLAYERS: "4",
    SIGNAL_FISH_SERVER__TIMEOUT: "4",
  });
  assert.ok(result.ok);
  assert.deepEqual(result.unknownEnv, [
    { name: "SIGNAL_FISH_PROT", hint: "SIGNAL_FISH_PORT" },
    {
      name: "SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYER",
      hint: "SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS",
    },
    { name: "SIGNAL_FISH_SERVER__MAX_PLAYERS", hint: "SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS" },
    // Several keys of server.* contain TIMEOUT: no guess.
    { name: "SIGNAL_FISH_SERVER__TIMEOUT", hint: undefined },
    { name: "SIGNAL_FISH_TEST_MODE", hint: undefined },
  ]);
  assert.match(
    result.warnings.join("\n"),
    /SIGNAL_FISH_PROT: not a configuration key \(did you mean SIGNAL_FISH_PORT\?\)/,
  );
});

Deno.test("loadConfig() takes server.host from --host over the file and environment", () => {
  const { config } = loaded(load({ [FILE]: { server: { host: "10.0.0.1" } } }, {
    SIGNAL_FISH_SERVER__HOST: "::",
  }, { host: "::1" }));
  assert.equal(config.server.host, "::1");
  assert.equal(loaded(load({}, { SIGNAL_FISH_SERVER__HOST: "::" })).config.server.host, "::");
  assert.equal(
    loaded(load({ [FILE]: { server: { host: "localhost" } } })).config.server.host,
    "localhost",
  );
  assert.deepEqual(failed(load({}, {}, { host: "[::1]" })), [
    'invalid configuration: server.host = "[::1]" (from --host): must be an IPv4 or IPv6 address (without brackets) or a host name',
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
      "  Bind address: 0.0.0.0",
      "  Config file: none (built-in defaults and environment variables)",
      "",
    ].join("\n"),
  );
  assert.match(
    validationSummary(DEFAULT_CONFIG, "/etc/signal-fish/config.json"),
    / {2}Config file: \/etc\/signal-fish\/config\.json\n$/,
  );
  assert.match(validationSummary(DEFAULT_CONFIG), /Storage backend: InMemory/);
});

Deno.test("loadConfig() checks cluster.redis_tls_ca_path: a readable PEM certificate (docs/spec/SERVER.md §2.6 rule 18)", () => {
  const env = {
    SIGNAL_FISH_CLUSTER__REDIS_URL: "rediss://cache:6380",
    SIGNAL_FISH_CLUSTER__REDIS_TLS_CA_PATH: "certs/ca.pem",
  };
  const ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  assert.equal(
    loaded(load({ "/srv/app/certs/ca.pem": ca }, env)).config.cluster.redis_tls_ca_path,
    "certs/ca.pem",
  );
  assert.deepEqual(failed(load({}, env)), [
    'invalid configuration: cluster.redis_tls_ca_path = "certs/ca.pem" (from SIGNAL_FISH_CLUSTER__REDIS_TLS_CA_PATH): cannot read file: No such file: /srv/app/certs/ca.pem',
  ]);
  assert.deepEqual(failed(load({ "/srv/app/certs/ca.pem": "not a certificate\n" }, env)), [
    'invalid configuration: cluster.redis_tls_ca_path = "certs/ca.pem" (from SIGNAL_FISH_CLUSTER__REDIS_TLS_CA_PATH): is not a PEM file with a CA certificate',
  ]);
});

Deno.test("loadConfig() checks that server.state_file can be restored and saved (docs/spec/SERVER.md §2.6 rule 19)", () => {
  const seen: string[] = [];
  const check = (path: string) => {
    seen.push(path);
    return path.startsWith("/srv/app/") ? undefined : "this process may not write its directory";
  };
  const env = { SIGNAL_FISH_SERVER__STATE_FILE: "state/rooms.json" };
  assert.equal(
    loaded(load({}, env, { checkStateFile: check })).config.server.state_file,
    "state/rooms.json",
  );
  assert.deepEqual(
    failed(
      load({}, { SIGNAL_FISH_SERVER__STATE_FILE: "/tmp/rooms.json" }, { checkStateFile: check }),
    ),
    [
      'invalid configuration: server.state_file = "/tmp/rooms.json" (from SIGNAL_FISH_SERVER__STATE_FILE): this process may not write its directory',
    ],
  );
  assert.deepEqual(seen, ["/srv/app/state/rooms.json", "/tmp/rooms.json"]);
  loaded(load({}, {}, { checkStateFile: () => assert.fail("checked without a state_file") }));
});

Deno.test("stateFileProblem() probes the state file's directory, or the nearest one saving creates it in", () => {
  const dir = Deno.makeTempDirSync({ prefix: "signal-fish-state-" });
  try {
    assert.equal(stateFileProblem(`${dir}/rooms.json`), undefined);
    // Missing directories are created when saving: their nearest existing parent is probed.
    assert.equal(stateFileProblem(`${dir}/a/b/rooms.json`), undefined);
    Deno.writeTextFileSync(`${dir}/file`, "");
    assert.equal(stateFileProblem(`${dir}/file/rooms.json`), `${dir}/file is not a directory`);
    // The probe files are gone; nothing was created.
    assert.deepEqual([...Deno.readDirSync(dir)].map((entry) => entry.name), ["file"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
