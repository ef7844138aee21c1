/**
 * Reconnection (PROTOCOL.md §7.11): held seats and their replay buffers, reconnection token
 * records, `Reconnect` with takeover, and the routing of engine output to connection ids
 * ({@linkcode Reconnection.route}): identities of held seats go to replay buffers, adopted
 * player ids to the connection that adopted them.
 *
 * @module
 */
import { encodeServerMessage } from "../protocol/codec.ts";
import type { ErrorCode } from "../protocol/error_codes.ts";
import { type ClientData, RawJson } from "../protocol/messages.ts";
import { type ConnId, type Effect, event, send } from "./effects.ts";
import type { EngineOptions } from "./options.ts";
import { type Room, roomSnapshot } from "./room.ts";
import { secretEquals } from "../util/secrets.ts";
import type { Session, Sessions } from "./sessions.ts";
import { utf8Length } from "../protocol/utf8.ts";

/** A seat held after an unexpected disconnect, with its replay buffer (PROTOCOL.md §7.11.2). */
export interface Hold {
  readonly room: Room;
  readonly playerId: string;
  /** The connection that dropped (frames still addressed to it land here). */
  readonly conn: ConnId;
  /** When the window ends, ms. */
  readonly expiresAt: number;
  /** Serialised server messages in delivery order, and their UTF-8 sizes. */
  frames: string[];
  sizes: number[];
  bytes: number;
  /** Some message for this seat was lost (EXTENSIONS.md E3). */
  truncated: boolean;
  /**
   * The dropped connection had opted in to presence events (EXTENSIONS.md E10), so
   * `PlayerDisconnected` of others is buffered for this seat. @default false
   */
  presence?: boolean;
}

/** What the server remembers of one issued reconnection token (PROTOCOL.md §7.11.1). */
interface TokenRecord {
  readonly playerId: string;
  readonly token: string;
  readonly room: Room;
  /** The app the seat's connection authenticated with (auth enabled), else undefined. */
  readonly appId: string | undefined;
  state: "valid" | "used" | "superseded" | "left" | "expired" | "room_gone";
  /** When it stopped being valid, ms (records are forgotten a window later). */
  invalidSince: number;
  /**
   * Restored from a snapshot (SERVER.md §2.7 `state_file`): only the token's digest is known
   * (`token` is then empty) and a presented token is compared by its digest.
   */
  readonly digest?: string;
}

/** Why a connection went away, as far as the replay buffer is concerned (SERVER.md §5.2). */
export interface DisconnectLoss {
  /** Messages were discarded (slow consumer): the hold starts truncated. */
  truncated?: boolean;
  /** Frames that could not be written, to replay first, oldest first. */
  unsent?: readonly string[];
}

/** Releases a seat whose hold expired (the seat release sequence, PROTOCOL.md §7.3.3). */
export type ReleaseSeat = (
  room: Room,
  playerId: string,
  now: number,
  reason: "expired",
) => Effect[];

/** Held seats, token records and adopted identities of one engine. */
export class Reconnection {
  readonly #options: EngineOptions;
  readonly #sessions: Sessions;
  readonly #releaseSeat: ReleaseSeat;
  /** Held seats by player id. */
  readonly #holds = new Map<string, Hold>();
  /** Held seats by the connection id that dropped. */
  readonly #heldByConn = new Map<ConnId, Hold>();
  /** Adopted player id → the connection id that adopted it with a `Reconnect`. */
  readonly #connByAdoptedPlayer = new Map<string, ConnId>();
  /** Token records by player id (a handful each: the valid one and recently invalidated ones). */
  readonly #tokens = new Map<string, TokenRecord[]>();
  /** Records that stopped being valid, oldest first, to forget a window later. */
  readonly #invalidated: TokenRecord[] = [];
  /** Messages appended to replay buffers so far (`Engine.stats().eventsBuffered`). */
  #eventsBuffered = 0;

  /** `releaseSeat` is the room rules' seat release, called when a hold expires. */
  constructor(options: EngineOptions, sessions: Sessions, releaseSeat: ReleaseSeat) {
    this.#options = options;
    this.#sessions = sessions;
    this.#releaseSeat = releaseSeat;
  }

  /** Number of held seats. */
  get heldSeats(): number {
    return this.#holds.size;
  }

  /** Messages appended to replay buffers since the engine started (SERVER.md §6.3 #37). */
  get eventsBuffered(): number {
    return this.#eventsBuffered;
  }

  /** The hold of `playerId`'s seat, if held. */
  held(playerId: string): Hold | undefined {
    return this.#holds.get(playerId);
  }

  /** The connection id that currently carries identity `playerId`. */
  connOf(playerId: string): ConnId {
    return this.#connByAdoptedPlayer.get(playerId) ?? playerId;
  }

  /** The live session whose identity is `playerId`, if any. */
  sessionOf(playerId: string): Session | undefined {
    const session = this.#sessions.get(this.connOf(playerId));
    return session?.playerId === playerId ? session : undefined;
  }

  /** Forgets that connection `conn` adopted identity `playerId` (the connection closed). */
  forgetAdopted(playerId: string, conn: ConnId): void {
    if (playerId !== conn) this.#connByAdoptedPlayer.delete(playerId);
  }

  /** Holds a dropped player's seat (PROTOCOL.md §7.11.2); nobody is told. */
  hold(room: Room, playerId: string, conn: ConnId, now: number, loss: DisconnectLoss): Effect[] {
    const hold: Hold = {
      room,
      playerId,
      conn,
      expiresAt: now + this.#options.reconnectionWindowMs,
      frames: [],
      sizes: [],
      bytes: 0,
      truncated: loss.truncated ?? false,
    };
    this.#holds.set(playerId, hold);
    this.#heldByConn.set(conn, hold);
    for (const frame of loss.unsent ?? []) this.append(hold, frame, utf8Length(frame));
    return [event({
      type: "seat_held",
      gameName: room.gameName,
      roomCode: room.code,
      playerId,
      truncated: hold.truncated,
    })];
  }

  /**
   * A room is being deleted: `playerId`'s token becomes `room_gone` and a held seat is dropped
   * with its replay buffer. Returns true when the seat was held (nobody to tell).
   */
  roomGone(playerId: string, now: number): boolean {
    this.invalidateToken(playerId, "room_gone", now);
    return this.dropHold(playerId);
  }

  /**
   * Drops `playerId`'s held seat and its replay buffer without releasing the seat (an operator
   * removes the player, EXTENSIONS.md E12). Returns true when the seat was held.
   */
  dropHold(playerId: string): boolean {
    const hold = this.#holds.get(playerId);
    if (!hold) return false;
    this.#holds.delete(playerId);
    this.#heldByConn.delete(hold.conn);
    return true;
  }

  /** Ends a hold whose window is over: the seat release sequence (PROTOCOL.md §7.11.3). */
  #expire(hold: Hold, now: number): Effect[] {
    this.#holds.delete(hold.playerId);
    this.#heldByConn.delete(hold.conn);
    this.invalidateToken(hold.playerId, "expired", now);
    const { room } = hold;
    return [
      event({
        type: "seat_expired",
        gameName: room.gameName,
        roomCode: room.code,
        playerId: hold.playerId,
      }),
      ...this.#releaseSeat(room, hold.playerId, now, "expired"),
    ];
  }

  /**
   * Appends one serialised message of `size` UTF-8 bytes to a replay buffer, dropping the oldest
   * to stay within `eventBufferSize` messages and `eventBufferMaxBytes` bytes (PROTOCOL.md
   * §7.11.2); any drop marks the buffer truncated.
   */
  append(hold: Hold, frame: string, size: number): void {
    const { eventBufferSize, eventBufferMaxBytes } = this.#options;
    if (eventBufferSize === 0 || size > eventBufferMaxBytes) {
      hold.truncated = true;
      return;
    }
    while (hold.frames.length >= eventBufferSize || hold.bytes + size > eventBufferMaxBytes) {
      hold.frames.shift();
      hold.bytes -= hold.sizes.shift()!;
      hold.truncated = true;
    }
    hold.frames.push(frame);
    hold.sizes.push(size);
    hold.bytes += size;
    this.#eventsBuffered++;
  }

  /**
   * Puts a frame that could not be written to connection `conn` into the replay buffer of the
   * seat held since that connection dropped (SERVER.md §5.2). Binary frames cannot be replayed,
   * so they mark the buffer truncated. Returns false when `conn` held no seat.
   */
  replayUndelivered(conn: ConnId, frame: string | Uint8Array): boolean {
    const hold = this.#heldByConn.get(conn);
    if (!hold) return false;
    if (typeof frame === "string") this.append(hold, frame, utf8Length(frame));
    else hold.truncated = true;
    return true;
  }

  /**
   * The once-a-second timer (SERVER.md §4.1): releases held seats whose window ended
   * (PROTOCOL.md §7.11.3), routing each expiry's effects at once, and forgets token records
   * invalid for longer than a window.
   */
  tick(now: number): Effect[] {
    const effects: Effect[] = [];
    for (const hold of [...this.#holds.values()]) {
      // Routed one expiry at a time: a later expiry in this loop must not change where the
      // earlier ones' messages go (a seat still held then gets them in its replay buffer).
      if (now >= hold.expiresAt) effects.push(...this.route(this.#expire(hold, now)));
    }
    // Forget records invalid for a window; they were queued in invalidation (time) order.
    const window = this.#options.reconnectionWindowMs;
    const queue = this.#invalidated;
    let head = 0;
    while (head < queue.length && now - queue[head]!.invalidSince >= window) {
      const record = queue[head++]!;
      const records = this.#tokens.get(record.playerId);
      const kept = records?.filter((r) => r !== record) ?? [];
      if (kept.length === 0) this.#tokens.delete(record.playerId);
      else this.#tokens.set(record.playerId, kept);
    }
    if (head > 0) queue.splice(0, head);
    return effects;
  }

  /** `Reconnect` (PROTOCOL.md §7.11.4–§7.11.5): resume a held seat or take over a live one. */
  reconnect(session: Session, data: ClientData<"Reconnect">, now: number): Effect[] {
    const effects: Effect[] = [];
    const fail = (reason: string, code: ErrorCode): Effect[] => [
      ...effects,
      send(session.playerId, { type: "ReconnectionFailed", data: { reason, error_code: code } }),
      event({ type: "reconnect_failed", errorCode: code }),
    ];
    if (!this.#options.enableReconnection) {
      return fail("Reconnection is not enabled", "RECONNECTION_FAILED");
    }
    if (session.playing || session.watching) return fail("Already in a room", "ALREADY_IN_ROOM");
    const playerId = data.player_id;
    const record = this.#findToken(playerId, data.auth_token);
    if (
      !record || record.room.id !== data.room_id ||
      (this.#options.auth?.required && record.appId !== session.app?.appId) ||
      !(record.state === "valid" || record.state === "expired" || record.state === "room_gone")
    ) {
      return fail("Invalid reconnection token", "RECONNECTION_TOKEN_INVALID");
    }
    let hold = this.#holds.get(playerId);
    if (hold && now >= hold.expiresAt) {
      // The window ended before the timer got to it: expire it now (PROTOCOL.md §7.11.3).
      effects.push(...this.#expire(hold, now));
      hold = undefined;
    }
    if (record.state === "expired") {
      return fail("Reconnection window has expired", "RECONNECTION_EXPIRED");
    }
    if (record.state === "room_gone") return fail("Room no longer exists", "RECONNECTION_FAILED");

    const room = record.room;
    let missed: RawJson[] = [];
    let truncated = false;
    if (hold) {
      missed = hold.frames.map((frame) => new RawJson(frame));
      truncated = hold.truncated;
      this.#holds.delete(playerId);
      this.#heldByConn.delete(hold.conn);
    } else {
      // Takeover: the seat is live on another socket (PROTOCOL.md §7.11.5 step 1).
      const oldConn = this.connOf(playerId);
      const old = this.#sessions.remove(oldConn);
      if (old) old.playing = undefined;
      effects.push({
        kind: "close",
        to: oldConn,
        code: 4001,
        reason: "Replaced by a new connection",
      });
    }
    session.playerId = playerId;
    session.playing = room;
    if (session.id === playerId) this.#connByAdoptedPlayer.delete(playerId);
    else this.#connByAdoptedPlayer.set(playerId, session.id);
    this.#invalidate(record, "used", now);
    room.lastActivity = now;
    effects.push(
      send(playerId, {
        type: "Reconnected",
        data: {
          ...roomSnapshot(room, playerId),
          missed_events: missed,
          reconnection_token: this.issueToken(playerId, room, now),
          replay_truncated: truncated,
        },
      }),
      event({
        type: "player_reconnected",
        gameName: room.gameName,
        roomCode: room.code,
        playerId,
        takeover: hold === undefined,
        missed: missed.length,
      }),
    );
    if (truncated) effects.push(event({ type: "replay_truncated" }));
    const others = room.membersExcept(playerId);
    if (others.length > 0) {
      effects.push(send(others, { type: "PlayerReconnected", data: { player_id: playerId } }));
    }
    return effects;
  }

  /** Mints the seat's token, superseding the previous one (PROTOCOL.md §7.11.1). */
  issueToken(playerId: string, room: Room, now: number): string {
    this.invalidateToken(playerId, "superseded", now);
    const token = this.#options.newToken();
    const records = this.#tokens.get(playerId);
    const appId = this.sessionOf(playerId)?.app?.appId;
    const record: TokenRecord = { playerId, token, room, appId, state: "valid", invalidSince: 0 };
    if (records) records.push(record);
    else this.#tokens.set(playerId, [record]);
    return token;
  }

  /** Moves the seat's valid token (if any) to `state`. */
  invalidateToken(playerId: string, state: TokenRecord["state"], now: number): void {
    for (const record of this.#tokens.get(playerId) ?? []) {
      if (record.state === "valid") this.#invalidate(record, state, now);
    }
  }

  #invalidate(record: TokenRecord, state: TokenRecord["state"], now: number): void {
    record.state = state;
    record.invalidSince = now;
    this.#invalidated.push(record);
  }

  /** The record of `token` among `playerId`'s, compared in constant time. */
  #findToken(playerId: string, token: string): TokenRecord | undefined {
    let found: TokenRecord | undefined;
    let digest: string | undefined;
    for (const record of this.#tokens.get(playerId) ?? []) {
      if (record.digest !== undefined) {
        digest ??= this.#digest(token);
        if (secretEquals(record.digest, digest)) found = record;
      } else if (secretEquals(record.token, token)) found = record;
    }
    return found;
  }

  #digest(token: string): string {
    const digest = this.#options.tokenDigest;
    if (!digest) throw new TypeError("EngineOptions.tokenDigest is required for snapshots");
    return digest(token);
  }

  /**
   * The digest of the seat's valid token and the app it is bound to, for a snapshot (SERVER.md
   * §2.7 `state_file`); `undefined` when the seat has no valid token. Tokens never leave here.
   */
  validTokenDigest(playerId: string): { digest: string; appId?: string } | undefined {
    for (const record of this.#tokens.get(playerId) ?? []) {
      if (record.state !== "valid") continue;
      const digest = record.digest ?? this.#digest(record.token);
      return record.appId === undefined ? { digest } : { digest, appId: record.appId };
    }
    return undefined;
  }

  /**
   * Puts a seat restored from a snapshot on hold until `now + reconnectionWindowMs`, with its
   * replay buffer (`frames`, serialised server messages in order) and, when `digest` is given,
   * a valid token record known by its digest, bound to `appId` (SERVER.md §2.7 `state_file`).
   */
  restoreHold(
    room: Room,
    playerId: string,
    seat: {
      digest?: string;
      appId?: string;
      frames: readonly string[];
      truncated: boolean;
      presence: boolean;
    },
    now: number,
  ): void {
    const hold: Hold = {
      room,
      playerId,
      conn: playerId,
      expiresAt: now + this.#options.reconnectionWindowMs,
      frames: [...seat.frames],
      sizes: seat.frames.map(utf8Length),
      bytes: 0,
      truncated: seat.truncated,
    };
    hold.bytes = hold.sizes.reduce((sum, size) => sum + size, 0);
    if (seat.presence) hold.presence = true;
    this.#holds.set(playerId, hold);
    this.#heldByConn.set(playerId, hold);
    if (seat.digest === undefined) return;
    const record: TokenRecord = {
      playerId,
      token: "",
      digest: seat.digest,
      room,
      appId: seat.appId,
      state: "valid",
      invalidSince: 0,
    };
    this.#tokens.set(playerId, [record]);
  }

  /**
   * Turns recipients (identities) into connection ids: messages for held seats go to their
   * replay buffers (serialised once per message), adopted identities map to their connection.
   * Costs nothing while no seat is held and no connection has adopted an identity.
   */
  route(effects: Effect[]): Effect[] {
    if (this.#holds.size === 0 && this.#connByAdoptedPlayer.size === 0) return effects;
    for (const effect of effects) {
      if (effect.kind !== "send") continue;
      let routed: ConnId[] | undefined;
      let size = -1;
      const to = effect.to;
      for (let i = 0; i < to.length; i++) {
        const id = to[i]!;
        const hold = this.#holds.get(id);
        const adopted = hold ? undefined : this.#connByAdoptedPlayer.get(id);
        if (!hold && adopted === undefined) {
          routed?.push(id);
          continue;
        }
        routed ??= to.slice(0, i);
        if (adopted !== undefined) {
          routed.push(adopted);
          continue;
        }
        effect.frame ??= encodeServerMessage(effect.message);
        if (size < 0) size = utf8Length(effect.frame);
        this.append(hold!, effect.frame, size);
      }
      if (routed) effect.to = routed;
    }
    return effects;
  }
}
