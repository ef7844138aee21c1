/**
 * One load process of the generator. The controller (`load.ts`) starts several of these so
 * that client work is spread over processes (each with its own file-descriptor limit). Every
 * room lives wholly inside one agent, so sender and receiver share one monotonic clock and the
 * one-way latency is exact.
 *
 * Talks JSON lines: {@linkcode AgentCommand} on stdin, {@linkcode AgentEvent} on stdout.
 *
 * ```sh
 * deno run --allow-net bench/agent.ts   # normally started by bench/main.ts
 * ```
 *
 * @module
 */
import { Histogram, type HistogramData } from "./stats.ts";

/** Commands from the controller, one JSON object per line. */
export type AgentCommand =
  | {
    cmd: "connect";
    /**
     * WebSocket URL of the server under test, or a comma-separated list of a cluster's
     * instances (docs/spec/SERVER.md §8): each player connects to one of them by `placement`.
     */
    url: string;
    /**
     * With several URLs: `spread` puts a room's players round-robin over the instances, `affinity`
     * puts every player of a room on the same one (room index modulo the instances).
     * @default "spread"
     */
    placement?: "spread" | "affinity";
    /** Global index of this agent's first room. */
    firstRoom: number;
    /** Rooms this agent owns. */
    rooms: number;
    /** Players per room. */
    roomSize: number;
    /** Prefix of game names; rooms are grouped 500 per game name. */
    game: string;
    /** Connections opening at once. */
    concurrency: number;
    /** How long one connect + join may take, ms. */
    timeoutMs: number;
  }
  | {
    cmd: "run";
    /** Step number, embedded in every payload so late messages are booked to their step. */
    phase: number;
    /** GameData messages each player sends per second. */
    ratePerPlayer: number;
    /** Sending time, ms. */
    durationMs: number;
    /** Longest wait after sending for messages in flight, ms. */
    drainMs: number;
    /** Padding added to each payload, bytes. */
    padBytes: number;
  }
  | {
    cmd: "churn";
    url: string;
    /** Game name prefix; each cycle uses its own game so no per-game room cap is hit. */
    game: string;
    /** Cycles running at once. */
    concurrency: number;
    durationMs: number;
    /** Stop after this many cycles. */
    maxCycles: number;
    timeoutMs: number;
  }
  | { cmd: "close"; timeoutMs: number };

/** Events to the controller, one JSON object per line. */
export type AgentEvent =
  | { ev: "progress"; sent: number; delivered: number; cycles: number; open: number }
  | {
    ev: "connected";
    connected: number;
    joined: number;
    failed: number;
    errors: string[];
  }
  | { ev: "phase"; phase: number } & PhaseResult
  | {
    ev: "churned";
    cycles: number;
    failed: number;
    errors: string[];
    cycleMs: HistogramData;
  }
  | {
    ev: "closed";
    /** Sockets closed. */
    closed: number;
    /** Of those, how many were still open when the close command came. */
    wereOpen: number;
  }
  | { ev: "error"; message: string };

/** What one agent saw of one sending step. */
export interface PhaseResult {
  /** GameData frames sent. */
  sent: number;
  /** Deliveries owed: each frame sent × (joined players in its room − 1). */
  expected: number;
  /** Deliveries that arrived before the drain ended. */
  delivered: number;
  /** Deliveries that arrived with a lower sequence number than one already seen. */
  reordered: number;
  /** Deliveries seen twice. */
  duplicates: number;
  /** Sending time actually used, ms. */
  sendMs: number;
  /** One-way latency of every delivery, ms. */
  latency: HistogramData;
}

const GAME_DATA_KEYS = ['"bk":', '"bh":', '"bq":', '"bt":'] as const;
/** Rooms per game name, below the server's default `max_rooms_per_game` (1000). */
export const ROOMS_PER_GAME = 500;

/** The 6-character room code of global room `index` (base 36, zero-padded). */
export function roomCode(index: number): string {
  return index.toString(36).toUpperCase().padStart(6, "0");
}

/** The game name of global room `index`. */
export function gameName(prefix: string, index: number): string {
  return `${prefix}-${Math.floor(index / ROOMS_PER_GAME)}`;
}

/**
 * The GameData frame a benchmark player sends: its seat `slot`, the step, a sequence number and
 * the send time (ms, `performance.now()`), padded by `pad`.
 */
export function gameDataFrame(
  slot: number,
  phase: number,
  seq: number,
  t: number,
  pad: string,
): string {
  return `{"type":"GameData","data":{"data":{"bk":${slot},"bh":${phase},"bq":${seq},"bt":${
    t.toFixed(3)
  },"bp":"${pad}"}}}`;
}

/** Reads the number after `key` in `text` (e.g. `"bq":41,` → 41); NaN when absent. */
function numberAfter(text: string, key: string, from: number): number {
  const at = text.indexOf(key, from);
  return at < 0 ? NaN : parseFloat(text.slice(at + key.length, at + key.length + 24));
}

interface Player {
  socket: WebSocket;
  room: Room;
  slot: number;
  seq: number;
  sentInPhase: number;
  /** Phase offset in [0, 1) so the players of a room do not all send on the same tick. */
  offset: number;
  /** Highest sequence number seen from each seat of the room. */
  last: Float64Array;
}

interface Room {
  index: number;
  players: Player[];
}

interface PhaseState {
  phase: number;
  delivered: number;
  reordered: number;
  duplicates: number;
  latency: Histogram;
}

class Agent {
  #players: Player[] = [];
  #phases = new Map<number, PhaseState>();
  #sentTotal = 0;
  #deliveredTotal = 0;
  #cycles = 0;
  #open = 0;
  #encoder = new TextEncoder();

  emit(event: AgentEvent): void {
    Deno.stdout.writeSync(this.#encoder.encode(JSON.stringify(event) + "\n"));
  }

  progress(): void {
    this.emit({
      ev: "progress",
      sent: this.#sentTotal,
      delivered: this.#deliveredTotal,
      cycles: this.#cycles,
      open: this.#open,
    });
  }

  async handle(command: AgentCommand): Promise<void> {
    switch (command.cmd) {
      case "connect":
        return this.emit(await this.#connect(command));
      case "run":
        return this.emit(await this.#run(command));
      case "churn":
        return this.emit(await this.#churn(command));
      case "close":
        return this.emit(await this.#close(command.timeoutMs));
    }
  }

  #phaseState(phase: number): PhaseState {
    let state = this.#phases.get(phase);
    if (!state) {
      state = { phase, delivered: 0, reordered: 0, duplicates: 0, latency: new Histogram() };
      this.#phases.set(phase, state);
    }
    return state;
  }

  #receive(player: Player, text: string): void {
    const at = text.indexOf(GAME_DATA_KEYS[0]);
    if (at < 0) return; // lobby traffic (PlayerJoined, LobbyStateChanged, Pong …)
    const now = performance.now();
    const slot = numberAfter(text, GAME_DATA_KEYS[0], at);
    const phase = numberAfter(text, GAME_DATA_KEYS[1], at);
    const seq = numberAfter(text, GAME_DATA_KEYS[2], at);
    const sentAt = numberAfter(text, GAME_DATA_KEYS[3], at);
    const state = this.#phaseState(phase);
    state.delivered++;
    this.#deliveredTotal++;
    state.latency.record(now - sentAt);
    const last = player.last[slot] ?? -1;
    if (seq === last) state.duplicates++;
    else if (seq < last) state.reordered++;
    else player.last[slot] = seq;
  }

  async #connect(command: Extract<AgentCommand, { cmd: "connect" }>): Promise<AgentEvent> {
    const jobs: { room: Room; slot: number }[] = [];
    for (let r = 0; r < command.rooms; r++) {
      const room: Room = { index: command.firstRoom + r, players: [] };
      for (let slot = 0; slot < command.roomSize; slot++) jobs.push({ room, slot });
    }
    let connected = 0;
    let failed = 0;
    const errors: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        const { room, slot } = jobs[next++]!;
        let socket: WebSocket | undefined;
        try {
          socket = await openSocket(pickUrl(command, room.index, slot), command.timeoutMs);
          connected++;
          this.#open++;
          socket.addEventListener("close", () => this.#open--);
          const player: Player = {
            socket,
            room,
            slot,
            seq: 0,
            sentInPhase: 0,
            offset: (room.index * 0.618034 + slot / command.roomSize) % 1,
            last: new Float64Array(command.roomSize).fill(-1),
          };
          const reply = await request(
            socket,
            {
              type: "JoinRoom",
              data: {
                game_name: gameName(command.game, room.index),
                room_code: roomCode(room.index),
                player_name: `p${slot}`,
                // One seat spare: the room never fills, so no lobby traffic mixes into the relay.
                max_players: Math.min(100, command.roomSize + 1),
              },
            },
            ["RoomJoined", "RoomJoinFailed", "Error"],
            command.timeoutMs,
          );
          if (reply.type !== "RoomJoined") {
            throw new Error(`JoinRoom answered with ${JSON.stringify(reply).slice(0, 200)}`);
          }
          socket.onmessage = (event) => {
            if (typeof event.data === "string") this.#receive(player, event.data);
          };
          room.players.push(player);
          this.#players.push(player);
        } catch (error) {
          failed++;
          if (errors.length < 5) {
            errors.push(String(error instanceof Error ? error.message : error));
          }
          socket?.close();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, command.concurrency) }, worker));
    return { ev: "connected", connected, joined: this.#players.length, failed, errors };
  }

  async #run(command: Extract<AgentCommand, { cmd: "run" }>): Promise<AgentEvent> {
    const { phase, ratePerPlayer, durationMs, drainMs } = command;
    const pad = "x".repeat(command.padBytes);
    const state = this.#phaseState(phase);
    const senders = this.#players;
    for (const player of senders) player.sentInPhase = 0;
    const start = performance.now();
    const perMs = ratePerPlayer / 1000;
    let sent = 0;
    // Open loop: every tick each player sends whatever its schedule says is due by now, so a
    // slow server shows up as latency, not as a lower offered rate.
    const tick = (now: number) => {
      const elapsed = Math.min(now - start, durationMs);
      for (const player of senders) {
        if (player.socket.readyState !== WebSocket.OPEN) continue;
        const due = Math.floor(elapsed * perMs + player.offset);
        while (player.sentInPhase < due) {
          player.socket.send(
            gameDataFrame(player.slot, phase, player.seq++, performance.now(), pad),
          );
          player.sentInPhase++;
          sent++;
          this.#sentTotal++;
        }
      }
    };
    if (perMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          const now = performance.now();
          tick(now);
          if (now - start >= durationMs) {
            clearInterval(timer);
            resolve();
          }
        }, 2);
      });
    } else {
      await sleep(durationMs);
    }
    const sendMs = performance.now() - start;
    let expected = 0;
    for (const player of senders) {
      expected += player.sentInPhase * (player.room.players.length - 1);
    }
    const drainEnd = performance.now() + drainMs;
    while (state.delivered < expected && performance.now() < drainEnd) await sleep(5);
    this.#phases.delete(phase);
    return {
      ev: "phase",
      phase,
      sent,
      expected,
      delivered: state.delivered,
      reordered: state.reordered,
      duplicates: state.duplicates,
      sendMs,
      latency: state.latency.toData(),
    };
  }

  async #churn(command: Extract<AgentCommand, { cmd: "churn" }>): Promise<AgentEvent> {
    const end = performance.now() + command.durationMs;
    const cycleMs = new Histogram();
    let started = 0;
    let failed = 0;
    const errors: string[] = [];
    const loop = async (lane: number) => {
      let n = 0;
      while (performance.now() < end && started < command.maxCycles) {
        started++;
        const begin = performance.now();
        try {
          await churnCycle(command.url, `${command.game}-${lane}-${n++}`, command.timeoutMs);
          this.#cycles++;
          cycleMs.record(performance.now() - begin);
        } catch (error) {
          failed++;
          if (errors.length < 5) {
            errors.push(String(error instanceof Error ? error.message : error));
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, command.concurrency) }, (_, i) => loop(i)));
    return { ev: "churned", cycles: this.#cycles, failed, errors, cycleMs: cycleMs.toData() };
  }

  async #close(timeoutMs: number): Promise<AgentEvent> {
    const players = this.#players.splice(0);
    const wereOpen = players.filter((player) => player.socket.readyState === WebSocket.OPEN).length;
    const closing = players.map((player) => closeSocket(player.socket, timeoutMs));
    await Promise.all(closing);
    return { ev: "closed", closed: players.length, wereOpen };
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The instance a player connects to (one URL, or a cluster's list by placement). */
function pickUrl(
  command: { url: string; placement?: "spread" | "affinity" },
  room: number,
  slot: number,
): string {
  const urls = command.url.split(",");
  if (urls.length === 1) return urls[0]!;
  const index = command.placement === "affinity" ? room : room + slot;
  return urls[index % urls.length]!;
}

/** Opens a WebSocket, failing after `timeoutMs`. */
function openSocket(url: string, timeoutMs: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`Cannot connect to ${url} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.onopen = () => {
      clearTimeout(timer);
      resolve(socket);
    };
    socket.onerror = (event) => {
      clearTimeout(timer);
      reject(new Error(`Cannot connect to ${url}: ${(event as ErrorEvent).message}`));
    };
  });
}

// deno-lint-ignore no-explicit-any
type Reply = { type: string; data?: any };

/** Sends `message` (if given) and waits for the next message of one of `types`. */
function request(
  socket: WebSocket,
  message: unknown,
  types: readonly string[],
  timeoutMs: number,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${types.join(" or ")}`));
    }, timeoutMs);
    const onMessage = (event: MessageEvent) => {
      if (typeof event.data !== "string") return;
      const reply = JSON.parse(event.data) as Reply;
      if (!types.includes(reply.type)) return;
      cleanup();
      resolve(reply);
    };
    const onClose = () => {
      cleanup();
      reject(new Error(`Connection closed while waiting for ${types.join(" or ")}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.removeEventListener("message", onMessage);
      socket.removeEventListener("close", onClose);
    };
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", onClose);
    if (message !== undefined) socket.send(JSON.stringify(message));
  });
}

/** Closes `socket` and waits for the close handshake (at most `timeoutMs`). */
function closeSocket(socket: WebSocket, timeoutMs: number): Promise<void> {
  if (socket.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    socket.addEventListener("close", () => {
      clearTimeout(timer);
      resolve();
    });
    if (socket.readyState !== WebSocket.CLOSING) socket.close(1000);
  });
}

/**
 * One churn cycle: A connects and creates a room, B connects and joins it (A hears
 * PlayerJoined), B leaves (A hears PlayerLeft), A leaves, both close.
 */
async function churnCycle(url: string, game: string, timeoutMs: number): Promise<void> {
  const sockets: WebSocket[] = [];
  try {
    const a = await openSocket(url, timeoutMs);
    sockets.push(a);
    const created = await request(
      a,
      {
        type: "JoinRoom",
        data: { game_name: game, player_name: "a", max_players: 4 },
      },
      ["RoomJoined", "RoomJoinFailed", "Error"],
      timeoutMs,
    );
    if (created.type !== "RoomJoined") throw new Error(`Create: ${JSON.stringify(created)}`);
    const b = await openSocket(url, timeoutMs);
    sockets.push(b);
    const heard = request(a, undefined, ["PlayerJoined"], timeoutMs);
    const joined = await request(
      b,
      {
        type: "JoinRoom",
        data: { game_name: game, room_code: created.data.room_code, player_name: "b" },
      },
      ["RoomJoined", "RoomJoinFailed", "Error"],
      timeoutMs,
    );
    if (joined.type !== "RoomJoined") throw new Error(`Join: ${JSON.stringify(joined)}`);
    await heard;
    const left = request(a, undefined, ["PlayerLeft"], timeoutMs);
    await request(b, { type: "LeaveRoom" }, ["RoomLeft"], timeoutMs);
    await left;
    await request(a, { type: "LeaveRoom" }, ["RoomLeft"], timeoutMs);
  } finally {
    await Promise.all(sockets.map((socket) => closeSocket(socket, timeoutMs)));
  }
}

async function main(): Promise<void> {
  const agent = new Agent();
  const progress = setInterval(() => agent.progress(), 1000);
  let buffered = "";
  let work = Promise.resolve();
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (!line) continue;
      const command = JSON.parse(line) as AgentCommand;
      // Commands run one after another, in the order they came.
      work = work.then(() => agent.handle(command)).catch((error) =>
        agent.emit({ ev: "error", message: String(error?.stack ?? error) })
      );
    }
  }
  await work;
  clearInterval(progress);
  agent.progress();
  await agent.handle({ cmd: "close", timeoutMs: 2000 });
}

if (import.meta.main) await main();
