/**
 * The home half of the engine (docs/spec/SERVER.md §8.2 "home"): `JoinRoom` (create, join, seat,
 * docs/spec/PROTOCOL.md §7.2), leaving and the seat release sequence (§7.3), the lobby (§7.4), authority
 * (§7.5), relay of text and binary game data (§7.6, §7.7), connection info (§7.8) and the
 * maintenance sweep that deletes rooms (§7.12).
 *
 * @module
 */
import { encodeServerMessage } from "../protocol/codec.ts";
import {
  type ClientData,
  RawJson,
  type RoomSnapshot,
  type ServerMessage,
} from "../protocol/messages.ts";
import { encodeGameDataEnvelope, msgpackToJson } from "../protocol/msgpack.ts";
import { utf8Length } from "../protocol/utf8.ts";
import { authorityChanged, authoritySuccessor } from "./authority.ts";
import { gameStarting, lobbyChanged } from "./lobby.ts";
import {
  type CapScope,
  directoryRelease,
  type HomeDirectory,
  type RoomSummary,
} from "./directory.ts";
import { type ConnId, type Effect, error, event, joinFailed, send } from "./effects.ts";
import type { EngineOptions } from "./options.ts";
import type { Reconnection } from "./reconnection.ts";
import { gameScope, Room, roomSnapshot, type Seat } from "./room.ts";
import type { Session, Sessions } from "./sessions.ts";
import { checkGameName, checkPlayerName, checkRoomCode, nameKey } from "./validation.ts";

/** Attempts at a unique generated room code before giving up (docs/spec/PROTOCOL.md §7.2.3). */
export const CODE_ATTEMPTS = 16;

/** What `JoinRoom` gets while no room may be created (docs/spec/EXTENSIONS.md E12 maintenance). */
export const MAINTENANCE_REASON = "Server is in maintenance";

/** One room cap checked at creation, with what is needed to reclaim under it or refuse. */
interface RoomCap {
  kind: CapScope;
  /** The cap's key in the directory's indexes (`""` for `"server"`). */
  key: string;
  limit: number;
  /** Rooms under the cap now. */
  count: () => number;
  /** The refusal's reason for `count` rooms against `limit`. */
  refusal: (count: number, limit: number) => string;
}

/** The room rules of one engine over the rooms of its {@linkcode HomeDirectory}. */
export class Rooms {
  /** No new rooms: a `JoinRoom` that would create one is refused (docs/spec/EXTENSIONS.md E12). */
  maintenance = false;
  /** Unattended rooms reclaimed at a full cap since the engine started. */
  #unattendedReclaims = 0;
  readonly #options: EngineOptions;
  readonly #directory: HomeDirectory;
  readonly #sessions: Sessions;
  readonly #reconnection: Reconnection;

  /** Room rules over `directory`, seating `sessions`, with tokens and holds in `reconnection`. */
  constructor(
    options: EngineOptions,
    directory: HomeDirectory,
    sessions: Sessions,
    reconnection: Reconnection,
  ) {
    this.#options = options;
    this.#directory = directory;
    this.#sessions = sessions;
    this.#reconnection = reconnection;
  }

  // -------------------------------------------------------------------------------------------
  // JoinRoom (docs/spec/PROTOCOL.md §7.2)

  /** `max_players` with the default applied; an app's `max_players_per_room` caps the default. */
  #maxPlayers(session: Session, data: ClientData<"JoinRoom">): number {
    const appCap = session.app?.maxPlayersPerRoom;
    const defaultMax = this.#options.defaultMaxPlayers;
    return data.max_players ?? Math.min(defaultMax, appCap ?? defaultMax);
  }

  /**
   * Steps 2–6 of docs/spec/PROTOCOL.md §7.2.1 (those after the token, before resolution), in order:
   * the failure's effects, or `undefined` when `data` passes them all.
   */
  #joinProblem(
    session: Session,
    data: ClientData<"JoinRoom">,
    creating: boolean,
  ): Effect[] | undefined {
    const options = this.#options;
    const id = session.playerId;
    const gameNameProblem = checkGameName(data.game_name, options.maxGameNameLength);
    if (gameNameProblem) return joinFailed(id, gameNameProblem, "INVALID_GAME_NAME", creating);
    const nameProblem = checkPlayerName(data.player_name, options.nameRules);
    if (nameProblem) return joinFailed(id, nameProblem, "INVALID_INPUT", creating);
    // An app's max_players_per_room caps the explicit value too (docs/spec/SERVER.md §3.3).
    const appCap = session.app?.maxPlayersPerRoom;
    const maxPlayers = this.#maxPlayers(session, data);
    if (maxPlayers < 1) {
      return joinFailed(id, "Max players must be at least 1", "INVALID_INPUT", creating);
    }
    if (maxPlayers > options.maxPlayersLimit) {
      return joinFailed(
        id,
        `Max players cannot exceed ${options.maxPlayersLimit}`,
        "INVALID_INPUT",
        creating,
      );
    }
    if (appCap !== undefined && maxPlayers > appCap) {
      return joinFailed(id, `Max players cannot exceed ${appCap}`, "INVALID_INPUT", creating);
    }
    if (session.playing || session.watching) {
      return joinFailed(id, "Already in a room", "ALREADY_IN_ROOM", creating);
    }
    if (data.room_code === undefined && data.create === "never") {
      return joinFailed(id, "Room code is required to join", "INVALID_ROOM_CODE", false);
    }
    if (data.room_code !== undefined) {
      const codeProblem = checkRoomCode(data.room_code, options.roomCodeLength);
      if (codeProblem) return joinFailed(id, codeProblem, "INVALID_ROOM_CODE", creating);
    }
    return undefined;
  }

  /**
   * Whether `JoinRoom` `data` from `session` fails one of steps 2–6 of docs/spec/PROTOCOL.md §7.2.1: a
   * cluster's resolver then lets this engine answer, without resolving the room
   * (docs/spec/SERVER.md §8.4.3 "Edge checks").
   */
  joinRefused(session: Session, data: ClientData<"JoinRoom">): boolean {
    return this.#joinProblem(session, data, false) !== undefined;
  }

  /** `JoinRoom`: validation in the spec's order, then join, or create (docs/spec/PROTOCOL.md §7.2.1). */
  joinRoom(session: Session, data: ClientData<"JoinRoom">, now: number): Effect[] {
    const id = session.playerId;
    const mode = data.create ?? "if_missing";
    // "never" without a code is a join attempt that fails at the code check (docs/spec/EXTENSIONS.md E9).
    const creating = data.room_code === undefined && mode !== "never";
    const limited = this.#sessions.takeToken(session, creating ? "create" : "join", now);
    if (limited) {
      return [...joinFailed(id, limited.reason, "RATE_LIMIT_EXCEEDED", creating), limited.event];
    }
    const problem = this.#joinProblem(session, data, creating);
    if (problem) return problem;
    const maxPlayers = this.#maxPlayers(session, data);
    // Each app has its own rooms when auth is enabled (issue 14 item 12).
    const scope = gameScope(data.game_name, session.app?.appId);
    if (data.room_code !== undefined) {
      const room = this.#directory.get(scope, data.room_code.toUpperCase());
      if (room) {
        if (mode === "always") {
          return joinFailed(id, "Room code already in use", "ROOM_CREATION_FAILED", true);
        }
        return this.#joinExisting(session, room, data.player_name, now);
      }
      if (mode === "never") return joinFailed(id, "Room not found", "ROOM_NOT_FOUND", false);
    }

    // Creating: with the requested code (join-or-create) or a generated one.
    if (this.maintenance) {
      return joinFailed(id, MAINTENANCE_REASON, "SERVICE_UNAVAILABLE", true);
    }
    if (!creating) {
      const limitedCreate = this.#sessions.takeToken(session, "create", now);
      if (limitedCreate) {
        return [
          ...joinFailed(id, limitedCreate.reason, "RATE_LIMIT_EXCEEDED", true),
          limitedCreate.event,
        ];
      }
    }
    const reclaimed: Effect[] = [];
    const capped = this.#checkCaps(session, data.game_name, scope, now, reclaimed);
    if (capped) return [...reclaimed, ...capped];
    if (data.room_code !== undefined) {
      return [
        ...reclaimed,
        ...this.#create(session, data, data.room_code.toUpperCase(), maxPlayers, now),
      ];
    }
    const generated = this.#generateCode(scope);
    if (!generated.code) {
      return [
        ...reclaimed,
        ...generated.effects,
        ...joinFailed(id, "Failed to create room", "ROOM_CREATION_FAILED", true),
      ];
    }
    return [
      ...reclaimed,
      ...generated.effects,
      ...this.#create(session, data, generated.code, maxPlayers, now),
    ];
  }

  /**
   * The room caps at creation (docs/spec/SERVER.md §3.3, §3.7, and `max_rooms_per_ip` and
   * `max_rooms`, SECURITY.md), in the order game, app, creator's address, server. For each cap
   * that is reached the oldest empty room under it is deleted first, so rooms with no connected
   * player and no held seat never keep a cap full (issue 14 item 7); when none is left, the
   * oldest unattended room under it ({@linkcode Room.unattended}) is reclaimed next, its held
   * seats ended as their windows' ends would (docs/spec/PROTOCOL.md §7.11.3), so held seats alone
   * never keep a cap full either. The reclaims' effects go to `reclaimed`. Returns the refusal
   * (`MAX_ROOMS_PER_GAME_EXCEEDED`) when a cap is reached by rooms with a connected member, and
   * then reclaims nothing: no held seat ends for a creation that is refused anyway.
   */
  #checkCaps(
    session: Session,
    gameName: string,
    scope: string,
    now: number,
    reclaimed: Effect[],
  ): Effect[] | undefined {
    const options = this.#options;
    const directory = this.#directory;
    const caps: RoomCap[] = [{
      kind: "game",
      key: scope,
      limit: options.maxRoomsPerGame,
      count: () => directory.gameCount(scope),
      refusal: (n, l) => `Game \`${gameName}\` already has ${n} rooms (limit ${l})`,
    }];
    const app = session.app;
    if (app?.maxRooms !== undefined) {
      caps.push({
        kind: "app",
        key: app.appId,
        limit: app.maxRooms,
        count: () => directory.appCount(app.appId),
        refusal: (n, l) => `App \`${app.appId}\` already has ${n} rooms (limit ${l})`,
      });
    }
    const perIp = options.maxRoomsPerIp ?? 0;
    if (perIp > 0 && session.ip !== "") {
      caps.push({
        kind: "ip",
        key: directory.ipKey(scope, session.ip),
        limit: perIp,
        count: () => directory.ipCount(scope, session.ip),
        refusal: (n, l) =>
          `Your address already has ${n} rooms of game \`${gameName}\` (limit ${l})`,
      });
    }
    // Last: the caps above may have reclaimed rooms already.
    const maxRooms = options.maxRooms ?? 0;
    if (maxRooms > 0) {
      caps.push({
        kind: "server",
        key: "",
        limit: maxRooms,
        count: () => directory.size,
        refusal: (n, l) => `The server already has ${n} rooms (limit ${l})`,
      });
    }
    // First whether every cap can be brought under its limit. A reclaim for one cap removes a
    // room that is reclaimable under every other cap it counts in, so a cap with enough
    // reclaimable rooms now still has enough when its turn comes, and one without never will.
    // Every cap refuses with the same error code (docs/spec/PROTOCOL.md §7.2.1).
    const refuse = (cap: RoomCap) =>
      joinFailed(
        session.playerId,
        cap.refusal(cap.count(), cap.limit),
        "MAX_ROOMS_PER_GAME_EXCEEDED",
        true,
      );
    for (const cap of caps) {
      const count = cap.count();
      if (count >= cap.limit && count - directory.reclaimable(cap.kind, cap.key) >= cap.limit) {
        return refuse(cap);
      }
    }
    for (const cap of caps) {
      while (cap.count() >= cap.limit) {
        const empty = directory.oldestEmpty(cap.kind, cap.key);
        if (empty) {
          reclaimed.push(...this.deleteRoom(empty, "empty", now));
          continue;
        }
        // Empty rooms first: an unattended room may still be resumed, an empty one never.
        const unattended = directory.oldestUnattended(cap.kind, cap.key);
        if (!unattended) return refuse(cap); // not reached: checked above
        reclaimed.push(...this.#reclaimUnattended(unattended, now));
      }
    }
    return undefined;
  }

  /**
   * Reclaims unattended `room` for a creation at a full cap (docs/spec/SERVER.md §3.7): each held
   * seat ends as the end of its window would (docs/spec/PROTOCOL.md §7.11.3: seat released,
   * replay buffer discarded, its token then yields `RECONNECTION_EXPIRED`), then the room is
   * deleted (reason `unattended`) and its directory entry released.
   */
  #reclaimUnattended(room: Room, now: number): Effect[] {
    this.#unattendedReclaims++;
    return [
      ...this.#reconnection.endHoldsOf(room, now),
      ...this.deleteRoom(room, "unattended", now),
    ];
  }

  /**
   * Unattended rooms reclaimed by creations at a full cap since the engine started
   * (`signal_fish_rooms_unattended_reclaimed_total`).
   */
  get unattendedReclaims(): number {
    return this.#unattendedReclaims;
  }

  /**
   * Brings `room`'s place among the unattended rooms up to date after its seats, holds or
   * spectators changed ({@linkcode HomeDirectory.noteAttendance}). Returns the `directory` effect
   * that republishes the room when that changed (a cluster's directory counts unattended rooms
   * apart, docs/spec/SERVER.md §8.3), else nothing.
   */
  noteAttendance(room: Room): Effect[] {
    return this.#directory.noteAttendance(room) ? [this.#directory.refresh(room)] : [];
  }

  #generateCode(scope: string): { code?: string; effects: Effect[] } {
    const effects: Effect[] = [];
    for (let attempt = 0; attempt < CODE_ATTEMPTS; attempt++) {
      const code = this.#options.newRoomCode();
      if (!this.#directory.has(scope, code)) return { code, effects };
      effects.push(event({ type: "code_collision" }));
    }
    return { effects };
  }

  #create(
    session: Session,
    data: ClientData<"JoinRoom">,
    code: string,
    maxPlayers: number,
    now: number,
  ): Effect[] {
    const options = this.#options;
    const room = new Room({
      id: options.newId(),
      code,
      ...this.#roomSettings(data, maxPlayers),
      now,
      appId: session.app?.appId,
      creatorIp: session.ip === "" ? undefined : session.ip,
    });
    this.#directory.add(room, session.app?.appId, now);
    this.#seat(session, room, data.player_name, now);
    if (room.supportsAuthority) room.authority = session.playerId;
    return this.#seated("room_created", session, room, now);
  }

  /**
   * What a room created for `JoinRoom` `data` with `maxPlayers` seats is given from the request
   * and the engine's defaults (docs/spec/PROTOCOL.md §7.2.5, §7.2.6): one place for the room and for
   * {@linkcode Rooms.creationSummary}.
   */
  #roomSettings(data: ClientData<"JoinRoom">, maxPlayers: number) {
    const options = this.#options;
    return {
      gameName: data.game_name,
      maxPlayers,
      supportsAuthority: data.supports_authority ?? true,
      relayType: Object.hasOwn(options.relayTypeByGame, data.game_name)
        ? options.relayTypeByGame[data.game_name]!
        : options.defaultRelayType,
      authorityHandover: data.authority_handover ?? false,
    };
  }

  /**
   * The lookup summary (docs/spec/EXTENSIONS.md E5) the room `session` would create with code
   * `code` for `JoinRoom` `data` has once created: its creator seated, nobody watching, `waiting`,
   * the request's values with the engine's defaults (`max_players` capped by the app's
   * `max_players_per_room`, the game's relay type). A cluster's claim writes it to the directory
   * (docs/spec/SERVER.md §8.3), so a lookup through another instance before the home's first
   * refresh answers what the room is. Meaningful only for `data` that passes
   * {@linkcode Rooms.joinRefused}.
   */
  creationSummary(session: Session, data: ClientData<"JoinRoom">, code: string): RoomSummary {
    const settings = this.#roomSettings(data, this.#maxPlayers(session, data));
    return {
      room_code: code,
      game_name: settings.gameName,
      players: 1,
      max_players: settings.maxPlayers,
      spectators: 0,
      lobby_state: "waiting",
      supports_authority: settings.supportsAuthority,
      relay_type: settings.relayType,
      authority_handover: settings.authorityHandover,
    };
  }

  /**
   * The effects of `session` taking a seat in `room` (new or existing): the `type` engine event,
   * the directory's refresh of the room and the join announcements (docs/spec/PROTOCOL.md §7.2.4).
   */
  #seated(
    type: "room_created" | "room_joined",
    session: Session,
    room: Room,
    now: number,
  ): Effect[] {
    return [
      event({
        type,
        gameName: room.gameName,
        roomCode: room.code,
        roomId: room.id,
        playerId: session.playerId,
      }),
      this.#directory.refresh(room),
      ...this.#announceJoin(session.playerId, room, now),
    ];
  }

  #joinExisting(session: Session, room: Room, playerName: string, now: number): Effect[] {
    if (room.hasName(playerName)) {
      return joinFailed(
        session.playerId,
        "Player name already exists in this room",
        "ROOM_CREATION_FAILED",
        false,
      );
    }
    if (room.seats.size >= room.maxPlayers) {
      return joinFailed(session.playerId, "Room is full", "ROOM_FULL", false);
    }
    this.#seat(session, room, playerName, now);
    return this.#seated("room_joined", session, room, now);
  }

  #seat(session: Session, room: Room, name: string, now: number): void {
    const seat: Seat = {
      id: session.playerId,
      name,
      nameKey: nameKey(name),
      connectedAt: new Date(now).toISOString(),
    };
    room.addSeat(seat);
    if (room.emptySince !== null) this.#directory.markOccupied(room);
    room.emptySince = null;
    room.lastActivity = now;
    session.playing = room;
    // A connected player: the room is attended (its refresh follows in #seated).
    this.#directory.noteAttendance(room);
  }

  /** Replies and broadcasts after a successful join (docs/spec/PROTOCOL.md §7.2.4), in order. */
  #announceJoin(joiner: string, room: Room, now: number): Effect[] {
    const seat = room.seats.get(joiner)!;
    const data: RoomSnapshot & { reconnection_token?: string } = roomSnapshot(room, joiner);
    if (this.#options.enableReconnection) {
      data.reconnection_token = this.#reconnection.issueToken(joiner, room, now);
    }
    const effects: Effect[] = [send(joiner, { type: "RoomJoined", data })];
    const others = room.membersExcept(joiner);
    if (others.length > 0) {
      const player = room.playerInfo(seat);
      // The joiner never holds authority in the announcement (docs/spec/PROTOCOL.md §7.2.4 step 2).
      player.is_authority = false;
      effects.push(send(others, { type: "PlayerJoined", data: { player } }));
    }
    if (room.maxPlayers > 1 && room.seats.size === room.maxPlayers) {
      effects.push(lobbyChanged(room));
    }
    if (room.maxPlayers === 1) effects.push(...gameStarting(room, [joiner]));
    return effects;
  }

  // -------------------------------------------------------------------------------------------
  // Leaving (docs/spec/PROTOCOL.md §7.3)

  /** `LeaveRoom`: `RoomLeft`, then the seat release sequence; non-members get nothing. */
  leaveRoom(session: Session, now: number): Effect[] {
    const room = session.playing;
    if (!room) return [];
    this.#reconnection.invalidateToken(session.playerId, "left", now);
    return [
      send(session.playerId, { type: "RoomLeft" }),
      ...this.releaseSeat(room, session.playerId, now, "leave"),
    ];
  }

  /** The seat release sequence (docs/spec/PROTOCOL.md §7.3.3). */
  releaseSeat(
    room: Room,
    playerId: string,
    now: number,
    reason: "leave" | "disconnect" | "expired" | "removed",
  ): Effect[] {
    const wasFull = room.lobbyState !== "waiting";
    room.removeSeat(playerId);
    room.ready.delete(playerId);
    const session = this.#reconnection.sessionOf(playerId);
    if (session?.playing === room) session.playing = undefined;
    room.lastActivity = now;
    const effects: Effect[] = [event({
      type: "seat_released",
      gameName: room.gameName,
      roomCode: room.code,
      playerId,
      reason,
    })];
    const members = room.members();
    if (members.length > 0) {
      effects.push(send(members, { type: "PlayerLeft", data: { player_id: playerId } }));
    }
    if (room.authority === playerId) {
      room.authority = room.authorityHandover
        ? authoritySuccessor(room, (id) => this.#reconnection.held(id) !== undefined)
        : null;
      if (room.authority !== null) effects.push(...authorityChanged(room));
      else if (members.length > 0) {
        effects.push(send(members, {
          type: "AuthorityChanged",
          data: { authority_player: null, you_are_authority: false },
        }));
      }
    }
    if (wasFull) {
      room.ready.clear();
      if (members.length > 0) effects.push(lobbyChanged(room));
    }
    if (room.seats.size === 0) {
      room.emptySince = now;
      this.#directory.markEmpty(room);
    }
    // The seat released may have been the last connected one (or the last seat at all).
    this.#directory.noteAttendance(room);
    effects.push(this.#directory.refresh(room));
    return effects;
  }

  /**
   * Deletes a room (docs/spec/PROTOCOL.md §7.12): seated players get `RoomLeft`, spectators
   * `SpectatorLeft{room_closed}`, held seats are dropped, tokens become `room_gone`, and the
   * directory entry is released.
   */
  deleteRoom(
    room: Room,
    reason: "empty" | "inactive" | "closed" | "unattended",
    now: number,
  ): Effect[] {
    this.#directory.remove(room);
    const effects: Effect[] = [event({
      type: "room_deleted",
      gameName: room.gameName,
      roomCode: room.code,
      roomId: room.id,
      reason,
    })];
    for (const playerId of room.seats.keys()) {
      // A held seat has nobody to tell: its connection is gone and its replay buffer goes too.
      if (!this.#reconnection.roomGone(playerId, now)) {
        const session = this.#reconnection.sessionOf(playerId);
        if (session?.playing === room) session.playing = undefined;
        effects.push(send(playerId, { type: "RoomLeft" }));
      }
      effects.push(event({
        type: "seat_released",
        gameName: room.gameName,
        roomCode: room.code,
        playerId,
        reason: "room_deleted",
      }));
    }
    const spectators = [...room.spectators.keys()];
    for (const spectatorId of spectators) {
      const session = this.#reconnection.sessionOf(spectatorId);
      if (session?.watching === room) session.watching = undefined;
    }
    if (spectators.length > 0) {
      effects.push(send(spectators, {
        type: "SpectatorLeft",
        data: {
          room_id: room.id,
          room_code: room.code,
          reason: "room_closed",
          current_spectators: [],
        },
      }));
    }
    room.clearMembers();
    room.ready.clear();
    effects.push(directoryRelease(room));
    return effects;
  }

  // -------------------------------------------------------------------------------------------
  // Operator actions (docs/spec/EXTENSIONS.md E12)

  /**
   * Closes `room` for an operator: the deletion of docs/spec/PROTOCOL.md §7.12 with reason `closed`
   * (members `RoomLeft`, spectators `SpectatorLeft{room_closed}`, tokens `room_gone` so a later
   * `Reconnect` fails with `RECONNECTION_FAILED`, directory entry released).
   */
  closeRoom(room: Room, now: number): Effect[] {
    return this.deleteRoom(room, "closed", now);
  }

  /**
   * Removes player `playerId` from `room` for an operator: a live player gets `RoomLeft`, a held
   * seat is dropped with its replay buffer; the token becomes invalid (`left`, so `Reconnect`
   * answers `RECONNECTION_TOKEN_INVALID`), then the seat release sequence tells the others
   * (`PlayerLeft`, docs/spec/PROTOCOL.md §7.3.3). Returns `undefined` when no such seat is in the room.
   */
  removePlayer(room: Room, playerId: string, now: number): Effect[] | undefined {
    if (!room.seats.has(playerId)) return undefined;
    const held = this.#reconnection.dropHold(playerId);
    this.#reconnection.invalidateToken(playerId, "left", now);
    const effects: Effect[] = held ? [] : [send(playerId, { type: "RoomLeft" })];
    effects.push(...this.releaseSeat(room, playerId, now, "removed"));
    return effects;
  }

  /**
   * The room part of the maintenance sweep (docs/spec/PROTOCOL.md §7.12, docs/spec/SERVER.md §4.2): deletes rooms
   * empty for `emptyRoomTimeoutMs` and rooms with seats inactive for `inactiveRoomTimeoutMs`.
   */
  sweep(now: number): Effect[] {
    const effects: Effect[] = [];
    const { emptyRoomTimeoutMs, inactiveRoomTimeoutMs } = this.#options;
    for (const room of [...this.#directory.rooms()]) {
      if (room.seats.size === 0) {
        if (room.emptySince !== null && now - room.emptySince >= emptyRoomTimeoutMs) {
          effects.push(...this.deleteRoom(room, "empty", now));
        }
      } else if (now - room.lastActivity > inactiveRoomTimeoutMs) {
        effects.push(...this.deleteRoom(room, "inactive", now));
      }
    }
    return effects;
  }

  // -------------------------------------------------------------------------------------------
  // Game data (docs/spec/PROTOCOL.md §7.6, §7.7)

  /** `GameData`: to `to_player`, or to every other seat and spectator (docs/spec/PROTOCOL.md §7.6). */
  gameData(session: Session, data: ClientData<"GameData">, now: number): Effect[] {
    if (session.watching) {
      return [error(session.playerId, "Spectators cannot send game data", "SPECTATOR_NOT_ALLOWED")];
    }
    const room = session.playing;
    if (!room) return [];
    const message: ServerMessage = {
      type: "GameData",
      data: { from_player: session.playerId, data: data.data },
    };
    const target = data.to_player;
    if (target !== undefined) {
      if (target === session.playerId) {
        return [error(session.playerId, "Cannot send game data to yourself", "INVALID_INPUT")];
      }
      if (!room.seats.has(target)) {
        return [error(session.playerId, "Target player is not in this room", "INVALID_INPUT")];
      }
      room.lastActivity = now;
      room.noteMessage(now);
      return [send(target, message), event({ type: "game_data", recipients: 1 })];
    }
    room.lastActivity = now;
    room.noteMessage(now);
    const recipients = room.membersExcept(session.playerId);
    const relayed = event({ type: "game_data", recipients: recipients.length });
    return recipients.length > 0 ? [send(recipients, message), relayed] : [relayed];
  }

  /**
   * One binary frame from an authenticated `message_pack` player (docs/spec/PROTOCOL.md §7.7): every
   * other seat and spectator gets the envelope (`message_pack` connections) or the JSON
   * conversion (`json` connections and held seats' replay buffers), each built at most once.
   * The returned `frame` effects are already addressed to connection ids.
   */
  relayBinary(session: Session, payload: Uint8Array, now: number): Effect[] {
    const me = session.playerId;
    const room = session.playing;
    if (!room) return [];
    room.lastActivity = now;
    room.noteMessage(now);
    const binaryTo: ConnId[] = [];
    const textTo: ConnId[] = [];
    // undefined: not converted yet; null: the payload has no JSON form.
    let text: string | null | undefined;
    const jsonFrame = () => {
      if (text === undefined) {
        const json = msgpackToJson(payload);
        text = json === undefined ? null : encodeServerMessage({
          type: "GameData",
          data: { from_player: me, data: new RawJson(json) },
        });
      }
      return text;
    };
    let recipients = 0;
    for (const member of room.membersExcept(me)) {
      const hold = this.#reconnection.held(member);
      if (hold) {
        const frame = jsonFrame();
        if (frame === null) hold.truncated = true;
        else this.#reconnection.append(hold, frame, utf8Length(frame));
        recipients++;
        continue;
      }
      const conn = this.#reconnection.connOf(member);
      if (this.#sessions.get(conn)?.format === "message_pack") binaryTo.push(conn);
      else textTo.push(conn);
    }
    const effects: Effect[] = [];
    if (binaryTo.length > 0) {
      effects.push({ kind: "frame", to: binaryTo, frame: encodeGameDataEnvelope(me, payload) });
      recipients += binaryTo.length;
    }
    if (textTo.length > 0) {
      const frame = jsonFrame();
      if (frame !== null) {
        effects.push({ kind: "frame", to: textTo, frame });
        recipients += textTo.length;
      }
    }
    effects.push(event({ type: "game_data", recipients }));
    return effects;
  }
}
