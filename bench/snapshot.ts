/**
 * Size and cost of the rooms snapshot (README "Rooms survive a restart"): 1000 rooms of 4 seats,
 * one held seat per room with 20 replayed messages; builds, serialises, decodes and restores it,
 * and prints the figures (no file I/O; the atomic write adds one fsync).
 *
 * ```sh
 * deno run --lock=tests/deno.lock --allow-env bench/snapshot.ts
 * ```
 *
 * @module
 */
import { DEFAULT_CONFIG } from "../src/config/schema.ts";
import { decodeSnapshot, Engine } from "../src/engine/engine.ts";
import type { ClientMessage } from "../src/protocol/messages.ts";
import { engineOptions } from "../src/server.ts";

const ROOMS = 1000;
const SEATS = 4;
const REPLAYED = 20;

const config = structuredClone(DEFAULT_CONFIG);
config.rate_limit.max_room_creations = 1e9;
config.rate_limit.max_join_attempts = 1e9;
const options = engineOptions(config);
const engine = new Engine(options);
const now = Date.now();
for (let r = 0; r < ROOMS; r++) {
  const ids: string[] = [];
  for (let s = 0; s < SEATS; s++) {
    const id = crypto.randomUUID();
    ids.push(id);
    engine.connect(id, { ip: "127.0.0.1", now });
    const join: ClientMessage = {
      type: "JoinRoom",
      data: {
        game_name: "bench",
        room_code: `R${String(r).padStart(5, "0")}`,
        player_name: `p${s}`,
        max_players: SEATS,
      },
    };
    engine.handle(id, join, now);
  }
  engine.disconnect(ids[0]!, now);
  for (let m = 0; m < REPLAYED; m++) {
    const data: ClientMessage = {
      type: "GameData",
      data: { data: { op: "steer", tick: m, pad: "x".repeat(60) } },
    };
    engine.handle(ids[1]!, data, now);
  }
}

const started = performance.now();
const text = JSON.stringify(engine.snapshot(now));
const built = performance.now();
const decoded = decodeSnapshot(text);
const parsed = performance.now();
const restored = new Engine(options);
const outcome = decoded.ok ? restored.restore(decoded.value, now) : decoded;
const done = performance.now();
console.log(JSON.stringify({
  rooms: ROOMS,
  seats: ROOMS * SEATS,
  bytes: new TextEncoder().encode(text).length,
  snapshot_ms: Math.round(built - started),
  decode_ms: Math.round(parsed - built),
  restore_ms: Math.round(done - parsed),
  restored: outcome.ok,
  held_seats: restored.stats().heldSeats,
}));
