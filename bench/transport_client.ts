/**
 * Load for `transport_micro.ts`: `--rooms` rooms of 4 WebSockets on one URL; in each room the
 * members take turns sending a 64-byte text message, the next one as soon as the other three
 * received it (closed loop, `--inflight` turns at once per room). Prints the deliveries made in
 * `--duration` seconds as JSON, then exits.
 *
 * @module
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    url: { type: "string" },
    rooms: { type: "string", default: "50" },
    inflight: { type: "string", default: "2" },
    duration: { type: "string", default: "3" },
    /** Instead of the relay: open this many idle sockets, hold them for --duration, close. */
    hold: { type: "string", default: "0" },
  },
});
const url = values.url!;
if (!/^ws:\/\/127\.0\.0\.1:\d+\//.test(url)) throw new Error("loopback ws:// URLs only");
const rooms = Math.min(Number(values.rooms), 500);
const inflight = Math.min(Number(values.inflight), 8);
const durationMs = Math.min(Number(values.duration), 60) * 1000;

const open = (): Promise<WebSocket> =>
  new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.onopen = () => resolve(socket);
    socket.onerror = () => reject(new Error(`cannot connect to ${url}`));
  });

const hold = Math.min(Number(values.hold), 20_000);
if (hold > 0) {
  const sockets: WebSocket[] = [];
  // In batches, so the server's pending-connection caps are not the limit.
  while (sockets.length < hold) {
    const batch = Math.min(200, hold - sockets.length);
    sockets.push(...await Promise.all(Array.from({ length: batch }, open)));
  }
  console.log("start");
  await new Promise((resolve) => setTimeout(resolve, durationMs));
  console.log("end");
  for (const socket of sockets) socket.close();
  await new Promise((resolve) => setTimeout(resolve, 500));
  console.log(JSON.stringify({ held: sockets.length }));
  Deno.exit(0);
}

const members = await Promise.all(
  Array.from({ length: rooms }, () => Promise.all([open(), open(), open(), open()])),
);
const payload = "x".repeat(64);
let deliveries = 0;
let running = true;
for (const room of members) {
  // A new turn each time three deliveries (one message's worth) arrived in the room.
  let received = 0;
  let turn = 0;
  const send = () => {
    if (running) room[turn++ % 4]!.send(payload);
  };
  for (const socket of room) {
    socket.onmessage = () => {
      deliveries++;
      if (++received % 3 === 0) send();
    };
  }
  for (let i = 0; i < inflight; i++) send();
}
console.log("start");
await new Promise((resolve) => setTimeout(resolve, durationMs));
const measured = deliveries;
console.log("end");
running = false;
await new Promise((resolve) => setTimeout(resolve, 200));
for (const room of members) for (const socket of room) socket.close();
console.log(JSON.stringify({ deliveries: measured, seconds: durationMs / 1000 }));
