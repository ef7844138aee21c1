/**
 * The upstream-compatible JSON metrics snapshot (docs/spec/SERVER.md §6.4 `metricsSnapshot`). The upstream
 * server reports more than this build measures: cross-instance caches, distributed locks,
 * per-window rate-limit counters (and query latency outside cluster mode). Those keys stay in the body for client compatibility
 * and read zero here; the live values come from {@linkcode LiveCounts}.
 *
 * @module
 */
import { LatencySketch, type LatencySummary } from "./registry.ts";

/** The values this build counts, named as their keys in the snapshot (docs/spec/SERVER.md §6.4). */
export interface LiveCounts {
  total_connections: number;
  active_connections: number;
  disconnections: number;
  connection_errors: number;
  websocket_messages_dropped: number;
  rooms_created: number;
  rooms_joined: number;
  room_creation_failures: number;
  room_join_failures: number;
  rooms_deleted: number;
  room_cap_denials: number;
  room_code_collisions: number;
  /** Room-creation latency (JoinRoom received → RoomJoined queued). */
  room_creation_latency: LatencySummary;
  /** Join latency for existing rooms. */
  room_join_latency: LatencySummary;
  latency_histogram_clamped_samples: number;
  /** Cluster mode: Redis commands sent (docs/spec/SERVER.md §6.3 #19); 0 otherwise. */
  query_count?: number;
  /** Cluster mode: Redis command round trips (§6.3 #23); no samples otherwise. */
  query_latency?: LatencySummary;
  refresh_count: number;
  refresh_failures: number;
  /** Unix seconds of the last dashboard refresh, `null` before the first. */
  last_refresh_timestamp: number | null;
  rate_limit_rejections: number;
  players_joined: number;
  players_left: number;
  game_data_messages: number;
  validation_errors: number;
  internal_errors: number;
  websocket_errors: number;
  total_errors: number;
  empty_rooms_cleaned: number;
  inactive_rooms_cleaned: number;
  expired_players_cleaned: number;
  tokens_issued: number;
  sessions_active: number;
  validations_failed: number;
  completions: number;
  events_buffered: number;
}

/** The rate-limit window block of the JSON body (docs/spec/SERVER.md §6.4): upstream windows, all zero. */
export function upstreamRateLimitWindows(): Record<"minute" | "hour" | "day", Window> {
  return { minute: emptyWindow(), hour: emptyWindow(), day: emptyWindow() };
}

interface Window {
  limit: number;
  used: number;
  checks: number;
  rejections: number;
}

function emptyWindow(): Window {
  return { limit: 0, used: 0, checks: 0, rejections: 0 };
}

/** The `metricsSnapshot` object (docs/spec/SERVER.md §6.4) at `now` (ms): live counts plus upstream zeros. */
export function upstreamSnapshot(live: LiveCounts, now: number): Record<string, unknown> {
  const creation = live.room_creation_latency;
  const join = live.room_join_latency;
  return {
    timestamp: new Date(now).toISOString(),
    connections: {
      total_connections: live.total_connections,
      active_connections: live.active_connections,
      disconnections: live.disconnections,
      connection_errors: live.connection_errors,
      websocket_messages_dropped: live.websocket_messages_dropped,
    },
    rooms: {
      rooms_created: live.rooms_created,
      rooms_joined: live.rooms_joined,
      room_creation_failures: live.room_creation_failures,
      room_join_failures: live.room_join_failures,
      rooms_deleted: live.rooms_deleted,
      room_cap_lock_acquisitions: 0,
      room_cap_lock_failures: 0,
      room_cap_denials: live.room_cap_denials,
    },
    race_conditions: {
      room_capacity_conflicts: 0,
      room_code_collisions: live.room_code_collisions,
      authority_transfer_conflicts: 0,
      retry_attempts: 0,
      retry_successes: 0,
      retry_success_rate: 1.0,
    },
    cross_instance: {
      cross_instance_messages: 0,
      dedup_cache_hits: 0,
      dedup_cache_misses: 0,
      dedup_cache_evictions: 0,
      dedup_cache_size: 0,
      membership_cache_hits: 0,
      membership_cache_misses: 0,
      remote_membership_updates_published: 0,
      remote_membership_updates_received: 0,
      remote_membership_known_broadcasts: 0,
      remote_membership_forced_broadcasts: 0,
      remote_membership_skipped_broadcasts: 0,
    },
    performance: {
      query_count: live.query_count ?? 0,
      average_room_creation_ms: creation.average_ms,
      average_room_join_ms: join.average_ms,
      average_query_ms: live.query_latency?.average_ms ?? null,
      room_creation_latency: creation,
      room_join_latency: join,
      query_latency: live.query_latency ?? new LatencySketch().summary(),
      latency_histogram_clamped_samples: live.latency_histogram_clamped_samples,
    },
    dashboard_cache: {
      refresh_count: live.refresh_count,
      refresh_errors: live.refresh_failures,
      last_refresh_timestamp: live.last_refresh_timestamp,
      refresh_failures: live.refresh_failures,
    },
    rate_limiting: {
      rate_limit_rejections: live.rate_limit_rejections,
      rate_limit_resets: 0,
      minute_limit: 0,
      hour_limit: 0,
      day_limit: 0,
      minute_count: 0,
      hour_count: 0,
      day_count: 0,
      minute_checks: 0,
      hour_checks: 0,
      day_checks: 0,
      minute_rejections: 0,
      hour_rejections: 0,
      day_rejections: 0,
      cache_rows: 0,
      cache_purged: 0,
    },
    players: {
      players_joined: live.players_joined,
      players_left: live.players_left,
      authority_transfers: 0,
      game_data_messages: live.game_data_messages,
      heartbeat_updates: 0,
      heartbeat_skipped: 0,
    },
    errors: {
      validation_errors: live.validation_errors,
      internal_errors: live.internal_errors,
      websocket_errors: live.websocket_errors,
      total_errors: live.total_errors,
    },
    cleanup: {
      empty_rooms_cleaned: live.empty_rooms_cleaned,
      inactive_rooms_cleaned: live.inactive_rooms_cleaned,
      expired_players_cleaned: live.expired_players_cleaned,
    },
    reconnection: {
      tokens_issued: live.tokens_issued,
      sessions_active: live.sessions_active,
      validations_failed: live.validations_failed,
      completions: live.completions,
      events_buffered: live.events_buffered,
    },
    distributed_lock: {
      release_failures: 0,
      extend_failures: 0,
      cleanup_runs: 0,
      cleanup_removed: 0,
    },
    relay_health: {
      client_id_reuse_events: 0,
      client_id_exhaustion_events: 0,
      session_timeouts: 0,
    },
  };
}
