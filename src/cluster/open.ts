/**
 * Cluster mode for one server process (docs/spec/SERVER.md §8): builds the node's Redis link, store, bus,
 * {@linkcode ClusterNode} and edge resolver from the configuration. Imported by `server.ts` only
 * when `cluster.redis_url` is set, so single-instance mode never loads the Redis client.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type Config, sentinelAddress } from "../config/schema.ts";
import type { Engine } from "../engine/engine.ts";
import type { NameRules } from "../engine/validation.ts";
import type { Resolver } from "../transport/edge.ts";
import { RedisBus } from "./bus.ts";
import type { FeedEvent } from "../metrics/operator_feed.ts";
import { ClusterNode, nodeName } from "./node.ts";
import { LinkReport, RefusalReport, refusesEveryWrite } from "./link_report.ts";
import { ClusterOperatorEvents } from "./operator_events.ts";
export { registerClusterMetrics } from "./node.ts";
import { clusterResolver, Staging } from "./resolve.ts";
import { RedisLink, RedisStore } from "./store.ts";

const log = getLogger(["signal-fish", "cluster"]);

/** What `server.ts` wires in cluster mode. */
export interface OpenCluster {
  node: ClusterNode;
  store: RedisStore;
  /**
   * Writes Redis refused while answering (`OOM`, `MISCONF`, `READONLY`), warned about at most
   * every 30 s per reason (docs/spec/SERVER.md §8.5.5 "Redis full", "Redis refuses writes"; its
   * counts are §6.3's `signal_fish_cluster_redis_write_refusals_total`).
   */
  refusals: RefusalReport;
  /** The node's bus (its publish round trips feed docs/spec/SERVER.md §6.3 #67). */
  bus: RedisBus;
  staging: Staging;
  /** Builds the edge resolver once the engine exists. */
  resolver(engine: Engine, limits: {
    maxRoomsPerGame: number;
    maxRoomsPerIp?: number;
    enableReconnection?: boolean;
    roomCodeLength: number;
    maxGameNameLength: number;
    nameRules: NameRules;
  }): Resolver;
  /** Sets where the node reads its homed rooms (the engine, created after this). */
  setEngine(engine: Engine): void;
  /** Connects to Redis and registers in the background (never rejects). */
  start(): void;
  /**
   * The operator console's relay across instances (docs/spec/EXTENSIONS.md E12): other
   * instances' events go to `deliver`. Call once, after `start()`.
   */
  operatorEvents(deliver: (event: FeedEvent) => void): ClusterOperatorEvents;
}

/**
 * Opens cluster mode for `instanceId` (`cluster.instance_id` or a UUIDv4). `newRoomCode` makes
 * codes as single-instance mode does. Nothing is connected until `start()`.
 */
export function openCluster(
  config: Config,
  instanceId: string,
  newRoomCode: () => string,
): OpenCluster {
  const cluster = config.cluster;
  const node = nodeName(instanceId);
  const ttlMs = cluster.directory_ttl_secs * 1000;
  // The link reports to the node, which is built on the link's store and bus.
  const holder: { node?: ClusterNode } = {};
  // Down (unreachable, a refused password): a warning at once, then at most every 30 s.
  const report = new LinkReport(log, { node });
  const link = new RedisLink({
    url: cluster.redis_url!,
    ...(cluster.redis_tls_ca_path ? { ca: Deno.readTextFileSync(cluster.redis_tls_ca_path) } : {}),
    ...(cluster.redis_sentinels.length > 0
      ? {
        sentinel: {
          nodes: cluster.redis_sentinels.map((address) => sentinelAddress(address)!),
          master: cluster.redis_sentinel_master,
          ...(cluster.redis_sentinel_username === null
            ? {}
            : { username: cluster.redis_sentinel_username }),
          ...(cluster.redis_sentinel_password === null
            ? {}
            : { password: cluster.redis_sentinel_password }),
          tls: cluster.redis_sentinel_tls,
        },
      }
      : {}),
    onState: (state) => {
      // Closed at shutdown: not an outage, nothing is retried.
      if (link.closed) report.closed();
      else report.state(state);
      holder.node?.linkState(state);
    },
    onError: (error) => report.error(error),
    onReopen: () => log.debug("Reopening the Redis connections: Redis answered READONLY", { node }),
    // A Sentinel failover may move the connections without the link going down: the new primary
    // may lack the last writes (docs/spec/SERVER.md §8.3 "Redis's identity").
    onPrimaryChange: () => holder.node?.primaryChanged(),
  });
  const windowMs = config.rate_limit.time_window * 1000;
  const store = new RedisStore(link, {
    prefix: cluster.key_prefix,
    ttlMs,
    reconnectionWindowMs: config.server.reconnection_window * 1000,
    buckets: {
      creation: { capacity: config.rate_limit.max_room_creations, windowMs },
      join: { capacity: config.rate_limit.max_join_attempts, windowMs },
      reconnect: { capacity: config.rate_limit.max_reconnect_attempts, windowMs },
      auth_failure: { capacity: config.rate_limit.max_auth_failures, windowMs },
    },
    timeoutMs: cluster.forward_timeout_ms,
  });
  // Redis refusing writes while it answers (full, a failed save, a replica): a warning at the
  // first refusal, then at most every 30 s; MISCONF and READONLY hold back death verdicts.
  const refusals = new RefusalReport(log, { node });
  store.onRefusal = (refusal, needsMemory) => {
    if (refusal === undefined) {
      refusals.accepted(needsMemory);
      holder.node?.writesAccepted();
      return;
    }
    refusals.refused(refusal);
    if (refusesEveryWrite(refusal)) holder.node?.writesRefused();
  };
  const bus = new RedisBus(link, node, cluster.key_prefix, cluster.forward_timeout_ms);
  const staging = new Staging(() => crypto.randomUUID(), newRoomCode);
  let engineRef: Engine | undefined;
  const started = holder.node = new ClusterNode({
    store,
    bus,
    ttlMs,
    heartbeatMs: cluster.heartbeat_ms,
    envelopeWindowMs: cluster.envelope_window_ms,
    forwardTimeoutMs: cluster.forward_timeout_ms,
    entries: () => engineRef?.directoryEntries() ?? [],
  });
  const apps = new Map(
    (config.security.authorized_apps ?? []).map((app) => [app.app_id, app.max_rooms ?? undefined]),
  );
  return {
    node: started,
    store,
    refusals,
    bus,
    staging,
    setEngine: (engine) => engineRef = engine,
    resolver: (engine, limits) =>
      clusterResolver({
        node,
        engine,
        store,
        staging,
        ...limits,
        appMaxRooms: (appId) => apps.get(appId),
        inGrace: (now) => started.inGrace(now),
        isDead: (home) => started.isDead(home),
        conflicted: (gameName, roomCode) => started.isConflicted(gameName, roomCode),
      }),
    operatorEvents: (deliver) => new ClusterOperatorEvents(bus, node, deliver),
    start: () => {
      (async () => {
        // The first connection may fail; the client keeps retrying with backoff.
        await link.connect();
        await started.start();
        log.info("Cluster node {node} registered", { node });
      })().catch((error) => log.error("Cannot start cluster mode: {error}", { error }));
    },
  };
}
