/**
 * The token-bucket seam (docs/spec/PROTOCOL.md §7.13, docs/spec/SERVER.md §3.4, §8.3 "Take"): per-client-IP room
 * creation and join buckets, taken at the edge before a request reaches a room. In memory the
 * buckets are this process's ({@linkcode RateLimits}); in a cluster they live in Redis and are
 * global.
 *
 * @module
 */
import type { Awaitable } from "./awaitable.ts";

/**
 * Which bucket, per IP: room creations, join attempts (lookups and listings included),
 * `Reconnect` attempts (`rate_limit.max_reconnect_attempts`, docs/spec/SERVER.md §3.4), or failed
 * `Authenticate` attempts (`rate_limit.max_auth_failures`: checked before, taken on a failure).
 */
export type BucketKind = "creation" | "join" | "reconnect" | "auth_failure";

/** The answer to a take: a token was taken, or how long until one is available. */
export type BucketTake =
  | { ok: true }
  /** Whole seconds until a token is available, rounded up, at least 1. */
  | { ok: false; retryAfterSecs: number };

/** Token buckets keyed by kind and key (a client IP). */
export interface TokenBuckets {
  /**
   * Takes one token from bucket `(kind, key)` at `now` (ms since the epoch, the caller's clock);
   * a missing bucket starts full. Memory answers synchronously, Redis with a Promise
   * ({@linkcode Awaitable}). A cluster's shared buckets refill by Redis's clock, not by `now`
   * (docs/spec/SERVER.md §8.1), which then times only the local bucket the caller falls back to
   * when Redis cannot be reached. Guarantee: each call takes at most one token, exactly once (no
   * retries that could double a take).
   */
  take(kind: BucketKind, key: string, now: number): Awaitable<BucketTake>;
  /**
   * Whether bucket `(kind, key)` has a token at `now`, taking none (the failed-`Authenticate`
   * budget is looked at before a secret is checked). Same clocks and fallback as
   * {@linkcode take}.
   */
  check(kind: BucketKind, key: string, now: number): Awaitable<BucketTake>;
}
