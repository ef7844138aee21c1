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
import { asBuffer, type RedisLink } from "./store.ts";
import type { BusHandlers, ClusterBus, NodeId } from "./types.ts";

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

  /** The bus of node `node` on `link`, channels named with `prefix` (`cluster.key_prefix`). */
  constructor(link: RedisLink, node: NodeId, prefix: string) {
    this.#link = link;
    this.node = node;
    this.#keys = new Keys(prefix);
  }

  publish(to: NodeId, bytes: Uint8Array, heartbeat = false): void {
    let channel = this.#channels.get(to);
    if (channel === undefined) {
      channel = this.#keys.channel(to);
      this.#channels.set(to, channel);
    }
    const handlers = this.#handlers;
    const observe = this.onPublished;
    const start = observe === undefined ? 0 : performance.now();
    // `sendCommand` rather than `publish`: the raw command path, without the command parser and
    // the async wrapper around it (one promise per publish instead of two).
    const sent = this.#link.command.sendCommand(["PUBLISH", channel, asBuffer(bytes)]);
    if (heartbeat) {
      // A lost heartbeat loses nothing (§8.5.1).
      sent.then(
        observe && (() => observe((performance.now() - start) / 1000)),
        () => {},
      );
      return;
    }
    // Failure, no receiver, or an unknown outcome: the envelope counts as lost (§8.5.1).
    sent.then(
      (receivers: unknown) => {
        observe?.((performance.now() - start) / 1000);
        if (Number(receivers) === 0) handlers?.lost(to);
      },
      () => handlers?.lost(to),
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

  /** Forgets peers' channel names (the map grows with the number of peers ever seen). */
  forget(node: NodeId): void {
    this.#channels.delete(node);
  }

  async close(): Promise<void> {
    this.#handlers = undefined;
    await this.#link.close();
  }
}
