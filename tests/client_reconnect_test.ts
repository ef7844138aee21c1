/**
 * The client's automatic reconnection (docs/spec/PROTOCOL.md §7.11, docs/spec/EXTENSIONS.md E1–E3), heartbeat,
 * binary envelopes (§7.7) and `setReady()` against resets of the ready set (§7.4), driven by a
 * scripted stand-in server so every branch (replay order, refusals, backoff exhaustion,
 * takeover, dead connections, a reset crossing a toggle) can be forced exactly.
 *
 * @module
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import {
  type ClientEvents,
  type ClientOptions,
  type ServerMessage,
  SignalFishClient,
  SignalFishConnectionError,
  SignalFishError,
} from "../src/client/client.ts";
import { memoryStore, nextEvent } from "./client_helpers.ts";
import { TIMEOUT_MS } from "./helpers.ts";
import { startTcpProxy } from "./tcp_proxy.ts";

const PLAYER = "3f2b8c1e-9a47-4d0b-8e21-6c5f0a9d7b34";
const OTHER = "b71d04a9-2e6c-4f83-a5d2-09e8c3f61a57";
const ROOM = "c0a8e5d2-71f4-4b69-9d3e-2f18a6b4c90e";

type Reply = (message: { type: string; data?: Record<string, unknown> }, socket: WebSocket) => void;

/** A WebSocket server that answers with a script and records what each connection sent. */
class ScriptedServer implements AsyncDisposable {
  readonly received: { connection: number; message: { type: string; data?: unknown } }[] = [];
  readonly sockets: WebSocket[] = [];
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  #reply: Reply;
  #connected: (() => void)[] = [];

  constructor(reply: Reply) {
    this.#reply = reply;
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      const connection = this.sockets.length;
      this.sockets.push(socket);
      socket.onopen = () => this.#connected.splice(0).forEach((wake) => wake());
      socket.binaryType = "arraybuffer";
      socket.onmessage = (event) => {
        if (typeof event.data !== "string") return;
        const message = JSON.parse(event.data);
        this.received.push({ connection, message });
        this.#reply(message, socket);
      };
      return response;
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}`;
  }

  set reply(reply: Reply) {
    this.#reply = reply;
  }

  /** Resolves when connection number `count` (1-based) is open. */
  async connections(count: number): Promise<void> {
    while (this.sockets.length < count || this.sockets[count - 1]!.readyState !== WebSocket.OPEN) {
      await new Promise<void>((resolve) => this.#connected.push(resolve));
    }
  }

  /** Messages of one `type` the server received, with the connection index. */
  sent(type: string) {
    return this.received.filter((entry) => entry.message.type === type);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const socket of this.sockets) {
      if (socket.readyState === WebSocket.OPEN) socket.close();
    }
    await this.#server.shutdown();
  }
}

function send(socket: WebSocket, message: ServerMessage): void {
  socket.send(JSON.stringify(message));
}

function player(id: string, name: string) {
  return {
    id,
    name,
    is_authority: id === PLAYER,
    is_ready: false,
    connected_at: "2026-03-04T18:22:05.123Z",
  };
}

function snapshot(players: ReturnType<typeof player>[]) {
  return {
    room_id: ROOM,
    room_code: "Q7KM3P",
    player_id: PLAYER,
    game_name: "orbit",
    max_players: 2,
    supports_authority: true,
    current_players: players,
    is_authority: true,
    lobby_state: players.length === 2 ? "lobby" as const : "waiting" as const,
    ready_players: [],
    relay_type: "matchbox",
    current_spectators: [],
  };
}

/** Answers Authenticate, JoinRoom and Ping like the real server, with reconnection on. */
const basics: Reply = (message, socket) => {
  switch (message.type) {
    case "Authenticate":
      send(socket, {
        type: "Authenticated",
        data: { app_name: "default", rate_limits: { per_minute: 1, per_hour: 60, per_day: 1440 } },
      });
      send(socket, {
        type: "ProtocolInfo",
        data: { capabilities: ["reconnection-token"], game_data_formats: ["json", "message_pack"] },
      });
      break;
    case "JoinRoom":
      send(socket, {
        type: "RoomJoined",
        data: { ...snapshot([player(PLAYER, "mira")]), reconnection_token: "token-1" },
      });
      break;
    case "Ping":
      send(socket, { type: "Pong" });
      break;
  }
};

const OPTIONS: ClientOptions = {
  heartbeatIntervalMs: 0,
  requestTimeoutMs: TIMEOUT_MS,
  reconnect: { initialDelayMs: 20, maxDelayMs: 40, random: () => 0, maxAttempts: 3 },
};

/** Deno's op and resource sanitizers, which this Deno version no longer runs by default. */
const SANITIZED = { sanitizeOps: true, sanitizeResources: true };

/** A client that authenticated and holds a seat (token "token-1") on `server`. */
async function seated(server: { url: string }, options: ClientOptions = {}) {
  const client = await SignalFishClient.connect(server.url, { ...OPTIONS, ...options });
  await client.authenticate({ app_id: "demo", game_data_format: "message_pack" });
  await client.createRoom({ game_name: "orbit", player_name: "mira", max_players: 2 });
  equal(client.reconnectionToken, "token-1");
  return client;
}

Deno.test("SignalFishClient reconnects with its token and replays missed events in order", async () => {
  await using server = new ScriptedServer(basics);
  await using client = await seated(server);
  const log: string[] = [];
  client.on("message", (m) => log.push(`message ${m.type}`));
  client.on(
    "gameData",
    (g) => log.push(`gameData ${JSON.stringify(g.data)} replayed=${g.replayed}`),
  );
  client.on("close", (e) => log.push(`close ${e.code} reconnecting=${e.reconnecting}`));
  client.on("reconnecting", (r) => log.push(`reconnecting ${r.attempt} in ${r.delayMs}`));
  client.on("reconnected", (r) => log.push(`reconnected ${r.missed_events.length}`));
  const bob = player(OTHER, "bob");
  server.reply = (message, socket) => {
    if (message.type !== "Reconnect") return basics(message, socket);
    send(socket, {
      type: "Reconnected",
      data: {
        ...snapshot([player(PLAYER, "mira"), bob]),
        missed_events: [
          { type: "PlayerJoined", data: { player: bob } },
          { type: "GameData", data: { from_player: OTHER, data: "m1" } },
          { type: "GameData", data: { from_player: OTHER, data: { n: 2 } } },
          {
            type: "LobbyStateChanged",
            data: { lobby_state: "lobby", ready_players: [], all_ready: false },
          },
        ],
        reconnection_token: "token-2",
        replay_truncated: false,
      },
    });
  };
  const reconnected = nextEvent(client, "reconnected");
  server.sockets[0]!.close(1011, "Internal error"); // A held-seat close (docs/spec/PROTOCOL.md §1.6).
  const data = await reconnected;

  equal(data.replay_truncated, false);
  deepEqual(log, [
    "close 1011 reconnecting=true",
    "reconnecting 1 in 0", // full jitter: random() = 0 draws no delay at all
    "message Authenticated",
    "message ProtocolInfo",
    "message Reconnected",
    "message PlayerJoined",
    "message GameData",
    'gameData "m1" replayed=true',
    "message GameData",
    'gameData {"n":2} replayed=true',
    "message LobbyStateChanged",
    "reconnected 4",
  ]);
  // The second connection authenticated again before sending Reconnect with the old token.
  deepEqual(
    server.received.filter((e) => e.connection === 1).map((e) => e.message.type),
    ["Authenticate", "Reconnect"],
  );
  deepEqual(server.sent("Reconnect")[0]!.message.data, {
    player_id: PLAYER,
    room_id: ROOM,
    auth_token: "token-1",
  });
  equal(client.status, "open");
  equal(client.reconnectionToken, "token-2");
  deepEqual(client.room!.players.map((p) => p.name), ["mira", "bob"]);
  equal(client.room!.lobbyState, "lobby");
  // The new connection carries requests and live data.
  ok((await client.ping()) >= 0);
  const live = nextEvent(client, "gameData");
  send(server.sockets[1]!, { type: "GameData", data: { from_player: OTHER, data: "live" } });
  deepEqual(await live, { from_player: OTHER, data: "live", binary: false, replayed: false });
});

Deno.test("SignalFishClient gives the seat up when the server refuses Reconnect", async () => {
  await using server = new ScriptedServer(basics);
  await using client = await seated(server);
  server.reply = (message, socket) => {
    if (message.type !== "Reconnect") return basics(message, socket);
    send(socket, {
      type: "ReconnectionFailed",
      data: { reason: "Reconnection window has expired", error_code: "RECONNECTION_EXPIRED" },
    });
  };
  const rooms: unknown[] = [];
  client.on("room", (room) => rooms.push(room));
  const failed = nextEvent(client, "reconnectFailed");
  server.sockets[0]!.close(1001, "No response from ping frame.");
  const error = await failed;
  ok(error instanceof SignalFishError);
  equal(error.code, "RECONNECTION_EXPIRED");
  equal(error.messageType, "ReconnectionFailed");
  deepEqual(rooms, [null]);
  equal(client.reconnectionToken, undefined);
  // The new connection stays open, so the app can join again.
  equal(client.status, "open");
  await client.createRoom({ game_name: "orbit", player_name: "mira" });
  equal(client.room!.roomCode, "Q7KM3P");
});

Deno.test("SignalFishClient backs off exponentially and gives up when the server is gone", async () => {
  const server = new ScriptedServer(basics);
  await using client = await seated(server, {
    reconnect: { initialDelayMs: 10, maxDelayMs: 25, random: () => 0.5, maxAttempts: 3 },
  });
  const attempts: ClientEvents["reconnecting"][] = [];
  client.on("reconnecting", (event) => attempts.push(event));
  const closes: ClientEvents["close"][] = [];
  client.on("close", (event) => closes.push(event));
  const failed = nextEvent(client, "reconnectFailed");
  await server[Symbol.asyncDispose](); // Closes the socket and stops listening.
  const error = await failed;
  ok(error instanceof SignalFishConnectionError);
  // Bases 10, 20, 25 (capped), full jitter drawn half way: 0.5 * d.
  deepEqual(attempts, [
    { attempt: 1, delayMs: 5 },
    { attempt: 2, delayMs: 10 },
    { attempt: 3, delayMs: 13 },
  ]);
  deepEqual(closes.map((c) => c.reconnecting), [true, false]);
  equal(client.status, "closed");
  equal(client.room, undefined);
});

/** A `ReconnectionFailed` with `error_code` and `reason`. */
function reconnectionFailed(error_code: string, reason: string): ServerMessage {
  return { type: "ReconnectionFailed", data: { error_code, reason } } as ServerMessage;
}

Deno.test("SignalFishClient keeps its seat through temporary refusals and waits as told", async () => {
  await using server = new ScriptedServer(basics);
  const store = memoryStore();
  await using client = await seated(server, {
    session: store,
    reconnect: { initialDelayMs: 20, maxDelayMs: 40, random: () => 0, maxAttempts: 5 },
  });
  // The server still holds the seat but says "not now" three times (docs/spec/PROTOCOL.md
  // §7.11.4: shared store unreachable, an unexpected failure, the per-IP reconnect bucket).
  const answers = [
    reconnectionFailed("SERVICE_UNAVAILABLE", "Service temporarily unavailable"),
    reconnectionFailed("INTERNAL_ERROR", "Internal error"),
    reconnectionFailed(
      "RATE_LIMIT_EXCEEDED",
      "Reconnect attempt rate limit exceeded. Try again in 1 seconds.",
    ),
    reconnectedWith("token-2"),
  ];
  server.reply = (message, socket) => {
    if (message.type !== "Reconnect") return basics(message, socket);
    send(socket, answers.shift()!);
  };
  const log: string[] = [];
  client.on("room", (room) => log.push(`room ${room === null ? "null" : room.roomCode}`));
  client.on("reconnectFailed", (error) => log.push(`reconnectFailed ${error.message}`));
  const delays: number[] = [];
  client.on("reconnecting", ({ delayMs }) => delays.push(delayMs));
  const reconnected = nextEvent(client, "reconnected");
  server.sockets[0]!.close(1011);
  await reconnected;

  deepEqual(log, ["room Q7KM3P"], "the seat was never given up");
  // Full jitter with random() = 0 draws no delay; after the rate limit, the 1 s it named.
  deepEqual(delays.slice(0, 3), [0, 0, 0]);
  ok(delays[3]! >= 990 && delays[3]! <= 1000, `waited ${delays[3]} ms after the rate limit`);
  // Each try was a fresh connection with the same, still valid token.
  deepEqual(
    server.sent("Reconnect").map((
      e,
    ) => [e.connection, (e.message.data as { auth_token: string }).auth_token]),
    [[1, "token-1"], [2, "token-1"], [3, "token-1"], [4, "token-1"]],
  );
  equal(client.status, "open");
  equal(client.reconnectionToken, "token-2");
  const stored = await client.storedSession();
  equal(stored?.role === "player" ? stored.token : undefined, "token-2");
});

Deno.test({
  name: "SignalFishClient gives up after temporary refusals only when out of attempts or time",
  ...SANITIZED,
}, async () => {
  await using server = new ScriptedServer(basics);
  const store = memoryStore();
  await using client = await seated(server, {
    session: store,
    reconnect: { initialDelayMs: 10, maxDelayMs: 10, random: () => 0, maxAttempts: 2 },
  });
  server.reply = (message, socket) => {
    if (message.type !== "Reconnect") return basics(message, socket);
    send(socket, reconnectionFailed("SERVICE_UNAVAILABLE", "Service temporarily unavailable"));
  };
  const closes: ClientEvents["close"][] = [];
  client.on("close", (event) => closes.push(event));
  const failed = nextEvent(client, "reconnectFailed");
  server.sockets[0]!.close(1011);
  const error = await failed;
  ok(error instanceof SignalFishError, `got ${error}`);
  equal(error.code, "SERVICE_UNAVAILABLE");
  equal(server.sent("Reconnect").length, 2, "both attempts were made");
  equal(client.status, "closed");
  deepEqual(closes.map((c) => c.reconnecting), [true, false]);
  equal(client.room, undefined);
  // The server may still hold the seat: the stored session stays for a later resume().
  const stored = await client.storedSession();
  equal(stored?.role === "player" ? stored.token : undefined, "token-1");

  // A rate limit whose wait ends after the time budget gives up at once.
  await using budget = await seated(server, {
    session: false,
    reconnect: { initialDelayMs: 10, maxDelayMs: 10, random: () => 0, maxElapsedMs: 2_000 },
  });
  server.reply = (message, socket) => {
    if (message.type !== "Reconnect") return basics(message, socket);
    send(
      socket,
      reconnectionFailed(
        "RATE_LIMIT_EXCEEDED",
        "Reconnect attempt rate limit exceeded. Try again in 60 seconds.",
      ),
    );
  };
  const before = server.sent("Reconnect").length;
  const limited = nextEvent(budget, "reconnectFailed");
  server.sockets.at(-1)!.close(1011);
  const refusal = await limited;
  ok(refusal instanceof SignalFishError && refusal.code === "RATE_LIMIT_EXCEEDED", `${refusal}`);
  equal(server.sent("Reconnect").length - before, 1, "no attempt doomed to be refused");
  equal(budget.status, "closed");
});

Deno.test({
  name: "SignalFishClient stops every timer when reconnection gives up (no close() needed)",
  ...SANITIZED,
}, async () => {
  await using server = new ScriptedServer(basics);
  // Not disposed on purpose: after giving up, nothing of the client may keep running (the
  // sanitizers fail the test on a leaked heartbeat interval or request timer).
  const client = await seated(server, {
    heartbeatIntervalMs: 60_000,
    requestTimeoutMs: 200,
    reconnect: { initialDelayMs: 10, maxDelayMs: 10, random: () => 0, maxAttempts: 1 },
  });
  // The attempt reaches the server, which never answers: the attempt's socket opened and
  // started its heartbeat, then authentication timed out.
  server.reply = () => {};
  const failed = nextEvent(client, "reconnectFailed");
  server.sockets[0]!.close(1011);
  ok((await failed) instanceof SignalFishConnectionError);
  equal(client.status, "closed");
  equal(server.sockets.length, 2, "one attempt reached the server");
  await closedSocket(server.sockets[1]!);
});

Deno.test("SignalFishClient reports a connection lost without a close frame as 1006", async () => {
  await using server = new ScriptedServer(basics);
  // Through a TCP proxy whose close() drops the connection with no close frame (Deno reports
  // that as code 0) and then refuses every attempt.
  const proxy = startTcpProxy([Number(new URL(server.url).port)]);
  await using client = await seated({ url: `http://127.0.0.1:${proxy.port}` }, {
    reconnect: { initialDelayMs: 10, maxDelayMs: 10, random: () => 0, maxAttempts: 2 },
  });
  const closes: ClientEvents["close"][] = [];
  client.on("close", (event) => closes.push(event));
  const failed = nextEvent(client, "reconnectFailed");
  await proxy.close();
  const error = await failed;
  ok(error instanceof SignalFishConnectionError);
  equal(error.closeCode, 1006, "a refused attempt too");
  deepEqual(closes, [
    { code: 1006, reason: "", reconnecting: true },
    { code: 1006, reason: "", reconnecting: false },
  ]);
});

Deno.test("SignalFishClient's final close event, on giving up, has the last real close code", async () => {
  await using server = new ScriptedServer(basics);
  // Connects to the server only while the gate is open, else to a closed port.
  let gateOpen = true;
  class Gated extends WebSocket {
    constructor(url: string) {
      super(gateOpen ? url : "ws://127.0.0.1:9/closed");
    }
  }
  await using client = await seated(server, { WebSocket: Gated });
  const closes: ClientEvents["close"][] = [];
  client.on("close", (event) => closes.push(event));
  const failed = nextEvent(client, "reconnectFailed");
  gateOpen = false;
  server.sockets[0]!.close(1011, "Internal error");
  ok((await failed) instanceof SignalFishConnectionError);
  deepEqual(closes, [
    { code: 1011, reason: "Internal error", reconnecting: true },
    { code: 1011, reason: "Internal error", reconnecting: false },
  ]);

  // When an attempt's connection closes later, that close is the last one.
  gateOpen = true;
  await using other = await seated(server, {
    WebSocket: Gated,
    reconnect: { initialDelayMs: 10, maxDelayMs: 10, random: () => 0, maxAttempts: 1 },
  });
  server.reply = (message, socket) => {
    if (message.type === "Authenticate") socket.close(1013, "Slow consumer");
    else basics(message, socket);
  };
  const otherCloses: ClientEvents["close"][] = [];
  other.on("close", (event) => otherCloses.push(event));
  const gaveUp = nextEvent(other, "reconnectFailed");
  server.sockets.at(-1)!.close(1001, "No response from ping frame.");
  ok((await gaveUp) instanceof SignalFishConnectionError);
  deepEqual(otherCloses.map((c) => [c.code, c.reason, c.reconnecting]), [
    [1001, "No response from ping frame.", true],
    [1013, "Slow consumer", false],
  ]);
});

/** Resolves once `socket` (a server-side socket) is closed; rejects after {@link TIMEOUT_MS}. */
function closedSocket(socket: WebSocket): Promise<void> {
  if (socket.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("The socket stayed open")), TIMEOUT_MS);
    socket.addEventListener("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

Deno.test({
  name: "SignalFishClient.connect() closes the connection when its authentication fails",
  ...SANITIZED,
}, async () => {
  // The server takes the connection but never answers Authenticate (an overloaded server, a
  // slow link): connect() rejects, and nothing of the client may stay behind, since the caller
  // never got it and cannot close() it. The sanitizers fail on a leaked heartbeat.
  await using server = new ScriptedServer((message, socket) => {
    if (message.type !== "Authenticate") basics(message, socket);
  });
  const options: ClientOptions = {
    ...OPTIONS,
    auth: { app_id: "demo" },
    requestTimeoutMs: 100,
    heartbeatIntervalMs: 20,
  };
  await rejects(SignalFishClient.connect(server.url, options), SignalFishConnectionError);
  await closedSocket(server.sockets[0]!);

  // The same through open(): the status goes back to "closed", never "open".
  const client = new SignalFishClient(server.url, options);
  const statuses: string[] = [];
  client.on("status", ({ status }) => statuses.push(status));
  await rejects(client.open(), SignalFishConnectionError);
  deepEqual(statuses, ["connecting", "closed"]);
  await closedSocket(server.sockets[1]!);

  // A refused authentication rejects with the refusal and closes too.
  server.reply = (message, socket) => {
    if (message.type !== "Authenticate") return basics(message, socket);
    send(socket, {
      type: "AuthenticationError",
      data: { error: "Invalid app", error_code: "INVALID_APP_ID" },
    });
  };
  await rejects(
    SignalFishClient.connect(server.url, options),
    (error) => error instanceof SignalFishError && error.code === "INVALID_APP_ID",
  );
  await closedSocket(server.sockets[2]!);
});

Deno.test({
  name: "SignalFishClient.open() while connecting or reconnecting opens no second socket",
  ...SANITIZED,
}, async () => {
  await using server = new ScriptedServer(basics);
  // Two open() calls at once: one socket, both settle together.
  await using fresh = new SignalFishClient(server.url, { ...OPTIONS, session: false });
  await Promise.all([fresh.open(), fresh.open()]);
  equal(fresh.status, "open");
  equal(server.sockets.length, 1);

  // While reconnecting (an app's "Retry" button): it waits for the reconnection's outcome.
  const slow = { initialDelayMs: 100, maxDelayMs: 100, random: () => 1, maxAttempts: 2 };
  await using client = await seated(server, { reconnect: slow });
  server.reply = (message, socket) => {
    if (message.type !== "Reconnect") return basics(message, socket);
    send(socket, reconnectedWith("token-2"));
  };
  const scheduled = nextEvent(client, "reconnecting");
  server.sockets[1]!.close(1011);
  await scheduled;
  const reconnected = nextEvent(client, "reconnected");
  await client.open();
  await reconnected;
  equal(client.status, "open");
  equal(client.reconnectionToken, "token-2");
  equal(server.sockets.length, 3, "only the reconnection's socket was opened");

  // When reconnection gives up, open() rejects with what reconnectFailed carried.
  server.reply = (message, socket) => {
    if (message.type === "Authenticate") socket.close(1013, "Slow consumer");
    else basics(message, socket);
  };
  const next = nextEvent(client, "reconnecting");
  server.sockets[2]!.close(1011);
  await next;
  const failed = nextEvent(client, "reconnectFailed");
  const error = await client.open().then(() => undefined, (error) => error);
  equal(error, await failed);
  ok(error instanceof SignalFishConnectionError);
  equal(client.status, "closed");
  equal(server.sockets.length, 5, "the two attempts only");

  // close() during the backoff settles a waiting open() too.
  server.reply = basics;
  await using other = await seated(server, {
    reconnect: { ...slow, initialDelayMs: 60_000, maxDelayMs: 60_000 },
  });
  const waiting = nextEvent(other, "reconnecting");
  server.sockets[5]!.close(1011);
  await waiting;
  const opening = other.open();
  await other.close();
  await rejects(opening, SignalFishConnectionError);
  equal(server.sockets.length, 6);
});

Deno.test("SignalFishClient does not reconnect after a takeover (4001) or its own close()", async () => {
  await using server = new ScriptedServer(basics);
  const client = await seated(server);
  let attempts = 0;
  client.on("reconnecting", () => attempts++);
  const closed = nextEvent(client, "close");
  server.sockets[0]!.close(4001, "Replaced by a new connection");
  deepEqual(await closed, {
    code: 4001,
    reason: "Replaced by a new connection",
    reconnecting: false,
  });
  equal(attempts, 0);
  equal(client.status, "closed");
  await client.close();

  const other = await seated(server);
  await other.close();
  equal(other.status, "closed");
  equal(server.sockets.length, 2); // No attempt was made after close().
});

Deno.test("SignalFishClient.close() during the backoff stops reconnecting", async () => {
  await using server = new ScriptedServer(basics);
  const client = await seated(server, {
    reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000, random: () => 0.5 },
  });
  const scheduled = nextEvent(client, "reconnecting");
  server.sockets[0]!.close(1011);
  equal((await scheduled).delayMs, 30_000);
  await client.close(); // Must clear the 30 s timer (the test sanitizer would catch a leak).
  equal(client.status, "closed");
  equal(server.sockets.length, 1);
});

Deno.test("SignalFishClient treats a silent connection as dropped and reconnects", async () => {
  await using server = new ScriptedServer(basics);
  await using client = await seated(server, { heartbeatIntervalMs: 20 });
  server.reply = (message, socket) => {
    if (message.type === "Ping") return; // Half-open: nothing comes back.
    if (message.type === "Reconnect") {
      server.reply = basics;
      // A takeover of the silent socket, as the server sees it: nothing missing.
      send(socket, reconnectedWith("token-2", [], [player(PLAYER, "mira")]));
      return;
    }
    basics(message, socket);
  };
  const closed = nextEvent(client, "close");
  const reconnected = nextEvent(client, "reconnected");
  equal((await closed).code, 4000);
  // What the server wrote to the silent socket may be lost: the client says so.
  equal((await reconnected).replay_truncated, true);
  ok(server.sent("Ping").length >= 1);
  equal(client.reconnectionToken, "token-2");
});

Deno.test("SignalFishClient.leave() during a reconnection leaves the restored seat instead of rejecting", async () => {
  await using server = new ScriptedServer(basics);
  await using client = await seated(server);
  let answerReconnect!: () => void;
  const reconnectArrived = Promise.withResolvers<void>();
  server.reply = (message, socket) => {
    if (message.type === "Reconnect") {
      answerReconnect = () => send(socket, reconnectedWith("token-2"));
      reconnectArrived.resolve();
      return;
    }
    if (message.type === "LeaveRoom") return send(socket, { type: "RoomLeft" });
    basics(message, socket);
  };
  const dropped = nextEvent(client, "close");
  server.sockets[0]!.close(1011, "Internal error");
  equal((await dropped).reconnecting, true);
  // "Leave" pressed while the client is taking the seat back: the player must end out of the
  // room, not back in it once the seat is restored.
  equal(client.status, "reconnecting");
  const leaving = client.leave();
  await reconnectArrived.promise;
  answerReconnect();
  await leaving;
  equal(client.room, undefined);
  equal(client.status, "open");
  deepEqual(
    server.received.filter((e) => e.connection === 1).map((e) => e.message.type),
    ["Authenticate", "Reconnect", "LeaveRoom"],
  );

  // The connection drops while LeaveRoom waits for its answer (the server never read it): the
  // client takes the seat back and leaves it then.
  await using third = await seated(server);
  let leaves = 0;
  server.reply = (message, socket) => {
    if (message.type === "LeaveRoom" && leaves++ === 0) return socket.close(1011, "Internal error");
    if (message.type === "LeaveRoom") return send(socket, { type: "RoomLeft" });
    if (message.type === "Reconnect") return send(socket, reconnectedWith("token-2"));
    basics(message, socket);
  };
  const restored = nextEvent(third, "reconnected");
  await third.leave();
  await restored;
  equal(third.room, undefined);
  equal(leaves, 2);

  // When the reconnection gives up instead, leave() resolves: the seat is gone from this client.
  await using other = await seated(server);
  server.reply = (message, socket) => {
    if (message.type !== "Reconnect") return basics(message, socket);
    send(socket, {
      type: "ReconnectionFailed",
      data: { reason: "Room no longer exists", error_code: "RECONNECTION_FAILED" },
    });
  };
  const otherDropped = nextEvent(other, "close");
  server.sockets.at(-1)!.close(1011, "Internal error");
  await otherDropped;
  const failed = nextEvent(other, "reconnectFailed");
  await other.leave();
  await failed;
  equal(other.room, undefined);
});

Deno.test("SignalFishClient: a binary send while reconnecting throws SignalFishConnectionError, as every send", async () => {
  // The app negotiated message_pack (docs/spec/PROTOCOL.md §7.1.5) before the drop; while the new
  // socket authenticates again the connection is not open, so a game loop's binary send fails as
  // its JSON sends do (SignalFishConnectionError), not with the TypeError of a JSON connection.
  await using server = new ScriptedServer(basics);
  await using client = await seated(server);
  const { promise: authenticating, resolve: authenticateArrived } = Promise.withResolvers<
    WebSocket
  >();
  server.reply = (message, socket) => {
    if (message.type === "Authenticate" && server.sockets.indexOf(socket) === 1) {
      authenticateArrived(socket); // Answered below, once the sends were tried.
      return;
    }
    if (message.type !== "Reconnect") return basics(message, socket);
    send(socket, reconnectedWith("token-2", [], [player(PLAYER, "mira")]));
  };
  const reconnected = nextEvent(client, "reconnected");
  server.sockets[0]!.close(1011, "Internal error");
  const socket = await authenticating;
  equal(client.status, "reconnecting");
  const thrown = (send: () => void) => {
    try {
      send();
      return "nothing";
    } catch (error) {
      return error instanceof SignalFishConnectionError ? "connection error" : String(error);
    }
  };
  deepEqual(
    [
      thrown(() => client.sendGameData({ tick: 1 })),
      thrown(() => client.sendGameData({ tick: 1 }, { binary: true })),
      thrown(() => client.sendBinary(new Uint8Array([0x01]))),
    ],
    ["connection error", "connection error", "connection error"],
  );
  basics({ type: "Authenticate" }, socket);
  await reconnected;
  equal(client.gameDataFormat, "message_pack");
  client.sendGameData({ tick: 2 }, { binary: true }); // Open again: it goes out.
});

Deno.test("SignalFishClient decodes binary game-data envelopes (docs/spec/PROTOCOL.md §7.7)", async () => {
  await using server = new ScriptedServer(basics);
  await using client = await seated(server);
  equal(client.gameDataFormat, "message_pack");
  const uuid = Uint8Array.from(OTHER.replaceAll("-", "").match(/../g)!, (h) => parseInt(h, 16));
  const payload = encode({ op: "steer", angle: -12.5, seq: [1, 2, 3] });
  const envelope = encode({ from_player: uuid, encoding: "message_pack", payload });
  const received = nextEvent(client, "gameData");
  const raw = nextEvent(client, "GameDataBinary");
  server.sockets[0]!.send(envelope);
  const event = await received;
  equal(event.from_player, OTHER);
  equal(event.binary, true);
  deepEqual(event.data, { op: "steer", angle: -12.5, seq: [1, 2, 3] });
  deepEqual(event.payload, payload);
  deepEqual((await raw).payload, payload);

  // Outbound: the whole frame is the value's MessagePack encoding, no envelope.
  const frames: Uint8Array[] = [];
  server.sockets[0]!.addEventListener("message", (e) => {
    if (e.data instanceof ArrayBuffer) frames.push(new Uint8Array(e.data));
  });
  client.sendGameData({ hello: [1, "two"] }, { binary: true });
  client.sendBinary(Uint8Array.of(0xc3));
  await client.ping();
  deepEqual(frames, [encode({ hello: [1, "two"] }), Uint8Array.of(0xc3)]);
});

/** A `Reconnected` for PLAYER with `token`, in a room of `players` (PLAYER and OTHER unless given). */
function reconnectedWith(
  token: string,
  missed: ServerMessage[] = [],
  players = [player(PLAYER, "mira"), player(OTHER, "bob")],
): ServerMessage {
  return {
    type: "Reconnected",
    data: {
      ...snapshot(players),
      missed_events: missed,
      reconnection_token: token,
      replay_truncated: false,
    },
  };
}

Deno.test("SignalFishClient: equal jitter, the time budget and cancelReconnect() bound the retries", async () => {
  // Equal jitter draws from the upper half of the base: random() = 0 gives d/2.
  const server = new ScriptedServer(basics);
  await using equalJitter = await seated(server, {
    reconnect: { initialDelayMs: 40, maxDelayMs: 40, jitter: "equal", random: () => 0 },
  });
  const first = nextEvent(equalJitter, "reconnecting");
  server.sockets[0]!.close(1011);
  equal((await first).delayMs, 20);
  await equalJitter.close();

  // No time budget left: one attempt (to a server that is gone), then give up.
  await using budget = await seated(server, {
    reconnect: { maxAttempts: 50, maxElapsedMs: 0, initialDelayMs: 10, random: () => 1 },
  });
  let attempts = 0;
  budget.on("reconnecting", () => attempts++);
  const failed = nextEvent(budget, "reconnectFailed");
  const statuses: string[] = [];
  budget.on("status", ({ status }) => statuses.push(status));
  await server[Symbol.asyncDispose]();
  ok((await failed) instanceof SignalFishConnectionError);
  equal(attempts, 1);
  deepEqual(statuses, ["reconnecting", "closed"]);
  equal(budget.room, undefined);
});

Deno.test("SignalFishClient.cancelReconnect() stops during the backoff and keeps the stored seat", async () => {
  await using server = new ScriptedServer(basics);
  const store = memoryStore();
  const client = await seated(server, {
    session: store,
    reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000, random: () => 1 },
  });
  const scheduled = nextEvent(client, "reconnecting");
  server.sockets[0]!.close(1011);
  await scheduled;
  equal(client.status, "reconnecting");
  const failed = nextEvent(client, "reconnectFailed");
  client.cancelReconnect();
  const error = await failed;
  ok(error instanceof SignalFishConnectionError);
  equal(error.message, "Reconnection cancelled");
  equal(client.status, "closed");
  equal(server.sockets.length, 1, "no attempt was made");
  // The server still holds the seat: a later resume() may take it back.
  equal((await client.storedSession())?.role, "player");
  await client.close();
});

Deno.test("SignalFishClient.resume() takes the stored seat back after a reload", async () => {
  await using server = new ScriptedServer(basics);
  const store = memoryStore();
  const before = await seated(server, { session: store });
  deepEqual(await before.storedSession(), {
    v: 1,
    role: "player",
    player_id: PLAYER,
    room_id: ROOM,
    room_code: "Q7KM3P",
    game_name: "orbit",
    token: "token-1",
  });
  ok(store.map.has(`signal-fish:${before.url}`), "keyed by the endpoint");
  await before.close(); // The page goes away; the stored seat stays.

  server.reply = (message, socket) => {
    if (message.type !== "Reconnect") return basics(message, socket);
    send(
      socket,
      reconnectedWith("token-2", [
        { type: "GameData", data: { from_player: OTHER, data: "while reloading" } },
      ]),
    );
  };
  await using after = await SignalFishClient.connect(server.url, { ...OPTIONS, session: store });
  const replayed = nextEvent(after, "gameData");
  const resumed = await after.resume();
  equal(resumed?.role, "player");
  deepEqual(server.sent("Reconnect").at(-1)!.message.data, {
    player_id: PLAYER,
    room_id: ROOM,
    auth_token: "token-1",
  });
  deepEqual(await replayed, {
    from_player: OTHER,
    data: "while reloading",
    binary: false,
    replayed: true,
  });
  equal(after.selfId, PLAYER);
  deepEqual(after.room!.players.map((p) => p.name), ["mira", "bob"]);
  equal((await after.storedSession())?.role === "player" && after.reconnectionToken, "token-2");
  const stored = await after.storedSession();
  equal(stored?.role === "player" ? stored.token : undefined, "token-2");

  // A refused resume forgets the stored seat and leaves the connection usable.
  await after.close();
  server.reply = (message, socket) => {
    if (message.type !== "Reconnect") return basics(message, socket);
    send(socket, {
      type: "ReconnectionFailed",
      data: { reason: "Invalid reconnection token", error_code: "RECONNECTION_TOKEN_INVALID" },
    });
  };
  await using again = await SignalFishClient.connect(server.url, { ...OPTIONS, session: store });
  await again.resume().then(
    () => ok(false, "expected a refusal"),
    (error) => {
      ok(error instanceof SignalFishError);
      equal(error.code, "RECONNECTION_TOKEN_INVALID");
    },
  );
  equal(await again.storedSession(), undefined);
  equal(await again.resume(), undefined, "nothing left to resume");
  equal(again.status, "open");

  // session: false keeps nothing.
  await using none = await SignalFishClient.connect(server.url, { ...OPTIONS, session: false });
  await none.createRoom({ game_name: "orbit", player_name: "mira" });
  equal(await none.storedSession(), undefined);
});

Deno.test("SignalFishClient.resume() keeps the stored seat after a temporary refusal", async () => {
  await using server = new ScriptedServer(basics);
  const store = memoryStore();
  const before = await seated(server, { session: store });
  await before.close(); // The page goes away; the stored seat stays.
  const answers = [
    reconnectionFailed(
      "RATE_LIMIT_EXCEEDED",
      "Reconnect attempt rate limit exceeded. Try again in 1 seconds.",
    ),
    reconnectedWith("token-2"),
  ];
  server.reply = (message, socket) => {
    if (message.type !== "Reconnect") return basics(message, socket);
    send(socket, answers.shift()!);
  };
  await using after = await SignalFishClient.connect(server.url, { ...OPTIONS, session: store });
  await after.resume().then(
    () => ok(false, "expected the rate limit"),
    (error) => ok(error instanceof SignalFishError && error.code === "RATE_LIMIT_EXCEEDED"),
  );
  const stored = await after.storedSession();
  equal(stored?.role === "player" ? stored.token : undefined, "token-1", "kept for a retry");
  equal((await after.resume())?.role, "player", "the retry takes the seat back");
  equal(after.reconnectionToken, "token-2");
});

/** Answers an `Authenticate` granting `presence-events` (docs/spec/EXTENSIONS.md E10): `Authenticated`, `ProtocolInfo`. */
function sendPresenceWelcome(socket: WebSocket): void {
  send(socket, {
    type: "Authenticated",
    data: {
      app_name: "default",
      rate_limits: { per_minute: 1, per_hour: 60, per_day: 1440 },
      features: ["presence-events"],
    },
  });
  send(socket, {
    type: "ProtocolInfo",
    data: { capabilities: ["presence-events"], game_data_formats: ["json"] },
  });
}

Deno.test("SignalFishClient asks for presence events and tracks dropped seats (E10)", async () => {
  await using server = new ScriptedServer((message, socket) => {
    if (message.type === "Authenticate") {
      sendPresenceWelcome(socket);
      return;
    }
    if (message.type === "JoinRoom") {
      send(socket, {
        type: "RoomJoined",
        data: {
          ...snapshot([player(PLAYER, "mira"), player(OTHER, "bob")]),
          reconnection_token: "token-1",
        },
      });
      return;
    }
    basics(message, socket);
  });
  await using client = await SignalFishClient.connect(server.url, {
    ...OPTIONS,
    presenceEvents: true,
    session: false,
  });
  // connect() authenticated on its own, asking for the feature.
  deepEqual(server.sent("Authenticate").map((e) => e.message.data), [
    { app_id: "signal-fish-client", features: ["presence-events"] },
  ]);
  deepEqual(client.features, ["presence-events"]);
  await client.joinOrCreate({ game_name: "orbit", room_code: "Q7KM3P", player_name: "mira" });
  deepEqual(client.room!.dropped, []);

  const dropped = nextEvent(client, "PlayerDisconnected");
  const roomAfter = nextEvent(client, "room");
  send(server.sockets[0]!, {
    type: "PlayerDisconnected",
    data: { player_id: OTHER, seat_held_secs: 300 },
  });
  deepEqual(await dropped, { player_id: OTHER, seat_held_secs: 300 });
  const room = (await roomAfter)!;
  deepEqual(room.dropped.map((d) => d.player_id), [OTHER]);
  ok(room.dropped[0]!.heldUntil > Date.now() + 200_000, "about five minutes ahead");
  equal(room.dropped[0]!.replayed, false);

  const back = nextEvent(client, "room");
  send(server.sockets[0]!, { type: "PlayerReconnected", data: { player_id: OTHER } });
  deepEqual((await back)!.dropped, []);

  // A second drop ends with the seat released: PlayerLeft clears the marker with the player.
  send(server.sockets[0]!, {
    type: "PlayerDisconnected",
    data: { player_id: OTHER, seat_held_secs: 1 },
  });
  const left = nextEvent(client, "PlayerLeft");
  send(server.sockets[0]!, { type: "PlayerLeft", data: { player_id: OTHER } });
  await left;
  deepEqual(client.room!.dropped, []);
  deepEqual(client.room!.players.map((p) => p.id), [PLAYER]);

  // An explicit authenticate() merges the feature into the app's own data.
  await using other = await SignalFishClient.connect(server.url, {
    ...OPTIONS,
    auth: { app_id: "orbit-prod", features: ["something-else"] },
    presenceEvents: true,
    session: false,
  });
  deepEqual(server.sent("Authenticate").at(-1)!.message.data, {
    app_id: "orbit-prod",
    features: ["something-else", "presence-events"],
  });
  void other;
});

Deno.test("SignalFishClient marks a dropped seat learned from the replay: its countdown is an upper bound (E10)", async () => {
  const presence: Reply = (message, socket) => {
    if (message.type !== "Authenticate") return basics(message, socket);
    sendPresenceWelcome(socket);
  };
  await using server = new ScriptedServer(presence);
  await using client = await SignalFishClient.connect(server.url, {
    ...OPTIONS,
    presenceEvents: true,
    session: false,
  });
  await client.createRoom({ game_name: "orbit", player_name: "mira" });
  server.reply = (message, socket) => {
    if (message.type !== "Reconnect") return presence(message, socket);
    // Bob dropped while mira's seat was held: the buffered message carries the window left when
    // the server sent it, and nothing says when that was.
    send(socket, {
      type: "Reconnected",
      data: {
        ...snapshot([player(PLAYER, "mira"), player(OTHER, "bob")]),
        missed_events: [
          { type: "PlayerJoined", data: { player: player(OTHER, "bob") } },
          { type: "PlayerDisconnected", data: { player_id: OTHER, seat_held_secs: 300 } },
        ],
        reconnection_token: "token-2",
        replay_truncated: false,
      },
    });
  };
  const reconnected = nextEvent(client, "reconnected");
  server.sockets[0]!.close(1011, "Internal error");
  await reconnected;
  const [seat] = client.room!.dropped;
  equal(seat!.player_id, OTHER);
  equal(seat!.replayed, true);
  ok(seat!.heldUntil <= Date.now() + 300_000, "at most the whole window from the replay");
  // A live PlayerDisconnected of the same player replaces it with an exact countdown.
  const updated = nextEvent(client, "room");
  send(server.sockets[1]!, {
    type: "PlayerDisconnected",
    data: { player_id: OTHER, seat_held_secs: 120 },
  });
  deepEqual((await updated)!.dropped.map((d) => [d.player_id, d.replayed]), [[OTHER, false]]);

  // After a reload resume() has no room for the replay to update: the seats come from the
  // replay's presence events all the same.
  const store = memoryStore();
  const before = await SignalFishClient.connect(server.url, {
    ...OPTIONS,
    presenceEvents: true,
    session: store,
  });
  await before.createRoom({ game_name: "orbit", player_name: "mira" });
  await before.close();
  await using after = await SignalFishClient.connect(server.url, {
    ...OPTIONS,
    presenceEvents: true,
    session: store,
  });
  equal((await after.resume())?.role, "player");
  deepEqual(after.room!.dropped.map((d) => [d.player_id, d.replayed]), [[OTHER, true]]);
});

Deno.test("SignalFishClient join helpers send JoinRoom.create and authority_handover (E9, E11)", async () => {
  await using server = new ScriptedServer(basics);
  await using client = await SignalFishClient.connect(server.url, { ...OPTIONS, session: false });
  const base = { game_name: "orbit", player_name: "mira" };
  await client.join({ ...base, room_code: "q7km3p" });
  const sent = () => server.sent("JoinRoom").at(-1)!.message.data;
  deepEqual(sent(), { ...base, room_code: "q7km3p", create: "never" });
  // Each call below is a fresh client: the script does not model leaving.
  const calls: [string, (c: SignalFishClient) => Promise<unknown>, unknown][] = [
    ["create with a code", (c) => c.create({ ...base, room_code: "ABCDEF" }), {
      ...base,
      room_code: "ABCDEF",
      create: "always",
    }],
    ["create without a code", (c) => c.create({ ...base, authority_handover: true }), {
      ...base,
      authority_handover: true,
    }],
    ["join or create", (c) => c.joinOrCreate({ ...base, room_code: "ABCDEF" }), {
      ...base,
      room_code: "ABCDEF",
    }],
    ["v2 joinRoom", (c) => c.joinRoom({ ...base, room_code: "ABCDEF" }), {
      ...base,
      room_code: "ABCDEF",
    }],
  ];
  for (const [label, call, expected] of calls) {
    await using fresh = await SignalFishClient.connect(server.url, { ...OPTIONS, session: false });
    await call(fresh);
    deepEqual(sent(), expected, label);
  }
});

Deno.test("SignalFishClient watches again after a spectator's drop and reopens idle connections", async () => {
  await using server = new ScriptedServer((message, socket) => {
    if (message.type === "JoinAsSpectator") {
      send(socket, {
        type: "SpectatorJoined",
        data: {
          room_id: ROOM,
          room_code: "Q7KM3P",
          spectator_id: OTHER,
          game_name: "orbit",
          current_players: [player(PLAYER, "mira")],
          current_spectators: [],
          lobby_state: "waiting",
        },
      });
      return;
    }
    basics(message, socket);
  });
  const store = memoryStore();
  await using watcher = await SignalFishClient.connect(server.url, {
    ...OPTIONS,
    session: store,
  });
  await watcher.spectate({ game_name: "orbit", room_code: "q7km3p", spectator_name: "nina" });
  deepEqual(await watcher.storedSession(), {
    v: 1,
    role: "spectator",
    game_name: "orbit",
    room_code: "Q7KM3P",
    spectator_name: "nina",
  });
  const again = nextEvent(watcher, "respectated");
  server.sockets[0]!.close(1011);
  equal((await again).spectator_id, OTHER);
  equal(watcher.room!.role, "spectator");
  deepEqual(server.sent("JoinAsSpectator").map((e) => e.connection), [0, 1]);

  // A spectator resumes from the store on a new page too.
  await using reloaded = await SignalFishClient.connect(server.url, {
    ...OPTIONS,
    session: store,
  });
  equal((await reloaded.resume())?.role, "spectator");
  equal(reloaded.room!.roomCode, "Q7KM3P");

  // whenIdle: a client in no room reopens its connection and authenticates again.
  await using idle = await SignalFishClient.connect(server.url, {
    ...OPTIONS,
    session: false,
    auth: { app_id: "lobby-screen" },
    reconnect: { ...(OPTIONS.reconnect as object), whenIdle: true },
  });
  const statuses: string[] = [];
  idle.on("status", ({ status }) => statuses.push(status));
  const reopened = nextEvent(idle, "status");
  const count = server.sockets.length;
  server.sockets[count - 1]!.close(1001);
  await reopened;
  // In no room there is nothing to leave: leave() does not wait for this reconnection.
  await idle.leave();
  equal(idle.status as string, "reconnecting");
  await server.connections(count + 1);
  while (idle.status !== "open") await nextEvent(idle, "status");
  deepEqual(statuses, ["reconnecting", "open"]);
  equal(server.received.filter((e) => e.connection === count).at(0)?.message.type, "Authenticate");
  ok((await idle.ping()) >= 0);
});

/**
 * A 2-seat room of mira (the client) and bob in which `PlayerReady` toggles mira as the server
 * does (docs/spec/PROTOCOL.md §7.4); `resetFirst` makes the next toggle follow bob's leaving
 * (`PlayerLeft`, then the reset to `waiting` with an empty ready set) as if his `LeaveRoom`
 * reached the server just before it.
 */
function readyRoom(initiallyReady: boolean) {
  const ready = new Set<string>(initiallyReady ? [PLAYER] : []);
  let seats = 2;
  const lobby = (): ServerMessage => ({
    type: "LobbyStateChanged",
    data: {
      lobby_state: seats === 2 ? (ready.size === 2 ? "finalized" : "lobby") : "waiting",
      ready_players: [...ready],
      all_ready: seats === 2 && ready.size === 2,
    },
  });
  const room = {
    resetFirst: false,
    reply: ((message, socket) => {
      if (message.type === "JoinRoom") {
        return send(socket, {
          type: "RoomJoined",
          data: {
            ...snapshot([player(PLAYER, "mira"), player(OTHER, "bob")]),
            ready_players: [...ready],
            reconnection_token: "token-1",
          },
        });
      }
      if (message.type !== "PlayerReady") return basics(message, socket);
      if (room.resetFirst) {
        room.resetFirst = false;
        seats = 1;
        ready.clear();
        send(socket, { type: "PlayerLeft", data: { player_id: OTHER } });
        send(socket, lobby());
      }
      if (!ready.delete(PLAYER)) ready.add(PLAYER);
      send(socket, lobby());
    }) as Reply,
  };
  return room;
}

Deno.test("SignalFishClient.setReady(false) ends not ready when a reset crosses its toggle", async () => {
  const room = readyRoom(true);
  await using server = new ScriptedServer(room.reply);
  await using client = await seated(server);
  deepEqual(client.room!.readyPlayers, [PLAYER]);
  // Bob leaves as mira un-readies: the reset empties the ready set, then her toggle readies her.
  room.resetFirst = true;
  const result = await client.setReady(false);
  deepEqual(result, { lobby_state: "waiting", ready_players: [], all_ready: false });
  await client.ping(); // Anything the server sent before this has been applied.
  deepEqual(client.room!.readyPlayers, []);
  // The first toggle undid the reset's work, a second one (and no more) set it right.
  equal(server.sent("PlayerReady").length, 2);
});

Deno.test("SignalFishClient.setReady(true) ends ready when a reset crosses its toggle", async () => {
  const room = readyRoom(false);
  await using server = new ScriptedServer(room.reply);
  await using client = await seated(server);
  room.resetFirst = true;
  // The reset clears nothing of mira's, so her one toggle stands.
  deepEqual(await client.setReady(true), {
    lobby_state: "waiting",
    ready_players: [PLAYER],
    all_ready: false,
  });
  equal(server.sent("PlayerReady").length, 1);
});

Deno.test("SignalFishClient.setReady() runs concurrent calls one after the other", async () => {
  const room = readyRoom(false);
  await using server = new ScriptedServer(room.reply);
  await using client = await seated(server);
  const [first, second, third] = await Promise.all([
    client.setReady(true),
    client.setReady(true),
    client.setReady(false),
  ]);
  deepEqual(first.ready_players, [PLAYER]);
  deepEqual(second.ready_players, [PLAYER]);
  deepEqual(third.ready_players, []);
  // Two toggles: the second call found mira ready and sent nothing.
  equal(server.sent("PlayerReady").length, 2);
  deepEqual(client.room!.readyPlayers, []);
});

Deno.test("SignalFishClient.setReady() judges by its own Pong, not an earlier request's", async () => {
  const room = readyRoom(false);
  let holdPing = false;
  let held: WebSocket | undefined;
  await using server = new ScriptedServer((message, socket) => {
    // ProvideConnectionInfo is refused; the Pong of the Ping that follows it is held back until
    // the toggle arrives. The order stays the server's: that Pong, the toggle's
    // LobbyStateChanged, then the Pong of setReady()'s own Ping.
    if (message.type === "ProvideConnectionInfo") {
      holdPing = true;
      return send(socket, {
        type: "Error",
        data: { message: "Not in a room", error_code: "NOT_IN_ROOM" },
      });
    }
    if (message.type === "Ping" && holdPing) {
      holdPing = false;
      held = socket;
      return;
    }
    if (message.type === "PlayerReady" && held) send(held, { type: "Pong" });
    room.reply(message, socket);
  });
  await using client = await seated(server);
  await rejects(
    client.provideConnectionInfo({ type: "direct", host: "127.0.0.1", port: 1 }),
    (error: unknown) => error instanceof SignalFishError && error.code === "NOT_IN_ROOM",
  );
  deepEqual((await client.setReady(true)).ready_players, [PLAYER]);
  await client.ping();
  // Taking the stray Pong for its own would have judged before the toggle and toggled again.
  equal(server.sent("PlayerReady").length, 1);
  deepEqual(client.room!.readyPlayers, [PLAYER]);
});

Deno.test("SignalFishClient.setReady() gives up after three toggles that do not stick", async () => {
  // A room whose ready set is emptied before every toggle and again after it.
  const room = readyRoom(true);
  await using server = new ScriptedServer((message, socket) => {
    room.reply(message, socket);
    if (message.type === "PlayerReady") {
      send(socket, {
        type: "LobbyStateChanged",
        data: { lobby_state: "waiting", ready_players: [], all_ready: false },
      });
    }
  });
  await using client = await seated(server);
  await client.setReady(false);
  await rejects(client.setReady(true), (error: unknown) => {
    ok(error instanceof SignalFishError);
    deepEqual([error.code, error.messageType], ["INVALID_ROOM_STATE", "LobbyStateChanged"]);
    return true;
  });
  equal(server.sent("PlayerReady").length, 1 + 3);
});
