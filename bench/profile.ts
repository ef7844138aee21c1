/**
 * Summarises a V8 CPU profile (`.cpuprofile`, as written by `deno run --cpu-prof` or
 * `deno task bench … --cpu-prof <dir>`): self time per function and per source file, so the hot
 * path can be read without a browser.
 *
 * ```sh
 * deno task bench:profile bench/results/prof/*.cpuprofile [--top 25]
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
    options: { top: { type: "string", default: "25" } },
  });
  for (const path of positionals) {
    const summary = summarizeProfile(JSON.parse(await Deno.readTextFile(path)) as CpuProfile);
    console.log(`${path}: ${summary.totalMs} ms sampled`);
    print("self time by file", summary.files, Number(values.top));
    print("self time by function", summary.functions, Number(values.top));
  }
}
