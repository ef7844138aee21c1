/**
 * The write path of one delivery alone: encode a ~110-byte text frame and write it to one of 100
 * loopback `node:net` sockets (TCP_NODELAY, as the HTTP server sets it) whose reader runs in a
 * child process on core 1, a fresh buffer per write (`Buffer.allocUnsafe`, the pool) against
 * the reused scratch buffer of `src/transport/websocket.ts`, alternating round by round. Prints
 * this process's CPU µs per write.
 *
 * ```sh
 * taskset -c 0 deno run -A bench/write_path.ts [--rounds 8] [--writes 20000] [--nagle]
 * ```
 *
 * @module
 */
import net from "node:net";
import { Buffer } from "node:buffer";
import process from "node:process";
import { parseArgs } from "node:util";
import { encodeFrames } from "../src/transport/websocket.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "8" },
    writes: { type: "string", default: "20000" },
    nagle: { type: "boolean", default: false },
  },
});
const SOCKETS = 100;
const rounds = Math.min(Number(values.rounds), 40);
const writes = Math.min(Number(values.writes), 1_000_000);

const reader = `
const [port, n] = Deno.args.map(Number);
const conns = await Promise.all(Array.from({ length: n }, () => Deno.connect({ hostname: "127.0.0.1", port })));
const buf = new Uint8Array(1 << 16);
await Promise.all(conns.map(async (c) => { try { while ((await c.read(buf)) !== null); } catch { /* reset */ } }));
`;
const sockets: net.Socket[] = [];
const ready = Promise.withResolvers<void>();
const server = net.createServer((socket) => {
  socket.setNoDelay(!values.nagle);
  sockets.push(socket);
  if (sockets.length === SOCKETS) ready.resolve();
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
const port = (server.address() as net.AddressInfo).port;
const child = new Deno.Command("taskset", {
  args: ["-c", "1", Deno.execPath(), "eval", reader, String(port), String(SOCKETS)],
}).spawn();
await ready.promise;

const frame = JSON.stringify({
  type: "GameData",
  data: { player_id: "0123456789abcdef", x: 1.25, y: 2.5, pad: "x".repeat(32) },
});
let scratch = Buffer.allocUnsafeSlow(8 * 1024);
const variants: [string, (socket: net.Socket) => void][] = [
  ["fresh buffer", (socket) => void socket.write(encodeFrames([frame], 1))],
  ["scratch", (socket) => {
    if (socket.writableLength !== 0) return void socket.write(encodeFrames([frame], 1));
    const bytes = encodeFrames([frame], 1, scratch);
    socket.write(bytes);
    if (socket.writableLength !== 0) scratch = Buffer.allocUnsafeSlow(8 * 1024);
  }],
];
const results = new Map<string, number[]>(variants.map(([name]) => [name, []]));
for (let round = 0; round < rounds; round++) {
  for (const [name, write] of round % 2 ? [...variants].reverse() : variants) {
    const before = process.cpuUsage();
    for (let i = 0; i < writes; i++) {
      write(sockets[i % SOCKETS]!);
      // Let the reader drain and the runtime complete writes.
      if (i % 200 === 199) await new Promise((resolve) => setTimeout(resolve, 0));
    }
    const used = process.cpuUsage(before);
    results.get(name)!.push((used.user + used.system) / writes);
  }
}
for (const [name, perWrite] of results) {
  const sorted = [...perWrite].sort((a, b) => a - b);
  console.log(
    `${name}: median ${sorted[sorted.length >> 1]!.toFixed(2)} µs per write ` +
      `(rounds: ${perWrite.map((us) => us.toFixed(2)).join(" ")})`,
  );
}
for (const socket of sockets) socket.destroy();
server.close();
await child.status;
