/**
 * Key and channel names of docs/spec/SERVER.md §8.3. Every name starts with `cluster.key_prefix`; the keys
 * of one game share the Redis Cluster hash tag `{g}` (the first 16 hex digits of the SHA-256 of
 * the UTF-8 game name, so braces in a game name cannot break the tag, §8.8).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { RoomSortKey } from "../coordination/directory.ts";
import type { NodeId, OperatorChannel } from "./types.ts";

/** `{` + 16 hex digits of SHA-256(gameName) + `}`. */
export function gameTag(gameName: string): string {
  return `{${createHash("sha256").update(gameName, "utf8").digest("hex").slice(0, 16)}}`;
}

/** The key builder of one prefix. */
export class Keys {
  readonly prefix: string;

  /** @param prefix `cluster.key_prefix` (contains no braces, docs/spec/SERVER.md §8.8) */
  constructor(prefix: string) {
    this.prefix = prefix;
  }

  /** `room:{g}:<game_name>:<CODE>`. */
  room(gameName: string, roomCode: string): string {
    return `${this.prefix}room:${gameTag(gameName)}:${gameName}:${roomCode}`;
  }

  /** `room-id:<room_id>`. */
  roomId(roomId: string): string {
    return `${this.prefix}room-id:${roomId}`;
  }

  /** `game-rooms:{g}:<game_name>` (sorted set code → expiry ms). */
  gameRooms(gameName: string): string {
    return `${this.prefix}game-rooms:${gameTag(gameName)}:${gameName}`;
  }

  /**
   * `game-order:{g}:<game_name>` (sorted set code → creation time ms: the listing order,
   * docs/spec/SERVER.md §8.3).
   */
  gameOrder(gameName: string): string {
    return `${this.prefix}game-order:${gameTag(gameName)}:${gameName}`;
  }

  /**
   * `rooms-by:<key>` (sorted set, every room: the operator's listing sorted by `key`,
   * docs/spec/SERVER.md §8.3). Scores: creation time (`created`), players, spectators, lobby
   * rank (`lobby_state`) or 0 (`code`, `game`); members {@linkcode Keys.sortMember} (for `code`
   * {@linkcode Keys.codeSortMember}), so rooms with equal scores are ordered by game and code.
   */
  roomsBy(key: RoomSortKey): string {
    return `${this.prefix}rooms-by:${key}`;
  }

  /**
   * A room's member of the `rooms-by:` sets other than `code`: `<game_name> NUL <CODE> NUL {g}`
   * (game names and codes hold no NUL; the tag last, for the room's key).
   */
  sortMember(gameName: string, roomCode: string): string {
    return `${gameName}\u0000${roomCode}\u0000${gameTag(gameName)}`;
  }

  /** A room's member of `rooms-by:code`: `<CODE> NUL <game_name> NUL {g}`. */
  codeSortMember(gameName: string, roomCode: string): string {
    return `${roomCode}\u0000${gameName}\u0000${gameTag(gameName)}`;
  }

  /** `game-empty:{g}:<game_name>` (sorted set code → expiry ms: rooms without a seat). */
  gameEmpty(gameName: string): string {
    return `${this.prefix}game-empty:${gameTag(gameName)}:${gameName}`;
  }

  /**
   * `ip-rooms:{g}:<len>:<game_name>:` (sorted set code → expiry ms: rooms with a seat created
   * from one client IP key); the IP key is appended. `len` is the game name's length in UTF-16
   * units, so a `:` in a game name cannot make two (game, IP) pairs share a key.
   */
  ipRoomsPrefix(gameName: string): string {
    return `${this.prefix}ip-rooms:${gameTag(gameName)}:${gameName.length}:${gameName}:`;
  }

  /** {@linkcode Keys.ipRoomsPrefix} + `ip`. */
  ipRooms(gameName: string, ip: string): string {
    return this.ipRoomsPrefix(gameName) + ip;
  }

  /** `app-rooms:<app_id>` (sorted set room id → expiry ms). */
  appRooms(appId: string): string {
    return `${this.prefix}app-rooms:${appId}`;
  }

  /** `app-empty:<app_id>` (sorted set room id → expiry ms: the app's rooms without a seat). */
  appEmpty(appId: string): string {
    return `${this.prefix}app-empty:${appId}`;
  }

  /** `bucket:<kind>:<key>`. */
  bucket(kind: string, key: string): string {
    return `${this.prefix}bucket:${kind}:${key}`;
  }

  /**
   * `maintenance`: present while the cluster is in maintenance mode (docs/spec/EXTENSIONS.md
   * E12).
   */
  maintenance(): string {
    return `${this.prefix}maintenance`;
  }

  /** `instance:<node>`. */
  instance(node: NodeId): string {
    return `${this.prefix}instance:${node}`;
  }

  /**
   * `instances`: the index of the liveness keys, a sorted set node → expiry (ms) of its
   * `instance:` key as the writer's clock had it (docs/spec/SERVER.md §8.3). Not matched by
   * `instance:*`, so versions that scan for the liveness keys never read it.
   */
  instances(): string {
    return `${this.prefix}instances`;
  }

  /**
   * `instance-games:<node>`: the rooms, players and spectators per game of the rooms homed on
   * `node` (the operator's counts per game, docs/spec/EXTENSIONS.md E12).
   */
  instanceGames(node: NodeId): string {
    return `${this.prefix}instance-games:${node}`;
  }

  /** `epoch`. */
  epoch(): string {
    return `${this.prefix}epoch`;
  }

  /** Channel `inst:<node>`. */
  channel(node: NodeId): string {
    return `${this.prefix}inst:${node}`;
  }

  /**
   * Channel `operator:watch` or `operator:events`: the operator console's cluster-wide event
   * stream (docs/spec/EXTENSIONS.md E12, docs/spec/SERVER.md §8.3).
   */
  operatorChannel(kind: OperatorChannel): string {
    return `${this.prefix}operator:${kind}`;
  }
}
