/**
 * The bench's own tests: every scenario, very briefly, against a spawned ours and baseline,
 * checking the report's shape and that every message arrived (no speed assertions), plus the
 * pure parts (histogram, flags, ratios, chart).
 */
import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { renderChart } from "./chart.ts";
import { type Comparison, formatComparison, type Metric, summarize } from "./compare.ts";
import { LoadGenerator, promValue, type Report, split } from "./load.ts";
import { formatReport, isLoopback, parseBenchArgs } from "./main.ts";
import { areaOf, summarizeProfile } from "./profile.ts";
import { runChurnPath } from "./churn_path.ts";
import { runOperatorReads } from "./operator_reads.ts";
import { runMsgpackJson, shapes } from "./msgpack_json.ts";
import { judge, secondLook } from "./guard.ts";
import { spawnServer } from "./spawn.ts";
import { LIBRARIES, parseLibraries } from "./baseline.ts";
import {
  IDLE_SERVERS,
  type IdleSample,
  PER_LIBRARY_SERVERS,
  roundOrder,
  spawnOptionsOf,
  summarizeIdle,
} from "./idle_memory.ts";
import { Histogram, machineInfo, median } from "./stats.ts";
import { floorOrder, floorRatios, spawnArgs } from "./transport_floor.ts";

const LINUX = Deno.build.os === "linux";

function checkCommon(report: Report, scenario: string): void {
  equal(report.scenario, scenario);
  ok(report.seconds > 0);
  ok(report.generatorCpuSeconds >= 0);
  if (LINUX) {
    equal(typeof report.serverCpuSeconds, "number");
    ok(report.serverRssKb! > 0);
  }
  match(formatReport(report), new RegExp(`^${scenario} against `));
  JSON.parse(JSON.stringify(report));
}

for (const kind of ["ours", "baseline"] as const) {
  Deno.test(`bench scenarios run briefly against ${kind} and lose nothing`, async (t) => {
    await using server = await spawnServer(kind);
    await using generator = new LoadGenerator({
      url: server.wsUrl,
      agents: 2,
      serverPid: server.pid,
      serverLabel: kind,
      progress: false,
    });

    await t.step("connections", async () => {
      const report = await generator.connections({
        clients: 12,
        roomSize: 3,
        holdMs: 300,
        concurrency: 4,
      });
      checkCommon(report, "connections");
      deepEqual(
        [report.connect?.clients, report.connect?.connected, report.connect?.joined],
        [12, 12, 12],
      );
      equal(report.connect?.failed, 0);
      if (LINUX) equal(report.hold?.openAtEnd, 12);
    });

    await t.step("relay", async () => {
      const report = await generator.relay({
        rooms: 3,
        roomSize: 3,
        rate: 20,
        durationMs: 800,
        warmupMs: 200,
        padBytes: 16,
        drainMs: 3000,
      });
      checkCommon(report, "relay");
      equal(report.steps.length, 1);
      const step = report.steps[0]!;
      ok(step.sent > 0, "nothing was sent");
      // Every frame reaches the two other players of its room, in order, once.
      equal(step.expected, step.sent * 2);
      equal(step.delivered, step.expected);
      deepEqual([step.lost, step.reordered, step.duplicates], [0, 0, 0]);
      equal(step.latencyMs.count, step.delivered);
      ok(step.generatorShare >= 0);
      ok(step.latencyMs.p50 <= step.latencyMs.p99 && step.latencyMs.p99 <= step.latencyMs.max);
    });

    await t.step("saturate", async () => {
      const report = await generator.saturate({
        rooms: 2,
        roomSize: 3,
        startRate: 10,
        factor: 2,
        stepMs: 400,
        maxSteps: 2,
        p99LimitMs: 60_000,
        retries: 1,
        warmupMs: 0,
        padBytes: 0,
        drainMs: 3000,
      });
      checkCommon(report, "saturate");
      deepEqual(report.steps.map((step) => step.ratePerPlayer), [10, 20]);
      for (const step of report.steps) {
        ok(step.delivered > 0);
        equal(step.lost, 0);
      }
      equal(report.knee?.step, 2);
    });

    await t.step("churn", async () => {
      const report = await generator.churn({ concurrency: 2, durationMs: 500, maxCycles: 10 });
      checkCommon(report, "churn");
      ok(report.churn!.cycles > 0 && report.churn!.cycles <= 10);
      equal(report.churn!.failed, 0, report.churn!.errors.join("; "));
      equal(report.churn!.cycleMs.count, report.churn!.cycles);
    });
  });
}

Deno.test("Histogram.quantile() is within 2 % above the exact percentile", () => {
  const histogram = new Histogram();
  for (let i = 1; i <= 1000; i++) histogram.record(i / 10);
  const summary = histogram.summary();
  equal(summary.count, 1000);
  ok(summary.p50 >= 50 && summary.p50 <= 51, `p50 ${summary.p50}`);
  ok(summary.p99 >= 99 && summary.p99 <= 101, `p99 ${summary.p99}`);
  equal(summary.max, 100);
  const merged = new Histogram();
  merged.merge(histogram.toData());
  deepEqual(merged.summary(), summary);
  merged.recordMissing(1000);
  equal(merged.quantile(0.99), Infinity);
});

Deno.test("median() and split() handle odd, even and uneven inputs", () => {
  equal(median([3, 1, 2]), 2);
  equal(median([4, 1, 2, 3]), 2.5);
  deepEqual(split(10, 3), [4, 3, 3]);
  deepEqual(split(2, 3), [1, 1, 0]);
});

Deno.test("parseBenchArgs() refuses non-loopback URLs unless --allow-remote", () => {
  ok(isLoopback("ws://127.0.0.1:3536/v2/ws"));
  ok(isLoopback("ws://localhost:3536/v2/ws"));
  ok(isLoopback("ws://[::1]:3536/v2/ws"));
  ok(!isLoopback("ws://10.0.0.5:3536/v2/ws"));
  throws(() => parseBenchArgs(["relay", "--url", "ws://example.com/v2/ws"]), /not a loopback/);
  equal(
    parseBenchArgs(["relay", "--url", "ws://example.com/v2/ws", "--allow-remote"]).url,
    "ws://example.com/v2/ws",
  );
  throws(() => parseBenchArgs(["nonsense"]), /Cannot run scenario/);
  throws(() => parseBenchArgs(["relay", "--duration", "100000"]), /--duration must be/);
  equal(parseBenchArgs(["saturate"]).numbers.rate, 5);
});

Deno.test("summarize() and renderChart() turn runs into ratios and a chart", () => {
  const run = (kind: "ours" | "baseline", cycleMs: number) => ({
    experiment: "churn" as const,
    kind,
    round: 1,
    report: { churn: { serverCpuMsPerCycle: cycleMs } } as Report,
  });
  const metrics = summarize([
    run("ours", 1.2),
    run("baseline", 1),
    run("ours", 1.4),
    { ...run("ours", 9), discarded: true }, // a disturbed run that was repeated
  ]);
  const churn = metrics.find((metric) => metric.id === "churn_cpu")!;
  deepEqual([churn.oursMedian, churn.baselineMedian, churn.ratio, churn.met], [1.3, 1, 1.3, true]);
  const throughput = metrics.find((metric) => metric.id === "throughput")!;
  deepEqual([throughput.ratio, throughput.met, throughput.notes], [null, null, []]);
  const comparison: Comparison = {
    createdAt: new Date(0).toISOString(),
    machine: machineInfo(),
    rounds: 1,
    commands: {},
    metrics,
    cpuPressure: 0.1,
    seconds: 1,
    runs: [],
  };
  const svg = renderChart(comparison);
  match(svg, /^<svg /);
  match(svg, /1\.30× \(goal ≤ 1\.5×\)/);
  match(svg, /no data/);
  ok(svg.trimEnd().endsWith("</svg>"));
});

Deno.test("summarize() reports each interleaved pair, its ratio and the spread", () => {
  const run = (kind: "ours" | "baseline", round: number, cycleMs: number) => ({
    experiment: "churn" as const,
    kind,
    round,
    report: { churn: { serverCpuMsPerCycle: cycleMs } } as Report,
  });
  const runs = [
    run("ours", 1, 1.2),
    run("baseline", 1, 1),
    { ...run("ours", 2, 5), discarded: true }, // repeated: the next run of round 2 counts
    run("ours", 2, 0.9),
    run("baseline", 2, 1.5),
    run("ours", 3, 2), // no baseline in round 3: no pair
  ];
  const churn = summarize(runs).find((metric) => metric.id === "churn_cpu")!;
  deepEqual(churn.pairs, [
    { round: 1, ours: 1.2, baseline: 1, ratio: 1.2 },
    { round: 2, ours: 0.9, baseline: 1.5, ratio: 0.6 },
  ]);
  deepEqual([churn.pairRatioMedian, churn.pairRatioMin, churn.pairRatioMax], [0.9, 0.6, 1.2]);
  const text = formatComparison({
    createdAt: new Date(0).toISOString(),
    machine: machineInfo(),
    rounds: 3,
    commands: {},
    metrics: [churn],
    cpuPressure: null,
    seconds: 1,
    runs,
  });
  match(text, /0\.90x \(0\.60-1\.20\)/);
  match(text, /round 2: 0\.9 \/ 1\.5 = 0\.60x/);
});

Deno.test("summarize() notes a run whose clients could not all join (a smaller load)", () => {
  const run = (kind: "ours" | "baseline", failed: number) => ({
    experiment: "churn" as const,
    kind,
    round: 1,
    report: {
      churn: { serverCpuMsPerCycle: 1 },
      connect: {
        clients: 400,
        connected: 400,
        joined: 400 - failed,
        failed,
        seconds: 1,
        errors: failed ? ["JoinRoom answered with RoomJoinFailed"] : [],
      },
    } as unknown as Report,
  });
  const churn = summarize([run("ours", 320), run("baseline", 0)])
    .find((metric) => metric.id === "churn_cpu")!;
  deepEqual(churn.notes, [
    "ours round 1: 320 clients failed to join (JoinRoom answered with RoomJoinFailed)",
  ]);
  deepEqual(
    summarize([run("ours", 0), run("baseline", 0)]).find((m) => m.id === "churn_cpu")!.notes,
    [],
  );
});

Deno.test("summarizeProfile() adds self time per function and per file", () => {
  const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 9 });
  const summary = summarizeProfile({
    nodes: [
      { id: 1, callFrame: frame("(root)", "") },
      { id: 2, callFrame: frame("receive", "file:///x/src/transport/hub.ts") },
      { id: 3, callFrame: frame("parse", "file:///x/node_modules/.deno/zod@4/index.js") },
    ],
    samples: [2, 3, 2, 1],
    timeDeltas: [1000, 2000, 3000, 4000],
  });
  equal(summary.totalMs, 10);
  deepEqual(summary.files.map((entry) => [entry.name, entry.selfMs]), [
    ["src/transport/hub.ts", 4],
    ["(native)", 4],
    ["npm:zod@4/index.js", 2],
  ]);
  equal(summary.functions[0]!.name, "receive src/transport/hub.ts:10");
});

Deno.test("judge() fails a guarded ratio more than 5 % above its recorded figure", () => {
  const metric = (id: string, pairRatioMedian: number | null) =>
    ({ id, pairRatioMedian }) as Metric;
  const record = {
    recordedAt: new Date(0).toISOString(),
    ratios: { cpu_per_message: 1, churn_cpu: 2 },
    cpuPressure: null,
  };
  deepEqual(judge([metric("cpu_per_message", 1.04), metric("churn_cpu", 2.2)], record), [
    { id: "cpu_per_message", recorded: 1, measured: 1.04, change: 1.04, ok: true },
    { id: "churn_cpu", recorded: 2, measured: 2.2, change: 1.1, ok: false },
  ]);
  // Nothing measured fails; nothing recorded cannot fail.
  deepEqual(judge([metric("cpu_per_message", null)], record)[0]!.ok, false);
  deepEqual(judge([metric("cpu_per_message", 3)], null)[0]!.ok, null);
});

Deno.test("secondLook() runs again the experiments of figures past the tolerance, once each", () => {
  const metric = (id: string, experiment: string, pairRatioMedian: number | null) =>
    ({ id, experiment, pairRatioMedian }) as Metric;
  const record = {
    recordedAt: new Date(0).toISOString(),
    ratios: { cpu_per_message: 1, churn_cpu: 2 },
    cpuPressure: null,
  };
  const metrics = [metric("cpu_per_message", "relay", 1.2), metric("churn_cpu", "churn", 2.05)];
  deepEqual(secondLook(judge(metrics, record), metrics), ["relay"]);
  metrics[1] = metric("churn_cpu", "churn", 2.5);
  deepEqual(secondLook(judge(metrics, record), metrics), ["relay", "churn"]);
  // Within the tolerance, or not measured at all (that fails without a second look): none.
  deepEqual(secondLook(judge([metric("cpu_per_message", "relay", 1.03)], record), metrics), []);
  deepEqual(secondLook(judge([metric("cpu_per_message", "relay", null)], record), metrics), []);
});

Deno.test("areaOf() puts a profile sample in its area by function and file", () => {
  equal(areaOf("(idle)", ""), undefined);
  equal(areaOf("(garbage collector)", ""), "garbage collector");
  equal(areaOf("writev", ""), "socket ops on the JS thread");
  equal(areaOf("joinRoom", "file:///x/src/engine/rooms.ts"), "engine");
  equal(areaOf("onUpgrade", "file:///x/src/http/listener.ts"), "our HTTP routing + admission");
  equal(
    areaOf("log", "file:///x/node_modules/.deno/@logtape+logtape@2.4.2/a/logger.js"),
    "logging",
  );
  equal(
    areaOf("send", "file:///x/node_modules/.deno/ws@8.23.1/node_modules/ws/lib/sender.js"),
    "ws (JS)",
  );
  equal(areaOf("emit", "ext:deno_node/_events.mjs"), "node:net/http/streams/timers (JS)");
  equal(areaOf("Request", "ext:deno_fetch/23_request.js"), "Request / Headers / URL");
});

Deno.test("promValue() reads an unlabelled sample and ignores labelled ones and other names", () => {
  const text = [
    "# HELP signal_fish_cross_instance_messages_total Envelopes published",
    "# TYPE signal_fish_cross_instance_messages_total counter",
    "signal_fish_cross_instance_messages_total 1234",
    "signal_fish_cross_instance_messages_total_other 7",
    'signal_fish_cluster_sent_bytes_total{kind="x"} 9',
    "signal_fish_cluster_sent_bytes_total 5.5e+06",
  ].join("\n");
  equal(promValue(text, "signal_fish_cross_instance_messages_total"), 1234);
  equal(promValue(text, "signal_fish_cluster_sent_bytes_total"), 5_500_000);
  equal(promValue(text, "signal_fish_missing_total"), 0);
});

Deno.test("bench:churn-path runs whole cycles: six frames each, log lines written", async () => {
  const result = await runChurnPath({
    cycles: 300,
    rounds: 2,
    tree: new URL("..", import.meta.url).pathname,
  });
  equal(result.usPerCycle.length, 2);
  // RoomJoined ×2, PlayerJoined, RoomLeft ×2, PlayerLeft per cycle (last round's sockets).
  equal(result.sent, 300 * 6);
  ok(result.written > 0);
  // `deno task test` exposes gc: after the sweeps nothing but token records stays.
  ok(result.retained, "retained figures (gc exposed)");
  equal(result.retained.rooms, 0);
  equal(result.retained.connections, 0);
  equal(result.retained.tokenRecords, 2 * 300 * 2, "two records per cycle, within the window");
});

Deno.test("bench:operator-reads fills the rooms it is asked for and times each read", async () => {
  const result = await runOperatorReads({
    rooms: 300,
    games: 3,
    repeat: 3,
    tree: new URL("..", import.meta.url).pathname,
  });
  deepEqual([result.rooms, result.players], [300, 600]);
  for (const timing of [result.scrape, result.listing, result.dashboardRefresh]) {
    ok(timing.medianMs >= 0 && timing.maxMs >= timing.medianMs);
  }
});

Deno.test("bench:msgpack-json times every shape, and only the shapes with a bin have no JSON form", async () => {
  const results = await runMsgpackJson({
    rounds: 1,
    tree: new URL("..", import.meta.url).pathname,
  });
  deepEqual(results.map((result) => result.name), shapes().map((shape) => shape.name));
  for (const result of results) {
    ok(result.microseconds > 0, result.name);
    equal(result.converted, !result.name.includes("bin"), result.name);
  }
});

Deno.test("parseLibraries() reads all, a list or nothing and refuses an unknown name", () => {
  deepEqual(parseLibraries("all"), ["zod", "msgpack", "logtape"]);
  deepEqual(parseLibraries("zod,logtape"), ["zod", "logtape"]);
  deepEqual(parseLibraries(""), []);
  throws(() => parseLibraries("zod,valibot"), /unknown library "valibot"/);
});

Deno.test("bench:idle-memory rotates its order, starts each server as named, takes medians", () => {
  deepEqual(roundOrder(IDLE_SERVERS, 0), ["ours", "ws", "ws+libraries", "deno"]);
  deepEqual(roundOrder(IDLE_SERVERS, 1), ["ws", "ws+libraries", "deno", "ours"]);
  deepEqual(roundOrder(IDLE_SERVERS, 4), roundOrder(IDLE_SERVERS, 0));
  deepEqual(spawnOptionsOf("ws+libraries"), {
    kind: "baseline",
    options: { baselineTransport: "ws", baselineLibraries: LIBRARIES },
  });
  deepEqual(spawnOptionsOf("ws+zod").options.baselineLibraries, ["zod"]);
  deepEqual(spawnOptionsOf("ws").options.baselineLibraries, []);
  equal(spawnOptionsOf("ours").kind, "ours");
  // Three rounds at two marks; one ws+zod sample; medians, not means, per server and mark.
  const kb: Record<string, number[][]> = {
    ours: [[70_000, 69_000], [72_000, 71_000], [90_000, 80_000]],
    ws: [[56_000, 55_000], [56_000, 55_000], [57_000, 56_000]],
    "ws+libraries": [[63_000, 61_000], [62_000, 60_000], [64_000, 62_000]],
    deno: [[45_000, 45_000], [45_000, 45_000], [46_000, 46_000]],
  };
  const samples: IdleSample[] = Object.entries(kb).flatMap(([server, runs]) =>
    runs.map((rssKb, round) => ({ server, round, rssKb } as IdleSample))
  );
  samples.push({ server: "ws+zod", round: 0, rssKb: [61_600, 60_000] });
  const summary = summarizeIdle(samples, [2, 50]);
  deepEqual(summary.medianKb.ours, [72_000, 71_000]);
  deepEqual(summary.ratios.oursOverWs, [1.29, 1.29]);
  deepEqual(summary.ratios.librariesOverWs, [1.13, 1.11]);
  deepEqual(summary.ratios.oursOverLibraries, [1.14, 1.16]);
  deepEqual(summary.ratios.wsOverDeno, [1.24, 1.22]);
  deepEqual(summary.perLibraryOverWs, { "ws+zod": [1.1, 1.09] });
  equal(PER_LIBRARY_SERVERS.length, LIBRARIES.length);
  throws(() => summarizeIdle(samples.filter((s) => s.server !== "deno"), [2, 50]), /deno/);
});

Deno.test("the ws relay with the libraries loaded still relays (bench/baseline.ts --libraries)", async () => {
  await using server = await spawnServer("baseline", {
    baselineTransport: "ws",
    baselineLibraries: LIBRARIES,
  });
  const socket = new WebSocket(server.wsUrl);
  try {
    const first = await new Promise<{ type: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no answer in 5 s")), 5_000);
      socket.onopen = () =>
        socket.send(JSON.stringify({
          type: "JoinRoom",
          data: { game_name: "idle", room_code: "IDLE01", player_name: "p1" },
        }));
      socket.onmessage = (event) => {
        clearTimeout(timer);
        resolve(JSON.parse(event.data));
      };
      socket.onerror = () => reject(new Error("socket error"));
    });
    equal(first.type, "RoomJoined");
  } finally {
    socket.close();
  }
});

Deno.test("bench:transport-floor rotates ours and both thin relays and takes per-round ratios", () => {
  deepEqual(floorOrder(0), ["ours", "ws", "deno"]);
  deepEqual(floorOrder(2), ["deno", "ours", "ws"]);
  deepEqual(parseBenchArgs(["relay", ...spawnArgs("ws")]).baselineTransport, "ws");
  deepEqual(parseBenchArgs(["relay", ...spawnArgs("deno")]).baselineTransport, "deno");
  equal(parseBenchArgs(["relay", ...spawnArgs("ours")]).spawn, "ours");
  const ratios = floorRatios({
    ours: [22, 20, null, 30],
    ws: [20, 25, 20, 24],
    deno: [20, 20, 18, 20],
  });
  // Round 3 has no value of ours: its ratios with ours are null and left out of the medians.
  deepEqual(ratios.oursOverDeno.perRound, [1.1, 1, null, 1.5]);
  equal(ratios.oursOverDeno.median, 1.1);
  deepEqual(ratios.oursOverWs.perRound, [1.1, 0.8, null, 1.25]);
  deepEqual([ratios.oursOverWs.min, ratios.oursOverWs.max], [0.8, 1.25]);
  deepEqual(ratios.wsOverDeno.perRound, [1, 1.25, 1.111, 1.2]);
  equal(ratios.wsOverDeno.median, (1.111 + 1.2) / 2);
  equal(floorRatios({ ours: [null], ws: [1], deno: [1] }).oursOverWs.median, null);
});
