/**
 * Test helpers for the configuration modules: a fake file system and shorthands around
 * {@linkcode loadConfig}.
 *
 * @module
 */
import assert from "node:assert/strict";
import { loadConfig, type LoadOptions, type LoadResult } from "./load.ts";
import { type Config, DEFAULT_CONFIG } from "./schema.ts";

export const CWD = "/srv/app";
export const FILE = "/srv/app/config.json";

/** A fake file system: `files` maps absolute paths to contents; anything else is NotFound. */
export function reader(files: Record<string, string | object> = {}): (path: string) => string {
  return (path) => {
    const content = files[path];
    if (content === undefined) throw new Deno.errors.NotFound(`No such file: ${path}`);
    return typeof content === "string" ? content : JSON.stringify(content);
  };
}

export function load(
  files: Record<string, string | object> = {},
  env: Record<string, string> = {},
  options: Partial<LoadOptions> = {},
): LoadResult {
  return loadConfig({ env, cwd: CWD, readTextFile: reader(files), ...options });
}

export function loaded(result: LoadResult): { config: Config; warnings: string[] } {
  if (!result.ok) assert.fail(`expected a valid configuration, got:\n${result.errors.join("\n")}`);
  return result;
}

export function failed(result: LoadResult): string[] {
  if (result.ok) assert.fail("expected configuration errors");
  return result.errors;
}

/** DEFAULT_CONFIG with `patch` applied (deep, for objects; wholesale for arrays and scalars). */
export function withDefaults(patch: Record<string, unknown>): Config {
  const merge = (base: unknown, over: unknown): unknown =>
    typeof over === "object" && over !== null && !Array.isArray(over)
      ? Object.fromEntries(
        Object.entries({ ...(base as object), ...over }).map((
          [k, v],
        ) => [k, k in over ? merge((base as Record<string, unknown>)[k], v) : v]),
      )
      : over;
  return merge(structuredClone(DEFAULT_CONFIG), patch) as Config;
}
