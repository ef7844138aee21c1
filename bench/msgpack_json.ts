/**
 * What the MessagePack → JSON conversion of docs/spec/PROTOCOL.md §7.7 costs per binary frame: a
 * MessagePack player's frame is converted once for the `json` members of its room and for held
 * seats' replay buffers (`msgpackToJson`, src/protocol/msgpack.ts). Shapes a game sends (one
 * player's move, a 32-entity snapshot) and shapes an attacker chooses to make the conversion dear
 * (64-KiB payloads, the largest frame, §1.4). Each conversion is timed with the UTF-8 encoding of
 * its result, as the socket write does it. Prints µs per conversion, median of `--rounds`.
 *
 * ```sh
 * deno task bench:msgpack-json [--rounds 7] [--tree <checkout>]
 * ```
 *
 * `--tree` loads another checkout's `src/protocol/msgpack.ts` (e.g. a session's start).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { encode } from "@msgpack/msgpack";

/** 65,000 bytes: the largest hostile payloads, below `max_message_size`. */
const HOSTILE_BYTES = 65_000;

/** One payload shape: its name, its bytes, and whether it is the sender's ordinary traffic. */
export interface Shape {
  name: string;
  payload: Uint8Array;
  game: boolean;
}

/** The measured payloads: two a game sends, then attackers' choices. */
export function shapes(): Shape[] {
  const nested = new Uint8Array(HOSTILE_BYTES).fill(0x91); // [[[[…nil…]]]]
  nested[HOSTILE_BYTES - 1] = 0xc0;
  const integers = new Uint8Array(HOSTILE_BYTES); // one array16 of fixint 0
  integers.set([0xdc, ((HOSTILE_BYTES - 3) >> 8) & 0xff, (HOSTILE_BYTES - 3) & 0xff]);
  const controls = new Uint8Array(HOSTILE_BYTES).fill(0x01); // str32 of U+0001, 6 bytes each in JSON
  controls.set([0xdb, 0, 0, ((HOSTILE_BYTES - 5) >> 8) & 0xff, (HOSTILE_BYTES - 5) & 0xff]);
  const unconvertible = new Uint8Array(HOSTILE_BYTES).fill(0x91); // nesting that ends in a bin
  unconvertible.set([0xc4, 0x00], HOSTILE_BYTES - 2);
  const entity = (id: number) => ({ id, x: id * 1.5, y: -id / 3, vx: 0.25, vy: -0.5, hp: 100 });
  return [
    {
      name: "move (one player's input)",
      payload: encode({ op: "move", x: 12.5, y: -3.25, tick: 48213, name: "player-1" }),
      game: true,
    },
    {
      name: "snapshot (32 entities)",
      payload: encode({ tick: 48213, entities: Array.from({ length: 32 }, (_, i) => entity(i)) }),
      game: true,
    },
    { name: "64 KiB of nested arrays", payload: nested, game: false },
    { name: "64 KiB array of integers", payload: integers, game: false },
    {
      name: "64 KiB map of 6,000 keys",
      payload: encode(Object.fromEntries(Array.from({ length: 6000 }, (_, i) => [`k${i}`, i]))),
      game: false,
    },
    { name: "64 KiB string of control chars", payload: controls, game: false },
    { name: "64 KiB nesting ending in a bin", payload: unconvertible, game: false },
  ];
}

/** µs per conversion of each shape, median of `rounds`, and whether it had a JSON form. */
export interface ShapeTiming {
  name: string;
  bytes: number;
  microseconds: number;
  converted: boolean;
}

/** Times checkout `tree`'s `msgpackToJson` on every shape of {@linkcode shapes}. */
export async function runMsgpackJson(
  options: { rounds: number; tree: string },
): Promise<ShapeTiming[]> {
  const module = await import(pathToFileURL(resolve(options.tree, "src/protocol/msgpack.ts")).href);
  const convert = module.msgpackToJson as (payload: Uint8Array) => string | undefined;
  const encoder = new TextEncoder();
  const all = shapes();
  // Warm-up: every shape a few times before any is timed, so each timing runs optimised code
  // that has seen every branch (a server has, from its ordinary traffic), and the repeat count
  // of each shape makes a round of about 50 ms.
  const repeats = all.map((shape) => {
    let once = Infinity;
    for (let i = 0; i < 30; i++) {
      const started = performance.now();
      convert(shape.payload);
      once = Math.min(once, performance.now() - started);
    }
    return Math.max(5, Math.min(100_000, Math.round(50 / Math.max(once, 0.0005))));
  });
  const results: ShapeTiming[] = [];
  for (const [index, shape] of all.entries()) {
    const repeat = repeats[index]!;
    const rounds: number[] = [];
    let converted = false;
    for (let round = 0; round < options.rounds; round++) {
      const t0 = performance.now();
      for (let i = 0; i < repeat; i++) {
        const text = convert(shape.payload);
        if (text !== undefined) converted = encoder.encode(text).length > 0;
      }
      rounds.push((performance.now() - t0) * 1000 / repeat);
    }
    rounds.sort((a, b) => a - b);
    results.push({
      name: shape.name,
      bytes: shape.payload.length,
      microseconds: rounds[Math.floor(rounds.length / 2)]!,
      converted,
    });
  }
  return results;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "7" },
      tree: { type: "string", default: resolve(import.meta.dirname!, "..") },
    },
  });
  console.log(values.tree);
  for (const result of await runMsgpackJson({ rounds: Number(values.rounds), tree: values.tree })) {
    console.log(
      `${result.name.padEnd(32)} ${String(result.bytes).padStart(6)} B ${
        result.microseconds.toFixed(2).padStart(10)
      } µs ${result.converted ? "→ JSON" : "→ nothing"}`,
    );
  }
}
