/**
 * The real executable entry point, run as a subprocess: flags, configuration errors, serving
 * and stopping on SIGTERM.
 */
import { equal, match, ok } from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { TestClient } from "./helpers.ts";
import { runMain } from "./process.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const PERMISSIONS = ["--allow-net", "--allow-read", "--allow-env"];

function command(args: string[], env: Record<string, string> = {}) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, MAIN, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  });
}

async function run(args: string[], env: Record<string, string> = {}) {
  const { code, stdout, stderr } = await command(args, env).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

Deno.test("main.ts --version prints the version from deno.json", async () => {
  const { code, stdout } = await run(["--version"]);
  equal(code, 0);
  equal(stdout, `signal-fish-server ${denoJson.version}\n`);
});

Deno.test("main.ts exits 2 naming the key, value, source and rule of an invalid setting", async () => {
  const { code, stderr } = await run([], { SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS: "0" });
  equal(code, 2);
  match(
    stderr,
    /server\.default_max_players = 0 \(from SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS\): must be/,
  );
  // Cluster settings that cannot work together refuse to start (docs/spec/SERVER.md §2.6 rule 18).
  const cluster = await run([], {
    SIGNAL_FISH_CLUSTER__REDIS_URL: "redis://127.0.0.1:6379",
    SIGNAL_FISH_CLUSTER__HEARTBEAT_MS: "20000",
  });
  equal(cluster.code, 2);
  match(cluster.stderr, /cluster\.heartbeat_ms = 20000 .*: must be at most/);
  const flag = await run(["--port", "99999"]);
  equal(flag.code, 2);
  const unknown = await run(["--bogus"]);
  equal(unknown.code, 2);
  match(unknown.stderr, /Usage: signal-fish-server/);
});

Deno.test("main.ts serves a game and exits 0 on SIGTERM after closing sockets with 1001", async () => {
  const child = command(["--port", "0"], {
    SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING: "false",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let port = 0;
  let buffered = "";
  const deadline = Date.now() + 10_000;
  while (!port && Date.now() < deadline) {
    const { value, done } = await lines.read();
    if (done) break;
    buffered += value;
    const found = buffered.match(/"port":(\d+)/);
    if (found) port = Number(found[1]);
  }
  ok(port > 0, `no listening line in ${buffered}`);
  const drain = (async () => {
    for (;;) if ((await lines.read()).done) return;
  })();

  const client = await TestClient.connect(`ws://127.0.0.1:${port}/v2/ws`);
  client.send({
    type: "JoinRoom",
    data: { game_name: "orbit", player_name: "solo", max_players: 1 },
  });
  await client.next("RoomJoined");
  await client.next("GameStarting");
  child.kill("SIGTERM");
  equal((await client.closed).code, 1001);
  const status = await child.status;
  await drain;
  await child.stderr.cancel();
  equal(status.code, 0);
});

Deno.test("main.ts's Listening line names the version, the config file and the state file; a missing state file is logged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-main-" });
  try {
    const config = `${dir}/config.json`;
    await Deno.writeTextFile(config, JSON.stringify({ server: { region_id: "eu-test" } }));
    const stateFile = `${dir}/state/rooms.json`;
    const { stdout, status } = await runMain({
      SIGNAL_FISH_CONFIG_PATH: config,
      SIGNAL_FISH_SERVER__STATE_FILE: stateFile,
      SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING: "false",
    }, async () => {});
    equal(status.code, 0, stdout);
    const lines = stdout.split("\n").filter((line) => line.startsWith("{")).map((line) =>
      JSON.parse(line)
    );
    const listening = lines.find((line) => line.message.startsWith("Listening on "));
    ok(listening, stdout);
    equal(listening.version, denoJson.version);
    equal(listening.config_file, config);
    equal(listening.state_file, stateFile);
    equal(listening.region_id, "eu-test");
    // Before the Listening line: no state file yet, said so (it is written at shutdown).
    const missing = lines.findIndex((line) =>
      line.message === `No state file at ${stateFile}: starting with no rooms; they are saved ` +
          "there at shutdown"
    );
    ok(missing >= 0 && missing < lines.indexOf(listening), stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task demo plays its scripted session to the end", async () => {
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, new URL("../demo/demo.ts", import.meta.url).pathname],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  equal(code, 0, text);
  match(text, /GameStarting/);
  match(text, /Demo finished/);
});
