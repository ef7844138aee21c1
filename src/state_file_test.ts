/**
 * Snapshots taken while running (`server.state_save_interval_secs`, docs/spec/SERVER.md §2.7
 * `state_file`): written without blocking, never over the shutdown's newer snapshot.
 */
import { equal, ok } from "node:assert/strict";
import { join } from "./engine/testing.ts";
import { Engine } from "./engine/engine.ts";
import { testOptions } from "./engine/testing.ts";
import { PeriodicStateSaves, saveState, sha256TokenDigest } from "./state_file.ts";

const T0 = Date.UTC(2026, 11, 7, 12, 0, 0);

function engineWithRoom(code: string): Engine {
  const engine = new Engine(
    testOptions({ enableReconnection: true, tokenDigest: sha256TokenDigest }),
  );
  const id = crypto.randomUUID();
  engine.connect(id);
  engine.handle(id, join(code, "Mira"), T0);
  return engine;
}

/** The room codes of the snapshot in `path`. */
async function savedCodes(path: string): Promise<string[]> {
  const snapshot = JSON.parse(await Deno.readTextFile(path));
  return snapshot.rooms.map((room: { room_code?: string; code?: string }) =>
    room.room_code ?? room.code
  );
}

Deno.test("A periodic snapshot writes the rooms as they were when it was taken, and times itself", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-periodic-" });
  try {
    const path = `${dir}/state/rooms.json`;
    const engine = engineWithRoom("ROOM01");
    const saves = new PeriodicStateSaves(engine, { path, maxBytes: 1 << 20 }, 60_000);
    equal(saves.lastSavedAt, 0);
    const outcome = await saves.saveNow(T0 + 5);
    ok(outcome?.ok, JSON.stringify(outcome));
    equal(saves.lastSavedAt, T0 + 5);
    equal((await savedCodes(path)).length, 1);
    const left = [...Deno.readDirSync(`${dir}/state`)].map((entry) => entry.name);
    equal(left.join(","), "rooms.json", "no temporary file left behind");
    // Over the size bound: refused, the earlier snapshot stays.
    const tiny = new PeriodicStateSaves(engine, { path, maxBytes: 10 }, 60_000);
    equal((await tiny.saveNow(T0 + 6))?.ok, false);
    equal(tiny.lastSavedAt, 0);
    equal((await savedCodes(path)).length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("A periodic snapshot on its way when the shutdown's is written does not replace it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-periodic-" });
  try {
    const path = `${dir}/rooms.json`;
    const options = { path, maxBytes: 1 << 20 };
    const engine = engineWithRoom("ROOM01");
    const saves = new PeriodicStateSaves(engine, options, 60_000);
    const periodic = saves.saveNow(T0); // taken now: one room; written asynchronously
    // Meanwhile a second room, then the shutdown: stop, and the synchronous snapshot.
    const id = crypto.randomUUID();
    engine.connect(id);
    engine.handle(id, join("ROOM02", "Tobias"), T0 + 1);
    saves.stop();
    ok(saveState(engine, options, T0 + 2).ok);
    equal(await periodic, undefined, "the older snapshot was not put in place");
    equal((await savedCodes(path)).length, 2, "the shutdown's snapshot stays");
    equal([...Deno.readDirSync(dir)].length, 1, "no temporary file left behind");
    equal(await saves.saveNow(T0 + 3), undefined, "stopped: no snapshot after the shutdown's");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
