import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  escapeHelp,
  formatValue,
  LATENCY_BUCKETS_SECONDS,
  LatencySketch,
  Registry,
  renderLabels,
} from "./registry.ts";

Deno.test("formatValue() writes integers plainly and never uses exponent notation", () => {
  deepEqual(
    [2, 0, -0, 0.5, 1e21, 1.5e22, 1e-7, 1.25e-7, -3e-9, 123456789012, 0.1 + 0.2].map(formatValue),
    [
      "2",
      "0",
      "0",
      "0.5",
      "1000000000000000000000",
      "15000000000000000000000",
      "0.0000001",
      "0.000000125",
      "-0.000000003",
      "123456789012",
      "0.30000000000000004",
    ],
  );
  deepEqual([Infinity, -Infinity, NaN].map(formatValue), ["+Inf", "-Inf", "NaN"]);
});

Deno.test("formatValue() output parses back to the same number", () => {
  for (const value of [1e-7, 4.2e-12, 9.87654321e25, 1 / 3, 2 ** 60, 1e21 + 2 ** 20]) {
    equal(Number(formatValue(value)), value, String(value));
  }
});

Deno.test("escapeHelp() escapes backslashes and line feeds", () => {
  equal(escapeHelp("a\\b\nc"), "a\\\\b\\nc");
});

Deno.test("Registry.render() writes HELP, TYPE and samples in registration order", () => {
  const registry = new Registry();
  const counter = registry.counter("demo_things_total", "Things seen");
  let live = 3;
  registry.gauge("demo_live", "Things alive", () => live);
  const set = registry.gauge("demo_set", "A set gauge");
  counter.inc();
  counter.inc(2);
  set.set(0.25);
  live = 7;
  equal(
    registry.render(),
    [
      "# HELP demo_things_total Things seen",
      "# TYPE demo_things_total counter",
      "demo_things_total 3",
      "# HELP demo_live Things alive",
      "# TYPE demo_live gauge",
      "demo_live 7",
      "# HELP demo_set A set gauge",
      "# TYPE demo_set gauge",
      "demo_set 0.25",
      "",
    ].join("\n"),
  );
});

Deno.test("Registry.render() writes cumulative histogram buckets, +Inf, sum and count", () => {
  const registry = new Registry();
  const histogram = registry.histogram("demo_latency_seconds", "Latency", [0.1, 1]);
  equal(
    registry.render(),
    [
      "# HELP demo_latency_seconds Latency",
      "# TYPE demo_latency_seconds histogram",
      'demo_latency_seconds_bucket{le="0.1"} 0',
      'demo_latency_seconds_bucket{le="1"} 0',
      'demo_latency_seconds_bucket{le="+Inf"} 0',
      "demo_latency_seconds_sum 0",
      "demo_latency_seconds_count 0",
      "",
    ].join("\n"),
  );
  for (const value of [0.05, 0.1, 0.5, 2]) histogram.observe(value);
  const lines = registry.render().split("\n");
  deepEqual(lines.slice(2, 7), [
    'demo_latency_seconds_bucket{le="0.1"} 2',
    'demo_latency_seconds_bucket{le="1"} 3',
    'demo_latency_seconds_bucket{le="+Inf"} 4',
    "demo_latency_seconds_sum 2.65",
    "demo_latency_seconds_count 4",
  ]);
});

Deno.test("Registry refuses counters without _total, invalid and duplicate names", () => {
  const registry = new Registry();
  throws(() => registry.counter("demo_things", "x"), TypeError);
  throws(() => registry.gauge("demo-things", "x"), TypeError);
  registry.gauge("demo_things", "x");
  throws(() => registry.gauge("demo_things", "x"), TypeError);
  throws(() => registry.histogram("demo_h_seconds", "x", [1, 0.5]), RangeError);
});

Deno.test("Registry.counter() with a source reports the source's count at each render", () => {
  const registry = new Registry();
  let appended = 0;
  const counter = registry.counter("x_events_total", "Events", () => appended);
  ok(registry.render().includes("# TYPE x_events_total counter\nx_events_total 0\n"));
  appended = 7;
  equal(counter.value, 7);
  ok(registry.render().includes("x_events_total 7\n"));
});

Deno.test("Counter.inc() refuses negative amounts", () => {
  const counter = new Registry().counter("demo_total", "x");
  throws(() => counter.inc(-1), RangeError);
  throws(() => counter.inc(NaN), RangeError);
  equal(counter.value, 0);
});

Deno.test("A callback counter reports its callback at every render", () => {
  const registry = new Registry();
  let seconds = 1.5;
  const counter = registry.counter("demo_cpu_seconds_total", "CPU", () => seconds);
  equal(registry.render().split("\n")[2], "demo_cpu_seconds_total 1.5");
  seconds = 2.25;
  equal(counter.value, 2.25);
  equal(registry.render().split("\n")[2], "demo_cpu_seconds_total 2.25");
});

Deno.test("A gauge with constant labels renders them on its one sample, escaped", () => {
  const registry = new Registry();
  registry.gauge("demo_build_info", "Build", () => 1, { version: '1.2.3-"rc"\\x\ny', os: "linux" });
  equal(
    registry.render(),
    [
      "# HELP demo_build_info Build",
      "# TYPE demo_build_info gauge",
      'demo_build_info{version="1.2.3-\\"rc\\"\\\\x\\ny",os="linux"} 1',
      "",
    ].join("\n"),
  );
  equal(renderLabels({}), "");
  ["le", "__name", "1st", "a-b"].forEach((label, i) => {
    throws(() => registry.gauge(`demo_bad_${i}`, "x", undefined, { [label]: "v" }), TypeError);
  });
});

Deno.test("Latency buckets keep every bound of docs/spec/SERVER.md §6.2 and resolve below 1 ms", () => {
  const spec = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  deepEqual(LATENCY_BUCKETS_SECONDS.filter((bound) => bound >= 0.001), spec);
  const below = LATENCY_BUCKETS_SECONDS.filter((bound) => bound < 0.001);
  ok(below.length >= 6 && below[0]! <= 0.000001, String(below));
  const registry = new Registry();
  const histogram = registry.histogram("demo_relay_seconds", "Relay");
  // A few microseconds (a relayed message) and 300 µs fall in different sub-millisecond buckets.
  histogram.observe(0.000003);
  histogram.observe(0.0003);
  const text = registry.render();
  ok(text.includes('demo_relay_seconds_bucket{le="0.0000025"} 0\n'), text);
  ok(text.includes('demo_relay_seconds_bucket{le="0.000005"} 1\n'), text);
  ok(text.includes('demo_relay_seconds_bucket{le="0.00025"} 1\n'), text);
  ok(text.includes('demo_relay_seconds_bucket{le="0.0005"} 2\n'), text);
  ok(text.includes('demo_relay_seconds_bucket{le="0.000001"} 0\n'), text);
  // Bounds are written without exponent notation and ascend.
  const bounds = [...text.matchAll(/le="([^"]+)"/g)].map((match) => match[1]!);
  ok(bounds.every((bound) => !/e/i.test(bound.replace("+Inf", ""))), String(bounds));
  deepEqual(bounds.slice(0, -1).map(Number), [...LATENCY_BUCKETS_SECONDS]);
});

Deno.test("LatencySketch reports nulls without samples", () => {
  deepEqual(new LatencySketch().summary(), {
    average_ms: null,
    p50_ms: null,
    p95_ms: null,
    p99_ms: null,
    min_ms: null,
    max_ms: null,
    sample_count: 0,
  });
});

Deno.test("LatencySketch percentiles are within 0.1 % of the exact nearest-rank values", () => {
  const sketch = new LatencySketch();
  const samples: number[] = [];
  let seed = 42;
  for (let i = 0; i < 5000; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const seconds = 1e-5 * 10 ** (6 * seed / 2 ** 31); // 10 µs … 10 s, log-uniform
    samples.push(seconds);
    sketch.record(seconds);
  }
  samples.sort((a, b) => a - b);
  for (const q of [0.5, 0.95, 0.99]) {
    const exact = samples[Math.ceil(q * samples.length) - 1]!;
    const estimate = sketch.quantile(q)!;
    ok(Math.abs(estimate - exact) / exact <= 0.001, `q=${q}: ${estimate} vs ${exact}`);
  }
  const summary = sketch.summary();
  equal(summary.min_ms, samples[0]! * 1000);
  equal(summary.max_ms, samples.at(-1)! * 1000);
  equal(summary.sample_count, 5000);
});

Deno.test("LatencySketch.record() clamps samples above 300 s and says so", () => {
  const sketch = new LatencySketch();
  equal(sketch.record(0.002), false);
  equal(sketch.record(301), true);
  equal(sketch.summary().max_ms, 300_000);
});

Deno.test("Registry.labeledCounter() renders one sample per label set counted, empty labels left out", () => {
  const registry = new Registry();
  const closes = registry.labeledCounter("x_closes_total", "Closes", ["code", "cause"]);
  equal(registry.render(), "# HELP x_closes_total Closes\n# TYPE x_closes_total counter\n");
  closes.inc(["1000", ""]);
  closes.inc(["1006", "reset"], 2);
  closes.inc(["1000", ""]);
  equal(
    registry.render(),
    "# HELP x_closes_total Closes\n# TYPE x_closes_total counter\n" +
      'x_closes_total{code="1000"} 2\n' +
      'x_closes_total{code="1006",cause="reset"} 2\n',
  );
  equal(closes.total, 4);
  deepEqual(closes.series().map((series) => series.labels), [
    { code: "1000" },
    { code: "1006", cause: "reset" },
  ]);
  throws(() => closes.inc(["1000"]), RangeError);
  throws(() => closes.inc(["1000", ""], -1), RangeError);
  throws(() => registry.labeledCounter("x_other", "No _total", ["a"]), TypeError);
  throws(() => registry.labeledCounter("x_le_total", "Reserved label", ["le"]), TypeError);
  throws(() => registry.labeledCounter("x_closes_total", "Twice", ["a"]), TypeError);
});
