/**
 * The room engine: every room, lobby, authority, spectator and relay rule of docs/spec/PROTOCOL.md §7,
 * with no I/O. Callers pass the time in and get back effects (messages to send, sockets to
 * close, directory writes, events to log or count), addressed to connection ids.
 *
 * `Engine` is a thin facade over its parts, split along the edge/home line of docs/spec/SERVER.md §8.2:
 * `sessions.ts` (edge: connections, `Authenticate`, auth deadline, rate-limit takes),
 * `rooms.ts` (home: join, seat, lobby, authority, relay, sweep), `spectators.ts`,
 * `reconnection.ts` (held seats, tokens, replay buffers, identity routing) and `directory.ts`
 * (the rooms homed here and their counts). Inside the parts recipients are identities; the facade
 * routes every result through {@linkcode Reconnection.route} before returning it.
 *
 * @module
 */
import type { ClientData, ClientMessage } from "../protocol/messages.ts";
import { authorityRequest } from "./authority.ts";
import { DEFAULT_MAX_CONNECTION_INFO_BYTES, playerReady, provideConnectionInfo } from "./lobby.ts";
import { lobbyChangeLimitReason } from "./rate_limits.ts";
import { TokenBucket } from "./token_bucket.ts";
import { type EngineStats, HomeDirectory, type RoomSummary } from "./directory.ts";
import {
  type ConnId,
  type DirectoryEntry,
  type Effect,
  error,
  type GameCounts,
  type RoomDetail,
  send,
} from "./effects.ts";
import type { ConnectInfo, EngineOptions } from "./options.ts";
import { type DisconnectLoss, Reconnection } from "./reconnection.ts";
import { playerDisconnected } from "./presence.ts";
import { Rooms } from "./rooms.ts";
import {
  buildSnapshot,
  restoreSnapshot,
  type RoomsSnapshot,
  type SnapshotOutcome,
  type SnapshotParts,
} from "./snapshot.ts";
import { type Session, type SessionMeta, Sessions } from "./sessions.ts";
import { Spectators } from "./spectators.ts";

export type {
  ConnId,
  DirectoryEntry,
  Effect,
  EngineEvent,
  GameCounts,
  RoomDetail,
  RoomSummary,
  SeatDetail,
} from "./effects.ts";
export type { EngineStats } from "./directory.ts";
export type { ConnectInfo, EngineOptions, SdkManifest } from "./options.ts";
export type { DisconnectLoss } from "./reconnection.ts";
export type { SessionMeta } from "./sessions.ts";
export { CODE_ATTEMPTS, MAINTENANCE_REASON } from "./rooms.ts";
export type { RoomsSnapshot, SnapshotOutcome } from "./snapshot.ts";
export { decodeSnapshot, SNAPSHOT_VERSION } from "./snapshot.ts";

/** The pure room engine (docs/spec/PROTOCOL.md §7). One instance owns every room of this process. */
export class Engine {
  readonly #options: EngineOptions;
  readonly #sessions: Sessions;
  readonly #sessionById: ReadonlyMap<ConnId, Session>;
  readonly #directory: HomeDirectory;
  readonly #reconnection: Reconnection;
  readonly #rooms: Rooms;
  readonly #spectators: Spectators;

  /** Creates an engine with no rooms and no connections. */
  constructor(options: EngineOptions) {
    this.#options = options;
    this.#directory = new HomeDirectory({ operatorSearch: options.operatorSearch });
    this.#sessions = new Sessions(options);
    this.#sessionById = this.#sessions.byId;
    this.#reconnection = new Reconnection(
      options,
      this.#sessions,
      (room, playerId, now, reason) => this.#rooms.releaseSeat(room, playerId, now, reason),
      (room) => this.#rooms.noteAttendance(room),
    );
    this.#rooms = new Rooms(options, this.#directory, this.#sessions, this.#reconnection);
    this.#spectators = new Spectators(options, this.#directory, this.#sessions);
  }

  /**
   * Registers a newly accepted connection (docs/spec/PROTOCOL.md §1.2). When auth is required its
   * deadline starts at `info.now` (docs/spec/SERVER.md §4.5).
   */
  connect(id: ConnId, info: ConnectInfo = {}): void {
    this.#sessions.connect(id, info);
  }

  /**
   * Applies one validated client message from connection `from`, received at `now` (ms), and
   * returns the effects in delivery order. Unknown connections get no effects.
   */
  handle(from: ConnId, message: ClientMessage, now: number): Effect[] {
    const session = this.#sessionById.get(from);
    if (!session) return [];
    if (!session.authenticated && message.type !== "Authenticate") {
      return this.#sessions.authenticationRequired(from, "Authentication required");
    }
    return this.#reconnection.route(this.#dispatch(session, message, now), session);
  }

  /**
   * Takes a token from `session`'s lobby-change bucket when it is a player (`PlayerReady` and
   * `AuthorityRequest` announce to the whole room; docs/spec/PROTOCOL.md §7.4 note). Returns the
   * refusal's reason when the bucket is empty, else undefined (also without a limit, and for
   * spectators and connections in no room, whose requests fail without announcing anything).
   */
  #lobbyChangeLimited(session: Session, now: number): string | undefined {
    const limit = this.#options.lobbyChanges;
    if (limit === undefined || session.playing === undefined) return undefined;
    session.lobbyChanges ??= new TokenBucket(limit.capacity, limit.windowMs);
    const take = session.lobbyChanges.take(now);
    return take.ok ? undefined : lobbyChangeLimitReason(take.retryAfterSecs);
  }

  #dispatch(session: Session, message: ClientMessage, now: number): Effect[] {
    switch (message.type) {
      case "Authenticate":
        return this.#sessions.authenticate(session, message.data, now);
      case "JoinRoom":
        return this.#rooms.joinRoom(session, message.data, now);
      case "LeaveRoom":
        return this.#rooms.leaveRoom(session, now);
      case "GameData":
        return this.#rooms.gameData(session, message.data, now);
      case "AuthorityRequest": {
        const limited = this.#lobbyChangeLimited(session, now);
        if (limited !== undefined) {
          return [send(session.playerId, {
            type: "AuthorityResponse",
            data: { granted: false, reason: limited, error_code: "RATE_LIMIT_EXCEEDED" },
          })];
        }
        return authorityRequest(session, message.data.become_authority, now);
      }
      case "PlayerReady": {
        const limited = this.#lobbyChangeLimited(session, now);
        if (limited !== undefined) {
          return [error(session.playerId, limited, "RATE_LIMIT_EXCEEDED")];
        }
        return playerReady(session, this.#directory, now);
      }
      case "ProvideConnectionInfo":
        return provideConnectionInfo(
          session,
          message.data.connection_info,
          this.#options.maxConnectionInfoBytes ?? DEFAULT_MAX_CONNECTION_INFO_BYTES,
          now,
        );
      case "Ping":
        return [send(session.playerId, { type: "Pong" })];
      case "Reconnect":
        return this.#reconnection.reconnect(session, message.data, now);
      case "JoinAsSpectator":
        return this.#spectators.join(session, message.data, now);
      case "LeaveSpectator":
        return this.#spectators.leave(session, now);
    }
  }

  /**
   * Applies one binary frame from `from` (the raw MessagePack game payload, docs/spec/PROTOCOL.md §7.7):
   * every other seat and spectator gets the envelope (`message_pack` connections) or the JSON
   * conversion (`json` connections and held seats' replay buffers), each built at most once.
   * The returned `frame` effects are already addressed to connection ids.
   */
  handleBinary(from: ConnId, payload: Uint8Array, now: number): Effect[] {
    const session = this.#sessions.get(from);
    if (!session) return [];
    if (!session.authenticated) {
      return this.#sessions.authenticationRequired(
        from,
        "Authentication required before sending binary data",
      );
    }
    const me = session.playerId;
    if (session.watching) {
      return this.#reconnection.route([
        error(me, "Spectators cannot send game data", "SPECTATOR_NOT_ALLOWED"),
      ]);
    }
    if (session.format === "json") {
      return this.#reconnection.route([
        error(me, "Binary payloads are disabled for this connection", "INVALID_INPUT"),
      ]);
    }
    return this.#rooms.relayBinary(session, payload, now);
  }

  /**
   * What connection `id` is bound to (docs/spec/SERVER.md §8.4.2): a seat (`player`), a room it watches
   * (`spectator`), or nothing.
   */
  binding(id: ConnId): "player" | "spectator" | undefined {
    const session = this.#sessions.get(id);
    if (session?.playing) return "player";
    return session?.watching ? "spectator" : undefined;
  }

  /**
   * The connection playing `playerId`'s seat now, which a `Reconnect` with its token would replace
   * (a takeover, docs/spec/PROTOCOL.md §7.11.5 step 1); `undefined` when the seat is held or no
   * such player is seated.
   */
  seatConnection(playerId: string): ConnId | undefined {
    const session = this.#reconnection.sessionOf(playerId);
    return session?.playing ? session.id : undefined;
  }

  /**
   * The connection whose live session carries identity `playerId` (its own id, or one it adopted
   * by `Reconnect`, docs/spec/PROTOCOL.md §1.2), if any.
   */
  identityCarrier(playerId: string): ConnId | undefined {
    return this.#reconnection.sessionOf(playerId)?.id;
  }

  /**
   * Whether `playerId`'s seat is held here (its connection gone, the reconnection window
   * running; docs/spec/PROTOCOL.md §7.11).
   */
  seatHeld(playerId: string): boolean {
    return this.#reconnection.held(playerId) !== undefined;
  }

  /** The connection watching a room as spectator `spectatorId`, if any. */
  spectatorConnection(spectatorId: string): ConnId | undefined {
    const session = this.#reconnection.sessionOf(spectatorId);
    return session?.watching ? session.id : undefined;
  }

  /**
   * Seats nothing yet: registers connection `id`, authenticated on edge node of a cluster, as a
   * remote session with `remote`'s IP, app, format, presence opt-in and adopted player id
   * (docs/spec/SERVER.md §8.2, §8.4.4 `BIND`; docs/spec/PROTOCOL.md §1.2).
   */
  connectRemote(id: ConnId, remote: SessionMeta & { ip: string }): void {
    if (!this.#sessions.connectRemote(id, remote)) return;
    if (remote.playerId !== undefined) this.#reconnection.adopt(remote.playerId, id);
  }

  /**
   * Whether connection `id` may send more than `Authenticate`: it authenticated, or this server
   * does not require it (docs/spec/PROTOCOL.md §7.1.1). False for an unknown connection.
   */
  authenticated(id: ConnId): boolean {
    return this.#sessions.get(id)?.authenticated ?? false;
  }

  /**
   * Whether connection `id`'s `Authenticate` was answered already (docs/spec/PROTOCOL.md §7.1.2:
   * only the first is; later ones get nothing). False for an unknown connection.
   */
  authenticateAnswered(id: ConnId): boolean {
    return this.#sessions.get(id)?.authenticateAnswered ?? false;
  }

  /**
   * Cluster mode (docs/spec/SERVER.md §3.3, §8.3): the capacity (tokens per 60 s) of the app
   * bucket an `Authenticate` with `data` would take a token from — auth required, a configured
   * app, the right secret and `rate_limit_per_minute` set — else `undefined`. The edge takes that
   * token from the global bucket first and hands the outcome to the engine
   * (`RateLimits.withAuthVerdict`).
   */
  appRateLimit(data: ClientData<"Authenticate">): number | undefined {
    return this.#sessions.appRateLimit(data);
  }

  /**
   * The answer to connection `id`'s first `Authenticate` (`data`), which this node took and sent
   * to the connection's remote home, when that home bounced it back (it had let the connection
   * go; docs/spec/SERVER.md §8.4.2 item 2): `Error` `UNSUPPORTED_GAME_DATA_FORMAT` when due,
   * `Authenticated`, `ProtocolInfo`. `[]` for an unknown connection or one whose `Authenticate`
   * was not answered yet.
   */
  answerBouncedAuthenticate(id: ConnId, data: ClientData<"Authenticate">): Effect[] {
    const session = this.#sessions.get(id);
    if (!session?.authenticateAnswered) return [];
    return this.#sessions.answerBounced(session, data);
  }

  /**
   * What a `BIND` carries about connection `id` (docs/spec/SERVER.md §8.4.1): its app, negotiated
   * format, presence opt-in (docs/spec/EXTENSIONS.md E10) and the player id it adopted by
   * `Reconnect` (only when that is not its connection id); `undefined` for an unknown connection.
   */
  sessionMeta(id: ConnId): SessionMeta | undefined {
    const session = this.#sessions.get(id);
    if (!session) return undefined;
    return {
      format: session.format,
      ...(session.app ? { appId: session.app.appId } : {}),
      ...(session.presence ? { presence: true } : {}),
      ...(session.playerId !== id ? { playerId: session.playerId } : {}),
    };
  }

  /**
   * Connection `id` adopted `playerId` by a `Reconnect` its room's home (another node) answered
   * (docs/spec/PROTOCOL.md §7.11.5 step 2): this node's session of it takes that identity too, so a
   * later request answered here or sent to another home keeps it (§1.2).
   */
  adoptPlayerId(id: ConnId, playerId: string): void {
    if (this.#sessions.get(id)?.playerId !== playerId) this.#reconnection.adopt(playerId, id);
  }

  /**
   * Drain step (docs/spec/SERVER.md §8.7): deletes every room without seats at once, or every room when
   * `all` (the end of the drain: members get `RoomLeft` / `SpectatorLeft{room_closed}`, entries
   * are released).
   */
  drainRooms(now: number, all: boolean): Effect[] {
    const effects: Effect[] = [];
    for (const room of [...this.#directory.rooms()]) {
      if (room.seats.size === 0) effects.push(...this.#rooms.deleteRoom(room, "empty", now));
      else if (all) effects.push(...this.#rooms.deleteRoom(room, "inactive", now));
    }
    return this.#reconnection.route(effects);
  }

  /**
   * Whether `JoinRoom` `data` from connection `id` fails a check that needs no room (steps 2–6 of
   * docs/spec/PROTOCOL.md §7.2.1: names, `max_players`, membership, the code): a cluster's resolver
   * then lets this engine answer without resolving anything (docs/spec/SERVER.md §8.4.3).
   */
  joinRefused(id: ConnId, data: Extract<ClientMessage, { type: "JoinRoom" }>["data"]): boolean {
    const session = this.#sessions.get(id);
    return session !== undefined && this.#rooms.joinRefused(session, data);
  }

  /**
   * The lookup summary (docs/spec/EXTENSIONS.md E5) of the room connection `id` would create with
   * code `code` for `JoinRoom` `data`, as it will be once created (creator seated, the engine's
   * defaults applied): what a cluster's claim writes to the directory (docs/spec/SERVER.md §8.3).
   * `undefined` for an unknown connection. Meaningful only for `data` that
   * {@linkcode Engine.joinRefused} lets through.
   */
  creationSummary(
    id: ConnId,
    data: Extract<ClientMessage, { type: "JoinRoom" }>["data"],
    code: string,
  ): RoomSummary | undefined {
    const session = this.#sessions.get(id);
    return session && this.#rooms.creationSummary(session, data, code);
  }

  /** Whether a room with id `roomId` is homed here (local-first `Reconnect`, §8.4.3). */
  hasRoomId(roomId: string): boolean {
    return this.#directory.byId(roomId) !== undefined;
  }

  /** The directory entry of every room homed here (the `T/3` refresh, docs/spec/SERVER.md §8.3). */
  directoryEntries(): DirectoryEntry[] {
    const entries: DirectoryEntry[] = [];
    for (const room of this.#directory.rooms()) {
      const effect = this.#directory.refresh(room);
      if (effect.kind === "directory" && effect.op === "refresh") entries.push(effect.entry);
    }
    return entries;
  }

  /**
   * Handles a closed connection (docs/spec/PROTOCOL.md §7.3.2, docs/spec/SERVER.md §5.5): a player's seat is held
   * for `reconnectionWindowMs` (reconnection enabled; nobody is told) or released at once; a
   * spectator is detached with reason `disconnected`. `loss` describes messages the edge could
   * not deliver (docs/spec/SERVER.md §5.2). Idempotent.
   *
   * The seat is held at once. With `routed: false` the effects are returned as addressed, not yet
   * routed to held seats' replay buffers: a caller that carries them out later (a teardown found
   * while delivering another event's messages, docs/spec/SERVER.md §5.2) passes them through
   * {@linkcode route} then, so a held seat's replay gets them where the live members do.
   */
  disconnect(id: ConnId, now: number, loss: DisconnectLoss = {}, routed = true): Effect[] {
    const route = (effects: Effect[]) => routed ? this.#reconnection.route(effects) : effects;
    const session = this.#sessions.remove(id);
    if (!session) return [];
    const me = session.playerId;
    this.#reconnection.forgetAdopted(me, id);
    const room = session.playing;
    if (room) {
      if (!this.#options.enableReconnection) {
        return route(this.#rooms.releaseSeat(room, me, now, "disconnect"));
      }
      const effects = this.#reconnection.hold(room, me, id, now, loss, session.ip);
      const hold = this.#reconnection.held(me)!;
      if (session.presence) hold.presence = true;
      if (session.lobbyChanges) hold.lobbyChanges = session.lobbyChanges;
      effects.push(...playerDisconnected(this.#reconnection, room, me, hold.expiresAt, now));
      return route(effects);
    }
    if (session.watching) {
      return route(this.#spectators.detach(session, "disconnected", now, false));
    }
    return [];
  }

  /**
   * Routes `effects` made earlier (by {@linkcode disconnect} with `routed: false`) as they are
   * carried out: messages to a held seat go to its replay buffer, messages to an identity a
   * `Reconnect` took go to the connection that took it (docs/spec/PROTOCOL.md §7.11.2).
   */
  route(effects: Effect[]): Effect[] {
    return this.#reconnection.route(effects);
  }

  /**
   * `CLOSED{abandoned}` for a connection whose seat a `Reconnect` resumed (cluster mode,
   * docs/spec/SERVER.md §8.4.4): the seat is held again with its replay marked truncated, and the token
   * presented in that `Reconnect` is valid again in place of the one just issued. Returns
   * `undefined` when `id` did not resume its seat by `Reconnect` (the caller undoes a join).
   */
  abandonReconnect(id: ConnId, now: number): Effect[] | undefined {
    if (!this.#reconnection.restorePresentedToken(id, now)) return undefined;
    return this.disconnect(id, now, { truncated: true });
  }

  /**
   * Puts a frame that could not be written to connection `conn` into the replay buffer of the
   * seat held since that connection dropped (docs/spec/SERVER.md §5.2). Binary frames cannot be replayed,
   * so they mark the buffer truncated. Returns false when `conn` held no seat.
   */
  replayUndelivered(conn: ConnId, frame: string | Uint8Array): boolean {
    return this.#reconnection.replayUndelivered(conn, frame);
  }

  /**
   * The once-a-second timer (docs/spec/SERVER.md §4.1): releases held seats whose window ended
   * (docs/spec/PROTOCOL.md §7.11.3) and forgets token records invalid for longer than a window.
   */
  tick(now: number): Effect[] {
    return this.#reconnection.tick(now);
  }

  /**
   * The maintenance sweep (docs/spec/PROTOCOL.md §7.12, docs/spec/SERVER.md §4.2): closes connections past their
   * auth deadline, forgets idle rate-limit buckets, deletes rooms empty for
   * `emptyRoomTimeoutMs` and rooms with seats inactive for `inactiveRoomTimeoutMs`, telling
   * their members (`RoomLeft`, `SpectatorLeft{room_closed}`).
   */
  sweep(now: number): Effect[] {
    const effects = this.#sessions.expireAuthentication(now);
    this.#options.rateLimits?.sweep(now);
    effects.push(...this.#rooms.sweep(now));
    return this.#reconnection.route(effects);
  }

  /**
   * Closes connections whose auth deadline has passed at `now` (ms): `Error`
   * `AUTHENTICATION_TIMEOUT`, then close 1008 (docs/spec/SERVER.md §4.5). Cheap when nothing expired.
   */
  expireAuthentication(now: number): Effect[] {
    return this.#sessions.expireAuthentication(now);
  }

  /** The lookup summary of a room, or `undefined` (docs/spec/EXTENSIONS.md E5). `code` must be upper-case. */
  lookup(gameName: string, code: string): RoomSummary | undefined {
    return this.#directory.lookup(gameName, code);
  }

  /** Rooms of a game with at least one seat, oldest first, at most `limit` (docs/spec/EXTENSIONS.md E6). */
  list(gameName: string, limit: number): RoomSummary[] {
    return this.#directory.list(gameName, limit);
  }

  // -------------------------------------------------------------------------------------------
  // Operator actions (docs/spec/EXTENSIONS.md E12)

  /**
   * Maintenance mode: while true, a `JoinRoom` that would create a room answers
   * `RoomJoinFailed{reason: "Server is in maintenance", error_code: "SERVICE_UNAVAILABLE"}`;
   * joins of existing rooms, spectating and reconnecting go on.
   */
  get maintenance(): boolean {
    return this.#rooms.maintenance;
  }

  set maintenance(on: boolean) {
    this.#rooms.maintenance = on;
  }

  /**
   * A room homed here in detail at `now` (ms): summary, seats (held ones marked), spectators,
   * authority, ready set, age and message rate. `code` must be upper-case.
   */
  roomDetail(gameName: string, code: string, now: number): RoomDetail | undefined {
    const room = this.#directory.get(gameName, code);
    if (!room) return undefined;
    const summary = this.#directory.lookup(gameName, code)!;
    const rate = room.messageRate(now);
    // The directory keeps the creation time (a room restored from a snapshot keeps its own).
    const createdAt = this.#directory.meta(room).createdAt;
    return {
      ...summary,
      room_id: room.id,
      created_at: createdAt,
      age_secs: Math.max(0, Math.floor((now - createdAt) / 1000)),
      idle_secs: Math.max(0, Math.floor((now - room.lastActivity) / 1000)),
      authority: room.authority,
      ready_players: [...room.ready],
      members: [...room.seats.values()].map((seat) => ({
        player_id: seat.id,
        name: seat.name,
        is_authority: room.authority === seat.id,
        is_ready: room.ready.has(seat.id),
        connected_at: seat.connectedAt,
        held: this.#reconnection.held(seat.id) !== undefined,
      })),
      spectator_list: room.spectatorInfos(),
      messages_total: rate.total,
      messages_per_sec: rate.perSecond,
    };
  }

  /**
   * Closes a room for an operator (docs/spec/EXTENSIONS.md E12): members get `RoomLeft`, spectators
   * `SpectatorLeft{room_closed}`, tokens then fail with `RECONNECTION_FAILED`. Returns the
   * effects, or `undefined` when no such room is homed here. `code` must be upper-case.
   */
  closeRoom(gameName: string, code: string, now: number): Effect[] | undefined {
    const room = this.#directory.get(gameName, code);
    if (!room) return undefined;
    return this.#reconnection.route(this.#rooms.closeRoom(room, now));
  }

  /**
   * Removes one player for an operator (docs/spec/EXTENSIONS.md E12): they get `RoomLeft`, the others
   * `PlayerLeft`, their token is invalidated. Returns the effects, or which of room and player
   * was not found. `code` must be upper-case.
   */
  removePlayer(
    gameName: string,
    code: string,
    playerId: string,
    now: number,
  ): Effect[] | "room_not_found" | "player_not_found" {
    const room = this.#directory.get(gameName, code);
    if (!room) return "room_not_found";
    // Route before the seat goes: a live player's RoomLeft must reach its connection.
    const effects = this.#rooms.removePlayer(room, playerId, now);
    return effects ? this.#reconnection.route(effects) : "player_not_found";
  }

  /**
   * Rooms, seats (held ones included) and spectators per game namespace of the rooms homed here
   * (the directory's game name: the app's id and the game name with app auth), kept as they
   * change (docs/spec/EXTENSIONS.md E12 `/admin/api/games`). Live: copy to keep.
   */
  gameCounts(): ReadonlyMap<string, Readonly<GameCounts>> {
    return this.#directory.gameCounts();
  }

  /** Live counts of rooms, seats, spectators and connections. */
  stats(): EngineStats {
    const { players, spectators } = this.#directory.members();
    return {
      rooms: this.#directory.size,
      players,
      spectators,
      connections: this.#sessions.size,
      heldSeats: this.#reconnection.heldSeats,
      eventsBuffered: this.#reconnection.eventsBuffered,
      replayBufferBytes: this.#reconnection.bufferedBytes,
      replayTruncations: this.#reconnection.budgetDrops,
      heldSeatEvictions: this.#reconnection.evictions,
      heldSeatAddressEvictions: this.#reconnection.addressEvictions,
      unattendedRooms: this.#directory.unattendedCount,
      unattendedReclaims: this.#rooms.unattendedReclaims,
      tokenRecords: this.#reconnection.tokenRecords,
      adoptedIdentities: this.#reconnection.adoptedIdentities,
    };
  }

  /**
   * A snapshot of every room at `now` (ms) for a restart (docs/spec/SERVER.md §2.7 `state_file`): rooms,
   * seats, authority, ready sets, spectators, token digests and replay buffers
   * (`snapshot.ts`). Needs `EngineOptions.tokenDigest`. `whileRunning`: the server goes on
   * serving after it (recorded as `while_running`, so that a restore after a crash marks every
   * replay truncated).
   */
  snapshot(now: number, whileRunning = false): RoomsSnapshot {
    return buildSnapshot(this.#snapshotParts(), now, whileRunning);
  }

  /**
   * Restores a decoded snapshot into this engine, which must have no rooms, at `now` (ms): every
   * seat held for the reconnection window, resumable with its token. All or nothing; returns
   * the counts, the `directory` effects publishing the rooms (apply them like any effects) and
   * what the current configuration would not admit (`configurationDrift`), or the reason nothing
   * was restored (`snapshot.ts`).
   */
  restore(
    snapshot: RoomsSnapshot,
    now: number,
  ): SnapshotOutcome<{ rooms: number; seats: number; effects: Effect[]; drift: string[] }> {
    return restoreSnapshot(this.#snapshotParts(), snapshot, now);
  }

  #snapshotParts(): SnapshotParts {
    return {
      options: this.#options,
      directory: this.#directory,
      reconnection: this.#reconnection,
    };
  }

  /**
   * Rooms per seat count of each game name homed here (`HomeDirectory.seatHistograms`; the
   * dashboard, docs/spec/SERVER.md §6.6).
   */
  seatHistograms(): { gameName: string; histogram: readonly number[] }[] {
    return this.#directory.seatHistograms();
  }
}
