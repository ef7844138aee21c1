/**
 * Rooms survive a restart (README "Rooms survive a restart", docs/spec/SERVER.md §2.7 `server.state_file`):
 * the real server process, under the executables' permissions, is stopped with SIGTERM in the
 * middle of a game and started again on the same state file; both players resume with their
 * tokens and keep playing with authority, lobby state and the replay intact. SIGHUP saves as
 * SIGTERM does. A corrupt, foreign-version or oversized state file, or a path that is not a
 * regular file, is refused with one log line and moved aside, and the server starts with no rooms.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { joinRoom, type Received, TestClient } from "./helpers.ts";
import { exitWithin, type ServerProcess, spawnServer } from "./process.ts";

const DENO_JSON = new URL("../deno.json", import.meta.url).pathname;
const STATE_FILE = "./state/rooms.json";

function start(cwd: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  return spawnServer({
    cwd,
    denoFlags: ["--config", DENO_JSON],
    env: { SIGNAL_FISH_SERVER__STATE_FILE: STATE_FILE, ...env },
  });
}

async function stop(server: ServerProcess): Promise<void> {
  server.child.kill("SIGTERM");
  const status = await exitWithin(server, 15_000);
  ok(status, "still running after SIGTERM");
  equal(status.code, 0, server.output());
}

function logLines(server: ServerProcess, pattern: RegExp): string[] {
  return server.output().split("\n").filter((line) => pattern.test(line));
}

async function status(server: ServerProcess): Promise<{ rooms: number; held_seats: number }> {
  const response = await fetch(`http://127.0.0.1:${server.port}/v2/status`);
  return await response.json();
}

function reconnect(joined: Received): unknown {
  return {
    type: "Reconnect",
    data: {
      player_id: joined.data.player_id,
      room_id: joined.data.room_id,
      auth_token: joined.data.reconnection_token,
    },
  };
}

Deno.test("SIGTERM mid-game, start again: both players reconnect and keep playing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-restart-" });
  try {
    let mira: Received;
    let tobias: Received;
    {
      await using server = await start(dir);
      const url = `ws://127.0.0.1:${server.port}/v2/ws`;
      await using a = await TestClient.connect(url);
      const b = await TestClient.connect(url);
      a.send(joinRoom(null, "Mira", { max_players: 2 }));
      mira = await a.next("RoomJoined");
      b.send(joinRoom(mira.data.room_code, "Tobias"));
      tobias = await b.next("RoomJoined");
      await a.waitFor("LobbyStateChanged");
      a.send({
        type: "ProvideConnectionInfo",
        data: { connection_info: { type: "direct", host: "203.0.113.40", port: 27015 } },
      });
      a.send({ type: "PlayerReady" });
      await b.waitFor("LobbyStateChanged");
      equal((await a.waitFor("LobbyStateChanged")).data.ready_players.length, 1);
      // Tobias drops before the restart; what Mira sends then waits in his replay buffer.
      await b.close();
      a.send({ type: "GameData", data: { data: { op: "steer", angle: -12.5 } } });
      await a.expectNothingElse();
      await stop(server);
      deepEqual(await a.closed, { code: 1001, reason: "Server shutting down" });
      equal(logLines(server, /Saved 1 rooms and 2 seats to \.\/state\/rooms\.json/).length, 1);
      const saved = await Deno.readTextFile(`${dir}/state/rooms.json`);
      ok(!saved.includes(mira.data.reconnection_token), "a token in the state file");
      ok(!saved.includes(tobias.data.reconnection_token), "a token in the state file");
    }

    await using server = await start(dir);
    equal(logLines(server, /Restored 1 rooms and 2 held seats from/).length, 1);
    await Deno.stat(`${dir}/state/rooms.json`).then(
      () => ok(false, "the restored state file is still there"),
      (error) => ok(error instanceof Deno.errors.NotFound),
    );
    deepEqual(await status(server).then((s) => [s.rooms, s.held_seats]), [1, 2]);
    const lookup = await fetch(
      `http://127.0.0.1:${server.port}/v2/rooms/orbit/${mira.data.room_code}`,
    );
    deepEqual((({ players, lobby_state }) => ({ players, lobby_state }))(await lookup.json()), {
      players: 2,
      lobby_state: "lobby",
    });
    const url = `ws://127.0.0.1:${server.port}/v2/ws`;
    await using a = await TestClient.connect(url);
    await using b = await TestClient.connect(url);

    a.send(reconnect(mira));
    const back = (await a.next("Reconnected")).data;
    equal(back.room_code, mira.data.room_code);
    ok(back.is_authority);
    equal(back.lobby_state, "lobby");
    deepEqual(back.ready_players, [mira.data.player_id]);
    deepEqual(back.current_players.map((p: { name: string }) => p.name), ["Mira", "Tobias"]);
    deepEqual(back.current_players[0].connection_info, {
      type: "direct",
      host: "203.0.113.40",
      port: 27015,
    });

    b.send(reconnect(tobias));
    const tobiasBack = (await b.next("Reconnected")).data;
    deepEqual(tobiasBack.missed_events, [
      {
        type: "GameData",
        data: { from_player: mira.data.player_id, data: { op: "steer", angle: -12.5 } },
      },
      { type: "PlayerReconnected", data: { player_id: mira.data.player_id } },
    ]);
    equal(tobiasBack.replay_truncated, false);
    deepEqual((await a.next("PlayerReconnected")).data, { player_id: tobias.data.player_id });

    // The game goes on: Tobias readies up, the game starts, data flows both ways.
    b.send({ type: "PlayerReady" });
    equal((await a.next("LobbyStateChanged")).data.lobby_state, "finalized");
    const starting = (await a.next("GameStarting")).data.peer_connections;
    deepEqual(starting.map((p: { is_authority: boolean }) => p.is_authority), [true, false]);
    a.send({ type: "GameData", data: { data: { op: "go" } } });
    deepEqual((await b.waitFor("GameData")).data.data, { op: "go" });
    b.send({ type: "GameData", data: { data: { op: "ack" } } });
    deepEqual((await a.waitFor("GameData")).data.data, { op: "ack" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGHUP (the terminal closed) shuts down as SIGTERM does: sockets closed with 1001, rooms saved, exit 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-restart-" });
  try {
    await using server = await start(dir);
    await using a = await TestClient.connect(`ws://127.0.0.1:${server.port}/v2/ws`);
    a.send(joinRoom("HANGUP", "Mira"));
    await a.next("RoomJoined");
    server.child.kill("SIGHUP");
    const status = await exitWithin(server, 15_000);
    ok(status, "still running after SIGHUP");
    deepEqual([status.code, status.signal], [0, null], server.output());
    deepEqual(await a.closed, { code: 1001, reason: "Server shutting down" });
    equal(logLines(server, /Received SIGHUP, shutting down/).length, 1, server.output());
    equal(logLines(server, /Saved 1 rooms and 1 seats to/).length, 1, server.output());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const REFUSED: [string, string, Record<string, string>, RegExp][] = [
  ["corrupt", '{"format":"signal-fish-rooms","version":1,"rooms":[', {}, /not JSON/],
  [
    "wrong-version",
    JSON.stringify({ format: "signal-fish-rooms", version: 99, saved_at: 0, rooms: [] }),
    {},
    /format version 99, this build reads 1/,
  ],
  [
    "oversized",
    JSON.stringify({ format: "signal-fish-rooms", version: 1, saved_at: 0, rooms: [] }).padEnd(
      2048,
      " ",
    ),
    { SIGNAL_FISH_SERVER__STATE_FILE_MAX_BYTES: "1024" },
    /it is 2048 bytes, over server\.state_file_max_bytes \(1024\)/,
  ],
];

for (const [name, content, env, reason] of REFUSED) {
  Deno.test(`state file refused (${name}): one log line, the server starts empty`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "signal-fish-restart-" });
    try {
      await Deno.mkdir(`${dir}/state`);
      await Deno.writeTextFile(`${dir}/state/rooms.json`, content);
      await using server = await start(dir, env);
      const lines = logLines(server, /Cannot restore rooms from/);
      equal(lines.length, 1, server.output());
      ok(reason.test(lines[0]!), lines[0]);
      ok(/starting with no rooms/.test(lines[0]!), lines[0]);
      deepEqual(await status(server).then((s) => [s.rooms, s.held_seats]), [0, 0]);
      // The refused file is moved aside, where the next shutdown's snapshot does not replace it.
      const aside = await setAside(dir);
      ok(lines[0]!.includes(`moved it to ./state/${aside}`), lines[0]);
      equal(await Deno.readTextFile(`${dir}/state/${aside}`), content);
      // It serves as usual.
      await using client = await TestClient.connect(`ws://127.0.0.1:${server.port}/v2/ws`);
      client.send(joinRoom(null, "Mira"));
      await client.next("RoomJoined");
      await stop(server);
      equal(logLines(server, /Saved 1 rooms and 1 seats to \.\/state\/rooms\.json/).length, 1);
      equal(await Deno.readTextFile(`${dir}/state/${aside}`), content);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("saving does not touch another server's temporary file next to the same state file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-restart-" });
  try {
    await using server = await start(dir);
    await using a = await TestClient.connect(`ws://127.0.0.1:${server.port}/v2/ws`);
    a.send(joinRoom("MINE01", "Mira"));
    await a.next("RoomJoined");
    // A process that still writes next to the same path (a server of a build from before the
    // state file's lock, whose lock this one does not see) is between writing its temporary file
    // and renaming it. The name the server used to write is taken here; a shared name had this
    // one truncate and rename the other's file.
    const other = `${dir}/state/rooms.json.tmp`;
    await Deno.mkdir(`${dir}/state`, { recursive: true });
    await Deno.writeTextFile(other, "the other server's snapshot, half written");
    await stop(server);
    equal(logLines(server, /Saved 1 rooms and 1 seats to/).length, 1, server.output());
    equal(await Deno.readTextFile(other), "the other server's snapshot, half written");
    equal(JSON.parse(await Deno.readTextFile(`${dir}/state/rooms.json`)).rooms[0].code, "MINE01");
    const names: string[] = [];
    for await (const entry of Deno.readDir(`${dir}/state`)) names.push(entry.name);
    deepEqual(
      names.sort(),
      ["rooms.json", "rooms.json.lock", "rooms.json.tmp"],
      "a temporary file left behind",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("refused state files are kept aside up to the newest five; older ones are deleted, other files are not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-restart-" });
  try {
    await Deno.mkdir(`${dir}/state`);
    // Six earlier refusals, a file of another state path and an unrelated file.
    const earlier = [1, 2, 3, 4, 5, 6].map((day) =>
      `rooms.json.rejected-2026-01-0${day}T000000.000Z`
    );
    for (const name of earlier) await Deno.writeTextFile(`${dir}/state/${name}`, name);
    await Deno.writeTextFile(`${dir}/state/other.json.rejected-2026-01-01T000000.000Z`, "x");
    await Deno.writeTextFile(`${dir}/state/notes.txt`, "x");
    await Deno.writeTextFile(`${dir}/state/rooms.json`, "{not json");
    await using server = await start(dir);
    equal(logLines(server, /Cannot restore rooms from/).length, 1, server.output());
    equal(logLines(server, /Deleted the refused state file/).length, 2, server.output());
    const names: string[] = [];
    for await (const entry of Deno.readDir(`${dir}/state`)) names.push(entry.name);
    const kept = names.filter((name) => name.startsWith("rooms.json.rejected-")).sort();
    equal(kept.length, 5, names.join(", "));
    // The four newest earlier ones and this start's.
    deepEqual(kept.slice(0, 4), earlier.slice(2));
    ok(/^rooms\.json\.rejected-20\d\d-/.test(kept[4]!) && !earlier.includes(kept[4]!), kept[4]);
    ok(names.includes("other.json.rejected-2026-01-01T000000.000Z"), names.join(", "));
    ok(names.includes("notes.txt"), names.join(", "));
    await stop(server);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a second server on the same state file refuses to start while the first runs; the first keeps its rooms and the next start restores them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-restart-" });
  try {
    {
      await using first = await start(dir);
      await using a = await TestClient.connect(`ws://127.0.0.1:${first.port}/v2/ws`);
      a.send(joinRoom("LOCK01", "Mira"));
      await a.next("RoomJoined");
      // A copy of the environment file, a second unit of the template: the same path.
      const second = await start(dir).then(
        (server) => server,
        (error: Error) => error,
      );
      ok(second instanceof Error, "the second server started on the same state file");
      ok(/exited with 1 before listening/.test(second.message), second.message);
      ok(
        second.message.includes(
          `./state/rooms.json is in use by another running server (pid ${first.child.pid})`,
        ),
        second.message,
      );
      // One line on stderr with one "Error:" (the error's message, not its String()).
      ok(
        second.message.includes("\nError: cannot start the server: ./state/rooms.json is in use"),
        second.message,
      );
      equal(
        (await Deno.readTextFile(`${dir}/state/rooms.json.lock`)).trim(),
        String(first.child.pid),
      );
      // The second one touched nothing: the first still serves its room and saves it.
      a.send({ type: "Ping" });
      await a.next("Pong");
      await stop(first);
      equal(logLines(first, /Saved 1 rooms and 1 seats to/).length, 1, first.output());
    }
    // The lock went with the first process: the next start takes it and restores the room.
    await using next = await start(dir);
    equal(logLines(next, /Restored 1 rooms and 1 held seats from/).length, 1, next.output());
    deepEqual(await status(next).then((s) => [s.rooms, s.held_seats]), [1, 1]);
    await stop(next);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a restart under a lower limit restores the rooms as they were and warns once about what the configuration would not admit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-restart-" });
  try {
    {
      await using server = await start(dir);
      await using a = await TestClient.connect(`ws://127.0.0.1:${server.port}/v2/ws`);
      a.send(joinRoom("WIDE01", "Mira", { max_players: 12 }));
      await a.next("RoomJoined");
      await stop(server);
    }
    await using server = await start(dir, { SIGNAL_FISH_PROTOCOL__MAX_PLAYERS_LIMIT: "10" });
    equal(logLines(server, /Restored 1 rooms and 1 held seats/).length, 1, server.output());
    const warned = logLines(server, /would not admit/);
    equal(warned.length, 1, server.output());
    ok(/"level":"WARN"/.test(warned[0]!), warned[0]);
    ok(
      /1 with max_players over protocol\.max_players_limit \(10\), first in room [^ ]+\/WIDE01/
        .test(warned[0]!),
      warned[0],
    );
    const found = await fetch(`http://127.0.0.1:${server.port}/v2/rooms/orbit/WIDE01`);
    equal(found.status, 200);
    equal((await found.json()).max_players, 12);
    await stop(server);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The one `rooms.json.rejected-<time>` entry of `dir`/state (asserted). */
async function setAside(dir: string): Promise<string> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(`${dir}/state`)) names.push(entry.name);
  const aside = names.filter((name) =>
    /^rooms\.json\.rejected-\d{4}-\d\d-\d\dT\d{6}\.\d{3}Z$/.test(name)
  );
  equal(aside.length, 1, `state/ holds ${names.join(", ")}`);
  ok(!names.includes("rooms.json"), "the refused file is still there");
  return aside[0]!;
}

Deno.test("a snapshot refused at start (reconnection turned off) is kept aside, not overwritten at shutdown", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-restart-" });
  try {
    {
      await using server = await start(dir);
      await using a = await TestClient.connect(`ws://127.0.0.1:${server.port}/v2/ws`);
      a.send(joinRoom("KEEP01", "Mira"));
      await a.next("RoomJoined");
      await stop(server);
    }
    const saved = await Deno.readTextFile(`${dir}/state/rooms.json`);
    await using server = await start(dir, { SIGNAL_FISH_SERVER__ENABLE_RECONNECTION: "false" });
    const lines = logLines(server, /Cannot restore rooms from/);
    equal(lines.length, 1, server.output());
    ok(/server\.enable_reconnection is false/.test(lines[0]!), lines[0]);
    const aside = await setAside(dir);
    await stop(server);
    equal(logLines(server, /Saved 0 rooms and 0 seats to/).length, 1, server.output());
    // Turned on again, the rooms can be brought back by renaming the file.
    equal(await Deno.readTextFile(`${dir}/state/${aside}`), saved);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Paths that are not a regular file: each is refused before it is read (or opened). */
const NOT_REGULAR: [string, (dir: string) => Promise<void>, RegExp][] = [
  // Opening a FIFO blocks until a writer comes: start-up would hang.
  ["a FIFO", async (dir) => {
    const made = await new Deno.Command("mkfifo", { args: [`${dir}/state/rooms.json`] }).output();
    ok(made.success, "mkfifo");
  }, /it is a FIFO, not a regular file/],
  // A device that never ends: reading it whole would take all memory.
  [
    "a link to /dev/zero",
    (dir) => Deno.symlink("/dev/zero", `${dir}/state/rooms.json`),
    /it is a symbolic link/,
  ],
  // A file outside the allowed read paths, which Deno's check of the link's path lets through.
  ["a link to a file elsewhere", async (dir) => {
    await Deno.mkdir(`${dir}/elsewhere`);
    await Deno.writeTextFile(`${dir}/elsewhere/secret.txt`, "hunter2:x:0:0:not-for-the-log\n");
    await Deno.symlink("../elsewhere/secret.txt", `${dir}/state/rooms.json`);
  }, /it is a symbolic link, not a regular file/],
  ["a directory", (dir) => Deno.mkdir(`${dir}/state/rooms.json`), /it is a directory/],
];

for (const [name, make, reason] of NOT_REGULAR) {
  Deno.test(`state file refused (${name}): one log line, nothing of it read, the server starts empty`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "signal-fish-restart-" });
    try {
      await Deno.mkdir(`${dir}/state`);
      await make(dir);
      await using server = await start(dir);
      const lines = logLines(server, /Cannot restore rooms from/);
      equal(lines.length, 1, server.output());
      ok(reason.test(lines[0]!), lines[0]);
      ok(/starting with no rooms/.test(lines[0]!), lines[0]);
      ok(!server.output().includes("hunter2"), server.output());
      deepEqual(await status(server).then((s) => [s.rooms, s.held_seats]), [0, 0]);
      await setAside(dir);
      await stop(server);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("deno run --watch (the dev task): rooms survive a restart caused by a saved file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-watch-" });
  try {
    const trigger = `${dir}/trigger.txt`;
    await Deno.writeTextFile(trigger, "0");
    // The restarted program binds the same port, so the test picks one first.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = probe.addr.port;
    probe.close();
    await using server = await spawnServer({
      cwd: dir,
      denoFlags: ["--config", DENO_JSON, `--watch=${trigger}`],
      args: ["--port", String(port)],
      env: { SIGNAL_FISH_SERVER__STATE_FILE: STATE_FILE },
    });
    const url = `ws://127.0.0.1:${port}/v2/ws`;
    const a = await TestClient.connect(url);
    a.send(joinRoom("SAVE01", "Mira"));
    const mira = await a.next("RoomJoined");
    await Deno.writeTextFile(trigger, "1");
    await a.closed;
    const deadline = Date.now() + 20_000;
    while (logLines(server, /Restored 1 rooms and 1 held seats from/).length === 0) {
      ok(Date.now() < deadline, `no restore after the restart:\n${server.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    let b: TestClient | undefined;
    while (!b) {
      b = await TestClient.connect(url).catch(() => undefined);
      ok(b || Date.now() < deadline, "the restarted server does not accept connections");
      if (!b) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await using _b = b;
    b.send(reconnect(mira));
    const back = (await b.next("Reconnected")).data;
    equal(back.room_code, "SAVE01");
    ok(back.is_authority);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kill -9 with state_save_interval_secs: the rooms of the last snapshot come back and their players resume", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-crash-" });
  try {
    let mira: Received;
    {
      await using server = await start(dir, { SIGNAL_FISH_SERVER__STATE_SAVE_INTERVAL_SECS: "1" });
      const url = `ws://127.0.0.1:${server.port}/v2/ws`;
      await using a = await TestClient.connect(url);
      await using b = await TestClient.connect(url);
      a.send(joinRoom(null, "Mira", { max_players: 4 }));
      mira = await a.next("RoomJoined");
      b.send(joinRoom(mira.data.room_code, "Tobias"));
      await b.next("RoomJoined");
      // Wait for a snapshot that holds both seats (one a second), as the gauge and the file say.
      const deadline = Date.now() + 15_000;
      let seats = 0;
      while (seats !== 2) {
        ok(Date.now() < deadline, `no snapshot with both seats: ${server.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        const text = await Deno.readTextFile(`${dir}/state/rooms.json`).catch(() => "");
        seats = text ? JSON.parse(text).rooms[0]?.seats.length ?? 0 : 0;
      }
      const metrics = await (await fetch(`http://127.0.0.1:${server.port}/metrics/prom`)).text();
      const saved = Number(
        /^signal_fish_state_file_saved_timestamp_seconds (\S+)$/m.exec(metrics)?.[1],
      );
      ok(saved > Date.now() / 1000 - 60, `saved at ${saved}`);
      server.child.kill("SIGKILL");
      equal((await exitWithin(server, 15_000))?.signal, "SIGKILL");
      equal(logLines(server, /Saved .* rooms/).length, 0, "snapshots while running log at debug");
    }
    await using server = await start(dir);
    equal(logLines(server, /Restored 1 rooms and 2 held seats from/).length, 1, server.output());
    await using a = await TestClient.connect(`ws://127.0.0.1:${server.port}/v2/ws`);
    a.send(reconnect(mira));
    const back = (await a.next("Reconnected")).data;
    equal(back.room_code, mira.data.room_code);
    deepEqual(back.current_players.map((p: { name: string }) => p.name), ["Mira", "Tobias"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kill -9 right after a restore, before the first snapshot while running: the restored rooms come back again, their replays marked truncated", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-crash-" });
  // Snapshots while running are on, but none is due before the crash.
  const hourly = { SIGNAL_FISH_SERVER__STATE_SAVE_INTERVAL_SECS: "3600" };
  try {
    let mira: Received;
    {
      await using server = await start(dir, hourly);
      await using a = await TestClient.connect(`ws://127.0.0.1:${server.port}/v2/ws`);
      a.send(joinRoom(null, "Mira", { max_players: 4 }));
      mira = await a.next("RoomJoined");
      await stop(server);
    }
    {
      // Restores the shutdown's snapshot, then crashes before it has saved one of its own.
      await using server = await start(dir, hourly);
      equal(logLines(server, /Restored 1 rooms and 1 held seats from/).length, 1, server.output());
      // Meanwhile Bob joins and sends Mira's held seat a message, which the crash then loses.
      await using b = await TestClient.connect(`ws://127.0.0.1:${server.port}/v2/ws`);
      b.send(joinRoom(mira.data.room_code as string, "Bob"));
      await b.next("RoomJoined");
      b.send({ type: "GameData", data: { data: { lost: true } } });
      b.send({ type: "Ping" });
      await b.next("Pong");
      server.child.kill("SIGKILL");
      equal((await exitWithin(server, 15_000))?.signal, "SIGKILL");
    }
    // The last save is still the one restored above: the room comes back as it was then.
    await using server = await start(dir);
    equal(logLines(server, /Restored 1 rooms and 1 held seats from/).length, 1, server.output());
    await using a = await TestClient.connect(`ws://127.0.0.1:${server.port}/v2/ws`);
    a.send(reconnect(mira));
    const back = await a.next("Reconnected");
    equal(back.data.room_code, mira.data.room_code);
    // Bob's message is not in the replay, and Mira is told something may be missing.
    deepEqual(back.data.missed_events, []);
    equal(back.data.replay_truncated, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
