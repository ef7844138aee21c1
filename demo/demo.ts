/**
 * A scripted two-player session against a real Signal Fish server, printed as a conversation.
 *
 * The demo starts a server on `127.0.0.1` (an OS-assigned port) and drives two WebSocket clients
 * through the whole lobby flow of docs/spec/PROTOCOL.md §7:
 *
 * 1. Mira authenticates (`Authenticated` + `ProtocolInfo`) and creates a two-seat room.
 * 2. Tobias joins with the room code; the full room enters `lobby`.
 * 3. Both provide connection info and ready up; the room enters `finalized` and everyone gets
 *    `GameStarting` with the peers' connection info.
 * 4. They relay game data: one broadcast each way and one targeted message (`to_player`).
 * 5. Mira releases authority and Tobias claims it.
 * 6. Tobias leaves; Mira sees him go, authority fall vacant and the room return to `waiting`.
 *
 * Every wait has a timeout, so the demo never hangs: it exits 0 when the server behaves as the
 * spec says, and 1 with the reason on the first unexpected message or timeout.
 *
 * Run it with `deno task demo`.
 *
 * @module
 */
import { type Config, DEFAULT_CONFIG } from "../src/config/schema.ts";
import { startServer } from "../src/server.ts";

/** How long any single wait (a message, a socket opening or closing) may take, ms. */
const TIMEOUT_MS = 5000;
/** Payloads longer than this are cut in the printed conversation, characters. */
const MAX_SHOWN = 160;
const GAME_NAME = "orbit-racers";

// Colour only for a person watching a terminal, never in logs or pipes.
const COLOUR = Deno.stdout.isTerminal() && !Deno.noColor;
const paint = (code: number) => (text: string) => COLOUR ? `\x1b[${code}m${text}\x1b[0m` : text;
const dim = paint(2);
const cyan = paint(36);
const yellow = paint(33);
const red = paint(31);
const green = paint(32);

/** A server message as received (parsed JSON). */
// deno-lint-ignore no-explicit-any
type Message = { type: string; data?: any };

/** Prints one line of the conversation: who talks to whom, the message type and its payload. */
function show(from: string, to: string, type: string, data?: unknown): void {
  let payload = data === undefined ? "" : JSON.stringify(data);
  if (payload.length > MAX_SHOWN) payload = `${payload.slice(0, MAX_SHOWN - 1)}…`;
  const colour = from === "server" ? yellow : cyan;
  console.log(
    `${colour(`${from.padEnd(6)} -> ${to.padEnd(6)}`)}  ${type} ${dim(payload)}`.trimEnd(),
  );
}

/** Prints a narration line between the steps. */
function step(text: string): void {
  console.log(`\n${green(`# ${text}`)}`);
}

/** Fails the demo (exit 1) unless `condition` holds. */
function check(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(`Unexpected server behaviour: ${what}`);
}

/** Resolves with `promise`, or rejects after {@linkcode TIMEOUT_MS} naming `what` was awaited. */
async function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${TIMEOUT_MS} ms waiting for ${what}`)),
      TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One scripted player: a WebSocket plus a queue of what the server sent it. */
class Client implements AsyncDisposable {
  readonly name: string;
  readonly #socket: WebSocket;
  readonly #queue: Message[] = [];
  readonly #closed: Promise<void>;
  #wake: (() => void) | undefined;

  private constructor(name: string, socket: WebSocket) {
    this.name = name;
    this.#socket = socket;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#closed = promise;
    socket.onmessage = (event) => {
      // The demo never negotiates MessagePack, so every frame is JSON text.
      this.#queue.push(JSON.parse(String(event.data)));
      this.#wake?.();
    };
    socket.onclose = () => {
      resolve();
      this.#wake?.();
    };
  }

  /** Opens a connection to `url` as player `name` and waits until it is open. */
  static async connect(name: string, url: string): Promise<Client> {
    const socket = new WebSocket(url);
    const client = new Client(name, socket);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.onopen = () => resolve();
        socket.onerror = () => reject(new Error(`${name} cannot connect to ${url}`));
      }),
      `${name} to connect`,
    );
    return client;
  }

  /** Sends one client message (`data` omitted for payload-less messages) and prints it. */
  send(type: string, data?: unknown): void {
    show(this.name, "server", type, data);
    this.#socket.send(JSON.stringify(data === undefined ? { type } : { type, data }));
  }

  /** Takes the next message, prints it, and fails unless it is a `type` message. */
  async expect(type: string): Promise<Message> {
    const what = `${type} for ${this.name}`;
    const message = await withTimeout(this.#next(what), what);
    show("server", this.name, message.type, message.data);
    check(message.type === type, `${this.name} expected ${type}, got ${message.type}`);
    return message;
  }

  /** Closes the socket, failing if the server sent anything the script did not expect. */
  async close(): Promise<void> {
    const leftover = this.#queue.shift();
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.close(1000, "Demo finished");
    await withTimeout(this.#closed, `${this.name}'s socket to close`);
    check(!leftover, `${this.name} got an unexpected ${leftover?.type}`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    // Cleanup after a failure: close quietly, the first error is the one worth reporting.
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.close(1000, "Demo finished");
    await withTimeout(this.#closed, `${this.name}'s socket to close`).catch(() => {});
  }

  async #next(what: string): Promise<Message> {
    while (this.#queue.length === 0) {
      if (this.#socket.readyState === WebSocket.CLOSED) {
        throw new Error(`${this.name}'s connection closed while waiting for ${what}`);
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = undefined;
    }
    return this.#queue.shift()!;
  }
}

/** Runs the scripted session; throws on the first deviation from the expected conversation. */
async function main(): Promise<void> {
  const config = structuredClone(DEFAULT_CONFIG) as Config;
  config.port = 0; // let the OS pick a free port
  config.logging.enable_file_logging = false;
  await using server = await startServer(config, { hostname: "127.0.0.1" });
  console.log(dim(`Signal Fish listening at ${server.wsUrl}`));

  step("Mira connects, says hello and creates a two-seat room");
  await using mira = await Client.connect("Mira", server.wsUrl);
  mira.send("Authenticate", { app_id: "demo", platform: "deno-demo" });
  await mira.expect("Authenticated");
  await mira.expect("ProtocolInfo");
  mira.send("JoinRoom", { game_name: GAME_NAME, player_name: "Mira", max_players: 2 });
  const created = (await mira.expect("RoomJoined")).data;
  check(created.is_authority, "the creator of the room should hold authority");
  const { room_code: roomCode, player_id: miraId } = created;

  // Authentication is off by default (docs/spec/PROTOCOL.md §7.1.2), so Tobias can skip it.
  step(`Tobias joins room ${roomCode}; the room is full, so it enters the lobby`);
  await using tobias = await Client.connect("Tobias", server.wsUrl);
  tobias.send("JoinRoom", { game_name: GAME_NAME, room_code: roomCode, player_name: "Tobias" });
  const tobiasId = (await tobias.expect("RoomJoined")).data.player_id;
  await tobias.expect("LobbyStateChanged");
  await mira.expect("PlayerJoined");
  check((await mira.expect("LobbyStateChanged")).data.lobby_state === "lobby", "expected lobby");

  // Connection info is stored silently and handed out in GameStarting.
  step("Both tell the server how peers can reach them, then ready up");
  mira.send("ProvideConnectionInfo", {
    connection_info: { type: "direct", host: "203.0.113.40", port: 27015 },
  });
  tobias.send("ProvideConnectionInfo", {
    connection_info: { type: "direct", host: "198.51.100.7", port: 27016 },
  });
  // Each step waits for its broadcast on both sides, so the order across sockets is fixed.
  mira.send("PlayerReady");
  await mira.expect("LobbyStateChanged");
  await tobias.expect("LobbyStateChanged");
  tobias.send("PlayerReady");
  for (const client of [mira, tobias]) {
    const lobby = (await client.expect("LobbyStateChanged")).data;
    check(lobby.lobby_state === "finalized" && lobby.all_ready, "expected a finalized lobby");
    const peers = (await client.expect("GameStarting")).data.peer_connections;
    check(
      peers.length === 2 && peers.every((peer: Message["data"]) => peer.connection_info),
      "GameStarting should list both peers with their connection info",
    );
  }

  step("Game data: a broadcast each way, then a targeted message");
  mira.send("GameData", { data: { op: "steer", angle: -12.5, tick: 4411 } });
  check((await tobias.expect("GameData")).data.from_player === miraId, "wrong sender");
  tobias.send("GameData", { data: { op: "boost", tick: 4412 } });
  check((await mira.expect("GameData")).data.from_player === tobiasId, "wrong sender");
  tobias.send("GameData", { data: { chat: "gg, see you at the finish" }, to_player: miraId });
  check((await mira.expect("GameData")).data.from_player === tobiasId, "wrong sender");

  step("Mira hands authority over: she releases it, Tobias claims it");
  mira.send("AuthorityRequest", { become_authority: false });
  check((await mira.expect("AuthorityResponse")).data.granted, "release should be granted");
  await mira.expect("AuthorityChanged");
  await tobias.expect("AuthorityChanged");
  tobias.send("AuthorityRequest", { become_authority: true });
  check((await tobias.expect("AuthorityResponse")).data.granted, "claim should be granted");
  check((await tobias.expect("AuthorityChanged")).data.you_are_authority, "Tobias should lead");
  check((await mira.expect("AuthorityChanged")).data.authority_player === tobiasId, "wrong lead");

  // Tobias held authority and the room was full, so Mira also learns that authority is vacant
  // and that the room is back to waiting (docs/spec/PROTOCOL.md §7.3.3).
  step("Tobias leaves the room");
  tobias.send("LeaveRoom");
  await tobias.expect("RoomLeft");
  await mira.expect("PlayerLeft");
  check((await mira.expect("AuthorityChanged")).data.authority_player === null, "expected null");
  check((await mira.expect("LobbyStateChanged")).data.lobby_state === "waiting", "not waiting");

  await tobias.close();
  await mira.close();
  await server.close();
  console.log(`\n${green("Demo finished: every reply arrived as expected.")}`);
}

try {
  await main();
} catch (error) {
  console.error(red(`\nDemo failed: ${error instanceof Error ? error.message : error}`));
  Deno.exitCode = 1;
}
