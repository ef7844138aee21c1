/**
 * `deno task bench:guard`: a short interleaved comparison (issue 18 item 4) to run before merging
 * a hot-path change; CI does not run it. Relay at 12,000 delivered msg/s and connect/join/leave
 * churn, ours and the thin relay (`bench/baseline.ts`) alternately, a fresh pinned server per run,
 * three pairs each (three more of a figure that needs a second look): about two minutes, at most
 * three.
 *
 * It prints, for each guarded figure, the median of the per-pair ratios ours / thin relay and
 * their spread, and fails (exit 1) when a median is more than {@linkcode TOLERANCE} worse than
 * the figure recorded in `bench/guard.json`. Ratios, not absolute figures, because the machine's
 * speed drifts from run to run (other work on its cores); a ratio of interleaved runs drifts far
 * less. A figure past the tolerance is measured again before the verdict: its experiment runs as
 * many pairs more, and the median of all its pairs decides (three pairs of churn spread by about
 * ±7 % around the median on the machine of BENCHMARKS.md "Session 19", more than the tolerance).
 * `--record` writes the measured ratios as the new recorded figures.
 *
 * ```sh
 * deno task bench:guard            # compare against bench/guard.json
 * deno task bench:guard --record   # measure and record (after an intended change)
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { bench, parseBenchArgs } from "./main.ts";
import { isDisturbed, type Report } from "./load.ts";
import {
  type Comparison,
  type Experiment,
  experimentArgs,
  type Metric,
  summarize,
} from "./compare.ts";
import { cpuPressureSeconds, round3 } from "./stats.ts";

/** A guarded ratio may be this much worse than recorded before the guard fails (5 %). */
export const TOLERANCE = 0.05;

/** The figures guarded (ids of `METRICS` in `./compare.ts`); all lower-is-better ratios. */
export const GUARDED = ["cpu_per_message", "churn_cpu"] as const;

/** `bench/guard.json`: the recorded ratios ours / thin relay and how they were measured. */
export interface GuardRecord {
  recordedAt: string;
  /** Git commit the figures were measured on, when known. */
  commit?: string;
  /** Median of the per-pair ratios, per guarded metric id. */
  ratios: Record<string, number>;
  /** Share of the wall time some task waited for a CPU while recording (PSI). */
  cpuPressure: number | null;
}

/** One guarded figure's verdict. */
export interface GuardVerdict {
  id: string;
  recorded: number | null;
  measured: number | null;
  /** measured / recorded; null when either is missing. */
  change: number | null;
  /** False when `change` exceeds 1 + tolerance; null when there is nothing to compare. */
  ok: boolean | null;
}

/**
 * Compares measured pair-ratio medians with the recorded ones. A missing measurement fails
 * (the guard could not tell); a figure with nothing recorded passes with `ok: null`.
 */
export function judge(
  metrics: readonly Metric[],
  record: GuardRecord | null,
  tolerance = TOLERANCE,
): GuardVerdict[] {
  return GUARDED.map((id) => {
    const measured = metrics.find((metric) => metric.id === id)?.pairRatioMedian ?? null;
    const recorded = record?.ratios[id] ?? null;
    if (recorded === null) return { id, recorded, measured, change: null, ok: null };
    if (measured === null) return { id, recorded, measured, change: null, ok: false };
    const change = round3(measured / recorded);
    return { id, recorded, measured, change, ok: change <= 1 + tolerance };
  });
}

/**
 * The experiments to run again before the verdict: those of figures measured past the tolerance
 * (a figure not measured at all fails at once; measuring again would not tell more).
 */
export function secondLook(
  verdicts: readonly GuardVerdict[],
  metrics: readonly Metric[],
): Experiment[] {
  const experiments = new Set<Experiment>();
  for (const verdict of verdicts) {
    if (verdict.ok !== false || verdict.measured === null) continue;
    const metric = metrics.find((candidate) => candidate.id === verdict.id);
    if (metric) experiments.add(metric.experiment);
  }
  return [...experiments];
}

const RECORD_URL = new URL("./guard.json", import.meta.url);

async function readRecord(): Promise<GuardRecord | null> {
  try {
    return JSON.parse(await Deno.readTextFile(RECORD_URL)) as GuardRecord;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

async function gitCommit(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("git", {
      args: ["rev-parse", "--short", "HEAD"],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs rounds `from`…`to` of `experiment`, ours then the thin relay in each, a fresh pinned
 * server per run; a relay run whose server was kept off its CPU is discarded and run again.
 */
async function measure(
  experiment: Experiment,
  options: { connections: number; duration: number; stepDuration: number },
  from: number,
  to: number,
): Promise<Comparison["runs"]> {
  const runs: Comparison["runs"] = [];
  const args = [...experimentArgs(experiment, options), "--pin", "--quiet"];
  for (let round = from; round <= to; round++) {
    for (const kind of ["ours", "baseline"] as const) {
      console.error(`::: ${experiment} round ${round}/${to}: ${kind}`);
      let report: Report = await bench(parseBenchArgs([...args, "--spawn", kind]));
      if (experiment === "relay" && report.steps[0] && isDisturbed(report.steps[0])) {
        runs.push({ experiment, kind, round, report, discarded: true });
        console.error(`::: ${experiment} round ${round}: ${kind} again (disturbed)`);
        report = await bench(parseBenchArgs([...args, "--spawn", kind]));
      }
      runs.push({ experiment, kind, round, report });
    }
  }
  return runs;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      record: { type: "boolean", default: false },
      rounds: { type: "string", default: "3" },
      duration: { type: "string", default: "5" },
    },
  });
  const rounds = Number(values.rounds);
  const options = { connections: 0, duration: Number(values.duration), stepDuration: 0 };
  const runs: Comparison["runs"] = [];
  const start = performance.now();
  const pressure0 = cpuPressureSeconds();
  for (const experiment of ["relay", "churn"] as Experiment[]) {
    runs.push(...await measure(experiment, options, 1, rounds));
  }
  let metrics = summarize(runs);
  const record = await readRecord();
  let verdicts = judge(metrics, record);
  if (!values.record) {
    // A figure past the tolerance gets a second look: as many pairs again, all of them judged.
    const again = secondLook(verdicts, metrics);
    for (const experiment of again) {
      console.error(`::: ${experiment}: past the tolerance, ${rounds} more pairs`);
      runs.push(...await measure(experiment, options, rounds + 1, 2 * rounds));
    }
    if (again.length > 0) {
      metrics = summarize(runs);
      verdicts = judge(metrics, record);
    }
  }
  const seconds = (performance.now() - start) / 1000;
  const pressure1 = cpuPressureSeconds();
  const cpuPressure = pressure0 === null || pressure1 === null
    ? null
    : round3((pressure1 - pressure0) / seconds);
  for (const metric of metrics) {
    if (metric.pairRatioMedian === null) continue;
    const pairs = metric.pairs.map((pair) => pair.ratio?.toFixed(2) ?? "-").join(", ");
    console.log(
      `${metric.id.padEnd(16)} ours / thin relay ${metric.pairRatioMedian.toFixed(2)}x ` +
        `(pairs ${pairs}; ours ${metric.oursMedian} ${metric.unit}, thin ${metric.baselineMedian})`,
    );
  }
  for (const verdict of verdicts) {
    console.log(
      `${verdict.id.padEnd(16)} recorded ${verdict.recorded?.toFixed(2) ?? "-"}x, now ` +
        `${verdict.measured?.toFixed(2) ?? "-"}x: ${
          verdict.ok === null ? "nothing recorded" : verdict.ok ? "ok" : "REGRESSION"
        }${verdict.change === null ? "" : ` (${verdict.change.toFixed(3)} of recorded)`}`,
    );
  }
  console.log(`${seconds.toFixed(0)} s, CPU pressure ${cpuPressure ?? "-"}`);
  if (values.record) {
    const ratios: Record<string, number> = {};
    for (const verdict of verdicts) {
      if (verdict.measured !== null) ratios[verdict.id] = verdict.measured;
    }
    const next: GuardRecord = {
      recordedAt: new Date().toISOString(),
      commit: await gitCommit(),
      ratios,
      cpuPressure,
    };
    await Deno.writeTextFile(RECORD_URL, JSON.stringify(next, null, 2) + "\n");
    console.log(`recorded in ${RECORD_URL.pathname}`);
    return;
  }
  if (verdicts.some((verdict) => verdict.ok === false)) Deno.exit(1);
}

if (import.meta.main) await main();
