/**
 * The in-memory twin of the Redis store (docs/spec/SERVER.md §8.9): the same scripts of §8.3 over a map
 * with per-key expiry on an injectable clock, shared by any number of in-process nodes, with the
 * faults a real Redis can show: keys expiring early ({@linkcode MemoryStore.expire}), a restart
 * that loses everything ({@linkcode MemoryStore.flush}), being unreachable
 * ({@linkcode MemoryStore.unreachable}) and a pause ({@linkcode MemoryStore.paused}). Answers are Promises, like Redis's.
 *
 * @module
 */
import type { InstanceGames } from "../coordination/game_counts.ts";
import type { BucketKind, BucketTake } from "../coordination/buckets.ts";
import {
  type ClaimCaps,
  type ClaimResult,
  compareRooms,
  type DirectoryRecord,
  holdsCaps,
  keptBy,
  OLDEST_FIRST,
  type RefreshResult,
  type RoomFilter,
  type RoomPage,
  type RoomPageRequest,
} from "../coordination/directory.ts";
import {
  APP_BUCKET_WINDOW_MS,
  AppFallbackBuckets,
  KeyedBuckets,
  keyedBucketsPerKind,
} from "../engine/token_bucket.ts";
import {
  type ClusterStore,
  type Epoch,
  type EpochRead,
  type Liveness,
  type NodeId,
  PendingReleases,
  Reachability,
  type Resolved,
  type StoreSettings,
  UnindexedScans,
} from "./types.ts";

interface Item {
  value: unknown;
  /** Expiry, ms on the store's clock; Infinity = none. */
  expiresAt: number;
}

/** Room-id values: the room's home and names, or `"gone"`. */
type RoomIdValue =
  | { home: NodeId; gameName: string; roomCode: string; appId?: string }
  | { gone: true; home: NodeId }
  | "gone";

/**
 * What {@linkcode MemoryStore.unreachable} makes every call reject with: node-redis's error for a
 * command sent while its connection is down (no offline queue, docs/spec/SERVER.md §8.9), by the
 * class name the server recognises (`isExpectedFault`, src/coordination/faults.ts).
 */
class ClientOfflineError extends Error {
  constructor() {
    super("The client is offline (MemoryStore unreachable)");
  }
}

/** A lookalike of node-redis's class of Redis's error replies (`-LOADING` here), by name. */
class ErrorReply extends Error {}

/** The calls {@linkcode MemoryStore.fault} is asked about. */
export type FaultedCall = "claim" | "resolveCode" | "resolveRoomId" | "refresh" | "release";

/** A shared in-memory store; give each node {@linkcode MemoryStore} over the same instance. */
export class MemoryStore implements ClusterStore {
  readonly #items = new Map<string, Item>();
  readonly #settings: StoreSettings;
  /**
   * The clock of "Redis": every time this store keeps (expiries, set scores, bucket refills, the
   * epoch's creation) is on it, never on a calling node's, as the Redis store's scripts use
   * Redis's `TIME` (docs/spec/SERVER.md §8.1).
   */
  readonly #now: () => number;
  readonly #fallback: Record<BucketKind, KeyedBuckets>;
  /** The calling nodes' own app buckets, while the store is unreachable. */
  readonly #appFallback = new AppFallbackBuckets();
  /** While true every call rejects, as with Redis down (bucket takes fall back locally). */
  unreachable = false;
  /**
   * While set, every call waits for it to settle before it runs, as with Redis paused (`DEBUG
   * SLEEP`, a stalled host): the calls queue and are answered in order once it resumes.
   */
  paused: Promise<void> | undefined;
  /**
   * Redis's identity as {@linkcode MemoryStore.identity} answers it (`INFO server`'s `run_id`):
   * tests change it to model a Redis restarted from an old dump or failed over, with the keys
   * they keep; `undefined` models a Redis that refuses `INFO` (docs/spec/SERVER.md §8.3 "Epoch").
   */
  runId: string | undefined = crypto.randomUUID().replaceAll("-", "");
  /**
   * While true every call but {@linkcode MemoryStore.identity} rejects with Redis's `-LOADING`
   * reply (an answer: the store stays reachable), as while a restarted Redis loads its dump.
   */
  loading = false;
  /** Number of calls made (tests: "no store call on the hot path"). */
  calls = 0;
  /**
   * Fault injection (tests): told each `claim`, `resolveCode` and bucket `take` after it ran; a Promise it
   * returns holds the answer back until it settles (a reply in flight while other calls run).
   */
  hold: ((method: "claim" | "resolveCode" | "take") => Promise<void> | undefined) | undefined;
  /**
   * Fault injection (tests): asked at each {@linkcode FaultedCall} as it runs (Redis reachable);
   * an error it returns rejects the call instead, nothing written: a bug in the store's code (a
   * `TypeError`), or a timeout (`NoAnswer`, here without the reachability change).
   */
  fault: ((call: FaultedCall) => Error | undefined) | undefined;
  /**
   * Fault injection (tests): ms before each call runs, as Redis's round trip would take, while
   * other events run; calls still run in the order they were made (the FIFO of a command
   * connection), so one may wait behind another. `undefined` = at once (a microtask).
   */
  latency: (() => number) | undefined;
  /** With {@linkcode latency}: when (`Date.now()`) the last call made so far runs. */
  #lastDue = 0;
  /** Calls that waited for their {@linkcode latency} (a timer, not within the turn). */
  delayed = 0;

  /** @param settings as for Redis; `now` is the clock of "Redis" (virtual in tests) */
  constructor(settings: StoreSettings) {
    this.#settings = settings;
    this.#now = settings.now ?? Date.now;
    this.#fallback = keyedBucketsPerKind(settings.buckets);
  }

  /** Deletes every key for which `match(key)` is true (keys: `room:<game>:<code>`, …). */
  expire(match: (key: string) => boolean): void {
    for (const key of [...this.#items.keys()]) if (match(key)) this.#items.delete(key);
  }

  /** Loses everything (a Redis restarted empty). */
  flush(): void {
    this.#items.clear();
  }

  /** Every live key (tests). */
  keys(): string[] {
    const now = this.#now();
    return [...this.#items].filter(([, item]) => item.expiresAt > now).map(([key]) => key);
  }

  #get<T>(key: string): T | undefined {
    const item = this.#items.get(key);
    if (item === undefined) return undefined;
    if (item.expiresAt <= this.#now()) {
      this.#items.delete(key);
      return undefined;
    }
    return item.value as T;
  }

  #set(key: string, value: unknown, ttlMs = Infinity): void {
    this.#items.set(key, { value, expiresAt: this.#now() + ttlMs });
  }

  /** The live members of a sorted set (member → expiry), expired ones removed. */
  #zset(key: string): Map<string, number> {
    let set = this.#get<Map<string, number>>(key);
    if (set === undefined) {
      set = new Map();
      this.#set(key, set, this.#settings.ttlMs);
    }
    const now = this.#now();
    for (const [member, expiry] of set) if (expiry <= now) set.delete(member);
    return set;
  }

  #zadd(key: string, member: string): void {
    const set = this.#zset(key);
    set.set(member, this.#now() + this.#settings.ttlMs);
    this.#items.get(key)!.expiresAt = this.#now() + this.#settings.ttlMs;
  }

  async #call<T>(
    run: () => T,
    method?: "take" | FaultedCall,
    whileLoading = false,
  ): Promise<T> {
    this.calls++;
    if (this.paused) await this.paused;
    await Promise.resolve();
    if (this.latency) {
      const due = Math.max(Date.now() + this.latency(), this.#lastDue);
      this.#lastDue = due;
      const wait = due - Date.now();
      if (wait > 0) {
        this.delayed++;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
    if (this.unreachable) {
      this.#reachability.answered(false);
      throw new ClientOfflineError();
    }
    this.#reachability.answered(true);
    if (this.loading && !whileLoading) {
      throw new ErrorReply("LOADING Redis is loading the dataset in memory (MemoryStore)");
    }
    const fault = method === undefined || method === "take" ? undefined : this.fault?.(method);
    if (fault !== undefined) throw fault;
    const result = run();
    const held = method === "claim" || method === "resolveCode" || method === "take"
      ? this.hold?.(method)
      : undefined;
    if (held) await held;
    return result;
  }

  /**
   * With {@linkcode latency}: when (`Date.now()`) every call made so far will have run; an
   * envelope published now is delivered no earlier (Redis runs a node's `PUBLISH` after the
   * commands it sent before).
   */
  get busyUntil(): number {
    return this.#lastDue;
  }

  readonly #reachability = new Reachability();

  watchReachable(listener: (reachable: boolean) => void): void {
    this.#reachability.watch(listener);
  }

  /** Whether the last call answered (docs/spec/SERVER.md §8.5.5). */
  get reachable(): boolean {
    return this.#reachability.reachable;
  }

  #roomIdTtl(): number {
    return this.#settings.ttlMs + this.#settings.reconnectionWindowMs;
  }

  #roomIdValue(record: DirectoryRecord): RoomIdValue {
    return {
      home: record.home,
      gameName: record.gameName,
      roomCode: record.roomCode,
      ...(record.appId !== undefined ? { appId: record.appId } : {}),
    };
  }

  claim(record: DirectoryRecord, caps: ClaimCaps, stale?: DirectoryRecord): Promise<ClaimResult> {
    return this.#call(() => {
      const roomKey = `room:${record.gameName}:${record.roomCode}`;
      const current = this.#get<DirectoryRecord>(roomKey);
      if (current && current.roomId !== (stale?.roomId ?? "")) {
        return { status: "taken" as const, record: current };
      }
      if (this.#get("maintenance") !== undefined) return { status: "maintenance" as const };
      const games = this.#zset(`game-rooms:${record.gameName}`);
      const empty = this.#zset(`game-empty:${record.gameName}`);
      const count = Math.max(
        0,
        games.size - empty.size -
          (games.has(record.roomCode) && !empty.has(record.roomCode) ? 1 : 0),
      );
      if (count >= caps.maxRoomsPerGame) {
        return { status: "capped", scope: "game", count, limit: caps.maxRoomsPerGame };
      }
      if (record.appId !== undefined && caps.maxAppRooms !== undefined) {
        // Rooms in app-empty (no seat at their last refresh) do not count (§8.3 "Claim").
        const apps = this.#zset(`app-rooms:${record.appId}`);
        const appEmpty = this.#zset(`app-empty:${record.appId}`);
        const appCount = Math.max(
          0,
          apps.size - appEmpty.size -
            (stale && apps.has(stale.roomId) && !appEmpty.has(stale.roomId) ? 1 : 0),
        );
        if (appCount >= caps.maxAppRooms) {
          return { status: "capped", scope: "app", count: appCount, limit: caps.maxAppRooms };
        }
      }
      const maxIp = caps.maxRoomsPerIp ?? 0;
      if (record.creatorIp !== undefined && maxIp > 0) {
        const ips = this.#zset(`ip-rooms:${record.gameName}\u0000${record.creatorIp}`);
        const ipCount = ips.size - (ips.has(record.roomCode) ? 1 : 0);
        if (ipCount >= maxIp) {
          return { status: "capped", scope: "ip", count: ipCount, limit: maxIp };
        }
      }
      if (current?.creatorIp !== undefined) {
        this.#zset(`ip-rooms:${current.gameName}\u0000${current.creatorIp}`).delete(
          record.roomCode,
        );
      }
      this.#set(roomKey, record, this.#settings.ttlMs);
      this.#zadd(`game-rooms:${record.gameName}`, record.roomCode);
      empty.delete(record.roomCode);
      if (record.creatorIp !== undefined) {
        this.#zadd(`ip-rooms:${record.gameName}\u0000${record.creatorIp}`, record.roomCode);
      }
      if (record.appId !== undefined) {
        if (stale) {
          this.#zset(`app-rooms:${record.appId}`).delete(stale.roomId);
          this.#zset(`app-empty:${record.appId}`).delete(stale.roomId);
        }
        this.#zadd(`app-rooms:${record.appId}`, record.roomId);
      }
      this.#set(`room-id:${record.roomId}`, this.#roomIdValue(record), this.#roomIdTtl());
      return { status: "ok" };
    }, "claim");
  }

  #refresh(record: DirectoryRecord): RefreshResult {
    const roomKey = `room:${record.gameName}:${record.roomCode}`;
    const current = this.#get<DirectoryRecord>(roomKey);
    const result: RefreshResult = current === undefined
      ? "created"
      : current.roomId === record.roomId
      ? "refreshed"
      : "conflict";
    if (result !== "conflict") {
      this.#set(roomKey, record, this.#settings.ttlMs);
      this.#zadd(`game-rooms:${record.gameName}`, record.roomCode);
      // Rooms without a seat, and unattended ones, stop counting against the game and IP caps
      // (§8.3 "Claim").
      const ipKey = `ip-rooms:${record.gameName}\u0000${record.creatorIp}`;
      if (!holdsCaps(record)) {
        this.#zadd(`game-empty:${record.gameName}`, record.roomCode);
        if (record.creatorIp !== undefined) this.#zset(ipKey).delete(record.roomCode);
      } else {
        this.#zset(`game-empty:${record.gameName}`).delete(record.roomCode);
        if (record.creatorIp !== undefined) this.#zadd(ipKey, record.roomCode);
      }
    }
    this.#set(`room-id:${record.roomId}`, this.#roomIdValue(record), this.#roomIdTtl());
    if (record.appId !== undefined) {
      this.#zadd(`app-rooms:${record.appId}`, record.roomId);
      if (!holdsCaps(record)) this.#zadd(`app-empty:${record.appId}`, record.roomId);
      else this.#zset(`app-empty:${record.appId}`).delete(record.roomId);
    }
    return result;
  }

  refresh(record: DirectoryRecord): Promise<RefreshResult> {
    return this.#call(() => this.#refresh(record), "refresh");
  }

  refreshAll(records: readonly DirectoryRecord[]): Promise<RefreshResult[]> {
    return this.#call(() => records.map((record) => this.#refresh(record)));
  }

  /** Releases that failed, sent again once the store answers ({@linkcode PendingReleases}). */
  readonly #releases = new PendingReleases(
    this.#reachability,
    (gameName, roomCode, roomId) => this.#release(gameName, roomCode, roomId),
  );

  /** Releases waiting for the store to answer again. */
  get pendingReleases(): number {
    return this.#releases.size;
  }

  release(gameName: string, roomCode: string, roomId: string): Promise<void> {
    return this.#releases.release(gameName, roomCode, roomId);
  }

  #release(gameName: string, roomCode: string, roomId: string): Promise<void> {
    return this.#call(() => {
      const roomKey = `room:${gameName}:${roomCode}`;
      const current = this.#get<DirectoryRecord>(roomKey);
      if (current?.roomId === roomId) {
        this.#items.delete(roomKey);
        this.#zset(`game-rooms:${gameName}`).delete(roomCode);
        this.#zset(`game-empty:${gameName}`).delete(roomCode);
        if (current.creatorIp !== undefined) {
          this.#zset(`ip-rooms:${gameName}\u0000${current.creatorIp}`).delete(roomCode);
        }
      }
      const id = this.#get<RoomIdValue>(`room-id:${roomId}`);
      let gone: RoomIdValue = "gone";
      if (id !== undefined && id !== "gone") {
        if ("gone" in id) {
          gone = id;
        } else {
          if (id.appId !== undefined) {
            this.#zset(`app-rooms:${id.appId}`).delete(roomId);
            this.#zset(`app-empty:${id.appId}`).delete(roomId);
          }
          gone = { gone: true, home: id.home };
        }
      }
      this.#set(`room-id:${roomId}`, gone, this.#settings.reconnectionWindowMs);
    }, "release");
  }

  lookup(gameName: string, roomCode: string): Promise<DirectoryRecord | undefined> {
    return this.#call(() => this.#get<DirectoryRecord>(`room:${gameName}:${roomCode}`));
  }

  list(gameName: string, limit: number): Promise<DirectoryRecord[]> {
    return this.#call(() => {
      const records: DirectoryRecord[] = [];
      for (const code of this.#zset(`game-rooms:${gameName}`).keys()) {
        const record = this.#get<DirectoryRecord>(`room:${gameName}:${code}`);
        if (record && record.summary.players > 0) records.push(record);
      }
      records.sort((a, b) =>
        a.createdAt - b.createdAt ||
        (a.roomCode < b.roomCode ? -1 : a.roomCode > b.roomCode ? 1 : 0)
      );
      return records.slice(0, limit);
    });
  }

  all(limit: number): Promise<DirectoryRecord[]> {
    return this.page({ offset: 0, limit: Math.max(0, limit) }).then((page) => page.records);
  }

  /**
   * As the Redis store pages (docs/spec/SERVER.md §8.3 "Page"), over every live entry sorted
   * here: the sort order (a game's rooms only for a game filter sorted by creation), from rank
   * `offset` without any other filter, else walked from the first room until the page and one
   * more match or `budget` rooms were looked at.
   */
  page(request: RoomPageRequest): Promise<RoomPage> {
    return this.#call(() => {
      const { offset, limit, filter } = request;
      const sort = request.sort ?? OLDEST_FIRST;
      const byGame = filter?.gameName !== undefined && sort.key === "created";
      const rest: RoomFilter = { ...filter };
      if (byGame) delete rest.gameName;
      let order: DirectoryRecord[] = [];
      for (const key of this.keys()) {
        if (!key.startsWith("room:")) continue;
        const record = this.#get<DirectoryRecord>(key)!;
        if (!byGame || record.gameName === filter!.gameName) order.push(record);
      }
      order = order.sort(compareRooms(sort));
      const end = offset + limit;
      if (
        rest.gameName === undefined && rest.query === undefined && rest.lobbyState === undefined
      ) {
        const records = order.slice(offset, end);
        return { records, truncated: order.length > end, complete: true, examined: records.length };
      }
      const budget = request.budget ?? Infinity;
      const records: DirectoryRecord[] = [];
      let matched = 0;
      let examined = 0;
      for (const record of order) {
        if (records.length > limit || examined >= budget) break;
        examined++;
        if (keptBy(record, rest) && ++matched > offset) records.push(record);
      }
      const truncated = records.length > limit;
      return {
        records: records.slice(0, limit),
        truncated,
        complete: truncated || examined === order.length,
        examined,
      };
    });
  }

  take(kind: BucketKind, key: string, now: number): Promise<BucketTake> {
    return this.#bucket(kind, key, now, true);
  }

  check(kind: BucketKind, key: string, now: number): Promise<BucketTake> {
    return this.#bucket(kind, key, now, false);
  }

  /** As the Redis store's: the shared bucket `bucket:app:<appId>` refills by this store's clock. */
  takeAppToken(appId: string, perMinute: number, now: number): Promise<BucketTake> {
    const spec = { capacity: perMinute, windowMs: APP_BUCKET_WINDOW_MS };
    return this.#shared(
      `bucket:app:${appId}`,
      appId,
      spec,
      true,
      () => this.#appFallback.take(appId, perMinute, now),
    );
  }

  /**
   * As the Redis store's: the shared bucket refills by this store's clock (Redis's); `now`, the
   * calling node's clock, only times that node's fallback bucket while the store is unreachable.
   */
  #bucket(kind: BucketKind, key: string, now: number, take: boolean): Promise<BucketTake> {
    const fallback = this.#fallback[kind];
    return this.#shared(
      `bucket:${kind}:${key}`,
      key,
      this.#settings.buckets[kind],
      take,
      () => take ? fallback.take(key, now) : fallback.check(key, now),
    );
  }

  /**
   * As the Redis store's: a take (`take`) or look at the shared bucket `bucketKey` (for `key`),
   * refilled by this store's clock; `fallback` answers while the store is unreachable.
   */
  async #shared(
    bucketKey: string,
    key: string,
    spec: { capacity: number; windowMs: number },
    take: boolean,
    fallback: () => BucketTake,
  ): Promise<BucketTake> {
    try {
      return await this.#call(() => {
        const at = this.#now();
        let buckets = this.#get<KeyedBuckets>(bucketKey);
        if (buckets === undefined) {
          if (!take) return { ok: true as const };
          buckets = new KeyedBuckets(spec.capacity, spec.windowMs, 1);
          this.#set(bucketKey, buckets, 2 * spec.windowMs);
        }
        if (!take) return buckets.check(key, at);
        this.#items.get(bucketKey)!.expiresAt = at + 2 * spec.windowMs;
        return buckets.take(key, at);
      }, take ? "take" : undefined);
    } catch {
      return fallback();
    }
  }

  #resolve(key: string): Resolved {
    const value = this.#get<DirectoryRecord | RoomIdValue>(key);
    if (value === undefined) return { status: "absent" };
    if (value === "gone") return { status: "gone" };
    const homeAlive = this.#get(`instance:${value.home}`) !== undefined;
    if ("gone" in value) return { status: "gone", home: value.home, homeAlive };
    return {
      status: "found",
      home: value.home,
      homeAlive,
      record: {
        roomId: "roomId" in value ? value.roomId : key.slice("room-id:".length),
        gameName: value.gameName,
        roomCode: value.roomCode,
      },
      ...("summary" in value ? { entry: value } : {}),
    };
  }

  resolveCode(gameName: string, roomCode: string): Promise<Resolved> {
    return this.#call(
      () => ({
        ...this.#resolve(`room:${gameName}:${roomCode}`),
        maintenance: this.#get("maintenance") !== undefined,
      }),
      "resolveCode",
    );
  }

  resolveRoomId(roomId: string): Promise<Resolved> {
    return this.#call(() => this.#resolve(`room-id:${roomId}`), "resolveRoomId");
  }

  /**
   * Writes `instance:<node>` and its member of the `instances` index, as the Redis store's
   * liveness script (docs/spec/SERVER.md §8.3).
   */
  writeLiveness(node: NodeId, liveness: Liveness): Promise<void> {
    return this.#call(() => {
      const ttl = this.#settings.ttlMs;
      this.#set(`instance:${node}`, liveness, ttl);
      const index = this.#instances();
      index.set(node, this.#now() + ttl);
      this.#set("instances", index, 2 * ttl);
    });
  }

  /**
   * Writes `instance:<node>` only, as a version without the `instances` index does (tests of a
   * rolling deploy).
   */
  writeUnindexedLiveness(node: NodeId, liveness: Liveness): Promise<void> {
    return this.#call(() => this.#set(`instance:${node}`, liveness, this.#settings.ttlMs));
  }

  /** The `instances` index, its members more than `T` past their expiry removed. */
  #instances(): Map<NodeId, number> {
    const index = this.#get<Map<NodeId, number>>("instances") ?? new Map<NodeId, number>();
    const bound = this.#now() - this.#settings.ttlMs;
    for (const [node, expiry] of index) if (expiry < bound) index.delete(node);
    return index;
  }

  /** The members of the `instances` index as stored, none removed (tests). */
  indexed(): NodeId[] {
    return [...(this.#get<Map<NodeId, number>>("instances")?.keys() ?? [])];
  }

  /** Scans for `instance:*` keys made by {@linkcode MemoryStore.nodes} (tests). */
  scans = 0;
  /** As the Redis store's: when to scan for instances outside the index. */
  readonly #unindexed = new UnindexedScans();

  writeGames(node: NodeId, games: InstanceGames): Promise<void> {
    // A copy, as Redis keeps the JSON text and not the caller's arrays.
    const copy = structuredClone(games);
    return this.#call(() => this.#set(`instance-games:${node}`, copy, this.#settings.ttlMs));
  }

  readGames(nodes: readonly NodeId[]): Promise<Map<NodeId, InstanceGames | null>> {
    return this.#call(() => {
      const found = new Map<NodeId, InstanceGames | null>();
      for (const node of nodes) {
        if (this.#get(`instance:${node}`) === undefined) continue;
        const games = this.#get<InstanceGames>(`instance-games:${node}`);
        found.set(node, games === undefined ? null : structuredClone(games));
      }
      return found;
    });
  }

  deleteLiveness(node: NodeId): Promise<void> {
    return this.#call(() => {
      this.#items.delete(`instance:${node}`);
      this.#items.delete(`instance-games:${node}`);
      this.#get<Map<NodeId, number>>("instances")?.delete(node);
    });
  }

  liveness(node: NodeId): Promise<Liveness | undefined> {
    return this.#call(() => this.#get<Liveness>(`instance:${node}`));
  }

  /**
   * As the Redis store's (docs/spec/SERVER.md §8.3 `instances`): the index's members whose key
   * exists, plus a scan of every key at the first listing and, while the last scan found an
   * instance outside the index, at most once per `UNINDEXED_SCAN_MS` (counted in
   * {@linkcode MemoryStore.scans}).
   */
  nodes(): Promise<Map<NodeId, Liveness>> {
    return this.#call(() => {
      const now = this.#now();
      const scan = this.#unindexed.due(now);
      let scanned: Map<NodeId, Liveness> | undefined;
      if (scan) {
        this.scans++;
        scanned = new Map();
        for (const key of this.keys()) {
          if (key.startsWith("instance:")) {
            scanned.set(key.slice("instance:".length), this.#get<Liveness>(key)!);
          }
        }
      }
      const found = new Map<NodeId, Liveness>();
      const index = this.#instances();
      for (const node of [...index.keys(), ...(scan ? [] : this.#unindexed.extra())]) {
        const liveness = this.#get<Liveness>(`instance:${node}`);
        if (liveness !== undefined) found.set(node, liveness);
      }
      this.#unindexed.settle(now, found, scanned);
      return found;
    });
  }

  /** As the Redis store's: created by this store's clock, the age by it too (at least 0). */
  epoch(): Promise<EpochRead> {
    return this.#call(() => {
      let epoch = this.#get<Epoch>("epoch");
      if (epoch === undefined) {
        epoch = { id: crypto.randomUUID(), createdAt: this.#now() };
        this.#set("epoch", epoch);
      }
      return { ...epoch, ageMs: Math.max(0, this.#now() - epoch.createdAt) };
    });
  }

  /** {@linkcode MemoryStore.runId}, answered even while {@linkcode MemoryStore.loading}. */
  identity(): Promise<string | undefined> {
    return this.#call(() => this.runId, undefined, true);
  }

  setMaintenance(enabled: boolean): Promise<void> {
    return this.#call(() => {
      if (enabled) this.#set("maintenance", true);
      else this.#items.delete("maintenance");
    });
  }

  maintenance(): Promise<boolean> {
    return this.#call(() => this.#get("maintenance") !== undefined);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
