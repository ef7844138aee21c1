/**
 * docs/spec/EXTENSIONS.md E9 (`JoinRoom.create`), E10 (presence events) and E11 (authority handover) on
 * the engine, and the promise that v2 clients see byte-identical v2 behaviour while other
 * clients use them.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { encodeServerMessage } from "../protocol/codec.ts";
import type { ClientMessage } from "../protocol/messages.ts";
import type { Effect, Engine } from "./engine.ts";
import {
  bare,
  C1,
  C2,
  engineWith as baseEngineWith,
  first,
  join,
  P1,
  P2,
  P3,
  S1,
  S2,
  sentTo,
  spectate,
  summarize,
} from "./testing.ts";

const T0 = Date.UTC(2026, 2, 4, 18, 0, 0);
const WINDOW = 300_000;

function engineWith(ids: string[], reconnection = true): Engine {
  return baseEngineWith(ids, { enableReconnection: reconnection });
}

function authenticate(features?: string[]): ClientMessage {
  return { type: "Authenticate", data: { app_id: "orbit", features } } as ClientMessage;
}

function gameData(data: unknown, to_player?: string): ClientMessage {
  return { type: "GameData", data: { data, to_player } } as ClientMessage;
}

/** `Reconnect` of `player_id`'s seat with `auth_token`; `room_id` defaults to the first room made. */
function reconnect(player_id: string, auth_token: string, room_id = "room-1"): ClientMessage {
  return { type: "Reconnect", data: { player_id, room_id, auth_token } };
}

function authority(become: boolean): ClientMessage {
  return { type: "AuthorityRequest", data: { become_authority: become } };
}

// ---------------------------------------------------------------------------------------------
// E9

Deno.test("E9: create never joins an existing room and refuses a missing one", () => {
  const engine = engineWith([P1, P2, P3]);
  engine.handle(P1, join("ROOM01", "Mira"), T0);
  const joined = engine.handle(P2, join("room01", "Tobias", { create: "never" }), T0);
  equal(first(joined, P2, "RoomJoined").data.room_code, "ROOM01");
  const missing = engine.handle(P3, join("NOPE00", "Nina", { create: "never" }), T0);
  deepEqual(first(missing, P3, "RoomJoinFailed").data, {
    reason: "Room not found",
    error_code: "ROOM_NOT_FOUND",
  });
  equal(engine.lookup("orbit", "NOPE00"), undefined);
  equal(engine.stats().rooms, 1);
});

Deno.test("E9: create never without a code is INVALID_ROOM_CODE; an empty code stays invalid", () => {
  const engine = engineWith([P1]);
  const noCode = engine.handle(P1, join(undefined, "Mira", { create: "never" }), T0);
  deepEqual(first(noCode, P1, "RoomJoinFailed").data, {
    reason: "Room code is required to join",
    error_code: "INVALID_ROOM_CODE",
  });
  const empty = engine.handle(P1, join("", "Mira", { create: "never" }), T0);
  equal(first(empty, P1, "RoomJoinFailed").data.error_code, "INVALID_ROOM_CODE");
  equal(engine.stats().rooms, 0);
});

Deno.test("E9: create never takes a join token and never a creation token", () => {
  const taken: string[] = [];
  const engine = baseEngineWith([P1], {
    enableReconnection: true,
    rateLimits: {
      takeCreation: () => (taken.push("create"), { ok: true }),
      takeJoin: () => (taken.push("join"), { ok: true }),
      sweep: () => {},
    } as never,
  });
  engine.handle(P1, join("NOPE00", "Mira", { create: "never" }), T0);
  engine.handle(P1, join(undefined, "Mira", { create: "never" }), T0);
  deepEqual(taken, ["join", "join"]);
});

Deno.test("E9: create always refuses an existing code and creates a missing or generated one", () => {
  const engine = engineWith([P1, P2, P3]);
  engine.handle(P1, join("ROOM01", "Mira"), T0);
  const taken = engine.handle(P2, join("ROOM01", "Tobias", { create: "always" }), T0);
  deepEqual(first(taken, P2, "RoomJoinFailed").data, {
    reason: "Room code already in use",
    error_code: "ROOM_CREATION_FAILED",
  });
  const fresh = engine.handle(P2, join("ROOM02", "Tobias", { create: "always" }), T0);
  equal(first(fresh, P2, "RoomJoined").data.room_code, "ROOM02");
  const generated = engine.handle(P3, join(undefined, "Nina", { create: "always" }), T0);
  equal(first(generated, P3, "RoomJoined").data.room_code, "CODE01");
});

Deno.test("E9: create if_missing behaves as v2 join-or-create", () => {
  const engine = engineWith([P1, P2]);
  const created = engine.handle(P1, join("ROOM01", "Mira", { create: "if_missing" }), T0);
  ok(first(created, P1, "RoomJoined").data.is_authority);
  const joined = engine.handle(P2, join("ROOM01", "Tobias", { create: "if_missing" }), T0);
  equal(first(joined, P2, "RoomJoined").data.current_players.length, 2);
});

// ---------------------------------------------------------------------------------------------
// E10

Deno.test("E10: Authenticated.features lists accepted features only when features were sent", () => {
  const engine = engineWith([P1, P2, P3]);
  const none = first(engine.handle(P1, authenticate(), T0), P1, "Authenticated").data;
  ok(!("features" in none));
  const some = first(
    engine.handle(P2, authenticate(["presence-events", "telepathy"]), T0),
    P2,
    "Authenticated",
  ).data;
  deepEqual(some.features, ["presence-events"]);
  const empty = first(engine.handle(P3, authenticate([]), T0), P3, "Authenticated").data;
  deepEqual(empty.features, []);
});

Deno.test("E10: presence-events is not accepted with reconnection disabled", () => {
  const engine = engineWith([P1], false);
  const data = first(engine.handle(P1, authenticate(["presence-events"]), T0), P1, "Authenticated")
    .data;
  deepEqual(data.features, []);
});

Deno.test("E10: PlayerDisconnected goes to opted-in members only, rounded up, when a seat is held", () => {
  const engine = engineWith([P1, P2, P3, S1, S2]);
  engine.handle(P1, authenticate(["presence-events"]), T0);
  engine.handle(S1, authenticate(["presence-events"]), T0);
  for (const [id, name] of [[P1, "Mira"], [P2, "Tobias"], [P3, "Nina"]] as const) {
    engine.handle(id, join("ROOM01", name), T0);
  }
  engine.handle(S1, spectate("ROOM01"), T0);
  engine.handle(S2, spectate("ROOM01", "Other"), T0);
  const effects = engine.disconnect(P3, T0 + 400);
  deepEqual(summarize(effects), ["p1 <- PlayerDisconnected", "s1 <- PlayerDisconnected"]);
  deepEqual(first(effects, P1, "PlayerDisconnected").data, {
    player_id: P3,
    seat_held_secs: WINDOW / 1000,
  });
  // Reconnection then goes on as in v2: everyone gets PlayerReconnected.
});

/**
 * An engine with Mira (P1, opted in to presence events), Tobias (P2) and Nina (P3) seated in
 * ROOM01 at T0; `tokens` maps each connection to its reconnection token.
 */
function presenceRoom(): { engine: Engine; tokens: Record<string, string> } {
  const engine = engineWith([P1, P2, P3]);
  engine.handle(P1, authenticate(["presence-events"]), T0);
  const tokens: Record<string, string> = {};
  for (const [id, name] of [[P1, "Mira"], [P2, "Tobias"], [P3, "Nina"]] as const) {
    tokens[id] = first(engine.handle(id, join("ROOM01", name), T0), id, "RoomJoined").data
      .reconnection_token!;
  }
  return { engine, tokens };
}

Deno.test("E10: PlayerDisconnected is buffered for opted-in held seats, not for others", () => {
  const { engine, tokens } = presenceRoom();
  const roomId = "room-1";
  engine.disconnect(P1, T0 + 1000); // opted in, held
  engine.disconnect(P2, T0 + 2000); // not opted in, held
  engine.disconnect(P3, T0 + 3000);
  engine.connect(C1);
  engine.connect(C2);
  // The resuming connections opt in too: the replay follows the new connection's opt-in.
  engine.handle(C1, authenticate(["presence-events"]), T0 + 9000);
  engine.handle(C2, authenticate(["presence-events"]), T0 + 9000);
  const back1 = engine.handle(C1, reconnect(P1, tokens[P1]!, roomId), T0 + 10_000);
  const missed1 = first(back1, C1, "Reconnected").data.missed_events.map((e) => JSON.parse(e.text));
  // Each counts the window left at the replay (T0 + 10 s), not at its buffering: P2's seat is
  // held until T0 + 302 s, P3's until T0 + 303 s.
  deepEqual(missed1, [
    { type: "PlayerDisconnected", data: { player_id: P2, seat_held_secs: 292 } },
    { type: "PlayerDisconnected", data: { player_id: P3, seat_held_secs: 293 } },
  ]);
  const back2 = engine.handle(C2, reconnect(P2, tokens[P2]!, roomId), T0 + 11_000);
  // P2 never opted in: its buffer holds only P1's v2 PlayerReconnected.
  deepEqual(
    first(back2, C2, "Reconnected").data.missed_events.map((e) => JSON.parse(e.text).type),
    ["PlayerReconnected"],
  );
});

Deno.test("E10: a replayed PlayerDisconnected counts the window left at the replay, rounded up; a seat no longer held keeps its frame", () => {
  const { engine, tokens } = presenceRoom();
  engine.disconnect(P1, T0); // opted in, held: collects the others' presence events
  engine.disconnect(P2, T0 + 1000); // held until T0 + 301 s
  engine.disconnect(P3, T0 + 2000); // held until T0 + 302 s, then back before P1 resumes
  engine.connect(C2);
  first(engine.handle(C2, reconnect(P3, tokens[P3]!), T0 + 5000), C2, "Reconnected");
  engine.connect(C1);
  engine.handle(C1, authenticate(["presence-events"]), T0 + 120_500);
  const back =
    first(engine.handle(C1, reconnect(P1, tokens[P1]!), T0 + 120_500), C1, "Reconnected").data;
  deepEqual(back.missed_events.map((e) => JSON.parse(e.text)), [
    // 180.5 s left of P2's window, rounded up.
    { type: "PlayerDisconnected", data: { player_id: P2, seat_held_secs: 181 } },
    // P3 is back: its frame is as buffered, and the PlayerReconnected after it says so.
    { type: "PlayerDisconnected", data: { player_id: P3, seat_held_secs: 300 } },
    { type: "PlayerReconnected", data: { player_id: P3 } },
  ]);
});

Deno.test("E10: the opt-in belongs to the connection, not the seat", () => {
  const engine = engineWith([P1, P2]);
  engine.handle(P1, authenticate(["presence-events"]), T0);
  engine.handle(P1, join("ROOM01", "Mira"), T0);
  const token = first(engine.handle(P2, join("ROOM01", "Tobias"), T0), P2, "RoomJoined").data
    .reconnection_token!;
  // P1's seat is resumed by a connection that did not opt in: no more presence events for it.
  engine.disconnect(P1, T0);
  engine.connect(C1);
  const p1Token = "token-1".padEnd(43, "x");
  first(engine.handle(C1, reconnect(P1, p1Token), T0), C1, "Reconnected");
  equal(sentTo(engine.disconnect(P2, T0), C1).length, 0);
  ok(token);
});

Deno.test("E10: a seat buffered PlayerDisconnected for, resumed by a connection that did not opt in, gets no PlayerDisconnected in missed_events", () => {
  // "Connections that did not opt in never receive it" and "after Reconnect the new connection's
  // own Authenticate.features apply": the replay, too, follows the resuming connection's opt-in.
  const engine = engineWith([P1, P2, C2]);
  engine.handle(P1, authenticate(["presence-events"]), T0);
  engine.handle(C2, authenticate(["presence-events"]), T0);
  const tokens: Record<string, string> = {};
  for (const [id, name] of [[P1, "Mira"], [P2, "Tobias"]] as const) {
    tokens[id] = first(engine.handle(id, join("ROOM01", name), T0), id, "RoomJoined").data
      .reconnection_token!;
  }
  engine.disconnect(P1, T0 + 1000); // opted in, held
  engine.disconnect(P2, T0 + 2000); // buffered for P1: PlayerDisconnected{P2}
  engine.connect(C1);
  const back =
    first(engine.handle(C1, reconnect(P1, tokens[P1]!), T0 + 3000), C1, "Reconnected").data;
  deepEqual(back.missed_events.map((e) => JSON.parse(e.text).type), []);
  equal(back.replay_truncated, false, "nothing the new connection would have been sent is missing");
  // A resuming connection that opted in gets it, as buffered.
  const again =
    first(engine.handle(C2, reconnect(P2, tokens[P2]!), T0 + 4000), C2, "Reconnected").data;
  deepEqual(again.missed_events.map((e) => JSON.parse(e.text).type), ["PlayerReconnected"]);
});

// ---------------------------------------------------------------------------------------------
// E11

function handoverRoom(engine: Engine, handover: boolean): void {
  engine.handle(P1, join("ROOM01", "Mira", { max_players: 3, authority_handover: handover }), T0);
  engine.handle(P2, join("ROOM01", "Tobias", { authority_handover: !handover }), T0 + 1);
  engine.handle(P3, join("ROOM01", "Nina"), T0 + 2);
}

Deno.test("E11: authority passes to the longest-seated connected player on release", () => {
  const engine = engineWith([P1, P2, P3, S1]);
  handoverRoom(engine, true);
  engine.handle(S1, spectate("ROOM01"), T0);
  equal(engine.lookup("orbit", "ROOM01")?.authority_handover, true);
  const effects = engine.handle(P1, bare("LeaveRoom"), T0 + 10);
  deepEqual(summarize(effects), [
    "p1 <- RoomLeft",
    "p2 <- PlayerLeft",
    "p3 <- PlayerLeft",
    "s1 <- PlayerLeft",
    "p2 <- AuthorityChanged",
    "p3 <- AuthorityChanged",
    "s1 <- AuthorityChanged",
    "p2 <- LobbyStateChanged waiting",
    "p3 <- LobbyStateChanged waiting",
    "s1 <- LobbyStateChanged waiting",
  ]);
  deepEqual(first(effects, P2, "AuthorityChanged").data, {
    authority_player: P2,
    you_are_authority: true,
  });
  deepEqual(first(effects, P3, "AuthorityChanged").data, {
    authority_player: P2,
    you_are_authority: false,
  });
});

Deno.test("E11: a held seat is skipped for a connected one, and chosen when nobody is connected", () => {
  const engine = engineWith([P1, P2, P3]);
  handoverRoom(engine, true);
  engine.disconnect(P2, T0 + 5); // held, seated before P3
  const first1 = engine.handle(P1, bare("LeaveRoom"), T0 + 10);
  equal(first(first1, P3, "AuthorityChanged").data.authority_player, P3);
  // P3 leaves too: only P2's held seat remains, so it takes authority (buffered for it).
  const second = engine.handle(P3, bare("LeaveRoom"), T0 + 20);
  ok(summarize(second).every((line) => !line.startsWith("p2")));
  engine.connect(C2);
  const back = engine.handle(
    C2,
    {
      type: "Reconnect",
      data: { player_id: P2, room_id: "room-1", auth_token: "token-2".padEnd(43, "x") },
    },
    T0 + 30,
  );
  ok(first(back, C2, "Reconnected").data.is_authority);
});

Deno.test("E11: a held holder keeps authority; expiry then hands it over", () => {
  const engine = engineWith([P1, P2, P3]);
  handoverRoom(engine, true);
  const held = engine.disconnect(P1, T0 + 5);
  ok(summarize(held).every((line) => !line.includes("AuthorityChanged")));
  const expired = engine.tick(T0 + 5 + WINDOW);
  equal(first(expired, P2, "AuthorityChanged").data.authority_player, P2);
});

Deno.test("E11: an operator's removal of the holder hands authority over, to the connected player seated longest", () => {
  const engine = engineWith([P1, P2, P3]);
  handoverRoom(engine, true);
  engine.disconnect(P2, T0 + 5); // held, seated before P3: skipped
  const removed = engine.removePlayer("orbit", "ROOM01", P1, T0 + 10);
  ok(Array.isArray(removed));
  deepEqual(first(removed, P3, "AuthorityChanged").data, {
    authority_player: P3,
    you_are_authority: true,
  });
});

Deno.test("E11: a voluntary release is not a handover; without the flag nobody holds it", () => {
  const engine = engineWith([P1, P2, P3]);
  handoverRoom(engine, true);
  const released = engine.handle(P1, authority(false), T0 + 10);
  equal(first(released, P2, "AuthorityChanged").data.authority_player, null);

  const v2 = engineWith([P1, P2, P3]);
  handoverRoom(v2, false); // P2's authority_handover: true is ignored on a join
  equal(v2.lookup("orbit", "ROOM01")?.authority_handover, false);
  const left = v2.handle(P1, bare("LeaveRoom"), T0 + 10);
  equal(first(left, P2, "AuthorityChanged").data.authority_player, null);
});

// ---------------------------------------------------------------------------------------------
// v2 clients see v2 behaviour, whatever other clients do

const X1 = "00000000-0000-4000-8000-0000000000e1";
const X2 = "00000000-0000-4000-8000-0000000000e2";
const X3 = "00000000-0000-4000-8000-0000000000e3";
const XC = "00000000-0000-4000-8000-0000000000ec";

/**
 * A scripted v2 session (P1, P2 players, S1 spectator: join, ready, game data, disconnect and
 * reconnect, leave) with, when `extensions`, clients X1–X3 using E9–E11 in a room of their own
 * and in P1's room's game between the steps. Returns every frame P1, P2 (and C2, its new
 * socket) and S1 received, in order, with tokens and room ids (random by design) numbered by
 * first appearance.
 */
function scriptedSession(extensions: boolean): string[] {
  const engine = engineWith([P1, P2, S1, C2, X1, X2, X3, XC]);
  const frames: string[] = [];
  const v2 = new Set([P1, P2, S1, C2]);
  const run = (effects: Effect[]) => {
    for (const effect of effects) {
      if (effect.kind === "close") {
        if (v2.has(effect.to)) frames.push(`${effect.to} closed ${effect.code}`);
        continue;
      }
      if (effect.kind !== "send") continue;
      const frame = effect.frame ?? encodeServerMessage(effect.message);
      for (const to of effect.to) if (v2.has(to)) frames.push(`${to} ${frame}`);
    }
  };
  const extra = (step: () => Effect[]) => {
    if (extensions) run(step());
  };
  let t = T0;
  run(engine.handle(P1, authenticate(), t));
  extra(() => engine.handle(X1, authenticate(["presence-events"]), t));
  extra(() => engine.handle(X2, authenticate(["presence-events"]), t));
  run(engine.handle(P1, join("ROOM01", "Mira", { max_players: 2 }), ++t));
  extra(() =>
    engine.handle(X1, join("EXTRA1", "Xena", { create: "always", authority_handover: true }), t)
  );
  extra(() => engine.handle(X2, join("EXTRA1", "Xavi", { create: "never" }), t));
  extra(() => engine.handle(X3, join("NOPE00", "Xu", { create: "never" }), t));
  extra(() => engine.handle(X3, join("ROOM01", "Xu", { create: "always" }), t));
  run(engine.handle(P2, join("room01", "Tobias"), ++t));
  run(engine.handle(S1, spectate("ROOM01"), ++t));
  const x2Held = t;
  extra(() => engine.disconnect(X2, x2Held));
  run(engine.handle(P1, {
    type: "ProvideConnectionInfo",
    data: {
      connection_info: { type: "direct", host: "203.0.113.40", port: 27015 },
    },
  } as ClientMessage, ++t));
  run(engine.handle(P1, bare("PlayerReady"), ++t));
  run(engine.handle(P2, bare("PlayerReady"), ++t));
  extra(() => engine.handle(X1, bare("LeaveRoom"), t));
  run(engine.handle(P1, gameData({ op: "steer", angle: -12.5 }), ++t));
  run(engine.handle(P2, gameData({ sdp: "v=0" }, P1), ++t));
  run(engine.disconnect(P2, ++t));
  run(engine.handle(P1, gameData({ op: "chat", text: "brb?" }), ++t));
  run(engine.handle(P1, authority(false), ++t));
  const token = frames.flatMap((line) => {
    const match = line.match(/^(\S+) (.*)$/)!;
    const message = JSON.parse(match[2]!);
    return match[1] === P2 && message.type === "RoomJoined"
      ? [message.data.reconnection_token as string]
      : [];
  })[0]!;
  extra(() => engine.tick(x2Held + WINDOW)); // only X2's hold expires; X1 left: nobody is told
  t = x2Held + WINDOW + 1; // P2's window (held later) is still running
  run(engine.handle(C2, reconnect(P2, token), ++t));
  run(engine.handle(C2, gameData({ op: "back" }), ++t));
  run(engine.handle(C2, bare("LeaveRoom"), ++t));
  run(engine.handle(P1, bare("LeaveRoom"), ++t));
  run(engine.disconnect(S1, ++t));
  return normalise(frames);
}

/** Numbers tokens and room ids by first appearance (their values are random in a server). */
function normalise(lines: string[]): string[] {
  const seen = new Map<string, string>();
  const replace = (value: string, kind: string) => {
    if (!seen.has(value)) seen.set(value, `<${kind}${seen.size}>`);
    return seen.get(value)!;
  };
  return lines.map((line) =>
    line
      .replace(/token-\d+x+/g, (value) => replace(value, "token"))
      .replace(/room-\d+/g, (value) => replace(value, "room"))
  );
}

Deno.test("v2 clients get byte-identical frames while other clients use E9–E11", () => {
  const alone = scriptedSession(false);
  const together = scriptedSession(true);
  // The script really exercised the session (and the extension steps had effects).
  ok(alone.some((line) => line.includes('"type":"Reconnected"')));
  ok(alone.some((line) => line.includes('"type":"GameStarting"')));
  ok(alone.every((line) => !line.includes("PlayerDisconnected")));
  deepEqual(together, alone);
});

Deno.test("the extension steps of the scripted session have effects of their own", () => {
  const engine = engineWith([X1, X2, X3]);
  engine.handle(X1, authenticate(["presence-events"]), T0);
  engine.handle(X1, join("EXTRA1", "Xena", { create: "always", authority_handover: true }), T0);
  engine.handle(X2, join("EXTRA1", "Xavi", { create: "never" }), T0);
  equal(first(engine.disconnect(X2, T0), X1, "PlayerDisconnected").data.player_id, X2);
  equal(
    first(engine.handle(X3, join("NOPE00", "Xu", { create: "never" }), T0), X3, "RoomJoinFailed")
      .data.error_code,
    "ROOM_NOT_FOUND",
  );
  const left = engine.handle(X1, bare("LeaveRoom"), T0);
  ok(summarize(left).includes("x1 <- RoomLeft") || sentTo(left, X1).length === 1);
  equal(engine.lookup("orbit", "EXTRA1")?.players, 1);
});
