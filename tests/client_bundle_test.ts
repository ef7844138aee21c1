/**
 * The bundled client served at `/client.js`: the committed `static/client.js` (the repository's
 * one generated file) matches a fresh `deno task bundle`, is self-contained, works when imported,
 * and is served with the demo page.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { serve } from "./helpers.ts";

const ROOT = new URL("../", import.meta.url);
const BUNDLE = new URL("static/client.js", ROOT);

Deno.test("static/client.js is up to date with src/client (run `deno task bundle`)", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const task: string = config.tasks.bundle;
  ok(task.includes("-o static/client.js"), task);
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-bundle-" });
  try {
    const output = `${dir}/client.js`;
    const bundleCommand = task.split(" && ")[0]!;
    const args = bundleCommand.replace("-o static/client.js", `-o ${output}`).split(" ").slice(1);
    const result = await new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    equal(result.code, 0, new TextDecoder().decode(result.stderr));
    const fresh = await Deno.readTextFile(output);
    const committed = await Deno.readTextFile(BUNDLE);
    ok(fresh === committed, "static/client.js is stale: run `deno task bundle` and commit it");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("static/client.js is self-contained and works when imported", async () => {
  const source = await Deno.readTextFile(BUNDLE);
  ok(!/^\s*import\b/m.test(source), "the bundle imports nothing");
  ok(!source.includes("zod"), "no server-side dependency is bundled");
  const bundle = await import(BUNDLE.href);
  for (const name of ["SignalFishClient", "SignalFishError", "SignalFishConnectionError"]) {
    equal(typeof bundle[name], "function", name);
  }
  await using server = await serve();
  const client = await bundle.SignalFishClient.connect(server.url, { heartbeatIntervalMs: 0 });
  try {
    const room = await client.createRoom({ game_name: "orbit", player_name: "bundled" });
    equal(client.room.roomCode, room.room_code);
    await client.joinRoom({ game_name: "orbit", room_code: "ABCDEF", player_name: "x" }).then(
      () => ok(false, "expected ALREADY_IN_ROOM"),
      (error: { code: string; name: string }) => {
        deepEqual([error.name, error.code], ["SignalFishError", "ALREADY_IN_ROOM"]);
      },
    );
  } finally {
    await client.close();
  }
});

Deno.test("GET /, /demo.js and /client.js serve the demo page and the bundle", async () => {
  await using server = await serve();
  const page = await fetch(`${server.url}/`);
  equal(page.status, 200);
  equal(page.headers.get("content-type"), "text/html; charset=utf-8");
  ok((await page.text()).includes('<script type="module" src="/demo.js"></script>'));

  const demo = await fetch(`${server.url}/demo.js`);
  equal(demo.headers.get("content-type"), "text/javascript; charset=utf-8");
  ok((await demo.text()).includes('from "/client.js"'));

  const bundle = await fetch(`${server.url}/client.js`);
  equal(bundle.status, 200);
  equal(bundle.headers.get("content-type"), "text/javascript; charset=utf-8");
  equal(bundle.headers.get("cache-control"), "no-cache");
  equal(bundle.headers.get("access-control-allow-origin"), "*");
  equal(await bundle.text(), await Deno.readTextFile(BUNDLE));
  const etag = bundle.headers.get("etag");
  ok(etag !== null && /^"[0-9a-f]{8}-\d+"$/.test(etag), `etag ${etag}`);

  const revalidated = await fetch(`${server.url}/client.js`, {
    headers: { "if-none-match": `"other", ${etag}` },
  });
  equal(revalidated.status, 304);
  equal(await revalidated.text(), "");
  const changed = await fetch(`${server.url}/client.js`, { headers: { "if-none-match": '"x"' } });
  equal(changed.status, 200);
  await changed.body?.cancel();

  const head = await fetch(`${server.url}/client.js`, { method: "HEAD" });
  equal(head.status, 200);
  equal(await head.text(), "");
  const post = await fetch(`${server.url}/client.js`, { method: "POST" });
  equal(post.status, 405);
  equal(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
});
