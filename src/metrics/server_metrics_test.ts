import { deepEqual, equal, ok } from "node:assert/strict";
import { Engine } from "../engine/engine.ts";
import { testOptions } from "../engine/testing.ts";
import { Edge, type EdgeEvent } from "../transport/edge.ts";
import {
  type GameSeats,
  OTHER_GAMES,
  seatPercentiles,
  ServerMetrics,
  topGames,
} from "./server_metrics.ts";
import denoJson from "../../deno.json" with { type: "json" };

/** The seat histograms of a list of rooms (game name and seat count each), games in order of first room. */
function gameSeats(rooms: readonly { gameName: string; seats: number }[]): GameSeats[] {
  const byGame = new Map<string, number[]>();
  for (const { gameName, seats } of rooms) {
    const histogram = byGame.get(gameName) ?? [];
    byGame.set(gameName, histogram);
    while (histogram.length <= seats) histogram.push(0);
    histogram[seats]!++;
  }
  return [...byGame].map(([gameName, histogram]) => ({ gameName, histogram }));
}

/** Metrics over fixed sources: `held` seats held, `buffered()` messages buffered. */
function metricsWith(held = 0, buffered: () => number = () => 0, reconnection = true) {
  return new ServerMetrics({
    connections: () => 2,
    players: () => 3,
    rooms: () => 4,
    heldSeats: () => held,
    eventsBuffered: buffered,
    seatHistograms: () => [],
  }, {
    reconnection,
    version: "0.0.0-test",
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
  const events: EdgeEvent[] = [
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
    { type: "disconnected", connectionId: "c1", ip: "127.0.0.1", code: 1000, initiator: "client" },
  ];
  for (const event of events) metrics.observe(event);
  metrics.observe({ type: "rate_limited", scope: "connections" });
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
    signal_fish_rooms_active: 4,
    signal_fish_players_joined_total: 2,
    signal_fish_players_left_total: 2,
    signal_fish_game_data_messages_total: 1,
    signal_fish_reconnection_tokens_issued_total: 3,
    signal_fish_reconnection_sessions_active: 1,
    signal_fish_reconnection_validation_failures_total: 1,
    signal_fish_reconnection_completions_total: 1,
    signal_fish_reconnection_events_buffered_total: 0,
    signal_fish_replay_buffer_bytes: 0,
    signal_fish_replay_truncations_total: 0,
    signal_fish_buffered_bytes: 0,
    signal_fish_held_seat_evictions_total: 0,
    signal_fish_held_seat_address_evictions_total: 0,
    signal_fish_rooms_unattended_reclaimed_total: 0,
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
    signal_fish_log_write_failures_total: 0,
    signal_fish_log_lines_dropped_total: 0,
    signal_fish_log_lines_suppressed_total: 0,
  });
  const text = metrics.renderPrometheus();
  ok(text.includes('signal_fish_connection_closes_total{code="1000",initiator="client"} 1\n'));
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
  metrics.observe({
    type: "disconnected",
    connectionId: "c1",
    ip: "127.0.0.1",
    code: 1006,
    initiator: "client",
    cause: "eof",
  });
  metrics.observe({
    type: "disconnected",
    connectionId: "c2",
    ip: "127.0.0.1",
    code: 1001,
    initiator: "server",
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

/** The samples of `signal_fish_connection_closes_total`: their labels as rendered → count. */
function closes(metrics: ServerMetrics): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of metrics.renderPrometheus().split("\n")) {
    const match = /^signal_fish_connection_closes_total(\{[^}]*\}) (\S+)$/.exec(line);
    if (match) out[match[1]!] = Number(match[2]);
  }
  return out;
}

Deno.test("ServerMetrics counts every close once in connection_closes_total (#97), by code, initiator and for 1006 cause", () => {
  const metrics = metricsWith();
  const closed = (end: Partial<Extract<EdgeEvent, { type: "disconnected" }>>) =>
    metrics.observe({
      type: "disconnected",
      connectionId: "c",
      ip: "127.0.0.1",
      code: 1006,
      initiator: "client",
      ...end,
    });
  closed({ code: 1000 });
  closed({ code: 1000 });
  closed({ code: 1005 });
  closed({ code: 1013, initiator: "server" });
  closed({ code: 1002, initiator: "server" });
  closed({ cause: "reset", error: "ECONNRESET" });
  closed({ cause: "eof" });
  closed({ initiator: "server", cause: "write_error", error: "EPIPE" });
  closed({ initiator: "server", cause: "destroyed" });
  closed({}); // no cause: unknown
  // Codes outside the set share one series whatever a client sends; a cause outside 1006 is not
  // a label.
  closed({ code: 3999 });
  closed({ code: 4999, cause: "reset" });
  closed({ code: 1012, initiator: "server" });
  closed({ code: 1001, initiator: "server", idleTimeout: true });
  const text = metrics.renderPrometheus();
  ok(
    text.includes(
      "# TYPE signal_fish_connection_closes_total counter\n" +
        'signal_fish_connection_closes_total{code="1000",initiator="client"} 2\n',
    ),
    text,
  );
  deepEqual(closes(metrics), {
    '{code="1000",initiator="client"}': 2,
    '{code="1005",initiator="client"}': 1,
    '{code="1013",initiator="server"}': 1,
    '{code="1002",initiator="server"}': 1,
    '{code="1006",initiator="client",cause="reset"}': 1,
    '{code="1006",initiator="client",cause="eof"}': 1,
    '{code="1006",initiator="server",cause="write_error"}': 1,
    '{code="1006",initiator="server",cause="destroyed"}': 1,
    '{code="1006",initiator="client",cause="unknown"}': 1,
    '{code="other",initiator="client"}': 2,
    '{code="1012",initiator="server"}': 1,
    '{code="1001",initiator="server"}': 1,
  });
  // Each close once: the series add up to connections_disconnections_total (#3).
  const sum = Object.values(closes(metrics)).reduce((a, b) => a + b, 0);
  equal(sum, 14);
  equal(values(metrics).signal_fish_connections_disconnections_total, sum);
  equal(values(metrics).signal_fish_cleanup_expired_players_total, 1);
});

Deno.test("Edge reports error replies, 1011 closes and JoinRoom/GameData timings", () => {
  const events: EdgeEvent[] = [];
  const edge = new Edge(new Engine(testOptions()), {
    maxMessageSize: 65536,
    newId: (() => {
      let n = 0;
      return () => `c${++n}`;
    })(),
    onEvent: (event) => events.push(event),
  });
  const peer = { send: () => undefined, close: () => {} };
  const alice = edge.connect(peer, { ip: "127.0.0.1" });
  edge.receive(
    alice,
    JSON.stringify({ type: "JoinRoom", data: { game_name: "", player_name: "a" } }),
    0,
  );
  edge.receive(
    alice,
    JSON.stringify({ type: "JoinRoom", data: { game_name: "g", player_name: "a" } }),
    0,
  );
  edge.receive(alice, JSON.stringify({ type: "Ping" }), 0);
  edge.close(alice, 1011, "Internal error", 0);
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

Deno.test("ServerMetrics reads the log families from the log sinks' stats at scrape time", () => {
  const logStats = { writeFailures: 0, linesDropped: 0, linesSuppressed: 0 };
  const metrics = new ServerMetrics({
    connections: () => 0,
    players: () => 0,
    heldSeats: () => 0,
    eventsBuffered: () => 0,
    seatHistograms: () => [],
    logStats,
  }, {
    reconnection: false,
    refreshIntervalSecs: 5,
    ttlSecs: 30,
    historyWindowSecs: 300,
    historyFields: [],
  });
  logStats.writeFailures = 2;
  logStats.linesDropped = 7;
  logStats.linesSuppressed = 40;
  const text = metrics.renderPrometheus();
  ok(text.includes("# TYPE signal_fish_log_write_failures_total counter\n"));
  ok(text.includes("signal_fish_log_write_failures_total 2\n"));
  ok(text.includes("signal_fish_log_lines_dropped_total 7\n"));
  ok(text.includes("signal_fish_log_lines_suppressed_total 40\n"));
});

Deno.test("topGames() lists the games with most rooms and sums the rest under (other)", () => {
  const rooms = [
    ...Array.from({ length: 3 }, () => ({ gameName: "orbit", seats: 4 })),
    ...Array.from({ length: 2 }, (_, i) => ({ gameName: "chess", seats: i + 1 })),
    { gameName: "b-game", seats: 1 },
    { gameName: "a-game", seats: 1 },
    { gameName: "heavy", seats: 8 },
  ];
  const { roomsByGame, gamePercentiles } = topGames(gameSeats(rooms), 3);
  // Most rooms first; equal rooms: most seats ("heavy"), then by name.
  deepEqual(roomsByGame, { orbit: 3, chess: 2, heavy: 1, [OTHER_GAMES]: 2 });
  deepEqual(Object.keys(gamePercentiles), ["orbit", "chess", "heavy", OTHER_GAMES]);
  deepEqual(gamePercentiles[OTHER_GAMES], seatPercentiles([1, 1]));
  deepEqual(gamePercentiles.chess, seatPercentiles([1, 2]));
  // Few games: no (other) entry.
  deepEqual(topGames(gameSeats(rooms.slice(0, 5)), 3).roomsByGame, { orbit: 3, chess: 2 });
  deepEqual(topGames([], 3), { roomsByGame: {}, gamePercentiles: {} });
});

Deno.test("ServerMetrics JSON body: bounded per game, dashboard serialised once per refresh", () => {
  // 20,000 attacker-chosen game names, one room each, plus one real game with more rooms.
  const rooms = Array.from({ length: 20_000 }, (_, i) => ({ gameName: `g${i}`, seats: 1 }));
  for (let i = 0; i < 5; i++) rooms.push({ gameName: "orbit", seats: 2 });
  const metrics = new ServerMetrics({
    connections: () => 0,
    players: () => 0,
    heldSeats: () => 0,
    eventsBuffered: () => 0,
    seatHistograms: () => gameSeats(rooms),
  }, {
    reconnection: false,
    refreshIntervalSecs: 5,
    ttlSecs: 30,
    historyWindowSecs: 300,
    historyFields: ["ActiveRooms", "RoomsByGame", "PlayerPercentiles", "GamePercentiles"],
    maxGames: 10,
  });
  const query = { timeRange: "1h", includeSnapshot: false };
  for (let i = 0; i < 60; i++) metrics.refreshDashboard(1_000_000 + i * 5000);
  const renders = metrics.dashboardRenders;
  const texts = [];
  for (let i = 0; i < 50; i++) texts.push(metrics.jsonText(query, 1_300_000 + i));
  equal(metrics.dashboardRenders, renders + 1, "one serialisation for 50 requests");
  const body = JSON.parse(texts.at(-1)!);
  equal(body.activeRooms, 20_005);
  equal(Object.keys(body.roomsByGame).length, 11);
  equal(body.roomsByGame.orbit, 5);
  equal(body.roomsByGame[OTHER_GAMES], 19_991); // all but orbit and 9 others
  equal(body.dashboardCache.history.length, 60);
  for (const entry of body.dashboardCache.history) {
    equal(Object.keys(entry.roomsByGame).length, 11);
    equal(Object.keys(entry.gamePercentiles).length, 11);
  }
  ok(texts.at(-1)!.length < 200_000, `${texts.at(-1)!.length} characters`);
  equal(body.timestamp, new Date(1_300_049).toISOString(), "the live part is per request");
  // The next refresh serialises again, once.
  metrics.refreshDashboard(1_400_000);
  metrics.jsonText(query, 1_400_001);
  metrics.jsonText(query, 1_400_002);
  equal(metrics.dashboardRenders, renders + 2);
});

Deno.test("rooms_active and build_info default to the rooms of the seat histograms and deno.json's version", () => {
  const metrics = new ServerMetrics({
    connections: () => 0,
    players: () => 0,
    heldSeats: () => 0,
    eventsBuffered: () => 0,
    seatHistograms: () => [{ gameName: "orbit", histogram: [1, 0, 1] }],
  }, {
    reconnection: false,
    refreshIntervalSecs: 5,
    ttlSecs: 30,
    historyWindowSecs: 300,
    historyFields: [],
  });
  const text = metrics.renderPrometheus();
  ok(text.includes("\nsignal_fish_rooms_active 2\n"), text);
  ok(text.includes(`\nsignal_fish_build_info{version="${denoJson.version}"} 1\n`), text);
  ok(text.includes("\n# TYPE process_cpu_seconds_total counter\n"), text);
});

Deno.test("topGames() and seatPercentiles() answer as sorting every room and game would (seeded random rooms)", () => {
  // The definition, spelled out: sort every room's seat count; sort every game by rooms, seats,
  // name; list the first maxGames, the rest together under (other).
  const sortedPercentiles = (counts: number[]): Record<string, number> => {
    if (counts.length === 0) return {};
    const sorted = [...counts].sort((a, b) => a - b);
    const at = (p: number) => sorted[Math.round(p * (sorted.length - 1))]!;
    return {
      p50: at(0.5),
      p90: at(0.9),
      p99: at(0.99),
      p99_5: at(0.995),
      p99_9: at(0.999),
      p100: sorted.at(-1)!,
    };
  };
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let round = 0; round < 60; round++) {
    const games = 1 + Math.floor(random() * 40);
    // Odd rounds: every room has 2 seats, so games tie on rooms and seats and the name decides.
    const rooms = Array.from({ length: Math.floor(random() * 400) }, () => ({
      gameName: `game-${Math.floor(random() * random() * games)}`,
      seats: round % 2 === 1 ? 2 : Math.floor(random() * random() * 9),
    }));
    const maxGames = Math.floor(random() * 6);
    const byGame = new Map<string, number[]>();
    for (const room of rooms) {
      byGame.set(room.gameName, [...byGame.get(room.gameName) ?? [], room.seats]);
    }
    const order = [...byGame].sort(([nameA, a], [nameB, b]) =>
      b.length - a.length || b.reduce((x, y) => x + y, 0) - a.reduce((x, y) => x + y, 0) ||
      (nameA < nameB ? -1 : 1)
    );
    const expected: {
      roomsByGame: Record<string, number>;
      gamePercentiles: Record<string, unknown>;
    } = {
      roomsByGame: {},
      gamePercentiles: {},
    };
    for (const [name, seats] of order.slice(0, maxGames)) {
      expected.roomsByGame[name] = seats.length;
      expected.gamePercentiles[name] = sortedPercentiles(seats);
    }
    if (order.length > maxGames) {
      const rest = order.slice(maxGames).flatMap(([, seats]) => seats);
      expected.roomsByGame[OTHER_GAMES] = rest.length;
      expected.gamePercentiles[OTHER_GAMES] = sortedPercentiles(rest);
    }
    // JSON text: the same entries in the same order (the body lists games in this order).
    equal(
      JSON.stringify(topGames(gameSeats(rooms), maxGames)),
      JSON.stringify(expected),
      `round ${round}`,
    );
    deepEqual(
      seatPercentiles(rooms.map((room) => room.seats)),
      sortedPercentiles(rooms.map((room) => room.seats)),
    );
  }
});
