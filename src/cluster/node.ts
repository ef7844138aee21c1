/**
 * One node of a cluster (docs/spec/SERVER.md §8.2–§8.5): its store and bus, its {@linkcode ClusterRouter},
 * the `T/3` timer that rewrites its liveness key and refreshes the directory entries of its
 * rooms, the epoch watch (re-registration and grace window, §8.3) and the death verdict of
 * §8.5.4. Works the same over Redis and over the in-memory twins.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  countEntries,
  type GameCounts,
  type GameTotals,
  type InstanceGames,
  sumGames,
  topGames,
} from "../coordination/game_counts.ts";
import type { DirectoryEntry } from "../engine/effects.ts";
import {
  REFUSAL_REASONS,
  refusalReason,
  refusesEveryWrite,
  reportMemoryPolicy,
} from "./link_report.ts";
import { ClusterRouter } from "./router.ts";
import type {
  ClusterBus,
  ClusterCounts,
  ClusterStore,
  Epoch,
  InstanceCounts,
  LinkState,
  Liveness,
  NodeId,
} from "./types.ts";

const log = getLogger(["signal-fish", "cluster"]);

/** The part of the metrics registry cluster metrics need (src/metrics/registry.ts). */
export interface MetricsRegistry {
  counter(name: string, help: string, read?: () => number): unknown;
  gauge(name: string, help: string, read?: () => number): unknown;
  /** A counter family with labels (metrics/registry.ts `LabeledCounter`). */
  labeledCounter?(
    name: string,
    help: string,
    labelNames: readonly string[],
  ): { inc(values: readonly string[], by?: number): void };
}

/**
 * Registers the cluster metrics of docs/spec/SERVER.md §6.3 that this build counts, read at scrape time
 * from `node` (and from the edge for `bound` and `remote`). With `refusals` (a `RefusalReport`,
 * link_report.ts), the writes Redis refused while answering, by reason (§6.3 #98, §8.5.5 "Redis
 * full", "Redis refuses writes"): its `counter` is set to the family, each reason's series
 * created at 0 so that `increase()` sees the first refusal.
 */
export function registerClusterMetrics(
  registry: MetricsRegistry,
  node: ClusterNode,
  edge: { boundRemote(): number; remoteSessions(): number },
  refusals?: { counter: { inc(values: readonly string[]): void } | undefined },
): void {
  const p = "signal_fish_";
  const stats = node.router.streams.stats;
  registry.counter(
    `${p}cross_instance_messages_total`,
    "Envelopes published to other nodes, heartbeats included",
    () => stats.envelopesOut,
  );
  registry.counter(
    `${p}cluster_envelopes_received_total`,
    "Envelopes received from other nodes, heartbeats and duplicates included",
    () => stats.envelopesIn,
  );
  registry.counter(`${p}cluster_sent_bytes_total`, "Bytes of envelopes sent", () => stats.bytesOut);
  registry.counter(
    `${p}cluster_received_bytes_total`,
    "Bytes of envelopes received",
    () => stats.bytesIn,
  );
  registry.counter(
    `${p}cluster_sequence_gaps_total`,
    "Gaps found in envelope streams from other nodes",
    () => stats.gaps,
  );
  registry.counter(
    `${p}cluster_duplicate_envelopes_total`,
    "Envelopes dropped as duplicates",
    () => stats.duplicates,
  );
  registry.counter(
    `${p}cluster_publishes_unanswered_total`,
    "Publishes counted lost: Redis did not answer within forward_timeout_ms, or an older one was still unanswered",
    () => node.publishesUnanswered,
  );
  if (refusals && registry.labeledCounter) {
    const family = registry.labeledCounter(
      `${p}cluster_redis_write_refusals_total`,
      "Redis commands refused while Redis answers, by reason: oom (maxmemory under noeviction), misconf (a failed background save), readonly (a replica)",
      ["reason"],
    );
    for (const reason of REFUSAL_REASONS) family.inc([reason], 0);
    refusals.counter = family;
  }
  registry.counter(
    `${p}cluster_resyncs_total`,
    "Pair resyncs: gap, silent peer or lost publish",
    () => stats.resyncs,
  );
  const counts = node.router.counts;
  registry.counter(
    `${p}cluster_resync_closes_total`,
    "Connections this node closed with 1012",
    () => counts.resyncCloses,
  );
  registry.counter(
    `${p}cluster_bind_timeouts_total`,
    "Requests failed with SERVICE_UNAVAILABLE after forward_timeout_ms without a home's answer",
    () => counts.bindTimeouts,
  );
  registry.counter(
    `${p}cluster_binds_expired_total`,
    "Bind requests this home dropped because their deadline had passed",
    () => counts.bindsExpired,
  );
  registry.counter(
    `${p}cluster_binds_undone_total`,
    "Late successful binds undone with CLOSED{abandoned}",
    () => counts.bindsUndone,
  );
  registry.counter(
    `${p}cluster_code_conflicts_total`,
    "Rooms homed here whose refresh found their code owned by another room",
    () => node.conflictCount,
  );
  registry.counter(
    `${p}cluster_epoch_changes_total`,
    "Epoch changes seen (Redis lost its data)",
    () => node.epochChanges,
  );
  registry.counter(
    `${p}cluster_peer_deaths_total`,
    "Death verdicts on other nodes, once per node",
    () => node.peerDeaths,
  );
  registry.counter(
    `${p}cluster_redis_reconnects_total`,
    "Redis links re-established after a loss",
    () => node.redisReconnects,
  );
  registry.gauge(
    `${p}cluster_redis_up`,
    "1 while both Redis connections are up, Redis answers and the node is registered, else 0",
    () => node.healthy ? 1 : 0,
  );
  registry.gauge(
    `${p}cluster_bound_connections`,
    "Connections on this node bound to rooms homed on other nodes",
    () => edge.boundRemote(),
  );
  registry.gauge(
    `${p}cluster_remote_sessions`,
    "Connections of other nodes seated in rooms homed here",
    () => edge.remoteSessions(),
  );
}

/** Most dead nodes remembered for counting verdicts once each (then the set starts over). */
const MAX_DEAD_REMEMBERED = 10_000;
/**
 * Members of `rooms-by:created` each refresh looks at for rooms whose entry is gone (every `T/3`, on
 * every node: at the defaults, 128 per 10 s per node).
 */
const ORDER_SWEEP = 128;

/** A fresh node name: `<instance_id>@<8 hex digits>` (docs/spec/SERVER.md §8.2). */
export function nodeName(instanceId: string): NodeId {
  const boot = crypto.getRandomValues(new Uint8Array(4));
  return `${instanceId}@${[...boot].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Settings of a {@linkcode ClusterNode}. */
export interface ClusterNodeOptions {
  store: ClusterStore;
  bus: ClusterBus;
  /** `T` = `cluster.directory_ttl_secs` × 1000. */
  ttlMs: number;
  /** `cluster.heartbeat_ms`. */
  heartbeatMs: number;
  /** `cluster.envelope_window_ms` (docs/spec/SERVER.md §8.4.1). @default 0 */
  envelopeWindowMs?: number;
  /** `cluster.forward_timeout_ms`. */
  forwardTimeoutMs: number;
  /** The directory entries of the rooms homed here (read at every refresh). */
  entries: () => DirectoryEntry[];
  /** Clock, ms. @default Date.now */
  now?: () => number;
}

/** The cluster side of one node. */
export class ClusterNode {
  readonly node: NodeId;
  readonly router: ClusterRouter;
  readonly store: ClusterStore;
  readonly #bus: ClusterBus;
  readonly #options: ClusterNodeOptions;
  readonly #now: () => number;
  readonly startedAt: number;
  #state: Liveness["state"] = "up";
  #epoch: Epoch | undefined;
  /**
   * When the epoch's grace window ends, by this node's clock: `T` after the epoch's creation,
   * reckoned from its age as Redis gives it (docs/spec/SERVER.md §8.3 "Epoch"), so this node's
   * clock skew does not move it. The earliest end any read of the epoch gave: an answer that
   * arrives late only makes a read's end later.
   */
  #epochGraceUntil = -Infinity;
  /**
   * Since when Redis has been reachable without interruption: both connections up and no store
   * call failed or timed out since (undefined = not now; docs/spec/SERVER.md §8.5.4 guard 1).
   */
  #upSince: number | undefined;
  /** Both Redis connections up (the bus's link state). */
  #linkUp = false;
  /**
   * Since when Redis has accepted this node's writes: undefined while it refuses every write
   * (`MISCONF`, `READONLY`), as liveness keys cannot be written then (docs/spec/SERVER.md §8.5.4
   * guard 1, §8.5.5 "Redis refuses writes"); `-Infinity` when never refused.
   */
  #writableSince: number | undefined = -Infinity;
  /** When the current run of refused writes began (undefined: writes are accepted). */
  #refusedSince: number | undefined;
  /** Until when codes and room ids the directory does not know answer as in a grace window. */
  #refusalGraceUntil = -Infinity;
  /** The pending write probe while Redis refuses every write. */
  #probingWrites: ReturnType<typeof setTimeout> | undefined;
  /** The link was up once (later ups are reconnects). */
  #everUp = false;
  /** Nodes this node held dead (each counted once, docs/spec/SERVER.md §6.3 #77). */
  readonly #dead = new Set<NodeId>();
  /** When the epoch last changed (or was first read), or Redis's identity changed. */
  #epochSince = 0;
  /**
   * Redis's `run_id` last read ({@linkcode ClusterStore.identity}; undefined: never read, or Redis
   * will not say). A change means a restarted or failed-over Redis whose directory may be rewound
   * (docs/spec/SERVER.md §8.3 "Epoch").
   */
  #runId: string | undefined;
  /**
   * Whether Redis's identity has been read (or found unavailable) since the link last came up:
   * until then codes and room ids the directory does not know answer as in a grace window, so
   * that no request resolved right after a reconnect races the read.
   */
  #identityKnown = false;
  /**
   * Whether the epoch has been read since the link last came up (docs/spec/SERVER.md §8.3
   * "Epoch"): until then the epoch held may be an earlier Redis's, so codes and room ids the
   * directory does not know answer as in a grace window. Without it a Redis that refuses `INFO`
   * and came back empty would be judged by the old epoch for the round trip of the read.
   */
  #epochKnown = false;
  /**
   * Bumped whenever Redis's identity must be read again (the link went down, the primary
   * changed): a read begun before answers for the Redis that was there then, and is ignored.
   */
  #identityRound = 0;
  /** Redis said once that it will not give its identity (logged once, at debug). */
  #identityRefused = false;
  /**
   * Until when codes and room ids the directory does not know answer as in a grace window after
   * Redis's identity changed: `Infinity` until this node has re-registered, then `T` past that.
   */
  #identityGraceUntil = -Infinity;
  /** A re-registration after an identity change is due (retried every `heartbeat_ms`). */
  #rejoinPending = false;
  /** Failed re-registration attempts since the identity changed (the first is warned about). */
  #rejoinFailures = 0;
  /** The pending retry of a refresh (identity unknown or re-registration due). */
  #retrying: ReturnType<typeof setTimeout> | undefined;
  #registered = false;
  /** Where the next order sweep starts in `rooms-by:created` (see `ClusterStore.sweepOrder`). */
  #orderRank = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** The pending probe while Redis does not answer. */
  #probing: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  /** Rooms whose last refresh found a conflict (left out of local-first code lookups). */
  readonly conflicts = new Set<string>();
  /** Directory conflicts counted (docs/spec/SERVER.md §6.3). */
  conflictCount = 0;
  /** Epoch changes seen after the first read (docs/spec/SERVER.md §6.3). */
  epochChanges = 0;
  /**
   * Cluster-wide maintenance mode (docs/spec/EXTENSIONS.md E12) as last read from Redis (every
   * refresh) or set through this node.
   */
  maintenance = false;
  /** The nodes with a liveness key at the last refresh (for `/v2/status`). */
  seen: NodeId[] = [];
  /** Their liveness values at the last refresh (for {@linkcode ClusterNode.totals}). */
  #peers = new Map<NodeId, Liveness>();
  /** This node's own figures, written with its liveness key at every refresh. */
  counts: (() => InstanceCounts) | undefined;
  /**
   * The rooms, players and spectators per game of the rooms homed here, as they are now (the
   * engine's live counts): written to `instance-games:<node>` at every refresh and read live by
   * {@linkcode ClusterNode.games}. Unset: the node writes no counts per game.
   */
  gameCounts: (() => ReadonlyMap<string, Readonly<GameCounts>>) | undefined;
  /** Death verdicts on other nodes, once per node (docs/spec/SERVER.md §6.3 #77). */
  peerDeaths = 0;
  /** Redis links re-established after a loss (docs/spec/SERVER.md §6.3 #78). */
  redisReconnects = 0;
  /** Rooms restored from `server.state_file` whose codes no refresh has claimed yet, by room id. */
  readonly #unclaimed = new Set<string>();
  #dropRestored: ((gameName: string, roomCode: string) => void) | undefined;

  constructor(options: ClusterNodeOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.startedAt = this.#now();
    this.store = options.store;
    this.#bus = options.bus;
    this.node = options.bus.node;
    this.router = new ClusterRouter(options.bus, {
      forwardTimeoutMs: options.forwardTimeoutMs,
      heartbeatMs: options.heartbeatMs,
      idleMs: options.ttlMs,
      now: this.#now,
      envelopeWindowMs: options.envelopeWindowMs ?? 0,
    });
    this.store.watchReachable((reachable) => this.#storeState(reachable));
  }

  /** Publishes counted lost because Redis did not answer in time (docs/spec/SERVER.md §6.3 #82). */
  get publishesUnanswered(): number {
    return this.#bus.unanswered;
  }

  /**
   * Whether the node is registered, its link is up and the store answers (`/v2/health`,
   * docs/spec/SERVER.md §8.5.5 "Redis unreachable").
   */
  get healthy(): boolean {
    return this.#registered && this.#upSince !== undefined;
  }

  /**
   * Rooms restored from `server.state_file` at startup (docs/spec/SERVER.md §2.7 note): until a
   * refresh has claimed a room's code in the directory, local-first lookups by code skip it (as
   * a conflict's loser, §8.3), so nobody joins a room that may be about to go; `Reconnect` by
   * room id reaches it. A refresh that finds the code held by another room (taken while this
   * instance was down) drops the room through `drop`, with a warning, instead of keeping it as
   * a conflict's loser: its seats are all held, and its players' `Reconnect` then fails with
   * `RECONNECTION_FAILED`. Call before {@linkcode ClusterNode.start}.
   */
  restored(
    rooms: readonly { roomId: string; gameName: string; roomCode: string }[],
    drop: (gameName: string, roomCode: string) => void,
  ): void {
    this.#dropRestored = drop;
    for (const room of rooms) {
      this.#unclaimed.add(room.roomId);
      this.conflicts.add(`${room.gameName}\u0000${room.roomCode}`);
    }
  }

  /** Subscribes, registers and starts the timers. Resolves once registered the first time. */
  async start(): Promise<void> {
    const handlers = this.router.busHandlers();
    await this.#bus.start({ ...handlers, state: (state) => this.linkState(state) });
    if (!this.#linkUp) this.linkState("up");
    await this.#prepare();
    this.router.startHeartbeats();
    this.#timer = setInterval(() => void this.refresh(), Math.max(1, this.#options.ttlMs / 3));
    await this.refresh();
  }

  /** Reports a change of the Redis link: a reconnect re-registers at once (docs/spec/SERVER.md §8.3). */
  linkState(state: LinkState): void {
    const wasUp = this.#linkUp;
    this.#linkUp = state === "up";
    if (state === "down") {
      this.#upSince = undefined;
      // The next connection may reach another Redis (a restart, a failover): read it again.
      this.#forgetIdentity();
      return;
    }
    if (wasUp) return;
    if (this.#everUp) {
      this.redisReconnects++;
      void this.#prepare();
    }
    this.#everUp = true;
    this.#reachableAgain();
  }

  /**
   * The link moved to another Redis primary without a reconnect of this node's own (Redis
   * Sentinel after a failover, `RedisLinkOptions.onPrimaryChange` in store.ts; the link's state
   * need not go down on the way): the new primary may lack the last writes, so Redis's identity
   * is unknown again — codes and room ids the directory does not know answer
   * `SERVICE_UNAVAILABLE` — and a refresh runs at once to read it (docs/spec/SERVER.md §8.3
   * "Redis's identity"); a changed `run_id` then opens the grace window and re-registers. Guard 1
   * of §8.5.4 restarts without the node turning unhealthy: the liveness keys may be rewound too,
   * so no node is held dead for `T`, even when Redis will not give its `run_id`. It counts no
   * reconnect itself (§6.3 #78; a drop of the link's state on the way does). With the link down,
   * its return refreshes at once instead.
   */
  primaryChanged(): void {
    if (this.#stopped) return;
    this.#forgetIdentity();
    if (this.#upSince !== undefined) this.#upSince = this.#now();
    log.info("Redis's primary changed (Sentinel failover): reading its run_id");
    if (this.#timer !== undefined && this.#linkUp) void this.refresh();
  }

  /** Redis's identity must be read again before unknown codes answer as usual. */
  #forgetIdentity(): void {
    this.#identityRound++;
    if (this.store.identity !== undefined) this.#identityKnown = false;
    this.#epochKnown = false;
  }

  /**
   * Readies the store's fresh connection ({@linkcode ClusterStore.prepare}) and reads Redis's
   * `maxmemory-policy`, warning unless it is `noeviction` (docs/spec/SERVER.md §8.5.5 "Redis
   * full"); failures only log at debug.
   */
  async #prepare(): Promise<void> {
    try {
      await this.store.prepare?.();
    } catch (error) {
      log.debug("Cannot load the Redis scripts yet: {error}", { error });
    }
    if (this.store.memoryPolicy === undefined) return;
    try {
      reportMemoryPolicy(log, await this.store.memoryPolicy(), { node: this.node });
    } catch (error) {
      log.debug("Cannot read Redis's maxmemory-policy yet: {error}", { error });
    }
  }

  /**
   * The store stopped or started answering: a Redis that does not answer (paused, overloaded,
   * cut off) is an interruption like a lost connection (docs/spec/SERVER.md §8.5.4 guard 1,
   * §8.5.5 "Redis unreachable").
   */
  #storeState(reachable: boolean): void {
    if (!reachable) {
      if (this.#upSince !== undefined) log.warn("Redis does not answer");
      this.#upSince = undefined;
      this.#probe();
      return;
    }
    if (this.#linkUp) this.#reachableAgain();
  }

  /**
   * While Redis does not answer, one light read every `heartbeat_ms` (not only the `T/3`
   * refresh) notices its return: a node whose `/v2/health` is 503 gets no traffic from a load
   * balancer, so nothing else would.
   */
  #probe(): void {
    if (this.#probing !== undefined || this.#stopped) return;
    this.#probing = setTimeout(() => {
      this.#probing = undefined;
      if (this.#stopped || this.store.reachable) return;
      this.store.liveness(this.node).then(
        () => {},
        () => this.#probe(),
      );
    }, this.#options.heartbeatMs);
  }

  /**
   * Redis refused one of this node's writes for a reason that refuses every write (`MISCONF`,
   * `READONLY`: `refusesEveryWrite`, link_report.ts). No node can write its liveness key or its
   * rooms' entries meanwhile, so until writes are accepted again no peer is held dead (the
   * refusal counts as an interruption for guard 1 of docs/spec/SERVER.md §8.5.4) and codes and
   * room ids the directory does not know answer `SERVICE_UNAVAILABLE` as in the grace window
   * (their entries may have expired). Writes are probed every `heartbeat_ms` (the liveness
   * script), so their return is noticed at once. `/v2/health` is unaffected: Redis answers and
   * the rooms here keep working.
   */
  writesRefused(): void {
    if (this.#stopped) return;
    if (this.#refusedSince === undefined) this.#refusedSince = this.#now();
    this.#writableSince = undefined;
    this.#probeWrites();
  }

  /**
   * Redis accepted one of this node's writes: ends a run of refused writes ({@linkcode
   * ClusterNode.writesRefused}). Guard 1 restarts (no verdict for `T`); when the run lasted `T/3`
   * or more (a room's entry may have expired), unknown codes and room ids keep answering
   * `SERVICE_UNAVAILABLE` for `T/3` more, the time every node's refresh needs to write its rooms'
   * entries back; this node's refresh runs at once.
   */
  writesAccepted(): void {
    const since = this.#refusedSince;
    if (since === undefined) return;
    const now = this.#now();
    this.#refusedSince = undefined;
    this.#writableSince = now;
    clearTimeout(this.#probingWrites);
    this.#probingWrites = undefined;
    const third = this.#options.ttlMs / 3;
    if (now - since >= third) this.#refusalGraceUntil = now + third;
    void this.refresh();
  }

  /** While Redis refuses every write, a liveness write every `heartbeat_ms` notices the end. */
  #probeWrites(): void {
    if (this.#probingWrites !== undefined || this.#stopped) return;
    this.#probingWrites = setTimeout(() => {
      this.#probingWrites = undefined;
      if (this.#stopped || this.#refusedSince === undefined) return;
      this.store.writeLiveness(this.node, this.#liveness()).then(
        () => this.writesAccepted(),
        (error: unknown) => {
          if (!refusesEveryWrite(error)) this.#probe();
          if (this.#refusedSince !== undefined) this.#probeWrites();
        },
      );
    }, this.#options.heartbeatMs);
  }

  /** This node's liveness value, as written every refresh. */
  #liveness(): Liveness {
    const counts = this.counts?.();
    return { startedAt: this.startedAt, state: this.#state, ...(counts ? { counts } : {}) };
  }

  /** Redis reachable again: the guard restarts and the node re-registers at once (§8.3). */
  #reachableAgain(): void {
    if (this.#upSince !== undefined) return;
    this.#upSince = this.#now();
    if (this.#registered || !this.#identityKnown || !this.#epochKnown) void this.refresh();
  }

  /**
   * Reads Redis's identity ({@linkcode ClusterStore.identity}) and compares it with the one last
   * read (docs/spec/SERVER.md §8.3 "Epoch"). A change (a Redis restarted, possibly from an old
   * dump, or another server after a failover) is treated like an epoch change: the node
   * re-registers now (this refresh), retrying every `heartbeat_ms` until it has, no node is held
   * dead for `T` (§8.5.4), and codes and room ids the directory does not know answer
   * `SERVICE_UNAVAILABLE` until `T` after this node's re-registration. A Redis that will not say
   * (`INFO` refused) leaves the node as without this check (a debug line, once). Never rejects:
   * when Redis does not answer, the identity stays unknown and the refresh is retried.
   */
  async #readIdentity(): Promise<void> {
    const read = this.store.identity;
    if (read === undefined) {
      this.#identityKnown = true;
      return;
    }
    const round = this.#identityRound;
    let runId: string | undefined;
    try {
      runId = await read.call(this.store);
    } catch (error) {
      log.debug("Cannot read Redis's identity yet: {error}", { error });
      return;
    }
    // The link dropped or the primary changed during the read: the answer may be the old
    // Redis's; the refresh that follows (or the retry) reads it again.
    if (round !== this.#identityRound) return;
    this.#identityKnown = true;
    if (runId === undefined) {
      if (!this.#identityRefused) {
        this.#identityRefused = true;
        log.debug(
          "Redis does not give its run_id (INFO refused): a restart from an old dump is not detected",
        );
      }
      return;
    }
    const previous = this.#runId;
    this.#runId = runId;
    if (previous === undefined || previous === runId) return;
    this.#epochSince = this.#now();
    this.#identityGraceUntil = Infinity;
    this.#rejoinPending = true;
    this.#rejoinFailures = 0;
    log.warn(
      "Redis restarted or failed over (run_id changed): re-registering {rooms} rooms; unknown codes answer SERVICE_UNAVAILABLE for {seconds} s",
      { rooms: this.#options.entries().length, seconds: this.#options.ttlMs / 1000 },
    );
  }

  /**
   * While Redis's identity is unknown since a reconnect or a re-registration after its change is
   * due, the refresh runs again every `heartbeat_ms` rather than at the next `T/3` (a restarted
   * Redis answers `-LOADING` while it loads its dump).
   */
  #retrySoon(): void {
    if (this.#stopped || this.#retrying !== undefined) return;
    if (this.#identityKnown && this.#epochKnown && !this.#rejoinPending) return;
    // Link down or Redis silent: its return refreshes at once (linkState, #storeState).
    if (!this.#linkUp || !this.store.reachable) return;
    this.#retrying = setTimeout(() => {
      this.#retrying = undefined;
      void this.refresh();
    }, this.#options.heartbeatMs);
  }

  /**
   * The `T/3` refresh: reads the epoch (re-registering at once after a change), rewrites the
   * liveness key and runs the refresh script for every homed room, pipelined.
   */
  async refresh(): Promise<void> {
    if (this.#stopped) return;
    await this.#readIdentity();
    try {
      const round = this.#identityRound;
      const epoch = await this.store.epoch();
      const graceUntil = this.#now() + this.#options.ttlMs - epoch.ageMs;
      if (this.#epoch?.id !== epoch.id) {
        if (this.#epoch !== undefined) {
          this.epochChanges++;
          log.warn("Redis epoch changed: re-registering {rooms} rooms", {
            rooms: this.#options.entries().length,
          });
        }
        this.#epoch = { id: epoch.id, createdAt: epoch.createdAt };
        this.#epochSince = this.#now();
        this.#epochGraceUntil = graceUntil;
      } else {
        this.#epochGraceUntil = Math.min(this.#epochGraceUntil, graceUntil);
      }
      // Read from the Redis the link has now (none dropped or changed while it was asked).
      if (round === this.#identityRound) this.#epochKnown = true;
      this.store.sweepFallback?.(Date.now());
      const games = this.gameCounts?.();
      // Sent together (one round trip): the counts per game live as long as the liveness key.
      // A write Redis refuses while it answers (docs/spec/SERVER.md §8.5.5 "Redis full", "Redis
      // refuses writes", reported by the store) does not end the refresh: under OOM the rooms'
      // refresh script still runs (Redis runs it whole when full), so their entries and codes
      // outlive the refusals; under MISCONF or READONLY every write is refused, so the rooms'
      // writes are skipped and the reads go on.
      let written = true;
      let refusesWrites = false;
      const refused = (error: unknown) => {
        if (refusalReason(error) === undefined) throw error;
        if (refusesEveryWrite(error)) refusesWrites = true;
        return false;
      };
      await Promise.all([
        this.store.writeLiveness(this.node, this.#liveness())
          .then(() => true, refused).then((ok) => written = ok),
        games ? this.store.writeGames(this.node, topGames(games)).catch(refused) : undefined,
      ]);
      if (written) this.writesAccepted();
      else if (refusesWrites) this.writesRefused();
      this.maintenance = await this.store.maintenance();
      const records = refusesWrites
        ? []
        : this.#options.entries().map((entry) => ({ ...entry, home: this.node }));
      const results = await this.store.refreshAll(records);
      // Rooms that closed while the scripts ran: their answers say nothing about the code now (a
      // new room may hold it), and a refresh that ran after the release wrote the entry back.
      const homed = new Set(this.#options.entries().map((entry) => entry.roomId));
      results.forEach((result, i) => {
        const record = records[i]!;
        if (!homed.has(record.roomId)) {
          this.#unclaimed.delete(record.roomId);
          Promise.resolve(this.store.release(record.gameName, record.roomCode, record.roomId))
            .catch((error: unknown) => log.warn("Cluster release failed: {error}", { error }));
          return;
        }
        const key = `${record.gameName}\u0000${record.roomCode}`;
        if (this.#unclaimed.delete(record.roomId) && result === "conflict") {
          this.conflictCount++;
          this.conflicts.delete(key);
          log.warn(
            "Dropping restored room {room_code} of {game_name}: its code is held by another room",
            { room_code: record.roomCode, game_name: record.gameName, room_id: record.roomId },
          );
          this.#dropRestored?.(record.gameName, record.roomCode);
        } else if (result === "conflict") {
          if (!this.conflicts.has(key)) {
            this.conflictCount++;
            log.warn("Room code {room_code} of {game_name} is held by another room", {
              room_code: record.roomCode,
              game_name: record.gameName,
            });
          }
          this.conflicts.add(key);
        } else {
          this.conflicts.delete(key);
        }
      });
      if (this.conflicts.size > 0) {
        // A room that lost its code and then closed: its key would stay until a room here
        // took the same code again.
        const homedCodes = new Set(
          this.#options.entries().map((entry) => `${entry.gameName}\u0000${entry.roomCode}`),
        );
        for (const key of this.conflicts) if (!homedCodes.has(key)) this.conflicts.delete(key);
      }
      // Registered once its liveness key is written too (others then see it alive).
      if (written) this.#registered = true;
      if (written && !refusesWrites && this.#rejoinPending) {
        // Re-registered after Redis's identity changed: the other homes re-register within about
        // as long (each at its reconnect, retrying every heartbeat_ms), so T is ample.
        this.#rejoinPending = false;
        this.#identityGraceUntil = this.#now() + this.#options.ttlMs;
        log.info("Re-registered after Redis's restart or failover");
      }
      if (this.store.sweepOrder && !refusesWrites) {
        this.#orderRank = (await this.store.sweepOrder(this.#orderRank, ORDER_SWEEP)).next;
      }
      this.#peers = await this.store.nodes();
      this.seen = [...this.#peers.keys()].sort();
      const peers = this.#peers;
      this.router.streams.forgetGone((node) => peers.has(node));
    } catch (error) {
      // A write refused by a Redis that refuses every write (the epoch's creation, the prune
      // of the nodes' index): warned about by the store's owner, and the guard held back.
      if (refusesEveryWrite(error)) {
        this.writesRefused();
        log.debug("Cluster refresh cut short: {error}", { error });
      } else if (this.#rejoinPending && this.#rejoinFailures++ > 0) {
        log.debug("Cluster re-registration failed again: {error}", { error });
      } else {
        log.warn("Cluster refresh failed: {error}", { error });
      }
    } finally {
      this.#retrySoon();
    }
  }

  /**
   * The cluster's figures (the operator overview, docs/spec/EXTENSIONS.md E12): this node's own
   * as they are now, plus every other node's as its liveness key said at this node's last
   * refresh (at most `T/3` old; a node that writes none counts as an instance only).
   */
  totals(): ClusterCounts {
    const own = this.counts?.();
    const sum: ClusterCounts = {
      instances: 0,
      connections: 0,
      rooms: 0,
      players: 0,
      spectators: 0,
    };
    const add = (counts: InstanceCounts | undefined) => {
      sum.instances++;
      if (counts === undefined) return;
      sum.connections += counts.connections;
      sum.rooms += counts.rooms;
      sum.players += counts.players;
      sum.spectators += counts.spectators;
    };
    add(own);
    for (const [node, liveness] of this.#peers) if (node !== this.node) add(liveness.counts);
    return sum;
  }

  /**
   * The cluster's rooms, players and spectators per game (docs/spec/EXTENSIONS.md E12
   * `/admin/api/games`, docs/spec/SERVER.md §8.3 `instance-games:`): this node's own as they are
   * now, plus each other node's `instance-games:` key, read in one call for the nodes seen at
   * this node's last refresh (so a node started since is missing for up to `T/3`), each as its
   * node wrote it at its last refresh (at most `T/3` old). Every node's part is bounded to its
   * 100 games with the most rooms there (`MAX_GAMES_PER_INSTANCE`), the rest summed in
   * `other`. A node with a liveness key but no counts (a version without them, during a rolling
   * deploy) has its rooms counted from the directory's entries instead: a walk over every entry
   * (in calls of 250), as every request did before, until no such node is left. Rejects when
   * Redis does not answer.
   */
  async games(): Promise<GameTotals> {
    const parts: InstanceGames[] = [];
    const own = this.gameCounts?.();
    if (own) parts.push(topGames(own));
    const peers = [...this.#peers.keys()].filter((node) => node !== this.node);
    const found = await this.store.readGames(peers);
    const legacy = new Set<NodeId>();
    for (const [node, games] of found) {
      if (games === null) legacy.add(node);
      else parts.push(games);
    }
    if (legacy.size > 0) {
      const records = await this.store.all(Number.MAX_SAFE_INTEGER);
      parts.push(topGames(countEntries(records.filter((record) => legacy.has(record.home)))));
    }
    return sumGames(parts);
  }

  /**
   * Turns maintenance mode on or off for the whole cluster (the `maintenance` key: every claim
   * refuses while it exists, docs/spec/SERVER.md §8.3). Rejects when Redis does not answer:
   * with `NoAnswer` (coordination/no_answer.ts) when the command went out without an answer in
   * time, so that it may still take effect (docs/spec/EXTENSIONS.md E12 `504`).
   */
  async setMaintenance(enabled: boolean): Promise<void> {
    await this.store.setMaintenance(enabled);
    this.maintenance = enabled;
  }

  /** Reads cluster-wide maintenance mode from Redis (the last known when Redis does not answer). */
  async readMaintenance(): Promise<boolean> {
    try {
      this.maintenance = await this.store.maintenance();
    } catch {
      // Redis unreachable: the last value read or set.
    }
    return this.maintenance;
  }

  /**
   * Whether the code of a room homed here is not its own in the directory: the last refresh
   * found a conflict, or the room was restored and not claimed yet (docs/spec/SERVER.md §8.3).
   */
  isConflicted(gameName: string, roomCode: string): boolean {
    return this.conflicts.size > 0 && this.conflicts.has(`${gameName}\u0000${roomCode}`);
  }

  /**
   * Whether the epoch's grace window runs at `now` (ms, this node's clock): until `T` after the
   * epoch's creation by Redis's clock (docs/spec/SERVER.md §8.3), or one after
   * Redis's identity changed (a restart, possibly from an old dump, or a failover: until `T`
   * after this node re-registered; and from a reconnect until Redis's identity has been read),
   * or one after refused writes: while Redis refuses every write, and for `T/3` after a long run
   * of refusals ({@linkcode ClusterNode.writesAccepted}; §8.5.5 "Redis refuses writes").
   */
  inGrace(now: number): boolean {
    if (this.#refusedSince !== undefined || now < this.#refusalGraceUntil) return true;
    if (!this.#identityKnown || !this.#epochKnown || now < this.#identityGraceUntil) return true;
    return this.#epoch === undefined || now < this.#epochGraceUntil;
  }

  /**
   * The death verdict of docs/spec/SERVER.md §8.5.4: link up, writes accepted and epoch unchanged
   * for at least `T`, and `instance:<home>` absent at two reads `heartbeat_ms` apart with nothing
   * heard from it. A run of writes Redis refused (`MISCONF`, `READONLY`, §8.5.5 "Redis refuses
   * writes") interrupts guard 1 like a lost link: no liveness key could be written meanwhile.
   */
  async isDead(home: NodeId): Promise<boolean> {
    if (!this.#guardsHeld(this.#now())) return false;
    if ((await this.store.liveness(home)) !== undefined) return false;
    await new Promise((resolve) => setTimeout(resolve, this.#options.heartbeatMs));
    if ((await this.store.liveness(home)) !== undefined) return false;
    if (this.router.streams.silence(home) < this.#options.heartbeatMs) return false;
    // Re-checked after the awaits: Redis may have stopped answering meanwhile, or a refresh
    // may have found a new epoch (or Redis's identity changed), which may have emptied the
    // liveness keys read above.
    if (!this.#guardsHeld(this.#now())) return false;
    if (!this.#dead.has(home)) {
      if (this.#dead.size >= MAX_DEAD_REMEMBERED) this.#dead.clear();
      this.#dead.add(home);
      this.peerDeaths++;
      log.warn("Node {peer} held dead", { peer: home });
    }
    return true;
  }

  /**
   * Guard 1 of docs/spec/SERVER.md §8.5.4 at `now`: Redis reachable, and this node's writes
   * accepted, without interruption for at least `T`.
   */
  #guardHeld(now: number): boolean {
    const ttl = this.#options.ttlMs;
    if (this.#upSince === undefined || now - this.#upSince < ttl) return false;
    return this.#writableSince !== undefined && now - this.#writableSince >= ttl;
  }

  /**
   * Guards 1 and 2 of docs/spec/SERVER.md §8.5.4 at `now` (ms, this node's clock): guard 1
   * ({@linkcode ClusterNode.#guardHeld}) and the epoch (or Redis's identity, §8.3) unchanged for
   * at least `T`.
   */
  #guardsHeld(now: number): boolean {
    return this.#guardHeld(now) && now - this.#epochSince >= this.#options.ttlMs;
  }

  /** Marks the node draining in its liveness key (docs/spec/SERVER.md §8.7). */
  async drain(): Promise<void> {
    this.#state = "draining";
    await this.refresh();
  }

  /** The nodes with a liveness key (for `/v2/status`); empty when Redis cannot be read. */
  async nodes(): Promise<Map<NodeId, Liveness>> {
    try {
      return await this.store.nodes();
    } catch {
      return new Map();
    }
  }

  /** Stops timers, deletes the liveness key (best effort) and closes the bus. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#probing);
    clearTimeout(this.#probingWrites);
    clearTimeout(this.#retrying);
    this.router.stop();
    try {
      await this.store.deleteLiveness(this.node);
    } catch { /* Redis down: the key expires */ }
    await this.#bus.close();
    await this.store.close();
  }
}
