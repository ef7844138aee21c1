import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "./schema.ts";
import { redactConfig, redactUrl } from "./redact.ts";
import { failed, FILE, load, loaded, withDefaults } from "./testing.ts";

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
    `invalid configuration: cluster.redis_url = "http://<redacted>@cache:6379" (from config file ${FILE}): must be null or a redis:// or rediss:// URL`,
  ]);
});

Deno.test("redactConfig() hides app secrets, the metrics token and the Redis passwords", () => {
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
      cluster: {
        redis_url: "rediss://user:hunter2@cache:6380/1",
        redis_sentinels: ["10.0.0.21:26379"],
        redis_sentinel_password: "s3nt1nel",
      },
    },
  }));
  const redacted = redactConfig(config);
  assert.equal(redacted.security.metrics_auth_token, "<redacted>");
  assert.deepEqual(redacted.security.authorized_apps.map((app) => app.app_secret), [
    "<redacted>",
    null,
  ]);
  assert.equal(redacted.cluster.redis_url, "rediss://<redacted>@cache:6380/1");
  assert.equal(redacted.cluster.redis_sentinel_password, "<redacted>");
  assert.equal(config.security.metrics_auth_token, "0123456789abcdef", "input left unchanged");
  assert.equal(redactConfig(DEFAULT_CONFIG).security.metrics_auth_token, null);
  assert.equal(
    redactConfig(withDefaults({ cluster: { redis_url: "redis://cache:6379" } })).cluster.redis_url,
    "redis://cache:6379",
  );
});

Deno.test("loadConfig() names unknown keys without their values (a misspelt secret's name says nothing)", () => {
  const errors = failed(load({
    [FILE]: {
      security: {
        metrics_auth_tokn: "LEAK-A",
        admin_tokne: "LEAK-B",
        authorized_apps: [{ app_id: "a", app_name: "A", app_secert: "LEAK-C" }],
      },
      cluster: { redis_uri: "redis://u:LEAK-D@h:6379", redis_sentinel_passwrd: "LEAK-E" },
      clustr: { redis_url: "redis://u:LEAK-F@h:6379" },
    },
  }, {
    SIGNAL_FISH_SECURITY__AUTHORIZED_APPS: '[{"app_id":"b","app_name":"B","secret2":"LEAK-G"}]',
  }));
  assert.ok(!errors.join("\n").includes("LEAK"), errors.join("\n"));
  assert.deepEqual(errors, [
    `invalid configuration: security.metrics_auth_tokn (from config file ${FILE}): unknown key`,
    `invalid configuration: security.admin_tokne (from config file ${FILE}): unknown key`,
    `invalid configuration: cluster.redis_uri (from config file ${FILE}): unknown key`,
    `invalid configuration: cluster.redis_sentinel_passwrd (from config file ${FILE}): unknown key`,
    `invalid configuration: clustr (from config file ${FILE}): unknown key`,
    "invalid configuration: security.authorized_apps[0].secret2 (from SIGNAL_FISH_SECURITY__AUTHORIZED_APPS): unknown key",
  ]);
});

Deno.test("redactUrl() hides the whole user info, query values and a fragment", () => {
  for (
    const [url, shown] of [
      ["redis://cache:6379/0", "redis://cache:6379/0"],
      ["redis://user:PW@127.0.0.1:6379/0", "redis://<redacted>@127.0.0.1:6379/0"],
      ["redis://:PW@127.0.0.1:6379", "redis://<redacted>@127.0.0.1:6379"],
      // A bare user info is a password more often than a user name.
      ["redis://PW@127.0.0.1:6379", "redis://<redacted>@127.0.0.1:6379"],
      [
        "rediss://u:P%40W@127.0.0.1:6380?password=PW&db=1",
        "rediss://<redacted>@127.0.0.1:6380?password=<redacted>&db=<redacted>",
      ],
      ["redis://127.0.0.1:6379/0?password=PW", "redis://127.0.0.1:6379/0?password=<redacted>"],
      ["redis://u:P@W@127.0.0.1:6379", "redis://<redacted>@127.0.0.1:6379"],
      ["redis://u:P/W@127.0.0.1:6379", "redis://<redacted>@127.0.0.1:6379"],
      ["redis://u:P#W@127.0.0.1:6379", "redis://<redacted>@127.0.0.1:6379"],
      ["redis://u:P?W@127.0.0.1:6379", "redis://<redacted>@127.0.0.1:6379"],
      ["redis://127.0.0.1:6379#PW", "redis://127.0.0.1:6379#<redacted>"],
      ["user:PW@127.0.0.1", "<redacted>"],
      // Not a URL: possibly a pasted password, shown as nothing but the marker.
      ["cache:6379", "<redacted>"],
      ["LEAKSECRET", "<redacted>"],
    ] as const
  ) {
    assert.equal(redactUrl(url), shown, url);
  }
});
