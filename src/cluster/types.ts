/**
 * The two interfaces behind which cluster mode keeps Redis (docs/spec/SERVER.md §8.9): the **bus** carries
 * envelopes between nodes over pub/sub, the **store** holds the shared state of docs/spec/SERVER.md §8.3
 * (directory, caps, buckets, liveness, epoch). `bus.ts` and `store.ts` implement them on Redis;
 * `memory_bus.ts` and `memory_store.ts` are the in-memory twins with fault injection used by fast
 * in-process tests.
 *
 * @module
 */
import type { BucketKind, BucketTake, TokenBuckets } from "../coordination/buckets.ts";
import type {
  DirectoryRecord,
  NodeId,
  RefreshResult,
  RoomDirectory,
} from "../coordination/directory.ts";

import type { InstanceGames } from "../coordination/game_counts.ts";

export type { NodeId } from "../coordination/directory.ts";

/** Whether a Redis link (or its twin) is usable: both connections up (docs/spec/SERVER.md §8.5.5). */
export type LinkState = "up" | "down";

/**
 * Envelopes between nodes (docs/spec/SERVER.md §8.4.1): one channel per node, FIFO per ordered pair of
 * nodes, at most once.
 */
export interface ClusterBus {
  /** This node's name; envelopes for it arrive on its channel. */
  readonly node: NodeId;
  /**
   * Publishes `bytes` to node `to`'s channel without waiting (docs/spec/SERVER.md §8.4.2 item 5). A publish
   * that fails, reaches no subscriber or has an unknown outcome is reported to the `lost`
   * handler given to {@linkcode ClusterBus.start} (the sender resyncs the pair, §8.5.1) —
   * unless `heartbeat` is true: a heartbeat carries no `seq` of its own, so losing one loses
   * nothing (a subscriber cut off for a moment must not resync every pair that heartbeats it).
   */
  publish(to: NodeId, bytes: Uint8Array, heartbeat?: boolean): void;
  /**
   * Publishes counted lost because Redis did not answer within `cluster.forward_timeout_ms`, or
   * not sent because an older one had not been answered in time (docs/spec/SERVER.md §8.5.1,
   * §6.3 #82). Each is reported like a failed publish; heartbeats are counted but not reported.
   */
  readonly unanswered: number;
  /**
   * Subscribes to this node's channel. `receive` gets every envelope in arrival order, `lost`
   * every destination whose publish was lost, `state` every change of the link.
   * Resolves once subscribed (or rejects when Redis cannot be reached at all; the link keeps
   * retrying with backoff).
   */
  start(handlers: BusHandlers): Promise<void>;
  /**
   * Publishes `payload` on the cluster-wide operator channel `kind` (docs/spec/EXTENSIONS.md E12,
   * docs/spec/SERVER.md §8.3): every node listening to it receives it, this one included. No
   * sequence and no loss report: a failed or unanswered publish is dropped (the console's event
   * log, not envelopes).
   */
  broadcast(kind: OperatorChannel, payload: string): void;
  /**
   * Subscribes `listener` to operator channel `kind`, or with `undefined` unsubscribes. Resolves
   * once Redis confirmed; rejects when it cannot be reached (the caller tries again).
   */
  listen(kind: OperatorChannel, listener: ((payload: string) => void) | undefined): Promise<void>;
  /** Forgets what it keeps for node `node` (its channel's name): that node is gone for good. */
  forget?(node: NodeId): void;
  /** Unsubscribes and closes the connections. Idempotent. */
  close(): Promise<void>;
}

/**
 * The operator console's two cluster-wide channels (docs/spec/EXTENSIONS.md E12): `watch` carries
 * the notices of nodes whose console has readers, `events` the room and action events every node
 * publishes while one watches.
 */
export type OperatorChannel = "watch" | "events";

/** What a bus reports. */
export interface BusHandlers {
  receive(bytes: Uint8Array): void;
  lost(to: NodeId): void;
  state?(state: LinkState): void;
}

/** What the directory knows about a room code or room id (docs/spec/SERVER.md §8.3 "Resolve"). */
export type Resolved =
  & (
    | { status: "absent" }
    /**
     * `room-id` tombstone: the room was deleted (only for room ids). `home` is the instance that
     * homed it and `homeAlive` whether its `instance:` key exists (both absent when the tombstone
     * was written without them, docs/spec/SERVER.md §8.3).
     */
    | { status: "gone"; home?: NodeId; homeAlive?: boolean }
    | {
      status: "found";
      home: NodeId;
      /** Whether the `instance:` key of `home` exists (docs/spec/SERVER.md §8.5.4). */
      homeAlive: boolean;
      /** The room entry (lookups by code) or the `room-id` fields (lookups by id). */
      record: { roomId: string; gameName: string; roomCode: string };
      /** The full entry, for lookups by code. */
      entry?: DirectoryRecord;
    }
  )
  & {
    /** Lookups by code: whether the cluster is in maintenance mode (no new rooms). */
    maintenance?: boolean;
  };

/** The shared epoch (docs/spec/SERVER.md §8.3 "Epoch"): the `epoch` key's value. */
export interface Epoch {
  id: string;
  /**
   * Creation time, ms since the Unix epoch, by Redis's clock (an earlier version wrote its own
   * node's clock).
   */
  createdAt: number;
}

/** The epoch as read ({@linkcode ClusterStore.epoch}): its value and its age when read. */
export interface EpochRead extends Epoch {
  /**
   * Redis's clock at the read minus `createdAt`, ms, at least 0: how long ago the epoch was
   * created, whatever the reader's clock says (docs/spec/SERVER.md §8.1).
   */
  ageMs: number;
}

/**
 * How often a store scans (docs/spec/SERVER.md §8.3 `instances`) for `instance:*` keys while its last scan found an instance outside the
 * `instances` index (a version without it, during a rolling deploy), ms.
 */
export const UNINDEXED_SCAN_MS = 60_000;

/**
 * A store's schedule of scans for instances outside the `instances` index (docs/spec/SERVER.md
 * §8.3 `instances`, rolling deploys): a scan at the first listing, then at most once per
 * {@linkcode UNINDEXED_SCAN_MS} while the last scan found such an instance; between scans the
 * ones found are read with the index's members, and one whose key is gone is dropped (node ids
 * are never reused). Shared by the Redis store and its in-memory twin.
 */
export class UnindexedScans {
  /** When the last scan ran, ms by the store's clock; `undefined` before the first listing. */
  #scannedAt: number | undefined;
  /** Whether the last scan found an instance outside the index (scan again until one finds none). */
  #seen = false;
  /** The instances outside the index found by the last scan and alive at the last listing. */
  #unindexed = new Set<NodeId>();

  /** Whether the listing at `now` (ms) scans. */
  due(now: number): boolean {
    return this.#scannedAt === undefined ||
      (this.#seen && now - this.#scannedAt >= UNINDEXED_SCAN_MS);
  }

  /** The instances to read besides the index's members in a listing that does not scan. */
  extra(): readonly NodeId[] {
    return [...this.#unindexed];
  }

  /**
   * Settles a listing at `now`: `found` holds the index's members (and, without a scan, the
   * {@linkcode extra} nodes) whose key exists; `scanned` every `instance:` key a scan found, or
   * `undefined` without a scan. Adds the scanned instances outside the index to `found`.
   */
  settle(now: number, found: Map<NodeId, Liveness>, scanned?: Map<NodeId, Liveness>): void {
    if (scanned === undefined) {
      for (const node of this.#unindexed) if (!found.has(node)) this.#unindexed.delete(node);
      return;
    }
    this.#scannedAt = now;
    this.#unindexed = new Set([...scanned.keys()].filter((node) => !found.has(node)));
    this.#seen = this.#unindexed.size > 0;
    for (const node of this.#unindexed) found.set(node, scanned.get(node)!);
  }
}

/** What a node writes about itself (docs/spec/SERVER.md §8.3 `instance:<node>`). */
export interface Liveness {
  startedAt: number;
  state: "up" | "draining";
  /** The node's own figures at its last refresh (absent from nodes that do not write them). */
  counts?: InstanceCounts;
}

/**
 * One instance's figures: its connections (as an edge) and the rooms, players and spectators of
 * the rooms homed there (`/v2/status` fields, docs/spec/SERVER.md §1.5), so that summed over the
 * instances each is counted once.
 */
export interface InstanceCounts {
  connections: number;
  rooms: number;
  players: number;
  spectators: number;
}

/** {@linkcode InstanceCounts} summed over the instances with a liveness key. */
export interface ClusterCounts extends InstanceCounts {
  instances: number;
}

/**
 * The shared state of docs/spec/SERVER.md §8.3. Every method answers with a Promise that rejects when the
 * store cannot be reached or does not answer within `cluster.forward_timeout_ms`.
 */
export interface ClusterStore extends RoomDirectory, TokenBuckets {
  /**
   * Takes one token from app `appId`'s `Authenticate` bucket, `bucket:app:<app_id>`
   * (docs/spec/SERVER.md §3.3, §8.3): `perMinute` tokens (`rate_limit_per_minute`), refilled
   * continuously over 60 s by Redis's clock, starting full, so the limit is cluster-wide. While
   * the store cannot be reached this node's own bucket for the app answers instead (§8.4.3);
   * `now` (ms, this node's clock) times only that one. Never rejects.
   */
  takeAppToken(appId: string, perMinute: number, now: number): Promise<BucketTake>;
  /**
   * Readies a fresh connection (docs/spec/SERVER.md §8.3 "Scripts"): loads every script, so the
   * first claim, refresh or take after a start or a reconnect (a restarted Redis has no
   * scripts) is one round trip instead of three (`EVALSHA` → `NOSCRIPT` → load → retry).
   * Rejects when Redis does not answer; calls load what they miss by themselves anyway.
   */
  prepare?(): Promise<void>;
  /**
   * Redis's `maxmemory-policy`, read at every (re)connection and warned about unless it is
   * `noeviction` (docs/spec/SERVER.md §8.5.5 "Redis full"); `undefined` when Redis will not say
   * (`CONFIG` disabled or renamed). Rejects when Redis does not answer.
   */
  memoryPolicy?(): Promise<string | undefined>;
  /**
   * Redis's identity: the `run_id` of `INFO server`, a 40-hex-digit string that changes at every
   * restart of the server and differs on another server (after a failover). Read at every
   * (re)connection and refresh, so that a Redis restarted from an old dump or failed over to a
   * replica that missed writes (the `epoch` key intact, the directory rewound) opens a grace
   * window (docs/spec/SERVER.md §8.3 "Epoch"). Resolves `undefined` when Redis will not say
   * (`INFO` disabled, renamed or denied by an ACL, or no `run_id` in its answer); rejects only
   * when Redis does not answer or answers an error to everything (`-LOADING` does not: `INFO`
   * is answered while a dump loads).
   */
  identity?(): Promise<string | undefined>;
  /**
   * Forgets this node's own fallback buckets (taken while Redis could not be reached,
   * docs/spec/SERVER.md §8.4.3) that have been full for longer than their window; called at
   * each refresh (`T/3`).
   */
  sweepFallback?(now: number): void;
  /**
   * Removes from the listing orders up to `count` rooms whose entry is gone (a crashed home's,
   * which nobody released), looking at `count` members from rank `start`; resolves with the
   * rank to start from next time (0 after the end). Called at each refresh, so the whole order
   * is walked over and over, `count` members at a time.
   */
  sweepOrder?(start: number, count: number): Promise<{ next: number; removed: number }>;
  /**
   * Whether the store answers: `false` from a call that failed because Redis could not be reached
   * or did not answer within `cluster.forward_timeout_ms` until a call answers again (an error
   * reply from Redis counts as an answer). While `false`, Redis is "unreachable"
   * (docs/spec/SERVER.md §8.5.5): `/v2/health` answers 503, requests that need Redis answer
   * `SERVICE_UNAVAILABLE`, and the death-verdict guard of §8.5.4 restarts.
   */
  readonly reachable: boolean;
  /** Adds a listener called on every change of {@linkcode ClusterStore.reachable}. */
  watchReachable(listener: (reachable: boolean) => void): void;
  /**
   * Resolves a room code (`JoinRoom`, `JoinAsSpectator`, HTTP lookup); the answer also says
   * whether the cluster is in maintenance mode (`maintenance`).
   */
  resolveCode(gameName: string, roomCode: string): Promise<Resolved>;
  /** Resolves a room id (`Reconnect`). */
  resolveRoomId(roomId: string): Promise<Resolved>;
  /** Runs the refresh script for every record in one pipeline (docs/spec/SERVER.md §8.3). */
  refreshAll(records: readonly DirectoryRecord[]): Promise<RefreshResult[]>;
  /**
   * Writes this node's liveness key with TTL `T` and its member of the `instances` index
   * (docs/spec/SERVER.md §8.3), together.
   */
  writeLiveness(node: NodeId, liveness: Liveness): Promise<void>;
  /**
   * Writes this node's counts per game (`instance-games:<node>`, docs/spec/SERVER.md §8.3) with
   * TTL `T`, as its liveness key (both are written at every refresh).
   */
  writeGames(node: NodeId, games: InstanceGames): Promise<void>;
  /**
   * The counts per game of `nodes` (docs/spec/EXTENSIONS.md E12 `/admin/api/games`), in one read
   * of their liveness and `instance-games:` keys: a node with both maps to its counts, one with
   * a liveness key only (a version that writes no counts) to `null`; a node without a liveness
   * key (stopped, or expired) is left out.
   */
  readGames(nodes: readonly NodeId[]): Promise<Map<NodeId, InstanceGames | null>>;
  /**
   * Deletes a node's liveness key and its `instance-games:` key, and its member of the
   * `instances` index (clean exit).
   */
  deleteLiveness(node: NodeId): Promise<void>;
  /** The liveness of `node`, or `undefined` when its key is absent. */
  liveness(node: NodeId): Promise<Liveness | undefined>;
  /**
   * Every node with a liveness key (for `/v2/status` and operator listings), read from the
   * `instances` index; the first listing and, while instances of a version without the index
   * remain, one a minute also scan for them (docs/spec/SERVER.md §8.3 `instances`).
   */
  nodes(): Promise<Map<NodeId, Liveness>>;
  /**
   * Puts the whole cluster in maintenance mode or takes it out (the `maintenance` key,
   * docs/spec/EXTENSIONS.md E12): while on, claims answer `maintenance`. Rejects with
   * `NoAnswer` (coordination/no_answer.ts) when the command went out and Redis did not answer in
   * time (it may still be carried out), with another error when it could not be sent.
   */
  setMaintenance(enabled: boolean): Promise<void>;
  /** Whether the cluster is in maintenance mode. */
  maintenance(): Promise<boolean>;
  /**
   * Reads the epoch, creating it when missing (creation time by Redis's clock), with its age by
   * Redis's clock (docs/spec/SERVER.md §8.3 "Epoch").
   */
  epoch(): Promise<EpochRead>;
  /** Closes the store's connections (a shared link is closed by its owner). */
  close(): Promise<void>;
}

/** Settings of a store (docs/spec/SERVER.md §2.7 `cluster.*`, §8.3). */
export interface StoreSettings {
  /** `cluster.key_prefix`. */
  prefix: string;
  /** `T` = `cluster.directory_ttl_secs` × 1000, ms. */
  ttlMs: number;
  /** `server.reconnection_window` × 1000, ms (lifetime of `room-id` beyond `T`, and of `gone`). */
  reconnectionWindowMs: number;
  /** Bucket sizes per kind: `capacity` tokens refilled over `windowMs` (docs/spec/SERVER.md §3.4). */
  buckets: Record<BucketKind, { capacity: number; windowMs: number }>;
  /** Longest wait for one store call, ms (`cluster.forward_timeout_ms`). */
  timeoutMs: number;
  /**
   * This node's clock, ms. The Redis store uses it only for its own schedule of scans
   * (docs/spec/SERVER.md §8.3 `instances`): every time Redis keeps is by Redis's clock (§8.1),
   * and a fallback bucket goes by the `now` of each take. For the in-memory twin, shared by every
   * node, the clock of "Redis" itself: every time it keeps, its TTLs and its bucket refills.
   * @default Date.now
   */
  now?: () => number;
  /**
   * Tests of the Redis store only: the clock its scripts use instead of Redis's own (`TIME`,
   * which cannot be set), ms, to move Redis's time as the twin's `now` moves the twin's. Never
   * set in production (src/cluster/open.ts). @default Redis's `TIME`
   */
  redisNow?: () => number;
}

/**
 * Whether a {@linkcode ClusterStore} answers, and who is told when that changes (the
 * `reachable` / `watchReachable` part of the store, shared by the Redis store and its twin;
 * docs/spec/SERVER.md §8.5.5).
 */
export class Reachability {
  #reachable = true;
  readonly #listeners: ((reachable: boolean) => void)[] = [];

  /** The last call's verdict: `true` until a call fails without an answer. */
  get reachable(): boolean {
    return this.#reachable;
  }

  /** Adds a listener called on every change. */
  watch(listener: (reachable: boolean) => void): void {
    this.#listeners.push(listener);
  }

  /** Records a call's verdict; listeners hear only changes. */
  answered(reachable: boolean): void {
    if (reachable === this.#reachable) return;
    this.#reachable = reachable;
    for (const listener of this.#listeners) listener(reachable);
  }
}

/**
 * Releases that failed without an answer, sent again each time the store answers again
 * (docs/spec/SERVER.md §8.3 "Release", §8.5.5), so a room's entry does not outlive the room by up
 * to `T` because Redis was away when the room closed, and a claim whose answer was lost does not
 * hold its code. Shared by the Redis store and its twin. Bounded: past `max`, the oldest is left
 * to expire with its TTL.
 */
export class PendingReleases {
  readonly #pending = new Map<string, [gameName: string, roomCode: string]>();
  readonly #send: (gameName: string, roomCode: string, roomId: string) => Promise<void>;
  readonly #max: number;

  constructor(
    reachability: Reachability,
    send: (gameName: string, roomCode: string, roomId: string) => Promise<void>,
    max = 10_000,
  ) {
    this.#send = send;
    this.#max = max;
    reachability.watch((reachable) => {
      if (!reachable) return;
      for (const [roomId, [gameName, roomCode]] of [...this.#pending]) {
        this.release(gameName, roomCode, roomId).catch(() => {});
      }
    });
  }

  /** Releases waiting for the store to answer. */
  get size(): number {
    return this.#pending.size;
  }

  /** Sends the release; a failure rejects as usual and keeps it for the next answer. */
  release(gameName: string, roomCode: string, roomId: string): Promise<void> {
    return this.#send(gameName, roomCode, roomId).then(
      () => void this.#pending.delete(roomId),
      (error) => {
        this.#pending.delete(roomId);
        this.#pending.set(roomId, [gameName, roomCode]);
        if (this.#pending.size > this.#max) {
          this.#pending.delete(this.#pending.keys().next().value!);
        }
        throw error;
      },
    );
  }
}
