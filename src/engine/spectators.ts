/**
 * Spectators (docs/spec/PROTOCOL.md §7.9): `JoinAsSpectator` (with switching rooms), `LeaveSpectator`,
 * and detaching a spectator whose connection closed.
 *
 * @module
 */
import type { ClientData } from "../protocol/messages.ts";
import { gameScope, withoutAddress } from "./room.ts";
import type { HomeDirectory } from "./directory.ts";
import { type Effect, error, event, send, spectatorJoinFailed } from "./effects.ts";
import type { EngineOptions } from "./options.ts";
import type { Session, Sessions } from "./sessions.ts";
import { checkGameName, checkPlayerName, checkRoomCode } from "./validation.ts";

/**
 * Most entries of `current_spectators` in `NewSpectatorJoined` and `SpectatorDisconnected`, the
 * messages every member gets for every spectator arrival or departure (issue 14 item 4): the
 * first this many spectators in join order, so each arrival costs every member a bounded
 * message instead of the whole list. `SpectatorJoined` (to the new spectator only) and
 * `SpectatorLeft` still carry the whole list. README "Spectators" documents the deviation.
 */
export const SPECTATOR_LIST_LIMIT = 16;

/** The spectator rules of one engine. */
export class Spectators {
  readonly #options: EngineOptions;
  readonly #directory: HomeDirectory;
  readonly #sessions: Sessions;

  /** Spectator rules over the rooms of `directory`. */
  constructor(options: EngineOptions, directory: HomeDirectory, sessions: Sessions) {
    this.#options = options;
    this.#directory = directory;
    this.#sessions = sessions;
  }

  /** `JoinAsSpectator` (docs/spec/PROTOCOL.md §7.9): checks in the spec's order, then attach or switch. */
  join(session: Session, data: ClientData<"JoinAsSpectator">, now: number): Effect[] {
    const options = this.#options;
    const id = session.playerId;
    const limited = this.#sessions.takeToken(session, "join", now);
    if (limited) {
      return [spectatorJoinFailed(id, limited.reason, "RATE_LIMIT_EXCEEDED"), limited.event];
    }
    const gameNameProblem = checkGameName(data.game_name, options.maxGameNameLength);
    if (gameNameProblem) return [spectatorJoinFailed(id, gameNameProblem, "INVALID_GAME_NAME")];
    const nameProblem = checkPlayerName(data.spectator_name, options.nameRules);
    if (nameProblem) return [spectatorJoinFailed(id, nameProblem, "INVALID_PLAYER_NAME")];
    if (session.playing) return [spectatorJoinFailed(id, "Already in a room", "ALREADY_IN_ROOM")];
    const codeProblem = checkRoomCode(data.room_code, options.roomCodeLength);
    if (codeProblem) return [spectatorJoinFailed(id, codeProblem, "INVALID_ROOM_CODE")];
    // Rooms of other apps are "not found" (issue 14 item 12).
    const scope = gameScope(data.game_name, session.app?.appId);
    const room = this.#directory.get(scope, data.room_code.toUpperCase());
    if (!room) return [spectatorJoinFailed(id, "Room not found", "ROOM_NOT_FOUND")];
    const others = room.spectators.size - (room.spectators.has(id) ? 1 : 0);
    if (options.maxSpectatorsPerRoom > 0 && others >= options.maxSpectatorsPerRoom) {
      return [spectatorJoinFailed(id, "Spectator limit reached", "TOO_MANY_SPECTATORS")];
    }

    // A JoinAsSpectator while spectating is a switch: leave the old room quietly first.
    const effects = session.watching ? this.detach(session, "voluntary_leave", now, false) : [];
    const spectator = { id, name: data.spectator_name, connectedAt: new Date(now).toISOString() };
    room.addSpectator(spectator);
    room.lastActivity = now;
    session.watching = room;
    // A connected spectator: the room is attended (its refresh follows below).
    this.#directory.noteAttendance(room);
    effects.push(
      send(id, {
        type: "SpectatorJoined",
        data: {
          room_id: room.id,
          room_code: room.code,
          spectator_id: id,
          game_name: room.gameName,
          current_players: room.players().map(withoutAddress),
          current_spectators: room.spectatorInfos(),
          lobby_state: room.lobbyState,
          reason: "joined",
        },
      }),
      event({
        type: "spectator_joined",
        gameName: room.gameName,
        roomCode: room.code,
        spectatorId: id,
      }),
    );
    const audience = room.membersExcept(id);
    if (audience.length > 0) {
      effects.push(send(audience, {
        type: "NewSpectatorJoined",
        data: {
          spectator: { id, name: spectator.name, connected_at: spectator.connectedAt },
          current_spectators: room.spectatorInfos(SPECTATOR_LIST_LIMIT),
          reason: "joined",
        },
      }));
    }
    effects.push(this.#directory.refresh(room));
    return effects;
  }

  /** `LeaveSpectator`: `SpectatorLeft` to the spectator, `SpectatorDisconnected` to the room. */
  leave(session: Session, now: number): Effect[] {
    if (!session.watching) {
      return [
        error(session.playerId, "You are not currently spectating a room", "NOT_A_SPECTATOR"),
      ];
    }
    return this.detach(session, "voluntary_leave", now, true);
  }

  /**
   * Detaches a watching spectator; `tellSpectator` sends it `SpectatorLeft` (LeaveSpectator
   * only). The room's members get `SpectatorDisconnected` with `reason`.
   */
  detach(
    session: Session,
    reason: "voluntary_leave" | "disconnected",
    now: number,
    tellSpectator: boolean,
  ): Effect[] {
    const room = session.watching!;
    session.watching = undefined;
    room.removeSpectator(session.playerId);
    room.lastActivity = now;
    // The spectator may have been the room's last connected member.
    this.#directory.noteAttendance(room);
    const effects: Effect[] = [event({
      type: "spectator_left",
      gameName: room.gameName,
      roomCode: room.code,
      spectatorId: session.playerId,
    })];
    if (tellSpectator) {
      effects.push(send(session.playerId, {
        type: "SpectatorLeft",
        data: {
          room_id: room.id,
          room_code: room.code,
          reason,
          current_spectators: room.spectatorInfos(),
        },
      }));
    }
    const members = room.members();
    if (members.length > 0) {
      effects.push(send(members, {
        type: "SpectatorDisconnected",
        data: {
          spectator_id: session.playerId,
          reason,
          current_spectators: room.spectatorInfos(SPECTATOR_LIST_LIMIT),
        },
      }));
    }
    effects.push(this.#directory.refresh(room));
    return effects;
  }
}
