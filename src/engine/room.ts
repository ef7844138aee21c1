/**
 * Room state: seats, spectators, the ready set, authority and activity times, plus the snapshot
 * builders of PROTOCOL.md §4. Pure data; all rules live in `engine.ts`.
 *
 * @module
 */
import type {
  ConnectionInfo,
  LobbyState,
  PeerConnectionInfo,
  PlayerInfo,
  SpectatorInfo,
} from "../protocol/messages.ts";
import { nameKey } from "./validation.ts";

/** A connection id: a UUIDv4 assigned at accept time (PROTOCOL.md §1.2). */
export type ConnId = string;

/** A player's place in a room (PROTOCOL.md §0 "seat"). Its id is the player id. */
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

/** A spectator of a room (PROTOCOL.md §7.9). */
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
  /** Creation time in ms since the epoch (first activity). */
  now: number;
}

/** Directory key of a room: rooms are keyed by `(game_name, ROOM_CODE)` (PROTOCOL.md §7.2.2). */
export function roomKey(gameName: string, code: string): string {
  return `${gameName}\u0000${code}`;
}

/** One room: its seats in seat order, spectators in join order, ready set in readiness order. */
export class Room {
  readonly id: string;
  readonly code: string;
  readonly gameName: string;
  readonly key: string;
  readonly maxPlayers: number;
  readonly supportsAuthority: boolean;
  readonly relayType: string;
  /** Seats by player id, in the order they were taken. */
  readonly seats = new Map<string, Seat>();
  /** Spectators by connection id, in join order. */
  readonly spectators = new Map<ConnId, Spectator>();
  /** Player ids of ready seats, in the order they became ready. */
  readonly ready = new Set<string>();
  /** The authority holder's player id, or `null`. */
  authority: string | null = null;
  /** Last room activity (PROTOCOL.md §7.12), ms. */
  lastActivity: number;
  /** When the last seat was released, ms; `null` while the room has seats. */
  emptySince: number | null = null;

  /** Creates an empty room; the creator is seated by the engine. */
  constructor(init: RoomInit) {
    this.id = init.id;
    this.code = init.code;
    this.gameName = init.gameName;
    this.key = roomKey(init.gameName, init.code);
    this.maxPlayers = init.maxPlayers;
    this.supportsAuthority = init.supportsAuthority;
    this.relayType = init.relayType;
    this.lastActivity = init.now;
  }

  /** The lobby state derived from the seat count and the ready set (PROTOCOL.md §7.4). */
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

  /** Connection ids of every member except `exclude`. */
  membersExcept(exclude: ConnId): ConnId[] {
    const out: ConnId[] = [];
    for (const id of this.seats.keys()) if (id !== exclude) out.push(id);
    for (const id of this.spectators.keys()) if (id !== exclude) out.push(id);
    return out;
  }

  /** `PlayerInfo` of one seat (PROTOCOL.md §4.1). */
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

  /** Every spectator as `SpectatorInfo`, in join order. */
  spectatorInfos(): SpectatorInfo[] {
    return [...this.spectators.values()].map(({ id, name, connectedAt }) => ({
      id,
      name,
      connected_at: connectedAt,
    }));
  }

  /** `GameStarting.peer_connections`: one entry per seat, in seat order (PROTOCOL.md §7.8). */
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
