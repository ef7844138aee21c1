/**
 * Reconnection (docs/spec/PROTOCOL.md §7.11): held seats and their replay buffers, reconnection token
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
import { PerAddress } from "./per_address.ts";
import { type Room, roomSnapshot } from "./room.ts";
import { replayedPlayerDisconnected } from "./presence.ts";
import { sha256 } from "../util/secrets.ts";
import type { Session, Sessions } from "./sessions.ts";
import { utf8Length } from "../protocol/utf8.ts";
import type { TokenBucket } from "./token_bucket.ts";

/** A seat held after an unexpected disconnect, with its replay buffer (docs/spec/PROTOCOL.md §7.11.2). */
export interface Hold {
  readonly room: Room;
  readonly playerId: string;
  /** The connection that dropped (frames still addressed to it land here). */
  readonly conn: ConnId;
  /**
   * The client address key of the connection that dropped (docs/spec/SERVER.md §1.9), `""` when
   * unknown (a seat restored from a state file): the held seats' per-address share.
   */
  readonly ip: string;
  /** When the window ends, ms. */
  readonly expiresAt: number;
  /** Serialised server messages in delivery order, their UTF-8 sizes and append numbers. */
  frames: string[];
  sizes: number[];
  /** Engine-wide append number of each frame (the global budget drops the lowest first). */
  seqs: number[];
  bytes: number;
  /** Some message for this seat was lost (docs/spec/EXTENSIONS.md E3). */
  truncated: boolean;
  /**
   * The dropped connection had opted in to presence events (docs/spec/EXTENSIONS.md E10), so
   * `PlayerDisconnected` of others is buffered for this seat. @default false
   */
  presence?: boolean;
  /**
   * The dropped connection's lobby-change bucket (docs/spec/PROTOCOL.md §7.4 note), handed to the
   * connection that resumes the seat so that a `Reconnect` does not refill it; `undefined` when
   * that connection never made one (the resuming connection then starts a full one, whatever
   * it had before). @default undefined
   */
  lobbyChanges?: TokenBucket;
}

/**
 * How every buffered `PlayerDisconnected` frame begins (the server's own encoding,
 * docs/spec/PROTOCOL.md §2.1 field order): the replay leaves them out for a resuming connection
 * that did not opt in to presence events (docs/spec/EXTENSIONS.md E10).
 */
const PLAYER_DISCONNECTED_PREFIX = '{"type":"PlayerDisconnected",';

/**
 * Longest `Reconnect.auth_token` looked up, in UTF-8 bytes (docs/spec/PROTOCOL.md §7.11.4 check 2): longer
 * ones fail before any hashing.
 */
export const MAX_TOKEN_BYTES = 256;
/** Records of invalidated tokens kept per seat (the valid one comes on top). */
export const MAX_INVALID_RECORDS_PER_SEAT = 4;

/**
 * What the server remembers of one issued reconnection token (docs/spec/PROTOCOL.md §7.11.1): the token
 * itself only as its SHA-256 digest (the key of the record index).
 */
interface TokenRecord {
  readonly playerId: string;
  /** SHA-256 of the token, base64: found by digest in O(1), never by scanning. */
  readonly digest: string;
  /** The seat's room id (a `Reconnect` must name it, docs/spec/PROTOCOL.md §7.11.4 check 2). */
  readonly roomId: string;
  /**
   * The seat's room while the token is valid; dropped when it is invalidated, so the records kept
   * for a window afterwards (up to `server.max_token_records`) never keep a deleted room alive.
   */
  room: Room | undefined;
  /** The app the seat's connection authenticated with (auth enabled), else undefined. */
  readonly appId: string | undefined;
  state: "valid" | "used" | "superseded" | "left" | "expired" | "room_gone";
  /** When it stopped being valid, ms (records are forgotten a window later). */
  invalidSince: number;
  /** Already forgotten (early, for a bound): its queue entry is skipped. */
  forgotten?: boolean;
}

/**
 * An entry of the engine-wide replay order: frame `seq` of the seat held for `playerId`. It
 * names the player, not the hold: an ended hold (and its room) is not kept alive by the entries
 * still waiting for the next compaction.
 */
interface Buffered {
  readonly playerId: string;
  readonly seq: number;
}

/** The index key of a token: its SHA-256 digest, base64. */
function tokenDigest(token: string): string {
  return sha256(token).toBase64();
}

/** Why a connection went away, as far as the replay buffer is concerned (docs/spec/SERVER.md §5.2). */
export interface DisconnectLoss {
  /** Messages were discarded (slow consumer): the hold starts truncated. */
  truncated?: boolean;
  /** Frames that could not be written, to replay first, oldest first. */
  unsent?: readonly string[];
}

/** Releases a seat whose hold expired (the seat release sequence, docs/spec/PROTOCOL.md §7.3.3). */
export type ReleaseSeat = (
  room: Room,
  playerId: string,
  now: number,
  reason: "expired",
) => Effect[];

/**
 * Tells the room rules that a hold of a seat of `room` began or ended (a `Reconnect` resumed
 * it), so the room's place among the unattended rooms follows; returns their effects.
 */
export type AttendanceChanged = (room: Room) => Effect[];

/** Held seats, token records and adopted identities of one engine. */
export class Reconnection {
  readonly #options: EngineOptions;
  readonly #sessions: Sessions;
  readonly #releaseSeat: ReleaseSeat;
  readonly #attendanceChanged: AttendanceChanged;
  /** Held seats by player id. */
  readonly #holds = new Map<string, Hold>();
  /** Held seats by the connection id that dropped. */
  readonly #heldByConn = new Map<ConnId, Hold>();
  /** Adopted player id → the connection id that adopted it with a `Reconnect`. */
  readonly #connByAdoptedPlayer = new Map<string, ConnId>();
  /**
   * The token record a connection presented in the `Reconnect` that resumed its seat, until the
   * connection goes (cluster mode: `CLOSED{abandoned}` makes it valid again, docs/spec/SERVER.md §8.4.4).
   */
  readonly #resumedWith = new Map<ConnId, TokenRecord>();
  /** Every remembered token record by digest (O(1) lookup, issue 14 item 5). */
  readonly #records = new Map<string, TokenRecord>();
  /** The valid record of each seat (at most one, docs/spec/PROTOCOL.md §7.11.1). */
  readonly #validByPlayer = new Map<string, TokenRecord>();
  /** Invalidated records per seat, oldest first, at most {@linkcode MAX_INVALID_RECORDS_PER_SEAT}. */
  readonly #invalidByPlayer = new Map<string, TokenRecord[]>();
  /** Records that stopped being valid, oldest first, to forget a window later; from `#head`. */
  #invalidated: TokenRecord[] = [];
  #head = 0;
  /** Messages appended to replay buffers so far (`Engine.stats().eventsBuffered`). */
  #eventsBuffered = 0;
  /** Bytes in every replay buffer together (the global budget, issue 14 item 8). */
  #bufferedBytes = 0;
  /** Frames in every replay buffer together. */
  #bufferedFrames = 0;
  /** Messages dropped to stay within the global budget, since the engine started. */
  #budgetDrops = 0;
  /** Holds ended early for `maxHeldSeats`, since the engine started. */
  #evictions = 0;
  /** Holds ended early for `maxHeldSeatsPerIp`, since the engine started. */
  #addressEvictions = 0;
  /** Held seats by the address of the connection that dropped (the per-address share). */
  readonly #byAddress = new PerAddress<Hold>();
  /** Every buffered frame in append order, from `#orderHead` (stale entries are skipped). */
  #order: Buffered[] = [];
  #orderHead = 0;
  #nextSeq = 0;

  /**
   * `releaseSeat` is the room rules' seat release, called when a hold expires;
   * `attendanceChanged` is called when a hold begins or is resumed (a hold that ends otherwise
   * is followed by `releaseSeat`, or its room is being deleted).
   */
  constructor(
    options: EngineOptions,
    sessions: Sessions,
    releaseSeat: ReleaseSeat,
    attendanceChanged: AttendanceChanged = () => [],
  ) {
    this.#options = options;
    this.#sessions = sessions;
    this.#releaseSeat = releaseSeat;
    this.#attendanceChanged = attendanceChanged;
  }

  /** Number of held seats. */
  get heldSeats(): number {
    return this.#holds.size;
  }

  /** Messages appended to replay buffers since the engine started (docs/spec/SERVER.md §6.3 #37). */
  get eventsBuffered(): number {
    return this.#eventsBuffered;
  }

  /** Bytes held in all replay buffers now (`signal_fish_replay_buffer_bytes`). */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /** Messages dropped for `eventBufferTotalMaxBytes` since the engine started. */
  get budgetDrops(): number {
    return this.#budgetDrops;
  }

  /** Holds ended early for `maxHeldSeats` since the engine started. */
  get evictions(): number {
    return this.#evictions;
  }

  /** Holds ended early for `maxHeldSeatsPerIp` since the engine started. */
  get addressEvictions(): number {
    return this.#addressEvictions;
  }

  /** Held seats of the connections that dropped from client address key `ip`. */
  heldFrom(ip: string): number {
    return this.#byAddress.count(ip);
  }

  /** Token records remembered now (valid and invalidated). */
  get tokenRecords(): number {
    return this.#records.size;
  }

  /**
   * Entries of the maps kept per connection that resumed a seat with `Reconnect`: identities
   * adopted and the token each presented. At most two per live connection; entries left by
   * connections that went would be a leak.
   */
  get adoptedIdentities(): number {
    return this.#connByAdoptedPlayer.size + this.#resumedWith.size;
  }

  /** The hold of `playerId`'s seat, if held. */
  held(playerId: string): Hold | undefined {
    return this.#holds.get(playerId);
  }

  /**
   * The connection id that currently carries identity `playerId`: the connection that took it
   * with a `Reconnect`, unless the original connection is still a member of a room here
   * (cluster mode, see `#carrierOf`).
   */
  connOf(playerId: string): ConnId {
    const adopted = this.#connByAdoptedPlayer.get(playerId);
    if (adopted === undefined) return playerId;
    // Cluster mode: the original connection may still be a member of a room here (see
    // `#carrierOf`); a room's messages here are for it.
    const original = this.#sessions.get(playerId);
    const member = original?.playerId === playerId &&
      (original.playing !== undefined || original.watching !== undefined);
    return member ? playerId : adopted;
  }

  /** The live session whose identity is `playerId`, if any. */
  sessionOf(playerId: string): Session | undefined {
    const session = this.#sessions.get(this.connOf(playerId));
    return session?.playerId === playerId ? session : undefined;
  }

  /**
   * Connection `conn` carries identity `playerId` from now on (docs/spec/PROTOCOL.md §7.11.5 step
   * 2): adopted by a `Reconnect` here, or by one another node's home answered (cluster mode, the
   * connection's edge or a home it binds to later, docs/spec/PROTOCOL.md §1.2).
   */
  adopt(playerId: string, conn: ConnId): void {
    const session = this.#sessions.get(conn);
    if (!session) return;
    // An identity this connection adopted before (a seat it resumed, then left) is no longer
    // its to carry: forget it, or it outlives the connection.
    const previous = session.playerId;
    if (
      previous !== playerId && previous !== conn &&
      this.#connByAdoptedPlayer.get(previous) === conn
    ) {
      this.#connByAdoptedPlayer.delete(previous);
    }
    session.playerId = playerId;
    if (conn === playerId) this.#connByAdoptedPlayer.delete(playerId);
    else this.#connByAdoptedPlayer.set(playerId, conn);
  }

  /** Forgets that connection `conn` adopted identity `playerId` (the connection closed). */
  forgetAdopted(playerId: string, conn: ConnId): void {
    if (playerId !== conn) this.#connByAdoptedPlayer.delete(playerId);
    this.#resumedWith.delete(conn);
  }

  /**
   * Undoes the token side of the `Reconnect` that resumed connection `conn`'s seat, when `conn`
   * still holds that seat (docs/spec/SERVER.md §8.4.4 `CLOSED{abandoned}`): the token it presented is
   * valid again in place of the one just issued, which the client never received. Returns false
   * (nothing done) when `conn` did not resume its seat by `Reconnect`.
   */
  restorePresentedToken(conn: ConnId, now: number): boolean {
    const used = this.#resumedWith.get(conn);
    this.#resumedWith.delete(conn);
    if (!used || used.forgotten || this.connOf(used.playerId) !== conn) return false;
    // The used record let its room go; the seat is still `conn`'s, in the room it plays in.
    const room = this.#sessions.get(conn)?.playing;
    if (room === undefined || room.id !== used.roomId) return false;
    this.invalidateToken(used.playerId, "superseded", now);
    // A fresh record under the same digest: the used one stays queued for forgetting.
    const record: TokenRecord = {
      playerId: used.playerId,
      digest: used.digest,
      roomId: used.roomId,
      room,
      appId: used.appId,
      state: "valid",
      invalidSince: 0,
    };
    this.#records.set(record.digest, record);
    this.#validByPlayer.set(record.playerId, record);
    return true;
  }

  /**
   * Holds a dropped player's seat (docs/spec/PROTOCOL.md §7.11.2); nobody is told. `ip` is the
   * dropped connection's client address key (docs/spec/SERVER.md §1.9), `""` when unknown. Two caps
   * end a hold early, as if its window had ended (its seat is released and announced; those
   * effects come first; docs/spec/SERVER.md §4.6): with `maxHeldSeatsPerIp` held from `ip`, that
   * address's own oldest hold ends; with `maxHeldSeats` held in all, the oldest hold of the
   * address that holds the most ends, or, when no address holds more than one, the oldest hold.
   */
  hold(
    room: Room,
    playerId: string,
    conn: ConnId,
    now: number,
    loss: DisconnectLoss,
    ip = "",
  ): Effect[] {
    const effects: Effect[] = [];
    const previous = this.#holds.get(playerId);
    if (previous) {
      this.#byAddress.remove(previous.ip, previous);
      // Replaced below: its room counts the new hold instead.
      previous.room.heldSeats--;
    }
    const perIp = this.#options.maxHeldSeatsPerIp ?? 0;
    while (perIp > 0 && ip !== "" && this.#byAddress.count(ip) >= perIp) {
      this.#addressEvictions++;
      effects.push(...this.#expire(this.#byAddress.oldest(ip)!, now));
    }
    const max = this.#options.maxHeldSeats ?? 0;
    while (max > 0 && this.#holds.size >= max && !this.#holds.has(playerId)) {
      this.#evictions++;
      effects.push(...this.#expire(this.#evictionVictim(), now));
    }
    const hold: Hold = {
      room,
      playerId,
      conn,
      ip,
      expiresAt: now + this.#options.reconnectionWindowMs,
      frames: [],
      sizes: [],
      seqs: [],
      bytes: 0,
      truncated: loss.truncated ?? false,
    };
    this.#holds.set(playerId, hold);
    this.#heldByConn.set(conn, hold);
    this.#byAddress.add(ip, hold);
    room.heldSeats++;
    for (const frame of loss.unsent ?? []) this.append(hold, frame, utf8Length(frame));
    effects.push(event({
      type: "seat_held",
      gameName: room.gameName,
      roomCode: room.code,
      playerId,
      truncated: hold.truncated,
    }));
    // The last connected member gone: the room may be unattended from now on.
    effects.push(...this.#attendanceChanged(room));
    if (previous && previous.room !== room) effects.push(...this.#attendanceChanged(previous.room));
    return effects;
  }

  /**
   * The hold `maxHeldSeats` ends first: the oldest of the address that holds the most seats when
   * one holds more than one (a flood from a few addresses ends its own holds first, not other
   * players'), else the oldest of all (a recent hold belongs to a player likely to be back soon).
   */
  #evictionVictim(): Hold {
    const most = this.#byAddress.most();
    if (most && most.count > 1) return this.#byAddress.oldest(most.address)!;
    // Map order is the order holds began (a resumed seat held again goes to the end).
    return this.#holds.values().next().value!;
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
   * removes the player, docs/spec/EXTENSIONS.md E12). Returns true when the seat was held.
   */
  dropHold(playerId: string): boolean {
    const hold = this.#holds.get(playerId);
    if (!hold) return false;
    this.#endHold(hold);
    return true;
  }

  /**
   * Ends every held seat of `room` as the end of its window would (docs/spec/PROTOCOL.md
   * §7.11.3, the path of `maxHeldSeats`: seat released, replay buffer discarded, the token then
   * yields `RECONNECTION_EXPIRED`), for the reclaim of an unattended room (docs/spec/SERVER.md
   * §3.7). Returns the events only: every message of those releases is for a held seat of `room`
   * (it has no connected member), whose buffer goes with it, and the room is deleted next, which
   * releases its directory entry.
   */
  endHoldsOf(room: Room, now: number): Effect[] {
    const events: Effect[] = [];
    for (const playerId of [...room.seats.keys()]) {
      const hold = this.#holds.get(playerId);
      if (hold?.room !== room) continue;
      for (const effect of this.#expire(hold, now)) {
        if (effect.kind === "event") events.push(effect);
      }
    }
    return events;
  }

  /** Forgets a hold and gives its replay buffer's bytes back to the global budget. */
  #endHold(hold: Hold): void {
    hold.room.heldSeats--;
    this.#holds.delete(hold.playerId);
    this.#heldByConn.delete(hold.conn);
    this.#byAddress.remove(hold.ip, hold);
    this.#bufferedBytes -= hold.bytes;
    this.#bufferedFrames -= hold.frames.length;
    hold.bytes = 0;
    if (this.#bufferedFrames === 0) {
      // Nothing buffered anywhere: every entry of the order is stale.
      this.#order = [];
      this.#orderHead = 0;
    }
    // The global budget's order may still name this hold (skipped as stale, compacted later):
    // its frames go now, not with that entry.
    hold.frames = [];
    hold.sizes = [];
    hold.seqs = [];
  }

  /** Ends a hold whose window is over: the seat release sequence (docs/spec/PROTOCOL.md §7.11.3). */
  #expire(hold: Hold, now: number): Effect[] {
    this.#endHold(hold);
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
   * to stay within `eventBufferSize` messages and `eventBufferMaxBytes` bytes (docs/spec/PROTOCOL.md
   * §7.11.2), then the oldest messages of any held seat to stay within
   * `eventBufferTotalMaxBytes` for all buffers together (SECURITY.md); any drop marks the
   * buffer it came from truncated.
   */
  append(hold: Hold, frame: string, size: number): void {
    const { eventBufferSize, eventBufferMaxBytes } = this.#options;
    const budget = this.#options.eventBufferTotalMaxBytes ?? 0;
    if (eventBufferSize === 0 || size > eventBufferMaxBytes || (budget > 0 && size > budget)) {
      hold.truncated = true;
      return;
    }
    while (hold.frames.length >= eventBufferSize || hold.bytes + size > eventBufferMaxBytes) {
      this.#dropOldest(hold);
    }
    if (budget > 0) {
      while (this.#bufferedBytes + size > budget && this.#dropGloballyOldest()) {
        this.#budgetDrops++;
      }
    }
    const seq = this.#nextSeq++;
    hold.frames.push(frame);
    hold.sizes.push(size);
    hold.seqs.push(seq);
    hold.bytes += size;
    this.#bufferedBytes += size;
    this.#bufferedFrames++;
    this.#eventsBuffered++;
    if (budget > 0) {
      this.#order.push({ playerId: hold.playerId, seq });
      this.#compactOrder();
    }
  }

  /** Drops `hold`'s oldest buffered message and marks the buffer truncated. */
  #dropOldest(hold: Hold): void {
    hold.frames.shift();
    hold.seqs.shift();
    const size = hold.sizes.shift()!;
    hold.bytes -= size;
    this.#bufferedBytes -= size;
    this.#bufferedFrames--;
    hold.truncated = true;
  }

  /**
   * Drops the oldest message still buffered for any held seat; false when none is left.
   * Amortised O(1): each append adds one entry to the order and each entry is passed once.
   */
  #dropGloballyOldest(): boolean {
    const order = this.#order;
    while (this.#orderHead < order.length) {
      const { playerId, seq } = order[this.#orderHead++]!;
      // Append numbers are engine-wide: a later hold of the same player has other ones.
      const hold = this.#holds.get(playerId);
      if (hold !== undefined && hold.seqs[0] === seq) {
        this.#dropOldest(hold);
        return true;
      }
    }
    return false;
  }

  /** Drops passed and stale entries from the replay order once they outnumber the live ones. */
  #compactOrder(): void {
    const live = this.#bufferedFrames;
    if (this.#order.length < 2 * live + 1024) return;
    // A hold's frames leave from the front only, so an entry is live iff its hold is and its
    // number is not below the hold's oldest.
    this.#order = this.#order.slice(this.#orderHead).filter(({ playerId, seq }) => {
      const hold = this.#holds.get(playerId);
      return hold !== undefined && hold.seqs.length > 0 && seq >= hold.seqs[0]!;
    });
    this.#orderHead = 0;
  }

  /**
   * Puts a frame that could not be written to connection `conn` into the replay buffer of the
   * seat held since that connection dropped (docs/spec/SERVER.md §5.2). Binary frames cannot be replayed,
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
   * The once-a-second timer (docs/spec/SERVER.md §4.1): releases held seats whose window ended
   * (docs/spec/PROTOCOL.md §7.11.3), routing each expiry's effects at once, and forgets token records
   * invalid for longer than a window.
   */
  tick(now: number): Effect[] {
    const effects: Effect[] = [];
    for (const hold of [...this.#holds.values()]) {
      // Routed one expiry at a time: a later expiry in this loop must not change where the
      // earlier ones' messages go (a seat still held then gets them in its replay buffer).
      if (now >= hold.expiresAt) effects.push(...this.route(this.#expire(hold, now)));
    }
    // Forget records invalid for a window; they were queued in invalidation (time) order, so
    // this is linear in the records forgotten.
    const window = this.#options.reconnectionWindowMs;
    const queue = this.#invalidated;
    while (this.#head < queue.length && now - queue[this.#head]!.invalidSince >= window) {
      this.#forget(queue[this.#head++]!);
    }
    this.#compactInvalidated();
    return effects;
  }

  /** `Reconnect` (docs/spec/PROTOCOL.md §7.11.4–§7.11.5): resume a held seat or take over a live one. */
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
    // The per-IP reconnect bucket comes first (docs/spec/SERVER.md §3.4, issue 14 item 5).
    const limited = this.#sessions.takeToken(session, "reconnect", now);
    if (limited) return [...fail(limited.reason, "RATE_LIMIT_EXCEEDED"), limited.event];
    if (session.playing || session.watching) return fail("Already in a room", "ALREADY_IN_ROOM");
    const playerId = data.player_id;
    const record = this.#findToken(playerId, data.auth_token);
    if (
      !record || record.roomId !== data.room_id ||
      (this.#options.auth?.required && record.appId !== session.app?.appId) ||
      !(record.state === "valid" || record.state === "expired" || record.state === "room_gone")
    ) {
      return fail("Invalid reconnection token", "RECONNECTION_TOKEN_INVALID");
    }
    let hold = this.#holds.get(playerId);
    if (hold && now >= hold.expiresAt) {
      // The window ended before the timer got to it: expire it now (docs/spec/PROTOCOL.md §7.11.3).
      effects.push(...this.#expire(hold, now));
      hold = undefined;
    }
    if (record.state === "expired") {
      return fail("Reconnection window has expired", "RECONNECTION_EXPIRED");
    }
    if (record.state === "room_gone") return fail("Room no longer exists", "RECONNECTION_FAILED");

    // A valid record has its room (only invalidation drops it).
    const room = record.room;
    if (room === undefined) return fail("Invalid reconnection token", "RECONNECTION_TOKEN_INVALID");
    let missed: RawJson[] = [];
    let truncated = false;
    if (hold) {
      // Presence events buffered for the dropped connection's opt-in reach only a resuming
      // connection that opted in too (docs/spec/EXTENSIONS.md E10: the opt-in belongs to the
      // connection); leaving them out loses nothing this connection would have been sent.
      // Those it does reach count the window left now, not when they were buffered.
      const frames = session.presence === true
        ? hold.frames.map((frame) =>
          frame.startsWith(PLAYER_DISCONNECTED_PREFIX)
            ? replayedPlayerDisconnected(frame, (id) => this.#holds.get(id)?.expiresAt, now)
            : frame
        )
        : hold.frames.filter((frame) => !frame.startsWith(PLAYER_DISCONNECTED_PREFIX));
      missed = frames.map((frame) => new RawJson(frame));
      truncated = hold.truncated;
      // The lobby-change bucket goes with the seat (docs/spec/PROTOCOL.md §7.4 note): this
      // connection continues with the dropped one's, a full one when that never made one, not
      // with a bucket of its own that it may have spent in another room.
      session.lobbyChanges = hold.lobbyChanges;
      this.#endHold(hold);
    } else {
      // Takeover: the seat is live on another socket (docs/spec/PROTOCOL.md §7.11.5 step 1).
      const oldConn = this.connOf(playerId);
      truncated = this.#options.takeoverTruncated?.(oldConn) ?? false;
      const old = this.#sessions.remove(oldConn);
      if (old) old.playing = undefined;
      if (old) session.lobbyChanges = old.lobbyChanges;
      // The replaced connection's close finds no session, so nothing else forgets the token
      // it resumed with (if it had resumed this seat itself).
      this.#resumedWith.delete(oldConn);
      effects.push({
        kind: "close",
        to: oldConn,
        code: 4001,
        reason: "Replaced by a new connection",
      });
    }
    this.adopt(playerId, session.id);
    session.playing = room;
    this.#invalidate(record, "used", now);
    this.#resumedWith.set(session.id, record);
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
    // A resumed seat is connected again: its room is attended.
    if (hold) effects.push(...this.#attendanceChanged(room));
    return effects;
  }

  /** Mints the seat's token, superseding the previous one (docs/spec/PROTOCOL.md §7.11.1). */
  issueToken(playerId: string, room: Room, now: number): string {
    this.invalidateToken(playerId, "superseded", now);
    const token = this.#options.newToken();
    const appId = this.sessionOf(playerId)?.app?.appId;
    const record: TokenRecord = {
      playerId,
      digest: this.#digest(token),
      roomId: room.id,
      room,
      appId,
      state: "valid",
      invalidSince: 0,
    };
    this.#records.set(record.digest, record);
    this.#validByPlayer.set(playerId, record);
    this.#enforceGlobalBound();
    return token;
  }

  /** Moves the seat's valid token (if any) to `state`. */
  invalidateToken(playerId: string, state: TokenRecord["state"], now: number): void {
    const record = this.#validByPlayer.get(playerId);
    if (record) this.#invalidate(record, state, now);
  }

  #invalidate(record: TokenRecord, state: TokenRecord["state"], now: number): void {
    if (record.state === "valid") {
      this.#validByPlayer.delete(record.playerId);
      const invalid = this.#invalidByPlayer.get(record.playerId);
      if (invalid) invalid.push(record);
      else this.#invalidByPlayer.set(record.playerId, [record]);
      // Per seat only the newest few invalidated records are kept (a takeover loop mints one
      // per round); the oldest goes early, answering later attempts with "invalid".
      if (invalid && invalid.length > MAX_INVALID_RECORDS_PER_SEAT) this.#forget(invalid[0]!);
      this.#invalidated.push(record);
    }
    record.state = state;
    record.invalidSince = now;
    record.room = undefined;
  }

  /** Forgets an invalidated record (its window passed, or a bound needs the room). Idempotent. */
  #forget(record: TokenRecord): void {
    if (record.forgotten) return;
    record.forgotten = true;
    if (this.#records.get(record.digest) === record) this.#records.delete(record.digest);
    const invalid = this.#invalidByPlayer.get(record.playerId);
    if (!invalid) return;
    const at = invalid.indexOf(record);
    if (at >= 0) invalid.splice(at, 1);
    if (invalid.length === 0) this.#invalidByPlayer.delete(record.playerId);
  }

  /** Past `maxTokenRecords`, forgets the records invalidated longest ago. */
  #enforceGlobalBound(): void {
    const max = this.#options.maxTokenRecords ?? 200_000;
    const queue = this.#invalidated;
    while (this.#records.size > max && this.#head < queue.length) {
      this.#forget(queue[this.#head++]!);
    }
    this.#compactInvalidated();
  }

  /** Drops the passed part of the invalidation queue once it is most of the array. */
  #compactInvalidated(): void {
    if (this.#head === this.#invalidated.length) {
      this.#invalidated = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#invalidated.length) {
      this.#invalidated = this.#invalidated.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * The record of `token` if it belongs to `playerId`. Tokens longer than
   * {@linkcode MAX_TOKEN_BYTES} are refused before any hashing; otherwise one SHA-256 and one
   * map lookup by digest (no comparison of the token itself, so no timing to measure).
   */
  #findToken(playerId: string, token: string): TokenRecord | undefined {
    // A string's UTF-16 length never exceeds its UTF-8 length: a cheap test before the count.
    if (token.length > MAX_TOKEN_BYTES || utf8Length(token) > MAX_TOKEN_BYTES) return undefined;
    const record = this.#records.get(this.#digest(token));
    return record?.playerId === playerId && !record.forgotten ? record : undefined;
  }

  /**
   * The index key of a token: `EngineOptions.tokenDigest` when configured (so records restored
   * from a snapshot, known only by that digest, are found the same way), else SHA-256, base64.
   */
  #digest(token: string): string {
    return this.#options.tokenDigest?.(token) ?? tokenDigest(token);
  }

  /**
   * The digest of the seat's valid token and the app it is bound to, for a snapshot (docs/spec/SERVER.md
   * §2.7 `state_file`); `undefined` when the seat has no valid token. Tokens never leave here.
   */
  validTokenDigest(playerId: string): { digest: string; appId?: string } | undefined {
    const record = this.#validByPlayer.get(playerId);
    if (!record) return undefined;
    if (!this.#options.tokenDigest) {
      throw new TypeError("EngineOptions.tokenDigest is required for snapshots");
    }
    const digest = record.digest;
    return record.appId === undefined ? { digest } : { digest, appId: record.appId };
  }

  /**
   * Puts a seat restored from a snapshot on hold until `now + reconnectionWindowMs`, with its
   * replay buffer (`frames`, serialised server messages in order) and, when `digest` is given,
   * a valid token record known by its digest, bound to `appId` (docs/spec/SERVER.md §2.7 `state_file`).
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
      ip: "",
      expiresAt: now + this.#options.reconnectionWindowMs,
      frames: [],
      sizes: [],
      seqs: [],
      bytes: 0,
      truncated: seat.truncated,
    };
    if (seat.presence) hold.presence = true;
    this.#holds.set(playerId, hold);
    this.#heldByConn.set(playerId, hold);
    room.heldSeats++;
    // Through append, so restored buffers count toward the global replay budget too.
    const counted = this.#eventsBuffered; // counted by the process that buffered them
    for (const frame of seat.frames) this.append(hold, frame, utf8Length(frame));
    this.#eventsBuffered = counted;
    if (seat.digest === undefined) return;
    const record: TokenRecord = {
      playerId,
      digest: seat.digest,
      roomId: room.id,
      room,
      appId: seat.appId,
      state: "valid",
      invalidSince: 0,
    };
    this.#records.set(record.digest, record);
    this.#validByPlayer.set(playerId, record);
  }

  /**
   * Turns recipients (identities) into connection ids: messages for held seats go to their
   * replay buffers (serialised once per message), adopted identities map to their connection
   * (`requester`: the session whose message the effects answer, see `#carrierOf`).
   * Costs nothing while no seat is held and no connection has adopted an identity.
   */
  route(effects: Effect[], requester?: Session): Effect[] {
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
          routed.push(this.#carrierOf(id, requester));
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

  /**
   * The connection a message to identity `playerId`, which a connection took with a
   * `Reconnect`, goes to. One process has no other: the connection that had the identity was
   * replaced. In cluster mode a node may still hold, for a moment, a membership of that original
   * connection in a room homed here (a late join being undone, docs/spec/SERVER.md §8.4.2 "Late
   * success") while a connection of its own edge adopted the identity for a seat homed
   * elsewhere: an answer goes to the connection whose message it answers (`requester`), a message
   * of a room here to the member here ({@linkcode connOf}), anything else to the connection that
   * took the identity.
   */
  #carrierOf(playerId: string, requester: Session | undefined): ConnId {
    return requester?.playerId === playerId ? requester.id : this.connOf(playerId);
  }
}
