import { deepEqual, equal, ok } from "node:assert/strict";
import { RUNTIME_V8_FLAGS, V8_FLAGS_ARG } from "../../scripts/permissions.ts";
import { COLLECTOR_GLOBAL } from "./startup_memory.ts";

const MODULE = new URL("./startup_memory.ts", import.meta.url).href;

/**
 * Runs, in a fresh Deno with `v8Flags`, a script that leaves ~40 MB of garbage in the old
 * generation (arrays kept across scavenges, then dropped) and calls releaseStartupMemory();
 * returns what it reports: whether it ran and the committed heap before and after, bytes.
 */
async function runAfterGarbage(
  v8Flags: string[],
): Promise<{ ran: boolean; before: number; after: number }> {
  const script = `
    import { releaseStartupMemory } from ${JSON.stringify(MODULE)};
    let kept = [];
    for (let i = 0; i < 400; i++) {
      kept.push(Array.from({ length: 10_000 }, (_, k) => ({ k })));
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    kept = null;
    const before = Deno.memoryUsage().heapTotal;
    const ran = releaseStartupMemory();
    const after = Deno.memoryUsage().heapTotal;
    console.log(JSON.stringify({ ran, before, after }));
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-lock", ...v8Flags.map((flag) => `--v8-flags=${flag}`), "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = output.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const { code, stdout, stderr } = await output.output();
  equal(code, 0, new TextDecoder().decode(stderr));
  return JSON.parse(new TextDecoder().decode(stdout));
}

Deno.test("the server's V8 settings expose the collector under the name the module reads", () => {
  ok(RUNTIME_V8_FLAGS.includes(`--expose-gc-as=${COLLECTOR_GLOBAL}`));
  ok(V8_FLAGS_ARG.includes(`--expose-gc-as=${COLLECTOR_GLOBAL}`));
});

Deno.test("releaseStartupMemory() hands dropped heap back under the server's V8 settings", async () => {
  const { ran, before, after } = await runAfterGarbage([RUNTIME_V8_FLAGS.join(",")]);
  equal(ran, true);
  // ~40 MB were dropped; the collection returns most of the pages that held them.
  ok(after < before - 20 * 1024 * 1024, `committed heap ${before} → ${after} bytes`);
});

Deno.test("releaseStartupMemory() does nothing without the collector exposed", async () => {
  const flags = RUNTIME_V8_FLAGS.filter((flag) => !flag.startsWith("--expose-gc-as="));
  const { ran, before, after } = await runAfterGarbage([flags.join(",")]);
  deepEqual({ ran, shrunk: after < before - 20 * 1024 * 1024 }, { ran: false, shrunk: false });
});
