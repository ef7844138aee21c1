/**
 * `deno task bench:cluster-floor`: how far issue 15's cluster targets (item 8: three instances
 * cost at most 1.15× one instance's CPU per delivered message with room affinity and 2.5× with
 * members spread, p99 ≤ 10 ms) are reachable by any server built the way docs/spec/SERVER.md §8
 * builds cluster mode (BENCHMARKS.md "Targets not met", "Session 23").
 *
 * Each round runs, for each server in an order that rotates every round, the three topologies of
 * `bench/cluster_run.sh` on a fresh system each (100 rooms of 4 at 12,000 delivered msg/s, 10 s;
 * cluster CPU = the three servers plus `redis-server`): `single` (one instance), `affinity` (three,
 * a room's players on its home) and `spread` (three, players round-robin). The servers:
 * - `ours`: this tree's server;
 * - `deno`: the thin relay (`bench/baseline.ts`) alone and, for three instances, the thin cluster
 *   relay (`bench/baseline_cluster.ts`): homes claimed in Redis, one channel per instance, one
 *   envelope per peer per turn, nothing else of §8;
 * - `ws`: the same two thin relays on ours' transport (`node:http` + `ws`).
 *
 * Per server it reports each round's `affinity / single` and `spread / single` (the ratios the
 * targets are written in) with their medians, lowest and highest, and each topology's CPU per
 * delivered message, p99, wake-ups per message and losses. When a thin relay's ratio is past a
 * target, no server with §8's hops meets that target on the machine.
 *
 * ```sh
 * deno task bench:cluster-floor                         # 3 rounds of ours, deno, ws (~9 min)
 * deno task bench:cluster-floor --rounds 5 --servers ours,deno --json
 * ```
 *
 * Needs `redis-server` and `bash`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { median, type RatioSeries, ratioSeries, rotation } from "./stats.ts";

/** A server of the comparison: ours, the thin relays on `Deno.serve`, the thin relays on `ws`. */
export type ClusterFloorServer = "ours" | "deno" | "ws";

/** Every server, in the first round's order. */
export const CLUSTER_FLOOR_SERVERS: readonly ClusterFloorServer[] = ["ours", "deno", "ws"];

/** A topology of `bench/cluster_run.sh`. */
export type Topology = "single" | "affinity" | "spread";

/** The topologies, in the order each server runs them. */
export const TOPOLOGIES: readonly Topology[] = ["single", "affinity", "spread"];

/** The environment that makes `bench/cluster_run.sh` start `server`. */
export function clusterRunEnv(server: ClusterFloorServer): Record<string, string> {
  switch (server) {
    case "ours":
      return {};
    case "deno":
      return { SERVER: "baseline" };
    case "ws":
      return { SERVER: "baseline", BASELINE_TRANSPORT: "ws" };
  }
}

/**
 * The topology of a report `bench/cluster_run.sh` wrote (`<tree>[-<server>]-<topology>-<HHMMSS>.json`),
 * or undefined for any other file.
 */
export function topologyOf(fileName: string): Topology | undefined {
  const match = /-(single|affinity|spread)-\d{6}\.json$/.exec(fileName);
  return match ? match[1] as Topology : undefined;
}

/** What one run reported (null figures when the run failed). */
export interface TopologyRun {
  /** Cluster CPU per delivered message, µs. */
  cpuUs: number | null;
  p99Ms: number | null;
  /** The servers' voluntary context switches per delivered message. */
  wakeups: number | null;
  /** Messages lost, reordered or duplicated. */
  faults: number | null;
}

/** One server's runs per topology and round, and its ratios to its own single instance. */
export interface ClusterFloorResult {
  server: ClusterFloorServer;
  runs: Record<Topology, TopologyRun[]>;
  ratios: { affinity: RatioSeries; spread: RatioSeries };
}

/** The ratios `affinity / single` and `spread / single` of CPU per delivered message, per round. */
export function clusterRatios(runs: Record<Topology, TopologyRun[]>): ClusterFloorResult["ratios"] {
  const cpu = (topology: Topology) => runs[topology].map((run) => run.cpuUs);
  return {
    affinity: ratioSeries(cpu("affinity"), cpu("single")),
    spread: ratioSeries(cpu("spread"), cpu("single")),
  };
}

/** The figures of one report of `deno task bench relay --json` (its first step). */
export function topologyRun(report: unknown): TopologyRun {
  const step = (report as { steps?: Record<string, unknown>[] })?.steps?.[0];
  if (!step) return { cpuUs: null, p99Ms: null, wakeups: null, faults: null };
  const number = (value: unknown) => typeof value === "number" ? value : null;
  const latency = step.latencyMs as { p99?: unknown } | undefined;
  return {
    cpuUs: number(step.serverCpuPerMessageUs),
    p99Ms: number(latency?.p99),
    wakeups: number(step.serverWakeupsPerMessage),
    faults: (number(step.lost) ?? 0) + (number(step.reordered) ?? 0) +
      (number(step.duplicates) ?? 0),
  };
}

const NO_RUN: TopologyRun = { cpuUs: null, p99Ms: null, wakeups: null, faults: null };

/** Runs the three topologies of `server` once, each on a fresh system, and reads the reports. */
async function runServer(server: ClusterFloorServer): Promise<Record<Topology, TopologyRun>> {
  const out = await Deno.makeTempDir({ prefix: "cluster-floor-" });
  try {
    const { code, stderr } = await new Deno.Command("bash", {
      args: [new URL("./cluster_run.sh", import.meta.url).pathname, ...TOPOLOGIES],
      env: { ...clusterRunEnv(server), OUT: out },
      stdout: "null",
      stderr: "piped",
    }).output();
    if (code !== 0) console.error(new TextDecoder().decode(stderr));
    const runs: Record<Topology, TopologyRun> = {
      single: NO_RUN,
      affinity: NO_RUN,
      spread: NO_RUN,
    };
    for await (const entry of Deno.readDir(out)) {
      const topology = topologyOf(entry.name);
      if (!topology) continue;
      try {
        runs[topology] = topologyRun(JSON.parse(await Deno.readTextFile(`${out}/${entry.name}`)));
      } catch {
        console.error(`::: ${server} ${topology}: no report (see the logs in ${out})`);
        return runs; // keep the directory for its logs
      }
    }
    await Deno.remove(out, { recursive: true });
    return runs;
  } catch (error) {
    console.error(`::: ${server}: ${error}`);
    return { single: NO_RUN, affinity: NO_RUN, spread: NO_RUN };
  }
}

if (import.meta.main) {
  const { values: flags } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "3" },
      servers: { type: "string", default: CLUSTER_FLOOR_SERVERS.join(",") },
      json: { type: "boolean", default: false },
    },
  });
  const rounds = Number(flags.rounds);
  const servers = flags.servers.split(",") as ClusterFloorServer[];
  if (
    !(rounds >= 1) || servers.some((server) => !CLUSTER_FLOOR_SERVERS.includes(server))
  ) {
    console.error(`--rounds ≥ 1 and --servers some of ${CLUSTER_FLOOR_SERVERS.join(",")}`);
    Deno.exit(2);
  }
  const runs = new Map<ClusterFloorServer, Record<Topology, TopologyRun[]>>(
    servers.map((server) => [server, { single: [], affinity: [], spread: [] }]),
  );
  for (let round = 0; round < rounds; round++) {
    for (const server of rotation(servers, round)) {
      console.error(`::: round ${round + 1}/${rounds}: ${server}`);
      const got = await runServer(server);
      for (const topology of TOPOLOGIES) runs.get(server)![topology][round] = got[topology];
    }
  }
  const results: ClusterFloorResult[] = servers.map((server) => ({
    server,
    runs: runs.get(server)!,
    ratios: clusterRatios(runs.get(server)!),
  }));
  if (flags.json) {
    console.log(JSON.stringify(results, null, 2));
  } else {
    const fmt = (value: number | null | undefined, digits = 2) => value?.toFixed(digits) ?? "-";
    const med = (values: (number | null)[]) => {
      const known = values.filter((value): value is number => value !== null);
      return known.length ? median(known) : null;
    };
    for (const result of results) {
      console.log(`${result.server}:`);
      for (const topology of TOPOLOGIES) {
        const list = result.runs[topology];
        console.log(
          `  ${topology.padEnd(8)} µs/msg ${list.map((run) => fmt(run.cpuUs, 1)).join(", ")}` +
            ` (median ${fmt(med(list.map((run) => run.cpuUs)), 1)}); p99 ms ` +
            `${list.map((run) => fmt(run.p99Ms)).join(", ")}; wake-ups/msg ` +
            `${list.map((run) => fmt(run.wakeups, 3)).join(", ")}; lost/reordered/duplicated ` +
            `${list.map((run) => run.faults ?? "-").join(", ")}`,
        );
      }
      for (const [name, series] of Object.entries(result.ratios)) {
        console.log(
          `  ${name} / single median ${fmt(series.median)}× (${fmt(series.min)}–${
            fmt(series.max)
          }; rounds ${series.perRound.map((ratio) => fmt(ratio)).join(", ")})`,
        );
      }
    }
  }
}
