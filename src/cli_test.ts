import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { type CliOutcome, runCli, USAGE } from "./cli.ts";
import { type Config, DEFAULT_CONFIG } from "./config/schema.ts";
import { redactConfig } from "./config/redact.ts";

const CWD = "/srv/app";

function run(
  args: string[],
  env: Record<string, string> = {},
  files: Record<string, object> = {},
): CliOutcome {
  return runCli(args, env, {
    cwd: CWD,
    readTextFile: (path) => {
      const content = files[path];
      if (content === undefined) throw new Deno.errors.NotFound(`No such file: ${path}`);
      return JSON.stringify(content);
    },
  });
}

function exited(outcome: CliOutcome): { code: number; stdout: string; stderr: string } {
  if (outcome.kind !== "exit") assert.fail("expected the CLI to exit");
  return outcome;
}

function served(outcome: CliOutcome): { config: Config; warnings: string[] } {
  if (outcome.kind !== "serve") {
    assert.fail(`expected the CLI to serve, got exit ${outcome.code}:\n${outcome.stderr}`);
  }
  return outcome;
}

function assertUsageError(outcome: CliOutcome, reason: RegExp): void {
  const { code, stdout, stderr } = exited(outcome);
  assert.equal(code, 2);
  assert.equal(stdout, "");
  assert.match(stderr, reason);
  assert.ok(stderr.endsWith(USAGE), "usage printed to stderr");
}

Deno.test("runCli() without flags serves the defaults and passes the warnings on", () => {
  const { config, warnings } = served(run([]));
  assert.deepEqual(config, DEFAULT_CONFIG);
  assert.deepEqual(warnings, [
    "metrics endpoints are unauthenticated (security.require_metrics_auth is false)",
  ]);
});

Deno.test("runCli() --version and -V print the version from deno.json", () => {
  for (const flag of ["--version", "-V"]) {
    assert.deepEqual(run([flag]), {
      kind: "exit",
      code: 0,
      stdout: `signal-fish-server ${denoJson.version}\n`,
      stderr: "",
    });
  }
});

Deno.test("runCli() --help and -h print the usage to stdout", () => {
  for (const flag of ["--help", "-h"]) {
    assert.deepEqual(run([flag]), { kind: "exit", code: 0, stdout: USAGE, stderr: "" });
  }
  assert.match(USAGE, /--config <path>/);
  assert.match(USAGE, /--validate-config/);
});

Deno.test("runCli() exits 2 with the usage on unknown flags and missing arguments", () => {
  assertUsageError(run(["--verbose"]), /^error: Unknown option '--verbose'/);
  assertUsageError(run(["-c"]), /^error: Unknown option '-c'/);
  assertUsageError(run(["--port"]), /argument missing/);
  assertUsageError(run(["--config"]), /argument missing/);
  assertUsageError(run(["--config", "--port", "1"]), /ambiguous/);
  assertUsageError(run(["--config="]), /--config needs a file path/);
  assertUsageError(run(["serve"]), /Unexpected argument 'serve'/);
});

Deno.test("runCli() exits 2 on --validate-config with --print-config", () => {
  assertUsageError(
    run(["--validate-config", "--print-config"]),
    /--validate-config and --print-config cannot be used together/,
  );
});

Deno.test("runCli() accepts --port 0-65535 only", () => {
  for (const bad of ["65536", "-1", "80a", "", "8080.0"]) {
    assertUsageError(run([`--port=${bad}`]), /--port must be an integer between 0 and 65535/);
  }
  assert.equal(served(run(["--port", "65535"])).config.port, 65535);
});

Deno.test("runCli() --port beats SIGNAL_FISH_PORT and the config file", () => {
  const files = { "/srv/app/config.json": { port: 1 } };
  const env = { SIGNAL_FISH_PORT: "8080" };
  assert.equal(served(run([], env, files)).config.port, 8080);
  assert.equal(served(run(["--port", "0"], env, files)).config.port, 0);
  assert.equal(served(run(["--port=9000"], env, files)).config.port, 9000);
});

Deno.test("runCli() --config reads the named file in both spellings", () => {
  const files = { "/etc/sf.json": { server: { region_id: "eu" } } };
  assert.equal(served(run(["--config", "/etc/sf.json"], {}, files)).config.server.region_id, "eu");
  assert.equal(served(run(["--config=/etc/sf.json"], {}, files)).config.server.region_id, "eu");
  const { code, stderr } = exited(run(["--config", "missing.json"]));
  assert.equal(code, 2);
  assert.equal(
    stderr,
    "Error: invalid configuration: cannot read config file /srv/app/missing.json (from --config): No such file: /srv/app/missing.json\n",
  );
});

Deno.test("runCli() exits 2 and prints every configuration error", () => {
  const outcome = run([], {
    SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS: "0",
    SIGNAL_FISH_WEBSOCKET__BATCH_SIZE: "0",
  });
  assert.deepEqual(outcome, {
    kind: "exit",
    code: 2,
    stdout: "",
    stderr:
      "Error: invalid configuration: websocket.batch_size = 0 (from SIGNAL_FISH_WEBSOCKET__BATCH_SIZE): must be an integer >= 1\n" +
      "Error: invalid configuration: server.default_max_players = 0 (from SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS): must be between 1 and protocol.max_players_limit (100)\n",
  });
});

Deno.test("runCli() --validate-config prints the summary, or the errors and exits 2", () => {
  const ok = exited(run(["--validate-config", "--port", "4000"], {
    SIGNAL_FISH_CLUSTER__REDIS_URL: "redis://cache:6379",
    SIGNAL_FISH_SERVER__REGION_ID: "eu-west",
  }));
  assert.equal(ok.code, 0);
  assert.equal(
    ok.stdout,
    "Configuration validation passed\n\nConfiguration summary:\n  Port: 4000\n" +
      "  Storage backend: Redis\n  TLS enabled: false\n  Metrics auth required: false\n" +
      "  Reconnection enabled: true\n  Max players per room: 8\n  Deployment region: eu-west\n" +
      "  Bind address: 0.0.0.0\n" +
      "  Config file: none (built-in defaults and environment variables)\n",
  );
  assert.equal(
    ok.stderr,
    "Warning: metrics endpoints are unauthenticated (security.require_metrics_auth is false)\n",
  );

  const bad = exited(
    run(["--validate-config"], { SIGNAL_FISH_SECURITY__REQUIRE_METRICS_AUTH: "1" }),
  );
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, "");
  assert.equal(
    bad.stderr,
    "Configuration validation failed:\n" +
      "invalid configuration: security.require_metrics_auth = true (from SIGNAL_FISH_SECURITY__REQUIRE_METRICS_AUTH): Metrics authentication is enabled but no credentials are configured (set security.metrics_auth_token)\n" +
      "Config file: none\n",
  );
});

Deno.test("runCli() warns, serving and in --validate-config, about server.reuse_port without cluster mode", () => {
  const warning = "server.reuse_port is true but cluster.redis_url is not set: every process on " +
    "the shared port is a separate server with its own rooms, and the kernel hands each " +
    "connection to any of them (set cluster.redis_url, or turn server.reuse_port off)";
  const alone = { SIGNAL_FISH_SERVER__REUSE_PORT: "true" };
  const validated = exited(run(["--validate-config"], alone));
  assert.equal(validated.code, 0);
  assert.match(validated.stdout, /^Configuration validation passed\n/);
  assert.ok(validated.stderr.includes(`Warning: ${warning}\n`), validated.stderr);
  assert.ok(served(run([], alone)).warnings.includes(warning));
  // In cluster mode a shared port is what it is for.
  const cluster = { ...alone, SIGNAL_FISH_CLUSTER__REDIS_URL: "redis://cache:6379" };
  assert.ok(!exited(run(["--validate-config"], cluster)).stderr.includes("reuse_port"));
  assert.ok(!served(run([], cluster)).warnings.includes(warning));
});

Deno.test("runCli() --validate-config names the file it loaded and exits 2 on unknown variables", () => {
  const file = exited(
    run(["--validate-config", "--config", "game.json"], {}, {
      "/srv/app/game.json": { port: 4100 },
    }),
  );
  assert.equal(file.code, 0);
  assert.match(file.stdout, /\n {2}Port: 4100\n/);
  assert.match(file.stdout, /\n {2}Config file: \/srv\/app\/game\.json\n$/);

  const typo = exited(run(["--validate-config"], {
    SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYER: "4",
    SIGNAL_FISH_PORT: "4000",
  }));
  assert.equal(typo.code, 2);
  assert.equal(typo.stdout, "");
  assert.equal(
    typo.stderr,
    "Configuration validation failed:\n" +
      "invalid configuration: environment variable SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYER is not a configuration key (did you mean SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS?)\n" +
      "Config file: none\n",
  );
  // Serving keeps it a warning (the prefix is shared with other tools, docs/spec/SERVER.md §2.3).
  const served = run([], { SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYER: "4" });
  assert.equal(served.kind, "serve");
});

Deno.test("runCli() --host sets server.host; an empty --host is a usage error", () => {
  assert.equal(served(run(["--host", "::1"])).config.server.host, "::1");
  assert.equal(served(run(["--host=127.0.0.1"])).config.server.host, "127.0.0.1");
  assert.equal(exited(run(["--host", ""])).code, 2);
  const bad = exited(run(["--host", "not a host"]));
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /server\.host = "not a host" \(from --host\): must be an IPv4 or IPv6/);
});

Deno.test("runCli() --print-config prints every key as 2-space JSON with secrets redacted", () => {
  const defaults = exited(run(["--print-config"]));
  assert.equal(defaults.code, 0);
  assert.equal(defaults.stdout, `${JSON.stringify(DEFAULT_CONFIG, null, 2)}\n`);
  assert.deepEqual(JSON.parse(defaults.stdout), DEFAULT_CONFIG);

  const env = {
    SIGNAL_FISH_SECURITY__REQUIRE_METRICS_AUTH: "true",
    SIGNAL_FISH_SECURITY__METRICS_AUTH_TOKEN: "a-long-metrics-token-0123",
    SIGNAL_FISH_SECURITY__AUTHORIZED_APPS: '[{"app_id":"a","app_name":"A","app_secret":"s3cr3t"}]',
    SIGNAL_FISH_CLUSTER__REDIS_URL: "redis://default:hunter2@cache:6379/0",
  };
  const secret = exited(run(["--print-config"], env));
  assert.equal(secret.code, 0);
  for (const value of ["a-long-metrics-token-0123", "s3cr3t", "hunter2"]) {
    assert.ok(!secret.stdout.includes(value), `${value} leaked`);
  }
  const printed = JSON.parse(secret.stdout);
  assert.equal(printed.security.metrics_auth_token, "<redacted>");
  assert.equal(printed.security.authorized_apps[0].app_secret, "<redacted>");
  assert.equal(printed.cluster.redis_url, "redis://<redacted>@cache:6379/0");
  assert.deepEqual(printed, redactConfig(served(run([], env)).config));
  assert.match(secret.stdout, /^{\n {2}"port": 3536,\n {2}"server": {\n {4}"default_max_players"/);

  assert.equal(exited(run(["--print-config"], { SIGNAL_FISH_PORT: "x" })).code, 2);
});
