/**
 * The differential oracle of issue 15 item 2 on a real redis-server (docs/spec/SERVER.md §8.6
 * "nothing different in normal operation"): the scripted session of src/cluster/differential.ts
 * against one node and against three in-process nodes, each with its own two Redis connections,
 * store and bus (connections assigned round-robin), gives every client the same messages once
 * ids, tokens, codes and times are normalised.
 */
import { deepEqual, ok } from "node:assert/strict";
import { quiet, randomScript, runScript, SCRIPT } from "../src/cluster/differential.ts";
import { redisTestCluster } from "../src/cluster/testing.ts";
import { prng } from "../src/engine/testing.ts";
import { IGNORE_WITHOUT_REDIS, startRedis } from "./redis_server.ts";

Deno.test({
  name: "Differential on Redis: one node and three nodes give every client the same messages",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    await using redis = await startRedis();
    const run = async (nodes: number, script = SCRIPT) => {
      const cluster = await redisTestCluster(redis.url, {
        nodes,
        engine: { enableReconnection: true, messagePack: true },
      });
      try {
        // Envelopes cross real sockets: each step waits until every client has been quiet.
        return await runScript(cluster.nodes, 6, script, { wait: (clients) => quiet(clients) });
      } finally {
        await cluster.close();
      }
    };
    const single = await run(1);
    const three = await run(3);
    /** Client `i`'s message types (runScript ends each list with a close code entry). */
    const types = (i: number) =>
      single[i]!.flatMap((m) => "type" in (m as object) ? [(m as { type: string }).type] : []);
    // The script does what it says (so equality is about something).
    ok(types(0).includes("GameStarting") && types(3).includes("GameStarting"), types(0).join());
    ok(types(1).includes("RoomLeft") && types(4).includes("RoomJoinFailed"), types(4).join());
    ok(types(3).includes("SpectatorLeft") && types(5).at(-1) === "RoomJoined", types(5).join());
    for (let i = 0; i < single.length; i++) deepEqual(three[i], single[i], `client ${i}`);
    // One random script too (src/cluster/differential_test.ts runs more on the twins);
    // `SIGNAL_FISH_DIFFERENTIAL_SEEDS=n` adds n more here (a soak on Redis, ~2 s a seed), from
    // the `SIGNAL_FISH_DIFFERENTIAL_FROM`-th on.
    const seeds = [5];
    const extra = Number(Deno.env.get("SIGNAL_FISH_DIFFERENTIAL_SEEDS") ?? 0);
    const from = Number(Deno.env.get("SIGNAL_FISH_DIFFERENTIAL_FROM") ?? 0);
    for (let i = from; i < from + extra; i++) seeds.push(500 + i);
    for (const seed of seeds) {
      const script = randomScript(prng(seed), 6, seed === 5 ? 40 : 60);
      const [randomSingle, randomThree] = await Promise.all([run(1, script), run(3, script)]);
      for (let i = 0; i < randomSingle.length; i++) {
        deepEqual(randomThree[i], randomSingle[i], `random script ${seed}, client ${i}`);
      }
    }
  },
});
