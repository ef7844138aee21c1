/**
 * Redis refusing every write while it answers (docs/spec/SERVER.md §8.5.5 "Redis refuses
 * writes"): what the store does on a private redis-server whose last background save failed
 * (`MISCONF`) or that is a replica (`READONLY`), what it reports, and the link reopening its
 * connections on `READONLY`.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { IGNORE_WITHOUT_REDIS, startRedis } from "../../tests/redis_server.ts";
import { refusalReason } from "./link_report.ts";
import { RedisLink, RedisStore } from "./store.ts";
import { testCluster, testRecord as record, until } from "./testing.ts";
import type { StoreSettings } from "./types.ts";

const opts = { ignore: IGNORE_WITHOUT_REDIS, sanitizeResources: false, sanitizeOps: false };

function settings(): StoreSettings {
  const bucket = { capacity: 5, windowMs: 60_000 };
  return {
    prefix: "sf:",
    ttlMs: 30_000,
    reconnectionWindowMs: 300_000,
    buckets: { creation: bucket, join: bucket, reconnect: bucket, auth_failure: bucket },
    timeoutMs: 2_000,
  };
}

const settle = (promise: Promise<unknown>) => promise.then(() => undefined, (error) => error);

Deno.test({
  ...opts,
  name:
    "RedisStore on a Redis whose background save failed (MISCONF): every write is refused and reported, reads answer, takes fall back; a save that works again ends it",
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "signal-fish-misconf-" });
    await using server = await startRedis(["--dir", dir, "--save", "3600 1"]);
    const link = new RedisLink({ url: server.url });
    try {
      await link.connect();
      const redis = (...command: string[]) => link.command.sendCommand(command);
      const store = new RedisStore(link, settings());
      const told: unknown[] = [];
      store.onRefusal = (refusal) =>
        told.push(refusal === undefined ? "accepted" : refusalReason(refusal));
      const caps = { maxRoomsPerGame: 100 };
      equal((await store.claim(record("LIVE01"), caps)).status, "ok");
      const epoch = await store.epoch();
      // The save's target is a directory: the save fails, and Redis refuses writes.
      Deno.mkdirSync(`${dir}/dump.rdb`);
      await redis("BGSAVE");
      for (let i = 0; !/bgsave_status:err/.test(String(await redis("INFO", "persistence"))); i++) {
        ok(i < 100, "the save never failed");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      told.length = 0;
      const before = Number(await redis("DBSIZE"));
      // Every write is refused, also inside the scripts: the claim (nothing written), liveness,
      // the rooms' refresh, the counts per game, the nodes' index prune.
      equal(refusalReason(await settle(store.claim(record("NEW001"), caps))), "misconf");
      equal(
        refusalReason(
          await settle(store.writeLiveness("a@00000001", { startedAt: 1, state: "up" })),
        ),
        "misconf",
      );
      equal(refusalReason(await settle(store.refreshAll([record("LIVE01")]))), "misconf");
      equal(
        refusalReason(
          await settle(store.writeGames("a@00000001", { games: [], other: [0, 0, 0, 0] })),
        ),
        "misconf",
      );
      equal(refusalReason(await settle(store.nodes())), "misconf");
      equal(Number(await redis("DBSIZE")), before);
      // Reads answer; a take falls back to this node's own bucket.
      equal((await store.resolveCode("orbit", "LIVE01")).status, "found");
      deepEqual(await store.take("creation", "10.0.0.1", Date.now()), { ok: true });
      equal(await store.maintenance(), false);
      // The epoch's script writes nothing when the key exists: it answers.
      equal((await store.epoch()).id, epoch.id);
      ok(told.every((t) => t === "misconf"), told.join());
      ok(told.length >= 6, told.join());
      equal(store.reachable, true, "a refusal is an answer");

      // The save works again: writes are accepted.
      Deno.removeSync(`${dir}/dump.rdb`, { recursive: true });
      await redis("BGSAVE");
      for (let i = 0; !/bgsave_status:ok/.test(String(await redis("INFO", "persistence"))); i++) {
        ok(i < 100, "the save never worked");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      told.length = 0;
      await store.writeLiveness("a@00000001", { startedAt: 1, state: "up" });
      equal((await store.claim(record("NEW001"), caps)).status, "ok");
      deepEqual(told, ["accepted", "accepted"]);
    } finally {
      await link.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

const MISCONF = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to " +
  "persist to disk. Commands that may modify the data set are disabled.";

Deno.test("Cluster (twins): while Redis refuses every write (MISCONF) no node is held dead and unknown codes answer as in a grace window; the write probe notices writes are accepted again, and verdicts wait T more", async () => {
  let offset = 0;
  const ttlMs = 3_000;
  const cluster = await testCluster({
    nodes: 2,
    ttlMs,
    heartbeatMs: 100,
    now: () => Date.now() + offset,
  });
  const store = cluster.store;
  const { writeLiveness } = store;
  try {
    const a = cluster.nodes[0]!.cluster;
    offset = 2 * ttlMs;
    const now = () => Date.now() + offset;
    equal(a.inGrace(now()), false);
    equal(await a.isDead("ghost@00000000"), true, "a node without a liveness key, never heard");
    // Every write refused: the refresh reports it, and no verdict is given however long it lasts.
    store.writeLiveness = () => Promise.reject(new Error(MISCONF));
    await a.refresh();
    equal(a.inGrace(now()), true, "unknown codes: their entries may have expired");
    equal(await a.isDead("ghost@00000001"), false);
    offset += 2 * ttlMs;
    equal(await a.isDead("ghost@00000002"), false, "however long it lasts");
    // Writes accepted again: the probe (every heartbeat) notices; guard 1 restarts.
    let written = 0;
    store.writeLiveness = (...args) => {
      written++;
      return writeLiveness.apply(store, args);
    };
    await until(() => written > 0, "a write probe");
    await new Promise((resolve) => setTimeout(resolve, 50));
    equal(await a.isDead("ghost@00000003"), false, "no verdict for T after the refusals");
    equal(a.inGrace(now()), true, "T/3 for every node to write its rooms back");
    offset += ttlMs / 3 + 1;
    equal(a.inGrace(now()), false);
    offset += ttlMs;
    equal(await a.isDead("ghost@00000004"), true);
  } finally {
    store.writeLiveness = writeLiveness;
    await cluster.close();
  }
});
