/**
 * The client's automatic reconnection (PROTOCOL.md §7.11, EXTENSIONS.md E1–E3), heartbeat and
 * binary envelopes (§7.7), driven by a scripted stand-in server so every branch (replay order,
 * refusals, backoff exhaustion, takeover, dead connections) can be forced exactly.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import {
  type ClientEvents,
  type ClientOptions,
  type ServerMessage,
  SignalFishClient,
  SignalFishConnectionError,
  SignalFishError,
} from "../src/client/client.ts";
import { TIMEOUT_MS } from "./helpers.ts";

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

function nextEvent<E extends keyof ClientEvents>(
  client: SignalFishClient,
  event: E,
): Promise<ClientEvents[E]> {
  const { promise, resolve, reject } = Promise.withResolvers<ClientEvents[E]>();
  const timer = setTimeout(() => reject(new Error(`Timed out waiting for ${event}`)), TIMEOUT_MS);
  const off = client.once(event, (payload) => {
    clearTimeout(timer);
    resolve(payload);
  });
  void off;
  return promise;
}

/** A client that authenticated and holds a seat (token "token-1") on `server`. */
async function seated(server: ScriptedServer, options: ClientOptions = {}) {
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
  server.sockets[0]!.close(1011, "Internal error"); // A held-seat close (PROTOCOL.md §1.6).
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
      send(socket, {
        type: "Reconnected",
        data: {
          ...snapshot([player(PLAYER, "mira")]),
          missed_events: [],
          reconnection_token: "token-2",
          replay_truncated: true,
        },
      });
      return;
    }
    basics(message, socket);
  };
  const closed = nextEvent(client, "close");
  const reconnected = nextEvent(client, "reconnected");
  equal((await closed).code, 4000);
  equal((await reconnected).replay_truncated, true);
  ok(server.sent("Ping").length >= 1);
  equal(client.reconnectionToken, "token-2");
});

Deno.test("SignalFishClient decodes binary game-data envelopes (PROTOCOL.md §7.7)", async () => {
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
