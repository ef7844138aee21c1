/**
 * Cluster mode's forwarding budget (docs/spec/SERVER.md §8.4.1 note, SECURITY.md "Cluster
 * mode's Redis"): how many bytes of frames an edge forwards to rooms homed on other nodes, per
 * connection and per client address, before it stops reading them for a while.
 *
 * One process reads a client only as fast as it handles its frames. An edge forwarding to a
 * remote home does not: it publishes as fast as it reads, and when the home cannot take that
 * rate Redis buffers the home's channel until it cuts the subscriber off at its output-buffer
 * limit — and every connection between the two nodes is resynced (close 1012). One client
 * flooding its own room did that to players of other rooms. Here each connection's frames to a
 * remote home are charged, in bytes, to two token buckets (the connection's and its address's,
 * full at start, refilled continuously); a frame that leaves either in debt is still forwarded
 * (nothing accepted is dropped) and the caller holds the connection's reads until the debt is
 * paid, so the client's TCP window does the rest.
 *
 * @module
 */

/** A bucket's allowance in bytes and when it was last brought up to date (ms). */
interface Level {
  bytes: number;
  at: number;
}

/** Settings of {@linkcode ForwardBudget}. */
export interface ForwardBudgetOptions {
  /**
   * Bytes per second one connection may forward to remote homes, on average
   * (`cluster.max_forward_bytes_per_sec`); it may forward twice that in one burst. ≥ 1.
   */
  perConnection: number;
  /**
   * Bytes per second all connections of one client address (docs/spec/SERVER.md §1.9 key) may
   * forward together (`cluster.max_forward_bytes_per_sec_per_ip`); bursts of twice that. ≥ 1.
   */
  perIp: number;
  /** Most addresses remembered; past it the buckets that are full again are forgotten. @default 100_000 */
  maxTrackedIps?: number;
}

/** Per-connection state: created by {@linkcode ForwardBudget.connection}, kept by the caller. */
export type ConnectionBudget = Level;

/**
 * Byte token buckets per connection and per client address. Pure: the caller passes the time
 * in (ms) and holds reads for what {@linkcode ForwardBudget.charge} returns.
 */
export class ForwardBudget {
  readonly #perConnection: number;
  readonly #perIp: number;
  readonly #maxTrackedIps: number;
  readonly #ips = new Map<string, Level>();

  /** Throws `RangeError` for a rate below 1 byte per second. */
  constructor(options: ForwardBudgetOptions) {
    if (!(options.perConnection >= 1) || !(options.perIp >= 1)) {
      throw new RangeError(
        `Cannot create a forwarding budget: rates (${options.perConnection}, ${options.perIp} bytes/s) must be >= 1`,
      );
    }
    this.#perConnection = options.perConnection;
    this.#perIp = options.perIp;
    this.#maxTrackedIps = options.maxTrackedIps ?? 100_000;
  }

  /** A new connection's bucket, full at `now` (ms). */
  connection(now: number): ConnectionBudget {
    return { bytes: 2 * this.#perConnection, at: now };
  }

  /** Addresses with a bucket now. */
  get trackedIps(): number {
    return this.#ips.size;
  }

  /**
   * Charges `bytes` forwarded at `now` (ms) to `connection`'s bucket and to `ip`'s. Returns how
   * long to hold the connection's reads, ms: 0 while both buckets have allowance left, else the
   * time until the deeper debt is paid (at least 1).
   */
  charge(connection: ConnectionBudget, ip: string, bytes: number, now: number): number {
    const own = take(connection, this.#perConnection, bytes, now);
    let shared = this.#ips.get(ip);
    if (shared === undefined) {
      if (this.#ips.size >= this.#maxTrackedIps) this.#forgetFull(now);
      shared = { bytes: 2 * this.#perIp, at: now };
      this.#ips.set(ip, shared);
    }
    const address = take(shared, this.#perIp, bytes, now);
    return Math.max(own, address);
  }

  /** Forgets the addresses whose buckets have refilled (a forgotten bucket starts full anyway). */
  #forgetFull(now: number): void {
    const capacity = 2 * this.#perIp;
    for (const [ip, level] of this.#ips) {
      if (level.bytes + (now - level.at) * this.#perIp / 1000 >= capacity) this.#ips.delete(ip);
    }
    // Every address still in debt: forget the oldest inserted, so memory stays bounded.
    if (this.#ips.size >= this.#maxTrackedIps) {
      this.#ips.delete(this.#ips.keys().next().value!);
    }
  }
}

/**
 * Refills `level` (capacity two seconds of `perSecond`) up to `now`, takes `bytes` (the level
 * may go negative) and returns the ms until it is back at 0, or 0 when it is not below.
 */
function take(level: Level, perSecond: number, bytes: number, now: number): number {
  const capacity = 2 * perSecond;
  if (now > level.at) {
    level.bytes = Math.min(capacity, level.bytes + (now - level.at) * perSecond / 1000);
    level.at = now;
  }
  level.bytes -= bytes;
  return level.bytes >= 0 ? 0 : Math.max(1, Math.ceil(-level.bytes * 1000 / perSecond));
}
