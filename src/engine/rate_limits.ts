/**
 * Per-client-IP room creation and join-attempt limits (PROTOCOL.md §7.13, SERVER.md §3.4).
 * One instance is shared by the engine (`JoinRoom`, `JoinAsSpectator`) and the HTTP room lookup
 * and listing (SERVER.md §1.10), so every counted request draws from the same buckets.
 *
 * @module
 */
import { KeyedBuckets, type Take } from "./token_bucket.ts";

export type { Take } from "./token_bucket.ts";

/** Settings of {@linkcode RateLimits}; `rate_limit.*` of SERVER.md §2.7. */
export interface RateLimitOptions {
  /** Creation bucket capacity per client IP (`rate_limit.max_room_creations`). @default 5 */
  maxRoomCreations: number;
  /** Join bucket capacity per client IP (`rate_limit.max_join_attempts`). @default 20 */
  maxJoinAttempts: number;
  /** Refill period of both buckets in ms (`rate_limit.time_window` × 1000). @default 60_000 */
  windowMs: number;
  /** Most client IPs remembered per bucket kind between sweeps. @default 100_000 */
  maxTrackedIps?: number;
}

/** The creation and join buckets of every client IP. */
export class RateLimits {
  readonly #creations: KeyedBuckets;
  readonly #joins: KeyedBuckets;

  /** Creates the buckets; every IP starts with full buckets. */
  constructor(options: RateLimitOptions) {
    this.#creations = new KeyedBuckets(
      options.maxRoomCreations,
      options.windowMs,
      options.maxTrackedIps,
    );
    this.#joins = new KeyedBuckets(
      options.maxJoinAttempts,
      options.windowMs,
      options.maxTrackedIps,
    );
  }

  /** Takes a room-creation token for `ip` at `now` (ms). */
  takeCreation(ip: string, now: number): Take {
    return this.#creations.take(ip, now);
  }

  /** Takes a join-attempt token for `ip` at `now` (ms) (JoinRoom with a code, spectate, lookup). */
  takeJoin(ip: string, now: number): Take {
    return this.#joins.take(ip, now);
  }

  /** Forgets buckets that have been full for longer than the window (SERVER.md §4.2 step 4). */
  sweep(now: number): void {
    this.#creations.sweep(now);
    this.#joins.sweep(now);
  }

  /** Number of remembered buckets (creation + join), for tests and metrics. */
  get size(): number {
    return this.#creations.size + this.#joins.size;
  }
}

/** `RoomJoinFailed.reason` when the creation bucket is empty (PROTOCOL.md §7.2.1). */
export function creationLimitReason(retryAfterSecs: number): string {
  return `Room creation rate limit exceeded. Try again in ${retryAfterSecs} seconds.`;
}

/** Reason when the join bucket is empty (PROTOCOL.md §7.2.1, §7.9; SERVER.md §1.10). */
export function joinLimitReason(retryAfterSecs: number): string {
  return `Join attempt rate limit exceeded. Try again in ${retryAfterSecs} seconds.`;
}
