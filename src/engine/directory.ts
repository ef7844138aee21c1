/**
 * The rooms homed in this engine, by `(game_name, ROOM_CODE)` (PROTOCOL.md §7.2.2), with the
 * per-game and per-app room counts their caps need (SERVER.md §2.7 `max_rooms_per_game`, §3.3
 * `max_rooms`), the lookup and listing summaries (EXTENSIONS.md E5/E6) and live counts.
 *
 * This is the home's own index, read synchronously by the room rules. The shared directory of a
 * cluster (`coordination/directory.ts`) is written from it through `directory` effects
 * ({@linkcode HomeDirectory.refresh}, {@linkcode directoryRelease}).
 *
 * @module
 */
import { AppRoomCounts } from "./app_auth.ts";
import type { DirectoryEntry, Effect, RoomSummary } from "./effects.ts";
import { type Room, roomKey } from "./room.ts";

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
  /** Seats held for a reconnection (PROTOCOL.md §7.11.2). */
  heldSeats: number;
  /** Messages appended to replay buffers since the engine started (SERVER.md §6.3 #37). */
  eventsBuffered: number;
}

/** The lookup summary of a room (EXTENSIONS.md E5). */
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

/** Rooms of this engine, in creation order, with their counts. */
export class HomeDirectory {
  readonly #rooms = new Map<string, Room>();
  readonly #roomsPerGame = new Map<string, number>();
  readonly #appRooms = new AppRoomCounts();
  /** Creation time and app of each room, for its directory entry. */
  readonly #meta = new Map<string, { createdAt: number; appId?: string }>();

  /** Number of rooms, empty ones awaiting cleanup included. */
  get size(): number {
    return this.#rooms.size;
  }

  /** The room with `code` (upper-case) in game `gameName`, if any. */
  get(gameName: string, code: string): Room | undefined {
    return this.#rooms.get(roomKey(gameName, code));
  }

  /** True when game `gameName` has a room with `code`. */
  has(gameName: string, code: string): boolean {
    return this.#rooms.has(roomKey(gameName, code));
  }

  /** Every room, oldest first. */
  rooms(): IterableIterator<Room> {
    return this.#rooms.values();
  }

  /** Rooms of `gameName`, empty ones included (the `max_rooms_per_game` count). */
  gameCount(gameName: string): number {
    return this.#roomsPerGame.get(gameName) ?? 0;
  }

  /** Rooms created by connections of `appId` that still exist (the `max_rooms` count). */
  appCount(appId: string): number {
    return this.#appRooms.count(appId);
  }

  /** Adds a new room created at `now` (ms) by a connection of `appId`, if any. */
  add(room: Room, appId: string | undefined, now: number): void {
    this.#rooms.set(room.key, room);
    if (appId !== undefined) this.#appRooms.add(appId, room.key);
    this.#roomsPerGame.set(room.gameName, this.gameCount(room.gameName) + 1);
    this.#meta.set(room.key, { createdAt: now, appId });
  }

  /** Creation time (ms) and creator's app of a room of this directory. */
  meta(room: Room): { createdAt: number; appId?: string } {
    return this.#meta.get(room.key) ?? { createdAt: 0 };
  }

  /** Removes a deleted room and its counts. */
  remove(room: Room): void {
    this.#rooms.delete(room.key);
    this.#appRooms.remove(room.key);
    this.#meta.delete(room.key);
    const left = this.gameCount(room.gameName) - 1;
    if (left > 0) this.#roomsPerGame.set(room.gameName, left);
    else this.#roomsPerGame.delete(room.gameName);
  }

  /** The lookup summary of a room, or `undefined` (EXTENSIONS.md E5). `code` must be upper-case. */
  lookup(gameName: string, code: string): RoomSummary | undefined {
    const room = this.get(gameName, code);
    return room && roomSummary(room);
  }

  /** Rooms of a game with at least one seat, oldest first, at most `limit` (EXTENSIONS.md E6). */
  list(gameName: string, limit: number): RoomSummary[] {
    const out: RoomSummary[] = [];
    for (const room of this.#rooms.values()) {
      if (out.length >= limit) break;
      if (room.gameName === gameName && room.seats.size > 0) out.push(roomSummary(room));
    }
    return out;
  }

  /** Seats and spectators over every room. */
  members(): { players: number; spectators: number } {
    let players = 0;
    let spectators = 0;
    for (const room of this.#rooms.values()) {
      players += room.seats.size;
      spectators += room.spectators.size;
    }
    return { players, spectators };
  }

  /** Game name and seat count (held seats included) of every room, oldest first (metrics). */
  seatCounts(): { gameName: string; seats: number }[] {
    return [...this.#rooms.values()].map((room) => ({
      gameName: room.gameName,
      seats: room.seats.size,
    }));
  }

  /**
   * The `directory` effect that publishes `room`'s current summary (after creation or a change
   * of seats, spectators or lobby state; SERVER.md §8.3 "refreshed when the summary changes").
   */
  refresh(room: Room): Effect {
    const meta = this.#meta.get(room.key);
    const entry: DirectoryEntry = {
      roomId: room.id,
      gameName: room.gameName,
      roomCode: room.code,
      createdAt: meta?.createdAt ?? 0,
      summary: roomSummary(room),
    };
    if (meta?.appId !== undefined) entry.appId = meta.appId;
    return { kind: "directory", op: "refresh", entry };
  }
}

/** The `directory` effect that releases a deleted room's entry (SERVER.md §8.3 "Release"). */
export function directoryRelease(room: Room): Effect {
  return {
    kind: "directory",
    op: "release",
    gameName: room.gameName,
    roomCode: room.code,
    roomId: room.id,
  };
}
