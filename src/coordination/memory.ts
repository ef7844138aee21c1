/**
 * Single-process coordination: every connection's socket is in this process.
 *
 * @module
 */
import type { ConnId, Fanout, Peer, SendFailure } from "./fanout.ts";

/** A recipient that did not take a frame: not attached here (`gone`), or its peer refused it. */
export type DeliveryFailure = { id: ConnId; failure: SendFailure | { reason: "gone" } };

/** A {@linkcode Fanout} over the peers attached to this process. */
export class LocalFanout implements Fanout {
  readonly #peers = new Map<ConnId, Peer>();
  /** Peers that queued frames since the last {@linkcode flush}. */
  readonly #dirty = new Set<Peer>();

  /** Number of attached peers. */
  get size(): number {
    return this.#peers.size;
  }

  /** Makes `peer` reachable as `id`. */
  attach(id: ConnId, peer: Peer): void {
    this.#peers.set(id, peer);
  }

  /** Forgets `id`; later frames for it are skipped. Returns whether it was attached. */
  detach(id: ConnId): boolean {
    return this.#peers.delete(id);
  }

  /** True when `id` is attached here. */
  has(id: ConnId): boolean {
    return this.#peers.has(id);
  }

  /**
   * Hands `frame` to each attached peer in `to`, in order. Returns the recipients
   * that did not take it, or `undefined` when all did (no allocation on the common path).
   */
  deliver(
    frame: string | Uint8Array,
    to: readonly ConnId[],
  ): DeliveryFailure[] | undefined {
    let failed: DeliveryFailure[] | undefined;
    for (const id of to) {
      const peer = this.#peers.get(id);
      const failure = peer ? peer.send(frame) : GONE;
      if (failure) (failed ??= []).push({ id, failure });
      else if (peer!.flush) this.#dirty.add(peer!);
    }
    return failed;
  }

  /** Writes what every peer queued since the last call (SERVER.md §5.3), in queue order. */
  flush(): void {
    if (this.#dirty.size === 0) return;
    for (const peer of this.#dirty) peer.flush!();
    this.#dirty.clear();
  }

  /** Attached connection ids. */
  ids(): ConnId[] {
    return [...this.#peers.keys()];
  }

  /** Closes the peer of `to`, if attached. */
  close(to: ConnId, code: number, reason: string): void {
    this.#peers.get(to)?.close(code, reason);
  }
}

const GONE = { reason: "gone" } as const;
