/**
 * The Redis side of cluster mode, part 2 (docs/spec/SERVER.md §8.4.1, §8.9): envelopes published to
 * `inst:<node>` through the node's one command connection and received on its one subscriber
 * connection, so each ordered pair of nodes is a FIFO stream. Payloads are `Buffer`s over the
 * envelope bytes (no copy). Only this file and `store.ts` know Redis.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import { Keys } from "./keys.ts";
import { type Flight, PublishWatch } from "./publish_watch.ts";
import { asBuffer, type RedisLink } from "./store.ts";
import type { BusHandlers, ClusterBus, NodeId, OperatorChannel } from "./types.ts";

/** A {@linkcode ClusterBus} over a {@linkcode RedisLink}. */
export class RedisBus implements ClusterBus {
  readonly node: NodeId;
  readonly #link: RedisLink;
  readonly #keys: Keys;
  #handlers: BusHandlers | undefined;
  /** Channel names of peers, built once each. */
  readonly #channels = new Map<NodeId, string>();
  /**
   * Told the round trip, in seconds, of every publish Redis answered, heartbeats included
   * (`signal_fish_cluster_publish_latency_seconds`, docs/spec/SERVER.md §6.3 #67). Set once the
   * metrics exist.
   */
  onPublished: ((seconds: number) => void) | undefined;
  /** Publishes awaiting Redis's answer, timed out after `timeoutMs` (§8.5.1). */
  readonly #watch: PublishWatch;
  /** The listener subscribed to each operator channel (docs/spec/EXTENSIONS.md E12). */
  readonly #listeners = new Map<OperatorChannel, (message: Buffer) => void>();

  /**
   * The bus of node `node` on `link`, channels named with `prefix` (`cluster.key_prefix`); a
   * publish Redis has not answered within `timeoutMs` ms (`cluster.forward_timeout_ms`) counts
   * as lost. @default timeoutMs 5000
   */
  constructor(link: RedisLink, node: NodeId, prefix: string, timeoutMs = 5_000) {
    this.#link = link;
    this.node = node;
    this.#keys = new Keys(prefix);
    this.#watch = new PublishWatch(timeoutMs, (flight) => this.#unanswered(flight));
  }

  /** Publishes counted lost because Redis did not answer in time (§6.3 #82). */
  get unanswered(): number {
    return this.#watch.timedOut + this.#watch.refused;
  }

  #unanswered(flight: Flight): void {
    // A lost heartbeat loses nothing (§8.5.1).
    if (!flight.heartbeat) queueMicrotask(() => this.#handlers?.lost(flight.to));
  }

  publish(to: NodeId, bytes: Uint8Array, heartbeat = false): void {
    let channel = this.#channels.get(to);
    if (channel === undefined) {
      channel = this.#keys.channel(to);
      this.#channels.set(to, channel);
    }
    const handlers = this.#handlers;
    const watch = this.#watch;
    if (watch.refuse()) {
      // Redis has not answered an older publish in time: this one is not sent, and is lost.
      if (!heartbeat) queueMicrotask(() => handlers?.lost(to));
      return;
    }
    const observe = this.onPublished;
    const flight = watch.begin(to, heartbeat);
    // `sendCommand` rather than `publish`: the raw command path, without the command parser and
    // the async wrapper around it (one promise per publish instead of two).
    const sent = this.#link.command.sendCommand(["PUBLISH", channel, asBuffer(bytes)]);
    if (heartbeat) {
      // A lost heartbeat loses nothing (§8.5.1).
      sent.then(
        () => {
          watch.end(flight);
          observe?.((performance.now() - flight.at) / 1000);
        },
        () => watch.end(flight),
      );
      return;
    }
    // Failure, no receiver, or an unknown outcome (timed out): the envelope counts as lost
    // (§8.5.1), reported once.
    sent.then(
      (receivers: unknown) => {
        const inTime = watch.end(flight);
        observe?.((performance.now() - flight.at) / 1000);
        if (inTime && Number(receivers) === 0) handlers?.lost(to);
      },
      () => {
        if (watch.end(flight)) handlers?.lost(to);
      },
    );
  }

  async start(handlers: BusHandlers): Promise<void> {
    this.#handlers = handlers;
    await this.#link.subscriber.subscribe(
      this.#keys.channel(this.node),
      (message: Buffer) => {
        handlers.receive(new Uint8Array(message.buffer, message.byteOffset, message.byteLength));
      },
      true,
    );
  }

  broadcast(kind: OperatorChannel, payload: string): void {
    if (!this.#link.command.isReady) return;
    this.#link.command.sendCommand(["PUBLISH", this.#keys.operatorChannel(kind), payload])
      .catch(() => {});
  }

  async listen(
    kind: OperatorChannel,
    listener: ((payload: string) => void) | undefined,
  ): Promise<void> {
    const channel = this.#keys.operatorChannel(kind);
    const current = this.#listeners.get(kind);
    if (listener === undefined) {
      if (current === undefined) return;
      this.#listeners.delete(kind);
      await this.#link.subscriber.unsubscribe(channel, current, true);
      return;
    }
    if (current !== undefined) await this.listen(kind, undefined);
    const decoder = new TextDecoder();
    const wrapped = (message: Buffer) => listener(decoder.decode(message));
    this.#listeners.set(kind, wrapped);
    try {
      await this.#link.subscriber.subscribe(channel, wrapped, true);
    } catch (error) {
      this.#listeners.delete(kind);
      throw error;
    }
  }

  /** Forgets peers' channel names (the map grows with the number of peers ever seen). */
  forget(node: NodeId): void {
    this.#channels.delete(node);
  }

  async close(): Promise<void> {
    this.#handlers = undefined;
    this.#watch.close();
    await this.#link.close();
  }
}
