/**
 * The read-fairness flood of SECURITY.md "One connection's reads", shared by the plain-TCP test
 * (`tests/transport_attack_test.ts`) and the TLS one (`tests/tls_test.ts`, which runs this file
 * as a subprocess started with `--cert`, the way Deno's WebSocket client trusts an extra root).
 *
 * Usage: deno run --cert ca.pem --allow-net --allow-env=WS_NO_BUFFER_UTIL,WS_NO_UTF_8_VALIDATE
 * tests/read_flood.ts <ws or wss URL of /v2/ws>; prints the Pong order as one JSON line.
 */
import { deepEqual } from "node:assert/strict";
import { joinRoom, TestClient } from "./helpers.ts";

/** Frames of the flood: about half a second of conversion work for the server in all. */
export const FLOOD_FRAMES = 300;

/** Two players seated in room BYST01 of the server at `url`, closed when disposed. */
export async function bystanderPair(
  url: string,
): Promise<[TestClient, TestClient] & AsyncDisposable> {
  const pair = [await TestClient.connect(url), await TestClient.connect(url)] as const;
  pair[0].send(joinRoom("BYST01", "a"));
  await pair[0].next("RoomJoined");
  pair[1].send(joinRoom("BYST01", "b"));
  await pair[1].next("RoomJoined");
  return Object.assign([pair[0], pair[1]] as [TestClient, TestClient], {
    async [Symbol.asyncDispose]() {
      for (const client of pair) await client.close();
    },
  });
}

/**
 * A flooder sends {@linkcode FLOOD_FRAMES} frames that take the server long to handle, then a
 * `Ping`; a bystander in another room then sends a `Ping`. Returns which `Pong` came first
 * (`["bystander", "flooder"]` when the server's reads are fair), after checking the bystanders
 * still relay to each other. The server must run in a process of its own: in the client's
 * process the flooder's writes would wait for the server's reads, and the flood would never
 * outrun them.
 */
export async function floodPongOrder(url: string): Promise<string[]> {
  await using pair = await bystanderPair(url);
  const [a, b] = pair;
  // A MessagePack player with a JSON member in its room: each binary frame is converted to
  // JSON for the member (docs/spec/PROTOCOL.md §7.7). 65,000 bytes of nested one-element arrays
  // that end in a `bin` take about 1.5 ms of that work each, and have no JSON form (the member
  // gets nothing).
  await using flooder = await TestClient.connect(url);
  await using member = await TestClient.connect(url);
  flooder.send({
    type: "Authenticate",
    data: { app_id: "flood", game_data_format: "message_pack" },
  });
  await flooder.waitFor("ProtocolInfo");
  flooder.send(joinRoom("FLOOD1", "flooder"));
  await flooder.waitFor("RoomJoined");
  member.send(joinRoom("FLOOD1", "member"));
  await member.waitFor("RoomJoined");
  const frame = new Uint8Array(65_000).fill(0x91);
  frame.set([0xc4, 0x00], frame.length - 2);
  for (let i = 0; i < FLOOD_FRAMES; i++) flooder.send(frame);
  flooder.send({ type: "Ping" });
  a.send({ type: "Ping" });
  // The flooder's Pong follows all of its frames (docs/spec/PROTOCOL.md §1.5); the bystander's
  // must not wait for them.
  const order: string[] = [];
  // More `Ping`s from the flooder while it waits (each answered after the first): Deno's
  // WebSocket client over TLS sometimes leaves the last bytes of a long burst unsent, after its
  // socket was full, until its next write (the server then has read everything the kernel got;
  // seen in about one flood in three, resolved ~22 s later by the reply to the server's idle
  // ping).
  const nudge = setInterval(() => flooder.send({ type: "Ping" }), 250);
  try {
    await Promise.all([
      a.waitFor("Pong", 60_000).then(() => order.push("bystander")),
      flooder.waitFor("Pong", 60_000).then(() => order.push("flooder")),
    ]);
  } finally {
    clearInterval(nudge);
  }
  a.send({ type: "GameData", data: { data: { seq: 1 } } });
  deepEqual((await b.waitFor("GameData")).data.data, { seq: 1 });
  return order;
}

if (import.meta.main) {
  const url = Deno.args[0];
  if (!url) throw new TypeError("Usage: read_flood.ts <ws or wss URL of /v2/ws>");
  console.log(JSON.stringify(await floodPongOrder(url)));
}
