/**
 * The in-memory twin of the Redis bus (docs/spec/SERVER.md §8.9): nodes of one process exchange envelopes
 * through a {@linkcode MemoryNetwork}, delivered asynchronously (a microtask per envelope, so
 * FIFO per pair like one Redis connection), with fault injection: drop, delay, duplicate and
 * reorder, chosen per envelope by a {@linkcode Fault} function.
 *
 * @module
 */
import type { BusHandlers, ClusterBus, NodeId } from "./types.ts";

/** What to do with one envelope from `from` to `to`. */
export type FaultAction =
  | "deliver"
  | "drop"
  | "duplicate"
  /** Hold it back and deliver it after the next envelope of the same pair. */
  | "reorder"
  /** Deliver it after `ms` (later envelopes of the pair may overtake it). */
  | { delayMs: number }
  /** The publish fails at the sender (reported as lost; nothing is delivered). */
  | "fail";

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

  /** A bus for node `node` on this network. */
  bus(node: NodeId): MemoryBus {
    return new MemoryBus(this, node);
  }

  /** @internal */
  subscribe(node: NodeId, handlers: BusHandlers | undefined): void {
    if (handlers) this.#nodes.set(node, handlers);
    else this.#nodes.delete(node);
  }

  /** @internal */
  send(
    from: NodeId,
    to: NodeId,
    bytes: Uint8Array,
    sender: BusHandlers | undefined,
    heartbeat = false,
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
      if (!heartbeat) queueMicrotask(() => sender?.lost(to));
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

  /** Cancels delayed envelopes (test cleanup). */
  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}

/** One node's {@linkcode ClusterBus} on a {@linkcode MemoryNetwork}. */
export class MemoryBus implements ClusterBus {
  readonly node: NodeId;
  readonly #network: MemoryNetwork;
  #handlers: BusHandlers | undefined;

  /** Use {@linkcode MemoryNetwork.bus}. */
  constructor(network: MemoryNetwork, node: NodeId) {
    this.#network = network;
    this.node = node;
  }

  publish(to: NodeId, bytes: Uint8Array, heartbeat = false): void {
    this.#network.send(this.node, to, bytes, this.#handlers, heartbeat);
  }

  start(handlers: BusHandlers): Promise<void> {
    this.#handlers = handlers;
    this.#network.subscribe(this.node, handlers);
    handlers.state?.("up");
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#network.subscribe(this.node, undefined);
    this.#handlers = undefined;
    return Promise.resolve();
  }
}
