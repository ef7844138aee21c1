import { deepEqual, equal, notEqual, ok } from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import type { ClientMessage } from "../protocol/messages.ts";
import type { Effect, Engine } from "./engine.ts";
import { Reconnection } from "./reconnection.ts";
import { Room } from "./room.ts";
import { Sessions } from "./sessions.ts";
import {
  bare,
  C1,
  C2,
  first,
  join,
  P1,
  P2,
  P3,
  reconnectingEngineWith as engineWith,
  S1,
  spectate,
  summarize,
  testOptions,
} from "./testing.ts";

const T0 = Date.UTC(2026, 2, 4, 18, 0, 0);
const WINDOW = 300_000;

function gameData(data: unknown, to_player?: string): ClientMessage {
  return { type: "GameData", data: { data, to_player } } as ClientMessage;
}

function reconnect(player_id: string, room_id: string, auth_token: string): ClientMessage {
  return { type: "Reconnect", data: { player_id, room_id, auth_token } };
}

/** Three players in a full room of 3 (P1 holds authority); returns the tokens by player. */
function fullRoom(engine: Engine): Record<string, string> {
  const tokens: Record<string, string> = {};
  for (const [id, name] of [[P1, "Mira"], [P2, "Tobias"], [P3, "Nina"]] as const) {
    const effects = engine.handle(id, join("ROOM01", name, { max_players: 3 }), T0);
    tokens[id] = first(effects, id, "RoomJoined").data.reconnection_token!;
  }
  return tokens;
}

function failure(effects: Effect[], to: string): [string, string] {
  const data = first(effects, to, "ReconnectionFailed").data;
  return [data.error_code, data.reason];
}

function missedTypes(effects: Effect[], to: string): string[] {
  return first(effects, to, "Reconnected").data.missed_events.map((event) =>
    JSON.parse(event.text).type
  );
}

Deno.test("Engine: RoomJoined carries a token only when reconnection is enabled", () => {
  const on = engineWith([P1]);
  const token = first(on.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined").data
    .reconnection_token;
  equal(token, "token-1".padEnd(43, "x"));
  const off = engineWith([P1], { enableReconnection: false });
  const joined = first(off.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined");
  equal("reconnection_token" in joined.data, false);
});

Deno.test("Engine.disconnect() holds a seat: nobody is told, the seat keeps name, readiness and authority", () => {
  const engine = engineWith([P1, P2, P3, S1]);
  fullRoom(engine);
  engine.handle(S1, spectate("ROOM01"), T0);
  engine.handle(P1, bare("PlayerReady"), T0);
  const effects = engine.disconnect(P1, T0 + 1000);
  deepEqual(summarize(effects), []);
  deepEqual(effects.map((e) => e.kind === "event" && e.event.type), ["seat_held"]);
  equal(engine.stats().heldSeats, 1);
  equal(engine.lookup("orbit", "ROOM01")?.players, 3);
  // The held seat still counts: the room is full and its name is taken.
  engine.connect(C1);
  equal(
    first(engine.handle(C1, join("ROOM01", "Other"), T0), C1, "RoomJoinFailed").data.error_code,
    "ROOM_FULL",
  );
});

Deno.test("Engine: a held seat's messages are replayed in order, then PlayerReconnected goes to the others", () => {
  const engine = engineWith([P1, P2, P3, S1, C1]);
  const tokens = fullRoom(engine);
  engine.handle(S1, spectate("ROOM01"), T0);
  engine.disconnect(P1, T0);
  // Broadcast, targeted data and lobby traffic while P1 is away.
  deepEqual(summarize(engine.handle(P2, gameData({ n: 1 }), T0 + 1)), [
    "p3 <- GameData",
    "s1 <- GameData",
  ]);
  engine.handle(P3, gameData({ n: 2 }, P1), T0 + 2);
  engine.handle(P2, bare("PlayerReady"), T0 + 3);

  const effects = engine.handle(C1, reconnect(P1, "room-1", tokens[P1]!), T0 + 4);
  deepEqual(summarize(effects), [
    "c1 <- Reconnected",
    "p2 <- PlayerReconnected",
    "p3 <- PlayerReconnected",
    "s1 <- PlayerReconnected",
  ]);
  const reconnected = first(effects, C1, "Reconnected").data;
  deepEqual(reconnected.missed_events.map((event) => JSON.parse(event.text)), [
    { type: "GameData", data: { from_player: P2, data: { n: 1 } } },
    { type: "GameData", data: { from_player: P3, data: { n: 2 } } },
    {
      type: "LobbyStateChanged",
      data: { lobby_state: "lobby", ready_players: [P2], all_ready: false },
    },
  ]);
  equal(reconnected.player_id, P1);
  equal(reconnected.is_authority, true);
  equal(reconnected.replay_truncated, false);
  notEqual(reconnected.reconnection_token, tokens[P1]);
  equal(engine.stats().heldSeats, 0);

  // The new connection now is P1: it sends as P1 and P1's messages reach it.
  deepEqual(summarize(engine.handle(P2, gameData("hi", P1), T0 + 5)), ["c1 <- GameData"]);
  const relayed = engine.handle(C1, gameData("back"), T0 + 6);
  equal(first(relayed, P2, "GameData").data.from_player, P1);
  // And the old token is spent.
  engine.connect(C2);
  deepEqual(failure(engine.handle(C2, reconnect(P1, "room-1", tokens[P1]!), T0 + 7), C2), [
    "RECONNECTION_TOKEN_INVALID",
    "Invalid reconnection token",
  ]);
});

Deno.test("Engine: the replay buffer drops the oldest messages past its count and byte bounds", () => {
  const engine = engineWith([P1, P2, C1, C2], { eventBufferSize: 3, eventBufferMaxBytes: 1024 });
  const t1 = first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined").data;
  engine.handle(P2, join("ROOM01", "Tobias"), T0);
  engine.disconnect(P1, T0);
  for (let n = 1; n <= 5; n++) engine.handle(P2, gameData(n), T0 + n);
  let effects = engine.handle(C1, reconnect(P1, t1.room_id, t1.reconnection_token!), T0 + 10);
  let reconnected = first(effects, C1, "Reconnected").data;
  deepEqual(reconnected.missed_events.map((e) => JSON.parse(e.text).data.data), [3, 4, 5]);
  equal(reconnected.replay_truncated, true);

  // Bytes: two 400-byte messages fit in 1024, a third pushes the first out; one over 1024 is
  // dropped on its own.
  engine.disconnect(C1, T0 + 20);
  engine.handle(P2, gameData("a".repeat(400)), T0 + 21);
  engine.handle(P2, gameData("b".repeat(400)), T0 + 22);
  engine.handle(P2, gameData("c".repeat(400)), T0 + 23);
  engine.handle(P2, gameData("d".repeat(2000)), T0 + 24);
  effects = engine.handle(
    C2,
    reconnect(P1, t1.room_id, reconnected.reconnection_token),
    T0 + 25,
  );
  reconnected = first(effects, C2, "Reconnected").data;
  deepEqual(reconnected.missed_events.map((e) => JSON.parse(e.text).data.data[0]), ["b", "c"]);
  equal(reconnected.replay_truncated, true);
});

Deno.test("Engine.stats().eventsBuffered counts every message appended to a replay buffer", () => {
  const engine = engineWith([P1, P2, C1], { eventBufferSize: 2, eventBufferMaxBytes: 1024 });
  const t1 = first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined").data;
  engine.handle(P2, join("ROOM01", "Tobias"), T0);
  engine.handle(P2, gameData("live"), T0 + 1); // P1 is connected: nothing is buffered
  equal(engine.stats().eventsBuffered, 0);
  engine.disconnect(P1, T0 + 2);
  for (let n = 1; n <= 3; n++) engine.handle(P2, gameData(n), T0 + 2 + n);
  engine.handle(P2, gameData("x".repeat(2000)), T0 + 6); // over the byte bound: not appended
  equal(engine.stats().eventsBuffered, 3, "appended, the one later pushed out included");
  engine.handle(C1, reconnect(P1, t1.room_id, t1.reconnection_token!), T0 + 7);
  engine.handle(P2, gameData("back"), T0 + 8);
  equal(engine.stats().eventsBuffered, 3, "nothing buffered once the seat is back");
});

Deno.test("Engine: event_buffer_size 0 keeps the seat but replays nothing", () => {
  const engine = engineWith([P1, P2, C1], { eventBufferSize: 0 });
  const t1 = first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined").data;
  engine.handle(P2, join("ROOM01", "Tobias"), T0);
  engine.disconnect(P1, T0);
  engine.handle(P2, gameData(1), T0 + 1);
  const effects = engine.handle(C1, reconnect(P1, t1.room_id, t1.reconnection_token!), T0 + 2);
  deepEqual(missedTypes(effects, C1), []);
  equal(first(effects, C1, "Reconnected").data.replay_truncated, true);
});

Deno.test("Engine.tick() expires a held seat: PlayerLeft, AuthorityChanged, LobbyStateChanged; the token then says expired", () => {
  const engine = engineWith([P1, P2, P3, C1]);
  const tokens = fullRoom(engine);
  engine.disconnect(P1, T0);
  deepEqual(summarize(engine.tick(T0 + WINDOW - 1)), []);
  const effects = engine.tick(T0 + WINDOW);
  deepEqual(summarize(effects), [
    "p2 <- PlayerLeft",
    "p3 <- PlayerLeft",
    "p2 <- AuthorityChanged",
    "p3 <- AuthorityChanged",
    "p2 <- LobbyStateChanged waiting",
    "p3 <- LobbyStateChanged waiting",
  ]);
  equal(engine.stats().heldSeats, 0);
  equal(engine.lookup("orbit", "ROOM01")?.players, 2);
  deepEqual(failure(engine.handle(C1, reconnect(P1, "room-1", tokens[P1]!), T0 + WINDOW + 1), C1), [
    "RECONNECTION_EXPIRED",
    "Reconnection window has expired",
  ]);
  // A window after it stopped being valid the record is forgotten: the token is unknown.
  engine.tick(T0 + 2 * WINDOW);
  deepEqual(failure(engine.handle(C1, reconnect(P1, "room-1", tokens[P1]!), T0 + 2 * WINDOW), C1), [
    "RECONNECTION_TOKEN_INVALID",
    "Invalid reconnection token",
  ]);
});

Deno.test("Engine: a Reconnect after the window but before the timer expires the seat and fails", () => {
  const engine = engineWith([P1, P2, C1]);
  const t1 = first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined").data;
  engine.handle(P2, join("ROOM01", "Tobias"), T0);
  engine.disconnect(P1, T0);
  const effects = engine.handle(C1, reconnect(P1, t1.room_id, t1.reconnection_token!), T0 + WINDOW);
  deepEqual(summarize(effects), [
    "p2 <- PlayerLeft",
    "p2 <- AuthorityChanged",
    "c1 <- ReconnectionFailed RECONNECTION_EXPIRED",
  ]);
});

Deno.test("Engine: Reconnect for a live seat takes it over; the old socket is closed with 4001", () => {
  const engine = engineWith([P1, P2, C1]);
  const t1 = first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined").data;
  engine.handle(P2, join("ROOM01", "Tobias"), T0);
  const effects = engine.handle(C1, reconnect(P1, t1.room_id, t1.reconnection_token!), T0 + 1);
  deepEqual(summarize(effects), ["p1 closed 4001", "c1 <- Reconnected", "p2 <- PlayerReconnected"]);
  const close = effects.find((e) => e.kind === "close");
  deepEqual(close, {
    kind: "close",
    to: P1,
    code: 4001,
    reason: "Replaced by a new connection",
  });
  deepEqual(missedTypes(effects, C1), []);
  // The replaced socket's close changes nothing; the seat lives on the new connection.
  deepEqual(engine.disconnect(P1, T0 + 2), []);
  equal(engine.stats().heldSeats, 0);
  deepEqual(summarize(engine.handle(P2, gameData(1), T0 + 3)), ["c1 <- GameData"]);
});

Deno.test("Engine: every Reconnect failure of docs/spec/PROTOCOL.md §7.11.4", () => {
  const engine = engineWith([P1, P2, P3, C1, C2], { inactiveRoomTimeoutMs: 10_000 });
  const t1 = first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined").data;
  const t2 = first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined").data;
  engine.disconnect(P1, T0);
  const attempt = (message: ClientMessage, from = C1) =>
    failure(engine.handle(from, message, T0 + 1), from);
  const invalid = ["RECONNECTION_TOKEN_INVALID", "Invalid reconnection token"];
  deepEqual(attempt(reconnect(P1, t1.room_id, "garbage")), invalid);
  deepEqual(attempt(reconnect(P1, t1.room_id, t2.reconnection_token!)), invalid);
  deepEqual(attempt(reconnect(P2, t1.room_id, t1.reconnection_token!)), invalid);
  deepEqual(attempt(reconnect(P1, crypto.randomUUID(), t1.reconnection_token!)), invalid);
  deepEqual(attempt(reconnect(P1, t1.room_id, t1.reconnection_token!.slice(0, 42))), invalid);
  // A player in a room cannot reconnect anywhere.
  deepEqual(attempt(reconnect(P1, t1.room_id, t1.reconnection_token!), P2), [
    "ALREADY_IN_ROOM",
    "Already in a room",
  ]);
  // After LeaveRoom the token is no longer valid.
  engine.handle(P2, bare("LeaveRoom"), T0 + 1);
  deepEqual(attempt(reconnect(P2, t2.room_id, t2.reconnection_token!)), invalid);
  // Room deleted while the seat is held: the token reports it.
  engine.sweep(T0 + 20_000);
  equal(engine.lookup("orbit", "ROOM01"), undefined);
  deepEqual(attempt(reconnect(P1, t1.room_id, t1.reconnection_token!)), [
    "RECONNECTION_FAILED",
    "Room no longer exists",
  ]);
  // Disabled: the first check.
  const off = engineWith([P3], { enableReconnection: false });
  deepEqual(failure(off.handle(P3, reconnect(P1, t1.room_id, "x"), T0), P3), [
    "RECONNECTION_FAILED",
    "Reconnection is not enabled",
  ]);
});

Deno.test("Engine: a hold that began with lost messages replays unsent frames first and is truncated", () => {
  const engine = engineWith([P1, P2, C1]);
  const t1 = first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined").data;
  engine.handle(P2, join("ROOM01", "Tobias"), T0);
  const unsent = '{"type":"GameData","data":{"from_player":"x","data":0}}';
  engine.disconnect(P1, T0, { unsent: [unsent] });
  // A frame addressed to the dropped connection before its teardown reached the engine.
  equal(engine.replayUndelivered(P1, unsent.replace("0}", "1}")), true);
  equal(engine.replayUndelivered(C2, unsent), false);
  engine.handle(P2, gameData(2), T0 + 1);
  let effects = engine.handle(C1, reconnect(P1, t1.room_id, t1.reconnection_token!), T0 + 2);
  let reconnected = first(effects, C1, "Reconnected").data;
  deepEqual(reconnected.missed_events.map((e) => JSON.parse(e.text).data.data), [0, 1, 2]);
  equal(reconnected.replay_truncated, false);

  engine.disconnect(C1, T0 + 3, { truncated: true });
  engine.connect(C2);
  effects = engine.handle(C2, reconnect(P1, t1.room_id, reconnected.reconnection_token), T0 + 4);
  reconnected = first(effects, C2, "Reconnected").data;
  equal(reconnected.replay_truncated, true);
  ok(effects.some((e) => e.kind === "event" && e.event.type === "replay_truncated"));
});

Deno.test("Engine.handleBinary() sends the envelope to MessagePack peers and JSON to the others", () => {
  const engine = engineWith([P1, P2, P3, S1], { messagePack: true });
  const auth = (format: "json" | "message_pack"): ClientMessage => ({
    type: "Authenticate",
    data: { app_id: "a", game_data_format: format },
  });
  engine.handle(P1, auth("message_pack"), T0);
  engine.handle(P2, auth("message_pack"), T0);
  engine.handle(P1, join("ROOM01", "Mira"), T0);
  engine.handle(P2, join("ROOM01", "Tobias"), T0);
  engine.handle(P3, join("ROOM01", "Nina"), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  const payload = encode({ x: 1.5, big: 2n ** 60n }, { useBigInt64: true });
  const effects = engine.handleBinary(P1, payload, T0);
  deepEqual(summarize(effects), ["p2 <- binary frame", "p3 <- text frame", "s1 <- text frame"]);
  const [binary, text] = effects as Extract<Effect, { kind: "frame" }>[];
  const envelope = decode(binary!.frame as Uint8Array) as Record<string, Uint8Array | string>;
  deepEqual(Object.keys(envelope), ["from_player", "encoding", "payload"]);
  equal(envelope.encoding, "message_pack");
  deepEqual(envelope.payload, payload);
  equal(envelope.from_player!.length, 16);
  equal(
    text!.frame,
    `{"type":"GameData","data":{"from_player":"${P1}","data":{"x":1.5,"big":1152921504606846976}}}`,
  );
  // JSON senders and spectators get the spec's errors.
  deepEqual(summarize(engine.handleBinary(P3, payload, T0)), ["p3 <- Error INVALID_INPUT"]);
  deepEqual(summarize(engine.handleBinary(S1, payload, T0)), ["s1 <- Error SPECTATOR_NOT_ALLOWED"]);
});

Deno.test("Engine.handleBinary(): unconvertible payloads reach MessagePack peers only; held seats get JSON", () => {
  const engine = engineWith([P1, P2, P3, C1], { messagePack: true });
  const auth: ClientMessage = {
    type: "Authenticate",
    data: { app_id: "a", game_data_format: "message_pack" },
  };
  engine.handle(P1, auth, T0);
  engine.handle(P2, auth, T0);
  engine.handle(P1, join("ROOM01", "Mira"), T0);
  const t2 = first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined").data;
  engine.handle(P3, join("ROOM01", "Nina"), T0);
  engine.disconnect(P2, T0);
  const bin = encode({ blob: new Uint8Array([1, 2]) });
  deepEqual(summarize(engine.handleBinary(P1, bin, T0)), []);
  engine.handleBinary(P1, encode([1, "two"]), T0);
  const effects = engine.handle(C1, reconnect(P2, t2.room_id, t2.reconnection_token!), T0 + 1);
  const reconnected = first(effects, C1, "Reconnected").data;
  deepEqual(reconnected.missed_events.map((e) => JSON.parse(e.text)), [
    { type: "GameData", data: { from_player: P1, data: [1, "two"] } },
  ]);
  equal(reconnected.replay_truncated, true);
});

Deno.test("Engine with auth: a token only works for a connection of the app it was issued under", () => {
  const engine = engineWith([], {
    auth: {
      required: true,
      apps: [{ appId: "app-a", appName: "A" }, { appId: "app-b", appName: "B" }],
      timeoutMs: 10_000,
      enforceSdkGate: false,
    },
  });
  const auth = (appId: string): ClientMessage => ({
    type: "Authenticate",
    data: { app_id: appId },
  });
  for (const id of [P1, P2, C1, C2]) engine.connect(id, { now: T0 });
  engine.handle(P1, auth("app-a"), T0);
  engine.handle(P2, auth("app-a"), T0);
  const t1 = first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined").data;
  engine.handle(P2, join("ROOM01", "Tobias"), T0);
  engine.disconnect(P1, T0);
  engine.handle(C1, auth("app-b"), T0);
  deepEqual(failure(engine.handle(C1, reconnect(P1, t1.room_id, t1.reconnection_token!), T0), C1), [
    "RECONNECTION_TOKEN_INVALID",
    "Invalid reconnection token",
  ]);
  engine.handle(C2, auth("app-a"), T0);
  const effects = engine.handle(C2, reconnect(P1, t1.room_id, t1.reconnection_token!), T0);
  equal(first(effects, C2, "Reconnected").data.player_id, P1);
});

/** A room of four seats for the token and hold tests: nobody seated, created at T0. */
function testRoom(): Room {
  return new Room({
    id: crypto.randomUUID(),
    code: "ABC123",
    gameName: "g",
    maxPlayers: 4,
    supportsAuthority: true,
    relayType: "Hybrid",
    now: T0,
  });
}

Deno.test("A token record invalidated for the window does not keep its room alive", async () => {
  // Records are remembered for a window after they stop being valid (up to
  // `server.max_token_records`, so "room no longer exists" can be answered); they must not hold
  // the deleted room itself, or every such record pins a whole room for the window.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc (deno task test does)");
  const options = testOptions({ enableReconnection: true });
  const reconnection = new Reconnection(options, new Sessions(options), () => []);
  const watch = (state: "room_gone" | "left"): WeakRef<Room> => {
    const room = testRoom();
    const player = crypto.randomUUID();
    reconnection.issueToken(player, room, T0);
    reconnection.invalidateToken(player, state, T0 + 1);
    return new WeakRef(room);
  };
  const gone = watch("room_gone");
  const left = watch("left");
  equal(reconnection.tokenRecords, 2, "both records are still remembered");
  // A WeakRef's target stays alive until the current job ends.
  await new Promise((resolve) => setTimeout(resolve, 0));
  gc();
  equal(gone.deref(), undefined, "the room of a room_gone record was collected");
  equal(left.deref(), undefined, "the room of a left record was collected");
});

Deno.test("An ended hold lets its replay frames go, though the global budget's order still names it", () => {
  // The order of every buffered frame (the global budget drops the oldest first) is compacted
  // only now and then, so its stale entries keep ended holds reachable for a while: without
  // their frames, 1024 of them pin kilobytes instead of up to a replay buffer each.
  const options = testOptions({ enableReconnection: true });
  const reconnection = new Reconnection(options, new Sessions(options), () => []);
  const room = testRoom();
  const ended = ["dropped", "expired"].map((how) => {
    const player = crypto.randomUUID();
    reconnection.hold(room, player, crypto.randomUUID(), T0, {});
    const hold = reconnection.held(player)!;
    for (let i = 0; i < 3; i++) reconnection.append(hold, `{"n":${i}}`, 7);
    equal(hold.frames.length, 3);
    if (how === "dropped") ok(reconnection.dropHold(player));
    else reconnection.tick(hold.expiresAt);
    equal(reconnection.held(player), undefined);
    return hold;
  });
  for (const hold of ended) {
    deepEqual([hold.frames, hold.sizes, hold.seqs, hold.bytes], [[], [], [], 0]);
  }
});

Deno.test("An ended hold's room is not kept alive by the global replay order while other seats stay held", async () => {
  // The order names every frame buffered under the global budget and is compacted only now
  // and then; its entries for an ended hold must not pin that hold's (deleted) room.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc (deno task test does)");
  const options = testOptions({ enableReconnection: true, eventBufferTotalMaxBytes: 1 << 20 });
  const reconnection = new Reconnection(options, new Sessions(options), () => []);
  const heldWithFrames = (room: Room) => {
    const player = crypto.randomUUID();
    reconnection.hold(room, player, crypto.randomUUID(), T0, {});
    for (let i = 0; i < 3; i++) reconnection.append(reconnection.held(player)!, `{"n":${i}}`, 7);
    return player;
  };
  heldWithFrames(testRoom()); // Stays held: the order is not emptied as a whole.
  const ended = (() => {
    const room = testRoom();
    ok(reconnection.dropHold(heldWithFrames(room)));
    return new WeakRef(room);
  })();
  await new Promise((resolve) => setTimeout(resolve, 0));
  gc();
  equal(ended.deref(), undefined, "the ended hold's room was collected");
});

Deno.test("Engine: takeovers in a loop leave nothing behind once every connection has gone", () => {
  const engine = engineWith([P1, P2]);
  const joined = first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined").data;
  engine.handle(P2, join("ROOM01", "Tobias"), T0);
  let token = joined.reconnection_token!;
  let previous = P1;
  for (let i = 0; i < 50; i++) {
    // Each connection takes the seat from the previous one, which had itself taken it over.
    const conn = `00000000-0000-4000-8000-${(0xe000 + i).toString(16).padStart(12, "0")}`;
    engine.connect(conn);
    const effects = engine.handle(conn, reconnect(P1, joined.room_id, token), T0 + i + 1);
    token = first(effects, conn, "Reconnected").data.reconnection_token!;
    deepEqual(engine.disconnect(previous, T0 + i + 1), []);
    previous = conn;
    // The live carrier only: its identity and the token it presented.
    equal(engine.stats().adoptedIdentities, 2, `after takeover ${i + 1}`);
  }
  engine.handle(previous, bare("LeaveRoom"), T0 + 100);
  engine.disconnect(previous, T0 + 101);
  equal(engine.stats().adoptedIdentities, 0);
  // Tobias is the one connection left.
  equal(engine.stats().connections, 1);
});

Deno.test("Engine: a connection that resumes one seat, leaves and resumes another carries only the second", () => {
  const engine = engineWith([P1, P2, P3, C1]);
  const t1 = first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined").data;
  const t2 = first(engine.handle(P2, join("ROOM02", "Tobias"), T0), P2, "RoomJoined").data;
  engine.handle(P3, join("ROOM02", "Nina"), T0);
  engine.disconnect(P1, T0 + 1);
  engine.disconnect(P2, T0 + 1);
  first(
    engine.handle(C1, reconnect(P1, t1.room_id, t1.reconnection_token!), T0 + 2),
    C1,
    "Reconnected",
  );
  engine.handle(C1, bare("LeaveRoom"), T0 + 3);
  first(
    engine.handle(C1, reconnect(P2, t2.room_id, t2.reconnection_token!), T0 + 4),
    C1,
    "Reconnected",
  );
  // C1 now carries P2 only: game data of ROOM02 for P2 reaches it, and P1 is nobody's.
  deepEqual(summarize(engine.handle(P3, gameData(1, P2), T0 + 5)), ["c1 <- GameData"]);
  equal(engine.stats().adoptedIdentities, 2);
  engine.disconnect(C1, T0 + 6);
  equal(engine.stats().adoptedIdentities, 0);
});
