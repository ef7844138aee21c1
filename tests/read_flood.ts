/**
 * The read-fairness flood of SECURITY.md "One connection's reads", shared by the plain-TCP test
 * (`tests/transport_attack_test.ts`) and the TLS one (`tests/tls_test.ts`, which runs this file
 * as a subprocess started with `--cert`, the way Deno's WebSocket client trusts an extra root).
 *
 * Usage: deno run --cert ca.pem --allow-net --allow-env=WS_NO_BUFFER_UTIL,WS_NO_UTF_8_VALIDATE
 * tests/read_flood.ts <ws or wss URL of /v2/ws> [several]; prints the Pong order of one flooder
 * (`floodPongOrder`), or what `severalFloods` saw, as one JSON line.
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

/** Clients flooding at once in {@linkcode severalFloods}. */
export const FLOODERS = 4;
/** Frames each of them sends. */
export const FLOODER_FRAMES = 100;
/** `Ping`s the bystander sends one after another while they flood. */
export const BYSTANDER_PINGS = 3;

/** What {@linkcode severalFloods} saw. */
export interface SeveralFloods {
  /** Flood frames answered when every flooder and the bystander had had their `Pong`s. */
  beforeLast: number;
  /** Flood frames answered while one of the bystander's `Ping`s waited for its `Pong`. */
  whileWaiting: number;
  /** The flood's frames, all answered in the end. */
  total: number;
}

/**
 * {@linkcode FLOODERS} clients each send {@linkcode FLOODER_FRAMES} `Ping`s of 64 KB (a member
 * of about 5,800 keys that the server parses and ignores, docs/spec/PROTOCOL.md §3) as fast as
 * they can; once every flooder has had a `Pong`, a bystander sends {@linkcode BYSTANDER_PINGS}
 * `Ping`s, each when the last was answered. Counts the flood frames answered (each `Pong`
 * answers one, in the order the server handled them) by then and while the bystander's `Ping`s
 * waited; then waits until every flood frame is answered and checks the bystanders still relay
 * to each other.
 *
 * A fair server reads every connection within a turn or two of the flood: a handful of frames.
 * Before, while several clients flooded, the runtime polled the other sockets once in 61
 * event-loop turns, each of which handled a few frames (SECURITY.md "One connection's reads"):
 * hundreds of frames before the last flooder's first `Pong`.
 */
export async function severalFloods(url: string): Promise<SeveralFloods> {
  await using pair = await bystanderPair(url);
  const [a, b] = pair;
  const flooders: TestClient[] = [];
  try {
    for (let i = 0; i < FLOODERS; i++) flooders.push(await TestClient.connect(url));
    const keys: string[] = [];
    for (let i = 0, length = 0; length < 63_800; i++) {
      keys.push(`"k${i.toString(36)}":0`);
      length += keys.at(-1)!.length + 1;
    }
    const frame = `{"type":"Ping","pad":{${keys.join(",")}}}`;
    // Each flooder's `Pong`s, and the `Ping`s it was sent (the flood's, then nudges).
    const pongs = flooders.map(() => 0);
    const pings = flooders.map(() => FLOODER_FRAMES);
    const answered = () => pongs.reduce((sum, count) => sum + Math.min(count, FLOODER_FRAMES), 0);
    const changed = new EventTarget();
    flooders.forEach((flooder, i) =>
      flooder.socket.addEventListener("message", (event) => {
        if (event.data !== '{"type":"Pong"}') return;
        pongs[i]!++;
        changed.dispatchEvent(new Event("pong"));
      })
    );
    const until = (done: () => boolean, what: string) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!done()) return;
          clearTimeout(timer);
          changed.removeEventListener("pong", check);
          resolve();
        };
        const timer = setTimeout(() => {
          changed.removeEventListener("pong", check);
          reject(new Error(`Timed out waiting for ${what}: ${JSON.stringify(pongs)}`));
        }, 60_000);
        changed.addEventListener("pong", check);
        check();
      });
    for (const flooder of flooders) {
      for (let i = 0; i < FLOODER_FRAMES; i++) flooder.send(frame);
    }
    await until(() => pongs.every((count) => count > 0), "every flooder's first Pong");
    let whileWaiting = 0;
    for (let i = 0; i < BYSTANDER_PINGS; i++) {
      const before = answered();
      a.send({ type: "Ping" });
      await a.waitFor("Pong", 60_000);
      whileWaiting += answered() - before;
    }
    const beforeLast = answered();
    // Every frame answered, once each flooder's writes are all out (Deno's WebSocket client over
    // TLS may leave the end of a burst unsent until its next write: floodPongOrder).
    const nudge = setInterval(() => {
      flooders.forEach((flooder, i) => {
        if (pongs[i]! >= pings[i]!) return;
        pings[i]!++;
        flooder.send({ type: "Ping" });
      });
    }, 250);
    try {
      await until(() => pongs.every((count, i) => count >= pings[i]!), "the flood's Pongs");
    } finally {
      clearInterval(nudge);
    }
    a.send({ type: "GameData", data: { data: { seq: 1 } } });
    deepEqual((await b.waitFor("GameData")).data.data, { seq: 1 });
    return { beforeLast, whileWaiting, total: answered() };
  } finally {
    for (const flooder of flooders) await flooder.close();
  }
}

if (import.meta.main) {
  const [url, which] = Deno.args;
  if (!url) throw new TypeError("Usage: read_flood.ts <ws or wss URL of /v2/ws> [several]");
  console.log(
    JSON.stringify(which === "several" ? await severalFloods(url) : await floodPongOrder(url)),
  );
}
