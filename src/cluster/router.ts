/**
 * The cluster {@linkcode Router} (docs/spec/SERVER.md §8.4): the same crossings as the in-memory
 * `LocalRouter`, carried as envelopes over {@linkcode Streams} when the other side is another
 * node. Calls for this node go straight to its own endpoints.
 *
 * Edge side: `bind` sends `BIND` and waits for the first binding item for the connection from
 * that home (`BOUND`, `UNBIND`, `MISS`) or `forward_timeout_ms` (then the client gets
 * `SERVICE_UNAVAILABLE` and a late `BOUND` is undone with `CLOSED{abandoned}`); `forward` sends
 * `MSG`; `closed` sends `CLOSED`. Home side: `deliver` and `direct` collect the items of one event
 * per edge and `flush` hands one `OUT` per edge to the streams, which publish one envelope per
 * peer per event-loop turn (docs/spec/SERVER.md §8.4.4 "Output").
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { ConnId } from "../engine/effects.ts";
import { decodeClientMessage, encodeServerMessage } from "../protocol/codec.ts";
import { unavailable } from "../transport/edge.ts";
import { type ClientMessage, RawJson, type ServerMessage } from "../protocol/messages.ts";
import type {
  BindOutcome,
  ClosedCause,
  CommandReply,
  DeliveryFailure,
  Directive,
  EdgeEndpoint,
  HomeEndpoint,
  RemoteMeta,
  RoomCommand,
  Router,
} from "../coordination/router.ts";
import { type Envelope, type Frame, Kind, type OutItem } from "./envelope.ts";
import { type ResyncReason, Streams } from "./streams.ts";
import type { ClusterBus, NodeId } from "./types.ts";

const log = getLogger(["signal-fish", "cluster"]);

/** Settings of a {@linkcode ClusterRouter}. */
export interface ClusterRouterOptions {
  /** `cluster.forward_timeout_ms`: longest wait for a home's answer. */
  forwardTimeoutMs: number;
  /** `cluster.heartbeat_ms`. */
  heartbeatMs: number;
  /** `T` (ms): idle stream state is dropped after it. */
  idleMs: number;
  /** `cluster.envelope_window_ms`: least time between two publishes of batches. @default 0 */
  envelopeWindowMs?: number;
  /** Clock, ms. @default Date.now */
  now?: () => number;
  /** Called on every resync (logs, metrics). */
  onResync?: (peer: NodeId, reason: ResyncReason, closed: number) => void;
}

/** A bind request waiting for its home. */
interface PendingBind {
  home: NodeId;
  /**
   * The `seq` of the envelope that carried the `BIND`: only a binding item in an envelope whose
   * `ack` reaches it answers the request (docs/spec/SERVER.md §8.4.2 "Pending requests").
   */
  seq: number;
  /** The request, for its failure message. */
  message: ClientMessage;
  resolve: (outcome: BindOutcome) => void;
  /** The edge's hook for a `BOUND` answer, called before `resolve` ({@linkcode Router.bind}). */
  taken: (() => void) | undefined;
  /**
   * Fails the request after `forward_timeout_ms`; none for a connection bound to that home
   * already, which waits for the home's answer or a resync (docs/spec/SERVER.md §8.4.2).
   */
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * The `CONTROL` body of a takeover's probe (docs/spec/SERVER.md §8.5.3): an operator inspect of no
 * room, which every release of this server answers at once (`not_found`), so its `REPLY` shows
 * the peer alive and, by its `ack`, what the peer had received.
 */
const PROBE = JSON.stringify({ kind: "inspect", gameName: "", roomCode: "" });

/**
 * How many times at most a takeover asks the replaced connection's edge (docs/spec/SERVER.md
 * §8.5.3): while frames keep going to that connection, each answer leaves the latest ones
 * unknown; after this many the takeover reports them missing rather than wait for a pause.
 */
const PROBE_ROUNDS = 4;

/**
 * What a takeover's probe found (docs/spec/SERVER.md §8.5.3): the edge answered after every frame
 * sent to the replaced connection (`alive`), answered but frames kept going to it until the
 * probes or the time ran out (`unsure`), or did not answer in time (`silent`).
 */
type ProbeResult = "alive" | "unsure" | "silent";

/** A takeover's replaced connection and whether frames sent to it may be missing (docs/spec/SERVER.md §8.5.3). */
interface TakeoverVerdict {
  conn: ConnId;
  truncated: boolean;
}

/** A {@linkcode Router} for one node of a cluster. */
export class ClusterRouter implements Router {
  readonly #options: ClusterRouterOptions;
  readonly #now: () => number;
  readonly streams: Streams;
  #node: NodeId;
  #edge: EdgeEndpoint | undefined;
  #home: HomeEndpoint | undefined;
  /** Items of the current home event, per destination edge. */
  readonly #out = new Map<NodeId, OutItem[]>();
  readonly #pending = new Map<ConnId, PendingBind>();
  /**
   * Bind requests that failed without the home's answer (timeout, resync), by
   * {@linkcode abandonedKey} (connection and home), with when: a late `BOUND` is undone, and a
   * resync with that home undoes whatever the request did there. Per connection and home, so a
   * request the connection sends elsewhere meanwhile does not forget one. Forgotten after `T`.
   */
  readonly #abandoned = new Map<string, { conn: ConnId; home: NodeId; at: number }>();
  /**
   * Requests undone with `CLOSED{abandoned}`, by {@linkcode abandonedKey}: the `seq` of the
   * envelope that carries it, and when. Until the home acknowledges that envelope, what it sends
   * the connection may still be the undone request's doing (an answer, frames of the room it
   * joined), which a new request to that home would take for its own: such a request is refused
   * at once (`SERVICE_UNAVAILABLE`) meanwhile.
   */
  readonly #undoing = new Map<string, { seq: number; at: number }>();
  readonly #commands = new Map<
    number,
    { home: NodeId; resolve: (reply: CommandReply) => void; timer: ReturnType<typeof setTimeout> }
  >();
  /**
   * Requests whose answer, so far in the envelope being delivered, is an `UNBIND`: a `BOUND` or
   * `MISS` in a later body of the same envelope answers instead (bodies of other kinds, a
   * `BOUNCE`, split one `OUT` in two); at the envelope's end the `UNBIND` answers.
   */
  readonly #unboundSoFar = new Map<ConnId, PendingBind>();
  #nextRequest = 1;
  /** Set while a received envelope is processed: `flush` publishes nothing until it ends. */
  #holding = false;
  /**
   * Home side, per remote session: `last_sent`, the `seq` of the last `OUT` that carried a frame
   * for it (docs/spec/SERVER.md §8.2, §8.5.3). Dropped when the binding ends.
   */
  readonly #lastSent = new Map<ConnId, number>();
  /**
   * Edge side, per connection bound to another home: `delivered`, the `seq` of the last `OUT`
   * from that home from which the connection was handed a frame (§8.5.3). Dropped when the
   * binding ends.
   */
  readonly #delivered = new Map<ConnId, number>();
  /**
   * Home side: `BIND`s of `Reconnect`s waiting for a probe of the edge whose connection they take
   * over (docs/spec/SERVER.md §8.5.3), by connection. Dropped by that connection's `CLOSED` or a resync with the edge
   * that sent it (which answers the request itself).
   */
  readonly #parked = new Map<ConnId, Extract<Envelope, { kind: typeof Kind.BIND }>>();
  /**
   * Home side: connections of parked `BIND`s whose binding here ended meanwhile (a takeover of
   * their seat, a removal). The edge takes the first binding item for a pending request in an
   * envelope that acknowledges its `BIND` as the answer (docs/spec/SERVER.md §8.4.2 "Pending
   * requests"), so that `UNBIND` is held and sent just before the request's answer, in its `OUT`.
   */
  readonly #unbindBehindParked = new Set<ConnId>();
  /** Set while a takeover's bind runs: what {@linkcode ClusterRouter.takeoverTruncated} answers. */
  #verdict: TakeoverVerdict | undefined;
  /** Set by {@linkcode ClusterRouter.stop}: parked requests are not carried out after it. */
  #stopped = false;
  /** Counters of docs/spec/SERVER.md §6.3 (#71, #73–#75). */
  readonly counts = {
    resyncCloses: 0,
    bindTimeouts: 0,
    bindsExpired: 0,
    bindsUndone: 0,
    /** Edge side: frames a home returned as `BOUNCE` (docs/spec/SERVER.md §8.4.2). */
    bounced: 0,
  };
  #heartbeat: ReturnType<typeof setInterval> | undefined;

  /** A router for `bus.node`; {@linkcode ClusterRouter.start} subscribes. */
  constructor(bus: ClusterBus, options: ClusterRouterOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#node = bus.node;
    this.streams = new Streams(
      bus,
      {
        deliver: (envelope) => this.#receive(envelope),
        delivered: (peer) => this.#envelopeEnd(peer),
        resync: (peer, reason) => this.#resync(peer, reason),
        isPeer: (peer) => this.#isPeer(peer),
      },
      options.heartbeatMs,
      options.idleMs,
      this.#now,
      options.envelopeWindowMs ?? 0,
    );
  }

  /** Starts the heartbeat timer (the bus is started by the caller with this router's handlers). */
  startHeartbeats(): void {
    this.#heartbeat ??= setInterval(() => {
      this.streams.tick();
      this.#forgetAbandoned();
    }, this.#options.heartbeatMs);
  }

  /**
   * Home side, the takeover rule of docs/spec/SERVER.md §8.5.3, asked by the engine while a
   * `Reconnect` replaces `conn`: whether frames sent to it may not have reached it. Decided
   * before the bind ran (see `#takeoverVerdict`); false for a local or unknown connection.
   */
  takeoverTruncated(conn: ConnId): boolean {
    const verdict = this.#verdict;
    return verdict !== undefined && verdict.conn === conn && verdict.truncated;
  }

  /**
   * The remote connection a `Reconnect` would take over here, if any: one whose player's seat is
   * played by a remote session of another node.
   */
  #takeoverOf(message: ClientMessage): { conn: ConnId; edge: NodeId } | undefined {
    if (message.type !== "Reconnect") return undefined;
    const home = this.#home;
    const conn = home?.seatConnection?.(message.data.player_id);
    if (conn === undefined) return undefined;
    const edge = home!.edgeOf?.(conn);
    return edge === undefined || edge === this.#node ? undefined : { conn, edge };
  }

  /**
   * Whether frames were sent to `takeover.conn` past the last `ack` of its edge: until that edge
   * is heard from, their arrival is unknown. While a `BIND` from that edge is delivered, its
   * envelope's own `ack` does not count (`Streams.ackedBefore`): it was taken after the request
   * was made, and a frame it reaches that the edge failed to hand shows only in a `CLOSED` behind
   * the `BIND`, which the probe's answer then follows (docs/spec/SERVER.md §8.5.3).
   */
  #unacknowledged(takeover: { conn: ConnId; edge: NodeId }): boolean {
    return (this.#lastSent.get(takeover.conn) ?? 0) > this.streams.ackedBefore(takeover.edge);
  }

  /**
   * The verdict for the takeover a `Reconnect` makes now (docs/spec/SERVER.md §8.5.3): nothing
   * missing when the replaced connection's edge acknowledged every frame sent to it, or answered
   * the probe sent for this request after every frame sent to the connection (`probed`: the edge
   * and its result), having handed them (a frame it could not hand closed the connection, and
   * that `CLOSED` came before the answer); missing when frames went to the connection after the
   * last probe and no time was left to ask again; otherwise the frames past its `ack` may be
   * missing.
   */
  #takeoverVerdict(
    message: ClientMessage,
    probed?: { edge: NodeId; result: ProbeResult },
  ): TakeoverVerdict | undefined {
    const takeover = this.#takeoverOf(message);
    if (takeover === undefined) return undefined;
    const result = probed?.edge === takeover.edge ? probed.result : "silent";
    if (result === "alive") return { conn: takeover.conn, truncated: false };
    if (result === "unsure") return { conn: takeover.conn, truncated: true };
    return { conn: takeover.conn, truncated: this.#unacknowledged(takeover) };
  }

  /**
   * The edge a `Reconnect` must probe before it takes over a connection there: one with frames
   * sent to that connection past its `ack`, even when that edge sent the request (those frames
   * crossed it, and may yet fail to reach the connection, docs/spec/SERVER.md §8.5.3).
   */
  #needsProbe(message: ClientMessage): { conn: ConnId; edge: NodeId } | undefined {
    const takeover = this.#takeoverOf(message);
    if (takeover === undefined) return undefined;
    return this.#unacknowledged(takeover) ? takeover : undefined;
  }

  /**
   * Asks `edge` whether it is alive and has handled every frame sent to `conn` (a probe,
   * docs/spec/SERVER.md §8.5.3), within `ms` ms: `"alive"` when its `REPLY` arrives and no frame
   * went to `conn` in the probe's envelope or after it (an answer says nothing of frames the edge
   * reads after the probe: while some went, it is asked again, {@linkcode PROBE_ROUNDS} times at
   * most); `"unsure"` when frames kept going until the rounds or the time ran out; `"silent"`
   * after `ms` ms without an answer or a resync with it.
   */
  #probe(edge: NodeId, ms: number, conn: ConnId): Promise<ProbeResult> {
    const deadline = this.#now() + Math.max(0, ms);
    const { promise, resolve } = Promise.withResolvers<ProbeResult>();
    let rounds = 0;
    const ask = () => {
      rounds++;
      const requestId = this.#nextRequest++;
      const timer = setTimeout(() => {
        this.#commands.delete(requestId);
        resolve("silent");
      }, Math.max(0, deadline - this.#now()));
      this.#commands.set(requestId, {
        home: edge,
        timer,
        resolve: (reply) => {
          if (!reply.ok && (reply.reason === "unreachable" || reply.reason === "no_answer")) {
            resolve("silent");
          } else if ((this.#lastSent.get(conn) ?? 0) < seq) resolve("alive");
          else if (rounds < PROBE_ROUNDS && this.#now() < deadline && !this.#stopped) ask();
          else resolve("unsure");
        },
      });
      const seq = this.streams.send(edge, { kind: Kind.CONTROL, requestId, json: PROBE });
    };
    ask();
    return promise;
  }

  takeover(message: ClientMessage, handle: () => void): Promise<void> | undefined {
    const probe = this.#needsProbe(message);
    if (probe === undefined) {
      this.#judged(this.#takeoverVerdict(message), handle);
      return undefined;
    }
    const wait = Math.min(this.#options.heartbeatMs, this.#options.forwardTimeoutMs);
    return this.#probe(probe.edge, wait, probe.conn).then((result) => {
      if (this.#stopped) return;
      this.#judged(this.#takeoverVerdict(message, { edge: probe.edge, result }), handle);
      this.flush();
    });
  }

  /** Runs `handle` with `verdict` for the engine's takeover rule. */
  #judged(verdict: TakeoverVerdict | undefined, handle: () => void): void {
    this.#verdict = verdict;
    try {
      handle();
    } finally {
      this.#verdict = undefined;
    }
  }

  /** Runs the home's bind with `verdict` for the engine's takeover rule. */
  #bindHome(
    conn: ConnId,
    message: ClientMessage,
    now: number,
    verdict: TakeoverVerdict | undefined,
    remote?: RemoteMeta,
  ): BindOutcome {
    const home = this.#home;
    if (home === undefined) return { status: "miss" };
    let outcome: BindOutcome = { status: "miss" };
    this.#judged(verdict, () => outcome = home.bind(conn, message, now, remote));
    return outcome;
  }

  /** Stops timers and fails what is pending. */
  stop(): void {
    this.#stopped = true;
    // What this turn produced still goes out (a drain's last RoomLeft, for example).
    this.streams.flush();
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    for (const [, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.resolve({ status: "unbound" });
    }
    this.#pending.clear();
    // Sent, not answered: whether the home carried them out is unknown.
    for (const [, command] of this.#commands) {
      clearTimeout(command.timer);
      command.resolve({ ok: false, reason: "no_answer" });
    }
    this.#commands.clear();
  }

  /** Bus handlers to pass to `ClusterBus.start`. */
  busHandlers(): { receive: (bytes: Uint8Array) => void; lost: (to: NodeId) => void } {
    return {
      receive: (bytes) => this.streams.receive(bytes),
      lost: (to) => this.streams.lost(to),
    };
  }

  attach(node: NodeId, endpoints: { edge: EdgeEndpoint; home: HomeEndpoint }): void {
    this.#node = node;
    this.#edge = endpoints.edge;
    this.#home = endpoints.home;
  }

  detach(_node: NodeId): void {
    this.#edge = undefined;
    this.#home = undefined;
  }

  #isPeer(peer: NodeId): boolean {
    if (this.#edge?.boundTo?.(peer) === true || this.#home?.servesEdge?.(peer) === true) {
      return true;
    }
    // A request pending there makes a peer too (docs/spec/SERVER.md §8.2 "Peers").
    for (const pending of this.#pending.values()) if (pending.home === peer) return true;
    return false;
  }

  // -------------------------------------------------------------------------------------------
  // Edge → home

  bind(
    home: NodeId,
    conn: ConnId,
    message: ClientMessage,
    now: number,
    request?: { frame: string; meta: Omit<RemoteMeta, "edge">; taken?: () => void },
  ): BindOutcome | Promise<BindOutcome> {
    if (home === this.#node) {
      // Without a probe (the edge resolves its own requests through `takeover`): a takeover
      // here judges unacknowledged frames missing (docs/spec/SERVER.md §8.5.3).
      return this.#bindHome(conn, message, now, this.#takeoverVerdict(message));
    }
    if (request === undefined) throw new TypeError("A remote bind needs the request frame");
    const key = abandonedKey(conn, home);
    const undoing = this.#undoing.get(key);
    if (undoing !== undefined) {
      if (this.streams.acked(home) < undoing.seq) {
        this.#sendToClient(conn, unavailable(message));
        return { status: "unbound" };
      }
      this.#undoing.delete(key);
    }
    // An earlier request to that home that timed out stays remembered: its late success, which
    // comes in an envelope that does not acknowledge this request's `BIND`, is still undone.
    const { promise, resolve } = Promise.withResolvers<BindOutcome>();
    // A member's request to its own home has no timeout (docs/spec/SERVER.md §8.4.2 "Timeout"):
    // that home answers it in order with the room's traffic however slow it is, and a home that
    // stops answering is resynced (1012). A timeout would answer the client twice (its
    // `SERVICE_UNAVAILABLE`, then the home's late answer, which must reach it: undoing it would
    // end, untold, the membership the connection had before the request).
    const timer = this.#edge?.homeOf?.(conn) === home ? undefined : setTimeout(() => {
      const pending = this.#pending.get(conn);
      if (pending === undefined || pending.timer !== timer) return;
      this.#abandoned.set(abandonedKey(conn, home), { conn, home, at: this.#now() });
      this.counts.bindTimeouts++;
      this.#failPending(conn, pending);
    }, this.#options.forwardTimeoutMs);
    const seq = this.streams.send(home, {
      kind: Kind.BIND,
      conn,
      meta: request.meta,
      deadline: this.#now() + this.#options.forwardTimeoutMs,
      frame: request.frame,
    });
    this.#pending.set(conn, { home, seq, message, resolve, taken: request.taken, timer });
    return promise;
  }

  #sendToClient(conn: ConnId, message: ServerMessage): void {
    const frame = encodeServerMessage(message);
    const failed = this.#edge?.deliver(frame, [conn]);
    // A slow consumer (its queue dropped) or a closed socket is torn down, as for any frame
    // (docs/spec/SERVER.md §5.2): left open, it would have lost frames untold.
    if (failed) this.#edge?.undelivered?.(frame, failed, this.#now());
    this.#edge?.flush();
  }

  forward(
    home: NodeId,
    conn: ConnId,
    input: ClientMessage | Uint8Array,
    frame: string | Uint8Array,
    now: number,
  ): void {
    if (home === this.#node) {
      this.#home?.receive(conn, input, now);
      return;
    }
    if (
      typeof input === "object" && !(input instanceof Uint8Array) && input.type === "GameData" &&
      input.data.to_player === undefined && input.data.data instanceof RawJson
    ) {
      // The relay's common frame, validated here: only its payload travels (no second decode).
      this.streams.send(home, { kind: Kind.DATA, conn, value: input.data.data.text });
      return;
    }
    this.streams.send(home, { kind: Kind.MSG, conn, frame });
  }

  closed(home: NodeId, conn: ConnId, cause: ClosedCause, now: number, lost = false): void {
    const pending = this.#pending.get(conn);
    if (pending && pending.home === home) {
      clearTimeout(pending.timer);
      this.#pending.delete(conn);
      pending.resolve({ status: "unbound" });
    }
    if (home === this.#node) {
      this.#home?.closed(conn, cause, now);
      return;
    }
    this.#sendClosed(home, conn, cause, lost);
  }

  closedPending(conn: ConnId, _now: number): void {
    const pending = this.#pending.get(conn);
    if (pending === undefined) return;
    clearTimeout(pending.timer);
    this.#pending.delete(conn);
    // After the BIND on the same stream: the home binds, then closes (or drops a parked BIND).
    this.#sendClosed(pending.home, conn, "closed");
    pending.resolve({ status: "unbound" });
  }

  /**
   * Tells `home` that connection `conn` closed or gave up its request (`CLOSED{cause,
   * delivered}`, docs/spec/SERVER.md §8.5.3); returns the envelope's `seq`. `lost`: the
   * connection went silent with frames handed to it, so `delivered` is 0 (nothing counts).
   */
  #sendClosed(home: NodeId, conn: ConnId, cause: ClosedCause, lost = false): number {
    const delivered = this.#takeDelivered(conn);
    return this.streams.send(home, {
      kind: Kind.CLOSED,
      conn,
      cause,
      delivered: lost ? 0 : delivered,
    });
  }

  /** The connection's `delivered` for its `CLOSED` (0 = nothing handed), forgotten. */
  #takeDelivered(conn: ConnId): number {
    const delivered = this.#delivered.get(conn) ?? 0;
    this.#delivered.delete(conn);
    return delivered;
  }

  // -------------------------------------------------------------------------------------------
  // Home → edge

  deliver(
    edge: NodeId,
    frame: string | Uint8Array,
    to: readonly ConnId[],
  ): DeliveryFailure[] | undefined {
    if (edge === this.#node) return this.#edge?.deliver(frame, to);
    let items = this.#out.get(edge);
    if (items === undefined) {
      items = [];
      this.#out.set(edge, items);
    }
    items.push({ tag: "frame", frame, to: to as ConnId[] });
    return undefined;
  }

  direct(edge: NodeId, directive: Directive, now: number): void {
    if (edge === this.#node) {
      this.#edge?.direct(directive, now);
      return;
    }
    let items = this.#out.get(edge);
    if (items === undefined) {
      items = [];
      this.#out.set(edge, items);
    }
    switch (directive.kind) {
      case "bound":
        items.push({ tag: "bound", conn: directive.conn, role: directive.role });
        break;
      case "unbind":
        if (this.#parked.get(directive.conn)?.source === edge) {
          // Not the answer to the connection's parked request, though the edge would take it
          // for one (its envelope acknowledges the BIND): it goes with that answer, before it.
          this.#unbindBehindParked.add(directive.conn);
          break;
        }
        items.push({ tag: "unbind", conn: directive.conn });
        break;
      case "close":
        items.push({
          tag: "close",
          conn: directive.conn,
          code: directive.code,
          reason: directive.reason,
        });
        break;
    }
  }

  /** Adds a `MISS` item for `conn` to the `OUT` of `edge`. */
  #miss(edge: NodeId, conn: ConnId): void {
    let items = this.#out.get(edge);
    if (items === undefined) {
      items = [];
      this.#out.set(edge, items);
    }
    items.push({ tag: "miss", conn });
  }

  flush(): void {
    this.#edge?.flush();
    // While an envelope is being processed, its whole output leaves as one OUT per edge.
    if (this.#holding || this.#out.size === 0) return;
    for (const [edge, items] of this.#out) {
      const seq = this.streams.send(edge, { kind: Kind.OUT, items });
      for (const item of items) {
        if (item.tag === "frame") {
          for (const conn of item.to) this.#lastSent.set(conn, seq);
        } else if (item.tag === "unbind" || item.tag === "close") {
          this.#lastSent.delete(item.conn);
        }
      }
    }
    this.#out.clear();
  }

  command(home: NodeId, command: RoomCommand, now: number): CommandReply | Promise<CommandReply> {
    if (home === this.#node) {
      return this.#home?.command(command, now) ?? { ok: false, reason: "unreachable" };
    }
    const requestId = this.#nextRequest++;
    const { promise, resolve } = Promise.withResolvers<CommandReply>();
    // No reply in time: the command may still reach the home (a stalled Redis delivers it
    // late) and be carried out, so the outcome is unknown, not a refusal.
    const timer = setTimeout(() => {
      this.#commands.delete(requestId);
      resolve({ ok: false, reason: "no_answer" });
    }, this.#options.forwardTimeoutMs);
    this.#commands.set(requestId, { home, resolve, timer });
    this.streams.send(home, { kind: Kind.CONTROL, requestId, json: JSON.stringify(command) });
    return promise;
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  /**
   * Processes one envelope. Everything it makes the home send to other edges — the frames of the
   * event and the binding item (`BOUND`/`UNBIND`/`MISS`) that ends a request or barrier — leaves
   * in one `OUT` per edge, frames first (docs/spec/SERVER.md §8.4.4 "Output"; see the note there).
   */
  #receive(envelope: Envelope): void {
    this.#holding = true;
    try {
      this.#dispatch(envelope);
    } finally {
      this.#holding = false;
      this.flush();
    }
  }

  /**
   * The home, when `envelope`'s connection is bound here from its sender; otherwise the frame
   * goes back to the sender as a `BOUNCE` (docs/spec/SERVER.md §8.4.2) and the answer is
   * `undefined`.
   */
  #boundHome(
    envelope: Extract<Envelope, { kind: typeof Kind.MSG | typeof Kind.DATA }>,
  ): HomeEndpoint | undefined {
    const home = this.#home;
    if (home?.edgeOf?.(envelope.conn) === envelope.source) return home;
    this.streams.send(envelope.source, {
      kind: Kind.BOUNCE,
      conn: envelope.conn,
      msgSeq: envelope.seq,
      frame: envelope.kind === Kind.MSG ? envelope.frame : gameDataFrame(envelope.value),
    });
    return undefined;
  }

  /** Sends `edge` the `UNBIND` of `conn` held while its `BIND` was parked, if any. */
  #sendHeldUnbind(edge: NodeId, conn: ConnId, now: number): void {
    if (this.#unbindBehindParked.delete(conn)) this.direct(edge, { kind: "unbind", conn }, now);
  }

  #dispatch(envelope: Envelope): void {
    const now = this.#now();
    switch (envelope.kind) {
      case Kind.BIND:
        this.#onBind(envelope, now);
        break;
      case Kind.MSG: {
        const home = this.#boundHome(envelope);
        if (home === undefined) break;
        const input = decodeInput(envelope.frame);
        // An unparsable frame never leaves an edge; one that does is dropped.
        if (input !== undefined) home.receive(envelope.conn, input, now);
        break;
      }
      case Kind.DATA: {
        const home = this.#boundHome(envelope);
        if (home === undefined) break;
        home.receive(envelope.conn, {
          type: "GameData",
          data: { data: new RawJson(envelope.value) },
        }, now);
        break;
      }
      case Kind.CLOSED:
        // The edge gave up on a request parked for a probe: it is not carried out.
        if (this.#parked.get(envelope.conn)?.source === envelope.source) {
          this.#parked.delete(envelope.conn);
          this.#sendHeldUnbind(envelope.source, envelope.conn, now);
        }
        if (this.#home?.edgeOf?.(envelope.conn) === envelope.source) {
          // Per connection: a frame sent to it in an OUT the edge had not handed it (§8.5.3).
          const truncated = (this.#lastSent.get(envelope.conn) ?? 0) > envelope.delivered;
          this.#lastSent.delete(envelope.conn);
          this.#home.closed(envelope.conn, envelope.cause, now, truncated);
        }
        // The edge refuses the connection's next request to this home until it learns the undo
        // was done here: it learns it from our ack, so one goes at once.
        if (envelope.cause === "abandoned") this.streams.acknowledge(envelope.source);
        break;
      case Kind.OUT:
        this.#onOut(envelope.source, envelope.seq, envelope.ack, envelope.items, now);
        break;
      case Kind.BOUNCE:
        this.counts.bounced++;
        this.#edge?.bounce?.(envelope.conn, envelope.frame, now, envelope.source);
        break;
      case Kind.CONTROL: {
        const command = JSON.parse(envelope.json) as RoomCommand;
        const reply = this.#home?.command(command, now) ??
          { ok: false, reason: "unreachable" } as CommandReply;
        this.streams.send(envelope.source, {
          kind: Kind.REPLY,
          requestId: envelope.requestId,
          json: JSON.stringify(reply),
        });
        break;
      }
      case Kind.REPLY: {
        const waiting = this.#commands.get(envelope.requestId);
        if (waiting) {
          clearTimeout(waiting.timer);
          this.#commands.delete(envelope.requestId);
          waiting.resolve(JSON.parse(envelope.json));
        }
        break;
      }
      case Kind.HEARTBEAT:
        break;
    }
  }

  /**
   * A `BIND` from an edge. `probed`: set when it comes back from waiting for a probe
   * (docs/spec/SERVER.md §8.5.3) — the edge probed and what the probe found.
   */
  #onBind(
    envelope: Extract<Envelope, { kind: typeof Kind.BIND }>,
    now: number,
    probed?: { edge: NodeId; result: ProbeResult },
  ): void {
    const edge = envelope.source;
    // Past its deadline (by this clock): the edge has answered already (docs/spec/SERVER.md §8.4.4),
    // unless the connection is a member here through that edge, whose request has no deadline.
    if (now > envelope.deadline && this.#home?.edgeOf?.(envelope.conn) !== edge) {
      this.counts.bindsExpired++;
      log.debug("Dropped an expired BIND from {edge}", { edge });
      return;
    }
    const message = typeof envelope.frame === "string" ? decodeInput(envelope.frame) : undefined;
    if (message === undefined || message instanceof Uint8Array) {
      this.direct(edge, { kind: "unbind", conn: envelope.conn }, now);
      this.flush();
      return;
    }
    if (probed === undefined) {
      const probe = this.#needsProbe(message);
      if (probe !== undefined) {
        // A takeover of a connection whose edge has not acknowledged frames sent to it: that
        // edge is asked first (docs/spec/SERVER.md §8.5.3), within the request's deadline.
        this.#parked.set(envelope.conn, envelope);
        // An UNBIND of the connection produced before the BIND arrived and not published yet
        // (an earlier body of this envelope, a removal) would leave with an `ack` that reaches
        // the BIND: it is held as one produced while the request waits.
        if (this.streams.withdrawUnbind(edge, envelope.conn)) {
          this.#unbindBehindParked.add(envelope.conn);
        }
        const member = this.#home?.edgeOf?.(envelope.conn) === edge;
        const heartbeat = this.#options.heartbeatMs;
        const wait = member ? heartbeat : Math.min(heartbeat, envelope.deadline - now);
        void this.#probe(probe.edge, wait, probe.conn)
          .then((result) => {
            if (this.#parked.get(envelope.conn) !== envelope || this.#stopped) return;
            this.#parked.delete(envelope.conn);
            this.#holding = true;
            try {
              this.#sendHeldUnbind(envelope.source, envelope.conn, this.#now());
              this.#onBind(envelope, this.#now(), { edge: probe.edge, result });
            } finally {
              this.#holding = false;
              this.flush();
            }
          });
        return;
      }
    }
    const verdict = this.#takeoverVerdict(message, probed);
    const outcome = this.#bindHome(envelope.conn, message, now, verdict, {
      edge,
      ...envelope.meta,
    });
    switch (outcome.status) {
      case "bound":
        this.direct(edge, { kind: "bound", conn: envelope.conn, role: outcome.role }, now);
        break;
      case "unbound":
        this.direct(edge, { kind: "unbind", conn: envelope.conn }, now);
        break;
      case "miss":
        this.#miss(edge, envelope.conn);
        break;
    }
    this.flush();
  }

  #onOut(home: NodeId, seq: number, ack: number, items: OutItem[], now: number): void {
    const edge = this.#edge;
    if (!edge) return;
    const answers = this.#answers(home, ack, items);
    for (let index = 0; index < items.length; index++) {
      const item = items[index]!;
      if (item.tag === "frame") {
        const to = this.#accepted(home, item.to, ack);
        if (to.length === 0) continue;
        const failed = edge.deliver(item.frame, to);
        // `delivered` moves for the connections handed the frame (§8.5.3).
        for (const conn of to) {
          if (failed === undefined || !failed.some((f) => f.id === conn)) {
            this.#delivered.set(conn, seq);
          }
        }
        // A slow or closed connection is torn down here, its home told by CLOSED (§5.2).
        if (failed) edge.undelivered?.(item.frame, failed, now);
        continue;
      }
      const conn = item.conn;
      const pending = this.#pending.get(conn);
      if (item.tag === "close") {
        if (this.#accepts(home, conn, ack)) {
          this.#delivered.delete(conn);
          edge.direct({ kind: "close", conn, code: item.code, reason: item.reason }, now);
        }
        continue;
      }
      if (item.tag === "unbind") this.#delivered.delete(conn);
      if (pending !== undefined && answers?.get(conn) === index) {
        // Not a member there now: a binding to that home ends too.
        if (item.tag === "unbind" && edge.homeOf?.(conn) === home) {
          edge.direct({ kind: "unbind", conn }, now);
        }
        if (item.tag === "unbind") {
          // The answer unless a later body of this envelope has a BOUND or MISS for it.
          this.#unboundSoFar.set(conn, pending);
          continue;
        }
        this.#unboundSoFar.delete(conn);
        clearTimeout(pending.timer);
        this.#pending.delete(conn);
        // The home has run every earlier request of the connection: any late answer came before.
        this.#abandoned.delete(abandonedKey(conn, home));
        // The edge takes the binding now, not when the promise settles (a microtask later):
        // frames of this run from the connection's previous home, or its previous room here,
        // must not reach it after its answer, and this home's must (docs/spec/SERVER.md §8.4.2).
        if (item.tag === "bound") pending.taken?.();
        pending.resolve(
          item.tag === "bound"
            ? { status: "bound", role: item.role }
            : item.tag === "miss"
            ? { status: "miss" }
            : { status: "unbound" },
        );
        continue;
      }
      if (item.tag === "bound" && this.#abandoned.delete(abandonedKey(conn, home))) {
        // A success that crossed the timeout: undone (docs/spec/SERVER.md §8.4.2 "Late success").
        this.counts.bindsUndone++;
        this.#undo(home, conn, now);
        continue;
      }
      // A barrier's answer, or the end of a binding: only from the connection's own home (a
      // late item from a home it has left must not unbind it from its new one).
      if (!this.#accepts(home, conn, ack)) continue;
      if (item.tag === "bound") {
        edge.direct({ kind: "bound", conn, role: item.role }, now);
      } else if (item.tag === "unbind") {
        edge.direct({ kind: "unbind", conn }, now);
      }
    }
    edge.flush();
  }

  /** The end of an envelope from `peer`: the `UNBIND`s that stayed answers answer (see above). */
  #envelopeEnd(peer: NodeId): void {
    if (this.#unboundSoFar.size === 0) return;
    for (const [conn, pending] of this.#unboundSoFar) {
      if (pending.home !== peer) continue;
      this.#unboundSoFar.delete(conn);
      if (this.#pending.get(conn) !== pending) continue;
      clearTimeout(pending.timer);
      this.#pending.delete(conn);
      this.#abandoned.delete(abandonedKey(conn, peer));
      pending.resolve({ status: "unbound" });
    }
  }

  /**
   * Which binding item of an `OUT` from `home` answers each request pending there
   * (docs/spec/SERVER.md §8.4.2 "Pending requests"), in an envelope whose `ack` reaches the
   * request's `BIND`: its first `BOUND` or `MISS` (never sent unasked while a request is pending:
   * a barrier and a request are never pending together), else its last `UNBIND`. Other items were
   * produced before the home ran the request (a removal, a room closed, in the same envelope) or
   * after it, and apply as they would without a request. `undefined` when none answers.
   */
  #answers(home: NodeId, ack: number, items: OutItem[]): Map<ConnId, number> | undefined {
    if (this.#pending.size === 0) return undefined;
    let answers: Map<ConnId, number> | undefined;
    let decided: Set<ConnId> | undefined;
    for (let index = 0; index < items.length; index++) {
      const item = items[index]!;
      if (item.tag === "frame" || item.tag === "close") continue;
      const conn = item.conn;
      const pending = this.#pending.get(conn);
      if (pending?.home !== home || ack < pending.seq || decided?.has(conn)) continue;
      answers ??= new Map();
      answers.set(conn, index);
      if (item.tag !== "unbind") (decided ??= new Set()).add(conn);
    }
    return answers;
  }

  /**
   * Whether a frame or `CLOSE` from `home`, in an envelope acknowledging our envelopes up to
   * `ack`, may reach `conn`: only while it is bound to `home` or has a request pending there
   * whose `BIND` that envelope acknowledges (docs/spec/SERVER.md §8.4.2 "Delivery and
   * unbinding"; after a failed request nothing from that home reaches it, "Late success").
   */
  #accepts(home: NodeId, conn: ConnId, ack: number): boolean {
    const homeOf = this.#edge?.homeOf;
    if (homeOf === undefined || homeOf(conn) === home) return true;
    // Until that home has run the undo of an earlier request's late success, what it sends the
    // connection is that membership's doing (docs/spec/SERVER.md §8.4.2 "Late success").
    const undoing = this.#undoing.get(abandonedKey(conn, home));
    if (undoing !== undefined && ack < undoing.seq) return false;
    // A pending request's answer comes in an envelope that acknowledges its `BIND`: what that
    // home sent the connection before is an earlier request's doing, one that timed out here
    // (its late refusal, or a late success undone), never this one's (docs/spec/SERVER.md §8.4.2).
    const pending = this.#pending.get(conn);
    return pending?.home === home && ack >= pending.seq;
  }

  /** The recipients of a frame from `home` that may get it; the others are counted as dropped. */
  #accepted(home: NodeId, to: ConnId[], ack: number): ConnId[] {
    let kept: ConnId[] | undefined;
    for (let i = 0; i < to.length; i++) {
      const conn = to[i]!;
      if (this.#accepts(home, conn, ack)) kept?.push(conn);
      else kept ??= to.slice(0, i);
    }
    if (kept === undefined) return to;
    this.#edge?.dropped?.(to.length - kept.length);
    return kept;
  }

  /**
   * Undoes at `home` a request of `conn` that failed without its answer (`CLOSED{abandoned}`,
   * docs/spec/SERVER.md §8.4.2 "Late success"), remembering the envelope that carries it.
   */
  #undo(home: NodeId, conn: ConnId, now: number): void {
    // A request of the connection to that home whose BIND has not left yet (it is in this turn's
    // envelope) goes behind the CLOSED: the home undoes the late success first, then runs the
    // request as one process would.
    const pending = this.#pending.get(conn);
    const bind = pending?.home === home && pending.seq === this.streams.lastSent(home)
      ? this.streams.withdrawBind(home, conn)
      : undefined;
    // The CLOSED starts an envelope of its own: what the home produces from the bodies before it
    // (another member's game data in the room of the late seat) then leaves with an `ack` below
    // the undo's `seq` and reaches nobody, even while a request of the connection is pending
    // there (docs/spec/SERVER.md §8.4.2 "Late success").
    this.streams.cut(home);
    const seq = this.#sendClosed(home, conn, "abandoned");
    this.#undoing.set(abandonedKey(conn, home), { seq, at: now });
    if (bind !== undefined) {
      pending!.seq = this.streams.send(home, bind);
    } else if (pending?.home === home) {
      // Its BIND has left: the home runs it (or ran it) with the late membership in place ("Already
      // in a room"), or drops it if it waits there for a probe; the CLOSED behind it undoes what it
      // did. It fails now with SERVICE_UNAVAILABLE, as it would once its answer or its timeout came
      // (docs/spec/SERVER.md §8.4.2 "Late success"); what that home sends the connection before it
      // takes the CLOSED in reaches nobody (`#accepts`).
      this.#failPending(conn, pending);
    }
  }

  /** Fails `conn`'s pending request now: the client gets `SERVICE_UNAVAILABLE`, no binding. */
  #failPending(conn: ConnId, pending: PendingBind): void {
    clearTimeout(pending.timer);
    this.#pending.delete(conn);
    this.#unboundSoFar.delete(conn);
    this.#sendToClient(conn, unavailable(pending.message));
    pending.resolve({ status: "unbound" });
  }

  /** Forgets failed requests older than `T` (their late answers can no longer arrive). */
  #forgetAbandoned(): void {
    const oldest = this.#now() - this.#options.idleMs;
    for (const [key, abandoned] of this.#abandoned) {
      if (abandoned.at < oldest) this.#abandoned.delete(key);
    }
    for (const [key, undoing] of this.#undoing) {
      if (undoing.at < oldest) this.#undoing.delete(key);
    }
  }

  #resync(peer: NodeId, reason: ResyncReason): void {
    const now = this.#now();
    let closed = 0;
    // Step 1: our connections bound to the peer or pending there.
    for (const [conn, pending] of this.#pending) {
      if (pending.home !== peer) continue;
      // The request fails at once (docs/spec/SERVER.md §8.5.1) and is undone below, unless it is
      // a member's request to its own home: that connection is closed with 1012 below and its
      // home told `CLOSED{closed}`, so its seat is held as any member's. An undo would end the
      // membership it had before the request (a seat released, "PlayerLeft"), §8.4.2 "Timeout".
      if (this.#edge?.homeOf?.(conn) !== peer) {
        this.#abandoned.set(abandonedKey(conn, peer), { conn, home: peer, at: now });
      }
      this.#failPending(conn, pending);
    }
    // Requests that failed without the peer's answer may have succeeded there, and the answer
    // may be what was lost: undo them (`abandoned`; a home that holds nothing ignores it).
    for (const [key, { conn, home }] of this.#abandoned) {
      if (home !== peer) continue;
      this.#abandoned.delete(key);
      this.#undo(peer, conn, now);
    }
    /** A connection closed with 1012 for this resync: its home is told. */
    const resynced = (conn: ConnId) => {
      closed++;
      this.counts.resyncCloses++;
      this.#sendClosed(peer, conn, "closed");
    };
    for (const conn of this.#edge?.resync?.(peer, now) ?? []) resynced(conn);
    // Requests of the peer parked for a probe: the peer answers them itself (step 1 there).
    for (const [conn, parked] of this.#parked) {
      if (parked.source !== peer) continue;
      this.#parked.delete(conn);
      this.#unbindBehindParked.delete(conn);
    }
    // Operator commands and probes waiting for the peer end at once, their outcome unknown
    // (the peer may have carried a command out before its reply was lost).
    for (const [id, command] of this.#commands) {
      if (command.home !== peer) continue;
      clearTimeout(command.timer);
      this.#commands.delete(id);
      command.resolve({ ok: false, reason: "no_answer" });
    }
    // Step 2: the peer's connections seated here.
    // A seat is truncated when a frame was sent to it after what the peer acknowledged (§8.5.3).
    const acked = this.streams.acked(peer);
    const truncated = (conn: ConnId) => (this.#lastSent.get(conn) ?? 0) > acked;
    for (const conn of this.#home?.dropEdge?.(peer, now, truncated) ?? []) {
      this.#lastSent.delete(conn);
      closed++;
      this.direct(peer, { kind: "close", conn, code: 1012, reason: "Cluster resync" }, now);
    }
    this.flush();
    log.warn("Resynced with {peer} ({reason}): {closed} connections closed", {
      peer,
      reason,
      closed,
    });
    this.#options.onResync?.(peer, reason, closed);
  }
}

/** The client frame a `DATA` body stands for (for its `BOUNCE`). */
function gameDataFrame(value: string): string {
  return `{"type":"GameData","data":{"data":${value}}}`;
}

/** A frame as the home's input: a decoded text message or a binary payload. */
function decodeInput(frame: Frame): ClientMessage | Uint8Array | undefined {
  if (typeof frame !== "string") return frame;
  const decoded = decodeClientMessage(frame);
  return decoded.ok ? decoded.message : undefined;
}

/** The key of an abandoned bind request: the connection and the home it went to. */
function abandonedKey(conn: ConnId, home: NodeId): string {
  return `${conn}\u0000${home}`;
}
