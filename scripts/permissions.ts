/**
 * The one list of Deno permissions the server runs with. `scripts/compile.ts` bakes it into the
 * executables and `tests/permissions_test.ts` runs `main.ts` under exactly this list, so the two
 * cannot drift apart.
 *
 * @module
 */

/** Directory the packaged server reads its configuration (and TLS files) from on a VPS. */
export const CONFIG_DIR = "/etc/signal-fish";

/** Static assets shipped next to `main.ts` and embedded into the executables. */
export const ASSET_DIRS: readonly string[] = ["static"];

/**
 * Environment variables the server reads: only the configuration variables of docs/spec/SERVER.md §2.3
 * (`SIGNAL_FISH_…` and `SIGNAL_FISH__…`, including `SIGNAL_FISH_CONFIG_PATH`). The `*` suffix is
 * a prefix wildcard (Deno ≥ 2.1); `src/config/load.ts` `readConfigEnv()` then looks up the known
 * names one by one, because listing the environment needs full env access. Besides:
 * `RLIMIT_NOFILE`, the open-file limit when `/proc/self/limits` cannot be read
 * (`src/http/admission.ts`), the two switches `npm:ws` reads when it loads
 * (`WS_NO_BUFFER_UTIL`, `WS_NO_UTF_8_VALIDATE`), and in cluster mode the two the Redis client
 * (node-redis 6.x) reads (`REDIS_DEBUG_MAINTENANCE`, `REDIS_EMIT_DIAGNOSTICS`, docs/spec/SERVER.md §8.9).
 */
export const ENV_ALLOW = "SIGNAL_FISH_*,RLIMIT_NOFILE,WS_NO_BUFFER_UTIL,WS_NO_UTF_8_VALIDATE," +
  "REDIS_DEBUG_MAINTENANCE,REDIS_EMIT_DIAGNOSTICS";

/**
 * Directories the server may write: the log files of `logging.enable_file_logging` (docs/spec/SERVER.md
 * §7.3), either `./logs` (the default `logging.dir`) or `/var/log/signal-fish` (the systemd unit's
 * `LogsDirectory`), and the state file of `server.state_file` (README "Rooms survive a restart"),
 * under `./state` (the `dev` task's `./state/rooms.json`) or `/var/lib/signal-fish` (the unit's
 * `StateDirectory`). Another `logging.dir` or state file path needs a wider `--allow-write`.
 */
export const WRITE_ALLOW: readonly string[] = [
  "./logs",
  "/var/log/signal-fish",
  "./state",
  "/var/lib/signal-fish",
];

/**
 * Files and directories the server may read, relative ones resolved against the working directory
 * at startup: `./config.json` (the implicit config file, docs/spec/SERVER.md §2.1), {@linkcode CONFIG_DIR}
 * (`--config /etc/signal-fish/config.json`, TLS certificate and key) and the directories of
 * {@linkcode WRITE_ALLOW} (log rotation and retention list them, SECURITY.md "Logging"; the state
 * file is read back at start). A config
 * file or TLS file elsewhere needs a wider `--allow-read` (run with `deno run` instead of the
 * executable).
 */
export const READ_ALLOW: readonly string[] = ["./config.json", CONFIG_DIR, ...WRITE_ALLOW];

/**
 * The permission flags: network (listen, and Redis in cluster mode), the reads of
 * {@linkcode READ_ALLOW}, the log writes of {@linkcode WRITE_ALLOW} and the variables of
 * {@linkcode ENV_ALLOW}. Nothing else: no run, ffi or sys access.
 */
export const RUNTIME_PERMISSIONS: readonly string[] = [
  "--allow-net",
  `--allow-read=${READ_ALLOW.join(",")}`,
  `--allow-write=${WRITE_ALLOW.join(",")}`,
  `--allow-env=${ENV_ALLOW}`,
];

/**
 * V8 settings the server runs with (the `start` and `dev` tasks, the executables and the
 * benchmark's spawned server). `--initial-old-space-size=64` (MiB) lets the old generation grow
 * to a working size before V8's first mark-compact: with V8's default the server's first one came
 * a few seconds after start under load (about 20 ms of marking steps within 34 ms, the longest 8
 * ms), a stall for every message in flight. Measured (BENCHMARKS.md, session 3): p99 at 12,000
 * relayed msg/s 1.21× the baseline pooled without it, 1.06× over five rounds with it. It is a
 * starting limit, not a reservation: memory is committed only as the heap grows.
 * `--max-semi-space-size=4` (MiB) caps the young generation (V8 lets it grow to 32 MiB per semi-space
 * under load and keeps it committed): 10,000 joined connections held 217 → 175 MB RSS, 19,000
 * held 308 → 257 MB (BENCHMARKS.md "Session 6: memory"), for more frequent, shorter scavenges.
 */
export const RUNTIME_V8_FLAGS: readonly string[] = [
  "--initial-old-space-size=64",
  "--max-semi-space-size=4",
];

/** {@linkcode RUNTIME_V8_FLAGS} as one `deno run` / `deno compile` argument. */
export const V8_FLAGS_ARG = `--v8-flags=${RUNTIME_V8_FLAGS.join(",")}`;
