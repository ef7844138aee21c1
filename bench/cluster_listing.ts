/**
 * What one room listing of a game (`GET /v2/rooms?game_name=…`, docs/spec/EXTENSIONS.md E6) costs
 * in cluster mode, where the directory in Redis answers it (docs/spec/SERVER.md §8.3): a private
 * `redis-server`, `--rooms` rooms of one game claimed through the store (every `--empty-every`th
 * without a player, so the listing skips it), then `list(game, 100)` timed `--repeat` times.
 * Prints per listing the median and maximum wall time (ms), this process's CPU (ms: parsing and
 * sorting happen on the instance's event loop, a stall every connection sees) and Redis's CPU
 * (`INFO commandstats`, ms: Redis runs one command at a time, so it is a stall for every instance).
 *
 * ```sh
 * deno task bench:cluster-listing [--rooms 20000] [--empty-every 10] [--repeat 21] [--tree <checkout>] [--all]
 * ```
 *
 * `--tree` loads another checkout's store (e.g. a session's start) with this driver; `--all` times
 * the operator's listing of every game's rooms instead (`all(501)`: 501 ranks of
 * `rooms-by:created`, as `/admin/api/rooms` reads a page without a filter).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import process from "node:process";
import { startRedis } from "../tests/redis_server.ts";

const args = parseArgs({
  options: {
    rooms: { type: "string", default: "20000" },
    "empty-every": { type: "string", default: "10" },
    repeat: { type: "string", default: "21" },
    tree: { type: "string", default: "." },
    all: { type: "boolean", default: false },
  },
});
/** `--all`: the operator's listing of every room (`/admin/api/rooms`, at most 500 and one more). */
const all = args.values.all === true;
const rooms = Number(args.values.rooms);
const emptyEvery = Number(args.values["empty-every"]);
const repeat = Number(args.values.repeat);
const tree = resolve(args.values.tree!);
// deno-lint-ignore no-explicit-any
const load = (path: string): Promise<any> => import(pathToFileURL(resolve(tree, path)).href);
const { RedisLink, RedisStore } = await load("src/cluster/store.ts");

const server = await startRedis();
const link = new RedisLink({ url: server.url });
await link.connect();
try {
  const store = new RedisStore(link, {
    prefix: "sf:",
    ttlMs: 600_000,
    reconnectionWindowMs: 600_000,
    buckets: {
      creation: { capacity: 1, windowMs: 60_000 },
      join: { capacity: 1, windowMs: 60_000 },
      reconnect: { capacity: 1, windowMs: 60_000 },
      auth_failure: { capacity: 1, windowMs: 60_000 },
    },
    timeoutMs: 10_000,
  });
  const started = Date.now();
  for (let first = 0; first < rooms; first += 500) {
    const batch = [];
    for (let i = first; i < Math.min(rooms, first + 500); i++) {
      const code = i.toString(36).toUpperCase().padStart(6, "0");
      const players = i % emptyEvery === 0 ? 0 : 2;
      batch.push(store.claim({
        roomId: `room-${i}`,
        gameName: "orbit",
        roomCode: code,
        createdAt: started + i,
        home: "a@00000001",
        summary: {
          room_code: code,
          game_name: "orbit",
          players,
          max_players: 4,
          spectators: 0,
          lobby_state: "waiting",
          supports_authority: true,
          relay_type: "matchbox",
          authority_handover: false,
        },
      }, { maxRoomsPerGame: rooms + 1 }));
    }
    await Promise.all(batch);
  }
  const redisUsec = async () => {
    const info = String(await link.command.sendCommand(["INFO", "commandstats"]));
    let total = 0;
    for (const match of info.matchAll(/usec=(\d+)/g)) total += Number(match[1]);
    return total;
  };
  const wall: number[] = [];
  const cpu: number[] = [];
  const redis: number[] = [];
  let listed = 0;
  for (let i = 0; i < repeat; i++) {
    const redisBefore = await redisUsec();
    const cpuBefore = process.cpuUsage();
    const t0 = performance.now();
    listed = all ? (await store.all(501)).length : (await store.list("orbit", 100)).length;
    wall.push(performance.now() - t0);
    const used = process.cpuUsage(cpuBefore);
    cpu.push((used.user + used.system) / 1000);
    // The INFO call itself is counted too: subtract one INFO measured alone.
    const redisAfter = await redisUsec();
    redis.push((redisAfter - redisBefore) / 1000);
  }
  const infoAlone = await (async () => {
    const a = await redisUsec();
    const b = await redisUsec();
    return (b - a) / 1000;
  })();
  const stat = (xs: number[], less = 0) => {
    const sorted = xs.map((x) => x - less).sort((a, b) => a - b);
    return {
      medianMs: Number(sorted[Math.floor(sorted.length / 2)]!.toFixed(3)),
      maxMs: Number(sorted.at(-1)!.toFixed(3)),
    };
  };
  console.log(JSON.stringify(
    {
      tree,
      rooms,
      listed,
      wall: stat(wall),
      instanceCpu: stat(cpu),
      redisCpu: stat(redis, infoAlone),
    },
    null,
    2,
  ));
} finally {
  await link.close();
  await server.stop();
}
