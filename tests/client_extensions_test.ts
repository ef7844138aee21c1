/**
 * The client library's helpers for the game-developer extensions against a real server:
 * join-only / create-only (docs/spec/EXTENSIONS.md E9), presence events (E10), authority handover (E11),
 * and resume after a reload from the session store (docs/spec/PROTOCOL.md §7.11).
 *
 * @module
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import {
  type ClientOptions,
  lookupRoom,
  SignalFishClient,
  SignalFishConnectionError,
  SignalFishError,
} from "../src/client/client.ts";
import type { SignalFishServer } from "../src/server.ts";
import { memoryStore, nextEvent, refusedWith } from "./client_helpers.ts";
import { secretApp, serve, TIMEOUT_MS } from "./helpers.ts";

const GAME = "orbit";
const OPTIONS: ClientOptions = {
  heartbeatIntervalMs: 0,
  requestTimeoutMs: TIMEOUT_MS,
  session: false,
};

function client(server: SignalFishServer, options: ClientOptions = {}): Promise<SignalFishClient> {
  return SignalFishClient.connect(server.url, { ...OPTIONS, ...options });
}

Deno.test("client.resume() after a reload takes the seat back and the others see it return", async () => {
  await using server = await serve();
  const store = memoryStore();
  const alice = await client(server, { session: store });
  const created = await alice.create({ game_name: GAME, player_name: "alice", max_players: 2 });
  await using bob = await client(server);
  const joined = nextEvent(alice, "PlayerJoined");
  await bob.join({ game_name: GAME, room_code: created.room_code, player_name: "bob" });
  await joined;
  await alice.close(); // The tab reloads: the server holds alice's seat.

  const returned = nextEvent(bob, "PlayerReconnected");
  await using reloaded = await client(server, { session: store });
  const resumed = await reloaded.resume();
  equal(resumed?.role, "player");
  equal(reloaded.selfId, created.player_id);
  equal((await returned).player_id, created.player_id);
  equal(reloaded.room!.authorityPlayer, created.player_id, "authority kept");
  equal(await reloaded.resume(), undefined, "already seated: nothing to resume");
  equal((await reloaded.storedSession())?.role, "player", "and the stored seat is kept");
  deepEqual(reloaded.room!.players.map((p) => p.name), ["alice", "bob"]);
  const live = nextEvent(bob, "gameData");
  reloaded.sendGameData("back");
  equal((await live).data, "back");

  // Leaving forgets the stored seat.
  await reloaded.leave();
  equal(await reloaded.storedSession(), undefined);
});

Deno.test("client.join() never creates and client.create() never joins (E9)", async () => {
  await using server = await serve();
  await using alice = await client(server);
  await using bob = await client(server);
  const info = await alice.authenticate({ app_id: "demo" });
  ok(info.protocolInfo.capabilities.includes("join-modes"), "capability advertised");

  await rejects(
    alice.join({ game_name: GAME, room_code: "NOSUCH", player_name: "alice" }),
    refusedWith("ROOM_NOT_FOUND", "RoomJoinFailed"),
  );
  equal(await alice.lookupRoom(GAME, "NOSUCH"), null, "nothing was created");

  const created = await alice.create({
    game_name: GAME,
    room_code: "MYROOM",
    player_name: "alice",
  });
  equal(created.room_code, "MYROOM");
  await rejects(
    bob.create({ game_name: GAME, room_code: "myroom", player_name: "bob" }),
    refusedWith("ROOM_CREATION_FAILED", "RoomJoinFailed"),
  );
  const joined = await bob.join({ game_name: GAME, room_code: "myroom", player_name: "bob" });
  equal(joined.room_id, created.room_id);
  const summary = await bob.lookupRoom(GAME, "myroom");
  equal(summary?.players, 2);
});

Deno.test("presenceEvents: opted-in members hear that a player dropped (E10)", async () => {
  await using server = await serve();
  await using alice = await client(server, { presenceEvents: true });
  deepEqual(alice.features, ["presence-events"]);
  const created = await alice.create({ game_name: GAME, player_name: "alice", max_players: 3 });
  await using carol = await client(server); // v2 client: not told.
  await carol.join({ game_name: GAME, room_code: created.room_code, player_name: "carol" });
  const bob = await client(server, { reconnect: false });
  const bobJoined = await bob.join({
    game_name: GAME,
    room_code: created.room_code,
    player_name: "bob",
  });
  const carolMessages: string[] = [];
  carol.on("message", (m) => carolMessages.push(m.type));

  const dropped = nextEvent(alice, "PlayerDisconnected");
  const roomWithDrop = nextEvent(alice, "room", (room) => (room?.dropped.length ?? 0) > 0);
  await bob.close(); // An unexpected disconnect: the seat is held.
  const event = await dropped;
  equal(event.player_id, bobJoined.player_id);
  ok(event.seat_held_secs > 0 && event.seat_held_secs <= 300, `${event.seat_held_secs}`);
  deepEqual((await roomWithDrop)!.dropped.map((d) => d.player_id), [bobJoined.player_id]);
  await carol.ping();
  ok(!carolMessages.includes("PlayerDisconnected"), carolMessages.join());
});

Deno.test("create({ authority_handover: true }): authority passes on when its holder leaves (E11)", async () => {
  await using server = await serve();
  const alice = await client(server);
  const created = await alice.create({
    game_name: GAME,
    player_name: "alice",
    max_players: 3,
    authority_handover: true,
  });
  await using bob = await client(server);
  const bobJoined = await bob.join({
    game_name: GAME,
    room_code: created.room_code,
    player_name: "bob",
  });
  await using carol = await client(server);
  await carol.join({ game_name: GAME, room_code: created.room_code, player_name: "carol" });
  equal((await bob.lookupRoom(GAME, created.room_code))?.authority_handover, true);

  const changed = nextEvent(bob, "AuthorityChanged");
  await alice.leave();
  await alice.close();
  deepEqual(await changed, { authority_player: bobJoined.player_id, you_are_authority: true });
  equal(bob.room!.authorityPlayer, bobJoined.player_id);
  deepEqual(bob.room!.players.filter((p) => p.is_authority).map((p) => p.name), ["bob"]);
});

Deno.test("lookupRoom() maps 200, 404, 429 and an unreachable server", async () => {
  const answers: Record<string, Response> = {
    "/v2/rooms/orbit/Q7KM3P": Response.json({
      room_code: "Q7KM3P",
      game_name: "orbit",
      players: 1,
      max_players: 2,
      spectators: 0,
      lobby_state: "waiting",
      supports_authority: true,
      relay_type: "matchbox",
      authority_handover: false,
    }),
    "/v2/rooms/orbit/NOSUCH": Response.json({
      message: "Room not found",
      error_code: "ROOM_NOT_FOUND",
    }, { status: 404 }),
    "/v2/rooms/orbit/BUSY": Response.json({
      message: "Join attempt rate limit exceeded. Try again in 3 seconds.",
      error_code: "RATE_LIMIT_EXCEEDED",
    }, { status: 429, headers: { "retry-after": "3" } }),
  };
  const paths: string[] = [];
  await using http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    paths.push(path);
    return answers[path] ?? new Response("Not Found", { status: 404 });
  });
  // Any form of the server's address works: http base, ws endpoint.
  const base = `http://127.0.0.1:${http.addr.port}`;
  equal((await lookupRoom(base, "orbit", "Q7KM3P"))?.players, 1);
  equal(await lookupRoom(`ws://127.0.0.1:${http.addr.port}/v2/ws`, "orbit", "NOSUCH"), null);
  await rejects(lookupRoom(base, "orbit", "BUSY"), (error) => {
    ok(error instanceof SignalFishError);
    equal(error.code, "RATE_LIMIT_EXCEEDED");
    ok(error.message.includes("Try again in 3 seconds"));
    return true;
  });
  deepEqual(paths, ["/v2/rooms/orbit/Q7KM3P", "/v2/rooms/orbit/NOSUCH", "/v2/rooms/orbit/BUSY"]);
  await rejects(lookupRoom("http://127.0.0.1:9", "orbit", "Q7KM3P"), SignalFishConnectionError);
});

Deno.test("lookupRoom() with app auth: the right secret finds the app's room, a wrong one or an unknown app rejects by code", async () => {
  await using server = await serve((config) => {
    config.security.require_websocket_auth = true;
    config.security.authorized_apps = [secretApp("orbit-app", "s3cret-s3cret-s3cret")];
  });
  await using alice = await SignalFishClient.connect(server.wsUrl, {
    ...OPTIONS,
    auth: { app_id: "orbit-app", app_secret: "s3cret-s3cret-s3cret" },
  });
  const created = await alice.create({ game_name: GAME, player_name: "alice" });
  const app = { appId: "orbit-app", appSecret: "s3cret-s3cret-s3cret" };
  equal((await lookupRoom(server.url, GAME, created.room_code, app))?.players, 1);
  for (
    const [wrong, code] of [
      [{ appId: "orbit-app", appSecret: "guess-guess-guess" }, "UNAUTHORIZED"],
      [{ appId: "no-such-app", appSecret: "guess-guess-guess" }, "INVALID_APP_ID"],
    ] as const
  ) {
    await rejects(lookupRoom(server.url, GAME, created.room_code, wrong), (error) => {
      ok(error instanceof SignalFishError, String(error));
      equal(error.code, code);
      return true;
    });
  }
});
