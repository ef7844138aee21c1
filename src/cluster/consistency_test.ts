/**
 * The consistency property (`consistency.ts`) on the in-memory twins: seeds 1–6, each also with a
 * 5-ms envelope window (`cluster.envelope_window_ms`: more bodies share an envelope, so answers
 * and unrelated binding items meet more often), and `SIGNAL_FISH_CONSISTENCY_SEEDS=n` runs n more
 * (a soak, ~2 s a seed), from seed 100 or from `SIGNAL_FISH_CONSISTENCY_FROM=k` (a soak beyond the
 * seeds run before; a soak reports every failing seed of a test, not only the first). The incident tests (a crash, a drain, a Redis outage, restart or pause, a
 * slow node, room entries lost) and the client-side variants (token-bound connections, slow
 * consumers, MessagePack game data, room views, targeted game data, rooms that start, join modes,
 * short timers) run the same seeds.
 */
import { assertConsistent, type ConsistencyOptions, runConsistency } from "./consistency.ts";
import { testCluster, type TestClusterOptions } from "./testing.ts";

const SEEDS = [1, 2, 3, 4, 5, 6];
const extra = Number(Deno.env.get("SIGNAL_FISH_CONSISTENCY_SEEDS") ?? 0);
const from = Number(Deno.env.get("SIGNAL_FISH_CONSISTENCY_FROM") ?? 100);
for (let i = 0; i < extra; i++) SEEDS.push(from + i);

/**
 * Runs `check` (which throws on a broken property) and records its error under `label` in
 * `failures` instead of throwing, so a run goes on through the other seeds.
 */
function recording<T>(failures: string[], label: string, check: () => T): T | undefined {
  try {
    return check();
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    failures.push(`${label}: ${error.stack ?? error.message}`);
    return undefined;
  }
}

/** Throws with every recorded failure (the number of them first), if there is any. */
function throwRecorded(failures: readonly string[]): void {
  if (failures.length === 0) return;
  throw new Error(`${failures.length} run(s) failed:\n${failures.join("\n\n")}`);
}

Deno.test("Cluster consistency (twins): with requests crossing answers, closes and takeovers, every home's live seats and spectators are exactly those its clients were told of (docs/spec/SERVER.md §8.4.2, §8.6)", async () => {
  let seated = 0;
  const failures: string[] = [];
  for (const seed of SEEDS) {
    for (const envelopeWindowMs of [0, 5]) {
      const cluster = await testCluster({
        heartbeatMs: 50,
        envelopeWindowMs,
        engine: { enableReconnection: true },
      });
      const label = `seed ${seed}, window ${envelopeWindowMs} ms`;
      const outcome = await runConsistency(cluster, seed);
      seated += recording(failures, label, () => assertConsistent(outcome, label)) ?? 0;
    }
  }
  throwRecorded(failures);
  // The runs ended with members in rooms (the comparison is not between two empty lists).
  if (seated === 0) throw new Error("no seeded run ended with a seated client");
});

/**
 * Runs that may follow {@linkcode SEEDS} while what a test requires has not happened yet: a run's
 * path depends on timing too, so on a busy machine the same seeds can go through a rare path less
 * often; the requirement still has to be met within them.
 */
const MORE_SEEDS = 8;

/**
 * One run per seed of {@linkcode SEEDS} on fresh twins (heartbeat 50 ms, reconnection on,
 * `settings` added), with the incident `incident(seed)` gives (and its label); asserts every run,
 * that some run ended with a seated client, and, with `expect`, that the runs went through what
 * it counts in their `seen` (else throws `expect.none`) and, with `expect.never`, that no run
 * saw any of those entries. While what `expect` counts (and `expect.enough`, if given) has not
 * happened yet, up to {@linkcode MORE_SEEDS} more seeds (from 200) are run.
 */
async function everySeed(
  settings: TestClusterOptions,
  incident: (seed: number) => [label: string, options: ConsistencyOptions],
  expect?: {
    count: (seen: Record<string, number>) => number;
    none: string;
    never?: string[];
    enough?: () => boolean;
  },
): Promise<void> {
  let seated = 0;
  let counted = 0;
  const failures: string[] = [];
  const seeds = [...SEEDS];
  for (let i = 0; i < seeds.length; i++) {
    const seed = seeds[i]!;
    const cluster = await testCluster({
      heartbeatMs: 50,
      engine: { enableReconnection: true },
      ...settings,
    });
    const [label, options] = incident(seed);
    const outcome = await runConsistency(cluster, seed, options);
    const run = `seed ${seed}, ${label}`;
    seated += recording(failures, run, () => assertConsistent(outcome, run)) ?? 0;
    counted += expect?.count(outcome.seen) ?? 0;
    for (const what of expect?.never ?? []) {
      if (outcome.seen[what]) failures.push(`${run}: ${what} ×${outcome.seen[what]}`);
    }
    const met = counted > 0 && (expect?.enough?.() ?? true);
    if (i === seeds.length - 1 && expect && !met && seeds.length < SEEDS.length + MORE_SEEDS) {
      seeds.push(200 + seeds.length - SEEDS.length);
    }
  }
  throwRecorded(failures);
  if (seated === 0) throw new Error("no seeded run ended with a seated client");
  if (expect && counted === 0) throw new Error(expect.none);
}

Deno.test("Cluster consistency (twins): one node crashes mid-run (its rooms lost, its connections dropped, its clients back through the others): the surviving homes' live seats are still exactly those their clients were told of (docs/spec/SERVER.md §8.5.5, §8.6)", async () => {
  // A short T, so the survivors hold the dead node dead during the run and its codes are
  // created again (docs/spec/SERVER.md §8.5.4).
  await everySeed({ ttlMs: 600 }, (seed) => {
    const crashAt = 60 + (seed * 37) % 130;
    return [`crash before step ${crashAt}`, { quietMs: 600, crashAt }];
  });
});

Deno.test("Cluster consistency (twins): one node drains mid-run and stops (its rooms keep playing for members on every node until the drain times out, then are deleted): every live seat is still exactly what its client was told (docs/spec/SERVER.md §8.7)", async () => {
  await everySeed({}, (seed) => {
    const drainAt = 40 + (seed * 29) % 100;
    return [`drain from step ${drainAt}`, { drainAt }];
  }, {
    // The drain sent connections away (docs/spec/SERVER.md §8.7 step 2).
    count: (seen) => seen["close 1001"] ?? 0,
    none: "no connection was closed 1001 by the drain",
  });
});

Deno.test("Cluster consistency (twins): Redis stops answering for 40 steps mid-run (store calls and publishes fail), then answers again: every live seat is still exactly what its client was told (docs/spec/SERVER.md §8.5.5)", async () => {
  await everySeed({}, (seed) => {
    const outageAt = 30 + (seed * 41) % 150;
    return [`Redis out from step ${outageAt}`, { outageAt }];
  }, {
    // Requests that needed Redis meanwhile were refused (docs/spec/SERVER.md §8.6).
    count: (seen) =>
      Object.entries(seen).filter(([what]) => what.endsWith("SERVICE_UNAVAILABLE"))
        .reduce((n, [, k]) => n + k, 0),
    none: "no request was answered SERVICE_UNAVAILABLE",
  });
});

Deno.test("Cluster consistency (twins): Redis restarts empty mid-run (links down, every key lost, then a new epoch and re-registration): every live seat is still exactly what its client was told (docs/spec/SERVER.md §8.5.5)", async () => {
  await everySeed({}, (seed) => {
    const restartAt = 30 + (seed * 43) % 180;
    return [`Redis restarted at step ${restartAt}`, { restartAt }];
  });
});

Deno.test("Cluster consistency (twins): one node is too slow for 40 steps (envelopes to and from it 0–160 ms late, forward_timeout_ms 100): requests time out, expire at the home or succeed too late and are undone, and every live seat is still exactly what its client was told (docs/spec/SERVER.md §8.4.2, §8.5.5)", async () => {
  // A heartbeat of 100 ms: a late envelope (≤ 160 ms) does not make its sender suspect (300 ms).
  await everySeed({ heartbeatMs: 100, forwardTimeoutMs: 100 }, (seed) => {
    const slowAt = 30 + (seed * 47) % 170;
    return [`slow node from step ${slowAt}`, { slowAt }];
  }, {
    // The timeouts happened (docs/spec/SERVER.md §6.3 #73, #74).
    count: (seen) => Math.min(seen["bind timeouts"] ?? 0, seen["binds expired at the home"] ?? 0),
    none: "no request timed out at an edge and expired at a home",
  });
});

Deno.test("Cluster consistency (twins): Redis pauses mid-run (publishes neither delivered nor answered, store calls waiting; 100 ms, or 250 ms so every pair falls silent past 3 × heartbeat_ms): every live seat is still exactly what its client was told (docs/spec/SERVER.md §8.5.1, §8.5.5)", async () => {
  await everySeed({}, (seed) => {
    const pauseAt = 30 + (seed * 53) % 200;
    const pauseMs = seed % 2 === 0 ? 250 : 100;
    return [`Redis paused ${pauseMs} ms at step ${pauseAt}`, { pauseAt, pauseMs }];
  }, {
    count: (seen) => seen["pair resyncs"] ?? 0,
    none: "no pair was resynced",
  });
});

Deno.test("Cluster consistency (twins): every connection token-bound (each text frame signed, 5-ms envelope window): frames a home bounces back are handled as the edge first took them, so no signed frame is refused, and every live seat is still exactly what its client was told (docs/spec/PROTOCOL.md Appendix A, docs/spec/SERVER.md §8.4.2)", async () => {
  await everySeed({ envelopeWindowMs: 5 }, () => ["token-bound", { tokenBinding: true }], {
    count: (seen) => seen["frames bounced"] ?? 0,
    none: "no frame was bounced",
    // Every frame the clients sent was signed: a refusal is the edge's mistake.
    never: ["close 1008", "Error UNAUTHORIZED"],
  });
});

Deno.test("Cluster consistency (twins): clients stop reading now and then (frames wait in a small queue until they read again; an overflow drops the whole queue, and such slow consumers are closed 1013 at once whatever their connection is doing, seats held as truncated): every live seat is still exactly what its client was told, and nothing is lost untold (docs/spec/SERVER.md §5.2, §8.5.3)", async () => {
  await everySeed({}, () => ["slow consumers", { stallRate: 0.03 }], {
    count: (seen) => seen["close 1013"] ?? 0,
    none: "no connection was closed as a slow consumer",
  });
});

Deno.test("Cluster consistency (twins): half the connections negotiate MessagePack and send binary game data (binary envelopes to MessagePack recipients, JSON to the others and in replays), token-bound, some of them slow consumers: every live seat is still exactly what its client was told, and nothing is lost untold (docs/spec/PROTOCOL.md §7.7, Appendix A)", async () => {
  await everySeed(
    { engine: { enableReconnection: true, messagePack: true } },
    () => ["MessagePack", { messagePack: true, tokenBinding: true, stallRate: 0.03 }],
    {
      count: (seen) => seen["binary GameData received"] ?? 0,
      none: "no binary game data was received",
      never: ["close 1008", "Error UNAUTHORIZED", "Error UNSUPPORTED_GAME_DATA_FORMAT"],
    },
  );
});

Deno.test("Cluster consistency (twins): players also mark themselves ready and ask for or give up authority; once quiet, every seated client's view of its room (players, authority, ready set, lobby state, who is disconnected, from what it was told) is its home's room (docs/spec/PROTOCOL.md §7.4, §7.5, docs/spec/SERVER.md §8.6)", async () => {
  await everySeed({ envelopeWindowMs: 5 }, () => ["room state", { roomState: true }], {
    count: (seen) => seen["room views compared"] ?? 0,
    none: "no seated client's view was compared",
  });
});

Deno.test("Cluster consistency (twins): players provide connection info and ready up, others watch, so rooms start: every LobbyStateChanged finalized is followed at once by GameStarting, whose peers and authority are the room as the client knows it, every player's connection_info is its own, and spectators never see one (docs/spec/PROTOCOL.md §7.4, §7.8, §7.9)", async () => {
  let spectators = 0, infos = 0;
  await everySeed(
    { envelopeWindowMs: 5 },
    () => ["game starts", { roomState: true, gameStarts: true, stallRate: 0.03 }],
    {
      count: (seen) => {
        spectators += seen["GameStarting received by a spectator"] ?? 0;
        infos += seen["connection info received"] ?? 0;
        return seen["GameStarting received"] ?? 0;
      },
      none: "no player got GameStarting",
      enough: () => spectators > 0 && infos > 0,
    },
  );
  if (spectators === 0) throw new Error("no spectator got GameStarting");
  if (infos === 0) throw new Error("no connection info was received");
});

Deno.test("Cluster consistency (twins): joins that may only create or only join, some creating rooms that hand authority over when its holder leaves: a create-only join is answered with a new room, a join-only one never with a room made for it, and every seated client's view of its room (its authority included) is its home's (docs/spec/EXTENSIONS.md E9, E11)", async () => {
  let joinOnly = 0;
  await everySeed(
    { envelopeWindowMs: 5 },
    () => ["join modes", { roomState: true, joinModes: true, stallRate: 0.03 }],
    {
      count: (seen) => {
        joinOnly += seen["RoomJoined create never"] ?? 0;
        return seen["RoomJoined create always"] ?? 0;
      },
      none: "no create-only join was answered RoomJoined",
      enough: () => joinOnly > 0,
    },
  );
  if (joinOnly === 0) throw new Error("no join-only join was answered RoomJoined");
});

Deno.test("Cluster consistency (twins): with a reconnection window of 40 ms and empty rooms deleted after 30 ms, each node's timers running every few steps, held seats expire and rooms go while Reconnects and joins cross nodes towards them: every live seat is still what its client was told, and every view its home's (docs/spec/PROTOCOL.md §7.11.3, docs/spec/SERVER.md §4)", async () => {
  await everySeed(
    {
      envelopeWindowMs: 5,
      engine: { enableReconnection: true, reconnectionWindowMs: 40, emptyRoomTimeoutMs: 30 },
    },
    () => ["short timers", { roomState: true, targeted: true, timersEvery: 5 }],
    {
      count: (seen) => seen["held seats released"] ?? 0,
      none: "no member saw a held seat released",
    },
  );
});

Deno.test("Cluster consistency (twins): the directory loses every room entry by code mid-run (Redis evicting them, or a home paused longer than T): joins by code create second rooms under codes in use until the first homes' refreshes find the conflicts, and every live seat is still what its client was told, every view its home's, nothing lost untold (docs/spec/SERVER.md §8.3 conflict rule, §8.5.5)", async () => {
  // A short T, so the homes refresh (every T/3) during the run.
  await everySeed({ ttlMs: 600 }, (seed) => {
    const evictAt = 30 + (seed * 59) % 180;
    return [`room entries lost at step ${evictAt}`, {
      evictAt,
      roomState: true,
      targeted: true,
      stallRate: 0.03,
    }];
  }, {
    count: (seen) => seen["code conflicts"] ?? 0,
    none: "no home found its code owned by another room",
  });
});

Deno.test("Cluster consistency (twins): players address some of their game data to_player another player, on any node, held or gone (some clients slow consumers, dropped clients back at once): a targeted frame reaches that player's seat only, live or replayed, and nothing sent to a seat is lost untold (docs/spec/PROTOCOL.md §7.6, docs/spec/SERVER.md §8.5.3)", async () => {
  await everySeed(
    { envelopeWindowMs: 5 },
    () => ["targeted", { targeted: true, roomState: true, stallRate: 0.03 }],
    {
      count: (seen) =>
        Math.min(seen["targeted GameData received"] ?? 0, seen["GameData replayed"] ?? 0),
      none: "no targeted game data was received, or nothing was replayed",
    },
  );
});

Deno.test("Cluster consistency (twins): Redis answering over a network rather than within the turn (every store call and envelope 0–2 ms later, in order), so clients' frames, timers and other nodes' envelopes run while a claim, a lookup or a bind is on its way; rooms start, half the connections speak MessagePack: every live seat is still what its client was told, every view its home's, nothing lost untold (docs/spec/SERVER.md §8.3, §8.4.2, §8.6)", async () => {
  let started = 0;
  await everySeed(
    { engine: { enableReconnection: true, messagePack: true } },
    () => ["Redis latency", {
      jitterMs: 2,
      roomState: true,
      gameStarts: true,
      messagePack: true,
      targeted: true,
      stallRate: 0.03,
    }],
    {
      count: (seen) => {
        started += seen["GameStarting received"] ?? 0;
        return seen["store calls answered later"] ?? 0;
      },
      none: "no store call was answered later than its turn",
      enough: () => started > 0,
    },
  );
  if (started === 0) throw new Error("no room started (no GameStarting was received)");
});
