/**
 * The relay hot path without sockets (issue 5): the server's own JavaScript per inbound
 * `GameData`, from the edge's `receive` to the runtime's `WebSocket.send`, with the default
 * configuration, the server's metrics and real {@linkcode SocketPeer}s over stand-in sockets
 * whose `send` only counts. Rooms of `--room-size` players; every player sends in turn, with the
 * load generator's frame (`bench/agent.ts`). Reports nanoseconds per inbound frame, median of
 * `--rounds`.
 *
 * It isolates what changes in our code: the runtime's share (reading the frame, the write ops,
 * the kernel) is measured only by the socket benchmarks (`deno task bench relay`).
 *
 * ```sh
 * deno task bench:hot-path [--rooms 100] [--room-size 4] [--frames 300000] [--rounds 7]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { DEFAULT_CONFIG } from "../src/config/schema.ts";
import { Engine } from "../src/engine/engine.ts";
import { engineOptions, serverMetrics } from "../src/server.ts";
import { Edge } from "../src/transport/edge.ts";
import { SocketPeer } from "../src/transport/websocket.ts";
import { gameDataFrame } from "./agent.ts";

/** A stand-in for a server-side `WebSocket`: open, never buffering, counting what it is sent. */
class CountingSocket {
  readyState: number = WebSocket.OPEN;
  bufferedAmount = 0;
  sent = 0;
  send(_frame: string | Uint8Array): void {
    this.sent++;
  }
  close(): void {
    this.readyState = WebSocket.CLOSED;
  }
  addEventListener(): void {}
}

/** One measured configuration: ns per inbound frame of each round, and the frames delivered. */
export interface HotPathResult {
  nsPerFrame: number[];
  delivered: number;
}

/** Builds a server core with `rooms` full rooms and runs `rounds` × `frames` inbound GameData. */
export function runHotPath(
  options: { rooms: number; roomSize: number; frames: number; rounds: number },
): HotPathResult {
  const config = DEFAULT_CONFIG;
  const settings = engineOptions(config);
  const engine = new Engine({
    ...settings,
    maxRoomsPerGame: Number.MAX_SAFE_INTEGER,
    // Every simulated player shares one address: no per-IP share of a game's rooms.
    maxRoomsPerIp: undefined,
    rateLimits: undefined,
  });
  const metrics = serverMetrics(config, engine, () => edge.size);
  const edge = new Edge(engine, {
    maxMessageSize: config.security.max_message_size,
    newId: () => crypto.randomUUID(),
    onEvent: (event) => metrics.observe(event),
  });
  const outbound = {
    maxBufferedBytes: config.websocket.max_buffered_bytes,
    enableBatching: config.websocket.enable_batching,
    batchSize: config.websocket.batch_size,
  };
  const sockets: CountingSocket[] = [];
  const players: string[] = [];
  let now = 1_000_000;
  for (let room = 0; room < options.rooms; room++) {
    const code = `HP${String(room).padStart(4, "0")}`;
    for (let seat = 0; seat < options.roomSize; seat++) {
      const socket = new CountingSocket();
      sockets.push(socket);
      const id = edge.connect(
        new SocketPeer(socket as unknown as WebSocket, outbound),
        { ip: "127.0.0.1" },
        now,
      );
      edge.receive(
        id,
        JSON.stringify({
          type: "JoinRoom",
          data: {
            game_name: "hot-path",
            room_code: code,
            player_name: `p${seat}`,
            max_players: options.roomSize,
          },
        }),
        now,
      );
      players.push(id);
    }
  }
  const pad = "x".repeat(32);
  // Frames are built up front so the loop measures the server, not the generator, and decoded
  // from bytes as the runtime does (a flat string, not the template's concatenation).
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const frames = players.map((_, slot) =>
    decoder.decode(encoder.encode(gameDataFrame(slot, 1, 1, 123456.789, pad)))
  );
  const before = sockets.reduce((sum, socket) => sum + socket.sent, 0);
  const nsPerFrame: number[] = [];
  for (let round = 0; round < options.rounds; round++) {
    const start = performance.now();
    for (let i = 0; i < options.frames; i++) {
      const slot = i % players.length;
      edge.receive(players[slot]!, frames[slot]!, now);
      if ((i & 1023) === 0) now++;
    }
    nsPerFrame.push(((performance.now() - start) * 1e6) / options.frames);
  }
  const delivered = sockets.reduce((sum, socket) => sum + socket.sent, 0) - before;
  return { nsPerFrame, delivered };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rooms: { type: "string", default: "100" },
      "room-size": { type: "string", default: "4" },
      frames: { type: "string", default: "300000" },
      rounds: { type: "string", default: "7" },
    },
  });
  const options = {
    rooms: Number(values.rooms),
    roomSize: Number(values["room-size"]),
    frames: Number(values.frames),
    rounds: Number(values.rounds),
  };
  const { nsPerFrame, delivered } = runHotPath(options);
  const sorted = [...nsPerFrame].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const expected = options.frames * options.rounds * (options.roomSize - 1);
  console.log(
    `${options.rooms} rooms of ${options.roomSize}, ${options.frames} GameData × ${options.rounds} ` +
      `rounds: median ${median.toFixed(0)} ns per inbound frame ` +
      `(${(median / (options.roomSize - 1)).toFixed(0)} ns per delivered message); rounds ` +
      `${nsPerFrame.map((ns) => ns.toFixed(0)).join(", ")}; delivered ${delivered}/${expected}`,
  );
  if (delivered !== expected) Deno.exit(1);
}
