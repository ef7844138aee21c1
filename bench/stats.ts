/**
 * Measurement primitives of the load generator: a log-bucketed latency histogram that merges
 * across processes, and readers for a process's CPU time and memory from `/proc`.
 *
 * @module
 */

/** Smallest latency the histogram resolves, ms. Anything at or below lands in bucket 0. */
const MIN_MS = 0.01;
/** Growth factor between bucket upper bounds: percentiles are overstated by at most 2 %. */
const GROWTH = 1.02;
const LOG_GROWTH = Math.log(GROWTH);
/** Buckets up to 0.01 ms × 1.02^999 ≈ 3.9e6 ms; anything slower is clamped into the last. */
const BUCKETS = 1000;

/** Latency percentiles in milliseconds (bucket upper bounds, so up to 2 % high). */
export interface LatencySummary {
  /** Number of samples. */
  count: number;
  /** Median, ms. */
  p50: number;
  /** 99th percentile, ms. */
  p99: number;
  /** 99.9th percentile, ms. */
  p999: number;
  /** Largest sample, ms (exact). */
  max: number;
}

/** Sparse histogram on the wire: `[bucket, count]` pairs plus the exact maximum, ms. */
export interface HistogramData {
  buckets: [number, number][];
  max: number;
}

/**
 * A latency histogram with logarithmic buckets (2 % wide). Cheap to record into on the hot
 * path, and small to ship between processes as {@linkcode HistogramData}.
 */
export class Histogram {
  #counts = new Float64Array(BUCKETS);
  #count = 0;
  #max = 0;

  /** Number of recorded samples. */
  get count(): number {
    return this.#count;
  }

  /** Records one latency in milliseconds. */
  record(ms: number): void {
    const bucket = ms <= MIN_MS
      ? 0
      : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH));
    this.#counts[bucket]! += 1;
    this.#count++;
    if (ms > this.#max) this.#max = ms;
  }

  /** Records `count` samples that never arrived, as infinitely slow (they dominate the tail). */
  recordMissing(count: number): void {
    if (count <= 0) return;
    this.#counts[BUCKETS - 1]! += count;
    this.#count += count;
    this.#max = Infinity;
  }

  /** Adds another histogram's samples (e.g. one from each load process). */
  merge(data: HistogramData): void {
    for (const [bucket, count] of data.buckets) {
      this.#counts[bucket]! += count;
      this.#count += count;
    }
    if (data.max > this.#max) this.#max = data.max;
  }

  /** The sparse form for shipping over a pipe. */
  toData(): HistogramData {
    const buckets: [number, number][] = [];
    this.#counts.forEach((count, bucket) => {
      if (count > 0) buckets.push([bucket, count]);
    });
    return { buckets, max: this.#max };
  }

  /** The latency at quantile `q` (0..1), ms; 0 without samples, Infinity if in the missing tail. */
  quantile(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      seen += this.#counts[bucket]!;
      if (seen >= rank) {
        if (bucket === BUCKETS - 1 && this.#max === Infinity) return Infinity;
        return Math.min(MIN_MS * GROWTH ** bucket, this.#max);
      }
    }
    return this.#max;
  }

  /** p50, p99, p99.9 and max, ms. */
  summary(): LatencySummary {
    return {
      count: this.#count,
      p50: round3(this.quantile(0.5)),
      p99: round3(this.quantile(0.99)),
      p999: round3(this.quantile(0.999)),
      max: round3(this.#max),
    };
  }
}

/** Rounds to 3 decimals, keeping Infinity (JSON turns it into null, which reads as "never"). */
export function round3(value: number): number {
  return Number.isFinite(value) ? Math.round(value * 1000) / 1000 : value;
}

/** Median of `values` (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * `items` rotated left by `round` (0-based), so that over as many rounds as there are items each
 * runs first once: the run order of the benchmarks that compare servers round by round.
 */
export function rotation<T>(items: readonly T[], round: number): T[] {
  return items.map((_, i) => items[(i + round) % items.length]!);
}

/** One ratio over the rounds of a comparison: each round's value, their median, lowest and highest. */
export interface RatioSeries {
  perRound: (number | null)[];
  median: number | null;
  min: number | null;
  max: number | null;
}

/**
 * `top[i] / bottom[i]` per round (3 decimals) and the median, lowest and highest of them; a round
 * missing either value (or with a zero `bottom`) has a null ratio and is left out of the rest.
 */
export function ratioSeries(
  top: readonly (number | null)[],
  bottom: readonly (number | null)[],
): RatioSeries {
  const perRound = top.map((value, round) => {
    const under = bottom[round];
    return value == null || under == null || under === 0 ? null : round3(value / under);
  });
  const known = perRound.filter((ratio): ratio is number => ratio !== null);
  return known.length === 0
    ? { perRound, median: null, min: null, max: null }
    : { perRound, median: median(known), min: Math.min(...known), max: Math.max(...known) };
}

/** Kernel clock ticks per second for `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux). */
const CLOCK_TICKS_PER_SECOND = 100;

/** One reading of a process: CPU seconds used so far (user + system, all threads) and memory. */
export interface ProcSample {
  /** Monotonic time of the reading, ms (`performance.now()`). */
  at: number;
  /** utime + stime, seconds. */
  cpuSeconds: number;
  /** Resident set size, kB (`VmRSS`). */
  rssKb: number;
  /** Peak resident set size, kB (`VmHWM`). */
  peakRssKb: number;
  /**
   * Time the main thread spent runnable but waiting for a CPU, seconds (`/proc/<pid>/schedstat`
   * field 2): how much other work on the machine delayed it.
   */
  runDelaySeconds: number;
  /** Times the main thread blocked (`voluntary_ctxt_switches`): wake-ups. */
  wakeups?: number;
}

/**
 * Reads whole files, each as a string ("" when unreadable). Deno only lets a program holding
 * `--allow-all` read `/proc` itself, so this goes through one `sh` subprocess (`--allow-run`).
 */
export function readFiles(paths: readonly string[]): string[] {
  try {
    const { stdout } = new Deno.Command("sh", {
      args: ["-c", 'for f; do cat "$f" 2>/dev/null; printf "\\0"; done', "sh", ...paths],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    const parts = new TextDecoder().decode(stdout).split("\0");
    return paths.map((_, i) => parts[i] ?? "");
  } catch {
    return paths.map(() => "");
  }
}

/**
 * Reads CPU time and memory of each process in `pids` from `/proc/<pid>/stat` and
 * `/proc/<pid>/status`, all in one subprocess. A process that is gone (or a system without
 * `/proc`) gives null.
 */
export function readProcs(pids: readonly number[]): (ProcSample | null)[] {
  const files = readFiles(
    pids.flatMap((pid) => [
      `/proc/${pid}/stat`,
      `/proc/${pid}/status`,
      `/proc/${pid}/schedstat`,
    ]),
  );
  const at = performance.now();
  return pids.map((_, i) => {
    const stat = files[3 * i]!;
    const status = files[3 * i + 1]!;
    const schedstat = files[3 * i + 2]!;
    if (!stat || !status) return null;
    // The command name (field 2) may contain spaces; fields after it are space-separated.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); utime is field 14 and stime field 15.
    const ticks = Number(fields[11]) + Number(fields[12]);
    return {
      at,
      cpuSeconds: ticks / CLOCK_TICKS_PER_SECOND,
      rssKb: statusKb(status, "VmRSS"),
      peakRssKb: statusKb(status, "VmHWM"),
      runDelaySeconds: (Number(schedstat.split(" ")[1]) || 0) / 1e9,
      wakeups: field(status, "voluntary_ctxt_switches"),
    };
  });
}

/** {@linkcode readProcs} for one process. */
export function readProc(pid: number): ProcSample | null {
  return readProcs([pid])[0] ?? null;
}

function field(text: string, key: string): number {
  const found = text.match(new RegExp(`^${key}:\\s+(\\d+)`, "m"));
  return found ? Number(found[1]) : 0;
}

function statusKb(status: string, key: string): number {
  const found = status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
  return found ? Number(found[1]) : 0;
}

/** The machine the figures come from: cores, CPU model, memory, runtime and load. */
export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memTotalKb: number;
  deno: string;
  v8: string;
  /** 1, 5 and 15 minute load averages when the run started (`/proc/loadavg`). */
  loadAverage: number[];
}

/**
 * Total time, in seconds, that some task on the machine waited for a CPU (`/proc/pressure/cpu`,
 * "some" line); null without PSI. The difference of two readings divided by the wall time is
 * the share of the time the CPUs were contended.
 */
export function cpuPressureSeconds(): number | null {
  const text = readFiles(["/proc/pressure/cpu"])[0] ?? "";
  const total = text.match(/^some .*total=(\d+)/m)?.[1];
  return total === undefined ? null : Number(total) / 1e6;
}

/** Describes this machine (Linux `/proc`; fields fall back to zero/"unknown" elsewhere). */
export function machineInfo(): MachineInfo {
  const [cpuinfo = "", meminfo = "", loadavg = ""] = readFiles([
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/loadavg",
  ]);
  const model = cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown";
  return {
    nproc: navigator.hardwareConcurrency,
    cpuModel: model.trim(),
    memTotalKb: statusKb(meminfo, "MemTotal"),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    loadAverage: parseLoadAverage(loadavg),
  };
}

function parseLoadAverage(text: string): number[] {
  return text ? text.split(" ").slice(0, 3).map(Number) : [];
}

/** The 1, 5 and 15 minute load averages, or `[]` without `/proc/loadavg`. */
export function loadAverage(): number[] {
  return parseLoadAverage(readFiles(["/proc/loadavg"])[0] ?? "");
}
