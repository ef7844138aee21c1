/**
 * The compiled executables' permission set (scripts/permissions.ts), verified offline: `main.ts`
 * runs under `deno run` with exactly those flags, serves every route and a full game session, and
 * reads its config file and `SIGNAL_FISH_*` variables.
 */
import { deepEqual, doesNotMatch, equal, match } from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { compileArgs, TARGETS } from "../scripts/compile.ts";
import { RUNTIME_PERMISSIONS, V8_FLAGS_ARG } from "../scripts/permissions.ts";
import { joinRoom, TestClient } from "./helpers.ts";
import { MAIN, runDeno, spawnServer } from "./process.ts";

const DENO_JSON = new URL("../deno.json", import.meta.url).pathname;

Deno.test("compile bakes exactly RUNTIME_PERMISSIONS into every target", () => {
  equal(Object.keys(TARGETS).length, 5);
  for (const target of Object.keys(TARGETS)) {
    const args = compileArgs(target, ["static"]);
    deepEqual(args.filter((arg) => arg.startsWith("--allow")), [...RUNTIME_PERMISSIONS]);
    deepEqual(args.slice(args.indexOf("--include"), args.indexOf("--include") + 2), [
      "--include",
      "static",
    ]);
    equal(args.at(-1), "main.ts");
    equal(args.filter((arg) => arg.startsWith("--v8-flags")).join(" "), V8_FLAGS_ARG);
  }
  // The tasks that run the server use the same V8 settings as the executables.
  for (const task of ["start", "dev"] as const) {
    match(denoJson.tasks[task], new RegExp(` ${V8_FLAGS_ARG} main\\.ts( |$)`));
  }
  deepEqual(RUNTIME_PERMISSIONS, [
    "--allow-net",
    "--allow-read=./config.json,/etc/signal-fish,./logs,/var/log/signal-fish,./state,/var/lib/signal-fish",
    "--allow-write=./logs,/var/log/signal-fish,./state,/var/lib/signal-fish",
    "--allow-env=SIGNAL_FISH_*,RLIMIT_NOFILE,WS_NO_BUFFER_UTIL,WS_NO_UTF_8_VALIDATE," +
    "REDIS_DEBUG_MAINTENANCE,REDIS_EMIT_DIAGNOSTICS",
  ]);
});

Deno.test("main.ts under the baked-in permissions prints --version", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUNTIME_PERMISSIONS, MAIN, "--version"],
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  equal(code, 0, new TextDecoder().decode(stderr));
  equal(new TextDecoder().decode(stdout), `signal-fish-server ${denoJson.version}\n`);
});

Deno.test("main.ts under the baked-in permissions serves every route and a game", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-perm-" });
  try {
    // ./config.json in the working directory is read; a variable overrides one of its keys.
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({
        server: { default_max_players: 3 },
        security: { max_connections_per_ip: 50, cors_origins: "https://play.example" },
      }),
    );
    await using server = await spawnServer({
      cwd: dir,
      denoFlags: ["--config", DENO_JSON],
      env: { SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS: "2", SIGNAL_FISH_LOGGING__FORMAT: "json" },
    });
    const base = `http://127.0.0.1:${server.port}`;
    const expect = async (method: string, path: string, status: number, headers = {}) => {
      const response = await fetch(`${base}${path}`, { method, headers });
      await response.body?.cancel();
      equal(response.status, status, `${method} ${path}`);
      return response;
    };
    await expect("GET", "/v2/health", 200);
    await expect("HEAD", "/v2/health", 200);
    await expect("POST", "/v2/health", 405);
    await expect("GET", "/v2/ws", 400); // not an upgrade
    await expect("GET", "/nope", 404);
    // Every other route: status, metrics (text and JSON), room lookup, demo page and client.
    await expect("GET", "/v2/status", 200);
    await expect("GET", "/metrics/prom", 200);
    await expect("GET", "/metrics", 200);
    await expect("GET", "/v2/rooms/orbit/ABCDEF", 404);
    await expect("GET", "/", 200);
    await expect("GET", "/client.js", 200);
    await expect("GET", "/demo.js", 200);
    const preflight = await expect("OPTIONS", "/v2/health", 200, {
      origin: "https://play.example",
      "access-control-request-method": "GET",
    });
    equal(preflight.headers.get("access-control-allow-origin"), "https://play.example");
    // The upgrade's Origin check uses cors_origins from the file.
    const refused = await new Promise<boolean>((resolve) => {
      const socket = new WebSocket(`ws://127.0.0.1:${server.port}/v2/ws`, {
        headers: { origin: "https://evil.example" },
      });
      socket.onopen = () => {
        socket.close();
        resolve(false);
      };
      socket.onerror = () => resolve(true);
    });
    equal(refused, true);

    // A full session: create, join, ready up, game data both ways, leave.
    const url = `ws://127.0.0.1:${server.port}/v2/ws`;
    await using alice = await TestClient.connect(url);
    await using bob = await TestClient.connect(url);
    alice.send(joinRoom(null, "alice"));
    const created = await alice.next("RoomJoined");
    equal(created.data.max_players, 2, "SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS was not read");
    bob.send(joinRoom(created.data.room_code, "bob"));
    await bob.next("RoomJoined");
    await alice.waitFor("PlayerJoined");
    alice.send({ type: "PlayerReady" });
    bob.send({ type: "PlayerReady" });
    await alice.waitFor("GameStarting");
    await bob.waitFor("GameStarting");
    alice.send({ type: "GameData", data: { data: { op: "steer", angle: -12.5 } } });
    deepEqual((await bob.waitFor("GameData")).data.data, { op: "steer", angle: -12.5 });
    bob.send({ type: "GameData", data: { data: { op: "fire" } } });
    deepEqual((await alice.waitFor("GameData")).data.data, { op: "fire" });
    bob.send({ type: "LeaveRoom" });
    await bob.waitFor("RoomLeft");
    await alice.waitFor("PlayerLeft");

    server.child.kill("SIGTERM");
    equal((await server.exited).code, 0);
    doesNotMatch(server.output(), /NotCapable|Requires .* access/);
    match(server.output(), /Server stopped/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs `main.ts` under RUNTIME_PERMISSIONS in `cwd` with `env` and `args` until it exits. */
function runMainIn(cwd: string, env: Record<string, string>, args: string[]) {
  return runDeno(["run", "--config", DENO_JSON, ...RUNTIME_PERMISSIONS, MAIN, ...args], env, cwd);
}

Deno.test("main.ts under the baked-in permissions refuses a state file or Redis CA outside its paths before serving (docs/spec/SERVER.md §2.6 rules 18, 19)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-perm-" });
  const outside = await Deno.makeTempDir({ prefix: "signal-fish-outside-" });
  try {
    await Deno.writeTextFile(
      `${outside}/ca.pem`,
      "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    // ./state need not exist yet: saving creates it. Validating does not.
    const inside = await runMainIn(dir, { SIGNAL_FISH_SERVER__STATE_FILE: "./state/rooms.json" }, [
      "--validate-config",
    ]);
    equal(inside.code, 0, inside.stderr);
    equal(await Deno.stat(`${dir}/state`).then(() => true, () => false), false);

    const state = { SIGNAL_FISH_SERVER__STATE_FILE: `${outside}/rooms.json` };
    const stateRule = new RegExp(
      `server\\.state_file = "${outside}/rooms\\.json" \\(from SIGNAL_FISH_SERVER__STATE_FILE\\): ` +
        `this process may not write its directory ${outside} \\(it is outside the --allow-write paths`,
    );
    const ca = {
      SIGNAL_FISH_CLUSTER__REDIS_URL: "rediss://127.0.0.1:1",
      SIGNAL_FISH_CLUSTER__REDIS_TLS_CA_PATH: `${outside}/ca.pem`,
    };
    const caRule = new RegExp(
      `cluster\\.redis_tls_ca_path = "${outside}/ca\\.pem" \\(from ` +
        "SIGNAL_FISH_CLUSTER__REDIS_TLS_CA_PATH\\): cannot read file: Requires read access",
    );
    for (const [env, rule] of [[state, stateRule], [ca, caRule]] as const) {
      // Both when validating and when starting: exit 2 (a configuration error), never serving.
      for (const args of [["--validate-config"], ["--port", "0"]]) {
        const run = await runMainIn(dir, env, args);
        equal(run.code, 2, `${args}: ${run.stderr}`);
        match(run.stderr, rule);
        doesNotMatch(run.stdout, /Listening/);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});
