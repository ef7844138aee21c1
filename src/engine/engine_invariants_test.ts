/**
 * Seeded random walks through the engine, checking after every step the invariants a client
 * relies on. Deterministic: a failure names its seed and step so it can be replayed.
 */
import { ok } from "node:assert/strict";
import type { ClientMessage, ServerMessage } from "../protocol/messages.ts";
import type { Effect } from "./engine.ts";
import { engineWith, prng } from "./testing.ts";

const IDS = Array.from({ length: 7 }, (_, i) => `00000000-0000-4000-8000-00000000000${i}`);
const CODES = ["ROOM01", "ROOM02", "ROOM03"];
/** Messages only members of a room may receive. */
const ROOM_TRAFFIC = new Set([
  "PlayerJoined",
  "PlayerLeft",
  "GameData",
  "LobbyStateChanged",
  "AuthorityChanged",
  "GameStarting",
  "NewSpectatorJoined",
  "SpectatorDisconnected",
]);

type Role = { kind: "none" } | { kind: "player" | "spectator"; code: string };

function randomMessage(random: () => number, ids: string[]): ClientMessage {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const roll = random();
  if (roll < 0.2) {
    return {
      type: "JoinRoom",
      data: {
        game_name: "orbit",
        room_code: random() < 0.8 ? pick(CODES) : undefined,
        player_name: pick(["a", "b", "c", "d", "A"]),
        max_players: pick([1, 2, 3, 4, undefined]),
        supports_authority: random() < 0.8,
      },
    } as ClientMessage;
  }
  if (roll < 0.3) {
    return {
      type: "JoinAsSpectator",
      data: { game_name: "orbit", room_code: pick(CODES), spectator_name: "w" },
    };
  }
  if (roll < 0.45) {
    return {
      type: "GameData",
      data: { data: { n: roll }, to_player: random() < 0.3 ? pick(ids) : undefined },
    } as ClientMessage;
  }
  if (roll < 0.6) return { type: "PlayerReady", data: undefined } as ClientMessage;
  if (roll < 0.72) {
    return { type: "AuthorityRequest", data: { become_authority: random() < 0.6 } };
  }
  if (roll < 0.8) return { type: "LeaveRoom", data: undefined } as ClientMessage;
  if (roll < 0.86) return { type: "LeaveSpectator", data: undefined } as ClientMessage;
  return {
    type: "ProvideConnectionInfo",
    data: { connection_info: { type: "direct", host: "h", port: Math.floor(roll * 1000) } },
  };
}

/** Applies `effects` to the clients' view of their roles and checks every delivery. */
function observe(
  effects: Effect[],
  roles: Map<string, Role>,
  sender: string | undefined,
  where: string,
): void {
  let seatReleased = false;
  for (const effect of effects) {
    if (effect.kind !== "send") continue;
    const message: ServerMessage = effect.message;
    if (message.type === "PlayerLeft") seatReleased = true;
    if (message.type === "LobbyStateChanged" && seatReleased) {
      // A full room that loses a seat returns to waiting with its ready set cleared (§7.3.3).
      ok(
        message.data.lobby_state === "waiting" && message.data.ready_players.length === 0,
        `${where}: lobby break-up kept ${message.data.ready_players.length} ready players`,
      );
    }
    ok(new Set(effect.to).size === effect.to.length, `${where}: duplicate recipient`);
    for (const to of effect.to) {
      const role = roles.get(to) ?? { kind: "none" };
      if (ROOM_TRAFFIC.has(message.type)) {
        ok(role.kind !== "none", `${where}: ${message.type} to ${to}, who is in no room`);
      }
      switch (message.type) {
        case "RoomJoined": {
          const data = message.data;
          roles.set(to, { kind: "player", code: data.room_code });
          ok(data.current_players.length <= data.max_players, `${where}: room over capacity`);
          checkSnapshot(
            data.current_players,
            data.ready_players,
            data.lobby_state,
            data.max_players,
            where,
          );
          break;
        }
        case "RoomLeft":
        case "SpectatorLeft":
          roles.set(to, { kind: "none" });
          break;
        case "SpectatorJoined":
          roles.set(to, { kind: "spectator", code: message.data.room_code });
          break;
        case "GameData":
          ok(to !== message.data.from_player, `${where}: GameData echoed to its sender`);
          ok(message.data.from_player === sender, `${where}: GameData from the wrong sender`);
          break;
        case "AuthorityChanged":
          ok(
            message.data.you_are_authority === (message.data.authority_player === to),
            `${where}: you_are_authority wrong for ${to}`,
          );
          break;
        case "LobbyStateChanged":
          ok(
            message.data.all_ready === (message.data.lobby_state === "finalized"),
            `${where}: all_ready disagrees with lobby_state`,
          );
          break;
        case "GameStarting": {
          const holders = message.data.peer_connections.filter((peer) => peer.is_authority);
          ok(holders.length <= 1, `${where}: ${holders.length} authorities in GameStarting`);
          break;
        }
      }
    }
  }
}

function checkSnapshot(
  players: { id: string; is_authority: boolean; is_ready: boolean }[],
  ready: string[],
  state: string,
  max: number,
  where: string,
): void {
  ok(players.filter((p) => p.is_authority).length <= 1, `${where}: two authorities`);
  const ids = new Set(players.map((p) => p.id));
  ok(ready.every((id) => ids.has(id)), `${where}: ready player not seated`);
  ok(players.every((p) => p.is_ready === ready.includes(p.id)), `${where}: is_ready disagrees`);
  const full = players.length === max && max > 1;
  const expected = !full ? "waiting" : ready.length === players.length ? "finalized" : "lobby";
  ok(state === expected, `${where}: lobby_state ${state}, expected ${expected}`);
}

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
  Deno.test(`Engine keeps its invariants over a random walk (seed ${seed})`, () => {
    const random = prng(seed);
    const connected = new Set(IDS.slice(0, 5));
    const engine = engineWith([...connected]);
    const roles = new Map<string, Role>();
    let now = 0;
    for (let step = 0; step < 3000; step++) {
      now += Math.floor(random() * 5000);
      const where = `seed ${seed} step ${step}`;
      const id = IDS[Math.floor(random() * IDS.length)]!;
      const roll = random();
      if (!connected.has(id)) {
        engine.connect(id);
        connected.add(id);
        roles.set(id, { kind: "none" });
      } else if (roll < 0.03) {
        observe(engine.disconnect(id, now), roles, undefined, where);
        connected.delete(id);
        roles.delete(id);
      } else if (roll < 0.04) {
        observe(engine.sweep(now), roles, undefined, where);
      } else {
        observe(engine.handle(id, randomMessage(random, IDS), now), roles, id, where);
      }
      const stats = engine.stats();
      ok(stats.connections === connected.size, `${where}: connection count drifted`);
      let players = 0;
      for (const code of CODES) {
        const room = engine.lookup("orbit", code);
        if (!room) continue;
        players += room.players;
        ok(room.players <= room.max_players, `${where}: ${code} over capacity`);
      }
      ok(players <= stats.players, `${where}: seat count drifted`);
      const seated = [...roles.values()].filter((role) => role.kind === "player").length;
      ok(
        seated === stats.players,
        `${where}: ${seated} seated clients, engine says ${stats.players}`,
      );
    }
  });
}
