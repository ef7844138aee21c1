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

import { KeyedBuckets, TokenBucket } from "../engine/token_bucket.ts";

/** Settings of {@linkcode ForwardBudget}. */
export interface ForwardBudgetOptions {
  /**
   * Bytes per second one connection may forward to remote homes, on average
   * (`cluster.max_forward_bytes_per_sec`); it may forward twice that in one burst. ≥ 1
   * (`Infinity` = no limit of this kind).
   */
  perConnection: number;
  /**
   * Bytes per second all connections of one client address (docs/spec/SERVER.md §1.9 key) may
   * forward together (`cluster.max_forward_bytes_per_sec_per_ip`); bursts of twice that. ≥ 1.
   */
  perIp: number;
  /** Most addresses remembered (least recently used forgotten first). @default 100_000 */
  maxTrackedIps?: number;
}

/** Per-connection state: created by {@linkcode ForwardBudget.connection}, kept by the caller. */
export type ConnectionBudget = TokenBucket;

/** The window of both buckets: a burst is two seconds' worth. */
const BURST_MS = 2_000;

/**
 * Byte token buckets (src/engine/token_bucket.ts, charged into debt) per connection and per
 * client address. Pure: the caller passes the time in (ms) and holds reads for what
 * {@linkcode ForwardBudget.charge} returns.
 */
export class ForwardBudget {
  readonly #perConnection: number;
  readonly #ips: KeyedBuckets;

  /** Throws `RangeError` for a rate below 1 byte per second. */
  constructor(options: ForwardBudgetOptions) {
    if (!(options.perConnection >= 1) || !(options.perIp >= 1)) {
      throw new RangeError(
        `Cannot create a forwarding budget: rates (${options.perConnection}, ${options.perIp} bytes/s) must be >= 1`,
      );
    }
    this.#perConnection = options.perConnection;
    this.#ips = new KeyedBuckets(2 * options.perIp, BURST_MS, options.maxTrackedIps);
  }

  /** A new connection's bucket, full. */
  connection(): ConnectionBudget {
    return new TokenBucket(2 * this.#perConnection, BURST_MS);
  }

  /**
   * Forgets the addresses whose bucket has been full for longer than its burst window
   * (the maintenance sweep, docs/spec/SERVER.md §4.2): they would otherwise stay until
   * `maxTrackedIps` pushed them out.
   */
  sweep(now: number): void {
    this.#ips.sweep(now);
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
    return Math.max(connection.charge(bytes, now), this.#ips.charge(ip, bytes, now));
  }
}
