/**
 * What an operator sees of the Redis link at the default log level (docs/spec/SERVER.md §7.4,
 * §8.5): a warning with the client's error when the link is down (never connected: an unreachable
 * address, a refused password; or lost), repeated at most every {@linkcode LINK_WARNING_INTERVAL_MS}
 * while it stays down, and an info line when it is up. Every error is also logged at debug, as
 * the client reports one per reconnection attempt.
 *
 * @module
 */
import type { LinkState } from "./types.ts";

/** The least time between two warnings about the link being down, ms. */
export const LINK_WARNING_INTERVAL_MS = 30_000;

/** The log methods a {@linkcode LinkReport} writes with (a logtape `Logger` has them). */
export interface LinkReportLog {
  debug(message: string, properties: Record<string, unknown>): void;
  info(message: string, properties: Record<string, unknown>): void;
  warn(message: string, properties: Record<string, unknown>): void;
}

/**
 * The text of a Redis client error, without secrets: its message (or its code, or its class name
 * when the message is empty), any `scheme://user:password@` in it reduced to
 * `scheme://<redacted>@`.
 */
export function linkErrorText(error: unknown): string {
  const record = typeof error === "object" && error !== null
    ? error as { message?: unknown; code?: unknown; name?: unknown }
    : undefined;
  const text = [record?.message, record?.code, record?.name, String(error)]
    .find((value): value is string => typeof value === "string" && value.trim() !== "")!;
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi, "$1<redacted>@");
}

/**
 * Turns the Redis link's errors and state changes into log lines (see the module). The link
 * starts down: errors before the first connection are warned about like a lost link.
 */
export class LinkReport {
  readonly #log: LinkReportLog;
  readonly #now: () => number;
  readonly #fields: Record<string, unknown>;
  #up = false;
  #downSince: number;
  #lastWarning = -Infinity;
  /** Whether the current outage was warned about (its end is then logged with its length). */
  #warned = false;
  #lastError: string | undefined;

  /**
   * @param log where the lines go
   * @param fields added to every line (e.g. the node's name)
   * @param now the clock, ms @default Date.now
   */
  constructor(log: LinkReportLog, fields: Record<string, unknown> = {}, now = Date.now) {
    this.#log = log;
    this.#fields = fields;
    this.#now = now;
    this.#downSince = now();
  }

  /** A Redis client error (one per failed connection attempt while down). */
  error(error: unknown): void {
    this.#lastError = linkErrorText(error);
    this.#log.debug("Redis connection error: {error}", { ...this.#fields, error: this.#lastError });
    if (!this.#up) this.#warn();
  }

  /** The link's new state (`up` while both connections are ready). */
  state(state: LinkState): void {
    if ((state === "up") === this.#up) return;
    const now = this.#now();
    this.#up = state === "up";
    if (this.#up) {
      if (this.#warned) {
        this.#log.info("Redis link up again after {seconds} s", {
          ...this.#fields,
          state,
          seconds: Math.round((now - this.#downSince) / 1000),
        });
      } else {
        this.#log.info("Redis link {state}", { ...this.#fields, state });
      }
      this.#warned = false;
      this.#lastError = undefined;
      return;
    }
    this.#downSince = now;
    if (!this.#warn()) this.#log.info("Redis link {state}", { ...this.#fields, state });
  }

  /** Warns that the link is down, unless a warning went out less than the interval ago. */
  #warn(): boolean {
    const now = this.#now();
    if (now - this.#lastWarning < LINK_WARNING_INTERVAL_MS) return false;
    this.#lastWarning = now;
    const error = this.#lastError ?? "connection lost";
    if (this.#warned) {
      this.#log.warn("Redis link still down after {seconds} s: {error}; retrying", {
        ...this.#fields,
        error,
        seconds: Math.round((now - this.#downSince) / 1000),
      });
    } else {
      this.#log.warn("Redis link down: {error}; retrying", { ...this.#fields, error });
    }
    this.#warned = true;
    return true;
  }
}

/**
 * Whether `error` is Redis refusing a command for memory: an error reply starting with `OOM`
 * (`OOM command not allowed when used memory > 'maxmemory'.`), which Redis sends for every
 * command that may grow memory once `maxmemory` is reached under `maxmemory-policy noeviction`
 * (docs/spec/SERVER.md §8.5.5 "Redis full"). Reads, deletions and publishes still work then.
 */
export function isMemoryRefusal(error: unknown): boolean {
  const message = typeof error === "object" && error !== null
    ? (error as { message?: unknown }).message
    : error;
  return typeof message === "string" && message.startsWith("OOM ");
}

/**
 * What an operator sees while Redis refuses writes for memory (docs/spec/SERVER.md §8.5.5 "Redis
 * full"): a warning that names the refusal and what to do at the first one, repeated at most every
 * {@linkcode LINK_WARNING_INTERVAL_MS} while refusals go on, and an info line once a write that
 * needs memory is accepted again. Every refusal is counted ({@linkcode MemoryReport.refusals},
 * `signal_fish_cluster_redis_oom_refusals_total`, docs/spec/SERVER.md §6.3) and logged at debug.
 */
export class MemoryReport {
  readonly #log: LinkReportLog;
  readonly #now: () => number;
  readonly #fields: Record<string, unknown>;
  /** When the current run of refusals began (undefined: writes are accepted). */
  #since: number | undefined;
  #lastWarning = -Infinity;
  /** Commands Redis refused for memory since the start. */
  refusals = 0;

  /**
   * @param log where the lines go
   * @param fields added to every line (e.g. the node's name)
   * @param now the clock, ms @default Date.now
   */
  constructor(log: LinkReportLog, fields: Record<string, unknown> = {}, now = Date.now) {
    this.#log = log;
    this.#fields = fields;
    this.#now = now;
  }

  /** Whether the last write that needed memory was refused. */
  get refusing(): boolean {
    return this.#since !== undefined;
  }

  /** Redis refused a command for memory (`error`: its `OOM …` error reply). */
  refused(error: unknown): void {
    this.refusals++;
    const now = this.#now();
    // A script's refusal names the script and line after the message: left out.
    const text = linkErrorText(error).replace(/\s*script: [\s\S]*$/, "").replace(/\.$/, "");
    this.#log.debug("Redis refused a command: {error}", { ...this.#fields, error: text });
    this.#since ??= now;
    if (now - this.#lastWarning < LINK_WARNING_INTERVAL_MS) return;
    this.#lastWarning = now;
    this.#log.warn(
      "Redis refuses writes for memory ({error}): its maxmemory is reached under noeviction. " +
        "Room creations answer SERVICE_UNAVAILABLE and rate limits are per instance until memory " +
        "is freed; existing rooms keep relaying. Raise maxmemory or give Redis more memory",
      {
        ...this.#fields,
        error: text,
        refusals: this.refusals,
        seconds: Math.round((now - this.#since) / 1000),
      },
    );
  }

  /** A write that needs memory was accepted: ends a run of refusals (logged at info). */
  accepted(): void {
    if (this.#since === undefined) return;
    const seconds = Math.round((this.#now() - this.#since) / 1000);
    this.#since = undefined;
    this.#lastWarning = -Infinity;
    this.#log.info("Redis accepts writes again after {seconds} s of refusals for memory", {
      ...this.#fields,
      seconds,
    });
  }
}

/**
 * Logs what Redis's `maxmemory-policy` (read at every (re)connection, docs/spec/SERVER.md §8.3)
 * means for the directory: a warning for any policy but `noeviction` (an evicted `room:` entry
 * lets a second room take a live room's code); `noeviction`, or `undefined` (Redis would not
 * say: `CONFIG` disabled or renamed, as on managed Redis), a debug line only.
 */
export function reportMemoryPolicy(
  log: LinkReportLog,
  policy: string | undefined,
  fields: Record<string, unknown> = {},
): void {
  if (policy === undefined) {
    log.debug("Redis maxmemory-policy unknown (CONFIG GET refused)", fields);
  } else if (policy !== "noeviction") {
    log.warn(
      "Redis maxmemory-policy is {policy}: Redis may evict the room directory's keys at its " +
        "memory limit, letting a second room take a live room's code. Set maxmemory-policy " +
        "noeviction on this Redis",
      { ...fields, policy },
    );
  } else {
    log.debug("Redis maxmemory-policy is {policy}", { ...fields, policy });
  }
}
