/**
 * The consistency property of issue 15 items 2 and 4 (docs/spec/SERVER.md §8.4.2, §8.5.3, §8.6):
 * seeded random clients on three nodes join, leave, watch, send game data, drop their
 * connections, come back through any node and take over seats with `Reconnect` — without waiting
 * for answers, so requests cross answers, closes and takeovers in flight. Once the cluster is
 * quiet, every home's live seats must be exactly what the live clients were told: a client seated
 * by its last `RoomJoined`/`Reconnected` (and no `RoomLeft` or close since) holds a live seat under
 * that player id at the room's home, on that very connection (a spectator by its
 * `SpectatorJoined` and no `SpectatorLeft`, likewise), and no live seat or spectator belongs to a
 * connection that is gone or believes itself elsewhere (a ghost). On the twins, now and then one
 * envelope between two nodes is lost, so that pair resyncs (`1012`) in the middle of it all. The differential compares with
 * one process step by step, each step answered before the next; this is about what only overlap
 * produces. Run on the twins by `consistency_test.ts`, on Redis by
 * `tests/cluster_consistency_test.ts`.
 *
 * @module
 */
import { deepEqual } from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { prng } from "../engine/testing.ts";
import type { MemoryNetwork } from "./memory_bus.ts";
import type { MemoryStore } from "./memory_store.ts";
import { arrivalsSoFar, reconnectFor, settle, type TestClient, type TestNode } from "./testing.ts";

/** The room codes the clients use. */
const CODES = ["AAAAAA", "BBBBBB", "CCCCCC", "DDDDDD"];

/** A player's seat or a spectator's place as a client learnt it, or as a home holds it. */
export interface Seat {
  roomCode: string;
  /** The room's id: after the directory lost entries two rooms may share a code (§8.3). */
  roomId: string;
  role: "player" | "spectator";
  /** The player or spectator id. */
  id: string;
  conn: string;
}

/** Where `client` believes it is, from its messages; undefined when nowhere or closed. */
export function seatOf(client: TestClient): Seat | undefined {
  if (client.closed !== undefined) return undefined;
  let seat: Seat | undefined;
  for (const message of client.messages) {
    const data = message.data as
      | { room_code?: string; room_id?: string; player_id?: string; spectator_id?: string }
      | undefined;
    const player = message.type === "RoomJoined" || message.type === "Reconnected";
    if (player || message.type === "SpectatorJoined") {
      seat = {
        roomCode: data!.room_code!,
        roomId: data!.room_id!,
        role: player ? "player" : "spectator",
        id: (player ? data!.player_id : data!.spectator_id)!,
        conn: client.id,
      };
    } else if (message.type === "RoomLeft" || message.type === "SpectatorLeft") {
      seat = undefined;
    }
  }
  return seat;
}

/** Every live (not held) seat and spectator of the rooms homed on `node`, with its connection. */
export function liveSeats(node: TestNode): Seat[] {
  const seats: Seat[] = [];
  // By code: the listing leaves out rooms without players (docs/spec/EXTENSIONS.md E6).
  for (const roomCode of CODES) {
    const detail = node.engine.roomDetail("orbit", roomCode, Date.now());
    const roomId = detail?.room_id ?? "";
    for (const member of detail?.members ?? []) {
      if (member.held) continue;
      const id = member.player_id;
      const conn = node.engine.seatConnection(id) ?? "(none)";
      seats.push({ roomCode, roomId, role: "player", id, conn });
    }
    for (const spectator of detail?.spectator_list ?? []) {
      const id = spectator.id;
      const conn = node.engine.spectatorConnection(id) ?? "(none)";
      seats.push({ roomCode, roomId, role: "spectator", id, conn });
    }
  }
  return seats;
}

/** A node's counts of what crosses to other nodes, and what its peers' seats say they should be. */
export interface Crossings {
  node: string;
  remoteSessions: number;
  boundRemote: number;
  seatsOfOtherEdges: number;
  seatsHomedElsewhere: number;
}

const order = (a: Seat, b: Seat) =>
  `${a.roomCode}/${a.roomId}/${a.id}/${a.conn}`.localeCompare(
    `${b.roomCode}/${b.roomId}/${b.id}/${b.conn}`,
  );

/**
 * What one run found: the clients' seats, the homes' live seats (sorted), the crossings, and
 * what the final round of game data reached.
 */
export interface ConsistencyOutcome {
  told: Seat[];
  held: Seat[];
  crossings: Crossings[];
  /** Per client: whose check frame it should have received and whose it did (sorted ids). */
  relay: { client: string; expected: string[]; got: string[] }[];
  /**
   * What the run went through, over every connection it opened: close codes the server sent
   * (`1012` resyncs, `4001` takeovers; not the drops the run made itself), the `error_code`s of
   * failed joins and reconnects, the game data frames received, and what the nodes counted
   * (pair resyncs, bind timeouts, binds expired at the home and undone), each with its count.
   */
  seen: Record<string, number>;
  /**
   * Game data out of order on a connection (docs/spec/PROTOCOL.md §1.5): for each receiving and
   * each sending connection, the steps of the frames received (live, or replayed in
   * `Reconnected.missed_events`) must rise strictly — a repeat is a duplicate, a fall a
   * reordering. Empty when none.
   */
  disorder: string[];
  /**
   * Frames a seat missed without being told (docs/spec/SERVER.md §8.5.3): between two frames a
   * player seat (or a spectator's place, on its one connection) received from one connection, a
   * frame that connection sent and the seat never received, live on any of its connections or
   * replayed — unless a `Reconnected` of that seat
   * said `replay_truncated: true`, or a resync (`1012`) closed the seat's or the sender's
   * connection; and a frame a seat received twice. Empty when none.
   */
  gaps: string[];
  /**
   * With `targeted`: game data sent `to_player` that reached a connection which was not, at that
   * point of its messages, that player's seat (another player, a spectator, a connection out of
   * the room), live or replayed (docs/spec/PROTOCOL.md §7.6). Empty when none.
   */
  misdelivered: string[];
  /**
   * Frames lost to slow consumers' overflows that a client was not told of
   * (docs/spec/SERVER.md §5.2): a connection that lost frames must be closed with `1013` before
   * anything more is sent to it, and the first `Reconnected` of the seat it held then (on any
   * connection, after the loss) must say `replay_truncated: true`, unless the seat had been taken
   * over since the connection got it. Empty when none.
   */
  untold: string[];
  /** Every connection the run opened, in order (to read a failure's story). */
  opened: TestClient[];
  /**
   * With `roomState`: the seated clients whose view of their room differs from their home's,
   * each as `{ client, view, home }`. Empty when none (or without `roomState`).
   */
  views: { client: string; view: RoomView; home: RoomView }[];
  /**
   * With `gameStarts`: each `GameStarting` (or its absence after `LobbyStateChanged{finalized}`)
   * that breaks the rules of {@linkcode ConsistencyOptions.gameStarts}. Empty when none.
   */
  starts: string[];
  /**
   * With `joinModes`: each join answered against its `create` (a create-only join into a room
   * with other players, a join-only one into a room new to the run, an answer to no join). Empty
   * when none.
   */
  joins: string[];
  /**
   * With `drainAt`: rooms the draining node homed at the end of a step that it did not home when
   * its drain started (a draining node creates no rooms, docs/spec/SERVER.md §8.7 step 3), each
   * as `<room id> at step <n>`. Empty when none.
   */
  drainCreated: string[];
}

/** A room's players as one member sees it, or as its home holds it (`roomState`). */
export interface RoomView {
  roomId: string;
  /** Player ids, sorted. */
  players: string[];
  /** For a player's view only: */
  authority?: string | null;
  ready?: string[];
  lobby?: string;
  /**
   * In a client's view only: the players it was told are disconnected and held
   * (docs/spec/EXTENSIONS.md E10), sorted; each must be a held seat at the home. Absent after a
   * truncated replay (the client was told it may have missed some of those events).
   */
  dropped?: string[];
}

/**
 * A client's view of its room while {@linkcode viewOf} reads its messages: players in the order
 * it learnt them, whether it is a spectator, and (for players and spectators alike) the authority,
 * ready set and lobby state it was told.
 */
export interface VisitedView {
  roomId: string;
  players: string[];
  spectator: boolean;
  authority?: string | null;
  ready?: string[];
  lobby?: string;
}

/**
 * What `client` believes of the room it is seated in, from its messages (the TypeScript client's
 * rules, src/client/client.ts); undefined when it is in none. A spectator's view holds the
 * players only. `visit`, if given, sees each message with the view as it stood before it.
 */
export function viewOf(
  client: TestClient,
  visit?: (message: TestClient["messages"][number], view: VisitedView | undefined) => void,
): RoomView | undefined {
  type Player = { id: string; is_authority?: boolean };
  type Data = {
    room_id?: string;
    current_players?: Player[];
    ready_players?: string[];
    lobby_state?: string;
    player?: Player;
    player_id?: string;
    authority_player?: string | null;
  };
  let view: VisitedView | undefined;
  /** Presence (docs/spec/EXTENSIONS.md E10), as the client keeps it across snapshots. */
  let dropped = new Set<string>();
  /**
   * Set by a `Reconnected` with `replay_truncated: true` (docs/spec/PROTOCOL.md §7.11): the
   * client was told events may be missing, so until its next join what it knows of who is
   * disconnected is not compared.
   */
  let unsure = false;
  const presence = (type: string, data: Data) => {
    if (type === "PlayerDisconnected") dropped.add(data.player_id!);
    if (type === "PlayerReconnected" || type === "PlayerLeft") dropped.delete(data.player_id!);
  };
  for (const message of client.messages) {
    visit?.(message, view);
    const data = (message.data ?? {}) as Data;
    presence(message.type, data);
    switch (message.type) {
      case "RoomJoined":
      case "Reconnected":
      case "SpectatorJoined": {
        const players = data.current_players ?? [];
        if (message.type === "Reconnected") {
          // Missed events first, then the snapshot keeps those still present.
          const missed = (message.data?.missed_events ?? []) as { type: string; data?: Data }[];
          for (const event of missed) presence(event.type, event.data ?? {});
          const present = new Set(players.map((p) => p.id));
          dropped = new Set([...dropped].filter((id) => present.has(id)));
          if ((message.data as { replay_truncated?: boolean }).replay_truncated) unsure = true;
        } else {
          dropped = new Set();
          unsure = false;
        }
        view = {
          roomId: data.room_id!,
          players: players.map((p) => p.id),
          spectator: message.type === "SpectatorJoined",
          authority: players.find((p) => p.is_authority)?.id ?? null,
          ready: [...(data.ready_players ?? [])],
          lobby: data.lobby_state,
        };
        break;
      }
      case "RoomLeft":
      case "SpectatorLeft":
        view = undefined;
        break;
      case "PlayerJoined":
        if (view && !view.players.includes(data.player!.id)) view.players.push(data.player!.id);
        break;
      case "PlayerLeft":
        if (view) {
          const id = data.player_id;
          view.players = view.players.filter((p) => p !== id);
          view.ready = view.ready!.filter((p) => p !== id);
          if (view.authority === id) view.authority = null;
        }
        break;
      case "LobbyStateChanged":
        if (view) {
          view.ready = [...(data.ready_players ?? [])];
          view.lobby = data.lobby_state;
        }
        break;
      case "AuthorityChanged":
        if (view) view.authority = data.authority_player ?? null;
        break;
    }
  }
  if (view === undefined) return undefined;
  const players = [...view.players].sort();
  const told = unsure ? {} : { dropped: [...dropped].sort() };
  return view.spectator ? { roomId: view.roomId, players, ...told } : {
    roomId: view.roomId,
    players,
    authority: view.authority,
    ready: [...view.ready!].sort(),
    lobby: view.lobby,
    ...told,
  };
}

/**
 * Room `roomId` as the node that homes it holds it, in the shape of `view` (a player's or a
 * spectator's): its `dropped` is the part of the view's that the home holds as held seats (a
 * client need not have heard of every held seat: a snapshot does not say which are held).
 */
function homeView(nodes: TestNode[], view: RoomView): RoomView | undefined {
  const roomId = view.roomId;
  for (const node of nodes) {
    for (const code of CODES) {
      const detail = node.engine.roomDetail("orbit", code, Date.now());
      if (detail?.room_id !== roomId) continue;
      const players = detail.members.map((m) => m.player_id).sort();
      const held = new Set(detail.members.filter((m) => m.held).map((m) => m.player_id));
      const presence = view.dropped && { dropped: view.dropped.filter((id) => held.has(id)) };
      return view.authority === undefined ? { roomId, players, ...presence } : {
        roomId,
        players,
        authority: detail.authority,
        ready: [...detail.ready_players].sort(),
        lobby: detail.lobby_state,
        ...presence,
      };
    }
  }
  return undefined;
}

/** Settings of {@linkcode runConsistency}. */
export interface ConsistencyOptions {
  /** Quiet time after the steps, and again after the final round of game data, ms. @default 300 */
  quietMs?: number;
  /**
   * Before this step (0–249) one node, picked by the seed, crashes as `kill -9` would
   * (docs/spec/SERVER.md §8.5.5 "Edge crashes", "Home crashes"): nothing it produces from then on
   * leaves it (on the twins; on Redis its last turn's output may), its subscription and liveness
   * key are gone, and its clients see their connections drop and come back through the other
   * nodes. The checks then cover the surviving nodes: the dead node's rooms are lost, so their
   * members on other nodes must have been closed (`1012`), and seats whose connection was on the
   * dead node must be held, not live. @default no crash
   */
  crashAt?: number;
  /**
   * At this step (0–169) one node, picked by the seed, starts the drain of docs/spec/SERVER.md §8.7
   * (`SIGTERM`): no new connections reach it, its connections outside its rooms are closed `1001`
   * (again every 10 steps, as the server's 250-ms tick), its rooms keep working; 80 steps later
   * the drain times out: its remaining rooms are deleted (their members told `RoomLeft`), its
   * connections closed `1001`, and the node stops. @default no drain
   */
  drainAt?: number;
  /**
   * On the twins only: from this step (0–209), for 40 steps, Redis does not answer
   * (docs/spec/SERVER.md §8.5.5 "Redis unreachable"): every store call and every publish fails.
   * @default no outage
   */
  outageAt?: number;
  /**
   * On the twins only: at this step (0–239) Redis restarts empty (docs/spec/SERVER.md §8.5.5): every
   * node's link goes down, every key is lost, nothing is answered or delivered for 10 steps, then
   * the links come back (the nodes re-register under a new epoch, with its grace window).
   * @default no restart
   */
  restartAt?: number;
  /**
   * On the twins only: from this step (0–209), for 40 steps, one node, picked by the seed, is
   * too slow (docs/spec/SERVER.md §8.5.5 "Home too slow"): each envelope it publishes or is sent
   * arrives 0–`slowMs` late (each pair's order kept), so with a short `forward_timeout_ms` its
   * requests' answers cross the edges' timeouts both ways: a `BIND` expired when the home reads
   * it, a `BOUND` after the edge gave up (undone, `abandoned`). @default no slow node
   */
  slowAt?: number;
  /** How late, at most, a slow node's envelopes arrive, ms. @default 160 */
  slowMs?: number;
  /**
   * On the twins only: at this step (0–239) Redis pauses for `pauseMs` (docs/spec/SERVER.md §8.5.1:
   * a publish neither delivered nor answered meanwhile, store calls waiting), then answers
   * everything in order; a pause past 3 × `heartbeat_ms` makes every pair suspect. @default none
   */
  pauseAt?: number;
  /** How long Redis pauses, ms. @default 250 */
  pauseMs?: number;
  /**
   * Every connection negotiated token binding (docs/spec/PROTOCOL.md Appendix A): each has its own
   * session secret and signs every text frame it sends. @default false
   */
  tokenBinding?: boolean;
  /**
   * Slow consumers (docs/spec/PROTOCOL.md §1.5, §1.6, docs/spec/SERVER.md §5.2): at each step,
   * with this probability, one client, picked by the seed, stops reading. Half the time its
   * budget is already spent, so the next frame its edge writes to it overflows at once; otherwise
   * frames wait in its queue of 1–6 frames (`TestClient.pause`) until it reads again 1–12 steps
   * later (they then arrive in order), unless one more finds the queue full: that overflow drops
   * every frame waiting. Either way an overflow must close the connection with `1013` at once,
   * whatever it is doing then, its seat held as truncated (checked as
   * {@linkcode ConsistencyOutcome.untold}). @default 0
   */
  stallRate?: number;
  /**
   * Every other connection the run opens negotiates MessagePack game data at once
   * (docs/spec/PROTOCOL.md §7.1.5, an `Authenticate` with `game_data_format: "message_pack"`) and
   * sends its numbered game data as binary frames (docs/spec/PROTOCOL.md §7.7), which reach
   * MessagePack recipients as binary envelopes and the others, and replays, as JSON.
   * @default false
   */
  messagePack?: boolean;
  /**
   * Players also mark themselves ready and ask for or give up authority now and then
   * (docs/spec/PROTOCOL.md §7.4, §7.5), and once quiet, each seated client's view of its room —
   * built from what it was told as the TypeScript client builds it: a snapshot (`RoomJoined`,
   * `Reconnected`, `SpectatorJoined`), then `PlayerJoined`, `PlayerLeft`, `LobbyStateChanged`,
   * `AuthorityChanged` — must be its home's room: the same players (held seats included), and for
   * a player the same authority, ready set and lobby state. Every connection also opts in to
   * presence events (docs/spec/EXTENSIONS.md E10), a dropped client's next connection asks for its
   * own seat back at once, as a game client does, and every player a client was told is
   * disconnected must be a held seat at the home. @default false
   */
  roomState?: boolean;
  /**
   * Now and then (two frames in five) a JSON sender addresses its numbered game data `to_player`
   * (docs/spec/PROTOCOL.md §7.6, docs/spec/EXTENSIONS.md): one of the other players it believes in
   * its room, who may be on another node, held (the frame goes to its replay), gone or moved on
   * (the sender is told `INVALID_INPUT`). Such a frame must reach that player's seat only, and the
   * loss check expects it at that seat alone. Binary frames carry no target. @default false
   */
  targeted?: boolean;
  /**
   * With `roomState`: players now and then provide connection info (docs/spec/PROTOCOL.md §7.8)
   * and ready up when their room is in the lobby, so rooms reach `finalized` and start. Every
   * `LobbyStateChanged{finalized}` a connection gets (live or replayed) must be followed at once by
   * `GameStarting` (docs/spec/PROTOCOL.md §7.4), whose peers are the room's players as the client
   * knows them, with the authority it knows; each player's `connection_info` there and in
   * snapshots must be one that player provided, and spectators never get any.
   * @default false
   */
  gameStarts?: boolean;
  /**
   * Joins also say how they may create (docs/spec/EXTENSIONS.md E9: `create` is `"if_missing"`,
   * `"never"` or `"always"`) and whether the room they create hands authority over
   * (docs/spec/EXTENSIONS.md E11: `authority_handover`). A create-only join answered `RoomJoined`
   * must have made a new room (the joiner its only player); a join-only one must not have (its
   * room was not created for it: `RoomJoined` lists someone else, held seats included, or the
   * room is one the run saw before, or a node held it before the join was sent: a room whose
   * creator never got its `RoomJoined` outlives it, empty). With `roomState`, the room views
   * cover the handovers.
   * @default false
   */
  joinModes?: boolean;
  /**
   * Every this many steps each running node runs its timers, as the server's do
   * (docs/spec/SERVER.md §4): held seats whose reconnection window ended are released
   * (docs/spec/PROTOCOL.md §7.11.3) and empty or inactive rooms deleted. With a short
   * `reconnectionWindowMs` and `emptyRoomTimeoutMs` on the cluster's engines, seats expire and
   * rooms go while `Reconnect`s and joins cross nodes towards them. @default never
   */
  timersEvery?: number;
  /**
   * On the twins only: at this step (0–249) the directory loses every room entry by code (the
   * `room:` keys), as when Redis evicts them or a home was paused longer than `T`
   * (docs/spec/SERVER.md §8.3 "Conflict rule", §8.5.5 "Split brain"): joins by code may create a
   * second room under a code until its first home's refresh finds the conflict; each room keeps
   * its members. @default never
   */
  evictAt?: number;
  /**
   * On the twins only: Redis as it answers over a network, not within the same turn: every store
   * call runs 0–`jitterMs` ms after it is made (in the order made), and every envelope arrives
   * 0–`jitterMs` ms after it is published (in order per receiving node, as one subscriber
   * connection reads them, those due together in one run; never before the store calls made
   * before it), so clients' frames, timers and other nodes' envelopes run in between, as on a
   * real redis-server. @default 0 (store calls and envelopes within the turn)
   */
  jitterMs?: number;
}

/**
 * One seeded run on the started `cluster` (three nodes; reconnection enabled; a heartbeat period
 * of at most 100 ms), closed at the end: 8 clients, 250 steps, then `options.quietMs` without
 * steps; with `options.crashAt`, one node crashes during the run, with `options.drainAt`, one
 * drains and stops, with `options.outageAt`, Redis stops answering for a while, with
 * `options.restartAt`, it restarts empty, with `options.slowAt`, one node is slow for a while,
 * with `options.pauseAt`, Redis pauses.
 */
export async function runConsistency(
  cluster: {
    nodes: TestNode[];
    network?: MemoryNetwork;
    store?: MemoryStore;
    close(): Promise<void>;
  },
  seed: number,
  options: ConsistencyOptions = {},
): Promise<ConsistencyOutcome> {
  const quietMs = options.quietMs ?? 300;
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  /** With the twins' network: the next envelope from one node to another is lost (a gap). */
  let losing: { from: string; to: string } | undefined;
  /** Crashed nodes: nothing they publish is delivered any more (the twins). */
  const crashed = new Set<string>();
  /** Redis does not answer (the twins). */
  let outage = false;
  /** Redis is paused until this time (`Date.now()`); 0 = not paused. */
  let pausedUntil = 0;
  /** The slow node's name while it is slow, and how late each of its envelopes is. */
  let slow: string | undefined;
  const lateness = prng(seed + 7_919);
  /** Which frames are targeted, and at whom (its own draws: the run's choices stay the seed's). */
  const aim = prng(seed + 104_729);
  /** How a slow consumer stalls (`stallRate`; its own draws, as `aim`). */
  const lag = prng(seed + 32_452_843);
  /** Connection info and extra readies (`gameStarts`; its own draws, as `aim`). */
  const nudge = prng(seed + 1_299_709);
  /** Per provided `connection_info` (by its port, unique in a run): the connection that sent it. */
  const infoFrom = new Map<number, TestClient>();
  /** Per step of targeted game data: the player id it was sent to. */
  const targetOf = new Map<number, string>();
  const store = cluster.store;
  const twinsOnly = [
    options.outageAt,
    options.restartAt,
    options.slowAt,
    options.pauseAt,
    options.evictAt,
    options.jitterMs,
  ];
  if (twinsOnly.some((at) => at !== undefined) && (!cluster.network || !store)) {
    throw new Error(
      "an outage, a restart, a slow node, a pause, an eviction or jitter needs the twins",
    );
  }
  /** Redis's latency (`jitterMs`): its own draws, as `aim`. */
  const jitter = prng(seed + 15_485_863);
  if (options.jitterMs && store) store.latency = () => jitter() * options.jitterMs!;
  if (cluster.network) {
    cluster.network.fault = (from, to) => {
      if (crashed.has(from)) return "drop";
      if (outage) return "fail";
      const now = Date.now();
      if (now < pausedUntil) return { stallMs: pausedUntil - now };
      if (losing?.from === from && losing.to === to) {
        losing = undefined;
        return "drop";
      }
      if (slow !== undefined && (from === slow || to === slow)) {
        return { lateMs: Math.floor(lateness() * (options.slowMs ?? 160)) };
      }
      if (options.jitterMs) {
        // In order per receiving node, as one subscriber connection reads them: those due
        // together are handled in one run.
        const lateMs = Math.max(jitter() * options.jitterMs, store!.busyUntil - now);
        return { lateMs, oneStream: true };
      }
      return "deliver";
    };
  }
  try {
    /** The nodes still running and accepting connections. */
    let nodes = cluster.nodes;
    /** The node draining, until it stops. */
    let draining: TestNode | undefined;
    /** The rooms the draining node homed when its drain started. */
    const homedAtDrain = new Set<string>();
    /** Rooms it homed later (see {@linkcode ConsistencyOutcome.drainCreated}). */
    const drainCreated: string[] = [];
    let ip = 0;
    /**
     * Who sent each step's game data: the connection, and how many requests (joins, leaves,
     * reconnects) it had sent before it (`<connection id>#<requests>`).
     */
    const sender = new Map<number, string>();
    /** Requests sent per connection. */
    const requests = new Map<string, number>();
    /** Every connection the run opened. */
    const opened: TestClient[] = [];
    const connect = () => {
      const client = pick(nodes).connect(
        `10.1.${Math.floor(ip / 250)}.${ip++ % 250}`,
        options.tokenBinding ? crypto.getRandomValues(new Uint8Array(16)) : undefined,
      );
      opened.push(client);
      const pack = options.messagePack && opened.length % 2 === 0;
      if (pack) packed.add(client);
      if (pack || options.roomState) {
        client.say({
          type: "Authenticate",
          data: {
            app_id: "orbit",
            ...(pack ? { game_data_format: "message_pack" } : {}),
            // Presence events (docs/spec/EXTENSIONS.md E10): who the client sees as dropped.
            ...(options.roomState ? { features: ["presence-events"] } : {}),
          },
        });
      }
      return client;
    };
    /** The connections that negotiated MessagePack: their game data goes as binary frames. */
    const packed = new Set<TestClient>();
    /**
     * `client` sends game data numbered `step`: a binary frame when it negotiated MessagePack;
     * with `targeted`, now and then to one other player it believes in its room.
     */
    const sendData = (client: TestClient, step: number) => {
      const value = { step };
      if (packed.has(client)) {
        client.node.edge.receive(client.id, encode(value), Date.now());
        return;
      }
      if (options.targeted && aim() < 0.4) {
        const own = seatOf(client)?.id;
        const others = (viewOf(client)?.players ?? []).filter((id) => id !== own);
        if (others.length > 0) {
          const to = others[Math.floor(aim() * others.length)]!;
          targetOf.set(step, to);
          client.say({ type: "GameData", data: { data: value, to_player: to } });
          return;
        }
      }
      client.say({ type: "GameData", data: { data: value } });
    };
    /**
     * Per connection: each `JoinRoom` it sent, in order (`joinModes`): its `create`, and when it
     * was sent ({@linkcode arrivalsSoFar}).
     */
    const creates = new Map<string, SentJoin[]>();
    /** `create` and `authority_handover` of a join by `client` (docs/spec/EXTENSIONS.md E9, E11). */
    const joinMode = (client: TestClient) => {
      const roll = nudge();
      const create = roll < 0.5 ? "if_missing" : roll < 0.75 ? "never" : "always";
      const join = { create, sentAt: arrivalsSoFar() };
      creates.set(client.id, [...creates.get(client.id) ?? [], join]);
      return { create, authority_handover: nudge() < 0.5 };
    };
    /**
     * Per room id (`joinModes`): the first step boundary at which some node's engine held it
     * ({@linkcode arrivalsSoFar} then), whether or not any client was told of it: a room whose
     * creator never got its `RoomJoined` (the connection dropped, the seat expired) still exists
     * for a while, and a join-only join may find it.
     */
    const existed = new Map<string, number>();
    const clients: TestClient[] = Array.from({ length: 8 }, connect);
    /** The latest seat credentials any client was given (for Reconnect, by anyone). */
    const tokens: { player_id: string; room_id: string; auth_token: string }[] = [];
    const remember = (client: TestClient) => {
      const seat = credentialsOf(client);
      if (seat) tokens.push(seat);
    };
    /** Paused clients (`stallRate`), each with the step before which it reads again. */
    const paused = new Map<TestClient, number>();
    /** Frames that waited in a paused client's queue and arrived when it read again. */
    let waited = 0;
    /** `client` reads again: what waited in its queue arrives. */
    const resume = (client: TestClient) => {
      if (!paused.delete(client)) return;
      waited += client.queued;
      client.resume();
    };
    /** Drops client `k`'s connection `client` (if still its own) for a new one through any node. */
    const drop = (k: number, client: TestClient) => {
      // It read what was written before it went (what it had not is lost by its own doing).
      resume(client);
      if (clients[k] !== client) return;
      if (client.closed === undefined) {
        client.node.edge.disconnect(client.id, Date.now());
      }
      const fresh = clients[k] = connect();
      const seat = options.roomState ? credentialsOf(client) : undefined;
      if (seat !== undefined) {
        // As a game client does after a drop: its own seat back at once (its room sees
        // `PlayerDisconnected`, then `PlayerReconnected`).
        requests.set(fresh.id, 1);
        fresh.say({ type: "Reconnect", data: seat });
      }
    };
    for (let step = 0; step < 250; step++) {
      if (options.joinModes) {
        const now = Date.now();
        for (const node of nodes) {
          for (const code of CODES) {
            const roomId = node.engine.roomDetail("orbit", code, now)?.room_id;
            if (roomId !== undefined && !existed.has(roomId)) existed.set(roomId, arrivalsSoFar());
          }
        }
      }
      if (step === options.crashAt) {
        const victim = pick(nodes);
        crashed.add(victim.name);
        nodes = nodes.filter((node) => node !== victim);
        // Its clients' TCP connections die with it; nothing is said to the other nodes: its
        // subscription and liveness key go as a dead process's would (the key at once rather
        // than after its TTL).
        for (const client of clients) {
          if (client.node !== victim) continue;
          resume(client);
          client.close(1006);
        }
        await victim.cluster.stop();
      }
      if (step === options.drainAt) {
        draining = pick(nodes);
        nodes = nodes.filter((node) => node !== draining);
        for (const entry of draining.engine.directoryEntries()) homedAtDrain.add(entry.roomId);
        // As the server's drainHome: connections that are no members here go before the liveness
        // write (docs/spec/SERVER.md §8.7 step 2).
        draining.edge.command({ kind: "drain", final: false }, Date.now());
        await draining.cluster.drain();
      }
      if (draining && step === options.drainAt! + 80) {
        // The drain's timeout, then the shutdown of docs/spec/SERVER.md §1.1.
        draining.edge.command({ kind: "drain", final: true }, Date.now());
        draining.edge.command(
          { kind: "close_all", code: 1001, reason: "Server shutting down" },
          Date.now(),
        );
        await draining.cluster.stop();
        draining = undefined;
      } else if (draining && (step - options.drainAt!) % 10 === 0) {
        draining.edge.command({ kind: "drain", final: false }, Date.now());
      }
      if (step === options.outageAt || step === options.outageAt! + 40) {
        outage = step === options.outageAt;
        store!.unreachable = outage;
      }
      if (step === options.restartAt) {
        outage = store!.unreachable = true;
        for (const node of cluster.nodes) node.cluster.linkState("down");
        store!.flush();
      } else if (step === options.restartAt! + 10) {
        outage = store!.unreachable = false;
        for (const node of cluster.nodes) node.cluster.linkState("up");
      }
      if (step === options.evictAt) store!.expire((key) => key.includes("room:"));
      if (step === options.slowAt) slow = pick(nodes).name;
      else if (step === options.slowAt! + 40) slow = undefined;
      if (step === options.pauseAt) {
        const pauseMs = options.pauseMs ?? 250;
        pausedUntil = Date.now() + pauseMs;
        store!.paused = new Promise((resume) => setTimeout(resume, pauseMs)).then(() => {
          store!.paused = undefined;
        });
      }
      if (options.timersEvery && step % options.timersEvery === 0) {
        for (const node of [...nodes, ...draining ? [draining] : []]) {
          node.edge.command({ kind: "tick" }, Date.now());
          node.edge.command({ kind: "sweep" }, Date.now());
        }
      }
      if (cluster.network && random() < 0.02) {
        // One envelope between two nodes is lost: that pair resyncs (docs/spec/SERVER.md §8.5.2).
        const [from, to] = [pick(nodes).name, pick(nodes).name];
        if (from !== to) losing = { from, to };
      }
      for (const [client, until] of paused) if (step >= until) resume(client);
      if (options.stallRate && random() < options.stallRate) {
        const slow = clients[Math.floor(random() * clients.length)]!;
        if (lag() < 0.5) slow.stalled = true;
        else if (!slow.stalled && !paused.has(slow)) {
          slow.pause(1 + Math.floor(lag() * 6));
          paused.set(slow, step + 1 + Math.floor(lag() * 12));
        }
      }
      const k = Math.floor(random() * clients.length);
      const client = clients[k]!;
      if (options.roomState && random() < 0.12) {
        // Ready, or authority asked for or given up (answered or refused by the home).
        const which = random();
        client.say(
          which < 0.5
            ? { type: "PlayerReady" }
            : { type: "AuthorityRequest", data: { become_authority: which < 0.85 } },
        );
      }
      remember(client);
      const roll = random();
      if (client.closed !== undefined || roll < 0.04) {
        // Dropped (or closed by the server): a new connection through any node.
        drop(k, client);
      } else if (roll < 0.62) {
        // A request that may change the connection's membership: its game data before and after
        // are compared apart (one connection keeps its player id from room to room).
        requests.set(client.id, (requests.get(client.id) ?? 0) + 1);
        if (roll < 0.4) {
          client.say({
            type: "JoinRoom",
            data: {
              game_name: "orbit",
              player_name: `P${k}`,
              room_code: pick(CODES),
              // Rooms that fill up reach the lobby (docs/spec/PROTOCOL.md §7.4); rooms of two
              // start more often.
              max_players: options.gameStarts ? 2 : options.roomState ? 3 : 8,
              ...(options.joinModes ? joinMode(client) : {}),
            },
          });
        } else if (roll < 0.45) {
          client.say({ type: "LeaveRoom" });
        } else if (roll < 0.5) {
          client.say(
            random() < 0.6
              ? {
                type: "JoinAsSpectator",
                data: {
                  game_name: "orbit",
                  room_code: pick(CODES),
                  spectator_name: `S${k}`,
                },
              }
              : { type: "LeaveSpectator" },
          );
        } else if (tokens.length > 0) {
          // Its own seat back, or anyone's: a resume, or a takeover of a live seat.
          client.say({ type: "Reconnect", data: pick(tokens) });
        }
        // Now and then the connection drops while the request is under way.
        if (random() < 0.2) void settle(Math.floor(random() * 6)).then(() => drop(k, client));
      } else if (roll < 0.65) {
        // An operator, through any node: close a room, or remove a player (a member's id).
        const roomCode = pick(CODES);
        const seat = seatOf(pick(clients));
        void pick(nodes).edge.command({
          kind: "room",
          command: roll < 0.635 || seat?.role !== "player"
            ? { kind: "close", gameName: "orbit", roomCode }
            : {
              kind: "remove_player",
              gameName: "orbit",
              roomCode: seat.roomCode,
              playerId: seat.id,
            },
        }, Date.now());
      } else {
        sender.set(step, `${client.id}#${requests.get(client.id) ?? 0}`);
        sendData(client, step);
      }
      if (step % 3 === 0) {
        // Every third step each client that believes itself seated sends a frame too (numbered
        // after the step's own), so frames flow while others drop and come back: what a replay
        // must carry (no random draw, so the run's choices stay the seed's).
        clients.forEach((other, i) => {
          if (seatOf(other)?.role !== "player") return;
          const tick = step + (i + 1) / 100;
          sender.set(tick, `${other.id}#${requests.get(other.id) ?? 0}`);
          sendData(other, tick);
        });
      }
      if (options.gameStarts) {
        // Connection info now and then; and a player of a room in the lobby readies up, so
        // rooms start (docs/spec/PROTOCOL.md §7.4, §7.8).
        const player = clients[Math.floor(nudge() * clients.length)]!;
        const roll = nudge();
        const seat = seatOf(player);
        if (seat?.role === "player" && roll < 0.15) {
          const port = infoFrom.size + 1;
          infoFrom.set(port, player);
          player.say({
            type: "ProvideConnectionInfo",
            data: { connection_info: { type: "direct", host: "10.9.0.1", port } },
          });
        } else if (seat?.role === "player" && roll < 0.4) {
          const view = viewOf(player);
          if (view?.lobby === "lobby" && !view.ready?.includes(seat.id)) {
            player.say({ type: "PlayerReady" });
          }
        } else if (seat === undefined && player.closed === undefined && roll < 0.5) {
          // Someone watches (a spectator must get `GameStarting` without addresses).
          requests.set(player.id, (requests.get(player.id) ?? 0) + 1);
          player.say({
            type: "JoinAsSpectator",
            data: {
              game_name: "orbit",
              room_code: CODES[Math.floor(nudge() * CODES.length)]!,
              spectator_name: "W",
            },
          });
        }
      }
      // Answers may or may not have arrived before the next request.
      await settle(Math.floor(random() * 3));
      for (const entry of draining?.engine.directoryEntries() ?? []) {
        if (homedAtDrain.has(entry.roomId)) continue;
        homedAtDrain.add(entry.roomId);
        drainCreated.push(`${entry.roomId} at step ${step}`);
      }
    }
    // Quiet: every request answered, every close told (a probe waits one 50-ms period); paused
    // clients read again first.
    for (const client of [...paused.keys()]) resume(client);
    await new Promise((resolve) => setTimeout(resolve, quietMs));
    await settle(20);
    const told = clients.map(seatOf).filter((seat) => seat !== undefined).sort(order);
    const held = nodes.flatMap(liveSeats).sort(order);
    // Per node: remote sessions it homes, and its connections bound to rooms homed elsewhere,
    // against the live seats (a leaked remote session or binding would differ).
    const nodeOf = new Map(clients.map((client) => [client.id, client.node]));
    const crossings = nodes.map((node) => {
      const homed = liveSeats(node);
      return {
        node: node.name,
        remoteSessions: node.edge.remoteSessions(),
        boundRemote: node.edge.boundRemote(),
        seatsOfOtherEdges: homed.filter((seat) => nodeOf.get(seat.conn) !== node).length,
        seatsHomedElsewhere: nodes.filter((home) => home !== node)
          .flatMap(liveSeats).filter((seat) => nodeOf.get(seat.conn) === node).length,
      };
    });
    // Then every live player sends one untargeted GameData: it must reach exactly the other live
    // members of its room (players and spectators, docs/spec/PROTOCOL.md §7.9), once each.
    losing = undefined;
    const views: ConsistencyOutcome["views"] = [];
    let compared = 0;
    if (options.roomState) {
      for (const client of clients) {
        const view = seatOf(client) && viewOf(client);
        if (view === undefined) continue;
        const home = homeView(nodes, view);
        // A room no node homes is the seat check's failure (told, not held).
        if (home !== undefined) {
          compared++;
          if (JSON.stringify(view) !== JSON.stringify(home)) {
            views.push({ client: client.id, view, home });
          }
        }
      }
    }
    // A client that stopped reading is closed by the next frame it is sent (`1013`): it takes
    // no part in this round.
    const seatAtCheck = new Map(
      clients.map((client) => [client, client.stalled ? undefined : seatOf(client)]),
    );
    const seen = new Map(clients.map((client) => [client, client.messages.length]));
    for (const [client, seat] of seatAtCheck) {
      if (seat?.role === "player") {
        client.say({ type: "GameData", data: { data: { check: client.id } } });
      }
    }
    await new Promise((resolve) => setTimeout(resolve, quietMs));
    await settle(20);
    const relay = clients.map((client) => {
      const seat = seatAtCheck.get(client);
      const expected = seat === undefined ? [] : [...seatAtCheck]
        .filter(([other, its]) =>
          other !== client && its?.role === "player" && its.roomId === seat.roomId
        )
        .map(([other]) => other.id).sort();
      const got = client.messages.slice(seen.get(client))
        .filter((message) => message.type === "GameData")
        .map((message) => String((message.data?.data as { check?: string })?.check)).sort();
      return { client: client.id, expected, got };
    });
    const went: Record<string, number> = {};
    const count = (what: string) => went[what] = (went[what] ?? 0) + 1;
    if (compared > 0) went["room views compared"] = compared;
    if (options.jitterMs && store!.delayed > 0) went["store calls answered later"] = store!.delayed;
    for (const client of opened) {
      if (client.closed !== undefined && client.closed !== 1006) count(`close ${client.closed}`);
      /** Players this client was told are disconnected (docs/spec/EXTENSIONS.md E10). */
      const away = new Set<unknown>();
      for (const message of client.messages) {
        const code = message.data?.error_code;
        if (code !== undefined) count(`${message.type} ${code}`);
        const player = message.data?.player_id;
        if (message.type === "PlayerDisconnected") away.add(player);
        if (message.type === "PlayerReconnected") away.delete(player);
        // A held seat released (its window ended, or an operator removed it), as a member saw it.
        if (message.type === "PlayerLeft" && away.delete(player)) count("held seats released");
      }
    }
    // What the nodes counted (docs/spec/SERVER.md §6.3 #70, #73–#75), over every node.
    for (const node of cluster.nodes) {
      const { streams, counts } = node.cluster.router;
      for (
        const [what, n] of [
          ["pair resyncs", streams.stats.resyncs],
          ["bind timeouts", counts.bindTimeouts],
          ["binds expired at the home", counts.bindsExpired],
          ["binds undone", counts.bindsUndone],
          ["frames bounced", counts.bounced],
          ["code conflicts", node.cluster.conflictCount],
        ] as const
      ) if (n > 0) went[what] = (went[what] ?? 0) + n;
    }
    const disorder: string[] = [];
    const misdelivered: string[] = [];
    /** Per player seat: the steps its connections received (live or replayed), by sender. */
    const bySeat = new Map<string, Map<string, number[]>>();
    /** Seats whose client was told frames may be missing (a truncated replay, a resync). */
    const truncated = new Set<string>();
    /** Sending connections told frames may be lost (closed by a resync). */
    const lossy = new Set<string>();
    // A connection keeps its player id from room to room (and a `Reconnected` hands it to the
    // new connection), so a seat is `<player id>#<n>`, the player's nth `RoomJoined` on any
    // connection in the order they arrived; a `Reconnected` resumes the player's latest seat
    // before it (the token of an earlier one was given up when it left).
    const seatOfMessage = new Map<object, string>();
    {
      const answers: { arrival: number; message: TestClient["messages"][number] }[] = [];
      for (const client of opened) {
        client.messages.forEach((message, i) => {
          if (message.type === "RoomJoined" || message.type === "Reconnected") {
            answers.push({ arrival: client.arrivals[i]!, message });
          }
        });
      }
      const joins = new Map<string, number>();
      for (const { message } of answers.sort((a, b) => a.arrival - b.arrival)) {
        const id = (message.data as { player_id: string }).player_id;
        if (message.type === "RoomJoined") joins.set(id, (joins.get(id) ?? 0) + 1);
        seatOfMessage.set(message, `${id}#${joins.get(id) ?? 0}`);
      }
    }
    const untold = checkOverflows(
      opened,
      seatOfMessage,
      (what, n) => went[what] = (went[what] ?? 0) + n,
    );
    if (waited > 0) went["frames that waited for a paused reader"] = waited;
    for (const client of opened) {
      const last = new Map<string, number>();
      /** The player seat (or spectator's place) this connection holds at this point. */
      let seat: string | undefined;
      /** This connection's `SpectatorJoined`s so far. */
      let watched = 0;
      const check = (frame: { from_player?: string; data?: { step?: number } } | undefined) => {
        const step = frame?.data?.step;
        if (step === undefined || frame?.from_player === undefined) return;
        count("GameData received");
        const aimed = targetOf.get(step);
        if (aimed !== undefined) {
          count("targeted GameData received");
          if (seat?.split("#")[0] !== aimed) {
            misdelivered.push(
              `${client.id} (seat ${seat ?? "none"}) got step ${step} sent to player ${aimed}`,
            );
          }
        }
        // Per sending connection: two connections of one player (a takeover racing the old
        // connection's frames) are ordered only each on its own.
        const from = sender.get(step)!;
        const before = last.get(from) ?? -1;
        if (step <= before) {
          disorder.push(`${client.id} got step ${step} from connection ${from} after ${before}`);
        }
        last.set(from, step);
        if (seat === undefined) return;
        let senders = bySeat.get(seat);
        if (senders === undefined) bySeat.set(seat, senders = new Map());
        const steps = senders.get(from);
        if (steps === undefined) senders.set(from, [step]);
        else steps.push(step);
      };
      for (const message of client.messages) {
        const data = message.data as { player_id?: string; replay_truncated?: boolean } | undefined;
        // A new seat's stream starts (a takeover may replay frames this connection already got
        // as its own seat).
        if (message.type === "RoomJoined" || message.type === "Reconnected") last.clear();
        if (message.type === "RoomJoined") seat = seatOfMessage.get(message);
        if (message.type === "RoomLeft" || message.type === "SpectatorLeft") seat = undefined;
        // A spectator's place is a seat of this check too, without a replay: from its
        // `SpectatorJoined` to its `SpectatorLeft`, on this one connection.
        if (message.type === "SpectatorJoined") seat = `spectator ${client.id}#${++watched}`;
        if (message.type === "GameData") check(message.data as Parameters<typeof check>[0]);
        if (message.type === "binary") {
          count("binary GameData received");
          check(unpacked(message.data));
        }
        if (message.type === "Reconnected") {
          seat = seatOfMessage.get(message);
          if (data!.replay_truncated && seat !== undefined) truncated.add(seat);
          const missed = (message.data?.missed_events ?? []) as { type: string; data?: unknown }[];
          for (const event of missed) {
            if (event.type !== "GameData") continue;
            count("GameData replayed");
            check(event.data as Parameters<typeof check>[0]);
          }
        }
      }
      if (client.closed === 1012) {
        lossy.add(client.id);
        if (seat !== undefined) truncated.add(seat);
      }
    }
    // Nothing lost that the client is not told about (issue 15 item 4): between two frames a
    // seat received from one connection, every frame that connection sent reached the seat —
    // live on one of its connections or in a replay — once; unless the seat was told frames may
    // be missing or the sender was resynced.
    const gaps: string[] = [];
    const sentBy = new Map<string, number[]>();
    for (const [step, conn] of sender) {
      const steps = sentBy.get(conn);
      if (steps === undefined) sentBy.set(conn, [step]);
      else steps.push(step);
    }
    for (const [seat, senders] of bySeat) {
      const player = seat.split("#")[0]!;
      for (const [from, steps] of senders) {
        if (new Set(steps).size !== steps.length) {
          gaps.push(`seat ${seat} got a frame of connection ${from} twice: ${steps}`);
        }
        if (truncated.has(seat) || lossy.has(from.split("#")[0]!)) continue;
        const got = new Set(steps);
        const first = Math.min(...steps), final = Math.max(...steps);
        // Frames sent to another player are not this seat's to miss.
        const between = (sentBy.get(from) ?? []).filter((step) =>
          step > first && step < final && (targetOf.get(step) ?? player) === player
        );
        if (between.length > 0) count("frames checked for gaps");
        const missing = between.filter((step) => !got.has(step));
        if (missing.length > 0) {
          gaps.push(`seat ${seat} missed steps ${missing} of connection ${from} (got ${steps})`);
        }
      }
    }
    const starts = options.gameStarts ? checkStarts(opened, infoFrom, count) : [];
    const joins = options.joinModes ? checkCreates(opened, creates, existed, count) : [];
    return {
      told,
      held,
      crossings,
      relay,
      seen: went,
      disorder,
      gaps,
      misdelivered,
      untold,
      opened,
      views,
      starts,
      joins,
      drainCreated,
    };
  } finally {
    await cluster.close();
  }
}

/**
 * Asserts what {@linkcode runConsistency} found: the homes' live seats are the clients', and each
 * node's remote sessions and remote bindings match them. Returns how many seats there were.
 */
export function assertConsistent(outcome: ConsistencyOutcome, label: string): number {
  const { told, held, crossings, relay, disorder } = outcome;
  deepEqual({ label, disorder }, { label, disorder: [] });
  deepEqual({ label, gaps: outcome.gaps }, { label, gaps: [] });
  deepEqual({ label, misdelivered: outcome.misdelivered }, { label, misdelivered: [] });
  deepEqual({ label, untold: outcome.untold }, { label, untold: [] });
  deepEqual({ label, views: outcome.views }, { label, views: [] });
  deepEqual({ label, starts: outcome.starts }, { label, starts: [] });
  deepEqual({ label, joins: outcome.joins }, { label, joins: [] });
  deepEqual({ label, drainCreated: outcome.drainCreated }, { label, drainCreated: [] });
  // The label inside the compared values, so a failure shows both it and the difference.
  deepEqual({ label, seats: held }, { label, seats: told });
  for (const counts of crossings) {
    deepEqual(
      {
        label,
        node: counts.node,
        remoteSessions: counts.remoteSessions,
        boundRemote: counts.boundRemote,
      },
      {
        label,
        node: counts.node,
        remoteSessions: counts.seatsOfOtherEdges,
        boundRemote: counts.seatsHomedElsewhere,
      },
    );
  }
  for (const { client, expected, got } of relay) {
    deepEqual({ label, client, got }, { label, client, got: expected });
  }
  return told.length;
}

/**
 * The overflow check of {@linkcode ConsistencyOptions.stallRate} over every connection of a run
 * (docs/spec/SERVER.md §5.2, §8.5.3): `seatOfMessage` names the seat each `RoomJoined` and
 * `Reconnected` gave (`<player id>#<n>`); `add` tallies what was checked into the run's `seen`.
 * Returns each loss a client was not told of, one line each.
 */
function checkOverflows(
  opened: TestClient[],
  seatOfMessage: ReadonlyMap<object, string>,
  add: (what: string, n: number) => void,
): string[] {
  const untold: string[] = [];
  /** Per seat: its `Reconnected`s, by arrival. */
  const resumes = new Map<string, { arrival: number; truncated: boolean; client: TestClient }[]>();
  for (const client of opened) {
    client.messages.forEach((message, i) => {
      if (message.type !== "Reconnected") return;
      const seat = seatOfMessage.get(message)!;
      const truncated = (message.data as { replay_truncated?: boolean }).replay_truncated === true;
      const list = resumes.get(seat) ?? [];
      list.push({ arrival: client.arrivals[i]!, truncated, client });
      resumes.set(seat, list);
    });
  }
  for (const list of resumes.values()) list.sort((a, b) => a.arrival - b.arrival);
  for (const client of opened) {
    if (client.lostAt === undefined) continue;
    add("connections that lost frames to an overflow", 1);
    add("frames lost to overflows", client.lost);
    const where = `${client.id} (lost ${client.lost} frames after message ${client.lostAt})`;
    if (client.closed !== 1013) {
      untold.push(
        `${where}: ${client.closed === undefined ? "left open" : `closed ${client.closed}`}`,
      );
    }
    if (client.sentAfterLoss > 0) {
      untold.push(`${where}: ${client.sentAfterLoss} more frames sent to it before its close`);
    }
    // The player seat it held when it lost them, and since when.
    let seat: string | undefined;
    let since = 0;
    client.messages.slice(0, client.lostAt).forEach((message, i) => {
      if (message.type === "RoomJoined" || message.type === "Reconnected") {
        seat = seatOfMessage.get(message);
        since = client.arrivals[i]!;
      } else if (/^(RoomLeft|SpectatorJoined)$/.test(message.type)) seat = undefined;
    });
    if (seat === undefined) continue;
    const list = resumes.get(seat) ?? [];
    // Taken over meanwhile: the takeover's connection holds the seat, not this one.
    const lost = client.lostArrival!;
    if (list.some((r) => r.client !== client && r.arrival > since && r.arrival <= lost)) continue;
    const next = list.find((r) => r.arrival > lost);
    if (next === undefined) continue;
    add("Reconnected after an overflow", 1);
    if (!next.truncated) {
      untold.push(
        `${where}: seat ${seat} resumed by ${next.client.id} without replay_truncated`,
      );
    }
  }
  return untold;
}

/** A `GameStarting` peer or a snapshot's player, as far as the start check reads it. */
type Peer = {
  id?: string;
  player_id?: string;
  is_authority?: boolean;
  connection_info?: { port?: number };
};

/**
 * The start check of {@linkcode ConsistencyOptions.gameStarts} over every connection of a run:
 * `infoFrom` says which connection provided each `connection_info` (by its port); `count` tallies
 * what was checked into the run's `seen`. Returns the rules broken, one line each.
 */
function checkStarts(
  opened: TestClient[],
  infoFrom: ReadonlyMap<number, TestClient>,
  count: (what: string) => void,
): string[] {
  const starts: string[] = [];
  /** The player ids a connection held, from its own seats. */
  const ids = new Map(opened.map((client) => [
    client,
    new Set(
      client.messages
        .filter((m) => m.type === "RoomJoined" || m.type === "Reconnected")
        .map((m) => (m.data as { player_id: string }).player_id),
    ),
  ]));
  const idsOf = (client: TestClient) => ids.get(client) ?? new Set<string>();
  /** A player's `connection_info` must be its own, and never sent to a spectator. */
  const info = (peer: Peer, toSpectator: boolean, where: string) => {
    const port = peer.connection_info?.port;
    if (port === undefined) return;
    const id = peer.player_id ?? peer.id!;
    count("connection info received");
    const from = infoFrom.get(port);
    if (toSpectator) starts.push(`${where}: a spectator got ${id}'s connection_info ${port}`);
    else if (from === undefined || !idsOf(from).has(id)) {
      starts.push(
        `${where}: ${id}'s connection_info ${port} was provided by ${from?.id} (player ids ` +
          `${[...(from ? idsOf(from) : [])]})`,
      );
    }
  };
  /**
   * In a list of messages: a `finalized` must be followed at once by `GameStarting`, and a
   * `GameStarting` must follow one; but a truncated replay may start after its `finalized` (the
   * frame lost with the slow consumer's connection).
   */
  const followed = (
    messages: { type: string; data?: unknown }[],
    where: string,
    truncated = false,
  ) =>
    messages.forEach((message, i) => {
      const next = messages[i + 1];
      const finalized = message.type === "LobbyStateChanged" &&
        (message.data as { lobby_state?: string }).lobby_state === "finalized";
      if (finalized && next !== undefined && next.type !== "GameStarting") {
        starts.push(`${where}: LobbyStateChanged finalized followed by ${next.type}`);
      }
      if (
        message.type === "GameStarting" && messages[i - 1]?.type !== "LobbyStateChanged" &&
        !(truncated && i === 0)
      ) {
        starts.push(`${where}: GameStarting after ${messages[i - 1]?.type ?? "nothing"}`);
      }
    });
  for (const client of opened) {
    followed(client.messages, client.id);
    const last = client.messages.at(-1);
    if (
      last?.type === "LobbyStateChanged" && client.closed === undefined &&
      (last.data as { lobby_state?: string }).lobby_state === "finalized"
    ) starts.push(`${client.id}: LobbyStateChanged finalized and no GameStarting since`);
    viewOf(client, (message, view) => {
      const data = message.data as
        | { peer_connections?: Peer[]; current_players?: Peer[]; missed_events?: unknown[] }
        | undefined;
      const where = `${client.id} (${message.type})`;
      for (const player of data?.current_players ?? []) {
        info(player, message.type === "SpectatorJoined", where);
      }
      if (message.type === "Reconnected") {
        const missed = (data?.missed_events ?? []) as { type: string; data?: unknown }[];
        const truncated = (data as { replay_truncated?: boolean }).replay_truncated === true;
        followed(missed, `${client.id} (replayed)`, truncated);
        for (const event of missed) {
          if (event.type !== "GameStarting") continue;
          count("GameStarting replayed");
          for (const peer of (event.data as { peer_connections: Peer[] }).peer_connections) {
            info(peer, false, `${client.id} (replayed GameStarting)`);
          }
        }
      }
      if (message.type !== "GameStarting") return;
      count(view?.spectator ? "GameStarting received by a spectator" : "GameStarting received");
      const peers = data!.peer_connections!;
      const ids = peers.map((peer) => peer.player_id!).sort();
      const authority = peers.filter((peer) => peer.is_authority).map((peer) => peer.player_id);
      const known = {
        players: [...view?.players ?? []].sort(),
        authority: view?.authority ? [view.authority] : [],
        lobby: view?.lobby,
      };
      const got = { players: ids, authority, lobby: "finalized" };
      if (JSON.stringify(got) !== JSON.stringify(known)) {
        starts.push(
          `${where}: GameStarting ${JSON.stringify(got)}, its view ${JSON.stringify(known)}`,
        );
      }
      for (const peer of peers) info(peer, view?.spectator ?? false, where);
    });
  }
  return starts;
}

/** A `JoinRoom` a connection sent (`joinModes`): its `create`, and when ({@linkcode arrivalsSoFar}). */
interface SentJoin {
  readonly create: string;
  readonly sentAt: number;
}

/**
 * The create check of {@linkcode ConsistencyOptions.joinModes}: each connection's joins are
 * answered in order (docs/spec/PROTOCOL.md §1.5), one `RoomJoined` or `RoomJoinFailed` each, so
 * the nth answer is that of the nth `create` in `creates`. Returns the rules broken, one line each.
 */
function checkCreates(
  opened: TestClient[],
  creates: ReadonlyMap<string, readonly SentJoin[]>,
  existed: ReadonlyMap<string, number>,
  count: (what: string) => void,
): string[] {
  const broken: string[] = [];
  /** Per room id: the first arrival of a message naming it (a snapshot of any connection). */
  const firstSeen = new Map<string, number>();
  for (const client of opened) {
    client.messages.forEach((message, i) => {
      const roomId = (message.data as { room_id?: string } | undefined)?.room_id;
      if (roomId === undefined || !/Joined$|^Reconnected$/.test(message.type)) return;
      firstSeen.set(roomId, Math.min(firstSeen.get(roomId) ?? Infinity, client.arrivals[i]!));
    });
  }
  for (const client of opened) {
    const modes = creates.get(client.id) ?? [];
    let answered = 0;
    client.messages.forEach((message, i) => {
      if (message.type !== "RoomJoined" && message.type !== "RoomJoinFailed") return;
      const join = modes[answered++];
      const create = join?.create;
      const where = `${client.id}'s join #${answered} (create ${create})`;
      if (join === undefined) {
        broken.push(`${where}: ${message.type} answers no JoinRoom`);
        return;
      }
      if (message.type !== "RoomJoined") return;
      count(`RoomJoined create ${create}`);
      const data = message.data as {
        room_id: string;
        player_id: string;
        current_players: { id: string }[];
      };
      const others = data.current_players.filter((p) => p.id !== data.player_id).length;
      if (create === "always" && others > 0) {
        broken.push(`${where}: RoomJoined into room ${data.room_id} with ${others} other players`);
      }
      // New to the run: no client was told of it before, and no engine held it before the join
      // was sent.
      if (
        create === "never" && others === 0 &&
        firstSeen.get(data.room_id)! >= client.arrivals[i]! &&
        !((existed.get(data.room_id) ?? Infinity) <= join.sentAt)
      ) broken.push(`${where}: RoomJoined into room ${data.room_id}, a room new to the run`);
    });
  }
  return broken;
}

/**
 * A binary game-data envelope as the test client records it (`from_player`, `payload` in hex) as
 * the `GameData` data it stands for (docs/spec/PROTOCOL.md §7.7); undefined for another frame.
 */
function unpacked(
  data: Record<string, unknown> | undefined,
): { from_player?: string; data?: { step?: number } } | undefined {
  const hex = data?.payload;
  if (typeof hex !== "string") return undefined;
  const bytes = Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
  return { from_player: data!.from_player as string, data: decode(bytes) as { step?: number } };
}

/** The `Reconnect` data for the seat of `client`'s latest `RoomJoined` or `Reconnected`, if any. */
function credentialsOf(
  client: TestClient,
): { player_id: string; room_id: string; auth_token: string } | undefined {
  const seat = client.messages.findLast((m) => m.type === "RoomJoined" || m.type === "Reconnected")
    ?.data;
  return seat &&
    reconnectFor(seat).data as { player_id: string; room_id: string; auth_token: string };
}
