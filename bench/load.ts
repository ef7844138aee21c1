/**
 * The load generator's controller: starts agent processes (`agent.ts`), hands each a share of
 * the rooms, runs a scenario, samples the server's and its own CPU and memory from `/proc`, and
 * returns a {@linkcode Report}.
 *
 * @module
 */
import type { AgentCommand, AgentEvent, PhaseResult } from "./agent.ts";
import {
  cpuPressureSeconds,
  Histogram,
  type LatencySummary,
  loadAverage,
  type MachineInfo,
  machineInfo,
  type ProcSample,
  readProc,
  readProcs,
  round3,
} from "./stats.ts";
import { wrapArgv } from "./spawn.ts";

const AGENT = new URL("./agent.ts", import.meta.url).pathname;

/** The scenarios `deno task bench` knows. */
export type Scenario = "connections" | "relay" | "saturate" | "churn";

/** Where the load goes and how the generator runs. */
export interface LoadOptions {
  /** WebSocket URL of the server under test. */
  url: string;
  /** Agent processes to spread the clients over. @default 2 */
  agents?: number;
  /** CPU core to pin the agents to (`taskset -c`); undefined = not pinned. */
  agentCore?: number;
  /** Server process to sample from `/proc` (CPU, RSS); undefined = not sampled. */
  serverPid?: number;
  /** Every process of the system under test (a cluster's servers and Redis), summed. */
  serverPids?: number[];
  /** With several URLs (a cluster): `spread` or `affinity` (bench/agent.ts). */
  placement?: "spread" | "affinity";
  /**
   * A cluster's Redis (`host:port`): its `INFO commandstats` is read around each step, for the
   * commands and publishes per delivered message.
   */
  redis?: string;
  /** Describes the server in the report, e.g. "ours", "baseline", "external". */
  serverLabel?: string;
  /** The command that started the server, when the bench started it. */
  serverCommand?: string;
  /** Print a progress line on stderr once per second. @default true */
  progress?: boolean;
}

/** `connections`: N clients in rooms of R, held open. */
export interface ConnectionsParams {
  /** Clients; rounded up to whole rooms. */
  clients: number;
  roomSize: number;
  /** How long the joined connections are held, ms. */
  holdMs: number;
  /** Connections each agent opens at once. */
  concurrency: number;
}

/** `relay`: K rooms × R players, each sending `rate` GameData/s. */
export interface RelayParams {
  rooms: number;
  roomSize: number;
  /** GameData messages per player per second. */
  rate: number;
  /** Measured sending time, ms. */
  durationMs: number;
  /** Unmeasured sending time at the same rate before it, ms (JIT warm-up). */
  warmupMs: number;
  /** Payload padding, bytes. */
  padBytes: number;
  /** Longest wait for messages in flight after sending stops, ms. */
  drainMs: number;
}

/** `saturate`: relay steps with a growing rate until p99 > limit or a loss. */
export interface SaturateParams extends Omit<RelayParams, "rate" | "durationMs"> {
  /** Rate of the first step, msgs/s per player. */
  startRate: number;
  /** Each step's rate is the previous one times this. */
  factor: number;
  /** Sending time per step, ms. */
  stepMs: number;
  /** Most steps to run. */
  maxSteps: number;
  /** The knee is the last step whose p99 is at most this, ms. @default 50 */
  p99LimitMs: number;
  /** Times a failing step is run again at the same rate before the ramp ends. @default 1 */
  retries: number;
}

/** `churn`: connect/create/join/leave/close cycles back to back. */
export interface ChurnParams {
  /** Cycles running at once, per agent. */
  concurrency: number;
  durationMs: number;
  /** Stop after this many cycles in total. */
  maxCycles: number;
}

/** Figures of one sending step. */
export interface StepResult {
  step: number;
  /** Per player, msgs/s. */
  ratePerPlayer: number;
  /** GameData frames the generator sent per second. */
  offeredPerSec: number;
  sent: number;
  /** Deliveries owed (sent × other players in the room). */
  expected: number;
  delivered: number;
  /** Expected but not delivered by the end of the drain. */
  lost: number;
  reordered: number;
  duplicates: number;
  /** Deliveries per second of sending time. */
  deliveredPerSec: number;
  /** One-way latency of the delivered messages, ms. */
  latencyMs: LatencySummary;
  /** Server CPU over the step and its drain, seconds (when sampled). */
  serverCpuSeconds: number | null;
  /** Server CPU per delivered message, µs (when sampled). */
  serverCpuPerMessageUs: number | null;
  /** Generator CPU (all agents plus the controller) over the step, seconds. */
  generatorCpuSeconds: number;
  /**
   * Generator CPU as a share of the CPUs it may use (one core when pinned, else all). Above
   * {@linkcode GENERATOR_BUSY_SHARE} the generator, not the server, may be what limits the step.
   */
  generatorShare: number;
  /**
   * Share of the step the server's main thread was runnable but waiting for a CPU (when
   * sampled); above a few percent, other work on the machine distorted the latency.
   */
  serverWaitFraction: number | null;
  /** Sending time, s. */
  seconds: number;
  /**
   * Times the server's main threads (every sampled process) blocked and woke up, per delivered
   * message (`voluntary_ctxt_switches` of `/proc/<pid>/status`).
   */
  serverWakeupsPerMessage?: number;
  /** CPU of each sampled process over the step, s (several `--server-pid`s), in their order. */
  serverCpuByProcess?: number[];
  /** A cluster's traffic between instances over the step (several `--url`s). */
  cluster?: ClusterStepFigures;
}

/**
 * Envelopes between a cluster's instances over one step (docs/spec/SERVER.md §8.4.1), summed
 * over the instances' `/metrics/prom` counters (`signal_fish_cross_instance_messages_total`,
 * `signal_fish_cluster_sent_bytes_total`): every envelope is one Redis `PUBLISH`.
 */
export interface ClusterStepFigures {
  /** Envelopes published, heartbeats included. */
  envelopes: number;
  envelopeBytes: number;
  /** Per delivered message. */
  publishesPerMessage: number;
  envelopeBytesPerMessage: number;
  /** From Redis `INFO commandstats` (with `--redis`): every command, and the publishes. */
  redisCommands?: number;
  redisPublishes?: number;
  redisCommandsPerMessage?: number;
  /** Redis's own time in commands, µs per delivered message (`usec` of commandstats). */
  redisCommandUsPerMessage?: number;
}

/** Connecting and joining. */
export interface ConnectResult {
  /** Clients asked for. */
  clients: number;
  connected: number;
  joined: number;
  failed: number;
  /** Wall time to connect and join everyone, s. */
  seconds: number;
  /** A few error messages, if any failed. */
  errors: string[];
}

/** The result of one scenario run (the `--json` output). */
export interface Report {
  scenario: Scenario;
  url: string;
  server: { label: string; pid: number | null; command: string | null };
  machine: MachineInfo;
  startedAt: string;
  /** The scenario's parameters. */
  params: Record<string, number | string>;
  agents: number;
  connect: ConnectResult | null;
  /** `relay`: one step; `saturate`: every step run. */
  steps: StepResult[];
  /** `saturate`: the last step with p99 ≤ limit and no loss; null if none passed. */
  knee: StepResult | null;
  /** `connections`: memory of the server holding the joined clients. */
  hold: {
    /** Server RSS before connecting, kB. */
    rssBeforeKb: number;
    /** Server RSS at the end of the hold, kB. */
    rssHeldKb: number;
    /** Server peak RSS (VmHWM), kB. */
    peakRssKb: number;
    /** (rssHeld − rssBefore) / joined, kB. */
    rssPerConnectionKb: number;
    /** Connections still open at the end of the hold. */
    openAtEnd: number;
    /** Server CPU during the hold (0 msg/s), as a share of one core. */
    idleCpuShare: number | null;
    /** The same per `--server-pid` (a cluster's servers and Redis), in their order. */
    idleCpuShareByProcess?: number[];
  } | null;
  churn: {
    cycles: number;
    failed: number;
    cyclesPerSec: number;
    /** Server CPU per cycle, ms (when sampled). */
    serverCpuMsPerCycle: number | null;
    /** Wall time of one cycle, ms. */
    cycleMs: LatencySummary;
    errors: string[];
  } | null;
  /** Server CPU over the whole run, s; RSS at the end, kB (when sampled). */
  serverCpuSeconds: number | null;
  serverRssKb: number | null;
  /** Generator CPU over the whole run (agents + controller), s. */
  generatorCpuSeconds: number;
  /** Wall time of the whole run, s. */
  seconds: number;
  /** Load averages at the end of the run. */
  loadAverageEnd: number[];
  /**
   * Share of the run's wall time during which some task on the machine waited for a CPU
   * (Linux PSI, `/proc/pressure/cpu`); null without PSI. Our own processes count too, but a
   * high value with a low server and generator CPU means other work was competing.
   */
  cpuPressure: number | null;
}

/** One agent process with a request/response channel over its stdin/stdout. */
class AgentProcess {
  readonly pid: number;
  progress = { sent: 0, delivered: 0, cycles: 0, open: 0 };
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #waiting: ((event: AgentEvent) => void)[] = [];
  #reading: Promise<void>;
  #failure: Error | undefined;

  constructor(core: number | undefined) {
    const argv = wrapArgv([Deno.execPath(), "run", "--allow-net", AGENT], { core });
    this.#child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.pid = this.#child.pid;
    this.#writer = this.#child.stdin.getWriter();
    this.#reading = this.#read();
  }

  async #read(): Promise<void> {
    let buffered = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const event = JSON.parse(buffered.slice(0, newline)) as AgentEvent;
        buffered = buffered.slice(newline + 1);
        if (event.ev === "progress") {
          this.progress = event;
        } else {
          this.#waiting.shift()?.(event);
        }
      }
    }
    this.#failure = new Error(`Agent ${this.pid} exited`);
    for (const waiter of this.#waiting.splice(0)) {
      waiter({ ev: "error", message: this.#failure.message });
    }
  }

  /** Sends one command and resolves with the agent's answer. */
  async request<E extends AgentEvent>(command: AgentCommand): Promise<E> {
    if (this.#failure) throw this.#failure;
    const answer = new Promise<AgentEvent>((resolve) => this.#waiting.push(resolve));
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(command) + "\n"));
    const event = await answer;
    if (event.ev === "error") throw new Error(`Agent ${this.pid}: ${event.message}`);
    return event as E;
  }

  /** Closes stdin (the agent closes its sockets and exits) and waits for the exit. */
  async stop(): Promise<void> {
    try {
      await this.#writer.close();
    } catch {
      // already closed
    }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }, 10_000);
    await this.#child.status;
    clearTimeout(timer);
    await this.#reading;
  }
}

/**
 * Above this share of a step spent runnable but off the CPU, the server was disturbed by other
 * work on the machine (quiet pinned runs measure 0.5–3 %; runs next to other load 20–50 %).
 */
export const DISTURBED_WAIT_FRACTION = 0.1;
/** Generator CPU share above which a step may be limited by the generator itself. */
export const GENERATOR_BUSY_SHARE = 0.85;

/** Extra tries of a disturbed failing saturate step, on top of `retries`. */
const MAX_DISTURBED_RETRIES = 3;

/** True when the server spent more than {@linkcode DISTURBED_WAIT_FRACTION} of `step` waiting. */
export function isDisturbed(step: StepResult): boolean {
  return (step.serverWaitFraction ?? 0) > DISTURBED_WAIT_FRACTION;
}

/** Splits `total` into `parts` near-equal whole shares. */
export function split(total: number, parts: number): number[] {
  return Array.from(
    { length: parts },
    (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0),
  );
}

/** Counters read around a step (bench `ClusterStepFigures`). */
interface ClusterCounters {
  envelopes: number;
  bytes: number;
  redis?: { calls: number; publishes: number; usec: number };
}

/** The per-step figures from two counter readings. */
function clusterFigures(
  a: ClusterCounters,
  b: ClusterCounters,
  delivered: number,
): ClusterStepFigures {
  const per = (n: number) => delivered > 0 ? round3(n / delivered) : 0;
  const envelopes = b.envelopes - a.envelopes;
  const bytes = b.bytes - a.bytes;
  const figures: ClusterStepFigures = {
    envelopes,
    envelopeBytes: bytes,
    publishesPerMessage: per(envelopes),
    envelopeBytesPerMessage: per(bytes),
  };
  if (a.redis && b.redis) {
    // The two INFO calls themselves are counted once each.
    figures.redisCommands = b.redis.calls - a.redis.calls - 1;
    figures.redisPublishes = b.redis.publishes - a.redis.publishes;
    figures.redisCommandsPerMessage = per(figures.redisCommands);
    figures.redisCommandUsPerMessage = per(b.redis.usec - a.redis.usec);
  }
  return figures;
}

/** The value of an unlabelled sample `name` in a Prometheus text body (0 when absent). */
export function promValue(text: string, name: string): number {
  const match = new RegExp(`^${name} ([0-9.e+-]+)$`, "m").exec(text);
  return match ? Number(match[1]) : 0;
}

/**
 * Redis `INFO commandstats` over one plain TCP connection (loopback bench use only): every
 * command's calls, the publishes, and the µs Redis spent in commands.
 */
export async function redisCommandStats(
  address: string,
): Promise<{ calls: number; publishes: number; usec: number }> {
  const [hostname, port] = address.split(":");
  const conn = await Deno.connect({ hostname: hostname || "127.0.0.1", port: Number(port) });
  try {
    await conn.write(new TextEncoder().encode("INFO commandstats\r\n"));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    let text = "";
    // A bulk string: `$<len>\r\n<body>\r\n`.
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
      text = new TextDecoder().decode(concat(chunks));
      const header = /^\$(\d+)\r\n/.exec(text);
      if (
        header && new TextEncoder().encode(text).byteLength >= header[0].length + Number(header[1])
      ) {
        break;
      }
    }
    let calls = 0, publishes = 0, usec = 0;
    for (const m of text.matchAll(/^cmdstat_([a-z|_]+):calls=(\d+),usec=(\d+)/gm)) {
      calls += Number(m[2]);
      usec += Number(m[3]);
      if (m[1] === "publish") publishes = Number(m[2]);
    }
    return { calls, publishes, usec };
  } finally {
    conn.close();
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** Runs scenarios against one server with a pool of agent processes. */
export class LoadGenerator implements AsyncDisposable {
  readonly #options: LoadOptions;
  readonly #agents: AgentProcess[];
  readonly #game = `bench-${crypto.randomUUID().slice(0, 8)}`;
  /** Connect phases so far: each uses its own game names, so rooms (and seats the server still
   * holds for reconnection after an earlier phase closed its sockets) never carry over. */
  #phases = 0;
  #phase = 0;

  /** Starts `agents` agent processes (they connect nothing until a scenario runs). */
  constructor(options: LoadOptions) {
    this.#options = options;
    const count = Math.max(1, options.agents ?? 2);
    this.#agents = Array.from({ length: count }, () => new AgentProcess(options.agentCore));
  }

  /** Stops every agent. */
  async close(): Promise<void> {
    await Promise.all(this.#agents.map((agent) => agent.stop()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #server(): ProcSample | null {
    const pids = this.#options.serverPids;
    if (pids !== undefined && pids.length > 1) {
      const samples = readProcs(pids);
      if (samples.some((sample) => sample === null)) return null;
      return samples.reduce<ProcSample>((sum, sample) => ({
        at: sample!.at,
        cpuSeconds: sum.cpuSeconds + sample!.cpuSeconds,
        rssKb: sum.rssKb + sample!.rssKb,
        peakRssKb: sum.peakRssKb + sample!.peakRssKb,
        runDelaySeconds: sum.runDelaySeconds + sample!.runDelaySeconds,
        wakeups: sum.wakeups! + (sample!.wakeups ?? 0),
      }), {
        at: 0,
        cpuSeconds: 0,
        rssKb: 0,
        peakRssKb: 0,
        runDelaySeconds: 0,
        wakeups: 0,
      });
    }
    return this.#options.serverPid === undefined ? null : readProc(this.#options.serverPid);
  }

  /** CPU seconds used so far by the controller and every agent. */
  #generatorCpu(): number {
    const samples = readProcs([Deno.pid, ...this.#agents.map((agent) => agent.pid)]);
    return samples.reduce((sum, sample) => sum + (sample?.cpuSeconds ?? 0), 0);
  }

  /** Prints one line per second on stderr until the returned function is called. */
  #startProgress(label: string): () => void {
    if (this.#options.progress === false) return () => {};
    const start = performance.now();
    let last = {
      sent: 0,
      delivered: 0,
      cycles: 0,
      server: this.#server(),
      gen: this.#generatorCpu(),
    };
    let lastAt = start;
    const timer = setInterval(() => {
      const now = performance.now();
      const dt = (now - lastAt) / 1000;
      const totals = { sent: 0, delivered: 0, cycles: 0, open: 0 };
      for (const agent of this.#agents) {
        totals.sent += agent.progress.sent;
        totals.delivered += agent.progress.delivered;
        totals.cycles += agent.progress.cycles;
        totals.open += agent.progress.open;
      }
      const server = this.#server();
      const gen = this.#generatorCpu();
      const parts = [
        `[${label} ${((now - start) / 1000).toFixed(0)}s]`,
        `open ${totals.open}`,
        `sent ${Math.round((totals.sent - last.sent) / dt)}/s`,
        `delivered ${Math.round((totals.delivered - last.delivered) / dt)}/s`,
      ];
      if (totals.cycles > 0) {
        parts.push(`cycles ${Math.round((totals.cycles - last.cycles) / dt)}/s`);
      }
      if (server && last.server) {
        parts.push(
          `server cpu ${Math.round((server.cpuSeconds - last.server.cpuSeconds) / dt * 100)}%`,
        );
        parts.push(`rss ${(server.rssKb / 1024).toFixed(0)} MB`);
      }
      parts.push(`generator cpu ${Math.round((gen - last.gen) / dt * 100)}%`);
      console.error(parts.join("  "));
      last = { ...totals, server, gen };
      lastAt = now;
    }, 1000);
    return () => clearInterval(timer);
  }

  #report(scenario: Scenario, params: Record<string, number | string>): Report {
    return {
      scenario,
      url: this.#options.url,
      server: {
        label: this.#options.serverLabel ?? "external",
        pid: this.#options.serverPid ?? null,
        command: this.#options.serverCommand ?? null,
      },
      machine: machineInfo(),
      startedAt: new Date().toISOString(),
      params,
      agents: this.#agents.length,
      connect: null,
      steps: [],
      knee: null,
      hold: null,
      churn: null,
      serverCpuSeconds: null,
      serverRssKb: null,
      generatorCpuSeconds: 0,
      seconds: 0,
      loadAverageEnd: [],
      cpuPressure: null,
    };
  }

  async #connect(rooms: number, roomSize: number, concurrency: number): Promise<ConnectResult> {
    const start = performance.now();
    const shares = split(rooms, this.#agents.length);
    const game = `${this.#game}-${++this.#phases}`;
    let first = 0;
    const answers = await Promise.all(this.#agents.map((agent, i) => {
      const command: AgentCommand = {
        cmd: "connect",
        url: this.#options.url,
        ...(this.#options.placement ? { placement: this.#options.placement } : {}),
        firstRoom: first,
        rooms: shares[i]!,
        roomSize,
        game,
        concurrency,
        timeoutMs: 15_000,
      };
      first += shares[i]!;
      return agent.request<Extract<AgentEvent, { ev: "connected" }>>(command);
    }));
    const result: ConnectResult = {
      clients: rooms * roomSize,
      connected: 0,
      joined: 0,
      failed: 0,
      seconds: round3((performance.now() - start) / 1000),
      errors: [],
    };
    for (const answer of answers) {
      result.connected += answer.connected;
      result.joined += answer.joined;
      result.failed += answer.failed;
      result.errors.push(...answer.errors);
    }
    result.errors = result.errors.slice(0, 5);
    return result;
  }

  /** Closes every client; returns how many were still open. */
  async #disconnect(): Promise<number> {
    const answers = await Promise.all(
      this.#agents.map((agent) =>
        agent.request<Extract<AgentEvent, { ev: "closed" }>>({ cmd: "close", timeoutMs: 5000 })
      ),
    );
    return answers.reduce((sum, answer) => sum + answer.wereOpen, 0);
  }

  async #step(
    step: number,
    rate: number,
    params: { durationMs: number; drainMs: number; padBytes: number },
  ): Promise<StepResult> {
    const phase = this.#phase++;
    const cluster0 = await this.#clusterCounters();
    const procs0 = this.#processes();
    const server0 = this.#server();
    const gen0 = this.#generatorCpu();
    const answers = await Promise.all(
      this.#agents.map((agent) =>
        agent.request<{ ev: "phase"; phase: number } & PhaseResult>({
          cmd: "run",
          phase,
          ratePerPlayer: rate,
          durationMs: params.durationMs,
          drainMs: params.drainMs,
          padBytes: params.padBytes,
        })
      ),
    );
    const server1 = this.#server();
    const procs1 = this.#processes();
    const gen1 = this.#generatorCpu();
    const cluster1 = await this.#clusterCounters();
    const latency = new Histogram();
    let sent = 0, expected = 0, delivered = 0, reordered = 0, duplicates = 0, sendMs = 0;
    for (const answer of answers) {
      sent += answer.sent;
      expected += answer.expected;
      delivered += answer.delivered;
      reordered += answer.reordered;
      duplicates += answer.duplicates;
      sendMs = Math.max(sendMs, answer.sendMs);
      latency.merge(answer.latency);
    }
    const seconds = sendMs / 1000;
    const serverCpu = server0 && server1 ? server1.cpuSeconds - server0.cpuSeconds : null;
    return {
      step,
      ratePerPlayer: round3(rate),
      offeredPerSec: Math.round(sent / seconds),
      sent,
      expected,
      delivered,
      lost: Math.max(0, expected - delivered),
      reordered,
      duplicates,
      deliveredPerSec: Math.round(delivered / seconds),
      latencyMs: latency.summary(),
      serverCpuSeconds: serverCpu === null ? null : round3(serverCpu),
      serverCpuPerMessageUs: serverCpu === null || delivered === 0
        ? null
        : round3(serverCpu / delivered * 1e6),
      generatorCpuSeconds: round3(gen1 - gen0),
      generatorShare: round3(
        (gen1 - gen0) / seconds /
          (this.#options.agentCore === undefined ? navigator.hardwareConcurrency : 1),
      ),
      serverWaitFraction: server0 && server1
        ? round3((server1.runDelaySeconds - server0.runDelaySeconds) / seconds)
        : null,
      seconds: round3(seconds),
      ...(server0?.wakeups !== undefined && server1?.wakeups !== undefined && delivered > 0
        ? {
          serverWakeupsPerMessage: round3((server1.wakeups! - server0.wakeups!) / delivered),
        }
        : {}),
      ...(procs0 && procs1
        ? { serverCpuByProcess: procs0.map((p, i) => round3(procs1[i]! - p)) }
        : {}),
      ...(cluster0 && cluster1 ? { cluster: clusterFigures(cluster0, cluster1, delivered) } : {}),
    };
  }

  /** CPU seconds of each of several `--server-pid`s (null for one, or when one is gone). */
  #processes(): number[] | null {
    const pids = this.#options.serverPids;
    if (pids === undefined || pids.length < 2) return null;
    const samples = readProcs(pids);
    if (samples.some((sample) => sample === null)) return null;
    return samples.map((sample) => sample!.cpuSeconds);
  }

  /** The cluster counters now (null for one URL, or when an instance does not answer). */
  async #clusterCounters(): Promise<ClusterCounters | null> {
    const urls = this.#options.url.split(",");
    if (urls.length < 2) return null;
    try {
      const texts = await Promise.all(urls.map(async (url) => {
        const http = new URL(url.trim());
        http.protocol = http.protocol === "wss:" ? "https:" : "http:";
        http.pathname = "/metrics/prom";
        const response = await fetch(http, { signal: AbortSignal.timeout(5000) });
        return await response.text();
      }));
      const counters: ClusterCounters = { envelopes: 0, bytes: 0 };
      for (const text of texts) {
        counters.envelopes += promValue(text, "signal_fish_cross_instance_messages_total");
        counters.bytes += promValue(text, "signal_fish_cluster_sent_bytes_total");
      }
      if (this.#options.redis) {
        const stats = await redisCommandStats(this.#options.redis);
        counters.redis = stats;
      }
      return counters;
    } catch {
      return null;
    }
  }

  async #run(
    scenario: Scenario,
    params: Record<string, number | string>,
    body: (report: Report) => Promise<void>,
  ): Promise<Report> {
    const report = this.#report(scenario, params);
    const start = performance.now();
    const server0 = this.#server();
    const gen0 = this.#generatorCpu();
    const pressure0 = cpuPressureSeconds();
    const stop = this.#startProgress(scenario);
    try {
      await body(report);
    } finally {
      stop();
    }
    const server1 = this.#server();
    report.serverCpuSeconds = server0 && server1
      ? round3(server1.cpuSeconds - server0.cpuSeconds)
      : null;
    report.serverRssKb = server1?.rssKb ?? null;
    report.generatorCpuSeconds = round3(this.#generatorCpu() - gen0);
    report.seconds = round3((performance.now() - start) / 1000);
    report.loadAverageEnd = loadAverage();
    const pressure1 = cpuPressureSeconds();
    report.cpuPressure = pressure0 === null || pressure1 === null
      ? null
      : round3((pressure1 - pressure0) / report.seconds);
    return report;
  }

  /** Opens `clients` connections in rooms of `roomSize`, holds them, reports memory. */
  connections(p: ConnectionsParams): Promise<Report> {
    const rooms = Math.ceil(p.clients / p.roomSize);
    return this.#run("connections", { ...p, rooms }, async (report) => {
      const before = this.#server();
      report.connect = await this.#connect(rooms, p.roomSize, p.concurrency);
      const idle0 = this.#server();
      const procs0 = this.#processes();
      const holdStart = performance.now();
      await new Promise((resolve) => setTimeout(resolve, p.holdMs));
      const held = this.#server();
      const procs1 = this.#processes();
      const holdSeconds = (performance.now() - holdStart) / 1000;
      const open = await this.#disconnect();
      if (before && held) {
        report.hold = {
          rssBeforeKb: before.rssKb,
          rssHeldKb: held.rssKb,
          peakRssKb: held.peakRssKb,
          rssPerConnectionKb: report.connect.joined > 0
            ? round3((held.rssKb - before.rssKb) / report.connect.joined)
            : 0,
          openAtEnd: open,
          idleCpuShare: idle0 ? round3((held.cpuSeconds - idle0.cpuSeconds) / holdSeconds) : null,
          ...(procs0 && procs1
            ? {
              idleCpuShareByProcess: procs0.map((c, i) => round3((procs1[i]! - c) / holdSeconds)),
            }
            : {}),
        };
      }
    });
  }

  /** K rooms × R players × rate for a fixed time; latency, losses, CPU per message. */
  relay(p: RelayParams): Promise<Report> {
    return this.#run("relay", { ...p }, async (report) => {
      report.connect = await this.#connect(p.rooms, p.roomSize, 64);
      if (p.warmupMs > 0) {
        await this.#step(0, p.rate, { ...p, durationMs: p.warmupMs });
      }
      report.steps.push(await this.#step(1, p.rate, p));
      await this.#disconnect();
    });
  }

  /** Raises the rate step by step until p99 exceeds the limit or a message is lost. */
  saturate(p: SaturateParams): Promise<Report> {
    return this.#run("saturate", { ...p }, async (report) => {
      report.connect = await this.#connect(p.rooms, p.roomSize, 64);
      if (p.warmupMs > 0) {
        await this.#step(0, p.startRate, { ...p, durationMs: p.warmupMs });
      }
      let rate = p.startRate;
      let retriesLeft = p.retries;
      let disturbedLeft = MAX_DISTURBED_RETRIES;
      for (let step = 1; step <= p.maxSteps; step++) {
        const result = await this.#step(step, rate, { ...p, durationMs: p.stepMs });
        report.steps.push(result);
        if (result.lost > 0 || result.latencyMs.p99 > p.p99LimitMs) {
          // A failed step is tried again at the same rate (a passing retry continues the ramp),
          // so one scheduling hiccup of a shared machine does not end the ramp. A step during
          // which other work kept the server off its CPU is retried without using up a retry.
          if (isDisturbed(result) && disturbedLeft-- > 0) continue;
          if (retriesLeft-- > 0) continue;
          break;
        }
        retriesLeft = p.retries;
        disturbedLeft = MAX_DISTURBED_RETRIES;
        report.knee = result;
        rate *= p.factor;
      }
      await this.#disconnect();
    });
  }

  /** Connect/create/join/leave/close cycles for a fixed time; cycles/s and CPU per cycle. */
  churn(p: ChurnParams): Promise<Report> {
    return this.#run("churn", { ...p }, async (report) => {
      const server0 = this.#server();
      const start = performance.now();
      const shares = split(p.maxCycles, this.#agents.length);
      const answers = await Promise.all(
        this.#agents.map((agent, i) =>
          agent.request<Extract<AgentEvent, { ev: "churned" }>>({
            cmd: "churn",
            url: this.#options.url,
            game: `${this.#game}-${i}`,
            concurrency: p.concurrency,
            durationMs: p.durationMs,
            maxCycles: shares[i]!,
            timeoutMs: 10_000,
          })
        ),
      );
      const seconds = (performance.now() - start) / 1000;
      const server1 = this.#server();
      const cycleMs = new Histogram();
      let cycles = 0, failed = 0;
      const errors: string[] = [];
      for (const answer of answers) {
        cycles += answer.cycles;
        failed += answer.failed;
        errors.push(...answer.errors);
        cycleMs.merge(answer.cycleMs);
      }
      report.churn = {
        cycles,
        failed,
        cyclesPerSec: round3(cycles / seconds),
        serverCpuMsPerCycle: server0 && server1 && cycles > 0
          ? round3((server1.cpuSeconds - server0.cpuSeconds) / cycles * 1000)
          : null,
        cycleMs: cycleMs.summary(),
        errors: errors.slice(0, 5),
      };
    });
  }
}
