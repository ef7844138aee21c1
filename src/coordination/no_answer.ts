/**
 * The error of a request that went out and got no answer in time (a Redis command under
 * `cluster.forward_timeout_ms`, docs/spec/SERVER.md §8.5.5): unlike a refusal, the request may
 * still be carried out, so whoever asked must read the state again to learn the outcome (the
 * operator API answers `504`, docs/spec/EXTENSIONS.md E12).
 *
 * @module
 */

/** A request sent without an answer in time: its outcome is unknown. */
export class NoAnswer extends Error {
  /** @param message what was asked and how long it waited, e.g. `Redis maintenance timed out after 500 ms` */
  constructor(message: string) {
    super(message);
    this.name = "NoAnswer";
  }
}
