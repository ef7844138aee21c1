/**
 * The room flows of docs/spec/PROTOCOL.md §7.2–§7.9 sentence by sentence, where the other engine
 * tests leave a rule open: the order of `JoinRoom`'s checks for a connection already in a room,
 * held seats counting as occupied, authority in rooms entered empty or created without it,
 * lobby states and ready flags across holds, resumes, takeovers and releases (with what held
 * seats' replay buffers get), `GameStarting` contents and recipients, and the order of
 * `JoinAsSpectator`'s checks. No sockets, no sleeps: time is passed in.
 */
import { deepEqual, equal } from "node:assert/strict";
import type { ClientMessage, ServerMessage } from "../protocol/messages.ts";
import type { Effect, Engine } from "./engine.ts";
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
  reconnectingEngineWith,
  S1,
  S2,
  sentTo,
  spectate,
  summarize,
} from "./testing.ts";

const T0 = Date.UTC(2026, 11, 8, 4, 30, 0);

function reconnect(player_id: string, room_id: string, auth_token: string): ClientMessage {
  return { type: "Reconnect", data: { player_id, room_id, auth_token } };
}

function authority(become_authority: boolean): ClientMessage {
  return { type: "AuthorityRequest", data: { become_authority } };
}

function provide(connection_info: unknown): ClientMessage {
  return { type: "ProvideConnectionInfo", data: { connection_info } } as ClientMessage;
}

/** The replayed messages of the `Reconnected` in `effects` sent to `to`, parsed. */
function missed(effects: Effect[], to: string): ServerMessage[] {
  return first(effects, to, "Reconnected").data.missed_events.map((event) =>
    JSON.parse(event.text) as ServerMessage
  );
}

/** Joins P1, P2, P3 (in that order) to ROOM01 of `max` seats; returns each one's `RoomJoined`. */
function seatThree(engine: Engine, max = 3) {
  return [P1, P2, P3].map((id, i) =>
    first(
      engine.handle(id, join("ROOM01", ["Mira", "Tobias", "Nina"][i]!, { max_players: max }), T0),
      id,
      "RoomJoined",
    ).data
  );
}

// ---------------------------------------------------------------------------------------------
// §7.2 JoinRoom

Deno.test("§7.2.1: a seated or spectating connection gets the name and max_players failures before ALREADY_IN_ROOM, and that before the code rules", () => {
  const engine = engineWith([P1, S1]);
  first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined");
  first(engine.handle(S1, spectate("ROOM01"), T0), S1, "SpectatorJoined");
  for (const conn of [P1, S1]) {
    const fail = (message: ClientMessage) =>
      first(engine.handle(conn, message, T0), conn, "RoomJoinFailed").data;
    deepEqual(fail(join("bad", "x", { game_name: "" })), {
      reason: "Game name cannot be empty",
      error_code: "INVALID_GAME_NAME",
    });
    // Player-name failures of JoinRoom are INVALID_INPUT (JoinAsSpectator's: INVALID_PLAYER_NAME).
    deepEqual(fail(join("bad", "a\tb")), {
      reason: "Player name cannot contain whitespace characters",
      error_code: "INVALID_INPUT",
    });
    deepEqual(fail(join("bad", "x", { max_players: 0 })), {
      reason: "Max players must be at least 1",
      error_code: "INVALID_INPUT",
    });
    deepEqual(fail(join("bad", "x")), {
      reason: "Already in a room",
      error_code: "ALREADY_IN_ROOM",
    });
  }
});

Deno.test("§7.2.2: codes are per game name; held seats keep their name taken and their place counted", () => {
  const engine = reconnectingEngineWith([P1, P2, P3, C1]);
  first(engine.handle(P1, join("ROOM01", "Mira", { max_players: 2 }), T0), P1, "RoomJoined");
  // The same code under another game name is another room, created by the join.
  const other = first(
    engine.handle(P3, join("room01", "Mira", { game_name: "chess" }), T0),
    P3,
    "RoomJoined",
  ).data;
  equal(other.room_code, "ROOM01");
  equal(other.current_players.length, 1);
  equal(other.is_authority, true);
  engine.disconnect(P1, T0);
  // Held: its name is still taken (case-insensitively), checked before the room being full.
  deepEqual(first(engine.handle(P2, join("ROOM01", "mIRA"), T0), P2, "RoomJoinFailed").data, {
    reason: "Player name already exists in this room",
    error_code: "ROOM_CREATION_FAILED",
  });
  first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined");
  deepEqual(first(engine.handle(C1, join("ROOM01", "Mira"), T0), C1, "RoomJoinFailed").data, {
    reason: "Player name already exists in this room",
    error_code: "ROOM_CREATION_FAILED",
  });
  deepEqual(first(engine.handle(C1, join("ROOM01", "Kai"), T0), C1, "RoomJoinFailed").data, {
    reason: "Room is full",
    error_code: "ROOM_FULL",
  });
});

Deno.test("§7.2.2, §7.3.4: a joiner never gets authority, also when it is vacant or the room was empty; anyone may claim it", () => {
  const engine = engineWith([P1, P2, P3]);
  first(engine.handle(P1, join("ROOM01", "Mira", { max_players: 3 }), T0), P1, "RoomJoined");
  engine.handle(P1, authority(false), T0);
  const vacant = first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined").data;
  equal(vacant.is_authority, false);
  deepEqual(vacant.current_players.map((p) => p.is_authority), [false, false]);
  engine.handle(P1, bare("LeaveRoom"), T0);
  engine.handle(P2, bare("LeaveRoom"), T0);
  // Empty now: the room stays and can be entered again, without authority.
  const entered = engine.handle(P3, join("ROOM01", "Nina", { supports_authority: true }), T0);
  deepEqual(summarize(entered), ["p3 <- RoomJoined"]);
  const data = first(entered, P3, "RoomJoined").data;
  equal(data.room_id, "room-1");
  equal(data.is_authority, false);
  first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined");
  const claimed = engine.handle(P1, authority(true), T0);
  deepEqual(summarize(claimed), [
    "p1 <- AuthorityResponse",
    "p1 <- AuthorityChanged",
    "p3 <- AuthorityChanged",
  ]);
  deepEqual(first(claimed, P3, "AuthorityChanged").data, {
    authority_player: P1,
    you_are_authority: false,
  });
});

Deno.test("§7.2.4 step 4: entering a single-player room sends GameStarting to the joiner and the spectators; a released seat takes its connection info with it", () => {
  const engine = engineWith([P1, P2, S1]);
  first(engine.handle(P1, join("SOLO01", "Mira", { max_players: 1 }), T0), P1, "RoomJoined");
  engine.handle(P1, provide({ type: "direct", host: "192.0.2.1", port: 1 }), T0);
  engine.handle(P1, bare("LeaveRoom"), T0);
  first(engine.handle(S1, spectate("SOLO01"), T0), S1, "SpectatorJoined");
  first(engine.handle(P2, join("SOLO01", "Tobias"), T0), P2, "RoomJoined");
  engine.handle(P2, bare("LeaveRoom"), T0);
  // A seat released takes its connection info with it (§7.3.3 step 1): P1 enters afresh.
  const effects = engine.handle(P1, join("SOLO01", "Mira"), T0);
  deepEqual(summarize(effects), [
    "p1 <- RoomJoined",
    "s1 <- PlayerJoined",
    "p1 <- GameStarting",
    "s1 <- GameStarting",
  ]);
  const peers = [{
    player_id: P1,
    player_name: "Mira",
    is_authority: false,
    relay_type: "matchbox",
  }];
  deepEqual(first(effects, P1, "GameStarting").data.peer_connections, peers);
  deepEqual(first(effects, S1, "GameStarting").data.peer_connections, peers);
  equal(first(effects, P1, "RoomJoined").data.lobby_state, "waiting");
});

// ---------------------------------------------------------------------------------------------
// §7.3 seat release, §7.4 lobby

Deno.test("§7.3.3: releasing the holder's seat from a finalized room tells held seats too, in order; their snapshot agrees", () => {
  const engine = reconnectingEngineWith([P1, P2, P3, S1, C1]);
  const joined = seatThree(engine);
  first(engine.handle(S1, spectate("ROOM01"), T0), S1, "SpectatorJoined");
  for (const id of [P1, P2, P3]) engine.handle(id, bare("PlayerReady"), T0);
  equal(engine.lookup("orbit", "ROOM01")?.lobby_state, "finalized");
  // Holding a seat changes nothing (§7.4): nobody is told, the room stays finalized.
  deepEqual(summarize(engine.disconnect(P3, T0)), []);
  equal(engine.lookup("orbit", "ROOM01")?.lobby_state, "finalized");
  const left = engine.handle(P1, bare("LeaveRoom"), T0);
  deepEqual(summarize(left), [
    "p1 <- RoomLeft",
    "p2 <- PlayerLeft",
    "s1 <- PlayerLeft",
    "p2 <- AuthorityChanged",
    "s1 <- AuthorityChanged",
    "p2 <- LobbyStateChanged waiting",
    "s1 <- LobbyStateChanged waiting",
  ]);
  const back = engine.handle(
    C1,
    reconnect(P3, joined[2]!.room_id, joined[2]!.reconnection_token!),
    T0,
  );
  deepEqual(missed(back, C1), [
    { type: "PlayerLeft", data: { player_id: P1 } },
    { type: "AuthorityChanged", data: { authority_player: null, you_are_authority: false } },
    {
      type: "LobbyStateChanged",
      data: { lobby_state: "waiting", ready_players: [], all_ready: false },
    },
  ]);
  const snapshot = first(back, C1, "Reconnected").data;
  equal(snapshot.lobby_state, "waiting");
  deepEqual(snapshot.ready_players, []);
  deepEqual(snapshot.current_players.map((p) => [p.id, p.is_ready, p.is_authority]), [
    [P2, false, false],
    [P3, false, false],
  ]);
});

Deno.test("§7.4: readiness is held with the seat; a held seat gets the lobby's changes and GameStarting in its replay; a takeover changes nothing", () => {
  const engine = reconnectingEngineWith([P1, P2, C1, C2]);
  const joined = first(
    engine.handle(P1, join("ROOM01", "Mira", { max_players: 2 }), T0),
    P1,
    "RoomJoined",
  ).data;
  first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined");
  engine.handle(P1, provide({ type: "direct", host: "192.0.2.1", port: 7000 }), T0);
  engine.handle(P1, bare("PlayerReady"), T0);
  engine.handle(P2, bare("PlayerReady"), T0);
  engine.disconnect(P1, T0);
  // The held seat stays ready: P2 un-readies (lobby) and readies again (finalized, a rematch).
  deepEqual(summarize(engine.handle(P2, bare("PlayerReady"), T0)), [
    "p2 <- LobbyStateChanged lobby",
  ]);
  deepEqual(summarize(engine.handle(P2, bare("PlayerReady"), T0)), [
    "p2 <- LobbyStateChanged finalized",
    "p2 <- GameStarting",
  ]);
  const resumed = engine.handle(C1, reconnect(P1, joined.room_id, joined.reconnection_token!), T0);
  deepEqual(summarize(resumed), ["c1 <- Reconnected", "p2 <- PlayerReconnected"]);
  const peers = [
    {
      player_id: P1,
      player_name: "Mira",
      is_authority: true,
      relay_type: "matchbox",
      connection_info: { type: "direct", host: "192.0.2.1", port: 7000 },
    },
    { player_id: P2, player_name: "Tobias", is_authority: false, relay_type: "matchbox" },
  ];
  deepEqual(missed(resumed, C1), [
    {
      type: "LobbyStateChanged",
      data: { lobby_state: "lobby", ready_players: [P1], all_ready: false },
    },
    {
      type: "LobbyStateChanged",
      data: { lobby_state: "finalized", ready_players: [P1, P2], all_ready: true },
    },
    { type: "GameStarting", data: { peer_connections: peers } },
  ]);
  const snapshot = first(resumed, C1, "Reconnected").data;
  equal(snapshot.lobby_state, "finalized");
  deepEqual(snapshot.ready_players, [P1, P2]);
  deepEqual(snapshot.current_players.map((p) => p.is_ready), [true, true]);
  deepEqual(snapshot.current_players[0]!.connection_info, peers[0]!.connection_info);
  // A takeover: the new socket gets the same state, the others only PlayerReconnected.
  const taken = engine.handle(C2, reconnect(P1, joined.room_id, snapshot.reconnection_token), T0);
  deepEqual(summarize(taken), ["c1 closed 4001", "c2 <- Reconnected", "p2 <- PlayerReconnected"]);
  equal(first(taken, C2, "Reconnected").data.lobby_state, "finalized");
  deepEqual(first(taken, C2, "Reconnected").data.ready_players, [P1, P2]);
  // Un-readying from the new socket goes back to lobby for everyone.
  deepEqual(
    first(engine.handle(C2, bare("PlayerReady"), T0), P2, "LobbyStateChanged").data,
    { lobby_state: "lobby", ready_players: [P2], all_ready: false },
  );
});

Deno.test("§7.4: a held seat's expiry breaks up a lobby; refilling it lists the ready set kept since, then finalizing sends GameStarting again", () => {
  const engine = reconnectingEngineWith([P1, P2, P3, S1], { reconnectionWindowMs: 1000 });
  first(engine.handle(P1, join("ROOM01", "Mira", { max_players: 2 }), T0), P1, "RoomJoined");
  first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined");
  first(engine.handle(S1, spectate("ROOM01"), T0), S1, "SpectatorJoined");
  engine.handle(P1, bare("PlayerReady"), T0);
  engine.disconnect(P2, T0);
  const expired = engine.tick(T0 + 1000);
  deepEqual(summarize(expired), [
    "p1 <- PlayerLeft",
    "s1 <- PlayerLeft",
    "p1 <- LobbyStateChanged waiting",
    "s1 <- LobbyStateChanged waiting",
  ]);
  // Ready toggles in waiting are allowed and broadcast; the set carries over into the lobby.
  deepEqual(first(engine.handle(P1, bare("PlayerReady"), T0), S1, "LobbyStateChanged").data, {
    lobby_state: "waiting",
    ready_players: [P1],
    all_ready: false,
  });
  const filled = engine.handle(P3, join("ROOM01", "Nina"), T0);
  const joined = first(filled, P3, "RoomJoined").data;
  equal(joined.lobby_state, "lobby");
  deepEqual(joined.ready_players, [P1]);
  deepEqual(joined.current_players.map((p) => p.is_ready), [true, false]);
  const start = engine.handle(P3, bare("PlayerReady"), T0);
  deepEqual(summarize(start), [
    "p1 <- LobbyStateChanged finalized",
    "p3 <- LobbyStateChanged finalized",
    "s1 <- LobbyStateChanged finalized",
    "p1 <- GameStarting",
    "p3 <- GameStarting",
    "s1 <- GameStarting",
  ]);
  deepEqual(first(start, P3, "GameStarting").data.peer_connections.map((p) => p.player_id), [
    P1,
    P3,
  ]);
});

// ---------------------------------------------------------------------------------------------
// §7.5 authority

Deno.test("§7.5: a room created without authority has no holder, refuses claims and releases, and announces none", () => {
  const engine = engineWith([P1, P2]);
  const created = first(
    engine.handle(P1, join("ROOM01", "Mira", { max_players: 2, supports_authority: false }), T0),
    P1,
    "RoomJoined",
  ).data;
  equal(created.supports_authority, false);
  equal(created.is_authority, false);
  deepEqual(created.current_players.map((p) => p.is_authority), [false]);
  for (const claim of [true, false]) {
    deepEqual(summarize(engine.handle(P1, authority(claim), T0)), [
      "p1 <- AuthorityResponse AUTHORITY_NOT_SUPPORTED",
    ]);
  }
  first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined");
  engine.handle(P1, bare("PlayerReady"), T0);
  const start = engine.handle(P2, bare("PlayerReady"), T0);
  deepEqual(
    first(start, P1, "GameStarting").data.peer_connections.map((p) => p.is_authority),
    [false, false],
  );
  // The creator leaving hands nothing over: no AuthorityChanged.
  deepEqual(summarize(engine.handle(P1, bare("LeaveRoom"), T0)), [
    "p1 <- RoomLeft",
    "p2 <- PlayerLeft",
    "p2 <- LobbyStateChanged waiting",
  ]);
});

Deno.test("§7.5: a held holder keeps authority against claims; changes reach held seats' replay; GameStarting shows the current holder", () => {
  const engine = reconnectingEngineWith([P1, P2, P3, C1]);
  const joined = seatThree(engine);
  engine.disconnect(P1, T0);
  deepEqual(first(engine.handle(P2, authority(true), T0), P2, "AuthorityResponse").data, {
    granted: false,
    reason: "Another player already has authority",
    error_code: "AUTHORITY_CONFLICT",
  });
  deepEqual(first(engine.handle(P2, authority(false), T0), P2, "AuthorityResponse").data, {
    granted: false,
    reason: "You do not have authority to release",
    error_code: "AUTHORITY_DENIED",
  });
  const resumed = engine.handle(
    C1,
    reconnect(P1, joined[0]!.room_id, joined[0]!.reconnection_token!),
    T0,
  );
  deepEqual(missed(resumed, C1), []);
  equal(first(resumed, C1, "Reconnected").data.is_authority, true);
  // Hand it to P3 while P2 is held: P2's replay gets both changes.
  engine.disconnect(P2, T0);
  engine.handle(C1, authority(false), T0);
  const claimed = engine.handle(P3, authority(true), T0);
  deepEqual(summarize(claimed), [
    "p3 <- AuthorityResponse",
    "p3 <- AuthorityChanged",
    "c1 <- AuthorityChanged",
  ]);
  for (const id of [C1, P3]) engine.handle(id, bare("PlayerReady"), T0);
  engine.connect(C2);
  const back = engine.handle(
    C2,
    reconnect(P2, joined[1]!.room_id, joined[1]!.reconnection_token!),
    T0,
  );
  deepEqual(
    missed(back, C2).filter((m) => m.type === "AuthorityChanged").map((m) => m.data),
    [
      { authority_player: null, you_are_authority: false },
      { authority_player: P3, you_are_authority: false },
    ],
  );
  const start = engine.handle(C2, bare("PlayerReady"), T0);
  deepEqual(
    first(start, P3, "GameStarting").data.peer_connections.map((
      p,
    ) => [p.player_id, p.is_authority]),
    [[P1, false], [P2, false], [P3, true]],
  );
  deepEqual(first(back, C2, "Reconnected").data.current_players.map((p) => p.is_authority), [
    false,
    false,
    true,
  ]);
});

// ---------------------------------------------------------------------------------------------
// §7.8 connection info

Deno.test("§7.8: connection info is replaced silently, one GameStarting entry per seat in seat order, omitted where none", () => {
  const engine = reconnectingEngineWith([P1, P2, P3]);
  seatThree(engine);
  deepEqual(engine.handle(P3, provide({ type: "direct", host: "192.0.2.3", port: 1 }), T0), []);
  deepEqual(
    engine.handle(P3, provide({ type: "webrtc", sdp: "v=0", ice_candidates: [] }), T0),
    [],
  );
  for (const id of [P3, P2, P1]) engine.handle(id, bare("PlayerReady"), T0);
  engine.handle(P1, bare("PlayerReady"), T0);
  engine.disconnect(P2, T0); // held seats have their entry too
  const start = engine.handle(P1, bare("PlayerReady"), T0);
  deepEqual(first(start, P1, "GameStarting").data.peer_connections, [
    { player_id: P1, player_name: "Mira", is_authority: true, relay_type: "matchbox" },
    { player_id: P2, player_name: "Tobias", is_authority: false, relay_type: "matchbox" },
    {
      player_id: P3,
      player_name: "Nina",
      is_authority: false,
      relay_type: "matchbox",
      connection_info: { type: "webrtc", sdp: "v=0", ice_candidates: [] },
    },
  ]);
});

// ---------------------------------------------------------------------------------------------
// §7.9 spectators

Deno.test("§7.9: JoinAsSpectator checks names before ALREADY_IN_ROOM, that before the code, not-found before the cap", () => {
  const engine = engineWith([P1, S1, S2], { maxSpectatorsPerRoom: 1 });
  first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined");
  const fail = (from: string, message: ClientMessage) =>
    first(engine.handle(from, message, T0), from, "SpectatorJoinFailed").data;
  deepEqual(
    fail(
      P1,
      {
        ...spectate("ROOM01"),
        data: { ...spectate("ROOM01").data, game_name: "a/b" },
      } as ClientMessage,
    ),
    {
      reason: "Game name contains invalid characters",
      error_code: "INVALID_GAME_NAME",
    },
  );
  deepEqual(fail(P1, spectate("ROOM01", " Jun")), {
    reason: "Player name cannot have leading or trailing whitespace",
    error_code: "INVALID_PLAYER_NAME",
  });
  deepEqual(fail(P1, spectate("R1")), {
    reason: "Already in a room",
    error_code: "ALREADY_IN_ROOM",
  });
  first(engine.handle(S1, spectate("ROOM01"), T0), S1, "SpectatorJoined");
  deepEqual(fail(S2, spectate("NOROOM")), {
    reason: "Room not found",
    error_code: "ROOM_NOT_FOUND",
  });
  // A switch refused at the cap keeps the old room.
  first(engine.handle(P1, bare("LeaveRoom"), T0), P1, "RoomLeft");
  first(engine.handle(P1, join("ROOM02", "Mira"), T0), P1, "RoomJoined");
  first(engine.handle(S2, spectate("ROOM02"), T0), S2, "SpectatorJoined");
  deepEqual(fail(S1, spectate("ROOM02")), {
    reason: "Spectator limit reached",
    error_code: "TOO_MANY_SPECTATORS",
  });
  deepEqual(sentTo(engine.handle(S1, bare("LeaveSpectator"), T0), S1).map((m) => m.type), [
    "SpectatorLeft",
  ]);
});

Deno.test("§7.9: a spectator's snapshot shows the real lobby state and ready flags; spectators get every room broadcast", () => {
  const engine = reconnectingEngineWith([P1, P2, S1, S2, C1]);
  const joined = first(
    engine.handle(P1, join("ROOM01", "Mira", { max_players: 2 }), T0),
    P1,
    "RoomJoined",
  ).data;
  first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined");
  engine.handle(P2, bare("PlayerReady"), T0);
  first(engine.handle(S1, spectate("ROOM01", "Jun"), T0), S1, "SpectatorJoined");
  const watched =
    first(engine.handle(S2, spectate("ROOM01", "Kai"), T0), S2, "SpectatorJoined").data;
  equal(watched.lobby_state, "lobby");
  deepEqual(watched.current_players.map((p) => [p.id, p.is_ready, p.is_authority]), [
    [P1, false, true],
    [P2, true, false],
  ]);
  deepEqual(watched.current_spectators.map((s) => s.id), [S1, S2]);
  // Every broadcast reaches both spectators: game data, lobby, authority, reconnection.
  const seen = (effects: Effect[]) => [S1, S2].map((s) => sentTo(effects, s).map((m) => m.type));
  deepEqual(seen(engine.handle(P1, { type: "GameData", data: { data: 1 } }, T0)), [
    ["GameData"],
    ["GameData"],
  ]);
  deepEqual(seen(engine.handle(P1, authority(false), T0)), [
    ["AuthorityChanged"],
    ["AuthorityChanged"],
  ]);
  deepEqual(seen(engine.handle(P1, bare("PlayerReady"), T0)), [
    ["LobbyStateChanged", "GameStarting"],
    ["LobbyStateChanged", "GameStarting"],
  ]);
  engine.disconnect(P1, T0);
  deepEqual(
    seen(engine.handle(C1, reconnect(P1, joined.room_id, joined.reconnection_token!), T0)),
    [["PlayerReconnected"], ["PlayerReconnected"]],
  );
  deepEqual(seen(engine.handle(C1, bare("LeaveRoom"), T0)), [
    ["PlayerLeft", "LobbyStateChanged"],
    ["PlayerLeft", "LobbyStateChanged"],
  ]);
});

Deno.test("§7.4 note: PlayerReady and AuthorityRequest from a connection in no room fail without taking a lobby-change token", () => {
  const engine = engineWith([P1, P2], { lobbyChanges: { capacity: 1, windowMs: 60_000 } });
  for (let i = 0; i < 3; i++) {
    deepEqual(summarize(engine.handle(P1, bare("PlayerReady"), T0)), ["p1 <- Error NOT_IN_ROOM"]);
    deepEqual(summarize(engine.handle(P1, authority(true), T0)), [
      "p1 <- AuthorityResponse NOT_IN_ROOM",
    ]);
  }
  first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined");
  first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined");
  deepEqual(summarize(engine.handle(P1, bare("PlayerReady"), T0)), [
    "p1 <- LobbyStateChanged waiting",
    "p2 <- LobbyStateChanged waiting",
  ]);
  deepEqual(summarize(engine.handle(P1, bare("PlayerReady"), T0)), [
    "p1 <- Error RATE_LIMIT_EXCEEDED",
  ]);
});

Deno.test("§7.7: binary frames from a message_pack connection in no room are dropped without a reply; spectators get the envelope or the JSON by their own format", () => {
  const engine = engineWith([P1, P2, S1, S2], { messagePack: true });
  const msgpack: ClientMessage = {
    type: "Authenticate",
    data: { app_id: "a", game_data_format: "message_pack" },
  };
  for (const id of [P1, S1]) engine.handle(id, msgpack, T0);
  // 0x01 is the MessagePack integer 1.
  deepEqual(engine.handleBinary(P1, new Uint8Array([1]), T0), []);
  first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined");
  first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined");
  first(engine.handle(S1, spectate("ROOM01"), T0), S1, "SpectatorJoined");
  first(engine.handle(S2, spectate("ROOM01"), T0), S2, "SpectatorJoined");
  deepEqual(summarize(engine.handleBinary(P1, new Uint8Array([1]), T0)), [
    "s1 <- binary frame",
    "p2 <- text frame",
    "s2 <- text frame",
  ]);
  // A message_pack spectator is refused like any spectator.
  deepEqual(summarize(engine.handleBinary(S1, new Uint8Array([1]), T0)), [
    "s1 <- Error SPECTATOR_NOT_ALLOWED",
  ]);
});

Deno.test("§7.4 note: a Reconnect continues with the bucket of the connection it replaces, also when that one never used its bucket", () => {
  // P2 spends its lobby changes in ROOM02 and leaves; its connection then resumes P1's held seat
  // and takes over P3's live seat, neither of whose connections announced anything: each time it
  // continues with that connection's (full) bucket, not its own.
  const engine = reconnectingEngineWith([P1, P2, P3], {
    lobbyChanges: { capacity: 1, windowMs: 60_000 },
  });
  const mira = first(
    engine.handle(P1, join("ROOM01", "Mira", { max_players: 3 }), T0),
    P1,
    "RoomJoined",
  ).data;
  const nina = first(engine.handle(P3, join("ROOM01", "Nina"), T0), P3, "RoomJoined").data;
  first(engine.handle(P2, join("ROOM02", "Tobias"), T0), P2, "RoomJoined");
  first(engine.handle(P2, bare("PlayerReady"), T0), P2, "LobbyStateChanged");
  equal(
    first(engine.handle(P2, bare("PlayerReady"), T0), P2, "Error").data.error_code,
    "RATE_LIMIT_EXCEEDED",
  );
  first(engine.handle(P2, bare("LeaveRoom"), T0), P2, "RoomLeft");
  engine.disconnect(P1, T0);
  first(
    engine.handle(P2, reconnect(P1, mira.room_id, mira.reconnection_token!), T0),
    P2,
    "Reconnected",
  );
  deepEqual(first(engine.handle(P2, bare("PlayerReady"), T0), P3, "LobbyStateChanged").data, {
    lobby_state: "waiting",
    ready_players: [P1],
    all_ready: false,
  });
  // Now P1's bucket is spent; leaving and taking over Nina's seat continues with hers.
  first(engine.handle(P2, bare("LeaveRoom"), T0), P2, "RoomLeft");
  engine.connect(C1);
  first(engine.handle(C1, join("ROOM01", "Kai"), T0), C1, "RoomJoined");
  engine.handle(P2, reconnect(P3, nina.room_id, nina.reconnection_token!), T0);
  deepEqual(first(engine.handle(P2, bare("PlayerReady"), T0), C1, "LobbyStateChanged").data, {
    lobby_state: "waiting",
    ready_players: [P3],
    all_ready: false,
  });
});

Deno.test("§7.2.5: max_players 1 and max_players_limit are accepted, one past the limit is not", () => {
  // Configuration keeps default_max_players within max_players_limit (docs/spec/SERVER.md §2.7).
  const engine = engineWith([P1, P2, P3], { maxPlayersLimit: 5, defaultMaxPlayers: 4 });
  equal(
    first(engine.handle(P1, join("ROOM01", "a", { max_players: 1 }), T0), P1, "RoomJoined").data
      .max_players,
    1,
  );
  equal(
    first(engine.handle(P2, join("ROOM02", "b", { max_players: 5 }), T0), P2, "RoomJoined").data
      .max_players,
    5,
  );
  deepEqual(
    first(engine.handle(P3, join("ROOM03", "c", { max_players: 6 }), T0), P3, "RoomJoinFailed")
      .data,
    { reason: "Max players cannot exceed 5", error_code: "INVALID_INPUT" },
  );
  // Omitted: server.default_max_players.
  equal(
    first(engine.handle(P3, join("ROOM03", "c"), T0), P3, "RoomJoined").data.max_players,
    4,
  );
});
