/**
 * Rooms that survive a restart (docs/spec/SERVER.md §2.7 `state_file`): the engine's snapshot and restore,
 * without I/O. Round trip, resumption with the old tokens, no token in the snapshot, and every
 * refusal leaves the engine empty.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import type { ClientMessage } from "../protocol/messages.ts";
import { decodeSnapshot, type Engine, type RoomsSnapshot, SNAPSHOT_VERSION } from "./engine.ts";
import {
  bare,
  C1,
  C2,
  first,
  join,
  P1,
  P2,
  P3,
  reconnectingEngineWith,
  S1,
  sentTo,
  spectate,
} from "./testing.ts";

const T0 = Date.UTC(2026, 2, 4, 18, 0, 0);
const T1 = T0 + 60_000;
const WINDOW = 300_000;

/** A deterministic stand-in for the server's SHA-256 token digest (FNV-1a; tests only). */
function digest(token: string): string {
  let h = 2166136261;
  for (let i = 0; i < token.length; i++) h = Math.imul(h ^ token.charCodeAt(i), 16777619);
  return `d${(h >>> 0).toString(16)}-${token.length}`;
}

function engineWith(ids: string[], overrides = {}): Engine {
  return reconnectingEngineWith(ids, { tokenDigest: digest, ...overrides });
}

function reconnect(player_id: string, room_id: string, auth_token: string): ClientMessage {
  return { type: "Reconnect", data: { player_id, room_id, auth_token } };
}

/**
 * A game in progress: ROOM01 (3 seats, P1 holds authority, handover on, P1 and P2 ready, P1's
 * connection info, P1 opted in to presence, a spectator, P3 held with a replay buffer) and an
 * empty room ROOM02. Returns the engine and the players' tokens.
 */
function gameInProgress(): { engine: Engine; tokens: Record<string, string> } {
  const engine = engineWith([P1, P2, P3, S1, C1]);
  const tokens: Record<string, string> = {};
  engine.handle(
    P1,
    { type: "Authenticate", data: { app_id: "orbit", features: ["presence-events"] } },
    T0,
  );
  for (const [id, name] of [[P1, "Mira"], [P2, "Tobias"], [P3, "Nina"]] as const) {
    const effects = engine.handle(
      id,
      join("ROOM01", name, { max_players: 4, authority_handover: true }),
      T0,
    );
    tokens[id] = first(effects, id, "RoomJoined").data.reconnection_token!;
  }
  engine.handle(P1, {
    type: "ProvideConnectionInfo",
    data: { connection_info: { type: "direct", host: "203.0.113.40", port: 27015 } },
  } as ClientMessage, T0);
  engine.handle(P1, bare("PlayerReady"), T0);
  engine.handle(P2, bare("PlayerReady"), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  engine.disconnect(P3, T0 + 1000);
  engine.handle(P1, { type: "GameData", data: { data: { op: "steer" } } } as ClientMessage, T0);
  engine.handle(C1, join("ROOM02", "Solo"), T0);
  engine.handle(C1, bare("LeaveRoom"), T0);
  return { engine, tokens };
}

function roundTrip(snapshot: RoomsSnapshot): RoomsSnapshot {
  const decoded = decodeSnapshot(JSON.stringify(snapshot));
  if (!decoded.ok) throw new Error(decoded.reason);
  return decoded.value;
}

Deno.test("snapshot: restore then snapshot again gives the same rooms, seats and buffers", () => {
  const { engine } = gameInProgress();
  const saved = engine.snapshot(T1);
  equal(saved.version, SNAPSHOT_VERSION);
  equal(saved.rooms.length, 2);
  const restored = engineWith([]);
  const outcome = restored.restore(roundTrip(saved), T1);
  if (!outcome.ok) throw new Error(outcome.reason);
  deepEqual([outcome.value.rooms, outcome.value.seats], [2, 3]);
  // The restored rooms are published to the room directory (the HTTP lookup reads it).
  deepEqual(
    outcome.value.effects.map((e) =>
      e.kind === "directory" && e.op === "refresh" ? e.entry.summary.room_code : e.kind
    ),
    ["ROOM01", "ROOM02"],
  );
  const again = restored.snapshot(T1);
  // Spectators are recorded but not re-attached (they have no token); all else is equal.
  deepEqual(saved.rooms[0]!.spectators.map((s) => s.name), ["Watcher"]);
  const withoutSpectators = (snapshot: RoomsSnapshot) =>
    snapshot.rooms.map((room) => ({ ...room, spectators: [] }));
  deepEqual(withoutSpectators(again), withoutSpectators(saved));
  // Held seats: all three; the empty room stays joinable.
  equal(restored.stats().heldSeats, 3);
  deepEqual(restored.lookup("orbit", "ROOM01"), {
    ...engine.lookup("orbit", "ROOM01")!,
    spectators: 0,
  });
  equal(restored.lookup("orbit", "ROOM02")?.players, 0);
});

Deno.test("snapshot: holds token digests and replay buffers, never a token", () => {
  const { engine, tokens } = gameInProgress();
  const text = JSON.stringify(engine.snapshot(T1));
  for (const token of Object.values(tokens)) ok(!text.includes(token), "token in snapshot");
  const room = engine.snapshot(T1).rooms[0]!;
  deepEqual(
    room.seats.map((seat) => seat.token_digest),
    [P1, P2, P3].map((id) => digest(tokens[id]!)),
  );
  deepEqual(room.seats[2]!.replay.map((frame) => JSON.parse(frame).type), ["GameData"]);
  deepEqual(room.seats.map((seat) => seat.presence), [true, false, false]);
});

Deno.test("snapshot: players resume with their old tokens, replay, authority and lobby intact", () => {
  const { engine, tokens } = gameInProgress();
  const restored = engineWith([C1, C2]);
  ok(restored.restore(roundTrip(engine.snapshot(T1)), T1).ok);
  const wrong = restored.handle(C1, reconnect(P1, "room-1", tokens[P2]!), T1);
  equal(first(wrong, C1, "ReconnectionFailed").data.error_code, "RECONNECTION_TOKEN_INVALID");
  const back =
    first(restored.handle(C1, reconnect(P1, "room-1", tokens[P1]!), T1), C1, "Reconnected")
      .data;
  ok(back.is_authority);
  equal(back.lobby_state, "waiting");
  deepEqual(back.ready_players, [P1, P2]);
  deepEqual(back.current_players.map((p) => [p.name, p.is_ready]), [
    ["Mira", true],
    ["Tobias", true],
    ["Nina", false],
  ]);
  deepEqual(back.current_players[0]!.connection_info, {
    type: "direct",
    host: "203.0.113.40",
    port: 27015,
  });
  // P3's buffer from before the restart, then P1's PlayerReconnected from after it.
  const p3 = restored.handle(C2, reconnect(P3, "room-1", tokens[P3]!), T1 + 1);
  deepEqual(
    first(p3, C2, "Reconnected").data.missed_events.map((e) => JSON.parse(e.text).type),
    ["GameData", "PlayerReconnected"],
  );
  // The used token is consumed; the game goes on between the two.
  const again = restored.handle(C2, reconnect(P3, "room-1", tokens[P3]!), T1 + 2);
  equal(first(again, C2, "ReconnectionFailed").data.error_code, "ALREADY_IN_ROOM");
  const relayed = restored.handle(C1, { type: "GameData", data: { data: 7 } } as ClientMessage, T1);
  equal(sentTo(relayed, C2).length, 1);
});

Deno.test("snapshot: a restored room is not reclaimed as unattended at a full cap until its attendance changes (docs/spec/SERVER.md §3.7)", () => {
  const { engine, tokens } = gameInProgress();
  // ROOM01 (three held seats after the restart) and the empty ROOM02: two rooms, the cap.
  // Room ids and tokens unlike the restored ones (the test engines count both from 1).
  let n = 0;
  const restored = engineWith([C1, C2, "c3", "c4"], {
    maxRooms: 2,
    newId: () => `later-room-${++n}`,
    newToken: () => `later-token-${++n}`.padEnd(43, "x"),
  });
  ok(restored.restore(roundTrip(engine.snapshot(T1)), T1).ok);
  equal(restored.stats().unattendedRooms, 0);
  // The first creation takes the empty room's place.
  first(restored.handle("c3", join("ROOM03", "Ada"), T1), "c3", "RoomJoined");
  // The next is refused: the restored room's players are still coming back.
  const refused = restored.handle("c4", join("ROOM04", "Bea"), T1 + 1);
  equal(first(refused, "c4", "RoomJoinFailed").data.error_code, "MAX_ROOMS_PER_GAME_EXCEEDED");
  equal(restored.stats().unattendedReclaims, 0);
  // One player resumes and drops again: the room is unattended from then on, and gives way.
  first(restored.handle(C1, reconnect(P1, "room-1", tokens[P1]!), T1 + 2), C1, "Reconnected");
  restored.disconnect(C1, T1 + 3);
  equal(restored.stats().unattendedRooms, 1);
  first(restored.handle("c4", join("ROOM04", "Bea"), T1 + 4), "c4", "RoomJoined");
  equal(restored.stats().unattendedReclaims, 1);
  const late = restored.handle(C2, reconnect(P2, "room-1", tokens[P2]!), T1 + 5);
  equal(first(late, C2, "ReconnectionFailed").data.error_code, "RECONNECTION_EXPIRED");
});

Deno.test("snapshot: restored seats expire after a full window; handover follows", () => {
  const { engine, tokens } = gameInProgress();
  const restored = engineWith([C1]);
  ok(restored.restore(roundTrip(engine.snapshot(T1)), T1).ok);
  restored.handle(C1, reconnect(P2, "room-1", tokens[P2]!), T1);
  equal(restored.tick(T1 + WINDOW - 1).length, 0);
  const expired = restored.tick(T1 + WINDOW);
  // P1 held authority; P2 (connected) takes it when P1's seat is released.
  const changed = sentTo(expired, C1).filter((m) => m.type === "AuthorityChanged");
  deepEqual(changed.at(-1)?.data, { authority_player: P2, you_are_authority: true });
  equal(restored.stats().heldSeats, 0);
});

Deno.test("snapshot: a connected seat is recorded as held with an empty buffer", () => {
  const engine = engineWith([P1]);
  const token = first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined").data
    .reconnection_token!;
  const saved = engine.snapshot(T1);
  deepEqual(saved.rooms[0]!.seats[0]!.replay, []);
  const restored = engineWith([C1]);
  ok(restored.restore(roundTrip(saved), T1).ok);
  ok(first(restored.handle(C1, reconnect(P1, "room-1", token), T1), C1, "Reconnected").data);
});

function refused(text: string, reason: RegExp, overrides = {}): void {
  const engine = engineWith([], overrides);
  const decoded = decodeSnapshot(text);
  const outcome = decoded.ok ? engine.restore(decoded.value, T1) : decoded;
  ok(!outcome.ok, `restored: ${text.slice(0, 80)}`);
  ok(reason.test(outcome.reason), outcome.reason);
  equal(engine.stats().rooms, 0);
  equal(engine.stats().heldSeats, 0);
}

function edited(edit: (snapshot: RoomsSnapshot) => void): string {
  const snapshot = gameInProgress().engine.snapshot(T1);
  edit(snapshot);
  return JSON.stringify(snapshot);
}

Deno.test("snapshot: refusals leave the engine empty", () => {
  refused("{not json", /not JSON/);
  refused('{"rooms":[', /^not JSON \(it ends early\)$/);
  // Whatever file the path names, its text is not quoted in the reason (which is logged).
  refused("root:x:0:0:root:/root:/bin/bash\n", /^not JSON$/);
  refused('{"rooms":[]} secret-value', /^not JSON \(at character 13\)$/);
  refused('{"rooms":[]}', /not a signal-fish-rooms snapshot/);
  refused("null", /not a signal-fish-rooms snapshot/);
  refused(edited((s) => s.version = 2), /format version 2, this build reads 1/);
  refused(edited((s) => (s as { version: unknown }).version = "1"), /format version "1"/);
  refused(edited((s) => (s.rooms[0] as { seats: unknown }).seats = 3), /rooms\.0\.seats/);
  refused(edited((s) => s.rooms[1]!.code = s.rooms[0]!.code), /duplicate room code/);
  refused(edited((s) => s.rooms[1]!.id = s.rooms[0]!.id), /duplicate room id/);
  refused(edited((s) => s.rooms[0]!.code = "room01"), /not upper-case/);
  refused(edited((s) => s.rooms[0]!.max_players = 2), /more seats than max_players/);
  refused(edited((s) => s.rooms[0]!.authority = P3 + "x"), /authority holder has no seat/);
  refused(edited((s) => s.rooms[0]!.supports_authority = false), /authority holder has no seat/);
  refused(edited((s) => s.rooms[0]!.ready.push(S1)), /ready player has no seat/);
  refused(edited((s) => s.rooms[0]!.ready.push(P1)), /duplicate ready player/);
  refused(edited((s) => s.rooms[1]!.seats.push(s.rooms[0]!.seats[0]!)), /seated twice/);
  refused(edited((s) => s.rooms[0]!.seats[2]!.replay.push("{oops")), /replayed message/);
  refused(JSON.stringify(gameInProgress().engine.snapshot(T1)), /enable_reconnection/, {
    enableReconnection: false,
  });
  // A restore never merges into rooms that already exist.
  const busy = engineWith([P1]);
  busy.handle(P1, join("ROOM09", "Mira"), T0);
  const outcome = busy.restore(roundTrip(gameInProgress().engine.snapshot(T1)), T1);
  ok(!outcome.ok && /already has rooms/.test(outcome.reason));
  equal(busy.stats().rooms, 1);
});

Deno.test("snapshot: a restore under a tighter configuration keeps every room as it was and names what drifted (docs/spec/SERVER.md §2.7)", () => {
  const snapshot = roundTrip(gameInProgress().engine.snapshot(T1));
  const restore = (overrides: Record<string, unknown>) => {
    const engine = engineWith([], overrides);
    const outcome = engine.restore(structuredClone(snapshot), T1);
    ok(outcome.ok, outcome.ok ? "" : outcome.reason);
    equal(engine.stats().rooms, 2);
    equal(engine.stats().heldSeats, 3);
    return { engine, drift: outcome.value.drift };
  };
  // The configuration the rooms were made under: nothing to say.
  deepEqual(restore({}).drift, []);
  // Every limit lowered at once: each kind named once, with its count and first room.
  const { engine, drift } = restore({
    maxPlayersLimit: 3,
    roomCodeLength: 8,
    maxGameNameLength: 2,
    maxRoomsPerGame: 1,
    nameRules: {
      maxLength: 32,
      allowUnicodeAlphanumeric: true,
      allowSpaces: true,
      allowLeadingTrailingWhitespace: false,
      allowedSymbols: ["-", "_"],
      additionalAllowedCharacters: undefined,
    },
  });
  const game = snapshot.rooms[0]!.game_name;
  deepEqual(drift, [
    "1 games over server.max_rooms_per_game (1): none of their rooms can be created until they are under it",
    // ROOM01 was made for 4, ROOM02 with the default 8.
    `2 with max_players over protocol.max_players_limit (3), first in room ${game}/ROOM01`,
    `2 with a code protocol.room_code_length (8) refuses (joinable only by Reconnect), first in room ${game}/ROOM01`,
    `2 with a game name the current rules refuse, first in room ${game}/ROOM01`,
  ]);
  // The room keeps its size: a restart changes no room.
  equal(engine.lookup(game, "ROOM01")?.max_players, 4);
  // Names: a rule that refuses the letter every seat name of ROOM01 has.
  const strict = restore({
    nameRules: {
      maxLength: 4,
      allowUnicodeAlphanumeric: true,
      allowSpaces: true,
      allowLeadingTrailingWhitespace: false,
      allowedSymbols: [],
    },
  }).drift;
  // "Tobias" and the spectator's name are longer than 4; "Mira", "Nina" and "Solo" (left) are not.
  const names = snapshot.rooms.flatMap((room) => [...room.seats, ...room.spectators])
    .filter((seat) => seat.name.length > 4).length;
  ok(names > 0);
  deepEqual(strict, [
    `${names} with a player or spectator name protocol.player_name_validation refuses, first in room ${game}/ROOM01`,
  ]);
});

Deno.test("snapshot: a restored room still counts toward its creator's server.max_rooms_per_ip (docs/spec/SERVER.md §3.7)", () => {
  const engine = engineWith([], { maxRoomsPerIp: 1 });
  engine.connect(P1, { ip: "198.51.100.7" });
  first(engine.handle(P1, join("ROOM01", "Mira"), T0), P1, "RoomJoined");
  const saved = roundTrip(engine.snapshot(T1));
  let n = 0;
  const restored = engineWith([], { maxRoomsPerIp: 1, newId: () => `later-room-${++n}` });
  ok(restored.restore(saved, T1).ok);
  // The same address creates again after the restart: its room is still there and attended
  // (restored rooms are not unattended yet), so the cap refuses as it did before the restart.
  restored.connect(C1, { ip: "198.51.100.7" });
  deepEqual(first(restored.handle(C1, join("ROOM02", "Ada"), T1), C1, "RoomJoinFailed").data, {
    reason: "Your address already has 1 rooms of game `orbit` (limit 1)",
    error_code: "MAX_ROOMS_PER_GAME_EXCEEDED",
  });
  // Another address is not affected.
  restored.connect(C2, { ip: "203.0.113.9" });
  first(restored.handle(C2, join("ROOM03", "Bea"), T1), C2, "RoomJoined");
  // A file of a build before the field restores, the room then without a creator.
  const older = roundTrip(engine.snapshot(T1));
  delete older.rooms[0]!.creator_ip;
  ok(engineWith([]).restore(older, T1).ok);
  // The room keeps its creator across another restart too.
  const again = engineWith([], { maxRoomsPerIp: 1 });
  ok(again.restore(roundTrip(restored.snapshot(T1 + 1)), T1 + 1).ok);
  again.connect(C1, { ip: "198.51.100.7" });
  equal(
    first(again.handle(C1, join("ROOM04", "Ada"), T1 + 1), C1, "RoomJoinFailed").data.error_code,
    "MAX_ROOMS_PER_GAME_EXCEEDED",
  );
});

Deno.test("snapshot: seats restored from a snapshot taken while running say replay_truncated, a shutdown's keep each seat's own flag (docs/spec/SERVER.md §2.7)", () => {
  const { engine, tokens } = gameInProgress();
  const truncatedAfter = (snapshot: RoomsSnapshot) => {
    const restored = engineWith([C1, C2]);
    ok(restored.restore(roundTrip(snapshot), T1).ok);
    return [[C1, P1], [C2, P3]].map(([conn, player]) =>
      first(
        restored.handle(conn!, reconnect(player!, "room-1", tokens[player!]!), T1),
        conn!,
        "Reconnected",
      )
        .data.replay_truncated
    );
  };
  // The shutdown's snapshot: nothing was relayed after it, each replay is whole.
  const atShutdown = engine.snapshot(T1);
  equal(atShutdown.while_running, undefined);
  deepEqual(truncatedAfter(atShutdown), [false, false]);
  // One taken while the server went on: a restore follows a crash, and what P3's buffer and
  // P1's socket got after it is lost, connected seat or held.
  const whileRunning = engine.snapshot(T1, true);
  equal(whileRunning.while_running, true);
  deepEqual(truncatedAfter(whileRunning), [true, true]);
  // Files of builds before the field restore as a shutdown's.
  const older = roundTrip(whileRunning);
  delete older.while_running;
  deepEqual(truncatedAfter(older), [false, false]);
});
