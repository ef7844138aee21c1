/**
 * The socket layer alone, without the engine: server CPU per delivered message of the
 * production transport (`src/http/listener.ts` + `src/transport/websocket.ts`, of one or more
 * trees) against `Deno.serve` + `Deno.upgradeWebSocket`, in one process, load alternating
 * between them round by round (A B C A B C …) so that drift on a shared machine hits all alike.
 *
 * Every server relays each text message to the three other members of its room of 4 through a
 * stand-in edge (each message is queued with `send`, then `flush`, as the edge does); the load
 * is `transport_client.ts` (closed loop, rooms of 4) in a child process, pinned to core 1 while
 * this process runs on core 0 when started under `taskset -c 0`. CPU is this process's user +
 * system time between the client's start and end marks.
 *
 * With `--hold N` it measures memory instead: V8 heap, external and RSS per idle connection
 * held (N per round, this process run with `--v8-flags=--expose-gc`).
 *
 * ```sh
 * taskset -c 0 deno run -A bench/transport_micro.ts --rounds 8 --duration 3 \
 *   --tree . --tree /path/to/other/checkout
 * taskset -c 0 deno run -A --v8-flags=--expose-gc bench/transport_micro.ts --hold 10000 --rounds 2
 * ```
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";

/** The part of `Edge` the transport calls. */
interface MiniEdge {
  connect(peer: RelayPeer, info: unknown): string;
  receive(id: string, frame: string | Uint8Array, now: number): void;
  disconnect(id: string): void;
  refuseTooLarge(): void;
  transportError(): void;
  close(): void;
}

interface RelayPeer {
  send(frame: string | Uint8Array): unknown;
  flush?: (() => void) | undefined;
}

/** Rooms of 4 in connection order; a message goes to the other three. */
function relayEdge(): MiniEdge {
  const peers = new Map<string, { peer: RelayPeer; room: RelayPeer[] }>();
  let next = 0;
  let room: RelayPeer[] = [];
  return {
    connect(peer) {
      if (room.length === 4) room = [];
      room.push(peer);
      const id = String(next++);
      peers.set(id, { peer, room });
      return id;
    },
    receive(id, frame) {
      const entry = peers.get(id);
      if (!entry) return;
      for (const member of entry.room) if (member !== entry.peer) member.send(frame);
      for (const member of entry.room) if (member !== entry.peer) member.flush?.();
    },
    disconnect(id) {
      peers.delete(id);
    },
    refuseTooLarge() {},
    transportError() {},
    close() {},
  };
}

interface Server {
  name: string;
  url: string;
  stop(): Promise<void>;
  /** Runs before each of this server's rounds. */
  before?: () => void;
}

/** The production transport of the tree at `root`. */
async function treeServer(root: string, name: string): Promise<Server> {
  const base = new URL(root.endsWith("/") ? root : `${root}/`, `file://${Deno.cwd()}/`);
  const { listen } = await import(new URL("src/http/listener.ts", base).href);
  const { acceptWebSocket } = await import(new URL("src/transport/websocket.ts", base).href);
  const edge = relayEdge();
  const listener = await listen({
    hostname: "127.0.0.1",
    port: 0,
    limits: {
      headerTimeoutMs: 5_000,
      idleTimeoutMs: 5_000,
      tlsHandshakeTimeoutMs: 5_000,
      maxPending: 100_000,
      maxPendingPerIp: 100_000,
    },
    handler: (request: Request) =>
      acceptWebSocket(request, edge, {
        ip: "127.0.0.1",
        maxMessageSize: 65_536,
        idleTimeoutSecs: 60,
        outbound: { maxBufferedBytes: 1 << 20, enableBatching: true, batchSize: 10 },
      }),
  });
  return {
    name,
    url: `ws://127.0.0.1:${listener.addr.port}/v2/ws`,
    stop: () => listener.shutdown(),
  };
}

/** `Deno.serve` + `Deno.upgradeWebSocket`, each message sent at once (the start commit's way). */
function denoServer(): Server {
  const edge = relayEdge();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => {
      const id = edge.connect({ send: (frame) => socket.send(frame) }, {});
      socket.onmessage = (event) => edge.receive(id, event.data, 0);
      socket.onclose = () => edge.disconnect(id);
    };
    return response;
  });
  return {
    name: "Deno.serve",
    url: `ws://127.0.0.1:${server.addr.port}/v2/ws`,
    stop: () => server.shutdown(),
  };
}

/** Loads `server` once with the client; server CPU µs per delivery. */
async function round(
  server: Server,
  options: { rooms: number; inflight: number; duration: number },
): Promise<{ usPerDelivery: number; deliveries: number }> {
  const client = new Deno.Command("taskset", {
    args: [
      "-c",
      "1",
      Deno.execPath(),
      "run",
      "--allow-net",
      new URL("./transport_client.ts", import.meta.url).pathname,
      `--url=${server.url}`,
      `--rooms=${options.rooms}`,
      `--inflight=${options.inflight}`,
      `--duration=${options.duration}`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let cpu0: NodeJS.CpuUsage | undefined;
  let cpu: NodeJS.CpuUsage | undefined;
  let result = { deliveries: 0 };
  let buffered = "";
  for await (const chunk of client.stdout.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line === "start") cpu0 = process.cpuUsage();
      else if (line === "end") cpu = process.cpuUsage(cpu0);
      else if (line.startsWith("{")) result = JSON.parse(line);
    }
  }
  await client.status;
  if (!cpu || result.deliveries === 0) throw new Error(`no result from ${server.name}`);
  return {
    usPerDelivery: (cpu.user + cpu.system) / result.deliveries,
    deliveries: result.deliveries,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** This process's memory, bytes, after two full collections (needs `--v8-flags=--expose-gc`). */
function memory(): Deno.MemoryUsage {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  return Deno.memoryUsage();
}

/**
 * Holds `count` idle connections on `server`; memory per connection, bytes: V8 heap, external
 * (buffers outside the heap) and RSS, each the difference between holding them and before.
 */
async function holdRound(
  server: Server,
  count: number,
): Promise<{ heap: number; external: number; rss: number }> {
  const client = new Deno.Command("taskset", {
    args: [
      "-c",
      "1",
      Deno.execPath(),
      "run",
      "--allow-net",
      new URL("./transport_client.ts", import.meta.url).pathname,
      `--url=${server.url}`,
      `--hold=${count}`,
      "--duration=3",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const before = memory();
  let held: Deno.MemoryUsage | undefined;
  let buffered = "";
  for await (const chunk of client.stdout.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    if (!held && buffered.includes("start")) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      held = memory();
    }
  }
  await client.status;
  if (!held) throw new Error(`no hold on ${server.name}`);
  return {
    heap: (held.heapUsed - before.heapUsed) / count,
    external: (held.external - before.external) / count,
    rss: (held.rss - before.rss) / count,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      tree: { type: "string", multiple: true, default: ["."] },
      "no-deno": { type: "boolean", default: false },
      rounds: { type: "string", default: "6" },
      duration: { type: "string", default: "3" },
      rooms: { type: "string", default: "50" },
      inflight: { type: "string", default: "2" },
      /**
       * This tree's transport with its direct reads and writes off, then on, alternately (one
       * server, connections accepted anew each round; `directReads` and `directWrites` of
       * `src/transport/websocket.ts`).
       */
      "direct-ab": { type: "boolean", default: false },
      /** Memory per held idle connection instead of CPU: connections per round. */
      hold: { type: "string", default: "0" },
    },
  });
  const options = {
    rooms: Number(values.rooms),
    inflight: Number(values.inflight),
    duration: Number(values.duration),
  };
  const servers: Server[] = [];
  if (!values["no-deno"]) servers.push(denoServer());
  // `--tree -`: no tree (`Deno.serve` alone, e.g. for a memory figure in a fresh process).
  for (const tree of values.tree) if (tree !== "-") servers.push(await treeServer(tree, tree));
  if (values["direct-ab"]) {
    const { directReads, directWrites } = await import("../src/transport/websocket.ts");
    const server = servers.pop()!;
    const set = (on: boolean) => () => {
      directReads.enabled = on;
      directWrites.enabled = on;
    };
    servers.push(
      { ...server, name: "stream i/o", before: set(false) },
      { ...server, name: "direct i/o", before: set(true), stop: async () => {} },
    );
  }
  const rounds = Math.min(Number(values.rounds), 40);
  const hold = Math.min(Number(values.hold), 20_000);
  if (hold > 0) {
    const kb = (bytes: number) => (bytes / 1024).toFixed(2);
    for (let i = 0; i < rounds; i++) {
      for (const server of i % 2 ? [...servers].reverse() : servers) {
        const { heap, external, rss } = await holdRound(server, hold);
        console.log(
          `round ${i + 1}: ${server.name}: per connection heap ${kb(heap)} kB, ` +
            `external ${kb(external)} kB, RSS ${kb(rss)} kB (${hold} held)`,
        );
      }
    }
    for (const server of servers) await server.stop();
    return;
  }
  const results = new Map<string, number[]>(servers.map((s) => [s.name, []]));
  for (let i = 0; i < rounds; i++) {
    // Alternate the order too, so no server always follows the same one.
    const order = i % 2 ? [...servers].reverse() : servers;
    const line: string[] = [];
    for (const server of order) {
      server.before?.();
      const { usPerDelivery, deliveries } = await round(server, options);
      results.get(server.name)!.push(usPerDelivery);
      line.push(`${server.name} ${usPerDelivery.toFixed(2)} µs (${deliveries})`);
    }
    console.error(`round ${i + 1}: ${line.join(", ")}`);
  }
  const reference = results.get(servers[0]!.name)!;
  for (const [name, values] of results) {
    const ratios = values.map((value, i) => value / reference[i]!);
    console.log(
      `${name}: median ${median(values).toFixed(2)} µs per delivery ` +
        `(${Math.min(...values).toFixed(2)}-${Math.max(...values).toFixed(2)}); ` +
        `per-round ratio to ${servers[0]!.name}: median ${median(ratios).toFixed(3)} ` +
        `(${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)})`,
    );
  }
  for (const server of servers) await server.stop();
}

if (import.meta.main) await main();
