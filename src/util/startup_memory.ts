/**
 * Hands the garbage of start-up back to the operating system once the server listens
 * (BENCHMARKS.md "Session 22": idle memory, issue 18 item 3).
 *
 * Loading the configuration, the modules and their libraries allocates a heap that is mostly
 * garbage once the server is up, and grows V8's young generation to its cap
 * ({@linkcode RUNTIME_V8_FLAGS} in scripts/permissions.ts: `--max-semi-space-size=4`). V8 keeps
 * both committed until its memory reducer notices the process is idle, some tens of seconds
 * later, and only then partly. One memory-reducing full collection (V8's "last resort" flavour:
 * repeated mark-compacts that shrink the young generation and release unused pages) right after
 * start-up returns it at once: about 8 MB of resident memory on the machine of that section, for
 * a few milliseconds before the first connection is accepted.
 *
 * V8 offers the collection only as a function exposed by a flag; the server's V8 settings expose
 * it under {@linkcode COLLECTOR_GLOBAL} (V8 makes that property non-configurable: it stays on the
 * global object, where only the server's own code, the only code the process runs, can see it).
 *
 * @module
 */

/** The global name `--expose-gc-as` gives V8's collector (scripts/permissions.ts). */
export const COLLECTOR_GLOBAL = "__signalFishCollectGarbage";

/** V8's collector with its options object (`--expose-gc`); units and meanings are V8's. */
type Collector = (options: {
  type: "major" | "minor";
  execution: "sync" | "async";
  flavor?: "regular" | "last-resort";
}) => void;

/** The collector V8 exposed under {@linkcode COLLECTOR_GLOBAL}; undefined when not exposed. */
function findCollector(): Collector | undefined {
  const found = (globalThis as unknown as Record<string, unknown>)[COLLECTOR_GLOBAL];
  return typeof found === "function" ? found as Collector : undefined;
}

/**
 * Runs one memory-reducing full collection, synchronously (the caller's turn waits for it: a few
 * milliseconds with the heap of a server that just started). Call it once, when start-up is done
 * and before load: on a loaded heap it costs a full stop-the-world collection.
 *
 * @returns false when the runtime was started without the collector exposed (`deno run` without
 * the server's V8 settings, tests): nothing is done then.
 */
export function releaseStartupMemory(): boolean {
  const collector = findCollector();
  if (collector === undefined) return false;
  collector({ type: "major", execution: "sync", flavor: "last-resort" });
  return true;
}
