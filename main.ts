/**
 * Signal Fish for Deno: a WebSocket signaling and relay server for peer-to-peer multiplayer
 * games. Reads the configuration (file, environment, flags), configures logging, serves until
 * SIGTERM or SIGINT, then drains.
 *
 * ```sh
 * deno run --allow-net --allow-read --allow-env main.ts --port 3536
 * ```
 *
 * @module
 */
import {
  configure,
  dispose,
  getConsoleSink,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type LogLevel,
} from "@logtape/logtape";
import { runCli } from "./src/cli.ts";
import { type Config, readConfigEnv } from "./src/config.ts";
import { startServer, unsupportedSettings } from "./src/server.ts";

const LEVELS: Record<string, LogLevel> = {
  trace: "trace",
  debug: "debug",
  info: "info",
  warn: "warning",
  warning: "warning",
  error: "error",
  err: "error",
};

/** Sets up logtape once for the whole process (SERVER.md §7). */
async function configureLogging(config: Config): Promise<void> {
  const level = LEVELS[config.logging.level?.toLowerCase() ?? "info"] ?? "info";
  const formatter = config.logging.format === "json"
    ? getJsonLinesFormatter({ properties: "flatten" })
    : getTextFormatter();
  await configure({
    sinks: { console: getConsoleSink({ formatter }) },
    loggers: [
      { category: ["signal-fish"], lowestLevel: level, sinks: ["console"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });
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
  for (const warning of [...outcome.warnings, ...unsupported.warnings]) {
    console.error(`Warning: ${warning}`);
  }
  await configureLogging(outcome.config);
  const log = getLogger(["signal-fish", "main"]);

  let server;
  try {
    server = await startServer(outcome.config);
  } catch (error) {
    log.fatal("Cannot start the server: {error}", { error });
    await dispose();
    console.error(`Error: cannot start the server: ${error}`);
    return 1;
  }

  const { promise: stopped, resolve } = Promise.withResolvers<string>();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    try {
      Deno.addSignalListener(signal, () => resolve(signal));
    } catch {
      // Windows has no SIGTERM; Ctrl+C (SIGINT) still works there.
    }
  }
  const signal = await stopped;
  log.info("Received {signal}, shutting down", { signal });
  await server.close();
  await dispose();
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
