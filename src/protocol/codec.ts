/**
 * Frame codec: turns inbound text frames into validated client messages and server messages into
 * the exact text frames of docs/spec/PROTOCOL.md §2. Never throws on client input.
 *
 * @module
 */
import {
  ClientMessage,
  JoinCreateMode,
  RawJson,
  RelayTransport,
  type ServerMessage,
} from "./messages.ts";
import { isJsonValue } from "./json_scan.ts";

/** The outcome of decoding one text frame. */
export type Decoded =
  | { ok: true; message: ClientMessage }
  | { ok: false; detail: string };

/** The `Error` every unparsable client message gets (docs/spec/PROTOCOL.md §2.3). */
export const INVALID_CLIENT_MESSAGE: ServerMessage = {
  type: "Error",
  data: { message: "Invalid client message", error_code: "INVALID_INPUT" },
};

/**
 * Parses and validates one JSON text frame (docs/spec/PROTOCOL.md §2). For `GameData`, the inner `data`
 * becomes a {@linkcode RawJson} holding the sender's exact text (docs/spec/PROTOCOL.md §7.6).
 * Never throws: every failure is `{ ok: false, detail }`, where `detail` is for logs only.
 */
export function decodeClientMessage(text: string): Decoded {
  const fast = decodePlainGameData(text);
  if (fast) return fast;
  const bare = text.length <= BARE_MAX_LENGTH ? BARE_MESSAGES.get(text) : undefined;
  if (bare) return { ok: true, message: { type: bare } as ClientMessage };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, detail: "Cannot parse JSON" };
  }
  const join = checkedJoinRoom(raw);
  if (join) return { ok: true, message: join };
  const parsed = ClientMessage.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.join(".") ?? "";
    return { ok: false, detail: `${path || "message"}: ${issue?.message ?? "invalid"}` };
  }
  const message = parsed.data;
  if (message.type === "GameData") {
    const span = innerDataSpan(text);
    if (span) message.data.data = new RawJson(text.slice(span[0], span[1]));
  }
  return { ok: true, message };
}

const RELAY_TRANSPORTS: ReadonlySet<unknown> = new Set(RelayTransport.options);
const JOIN_CREATE_MODES: ReadonlySet<unknown> = new Set(JoinCreateMode.options);
/** The members of `JoinRoom.data` that may be absent or `null` (then `undefined`), in schema order. */
const JOIN_OPTIONAL = [
  "max_players",
  "supports_authority",
  "relay_transport",
  "create",
  "authority_handover",
] as const;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** One optional `JoinRoom.data` member's check (its schema in `messages.ts`), `null` allowed. */
function joinMemberValid(name: (typeof JOIN_OPTIONAL)[number], value: unknown): boolean {
  switch (name) {
    case "max_players":
      return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 255;
    case "supports_authority":
    case "authority_handover":
      return typeof value === "boolean";
    case "relay_transport":
      return RELAY_TRANSPORTS.has(value);
    case "create":
      return JOIN_CREATE_MODES.has(value);
  }
}

/**
 * `JoinRoom` without the schema run (churn, issue 18 item 2): when `raw` (a `JSON.parse` result)
 * is a valid `JoinRoom`, the message the `ClientMessage` schema makes of it (the same members, in
 * the same order, unknown ones dropped, `null` optionals as `undefined`); else `undefined`, and
 * the schema decides and explains. `src/protocol/codec_test.ts` compares both on valid and
 * invalid input.
 */
export function checkedJoinRoom(raw: unknown): ClientMessage | undefined {
  if (!isPlainObject(raw) || raw.type !== "JoinRoom") return undefined;
  const data = raw.data;
  if (!isPlainObject(data)) return undefined;
  const gameName = data.game_name;
  const playerName = data.player_name;
  if (typeof gameName !== "string" || typeof playerName !== "string") return undefined;
  const out: Record<string, unknown> = { game_name: gameName };
  if (Object.hasOwn(data, "room_code")) {
    const roomCode = data.room_code;
    if (roomCode !== null && typeof roomCode !== "string") return undefined;
    out.room_code = roomCode ?? undefined;
  }
  out.player_name = playerName;
  for (const name of JOIN_OPTIONAL) {
    if (!Object.hasOwn(data, name)) continue;
    const value = data[name];
    if (value !== null && !joinMemberValid(name, value)) return undefined;
    out[name] = value ?? undefined;
  }
  return { type: "JoinRoom", data: out } as ClientMessage;
}

/**
 * Messages without a payload, spelled exactly as SDKs send them: they decode to what the schema
 * makes of them (`{ type }`, no `data` member) without a parse or a schema run (churn, issue 5).
 */
const BARE_MESSAGES = new Map<string, "LeaveRoom" | "Ping" | "PlayerReady" | "LeaveSpectator">(
  (["LeaveRoom", "Ping", "PlayerReady", "LeaveSpectator"] as const).map((
    type,
  ) => [`{"type":"${type}"}`, type]),
);
const BARE_MAX_LENGTH = Math.max(...[...BARE_MESSAGES.keys()].map((frame) => frame.length));

/** How every SDK writes an untargeted `GameData`: this prefix, the value, then `}}`. */
const GAME_DATA_PREFIX = '{"type":"GameData","data":{"data":';
const GAME_DATA_SUFFIX = "}}";

/**
 * The relay fast path (issue 5): a frame spelled exactly `{"type":"GameData","data":{"data":V}}`
 * is valid exactly when `V` is valid JSON, and then it is an untargeted `GameData` whose raw
 * payload is `V`. Validating `V` in place ({@linkcode isJsonValue}, nothing built) replaces the
 * parse of the whole frame, the schema check and the span scan. Anything else returns
 * `undefined` and takes the general path.
 */
function decodePlainGameData(text: string): Decoded | undefined {
  if (!text.startsWith(GAME_DATA_PREFIX) || !text.endsWith(GAME_DATA_SUFFIX)) return undefined;
  const end = text.length - GAME_DATA_SUFFIX.length;
  // Not a single value (another member follows, or it is malformed): the general path decides.
  if (!isJsonValue(text, GAME_DATA_PREFIX.length, end)) return undefined;
  const value = text.slice(GAME_DATA_PREFIX.length, end);
  return { ok: true, message: { type: "GameData", data: { data: new RawJson(value) } } };
}

/**
 * Serialises one server message as its compact JSON text frame: `type` first, then `data`
 * (omitted for payload-less messages), fields in the order the message object was built.
 * `RawJson` values (game data, replayed events) are written verbatim.
 */
export function encodeServerMessage(message: ServerMessage): string {
  if (message.type === "GameData") {
    const { from_player, data } = message.data;
    // Player ids are server-made lower-case UUIDs: nothing to escape.
    return `{"type":"GameData","data":{"from_player":"${from_player}","data":${
      data instanceof RawJson ? data.text : JSON.stringify(data ?? null)
    }}}`;
  }
  if (message.type === "Reconnected") {
    // missed_events are already-serialised frames; splice them in unchanged.
    const { missed_events, reconnection_token, replay_truncated, ...snapshot } = message.data;
    const head = JSON.stringify({ type: message.type, data: snapshot });
    return `${head.slice(0, -2)},"missed_events":[${
      missed_events.map((event) => event.text).join(",")
    }],"reconnection_token":${
      JSON.stringify(reconnection_token)
    },"replay_truncated":${replay_truncated}}}`;
  }
  return JSON.stringify(message);
}

// ---------------------------------------------------------------------------------------------
// Raw-span scanning over text that JSON.parse has already accepted (so it is well formed).

const enum Char {
  Quote = 34,
  Backslash = 92,
  Comma = 44,
  Colon = 58,
  OpenBrace = 123,
  CloseBrace = 125,
  OpenBracket = 91,
  CloseBracket = 93,
}

function skipWhitespace(s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10 || c === 13) i++;
    else return i;
  }
}

function skipString(s: string, i: number): number {
  for (i++;; i++) {
    const c = s.charCodeAt(i);
    if (c === Char.Quote) return i + 1;
    if (c === Char.Backslash) i++;
  }
}

function skipValue(s: string, i: number): number {
  const first = s.charCodeAt(i);
  if (first === Char.Quote) return skipString(s, i);
  if (first === Char.OpenBrace || first === Char.OpenBracket) {
    let depth = 0;
    for (; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c === Char.Quote) i = skipString(s, i) - 1;
      else if (c === Char.OpenBrace || c === Char.OpenBracket) depth++;
      else if ((c === Char.CloseBrace || c === Char.CloseBracket) && --depth === 0) return i + 1;
    }
    return i;
  }
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (
      c === Char.Comma || c === Char.CloseBrace || c === Char.CloseBracket || c === 32 ||
      c === 9 || c === 10 || c === 13
    ) return i;
  }
  return i;
}

/**
 * Returns the [start, end) span of the value of member `name` of the object starting at `i`
 * (the last one wins, as in JSON.parse), or `undefined` when `s[i]` is not `{` or there is none.
 */
function memberSpan(s: string, i: number, name: string): [number, number] | undefined {
  if (s.charCodeAt(i) !== Char.OpenBrace) return undefined;
  let found: [number, number] | undefined;
  i = skipWhitespace(s, i + 1);
  while (s.charCodeAt(i) === Char.Quote) {
    const keyEnd = skipString(s, i);
    const keyText = s.slice(i + 1, keyEnd - 1);
    const key = keyText.includes("\\") ? JSON.parse(s.slice(i, keyEnd)) as string : keyText;
    const valueStart = skipWhitespace(s, skipWhitespace(s, keyEnd) + 1); // past the colon
    const valueEnd = skipValue(s, valueStart);
    if (key === name) found = [valueStart, valueEnd];
    i = skipWhitespace(s, valueEnd);
    if (s.charCodeAt(i) !== Char.Comma) break;
    i = skipWhitespace(s, i + 1);
  }
  return found;
}

/** The span of `data.data` in a `GameData` frame already accepted by JSON.parse. */
export function innerDataSpan(text: string): [number, number] | undefined {
  const outer = memberSpan(text, skipWhitespace(text, 0), "data");
  return outer && memberSpan(text, outer[0], "data");
}
