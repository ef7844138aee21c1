/**
 * Guards the layering of `src/` (issue 13 item 5): fails on an import cycle between our modules or
 * on an import in a forbidden direction, read from Deno's own module graph (`deno info --json`).
 * Type-only imports count: they couple the layers as much as value imports do.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-run --allow-env scripts/check_layers.ts
 * ```
 *
 * A module's layer is its first folder under `src/` (`src/engine/rooms.ts` → `engine`), or the
 * file's name for modules directly in `src/` (`src/server.ts` → `server`). Tests (`*_test.ts`) are
 * left out: they may reach across layers to build what they test.
 *
 * @module
 */

/** The part of `deno info --json` this check reads. */
export interface ModuleGraph {
  modules: {
    specifier: string;
    dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
  }[];
}

/**
 * Layer → the layers it must not import (docs/spec/SERVER.md has no layering section; issue 13 item 5 and
 * the architecture review's target layout set these). `"*"` forbids every layer but its own.
 */
export const FORBIDDEN: Readonly<Record<string, readonly string[] | "*">> = {
  engine: ["transport", "http", "coordination", "config", "metrics", "server", "cli"],
  protocol: ["engine", "transport", "http", "coordination", "config", "metrics", "server"],
  metrics: ["http", "server"],
  client: ["engine", "transport", "http", "coordination", "config", "metrics", "server", "cli"],
  util: "*",
};

/** The layer of a `file:` specifier under `root` (a `file:` URL ending in `/`), else undefined. */
export function layerOf(specifier: string, root: string): string | undefined {
  if (!specifier.startsWith(root)) return undefined;
  const rest = specifier.slice(root.length);
  const slash = rest.indexOf("/");
  return slash >= 0 ? rest.slice(0, slash) : rest.replace(/\.[cm]?[jt]sx?$/, "");
}

function isTest(specifier: string): boolean {
  return /_test\.[cm]?[jt]sx?$/.test(specifier);
}

/**
 * Every violation in `graph` for the modules under `root` (the `file:` URL of `src/`, ending in
 * `/`): one line per forbidden edge (`engine → http: src/engine/a.ts imports src/http/b.ts`) and
 * one per import cycle (`cycle: a.ts → b.ts → a.ts`). Empty when the layering holds.
 */
export function findViolations(graph: ModuleGraph, root: string): string[] {
  const short = (specifier: string) => specifier.slice(root.length);
  const edges = new Map<string, string[]>();
  for (const module of graph.modules) {
    if (!module.specifier.startsWith(root) || isTest(module.specifier)) continue;
    const targets = new Set<string>();
    for (const dependency of module.dependencies ?? []) {
      for (const target of [dependency.code?.specifier, dependency.type?.specifier]) {
        if (target?.startsWith(root) && !isTest(target)) targets.add(target);
      }
    }
    edges.set(module.specifier, [...targets].sort());
  }

  const violations: string[] = [];
  for (const [from, targets] of [...edges].sort(([a], [b]) => a.localeCompare(b))) {
    const layer = layerOf(from, root)!;
    const forbidden = FORBIDDEN[layer];
    if (forbidden === undefined) continue;
    for (const to of targets) {
      const target = layerOf(to, root)!;
      if (target === layer) continue;
      if (forbidden === "*" || forbidden.includes(target)) {
        violations.push(`${layer} → ${target}: src/${short(from)} imports src/${short(to)}`);
      }
    }
  }

  // Depth-first search; a back edge to a module on the stack closes a cycle.
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const cycles = new Set<string>();
  const visit = (module: string) => {
    state.set(module, "open");
    stack.push(module);
    for (const next of edges.get(module) ?? []) {
      const seen = state.get(next);
      if (seen === "open") {
        const cycle = stack.slice(stack.indexOf(next));
        // Start each cycle at its smallest module, so one cycle is reported once.
        const first = cycle.indexOf([...cycle].sort()[0]!);
        const rotated = [...cycle.slice(first), ...cycle.slice(0, first)];
        cycles.add(`cycle: ${[...rotated, rotated[0]!].map(short).join(" → ")}`);
      } else if (seen === undefined) {
        visit(next);
      }
    }
    stack.pop();
    state.set(module, "done");
  };
  for (const module of [...edges.keys()].sort()) if (!state.has(module)) visit(module);
  return [...violations, ...[...cycles].sort()];
}

/** Every non-test `.ts` module under `dir` (a `file:` URL ending in `/`), as `file:` URLs. */
function sourceModules(dir: URL): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    if (entry.isDirectory) out.push(...sourceModules(new URL(`${entry.name}/`, dir)));
    else if (entry.name.endsWith(".ts") && !isTest(entry.name)) {
      out.push(new URL(entry.name, dir).href);
    }
  }
  return out;
}

/** Runs `deno info --json` on one temporary module that imports every module of `src`. */
async function readGraph(src: URL): Promise<ModuleGraph> {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-layers-" });
  try {
    const entry = `${dir}/entry.ts`;
    const imports = sourceModules(src).sort().map((href) => `import ${JSON.stringify(href)};`);
    await Deno.writeTextFile(entry, imports.join("\n") + "\n");
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "info",
        "--json",
        "--config",
        new URL("../deno.json", import.meta.url).pathname,
        entry,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      throw new Error(`deno info failed: ${new TextDecoder().decode(output.stderr)}`);
    }
    return JSON.parse(new TextDecoder().decode(output.stdout));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const src = new URL("../src/", import.meta.url);
  const graph = await readGraph(src);
  const violations = findViolations(graph, src.href);
  const checked = graph.modules.filter((m) => m.specifier.startsWith(src.href)).length;
  if (violations.length > 0) {
    console.error(`Layering check failed (${violations.length}):`);
    for (const line of violations) console.error(`  ${line}`);
    Deno.exit(1);
  }
  console.log(`Layering check passed: ${checked} modules, no cycle, no forbidden import`);
}
