/**
 * Room-side attacks of issue 14 (items 4–8, 12) performed over real WebSockets on 127.0.0.1,
 * each bounded in connections and messages and stopping by itself. Distinct client addresses
 * come from `X-Forwarded-For` through a trusted loopback proxy (docs/spec/SERVER.md §1.9). Each test
 * asserts the outcome the limit guarantees (SECURITY.md "Rooms, spectators and reconnection").
 */
import { notInCluster, TEST_CLUSTER, TEST_CLUSTER_MODE } from "./cluster_serve.ts";
import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import type { Config } from "../src/config/schema.ts";
import { connect, joinAsSpectator, joinRoom, openApps, serve, type TestClient } from "./helpers.ts";
import { parseExposition } from "./exposition.ts";
import type { SignalFishServer } from "../src/server.ts";
import { lookupRoom } from "../src/client/client.ts";

function viaProxy(config: Config): void {
  config.security.trusted_proxies = ["127.0.0.0/8"];
}

/** Connects as client address `ip` (through the trusted loopback proxy). */
function connectAs(server: SignalFishServer, ip: string): Promise<TestClient> {
  return connect(server, { headers: { "x-forwarded-for": ip } });
}

async function closeAll(clients: TestClient[]): Promise<void> {
  await Promise.all(clients.map((client) => client.close()));
}

Deno.test("Attack 4: 130 spectator joins cost each player a bounded message per join; the cap refuses the rest", async () => {
  await using server = await serve(viaProxy); // default max_spectators_per_room (100)
  await using player = await connect(server);
  player.send(joinRoom("SPEC01", "mira"));
  await player.next("RoomJoined");
  const watchers: TestClient[] = [];
  let refused = 0;
  try {
    for (let i = 0; i < 130; i++) {
      const watcher = await connectAs(server, `203.0.113.${1 + (i % 50)}`);
      watchers.push(watcher);
      watcher.send(joinAsSpectator("SPEC01", `w${i}`));
      const reply = await watcher.next();
      if (reply.type === "SpectatorJoinFailed") {
        deepEqual(reply.data, {
          reason: "Spectator limit reached",
          error_code: "TOO_MANY_SPECTATORS",
        });
        refused++;
      } else {
        equal(reply.type, "SpectatorJoined");
        equal(reply.data.current_spectators.length, i + 1, "the joiner gets the whole list");
      }
    }
    equal(refused, 30);
    let largest = 0;
    for (let i = 0; i < 100; i++) {
      const news = await player.next("NewSpectatorJoined");
      ok(news.data.current_spectators.length <= 16);
      largest = Math.max(largest, JSON.stringify(news).length);
    }
    ok(largest < 4096, `largest NewSpectatorJoined: ${largest} bytes`);
    await player.expectNothingElse();
  } finally {
    await closeAll(watchers);
  }
});

Deno.test(
  "Attack 5: a Reconnect flood with 64 KiB tokens is cut by the per-IP bucket; a takeover loop keeps few records",
  {
    ignore: notInCluster(
      "frames queued behind a pending Reconnect are bounded by max_buffered_bytes: the flood ends in 1013 (docs/spec/SERVER.md §8.4.2 rule 1, §8.6 note)",
    ),
  },
  async () => {
    await using server = await serve(viaProxy);
    await using bystander = await connect(server);
    bystander.send(joinRoom("BYST01", "nina"));
    const room = (await bystander.next("RoomJoined")).data;
    await using attacker = await connectAs(server, "198.51.100.66");
    const huge = "A".repeat(65_000);
    const codes = new Map<string, number>();
    for (let i = 0; i < 80; i++) {
      attacker.send({
        type: "Reconnect",
        data: { player_id: room.player_id, room_id: room.room_id, auth_token: huge },
      });
    }
    for (let i = 0; i < 80; i++) {
      const code = (await attacker.next("ReconnectionFailed")).data.error_code;
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    deepEqual(Object.fromEntries(codes), {
      RECONNECTION_TOKEN_INVALID: 60,
      RATE_LIMIT_EXCEEDED: 20,
    });
    bystander.send({ type: "Ping" });
    await bystander.next("Pong");
    // A takeover loop from other addresses: each round consumes a token and mints one.
    let token = room.reconnection_token;
    let holder = bystander;
    const sockets: TestClient[] = [];
    try {
      for (let i = 0; i < 30; i++) {
        const next = await connectAs(server, `192.0.2.${1 + (i % 25)}`);
        sockets.push(next);
        next.send({
          type: "Reconnect",
          data: { player_id: room.player_id, room_id: room.room_id, auth_token: token },
        });
        token = (await next.next("Reconnected")).data.reconnection_token;
        equal((await holder.closed).code, 4001);
        holder = next;
      }
      ok(server.engine.stats().tokenRecords <= 5, `records: ${server.engine.stats().tokenRecords}`);
    } finally {
      await closeAll(sockets);
    }
  },
);

Deno.test("Attack 6: 40 wrong secrets from one address lock out that address, not the app", async () => {
  await using server = await serve((config) => {
    viaProxy(config);
    config.security.require_websocket_auth = true;
    config.security.authorized_apps = [{
      app_id: "orbit-prod",
      app_secret: "correct horse battery staple",
      app_name: "Orbit",
      max_rooms: null,
      max_players_per_room: null,
      rate_limit_per_minute: 30,
    }];
  });
  const codes = new Map<string, number>();
  for (let i = 0; i < 40; i++) {
    await using guess = await connectAs(server, "203.0.113.200");
    guess.send({ type: "Authenticate", data: { app_id: "orbit-prod", app_secret: `guess-${i}` } });
    const code = (await guess.next("AuthenticationError")).data.error_code;
    codes.set(code, (codes.get(code) ?? 0) + 1);
    equal((await guess.closed).code, 1008);
  }
  deepEqual(Object.fromEntries(codes), { UNAUTHORIZED: 10, RATE_LIMIT_EXCEEDED: 30 });
  // Every other client of the app still gets in.
  for (let i = 0; i < 5; i++) {
    await using player = await connectAs(server, `198.51.100.${i + 1}`);
    player.send({
      type: "Authenticate",
      data: { app_id: "orbit-prod", app_secret: "correct horse battery staple" },
    });
    equal((await player.next("Authenticated")).data.app_name, "Orbit");
  }
});

Deno.test(
  "Attack 7: squatters cannot keep a game's room cap full with empty rooms or from one address",
  async () => {
    await using server = await serve((config) => {
      viaProxy(config);
      config.server.max_rooms_per_game = 20;
      config.server.max_rooms_per_ip = 5;
    });
    const squatters: TestClient[] = [];
    try {
      // 5 addresses × 5 rooms each, every room left empty at once: the whole cap and more.
      for (let a = 0; a < 5; a++) {
        const squatter = await connectAs(server, `203.0.113.${10 + a}`);
        squatters.push(squatter);
        for (let r = 0; r < 5; r++) {
          squatter.send(joinRoom(null, "squat"));
          await squatter.next("RoomJoined");
          squatter.send({ type: "LeaveRoom" });
          await squatter.next("RoomLeft");
        }
      }
      // One address holding rooms open gets at most its share.
      const holders: TestClient[] = [];
      for (let r = 0; r < 6; r++) {
        const holder = await connectAs(server, "203.0.113.99");
        squatters.push(holder);
        holders.push(holder);
        holder.send(joinRoom(null, "hold"));
      }
      const replies = await Promise.all(holders.map((holder) => holder.next()));
      equal(replies.filter((reply) => reply.type === "RoomJoined").length, 5);
      const refusal = replies.find((reply) => reply.type === "RoomJoinFailed")!;
      equal(refusal.data.error_code, "MAX_ROOMS_PER_GAME_EXCEEDED");
      // A real player still creates rooms: empty rooms are reclaimed, not counted.
      for (let i = 0; i < 10; i++) {
        const player = await connectAs(server, `198.51.100.${i + 1}`);
        squatters.push(player);
        player.send(joinRoom(null, "real"));
        await player.next("RoomJoined");
      }
      // Rooms left empty do not count; each instance reclaims its own empty rooms when its
      // engine reaches the cap, so memory is bounded per instance (docs/spec/SERVER.md §8.3 note).
      // (Instances in other processes: their engines cannot be read from here; the caps above
      // are what clients see.)
      if (TEST_CLUSTER === 0 || TEST_CLUSTER_MODE === "inprocess") {
        ok(server.engine.stats().rooms <= 20 * Math.max(1, TEST_CLUSTER));
      }
    } finally {
      await closeAll(squatters);
    }
  },
);

Deno.test("Attack 8: 30 held seats fed 8 KiB messages stay within the global replay budget", {
  ignore: notInCluster(
    "it reads the replay-buffer metrics, which are per instance (docs/spec/SERVER.md §8.6)",
  ),
}, async () => {
  const budget = 256 * 1024;
  await using server = await serve((config) => {
    config.server.event_buffer_total_max_bytes = budget;
    config.server.event_buffer_max_bytes = 262144;
  });
  await using sender = await connect(server);
  sender.send(joinRoom("HELD01", "sender", { max_players: 31 }));
  await sender.next("RoomJoined");
  const seats: { player_id: string; room_id: string; token: string }[] = [];
  for (let i = 0; i < 30; i++) {
    const seat = await connect(server);
    seat.send(joinRoom("HELD01", `seat${i}`));
    const joined = (await seat.next("RoomJoined")).data;
    seats.push({
      player_id: joined.player_id,
      room_id: joined.room_id,
      token: joined.reconnection_token,
    });
    await seat.close(); // unexpected disconnect would be 1006; any close holds the seat
  }
  await waitUntil(() => server.engine.stats().heldSeats === 30);
  const payload = "x".repeat(8192);
  for (let i = 0; i < 40; i++) sender.send({ type: "GameData", data: { data: payload } });
  sender.send({ type: "Ping" });
  await sender.waitFor("Pong", 10_000); // every GameData was handled before the Pong
  const metrics = parseExposition(await (await fetch(`${server.url}/metrics/prom`)).text());
  const held = metrics.get("signal_fish_replay_buffer_bytes")!;
  ok(held > 0 && held <= budget, `held ${held}`);
  ok(metrics.get("signal_fish_replay_truncations_total")! > 0);
  // The newest messages survive: a returning seat gets the last one, flagged truncated.
  await using back = await connect(server);
  const first = seats[0]!;
  back.send({
    type: "Reconnect",
    data: { player_id: first.player_id, room_id: first.room_id, auth_token: first.token },
  });
  const reconnected = (await back.next("Reconnected")).data;
  equal(reconnected.replay_truncated, true);
});

Deno.test("Attack 12: with app auth, app B cannot reach app A's rooms; spectators never see addresses", async () => {
  await using server = await serve((config) => {
    config.security.require_websocket_auth = true;
    config.security.authorized_apps = openApps("app-a", "app-b");
  });
  const as = async (app: string) => {
    const client = await connect(server);
    client.send({ type: "Authenticate", data: { app_id: app } });
    await client.next("Authenticated");
    await client.next("ProtocolInfo");
    return client;
  };
  await using a1 = await as("app-a");
  await using a2 = await as("app-a");
  await using b = await as("app-b");
  await using bWatcher = await as("app-b");
  await using aWatcher = await as("app-a");
  a1.send(joinRoom("SHARE1", "mira", { max_players: 2 }));
  const roomA = (await a1.next("RoomJoined")).data;
  bWatcher.send(joinAsSpectator("SHARE1", "peek"));
  equal((await bWatcher.next("SpectatorJoinFailed")).data.error_code, "ROOM_NOT_FOUND");
  b.send(joinRoom("SHARE1", "intruder"));
  const roomB = (await b.next("RoomJoined")).data;
  notEqual(roomB.room_id, roomA.room_id);
  equal(roomB.current_players.length, 1);
  b.send({ type: "GameData", data: { data: "hello A?" } });
  // HTTP lookups are scoped the same way.
  const lookup = (query: string) => fetch(`${server.url}/v2/rooms/orbit/SHARE1${query}`);
  const responses = await Promise.all([
    lookup(""),
    lookup("?app_id=app-b"),
    lookup("?app_id=app-a"),
  ]);
  const bodies = await Promise.all(responses.map((response) => response.json()));
  deepEqual(responses.map((response) => response.status), [404, 200, 200]);
  deepEqual(bodies.slice(1).map((body) => body.players), [1, 1]);
  // The client library names its app the same way.
  equal((await lookupRoom(server.url, "orbit", "SHARE1", { appId: "app-a" }))?.players, 1);
  equal(await lookupRoom(server.url, "orbit", "SHARE1"), null);
  // A never heard from B: neither its join nor its GameData (sent before the lookups).
  await a1.expectNothingElse();
  // Privacy: a spectator of A's room never sees the players' addresses.
  a2.send(joinRoom("SHARE1", "tobias"));
  await a2.next("RoomJoined");
  const info = { type: "direct", host: "192.0.2.77", port: 7777 };
  for (const p of [a1, a2]) {
    p.send({ type: "ProvideConnectionInfo", data: { connection_info: info } });
  }
  for (const p of [a1, a2]) {
    p.send({ type: "Ping" });
    await p.waitFor("Pong");
  }
  aWatcher.send(joinAsSpectator("SHARE1", "fan"));
  const watched = await aWatcher.next("SpectatorJoined");
  ok(!JSON.stringify(watched).includes("192.0.2.77"));
  a1.send({ type: "PlayerReady" });
  a2.send({ type: "PlayerReady" });
  const starting = await aWatcher.waitFor("GameStarting");
  ok(!JSON.stringify(starting).includes("192.0.2.77"));
  equal(starting.data.peer_connections.length, 2);
  const playerView = await a1.waitFor("GameStarting");
  equal(playerView.data.peer_connections[1].connection_info.host, "192.0.2.77");
});

async function waitUntil(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("Condition never held");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("With app auth the operator API lists each app's rooms under its namespace and can close them", async () => {
  const token = "operator-token-for-tests-0123456789abcdef";
  const auth = { authorization: `Bearer ${token}` };
  await using server = await serve((config) => {
    config.security.admin_token = token;
    config.security.require_websocket_auth = true;
    config.security.authorized_apps = [{
      app_id: "app-a",
      app_secret: null,
      app_name: "A",
      max_rooms: null,
      max_players_per_room: null,
      rate_limit_per_minute: null,
    }];
  });
  await using player = await connect(server);
  player.send({ type: "Authenticate", data: { app_id: "app-a" } });
  await player.next("Authenticated");
  await player.next("ProtocolInfo");
  player.send(joinRoom("ADMIN1", "mira"));
  await player.next("RoomJoined");
  const listed = await (await fetch(`${server.url}/admin/api/rooms`, { headers: auth })).json();
  const entry = JSON.stringify(listed).match(/"game_name":"([^"]+)"/)?.[1];
  equal(JSON.parse(`"${entry}"`), "app-a\u0001orbit");
  const closed = await fetch(
    `${server.url}/admin/api/rooms/${encodeURIComponent("app-a\u0001orbit")}/ADMIN1`,
    { method: "DELETE", headers: auth },
  );
  equal(closed.status, 200, await closed.text());
  await player.next("RoomLeft");
});

Deno.test("A player toggling ready in a loop is refused past its lobby-change bucket; the others keep their seats", async () => {
  await using server = await serve((config) => {
    viaProxy(config);
    config.rate_limit.max_lobby_changes = 20;
  });
  const players: TestClient[] = [];
  try {
    // Four players, each with connection info at the 4096-byte cap, so every GameStarting is
    // ~16 KiB per member; three of them ready.
    for (let i = 0; i < 4; i++) {
      const player = await connectAs(server, `203.0.113.${60 + i}`);
      players.push(player);
      player.send(joinRoom("TOGL01", `p${i}`, { max_players: 4 }));
      await player.next("RoomJoined");
      const info = { type: "custom", data: "" };
      info.data = String(i).repeat(4096 - JSON.stringify(info).length);
      player.send({ type: "ProvideConnectionInfo", data: { connection_info: info } });
    }
    const [attacker, ...others] = players as [TestClient, ...TestClient[]];
    for (const other of others) other.send({ type: "PlayerReady" });
    for (const player of players) {
      while ((await player.waitFor("LobbyStateChanged")).data.ready_players.length < 3);
      player.drain();
    }
    // 300 toggles in a row: before the bucket, 150 GameStarting (~2.4 MiB) to each member.
    for (let i = 0; i < 300; i++) attacker.send({ type: "PlayerReady" });
    attacker.send({ type: "Ping" });
    let refused = 0;
    for (;;) {
      const message = await attacker.next();
      if (message.type === "Pong") break;
      if (message.type === "Error") {
        equal(message.data.error_code, "RATE_LIMIT_EXCEEDED");
        ok(
          /^Lobby change rate limit exceeded\. Try again in \d+ seconds\.$/.test(
            message.data.message,
          ),
        );
        refused++;
      }
    }
    equal(refused, 280);
    for (const other of others) {
      other.send({ type: "Ping" });
      let starts = 0;
      for (;;) {
        const message = await other.next();
        if (message.type === "Pong") break;
        if (message.type === "GameStarting") starts++;
      }
      equal(starts, 10);
      equal(other.socket.readyState, WebSocket.OPEN);
    }
  } finally {
    await closeAll(players);
  }
});

Deno.test("Attack 13: one address dropping more seats than its share ends its own oldest hold; another address's hold stays", async () => {
  // Before (session 28), one address could hold as many seats as its join, creation and
  // reconnect buckets allowed over a window, all out of the instance's max_held_seats.
  await using server = await serve((config) => {
    viaProxy(config);
    config.server.max_held_seats_per_ip = 3;
  });
  await using host = await connect(server);
  host.send({ type: "Authenticate", data: { app_id: "orbit", features: ["presence-events"] } });
  await host.next("Authenticated");
  await host.next("ProtocolInfo");
  host.send(joinRoom("HOLD13", "host", { max_players: 8 }));
  await host.next("RoomJoined");
  type Seat = { player_id: string; room_id: string; token: string };
  let named = 0;
  /** Joins HOLD13 from address `ip` and drops the connection: the seat is held. */
  const dropSeat = async (ip: string): Promise<Seat> => {
    const client = await connectAs(server, ip);
    client.send(joinRoom("HOLD13", `p${++named}`));
    const joined = (await client.next("RoomJoined")).data;
    await host.next("PlayerJoined");
    await client.close();
    equal((await host.next("PlayerDisconnected")).data.player_id, joined.player_id);
    return {
      player_id: joined.player_id,
      room_id: joined.room_id,
      token: joined.reconnection_token,
    };
  };
  const other = await dropSeat("198.51.100.7");
  const flood: Seat[] = [];
  for (let i = 0; i < 3; i++) flood.push(await dropSeat("203.0.113.9"));
  // A fourth from the same address ends that address's oldest hold, announced as at a window's end.
  const fourth = await connectAs(server, "203.0.113.9");
  fourth.send(joinRoom("HOLD13", "last"));
  const joined = (await fourth.next("RoomJoined")).data;
  await host.next("PlayerJoined");
  await fourth.close();
  equal((await host.next("PlayerLeft")).data.player_id, flood[0]!.player_id);
  equal((await host.next("PlayerDisconnected")).data.player_id, joined.player_id);
  const reconnect = async (seat: Seat) => {
    await using client = await connect(server);
    client.send({
      type: "Reconnect",
      data: { player_id: seat.player_id, room_id: seat.room_id, auth_token: seat.token },
    });
    const reply = await client.next();
    return reply.type === "Reconnected" ? reply.type : reply.data.error_code;
  };
  equal(await reconnect(flood[0]!), "RECONNECTION_EXPIRED");
  equal(await reconnect(other), "Reconnected", "another address's hold is untouched");
  equal(await reconnect(flood[2]!), "Reconnected", "the address's newer holds stay");
  if (TEST_CLUSTER === 0) {
    const metrics = parseExposition(await (await fetch(`${server.url}/metrics/prom`)).text());
    equal(metrics.get("signal_fish_held_seat_address_evictions_total"), 1);
    equal(metrics.get("signal_fish_held_seat_evictions_total"), 0);
  }
});

type Seat = { player_id: string; room_id: string; token: string };

/**
 * A flood of creations from `count` addresses, one room each in game `game(i)`; the flooders
 * stay connected. Returns them, the seats they took and how many creations were refused.
 */
async function floodRooms(
  server: SignalFishServer,
  count: number,
  game: (i: number) => string,
): Promise<{ flooders: TestClient[]; seats: Seat[]; refused: number }> {
  const flooders: TestClient[] = [];
  const seats: Seat[] = [];
  let refused = 0;
  for (let i = 0; i < count; i++) {
    const flooder = await connectAs(server, `203.0.113.${100 + i}`);
    flooders.push(flooder);
    flooder.send(joinRoom(null, "flood", { game_name: game(i) }));
    const reply = await flooder.next();
    if (reply.type === "RoomJoinFailed") {
      equal(reply.data.error_code, "MAX_ROOMS_PER_GAME_EXCEEDED");
      refused++;
      continue;
    }
    equal(reply.type, "RoomJoined");
    seats.push({
      player_id: reply.data.player_id,
      room_id: reply.data.room_id,
      token: reply.data.reconnection_token,
    });
  }
  return { flooders, seats, refused };
}

/** A creation in game `game` from a new player's address: its reply type, or the refusal's code. */
async function createAs(server: SignalFishServer, game: string): Promise<string> {
  await using player = await connectAs(server, "198.51.100.200");
  player.send(joinRoom(null, "real", { game_name: game }));
  const reply = await player.next();
  return reply.type === "RoomJoined" ? reply.type : reply.data.error_code;
}

/**
 * After the flooders holding `held` seats closed: a creation in `game` once the server has
 * handled their closes. Single instance: once every seat is held. Cluster: the instances' closes
 * and the directory writes they cause cannot all be awaited from here, so it tries until one
 * succeeds (a refused try reclaims nothing), for at most 3 s, far sooner than the 300 s the holds
 * would last.
 */
async function createOnceDropped(
  server: SignalFishServer,
  held: number,
  game: string,
): Promise<string> {
  if (TEST_CLUSTER === 0) {
    await waitUntil(() => server.engine.stats().heldSeats === held);
    return await createAs(server, game);
  }
  const deadline = Date.now() + 3000;
  let created: string;
  do created = await createAs(server, game); while (
    created !== "RoomJoined" && Date.now() < deadline
  );
  return created;
}

/** What a `Reconnect` with each of `seats`' tokens gets: reply type or error code, counted. */
async function reconnectOutcomes(
  server: SignalFishServer,
  seats: Seat[],
): Promise<Record<string, number>> {
  const outcomes: Record<string, number> = {};
  for (const seat of seats) {
    await using client = await connect(server);
    client.send({
      type: "Reconnect",
      data: { player_id: seat.player_id, room_id: seat.room_id, auth_token: seat.token },
    });
    const reply = await client.next();
    const outcome = reply.type === "Reconnected" ? reply.type : reply.data.error_code;
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  }
  return outcomes;
}

Deno.test("Attack 14: after a max_rooms flood whose players all dropped, a new player from another address creates a room at once", async () => {
  // Before (session 29), rooms keeping only held seats kept server.max_rooms full: a new
  // player's creation was refused for up to reconnection_window (300 s) after the flood stopped.
  const perInstance = 6;
  const instances = Math.max(1, TEST_CLUSTER);
  await using server = await serve((config) => {
    viaProxy(config);
    config.server.max_rooms = perInstance;
  });
  // One room per address under its own game name, as a flood from many addresses does. Behind
  // the proxy consecutive connections land on different instances, each with its own cap.
  const { flooders, seats, refused } = await floodRooms(
    server,
    instances * (perInstance + 1),
    (i) => `flood-${i}`,
  );
  try {
    deepEqual([seats.length, refused], [instances * perInstance, instances]);
    // While the flooders are connected their rooms are attended: the cap refuses.
    equal(await createAs(server, "real"), "MAX_ROOMS_PER_GAME_EXCEEDED");
    // The flood stops: every flooder drops, its seat held for reconnection_window.
    await closeAll(flooders);
    equal(await createOnceDropped(server, seats.length, "real"), "RoomJoined");
    // The instance's room unattended longest gave way: exactly one flooder's seat ended, as at
    // the end of its window; the others are resumable.
    deepEqual(await reconnectOutcomes(server, seats), {
      Reconnected: seats.length - 1,
      RECONNECTION_EXPIRED: 1,
    });
    if (TEST_CLUSTER === 0) {
      const metrics = parseExposition(await (await fetch(`${server.url}/metrics/prom`)).text());
      equal(metrics.get("signal_fish_rooms_unattended_reclaimed_total"), 1);
    }
  } finally {
    await closeAll(flooders);
  }
});

Deno.test("Attack 14 (one game): held seats alone no longer keep max_rooms_per_game full after its players dropped", async () => {
  await using server = await serve((config) => {
    viaProxy(config);
    config.server.max_rooms_per_game = 6;
  });
  const { flooders, seats, refused } = await floodRooms(server, 7, () => "orbit");
  try {
    deepEqual([seats.length, refused], [6, 1]);
    equal(await createAs(server, "orbit"), "MAX_ROOMS_PER_GAME_EXCEEDED");
    await closeAll(flooders);
    equal(await createOnceDropped(server, seats.length, "orbit"), "RoomJoined");
    // One instance reclaims its room unattended longest. In a cluster unattended rooms stop
    // counting against the game's cap at once, and each instance reclaims its own when its
    // engine reaches the cap (docs/spec/SERVER.md §8.3 "Claim"): with the flood's six rooms
    // spread over three instances none is reached, so every seat stays resumable.
    const expired = TEST_CLUSTER === 0 ? 1 : 0;
    deepEqual(await reconnectOutcomes(server, seats), {
      Reconnected: seats.length - expired,
      ...(expired > 0 ? { RECONNECTION_EXPIRED: expired } : {}),
    });
  } finally {
    await closeAll(flooders);
  }
});
