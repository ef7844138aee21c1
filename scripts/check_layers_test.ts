import { deepEqual, equal } from "node:assert/strict";
import { findViolations, layerOf, type ModuleGraph } from "./check_layers.ts";

const ROOT = "file:///repo/src/";

/** A graph of `src/`-relative modules: module → the modules it imports (value, then type-only). */
function graph(edges: Record<string, string[]>, typeEdges: Record<string, string[]> = {}) {
  const names = new Set(
    [edges, typeEdges].flatMap((map) => [...Object.keys(map), ...Object.values(map).flat()]),
  );
  return {
    modules: [...names].map((name) => ({
      specifier: ROOT + name,
      dependencies: [
        ...(edges[name] ?? []).map((to) => ({ code: { specifier: ROOT + to } })),
        ...(typeEdges[name] ?? []).map((to) => ({ type: { specifier: ROOT + to } })),
        { code: { specifier: "npm:zod@^4" } },
      ],
    })),
  } satisfies ModuleGraph;
}

Deno.test("layerOf() is the first folder under src/, or the file's name at the top", () => {
  equal(layerOf(`${ROOT}engine/rooms.ts`, ROOT), "engine");
  equal(layerOf(`${ROOT}server.ts`, ROOT), "server");
  equal(layerOf("file:///repo/tests/x.ts", ROOT), undefined);
});

Deno.test("findViolations() passes a graph that keeps the layering", () => {
  deepEqual(
    findViolations(
      graph({
        "server.ts": ["http/routes.ts", "engine/engine.ts"],
        "http/routes.ts": ["transport/edge.ts", "metrics/registry.ts"],
        "transport/edge.ts": ["engine/engine.ts", "protocol/utf8.ts"],
        "engine/engine.ts": ["protocol/messages.ts", "util/secrets.ts"],
        "engine/engine_test.ts": ["http/routes.ts"], // tests may reach across
      }),
      ROOT,
    ),
    [],
  );
});

Deno.test("findViolations() fails on a forbidden direction, also through a type-only import", () => {
  deepEqual(
    findViolations(
      graph(
        {
          "engine/rooms.ts": ["http/routes.ts"],
          "protocol/codec.ts": ["engine/validation.ts"],
          "util/secrets.ts": ["protocol/utf8.ts"],
          "http/routes.ts": [],
        },
        { "metrics/registry.ts": ["http/auth.ts"] },
      ),
      ROOT,
    ),
    [
      "engine → http: src/engine/rooms.ts imports src/http/routes.ts",
      "metrics → http: src/metrics/registry.ts imports src/http/auth.ts",
      "protocol → engine: src/protocol/codec.ts imports src/engine/validation.ts",
      "util → protocol: src/util/secrets.ts imports src/protocol/utf8.ts",
    ],
  );
});

Deno.test("findViolations() fails on an import cycle, reported once from its smallest module", () => {
  deepEqual(
    findViolations(
      graph({
        "http/routes.ts": ["http/upgrade.ts"],
        "http/upgrade.ts": ["http/cors.ts"],
        "http/cors.ts": ["http/routes.ts"],
        "server.ts": ["http/routes.ts", "http/cors.ts"],
      }),
      ROOT,
    ),
    ["cycle: http/cors.ts → http/routes.ts → http/upgrade.ts → http/cors.ts"],
  );
});
