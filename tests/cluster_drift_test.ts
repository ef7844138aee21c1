/**
 * Drift soak (docs/spec/SERVER.md §8.3, §8.5, §8.7): does the cluster's state in Redis and in the
 * instances' gauges return to its baseline after churn and failures? Three real server processes
 * (T = 3 s, reconnection window 2 s) on a real redis-server.
 *
 * 1. Seeded churn (six concurrent workers, `DRIFT_SEED=<n>` replays another): every client
 *    authenticates as one of two apps (one with `max_rooms`) from one of six addresses
 *    (X-Forwarded-For); creations and joins in three games, several asking for the same codes;
 *    `LeaveRoom`, close frames, sockets dropped without one (seats held), `Reconnect` through
 *    another instance, takeovers, spectators (switching rooms too), connections that join again
 *    after leaving, game data and readiness. Between waves: `kill -9` of the instance homing the
 *    most rooms and its restart; a drain (SIGTERM) and restart of another (§8.7); every node's
 *    Redis connections killed (`CLIENT KILL`); Redis paused (SIGSTOP) for 0.8 s and 2 s
 *    (`forward_timeout_ms` is 1.5 s); an instance homing rooms frozen for longer than T (split
 *    brain, §8.5.5).
 * 2. Everyone goes (leaves, closes or drops). While the held seats expire and the rooms are
 *    deleted and released: a `kill -9` (and restart) of the instance homing the most rooms, three
 *    `CLIENT KILL`s and a 1.8 s Redis pause. Then polling, at most 3 T past the window.
 * 3. The baseline: every instance's `/v2/status` rooms, players, spectators, connections and held
 *    seats and every `signal_fish_*` gauge but build info, Redis up and timestamps are 0; the
 *    running nodes are the listed ones; Redis holds only what §8.3 keeps without rooms — `epoch`
 *    (no TTL), each running node's `instance:` and `instance-games:` (TTL ≤ T), `instances`
 *    (TTL ≤ 2 T, members: the running nodes) and rate-limit buckets (TTL ≤ 2 × the refill
 *    period) — so no room entry, `room-id`, cap set (`game-rooms`, `game-empty`, `app-rooms`,
 *    `app-empty`, `ip-rooms`) or order set is left; then every game's cap, each address's cap in
 *    each game and the app's cap are filled exactly (a leaked count of 1, in Redis or in an
 *    instance's engine, would refuse one) and one more creation is refused.
 *
 * The cap counts in Redis are sorted sets of rooms scored by expiry, refreshed by their homes
 * every T/3 and pruned by the scripts, each set with TTL T: a decrement a release skipped heals
 * within T, so lasting drift there needs an instance that keeps refreshing a room it should have
 * deleted, which the gauges show.
 *
 * One test, bounded by {@linkcode LIMIT_MS}: 25–32 s on two cores when it passes.
 */
import { deepEqual, ok } from "node:assert/strict";
import { createClient } from "@redis/client";
import { pause, type RealCluster, startCluster, TEST_TTL_SECS } from "./cluster_helpers.ts";
import { IGNORE_WITHOUT_REDIS } from "./redis_server.ts";
import { RawWebSocket } from "./raw_websocket.ts";
import { exitWithin } from "./process.ts";
import { type Received, secretApp } from "./helpers.ts";

/** The whole test's budget, ms: past it the test fails (and its processes are killed). */
const LIMIT_MS = 43_000;
const SEED = Number(Deno.env.get("DRIFT_SEED") ?? 20261207);
const T_MS = TEST_TTL_SECS * 1000;
/** `server.reconnection_window`, s. */
const WINDOW_SECS = 2;
/** `rate_limit.time_window`, s: buckets live at most twice that (§8.3 `bucket:`). */
const BUCKET_WINDOW_SECS = 60;
const GAMES = ["orbit", "nebula", "comet"] as const;
/** Codes several creations ask for, in every game (a join when the room exists). */
const SHARED_CODES = ["DRIFT1", "DRIFT2", "SAME01"] as const;
/** Client addresses (X-Forwarded-For from the trusted 127.0.0.1). */
const IPS = [
  "198.51.100.1",
  "198.51.100.2",
  "198.51.100.3",
  "203.0.113.4",
  "203.0.113.5",
  "203.0.113.6",
];
const MAX_ROOMS_PER_GAME = 12;
const MAX_ROOMS_PER_IP = 2;
/** Every client authenticates (auth is required): as this app, whose `max_rooms` is capped, … */
const APP = "drift-app";
const APP_MAX_ROOMS = 4;
/** … or as this one, without a cap (its games are other namespaces, docs/spec/SERVER.md §3.7). */
const OPEN_APP = "open-app";
const PREFIX = "signal_fish:";

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A WebSocket client over raw TCP (tests/raw_websocket.ts), so it can also vanish without a close
 * frame; it queues the JSON messages it receives and answers pings.
 */
class Peer {
  readonly raw: RawWebSocket;
  readonly instance: number;
  readonly ip: string;
  /** Authenticated as {@linkcode APP} (else {@linkcode OPEN_APP}). */
  app = false;
  readonly #queue: Received[] = [];
  #wake: (() => void) | undefined;
  ended = false;
  readonly done: Promise<void>;

  private constructor(raw: RawWebSocket, instance: number, ip: string) {
    this.raw = raw;
    this.instance = instance;
    this.ip = ip;
    this.done = this.#pump();
  }

  /** Opens a connection to instance `i` as client address `ip`. */
  static async open(cluster: RealCluster, i: number, ip: string): Promise<Peer> {
    const raw = await RawWebSocket.open(cluster.servers[i]!.port, "/v2/ws", {
      headers: { "X-Forwarded-For": ip },
    });
    return new Peer(raw, i, ip);
  }

  async #pump(): Promise<void> {
    try {
      for (;;) {
        const frame = await this.raw.readFrame(10 * LIMIT_MS);
        if (!frame || frame.opcode === 8) break;
        if (frame.opcode === 9) await this.raw.sendFrame(10, frame.payload).catch(() => {});
        if (frame.opcode === 1) {
          this.#queue.push(JSON.parse(new TextDecoder().decode(frame.payload)));
          this.#wake?.();
        }
      }
    } catch { /* reset */ }
    this.ended = true;
    this.#wake?.();
  }

  send(message: unknown): void {
    this.raw.sendText(JSON.stringify(message)).catch(() => {});
  }

  /** The next message of one of `types` (others skipped), or `undefined` after `ms` or the end. */
  async answer(types: readonly string[], ms = 4_000): Promise<Received | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const at = this.#queue.findIndex((m) => types.includes(m.type));
      if (at >= 0) return this.#queue.splice(0, at + 1).at(-1);
      const left = deadline - Date.now();
      if (this.ended || left <= 0) return undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = undefined;
    }
  }

  /** A close frame (1000), then the TCP connection closed once the server answered (≤ 1 s). */
  async leave(): Promise<void> {
    await this.raw.sendFrame(8, new Uint8Array([0x03, 0xe8])).catch(() => {});
    await Promise.race([this.done, sleep(1_000)]);
    this.raw.close();
    await this.done;
  }

  /** The TCP connection closed without a close frame (the seat is held, §8.5.3). */
  async abort(): Promise<void> {
    this.raw.close();
    await this.done;
  }
}

/** A seat the churn knows of. */
interface Seat {
  peer: Peer;
  game: string;
  code: string;
  app: boolean;
  playerId: string;
  roomId: string;
  token: string;
}

/** A seat left held by a dropped socket, and the instance it was dropped from. */
type Held = Omit<Seat, "peer"> & { edge: number };

/** What the churn did, for the failure messages and a sanity check. */
const tally: Record<string, number> = {};
const count = (what: string) => tally[what] = (tally[what] ?? 0) + 1;

/** The churn's world: live peers, known seats and rooms, held seats. */
class Churn {
  readonly cluster: RealCluster;
  readonly random: () => number;
  readonly seats: Seat[] = [];
  readonly held: Held[] = [];
  readonly spectators: Peer[] = [];
  readonly idle: Peer[] = [];
  /** Instances new connections avoid (killed, draining or frozen). */
  readonly down = new Set<number>();

  constructor(cluster: RealCluster, seed: number) {
    this.cluster = cluster;
    this.random = prng(seed);
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)]!;
  }

  /** Removes and returns a random element of `items`, or undefined. */
  take<T>(items: T[]): T | undefined {
    if (items.length === 0) return undefined;
    return items.splice(Math.floor(this.random() * items.length), 1)[0];
  }

  instance(not?: number): number {
    const up = [0, 1, 2].filter((i) => !this.down.has(i) && i !== not);
    return this.pick(up.length > 0 ? up : [0, 1, 2].filter((i) => !this.down.has(i)));
  }

  /** A connected, authenticated peer on a live instance: app {@linkcode APP} when `app`. */
  async peer(app: boolean, not?: number): Promise<Peer | undefined> {
    const i = this.instance(not);
    const peer = await Peer.open(this.cluster, i, this.pick(IPS)).catch(() => undefined);
    if (!peer) return count("connect failed"), undefined;
    peer.send({ type: "Authenticate", data: { app_id: app ? APP : OPEN_APP } });
    if ((await peer.answer(["Authenticated", "AuthenticationError"]))?.type !== "Authenticated") {
      count("authenticate failed");
      await peer.abort();
      return undefined;
    }
    peer.app = app;
    return peer;
  }

  /**
   * Creation or join by code (a shared code, a known room's, or a generated one), by a new
   * connection or (`reuse`) one that is in no room (it left one, or was refused).
   */
  async join(known: boolean, reuse = false): Promise<void> {
    const idle = reuse ? this.take(this.idle) : undefined;
    if (reuse && !idle) return;
    const room = known
      ? this.pick([...this.seats, ...this.held].filter((r) => !idle || r.app === idle.app))
      : undefined;
    if (known && !room) {
      if (idle) this.idle.push(idle);
      return;
    }
    const app = idle?.app ?? room?.app ?? this.random() < 0.25;
    const game = room?.game ?? this.pick(GAMES);
    const code = room?.code ?? (this.random() < 0.5 ? this.pick(SHARED_CODES) : null);
    if (idle) count("rejoin");
    const peer = idle ?? await this.peer(app);
    if (!peer) return;
    peer.send({
      type: "JoinRoom",
      data: {
        game_name: game,
        room_code: code,
        player_name: `p${count("join")}`,
        max_players: 2 + Math.floor(this.random() * 5),
      },
    });
    const answer = await peer.answer(["RoomJoined", "RoomJoinFailed"]);
    if (answer?.type === "RoomJoined") {
      count(answer.data.current_players.length === 1 ? "created" : "joined");
      this.seats.push({
        peer,
        game,
        code: answer.data.room_code,
        app,
        playerId: answer.data.player_id,
        roomId: answer.data.room_id,
        token: answer.data.reconnection_token,
      });
    } else {
      count(`join refused ${answer?.data?.error_code ?? "unanswered"}`);
      this.idle.push(peer);
    }
  }

  /** A new spectator, or (`switching`) a spectator moving to another room of its app. */
  async spectate(switching = false): Promise<void> {
    const watcher = switching ? this.take(this.spectators) : undefined;
    if (switching && !watcher) return;
    const room = this.pick(
      [...this.seats, ...this.held].filter((r) => !watcher || r.app === watcher.app),
    );
    if (!room) {
      if (watcher) this.spectators.push(watcher);
      return;
    }
    if (watcher) count("spectator switch");
    const peer = watcher ?? await this.peer(room.app);
    if (!peer) return;
    peer.send({
      type: "JoinAsSpectator",
      data: { game_name: room.game, room_code: room.code, spectator_name: `s${count("spectate")}` },
    });
    const answer = await peer.answer(["SpectatorJoined", "SpectatorJoinFailed"]);
    if (answer?.type === "SpectatorJoined") this.spectators.push(peer);
    else this.idle.push(peer);
  }

  /** A seated player leaves: `LeaveRoom` (then stays or goes), a close frame, or a dropped socket. */
  async drop(how: "leave" | "close" | "abort"): Promise<void> {
    const seat = this.take(this.seats);
    if (!seat) return;
    count(how);
    if (how === "leave") {
      seat.peer.send({ type: "LeaveRoom" });
      await seat.peer.answer(["RoomLeft"], 2_000);
      if (this.random() < 0.5) this.idle.push(seat.peer);
      else await seat.peer.leave();
    } else if (how === "close") {
      await seat.peer.leave();
    } else {
      const { peer, ...held } = seat;
      await peer.abort();
      this.held.push({ ...held, edge: peer.instance });
    }
  }

  /** A held seat resumed through another instance than the one it was dropped from. */
  async reconnect(): Promise<void> {
    const held = this.take(this.held);
    if (!held) return;
    const peer = await this.peer(held.app, held.edge);
    if (!peer) return;
    peer.send({
      type: "Reconnect",
      data: { player_id: held.playerId, room_id: held.roomId, auth_token: held.token },
    });
    const answer = await peer.answer(["Reconnected", "ReconnectionFailed"]);
    if (answer?.type === "Reconnected") {
      count("reconnected");
      // The token stays valid for the resumed seat unless a new one is given.
      const { edge: _, ...seat } = held;
      this.seats.push({ ...seat, peer, token: answer.data.reconnection_token ?? held.token });
    } else {
      count(`reconnect refused ${answer?.data?.error_code ?? "unanswered"}`);
      this.idle.push(peer);
    }
  }

  /**
   * A takeover (docs/spec/PROTOCOL.md §7.11.5): a seat's `Reconnect` through another instance
   * while its connection is still open; the old connection is closed by the server.
   */
  async takeover(): Promise<void> {
    const seat = this.take(this.seats);
    if (!seat) return;
    const peer = await this.peer(seat.app, seat.peer.instance);
    if (!peer) return void this.seats.push(seat);
    peer.send({
      type: "Reconnect",
      data: { player_id: seat.playerId, room_id: seat.roomId, auth_token: seat.token },
    });
    const answer = await peer.answer(["Reconnected", "ReconnectionFailed"]);
    if (answer?.type === "Reconnected") {
      count("takeover");
      this.seats.push({ ...seat, peer, token: answer.data.reconnection_token });
      await Promise.race([seat.peer.done, sleep(1_000)]);
      await seat.peer.abort();
    } else {
      count(`takeover refused ${answer?.data?.error_code ?? "unanswered"}`);
      this.seats.push(seat);
      this.idle.push(peer);
    }
  }

  gameData(): void {
    const seat = this.pick(this.seats);
    if (!seat) return;
    count("game data");
    seat.peer.send({ type: "GameData", data: { data: { n: this.random() } } });
    if (this.random() < 0.3) seat.peer.send({ type: "PlayerReady" });
  }

  async leaveSpectator(): Promise<void> {
    const peer = this.take(this.spectators);
    if (!peer) return;
    if (this.random() < 0.5) await peer.abort();
    else {
      peer.send({ type: "LeaveSpectator" });
      await peer.answer(["SpectatorLeft"], 2_000);
      this.idle.push(peer);
    }
  }

  /** One random step. */
  async step(): Promise<void> {
    const r = this.random();
    if (r < 0.18) return this.join(false);
    if (r < 0.32) return this.join(true);
    if (r < 0.36) return this.join(this.random() < 0.5, true);
    if (r < 0.42) return this.spectate();
    if (r < 0.45) return this.spectate(true);
    if (r < 0.52) return this.drop("leave");
    if (r < 0.56) return this.drop("close");
    if (r < 0.67) return this.drop("abort");
    if (r < 0.78) return this.reconnect();
    if (r < 0.82) return this.takeover();
    if (r < 0.90) return this.gameData();
    if (r < 0.95) return this.leaveSpectator();
    const peer = this.take(this.idle);
    if (peer) await (this.random() < 0.5 ? peer.leave() : peer.abort());
  }

  /** `steps` steps by `workers` concurrent workers (a slow step holds up only its worker). */
  async run(steps: number, workers = 6): Promise<void> {
    let left = steps;
    await Promise.all(Array.from({ length: workers }, async () => {
      while (left-- > 0) await this.step();
    }));
  }

  /** Forgets the peers of instance `i` (killed): their sockets end with it. */
  forget(i: number): void {
    for (let at = this.seats.length - 1; at >= 0; at--) {
      if (this.seats[at]!.peer.instance === i) {
        const { peer: _, ...held } = this.seats.splice(at, 1)[0]!;
        this.held.push({ ...held, edge: i }); // on another home, the seat is held
      }
    }
  }

  /** Everyone goes: a third leave, a third close, a third drop their socket. */
  async end(): Promise<void> {
    const seats = this.seats.splice(0);
    await Promise.all(seats.map(async (seat) => {
      const r = this.random();
      if (r < 0.33) {
        seat.peer.send({ type: "LeaveRoom" });
        await seat.peer.answer(["RoomLeft"], 2_000);
        await seat.peer.leave();
      } else if (r < 0.66) await seat.peer.leave();
      else await seat.peer.abort();
    }));
    await Promise.all(
      [...this.spectators.splice(0), ...this.idle.splice(0)].map((peer) =>
        this.random() < 0.5 ? peer.leave() : peer.abort()
      ),
    );
  }
}

/** The `/v2/status` body of server `i`. */
async function status(cluster: RealCluster, i: number): Promise<Record<string, unknown>> {
  return await (await fetch(`${cluster.httpUrl(i)}/v2/status`)).json();
}

/**
 * Every `signal_fish_*` gauge of server `i` (summed over label sets) that must be 0 with nobody
 * connected: all but build info, Redis up, dashboard cache age and certificate/state-file times.
 */
async function gauges(cluster: RealCluster, i: number): Promise<Map<string, number>> {
  const text = await (await fetch(`${cluster.httpUrl(i)}/metrics/prom`)).text();
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    const m = line.match(/^# TYPE (signal_fish_\w+) gauge$/);
    if (m) names.add(m[1]!);
  }
  for (
    const never of [
      "signal_fish_build_info",
      "signal_fish_cluster_redis_up",
      "signal_fish_dashboard_cache_age_seconds",
      "signal_fish_tls_certificate_expiry_timestamp_seconds",
      "signal_fish_state_file_saved_timestamp_seconds",
    ]
  ) names.delete(never);
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = line.match(/^(signal_fish_\w+)(?:\{[^}]*\})? (\S+)$/);
    if (m && names.has(m[1]!)) values.set(m[1]!, (values.get(m[1]!) ?? 0) + Number(m[2]));
  }
  for (const name of names) if (!values.has(name)) values.set(name, 0);
  return values;
}

/** What the test uses of its Redis connection. */
interface Redis {
  sendCommand(args: string[]): Promise<unknown>;
}

/** Every key under the prefix with its PTTL (ms; -1 = none). */
async function keys(redis: Redis): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let cursor = "0";
  do {
    const [next, batch] = await redis.sendCommand([
      "SCAN",
      cursor,
      "MATCH",
      `${PREFIX}*`,
      "COUNT",
      "1000",
    ]) as [string, string[]];
    cursor = String(next);
    for (const key of batch) {
      out.set(String(key), Number(await redis.sendCommand(["PTTL", String(key)])));
    }
  } while (cursor !== "0");
  return out;
}

/**
 * What is wrong with the cluster's state now, compared with the baseline (empty when none):
 * instance counts and gauges, then Redis keys against docs/spec/SERVER.md §8.3.
 */
async function drift(cluster: RealCluster, redis: Redis): Promise<string[]> {
  const problems: string[] = [];
  const nodes = new Set<string>();
  const listed = new Set<string>();
  for (let i = 0; i < 3; i++) {
    const body = await status(cluster, i).catch((error) => ({ error }));
    if ("error" in body) {
      problems.push(`server ${i} unreachable: ${body.error}`);
      continue;
    }
    nodes.add(String(body.node));
    for (const node of body.cluster_nodes as string[]) listed.add(node);
    for (const field of ["rooms", "players", "spectators", "connections", "held_seats"]) {
      if (body[field] !== 0) problems.push(`server ${i} /v2/status ${field} = ${body[field]}`);
    }
    for (const [name, value] of await gauges(cluster, i)) {
      if (value !== 0) problems.push(`server ${i} ${name} = ${value}`);
    }
  }
  if ([...listed].sort().join() !== [...nodes].sort().join()) {
    problems.push(`nodes listed ${[...listed].sort()} ≠ running ${[...nodes].sort()}`);
  }
  // §8.3: with no room, the keys a cluster keeps are the epoch (no TTL), each running node's
  // liveness and counts per game (TTL T), the node index (TTL 2 T, members: running nodes) and
  // the rate-limit buckets (TTL ≤ 2 × the refill period). Everything a room writes (entries,
  // room-id, the cap and order sets) is gone once its room is.
  const found = await keys(redis);
  for (const [key, pttl] of found) {
    const name = key.slice(PREFIX.length);
    const within = (max: number) => {
      if (pttl <= 0 || pttl > max) problems.push(`${name}: PTTL ${pttl}, expected 1..${max}`);
    };
    if (name === "epoch") {
      if (pttl !== -1) problems.push(`epoch: PTTL ${pttl}, expected none`);
    } else if (name === "instances") {
      within(2 * T_MS);
      const members = (await redis.sendCommand(["ZRANGE", key, "0", "-1"]) as string[]).map(String);
      if (members.sort().join() !== [...nodes].sort().join()) {
        problems.push(`instances holds ${members}, running ${[...nodes].sort()}`);
      }
    } else if (name.startsWith("instance:") || name.startsWith("instance-games:")) {
      within(T_MS);
      if (!nodes.has(name.slice(name.indexOf(":") + 1))) problems.push(`${name}: not running`);
    } else if (/^bucket:(creation|join|reconnect|auth_failure|app):/.test(name)) {
      within(2 * BUCKET_WINDOW_SECS * 1000);
    } else {
      const type = String(await redis.sendCommand(["TYPE", key]));
      const size = type === "zset"
        ? ` (${await redis.sendCommand(["ZCARD", key])} members, ${await redis.sendCommand([
          "ZCOUNT",
          key,
          `(${Date.now()}`,
          "+inf",
        ])} unexpired)`
        : "";
      problems.push(`unexpected key ${name}${size}, PTTL ${pttl}`);
    }
  }
  for (const node of nodes) {
    if (!found.has(`${PREFIX}instance:${node}`)) problems.push(`no liveness key for ${node}`);
  }
  if (!found.has(`${PREFIX}epoch`)) problems.push("no epoch");
  return problems;
}

/** Creates a room (generated code) on instance `i` from `ip`; resolves with the answer's type and code. */
async function create(
  cluster: RealCluster,
  i: number,
  ip: string,
  game: string,
  app: boolean,
): Promise<[Peer, string]> {
  const peer = await Peer.open(cluster, i, ip);
  peer.send({ type: "Authenticate", data: { app_id: app ? APP : OPEN_APP } });
  await peer.answer(["Authenticated"]);
  peer.send({ type: "JoinRoom", data: { game_name: game, room_code: null, player_name: "cap" } });
  const answer = await peer.answer(["RoomJoined", "RoomJoinFailed"]);
  return [
    peer,
    answer?.type === "RoomJoined"
      ? "ok"
      : `${answer?.data?.error_code ?? "unanswered"} (${answer?.data?.reason})`,
  ];
}

Deno.test({
  name:
    "cluster drift: after churn, kill -9s, a drain, a frozen instance, Redis connection kills and pauses, every gauge, key and cap is back at its baseline",
  ignore: IGNORE_WITHOUT_REDIS,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const started = Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    // The budget counts from here; the cluster's start is bounded by its own timeouts.
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`over ${LIMIT_MS} ms`)), LIMIT_MS);
    });
    limit.catch(() => {});
    const peers: Peer[] = [];
    try {
      await using cluster = await startCluster(3, {
        SIGNAL_FISH_SERVER__RECONNECTION_WINDOW: String(WINDOW_SECS),
        SIGNAL_FISH_CLUSTER__DRAIN_TIMEOUT_SECS: "1",
        SIGNAL_FISH_SERVER__EMPTY_ROOM_TIMEOUT: "1",
        SIGNAL_FISH_SERVER__ROOM_CLEANUP_INTERVAL: "1",
        SIGNAL_FISH_SERVER__MAX_ROOMS_PER_GAME: String(MAX_ROOMS_PER_GAME),
        SIGNAL_FISH_SERVER__MAX_ROOMS_PER_IP: String(MAX_ROOMS_PER_IP),
        SIGNAL_FISH_RATE_LIMIT__TIME_WINDOW: String(BUCKET_WINDOW_SECS),
        SIGNAL_FISH_SECURITY__TRUSTED_PROXIES: "127.0.0.1",
        SIGNAL_FISH_SECURITY__REQUIRE_WEBSOCKET_AUTH: "true",
        SIGNAL_FISH_SECURITY__AUTHORIZED_APPS: JSON.stringify([
          { ...secretApp(APP, null), max_rooms: APP_MAX_ROOMS },
          secretApp(OPEN_APP, null),
        ]),
      });
      const redis = createClient({ url: cluster.redis.url });
      redis.on("error", () => {});
      await redis.connect();
      try {
        const soaking = soak(cluster, redis, peers);
        // Past the budget the soak goes on failing in the background until the processes are
        // killed (the cluster's disposal): its later errors are nobody's.
        soaking.catch(() => {});
        await Promise.race([limit, soaking]);
      } finally {
        redis.destroy();
        for (const peer of peers) peer.raw.close();
      }
    } finally {
      clearTimeout(timer);
      console.log(
        `drift soak: seed ${SEED}, ${Date.now() - started} ms (${phases}), ${
          JSON.stringify(tally)
        }`,
      );
    }
  },
});

/** The instance homing the most rooms (not `not`; the first such when none homes one). */
async function busiest(cluster: RealCluster, not?: number): Promise<number> {
  const homed = await Promise.all(
    [0, 1, 2].map(async (i) => i === not ? -1 : (await status(cluster, i)).rooms as number),
  );
  return homed.indexOf(Math.max(...homed));
}

/** How long each phase took, ms (printed). */
const phases: string[] = [];

async function soak(cluster: RealCluster, redis: Redis, peers: Peer[]): Promise<void> {
  await cluster.pastGrace();
  let at = Date.now();
  const t0 = Date.now();
  /** With DRIFT_DEBUG set: when each step of the soak ended. */
  const mark = (what: string) => {
    if (Deno.env.get("DRIFT_DEBUG")) console.log(`${Date.now() - t0} ${what}`);
  };
  const churn = new Churn(cluster, SEED);

  // Phase 1: churn, with failures between the waves.
  await churn.run(200);
  mark("churn");
  // kill -9 of the instance homing the most rooms; the churn goes on without it.
  const victim = await busiest(cluster);
  ok((await status(cluster, victim)).rooms as number > 0, "an instance homes rooms");
  cluster.servers[victim]!.child.kill("SIGKILL");
  await cluster.servers[victim]!.exited;
  count("kill -9");
  churn.down.add(victim);
  churn.forget(victim);
  const restarted = cluster.restart(victim);
  await churn.run(100);
  mark("churn without the killed instance");
  await restarted;
  mark("restarted");
  churn.down.delete(victim);
  // A rolling deploy of another instance homing rooms: SIGTERM drains it (§8.7,
  // cluster.drain_timeout_secs = 1), it exits, a new node starts in its place.
  const drained = await busiest(cluster, victim);
  churn.down.add(drained);
  cluster.servers[drained]!.child.kill("SIGTERM");
  count("drain");
  await churn.run(40);
  mark("churn while draining");
  const exit = await exitWithin(cluster.servers[drained]!, 15_000);
  ok(exit?.code === 0, `the drained instance exited with ${exit?.code}`);
  churn.forget(drained);
  await cluster.restart(drained);
  mark("drained and restarted");
  churn.down.delete(drained);
  // Redis drops every node's connections (commands and subscriptions) during churn.
  await Promise.all([
    churn.run(60),
    (async () => {
      await sleep(100);
      await redis.sendCommand(["CLIENT", "KILL", "TYPE", "normal"]);
      await redis.sendCommand(["CLIENT", "KILL", "TYPE", "pubsub"]);
      count("CLIENT KILL");
    })(),
  ]);
  // Redis paused during churn for 0.8 s (under forward_timeout_ms), then for 2 s (past it).
  for (const ms of [800, 2_000]) {
    await Promise.all([
      churn.run(40),
      (async () => {
        await sleep(50);
        const resume = pause(cluster.redis.pid());
        count("Redis paused");
        await sleep(ms);
        resume();
      })(),
    ]);
  }
  // An instance homing rooms frozen (SIGSTOP) for longer than T: the others may hold it dead and
  // create rooms under its codes; it comes back and re-registers (split brain, §8.5.5).
  const frozen = await busiest(cluster, victim);
  churn.down.add(frozen);
  await Promise.all([
    churn.run(60),
    (async () => {
      const resume = pause(cluster.servers[frozen]!.child.pid);
      count("instance frozen");
      await sleep(T_MS + 1_000);
      resume();
    })(),
  ]);
  churn.down.delete(frozen);
  mark("Redis connections killed, Redis paused twice, an instance frozen");
  await churn.run(80);
  mark("churn");
  phases.push(`churn ${Date.now() - at}`);
  ok((tally.created ?? 0) >= 10, `too few rooms created: ${JSON.stringify(tally)}`);
  ok((tally.reconnected ?? 0) >= 3, `too few reconnections: ${JSON.stringify(tally)}`);

  // Phase 2: everyone goes. While the held seats expire and the rooms are deleted (and
  // released): a kill -9 of the instance homing the most rooms (restarted at once), Redis
  // connections killed three times, then Redis paused past forward_timeout_ms.
  at = Date.now();
  await churn.end();
  mark("everyone gone");
  const dying = await busiest(cluster);
  cluster.servers[dying]!.child.kill("SIGKILL");
  await cluster.servers[dying]!.exited;
  count("kill -9");
  await Promise.all([
    cluster.restart(dying),
    (async () => {
      for (const ms of [1_500, 700, 500]) {
        await sleep(ms);
        await redis.sendCommand(["CLIENT", "KILL", "TYPE", "normal"]);
        count("CLIENT KILL");
      }
      await sleep(300);
      const resume = pause(cluster.redis.pid());
      count("Redis paused");
      await sleep(1_800);
      resume();
    })(),
  ]);
  // Then wait (polling) past the reconnection window, the empty-room timeout and T.
  const deadline = Date.now() + WINDOW_SECS * 1000 + 3 * T_MS;
  let problems: string[] = [];
  for (;;) {
    problems = await drift(cluster, redis);
    if (Deno.env.get("DRIFT_DEBUG")) {
      const kinds = new Set(problems.map((p) => p.replace(/(:|,| =).*$/, "")));
      console.log(Date.now() - at, problems.length, [...kinds].join(" | "));
    }
    if (problems.length === 0 || Date.now() > deadline) break;
    await sleep(250);
  }
  phases.push(`baseline ${Date.now() - at}`);
  // Phase 3: the baseline.
  ok(
    problems.length === 0,
    `seed ${SEED}: ${problems.length} differences from the baseline after churn ` +
      `${JSON.stringify(tally)}:\n${problems.slice(0, 40).join("\n")}`,
  );

  // A leaked count of 1 anywhere would refuse one of these: each game's cap, each address's cap
  // in each game, the app's cap, in Redis (§8.3 "Claim") or in an instance's engine (each
  // address's two rooms of a game are created on two instances).
  const answers: string[] = [];
  await Promise.all(GAMES.map(async (game, g) => {
    for (let n = 0; n < MAX_ROOMS_PER_GAME; n++) {
      const [peer, answer] = await create(
        cluster,
        (g + n + Math.floor(n / IPS.length)) % 3,
        IPS[n % IPS.length]!,
        game,
        false,
      );
      peers.push(peer);
      answers.push(`${game} ${n}: ${answer}`);
    }
  }));
  for (let n = 0; n < APP_MAX_ROOMS; n++) {
    const [peer, answer] = await create(cluster, n % 3, IPS[n % IPS.length]!, "orbit", true);
    peers.push(peer);
    answers.push(`app ${n}: ${answer}`);
  }
  deepEqual(answers.filter((a) => !a.endsWith(": ok")), [], answers.join("\n"));
  // And the caps still hold: one more of a game is refused.
  const [extra, refused] = await create(cluster, 0, IPS[5]!, "orbit", false);
  peers.push(extra);
  ok(refused.startsWith("MAX_ROOMS_PER_GAME_EXCEEDED"), refused);
}
