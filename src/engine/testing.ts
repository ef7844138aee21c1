/**
 * Helpers for engine tests: a deterministic engine, message builders and effect summaries.
 *
 * @module
 */
import type { ClientMessage, ServerMessage } from "../protocol/messages.ts";
import { type Effect, Engine, type EngineOptions } from "./engine.ts";
import { DEFAULT_NAME_RULES } from "./validation.ts";

/** Deterministic player ids (valid UUIDs, so they can be `to_player` targets). */
export const P1 = "00000000-0000-4000-8000-000000000001";
/** Second player id. */
export const P2 = "00000000-0000-4000-8000-000000000002";
/** Third player id. */
export const P3 = "00000000-0000-4000-8000-000000000003";
/** A connection id for a player's new socket (reconnection tests). */
export const C1 = "00000000-0000-4000-8000-0000000000c1";
/** Another new-socket connection id. */
export const C2 = "00000000-0000-4000-8000-0000000000c2";
/** A spectator id. */
export const S1 = "00000000-0000-4000-8000-0000000000a1";
/** Another spectator id. */
export const S2 = "00000000-0000-4000-8000-0000000000a2";

/** Engine settings with the spec defaults and deterministic generators. */
export function testOptions(overrides: Partial<EngineOptions> = {}): EngineOptions {
  let rooms = 0;
  let codes = 0;
  let tokens = 0;
  return {
    defaultMaxPlayers: 8,
    maxPlayersLimit: 100,
    roomCodeLength: 6,
    maxGameNameLength: 64,
    maxRoomsPerGame: 1000,
    maxSpectatorsPerRoom: 0,
    emptyRoomTimeoutMs: 300_000,
    inactiveRoomTimeoutMs: 3_600_000,
    nameRules: DEFAULT_NAME_RULES,
    defaultRelayType: "matchbox",
    relayTypeByGame: {},
    messagePack: false,
    sdk: {
      minimumVersions: { unity: "1.10.0", godot: "0.9.0" },
      recommendedVersions: { unity: "1.12.0" },
      capabilities: {
        _default: ["reconnection", "spectator-mode", "rate-limits-v2"],
        unity: ["relay-matchbox", "reconnection"],
      },
      notes: { unity: "Upgrade to 1.12.x." },
    },
    extensionCapabilities: ["targeted-game-data"],
    newId: () => `room-${++rooms}`,
    newRoomCode: () => `CODE${String(++codes).padStart(2, "0")}`,
    // Reconnection is off by default here so the release-at-once rules can be tested alone.
    enableReconnection: false,
    reconnectionWindowMs: 300_000,
    eventBufferSize: 100,
    eventBufferMaxBytes: 262_144,
    newToken: () => `token-${++tokens}`.padEnd(43, "x"),
    ...overrides,
  };
}

/** A new engine with `ids` already connected. */
export function engineWith(ids: string[], overrides: Partial<EngineOptions> = {}): Engine {
  const engine = new Engine(testOptions(overrides));
  for (const id of ids) engine.connect(id);
  return engine;
}

/**
 * {@link engineWith} with `enable_reconnection` on (docs/spec/PROTOCOL.md §7.11): players leaving hold
 * their seat and get tokens; `overrides` apply on top.
 */
export function reconnectingEngineWith(
  ids: string[],
  overrides: Partial<EngineOptions> = {},
): Engine {
  return engineWith(ids, { enableReconnection: true, ...overrides });
}

/** `JoinRoom` with the given code (or none) and name. */
export function join(
  code: string | undefined,
  name: string,
  extra: Partial<Extract<ClientMessage, { type: "JoinRoom" }>["data"]> = {},
): ClientMessage {
  return {
    type: "JoinRoom",
    data: { game_name: "orbit", room_code: code, player_name: name, ...extra },
  } as ClientMessage;
}

/** `JoinAsSpectator` for room `code` of game "orbit". */
export function spectate(code: string, name = "Watcher"): ClientMessage {
  return {
    type: "JoinAsSpectator",
    data: { game_name: "orbit", room_code: code, spectator_name: name },
  };
}

/** A payload-less client message. */
export function bare(type: "LeaveRoom" | "PlayerReady" | "Ping" | "LeaveSpectator"): ClientMessage {
  return { type, data: undefined } as ClientMessage;
}

/** The messages of `effects` as `"<recipient> <- <type>"` lines, in order. */
export function summarize(effects: Effect[]): string[] {
  const lines: string[] = [];
  for (const effect of effects) {
    if (effect.kind === "send") {
      for (const to of effect.to) lines.push(`${short(to)} <- ${label(effect.message)}`);
    } else if (effect.kind === "frame") {
      const kind = typeof effect.frame === "string" ? "text" : "binary";
      for (const to of effect.to) lines.push(`${short(to)} <- ${kind} frame`);
    } else if (effect.kind === "close") {
      lines.push(`${short(effect.to)} closed ${effect.code}`);
    }
  }
  return lines;
}

/** Every message sent to `to`, in order. */
export function sentTo(effects: Effect[], to: string): ServerMessage[] {
  return effects.flatMap((effect) =>
    effect.kind === "send" && effect.to.includes(to) ? [effect.message] : []
  );
}

/** The first message of `type` sent to `to`; throws when there is none. */
export function first<T extends ServerMessage["type"]>(
  effects: Effect[],
  to: string,
  type: T,
): Extract<ServerMessage, { type: T }> {
  const message = sentTo(effects, to).find((m) => m.type === type);
  if (!message) throw new Error(`No ${type} sent to ${to}: ${summarize(effects).join("; ")}`);
  return message as Extract<ServerMessage, { type: T }>;
}

const NAMES: Record<string, string> = {
  [P1]: "p1",
  [P2]: "p2",
  [P3]: "p3",
  [S1]: "s1",
  [S2]: "s2",
  [C1]: "c1",
  [C2]: "c2",
};

function short(id: string): string {
  return NAMES[id] ?? id;
}

function label(message: ServerMessage): string {
  if (!("data" in message)) return message.type;
  const data = message.data as Record<string, unknown>;
  const code = data.error_code ? ` ${data.error_code}` : "";
  if (message.type === "LobbyStateChanged") return `LobbyStateChanged ${data.lobby_state}`;
  return `${message.type}${code}`;
}

/**
 * How many of the rooms `codes` of `games` are unattended by their own details at `now`: seats,
 * every one held, no spectator (what `Engine.stats().unattendedRooms` must say).
 */
export function countUnattended(
  engine: Engine,
  games: readonly string[],
  codes: readonly string[],
  now: number,
): number {
  let count = 0;
  for (const game of games) {
    for (const code of codes) {
      const detail = engine.roomDetail(game, code, now);
      if (
        detail && detail.members.length > 0 && detail.members.every((seat) => seat.held) &&
        detail.spectator_list.length === 0
      ) count++;
    }
  }
  return count;
}

/** mulberry32: a small, fast, seedable PRNG for deterministic random walks (not for security). */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
