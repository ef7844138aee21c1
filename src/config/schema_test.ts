import assert from "node:assert/strict";
import {
  ConfigSchema,
  DEFAULT_CONFIG,
  MAX_TIMER_MS,
  MAX_TIMER_SECS,
  sentinelAddress,
} from "./schema.ts";
import { failed, FILE, load, loaded } from "./testing.ts";

Deno.test("DEFAULT_CONFIG has the documented defaults of docs/spec/SERVER.md §2.7", () => {
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
  // Both read, they must parse and be a pair (src/util/tls_pem.ts; real pairs in tests/tls_test.ts).
  const unparsed = failed(load({ ...files, "/k.pem": "KEY" }));
  assert.equal(unparsed.length, 1, unparsed.join("\n"));
  assert.match(
    unparsed[0]!,
    /^invalid configuration: security\.transport\.tls\.certificate_path = "cert\.pem" \(from config file \/srv\/app\/config\.json\): is not a PEM certificate \(/,
  );

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
    "invalid configuration: cluster.redis_url = <redacted>",
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

Deno.test("loadConfig() reads cluster.redis_sentinels as host:port entries (a comma list in the environment), only with a redis_url", () => {
  const { config } = loaded(load({}, {
    SIGNAL_FISH_CLUSTER__REDIS_URL: "redis://:secret@ignored:6379/2",
    SIGNAL_FISH_CLUSTER__REDIS_SENTINELS: "10.0.0.21:26379, sentinel-b.local:26380,[fd00::1]:26379",
    SIGNAL_FISH_CLUSTER__REDIS_SENTINEL_MASTER: "signal-fish",
  }));
  assert.deepEqual(config.cluster.redis_sentinels, [
    "10.0.0.21:26379",
    "sentinel-b.local:26380",
    "[fd00::1]:26379",
  ]);
  assert.equal(config.cluster.redis_sentinel_master, "signal-fish");
  assert.deepEqual(sentinelAddress("[fd00::1]:26379"), { host: "fd00::1", port: 26379 });
  assert.deepEqual(DEFAULT_CONFIG.cluster.redis_sentinels, []);
  assert.equal(DEFAULT_CONFIG.cluster.redis_sentinel_master, "mymaster");
  const errors = failed(load({
    [FILE]: { cluster: { redis_sentinels: ["10.0.0.21", "host:0", "host:65536", "a b:1"] } },
  }));
  assert.deepEqual(errors.map((e) => e.split(" (from")[0]), [
    'invalid configuration: cluster.redis_sentinels[0] = "10.0.0.21"',
    'invalid configuration: cluster.redis_sentinels[1] = "host:0"',
    'invalid configuration: cluster.redis_sentinels[2] = "host:65536"',
    'invalid configuration: cluster.redis_sentinels[3] = "a b:1"',
  ]);
  assert.match(
    failed(load({ [FILE]: { cluster: { redis_sentinels: ["10.0.0.21:26379"] } } }))[0]!,
    /cluster\.redis_sentinels.*needs cluster\.redis_url/,
  );
});

Deno.test("loadConfig() reads the sentinels' password, user and TLS, each only with sentinels; the CA then serves them too", () => {
  const ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  const { config } = loaded(load({ "/etc/signal-fish/redis-ca.pem": ca }, {
    SIGNAL_FISH_CLUSTER__REDIS_URL: "redis://ignored:6379",
    SIGNAL_FISH_CLUSTER__REDIS_SENTINELS: "10.0.0.21:26379",
    SIGNAL_FISH_CLUSTER__REDIS_SENTINEL_USERNAME: "watcher",
    SIGNAL_FISH_CLUSTER__REDIS_SENTINEL_PASSWORD: "s3nt1nel",
    SIGNAL_FISH_CLUSTER__REDIS_SENTINEL_TLS: "true",
    SIGNAL_FISH_CLUSTER__REDIS_TLS_CA_PATH: "/etc/signal-fish/redis-ca.pem",
  }));
  assert.equal(config.cluster.redis_sentinel_username, "watcher");
  assert.equal(config.cluster.redis_sentinel_password, "s3nt1nel");
  assert.equal(config.cluster.redis_sentinel_tls, true);
  assert.equal(config.cluster.redis_tls_ca_path, "/etc/signal-fish/redis-ca.pem");
  assert.equal(DEFAULT_CONFIG.cluster.redis_sentinel_password, null);
  assert.equal(DEFAULT_CONFIG.cluster.redis_sentinel_tls, false);
  const errors = failed(load({
    [FILE]: {
      cluster: {
        redis_url: "redis://cache:6379",
        redis_sentinel_username: "watcher",
        redis_sentinel_password: "s3nt1nel",
        redis_sentinel_tls: true,
        redis_tls_ca_path: "/etc/signal-fish/redis-ca.pem",
      },
    },
  })).map((e) => e.split(" (from")[0]!.replace(/ = .*/, ""));
  assert.deepEqual(errors.sort(), [
    "invalid configuration: cluster.redis_sentinel_password",
    "invalid configuration: cluster.redis_sentinel_tls",
    "invalid configuration: cluster.redis_sentinel_username",
    "invalid configuration: cluster.redis_tls_ca_path",
  ]);
  assert.match(
    failed(load({
      [FILE]: {
        cluster: {
          redis_url: "redis://cache:6379",
          redis_sentinels: ["10.0.0.21:26379"],
          redis_sentinel_username: "watcher",
        },
      },
    }))[0]!,
    /cluster\.redis_sentinel_username.*needs cluster\.redis_sentinel_password/,
  );
});

Deno.test("loadConfig() bounds every key that sets a timer by 2^31 - 1 ms, saying why", () => {
  assert.equal(MAX_TIMER_MS, 2147483647);
  assert.equal(MAX_TIMER_SECS, 2147483);
  const timers: [string, string, number, number][] = [
    ["server", "ping_timeout", 2, MAX_TIMER_SECS],
    ["server", "room_cleanup_interval", 1, MAX_TIMER_SECS],
    ["server", "drain_timeout_secs", 0, MAX_TIMER_SECS],
    ["metrics", "dashboard_cache_refresh_interval_secs", 1, MAX_TIMER_SECS],
    ["cluster", "directory_ttl_secs", 3, MAX_TIMER_SECS],
    ["cluster", "forward_timeout_ms", 100, MAX_TIMER_MS],
    ["cluster", "heartbeat_ms", 100, MAX_TIMER_MS],
    ["cluster", "drain_timeout_secs", 0, MAX_TIMER_SECS],
  ];
  for (const [table, key, min, max] of timers) {
    const rule = `must be an integer between ${min} and ${max} (it sets a timer, and a timer ` +
      "takes at most 2^31 - 1 ms, about 24.8 days)";
    assert.deepEqual(failed(load({ [FILE]: { [table]: { [key]: max + 1 } } })), [
      `invalid configuration: ${table}.${key} = ${max + 1} (from config file ${FILE}): ${rule}`,
    ]);
    if (key !== "heartbeat_ms") { // at most directory_ttl_secs × 1000 / 3 besides
      assert.equal(
        (loaded(load({ [FILE]: { [table]: { [key]: max } } })).config as never)[table][key],
        max,
      );
    }
  }
  // Durations that set no timer of their own are bounded alike: a reconnection window of 10^12 s
  // gave held seats, and in cluster mode their Redis keys, an expiry out of range.
  const durations: [string, string, number][] = [
    ["server", "empty_room_timeout", 0],
    ["server", "inactive_room_timeout", 1],
    ["server", "reconnection_window", 1],
    ["rate_limit", "time_window", 1],
  ];
  for (const [table, key, min] of durations) {
    const expected: string =
      `must be an integer between ${min} and ${MAX_TIMER_SECS} (a duration: at most ` +
      "2147483 s, about 24.8 days, the bound of the keys that set timers)";
    assert.deepEqual(failed(load({ [FILE]: { [table]: { [key]: MAX_TIMER_SECS + 1 } } })), [
      `invalid configuration: ${table}.${key} = ${
        MAX_TIMER_SECS + 1
      } (from config file ${FILE}): ${expected}`,
    ]);
    assert.equal(
      (loaded(load({ [FILE]: { [table]: { [key]: MAX_TIMER_SECS } } })).config as never)[table][
        key
      ],
      MAX_TIMER_SECS,
    );
  }
  // The timers these keys set, at their largest: none over 2^31 - 1 ms.
  assert.ok(MAX_TIMER_SECS * 1000 <= MAX_TIMER_MS);
  // Beyond the safe integers the rule names the upper bound too (it said ">= 2").
  assert.match(
    failed(load({}, { SIGNAL_FISH_SERVER__PING_TIMEOUT: "9007199254740993" }))[0]!,
    /server\.ping_timeout = 9007199254740992 \(from SIGNAL_FISH_SERVER__PING_TIMEOUT\): must be an integer between 2 and 2147483 \(it sets a timer/,
  );
});
