/**
 * The room directory seam (docs/spec/SERVER.md §8.3, §8.4.3): which node homes the room with a given
 * code, the per-game and per-app room caps, and the summaries behind the HTTP lookup and
 * listing (docs/spec/SERVER.md §1.10). In single-instance mode the in-memory directory
 * (`memory.ts`) mirrors the engine's own rooms; in a cluster a Redis directory is shared by
 * every node.
 *
 * Reads happen at the edge (HTTP routes, and in a cluster the resolution of `JoinRoom`,
 * `JoinAsSpectator` and `Reconnect`); writes come out of the engine as `directory` effects
 * (`refresh`, `release`) and are applied by the edge that carries out the effects.
 *
 * @module
 */
import { type DirectoryEntry, SEARCH_SEPARATOR } from "../engine/effects.ts";
import type { Awaitable } from "./awaitable.ts";

export type { DirectoryEntry, RoomSummary } from "../engine/effects.ts";

/** A node name, `<instance_id>@<boot>` (docs/spec/SERVER.md §8.2). */
export type NodeId = string;

/** A directory entry with the node that homes the room. */
export interface DirectoryRecord extends DirectoryEntry {
  /** The room's home node (docs/spec/SERVER.md §8.2). */
  home: NodeId;
}

/**
 * The caps a creation claim enforces (docs/spec/SERVER.md §8.3 "Claim"). The counts leave out
 * rooms whose last refresh said they have no seat (no connected player, no held seat) or are
 * unattended (seats, all of them held, no spectator; {@linkcode holdsCaps}): such rooms stop
 * counting at once, as a single instance reclaims them (issue 14 item 7, docs/spec/SERVER.md
 * §3.7). A freshly claimed room counts until its home refreshes it.
 */
export interface ClaimCaps {
  /** `server.max_rooms_per_game`. */
  maxRoomsPerGame: number;
  /** The app's `max_rooms` (auth enabled, app with a cap). @default undefined (no app cap) */
  maxAppRooms?: number;
  /**
   * `server.max_rooms_per_ip`: rooms with a seat that the claim's `creatorIp` created in the
   * game, across every node. `0` or absent = no cap.
   */
  maxRoomsPerIp?: number;
}

/**
 * Whether a room as last written counts against the game, app and IP caps of a claim
 * ({@linkcode ClaimCaps}): it has a seat and is not unattended (docs/spec/SERVER.md §8.3 "Claim").
 * Rooms without a seat and unattended rooms do not: their home reclaims them when its own
 * caps are reached, as a single instance does (docs/spec/SERVER.md §3.7).
 */
export function holdsCaps(entry: DirectoryEntry): boolean {
  return entry.summary.players > 0 && entry.unattended !== true;
}

/** The answer to a claim. */
export type ClaimResult =
  /** The code is now this room's. */
  | { status: "ok" }
  /** Another room holds the code: join that one instead (`record` names it). */
  | { status: "taken"; record: DirectoryRecord }
  /**
   * A cap is reached: `count` rooms of the game (`scope: "game"`), the app (`"app"`) or the
   * creator's IP in the game (`"ip"`).
   */
  | { status: "capped"; scope: "game" | "app" | "ip"; count: number; limit: number }
  /**
   * The cluster is in maintenance mode: no new rooms (docs/spec/EXTENSIONS.md E12; cluster
   * store only, a single instance's engine refuses them itself).
   */
  | { status: "maintenance" };

/** The answer to a refresh (docs/spec/SERVER.md §8.3 "Refresh"). */
export type RefreshResult = "refreshed" | "created" | "conflict";

/**
 * Which rooms an operator's listing keeps (docs/spec/EXTENSIONS.md E12, `/admin/api/rooms`):
 * `gameName` exactly (as the directory names the game), `query` (lower-case) as
 * {@linkcode matchesQuery} has it, `lobbyState` exactly as the entry's summary has it (`waiting`,
 * `lobby`, `finalized`). Absent fields keep every room.
 */
export interface RoomFilter {
  gameName?: string;
  query?: string;
  lobbyState?: string;
}

/**
 * Whether lower-case `query` finds the room of `record` (docs/spec/EXTENSIONS.md E12): a
 * substring of its code or its game name, or of a seated player's name (all compared
 * lower-cased), or the start of a seated player's id. Player names and ids come from the entry's
 * {@linkcode DirectoryEntry.search} terms (absent in entries written without the console: then
 * the game name of the entry is matched, lower-cased).
 */
export function matchesQuery(record: DirectoryEntry, query: string): boolean {
  if (query === "") return true;
  if (record.roomCode.toLowerCase().includes(query)) return true;
  const search = record.search;
  if (search === undefined) return record.gameName.toLowerCase().includes(query);
  return search.terms.includes(query) || search.ids.includes(SEARCH_SEPARATOR + query);
}

/** Whether `record` passes `filter` ({@linkcode RoomFilter}); `query` must be lower-case. */
export function keptBy(record: DirectoryRecord, filter: RoomFilter | undefined): boolean {
  if (filter === undefined) return true;
  if (filter.gameName !== undefined && record.gameName !== filter.gameName) return false;
  if (filter.lobbyState !== undefined && record.summary.lobby_state !== filter.lobbyState) {
    return false;
  }
  return filter.query === undefined || matchesQuery(record, filter.query);
}

/**
 * What an operator's listing can be sorted by (docs/spec/EXTENSIONS.md E12 `sort=`): creation
 * time, room code, game name, seats (players, held seats included), spectators, lobby state.
 */
export const ROOM_SORT_KEYS = [
  "created",
  "code",
  "game",
  "players",
  "spectators",
  "lobby_state",
] as const;

/** One of {@linkcode ROOM_SORT_KEYS}. */
export type RoomSortKey = typeof ROOM_SORT_KEYS[number];

/** The order of a listing: a key, ascending unless `descending`. */
export interface RoomSort {
  key: RoomSortKey;
  descending: boolean;
}

/** Oldest first: the listing's order when none is asked for. */
export const OLDEST_FIRST: Readonly<RoomSort> = { key: "created", descending: false };

/** Lobby states in the order a room goes through them (the `lobby_state` sort). */
const LOBBY_RANK: Readonly<Record<string, number>> = { waiting: 0, lobby: 1, finalized: 2 };

/** The `lobby_state` sort's rank of a state: its place in a room's life, unknown ones last. */
export function lobbyRank(state: string): number {
  return LOBBY_RANK[state] ?? 3;
}

/**
 * `a` before (< 0), after (> 0) or equal to `b` by Unicode code point, which is how Redis orders
 * the UTF-8 members of a sorted set (UTF-16 order differs only past U+FFFF).
 */
export function compareText(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (U+D800–DFFF) carry code points above U+FFFF: they sort after U+E000–FFFF.
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/**
 * The order of an operator's listing (docs/spec/EXTENSIONS.md E12): by the sort key (creation
 * time, code, game name, players, spectators, lobby state in {@linkcode lobbyRank} order), then
 * by game name and code (for `code`: code, then game name), names by code point. `(game, code)`
 * names one room, so the order is total and pages neither repeat nor skip rooms while the rooms
 * stay as they are. Descending is this order reversed, ties included.
 */
export function compareRooms(sort: RoomSort): (a: DirectoryEntry, b: DirectoryEntry) => number {
  const ascending = (a: DirectoryEntry, b: DirectoryEntry): number => {
    let first: number;
    switch (sort.key) {
      case "created":
        first = a.createdAt - b.createdAt;
        break;
      case "code":
        return compareText(a.roomCode, b.roomCode) || compareText(a.gameName, b.gameName);
      case "game":
        first = 0;
        break;
      case "players":
        first = a.summary.players - b.summary.players;
        break;
      case "spectators":
        first = a.summary.spectators - b.summary.spectators;
        break;
      case "lobby_state":
        first = lobbyRank(a.summary.lobby_state) - lobbyRank(b.summary.lobby_state);
        break;
    }
    return first || compareText(a.gameName, b.gameName) || compareText(a.roomCode, b.roomCode);
  };
  return sort.descending ? (a, b) => ascending(b, a) : ascending;
}

/**
 * Keeps the first `k` items offered, in `compare`'s order: a bounded max-heap, so a page of a
 * listing costs O(n log k) rather than sorting every room, and most rooms cost one comparison.
 */
export class FirstInOrder<T> {
  readonly #k: number;
  readonly #compare: (a: T, b: T) => number;
  /** The k smallest so far; its root is the largest of them (the one to drop next). */
  readonly #heap: T[] = [];

  constructor(k: number, compare: (a: T, b: T) => number) {
    this.#k = k;
    this.#compare = compare;
  }

  /** Considers `item`. */
  offer(item: T): void {
    const heap = this.#heap;
    const compare = this.#compare;
    if (heap.length < this.#k) {
      heap.push(item);
      let i = heap.length - 1;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (compare(heap[i]!, heap[parent]!) <= 0) break;
        [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
        i = parent;
      }
      return;
    }
    if (this.#k === 0 || compare(item, heap[0]!) >= 0) return;
    heap[0] = item;
    for (let i = 0;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) return;
      const right = left + 1;
      const larger = right < heap.length && compare(heap[right]!, heap[left]!) > 0 ? right : left;
      if (compare(heap[larger]!, heap[i]!) <= 0) return;
      [heap[i], heap[larger]] = [heap[larger]!, heap[i]!];
      i = larger;
    }
  }

  /** The items kept, in order. */
  sorted(): T[] {
    return [...this.#heap].sort(this.#compare);
  }
}

/** A page of an operator's listing ({@linkcode RoomDirectory.page}). */
export interface RoomPageRequest {
  /** Matching rooms to pass over first (0-based). */
  offset: number;
  /** Most rooms in the page. */
  limit: number;
  filter?: RoomFilter;
  /** @default OLDEST_FIRST */
  sort?: RoomSort;
  /**
   * Most rooms a filtered page may look at, in the sort order from the first (cluster mode:
   * the Redis cost of a page, docs/spec/EXTENSIONS.md E12). An implementation that stops there
   * says so with `complete: false`; the in-process directory looks at every room and ignores it.
   * @default Infinity
   */
  budget?: number;
}

/** The answer to a {@linkcode RoomPageRequest}. */
export interface RoomPage {
  /** The page's rooms, in order. */
  records: DirectoryRecord[];
  /** More rooms match after these. */
  truncated: boolean;
  /**
   * `false` when the walk stopped at the budget before it found the page and the room after it:
   * rooms further on in the order were not looked at (some may match).
   */
  complete: boolean;
  /** Rooms (index members, in cluster mode) looked at for this page. */
  examined: number;
}

/**
 * Where rooms live and what they look like from outside. Every method answers synchronously in
 * memory and with a Promise in Redis ({@linkcode Awaitable}). Delivery guarantees are per method.
 */
export interface RoomDirectory {
  /**
   * Creates the entry of a new room if its code is free and the caps allow it (one atomic step:
   * caps and code uniqueness are exact). `stale`, when given, is an entry the caller found to
   * name a dead node or a room that no longer exists: it is replaced as if absent.
   * Guarantee: on `ok` the entry is visible to every later `lookup` on any node.
   */
  claim(record: DirectoryRecord, caps: ClaimCaps, stale?: DirectoryRecord): Awaitable<ClaimResult>;
  /**
   * Rewrites the entry of a room its home still holds, with the current summary: `refreshed`
   * when it named this room, `created` when it was absent (caps not checked: a re-registration
   * is never refused), `conflict` when another room holds the code (left alone).
   * Guarantee: best effort; the home repeats it every `T/3` in a cluster.
   */
  refresh(record: DirectoryRecord): Awaitable<RefreshResult>;
  /**
   * Deletes the entry of a deleted room, only if it names `roomId`, and frees its cap slots.
   * Guarantee: idempotent; a lost release is repaired by the entry's expiry (TTL) in a cluster.
   */
  release(gameName: string, roomCode: string, roomId: string): Awaitable<void>;
  /** The entry of `(gameName, roomCode)` (code upper-case), or `undefined`. Read-only. */
  lookup(gameName: string, roomCode: string): Awaitable<DirectoryRecord | undefined>;
  /**
   * Rooms of `gameName` with at least one seat, oldest first, at most `limit`
   * (docs/spec/EXTENSIONS.md E6). Read-only; a room conflicting with the entry of its code is left out.
   */
  list(gameName: string, limit: number): Awaitable<DirectoryRecord[]>;
  /**
   * Every room of every game, empty ones included, oldest first (creation time, game name,
   * code), at most `limit`: the operator's counts per game (docs/spec/EXTENSIONS.md E12),
   * covering every node in a cluster. Read-only.
   */
  all(limit: number): Awaitable<DirectoryRecord[]>;
  /**
   * One page of the operator's listing (docs/spec/EXTENSIONS.md E12): the rooms `filter` keeps,
   * empty ones included, in `sort`'s order ({@linkcode compareRooms}), from the `offset`-th on, at
   * most `limit`, covering every node in a cluster. Read-only apart from dropping index members
   * whose entry has expired.
   */
  page(request: RoomPageRequest): Awaitable<RoomPage>;
}
