/**
 * Every wire example in the documents is one the server accepts or sends: the one-message-a-line
 * JSON blocks of docs/protocol.md, docs/spec/PROTOCOL.md, docs/spec/EXTENSIONS.md and
 * docs/spec/SERVER.md, the message lines of README.md's "A short session", inline `{"type":…}`
 * messages, error texts in prose (`Error{message:"…", error_code:"…"}`), and the HTTP bodies of
 * docs/spec/EXTENSIONS.md E5, E6, E8 and E12, docs/spec/SERVER.md §1.10 and README's
 * `/v2/status` and operator API notes.
 *
 * - A client message decodes with the server's own decoder (`decodeClientMessage`) and keeps
 *   every field it names (a misspelt field would be dropped silently, so it fails here).
 * - A server message has exactly the shape the server sends: the same field names in the same
 *   order (docs/spec/PROTOCOL.md §2.1) and the same JSON types at every level as some message of
 *   that type that a real edge and engine (default configuration) produced in the scenario
 *   below. An elided example (`…`) may leave fields out but names none the server never sends
 *   and keeps the order. Error texts and codes are ones the scenario produced or that the
 *   source spells with that code nearby.
 * - `ConnectionInfo` examples are in the canonical form the server re-emits (docs/spec/PROTOCOL.md §4.3).
 * - HTTP bodies have the key sets of the real routes' answers.
 * - docs/protocol.md's "Example conversations" and README's "A short session" are played through
 *   a real edge and every line a client is shown to receive is what it receives (the former with
 *   the documents' ids, tokens and clock, frame for frame); docs/protocol.md's MessagePack
 *   envelope dump is the binary frame a recipient gets.
 *
 * No sockets: an {@linkcode Edge} with recording peers, and the HTTP route handlers called
 * directly.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { join as joinPath } from "node:path";
import { DEFAULT_CONFIG } from "../src/config/schema.ts";
import { Engine } from "../src/engine/engine.ts";
import { engineOptions, newReconnectionToken, statusBody } from "../src/server.ts";
import { Edge } from "../src/transport/edge.ts";
import { decodeClientMessage } from "../src/protocol/codec.ts";
import { ConnectionInfo, LOBBY_STATES } from "../src/protocol/messages.ts";
import { ERROR_CODES } from "../src/protocol/error_codes.ts";
import { rateLimitInfo } from "../src/engine/app_auth.ts";
import { roomRoutes } from "../src/http/rooms.ts";
import { adminRoutes } from "../src/http/admin.ts";
import { MemoryTokenBuckets } from "../src/coordination/memory.ts";
import { RateLimits } from "../src/engine/rate_limits.ts";
import { OperatorFeed } from "../src/metrics/operator_feed.ts";
import { canonicalJson, sessionSecret, verifyProof } from "../src/transport/token_binding.ts";
import { createHmac } from "node:crypto";

const ROOT = new URL("..", import.meta.url).pathname;
const read = (file: string) => Deno.readTextFileSync(joinPath(ROOT, file));
const DOCS = [
  "docs/protocol.md",
  "docs/spec/PROTOCOL.md",
  "docs/spec/EXTENSIONS.md",
  "docs/spec/SERVER.md",
  "README.md",
];

// ---------------------------------------------------------------------------------------------
// Extraction

/** One example found in a document. */
interface Example {
  /** `file:line`, for messages. */
  where: string;
  text: string;
  /** The parsed value (elisions removed). */
  value: unknown;
  /** Whether the text left parts out with `…` (then fields may be missing). */
  elided: boolean;
  /** Direction when the document says it (README's `→`/`←`), else from the message. */
  direction?: "client" | "server";
}

/**
 * Parses `text`, removing `…` elisions outside strings (`{ …the 12 v2 fields…, "x":1}`,
 * `[…]`, `,…}`) and the commas they leave; `elided` says whether there was any.
 */
function lenientParse(text: string): { value: unknown; elided: boolean } {
  let out = "";
  let elided = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j;
    } else if (c === "…") {
      elided = true;
      // `…words…`: skip to the closing ellipsis.
      if (/[\p{L}\d]/u.test(text[i + 1] ?? "")) i = text.indexOf("…", i + 1);
      out += "\uE000";
    } else out += c;
  }
  // Drop the markers and the separators they leave, outside strings only (strings hold no U+E000).
  const parts = out.split(/("(?:[^"\\]|\\.)*")/);
  for (let k = 0; k < parts.length; k += 2) {
    let p = parts[k]!;
    p = p.replace(/\uE000/g, "");
    for (;;) {
      const next = p.replace(/,\s*,/g, ",").replace(/([{[])\s*,/g, "$1").replace(
        /,\s*([}\]])/g,
        "$1",
      );
      if (next === p) break;
      p = next;
    }
    parts[k] = p;
  }
  return { value: JSON.parse(parts.join("")), elided };
}

function jsonBlocks(file: string): { line: number; text: string }[] {
  const lines = read(file).split("\n");
  const out: { line: number; text: string }[] = [];
  let lang: string | undefined;
  lines.forEach((line, index) => {
    const fence = /^\s*```(\w*)/.exec(line);
    if (fence) {
      lang = lang === undefined ? fence[1]! : undefined;
      return;
    }
    if ((lang === "json" || lang === "http") && line.trim().startsWith("{")) {
      out.push({ line: index + 1, text: line.trim() });
    }
  });
  return out;
}

function allExamples(): Example[] {
  const examples: Example[] = [];
  for (const file of DOCS) {
    for (const { line, text } of jsonBlocks(file)) {
      examples.push({ where: `${file}:${line}`, text, ...lenientParse(text) });
    }
    // README's "A short session": `Name → {…}` (sent) and `Name ← {…}` (received).
    read(file).split("\n").forEach((line, index) => {
      const arrow = /^\S+\s+(→|←)\s+(\{.*\})\s*$/.exec(line);
      if (!arrow) return;
      examples.push({
        where: `${file}:${index + 1}`,
        text: arrow[2]!,
        ...lenientParse(arrow[2]!),
        direction: arrow[1] === "→" ? "client" : "server",
      });
    });
    // Inline code spans holding a whole message: `{"type":"LeaveSpectator"}`.
    read(file).split("\n").forEach((line, index) => {
      for (const span of line.matchAll(/`(\{"type":[^`]*\})`/g)) {
        try {
          examples.push({
            where: `${file}:${index + 1}`,
            text: span[1]!,
            ...lenientParse(span[1]!),
          });
        } catch {
          // Not JSON (e.g. `{"type":…}` templates): not a wire example.
        }
      }
    });
  }
  return examples;
}

// ---------------------------------------------------------------------------------------------
// What the server really sends: a scenario through a real edge and engine

const CLIENT_TYPES = new Set([
  "Authenticate",
  "JoinRoom",
  "LeaveRoom",
  "GameData",
  "AuthorityRequest",
  "PlayerReady",
  "ProvideConnectionInfo",
  "Ping",
  "Reconnect",
  "JoinAsSpectator",
  "LeaveSpectator",
]);
const CONNECTION_INFO_TYPES = new Set(["direct", "unity_relay", "relay", "webrtc", "custom"]);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

class Peer {
  readonly messages: Record<string, Json>[] = [];
  send(frame: string | Uint8Array) {
    if (typeof frame === "string") this.messages.push(JSON.parse(frame));
    return undefined;
  }
  close() {}
  last(type: string): Record<string, Json> {
    const found = this.messages.findLast((m) => m.type === type);
    if (!found) throw new Error(`no ${type} in ${this.messages.map((m) => m.type).join(",")}`);
    return found;
  }
}

const T0 = Date.parse("2026-05-14T19:02:11.204Z");
const GAME = "starfall";

/** Every message a scenario's connections received, and the edge and engine that sent them. */
function scenario() {
  let ids = 0;
  let codes = 0;
  let tokens = 0;
  const options = {
    ...engineOptions(DEFAULT_CONFIG),
    newRoomCode: () => `${["K7M2QX", "Q7KM3P", "ZZZZZA", "ZZZZZB", "ZZZZZC", "ZZZZZD"][codes++]}`,
    newToken: () => `token-${++tokens}`.padEnd(43, "x"),
  };
  const engine = new Engine(options);
  const edge = new Edge(engine, {
    maxMessageSize: DEFAULT_CONFIG.security.max_message_size,
    newId: () => `00000000-0000-4000-8000-${String(++ids).padStart(12, "0")}`,
  });
  const peers: Peer[] = [];
  let now = T0;
  const connect = () => {
    const peer = new Peer();
    peers.push(peer);
    return { peer, id: edge.connect(peer, { ip: `198.51.100.${peers.length}` }, now) };
  };
  const send = (conn: { id: string }, message: unknown) => {
    now += 1000;
    edge.receive(conn.id, typeof message === "string" ? message : JSON.stringify(message), now);
  };
  const authenticate = (features?: string[], extra: Record<string, unknown> = {}) => {
    const conn = connect();
    send(conn, {
      type: "Authenticate",
      data: { app_id: GAME, sdk_version: "0.9.2", platform: "godot", features, ...extra },
    });
    return conn;
  };

  const mira = authenticate();
  const tobias = authenticate(["presence-events"]);
  authenticate(undefined, { game_data_format: "rkyv" });
  authenticate(undefined, { platform: "unity", sdk_version: "1.12.0" });
  send(mira, { type: "JoinRoom", data: { game_name: GAME, player_name: "Mira", max_players: 2 } });
  const code = String((mira.peer.last("RoomJoined").data as Record<string, Json>).room_code);
  send(tobias, {
    type: "JoinRoom",
    data: { game_name: GAME, room_code: code.toLowerCase(), player_name: "Tobias" },
  });
  const full = connect();
  send(full, { type: "JoinRoom", data: { game_name: GAME, room_code: code, player_name: "Late" } });
  send(full, { type: "LeaveRoom" });
  send(full, { type: "Ping" });
  send(full, "{not json");
  edge.receive(full.id, new Uint8Array([0x80]), now);
  edge.refuseTooLarge(full.id, 70000, now);
  send(mira, {
    type: "ProvideConnectionInfo",
    data: { connection_info: { type: "direct", host: "203.0.113.7", port: 7777 } },
  });
  send(mira, { type: "PlayerReady" });
  send(tobias, { type: "AuthorityRequest", data: { become_authority: true } });
  send(mira, { type: "AuthorityRequest", data: { become_authority: false } });
  send(mira, { type: "AuthorityRequest", data: { become_authority: true } });
  const jun = connect();
  send(jun, {
    type: "JoinAsSpectator",
    data: { game_name: GAME, room_code: code, spectator_name: "Caster Jun" },
  });
  send(jun, { type: "GameData", data: { data: { cheer: true } } });
  const lost = connect();
  send(lost, {
    type: "JoinAsSpectator",
    data: { game_name: GAME, room_code: "QQQQQQ", spectator_name: "Lost" },
  });
  send(tobias, { type: "PlayerReady" });
  send(mira, { type: "GameData", data: { data: { op: "move", x: 12.5 } } });
  const self = String((tobias.peer.last("RoomJoined").data as Record<string, Json>).player_id);
  const miraId = String((mira.peer.last("RoomJoined").data as Record<string, Json>).player_id);
  send(tobias, { type: "GameData", data: { to_player: self, data: { kind: "ice" } } });
  send(tobias, { type: "GameData", data: { to_player: miraId, data: { kind: "answer" } } });
  // Mira drops; Tobias (opted in) is told; she comes back on a new connection.
  edge.disconnect(mira.id, now);
  send(tobias, { type: "GameData", data: { data: { event: "pause" } } });
  const token = String(
    (mira.peer.last("RoomJoined").data as Record<string, Json>).reconnection_token,
  );
  const roomId = String((mira.peer.last("RoomJoined").data as Record<string, Json>).room_id);
  const mira2 = connect();
  send(mira2, {
    type: "Reconnect",
    data: { player_id: miraId, room_id: roomId, auth_token: token },
  });
  const thief = connect();
  send(thief, {
    type: "Reconnect",
    data: { player_id: miraId, room_id: roomId, auth_token: token },
  });
  // Spectators leave, voluntarily and not.
  send(jun, { type: "LeaveSpectator" });
  const gone = connect();
  send(gone, {
    type: "JoinAsSpectator",
    data: { game_name: GAME, room_code: code, spectator_name: "Gone" },
  });
  edge.disconnect(gone.id, now);
  // The authority holder leaves a full room.
  send(mira2, { type: "LeaveRoom" });
  // A room closed with a spectator in it.
  const host = connect();
  send(host, { type: "JoinRoom", data: { game_name: GAME, player_name: "Host" } });
  const code2 = String((host.peer.last("RoomJoined").data as Record<string, Json>).room_code);
  send(host, { type: "PlayerReady" });
  send(connect(), {
    type: "JoinRoom",
    data: { game_name: GAME, room_code: code2, player_name: "Guest" },
  });
  const watcher = connect();
  send(watcher, {
    type: "JoinAsSpectator",
    data: { game_name: GAME, room_code: code2, spectator_name: "Watcher" },
  });
  edge.command({ kind: "room", command: { kind: "close", gameName: GAME, roomCode: code2 } }, now);
  // Held seat expiring, then its token.
  const held = connect();
  send(held, { type: "JoinRoom", data: { game_name: GAME, player_name: "Held" } });
  const heldJoin = held.peer.last("RoomJoined").data as Record<string, Json>;
  edge.disconnect(held.id, now);
  now += 301_000;
  edge.command({ kind: "tick" }, now);
  const late = connect();
  send(late, {
    type: "Reconnect",
    data: {
      player_id: heldJoin.player_id,
      room_id: heldJoin.room_id,
      auth_token: heldJoin.reconnection_token,
    },
  });

  // Rate limits: lobby changes and reconnect attempts past their budgets.
  const fidget = connect();
  send(fidget, { type: "JoinRoom", data: { game_name: GAME, player_name: "Fidget" } });
  // At one instant, so no token refills meanwhile.
  for (let i = 0; i <= DEFAULT_CONFIG.rate_limit.max_lobby_changes; i++) {
    edge.receive(fidget.id, '{"type":"PlayerReady"}', now);
  }
  const guesser = connect();
  const guess = JSON.stringify({
    type: "Reconnect",
    data: { player_id: miraId, room_id: roomId, auth_token: "x".repeat(43) },
  });
  for (let i = 0; i <= DEFAULT_CONFIG.rate_limit.max_reconnect_attempts; i++) {
    edge.receive(guesser.id, guess, now);
  }

  // App authentication on: an unknown app.
  const authEngine = new Engine({
    ...options,
    auth: { required: true, apps: [], timeoutMs: 10_000, enforceSdkGate: false },
  });
  const authEdge = new Edge(authEngine, { maxMessageSize: 65536, newId: () => "auth-conn" });
  const refused = new Peer();
  const refusedId = authEdge.connect(refused, { ip: "203.0.113.9" }, now);
  authEdge.receive(refusedId, JSON.stringify({ type: "Authenticate", data: { app_id: "x" } }), now);
  peers.push(refused);
  const early = new Peer();
  authEdge.receive(authEdge.connect(early, { ip: "203.0.113.10" }, now), new Uint8Array([1]), now);
  peers.push(early);

  return { messages: peers.flatMap((peer) => peer.messages), edge, engine, code };
}

// ---------------------------------------------------------------------------------------------
// Shapes

/** For each path (`RoomJoined.data.current_players[]`): key orders and JSON types seen there. */
type ShapeIndex = Map<string, { keys: Set<string>; types: Set<string> }>;

const kind = (value: unknown) =>
  value === null ? "null" : Array.isArray(value) ? "array" : typeof value;

/** Paths whose contents are the sender's (game data) or checked on their own. */
function opaque(path: string): boolean {
  return /^GameData\.data\.data$/.test(path) || /\.connection_info$/.test(path) ||
    /^Reconnected\.data\.missed_events\[\]$/.test(path);
}

function index(messages: Json[]): ShapeIndex {
  const shapes: ShapeIndex = new Map();
  const visit = (value: Json, path: string) => {
    let entry = shapes.get(path);
    if (!entry) shapes.set(path, entry = { keys: new Set(), types: new Set() });
    entry.types.add(kind(value));
    if (opaque(path)) return;
    if (Array.isArray(value)) { for (const item of value) visit(item, `${path}[]`); }
    else if (value !== null && typeof value === "object") {
      entry.keys.add(Object.keys(value).join(","));
      for (const [key, item] of Object.entries(value)) visit(item, `${path}.${key}`);
    }
  };
  for (const message of messages) {
    const { type, ...rest } = message as Record<string, Json>;
    visit(rest, String(type));
  }
  return shapes;
}

function isSubsequence(part: string[], whole: string[]): boolean {
  let i = 0;
  for (const key of whole) if (key === part[i]) i++;
  return i === part.length;
}

/** Problems of `value` at `path` against what the server sends there. */
function conform(value: unknown, path: string, shapes: ShapeIndex, elided: boolean): string[] {
  const entry = shapes.get(path);
  if (!entry) return [`${path}: the server never sends this field`];
  if (!entry.types.has(kind(value))) {
    return [`${path}: ${kind(value)}, but the server sends ${[...entry.types].join("|")}`];
  }
  if (opaque(path)) return [];
  if (Array.isArray(value)) {
    return value.flatMap((item) => conform(item, `${path}[]`, shapes, elided));
  }
  if (value === null || typeof value !== "object") return [];
  const keys = Object.keys(value);
  const seen = [...entry.keys].map((k) => k === "" ? [] : k.split(","));
  const fits = elided
    ? seen.some((order) => isSubsequence(keys, order))
    : seen.some((order) => order.join(",") === keys.join(","));
  const problems = fits ? [] : [
    `${path}: fields ${keys.join(",")}; the server sends ${
      [...entry.keys].map((k) => `{${k}}`).join(" or ")
    }`,
  ];
  for (const [key, item] of Object.entries(value)) {
    problems.push(...conform(item, `${path}.${key}`, shapes, elided));
  }
  return problems;
}

const SOURCE = (() => {
  const texts: string[] = [];
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(dir)) {
      const path = joinPath(dir, entry.name);
      if (entry.isDirectory) walk(path);
      else if (entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) {
        texts.push(Deno.readTextFileSync(path));
      }
    }
  };
  walk(joinPath(ROOT, "src"));
  return texts;
})();

/** Whether some source file spells `text` (numbers may be interpolated) with `code` nearby. */
function inSource(text: string, code: string | undefined): boolean {
  const pattern = new RegExp(
    text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\d+/g, String.raw`(?:\d+|\$\{[^}]+\})`)
      // `<n>`, `<app_id>`: placeholders for what the source interpolates.
      .replace(/<[a-z_]+>/g, String.raw`\$\{[^}]+\}`)
      // A template literal escapes its backticks.
      .replace(/`/g, "\\\\?`"),
  );
  return SOURCE.some((source) => {
    const match = pattern.exec(source);
    if (!match) return false;
    if (code === undefined) return true;
    const around = source.slice(Math.max(0, match.index - 600), match.index + 600);
    return around.includes(`"${code}"`);
  });
}

/** The server's ids: `crypto.randomUUID()`, lower-case version-4 UUIDs. */
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** The server's reconnection tokens, as {@linkcode newReconnectionToken} makes them. */
const TOKEN_SHAPE = (() => {
  const token = newReconnectionToken();
  return new RegExp(`^[A-Za-z0-9_-]{${token.length}}$`);
})();

/** Value checks the shape cannot make: enums, ids, timestamps, error texts. */
function values(message: Record<string, Json>, seen: Json[]): string[] {
  const problems: string[] = [];
  const walk = (value: Json, key: string) => {
    if (Array.isArray(value)) {
      for (const item of value) walk(item, key === "ready_players" ? "player_id" : key);
    } else if (value !== null && typeof value === "object") {
      if (key === "missed_events" || key === "connection_info" || key === "data#game") return;
      for (const [k, v] of Object.entries(value)) {
        walk(v, message.type === "GameData" && k === "data" && key === "data" ? "data#game" : k);
      }
    } else if (typeof value === "string") {
      if (key === "error_code" && !(ERROR_CODES as readonly string[]).includes(value)) {
        problems.push(`error_code ${value} is not an ErrorCode`);
      }
      if (key === "lobby_state" && !(LOBBY_STATES as readonly string[]).includes(value)) {
        problems.push(`lobby_state ${value}`);
      }
      if (
        /^(id|player_id|room_id|spectator_id|from_player|authority_player)$/.test(key) &&
        !value.includes("…") && !UUID_V4.test(value)
      ) problems.push(`${key} ${value} is not a lower-case UUIDv4 like the server's ids`);
      if (
        key === "reconnection_token" && !value.includes("…") &&
        !TOKEN_SHAPE.test(value)
      ) problems.push(`reconnection_token ${value} is not shaped like the server's tokens`);
      if (key === "connected_at" && !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(value)) {
        problems.push(`connected_at ${value} is not RFC 3339 with ms`);
      }
    }
  };
  walk(message.data ?? null, "data");
  const data = (message.data ?? {}) as Record<string, Json>;
  const textKey = { Error: "message", AuthenticationError: "error" }[String(message.type)] ??
    (/Failed$/.test(String(message.type)) || message.type === "AuthorityResponse" ? "reason" : "");
  const text = data[textKey];
  if (typeof text === "string") {
    const code = typeof data.error_code === "string" ? data.error_code : undefined;
    const produced = seen.some((m) =>
      (m as Record<string, Json>).type === message.type &&
      JSON.stringify(((m as Record<string, Json>).data as Record<string, Json>)[textKey]) ===
        JSON.stringify(text) &&
      ((m as Record<string, Json>).data as Record<string, Json>).error_code === data.error_code
    );
    if (!produced && !inSource(text, code)) {
      problems.push(`${message.type} "${text}" (${code}) is not a text the server sends`);
    }
  }
  if (
    (message.type === "RoomJoined" || message.type === "Reconnected") &&
    Array.isArray(data.current_players) && Array.isArray(data.ready_players)
  ) problems.push(...snapshotProblems(data));
  if (message.type === "SpectatorJoined" && Array.isArray(data.current_spectators)) {
    const ids = data.current_spectators.map((s) => (s as Record<string, Json>).id);
    if (!ids.includes(data.spectator_id)) {
      problems.push("the spectator is not in current_spectators");
    }
  }
  if (message.type === "AuthorityResponse" && data.granted === true) {
    if (data.reason !== null || "error_code" in data) problems.push("a grant has no reason");
  }
  if (
    message.type === "LobbyStateChanged" && (data.lobby_state === "finalized") !== data.all_ready
  ) {
    problems.push("all_ready must be true iff lobby_state is finalized");
  }
  return problems;
}

/**
 * A room snapshot's internal consistency (docs/spec/PROTOCOL.md §6.4, §7.4, §7.5): the recipient is
 * seated, the ready set is the seats marked ready, the lobby state follows from seats, size and
 * readiness, and the recipient's authority flag is its seat's.
 */
function snapshotProblems(data: Record<string, Json>): string[] {
  const problems: string[] = [];
  const seats = data.current_players as Record<string, Json>[];
  const ready = data.ready_players as string[];
  const me = seats.find((seat) => seat.id === data.player_id);
  if (!me) return ["player_id is not one of current_players"];
  if (me.is_authority !== data.is_authority) problems.push("is_authority is not the seat's");
  const marked = seats.filter((seat) => seat.is_ready).map((seat) => seat.id);
  if (JSON.stringify([...marked].sort()) !== JSON.stringify([...ready].sort())) {
    problems.push("ready_players are not the seats marked is_ready");
  }
  if (seats.filter((seat) => seat.is_authority).length > (data.supports_authority ? 1 : 0)) {
    problems.push("more authorities than the room allows");
  }
  const max = Number(data.max_players);
  const state = seats.length < max || max === 1
    ? "waiting"
    : ready.length === seats.length
    ? "finalized"
    : "lobby";
  if (state !== data.lobby_state) {
    problems.push(`lobby_state ${data.lobby_state}, should be ${state}`);
  }
  return problems;
}

/** Problems of a `ConnectionInfo` value: it must be the canonical form the server re-emits. */
function connectionInfoProblems(value: unknown): string[] {
  const parsed = ConnectionInfo.safeParse(value);
  if (!parsed.success) return [`ConnectionInfo refused: ${parsed.error.issues[0]?.message}`];
  const canonical = JSON.stringify(parsed.data);
  return canonical === JSON.stringify(value)
    ? []
    : [`not canonical; the server sends ${canonical}`];
}

/** Problems of a client message example. */
function clientProblems(example: Example): string[] {
  const value = structuredClone(example.value) as Record<string, Json>;
  const problems: string[] = [];
  const binding = value.token_binding;
  if (binding !== undefined) {
    delete value.token_binding;
    const keys = Object.keys(binding as object);
    if (!isSubsequence(keys, ["scheme", "signature", "fingerprint"])) {
      problems.push(`token_binding fields ${keys}`);
    }
    if ((binding as Record<string, Json>).scheme !== "sec_websocket_key_sha256") {
      problems.push("token_binding.scheme");
    }
  }
  const decoded = decodeClientMessage(JSON.stringify(value));
  if (!decoded.ok) return [...problems, `refused by the decoder: ${decoded.detail}`];
  const data = value.data;
  if (data !== null && typeof data === "object" && !Array.isArray(data)) {
    const kept = (decoded.message as { data?: object }).data ?? {};
    for (const key of Object.keys(data)) {
      if (!Object.hasOwn(kept, key)) {
        problems.push(`data.${key} is not a field: the decoder drops it`);
      }
    }
    if ("connection_info" in data) problems.push(...connectionInfoProblems(data.connection_info));
    for (const [key, item] of Object.entries(data)) {
      if (typeof item !== "string" || item.includes("…")) continue;
      if (/^(player_id|room_id|to_player)$/.test(key) && !UUID_V4.test(item)) {
        problems.push(`${key} ${item} is not a lower-case UUIDv4 like the server's ids`);
      }
      if (key === "auth_token" && !TOKEN_SHAPE.test(item)) {
        problems.push(`auth_token ${item} is not shaped like the server's tokens`);
      }
    }
  }
  return problems;
}

function isClient(example: Example): boolean {
  const value = example.value as Record<string, Json>;
  if (example.direction) return example.direction === "client";
  if (value.type === "GameData") {
    return !Object.hasOwn((value.data ?? {}) as object, "from_player");
  }
  return CLIENT_TYPES.has(String(value.type));
}

// ---------------------------------------------------------------------------------------------
// Tests

const EXAMPLES = allExamples();
const SCENARIO = scenario();
const SHAPES = index(SCENARIO.messages);

Deno.test("doc examples: the extraction finds the documents' examples", () => {
  const messages = EXAMPLES.filter((e) => typeof (e.value as { type?: unknown }).type === "string");
  ok(messages.length >= 120, `only ${messages.length} message examples found`);
  for (const file of DOCS) ok(EXAMPLES.some((e) => e.where.startsWith(`${file}:`)), file);
});

Deno.test("doc examples: the scenario produced every server message type", () => {
  // Its only failed join is the one into a full room.
  deepEqual(
    SCENARIO.messages.filter((m) => m.type === "RoomJoinFailed").map((m) =>
      (m.data as Record<string, Json>).error_code
    ),
    ["ROOM_FULL"],
  );
  const types = new Set(SCENARIO.messages.map((m) => (m as Record<string, Json>).type));
  deepEqual(
    [
      "Authenticated",
      "ProtocolInfo",
      "AuthenticationError",
      "RoomJoined",
      "RoomJoinFailed",
      "RoomLeft",
      "PlayerJoined",
      "PlayerLeft",
      "GameData",
      "AuthorityChanged",
      "AuthorityResponse",
      "LobbyStateChanged",
      "GameStarting",
      "Pong",
      "Reconnected",
      "ReconnectionFailed",
      "PlayerReconnected",
      "PlayerDisconnected",
      "SpectatorJoined",
      "SpectatorJoinFailed",
      "SpectatorLeft",
      "NewSpectatorJoined",
      "SpectatorDisconnected",
      "Error",
    ].filter((type) => !types.has(type)),
    [],
  );
});

Deno.test("doc examples: every client message decodes with the server's decoder, every field kept", () => {
  const problems: string[] = [];
  for (const example of EXAMPLES) {
    const value = example.value as Record<string, Json>;
    if (typeof value.type !== "string" || CONNECTION_INFO_TYPES.has(value.type)) continue;
    if (!isClient(example)) continue;
    for (const problem of clientProblems(example)) problems.push(`${example.where}: ${problem}`);
  }
  if (problems.length) console.error(problems.join("\n"));
  deepEqual(problems, []);
});

Deno.test("doc examples: every server message has the fields, order and types the server sends", () => {
  const problems: string[] = [];
  const check = (message: Record<string, Json>, where: string, elided: boolean) => {
    const { type, ...rest } = message;
    for (const problem of conform(rest, String(type), SHAPES, elided)) {
      problems.push(`${where}: ${problem}`);
    }
    for (const problem of values(message, SCENARIO.messages)) {
      problems.push(`${where}: ${problem}`);
    }
    const data = rest.data as Record<string, Json> | undefined;
    for (const event of (type === "Reconnected" ? data?.missed_events ?? [] : []) as Json[]) {
      check(event as Record<string, Json>, `${where} (missed event)`, elided);
    }
    for (const player of [...(data?.current_players ?? []) as Json[], data?.player ?? null]) {
      const info = (player as Record<string, Json> | null)?.connection_info;
      if (info !== undefined) {
        for (const p of connectionInfoProblems(info)) problems.push(`${where}: ${p}`);
      }
    }
  };
  for (const example of EXAMPLES) {
    const value = example.value as Record<string, Json>;
    if (typeof value.type !== "string" || CONNECTION_INFO_TYPES.has(value.type)) continue;
    if (isClient(example)) continue;
    check(value, example.where, example.elided);
  }
  if (problems.length) console.error(problems.join("\n"));
  deepEqual(problems, []);
});

Deno.test("doc examples: ConnectionInfo examples are in the canonical form the server re-emits", () => {
  const problems: string[] = [];
  for (const example of EXAMPLES) {
    const value = example.value as Record<string, Json>;
    if (!CONNECTION_INFO_TYPES.has(String(value.type))) continue;
    for (const problem of connectionInfoProblems(value)) {
      problems.push(`${example.where}: ${problem}`);
    }
  }
  if (problems.length) console.error(problems.join("\n"));
  deepEqual(problems, []);
});

Deno.test("doc examples: ProtocolInfo and Authenticated examples are what the default configuration sends", () => {
  const problems: string[] = [];
  for (const example of EXAMPLES) {
    const value = example.value as Record<string, Json>;
    if (value.type === "Authenticated" && !example.elided) {
      const data = value.data as Record<string, Json>;
      const limits = data.rate_limits as Record<string, Json>;
      const expected = JSON.stringify(rateLimitInfo(Number(limits.per_minute)));
      if (JSON.stringify(limits) !== expected) {
        problems.push(
          `${example.where}: rate_limits; for its per_minute the server sends ${expected}`,
        );
      }
      // Without app authentication the app is "default", unlimited.
      if (data.app_name === "default") {
        const { features: _, ...plain } = data;
        const real = SCENARIO.messages.find((m) =>
          m.type === "Authenticated" && !("features" in (m.data as object))
        );
        deepEqual(JSON.stringify(real?.data), JSON.stringify(plain), example.where);
      }
    }
    if (value.type !== "ProtocolInfo" || example.elided) continue;
    // The whole answer the default configuration gives that platform and SDK version.
    const data = value.data as Record<string, Json>;
    const received: string[] = [];
    const edge = new Edge(new Engine(engineOptions(DEFAULT_CONFIG)), {
      maxMessageSize: 65536,
      newId: () => "00000000-0000-4000-8000-000000000001",
    });
    const id = edge.connect(
      {
        send: (frame) => void received.push(String(frame)),
        close: () => {},
      },
      { ip: "198.51.100.7" },
      T0,
    );
    const authenticate = {
      type: "Authenticate",
      data: { app_id: GAME, sdk_version: data.sdk_version, platform: data.platform },
    };
    edge.receive(id, JSON.stringify(authenticate), T0);
    const real = received.find((frame) => frame.startsWith('{"type":"ProtocolInfo"'));
    if (real !== JSON.stringify(value)) {
      problems.push(`${example.where}: the default configuration sends ${real}`);
    }
  }
  if (problems.length) console.error(problems.join("\n"));
  deepEqual(problems, []);
});

// ---------------------------------------------------------------------------------------------
// HTTP bodies

function keysOf(value: unknown): string[] {
  return Object.keys(value as object);
}

/** The E5 route over the scenario's directory. */
function rooms(publicRoomListing: boolean) {
  const routes = roomRoutes({
    directory: SCENARIO.edge.directory,
    buckets: new MemoryTokenBuckets(
      new RateLimits({ maxRoomCreations: 5, maxJoinAttempts: 100, windowMs: 60_000 }),
    ),
    publicRoomListing,
    roomCodeLength: 6,
    maxGameNameLength: 64,
    now: () => T0,
  });
  return async (path: string) => {
    const url = new URL(path, "http://localhost");
    const response = (await routes(new Request(url), url.pathname, "203.0.113.1"))!;
    return { status: response.status, body: await response.json() };
  };
}

Deno.test("doc examples: E5 and E6 bodies have the real routes' fields in their order", async () => {
  // A room with a seat (the scenario's first room kept Tobias; the second was closed).
  const fresh = scenario();
  const edgeRooms = fresh.engine.list(GAME, 10);
  ok(edgeRooms.length > 0);
  const get = rooms(true);
  const e5 = await get(`/v2/rooms/${GAME}/${edgeRooms[0]!.room_code.toLowerCase()}`);
  equal(e5.status, 200);
  const e6 = await get(`/v2/rooms?game_name=${GAME}`);
  equal(e6.status, 200);
  const examples = [...jsonBlocks("docs/spec/EXTENSIONS.md"), ...jsonBlocks("docs/spec/SERVER.md")]
    .map((b) => ({ where: b.line, value: lenientParse(b.text).value as Record<string, Json> }))
    .filter((e) => typeof e.value.type !== "string");
  const summaries = examples.filter((e) => "players" in e.value && !("rooms" in e.value));
  equal(summaries.length, 2, "E5 and docs/spec/SERVER.md §1.10");
  for (const summary of summaries) {
    deepEqual(keysOf(summary.value), keysOf(e5.body), `line ${summary.where}`);
  }
  const listing = examples.find((e) => "rooms" in e.value)?.value;
  deepEqual(keysOf(listing), keysOf(e6.body));
  deepEqual(keysOf((listing!.rooms as Json[])[0]), keysOf(e6.body.rooms[0]));
  // The inline error bodies of E5 and E6.
  const missing = await get(`/v2/rooms/${GAME}/QQQQQQ`);
  deepEqual(missing, {
    status: 404,
    body: { message: "Room not found", error_code: "ROOM_NOT_FOUND" },
  });
  const noGame = await get(`/v2/rooms`);
  deepEqual(noGame, {
    status: 400,
    body: { message: "game_name is required", error_code: "INVALID_GAME_NAME" },
  });
});

/** The `{"a":…,"b":…}` keys listed in a prose body (E8) or a commented `curl` answer (README). */
function proseKeys(text: string): string[] {
  return [...text.matchAll(/"([a-z_]+)":/g)].map((m) => m[1]!);
}

Deno.test("doc examples: the /v2/status bodies of E8 and README are the real body's fields", () => {
  const real = statusBody(SCENARIO.engine, SCENARIO.edge, "local", T0, false);
  const e8 = /Body: `(\{[^`]*\})`/.exec(read("docs/spec/EXTENSIONS.md"))![1]!;
  deepEqual(proseKeys(e8), keysOf(real));
  const readme = read("README.md");
  const at = readme.indexOf("curl -s http://127.0.0.1:3536/v2/status");
  const comment = readme.slice(at, readme.indexOf("```", at)).split("\n").filter((l) =>
    l.startsWith("#")
  ).join(" ");
  deepEqual(proseKeys(comment), keysOf(real));
});

Deno.test("doc examples: E12's operator API answers have the fields the text lists", async () => {
  const fresh = scenario();
  const feed = new OperatorFeed(
    {
      connections: () => fresh.edge.size,
      stats: () => fresh.engine.stats(),
      maintenance: () => false,
    },
    {},
    T0,
  );
  feed.tick(T0 + 1000);
  const token = "operator-token-for-tests-0123456789abcdef";
  const routes = adminRoutes({
    token,
    directory: fresh.edge.directory,
    command: (command, now) => fresh.edge.command({ kind: "room", command }, now)!,
    setMaintenance: () => {},
    maintenance: () => false,
    feed,
    status: () => ({}),
    roomCodeLength: 6,
    maxGameNameLength: 64,
    now: () => T0 + 10_000,
  });
  const get = async (path: string) => {
    const response = await routes.handle(
      new Request(`http://127.0.0.1${path}`, { headers: { authorization: `Bearer ${token}` } }),
      path.split("?")[0]!,
      "127.0.0.1",
    )!;
    equal(response.status, 200, path);
    // deno-lint-ignore no-explicit-any
    return await response.json() as any;
  };
  const text = read("docs/spec/EXTENSIONS.md");
  const braces = (after: string) => {
    const at = text.indexOf(after);
    ok(at >= 0, after);
    const start = text.indexOf("{", at);
    return text.slice(start + 1, text.indexOf("}", start)).replace(/\s+/g, " ").split(",")
      .map((s) => s.trim().replace(/\?$/, "").replace(/:.*$/, ""));
  };
  const list = await get(`/admin/api/rooms`);
  deepEqual(braces("The answer is `"), keysOf(list));
  const games = await get(`/admin/api/games`);
  const gamesAt = text.indexOf("`/games` answers `{");
  const gamesText = text.slice(gamesAt + 18, text.indexOf("`", gamesAt + 18)).replace(
    /\[[^\]]*\]/,
    "",
  );
  deepEqual(proseKeys(gamesText.replace(/(\w+)\??(:|,|\})/g, '"$1":')), [
    ...keysOf(games),
    "other",
  ]);
  deepEqual(
    text.slice(text.indexOf("{games: [{") + 10, text.indexOf("}]", text.indexOf("{games: [{")))
      .split(",").map((s) => s.trim()),
    keysOf(games.games[0]),
  );
  const overview = await get(`/admin/api/overview`);
  ok(overview.sample, "overview has a sample");
  const sampleAt = text.indexOf("one of the history's `samples`) is `{");
  const sampleKeys = text.slice(text.indexOf("{", sampleAt) + 1, text.indexOf("}", sampleAt))
    .replace(/\s+/g, " ").split(",").map((s) => s.trim());
  deepEqual(sampleKeys, keysOf(overview.sample));
  feed.tick(T0 + 6000);
  const history = await get(`/admin/api/history`);
  ok(history.samples.length > 0, "the history has a sample");
  deepEqual(sampleKeys, keysOf(history.samples[0]));
  deepEqual(overview.games, games.games, "the overview has the same list as /games");
  // README: a room in a listing is the lookup summary plus these, and so is the detail.
  const readme = read("README.md");
  const at = readme.indexOf("A room in a listing has the lookup summary");
  const paragraph = readme.slice(at, readme.indexOf("and so does one room's detail", at));
  const named = [...paragraph.replace(/\([^)]*\)/g, "").matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!);
  const room = list.rooms[0];
  ok(room, "the listing has a room");
  const detail = await get(`/admin/api/rooms/${room.game_name}/${room.room_code}`);
  const summaryKeys = keysOf(
    (await rooms(true)(`/v2/rooms/${room.game_name}/${room.room_code}`)).body,
  );
  deepEqual(keysOf(room), [...summaryKeys, ...named], "README's fields of a listed room");
  deepEqual(keysOf(detail), [...summaryKeys, ...named], "README's fields of a room's detail");
  const memberKeys = /`members`\s*\(([^)]*)\)/.exec(paragraph)![1]!.match(/[a-z_]+/g)!;
  deepEqual(memberKeys, keysOf(room.members[0]));
  deepEqual(memberKeys, keysOf(detail.members[0]));
  // README's maintenance call: `PUT -d '{"enabled":true}'`, and GET answers the same shape.
  const body = /-X PUT -d '(\{[^']*\})' [^ ]*\/admin\/api\/maintenance/.exec(readme)![1]!;
  const put = await routes.handle(
    new Request("http://127.0.0.1/admin/api/maintenance", {
      method: "PUT",
      body,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    }),
    "/admin/api/maintenance",
    "127.0.0.1",
  )!;
  equal(put.status, 200, await put.clone().text());
  deepEqual(keysOf(await get("/admin/api/maintenance")), keysOf(JSON.parse(body)));
});

Deno.test("doc examples: a client message shown with its refusal is refused so by the server", () => {
  // In a block, a client message directly followed by an `Error` (or `…Failed`) is the
  // refusal the text describes: the scenario must have produced exactly that refusal.
  const problems: string[] = [];
  let pairs = 0;
  EXAMPLES.forEach((example, i) => {
    const next = EXAMPLES[i + 1];
    if (!next || !isClient(example) || isClient(next)) return;
    const [file, line] = example.where.split(":");
    if (next.where !== `${file}:${Number(line) + 1}`) return;
    const answer = next.value as Record<string, Json>;
    if (answer.type !== "Error" && !/Failed$/.test(String(answer.type))) return;
    pairs++;
    const produced = SCENARIO.messages.some((m) => JSON.stringify(m) === JSON.stringify(answer));
    if (!produced) problems.push(`${next.where}: the server never answered ${next.text}`);
  });
  ok(pairs >= 2, `only ${pairs} refusals found`);
  if (problems.length) console.error(problems.join("\n"));
  deepEqual(problems, []);
});

/** Whether the scenario produced an error `text` (placeholders `<n>` match anything) with `code`. */
function produced(text: string, code: string): boolean {
  const pattern = new RegExp(
    `^${
      text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/<[a-z_]+>/g, ".+?").replace(
        /\d+/g,
        "\\d+",
      )
    }$`,
  );
  return SCENARIO.messages.some((message) => {
    const data = (message as Record<string, Json>).data as Record<string, Json> | undefined;
    const said = data?.message ?? data?.reason ?? data?.error;
    return data?.error_code === code && typeof said === "string" && pattern.test(said);
  });
}

Deno.test("doc examples: inline error bodies are texts the server sends with that code", async () => {
  // The lookup's 429 (E5), whose text comes from a helper away from its code.
  const routes = roomRoutes({
    directory: SCENARIO.edge.directory,
    buckets: new MemoryTokenBuckets(
      new RateLimits({ maxRoomCreations: 1, maxJoinAttempts: 1, windowMs: 60_000 }),
    ),
    publicRoomListing: false,
    roomCodeLength: 6,
    maxGameNameLength: 64,
    now: () => T0,
  });
  const answers: string[] = [];
  for (let i = 0; i < 2; i++) {
    const url = new URL(`http://localhost/v2/rooms/${GAME}/QQQQQQ`);
    answers.push(await (await routes(new Request(url), url.pathname, "203.0.113.1"))!.text());
  }
  const digitless = (text: string) => text.replace(/\d+/g, "7");
  const problems: string[] = [];
  let bodies = 0;
  for (const file of [...DOCS, "SECURITY.md"]) {
    read(file).split("\n").forEach((line, index) => {
      for (const span of line.matchAll(/`(\{"(?:message|error|reason)":"[^`…]*\})`/g)) {
        // `<s>`, `<current>`: placeholders for numbers.
        const value = JSON.parse(span[1]!.replace(/<[a-z]+>/g, "7")) as Record<string, Json>;
        const text = String(value.message ?? value.error ?? value.reason);
        const code = value.error_code;
        bodies++;
        if (!(ERROR_CODES as readonly string[]).includes(String(code))) {
          problems.push(`${file}:${index + 1}: error_code ${code}`);
        } else if (
          !inSource(text, String(code)) &&
          !answers.some((answer) => digitless(answer) === digitless(JSON.stringify(value)))
        ) {
          problems.push(`${file}:${index + 1}: "${text}" (${code}) is not a text the server sends`);
        }
      }
    });
  }
  // Prose notation: `Error{message:"…", error_code:"…"}`, `RoomJoinFailed{reason:"…", …}`.
  for (const file of [...DOCS, "SECURITY.md"]) {
    const content = read(file);
    const flat = content.replace(/\n\s*/g, " ");
    for (
      const match of flat.matchAll(
        /\b(message|reason|error): ?"([^"]+)", ?error_code: ?"([A-Z_]+)"/g,
      )
    ) {
      const [, , text, code] = match;
      bodies++;
      if (!(ERROR_CODES as readonly string[]).includes(code!)) {
        problems.push(`${file}: error_code ${code}`);
      } else if (!inSource(text!, code) && !produced(text!, code!)) {
        problems.push(`${file}: "${text}" (${code}) is not a text the server sends`);
      }
    }
  }
  ok(bodies >= 40, `only ${bodies} inline bodies`);
  if (problems.length) console.error(problems.join("\n"));
  deepEqual(problems, []);
});

// ---------------------------------------------------------------------------------------------
// docs/protocol.md "Example conversations", played for real

/** A peer keeping the exact frames it was sent. */
class FramePeer {
  readonly frames: string[] = [];
  #cursor = 0;
  send(frame: string | Uint8Array) {
    if (typeof frame === "string") this.frames.push(frame);
    return undefined;
  }
  close() {}
  /** Asserts a frame equal to `text` (compacted) arrives after the last one expected. */
  expect(text: string, where: string) {
    const frame = JSON.stringify(JSON.parse(text));
    const at = this.frames.indexOf(frame, this.#cursor);
    ok(
      at >= 0,
      `${where}: expected ${frame}\nreceived since the last expected:\n${
        this.frames.slice(this.#cursor).join("\n")
      }`,
    );
    this.#cursor = at + 1;
  }
  /** Asserts nothing arrived since the last frame expected. */
  quiet(where: string) {
    deepEqual(this.frames.slice(this.#cursor), [], where);
  }
}

/**
 * Plays the conversations of docs/protocol.md "Example conversations" through a real edge with
 * the documents' ids, code, tokens and clock, and checks every line each client is shown to
 * receive is exactly the frame it receives. `comeBack`: Mira reconnects (else her seat expires).
 */
function playConversations(comeBack: boolean) {
  const text = read("docs/protocol.md");
  const from = text.slice(0, text.indexOf("## Example conversations")).split("\n").length;
  const to = text.slice(0, text.indexOf("## Servers with several instances")).split("\n").length;
  const lines = jsonBlocks("docs/protocol.md").filter((b) => b.line > from && b.line < to);
  let next = 0;
  /** The next example line of the section, checked to be of `type`. */
  const line = (type: string) => {
    const example = lines[next++]!;
    equal(JSON.parse(example.text).type, type, `docs/protocol.md:${example.line}`);
    return { text: example.text, where: `docs/protocol.md:${example.line}` };
  };
  const roomsSection = jsonBlocks("docs/protocol.md").find((b) => b.text.includes('"RoomJoined"'))!;

  const MIRA = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d";
  const TOBIAS = "0b9a8c7d-6e5f-4a3b-9c2d-1e0f2a3b4c5d";
  const JUN = "d4e5f6a7-b8c9-4dae-8f01-23456789abcd";
  const tokens = [
    "RBaWMM0mEVzsAKyEQWFFbYnb-mPkadvU2tghGSlt4TM",
    "mmq0sPAduaY44rQe2vNYQNxEhLvgxESlnmyLgzeh3Sw",
    "axQJ-NVKE6AoGsuECHefVyT6zzuji6mqM3PP4laDjWc",
  ];
  const connIds = [MIRA, TOBIAS, JUN, "00000000-0000-4000-8000-00000000aaaa"];
  const engine = new Engine({
    ...engineOptions(DEFAULT_CONFIG),
    newId: () => "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
    newRoomCode: () => "K7M2QX",
    newToken: () => tokens.shift()!,
  });
  const edge = new Edge(engine, { maxMessageSize: 65536, newId: () => connIds.shift()! });
  const at = (time: string) => Date.parse(`2026-05-14T${time}Z`);
  const connect = (time: string) => {
    const peer = new FramePeer();
    return { peer, id: edge.connect(peer, { ip: "198.51.100.7" }, at(time)) };
  };
  const send = (conn: { id: string }, frame: string, time: string) =>
    edge.receive(conn.id, frame, at(time));

  // Create, join, ready, start.
  const mira = connect("19:02:10.000");
  const tobias = connect("19:02:18.000");
  send(mira, line("JoinRoom").text, "19:02:11.204");
  mira.peer.expect(roomsSection.text, `docs/protocol.md:${roomsSection.line}`);
  send(tobias, line("JoinRoom").text, "19:02:19.530");
  for (const type of ["RoomJoined", "LobbyStateChanged"]) {
    const { text, where } = line(type);
    tobias.peer.expect(text, where);
  }
  for (const type of ["PlayerJoined", "LobbyStateChanged"]) {
    const { text, where } = line(type);
    mira.peer.expect(text, where);
  }
  send(mira, line("ProvideConnectionInfo").text, "19:02:25.000");
  send(mira, line("PlayerReady").text, "19:02:26.000");
  const ready = line("LobbyStateChanged");
  mira.peer.expect(ready.text, ready.where);
  tobias.peer.expect(ready.text, ready.where);
  send(tobias, '{"type":"PlayerReady"}', "19:02:30.000");
  // The authority section's `finalized` change and `GameStarting` (docs/protocol.md "Lobby and readiness").
  const lobby = jsonBlocks("docs/protocol.md").filter((b) =>
    b.line < from && (b.text.includes('"finalized"') || b.text.includes('"GameStarting"')) &&
    !b.text.includes('"SpectatorJoined"') && !b.text.includes('"Reconnected"')
  );
  equal(lobby.length, 2);
  for (const peer of [mira.peer, tobias.peer]) {
    for (const b of lobby) peer.expect(b.text, `docs/protocol.md:${b.line}`);
  }

  // Targeted WebRTC signalling.
  send(mira, line("GameData").text, "19:02:40.000");
  const offer = line("GameData");
  tobias.peer.expect(offer.text, offer.where);
  mira.peer.quiet("the sender gets no echo");
  const answerLine = line("GameData");
  send(tobias, answerLine.text, "19:02:41.000");
  const iceLine = line("GameData");
  send(tobias, iceLine.text, "19:02:42.000");
  for (const sent of [answerLine, iceLine]) {
    const received = JSON.parse(sent.text);
    mira.peer.expect(
      JSON.stringify({
        type: "GameData",
        data: { from_player: TOBIAS, data: received.data.data },
      }),
      sent.where,
    );
  }
  send(tobias, line("GameData").text, "19:02:43.000");
  const self = line("Error");
  tobias.peer.expect(self.text, self.where);
  mira.peer.quiet(`${self.where}: delivered to nobody`);

  // A spectator.
  const jun = connect("19:03:01.000");
  send(jun, line("JoinAsSpectator").text, "19:03:02.118");
  const joined = line("SpectatorJoined");
  jun.peer.expect(joined.text, joined.where);
  const arrival = line("NewSpectatorJoined");
  mira.peer.expect(arrival.text, arrival.where);
  tobias.peer.expect(arrival.text, arrival.where);
  send(mira, line("GameData").text, "19:03:10.000");
  const lap = line("GameData");
  tobias.peer.expect(lap.text, lap.where);
  jun.peer.expect(lap.text, lap.where);
  send(jun, line("GameData").text, "19:03:11.000");
  const refused = line("Error");
  jun.peer.expect(refused.text, refused.where);
  send(jun, '{"type":"LeaveSpectator"}', "19:03:12.000");
  const left = line("SpectatorLeft");
  jun.peer.expect(left.text, left.where);
  const gone = line("SpectatorDisconnected");
  mira.peer.expect(gone.text, gone.where);
  tobias.peer.expect(gone.text, gone.where);

  // Dropping out and coming back.
  edge.disconnect(mira.id, at("19:10:00.000"));
  tobias.peer.quiet("Tobias is not told");
  send(tobias, line("GameData").text, "19:10:05.000");
  const reconnect = line("Reconnect");
  const reconnected = line("Reconnected");
  const returned = line("PlayerReconnected");
  if (comeBack) {
    const mira2 = connect("19:10:30.000");
    send(mira2, reconnect.text, "19:10:31.000");
    mira2.peer.expect(reconnected.text, reconnected.where);
    tobias.peer.expect(returned.text, returned.where);
  } else {
    edge.command({ kind: "tick" }, at("19:15:01.000"));
    for (const type of ["PlayerLeft", "AuthorityChanged", "LobbyStateChanged"]) {
      const { text, where } = line(type);
      tobias.peer.expect(text, where);
    }
    equal(next, lines.length, "every line of the section was played");
  }
}

Deno.test("doc examples: docs/protocol.md's example conversations happen as shown", () => {
  playConversations(true);
});

Deno.test("doc examples: docs/protocol.md's expiry alternative happens as shown", () => {
  playConversations(false);
});

Deno.test("doc examples: token-binding examples pass the server's proof check when signed", () => {
  const secret = sessionSecret("dGhlIHNhbXBsZSBub25jZQ==")!;
  let found = 0;
  for (const example of EXAMPLES) {
    const value = example.value as Record<string, Json>;
    if (value.token_binding === undefined) continue;
    found++;
    const proof = value.token_binding as Record<string, Json>;
    // As written, only the (made-up) signature is wrong.
    const asWritten = verifyProof(example.text, secret, { requireFingerprint: false });
    deepEqual(
      asWritten.ok ? "accepted" : asWritten.message,
      "Invalid token binding signature",
      example.where,
    );
    // Signed for real (the fingerprint, when shown, is appended to the canonical text).
    const { token_binding: _, ...message } = value;
    const fingerprint = typeof proof.fingerprint === "string" ? proof.fingerprint : "";
    const signature = createHmac("sha256", secret)
      .update(canonicalJson(JSON.stringify(message)) + fingerprint, "utf8").digest("base64");
    const signed = JSON.stringify({ ...value, token_binding: { ...proof, signature } });
    const verdict = verifyProof(signed, secret, { requireFingerprint: false });
    ok(verdict.ok, example.where);
    ok(decodeClientMessage(verdict.text).ok, example.where);
  }
  equal(found, 2, "docs/protocol.md and docs/spec/PROTOCOL.md Appendix A");
});

Deno.test("doc examples: docs/protocol.md's binary game data envelope and its JSON conversion are what recipients get", () => {
  const text = read("docs/protocol.md");
  const start = text.indexOf("map of 3");
  const dump = text.slice(text.lastIndexOf("```text", start), text.indexOf("```\n", start));
  // The hex bytes of each line, before the comment column; `…` ends the dump.
  const shown: number[] = [];
  for (const line of dump.split("\n").slice(1)) {
    const bytes = /^\s*((?:[0-9a-f]{2} )*(?:[0-9a-f]{2}|…))/.exec(line)?.[1] ?? "";
    for (const token of bytes.split(" ")) {
      if (/^[0-9a-f]{2}$/.test(token)) shown.push(parseInt(token, 16));
    }
  }
  ok(shown.length > 60, `only ${shown.length} bytes read`);
  const MIRA = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d";
  const ids = [
    MIRA,
    "00000000-0000-4000-8000-0000000000b1",
    "00000000-0000-4000-8000-0000000000b2",
  ];
  const engine = new Engine(engineOptions(DEFAULT_CONFIG));
  const edge = new Edge(engine, { maxMessageSize: 65536, newId: () => ids.shift()! });
  const frames = new Map<string, (string | Uint8Array)[]>();
  const connect = (format: string) => {
    const received: (string | Uint8Array)[] = [];
    const id = edge.connect({ send: (f) => void received.push(f), close: () => {} }, {
      ip: "198.51.100.7",
    }, T0);
    frames.set(id, received);
    edge.receive(
      id,
      JSON.stringify({ type: "Authenticate", data: { app_id: GAME, game_data_format: format } }),
      T0,
    );
    edge.receive(
      id,
      JSON.stringify({
        type: "JoinRoom",
        data: { game_name: GAME, room_code: "K7M2QX", player_name: `p${frames.size}` },
      }),
      T0,
    );
    return id;
  };
  const mira = connect("message_pack");
  const binary = connect("message_pack");
  const json = connect("json");
  // {"op":"move","x":12.5} in MessagePack: fixmap 2, fixstr "op", fixstr "move", fixstr "x", float 64.
  const payload = new Uint8Array([
    0x82,
    0xa2,
    0x6f,
    0x70,
    0xa4,
    0x6d,
    0x6f,
    0x76,
    0x65,
    0xa1,
    0x78,
    0xcb,
    0x40,
    0x29,
    0x00,
    0x00,
    0x00,
    0x00,
    0x00,
    0x00,
  ]);
  equal(payload.length, 20);
  edge.receive(mira, payload, T0);
  const envelope = frames.get(binary)!.at(-1);
  ok(envelope instanceof Uint8Array, "the message_pack recipient gets a binary frame");
  deepEqual([...envelope.slice(0, shown.length)], shown);
  deepEqual([...envelope.slice(envelope.length - payload.length)], [...payload]);
  const converted = jsonBlocks("docs/protocol.md").find((b) =>
    b.line > text.slice(0, start).split("\n").length
  )!;
  equal(frames.get(json)!.at(-1), JSON.stringify(JSON.parse(converted.text)));
});

/**
 * Whether `doc` (an example, `…` where it leaves something out) says nothing `real` contradicts:
 * a shortened string is a prefix, an elided example may name fewer fields and list fewer items.
 */
function matches(doc: Json, real: Json, elided: boolean): boolean {
  if (typeof doc === "string" && doc.includes("…")) {
    return typeof real === "string" && real.startsWith(doc.slice(0, doc.indexOf("…")));
  }
  if (Array.isArray(doc)) {
    if (!Array.isArray(real)) return false;
    if (elided ? doc.length > real.length : doc.length !== real.length) return false;
    return doc.every((item, i) => matches(item, real[i]!, elided));
  }
  if (doc !== null && typeof doc === "object") {
    if (real === null || typeof real !== "object" || Array.isArray(real)) return false;
    const keys = Object.keys(doc);
    if (!elided && keys.join(",") !== Object.keys(real).join(",")) return false;
    return keys.every((key) => Object.hasOwn(real, key) && matches(doc[key]!, real[key]!, elided));
  }
  return doc === real;
}

Deno.test("doc examples: README's short session happens as shown", () => {
  const readme = read("README.md");
  const at = readme.indexOf("## A short session");
  const block = readme.slice(
    readme.indexOf("```text", at),
    readme.indexOf("```\n", readme.indexOf("```text", at) + 7),
  );
  const ids = ["3f2b8c1e-9a47-4d0b-8e21-6c5f0a9d7b34", "b71d04a9-2e6c-4f83-a5d2-09e8c3f61a57"];
  const engine = new Engine({ ...engineOptions(DEFAULT_CONFIG), newRoomCode: () => "Q7KM3P" });
  const edge = new Edge(engine, { maxMessageSize: 65536, newId: () => ids.shift()! });
  const clients = new Map<string, { id: string; frames: Json[]; cursor: number }>();
  for (const name of ["Mira", "Tobias"]) {
    const frames: Json[] = [];
    const id = edge.connect(
      {
        send: (frame) => void frames.push(JSON.parse(String(frame))),
        close: () => {},
      },
      { ip: "198.51.100.7" },
      T0,
    );
    clients.set(name, { id, frames, cursor: 0 });
  }
  let now = T0;
  let lines = 0;
  for (const line of block.split("\n")) {
    const parsed = /^(\S+)\s+(→|←)\s+(\{.*\})\s*$/.exec(line);
    if (!parsed) continue;
    lines++;
    const [, who, arrow, text] = parsed;
    if (arrow === "→") {
      edge.receive(clients.get(who!)!.id, text!, now += 1000);
      continue;
    }
    const { value, elided } = lenientParse(text!);
    for (const name of who === "both" ? ["Mira", "Tobias"] : [who!]) {
      const client = clients.get(name)!;
      const found = client.frames.findIndex((frame, i) =>
        i >= client.cursor && matches(value as Json, frame, elided)
      );
      ok(
        found >= 0,
        `README.md: ${name} should receive ${text}\nreceived since:\n${
          client.frames.slice(client.cursor).map((f) => JSON.stringify(f)).join("\n")
        }`,
      );
      client.cursor = found + 1;
    }
  }
  ok(lines >= 19, `only ${lines} lines played`);
});

Deno.test("doc examples: the input examples of docs/spec/PROTOCOL.md §2 are accepted or refused as it says", () => {
  const accepted = (text: string) => decodeClientMessage(text).ok;
  const uuid = "3f2b8c1e-9a47-4d0b-8e21-6c5f0a9d7b34";
  const joinWith = (max: string) =>
    `{"type":"JoinRoom","data":{"game_name":"g","player_name":"p","max_players":${max}}}`;
  const relay = (transport: string) =>
    `{"type":"ProvideConnectionInfo","data":{"connection_info":{"type":"relay","host":"h","port":1,${transport}"allocation_id":"a","token":"t"}}}`;
  const target = (id: string) => `{"type":"GameData","data":{"data":1,"to_player":"${id}"}}`;
  // §2.1: payload-less messages take a missing `data`, `null` or `{}`; any other value is refused.
  for (const data of ["", ',"data":null', ',"data":{}']) {
    ok(accepted(`{"type":"Ping"${data}}`), data);
  }
  for (const data of [',"data":[]', ',"data":5', ',"data":"x"']) {
    ok(!accepted(`{"type":"Ping"${data}}`), data);
  }
  // Other messages need `data`; unknown members are ignored; the last duplicate wins.
  ok(!accepted('{"type":"AuthorityRequest"}'));
  ok(accepted('{"type":"AuthorityRequest","data":{"become_authority":true,"x":1},"y":2}'));
  const duplicate = decodeClientMessage(
    '{"type":"AuthorityRequest","data":{"become_authority":"no","become_authority":false}}',
  );
  deepEqual(duplicate.ok && duplicate.message.data, { become_authority: false });
  // §2.2: `relay.transport` may be omitted, not `null`.
  ok(accepted(relay("")));
  ok(!accepted(relay('"transport":null,')));
  // §2.4: u8 — `2.5`, negative, >255 and strings refused; `4.0` is 4.
  for (const max of ["2.5", "-1", "256", '"2"']) ok(!accepted(joinWith(max)), max);
  const four = decodeClientMessage(joinWith("4.0"));
  equal(four.ok && (four.message.data as { max_players?: number }).max_players, 4);
  // UUIDs in any standard spelling, any case.
  for (
    const id of [
      uuid,
      uuid.toUpperCase(),
      uuid.replaceAll("-", ""),
      `{${uuid}}`,
      `urn:uuid:${uuid}`,
    ]
  ) {
    const decoded = decodeClientMessage(target(id));
    equal(decoded.ok && (decoded.message.data as { to_player?: string }).to_player, uuid, id);
  }
  ok(!accepted(target("not-a-uuid")));
});
