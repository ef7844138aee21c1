/**
 * Summarises a V8 CPU profile (`.cpuprofile`, as written by `deno run --cpu-prof` or
 * `deno task bench … --cpu-prof <dir>`): self time per function and per source file, so the hot
 * path can be read without a browser.
 *
 * ```sh
 * deno task bench:profile bench/results/prof/*.cpuprofile [--top 25]
 * deno task bench:profile /tmp/prof/*.cpuprofile --areas --per 3989   # µs per cycle by area
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";

/** The parts of a `.cpuprofile` this reads. */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  samples: number[];
  /** µs since the previous sample. */
  timeDeltas: number[];
}

/** Self time of one function or file, ms and share of all samples. */
export interface ProfileEntry {
  name: string;
  selfMs: number;
  share: number;
}

/** Self time per function (`name file:line`) and per file, largest first. */
export function summarizeProfile(profile: CpuProfile): {
  totalMs: number;
  functions: ProfileEntry[];
  files: ProfileEntry[];
} {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const frame = frames.get(id);
    const us = profile.timeDeltas[i] ?? 0;
    if (!frame || us < 0) return;
    total += us;
    const file = shortUrl(frame.url) || "(native)";
    const name = `${frame.functionName || "(anonymous)"} ${file}${
      frame.url ? `:${frame.lineNumber + 1}` : ""
    }`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    byFile.set(file, (byFile.get(file) ?? 0) + us);
  });
  const entries = (map: Map<string, number>) =>
    [...map].sort((a, b) => b[1] - a[1]).map(([name, us]) => ({
      name,
      selfMs: Math.round(us / 10) / 100,
      share: total > 0 ? us / total : 0,
    }));
  return {
    totalMs: Math.round(total / 10) / 100,
    functions: entries(byFunction),
    files: entries(byFile),
  };
}

/** Native functions that are socket system calls made on the JavaScript thread. */
const SOCKET_OPS = new Set([
  "writeUtf8String",
  "writeBuffer",
  "writev",
  "close",
  "shutdown",
  "TCPWrap",
  "getpeername",
  "readStart",
  "readStop",
  "setNoDelay",
  "accept",
]);

/**
 * The area a sample's function belongs to (BENCHMARKS.md "Session 5: churn and memory"), from
 * its name and file: the runtime's `node:` layer, `ws`, socket operations, the garbage collector,
 * and this project's layers by directory. Undefined for idle samples.
 */
export function areaOf(functionName: string, url: string): string | undefined {
  if (functionName === "(idle)") return undefined;
  if (functionName === "(garbage collector)") return "garbage collector";
  if (functionName === "(program)") return "V8 unattributed (program)";
  if (SOCKET_OPS.has(functionName)) return "socket ops on the JS thread";
  if (functionName.startsWith("op_node_hash") || functionName === "op_node_create_hash") {
    return "hashing (ws handshake digest)";
  }
  if (
    url.includes("logtape") || url.endsWith("src/logging.ts") || url.includes("metrics/event_log")
  ) {
    return "logging";
  }
  if (/\/src\/(engine|coordination)\/|src\/server\.ts$/.test(url)) return "engine";
  if (url.includes("/src/protocol/") || url.includes("zod")) return "codec + validation";
  if (url.includes("/src/http/")) return "our HTTP routing + admission";
  if (url.includes("/src/transport/")) return "our transport + edge";
  if (url.includes("/src/metrics/")) return "metrics";
  if (url.includes("bench/baseline.ts")) return "thin relay's own code";
  if (url.includes("ws@")) return "ws (JS)";
  if (/deno_fetch|deno_webidl|00_url/.test(url)) return "Request / Headers / URL";
  if (url.includes("deno_node") || url.startsWith("node:")) {
    return "node:net/http/streams/timers (JS)";
  }
  if (url.startsWith("ext:")) return "runtime JS (core, Deno.serve, WebSocket)";
  return "other (native ops, ours elsewhere)";
}

/** Self time per {@linkcode areaOf}, µs, largest first; idle samples left out. */
export function profileAreas(profile: CpuProfile): [string, number][] {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const byArea = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const frame = frames.get(id);
    const us = profile.timeDeltas[i] ?? 0;
    if (!frame || us < 0) return;
    const area = areaOf(frame.functionName, frame.url);
    if (area !== undefined) byArea.set(area, (byArea.get(area) ?? 0) + us);
  });
  return [...byArea].sort((a, b) => b[1] - a[1]);
}

/** Drops the checkout path and the npm cache prefix so file names stay short. */
function shortUrl(url: string): string {
  return url
    .replace(/^file:\/\/.*?\/(src|bench|main\.ts)/, "$1")
    .replace(/^file:\/\/.*\/node_modules\/\.deno\//, "npm:")
    .replace(/^file:\/\/.*\/node_modules\//, "npm:");
}

function print(title: string, entries: ProfileEntry[], top: number): void {
  console.log(`\n${title}`);
  for (const entry of entries.slice(0, top)) {
    console.log(
      `${(entry.share * 100).toFixed(1).padStart(5)} %  ${
        entry.selfMs.toFixed(0).padStart(7)
      } ms  ${entry.name}`,
    );
  }
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      top: { type: "string", default: "25" },
      areas: { type: "boolean", default: false },
      per: { type: "string", default: "1" },
    },
  });
  for (const path of positionals) {
    if (values.areas) {
      // µs per unit of work (`--per`: cycles, deliveries) by area, idle left out.
      const per = Number(values.per);
      const areas = profileAreas(JSON.parse(await Deno.readTextFile(path)) as CpuProfile);
      const busy = areas.reduce((sum, [, us]) => sum + us, 0);
      console.log(`${path}: self time, idle left out, µs / ${per} (--per)`);
      for (const [area, us] of areas) console.log(`${(us / per).toFixed(1).padStart(10)}  ${area}`);
      console.log(`${(busy / per).toFixed(1).padStart(10)}  total`);
      continue;
    }
    const summary = summarizeProfile(JSON.parse(await Deno.readTextFile(path)) as CpuProfile);
    console.log(`${path}: ${summary.totalMs} ms sampled`);
    print("self time by file", summary.files, Number(values.top));
    print("self time by function", summary.functions, Number(values.top));
  }
}
