/**
 * App authentication, rate limits and the HTTP room lookup/listing over real sockets
 * (docs/spec/SERVER.md §1.10, §3.1–§3.4; docs/spec/PROTOCOL.md §7.1, §7.13).
 */
import { inProcessOnly } from "./cluster_serve.ts";
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { Config } from "../src/config/schema.ts";
import { startServer, unsupportedSettings } from "../src/server.ts";
import type { EdgeEvent } from "../src/transport/edge.ts";
import { connect, joinRoom, serve, testConfig } from "./helpers.ts";

function withApps(config: Config): void {
  config.security.require_websocket_auth = true;
  config.security.authorized_apps = [
    {
      app_id: "orbit-prod",
      app_secret: "correct horse battery staple",
      app_name: "Orbit Racers",
      max_rooms: null,
      max_players_per_room: 4,
      rate_limit_per_minute: 60,
    },
    {
      app_id: "open",
      app_secret: null,
      app_name: "Open",
      max_rooms: null,
      max_players_per_room: null,
      rate_limit_per_minute: null,
    },
  ];
}

const AUTH_OK = {
  type: "Authenticate",
  data: { app_id: "orbit-prod", app_secret: "correct horse battery staple" },
};

Deno.test("require_websocket_auth is no longer refused at startup", () => {
  deepEqual(unsupportedSettings(testConfig(withApps)).errors, []);
});

Deno.test("With auth: Authenticate first, then play; the reply carries the app's name and limits", async () => {
  await using server = await serve(withApps);
  await using client = await connect(server);
  // A parse failure before auth neither authenticates nor closes (docs/spec/PROTOCOL.md §2.3).
  client.send("{oops");
  equal((await client.next("Error")).data.error_code, "INVALID_INPUT");
  client.send(AUTH_OK);
  deepEqual((await client.next("Authenticated")).data, {
    app_name: "Orbit Racers",
    rate_limits: { per_minute: 60, per_hour: 3600, per_day: 86400 },
  });
  const info = (await client.next("ProtocolInfo")).data;
  ok(info.capabilities.includes("room-lookup"));
  ok(!info.capabilities.includes("room-listing"));
  client.send(joinRoom(null, "mira"));
  equal((await client.next("RoomJoined")).data.max_players, 4, "capped by max_players_per_room");
  client.send(AUTH_OK); // ignored once authenticated
  await client.expectNothingElse();
});

Deno.test("With auth: a message before Authenticate gets AUTHENTICATION_REQUIRED and close 1008", async () => {
  await using server = await serve(withApps);
  await using client = await connect(server);
  client.send({ type: "Ping" });
  deepEqual((await client.next("Error")).data, {
    message: "Authentication required",
    error_code: "AUTHENTICATION_REQUIRED",
  });
  deepEqual(await client.closed, { code: 1008, reason: "Authentication required" });
  await using binary = await connect(server);
  binary.send(new Uint8Array([0x81, 0xa1, 0x61]));
  equal(
    (await binary.next("Error")).data.message,
    "Authentication required before sending binary data",
  );
  equal((await binary.closed).code, 1008);
});

Deno.test("With auth: unknown app and wrong secret get AuthenticationError and close 1008", async () => {
  await using server = await serve(withApps);
  const cases: [unknown, { error: string; error_code: string }][] = [
    [{ type: "Authenticate", data: { app_id: "who" } }, {
      error: "InvalidAppId",
      error_code: "INVALID_APP_ID",
    }],
    [{ type: "Authenticate", data: { app_id: "orbit-prod" } }, {
      error: "InvalidAppSecret",
      error_code: "UNAUTHORIZED",
    }],
    [{ type: "Authenticate", data: { app_id: "orbit-prod", app_secret: "correct horse" } }, {
      error: "InvalidAppSecret",
      error_code: "UNAUTHORIZED",
    }],
  ];
  for (const [message, expected] of cases) {
    await using client = await connect(server);
    client.send(message);
    deepEqual((await client.next("AuthenticationError")).data, expected);
    deepEqual(await client.closed, { code: 1008, reason: "Authentication failed" });
  }
  // The app without a secret accepts clients that send none (released SDKs).
  await using sdk = await connect(server);
  sdk.send({ type: "Authenticate", data: { app_id: "open", platform: "unity" } });
  equal((await sdk.next("Authenticated")).data.app_name, "Open");
});

Deno.test(
  "With auth: no Authenticate within auth_timeout_secs gets AUTHENTICATION_TIMEOUT and close 1008",
  {
    ignore: inProcessOnly(
      "websocket.auth_timeout_secs = 0.3 is below the file schema's minimum (5)",
    ),
  },
  async () => {
    // 0.3 s instead of the configurable minimum of 5 s keeps the test short (config is not
    // re-validated here).
    await using server = await serve((config) => {
      withApps(config);
      config.websocket.auth_timeout_secs = 0.3;
    });
    await using idle = await connect(server);
    await using quick = await connect(server);
    quick.send(AUTH_OK);
    await quick.next("Authenticated");
    deepEqual((await idle.next("Error", 5000)).data, {
      message: "Authentication timeout - must authenticate within 0.3 seconds",
      error_code: "AUTHENTICATION_TIMEOUT",
    });
    deepEqual(await idle.closed, { code: 1008, reason: "Authentication timeout" });
    await quick.next("ProtocolInfo");
    await quick.expectNothingElse();
  },
);

Deno.test("Per-IP creation bucket: RoomJoinFailed RATE_LIMIT_EXCEEDED and the socket stays open", async () => {
  await using server = await serve((config) => config.rate_limit.max_room_creations = 2);
  await using client = await connect(server);
  for (const name of ["a", "b"]) {
    client.send(joinRoom(null, name));
    await client.next("RoomJoined");
    client.send({ type: "LeaveRoom" });
    await client.next("RoomLeft");
  }
  client.send(joinRoom(null, "c"));
  const failed = (await client.next("RoomJoinFailed")).data;
  equal(failed.error_code, "RATE_LIMIT_EXCEEDED");
  match(failed.reason, /^Room creation rate limit exceeded\. Try again in \d+ seconds\.$/);
  // A second connection from the same IP shares the bucket.
  await using other = await connect(server);
  other.send(joinRoom("NEW001", "d"));
  equal((await other.next("RoomJoinFailed")).data.error_code, "RATE_LIMIT_EXCEEDED");
  await client.expectNothingElse();
});

function get(server: { url: string }, path: string, init?: RequestInit): Promise<Response> {
  return fetch(`${server.url}${path}`, init);
}

Deno.test("GET /v2/rooms/{game_name}/{room_code} describes a room; unknown or invalid is 404", async () => {
  await using server = await serve();
  await using host = await connect(server);
  host.send({
    type: "JoinRoom",
    data: { game_name: "orbit racers", room_code: "q7km3p", player_name: "mira", max_players: 4 },
  });
  await host.next("RoomJoined");

  const found = await get(server, "/v2/rooms/orbit%20racers/q7km3p");
  equal(found.status, 200);
  equal(found.headers.get("content-type"), "application/json");
  equal(found.headers.get("cache-control"), "no-store");
  equal(found.headers.get("access-control-allow-origin"), "*");
  deepEqual(await found.json(), {
    room_code: "Q7KM3P",
    game_name: "orbit racers",
    players: 1,
    max_players: 4,
    spectators: 0,
    lobby_state: "waiting",
    supports_authority: true,
    relay_type: "matchbox",
    authority_handover: false,
  });
  for (
    const path of [
      "orbit%20racers/ZZZZZZ",
      "Orbit%20racers/Q7KM3P",
      "orbit%20racers/Q7KM3",
      "orbit%20racers/Q7KM3%21",
      "%E0%A4%A/Q7KM3P",
      "bad%00name/Q7KM3P",
    ]
  ) {
    const response = await get(server, `/v2/rooms/${path}`);
    equal(response.status, 404, path);
    deepEqual(await response.json(), { message: "Room not found", error_code: "ROOM_NOT_FOUND" });
  }
  const post = await get(server, "/v2/rooms/orbit/Q7KM3P", { method: "POST" });
  await post.body?.cancel();
  equal(post.status, 405);
  equal(post.headers.get("allow"), "GET, HEAD");
});

Deno.test("Room lookups take join tokens: 429 with Retry-After, shared with JoinRoom", async () => {
  const events: EdgeEvent[] = [];
  await using server = await startServer(
    testConfig((config) => config.rate_limit.max_join_attempts = 3),
    { hostname: "127.0.0.1", onEvent: (event) => events.push(event) },
  );
  for (let i = 0; i < 3; i++) {
    const response = await get(server, "/v2/rooms/orbit/ABCDEF");
    await response.body?.cancel();
    equal(response.status, 404);
  }
  const limited = await get(server, "/v2/rooms/orbit/ABCDEF");
  equal(limited.status, 429);
  const seconds = Number(limited.headers.get("retry-after"));
  ok(seconds >= 1 && seconds <= 20, `Retry-After ${seconds}`);
  deepEqual(await limited.json(), {
    message: `Join attempt rate limit exceeded. Try again in ${seconds} seconds.`,
    error_code: "RATE_LIMIT_EXCEEDED",
  });
  // The WebSocket join path draws from the same bucket.
  await using client = await connect(server);
  client.send(joinRoom("ABCDEF", "late"));
  equal((await client.next("RoomJoinFailed")).data.error_code, "RATE_LIMIT_EXCEEDED");
  // Both refusals are reported for metrics.
  deepEqual(events.filter((event) => event.type === "rate_limited"), [
    { type: "rate_limited", scope: "join" },
    { type: "rate_limited", scope: "join" },
  ]);
});

Deno.test("GET /v2/rooms?game_name= is 404 unless public_room_listing, and takes no token then", async () => {
  await using server = await serve((config) => config.rate_limit.max_join_attempts = 1);
  for (let i = 0; i < 3; i++) {
    const response = await get(server, "/v2/rooms?game_name=orbit");
    equal(response.status, 404);
    equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
    equal(await response.text(), "Not Found");
  }
  const lookup = await get(server, "/v2/rooms/orbit/ABCDEF");
  await lookup.body?.cancel();
  equal(lookup.status, 404, "the join bucket is still full");
});

Deno.test("GET /v2/rooms?game_name= lists rooms with seats, oldest first, when enabled", async () => {
  await using server = await serve((config) => config.security.public_room_listing = true);
  await using a = await connect(server);
  await using b = await connect(server);
  await using c = await connect(server);
  a.send({ type: "Authenticate", data: { app_id: "any" } });
  await a.next("Authenticated");
  ok((await a.next("ProtocolInfo")).data.capabilities.includes("room-listing"));
  a.send(joinRoom("ROOMAA", "a", { max_players: 2 }));
  await a.next("RoomJoined");
  b.send(joinRoom("ROOMBB", "b"));
  await b.next("RoomJoined");
  c.send(joinRoom("ROOMCC", "c"));
  await c.next("RoomJoined");
  c.send({ type: "LeaveRoom" }); // ROOMCC is now empty: not listed
  await c.next("RoomLeft");

  const response = await get(server, "/v2/rooms?game_name=orbit");
  equal(response.status, 200);
  equal(response.headers.get("cache-control"), "no-store");
  const body = await response.json();
  equal(body.game_name, "orbit");
  deepEqual(body.rooms.map((room: { room_code: string }) => room.room_code), ["ROOMAA", "ROOMBB"]);
  equal(body.rooms[0].max_players, 2);
  deepEqual(await (await get(server, "/v2/rooms?game_name=other")).json(), {
    game_name: "other",
    rooms: [],
  });
  for (const query of ["", "?game_name=", "?game_name=bad%21name"]) {
    const bad = await get(server, `/v2/rooms${query}`);
    equal(bad.status, 400, query);
    deepEqual(await bad.json(), {
      message: "game_name is required",
      error_code: "INVALID_GAME_NAME",
    });
  }
});

Deno.test("With auth: HTTP room routes refuse a wrong X-App-Secret with 401 and charge the Authenticate failure budget", async () => {
  // Before, a wrong secret answered `rooms: []` (lookup 404) and the right one listed the rooms,
  // charged only to the join bucket: an oracle for the secret outside max_auth_failures
  // (/tmp/s26/a/oracle.ts: 21 wrong guesses then the right one listed the room).
  await using server = await serve((config) => {
    withApps(config);
    config.security.public_room_listing = true;
    config.rate_limit.max_auth_failures = 5;
  });
  await using owner = await connect(server);
  owner.send(AUTH_OK);
  await owner.next("Authenticated");
  await owner.next("ProtocolInfo");
  owner.send(joinRoom(null, "mira"));
  const code: string = (await owner.next("RoomJoined")).data.room_code;
  const list = (secret?: string, app = "orbit-prod") =>
    fetch(`${server.url}/v2/rooms?game_name=orbit&app_id=${app}`, {
      headers: secret === undefined ? {} : { "x-app-secret": secret },
    });
  const lookup = (secret: string) =>
    fetch(`${server.url}/v2/rooms/orbit/${code}?app_id=orbit-prod`, {
      headers: { "x-app-secret": secret },
    });
  const right = "correct horse battery staple";
  const listed = await list(right);
  equal(listed.status, 200);
  equal((await listed.json()).rooms.length, 1);
  // Without a secret, or without an app: refused (or not found) without a charge, every time.
  for (let i = 0; i < 10; i++) {
    const missing = await list();
    equal(missing.status, 401);
    equal((await missing.json()).error_code, "UNAUTHORIZED");
    const unknown = await list(undefined, "who");
    equal(unknown.status, 401);
    equal((await unknown.json()).error_code, "INVALID_APP_ID");
    const noApp = await fetch(`${server.url}/v2/rooms?game_name=orbit`);
    deepEqual(await noApp.json(), { game_name: "orbit", rooms: [] });
  }
  // Wrong secrets (and an unknown app with a secret): 401, each charged to the address.
  for (let i = 0; i < 5; i++) {
    const wrong = await (i % 2 === 0 ? list(`guess-${i}`) : i === 1 ? lookup("guess") : list(
      "guess",
      "who",
    ));
    equal(wrong.status, 401, `guess ${i + 1}`);
    match((await wrong.json()).error_code, /^(UNAUTHORIZED|INVALID_APP_ID)$/);
  }
  // The budget is spent: the right secret is refused before it is checked, on both routes.
  for (const answer of [await list(right), await lookup(right)]) {
    equal(answer.status, 429);
    equal((await answer.json()).error_code, "RATE_LIMIT_EXCEEDED");
    ok(Number(answer.headers.get("retry-after")) >= 1);
  }
  // It is the budget Authenticate uses: a WebSocket client from the address is refused too.
  await using late = await connect(server);
  late.send(AUTH_OK);
  equal((await late.next("AuthenticationError")).data.error_code, "RATE_LIMIT_EXCEEDED");
});
