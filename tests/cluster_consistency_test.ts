/**
 * The consistency property of src/cluster/consistency.ts on a real redis-server: three
 * in-process nodes, each with its own two Redis connections, store and bus, with requests crossing
 * answers, closes and takeovers; once quiet, every home's live seats are what its clients were
 * told. `SIGNAL_FISH_CONSISTENCY_SEEDS=n` runs n more seeds (a soak on Redis).
 */
import { assertConsistent, runConsistency } from "../src/cluster/consistency.ts";
import { redisTestCluster } from "../src/cluster/testing.ts";
import { IGNORE_WITHOUT_REDIS, startRedis } from "./redis_server.ts";

Deno.test({
  name:
    "Cluster consistency on Redis: every home's live seats and spectators are exactly those its clients were told of",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    await using redis = await startRedis();
    const seeds = [7, 8];
    const extra = Number(Deno.env.get("SIGNAL_FISH_CONSISTENCY_SEEDS") ?? 0);
    for (let i = 0; i < extra; i++) seeds.push(700 + i);
    let seated = 0;
    for (const seed of seeds) {
      const cluster = await redisTestCluster(redis.url, {
        heartbeatMs: 50,
        engine: { enableReconnection: true },
      });
      seated += assertConsistent(await runConsistency(cluster, seed, 600), `seed ${seed}`);
    }
    if (seated === 0) throw new Error("no seeded run ended with a seated client");
  },
});
