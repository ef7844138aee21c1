/**
 * Memory per held seat (issue 3): fills the replay buffers of many held seats with distinct
 * targeted messages and reports the heap growth per seat. Engine only, no sockets; run with
 * `deno task bench:held-seats [seats] [message bytes]` (needs `--v8-flags=--expose-gc`).
 *
 * @module
 */
import { Engine } from "../src/engine/engine.ts";
import type { ClientMessage } from "../src/protocol/messages.ts";
import { testOptions } from "../src/engine/testing.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("Run with --v8-flags=--expose-gc");
const seats = Number(Deno.args[0] ?? 1000);
const size = Number(Deno.args[1] ?? 2600);
const bufferBytes = 262_144;
const engine = new Engine(
  testOptions({ enableReconnection: true, maxRoomsPerGame: 1e9, eventBufferMaxBytes: bufferBytes }),
);
const pairs: [string, string][] = [];
for (let room = 0; room < seats; room++) {
  const code = `H${String(room).padStart(5, "0")}`;
  const pair: [string, string] = [crypto.randomUUID(), crypto.randomUUID()];
  for (const [i, id] of pair.entries()) {
    engine.connect(id);
    engine.handle(id, {
      type: "JoinRoom",
      data: { game_name: "held", room_code: code, player_name: `p${i}` },
    } as ClientMessage, 0);
  }
  pairs.push(pair);
}
gc();
const before = Deno.memoryUsage().heapUsed;
for (const [dropped] of pairs) engine.disconnect(dropped, 1);
// More than the buffer holds, each message distinct (targeted), so nothing is shared.
const perSeat = Math.ceil((bufferBytes / size) * 1.2) + 10;
for (const [dropped, sender] of pairs) {
  for (let k = 0; k < perSeat; k++) {
    const text = `${k}:${dropped}:`.padEnd(size - 60, "x");
    engine.handle(sender, {
      type: "GameData",
      data: { data: text, to_player: dropped },
    } as ClientMessage, 2);
  }
}
gc();
const after = Deno.memoryUsage().heapUsed;
const stats = engine.stats();
console.log(
  `${stats.heldSeats} held seats, ${perSeat} distinct ~${size}-byte messages each ` +
    `(buffer bound ${bufferBytes} bytes, ${Math.min(100, Math.floor(bufferBytes / size))} kept): ` +
    `${((after - before) / seats / 1024).toFixed(1)} KiB of heap per held seat`,
);
