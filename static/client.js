// src/client/errors.ts
var SignalFishError = class extends Error {
  /** The spec's error code, e.g. `"ROOM_FULL"`. */
  code;
  /** The server message that carried the refusal, e.g. `"RoomJoinFailed"`. */
  messageType;
  /** Creates an error for `code` reported in a `messageType` message with text `message`. */
  constructor(code, message, messageType) {
    super(message);
    this.name = "SignalFishError";
    this.code = code;
    this.messageType = messageType;
  }
};
var SignalFishConnectionError = class extends Error {
  /** WebSocket close code, when the socket closed. */
  closeCode;
  /** Creates a connection error; `closeCode` when a close frame was received. */
  constructor(message, closeCode2, options) {
    super(message, options);
    this.name = "SignalFishConnectionError";
    this.closeCode = closeCode2;
  }
};

// src/client/msgpack.ts
var utf8Encoder = new TextEncoder();
var utf8Decoder = new TextDecoder("utf-8", {
  fatal: true
});
var Writer = class {
  #bytes = new Uint8Array(64);
  #view = new DataView(this.#bytes.buffer);
  length = 0;
  #reserve(extra) {
    if (this.length + extra <= this.#bytes.length) return;
    let size = this.#bytes.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#bytes.subarray(0, this.length));
    this.#bytes = next;
    this.#view = new DataView(next.buffer);
  }
  u8(value) {
    this.#reserve(1);
    this.#bytes[this.length++] = value;
  }
  u16(value) {
    this.#reserve(2);
    this.#view.setUint16(this.length, value);
    this.length += 2;
  }
  u32(value) {
    this.#reserve(4);
    this.#view.setUint32(this.length, value);
    this.length += 4;
  }
  u64(value) {
    this.#reserve(8);
    this.#view.setBigUint64(this.length, value);
    this.length += 8;
  }
  i64(value) {
    this.#reserve(8);
    this.#view.setBigInt64(this.length, value);
    this.length += 8;
  }
  f64(value) {
    this.#reserve(8);
    this.#view.setFloat64(this.length, value);
    this.length += 8;
  }
  bytes(value) {
    this.#reserve(value.length);
    this.#bytes.set(value, this.length);
    this.length += value.length;
  }
  result() {
    return this.#bytes.slice(0, this.length);
  }
};
function encodeMessagePack(value) {
  const writer = new Writer();
  write(writer, value, 0);
  return writer.result();
}
function writeHeader(w, length, fix, code8, code16, code32) {
  if (fix && length <= fix.max) w.u8(fix.code | length);
  else if (code8 !== void 0 && length <= 255) w.u8(code8), w.u8(length);
  else if (length <= 65535) w.u8(code16), w.u16(length);
  else w.u8(code32), w.u32(length);
}
function writeInteger(w, value) {
  if (value >= 0) {
    if (value < 128) w.u8(value);
    else if (value <= 255) w.u8(204), w.u8(value);
    else if (value <= 65535) w.u8(205), w.u16(value);
    else if (value <= 4294967295) w.u8(206), w.u32(value);
    else w.u8(207), w.u64(BigInt(value));
  } else {
    if (value >= -32) w.u8(value & 255);
    else if (value >= -128) w.u8(208), w.u8(value & 255);
    else if (value >= -32768) w.u8(209), w.u16(value & 65535);
    else if (value >= -2147483648) w.u8(210), w.u32(value >>> 0);
    else w.u8(211), w.i64(BigInt(value));
  }
}
function write(w, value, depth) {
  if (depth > 512) throw new TypeError("Cannot encode MessagePack: value nested too deeply");
  if (value === null || value === void 0) return w.u8(192);
  switch (typeof value) {
    case "boolean":
      return w.u8(value ? 195 : 194);
    case "number":
      if (Number.isSafeInteger(value)) return writeInteger(w, value);
      w.u8(203);
      return w.f64(value);
    case "bigint":
      if (value >= 0n) {
        if (value > 0xffffffffffffffffn) break;
        w.u8(207);
        return w.u64(value);
      }
      if (value < -0x8000000000000000n) break;
      w.u8(211);
      return w.i64(value);
    case "string": {
      const bytes = utf8Encoder.encode(value);
      writeHeader(w, bytes.length, {
        code: 160,
        max: 31
      }, 217, 218, 219);
      return w.bytes(bytes);
    }
    case "object": {
      if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
        const bytes = value instanceof Uint8Array ? value : value instanceof ArrayBuffer ? new Uint8Array(value) : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
        writeHeader(w, bytes.length, void 0, 196, 197, 198);
        return w.bytes(bytes);
      }
      if (Array.isArray(value)) {
        writeHeader(w, value.length, {
          code: 144,
          max: 15
        }, void 0, 220, 221);
        for (const item of value) write(w, item, depth + 1);
        return;
      }
      const entries = value instanceof Map ? [
        ...value.entries()
      ] : Object.entries(value).filter(([, item]) => item !== void 0);
      writeHeader(w, entries.length, {
        code: 128,
        max: 15
      }, void 0, 222, 223);
      for (const [key, item] of entries) {
        write(w, key, depth + 1);
        write(w, item, depth + 1);
      }
      return;
    }
  }
  throw new TypeError(`Cannot encode MessagePack: unsupported value of type ${typeof value}`);
}
function decodeMessagePack(bytes) {
  const reader = new Reader(bytes);
  const value = reader.value(0);
  if (reader.offset !== bytes.length) {
    throw new RangeError("Cannot decode MessagePack: trailing bytes after the value");
  }
  return value;
}
var Reader = class {
  #bytes;
  #view;
  offset = 0;
  constructor(bytes) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  #need(count) {
    const at = this.offset;
    if (at + count > this.#bytes.length) {
      throw new RangeError("Cannot decode MessagePack: unexpected end of data");
    }
    this.offset += count;
    return at;
  }
  #u8 = () => this.#view.getUint8(this.#need(1));
  #u16 = () => this.#view.getUint16(this.#need(2));
  #u32 = () => this.#view.getUint32(this.#need(4));
  #big(value) {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }
  #str(length) {
    const at = this.#need(length);
    try {
      return utf8Decoder.decode(this.#bytes.subarray(at, at + length));
    } catch {
      throw new RangeError("Cannot decode MessagePack: string is not valid UTF-8");
    }
  }
  #bin(length) {
    const at = this.#need(length);
    return this.#bytes.slice(at, at + length);
  }
  #array(length, depth) {
    const items = [];
    for (let i = 0; i < length; i++) items.push(this.value(depth + 1));
    return items;
  }
  #map(length, depth) {
    const entries = [];
    for (let i = 0; i < length; i++) entries.push([
      this.value(depth + 1),
      this.value(depth + 1)
    ]);
    if (!entries.every(([key]) => typeof key === "string")) return new Map(entries);
    const object = {};
    for (const [key, item] of entries) {
      Object.defineProperty(object, key, {
        value: item,
        enumerable: true,
        writable: true,
        configurable: true
      });
    }
    return object;
  }
  value(depth) {
    if (depth > 512) throw new RangeError("Cannot decode MessagePack: value nested too deeply");
    const code = this.#u8();
    if (code < 128) return code;
    if (code >= 224) return code - 256;
    if (code >= 160 && code <= 191) return this.#str(code & 31);
    if (code >= 144 && code <= 159) return this.#array(code & 15, depth);
    if (code >= 128 && code <= 143) return this.#map(code & 15, depth);
    switch (code) {
      case 192:
        return null;
      case 194:
        return false;
      case 195:
        return true;
      case 196:
        return this.#bin(this.#u8());
      case 197:
        return this.#bin(this.#u16());
      case 198:
        return this.#bin(this.#u32());
      case 202:
        return this.#view.getFloat32(this.#need(4));
      case 203:
        return this.#view.getFloat64(this.#need(8));
      case 204:
        return this.#u8();
      case 205:
        return this.#u16();
      case 206:
        return this.#u32();
      case 207:
        return this.#big(this.#view.getBigUint64(this.#need(8)));
      case 208:
        return this.#view.getInt8(this.#need(1));
      case 209:
        return this.#view.getInt16(this.#need(2));
      case 210:
        return this.#view.getInt32(this.#need(4));
      case 211:
        return this.#big(this.#view.getBigInt64(this.#need(8)));
      case 217:
        return this.#str(this.#u8());
      case 218:
        return this.#str(this.#u16());
      case 219:
        return this.#str(this.#u32());
      case 220:
        return this.#array(this.#u16(), depth);
      case 221:
        return this.#array(this.#u32(), depth);
      case 222:
        return this.#map(this.#u16(), depth);
      case 223:
        return this.#map(this.#u32(), depth);
    }
    throw new RangeError(`Cannot decode MessagePack: unsupported type byte 0x${code.toString(16).padStart(2, "0")}`);
  }
};

// src/protocol/error_codes.ts
var ERROR_CODES = [
  "UNAUTHORIZED",
  "INVALID_TOKEN",
  "AUTHENTICATION_REQUIRED",
  "INVALID_APP_ID",
  "APP_ID_EXPIRED",
  "APP_ID_REVOKED",
  "APP_ID_SUSPENDED",
  "MISSING_APP_ID",
  "AUTHENTICATION_TIMEOUT",
  "SDK_VERSION_UNSUPPORTED",
  "UNSUPPORTED_GAME_DATA_FORMAT",
  "INVALID_INPUT",
  "INVALID_GAME_NAME",
  "INVALID_ROOM_CODE",
  "INVALID_PLAYER_NAME",
  "INVALID_MAX_PLAYERS",
  "MESSAGE_TOO_LARGE",
  "ROOM_NOT_FOUND",
  "ROOM_FULL",
  "ALREADY_IN_ROOM",
  "NOT_IN_ROOM",
  "ROOM_CREATION_FAILED",
  "MAX_ROOMS_PER_GAME_EXCEEDED",
  "INVALID_ROOM_STATE",
  "AUTHORITY_NOT_SUPPORTED",
  "AUTHORITY_CONFLICT",
  "AUTHORITY_DENIED",
  "RATE_LIMIT_EXCEEDED",
  "TOO_MANY_CONNECTIONS",
  "RECONNECTION_FAILED",
  "RECONNECTION_TOKEN_INVALID",
  "RECONNECTION_EXPIRED",
  "PLAYER_ALREADY_CONNECTED",
  "SPECTATOR_NOT_ALLOWED",
  "TOO_MANY_SPECTATORS",
  "NOT_A_SPECTATOR",
  "SPECTATOR_JOIN_FAILED",
  "INTERNAL_ERROR",
  "STORAGE_ERROR",
  "SERVICE_UNAVAILABLE"
];

// src/client/client.ts
var DEFAULT_TIMEOUT_MS = 1e4;
var DEFAULT_HEARTBEAT_MS = 1e4;
var DEFAULT_RECONNECT = {
  maxAttempts: 10,
  maxElapsedMs: 12e4,
  initialDelayMs: 250,
  maxDelayMs: 1e4,
  jitter: "full",
  random: Math.random,
  whenIdle: false
};
var TEMPORARY_REFUSALS = /* @__PURE__ */ new Set([
  "RATE_LIMIT_EXCEEDED",
  "SERVICE_UNAVAILABLE",
  "INTERNAL_ERROR"
]);
function retryAfterMs(error) {
  if (error.code !== "RATE_LIMIT_EXCEEDED") return 0;
  const seconds = /\bTry again in (\d{1,6}) seconds?\b/i.exec(error.message)?.[1];
  return seconds === void 0 ? 0 : Number(seconds) * 1e3;
}
var READY_TOGGLES = 3;
var NO_RECONNECT_CLOSE_CODES = /* @__PURE__ */ new Set([
  1008,
  4001
]);
var OPEN = 1;
var CLOSED = 3;
var DEAD_CONNECTION_CLOSE_CODE = 4e3;
var CONNECTION_INFO_REFUSAL = "Connection info too large";
var ABNORMAL_CLOSE_CODE = 1006;
function closeCode(code) {
  return Number.isInteger(code) && code >= 1e3 && code <= 4999 ? code : ABNORMAL_CLOSE_CODE;
}
function endpointUrl(url) {
  const parsed = new URL(url);
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  if (parsed.pathname === "/" || parsed.pathname === "") parsed.pathname = "/v2/ws";
  return parsed.href;
}
function uuidFromBytes(bytes) {
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
function failure(code, message, type) {
  return {
    error: new SignalFishError(code ?? "INTERNAL_ERROR", message, type)
  };
}
var PARSE_ERROR_MESSAGE = "Invalid client message";
function parseError(message) {
  return message.type === "Error" && message.data.error_code === "INVALID_INPUT" && message.data.message === PARSE_ERROR_MESSAGE ? failure("INVALID_INPUT", message.data.message, "Error") : void 0;
}
function errorWith(message, codes) {
  if (message.type !== "Error") return void 0;
  const code = message.data.error_code;
  return code !== void 0 && codes.includes(code) ? failure(code, message.data.message, "Error") : void 0;
}
var SignalFishClient = class _SignalFishClient {
  /** The WebSocket endpoint, e.g. `ws://127.0.0.1:3536/v2/ws`. */
  url;
  #options;
  #reconnect;
  #listeners = /* @__PURE__ */ new Map();
  #socket;
  #status = "idle";
  #pending = [];
  #authData;
  #authResult;
  #seat;
  #room;
  #heartbeat;
  /**
   * Whether the heartbeat may send on the current socket: once it authenticated, or once the
   * app sent it another message (see `#armHeartbeat`).
   */
  #heartbeatArmed = false;
  #lastInbound = 0;
  /**
   * The last connection was given up for an unanswered heartbeat: what the server wrote to it in
   * the silence may be lost, so the next `Reconnected` reports its replay truncated.
   */
  #wentSilent = false;
  #lastError;
  #closing = false;
  #wakeReconnect;
  /** Code and reason of the last close of an open connection (normalized by `closeCode`). */
  #lastClose;
  /** `open()` calls made while connecting or reconnecting, settled when open or closed. */
  #openWaiters = [];
  /** Why the client is closing, for those waiters (the failed open, the given-up reconnection). */
  #endError;
  #reconnectTimer;
  #closed;
  #cancelled = false;
  /** The spectated room, to watch it again after a drop or a reload. */
  #spectating;
  #store;
  #sessionKey;
  /** `Ping`s sent and `Pong`s received on the current socket (see `#pingRequest`). */
  #pingsSent = 0;
  #pongsReceived = 0;
  /** Settles when the last `setReady()` call has (calls run one at a time). */
  #readyTurn = Promise.resolve();
  /** The `authenticate()` under way, which later calls share. */
  #authenticating;
  /** The `leave()` under way, which later calls share. */
  #leaving;
  /** The `resume()` under way, which later calls share. */
  #resuming;
  /** Requests under way that may put this client in a room (joins, `spectate()`, `resume()`). */
  #entering = /* @__PURE__ */ new Set();
  /** Creates an unconnected client for `url` (http(s) base URL or the ws(s) endpoint). */
  constructor(url, options = {}) {
    this.url = endpointUrl(url);
    this.#options = options;
    this.#reconnect = options.reconnect === false ? void 0 : {
      ...DEFAULT_RECONNECT,
      ...options.reconnect === true ? {} : options.reconnect
    };
    this.#store = options.session === false ? void 0 : options.session ?? defaultSessionStore();
    this.#sessionKey = options.sessionKey ?? `signal-fish:${this.url}`;
  }
  /**
   * Creates a client and opens its connection (see {@linkcode SignalFishClient.open}, including
   * the automatic authentication with `auth`); when that fails, the client is closed and the
   * promise rejects with {@linkcode SignalFishConnectionError} or, for a refused
   * authentication, {@linkcode SignalFishError}.
   */
  static async connect(url, options) {
    const client = new _SignalFishClient(url, options);
    await client.open();
    return client;
  }
  /** The connection's state. */
  get status() {
    return this.#status;
  }
  /** The room as currently known, or `undefined` when not in one. A fresh copy each call. */
  get room() {
    return this.#room && cloneRoom(this.#room);
  }
  /** This client's id in its room (`player_id` or `spectator_id`), when in one. */
  get selfId() {
    return this.#room?.selfId;
  }
  /** The current reconnection token (docs/spec/EXTENSIONS.md E1/E2), when the server issued one. */
  get reconnectionToken() {
    return this.#seat?.token;
  }
  /** The negotiated binary game-data format: `json` until `authenticate()` negotiates more. */
  get gameDataFormat() {
    return this.#authResult?.gameDataFormat ?? "json";
  }
  /**
   * Subscribes `listener` to `event` and returns a function that unsubscribes it. Listeners run
   * synchronously in subscription order. An exception thrown by one is caught: it goes to the
   * `onListenerError` option (by default `console.error`), the other listeners still run and
   * the client carries on — it is never rethrown or turned into an uncaught error.
   */
  on(event, listener) {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, set = /* @__PURE__ */ new Set());
    set.add(listener);
    return () => this.off(event, listener);
  }
  /** Subscribes `listener` to the next `event` only. Returns the unsubscribe function. */
  once(event, listener) {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }
  /** Removes `listener` from `event`. */
  off(event, listener) {
    this.#listeners.get(event)?.delete(listener);
  }
  /**
   * Opens the WebSocket and, when `auth` or `presenceEvents` is set, authenticates on it (the
   * status stays `"connecting"` until then); resolves once the client is open, at once if it
   * already is. Rejects with {@linkcode SignalFishConnectionError} when the socket cannot be
   * opened (e.g. HTTP 429 before the upgrade, docs/spec/PROTOCOL.md §1.2) or not within the
   * request timeout, and with {@linkcode SignalFishError} or
   * {@linkcode SignalFishConnectionError} when that authentication is refused or unanswered
   * (docs/spec/PROTOCOL.md §7.1). Whenever it rejects the client is closed: its socket is closed,
   * no timer is left running and the status is `"closed"` (create a new client to try again).
   *
   * It never opens a second socket. Called while an earlier `open()` is still connecting, it
   * settles as that one does. Called while the client is reconnecting (docs/spec/PROTOCOL.md
   * §7.11) it does not disturb the reconnection: it resolves once the connection is open again
   * (the seat restored — or, after a definitive refusal, lost: see `reconnectFailed`) and
   * rejects with the `reconnectFailed` error when reconnection gives up and the client closes
   * (or with {@linkcode SignalFishConnectionError} when `close()` ends it). On a closed client
   * it rejects with {@linkcode SignalFishConnectionError}.
   */
  open() {
    switch (this.#status) {
      case "open":
        return Promise.resolve();
      case "closed":
        return Promise.reject(new SignalFishConnectionError("Cannot open a closed client; create a new one"));
      case "connecting":
      case "reconnecting":
        return new Promise((resolve, reject) => this.#openWaiters.push({
          resolve,
          reject
        }));
      case "idle":
        return this.#openFirst();
    }
  }
  /** `open()` from `"idle"`: the first socket, and automatic authentication on it. */
  async #openFirst() {
    this.#closing = false;
    this.#setStatus("connecting");
    try {
      await this.#openSocket();
    } catch (error) {
      this.#endError = error;
      this.#setStatus("closed");
      throw error;
    }
    const auto = this.#autoAuth;
    if (auto) {
      try {
        await this.#authenticateOnce(auto);
        this.#authData = auto;
      } catch (error) {
        this.#endError = error;
        await this.close();
        throw error;
      }
    }
    this.#setStatus("open");
  }
  /** The `Authenticate` sent after each open, from `auth` and `presenceEvents`, if any. */
  get #autoAuth() {
    const { auth, presenceEvents } = this.#options;
    if (!auth && !presenceEvents) return void 0;
    return this.#withFeatures(auth ?? {
      app_id: "signal-fish-client"
    });
  }
  /** `data` with `"presence-events"` added to its features when `presenceEvents` asks. */
  #withFeatures(data) {
    if (!this.#options.presenceEvents) return data;
    const features = data.features ?? [];
    return features.includes("presence-events") ? data : {
      ...data,
      features: [
        ...features,
        "presence-events"
      ]
    };
  }
  /**
   * The features the server accepted in `Authenticated.features` (docs/spec/EXTENSIONS.md E10), e.g.
   * `["presence-events"]`; empty before authentication or when the server has none.
   */
  get features() {
    return this.#authResult?.authenticated.features ?? [];
  }
  /**
   * Sends `Authenticate` (docs/spec/PROTOCOL.md §5.1, §7.1) and resolves with `Authenticated`,
   * `ProtocolInfo` and the negotiated game-data format. A second call resolves with the first
   * result without sending (the server ignores repeats), also while the first is under way (it
   * shares that call's promise). Rejects with {@linkcode SignalFishError}
   * for an `AuthenticationError` (`INVALID_APP_ID`, `UNAUTHORIZED`, `RATE_LIMIT_EXCEEDED`,
   * `SDK_VERSION_UNSUPPORTED`). The data is remembered and re-sent when reconnecting.
   */
  authenticate(data) {
    if (this.#authResult) return Promise.resolve(this.#authResult);
    this.#authenticating ??= this.#authenticateNow(data).finally(() => {
      this.#authenticating = void 0;
    });
    return this.#authenticating;
  }
  /** One `authenticate()` that sends. */
  async #authenticateNow(data) {
    this.#requireOpen();
    data = this.#withFeatures(data);
    const result = await this.#authenticateOnce(data);
    this.#authData = data;
    return result;
  }
  /**
   * Creates a room with a generated code (`JoinRoom` without `room_code`, docs/spec/PROTOCOL.md §7.2) and
   * resolves with the `RoomJoined` snapshot. Rejects with {@linkcode SignalFishError}
   * (`RoomJoinFailed`: `INVALID_GAME_NAME`, `INVALID_INPUT`, `ALREADY_IN_ROOM`,
   * `RATE_LIMIT_EXCEEDED`, `MAX_ROOMS_PER_GAME_EXCEEDED`, …).
   */
  createRoom(data) {
    return this.joinRoom({
      ...data,
      room_code: void 0
    });
  }
  /**
   * Joins an existing room only (`JoinRoom.create: "never"`, docs/spec/EXTENSIONS.md E9): a mistyped code
   * rejects with {@linkcode SignalFishError} `ROOM_NOT_FOUND` instead of creating a room. Other
   * refusals as {@linkcode joinRoom}. Needs a server advertising the `join-modes` capability;
   * older servers ignore the field and create the room (check first with `lookupRoom()`).
   */
  join(data) {
    return this.joinRoom({
      ...data,
      create: "never"
    });
  }
  /**
   * Creates a new room (docs/spec/EXTENSIONS.md E9): with `room_code`, that code (`create: "always"`;
   * rejects with `ROOM_CREATION_FAILED` "Room code already in use" when it exists), else a
   * generated code (as {@linkcode createRoom}). `authority_handover: true` makes authority pass
   * to the longest-seated player when its holder's seat is released (E11).
   */
  create(data) {
    if (data.room_code === void 0) return this.createRoom(data);
    return this.joinRoom({
      ...data,
      create: "always"
    });
  }
  /**
   * Joins the room with `room_code`, creating it when it does not exist (v2 join-or-create,
   * docs/spec/PROTOCOL.md §7.2.2; no `create` field is sent, so any v2 server behaves the same).
   */
  joinOrCreate(data) {
    return this.joinRoom({
      ...data,
      create: void 0
    });
  }
  /**
   * Looks a room up over HTTP (`GET /v2/rooms/{game_name}/{room_code}`, docs/spec/EXTENSIONS.md E5) on
   * this client's server; resolves `null` when there is no such room (404). Takes one
   * join-attempt token from the caller's IP, like a join. Rejects with
   * {@linkcode SignalFishError} `RATE_LIMIT_EXCEEDED` (429) or `SERVICE_UNAVAILABLE` (503), and
   * with {@linkcode SignalFishConnectionError} when the server cannot be reached.
   */
  lookupRoom(gameName, roomCode) {
    const auth = this.#authData ?? this.#options.auth;
    const app = auth ? {
      appId: auth.app_id,
      appSecret: auth.app_secret ?? void 0
    } : void 0;
    return lookupRoom(this.url, gameName, roomCode, app);
  }
  /**
   * Joins the room with `data.room_code` — or creates it, as the server does for unknown codes
   * (docs/spec/PROTOCOL.md §7.2.2) — and resolves with the `RoomJoined` snapshot. Rejects with
   * {@linkcode SignalFishError} (`ROOM_FULL`, `ROOM_CREATION_FAILED` for a taken name,
   * `INVALID_ROOM_CODE`, …).
   */
  joinRoom(data) {
    const message = {
      type: "JoinRoom",
      data: withoutUndefined(data)
    };
    return this.#entered(this.#request(message, (reply) => {
      if (reply.type === "RoomJoined") return {
        value: reply.data
      };
      if (reply.type === "RoomJoinFailed") {
        return failure(reply.data.error_code, reply.data.reason, "RoomJoinFailed");
      }
      return parseError(reply);
    }));
  }
  /**
   * Watches a room as a spectator (`JoinAsSpectator`, docs/spec/PROTOCOL.md §7.9) and resolves with
   * `SpectatorJoined`. Rejects with {@linkcode SignalFishError} (`SpectatorJoinFailed`:
   * `ROOM_NOT_FOUND`, `ALREADY_IN_ROOM`, `TOO_MANY_SPECTATORS`, …).
   */
  spectate(data) {
    return this.#entered(this.#request({
      type: "JoinAsSpectator",
      data
    }, (reply) => {
      if (reply.type === "SpectatorJoined") {
        this.#spectating = {
          ...data,
          room_code: reply.data.room_code
        };
        this.#saveSession();
        return {
          value: reply.data
        };
      }
      if (reply.type === "SpectatorJoinFailed") {
        return failure(reply.data.error_code, reply.data.reason, "SpectatorJoinFailed");
      }
      return parseError(reply);
    }));
  }
  /**
   * Leaves the current room: `LeaveRoom` for a player (resolves on `RoomLeft`,
   * docs/spec/PROTOCOL.md §7.3.1), `LeaveSpectator` for a spectator (resolves on `SpectatorLeft`,
   * §7.9); resolves at once when not in a room. The reconnection token is forgotten.
   *
   * - A join, `spectate()` or `resume()` still under way is waited for first, so the client ends
   *   out of the room it was entering.
   * - Unlike other requests it does not reject while the client is reconnecting (§7.11), nor
   *   when the connection drops while it waits for the answer: it waits for the reconnection to
   *   end, then leaves the restored seat, or resolves if reconnection gave the seat up.
   * - A call while another is under way returns the same promise (a second `LeaveRoom` would get
   *   no answer, a second `LeaveSpectator` `NOT_A_SPECTATOR`).
   * - When the room is deleted just as a spectator leaves (`SpectatorLeft` `room_closed` before
   *   the server reads the `LeaveSpectator`, §7.12), it resolves on the `Error`
   *   `NOT_A_SPECTATOR` that then answers the `LeaveSpectator`, and no `error` event is emitted.
   *
   * Rejects with {@linkcode SignalFishConnectionError} when the answer does not come in time, or
   * the connection closes for good (no reconnection follows) while the answer is awaited.
   */
  leave() {
    this.#leaving ??= this.#leaveNow().finally(() => {
      this.#leaving = void 0;
    });
    return this.#leaving;
  }
  /**
   * One `leave()`: after the joins under way have settled, leaves the room they led to; a
   * reconnection under way (or one started by a drop while leaving) is waited out first, so the
   * seat it restores is left too.
   */
  async #leaveNow() {
    if (this.#entering.size > 0) await Promise.allSettled([
      ...this.#entering
    ]);
    for (; ; ) {
      if (this.#status === "reconnecting" && this.#room) await this.open().catch(() => {
      });
      try {
        return await this.#leaveOnce();
      } catch (error) {
        if (!(error instanceof SignalFishConnectionError) || this.#status !== "reconnecting") {
          throw error;
        }
      }
    }
  }
  /** Sends the `LeaveRoom` or `LeaveSpectator` the current room needs, if any. */
  async #leaveOnce() {
    const role = this.#room?.role;
    if (role === "player") {
      await this.#request({
        type: "LeaveRoom"
      }, (reply) => {
        return reply.type === "RoomLeft" ? {
          value: void 0
        } : void 0;
      });
    } else if (role === "spectator") {
      let roomClosed = false;
      await this.#request({
        type: "LeaveSpectator"
      }, (reply) => {
        if (reply.type === "SpectatorLeft") {
          if (reply.data.reason !== "room_closed") return {
            value: void 0
          };
          roomClosed = true;
          return "more";
        }
        if (roomClosed && reply.type === "Error" && reply.data.error_code === "NOT_A_SPECTATOR") {
          return {
            value: void 0
          };
        }
        return errorWith(reply, [
          "NOT_A_SPECTATOR"
        ]);
      });
    }
  }
  /**
   * Sets this player's readiness (docs/spec/PROTOCOL.md §7.4) and resolves with the lobby once the
   * server has settled it, in `LobbyStateChanged`'s shape: `lobby_state`, `ready_players` (with
   * this player in it exactly when `ready`) and `all_ready`.
   *
   * `PlayerReady` toggles on the wire, so nothing is sent when the known readiness already is
   * `ready`. Otherwise the client sends `PlayerReady` and then `Ping`, and judges the room as it
   * stands when that `Ping`'s `Pong` arrives (the server answers in order, §1.5, so the toggle's
   * `LobbyStateChanged` and everything before it have been applied). A seat released from a full
   * room empties the ready set (§7.4); such a reset crossing the toggle can leave the readiness
   * the other way round (reset, then the toggle readies a player who asked not to be), and then
   * the client toggles again, sending at most three `PlayerReady` per call. Calls run one at a
   * time, in call order.
   *
   * Rejects with {@linkcode SignalFishError} `NOT_IN_ROOM`, `SPECTATOR_NOT_ALLOWED` or
   * `RATE_LIMIT_EXCEEDED` (this connection's lobby changes, §7.4 note; each toggle takes a
   * token), with {@linkcode SignalFishError} `INVALID_ROOM_STATE` (`messageType`
   * `"LobbyStateChanged"`) when the readiness is still not `ready` after the third toggle, and
   * with {@linkcode SignalFishConnectionError} when the connection is not open, closes or does
   * not answer in time. After a rejection the readiness may be either way: `room` tells which.
   */
  setReady(ready = true) {
    const run = () => this.#setReadyNow(ready);
    const result = this.#readyTurn.then(run, run);
    this.#readyTurn = result.then(() => {
    }, () => {
    });
    return result;
  }
  /** One `setReady()` call, run when no other is under way. */
  async #setReadyNow(ready) {
    for (let toggles = 0; ; toggles++) {
      const room = this.#room;
      if (room?.role === "player" && room.readyPlayers.includes(room.selfId) === ready) {
        return {
          lobby_state: room.lobbyState,
          ready_players: [
            ...room.readyPlayers
          ],
          all_ready: room.lobbyState === "finalized"
        };
      }
      if (toggles === READY_TOGGLES) {
        throw new SignalFishError("INVALID_ROOM_STATE", `Cannot set readiness to ${ready}: still ${!ready} after ${toggles} PlayerReady toggles`, "LobbyStateChanged");
      }
      await this.#toggleReady();
    }
  }
  /**
   * Sends `PlayerReady` and then `Ping`; resolves on that `Ping`'s `Pong`, by when everything
   * the toggle caused on this connection has arrived, and rejects on the toggle's refusal.
   */
  #toggleReady() {
    try {
      this.#send({
        type: "PlayerReady"
      });
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#pingRequest((reply) => {
      return errorWith(reply, [
        "NOT_IN_ROOM",
        "SPECTATOR_NOT_ALLOWED",
        "RATE_LIMIT_EXCEEDED"
      ]);
    });
  }
  /**
   * Claims (`true`) or releases (`false`) room authority (docs/spec/PROTOCOL.md §7.5) and resolves with
   * the granting `AuthorityResponse`. Rejects with {@linkcode SignalFishError}:
   * `AUTHORITY_CONFLICT`, `AUTHORITY_DENIED`, `AUTHORITY_NOT_SUPPORTED`, `NOT_IN_ROOM`,
   * `SPECTATOR_NOT_ALLOWED`.
   */
  requestAuthority(become = true) {
    const message = {
      type: "AuthorityRequest",
      data: {
        become_authority: become
      }
    };
    return this.#request(message, (reply) => {
      if (reply.type === "AuthorityResponse") {
        return reply.data.granted ? {
          value: reply.data
        } : failure(reply.data.error_code, reply.data.reason ?? "Denied", "AuthorityResponse");
      }
      return errorWith(reply, [
        "SPECTATOR_NOT_ALLOWED"
      ]);
    });
  }
  /**
   * Stores this seat's connection info (docs/spec/PROTOCOL.md §7.8); it reaches others in `GameStarting`.
   * The server does not acknowledge it, so the client follows it with a `Ping` and resolves on
   * the `Pong`; rejects with {@linkcode SignalFishError} `NOT_IN_ROOM`,
   * `SPECTATOR_NOT_ALLOWED` or `INVALID_INPUT` (longer than the server's
   * `protocol.max_connection_info_bytes`, docs/spec/PROTOCOL.md §7.8 note; the stored value stays).
   */
  provideConnectionInfo(connectionInfo) {
    try {
      this.#send({
        type: "ProvideConnectionInfo",
        data: {
          connection_info: connectionInfo
        }
      });
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#pingRequest((reply) => {
      return errorWith(reply, [
        "NOT_IN_ROOM",
        "SPECTATOR_NOT_ALLOWED"
      ]) ?? (reply.type === "Error" && reply.data.error_code === "INVALID_INPUT" && reply.data.message.startsWith(CONNECTION_INFO_REFUSAL) ? failure("INVALID_INPUT", reply.data.message, "Error") : void 0);
    });
  }
  /**
   * Sends game data to every other member of the room, or with `to` only to that player
   * (`GameData.to_player`, docs/spec/EXTENSIONS.md E4). With `binary: true` the value is encoded as
   * MessagePack and sent as a binary frame (docs/spec/PROTOCOL.md §7.7; needs a connection that
   * negotiated `message_pack`, and has no targeted form). Fire and forget: refusals (bad
   * target, spectator) arrive as `error` events.
   *
   * @throws {SignalFishConnectionError} when the connection is not open.
   * @throws {TypeError} for `binary` on a JSON connection or combined with `to`.
   */
  sendGameData(data, options = {}) {
    if (options.binary) {
      if (options.to !== void 0) {
        throw new TypeError("Cannot send binary game data to one player: there is no such form");
      }
      this.sendBinary(encodeMessagePack(data));
      return;
    }
    const payload = {
      data
    };
    if (options.to !== void 0) payload.to_player = options.to;
    this.#send({
      type: "GameData",
      data: payload
    });
  }
  /** Sends JSON game data to one player of the room (`to_player`, docs/spec/EXTENSIONS.md E4). */
  sendTo(playerId, data) {
    this.sendGameData(data, {
      to: playerId
    });
  }
  /**
   * Sends `payload` (the app's own MessagePack encoding of a game value) as one binary frame
   * (docs/spec/PROTOCOL.md §7.7).
   *
   * @throws {SignalFishConnectionError} when the connection is not open (also while
   *   reconnecting, when the format is negotiated again).
   * @throws {TypeError} on an open connection that did not negotiate `message_pack`.
   */
  sendBinary(payload) {
    this.#requireOpen();
    if (this.gameDataFormat !== "message_pack") {
      throw new TypeError('Cannot send binary game data: authenticate with game_data_format "message_pack" first');
    }
    this.#socket.send(payload);
    this.#armHeartbeat();
  }
  /**
   * Takes back the seat (or the spectator place) kept in the session store after a page reload
   * or a restart of the app: a player sends `Reconnect` with the stored token (docs/spec/PROTOCOL.md
   * §7.11.4; missed events are emitted in order as on an automatic reconnection), a spectator
   * watches the same room again. Resolves `undefined` when nothing is stored. On a refusal
   * the promise rejects with {@linkcode SignalFishError} and the connection stays open so the
   * app can join afresh; a definitive refusal (`RECONNECTION_EXPIRED`,
   * `RECONNECTION_TOKEN_INVALID`, `RECONNECTION_FAILED`, `ROOM_NOT_FOUND`, …) also forgets the
   * stored session, a temporary one (`RATE_LIMIT_EXCEEDED`, `SERVICE_UNAVAILABLE`,
   * `INTERNAL_ERROR`, see {@linkcode ReconnectOptions}) keeps it, so `resume()` can be called
   * again later. Resolves `undefined` without sending anything while the client is already in
   * a room. A call while another is under way returns the same promise (a second `Reconnect`
   * would be refused `ALREADY_IN_ROOM` and forget the seat just taken back).
   */
  resume() {
    this.#resuming ??= this.#entered(this.#resumeNow()).finally(() => {
      this.#resuming = void 0;
    });
    return this.#resuming;
  }
  /** One `resume()`. */
  async #resumeNow() {
    const stored = await this.storedSession();
    if (!stored || this.#room !== void 0) return void 0;
    this.#requireOpen();
    try {
      if (stored.role === "spectator") {
        const { room_code, game_name, spectator_name } = stored;
        return {
          role: "spectator",
          spectating: await this.spectate({
            room_code,
            game_name,
            spectator_name
          })
        };
      }
      const data = await this.#sendReconnect({
        playerId: stored.player_id,
        roomId: stored.room_id,
        token: stored.token
      }, false);
      this.#restore(data);
      return {
        role: "player",
        reconnected: data
      };
    } catch (error) {
      if (error instanceof SignalFishError && !TEMPORARY_REFUSALS.has(error.code) && this.#room === void 0) {
        await this.#clearSession();
      }
      throw error;
    }
  }
  /**
   * Registers `request` as one that may put this client in a room, until it settles, so that
   * `leave()` waits for it.
   */
  #entered(request) {
    this.#entering.add(request);
    const done = () => void this.#entering.delete(request);
    request.then(done, done);
    return request;
  }
  /** What the session store holds for this client (see {@linkcode resume}), if anything. */
  async storedSession() {
    const store = this.#store;
    if (!store) return void 0;
    try {
      const text = await store.getItem(this.#sessionKey);
      const parsed = text ? JSON.parse(text) : void 0;
      return parsed?.v === 1 && (parsed.role === "player" || parsed.role === "spectator") ? parsed : void 0;
    } catch {
      return void 0;
    }
  }
  /**
   * Stops automatic reconnection now: the seat is given up on this client (the server still
   * holds it for its window, so the stored session can `resume()` it later), `reconnectFailed`
   * is emitted with {@linkcode SignalFishConnectionError} and the client is closed. No effect
   * unless reconnecting.
   */
  cancelReconnect() {
    if (this.#status !== "reconnecting") return;
    this.#cancelled = true;
    clearTimeout(this.#reconnectTimer);
    this.#wakeReconnect?.();
    const socket = this.#socket;
    if (socket && socket.readyState !== CLOSED) socket.close(1e3);
  }
  /** Sends `Ping` and resolves with the round-trip time to its `Pong`, ms (docs/spec/PROTOCOL.md §7.10). */
  async ping() {
    const started = performance.now();
    await this.#pingRequest();
    return performance.now() - started;
  }
  /**
   * Closes the connection on purpose (close code 1000; the server treats a player's close as an
   * unexpected disconnect unless it left first, docs/spec/PROTOCOL.md §7.3.2) and stops reconnecting.
   * Resolves once the socket is closed. Idempotent.
   */
  close() {
    this.#closed ??= (async () => {
      this.#closing = true;
      clearTimeout(this.#reconnectTimer);
      this.#wakeReconnect?.();
      const socket = this.#socket;
      if (socket && socket.readyState !== CLOSED) {
        const done = new Promise((resolve) => {
          socket.addEventListener("close", () => resolve(), {
            once: true
          });
        });
        socket.close(1e3);
        await done;
      } else {
        this.#finishClose(1e3, "");
      }
    })();
    return this.#closed;
  }
  /** Closes the connection (see `close()`). */
  [Symbol.asyncDispose]() {
    return this.close();
  }
  // -------------------------------------------------------------------------------------------
  // Socket plumbing
  #openSocket() {
    const Socket = this.#options.WebSocket ?? globalThis.WebSocket;
    const socket = new Socket(this.url);
    socket.binaryType = "arraybuffer";
    this.#socket = socket;
    this.#pingsSent = 0;
    this.#pongsReceived = 0;
    this.#heartbeatArmed = false;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.onclose = null;
        socket.close();
        reject(new SignalFishConnectionError(`Cannot connect to ${this.url}: timed out`));
      }, this.#timeoutMs);
      socket.onopen = () => {
        clearTimeout(timer);
        this.#lastInbound = Date.now();
        this.#lastError = void 0;
        socket.onclose = (event) => this.#onClose(socket, closeCode(event.code), event.reason);
        this.#startHeartbeat();
        this.#emit("open", void 0);
        resolve();
      };
      socket.onclose = (event) => {
        clearTimeout(timer);
        reject(new SignalFishConnectionError(`Cannot connect to ${this.url}`, closeCode(event.code)));
      };
      socket.onmessage = (event) => this.#onFrame(socket, event.data);
    });
  }
  get #timeoutMs() {
    return this.#options.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  }
  #requireOpen() {
    if (this.#status !== "open" || this.#socket?.readyState !== OPEN) {
      const state = this.#status === "open" ? "closing" : this.#status;
      throw new SignalFishConnectionError(`Cannot send: the connection is ${state}`);
    }
  }
  #send(message) {
    this.#requireOpen();
    this.#socket.send(JSON.stringify(message));
    if (message.type === "Ping") this.#pingsSent++;
    if (message.type !== "Authenticate") this.#armHeartbeat();
  }
  /**
   * Lets the heartbeat send on the current socket from now on. Called when authentication
   * succeeded on it, or when the app sent it a message other than `Authenticate`: until then the
   * client cannot know whether the server requires authentication, and there a `Ping` before
   * `Authenticate` closes the connection (docs/spec/PROTOCOL.md §7.1.1), so the heartbeat must
   * never be the first message. The silence count starts here too: before it nothing the
   * client sent asks for an answer.
   */
  #armHeartbeat() {
    if (this.#heartbeatArmed) return;
    this.#heartbeatArmed = true;
    this.#lastInbound = Date.now();
  }
  /**
   * Sends `message` (unless `null`) and waits for the replies `handle` accepts. Never throws:
   * a connection that is not open (checked unless `internal`) rejects the returned promise.
   */
  #request(message, handle, internal = false) {
    if (!internal) {
      try {
        this.#requireOpen();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    let pending;
    const promise = new Promise((resolve, reject) => {
      pending = {
        handle,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#pending = this.#pending.filter((other) => other !== pending);
          reject(new SignalFishConnectionError(`No answer within ${this.#timeoutMs} ms`));
        }, this.#timeoutMs)
      };
    });
    this.#pending.push(pending);
    if (message) {
      try {
        this.#socket.send(JSON.stringify(message));
        if (message.type === "Ping") this.#pingsSent++;
        if (message.type !== "Authenticate") this.#armHeartbeat();
      } catch (error) {
        this.#settle(pending, {
          error
        });
      }
    }
    return promise;
  }
  /**
   * Sends `Ping` and resolves on its own `Pong`: the server answers every `Ping` with one `Pong`
   * in order (docs/spec/PROTOCOL.md §1.5, §7.10), so the n-th `Pong` on a socket answers its n-th
   * `Ping`, whichever request sent the others (a `Pong` whose request already settled, on an
   * error or a timeout, answers nobody). `handle` may settle the request on other replies first.
   */
  #pingRequest(handle = () => void 0, internal = false) {
    let mine = 0;
    const promise = this.#request({
      type: "Ping"
    }, (reply) => {
      if (reply.type !== "Pong") return handle(reply);
      return this.#pongsReceived === mine ? {
        value: void 0
      } : void 0;
    }, internal);
    mine = this.#pingsSent;
    return promise;
  }
  #settle(pending, outcome) {
    clearTimeout(pending.timer);
    this.#pending = this.#pending.filter((other) => other !== pending);
    if ("error" in outcome) pending.reject(outcome.error);
    else pending.resolve(outcome.value);
  }
  /** Offers `message` to the pending requests in order; true when one consumed it. */
  #offer(message) {
    for (const pending of this.#pending) {
      const outcome = pending.handle(message);
      if (outcome === void 0) continue;
      if (outcome !== "more") this.#settle(pending, outcome);
      return true;
    }
    return false;
  }
  #failPending(error) {
    const pending = this.#pending;
    this.#pending = [];
    for (const entry of pending) {
      clearTimeout(entry.timer);
      entry.reject(error);
    }
  }
  #onFrame(socket, frame) {
    if (socket !== this.#socket) return;
    this.#lastInbound = Date.now();
    if (typeof frame === "string") {
      let message;
      try {
        message = JSON.parse(frame);
      } catch {
        return;
      }
      this.#dispatch(message, false);
    } else if (frame instanceof ArrayBuffer) {
      this.#onBinary(new Uint8Array(frame));
    }
  }
  #onBinary(bytes) {
    let envelope;
    try {
      const raw = decodeMessagePack(bytes);
      const from = raw?.from_player;
      if (!(from instanceof Uint8Array) || from.length !== 16) return;
      if (!(raw.payload instanceof Uint8Array)) return;
      envelope = {
        from_player: uuidFromBytes(from),
        encoding: raw.encoding,
        payload: raw.payload
      };
    } catch {
      return;
    }
    let data;
    try {
      data = decodeMessagePack(envelope.payload);
    } catch {
      data = void 0;
    }
    this.#emit("GameDataBinary", envelope);
    this.#emit("gameData", {
      from_player: envelope.from_player,
      data,
      binary: true,
      payload: envelope.payload,
      replayed: false
    });
  }
  /** Applies one server message: pending requests, room state, then events. */
  #dispatch(message, replayed) {
    if (!replayed && message.type === "Pong") this.#pongsReceived++;
    const consumed = replayed ? false : this.#offer(message);
    this.#track(message, replayed);
    this.#emit("message", message);
    this.#emit(message.type, message.data);
    if (message.type === "GameData") {
      this.#emit("gameData", {
        ...message.data,
        binary: false,
        replayed
      });
    }
    const refusal = unclaimedRefusal(message);
    if (refusal && !consumed) {
      this.#lastError = refusal;
      this.#emit("error", refusal);
    }
  }
  #emit(event, payload) {
    const listeners = this.#listeners.get(event);
    if (!listeners) return;
    for (const listener of [
      ...listeners
    ]) {
      try {
        listener(payload);
      } catch (error) {
        this.#listenerFailed(error, event);
      }
    }
  }
  /**
   * Reports a listener's exception without ever throwing. Not `reportError`: in Deno (and
   * wherever it dispatches an unhandled `error` event) that ends the process.
   */
  #listenerFailed(error, event) {
    const hook = this.#options.onListenerError;
    if (hook) {
      try {
        hook(error, event);
        return;
      } catch (hookError) {
        console.error(`SignalFishClient: onListenerError threw for "${event}":`, hookError);
      }
    }
    console.error(`SignalFishClient: a "${event}" listener threw:`, error);
  }
  #startHeartbeat() {
    clearInterval(this.#heartbeat);
    const interval = this.#options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS;
    if (interval <= 0) return;
    this.#heartbeat = setInterval(() => {
      const socket = this.#socket;
      if (!socket || socket.readyState !== OPEN || !this.#heartbeatArmed) return;
      if (Date.now() - this.#lastInbound > 3 * interval) {
        this.#wentSilent = true;
        this.#onClose(socket, DEAD_CONNECTION_CLOSE_CODE, "No response to heartbeat");
        socket.onclose = null;
        socket.close(DEAD_CONNECTION_CLOSE_CODE);
        return;
      }
      this.#pingRequest(void 0, true).catch(() => {
      });
    }, interval);
  }
  #onClose(socket, code, reason) {
    if (socket !== this.#socket) return;
    this.#lastClose = {
      code,
      reason
    };
    clearInterval(this.#heartbeat);
    this.#heartbeat = void 0;
    this.#failPending(new SignalFishConnectionError(`Connection closed (${code}${reason ? ` ${reason}` : ""})`, code, {
      cause: this.#lastError
    }));
    if (this.#status === "reconnecting") return;
    const options = this.#reconnect;
    const worthIt = this.#seat?.token !== void 0 || this.#spectating !== void 0 || options?.whenIdle === true;
    const canReconnect = !this.#closing && this.#status !== "connecting" && options !== void 0 && worthIt && !NO_RECONNECT_CLOSE_CODES.has(code);
    if (!canReconnect) {
      this.#finishClose(code, reason);
      return;
    }
    this.#cancelled = false;
    this.#setStatus("reconnecting");
    this.#emit("close", {
      code,
      reason,
      reconnecting: true
    });
    void this.#reconnectLoop();
  }
  #finishClose(code, reason) {
    const wasClosed = this.#status === "closed";
    this.#setStatus("closed");
    clearInterval(this.#heartbeat);
    this.#heartbeat = void 0;
    this.#seat = void 0;
    this.#spectating = void 0;
    this.#setRoom(void 0);
    if (!wasClosed) this.#emit("close", {
      code,
      reason,
      reconnecting: false
    });
  }
  #setStatus(status) {
    const previous = this.#status;
    if (previous === status) return;
    this.#status = status;
    if (status === "open" || status === "closed") {
      const waiters = this.#openWaiters.splice(0);
      const error = this.#endError ?? new SignalFishConnectionError("The client was closed");
      for (const waiter of waiters) {
        if (status === "open") waiter.resolve();
        else waiter.reject(error);
      }
    }
    this.#emit("status", {
      status,
      previous
    });
  }
  // -------------------------------------------------------------------------------------------
  // Authentication and reconnection
  async #authenticateOnce(data) {
    const message = {
      type: "Authenticate",
      data: withoutUndefined(data)
    };
    let authenticated;
    const protocolInfo = await this.#request(message, (reply) => {
      switch (reply.type) {
        case "AuthenticationError":
          return failure(reply.data.error_code, reply.data.error, "AuthenticationError");
        case "Authenticated":
          authenticated = reply.data;
          return "more";
        case "ProtocolInfo":
          return authenticated ? {
            value: reply.data
          } : void 0;
        case "Error":
          if (reply.data.error_code === "UNSUPPORTED_GAME_DATA_FORMAT") return "more";
          return errorWith(reply, [
            "AUTHENTICATION_REQUIRED"
          ]);
      }
    }, true);
    const wanted = data.game_data_format ?? "json";
    const gameDataFormat = wanted !== "json" && protocolInfo.game_data_formats.includes(wanted) ? wanted : "json";
    this.#authResult = {
      authenticated,
      protocolInfo,
      gameDataFormat
    };
    this.#armHeartbeat();
    return this.#authResult;
  }
  /** Sends `Reconnect` for `seat` and resolves with `Reconnected` (not yet applied). */
  #sendReconnect(seat, internal) {
    const message = {
      type: "Reconnect",
      data: {
        player_id: seat.playerId,
        room_id: seat.roomId,
        auth_token: seat.token
      }
    };
    return this.#request(message, (reply) => {
      if (reply.type === "Reconnected") return {
        value: reply.data
      };
      if (reply.type === "ReconnectionFailed") {
        return failure(reply.data.error_code, reply.data.reason, "ReconnectionFailed");
      }
      return errorWith(reply, [
        "AUTHENTICATION_REQUIRED"
      ]);
    }, internal);
  }
  #backoffMs(attempt) {
    const options = this.#reconnect;
    const exponential = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** (attempt - 1));
    const floor = options.jitter === "equal" ? exponential / 2 : 0;
    return Math.round(floor + options.random() * (exponential - floor));
  }
  /** Waits `ms`, or less when `close()` or `cancelReconnect()` is called meanwhile. */
  #sleep(ms) {
    return new Promise((resolve) => {
      this.#wakeReconnect = resolve;
      this.#reconnectTimer = setTimeout(resolve, ms);
    });
  }
  /**
   * Abandons the current socket without a `close` event (a failed reconnection attempt): stops
   * its heartbeat, fails its pending requests (clearing their timers), ignores its frames and
   * closes it.
   */
  #abandonSocket() {
    clearInterval(this.#heartbeat);
    this.#heartbeat = void 0;
    this.#failPending(new SignalFishConnectionError("Connection abandoned"));
    const socket = this.#socket;
    if (!socket) return;
    socket.onclose = null;
    socket.onmessage = null;
    if (socket.readyState !== CLOSED) socket.close();
  }
  /**
   * Gives the seat up after reconnection failed for good; `open` = the socket stays usable.
   * Otherwise the socket is abandoned and no timer of the client is left running.
   */
  #giveUp(error, open) {
    if (!open) {
      this.#abandonSocket();
      clearTimeout(this.#reconnectTimer);
    }
    this.#seat = void 0;
    this.#spectating = void 0;
    this.#wentSilent = false;
    this.#setRoom(void 0);
    if (!open) this.#endError = error;
    this.#setStatus(open ? "open" : "closed");
    this.#emit("reconnectFailed", error);
    if (!open) {
      const { code, reason } = this.#lastClose ?? {
        code: ABNORMAL_CLOSE_CODE,
        reason: ""
      };
      this.#emit("close", {
        code,
        reason,
        reconnecting: false
      });
    }
  }
  async #reconnectLoop() {
    const options = this.#reconnect;
    const deadline = Date.now() + options.maxElapsedMs;
    let lastError = new SignalFishConnectionError("Cannot reconnect");
    let notBefore = 0;
    for (let attempt = 1; attempt <= options.maxAttempts; attempt++) {
      const now = Date.now();
      const delayMs = Math.min(Math.max(this.#backoffMs(attempt), notBefore - now), Math.max(0, deadline - now));
      this.#emit("reconnecting", {
        attempt,
        delayMs
      });
      await this.#sleep(delayMs);
      if (this.#closing) return this.#finishClose(1e3, "");
      if (this.#cancelled) break;
      try {
        await this.#openSocket();
        this.#authResult = void 0;
        const auth = this.#authData ?? this.#autoAuth;
        if (auth) {
          await this.#authenticateOnce(auth);
          this.#authData = auth;
        }
        if (this.#cancelled) throw new SignalFishConnectionError("Reconnection cancelled");
        const seat = this.#seat;
        const spectating = this.#spectating;
        if (seat?.token !== void 0) {
          const data = await this.#sendReconnect(seat, true);
          this.#setStatus("open");
          this.#restore(data);
        } else if (spectating) {
          const joined = await this.#request({
            type: "JoinAsSpectator",
            data: spectating
          }, (reply) => {
            if (reply.type === "SpectatorJoined") return {
              value: reply.data
            };
            if (reply.type === "SpectatorJoinFailed") {
              return failure(reply.data.error_code, reply.data.reason, "SpectatorJoinFailed");
            }
            return parseError(reply);
          }, true);
          this.#setStatus("open");
          this.#emit("respectated", joined);
        } else {
          this.#setStatus("open");
        }
        return;
      } catch (error) {
        if (this.#closing) return this.#finishClose(1e3, "");
        if (error instanceof SignalFishError && !TEMPORARY_REFUSALS.has(error.code)) {
          if (error.messageType !== "AuthenticationError") await this.#clearSession();
          return this.#giveUp(error, this.#socket?.readyState === OPEN);
        }
        lastError = error;
        this.#abandonSocket();
        if (error instanceof SignalFishError) {
          notBefore = Date.now() + retryAfterMs(error);
          if (notBefore > deadline) break;
        }
        if (this.#cancelled || Date.now() >= deadline) break;
      }
    }
    if (this.#cancelled) lastError = new SignalFishConnectionError("Reconnection cancelled");
    this.#giveUp(lastError, false);
  }
  /** Applies a `Reconnected`: replays missed events in order, then takes the fresh snapshot. */
  #restore(data) {
    if (this.#wentSilent) {
      this.#wentSilent = false;
      if (!data.replay_truncated) data = {
        ...data,
        replay_truncated: true
      };
    }
    const dropped = this.#room ? void 0 : droppedIn(data.missed_events);
    for (const missed of data.missed_events) this.#dispatch(missed, true);
    this.#seat = {
      playerId: data.player_id,
      roomId: data.room_id,
      token: data.reconnection_token
    };
    this.#spectating = void 0;
    const room = roomFromSnapshot(data);
    const present = new Set(room.players.map((p) => p.id));
    room.dropped = (dropped ?? this.#room?.dropped ?? []).filter((d) => present.has(d.player_id));
    this.#setRoom(room);
    this.#saveSession();
    this.#emit("reconnected", data);
  }
  // -------------------------------------------------------------------------------------------
  // Session store (resume after a reload)
  #saveSession() {
    const store = this.#store;
    const room = this.#room;
    if (!store) return;
    let record;
    const seat = this.#seat;
    if (seat?.token !== void 0 && room?.role === "player") {
      record = {
        v: 1,
        role: "player",
        player_id: seat.playerId,
        room_id: seat.roomId,
        room_code: room.roomCode,
        game_name: room.gameName,
        token: seat.token
      };
    } else if (this.#spectating) {
      record = {
        v: 1,
        role: "spectator",
        ...this.#spectating
      };
    }
    if (!record) return;
    try {
      void Promise.resolve(store.setItem(this.#sessionKey, JSON.stringify(record))).catch(() => {
      });
    } catch {
    }
  }
  async #clearSession() {
    try {
      await this.#store?.removeItem(this.#sessionKey);
    } catch {
    }
  }
  // -------------------------------------------------------------------------------------------
  // Room state
  #setRoom(room) {
    if (room === void 0 && this.#room === void 0) return;
    this.#room = room;
    this.#emit("room", room ? cloneRoom(room) : null);
  }
  /**
   * Updates the room model from one server message (docs/spec/PROTOCOL.md §6, §11); `replayed`
   * when it came in `Reconnected.missed_events`.
   */
  #track(message, replayed) {
    const room = this.#room;
    switch (message.type) {
      case "RoomJoined": {
        const { data } = message;
        this.#seat = {
          playerId: data.player_id,
          roomId: data.room_id,
          token: data.reconnection_token
        };
        this.#spectating = void 0;
        this.#setRoom(roomFromSnapshot(data));
        return this.#saveSession();
      }
      case "Reconnected":
        return;
      // Applied by #restore after the replay.
      case "SpectatorJoined": {
        const { data } = message;
        return this.#setRoom({
          role: "spectator",
          roomId: data.room_id,
          roomCode: data.room_code,
          gameName: data.game_name,
          selfId: data.spectator_id,
          maxPlayers: void 0,
          supportsAuthority: void 0,
          players: data.current_players,
          spectators: data.current_spectators,
          lobbyState: data.lobby_state,
          readyPlayers: data.current_players.filter((p) => p.is_ready).map((p) => p.id),
          authorityPlayer: data.current_players.find((p) => p.is_authority)?.id ?? null,
          dropped: []
        });
      }
      case "RoomLeft":
        this.#seat = void 0;
        void this.#clearSession();
        return this.#setRoom(void 0);
      case "SpectatorLeft":
        this.#spectating = void 0;
        void this.#clearSession();
        return this.#setRoom(void 0);
    }
    if (!room) return;
    switch (message.type) {
      case "PlayerJoined": {
        const players = room.players.filter((p) => p.id !== message.data.player.id);
        return this.#setRoom({
          ...room,
          players: [
            ...players,
            message.data.player
          ]
        });
      }
      case "PlayerDisconnected": {
        const { player_id, seat_held_secs } = message.data;
        const dropped = room.dropped.filter((d) => d.player_id !== player_id);
        dropped.push({
          player_id,
          heldUntil: Date.now() + seat_held_secs * 1e3,
          replayed
        });
        return this.#setRoom({
          ...room,
          dropped
        });
      }
      case "PlayerReconnected": {
        const id = message.data.player_id;
        if (!room.dropped.some((d) => d.player_id === id)) return;
        return this.#setRoom({
          ...room,
          dropped: room.dropped.filter((d) => d.player_id !== id)
        });
      }
      case "PlayerLeft": {
        const id = message.data.player_id;
        return this.#setRoom({
          ...room,
          dropped: room.dropped.filter((d) => d.player_id !== id),
          players: room.players.filter((p) => p.id !== id),
          readyPlayers: room.readyPlayers.filter((ready) => ready !== id),
          authorityPlayer: room.authorityPlayer === id ? null : room.authorityPlayer
        });
      }
      case "LobbyStateChanged": {
        const ready = message.data.ready_players;
        return this.#setRoom({
          ...room,
          lobbyState: message.data.lobby_state,
          readyPlayers: [
            ...ready
          ],
          players: room.players.map((p) => ({
            ...p,
            is_ready: ready.includes(p.id)
          }))
        });
      }
      case "AuthorityChanged": {
        const holder = message.data.authority_player;
        return this.#setRoom({
          ...room,
          authorityPlayer: holder,
          players: room.players.map((p) => ({
            ...p,
            is_authority: p.id === holder
          }))
        });
      }
      // The arrival or departure itself, not `current_spectators`: the server lists at most
      // the first 16 spectators there (docs/spec/PROTOCOL.md §7.9 note).
      case "NewSpectatorJoined": {
        const { spectator } = message.data;
        const spectators = room.spectators.filter((s) => s.id !== spectator.id);
        return this.#setRoom({
          ...room,
          spectators: [
            ...spectators,
            spectator
          ]
        });
      }
      case "SpectatorDisconnected": {
        const id = message.data.spectator_id;
        return this.#setRoom({
          ...room,
          spectators: room.spectators.filter((s) => s.id !== id)
        });
      }
    }
  }
};
function droppedIn(replay) {
  let dropped = [];
  for (const message of replay) {
    if (message.type === "PlayerDisconnected") {
      const { player_id, seat_held_secs } = message.data;
      dropped = dropped.filter((d) => d.player_id !== player_id);
      dropped.push({
        player_id,
        heldUntil: Date.now() + seat_held_secs * 1e3,
        replayed: true
      });
    } else if (message.type === "PlayerReconnected" || message.type === "PlayerLeft") {
      const id = message.data.player_id;
      dropped = dropped.filter((d) => d.player_id !== id);
    }
  }
  return dropped;
}
function roomFromSnapshot(data) {
  return {
    role: "player",
    roomId: data.room_id,
    roomCode: data.room_code,
    gameName: data.game_name,
    selfId: data.player_id,
    maxPlayers: data.max_players,
    supportsAuthority: data.supports_authority,
    players: data.current_players,
    spectators: data.current_spectators,
    lobbyState: data.lobby_state,
    readyPlayers: [
      ...data.ready_players
    ],
    authorityPlayer: data.current_players.find((p) => p.is_authority)?.id ?? null,
    dropped: []
  };
}
function cloneRoom(room) {
  return {
    ...room,
    players: room.players.map((p) => ({
      ...p
    })),
    spectators: room.spectators.map((s) => ({
      ...s
    })),
    readyPlayers: [
      ...room.readyPlayers
    ],
    dropped: room.dropped.map((d) => ({
      ...d
    }))
  };
}
function defaultSessionStore() {
  try {
    const storage = globalThis.sessionStorage;
    return storage && typeof storage.getItem === "function" ? storage : void 0;
  } catch {
    return void 0;
  }
}
async function lookupRoom(url, gameName, roomCode, app) {
  const base = new URL(endpointUrl(url));
  base.protocol = base.protocol === "wss:" ? "https:" : "http:";
  const target = new URL(`/v2/rooms/${encodeURIComponent(gameName)}/${encodeURIComponent(roomCode)}`, base);
  const headers = {
    accept: "application/json"
  };
  if (app) {
    target.searchParams.set("app_id", app.appId);
    if (app.appSecret !== void 0) headers["x-app-secret"] = app.appSecret;
  }
  let response;
  try {
    response = await fetch(target, {
      headers
    });
  } catch (error) {
    throw new SignalFishConnectionError(`Cannot reach ${target.origin}`, void 0, {
      cause: error
    });
  }
  const body = await response.json().catch(() => void 0);
  if (response.status === 404) return null;
  if (!response.ok) {
    throw new SignalFishError(body?.error_code ?? "INTERNAL_ERROR", body?.message ?? `HTTP ${response.status}`, "Error");
  }
  return body;
}
function unclaimedRefusal(message) {
  switch (message.type) {
    case "Error":
      return new SignalFishError(message.data.error_code ?? "INTERNAL_ERROR", message.data.message, "Error");
    case "AuthenticationError":
      return new SignalFishError(message.data.error_code, message.data.error, message.type);
    case "RoomJoinFailed":
    case "SpectatorJoinFailed":
      return new SignalFishError(message.data.error_code ?? "INTERNAL_ERROR", message.data.reason, message.type);
    case "ReconnectionFailed":
      return new SignalFishError(message.data.error_code, message.data.reason, message.type);
  }
  return void 0;
}
function withoutUndefined(data) {
  return Object.fromEntries(Object.entries(data).filter(([, value]) => value !== void 0));
}
export {
  ERROR_CODES,
  SignalFishClient,
  SignalFishConnectionError,
  SignalFishError,
  decodeMessagePack,
  encodeMessagePack,
  endpointUrl,
  lookupRoom
};
