/**
 * A full Redis and Redis's memory policy (docs/spec/SERVER.md §8.5.5 "Redis full", "Eviction"):
 * what the store does on a private redis-server at `maxmemory` under `noeviction` (the claim is
 * refused before it writes anything; liveness, refresh and release run whole; the refusals are
 * reported), `maxmemory-policy` as `CONFIG GET` reads it, and a node whose liveness or counts
 * write is refused going on with its rooms' refresh (the twins).
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { IGNORE_WITHOUT_REDIS, startRedis } from "../../tests/redis_server.ts";
import { Keys } from "./keys.ts";
import { isMemoryRefusal } from "./link_report.ts";
import { RedisLink, RedisStore } from "./store.ts";
import { join, testCluster, testRecord as record, until } from "./testing.ts";
import type { StoreSettings } from "./types.ts";

const opts = { ignore: IGNORE_WITHOUT_REDIS, sanitizeResources: false, sanitizeOps: false };

const OOM = "OOM command not allowed when used memory > 'maxmemory'.";

function settings(): StoreSettings {
  return {
    prefix: "sf:",
    ttlMs: 30_000,
    reconnectionWindowMs: 300_000,
    buckets: {
      creation: { capacity: 5, windowMs: 60_000 },
      join: { capacity: 5, windowMs: 60_000 },
      reconnect: { capacity: 5, windowMs: 60_000 },
      auth_failure: { capacity: 5, windowMs: 60_000 },
    },
    timeoutMs: 2_000,
  };
}

Deno.test({
  ...opts,
  name:
    "RedisStore on a full Redis (maxmemory under noeviction): a claim is refused with OOM and writes nothing; liveness, refresh and release run whole; takes fall back; refusals and the first accepted write are reported",
  fn: async () => {
    await using server = await startRedis();
    const link = new RedisLink({ url: server.url });
    try {
      await link.connect();
      const redis = (...command: string[]) => link.command.sendCommand(command);
      const store = new RedisStore(link, settings());
      const told: unknown[] = [];
      // Refusals, and accepted writes that needed memory (the liveness script needs none).
      store.onRefusal = (refusal, needsMemory) => {
        if (refusal !== undefined || needsMemory) told.push(refusal);
      };
      const keys = new Keys("sf:");
      const caps = { maxRoomsPerGame: 100 };
      equal((await store.claim(record("LIVE01"), caps)).status, "ok");
      await store.writeLiveness("a@00000001", { startedAt: 1, state: "up" });
      const epoch = await store.epoch();
      const before = Number(await redis("DBSIZE"));
      await redis("CONFIG", "SET", "maxmemory", "1");
      told.length = 0;

      // A new room: refused before anything is written (no entry, no room-id, no set member).
      const refusal = await store.claim(record("NEW001"), caps).then(
        () => undefined,
        (error: unknown) => error,
      );
      ok(isMemoryRefusal(refusal), String(refusal));
      equal(await redis("EXISTS", keys.room("orbit", "NEW001"), keys.roomId("id-NEW001")), 0);
      equal(await redis("ZSCORE", keys.gameRooms("orbit"), "NEW001"), null);
      equal(Number(await redis("DBSIZE")), before);
      deepEqual(told.map(isMemoryRefusal), [true]);
      // A code another room holds is still answered `taken` (reads only, before the refusal).
      const taken = await store.claim({ ...record("LIVE01"), roomId: "other" }, caps);
      equal(taken.status, "taken");

      // What keeps existing rooms and nodes alive runs whole: liveness and the rooms' refresh
      // renew their TTLs although Redis is full.
      await redis("PEXPIRE", keys.instance("a@00000001"), "5000");
      await redis("PEXPIRE", keys.room("orbit", "LIVE01"), "5000");
      await store.writeLiveness("a@00000001", { startedAt: 1, state: "up" });
      ok(Number(await redis("PTTL", keys.instance("a@00000001"))) > 25_000, "liveness renewed");
      deepEqual(await store.refreshAll([record("LIVE01")]), ["refreshed"]);
      ok(Number(await redis("PTTL", keys.room("orbit", "LIVE01"))) > 25_000, "entry renewed");
      equal((await store.resolveCode("orbit", "LIVE01")).status, "found");
      // The epoch's script writes nothing when the key exists: it answers.
      equal((await store.epoch()).id, epoch.id);
      // The counts per game (a plain SET) are refused; a take falls back to this node's bucket.
      await rejects(store.writeGames("a@00000001", { games: [], other: [0, 0, 0, 0] }), {
        message: OOM,
      });
      deepEqual(await store.take("creation", "10.0.0.1", Date.now()), { ok: true });
      equal(told.filter(isMemoryRefusal).length, 3, "claim, games, take");
      equal(told.includes(undefined), false, "nothing accepted meanwhile");
      // A release deletes the entry (its first write is a deletion).
      await store.release("orbit", "LIVE01", "id-LIVE01");
      equal(await redis("EXISTS", keys.room("orbit", "LIVE01")), 0);

      // Memory freed: claims work again, and the first accepted write is reported.
      await redis("CONFIG", "SET", "maxmemory", "0");
      equal((await store.claim(record("NEW001"), caps)).status, "ok");
      equal(told.at(-1), undefined);
      equal(told.length, 4);
    } finally {
      await link.close();
    }
  },
});

Deno.test({
  ...opts,
  name:
    "RedisStore.memoryPolicy: Redis's maxmemory-policy; undefined when CONFIG is renamed away (managed Redis)",
  fn: async () => {
    await using plain = await startRedis();
    await using renamed = await startRedis(["--rename-command", "CONFIG", ""]);
    for (const [server, expected] of [[plain, "noeviction"], [renamed, undefined]] as const) {
      const link = new RedisLink({ url: server.url });
      try {
        await link.connect();
        const store = new RedisStore(link, settings());
        equal(await store.memoryPolicy(), expected);
        if (expected !== undefined) {
          await link.command.sendCommand(["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
          equal(await store.memoryPolicy(), "allkeys-lru");
        }
        equal(store.reachable, true, "an error reply is an answer");
      } finally {
        await link.close();
      }
    }
  },
});

Deno.test("Cluster (twins): a refresh whose liveness and counts writes Redis refuses for memory still refreshes the rooms; the node stays healthy", async () => {
  const cluster = await testCluster({ nodes: 2 });
  try {
    const [a] = cluster.nodes as [typeof cluster.nodes[0]];
    const alice = a.connect();
    join(alice, "Alice", "FULL01");
    await until(() => alice.last("RoomJoined") !== undefined, "RoomJoined");
    const store = cluster.store;
    const refused = () => Promise.reject(new Error(OOM));
    const { writeLiveness, writeGames, refreshAll } = store;
    store.writeLiveness = refused;
    store.writeGames = refused;
    const refreshed: string[] = [];
    store.refreshAll = (records) => {
      refreshed.push(...records.map((r) => r.roomCode));
      return refreshAll.call(store, records);
    };
    try {
      await a.cluster.refresh();
      deepEqual(refreshed, ["FULL01"], "the rooms' refresh ran");
      equal(a.cluster.healthy, true);
      ok(a.cluster.seen.length > 0, "the nodes were listed");
    } finally {
      store.writeLiveness = writeLiveness;
      store.writeGames = writeGames;
      store.refreshAll = refreshAll;
    }
  } finally {
    await cluster.close();
  }
});
