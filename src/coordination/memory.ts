/**
 * Single-process implementations of the coordination seams: every node of the "cluster" is in
 * this process. Used in single-instance mode (one node) and by tests (any number of nodes).
 * Every method answers synchronously ({@linkcode Awaitable} without a Promise).
 *
 * @module
 */
import type { ConnId } from "../engine/effects.ts";
import type { RateLimits } from "../engine/rate_limits.ts";
import type { ClientMessage } from "../protocol/messages.ts";
import type { BucketKind, BucketTake, TokenBuckets } from "./buckets.ts";
import {
  type ClaimCaps,
  type ClaimResult,
  compareRooms,
  type DirectoryRecord,
  FirstInOrder,
  holdsCaps,
  keptBy,
  type NodeId,
  OLDEST_FIRST,
  type RefreshResult,
  type RoomDirectory,
  type RoomPage,
  type RoomPageRequest,
} from "./directory.ts";
import type {
  BindOutcome,
  ClosedCause,
  CommandReply,
  DeliveryFailure,
  Directive,
  EdgeEndpoint,
  HomeEndpoint,
  RoomCommand,
  Router,
} from "./router.ts";

/** Directory key of a room: `(game_name, ROOM_CODE)` (docs/spec/PROTOCOL.md §7.2.2). */
function key(gameName: string, roomCode: string): string {
  return `${gameName}\u0000${roomCode}`;
}

/** Key of an IP's share of a game's rooms. */
function ipKey(gameName: string, ip: string): string {
  return `${gameName}\u0000${ip}`;
}

/**
 * A {@linkcode RoomDirectory} in this process's memory. Records are shared: do not mutate.
 * Rooms whose last write said they have no seat, or are unattended ({@linkcode holdsCaps}), do
 * not count against the game, app and IP caps ({@linkcode ClaimCaps}); a claimed room counts
 * until its first refresh.
 */
export class MemoryRoomDirectory implements RoomDirectory {
  /** Entries in creation order. */
  readonly #entries = new Map<string, DirectoryRecord>();
  /** The same entries per game, in creation order (a listing reads only its game's). */
  readonly #byGame = new Map<string, Map<string, DirectoryRecord>>();
  /** Keys of the entries that count against the game, app and IP caps (a seat, or just claimed). */
  readonly #occupied = new Set<string>();
  readonly #perGame = new Map<string, number>();
  readonly #perIp = new Map<string, number>();
  readonly #perApp = new Map<string, number>();

  /** Number of entries. */
  get size(): number {
    return this.#entries.size;
  }

  claim(record: DirectoryRecord, caps: ClaimCaps, stale?: DirectoryRecord): ClaimResult {
    const k = key(record.gameName, record.roomCode);
    const current = this.#entries.get(k);
    if (current && current.roomId !== stale?.roomId) return { status: "taken", record: current };
    const replaced = current !== undefined && this.#occupied.has(k);
    const games = (this.#perGame.get(record.gameName) ?? 0) - (replaced ? 1 : 0);
    if (games >= caps.maxRoomsPerGame) {
      return { status: "capped", scope: "game", count: games, limit: caps.maxRoomsPerGame };
    }
    if (record.appId !== undefined && caps.maxAppRooms !== undefined) {
      const sameApp = replaced && current.appId === record.appId;
      const apps = (this.#perApp.get(record.appId) ?? 0) - (sameApp ? 1 : 0);
      if (apps >= caps.maxAppRooms) {
        return { status: "capped", scope: "app", count: apps, limit: caps.maxAppRooms };
      }
    }
    const maxIp = caps.maxRoomsPerIp ?? 0;
    if (record.creatorIp !== undefined && maxIp > 0) {
      const sameIp = replaced && current.creatorIp === record.creatorIp;
      const ips = (this.#perIp.get(ipKey(record.gameName, record.creatorIp)) ?? 0) -
        (sameIp ? 1 : 0);
      if (ips >= maxIp) return { status: "capped", scope: "ip", count: ips, limit: maxIp };
    }
    if (current) this.#delete(k, current);
    this.#set(k, record, true);
    return { status: "ok" };
  }

  refresh(record: DirectoryRecord): RefreshResult {
    const k = key(record.gameName, record.roomCode);
    const current = this.#entries.get(k);
    if (current === undefined) {
      this.#set(k, record, holdsCaps(record));
      return "created";
    }
    if (current.roomId !== record.roomId) return "conflict";
    this.#entries.set(k, record);
    this.#byGame.get(record.gameName)!.set(k, record);
    this.#mark(k, record, holdsCaps(record));
    return "refreshed";
  }

  release(gameName: string, roomCode: string, roomId: string): void {
    const k = key(gameName, roomCode);
    const current = this.#entries.get(k);
    if (current?.roomId === roomId) this.#delete(k, current);
  }

  lookup(gameName: string, roomCode: string): DirectoryRecord | undefined {
    return this.#entries.get(key(gameName, roomCode));
  }

  list(gameName: string, limit: number): DirectoryRecord[] {
    const out: DirectoryRecord[] = [];
    for (const record of this.#byGame.get(gameName)?.values() ?? []) {
      if (out.length >= limit) break;
      if (record.summary.players > 0) out.push(record);
    }
    return out;
  }

  all(limit: number): DirectoryRecord[] {
    return this.page({ offset: 0, limit }).records;
  }

  /**
   * Looks at every room (of the game, with a game filter) and keeps the first `offset + limit +
   * 1` in order with a bounded heap: O(n log k) on the event loop, no index to keep up. Always
   * complete (`budget` bounds Redis work; there is none here).
   */
  page(request: RoomPageRequest): RoomPage {
    const { offset, limit, filter } = request;
    const entries = filter?.gameName !== undefined
      ? this.#byGame.get(filter.gameName)?.values() ?? []
      : this.#entries.values();
    const end = offset + limit;
    const first = new FirstInOrder<DirectoryRecord>(
      end + 1,
      compareRooms(request.sort ?? OLDEST_FIRST),
    );
    let examined = 0;
    for (const record of entries) {
      examined++;
      if (keptBy(record, filter)) first.offer(record);
    }
    const kept = first.sorted();
    return {
      records: kept.slice(offset, end),
      truncated: kept.length > end,
      complete: true,
      examined,
    };
  }

  /** Counts entry `k` (of `record`) against the game, app and IP caps or not. */
  #mark(k: string, record: DirectoryRecord, occupied: boolean): void {
    if (occupied === this.#occupied.has(k)) return;
    const ip = record.creatorIp !== undefined
      ? ipKey(record.gameName, record.creatorIp)
      : undefined;
    if (occupied) {
      this.#occupied.add(k);
      increment(this.#perGame, record.gameName);
      if (ip !== undefined) increment(this.#perIp, ip);
      if (record.appId !== undefined) increment(this.#perApp, record.appId);
    } else {
      this.#occupied.delete(k);
      decrement(this.#perGame, record.gameName);
      if (ip !== undefined) decrement(this.#perIp, ip);
      if (record.appId !== undefined) decrement(this.#perApp, record.appId);
    }
  }

  #set(k: string, record: DirectoryRecord, occupied: boolean): void {
    this.#entries.set(k, record);
    let game = this.#byGame.get(record.gameName);
    if (game === undefined) this.#byGame.set(record.gameName, game = new Map());
    game.set(k, record);
    this.#mark(k, record, occupied);
  }

  #delete(k: string, record: DirectoryRecord): void {
    this.#mark(k, record, false);
    this.#entries.delete(k);
    const game = this.#byGame.get(record.gameName)!;
    game.delete(k);
    if (game.size === 0) this.#byGame.delete(record.gameName);
  }
}

function increment(counts: Map<string, number>, name: string): void {
  counts.set(name, (counts.get(name) ?? 0) + 1);
}

function decrement(counts: Map<string, number>, name: string): void {
  const left = (counts.get(name) ?? 1) - 1;
  if (left > 0) counts.set(name, left);
  else counts.delete(name);
}

/**
 * {@linkcode TokenBuckets} over this process's per-IP buckets, the same {@linkcode RateLimits}
 * the engine takes `JoinRoom` and `JoinAsSpectator` tokens from. Without limits every take
 * succeeds (rate limiting off).
 */
export class MemoryTokenBuckets implements TokenBuckets {
  readonly #limits: RateLimits | undefined;

  /** Buckets backed by `limits`; `undefined` = unlimited. */
  constructor(limits: RateLimits | undefined) {
    this.#limits = limits;
  }

  take(kind: BucketKind, key: string, now: number): BucketTake {
    const limits = this.#limits;
    if (!limits) return TAKEN;
    return kind === "creation"
      ? limits.takeCreation(key, now)
      : kind === "join"
      ? limits.takeJoin(key, now)
      : kind === "reconnect"
      ? limits.takeReconnect(key, now)
      : limits.bucket(kind).take(key, now);
  }

  check(kind: BucketKind, key: string, now: number): BucketTake {
    const limits = this.#limits;
    if (!limits) return TAKEN;
    return limits.bucket(kind).check(key, now);
  }
}

const TAKEN: BucketTake = { ok: true };

/** A node's endpoints. */
interface Endpoints {
  readonly edge: EdgeEndpoint;
  readonly home: HomeEndpoint;
}

/**
 * A {@linkcode Router} between nodes of this process: every call is a direct, synchronous call
 * of the destination's endpoint. Calls for a node that is not attached are answered as if the
 * node were unreachable (`miss`, `gone`, `unreachable`) or ignored (`forward`, `direct`,
 * `closed`: nothing is there to receive them).
 */
export class LocalRouter implements Router {
  readonly #nodes = new Map<NodeId, Endpoints>();
  /** The attached edges, for `flush` (no iterator on the hot path). */
  #edges: EdgeEndpoint[] = [];
  /** The most recently attached node: single-instance mode's only one, found without a lookup. */
  #lastName: NodeId | undefined;
  #last: Endpoints | undefined;

  attach(node: NodeId, endpoints: Endpoints): void {
    this.#nodes.set(node, endpoints);
    this.#changed();
  }

  detach(node: NodeId): void {
    this.#nodes.delete(node);
    this.#changed();
  }

  #changed(): void {
    this.#edges = [...this.#nodes.values()].map((n) => n.edge);
    const last = [...this.#nodes.entries()].at(-1);
    this.#lastName = last?.[0];
    this.#last = last?.[1];
  }

  #node(name: NodeId): Endpoints | undefined {
    return name === this.#lastName ? this.#last : this.#nodes.get(name);
  }

  bind(
    home: NodeId,
    conn: ConnId,
    message: ClientMessage,
    now: number,
    _request?: unknown,
  ): BindOutcome {
    return this.#node(home)?.home.bind(conn, message, now) ?? MISS;
  }

  forward(
    home: NodeId,
    conn: ConnId,
    input: ClientMessage | Uint8Array,
    _frame: string | Uint8Array,
    now: number,
  ): void {
    this.#node(home)?.home.receive(conn, input, now);
  }

  closed(home: NodeId, conn: ConnId, cause: ClosedCause, now: number, lost?: boolean): void {
    this.#node(home)?.home.closed(conn, cause, now, lost);
  }

  deliver(
    edge: NodeId,
    frame: string | Uint8Array,
    to: readonly ConnId[],
  ): DeliveryFailure[] | undefined {
    const node = this.#node(edge);
    if (node) return node.edge.deliver(frame, to);
    return to.map((id) => ({ id, failure: GONE }));
  }

  direct(edge: NodeId, directive: Directive, now: number): void {
    this.#node(edge)?.edge.direct(directive, now);
  }

  flush(): void {
    const edges = this.#edges;
    for (let i = 0; i < edges.length; i++) edges[i]!.flush();
  }

  command(home: NodeId, command: RoomCommand, now: number): CommandReply {
    return this.#node(home)?.home.command(command, now) ?? { ok: false, reason: "unreachable" };
  }
}

const MISS: BindOutcome = { status: "miss" };
const GONE = { reason: "gone" } as const;
