/**
 * The publishes of one bus that Redis has not answered yet (docs/spec/SERVER.md §8.5.1 "unknown
 * outcome"), oldest first, with one timer for the oldest. A publish unanswered within the
 * timeout (`cluster.forward_timeout_ms`) counts as lost: the bus reports it like a failed one,
 * so the pair resyncs. While the oldest unanswered publish has timed out, Redis is not answering
 * (paused, or the connection silently dead): the bus sends nothing more and reports each new
 * envelope lost at once, so the unanswered publishes stay bounded by what was sent within one
 * timeout instead of piling up for as long as Redis stays silent.
 *
 * Shared by the Redis bus and its in-memory twin, so the twin's fault injection tests the same
 * code.
 *
 * @module
 */
import type { NodeId } from "./types.ts";

/** One publish awaiting its answer. */
export interface Flight {
  readonly to: NodeId;
  readonly heartbeat: boolean;
  /** Send time, ms ({@linkcode PublishWatch}'s clock). */
  readonly at: number;
  /** 0 waiting, 1 answered, 2 timed out (then answered late or never). */
  state: 0 | 1 | 2;
}

/** Answered flights this far ahead of the array's end are cut off in one splice. */
const COMPACT_AT = 1024;

/** In-flight publishes of one bus and their timeout. */
export class PublishWatch {
  readonly #timeoutMs: number;
  readonly #onTimeout: (flight: Flight) => void;
  readonly #now: () => number;
  readonly #queue: Flight[] = [];
  /** Index of the oldest flight that may still be unanswered. */
  #head = 0;
  /** Index of the oldest flight that may still be waiting (not timed out). */
  #cursor = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Publishes that timed out (docs/spec/SERVER.md §6.3 #82). */
  timedOut = 0;
  /** Publishes not sent because an older one had timed out unanswered (§6.3 #82). */
  refused = 0;

  /**
   * A watch timing out publishes after `timeoutMs` ms; `onTimeout` is told each one (once).
   * `now` is the clock in ms. @default performance.now
   */
  constructor(timeoutMs: number, onTimeout: (flight: Flight) => void, now?: () => number) {
    this.#timeoutMs = timeoutMs;
    this.#onTimeout = onTimeout;
    this.#now = now ?? (() => performance.now());
  }

  /**
   * True while the oldest unanswered publish has timed out: Redis is not answering, and a new
   * publish should not be sent (it is counted in {@linkcode PublishWatch.refused}).
   */
  refuse(): boolean {
    const head = this.#queue[this.#head];
    if (head === undefined || head.state !== 2) return false;
    this.refused++;
    return true;
  }

  /** Records a publish to `to` just sent. */
  begin(to: NodeId, heartbeat: boolean): Flight {
    const flight: Flight = { to, heartbeat, at: this.#now(), state: 0 };
    this.#queue.push(flight);
    this.#timer ??= setTimeout(() => this.#expire(), this.#timeoutMs);
    return flight;
  }

  /** Redis answered `flight` (or its connection failed it): false if it had already timed out. */
  end(flight: Flight): boolean {
    const waiting = flight.state === 0;
    flight.state = 1;
    const queue = this.#queue;
    while (this.#head < queue.length && queue[this.#head]!.state === 1) this.#head++;
    if (this.#head === queue.length) {
      queue.length = 0;
      this.#head = this.#cursor = 0;
    } else if (this.#head >= COMPACT_AT && this.#head * 2 >= queue.length) {
      queue.splice(0, this.#head);
      this.#cursor = Math.max(0, this.#cursor - this.#head);
      this.#head = 0;
    }
    return waiting;
  }

  /** Publishes awaiting an answer, timed out ones included. */
  get pending(): number {
    let n = 0;
    for (let i = this.#head; i < this.#queue.length; i++) if (this.#queue[i]!.state !== 1) n++;
    return n;
  }

  /** Stops the timer (the bus is closing). */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Times out every flight older than the timeout, then waits for the next one's deadline. */
  #expire(): void {
    this.#timer = undefined;
    const queue = this.#queue;
    const now = this.#now();
    this.#cursor = Math.max(this.#cursor, this.#head);
    while (this.#cursor < queue.length) {
      const flight = queue[this.#cursor]!;
      if (flight.state === 0) {
        const left = flight.at + this.#timeoutMs - now;
        if (left > 0) {
          this.#timer = setTimeout(() => this.#expire(), left);
          return;
        }
        flight.state = 2;
        this.timedOut++;
        this.#onTimeout(flight);
      }
      this.#cursor++;
    }
  }
}
