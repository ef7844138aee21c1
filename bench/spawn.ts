/**
 * Starts a server under test as a child process on a free loopback port: ours (`main.ts`) or
 * the baseline (`bench/baseline.ts`), optionally pinned to a CPU core and with a raised
 * file-descriptor limit.
 *
 * @module
 */

import { V8_FLAGS_ARG } from "../scripts/permissions.ts";
import type { Library } from "./baseline.ts";

/** Which server to start. */
export type ServerKind = "ours" | "baseline";

/** Options of {@linkcode spawnServer}. */
export interface SpawnOptions {
  /** CPU core to pin the server to with `taskset -c`; undefined = not pinned. */
  core?: number;
  /** Open-file limit set with `ulimit -n` before the server starts; undefined = inherited. */
  nofile?: number;
  /** Extra environment for the server (e.g. `SIGNAL_FISH_LOGGING__LEVEL`). */
  env?: Record<string, string>;
  /**
   * Directory for a V8 CPU profile of the server (`deno run --cpu-prof`), written when it
   * stops; undefined = no profile.
   */
  cpuProfDir?: string;
  /**
   * The baseline's transport: `deno` (`Deno.serve`, the thin relay of the targets) or `ws`
   * (`node:http` + `npm:ws`, ours' transport). Ignored for ours. @default "deno"
   */
  baselineTransport?: "deno" | "ws";
  /**
   * Libraries the baseline loads before it serves (`bench/baseline.ts --libraries`): none, or
   * some of those ours carries. Ignored for ours. @default []
   */
  baselineLibraries?: readonly Library[];
  /** How long to wait for `/v2/health`, ms. @default 30000 */
  readyTimeoutMs?: number;
}

/** A running server process. `await using` stops it. */
export interface SpawnedServer extends AsyncDisposable {
  kind: ServerKind;
  /** Process id of the Deno process serving (for `/proc` sampling). */
  pid: number;
  /** WebSocket endpoint, e.g. `ws://127.0.0.1:40123/v2/ws`. */
  wsUrl: string;
  /** The exact command line, for the report. */
  command: string;
  /** SIGTERM, then SIGKILL after 15 s; resolves when the process is gone. */
  close(): Promise<void>;
}

const ROOT = new URL("../", import.meta.url).pathname;

/**
 * Settings ours needs to be load-tested from one IP: every generator socket shares 127.0.0.1,
 * so the per-IP connection cap (default 10) and the per-IP room-creation and join buckets
 * (default 5 and 20 per minute) go up, and so does the per-IP share of a game's rooms (default 20
 * live rooms per address, SECURITY.md). The global connection cap defaults to the open-file limit
 * minus 10 % (18,000 under `ulimit -n 20000`), so it is set just under the 20,000 descriptors
 * the 19,000-connection run gets. Everything else keeps its default.
 */
export const OURS_ENV: Record<string, string> = {
  SIGNAL_FISH_SECURITY__MAX_CONNECTIONS_PER_IP: "1000000",
  SIGNAL_FISH_SECURITY__MAX_CONNECTIONS: "19900",
  // Every generated client comes from 127.0.0.1, hundreds of handshakes at once.
  SIGNAL_FISH_SECURITY__HTTP__MAX_PENDING_CONNECTIONS: "100000",
  SIGNAL_FISH_SECURITY__HTTP__MAX_PENDING_CONNECTIONS_PER_IP: "100000",
  SIGNAL_FISH_RATE_LIMIT__MAX_ROOM_CREATIONS: "1000000000",
  SIGNAL_FISH_RATE_LIMIT__MAX_JOIN_ATTEMPTS: "1000000000",
  SIGNAL_FISH_SERVER__MAX_ROOMS_PER_IP: "1000000",
  SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING: "false",
};

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The argv that runs `kind` on `port` (before any pinning or limit). */
export function serverArgv(
  kind: ServerKind,
  port: number,
  cpuProfDir?: string,
  baselineTransport: "deno" | "ws" = "deno",
  baselineLibraries: readonly Library[] = [],
): string[] {
  const libraries = baselineLibraries.length > 0;
  const prof = cpuProfDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`];
  return kind === "ours"
    ? [
      Deno.execPath(),
      "run",
      ...prof,
      "--allow-net",
      "--allow-read",
      "--allow-env",
      // The V8 settings ours ships with (scripts/permissions.ts); the baseline keeps Deno's.
      V8_FLAGS_ARG,
      `${ROOT}main.ts`,
      "--port",
      String(port),
    ]
    : [
      Deno.execPath(),
      "run",
      ...prof,
      "--allow-net",
      // `npm:` packages read their files, and `ws` an environment switch.
      ...(baselineTransport === "ws" || libraries ? ["--allow-read", "--allow-env"] : []),
      `${ROOT}bench/baseline.ts`,
      "--port",
      String(port),
      ...(baselineTransport === "ws" ? ["--transport", "ws"] : []),
      ...(libraries ? ["--libraries", baselineLibraries.join(",")] : []),
    ];
}

/**
 * Wraps `argv` so that it runs under `ulimit -n nofile` and `taskset -c core` when asked; the
 * shell and taskset both `exec`, so the child's pid is the final program's.
 */
export function wrapArgv(argv: string[], options: { core?: number; nofile?: number }): string[] {
  let wrapped = argv;
  if (options.core !== undefined) wrapped = ["taskset", "-c", String(options.core), ...wrapped];
  if (options.nofile !== undefined) {
    wrapped = ["bash", "-c", `ulimit -n ${options.nofile} && exec "$@"`, "bash", ...wrapped];
  }
  return wrapped;
}

/** Starts `kind` on a free loopback port and waits until `/v2/health` answers. */
export async function spawnServer(
  kind: ServerKind,
  options: SpawnOptions = {},
): Promise<SpawnedServer> {
  const port = freePort();
  const argv = wrapArgv(
    serverArgv(
      kind,
      port,
      options.cpuProfDir,
      options.baselineTransport,
      options.baselineLibraries,
    ),
    options,
  );
  const env = { NO_COLOR: "1", ...(kind === "ours" ? OURS_ENV : {}), ...options.env };
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const stderrDone = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      if (stderr.length < 20_000) stderr += chunk;
    }
  })();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const close = async () => {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }, 15_000);
      await status;
      clearTimeout(timer);
    }
    await stderrDone;
  };
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (exited) {
      await stderrDone;
      throw new Error(`Cannot start the ${kind} server: it exited early. stderr:\n${stderr}`);
    }
    try {
      const response = await fetch(`http://127.0.0.1:${port}/v2/health`);
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await close();
      throw new Error(`Cannot start the ${kind} server: no /v2/health within the timeout`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const envText = Object.entries(env).map(([k, v]) => `${k}=${shellQuote(v)}`).join(" ");
  return {
    kind,
    pid: child.pid,
    wsUrl: `ws://127.0.0.1:${port}/v2/ws`,
    command: `${envText} ${argv.map(shellQuote).join(" ")}`,
    close,
    [Symbol.asyncDispose]: close,
  };
}
