/**
 * The in-memory twin of the Redis bus (docs/spec/SERVER.md §8.9): nodes of one process exchange envelopes
 * through a {@linkcode MemoryNetwork}, delivered asynchronously (a microtask per envelope, so
 * FIFO per pair like one Redis connection), with fault injection: drop, delay, duplicate,
 * reorder, fail, late (a slow sender or receiver, order kept) and stall (a publish Redis does not
 * answer), chosen per envelope by a
 * {@linkcode Fault} function. Publishes time out as on the Redis bus ({@linkcode PublishWatch}).
 *
 * @module
 */
import { PublishWatch } from "./publish_watch.ts";
import type { BusHandlers, ClusterBus, NodeId, OperatorChannel } from "./types.ts";

/** What to do with one envelope from `from` to `to`. */
export type FaultAction =
  | "deliver"
  | "drop"
  | "duplicate"
  /** Hold it back and deliver it after the next envelope of the same pair. */
  | "reorder"
  /** Deliver it after `ms` (later envelopes of the pair may overtake it). */
  | { delayMs: number }
  /**
   * Answered at once, delivered after `ms` (a home too slow to read, or a subscriber's
   * connection behind): later envelopes of the pair wait behind it, so the pair's order holds.
   * With `oneStream`, it waits behind every envelope to the same node sent so with
   * `oneStream` (what one subscriber connection reads), and those due by then are delivered in
   * one run, as messages read from Redis in one chunk are; an envelope to that node delivered
   * at once meanwhile waits behind them too.
   */
  | { lateMs: number; oneStream?: boolean }
  /** The publish fails at the sender (reported as lost; nothing is delivered). */
  | "fail"
  /**
   * Redis stalls on it: neither delivered nor answered for `ms` (a paused Redis), then both.
   * Later envelopes of the pair wait behind it (delivered, not answered, in order); a stall for
   * them too needs the same action.
   */
  | { stallMs: number };

/** Chooses the fate of each envelope. */
export type Fault = (from: NodeId, to: NodeId, bytes: Uint8Array) => FaultAction;

/** The shared medium of in-memory buses. */
export class MemoryNetwork {
  readonly #nodes = new Map<NodeId, BusHandlers>();
  readonly #held = new Map<string, Uint8Array>();
  /** The fault function; `undefined` = deliver everything. */
  fault: Fault | undefined;
  /** Envelopes published (tests). */
  published = 0;
  /** Timers of delayed envelopes, cleared by {@linkcode MemoryNetwork.close}. */
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  /**
   * Per pair (`from\0to`), the deliveries waiting behind a late or stalled envelope, in order,
   * each with the time (`Date.now()`) it may run; absent while none waits.
   */
  readonly #queues = new Map<string, { due: number; run: () => void }[]>();

  /**
   * A bus for node `node` on this network; publishes unanswered for `timeoutMs` ms count as lost
   * (as `cluster.forward_timeout_ms` for the Redis bus). @default timeoutMs 5000
   */
  bus(node: NodeId, timeoutMs = 5_000): MemoryBus {
    return new MemoryBus(this, node, timeoutMs);
  }

  /**
   * @internal The handlers `node` subscribed with: a test wraps them (and subscribes the
   * wrapper) to act at the moment an envelope reaches that node, before it is taken in.
   */
  subscriber(node: NodeId): BusHandlers | undefined {
    return this.#nodes.get(node);
  }

  /** @internal */
  subscribe(node: NodeId, handlers: BusHandlers | undefined): void {
    if (handlers) this.#nodes.set(node, handlers);
    else this.#nodes.delete(node);
  }

  /**
   * @internal Sends `bytes` from `from` to `to`; `answer` is told the outcome as Redis would
   * answer the publish (`true` = delivered to a subscriber), or never for a stall that outlives
   * the network.
   */
  send(
    from: NodeId,
    to: NodeId,
    bytes: Uint8Array,
    answer: (delivered: boolean) => void,
  ): void {
    this.published++;
    // A copy, even of a Node Buffer (whose slice is a view).
    const copy = Uint8Array.prototype.slice.call(bytes);
    const action = this.fault?.(from, to, copy) ?? "deliver";
    const pair = `${from}\u0000${to}`;
    const deliver = (payload: Uint8Array) =>
      queueMicrotask(() => {
        const target = this.#nodes.get(to);
        if (target) target.receive(payload);
      });
    if (!this.#nodes.has(to) || action === "fail") {
      queueMicrotask(() => answer(false));
      return;
    }
    if (typeof action === "object" && "stallMs" in action) {
      this.#enqueue(pair, Date.now() + action.stallMs, () => {
        const target = this.#nodes.get(to);
        target?.receive(copy);
        answer(target !== undefined);
      });
      return;
    }
    queueMicrotask(() => answer(true));
    if (typeof action === "object" && "lateMs" in action) {
      this.#enqueue(
        action.oneStream ? `\u0000${to}` : pair,
        Date.now() + action.lateMs,
        () => this.#nodes.get(to)?.receive(copy),
      );
      return;
    }
    // Behind a late envelope of the pair, or one read through the node's one subscriber
    // connection (`oneStream`): in order, as soon as it is through. (Delivered at once, an
    // envelope overtook one of its own pair held on that connection's queue: a gap Redis never
    // makes.)
    const stream = `\u0000${to}`;
    const behind = this.#queues.has(pair) ? pair : this.#queues.has(stream) ? stream : undefined;
    if (behind !== undefined && (action === "deliver" || action === "duplicate")) {
      const times = action === "duplicate" ? 2 : 1;
      for (let i = 0; i < times; i++) {
        this.#enqueue(behind, 0, () => this.#nodes.get(to)?.receive(copy));
      }
      return;
    }
    const held = this.#held.get(pair);
    switch (action) {
      case "drop":
        return;
      case "reorder":
        if (held) deliver(held);
        this.#held.set(pair, copy);
        return;
      case "duplicate":
        deliver(copy);
        deliver(copy);
        break;
      case "deliver":
        deliver(copy);
        break;
      default: {
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          this.#nodes.get(to)?.receive(copy);
        }, action.delayMs);
        this.#timers.add(timer);
      }
    }
    if (held) {
      this.#held.delete(pair);
      deliver(held);
    }
  }

  /** Queues `run` on `pair` behind what waits there, to run no earlier than `due`. */
  #enqueue(pair: string, due: number, run: () => void): void {
    let queue = this.#queues.get(pair);
    if (queue === undefined) this.#queues.set(pair, queue = []);
    queue.push({ due, run });
    if (queue.length === 1) this.#drain(pair, queue);
  }

  /** Runs `queue`'s deliveries in order, each at its time; drops the queue once it is empty. */
  #drain(pair: string, queue: { due: number; run: () => void }[]): void {
    while (queue.length > 0) {
      const wait = queue[0]!.due - Date.now();
      if (wait > 0) {
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          if (this.#queues.get(pair) === queue) this.#drain(pair, queue);
        }, wait);
        this.#timers.add(timer);
        return;
      }
      // Run before it leaves the queue: a delivery that queues another on the pair finds the
      // queue busy, and this loop runs that one too.
      try {
        queue[0]!.run();
      } finally {
        queue.shift();
      }
    }
    this.#queues.delete(pair);
  }

  /** Listeners of the operator channels, by channel and node. */
  readonly #operator = new Map<OperatorChannel, Map<NodeId, (payload: string) => void>>();

  /** @internal Sets or removes (`undefined`) `node`'s listener of operator channel `kind`. */
  listen(kind: OperatorChannel, node: NodeId, listener: ((payload: string) => void) | undefined) {
    let listeners = this.#operator.get(kind);
    if (listeners === undefined) this.#operator.set(kind, listeners = new Map());
    if (listener) listeners.set(node, listener);
    else listeners.delete(node);
  }

  /** @internal Delivers `payload` to every listener of `kind`, each in a microtask. */
  broadcast(kind: OperatorChannel, payload: string): void {
    for (const listener of this.#operator.get(kind)?.values() ?? []) {
      queueMicrotask(() => listener(payload));
    }
  }

  /** Cancels delayed envelopes (test cleanup). */
  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#queues.clear();
  }
}

/** One node's {@linkcode ClusterBus} on a {@linkcode MemoryNetwork}. */
export class MemoryBus implements ClusterBus {
  readonly node: NodeId;
  readonly #network: MemoryNetwork;
  #handlers: BusHandlers | undefined;
  readonly #watch: PublishWatch;

  /** Use {@linkcode MemoryNetwork.bus}. */
  constructor(network: MemoryNetwork, node: NodeId, timeoutMs: number) {
    this.#network = network;
    this.node = node;
    this.#watch = new PublishWatch(timeoutMs, (flight) => {
      if (!flight.heartbeat) queueMicrotask(() => this.#handlers?.lost(flight.to));
    });
  }

  get unanswered(): number {
    return this.#watch.timedOut + this.#watch.refused;
  }

  /** Publishes sent and not yet answered (timed out ones included). */
  get pending(): number {
    return this.#watch.pending;
  }

  publish(to: NodeId, bytes: Uint8Array, heartbeat = false): void {
    const watch = this.#watch;
    if (watch.refuse()) {
      if (!heartbeat) queueMicrotask(() => this.#handlers?.lost(to));
      return;
    }
    const flight = watch.begin(to, heartbeat);
    this.#network.send(this.node, to, bytes, (delivered) => {
      if (watch.end(flight) && !delivered && !heartbeat) this.#handlers?.lost(to);
    });
  }

  start(handlers: BusHandlers): Promise<void> {
    this.#handlers = handlers;
    this.#network.subscribe(this.node, handlers);
    handlers.state?.("up");
    return Promise.resolve();
  }

  broadcast(kind: OperatorChannel, payload: string): void {
    this.#network.broadcast(kind, payload);
  }

  listen(kind: OperatorChannel, listener: ((payload: string) => void) | undefined): Promise<void> {
    this.#network.listen(kind, this.node, listener);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#network.listen("watch", this.node, undefined);
    this.#network.listen("events", this.node, undefined);
    this.#network.subscribe(this.node, undefined);
    this.#handlers = undefined;
    this.#watch.close();
    return Promise.resolve();
  }
}
