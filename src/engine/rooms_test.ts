import { deepEqual, equal, ok } from "node:assert/strict";
import { RawJson } from "../protocol/messages.ts";
import { CODE_ATTEMPTS } from "./rooms.ts";
import {
  bare,
  engineWith,
  first,
  join,
  P1,
  P2,
  P3,
  S1,
  sentTo,
  spectate,
  summarize,
} from "./testing.ts";

const T0 = Date.UTC(2026, 2, 4, 18, 22, 5, 123);

Deno.test("Engine.handle() JoinRoom without a code creates a room with a generated code", () => {
  const engine = engineWith([P1]);
  const effects = engine.handle(P1, join(undefined, "Mira", { max_players: 2 }), T0);
  deepEqual(summarize(effects), ["p1 <- RoomJoined"]);
  deepEqual(first(effects, P1, "RoomJoined").data, {
    room_id: "room-1",
    room_code: "CODE01",
    player_id: P1,
    game_name: "orbit",
    max_players: 2,
    supports_authority: true,
    current_players: [{
      id: P1,
      name: "Mira",
      is_authority: true,
      is_ready: false,
      connected_at: "2026-03-04T18:22:05.123Z",
    }],
    is_authority: true,
    lobby_state: "waiting",
    ready_players: [],
    relay_type: "matchbox",
    current_spectators: [],
  });
});

Deno.test("Engine.handle() JoinRoom regenerates a colliding code and gives up after 16 tries", () => {
  const codes = ["AAAAAA", "AAAAAA", "BBBBBB"];
  const engine = engineWith([P1, P2, P3], { newRoomCode: () => codes.shift() ?? "AAAAAA" });
  equal(
    first(engine.handle(P1, join(undefined, "a"), T0), P1, "RoomJoined").data.room_code,
    "AAAAAA",
  );
  equal(
    first(engine.handle(P2, join(undefined, "b"), T0), P2, "RoomJoined").data.room_code,
    "BBBBBB",
  );
  const failed = engine.handle(P3, join(undefined, "c"), T0);
  deepEqual(first(failed, P3, "RoomJoinFailed").data, {
    reason: "Failed to create room",
    error_code: "ROOM_CREATION_FAILED",
  });
  equal(
    failed.filter((e) => e.kind === "event" && e.event.type === "code_collision").length,
    CODE_ATTEMPTS,
  );
});

Deno.test("Engine.handle() JoinRoom with an unknown code creates that room, upper-cased", () => {
  const engine = engineWith([P1, P2]);
  const created = first(engine.handle(P1, join("q7km3p", "Mira"), T0), P1, "RoomJoined");
  equal(created.data.room_code, "Q7KM3P");
  // Codes may use 0, 1, I and O when the client supplies them.
  equal(
    first(engine.handle(P2, join("I0O1ab", "Tobi"), T0), P2, "RoomJoined").data.room_code,
    "I0O1AB",
  );
});

Deno.test("Engine.handle() JoinRoom of an existing room tells the others with PlayerJoined", () => {
  const engine = engineWith([P1, P2]);
  engine.handle(P1, join("ROOM01", "Mira", { max_players: 3 }), T0);
  const effects = engine.handle(
    P2,
    join("room01", "Tobias", { max_players: 9, supports_authority: false }),
    T0 + 1000,
  );
  deepEqual(summarize(effects), ["p2 <- RoomJoined", "p1 <- PlayerJoined"]);
  const joined = first(effects, P2, "RoomJoined").data;
  equal(joined.max_players, 3); // the room's value, not the joiner's
  equal(joined.supports_authority, true);
  equal(joined.is_authority, false);
  deepEqual(joined.current_players.map((p) => [p.name, p.is_authority]), [["Mira", true], [
    "Tobias",
    false,
  ]]);
  deepEqual(first(effects, P1, "PlayerJoined").data.player, {
    id: P2,
    name: "Tobias",
    is_authority: false,
    is_ready: false,
    connected_at: "2026-03-04T18:22:06.123Z",
  });
});

Deno.test("Engine.handle() JoinRoom of a full room fails with ROOM_FULL", () => {
  const engine = engineWith([P1, P2, P3]);
  engine.handle(P1, join("ROOM01", "a", { max_players: 2 }), T0);
  engine.handle(P2, join("ROOM01", "b"), T0);
  deepEqual(summarize(engine.handle(P3, join("ROOM01", "c"), T0)), [
    "p3 <- RoomJoinFailed ROOM_FULL",
  ]);
  equal(
    first(engine.handle(P3, join("ROOM01", "c"), T0), P3, "RoomJoinFailed").data.reason,
    "Room is full",
  );
});

Deno.test("Engine.handle() JoinRoom refuses a name already seated, case-insensitively", () => {
  const engine = engineWith([P1, P2]);
  engine.handle(P1, join("ROOM01", "Émile"), T0);
  deepEqual(first(engine.handle(P2, join("ROOM01", "éMILE"), T0), P2, "RoomJoinFailed").data, {
    reason: "Player name already exists in this room",
    error_code: "ROOM_CREATION_FAILED",
  });
});

Deno.test("Engine.handle() JoinRoom validates in the spec's order with the spec's codes", () => {
  const engine = engineWith([P1, P2]);
  const fail = (message: ReturnType<typeof join>) =>
    first(engine.handle(P1, message, T0), P1, "RoomJoinFailed").data;
  deepEqual(fail(join("ROOM01", "", { game_name: "" })), {
    reason: "Game name cannot be empty",
    error_code: "INVALID_GAME_NAME",
  });
  deepEqual(fail(join("ROOM01", "ok", { game_name: "x".repeat(65) })), {
    reason: "Game name too long (max 64 characters)",
    error_code: "INVALID_GAME_NAME",
  });
  deepEqual(fail(join("ROOM01", "ok", { game_name: "bad/name" })), {
    reason: "Game name contains invalid characters",
    error_code: "INVALID_GAME_NAME",
  });
  deepEqual(fail(join("ROOM01", " lead")), {
    reason: "Player name cannot have leading or trailing whitespace",
    error_code: "INVALID_INPUT",
  });
  deepEqual(fail(join("ROOM01", "ok", { max_players: 0 })), {
    reason: "Max players must be at least 1",
    error_code: "INVALID_INPUT",
  });
  deepEqual(fail(join("ROOM01", "ok", { max_players: 101 })), {
    reason: "Max players cannot exceed 100",
    error_code: "INVALID_INPUT",
  });
  deepEqual(fail(join("", "ok")), {
    reason: "Room code cannot be empty",
    error_code: "INVALID_ROOM_CODE",
  });
  deepEqual(fail(join("ABC", "ok")), {
    reason: "Room code must be exactly 6 characters",
    error_code: "INVALID_ROOM_CODE",
  });
  deepEqual(fail(join("ABC-12", "ok")), {
    reason: "Room code must be alphanumeric",
    error_code: "INVALID_ROOM_CODE",
  });
  engine.handle(P1, join("ROOM01", "ok"), T0);
  // Already seated: ALREADY_IN_ROOM comes before the room-code rules.
  deepEqual(fail(join("bad", "ok2")), {
    reason: "Already in a room",
    error_code: "ALREADY_IN_ROOM",
  });
});

Deno.test("Engine.handle() JoinRoom that fills the room moves it to lobby for everyone", () => {
  const engine = engineWith([P1, P2, S1]);
  engine.handle(P1, join("ROOM01", "a", { max_players: 2 }), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  engine.handle(P1, bare("PlayerReady"), T0);
  const effects = engine.handle(P2, join("ROOM01", "b"), T0);
  deepEqual(summarize(effects), [
    "p2 <- RoomJoined",
    "p1 <- PlayerJoined",
    "s1 <- PlayerJoined",
    "p1 <- LobbyStateChanged lobby",
    "p2 <- LobbyStateChanged lobby",
    "s1 <- LobbyStateChanged lobby",
  ]);
  equal(first(effects, P2, "RoomJoined").data.lobby_state, "lobby");
  deepEqual(first(effects, P2, "RoomJoined").data.ready_players, [P1]);
  deepEqual(first(effects, P2, "LobbyStateChanged").data, {
    lobby_state: "lobby",
    ready_players: [P1],
    all_ready: false,
  });
});

Deno.test("Engine.handle() a single-player room starts at once and stays waiting", () => {
  const engine = engineWith([P1]);
  const effects = engine.handle(P1, join(undefined, "solo", { max_players: 1 }), T0);
  deepEqual(summarize(effects), ["p1 <- RoomJoined", "p1 <- GameStarting"]);
  equal(first(effects, P1, "RoomJoined").data.lobby_state, "waiting");
  deepEqual(first(engine.handle(P1, bare("PlayerReady"), T0), P1, "LobbyStateChanged").data, {
    lobby_state: "waiting",
    ready_players: [P1],
    all_ready: false,
  });
});

Deno.test("Engine.handle() LeaveRoom runs the seat release sequence and stops room traffic", () => {
  const engine = engineWith([P1, P2, S1]);
  engine.handle(P1, join("ROOM01", "a", { max_players: 2 }), T0);
  engine.handle(P2, join("ROOM01", "b"), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  engine.handle(P2, bare("PlayerReady"), T0);
  const effects = engine.handle(P1, bare("LeaveRoom"), T0);
  deepEqual(summarize(effects), [
    "p1 <- RoomLeft",
    "p2 <- PlayerLeft",
    "s1 <- PlayerLeft",
    "p2 <- AuthorityChanged",
    "s1 <- AuthorityChanged",
    "p2 <- LobbyStateChanged waiting",
    "s1 <- LobbyStateChanged waiting",
  ]);
  deepEqual(first(effects, P2, "AuthorityChanged").data, {
    authority_player: null,
    you_are_authority: false,
  });
  deepEqual(first(effects, P2, "LobbyStateChanged").data, {
    lobby_state: "waiting",
    ready_players: [],
    all_ready: false,
  });
  // The leaver gets nothing more from that room, and may join again.
  deepEqual(sentTo(engine.handle(P2, { type: "GameData", data: { data: 1 } }, T0), P1), []);
  ok(first(engine.handle(P1, join("ROOM01", "a"), T0), P1, "RoomJoined"));
});

Deno.test("Engine.handle() LeaveRoom from a waiting room only removes the seat from the ready set", () => {
  const engine = engineWith([P1, P2]);
  engine.handle(P1, join("ROOM01", "a", { max_players: 3 }), T0);
  engine.handle(P2, join("ROOM01", "b"), T0);
  engine.handle(P2, bare("PlayerReady"), T0);
  engine.handle(P1, bare("PlayerReady"), T0);
  deepEqual(summarize(engine.handle(P2, bare("LeaveRoom"), T0)), [
    "p2 <- RoomLeft",
    "p1 <- PlayerLeft",
  ]);
  deepEqual(
    first(engine.handle(P1, bare("PlayerReady"), T0), P1, "LobbyStateChanged").data.ready_players,
    [],
  );
});

Deno.test("Engine.handle() LeaveRoom by a non-member gets no reply", () => {
  const engine = engineWith([P1, S1, P2]);
  deepEqual(engine.handle(P1, bare("LeaveRoom"), T0), []);
  engine.handle(P2, join("ROOM01", "b"), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  deepEqual(engine.handle(S1, bare("LeaveRoom"), T0), []);
});

Deno.test("Engine.disconnect() releases a player's seat without RoomLeft", () => {
  const engine = engineWith([P1, P2]);
  engine.handle(P1, join("ROOM01", "a"), T0);
  engine.handle(P2, join("ROOM01", "b"), T0);
  deepEqual(summarize(engine.disconnect(P1, T0)), ["p2 <- PlayerLeft", "p2 <- AuthorityChanged"]);
  deepEqual(engine.disconnect(P1, T0), []); // idempotent
  equal(engine.stats().players, 1);
  equal(engine.stats().connections, 1);
});

Deno.test("Engine.handle() GameData goes to the other players and spectators, never back", () => {
  const engine = engineWith([P1, P2, P3, S1]);
  engine.handle(P1, join("ROOM01", "a"), T0);
  engine.handle(P2, join("ROOM01", "b"), T0);
  engine.handle(P3, join("ROOM01", "c"), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  const payload = new RawJson('{"tick":9007199254740993,"x":1.0}');
  const effects = engine.handle(P1, { type: "GameData", data: { data: payload } }, T0);
  deepEqual(summarize(effects), ["p2 <- GameData", "p3 <- GameData", "s1 <- GameData"]);
  // One message object for all recipients: serialised once by the hub.
  equal(effects.filter((e) => e.kind === "send").length, 1);
  deepEqual(first(effects, P2, "GameData").data, { from_player: P1, data: payload });
});

Deno.test("Engine.handle() GameData with to_player reaches only that player", () => {
  const engine = engineWith([P1, P2, P3, S1]);
  engine.handle(P1, join("ROOM01", "a"), T0);
  engine.handle(P2, join("ROOM01", "b"), T0);
  engine.handle(P3, join("ROOM01", "c"), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  const target = (to: string) =>
    summarize(
      engine.handle(P1, { type: "GameData", data: { data: { sdp: "v=0" }, to_player: to } }, T0),
    );
  deepEqual(target(P2), ["p2 <- GameData"]);
  deepEqual(target(P1), ["p1 <- Error INVALID_INPUT"]);
  deepEqual(target(S1), ["p1 <- Error INVALID_INPUT"]);
  const outsider = engine.handle(P1, {
    type: "GameData",
    data: { data: 1, to_player: "00000000-0000-4000-8000-00000000ffff" },
  }, T0);
  deepEqual(first(outsider, P1, "Error").data, {
    message: "Target player is not in this room",
    error_code: "INVALID_INPUT",
  });
});

Deno.test("Engine.handle() GameData from spectators is refused and from outsiders dropped", () => {
  const engine = engineWith([P1, P2, S1]);
  engine.handle(P1, join("ROOM01", "a"), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  deepEqual(
    first(engine.handle(S1, { type: "GameData", data: { data: 1 } }, T0), S1, "Error").data,
    {
      message: "Spectators cannot send game data",
      error_code: "SPECTATOR_NOT_ALLOWED",
    },
  );
  deepEqual(summarize(engine.handle(P2, { type: "GameData", data: { data: 1 } }, T0)), []);
});

Deno.test("Engine.sweep() deletes rooms empty for empty_room_timeout, measured from becoming empty", () => {
  const engine = engineWith([P1, P2, S1]);
  engine.handle(P1, join("ROOM01", "a"), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  engine.handle(P1, bare("LeaveRoom"), T0 + 1_000_000);
  // Empty since T0 + 1,000 s: still there 299 s later, and can be re-entered.
  deepEqual(engine.sweep(T0 + 1_299_000), []);
  ok(engine.lookup("orbit", "ROOM01"));
  const deleted = engine.sweep(T0 + 1_300_000);
  deepEqual(summarize(deleted), ["s1 <- SpectatorLeft"]);
  deepEqual(first(deleted, S1, "SpectatorLeft").data, {
    room_id: "room-1",
    room_code: "ROOM01",
    reason: "room_closed",
    current_spectators: [],
  });
  equal(engine.lookup("orbit", "ROOM01"), undefined);
  // The spectator is detached and may join elsewhere.
  deepEqual(summarize(engine.handle(S1, bare("LeaveSpectator"), T0)), [
    "s1 <- Error NOT_A_SPECTATOR",
  ]);
});

Deno.test("Engine.sweep() deletes rooms inactive for inactive_room_timeout and tells the players", () => {
  const engine = engineWith([P1, P2]);
  engine.handle(P1, join("ROOM01", "a"), T0);
  engine.handle(P2, join("ROOM02", "b"), T0);
  // Game data keeps ROOM02 active; Ping does not count as room activity.
  engine.handle(P2, { type: "GameData", data: { data: 1 } }, T0 + 3_000_000);
  engine.handle(P1, bare("Ping"), T0 + 3_000_000);
  const effects = engine.sweep(T0 + 3_600_001);
  deepEqual(summarize(effects), ["p1 <- RoomLeft"]);
  ok(
    effects.some((e) =>
      e.kind === "event" && e.event.type === "room_deleted" && e.event.reason === "inactive"
    ),
  );
  ok(engine.lookup("orbit", "ROOM02"));
  // The player is free to join again.
  ok(first(engine.handle(P1, join(undefined, "a"), T0 + 3_600_002), P1, "RoomJoined"));
});

Deno.test("Engine relay_type comes from the game mapping, else the default", () => {
  const engine = engineWith([P1, P2], { relayTypeByGame: { orbit: "mirror" } });
  equal(
    first(engine.handle(P1, join("ROOM01", "a"), T0), P1, "RoomJoined").data.relay_type,
    "mirror",
  );
  const other = engine.handle(P2, join("ROOM01", "b", { game_name: "chess" }), T0);
  equal(first(other, P2, "RoomJoined").data.relay_type, "matchbox");
});
