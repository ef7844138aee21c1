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
import type { DirectoryEntry } from "../engine/effects.ts";
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
 * The caps a creation claim enforces (docs/spec/SERVER.md §8.3 "Claim"). The game and per-IP
 * counts leave out rooms whose last refresh said they have no seat (no connected player, no
 * held seat): such rooms stop counting at once, as a single instance reclaims them (issue 14
 * item 7). A freshly claimed room counts until its home refreshes it.
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
 * `gameName` exactly (as the directory names the game), `query` as a case-insensitive substring
 * of the room code or the game name, `lobbyState` exactly as the entry's summary has it
 * (`waiting`, `lobby`, `finalized`). Absent fields keep every room.
 */
export interface RoomFilter {
  gameName?: string;
  query?: string;
  lobbyState?: string;
}

/** Whether `record` passes `filter` ({@linkcode RoomFilter}); `query` must be lower-case. */
export function keptBy(record: DirectoryRecord, filter: RoomFilter | undefined): boolean {
  if (filter === undefined) return true;
  if (filter.gameName !== undefined && record.gameName !== filter.gameName) return false;
  if (filter.lobbyState !== undefined && record.summary.lobby_state !== filter.lobbyState) {
    return false;
  }
  const query = filter.query;
  return query === undefined || query === "" ||
    record.roomCode.toLowerCase().includes(query) ||
    record.gameName.toLowerCase().includes(query);
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
   * Every room of every game that `filter` keeps, empty ones included, oldest first (creation
   * time, game name, code), at most `limit` (the filter applies before the limit): the
   * operator's listing (docs/spec/EXTENSIONS.md E12), covering every node in a cluster. Read-only.
   */
  all(limit: number, filter?: RoomFilter): Awaitable<DirectoryRecord[]>;
}
