/**
 * The operator console's event stream across the cluster (docs/spec/EXTENSIONS.md E12 note,
 * docs/spec/SERVER.md §8.3 channels `operator:watch` and `operator:events`): each instance's
 * `room` and `action` events reach the streams of every instance, not only its own.
 *
 * Nothing is published while nobody watches. A node whose console has readers sends a watch
 * notice on `operator:watch` at once and every `leaseMs / 3` while they stay, and listens to
 * `operator:events`; a node that heard another node's notice within `leaseMs` publishes its own
 * events there, at most `maxPerSecond` a second (a token bucket), and says each second how many
 * it left out (a `skipped` event), and its live sample every second: a watching node sums those
 * into the `cluster` figures of its own samples. Receivers drop their own events (their stream
 * has them already) and anything that is not a well-formed event. Publishes are fire and forget: the
 * console's log may miss events while Redis is away, never the engine.
 *
 * @module
 */
import type {
  ClusterSample,
  FeedEvent,
  FeedRelay,
  FeedSample,
  LaterFigure,
} from "../metrics/operator_feed.ts";
import { TokenBucket } from "../engine/token_bucket.ts";
import type { ClusterBus, NodeId } from "./types.ts";

/** Settings of {@linkcode ClusterOperatorEvents}. */
export interface OperatorEventsOptions {
  /** How long one watch notice makes other nodes publish, ms. @default 15000 */
  leaseMs?: number;
  /** Events a node publishes per second at most (the bucket's capacity and rate). @default 200 */
  maxPerSecond?: number;
  /** The clock, ms. @default Date.now */
  now?: () => number;
}

/** How old another node's latest sample may be and still count in the sums, ms. */
const SAMPLE_AGE_MS = 3_000;

/** A watch notice on `operator:watch`. */
interface WatchNotice {
  from: NodeId;
  lease_ms: number;
}

/** Another node's sample as it may arrive: an older version's lacks the later figures. */
type ReceivedSample = Omit<FeedSample, LaterFigure> & Partial<Pick<FeedSample, LaterFigure>>;

/** An event on `operator:events`. */
interface RelayedEvent {
  from: NodeId;
  event: FeedEvent;
}

/** The {@linkcode FeedRelay} of one node in cluster mode. */
export class ClusterOperatorEvents implements FeedRelay {
  readonly #bus: ClusterBus;
  readonly #node: NodeId;
  readonly #leaseMs: number;
  readonly #now: () => number;
  /** Receives other nodes' events (the feed's `deliver`). */
  readonly #deliver: (event: FeedEvent) => void;
  /** This node's stream readers. */
  #readers = 0;
  /** Until when (ms) another node's console watches. */
  #watchedUntil = 0;
  /** When this node last sent a watch notice, ms. */
  #noticeAt = -Infinity;
  /** Whether the `operator:watch` subscription is in place (or being made). */
  #hearing: "no" | "pending" | "yes" = "no";
  /** Whether `operator:events` is subscribed (or being subscribed): while there are readers. */
  #listening: "no" | "pending" | "yes" = "no";
  /** At most `maxPerSecond` events a second are published. */
  readonly #bucket: TokenBucket;
  /** The latest sample of each other node, and when it arrived (ms). */
  readonly #samples = new Map<NodeId, { sample: ReceivedSample; at: number }>();
  /** Events left out by the bucket since the last `skipped` event. */
  #skipped = 0;
  /** Events published and received, and left out (tests, status). */
  readonly counts = { published: 0, received: 0, skipped: 0 };

  /**
   * The relay of node `node` on `bus`; other nodes' events go to `deliver`. Subscribes to the
   * watch notices at once (and again at each tick until that succeeds).
   */
  constructor(
    bus: ClusterBus,
    node: NodeId,
    deliver: (event: FeedEvent) => void,
    options: OperatorEventsOptions = {},
  ) {
    this.#bus = bus;
    this.#node = node;
    this.#deliver = deliver;
    this.#leaseMs = options.leaseMs ?? 15_000;
    this.#now = options.now ?? Date.now;
    this.#bucket = new TokenBucket(options.maxPerSecond ?? 200, 1000);
    this.#hear();
  }

  get wanted(): boolean {
    return this.#now() < this.#watchedUntil;
  }

  forward(event: FeedEvent): void {
    if (!this.wanted) return;
    if (!this.#bucket.take(this.#now()).ok) {
      this.#skipped++;
      this.counts.skipped++;
      return;
    }
    this.#publish(event);
  }

  subscribers(count: number): void {
    const before = this.#readers;
    this.#readers = count;
    if (before === 0 && count > 0) {
      this.#listen();
      this.#notice(this.#now());
    } else if (before > 0 && count === 0) {
      this.#unlisten();
    }
  }

  tick(now: number, sample: FeedSample): ClusterSample | undefined {
    if (this.#hearing === "no") this.#hear();
    // Samples are exempt from the bucket: one a second.
    if (this.wanted) this.#publish({ event: "sample", data: sample });
    if (this.#readers > 0) {
      if (this.#listening === "no") this.#listen();
      if (now - this.#noticeAt >= this.#leaseMs / 3) this.#notice(now);
    }
    if (this.#skipped > 0) {
      if (this.wanted) {
        this.#publish({ event: "skipped", data: { count: this.#skipped, instance: this.#node } });
      }
      this.#skipped = 0;
    }
    return this.#readers > 0 ? this.#sum(sample, now) : undefined;
  }

  /**
   * `local` plus the latest sample of every other node heard within 3 s. A later figure that a
   * sample lacks counts 0 and is named in `partial`.
   */
  #sum(local: FeedSample, now: number): ClusterSample {
    const sum: ClusterSample = { instances: 1, relay_p99_ms: local.relay_p99_ms } as ClusterSample;
    for (const key of SAMPLE_FIGURES) sum[key] = local[key];
    for (const key of LATER_FIGURES) sum[key] = local[key];
    const partial = new Set<LaterFigure>();
    for (const [node, { sample, at }] of this.#samples) {
      if (now - at > SAMPLE_AGE_MS) {
        this.#samples.delete(node);
        continue;
      }
      sum.instances++;
      // Rates are rounded like a sample's (two decimals); counts stay whole.
      for (const key of SAMPLE_FIGURES) sum[key] = round(sum[key] + sample[key]);
      for (const key of LATER_FIGURES) {
        const value = sample[key];
        if (value === undefined) partial.add(key);
        else sum[key] = round(sum[key] + value);
      }
      if (sample.relay_p99_ms !== null) {
        sum.relay_p99_ms = Math.max(sum.relay_p99_ms ?? 0, sample.relay_p99_ms);
      }
    }
    if (partial.size > 0) sum.partial = [...partial];
    return sum;
  }

  #publish(event: FeedEvent): void {
    this.counts.published++;
    this.#bus.broadcast("events", JSON.stringify({ from: this.#node, event } as RelayedEvent));
  }

  #notice(now: number): void {
    this.#noticeAt = now;
    this.#bus.broadcast(
      "watch",
      JSON.stringify({ from: this.#node, lease_ms: this.#leaseMs } as WatchNotice),
    );
  }

  #hear(): void {
    this.#hearing = "pending";
    this.#bus.listen("watch", (payload) => this.#heard(payload)).then(
      () => this.#hearing = "yes",
      () => this.#hearing = "no",
    );
  }

  #listen(): void {
    this.#listening = "pending";
    this.#bus.listen("events", (payload) => this.#received(payload)).then(
      () => {
        this.#listening = "yes";
        // The readers may have left meanwhile.
        if (this.#readers === 0) this.#unlisten();
      },
      () => this.#listening = "no",
    );
  }

  #unlisten(): void {
    if (this.#listening === "no") return;
    this.#listening = "no";
    this.#bus.listen("events", undefined).catch(() => {});
  }

  #heard(payload: string): void {
    const notice = parse(payload) as Partial<WatchNotice> | undefined;
    if (
      notice === undefined || typeof notice.from !== "string" || notice.from === this.#node ||
      typeof notice.lease_ms !== "number" || !(notice.lease_ms > 0)
    ) {
      return;
    }
    // At most one lease ahead of this node's own setting, whatever a notice says.
    const until = this.#now() + Math.min(notice.lease_ms, this.#leaseMs);
    if (until > this.#watchedUntil) this.#watchedUntil = until;
  }

  #received(payload: string): void {
    if (this.#readers === 0) return;
    const relayed = parse(payload) as Partial<RelayedEvent> | undefined;
    if (
      relayed === undefined || typeof relayed.from !== "string" || relayed.from === this.#node ||
      !isFeedEvent(relayed.event)
    ) {
      return;
    }
    this.counts.received++;
    if (relayed.event.event === "sample") {
      // Kept for the sums, not shown as this instance's figures.
      this.#samples.set(relayed.from, { sample: relayed.event.data, at: this.#now() });
      return;
    }
    this.#deliver(relayed.event);
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

function parse(payload: string): unknown {
  try {
    const value: unknown = JSON.parse(payload);
    return typeof value === "object" && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Figures a relayed `sample` must carry as numbers (`relay_p99_ms` may be `null`), and that the
 * cluster's sums add up.
 */
const SAMPLE_FIGURES = [
  "connections",
  "rooms",
  "players",
  "spectators",
  "held_seats",
  "delivered_per_sec",
  "rejections_per_sec",
] as const;

/**
 * Figures the cluster's sums add up that a relayed `sample` may lack (an older instance's, during
 * a rolling deploy: the sum then names them in `partial`), numbers when present.
 */
const LATER_FIGURES: readonly LaterFigure[] = [
  "connection_closes_per_sec",
  "connection_drops_per_sec",
];

/** A `room`, `action`, `skipped` or well-formed `sample` event with a data object. */
function isFeedEvent(value: unknown): value is FeedEvent {
  if (typeof value !== "object" || value === null) return false;
  const { event, data } = value as { event?: unknown; data?: unknown };
  if (typeof data !== "object" || data === null || Array.isArray(data)) return false;
  if (event === "sample") {
    const figures = data as Record<string, unknown>;
    return SAMPLE_FIGURES.every((key) => Number.isFinite(figures[key])) &&
      LATER_FIGURES.every((key) => figures[key] === undefined || Number.isFinite(figures[key])) &&
      (figures.relay_p99_ms === null || Number.isFinite(figures.relay_p99_ms));
  }
  return event === "room" || event === "action" || event === "skipped";
}
