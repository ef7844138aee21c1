/**
 * What the operator's reads cost the event loop at many rooms: one Prometheus scrape
 * (`/metrics/prom`, docs/spec/SERVER.md §6.3), one room listing of a game (`GET /v2/rooms`,
 * docs/spec/EXTENSIONS.md E6, from the edge's directory as the HTTP route reads it) of a game
 * with rooms and of a game with none, and the dashboard
 * refresh every `metrics.dashboard_cache_refresh_interval_secs` (§6.6). Engine and metrics
 * only, no sockets: `--rooms` rooms of two players each over `--games` games, every read timed
 * `--repeat` times; prints the median and the maximum in ms. Each of these runs on the event loop
 * between relayed frames, so its time is a stall every connection of the instance sees.
 *
 * ```sh
 * deno task bench:operator-reads [--rooms 100000] [--games 100] [--repeat 21] [--tree <checkout>]
 * ```
 *
 * `--tree` loads another checkout's engine and metrics (e.g. a session's start) with this driver.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

/** Median and maximum of one read, ms. */
export interface ReadTiming {
  medianMs: number;
  maxMs: number;
}

/** The timings of {@linkcode runOperatorReads}, by read. */
export interface OperatorReads {
  rooms: number;
  players: number;
  scrape: ReadTiming;
  listing: ReadTiming;
  listingUnknownGame: ReadTiming;
  dashboardRefresh: ReadTiming;
}

function time(repeat: number, read: (i: number) => unknown): ReadTiming {
  const samples: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const started = performance.now();
    read(i);
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  return { medianMs: samples[Math.floor(samples.length / 2)]!, maxMs: samples.at(-1)! };
}

/**
 * Fills an engine of checkout `tree` with `rooms` rooms of two players over `games` games
 * (room caps lifted) and times the operator's reads `repeat` times each.
 */
export async function runOperatorReads(
  options: { rooms: number; games: number; repeat: number; tree: string },
): Promise<OperatorReads> {
  // deno-lint-ignore no-explicit-any
  const load = (path: string): Promise<any> =>
    import(pathToFileURL(resolve(options.tree, path)).href);
  const { DEFAULT_CONFIG } = await load("src/config/schema.ts");
  const { Engine } = await load("src/engine/engine.ts");
  const { engineOptions, serverMetrics } = await load("src/server.ts");
  const { MemoryRoomDirectory } = await load("src/coordination/memory.ts");
  const config = structuredClone(DEFAULT_CONFIG);
  config.server.max_rooms_per_game = 1e9;
  config.server.max_rooms_per_ip = 1e9;
  const engine = new Engine({ ...engineOptions(config), rateLimits: undefined });
  const metrics = serverMetrics(config, engine, () => 2 * options.rooms);
  const now = Date.now();
  let connection = 0;
  for (let room = 0; room < options.rooms; room++) {
    const code = room.toString(36).toUpperCase().padStart(6, "0");
    for (let seat = 0; seat < 2; seat++) {
      const id = `c${connection++}`;
      engine.connect(id, { ip: "127.0.0.1" });
      engine.handle(id, {
        type: "JoinRoom",
        data: {
          game_name: `game-${room % options.games}`,
          room_code: code,
          player_name: `p${seat}`,
          max_players: 4,
        },
      }, now);
    }
  }
  // The directory the HTTP routes read in single-instance mode (the edge's), written as the
  // edge writes it: one entry per room as it is created.
  const directory = new MemoryRoomDirectory();
  for (const entry of engine.directoryEntries()) directory.refresh({ ...entry, home: "local" });
  const stats = engine.stats();
  // Each refresh a new period, so none is served from the cache.
  const dashboardRefresh = time(
    options.repeat,
    (i) => metrics.refreshDashboard(now + (i + 1) * 60_000),
  );
  return {
    rooms: stats.rooms,
    players: stats.players,
    scrape: time(options.repeat, () => metrics.renderPrometheus()),
    listing: time(options.repeat, () => directory.list("game-7", 100)),
    listingUnknownGame: time(options.repeat, () => directory.list("no-such-game", 100)),
    dashboardRefresh,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rooms: { type: "string", default: "100000" },
      games: { type: "string", default: "100" },
      repeat: { type: "string", default: "21" },
      tree: { type: "string", default: resolve(import.meta.dirname!, "..") },
    },
  });
  const result = await runOperatorReads({
    rooms: Number(values.rooms),
    games: Number(values.games),
    repeat: Number(values.repeat),
    tree: values.tree,
  });
  console.log(`${values.tree}: ${result.rooms} rooms, ${result.players} players`);
  for (
    const [label, timing] of [
      ["Prometheus scrape", result.scrape],
      ["listing, a game of the rooms", result.listing],
      ["listing, a game without rooms", result.listingUnknownGame],
      ["dashboard refresh", result.dashboardRefresh],
    ] as const
  ) {
    console.log(
      `${label.padEnd(32)} median ${timing.medianMs.toFixed(3)} ms, max ${
        timing.maxMs.toFixed(3)
      } ms`,
    );
  }
}
