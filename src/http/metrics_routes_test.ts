import { deepEqual, equal } from "node:assert/strict";
import { Engine } from "../engine/engine.ts";
import { testOptions } from "../engine/testing.ts";
import { Edge } from "../transport/edge.ts";
import type { StatusBody } from "./metrics_routes.ts";
import { createHandler } from "./routes.ts";
import { seatPercentiles, ServerMetrics } from "../metrics/server_metrics.ts";

const INFO = {
  remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 50000 },
  completed: Promise.resolve(),
} as unknown as Deno.ServeHandlerInfo;

function setup(options: { draining?: boolean; token?: string | null; now?: () => number } = {}) {
  const engine = new Engine(testOptions());
  const metrics = new ServerMetrics({
    connections: () => 0,
    players: () => engine.stats().players,
    rooms: () => engine.stats().rooms,
    heldSeats: () => undefined,
    eventsBuffered: () => 0,
    seatHistograms: () => engine.seatHistograms(),
  }, {
    reconnection: false,
    version: "0.0.0-test",
    refreshIntervalSecs: 5,
    ttlSecs: 30,
    historyWindowSecs: 10,
    historyFields: ["ActiveRooms"],
  });
  const edge = new Edge(engine, {
    maxMessageSize: 65536,
    newId: () => crypto.randomUUID(),
    onEvent: (event) => metrics.observe(event),
  });
  const draining = options.draining ?? false;
  const status = (): StatusBody => ({
    status: draining ? "draining" : "ok",
    version: "0.1.0",
    instance_id: "test",
    uptime_secs: 0,
    rooms: 0,
    players: 0,
    spectators: 0,
    connections: 0,
    held_seats: 0,
  });
  const handle = createHandler({
    edge,
    isDraining: () => draining,
    metrics: {
      metrics,
      status,
      authToken: options.token ?? null,
      now: options.now ?? (() => 1_000_000),
    },
  }, { corsOrigins: "*", maxConnectionsPerIp: 10, idleTimeoutSecs: 30 });
  return { handle, metrics, edge };
}

Deno.test("createHandler() serves Prometheus text on the three prom paths", async () => {
  const { handle } = setup();
  for (const path of ["/metrics/prom", "/v1/metrics/prom", "/v2/metrics/prom"]) {
    const response = await handle(new Request(`http://localhost${path}`), INFO);
    equal(response.status, 200);
    equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  }
  const post = await handle(new Request("http://localhost/metrics", { method: "POST" }), INFO);
  equal(post.status, 405);
  equal(post.headers.get("allow"), "GET, HEAD");
});

Deno.test("createHandler() answers 401 with an empty body before parsing the query", async () => {
  const { handle } = setup({ token: "tok" });
  const response = await handle(new Request("http://localhost/metrics?includeSnapshot=nope"), INFO);
  equal(response.status, 401);
  equal(await response.text(), "");
  const ok = await handle(
    new Request("http://localhost/metrics?includeSnapshot=nope", {
      headers: { authorization: "Bearer tok" },
    }),
    INFO,
  );
  equal(ok.status, 400);
  equal(await ok.text(), "Invalid query parameter: includeSnapshot");
});

Deno.test("createHandler() answers /v2/status with 503 and status draining while shutting down", async () => {
  const { handle } = setup({ draining: true });
  const response = await handle(new Request("http://localhost/v2/status"), INFO);
  equal(response.status, 503);
  equal((await response.json()).status, "draining");
});

Deno.test("createHandler() counts a per-IP refusal as a rate-limit rejection", async () => {
  const engine = new Engine(testOptions());
  const metrics = new ServerMetrics({
    connections: () => 0,
    players: () => 0,
    rooms: () => 0,
    heldSeats: () => undefined,
    eventsBuffered: () => 0,
    seatHistograms: () => [],
  }, {
    reconnection: false,
    version: "0.0.0-test",
    refreshIntervalSecs: 5,
    ttlSecs: 30,
    historyWindowSecs: 300,
    historyFields: [],
  });
  const edge = new Edge(engine, { maxMessageSize: 65536, newId: () => crypto.randomUUID() });
  const handle = createHandler({
    edge,
    onEvent: (event) => metrics.observe(event),
    isDraining: () => false,
    metrics: { metrics, status: () => ({}) as StatusBody, authToken: null },
  }, { corsOrigins: "*", maxConnectionsPerIp: 0, idleTimeoutSecs: 30 });
  const response = await handle(
    new Request("http://localhost/v2/ws", {
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      },
    }),
    INFO,
  );
  equal(response.status, 429);
  equal(/signal_fish_rate_limit_rejections_total 1\n/.test(metrics.renderPrometheus()), true);
});

Deno.test("seatPercentiles() takes nearest ranks of the sorted seat counts", () => {
  deepEqual(seatPercentiles([]), {});
  deepEqual(seatPercentiles([3, 1, 2, 4]), {
    p50: 3, // index round(0.5 × 3) = 2
    p90: 4,
    p99: 4,
    p99_5: 4,
    p99_9: 4,
    p100: 4,
  });
  const many = Array.from({ length: 1001 }, (_, i) => i);
  deepEqual(seatPercentiles(many), {
    p50: 500,
    p90: 900,
    p99: 990,
    p99_5: 995,
    p99_9: 999,
    p100: 1000,
  });
});

Deno.test("ServerMetrics keeps a bounded dashboard history and reports staleness", () => {
  const { metrics } = setup();
  const query = { timeRange: "1h", includeSnapshot: false };
  // deno-lint-ignore no-explicit-any
  const cache = (now: number) => (metrics.jsonBody(query, now) as any).dashboardCache;
  equal(cache(0).stale, true);
  equal(cache(0).fetchedAt, null);
  for (let i = 0; i < 5; i++) metrics.refreshDashboard(i * 5000);
  // history window 10 s / refresh 5 s ⇒ 2 entries, oldest first; only ActiveRooms kept.
  deepEqual(cache(20_000).history, [
    {
      fetchedAt: new Date(15_000).toISOString(),
      activeRooms: 0,
      roomsByGame: null,
      playerPercentiles: null,
      gamePercentiles: null,
    },
    {
      fetchedAt: new Date(20_000).toISOString(),
      activeRooms: 0,
      roomsByGame: null,
      playerPercentiles: null,
      gamePercentiles: null,
    },
  ]);
  equal(cache(20_000).ageSeconds, 0);
  equal(cache(50_000).stale, false); // 30 s old = ttl, not more
  equal(cache(51_000).stale, true);
  equal(cache(51_000).ageSeconds, 31);
});

Deno.test("createHandler() charges wrong Bearer tokens per client IP: 429 with Retry-After, refilled over a minute", async () => {
  let now = 1_000_000;
  const { handle } = setup({ token: "tok", now: () => now });
  const from = (hostname: string) =>
    ({ ...INFO, remoteAddr: { transport: "tcp", hostname, port: 50000 } }) as Deno.ServeHandlerInfo;
  const get = async (authorization: string | undefined, hostname = "198.51.100.1") => {
    const headers: Record<string, string> = authorization ? { authorization } : {};
    const response = await handle(
      new Request("http://localhost/v2/status", { headers }),
      from(hostname),
    );
    return { status: response.status, retry: response.headers.get("retry-after") };
  };
  for (let i = 0; i < 30; i++) {
    equal((await get("Bearer tok")).status, 200);
    equal((await get(undefined)).status, 401);
    equal((await get("bearer tok")).status, 401); // cannot match: not charged
  }
  for (let i = 0; i < 10; i++) equal((await get(`Bearer no-${i}`)).status, 401);
  deepEqual(await get("Bearer tok"), { status: 429, retry: "6" });
  deepEqual(await get("Bearer tok", "198.51.100.2"), { status: 200, retry: null });
  now += 6_000; // one attempt back (10 a minute)
  equal((await get("Bearer tok")).status, 200);
  equal((await get("Bearer no")).status, 401);
  equal((await get("Bearer tok")).status, 429);
});
