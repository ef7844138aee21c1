import { deepEqual, equal } from "node:assert/strict";
import { MemoryTokenBuckets } from "../coordination/memory.ts";
import { Engine } from "../engine/engine.ts";
import { RateLimits } from "../engine/rate_limits.ts";
import { join, testOptions } from "../engine/testing.ts";
import { Edge } from "../transport/edge.ts";
import { roomRoutes } from "./rooms.ts";

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
