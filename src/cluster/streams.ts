/**
 * Streams between nodes (docs/spec/SERVER.md §8.5.1): every ordered pair of nodes numbers its envelopes
 * from 1 (`seq`), each envelope acknowledges the highest `seq` received from the destination
 * (`ack`), and heartbeats carry the last `seq` sent. The receiver processes the next expected
 * `seq`, treats a larger one (or a heartbeat naming one not received) as a **gap** — the pair is
 * resynced (§8.5.2) and the stream goes on from there — and drops a smaller one as a
 * **duplicate**. A publish the bus reports lost, and a peer silent for 3 × `heartbeat_ms`, resync
 * the pair too.
 *
 * Bodies sent to a peer during one event-loop turn travel in one envelope, published at the end
 * of the turn (`setImmediate`, after the runtime has delivered every read that was ready), and
 * consecutive `OUT` bodies merge into one: one publish per peer per turn instead of one per
 * frame or event (docs/spec/SERVER.md §8.4.1 "This implementation"). With
 * `cluster.envelope_window_ms` = W > 0, a node publishes its batches at most once per W ms: a
 * batch opened less than W ms after the last publish waits for the window's end (a timer), so
 * the bodies of several turns share one envelope and one wake-up of each receiver. A held batch
 * leaves at the end of the first turn after the window that sends or receives anything (the
 * timer only when no such turn comes); after a quiet window a batch leaves at the end of its
 * turn as before.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import {
  type Batch,
  type Body,
  decodeBatch,
  encodeBatch,
  type Envelope,
  Kind,
  MAX_BODIES,
} from "./envelope.ts";
import type { ConnId } from "../engine/effects.ts";
import type { ClusterBus, NodeId } from "./types.ts";

/** Why a pair was resynced (for logs and `signal_fish_cluster_resyncs_total`). */
export type ResyncReason = "gap" | "lost" | "suspect";

/** What the stream layer reports. */
export interface StreamHandlers {
  /** An envelope in order, with its header. */
  deliver(envelope: Envelope): void;
  /** Every body of one envelope from `peer` has been delivered (an envelope's end). */
  delivered?(peer: NodeId): void;
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
  /** Bodies of this turn for the peer, published at its end with `seq` = `sent`. */
  batch: Body[] | undefined;
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
  /** Bodies sent and received (several per envelope). */
  bodiesOut: number;
  bodiesIn: number;
}

/** The streams of one node over a {@linkcode ClusterBus}. */
export class Streams {
  readonly #bus: ClusterBus;
  readonly #handlers: StreamHandlers;
  readonly #heartbeatMs: number;
  readonly #idleMs: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  /** When this node last published its turn's batches (ms; for the coalescing window). */
  #lastFlush = -Infinity;
  readonly #pairs = new Map<NodeId, Pair>();
  /** When {@linkcode Streams.tick} last ran (ms). */
  #lastTick: number;
  /** Whether the last tick judged no peer (it came late: this node had been paused). */
  #skippedJudgement = false;
  /** While the bodies of an envelope are delivered: its source, else undefined. */
  #deliveringFrom: NodeId | undefined;
  /** While the bodies of an envelope are delivered: the highest `ack` from its source before it. */
  #ackBefore = 0;
  readonly stats: StreamStats = {
    envelopesOut: 0,
    envelopesIn: 0,
    bytesOut: 0,
    bytesIn: 0,
    gaps: 0,
    duplicates: 0,
    malformed: 0,
    resyncs: 0,
    bodiesOut: 0,
    bodiesIn: 0,
  };
  /** Pairs with a batch waiting for the end of the turn. */
  #open: Pair[] = [];
  #openPeers: NodeId[] = [];
  #scheduled = false;
  /** The window's timer while one is set (a publish within the window: `envelope_window_ms`). */
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #endTurn = () => this.flush();
  readonly #endWindow = () => {
    this.#timer = undefined;
    this.flush();
  };

  /**
   * @param heartbeatMs `cluster.heartbeat_ms`
   * @param idleMs a pair's state is dropped after this long without traffic once it is no
   *   longer a peer (`T`)
   * @param windowMs `cluster.envelope_window_ms`: batches are published at most once per this
   *   many ms (0 = at the end of every turn that produced one)
   */
  constructor(
    bus: ClusterBus,
    handlers: StreamHandlers,
    heartbeatMs: number,
    idleMs: number,
    now: () => number = Date.now,
    windowMs = 0,
  ) {
    this.#bus = bus;
    this.#handlers = handlers;
    this.#heartbeatMs = heartbeatMs;
    this.#idleMs = idleMs;
    this.#windowMs = windowMs;
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
        batch: undefined,
      };
      this.#pairs.set(peer, pair);
    }
    return pair;
  }

  /**
   * Sends `body` to `peer`; returns the `seq` of the envelope that carries it. Synchronous: the
   * body joins the peer's envelope of this turn, published at its end ({@linkcode Streams.flush}).
   */
  send(peer: NodeId, body: Body): number {
    const pair = this.#pair(peer);
    const now = pair.lastSent = this.#now();
    this.stats.bodiesOut++;
    let batch = pair.batch;
    if (batch === undefined || batch.length >= MAX_BODIES) {
      if (batch !== undefined) this.#publish(peer, pair);
      batch = pair.batch = [];
      pair.sent++;
      this.#open.push(pair);
      this.#openPeers.push(peer);
      if (!this.#scheduled) {
        this.#scheduled = true;
        // The end of this turn, or the end of the window opened by the last publish.
        const wait = this.#lastFlush + this.#windowMs - now;
        if (wait > 0) this.#timer = setTimeout(this.#endWindow, wait);
        else setImmediate(this.#endTurn);
      }
    }
    if (this.#timer !== undefined) this.#awake(now);
    const last = batch[batch.length - 1];
    if (body.kind === Kind.OUT && last?.kind === Kind.OUT) {
      // Consecutive outputs for one edge: one OUT, items in production order (§8.4.4).
      for (const item of body.items) last.items.push(item);
    } else {
      // An OUT's item list is the caller's to give away (the router builds one per event).
      batch.push(body);
    }
    return pair.sent;
  }

  /**
   * This turn is awake anyway (a send, an envelope received): when the window is over, the held
   * batches leave at the end of the turn instead of on the timer's own wake-up.
   */
  #awake(now: number): void {
    if (now - this.#lastFlush < this.#windowMs) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    setImmediate(this.#endTurn);
  }

  /** Publishes every batch of this turn now (the end of a turn, a heartbeat tick, a stop). */
  flush(): void {
    this.#scheduled = false;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const pairs = this.#open;
    const peers = this.#openPeers;
    if (pairs.length === 0) return;
    if (this.#windowMs > 0) this.#lastFlush = this.#now();
    this.#open = [];
    this.#openPeers = [];
    for (let i = 0; i < pairs.length; i++) this.#publish(peers[i]!, pairs[i]!);
  }

  #publish(peer: NodeId, pair: Pair): void {
    const batch = pair.batch;
    if (batch === undefined) return;
    pair.batch = undefined;
    const bytes = encodeBatch(this.#bus.node, pair.sent, pair.received, batch);
    this.stats.envelopesOut++;
    this.stats.bytesOut += bytes.byteLength;
    this.#bus.publish(peer, bytes);
  }

  /**
   * Takes the `UNBIND` items of connection `conn` out of this turn's envelope to `peer`, not
   * yet published; returns whether there were any. For a home that holds a request back after
   * receiving it (docs/spec/SERVER.md §8.4.2 "Pending requests"): that envelope's `ack` will
   * reach the request, so an `UNBIND` in it would be taken for the request's answer.
   */
  withdrawUnbind(peer: NodeId, conn: ConnId): boolean {
    const batch = this.#pairs.get(peer)?.batch;
    if (batch === undefined) return false;
    let found = false;
    for (const body of batch) {
      if (body.kind !== Kind.OUT) continue;
      const items = body.items;
      for (let i = items.length - 1; i >= 0; i--) {
        const item = items[i]!;
        if (item.tag === "unbind" && item.conn === conn) {
          items.splice(i, 1);
          found = true;
        }
      }
    }
    return found;
  }

  /**
   * Takes the last `BIND` of connection `conn` out of this turn's envelope to `peer`, not yet
   * published, and returns it (`undefined` when there is none). For an edge that undoes a late
   * success (`CLOSED{abandoned}`) while the connection's next request to the same home waits in
   * that envelope: the request goes behind the undo (docs/spec/SERVER.md §8.4.2 "Late success").
   */
  withdrawBind(peer: NodeId, conn: ConnId): Extract<Body, { kind: typeof Kind.BIND }> | undefined {
    const batch = this.#pairs.get(peer)?.batch;
    if (batch === undefined) return undefined;
    const index = batch.findLastIndex((body) => body.kind === Kind.BIND && body.conn === conn);
    if (index < 0) return undefined;
    return batch.splice(index, 1)[0] as Extract<Body, { kind: typeof Kind.BIND }>;
  }

  /**
   * Ends this turn's envelope to `peer` now: what it holds is published, and what is sent to
   * `peer` after this call travels in the next envelope, under a `seq` of its own. Nothing
   * happens when no envelope to `peer` is open or it holds nothing. For an edge that undoes a
   * late success: the peer's `ack` then tells what it produced before the undo from what it
   * produced after (docs/spec/SERVER.md §8.4.2 "Late success").
   */
  cut(peer: NodeId): void {
    const pair = this.#pairs.get(peer);
    if (pair?.batch === undefined || pair.batch.length === 0) return;
    this.#publish(peer, pair);
  }

  /**
   * Tells `peer` this node's `ack` now: nothing to do when a batch to it is open (it carries
   * the ack at the end of the turn), else a heartbeat (docs/spec/SERVER.md §8.5.1; a heartbeat
   * takes no number, so one more is harmless).
   */
  acknowledge(peer: NodeId): void {
    const pair = this.#pairs.get(peer);
    if (pair === undefined || pair.batch !== undefined) return;
    const bytes = encodeBatch(this.#bus.node, pair.sent, pair.received, []);
    this.stats.envelopesOut++;
    this.stats.bytesOut += bytes.byteLength;
    this.#bus.publish(peer, bytes, true);
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

  /**
   * The highest `ack` received from `peer` that was already sent when `peer` produced what is
   * being delivered now (docs/spec/SERVER.md §8.5.3): while the bodies of an envelope from `peer`
   * are delivered, the one received before that envelope; else {@linkcode Streams.acked}. An
   * envelope's own `ack` is taken when it is published, after its bodies were produced: it may
   * reach frames `peer` took in after producing a `BIND` of that envelope and failed to hand (a
   * slow consumer), which only a `CLOSED` behind that `BIND` tells.
   */
  ackedBefore(peer: NodeId): number {
    return this.#deliveringFrom === peer ? this.#ackBefore : this.acked(peer);
  }

  /** Milliseconds since anything arrived from `peer` (Infinity = never). */
  silence(peer: NodeId): number {
    const pair = this.#pairs.get(peer);
    return pair ? this.#now() - pair.lastHeard : Infinity;
  }

  /** Handles bytes from the bus: one envelope, its bodies delivered in order. */
  receive(bytes: Uint8Array): void {
    let batch: Batch;
    try {
      batch = decodeBatch(bytes);
    } catch {
      this.stats.malformed++;
      return;
    }
    this.stats.envelopesIn++;
    this.stats.bytesIn += bytes.byteLength;
    const peer = batch.source;
    if (peer === this.#bus.node) return;
    const pair = this.#pair(peer);
    const now = pair.lastHeard = this.#now();
    if (this.#timer !== undefined) this.#awake(now);
    pair.suspected = false;
    const bodies = batch.bodies;
    // The `ack` counts only from an envelope that follows all before it: one behind a gap was
    // sent after what was lost, which may hold a connection's `CLOSED` whose `delivered` is lower
    // (frames that reached the edge after the close were never handed over). See
    // docs/spec/SERVER.md §8.5.3.
    if (bodies.length === 0) {
      // A heartbeat: the last seq sent.
      if (batch.seq > pair.received) {
        this.stats.gaps++;
        pair.received = batch.seq;
        this.#resync(peer, "gap");
      } else if (batch.ack > pair.acked) {
        pair.acked = batch.ack;
      }
      return;
    }
    const expected = pair.received + 1;
    if (batch.seq < expected) {
      this.stats.duplicates++;
      return;
    }
    // What this turn produced for the peer so far leaves now, with the `ack` it was produced
    // under, before an envelope whose `BIND` or `CLOSED` an edge matches against our `ack`
    // (docs/spec/SERVER.md §8.4.1): published at the turn's end, an `UNBIND` produced before a
    // `BIND` arrived would carry an `ack` that reaches it and answer a request not yet run.
    if (pair.batch !== undefined && batch.seq === expected && matchedByAck(bodies)) {
      this.#publish(peer, pair);
    }
    pair.received = batch.seq;
    if (batch.seq > expected) {
      this.stats.gaps++;
      this.#resync(peer, "gap");
      return;
    }
    const from = this.#deliveringFrom, before = this.#ackBefore;
    this.#deliveringFrom = peer;
    this.#ackBefore = pair.acked;
    if (batch.ack > pair.acked) pair.acked = batch.ack;
    pair.delivered = batch.seq;
    this.stats.bodiesIn += bodies.length;
    try {
      for (let i = 0; i < bodies.length; i++) this.#handlers.deliver(bodies[i]!);
    } finally {
      this.#deliveringFrom = from;
      this.#ackBefore = before;
    }
    this.#handlers.delivered?.(peer);
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
    // A heartbeat never overtakes a batch of its pair (it names the batch's seq).
    this.flush();
    const now = this.#now();
    // "Sent nothing in that period": nothing since the previous tick. (Comparing with
    // `heartbeat_ms` instead skipped every other heartbeat whenever a timer fired a millisecond
    // early, doubling the silence a peer sees.)
    const since = this.#lastTick;
    this.#lastTick = now;
    // More than half a period late: this node was paused (its event loop blocked, the process
    // stopped), and what its peers sent meanwhile waits unread behind this timer. It judges no
    // peer at this tick but at the next, once that is read; never two ticks in a row, so a node
    // whose every tick is late still suspects a silent peer. (Judged at once, a pause of 500 ms
    // or more made the node resync peers whose heartbeats were waiting to be read.)
    const judge = now - since <= 1.5 * this.#heartbeatMs || this.#skippedJudgement;
    this.#skippedJudgement = !judge;
    for (const [peer, pair] of this.#pairs) {
      const active = this.#handlers.isPeer(peer);
      if (!active && now - pair.lastHeard > this.#idleMs && now - pair.lastSent > this.#idleMs) {
        this.#pairs.delete(peer);
        continue;
      }
      if (pair.lastSent <= since) {
        pair.lastSent = now;
        const bytes = encodeBatch(this.#bus.node, pair.sent, pair.received, []);
        this.stats.envelopesOut++;
        this.stats.bytesOut += bytes.byteLength;
        this.#bus.publish(peer, bytes, true);
      }
      if (judge && active && !pair.suspected && now - pair.lastHeard > 3 * this.#heartbeatMs) {
        pair.suspected = true;
        this.#resync(peer, "suspect");
      }
    }
  }

  /**
   * Drops the stream state of every node `live` says is gone (its liveness key expired: a node
   * that crashed or stopped, docs/spec/SERVER.md §8.5.1), once it is no peer here and nothing
   * has arrived from it for `T`; returns how many. Node ids are never reused (each start is a
   * new node, §8.2), so no stream with such a node can start again. Without this, every
   * restart in the cluster's life left a pair behind that got a heartbeat every `heartbeat_ms`.
   */
  forgetGone(live: (node: NodeId) => boolean): number {
    const now = this.#now();
    let forgotten = 0;
    for (const [peer, pair] of this.#pairs) {
      if (live(peer) || now - pair.lastHeard <= this.#idleMs || pair.batch !== undefined) continue;
      if (this.#handlers.isPeer(peer)) continue;
      this.#pairs.delete(peer);
      this.#bus.forget?.(peer);
      forgotten++;
    }
    return forgotten;
  }

  /** Peers with stream state (for `/v2/status`). */
  peers(): NodeId[] {
    return [...this.#pairs.keys()];
  }
}

/**
 * Whether an envelope's bodies include one whose effects its sender matches against the `ack`s
 * it receives (docs/spec/SERVER.md §8.4.2): a `BIND` (the request's answer) or a `CLOSED` (the
 * undoing of a late success).
 */
function matchedByAck(bodies: readonly Envelope[]): boolean {
  for (let i = 0; i < bodies.length; i++) {
    const kind = bodies[i]!.kind;
    if (kind === Kind.BIND || kind === Kind.CLOSED) return true;
  }
  return false;
}
