/**
 * Hostile input over real sockets (issue 8 item 5): broken WebSocket framing, invalid UTF-8,
 * binary where text is expected, huge and deeply nested JSON, wrong types, extra fields, Unicode
 * edge cases in names and wrong-state messages. Each gets the spec's reply or close, and a game
 * running in another room sees nothing of it.
 */
import { inProcessOnly } from "./cluster_serve.ts";
import { deepEqual, equal } from "node:assert/strict";
import type { SignalFishServer } from "../src/server.ts";
import { connect, guardedRoom, serve, type TestClient } from "./helpers.ts";
import { RawWebSocket } from "./raw_websocket.ts";
import { MAX_MESSAGE_FRAGMENTS } from "../src/transport/websocket.ts";

const INVALID = { message: "Invalid client message", error_code: "INVALID_INPUT" };

/** Two players in room GUARD1 of game "guarded", exchanging numbered game data. */
class Bystanders implements AsyncDisposable {
  #sent = 0;
  private constructor(readonly a: TestClient, readonly b: TestClient) {}

  static async start(server: SignalFishServer): Promise<Bystanders> {
    const [a, b] = await guardedRoom(server);
    return new Bystanders(a, b);
  }

  /** Connects a spectator "eve" to the room; both players have been told. */
  async watch(server: SignalFishServer): Promise<TestClient> {
    const watcher = await connect(server);
    watcher.send({
      type: "JoinAsSpectator",
      data: { game_name: "guarded", room_code: "GUARD1", spectator_name: "eve" },
    });
    await watcher.next("SpectatorJoined");
    for (const client of [this.a, this.b]) await client.next("NewSpectatorJoined");
    return watcher;
  }

  /** Both directions still relay, and neither player got anything it should not have. */
  async assertIntact(): Promise<void> {
    const seq = ++this.#sent;
    this.a.send({ type: "GameData", data: { data: { seq, from: "a" } } });
    this.b.send({ type: "GameData", data: { data: { seq, from: "b" } } });
    deepEqual((await this.b.next("GameData")).data.data, { seq, from: "a" });
    deepEqual((await this.a.next("GameData")).data.data, { seq, from: "b" });
    await this.a.expectNothingElse();
    await this.b.expectNothingElse();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.a.close();
    await this.b.close();
  }
}

const encoder = new TextEncoder();

Deno.test("Broken framing and invalid UTF-8 end only the offending connection", {
  ignore: inProcessOnly("it reads server.edge.size"),
}, async () => {
  await using server = await serve();
  await using game = await Bystanders.start(server);
  const violations: [string, (socket: RawWebSocket) => Promise<void>][] = [
    ["invalid UTF-8 byte", (s) => s.sendText(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))],
    ["overlong UTF-8 encoding", (s) => s.sendText(new Uint8Array([0x22, 0xc0, 0xaf, 0x22]))],
    ["UTF-8 encoded surrogate", (s) => s.sendText(new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22]))],
    ["truncated UTF-8 sequence", (s) => s.sendText(new Uint8Array([0x22, 0xe2, 0x82]))],
    ["reserved bits", (s) => s.sendText('{"type":"Ping"}', { rsv: 4 })],
    ["reserved opcode", (s) => s.sendFrame(3, new Uint8Array([1]))],
    ["continuation without a start", (s) => s.sendFrame(0, encoder.encode('{"type":"Ping"}'))],
    ["control frame over 125 bytes", (s) => s.sendFrame(9, new Uint8Array(200))],
  ];
  for (const [name, violate] of violations) {
    await using socket = await RawWebSocket.open(server.port);
    await violate(socket);
    const { code, text } = await socket.readClose(3000);
    // The runtime ends the connection (a close frame or a dropped TCP connection); the server
    // sends no application message first.
    equal([1002, 1006, 1007].includes(code), true, `${name}: close ${code}`);
    deepEqual(text, [], name);
  }
  await game.assertIntact();
  equal(server.edge.size, 2, "only the bystanders remain connected");
});

Deno.test("Valid fragmented text frames, UTF-8 split across fragments included, are accepted", async () => {
  await using server = await serve();
  await using socket = await RawWebSocket.open(server.port);
  // "é" (0xC3 0xA9) split between two fragments; the name is valid.
  const head = encoder.encode('{"type":"JoinRoom","data":{"game_name":"g","player_name":"Ren');
  await socket.sendText(new Uint8Array([...head, 0xc3]), { fin: false });
  await socket.sendFrame(0, new Uint8Array([0xa9, ...encoder.encode('e","room_code":"FRAG01"}}')]));
  const frame = await socket.readFrame();
  const reply = JSON.parse(new TextDecoder().decode(frame!.payload));
  equal(reply.type, "RoomJoined");
  equal(reply.data.current_players[0].name, "Renée");
});

/** Sends `bytes` as a text message cut into `fragments` non-empty frames (the last one holds the rest). */
async function sendFragmented(socket: RawWebSocket, bytes: Uint8Array, fragments: number) {
  for (let i = 0; i < fragments - 1; i++) {
    await socket.sendFrame(i === 0 ? 1 : 0, bytes.subarray(i, i + 1), { fin: false });
    // Empty fragments cost nothing to keep, and are not counted.
    if (i % 64 === 1) await socket.sendFrame(0, new Uint8Array(0), { fin: false });
  }
  await socket.sendFrame(0, bytes.subarray(fragments - 1));
}

Deno.test("A message in more than MAX_MESSAGE_FRAGMENTS fragments is refused with MESSAGE_TOO_LARGE and 1009; one in that many is accepted", async () => {
  await using server = await serve();
  await using game = await Bystanders.start(server);
  const join = (code: string) =>
    encoder.encode(
      `{"type":"JoinRoom","data":{"game_name":"g","room_code":"${code}","player_name":"f"}}` +
        " ".repeat(400),
    );
  await using within = await RawWebSocket.open(server.port);
  await sendFragmented(within, join("FRAG02"), MAX_MESSAGE_FRAGMENTS);
  equal(
    JSON.parse(new TextDecoder().decode((await within.readFrame())!.payload)).type,
    "RoomJoined",
  );

  // One more: `ws` would keep every fragment until the message is whole (65,000 one-byte
  // fragments held 7.6 MB per connection, SECURITY.md "Fragments of one message").
  await using beyond = await RawWebSocket.open(server.port);
  await sendFragmented(beyond, join("FRAG03"), MAX_MESSAGE_FRAGMENTS + 1);
  const { code, text } = await beyond.readClose();
  equal(code, 1009);
  deepEqual(text.map((frame) => JSON.parse(frame)), [{
    type: "Error",
    data: {
      message: `Message too large (more than ${MAX_MESSAGE_FRAGMENTS} fragments)`,
      error_code: "MESSAGE_TOO_LARGE",
    },
  }]);
  await game.assertIntact();
});

Deno.test("Binary frames where text is expected get INVALID_INPUT or SPECTATOR_NOT_ALLOWED", async () => {
  await using server = await serve();
  await using game = await Bystanders.start(server);
  await using watcher = await game.watch(server);
  // JSON text sent as a binary frame is still binary: not parsed as a message.
  game.a.send(encoder.encode('{"type":"GameData","data":{"data":1}}'));
  deepEqual((await game.a.next("Error")).data, {
    message: "Binary payloads are disabled for this connection",
    error_code: "INVALID_INPUT",
  });
  watcher.send(new Uint8Array(0));
  equal((await watcher.next("Error")).data.error_code, "SPECTATOR_NOT_ALLOWED");
  await game.assertIntact();
  await watcher.next("GameData"); // spectators see the untargeted relay
  await watcher.next("GameData");
  await watcher.expectNothingElse();
});

Deno.test("Huge frames close with 1009; deep nesting within the limit is relayed intact", async () => {
  // Connection info as large as a message (the default cap is 4096 bytes): deep nesting in it.
  await using server = await serve((config) => {
    config.protocol.max_connection_info_bytes = 65_536;
  });
  await using game = await Bystanders.start(server);
  await using big = await connect(server);
  big.send(`{"type":"GameData","data":{"data":"${"x".repeat(1 << 20)}"}}`);
  equal((await big.next("Error")).data.error_code, "MESSAGE_TOO_LARGE");
  equal((await big.closed).code, 1009);

  // 32,000 nested arrays: 64,000 bytes of brackets plus the envelope, under 65,536.
  const depth = 32_000;
  const nested = "[".repeat(depth) + "]".repeat(depth);
  game.a.send(`{"type":"GameData","data":{"data":${nested}}}`);
  const relayed = await game.b.next("GameData");
  let level: unknown = relayed.data.data;
  let seen = 0;
  while (Array.isArray(level) && level.length === 1) [level, seen] = [level[0], seen + 1];
  equal(seen + 1, depth);
  // Nested where a string or object is required: a parse failure, not a crash.
  game.a.send(
    `{"type":"AuthorityRequest","data":{"become_authority":${nested.slice(0, 20_000)}${
      nested.slice(-20_000)
    }}}`,
  );
  deepEqual((await game.a.next("Error")).data, INVALID);
  // Deep connection info is stored and comes back in GameStarting.
  const objects = '{"a":'.repeat(10_000) + "1" + "}".repeat(10_000);
  game.a.send(
    `{"type":"ProvideConnectionInfo","data":{"connection_info":{"type":"custom","data":${objects}}}}`,
  );
  game.a.send({ type: "PlayerReady" });
  game.b.send({ type: "PlayerReady" });
  const starting = await game.b.waitFor("GameStarting");
  equal(typeof starting.data.peer_connections[0].connection_info.data.a, "object");
  await game.a.waitFor("GameStarting");
  await game.assertIntact();
});

Deno.test("Wrong types get INVALID_INPUT; extra fields are ignored", async () => {
  await using server = await serve();
  await using game = await Bystanders.start(server);
  await using client = await connect(server);
  const wrongTypes = [
    '{"type":"JoinRoom","data":{"game_name":7,"player_name":"p"}}',
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":["p"]}}',
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":"p","max_players":"4"}}',
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":"p","max_players":2.5}}',
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":"p","max_players":-1}}',
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":"p","supports_authority":"yes"}}',
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":"p","room_code":123456}}',
    '{"type":"JoinRoom","data":"g"}',
    '{"type":"JoinRoom","data":null}',
    '{"type":["JoinRoom"]}',
    '{"type":"joinroom","data":{"game_name":"g","player_name":"p"}}',
    '{"type":"AuthorityRequest","data":{"become_authority":1}}',
    '{"type":"Authenticate","data":{"app_id":null}}',
    '{"type":"Authenticate","data":{"app_id":"a","game_data_format":"MessagePack"}}',
    '{"type":"ProvideConnectionInfo","data":{"connection_info":{"type":"direct","host":"h","port":70000}}}',
    '{"type":"ProvideConnectionInfo","data":{"connection_info":{"type":"teleport"}}}',
    '{"type":"Reconnect","data":{"player_id":"not-a-uuid","room_id":"x","auth_token":"t"}}',
    '{"type":"GameData","data":{}}',
    '{"type":"LeaveRoom","data":[]}',
    '{"type":"Ping","data":0}',
    "null",
    '"Ping"',
    "true",
    '{"type":"Ping"}garbage',
    '{"type":"Ping"',
    "\uFEFF{}",
  ];
  for (const frame of wrongTypes) {
    client.send(frame);
    deepEqual((await client.next("Error")).data, INVALID, frame);
  }
  // Unknown members at both levels are ignored (docs/spec/PROTOCOL.md §2.1) and never echoed.
  client.send(
    '{"type":"JoinRoom","admin":true,"data":{"game_name":"g","player_name":"p","room_code":"EXTRA1","is_authority":false,"max_players":3,"__proto__":{"x":1}},"id":9}',
  );
  const joined = (await client.next("RoomJoined")).data;
  equal(joined.room_code, "EXTRA1");
  equal(joined.max_players, 3);
  equal("admin" in joined || "x" in joined, false);
  client.send('{"type":"Ping","data":{"unexpected":"member"}}');
  await client.next("Pong");
  await game.assertIntact();
});

Deno.test("Unicode edge cases in names follow the docs/spec/PROTOCOL.md §8.2 rules exactly", async () => {
  await using server = await serve();
  await using game = await Bystanders.start(server);
  const refused: [string, string][] = [
    ["Ali\u200dce", "Player name contains invalid characters"], // zero-width joiner
    ["Ali\u200bce", "Player name contains invalid characters"], // zero-width space
    ["\u202eecilA", "Player name contains invalid characters"], // right-to-left override
    ["Cafe\u0301", "Player name contains invalid characters"], // combining acute accent
    ["\ufeffAlice", "Player name contains invalid characters"], // BOM: not White_Space
    ["Al\ud800ice", "Player name contains invalid characters"], // lone surrogate
    ["🐟fish", "Player name contains invalid characters"],
    ["A\u00a0B", "Player name cannot contain whitespace characters"], // no-break space
    ["a\u2028b", "Player name cannot contain whitespace characters"], // line separator
    ["\u3000", "Player name cannot be blank"], // ideographic space
    ["\u2003alice", "Player name cannot have leading or trailing whitespace"],
    ["日本語日本語日本語日本", "Player name too long (max 32 characters)"], // 33 UTF-8 bytes
  ];
  await using client = await connect(server);
  for (const [name, reason] of refused) {
    client.send({
      type: "JoinRoom",
      data: { game_name: "names", room_code: "UNI001", player_name: name },
    });
    deepEqual(
      (await client.next("RoomJoinFailed")).data,
      { reason, error_code: "INVALID_INPUT" },
      JSON.stringify(name),
    );
    client.send({
      type: "JoinAsSpectator",
      data: { game_name: "guarded", room_code: "GUARD1", spectator_name: name },
    });
    deepEqual((await client.next("SpectatorJoinFailed")).data, {
      reason,
      error_code: "INVALID_PLAYER_NAME",
    });
  }
  for (const gameName of ["orbit\u200d", "orbit\u202e", "e\u0301", "tab\there"]) {
    client.send({ type: "JoinRoom", data: { game_name: gameName, player_name: "p" } });
    deepEqual((await client.next("RoomJoinFailed")).data, {
      reason: "Game name contains invalid characters",
      error_code: "INVALID_GAME_NAME",
    });
  }

  // Letters of any script are alphanumeric: confusables are distinct names (only case is
  // folded), right-to-left scripts and 32-byte CJK names are accepted.
  const accepted = [
    "Alice",
    "\u0410lice",
    "\uff21lice",
    "שלום",
    "مرحبا",
    "日本語日本語日本語日",
    "İstanbul",
  ];
  const players: TestClient[] = [];
  try {
    for (const name of accepted) {
      const player = await connect(server);
      players.push(player);
      player.send({
        type: "JoinRoom",
        data: { game_name: "names", room_code: "UNI002", player_name: name, max_players: 10 },
      });
      const joined = (await player.next("RoomJoined")).data;
      equal(joined.current_players.at(-1).name, name);
    }
    const duplicate = await connect(server);
    players.push(duplicate);
    duplicate.send({
      type: "JoinRoom",
      data: { game_name: "names", room_code: "UNI002", player_name: "ALICE" },
    });
    deepEqual((await duplicate.next("RoomJoinFailed")).data, {
      reason: "Player name already exists in this room",
      error_code: "ROOM_CREATION_FAILED",
    });
  } finally {
    for (const player of players) await player.close();
  }
  await game.assertIntact();
});

Deno.test("Messages in the wrong state get their replies and leave other rooms alone", async () => {
  await using server = await serve();
  await using game = await Bystanders.start(server);
  await using watcher = await game.watch(server);
  // A spectator may not act in the room...
  const forbidden = [
    { type: "GameData", data: { data: "spoof" } },
    { type: "PlayerReady" },
    { type: "AuthorityRequest", data: { become_authority: true } },
    { type: "ProvideConnectionInfo", data: { connection_info: { type: "custom", data: 1 } } },
  ];
  for (const message of forbidden) {
    watcher.send(message);
    equal((await watcher.next("Error")).data.error_code, "SPECTATOR_NOT_ALLOWED");
  }
  // ...nor join it as a player; LeaveRoom is ignored.
  watcher.send({
    type: "JoinRoom",
    data: { game_name: "guarded", room_code: "GUARD1", player_name: "eve" },
  });
  equal((await watcher.next("RoomJoinFailed")).data.error_code, "ALREADY_IN_ROOM");
  watcher.send({ type: "LeaveRoom" });
  await watcher.expectNothingElse();
  // A player may not join a second room or spectate; a targeted message to a stranger fails.
  game.a.send({ type: "JoinRoom", data: { game_name: "other", player_name: "alpha" } });
  equal((await game.a.next("RoomJoinFailed")).data.error_code, "ALREADY_IN_ROOM");
  game.a.send({
    type: "JoinAsSpectator",
    data: { game_name: "guarded", room_code: "GUARD1", spectator_name: "alpha" },
  });
  equal((await game.a.next("SpectatorJoinFailed")).data.error_code, "ALREADY_IN_ROOM");
  game.a.send({ type: "GameData", data: { data: 1, to_player: crypto.randomUUID() } });
  deepEqual((await game.a.next("Error")).data, {
    message: "Target player is not in this room",
    error_code: "INVALID_INPUT",
  });
  // Releasing authority one does not hold is denied (alpha, the creator, holds it).
  game.b.send({ type: "AuthorityRequest", data: { become_authority: false } });
  equal((await game.b.next("AuthorityResponse")).data.error_code, "AUTHORITY_DENIED");
  await game.assertIntact();
  for (let i = 0; i < 2; i++) await watcher.next("GameData");
  await watcher.expectNothingElse();
});
