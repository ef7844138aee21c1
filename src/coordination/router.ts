/**
 * The two-way router between edges and homes (docs/spec/SERVER.md §8.2, §8.4): the only path client
 * input takes from the node that holds a socket (its edge) to the node that holds the room (its
 * home), and the only path room output takes back. In single-instance mode the in-memory
 * {@linkcode LocalRouter} (`memory.ts`) joins the one node's edge and home, so every test runs
 * the cluster's shape; a Redis router carries the same calls as envelopes (docs/spec/SERVER.md §8.4.1).
 *
 * Crossings, with the envelope each becomes in a cluster:
 *
 * | method | direction | envelope |
 * |---|---|---|
 * | {@linkcode Router.bind} | edge → home | `BIND` |
 * | {@linkcode Router.forward} | edge → home | `MSG` |
 * | {@linkcode Router.closed} | edge → home | `CLOSED` |
 * | {@linkcode Router.deliver}, {@linkcode Router.flush} | home → edge | `OUT` frame items |
 * | {@linkcode Router.direct} | home → edge | `OUT` binding items (`BOUND`, `UNBIND`, `CLOSE`) |
 * | {@linkcode Router.command} | operator → home | `CONTROL` / `REPLY` |
 *
 * @module
 */
import type { ConnId, RoomDetail, RoomSummary } from "../engine/effects.ts";
import type { ClientMessage } from "../protocol/messages.ts";
import type { Awaitable } from "./awaitable.ts";
import type { NodeId } from "./directory.ts";

export type { NodeId } from "./directory.ts";

/**
 * Why a recipient did not take a frame (docs/spec/SERVER.md §5.2): not attached to the edge (`gone`), its
 * socket no longer open (`closed`), or a slow consumer whose buffer would overflow (`overflow`,
 * `dropped` = messages discarded, this one included).
 */
export type DeliveryFailure = {
  id: ConnId;
  failure: { reason: "gone" } | { reason: "closed" } | { reason: "overflow"; dropped: number };
};

/** What a bind request leaves: the connection is a member (`bound`) or not (`unbound`). */
export type BindOutcome =
  | { status: "bound"; role: "player" | "spectator" }
  | { status: "unbound" }
  /** The room is not on that home (docs/spec/SERVER.md §8.4.4): the edge resolves once more. */
  | { status: "miss" };

/** A binding change the home tells an edge about (docs/spec/SERVER.md §8.4.1 `OUT` binding items). */
export type Directive =
  | { kind: "bound"; conn: ConnId; role: "player" | "spectator" }
  | { kind: "unbind"; conn: ConnId }
  /** Close the connection with `code` (`4001` takeover, `1008` auth, `1012` resync…). */
  | { kind: "close"; conn: ConnId; code: number; reason: string };

/** Why an edge reports a connection gone (docs/spec/SERVER.md §8.4.4 `CLOSED`). */
export type ClosedCause = "closed" | "switched" | "abandoned";

/**
 * An operator request for a room's home (docs/spec/EXTENSIONS.md E12); `roomCode` is upper-case.
 * `inspect`: the lookup summary; `detail`: members, spectators, authority, age, rates;
 * `close`: delete the room (reason `closed`); `remove_player`: take one seat away.
 */
export type RoomCommand =
  | { kind: "inspect"; gameName: string; roomCode: string }
  | { kind: "detail"; gameName: string; roomCode: string }
  | { kind: "close"; gameName: string; roomCode: string }
  | { kind: "remove_player"; gameName: string; roomCode: string; playerId: string };

/**
 * The home's answer to a {@linkcode RoomCommand}: the room's summary (before a `close` or
 * `remove_player`, as it was), with `detail` for `detail`. `player_not_found`: the room has no
 * such seat; `unreachable`: the command did not reach a home (none here, or the directory could
 * not be read), so it was not carried out; `no_answer` (cluster): the command went to the home
 * and no answer came within `cluster.forward_timeout_ms` (or the link to the home was reset
 * meanwhile), so it may still be carried out — the operator API's `504` (docs/spec/EXTENSIONS.md E12).
 */
export type CommandReply =
  | { ok: true; summary: RoomSummary; detail?: RoomDetail }
  | { ok: false; reason: "not_found" | "player_not_found" | "unreachable" | "no_answer" };

/** What a node's edge offers the router (frames and directives from homes). */
export interface EdgeEndpoint {
  /** Hands `frame` to each listed local connection; returns those that did not take it. */
  deliver(frame: string | Uint8Array, to: readonly ConnId[]): DeliveryFailure[] | undefined;
  /** Applies a binding change or closes a connection. */
  direct(directive: Directive, now: number): void;
  /** Writes what `deliver` queued (write batching, docs/spec/SERVER.md §5.3). */
  flush(): void;
  /**
   * A frame remote home `home` returned (`BOUNCE`, docs/spec/SERVER.md §8.4.2): the connection is no
   * longer bound there; the frame is processed again as if it had just arrived — as from a
   * connection in no room when the connection has been bound elsewhere since. Cluster only.
   */
  bounce?(conn: ConnId, frame: string | Uint8Array, now: number, home: NodeId): void;
  /**
   * Resync with `home` (docs/spec/SERVER.md §8.5.2 step 1): closes every connection bound to `home` or
   * pending there with 1012 and returns them (the router tells `home`). Cluster only.
   */
  resync?(home: NodeId, now: number): ConnId[];
  /** Whether any connection is bound to `home` or pending there (docs/spec/SERVER.md §8.2 "Peers"). */
  boundTo?(home: NodeId): boolean;
  /**
   * The connections that did not take a frame from a remote home (`deliver`'s failures): a full
   * outbound buffer is a slow consumer (1013, docs/spec/SERVER.md §5.2), a closed socket is torn
   * down; either way the home learns it through `CLOSED` and holds the seat. Cluster only.
   */
  undelivered?(frame: string | Uint8Array, failed: DeliveryFailure[], now: number): void;
  /**
   * The node homing the room `conn` is bound to (this node when unbound), or `undefined` for an
   * unknown connection. Frames from a home reach only its connections (docs/spec/SERVER.md §8.4.2).
   * Cluster only.
   */
  homeOf?(conn: ConnId): NodeId | undefined;
  /** `count` frames were dropped for connections that were not the home's any more (metrics). */
  dropped?(count: number): void;
}

/** What a `BIND` tells the home once about the connection (docs/spec/SERVER.md §8.2 "Remote session"). */
export interface RemoteMeta {
  /** The connection's edge node. */
  edge: NodeId;
  ip: string;
  appId?: string;
  format: "json" | "message_pack";
  /** Opted in to presence events at `Authenticate` (docs/spec/EXTENSIONS.md E10). */
  presence?: boolean;
  /** The player id the connection adopted by `Reconnect`, when not its connection id. */
  playerId?: string;
  /**
   * The request was sent to the home its edge holds the connection bound to, as a member's
   * (docs/spec/SERVER.md §8.4.2); see §8.4.4 for a `Reconnect` whose sender is no member there.
   */
  member?: boolean;
}

/** What a node's home offers the router (client input for its rooms, operator commands). */
export interface HomeEndpoint {
  /**
   * A bind request: `JoinRoom`, `JoinAsSpectator` or `Reconnect` from connection `conn`;
   * `remote` when the connection's edge is another node (a remote session is created for it).
   */
  bind(conn: ConnId, message: ClientMessage, now: number, remote?: RemoteMeta): BindOutcome;
  /** Any other client input of a connection bound here (text message or binary payload). */
  receive(conn: ConnId, input: ClientMessage | Uint8Array, now: number): void;
  /**
   * Connection `conn`, bound here, is gone (`cause`, docs/spec/SERVER.md §8.4.4). `truncated`: frames sent
   * to it may not have been delivered (a held seat's replay is marked, §8.5.3).
   */
  closed(conn: ConnId, cause: ClosedCause, now: number, truncated?: boolean): void;
  /** Runs an operator command on one of its rooms. */
  command(command: RoomCommand, now: number): CommandReply;
  /** The edge of remote session `conn`, or undefined when this home holds none. Cluster only. */
  edgeOf?(conn: ConnId): NodeId | undefined;
  /**
   * Resync with `edge` (docs/spec/SERVER.md §8.5.2 step 2): ends every remote session of `edge` as an
   * unexpected disconnect and returns them (the router sends `CLOSE{1012}`); a player's held seat
   * is marked truncated when `truncated(conn)` says frames sent to it may be missing (§8.5.3;
   * absent = always). Cluster only.
   */
  dropEdge?(edge: NodeId, now: number, truncated?: (conn: ConnId) => boolean): ConnId[];
  /** Whether this home holds a remote session of `edge`. Cluster only. */
  servesEdge?(edge: NodeId): boolean;
  /**
   * The connection playing `playerId`'s seat here, which a `Reconnect` would take over, or
   * `undefined` (seat held, or no such player). Cluster only.
   */
  seatConnection?(playerId: string): ConnId | undefined;
}

/**
 * Carries client input from edges to homes and room output back. Methods on the common path
 * (`forward`, `deliver`, `flush`) are synchronous in every implementation: a cluster publishes
 * without waiting (docs/spec/SERVER.md §8.4.2 item 5). `bind` and `command` may answer later.
 */
export interface Router {
  /** Registers the edge and home of node `node` (a process registers itself once). */
  attach(node: NodeId, endpoints: { edge: EdgeEndpoint; home: HomeEndpoint }): void;
  /** Forgets node `node` (shutdown). */
  detach(node: NodeId): void;
  /**
   * Runs `handle` — this node's own handling of `message`, a request of one of its connections
   * for a room homed here — once a takeover it may make can be judged
   * (docs/spec/SERVER.md §8.5.3): at once (`undefined`), or after the edge of the connection it would replace has
   * answered a probe or not (a Promise settled after `handle` ran). Cluster only; without it,
   * `handle` runs at once.
   */
  takeover?(message: ClientMessage, handle: () => void): Promise<void> | undefined;
  /**
   * Sends a bind request to `home`. The answer is the connection's new binding: at once in
   * memory, with a Promise across nodes (the edge then holds the connection's later frames,
   * docs/spec/SERVER.md §8.4.2). Guarantee: exactly one answer; a lost or late answer resolves as
   * `unbound` with the failure already sent to the client (`SERVICE_UNAVAILABLE`).
   * `request.taken`, across nodes, is called when the home's `BOUND` is handled, before the
   * Promise settles and before anything else that arrived with it is delivered: the edge takes
   * the binding then, so nothing of the connection's previous room reaches it after its answer.
   */
  bind(
    home: NodeId,
    conn: ConnId,
    message: ClientMessage,
    now: number,
    request?: { frame: string; meta: Omit<RemoteMeta, "edge">; taken?: () => void },
  ): Awaitable<BindOutcome>;
  /**
   * Sends one client input of a connection bound to `home`: a decoded text message (`frame` is
   * the text as received, for the wire) or a binary payload. Guarantee: in order per
   * connection; at most once (a lost envelope is detected by sequence numbers and resyncs the
   * pair, docs/spec/SERVER.md §8.5).
   */
  forward(
    home: NodeId,
    conn: ConnId,
    input: ClientMessage | Uint8Array,
    frame: string | Uint8Array,
    now: number,
  ): void;
  /**
   * Tells `home` that connection `conn` is gone. `lost`: frames handed to it may not have
   * arrived (it went silent, docs/spec/SERVER.md §8.5.3), so nothing the home sent counts as
   * delivered. Guarantee: at most once; a lost one is covered by the pair's resync
   * (docs/spec/SERVER.md §8.5.2).
   */
  closed(home: NodeId, conn: ConnId, cause: ClosedCause, now: number, lost?: boolean): void;
  /**
   * Connection `conn` of this node's edge is gone while a bind request of it is in flight to
   * another home (after {@linkcode Router.closed} for its current home, if remote): the request
   * resolves `unbound` and that home is told `CLOSED{closed}` after it, so whatever the request
   * did there ends as if the connection had closed once bound (docs/spec/SERVER.md §8.4.2).
   * Cluster only.
   */
  closedPending?(conn: ConnId, now: number): void;
  /**
   * Hands one serialised frame to the listed connections of edge `edge`, in order. Returns the
   * recipients that did not take it when the edge is this node (so the home can hold their seats
   * at once); across nodes returns `undefined`, and failures come back as `closed` with the
   * edge's delivery progress (docs/spec/SERVER.md §8.5.3). Guarantee: per-connection order; at most once.
   */
  deliver(
    edge: NodeId,
    frame: string | Uint8Array,
    to: readonly ConnId[],
  ): DeliveryFailure[] | undefined;
  /**
   * Sends a binding change or close to edge `edge`, ordered with the frames `deliver` sent there
   * before it. Guarantee: at most once, in order with frames.
   */
  direct(edge: NodeId, directive: Directive, now: number): void;
  /**
   * Ends one home event: everything `deliver` and `direct` produced is written (memory) or
   * published, one envelope per edge (cluster, docs/spec/SERVER.md §8.4.4 "Output").
   */
  flush(): void;
  /**
   * Runs an operator command on `home`. Guarantee: exactly one reply; `unreachable` when no
   * home can take it, `no_answer` when it was sent to the home and no reply came within
   * `cluster.forward_timeout_ms` (the outcome is then unknown).
   */
  command(home: NodeId, command: RoomCommand, now: number): Awaitable<CommandReply>;
}
