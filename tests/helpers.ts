/**
 * End-to-end test helpers: a server on an OS-assigned port and WebSocket clients that wait for
 * messages with a timeout (never a sleep).
 *
 * @module
 */
import { type Config, DEFAULT_CONFIG } from "../src/config/schema.ts";
import { type SignalFishServer, type StartOptions, startServer } from "../src/server.ts";

/** A server message as received (parsed JSON). */
// deno-lint-ignore no-explicit-any
export type Received = { type: string; data?: any };

/** How long `next()` waits by default, ms. */
export const TIMEOUT_MS = 3000;

/** Config for tests: port 0, loopback-friendly limits, no file logging. */
export function testConfig(mutate: (config: Config) => void = () => {}): Config {
  const config = structuredClone(DEFAULT_CONFIG) as Config;
  config.port = 0;
  config.logging.enable_file_logging = false;
  config.security.max_connections_per_ip = 1000;
  config.rate_limit.max_room_creations = 1000;
  config.rate_limit.max_join_attempts = 1000;
  mutate(config);
  return config;
}

/**
 * `security.authorized_apps` entries for `appIds`, each without a secret or per-app limits and
 * named by its id (docs/spec/SERVER.md §3.3): apps that authenticate by `app_id` alone.
 */
export function openApps(...appIds: string[]): Config["security"]["authorized_apps"] {
  return appIds.map((app_id) => secretApp(app_id, null));
}

/**
 * One `security.authorized_apps` entry: `appId` with `secret` (`null` = none) and no per-app
 * limits, named by its id (docs/spec/SERVER.md §3.3).
 */
export function secretApp(
  appId: string,
  secret: string | null,
): Config["security"]["authorized_apps"][number] {
  return {
    app_id: appId,
    app_secret: secret,
    app_name: appId,
    max_rooms: null,
    max_players_per_room: null,
    rate_limit_per_minute: null,
  };
}

/**
 * Starts a server on 127.0.0.1 with {@linkcode testConfig}. With `SIGNAL_FISH_TEST_CLUSTER=<n>`
 * in the environment it is instead `n` server processes in cluster mode on a private
 * redis-server behind a round-robin TCP proxy (tests/cluster_serve.ts), with the same config.
 */
export async function serve(
  mutate?: (config: Config) => void,
  options: StartOptions = {},
): Promise<SignalFishServer> {
  if (clusterRequested()) {
    // Loaded only then: scripts that import this module may run with --allow-net alone.
    const { serveCluster, TEST_CLUSTER } = await import("./cluster_serve.ts");
    if (TEST_CLUSTER > 0) return serveCluster(testConfig(mutate), options, TEST_CLUSTER);
  }
  return startServer(testConfig(mutate), { hostname: "127.0.0.1", ...options });
}

/** Whether `SIGNAL_FISH_TEST_CLUSTER` is set (false without permission to read it). */
function clusterRequested(): boolean {
  const variable = "SIGNAL_FISH_TEST_CLUSTER";
  if (Deno.permissions.querySync({ name: "env", variable }).state !== "granted") return false;
  return (Deno.env.get(variable) ?? "") !== "";
}

/** A WebSocket client that queues what it receives. */
export class TestClient implements AsyncDisposable {
  readonly socket: WebSocket;
  /** Resolves with the close event's code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #queue: (Received | Uint8Array)[] = [];
  #wake: (() => void) | undefined;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.binaryType = "arraybuffer";
    const { promise, resolve } = Promise.withResolvers<{ code: number; reason: string }>();
    this.closed = promise;
    socket.onmessage = (event) => {
      this.#queue.push(
        typeof event.data === "string" ? JSON.parse(event.data) : new Uint8Array(event.data),
      );
      this.#wake?.();
    };
    socket.onclose = (event) => {
      resolve({ code: event.code, reason: event.reason });
      this.#wake?.();
    };
  }

  /** Opens a connection to `url` and waits until it is open. */
  static async connect(url: string, init?: { headers?: HeadersInit }): Promise<TestClient> {
    // Deno's WebSocket accepts extra handshake headers (e.g. Origin) in its options.
    const socket = init ? new WebSocket(url, init) : new WebSocket(url);
    const client = new TestClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = (event) =>
        reject(new Error(`Cannot connect to ${url}: ${(event as ErrorEvent).message}`));
    });
    return client;
  }

  /** Sends a message object as JSON, or a raw text or binary frame. */
  send(message: unknown): void {
    if (typeof message === "string" || message instanceof Uint8Array) this.socket.send(message);
    else this.socket.send(JSON.stringify(message));
  }

  /**
   * Returns the next received message, failing unless its type is `type` (when given) or it
   * does not arrive within `timeoutMs`.
   */
  async next(type?: string, timeoutMs = TIMEOUT_MS): Promise<Received> {
    const message = await this.#take(timeoutMs, `${type ?? "a message"}`);
    if (message instanceof Uint8Array) {
      throw new Error(`Expected ${type ?? "a text message"}, got a binary frame`);
    }
    if (type !== undefined && message.type !== type) {
      throw new Error(`Expected ${type}, got ${JSON.stringify(message)}`);
    }
    return message;
  }

  /** Returns the next received message, failing unless it is a binary frame. */
  async nextBinary(timeoutMs = TIMEOUT_MS): Promise<Uint8Array> {
    const message = await this.#take(timeoutMs, "a binary frame");
    if (!(message instanceof Uint8Array)) {
      throw new Error(`Expected a binary frame, got ${JSON.stringify(message)}`);
    }
    return message;
  }

  /** Skips messages until one of `type` arrives. */
  async waitFor(type: string, timeoutMs = TIMEOUT_MS): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = await this.#take(Math.max(1, deadline - Date.now()), type);
      if (!(message instanceof Uint8Array) && message.type === type) return message;
    }
  }

  /**
   * Proves nothing else is queued for this client: sends `Ping` and requires `Pong` to be the
   * very next message (the server keeps per-connection order, docs/spec/PROTOCOL.md §1.5).
   */
  async expectNothingElse(): Promise<void> {
    this.send({ type: "Ping" });
    await this.next("Pong");
  }

  /** Removes and returns every message received but not yet taken. */
  drain(): (Received | Uint8Array)[] {
    return this.#queue.splice(0);
  }

  /** Closes the socket (if open) and waits for the close handshake. */
  async close(code = 1000): Promise<void> {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close(code);
    await this.closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #take(timeoutMs: number, what: string): Promise<Received | Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (this.#queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
      if (this.socket.readyState === WebSocket.CLOSED) {
        const { code, reason } = await this.closed;
        throw new Error(`Connection closed (${code} ${reason}) while waiting for ${what}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = undefined;
    }
    return this.#queue.shift()!;
  }
}

/** Connects a client to `server`'s WebSocket endpoint. */
export function connect(
  server: SignalFishServer,
  init?: { headers?: HeadersInit },
): Promise<TestClient> {
  return TestClient.connect(server.wsUrl, init);
}

/** Builds a `JoinRoom` message for game "orbit". */
export function joinRoom(
  roomCode: string | null,
  playerName: string,
  extra: Record<string, unknown> = {},
): unknown {
  return {
    type: "JoinRoom",
    data: { game_name: "orbit", room_code: roomCode, player_name: playerName, ...extra },
  };
}

/** Builds a `JoinAsSpectator` message for game "orbit". */
export function joinAsSpectator(roomCode: string, spectatorName: string): unknown {
  return {
    type: "JoinAsSpectator",
    data: { game_name: "orbit", room_code: roomCode, spectator_name: spectatorName },
  };
}

/**
 * `alice` creates a room of game "orbit" (default settings) and `bob` joins it by its code;
 * resolves with the room code once both have their `RoomJoined` (nothing else is read).
 */
export async function createAndJoin(alice: TestClient, bob: TestClient): Promise<string> {
  alice.send(joinRoom(null, "alice"));
  const code: string = (await alice.next("RoomJoined")).data.room_code;
  bob.send(joinRoom(code, "bob"));
  await bob.next("RoomJoined");
  return code;
}

/**
 * Two players "alpha" and "beta" in room GUARD1 of game "guarded" (2 seats, lobby full), with
 * everything their joins produced already read: the game a robustness test keeps an eye on.
 */
export async function guardedRoom(server: SignalFishServer): Promise<[TestClient, TestClient]> {
  const a = await connect(server);
  const b = await connect(server);
  const join = (name: string) => ({
    type: "JoinRoom",
    data: { game_name: "guarded", room_code: "GUARD1", player_name: name, max_players: 2 },
  });
  a.send(join("alpha"));
  await a.next("RoomJoined");
  b.send(join("beta"));
  await b.next("RoomJoined");
  await b.next("LobbyStateChanged");
  await a.next("PlayerJoined");
  await a.next("LobbyStateChanged");
  return [a, b];
}

/** Sends `message` on a fresh connection to `url` and returns its first answer (within 4 s). */
export async function ask(url: string, message: unknown): Promise<Received> {
  await using client = await TestClient.connect(url);
  client.send(message);
  return await client.next(undefined, 4_000);
}

/** Resolves once `client` receives `GameData` whose `data` is `text` (earlier ones skipped). */
export async function relayed(client: TestClient, text: string): Promise<void> {
  while ((await client.waitFor("GameData")).data.data !== text) { /* an earlier one */ }
}
