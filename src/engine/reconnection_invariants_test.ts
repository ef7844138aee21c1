/**
 * Seeded random walks with reconnection on: connections drop, come back with the latest or a
 * stale token, take seats over, and held seats expire, while the others keep playing. After
 * every step: nothing is delivered to a connection that is gone, game data is never echoed, a
 * spent token never works, the latest token of a held seat always does (inside the window), and
 * every seat is either on a live connection or held.
 */
import { ok } from "node:assert/strict";
import type { ClientMessage } from "../protocol/messages.ts";
import { type Effect, Engine } from "./engine.ts";
import { countUnattended, prng, testOptions } from "./testing.ts";

const CODES = ["ROOM01", "ROOM02"];
const WINDOW = 60_000;

interface Seat {
  roomId: string;
  token: string;
  /** Tokens of this seat that were used or superseded. */
  spent: string[];
}

for (const seed of [11, 12, 13, 14, 15, 16]) {
  Deno.test(`Engine keeps its reconnection invariants over a random walk (seed ${seed})`, () => {
    const random = prng(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const engine = new Engine(
      testOptions({ enableReconnection: true, reconnectionWindowMs: WINDOW, eventBufferSize: 8 }),
    );
    let next = 0;
    const newConn = () => `00000000-0000-4000-8000-${String(++next).padStart(12, "0")}`;
    /** Live connections → the identity they speak as. */
    const live = new Map<string, string>();
    /** Live connections seated as players. */
    const seated = new Set<string>();
    /** Seats by player id, with their latest token. */
    const seats = new Map<string, Seat>();
    /** Player ids whose connection dropped (held, unless expired or the room went away). */
    const dropped = new Map<string, number>();
    let now = 0;
    let reconnects = 0;

    const apply = (effects: Effect[], sender: string | undefined, where: string): void => {
      for (const effect of effects) {
        if (effect.kind === "close") {
          // The transport closes it; the engine then sees the socket go.
          live.delete(effect.to);
          seated.delete(effect.to);
          apply(engine.disconnect(effect.to, now), undefined, where);
          continue;
        }
        if (effect.kind !== "send") continue;
        for (const to of effect.to) {
          ok(live.has(to), `${where}: ${effect.message.type} delivered to a gone connection`);
          const message = effect.message;
          switch (message.type) {
            case "GameData":
              ok(message.data.from_player !== live.get(to), `${where}: GameData echoed`);
              ok(message.data.from_player === sender, `${where}: GameData from the wrong sender`);
              break;
            case "RoomJoined":
              seated.add(to);
              seats.set(message.data.player_id, {
                roomId: message.data.room_id,
                token: message.data.reconnection_token!,
                spent: [],
              });
              break;
            case "Reconnected": {
              reconnects++;
              const seat = seats.get(message.data.player_id)!;
              seat.spent.push(seat.token);
              seat.token = message.data.reconnection_token;
              live.set(to, message.data.player_id);
              seated.add(to);
              dropped.delete(message.data.player_id);
              for (const event of message.data.missed_events) {
                ok(typeof JSON.parse(event.text).type === "string", `${where}: bad replay`);
              }
              break;
            }
            case "RoomLeft":
              seated.delete(to);
              seats.delete(live.get(to)!);
              break;
          }
        }
      }
    };

    for (let i = 0; i < 4; i++) {
      const id = newConn();
      engine.connect(id);
      live.set(id, id);
    }
    for (let step = 0; step < 2500; step++) {
      now += Math.floor(random() * 3000);
      const where = `seed ${seed} step ${step}`;
      const roll = random();
      const conns = [...live.keys()];
      if (conns.length < 3 || roll < 0.05) {
        const id = newConn();
        engine.connect(id);
        live.set(id, id);
      } else if (roll < 0.12) {
        const id = pick(conns);
        const identity = live.get(id)!;
        live.delete(id);
        if (seated.delete(id)) dropped.set(identity, now);
        apply(engine.disconnect(id, now), undefined, where);
      } else if (roll < 0.2 && seats.size > 0) {
        // Reconnect from a fresh connection, with the latest token or a spent one.
        const [playerId, seat] = pick([...seats]);
        const stale = seat.spent.length > 0 && random() < 0.3;
        const token = stale ? pick(seat.spent) : seat.token;
        const id = newConn();
        engine.connect(id);
        live.set(id, id);
        const heldSince = dropped.get(playerId);
        const effects = engine.handle(id, {
          type: "Reconnect",
          data: { player_id: playerId, room_id: seat.roomId, auth_token: token },
        }, now);
        const succeeded = effects.some((e) =>
          e.kind === "send" && e.message.type === "Reconnected"
        );
        if (stale) ok(!succeeded, `${where}: a spent token reconnected`);
        // Inside the window the latest token works; only a deleted room can stop it.
        if (!stale && heldSince !== undefined && now - heldSince < WINDOW && !succeeded) {
          const failure = effects.find((e) => e.kind === "send")!;
          ok(
            failure.kind === "send" && failure.message.type === "ReconnectionFailed" &&
              failure.message.data.error_code === "RECONNECTION_FAILED",
            `${where}: the latest token of a held seat failed (${JSON.stringify(failure)})`,
          );
        }
        apply(effects, undefined, where);
      } else if (roll < 0.24) {
        apply(engine.tick(now), undefined, where);
        for (const [playerId, since] of dropped) {
          if (now - since >= WINDOW) {
            dropped.delete(playerId);
            seats.delete(playerId);
          }
        }
      } else if (roll < 0.26) {
        apply(engine.sweep(now), undefined, where);
      } else {
        const id = pick(conns);
        const message: ClientMessage = random() < 0.3
          ? {
            type: "JoinRoom",
            data: { game_name: "orbit", room_code: pick(CODES), player_name: `p${step}` },
          } as ClientMessage
          : random() < 0.8
          ? { type: "GameData", data: { data: { step } } } as ClientMessage
          : pick([
            { type: "LeaveRoom", data: undefined },
            { type: "PlayerReady", data: undefined },
          ] as ClientMessage[]);
        apply(engine.handle(id, message, now), live.get(id), where);
      }
      const stats = engine.stats();
      ok(stats.connections === live.size, `${where}: connection count drifted`);
      ok(
        stats.players === seated.size + stats.heldSeats,
        `${where}: ${stats.players} seats, ${seated.size} live + ${stats.heldSeats} held`,
      );
      ok(
        stats.unattendedRooms === countUnattended(engine, ["orbit"], CODES, now),
        `${where}: ${stats.unattendedRooms} rooms indexed as unattended`,
      );
    }
    ok(reconnects > 10, `seed ${seed}: only ${reconnects} reconnections happened`);
  });
}
