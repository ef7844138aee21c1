/**
 * The baseline: the thinnest `Deno.serve` relay that speaks the subset of the Signal Fish v2
 * protocol the load generator uses, with the same JSON shapes as the real server. It is the
 * ceiling of any Deno implementation on a machine, which is what the targets are ratios of.
 *
 * Subset: `JoinRoom` → `RoomJoined` to the joiner and `PlayerJoined` to the others (or
 * `RoomJoinFailed` when full); `GameData` → broadcast to the rest of the room (or to `to_player`);
 * `LeaveRoom` → `RoomLeft` and `PlayerLeft`; `Ping` → `Pong`; `/v2/health` → `OK`. It checks
 * nothing it does not need to route: no name rules, no rate or connection limits, no lobby
 * states, no idle timeout. GameData is parsed with `JSON.parse` and serialised once per
 * broadcast.
 *
 * `transport: "ws"` (`--transport ws`) serves the same relay on `node:http` + `npm:ws`, the
 * transport ours runs on (src/http/listener.ts, src/transport/websocket.ts), with `ws`' defaults
 * but no compression and no client tracking: the thinnest relay on ours' transport, so memory
 * and churn can be compared transport for transport.
 *
 * `--libraries all` (with either transport) first loads the three libraries ours carries by this
 * project's rule (validation, MessagePack, logging: `zod`, `@msgpack/msgpack`,
 * `@logtape/logtape`) and uses each once as ours does at start-up ({@linkcode loadLibraries});
 * `--libraries zod` (or a comma-separated list) loads only those. The relay is unchanged. Its idle memory is the floor any relay built on those libraries starts
 * from (`deno task bench:idle-memory`, BENCHMARKS.md "Targets not met").
 *
 * ```sh
 * deno run --allow-net bench/baseline.ts --port 3537 [--hostname 127.0.0.1]
 * deno run --allow-net --allow-read --allow-env bench/baseline.ts --transport ws --port 3537
 * deno run --allow-net --allow-read --allow-env bench/baseline.ts --transport ws --libraries all
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
// @ts-types="../src/transport/ws.d.ts"
import type * as Ws from "ws";

/** What the relay needs of a socket: a WHATWG `WebSocket` or a `ws` one. */
export interface RelaySocket {
  readonly readyState: number;
  send(frame: string): void;
  close(code?: number, reason?: string): void;
}

/** Which server the relay runs on. */
export type BaselineTransport = "deno" | "ws";

interface Player {
  id: string;
  name: string;
  socket: RelaySocket;
  connectedAt: string;
  room: Room | undefined;
}

interface Room {
  key: string;
  id: string;
  code: string;
  game: string;
  maxPlayers: number;
  supportsAuthority: boolean;
  authority: Player | undefined;
  players: Player[];
}

/** `readyState` of an open socket (WHATWG and `ws` alike). */
export const OPEN = 1;
const CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/** The `Pong` frame. */
export const PONG = '{"type":"Pong"}';
/** The `RoomLeft` frame. */
export const ROOM_LEFT = '{"type":"RoomLeft"}';
/** The `RoomJoinFailed` frame of a full room. */
export const ROOM_FULL =
  '{"type":"RoomJoinFailed","data":{"reason":"Room is full","error_code":"ROOM_FULL"}}';
/** The `Error` frame for anything the relay does not handle. */
export const INVALID =
  '{"type":"Error","data":{"message":"Invalid client message","error_code":"INVALID_INPUT"}}';

/** The running baseline: its address and a way to stop it. */
export interface Baseline extends AsyncDisposable {
  /** The bound TCP port. */
  readonly port: number;
  /** WebSocket endpoint, e.g. `ws://127.0.0.1:3537/v2/ws`. */
  readonly wsUrl: string;
  /** Open WebSocket connections (bench/heap_per_connection.ts waits for its clients with it). */
  readonly connections: number;
  /** Stops listening and closes every socket. */
  close(): Promise<void>;
}

/** What the join frames read of a seated player (a local one here, or a remote seat). */
export interface SeatInfo {
  readonly id: string;
  readonly name: string;
  /** ISO 8601 time of the connection. */
  readonly connectedAt: string;
}

/** What the join frames read of a room. */
export interface RoomInfo<S extends SeatInfo> {
  readonly id: string;
  readonly code: string;
  readonly game: string;
  readonly maxPlayers: number;
  readonly supportsAuthority: boolean;
  readonly authority: S | undefined;
  readonly players: readonly S[];
}

function playerInfo<S extends SeatInfo>(player: S, room: RoomInfo<S>) {
  return {
    id: player.id,
    name: player.name,
    is_authority: room.authority === player,
    is_ready: false,
    connected_at: player.connectedAt,
  };
}

/**
 * The two frames of a seating (docs/spec/PROTOCOL.md `RoomJoined` and `PlayerJoined`, the shapes
 * the real server sends): `roomJoined` for `player`, already in `room.players`, and
 * `playerJoined` for every other member.
 */
export function joinFrames<S extends SeatInfo>(
  room: RoomInfo<S>,
  player: S,
): { roomJoined: string; playerJoined: string } {
  const roomJoined = JSON.stringify({
    type: "RoomJoined",
    data: {
      room_id: room.id,
      room_code: room.code,
      player_id: player.id,
      game_name: room.game,
      max_players: room.maxPlayers,
      supports_authority: room.supportsAuthority,
      current_players: room.players.map((p) => playerInfo(p, room)),
      is_authority: room.authority === player,
      lobby_state: room.players.length >= room.maxPlayers ? "lobby" : "waiting",
      ready_players: [],
      relay_type: "matchbox",
      current_spectators: [],
    },
  });
  const playerJoined = JSON.stringify({
    type: "PlayerJoined",
    data: { player: { ...playerInfo(player, room), is_authority: false } },
  });
  return { roomJoined, playerJoined };
}

/** A random 6-character room code from the real server's alphabet. */
export function generateCode(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  let code = "";
  for (const byte of bytes) code += CODE_ALPHABET[byte & 31];
  return code;
}

/** Starts the baseline relay on `hostname:port` (port 0 picks a free one). */
export async function startBaseline(
  options: { hostname?: string; port?: number; transport?: BaselineTransport } = {},
): Promise<Baseline> {
  const rooms = new Map<string, Room>();
  const sockets = new Set<RelaySocket>();

  function send(player: Player, frame: string): void {
    if (player.socket.readyState === OPEN) player.socket.send(frame);
  }

  function join(player: Player, data: Record<string, unknown>): void {
    if (player.room || typeof data.game_name !== "string" || typeof data.player_name !== "string") {
      send(player, INVALID);
      return;
    }
    const game = data.game_name;
    const code = typeof data.room_code === "string" ? data.room_code.toUpperCase() : generateCode();
    const key = `${game}\u0000${code}`;
    let room = rooms.get(key);
    if (!room) {
      const supportsAuthority = data.supports_authority !== false;
      room = {
        key,
        id: crypto.randomUUID(),
        code,
        game,
        maxPlayers: typeof data.max_players === "number" ? data.max_players : 8,
        supportsAuthority,
        authority: undefined,
        players: [],
      };
      rooms.set(key, room);
      if (supportsAuthority) room.authority = player;
    }
    if (room.players.length >= room.maxPlayers) {
      send(player, ROOM_FULL);
      return;
    }
    player.name = data.player_name;
    player.room = room;
    room.players.push(player);
    const { roomJoined, playerJoined } = joinFrames(room, player);
    send(player, roomJoined);
    for (const other of room.players) if (other !== player) send(other, playerJoined);
  }

  function leave(player: Player): void {
    const room = player.room;
    if (!room) return;
    player.room = undefined;
    room.players.splice(room.players.indexOf(player), 1);
    if (room.authority === player) room.authority = undefined;
    if (room.players.length === 0) {
      rooms.delete(room.key);
      return;
    }
    const left = `{"type":"PlayerLeft","data":{"player_id":"${player.id}"}}`;
    for (const other of room.players) send(other, left);
  }

  function receive(player: Player, frame: unknown): void {
    if (typeof frame !== "string") return send(player, INVALID);
    let message;
    try {
      message = JSON.parse(frame);
    } catch {
      return send(player, INVALID);
    }
    switch (message?.type) {
      case "GameData": {
        const room = player.room;
        if (!room || typeof message.data !== "object" || message.data === null) return;
        const out = JSON.stringify({
          type: "GameData",
          data: { from_player: player.id, data: message.data.data ?? null },
        });
        const to = message.data.to_player;
        for (const other of room.players) {
          if (other !== player && (to === undefined || to === null || other.id === to)) {
            send(other, out);
          }
        }
        return;
      }
      case "JoinRoom":
        return join(player, message.data ?? {});
      case "LeaveRoom":
        if (player.room) {
          send(player, ROOM_LEFT);
          leave(player);
        }
        return;
      case "Ping":
        return send(player, PONG);
      default:
        return send(player, INVALID);
    }
  }

  /** A new player on `socket`; the caller routes its messages to `receive` and its close here. */
  function connect(socket: RelaySocket): Player {
    sockets.add(socket);
    return {
      id: crypto.randomUUID(),
      name: "",
      socket,
      connectedAt: new Date().toISOString(),
      room: undefined,
    };
  }

  function disconnect(player: Player): void {
    sockets.delete(player.socket);
    leave(player);
  }

  return await serveRelay(options, { connect, receive, disconnect, sockets });
}

/**
 * Serves `core` on `options.transport` (`Deno.serve`, or `node:http` + `ws` for `"ws"`):
 * `/v2/health` answers `OK`, a WebSocket upgrade of `/v2/ws` becomes a player of the core.
 * Shared by this relay and the thin cluster relay (bench/baseline_cluster.ts).
 */
export async function serveRelay<P>(
  options: { hostname?: string; port?: number; transport?: BaselineTransport },
  core: RelayCore<P>,
): Promise<Baseline> {
  if (options.transport === "ws") return await serveWs(options, core);
  const { connect, receive, disconnect, sockets } = core;
  const { promise: listening, resolve } = Promise.withResolvers<Deno.NetAddr>();
  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    onListen: resolve,
  }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/v2/health") return new Response("OK");
    if (path !== "/v2/ws" || request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("Not found", { status: 404 });
    }
    const { socket, response } = Deno.upgradeWebSocket(request);
    const player = connect(socket);
    socket.onmessage = (event) => receive(player, event.data);
    socket.onclose = () => disconnect(player);
    return response;
  });
  const addr = await listening;
  const close = async () => {
    for (const socket of sockets) socket.close(1001, "Server shutting down");
    await server.shutdown();
  };
  return {
    port: addr.port,
    wsUrl: `ws://${addr.hostname}:${addr.port}/v2/ws`,
    get connections() {
      return sockets.size;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A writable stream whose `end` may be called again after it finished. */
interface EndableStream {
  end(...args: unknown[]): unknown;
  readonly writableFinished: boolean;
  readonly destroyed: boolean;
}

/**
 * Makes `end()` on a finished stream a no-op: `ws` ends the connection again when the peer's FIN
 * comes after the close handshake, and the runtime builds an error with a stack trace for it
 * each time. Ours does the same (src/transport/websocket.ts `quietEnd`); without it this relay
 * spent a seventh of its CPU per connect/close cycle on those errors.
 */
function quietEnd(stream: EndableStream): void {
  const end = stream.end;
  stream.end = function (this: EndableStream, ...args: unknown[]) {
    if (this.writableFinished || this.destroyed) return this;
    return end.apply(this, args);
  };
}

/** The relay's side of a transport: a socket comes, sends frames, goes. */
export interface RelayCore<P> {
  /** A new socket; what it returns is handed back with each of its frames and its close. */
  connect(socket: RelaySocket): P;
  /** One frame: a string (text) or a `Uint8Array` (binary). */
  receive(player: P, frame: unknown): void;
  disconnect(player: P): void;
  /** Every open socket (closed with 1001 by `close()`). */
  sockets: Set<RelaySocket>;
}

/**
 * The relay on `node:http` + `npm:ws` (loaded only here, so the `Deno.serve` relay stays one
 * file with no package): `/v2/health` answers `OK`, an upgrade of `/v2/ws` is handed to `ws`.
 */
async function serveWs<P>(
  options: { hostname?: string; port?: number },
  core: RelayCore<P>,
): Promise<Baseline> {
  const http = await import("node:http");
  const { WebSocketServer } = await import("ws") as typeof Ws;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 65_536,
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols: () => false,
  });
  const server = http.createServer((request, response) => {
    if (request.url === "/v2/health") response.end("OK");
    else {
      response.statusCode = 404;
      response.end("Not found");
    }
  });
  server.on("upgrade", (request, socket, head) => {
    if (!request.url?.startsWith("/v2/ws")) {
      socket.destroy();
      return;
    }
    quietEnd(socket);
    wss.handleUpgrade(request, socket, head, (ws: Ws.WebSocket) => {
      const receiver = (ws as unknown as { _receiver?: EndableStream })._receiver;
      if (receiver) quietEnd(receiver);
      const player = core.connect(ws);
      ws.on("message", (data: Uint8Array, isBinary: boolean) => {
        // A `Buffer` at run time.
        core.receive(player, isBinary ? data : (data as unknown as object).toString());
      });
      ws.on("close", () => core.disconnect(player));
      ws.on("error", () => {});
    });
  });
  const { promise: listening, resolve } = Promise.withResolvers<void>();
  server.listen(options.port ?? 0, options.hostname ?? "127.0.0.1", () => resolve());
  await listening;
  const addr = server.address() as { address: string; port: number };
  const close = async () => {
    for (const socket of core.sockets) socket.close(1001, "Server shutting down");
    await new Promise<void>((done) => server.close(() => done()));
  };
  return {
    port: addr.port,
    wsUrl: `ws://${addr.address}:${addr.port}/v2/ws`,
    get connections() {
      return core.sockets.size;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A library ours carries by this project's rule, as `--libraries` names it. */
export type Library = "zod" | "msgpack" | "logtape";

/** Every {@linkcode Library}: what `--libraries` without a list loads. */
export const LIBRARIES: readonly Library[] = ["zod", "msgpack", "logtape"];

/**
 * Loads each of `libraries` and uses it once the way ours does when it starts
 * (src/config/schema.ts parses its configuration with a zod schema, main.ts configures logtape
 * with one sink, src/protocol/msgpack.ts encodes and decodes): `zod` parses an object schema with
 * nested, defaulted and optional fields; `msgpack` encodes and decodes a message; `logtape` is
 * configured at `info` with a sink writing JSON lines to stdout and logs one line. What stays in
 * memory is only what the libraries themselves keep after that; the relay holds no reference.
 */
export async function loadLibraries(libraries: readonly Library[] = LIBRARIES): Promise<void> {
  let port = 3537;
  if (libraries.includes("zod")) {
    const { z } = await import("zod");
    const Settings = z.object({
      server: z.object({
        port: z.number().int().min(0).max(65535),
        host: z.string().default("0.0.0.0"),
        max_players: z.number().int().positive().optional(),
      }),
      logging: z.object({ level: z.enum(["debug", "info", "warning", "error"]) }),
    });
    port = Settings.parse({ server: { port }, logging: { level: "info" } }).server.port;
  }
  let bytes = 0;
  if (libraries.includes("msgpack")) {
    const { encode, decode } = await import("@msgpack/msgpack");
    const frame = encode({ type: "Ping", data: { port } });
    bytes = frame.byteLength + (decode(frame) as { type: string }).type.length;
  }
  if (libraries.includes("logtape")) {
    const { configure, getLogger } = await import("@logtape/logtape");
    const encoder = new TextEncoder();
    await configure({
      sinks: {
        main: (record) => {
          const line = {
            level: record.level,
            message: record.message.join(""),
            ...record.properties,
          };
          Deno.stdout.writeSync(encoder.encode(JSON.stringify(line) + "\n"));
        },
      },
      loggers: [
        { category: ["baseline"], lowestLevel: "info", sinks: ["main"] },
        { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
      ],
    });
    getLogger(["baseline"]).info("Libraries loaded ({libraries}; {bytes} bytes of MessagePack)", {
      libraries: libraries.join(","),
      bytes,
    });
  }
}

/**
 * The libraries named by `--libraries` (`all` or a comma-separated list of
 * {@linkcode LIBRARIES}); an empty list for "".
 * @throws Error naming an unknown library.
 */
export function parseLibraries(text: string): Library[] {
  if (text === "") return [];
  if (text === "all") return [...LIBRARIES];
  return text.split(",").map((name) => {
    if (!(LIBRARIES as readonly string[]).includes(name)) {
      throw new Error(`unknown library "${name}" (expected all or ${LIBRARIES.join(", ")})`);
    }
    return name as Library;
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "3537" },
      hostname: { type: "string" },
      transport: { type: "string", default: "deno" },
      libraries: { type: "string", default: "" },
    },
  });
  if (values.transport !== "deno" && values.transport !== "ws") {
    console.error(`--transport must be "deno" or "ws", got "${values.transport}"`);
    Deno.exit(2);
  }
  let libraries: Library[];
  try {
    libraries = parseLibraries(values.libraries);
  } catch (error) {
    console.error(`--libraries: ${(error as Error).message}`);
    Deno.exit(2);
  }
  await loadLibraries(libraries);
  const baseline = await startBaseline({
    hostname: values.hostname ?? "127.0.0.1",
    port: Number(values.port),
    transport: values.transport,
  });
  console.log(JSON.stringify({ msg: "Listening", port: baseline.port, url: baseline.wsUrl }));
  const { promise, resolve } = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", resolve);
  Deno.addSignalListener("SIGINT", resolve);
  await promise;
  await baseline.close();
  Deno.exit(0);
}
