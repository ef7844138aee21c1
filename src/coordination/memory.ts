/**
 * Single-process coordination: every connection's socket is in this process.
 *
 * @module
 */
import type { ConnId, Fanout, Peer } from "./fanout.ts";

/** A {@linkcode Fanout} over the peers attached to this process. */
export class LocalFanout implements Fanout {
  readonly #peers = new Map<ConnId, Peer>();

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

  /** Attached connection ids. */
  ids(): ConnId[] {
    return [...this.#peers.keys()];
  }

  deliver(frame: string | Uint8Array, to: readonly ConnId[]): void {
    for (const id of to) this.#peers.get(id)?.send(frame);
  }

  close(to: ConnId, code: number, reason: string): void {
    this.#peers.get(to)?.close(code, reason);
  }
}
