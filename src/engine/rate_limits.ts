/**
 * Per-client-IP room creation and join-attempt limits (docs/spec/PROTOCOL.md §7.13, docs/spec/SERVER.md §3.4).
 * One instance is shared by the engine (`JoinRoom`, `JoinAsSpectator`) and the HTTP room lookup
 * and listing (docs/spec/SERVER.md §1.10), so every counted request draws from the same buckets.
 *
 * @module
 */
import { KeyedBuckets, type Take } from "./token_bucket.ts";

export type { Take } from "./token_bucket.ts";

/** Settings of {@linkcode RateLimits}; `rate_limit.*` of docs/spec/SERVER.md §2.7. */
export interface RateLimitOptions {
  /** Creation bucket capacity per client IP (`rate_limit.max_room_creations`). @default 5 */
  maxRoomCreations: number;
  /** Join bucket capacity per client IP (`rate_limit.max_join_attempts`). @default 20 */
  maxJoinAttempts: number;
  /**
   * Reconnect bucket capacity per client IP (`rate_limit.max_reconnect_attempts`, docs/spec/SERVER.md
   * §3.4). @default 60
   */
  maxReconnectAttempts?: number;
  /**
   * Failed `Authenticate` attempts (unknown app, wrong secret) per client IP and window
   * (`rate_limit.max_auth_failures`, SECURITY.md); an IP with none left is refused before its
   * secret is checked. @default 10
   */
  maxAuthFailures?: number;
  /** Refill period of every bucket in ms (`rate_limit.time_window` × 1000). @default 60_000 */
  windowMs: number;
  /** Most client IPs remembered per bucket kind between sweeps. @default 100_000 */
  maxTrackedIps?: number;
  /**
   * Cluster mode: the edge takes the creation, join and reconnect tokens from the global buckets
   * in Redis before a request reaches the engine (docs/spec/SERVER.md §8.2, §8.3), so
   * {@linkcode RateLimits.takeCreation}, {@linkcode RateLimits.takeJoin} and
   * {@linkcode RateLimits.takeReconnect} always succeed here. @default false
   */
  roomTokensElsewhere?: boolean;
  /**
   * Cluster mode: the failed-`Authenticate` budget lives in Redis; the edge looks it up and
   * runs the engine inside {@linkcode RateLimits.withAuthVerdict}, which answers
   * {@linkcode RateLimits.canFailAuth} and records the charge for the edge to take globally.
   * @default false
   */
  authFailuresElsewhere?: boolean;
}

const TAKEN: Take = { ok: true };

/** The creation and join buckets of every client IP. */
export class RateLimits {
  readonly #creations: KeyedBuckets;
  readonly #joins: KeyedBuckets;
  readonly #reconnects: KeyedBuckets;
  readonly #authFailures: KeyedBuckets;
  readonly #roomTokensElsewhere: boolean;
  readonly #authFailuresElsewhere: boolean;
  /** The global verdict while {@linkcode RateLimits.withAuthVerdict} runs. */
  #authVerdict: Take | undefined;
  #authCharged = false;
  /** The global app-bucket take while {@linkcode RateLimits.withAuthVerdict} runs. */
  #appTake: Take | undefined;

  /** Creates the buckets; every IP starts with full buckets. */
  constructor(options: RateLimitOptions) {
    this.#roomTokensElsewhere = options.roomTokensElsewhere ?? false;
    this.#authFailuresElsewhere = options.authFailuresElsewhere ?? false;
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
    this.#reconnects = new KeyedBuckets(
      options.maxReconnectAttempts ?? 60,
      options.windowMs,
      options.maxTrackedIps,
    );
    this.#authFailures = new KeyedBuckets(
      options.maxAuthFailures ?? 10,
      options.windowMs,
      options.maxTrackedIps,
    );
  }

  /** Takes a room-creation token for `ip` at `now` (ms). */
  takeCreation(ip: string, now: number): Take {
    if (this.#roomTokensElsewhere) return TAKEN;
    return this.#creations.take(ip, now);
  }

  /** Takes a join-attempt token for `ip` at `now` (ms) (JoinRoom with a code, spectate, lookup). */
  takeJoin(ip: string, now: number): Take {
    if (this.#roomTokensElsewhere) return TAKEN;
    return this.#joins.take(ip, now);
  }

  /** Takes a reconnect token for `ip` at `now` (ms) (`Reconnect`, docs/spec/SERVER.md §3.4). */
  takeReconnect(ip: string, now: number): Take {
    if (this.#roomTokensElsewhere) return TAKEN;
    return this.#reconnects.take(ip, now);
  }

  /** Whether `ip` has failed-`Authenticate` budget left at `now` (ms); takes nothing. */
  canFailAuth(ip: string, now: number): Take {
    if (this.#authFailuresElsewhere) return this.#authVerdict ?? TAKEN;
    return this.#authFailures.check(ip, now);
  }

  /** Charges one failed `Authenticate` (unknown app, wrong secret) to `ip` at `now` (ms). */
  chargeAuthFailure(ip: string, now: number): void {
    if (this.#authFailuresElsewhere) {
      this.#authCharged = true;
      return;
    }
    this.#authFailures.take(ip, now);
  }

  /**
   * Cluster mode (`authFailuresElsewhere`): runs `handle` (the engine's answer to one
   * `Authenticate`) with `verdict`, the global budget the edge read, as the answer of
   * {@linkcode RateLimits.canFailAuth}, and `appTake`, the edge's take from the app's global
   * bucket (when the app has one and the secret is right), as the app bucket's answer
   * ({@linkcode RateLimits.appTake}). `charged` tells whether the attempt failed and must be
   * taken from the global failure bucket.
   */
  withAuthVerdict<T>(
    verdict: Take,
    handle: () => T,
    appTake?: Take,
  ): { result: T; charged: boolean } {
    this.#authVerdict = verdict;
    this.#appTake = appTake;
    this.#authCharged = false;
    try {
      const result = handle();
      return { result, charged: this.#authCharged };
    } finally {
      this.#authVerdict = undefined;
      this.#appTake = undefined;
      this.#authCharged = false;
    }
  }

  /**
   * Cluster mode (`authFailuresElsewhere`): the outcome of the take from the app's global
   * `Authenticate` bucket (docs/spec/SERVER.md §3.3, §8.3) that the edge made for the
   * `Authenticate` now being answered inside {@linkcode RateLimits.withAuthVerdict}; `undefined`
   * otherwise (the app's bucket in this process is used).
   */
  appTake(): Take | undefined {
    return this.#authFailuresElsewhere ? this.#appTake : undefined;
  }

  /** The bucket of `kind` (the {@linkcode TokenBuckets} seam in single-instance mode). */
  bucket(kind: "creation" | "join" | "reconnect" | "auth_failure"): KeyedBuckets {
    return kind === "creation"
      ? this.#creations
      : kind === "join"
      ? this.#joins
      : kind === "reconnect"
      ? this.#reconnects
      : this.#authFailures;
  }

  /** Forgets buckets that have been full for longer than the window (docs/spec/SERVER.md §4.2 step 4). */
  sweep(now: number): void {
    this.#creations.sweep(now);
    this.#joins.sweep(now);
    this.#reconnects.sweep(now);
    this.#authFailures.sweep(now);
  }

  /** Number of remembered buckets (creation + join), for tests and metrics. */
  get size(): number {
    return this.#creations.size + this.#joins.size + this.#reconnects.size +
      this.#authFailures.size;
  }
}

/** `RoomJoinFailed.reason` when the creation bucket is empty (docs/spec/PROTOCOL.md §7.2.1). */
export function creationLimitReason(retryAfterSecs: number): string {
  return `Room creation rate limit exceeded. Try again in ${retryAfterSecs} seconds.`;
}

/** `ReconnectionFailed.reason` when the reconnect bucket is empty (docs/spec/SERVER.md §3.4). */
export function reconnectLimitReason(retryAfterSecs: number): string {
  return `Reconnect attempt rate limit exceeded. Try again in ${retryAfterSecs} seconds.`;
}

/**
 * Reason when a player's lobby-change bucket is empty (`rate_limit.max_lobby_changes`,
 * docs/spec/PROTOCOL.md §7.4 note): `Error.message` for `PlayerReady`, `AuthorityResponse.reason`
 * for `AuthorityRequest`.
 */
export function lobbyChangeLimitReason(retryAfterSecs: number): string {
  return `Lobby change rate limit exceeded. Try again in ${retryAfterSecs} seconds.`;
}

/** Reason when the join bucket is empty (docs/spec/PROTOCOL.md §7.2.1, §7.9; docs/spec/SERVER.md §1.10). */
export function joinLimitReason(retryAfterSecs: number): string {
  return `Join attempt rate limit exceeded. Try again in ${retryAfterSecs} seconds.`;
}
