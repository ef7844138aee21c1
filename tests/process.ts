/**
 * Runs the real server (`main.ts`) as a subprocess for end-to-end tests of the executable:
 * permissions, signals, resource limits, TLS.
 *
 * @module
 */
import { ok } from "node:assert/strict";
import { RUNTIME_PERMISSIONS } from "../scripts/permissions.ts";

/** Absolute path of `main.ts`. */
export const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** How long to wait for the server's "Listening" log line, ms. */
const START_TIMEOUT_MS = 20_000;

/**
 * `deno run` arguments for `main.ts --port 0` with net, read, env and write permissions (the
 * logging and operator-API tests' set, broader than {@linkcode RUNTIME_PERMISSIONS}).
 */
export const MAIN_RUN_ARGS: readonly string[] = [
  "run",
  "--allow-net",
  "--allow-read",
  "--allow-env",
  "--allow-write",
  MAIN,
  "--port",
  "0",
];

/** What {@linkcode runMain} saw of the process. */
export interface MainRun {
  stdout: string;
  stderr: string;
  status: Deno.CommandStatus;
}

/**
 * Runs `main.ts` ({@linkcode MAIN_RUN_ARGS}, inheriting the environment plus `NO_COLOR=1` and
 * `env`) until its "Listening on host:port" line (asserted within 10 s), calls `session(port)`,
 * then stops it with SIGTERM and resolves once its output is read and it has exited. The exit
 * status is returned, not asserted.
 */
export async function runMain(
  env: Record<string, string>,
  session: (port: number) => Promise<void>,
): Promise<MainRun> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...MAIN_RUN_ARGS],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stdout = "";
  let port = 0;
  const deadline = Date.now() + 10_000;
  while (!port && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    stdout += value;
    port = Number(stdout.match(/Listening on [^:\s]+:(\d+)/)?.[1] ?? 0);
  }
  if (!(port > 0)) {
    child.kill("SIGKILL");
    await child.status;
    await child.stderr.cancel();
    await reader.cancel();
  }
  ok(port > 0, `no listening line in ${stdout}`);
  try {
    await session(port);
  } finally {
    child.kill("SIGTERM");
  }
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    stdout += value;
  }
  const stderr = await new Response(child.stderr).text();
  return { stdout, stderr, status: await child.status };
}

/** A running server process. */
export interface ServerProcess extends AsyncDisposable {
  readonly child: Deno.ChildProcess;
  /** The bound port, read from the JSON "Listening" log line. */
  readonly port: number;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit status once the process has ended and its output is read. */
  readonly exited: Promise<Deno.CommandStatus>;
}

/** Options of {@linkcode spawnServer}. */
export interface SpawnOptions {
  /** Extra server flags, after `--port 0`. */
  args?: string[];
  /** Environment of the server (nothing is inherited but PATH and HOME). */
  env?: Record<string, string>;
  /** Working directory. @default the test process's */
  cwd?: string;
  /** Deno permission flags. @default RUNTIME_PERMISSIONS (the compiled executables' set) */
  permissions?: readonly string[];
  /** Run through `sh -c 'ulimit -n <n>; exec deno …'` to lower the open-file limit. */
  openFileLimit?: number;
  /** Extra `deno run` flags before the permissions (e.g. `--cert`). */
  denoFlags?: string[];
}

/** Starts `main.ts --port 0` and waits until it listens. Kills it (SIGKILL) on dispose. */
export async function spawnServer(options: SpawnOptions = {}): Promise<ServerProcess> {
  const denoArgs = [
    "run",
    ...options.denoFlags ?? [],
    ...options.permissions ?? RUNTIME_PERMISSIONS,
    MAIN,
    "--port",
    "0",
    ...options.args ?? [],
  ];
  const [program, args] = options.openFileLimit === undefined
    ? [Deno.execPath(), denoArgs]
    : ["/bin/sh", [
      "-c",
      `ulimit -n ${options.openFileLimit} && exec "$0" "$@"`,
      Deno.execPath(),
      ...denoArgs,
    ]];
  const child = new Deno.Command(program, {
    args,
    cwd: options.cwd,
    clearEnv: true,
    env: childEnv(options.env),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const { promise: listening, resolve } = Promise.withResolvers<number>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const found = text.match(/"message":"Listening on [^\n]*"port":(\d+)/);
      if (found) resolve(Number(found[1]));
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const exited = pumps.then(() => child.status);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const port = await Promise.race([
    listening,
    exited.then((status) => {
      throw new Error(`Server exited with ${status.code} before listening:\n${text}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Server did not listen within ${START_TIMEOUT_MS} ms:\n${text}`)),
        START_TIMEOUT_MS,
      );
    }),
  ]).catch(async (error) => {
    clearTimeout(timer);
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await exited;
    throw error;
  });
  clearTimeout(timer);
  return {
    child,
    port,
    output: () => text,
    exited,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      await exited;
    },
  };
}

/** Resolves with the exit status, or with `undefined` if the process runs longer than `ms`. */
export async function exitWithin(
  server: ServerProcess,
  ms: number,
): Promise<Deno.CommandStatus | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const status = await Promise.race([
    server.exited,
    new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms)),
  ]);
  clearTimeout(timer);
  return status;
}

/**
 * The environment of a child server process (used with `clearEnv: true`): nothing inherited but
 * what deno needs (`PATH`, `HOME`, and `DENO_DIR`, where the npm cache lives), `NO_COLOR=1`, then
 * `extra`. `--validate-config` refuses `SIGNAL_FISH_*` variables that are not configuration keys,
 * such as the `SIGNAL_FISH_REQUIRE_*` that .ci/run sets, so children must not inherit them.
 */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/tmp",
    ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
    NO_COLOR: "1",
    ...extra,
  };
}

/**
 * Runs `deno <denoArgs>` to its end in {@linkcode childEnv} (`extra` on top; file logging off) and
 * returns its exit code and output as text. For one-shot runs of `main.ts` (`--validate-config`,
 * a start that must fail).
 */
export async function runDeno(
  denoArgs: string[],
  extra: Record<string, string> = {},
  cwd?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: denoArgs,
    cwd,
    clearEnv: true,
    env: childEnv({ SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING: "false", ...extra }),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code, stdout: text(stdout), stderr: text(stderr) };
}

/**
 * The first match of `pattern` in `server`'s output (stdout and stderr) within `ms`, polled every
 * 50 ms; fails with the whole output when none appears.
 */
export async function logged(server: ServerProcess, pattern: RegExp, ms = 5_000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = pattern.exec(server.output());
    if (found) return found[0];
    ok(Date.now() < deadline, `no ${pattern} within ${ms} ms in:\n${server.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** How many lines of `server`'s output match `pattern` so far. */
export function loggedLines(server: ServerProcess, pattern: RegExp): number {
  return server.output().split("\n").filter((line) => pattern.test(line)).length;
}
