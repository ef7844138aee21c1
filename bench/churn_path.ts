/**
 * The churn cycle without sockets (issue 18 item 2): the server's own JavaScript per
 * create/join/leave/close cycle of `bench/agent.ts`'s churn (two connections, a room created
 * and joined, both players leaving, both connections closed, the empty room swept), from the
 * edge to stand-in sockets, with the default configuration, the server's metrics and its event
 * log at the default level through the sinks `main.ts` sets up (JSON lines, the per-event rate
 * limit, stdout replaced by a writer that drops the bytes). Reports µs per cycle, median of
 * `--rounds`.
 *
 * It isolates what changes in our code (engine, codec, edge, metrics, logging): the runtime's
 * share (HTTP, `ws`, the socket operations, most of the cycle) is measured only by
 * `deno task bench churn`. `--tree` runs another checkout's code (e.g. this session's start),
 * so two trees can be compared with the same driver.
 *
 * ```sh
 * deno task bench:churn-path [--cycles 20000] [--rounds 7] [--tree /work/wt-s6start]
 * ```
 *
 * Run with `--v8-flags=--expose-gc` (the task does) it also reports what the engine holds after
 * the last sweep: rooms and connections (0 unless something leaks) and the heap per token record
 * kept for the reconnection window.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { LogRecord, Sink } from "@logtape/logtape";
import { configure, reset } from "@logtape/logtape";

/** A stand-in for a server-side `WebSocket`: open, never buffering, counting what it is sent. */
class CountingSocket {
  readyState: number = WebSocket.OPEN;
  bufferedAmount = 0;
  sent = 0;
  last: string | Uint8Array = "";
  send(frame: string | Uint8Array): void {
    this.sent++;
    this.last = frame;
  }
  close(): void {
    this.readyState = WebSocket.CLOSED;
  }
  addEventListener(): void {}
}

/** µs per cycle of each round, and the frames the stand-in sockets were sent. */
export interface ChurnPathResult {
  usPerCycle: number[];
  sent: number;
  written: number;
  /**
   * What the engine still holds after the last sweep, when `gc` is exposed
   * (`--v8-flags=--expose-gc`): rooms and connections (both 0 unless something leaks), the
   * reconnection token records remembered for the window (`server.max_token_records` bounds
   * them), and the V8 heap grown since before the first round, after full collections, in bytes.
   */
  retained?: { rooms: number; connections: number; tokenRecords: number; heapBytes: number };
}

/** Runs `rounds` × `cycles` churn cycles against the server code of checkout `tree`. */
export async function runChurnPath(
  options: { cycles: number; rounds: number; tree: string },
): Promise<ChurnPathResult> {
  // deno-lint-ignore no-explicit-any
  const load = (path: string): Promise<any> =>
    import(pathToFileURL(resolve(options.tree, path)).href);
  const { DEFAULT_CONFIG } = await load("src/config/schema.ts");
  const { Engine } = await load("src/engine/engine.ts");
  const { engineOptions, serverMetrics } = await load("src/server.ts");
  const { Edge } = await load("src/transport/edge.ts");
  const { SocketPeer } = await load("src/transport/websocket.ts");
  const logging = await load("src/logging.ts");
  const eventLog = await load("src/metrics/event_log.ts");

  // The sinks of `main.ts` `configureLogging` at the defaults (JSON, rate limit 20/s, level
  // info), stdout replaced by a writer that only counts bytes; no file sink (the churn bench
  // runs the server with file logging off).
  const config = DEFAULT_CONFIG;
  let written = 0;
  const stdout = logging.openStdoutSink({
    format: (record: LogRecord) => logging.formatJsonLine(record),
    write: (bytes: Uint8Array) => void (written += bytes.length),
  });
  const sink = logging.openRateLimitedSink({
    sinks: [stdout],
    maxPerSecond: config.logging.max_lines_per_event_per_second,
  }) as Sink & AsyncDisposable & { suppresses?: unknown };
  await configure({
    sinks: { main: sink },
    loggers: [
      {
        category: ["signal-fish"],
        lowestLevel: logging.logLevel(config.logging.level),
        sinks: ["main"],
      },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
    reset: true,
  });
  // What `main.ts` installs in the trees that have it.
  if (typeof eventLog.setSuppressedLineCheck === "function" && sink.suppresses) {
    const { compareLogLevel } = await import("@logtape/logtape");
    const lowest = logging.logLevel(config.logging.level);
    const suppresses = sink.suppresses as (...args: unknown[]) => boolean;
    eventLog.setSuppressedLineCheck((
      category: readonly string[],
      template: string,
      level: "info",
      timestamp: number,
    ) => compareLogLevel(level, lowest) < 0 || suppresses(category, template, level, timestamp));
  }

  const settings = engineOptions(config);
  const engine = new Engine({ ...settings, rateLimits: undefined });
  const metrics = serverMetrics(config, engine, () => edge.size);
  const edge = new Edge(engine, {
    maxMessageSize: config.security.max_message_size,
    newId: () => crypto.randomUUID(),
    // `server.ts` `observers`: the event log, then the metrics.
    onEvent: (event: unknown) => {
      eventLog.logEvent(event);
      metrics.observe(event);
    },
  });
  const outbound = {
    maxBufferedBytes: config.websocket.max_buffered_bytes,
    enableBatching: config.websocket.enable_batching,
    batchSize: config.websocket.batch_size,
  };
  const sockets: CountingSocket[] = [];
  let now = Date.now();
  let game = 0;
  const leave = JSON.stringify({ type: "LeaveRoom" });
  const decoder = new TextDecoder();
  let socket = new CountingSocket();
  const connect = () => {
    socket = new CountingSocket();
    sockets.push(socket);
    return edge.connect(new SocketPeer(socket, outbound), { ip: "127.0.0.1" }, now) as string;
  };
  /** The room code in the last frame `socket` was sent (its `RoomJoined`). */
  const roomCode = (socket: CountingSocket) => {
    const last = socket.last;
    const text = typeof last === "string" ? last : decoder.decode(last);
    return /"room_code":"([^"]+)"/.exec(text)?.[1];
  };
  const cycle = () => {
    const name = `churn-${game++}`;
    const a = connect();
    edge.receive(
      a,
      JSON.stringify({
        type: "JoinRoom",
        data: { game_name: name, player_name: "a", max_players: 4 },
      }),
      now,
    );
    const code = roomCode(socket);
    const b = connect();
    edge.receive(
      b,
      JSON.stringify({
        type: "JoinRoom",
        data: { game_name: name, room_code: code, player_name: "b" },
      }),
      now,
    );
    edge.receive(b, leave, now);
    edge.receive(a, leave, now);
    edge.disconnect(b, now);
    edge.disconnect(a, now);
  };
  const usPerCycle: number[] = [];
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heapBefore = Deno.memoryUsage().heapUsed;
  for (let round = 0; round < options.rounds; round++) {
    sockets.length = 0;
    const start = performance.now();
    for (let i = 0; i < options.cycles; i++) {
      cycle();
      if ((i & 255) === 255) {
        // The maintenance sweep deletes the rooms left empty (their lines, their metrics).
        now += 3_600_000;
        edge.command({ kind: "sweep" }, now);
      }
    }
    now += 3_600_000;
    edge.command({ kind: "sweep" }, now);
    usPerCycle.push(((performance.now() - start) * 1e3) / options.cycles);
  }
  const sent = sockets.reduce((sum, socket) => sum + socket.sent, 0);
  let retained: ChurnPathResult["retained"];
  if (gc) {
    gc();
    gc();
    const stats = engine.stats();
    retained = {
      rooms: stats.rooms,
      connections: stats.connections,
      tokenRecords: stats.tokenRecords,
      heapBytes: Deno.memoryUsage().heapUsed - heapBefore,
    };
  }
  eventLog.setSuppressedLineCheck?.(undefined);
  await sink[Symbol.asyncDispose]();
  await reset();
  return { usPerCycle, sent, written, retained };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      cycles: { type: "string", default: "20000" },
      rounds: { type: "string", default: "7" },
      tree: { type: "string", default: new URL("..", import.meta.url).pathname },
    },
  });
  const options = {
    cycles: Number(values.cycles),
    rounds: Number(values.rounds),
    tree: values.tree,
  };
  const { usPerCycle, sent, written, retained } = await runChurnPath(options);
  const sorted = [...usPerCycle].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  console.log(
    `${options.tree}: ${options.cycles} cycles × ${options.rounds} rounds: median ` +
      `${median.toFixed(2)} µs per cycle (min ${sorted[0]!.toFixed(2)}); rounds ` +
      `${usPerCycle.map((us) => us.toFixed(1)).join(", ")}; frames in the last round ${sent}, ` +
      `log bytes ${written}`,
  );
  if (retained) {
    const perRecord = retained.tokenRecords > 0
      ? `, ${Math.round(retained.heapBytes / retained.tokenRecords)} bytes of heap per record`
      : "";
    console.log(
      `retained after the last sweep: ${retained.rooms} rooms, ${retained.connections} ` +
        `connections, ${retained.tokenRecords} token records (remembered for the reconnection ` +
        `window)${perRecord}`,
    );
  }
}
