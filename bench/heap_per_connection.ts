/**
 * Heap per joined connection (issue 18 item 3): runs a server in this process (ours, or the thin
 * relay on `node:http` + `ws` or on `Deno.serve`), loads it with `deno task bench connections`
 * from a child process (its agents are processes of their own), and measures this process while
 * the clients are held: V8 heap used and external memory after a full collection, RSS, and with
 * `--snapshot` a V8 heap snapshot before and during the hold, summarised as objects and bytes per
 * connection by constructor (self sizes; `node:v8` `writeHeapSnapshot`).
 *
 * ```sh
 * deno run -A --v8-flags=--expose-gc bench/heap_per_connection.ts --server ours --clients 10000
 * deno run -A --v8-flags=--expose-gc bench/heap_per_connection.ts --server ws --clients 2000 \
 *   --snapshot /tmp/heap
 * ```
 *
 * Ours runs with the settings the load bench gives it (`bench/spawn.ts` `OURS_ENV`) but without
 * its logging set up (no sink: log calls return early), and without `--initial-old-space-size`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import v8 from "node:v8";
import { DEFAULT_CONFIG } from "../src/config/schema.ts";
import { startServer } from "../src/server.ts";
import { startBaseline } from "./baseline.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("Run with --v8-flags=--expose-gc");

const { values } = parseArgs({
  args: Deno.args,
  options: {
    server: { type: "string", default: "ours" },
    clients: { type: "string", default: "10000" },
    hold: { type: "string", default: "20" },
    snapshot: { type: "string" },
    top: { type: "string", default: "25" },
  },
});
const clients = Number(values.clients);
const kind = values.server;
if (kind !== "ours" && kind !== "ws" && kind !== "deno") {
  throw new TypeError(`--server must be ours, ws or deno, got "${kind}"`);
}

/** The server under test: its WebSocket URL, its open connections, and how to stop it. */
interface Target {
  wsUrl: string;
  connections(): number;
  close(): Promise<void>;
}

async function start(): Promise<Target> {
  if (kind === "ours") {
    const config = structuredClone(DEFAULT_CONFIG);
    config.port = 0;
    config.logging.enable_file_logging = false;
    config.security.max_connections_per_ip = 1_000_000;
    config.security.max_connections = 19_900;
    config.security.http.max_pending_connections = 100_000;
    config.security.http.max_pending_connections_per_ip = 100_000;
    config.rate_limit.max_room_creations = 1_000_000_000;
    config.rate_limit.max_join_attempts = 1_000_000_000;
    config.server.max_rooms_per_ip = 1_000_000;
    const server = await startServer(config, { hostname: "127.0.0.1" });
    return {
      wsUrl: server.wsUrl,
      connections: () => server.edge.size,
      close: () => server.close(),
    };
  }
  const baseline = await startBaseline({ transport: kind as "ws" | "deno" });
  return {
    wsUrl: baseline.wsUrl,
    connections: () => baseline.connections,
    close: () => baseline.close(),
  };
}

interface Memory {
  heapUsed: number;
  external: number;
  rss: number;
}

function measure(): Memory {
  gc!();
  gc!();
  const usage = Deno.memoryUsage();
  return { heapUsed: usage.heapUsed, external: usage.external, rss: usage.rss };
}

/** Objects and self bytes per `type:name` of a heap snapshot. */
type Census = Map<string, { count: number; bytes: number }>;

async function census(path: string): Promise<Census> {
  const snapshot = JSON.parse(await Deno.readTextFile(path)) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const out: Census = new Map();
  const nodes = snapshot.nodes;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]!]!;
    // Strings and numbers are grouped by type; objects by constructor name.
    const name = type === "object" || type === "closure" || type === "native"
      ? `${type}:${snapshot.strings[nodes[i + nameAt]!]!.replace(/ @\d+$/, "")}`
      : type;
    const entry = out.get(name) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += nodes[i + sizeAt]!;
    out.set(name, entry);
  }
  return out;
}

const target = await start();
const snapshotDir = values.snapshot;
if (snapshotDir) await Deno.mkdir(snapshotDir, { recursive: true });
const before = measure();
const snapshotBefore = snapshotDir &&
  v8.writeHeapSnapshot(`${snapshotDir}/${kind}-before.heapsnapshot`);

const holdS = Number(values.hold);
const child = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    new URL("./main.ts", import.meta.url).pathname,
    "connections",
    `--url=${target.wsUrl}`,
    `--clients=${clients}`,
    "--room-size=4",
    `--duration=${holdS}`,
    "--quiet",
    "--json",
  ],
  stdout: "null",
  stderr: "inherit",
}).spawn();

const deadline = Date.now() + 120_000;
while (target.connections() < clients && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 200));
}
const open = target.connections();
// Let the joins' replies and timers settle.
await new Promise((resolve) => setTimeout(resolve, 2_000));
const held = measure();
const snapshotHeld = snapshotDir &&
  v8.writeHeapSnapshot(`${snapshotDir}/${kind}-held.heapsnapshot`);
await child.status;
await target.close();

const perConnection = (a: number, b: number) => Math.round((b - a) / open);
console.log(JSON.stringify({
  server: kind,
  clients,
  open,
  before: {
    heapUsedKb: before.heapUsed >> 10,
    externalKb: before.external >> 10,
    rssKb: before.rss >> 10,
  },
  held: { heapUsedKb: held.heapUsed >> 10, externalKb: held.external >> 10, rssKb: held.rss >> 10 },
  perConnectionBytes: {
    heapUsed: perConnection(before.heapUsed, held.heapUsed),
    external: perConnection(before.external, held.external),
    rss: perConnection(before.rss, held.rss),
  },
}));

if (snapshotBefore && snapshotHeld) {
  const a = await census(snapshotBefore);
  const b = await census(snapshotHeld);
  const rows = [...b].map(([name, { count, bytes }]) => {
    const old = a.get(name) ?? { count: 0, bytes: 0 };
    return { name, count: (count - old.count) / open, bytes: (bytes - old.bytes) / open };
  }).sort((x, y) => y.bytes - x.bytes);
  const total = rows.reduce((sum, row) => sum + row.bytes, 0);
  console.log(`\nheap snapshot, per connection: ${total.toFixed(0)} bytes of self size`);
  console.log("bytes/conn  objects/conn  type:constructor");
  for (const row of rows.slice(0, Number(values.top))) {
    console.log(
      `${row.bytes.toFixed(0).padStart(10)}  ${row.count.toFixed(2).padStart(12)}  ${row.name}`,
    );
  }
}
Deno.exit(0);
