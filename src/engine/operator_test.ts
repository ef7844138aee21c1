/**
 * The engine's operator actions (docs/spec/EXTENSIONS.md E12): maintenance mode, room detail, closing a
 * room and removing a player, with their effects on members, spectators and tokens.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import type { ClientMessage } from "../protocol/messages.ts";
import type { Effect, Engine } from "./engine.ts";
import { RATE_WINDOW_MS } from "./room.ts";
import {
  bare,
  first,
  join,
  P1,
  P2,
  P3,
  reconnectingEngineWith,
  S1,
  spectate,
  summarize,
} from "./testing.ts";

const T0 = Date.UTC(2026, 2, 4, 18, 0, 0);

function engineWith(ids: string[]): Engine {
  return reconnectingEngineWith(ids, { maxSpectatorsPerRoom: 4 });
}

function reconnect(player_id: string, room_id: string, auth_token: string): ClientMessage {
  return { type: "Reconnect", data: { player_id, room_id, auth_token } };
}

function gameData(data: unknown): ClientMessage {
  return { type: "GameData", data: { data } } as ClientMessage;
}

/** P1 and P2 seated in ROOM01 (P1 holds authority), S1 watching; returns the tokens. */
function room(engine: Engine): Record<string, string> {
  const tokens: Record<string, string> = {};
  for (const [id, name] of [[P1, "Mira"], [P2, "Tobias"]] as const) {
    const effects = engine.handle(id, join("ROOM01", name, { max_players: 3 }), T0);
    tokens[id] = first(effects, id, "RoomJoined").data.reconnection_token!;
  }
  engine.handle(S1, spectate("ROOM01"), T0);
  return tokens;
}

function events(effects: Effect[]): string[] {
  return effects.flatMap((effect) =>
    effect.kind === "event" && "reason" in effect.event
      ? [`${effect.event.type} ${effect.event.reason}`]
      : []
  );
}

Deno.test("Engine.maintenance refuses JoinRoom that would create, and nothing else", () => {
  const engine = engineWith([P1, P2, P3, S1]);
  engine.handle(P1, join("ROOM01", "Mira"), T0);
  engine.maintenance = true;
  for (const code of [undefined, "ROOM02"]) {
    const refused = engine.handle(P2, join(code, "Tobias"), T0);
    deepEqual(first(refused, P2, "RoomJoinFailed").data, {
      reason: "Server is in maintenance",
      error_code: "SERVICE_UNAVAILABLE",
    });
    equal(engine.lookup("orbit", "ROOM02"), undefined);
  }
  deepEqual(summarize(engine.handle(P2, join("room01", "Tobias"), T0)), [
    "p2 <- RoomJoined",
    "p1 <- PlayerJoined",
  ]);
  deepEqual(summarize(engine.handle(S1, spectate("ROOM01"), T0)).slice(0, 1), [
    "s1 <- SpectatorJoined",
  ]);
  engine.maintenance = false;
  deepEqual(summarize(engine.handle(P3, join("ROOM02", "Nina"), T0)), ["p3 <- RoomJoined"]);
});

Deno.test("Engine.roomDetail() gives members, held seats, authority, ready set, age and rate", () => {
  const engine = engineWith([P1, P2, S1]);
  room(engine);
  engine.handle(P2, bare("PlayerReady"), T0 + 1000);
  for (let i = 0; i < 10; i++) engine.handle(P1, gameData(i), T0 + 2000);
  engine.disconnect(P2, T0 + 3000);
  // One window later, the first window's 10 messages are the rate.
  const fresh = engine.roomDetail("orbit", "ROOM01", T0 + RATE_WINDOW_MS)!;
  equal(fresh.messages_per_sec, 10 / (RATE_WINDOW_MS / 1000));
  const detail = engine.roomDetail("orbit", "ROOM01", T0 + RATE_WINDOW_MS + 10_000)!;
  equal(detail.age_secs, RATE_WINDOW_MS / 1000 + 10);
  equal(detail.authority, P1);
  deepEqual(detail.ready_players, [P2]);
  deepEqual(
    detail.members.map((m) => [m.name, m.is_authority, m.is_ready, m.held]),
    [["Mira", true, false, false], ["Tobias", false, true, true]],
  );
  deepEqual(detail.spectator_list.map((s) => s.id), [S1]);
  equal(detail.messages_total, 10);
  // The 10 messages fell in the first window, which is two windows old by now.
  equal(detail.messages_per_sec, 0);
  equal(engine.roomDetail("orbit", "NOROOM", T0), undefined);
});

Deno.test("Engine.closeRoom() tells members and spectators; tokens then fail RECONNECTION_FAILED", () => {
  const engine = engineWith([P1, P2, S1, P3]);
  const tokens = room(engine);
  engine.disconnect(P2, T0 + 1); // P2's seat is held: nobody to tell.
  const effects = engine.closeRoom("orbit", "ROOM01", T0 + 2)!;
  deepEqual(summarize(effects), ["p1 <- RoomLeft", "s1 <- SpectatorLeft"]);
  equal(first(effects, S1, "SpectatorLeft").data.reason, "room_closed");
  deepEqual(events(effects), [
    "room_deleted closed",
    "seat_released room_deleted",
    "seat_released room_deleted",
  ]);
  equal(engine.lookup("orbit", "ROOM01"), undefined);
  const roomId = "room-1";
  for (const id of [P1, P2]) {
    const failed = engine.handle(P3, reconnect(id, roomId, tokens[id]!), T0 + 3);
    equal(first(failed, P3, "ReconnectionFailed").data.error_code, "RECONNECTION_FAILED");
  }
  equal(engine.closeRoom("orbit", "ROOM01", T0 + 4), undefined);
  // The closed room's players are free to join again.
  deepEqual(summarize(engine.handle(P1, join("ROOM01", "Mira"), T0 + 5)), ["p1 <- RoomJoined"]);
});

Deno.test("Engine.removePlayer() sends RoomLeft, PlayerLeft to the others, invalidates the token", () => {
  const engine = engineWith([P1, P2, S1, P3]);
  const tokens = room(engine);
  const effects = engine.removePlayer("orbit", "ROOM01", P1, T0 + 1);
  ok(Array.isArray(effects));
  deepEqual(summarize(effects), [
    "p1 <- RoomLeft",
    "p2 <- PlayerLeft",
    "s1 <- PlayerLeft",
    "p2 <- AuthorityChanged",
    "s1 <- AuthorityChanged",
  ]);
  deepEqual(events(effects), ["seat_released removed"]);
  equal(engine.binding(P1), undefined);
  const failed = engine.handle(P3, reconnect(P1, "room-1", tokens[P1]!), T0 + 2);
  equal(first(failed, P3, "ReconnectionFailed").data.error_code, "RECONNECTION_TOKEN_INVALID");
  equal(engine.removePlayer("orbit", "ROOM01", P1, T0 + 3), "player_not_found");
  equal(engine.removePlayer("orbit", "NOROOM", P2, T0 + 3), "room_not_found");
  equal(engine.lookup("orbit", "ROOM01")?.players, 1);
});

Deno.test("Engine.removePlayer() drops a held seat and its replay buffer", () => {
  const engine = engineWith([P1, P2, S1, P3]);
  const tokens = room(engine);
  engine.disconnect(P2, T0 + 1);
  equal(engine.stats().heldSeats, 1);
  const effects = engine.removePlayer("orbit", "ROOM01", P2, T0 + 2);
  ok(Array.isArray(effects));
  deepEqual(summarize(effects), ["p1 <- PlayerLeft", "s1 <- PlayerLeft"]);
  equal(engine.stats().heldSeats, 0);
  const failed = engine.handle(P3, reconnect(P2, "room-1", tokens[P2]!), T0 + 3);
  equal(first(failed, P3, "ReconnectionFailed").data.error_code, "RECONNECTION_TOKEN_INVALID");
  // The timer finds nothing left to expire.
  deepEqual(summarize(engine.tick(T0 + 400_000)), []);
});
