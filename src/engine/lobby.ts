/**
 * The lobby (docs/spec/PROTOCOL.md §7.4) and connection info (§7.8): readiness, `LobbyStateChanged`,
 * `GameStarting` once every seat is ready, and the connection info players hand each other. Pure
 * functions over a {@linkcode Room}; the home's room logic (`rooms.ts`) and the engine call them.
 *
 * @module
 */
import type { ConnectionInfo } from "../protocol/messages.ts";
import { utf8Length } from "../protocol/utf8.ts";
import type { HomeDirectory } from "./directory.ts";
import { type ConnId, type Effect, error, send } from "./effects.ts";
import { type Room, withoutAddress } from "./room.ts";
import type { Session } from "./sessions.ts";

/**
 * `GameStarting` (docs/spec/PROTOCOL.md §7.8) to `players` with the peers' connection info, and to the
 * room's spectators without it: spectators never see players' addresses (SECURITY.md).
 */
export function gameStarting(room: Room, players: ConnId[]): Effect[] {
  const peers = room.peerConnections();
  const effects: Effect[] = [
    send(players, { type: "GameStarting", data: { peer_connections: peers } }),
  ];
  const spectators = [...room.spectators.keys()];
  if (spectators.length > 0) {
    effects.push(send(spectators, {
      type: "GameStarting",
      data: { peer_connections: peers.map(withoutAddress) },
    }));
  }
  return effects;
}

/** `LobbyStateChanged` to every member of `room` with its current state (docs/spec/PROTOCOL.md §7.4). */
export function lobbyChanged(room: Room): Effect {
  const state = room.lobbyState;
  return send(room.members(), {
    type: "LobbyStateChanged",
    data: {
      lobby_state: state,
      ready_players: [...room.ready],
      all_ready: state === "finalized",
    },
  });
}

/**
 * `PlayerReady` from `session`: toggles readiness, tells every member, and sends `GameStarting`
 * when the lobby becomes finalized; a lobby state change refreshes the room's `directory` entry.
 * Spectators get `Error{SPECTATOR_NOT_ALLOWED}`, players in no room `Error{NOT_IN_ROOM}`.
 */
export function playerReady(session: Session, directory: HomeDirectory, now: number): Effect[] {
  if (session.watching) {
    return [
      error(session.playerId, "Spectators cannot change ready status", "SPECTATOR_NOT_ALLOWED"),
    ];
  }
  const room = session.playing;
  if (!room) return [error(session.playerId, "Not in a room", "NOT_IN_ROOM")];
  room.lastActivity = now;
  const before = room.lobbyState;
  if (!room.ready.delete(session.playerId)) room.ready.add(session.playerId);
  const effects = [lobbyChanged(room)];
  if (room.lobbyState === "finalized" && before !== "finalized") {
    effects.push(...gameStarting(room, [...room.seats.keys()]));
  }
  if (room.lobbyState !== before) effects.push(directory.refresh(room));
  return effects;
}

/** `protocol.max_connection_info_bytes` by default (docs/spec/PROTOCOL.md §7.8 note). */
export const DEFAULT_MAX_CONNECTION_INFO_BYTES = 4096;

/**
 * `ProvideConnectionInfo` from `session`: stored silently on its seat and shown in later
 * snapshots (docs/spec/PROTOCOL.md §7.8); spectators get `Error{SPECTATOR_NOT_ALLOWED}`. A value
 * whose JSON form (as it is sent back: every player gets every seat's value in each
 * `GameStarting` and snapshot) is longer than `maxBytes` UTF-8 bytes gets
 * `Error{INVALID_INPUT}` and the stored value stays.
 */
export function provideConnectionInfo(
  session: Session,
  info: ConnectionInfo,
  maxBytes: number,
  now: number,
): Effect[] {
  if (session.watching) {
    return [
      error(
        session.playerId,
        "Spectators cannot provide connection info",
        "SPECTATOR_NOT_ALLOWED",
      ),
    ];
  }
  const room = session.playing;
  if (!room) return [error(session.playerId, "Not in a room", "NOT_IN_ROOM")];
  room.lastActivity = now;
  const size = utf8Length(JSON.stringify(info));
  if (size > maxBytes) {
    return [
      error(
        session.playerId,
        `Connection info too large (${size} bytes, at most ${maxBytes})`,
        "INVALID_INPUT",
      ),
    ];
  }
  room.seats.get(session.playerId)!.connectionInfo = info;
  return [];
}
