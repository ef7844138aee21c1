/**
 * The read path of the socket layer alone: this tree's listener + `acceptWebSocket` with a
 * stand-in edge that only counts the messages (no replies, so no writes), loaded by a child
 * process on core 1 that sends a 64-byte text message on each of `--sockets` WebSockets every
 * `--interval-ms` (open loop: the same reads for every variant). Rounds alternate the direct
 * reads of `src/transport/websocket.ts` off and on (`directReads.enabled`, connections made anew
 * each round); prints this process's CPU µs per received message and the per-round ratio.
 *
 * ```sh
 * taskset -c 0 deno run -A bench/read_path.ts [--rounds 10] [--sockets 100] [--interval-ms 10]
 * ```
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { listen } from "../src/http/listener.ts";
import { acceptWebSocket, directReads } from "../src/transport/websocket.ts";
import type { Edge } from "../src/transport/edge.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "10" },
    sockets: { type: "string", default: "100" },
    "interval-ms": { type: "string", default: "10" },
    duration: { type: "string", default: "3" },
  },
});
const rounds = Math.min(Number(values.rounds), 40);
const sockets = Math.min(Number(values.sockets), 1000);
const intervalMs = Math.max(1, Number(values["interval-ms"]));
const durationS = Math.min(Number(values.duration), 30);

let received = 0;
let next = 0;
const edge = {
  connect: () => String(next++),
  receive: () => void received++,
  disconnect: () => {},
  refuseTooLarge: () => {},
  transportError: () => {},
  close: () => {},
} as unknown as Edge;
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
const url = `ws://127.0.0.1:${listener.addr.port}/v2/ws`;

const client = `
const [url, n, interval, seconds] = Deno.args;
const open = () => new Promise((resolve, reject) => {
  const socket = new WebSocket(url);
  socket.onopen = () => resolve(socket);
  socket.onerror = () => reject(new Error("cannot connect"));
});
const all = await Promise.all(Array.from({ length: Number(n) }, open));
const payload = "x".repeat(64);
let sent = 0;
const timer = setInterval(() => { for (const s of all) { s.send(payload); sent++; } }, Number(interval));
await new Promise((resolve) => setTimeout(resolve, 300));
console.log("start");
const from = sent;
await new Promise((resolve) => setTimeout(resolve, Number(seconds) * 1000));
console.log("end " + (sent - from));
clearInterval(timer);
await new Promise((resolve) => setTimeout(resolve, 200));
for (const s of all) s.close();
await new Promise((resolve) => setTimeout(resolve, 200));
`;

/** One round: CPU µs per message received between the client's marks. */
async function round(): Promise<number> {
  const child = new Deno.Command("taskset", {
    args: [
      "-c",
      "1",
      Deno.execPath(),
      "eval",
      client,
      url,
      String(sockets),
      String(intervalMs),
      String(durationS),
    ],
    stdout: "piped",
  }).spawn();
  let cpu0: NodeJS.CpuUsage | undefined;
  let count0 = 0;
  let result = 0;
  let buffered = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line === "start") {
        cpu0 = process.cpuUsage();
        count0 = received;
      } else if (line.startsWith("end")) {
        const used = process.cpuUsage(cpu0);
        result = (used.user + used.system) / Math.max(1, received - count0);
      }
    }
  }
  await child.status;
  return result;
}

const results: Record<string, number[]> = { "plain reads": [], "direct reads": [] };
for (let i = 0; i < rounds; i++) {
  const order = i % 2 ? ["direct reads", "plain reads"] : ["plain reads", "direct reads"];
  const line: string[] = [];
  for (const name of order) {
    directReads.enabled = name === "direct reads";
    const us = await round();
    results[name]!.push(us);
    line.push(`${name} ${us.toFixed(2)} µs`);
  }
  console.error(`round ${i + 1}: ${line.join(", ")}`);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const ratios = results["direct reads"]!.map((us, i) => us / results["plain reads"]![i]!);
for (const [name, xs] of Object.entries(results)) {
  console.log(`${name}: median ${median(xs).toFixed(2)} µs per message`);
}
console.log(
  `direct / plain per round: median ${median(ratios).toFixed(3)} ` +
    `(${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)})`,
);
await listener.shutdown();
