import { deepEqual, equal, ok } from "node:assert/strict";

import {
  bare,
  engineWith,
  first,
  join,
  P1,
  P2,
  S1,
  S2,
  sentTo,
  spectate,
  summarize,
} from "./testing.ts";

const T0 = Date.UTC(2026, 2, 4, 18, 22, 5, 123);

Deno.test("Engine.handle() JoinAsSpectator attaches a watcher and tells the room", () => {
  const engine = engineWith([P1, S1, S2]);
  engine.handle(P1, join("ROOM01", "a"), T0);
  engine.handle(S1, spectate("room01", "Jun"), T0);
  const effects = engine.handle(S2, spectate("ROOM01", "Kai"), T0 + 5);
  deepEqual(summarize(effects), [
    "s2 <- SpectatorJoined",
    "p1 <- NewSpectatorJoined",
    "s1 <- NewSpectatorJoined",
  ]);
  const joined = first(effects, S2, "SpectatorJoined").data;
  equal(joined.room_code, "ROOM01");
  equal(joined.spectator_id, S2);
  equal(joined.lobby_state, "waiting");
  equal(joined.reason, "joined");
  deepEqual(joined.current_spectators.map((s) => s.name), ["Jun", "Kai"]);
  deepEqual(joined.current_players.map((p) => p.id), [P1]);
  deepEqual(first(effects, P1, "NewSpectatorJoined").data.spectator, {
    id: S2,
    name: "Kai",
    connected_at: "2026-03-04T18:22:05.128Z",
  });
});

Deno.test("Engine.handle() JoinAsSpectator failures are SpectatorJoinFailed with the spec's codes", () => {
  const engine = engineWith([P1, S1, S2], { maxSpectatorsPerRoom: 1 });
  const fail = (from: string, message: ReturnType<typeof spectate>) =>
    first(engine.handle(from, message, T0), from, "SpectatorJoinFailed").data;
  deepEqual(fail(S1, spectate("ROOM01")), {
    reason: "Room not found",
    error_code: "ROOM_NOT_FOUND",
  });
  deepEqual(fail(S1, spectate("ROOM01", "bad\tname")), {
    reason: "Player name cannot contain whitespace characters",
    error_code: "INVALID_PLAYER_NAME",
  });
  deepEqual(fail(S1, spectate("R1")), {
    reason: "Room code must be exactly 6 characters",
    error_code: "INVALID_ROOM_CODE",
  });
  engine.handle(P1, join("ROOM01", "a"), T0);
  deepEqual(fail(P1, spectate("ROOM01")), {
    reason: "Already in a room",
    error_code: "ALREADY_IN_ROOM",
  });
  engine.handle(S1, spectate("ROOM01"), T0);
  deepEqual(fail(S2, spectate("ROOM01")), {
    reason: "Spectator limit reached",
    error_code: "TOO_MANY_SPECTATORS",
  });
  // Re-joining the room one already watches does not count oneself against the cap.
  ok(first(engine.handle(S1, spectate("ROOM01"), T0), S1, "SpectatorJoined"));
});

Deno.test("Engine.handle() JoinAsSpectator while spectating switches rooms", () => {
  const engine = engineWith([P1, P2, S1]);
  engine.handle(P1, join("ROOM01", "a"), T0);
  engine.handle(P2, join("ROOM02", "b"), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  // A failing switch keeps the old room.
  first(engine.handle(S1, spectate("NOROOM"), T0), S1, "SpectatorJoinFailed");
  deepEqual(summarize(engine.handle(P1, { type: "GameData", data: { data: 1 } }, T0)), [
    "s1 <- GameData",
  ]);
  const effects = engine.handle(S1, spectate("ROOM02"), T0);
  deepEqual(summarize(effects), [
    "p1 <- SpectatorDisconnected",
    "s1 <- SpectatorJoined",
    "p2 <- NewSpectatorJoined",
  ]);
  deepEqual(first(effects, P1, "SpectatorDisconnected").data, {
    spectator_id: S1,
    reason: "voluntary_leave",
    current_spectators: [],
  });
});

Deno.test("Engine.handle() LeaveSpectator detaches with SpectatorLeft and SpectatorDisconnected", () => {
  const engine = engineWith([P1, S1, S2]);
  deepEqual(first(engine.handle(S1, bare("LeaveSpectator"), T0), S1, "Error").data, {
    message: "You are not currently spectating a room",
    error_code: "NOT_A_SPECTATOR",
  });
  engine.handle(P1, join("ROOM01", "a"), T0);
  engine.handle(S1, spectate("ROOM01", "Jun"), T0);
  engine.handle(S2, spectate("ROOM01", "Kai"), T0);
  const effects = engine.handle(S1, bare("LeaveSpectator"), T0);
  deepEqual(summarize(effects), [
    "s1 <- SpectatorLeft",
    "p1 <- SpectatorDisconnected",
    "s2 <- SpectatorDisconnected",
  ]);
  deepEqual(first(effects, S1, "SpectatorLeft").data, {
    room_id: "room-1",
    room_code: "ROOM01",
    reason: "voluntary_leave",
    current_spectators: [{ id: S2, name: "Kai", connected_at: "2026-03-04T18:22:05.123Z" }],
  });
  // A spectator disconnect is the same detach with reason "disconnected" and no SpectatorLeft.
  const gone = engine.disconnect(S2, T0);
  deepEqual(summarize(gone), ["p1 <- SpectatorDisconnected"]);
  equal(first(gone, P1, "SpectatorDisconnected").data.reason, "disconnected");
});

Deno.test("Engine.handle() spectators may not JoinRoom and receive room broadcasts", () => {
  const engine = engineWith([P1, P2, S1]);
  engine.handle(P1, join("ROOM01", "a", { max_players: 2 }), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  deepEqual(summarize(engine.handle(S1, join("ROOM01", "x"), T0)), [
    "s1 <- RoomJoinFailed ALREADY_IN_ROOM",
  ]);
  const joined = engine.handle(P2, join("ROOM01", "b"), T0);
  ok(sentTo(joined, S1).some((m) => m.type === "PlayerJoined"));
  engine.handle(P1, bare("PlayerReady"), T0);
  const start = engine.handle(P2, bare("PlayerReady"), T0);
  ok(first(start, S1, "GameStarting"));
});
