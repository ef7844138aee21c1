/**
 * Process metrics with the names Prometheus client libraries use (`process_*`), read at scrape
 * time: resident memory, CPU time, start time and, on Linux where `/proc` is readable, open file
 * descriptors. Additions to docs/spec/SERVER.md §6.3 asked for by issue 16 (operators' memory, CPU and
 * descriptor panels).
 *
 * @module
 */
import process from "node:process";
import type { Registry } from "./registry.ts";

/** Where the process figures come from (replaceable in tests). */
export interface ProcessReaders {
  /** Resident set size in bytes. */
  residentMemoryBytes(): number;
  /** User plus system CPU time since the process started, in seconds. */
  cpuSeconds(): number;
  /** Open file descriptors, or `undefined` where they cannot be counted. */
  openFds(): number | undefined;
  /** When the process started, Unix time in seconds. */
  startTimeSeconds: number;
}

/** The directory listing this process's open descriptors on Linux. */
export const FD_DIR = "/proc/self/fd";

/**
 * Counts the entries of `dir` (default {@linkcode FD_DIR}; the listing's own descriptor is among
 * them). `undefined` when not on Linux, when read access to `dir` is not granted (asking would
 * prompt on a terminal), or when reading fails: Deno reads `/proc` only with `--allow-all`, so the
 * compiled executables' permission set (scripts/permissions.ts) cannot count descriptors.
 */
export function countOpenFds(dir: string = FD_DIR): number | undefined {
  if (Deno.build.os !== "linux") return undefined;
  if (Deno.permissions.querySync({ name: "read", path: dir }).state !== "granted") return undefined;
  try {
    let count = 0;
    for (const _ of Deno.readDirSync(dir)) count++;
    return count;
  } catch {
    return undefined;
  }
}

/** Readers for this process: `Deno.memoryUsage().rss`, `process.cpuUsage()`, `/proc/self/fd`. */
export function defaultProcessReaders(): ProcessReaders {
  return {
    residentMemoryBytes: () => Deno.memoryUsage().rss,
    cpuSeconds: () => {
      const { user, system } = process.cpuUsage(); // microseconds
      return (user + system) / 1e6;
    },
    openFds: () => countOpenFds(),
    startTimeSeconds: performance.timeOrigin / 1000,
  };
}

/**
 * Registers `process_resident_memory_bytes` (gauge), `process_cpu_seconds_total` (counter),
 * `process_start_time_seconds` (gauge) and, when `readers.openFds()` answers at registration,
 * `process_open_fds` (gauge; `NaN` if a later read fails). Throws `TypeError` if a name is
 * already registered.
 */
export function registerProcessMetrics(
  registry: Registry,
  readers: ProcessReaders = defaultProcessReaders(),
): void {
  registry.gauge(
    "process_resident_memory_bytes",
    "Resident memory size in bytes",
    readers.residentMemoryBytes,
  );
  registry.counter(
    "process_cpu_seconds_total",
    "User and system CPU time spent, in seconds",
    readers.cpuSeconds,
  );
  registry.gauge(
    "process_start_time_seconds",
    "Start time of the process since the Unix epoch, in seconds",
    () => readers.startTimeSeconds,
  );
  if (readers.openFds() !== undefined) {
    registry.gauge(
      "process_open_fds",
      "Open file descriptors",
      () => readers.openFds() ?? NaN,
    );
  }
}
