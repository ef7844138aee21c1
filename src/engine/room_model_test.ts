/**
 * A reference model of docs/spec/PROTOCOL.md §7.2–§7.9 and §7.11 (seats, ready sets, lobby
 * states, authority, connection info, game data, spectators, held seats and their replay
 * buffers, binary game data by negotiated format, lobby-change buckets), written from the spec
 * alone, walked against the engine with seeded random input.
 * After every step each connection must have received exactly the messages the model says, in
 * the model's order (§1.5: one FIFO per connection; nothing is promised across recipients), and
 * a resumed seat exactly the messages the model buffered for it. Deterministic: a failure names
 * its seed and step.
 */
import { deepEqual } from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { encodeServerMessage } from "../protocol/codec.ts";
import type { ClientMessage } from "../protocol/messages.ts";
import type { Effect } from "./engine.ts";
import { SPECTATOR_LIST_LIMIT } from "./spectators.ts";
import { prng, reconnectingEngineWith } from "./testing.ts";
import { TokenBucket } from "./token_bucket.ts";

type Json = Record<string, unknown>;
type Out = Map<string, unknown[]>;

const WINDOW = 20_000;
/** "AB" breaks the code rules (§8.3). */
const CODES = ["ROOM01", "ROOM02", "room02", "ROOM03", "AB"];
/** " x" breaks the name rules (§8.2). */
const NAMES = ["ann", "bo", "Ann", "cy", " x"];
/** The apps of the walks with auth: `b` has `max_players_per_room` 2. */
const APPS = [{ appId: "a", appName: "A" }, { appId: "b", appName: "B", maxPlayersPerRoom: 2 }];
const APP_PLAYER_CAPS: Record<string, number | undefined> = { b: 2 };
/** `server.max_spectators_per_room` of the walk. */
const MAX_SPECTATORS = 3;
/**
 * `rate_limit.max_lobby_changes` per `time_window` of the walks that have one: small enough that
 * buckets run out and stay out across reconnections (the other walks have none, so that their
 * lobbies fill, finalize and break up often).
 */
const LOBBY_CHANGES = { capacity: 2, windowMs: 600_000 };

interface ModelRoom {
  id: string;
  app: string;
  code: string;
  max: number;
  authoritySupported: boolean;
  /** Player ids in seat order. */
  seats: string[];
  names: Map<string, string>;
  joinedAt: Map<string, string>;
  info: Map<string, Json>;
  /** Player ids in the order they became ready. */
  ready: string[];
  authority: string | null;
  /** Spectator ids in join order, with name and time. */
  spectators: { id: string; name: string; connected_at: string }[];
}

interface Conn {
  identity: string;
  /** The app it authenticated as (auth enabled: each app has its own rooms, §7.9 note). */
  app: string;
  /** Its negotiated game-data format (§7.1.5). */
  format: "json" | "message_pack";
  /** Its lobby-change bucket (§7.4 note), made at its first request as a player. */
  bucket?: TokenBucket;
  role: { kind: "none" } | { kind: "player" | "spectator"; room: ModelRoom };
}

interface Hold {
  room: ModelRoom;
  /** The dropped connection's lobby-change bucket, which goes with the seat. */
  bucket?: TokenBucket;
  expiresAt: number;
  buffer: unknown[];
}

class Model {
  readonly lobbyChanges: typeof LOBBY_CHANGES | undefined;
  /** `server.enable_reconnection` (§7.3.2): seats are held on a drop, else released at once. */
  readonly reconnection: boolean;
  rooms = new Map<string, ModelRoom>();
  conns = new Map<string, Conn>();
  /** Connection carrying each identity. */
  carrier = new Map<string, string>();
  holds = new Map<string, Hold>();
  /** Valid token per player id (learned from the engine's replies). */
  tokens = new Map<string, string>();
  out: Out = new Map();
  #roomIds = 0;

  constructor(lobbyChanges: typeof LOBBY_CHANGES | undefined, reconnection: boolean) {
    this.lobbyChanges = lobbyChanges;
    this.reconnection = reconnection;
  }

  connect(id: string, format: Conn["format"], app: string): void {
    this.conns.set(id, { identity: id, format, app, role: { kind: "none" } });
    this.carrier.set(id, id);
  }

  /** Sends `message` to identity `to`: its connection, or its held seat's buffer. */
  send(to: string, message: unknown): void {
    const hold = this.holds.get(to);
    if (hold) {
      hold.buffer.push(message);
      return;
    }
    const conn = this.carrier.get(to)!;
    const list = this.out.get(conn) ?? [];
    list.push(message);
    this.out.set(conn, list);
  }

  sendAll(to: readonly string[], message: unknown): void {
    for (const id of to) this.send(id, message);
  }

  members(room: ModelRoom, except?: string): string[] {
    return [...room.seats, ...room.spectators.map((s) => s.id)].filter((id) => id !== except);
  }

  state(room: ModelRoom): string {
    if (room.max === 1 || room.seats.length < room.max) return "waiting";
    return room.ready.length === room.seats.length ? "finalized" : "lobby";
  }

  player(room: ModelRoom, id: string, address = true): Json {
    const info: Json = {
      id,
      name: room.names.get(id),
      is_authority: room.authority === id,
      is_ready: room.ready.includes(id),
      connected_at: room.joinedAt.get(id),
    };
    if (address && room.info.has(id)) info.connection_info = room.info.get(id);
    return info;
  }

  snapshot(room: ModelRoom, id: string): Json {
    return {
      room_id: room.id,
      room_code: room.code,
      player_id: id,
      game_name: "orbit",
      max_players: room.max,
      supports_authority: room.authoritySupported,
      current_players: room.seats.map((s) => this.player(room, s)),
      is_authority: room.authority === id,
      lobby_state: this.state(room),
      ready_players: [...room.ready],
      relay_type: "matchbox",
      current_spectators: room.spectators.map((s) => ({ ...s })),
    };
  }

  lobbyChanged(room: ModelRoom): void {
    const state = this.state(room);
    this.sendAll(this.members(room), {
      type: "LobbyStateChanged",
      data: {
        lobby_state: state,
        ready_players: [...room.ready],
        all_ready: state === "finalized",
      },
    });
  }

  gameStarting(room: ModelRoom, players: string[]): void {
    const peers = (address: boolean) =>
      room.seats.map((id) => {
        const peer: Json = {
          player_id: id,
          player_name: room.names.get(id),
          is_authority: room.authority === id,
          relay_type: "matchbox",
        };
        if (address && room.info.has(id)) peer.connection_info = room.info.get(id);
        return peer;
      });
    this.sendAll(players, { type: "GameStarting", data: { peer_connections: peers(true) } });
    this.sendAll(room.spectators.map((s) => s.id), {
      type: "GameStarting",
      data: { peer_connections: peers(false) },
    });
  }

  error(to: string, message: string, code: string): void {
    this.send(to, { type: "Error", data: { message, error_code: code } });
  }

  handle(connId: string, message: ClientMessage, now: number): void {
    const conn = this.conns.get(connId)!;
    const me = conn.identity;
    const role = conn.role;
    const at = new Date(now).toISOString();
    switch (message.type) {
      case "JoinRoom": {
        const data = message.data;
        const joinFailed = (reason: string, error_code: string) =>
          this.send(me, { type: "RoomJoinFailed", data: { reason, error_code } });
        if (data.player_name.startsWith(" ")) {
          return joinFailed(
            "Player name cannot have leading or trailing whitespace",
            "INVALID_INPUT",
          );
        }
        if (data.max_players === 0) {
          return joinFailed("Max players must be at least 1", "INVALID_INPUT");
        }
        // An app's max_players_per_room caps the default and the value (§7.2.5).
        const cap = APP_PLAYER_CAPS[conn.app];
        const max = data.max_players ?? Math.min(8, cap ?? 8);
        if (cap !== undefined && max > cap) {
          return joinFailed(`Max players cannot exceed ${cap}`, "INVALID_INPUT");
        }
        if (role.kind !== "none") {
          this.send(me, {
            type: "RoomJoinFailed",
            data: { reason: "Already in a room", error_code: "ALREADY_IN_ROOM" },
          });
          return;
        }
        if (data.room_code!.length !== 6) {
          return joinFailed("Room code must be exactly 6 characters", "INVALID_ROOM_CODE");
        }
        const code = data.room_code!.toUpperCase();
        let room = this.rooms.get(`${conn.app}|${code}`);
        if (room) {
          const taken = room.seats.some((s) =>
            room!.names.get(s)!.toLowerCase() === data.player_name.toLowerCase()
          );
          if (taken || room.seats.length >= room.max) {
            this.send(me, {
              type: "RoomJoinFailed",
              data: taken
                ? {
                  reason: "Player name already exists in this room",
                  error_code: "ROOM_CREATION_FAILED",
                }
                : { reason: "Room is full", error_code: "ROOM_FULL" },
            });
            return;
          }
        } else {
          room = {
            id: `room-${++this.#roomIds}`,
            app: conn.app,
            code,
            max,
            authoritySupported: data.supports_authority ?? true,
            seats: [],
            names: new Map(),
            joinedAt: new Map(),
            info: new Map(),
            ready: [],
            authority: null,
            spectators: [],
          };
          this.rooms.set(`${conn.app}|${code}`, room);
          if (room.authoritySupported) room.authority = me;
        }
        room.seats.push(me);
        room.names.set(me, data.player_name);
        room.joinedAt.set(me, at);
        conn.role = { kind: "player", room };
        this.send(me, {
          type: "RoomJoined",
          data: this.reconnection
            ? { ...this.snapshot(room, me), reconnection_token: "<token>" }
            : this.snapshot(room, me),
        });
        this.sendAll(this.members(room, me), {
          type: "PlayerJoined",
          data: { player: { ...this.player(room, me), is_authority: false } },
        });
        if (room.max > 1 && room.seats.length === room.max) this.lobbyChanged(room);
        if (room.max === 1) this.gameStarting(room, [me]);
        return;
      }
      case "LeaveRoom":
        if (role.kind !== "player") return;
        this.send(me, { type: "RoomLeft" });
        this.release(role.room, me);
        return;
      case "PlayerReady": {
        const limited = this.limited(conn, now);
        if (limited) return this.error(me, limited, "RATE_LIMIT_EXCEEDED");
        if (role.kind === "spectator") {
          return this.error(me, "Spectators cannot change ready status", "SPECTATOR_NOT_ALLOWED");
        }
        if (role.kind === "none") return this.error(me, "Not in a room", "NOT_IN_ROOM");
        const room = role.room;
        const before = this.state(room);
        if (room.ready.includes(me)) room.ready = room.ready.filter((id) => id !== me);
        else room.ready.push(me);
        this.lobbyChanged(room);
        if (this.state(room) === "finalized" && before !== "finalized") {
          this.gameStarting(room, [...room.seats]);
        }
        return;
      }
      case "AuthorityRequest": {
        const limited = this.limited(conn, now);
        if (limited) {
          return this.send(me, {
            type: "AuthorityResponse",
            data: { granted: false, reason: limited, error_code: "RATE_LIMIT_EXCEEDED" },
          });
        }
        if (role.kind === "spectator") {
          return this.error(me, "Spectators cannot request authority", "SPECTATOR_NOT_ALLOWED");
        }
        const deny = (reason: string, error_code: string) =>
          this.send(me, {
            type: "AuthorityResponse",
            data: { granted: false, reason, error_code },
          });
        if (role.kind === "none") return deny("Not in a room", "NOT_IN_ROOM");
        const room = role.room;
        if (!room.authoritySupported) {
          return deny("Room does not support authority", "AUTHORITY_NOT_SUPPORTED");
        }
        const granted = { type: "AuthorityResponse", data: { granted: true, reason: null } };
        if (message.data.become_authority) {
          if (room.authority === me) return this.send(me, granted);
          if (room.authority !== null) {
            return deny("Another player already has authority", "AUTHORITY_CONFLICT");
          }
          room.authority = me;
        } else {
          if (room.authority !== me) {
            return deny("You do not have authority to release", "AUTHORITY_DENIED");
          }
          room.authority = null;
        }
        this.send(me, granted);
        this.authorityChanged(room);
        return;
      }
      case "GameData": {
        if (role.kind === "spectator") {
          return this.error(me, "Spectators cannot send game data", "SPECTATOR_NOT_ALLOWED");
        }
        if (role.kind === "none") return;
        const relayed = { type: "GameData", data: { from_player: me, data: message.data.data } };
        const target = message.data.to_player;
        if (target === undefined) return this.sendAll(this.members(role.room, me), relayed);
        if (target === me) {
          return this.error(me, "Cannot send game data to yourself", "INVALID_INPUT");
        }
        if (!role.room.seats.includes(target)) {
          return this.error(me, "Target player is not in this room", "INVALID_INPUT");
        }
        return this.send(target, relayed);
      }
      case "ProvideConnectionInfo":
        if (role.kind === "spectator") {
          return this.error(
            me,
            "Spectators cannot provide connection info",
            "SPECTATOR_NOT_ALLOWED",
          );
        }
        if (role.kind === "none") return this.error(me, "Not in a room", "NOT_IN_ROOM");
        role.room.info.set(me, message.data.connection_info as Json);
        return;
      case "JoinAsSpectator": {
        const fail = (reason: string, error_code: string) =>
          this.send(me, { type: "SpectatorJoinFailed", data: { reason, error_code } });
        if (message.data.spectator_name.startsWith(" ")) {
          return fail(
            "Player name cannot have leading or trailing whitespace",
            "INVALID_PLAYER_NAME",
          );
        }
        if (role.kind === "player") return fail("Already in a room", "ALREADY_IN_ROOM");
        if (message.data.room_code.length !== 6) {
          return fail("Room code must be exactly 6 characters", "INVALID_ROOM_CODE");
        }
        const room = this.rooms.get(`${conn.app}|${message.data.room_code.toUpperCase()}`);
        if (!room) return fail("Room not found", "ROOM_NOT_FOUND");
        if (room.spectators.filter((s) => s.id !== me).length >= MAX_SPECTATORS) {
          return fail("Spectator limit reached", "TOO_MANY_SPECTATORS");
        }
        if (role.kind === "spectator") this.detach(connId, "voluntary_leave", false);
        const spectator = { id: me, name: message.data.spectator_name, connected_at: at };
        room.spectators.push(spectator);
        conn.role = { kind: "spectator", room };
        this.send(me, {
          type: "SpectatorJoined",
          data: {
            room_id: room.id,
            room_code: room.code,
            spectator_id: me,
            game_name: "orbit",
            current_players: room.seats.map((s) => this.player(room, s, false)),
            current_spectators: room.spectators.map((s) => ({ ...s })),
            lobby_state: this.state(room),
            reason: "joined",
          },
        });
        this.sendAll(this.members(room, me), {
          type: "NewSpectatorJoined",
          data: {
            spectator: { ...spectator },
            current_spectators: room.spectators.slice(0, SPECTATOR_LIST_LIMIT).map((s) => ({
              ...s,
            })),
            reason: "joined",
          },
        });
        return;
      }
      case "LeaveSpectator":
        if (role.kind !== "spectator") {
          return this.error(me, "You are not currently spectating a room", "NOT_A_SPECTATOR");
        }
        return this.detach(connId, "voluntary_leave", true);
      default:
        throw new Error(`not modelled: ${message.type}`);
    }
  }

  /** A binary frame carrying the MessagePack encoding of `value` (§7.7). */
  binary(connId: string, value: unknown): void {
    const conn = this.conns.get(connId)!;
    const me = conn.identity;
    if (conn.role.kind === "spectator") {
      return this.error(me, "Spectators cannot send game data", "SPECTATOR_NOT_ALLOWED");
    }
    if (conn.format === "json") {
      return this.error(me, "Binary payloads are disabled for this connection", "INVALID_INPUT");
    }
    if (conn.role.kind === "none") return;
    for (const id of this.members(conn.role.room, me)) {
      const to = this.holds.has(id) ? undefined : this.conns.get(this.carrier.get(id)!);
      if (to?.format === "message_pack") this.send(id, { binary: me, payload: value });
      else this.send(id, { type: "GameData", data: { from_player: me, data: value } });
    }
  }

  /** A player's request takes a lobby-change token; the refusal's reason when there is none. */
  limited(conn: Conn, now: number): string | undefined {
    const limit = this.lobbyChanges;
    if (limit === undefined || conn.role.kind !== "player") return undefined;
    conn.bucket ??= new TokenBucket(limit.capacity, limit.windowMs);
    const take = conn.bucket.take(now);
    return take.ok
      ? undefined
      : `Lobby change rate limit exceeded. Try again in ${take.retryAfterSecs} seconds.`;
  }

  authorityChanged(room: ModelRoom): void {
    for (const id of this.members(room)) {
      this.send(id, {
        type: "AuthorityChanged",
        data: { authority_player: room.authority, you_are_authority: room.authority === id },
      });
    }
  }

  detach(connId: string, reason: string, tell: boolean): void {
    const conn = this.conns.get(connId)!;
    if (conn.role.kind !== "spectator") throw new Error("not a spectator");
    const room = conn.role.room;
    const me = conn.identity;
    room.spectators = room.spectators.filter((s) => s.id !== me);
    conn.role = { kind: "none" };
    if (tell) {
      this.send(me, {
        type: "SpectatorLeft",
        data: {
          room_id: room.id,
          room_code: room.code,
          reason,
          current_spectators: room.spectators.map((s) => ({ ...s })),
        },
      });
    }
    this.sendAll(this.members(room), {
      type: "SpectatorDisconnected",
      data: {
        spectator_id: me,
        reason,
        current_spectators: room.spectators.slice(0, SPECTATOR_LIST_LIMIT).map((s) => ({ ...s })),
      },
    });
  }

  /** The seat release sequence (§7.3.3). */
  release(room: ModelRoom, id: string): void {
    const wasFull = this.state(room) !== "waiting";
    room.seats = room.seats.filter((s) => s !== id);
    room.ready = room.ready.filter((s) => s !== id);
    room.info.delete(id);
    room.names.delete(id);
    this.tokens.delete(id);
    const conn = this.conns.get(this.carrier.get(id) ?? "");
    if (conn && conn.identity === id && conn.role.kind === "player") conn.role = { kind: "none" };
    this.sendAll(this.members(room), { type: "PlayerLeft", data: { player_id: id } });
    if (room.authority === id) {
      room.authority = null;
      this.authorityChanged(room);
    }
    if (wasFull) {
      room.ready = [];
      this.lobbyChanged(room);
    }
  }

  disconnect(connId: string): void {
    const conn = this.conns.get(connId)!;
    this.conns.delete(connId);
    if (conn.role.kind === "player" && !this.reconnection) {
      this.release(conn.role.room, conn.identity);
    } else if (conn.role.kind === "player") {
      this.holds.set(conn.identity, {
        room: conn.role.room,
        bucket: conn.bucket,
        expiresAt: 0,
        buffer: [],
      });
    } else if (conn.role.kind === "spectator") {
      this.conns.set(connId, conn); // detach needs it
      this.detach(connId, "disconnected", false);
      this.conns.delete(connId);
    }
    if (this.carrier.get(conn.identity) === connId && !this.holds.has(conn.identity)) {
      this.carrier.delete(conn.identity);
    }
  }

  /** A valid `Reconnect` for player `id` from new connection `connId` (§7.11.5). */
  reconnect(connId: string, id: string): void {
    const hold = this.holds.get(id);
    const old = this.carrier.get(id);
    let room: ModelRoom;
    let missed: unknown[] = [];
    let bucket: TokenBucket | undefined;
    if (hold) {
      this.holds.delete(id);
      bucket = hold.bucket;
      room = hold.room;
      missed = hold.buffer;
    } else {
      const oldConn = this.conns.get(old!)!;
      if (oldConn.role.kind !== "player") throw new Error("takeover of no seat");
      room = oldConn.role.room;
      bucket = oldConn.bucket;
      this.conns.delete(old!);
      this.out.set(old!, [...(this.out.get(old!) ?? []), { close: 4001 }]);
    }
    const conn = this.conns.get(connId)!;
    conn.identity = id;
    conn.role = { kind: "player", room };
    // The bucket goes with the seat: the replaced connection's, a fresh one if it had none.
    conn.bucket = bucket;
    this.carrier.set(id, connId);
    this.send(id, {
      type: "Reconnected",
      data: {
        ...this.snapshot(room, id),
        missed_events: missed,
        reconnection_token: "<token>",
        replay_truncated: false,
      },
    });
    this.sendAll(this.members(room, id), { type: "PlayerReconnected", data: { player_id: id } });
  }

  /** Held seats whose window ended at `now`, released in the order they were held. */
  tick(now: number): void {
    for (const [id, hold] of [...this.holds]) {
      if (now < hold.expiresAt) continue;
      this.holds.delete(id);
      this.carrier.delete(id);
      this.release(hold.room, id);
    }
  }

  take(): Out {
    const out = this.out;
    this.out = new Map();
    return out;
  }
}

/** The engine's effects as messages per connection (JSON as sent), tokens learned and masked. */
function delivered(effects: Effect[], model: Model): Out {
  const out: Out = new Map();
  const push = (to: string, item: unknown) => {
    const list = out.get(to) ?? [];
    list.push(item);
    out.set(to, list);
  };
  for (const effect of effects) {
    if (effect.kind === "close") push(effect.to, { close: effect.code });
    if (effect.kind === "frame") {
      let item: unknown;
      if (typeof effect.frame === "string") item = JSON.parse(effect.frame);
      else {
        // The envelope (§7.7): the sender's id as 16 bytes, then the payload, decoded here.
        const envelope = decode(effect.frame) as { from_player: Uint8Array; payload: Uint8Array };
        const hex = [...envelope.from_player].map((b) => b.toString(16).padStart(2, "0")).join("");
        const uuid = [8, 12, 16, 20].reduceRight(
          (u, at) => `${u.slice(0, at)}-${u.slice(at)}`,
          hex,
        );
        item = { binary: uuid, payload: decode(envelope.payload) };
      }
      for (const to of effect.to) push(to, item);
    }
    if (effect.kind !== "send") continue;
    const message = JSON.parse(encodeServerMessage(effect.message));
    if (
      (message.type === "RoomJoined" || message.type === "Reconnected") &&
      message.data.reconnection_token !== undefined
    ) {
      model.tokens.set(message.data.player_id, message.data.reconnection_token);
      message.data.reconnection_token = "<token>";
    }
    for (const to of effect.to) push(to, message);
  }
  return out;
}

function clientMessage(random: () => number, targets: string[]): ClientMessage {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const roll = random();
  if (roll < 0.22) {
    return {
      type: "JoinRoom",
      data: {
        game_name: "orbit",
        room_code: pick(CODES),
        player_name: pick(NAMES),
        max_players: pick([0, 1, 2, 2, 3, undefined]),
        supports_authority: random() < 0.75 ? undefined : false,
      },
    } as ClientMessage;
  }
  if (roll < 0.32) {
    return {
      type: "JoinAsSpectator",
      data: { game_name: "orbit", room_code: pick(CODES), spectator_name: pick(NAMES) },
    };
  }
  if (roll < 0.44) {
    return {
      type: "GameData",
      data: {
        data: { n: Math.floor(roll * 1e6) },
        to_player: random() < 0.3 ? pick(targets) : undefined,
      },
    } as ClientMessage;
  }
  if (roll < 0.62) return { type: "PlayerReady" } as ClientMessage;
  if (roll < 0.74) return { type: "AuthorityRequest", data: { become_authority: random() < 0.6 } };
  if (roll < 0.82) return { type: "LeaveRoom" } as ClientMessage;
  if (roll < 0.87) return { type: "LeaveSpectator" } as ClientMessage;
  return {
    type: "ProvideConnectionInfo",
    data: { connection_info: { type: "direct", host: "h", port: Math.floor(roll * 1000) } },
  };
}

function compare(actual: Out, expected: Out, where: string): void {
  const keys = new Set([...actual.keys(), ...expected.keys()]);
  for (const key of keys) {
    deepEqual(actual.get(key) ?? [], expected.get(key) ?? [], `${where}: to ${key}`);
  }
}

for (
  const seed of [
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
    21,
    22,
    23,
    24,
    25,
    26,
    27,
    28,
    31,
    32,
    33,
    41,
    42,
    43,
    44,
  ]
) {
  const lobbyChanges = seed > 20 && seed < 30 ? LOBBY_CHANGES : undefined;
  const enableReconnection = seed < 30 || seed > 40;
  const auth = seed > 40;
  const limits = (lobbyChanges ? ", lobby-change buckets" : "") +
    (enableReconnection ? "" : ", reconnection disabled") + (auth ? ", two apps" : "");
  Deno.test(`Engine agrees with a model of docs/spec/PROTOCOL.md §7.2–§7.11 over a random walk (seed ${seed}${limits})`, () => {
    const random = prng(seed);
    let next = 0;
    const newId = () => `00000000-0000-4000-8000-${(++next).toString(16).padStart(12, "0")}`;
    const engine = reconnectingEngineWith([], {
      messagePack: true,
      reconnectionWindowMs: WINDOW,
      maxSpectatorsPerRoom: MAX_SPECTATORS,
      lobbyChanges,
      enableReconnection,
      ...(auth
        ? { auth: { required: true, apps: APPS, timeoutMs: 10_000, enforceSdkGate: false } }
        : {}),
      eventBufferSize: 10_000,
      eventBufferMaxBytes: 1 << 30,
    });
    const model = new Model(lobbyChanges, enableReconnection);
    const live: string[] = [];
    const open = (app = auth && random() < 0.5 ? "b" : "a") => {
      const id = newId();
      engine.connect(id, { now });
      const format = random() < 0.5 ? "json" : "message_pack";
      // Answered with Authenticated and ProtocolInfo, which the model leaves out (§7.1.2).
      engine.handle(
        id,
        { type: "Authenticate", data: { app_id: app, game_data_format: format } },
        now,
      );
      model.connect(id, format, app);
      live.push(id);
      return id;
    };
    let now = Date.UTC(2026, 11, 8, 4, 0, 0);
    for (let i = 0; i < 6; i++) open();
    for (let step = 0; step < 1500; step++) {
      now += 1000;
      const where = `seed ${seed} step ${step}`;
      const roll = random();
      let effects: Effect[];
      if (roll < 0.05) {
        // A drop: a player's seat is held (window from now), a spectator is detached.
        const conn = live.splice(Math.floor(random() * live.length), 1)[0]!;
        const identity = model.conns.get(conn)!.identity;
        effects = engine.disconnect(conn, now);
        model.disconnect(conn);
        const hold = model.holds.get(identity);
        if (hold) hold.expiresAt = now + WINDOW;
        open();
      } else if (roll < 0.1) {
        // A resume of a held seat or a takeover of a live one, from a new connection.
        // A hold past its window before the timer ran is expired by the Reconnect (§7.11.3);
        // the model leaves that to tick().
        const seats = [...model.tokens.keys()].filter((id) =>
          (model.holds.get(id)?.expiresAt ?? Infinity) > now
        );
        if (seats.length === 0) continue;
        // Mostly a held seat, whose replay is then compared.
        const held = seats.filter((id) => model.holds.has(id));
        const from = held.length > 0 && random() < 0.7 ? held : seats;
        const id = from[Math.floor(random() * from.length)]!;
        const room = model.holds.get(id)?.room ??
          (model.conns.get(model.carrier.get(id)!)!.role as { room: ModelRoom }).room;
        // From a new connection, or from one in no room (which may have a bucket of its own).
        // Of the seat's app: a token works only for its own app's connections (§7.11.4).
        const idle = live.filter((c) =>
          model.conns.get(c)!.role.kind === "none" && model.conns.get(c)!.app === room.app
        );
        const conn = idle.length > 0 && random() < 0.5
          ? idle[Math.floor(random() * idle.length)]!
          : open(room.app);
        effects = engine.handle(conn, {
          type: "Reconnect",
          data: { player_id: id, room_id: room.id, auth_token: model.tokens.get(id)! },
        }, now);
        const old = model.carrier.get(id);
        if (!model.holds.has(id)) {
          live.splice(live.indexOf(old!), 1);
          open(); // keep the population
        }
        model.reconnect(conn, id);
      } else if (roll < 0.13) {
        effects = engine.tick(now);
        model.tick(now);
      } else if (roll < 0.22) {
        const conn = live[Math.floor(random() * live.length)]!;
        const value = { b: Math.floor(random() * 1000) };
        effects = engine.handleBinary(conn, encode(value), now);
        model.binary(conn, value);
      } else {
        const conn = live[Math.floor(random() * live.length)]!;
        const targets = [...model.rooms.values()].flatMap((r) => r.seats);
        const message = clientMessage(random, targets.length > 0 ? targets : [conn]);
        effects = engine.handle(conn, message, now);
        model.handle(conn, message, now);
      }
      compare(delivered(effects, model), model.take(), where);
    }
  });
}
