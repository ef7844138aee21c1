/**
 * Tests of the cluster floor (bench/cluster_floor.ts) and of the thin cluster relay it measures
 * (bench/baseline_cluster.ts) on a real redis-server: a room homed on one instance is joined and
 * played through another, on both transports.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { type ClusterBaseline, startClusterBaseline } from "./baseline_cluster.ts";
import {
  clusterRatios,
  clusterRunEnv,
  topologyOf,
  type TopologyRun,
  topologyRun,
} from "./cluster_floor.ts";
import { rotation } from "./stats.ts";
import { IGNORE_WITHOUT_REDIS, startRedis } from "../tests/redis_server.ts";

/** A test client: every frame it received, in order, and a wait for the next of a type. */
class Client {
  readonly socket: WebSocket;
  readonly #frames: { type: string; data: Record<string, unknown> }[] = [];
  #wake: (() => void) | undefined;

  /** Settles when the socket opens (or fails to). */
  readonly opened: Promise<void>;

  constructor(url: string) {
    this.socket = new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.socket.onopen = () => resolve();
      this.socket.onerror = () => reject(new Error("socket error"));
    });
    this.socket.onmessage = (event) => {
      this.#frames.push(JSON.parse(event.data));
      this.#wake?.();
    };
  }

  send(type: string, data: Record<string, unknown>): void {
    this.socket.send(JSON.stringify({ type, data }));
  }

  /** The first unread frame of `type` (earlier frames of other types are skipped), within 5 s. */
  async next(type: string): Promise<Record<string, unknown>> {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const at = this.#frames.findIndex((frame) => frame.type === type);
      if (at >= 0) {
        const [frame] = this.#frames.splice(0, at + 1).slice(-1);
        return frame!.data;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type} within 5 s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Frames of `type` received and not read yet. */
  unread(type: string): number {
    return this.#frames.filter((frame) => frame.type === type).length;
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    const closed = new Promise((resolve) => this.socket.onclose = resolve);
    this.socket.close();
    await closed;
  }
}

async function joined(client: Client, code: string, name: string) {
  await client.opened;
  client.send("JoinRoom", {
    game_name: "floor",
    room_code: code,
    player_name: name,
    max_players: 4,
  });
  return await client.next("RoomJoined");
}

for (const transport of ["deno", "ws"] as const) {
  Deno.test({
    name:
      `the thin cluster relay (${transport}) plays a room homed on one instance through another`,
    ignore: IGNORE_WITHOUT_REDIS,
    async fn() {
      await using redis = await startRedis();
      const nodes: ClusterBaseline[] = [];
      const clients: Client[] = [];
      try {
        for (let i = 0; i < 2; i++) {
          nodes.push(await startClusterBaseline({ redisUrl: redis.url, transport }));
        }
        const [home, edge] = nodes as [ClusterBaseline, ClusterBaseline];
        const a = new Client(home.wsUrl);
        const b = new Client(edge.wsUrl);
        const c = new Client(edge.wsUrl);
        clients.push(a, b, c);

        const roomA = await joined(a, "FLOOR1", "a");
        const roomB = await joined(b, "FLOOR1", "b");
        // One room: b, joined through the other instance, is seated in a's room, at its home.
        equal(roomB.room_id, roomA.room_id);
        // The creator holds authority, as in the baseline.
        deepEqual([roomA.is_authority, roomB.is_authority], [true, false]);
        deepEqual(
          (roomB.current_players as { name: string }[]).map((player) => player.name),
          ["a", "b"],
        );
        equal(
          (await a.next("PlayerJoined") as { player: { id: string } }).player.id,
          roomB.player_id,
        );

        b.send("GameData", { data: { n: 1 } });
        deepEqual(await a.next("GameData"), { from_player: roomB.player_id, data: { n: 1 } });

        const roomC = await joined(c, "FLOOR1", "c");
        await b.next("PlayerJoined");
        // One frame for two players on the other instance: one envelope there, not one each.
        const before = home.published;
        a.send("GameData", { data: { n: 2 } });
        deepEqual(await b.next("GameData"), { from_player: roomA.player_id, data: { n: 2 } });
        deepEqual(await c.next("GameData"), { from_player: roomA.player_id, data: { n: 2 } });
        equal(home.published - before, 1);

        // A targeted frame from one edge reaches only its target, on the same edge.
        b.send("GameData", { data: { n: 3 }, to_player: roomC.player_id });
        deepEqual(await c.next("GameData"), { from_player: roomB.player_id, data: { n: 3 } });
        a.send("Ping", {});
        await a.next("Pong");
        equal(a.unread("GameData"), 0);

        // A player closing on the edge leaves the room at its home.
        await b.close();
        equal((await a.next("PlayerLeft")).player_id, roomB.player_id);
        equal((await c.next("PlayerLeft")).player_id, roomB.player_id);
      } finally {
        for (const client of clients) await client.close();
        for (const node of nodes) await node.close();
      }
    },
  });
}

Deno.test("bench:cluster-floor starts each server, rotates them, reads reports, takes ratios", () => {
  deepEqual(clusterRunEnv("ours"), {});
  deepEqual(clusterRunEnv("deno"), { SERVER: "baseline" });
  deepEqual(clusterRunEnv("ws"), { SERVER: "baseline", BASELINE_TRANSPORT: "ws" });
  deepEqual(rotation(["ours", "deno", "ws"], 1), ["deno", "ws", "ours"]);
  deepEqual(rotation(["ours", "deno"], 3), ["deno", "ours"]);
  equal(topologyOf("main-baseline-ws-spread-193656.json"), "spread");
  equal(topologyOf("main-single-193732.json"), "single");
  equal(topologyOf("main-affinity-193809.cmdstats"), undefined);
  equal(topologyOf("server-spread-0.log"), undefined);

  const run = topologyRun({
    steps: [{
      serverCpuPerMessageUs: 80.5,
      latencyMs: { p50: 1.2, p99: 9.5 },
      serverWakeupsPerMessage: 0.47,
      lost: 2,
      reordered: 1,
      duplicates: 0,
    }],
  });
  deepEqual(run, { cpuUs: 80.5, p99Ms: 9.5, wakeups: 0.47, faults: 3 });
  deepEqual(topologyRun({}), { cpuUs: null, p99Ms: null, wakeups: null, faults: null });

  const at = (...cpu: (number | null)[]): TopologyRun[] =>
    cpu.map((cpuUs) => ({ cpuUs, p99Ms: null, wakeups: null, faults: 0 }));
  const ratios = clusterRatios({
    single: at(20, 25, 20),
    affinity: at(30, 25, null),
    spread: at(80, 75, 70),
  });
  // The third round's affinity run failed: its ratio is null and left out of the median.
  deepEqual(ratios.affinity.perRound, [1.5, 1, null]);
  equal(ratios.affinity.median, 1.25);
  deepEqual(ratios.spread.perRound, [4, 3, 3.5]);
  deepEqual([ratios.spread.median, ratios.spread.min, ratios.spread.max], [3.5, 3, 4]);
  ok(clusterRatios({ single: at(null), affinity: at(1), spread: at(1) }).spread.median === null);
});

Deno.test({
  name: "the thin cluster relay's envelope window puts a window's frames in one publish",
  ignore: IGNORE_WITHOUT_REDIS,
  async fn() {
    await using redis = await startRedis();
    const home = await startClusterBaseline({ redisUrl: redis.url, windowMs: 1_000 });
    const edge = await startClusterBaseline({ redisUrl: redis.url });
    const a = new Client(home.wsUrl);
    const b = new Client(edge.wsUrl);
    try {
      await joined(a, "WINDOW", "a");
      await joined(b, "WINDOW", "b");
      // Past the window of the join's publish, then three frames 100 ms apart, each in its own
      // turn: the first leaves at the end of its turn, the other two wait for the window's end.
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const before = home.published;
      for (let n = 1; n <= 3; n++) {
        a.send("GameData", { data: { n } });
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      for (let n = 1; n <= 3; n++) deepEqual((await b.next("GameData")).data, { n });
      equal(home.published - before, 2);
    } finally {
      await a.close();
      await b.close();
      await home.close();
      await edge.close();
    }
  },
});
