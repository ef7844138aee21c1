/**
 * Engine limits against hostile clients (issue 14 items 4, 5, 7, 8, 12): spectator messages of
 * bounded size and the spectator cap, the reconnect bucket and bounded token records, empty rooms
 * reclaimed at the caps and the per-IP share of a game, the global replay budget, and app
 * isolation. No sockets, no sleeps: time is passed in.
 */
import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import type { ClientMessage, ServerMessage } from "../protocol/messages.ts";
import { encodeServerMessage } from "../protocol/codec.ts";
import type { AuthorizedApp } from "./app_auth.ts";
import { type Effect, Engine, type EngineOptions } from "./engine.ts";
import { RateLimits } from "./rate_limits.ts";
import { MAX_INVALID_RECORDS_PER_SEAT, MAX_TOKEN_BYTES } from "./reconnection.ts";
import { SPECTATOR_LIST_LIMIT } from "./spectators.ts";
import {
  bare,
  C1,
  C2,
  engineWith,
  first,
  join,
  P1,
  P2,
  P3,
  prng,
  reconnectingEngineWith,
  S1,
  sentTo,
  spectate,
  testOptions,
} from "./testing.ts";

const T0 = Date.UTC(2026, 11, 4, 18, 0, 0);
const WINDOW = 300_000;

/** A deterministic connection id number `n` (valid UUID). */
function id(n: number): string {
  return `00000000-0000-4000-9000-${n.toString(16).padStart(12, "0")}`;
}

function reconnect(player_id: string, room_id: string, auth_token: string): ClientMessage {
  return { type: "Reconnect", data: { player_id, room_id, auth_token } };
}

/**
 * Asserts that `joined`'s seat is over: its token, sent by `conn` at `now`, gets
 * `RECONNECTION_EXPIRED` (docs/spec/PROTOCOL.md §7.11.3), as at the end of its window.
 */
function assertExpired(
  engine: Engine,
  conn: string,
  playerId: string,
  joined: { room_id: string; reconnection_token?: string },
  now: number,
): void {
  deepEqual(
    first(
      engine.handle(conn, reconnect(playerId, joined.room_id, joined.reconnection_token!), now),
      conn,
      "ReconnectionFailed",
    ).data,
    { reason: "Reconnection window has expired", error_code: "RECONNECTION_EXPIRED" },
  );
}

function bytesTo(effects: Effect[], to: string): number {
  return sentTo(effects, to).reduce((sum, m) => sum + encodeServerMessage(m).length, 0);
}

// ---------------------------------------------------------------------------------------------
// Item 4: spectator amplification

Deno.test("Spectator joins and leaves cost each member a bounded message; the joiner gets the whole list", () => {
  const engine = engineWith([P1]);
  first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined");
  const perJoin: number[] = [];
  const n = 3 * SPECTATOR_LIST_LIMIT;
  for (let i = 1; i <= n; i++) {
    engine.connect(id(i));
    const effects = engine.handle(id(i), spectate("ROOM01", `w${i}`), T0);
    equal(first(effects, id(i), "SpectatorJoined").data.current_spectators.length, i);
    const news = first(effects, P1, "NewSpectatorJoined").data;
    equal(news.spectator.id, id(i));
    equal(news.current_spectators.length, Math.min(i, SPECTATOR_LIST_LIMIT));
    perJoin.push(bytesTo(effects, P1));
  }
  // Past the bound every join costs the player the same number of bytes, whatever the count.
  const late = perJoin.slice(SPECTATOR_LIST_LIMIT);
  ok(late.every((bytes) => bytes === late[0]), `bytes per join: ${late.join(",")}`);
  const left = engine.disconnect(id(n), T0);
  equal(
    first(left, P1, "SpectatorDisconnected").data.current_spectators.length,
    SPECTATOR_LIST_LIMIT,
  );
});

Deno.test("max_spectators_per_room refuses the spectator past the cap with TOO_MANY_SPECTATORS", () => {
  const engine = engineWith([P1, S1, id(1), id(2)], { maxSpectatorsPerRoom: 2 });
  engine.handle(P1, join("ROOM01", "Mira"), T0);
  first(engine.handle(S1, spectate("ROOM01", "a"), T0), S1, "SpectatorJoined");
  first(engine.handle(id(1), spectate("ROOM01", "b"), T0), id(1), "SpectatorJoined");
  const refused = engine.handle(id(2), spectate("ROOM01", "c"), T0);
  deepEqual(first(refused, id(2), "SpectatorJoinFailed").data, {
    reason: "Spectator limit reached",
    error_code: "TOO_MANY_SPECTATORS",
  });
  deepEqual(sentTo(refused, P1), []);
  // A place frees up when one leaves.
  engine.handle(S1, bare("LeaveSpectator"), T0);
  first(engine.handle(id(2), spectate("ROOM01", "c"), T0), id(2), "SpectatorJoined");
});

// ---------------------------------------------------------------------------------------------
// Item 5: Reconnect

Deno.test("Reconnect takes from the per-IP reconnect bucket; the connection stays open", () => {
  const engine = new Engine(testOptions({
    enableReconnection: true,
    rateLimits: new RateLimits({
      maxRoomCreations: 5,
      maxJoinAttempts: 20,
      maxReconnectAttempts: 2,
      windowMs: 60_000,
    }),
  }));
  engine.connect(C1, { ip: "203.0.113.7" });
  engine.connect(C2, { ip: "203.0.113.8" });
  const attempt = (conn: string) =>
    engine.handle(conn, reconnect(P1, "room-1", "x".repeat(43)), T0);
  equal(first(attempt(C1), C1, "ReconnectionFailed").data.error_code, "RECONNECTION_TOKEN_INVALID");
  equal(first(attempt(C1), C1, "ReconnectionFailed").data.error_code, "RECONNECTION_TOKEN_INVALID");
  const limited = attempt(C1);
  deepEqual(first(limited, C1, "ReconnectionFailed").data, {
    reason: "Reconnect attempt rate limit exceeded. Try again in 30 seconds.",
    error_code: "RATE_LIMIT_EXCEEDED",
  });
  ok(!limited.some((effect) => effect.kind === "close"));
  // Another address has its own bucket.
  equal(first(attempt(C2), C2, "ReconnectionFailed").data.error_code, "RECONNECTION_TOKEN_INVALID");
});

Deno.test("Reconnect refuses a token longer than 256 bytes even when it starts with the right one", () => {
  const engine = engineWith([P1, C1], { enableReconnection: true });
  const token = first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined").data
    .reconnection_token!;
  engine.disconnect(P1, T0);
  const long = token + "x".repeat(65_536);
  equal(
    first(engine.handle(C1, reconnect(P1, "room-1", long), T0), C1, "ReconnectionFailed").data
      .error_code,
    "RECONNECTION_TOKEN_INVALID",
  );
  equal(
    first(
      engine.handle(C1, reconnect(P1, "room-1", "é".repeat(MAX_TOKEN_BYTES / 2 + 1)), T0),
      C1,
      "ReconnectionFailed",
    )
      .data.error_code,
    "RECONNECTION_TOKEN_INVALID",
  );
  first(engine.handle(C1, reconnect(P1, "room-1", token), T0), C1, "Reconnected");
});

Deno.test("A takeover loop keeps a bounded number of token records per seat; a window later none", () => {
  const engine = engineWith([P1], { enableReconnection: true });
  let token = first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined").data
    .reconnection_token!;
  const used: string[] = [];
  for (let i = 1; i <= 50; i++) {
    engine.connect(id(i));
    const effects = engine.handle(id(i), reconnect(P1, "room-1", token), T0 + i);
    used.push(token);
    token = first(effects, id(i), "Reconnected").data.reconnection_token;
    ok(engine.stats().tokenRecords <= 1 + MAX_INVALID_RECORDS_PER_SEAT);
  }
  // The newest used token still gets the precise answer (a known, used record: invalid).
  engine.connect(id(100));
  equal(
    first(
      engine.handle(id(100), reconnect(P1, "room-1", used.at(-1)!), T0 + 60),
      id(100),
      "ReconnectionFailed",
    )
      .data.error_code,
    "RECONNECTION_TOKEN_INVALID",
  );
  engine.tick(T0 + 50 + WINDOW);
  equal(engine.stats().tokenRecords, 1, "only the valid record is left");
  engine.connect(id(101));
  first(
    engine.handle(id(101), reconnect(P1, "room-1", token), T0 + 60 + WINDOW),
    id(101),
    "Reconnected",
  );
});

Deno.test("max_token_records forgets the records invalidated longest ago, never a valid one", () => {
  const engine = engineWith([], { enableReconnection: true, maxTokenRecords: 10 });
  const tokens: string[] = [];
  for (let i = 1; i <= 30; i++) {
    engine.connect(id(i));
    tokens.push(
      first(
        engine.handle(id(i), join(`ROOM${String(i).padStart(2, "0")}`, "p"), T0),
        id(i),
        "RoomJoined",
      )
        .data.reconnection_token!,
    );
    if (i <= 25) engine.handle(id(i), bare("LeaveRoom"), T0 + i); // invalidates its token
  }
  ok(engine.stats().tokenRecords <= 10, `records: ${engine.stats().tokenRecords}`);
  // The five valid tokens all still work.
  for (let i = 26; i <= 30; i++) {
    engine.disconnect(id(i), T0 + 100);
    engine.connect(id(1000 + i));
    first(
      engine.handle(id(1000 + i), reconnect(id(i), `room-${i}`, tokens[i - 1]!), T0 + 101),
      id(1000 + i),
      "Reconnected",
    );
  }
});

// ---------------------------------------------------------------------------------------------
// Item 7: room namespace squatting

Deno.test("Empty rooms are reclaimed at max_rooms_per_game before unattended ones; rooms with a connected player count", () => {
  const engine = engineWith([P1, P2, P3, C1], { maxRoomsPerGame: 2, enableReconnection: true });
  first(engine.handle(P1, join("ROOM01", "a"), T0), P1, "RoomJoined");
  first(engine.handle(P2, join("ROOM02", "b"), T0), P2, "RoomJoined");
  equal(
    first(engine.handle(P3, join("ROOM03", "c"), T0), P3, "RoomJoinFailed").data.error_code,
    "MAX_ROOMS_PER_GAME_EXCEEDED",
  );
  // ROOM02 keeps only a held seat (unattended) first; ROOM01 empties later.
  engine.disconnect(P2, T0 + 1);
  engine.handle(P1, bare("LeaveRoom"), T0 + 2);
  // The empty room (no seat, no held seat) is deleted first, although ROOM02 waited longer.
  const created = engine.handle(P3, join("ROOM03", "c"), T0 + 3);
  first(created, P3, "RoomJoined");
  equal(engine.lookup("orbit", "ROOM01"), undefined);
  equal(engine.lookup("orbit", "ROOM02")?.players, 1, "the held seat's room stays");
  ok(created.some((e) => e.kind === "event" && e.event.type === "room_deleted"));
  equal(engine.stats().rooms, 2);
  equal(engine.stats().unattendedReclaims, 0);
  // With no empty room left, the unattended one is reclaimed next.
  first(engine.handle(C1, join("ROOM04", "d"), T0 + 4), C1, "RoomJoined");
  equal(engine.lookup("orbit", "ROOM02"), undefined);
  deepEqual([engine.stats().rooms, engine.stats().unattendedReclaims], [2, 1]);
});

Deno.test("max_rooms_per_ip bounds one address's share of a game; its empty rooms are reclaimed", () => {
  const engine = new Engine(testOptions({ maxRoomsPerIp: 2 }));
  for (let i = 1; i <= 4; i++) engine.connect(id(i), { ip: "198.51.100.1" });
  engine.connect(P3, { ip: "198.51.100.2" });
  first(engine.handle(id(1), join("ROOM01", "a"), T0), id(1), "RoomJoined");
  first(engine.handle(id(2), join("ROOM02", "a"), T0), id(2), "RoomJoined");
  deepEqual(first(engine.handle(id(3), join("ROOM03", "a"), T0), id(3), "RoomJoinFailed").data, {
    reason: "Your address already has 2 rooms of game `orbit` (limit 2)",
    error_code: "MAX_ROOMS_PER_GAME_EXCEEDED",
  });
  // Other games and other addresses are not affected; joining is not creating.
  first(engine.handle(id(3), join("ROOM03", "a", { game_name: "other" }), T0), id(3), "RoomJoined");
  first(engine.handle(P3, join("ROOM04", "b"), T0), P3, "RoomJoined");
  first(engine.handle(id(4), join("ROOM04", "c"), T0), id(4), "RoomJoined");
  engine.handle(id(1), bare("LeaveRoom"), T0);
  engine.connect(id(5), { ip: "198.51.100.1" });
  first(engine.handle(id(5), join("ROOM05", "a"), T0), id(5), "RoomJoined");
  equal(engine.lookup("orbit", "ROOM01"), undefined);
});

// ---------------------------------------------------------------------------------------------
// Item 8: global replay budget

Deno.test("The global replay budget drops the oldest buffered messages across seats first", () => {
  const payload = "x".repeat(500);
  const frameSize = encodeServerMessage({
    type: "GameData",
    data: { from_player: P1, data: payload },
  } as ServerMessage).length;
  const engine = engineWith([P1, P2, P3, C1, C2], {
    enableReconnection: true,
    eventBufferTotalMaxBytes: 3 * frameSize + 10,
  });
  const tokens: Record<string, string> = {};
  for (const p of [P1, P2, P3]) {
    tokens[p] = first(
      engine.handle(p, join("ROOM01", p.slice(-4), { max_players: 3 }), T0),
      p,
      "RoomJoined",
    )
      .data.reconnection_token!;
  }
  const send = (n: number) =>
    engine.handle(P1, { type: "GameData", data: { data: payload + n } } as ClientMessage, T0);
  engine.disconnect(P2, T0);
  send(1);
  send(2);
  send(3);
  // The LobbyState of a full room is not in the budget test: only GameData was buffered.
  equal(engine.stats().replayTruncations, 0);
  engine.disconnect(P3, T0);
  send(4); // P2's m1 makes room for P2's m4, then P2's m2 for P3's m4
  ok(engine.stats().replayBufferBytes <= 3 * frameSize + 10);
  equal(engine.stats().replayTruncations, 2);
  const back3 = engine.handle(C2, reconnect(P3, "room-1", tokens[P3]!), T0);
  const three = first(back3, C2, "Reconnected").data;
  equal(three.replay_truncated, false);
  equal(three.missed_events.length, 1);
  const back2 = engine.handle(C1, reconnect(P2, "room-1", tokens[P2]!), T0);
  const two = first(back2, C1, "Reconnected").data;
  equal(two.replay_truncated, true);
  deepEqual(
    two.missed_events.map((event) => JSON.parse(event.text)).map((m) =>
      m.type === "GameData" ? (m.data.data as string).slice(500) : m.type
    ),
    ["3", "4", "PlayerReconnected"],
  );
  equal(engine.stats().replayBufferBytes, 0, "bytes come back when holds end");
});

// ---------------------------------------------------------------------------------------------
// Item 12: app isolation and privacy

const APPS: AuthorizedApp[] = [{ appId: "app-a", appName: "A" }, { appId: "app-b", appName: "B" }];

function authed(engine: Engine, conn: string, appId: string): void {
  engine.connect(conn, { ip: "10.0.0.1", now: T0 });
  first(
    engine.handle(conn, { type: "Authenticate", data: { app_id: appId } }, T0),
    conn,
    "Authenticated",
  );
}

Deno.test("With auth, each app has its own rooms: join, spectate and reconnect never reach another app's", () => {
  const options: Partial<EngineOptions> = {
    enableReconnection: true,
    auth: { required: true, apps: APPS, timeoutMs: 10_000, enforceSdkGate: false },
  };
  const engine = new Engine(testOptions(options));
  authed(engine, P1, "app-a");
  authed(engine, P2, "app-b");
  authed(engine, S1, "app-b");
  authed(engine, C1, "app-b");
  const a = first(engine.handle(P1, join("ROOM01", "mira"), T0), P1, "RoomJoined").data;
  equal(
    first(engine.handle(S1, spectate("ROOM01"), T0), S1, "SpectatorJoinFailed").data.error_code,
    "ROOM_NOT_FOUND",
  );
  // The same code in app B is another room: B's join-or-create makes its own.
  const b = first(engine.handle(P2, join("ROOM01", "mira"), T0), P2, "RoomJoined").data;
  notEqual(b.room_id, a.room_id);
  equal(b.current_players.length, 1);
  const gameData = engine.handle(
    P2,
    { type: "GameData", data: { data: "hi" } } as ClientMessage,
    T0,
  );
  deepEqual(sentTo(gameData, P1), []);
  engine.disconnect(P1, T0);
  equal(
    first(
      engine.handle(C1, reconnect(P1, a.room_id, a.reconnection_token!), T0),
      C1,
      "ReconnectionFailed",
    )
      .data.error_code,
    "RECONNECTION_TOKEN_INVALID",
  );
});

Deno.test("Spectators never see players' connection_info; players do", () => {
  const engine = engineWith([P1, P2, S1]);
  const info = { type: "direct" as const, host: "192.0.2.10", port: 7777 };
  engine.handle(P1, join("ROOM01", "mira", { max_players: 2 }), T0);
  engine.handle(P2, join("ROOM01", "tobias"), T0);
  for (const p of [P1, P2]) {
    engine.handle(
      p,
      { type: "ProvideConnectionInfo", data: { connection_info: info } } as ClientMessage,
      T0,
    );
  }
  const watched = first(engine.handle(S1, spectate("ROOM01"), T0), S1, "SpectatorJoined").data;
  ok(watched.current_players.every((player) => player.connection_info === undefined));
  engine.handle(P1, bare("PlayerReady"), T0);
  const starting = engine.handle(P2, bare("PlayerReady"), T0);
  ok(
    first(starting, S1, "GameStarting").data.peer_connections.every((p) =>
      p.connection_info === undefined
    ),
  );
  deepEqual(first(starting, P1, "GameStarting").data.peer_connections[1]!.connection_info, info);
  ok(!JSON.stringify(sentTo(starting, S1)).includes("192.0.2.10"));
});

Deno.test("Random walks keep the replay bytes within the global budget and give them all back", () => {
  let drops = 0;
  for (let seed = 1; seed <= 20; seed++) {
    const random = prng(seed);
    const budget = 4000;
    const engine = engineWith([], { enableReconnection: true, eventBufferTotalMaxBytes: budget });
    const players = Array.from({ length: 6 }, (_, i) => id(i + 1));
    const tokens = new Map<string, string>();
    const live = new Map<string, string>(); // player id → connection id
    let conns = 100;
    for (const p of players) {
      engine.connect(p);
      tokens.set(
        p,
        first(engine.handle(p, join("WALK01", p.slice(-4)), T0), p, "RoomJoined").data
          .reconnection_token!,
      );
      live.set(p, p);
    }
    for (let step = 0; step < 300; step++) {
      const p = players[Math.floor(random() * players.length)]!;
      const conn = live.get(p);
      const roll = random();
      if (conn !== undefined && roll < 0.2) {
        engine.disconnect(conn, T0 + step);
        live.delete(p);
      } else if (conn === undefined && roll < 0.4) {
        const fresh = id(++conns);
        engine.connect(fresh);
        const effects = engine.handle(fresh, reconnect(p, "room-1", tokens.get(p)!), T0 + step);
        tokens.set(p, first(effects, fresh, "Reconnected").data.reconnection_token);
        live.set(p, fresh);
      } else if (conn !== undefined) {
        const size = 50 + Math.floor(random() * 900);
        engine.handle(
          conn,
          { type: "GameData", data: { data: "y".repeat(size) } } as ClientMessage,
          T0 + step,
        );
      }
      ok(engine.stats().replayBufferBytes <= budget, `seed ${seed} step ${step}`);
    }
    for (const p of players) {
      if (live.has(p)) continue;
      const fresh = id(++conns);
      engine.connect(fresh);
      first(
        engine.handle(fresh, reconnect(p, "room-1", tokens.get(p)!), T0 + 1000),
        fresh,
        "Reconnected",
      );
    }
    equal(engine.stats().replayBufferBytes, 0, `seed ${seed}`);
    drops += engine.stats().replayTruncations;
  }
  ok(drops > 0, "the walks reached the budget");
});

Deno.test("A restored snapshot keeps each room in its app's namespace and its token in the digest index", () => {
  const options: Partial<EngineOptions> = {
    enableReconnection: true,
    tokenDigest: (token) => `d:${token}`,
    auth: { required: true, apps: APPS, timeoutMs: 10_000, enforceSdkGate: false },
  };
  const before = new Engine(testOptions(options));
  authed(before, P1, "app-a");
  const a = first(before.handle(P1, join("ROOM01", "mira"), T0), P1, "RoomJoined").data;
  before.disconnect(P1, T0);
  const after = new Engine(testOptions(options));
  ok(after.restore(before.snapshot(T0), T0).ok);
  authed(after, P2, "app-b");
  authed(after, C1, "app-a");
  equal(
    first(after.handle(P2, spectate("ROOM01"), T0), P2, "SpectatorJoinFailed").data.error_code,
    "ROOM_NOT_FOUND",
  );
  authed(after, S1, "app-a");
  first(after.handle(S1, spectate("ROOM01"), T0), S1, "SpectatorJoined");
  const back = after.handle(C1, reconnect(P1, a.room_id, a.reconnection_token!), T0);
  equal(first(back, C1, "Reconnected").data.room_code, "ROOM01");
});

// ---------------------------------------------------------------------------------------------
// Lobby announcements: connection info size and the lobby-change bucket

function provide(connection_info: unknown): ClientMessage {
  return { type: "ProvideConnectionInfo", data: { connection_info } } as ClientMessage;
}

function authority(become_authority: boolean): ClientMessage {
  return { type: "AuthorityRequest", data: { become_authority } } as ClientMessage;
}

Deno.test("ProvideConnectionInfo: a value longer than max_connection_info_bytes as sent back is refused, the stored one stays", () => {
  const engine = engineWith([P1, P2], { maxConnectionInfoBytes: 100 });
  first(engine.handle(P1, join("ROOM01", "Mira", { max_players: 2 }), T0), P1, "RoomJoined");
  first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined");
  const small = { type: "direct", host: "198.51.100.7", port: 7777 };
  deepEqual(engine.handle(P1, provide(small), T0), []);
  // 8 numbers of 4 characters sent, each 21 digits sent back: the stored form counts.
  const inflated = { type: "custom", data: Array(8).fill(9e20) };
  ok(JSON.stringify(inflated).length > 100);
  const refused = first(engine.handle(P1, provide(inflated), T0), P1, "Error").data;
  deepEqual(refused, {
    message: `Connection info too large (${JSON.stringify(inflated).length} bytes, at most 100)`,
    error_code: "INVALID_INPUT",
  });
  // Exactly at the limit is accepted.
  const exact = { type: "custom", data: "" };
  exact.data = "x".repeat(100 - JSON.stringify(exact).length);
  equal(JSON.stringify(exact).length, 100);
  deepEqual(engine.handle(P2, provide(exact), T0), []);
  engine.handle(P1, bare("PlayerReady"), T0);
  const starting = first(engine.handle(P2, bare("PlayerReady"), T0), P1, "GameStarting").data;
  deepEqual(starting.peer_connections.map((peer) => peer.connection_info), [small, exact]);
});

Deno.test("PlayerReady and AuthorityRequest share a per-connection bucket; an empty one refuses without announcing", () => {
  const engine = engineWith([P1, P2, S1], { lobbyChanges: { capacity: 3, windowMs: 60_000 } });
  first(engine.handle(P1, join("ROOM01", "Mira", { max_players: 3 }), T0), P1, "RoomJoined");
  first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined");
  first(engine.handle(S1, spectate("ROOM01"), T0), S1, "SpectatorJoined");
  // Requests that announce nothing (a spectator's, before a seat) take no token.
  for (let i = 0; i < 5; i++) {
    equal(
      first(engine.handle(S1, bare("PlayerReady"), T0), S1, "Error").data.error_code,
      "SPECTATOR_NOT_ALLOWED",
    );
  }
  first(engine.handle(P1, bare("PlayerReady"), T0), P2, "LobbyStateChanged");
  // The creator holds authority (docs/spec/PROTOCOL.md §7.5): a release announces.
  first(engine.handle(P1, authority(false), T0), P2, "AuthorityChanged");
  first(engine.handle(P1, bare("PlayerReady"), T0), P2, "LobbyStateChanged");
  const ready = engine.handle(P1, bare("PlayerReady"), T0 + 1_000);
  deepEqual(ready, [{
    kind: "send",
    to: [P1],
    message: {
      type: "Error",
      data: {
        message: "Lobby change rate limit exceeded. Try again in 19 seconds.",
        error_code: "RATE_LIMIT_EXCEEDED",
      },
    },
  }]);
  const claim = engine.handle(P1, authority(true), T0 + 1_000);
  deepEqual(sentTo(claim, P1), [{
    type: "AuthorityResponse",
    data: {
      granted: false,
      reason: "Lobby change rate limit exceeded. Try again in 19 seconds.",
      error_code: "RATE_LIMIT_EXCEEDED",
    },
  }]);
  equal(sentTo(claim, P2).length, 0);
  // Another connection has its own bucket; a window's share comes back with time.
  first(engine.handle(P2, bare("PlayerReady"), T0 + 1_000), P1, "LobbyStateChanged");
  first(engine.handle(P1, bare("PlayerReady"), T0 + 20_000), P2, "LobbyStateChanged");
  equal(
    first(engine.handle(P1, bare("PlayerReady"), T0 + 20_000), P1, "Error").data.error_code,
    "RATE_LIMIT_EXCEEDED",
  );
});

Deno.test("Ready toggles in a finalized lobby cost each member at most the bucket's share of GameStarting", () => {
  // docs/spec/PROTOCOL.md §7.4: every return to `finalized` sends GameStarting with every seat's
  // connection info. With the defaults, one player toggling as fast as it can reaches each other
  // member with at most capacity / 2 of them per window, each under max_players × the info cap.
  const capacity = 20;
  const engine = engineWith([P1, P2, P3], {
    lobbyChanges: { capacity, windowMs: 60_000 },
    maxConnectionInfoBytes: 4096,
  });
  first(engine.handle(P1, join("ROOM01", "Mira", { max_players: 3 }), T0), P1, "RoomJoined");
  first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined");
  first(engine.handle(P3, join("ROOM01", "Nina"), T0), P3, "RoomJoined");
  const big = (tag: string) => ({ type: "custom", data: tag.repeat(4096 - 30) });
  for (const [conn, tag] of [[P1, "a"], [P2, "b"], [P3, "c"]] as const) {
    equal(engine.handle(conn, provide(big(tag)), T0).length, 0);
  }
  engine.handle(P2, bare("PlayerReady"), T0);
  engine.handle(P3, bare("PlayerReady"), T0);
  let starts = 0;
  let bytes = 0;
  for (let i = 0; i < 1_000; i++) {
    const effects = engine.handle(P1, bare("PlayerReady"), T0 + i);
    starts += sentTo(effects, P2).filter((m) => m.type === "GameStarting").length;
    bytes += bytesTo(effects, P2);
  }
  equal(starts, capacity / 2);
  ok(bytes < (capacity / 2) * 3 * 4096 + capacity * 1024, `${bytes} bytes to one member`);
});

Deno.test("The lobby-change bucket stays with the seat across Reconnect: neither a resume nor a takeover refills it", () => {
  // A player could otherwise reopen its socket and Reconnect (a takeover, or a resume after a
  // drop) to get a full bucket each time: 60 reconnects a window × 20 announcements instead of 20.
  const engine = reconnectingEngineWith([P1, P2], {
    lobbyChanges: { capacity: 2, windowMs: 60_000 },
  });
  const joined = first(
    engine.handle(P1, join("ROOM01", "Mira", { max_players: 3 }), T0),
    P1,
    "RoomJoined",
  ).data;
  first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined");
  first(engine.handle(P1, bare("PlayerReady"), T0), P2, "LobbyStateChanged");
  first(engine.handle(P1, bare("PlayerReady"), T0), P2, "LobbyStateChanged");
  const refused = (conn: string) =>
    first(engine.handle(conn, bare("PlayerReady"), T0), conn, "Error").data.error_code;
  equal(refused(P1), "RATE_LIMIT_EXCEEDED");
  // A takeover from a new socket continues with the replaced connection's bucket.
  engine.connect(id(1));
  const taken = first(
    engine.handle(
      id(1),
      reconnect(joined.player_id, joined.room_id, joined.reconnection_token!),
      T0,
    ),
    id(1),
    "Reconnected",
  ).data;
  equal(refused(id(1)), "RATE_LIMIT_EXCEEDED");
  // So does a resume after a drop.
  engine.disconnect(id(1), T0);
  engine.connect(id(2));
  first(
    engine.handle(
      id(2),
      reconnect(joined.player_id, joined.room_id, taken.reconnection_token!),
      T0,
    ),
    id(2),
    "Reconnected",
  );
  equal(refused(id(2)), "RATE_LIMIT_EXCEEDED");
  // The bucket refills with time as before, and another member's is its own.
  first(engine.handle(P2, bare("PlayerReady"), T0), id(2), "LobbyStateChanged");
  first(engine.handle(id(2), bare("PlayerReady"), T0 + 30_000), P2, "LobbyStateChanged");
});

// ---------------------------------------------------------------------------------------------
// Session 28: rooms of every game together

Deno.test("max_rooms bounds the rooms of every game together; the oldest empty room is reclaimed first", () => {
  // Before, only each game had a cap: rooms under ever new game names had no bound at all (50,000
  // rooms with held seats from 10,000 addresses in 20 s, +298 MB, against a real server).
  const engine = engineWith([P1, P2, P3, id(1)], { maxRooms: 2, enableReconnection: true });
  first(engine.handle(P1, join("ROOM01", "a", { game_name: "g1" }), T0), P1, "RoomJoined");
  first(engine.handle(P2, join("ROOM02", "b", { game_name: "g2" }), T0), P2, "RoomJoined");
  deepEqual(
    first(engine.handle(P3, join("ROOM03", "c", { game_name: "g3" }), T0), P3, "RoomJoinFailed")
      .data,
    {
      reason: "The server already has 2 rooms (limit 2)",
      error_code: "MAX_ROOMS_PER_GAME_EXCEEDED",
    },
  );
  // Joining an existing room is not creating one.
  first(engine.handle(P3, join("ROOM01", "c", { game_name: "g1" }), T0), P3, "RoomJoined");
  // The first room empties (both players leave): the next creation reclaims it.
  engine.handle(P1, bare("LeaveRoom"), T0);
  engine.handle(P3, bare("LeaveRoom"), T0);
  const created = engine.handle(id(1), join("ROOM04", "d", { game_name: "g4" }), T0 + 1);
  first(created, id(1), "RoomJoined");
  ok(created.some((e) => e.kind === "event" && e.event.type === "room_deleted"));
  equal(engine.lookup("g1", "ROOM01"), undefined);
  equal(engine.stats().rooms, 2);
});

// ---------------------------------------------------------------------------------------------
// Session 30: unattended rooms (every seat held, no spectator) give way to creations

/** Creates room `code` of game `game` as `conn` and returns its `RoomJoined` data. */
function create(engine: Engine, conn: string, code: string, game: string, now: number) {
  return first(engine.handle(conn, join(code, "p", { game_name: game }), now), conn, "RoomJoined")
    .data;
}

/** The error code of a creation refused to `conn`. */
function refusedCode(engine: Engine, conn: string, code: string, game: string, now: number) {
  return first(
    engine.handle(conn, join(code, "p", { game_name: game }), now),
    conn,
    "RoomJoinFailed",
  ).data.error_code;
}

/** Whether `effects` deleted a room for `reason`. */
function deleted(effects: Effect[], code: string, reason: string): boolean {
  return effects.some((e) =>
    e.kind === "event" && e.event.type === "room_deleted" && e.event.roomCode === code &&
    e.event.reason === reason
  );
}

Deno.test("max_rooms: with only unattended rooms left, a creation reclaims the one unattended longest; its held player's Reconnect is RECONNECTION_EXPIRED", () => {
  // Before, every room with a held seat kept the cap full: after a flood whose players all
  // dropped, a new player's creation was refused for up to reconnection_window (300 s).
  const engine = reconnectingEngineWith([P1, P2, P3, C1, C2, id(1)], { maxRooms: 3 });
  const r1 = create(engine, P1, "ROOM01", "g1", T0);
  const r2 = create(engine, P2, "ROOM02", "g2", T0);
  const r3 = create(engine, P3, "ROOM03", "g3", T0);
  equal(refusedCode(engine, C1, "ROOM04", "g4", T0), "MAX_ROOMS_PER_GAME_EXCEEDED");
  // They become unattended in another order than they were created: 2, 1, 3.
  engine.disconnect(P2, T0 + 1);
  engine.disconnect(P1, T0 + 2);
  engine.disconnect(P3, T0 + 3);
  equal(engine.stats().unattendedRooms, 3);
  const created = engine.handle(C1, join("ROOM04", "c1", { game_name: "g4" }), T0 + 4);
  first(created, C1, "RoomJoined");
  ok(deleted(created, "ROOM02", "unattended"), "the room unattended longest goes");
  ok(created.some((e) => e.kind === "event" && e.event.type === "seat_expired"));
  // Nobody but the creator is told anything: the room had no connected member.
  deepEqual(
    created.flatMap((e) => e.kind === "send" ? [...e.to] : []).filter((to) => to !== C1),
    [],
  );
  equal(engine.lookup("g2", "ROOM02"), undefined);
  equal(engine.lookup("g1", "ROOM01")?.players, 1);
  deepEqual(
    [engine.stats().rooms, engine.stats().heldSeats, engine.stats().unattendedReclaims],
    [3, 2, 1],
  );
  // The held seat ended as at the end of its window (docs/spec/PROTOCOL.md §7.11.3).
  assertExpired(engine, C2, P2, r2, T0 + 5);
  // The next creation takes ROOM01 (unattended second); ROOM03's player is still resumable.
  const next = engine.handle(id(1), join("ROOM05", "i1", { game_name: "g5" }), T0 + 6);
  first(next, id(1), "RoomJoined");
  ok(deleted(next, "ROOM01", "unattended"));
  equal(engine.stats().unattendedReclaims, 2);
  equal(
    first(
      engine.handle(C2, reconnect(P1, r1.room_id, r1.reconnection_token!), T0 + 7),
      C2,
      "ReconnectionFailed",
    ).data.error_code,
    "RECONNECTION_EXPIRED",
  );
  first(
    engine.handle(C2, reconnect(P3, r3.room_id, r3.reconnection_token!), T0 + 8),
    C2,
    "Reconnected",
  );
  // Every room has a connected player now: the cap refuses again, and reclaims nothing.
  engine.connect(id(2));
  equal(refusedCode(engine, id(2), "ROOM06", "g6", T0 + 9), "MAX_ROOMS_PER_GAME_EXCEEDED");
  deepEqual([engine.stats().rooms, engine.stats().unattendedReclaims], [3, 2]);
});

Deno.test("max_rooms: a room with one connected player or one spectator is not unattended; one that empties of them is", () => {
  const engine = reconnectingEngineWith([P1, P2, P3, S1, C1], { maxRooms: 2 });
  create(engine, P1, "ROOM01", "g1", T0);
  first(engine.handle(P2, join("ROOM01", "b", { game_name: "g1" }), T0), P2, "RoomJoined");
  create(engine, P3, "ROOM02", "g2", T0);
  const watch = spectate("ROOM02");
  first(
    engine.handle(S1, { ...watch, data: { ...watch.data, game_name: "g2" } } as ClientMessage, T0),
    S1,
    "SpectatorJoined",
  );
  // ROOM01: one seat held, one connected; ROOM02: its seat held, a spectator watching.
  engine.disconnect(P2, T0 + 1);
  engine.disconnect(P3, T0 + 2);
  equal(engine.stats().unattendedRooms, 0);
  equal(refusedCode(engine, C1, "ROOM03", "g3", T0 + 3), "MAX_ROOMS_PER_GAME_EXCEEDED");
  deepEqual([engine.stats().rooms, engine.stats().heldSeats], [2, 2]);
  // The spectator leaves: ROOM02 is unattended and gives way; ROOM01 stays.
  engine.handle(S1, bare("LeaveSpectator"), T0 + 4);
  const created = engine.handle(C1, join("ROOM03", "c", { game_name: "g3" }), T0 + 5);
  first(created, C1, "RoomJoined");
  ok(deleted(created, "ROOM02", "unattended"));
  equal(engine.lookup("g1", "ROOM01")?.players, 2);
  equal(engine.stats().unattendedReclaims, 1);
});

Deno.test("max_rooms: a room that became unattended and regained a member (Reconnect, join, spectator) is not reclaimed; age counts from the last time it became unattended", () => {
  const engine = reconnectingEngineWith([P1, P2, P3, C1, C2, S1, id(1), id(2)], { maxRooms: 4 });
  const r1 = create(engine, P1, "ROOM01", "g1", T0);
  create(engine, P2, "ROOM02", "g2", T0);
  create(engine, P3, "ROOM03", "g3", T0);
  create(engine, id(1), "ROOM04", "g4", T0);
  engine.disconnect(P1, T0 + 1);
  engine.disconnect(P2, T0 + 2);
  engine.disconnect(P3, T0 + 3);
  engine.disconnect(id(1), T0 + 4);
  equal(engine.stats().unattendedRooms, 4);
  // ROOM01's player comes back, ROOM02 gets a new player, ROOM03 a spectator.
  first(
    engine.handle(C1, reconnect(P1, r1.room_id, r1.reconnection_token!), T0 + 5),
    C1,
    "Reconnected",
  );
  first(engine.handle(C2, join("ROOM02", "new", { game_name: "g2" }), T0 + 5), C2, "RoomJoined");
  const watch = spectate("ROOM03");
  first(
    engine.handle(
      S1,
      { ...watch, data: { ...watch.data, game_name: "g3" } } as ClientMessage,
      T0 + 5,
    ),
    S1,
    "SpectatorJoined",
  );
  equal(engine.stats().unattendedRooms, 1);
  // Then ROOM01 is left unattended again (T0 + 6), after ROOM04 (T0 + 4): ROOM04 goes first.
  engine.disconnect(C1, T0 + 6);
  equal(engine.stats().unattendedRooms, 2);
  const created = engine.handle(id(2), join("ROOM05", "q", { game_name: "g5" }), T0 + 7);
  first(created, id(2), "RoomJoined");
  ok(deleted(created, "ROOM04", "unattended"));
  for (const [game, code] of [["g1", "ROOM01"], ["g2", "ROOM02"], ["g3", "ROOM03"]]) {
    ok(engine.lookup(game!, code!), `${code} stays`);
  }
  engine.connect(id(3));
  const again = engine.handle(id(3), join("ROOM06", "r", { game_name: "g6" }), T0 + 8);
  first(again, id(3), "RoomJoined");
  ok(deleted(again, "ROOM01", "unattended"));
  deepEqual([engine.stats().unattendedRooms, engine.stats().unattendedReclaims], [0, 2]);
});

Deno.test("max_rooms_per_game: the game's unattended room unattended longest gives way, not another game's", () => {
  const engine = reconnectingEngineWith([P1, P2, P3, C1, C2], { maxRoomsPerGame: 2 });
  create(engine, P1, "ROOM01", "orbit", T0);
  create(engine, P2, "ROOM02", "orbit", T0);
  create(engine, P3, "ROOM03", "other", T0);
  engine.disconnect(P3, T0 + 1); // another game's room, unattended first
  engine.disconnect(P2, T0 + 2);
  engine.disconnect(P1, T0 + 3);
  const created = engine.handle(C1, join("ROOM04", "c", { game_name: "orbit" }), T0 + 4);
  first(created, C1, "RoomJoined");
  ok(deleted(created, "ROOM02", "unattended"));
  equal(engine.lookup("other", "ROOM03")?.players, 1);
  equal(engine.lookup("orbit", "ROOM01")?.players, 1);
  // The game's cap is full again with ROOM01 (unattended) and C1's room (attended).
  first(engine.handle(C2, join("ROOM05", "d", { game_name: "orbit" }), T0 + 5), C2, "RoomJoined");
  equal(engine.lookup("orbit", "ROOM01"), undefined);
  engine.connect(id(1));
  equal(refusedCode(engine, id(1), "ROOM06", "orbit", T0 + 6), "MAX_ROOMS_PER_GAME_EXCEEDED");
  equal(engine.stats().unattendedReclaims, 2);
});

Deno.test("A creation refused at a later cap reclaims nothing: no held seat ends for it", () => {
  // Game cap 2 (one room unattended), address cap 1 (its room attended): the address cap refuses.
  const engine = reconnectingEngineWith([], { maxRoomsPerGame: 2, maxRoomsPerIp: 1 });
  engine.connect(P1, { ip: "a" });
  engine.connect(P2, { ip: "b" });
  engine.connect(P3, { ip: "b" });
  const held = create(engine, P1, "ROOM01", "orbit", T0);
  create(engine, P2, "ROOM02", "orbit", T0);
  engine.disconnect(P1, T0 + 1);
  const refused = engine.handle(P3, join("ROOM03", "c"), T0 + 2);
  deepEqual(first(refused, P3, "RoomJoinFailed").data, {
    reason: "Your address already has 1 rooms of game `orbit` (limit 1)",
    error_code: "MAX_ROOMS_PER_GAME_EXCEEDED",
  });
  ok(!refused.some((e) => e.kind === "event" && e.event.type === "room_deleted"));
  deepEqual([engine.stats().heldSeats, engine.stats().unattendedReclaims], [1, 0]);
  engine.connect(C1, { ip: "c" });
  first(
    engine.handle(C1, reconnect(P1, held.room_id, held.reconnection_token!), T0 + 3),
    C1,
    "Reconnected",
  );
});

Deno.test("max_rooms_per_ip: an address's own unattended room gives way to its next creation", () => {
  const engine = reconnectingEngineWith([], { maxRoomsPerIp: 1 });
  engine.connect(P1, { ip: "a" });
  engine.connect(P2, { ip: "a" });
  create(engine, P1, "ROOM01", "orbit", T0);
  equal(refusedCode(engine, P2, "ROOM02", "orbit", T0), "MAX_ROOMS_PER_GAME_EXCEEDED");
  engine.disconnect(P1, T0 + 1);
  const created = engine.handle(P2, join("ROOM02", "b"), T0 + 2);
  first(created, P2, "RoomJoined");
  ok(deleted(created, "ROOM01", "unattended"));
});

Deno.test("An app's max_rooms: the app's room unattended longest gives way, not another app's", () => {
  const apps: AuthorizedApp[] = [{ appId: "capped", appName: "C", maxRooms: 2 }, APPS[0]!];
  const engine = reconnectingEngineWith([], {
    auth: { required: true, apps, timeoutMs: 10_000, enforceSdkGate: false },
  });
  for (const conn of [P1, P2, C1]) authed(engine, conn, "capped");
  authed(engine, P3, "app-a");
  create(engine, P3, "ROOM03", "g3", T0); // another app's room, unattended first
  create(engine, P1, "ROOM01", "g1", T0);
  create(engine, P2, "ROOM02", "g2", T0);
  equal(refusedCode(engine, C1, "ROOM04", "g4", T0), "MAX_ROOMS_PER_GAME_EXCEEDED");
  engine.disconnect(P3, T0 + 1);
  engine.disconnect(P2, T0 + 2);
  engine.disconnect(P1, T0 + 3);
  const created = engine.handle(C1, join("ROOM04", "c", { game_name: "g4" }), T0 + 4);
  first(created, C1, "RoomJoined");
  ok(deleted(created, "ROOM02", "unattended"));
  equal(engine.stats().rooms, 3, "app-a's room stays");
});

Deno.test("max_held_seats: a disconnect past the cap ends the hold that waited longest, as its window would", () => {
  // Before, held seats had no bound but rooms × seats: 40,000 addresses joining 400 rooms and
  // dropping held 40,000 seats (+318 MB, and the once-a-second tick walked them all).
  const engine = reconnectingEngineWith([P1, P2, P3, C1, C2], { maxHeldSeats: 2 });
  const joined = first(engine.handle(P1, join("ROOM01", "a"), T0), P1, "RoomJoined").data;
  first(engine.handle(C1, join("ROOM01", "watcher"), T0), C1, "RoomJoined");
  first(engine.handle(P2, join("ROOM02", "b"), T0), P2, "RoomJoined");
  first(engine.handle(P3, join("ROOM03", "c"), T0), P3, "RoomJoined");
  engine.disconnect(P1, T0);
  engine.disconnect(P2, T0 + 1);
  equal(engine.stats().heldSeats, 2);
  // The third hold ends P1's, the oldest: its room hears PlayerLeft as at the end of a window.
  const third = engine.disconnect(P3, T0 + 2);
  deepEqual(first(third, C1, "PlayerLeft").data, { player_id: P1 });
  equal(engine.stats().heldSeats, 2);
  equal(engine.stats().heldSeatEvictions, 1);
  ok(third.some((e) => e.kind === "event" && e.event.type === "seat_held"));
  // P1's token now says its window is over; the seats held later are still there.
  assertExpired(engine, C2, P1, joined, T0 + 3);
  ok(engine.lookup("orbit", "ROOM02")!.players === 1);
  ok(engine.lookup("orbit", "ROOM03")!.players === 1);
});

/** A reconnecting engine whose connections `ids[i]` come from client address key `ips[i]`. */
function engineFrom(
  ids: string[],
  ips: string[],
  overrides: Partial<EngineOptions>,
): Engine {
  const engine = reconnectingEngineWith([], overrides);
  ids.forEach((conn, i) => engine.connect(conn, { ip: ips[i]! }));
  return engine;
}

Deno.test("max_held_seats_per_ip: an address past its share ends its own oldest hold, not another address's", () => {
  // Before, one address could hold as many seats as its join, creation and reconnect buckets
  // allowed over a window (about 300), all of them out of the instance's max_held_seats.
  const players = [id(1), id(2), id(3), id(4)];
  const engine = engineFrom([...players, C1, C2], ["a", "a", "a", "b", "c", "c"], {
    maxHeldSeatsPerIp: 2,
    maxRoomsPerGame: 100,
  });
  const rooms = players.map((p, i) =>
    first(engine.handle(p, join(`ROOM0${i}`, `p${i}`), T0), p, "RoomJoined").data
  );
  first(engine.handle(C1, join("ROOM00", "watcher"), T0), C1, "RoomJoined");
  engine.disconnect(id(4), T0); // address b: its own share
  engine.disconnect(id(1), T0 + 1);
  engine.disconnect(id(2), T0 + 2);
  equal(engine.stats().heldSeats, 3);
  // A third hold from address a ends a's oldest (id 1, in ROOM00): C1 hears it leave.
  const third = engine.disconnect(id(3), T0 + 3);
  deepEqual(first(third, C1, "PlayerLeft").data, { player_id: id(1) });
  equal(engine.stats().heldSeats, 3);
  equal(engine.stats().heldSeatAddressEvictions, 1);
  equal(engine.stats().heldSeatEvictions, 0);
  deepEqual(
    first(
      engine.handle(C2, reconnect(id(1), rooms[0]!.room_id, rooms[0]!.reconnection_token!), T0 + 4),
      C2,
      "ReconnectionFailed",
    ).data.error_code,
    "RECONNECTION_EXPIRED",
  );
  // Address b's hold and a's two newer ones are still there: b's player resumes its seat.
  first(
    engine.handle(C2, reconnect(id(4), rooms[3]!.room_id, rooms[3]!.reconnection_token!), T0 + 5),
    C2,
    "Reconnected",
  );
  equal(engine.stats().heldSeats, 2);
});

Deno.test("max_held_seats: the address holding the most seats gives up its oldest first; one hold each falls back to the oldest", () => {
  // Before, the hold that waited longest ended whoever held it: a flood of holds from a few
  // addresses pushed every other player's held seat out.
  const flood = [id(1), id(2), id(3)];
  const others = [id(11), id(12)];
  const engine = engineFrom([...others, ...flood, C1], ["x", "y", "f", "f", "f", "z"], {
    maxHeldSeats: 4,
    maxRoomsPerGame: 100,
  });
  for (const [i, p] of [...others, ...flood].entries()) {
    first(engine.handle(p, join(`ROOM${10 + i}`, `p${i}`), T0), p, "RoomJoined");
  }
  first(engine.handle(C1, join("ROOM13", "watcher"), T0), C1, "RoomJoined"); // id(2)'s room
  // The others drop first, so they are the oldest holds.
  engine.disconnect(id(11), T0);
  engine.disconnect(id(12), T0 + 1);
  engine.disconnect(id(1), T0 + 2);
  engine.disconnect(id(2), T0 + 3);
  equal(engine.stats().heldSeats, 4);
  // The fifth hold: address f holds two, the others one each: f's oldest (id 1) ends.
  const fifth = engine.disconnect(id(3), T0 + 4);
  ok(fifth.some((e) => e.kind === "event" && e.event.type === "seat_expired"));
  equal(engine.stats().heldSeatEvictions, 1);
  equal(engine.lookup("orbit", "ROOM12")?.players, 0, "id(1)'s seat is released");
  equal(engine.lookup("orbit", "ROOM10")?.players, 1, "x's hold stays");
  equal(engine.lookup("orbit", "ROOM11")?.players, 1, "y's hold stays");
  // f still holds two (ids 2 and 3): another hold from z ends f's oldest, id 2, in C1's room.
  engine.connect(id(21), { ip: "z" });
  first(engine.handle(id(21), join("ROOM20", "zed"), T0 + 6), id(21), "RoomJoined");
  const sixth = engine.disconnect(id(21), T0 + 7);
  deepEqual(first(sixth, C1, "PlayerLeft").data, { player_id: id(2) });
  equal(engine.stats().heldSeatEvictions, 2);
  // Now every address holds one (x, y, f, z): the next ends the oldest of all, x's.
  engine.connect(id(22), { ip: "w" });
  first(engine.handle(id(22), join("ROOM21", "w"), T0 + 8), id(22), "RoomJoined");
  engine.disconnect(id(22), T0 + 9);
  equal(engine.stats().heldSeatEvictions, 3);
  equal(engine.lookup("orbit", "ROOM10")?.players, 0, "x's hold was the oldest");
  equal(engine.lookup("orbit", "ROOM11")?.players, 1);
});
