/**
 * Metrics end to end (docs/spec/SERVER.md §6): a scripted session over real WebSockets, then the counters
 * scraped from `/metrics/prom` must match it exactly; promtool must accept the exposition.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { SignalFishServer } from "../src/server.ts";
import { connect, createAndJoin, joinRoom, serve, type TestClient } from "./helpers.ts";
import { parseExposition } from "./exposition.ts";
import process from "node:process";
import denoJson from "../deno.json" with { type: "json" };
import { RawWebSocket } from "./raw_websocket.ts";

async function scrape(server: SignalFishServer, headers: HeadersInit = {}) {
  const response = await fetch(`${server.url}/metrics/prom`, { headers });
  equal(response.status, 200);
  equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  return parseExposition(await response.text());
}

/** Scrapes until `check` passes (server-side teardown is asynchronous), failing after 3 s. */
async function eventually(server: SignalFishServer, check: (m: Map<string, number>) => boolean) {
  const deadline = Date.now() + 3000;
  for (;;) {
    const metrics = await scrape(server);
    if (check(metrics)) return metrics;
    if (Date.now() > deadline) throw new Error("Metrics never reached the expected state");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

import { RELAY_TIMING_SAMPLE } from "../src/transport/edge.ts";
const RELAYED = 20;

Deno.test("A scripted session leaves every counter it touched at exactly the expected value", async () => {
  await using server = await serve((config) => config.security.max_connections_per_ip = 3);
  const alice = await connect(server);
  const bob = await connect(server);
  const carol = await connect(server);
  // The per-IP connection limit is a limiter too (docs/spec/SERVER.md §6.3 #11): a 4th upgrade is refused.
  const refused = await fetch(`${server.url}/v2/ws`, {
    headers: {
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-version": "13",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    },
  });
  equal(refused.status, 429);
  await refused.body?.cancel();

  await createAndJoin(alice, bob);
  await alice.waitFor("PlayerJoined");
  for (let i = 0; i < RELAYED; i++) {
    alice.send({ type: "GameData", data: { data: { seq: i } } });
  }
  for (let i = 0; i < RELAYED; i++) {
    bob.send({ type: "Ping" }); // interleaved traffic that must not count as game data
    await bob.waitFor("GameData");
  }
  carol.send("{not json"); // parse error: Error INVALID_INPUT, stays connected
  equal((await carol.next("Error")).data.error_code, "INVALID_INPUT");
  carol.send(joinRoom("!!", "carol")); // RoomJoinFailed INVALID_ROOM_CODE: a validation error
  equal((await carol.next("RoomJoinFailed")).data.error_code, "INVALID_ROOM_CODE");
  bob.send({ type: "LeaveRoom" });
  await bob.waitFor("RoomLeft");
  await bob.expectNothingElse();

  const metrics = await scrape(server);
  const expected: Record<string, number> = {
    signal_fish_connections_total: 3,
    signal_fish_connections_active: 3,
    signal_fish_connections_disconnections_total: 0,
    signal_fish_rooms_created_total: 1,
    signal_fish_rooms_joined_total: 1,
    signal_fish_rooms_deleted_total: 0,
    signal_fish_room_cap_denials_total: 0,
    signal_fish_rate_limit_rejections_total: 1,
    signal_fish_room_creation_latency_samples_total: 1,
    signal_fish_room_join_latency_samples_total: 1,
    signal_fish_latency_clamped_samples_total: 0,
    signal_fish_errors_total: 2,
    signal_fish_errors_internal_total: 0,
    signal_fish_errors_websocket_total: 0,
    signal_fish_errors_validation_total: 2,
    signal_fish_players_active: 1,
    signal_fish_players_joined_total: 2,
    signal_fish_players_left_total: 1,
    signal_fish_game_data_messages_total: RELAYED,
    signal_fish_cleanup_empty_rooms_total: 0,
    signal_fish_cleanup_inactive_rooms_total: 0,
    signal_fish_dashboard_cache_refresh_failures_total: 0,
    signal_fish_slow_consumer_disconnects_total: 0,
    signal_fish_room_creation_latency_seconds_count: 1,
    'signal_fish_room_creation_latency_seconds_bucket{le="+Inf"}': 1,
    signal_fish_room_join_latency_seconds_count: 1,
    // One GameData in RELAY_TIMING_SAMPLE is timed.
    signal_fish_game_data_relay_latency_seconds_count: Math.floor(RELAYED / RELAY_TIMING_SAMPLE),
  };
  if (metrics.has("signal_fish_reconnection_tokens_issued_total")) {
    // Live once the engine has reconnection: one token per RoomJoined.
    expected.signal_fish_reconnection_tokens_issued_total = 2;
    expected.signal_fish_reconnection_completions_total = 0;
    expected.signal_fish_reconnection_validation_failures_total = 0;
    expected.signal_fish_reconnection_sessions_active = 0;
  }
  const actual = Object.fromEntries(Object.keys(expected).map((name) => [name, metrics.get(name)]));
  deepEqual(actual, expected);
  ok(metrics.get("signal_fish_room_creation_latency_seconds_sum")! > 0);

  alice.send({ type: "LeaveRoom" });
  await alice.waitFor("RoomLeft");
  await Promise.all([alice, bob, carol].map((client: TestClient) => client.close()));
  const after = await eventually(
    server,
    (m) => m.get("signal_fish_connections_disconnections_total") === 3,
  );
  equal(after.get("signal_fish_connections_active"), 0);
  equal(after.get("signal_fish_players_active"), 0);
  equal(after.get("signal_fish_players_left_total"), 2);
  equal(after.get("signal_fish_errors_websocket_total"), 0);
});

Deno.test("Families of features this build lacks are omitted, not reported as zero", async () => {
  await using server = await serve();
  const metrics = await scrape(server);
  for (
    const name of [
      "signal_fish_room_cap_lock_acquisitions_total",
      "signal_fish_rate_limit_resets_total",
      "signal_fish_rate_limit_minute_limit",
      "signal_fish_queries_total",
      "signal_fish_query_latency_seconds_count",
      "signal_fish_room_creation_latency_p50_ms",
      "signal_fish_cross_instance_messages_total",
      "signal_fish_relay_client_id_reuse_total",
    ]
  ) {
    equal(metrics.has(name), false, name);
  }
});

Deno.test("The reconnection families (docs/spec/SERVER.md §6.3 #33–#37) stay, reading 0, with reconnection off", async () => {
  await using server = await serve((config) => config.server.enable_reconnection = false);
  await using alice = await connect(server);
  alice.send(joinRoom(null, "alice"));
  await alice.next("RoomJoined");
  const metrics = await scrape(server);
  for (
    const name of [
      "signal_fish_reconnection_tokens_issued_total",
      "signal_fish_reconnection_sessions_active",
      "signal_fish_reconnection_validation_failures_total",
      "signal_fish_reconnection_completions_total",
      "signal_fish_reconnection_events_buffered_total",
    ]
  ) {
    equal(metrics.get(name), 0, name);
  }
});

Deno.test("reconnection_events_buffered_total (#37) counts messages kept for a held seat", async () => {
  await using server = await serve();
  const alice = await connect(server);
  await using bob = await connect(server);
  await createAndJoin(alice, bob);
  await alice.close(); // alice's seat is held
  await eventually(server, (m) => m.get("signal_fish_reconnection_sessions_active") === 1);
  for (let i = 0; i < 3; i++) bob.send({ type: "GameData", data: { data: i } });
  bob.send({ type: "Ping" });
  await bob.next("Pong"); // the three GameData were handled before it
  const metrics = await scrape(server);
  equal(metrics.get("signal_fish_reconnection_events_buffered_total"), 3);
});

Deno.test("cleanup_expired_players_total (#44) counts idle-timeout closes, not other closes", async () => {
  await using server = await serve((config) => config.server.ping_timeout = 2);
  // A client going away with 1001 (as browsers do on navigation) is not an idle timeout.
  await using polite = await RawWebSocket.open(server.port);
  await polite.sendFrame(8, new Uint8Array([0x03, 0xe9]));
  equal((await polite.readClose()).code, 1001);
  await using silent = await RawWebSocket.open(server.port); // never answers the pings
  equal((await silent.readClose(10_000)).code, 1001);
  const metrics = await eventually(
    server,
    (m) => m.get("signal_fish_connections_disconnections_total") === 2,
  );
  equal(metrics.get("signal_fish_cleanup_expired_players_total"), 1);
});

Deno.test({
  name: "A rate-limited room creation counts one rate_limit_rejections_total",
  async fn() {
    await using server = await serve((config) => config.rate_limit.max_room_creations = 1);
    await using alice = await connect(server);
    alice.send(joinRoom(null, "alice"));
    await alice.next("RoomJoined");
    alice.send({ type: "LeaveRoom" });
    await alice.waitFor("RoomLeft");
    alice.send(joinRoom(null, "alice"));
    const refused = await alice.next();
    ok(JSON.stringify(refused).includes("RATE_LIMIT_EXCEEDED"), JSON.stringify(refused));
    const metrics = await scrape(server);
    equal(metrics.get("signal_fish_rate_limit_rejections_total"), 1);
    equal(metrics.get("signal_fish_rooms_created_total"), 1);
  },
});

Deno.test("Metrics routes require the bearer token when configured (docs/spec/SERVER.md §1.4)", async () => {
  const token = "a-very-secret-metrics-token";
  await using server = await serve((config) => {
    config.security.require_metrics_auth = true;
    config.security.metrics_auth_token = token;
  });
  const paths = [
    "/metrics",
    "/v1/metrics",
    "/v2/metrics",
    "/metrics/prom",
    "/v1/metrics/prom",
    "/v2/metrics/prom",
    "/v2/status",
  ];
  // Wrong Bearer tokens are charged to the address (10 a minute): one per path here.
  for (const [i, path] of paths.entries()) {
    for (
      const authorization of [undefined, `bearer ${token}`, i % 2 ? `Bearer  ${token}` : "Bearer x"]
    ) {
      const headers: HeadersInit = authorization ? { authorization } : {};
      const response = await fetch(`${server.url}${path}?includeSnapshot=bogus`, { headers });
      equal(response.status, 401, `${path} ${authorization}`);
      equal(await response.text(), "");
      equal(response.headers.get("www-authenticate"), null);
    }
    const response = await fetch(`${server.url}${path}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    equal(response.status, 200, path);
    await response.body?.cancel();
  }
  await scrape(server, { authorization: `Bearer ${token}` });
});

Deno.test("Metrics routes: wrong tokens are limited per address (429 + Retry-After), the right one is never charged", async () => {
  // Before, nothing limited guesses: 8,205 wrong tokens in 5 s from one keep-alive connection
  // (/tmp/s26/a/metrics_guess.ts).
  const token = "a-very-secret-metrics-token";
  await using server = await serve((config) => {
    config.security.require_metrics_auth = true;
    config.security.metrics_auth_token = token;
  });
  const get = async (path: string, authorization?: string) => {
    const response = await fetch(`${server.url}${path}`, {
      headers: authorization === undefined ? {} : { authorization },
    });
    return { status: response.status, headers: response.headers, text: await response.text() };
  };
  // A scraper with the right token, and requests without a Bearer credential: never charged.
  for (let i = 0; i < 50; i++) {
    equal((await get("/metrics/prom", `Bearer ${token}`)).status, 200);
    equal((await get("/v2/status")).status, 401);
    equal((await get("/v2/status", `Basic ${btoa(`x:${token}`)}`)).status, 401);
  }
  for (let i = 0; i < 10; i++) {
    equal((await get(i % 2 ? "/v2/status" : "/metrics", `Bearer guess-${i}`)).status, 401);
  }
  // The bucket is empty: every metrics path answers 429 before the token is looked at.
  for (const authorization of [`Bearer guess-x`, `Bearer ${token}`, undefined]) {
    const limited = await get("/v2/metrics/prom", authorization);
    equal(limited.status, 429, String(authorization));
    ok(Number(limited.headers.get("retry-after")) >= 1);
    match(limited.text, /Too many failed authentication attempts/);
  }
});

Deno.test("GET /metrics answers the JSON body of docs/spec/SERVER.md §6.4 with live values", async () => {
  await using server = await serve();
  await using alice = await connect(server);
  alice.send(joinRoom(null, "alice"));
  await alice.next("RoomJoined");
  server.metrics.refreshDashboard(Date.now());
  const response = await fetch(`${server.url}/v1/metrics?time_range=24h&includeSnapshot=true`);
  equal(response.status, 200);
  equal(response.headers.get("content-type"), "application/json");
  const body = await response.json();
  equal(body.timeRange, "24h");
  equal(body.activeRooms, 1);
  deepEqual(body.roomsByGame, { orbit: 1 });
  deepEqual(body.playerPercentiles, { p50: 1, p90: 1, p99: 1, p99_5: 1, p99_9: 1, p100: 1 });
  deepEqual(body.serverMetrics.connections, { total: 1, active: 1, disconnections: 0 });
  deepEqual(body.serverMetrics.rooms, { created: 1, joined: 0, deleted: 0 });
  equal(body.serverMetrics.performance.room_creation_latency.sample_count, 1);
  equal(body.serverMetrics.performance.room_join_latency.p50_ms, null);
  equal(body.dashboardCache.stale, false);
  equal(body.metricsSnapshot.rooms.rooms_created, 1);
  equal(body.metricsSnapshot.players.players_joined, 1);
  const bad = await fetch(`${server.url}/metrics?includeSnapshot=yes`);
  equal(bad.status, 400);
  equal(await bad.text(), "Invalid query parameter: includeSnapshot");
  const plain = await (await fetch(`${server.url}/v2/metrics`)).json();
  equal(plain.timeRange, "1h");
  equal("metricsSnapshot" in plain, false);
});

Deno.test("GET /v2/status reports live counts, and 503 draining during shutdown", async () => {
  const server = await serve();
  const alice = await connect(server);
  alice.send(joinRoom(null, "alice"));
  await alice.next("RoomJoined");
  const response = await fetch(`${server.url}/v2/status`);
  equal(response.status, 200);
  const body = await response.json();
  ok(typeof body.instance_id === "string" && body.instance_id.length > 0);
  ok(Number.isInteger(body.uptime_secs));
  deepEqual({ ...body, instance_id: "", uptime_secs: 0 }, {
    status: "ok",
    version: "0.1.0",
    instance_id: "",
    uptime_secs: 0,
    rooms: 1,
    players: 1,
    spectators: 0,
    connections: 1,
    held_seats: 0,
  });
  const closing = server.close();
  await alice.closed;
  await closing;
});

// promtool (Debian package `prometheus`) lints the exposition. CI exports
// SIGNAL_FISH_REQUIRE_PROMTOOL=1 so a missing promtool fails there instead of skipping.
const PROMTOOL = await (async () => {
  try {
    const { success } = await new Deno.Command("promtool", { args: ["--version"], stdout: "null" })
      .output();
    return success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "promtool check metrics accepts the exposition after a session",
  ignore: !PROMTOOL && Deno.env.get("SIGNAL_FISH_REQUIRE_PROMTOOL") !== "1",
  async fn() {
    await using server = await serve();
    await using alice = await connect(server);
    await using bob = await connect(server);
    await createAndJoin(alice, bob);
    alice.send({ type: "GameData", data: { data: { x: 1 } } });
    await bob.waitFor("GameData");
    const text = await (await fetch(`${server.url}/metrics/prom`)).text();
    const child = new Deno.Command("promtool", {
      args: ["check", "metrics"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
    const { code: status, stdout, stderr } = await child.output();
    const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    equal(output.trim(), "", output);
    equal(status, 0, output);
  },
});

Deno.test("Operator families: open rooms, build version and process figures are live", async () => {
  await using server = await serve();
  const status = async () => (await (await fetch(`${server.url}/v2/status`)).json()).rooms;
  const before = await scrape(server);
  equal(before.get("signal_fish_rooms_active"), 0);
  equal(before.get(`signal_fish_build_info{version="${denoJson.version}"}`), 1);
  const clients = await Promise.all([0, 1, 2].map(() => connect(server)));
  const [alice, bob, carol] = clients as [TestClient, TestClient, TestClient];
  await createAndJoin(alice, bob);
  carol.send(joinRoom(null, "carol"));
  await carol.next("RoomJoined");
  const during = await scrape(server);
  equal(during.get("signal_fish_rooms_active"), 2);
  equal(during.get("signal_fish_rooms_active"), await status());
  equal(during.get("signal_fish_players_active"), 3);

  // The server runs in this process: its process figures are this process's.
  const rss = during.get("process_resident_memory_bytes")!;
  const rssNow = Deno.memoryUsage().rss;
  ok(rss > 0 && rss > rssNow / 2 && rss < rssNow * 2, `${rss} vs ${rssNow}`);
  const cpu = during.get("process_cpu_seconds_total")!;
  const { user, system } = process.cpuUsage();
  ok(cpu > 0 && cpu <= (user + system) / 1e6, `${cpu}`);
  ok(during.get("process_start_time_seconds")! * 1000 <= Date.now());
  if (Deno.build.os === "linux") {
    // Three WebSockets are six descriptors here (client and server side of each).
    ok(
      during.get("process_open_fds")! >= before.get("process_open_fds")! + 3,
      `${before.get("process_open_fds")} → ${during.get("process_open_fds")}`,
    );
  }
  // Relay latency resolves below 1 ms: the exposed bounds start at 1 µs.
  ok(during.has('signal_fish_game_data_relay_latency_seconds_bucket{le="0.000001"}'));
  ok(during.has('signal_fish_game_data_relay_latency_seconds_bucket{le="0.0005"}'));
  await Promise.all(clients.map((client) => client.close()));
});
