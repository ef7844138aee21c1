/**
 * A new user's first five minutes, run as the real processes they would start (issue 17 item 5):
 * `deno task start` and `deno task dev` print where to go in plain words before any JSON log line
 * and bind where they say; `--host` takes IPv6; `deno task compile --help` prints a usage; a broken
 * config file is reported with line and column; `--validate-config` names its file and refuses
 * unknown `SIGNAL_FISH_*` names; a port in use is one line; the runtime tasks install no test
 * dependency. Every process is bounded by a deadline and stopped by the test.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import denoJson from "../deno.json" with { type: "json" };
import { childEnv } from "./process.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = join(ROOT, "main.ts");
/** Longest wait for a process to print what a test waits for, ms. */
const DEADLINE_MS = 30_000;

/** A clean environment ({@linkcode childEnv}) without file logging. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  return childEnv({ SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING: "false", ...extra });
}

/**
 * A long-running process whose stdout and stderr share one pipe (`2>&1`), so the order of its
 * lines is the order they were written in. It runs in its own process group (`setsid`), so that
 * stopping it also stops what `deno task` started.
 */
class Merged implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  #text = "";
  #waiters: (() => void)[] = [];
  readonly #pump: Promise<void>;

  constructor(args: string[], env: Record<string, string> = {}) {
    const child = new Deno.Command("setsid", {
      args: ["/bin/sh", "-c", 'exec "$0" "$@" 2>&1', Deno.execPath(), ...args],
      cwd: ROOT,
      clearEnv: true,
      env: cleanEnv(env),
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.child = child;
    this.#pump = (async () => {
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        this.#text += chunk;
        for (const wake of this.#waiters.splice(0)) wake();
      }
      for (const wake of this.#waiters.splice(0)) wake();
    })();
  }

  get text(): string {
    return this.#text;
  }

  /** Resolves with the first match of `pattern` in the output; rejects after the deadline. */
  async waitFor(pattern: RegExp): Promise<RegExpExecArray> {
    const deadline = Date.now() + DEADLINE_MS;
    for (;;) {
      const found = pattern.exec(this.#text);
      if (found) return found;
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${pattern}; output so far:\n${this.#text}`);
      }
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#waiters.push(resolve);
      const timer = setTimeout(resolve, 250);
      await promise;
      clearTimeout(timer);
    }
  }

  #signalGroup(signal: Deno.Signal): void {
    try {
      Deno.kill(-this.child.pid, signal);
    } catch {
      // already gone
    }
  }

  /**
   * `signal` to the process group, then the exit status of the process; whatever is left of the
   * group is killed after the deadline (the process itself) or at once (its children).
   */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    this.#signalGroup(signal);
    const timer = setTimeout(() => this.#signalGroup("SIGKILL"), DEADLINE_MS);
    const status = await this.child.status;
    clearTimeout(timer);
    this.#signalGroup("SIGKILL");
    await this.#pump;
    return status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Runs a short-lived `deno <args>` to completion in `cwd` (the repository by default) with a
 * clean environment plus `env`, bounded by the deadline; resolves with its code and output.
 */
async function run(args: string[], env: Record<string, string> = {}, cwd: string = ROOT) {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    clearEnv: true,
    env: cleanEnv(env),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), DEADLINE_MS);
  const { code, stdout, stderr } = await child.output();
  clearTimeout(timer);
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

function serverArgs(...args: string[]): string[] {
  return ["run", "--allow-net", "--allow-read", "--allow-env", MAIN, ...args];
}

/** The parsed JSON log lines of `text` (other lines skipped). */
function jsonLines(text: string): Record<string, unknown>[] {
  return text.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
}

function ipv6Loopback(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test("deno task start --port 0: URL, demo page, health and docs in plain words before any JSON log line", async () => {
  await using server = new Merged(["task", "start", "--port", "0"]);
  const listening = await server.waitFor(/^\{.*"message":"Listening on .*\n/m);
  const before = server.text.slice(0, listening.index);
  ok(!before.split("\n").some((line) => line.startsWith("{")), "no JSON line before the banner");
  const port = Number(/"port":(\d+)/.exec(listening[0])?.[1]);
  ok(port > 0);
  const url = `http://127.0.0.1:${port}`;
  match(before, new RegExp(`Signal Fish ${denoJson.version.replaceAll(".", "\\.")} is running`));
  match(before, new RegExp(`Demo page: +${url}/ `));
  match(before, new RegExp(`WebSocket: +ws://127\\.0\\.0\\.1:${port}/v2/ws `));
  match(before, new RegExp(`Health: +${url}/v2/health\n`));
  match(before, /Docs: +README\.md, docs\/protocol\.md .*docs\/spec\//);
  // `start` keeps the all-interfaces default and says so.
  match(before, /Listening on every IPv4 interface \(0\.0\.0\.0\)/);
  equal(jsonLines(listening[0])[0]!.hostname, "0.0.0.0");
  // The links work.
  const page = await fetch(`${url}/`);
  equal(page.status, 200);
  match(page.headers.get("content-type") ?? "", /text\/html/);
  await page.body?.cancel();
  const health = await fetch(`${url}/v2/health`);
  equal(await health.text(), "OK");
  equal((await server.stop()).code, 0);
});

Deno.test("deno task dev binds 127.0.0.1 and --host takes an IPv6 address", async () => {
  {
    await using dev = new Merged(["task", "dev", "--port", "0"]);
    const listening = await dev.waitFor(/^\{.*"message":"Listening on .*\n/m);
    equal(jsonLines(listening[0])[0]!.hostname, "127.0.0.1");
    match(dev.text, /Listening on 127\.0\.0\.1 only/);
    // The file watcher outlives the server it restarts; stop the whole group.
    await dev.stop("SIGKILL");
  }
  if (!ipv6Loopback()) {
    console.warn("no IPv6 loopback here: the ::1 half of this test is skipped");
    return;
  }
  await using v6 = new Merged(serverArgs("--port", "0", "--host", "::1"));
  const health = await v6.waitFor(/Health: +(http:\/\/\[::1\]:\d+\/v2\/health)\n/);
  equal(await (await fetch(health[1]!)).text(), "OK");
  const listening = await v6.waitFor(/^\{.*"message":"Listening on .*\n/m);
  equal(jsonLines(listening[0])[0]!.hostname, "::1");
});

Deno.test("deno task compile --help prints the usage; a bad target is one line, no stack trace", async () => {
  const help = await run(["task", "compile", "--help"]);
  equal(help.code, 0);
  match(help.stdout, /^Usage: deno task compile \[--dry-run\] \[target \.\.\.\]/);
  match(help.stdout, /x86_64-unknown-linux-gnu +linux-x64/);
  ok(!/\n\s+at |Uncaught/.test(help.stderr), help.stderr);
  const bad = await run(["task", "compile", "x86"]);
  equal(bad.code, 2);
  match(bad.stderr, /error: unknown target "x86"/);
  ok(!/\n\s+at |Uncaught/.test(bad.stderr), bad.stderr);
});

Deno.test("a config file with a JSON syntax error is reported with line and column", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "config.json");
    await Deno.writeTextFile(file, '{\n  "port": 3536,\n  "server": { "host": "::1", }\n}\n');
    const { code, stderr, stdout } = await run(serverArgs("--config", file));
    equal(code, 2);
    equal(stdout, "");
    equal(
      stderr,
      `Error: invalid configuration: config file ${file} is not valid JSON: syntax error at ` +
        "line 3, column 30\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--validate-config names the file it loaded and exits 2 on an unknown SIGNAL_FISH_ name", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "game.json");
    await Deno.writeTextFile(file, '{"port": 4100, "server": {"host": "127.0.0.1"}}');
    const good = await run(serverArgs("--validate-config", "--config", file));
    equal(good.code, 0);
    match(good.stdout, /^Configuration validation passed\n/);
    match(good.stdout, new RegExp(`\n  Config file: ${file.replaceAll("/", "\\/")}\n`));
    match(good.stdout, /\n {2}Bind address: 127\.0\.0\.1\n/);

    const typo = await run(serverArgs("--validate-config", "--config", file), {
      SIGNAL_FISH_SERVER__MAX_PLAYERS: "4",
    });
    equal(typo.code, 2);
    equal(typo.stdout, "");
    match(typo.stderr, /^Configuration validation failed:\n/);
    match(
      typo.stderr,
      /environment variable SIGNAL_FISH_SERVER__MAX_PLAYERS is not a configuration key \(did you mean SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS\?\)\n/,
    );
    match(typo.stderr, new RegExp(`\nConfig file: ${file.replaceAll("/", "\\/")}\n$`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a port in use is one line naming it, exit 1, no stack trace and no JSON line", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = taken.addr.port;
  const { code, stdout, stderr } = await run(
    serverArgs("--host", "127.0.0.1", "--port", `${port}`),
  );
  equal(code, 1);
  equal(stdout, "");
  const output = stdout + stderr;
  equal(output.split(String(port)).length - 1, 1, output);
  match(
    stderr,
    new RegExp(
      `^Error: cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`,
      "m",
    ),
  );
  ok(!/\n\s+at |Uncaught/.test(stderr), stderr);
});

/** Package names (`zod@4.6.7` → `zod`) of a lockfile's npm section. */
function lockedPackages(path: string): Map<string, string> {
  const lock = JSON.parse(Deno.readTextFileSync(path)) as { npm?: Record<string, unknown> };
  return new Map(
    Object.keys(lock.npm ?? {}).map((key) => {
      const at = key.lastIndexOf("@");
      return [key.slice(0, at), key.slice(at + 1)] as const;
    }),
  );
}

Deno.test("deno.lock holds the runtime dependencies only; tests/deno.lock agrees on their versions", () => {
  const runtime = lockedPackages(join(ROOT, "deno.lock"));
  const tests = lockedPackages(join(ROOT, "tests/deno.lock"));
  const scoped = testOnlyPackages();
  ok(scoped.includes("playwright-core"), "playwright-core is a tests/-scoped import");
  for (const name of scoped) {
    ok(
      !runtime.has(name!),
      `${name} is a test-only dependency but is in deno.lock: restore deno.lock and run that test ` +
        "with `deno task test` (which uses tests/deno.lock)",
    );
  }
  for (const [specifier] of Object.entries(denoJson.imports)) {
    ok(runtime.has(specifier), `deno.json import ${specifier} is locked in deno.lock`);
  }
  const disagreements = [...runtime].filter(([name, version]) => tests.get(name) !== version);
  deepEqual(disagreements, [], "tests/deno.lock locks the same versions as deno.lock");
});

/** The packages `deno.json` maps for `tests/` only (its "scopes"). */
function testOnlyPackages(): string[] {
  return Object.values(denoJson.scopes ?? {}).flatMap((map) =>
    Object.values(map as Record<string, string>)
  ).map((specifier) => /^npm:(@?[^@]+)/.exec(specifier)![1]!);
}

Deno.test("deno task start and compile on a fresh copy install no test dependency", async () => {
  const testOnly = testOnlyPackages();
  ok(testOnly.includes("playwright-core"), `${testOnly}`);
  const dir = await Deno.makeTempDir();
  try {
    for (const path of ["deno.json", "deno.lock", "main.ts"]) {
      await Deno.copyFile(join(ROOT, path), join(dir, path));
    }
    for (const folder of ["src", "static", "scripts"]) {
      await new Deno.Command("cp", { args: ["-r", join(ROOT, folder), dir] }).output();
    }
    await Deno.mkdir(join(dir, "tests"));
    // Packages come from the test process's cache, where the test-only ones are too: had a task
    // wanted one, it would be in node_modules.
    const task = (...args: string[]) => run(["task", ...args], {}, dir);
    const start = await task("start", "--version");
    equal(start.code, 0, start.stderr);
    equal(start.stdout, `signal-fish-server ${denoJson.version}\n`);
    const compile = await task("compile", "--dry-run", "x86_64-unknown-linux-gnu");
    equal(compile.code, 0, compile.stderr);
    match(compile.stdout, /^deno compile --frozen /);
    const installed = [...Deno.readDirSync(join(dir, "node_modules/.deno"))].map((e) => e.name);
    ok(
      installed.some((name) => name.startsWith("zod@")),
      `runtime packages installed: ${installed}`,
    );
    const output = start.stderr + compile.stderr;
    for (const name of testOnly) {
      const folder = name.replace("/", "+");
      deepEqual(installed.filter((entry) => entry.startsWith(`${folder}@`)), [], output);
      ok(!output.includes(name), output);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
