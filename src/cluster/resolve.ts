/**
 * Edge-side resolution of `JoinRoom`, `JoinAsSpectator` and `Reconnect` in cluster mode
 * (docs/spec/SERVER.md §8.4.3): local first (a room homed here needs no Redis), else the rate-limit bucket
 * in Redis, the directory entry, and either a `BIND` to the room's live home or a creation here
 * under a claimed code. The engine then creates the room with the claimed code and room id
 * ({@linkcode Staging}) and checks no caps or buckets of its own.
 *
 * @module
 */
import type { BucketKind } from "../coordination/buckets.ts";
import type { ClaimResult, DirectoryRecord } from "../coordination/directory.ts";
import type { Engine } from "../engine/engine.ts";
import { CODE_ATTEMPTS, MAINTENANCE_REASON } from "../engine/engine.ts";
import {
  creationLimitReason,
  joinLimitReason,
  reconnectLimitReason,
} from "../engine/rate_limits.ts";
import { gameScope } from "../engine/room.ts";
import { checkGameName, checkPlayerName, checkRoomCode } from "../engine/validation.ts";
import type { NameRules } from "../engine/validation.ts";
import type { ErrorCode } from "../protocol/error_codes.ts";
import type { ClientMessage, ServerMessage } from "../protocol/messages.ts";
import { type Resolution, type Resolver, unavailable } from "../transport/edge.ts";
import type { EdgeEvent } from "../transport/events.ts";
import type { ClusterStore, NodeId, Resolved } from "./types.ts";
import { refusalReason } from "./link_report.ts";
import { logFault } from "../coordination/faults.ts";
import { NoAnswer } from "../coordination/no_answer.ts";
import { getLogger } from "@logtape/logtape";

const log = getLogger(["signal-fish", "cluster"]);

/**
 * The room id and code the engine uses for its next room: staged by the resolver right before
 * the engine creates a room under a claimed code, consumed once, else fresh.
 */
export class Staging {
  #roomId: string | undefined;
  #code: string | undefined;
  readonly #newId: () => string;
  readonly #newCode: () => string;

  /** @param newId fresh room ids @param newCode fresh room codes (docs/spec/SERVER.md §2.7 prefix) */
  constructor(newId: () => string, newCode: () => string) {
    this.#newId = newId;
    this.#newCode = newCode;
  }

  /** Stages the next room's id and (for a generated code) code. */
  stage(roomId: string, code?: string): void {
    this.#roomId = roomId;
    this.#code = code;
  }

  /** Drops what was staged and not used. */
  clear(): void {
    this.#roomId = undefined;
    this.#code = undefined;
  }

  /** For the engine's `newId`. */
  roomId = (): string => {
    const id = this.#roomId ?? this.#newId();
    this.#roomId = undefined;
    return id;
  };

  /** For the engine's `newRoomCode`. */
  roomCode = (): string => {
    const code = this.#code ?? this.#newCode();
    this.#code = undefined;
    return code;
  };

  /** A fresh code (not staged), for the resolver's own attempts. */
  freshCode(): string {
    return this.#newCode();
  }
}

/** What the resolver needs. */
export interface ResolverOptions {
  node: NodeId;
  engine: Engine;
  store: ClusterStore;
  staging: Staging;
  maxRoomsPerGame: number;
  /**
   * `server.max_rooms_per_ip`: rooms with a seat one client IP key may have created in a game,
   * across the cluster (docs/spec/SERVER.md §8.3 "Claim"); `0` = no cap. @default 0
   */
  maxRoomsPerIp?: number;
  roomCodeLength: number;
  maxGameNameLength: number;
  nameRules: NameRules;
  /**
   * `server.enable_reconnection`: when off, `Reconnect` takes no token and the engine answers
   * `RECONNECTION_FAILED`. @default true
   */
  enableReconnection?: boolean;
  /** An app's `max_rooms`, if it has one. */
  appMaxRooms: (appId: string) => number | undefined;
  /** Whether the epoch's grace window is running at `now` (docs/spec/SERVER.md §8.3). */
  inGrace: (now: number) => boolean;
  /** Whether `home` may be held dead (docs/spec/SERVER.md §8.5.4); the resolver re-reads before that. */
  isDead: (home: NodeId) => Promise<boolean>;
  /**
   * Whether the code of a room homed here is not its own in the directory: its last refresh
   * found a conflict, or it was restored and not claimed yet (docs/spec/SERVER.md §8.3, §8.4.3:
   * "by code unless its last refresh found a conflict"). @default never
   */
  conflicted?: (gameName: string, roomCode: string) => boolean;
}

/**
 * Longest wait, ms, of a request for a room claimed on this node whose creation has not run yet
 * (a turn or two normally; bounded in case the creating request never runs).
 */
const CREATION_WAIT_MS = 1_000;

function joinFailedReply(reason: string, code: ErrorCode, creating: boolean): Resolution {
  return {
    kind: "reply",
    message: { type: "RoomJoinFailed", data: { reason, error_code: code } },
    events: [{ type: "join_failed", errorCode: code, creating }],
  };
}

function reply(message: ServerMessage, events?: EdgeEvent[]): Resolution {
  return { kind: "reply", message, ...(events ? { events } : {}) };
}

/** Builds the resolver of one node. */
export function clusterResolver(options: ResolverOptions): Resolver {
  const { engine, store, node } = options;
  const conflicted = options.conflicted ?? (() => false);
  /**
   * Rooms this node claimed whose creation has not run yet, by room id: settled once the engine
   * has handled the creating request (or the request was dropped). Another request for the
   * same code that finds the claim (its entry, or `taken`) waits for it instead of holding the
   * entry stale or creating a second room under the code (which made the directory name a room
   * that does not exist, and the real one a conflict's loser, docs/spec/SERVER.md §8.3).
   */
  const uncreated = new Map<string, Promise<void>>();
  /** Waits (at most {@linkcode CREATION_WAIT_MS}) for the creation of a room claimed here. */
  const created = async (roomId: string): Promise<void> => {
    const pending = uncreated.get(roomId);
    if (pending === undefined) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      pending,
      new Promise<void>((resolve) => timer = setTimeout(resolve, CREATION_WAIT_MS)),
    ]);
    clearTimeout(timer);
  };

  /**
   * A bucket take; the reason when refused. The take falls back to this node's bucket when Redis
   * does not answer; then every later step that needs Redis answers `SERVICE_UNAVAILABLE` at once
   * instead of waiting `forward_timeout_ms` again (docs/spec/SERVER.md §8.4.3, §8.5.5).
   */
  const takeToken = async (kind: BucketKind, ip: string, now: number) => {
    const taken = await store.take(kind, ip, now);
    if (taken.ok) return undefined;
    return kind === "creation"
      ? creationLimitReason(taken.retryAfterSecs)
      : kind === "join"
      ? joinLimitReason(taken.retryAfterSecs)
      : reconnectLimitReason(taken.retryAfterSecs);
  };

  /**
   * The token of a bind request's first check, drawn from the client IP's global bucket
   * (docs/spec/SERVER.md §3.4, §8.3) as the engine draws it: `JoinRoom` from the creation bucket
   * without a code (unless join-only), else from the join bucket (docs/spec/PROTOCOL.md §7.2.1
   * step 1); `JoinAsSpectator` from the join bucket (§7.9 check 1); `Reconnect` from the
   * reconnect bucket unless reconnection is off (then the engine answers RECONNECTION_FAILED,
   * §7.11.4 check 0). Resolves with the refusal the engine would send, or `undefined` when drawn.
   */
  const firstToken = async (
    take: typeof takeToken,
    message: ClientMessage,
    ip: string,
    now: number,
  ): Promise<Resolution | undefined> => {
    switch (message.type) {
      case "JoinRoom": {
        const data = message.data;
        const creating = data.room_code === undefined && data.create !== "never";
        const limited = await take(creating ? "creation" : "join", ip, now);
        return limited ? rateLimited(limited, creating ? "create" : "join", creating) : undefined;
      }
      case "JoinAsSpectator": {
        const limited = await take("join", ip, now);
        if (!limited) return undefined;
        return reply(
          {
            type: "SpectatorJoinFailed",
            data: { reason: limited, error_code: "RATE_LIMIT_EXCEEDED" },
          },
          [{ type: "rate_limited", scope: "join" }],
        );
      }
      case "Reconnect": {
        if (!(options.enableReconnection ?? true)) return undefined;
        const limited = await take("reconnect", ip, now);
        if (!limited) return undefined;
        return reply(
          {
            type: "ReconnectionFailed",
            data: { reason: limited, error_code: "RATE_LIMIT_EXCEEDED" },
          },
          [
            { type: "reconnect_failed", errorCode: "RATE_LIMIT_EXCEEDED" },
            { type: "rate_limited", scope: "reconnect" },
          ],
        );
      }
      default:
        return undefined;
    }
  };

  /**
   * Releases a claim whose room was never created, logged when Redis does not answer (the store
   * sends it again once Redis answers, docs/spec/SERVER.md §8.5.5).
   */
  const release = (record: DirectoryRecord) => {
    Promise.resolve(store.release(record.gameName, record.roomCode, record.roomId)).catch(
      (error) =>
        log.warn("Cannot release the unused claim of {code} yet: {error}", {
          code: record.roomCode,
          error,
        }),
    );
  };

  /** Throws while Redis is known not to answer (the caller's catch answers SERVICE_UNAVAILABLE). */
  const reachable = () => {
    if (!store.reachable) throw new NoAnswer("Redis unreachable: its last call got no answer");
  };

  /** Whether an entry found for a code or id names a room that is gone (stale). */
  const stale = async (resolved: Resolved & { status: "found" }, staleHome?: NodeId) => {
    if (resolved.home === node) return true; // named here, but not local: gone
    if (resolved.home === staleHome) return true; // that home said MISS
    if (resolved.homeAlive) return false;
    return await options.isDead(resolved.home);
  };

  const claimAndCreate = async (
    conn: string,
    data: Extract<ClientMessage, { type: "JoinRoom" }>["data"],
    ip: string,
    now: number,
    staleRecord?: DirectoryRecord,
  ): Promise<Resolution> => {
    const meta = engine.sessionMeta(conn);
    const appId = meta?.appId;
    const maxAppRooms = appId !== undefined ? options.appMaxRooms(appId) : undefined;
    const caps = {
      maxRoomsPerGame: options.maxRoomsPerGame,
      ...(maxAppRooms !== undefined ? { maxAppRooms } : {}),
      ...(options.maxRoomsPerIp ? { maxRoomsPerIp: options.maxRoomsPerIp } : {}),
    };
    const given = data.room_code?.toUpperCase();
    const events: EdgeEvent[] = [];
    reachable();
    for (let attempt = 0; attempt < (given ? 1 : CODE_ATTEMPTS); attempt++) {
      const code = given ?? options.staging.freshCode();
      // The summary the room will have once created (creator seated, the engine's defaults),
      // so a lookup or listing through any node before the home's first refresh answers what
      // the room is, not a placeholder (docs/spec/SERVER.md §8.3, docs/spec/EXTENSIONS.md E5).
      const summary = engine.creationSummary(conn, data, code);
      // No session: the connection is gone (the edge drops what is resolved for it); no claim.
      if (summary === undefined) return { kind: "local" };
      const roomId = crypto.randomUUID();
      const record: DirectoryRecord = {
        roomId,
        // The app's namespace, as the home's directory entries name it (docs/spec/SERVER.md §3.7).
        gameName: gameScope(data.game_name, appId),
        roomCode: code,
        createdAt: now,
        home: node,
        ...(appId !== undefined ? { appId } : {}),
        // The engine's `creatorIp` of the room (the same client IP key), for the per-IP cap.
        ...(ip !== "" ? { creatorIp: ip } : {}),
        summary,
      };
      let settle!: () => void;
      uncreated.set(roomId, new Promise<void>((resolve) => settle = resolve));
      const done = () => {
        uncreated.delete(roomId);
        settle();
      };
      let claimed: ClaimResult;
      try {
        claimed = await store.claim(record, caps, staleRecord);
      } catch (error) {
        done();
        // The claim may have run although its answer never came: a code held by no room. One
        // Redis refused (OOM, MISCONF, READONLY: its first write is checked) wrote nothing
        // (docs/spec/SERVER.md §8.5.5 "Redis full", "Redis refuses writes").
        if (refusalReason(error) === undefined) release(record);
        throw error;
      }
      if (claimed.status === "ok") {
        return {
          kind: "local",
          prepare: () => options.staging.stage(roomId, given ? undefined : code),
          after: () => {
            options.staging.clear();
            // The engine may still refuse the creation after the claim (max_players, an app's
            // max_players_per_room, maintenance) or the connection may be gone: a claim no room
            // holds is released at once, so its code is free and no cap counts it (§8.3).
            if (!engine.hasRoomId(roomId)) release(record);
            done();
          },
        };
      }
      done();
      if (claimed.status === "maintenance") {
        return joinFailedReply(MAINTENANCE_REASON, "SERVICE_UNAVAILABLE", true);
      }
      if (claimed.status === "capped") {
        const reason = claimed.scope === "game"
          ? `Game \`${data.game_name}\` already has ${claimed.count} rooms (limit ${claimed.limit})`
          : claimed.scope === "ip"
          ? `Your address already has ${claimed.count} rooms of game \`${data.game_name}\` (limit ${claimed.limit})`
          : `App \`${appId}\` already has ${claimed.count} rooms (limit ${claimed.limit})`;
        return joinFailedReply(reason, "MAX_ROOMS_PER_GAME_EXCEEDED", true);
      }
      // Taken meanwhile: join the winner (a given code) or try another (a generated one).
      if (given) {
        if (claimed.record.home !== node) return { kind: "remote", home: claimed.record.home };
        await created(claimed.record.roomId);
        return { kind: "local" };
      }
      events.push({ type: "code_collision" });
    }
    return joinFailedReply("Failed to create room", "ROOM_CREATION_FAILED", true);
  };

  const joinRoom = async (
    take: typeof takeToken,
    conn: string,
    message: Extract<ClientMessage, { type: "JoinRoom" }>,
    ip: string,
    now: number,
    staleHome?: NodeId,
  ): Promise<Resolution> => {
    const data = message.data;
    // Join-only (`create: "never"`, docs/spec/EXTENSIONS.md E9) never claims a code: without a
    // code it fails at the code check, with an unknown one it gets ROOM_NOT_FOUND.
    const joinOnly = data.create === "never";
    const creating = data.room_code === undefined && !joinOnly;
    const limited = await firstToken(take, message, ip, now);
    if (limited) return limited;
    // Problems the engine reports before resolution (its steps 2–6, max_players included):
    // the local engine answers them, and no code is claimed for a request it would refuse.
    if (engine.joinRefused(conn, data)) return { kind: "local" };
    if (creating) return claimAndCreate(conn, data, ip, now);
    const code = data.room_code!.toUpperCase();
    const scope = gameScope(data.game_name, engine.sessionMeta(conn)?.appId);
    const here = engine.lookup(scope, code) !== undefined;
    if (here && !conflicted(scope, code) && staleHome === undefined) {
      return { kind: "local" };
    }
    reachable();
    const resolved = await store.resolveCode(scope, code);
    if (resolved.status === "found" && resolved.home === node && staleHome === undefined) {
      // Named here: a room claimed by another request of this node may be about to be created
      // (wait for it), or may have been created while this lookup was answered. Join it.
      await created(resolved.record.roomId);
      if (engine.lookup(scope, code) !== undefined) return { kind: "local" };
    }
    let staleRecord: DirectoryRecord | undefined;
    if (resolved.status === "found") {
      if (!(await stale(resolved, staleHome))) {
        if (resolved.homeAlive) return { kind: "remote", home: resolved.home };
        return reply(unavailable(message));
      }
      staleRecord = resolved.entry;
    }
    // A conflicted room here whose rival's entry is gone: it takes the code back at its refresh.
    if (here && staleHome === undefined) return { kind: "local" };
    if (options.inGrace(now)) return reply(unavailable(message));
    // Not in the directory: the local engine answers a join-only request ROOM_NOT_FOUND.
    if (joinOnly) return { kind: "local" };
    // Maintenance mode refuses a creation before its creation token, as the engine does
    // (the claim refuses it too, when it was turned on meanwhile; docs/spec/EXTENSIONS.md E12).
    if (resolved.maintenance === true) {
      return joinFailedReply(MAINTENANCE_REASON, "SERVICE_UNAVAILABLE", true);
    }
    const limitedCreate = await take("creation", ip, now);
    if (limitedCreate) return rateLimited(limitedCreate, "create", true);
    return claimAndCreate(conn, data, ip, now, staleRecord);
  };

  const joinAsSpectator = async (
    take: typeof takeToken,
    conn: string,
    message: Extract<ClientMessage, { type: "JoinAsSpectator" }>,
    ip: string,
    now: number,
    staleHome?: NodeId,
  ): Promise<Resolution> => {
    const data = message.data;
    const limited = await firstToken(take, message, ip, now);
    if (limited) return limited;
    // Problems the engine reports in the spec's order (a player of a room homed here included:
    // "Already in a room", docs/spec/PROTOCOL.md §7.9): let the local engine answer them. A
    // player removed from its room before the engine runs the request is resolved again: the
    // engine would look for the room here only (docs/spec/SERVER.md §8.4.3).
    const refusedHere = () =>
      checkGameName(data.game_name, options.maxGameNameLength) !== undefined ||
      checkPlayerName(data.spectator_name, options.nameRules) !== undefined ||
      engine.binding(conn) === "player" ||
      checkRoomCode(data.room_code, options.roomCodeLength) !== undefined;
    if (refusedHere()) return { kind: "local", holds: refusedHere };
    const code = data.room_code.toUpperCase();
    const scope = gameScope(data.game_name, engine.sessionMeta(conn)?.appId);
    const here = engine.lookup(scope, code) !== undefined;
    if (here && !conflicted(scope, code)) return { kind: "local" };
    reachable();
    const resolved = await store.resolveCode(scope, code);
    if (resolved.status === "found" && resolved.home === node && staleHome === undefined) {
      // Named here: a room claimed here may be about to be created, or was meanwhile.
      await created(resolved.record.roomId);
      if (engine.lookup(scope, code) !== undefined) return { kind: "local" };
    }
    if (resolved.status === "found" && !(await stale(resolved, staleHome))) {
      if (resolved.homeAlive) return { kind: "remote", home: resolved.home };
      return reply(unavailable(message));
    }
    if (here) return { kind: "local" };
    if (options.inGrace(now)) return reply(unavailable(message));
    return reply({
      type: "SpectatorJoinFailed",
      data: { reason: "Room not found", error_code: "ROOM_NOT_FOUND" },
    });
  };

  const reconnect = async (
    take: typeof takeToken,
    conn: string,
    message: Extract<ClientMessage, { type: "Reconnect" }>,
    ip: string,
    staleHome: NodeId | undefined,
    now: number,
  ): Promise<Resolution> => {
    const failed = (reason: string, code: ErrorCode): Resolution =>
      reply({ type: "ReconnectionFailed", data: { reason, error_code: code } }, [{
        type: "reconnect_failed",
        errorCode: code,
      }]);
    const roomGone = () => failed("Room no longer exists", "RECONNECTION_FAILED");
    const limited = await firstToken(take, message, ip, now);
    if (limited) return limited;
    const roomId = message.data.room_id;
    // A room homed here is answered by the local engine from its token records.
    if (engine.hasRoomId(roomId)) return { kind: "local" };
    // So is a member of a room homed here, player or spectator ("Already in a room",
    // docs/spec/PROTOCOL.md §7.11.4), while it still is one when the engine runs the request:
    // removed before that, it is resolved again by the room id (docs/spec/SERVER.md §8.4.3), as
    // the engine here does not hold that room's token records.
    const member = () => engine.binding(conn) !== undefined;
    if (member()) return { kind: "local", holds: member };
    const resolved = await store.resolveRoomId(roomId);
    switch (resolved.status) {
      case "absent":
        if (options.inGrace(now)) return reply(unavailable(message));
        // The local engine answers RECONNECTION_TOKEN_INVALID, as in single-instance mode.
        return { kind: "local" };
      case "gone":
      case "found": {
        // A room id is homed on one instance for its whole life, and that instance keeps the
        // room's token records: while it is alive its engine answers, as one process would
        // (checks 2–4; docs/spec/SERVER.md §8.4.3). Only a home that is gone (or a tombstone
        // that does not name it) leaves the answer to the directory.
        const home = resolved.home;
        if (home === node) return { kind: "local" };
        if (home === undefined || home === staleHome) return roomGone();
        if (resolved.status === "gone") {
          return resolved.homeAlive ? { kind: "remote", home } : roomGone();
        }
        if (resolved.homeAlive) return { kind: "remote", home };
        return (await options.isDead(home)) ? roomGone() : reply(unavailable(message));
      }
    }
  };

  return async (conn, message, ip, now, attempt) => {
    const staleHome = attempt.stale;
    // Each bucket at most once per request, over all its attempts.
    const take: typeof takeToken = (kind, ip, now) => {
      if (attempt.drawn.has(kind)) return Promise.resolve(undefined);
      attempt.drawn.add(kind);
      return takeToken(kind, ip, now);
    };
    try {
      if (attempt.memberOf !== undefined) {
        return await firstToken(take, message, ip, now) ??
          { kind: "remote", home: attempt.memberOf };
      }
      switch (message.type) {
        case "JoinRoom":
          return await joinRoom(take, conn, message, ip, now, staleHome);
        case "JoinAsSpectator":
          return await joinAsSpectator(take, conn, message, ip, now, staleHome);
        case "Reconnect":
          return await reconnect(take, conn, message, ip, staleHome, now);
        default:
          return { kind: "local" };
      }
    } catch (error) {
      // Redis unreachable, too slow or refusing (docs/spec/SERVER.md §8.4.3, §8.5.5): the link
      // and refusal reports tell the operator. Anything else is a bug here: an ERROR line and
      // `errors_internal` (§7.4, §6.3 #26). The client gets SERVICE_UNAVAILABLE either way.
      const fields = { type: message.type, connection_id: conn };
      if (!logFault(log, error, "Cannot resolve the {type} of {connection_id}", fields)) {
        return reply(unavailable(message));
      }
      return reply(unavailable(message), [{ type: "internal_error", connectionId: conn }]);
    }
  };
}

function rateLimited(reason: string, scope: "create" | "join", creating: boolean): Resolution {
  return {
    kind: "reply",
    message: { type: "RoomJoinFailed", data: { reason, error_code: "RATE_LIMIT_EXCEEDED" } },
    events: [
      { type: "join_failed", errorCode: "RATE_LIMIT_EXCEEDED", creating },
      { type: "rate_limited", scope },
    ],
  };
}
