/**
 * Bad input, size limits and timers over real sockets: errors are answered, connections stay
 * open where the spec says so, and nobody else's game is affected.
 */
import { inProcessOnly } from "./cluster_serve.ts";
import { deepEqual, equal } from "node:assert/strict";
import { connect, joinAsSpectator, joinRoom, serve } from "./helpers.ts";

const INVALID = { message: "Invalid client message", error_code: "INVALID_INPUT" };

Deno.test("Malformed frames get Error INVALID_INPUT and the socket stays open", async () => {
  await using server = await serve();
  await using client = await connect(server);
  const frames = [
    "{not json",
    "[]",
    '[{"type":"Ping"}]',
    "42",
    '{"type":"Dance"}',
    '{"type":"JoinRoom"}',
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":"p","max_players":300}}',
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":"p","relay_transport":"TCP"}}',
    '{"type":"GameData","data":{"data":1,"to_player":"nope"}}',
    '{"type":"Ping","data":"x"}',
    "",
    "\u0000\u0001",
  ];
  for (const frame of frames) {
    client.send(frame);
    deepEqual((await client.next("Error")).data, INVALID, `frame ${JSON.stringify(frame)}`);
  }
  client.send(joinRoom("OKROOM", "still-here"));
  await client.next("RoomJoined");
});

Deno.test("Messages in the wrong state get the spec's replies", async () => {
  await using server = await serve();
  await using client = await connect(server);
  client.send({ type: "PlayerReady" });
  deepEqual((await client.next("Error")).data, {
    message: "Not in a room",
    error_code: "NOT_IN_ROOM",
  });
  client.send({ type: "LeaveSpectator" });
  equal((await client.next("Error")).data.error_code, "NOT_A_SPECTATOR");
  client.send({ type: "AuthorityRequest", data: { become_authority: true } });
  equal((await client.next("AuthorityResponse")).data.error_code, "NOT_IN_ROOM");
  client.send({
    type: "Reconnect",
    data: { player_id: crypto.randomUUID(), room_id: crypto.randomUUID(), auth_token: "t" },
  });
  equal((await client.next("ReconnectionFailed")).data.error_code, "RECONNECTION_TOKEN_INVALID");
  // GameData and LeaveRoom from a non-member are dropped silently.
  client.send({ type: "GameData", data: { data: 1 } });
  client.send({ type: "LeaveRoom" });
  await client.expectNothingElse();
  client.send(new Uint8Array([1, 2, 3]));
  deepEqual((await client.next("Error")).data, {
    message: "Binary payloads are disabled for this connection",
    error_code: "INVALID_INPUT",
  });
});

Deno.test("An oversized frame gets MESSAGE_TOO_LARGE and close 1009; the room carries on", async () => {
  await using server = await serve((config) => {
    config.security.max_message_size = 1024;
    config.server.enable_reconnection = false;
  });
  await using a = await connect(server);
  await using b = await connect(server);
  const c = await connect(server);
  a.send(joinRoom("BIG001", "a"));
  await a.next("RoomJoined");
  b.send(joinRoom("BIG001", "b"));
  await b.next("RoomJoined");
  c.send(joinRoom("BIG001", "c"));
  const { player_id: cId } = (await c.next("RoomJoined")).data;
  await a.next("PlayerJoined");
  await a.next("PlayerJoined");
  await b.next("PlayerJoined");

  // Exactly the limit is fine; one byte more is not (UTF-8 bytes: "é" is two).
  const payload = (size: number) => {
    const head = '{"type":"GameData","data":{"data":"';
    const tail = '"}}';
    return head + "x".repeat(size - head.length - tail.length) + tail;
  };
  c.send(payload(1024));
  await a.next("GameData");
  await b.next("GameData");
  c.send(payload(1024).replace("x", "é"));
  deepEqual((await c.next("Error")).data, {
    message: "Message too large (1025 bytes, max 1024 bytes)",
    error_code: "MESSAGE_TOO_LARGE",
  });
  deepEqual(await c.closed, { code: 1009, reason: "Message too large" });
  deepEqual((await a.next("PlayerLeft")).data, { player_id: cId });
  await b.next("PlayerLeft");
  a.send({ type: "GameData", data: { data: "on" } });
  equal((await b.next("GameData")).data.data, "on");
});

Deno.test("Binary frames count against the size limit too", async () => {
  await using server = await serve((config) => config.security.max_message_size = 1024);
  const client = await connect(server);
  client.send(new Uint8Array(1025));
  equal((await client.next("Error")).data.error_code, "MESSAGE_TOO_LARGE");
  equal((await client.closed).code, 1009);
});

Deno.test("One client's garbage does not disturb a game in another room", async () => {
  await using server = await serve();
  await using a = await connect(server);
  await using b = await connect(server);
  await using noisy = await connect(server);
  a.send(joinRoom("CALM01", "a"));
  await a.next("RoomJoined");
  b.send(joinRoom("CALM01", "b"));
  await b.next("RoomJoined");
  await a.next("PlayerJoined");
  for (let i = 0; i < 200; i++) {
    noisy.send(
      i % 2 ? `{"type":"GameData","data":${"[".repeat(i)}` : '{"type":"JoinRoom","data":{}}',
    );
    a.send({ type: "GameData", data: { data: i } });
  }
  for (let i = 0; i < 200; i++) equal((await b.next("GameData")).data.data, i);
  for (let i = 0; i < 200; i++) await noisy.next("Error");
  await b.expectNothingElse();
});

/** Opens a raw WebSocket handshake that never answers pings; returns the frames' opcodes. */
async function silentClient(port: number): Promise<{ opcodes: number[]; closeCode: number }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  await conn.write(new TextEncoder().encode(
    `GET /v2/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  ));
  const chunks: number[] = [];
  const buffer = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) break;
    chunks.push(...buffer.subarray(0, n));
  }
  conn.close();
  const bytes = Uint8Array.from(chunks);
  const text = new TextDecoder().decode(bytes);
  const headerEnd = text.indexOf("\r\n\r\n") + 4;
  equal(text.slice(0, 12), "HTTP/1.1 101");
  const opcodes: number[] = [];
  let closeCode = 0;
  for (let i = headerEnd; i < bytes.length;) {
    const opcode = bytes[i]! & 0x0f;
    const length = bytes[i + 1]! & 0x7f; // control frames are short and unmasked from a server
    if (opcode === 8 && length >= 2) closeCode = (bytes[i + 2]! << 8) | bytes[i + 3]!;
    opcodes.push(opcode);
    i += 2 + length;
  }
  return { opcodes, closeCode };
}

Deno.test("An idle connection is pinged after ping_timeout/2 and closed with 1001", async () => {
  await using server = await serve((config) => config.server.ping_timeout = 2);
  const started = Date.now();
  const { opcodes, closeCode } = await silentClient(server.port);
  const elapsed = Date.now() - started;
  deepEqual(opcodes, [9, 8]); // ping, then close
  equal(closeCode, 1001);
  equal(elapsed >= 1900 && elapsed < 5000, true, `closed after ${elapsed} ms`);
});

Deno.test("A connection that only answers pings outlives ping_timeout, as do its neighbours", async () => {
  await using server = await serve((config) => config.server.ping_timeout = 2);
  // Deno's WebSocket answers pings by itself; neither client sends a message for 3 s.
  await using quiet = await connect(server);
  await using other = await connect(server);
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  quiet.send({ type: "Ping" });
  equal((await quiet.next("Pong")).type, "Pong");
  other.send({ type: "Ping" });
  equal((await other.next("Pong")).type, "Pong");
});

Deno.test("The maintenance sweep deletes inactive rooms and tells their members", {
  ignore: inProcessOnly("it reads server.engine.lookup()"),
}, async () => {
  await using server = await serve((config) => {
    config.server.room_cleanup_interval = 1;
    config.server.inactive_room_timeout = 1;
  });
  await using player = await connect(server);
  await using watcher = await connect(server);
  player.send(joinRoom("SWEEP1", "p"));
  const { room_id } = (await player.next("RoomJoined")).data;
  watcher.send(joinAsSpectator("SWEEP1", "w"));
  await watcher.next("SpectatorJoined");
  await player.next("NewSpectatorJoined");
  await player.next("RoomLeft", 5000);
  deepEqual((await watcher.next("SpectatorLeft", 5000)).data, {
    room_id,
    room_code: "SWEEP1",
    reason: "room_closed",
    current_spectators: [],
  });
  equal(server.engine.lookup("orbit", "SWEEP1"), undefined);
});
