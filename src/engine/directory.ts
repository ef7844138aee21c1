/**
 * The rooms homed in this engine, by `(game_name, ROOM_CODE)` (docs/spec/PROTOCOL.md §7.2.2), with the
 * per-game and per-app room counts their caps need (docs/spec/SERVER.md §2.7 `max_rooms_per_game`, §3.3
 * `max_rooms`), the lookup and listing summaries (docs/spec/EXTENSIONS.md E5/E6) and live counts.
 *
 * This is the home's own index, read synchronously by the room rules. The shared directory of a
 * cluster (`coordination/directory.ts`) is written from it through `directory` effects
 * ({@linkcode HomeDirectory.refresh}, {@linkcode directoryRelease}).
 *
 * @module
 */
import { AppRoomCounts } from "./app_auth.ts";
import {
  type DirectoryEntry,
  type Effect,
  type GameCounts,
  type RoomSearch,
  type RoomSummary,
  SEARCH_SEPARATOR,
} from "./effects.ts";
import { type MemberTally, type Room, roomKey } from "./room.ts";

export type { RoomSummary } from "./effects.ts";

/** Live counts for status pages and metrics. */
export interface EngineStats {
  /** Rooms, empty ones awaiting cleanup included. */
  rooms: number;
  /** Occupied seats. */
  players: number;
  /** Spectators attached to rooms. */
  spectators: number;
  /** Registered connections, seated or not. */
  connections: number;
  /** Seats held for a reconnection (docs/spec/PROTOCOL.md §7.11.2). */
  heldSeats: number;
  /** Messages appended to replay buffers since the engine started (docs/spec/SERVER.md §6.3 #37). */
  eventsBuffered: number;
  /** Bytes held in all replay buffers now (`server.event_buffer_total_max_bytes` counts these). */
  replayBufferBytes: number;
  /** Messages dropped from replay buffers for the global byte budget since the start. */
  replayTruncations: number;
  /** Holds ended early for `server.max_held_seats` since the start (SECURITY.md). */
  heldSeatEvictions: number;
  /** Holds ended early for `server.max_held_seats_per_ip` since the start (docs/spec/SERVER.md §4.6). */
  heldSeatAddressEvictions: number;
  /**
   * Unattended rooms now: rooms with seats, every one held, and no spectator (docs/spec/SERVER.md
   * §3.7); a room restored from a state file counts once its attendance has changed since.
   */
  unattendedRooms: number;
  /**
   * Unattended rooms a creation at a full cap reclaimed since the start (docs/spec/SERVER.md
   * §3.7, `signal_fish_rooms_unattended_reclaimed_total`).
   */
  unattendedReclaims: number;
  /** Reconnection token records remembered (valid and recently invalidated). */
  tokenRecords: number;
  /**
   * Entries kept for connections that resumed a seat by `Reconnect` (the identity each carries
   * and the token it presented, docs/spec/PROTOCOL.md §7.11.5): at most two per live connection.
   */
  adoptedIdentities: number;
}

/** The lookup summary of a room (docs/spec/EXTENSIONS.md E5). */
export function roomSummary(room: Room): RoomSummary {
  return {
    room_code: room.code,
    game_name: room.gameName,
    players: room.seats.size,
    max_players: room.maxPlayers,
    spectators: room.spectators.size,
    lobby_state: room.lobbyState,
    supports_authority: room.supportsAuthority,
    relay_type: room.relayType,
    authority_handover: room.authorityHandover,
  };
}

/**
 * The operator's search terms ({@linkcode RoomSearch}) of a room of game namespace `scope` with
 * `seats` (in seat order): with app auth the scope is `<app_id>\u0001<game>`, two terms.
 */
export function roomSearch(
  scope: string,
  seats: Iterable<{ readonly id: string; readonly nameKey: string }>,
): RoomSearch {
  let terms = SEARCH_SEPARATOR + scope.toLowerCase().replaceAll("\u0001", SEARCH_SEPARATOR);
  let ids = "";
  for (const seat of seats) {
    terms += SEARCH_SEPARATOR + seat.nameKey;
    ids += SEARCH_SEPARATOR + seat.id;
  }
  return { ids, terms };
}

/**
 * Which cap a reclaim is for: the game's, the app's, the creating IP's share of a game, or every
 * room of the engine (`server.max_rooms`).
 */
export type CapScope = "game" | "app" | "ip" | "server";

/** Adds `room` to the set of `key` in `sets`. */
function addTo(sets: Map<string, Set<Room>>, key: string, room: Room): void {
  const set = sets.get(key);
  if (set) set.add(room);
  else sets.set(key, new Set([room]));
}

/** Removes `room` from the set of `key` in `sets`. */
function removeFrom(sets: Map<string, Set<Room>>, key: string, room: Room): void {
  const set = sets.get(key);
  if (!set?.delete(room)) return;
  if (set.size === 0) sets.delete(key);
}

/** Key of an IP's share of a game namespace. */
function ipScope(scope: string, ip: string): string {
  return `${scope}\u0000${ip}`;
}

/**
 * Rooms in one reclaimable state (empty, or unattended), in the order they entered it, under
 * every cap they count in: all rooms (`server.max_rooms`), their game namespace, their app and
 * their creator's share of the game. Each change is O(1); Set insertion order is the age.
 */
class CapIndex {
  /** Every room of the index, oldest first. */
  readonly #all = new Set<Room>();
  readonly #byGame = new Map<string, Set<Room>>();
  readonly #byApp = new Map<string, Set<Room>>();
  readonly #byIp = new Map<string, Set<Room>>();

  /** Whether `room` is in the index. */
  has(room: Room): boolean {
    return this.#all.has(room);
  }

  /** Adds `room` as the newest, unless it is in already (it keeps its age then). */
  add(room: Room): void {
    if (this.#all.has(room)) return;
    this.#all.add(room);
    addTo(this.#byGame, room.scope, room);
    if (room.appId !== undefined) addTo(this.#byApp, room.appId, room);
    if (room.creatorIp !== undefined) addTo(this.#byIp, ipScope(room.scope, room.creatorIp), room);
  }

  /** Removes `room`; false when it was not in the index. */
  delete(room: Room): boolean {
    if (!this.#all.delete(room)) return false;
    removeFrom(this.#byGame, room.scope, room);
    if (room.appId !== undefined) removeFrom(this.#byApp, room.appId, room);
    if (room.creatorIp !== undefined) {
      removeFrom(this.#byIp, ipScope(room.scope, room.creatorIp), room);
    }
    return true;
  }

  #set(kind: CapScope, key: string): Set<Room> | undefined {
    if (kind === "server") return this.#all;
    const sets = kind === "game" ? this.#byGame : kind === "app" ? this.#byApp : this.#byIp;
    return sets.get(key);
  }

  /** The room of cap `kind` / `key` that entered longest ago, if any. */
  oldest(kind: CapScope, key: string): Room | undefined {
    return this.#set(kind, key)?.values().next().value;
  }

  /** Rooms of cap `kind` / `key` in the index. */
  count(kind: CapScope, key: string): number {
    return this.#set(kind, key)?.size ?? 0;
  }

  /** Every room of the index, oldest first. */
  rooms(): IterableIterator<Room> {
    return this.#all.values();
  }
}

/**
 * Rooms of this engine, in creation order, with their counts. Games are keyed by their
 * {@linkcode Room.scope} (the game name, prefixed by the app when auth is enabled).
 *
 * Rooms without seats (no connected player, no held seat) are also indexed by when they became
 * empty, per game, app and creator IP: a creation that finds a cap reached deletes the oldest
 * such room of that cap first ({@linkcode HomeDirectory.oldestEmpty}), so empty rooms never keep
 * a cap full (issue 14 item 7). Unattended rooms ({@linkcode Room.unattended}: seats, all of them
 * held, and no spectator) are indexed the same way by when they became unattended
 * ({@linkcode HomeDirectory.oldestUnattended}): a cap with no empty room left gives up the oldest
 * of them next (docs/spec/SERVER.md §3.7).
 */
export class HomeDirectory {
  readonly #rooms = new Map<string, Room>();
  /** The same rooms by room id (local-first `Reconnect`, docs/spec/SERVER.md §8.4.3). */
  readonly #byId = new Map<string, Room>();
  /** The rooms of each game namespace, oldest first: its cap count and its listing. */
  readonly #roomsByGame = new Map<string, Set<Room>>();
  readonly #members: MemberTally = {
    players: 0,
    spectators: 0,
    seatsByGame: new Map(),
    byScope: new Map(),
  };
  readonly #roomsPerIp = new Map<string, number>();
  readonly #appRooms = new AppRoomCounts();
  /** Rooms without a seat, in the order they became empty. */
  readonly #empty = new CapIndex();
  /** Unattended rooms ({@linkcode Room.unattended}), in the order they became unattended. */
  readonly #unattended = new CapIndex();
  /** Creation time and app of each room, for its directory entry. */
  readonly #meta = new Map<string, { createdAt: number; appId?: string }>();
  /** Whether entries carry the operator's search terms (`EngineOptions.operatorSearch`). */
  readonly #search: boolean;

  /** An empty directory; with `operatorSearch`, its entries carry the operator's search terms. */
  constructor(options: { operatorSearch?: boolean } = {}) {
    this.#search = options.operatorSearch ?? false;
  }

  /** Number of rooms, empty ones awaiting cleanup included. */
  get size(): number {
    return this.#rooms.size;
  }

  /** The room with `code` (upper-case) in game namespace `scope` ({@linkcode gameScope}). */
  get(scope: string, code: string): Room | undefined {
    return this.#rooms.get(roomKey(scope, code));
  }

  /** The room with id `roomId`, if it is in this directory. */
  byId(roomId: string): Room | undefined {
    return this.#byId.get(roomId);
  }

  /** True when game namespace `scope` has a room with `code`. */
  has(scope: string, code: string): boolean {
    return this.#rooms.has(roomKey(scope, code));
  }

  /** Every room, oldest first. */
  rooms(): IterableIterator<Room> {
    return this.#rooms.values();
  }

  /** Rooms of game namespace `scope`, empty ones included (the `max_rooms_per_game` count). */
  gameCount(scope: string): number {
    return this.#roomsByGame.get(scope)?.size ?? 0;
  }

  /** Rooms of game namespace `scope` created from client IP key `ip` (`max_rooms_per_ip`). */
  ipCount(scope: string, ip: string): number {
    return this.#roomsPerIp.get(ipScope(scope, ip)) ?? 0;
  }

  /**
   * The room of cap `kind` / `key` that has been empty longest, if any is empty (`key` is not
   * read for `"server"`).
   */
  oldestEmpty(kind: CapScope, key: string): Room | undefined {
    return this.#empty.oldest(kind, key);
  }

  /**
   * The room of cap `kind` / `key` that has been unattended longest ({@linkcode Room.unattended}),
   * if any is (`key` is not read for `"server"`).
   */
  oldestUnattended(kind: CapScope, key: string): Room | undefined {
    return this.#unattended.oldest(kind, key);
  }

  /**
   * Rooms of cap `kind` / `key` a creation may reclaim: the empty and the unattended ones (`key`
   * is not read for `"server"`). O(1).
   */
  reclaimable(kind: CapScope, key: string): number {
    return this.#empty.count(kind, key) + this.#unattended.count(kind, key);
  }

  /** Unattended rooms, the one unattended longest first (invariant checks and tests). */
  unattendedRooms(): IterableIterator<Room> {
    return this.#unattended.rooms();
  }

  /** Number of unattended rooms. */
  get unattendedCount(): number {
    return this.#unattended.count("server", "");
  }

  /** Key of `ip`'s share of game namespace `scope`, for {@linkcode oldestEmpty} with `"ip"`. */
  ipKey(scope: string, ip: string): string {
    return ipScope(scope, ip);
  }

  /** Records that `room` lost its last seat (it may be reclaimed from now on). */
  markEmpty(room: Room): void {
    if (!this.#rooms.has(room.key)) return;
    this.#empty.add(room);
  }

  /** Records that `room` has a seat again. */
  markOccupied(room: Room): void {
    this.#empty.delete(room);
  }

  /**
   * Brings `room`'s entry in the unattended index up to date after its seats, holds or spectators
   * changed: a room that became unattended is added as the newest, one that has a connected
   * member again (or no seat) leaves; one whose state did not change keeps its place, so its age
   * is the time it became unattended. O(1). Returns whether the state changed (a cluster's
   * directory counts unattended rooms apart, docs/spec/SERVER.md §8.3).
   */
  noteAttendance(room: Room): boolean {
    if (room.unattended) {
      if (this.#unattended.has(room) || this.#rooms.get(room.key) !== room) return false;
      this.#unattended.add(room);
      return true;
    }
    return this.#unattended.delete(room);
  }

  /** Rooms created by connections of `appId` that still exist (the `max_rooms` count). */
  appCount(appId: string): number {
    return this.#appRooms.count(appId);
  }

  /** Adds a new room created at `now` (ms) by a connection of `appId`, if any. */
  add(room: Room, appId: string | undefined, now: number): void {
    this.#rooms.set(room.key, room);
    this.#byId.set(room.id, room);
    if (appId !== undefined) this.#appRooms.add(appId, room.key);
    addTo(this.#roomsByGame, room.scope, room);
    room.countMembersIn(this.#members);
    if (room.creatorIp !== undefined) {
      const key = ipScope(room.scope, room.creatorIp);
      this.#roomsPerIp.set(key, (this.#roomsPerIp.get(key) ?? 0) + 1);
    }
    this.#meta.set(room.key, { createdAt: now, appId });
  }

  /** Creation time (ms) and creator's app of a room of this directory. */
  meta(room: Room): { createdAt: number; appId?: string } {
    return this.#meta.get(room.key) ?? { createdAt: 0 };
  }

  /** Removes a deleted room and its counts. */
  remove(room: Room): void {
    this.#rooms.delete(room.key);
    if (this.#byId.get(room.id) === room) this.#byId.delete(room.id);
    this.#appRooms.remove(room.key);
    this.#meta.delete(room.key);
    this.markOccupied(room);
    this.#unattended.delete(room);
    removeFrom(this.#roomsByGame, room.scope, room);
    room.countMembersIn(undefined);
    if (room.creatorIp !== undefined) {
      const key = ipScope(room.scope, room.creatorIp);
      const ipLeft = (this.#roomsPerIp.get(key) ?? 0) - 1;
      if (ipLeft > 0) this.#roomsPerIp.set(key, ipLeft);
      else this.#roomsPerIp.delete(key);
    }
  }

  /**
   * The lookup summary of a room of game namespace `scope` ({@linkcode gameScope}), or
   * `undefined` (docs/spec/EXTENSIONS.md E5). `code` must be upper-case.
   */
  lookup(scope: string, code: string): RoomSummary | undefined {
    const room = this.get(scope, code);
    return room && roomSummary(room);
  }

  /**
   * Rooms of a game with at least one seat, oldest first, at most `limit` (docs/spec/EXTENSIONS.md
   * E6). Walks only that game's rooms (at most `server.max_rooms_per_game`), not every room.
   */
  list(scope: string, limit: number): RoomSummary[] {
    const out: RoomSummary[] = [];
    for (const room of this.#roomsByGame.get(scope) ?? []) {
      if (out.length >= limit) break;
      if (room.seats.size > 0) out.push(roomSummary(room));
    }
    return out;
  }

  /** Seats and spectators over every room (kept as members come and go: no walk). */
  members(): { players: number; spectators: number } {
    return { players: this.#members.players, spectators: this.#members.spectators };
  }

  /**
   * Rooms (empty ones included), seats (held ones included) and spectators of each game
   * namespace ({@linkcode Room.scope}, the directory's game name), kept as rooms and members come
   * and go: the operator's counts per game (docs/spec/EXTENSIONS.md E12) in a time that grows with
   * games, not rooms. The map and its values are live: copy to keep.
   */
  gameCounts(): ReadonlyMap<string, Readonly<GameCounts>> {
    return this.#members.byScope;
  }

  /**
   * Rooms per seat count (held seats included) of each game name (`histogram[n]` rooms with `n`
   * seats), kept as rooms and seats come and go: the dashboard's refresh reads them in a time
   * that grows with games, not rooms (docs/spec/SERVER.md §6.6). The arrays are live: copy to keep.
   */
  seatHistograms(): { gameName: string; histogram: readonly number[] }[] {
    const out: { gameName: string; histogram: readonly number[] }[] = [];
    for (const [gameName, histogram] of this.#members.seatsByGame) {
      out.push({ gameName, histogram });
    }
    return out;
  }

  /**
   * The `directory` effect that publishes `room`'s current summary (after creation or a change
   * of seats, spectators or lobby state; docs/spec/SERVER.md §8.3 "refreshed when the summary changes").
   */
  refresh(room: Room): Effect {
    const meta = this.#meta.get(room.key);
    const entry: DirectoryEntry = {
      roomId: room.id,
      // The namespace, so rooms of different apps never share an entry (issue 14 item 12);
      // `summary.game_name` is the plain game name.
      gameName: room.scope,
      roomCode: room.code,
      createdAt: meta?.createdAt ?? 0,
      summary: roomSummary(room),
    };
    if (meta?.appId !== undefined) entry.appId = meta.appId;
    if (room.creatorIp !== undefined) entry.creatorIp = room.creatorIp;
    if (this.#unattended.has(room)) entry.unattended = true;
    if (this.#search) entry.search = roomSearch(room.scope, room.seats.values());
    return { kind: "directory", op: "refresh", entry };
  }
}

/** The `directory` effect that releases a deleted room's entry (docs/spec/SERVER.md §8.3 "Release"). */
export function directoryRelease(room: Room): Effect {
  return {
    kind: "directory",
    op: "release",
    gameName: room.scope,
    roomCode: room.code,
    roomId: room.id,
  };
}
