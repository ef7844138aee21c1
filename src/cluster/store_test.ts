/**
 * The store beyond the directory and bucket contracts (docs/spec/SERVER.md §8.3): resolve, liveness, epoch,
 * TTLs, and Redis's failure modes (NOSCRIPT after a restart, fail-fast while down, fallback
 * buckets). The shared checks loop over the in-memory twin and a private redis-server.
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { ROOM_SORT_KEYS } from "../coordination/directory.ts";
import {
  IGNORE_WITHOUT_REDIS,
  makeCertificates,
  type RedisServer,
  startRedis,
} from "../../tests/redis_server.ts";
import { NoAnswer } from "../coordination/no_answer.ts";
import { MAX_GAMES_PER_INSTANCE, sumGames, topGames } from "../coordination/game_counts.ts";
import { gameTag, Keys } from "./keys.ts";
import { MemoryStore } from "./memory_store.ts";
import { testRecord as record, until } from "./testing.ts";
import { bounded, reconnectDelay, RedisLink, RedisStore, runIdOf } from "./store.ts";
import { RedisBus } from "./bus.ts";
import { type ClusterStore, PendingReleases, Reachability, type StoreSettings } from "./types.ts";

function settings(overrides: Partial<StoreSettings> = {}): StoreSettings {
  return {
    prefix: "sf:",
    ttlMs: 30_000,
    reconnectionWindowMs: 300_000,
    buckets: {
      creation: { capacity: 1, windowMs: 60_000 },
      join: { capacity: 2, windowMs: 60_000 },
      reconnect: { capacity: 3, windowMs: 60_000 },
      auth_failure: { capacity: 3, windowMs: 60_000 },
    },
    timeoutMs: 2_000,
    ...overrides,
  };
}

/**
 * Runs `body` with a `RedisStore` of `storeSettings` on a redis-server of its own (stopped after),
 * the key names under the `sf:` prefix, and a way to send that server any command.
 */
async function withRedisStore(
  storeSettings: StoreSettings,
  body: (redis: {
    store: RedisStore;
    keys: Keys;
    redis: (...command: string[]) => Promise<unknown>;
  }) => Promise<void>,
): Promise<void> {
  const server: RedisServer = await startRedis();
  const link = new RedisLink({ url: server.url });
  try {
    await link.connect();
    await body({
      store: new RedisStore(link, storeSettings),
      keys: new Keys("sf:"),
      redis: (...command) => link.command.sendCommand(command),
    });
  } finally {
    await link.close();
    await server.stop();
  }
}

/**
 * Makes node `node`'s liveness and `instance-games:` keys lapse: on Redis by shortening their TTL
 * to 1 ms and waiting past it (Redis keeps time by its own clock), on the twin by reading after
 * its clock passed `T` (the caller moved it).
 */
async function expire(store: ClusterStore, node: string): Promise<void> {
  const redis = RAW.get(store);
  if (redis === undefined) return;
  const keys = new Keys("sf:");
  for (const key of [keys.instance(node), keys.instanceGames(node)]) {
    const ttl = Number(await redis("PTTL", key));
    ok(ttl > 0 && ttl <= 30_000, `${key}: TTL T, got ${ttl} ms`);
    equal(await redis("PEXPIRE", key, "1"), 1, key);
  }
  while (Number(await redis("EXISTS", keys.instance(node), keys.instanceGames(node))) > 0) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/**
 * Makes node `node`'s liveness key lapse (its `instances` member stays): on Redis by shortening
 * its TTL to 1 ms and waiting past it, on the twin by reading after its clock passed `T` (the
 * caller moved it).
 */
async function lapse(store: ClusterStore, node: string): Promise<void> {
  const redis = RAW.get(store);
  if (redis === undefined) return;
  const key = new Keys("sf:").instance(node);
  equal(await redis("PEXPIRE", key, "1"), 1, key);
  while (Number(await redis("EXISTS", key)) > 0) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** The members of the `instances` index, sorted, none removed. */
async function indexed(store: ClusterStore): Promise<string[]> {
  const redis = RAW.get(store);
  if (redis === undefined) return (store as MemoryStore).indexed().sort();
  return ((await redis("ZRANGE", new Keys("sf:").instances(), "0", "-1")) as string[]).sort();
}

/** Scans for `instance:*` keys so far: Redis's `SCAN` calls (`INFO commandstats`), the twin's count. */
async function scans(store: ClusterStore): Promise<number> {
  const redis = RAW.get(store);
  if (redis === undefined) return (store as MemoryStore).scans;
  const info = String(await redis("INFO", "commandstats"));
  return Number(/cmdstat_scan:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

/** Writes `instance:<node>` as a version without the `instances` index does (TTL `T` = 30 s). */
async function writeUnindexed(
  store: ClusterStore,
  node: string,
  liveness: { startedAt: number; state: "up" | "draining" },
): Promise<void> {
  const redis = RAW.get(store);
  if (redis === undefined) return (store as MemoryStore).writeUnindexedLiveness(node, liveness);
  await redis("SET", new Keys("sf:").instance(node), JSON.stringify(liveness), "PX", "30000");
}

/** The Redis stores of the contract suite, each with a way to send its server any command. */
const RAW = new WeakMap<ClusterStore, (...command: string[]) => Promise<unknown>>();

type Make = (s: StoreSettings, cleanups: (() => Promise<void>)[]) => Promise<ClusterStore>;

/**
 * Stores of nodes whose clocks run off the true time, all on one Redis (or one twin): what the
 * clock-skew tests need (docs/spec/SERVER.md §8.1).
 */
interface Skewed {
  /** One store per skew given, in order; a node's clock is the true time plus its skew. */
  stores: ClusterStore[];
  /** The true time, ms: Redis's own clock (this machine's), or the twin's. */
  now(): number;
  /** Lets `ms` pass: the twin's clock moves, Redis's is waited for. */
  pass(ms: number): Promise<void>;
  /**
   * Takes a room out of its game's listing order (`game-order`), as when a version without it
   * claimed the room; the twin has no such order.
   */
  unorder(gameName: string, roomCode: string): Promise<void>;
}

type MakeSkewed = (
  s: StoreSettings,
  skews: number[],
  cleanups: (() => Promise<void>)[],
) => Promise<Skewed>;

Deno.test({
  name:
    "RedisStore: a crashed home's rooms leave the expiry-scored sets at any refresh of their game and the listing orders through the order sweep",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    let clock = 1_000_000;
    const redisNow = () => clock;
    await withRedisStore(settings({ now: redisNow, redisNow }), async ({ store, keys, redis }) => {
      const app = { appId: "app-1", creatorIp: "198.51.100.7" };
      for (let i = 0; i < 5; i++) {
        const code = `C${String(i).padStart(5, "0")}`;
        const claimed = await store.claim(
          record(code, "dead@1", { createdAt: 1_000 + i, ...app }),
          { maxRoomsPerGame: 500 },
        );
        equal(claimed.status, "ok");
      }
      // The home of C00000–C00003 crashes: their entries expire, nobody releases them. Another
      // node's room of the game goes on being refreshed, so no set expires as a whole.
      await redis("DEL", ...[0, 1, 2, 3].map((i) => keys.room("orbit", `C0000${i}`)));
      clock += 31_000;
      equal(
        await store.refresh(record("C00004", "live@1", { createdAt: 1_004, ...app })),
        "refreshed",
      );
      deepEqual(await redis("ZRANGE", keys.gameRooms("orbit"), "0", "-1"), ["C00004"]);
      deepEqual(await redis("ZRANGE", keys.appRooms("app-1"), "0", "-1"), ["id-C00004"]);
      deepEqual(
        await redis("ZRANGE", keys.ipRooms("orbit", "198.51.100.7"), "0", "-1"),
        ["C00004"],
      );
      deepEqual(await redis("ZRANGE", keys.gameOrder("orbit"), "0", "-1"), [
        "C00000",
        "C00001",
        "C00002",
        "C00003",
        "C00004",
      ]);
      for (const key of ROOM_SORT_KEYS) {
        equal(await redis("ZCARD", keys.roomsBy(key)), 5, `rooms-by:${key} before the sweep`);
      }
      // The sweep walks rooms-by:created a few members at a time, from where it stopped, and
      // takes each dead room out of every listing order.
      deepEqual(await store.sweepOrder(0, 2), { next: 0, removed: 2 });
      deepEqual(await store.sweepOrder(0, 2), { next: 0, removed: 2 });
      deepEqual(await store.sweepOrder(0, 2), { next: 0, removed: 0 });
      deepEqual(await redis("ZRANGE", keys.gameOrder("orbit"), "0", "-1"), ["C00004"]);
      for (const key of ROOM_SORT_KEYS) {
        deepEqual(await redis("ZRANGE", keys.roomsBy(key), "0", "-1"), [
          key === "code"
            ? keys.codeSortMember("orbit", "C00004")
            : keys.sortMember("orbit", "C00004"),
        ], `rooms-by:${key}`);
      }
    });
  },
});

const STORES: { name: string; ignore?: boolean; make: Make; skewed: MakeSkewed }[] = [
  {
    name: "memory twin",
    make: (s) => Promise.resolve(new MemoryStore(s)),
    // One twin for every node: its clock is Redis's, and a node's own clock reaches it only as
    // the `now` of a bucket take.
    skewed: (s, skews) => {
      let clock = 1_700_000_000_000;
      const store = new MemoryStore({ ...s, now: () => clock });
      return Promise.resolve({
        stores: skews.map(() => store),
        now: () => clock,
        pass: (ms) => {
          clock += ms;
          return Promise.resolve();
        },
        unorder: () => Promise.resolve(),
      });
    },
  },
  {
    name: "redis",
    ignore: IGNORE_WITHOUT_REDIS,
    make: async (s, cleanups) => {
      const server = await startRedis();
      cleanups.push(() => server.stop());
      const link = new RedisLink({ url: server.url });
      cleanups.push(() => link.close());
      await link.connect();
      // A test's clock is Redis's, as the twin's `now` is: the scripts take it for `TIME`.
      const store = new RedisStore(link, s.now ? { ...s, redisNow: s.now } : s);
      RAW.set(store, (...command) => link.command.sendCommand(command));
      return store;
    },
    skewed: async (s, skews, cleanups) => {
      const server = await startRedis();
      cleanups.push(() => server.stop());
      const link = new RedisLink({ url: server.url });
      cleanups.push(() => link.close());
      await link.connect();
      return {
        stores: skews.map((skew) => new RedisStore(link, { ...s, now: () => Date.now() + skew })),
        now: Date.now,
        pass: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        unorder: async (gameName, roomCode) => {
          const order = new Keys("sf:").gameOrder(gameName);
          equal(await link.command.sendCommand(["ZREM", order, roomCode]), 1, order);
        },
      };
    },
  },
];

/** A node clock 10 minutes ahead of the true time, ms. */
const AHEAD = 600_000;

for (const { name, ignore, make, skewed } of STORES) {
  const test = (title: string, body: (cleanups: (() => Promise<void>)[]) => Promise<void>) =>
    Deno.test({
      name: `ClusterStore (${name}): ${title}`,
      ignore,
      fn: async () => {
        const cleanups: (() => Promise<void>)[] = [];
        try {
          await body(cleanups);
        } finally {
          for (const cleanup of cleanups.reverse()) await cleanup();
        }
      },
    });

  test("resolve by code and by room id reports the home and whether it is alive", async (c) => {
    const store = await make(settings(), c);
    deepEqual(await store.resolveCode("orbit", "AAAAAA"), { status: "absent", maintenance: false });
    deepEqual(await store.resolveRoomId("id-AAAAAA"), { status: "absent" });
    await store.claim(record("AAAAAA", "a@1", { appId: "app" }), { maxRoomsPerGame: 5 });
    const byCode = await store.resolveCode("orbit", "AAAAAA");
    equal(byCode.status, "found");
    if (byCode.status !== "found") return;
    equal(byCode.home, "a@1");
    equal(byCode.homeAlive, false, "no liveness key yet");
    deepEqual(byCode.entry, record("AAAAAA", "a@1", { appId: "app" }));
    await store.writeLiveness("a@1", { startedAt: 5, state: "up" });
    const byId = await store.resolveRoomId("id-AAAAAA");
    deepEqual(byId, {
      status: "found",
      home: "a@1",
      homeAlive: true,
      record: { roomId: "id-AAAAAA", gameName: "orbit", roomCode: "AAAAAA" },
    });
    await store.release("orbit", "AAAAAA", "id-AAAAAA");
    // The tombstone names the home that released it (its token records answer Reconnect).
    const gone = { status: "gone", home: "a@1", homeAlive: true };
    deepEqual(await store.resolveRoomId("id-AAAAAA"), gone);
    await store.release("orbit", "AAAAAA", "id-AAAAAA");
    deepEqual(await store.resolveRoomId("id-AAAAAA"), gone, "a second release keeps it");
    await store.deleteLiveness("a@1");
    deepEqual(await store.resolveRoomId("id-AAAAAA"), { ...gone, homeAlive: false });
    await store.writeLiveness("a@1", { startedAt: 5, state: "up" });
    deepEqual(await store.resolveCode("orbit", "AAAAAA"), { status: "absent", maintenance: false });
    // The app slot was freed with the release.
    deepEqual(
      await store.claim(record("BBBBBB", "a@1", { appId: "app" }), {
        maxRoomsPerGame: 5,
        maxAppRooms: 1,
      }),
      { status: "ok" },
    );
  });

  test("maintenance mode: claims of free codes refused, taken codes still answered, resolves say so", async (c) => {
    const store = await make(settings(), c);
    await store.claim(record("AAAAAA"), { maxRoomsPerGame: 5 });
    equal(await store.maintenance(), false);
    equal((await store.resolveCode("orbit", "AAAAAA")).maintenance, false);
    await store.setMaintenance(true);
    equal(await store.maintenance(), true);
    deepEqual(await store.claim(record("BBBBBB"), { maxRoomsPerGame: 5 }), {
      status: "maintenance",
    });
    // A taken code is still a join of its room, even in maintenance mode.
    equal(
      (await store.claim(record("AAAAAA", "b@1", { roomId: "other" }), { maxRoomsPerGame: 5 }))
        .status,
      "taken",
    );
    equal((await store.resolveCode("orbit", "AAAAAA")).maintenance, true);
    deepEqual(await store.resolveCode("orbit", "BBBBBB"), { status: "absent", maintenance: true });
    await store.setMaintenance(false);
    equal(await store.maintenance(), false);
    deepEqual(await store.claim(record("BBBBBB"), { maxRoomsPerGame: 5 }), { status: "ok" });
  });

  test("a refresh of a conflicting room keeps its room-id entry alive", async (c) => {
    const store = await make(settings(), c);
    await store.claim(record("AAAAAA", "a@1"), { maxRoomsPerGame: 5 });
    const loser = record("AAAAAA", "b@2", { roomId: "id-loser" });
    deepEqual(await store.refreshAll([loser, record("CCCCCC", "b@2")]), ["conflict", "created"]);
    const byId = await store.resolveRoomId("id-loser");
    equal(byId.status === "found" && byId.home, "b@2");
    equal((await store.lookup("orbit", "AAAAAA"))?.home, "a@1", "the entry's room keeps it");
  });

  test("liveness keys: written, listed, deleted", async (c) => {
    const store = await make(settings(), c);
    await store.writeLiveness("a@1", { startedAt: 1, state: "up" });
    await store.writeLiveness("b@2", { startedAt: 2, state: "draining" });
    deepEqual(await store.liveness("b@2"), { startedAt: 2, state: "draining" });
    deepEqual(
      [...(await store.nodes())].sort(),
      [["a@1", { startedAt: 1, state: "up" }], ["b@2", { startedAt: 2, state: "draining" }]],
    );
    await store.deleteLiveness("a@1");
    equal(await store.liveness("a@1"), undefined);
  });

  test("instances index: written nodes listed, deleted and lapsed ones not, lapsed members pruned `T` past their expiry", async (c) => {
    let clock = 1_000_000;
    const store = await make(settings({ ttlMs: 30_000, now: () => clock }), c);
    const up = { startedAt: 1, state: "up" } as const;
    for (const node of ["a@1", "b@2", "c@3"]) await store.writeLiveness(node, up);
    deepEqual([...(await store.nodes()).keys()].sort(), ["a@1", "b@2", "c@3"]);
    deepEqual(await indexed(store), ["a@1", "b@2", "c@3"]);
    await store.deleteLiveness("a@1");
    deepEqual([...(await store.nodes()).keys()].sort(), ["b@2", "c@3"]);
    deepEqual(await indexed(store), ["b@2", "c@3"], "a clean exit leaves the index");
    // c stops writing: past T its key is gone and it is not listed, though its member stays for
    // another T (a writer's clock may run behind this node's).
    clock = 1_030_001;
    await store.writeLiveness("b@2", up);
    await lapse(store, "c@3");
    deepEqual([...(await store.nodes()).keys()], ["b@2"]);
    deepEqual(await indexed(store), ["b@2", "c@3"]);
    clock = 1_040_000;
    await store.writeLiveness("b@2", up);
    // 2 T after c's last write a listing (no write) prunes its member.
    clock = 1_060_001;
    deepEqual([...(await store.nodes()).keys()], ["b@2"]);
    deepEqual(await indexed(store), ["b@2"]);
    // A write prunes too.
    await store.writeLiveness("d@4", up);
    clock = 1_130_002;
    await store.writeLiveness("e@5", up);
    deepEqual(await indexed(store), ["e@5"]);
  });

  test("instances index: listings after the first scan no keys, whatever the clock", async (c) => {
    let clock = 1_000_000;
    const store = await make(settings({ ttlMs: 30_000, now: () => clock }), c);
    const up = { startedAt: 1, state: "up" } as const;
    for (const node of ["a@1", "b@2", "c@3"]) await store.writeLiveness(node, up);
    const before = await scans(store);
    equal((await store.nodes()).size, 3);
    equal(await scans(store), before + 1, "the first listing looks for unindexed instances");
    for (let i = 0; i < 10; i++) {
      clock += 20_000;
      for (const node of ["a@1", "b@2", "c@3"]) await store.writeLiveness(node, up);
      equal((await store.nodes()).size, 3);
    }
    equal(await scans(store), before + 1, "none found: no scan again");
  });

  test("instances index: a rolling deploy lists the instances without it, scanning once a minute until none is left", async (c) => {
    let clock = 1_000_000;
    const store = await make(settings({ ttlMs: 30_000, now: () => clock }), c);
    const up = { startedAt: 1, state: "up" } as const;
    const draining = { startedAt: 1, state: "draining" } as const;
    await store.writeLiveness("new@1", up);
    await writeUnindexed(store, "old@1", up);
    deepEqual([...await store.nodes()].sort(), [["new@1", up], ["old@1", up]]);
    equal(await scans(store), 1);
    // Between scans the unindexed instance found is read with the index: its value is current.
    clock += 10_000;
    await writeUnindexed(store, "old@1", draining);
    deepEqual([...await store.nodes()].sort(), [["new@1", up], ["old@1", draining]]);
    // One started since the scan is found by the next, a minute after it.
    await writeUnindexed(store, "old@2", up);
    deepEqual([...(await store.nodes()).keys()].sort(), ["new@1", "old@1"]);
    equal(await scans(store), 1);
    clock = 1_060_000;
    await store.writeLiveness("new@1", up);
    await writeUnindexed(store, "old@1", draining);
    await writeUnindexed(store, "old@2", up);
    deepEqual([...(await store.nodes()).keys()].sort(), ["new@1", "old@1", "old@2"]);
    equal(await scans(store), 2);
    // The old instances stop: gone from the listing at once, and the next scan finds none.
    await store.deleteLiveness("old@1");
    await store.deleteLiveness("old@2");
    deepEqual([...(await store.nodes()).keys()], ["new@1"]);
    equal(await scans(store), 2);
    clock = 1_120_000;
    await store.writeLiveness("new@1", up);
    deepEqual([...(await store.nodes()).keys()], ["new@1"]);
    equal(await scans(store), 3);
    for (let i = 0; i < 5; i++) {
      clock += 60_000;
      await store.writeLiveness("new@1", up);
      deepEqual([...(await store.nodes()).keys()], ["new@1"]);
    }
    equal(await scans(store), 3, "no scan once one found every instance indexed");
  });

  test("counts per game: written with the liveness key, read per node, gone with it (deleted or expired)", async (c) => {
    let clock = 1_000_000;
    const store = await make(settings({ ttlMs: 30_000, now: () => clock }), c);
    const a = topGames(
      new Map([
        ["orbit", { rooms: 3, players: 5, spectators: 1 }],
        ["chess", { rooms: 1, players: 2, spectators: 0 }],
      ]),
    );
    const b = topGames(new Map([["orbit", { rooms: 2, players: 2, spectators: 4 }]]));
    deepEqual(await store.readGames([]), new Map());
    deepEqual(await store.readGames(["a@1"]), new Map(), "neither key: left out");
    await store.writeLiveness("a@1", { startedAt: 1, state: "up" });
    deepEqual(await store.readGames(["a@1"]), new Map([["a@1", null]]), "liveness only: null");
    await store.writeGames("a@1", a);
    await store.writeLiveness("b@2", { startedAt: 2, state: "up" });
    await store.writeGames("b@2", b);
    await store.writeLiveness("c@3", { startedAt: 3, state: "up" });
    const read = await store.readGames(["a@1", "b@2", "c@3", "gone@4"]);
    deepEqual(read, new Map([["a@1", a], ["b@2", b], ["c@3", null]]));
    deepEqual(sumGames([a, b]), {
      games: [
        { game_name: "chess", rooms: 1, players: 2, spectators: 0 },
        { game_name: "orbit", rooms: 5, players: 7, spectators: 5 },
      ],
    });
    // A clean exit deletes both keys; a node that stops writing loses both with the TTL.
    await store.deleteLiveness("a@1");
    deepEqual(await store.readGames(["a@1", "b@2"]), new Map([["b@2", b]]));
    // The counts went with the liveness key: a liveness key written again finds none.
    await store.writeLiveness("a@1", { startedAt: 1, state: "up" });
    deepEqual(await store.readGames(["a@1"]), new Map([["a@1", null]]));
    await store.deleteLiveness("a@1");
    // Past T without a refresh: the twin's clock moves past it, Redis's keys are made to lapse.
    clock += 30_001;
    await expire(store, "b@2");
    deepEqual(await store.readGames(["b@2"]), new Map(), "expired with the liveness key");
  });

  test("counts per game: each node writes a bounded value, the rest summed as other games", async (c) => {
    const store = await make(settings(), c);
    // 150 games of names 40 characters long, game i with i + 1 rooms.
    const many = new Map(
      Array.from({ length: 150 }, (_, i) => [
        `game-${String(i).padStart(3, "0")}-`.padEnd(40, "x"),
        { rooms: i + 1, players: 2 * (i + 1), spectators: 1 },
      ]),
    );
    const bounded = topGames(many);
    equal(bounded.games.length, MAX_GAMES_PER_INSTANCE);
    // The 100 with the most rooms (49..149) listed, the 50 others summed: rooms 1 + … + 50.
    equal(bounded.games[0]![0], [...many.keys()][149]);
    deepEqual(bounded.other, [50, 1_275, 2_550, 50]);
    await store.writeLiveness("a@1", { startedAt: 1, state: "up" });
    await store.writeGames("a@1", bounded);
    const read = (await store.readGames(["a@1"])).get("a@1")!;
    deepEqual(read, bounded);
    ok(JSON.stringify(read).length < 100 * 60, `${JSON.stringify(read).length} bytes`);
    // Another node lists game 0 (summed on a@1): its row is a lower bound, marked partial.
    const other = topGames(
      new Map([[[...many.keys()][0]!, { rooms: 7, players: 7, spectators: 0 }]]),
    );
    const totals = sumGames([read, other]);
    equal(totals.games.length, 101);
    deepEqual(totals.games[0], {
      game_name: [...many.keys()][0],
      rooms: 7,
      players: 7,
      spectators: 0,
      partial: true,
    });
    equal(totals.games[1]!.partial, undefined, "listed by every node that left games out");
    deepEqual(totals.other, { games: 50, rooms: 1_275, players: 2_550, spectators: 50 });
  });

  test("an app's Authenticate bucket is one for the cluster: rate_limit_per_minute tokens a minute, kept apart per app (docs/spec/SERVER.md §3.3)", async (c) => {
    const { stores: [first, second], now, pass } = await skewed(settings(), [0, 0], c);
    deepEqual(await first!.takeAppToken("app-a", 2, now()), { ok: true });
    deepEqual(await second!.takeAppToken("app-a", 2, now()), { ok: true });
    deepEqual(await first!.takeAppToken("app-a", 2, now()), { ok: false, retryAfterSecs: 30 });
    deepEqual(await second!.takeAppToken("app-a", 2, now()), { ok: false, retryAfterSecs: 30 });
    deepEqual(await second!.takeAppToken("app-b", 2, now()), { ok: true }, "another app's bucket");
    await pass(30_050);
    deepEqual(await second!.takeAppToken("app-a", 2, now()), { ok: true }, "one back after 30 s");
  });

  test("clock skew: a bucket emptied through a node 10 minutes ahead refills for the others after its window, and that node gets no token the others would not", async (c) => {
    const windowMs = 1_000;
    const bucket = { capacity: 1, windowMs };
    const { stores: [correct, fast], now, pass } = await skewed(
      settings({
        buckets: { creation: bucket, join: bucket, reconnect: bucket, auth_failure: bucket },
      }),
      [0, AHEAD],
      c,
    );
    const ip = "203.0.113.9";
    deepEqual(await fast!.take("creation", ip, now() + AHEAD), { ok: true });
    deepEqual(
      await correct!.take("creation", ip, now()),
      { ok: false, retryAfterSecs: 1 },
      "one bucket for the cluster",
    );
    await pass(windowMs + 50);
    deepEqual(
      await correct!.take("creation", ip, now()),
      { ok: true },
      "refilled after its window, whatever the clock of the node that took last",
    );
    deepEqual(
      await fast!.take("creation", ip, now() + AHEAD),
      { ok: false, retryAfterSecs: 1 },
      "a clock ahead refills nothing",
    );
    deepEqual(await fast!.check("creation", ip, now() + AHEAD), { ok: false, retryAfterSecs: 1 });
  });

  test("clock skew: rooms claimed through a node 2 T behind count against the game, app and IP caps of the others; one claimed through a node 10 minutes ahead stops counting T after its home stopped refreshing it", async (c) => {
    const ttlMs = 1_000;
    const { stores: [correct, slow, fast], pass } = await skewed(
      settings({ ttlMs }),
      [0, -2 * ttlMs, AHEAD],
      c,
    );
    const capped = (scope: string, count: number, limit: number) => ({
      status: "capped",
      scope,
      count,
      limit,
    });
    const perGame = { maxRoomsPerGame: 1 };
    equal((await slow!.claim(record("AAAAAA", "slow@1"), perGame)).status, "ok");
    deepEqual(await correct!.claim(record("BBBBBB", "ok@1"), perGame), capped("game", 1, 1));
    const app = { gameName: "app-game", appId: "app-1" };
    const perApp = { maxRoomsPerGame: 10, maxAppRooms: 1 };
    equal((await slow!.claim(record("CCCCCC", "slow@1", app), perApp)).status, "ok");
    deepEqual(await correct!.claim(record("DDDDDD", "ok@1", app), perApp), capped("app", 1, 1));
    const ip = { gameName: "ip-game", creatorIp: "198.51.100.4" };
    const perIp = { maxRoomsPerGame: 10, maxRoomsPerIp: 1 };
    equal((await slow!.claim(record("EEEEEE", "slow@1", ip), perIp)).status, "ok");
    deepEqual(await correct!.claim(record("GGGGGG", "ok@1", ip), perIp), capped("ip", 1, 1));
    // Its refreshes keep them counting.
    equal(await slow!.refresh(record("AAAAAA", "slow@1")), "refreshed");
    equal(await slow!.refresh(record("CCCCCC", "slow@1", app)), "refreshed");
    equal(await slow!.refresh(record("EEEEEE", "slow@1", ip)), "refreshed");
    deepEqual(await correct!.claim(record("BBBBBB", "ok@1"), perGame), capped("game", 1, 1));
    deepEqual(await correct!.claim(record("DDDDDD", "ok@1", app), perApp), capped("app", 1, 1));
    deepEqual(await correct!.claim(record("GGGGGG", "ok@1", ip), perIp), capped("ip", 1, 1));
    // A node 10 minutes ahead claims a room, then stops. Another room of the game goes on being
    // refreshed (a busy game: its sets never expire as a whole).
    const busy = { gameName: "busy-game" };
    const two = { maxRoomsPerGame: 2 };
    const live = record("LLLLLL", "ok@1", busy);
    equal((await correct!.claim(live, two)).status, "ok");
    equal((await fast!.claim(record("FFFFFF", "fast@1", busy), two)).status, "ok");
    deepEqual(await correct!.claim(record("XXXXXX", "ok@1", busy), two), capped("game", 2, 2));
    await pass(ttlMs / 2);
    equal(await correct!.refresh(live), "refreshed");
    await pass(ttlMs / 2 + 50);
    equal(await correct!.refresh(live), "refreshed");
    deepEqual(
      await correct!.claim(record("XXXXXX", "ok@1", busy), two),
      { status: "ok" },
      "the dead node's room stopped counting T after its claim",
    );
  });

  test("clock skew: the instance listing keeps a live node whose clock is 3 T behind, and a node 10 minutes ahead prunes no live node from it", async (c) => {
    const ttlMs = 30_000;
    const { stores: [correct, slow, fast] } = await skewed(
      settings({ ttlMs }),
      [0, -3 * ttlMs, AHEAD],
      c,
    );
    const up = { startedAt: 1, state: "up" } as const;
    await correct!.writeLiveness("ok@1", up);
    // The first listing of each store also scans for instances outside the index; none here.
    for (const store of [correct!, slow!, fast!]) {
      deepEqual([...(await store.nodes()).keys()], ["ok@1"]);
    }
    await slow!.writeLiveness("slow@1", up);
    await fast!.writeLiveness("fast@1", up);
    for (const [who, store] of [["correct", correct!], ["slow", slow!], ["fast", fast!]] as const) {
      deepEqual(
        [...(await store.nodes()).keys()].sort(),
        ["fast@1", "ok@1", "slow@1"],
        `listed by the ${who} node`,
      );
    }
    await fast!.writeLiveness("fast@1", up);
    await slow!.writeLiveness("slow@1", up);
    deepEqual([...(await correct!.nodes()).keys()].sort(), ["fast@1", "ok@1", "slow@1"]);
  });

  test("clock skew: a listing through a node 10 minutes ahead finds the rooms outside the listing order (claimed by a version without it)", async (c) => {
    const { stores: [correct, fast], unorder } = await skewed(settings(), [0, AHEAD], c);
    await correct!.claim(record("AAAAAA", "ok@1", { createdAt: 1 }), { maxRoomsPerGame: 5 });
    await correct!.claim(record("BBBBBB", "ok@1", { createdAt: 2 }), { maxRoomsPerGame: 5 });
    await unorder("orbit", "BBBBBB");
    for (const store of [correct!, fast!]) {
      deepEqual((await store.list("orbit", 10)).map((entry) => entry.roomCode), [
        "AAAAAA",
        "BBBBBB",
      ]);
    }
  });

  test("clock skew: the epoch's creation time and age are by Redis's clock, whichever node created or reads it", async (c) => {
    const { stores: [correct, fast, slow], now, pass } = await skewed(
      settings(),
      [0, AHEAD, -AHEAD],
      c,
    );
    const before = now();
    const created = await fast!.epoch();
    const after = now();
    ok(
      created.createdAt >= before && created.createdAt <= after,
      `created at ${created.createdAt}, between ${before} and ${after}`,
    );
    ok(created.ageMs >= 0 && created.ageMs <= after - before, `age ${created.ageMs} ms`);
    await pass(100);
    for (const store of [slow!, correct!]) {
      const read = await store.epoch();
      deepEqual([read.id, read.createdAt], [created.id, created.createdAt]);
      ok(read.ageMs >= 100 && read.ageMs < 1_000, `age ${read.ageMs} ms`);
    }
  });

  test("the epoch is created once and then read back unchanged, older as the store's clock moves", async (c) => {
    let clock = 1_000_000;
    const store = await make(settings({ now: () => clock }), c);
    const first = await store.epoch();
    ok(first.id.length > 0);
    deepEqual(first, { id: first.id, createdAt: 1_000_000, ageMs: 0 });
    clock += 2_500;
    deepEqual(await store.epoch(), { ...first, ageMs: 2_500 });
  });
}

Deno.test("gameTag: 16 hex digits of SHA-256 in braces, whatever the game name holds", () => {
  // SHA-256("orbit") starts with these 16 hex digits (computed with `sha256sum`).
  equal(gameTag("orbit"), "{4fa1a13ac468ac49}");
  ok(/^\{[0-9a-f]{16}\}$/.test(gameTag("{weird}name")));
  const keys = new Keys("signal_fish:");
  equal(keys.room("orbit", "ABC123"), `signal_fish:room:${gameTag("orbit")}:orbit:ABC123`);
  equal(keys.channel("a@1"), "signal_fish:inst:a@1");
});

Deno.test("reconnectDelay: 100 ms doubling to 5 s, each drawn from 75-100 % of that bound", () => {
  const bounds = [100, 200, 400, 800, 1600, 3200, 5000, 5000];
  deepEqual(bounds.map((_, retries) => reconnectDelay(retries, () => 0)), bounds);
  deepEqual(
    bounds.map((_, retries) => reconnectDelay(retries, () => 0.999999)),
    bounds.map((bound) => Math.round(bound * 0.75)),
  );
  equal(reconnectDelay(1_000, () => 0.5), 4375);
  // Instances that lost Redis together do not come back together: 50 draws at the cap spread
  // over its last quarter.
  const draws = new Set(Array.from({ length: 50 }, () => reconnectDelay(20)));
  ok(draws.size > 10, `only ${draws.size} distinct delays`);
  for (const delay of draws) ok(delay >= 3750 && delay <= 5000, `${delay}`);
});

Deno.test("A release that fails while the store does not answer is sent again once it answers (the twin; PendingReleases)", async () => {
  const store = new MemoryStore(settings());
  await store.claim(record("AAAAAA"), { maxRoomsPerGame: 5 });
  store.unreachable = true;
  await rejects(store.release("orbit", "AAAAAA", "id-AAAAAA"));
  equal(store.pendingReleases, 1);
  store.unreachable = false;
  // The next call that answers makes the store reachable again: the release goes out.
  ok(await store.lookup("orbit", "AAAAAA"), "not released while Redis was away");
  await new Promise((resolve) => setTimeout(resolve, 0));
  equal(await store.lookup("orbit", "AAAAAA"), undefined, "released once it answered");
  equal(store.pendingReleases, 0);
});

Deno.test("PendingReleases keeps at most `max` failed releases, dropping the oldest", async () => {
  const reachability = new Reachability();
  const sent: string[] = [];
  let failing = true;
  const pending = new PendingReleases(reachability, (_game, _code, roomId) => {
    sent.push(roomId);
    return failing ? Promise.reject(new Error("down")) : Promise.resolve();
  }, 2);
  for (const id of ["a", "b", "c"]) await rejects(pending.release("orbit", "X", id));
  equal(pending.size, 2);
  reachability.answered(false);
  failing = false;
  reachability.answered(true);
  await new Promise((resolve) => setTimeout(resolve, 0));
  deepEqual(sent.slice(3), ["b", "c"], "the two newest, once reachable");
  equal(pending.size, 0);
});

Deno.test("MemoryStore: keys expire with the clock; unreachable rejects but buckets fall back", async () => {
  let now = 1_000;
  const store = new MemoryStore(settings({ now: () => now }));
  await store.claim(record("AAAAAA"), { maxRoomsPerGame: 1 });
  now += 30_001;
  equal(await store.lookup("orbit", "AAAAAA"), undefined, "entry expired after T");
  deepEqual(await store.claim(record("BBBBBB"), { maxRoomsPerGame: 1 }), { status: "ok" });
  store.unreachable = true;
  await rejects(store.lookup("orbit", "BBBBBB"));
  deepEqual(await store.take("creation", "1.2.3.4", now), { ok: true });
  deepEqual(await store.take("creation", "1.2.3.4", now), { ok: false, retryAfterSecs: 60 });
  // The failed-Authenticate budget falls back too: check looks, take charges (capacity 3).
  for (let i = 0; i < 3; i++) {
    deepEqual(await store.check("auth_failure", "1.2.3.4", now), { ok: true });
    deepEqual(await store.take("auth_failure", "1.2.3.4", now), { ok: true });
  }
  deepEqual(await store.check("auth_failure", "1.2.3.4", now), { ok: false, retryAfterSecs: 20 });
  // So does an app's Authenticate bucket.
  deepEqual(await store.takeAppToken("app-a", 1, now), { ok: true });
  deepEqual(await store.takeAppToken("app-a", 1, now), { ok: false, retryAfterSecs: 60 });
});

Deno.test({
  name:
    'RedisStore.identity: Redis\'s run_id (INFO server), another after a restart, undefined when INFO is renamed away (docs/spec/SERVER.md §8.3 "Epoch")',
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    const server = await startRedis();
    const link = new RedisLink({ url: server.url });
    try {
      await link.connect();
      const store = new RedisStore(link, settings());
      const first = await store.identity();
      ok(first !== undefined && /^[0-9a-f]{40}$/.test(first), String(first));
      equal(await store.identity(), first, "the same server, the same run_id");
      await server.restart();
      await until(() => link.state === "up", "reconnected");
      const second = await store.identity();
      ok(second !== undefined && second !== first, `${first} then ${second}`);
    } finally {
      await link.close();
      await server.stop();
    }
    const refusing = await startRedis(["--rename-command", "INFO", ""]);
    const other = new RedisLink({ url: refusing.url });
    try {
      await other.connect();
      equal(await new RedisStore(other, settings()).identity(), undefined);
    } finally {
      await other.close();
      await refusing.stop();
    }
  },
});

Deno.test({
  name:
    "RedisStore: times an earlier version wrote by its own clock (a rolling deploy) read on Redis's: a bucket refilled ahead of it refills from it on, an epoch created ahead of it is 0 ms old",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    let clock = 1_000_000_000;
    const redisNow = () => clock;
    const windowMs = 60_000;
    const bucket = { capacity: 1, windowMs };
    await withRedisStore(
      settings({
        buckets: { creation: bucket, join: bucket, reconnect: bucket, auth_failure: bucket },
        redisNow,
      }),
      async ({ store, keys, redis }) => {
        // An empty bucket whose last refill a node 10 minutes ahead wrote (`units:at`).
        const key = keys.bucket("creation", "203.0.113.5");
        await redis("SET", key, `0:${clock + 600_000}`, "PX", String(2 * windowMs));
        deepEqual(await store.take("creation", "203.0.113.5", clock), {
          ok: false,
          retryAfterSecs: 60,
        });
        equal(
          await redis("GET", key),
          `0:${clock}`,
          "its last refill brought back to Redis's clock",
        );
        clock += windowMs;
        deepEqual(await store.take("creation", "203.0.113.5", clock), { ok: true });
        // The epoch's value is the one every version writes and reads.
        await redis("SET", keys.epoch(), JSON.stringify({ id: "e1", createdAt: clock + 5_000 }));
        deepEqual(await store.epoch(), { id: "e1", createdAt: clock + 5_000, ageMs: 0 });
        await redis("SET", keys.epoch(), JSON.stringify({ id: "e2", createdAt: clock - 5_000 }));
        deepEqual(await store.epoch(), { id: "e2", createdAt: clock - 5_000, ageMs: 5_000 });
        await redis("DEL", keys.epoch());
        const created = await store.epoch();
        deepEqual(JSON.parse(String(await redis("GET", keys.epoch()))), {
          id: created.id,
          createdAt: clock,
        });
        equal(await redis("PTTL", keys.epoch()), -1, "no TTL");
      },
    );
  },
});

Deno.test("runIdOf: the run_id line of INFO server, or undefined", () => {
  equal(
    runIdOf("# Server\r\nredis_version:7.0.15\r\nrun_id:0123abcd\r\ntcp_port:6379\r\n"),
    "0123abcd",
  );
  equal(runIdOf("# Server\r\nredis_version:7.0.15\r\n"), undefined);
});

Deno.test({
  name:
    "RedisStore: a listing reads entries only until it has its rooms, drops expired ones from its index, and reads every entry while the index lacks a room",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    await withRedisStore(settings(), async ({ store, keys, redis }) => {
      const codes = async (limit: number) =>
        (await store.list("orbit", limit)).map((entry) => entry.roomCode);
      for (let i = 0; i < 200; i++) {
        const code = `R${String(i).padStart(5, "0")}`;
        await store.claim(record(code, "a@1", { createdAt: 1_000 + i }), { maxRoomsPerGame: 500 });
      }
      deepEqual(await codes(3), ["R00000", "R00001", "R00002"]);
      // A home gone without a release: its entries expire (TTL T). The listing skips them and
      // takes them out of its index.
      await redis("DEL", keys.room("orbit", "R00000"), keys.room("orbit", "R00002"));
      await redis("ZADD", keys.gameRooms("orbit"), "1", "R00000", "1", "R00002");
      deepEqual(await codes(3), ["R00001", "R00003", "R00004"]);
      equal(
        await redis("ZSCORE", keys.gameOrder("orbit"), "R00000"),
        null,
        "dropped from the index",
      );
      // The operator's listing skips them too (leaving a gap in its page of ranks), and a
      // filtered page forgets them in every order it keeps.
      deepEqual((await store.all(3)).map((entry) => entry.roomCode), ["R00001"]);
      const page = await store.page({ offset: 0, limit: 2, filter: { query: "r0" } });
      deepEqual(page.records.map((entry) => entry.roomCode), ["R00001", "R00003"]);
      equal(
        await redis("ZSCORE", keys.roomsBy("created"), keys.sortMember("orbit", "R00002")),
        null,
      );
      equal(
        await redis("ZSCORE", keys.roomsBy("code"), keys.codeSortMember("orbit", "R00002")),
        null,
      );
      // Reads stay near the limit: one listing of 3 does not read the 200 entries.
      await redis("CONFIG", "RESETSTAT");
      await codes(3);
      const stats = String(await redis("INFO", "commandstats"));
      const gets = Number(/cmdstat_get:calls=(\d+)/.exec(stats)?.[1] ?? 0);
      ok(gets >= 3 && gets <= 64, `entries read for 3 rooms: ${gets}`);
      // Rooms claimed by a version without the index (or an index lost): the listing reads
      // every entry instead, until a refresh indexes them again.
      await redis("ZREM", keys.gameOrder("orbit"), "R00001", "R00003");
      await redis("CONFIG", "RESETSTAT");
      deepEqual(await codes(3), ["R00001", "R00003", "R00004"]);
      ok(/cmdstat_mget:calls=1,/.test(String(await redis("INFO", "commandstats"))), "read all");
      equal(
        await store.refresh(record("R00001", "a@1", { createdAt: 1_001 })),
        "refreshed",
      );
      equal(Number(await redis("ZSCORE", keys.gameOrder("orbit"), "R00001")), 1_001);
    });
  },
});

Deno.test({
  name:
    "RedisStore: a page's Redis cost is bounded: a page of ranks reads its rooms wherever it starts, a filtered page at most its budget in calls of 250, a steady refresh writes no index member",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    await withRedisStore(settings(), async ({ store, keys, redis }) => {
      // Every script loaded on this server (their SHAs are cached in the process: a script an
      // earlier test loaded elsewhere would otherwise cost an EVALSHA answered NOSCRIPT here).
      await store.prepare();
      const records = [];
      for (let i = 0; i < 1_200; i++) {
        const code = `P${String(i).padStart(5, "0")}`;
        const entry = record(code, "a@1", { createdAt: 1_000 + i });
        entry.summary.players = i % 4;
        records.push(entry);
      }
      await store.refreshAll(records);
      const calls = async (command: string) =>
        Number(
          new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(
            String(await redis("INFO", "commandstats")),
          )?.[1] ?? 0,
        );
      const cost = async <T>(read: () => Promise<T>) => {
        await redis("CONFIG", "RESETSTAT");
        const result = await read();
        return { result, scripts: await calls("evalsha"), gets: await calls("get") };
      };
      // A page of ranks: one call, one GET per room, at rank 1,100 (the last page) as at 0.
      for (const offset of [0, 1_100]) {
        const { result, scripts, gets } = await cost(() =>
          store.page({ offset, limit: 100, sort: { key: "players", descending: true } })
        );
        deepEqual([result.records.length, result.truncated, scripts, gets], [
          100,
          offset === 0,
          1,
          100,
        ], `offset ${offset}`);
      }
      // A filtered page matching nothing: stops at the budget, 250 members a call.
      const walked = await cost(() =>
        store.page({ offset: 0, limit: 10, filter: { query: "nobody" }, budget: 700 })
      );
      deepEqual(
        [walked.result.complete, walked.result.examined, walked.scripts, walked.gets],
        [false, 700, 3, 700],
      );
      // One that finds its page early stops there.
      const early = await cost(() =>
        store.page({ offset: 0, limit: 10, filter: { lobbyState: "waiting" }, budget: 700 })
      );
      deepEqual([early.result.records.length, early.result.examined, early.scripts, early.gets], [
        10,
        11,
        1,
        11,
      ]);
      // A game filter reads no entry of another game.
      const other = await cost(() =>
        store.page({
          offset: 0,
          limit: 10,
          filter: { gameName: "none" },
          sort: { key: "players", descending: false },
          budget: 2_000,
        })
      );
      deepEqual([other.result.complete, other.result.examined, other.gets], [true, 1_200, 0]);
      // The periodic refresh of unchanged rooms writes no rooms-by member; a change writes six.
      await redis("CONFIG", "RESETSTAT");
      await store.refreshAll(records.slice(0, 50));
      // game-rooms and game-order each, and game-empty for the 13 rooms without players.
      equal(await calls("zadd"), 2 * 50 + 13);
      equal(await calls("zscore"), 50, "one look at rooms-by:created each");
      await redis("CONFIG", "RESETSTAT");
      const changed = { ...records[0]!, summary: { ...records[0]!.summary, spectators: 2 } };
      equal(await store.refresh(changed), "refreshed");
      equal(await calls("zadd"), 3 + 6, "game-rooms, game-order, game-empty and the six");
      equal(
        Number(
          await redis("ZSCORE", keys.roomsBy("spectators"), keys.sortMember("orbit", "P00000")),
        ),
        2,
      );
      // The six sets share a TTL of a few T, renewed once less than T is left.
      for (const key of ROOM_SORT_KEYS) {
        const ttl = Number(await redis("PTTL", keys.roomsBy(key)));
        ok(ttl > 30_000 && ttl <= 120_000, `rooms-by:${key} PTTL ${ttl}`);
      }
    });
  },
});

Deno.test({
  name: "RedisStore: scripts survive a Redis restart (NOSCRIPT → load, retry); down = fail fast",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    const server: RedisServer = await startRedis();
    const states: string[] = [];
    const link = new RedisLink({ url: server.url, onState: (s) => states.push(s) });
    try {
      await link.connect();
      const store = new RedisStore(link, settings());
      deepEqual(await store.claim(record("AAAAAA"), { maxRoomsPerGame: 5 }), { status: "ok" });
      await server.restart();
      // Wait (bounded) until the client reconnected to the empty server.
      const deadline = Date.now() + 10_000;
      while (link.state !== "up" || !link.command.isReady) {
        if (Date.now() > deadline) throw new Error("no reconnect");
        await new Promise((r) => setTimeout(r, 20));
      }
      equal(await store.lookup("orbit", "AAAAAA"), undefined, "restarted empty");
      deepEqual(await store.claim(record("AAAAAA"), { maxRoomsPerGame: 5 }), { status: "ok" });
      ok(states.includes("down") && states.at(-1) === "up", `states: ${states}`);
      await server.stop();
      // No offline queue: the command fails with the client's error, not our timeout.
      await rejects(store.lookup("orbit", "AAAAAA"), (error: Error) => {
        ok(!/timed out/.test(error.message), error.message);
        return true;
      });
      // Bucket takes fall back to the node's own buckets (join: 2 per window).
      deepEqual(await store.take("join", "9.9.9.9", 0), { ok: true });
      deepEqual(await store.take("join", "9.9.9.9", 0), { ok: true });
      deepEqual(await store.take("join", "9.9.9.9", 0), { ok: false, retryAfterSecs: 30 });
      // The refresh's sweep forgets fallback buckets full again for a window: asked at 0 again,
      // the address gets a fresh (full) bucket, not the empty one remembered.
      store.sweepFallback(59_000);
      deepEqual(await store.take("join", "9.9.9.9", 0), { ok: false, retryAfterSecs: 30 });
      store.sweepFallback(10 * 60_000);
      deepEqual(await store.take("join", "9.9.9.9", 0), { ok: true });
      // So do an app's Authenticate takes (docs/spec/SERVER.md §3.3): its own capacity a minute.
      deepEqual(await store.takeAppToken("app-a", 1, 0), { ok: true });
      deepEqual(await store.takeAppToken("app-a", 1, 0), { ok: false, retryAfterSecs: 60 });
    } finally {
      await link.close();
      await server.stop();
    }
  },
});

Deno.test({
  name:
    "RedisStore: a command a paused Redis does not answer in time rejects with NoAnswer and may still take effect; one that cannot be sent rejects otherwise",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    const server: RedisServer = await startRedis();
    const link = new RedisLink({ url: server.url });
    try {
      await link.connect();
      const store = new RedisStore(link, settings({ timeoutMs: 300 }));
      equal(await store.maintenance(), false);
      Deno.kill(server.pid(), "SIGSTOP");
      try {
        await rejects(store.setMaintenance(true), NoAnswer);
      } finally {
        Deno.kill(server.pid(), "SIGCONT");
      }
      // Redis resumes and runs the command it had read: maintenance is on after all.
      equal(await store.maintenance(), true);
      await server.stop();
      const deadline = Date.now() + 5_000;
      while (link.state === "up") {
        ok(Date.now() < deadline, "noticed the loss");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await rejects(store.setMaintenance(false), (error: Error) => {
        ok(!(error instanceof NoAnswer), `${error.name}: ${error.message}`);
        return true;
      });
    } finally {
      await link.close();
      await server.stop();
    }
  },
});

Deno.test({
  name:
    "RedisStore: every command is counted and each answer timed (queries, query latency; docs/spec/SERVER.md §6.3 #19, #23, #63)",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    const server = await startRedis();
    const link = new RedisLink({ url: server.url });
    try {
      await link.connect();
      const store = new RedisStore(link, settings());
      // Scripts are loaded on this server first (their SHAs are shared by every store in the
      // process, so whether a load is needed depends on the tests before).
      equal((await store.claim(record("QRY000"), { maxRoomsPerGame: 10 })).status, "ok");
      await store.refreshAll([record("QRY000")]);
      const samples: number[] = [];
      let sent = 0;
      store.onQuery = { sent: () => sent++, answered: (seconds) => samples.push(seconds) };
      // A claim is one EVALSHA; a lookup is one GET.
      equal((await store.claim(record("QRY001"), { maxRoomsPerGame: 10 })).status, "ok");
      equal(sent, 1);
      ok((await store.lookup("orbit", "QRY001")) !== undefined);
      equal(sent, 2);
      deepEqual(samples.length, 2);
      ok(samples.every((s) => s > 0 && s < 10), `${samples}`);
      // Pipelined refreshes: one command each.
      await store.refreshAll([record("QRY001"), record("QRY002"), record("QRY003")]);
      equal(sent, 5, "three EVALSHA");
      equal(samples.length, 5);
      // A restarted Redis answers NOSCRIPT (an error reply: timed), then LOAD and the retry.
      await server.stop();
      await server.restart();
      const deadline = Date.now() + 5_000;
      while (link.state !== "up") {
        ok(Date.now() < deadline, "reconnected");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const before = sent;
      equal((await store.claim(record("QRY004"), { maxRoomsPerGame: 10 })).status, "ok");
      equal(sent - before, 3, "EVALSHA (NOSCRIPT), SCRIPT LOAD, EVALSHA");
      equal(samples.length, 8);
      // Down: the command is sent to the client and fails without an answer — counted, not timed.
      await server.stop();
      const down = Date.now() + 5_000;
      while (link.state === "up") {
        ok(Date.now() < down, "noticed the loss");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const counted = sent;
      await rejects(store.lookup("orbit", "QRY001"));
      equal(sent, counted + 1);
      equal(samples.length, 8);
    } finally {
      await link.close();
      await server.stop();
    }
  },
});

Deno.test({
  name:
    'RedisStore.prepare loads every script: on a fresh Redis the first claim, refresh and take are one command each (docs/spec/SERVER.md §8.3 "Scripts")',
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    const server = await startRedis();
    const link = new RedisLink({ url: server.url });
    try {
      await link.connect();
      const store = new RedisStore(link, settings());
      // Load the scripts elsewhere first: their SHAs are cached in the process, and this
      // server has none of them (a fresh or restarted Redis), so each first call would be
      // EVALSHA → NOSCRIPT → SCRIPT LOAD → EVALSHA without prepare.
      await store.prepare();
      await server.stop();
      await server.restart();
      const deadline = Date.now() + 5_000;
      while (link.state !== "up") {
        ok(Date.now() < deadline, "reconnected");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await store.prepare();
      let sent = 0;
      store.onQuery = { sent: () => sent++, answered: () => {} };
      equal((await store.claim(record("PRE001"), { maxRoomsPerGame: 10 })).status, "ok");
      equal(sent, 1, "claim: one EVALSHA");
      await store.refreshAll([record("PRE001")]);
      equal(sent, 2, "refresh: one EVALSHA");
      deepEqual(await store.take("join", "9.9.9.9", 0), { ok: true });
      equal(sent, 3, "take: one EVALSHA");
    } finally {
      await link.close();
      await server.stop();
    }
  },
});

Deno.test({
  name:
    "RedisLink: rediss:// with a private CA carries commands and pub/sub; without the CA it fails",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const tls = await makeCertificates(dir);
    const server = await startRedis([], tls);
    const link = new RedisLink({ url: server.url, ca: await Deno.readTextFile(tls.ca) });
    const untrusted = new RedisLink({ url: server.url, connectTimeoutMs: 500 });
    try {
      ok(server.url.startsWith("rediss://"));
      await link.connect();
      const store = new RedisStore(link, settings());
      deepEqual(await store.claim(record("TLS001"), { maxRoomsPerGame: 5 }), { status: "ok" });
      const bus = new RedisBus(link, "a@1", "sf:");
      const received: number[] = [];
      await bus.start({ receive: (bytes) => void received.push(bytes[0]!), lost: () => {} });
      bus.publish("a@1", new Uint8Array([42]));
      const deadline = Date.now() + 5_000;
      while (received.length === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      deepEqual(received, [42]);
      // The system roots do not know the private CA: no connection.
      await rejects(bounded(untrusted.connect(), 2_000, "connect"));
    } finally {
      await untrusted.close();
      await link.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
