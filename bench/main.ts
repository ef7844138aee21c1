/**
 * `deno task bench`: the load generator's command line. Runs one scenario against a server
 * (any URL, loopback unless `--allow-remote`), or against one it starts itself (`--spawn`), and
 * prints a table, or JSON with `--json`.
 *
 * ```sh
 * deno task bench relay --spawn ours --pin --rooms 100 --room-size 4 --rate 10 --duration 10
 * deno task bench saturate --url ws://127.0.0.1:3536/v2/ws --server-pid 1234 --json
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  GENERATOR_BUSY_SHARE,
  LoadGenerator,
  type LoadOptions,
  type Report,
  type Scenario,
  type StepResult,
} from "./load.ts";
import { type ServerKind, type SpawnedServer, spawnServer } from "./spawn.ts";

const SCENARIOS: readonly Scenario[] = ["connections", "relay", "saturate", "churn"];

/** Upper bounds that keep every run finite, whatever the flags say. */
export const LIMITS = {
  durationS: 600,
  clients: 60_000,
  rate: 10_000,
  steps: 40,
  cycles: 10_000_000,
};

const USAGE = `Usage: deno task bench <scenario> [options]

Scenarios:
  connections   N clients in rooms of R, held for --duration; server RSS per connection
  relay         K rooms x R players x --rate GameData/s each; delivered msg/s, latency, losses
  saturate      relay with the rate raised by --factor per step until p99 > --p99-limit or a loss
  churn         connect/create/join/leave/close cycles back to back; cycles/s, server CPU/cycle

Target:
  --url <ws-url>        server to load (default ws://127.0.0.1:3536/v2/ws); a comma-separated
                        list loads a cluster's instances (see --placement)
  --placement <p>       with several --url: spread (a room's players round-robin, default) or
                        affinity (a room's players on one instance)
  --allow-remote        allow a non-loopback --url
  --server-pid <pid>    sample this process's CPU and RSS from /proc; a comma-separated list
                        sums every process (a cluster's servers and redis-server)
  --redis <host:port>   a cluster's Redis: commands and publishes per delivered message (INFO)
  --spawn ours|baseline start the server under test on a free loopback port (and sample it)
  --pin                 server on core 0, generator agents on core 1 (taskset)
  --baseline-transport deno|ws
                        the spawned baseline's transport: Deno.serve (default) or node:http + ws
                        (ours' transport)
  --nofile <n>          ulimit -n for a spawned server
  --server-env K=V      environment for a spawned server (repeatable), e.g.
                        SIGNAL_FISH_LOGGING__LEVEL=warn
  --cpu-prof <dir>      write a V8 CPU profile of a spawned server to <dir> when it stops

Load:
  --agents <n>          generator processes (default 2; more for > 9000 clients)
  --clients <n>         connections: clients (default 1000)
  --rooms <k>           relay/saturate: rooms (default 100)
  --room-size <r>       players per room (default 4)
  --rate <r>            relay: msgs/s per player (default 10); saturate: first step (default 5)
  --factor <f>          saturate: rate multiplier per step (default 1.25)
  --step-duration <s>   saturate: seconds per step (default 5)
  --max-steps <n>       saturate: most steps (default 15)
  --p99-limit <ms>      saturate: knee criterion (default 50)
  --retries <n>         saturate: reruns of a failing step before the ramp ends (default 1)
  --payload <bytes>     GameData padding (default 32)
  --warmup <s>          relay/saturate: unmeasured warm-up at the first rate (default 2)
  --concurrency <n>     churn: cycles at once per agent (default 8); connections: opening at once
  --max-cycles <n>      churn: stop after this many cycles (default 1000000)
  --duration <s>        relay: sending time; connections: hold time; churn: run time (default 10)

Output:
  --json                print the report as JSON on stdout
  --out <file>          also write the JSON report to <file>
  --quiet               no progress lines on stderr
`;

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function fmt(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined) return "-";
  if (!Number.isFinite(value)) return "never";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function stepRow(step: StepResult): string[] {
  return [
    String(step.step),
    fmt(step.ratePerPlayer, 2),
    fmt(step.offeredPerSec),
    fmt(step.deliveredPerSec),
    fmt(step.latencyMs.p50, 2),
    fmt(step.latencyMs.p99, 2),
    fmt(step.latencyMs.p999, 2),
    fmt(step.lost),
    fmt(step.reordered),
    fmt(step.serverCpuPerMessageUs, 2),
    fmt(step.serverCpuSeconds === null ? null : step.serverCpuSeconds / step.seconds * 100),
    fmt(step.generatorCpuSeconds / step.seconds * 100),
    fmt(step.serverWaitFraction === null ? null : step.serverWaitFraction * 100),
  ];
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => cell.padStart(widths[i]!)).join("  ")).join("\n");
}

/** Formats a report as a few lines and a table for people. */
export function formatReport(report: Report): string {
  const lines: string[] = [];
  const m = report.machine;
  lines.push(
    `${report.scenario} against ${report.server.label} ${report.url}` +
      (report.server.pid ? ` (pid ${report.server.pid})` : ""),
    `machine: ${m.nproc} cores, ${m.cpuModel}, ${fmt(m.memTotalKb / 1024)} MB, Deno ${m.deno}; ` +
      `load average ${m.loadAverage.join(" ")} at start, ${report.loadAverageEnd.join(" ")} at end`,
    `params: ${
      Object.entries(report.params).map(([k, v]) => `${k}=${v}`).join(" ")
    }; agents ${report.agents}`,
  );
  if (report.connect) {
    const c = report.connect;
    lines.push(
      `connect: ${fmt(c.connected)}/${fmt(c.clients)} connected, ${fmt(c.joined)} joined, ` +
        `${fmt(c.failed)} failed in ${fmt(c.seconds, 1)} s` +
        (c.errors.length ? `; errors: ${c.errors.join(" | ")}` : ""),
    );
  }
  if (report.hold) {
    const h = report.hold;
    lines.push(
      `server RSS: ${fmt(h.rssBeforeKb / 1024, 1)} MB before, ${
        fmt(h.rssHeldKb / 1024, 1)
      } MB held ` +
        `(peak ${fmt(h.peakRssKb / 1024, 1)} MB); ${fmt(h.rssPerConnectionKb, 2)} kB per joined ` +
        `connection; ${fmt(h.openAtEnd)} open at the end of the hold`,
    );
  }
  if (report.steps.length > 0) {
    lines.push(
      "",
      table([
        [
          "step",
          "rate/player",
          "sent/s",
          "delivered/s",
          "p50 ms",
          "p99 ms",
          "p99.9 ms",
          "lost",
          "reordered",
          "srv cpu µs/msg",
          "srv cpu %",
          "gen cpu %",
          "srv waited %",
        ],
        ...report.steps.map(stepRow),
      ]),
      "",
    );
  }
  const busy = report.steps.filter((step) => step.generatorShare > GENERATOR_BUSY_SHARE);
  if (busy.length > 0) {
    lines.push(
      `warning: the generator used over ${GENERATOR_BUSY_SHARE * 100} % of its CPU in step(s) ` +
        `${
          busy.map((step) => step.step).join(", ")
        }: there it may be the bottleneck, not the server`,
    );
  }
  if (report.scenario === "saturate") {
    const knee = report.knee;
    lines.push(
      knee
        ? `knee: step ${knee.step}, ${fmt(knee.deliveredPerSec)} delivered msg/s at p99 ` +
          `${fmt(knee.latencyMs.p99, 2)} ms (limit ${report.params.p99LimitMs} ms)`
        : "knee: none (the first step already exceeded the limit or lost messages)",
    );
  }
  if (report.churn) {
    const c = report.churn;
    lines.push(
      `churn: ${fmt(c.cycles)} cycles (${fmt(c.failed)} failed), ${
        fmt(c.cyclesPerSec, 1)
      } cycles/s, ` +
        `server CPU ${fmt(c.serverCpuMsPerCycle, 3)} ms/cycle, cycle time p50 ${
          fmt(c.cycleMs.p50, 1)
        } ms ` +
        `p99 ${fmt(c.cycleMs.p99, 1)} ms` +
        (c.errors.length ? `; errors: ${c.errors.join(" | ")}` : ""),
    );
  }
  lines.push(
    `totals: ${fmt(report.seconds, 1)} s; server CPU ${fmt(report.serverCpuSeconds, 2)} s, ` +
      `RSS ${report.serverRssKb === null ? "-" : fmt(report.serverRssKb / 1024, 1) + " MB"}; ` +
      `generator CPU ${fmt(report.generatorCpuSeconds, 2)} s; CPU pressure ` +
      (report.cpuPressure === null
        ? "-"
        : `${fmt(report.cpuPressure * 100)} % of the time (PSI: some task waited for a CPU)`),
  );
  return lines.join("\n");
}

/** Parsed command line of `deno task bench`. */
export interface BenchArgs {
  scenario: Scenario;
  url: string;
  spawn: ServerKind | undefined;
  /** `--baseline-transport`: the spawned baseline on `Deno.serve` or `node:http` + `ws`. */
  baselineTransport: "deno" | "ws";
  pin: boolean;
  nofile: number | undefined;
  serverEnv: Record<string, string>;
  cpuProfDir: string | undefined;
  serverPid: number | undefined;
  /** `--server-pid a,b,c`: every process of a cluster (servers and Redis), summed. */
  serverPids: number[] | undefined;
  /** `--placement`: how a room's players spread over a cluster's `--url` list. */
  placement: "spread" | "affinity" | undefined;
  /** `--redis host:port`: a cluster's Redis, read with `INFO commandstats` around each step. */
  redis?: string;
  agents: number | undefined;
  json: boolean;
  out: string | undefined;
  quiet: boolean;
  numbers: BenchNumbers;
}

/** The numeric flags after defaults; times in ms, sizes in bytes. */
export interface BenchNumbers {
  clients: number;
  rooms: number;
  roomSize: number;
  rate: number;
  factor: number;
  stepMs: number;
  maxSteps: number;
  p99LimitMs: number;
  retries: number;
  padBytes: number;
  warmupMs: number;
  concurrency: number;
  maxCycles: number;
  durationMs: number;
}

/** Parses and checks the flags; throws a `TypeError` naming the bad flag. */
export function parseBenchArgs(args: string[]): BenchArgs {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      url: { type: "string", default: "ws://127.0.0.1:3536/v2/ws" },
      "allow-remote": { type: "boolean", default: false },
      "server-pid": { type: "string" },
      placement: { type: "string" },
      redis: { type: "string" },
      spawn: { type: "string" },
      "baseline-transport": { type: "string", default: "deno" },
      pin: { type: "boolean", default: false },
      nofile: { type: "string" },
      "server-env": { type: "string", multiple: true },
      "cpu-prof": { type: "string" },
      agents: { type: "string" },
      clients: { type: "string" },
      rooms: { type: "string" },
      "room-size": { type: "string" },
      rate: { type: "string" },
      factor: { type: "string" },
      "step-duration": { type: "string" },
      "max-steps": { type: "string" },
      "p99-limit": { type: "string" },
      retries: { type: "string" },
      payload: { type: "string" },
      warmup: { type: "string" },
      concurrency: { type: "string" },
      "max-cycles": { type: "string" },
      duration: { type: "string" },
      json: { type: "boolean", default: false },
      out: { type: "string" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) throw new TypeError(USAGE);
  const scenario = positionals[0] as Scenario;
  if (!SCENARIOS.includes(scenario)) {
    throw new TypeError(
      `Cannot run scenario "${positionals[0] ?? ""}": expected one of ${
        SCENARIOS.join(", ")
      }\n\n${USAGE}`,
    );
  }
  if (values.spawn !== undefined && values.spawn !== "ours" && values.spawn !== "baseline") {
    throw new TypeError(`--spawn must be "ours" or "baseline", got "${values.spawn}"`);
  }
  const baselineTransport = values["baseline-transport"];
  if (baselineTransport !== "deno" && baselineTransport !== "ws") {
    throw new TypeError(`--baseline-transport must be "deno" or "ws", got "${baselineTransport}"`);
  }
  if (
    !values.spawn && !values.url.split(",").every((url) => isLoopback(url)) &&
    !values["allow-remote"]
  ) {
    throw new TypeError(
      `Refusing to load ${values.url}: not a loopback address (pass --allow-remote if you own it)`,
    );
  }
  const num = (name: string, fallback: number, min: number, max: number): number => {
    const raw = (values as Record<string, unknown>)[name];
    const value = raw === undefined ? fallback : Number(raw);
    if (!Number.isFinite(value) || value < min || value > max) {
      throw new TypeError(`--${name} must be a number from ${min} to ${max}, got "${raw}"`);
    }
    return value;
  };
  const saturate = scenario === "saturate";
  const numbers: BenchNumbers = {
    clients: num("clients", 1000, 1, LIMITS.clients),
    rooms: num("rooms", 100, 1, LIMITS.clients),
    roomSize: num("room-size", 4, 2, 99),
    rate: num("rate", saturate ? 5 : 10, 0, LIMITS.rate),
    factor: num("factor", 1.25, 1.01, 10),
    stepMs: num("step-duration", 5, 0.1, LIMITS.durationS) * 1000,
    maxSteps: num("max-steps", 15, 1, LIMITS.steps),
    p99LimitMs: num("p99-limit", 50, 0.1, 60_000),
    retries: num("retries", 1, 0, 5),
    padBytes: num("payload", 32, 0, 60_000),
    warmupMs: num("warmup", 2, 0, LIMITS.durationS) * 1000,
    concurrency: num("concurrency", scenario === "churn" ? 8 : 64, 1, 1000),
    maxCycles: num("max-cycles", 1_000_000, 1, LIMITS.cycles),
    durationMs: num("duration", 10, 0.1, LIMITS.durationS) * 1000,
  };
  if (numbers.rooms * numbers.roomSize > LIMITS.clients) {
    throw new TypeError(`--rooms x --room-size must be at most ${LIMITS.clients}`);
  }
  return {
    scenario,
    url: values.url,
    spawn: values.spawn as ServerKind | undefined,
    baselineTransport,
    pin: values.pin,
    nofile: values.nofile === undefined ? undefined : num("nofile", 0, 64, 1_048_576),
    serverEnv: Object.fromEntries((values["server-env"] ?? []).map((pair) => {
      const at = pair.indexOf("=");
      if (at <= 0) throw new TypeError(`--server-env must be KEY=VALUE, got "${pair}"`);
      return [pair.slice(0, at), pair.slice(at + 1)];
    })),
    cpuProfDir: values["cpu-prof"],
    serverPid: values["server-pid"] === undefined
      ? undefined
      : Number(values["server-pid"].split(",")[0]),
    serverPids: values["server-pid"]?.split(",").map((pid) => {
      const n = Number(pid);
      if (!Number.isInteger(n) || n < 1) throw new TypeError(`--server-pid: bad pid "${pid}"`);
      return n;
    }),
    placement: values.placement === undefined
      ? undefined
      : values.placement === "affinity" || values.placement === "spread"
      ? values.placement
      : (() => {
        throw new TypeError(`--placement must be "spread" or "affinity"`);
      })(),
    ...(values.redis ? { redis: values.redis } : {}),
    agents: values.agents === undefined ? undefined : num("agents", 2, 1, 64),
    json: values.json,
    out: values.out,
    quiet: values.quiet,
    numbers,
  };
}

/** Agents needed so that no agent holds more than 9000 sockets (fd limit 20000 per process). */
export function agentsFor(clients: number, asked: number | undefined): number {
  return Math.max(asked ?? 2, Math.ceil(clients / 9000));
}

/** Runs `args.scenario` with `generator`. */
export function runScenario(generator: LoadGenerator, args: BenchArgs): Promise<Report> {
  const n = args.numbers;
  switch (args.scenario) {
    case "connections":
      return generator.connections({
        clients: n.clients,
        roomSize: n.roomSize,
        holdMs: n.durationMs,
        concurrency: n.concurrency,
      });
    case "relay":
      return generator.relay({
        rooms: n.rooms,
        roomSize: n.roomSize,
        rate: n.rate,
        durationMs: n.durationMs,
        warmupMs: n.warmupMs,
        padBytes: n.padBytes,
        drainMs: 3000,
      });
    case "saturate":
      return generator.saturate({
        rooms: n.rooms,
        roomSize: n.roomSize,
        startRate: n.rate,
        factor: n.factor,
        stepMs: n.stepMs,
        maxSteps: n.maxSteps,
        p99LimitMs: n.p99LimitMs,
        retries: n.retries,
        warmupMs: n.warmupMs,
        padBytes: n.padBytes,
        drainMs: 3000,
      });
    case "churn":
      return generator.churn({
        concurrency: n.concurrency,
        durationMs: n.durationMs,
        maxCycles: n.maxCycles,
      });
  }
}

/** Starts the server if asked, runs the scenario, stops everything, returns the report. */
export async function bench(args: BenchArgs): Promise<Report> {
  let server: SpawnedServer | undefined;
  const pinned = args.pin && navigator.hardwareConcurrency >= 2;
  if (args.spawn) {
    server = await spawnServer(args.spawn, {
      core: pinned ? 0 : undefined,
      nofile: args.nofile,
      env: args.serverEnv,
      cpuProfDir: args.cpuProfDir,
      baselineTransport: args.baselineTransport,
    });
  }
  try {
    const clients = args.scenario === "connections"
      ? args.numbers.clients
      : args.numbers.rooms * args.numbers.roomSize;
    const options: LoadOptions = {
      url: server?.wsUrl ?? args.url,
      agents: agentsFor(args.scenario === "churn" ? 0 : clients, args.agents),
      agentCore: pinned ? 1 : undefined,
      serverPid: server?.pid ?? args.serverPid,
      serverPids: server ? undefined : args.serverPids,
      placement: args.placement,
      ...(args.redis ? { redis: args.redis } : {}),
      serverLabel: server === undefined
        ? "external"
        : server.kind === "baseline" && args.baselineTransport === "ws"
        ? "baseline-ws"
        : server.kind,
      serverCommand: server?.command,
      progress: !args.quiet,
    };
    await using generator = new LoadGenerator(options);
    return await runScenario(generator, args);
  } finally {
    await server?.close();
  }
}

if (import.meta.main) {
  let args: BenchArgs;
  try {
    args = parseBenchArgs(Deno.args);
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    Deno.exit(Deno.args.includes("--help") || Deno.args.includes("-h") ? 0 : 2);
  }
  const report = await bench(args);
  const json = JSON.stringify(report, null, 2);
  if (args.out) await Deno.writeTextFile(args.out, json + "\n");
  console.log(args.json ? json : formatReport(report));
}
