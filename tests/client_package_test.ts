/**
 * The published-style client package (`deno task build:client`, scripts/build_client.ts) and
 * the README's four ways to use it — a browser page, Deno, Node.js ≥ 20 and a bundler (esbuild) —
 * each run as written in README.md (only the server address is replaced) against a live server.
 *
 * Node and Chromium are optional locally (those tests are skipped without them); esbuild comes
 * from npm as a test dependency.
 *
 * @module
 */
import { equal, match, ok } from "node:assert/strict";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";
import { buildClient, PACKAGE_NAME } from "../scripts/build_client.ts";
import { lookupRoom } from "../src/client/client.ts";
import type { SignalFishServer } from "../src/server.ts";
import { serve } from "./helpers.ts";

const ROOT = new URL("../", import.meta.url);
const README_ADDRESS = "http://127.0.0.1:3536";
const CHROMIUM = "/usr/bin/chromium";
const ROOM_LINE = /^room ([A-Z0-9]{6})$/m;
/** Set by .ci/run: a missing Chromium fails the browser example instead of skipping it. */
const REQUIRE_BROWSER = Deno.env.get("SIGNAL_FISH_REQUIRE_BROWSER") === "1";

function installed(command: string, args: string[]): string | undefined {
  try {
    const { success, stdout } = new Deno.Command(command, { args, stdout: "piped", stderr: "null" })
      .outputSync();
    return success ? new TextDecoder().decode(stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

const NODE_MAJOR = Number(installed("node", ["--version"])?.match(/^v(\d+)/)?.[1] ?? 0);
const HAS_NPM = installed("npm", ["--version"]) !== undefined;
const HAS_CHROMIUM = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();

/** The fenced code block after `<!-- example:NAME -->` in README.md. */
async function readmeExample(name: string): Promise<string> {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const found = readme.match(
    new RegExp(`<!-- example:${name} -->\\s*\`\`\`[a-z]*\\n([\\s\\S]*?)\`\`\``),
  );
  ok(found, `README.md has no example "${name}"`);
  return found[1]!;
}

/** The example with the README's server address replaced by `server`'s. */
async function example(name: string, server: SignalFishServer): Promise<string> {
  const code = await readmeExample(name);
  ok(code.includes(README_ADDRESS), `example ${name} talks to ${README_ADDRESS}`);
  return code.replaceAll(README_ADDRESS, server.url);
}

let built: Promise<string> | undefined;

/** Builds the package once per test run into a temporary directory. */
function packageDir(): Promise<string> {
  built ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "signal-fish-client-pkg-" });
    await buildClient(dir);
    return dir;
  })();
  return built;
}

async function run(command: string, args: string[], cwd: string) {
  const output = await new Deno.Command(command, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** Checks that `stdout` names a room the server really has. */
async function assertRoomCreated(server: SignalFishServer, stdout: string): Promise<void> {
  const code = stdout.match(ROOM_LINE)?.[1];
  ok(code, `expected "room CODE" in ${JSON.stringify(stdout)}`);
  const summary = await lookupRoom(server.url, "orbit", code);
  equal(summary?.room_code, code, "the room exists on the server");
}

/** A temporary npm project with the built package installed, as the README says. */
async function npmProject(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-npm-" });
  await Deno.writeTextFile(`${dir}/package.json`, '{"name":"game","private":true,"type":"module"}');
  const result = await run(
    "npm",
    ["install", "--offline", "--no-audit", "--no-fund", "--silent", await packageDir()],
    dir,
  );
  equal(result.code, 0, result.stderr);
  return dir;
}

function nodeFlags(): string[] {
  return NODE_MAJOR < 22 ? ["--experimental-websocket", "--no-warnings"] : [];
}

Deno.test("deno task build:client emits an ES module, its declarations and a package.json", async () => {
  const dir = await packageDir();
  const pkg = JSON.parse(await Deno.readTextFile(`${dir}/package.json`));
  equal(pkg.name, PACKAGE_NAME);
  equal(pkg.type, "module");
  equal(pkg.exports["."].types, "./index.d.ts");
  equal(pkg.exports["."].default, "./index.js");
  const js = await Deno.readTextFile(`${dir}/index.js`);
  ok(js.startsWith('/* @ts-self-types="./index.d.ts" */'), "Deno finds the types");
  ok(!/^\s*import\b/m.test(js), "self-contained");
  // The same build as the bundle the server serves.
  ok(js.endsWith(await Deno.readTextFile(new URL("static/client.js", ROOT))));
  const types = await Deno.readTextFile(`${dir}/index.d.ts`);
  for (const name of ["class SignalFishClient", "resume()", "join(", "interface SessionStore"]) {
    ok(types.includes(name), `declarations include ${name}`);
  }
  ok(!/^\s*(import|export .* from)\b/m.test(types), "one self-contained declaration file");
  // What index.js exports, declared: the error codes are a value of both (the list the
  // protocol's `error_code` fields take, docs/spec/PROTOCOL.md §9).
  ok(
    /^\s*ERROR_CODES,?$/m.test(js.slice(js.lastIndexOf("export {"))),
    "index.js exports ERROR_CODES",
  );
  ok(/declare const ERROR_CODES: readonly \[/.test(types), "declarations have ERROR_CODES");
  const task =
    JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).tasks["build:client"];
  ok(task.includes("scripts/build_client.ts"), task);
});

Deno.test("README example: Deno imports the served bundle, or the built file with its types", async () => {
  await using server = await serve();
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-deno-" });
  try {
    const code = await example("deno", server);
    const host = new URL(server.url).host;
    await Deno.writeTextFile(`${dir}/play.ts`, code);
    const remote = await run(
      Deno.execPath(),
      ["run", "--allow-net", `--allow-import=${host}`, "play.ts"],
      dir,
    );
    equal(remote.code, 0, remote.stderr);
    await assertRoomCreated(server, remote.stdout);

    // The local file: same code, and `deno check` sees the declarations.
    const local = code.replace(`${server.url}/client.js`, `${await packageDir()}/index.js`);
    await Deno.writeTextFile(`${dir}/local.ts`, local);
    const ran = await run(Deno.execPath(), ["run", "--allow-net", "--check", "local.ts"], dir);
    equal(ran.code, 0, ran.stderr);
    await assertRoomCreated(server, ran.stdout);
    await Deno.writeTextFile(`${dir}/wrong.ts`, `${local}\nconst n: number = room.room_code;\n`);
    const wrong = await run(Deno.execPath(), ["check", "wrong.ts"], dir);
    ok(wrong.code !== 0, "a type error in the app is caught");
    match(wrong.stderr, /TS2322/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "README example: Node.js ≥ 20 imports the installed package",
  ignore: NODE_MAJOR < 20 || !HAS_NPM,
  async fn() {
    await using server = await serve();
    const dir = await npmProject();
    try {
      await Deno.writeTextFile(`${dir}/play.mjs`, await example("node", server));
      const result = await run("node", [...nodeFlags(), "play.mjs"], dir);
      equal(result.code, 0, result.stderr);
      await assertRoomCreated(server, result.stdout);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "README example: esbuild bundles the package into an app that runs",
  ignore: NODE_MAJOR < 20 || !HAS_NPM,
  async fn() {
    await using server = await serve();
    const dir = await npmProject();
    try {
      await Deno.writeTextFile(`${dir}/app.js`, await example("bundler", server));
      try {
        await esbuild.build({
          absWorkingDir: dir,
          entryPoints: ["app.js"],
          bundle: true,
          format: "esm",
          platform: "neutral",
          outfile: "app.bundle.js",
          logLevel: "silent",
        });
      } finally {
        await esbuild.stop();
      }
      const bundled = await Deno.readTextFile(`${dir}/app.bundle.js`);
      ok(bundled.includes('"/v2/ws"'), "the client was bundled in");
      ok(!bundled.includes("@signal-fish/client"), "the package import was resolved");
      ok(!/^\s*import\b/m.test(bundled), "nothing left to resolve at run time");
      const result = await run("node", [...nodeFlags(), "app.bundle.js"], dir);
      equal(result.code, 0, result.stderr);
      await assertRoomCreated(server, result.stdout);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "README example: a web page imports /client.js from the server",
  ignore: !HAS_CHROMIUM && !REQUIRE_BROWSER,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using server = await serve();
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run"],
    });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(String(error)));
      // Any page of another origin: the bundle is served with CORS for module imports.
      await page.goto(`${server.url}/v2/health`);
      await page.setContent(`<!doctype html><body></body>${await example("browser", server)}`);
      await page.waitForFunction(
        // deno-lint-ignore no-explicit-any
        () => /^room [A-Z0-9]{6}$/.test((globalThis as any).document.body.textContent),
        undefined,
        { timeout: 15_000 },
      );
      const text = await page.evaluate(() =>
        // deno-lint-ignore no-explicit-any
        (globalThis as any).document.body.textContent as string
      );
      equal(errors.length, 0, errors.join("\n"));
      await assertRoomCreated(server, text);
    } finally {
      await browser.close();
    }
  },
});

globalThis.addEventListener("unload", () => {
  void built?.then((dir) => Deno.remove(dir, { recursive: true })).catch(() => {});
});
