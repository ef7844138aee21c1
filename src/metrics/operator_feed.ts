/**
 * The operator console's figures (docs/spec/EXTENSIONS.md E12): an observer of edge and engine
 * events that turns them into samples of the main figures — connections, rooms, players, delivered
 * messages per second, p99 relay latency, refused requests per second, connections ended and
 * dropped (no close handshake) per second — every `liveIntervalMs` for the live event stream, and
 * into a bounded in-memory ring of `historyIntervalMs` samples (15 minutes at 5 s by default) for
 * the history. It also fans room lifecycle events and operator actions out to the stream's
 * subscribers. No I/O: the caller's timer calls {@linkcode OperatorFeed.tick}.
 *
 * @module
 */
import type { EdgeEvent } from "../transport/events.ts";
import { LatencySketch } from "./registry.ts";

/** One sample of the main figures, over the interval that ended at `t`. */
export interface FeedSample {
  /** End of the interval, ms since the epoch. */
  t: number;
  connections: number;
  rooms: number;
  players: number;
  spectators: number;
  held_seats: number;
  /** Game messages handed to recipients (one per recipient) per second. */
  delivered_per_sec: number;
  /** p99 of the sampled relay handling times in the interval, ms; `null` without samples. */
  relay_p99_ms: number | null;
  /**
   * Refused requests per second: failed joins and reconnects, failed authentication, invalid or
   * oversized frames, refused WebSocket upgrades.
   */
  rejections_per_sec: number;
  /**
   * WebSocket connections that ended per second, each counted once whatever its close code and
   * whoever ended it: the rate of `signal_fish_connection_closes_total` (docs/spec/SERVER.md
   * §6.3 #97).
   */
  connection_closes_per_sec: number;
  /**
   * Of those, connections dropped per second: ended without a close handshake (code 1006, any
   * `cause`: reset, EOF, failed write, destroyed; either initiator). Named for connections, since
   * "dropped" in the metrics means undelivered messages (docs/spec/SERVER.md §6.3 #4).
   */
  connection_drops_per_sec: number;
  maintenance: boolean;
  /**
   * Cluster mode, while this instance's stream has readers: the same figures summed over every
   * instance whose latest sample is at most 3 s old (this one included); `relay_p99_ms` is the
   * largest instance's p99 (an upper bound, not a merged quantile).
   */
  cluster?: ClusterSample;
}

/**
 * Figures added to {@linkcode FeedSample} after the cluster's sums first shipped: an instance of
 * an older version (a rolling deploy) sends samples without them.
 */
export type LaterFigure = "connection_closes_per_sec" | "connection_drops_per_sec";

/**
 * The cluster's figures in a {@linkcode FeedSample} (docs/spec/EXTENSIONS.md E12): a sample's
 * counts and rates summed over `instances` instances.
 */
export type ClusterSample = Omit<FeedSample, "t" | "maintenance" | "cluster"> & {
  instances: number;
  /**
   * The figures some summed instance did not send (an older version, during a rolling deploy):
   * they count 0 for it, so their sums are lower bounds. Absent when every instance sent all.
   */
  partial?: LaterFigure[];
};

/**
 * What the stream's subscribers receive. In cluster mode `room` and `action` events come from
 * every instance and name it (`instance`, the node name, docs/spec/SERVER.md §8.2).
 */
export type FeedEvent =
  | { event: "sample"; data: FeedSample }
  /** A room was created, deleted, joined or left (the console refreshes its table). */
  | {
    event: "room";
    data: { type: string; game_name: string; room_code: string; instance?: string };
  }
  /**
   * An operator action (docs/spec/EXTENSIONS.md E12), as logged: `outcome` `ok` (carried out),
   * `refused` (nothing done) or `unknown` (sent, no answer in time); `at` in ms since the epoch.
   */
  | {
    event: "action";
    data: {
      action: string;
      target: string;
      outcome?: "ok" | "refused" | "unknown";
      at: number;
      instance?: string;
    };
  }
  /**
   * Cluster mode: `count` events of `instance` were not sent to other instances' streams in the
   * last second, over the per-instance rate (src/cluster/operator_events.ts).
   */
  | { event: "skipped"; data: { count: number; instance: string } };

/**
 * Where a feed sends its own `room` and `action` events beyond its subscribers, and learns how
 * many subscribers it has: the cluster's event relay (docs/spec/EXTENSIONS.md E12 note).
 */
export interface FeedRelay {
  /** True while some instance's console watches: events are built without local subscribers. */
  readonly wanted: boolean;
  /** One of this instance's `room` or `action` events. */
  forward(event: FeedEvent): void;
  /** The number of this feed's subscribers changed to `count`. */
  subscribers(count: number): void;
  /**
   * The feed's timer, every `liveIntervalMs`, with this instance's new live sample; returns the
   * cluster's figures for it when this instance has readers and knows them.
   */
  tick(now: number, sample: FeedSample): ClusterSample | undefined;
}

/** Live counts the feed reads at each sample. */
export interface FeedSources {
  connections(): number;
  stats(): { rooms: number; players: number; spectators: number; heldSeats: number };
  maintenance(): boolean;
}

/** Feed settings. */
export interface FeedOptions {
  /** Period of live samples, ms. @default 1000 */
  liveIntervalMs?: number;
  /** Period of history samples, ms. @default 5000 */
  historyIntervalMs?: number;
  /** Samples the history ring keeps. @default 180 (15 minutes at 5 s) */
  historySamples?: number;
  /** Cluster mode: this instance's node name, added to its `room` and `action` events. */
  instance?: string;
}

/** Counts over one interval. */
class Window {
  delivered = 0;
  rejections = 0;
  closes = 0;
  drops = 0;
  latency = new LatencySketch();
  start: number;

  constructor(start: number) {
    this.start = start;
  }

  reset(now: number): void {
    this.delivered = 0;
    this.rejections = 0;
    this.closes = 0;
    this.drops = 0;
    this.latency = new LatencySketch();
    this.start = now;
  }
}

/** Room lifecycle events worth a `room` feed event. */
const ROOM_EVENTS = new Set([
  "room_created",
  "room_joined",
  "room_deleted",
  "seat_released",
  "seat_held",
  "player_reconnected",
  "spectator_joined",
  "spectator_left",
]);

/** Samples, the history ring and the subscribers of the live stream. */
export class OperatorFeed {
  readonly #sources: FeedSources;
  readonly liveIntervalMs: number;
  readonly historyIntervalMs: number;
  readonly #capacity: number;
  readonly #live: Window;
  readonly #slow: Window;
  /** The ring: `#ring[(#next - n + i) % capacity]`, oldest first. */
  readonly #ring: FeedSample[] = [];
  #next = 0;
  readonly #subscribers = new Set<(event: FeedEvent) => void>();
  readonly #instance: string | undefined;
  #relay: FeedRelay | undefined;

  /** A feed reading `sources`, its windows starting at `now` (ms). */
  constructor(sources: FeedSources, options: FeedOptions = {}, now = Date.now()) {
    this.#sources = sources;
    this.liveIntervalMs = options.liveIntervalMs ?? 1000;
    this.historyIntervalMs = options.historyIntervalMs ?? 5000;
    this.#capacity = Math.max(1, options.historySamples ?? 180);
    this.#instance = options.instance;
    this.#live = new Window(now);
    this.#slow = new Window(now);
  }

  /** Number of live-stream subscribers. */
  get subscribers(): number {
    return this.#subscribers.size;
  }

  /** Counts one edge or engine event; room lifecycle events go to the subscribers. */
  observe(event: EdgeEvent): void {
    switch (event.type) {
      case "game_data":
        this.#live.delivered += event.recipients;
        this.#slow.delivered += event.recipients;
        return;
      case "handled":
        if (event.outcome === "relayed") {
          this.#live.latency.record(event.seconds);
          this.#slow.latency.record(event.seconds);
        }
        return;
      case "join_failed":
      case "reconnect_failed":
      case "auth_failed":
      case "invalid_message":
      case "message_too_large":
        this.#reject();
        return;
      case "rate_limited":
        // Engine rate limits also report a join_failed; refused upgrades report only this.
        if (event.scope === "connections") this.#reject();
        return;
      case "disconnected": {
        // Once per connection (the edge reports each end once); 1006: no close handshake.
        const dropped = event.code === 1006 ? 1 : 0;
        this.#live.closes++;
        this.#slow.closes++;
        this.#live.drops += dropped;
        this.#slow.drops += dropped;
        return;
      }
    }
    if ((this.#subscribers.size > 0 || this.#relay?.wanted) && ROOM_EVENTS.has(event.type)) {
      const room = event as { gameName?: string; roomCode?: string };
      if (room.gameName !== undefined && room.roomCode !== undefined) {
        this.publish({
          event: "room",
          data: { type: event.type, game_name: room.gameName, room_code: room.roomCode },
        });
      }
    }
  }

  /**
   * The timer (every `liveIntervalMs`): closes the live window with a `sample` for the
   * subscribers, and the history window into the ring once `historyIntervalMs` has passed.
   */
  tick(now: number): FeedSample {
    const live = this.#sample(this.#live, now);
    this.#live.reset(now);
    if (now - this.#slow.start >= this.historyIntervalMs) {
      this.#ring[this.#next] = this.#sample(this.#slow, now);
      this.#next = (this.#next + 1) % this.#capacity;
      this.#slow.reset(now);
    }
    const cluster = this.#relay?.tick(now, live);
    if (this.#subscribers.size > 0) {
      this.deliver({ event: "sample", data: cluster ? { ...live, cluster } : live });
    }
    return live;
  }

  /** Cluster mode: sends this feed's `room` and `action` events through `relay` too. */
  setRelay(relay: FeedRelay): void {
    this.#relay = relay;
    relay.subscribers(this.#subscribers.size);
  }

  /** The history ring, oldest first (at most `historySamples`). */
  history(): FeedSample[] {
    const ring = this.#ring;
    if (ring.length < this.#capacity) return ring.slice();
    return [...ring.slice(this.#next), ...ring.slice(0, this.#next)];
  }

  /** A sample of the live window so far, without closing it (the console's first paint). */
  current(now: number): FeedSample {
    return this.#sample(this.#live, now);
  }

  /** Adds a subscriber; returns the function that removes it. */
  subscribe(listener: (event: FeedEvent) => void): () => void {
    this.#subscribers.add(listener);
    this.#relay?.subscribers(this.#subscribers.size);
    return () => {
      if (this.#subscribers.delete(listener)) this.#relay?.subscribers(this.#subscribers.size);
    };
  }

  /**
   * Sends one of this instance's events to every subscriber, and a `room` or `action` event to
   * the relay (named with the instance in cluster mode).
   */
  publish(event: FeedEvent): void {
    if (this.#instance !== undefined && (event.event === "room" || event.event === "action")) {
      event = { ...event, data: { ...event.data, instance: this.#instance } } as FeedEvent;
    }
    this.deliver(event);
    if (event.event !== "sample") this.#relay?.forward(event);
  }

  /** Sends `event` to every subscriber only (another instance's, from the relay). */
  deliver(event: FeedEvent): void {
    for (const listener of [...this.#subscribers]) listener(event);
  }

  #reject(): void {
    this.#live.rejections++;
    this.#slow.rejections++;
  }

  #sample(window: Window, now: number): FeedSample {
    const seconds = Math.max(0.001, (now - window.start) / 1000);
    const stats = this.#sources.stats();
    const p99 = window.latency.quantile(0.99);
    return {
      t: now,
      connections: this.#sources.connections(),
      rooms: stats.rooms,
      players: stats.players,
      spectators: stats.spectators,
      held_seats: stats.heldSeats,
      delivered_per_sec: round(window.delivered / seconds),
      relay_p99_ms: p99 === null ? null : round(p99 * 1000, 3),
      rejections_per_sec: round(window.rejections / seconds),
      connection_closes_per_sec: round(window.closes / seconds),
      connection_drops_per_sec: round(window.drops / seconds),
      maintenance: this.#sources.maintenance(),
    };
  }
}

function round(value: number, digits = 2): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
