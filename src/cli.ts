/**
 * Command-line handling (docs/spec/SERVER.md §2.5): parses the flags, loads the configuration and decides
 * whether to exit (with the text to print) or to serve. Pure apart from the injected file reader.
 *
 * @module
 */
import { parseArgs } from "node:util";
import denoJson from "../deno.json" with { type: "json" };
import type { Config } from "./config/schema.ts";
import { loadConfig, validationSummary } from "./config/load.ts";
import { redactConfig } from "./config/redact.ts";

/** The `--help` text (also printed to stderr, exit 2, on a usage error). */
export const USAGE = `Usage: signal-fish-server [options]

Options:
  --config <path>     JSON config file (default: $SIGNAL_FISH_CONFIG_PATH, else ./config.json
                      when present)
  --port <n>          Listen port, 0-65535; overrides the file and SIGNAL_FISH_PORT
  --host <address>    Bind address (server.host), e.g. 127.0.0.1, ::1 or :: (default 0.0.0.0)
  --validate-config   Load and validate the configuration, print a summary and exit
                      (also fails on SIGNAL_FISH_* variables that are not configuration keys)
  --print-config      Print the effective configuration (secrets redacted) and exit
  -V, --version       Print the version and exit
  -h, --help          Print this help and exit

Single keys can be set with environment variables SIGNAL_FISH_<PATH>, path levels joined by
"__" (e.g. SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS=16).
Precedence: defaults < config file < environment < --port and --host.

Exit status: 0 success, 1 failure after validation, 2 configuration or usage error.
`;

/**
 * What the process should do: exit with `code` after writing `stdout` and `stderr` verbatim
 * (newline-terminated or empty), or serve `config` after printing `warnings` to stderr (`file`:
 * the absolute path of the config file it was read from, undefined for none).
 */
export type CliOutcome =
  | { kind: "exit"; code: number; stdout: string; stderr: string }
  | { kind: "serve"; config: Config; warnings: string[]; file: string | undefined };

const OPTIONS = {
  config: { type: "string" },
  port: { type: "string" },
  host: { type: "string" },
  "validate-config": { type: "boolean" },
  "print-config": { type: "boolean" },
  version: { type: "boolean", short: "V" },
  help: { type: "boolean", short: "h" },
} as const;

function exit(code: number, stdout: string, stderr = ""): CliOutcome {
  return { kind: "exit", code, stdout, stderr };
}

function usageError(reason: string): CliOutcome {
  return exit(2, "", `error: ${reason}\n\n${USAGE}`);
}

function lines(prefix: string, texts: string[]): string {
  return texts.map((text) => `${prefix}${text}\n`).join("");
}

function parseFlags(args: string[]) {
  try {
    return parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** `--port` value: decimal digits, 0-65535; undefined when invalid. */
function parsePort(text: string): number | undefined {
  return /^\d{1,5}$/.test(text) && Number(text) <= 65535 ? Number(text) : undefined;
}

/**
 * Runs the command line `args` (without the program name) against `env`.
 * @param options `cwd` and `readTextFile` are passed to `loadConfig` (defaults: the process's).
 */
export function runCli(
  args: string[],
  env: Record<string, string>,
  options: { cwd?: string; readTextFile?: (p: string) => string } = {},
): CliOutcome {
  const values = parseFlags(args);
  if (typeof values === "string") return usageError(values);
  if (values.help) return exit(0, USAGE);
  if (values.version) return exit(0, `signal-fish-server ${denoJson.version}\n`);
  if (values["validate-config"] && values["print-config"]) {
    return usageError("--validate-config and --print-config cannot be used together");
  }
  if (values.config === "") return usageError("--config needs a file path");
  if (values.host === "") return usageError("--host needs an address");
  const port = values.port === undefined ? undefined : parsePort(values.port);
  if (values.port !== undefined && port === undefined) {
    return usageError("--port must be an integer between 0 and 65535");
  }

  const result = loadConfig({
    ...options,
    configPath: values.config,
    port,
    host: values.host,
    env,
  });
  if (values["validate-config"]) {
    // A misspelt variable silently does nothing when serving; before a deploy it is an error.
    const errors = result.ok
      ? result.unknownEnv.map(({ name, hint }) =>
        `invalid configuration: environment variable ${name} is not a configuration key` +
        (hint === undefined ? "" : ` (did you mean ${hint}?)`)
      )
      : result.errors;
    const file = `Config file: ${result.file ?? "none"}\n`;
    return result.ok && errors.length === 0
      ? exit(0, validationSummary(result.config, result.file), lines("Warning: ", result.warnings))
      : exit(2, "", `Configuration validation failed:\n${lines("", errors)}${file}`);
  }
  if (!result.ok) return exit(2, "", lines("Error: ", result.errors));
  if (values["print-config"]) {
    return exit(
      0,
      `${JSON.stringify(redactConfig(result.config), null, 2)}\n`,
      lines("Warning: ", result.warnings),
    );
  }
  return { kind: "serve", config: result.config, warnings: result.warnings, file: result.file };
}

/**
 * The plain-words lines `main.ts` prints on stderr once the server listens, before any JSON log
 * line (docs/spec/SERVER.md §1.1 note): where to point a browser, a game client and a health check, and
 * where the documentation is. `url` is the server's local URL (`http://127.0.0.1:3536`).
 */
export function startupBanner(url: string, config: Config): string {
  const ws = `${url.replace(/^http/, "ws")}/v2/ws`;
  const host = config.server.host;
  const everywhere = host === "0.0.0.0" || host === "::";
  return [
    `Signal Fish ${denoJson.version} is running.`,
    "",
    `  Demo page:  ${url}/   (open it in two browser tabs and create a room in one)`,
    `  WebSocket:  ${ws}   (game clients connect here)`,
    `  Health:     ${url}/v2/health`,
    `  Status:     ${url}/v2/status`,
    "  Docs:       README.md, docs/protocol.md (protocol and client library), docs/spec/",
    "",
    everywhere
      ? `Listening on every ${host === "::" ? "" : "IPv4 "}interface (${host}); ` +
        "use --host 127.0.0.1 to keep it on this machine."
      : `Listening on ${host} only; use --host 0.0.0.0 to accept other machines.`,
    "Stop with Ctrl+C. Log lines (JSON) follow on stdout.",
    "",
  ].join("\n");
}

/**
 * The one line printed when the listener cannot be bound because the address is taken (the port
 * is named once; no stack trace). Returns undefined for any other error.
 */
export function addressInUseMessage(
  error: unknown,
  host: string,
  port: number,
): string | undefined {
  const inUse = error instanceof Deno.errors.AddrInUse ||
    (typeof error === "object" && error !== null &&
      (error as { code?: unknown }).code === "EADDRINUSE");
  if (!inUse) return undefined;
  const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  return `Error: cannot listen on ${address}: the address is already in use ` +
    "(is another server running? choose another port with --port <n>)";
}
