/**
 * Signal Fish for Deno: a WebSocket signaling and relay server for peer-to-peer multiplayer
 * games. Reads the configuration (file, environment, flags), configures logging, serves until
 * SIGTERM, SIGINT or SIGHUP, then drains.
 *
 * ```sh
 * deno run --allow-net --allow-read --allow-env main.ts --port 3536 --host 127.0.0.1
 * ```
 *
 * @module
 */
import {
  compareLogLevel,
  configure,
  dispose,
  getLogger,
  type LogRecord,
  type Sink,
} from "@logtape/logtape";
import { addressInUseMessage, runCli, startupBanner } from "./src/cli.ts";
import type { Config } from "./src/config/schema.ts";
import { readConfigEnv } from "./src/config/load.ts";
import {
  formatJsonLine,
  formatTextLine,
  logLevel,
  type LogStats,
  newLogStats,
  openFileSink,
  openRateLimitedSink,
  openStdoutSink,
} from "./src/logging.ts";
import { setSuppressedLineCheck } from "./src/metrics/event_log.ts";
import { startServer, unsupportedSettings } from "./src/server.ts";

/**
 * Sets up logtape once for the whole process (docs/spec/SERVER.md §7): stdout in `logging.format`, plus
 * the rotating, size-capped file sink when `logging.enable_file_logging`, both behind the
 * per-event line rate limit (`logging.max_lines_per_event_per_second`). Failures of either sink
 * are counted in `stats` and warned about (stdout's on stderr, the file's as a WARN line).
 * Returns warnings for stderr.
 */
async function configureLogging(config: Config, stats: LogStats): Promise<string[]> {
  const { logging } = config;
  const json = logging.format === "json";
  const colors = !json && Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR");
  const format = (record: LogRecord, tty: boolean) =>
    json ? formatJsonLine(record) : formatTextLine(record, tty);
  const sinks: Sink[] = [
    openStdoutSink({
      format: (record) => format(record, colors),
      stats,
      warn: (message) => console.error(`Warning: ${message}`),
    }),
  ];
  const warnings: string[] = [];
  if (logging.enable_file_logging) {
    const file = openFileSink({
      dir: logging.dir,
      filename: logging.filename,
      rotation: logging.rotation,
      format: (record) => format(record, false),
      maxFileBytes: logging.max_file_size_bytes,
      maxFiles: logging.max_files,
      stats,
      warn: (message, fields) => getLogger(["signal-fish", "logging"]).warn(message, fields),
    });
    if ("warning" in file) warnings.push(file.warning);
    else sinks.push(file);
  }
  const sink = openRateLimitedSink({
    sinks,
    maxPerSecond: logging.max_lines_per_event_per_second,
    stats,
  });
  await configure({
    sinks: { main: sink },
    loggers: [
      { category: ["signal-fish"], lowestLevel: logLevel(logging.level), sinks: ["main"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
  });
  // Event lines below the level or over the rate limit are dropped before logtape builds their
  // records (the limit counts them as if they had reached it).
  const lowest = logLevel(logging.level);
  setSuppressedLineCheck((category, template, level, timestamp) =>
    compareLogLevel(level, lowest) < 0 || sink.suppresses(category, template, level, timestamp)
  );
  return warnings;
}

async function main(args: string[]): Promise<number> {
  const outcome = runCli(args, readConfigEnv());
  if (outcome.kind === "exit") {
    if (outcome.stdout) await Deno.stdout.write(new TextEncoder().encode(outcome.stdout));
    if (outcome.stderr) await Deno.stderr.write(new TextEncoder().encode(outcome.stderr));
    return outcome.code;
  }
  const unsupported = unsupportedSettings(outcome.config);
  if (unsupported.errors.length > 0) {
    for (const error of unsupported.errors) console.error(`Error: ${error}`);
    return 2;
  }
  for (const warning of outcome.warnings) {
    console.error(`Warning: ${warning}`);
  }
  const logStats = newLogStats();
  for (const warning of await configureLogging(outcome.config, logStats)) {
    console.error(`Warning: ${warning}`);
  }
  const log = getLogger(["signal-fish", "main"]);

  let server;
  try {
    server = await startServer(outcome.config, {
      logStats,
      ...(outcome.file === undefined ? {} : { configFile: outcome.file }),
      // Plain words first, so a new user sees where to go before the JSON lines start.
      onListening: (url) => console.error(startupBanner(url, outcome.config)),
    });
  } catch (error) {
    const inUse = addressInUseMessage(error, outcome.config.server.host, outcome.config.port);
    if (inUse === undefined) log.fatal("Cannot start the server: {error}", { error });
    await dispose();
    const reason = error instanceof Error ? error.message : String(error);
    console.error(inUse ?? `Error: cannot start the server: ${reason}`);
    return 1;
  }

  const { promise: stopped, resolve } = Promise.withResolvers<string>();
  let received: string | undefined;
  // SIGHUP (the terminal of `deno task start` closed, e.g. an ssh session ended) stops the server
  // as SIGTERM does; by default it would kill the process unsaved.
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    try {
      Deno.addSignalListener(signal, () => {
        // A second signal (or SIGINT) ends a cluster drain (docs/spec/SERVER.md §8.7).
        if (received !== undefined) void server.close({ drain: false });
        received ??= signal;
        resolve(signal);
      });
    } catch {
      // Windows has no SIGTERM or SIGHUP; Ctrl+C (SIGINT) still works there.
    }
  }
  const signal = await stopped;
  log.info("Received {signal}, shutting down", { signal });
  await server.close({ drain: signal !== "SIGINT" });
  await dispose();
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
