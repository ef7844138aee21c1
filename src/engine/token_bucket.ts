/**
 * Token buckets in the engine's pure style: no timers, the caller passes the time in (ms).
 * Used for the per-IP creation and join limits (docs/spec/SERVER.md §3.4), the per-app `Authenticate`
 * limit (§3.3) and the HTTP room lookup (§1.10).
 *
 * Arithmetic is exact: a bucket's level is kept in "token-milliseconds", where one token is
 * `windowMs` units and the bucket refills `capacity` units per millisecond, so capacity tokens
 * come back per window without floating-point drift.
 *
 * @module
 */

/** The outcome of taking one token. */
export type Take =
  | { ok: true }
  /** `retryAfterSecs`: whole seconds until a token is available, rounded up, at least 1. */
  | { ok: false; retryAfterSecs: number };

const TAKEN: Take = { ok: true };

/** Level and update time of one bucket. */
interface Level {
  /** Tokens × `windowMs`. */
  units: number;
  /** When `units` was last brought up to date, ms. */
  at: number;
}

/**
 * One token bucket: `capacity` tokens, refilled continuously at `capacity` per `windowMs`,
 * starting full.
 */
export class TokenBucket {
  readonly capacity: number;
  readonly windowMs: number;
  #level: Level | undefined;

  /** @param capacity tokens (≥ 1) @param windowMs refill period of `capacity` tokens, ms (≥ 1) */
  constructor(capacity: number, windowMs: number) {
    if (!(capacity >= 1) || !(windowMs >= 1)) {
      throw new RangeError(
        `Cannot create a token bucket: capacity (${capacity}) and window (${windowMs} ms) must be >= 1`,
      );
    }
    this.capacity = capacity;
    this.windowMs = windowMs;
  }

  /** Takes one token at `now` (ms), or says how long until one is available. */
  take(now: number): Take {
    const level = this.#level ??= { units: this.capacity * this.windowMs, at: now };
    return takeFrom(level, this.capacity, this.windowMs, now);
  }

  /**
   * Takes `amount` tokens at `now` (ms) whatever is left: the bucket may go into debt. Returns
   * the ms until it is out of debt again (at least 1), or 0 when it is not in debt (cluster
   * mode's forwarding budget counts bytes this way, src/transport/forward_budget.ts).
   */
  charge(amount: number, now: number): number {
    const level = this.#level ??= { units: this.capacity * this.windowMs, at: now };
    return chargeFrom(level, this.capacity, this.windowMs, amount, now);
  }
}

/**
 * Token buckets keyed by a string (a client IP), all with the same capacity and window. A bucket
 * that has been full for longer than `windowMs` is forgotten by {@linkcode sweep} (docs/spec/SERVER.md
 * §4.2 step 4); forgetting is invisible, because a new bucket starts full. `maxKeys` bounds
 * memory between sweeps: a new key beyond it drops the least recently used bucket (which
 * resets that key's limit, the price of bounded memory under a flood of source addresses).
 */
export class KeyedBuckets {
  readonly capacity: number;
  readonly windowMs: number;
  readonly maxKeys: number;
  /** Buckets in least-recently-used order (a take moves its key to the end). */
  readonly #levels = new Map<string, Level>();

  /**
   * @param capacity tokens per bucket (≥ 1)
   * @param windowMs refill period of `capacity` tokens, ms (≥ 1)
   * @param maxKeys most buckets kept at once @default 100_000
   */
  constructor(capacity: number, windowMs: number, maxKeys = 100_000) {
    new TokenBucket(capacity, windowMs); // validates the arguments
    this.capacity = capacity;
    this.windowMs = windowMs;
    this.maxKeys = Math.max(1, maxKeys);
  }

  /** Number of buckets currently remembered. */
  get size(): number {
    return this.#levels.size;
  }

  /** Takes one token from `key`'s bucket at `now` (ms). */
  take(key: string, now: number): Take {
    return takeFrom(this.#touch(key, now), this.capacity, this.windowMs, now);
  }

  /** {@linkcode TokenBucket.charge} on `key`'s bucket: ms until it is out of debt, or 0. */
  charge(key: string, amount: number, now: number): number {
    return chargeFrom(this.#touch(key, now), this.capacity, this.windowMs, amount, now);
  }

  /** `key`'s bucket, made the most recently used (a new one starts full). */
  #touch(key: string, now: number): Level {
    let level = this.#levels.get(key);
    if (level) {
      this.#levels.delete(key);
    } else {
      if (this.#levels.size >= this.maxKeys) this.#makeRoom();
      level = { units: this.capacity * this.windowMs, at: now };
    }
    this.#levels.set(key, level);
    return level;
  }

  /**
   * Whether `key` could take a token at `now` (ms), without taking one or remembering the key:
   * `{ ok: true }`, or when one will be available (docs/spec/EXTENSIONS.md E12 checks a client IP's
   * bucket of failed operator logins before looking at the token).
   */
  check(key: string, now: number): Take {
    const level = this.#levels.get(key);
    if (!level) return TAKEN;
    return takeFrom({ ...level }, this.capacity, this.windowMs, now);
  }

  /** When {@linkcode KeyedBuckets.sweepDue} last swept, ms. */
  #sweptAt = -Infinity;

  /**
   * {@linkcode KeyedBuckets.sweep} at most once per `windowMs`: for owners without a timer,
   * called on every use (one comparison when not due).
   */
  sweepDue(now: number): void {
    if (now - this.#sweptAt < this.windowMs) return;
    this.#sweptAt = now;
    this.sweep(now);
  }

  /** Forgets every bucket that has been full for longer than `windowMs` at `now` (ms). */
  sweep(now: number): void {
    for (const [key, level] of this.#levels) {
      if (this.#idle(level, now)) this.#levels.delete(key);
    }
  }

  #idle(level: Level, now: number): boolean {
    const fullAt = level.at + (this.capacity * this.windowMs - level.units) / this.capacity;
    return now - fullAt > this.windowMs;
  }

  /** Drops the least recently used bucket: O(1), and usually one that is full again anyway. */
  #makeRoom(): void {
    const oldest = this.#levels.keys().next();
    if (!oldest.done) this.#levels.delete(oldest.value);
  }
}

/** Brings `level` up to `now` (ms): `capacity` units per ms, at most a full bucket. */
function refill(level: Level, capacity: number, windowMs: number, now: number): void {
  if (now > level.at) {
    level.units = Math.min(capacity * windowMs, level.units + (now - level.at) * capacity);
    level.at = now;
  }
}

/** Takes `amount` tokens into debt if need be; ms until out of debt (≥ 1), else 0. */
function chargeFrom(
  level: Level,
  capacity: number,
  windowMs: number,
  amount: number,
  now: number,
): number {
  refill(level, capacity, windowMs, now);
  level.units -= amount * windowMs;
  return level.units >= 0 ? 0 : Math.max(1, Math.ceil(-level.units / capacity));
}

function takeFrom(level: Level, capacity: number, windowMs: number, now: number): Take {
  refill(level, capacity, windowMs, now);
  if (level.units >= windowMs) {
    level.units -= windowMs;
    return TAKEN;
  }
  const waitMs = (windowMs - level.units) / capacity;
  return { ok: false, retryAfterSecs: Math.max(1, Math.ceil(waitMs / 1000)) };
}

/**
 * One {@linkcode KeyedBuckets} per kind, each with its kind's capacity (tokens) and window (ms):
 * a node's own buckets when the cluster's Redis cannot answer (docs/spec/SERVER.md §8.4.3).
 */
export function keyedBucketsPerKind<K extends string>(
  specs: Readonly<Record<K, { capacity: number; windowMs: number }>>,
): Record<K, KeyedBuckets> {
  const buckets = {} as Record<K, KeyedBuckets>;
  for (const kind of Object.keys(specs) as K[]) {
    buckets[kind] = new KeyedBuckets(specs[kind].capacity, specs[kind].windowMs);
  }
  return buckets;
}

/**
 * Refill period of an app's `Authenticate` bucket, ms: `rate_limit_per_minute` tokens per
 * minute (docs/spec/SERVER.md §3.3).
 */
export const APP_BUCKET_WINDOW_MS = 60_000;

/**
 * A cluster node's own app `Authenticate` buckets, one per app id, answering while the shared
 * store cannot (docs/spec/SERVER.md §3.3, §8.4.3). Only configured apps whose secret was proved
 * reach it, so it holds at most one bucket per configured app; a bucket whose capacity changed
 * (another `perMinute` for the same id) starts again full.
 */
export class AppFallbackBuckets {
  readonly #buckets = new Map<string, TokenBucket>();

  /** Takes one token from app `appId`'s bucket of `perMinute` tokens a minute at `now` (ms). */
  take(appId: string, perMinute: number, now: number): Take {
    let bucket = this.#buckets.get(appId);
    if (bucket === undefined || bucket.capacity !== perMinute) {
      bucket = new TokenBucket(perMinute, APP_BUCKET_WINDOW_MS);
      this.#buckets.set(appId, bucket);
    }
    return bucket.take(now);
  }
}
