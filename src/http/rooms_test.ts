import { deepEqual, equal, ok } from "node:assert/strict";
import type { TokenBuckets } from "../coordination/buckets.ts";
import { MemoryRoomDirectory, MemoryTokenBuckets } from "../coordination/memory.ts";
import { Engine } from "../engine/engine.ts";
import { RateLimits } from "../engine/rate_limits.ts";
import { join, testOptions } from "../engine/testing.ts";
import { Edge } from "../transport/edge.ts";
import { gameScope } from "../engine/room.ts";
import { appRoomScope, roomRoutes } from "./rooms.ts";

function setup(publicRoomListing = false) {
  let now = 1_000_000;
  const rateLimits = new RateLimits({ maxRoomCreations: 5, maxJoinAttempts: 2, windowMs: 60_000 });
  // The room is created through an edge, whose directory effects fill the room directory.
  const edge = new Edge(new Engine(testOptions()), { maxMessageSize: 65536, newId: () => "p1" });
  const p1 = edge.connect({ send: () => undefined, close: () => {} }, { ip: "198.51.100.1" }, now);
  edge.receive(p1, JSON.stringify(join("ROOM01", "mira", { max_players: 3 })), now);
  const routes = roomRoutes({
    directory: edge.directory,
    buckets: new MemoryTokenBuckets(rateLimits),
    publicRoomListing,
    roomCodeLength: 6,
    maxGameNameLength: 64,
    now: () => now,
  });
  const get = async (path: string, ip = "203.0.113.9", method = "GET") => {
    const url = new URL(path, "http://localhost");
    return await routes(new Request(url, { method }), url.pathname, ip);
  };
  return { get, advance: (ms: number) => now += ms };
}

Deno.test("roomRoutes() lookup: 200 summary, case-insensitive code, 404 otherwise", async () => {
  const { get } = setup();
  const found = (await get("/v2/rooms/orbit/room01"))!;
  equal(found.status, 200);
  deepEqual(await found.json(), {
    room_code: "ROOM01",
    game_name: "orbit",
    players: 1,
    max_players: 3,
    spectators: 0,
    lobby_state: "waiting",
    supports_authority: true,
    relay_type: "matchbox",
    authority_handover: false,
  });
  const missing = (await get("/v2/rooms/orbit/ROOM02", "198.51.100.1"))!;
  equal(missing.status, 404);
  equal(missing.headers.get("cache-control"), "no-store");
  deepEqual(await missing.json(), { message: "Room not found", error_code: "ROOM_NOT_FOUND" });
});

Deno.test("roomRoutes() lookup: the join bucket answers 429 with Retry-After, then refills", async () => {
  const { get, advance } = setup();
  equal((await get("/v2/rooms/orbit/ROOM01"))!.status, 200);
  equal((await get("/v2/rooms/orbit/BADCODE!"))!.status, 404); // invalid requests take a token too
  const limited = (await get("/v2/rooms/orbit/ROOM01"))!;
  equal(limited.status, 429);
  equal(limited.headers.get("retry-after"), "30");
  deepEqual(await limited.json(), {
    message: "Join attempt rate limit exceeded. Try again in 30 seconds.",
    error_code: "RATE_LIMIT_EXCEEDED",
  });
  equal(
    (await get("/v2/rooms/orbit/ROOM01", "192.0.2.1"))!.status,
    200,
    "another IP is not limited",
  );
  advance(29_001);
  equal((await get("/v2/rooms/orbit/ROOM01"))!.headers.get("retry-after"), "1");
  advance(30_000);
  equal((await get("/v2/rooms/orbit/ROOM01"))!.status, 200);
});

Deno.test("roomRoutes() answers only its own paths; listing only when enabled", async () => {
  const { get } = setup(false);
  equal(await get("/v2/rooms"), undefined);
  equal(await get("/v2/rooms?game_name=orbit"), undefined);
  equal(await get("/v2/rooms/orbit"), undefined);
  equal(await get("/v2/rooms/orbit/ROOM01/extra"), undefined);
  equal(await get("/v2/roomsX/orbit/ROOM01"), undefined);
  const post = (await get("/v2/rooms/orbit/ROOM01", "203.0.113.9", "POST"))!;
  equal(post.status, 405);
  equal(post.headers.get("allow"), "GET, HEAD");
});

Deno.test("roomRoutes() listing: rooms with seats of one game; 400 without a valid game_name", async () => {
  const { get } = setup(true);
  const listed = (await get("/v2/rooms?game_name=orbit"))!;
  equal(listed.status, 200);
  const body = await listed.json();
  deepEqual(body.rooms.map((room: { room_code: string }) => room.room_code), ["ROOM01"]);
  const bad = (await get("/v2/rooms?game_name=", "198.51.100.7"))!;
  equal(bad.status, 400);
  deepEqual(await bad.json(), {
    message: "game_name is required",
    error_code: "INVALID_GAME_NAME",
  });
});

Deno.test("roomRoutes() in cluster mode: 503 for an unknown code in the grace window and when the store fails (docs/spec/SERVER.md §1.10, §8.3)", async () => {
  let grace = true;
  let failing = false;
  const summary = {
    room_code: "ROOM01",
    game_name: "orbit",
    players: 1,
    max_players: 3,
    spectators: 0,
    lobby_state: "waiting" as const,
    supports_authority: true,
    relay_type: "matchbox",
    authority_handover: false,
  };
  const record = {
    roomId: "r1",
    gameName: "orbit",
    roomCode: "ROOM01",
    createdAt: 1,
    home: "a@00000000",
    summary,
  };
  // A remote directory: answers with Promises, rejects while "Redis" does not answer.
  const answer = <T>(value: T) =>
    failing ? Promise.reject(new Error("Redis lookup timed out")) : Promise.resolve(value);
  const routes = roomRoutes({
    directory: {
      lookup: (_game, code) => answer(code === "ROOM01" ? record : undefined),
      list: () => answer([record]),
      claim: () => answer({ status: "ok" as const }),
      refresh: () => answer("refreshed" as const),
      release: () => answer(undefined),
      all: () => answer([record]),
      page: () => answer({ records: [record], truncated: false, complete: true, examined: 1 }),
    },
    publicRoomListing: true,
    roomCodeLength: 6,
    maxGameNameLength: 64,
    inGrace: () => grace,
  });
  const get = async (path: string) => {
    const url = new URL(path, "http://localhost");
    return (await routes(new Request(url), url.pathname, "203.0.113.9"))!;
  };
  // Known code: 200 even in the grace window; unknown: 503 in it, 404 after it.
  equal((await get("/v2/rooms/orbit/ROOM01")).status, 200);
  const unknown = await get("/v2/rooms/orbit/ROOM02");
  equal(unknown.status, 503);
  deepEqual(await unknown.json(), {
    message: "Service temporarily unavailable",
    error_code: "SERVICE_UNAVAILABLE",
  });
  grace = false;
  equal((await get("/v2/rooms/orbit/ROOM02")).status, 404);
  // Known unreachable (the bucket take fell back): 503 without asking the directory.
  let reachable = false;
  const known = roomRoutes({
    directory: {
      lookup: () => Promise.reject(new Error("not asked")),
      list: () => Promise.reject(new Error("not asked")),
      claim: () => answer({ status: "ok" as const }),
      refresh: () => answer("refreshed" as const),
      release: () => answer(undefined),
      all: () => answer([record]),
      page: () => answer({ records: [record], truncated: false, complete: true, examined: 1 }),
    },
    buckets: {
      take: () => Promise.resolve({ ok: true as const }),
      check: () => Promise.resolve({ ok: true as const }),
    },
    publicRoomListing: true,
    roomCodeLength: 6,
    maxGameNameLength: 64,
    reachable: () => reachable,
  });
  const url = new URL("/v2/rooms/orbit/ROOM01", "http://localhost");
  equal((await known(new Request(url), url.pathname, "203.0.113.9"))!.status, 503);
  reachable = true;
  // (the directory is asked now, and rejects: still 503)
  equal((await known(new Request(url), url.pathname, "203.0.113.9"))!.status, 503);
  // The store does not answer: 503 for lookups and listings, never 500.
  failing = true;
  const down = await get("/v2/rooms/orbit/ROOM01");
  equal(down.status, 503);
  equal((await down.json()).error_code, "SERVICE_UNAVAILABLE");
  equal((await get("/v2/rooms?game_name=orbit")).status, 503);
  failing = false;
  equal((await get("/v2/rooms?game_name=orbit")).status, 200);
});

/** Rooms of app "orbit" (secret) and "open" (none) for the app checks (auth required). */
function appSetup(buckets: TokenBuckets) {
  const directory = new MemoryRoomDirectory();
  for (const app of ["orbit", "open"]) {
    directory.refresh({
      roomId: `r-${app}`,
      gameName: gameScope("g", app),
      roomCode: "ROOM01",
      createdAt: 1,
      home: "local",
      summary: {
        room_code: "ROOM01",
        game_name: "g",
        players: 1,
        max_players: 4,
        spectators: 0,
        lobby_state: "waiting",
        supports_authority: true,
        relay_type: "matchbox",
        authority_handover: false,
      },
    });
  }
  const scope = appRoomScope({
    required: true,
    apps: [
      { appId: "orbit", appSecret: "correct-horse", appName: "Orbit" },
      { appId: "open", appName: "Open" },
    ],
    timeoutMs: 10_000,
    enforceSdkGate: false,
  })!;
  const events: string[] = [];
  const routes = roomRoutes({
    directory,
    buckets,
    scope,
    publicRoomListing: true,
    roomCodeLength: 6,
    maxGameNameLength: 64,
    now: () => 1_000_000,
    onEvent: (event) => events.push(`${event.type}:${"scope" in event ? event.scope : ""}`),
  });
  const get = async (path: string, secret?: string, ip = "203.0.113.9") => {
    const url = new URL(path, "http://localhost");
    const headers: Record<string, string> = secret === undefined ? {} : { "x-app-secret": secret };
    const response = (await routes(new Request(url, { headers }), url.pathname, ip))!;
    return { status: response.status, headers: response.headers, body: await response.json() };
  };
  return { get, events };
}

Deno.test("roomRoutes() with app auth: a wrong X-App-Secret is 401 and charged to the auth-failure budget; 429 once spent", async () => {
  const limits = new RateLimits({
    maxRoomCreations: 5,
    maxJoinAttempts: 1000,
    maxAuthFailures: 3,
    windowMs: 60_000,
  });
  const { get, events } = appSetup(new MemoryTokenBuckets(limits));
  const ip = "203.0.113.9";
  equal((await get("/v2/rooms?game_name=g&app_id=orbit", "correct-horse")).body.rooms.length, 1);
  equal((await get("/v2/rooms/g/ROOM01?app_id=orbit", "correct-horse")).status, 200);
  equal((await get("/v2/rooms/g/ROOM01?app_id=open")).status, 200, "an app without a secret");
  // Nothing presented, nothing charged: no app (as before), no secret, an unknown app.
  for (let i = 0; i < 10; i++) {
    deepEqual((await get("/v2/rooms?game_name=g")).body, { game_name: "g", rooms: [] });
    equal((await get("/v2/rooms/g/ROOM01")).status, 404);
    deepEqual((await get("/v2/rooms?game_name=g&app_id=orbit")).body, {
      message: "This app needs its secret in header X-App-Secret",
      error_code: "UNAUTHORIZED",
    });
    deepEqual((await get("/v2/rooms/g/ROOM01?app_id=who")).body, {
      message: "Unknown app_id",
      error_code: "INVALID_APP_ID",
    });
  }
  equal(limits.canFailAuth(ip, 1_000_000).ok, true);
  // Guesses: a wrong secret and an unknown app with a secret, each charged.
  const wrong = await get("/v2/rooms?game_name=g&app_id=orbit", "correct-horsf");
  deepEqual([wrong.status, wrong.body], [401, {
    message: "Wrong app secret",
    error_code: "UNAUTHORIZED",
  }]);
  equal((await get("/v2/rooms/g/ROOM01?app_id=orbit", "x")).status, 401);
  equal((await get("/v2/rooms/g/ROOM01?app_id=who", "x")).status, 401);
  // Spent: the same budget Authenticate reads; the right secret is not even looked at.
  equal(limits.canFailAuth(ip, 1_000_000).ok, false);
  const spent = await get("/v2/rooms?game_name=g&app_id=orbit", "correct-horse");
  equal(spent.status, 429);
  equal(spent.headers.get("retry-after"), "20");
  deepEqual(spent.body, {
    message: "Too many failed authentication attempts. Try again in 20 seconds.",
    error_code: "RATE_LIMIT_EXCEEDED",
  });
  ok(events.includes("rate_limited:auth_failures"));
  // Other addresses keep theirs; this one's Authenticate failures count here too.
  const other = "198.51.100.7";
  equal(
    (await get("/v2/rooms?game_name=g&app_id=orbit", "correct-horse", other)).body.rooms.length,
    1,
  );
  for (let i = 0; i < 3; i++) limits.chargeAuthFailure(other, 1_000_000);
  equal((await get("/v2/rooms?game_name=g&app_id=orbit", "correct-horse", other)).status, 429);
});

Deno.test("roomRoutes() with app auth in cluster mode: the budget is checked and taken through the shared buckets", async () => {
  // The cluster's store answers with Promises (Redis): checked before the secret, taken after a
  // failure, under kind "auth_failure" — the key the edge's Authenticate uses.
  const calls: string[] = [];
  let left = true;
  const buckets: TokenBuckets = {
    take: (kind, key) => {
      calls.push(`take ${kind} ${key}`);
      return Promise.resolve({ ok: true });
    },
    check: (kind, key) => {
      calls.push(`check ${kind} ${key}`);
      return Promise.resolve(left ? { ok: true } : { ok: false, retryAfterSecs: 7 });
    },
  };
  const { get } = appSetup(buckets);
  equal((await get("/v2/rooms/g/ROOM01?app_id=orbit", "correct-horse")).status, 200);
  equal((await get("/v2/rooms/g/ROOM01?app_id=orbit", "wrong")).status, 401);
  equal((await get("/v2/rooms/g/ROOM01?app_id=orbit")).status, 401);
  deepEqual(calls, [
    "take join 203.0.113.9",
    "check auth_failure 203.0.113.9",
    "take join 203.0.113.9",
    "check auth_failure 203.0.113.9",
    "take auth_failure 203.0.113.9",
    "take join 203.0.113.9",
  ]);
  left = false;
  const spent = await get("/v2/rooms/g/ROOM01?app_id=orbit", "correct-horse");
  equal(spent.status, 429);
  equal(spent.headers.get("retry-after"), "7");
});

Deno.test("roomRoutes() with app auth and asynchronous buckets: concurrent wrong secrets of one address are checked one at a time", async () => {
  // Redis-like buckets: the memory ones answered a tick later. Before, each of the concurrent
  // guesses read the budget before any failure was taken and all ten secrets were checked.
  const memory = new MemoryTokenBuckets(
    new RateLimits({
      maxRoomCreations: 5,
      maxJoinAttempts: 100,
      maxAuthFailures: 3,
      windowMs: 60_000,
    }),
  );
  const later = <T>(value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), 1));
  const buckets: TokenBuckets = {
    take: (kind, key, now) => later(memory.take(kind, key, now)),
    check: (kind, key, now) => later(memory.check(kind, key, now)),
  };
  const { get } = appSetup(buckets);
  const answers = await Promise.all(
    Array.from({ length: 10 }, (_, i) => get("/v2/rooms/g/ROOM01?app_id=orbit", `guess-${i}`)),
  );
  deepEqual(answers.map((answer) => answer.status).sort(), [
    401,
    401,
    401,
    429,
    429,
    429,
    429,
    429,
    429,
    429,
  ]);
  // Another address has its own budget, and the right secret still needs one left.
  equal(
    (await get("/v2/rooms/g/ROOM01?app_id=orbit", "correct-horse", "198.51.100.4")).status,
    200,
  );
});
