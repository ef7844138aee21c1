/**
 * What one slow consumer costs the rest of its room (issue 3). A room of 4: one sender, two
 * players that read, and a fourth that either reads too or never reads (a raw socket that joined
 * and stopped). The sender relays `count` messages of 1 KiB in bursts of 10 every 5 ms; the two
 * readers' delivery latency is reported for both cases, with the message after which the server
 * closed the stalled player (1013). Server and clients share this process, so compare the two
 * cases with each other, not with `deno task bench`.
 *
 * `deno task bench:slow-consumer [count]`
 *
 * @module
 */
import { DEFAULT_CONFIG } from "../src/config/schema.ts";
import { startServer } from "../src/server.ts";
import type { EdgeEvent } from "../src/transport/edge.ts";

const count = Number(Deno.args[0] ?? 12_000);

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.onopen = () => resolve(socket);
    socket.onerror = () => reject(new Error(`Cannot connect to ${url}`));
  });
}

const JOIN = (name: string) =>
  JSON.stringify({
    type: "JoinRoom",
    data: { game_name: "slow", room_code: "SLOW01", player_name: name, max_players: 4 },
  });

function join(socket: WebSocket, name: string): Promise<void> {
  return new Promise((resolve) => {
    socket.onmessage = (event) => {
      if (String(event.data).includes('"RoomJoined"')) resolve();
    };
    socket.send(JOIN(name));
  });
}

/** Joins over a raw TCP handshake, then never reads again. */
async function stalledPlayer(port: number): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const payload = new TextEncoder().encode(JOIN("stalled"));
  const frame = new Uint8Array(6 + payload.length);
  frame.set([0x81, 0x80 | payload.length, 0, 0, 0, 0]); // masked with a zero key
  frame.set(payload, 6);
  await conn.write(new TextEncoder().encode(
    `GET /v2/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  ));
  await conn.write(frame);
  return conn;
}

async function run(stalled: boolean): Promise<void> {
  const config = structuredClone(DEFAULT_CONFIG) as typeof DEFAULT_CONFIG;
  config.port = 0;
  config.logging.enable_file_logging = false;
  config.rate_limit.max_join_attempts = 1_000_000;
  let sent = 0;
  let closedAfter = -1;
  const onEvent = (event: EdgeEvent) => {
    if (event.type === "slow_consumer") closedAfter = sent;
  };
  await using server = await startServer(config, { hostname: "127.0.0.1", onEvent });
  const sender = await open(server.wsUrl);
  await join(sender, "sender");
  const readers = [await open(server.wsUrl), await open(server.wsUrl)];
  for (const [i, reader] of readers.entries()) await join(reader, `reader${i}`);
  const fourth = stalled ? await stalledPlayer(server.port) : await open(server.wsUrl);
  if (fourth instanceof WebSocket) await join(fourth, "fourth");
  await new Promise((resolve) => setTimeout(resolve, 200));

  const latencies: number[] = [];
  const { promise: done, resolve } = Promise.withResolvers<void>();
  for (const reader of readers) {
    reader.onmessage = (event) => {
      const text = String(event.data);
      if (!text.startsWith('{"type":"GameData"')) return;
      const at = text.indexOf('"t":') + 4;
      latencies.push(performance.now() - Number(text.slice(at, text.indexOf(",", at))));
      if (latencies.length === 2 * count) resolve();
    };
  }
  const pad = "y".repeat(1000);
  for (; sent < count; sent++) {
    sender.send(
      JSON.stringify({ type: "GameData", data: { data: { t: performance.now(), pad } } }),
    );
    if (sent % 10 === 9) await new Promise((wait) => setTimeout(wait, 5));
  }
  await done;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  console.log(
    `${stalled ? "4th player stalled" : "4th player reads  "}: readers got ${latencies.length}/${
      2 * count
    }, p50 ${at(0.5).toFixed(2)} ms, p99 ${at(0.99).toFixed(2)} ms, max ${
      latencies.at(-1)!.toFixed(2)
    } ms${stalled ? `; closed with 1013 after message ${closedAfter}` : ""}`,
  );
  if (fourth instanceof WebSocket) fourth.close();
  else fourth.close();
  sender.close();
  for (const reader of readers) reader.close();
}

for (let round = 0; round < 2; round++) {
  await run(false);
  await run(true);
}
