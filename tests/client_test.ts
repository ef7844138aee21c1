/**
 * The client library (src/client/client.ts) against a real server over real WebSockets: every
 * request, its typed errors, room-state tracking and events.
 *
 * @module
 */
import { inProcessOnly } from "./cluster_serve.ts";
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import {
  type ClientOptions,
  SignalFishClient,
  SignalFishConnectionError,
  type SignalFishError,
} from "../src/client/client.ts";
import type { SignalFishServer } from "../src/server.ts";
import { memoryStore, nextEvent, refusedWith } from "./client_helpers.ts";
import { openApps, serve, TIMEOUT_MS } from "./helpers.ts";

const GAME = "orbit";
const OPTIONS: ClientOptions = { heartbeatIntervalMs: 0, requestTimeoutMs: TIMEOUT_MS };

function client(server: SignalFishServer, options: ClientOptions = {}): Promise<SignalFishClient> {
  return SignalFishClient.connect(server.url, { ...OPTIONS, ...options });
}

/** Rejects unless `promise` rejects with a SignalFishError carrying `code` and `messageType`. */
function rejectsWith(
  promise: Promise<unknown>,
  code: string,
  messageType: SignalFishError["messageType"],
): Promise<void> {
  return rejects(promise, refusedWith(code, messageType));
}

/** Two players in a 2-seat room: alice created it, bob joined by the lower-cased code. */
async function twoPlayers(server: SignalFishServer, extra: { supports_authority?: boolean } = {}) {
  const alice = await client(server);
  const bob = await client(server);
  const created = await alice.createRoom({
    game_name: GAME,
    player_name: "alice",
    max_players: 2,
    ...extra,
  });
  const joinedByAlice = nextEvent(alice, "PlayerJoined");
  const joined = await bob.joinRoom({
    game_name: GAME,
    room_code: created.room_code.toLowerCase(),
    player_name: "bob",
  });
  await joinedByAlice;
  return {
    alice,
    bob,
    code: created.room_code,
    aliceId: created.player_id,
    bobId: joined.player_id,
  };
}

Deno.test("SignalFishClient.authenticate() resolves Authenticated and ProtocolInfo once", async () => {
  await using server = await serve();
  await using alice = await client(server);
  equal(alice.status, "open");
  equal(alice.url, `${server.wsUrl}`);
  const result = await alice.authenticate({
    app_id: "demo",
    platform: "web",
    sdk_version: "0.1.0",
  });
  equal(result.authenticated.app_name, "default");
  ok(result.protocolInfo.capabilities.includes("targeted-game-data"));
  equal(result.protocolInfo.platform, "web");
  equal(result.gameDataFormat, "json");
  equal(alice.gameDataFormat, "json");
  // The server ignores a second Authenticate; the client answers from the first result.
  equal(await alice.authenticate({ app_id: "demo" }), result);
  ok((await alice.ping()) >= 0);

  // Two calls at once: one Authenticate (the server would not answer a second, and that call
  // would time out), the same result for both.
  await using bob = await client(server);
  const [first, second] = await Promise.all([
    bob.authenticate({ app_id: "demo" }),
    bob.authenticate({ app_id: "demo" }),
  ]);
  equal(second, first);
  equal(first.authenticated.app_name, "default");
});

Deno.test("SignalFishClient.createRoom() and joinRoom() keep both players' room state", async () => {
  await using server = await serve();
  const { alice, bob, code, aliceId, bobId } = await twoPlayers(server);
  await using _alice = alice;
  await using _bob = bob;
  equal(code.length, 6);
  for (const [who, self] of [[alice, aliceId], [bob, bobId]] as const) {
    const room = who.room!;
    equal(room.role, "player");
    equal(room.roomCode, code);
    equal(room.selfId, self);
    equal(who.selfId, self);
    equal(room.maxPlayers, 2);
    equal(room.lobbyState, "lobby");
    deepEqual(room.players.map((p) => p.name), ["alice", "bob"]);
    equal(room.authorityPlayer, aliceId);
  }
  // The server issues reconnection tokens only with reconnection enabled (docs/spec/EXTENSIONS.md E1).
  const tokenIssued = (await nextRoomJoinedToken(server)) !== undefined;
  equal(alice.reconnectionToken !== undefined, tokenIssued);
});

/** Whether this server build puts a reconnection token into RoomJoined. */
async function nextRoomJoinedToken(server: SignalFishServer): Promise<string | undefined> {
  await using probe = await client(server);
  const joined = await probe.createRoom({ game_name: GAME, player_name: "probe" });
  return joined.reconnection_token;
}

Deno.test("SignalFishClient.joinRoom() rejects with the spec's error codes", async () => {
  await using server = await serve();
  const { alice, bob, code } = await twoPlayers(server);
  await using _alice = alice;
  await using _bob = bob;
  await using carol = await client(server);
  await rejectsWith(
    carol.joinRoom({ game_name: GAME, room_code: code, player_name: "carol" }),
    "ROOM_FULL",
    "RoomJoinFailed",
  );
  await rejectsWith(
    carol.joinRoom({ game_name: GAME, room_code: "AB", player_name: "carol" }),
    "INVALID_ROOM_CODE",
    "RoomJoinFailed",
  );
  await rejectsWith(
    carol.createRoom({ game_name: "", player_name: "carol" }),
    "INVALID_GAME_NAME",
    "RoomJoinFailed",
  );
  await rejectsWith(
    alice.createRoom({ game_name: GAME, player_name: "alice" }),
    "ALREADY_IN_ROOM",
    "RoomJoinFailed",
  );
  const open = await carol.createRoom({ game_name: GAME, player_name: "carol", max_players: 3 });
  await using dave = await client(server);
  await rejectsWith(
    dave.joinRoom({ game_name: GAME, room_code: open.room_code, player_name: "CAROL" }),
    "ROOM_CREATION_FAILED",
    "RoomJoinFailed",
  );
  equal(dave.room, undefined);
});

Deno.test("SignalFishClient.setReady() sets readiness and sees the game start", async () => {
  await using server = await serve();
  const { alice, bob, aliceId, bobId } = await twoPlayers(server);
  await using _alice = alice;
  await using _bob = bob;
  const seenByBob = nextEvent(bob, "LobbyStateChanged");
  const ready = await alice.setReady(true);
  deepEqual(ready, { lobby_state: "lobby", ready_players: [aliceId], all_ready: false });
  deepEqual((await seenByBob).ready_players, [aliceId]);
  equal(bob.room!.players.find((p) => p.id === aliceId)!.is_ready, true);

  // Already ready: nothing is sent (PlayerReady would toggle it off).
  let lobbyMessages = 0;
  const off = bob.on("LobbyStateChanged", () => lobbyMessages++);
  deepEqual((await alice.setReady(true)).ready_players, [aliceId]);
  await bob.ping(); // Per-connection order: anything alice caused would have arrived by now.
  await alice.ping();
  equal(lobbyMessages, 0);
  off();

  const starting = nextEvent(alice, "GameStarting");
  const finalized = await bob.setReady();
  equal(finalized.lobby_state, "finalized");
  equal(finalized.all_ready, true);
  deepEqual((await starting).peer_connections.map((p) => p.player_id), [aliceId, bobId]);
  equal(alice.room!.lobbyState, "finalized");

  const back = await bob.setReady(false);
  equal(back.lobby_state, "lobby");
  deepEqual(back.ready_players, [aliceId]);
});

Deno.test("SignalFishClient.requestAuthority() resolves grants and rejects refusals by code", async () => {
  await using server = await serve();
  const { alice, bob, aliceId, bobId } = await twoPlayers(server);
  await using _alice = alice;
  await using _bob = bob;
  await rejectsWith(bob.requestAuthority(true), "AUTHORITY_CONFLICT", "AuthorityResponse");
  await rejectsWith(bob.requestAuthority(false), "AUTHORITY_DENIED", "AuthorityResponse");
  const bobSeesChange = nextEvent(bob, "AuthorityChanged");
  deepEqual(await alice.requestAuthority(false), { granted: true, reason: null });
  deepEqual(await bobSeesChange, { authority_player: null, you_are_authority: false });
  equal(bob.room!.authorityPlayer, null);
  const aliceSees = nextEvent(alice, "AuthorityChanged");
  equal((await bob.requestAuthority()).granted, true);
  equal((await aliceSees).authority_player, bobId);
  equal(alice.room!.authorityPlayer, bobId);
  equal(alice.room!.players.find((p) => p.id === bobId)!.is_authority, true);
  equal(alice.room!.players.find((p) => p.id === aliceId)!.is_authority, false);

  await using loner = await client(server);
  await rejectsWith(loner.requestAuthority(), "NOT_IN_ROOM", "AuthorityResponse");
  await loner.createRoom({ game_name: GAME, player_name: "loner", supports_authority: false });
  await rejectsWith(loner.requestAuthority(), "AUTHORITY_NOT_SUPPORTED", "AuthorityResponse");
});

Deno.test("SignalFishClient.sendGameData() broadcasts; sendTo() reaches one player only", async () => {
  await using server = await serve();
  const alice = await client(server);
  await using _alice = alice;
  const room = await alice.createRoom({ game_name: GAME, player_name: "alice", max_players: 3 });
  await using bob = await client(server);
  const bobId = (await bob.joinRoom({ ...joinAs("bob"), room_code: room.room_code })).player_id;
  await using carol = await client(server);
  await carol.joinRoom({ ...joinAs("carol"), room_code: room.room_code });
  await using watcher = await client(server);
  await watcher.spectate({ game_name: GAME, room_code: room.room_code, spectator_name: "w" });

  const received = new Map<SignalFishClient, unknown[]>([[bob, []], [carol, []], [watcher, []]]);
  for (const [who, list] of received) who.on("gameData", (event) => list.push(event));
  alice.sendGameData({ op: "hello", n: 1 });
  alice.sendTo(bobId, { signal: "offer" });
  alice.sendGameData([1.5, null, "x"]);
  for (const who of [alice, bob, carol, watcher]) await who.ping();
  // The pings prove ordering per connection only; wait for the last broadcast explicitly.
  const from = room.player_id;
  const event = (data: unknown) => ({ from_player: from, data, binary: false, replayed: false });
  deepEqual(received.get(bob), [
    event({ op: "hello", n: 1 }),
    event({ signal: "offer" }),
    event([1.5, null, "x"]),
  ]);
  deepEqual(received.get(carol), [event({ op: "hello", n: 1 }), event([1.5, null, "x"])]);
  deepEqual(received.get(watcher), [event({ op: "hello", n: 1 }), event([1.5, null, "x"])]);

  // Refusals of fire-and-forget sends arrive as `error` events with the spec's code.
  const selfError = nextEvent(alice, "error");
  alice.sendTo(from, "me?");
  const error = await selfError;
  equal(error.code, "INVALID_INPUT");
  equal(error.message, "Cannot send game data to yourself");
  const notMember = nextEvent(alice, "error");
  alice.sendTo(crypto.randomUUID(), "who?");
  equal((await notMember).message, "Target player is not in this room");
  const spectatorError = nextEvent(watcher, "error");
  watcher.sendGameData("nope");
  equal((await spectatorError).code, "SPECTATOR_NOT_ALLOWED");
});

Deno.test("SignalFishClient: a bad to_player's Error is no answer to a join or spectate sent after it", async () => {
  // The server answers in order (docs/spec/PROTOCOL.md §1.5): the `Error{INVALID_INPUT}` of a bad
  // target (§7.6, docs/spec/EXTENSIONS.md E4) arrives while the requests sent after the game data
  // wait. It is the refusal of a fire-and-forget send (an `error` event), not their answer: only
  // the parse error "Invalid client message" (§2.3) answers a join or a spectate.
  await using server = await serve();
  const { alice, bob, code } = await twoPlayers(server);
  await using _alice = alice;
  await using _bob = bob;
  const errors: string[] = [];
  bob.on("error", (error) => errors.push(`${error.code} ${error.message}`));

  bob.sendTo(crypto.randomUUID(), { signal: "offer" }); // e.g. a peer that just left
  const left = bob.leave();
  const joined = await bob.join({ game_name: GAME, room_code: code, player_name: "bob" });
  await left;
  equal(joined.room_code, code);
  equal(bob.room?.role, "player");

  bob.sendTo(crypto.randomUUID(), { signal: "offer" });
  const leftAgain = bob.leave();
  const watching = await bob.spectate({ game_name: GAME, room_code: code, spectator_name: "bob" });
  await leftAgain;
  equal(watching.room_code, code);
  equal(bob.room?.role, "spectator");
  deepEqual(errors, [
    "INVALID_INPUT Target player is not in this room",
    "INVALID_INPUT Target player is not in this room",
  ]);

  // A parse error still answers the join that caused it (max_players above 255 is no u8).
  await rejectsWith(
    alice.joinRoom({ game_name: GAME, player_name: "x", max_players: 300 }),
    "INVALID_INPUT",
    "Error",
  );
});

function joinAs(name: string) {
  return { game_name: GAME, player_name: name };
}

Deno.test("SignalFishClient.spectate() watches a room and leave() stops watching", async () => {
  await using server = await serve();
  const { alice, bob, code, aliceId } = await twoPlayers(server);
  await using _alice = alice;
  await using _bob = bob;
  await using watcher = await client(server);
  await rejectsWith(
    watcher.spectate({ game_name: GAME, room_code: "ZZZZZZ", spectator_name: "w" }),
    "ROOM_NOT_FOUND",
    "SpectatorJoinFailed",
  );
  const aliceSees = nextEvent(alice, "NewSpectatorJoined");
  const joined = await watcher.spectate({
    game_name: GAME,
    room_code: code.toLowerCase(),
    spectator_name: "watcher",
  });
  equal(joined.room_code, code);
  equal((await aliceSees).spectator.name, "watcher");
  equal(alice.room!.spectators.length, 1);
  const view = watcher.room!;
  equal(view.role, "spectator");
  equal(view.selfId, joined.spectator_id);
  equal(view.authorityPlayer, aliceId);
  deepEqual(view.players.map((p) => p.name), ["alice", "bob"]);

  await rejectsWith(watcher.setReady(), "SPECTATOR_NOT_ALLOWED", "Error");
  await rejectsWith(watcher.requestAuthority(), "SPECTATOR_NOT_ALLOWED", "Error");
  await rejectsWith(
    watcher.provideConnectionInfo({ type: "direct", host: "127.0.0.1", port: 1 }),
    "SPECTATOR_NOT_ALLOWED",
    "Error",
  );
  const readySeen = nextEvent(watcher, "LobbyStateChanged");
  await bob.setReady();
  equal((await readySeen).ready_players.length, 1);
  equal(watcher.room!.readyPlayers.length, 1);

  const aliceSeesLeave = nextEvent(alice, "SpectatorDisconnected");
  const roomEvents: unknown[] = [];
  watcher.on("room", (room) => roomEvents.push(room));
  await watcher.leave();
  equal(watcher.room, undefined);
  deepEqual(roomEvents, [null]);
  equal((await aliceSeesLeave).reason, "voluntary_leave");
  equal(alice.room!.spectators.length, 0);
});

Deno.test("SignalFishClient.leave() leaves the room and others see the player go", async () => {
  await using server = await serve();
  const { alice, bob, bobId } = await twoPlayers(server);
  await using _alice = alice;
  await using _bob = bob;
  const left = nextEvent(alice, "PlayerLeft");
  await bob.leave();
  equal(bob.room, undefined);
  equal(bob.reconnectionToken, undefined);
  equal((await left).player_id, bobId);
  const room = alice.room!;
  deepEqual(room.players.map((p) => p.name), ["alice"]);
  equal(room.lobbyState, "waiting");
  // Not in a room: nothing to send, resolves at once; the connection is still usable.
  await bob.leave();
  await rejectsWith(bob.setReady(), "NOT_IN_ROOM", "Error");
  await rejectsWith(
    bob.provideConnectionInfo({ type: "direct", host: "127.0.0.1", port: 1 }),
    "NOT_IN_ROOM",
    "Error",
  );
  await alice.provideConnectionInfo({ type: "webrtc", sdp: null, ice_candidates: [] });
});

Deno.test("SignalFishClient reports connection failures as SignalFishConnectionError", async () => {
  const server = await serve();
  const url = server.url;
  const alice = await client(server, { reconnect: false });
  await alice.createRoom({ game_name: GAME, player_name: "alice" });
  const closed = nextEvent(alice, "close");
  const pending = alice.requestAuthority(false).catch((error) => error);
  const ping = alice.ping().catch((error) => error);
  await server.close(); // 1001 "Server shutting down"
  const event = await closed;
  const settled = await Promise.all([pending, ping]);
  // The release may have been answered before the shutdown; the ping races it.
  for (const outcome of settled) {
    if (outcome instanceof Error) ok(outcome instanceof SignalFishConnectionError);
  }
  // 1001 normally; 1006 (a reset, which Deno reports as 0) when the server closed with our
  // frames still unread.
  ok([1001, 1006].includes(event.code), `close code ${event.code}`);
  equal(event.reconnecting, false);
  equal(alice.status, "closed");
  equal(alice.room, undefined);
  await rejects(alice.ping(), SignalFishConnectionError);
  ok(throwsConnection(() => alice.sendGameData("x")));
  await alice.close();
  await rejects(
    SignalFishClient.connect(url, { ...OPTIONS, reconnect: false }),
    SignalFishConnectionError,
  );
});

Deno.test("SignalFishClient's promise-returning requests reject, never throw, unless open", async () => {
  await using server = await serve();
  const closed = await client(server);
  await closed.createRoom({ game_name: GAME, player_name: "alice" });
  await closed.close();
  const idle = new SignalFishClient(server.url, OPTIONS); // Never opened.
  const join = { game_name: GAME, room_code: "ABCDEF", player_name: "bob" };
  const requests: [string, (c: SignalFishClient) => Promise<unknown>][] = [
    ["authenticate", (c) => c.authenticate({ app_id: "demo" })],
    ["joinRoom", (c) => c.joinRoom(join)],
    ["createRoom", (c) => c.createRoom({ game_name: GAME, player_name: "bob" })],
    ["join", (c) => c.join(join)],
    ["create", (c) => c.create(join)],
    ["joinOrCreate", (c) => c.joinOrCreate(join)],
    ["spectate", (c) => c.spectate({ ...join, spectator_name: "nina" })],
    ["setReady", (c) => c.setReady(true)],
    ["requestAuthority", (c) => c.requestAuthority(true)],
    [
      "provideConnectionInfo",
      (c) => c.provideConnectionInfo({ type: "direct", host: "h", port: 1 }),
    ],
    ["ping", (c) => c.ping()],
  ];
  for (const [who, target] of [["closed", closed], ["idle", idle]] as const) {
    for (const [name, call] of requests) {
      let promise: Promise<unknown>;
      try {
        promise = call(target);
      } catch (error) {
        throw new Error(`${name}() on a ${who} client threw instead of rejecting: ${error}`);
      }
      await rejects(promise, SignalFishConnectionError, `${name}() on a ${who} client`);
    }
  }
});

Deno.test("SignalFishClient: a throwing listener neither stops the others nor the process", async () => {
  await using server = await serve();
  const bug = new Error("bug in the game's room listener");
  // By default the exception is logged, never rethrown or reported as uncaught (Deno's
  // reportError would end the test run here). A throwing hook is logged the same way.
  const logged: unknown[][] = [];
  const consoleError = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    await using bob = await client(server);
    bob.once("room", () => {
      throw bug;
    });
    await bob.createRoom({ game_name: GAME, player_name: "bob" });
    await using carol = await client(server, {
      onListenerError: () => {
        throw new Error("bug in the hook");
      },
    });
    carol.once("room", () => {
      throw bug;
    });
    await carol.createRoom({ game_name: GAME, player_name: "carol" });
    await new Promise((resolve) => setTimeout(resolve, 0)); // An uncaught error would land here.
  } finally {
    console.error = consoleError;
  }
  deepEqual(logged.map((args) => (args.at(-1) as Error).message), [
    "bug in the game's room listener",
    "bug in the hook",
    "bug in the game's room listener",
  ]);
  ok(String(logged[0]![0]).includes('"room" listener threw'), String(logged[0]![0]));

  // With the onListenerError hook: it gets the exception and the event's name.
  const reported: [unknown, string][] = [];
  await using alice = await client(server, {
    onListenerError: (error, event) => reported.push([error, event]),
  });
  let after = 0;
  alice.on("room", () => {
    throw bug;
  });
  alice.on("room", () => after++);
  alice.once("RoomJoined", () => {
    throw bug;
  });
  const created = await alice.createRoom({ game_name: GAME, player_name: "alice" });
  equal(after, 1, "the next listener still ran");
  deepEqual(reported, [[bug, "room"], [bug, "RoomJoined"]]);
  equal(alice.room!.roomCode, created.room_code, "the client applied the message");
  ok((await alice.ping()) >= 0, "and carries on");
});

function throwsConnection(action: () => void): boolean {
  try {
    action();
  } catch (error) {
    return error instanceof SignalFishConnectionError;
  }
  return false;
}

Deno.test("SignalFishClient.sendBinary() needs a MessagePack connection", async () => {
  await using server = await serve();
  await using alice = await client(server);
  await alice.authenticate({ app_id: "demo", game_data_format: "message_pack" });
  if (alice.gameDataFormat === "message_pack") return; // Covered by the MessagePack tests.
  try {
    alice.sendGameData({ x: 1 }, { binary: true });
    ok(false, "expected a TypeError");
  } catch (error) {
    ok(error instanceof TypeError);
  }
});

/**
 * A WebSocket class for the client whose connections fail (to a closed port) until `open()` is
 * called: it holds automatic reconnection back until a test has arranged the missed messages.
 */
function gatedWebSocket() {
  let gateOpen = true;
  class Gated extends WebSocket {
    constructor(url: string) {
      super(gateOpen ? url : "ws://127.0.0.1:9/closed");
    }
  }
  return {
    WebSocket: Gated,
    close: () => gateOpen = false,
    open: () => gateOpen = true,
  };
}

Deno.test("SignalFishClient restores its seat after a dropped socket and replays missed data", {
  ignore: inProcessOnly("it drops the socket with server.edge.close()"),
}, async () => {
  await using server = await serve((config) => config.server.enable_reconnection = true);
  const gate = gatedWebSocket();
  await using alice = await client(server, {
    WebSocket: gate.WebSocket,
    reconnect: { initialDelayMs: 10, maxDelayMs: 40, maxAttempts: 200 },
  });
  await alice.authenticate({ app_id: "demo" });
  const created = await alice.createRoom({ game_name: GAME, player_name: "alice", max_players: 2 });
  const firstToken = alice.reconnectionToken;
  ok(firstToken !== undefined && firstToken.length === 43, "RoomJoined carries a token (E1)");
  await using bob = await client(server);
  const bobJoined = nextEvent(alice, "PlayerJoined");
  await bob.joinRoom({ game_name: GAME, room_code: created.room_code, player_name: "bob" });
  await bobJoined;

  const events: string[] = [];
  alice.on("gameData", (e) => events.push(`gameData ${JSON.stringify(e.data)} ${e.replayed}`));
  alice.on("LobbyStateChanged", (e) => events.push(`lobby ${e.ready_players.length}`));
  alice.on("close", (e) => events.push(`close ${e.code} ${e.reconnecting}`));
  alice.on("reconnected", (e) => events.push(`reconnected ${e.missed_events.length}`));
  const reconnected = nextEvent(alice, "reconnected");
  const bobSeesReturn = nextEvent(bob, "PlayerReconnected");

  gate.close();
  // Drop alice's socket from the server side (the connection id is her player id): a held-seat
  // close (docs/spec/PROTOCOL.md §1.6), so the seat waits for her with a replay buffer.
  server.edge.close(created.player_id, 1011, "Internal error", Date.now());
  bob.sendGameData("while you were away");
  bob.sendTo(created.player_id, { signal: "offer" });
  await bob.setReady(true);
  gate.open();

  const data = await reconnected;
  equal((await bobSeesReturn).player_id, created.player_id);
  equal(data.replay_truncated, false);
  deepEqual(events, [
    "close 1011 true",
    'gameData "while you were away" true',
    'gameData {"signal":"offer"} true',
    "lobby 1",
    "reconnected 3",
  ]);
  equal(alice.status, "open");
  equal(alice.selfId, created.player_id);
  ok(alice.reconnectionToken !== firstToken, "the token rotates (E2)");
  const room = alice.room!;
  deepEqual(room.players.map((p) => [p.name, p.is_ready]), [["alice", false], ["bob", true]]);
  equal(room.authorityPlayer, created.player_id);

  // The restored connection carries requests and live data both ways.
  const live = nextEvent(bob, "gameData");
  alice.sendGameData("back");
  equal((await live).data, "back");
  deepEqual((await alice.setReady(true)).lobby_state, "finalized");
});

Deno.test("SignalFishClient waits out the server's reconnect rate limit and keeps its seat", async () => {
  // One Reconnect per 2 s per IP (docs/spec/PROTOCOL.md §7.11.4, docs/spec/SERVER.md §3.4).
  await using server = await serve((config) => {
    config.server.enable_reconnection = true;
    config.rate_limit.max_reconnect_attempts = 1;
    config.rate_limit.time_window = 2;
  });
  await using alice = await client(server, {
    reconnect: { initialDelayMs: 10, maxDelayMs: 40, maxAttempts: 5 },
  });
  const created = await alice.createRoom({ game_name: GAME, player_name: "alice", max_players: 2 });
  await using bob = await client(server);
  const bobJoined = nextEvent(alice, "PlayerJoined");
  await bob.joinRoom({ game_name: GAME, room_code: created.room_code, player_name: "bob" });
  await bobJoined;
  const refusals: string[] = [];
  alice.on(
    "ReconnectionFailed",
    (failed) => refusals.push(`${failed.error_code} ${failed.reason}`),
  );
  const gaveUp: unknown[] = [];
  alice.on("reconnectFailed", (error) => gaveUp.push(error));

  // A frame over the size limit makes the server close with 1009 and hold the seat
  // (docs/spec/PROTOCOL.md §1.4, §1.6). The first drop takes the bucket's only token.
  const drop = () => alice.sendGameData("x".repeat(70_000));
  const first = nextEvent(alice, "reconnected");
  drop();
  await first;
  // A second drop at once: the Reconnect is refused for now, the client waits and retries.
  const waited = nextEvent(alice, "reconnecting", ({ delayMs }) => delayMs >= 1000);
  const second = nextEvent(alice, "reconnected", () => true, TIMEOUT_MS + 2_000);
  const bobSeesReturn = nextEvent(bob, "PlayerReconnected", () => true, TIMEOUT_MS + 2_000);
  drop();
  const { delayMs } = await waited;
  ok(delayMs <= 2_000, `waited ${delayMs} ms`);
  await second;
  equal((await bobSeesReturn).player_id, created.player_id);
  deepEqual(refusals, [
    "RATE_LIMIT_EXCEEDED Reconnect attempt rate limit exceeded. Try again in 2 seconds.",
  ]);
  deepEqual(gaveUp, []);
  equal(alice.status, "open");
  equal(alice.selfId, created.player_id);
  deepEqual(alice.room!.players.map((p) => p.name), ["alice", "bob"]);
  const live = nextEvent(bob, "gameData");
  alice.sendGameData("still here");
  equal((await live).data, "still here");
});

Deno.test("SignalFishClient sends and receives MessagePack game data through the server", async () => {
  await using server = await serve((config) => {
    config.protocol.enable_message_pack_game_data = true;
  });
  await using alice = await client(server);
  await using bob = await client(server);
  await using carol = await client(server);
  for (const who of [alice, bob]) {
    const result = await who.authenticate({ app_id: "demo", game_data_format: "message_pack" });
    equal(result.gameDataFormat, "message_pack");
  }
  const room = await alice.createRoom({ game_name: GAME, player_name: "alice", max_players: 3 });
  await bob.joinRoom({ game_name: GAME, room_code: room.room_code, player_name: "bob" });
  await carol.joinRoom({ game_name: GAME, room_code: room.room_code, player_name: "carol" });

  const atBob = nextEvent(bob, "gameData");
  const atCarol = nextEvent(carol, "gameData");
  const value = { op: "steer", angle: -12.5, tick: 4411, tags: ["a", "b"], ok: true };
  alice.sendGameData(value, { binary: true });
  const binary = await atBob;
  equal(binary.binary, true);
  equal(binary.from_player, room.player_id);
  deepEqual(binary.data, value);
  ok(binary.payload instanceof Uint8Array);
  // A JSON connection gets the server's JSON conversion of the same value (docs/spec/PROTOCOL.md §7.7).
  deepEqual(await atCarol, {
    from_player: room.player_id,
    data: value,
    binary: false,
    replayed: false,
  });
});

Deno.test("SignalFishClient: setReady() past the lobby-change bucket and too-large connection info reject by code", async () => {
  await using server = await serve((config) => {
    config.rate_limit.max_lobby_changes = 2;
    config.protocol.max_connection_info_bytes = 256;
  });
  const { alice, bob } = await twoPlayers(server);
  await using _alice = alice;
  await using _bob = bob;
  await alice.setReady(true);
  await alice.setReady(false);
  await rejectsWith(alice.setReady(true), "RATE_LIMIT_EXCEEDED", "Error");
  equal(alice.room!.readyPlayers.length, 0);
  const big = { type: "custom" as const, data: "x".repeat(300) };
  await rejectsWith(alice.provideConnectionInfo(big), "INVALID_INPUT", "Error");
  // A value within the cap is still stored and acknowledged.
  await alice.provideConnectionInfo({ type: "direct", host: "198.51.100.7", port: 7777 });
});

Deno.test("SignalFishClient keeps every spectator in room.spectators, past the 16 broadcasts list", async () => {
  await using server = await serve();
  await using alice = await client(server);
  const { room_code } = await alice.createRoom({ ...joinAs("alice"), max_players: 2 });
  const names = (who: SignalFishClient) => who.room!.spectators.map((s) => s.name);
  const all = Array.from({ length: 20 }, (_, i) => `w${i + 1}`);
  const watchers: SignalFishClient[] = [];
  try {
    for (const name of all) {
      const watcher = await client(server);
      watchers.push(watcher);
      // Every earlier member hears of the arrival; wait for all of them.
      const heard = [alice, ...watchers.slice(0, -1)].map((who) =>
        nextEvent(who, "NewSpectatorJoined", (data) => data.spectator.name === name)
      );
      await watcher.spectate({ game_name: GAME, room_code, spectator_name: name });
      const last = await heard[0]!;
      await Promise.all(heard);
      // The broadcast itself names only the first 16 (docs/spec/PROTOCOL.md §7.9 note).
      equal(last.current_spectators.length, Math.min(watchers.length, 16));
    }
    deepEqual(names(alice), all);
    deepEqual(names(watchers[17]!), all); // w18: its own snapshot of 18, then two arrivals
    deepEqual(names(watchers[19]!), all); // w20: SpectatorJoined carries the whole list
    // A player who joins now gets the whole list in RoomJoined.
    await using bob = await client(server);
    await bob.joinRoom({ ...joinAs("bob"), room_code });
    deepEqual(names(bob), all);

    // An early spectator leaves, then a late one: everyone drops exactly those two.
    for (const leaver of [watchers[0]!, watchers[18]!]) {
      const left = leaver.selfId;
      const rest = [alice, bob, ...watchers.filter((w) => w !== leaver && w.room)];
      const heard = rest.map((who) =>
        nextEvent(who, "SpectatorDisconnected", (data) => data.spectator_id === left)
      );
      await leaver.leave();
      await Promise.all(heard);
    }
    const remaining = all.filter((name) => name !== "w1" && name !== "w19");
    for (const who of [alice, bob, watchers[1]!, watchers[17]!, watchers[19]!]) {
      deepEqual(names(who), remaining);
    }
    equal((await alice.lookupRoom(GAME, room_code))!.spectators, remaining.length);
  } finally {
    for (const watcher of watchers) await watcher.close();
  }
});

/**
 * A WebSocket class for one client whose inbound frames the test can hold back: while `hold()` is
 * on, every frame is queued (and `received()` resolves as the named message arrives); `release()`
 * delivers the queue in order to the client's `onmessage`, then lets frames through again.
 */
function gatedSocket() {
  let held: MessageEvent[] | undefined;
  let deliver: ((event: MessageEvent) => void) | undefined;
  const arrived: string[] = [];
  const waiters: { type: string; resolve(): void }[] = [];
  class Gated extends WebSocket {
    constructor(url: string) {
      super(url);
      let handler: ((event: MessageEvent) => void) | null = null;
      // The client assigns onmessage; frames reach it only through the gate.
      Object.defineProperty(this, "onmessage", {
        get: () => handler,
        set: (value) => handler = value,
        configurable: true,
      });
      deliver = (event) => handler?.call(this, event);
      this.addEventListener("message", (event) => {
        if (!held) return deliver!(event);
        held.push(event);
        const type = typeof event.data === "string" ? JSON.parse(event.data).type : "binary";
        arrived.push(type);
        for (const waiter of waiters.filter((w) => w.type === type)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      });
    }
  }
  return {
    WebSocket: Gated,
    hold: () => void (held = []),
    /** Resolves once a held frame of `type` has arrived (at once if one already has). */
    received(type: string): Promise<void> {
      if (arrived.includes(type)) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waiters.push({ type, resolve });
      return promise;
    },
    release() {
      const queue = held ?? [];
      held = undefined;
      for (const event of queue) deliver!(event);
    },
  };
}

Deno.test("SignalFishClient: a spectator's leave() crossing the room's deletion resolves without an error event", async () => {
  await using server = await serve((config) => {
    config.server.room_cleanup_interval = 1;
    config.server.empty_room_timeout = 0;
  });
  await using alice = await client(server);
  const { room_code } = await alice.createRoom({ game_name: GAME, player_name: "alice" });
  const gate = gatedSocket();
  await using watcher = await client(server, { WebSocket: gate.WebSocket });
  await watcher.spectate({ game_name: GAME, room_code, spectator_name: "watcher" });
  const errors: unknown[] = [];
  watcher.on("error", (error) => errors.push(error));

  // The last player leaves; the sweep deletes the now empty room and tells the spectator
  // (SpectatorLeft room_closed), but the client has not read that yet when it leaves itself.
  gate.hold();
  await alice.leave();
  await gate.received("SpectatorLeft");
  const leaving = watcher.leave();
  // The server answers the LeaveSpectator of a spectator it already detached with NOT_A_SPECTATOR.
  await gate.received("Error");
  gate.release();
  await leaving;
  equal(watcher.room, undefined);
  deepEqual(errors, []);
  // Both answers were consumed: the connection is in step and usable.
  await watcher.ping();
  deepEqual(errors, []);
});

Deno.test("SignalFishClient: the heartbeat never sends the first message, so a hand-made authenticate() still comes first", async () => {
  const INTERVAL = 50;
  await using server = await serve((config) => {
    config.security.require_websocket_auth = true;
    config.security.authorized_apps = openApps("orbit-app");
  });
  // No `auth` option: the app authenticates itself, some heartbeats later.
  await using alice = await client(server, { heartbeatIntervalMs: INTERVAL });
  const closes: unknown[] = [];
  alice.on("close", (event) => closes.push(event));
  // Nothing can be awaited for a message that must not be sent: let six intervals pass (twice
  // the three silent intervals after which the heartbeat would give the connection up).
  await new Promise((resolve) => setTimeout(resolve, 6 * INTERVAL));
  deepEqual(closes, []);
  equal(alice.status, "open");
  const { authenticated } = await alice.authenticate({ app_id: "orbit-app" });
  equal(authenticated.app_name, "orbit-app");
  // Authenticated: the heartbeat runs now, and its Ping is answered.
  await nextEvent(alice, "Pong");
  await alice.createRoom({ game_name: GAME, player_name: "alice" });
  deepEqual(closes, []);

  // Without auth on the server, the heartbeat starts with the app's first request.
  await using open = await serve();
  await using bob = await client(open, { heartbeatIntervalMs: INTERVAL });
  await bob.createRoom({ game_name: GAME, player_name: "bob" });
  await nextEvent(bob, "Pong");
});

Deno.test("SignalFishClient.leave() called twice, or during a join, leaves once and ends out of the room", async () => {
  await using server = await serve();
  const errors: unknown[] = [];
  await using alice = await client(server);
  alice.on("error", (error) => errors.push(error));
  const { room_code } = await alice.createRoom({ game_name: GAME, player_name: "alice" });
  await using watcher = await client(server);
  watcher.on("error", (error) => errors.push(error));
  await watcher.spectate({ game_name: GAME, room_code, spectator_name: "watcher" });
  // A double click on "Leave": one LeaveSpectator, both calls resolve (the second used to
  // reject with NOT_A_SPECTATOR, the server's answer to a second LeaveSpectator).
  await Promise.all([watcher.leave(), watcher.leave()]);
  equal(watcher.room, undefined);

  // "Cancel" while joining: leave() waits for the join, then leaves the room it got.
  await using bob = await client(server);
  bob.on("error", (error) => errors.push(error));
  const joining = bob.join({ game_name: GAME, room_code, player_name: "bob" });
  const bobLeft = nextEvent(alice, "PlayerLeft");
  await bob.leave();
  equal((await joining).room_code, room_code);
  equal(bob.room, undefined);
  await bobLeft;
  deepEqual(alice.room!.players.map((p) => p.name), ["alice"]);

  // A player's double leave: the second LeaveRoom would get no answer at all (§7.3.1) and the
  // call would time out.
  await Promise.all([alice.leave(), alice.leave()]);
  equal(alice.room, undefined);
  deepEqual(errors, []);
});

Deno.test("SignalFishClient.resume() called twice takes the seat back once and keeps it stored", async () => {
  await using server = await serve();
  const store = memoryStore();
  const before = await client(server, { session: store });
  const { room_code } = await before.createRoom({ game_name: GAME, player_name: "alice" });
  await before.close(); // The page goes away; the server holds the seat.
  await using after = await client(server, { session: store });
  // Twice, as a framework that runs an effect twice would: one Reconnect, the same answer.
  const [first, second] = await Promise.all([after.resume(), after.resume()]);
  equal(first?.role, "player");
  equal(second, first);
  equal(after.room!.roomCode, room_code);
  const stored = await after.storedSession();
  equal(stored?.role === "player" ? stored.token : undefined, after.reconnectionToken);
});

Deno.test("SignalFishClient.resume() crossing a join keeps the joined seat stored", async () => {
  await using server = await serve();
  const store = memoryStore();
  const before = await client(server, { session: store });
  await before.createRoom({ game_name: GAME, player_name: "alice" });
  await before.close(); // Stored: alice's seat, held by the server.
  await using after = await client(server, { session: store });
  // The app creates a room and resumes at once: the JoinRoom goes first, so the Reconnect is
  // refused ALREADY_IN_ROOM; that refusal must not erase the seat the join just stored.
  const creating = after.createRoom({ game_name: GAME, player_name: "bob" });
  const resuming = after.resume();
  const created = await creating;
  await rejects(resuming, refusedWith("ALREADY_IN_ROOM", "ReconnectionFailed"));
  const stored = await after.storedSession();
  equal(stored?.role === "player" ? stored.player_id : undefined, created.player_id);
});
