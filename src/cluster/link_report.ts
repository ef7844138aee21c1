/**
 * What an operator sees of the Redis link at the default log level (docs/spec/SERVER.md §7.4,
 * §8.5): a warning with the client's error when the link is down (never connected: an unreachable
 * address, a refused password; or lost), repeated at most every {@linkcode LINK_WARNING_INTERVAL_MS}
 * while it stays down, and an info line when it is up or closed by the server (shutdown). Every
 * error is also logged at debug, as the client reports one per reconnection attempt.
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
  #closedLogged = false;

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
    if (!this.#up && !this.#closedLogged) this.#warn();
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

  /**
   * The server closed the link itself (shutdown): one info line, `Redis link closed`, and no
   * warning, since nothing is down that will be retried. Later calls say nothing.
   */
  closed(): void {
    if (this.#closedLogged) return;
    this.#closedLogged = true;
    this.#up = false;
    this.#log.info("Redis link closed", { ...this.#fields });
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
 * Why Redis refused a write while still answering (docs/spec/SERVER.md §8.5.5 "Redis full",
 * "Redis refuses writes"), the `reason` label of `signal_fish_cluster_redis_write_refusals_total`
 * (§6.3 #98):
 *
 * - `oom`: `-OOM …`, `maxmemory` reached under `noeviction` (commands that may grow memory);
 * - `misconf`: `-MISCONF …`, the last background save failed under
 *   `stop-writes-on-bgsave-error yes` (every write, also inside scripts);
 * - `readonly`: `-READONLY …`, the address reaches a replica (every write).
 */
export type RefusalReason = "oom" | "misconf" | "readonly";

/** Every {@linkcode RefusalReason}, in the order of their series. */
export const REFUSAL_REASONS: readonly RefusalReason[] = ["oom", "misconf", "readonly"];

/**
 * The {@linkcode RefusalReason} of `error` (an error reply, or its message), from the error code
 * Redis puts first; `undefined` for anything else (another error reply, a timeout, a lost
 * connection).
 */
export function refusalReason(error: unknown): RefusalReason | undefined {
  const message = typeof error === "object" && error !== null
    ? (error as { message?: unknown }).message
    : error;
  if (typeof message !== "string") return undefined;
  if (message.startsWith("OOM ")) return "oom";
  if (message.startsWith("MISCONF ")) return "misconf";
  if (message.startsWith("READONLY ")) return "readonly";
  return undefined;
}

/**
 * Whether `error` is Redis refusing a command for memory: an error reply starting with `OOM`
 * (`OOM command not allowed when used memory > 'maxmemory'.`), which Redis sends for every
 * command that may grow memory once `maxmemory` is reached under `maxmemory-policy noeviction`
 * (docs/spec/SERVER.md §8.5.5 "Redis full"). Reads, deletions and publishes still work then.
 */
export function isMemoryRefusal(error: unknown): boolean {
  return refusalReason(error) === "oom";
}

/**
 * Whether `error` is Redis refusing every write while it answers reads: `MISCONF` or `READONLY`
 * (docs/spec/SERVER.md §8.5.5 "Redis refuses writes"). No liveness key, room entry or claim can
 * be written then, so it holds back death verdicts (§8.5.4) like an interrupted link.
 */
export function refusesEveryWrite(error: unknown): boolean {
  const reason = refusalReason(error);
  return reason === "misconf" || reason === "readonly";
}

/** What the operator is told per {@linkcode RefusalReason}: the cause and what to do. */
const REFUSAL_WARNINGS: Record<RefusalReason, string> = {
  oom: "Redis refuses writes for memory ({error}): its maxmemory is reached under noeviction. " +
    "Room creations answer SERVICE_UNAVAILABLE and rate limits are per instance until memory " +
    "is freed; existing rooms keep relaying. Raise maxmemory or give Redis more memory",
  misconf: "Redis refuses every write ({error}): its last background save failed and " +
    "stop-writes-on-bgsave-error is on. Room creations answer SERVICE_UNAVAILABLE, rate limits " +
    "are per instance and no node is held dead until writes are accepted again; existing rooms " +
    "keep relaying. Free disk space or fix the save directory's permissions (Redis's log says " +
    "why the save failed), then BGSAVE",
  readonly: "Redis refuses every write ({error}): cluster.redis_url reaches a read-only replica " +
    "(a failover the address has not followed yet, or REPLICAOF). Reconnecting both connections " +
    "to reach the primary; meanwhile room creations answer SERVICE_UNAVAILABLE and no node is " +
    "held dead. Point cluster.redis_url at the primary, or use cluster.redis_sentinels",
};

/** The cause named by the info line that ends a run of refusals. */
const REFUSAL_CAUSES: Record<RefusalReason, string> = {
  oom: "for memory",
  misconf: "after a failed background save (MISCONF)",
  readonly: "by a read-only replica (READONLY)",
};

/**
 * What an operator sees while Redis refuses writes although it answers (docs/spec/SERVER.md
 * §8.5.5 "Redis full", "Redis refuses writes"): per {@linkcode RefusalReason}, a warning that
 * names the refusal and what to do at the first one, repeated at most every
 * {@linkcode LINK_WARNING_INTERVAL_MS} while refusals go on, and an info line once a write is
 * accepted again. Every refusal is counted ({@linkcode RefusalReport.counts}, and in
 * {@linkcode RefusalReport.counter} when set: `signal_fish_cluster_redis_write_refusals_total`,
 * docs/spec/SERVER.md §6.3 #98) and logged at debug.
 */
export class RefusalReport {
  readonly #log: LinkReportLog;
  readonly #now: () => number;
  readonly #fields: Record<string, unknown>;
  /** When the current run of refusals began, per reason (absent: writes are accepted). */
  readonly #since = new Map<RefusalReason, number>();
  readonly #lastWarning = new Map<RefusalReason, number>();
  /** Commands Redis refused since the start, per reason. */
  readonly counts: Record<RefusalReason, number> = { oom: 0, misconf: 0, readonly: 0 };
  /** Also counted here, by reason (the metric, set once the metrics exist). */
  counter: { inc(values: readonly string[]): void } | undefined;

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

  /** Commands Redis refused since the start, all reasons. */
  get refusals(): number {
    return this.counts.oom + this.counts.misconf + this.counts.readonly;
  }

  /** Whether the last write of that kind was refused for `reason` (any reason when omitted). */
  refusing(reason?: RefusalReason): boolean {
    return reason === undefined ? this.#since.size > 0 : this.#since.has(reason);
  }

  /**
   * Redis refused a command (`error`: its `OOM …`, `MISCONF …` or `READONLY …` error reply;
   * anything else is ignored).
   */
  refused(error: unknown): void {
    const reason = refusalReason(error);
    if (reason === undefined) return;
    this.counts[reason]++;
    this.counter?.inc([reason]);
    const now = this.#now();
    // A script's refusal names the script and line after the message: left out. MISCONF's
    // message is long: its first sentence says it.
    let text = linkErrorText(error).replace(/\s*script: [\s\S]*$/, "").replace(/\.$/, "");
    if (reason === "misconf") text = text.replace(/(disk)\. [\s\S]*$/, "$1");
    this.#log.debug("Redis refused a command: {error}", { ...this.#fields, error: text });
    if (!this.#since.has(reason)) this.#since.set(reason, now);
    if (now - (this.#lastWarning.get(reason) ?? -Infinity) < LINK_WARNING_INTERVAL_MS) return;
    this.#lastWarning.set(reason, now);
    this.#log.warn(REFUSAL_WARNINGS[reason], {
      ...this.#fields,
      reason,
      error: text,
      refusals: this.counts[reason],
      seconds: Math.round((now - this.#since.get(reason)!) / 1000),
    });
  }

  /**
   * A write was accepted: ends the runs of `MISCONF` and `READONLY` refusals and, when it may
   * have grown memory (`needsMemory`: a claim, a bucket take, the counts per game; not the
   * liveness script, which Redis runs whole when full), the run of `OOM` refusals. Each run
   * ended is logged at info, once.
   */
  accepted(needsMemory = true): void {
    for (const reason of REFUSAL_REASONS) {
      const since = this.#since.get(reason);
      if (since === undefined || (reason === "oom" && !needsMemory)) continue;
      this.#since.delete(reason);
      this.#lastWarning.delete(reason);
      this.#log.info(
        `Redis accepts writes again after {seconds} s of refusals ${REFUSAL_CAUSES[reason]}`,
        {
          ...this.#fields,
          reason,
          seconds: Math.round((this.#now() - since) / 1000),
        },
      );
    }
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
