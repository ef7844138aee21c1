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
