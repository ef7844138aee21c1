import { equal, ok } from "node:assert/strict";
import {
  countOpenFds,
  defaultProcessReaders,
  type ProcessReaders,
  registerProcessMetrics,
} from "./process.ts";
import { Registry } from "./registry.ts";

function fakeReaders(fds: number | undefined) {
  const state = { rss: 1000, cpu: 0.5, fds };
  const readers: ProcessReaders = {
    residentMemoryBytes: () => state.rss,
    cpuSeconds: () => state.cpu,
    openFds: () => state.fds,
    startTimeSeconds: 1700000000.25,
  };
  return { state, readers };
}

function sampleLines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
}

Deno.test("registerProcessMetrics reads its figures at every scrape", () => {
  const { state, readers } = fakeReaders(12);
  const registry = new Registry();
  registerProcessMetrics(registry, readers);
  const text = registry.render();
  ok(text.includes("# TYPE process_cpu_seconds_total counter\n"), text);
  ok(text.includes("# TYPE process_open_fds gauge\n"), text);
  equal(
    sampleLines(text).join("\n"),
    [
      "process_resident_memory_bytes 1000",
      "process_cpu_seconds_total 0.5",
      "process_start_time_seconds 1700000000.25",
      "process_open_fds 12",
    ].join("\n"),
  );
  state.rss = 2048;
  state.cpu = 1.75;
  state.fds = 40;
  equal(
    sampleLines(registry.render()).join("\n"),
    [
      "process_resident_memory_bytes 2048",
      "process_cpu_seconds_total 1.75",
      "process_start_time_seconds 1700000000.25",
      "process_open_fds 40",
    ].join("\n"),
  );
});

Deno.test("process_open_fds is omitted where descriptors cannot be counted", () => {
  const registry = new Registry();
  registerProcessMetrics(registry, fakeReaders(undefined).readers);
  const names = registry.metrics().map((metric) => metric.name);
  equal(names.includes("process_open_fds"), false);
  equal(names.includes("process_resident_memory_bytes"), true);
});

Deno.test({
  name: "countOpenFds follows descriptors opened and closed (Linux)",
  ignore: Deno.build.os !== "linux",
  fn() {
    const path = Deno.makeTempFileSync();
    try {
      const before = countOpenFds();
      ok(before !== undefined && before > 0, String(before));
      const files = [0, 1, 2].map(() => Deno.openSync(path));
      equal(countOpenFds(), before + 3);
      for (const file of files) file.close();
      equal(countOpenFds(), before);
    } finally {
      Deno.removeSync(path);
    }
  },
});

Deno.test("The default readers report this process: CPU time grows with work, RSS is positive", () => {
  const readers = defaultProcessReaders();
  const rss = readers.residentMemoryBytes();
  ok(rss > 1024 * 1024 && rss < 2 ** 40, String(rss));
  const start = readers.cpuSeconds();
  let spin = 0;
  // Busy work until the CPU clock moves (bounded: ~10^9 iterations is seconds of CPU).
  for (let i = 0; i < 1e9 && readers.cpuSeconds() === start; i++) spin += Math.sqrt(i);
  ok(readers.cpuSeconds() > start, `cpu ${start} never grew (${spin})`);
  ok(readers.startTimeSeconds * 1000 <= Date.now(), String(readers.startTimeSeconds));
  ok(readers.startTimeSeconds > 1.6e9, String(readers.startTimeSeconds));
});
