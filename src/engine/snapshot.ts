/**
 * Rooms that survive a restart (single instance; docs/spec/SERVER.md §2.7 `server.state_file`, README
 * "Rooms survive a restart"): the snapshot of every room, seat, authority, ready set, the rooms
 * spectators watch, token digests (never tokens) and replay buffers, built and restored by pure
 * functions. Reading and writing the file is the server's business (`src/state_file.ts`).
 *
 * Format (JSON, {@linkcode SNAPSHOT_VERSION}): `{format, version, saved_at, rooms: [...]}`. A
 * restore either applies the whole snapshot or nothing: everything is checked before the first
 * room is built. Every restored seat is held for `reconnectionWindowMs` from the restore, so its
 * player resumes with `Reconnect` and the token it had (docs/spec/PROTOCOL.md §7.11).
 *
 * @module
 */
import { z } from "zod";
import { ConnectionInfo } from "../protocol/messages.ts";
import type { HomeDirectory } from "./directory.ts";
import type { Effect } from "./effects.ts";
import type { EngineOptions } from "./options.ts";
import type { Reconnection } from "./reconnection.ts";
import { gameScope, Room, roomKey } from "./room.ts";
import { checkGameName, checkPlayerName, checkRoomCode, nameKey } from "./validation.ts";

/** The `format` tag of a snapshot file. */
export const SNAPSHOT_FORMAT = "signal-fish-rooms";
/** The snapshot format version this build writes and reads; any other is refused. */
export const SNAPSHOT_VERSION = 1;

const SnapshotSeat = z.object({
  id: z.string().min(1),
  name: z.string(),
  connected_at: z.string(),
  connection_info: ConnectionInfo.nullable(),
  /** Digest of the seat's valid reconnection token (`EngineOptions.tokenDigest`), or null. */
  token_digest: z.string().min(1).nullable(),
  /** The app the token is bound to (auth enabled), or null. */
  token_app_id: z.string().nullable(),
  /** The seat's last connection had opted in to presence events (docs/spec/EXTENSIONS.md E10). */
  presence: z.boolean(),
  /** The replay buffer: serialised server messages, oldest first (docs/spec/PROTOCOL.md §7.11.2). */
  replay: z.array(z.string()),
  replay_truncated: z.boolean(),
});

const SnapshotSpectator = z.object({ id: z.string(), name: z.string(), connected_at: z.string() });

const SnapshotRoom = z.object({
  id: z.string().min(1),
  code: z.string().min(1),
  game_name: z.string(),
  max_players: z.number().int().min(1).max(255),
  supports_authority: z.boolean(),
  relay_type: z.string(),
  authority_handover: z.boolean(),
  app_id: z.string().nullable(),
  /**
   * The creating connection's client IP key (docs/spec/SERVER.md §1.9), or null when unknown: the
   * room still counts toward that address's `server.max_rooms_per_ip` after the restart (§3.7).
   * Absent in files of builds before it (read as null).
   */
  creator_ip: z.string().min(1).nullable().optional(),
  created_at: z.number(),
  /** Player id of the authority holder, or null. */
  authority: z.string().nullable(),
  /** Player ids of ready seats, in the order they became ready. */
  ready: z.array(z.string()),
  /** Seats in the order they were taken (the order authority handover follows, E11). */
  seats: z.array(SnapshotSeat),
  /**
   * Spectators watching at the time of the snapshot. Recorded, not re-attached: a spectator has
   * no token, so it joins again with `JoinAsSpectator`; its room is restored.
   */
  spectators: z.array(SnapshotSpectator),
});

const Snapshot = z.object({
  format: z.literal(SNAPSHOT_FORMAT),
  version: z.number(),
  saved_at: z.number(),
  /**
   * Taken while the server went on serving (`server.state_save_interval_secs`, or the file that
   * replaces a restored one at start), not at its shutdown: a restore of it follows a crash, and
   * what the rooms relayed after it is lost, so every restored seat's replay is truncated
   * (docs/spec/SERVER.md §2.7, docs/spec/PROTOCOL.md §7.11.2). Absent in files of builds before it
   * (read as false).
   */
  while_running: z.boolean().optional(),
  rooms: z.array(SnapshotRoom),
});

/** A snapshot of every room of one engine (JSON-serialisable as is). */
export type RoomsSnapshot = z.infer<typeof Snapshot>;
/** One room of a {@linkcode RoomsSnapshot}. */
export type SnapshotRoom = z.infer<typeof SnapshotRoom>;

/** The engine parts a snapshot reads and a restore writes. */
export interface SnapshotParts {
  options: EngineOptions;
  directory: HomeDirectory;
  reconnection: Reconnection;
}

/**
 * Builds the snapshot of every room at `now` (ms). A connected seat is recorded like a held one
 * with an empty replay buffer (its socket is about to go with the process). `whileRunning`: the
 * server goes on serving after it (a snapshot while running, not the shutdown's), recorded as
 * `while_running`. Throws a `TypeError` when `options.tokenDigest` is missing.
 */
export function buildSnapshot(
  parts: SnapshotParts,
  now: number,
  whileRunning = false,
): RoomsSnapshot {
  const { directory, reconnection } = parts;
  const rooms: SnapshotRoom[] = [];
  for (const room of directory.rooms()) {
    const meta = directory.meta(room);
    rooms.push({
      id: room.id,
      code: room.code,
      game_name: room.gameName,
      max_players: room.maxPlayers,
      supports_authority: room.supportsAuthority,
      relay_type: room.relayType,
      authority_handover: room.authorityHandover,
      app_id: meta.appId ?? null,
      creator_ip: room.creatorIp ?? null,
      created_at: meta.createdAt,
      authority: room.authority,
      ready: [...room.ready],
      seats: [...room.seats.values()].map((seat) => {
        const hold = reconnection.held(seat.id);
        const token = reconnection.validTokenDigest(seat.id);
        return {
          id: seat.id,
          name: seat.name,
          connected_at: seat.connectedAt,
          connection_info: seat.connectionInfo ?? null,
          token_digest: token?.digest ?? null,
          token_app_id: token?.appId ?? null,
          presence: hold
            ? hold.presence === true
            : reconnection.sessionOf(seat.id)?.presence === true,
          replay: hold ? [...hold.frames] : [],
          replay_truncated: hold?.truncated ?? false,
        };
      }),
      spectators: room.spectatorInfos(),
    });
  }
  return {
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    saved_at: now,
    ...(whileRunning ? { while_running: true } : {}),
    rooms,
  };
}

/** The outcome of {@linkcode decodeSnapshot} and {@linkcode restoreSnapshot}. */
export type SnapshotOutcome<T> = { ok: true; value: T } | { ok: false; reason: string };

/**
 * Parses and checks the text of a snapshot file: JSON, the format tag, {@linkcode
 * SNAPSHOT_VERSION}, then every field's shape. Never throws; the reason names the first problem,
 * and quotes nothing of a text that is not JSON (a file that is not a snapshot may be anything).
 */
export function decodeSnapshot(text: string): SnapshotOutcome<RoomsSnapshot> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    // The parser's message quotes the text, which may be any file's: only the position is kept.
    const message = (error as Error).message;
    const position = /at position (\d+)/.exec(message)?.[1];
    const where = position !== undefined
      ? ` (at character ${position})`
      : /end of JSON input/.test(message)
      ? " (it ends early)"
      : "";
    return { ok: false, reason: `not JSON${where}` };
  }
  const head = raw as { format?: unknown; version?: unknown } | null;
  if (typeof head !== "object" || head === null || head.format !== SNAPSHOT_FORMAT) {
    return { ok: false, reason: `not a ${SNAPSHOT_FORMAT} snapshot` };
  }
  if (head.version !== SNAPSHOT_VERSION) {
    return {
      ok: false,
      reason: `format version ${
        JSON.stringify(head.version)
      }, this build reads ${SNAPSHOT_VERSION}`,
    };
  }
  const parsed = Snapshot.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, reason: `${issue?.path.join(".") || "snapshot"}: ${issue?.message}` };
  }
  return { ok: true, value: parsed.data };
}

/**
 * Restores `snapshot` into an engine that has no rooms yet, at `now` (ms): every room with its
 * seats (in order), ready set, authority, app and creator's address; every seat held until `now +
 * reconnectionWindowMs` with its replay buffer and its token digest, the replay marked truncated
 * when it was truncated or the snapshot was taken `while_running` (what the server relayed after
 * it is lost, docs/spec/SERVER.md §2.7); activity and empty-room
 * timers restart at `now`. Checks the whole snapshot first (unique rooms and players, authority
 * and ready players among the seats, seats within `max_players`, replayed messages that are
 * JSON server messages) and changes nothing when a check fails. Returns the number of rooms
 * and seats restored and the `directory` effects that publish the restored rooms (docs/spec/SERVER.md
 * §8.3), for the edge to apply.
 */
export function restoreSnapshot(
  parts: SnapshotParts,
  snapshot: RoomsSnapshot,
  now: number,
): SnapshotOutcome<{ rooms: number; seats: number; effects: Effect[]; drift: string[] }> {
  const { options, directory, reconnection } = parts;
  const problem = checkSnapshot(snapshot, directory, options);
  if (problem !== undefined) return { ok: false, reason: problem };
  const drift = configurationDrift(snapshot, options);
  let seats = 0;
  const effects: Effect[] = [];
  for (const saved of snapshot.rooms) {
    const room = new Room({
      id: saved.id,
      code: saved.code,
      gameName: saved.game_name,
      maxPlayers: saved.max_players,
      supportsAuthority: saved.supports_authority,
      relayType: saved.relay_type,
      authorityHandover: saved.authority_handover,
      now,
      // The app namespace the room was created in (auth enabled, issue 14 item 12).
      appId: saved.app_id ?? undefined,
      // Its creator's address: the room still counts toward `server.max_rooms_per_ip` (§3.7).
      creatorIp: saved.creator_ip ?? undefined,
    });
    directory.add(room, saved.app_id ?? undefined, saved.created_at);
    for (const seat of saved.seats) {
      room.addSeat({
        id: seat.id,
        name: seat.name,
        nameKey: nameKey(seat.name),
        connectedAt: seat.connected_at,
        ...(seat.connection_info ? { connectionInfo: seat.connection_info } : {}),
      });
      reconnection.restoreHold(room, seat.id, {
        digest: seat.token_digest ?? undefined,
        appId: seat.token_app_id ?? undefined,
        frames: seat.replay,
        // A snapshot taken while the server went on serving is restored after a crash: what
        // was relayed to the seat after it is lost, and its Reconnected says so.
        truncated: seat.replay_truncated || snapshot.while_running === true,
        presence: seat.presence,
      }, now);
      seats++;
    }
    for (const id of saved.ready) room.ready.add(id);
    room.authority = saved.authority;
    room.emptySince = room.seats.size === 0 ? now : null;
    if (room.seats.size === 0) directory.markEmpty(room);
    // Every restored seat is held, but the room is not counted unattended (reclaimable at a full
    // cap, docs/spec/SERVER.md §3.7) yet: its players are all reconnecting after the restart, and
    // the first creations must not end their seats. It becomes so once its attendance changes
    // here (a seat resumed and dropped again, a hold that ends, a join, a spectator).
    effects.push(directory.refresh(room));
  }
  return { ok: true, value: { rooms: snapshot.rooms.length, seats, effects, drift } };
}

/**
 * What of `snapshot` the current configuration would not admit from a client (docs/spec/SERVER.md
 * §2.7 `state_file` note): rooms over `server.max_rooms_per_game`, `max_players` over
 * `protocol.max_players_limit`, codes of another `protocol.room_code_length`, game names and
 * player names the current rules refuse. One note per kind (a count and the first room, never a
 * name); empty when nothing drifted. Such rooms are restored as they were — a restart changes no
 * room's size, code or members — and go on until they end; the notes tell the operator why the
 * configured limits do not hold yet.
 */
export function configurationDrift(snapshot: RoomsSnapshot, options: EngineOptions): string[] {
  const notes: string[] = [];
  const first = new Map<string, { count: number; where: string }>();
  const note = (kind: string, where: string, count = 1) => {
    if (count === 0) return;
    const seen = first.get(kind);
    if (seen) seen.count += count;
    else first.set(kind, { count, where });
  };
  const perGame = new Map<string, number>();
  for (const room of snapshot.rooms) {
    const where = `${room.game_name}/${room.code}`;
    const scope = gameScope(room.game_name, room.app_id ?? undefined);
    perGame.set(scope, (perGame.get(scope) ?? 0) + 1);
    if (room.max_players > options.maxPlayersLimit) {
      note(`max_players over protocol.max_players_limit (${options.maxPlayersLimit})`, where);
    }
    if (checkRoomCode(room.code, options.roomCodeLength) !== undefined) {
      note(
        `a code protocol.room_code_length (${options.roomCodeLength}) refuses (joinable only by Reconnect)`,
        where,
      );
    }
    if (checkGameName(room.game_name, options.maxGameNameLength) !== undefined) {
      note("a game name the current rules refuse", where);
    }
    const names = [...room.seats, ...room.spectators].filter((seat) =>
      checkPlayerName(seat.name, options.nameRules) !== undefined
    ).length;
    note("a player or spectator name protocol.player_name_validation refuses", where, names);
  }
  let overCap = 0;
  for (const count of perGame.values()) if (count > options.maxRoomsPerGame) overCap++;
  if (overCap > 0) {
    notes.push(
      `${overCap} games over server.max_rooms_per_game (${options.maxRoomsPerGame}): none of their rooms can be created until they are under it`,
    );
  }
  for (const [kind, { count, where }] of first) {
    notes.push(`${count} with ${kind}, first in room ${where}`);
  }
  return notes;
}

/** The first reason `snapshot` cannot be restored into `directory`, or `undefined`. */
function checkSnapshot(
  snapshot: RoomsSnapshot,
  directory: HomeDirectory,
  options: EngineOptions,
): string | undefined {
  if (directory.size > 0) return "the engine already has rooms";
  if (!options.enableReconnection && snapshot.rooms.some((room) => room.seats.length > 0)) {
    return "server.enable_reconnection is false, so restored seats could never be resumed";
  }
  if (!options.tokenDigest) return "EngineOptions.tokenDigest is not set";
  const roomIds = new Set<string>();
  const keys = new Set<string>();
  const players = new Set<string>();
  for (const room of snapshot.rooms) {
    const where = `room ${room.game_name}/${room.code}`;
    if (roomIds.has(room.id)) return `${where}: duplicate room id`;
    roomIds.add(room.id);
    const key = roomKey(gameScope(room.game_name, room.app_id ?? undefined), room.code);
    if (keys.has(key)) return `${where}: duplicate room code`;
    keys.add(key);
    if (room.code !== room.code.toUpperCase()) return `${where}: room code is not upper-case`;
    if (room.seats.length > room.max_players) return `${where}: more seats than max_players`;
    const seatIds = new Set<string>();
    for (const seat of room.seats) {
      if (players.has(seat.id)) return `${where}: player ${seat.id} is seated twice`;
      players.add(seat.id);
      seatIds.add(seat.id);
      for (const frame of seat.replay) {
        if (!isServerMessageText(frame)) return `${where}: a replayed message is not JSON`;
      }
    }
    if (room.authority !== null && (!seatIds.has(room.authority) || !room.supports_authority)) {
      return `${where}: the authority holder has no seat`;
    }
    if (new Set(room.ready).size !== room.ready.length) return `${where}: duplicate ready player`;
    if (room.ready.some((id) => !seatIds.has(id))) return `${where}: a ready player has no seat`;
  }
  return undefined;
}

/** True when `text` is a JSON object with a string `type` (a serialised server message). */
function isServerMessageText(text: string): boolean {
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null && typeof value.type === "string";
  } catch {
    return false;
  }
}
