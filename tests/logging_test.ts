/**
 * Logging through the real entry point (docs/spec/SERVER.md §7): format and level from the environment,
 * the rotating file sink, and lifecycle lines with structured fields.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { TestClient } from "./helpers.ts";
import { runMain as runMainUntilStopped } from "./process.ts";

/** {@linkcode runMainUntilStopped} that also requires a clean exit (code 0). */
async function runMain(env: Record<string, string>, session: (port: number) => Promise<void>) {
  const { stdout, stderr, status } = await runMainUntilStopped(env, session);
  equal(status.code, 0, stderr);
  return { stdout, stderr };
}

Deno.test("main.ts writes JSON lines with a timestamp key to stdout and a daily file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { stdout } = await runMain({
      SIGNAL_FISH_LOGGING__DIR: `${dir}/logs`,
      SIGNAL_FISH_LOGGING__FORMAT: "Json",
      SIGNAL_FISH_LOGGING__LEVEL: "INFO",
    }, async (port) => {
      await using client = await TestClient.connect(`ws://127.0.0.1:${port}/v2/ws`);
      client.send({ type: "JoinRoom", data: { game_name: "orbit", player_name: "mira" } });
      await client.next("RoomJoined");
      for (let i = 0; i < 3; i++) client.send({ type: "GameData", data: { data: { i } } });
      client.send({ type: "Ping" });
      await client.next("Pong");
    });
    const lines = stdout.trim().split("\n").map((line) => JSON.parse(line));
    for (const line of lines) {
      match(line.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      ok(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].includes(line.level));
      equal(typeof line.message, "string");
    }
    const created = lines.find((line) => line.message.includes("created"));
    ok(created, stdout);
    equal(created.game_name, "orbit");
    match(created.room_code, /^[A-Z0-9]{6}$/);
    equal(typeof created.player_id, "string");
    // Nothing per relayed message at info level (docs/spec/SERVER.md §7.2).
    equal(lines.some((line) => JSON.stringify(line).includes("GameData")), false);
    // One file, or two if the run straddled midnight UTC; together they hold every line.
    const names = [];
    for await (const entry of Deno.readDir(`${dir}/logs`)) names.push(entry.name);
    names.sort();
    ok(names.length >= 1 && names.every((name) => /^server\.log\.\d{4}-\d\d-\d\d$/.test(name)));
    let file = "";
    for (const name of names) file += await Deno.readTextFile(`${dir}/logs/${name}`);
    deepEqual(
      file.trim().split("\n").map((line) => JSON.parse(line).message),
      lines.map((line) => line.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main.ts writes text lines when logging.format is TEXT, and honours the level", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { stdout } = await runMain({
      SIGNAL_FISH_LOGGING__DIR: dir,
      SIGNAL_FISH_LOGGING__FORMAT: "TEXT",
      SIGNAL_FISH_LOGGING__ROTATION: "hourly",
      SIGNAL_FISH_LOGGING__LEVEL: "debug",
    }, async (port) => {
      await using client = await TestClient.connect(`ws://127.0.0.1:${port}/v2/ws`);
      client.send("{bad json");
      await client.next("Error");
    });
    match(stdout, /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO signal-fish\.server: Listening on /m);
    match(stdout, / DEBUG signal-fish\.hub: Invalid message from /);
    equal(stdout.includes("\x1b"), false);
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    ok(names.length >= 1, "no log file");
    ok(names.every((name) => /^server\.log\.\d{4}-\d\d-\d\d-\d\d$/.test(name)), String(names));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main.ts text lines escape control characters a client puts in a value (an Origin header)", async () => {
  // /tmp/s26/a/origin.ts: a tab or a C1 control (U+009B, a terminal's CSI) in an Origin header
  // reached the text line raw and could forge the look of another record.
  const origins = [
    "https://evil.example\tINFO signal-fish.admin: Operator action close_room",
    "https://evil.example\x9b31m\u00e2\x80\u00ae",
  ];
  const { stdout } = await runMain({
    SIGNAL_FISH_LOGGING__FORMAT: "TEXT",
    SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING: "false",
    SIGNAL_FISH_SECURITY__CORS_ORIGINS: "https://game.example",
  }, async (port) => {
    for (const origin of origins) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        const head = "GET /v2/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" +
          "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: ${origin}\r\n\r\n`;
        // Header bytes as sent on the wire (one byte per character, as in /tmp/s26/a/origin.ts).
        await conn.write(Uint8Array.from(head, (c) => c.charCodeAt(0) & 0xff));
        const buffer = new Uint8Array(512);
        const n = await conn.read(buffer);
        match(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), /^HTTP\/1\.1 403/);
      } finally {
        conn.close();
      }
    }
  });
  const refused = stdout.split("\n").filter((line) => line.includes("Refused a WebSocket upgrade"));
  equal(refused.length, 2, stdout);
  for (const line of refused) {
    const controls = [...line].filter((c) => c < " " || (c >= "\x7f" && c <= "\x9f"));
    equal(controls.length, 0, JSON.stringify(line));
  }
  ok(refused[0]!.includes("https://evil.example\\tINFO signal-fish.admin"), refused[0]);
  ok(refused[1]!.includes("https://evil.example\\u009b31mâ\\u0080®"), refused[1]);
  ok(!stdout.split("\n").some((line) => line.startsWith("INFO signal-fish.admin")));
});
