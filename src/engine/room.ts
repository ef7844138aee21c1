/**
 * Room state: seats, spectators, the ready set, authority and activity times, plus the snapshot
 * builders of docs/spec/PROTOCOL.md §4. Pure data; the rules live in `rooms.ts`, `spectators.ts` and `reconnection.ts`.
 *
 * @module
 */
import type {
  ConnectionInfo,
  LobbyState,
  PeerConnectionInfo,
  PlayerInfo,
  RoomSnapshot,
  SpectatorInfo,
} from "../protocol/messages.ts";
import type { ConnId, GameCounts } from "./effects.ts";
import { nameKey } from "./validation.ts";

/** A player's place in a room (docs/spec/PROTOCOL.md §0 "seat"). Its id is the player id. */
export interface Seat {
  /** The player id (the connection id of the connection that took the seat). */
  readonly id: string;
  readonly name: string;
  /** Lower-cased name for the uniqueness check. */
  readonly nameKey: string;
  /** When the seat was taken, RFC 3339 with milliseconds. */
  readonly connectedAt: string;
  connectionInfo?: ConnectionInfo;
}

/** A spectator of a room (docs/spec/PROTOCOL.md §7.9). */
export interface Spectator {
  readonly id: ConnId;
  readonly name: string;
  readonly connectedAt: string;
}

/** Creation parameters of a {@linkcode Room}. */
export interface RoomInit {
  id: string;
  code: string;
  gameName: string;
  maxPlayers: number;
  supportsAuthority: boolean;
  relayType: string;
  /** Pass authority on when its holder's seat is released (docs/spec/EXTENSIONS.md E11). @default false */
  authorityHandover?: boolean;
  /** Creation time in ms since the epoch (first activity). */
  now: number;
  /** The app whose namespace the room is in (auth enabled), see {@linkcode gameScope}. */
  appId?: string;
  /** The creating connection's client IP key (docs/spec/SERVER.md §1.9), for `max_rooms_per_ip`. */
  creatorIp?: string;
}

/**
 * The namespace of a game's rooms: the game name, prefixed by the app when auth is enabled, so
 * each app has its own rooms (issue 14 item 12: a room of app A is "not found" for app B).
 * Game names cannot contain control characters (docs/spec/PROTOCOL.md §8.1), so the key is unambiguous.
 */
export function gameScope(gameName: string, appId: string | undefined): string {
  return appId === undefined ? gameName : `${appId}\u0001${gameName}`;
}

/** Width of the windows a room's message rate is measured over, ms (docs/spec/EXTENSIONS.md E12). */
export const RATE_WINDOW_MS = 5000;

/** Directory key of a room: rooms are keyed by `(game_name, ROOM_CODE)` (docs/spec/PROTOCOL.md §7.2.2). */
export function roomKey(gameName: string, code: string): string {
  return `${gameName}\u0000${code}`;
}

/**
 * Seats and spectators over every room of one directory, kept current by the member methods of
 * the rooms counted in it (`HomeDirectory.members`, read by each metrics scrape), so reading it
 * never walks the rooms.
 */
export interface MemberTally {
  /** Occupied seats (held seats included). */
  players: number;
  /** Attached spectators. */
  spectators: number;
  /**
   * Rooms per seat count of each game name: `seatsByGame.get(g)[n]` rooms of game `g` have `n`
   * seats (held seats included); a game's histogram ends at its largest seat count and a game
   * without rooms has none (the dashboard's seat percentiles, docs/spec/SERVER.md §6.6).
   */
  seatsByGame: Map<string, number[]>;
  /**
   * Rooms, seats (held ones included) and spectators of each game namespace
   * ({@linkcode Room.scope}); a namespace without rooms has none (the operator's counts per game,
   * docs/spec/EXTENSIONS.md E12).
   */
  byScope: Map<string, GameCounts>;
}

/** Adds `rooms`, `players` and `spectators` to `scope`'s counts in `tally` (negative: takes away). */
function countIn(
  tally: MemberTally,
  scope: string,
  rooms: number,
  players: number,
  spectators: number,
): void {
  let counts = tally.byScope.get(scope);
  if (counts === undefined) {
    counts = { rooms: 0, players: 0, spectators: 0 };
    tally.byScope.set(scope, counts);
  }
  counts.rooms += rooms;
  counts.players += players;
  counts.spectators += spectators;
  if (counts.rooms === 0) tally.byScope.delete(scope);
}

/**
 * Moves one room of `gameName` in `tally`'s histograms from `from` seats to `to` seats; `from`
 * `undefined` counts a room in, `to` `undefined` counts one out.
 */
function moveRoom(
  tally: MemberTally,
  gameName: string,
  from: number | undefined,
  to: number | undefined,
): void {
  let histogram = tally.seatsByGame.get(gameName);
  if (histogram === undefined) {
    histogram = [];
    tally.seatsByGame.set(gameName, histogram);
  }
  if (from !== undefined) histogram[from]!--;
  if (to !== undefined) {
    while (histogram.length <= to) histogram.push(0);
    histogram[to]!++;
  }
  // The histogram ends at the largest seat count a room has.
  while (histogram.length > 0 && histogram[histogram.length - 1] === 0) histogram.pop();
  if (histogram.length === 0) tally.seatsByGame.delete(gameName);
}

/** One room: its seats in seat order, spectators in join order, ready set in readiness order. */
export class Room {
  readonly id: string;
  readonly code: string;
  readonly gameName: string;
  /** {@linkcode gameScope} of the game name and the room's app: the directory's game key. */
  readonly scope: string;
  /** The app whose namespace holds the room (auth enabled), else undefined. */
  readonly appId: string | undefined;
  /** The creating connection's client IP key, if known. */
  readonly creatorIp: string | undefined;
  readonly key: string;
  readonly maxPlayers: number;
  readonly supportsAuthority: boolean;
  readonly relayType: string;
  /** `JoinRoom.authority_handover` of the creator (docs/spec/EXTENSIONS.md E11). */
  readonly authorityHandover: boolean;
  readonly #seats = new Map<string, Seat>();
  readonly #spectators = new Map<ConnId, Spectator>();
  /**
   * {@linkcode Room.membersExcept} answers by excluded member, built on first use and dropped
   * whenever a seat or spectator comes or goes: a broadcast then allocates nothing.
   */
  #except: Map<ConnId, readonly ConnId[]> | undefined;
  /** The directory's tally this room's members are counted in, while it is in a directory. */
  #tally: MemberTally | undefined;
  /** Player ids of ready seats, in the order they became ready. */
  readonly ready = new Set<string>();
  /** The authority holder's player id, or `null`. */
  authority: string | null = null;
  /** Last room activity (docs/spec/PROTOCOL.md §7.12), ms. */
  lastActivity: number;
  /** When the last seat was released, ms; `null` while the room has seats. */
  emptySince: number | null = null;
  /**
   * Seats of this room held for a reconnection (docs/spec/PROTOCOL.md §7.11.2), kept by
   * `Reconnection` as holds begin and end: with {@linkcode Room.unattended} it tells in O(1)
   * whether anyone is still connected.
   */
  heldSeats = 0;
  /** Game messages (text and binary) its members sent: all time, this window, the last one. */
  #messages = { total: 0, window: 0, previous: 0, windowStart: 0 };

  /** Creates an empty room; the creator is seated by the engine. */
  constructor(init: RoomInit) {
    this.id = init.id;
    this.code = init.code;
    this.gameName = init.gameName;
    this.appId = init.appId;
    this.creatorIp = init.creatorIp;
    this.scope = gameScope(init.gameName, init.appId);
    this.key = roomKey(this.scope, init.code);
    this.maxPlayers = init.maxPlayers;
    this.supportsAuthority = init.supportsAuthority;
    this.relayType = init.relayType;
    this.authorityHandover = init.authorityHandover ?? false;
    this.lastActivity = init.now;
    this.#messages.windowStart = init.now;
  }

  /** Counts one game message sent by a member at `now` (ms), for the operator's rates. */
  noteMessage(now: number): void {
    this.#roll(now);
    this.#messages.window++;
    this.#messages.total++;
  }

  /**
   * Game messages sent by members: `total` since creation and `perSecond` over the last full
   * window of {@linkcode RATE_WINDOW_MS} before `now` (0 when the room was quiet in it).
   */
  messageRate(now: number): { total: number; perSecond: number } {
    this.#roll(now);
    return {
      total: this.#messages.total,
      perSecond: this.#messages.previous / (RATE_WINDOW_MS / 1000),
    };
  }

  #roll(now: number): void {
    const messages = this.#messages;
    const elapsed = now - messages.windowStart;
    if (elapsed < RATE_WINDOW_MS) return;
    // One window later the current count becomes the last one; longer ago, both are stale.
    messages.previous = elapsed < 2 * RATE_WINDOW_MS ? messages.window : 0;
    messages.window = 0;
    messages.windowStart = now - (elapsed % RATE_WINDOW_MS);
  }

  /** Seats by player id, in the order they were taken (change with the methods below). */
  get seats(): ReadonlyMap<string, Seat> {
    return this.#seats;
  }

  /** Spectators by connection id, in join order (change with the methods below). */
  get spectators(): ReadonlyMap<ConnId, Spectator> {
    return this.#spectators;
  }

  /** Seats `seat` after the others. */
  addSeat(seat: Seat): void {
    const before = this.#seats.size;
    this.#seats.set(seat.id, seat);
    const after = this.#seats.size;
    if (this.#tally && after !== before) {
      this.#tally.players += after - before;
      countIn(this.#tally, this.scope, 0, after - before, 0);
      moveRoom(this.#tally, this.gameName, before, after);
    }
    this.#except = undefined;
  }

  /** Releases the seat of `playerId`; returns whether it was taken. */
  removeSeat(playerId: string): boolean {
    this.#except = undefined;
    if (!this.#seats.delete(playerId)) return false;
    if (this.#tally) {
      this.#tally.players--;
      countIn(this.#tally, this.scope, 0, -1, 0);
      moveRoom(this.#tally, this.gameName, this.#seats.size + 1, this.#seats.size);
    }
    return true;
  }

  /** Adds `spectator` after the others. */
  addSpectator(spectator: Spectator): void {
    const before = this.#spectators.size;
    this.#spectators.set(spectator.id, spectator);
    if (this.#tally && this.#spectators.size !== before) {
      this.#tally.spectators++;
      countIn(this.#tally, this.scope, 0, 0, 1);
    }
    this.#except = undefined;
  }

  /** Detaches spectator `id`; returns whether it was watching. */
  removeSpectator(id: ConnId): boolean {
    this.#except = undefined;
    if (!this.#spectators.delete(id)) return false;
    if (this.#tally) {
      this.#tally.spectators--;
      countIn(this.#tally, this.scope, 0, 0, -1);
    }
    return true;
  }

  /** Empties the room of seats and spectators (room deletion). */
  clearMembers(): void {
    this.#count(-1);
    this.#seats.clear();
    this.#spectators.clear();
    this.#count(1);
    this.#except = undefined;
  }

  /**
   * Counts this room's members in `tally` from now on (the directory that adds the room), or
   * stops counting them (`undefined`, the directory that removes it): the members it has now move
   * out of the old tally and into the new one.
   */
  countMembersIn(tally: MemberTally | undefined): void {
    this.#count(-1);
    this.#tally = tally;
    this.#count(1);
  }

  #count(sign: 1 | -1): void {
    if (!this.#tally) return;
    this.#tally.players += sign * this.#seats.size;
    this.#tally.spectators += sign * this.#spectators.size;
    const seats = this.#seats.size;
    countIn(this.#tally, this.scope, sign, sign * seats, sign * this.#spectators.size);
    moveRoom(
      this.#tally,
      this.gameName,
      sign < 0 ? seats : undefined,
      sign > 0 ? seats : undefined,
    );
  }

  /**
   * Whether the room is unattended: it has seats, every one of them held (no player connected)
   * and no spectator. A creation at a full cap may reclaim such a room once no empty room under
   * that cap is left (docs/spec/SERVER.md §3.7).
   */
  get unattended(): boolean {
    const seats = this.#seats.size;
    return seats > 0 && this.heldSeats === seats && this.#spectators.size === 0;
  }

  /** The lobby state derived from the seat count and the ready set (docs/spec/PROTOCOL.md §7.4). */
  get lobbyState(): LobbyState {
    if (this.maxPlayers === 1 || this.seats.size < this.maxPlayers) return "waiting";
    return this.ready.size === this.seats.size ? "finalized" : "lobby";
  }

  /** True when a seat (case-insensitively) already has `name`. */
  hasName(name: string): boolean {
    const key = nameKey(name);
    for (const seat of this.seats.values()) if (seat.nameKey === key) return true;
    return false;
  }

  /** Connection ids of every player and spectator. */
  members(): ConnId[] {
    return [...this.seats.keys(), ...this.spectators.keys()];
  }

  /**
   * Ids of every member except `exclude`, seats then spectators. The array is shared until the
   * membership changes: read it, never keep it past that.
   */
  membersExcept(exclude: ConnId): readonly ConnId[] {
    const except = this.#except ??= new Map();
    let out = except.get(exclude);
    if (out === undefined) {
      const ids: ConnId[] = [];
      for (const id of this.#seats.keys()) if (id !== exclude) ids.push(id);
      for (const id of this.#spectators.keys()) if (id !== exclude) ids.push(id);
      out = ids;
      except.set(exclude, out);
    }
    return out;
  }

  /** `PlayerInfo` of one seat (docs/spec/PROTOCOL.md §4.1). */
  playerInfo(seat: Seat): PlayerInfo {
    const info: PlayerInfo = {
      id: seat.id,
      name: seat.name,
      is_authority: this.authority === seat.id,
      is_ready: this.ready.has(seat.id),
      connected_at: seat.connectedAt,
    };
    if (seat.connectionInfo) info.connection_info = seat.connectionInfo;
    return info;
  }

  /** Every seat as `PlayerInfo`, in seat order. */
  players(): PlayerInfo[] {
    return [...this.seats.values()].map((seat) => this.playerInfo(seat));
  }

  /** Spectators as `SpectatorInfo`, in join order: all, or the first `limit`. */
  spectatorInfos(limit = Infinity): SpectatorInfo[] {
    const out: SpectatorInfo[] = [];
    for (const { id, name, connectedAt } of this.spectators.values()) {
      if (out.length >= limit) break;
      out.push({ id, name, connected_at: connectedAt });
    }
    return out;
  }

  /** `GameStarting.peer_connections`: one entry per seat, in seat order (docs/spec/PROTOCOL.md §7.8). */
  peerConnections(): PeerConnectionInfo[] {
    return [...this.seats.values()].map((seat) => {
      const peer: PeerConnectionInfo = {
        player_id: seat.id,
        player_name: seat.name,
        is_authority: this.authority === seat.id,
        relay_type: this.relayType,
      };
      if (seat.connectionInfo) peer.connection_info = seat.connectionInfo;
      return peer;
    });
  }
}

/**
 * `info` without `connection_info`: what spectators get, since they never see players' addresses
 * (issue 14 item 12). Returns `info` itself when it has none.
 */
export function withoutAddress<T extends { connection_info?: unknown }>(info: T): T {
  if (info.connection_info === undefined) return info;
  const { connection_info: _, ...rest } = info;
  return rest as T;
}

/** The 12 fields `RoomJoined` and `Reconnected` share (docs/spec/PROTOCOL.md §6.4, §6.16), for `playerId`. */
export function roomSnapshot(room: Room, playerId: string): RoomSnapshot {
  return {
    room_id: room.id,
    room_code: room.code,
    player_id: playerId,
    game_name: room.gameName,
    max_players: room.maxPlayers,
    supports_authority: room.supportsAuthority,
    current_players: room.players(),
    is_authority: room.authority === playerId,
    lobby_state: room.lobbyState,
    ready_players: [...room.ready],
    relay_type: room.relayType,
    current_spectators: room.spectatorInfos(),
  };
}
