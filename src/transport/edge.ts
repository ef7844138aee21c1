/**
 * The edge (docs/spec/SERVER.md §8.2): it owns this node's connections and runs each inbound frame
 * through one pipeline — size limit → token binding → decode → session → route — handing room
 * input to the room's home through the {@linkcode Router}, the only path in every mode. It is
 * also this node's home endpoint: it applies the engine's effects, serialising each message once
 * (docs/spec/SERVER.md §5.1) and delivering it through the router to the connections' edges.
 *
 * While a bind request (`JoinRoom`, `JoinAsSpectator`, `Reconnect`) is pending at a home, the
 * connection's later frames wait in a bounded queue (docs/spec/SERVER.md §8.4.2); in single-instance mode
 * the in-memory router answers at once, so nothing ever waits.
 *
 * @module
 */
import { gameScope } from "../engine/room.ts";
import { getLogger } from "@logtape/logtape";
import { bugFields } from "../logging.ts";
import { type Awaitable, OneAtATime, then } from "../coordination/awaitable.ts";
import type { BucketKind, BucketTake, TokenBuckets } from "../coordination/buckets.ts";
import type { RoomDirectory } from "../coordination/directory.ts";
import { logFault } from "../coordination/faults.ts";
import { LocalRouter, MemoryRoomDirectory } from "../coordination/memory.ts";
import type {
  BindOutcome,
  ClosedCause,
  CommandReply,
  DeliveryFailure,
  Directive,
  NodeId,
  RemoteMeta,
  RoomCommand,
  Router,
} from "../coordination/router.ts";
import type { ConnId, DisconnectLoss, Effect, Engine } from "../engine/engine.ts";
import { utf8Length } from "../protocol/utf8.ts";
import {
  decodeClientMessage,
  encodeServerMessage,
  INVALID_CLIENT_MESSAGE,
} from "../protocol/codec.ts";
import type { ErrorCode } from "../protocol/error_codes.ts";
import type { ClientMessage, ServerMessage } from "../protocol/messages.ts";
import type { EdgeEvent } from "./events.ts";
import type { ConnectionBudget, ForwardBudget } from "./forward_budget.ts";
import { LocalPeers } from "./local_peers.ts";
import { type ConnectionEnd, type Peer, UNKNOWN_END } from "./peer.ts";
import { type TokenBinding, verifyProof } from "./token_binding.ts";

export type { EdgeEvent } from "./events.ts";
export type { AbnormalCause, CloseInitiator, ConnectionEnd, Peer, SendFailure } from "./peer.ts";

const log = getLogger(["signal-fish", "hub"]);
/** The frame every unparsable message gets (docs/spec/PROTOCOL.md §2.3), serialised once. */
const INVALID_FRAME = encodeServerMessage(INVALID_CLIENT_MESSAGE);
/** One GameData in this many is timed for the relay latency histogram (docs/spec/SERVER.md §6.5). */
export const RELAY_TIMING_SAMPLE = 16;
/** The node name of a single instance (docs/spec/SERVER.md §8.2; a cluster names nodes `<id>@<boot>`). */
export const LOCAL_NODE: NodeId = "local";

/** A slow consumer closed with 1013 (docs/spec/SERVER.md §5.2). */
const SLOW_CONSUMER_END: ConnectionEnd = Object.freeze({ code: 1013, initiator: "server" });
/** The loss of a slow consumer's connection: its outbound queue was discarded. */
const TRUNCATED: DisconnectLoss = Object.freeze({ truncated: true });

/** A connection the server closed with `code` (docs/spec/PROTOCOL.md §1.6). */
function serverClose(code: number): ConnectionEnd {
  return { code, initiator: "server" };
}

/** What the edge knows about a connection besides its peer. */
export interface PeerInfo {
  /** Client IP (docs/spec/SERVER.md §1.9). */
  ip: string;
  /** Set when the connection negotiated token binding: every text frame carries a proof. */
  tokenBinding?: TokenBinding;
}

/** Edge settings. */
export interface EdgeOptions {
  /** Largest accepted inbound frame in bytes (`security.max_message_size`). @default 65536 */
  maxMessageSize: number;
  /**
   * Most bytes of frames queued behind a pending request before the connection is closed as a
   * slow consumer with 1013 (`websocket.max_buffered_bytes`, docs/spec/SERVER.md §8.4.2).
   * @default 1048576
   */
  maxQueuedBytes?: number;
  /**
   * Most bytes buffered for all connections of this node together (`websocket.max_buffered_bytes_total`,
   * SECURITY.md): what waits to be written to each socket and what is queued behind a pending
   * request. Checked by every `tick` command (once a second): while the sum is over it, the
   * connections with the most bytes are closed as slow consumers (1013) until it is not.
   * `0` = no such budget. @default 0
   */
  maxBufferedBytesTotal?: number;
  /** Returns a fresh UUIDv4 connection id. */
  newId: () => string;
  /** Receives every engine and transport event (metrics, logs, tests). */
  onEvent?: (event: EdgeEvent) => void;
  /** This node's name. @default LOCAL_NODE */
  node?: NodeId;
  /** The router between edges and homes. @default a new LocalRouter (single instance) */
  router?: Router;
  /** The room directory the engine's `directory` effects write to. @default in memory */
  directory?: RoomDirectory;
  /**
   * Cluster mode: resolves `JoinRoom`, `JoinAsSpectator` and `Reconnect` through the shared
   * directory before any engine sees them (docs/spec/SERVER.md §8.4.3). @default none (single instance:
   * every room is local)
   */
  resolver?: Resolver;
  /**
   * Cluster mode: bytes of frames forwarded to remote homes per connection and per client
   * address, past which the connection's reads are held (src/transport/forward_budget.ts,
   * SECURITY.md "Cluster mode's Redis"). @default none (single instance: every home is local)
   */
  forwardBudget?: ForwardBudget;
  /**
   * Cluster mode: the failed-`Authenticate` budget per client IP is global (docs/spec/SERVER.md
   * §3.4, §8.3): before the engine answers an `Authenticate` the edge reads the `auth_failure`
   * bucket from `buckets` (the connection is pending meanwhile) and runs the engine inside
   * `limits.withAuthVerdict` (engine/rate_limits.ts); a failure it charged is taken from the
   * bucket before the answer is sent. @default none (the engine's own per-process bucket)
   */
  authFailures?: {
    buckets: TokenBuckets;
    limits: {
      withAuthVerdict<T>(
        verdict: BucketTake,
        handle: () => T,
        appTake?: BucketTake,
      ): { result: T; charged: boolean };
    };
    /**
     * The app's global `Authenticate` bucket (docs/spec/SERVER.md §3.3, §8.3): takes one of
     * its `perMinute` tokens. Called, and its outcome handed to the engine through
     * `withAuthVerdict`, for an `Authenticate` that would reach the app bucket (a budget left,
     * a configured app with `rate_limit_per_minute`, the right secret). @default none (the
     * engine's own per-process app buckets)
     */
    appTokens?: (appId: string, perMinute: number, now: number) => Awaitable<BucketTake>;
  };
  /**
   * Cluster mode: longest wait for a remote home's answer to a `LeaveRoom`/`LeaveSpectator`
   * barrier before the connection is closed with 1012 (`cluster.forward_timeout_ms`).
   * @default 5000
   */
  forwardTimeoutMs?: number;
}

/** Where a bind request goes, decided by a {@linkcode Resolver} (docs/spec/SERVER.md §8.4.3). */
export type Resolution =
  /**
   * Handled by this node's engine; `prepare` runs just before (stages a claimed code or id),
   * `after` just after. `holds`, when given, says whether the reason the resolver left the
   * request to this engine still holds as it is about to run (a member here, answered "Already
   * in a room"); when it no longer does, the request is resolved again (docs/spec/SERVER.md
   * §8.4.3).
   */
  | { kind: "local"; prepare?: () => void; after?: () => void; holds?: () => boolean }
  /** Sent to the room's home. */
  | { kind: "remote"; home: NodeId }
  /** Answered by the edge itself (a failure decided before any home). */
  | { kind: "reply"; message: ServerMessage; events?: EdgeEvent[] };

/** One attempt of a bind request's resolution ({@linkcode Resolver}). */
export interface ResolveAttempt {
  /** On the last attempt after `MISS`es, the home that did not have the room. */
  stale?: NodeId;
  /**
   * The rate-limit buckets this request has drawn a token from, over all its attempts: the
   * resolver adds each one it draws from and never draws from one twice (a token is not
   * returned, docs/spec/PROTOCOL.md §7.2.1), so a retry after a `MISS` draws only what the
   * request has not drawn yet (the creation token of a join that now creates).
   */
  drawn: Set<BucketKind>;
  /**
   * The remote home of the room the connection is a member of: the resolver only draws the
   * token of the request's first check (docs/spec/PROTOCOL.md §7.2.1 step 1, §7.9 check 1,
   * §7.11.4 after check 0) and answers `remote` to that home, which answers for its member as a
   * single instance would; refused, it answers `RATE_LIMIT_EXCEEDED` as the engine does.
   */
  memberOf?: NodeId;
}

/**
 * Resolves a bind request of connection `conn` (client IP `ip`) received at `now`, one attempt
 * at a time (docs/spec/SERVER.md §8.4.3).
 */
export type Resolver = (
  conn: ConnId,
  message: ClientMessage,
  ip: string,
  now: number,
  attempt: ResolveAttempt,
) => Promise<Resolution>;

/** A maintenance or operator command for the edge ({@linkcode Edge.command}). */
export type EdgeCommand =
  /** The maintenance sweep (docs/spec/SERVER.md §4.2). */
  | { kind: "sweep" }
  /** The once-a-second timer: held-seat expiry (docs/spec/SERVER.md §4.1). */
  | { kind: "tick" }
  /** Closes connections past their auth deadline (docs/spec/SERVER.md §4.5). */
  | { kind: "expire_authentication" }
  /** Closes every connection (graceful shutdown, docs/spec/SERVER.md §1.1). */
  | { kind: "close_all"; code: number; reason: string }
  /**
   * A drain step (cluster mode, docs/spec/SERVER.md §8.7): rooms without seats are deleted (every room
   * when `final`), and every connection that is not a member of a room homed here is closed
   * with 1001.
   */
  | { kind: "drain"; final: boolean }
  /** An operator command for a room, routed to its home through the directory. */
  | { kind: "room"; command: RoomCommand }
  /** Maintenance mode on this node: no new rooms (docs/spec/EXTENSIONS.md E12). */
  | { kind: "maintenance"; enabled: boolean };

/** Per-connection state of the inbound pipeline. */
interface Connection {
  /** Client IP (`PeerInfo.ip`; the caller's `PeerInfo` is not kept: one object less). */
  readonly ip: string;
  /** `PeerInfo.tokenBinding`, read once per text frame. */
  readonly tokenBinding: TokenBinding | undefined;
  /** The node homing the room this connection is bound to (always this node in one process). */
  home: NodeId;
  /** Frames that arrived while a bind request was pending, oldest first; undefined = none pending. */
  queue: (string | ArrayBuffer | Uint8Array | Bounced)[] | undefined;
  queuedBytes: number;
  /** A `LeaveRoom`/`LeaveSpectator` sent to a remote home, waiting for its answer (§8.4.2). */
  barrier?: ReturnType<typeof setTimeout>;
  /** Its forwarding budget, from its first frame to a remote home (cluster mode). */
  forward?: ConnectionBudget;
}

/** Routes frames between peers and homes, and applies this node's home output. */
export class Edge {
  readonly #engine: Engine;
  readonly #options: EdgeOptions;
  readonly #node: NodeId;
  readonly #router: Router;
  readonly #directory: RoomDirectory;
  readonly #maxQueuedBytes: number;
  readonly #onEvent: ((event: EdgeEvent) => void) | undefined;
  readonly #peers = new LocalPeers((directive, now) => this.#direct(directive, now));
  readonly #conns = new Map<ConnId, Connection>();
  readonly #resolver: Resolver | undefined;
  readonly #forwardBudget: ForwardBudget | undefined;
  /** Cluster mode: the last `Authenticate` budget check of each address, while one runs. */
  readonly #authChecks = new OneAtATime();
  /** Home side: remote sessions seated here → their edge node (docs/spec/SERVER.md §8.2). */
  readonly #remote = new Map<ConnId, NodeId>();
  /** Home side: remote recipients of `RoomLeft`/`SpectatorLeft` in this event (maybe unbound). */
  #unbindCheck: ConnId[] = [];
  /**
   * A drain has started (docs/spec/SERVER.md §8.7): connections that stop being members of a room
   * homed here are closed at once.
   */
  #draining = false;
  #relayCount = 0;
  /** Nesting of {@linkcode Edge.#apply}. */
  #depth = 0;
  /**
   * Effects of connections torn down while a batch of effects was being carried out (a socket
   * found closed, a slow consumer, a close the batch asked for): each teardown is a later event,
   * so its messages (`PlayerDisconnected`, a spectator's departure) follow the whole batch, never
   * land between two of its messages (`LobbyStateChanged` and its `GameStarting`,
   * docs/spec/PROTOCOL.md §1.5, §7.4).
   */
  #teardowns: Effect[][] = [];

  /** Creates the edge (and home) of node `options.node`, feeding `engine`. */
  constructor(engine: Engine, options: EdgeOptions) {
    this.#engine = engine;
    this.#options = options;
    this.#node = options.node ?? LOCAL_NODE;
    this.#router = options.router ?? new LocalRouter();
    this.#directory = options.directory ?? new MemoryRoomDirectory();
    this.#maxQueuedBytes = options.maxQueuedBytes ?? 1_048_576;
    this.#onEvent = options.onEvent;
    this.#resolver = options.resolver;
    this.#forwardBudget = options.forwardBudget;
    const peers = this.#peers;
    this.#router.attach(this.#node, {
      edge: this.#resolver === undefined ? peers : {
        deliver: (frame, to) => peers.deliver(frame, to),
        direct: (directive, now) => peers.direct(directive, now),
        flush: () => peers.flush(),
        bounce: (conn, frame, now, home) => this.#bounce(conn, frame, now, home),
        resync: (home, now) => this.#resyncEdge(home, now),
        boundTo: (home) => this.#boundTo(home),
        undelivered: (frame, failed, now) => this.#undelivered(frame, failed, now),
        homeOf: (conn) => this.#conns.get(conn)?.home,
        dropped: (count) => this.#onEvent?.({ type: "messages_dropped", count }),
      },
      home: {
        bind: (conn, message, now, remote) => this.#bindHere(conn, message, now, remote),
        receive: (conn, input, now) => this.#receiveRemote(conn, input, now),
        closed: (conn, cause, now, truncated) => this.#closedHere(conn, cause, now, truncated),
        command: (command, now) => this.#commandHere(command, now),
        edgeOf: (conn) => this.#remote.get(conn),
        dropEdge: (edge, now, truncated) => this.#dropEdge(edge, now, truncated),
        servesEdge: (edge) => this.#servesEdge(edge),
        seatConnection: (playerId) => this.#engine.seatConnection(playerId),
      },
    });
  }

  /** Number of open connections. */
  get size(): number {
    return this.#peers.size;
  }

  /** Connections of this node bound to a room homed on another node (cluster metrics). */
  boundRemote(): number {
    let n = 0;
    for (const conn of this.#conns.values()) if (conn.home !== this.#node) n++;
    return n;
  }

  /** Remote sessions seated in rooms homed here (cluster metrics). */
  remoteSessions(): number {
    return this.#remote.size;
  }

  /** The room directory this edge writes to and reads from. */
  get directory(): RoomDirectory {
    return this.#directory;
  }

  /**
   * Registers a connection accepted at `now` (ms) and returns its new connection id
   * (docs/spec/PROTOCOL.md §1.2).
   */
  connect(peer: Peer, info: PeerInfo, now: number = Date.now()): ConnId {
    const id = this.#options.newId();
    this.#peers.attach(id, peer);
    this.#conns.set(id, {
      ip: info.ip,
      tokenBinding: info.tokenBinding,
      home: this.#node,
      queue: undefined,
      queuedBytes: 0,
    });
    this.#engine.connect(id, { ip: info.ip, now });
    this.#onEvent?.({ type: "connected", connectionId: id, ip: info.ip });
    return id;
  }

  /**
   * Handles one inbound frame (docs/spec/SERVER.md §1.11, §8.4.2) received at `now` (ms): size check,
   * then — unless a request is pending, when it is queued — token binding, decode, session and
   * route. Frames from unknown or closing connections are ignored. Throws only on a bug.
   */
  receive(id: ConnId, frame: string | ArrayBuffer | Uint8Array, now: number): void {
    const conn = this.#conns.get(id);
    if (conn === undefined) return;
    const size = typeof frame === "string"
      ? textSize(frame, this.#options.maxMessageSize)
      : frame.byteLength;
    if (size > this.#options.maxMessageSize) {
      this.#tooLarge(id, size, now);
      return;
    }
    const budget = this.#forwardBudget;
    if (budget !== undefined && conn.home !== this.#node) {
      // Bound to a room homed elsewhere: what this client sends goes through Redis to that
      // home as fast as it is read, so its reads wait once it is past its budget.
      conn.forward ??= budget.connection();
      const hold = budget.charge(conn.forward, conn.ip, size, now);
      if (hold > 0) this.#peers.holdReads(id, hold);
    }
    if (conn.queue !== undefined) {
      this.#enqueue(id, conn, frame, size, now);
      return;
    }
    this.#process(id, conn, frame, now);
  }

  /**
   * Token binding → decode → session → route, for one frame that passed the size limit. `checked`:
   * a text frame a remote home bounced back, whose proof this edge checked and removed before it
   * forwarded it (docs/spec/PROTOCOL.md Appendix A): not checked again.
   */
  #process(
    id: ConnId,
    conn: Connection,
    frame: string | ArrayBuffer | Uint8Array,
    now: number,
    checked?: boolean,
  ): void {
    if (typeof frame !== "string") {
      const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
      this.#router.forward(conn.home, id, bytes, bytes, now);
      return;
    }
    const binding = conn.tokenBinding;
    if (binding && !checked) {
      const proof = verifyProof(frame, binding.secret, binding);
      if (!proof.ok) {
        this.#bindingViolation(id, proof.message, proof.code, proof.close, now);
        return;
      }
      frame = proof.text;
    }
    const decoded = decodeClientMessage(frame);
    if (!decoded.ok) {
      this.#onEvent?.({
        type: "invalid_message",
        connectionId: id,
        detail: decoded.detail,
      });
      this.#deliver(INVALID_FRAME, [id], now);
      return;
    }
    const message = decoded.message;
    // The common path first: relay input goes straight to the room's home.
    if (message.type === "GameData") {
      this.#router.forward(conn.home, id, message, frame, now);
      return;
    }
    switch (message.type) {
      case "Authenticate":
        // The session step: answered by the edge (docs/spec/SERVER.md §8.2), except a first one
        // sent while bound to another home, which that home answers (§8.4.2 item 2). A repeated
        // one gets nothing (docs/spec/PROTOCOL.md §7.1.2): no budget to read for it.
        if (checked && this.#engine.authenticateAnswered(id)) {
          // Only a first Authenticate goes to a home (§8.4.2 item 2): this one came back
          // unanswered, the home had let the connection go.
          this.#apply(this.#engine.answerBouncedAuthenticate(id, message.data), now);
        } else if (this.#engine.authenticateAnswered(id)) {
          this.#apply(this.#engine.handle(id, message, now), now);
        } else if (this.#options.authFailures) {
          this.#authenticate(id, conn, message, frame);
        } else {
          const answer = this.#engine.handle(id, message, now);
          this.#answerAuthenticate(id, conn, answer, message, frame, now);
        }
        return;
      case "JoinRoom":
      case "JoinAsSpectator":
      case "Reconnect":
        // A draining node creates no rooms (docs/spec/SERVER.md §8.7 step 3): a connection that
        // stopped being a member here since the last drain step goes now, before its request.
        if (this.#draining && this.#sendAway(id, conn, now)) return;
        // A connection that still owes `Authenticate` is answered here (AUTHENTICATION_REQUIRED,
        // close 1008), before any token, claim or other node is involved.
        if (this.#resolver && this.#engine.authenticated(id)) {
          this.#resolve(id, conn, message, frame, now);
        } else {
          this.#bind(id, conn, message, now);
        }
        return;
      default:
        this.#router.forward(conn.home, id, message, frame, now);
        if (
          conn.home !== this.#node &&
          (message.type === "LeaveRoom" || message.type === "LeaveSpectator")
        ) {
          this.#startBarrier(id, conn);
        } else if (this.#draining && this.#conns.get(id) === conn) {
          // Left its room here (docs/spec/SERVER.md §8.7 step 2: "as soon as a connection stops
          // being such a member"), after its RoomLeft.
          this.#sendAway(id, conn, now);
        }
    }
  }

  /**
   * A barrier (docs/spec/SERVER.md §8.4.2 item 4): the connection is pending until the remote home
   * answers with `BOUND` or `UNBIND`; without an answer in time it is closed with 1012.
   */
  #startBarrier(id: ConnId, conn: Connection): void {
    conn.queue ??= [];
    conn.barrier = setTimeout(() => {
      if (this.#conns.get(id) !== conn || conn.barrier === undefined) return;
      conn.barrier = undefined;
      this.close(id, 1012, "Cluster resync", Date.now());
    }, this.#options.forwardTimeoutMs ?? 5_000);
  }

  /** Ends a barrier: queued frames go on in order. */
  #endBarrier(id: ConnId, conn: Connection): void {
    if (conn.barrier === undefined) return;
    clearTimeout(conn.barrier);
    conn.barrier = undefined;
    this.#settle(id, conn);
  }

  /**
   * Sends a bind request to the home. An answer that is not immediate (a remote home) makes the
   * connection pending: later frames are queued until it arrives, then processed in order.
   */
  #bind(id: ConnId, conn: Connection, message: ClientMessage, now: number): void {
    const outcome = this.#router.bind(conn.home, id, message, now);
    if (!(outcome instanceof Promise)) return;
    conn.queue = [];
    const settle = () => this.#settle(id, conn);
    outcome.then(settle, (error) => {
      log.error("Bind request of {connection_id} failed: {error}", {
        connection_id: id,
        ...bugFields(error),
      });
      settle();
    });
  }

  /**
   * Cluster mode (docs/spec/SERVER.md §8.4.2–§8.4.3): the connection is pending while the resolver asks
   * Redis and, for a room homed elsewhere, while that home answers the `BIND`; a `MISS` resolves
   * once more with that home's entry treated as stale, a second one answers
   * `SERVICE_UNAVAILABLE`. A connection bound to a remote home sends the request there.
   */
  #resolve(id: ConnId, conn: Connection, message: ClientMessage, frame: string, now: number): void {
    conn.queue = [];
    // A JoinRoom is timed from here, its resolution and forwarding included
    // (docs/spec/SERVER.md §6.3 #61, #62): by the engine below when the room is here, by this
    // edge at its `BOUND` when it is elsewhere (the home does not time a remote session's join).
    const received = performance.now();
    const meta = (): Omit<RemoteMeta, "edge"> => ({
      ip: conn.ip,
      ...(this.#engine.sessionMeta(id) ?? { format: "json" as const }),
    });
    const toHome = async (home: NodeId): Promise<BindOutcome> => {
      let taken = false;
      /** Whether the answer made the connection a member there (it was not bound there). */
      let joined = false;
      /**
       * The connection is bound to `home` from its `BOUND` on: the router calls this as it
       * handles the answer, before anything that arrived with it (docs/spec/SERVER.md §8.4.2).
       */
      const take = () => {
        taken = true;
        if (this.#conns.get(id) !== conn) return;
        const previous = conn.home;
        conn.home = home;
        if (previous === home) return;
        joined = true;
        // A spectator that switched to a room on another home leaves its old room silently
        // (docs/spec/SERVER.md §8.4.2 `BOUND`): `CLOSED{switched}` to a remote home, a local detach here.
        if (previous !== this.#node) {
          this.#router.closed(previous, id, "switched", Date.now());
        } else if (this.#engine.binding(id) === "spectator") {
          const leave = { type: "LeaveSpectator" } as ClientMessage;
          this.#apply(
            withoutRecipient(this.#engine.handle(id, leave, Date.now()), id),
            Date.now(),
          );
        }
      };
      const outcome = await this.#router.bind(home, id, message, Date.now(), {
        frame,
        // A member's request to its own home says so: a home that let the connection go
        // meanwhile answers a `Reconnect` with MISS (docs/spec/SERVER.md §8.4.4).
        meta: conn.home === home ? { ...meta(), member: true } : meta(),
        taken: take,
      });
      if (outcome.status === "bound" && !taken) take();
      if (outcome.status !== "bound" || !joined) return outcome;
      if (message.type === "Reconnect" && this.#conns.get(id) === conn) {
        // Seated there by its Reconnect (a member's own request too, when that home had let
        // it go, docs/spec/SERVER.md §8.4.4): it resumed the seat and adopted its player id
        // (docs/spec/PROTOCOL.md §7.11.5), which later requests carry (§1.2). A member's
        // `Reconnect` refused "Already in a room" is answered `BOUND` too, while it was bound
        // there already.
        this.#engine.adoptPlayerId(id, message.data.player_id);
      } else if (message.type === "JoinRoom" && outcome.role === "player") {
        // Seated in a room of another home: a join (a remote request never creates a room,
        // docs/spec/SERVER.md §8.4.4), timed from its JoinRoom to its RoomJoined, delivered
        // before the BOUND (§6.3 #62).
        this.#onEvent?.({
          type: "handled",
          message: "JoinRoom",
          outcome: "joined",
          seconds: (performance.now() - received) / 1000,
        });
      }
      return outcome;
    };
    const drawn = new Set<BucketKind>();
    /** Sends a reply the resolver decided, with its events. */
    const answer = (reply: Extract<Resolution, { kind: "reply" }>) => {
      for (const event of reply.events ?? []) this.#onEvent?.(event);
      this.#deliver(encodeServerMessage(reply.message), [id], Date.now());
    };
    const run = async (): Promise<void> => {
      if (conn.home !== this.#node) {
        // The home answers for its member ("Already in a room", a spectator switching there),
        // once the request's first token is drawn here, as its engine would have drawn it;
        // a MISS (a room elsewhere) is resolved like any request, and so is the request of a
        // connection its home let go (UNBIND) while the token was drawn.
        const home = conn.home;
        const member = await this.#resolver!(id, message, conn.ip, now, {
          drawn,
          memberOf: home,
        });
        if (this.#conns.get(id) !== conn) return;
        if (member.kind === "reply") return answer(member);
        if (conn.home === home && (await toHome(home)).status !== "miss") return;
        if (this.#conns.get(id) !== conn) return;
      }
      let stale: NodeId | undefined;
      for (let attempt = 0; attempt < MISS_ATTEMPTS; attempt++) {
        const resolution = await this.#resolver!(id, message, conn.ip, now, { stale, drawn });
        // A draining node creates no rooms and keeps only members of rooms homed here
        // (docs/spec/SERVER.md §8.7 steps 2–3): one removed from its room while Redis answered
        // (an operator, its room closed) goes now, not at the next drain step.
        if (this.#draining) this.#sendAway(id, conn, Date.now());
        if (this.#conns.get(id) !== conn) {
          // The connection went away: a claim made for it is never used (its waiters go on).
          if (resolution.kind === "local") resolution.after?.();
          return;
        }
        switch (resolution.kind) {
          case "reply":
            return answer(resolution);
          case "local": {
            if (
              (resolution.prepare === undefined && this.#createsUnclaimed(id, message)) ||
              resolution.holds?.() === false
            ) {
              // What the resolution relied on changed before it could run (the connection left
              // its room, or the room here closed): the engine would create a room whose code
              // no claim holds, the client's or one it generates (docs/spec/SERVER.md §8.3:
              // codes unique, caps global), or answer for a room homed elsewhere as if it did
              // not exist (ROOM_NOT_FOUND, RECONNECTION_TOKEN_INVALID). Resolved again.
              resolution.after?.();
              continue;
            }
            const handle = () => {
              // The same, after a takeover's probe (docs/spec/SERVER.md §8.7).
              if (this.#draining) this.#sendAway(id, conn, Date.now());
              if (this.#conns.get(id) !== conn) {
                resolution.after?.();
                return;
              }
              resolution.prepare?.();
              try {
                this.#receiveHere(id, message, Date.now(), received);
              } finally {
                resolution.after?.();
              }
              this.#switchedHere(id, conn);
            };
            // A takeover of a seat on another edge may wait for that edge (docs/spec/SERVER.md §8.5.3).
            const router = this.#router;
            await (router.takeover ? router.takeover(message, handle) : handle());
            return;
          }
          case "remote": {
            const outcome = await toHome(resolution.home);
            if (outcome.status !== "miss") return;
            // The home may have claimed the code and not created the room yet (its claim's
            // answer and this BIND travel on different connections): ask again a little later,
            // and hold the entry stale only at the last attempt.
            if (attempt < MISS_ATTEMPTS - 2) {
              await new Promise((resolve) => setTimeout(resolve, 20 * 2 ** attempt));
            } else {
              stale = resolution.home;
            }
          }
        }
      }
      if (this.#conns.get(id) === conn) {
        this.#deliver(encodeServerMessage(unavailable(message)), [id], Date.now());
      }
    };
    run().catch((error) => {
      // Redis or a home that cannot answer is expected trouble, told by the link reports; anything
      // else is a bug, counted as internal (docs/spec/SERVER.md §7.4, §8.5.5). The client gets
      // SERVICE_UNAVAILABLE either way.
      const fields = { connection_id: id };
      if (logFault(log, error, "Cannot resolve the request of {connection_id}", fields)) {
        this.#onEvent?.({ type: "internal_error" });
      }
      if (this.#conns.get(id) === conn) {
        this.#deliver(encodeServerMessage(unavailable(message)), [id], Date.now());
      }
    }).finally(() => this.#settle(id, conn));
  }

  /**
   * Whether the local engine, given `message` from `id` now, would create a room whose code no
   * claim holds: a `JoinRoom` it would not refuse, for a code no room here has, or without a code
   * (it would generate one). In cluster mode only a claimed code may be created, so codes stay
   * unique and the caps global (docs/spec/SERVER.md §8.3, §8.6).
   */
  #createsUnclaimed(id: ConnId, message: ClientMessage): boolean {
    if (message.type !== "JoinRoom") return false;
    const data = message.data;
    if (data.create === "never") return false;
    if (this.#engine.joinRefused(id, data)) return false;
    if (data.room_code === undefined) return true;
    const scope = gameScope(data.game_name, this.#engine.sessionMeta(id)?.appId);
    return this.#engine.lookup(scope, data.room_code.toUpperCase()) === undefined;
  }

  /**
   * After a request answered here: a spectator of a room homed elsewhere that now watches a room
   * homed here (the only request a remote member's home lets go on to resolve, §8.4.2) is bound
   * here, and its old home lets it go silently (`CLOSED{switched}`, as a switch between two
   * remote homes does).
   */
  #switchedHere(id: ConnId, conn: Connection): void {
    const previous = conn.home;
    if (previous === this.#node || this.#engine.binding(id) === undefined) return;
    conn.home = this.#node;
    this.#router.closed(previous, id, "switched", Date.now());
  }

  /**
   * `Authenticate` with the global failed-attempt budget ({@linkcode EdgeOptions.authFailures}):
   * pending while the bucket is read (and the app's global bucket taken from) and, after a
   * failure, while the failure is taken, so the
   * next attempt from the address (on any instance) sees it. The attempts of one address on this
   * edge are checked one after another, so at most one per instance reads the budget before the
   * failure before it is taken.
   */
  #authenticate(id: ConnId, conn: Connection, message: ClientMessage, frame: string): void {
    const { buckets, limits, appTokens } = this.#options.authFailures!;
    conn.queue = [];
    const ip = conn.ip;
    const run = async () => {
      const verdict = await buckets.check("auth_failure", ip, Date.now());
      if (this.#conns.get(id) !== conn) return;
      // The app's token is global too, taken only where the engine would take it (after the
      // budget and secret checks), before the engine answers (docs/spec/SERVER.md §3.3).
      const perMinute = appTokens !== undefined && verdict.ok && message.type === "Authenticate"
        ? this.#engine.appRateLimit(message.data)
        : undefined;
      let appTake: BucketTake | undefined;
      if (perMinute !== undefined && message.type === "Authenticate") {
        appTake = await appTokens!(message.data.app_id, perMinute, Date.now());
        if (this.#conns.get(id) !== conn) return;
      }
      const answered = limits.withAuthVerdict(
        verdict,
        () => this.#engine.handle(id, message, Date.now()),
        appTake,
      );
      if (answered.charged) await buckets.take("auth_failure", ip, Date.now());
      if (this.#conns.get(id) !== conn) return;
      this.#answerAuthenticate(id, conn, answered.result, message, frame, Date.now());
    };
    // One check at a time per address on this edge: concurrent attempts would all read the
    // budget before any failure is taken (SECURITY.md "Cluster mode's Redis").
    Promise.resolve(this.#authChecks.run(ip, run)).catch((error) => {
      log.error("Cannot check the Authenticate budget of {connection_id}: {error}", {
        connection_id: id,
        error,
      });
    }).finally(() => {
      if (this.#conns.get(id) === conn) this.#settle(id, conn);
    });
  }

  /**
   * Delivers `answer`, the engine's effects of connection `id`'s first `Authenticate` (`message`,
   * decoded from the text `frame`): an answer or a refusal. One answered while the connection is
   * bound to a room homed on another node (auth disabled: `Authenticate` may come after joining,
   * docs/spec/PROTOCOL.md §7.1.2) goes there as `MSG` instead, and that home answers it: from
   * its answer on, the connection's game data comes in the negotiated format and presence events
   * as accepted, ordered with the room's output as in one process (docs/spec/SERVER.md §8.4.2
   * item 2). This node keeps the outcome for its own session (later requests' `BIND`s).
   */
  #answerAuthenticate(
    id: ConnId,
    conn: Connection,
    answer: Effect[],
    message: ClientMessage,
    frame: string,
    now: number,
  ): void {
    if (conn.home !== this.#node && this.#engine.authenticateAnswered(id)) {
      this.#router.forward(conn.home, id, message, frame, now);
      this.#apply(withoutRecipient(answer, id), now);
    } else this.#apply(answer, now);
  }

  /** Ends a pending request: the queued frames are processed in order. */
  #settle(id: ConnId, conn: Connection): void {
    const queue = conn.queue ?? [];
    conn.queue = undefined;
    conn.queuedBytes = 0;
    for (let i = 0; i < queue.length; i++) {
      if (this.#conns.get(id) !== conn) return;
      const pending = conn.queue as Connection["queue"];
      if (pending !== undefined) {
        // Another request became pending: the rest waits behind it, in order.
        pending.push(...queue.slice(i));
        return;
      }
      const frame = queue[i]!;
      if (frame instanceof Bounced) this.#process(id, conn, frame.text, Date.now(), true);
      else this.#process(id, conn, frame, Date.now());
    }
  }

  /** A frame remote home `home` returned: processed again here (docs/spec/SERVER.md §8.4.2). */
  #bounce(id: ConnId, frame: string | Uint8Array, now: number, home: NodeId): void {
    const conn = this.#conns.get(id);
    if (!conn) return;
    if (conn.home !== home) {
      // Sent while bound to `home`, returned after the connection went elsewhere (that room
      // closed, or it left, and it joined another since): the frame belongs to the membership
      // that ended. Handled as one process would have handled it then, from a connection in no
      // room, and the binding the connection has now stays as it is.
      const current = conn.home;
      conn.home = this.#node;
      try {
        this.#process(id, conn, frame, now, true);
      } finally {
        conn.home = current;
      }
      return;
    }
    conn.home = this.#node;
    if (conn.queue !== undefined) {
      // Ahead of the frames queued behind the pending request (the client sent those later),
      // behind the frames this queue already got back: bounces arrive in the order sent.
      const ahead = bouncedAhead.get(conn.queue) ?? 0;
      conn.queue.splice(ahead, 0, typeof frame === "string" ? new Bounced(frame) : frame);
      bouncedAhead.set(conn.queue, ahead + 1);
      this.#endBarrier(id, conn);
    } else {
      this.#process(id, conn, frame, now, true);
    }
  }

  /** Resync with `home`, edge side (docs/spec/SERVER.md §8.5.2 step 1): close with 1012. */
  #resyncEdge(home: NodeId, now: number): ConnId[] {
    const closed: ConnId[] = [];
    for (const [id, conn] of this.#conns) {
      if (conn.home !== home) continue;
      // The router tells the home; disconnect must not send a second CLOSED.
      conn.home = this.#node;
      closed.push(id);
    }
    for (const id of closed) this.close(id, 1012, "Cluster resync", now);
    return closed;
  }

  #boundTo(home: NodeId): boolean {
    for (const conn of this.#conns.values()) if (conn.home === home) return true;
    return false;
  }

  /**
   * `maxBufferedBytesTotal` (SECURITY.md "Buffered bytes in all"): while the bytes buffered for
   * all connections (outbound pending bytes, inbound frames queued behind a pending request) add
   * up to more than the budget, closes the connection with the most as a slow consumer (1013,
   * seat held as truncated, as for its own budget, docs/spec/SERVER.md §5.2), then the next. Each
   * connection has its own budget (`websocket.max_buffered_bytes`), so without this the memory
   * of every connection's budget added up with the number of connections.
   */
  #shedBuffered(now: number): void {
    const budget = this.#options.maxBufferedBytesTotal ?? 0;
    if (budget <= 0) return;
    const { total: outbound, peers } = this.#peers.pending();
    let total = outbound;
    for (const conn of this.#conns.values()) total += conn.queuedBytes;
    this.#bufferedBytes = total;
    if (total <= budget) return;
    // Over: who holds how much, largest first (the sum per connection only now).
    const byId = new Map<ConnId, number>();
    for (const { id, bytes } of peers) byId.set(id, bytes);
    for (const [id, conn] of this.#conns) {
      if (conn.queuedBytes > 0) byId.set(id, (byId.get(id) ?? 0) + conn.queuedBytes);
    }
    const largest = [...byId].sort((a, b) => b[1] - a[1]);
    for (const [id, bytes] of largest) {
      if (total <= budget) break;
      const conn = this.#conns.get(id);
      if (conn === undefined) continue;
      total -= bytes;
      const dropped = conn.queue?.length ?? 0;
      conn.queue = undefined;
      this.#onEvent?.({ type: "slow_consumer", connectionId: id, dropped });
      if (dropped > 0) this.#onEvent?.({ type: "messages_dropped", count: dropped });
      this.#peers.close(id, 1013, "Slow consumer");
      this.disconnect(id, now, TRUNCATED, SLOW_CONSUMER_END);
    }
  }

  #bufferedBytes = 0;

  /**
   * Bytes buffered for this node's connections at the last `tick` (outbound pending bytes and
   * inbound frames queued behind a pending request), before any connection was closed for
   * `maxBufferedBytesTotal`; 0 without that budget (`signal_fish_buffered_bytes`).
   */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /** Queues a frame behind a pending request; over the byte limit → slow consumer, 1013. */
  #enqueue(
    id: ConnId,
    conn: Connection,
    frame: string | ArrayBuffer | Uint8Array,
    size: number,
    now: number,
  ): void {
    conn.queue!.push(frame);
    conn.queuedBytes += size;
    if (conn.queuedBytes <= this.#maxQueuedBytes) return;
    const dropped = conn.queue!.length;
    conn.queue = undefined;
    this.#onEvent?.({ type: "slow_consumer", connectionId: id, dropped });
    this.#onEvent?.({ type: "messages_dropped", count: dropped });
    this.close(id, 1013, "Slow consumer", now);
  }

  /**
   * Refuses an inbound message the transport stopped reading at `size` bytes, past
   * `maxMessageSize` (docs/spec/SERVER.md §3.6): `Error` MESSAGE_TOO_LARGE, then close 1009.
   */
  refuseTooLarge(id: ConnId, size: number, now: number): void {
    if (this.#conns.has(id)) this.#tooLarge(id, size, now);
  }

  /**
   * Refuses an inbound message sent in more than `maxFragments` non-empty frames, which the
   * transport stopped reading (SECURITY.md "Fragments of one message"; README "Limits"): as
   * for a message past `maxMessageSize`, `Error` MESSAGE_TOO_LARGE (`Message too large (more
   * than <max> fragments)`), then close 1009. `size` is the payload read so far, bytes.
   */
  refuseTooFragmented(id: ConnId, size: number, maxFragments: number, now: number): void {
    if (!this.#conns.has(id)) return;
    this.#tooLarge(id, size, now, `Message too large (more than ${maxFragments} fragments)`);
  }

  /** Reports a transport error on a connection's socket (counted, docs/spec/SERVER.md §6.3 #27). */
  transportError(id: ConnId): void {
    this.#onEvent?.({ type: "websocket_error", connectionId: id });
  }

  /**
   * Handles a closed socket (docs/spec/SERVER.md §5.5): a player's seat is held or released, a spectator
   * detached. `loss` tells the home about messages that could not be written; `end` says how the
   * connection ended (close code, initiator, for 1006 the cause; the log and
   * `signal_fish_connection_closes_total`, docs/spec/SERVER.md §6.3 #97), by default 1006 from the
   * client with cause `unknown`; `idleTimeout` says the socket was closed by the idle timeout
   * (metrics). Idempotent: only the first call for a connection counts.
   */
  disconnect(
    id: ConnId,
    now: number,
    loss?: DisconnectLoss,
    end: ConnectionEnd = UNKNOWN_END,
    idleTimeout = false,
  ): void {
    const conn = this.#conns.get(id);
    if (!conn) return;
    this.#peers.detach(id);
    this.#conns.delete(id);
    conn.queue = undefined;
    if (conn.barrier !== undefined) clearTimeout(conn.barrier);
    if (conn.home !== this.#node) {
      this.#router.closed(conn.home, id, "closed", now, loss?.truncated === true);
    }
    // A request still in flight to another home: that home hears of the close after it.
    this.#router.closedPending?.(id, now);
    // Inside a batch the seat is held at once, and the teardown's messages wait for the batch's
    // end, routed then: a seat held meanwhile gets them in its replay after the batch's own.
    if (this.#depth > 0) this.#teardowns.push(this.#engine.disconnect(id, now, loss, false));
    else this.#apply(this.#engine.disconnect(id, now, loss), now);
    this.#onEvent?.({
      type: "disconnected",
      connectionId: id,
      ip: conn.ip,
      code: end.code,
      initiator: end.initiator,
      cause: end.cause,
      error: end.error,
      idleTimeout,
    });
  }

  /**
   * While draining (docs/spec/SERVER.md §8.7 step 2): closes connection `id` with `1001` unless it
   * is a member of a room homed here. Returns whether it was closed.
   */
  #sendAway(id: ConnId, conn: Connection, now: number): boolean {
    if (conn.home === this.#node && this.#engine.binding(id) !== undefined) return false;
    this.close(id, 1001, "Server shutting down", now);
    return true;
  }

  /** Closes a connection from the server side and tears it down at once. */
  close(id: ConnId, code: number, reason: string, now: number): void {
    if (!this.#peers.has(id)) return;
    if (code === 1011) this.#onEvent?.({ type: "internal_error", connectionId: id });
    this.#peers.close(id, code, reason);
    this.disconnect(id, now, undefined, serverClose(code));
  }

  /**
   * The one entry for timers, shutdown and operator actions (docs/spec/SERVER.md §4, §1.1): runs
   * `command` at `now` (ms) and carries out what it produces. Room commands answer with the
   * home's reply (at once in one process); the others answer `undefined`.
   */
  command(command: EdgeCommand, now: number): Awaitable<CommandReply> | undefined {
    switch (command.kind) {
      case "sweep":
        this.#forwardBudget?.sweep(now);
        this.apply(this.#engine.sweep(now), now);
        return undefined;
      case "tick":
        this.apply(this.#engine.tick(now), now);
        this.#shedBuffered(now);
        return undefined;
      case "expire_authentication":
        this.apply(this.#engine.expireAuthentication(now), now);
        return undefined;
      case "close_all":
        this.#closeAll(command.code, command.reason, now);
        return undefined;
      case "drain":
        this.#draining = true;
        this.apply(this.#engine.drainRooms(now, command.final), now);
        for (const [id, conn] of [...this.#conns]) this.#sendAway(id, conn, now);
        return undefined;
      case "maintenance":
        this.#engine.maintenance = command.enabled;
        return undefined;
      case "room": {
        const room = command.command;
        // A nested Awaitable flattens: a Promise resolves through the inner one.
        const reply = then(
          this.#directory.lookup(room.gameName, room.roomCode),
          (record) => record ? this.#router.command(record.home, room, now) : NOT_FOUND,
        ) as Awaitable<CommandReply>;
        // Redis not answering the lookup: the home cannot be reached either (a 503 at the
        // operator API, docs/spec/SERVER.md §8.5.5 "Redis unreachable"), not a rejection.
        return reply instanceof Promise ? reply.catch(() => UNREACHABLE) : reply;
      }
    }
  }

  /**
   * Carries out effects produced at `now` (ms) in order, each message serialised once for all
   * its recipients, then writes what they queued (docs/spec/SERVER.md §5.1, §5.3).
   */
  apply(effects: Effect[], now: number): void {
    this.#apply(effects, now);
  }

  /**
   * Closes every connection (graceful shutdown, docs/spec/SERVER.md §1.1). Every socket is closed and
   * detached before any seat is released, so nobody gets room traffic about players who are
   * leaving with them (docs/spec/PROTOCOL.md §7.12: "nobody is left to notify").
   */
  #closeAll(code: number, reason: string, now: number): void {
    const ids = this.#peers.ids();
    for (const id of ids) this.#peers.close(id, code, reason);
    for (const id of ids) this.#peers.detach(id);
    const end = serverClose(code);
    for (const id of ids) this.disconnect(id, now, undefined, end);
  }

  /** A refused token-binding proof (docs/spec/SERVER.md §3.9): `Error`, then close 1008 if `close`. */
  #bindingViolation(
    id: ConnId,
    message: string,
    code: ErrorCode,
    close: boolean,
    now: number,
  ): void {
    log.warn("Token binding violation on {connection_id}: {reason}", {
      connection_id: id,
      reason: message,
    });
    const frame = encodeServerMessage({ type: "Error", data: { message, error_code: code } });
    this.#deliver(frame, [id], now);
    if (close) this.close(id, 1008, "Token binding violation", now);
  }

  #tooLarge(id: ConnId, size: number, now: number, text?: string): void {
    const max = this.#options.maxMessageSize;
    this.#onEvent?.({ type: "message_too_large", connectionId: id, size, max });
    const message: ServerMessage = {
      type: "Error",
      data: {
        message: text ?? `Message too large (${size} bytes, max ${max} bytes)`,
        error_code: "MESSAGE_TOO_LARGE",
      },
    };
    const frame = encodeServerMessage(message);
    this.#deliver(frame, [id], now);
    this.close(id, 1009, "Message too large", now);
  }

  /** A directive from a home for one of this edge's connections. */
  #direct(directive: Directive, now: number): void {
    switch (directive.kind) {
      case "close":
        this.close(directive.conn, directive.code, directive.reason, now);
        break;
      case "bound": {
        // A barrier's answer: still a member (a request's answer is resolved by the router).
        const conn = this.#conns.get(directive.conn);
        if (conn) this.#endBarrier(directive.conn, conn);
        break;
      }
      case "unbind": {
        // The remote home let the connection go (RoomLeft, SpectatorLeft, room deleted).
        const conn = this.#conns.get(directive.conn);
        if (conn) {
          conn.home = this.#node;
          this.#endBarrier(directive.conn, conn);
        }
        break;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Home: this node's rooms, reached through the router.

  #bindHere(
    conn: ConnId,
    message: ClientMessage,
    now: number,
    remote?: RemoteMeta,
  ): BindOutcome {
    if (remote === undefined) {
      this.#receiveHere(conn, message, now);
      const role = this.#engine.binding(conn);
      return role ? { status: "bound", role } : UNBOUND;
    }
    // A connection this home let go, whose request crossed the news
    // (docs/spec/SERVER.md §8.4.4): a takeover here replaced it (its `CLOSE{4001}`; its
    // identity now belongs to the connection that took the seat), or its session ended and its
    // seat is held (a resync's `CLOSE{1012}`, or its own edge's `CLOSED`). Run, the request
    // would seat a second player with the held seat's id, here or, through a MISS, elsewhere.
    if (!this.#remote.has(conn)) {
      const identity = remote.playerId ?? conn;
      const carrier = this.#engine.identityCarrier(identity);
      if (carrier !== undefined && carrier !== conn) return UNBOUND;
      if (carrier === undefined && this.#engine.seatHeld(identity)) return UNBOUND;
    }
    // A remote request never creates a room here (docs/spec/SERVER.md §8.4.4): no room → MISS.
    // A member here asking for a room elsewhere: a player is answered here ("Already in a
    // room"); a spectator switching rooms is resolved by its edge (MISS), and so is a member's
    // `Reconnect` from a connection this home let go meanwhile (§8.4.4).
    if (
      !this.#hasRoomFor(message, remote) &&
      (!this.#remote.has(conn) ||
        (message.type === "JoinAsSpectator" && this.#engine.binding(conn) === "spectator"))
    ) {
      return MISS;
    }
    this.#engine.connectRemote(conn, remote);
    this.#remote.set(conn, remote.edge);
    // Its edge times a JoinRoom, forwarding included (docs/spec/SERVER.md §6.3 #62).
    this.#receiveHere(conn, message, now, null);
    const role = this.#engine.binding(conn);
    if (role) return { status: "bound", role };
    this.#dropRemote(conn, now);
    return UNBOUND;
  }

  /**
   * Input of a connection bound here. A barrier (`LeaveRoom`, `LeaveSpectator`) from a remote
   * session is answered with `BOUND{role}` while it is still a member, else `UNBIND` (sent by
   * the event itself when it left).
   */
  #receiveRemote(conn: ConnId, input: ClientMessage | Uint8Array, now: number): void {
    this.#receiveHere(conn, input, now);
    if (input instanceof Uint8Array) return;
    if (input.type !== "LeaveRoom" && input.type !== "LeaveSpectator") return;
    const edge = this.#remote.get(conn);
    if (edge === undefined) return;
    const role = this.#engine.binding(conn);
    if (role) {
      this.#router.direct(edge, { kind: "bound", conn, role }, now);
    } else {
      this.#router.direct(edge, { kind: "unbind", conn }, now);
      this.#dropRemote(conn, now);
    }
    this.#router.flush();
  }

  /**
   * Whether the room a bind request names is homed here, looked up in the namespace of the
   * requester's app (`appId` of its `BIND`, docs/spec/SERVER.md §3.7).
   */
  #hasRoomFor(message: ClientMessage, remote: RemoteMeta): boolean {
    const appId = remote.appId;
    switch (message.type) {
      case "JoinRoom":
        return message.data.room_code !== undefined &&
          this.#engine.lookup(
              gameScope(message.data.game_name, appId),
              message.data.room_code.toUpperCase(),
            ) !== undefined;
      case "JoinAsSpectator":
        return this.#engine.lookup(
          gameScope(message.data.game_name, appId),
          message.data.room_code.toUpperCase(),
        ) !== undefined;
      case "Reconnect":
        // A room id is homed here for the room's whole life and its token records stay here:
        // this engine answers a Reconnect routed here by its room id even once the room is
        // gone, as one process would (docs/spec/SERVER.md §8.4.3). One sent here as a member's
        // request names a room anywhere (§8.4.4): it is run only when that room is here.
        return remote.member !== true || this.#engine.hasRoomId(message.data.room_id);
      default:
        return false;
    }
  }

  /** Forgets a remote session that holds nothing (no effects: it is in no room). */
  #dropRemote(conn: ConnId, now: number): void {
    this.#remote.delete(conn);
    this.#apply(this.#engine.disconnect(conn, now), now);
  }

  /** Resync with `edge`, home side (docs/spec/SERVER.md §8.5.2 step 2): seats held, spectators detached. */
  #dropEdge(edge: NodeId, now: number, truncated?: (conn: ConnId) => boolean): ConnId[] {
    const dropped: ConnId[] = [];
    for (const [conn, of] of this.#remote) if (of === edge) dropped.push(conn);
    for (const conn of dropped) {
      this.#remote.delete(conn);
      const missing = truncated?.(conn) ?? true;
      this.#apply(
        this.#engine.disconnect(conn, now, missing ? { truncated: true } : undefined),
        now,
      );
    }
    return dropped;
  }

  #servesEdge(edge: NodeId): boolean {
    for (const of of this.#remote.values()) if (of === edge) return true;
    return false;
  }

  /**
   * Runs client input on this node's engine. A `JoinRoom` is timed from `received`
   * (`performance.now()` when its edge took it up, docs/spec/SERVER.md §6.3 #61/#62; default: now),
   * or not at all with `null` (a remote session's, which its edge times).
   */
  #receiveHere(
    conn: ConnId,
    input: ClientMessage | Uint8Array,
    now: number,
    received?: number | null,
  ): void {
    if (input instanceof Uint8Array) {
      this.#apply(this.#engine.handleBinary(conn, input, now), now);
      return;
    }
    const type = input.type;
    if (type !== "GameData") {
      // Joins are timed (but a remote session's, `received` null); nothing else is.
      if (type !== "JoinRoom" || received === null) {
        this.#apply(this.#engine.handle(conn, input, now), now);
        return;
      }
    } else if (++this.#relayCount % RELAY_TIMING_SAMPLE !== 0) {
      // Relay latency is sampled (one GameData in RELAY_TIMING_SAMPLE): two clock reads per
      // frame cost more than the rest of the metrics on the hot path.
      this.#apply(this.#engine.handle(conn, input, now), now);
      return;
    }
    const start = received ?? performance.now();
    const effects = this.#engine.handle(conn, input, now);
    this.#apply(effects, now);
    const seconds = (performance.now() - start) / 1000;
    const outcome = outcomeOf(effects);
    if (outcome) this.#onEvent?.({ type: "handled", message: type, outcome, seconds });
  }

  #closedHere(conn: ConnId, cause: ClosedCause, now: number, truncated = false): void {
    const remote = this.#remote.delete(conn);
    if (remote && cause === "abandoned") {
      // A seat resumed by Reconnect is held again, its old token valid (docs/spec/SERVER.md §8.4.4).
      const undone = this.#engine.abandonReconnect(conn, now);
      if (undone) {
        this.#apply(undone, now);
        return;
      }
    }
    if (remote && cause !== "closed") {
      // `switched` / `abandoned`: the binding is undone without a word to the connection.
      const role = this.#engine.binding(conn);
      if (role) {
        const leave = { type: role === "player" ? "LeaveRoom" : "LeaveSpectator" } as ClientMessage;
        this.#apply(withoutRecipient(this.#engine.handle(conn, leave, now), conn), now);
      }
    }
    this.#apply(this.#engine.disconnect(conn, now, truncated ? { truncated } : undefined), now);
  }

  /** Runs an operator command on a room homed here (docs/spec/EXTENSIONS.md E12). */
  #commandHere(command: RoomCommand, now: number): CommandReply {
    const { gameName, roomCode } = command;
    const summary = this.#engine.lookup(gameName, roomCode);
    if (!summary) return NOT_FOUND;
    switch (command.kind) {
      case "inspect":
        return { ok: true, summary };
      case "detail":
        return { ok: true, summary, detail: this.#engine.roomDetail(gameName, roomCode, now) };
      case "close":
        this.#apply(this.#engine.closeRoom(gameName, roomCode, now) ?? [], now);
        return { ok: true, summary };
      case "remove_player": {
        const effects = this.#engine.removePlayer(gameName, roomCode, command.playerId, now);
        if (typeof effects === "string") {
          return { ok: false, reason: effects === "room_not_found" ? "not_found" : effects };
        }
        this.#apply(effects, now);
        return { ok: true, summary };
      }
    }
  }

  /**
   * Hands one frame to its recipients through the router (docs/spec/SERVER.md §5.2). A peer whose socket
   * is no longer open is torn down and the frame goes to its held seat's replay buffer; a slow
   * consumer is closed with 1013, its seat held as truncated.
   */
  #deliver(frame: string | Uint8Array, to: readonly ConnId[], now: number): void {
    if (this.#remote.size === 0) {
      // Every recipient is on this node's edge (always in single-instance mode).
      const failed = this.#router.deliver(this.#node, frame, to);
      if (failed) this.#undelivered(frame, failed, now);
    } else {
      this.#deliverSplit(frame, to, now);
    }
    // Outside a batch of effects (a lone reply), write at once.
    if (this.#depth === 0) this.#router.flush();
  }

  /**
   * The one-pass output split of docs/spec/SERVER.md §8.4.4: local recipients → their sockets; remote
   * sessions → the `OUT` of their edge; unknown ids → as in single-instance mode.
   */
  #deliverSplit(frame: string | Uint8Array, to: readonly ConnId[], now: number): void {
    let local: ConnId[] | undefined;
    let byEdge: Map<NodeId, ConnId[]> | undefined;
    for (let i = 0; i < to.length; i++) {
      const id = to[i]!;
      const edge = this.#remote.get(id);
      if (edge === undefined) {
        (local ??= []).push(id);
        continue;
      }
      byEdge ??= new Map();
      const list = byEdge.get(edge);
      if (list) list.push(id);
      else byEdge.set(edge, [id]);
    }
    if (local) {
      const failed = this.#router.deliver(this.#node, frame, local);
      if (failed) this.#undelivered(frame, failed, now);
    }
    if (byEdge) { for (const [edge, ids] of byEdge) this.#router.deliver(edge, frame, ids); }
  }

  #undelivered(frame: string | Uint8Array, failed: DeliveryFailure[], now: number): void {
    let dropped = 0;
    for (const { id, failure } of failed) {
      switch (failure.reason) {
        case "gone":
          // Torn down earlier in this batch: replay it if that connection's seat is held.
          if (!this.#engine.replayUndelivered(id, frame)) dropped++;
          break;
        case "closed": {
          // The socket ended before the transport said so: how, it can tell from its state.
          const end = this.#peers.ended(id);
          if (typeof frame === "string") this.disconnect(id, now, { unsent: [frame] }, end);
          else this.disconnect(id, now, TRUNCATED, end);
          break;
        }
        case "overflow":
          dropped += failure.dropped;
          this.#onEvent?.({
            type: "slow_consumer",
            connectionId: id,
            dropped: failure.dropped,
          });
          // The seat is held from this decision, not from the socket's close event (§5.2).
          this.#peers.close(id, 1013, "Slow consumer");
          this.disconnect(id, now, TRUNCATED, SLOW_CONSUMER_END);
          break;
      }
    }
    if (dropped > 0) this.#onEvent?.({ type: "messages_dropped", count: dropped });
  }

  /** Carries out effects in order; each message is serialised once for all its recipients. */
  #apply(effects: Effect[], now: number): void {
    this.#depth++;
    try {
      this.#applyAll(effects, now);
      if (this.#teardowns.length > 0 && this.#depth === 1) this.#applyTeardowns(now);
    } finally {
      if (this.#depth === 1 && this.#unbindCheck.length > 0) this.#unbindRemotes(now);
      // Everything this event produced is queued: write it (batching, docs/spec/SERVER.md §5.3).
      if (--this.#depth === 0) this.#router.flush();
    }
  }

  /** Carries out the teardowns a batch caused, in order (each may cause more). */
  #applyTeardowns(now: number): void {
    for (let next = this.#teardowns.shift(); next; next = this.#teardowns.shift()) {
      this.#applyAll(this.#engine.route(next), now);
    }
  }

  /** `UNBIND` after the last frame of remote sessions this event left roomless (§8.4.4). */
  #unbindRemotes(now: number): void {
    const check = this.#unbindCheck;
    this.#unbindCheck = [];
    for (const conn of check) {
      const edge = this.#remote.get(conn);
      if (edge === undefined || this.#engine.binding(conn) !== undefined) continue;
      this.#router.direct(edge, { kind: "unbind", conn }, now);
      this.#dropRemote(conn, now);
    }
  }

  #applyAll(effects: Effect[], now: number): void {
    for (const effect of effects) {
      switch (effect.kind) {
        case "send": {
          const frame = effect.frame ?? encodeServerMessage(effect.message);
          this.#deliver(frame, effect.to, now);
          const type = effect.message.type;
          if (type === "GameData") break; // relayed data carries no error code
          if ((type === "RoomLeft" || type === "SpectatorLeft") && this.#remote.size > 0) {
            for (const id of effect.to) if (this.#remote.has(id)) this.#unbindCheck.push(id);
          }
          const errorCode = (effect.message as { data?: { error_code?: ErrorCode } }).data
            ?.error_code;
          if (errorCode) this.#onEvent?.({ type: "error_reply", errorCode });
          break;
        }
        case "frame":
          this.#deliver(effect.frame, effect.to, now);
          break;
        case "close": {
          const edge = this.#remote.get(effect.to);
          if (edge !== undefined) this.#remote.delete(effect.to);
          this.#router.direct(edge ?? this.#node, {
            kind: "close",
            conn: effect.to,
            code: effect.code,
            reason: effect.reason,
          }, now);
          break;
        }
        case "directory":
          this.#writeDirectory(effect);
          break;
        case "event":
          this.#onEvent?.(effect.event);
          break;
      }
    }
  }

  /**
   * Applies a `directory` effect. A write that fails for Redis (unreachable, too slow, refusing:
   * `isExpectedFault`, `logFault`) is logged at debug: the link and refusal reports tell the
   * operator, the next refresh repairs a refresh and the cluster store sends a failed release
   * again once Redis answers. Any other failure is a bug: an ERROR line with its stack and
   * `errors_internal` +1 (docs/spec/SERVER.md §7.4, §8.5.5).
   */
  #writeDirectory(effect: Extract<Effect, { kind: "directory" }>): void {
    const written = effect.op === "refresh"
      ? this.#directory.refresh({ ...effect.entry, home: this.#node })
      : this.#directory.release(effect.gameName, effect.roomCode, effect.roomId);
    if (written instanceof Promise) {
      written.catch((error) => {
        if (logFault(log, error, "Cannot write the room directory ({op})", { op: effect.op })) {
          this.#onEvent?.({ type: "internal_error" });
        }
      });
    }
  }
}

const UNBOUND: BindOutcome = { status: "unbound" };
/** Resolutions of one request: MISSes retried after 20, 40, 80 ms, the last one stale. */
const MISS_ATTEMPTS = 5;
const MISS: BindOutcome = { status: "miss" };

/** `effects` with `conn` removed from every frame's recipients (an undo nobody is told of). */
function withoutRecipient(effects: Effect[], conn: ConnId): Effect[] {
  const out: Effect[] = [];
  for (const effect of effects) {
    if (effect.kind === "send" || effect.kind === "frame") {
      const to = effect.to.filter((id) => id !== conn);
      if (to.length > 0) out.push({ ...effect, to });
    } else if (effect.kind !== "close" || effect.to !== conn) {
      out.push(effect);
    }
  }
  return out;
}

/** The failure a request gets when no home answers (docs/spec/SERVER.md §8.4.2 "Timeout"). */
export function unavailable(message: ClientMessage): ServerMessage {
  const data = {
    reason: "Service temporarily unavailable",
    error_code: "SERVICE_UNAVAILABLE" as const,
  };
  switch (message.type) {
    case "JoinAsSpectator":
      return { type: "SpectatorJoinFailed", data };
    case "Reconnect":
      return { type: "ReconnectionFailed", data };
    default:
      return { type: "RoomJoinFailed", data };
  }
}

/**
 * A text frame a remote home bounced back, queued behind a pending request: its token-binding proof
 * was checked and removed before it was forwarded (docs/spec/PROTOCOL.md Appendix A), so it skips
 * that step when the queue is processed.
 */
class Bounced {
  constructor(readonly text: string) {}
}

/**
 * How many frames at the head of a pending request's queue a remote home bounced back
 * (`Edge.#bounce`), by queue: the next bounce goes behind them. Nothing is kept per connection
 * for this rare path.
 */
const bouncedAhead = new WeakMap<unknown[], number>();

const NOT_FOUND: CommandReply = { ok: false, reason: "not_found" };
const UNREACHABLE: CommandReply = { ok: false, reason: "unreachable" };

/**
 * UTF-8 size of a text frame, computed exactly only when it could exceed `limit` (a UTF-16 code
 * unit is at most 3 UTF-8 bytes).
 */
function textSize(text: string, limit: number): number {
  return text.length * 3 <= limit ? text.length : utf8Length(text);
}

/** What a JoinRoom or GameData achieved, read from its effects (for the latency histograms). */
function outcomeOf(effects: Effect[]): "created" | "joined" | "relayed" | undefined {
  for (const effect of effects) {
    if (effect.kind !== "event") continue;
    switch (effect.event.type) {
      case "room_created":
        return "created";
      case "room_joined":
        return "joined";
      case "game_data":
        return "relayed";
    }
  }
  return undefined;
}
