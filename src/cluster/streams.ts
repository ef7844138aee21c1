/**
 * Streams between nodes (docs/spec/SERVER.md §8.5.1): every ordered pair of nodes numbers its envelopes
 * from 1 (`seq`), each envelope acknowledges the highest `seq` received from the destination
 * (`ack`), and heartbeats carry the last `seq` sent. The receiver processes the next expected
 * `seq`, treats a larger one (or a heartbeat naming one not received) as a **gap** — the pair is
 * resynced (§8.5.2) and the stream goes on from there — and drops a smaller one as a
 * **duplicate**. A publish the bus reports lost, and a peer silent for 3 × `heartbeat_ms`, resync
 * the pair too.
 *
 * @module
 */
import { type Body, decodeEnvelope, encodeEnvelope, type Envelope, Kind } from "./envelope.ts";
import type { ClusterBus, NodeId } from "./types.ts";

/** Why a pair was resynced (for logs and `signal_fish_cluster_resyncs_total`). */
export type ResyncReason = "gap" | "lost" | "suspect";

/** What the stream layer reports. */
export interface StreamHandlers {
  /** An envelope in order, with its header. */
  deliver(envelope: Envelope): void;
  /** Resync the pair with `peer` (docs/spec/SERVER.md §8.5.2). */
  resync(peer: NodeId, reason: ResyncReason): void;
  /** Whether `peer` is a peer now (bindings, pending requests or remote sessions, §8.2). */
  isPeer(peer: NodeId): boolean;
}

/** Per-peer state of both directions. */
interface Pair {
  /** Last `seq` sent to the peer. */
  sent: number;
  /** Last `seq` received from the peer. */
  received: number;
  /** Last `seq` processed in order (a gap is not processed). */
  delivered: number;
  /** Highest `ack` the peer sent us (what it had processed of ours). */
  acked: number;
  /** When we last sent / heard anything, ms. */
  lastSent: number;
  lastHeard: number;
  /** A resync for silence was done and nothing arrived since (no repeat every tick). */
  suspected: boolean;
}

/** Counters of the stream layer (docs/spec/SERVER.md §6.3 cluster metrics). */
export interface StreamStats {
  envelopesOut: number;
  envelopesIn: number;
  bytesOut: number;
  bytesIn: number;
  gaps: number;
  duplicates: number;
  malformed: number;
  resyncs: number;
}

/** The streams of one node over a {@linkcode ClusterBus}. */
export class Streams {
  readonly #bus: ClusterBus;
  readonly #handlers: StreamHandlers;
  readonly #heartbeatMs: number;
  readonly #idleMs: number;
  readonly #now: () => number;
  readonly #pairs = new Map<NodeId, Pair>();
  /** When {@linkcode Streams.tick} last ran (ms). */
  #lastTick: number;
  readonly stats: StreamStats = {
    envelopesOut: 0,
    envelopesIn: 0,
    bytesOut: 0,
    bytesIn: 0,
    gaps: 0,
    duplicates: 0,
    malformed: 0,
    resyncs: 0,
  };

  /**
   * @param heartbeatMs `cluster.heartbeat_ms`
   * @param idleMs a pair's state is dropped after this long without traffic once it is no
   *   longer a peer (`T`)
   */
  constructor(
    bus: ClusterBus,
    handlers: StreamHandlers,
    heartbeatMs: number,
    idleMs: number,
    now: () => number = Date.now,
  ) {
    this.#bus = bus;
    this.#handlers = handlers;
    this.#heartbeatMs = heartbeatMs;
    this.#idleMs = idleMs;
    this.#now = now;
    this.#lastTick = now();
  }

  /** This node. */
  get node(): NodeId {
    return this.#bus.node;
  }

  #pair(peer: NodeId): Pair {
    let pair = this.#pairs.get(peer);
    if (pair === undefined) {
      const now = this.#now();
      pair = {
        sent: 0,
        received: 0,
        delivered: 0,
        acked: 0,
        lastSent: now,
        lastHeard: now,
        suspected: false,
      };
      this.#pairs.set(peer, pair);
    }
    return pair;
  }

  /** Sends `body` to `peer`; returns its `seq`. Synchronous (one publish). */
  send(peer: NodeId, body: Body): number {
    const pair = this.#pair(peer);
    const seq = ++pair.sent;
    pair.lastSent = this.#now();
    const bytes = encodeEnvelope(this.#bus.node, seq, pair.received, body);
    this.stats.envelopesOut++;
    this.stats.bytesOut += bytes.byteLength;
    this.#bus.publish(peer, bytes);
    return seq;
  }

  /** The last `seq` sent to `peer` (0 = none). */
  lastSent(peer: NodeId): number {
    return this.#pairs.get(peer)?.sent ?? 0;
  }

  /**
   * The last `seq` from `peer` processed in order: the edge's `delivered` (docs/spec/SERVER.md §8.5.3;
   * every frame of a processed `OUT` is handed to its sockets at once).
   */
  lastReceived(peer: NodeId): number {
    return this.#pairs.get(peer)?.delivered ?? 0;
  }

  /** The highest `ack` received from `peer` (docs/spec/SERVER.md §8.5.3). */
  acked(peer: NodeId): number {
    return this.#pairs.get(peer)?.acked ?? 0;
  }

  /** Milliseconds since anything arrived from `peer` (Infinity = never). */
  silence(peer: NodeId): number {
    const pair = this.#pairs.get(peer);
    return pair ? this.#now() - pair.lastHeard : Infinity;
  }

  /** Handles bytes from the bus. */
  receive(bytes: Uint8Array): void {
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(bytes);
    } catch {
      this.stats.malformed++;
      return;
    }
    this.stats.envelopesIn++;
    this.stats.bytesIn += bytes.byteLength;
    const peer = envelope.source;
    if (peer === this.#bus.node) return;
    const pair = this.#pair(peer);
    pair.lastHeard = this.#now();
    pair.suspected = false;
    if (envelope.ack > pair.acked) pair.acked = envelope.ack;
    if (envelope.kind === Kind.HEARTBEAT) {
      if (envelope.seq > pair.received) {
        this.stats.gaps++;
        pair.received = envelope.seq;
        this.#resync(peer, "gap");
      }
      return;
    }
    const expected = pair.received + 1;
    if (envelope.seq < expected) {
      this.stats.duplicates++;
      return;
    }
    pair.received = envelope.seq;
    if (envelope.seq > expected) {
      this.stats.gaps++;
      this.#resync(peer, "gap");
      return;
    }
    pair.delivered = envelope.seq;
    this.#handlers.deliver(envelope);
  }

  /** The bus reports a publish to `peer` lost. */
  lost(peer: NodeId): void {
    this.#resync(peer, "lost");
  }

  #resync(peer: NodeId, reason: ResyncReason): void {
    this.stats.resyncs++;
    this.#handlers.resync(peer, reason);
  }

  /**
   * The heartbeat timer (every `heartbeat_ms`): a heartbeat to each peer sent nothing for a
   * period; a resync for each peer silent for 3 × `heartbeat_ms`; idle non-peers forgotten.
   */
  tick(): void {
    const now = this.#now();
    // "Sent nothing in that period": nothing since the previous tick. (Comparing with
    // `heartbeat_ms` instead skipped every other heartbeat whenever a timer fired a millisecond
    // early, doubling the silence a peer sees.)
    const since = this.#lastTick;
    this.#lastTick = now;
    for (const [peer, pair] of this.#pairs) {
      const active = this.#handlers.isPeer(peer);
      if (!active && now - pair.lastHeard > this.#idleMs && now - pair.lastSent > this.#idleMs) {
        this.#pairs.delete(peer);
        continue;
      }
      if (pair.lastSent <= since) {
        pair.lastSent = now;
        const bytes = encodeEnvelope(this.#bus.node, pair.sent, pair.received, {
          kind: Kind.HEARTBEAT,
        });
        this.stats.envelopesOut++;
        this.stats.bytesOut += bytes.byteLength;
        this.#bus.publish(peer, bytes, true);
      }
      if (active && !pair.suspected && now - pair.lastHeard > 3 * this.#heartbeatMs) {
        pair.suspected = true;
        this.#resync(peer, "suspect");
      }
    }
  }

  /** Peers with stream state (for `/v2/status`). */
  peers(): NodeId[] {
    return [...this.#pairs.keys()];
  }
}
