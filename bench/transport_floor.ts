/**
 * `deno task bench:transport-floor`: how far issue 18's relay and churn targets are reachable on
 * ours' transport at all (BENCHMARKS.md "Targets not met").
 *
 * `--only saturate` adds the saturation ramp of `bench:compare` (delivered msg/s at the last
 * step with p99 ≤ 50 ms; higher is better, so a ratio below 1 is the worse side there).
 *
 * The targets are ratios to the thin `Deno.serve` relay. Ours runs on `node:http` + `npm:ws`
 * (the transport of the hostile-internet issue: `Deno.upgradeWebSocket` cannot bound a
 * fragmented message). This runs three servers in each round, in an order that rotates every
 * round, a fresh pinned server per run (`deno task bench … --pin --spawn`): ours, the thin relay
 * on ours' transport (`bench/baseline.ts --transport ws`) and the thin `Deno.serve` relay. Per
 * experiment it reports each round's ratios `ours / deno` (the target's ratio), `ours / ws` (what
 * ours adds to its transport) and `ws / deno` (what the transport costs a relay that does nothing
 * else: when it is past the target, no relay on this transport meets it), and the median, lowest
 * and highest of each ratio over the rounds. A relay run whose server was kept off its CPU is run
 * again, as in `bench:compare`.
 *
 * ```sh
 * deno task bench:transport-floor                        # relay and churn, 5 rounds (~6 min)
 * deno task bench:transport-floor --only churn --rounds 7 --json
 * deno task bench:transport-floor --only saturate --rounds 3   # ~20 min
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { bench, parseBenchArgs } from "./main.ts";
import { isDisturbed, type Report } from "./load.ts";
import { type Experiment, experimentArgs, METRICS } from "./compare.ts";
import { median, type RatioSeries, ratioSeries, rotation } from "./stats.ts";

/** Seconds per step of the saturation ramp, as `bench:compare`'s default. */
const STEP_SECONDS = 5;

/** A server of the comparison: ours, the thin relay on ours' transport, the thin `Deno.serve` one. */
export type FloorServer = "ours" | "ws" | "deno";

/** The servers, in the first round's order. */
export const FLOOR_SERVERS: readonly FloorServer[] = ["ours", "ws", "deno"];

/** An experiment of the comparison (as in `bench:compare`). */
export type FloorExperiment = "relay" | "churn" | "saturate";

/**
 * The experiments and the figure each is judged by (an id of `METRICS` in `./compare.ts`): CPU
 * per delivered message and per churn cycle (lower is better), delivered msg/s at saturation
 * (higher is better; its ratios read the other way round).
 */
export const FLOOR_FIGURES: Readonly<Record<FloorExperiment, string>> = {
  relay: "cpu_per_message",
  churn: "churn_cpu",
  saturate: "throughput",
};

/** The `deno task bench` flags that start `server` (with `--spawn`). */
export function spawnArgs(server: FloorServer): string[] {
  switch (server) {
    case "ours":
      return ["--spawn", "ours"];
    case "ws":
      return ["--spawn", "baseline", "--baseline-transport", "ws"];
    case "deno":
      return ["--spawn", "baseline", "--baseline-transport", "deno"];
  }
}

/** Round `round`'s order (0-based): {@linkcode FLOOR_SERVERS} rotated by `round`. */
export function floorOrder(round: number): FloorServer[] {
  return rotation(FLOOR_SERVERS, round);
}

/** One experiment's figures: each server's value per round (null when missing) and the ratios. */
export interface FloorResult {
  experiment: FloorExperiment;
  /** The figure's id and unit in `METRICS` (./compare.ts). */
  figure: string;
  unit: string;
  values: Record<FloorServer, (number | null)[]>;
  ratios: { oursOverDeno: RatioSeries; oursOverWs: RatioSeries; wsOverDeno: RatioSeries };
}

/**
 * The per-round ratios of `values` (one value per round per server) and their medians; a round
 * missing either value has a null ratio and is left out of the median.
 */
export function floorRatios(
  values: Record<FloorServer, (number | null)[]>,
): FloorResult["ratios"] {
  const series = (top: FloorServer, bottom: FloorServer) =>
    ratioSeries(values[top], values[bottom]);
  return {
    oursOverDeno: series("ours", "deno"),
    oursOverWs: series("ours", "ws"),
    wsOverDeno: series("ws", "deno"),
  };
}

/** Runs `experiment` for `server` once; a relay run kept off its CPU is run once more. */
async function runOnce(
  experiment: FloorExperiment,
  server: FloorServer,
  duration: number,
): Promise<Report> {
  const args = [
    ...experimentArgs(experiment as Experiment, {
      connections: 0,
      duration,
      stepDuration: STEP_SECONDS,
    }),
    "--pin",
    "--quiet",
    ...spawnArgs(server),
  ];
  let report = await bench(parseBenchArgs(args));
  if (experiment === "relay" && report.steps[0] && isDisturbed(report.steps[0])) {
    console.error(`::: relay ${server} again (disturbed)`);
    report = await bench(parseBenchArgs(args));
  }
  return report;
}

if (import.meta.main) {
  const { values: flags } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "5" },
      duration: { type: "string", default: "8" },
      only: { type: "string", default: "relay,churn" },
      json: { type: "boolean", default: false },
    },
  });
  const rounds = Number(flags.rounds);
  const duration = Number(flags.duration);
  const experiments = flags.only.split(",");
  if (
    !(rounds >= 1) || !(duration > 0) ||
    experiments.some((name) => !(name in FLOOR_FIGURES))
  ) {
    console.error("--rounds ≥ 1, --duration > 0 s and --only some of relay,churn,saturate");
    Deno.exit(2);
  }
  const results: FloorResult[] = [];
  for (const experiment of experiments as FloorExperiment[]) {
    const spec = METRICS.find((metric) => metric.id === FLOOR_FIGURES[experiment])!;
    const values: Record<FloorServer, (number | null)[]> = { ours: [], ws: [], deno: [] };
    for (let round = 0; round < rounds; round++) {
      for (const server of floorOrder(round)) {
        console.error(`::: ${experiment} round ${round + 1}/${rounds}: ${server}`);
        values[server][round] = spec.value(await runOnce(experiment, server, duration));
      }
    }
    results.push({
      experiment,
      figure: spec.id,
      unit: spec.unit,
      values,
      ratios: floorRatios(values),
    });
  }
  if (flags.json) {
    console.log(JSON.stringify(results, null, 2));
  } else {
    for (const result of results) {
      const med = (server: FloorServer) =>
        median(result.values[server].filter((v): v is number => v !== null));
      console.log(
        `${result.figure} (${result.unit}), medians: ours ${med("ours")}, ws ${med("ws")}, ` +
          `deno ${med("deno")}`,
      );
      for (const [name, series] of Object.entries(result.ratios)) {
        const rounds = series.perRound.map((ratio) => ratio?.toFixed(2) ?? "-").join(", ");
        console.log(
          `  ${name.padEnd(13)} median ${series.median?.toFixed(2) ?? "-"}× ` +
            `(${series.min?.toFixed(2) ?? "-"}–${series.max?.toFixed(2) ?? "-"}; rounds ${rounds})`,
        );
      }
    }
  }
}
