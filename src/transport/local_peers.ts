/**
 * The sockets of this node's connections, by connection id: the edge's local registry
 * (docs/spec/SERVER.md §8.2 "edge"), with write batching (docs/spec/SERVER.md §5.3).
 *
 * @module
 */
import type { DeliveryFailure, Directive, EdgeEndpoint } from "../coordination/router.ts";
import type { ConnId } from "../engine/effects.ts";
import type { ConnectionEnd, Peer } from "./peer.ts";

export type { DeliveryFailure } from "../coordination/router.ts";

/** An attached peer and whether it is on the list of peers to flush. */
interface Attached {
  readonly peer: Peer;
  queued: boolean;
}

/**
 * The peers attached to this process, by connection id. It is this node's edge endpoint for the
 * router: frames are delivered here directly, directives go to the owner's `onDirective`.
 */
export class LocalPeers implements EdgeEndpoint {
  readonly #peers = new Map<ConnId, Attached>();
  /** Peers that queued frames since the last {@linkcode flush}, each once. */
  readonly #dirty: Attached[] = [];
  readonly #onDirective: (directive: Directive, now: number) => void;

  /** `onDirective` applies binding changes and closes (the edge's). @default ignore them */
  constructor(onDirective: (directive: Directive, now: number) => void = () => {}) {
    this.#onDirective = onDirective;
  }

  /** Hands a directive from a home to the owner (docs/spec/SERVER.md §8.4.1 binding items). */
  direct(directive: Directive, now: number): void {
    this.#onDirective(directive, now);
  }

  /** Number of attached peers. */
  get size(): number {
    return this.#peers.size;
  }

  /** Makes `peer` reachable as `id`. */
  attach(id: ConnId, peer: Peer): void {
    this.#peers.set(id, { peer, queued: false });
  }

  /** Forgets `id`; later frames for it are reported `gone`. Returns whether it was attached. */
  detach(id: ConnId): boolean {
    return this.#peers.delete(id);
  }

  /** True when `id` is attached here. */
  has(id: ConnId): boolean {
    return this.#peers.has(id);
  }

  /** Holds the reads of `id`'s connection for `ms` ({@linkcode Peer.holdReads}), if it can. */
  holdReads(id: ConnId, ms: number): void {
    this.#peers.get(id)?.peer.holdReads?.(ms);
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
    for (let i = 0; i < to.length; i++) {
      const id = to[i]!;
      const attached = this.#peers.get(id);
      const failure = attached ? attached.peer.send(frame) : GONE;
      if (failure) {
        (failed ??= []).push({ id, failure });
      } else if (!attached!.queued && attached!.peer.flush) {
        attached!.queued = true;
        this.#dirty.push(attached!);
      }
    }
    return failed;
  }

  /** Writes what every peer queued since the last call (docs/spec/SERVER.md §5.3), in queue order. */
  flush(): void {
    const dirty = this.#dirty;
    if (dirty.length === 0) return;
    for (let i = 0; i < dirty.length; i++) {
      const attached = dirty[i]!;
      attached.queued = false;
      attached.peer.flush!();
    }
    dirty.length = 0;
  }

  /**
   * The attached peers that have bytes waiting to go out ({@linkcode Peer.pendingBytes}), with
   * those bytes, and their sum. One pass over the peers.
   */
  pending(): { total: number; peers: { id: ConnId; bytes: number }[] } {
    let total = 0;
    const peers: { id: ConnId; bytes: number }[] = [];
    for (const [id, { peer }] of this.#peers) {
      const bytes = peer.pendingBytes?.() ?? 0;
      if (bytes <= 0) continue;
      total += bytes;
      peers.push({ id, bytes });
    }
    return { total, peers };
  }

  /**
   * How the socket of `id` ended ({@linkcode Peer.ended}): `undefined` when `id` is not attached
   * or its peer cannot tell.
   */
  ended(id: ConnId): ConnectionEnd | undefined {
    return this.#peers.get(id)?.peer.ended?.();
  }

  /** Attached connection ids. */
  ids(): ConnId[] {
    return [...this.#peers.keys()];
  }

  /** Closes the peer of `to`, if attached. */
  close(to: ConnId, code: number, reason: string): void {
    this.#peers.get(to)?.peer.close(code, reason);
  }
}

const GONE = { reason: "gone" } as const;
