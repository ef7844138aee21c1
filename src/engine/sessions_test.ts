/**
 * Sessions: `Authenticate` and format negotiation (docs/spec/PROTOCOL.md §7.1.2–§7.1.5),
 * app authentication (docs/spec/PROTOCOL.md §7.1, docs/spec/SERVER.md §3.1–§3.3) and per-IP rate limits (§3.4,
 * docs/spec/PROTOCOL.md §7.13) in the pure engine: time is passed in, nothing sleeps.
 */
import { deepEqual, equal } from "node:assert/strict";
import type { ClientMessage } from "../protocol/messages.ts";
import type { AuthorizedApp } from "./app_auth.ts";
import { type Effect, Engine, type EngineEvent, type EngineOptions } from "./engine.ts";
import { RateLimits } from "./rate_limits.ts";
import {
  engineWith,
  first,
  join,
  P1,
  P2,
  P3,
  S1,
  spectate,
  summarize,
  testOptions,
} from "./testing.ts";

const T0 = Date.UTC(2026, 2, 4, 18, 0, 0);

const APPS: AuthorizedApp[] = [
  { appId: "open-app", appName: "Open App" },
  {
    appId: "orbit-prod",
    appSecret: "s3cret-value",
    appName: "Orbit Racers",
    maxRooms: 1,
    maxPlayersPerRoom: 4,
    rateLimitPerMinute: 3,
  },
];

function authEngine(overrides: Partial<EngineOptions> = {}): Engine {
  return new Engine(testOptions({
    auth: { required: true, apps: APPS, timeoutMs: 10_000, enforceSdkGate: false },
    ...overrides,
  }));
}

function authenticate(
  appId: string,
  extra: Partial<Extract<ClientMessage, { type: "Authenticate" }>["data"]> = {},
): ClientMessage {
  return { type: "Authenticate", data: { app_id: appId, ...extra } };
}

const PING: ClientMessage = { type: "Ping", data: undefined };

function events(effects: Effect[]): EngineEvent[] {
  return effects.flatMap((effect) => effect.kind === "event" ? [effect.event] : []);
}

function closes(effects: Effect[]): { code: number; reason: string }[] {
  return effects.flatMap((effect) =>
    effect.kind === "close" ? [{ code: effect.code, reason: effect.reason }] : []
  );
}

Deno.test("Engine with auth: any message before Authenticate gets AUTHENTICATION_REQUIRED and close 1008", () => {
  const engine = authEngine();
  engine.connect(P1, { ip: "10.0.0.1", now: T0 });
  const effects = engine.handle(P1, PING, T0);
  deepEqual(summarize(effects), ["p1 <- Error AUTHENTICATION_REQUIRED", "p1 closed 1008"]);
  deepEqual(first(effects, P1, "Error").data, {
    message: "Authentication required",
    error_code: "AUTHENTICATION_REQUIRED",
  });
  deepEqual(closes(effects), [{ code: 1008, reason: "Authentication required" }]);
  deepEqual(events(effects), [
    { type: "auth_failed", errorCode: "AUTHENTICATION_REQUIRED", connectionId: P1 },
  ]);
  engine.connect(P2, { ip: "10.0.0.1", now: T0 });
  for (const message of [join("ROOM01", "a"), spectate("ROOM01")]) {
    deepEqual(summarize(engine.handle(P2, message, T0)), [
      "p2 <- Error AUTHENTICATION_REQUIRED",
      "p2 closed 1008",
    ]);
  }
  equal(engine.stats().rooms, 0);
});

Deno.test("Engine with auth: a binary frame before Authenticate gets its own message and close 1008", () => {
  const engine = authEngine();
  engine.connect(P1, { now: T0 });
  const effects = engine.handleBinary(P1, new Uint8Array([1, 2]), T0);
  deepEqual(first(effects, P1, "Error").data, {
    message: "Authentication required before sending binary data",
    error_code: "AUTHENTICATION_REQUIRED",
  });
  deepEqual(closes(effects), [{ code: 1008, reason: "Authentication required" }]);
});

Deno.test("Engine with auth: an unknown app_id gets InvalidAppId and close 1008", () => {
  const engine = authEngine();
  for (const [id, appId] of [[P1, "nope"], [P2, "Open-App"], [P3, ""]] as const) {
    engine.connect(id, { now: T0 });
    const effects = engine.handle(id, authenticate(appId), T0);
    deepEqual(first(effects, id, "AuthenticationError").data, {
      error: "InvalidAppId",
      error_code: "INVALID_APP_ID",
    });
    deepEqual(closes(effects), [{ code: 1008, reason: "Authentication failed" }]);
    deepEqual(events(effects), [
      { type: "auth_failed", errorCode: "INVALID_APP_ID", connectionId: id },
    ]);
  }
});

Deno.test("Engine with auth: a missing or wrong app_secret gets InvalidAppSecret UNAUTHORIZED and close", () => {
  const engine = authEngine();
  const attempts: [string, string | undefined][] = [
    [P1, undefined],
    [P2, "s3cret-valuE"],
    [P3, "s3cret-value "],
  ];
  for (const [id, secret] of attempts) {
    engine.connect(id, { now: T0 });
    const effects = engine.handle(id, authenticate("orbit-prod", { app_secret: secret }), T0);
    deepEqual(first(effects, id, "AuthenticationError").data, {
      error: "InvalidAppSecret",
      error_code: "UNAUTHORIZED",
    });
    deepEqual(closes(effects), [{ code: 1008, reason: "Authentication failed" }]);
  }
});

Deno.test("Engine with auth: success sends Authenticated with the app's name and limits, then ProtocolInfo", () => {
  const engine = authEngine();
  engine.connect(P1, { now: T0 });
  const effects = engine.handle(
    P1,
    authenticate("orbit-prod", { app_secret: "s3cret-value", platform: "unity" }),
    T0,
  );
  deepEqual(summarize(effects), ["p1 <- Authenticated", "p1 <- ProtocolInfo"]);
  deepEqual(first(effects, P1, "Authenticated").data, {
    app_name: "Orbit Racers",
    rate_limits: { per_minute: 3, per_hour: 180, per_day: 4320 },
  });
  equal("organization" in first(effects, P1, "Authenticated").data, false);
  deepEqual(events(effects), [{ type: "authenticated", appId: "orbit-prod", connectionId: P1 }]);
  // Authenticated now: messages are served, and a second Authenticate is ignored.
  deepEqual(summarize(engine.handle(P1, PING, T0)), ["p1 <- Pong"]);
  deepEqual(engine.handle(P1, authenticate("nope"), T0), []);

  // An app without a secret ignores app_secret; without a limit it advertises 1000/min.
  engine.connect(P2, { now: T0 });
  const open = engine.handle(P2, authenticate("open-app", { app_secret: "whatever" }), T0);
  deepEqual(first(open, P2, "Authenticated").data, {
    app_name: "Open App",
    rate_limits: { per_minute: 1000, per_hour: 60000, per_day: 1440000 },
  });
});

Deno.test("Engine with auth: Authenticated.rate_limits saturate at the u32 maximum", () => {
  const engine = authEngine({
    auth: {
      required: true,
      apps: [{ appId: "big", appName: "Big", rateLimitPerMinute: 4_000_000 }],
      timeoutMs: 10_000,
      enforceSdkGate: false,
    },
  });
  engine.connect(P1, { now: T0 });
  deepEqual(
    first(engine.handle(P1, authenticate("big"), T0), P1, "Authenticated").data.rate_limits,
    {
      per_minute: 4_000_000,
      per_hour: 240_000_000,
      per_day: 4294967295,
    },
  );
});

Deno.test("Engine with auth: wrong secrets are charged to the IP, the app bucket counts only successes (issue 14 item 6)", () => {
  const engine = authEngine({
    rateLimits: new RateLimits({
      maxRoomCreations: 5,
      maxJoinAttempts: 20,
      maxAuthFailures: 2,
      windowMs: 60_000,
    }),
  });
  const ids = Array.from({ length: 9 }, (_, i) => `00000000-0000-4000-8000-00000000010${i}`);
  const attacker = "203.0.113.9";
  for (const [i, id] of ids.entries()) engine.connect(id, { ip: i < 4 ? attacker : "10.0.0.1" });
  const code = (id: string, extra = {}, now = T0) =>
    first(engine.handle(id, authenticate("orbit-prod", extra), now), id, "AuthenticationError")
      .data.error_code;
  // Two wrong secrets (no secret, a wrong one) use up the attacker's failure budget of 2 ...
  equal(code(ids[0]!), "UNAUTHORIZED");
  equal(code(ids[1]!, { app_secret: "x" }), "UNAUTHORIZED");
  // ... so its next attempt is refused before the secret is looked at, even a right one.
  const refused = engine.handle(
    ids[2]!,
    authenticate("orbit-prod", { app_secret: "s3cret-value" }),
    T0,
  );
  deepEqual(first(refused, ids[2]!, "AuthenticationError").data, {
    error: "RateLimitExceeded",
    error_code: "RATE_LIMIT_EXCEEDED",
  });
  deepEqual(closes(refused), [{ code: 1008, reason: "Authentication failed" }]);
  deepEqual(events(refused), [
    { type: "rate_limited", scope: "auth_failures" },
    { type: "auth_failed", errorCode: "RATE_LIMIT_EXCEEDED", connectionId: ids[2]! },
  ]);
  // Unknown app ids are failures too.
  equal(
    first(engine.handle(ids[3]!, authenticate("nope"), T0), ids[3]!, "AuthenticationError").data
      .error_code,
    "RATE_LIMIT_EXCEEDED",
  );
  // Other clients of the app are not locked out: the app bucket (capacity 3) was not touched.
  const ok = (id: string, now = T0) =>
    first(
      engine.handle(id, authenticate("orbit-prod", { app_secret: "s3cret-value" }), now),
      id,
      "Authenticated",
    );
  ok(ids[4]!);
  ok(ids[5]!);
  ok(ids[6]!);
  // The fourth authenticated connection within the window finds the app bucket empty.
  const limited = engine.handle(
    ids[7]!,
    authenticate("orbit-prod", { app_secret: "s3cret-value" }),
    T0 + 1000,
  );
  deepEqual(events(limited), [
    { type: "rate_limited", scope: "app" },
    { type: "auth_failed", errorCode: "RATE_LIMIT_EXCEEDED", connectionId: ids[7]! },
  ]);
  // One app token comes back every 20 s.
  ok(ids[8]!, T0 + 20_000);
});

Deno.test("Engine.expireAuthentication() closes unauthenticated connections at the deadline", () => {
  const engine = authEngine();
  engine.connect(P1, { now: T0 });
  engine.connect(P2, { now: T0 + 1000 });
  engine.connect(P3, { now: T0 + 2000 });
  engine.handle(P2, authenticate("open-app"), T0 + 1500);
  deepEqual(engine.expireAuthentication(T0 + 9_999), []);
  const expired = engine.expireAuthentication(T0 + 10_000);
  deepEqual(summarize(expired), ["p1 <- Error AUTHENTICATION_TIMEOUT", "p1 closed 1008"]);
  deepEqual(first(expired, P1, "Error").data, {
    message: "Authentication timeout - must authenticate within 10 seconds",
    error_code: "AUTHENTICATION_TIMEOUT",
  });
  deepEqual(closes(expired), [{ code: 1008, reason: "Authentication timeout" }]);
  deepEqual(events(expired), [
    { type: "auth_failed", errorCode: "AUTHENTICATION_TIMEOUT", connectionId: P1 },
  ]);
  // The hub tears the connection down after the close; expiry happens once.
  engine.disconnect(P1, T0 + 10_000);
  deepEqual(engine.expireAuthentication(T0 + 10_500), []);
  // The maintenance sweep enforces deadlines too; P2 authenticated in time and stays.
  deepEqual(summarize(engine.sweep(T0 + 60_000)), [
    "p3 <- Error AUTHENTICATION_TIMEOUT",
    "p3 closed 1008",
  ]);
});

Deno.test("Engine with auth disabled has no deadline and answers Authenticate for any app", () => {
  const engine = new Engine(testOptions({
    auth: { required: false, apps: APPS, timeoutMs: 10_000, enforceSdkGate: true },
  }));
  engine.connect(P1, { now: T0 });
  deepEqual(engine.expireAuthentication(T0 + 3_600_000), []);
  deepEqual(summarize(engine.handle(P1, PING, T0)), ["p1 <- Pong"]);
  // Unknown app, wrong secret and an SDK below the minimum: all accepted without checks.
  const effects = engine.handle(
    P1,
    authenticate("orbit-prod", { app_secret: "wrong", platform: "unity", sdk_version: "0.1.0" }),
    T0,
  );
  deepEqual(first(effects, P1, "Authenticated").data.app_name, "default");
});

Deno.test("Engine SDK gate (enforced): refusal keeps the socket open and unauthenticated", () => {
  const engine = authEngine({
    auth: { required: true, apps: APPS, timeoutMs: 10_000, enforceSdkGate: true },
  });
  engine.connect(P1, { now: T0 });
  const refused = engine.handle(
    P1,
    authenticate("open-app", { platform: "Unity", sdk_version: "1.9.0" }),
    T0,
  );
  deepEqual(summarize(refused), ["p1 <- AuthenticationError SDK_VERSION_UNSUPPORTED"]);
  deepEqual(first(refused, P1, "AuthenticationError").data, {
    error:
      "SDK version `1.9.0` for platform `Unity` is below the minimum supported version `1.10.0`",
    error_code: "SDK_VERSION_UNSUPPORTED",
  });
  // Still unauthenticated, and the deadline still runs from connect.
  deepEqual(engine.expireAuthentication(T0 + 9_000), []);
  const retry = engine.handle(
    P1,
    authenticate("open-app", { platform: "Unity", sdk_version: "1.12.0" }),
    T0 + 5000,
  );
  deepEqual(summarize(retry), ["p1 <- Authenticated", "p1 <- ProtocolInfo"]);
  deepEqual(engine.expireAuthentication(T0 + 20_000), []);

  engine.connect(P2, { now: T0 });
  equal(
    first(engine.handle(P2, authenticate("open-app"), T0), P2, "AuthenticationError").data.error,
    "SDK platform is required for compatibility validation",
  );
  engine.connect(P3, { now: T0 });
  equal(
    first(engine.handle(P3, PING, T0), P3, "Error").data.error_code,
    "AUTHENTICATION_REQUIRED",
  );
  engine.disconnect(P3, T0); // what the hub does after the close
  deepEqual(summarize(engine.expireAuthentication(T0 + 10_000)), [
    "p2 <- Error AUTHENTICATION_TIMEOUT",
    "p2 closed 1008",
  ]);
});

Deno.test("Engine SDK gate retries take app tokens", () => {
  const engine = authEngine({
    auth: { required: true, apps: APPS, timeoutMs: 10_000, enforceSdkGate: true },
  });
  engine.connect(P1, { now: T0 });
  const bad = authenticate("orbit-prod", {
    app_secret: "s3cret-value",
    platform: "unity",
    sdk_version: "1.0.0",
  });
  for (let i = 0; i < 3; i++) {
    equal(
      first(engine.handle(P1, bad, T0), P1, "AuthenticationError").data.error_code,
      "SDK_VERSION_UNSUPPORTED",
    );
  }
  const limited = engine.handle(P1, bad, T0);
  equal(first(limited, P1, "AuthenticationError").data.error_code, "RATE_LIMIT_EXCEEDED");
  deepEqual(closes(limited), [{ code: 1008, reason: "Authentication failed" }]);
});

function authenticated(engine: Engine, id: string, appId: string, ip = "10.0.0.1"): void {
  engine.connect(id, { ip, now: T0 });
  const secret = appId === "orbit-prod" ? { app_secret: "s3cret-value" } : {};
  first(engine.handle(id, authenticate(appId, secret), T0), id, "Authenticated");
}

Deno.test("Engine per-app max_players_per_room caps the default and refuses larger rooms", () => {
  const engine = authEngine();
  authenticated(engine, P1, "orbit-prod");
  authenticated(engine, P2, "orbit-prod");
  authenticated(engine, P3, "open-app");
  const refused = engine.handle(P1, join(undefined, "a", { max_players: 5 }), T0);
  deepEqual(first(refused, P1, "RoomJoinFailed").data, {
    reason: "Max players cannot exceed 4",
    error_code: "INVALID_INPUT",
  });
  // The default of 8 is capped to 4.
  equal(first(engine.handle(P1, join(undefined, "a"), T0), P1, "RoomJoined").data.max_players, 4);
  // Other apps are not capped.
  equal(first(engine.handle(P3, join(undefined, "c"), T0), P3, "RoomJoined").data.max_players, 8);
  // Validated also when joining an existing room (docs/spec/PROTOCOL.md §7.2.1 step 4).
  equal(
    first(engine.handle(P2, join("CODE01", "b", { max_players: 9 }), T0), P2, "RoomJoinFailed").data
      .reason,
    "Max players cannot exceed 4",
  );
  equal(
    first(engine.handle(P2, join("CODE01", "b", { max_players: 3 }), T0), P2, "RoomJoined").data
      .max_players,
    4,
  );
});

Deno.test("Engine.creationSummary() is the lookup summary the created room has (a cluster's claim, docs/spec/SERVER.md §8.3)", () => {
  const engine = authEngine({ relayTypeByGame: { chess: "relay-tcp" } });
  const cases: [string, string, Partial<Extract<ClientMessage, { type: "JoinRoom" }>["data"]>][] = [
    ["orbit-prod", "orbit", {}], // the app's max_players_per_room caps the default
    ["open-app", "orbit", {}], // the engine's default
    ["open-app", "chess", { max_players: 1 }], // the game's relay type; one seat: waiting
    ["open-app", "chess", { supports_authority: false, authority_handover: true }],
  ];
  cases.forEach(([appId, game, extra], i) => {
    const id = `summary-${i}`;
    authenticated(engine, id, appId);
    const code = `SUMMA${i}`;
    const data = { game_name: game, room_code: code, player_name: "Mira", ...extra };
    const before = engine.creationSummary(id, data, code);
    first(engine.handle(id, { type: "JoinRoom", data }, T0), id, "RoomJoined");
    deepEqual(before, engine.lookup(`${appId}\u0001${game}`, code), `case ${i}`);
  });
  equal(engine.creationSummary("nobody", { game_name: "orbit", player_name: "x" }, "X"), undefined);
});

Deno.test("Engine per-app max_rooms counts rooms created by the app's connections until deleted", () => {
  const engine = authEngine({ emptyRoomTimeoutMs: 0 });
  authenticated(engine, P1, "orbit-prod");
  authenticated(engine, P2, "orbit-prod");
  authenticated(engine, P3, "open-app");
  first(engine.handle(P1, join("APP001", "a"), T0), P1, "RoomJoined");
  const refused = engine.handle(P2, join(undefined, "b"), T0);
  deepEqual(first(refused, P2, "RoomJoinFailed").data, {
    reason: "App `orbit-prod` already has 1 rooms (limit 1)",
    error_code: "MAX_ROOMS_PER_GAME_EXCEEDED",
  });
  equal(
    first(engine.handle(P2, join("NEW001", "b"), T0), P2, "RoomJoinFailed").data.error_code,
    "MAX_ROOMS_PER_GAME_EXCEEDED",
  );
  // Joining an existing room is not creating; other apps create freely.
  first(engine.handle(P3, join(undefined, "c"), T0), P3, "RoomJoined");
  engine.handle(P3, { type: "LeaveRoom", data: undefined }, T0);
  first(engine.handle(P2, join("APP001", "b"), T0), P2, "RoomJoined");
  // An empty room does not keep the cap full: a creation reclaims (deletes) it first
  // (issue 14 item 7).
  engine.handle(P1, { type: "LeaveRoom", data: undefined }, T0);
  engine.handle(P2, { type: "LeaveRoom", data: undefined }, T0);
  const created = engine.handle(P1, join(undefined, "a"), T0);
  first(created, P1, "RoomJoined");
  deepEqual(
    events(created).filter((e) => e.type === "room_deleted").map((e) => e.roomCode),
    ["APP001"],
  );
  equal(engine.lookup("orbit-prod\u0001orbit", "APP001"), undefined);
});

function limitedEngine(creations: number, joins: number): Engine {
  return new Engine(testOptions({
    rateLimits: new RateLimits({
      maxRoomCreations: creations,
      maxJoinAttempts: joins,
      windowMs: 60_000,
    }),
  }));
}

Deno.test("Engine creation bucket: JoinRoom without a code takes a creation token first", () => {
  const engine = limitedEngine(2, 20);
  engine.connect(P1, { ip: "10.0.0.1" });
  engine.connect(P2, { ip: "10.0.0.1" });
  engine.connect(P3, { ip: "10.0.0.2" });
  // Taken before any validation and never returned: an invalid game name uses a token.
  equal(
    first(
      engine.handle(P1, { type: "JoinRoom", data: { game_name: "", player_name: "a" } }, T0),
      P1,
      "RoomJoinFailed",
    ).data.error_code,
    "INVALID_GAME_NAME",
  );
  first(engine.handle(P1, join(undefined, "a"), T0), P1, "RoomJoined");
  const refused = engine.handle(P2, join(undefined, "b"), T0 + 1000);
  deepEqual(first(refused, P2, "RoomJoinFailed").data, {
    reason: "Room creation rate limit exceeded. Try again in 29 seconds.",
    error_code: "RATE_LIMIT_EXCEEDED",
  });
  deepEqual(events(refused), [
    { type: "join_failed", errorCode: "RATE_LIMIT_EXCEEDED", creating: true },
    { type: "rate_limited", scope: "create" },
  ]);
  // Another IP has its own bucket; the limited IP gets a token back after 30 s.
  first(engine.handle(P3, join(undefined, "c"), T0 + 1000), P3, "RoomJoined");
  first(engine.handle(P2, join(undefined, "b"), T0 + 30_000), P2, "RoomJoined");
});

Deno.test("Engine join bucket: JoinRoom with a code and JoinAsSpectator take join tokens", () => {
  const engine = limitedEngine(5, 3);
  for (const id of [P1, P2, P3, S1]) engine.connect(id, { ip: "10.0.0.9" });
  first(engine.handle(P1, join("ROOM01", "a"), T0), P1, "RoomJoined"); // join + creation token
  first(engine.handle(P2, join("ROOM01", "b"), T0), P2, "RoomJoined");
  first(engine.handle(S1, spectate("ROOM01"), T0), S1, "SpectatorJoined");
  const refused = engine.handle(P3, join("ROOM01", "c"), T0);
  deepEqual(first(refused, P3, "RoomJoinFailed").data, {
    reason: "Join attempt rate limit exceeded. Try again in 20 seconds.",
    error_code: "RATE_LIMIT_EXCEEDED",
  });
  const spectator = engine.handle(P3, spectate("ROOM01"), T0);
  deepEqual(summarize(spectator), ["p3 <- SpectatorJoinFailed RATE_LIMIT_EXCEEDED"]);
  deepEqual(
    first(spectator, P3, "SpectatorJoinFailed").data.reason,
    "Join attempt rate limit exceeded. Try again in 20 seconds.",
  );
  deepEqual(events(spectator), [{ type: "rate_limited", scope: "join" }]);
});

Deno.test("Engine: JoinRoom with an unknown code also needs a creation token", () => {
  const engine = limitedEngine(1, 20);
  engine.connect(P1, { ip: "10.0.0.1" });
  engine.connect(P2, { ip: "10.0.0.1" });
  engine.connect(P3, { ip: "10.0.0.1" });
  first(engine.handle(P1, join("ROOM01", "a"), T0), P1, "RoomJoined");
  // Joining the existing room needs no creation token...
  first(engine.handle(P2, join("ROOM01", "b"), T0), P2, "RoomJoined");
  // ...creating another one does.
  deepEqual(first(engine.handle(P3, join("ROOM02", "c"), T0), P3, "RoomJoinFailed").data, {
    reason: "Room creation rate limit exceeded. Try again in 60 seconds.",
    error_code: "RATE_LIMIT_EXCEEDED",
  });
});

Deno.test("Engine.sweep() forgets idle rate-limit buckets", () => {
  const limits = new RateLimits({ maxRoomCreations: 5, maxJoinAttempts: 20, windowMs: 60_000 });
  const engine = new Engine(testOptions({ rateLimits: limits }));
  for (let i = 0; i < 100; i++) {
    const id = `conn-${i}`;
    engine.connect(id, { ip: `192.0.2.${i}` });
    engine.handle(id, join(undefined, `p${i}`), T0);
  }
  equal(limits.size, 100);
  engine.sweep(T0 + 60_000);
  equal(limits.size, 100, "refilling buckets are kept");
  engine.sweep(T0 + 12_000 + 60_001);
  equal(limits.size, 0);
});

Deno.test("Engine.handle() Authenticate is answered once, negotiating the format", () => {
  const engine = engineWith([P1, P2]);
  const effects = engine.handle(P1, {
    type: "Authenticate",
    data: {
      app_id: "anything",
      platform: "Unity",
      sdk_version: "1.12.0",
      game_data_format: "rkyv",
    },
  }, T0);
  deepEqual(summarize(effects), [
    "p1 <- Error UNSUPPORTED_GAME_DATA_FORMAT",
    "p1 <- Authenticated",
    "p1 <- ProtocolInfo",
  ]);
  equal(
    first(effects, P1, "Error").data.message,
    "Requested game data format Rkyv is not supported. Server supports: Json. Falling back to JSON.",
  );
  deepEqual(first(effects, P1, "Authenticated").data, {
    app_name: "default",
    rate_limits: { per_minute: 1000, per_hour: 60000, per_day: 1440000 },
  });
  const info = first(effects, P1, "ProtocolInfo").data;
  equal(info.platform, "Unity");
  equal(info.minimum_version, "1.10.0");
  equal(info.recommended_version, "1.12.0");
  equal(info.notes, "Upgrade to 1.12.x.");
  deepEqual(info.capabilities, [
    "reconnection",
    "spectator-mode",
    "rate-limits-v2",
    "relay-matchbox",
    "targeted-game-data",
  ]);
  deepEqual(info.game_data_formats, ["json"]);
  equal(info.player_name_rules?.max_length, 32);
  deepEqual(engine.handle(P1, { type: "Authenticate", data: { app_id: "again" } }, T0), []);
  // Without a platform only the _default capabilities and extensions are listed.
  const plain = first(
    engine.handle(P2, { type: "Authenticate", data: { app_id: "" } }, T0),
    P2,
    "ProtocolInfo",
  );
  equal(plain.data.minimum_version, undefined);
  deepEqual(plain.data.capabilities, [
    "reconnection",
    "spectator-mode",
    "rate-limits-v2",
    "targeted-game-data",
  ]);
});
