/**
 * Where the on-CPU time of a `perf record` goes, by area, in µs per delivered message (issue 15
 * item 8): the servers' kernel time, the Deno runtime and V8's native code, V8's worker threads
 * (GC), our JavaScript (cluster code and the rest), node-redis's and `ws`'s JavaScript, other
 * JavaScript (runtime, Node compatibility layer), libc, and `redis-server` whole. JavaScript
 * frames are named only when the servers ran with `--perf-basic-prof`.
 *
 * ```sh
 * OUT=/tmp/c PERF=1 PERFREC=1 V8FLAGS=--perf-basic-prof bash bench/cluster_run.sh spread
 * deno run --allow-run bench/perf_areas.ts /tmp/c/<tag>.perf.data [--messages 60000] [--hz 1999]
 * ```
 *
 * `--messages` = messages delivered during the recording (`cluster_run.sh` records 5 s of the
 * 12,000 msg/s step: 60,000); `--hz` = `perf record -F`.
 *
 * @module
 */
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    messages: { type: "string", default: "60000" },
    hz: { type: "string", default: "1999" },
  },
});
const file = positionals[0];
if (file === undefined) {
  console.error("usage: perf_areas.ts <perf.data> [--messages N] [--hz F]");
  Deno.exit(2);
}
const messages = Number(values.messages);
const hz = Number(values.hz);

const { stdout } = await new Deno.Command("perf", {
  args: ["script", "-i", file, "-F", "comm,ip,sym,dso"],
  stdout: "piped",
  stderr: "null",
}).output();

/** The area of one sample line (`comm ip sym (dso)`). */
function area(line: string): string {
  const comm = line.split(/\s+/)[0] ?? "";
  if (comm.startsWith("redis")) return "redis-server (all)";
  if (comm.startsWith("V8") || comm.startsWith("tokio")) return "V8 and runtime worker threads";
  if (line.includes("[kernel.kallsyms]")) return "kernel (servers)";
  if (line.includes("/perf-") || line.includes("[JIT]")) {
    if (line.includes("/src/cluster/")) return "JS ours: src/cluster";
    if (line.includes("@redis")) return "JS node-redis";
    if (line.includes("file:///") && line.includes("/src/")) return "JS ours: the rest";
    if (line.includes("/ws@") || line.includes("npm:ws")) return "JS ws";
    return "JS runtime, node: compatibility, other";
  }
  if (line.includes("libc.so")) return "libc";
  if (line.includes("deno")) return "Deno runtime and V8 (native)";
  return "other";
}

const counts = new Map<string, number>();
let total = 0;
for (const line of new TextDecoder().decode(stdout).split("\n")) {
  const trimmed = line.trim();
  if (trimmed === "") continue;
  const name = area(trimmed);
  counts.set(name, (counts.get(name) ?? 0) + 1);
  total++;
}
const us = (samples: number) => (samples / hz * 1e6 / messages).toFixed(2).padStart(7);
for (const [name, n] of [...counts].sort((a, b) => b[1] - a[1])) {
  console.log(`${us(n)} µs/msg  ${String(n).padStart(6)} samples  ${name}`);
}
console.log(`${us(total)} µs/msg  ${String(total).padStart(6)} samples  total`);
