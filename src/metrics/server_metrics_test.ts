import { deepEqual, equal, ok } from "node:assert/strict";
import { Engine } from "../engine/engine.ts";
import { testOptions } from "../engine/testing.ts";
import { Hub, type HubEvent } from "../transport/hub.ts";
import { ServerMetrics } from "./server_metrics.ts";

/** Metrics over fixed sources: `held` seats held, `buffered()` messages buffered. */
function metricsWith(held = 0, buffered: () => number = () => 0, reconnection = true) {
  return new ServerMetrics({
    connections: () => 2,
    players: () => 3,
    heldSeats: () => held,
    eventsBuffered: buffered,
    seatCounts: () => [],
  }, {
    reconnection,
    refreshIntervalSecs: 5,
    ttlSecs: 30,
    historyWindowSecs: 300,
    historyFields: [],
  });
}

function values(metrics: ServerMetrics): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of metrics.renderPrometheus().split("\n")) {
    const match = /^(signal_fish_[a-z_]+) (\S+)$/.exec(line);
    if (match) out[match[1]!] = Number(match[2]);
  }
  return out;
}

const ROOM = { gameName: "orbit", roomCode: "ABC123", roomId: "r1" };

Deno.test("ServerMetrics.observe() counts each event into exactly its families", () => {
  const metrics = metricsWith(1);
  const events: HubEvent[] = [
    { type: "connected", connectionId: "c1", ip: "127.0.0.1" },
    { type: "room_created", ...ROOM, playerId: "p1" },
    { type: "handled", message: "JoinRoom", outcome: "created", seconds: 0.002 },
    { type: "room_joined", ...ROOM, playerId: "p2" },
    { type: "handled", message: "JoinRoom", outcome: "joined", seconds: 400 }, // clamped
    { type: "join_failed", errorCode: "MAX_ROOMS_PER_GAME_EXCEEDED", creating: true },
    { type: "game_data", recipients: 1 },
    { type: "handled", message: "GameData", outcome: "relayed", seconds: 0.0001 },
    { type: "error_reply", errorCode: "INVALID_PLAYER_NAME" },
    { type: "error_reply", errorCode: "ROOM_FULL" }, // not a validation error
    { type: "error_reply", errorCode: "INTERNAL_ERROR" },
    { type: "internal_error", connectionId: "c1" },
    { type: "websocket_error", connectionId: "c1" },
    { type: "invalid_message", connectionId: "c1", detail: "x" },
    { type: "message_too_large", connectionId: "c1", size: 99 },
    { type: "seat_released", ...ROOM, playerId: "p2", reason: "leave" },
    { type: "seat_expired", ...ROOM, playerId: "p1" },
    { type: "seat_released", ...ROOM, playerId: "p1", reason: "expired" },
    { type: "room_deleted", ...ROOM, reason: "empty" },
    { type: "room_deleted", ...ROOM, reason: "inactive" },
    { type: "player_reconnected", ...ROOM, playerId: "p1", takeover: false, missed: 0 },
    { type: "reconnect_failed", errorCode: "RECONNECTION_EXPIRED" },
    { type: "slow_consumer", connectionId: "c1", dropped: 4 },
    { type: "messages_dropped", count: 4 },
    { type: "rate_limited", scope: "create" },
    { type: "authenticated", connectionId: "c1" },
    { type: "disconnected", connectionId: "c1", ip: "127.0.0.1" },
  ];
  for (const event of events) metrics.observe(event);
  metrics.rateLimited();
  deepEqual(values(metrics), {
    signal_fish_connections_total: 1,
    signal_fish_connections_active: 2,
    signal_fish_connections_disconnections_total: 1,
    signal_fish_rooms_created_total: 1,
    signal_fish_rooms_joined_total: 1,
    signal_fish_rooms_deleted_total: 2,
    signal_fish_room_cap_denials_total: 1,
    signal_fish_rate_limit_rejections_total: 2,
    signal_fish_room_creation_latency_samples_total: 1,
    signal_fish_room_join_latency_samples_total: 1,
    signal_fish_latency_clamped_samples_total: 1,
    signal_fish_errors_total: 6,
    signal_fish_errors_internal_total: 2,
    signal_fish_errors_websocket_total: 1,
    signal_fish_errors_validation_total: 3,
    signal_fish_players_active: 3,
    signal_fish_players_joined_total: 2,
    signal_fish_players_left_total: 2,
    signal_fish_game_data_messages_total: 1,
    signal_fish_reconnection_tokens_issued_total: 3,
    signal_fish_reconnection_sessions_active: 1,
    signal_fish_reconnection_validation_failures_total: 1,
    signal_fish_reconnection_completions_total: 1,
    signal_fish_reconnection_events_buffered_total: 0,
    signal_fish_cleanup_empty_rooms_total: 1,
    signal_fish_cleanup_inactive_rooms_total: 1,
    signal_fish_cleanup_expired_players_total: 0,
    signal_fish_dashboard_cache_age_seconds: 0,
    signal_fish_dashboard_cache_refresh_failures_total: 0,
    signal_fish_slow_consumer_disconnects_total: 1,
    signal_fish_websocket_messages_dropped_total: 4,
    signal_fish_room_creation_latency_seconds_sum: 0.002,
    signal_fish_room_creation_latency_seconds_count: 1,
    signal_fish_room_join_latency_seconds_sum: 400,
    signal_fish_room_join_latency_seconds_count: 1,
    signal_fish_game_data_relay_latency_seconds_sum: 0.0001,
    signal_fish_game_data_relay_latency_seconds_count: 1,
  });
  const text = metrics.renderPrometheus();
  ok(text.includes('signal_fish_room_join_latency_seconds_bucket{le="10"} 0\n'));
  ok(text.includes('signal_fish_room_join_latency_seconds_bucket{le="+Inf"} 1\n'));
});

Deno.test("ServerMetrics keeps the reconnection families, reading 0, without reconnection", () => {
  const metrics = metricsWith(0, () => 0, false);
  metrics.observe({ type: "connected", connectionId: "c1", ip: "127.0.0.1" });
  metrics.observe({ type: "room_created", ...ROOM, playerId: "p1" }); // no token without it
  const counts = values(metrics);
  for (
    const name of [
      "signal_fish_reconnection_tokens_issued_total",
      "signal_fish_reconnection_sessions_active",
      "signal_fish_reconnection_validation_failures_total",
      "signal_fish_reconnection_completions_total",
      "signal_fish_reconnection_events_buffered_total",
    ]
  ) {
    equal(counts[name], 0, name);
  }
  const snapshot = metrics.jsonBody({ timeRange: "1h", includeSnapshot: true }, 0)
    .metricsSnapshot as Record<string, Record<string, number>>;
  equal(snapshot.reconnection!.sessions_active, 0);
});

Deno.test("ServerMetrics counts idle-timeout closes (#44) and reads buffered messages (#37)", () => {
  let buffered = 0;
  const metrics = metricsWith(1, () => buffered);
  metrics.observe({ type: "disconnected", connectionId: "c1", ip: "127.0.0.1" });
  metrics.observe({
    type: "disconnected",
    connectionId: "c2",
    ip: "127.0.0.1",
    idleTimeout: true,
  });
  buffered = 4;
  const counts = values(metrics);
  equal(counts.signal_fish_connections_disconnections_total, 2);
  equal(counts.signal_fish_cleanup_expired_players_total, 1);
  equal(counts.signal_fish_reconnection_events_buffered_total, 4);
  const snapshot = metrics.jsonBody({ timeRange: "1h", includeSnapshot: true }, 0)
    .metricsSnapshot as Record<string, Record<string, number>>;
  equal(snapshot.cleanup!.expired_players_cleaned, 1);
  equal(snapshot.reconnection!.events_buffered, 4);
});

Deno.test("Hub reports error replies, 1011 closes and JoinRoom/GameData timings", () => {
  const events: HubEvent[] = [];
  const hub = new Hub(new Engine(testOptions()), {
    maxMessageSize: 65536,
    newId: (() => {
      let n = 0;
      return () => `c${++n}`;
    })(),
    onEvent: (event) => events.push(event),
  });
  const peer = { send: () => undefined, close: () => {} };
  const alice = hub.connect(peer, { ip: "127.0.0.1" });
  hub.receive(
    alice,
    JSON.stringify({ type: "JoinRoom", data: { game_name: "", player_name: "a" } }),
    0,
  );
  hub.receive(
    alice,
    JSON.stringify({ type: "JoinRoom", data: { game_name: "g", player_name: "a" } }),
    0,
  );
  hub.receive(alice, JSON.stringify({ type: "Ping" }), 0);
  hub.close(alice, 1011, "Internal error", 0);
  // The failed join is not timed; the successful one is, as a creation.
  deepEqual(events.map((event) => event.type), [
    "connected",
    "error_reply",
    "join_failed",
    "room_created",
    "handled",
    "internal_error",
    "seat_released",
    "disconnected",
  ]);
  const reply = events[1] as { errorCode: string };
  equal(reply.errorCode, "INVALID_GAME_NAME");
  const handled = events[4] as { message: string; outcome: string; seconds: number };
  deepEqual([handled.message, handled.outcome], ["JoinRoom", "created"]);
  ok(handled.seconds >= 0);
});
