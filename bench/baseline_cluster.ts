/**
 * The thin cluster relay: the baseline relay (bench/baseline.ts, the same protocol subset and JSON
 * shapes) run as several instances over one Redis in the shape docs/spec/SERVER.md §8 gives
 * cluster mode, and nothing more. It is the floor of issue 15's cluster benchmark: what the hops
 * of §8 cost any Deno server on a machine, before sequence numbers, heartbeats, binding, caps,
 * rate limits, validation or recovery (BENCHMARKS.md "Session 23").
 *
 * What it keeps of §8:
 * - a room lives on its **home**, the instance that first claimed its code in Redis
 *   (`SET <prefix>room:<game>:<code> <node> NX GET`: one round trip, the claim or the holder);
 *   a connection lives on its **edge**, the instance that accepted it (§8.2);
 * - each instance subscribes to its own channel `<prefix>inst:<node>` on one connection and
 *   publishes on another (§8.4.1), so each ordered pair of instances is a FIFO stream;
 * - one envelope per peer per event-loop turn (`setImmediate`), carrying every body produced for
 *   that peer in the turn, in order (§8.4.1 "This implementation"); with `--window-ms W`, as ours'
 *   `cluster.envelope_window_ms`, bodies produced within W ms of the last publish wait for the
 *   window's end;
 * - the edge parses a client frame once and forwards an untargeted or targeted `GameData` as its
 *   payload only (ours' `DATA` body); the home builds the output frame once per event and sends
 *   each other edge one body naming the recipients there (ours' `OUT` frame item).
 *
 * Bodies (an envelope is `JSON.stringify([sourceNode, bodies])`, published as a string):
 * `["J", conn, name, connectedAt, game, code, maxPlayers, supportsAuthority]` edge → home, a join;
 * `["D", conn, data]` edge → home, a `GameData`'s `data`; `["C", conn]` edge → home, the
 * connection left its room or closed; `["O", frame, conns]` home → edge, a frame for those
 * connections; `["F", conn, frame]` home → edge, a refused join (the edge forgets the home).
 *
 * A home deletes an empty room and its directory key. There is no recovery of any kind: a lost
 * envelope is lost, a dead instance's rooms stay claimed. Not for anything but measuring.
 *
 * ```sh
 * deno run --allow-net --allow-read --allow-env bench/baseline_cluster.ts \
 *   --redis redis://127.0.0.1:6379 --port 3537 [--hostname 127.0.0.1] [--transport ws] \
 *   [--window-ms 3]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { setImmediate } from "node:timers";
import { createClient } from "@redis/client";
import {
  type Baseline,
  type BaselineTransport,
  generateCode,
  INVALID,
  joinFrames,
  OPEN,
  PONG,
  type RelaySocket,
  ROOM_FULL,
  ROOM_LEFT,
  serveRelay,
} from "./baseline.ts";

/** A connection on this edge. */
interface Conn {
  readonly id: string;
  readonly socket: RelaySocket;
  readonly connectedAt: string;
  /** Its seat when its room is homed here. */
  seat: Seat | undefined;
  /** Its room's home when that is another instance. */
  home: string | undefined;
  /** A `JoinRoom` is waiting for Redis's answer. */
  joining: boolean;
}

/** A member of a room homed here: a connection of this edge, or one of another's. */
interface Seat {
  readonly id: string;
  readonly name: string;
  readonly connectedAt: string;
  readonly room: Room;
  /** The connection when it is on this instance. */
  readonly conn: Conn | undefined;
  /** Its edge when that is another instance. */
  readonly edge: string | undefined;
}

/** A room homed here. */
interface Room {
  readonly key: string;
  readonly id: string;
  readonly code: string;
  readonly game: string;
  readonly maxPlayers: number;
  readonly supportsAuthority: boolean;
  authority: Seat | undefined;
  readonly players: Seat[];
}

/** What a join carries to the home. */
interface JoinRequest {
  id: string;
  name: string;
  connectedAt: string;
  game: string;
  code: string;
  maxPlayers: number;
  supportsAuthority: boolean;
}

/** An envelope's bodies, as listed in the module's documentation. */
type Body =
  | ["J", string, string, string, string, string, number, boolean]
  | ["D", string, unknown]
  | ["C", string]
  | ["O", string, string[]]
  | ["F", string, string];

/** Options of {@linkcode startClusterBaseline}. */
export interface ClusterBaselineOptions {
  /** The Redis every instance of the cluster shares, e.g. `redis://127.0.0.1:6379`. */
  redisUrl: string;
  hostname?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** `deno` (`Deno.serve`, default) or `ws` (`node:http` + `ws`, ours' transport). */
  transport?: BaselineTransport;
  /** Prefix of keys and channels. @default "floor:" */
  prefix?: string;
  /**
   * Ours' `cluster.envelope_window_ms` (docs/spec/SERVER.md §8.4.1): bodies produced less than
   * this many ms after the last publish wait for the window's end. @default 0 (off)
   */
  windowMs?: number;
}

/** A running instance of the thin cluster relay. */
export interface ClusterBaseline extends Baseline {
  /** This instance's name on the bus (8 hex digits). */
  readonly node: string;
  /** Envelopes published so far. */
  readonly published: number;
}

/**
 * Starts one instance of the thin cluster relay on `hostname:port`, connected to `redisUrl`.
 * @throws when Redis cannot be reached or the port cannot be bound.
 */
export async function startClusterBaseline(
  options: ClusterBaselineOptions,
): Promise<ClusterBaseline> {
  const prefix = options.prefix ?? "floor:";
  const node = crypto.randomUUID().slice(0, 8);
  const channel = (peer: string) => `${prefix}inst:${peer}`;
  const command = createClient({ url: options.redisUrl, disableOfflineQueue: true });
  const subscriber = command.duplicate();
  for (const client of [command, subscriber]) client.on("error", () => {});
  await Promise.all([command.connect(), subscriber.connect()]);

  const conns = new Map<string, Conn>();
  const rooms = new Map<string, Room>();
  const remoteSeats = new Map<string, Seat>();
  const sockets = new Set<RelaySocket>();
  let published = 0;

  // One envelope per peer per turn; with a window, at most one publish round per `windowMs`.
  const windowMs = options.windowMs ?? 0;
  const outbox = new Map<string, Body[]>();
  let flushing = false;
  let lastFlush = -Infinity;
  const flush = () => {
    flushing = false;
    if (windowMs > 0) lastFlush = performance.now();
    for (const [peer, bodies] of outbox) {
      published++;
      command.sendCommand(["PUBLISH", channel(peer), JSON.stringify([node, bodies])])
        .catch(() => {});
    }
    outbox.clear();
  };
  const post = (peer: string, body: Body) => {
    const bodies = outbox.get(peer);
    if (bodies) bodies.push(body);
    else outbox.set(peer, [body]);
    if (!flushing) {
      flushing = true;
      const wait = windowMs > 0 ? lastFlush + windowMs - performance.now() : 0;
      if (wait > 0) setTimeout(flush, wait);
      else setImmediate(flush);
    }
  };

  const sendTo = (conn: Conn, frame: string) => {
    if (conn.socket.readyState === OPEN) conn.socket.send(frame);
  };

  /** Sends `frame` to every seat of `room` but `except`: local ones directly, one body per edge. */
  const broadcast = (room: Room, frame: string, except: Seat | undefined, to?: unknown) => {
    let byEdge: Map<string, string[]> | undefined;
    for (const other of room.players) {
      if (other === except || (to !== undefined && to !== null && other.id !== to)) continue;
      if (other.conn) sendTo(other.conn, frame);
      else {
        byEdge ??= new Map();
        const ids = byEdge.get(other.edge!);
        if (ids) ids.push(other.id);
        else byEdge.set(other.edge!, [other.id]);
      }
    }
    if (byEdge) { for (const [edge, ids] of byEdge) post(edge, ["O", frame, ids]); }
  };

  // Home side.
  const seat = (request: JoinRequest, conn: Conn | undefined, edge: string | undefined) => {
    const key = `${request.game}\u0000${request.code}`;
    let room = rooms.get(key);
    let created = false;
    if (!room) {
      created = true;
      room = {
        key,
        id: crypto.randomUUID(),
        code: request.code,
        game: request.game,
        maxPlayers: request.maxPlayers,
        supportsAuthority: request.supportsAuthority,
        authority: undefined,
        players: [],
      };
      rooms.set(key, room);
    }
    if (room.players.length >= room.maxPlayers) {
      if (conn) sendTo(conn, ROOM_FULL);
      else post(edge!, ["F", request.id, ROOM_FULL]);
      return;
    }
    const member: Seat = {
      id: request.id,
      name: request.name,
      connectedAt: request.connectedAt,
      room,
      conn,
      edge,
    };
    room.players.push(member);
    // As in the baseline: the creator holds authority, and nobody after it leaves.
    if (created && room.supportsAuthority) room.authority = member;
    if (conn) conn.seat = member;
    else remoteSeats.set(member.id, member);
    const { roomJoined, playerJoined } = joinFrames(room, member);
    if (conn) sendTo(conn, roomJoined);
    else post(edge!, ["O", roomJoined, [member.id]]);
    broadcast(room, playerJoined, member);
  };

  const unseat = (member: Seat) => {
    const room = member.room;
    const at = room.players.indexOf(member);
    if (at < 0) return;
    room.players.splice(at, 1);
    if (!member.conn) remoteSeats.delete(member.id);
    if (room.authority === member) room.authority = undefined;
    if (room.players.length === 0) {
      rooms.delete(room.key);
      command.del(`${prefix}room:${room.game}:${room.code}`).catch(() => {});
      return;
    }
    broadcast(room, `{"type":"PlayerLeft","data":{"player_id":"${member.id}"}}`, undefined);
  };

  const gameData = (member: Seat, data: { data?: unknown; to_player?: unknown }) => {
    const out = JSON.stringify({
      type: "GameData",
      data: { from_player: member.id, data: data.data ?? null },
    });
    broadcast(member.room, out, member, data.to_player);
  };

  const onEnvelope = (message: string) => {
    const [from, bodies] = JSON.parse(message) as [string, Body[]];
    for (const body of bodies) {
      switch (body[0]) {
        case "D": {
          const member = remoteSeats.get(body[1]);
          if (member) gameData(member, body[2] as { data?: unknown; to_player?: unknown });
          break;
        }
        case "O":
          for (const id of body[2]) {
            const conn = conns.get(id);
            if (conn) sendTo(conn, body[1]);
          }
          break;
        case "J": {
          const [, id, name, connectedAt, game, code, maxPlayers, supportsAuthority] = body;
          seat(
            { id, name, connectedAt, game, code, maxPlayers, supportsAuthority },
            undefined,
            from,
          );
          break;
        }
        case "C": {
          const member = remoteSeats.get(body[1]);
          if (member) unseat(member);
          break;
        }
        case "F": {
          const conn = conns.get(body[1]);
          if (conn) {
            conn.home = undefined;
            sendTo(conn, body[2]);
          }
          break;
        }
      }
    }
  };
  await subscriber.subscribe(channel(node), onEnvelope);

  // Edge side.
  const join = async (conn: Conn, data: Record<string, unknown>) => {
    if (
      conn.seat || conn.home || conn.joining || typeof data.game_name !== "string" ||
      typeof data.player_name !== "string"
    ) {
      sendTo(conn, INVALID);
      return;
    }
    const request: JoinRequest = {
      id: conn.id,
      name: data.player_name,
      connectedAt: conn.connectedAt,
      game: data.game_name,
      code: typeof data.room_code === "string" ? data.room_code.toUpperCase() : generateCode(),
      maxPlayers: typeof data.max_players === "number" ? data.max_players : 8,
      supportsAuthority: data.supports_authority !== false,
    };
    let home = node;
    if (!rooms.has(`${request.game}\u0000${request.code}`)) {
      conn.joining = true;
      try {
        const holder = await command.sendCommand<string | null>([
          "SET",
          `${prefix}room:${request.game}:${request.code}`,
          node,
          "NX",
          "GET",
        ]);
        if (holder !== null) home = String(holder);
      } catch {
        sendTo(conn, INVALID);
        return;
      } finally {
        conn.joining = false;
      }
    }
    if (!conns.has(conn.id)) return; // closed meanwhile
    if (home === node) seat(request, conn, undefined);
    else {
      conn.home = home;
      post(home, [
        "J",
        request.id,
        request.name,
        request.connectedAt,
        request.game,
        request.code,
        request.maxPlayers,
        request.supportsAuthority,
      ]);
    }
  };

  const leave = (conn: Conn) => {
    if (conn.seat) {
      const member = conn.seat;
      conn.seat = undefined;
      unseat(member);
    } else if (conn.home) {
      post(conn.home, ["C", conn.id]);
      conn.home = undefined;
    }
  };

  const receive = (conn: Conn, frame: unknown) => {
    if (typeof frame !== "string") return sendTo(conn, INVALID);
    let message;
    try {
      message = JSON.parse(frame);
    } catch {
      return sendTo(conn, INVALID);
    }
    switch (message?.type) {
      case "GameData": {
        if (typeof message.data !== "object" || message.data === null) return;
        if (conn.seat) gameData(conn.seat, message.data);
        else if (conn.home) post(conn.home, ["D", conn.id, message.data]);
        return;
      }
      case "JoinRoom":
        void join(conn, message.data ?? {});
        return;
      case "LeaveRoom":
        if (conn.seat || conn.home) {
          sendTo(conn, ROOM_LEFT);
          leave(conn);
        }
        return;
      case "Ping":
        return sendTo(conn, PONG);
      default:
        return sendTo(conn, INVALID);
    }
  };

  const served = await serveRelay<Conn>(options, {
    connect(socket) {
      sockets.add(socket);
      const conn: Conn = {
        id: crypto.randomUUID(),
        socket,
        connectedAt: new Date().toISOString(),
        seat: undefined,
        home: undefined,
        joining: false,
      };
      conns.set(conn.id, conn);
      return conn;
    },
    receive,
    disconnect(conn) {
      sockets.delete(conn.socket);
      conns.delete(conn.id);
      leave(conn);
    },
    sockets,
  });

  const close = async () => {
    await served.close();
    flush();
    await Promise.allSettled([command.close(), subscriber.close()]);
  };
  return {
    node,
    port: served.port,
    wsUrl: served.wsUrl,
    get connections() {
      return served.connections;
    },
    get published() {
      return published;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      redis: { type: "string" },
      port: { type: "string", default: "3537" },
      hostname: { type: "string", default: "127.0.0.1" },
      transport: { type: "string", default: "deno" },
      "window-ms": { type: "string", default: "0" },
    },
  });
  if (values.redis === undefined) {
    console.error("--redis <url> is required");
    Deno.exit(2);
  }
  if (values.transport !== "deno" && values.transport !== "ws") {
    console.error(`--transport must be "deno" or "ws", got "${values.transport}"`);
    Deno.exit(2);
  }
  const relay = await startClusterBaseline({
    redisUrl: values.redis,
    hostname: values.hostname,
    port: Number(values.port),
    transport: values.transport,
    windowMs: Number(values["window-ms"]),
  });
  console.log(JSON.stringify({ msg: "Listening", port: relay.port, node: relay.node }));
  const { promise, resolve } = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", resolve);
  Deno.addSignalListener("SIGINT", resolve);
  await promise;
  await relay.close();
  Deno.exit(0);
}
