import { deepEqual, equal, match, notEqual, ok } from "node:assert/strict";
import { inProcessOnly } from "./cluster_serve.ts";
import { decode, encode } from "@msgpack/msgpack";
import type { EdgeEvent } from "../src/transport/edge.ts";
import type { SignalFishServer } from "../src/server.ts";
import { connect, joinRoom, serve, type TestClient } from "./helpers.ts";
import { RawWebSocket } from "./raw_websocket.ts";

/** Waits (polling, bounded) until `predicate` holds. */
async function until(predicate: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Three players in room `code` (3 seats); returns their RoomJoined data. */
async function threePlayers(
  server: SignalFishServer,
  code: string,
  // deno-lint-ignore no-explicit-any
): Promise<{ clients: TestClient[]; joined: any[] }> {
  const clients: TestClient[] = [];
  const joined = [];
  for (const name of ["Mira", "Tobias", "Nina"]) {
    const client = await connect(server);
    client.send(joinRoom(code, name, { max_players: 3 }));
    joined.push((await client.next("RoomJoined")).data);
    clients.push(client);
  }
  await clients[0]!.waitFor("LobbyStateChanged");
  await clients[1]!.waitFor("LobbyStateChanged");
  clients[2]!.drain();
  return { clients, joined };
}

Deno.test(
  "A dropped player reconnects and gets the missed GameData in order; the others never see PlayerLeft",
  {
    ignore: inProcessOnly("it reads server.engine.stats()"),
  },
  async () => {
    await using server = await serve();
    const { clients, joined } = await threePlayers(server, "DROP01");
    const [mira, tobias, nina] = clients as [TestClient, TestClient, TestClient];
    const ninaSeat = joined[2];

    await nina.close();
    await until(() => server.engine.stats().heldSeats === 1, "the seat to be held");
    for (let n = 1; n <= 5; n++) mira.send({ type: "GameData", data: { data: { n } } });
    for (let n = 1; n <= 5; n++) deepEqual((await tobias.next("GameData")).data.data, { n });
    tobias.send({ type: "GameData", data: { data: "to-nina", to_player: ninaSeat.player_id } });
    equal(server.engine.lookup("orbit", "DROP01")?.players, 3);

    await using back = await connect(server);
    back.send({
      type: "Reconnect",
      data: {
        player_id: ninaSeat.player_id,
        room_id: ninaSeat.room_id,
        auth_token: ninaSeat.reconnection_token,
      },
    });
    const reconnected = (await back.next("Reconnected")).data;
    deepEqual(
      reconnected.missed_events.map((event: { type: string; data: { data: unknown } }) => [
        event.type,
        event.data.data,
      ]),
      [
        ["GameData", { n: 1 }],
        ["GameData", { n: 2 }],
        ["GameData", { n: 3 }],
        ["GameData", { n: 4 }],
        ["GameData", { n: 5 }],
        ["GameData", "to-nina"],
      ],
    );
    equal(reconnected.replay_truncated, false);
    equal(reconnected.player_id, ninaSeat.player_id);
    equal(reconnected.lobby_state, "lobby");
    match(reconnected.reconnection_token, /^[A-Za-z0-9_-]{43}$/);
    notEqual(reconnected.reconnection_token, ninaSeat.reconnection_token);
    // The others: PlayerReconnected is the very next thing they get (no PlayerLeft before it).
    deepEqual((await mira.next("PlayerReconnected")).data, { player_id: ninaSeat.player_id });
    deepEqual((await tobias.next("PlayerReconnected")).data, { player_id: ninaSeat.player_id });

    // Play goes on with the new socket as Nina.
    back.send({ type: "GameData", data: { data: "i'm back" } });
    deepEqual((await mira.next("GameData")).data, {
      from_player: ninaSeat.player_id,
      data: "i'm back",
    });
    await tobias.next("GameData");
    await mira.expectNothingElse();
    await tobias.expectNothingElse();
    await mira.close();
    await tobias.close();
  },
);

Deno.test("Reconnect on a live seat takes it over: the old socket is closed with 4001", async () => {
  await using server = await serve();
  await using a = await connect(server);
  const b = await connect(server);
  a.send(joinRoom("TAKE01", "a"));
  await a.next("RoomJoined");
  b.send(joinRoom("TAKE01", "b"));
  const seat = (await b.next("RoomJoined")).data;
  await a.next("PlayerJoined");
  await using b2 = await connect(server);
  b2.send({
    type: "Reconnect",
    data: { player_id: seat.player_id, room_id: seat.room_id, auth_token: seat.reconnection_token },
  });
  deepEqual((await b2.next("Reconnected")).data.missed_events, []);
  deepEqual(await b.closed, { code: 4001, reason: "Replaced by a new connection" });
  await a.next("PlayerReconnected");
  a.send({ type: "GameData", data: { data: 7 } });
  equal((await b2.next("GameData")).data.data, 7);
  await a.expectNothingElse();
});

Deno.test("A held seat is released when the window ends: PlayerLeft, then the token says expired", async () => {
  await using server = await serve((config) => config.server.reconnection_window = 1);
  await using a = await connect(server);
  const b = await connect(server);
  a.send(joinRoom("EXPI01", "a"));
  await a.next("RoomJoined");
  b.send(joinRoom("EXPI01", "b"));
  const seat = (await b.next("RoomJoined")).data;
  await a.next("PlayerJoined");
  await b.close();
  deepEqual((await a.next("PlayerLeft", 4000)).data, { player_id: seat.player_id });
  await using late = await connect(server);
  late.send({
    type: "Reconnect",
    data: { player_id: seat.player_id, room_id: seat.room_id, auth_token: seat.reconnection_token },
  });
  deepEqual((await late.next("ReconnectionFailed")).data, {
    reason: "Reconnection window has expired",
    error_code: "RECONNECTION_EXPIRED",
  });
});

Deno.test("A JSON client and a MessagePack client exchange game data both ways", async () => {
  await using server = await serve();
  const clients: TestClient[] = [];
  const ids: string[] = [];
  const formats = [["mp", "message_pack"], ["js", "json"], ["mp2", "message_pack"]] as const;
  for (const [name, format] of formats) {
    const client = await connect(server);
    client.send({ type: "Authenticate", data: { app_id: "test", game_data_format: format } });
    await client.next("Authenticated");
    const info = (await client.next("ProtocolInfo")).data;
    deepEqual(info.game_data_formats, ["json", "message_pack"]);
    client.send(joinRoom("MSGP01", name));
    ids.push((await client.next("RoomJoined")).data.player_id);
    clients.push(client);
  }
  const [mp, js, mp2] = clients as [TestClient, TestClient, TestClient];
  await mp.waitFor("PlayerJoined");
  await mp.waitFor("PlayerJoined");
  await js.waitFor("PlayerJoined");

  // MessagePack → JSON (converted) and → MessagePack (envelope).
  const payload = encode({ op: "move", x: 1.25, tick: 2n ** 60n }, { useBigInt64: true });
  mp.send(payload);
  const text = (await js.next("GameData")).data;
  deepEqual(text, { from_player: ids[0], data: { op: "move", x: 1.25, tick: 2 ** 60 } });
  const envelope = decode(await mp2.nextBinary()) as Record<string, unknown>;
  deepEqual(Object.keys(envelope), ["from_player", "encoding", "payload"]);
  equal(envelope.encoding, "message_pack");
  deepEqual(envelope.payload, payload);
  equal(
    [...(envelope.from_player as Uint8Array)].map((b) => b.toString(16).padStart(2, "0")).join(""),
    ids[0]!.replaceAll("-", ""),
  );

  // JSON → everyone as JSON text, MessagePack clients included.
  js.send({ type: "GameData", data: { data: { op: "chat", text: "hi" } } });
  deepEqual((await mp.next("GameData")).data, {
    from_player: ids[1],
    data: { op: "chat", text: "hi" },
  });
  equal((await mp2.next("GameData")).data.from_player, ids[1]);
  // A JSON client's binary frame is refused, and the connection stays open.
  js.send(new Uint8Array([0x90]));
  equal((await js.next("Error")).data.error_code, "INVALID_INPUT");
  for (const client of clients) await client.expectNothingElse();
  for (const client of clients) await client.close();
});

/** A raw WebSocket client that joins `code` and then stops reading. */
async function stalledPlayer(port: number, code: string): Promise<RawWebSocket> {
  const socket = await RawWebSocket.open(port);
  await socket.sendText(JSON.stringify(joinRoom(code, "stalled")));
  return socket;
}

Deno.test(
  "A player that stops reading is closed with 1013 and its seat held; the others get everything",
  {
    ignore: inProcessOnly("it passes onEvent"),
  },
  async () => {
    const events: EdgeEvent[] = [];
    await using server = await serve((config) => {
      config.websocket.max_buffered_bytes = 65536;
    }, { onEvent: (event) => events.push(event) });
    await using sender = await connect(server);
    await using reader = await connect(server);
    sender.send(joinRoom("SLOW01", "sender"));
    await sender.next("RoomJoined");
    reader.send(joinRoom("SLOW01", "reader"));
    await reader.next("RoomJoined");
    const stalled = await stalledPlayer(server.port, "SLOW01");
    await sender.waitFor("PlayerJoined");
    await reader.waitFor("PlayerJoined");

    // 32 KiB messages until the server gives up on the stalled player (bounded at 64 MiB).
    const chunk = "x".repeat(32 * 1024);
    let sent = 0;
    const slow = () => events.some((event) => event.type === "slow_consumer");
    while (!slow() && sent < 2048) {
      sender.send({ type: "GameData", data: { data: { seq: sent, chunk } } });
      // Keep pace with the reader so only the stalled player falls behind.
      equal((await reader.next("GameData")).data.data.seq, sent++);
    }
    ok(slow(), `no slow-consumer close after ${sent} messages`);
    // At once in one process; behind the proxy the home holds it when the edge's CLOSED arrives.
    await until(() => server.engine.stats().heldSeats === 1, "the stalled seat to be held");
    // Play goes on for the others, in order and complete.
    for (let i = 0; i < 10; i++) sender.send({ type: "GameData", data: { data: { seq: sent++ } } });
    for (let i = sent - 10; i < sent; i++) {
      equal((await reader.next("GameData")).data.data.seq, i);
    }
    await reader.expectNothingElse();
    // Reading at last: everything queued before the decision, then the close frame.
    equal((await stalled.readClose()).code, 1013);
    stalled.close();
  },
);

Deno.test("A slow consumer that never reads again still gives its connection back", {
  ignore: inProcessOnly("it passes onEvent"),
}, async () => {
  let decided = false;
  await using server = await serve((config) => {
    config.websocket.max_buffered_bytes = 65536;
    config.security.max_connections_per_ip = 2;
  }, { onEvent: (event) => decided ||= event.type === "slow_consumer" });
  await using sender = await connect(server);
  sender.send(joinRoom("GONE01", "sender"));
  await sender.next("RoomJoined");
  await using _stalled = await stalledPlayer(server.port, "GONE01");
  await sender.waitFor("PlayerJoined");
  const chunk = "x".repeat(32 * 1024);
  for (let sent = 0; !decided && sent < 2048; sent++) {
    sender.send({ type: "GameData", data: { data: chunk } });
    await sender.expectNothingElse();
  }
  ok(decided, "no slow-consumer decision");
  // Both per-IP slots are taken until the stalled socket is really gone; it never reads, so
  // only dropping its connection frees the slot (bounded wait: the close grace plus margin).
  const deadline = Date.now() + 8000;
  for (;;) {
    const response = await fetch(`${server.url}/v2/health`);
    await response.body?.cancel();
    try {
      const probe = await connect(server);
      await probe.close();
      break;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
});

/**
 * A raw player (no automatic pong) seated in `code` next to a watcher that opted in to presence
 * events (docs/spec/EXTENSIONS.md E10), which says when the raw player's seat is held.
 */
async function silentPlayerRoom(server: SignalFishServer, code: string) {
  const watcher = await connect(server);
  watcher.send({
    type: "Authenticate",
    data: { app_id: "signal-fish-tests", features: ["presence-events"] },
  });
  await watcher.next("Authenticated");
  watcher.send(joinRoom(code, "watcher"));
  await watcher.waitFor("RoomJoined");
  const raw = await RawWebSocket.open(server.port);
  await raw.sendText(JSON.stringify(joinRoom(code, "silent")));
  // deno-lint-ignore no-explicit-any
  let joined: any;
  while (joined === undefined) {
    const frame = await raw.readFrame();
    if (frame?.opcode !== 1) continue;
    const message = JSON.parse(new TextDecoder().decode(frame.payload));
    if (message.type === "RoomJoined") joined = message.data;
  }
  await watcher.waitFor("PlayerJoined");
  // Heard last now, after everything it was sent so far: an unsolicited pong (RFC 6455
  // section 5.5.3) answers nothing and gets nothing back.
  await raw.sendFrame(10, new Uint8Array(0));
  return { watcher, raw, joined };
}

/** `Reconnect` for the raw player's seat on a new connection; returns its `Reconnected` data. */
// deno-lint-ignore no-explicit-any
async function reconnectSeat(server: SignalFishServer, joined: any) {
  const client = await connect(server);
  client.send({
    type: "Reconnect",
    data: {
      player_id: joined.player_id,
      room_id: joined.room_id,
      auth_token: joined.reconnection_token,
    },
  });
  return { client, reconnected: (await client.next("Reconnected")).data };
}

Deno.test(
  "A player closed by the idle timeout after frames went out to it reconnects with replay_truncated",
  async () => {
    await using server = await serve((config) => config.server.ping_timeout = 2);
    // Two rooms at once (the timeout takes 2 s): one sent something while its player was silent.
    const sent = await silentPlayerRoom(server, "IDLE01");
    const quiet = await silentPlayerRoom(server, "IDLE02");
    await using _w1 = sent.watcher;
    await using _w2 = quiet.watcher;
    sent.watcher.send({ type: "GameData", data: { data: { seq: 1 } } });
    for (const { watcher, raw } of [sent, quiet]) {
      equal((await raw.readClose(5000)).code, 1001);
      raw.close();
      await watcher.next("PlayerDisconnected", 5000);
    }
    // The server cannot know whether the GameData written after the player went silent arrived.
    const first = await reconnectSeat(server, sent.joined);
    await using _r1 = first.client;
    equal(first.reconnected.replay_truncated, true);
    // Nothing went out after it was last heard from: nothing can be missing.
    const second = await reconnectSeat(server, quiet.joined);
    await using _r2 = second.client;
    equal(second.reconnected.replay_truncated, false);
    deepEqual(second.reconnected.missed_events, []);
  },
);

Deno.test(
  "A player whose TCP connection ends without a close frame after frames went out to it reconnects with replay_truncated",
  async () => {
    await using server = await serve();
    const sent = await silentPlayerRoom(server, "GONE11");
    const quiet = await silentPlayerRoom(server, "GONE12");
    await using _w1 = sent.watcher;
    await using _w2 = quiet.watcher;
    sent.watcher.send({ type: "GameData", data: { data: { seq: 1 } } });
    // Read by the player before its connection ends: still not known to the server.
    let frame;
    do frame = await sent.raw.readFrame(); while (frame?.opcode !== 1);
    equal(JSON.parse(new TextDecoder().decode(frame.payload)).type, "GameData");
    for (const { watcher, raw } of [sent, quiet]) {
      raw.close();
      await watcher.next("PlayerDisconnected");
    }
    const first = await reconnectSeat(server, sent.joined);
    await using _r1 = first.client;
    equal(first.reconnected.replay_truncated, true);
    const second = await reconnectSeat(server, quiet.joined);
    await using _r2 = second.client;
    equal(second.reconnected.replay_truncated, false);
    deepEqual(second.reconnected.missed_events, []);
  },
);
