/**
 * A small metrics registry (counters, gauges, histograms) and its Prometheus text-format 0.0.4
 * renderer (docs/spec/SERVER.md §6.2), plus the latency sketch behind the JSON percentiles (§6.5).
 * A leaf module: it imports nothing from the project.
 *
 * @module
 */

/**
 * Histogram bucket upper bounds in seconds, `+Inf` implied: the bounds of docs/spec/SERVER.md §6.2 (1 ms …
 * 10 s), preceded by 1 µs … 0.5 ms in 1-2.5-5 steps so that in-process handling, which takes
 * microseconds (relaying one `GameData` averaged 3 µs over 100 timed samples on a 2-core
 * development machine), does not all land in the first bucket (issue 16).
 */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.000001,
  0.0000025,
  0.000005,
  0.00001,
  0.000025,
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** The `Content-Type` of the Prometheus text exposition (docs/spec/SERVER.md §1.5). */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * A monotonically increasing count: increased with {@linkcode Counter.inc}, or read at scrape
 * time from a source that only grows (a count kept where the thing happens).
 */
export class Counter {
  /** Metric name; ends in `_total`. */
  readonly name: string;
  /** One line of English for `# HELP`. */
  readonly help: string;
  readonly #read: (() => number) | undefined;
  #value = 0;

  /** Use {@linkcode Registry.counter}. */
  constructor(name: string, help: string, read?: () => number) {
    this.name = name;
    this.help = help;
    this.#read = read;
  }

  /** Adds `by` (≥ 0). Throws `RangeError` on a negative or non-finite amount. */
  inc(by = 1): void {
    if (!(by >= 0) || !Number.isFinite(by)) {
      throw new RangeError(`Cannot increase counter "${this.name}" by ${by}`);
    }
    this.#value += by;
  }

  /** The current count (the source's answer for counters read at scrape time). */
  get value(): number {
    return this.#read ? this.#read() : this.#value;
  }
}

/**
 * A counter family with labels (docs/spec/SERVER.md §6.2: only where §6.3 names them): one count
 * per combination of label values, each a series of its own. The caller keeps the values to a
 * small fixed set (a client must not be able to create series). A label whose value is `""` is
 * left out of its series (in Prometheus an empty label is no label), so a label can belong to
 * some series only.
 */
export class LabeledCounter {
  /** Metric name; ends in `_total`. */
  readonly name: string;
  /** One line of English for `# HELP`. */
  readonly help: string;
  /** The label names, in rendering order. */
  readonly labelNames: readonly string[];
  /** Series by their values joined with NUL, in the order they were first counted. */
  readonly #series = new Map<string, { labels: Readonly<Record<string, string>>; value: number }>();

  /** Use {@linkcode Registry.labeledCounter}. */
  constructor(name: string, help: string, labelNames: readonly string[]) {
    this.name = name;
    this.help = help;
    this.labelNames = [...labelNames];
  }

  /**
   * Adds `by` (≥ 0) to the series of `values` (one per label name, in order). Throws `RangeError`
   * on a negative or non-finite amount or a wrong number of values.
   */
  inc(values: readonly string[], by = 1): void {
    if (!(by >= 0) || !Number.isFinite(by)) {
      throw new RangeError(`Cannot increase counter "${this.name}" by ${by}`);
    }
    if (values.length !== this.labelNames.length) {
      throw new RangeError(
        `Cannot increase counter "${this.name}": ${values.length} label values for ` +
          `${this.labelNames.length} labels`,
      );
    }
    const key = values.join("\0");
    let series = this.#series.get(key);
    if (series === undefined) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => {
        if (values[i] !== "") labels[name] = values[i]!;
      });
      series = { labels, value: 0 };
      this.#series.set(key, series);
    }
    series.value += by;
  }

  /** The series counted so far, in the order they were first counted: labels and count. */
  series(): { labels: Readonly<Record<string, string>>; value: number }[] {
    return [...this.#series.values()].map(({ labels, value }) => ({ labels, value }));
  }

  /** The sum of every series. */
  get total(): number {
    let sum = 0;
    for (const series of this.#series.values()) sum += series.value;
    return sum;
  }
}

/**
 * A value that goes up and down: set explicitly, or read from a callback at scrape time. It may
 * carry constant labels (an info gauge such as `signal_fish_build_info{version="…"} 1`).
 */
export class Gauge {
  /** Metric name. */
  readonly name: string;
  /** One line of English for `# HELP`. */
  readonly help: string;
  /** Constant labels of the one sample, in rendering order (empty for none). */
  readonly labels: Readonly<Record<string, string>>;
  readonly #read: (() => number) | undefined;
  #value = 0;

  /** Use {@linkcode Registry.gauge}. */
  constructor(
    name: string,
    help: string,
    read?: () => number,
    labels: Readonly<Record<string, string>> = {},
  ) {
    this.name = name;
    this.help = help;
    this.#read = read;
    this.labels = { ...labels };
  }

  /** Sets the value (ignored by callback gauges, which always report their callback). */
  set(value: number): void {
    this.#value = value;
  }

  /** The current value (the callback's answer for callback gauges). */
  get value(): number {
    return this.#read ? this.#read() : this.#value;
  }
}

/** Cumulative bucket counts, sum and count of a {@linkcode Histogram}. */
export interface HistogramSnapshot {
  /** Upper bounds, ascending, without `+Inf`. */
  buckets: readonly number[];
  /** `cumulative[i]` = observations ≤ `buckets[i]`; one more entry for `+Inf` (= `count`). */
  cumulative: number[];
  /** Sum of all observations. */
  sum: number;
  /** Number of observations. */
  count: number;
}

/** A Prometheus histogram with fixed bucket bounds. */
export class Histogram {
  /** Metric name (base unit in the name, e.g. `_seconds`). */
  readonly name: string;
  /** One line of English for `# HELP`. */
  readonly help: string;
  /** Upper bounds, ascending, without `+Inf`. */
  readonly buckets: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  /** Use {@linkcode Registry.histogram}. */
  constructor(name: string, help: string, buckets: readonly number[]) {
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) {
        throw new RangeError(`Cannot create histogram "${name}": buckets must ascend`);
      }
    }
    this.name = name;
    this.help = help;
    this.buckets = [...buckets];
    this.#counts = new Array(buckets.length + 1).fill(0);
  }

  /** Records one observation (in the histogram's unit). NaN is ignored. */
  observe(value: number): void {
    if (Number.isNaN(value)) return;
    let i = 0;
    while (i < this.buckets.length && value > this.buckets[i]!) i++;
    this.#counts[i]!++;
    this.#sum += value;
    this.#count++;
  }

  /** Number of observations. */
  get count(): number {
    return this.#count;
  }

  /** Cumulative counts, sum and count. */
  snapshot(): HistogramSnapshot {
    const cumulative: number[] = [];
    let running = 0;
    for (const count of this.#counts) cumulative.push(running += count);
    return { buckets: this.buckets, cumulative, sum: this.#sum, count: this.#count };
  }
}

/** Any metric a {@linkcode Registry} holds. */
export type Metric = Counter | LabeledCounter | Gauge | Histogram;

/**
 * Metric families in registration order (= exposition order). Names are unique and valid
 * Prometheus names; counters end in `_total` (promtool's lint rules, docs/spec/SERVER.md §6.1).
 */
export class Registry {
  readonly #metrics: Metric[] = [];
  readonly #names = new Set<string>();

  /**
   * Registers a counter, optionally read from `read` (a count that never decreases) at scrape
   * time. Throws `TypeError` on a bad or duplicate name.
   */
  counter(name: string, help: string, read?: () => number): Counter {
    if (!name.endsWith("_total")) {
      throw new TypeError(`Cannot register counter "${name}": name must end in _total`);
    }
    return this.#add(new Counter(name, help, read));
  }

  /**
   * Registers a gauge, optionally read from `read` at scrape time, with optional constant
   * `labels` (names `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`, not `le`). Throws
   * `TypeError` on a bad or duplicate name or a bad label name.
   */
  gauge(
    name: string,
    help: string,
    read?: () => number,
    labels: Readonly<Record<string, string>> = {},
  ): Gauge {
    for (const label of Object.keys(labels)) {
      if (!LABEL_NAME.test(label) || label.startsWith("__") || label === "le") {
        throw new TypeError(`Cannot register gauge "${name}": invalid label name "${label}"`);
      }
    }
    return this.#add(new Gauge(name, help, read, labels));
  }

  /**
   * Registers a counter family with the labels `labelNames` (names as for {@linkcode gauge}),
   * which renders no sample until a series is counted. Throws `TypeError` on a bad or duplicate
   * name or a bad label name.
   */
  labeledCounter(name: string, help: string, labelNames: readonly string[]): LabeledCounter {
    if (!name.endsWith("_total")) {
      throw new TypeError(`Cannot register counter "${name}": name must end in _total`);
    }
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith("__") || label === "le") {
        throw new TypeError(`Cannot register counter "${name}": invalid label name "${label}"`);
      }
    }
    return this.#add(new LabeledCounter(name, help, labelNames));
  }

  /** Registers a histogram. @default buckets {@linkcode LATENCY_BUCKETS_SECONDS} */
  histogram(name: string, help: string, buckets = LATENCY_BUCKETS_SECONDS): Histogram {
    return this.#add(new Histogram(name, help, buckets));
  }

  /** The registered metrics, in order. */
  metrics(): readonly Metric[] {
    return this.#metrics;
  }

  /** Renders every family as Prometheus text format 0.0.4 (docs/spec/SERVER.md §6.2). */
  render(): string {
    const lines: string[] = [];
    for (const metric of this.#metrics) {
      const type = metric instanceof Counter || metric instanceof LabeledCounter
        ? "counter"
        : metric instanceof Gauge
        ? "gauge"
        : "histogram";
      lines.push(`# HELP ${metric.name} ${escapeHelp(metric.help)}`);
      lines.push(`# TYPE ${metric.name} ${type}`);
      if (metric instanceof Histogram) {
        const { buckets, cumulative, sum, count } = metric.snapshot();
        buckets.forEach((bound, i) => {
          lines.push(`${metric.name}_bucket{le="${formatValue(bound)}"} ${cumulative[i]}`);
        });
        lines.push(`${metric.name}_bucket{le="+Inf"} ${count}`);
        lines.push(`${metric.name}_sum ${formatValue(sum)}`);
        lines.push(`${metric.name}_count ${count}`);
      } else if (metric instanceof LabeledCounter) {
        for (const { labels, value } of metric.series()) {
          lines.push(`${metric.name}${renderLabels(labels)} ${formatValue(value)}`);
        }
      } else {
        const labels = metric instanceof Gauge ? renderLabels(metric.labels) : "";
        lines.push(`${metric.name}${labels} ${formatValue(metric.value)}`);
      }
    }
    return lines.length === 0 ? "" : lines.join("\n") + "\n";
  }

  #add<T extends Metric>(metric: T): T {
    if (!NAME.test(metric.name)) {
      throw new TypeError(`Cannot register metric "${metric.name}": invalid name`);
    }
    if (this.#names.has(metric.name)) {
      throw new TypeError(`Cannot register metric "${metric.name}": already registered`);
    }
    this.#names.add(metric.name);
    this.#metrics.push(metric);
    return metric;
  }
}

/**
 * Renders constant labels as `{a="x",b="y"}` (`""` for none), escaping backslash, double quote and
 * line feed in values (text format 0.0.4).
 */
export function renderLabels(labels: Readonly<Record<string, string>>): string {
  const pairs = Object.entries(labels).map(([name, value]) =>
    `${name}="${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`
  );
  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`;
}

/** Escapes `# HELP` text: backslash and line feed (text format 0.0.4). */
export function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/**
 * Formats a sample value (docs/spec/SERVER.md §6.2): integers without a fraction, other numbers in
 * shortest round-trip decimal form and never in exponent notation; `+Inf`, `-Inf`, `NaN`.
 */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  if (Object.is(value, -0)) return "0";
  const text = String(value);
  const e = text.indexOf("e");
  if (e < 0) return text;
  // Expand "d.ddde±x" by moving the decimal point; the digits stay the shortest round-trip ones.
  const sign = text.startsWith("-") ? "-" : "";
  const mantissa = text.slice(sign.length, e);
  const exponent = Number(text.slice(e + 1));
  const [whole = "", fraction = ""] = mantissa.split(".");
  const digits = whole + fraction;
  const point = whole.length + exponent;
  if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + "0".repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** Samples above this many seconds are clamped (docs/spec/SERVER.md §6.5). */
export const LATENCY_MAX_SECONDS = 300;
/** Samples below this many seconds are recorded as this value (docs/spec/SERVER.md §6.5). */
export const LATENCY_MIN_SECONDS = 1e-6;
const RELATIVE_ERROR = 0.001;
const GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR);
const LOG_GAMMA = Math.log(GAMMA);

/** The JSON `Latency` object of docs/spec/SERVER.md §6.4 (milliseconds; `null` without samples). */
export interface LatencySummary {
  average_ms: number | null;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  min_ms: number | null;
  max_ms: number | null;
  sample_count: number;
}

/**
 * Latency percentiles with ≤ 0.1 % relative error over 1 µs – 300 s (docs/spec/SERVER.md §6.5): samples
 * fall into logarithmic buckets whose bounds grow by a factor of 1.002, so any value reported
 * for a bucket is within 0.1 % of every sample in it.
 */
export class LatencySketch {
  readonly #buckets = new Map<number, number>();
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #max = -Infinity;

  /**
   * Records a sample in seconds, clamped to [1 µs, 300 s]. Returns true when it was clamped
   * down from above 300 s (for `latency_clamped_samples_total`).
   */
  record(seconds: number): boolean {
    if (Number.isNaN(seconds)) return false;
    const clamped = seconds > LATENCY_MAX_SECONDS;
    const value = Math.min(LATENCY_MAX_SECONDS, Math.max(LATENCY_MIN_SECONDS, seconds));
    const index = Math.ceil(Math.log(value) / LOG_GAMMA);
    this.#buckets.set(index, (this.#buckets.get(index) ?? 0) + 1);
    this.#count++;
    this.#sum += value;
    if (value < this.#min) this.#min = value;
    if (value > this.#max) this.#max = value;
    return clamped;
  }

  /** Number of samples. */
  get count(): number {
    return this.#count;
  }

  /**
   * The sample of rank `ceil(q × n)` (1-based), within 0.1 %, in seconds; `null` without samples.
   * The exact minimum and maximum are returned for the extreme ranks.
   */
  quantile(q: number): number | null {
    if (this.#count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    if (rank === 1) return this.#min;
    if (rank >= this.#count) return this.#max;
    let seen = 0;
    for (const index of [...this.#buckets.keys()].sort((a, b) => a - b)) {
      seen += this.#buckets.get(index)!;
      if (seen >= rank) {
        const estimate = 2 * GAMMA ** index / (GAMMA + 1);
        return Math.min(this.#max, Math.max(this.#min, estimate));
      }
    }
    return this.#max;
  }

  /** The JSON summary in milliseconds (docs/spec/SERVER.md §6.4 `Latency`). */
  summary(): LatencySummary {
    const ms = (seconds: number | null) => seconds === null ? null : seconds * 1000;
    const empty = this.#count === 0;
    return {
      average_ms: empty ? null : (this.#sum / this.#count) * 1000,
      p50_ms: ms(this.quantile(0.5)),
      p95_ms: ms(this.quantile(0.95)),
      p99_ms: ms(this.quantile(0.99)),
      min_ms: empty ? null : this.#min * 1000,
      max_ms: empty ? null : this.#max * 1000,
      sample_count: this.#count,
    };
  }
}
