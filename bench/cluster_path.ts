/**
 * The cluster's own JavaScript per delivered message, without sockets or Redis (issue 15 item 8):
 * N nodes of one process (engine + edge + cluster router each) over the in-memory bus and store
 * twins (`src/cluster/testing.ts`), rooms of `--room-size` players placed `spread` (round-robin
 * over the nodes) or `affinity` (all on the room's home), every player sending the load
 * generator's `GameData` in turn, `--per-turn` frames per event-loop turn. Reports the process's
 * CPU µs per delivered message (median of `--rounds`) and envelopes per delivered message. It
 * isolates what the cluster code costs; Redis, the sockets and the scheduler are measured only by
 * `bench/cluster_run.sh`.
 *
 * ```sh
 * deno run -A bench/cluster_path.ts [--tree /work/wt-start] [--placement spread] [--per-turn 4]
 * ```
 *
 * `--tree` runs another checkout's `src/` (A/B comparisons); the harness is this one's.
 *
 * @module
 */
import process from "node:process";
import { setImmediate } from "node:timers";
import { parseArgs } from "node:util";
import { gameDataFrame } from "./agent.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    tree: { type: "string" },
    placement: { type: "string", default: "spread" },
    nodes: { type: "string", default: "3" },
    rooms: { type: "string", default: "100" },
    "room-size": { type: "string", default: "4" },
    "per-turn": { type: "string", default: "4" },
    frames: { type: "string", default: "40000" },
    rounds: { type: "string", default: "5" },
    json: { type: "boolean", default: false },
  },
});
const tree = values.tree ?? new URL("..", import.meta.url).pathname;
const nodesCount = Number(values.nodes);
const rooms = Number(values.rooms);
const roomSize = Number(values["room-size"]);
const perTurn = Number(values["per-turn"]);
const frames = Number(values.frames);
const rounds = Number(values.rounds);
const placement = values.placement === "affinity" ? "affinity" : "spread";

const { testCluster, settle } = await import(`file://${tree}/src/cluster/testing.ts`);

// Log lines (resyncs, warnings) would cost more than the path measured: none are configured.
const cluster = await testCluster({
  nodes: nodesCount,
  heartbeatMs: 60_000,
  forwardTimeoutMs: 10_000,
  engine: { maxRoomsPerGame: 1_000_000, maxRoomsPerIp: undefined },
});
let delivered = 0;
interface Client {
  id: string;
  node: { edge: { receive(id: string, frame: string, now: number): void } };
  messages: { type: string; data?: Record<string, unknown> }[];
  send(frame: string | Uint8Array): undefined;
}
const players: Client[] = [];
const turn = () => new Promise((resolve) => setImmediate(resolve));
for (let r = 0; r < rooms; r++) {
  const code = `R${String(r).padStart(5, "0")}`;
  for (let j = 0; j < roomSize; j++) {
    const node = cluster.nodes[placement === "spread" ? (r + j) % nodesCount : r % nodesCount];
    const client = node.connect() as Client;
    client.node.edge.receive(
      client.id,
      JSON.stringify({
        type: "JoinRoom",
        data: { game_name: "bench", room_code: code, player_name: `p${j}`, max_players: roomSize },
      }),
      Date.now(),
    );
    const deadline = Date.now() + 5000;
    while (!client.messages.some((m) => m.type === "RoomJoined")) {
      if (Date.now() > deadline) {
        throw new Error(`room ${code}: ${JSON.stringify(client.messages)}`);
      }
      await settle(1);
    }
    players.push(client);
  }
}
await settle(20);
// From now on clients only count.
for (const client of players) {
  client.send = () => {
    delivered++;
    return undefined;
  };
}
const frame = gameDataFrame(1, 1, 1, 123456.789, "x".repeat(32));
const network = cluster.network as { published: number };

async function round(): Promise<{ usPerMessage: number; publishesPerMessage: number }> {
  delivered = 0;
  const published0 = network.published;
  const cpu0 = process.cpuUsage();
  let sent = 0;
  while (sent < frames) {
    for (let k = 0; k < perTurn && sent < frames; k++, sent++) {
      const player = players[sent % players.length]!;
      player.node.edge.receive(player.id, frame, Date.now());
    }
    await turn();
  }
  const expected = frames * (roomSize - 1);
  const deadline = Date.now() + 30_000;
  while (delivered < expected) {
    if (Date.now() > deadline) throw new Error(`delivered ${delivered} of ${expected}`);
    await turn();
  }
  const cpu = process.cpuUsage(cpu0);
  return {
    usPerMessage: (cpu.user + cpu.system) / delivered,
    publishesPerMessage: (network.published - published0) / delivered,
  };
}

await round(); // warm-up
const results = [];
for (let i = 0; i < rounds; i++) results.push(await round());
await cluster.close();
const us = results.map((r) => r.usPerMessage).sort((a, b) => a - b);
const summary = {
  tree,
  placement,
  nodes: nodesCount,
  perTurn,
  usPerMessage: us.map((v) => Math.round(v * 1000) / 1000),
  medianUs: Math.round(us[Math.floor(us.length / 2)]! * 1000) / 1000,
  publishesPerMessage: Math.round(results[0]!.publishesPerMessage * 1000) / 1000,
};
console.log(values.json ? JSON.stringify(summary) : summary);
