/**
 * Differential test (issue 15 item 2, docs/spec/SERVER.md §8.6 "nothing different in normal operation"):
 * the same scripted sessions against one node and against three (connections assigned
 * round-robin) must give every client the same message sequence once ids, tokens, codes and
 * times are normalised, on the in-memory twins (tests/cluster_differential_test.ts runs it on a
 * real redis-server). Besides the scripted session, seeded random scripts (`randomScript`) in
 * four settings (plain; a 5-ms envelope window; two apps with authentication required; tight
 * rate-limit buckets shared across nodes), each also on a single-instance server; run more of
 * them as a soak with `SIGNAL_FISH_DIFFERENTIAL_SEEDS=150 deno task test
 * src/cluster/differential_test.ts` (about 6 minutes: n more seeds in each setting; add
 * `SIGNAL_FISH_DIFFERENTIAL_FROM=k` to start at the k-th extra seed, for a soak beyond the last).
 */
import { deepEqual, ok } from "node:assert/strict";
import { randomScript, runScript, SCRIPT, type Step } from "./differential.ts";
import { prng } from "../engine/testing.ts";
import type { EngineOptions } from "../engine/engine.ts";
import { RateLimits } from "../engine/rate_limits.ts";
import { singleInstance, testCluster } from "./testing.ts";

/**
 * Runs `script` on `nodes` twin nodes (`windowMs` = `cluster.envelope_window_ms`), engine
 * settings `engine` on top of reconnection and MessagePack on, bucket `limits` if given; with
 * `moveOnDrop` a dropped client comes back through the next node.
 */
async function run(
  nodes: number,
  windowMs = 0,
  script = SCRIPT,
  engine: Partial<EngineOptions> = {},
  limits?: Limits,
  moveOnDrop = false,
): Promise<unknown[][]> {
  const cluster = await testCluster({
    nodes,
    envelopeWindowMs: windowMs,
    engine: { enableReconnection: true, messagePack: true, ...engine },
    ...(limits
      ? {
        store: {
          buckets: {
            creation: { capacity: limits.creations, windowMs: 60_000 },
            join: { capacity: limits.joins, windowMs: 60_000 },
            reconnect: { capacity: limits.reconnects, windowMs: 60_000 },
            auth_failure: { capacity: 10, windowMs: 60_000 },
          },
        },
      }
      : {}),
  });
  try {
    return await runScript(cluster.nodes, 6, script, {
      ...(limits ? { ipOf: limits.ipOf } : {}),
      moveOnDrop,
    });
  } finally {
    await cluster.close();
  }
}

/**
 * Per-IP bucket capacities (docs/spec/SERVER.md §3.4; one refill period of 60 s, far longer than
 * a script) and each client's IP: in a cluster the buckets live in the store, global
 * (docs/spec/SERVER.md §8.3), in a single instance in its engine.
 */
interface Limits {
  creations: number;
  joins: number;
  reconnects: number;
  ipOf: (client: number) => string;
}

/** Runs `script` on a single-instance server (no cluster code at all) with `engine` settings. */
function runAlone(
  script: Step[],
  engine: Partial<EngineOptions> = {},
  limits?: Limits,
): Promise<unknown[][]> {
  const rateLimits = limits &&
    new RateLimits({
      maxRoomCreations: limits.creations,
      maxJoinAttempts: limits.joins,
      maxReconnectAttempts: limits.reconnects,
      windowMs: 60_000,
    });
  return runScript(
    [singleInstance({ messagePack: true, ...engine, ...(rateLimits ? { rateLimits } : {}) })],
    6,
    script,
    limits ? { ipOf: limits.ipOf } : {},
  );
}

Deno.test("Differential: one node and three nodes give every client the same messages", async () => {
  const single = await run(1);
  const three = await run(3);
  /** Client `i`'s message types (without the close code entry runScript ends each list with). */
  const types = (i: number) =>
    single[i]!.flatMap((m) => "type" in (m as object) ? [(m as { type: string }).type] : []);
  ok(single.every((_, i) => types(i).length > 0), "every client got something");
  // The script does what it says (so equality is about something).
  ok(types(0).includes("GameStarting") && types(3).includes("GameStarting"), types(0).join());
  ok(types(1).includes("RoomLeft") && types(4).includes("RoomJoinFailed"), types(4).join());
  ok(types(3).includes("SpectatorLeft") && types(5).at(-1) === "RoomJoined", types(5).join());
  for (let i = 0; i < single.length; i++) {
    deepEqual(three[i], single[i], `client ${i}`);
  }
});

Deno.test("Differential: with an envelope window (cluster.envelope_window_ms) three nodes still match one", async () => {
  const single = await run(1);
  const three = await run(3, 5);
  for (let i = 0; i < single.length; i++) {
    deepEqual(three[i], single[i], `client ${i}`);
  }
});

/**
 * Runs `one` for every seed, four seeds at a time (independent clusters: their steps wait for
 * timer turns, not for the CPU), and resolves with each result and its seed, in seed order.
 */
async function forSeeds<T extends object>(
  seeds: readonly number[],
  one: (seed: number) => Promise<T>,
): Promise<(T & { seed: number })[]> {
  const out: (T & { seed: number })[] = [];
  for (let first = 0; first < seeds.length; first += 4) {
    out.push(
      ...await Promise.all(
        seeds.slice(first, first + 4).map(async (seed) => ({ ...await one(seed), seed })),
      ),
    );
  }
  return out;
}

/**
 * Runs `compare` on every outcome (it asserts with `deepEqual`), and throws once at the end if any
 * seed failed: the first failure in full, after the list of every failing seed (so one soak run
 * names all of them, not only the first).
 */
function compareEverySeed<T extends { seed: number }>(
  outcomes: readonly T[],
  compare: (outcome: T) => void,
): void {
  const failures: { seed: number; error: Error }[] = [];
  for (const outcome of outcomes) {
    try {
      compare(outcome);
    } catch (error) {
      if (!(error instanceof Error)) throw error;
      failures.push({ seed: outcome.seed, error });
    }
  }
  if (failures.length === 0) return;
  const seeds = failures.map((f) => f.seed).join(", ");
  throw new Error(`${failures.length} seed(s) differ: ${seeds}`, { cause: failures[0]!.error });
}

/** Seeds of the random differential; `SIGNAL_FISH_DIFFERENTIAL_SEEDS=n` runs n more (a soak). */
const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];
const extra = Number(Deno.env.get("SIGNAL_FISH_DIFFERENTIAL_SEEDS") ?? 0);
const from = Number(Deno.env.get("SIGNAL_FISH_DIFFERENTIAL_FROM") ?? 0);
for (let i = from; i < from + extra; i++) SEEDS.push(1000 + i);

Deno.test("Differential: random scripts give every client the same messages on a single-instance server, one node and three (with and without an envelope window)", async () => {
  const seen = new Map<string, number>();
  const outcomes = await forSeeds(SEEDS, async (seed) => {
    const script = randomScript(prng(seed), 6, 60);
    // Three nodes also with a 5-ms envelope window (cluster.envelope_window_ms).
    // Two spectators per room at most, so the homes' cap checks are compared too. (Not a
    // small max_rooms_per_game: a creation at that cap deletes the oldest room without a
    // seat only on its own node, docs/spec/SERVER.md §8.3 note, so an empty room homed
    // elsewhere lives on where one process would have deleted it.)
    const caps = { maxSpectatorsPerRoom: 2 };
    const [single, three, windowed, alone] = await Promise.all([
      run(1, 0, script, caps),
      run(3, 0, script, caps),
      // The windowed run also brings dropped clients back through another node.
      run(3, 5, script, caps, undefined, true),
      runAlone(script, caps),
    ]);
    return { single, three, windowed, alone };
  });
  compareEverySeed(outcomes, ({ seed, single, three, windowed, alone }) => {
    for (let i = 0; i < single.length; i++) {
      deepEqual(single[i], alone[i], `seed ${seed}, client ${i}: one node against no cluster`);
      deepEqual(three[i]!, single[i]!, `seed ${seed}, client ${i}`);
      deepEqual(
        windowed[i]!,
        single[i]!,
        `seed ${seed}, client ${i}, 5-ms window`,
      );
    }
  });
  for (const { single } of outcomes) {
    for (const message of single.flat()) {
      const { type, closed, operator, reply, http, status, body } = message as {
        type?: string;
        closed?: unknown;
        operator?: string;
        reply?: { ok: boolean };
        http?: string;
        status?: number;
        body?: { rooms?: unknown[] };
      };
      if ((body?.rooms?.length ?? 0) > 0) seen.set("http list of rooms", 1);
      if ((message as { data?: { reason?: string } }).data?.reason === "Server is in maintenance") {
        seen.set("refused in maintenance", 1);
      }
      const key = type ??
        (operator
          ? `operator ${operator} ${reply?.ok}`
          : http
          ? `http ${http} ${status}`
          : `closed ${closed}`);
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
  }
  // The scripts reached rooms and every kind of room traffic, and some steps were refused (so
  // the equality is about all of that).
  for (
    const type of [
      "RoomJoined",
      "PlayerJoined",
      "SpectatorJoined",
      "GameData",
      "AuthorityChanged",
      "LobbyStateChanged",
      "PlayerLeft",
      "RoomJoinFailed",
      "Error",
      "Reconnected",
      "SpectatorJoinFailed",
      "PlayerDisconnected",
      "binary",
      "operator close true",
      "operator remove_player true",
      "http lookup 200",
      "http lookup 404",
      "http list 200",
      "http list of rooms",
      "refused in maintenance",
      "closed 1006",
    ]
  ) {
    ok((seen.get(type) ?? 0) > 0, `no ${type} in ${JSON.stringify(Object.fromEntries(seen))}`);
  }
});

Deno.test("Differential: random scripts with authentication required and two apps give the same messages on a single-instance server, one node and three", async () => {
  const auth = {
    auth: {
      required: true,
      // App B's rooms hold at most 3 players (docs/spec/SERVER.md §3.3): its 4-player requests
      // are refused before resolution, on every node.
      apps: [{ appId: "app-a", appName: "A" }, {
        appId: "app-b",
        appName: "B",
        maxPlayersPerRoom: 3,
      }],
      timeoutMs: 60_000,
      enforceSdkGate: false,
    },
  };
  const seeds = [21, 22, 23, 24];
  for (let i = from; i < from + extra; i++) seeds.push(2000 + i);
  const outcomes = await forSeeds(seeds, async (seed) => {
    const script = randomScript(prng(seed), 6, 60, { apps: ["app-a", "app-b"] });
    const [single, three, alone] = await Promise.all([
      run(1, 0, script, auth),
      // Three nodes, dropped clients coming back through another node.
      run(3, 0, script, auth, undefined, true),
      runAlone(script, auth),
    ]);
    return { single, three, alone };
  });
  let joined = 0;
  let capped = 0;
  let found = 0;
  compareEverySeed(outcomes, ({ seed, single, three, alone }) => {
    for (let i = 0; i < single.length; i++) {
      deepEqual(single[i], alone[i], `seed ${seed}, client ${i}: one node against no cluster`);
      deepEqual(three[i]!, single[i]!, `seed ${seed}, client ${i}`);
    }
  });
  for (const { single } of outcomes) {
    joined += single.flat().filter((m) => (m as { type?: string }).type === "RoomJoined").length;
    capped += single.flat().filter((m) =>
      (m as { data?: { reason?: string } }).data?.reason === "Max players cannot exceed 3"
    ).length;
    found += single.flat().filter((m) => {
      const { http, status } = m as { http?: string; status?: number };
      return http === "lookup" && status === 200;
    }).length;
  }
  ok(found > 0, "no lookup found a room in its app's namespace");
  ok(joined > 10, `only ${joined} joins`);
  ok(capped > 0, "no request over app B's max_players_per_room");
});

Deno.test("Differential: random scripts with tight rate limits, clients sharing addresses across nodes, give the same messages on a single-instance server, one node and three", async () => {
  // Two client IPs, each used by three clients on three different nodes (client i on node
  // i % 3), so a bucket is drawn from through every node: the store's buckets must refuse what a
  // single instance's refuses, at the same step, with the same reason.
  const limits: Limits = {
    creations: 3,
    joins: 6,
    reconnects: 1,
    ipOf: (client) => `10.0.1.${client % 2}`,
  };
  const seeds = [31, 32, 33, 34];
  for (let i = from; i < from + extra; i++) seeds.push(3000 + i);
  const outcomes = await forSeeds(seeds, async (seed) => {
    // The random steps, then a Reconnect from every client (three per address against a
    // reconnect bucket of one) for a room id no room ever had: members of a room are
    // answered "Already in a room", the others "Invalid reconnection token", alike in
    // one process and in a cluster.
    const script = randomScript(prng(seed), 6, 60);
    for (let k = 0; k < 6; k++) {
      script.push([k, {
        type: "Reconnect",
        data: {
          player_id: `PLAYER${k}`,
          room_id: "00000000-0000-4000-8000-000000000000",
          auth_token: `TOKEN${k}`,
        },
      }]);
    }
    const [single, three, alone] = await Promise.all([
      run(1, 0, script, {}, limits),
      // Three nodes, dropped clients coming back through another node.
      run(3, 0, script, {}, limits, true),
      runAlone(script, {}, limits),
    ]);
    return { single, three, alone };
  });
  const refused = new Map<string, number>();
  compareEverySeed(outcomes, ({ seed, single, three, alone }) => {
    for (let i = 0; i < single.length; i++) {
      deepEqual(single[i], alone[i], `seed ${seed}, client ${i}: one node against no cluster`);
      deepEqual(three[i]!, single[i]!, `seed ${seed}, client ${i}`);
    }
  });
  for (const { single } of outcomes) {
    for (const message of single.flat()) {
      const { type, data } = message as { type?: string; data?: { error_code?: string } };
      if (data?.error_code === "RATE_LIMIT_EXCEEDED") {
        refused.set(type!, (refused.get(type!) ?? 0) + 1);
      }
    }
  }
  // Every bucket refused something (so the equality covers the refusals).
  for (const type of ["RoomJoinFailed", "SpectatorJoinFailed", "ReconnectionFailed"]) {
    ok((refused.get(type) ?? 0) > 0, `no rate-limited ${type}: ${JSON.stringify([...refused])}`);
  }
});
