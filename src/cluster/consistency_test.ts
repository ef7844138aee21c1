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

Deno.test("Cluster consistency (twins): one node crashes mid-run (its rooms lost, its connections dropped, its clients back through the others): the surviving homes' live seats are still exactly those their clients were told of (docs/spec/SERVER.md §8.5.5, §8.6)", async () => {
  let seated = 0;
  for (const seed of SEEDS) {
    // A short T, so the survivors hold the dead node dead during the run and its codes are
    // created again (docs/spec/SERVER.md §8.5.4).
    const cluster = await testCluster({
      heartbeatMs: 50,
      ttlMs: 600,
      engine: { enableReconnection: true },
    });
    const crashAt = 60 + (seed * 37) % 130;
    const label = `seed ${seed}, crash before step ${crashAt}`;
    seated += assertConsistent(
      await runConsistency(cluster, seed, { quietMs: 600, crashAt }),
      label,
    );
  }
  if (seated === 0) throw new Error("no seeded run ended with a seated client");
});

Deno.test("Cluster consistency (twins): one node drains mid-run and stops (its rooms keep playing for members on every node until the drain times out, then are deleted): every live seat is still exactly what its client was told (docs/spec/SERVER.md §8.7)", async () => {
  let seated = 0;
  let drained = 0;
  for (const seed of SEEDS) {
    const cluster = await testCluster({ heartbeatMs: 50, engine: { enableReconnection: true } });
    const drainAt = 40 + (seed * 29) % 100;
    const outcome = await runConsistency(cluster, seed, { drainAt });
    seated += assertConsistent(outcome, `seed ${seed}, drain from step ${drainAt}`);
    drained += outcome.seen["close 1001"] ?? 0;
  }
  if (seated === 0) throw new Error("no seeded run ended with a seated client");
  // The drain sent connections away (docs/spec/SERVER.md §8.7 step 2).
  if (drained === 0) throw new Error("no connection was closed 1001 by the drain");
});

Deno.test("Cluster consistency (twins): Redis stops answering for 40 steps mid-run (store calls and publishes fail), then answers again: every live seat is still exactly what its client was told (docs/spec/SERVER.md §8.5.5)", async () => {
  let seated = 0;
  let unavailable = 0;
  for (const seed of SEEDS) {
    const cluster = await testCluster({ heartbeatMs: 50, engine: { enableReconnection: true } });
    const outageAt = 30 + (seed * 41) % 150;
    const outcome = await runConsistency(cluster, seed, { outageAt });
    seated += assertConsistent(outcome, `seed ${seed}, Redis out from step ${outageAt}`);
    unavailable += Object.entries(outcome.seen)
      .filter(([what]) => what.endsWith("SERVICE_UNAVAILABLE")).reduce((n, [, k]) => n + k, 0);
  }
  if (seated === 0) throw new Error("no seeded run ended with a seated client");
  // Requests that needed Redis meanwhile were refused (docs/spec/SERVER.md §8.6).
  if (unavailable === 0) throw new Error("no request was answered SERVICE_UNAVAILABLE");
});

Deno.test("Cluster consistency (twins): Redis restarts empty mid-run (links down, every key lost, then a new epoch and re-registration): every live seat is still exactly what its client was told (docs/spec/SERVER.md §8.5.5)", async () => {
  let seated = 0;
  for (const seed of SEEDS) {
    const cluster = await testCluster({ heartbeatMs: 50, engine: { enableReconnection: true } });
    const restartAt = 30 + (seed * 43) % 180;
    const outcome = await runConsistency(cluster, seed, { restartAt });
    seated += assertConsistent(outcome, `seed ${seed}, Redis restarted at step ${restartAt}`);
  }
  if (seated === 0) throw new Error("no seeded run ended with a seated client");
});
