/**
 * The consistency property (`consistency.ts`) on the in-memory twins: seeds 1–6, each also with a
 * 5-ms envelope window (`cluster.envelope_window_ms`: more bodies share an envelope, so answers
 * and unrelated binding items meet more often), and `SIGNAL_FISH_CONSISTENCY_SEEDS=n` runs n more
 * (a soak, ~2 s a seed).
 */
import { assertConsistent, runConsistency } from "./consistency.ts";
import { testCluster } from "./testing.ts";

const SEEDS = [1, 2, 3, 4, 5, 6];
const extra = Number(Deno.env.get("SIGNAL_FISH_CONSISTENCY_SEEDS") ?? 0);
for (let i = 0; i < extra; i++) SEEDS.push(100 + i);

Deno.test("Cluster consistency (twins): with requests crossing answers, closes and takeovers, every home's live seats and spectators are exactly those its clients were told of (docs/spec/SERVER.md §8.4.2, §8.6)", async () => {
  let seated = 0;
  for (const seed of SEEDS) {
    for (const envelopeWindowMs of [0, 5]) {
      const cluster = await testCluster({
        heartbeatMs: 50,
        envelopeWindowMs,
        engine: { enableReconnection: true },
      });
      const label = `seed ${seed}, window ${envelopeWindowMs} ms`;
      seated += assertConsistent(await runConsistency(cluster, seed), label);
    }
  }
  // The runs ended with members in rooms (the comparison is not between two empty lists).
  if (seated === 0) throw new Error("no seeded run ended with a seated client");
});
