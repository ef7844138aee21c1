/**
 * `deno task compile`: builds one self-contained executable per target into `dist/`, with
 * {@linkcode RUNTIME_PERMISSIONS} baked in and the static assets embedded.
 *
 * ```sh
 * deno task compile                                   # every target
 * deno task compile x86_64-unknown-linux-gnu          # just one
 * deno task compile --dry-run                         # print the deno compile commands only
 * ```
 *
 * `deno compile` downloads the matching `denort` runtime from dl.deno.land on first use (cached in
 * `$DENO_DIR` afterwards), so the first build of each target needs internet access.
 *
 * @module
 */
import denoJson from "../deno.json" with { type: "json" };
import { ASSET_DIRS, RUNTIME_PERMISSIONS, V8_FLAGS_ARG } from "./permissions.ts";

/** Targets built by default (Deno's cross-compilation triples) and their file-name suffix. */
export const TARGETS: Readonly<Record<string, string>> = {
  "x86_64-unknown-linux-gnu": "linux-x64",
  "aarch64-unknown-linux-gnu": "linux-arm64",
  "x86_64-apple-darwin": "macos-x64",
  "aarch64-apple-darwin": "macos-arm64",
  "x86_64-pc-windows-msvc": "windows-x64.exe",
};

const ROOT = new URL("..", import.meta.url);

/** The `deno compile` arguments for `target`; `assets` are the asset directories that exist. */
export function compileArgs(target: string, assets: readonly string[]): string[] {
  const suffix = TARGETS[target];
  if (suffix === undefined) {
    throw new RangeError(
      `Cannot compile for "${target}": expected one of ${Object.keys(TARGETS).join(", ")}`,
    );
  }
  return [
    "compile",
    "--frozen",
    "--target",
    target,
    "--output",
    `dist/signal-fish-server-${denoJson.version}-${suffix}`,
    ...RUNTIME_PERMISSIONS,
    V8_FLAGS_ARG,
    ...assets.flatMap((dir) => ["--include", dir]),
    "main.ts",
  ];
}

function existingAssets(): string[] {
  return ASSET_DIRS.filter((dir) => {
    try {
      return Deno.statSync(new URL(dir, ROOT)).isDirectory;
    } catch {
      return false;
    }
  });
}

/** The `--help` text of `deno task compile`. */
export const COMPILE_USAGE = `Usage: deno task compile [--dry-run] [target ...]

Builds dist/signal-fish-server-<version>-<suffix>, one self-contained executable per target
(default: every target), with the server's permissions and static assets built in.

Targets:
${Object.entries(TARGETS).map(([target, suffix]) => `  ${target.padEnd(28)}${suffix}`).join("\n")}

Options:
  --dry-run   Print the deno compile commands without running them
  -h, --help  Print this help and exit

The first build of a target downloads its runtime (denort) from dl.deno.land.
`;

/**
 * What `deno task compile <args>` does: print `usage` and exit (`--help`, or exit 2 on an unknown
 * option or target, with the reason) or build `targets` (`dryRun`: print the commands only).
 */
export function parseCompileArgs(args: readonly string[]):
  | { kind: "exit"; code: number; stdout: string; stderr: string }
  | { kind: "build"; dryRun: boolean; targets: string[] } {
  if (args.includes("--help") || args.includes("-h")) {
    return { kind: "exit", code: 0, stdout: COMPILE_USAGE, stderr: "" };
  }
  const unknown = args.find((arg) =>
    arg !== "--dry-run" && (arg.startsWith("-") || !(arg in TARGETS))
  );
  if (unknown !== undefined) {
    const what = unknown.startsWith("-") ? "unknown option" : "unknown target";
    return {
      kind: "exit",
      code: 2,
      stdout: "",
      stderr: `error: ${what} "${unknown}"\n\n${COMPILE_USAGE}`,
    };
  }
  const targets = args.filter((arg) => arg !== "--dry-run");
  return {
    kind: "build",
    dryRun: args.includes("--dry-run"),
    targets: targets.length > 0 ? targets : Object.keys(TARGETS),
  };
}

async function main(args: string[]): Promise<number> {
  const parsed = parseCompileArgs(args);
  if (parsed.kind === "exit") {
    if (parsed.stdout) console.log(parsed.stdout.trimEnd());
    if (parsed.stderr) console.error(parsed.stderr.trimEnd());
    return parsed.code;
  }
  const { dryRun, targets } = parsed;
  const assets = existingAssets();
  for (const target of targets) {
    const compile = compileArgs(target, assets);
    console.log(`deno ${compile.join(" ")}`);
    if (dryRun) continue;
    const { code } = await new Deno.Command(Deno.execPath(), { args: compile, cwd: ROOT })
      .spawn().status;
    if (code !== 0) {
      console.error(`Error: deno compile for ${target} failed (exit ${code})`);
      return 1;
    }
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
