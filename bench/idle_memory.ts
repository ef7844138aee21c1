/**
 * `deno task bench:idle-memory`: idle RSS of ours against the thin relays, and against the floor
 * that the libraries ours carries set (issue 18 item 3; BENCHMARKS.md "Targets not met").
 *
 * Four servers (seven with `--per-library`), each started fresh on a free loopback port
 * (`./spawn.ts`), pinned to core 0, measured alone, in an order that rotates every round so that
 * the machine's drift spreads over all of them:
 *
 * - `ours`: main.ts with the V8 settings it ships with;
 * - `ws`: the thin relay on ours' transport (`bench/baseline.ts --transport ws`);
 * - `ws+libraries`: the same relay after it has loaded and used once the three libraries this
 *   project's rule has ours use for validation, MessagePack and logging (`--libraries all`);
 * - `deno`: the thin `Deno.serve` relay, the denominator of issue 18's other targets;
 * - with `--per-library`, also `ws+zod`, `ws+msgpack` and `ws+logtape`: the ws relay with one of
 *   the libraries each, to show which of them the floor is made of.
 *
 * Each server's resident set (`VmRSS`, kB) is read `--settle` seconds after `/v2/health` first
 * answers (the moment the `connections` scenario of `deno task bench` reads its idle figure is
 * about 0 s) and again at each later mark of `--settle` (a comma-separated list, e.g. `2,50`: V8's
 * memory reducer shrinks an idle heap after some tens of seconds). The report gives each server's
 * median per mark and the ratios of medians `ours / ws` (the target: ≤ 1.1×), `ws+libraries /
 * ws` (what the libraries alone add: at 1.1× or more the target is out of reach of any relay
 * that uses them) and `ours / ws+libraries` (what ours' own code and state add).
 *
 * ```sh
 * deno task bench:idle-memory                           # 5 rounds, read at 2 s
 * deno task bench:idle-memory --rounds 7 --settle 2,50 --json
 * deno task bench:idle-memory --per-library
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { LIBRARIES, type Library } from "./baseline.ts";
import { type SpawnOptions, spawnServer } from "./spawn.ts";
import { median, readProc, rotation } from "./stats.ts";

/** A server the benchmark measures, by its label in the report. */
export type IdleServer = "ours" | "ws" | "ws+libraries" | "deno" | `ws+${Library}`;

/** The servers always measured, in the first round's order. */
export const IDLE_SERVERS: readonly IdleServer[] = ["ours", "ws", "ws+libraries", "deno"];

/** The servers `--per-library` adds: the ws relay with one library each. */
export const PER_LIBRARY_SERVERS: readonly IdleServer[] = LIBRARIES.map((name) =>
  `ws+${name}` as const
);

/** How {@linkcode spawnServer} starts `server`. */
export function spawnOptionsOf(server: IdleServer): {
  kind: "ours" | "baseline";
  options: SpawnOptions;
} {
  if (server === "ours") return { kind: "ours", options: {} };
  if (server === "deno") return { kind: "baseline", options: { baselineTransport: "deno" } };
  const libraries = server === "ws"
    ? []
    : server === "ws+libraries"
    ? LIBRARIES
    : [server.slice("ws+".length) as Library];
  return { kind: "baseline", options: { baselineTransport: "ws", baselineLibraries: libraries } };
}

/** The order of round `round` (0-based): `servers` rotated by `round`. */
export function roundOrder(servers: readonly IdleServer[], round: number): IdleServer[] {
  return rotation(servers, round);
}

/** One server's resident set at each settle mark, kB, in the order of the marks. */
export interface IdleSample {
  server: IdleServer;
  round: number;
  rssKb: number[];
}

/** Medians per server and mark, and the ratios of the report. */
export interface IdleSummary {
  settleSeconds: number[];
  /** Median RSS, kB, per server measured, one per settle mark. */
  medianKb: Partial<Record<IdleServer, number[]>>;
  /** Each `ws+<library>` server measured over `ws`, one per settle mark, rounded to 0.01. */
  perLibraryOverWs: Partial<Record<IdleServer, number[]>>;
  /** Ratios of the medians, one per settle mark, rounded to 0.01. */
  ratios: {
    oursOverWs: number[];
    librariesOverWs: number[];
    oursOverLibraries: number[];
    wsOverDeno: number[];
  };
}

/**
 * Medians and ratios of `samples`: every server of {@linkcode IDLE_SERVERS} must have at least
 * one sample; the `ws+<library>` servers are summarised when they have samples.
 * @throws Error when a server of {@linkcode IDLE_SERVERS} has no sample.
 */
export function summarizeIdle(
  samples: readonly IdleSample[],
  settleSeconds: number[],
): IdleSummary {
  const medianKb: Partial<Record<IdleServer, number[]>> = {};
  for (const server of [...IDLE_SERVERS, ...PER_LIBRARY_SERVERS]) {
    const mine = samples.filter((sample) => sample.server === server);
    if (mine.length === 0) {
      if (IDLE_SERVERS.includes(server)) throw new Error(`no sample of ${server}`);
      continue;
    }
    medianKb[server] = settleSeconds.map((_, mark) => median(mine.map((s) => s.rssKb[mark]!)));
  }
  const ratio = (a: IdleServer, b: IdleServer) =>
    settleSeconds.map((_, mark) =>
      Math.round((medianKb[a]![mark]! / medianKb[b]![mark]!) * 100) / 100
    );
  const perLibraryOverWs: Partial<Record<IdleServer, number[]>> = {};
  for (const server of PER_LIBRARY_SERVERS) {
    if (medianKb[server]) perLibraryOverWs[server] = ratio(server, "ws");
  }
  return {
    settleSeconds,
    medianKb,
    perLibraryOverWs,
    ratios: {
      oursOverWs: ratio("ours", "ws"),
      librariesOverWs: ratio("ws+libraries", "ws"),
      oursOverLibraries: ratio("ours", "ws+libraries"),
      wsOverDeno: ratio("ws", "deno"),
    },
  };
}

/** Starts `server`, reads its RSS at each mark (seconds after it is ready), stops it. */
async function measure(server: IdleServer, settleSeconds: number[]): Promise<number[]> {
  const { kind, options } = spawnOptionsOf(server);
  await using spawned = await spawnServer(kind, { ...options, core: 0 });
  const ready = performance.now();
  const rssKb: number[] = [];
  for (const mark of settleSeconds) {
    const wait = ready + mark * 1000 - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const sample = readProc(spawned.pid);
    if (!sample) throw new Error(`${server} (pid ${spawned.pid}) is gone`);
    rssKb.push(sample.rssKb);
  }
  return rssKb;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "5" },
      settle: { type: "string", default: "2" },
      json: { type: "boolean", default: false },
      "per-library": { type: "boolean", default: false },
    },
  });
  const rounds = Number(values.rounds);
  const settleSeconds = values.settle.split(",").map(Number);
  if (
    !(rounds >= 1) || settleSeconds.some((s, i) => !(s >= 0) || s < (settleSeconds[i - 1] ?? 0))
  ) {
    console.error("--rounds must be ≥ 1 and --settle a non-decreasing list of seconds ≥ 0");
    Deno.exit(2);
  }
  const servers = values["per-library"] ? [...IDLE_SERVERS, ...PER_LIBRARY_SERVERS] : IDLE_SERVERS;
  const samples: IdleSample[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const server of roundOrder(servers, round)) {
      const rssKb = await measure(server, settleSeconds);
      samples.push({ server, round, rssKb });
      if (!values.json) {
        console.log(
          `round ${round + 1} ${server.padEnd(12)} ${rssKb.map((kb) => `${kb} kB`).join(" ")}`,
        );
      }
    }
  }
  const summary = summarizeIdle(samples, settleSeconds);
  if (values.json) {
    console.log(JSON.stringify({ samples, summary }, null, 2));
  } else {
    for (const [mark, seconds] of settleSeconds.entries()) {
      const mb = (server: IdleServer) => (summary.medianKb[server]![mark]! / 1024).toFixed(1);
      console.log(
        `at ${seconds} s, medians of ${rounds}: ours ${mb("ours")} MB, ws ${mb("ws")} MB, ` +
          `ws+libraries ${mb("ws+libraries")} MB, deno ${mb("deno")} MB; ` +
          `ours / ws ${summary.ratios.oursOverWs[mark]}×, ` +
          `ws+libraries / ws ${summary.ratios.librariesOverWs[mark]}×, ` +
          `ours / ws+libraries ${summary.ratios.oursOverLibraries[mark]}×, ` +
          `ws / deno ${summary.ratios.wsOverDeno[mark]}×`,
      );
      for (const [server, ratios] of Object.entries(summary.perLibraryOverWs)) {
        console.log(`  ${server}: ${mb(server as IdleServer)} MB, over ws ${ratios[mark]}×`);
      }
    }
  }
}
