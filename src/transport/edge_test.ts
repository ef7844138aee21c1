/**
 * The edge without sockets: peers are recording doubles, time is passed in, the in-memory
 * router and directory are the ones single-instance mode runs on.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { LocalRouter, MemoryRoomDirectory } from "../coordination/memory.ts";
import type { BindOutcome, Router } from "../coordination/router.ts";
import { Engine, type EngineOptions } from "../engine/engine.ts";
import { testOptions } from "../engine/testing.ts";
import { Edge, type EdgeEvent, type EdgeOptions, type PeerInfo } from "./edge.ts";
import type { ConnectionEnd, SendFailure } from "./peer.ts";

const T0 = 1_700_000_000_000;

/** A peer that records what it is sent and how it is closed; `refuse` makes `send` fail. */
class RecordingPeer {
  readonly frames: unknown[] = [];
  readonly log: string[] = [];
  refuse: SendFailure | undefined;
  /** How its socket ended, when it can tell (`Peer.ended`). */
  ended: (() => ConnectionEnd) | undefined;

  send(frame: string | Uint8Array): SendFailure | undefined {
    if (this.refuse) return this.refuse;
    const message = typeof frame === "string" ? JSON.parse(frame) : frame;
    this.frames.push(message);
    this.log.push(typeof frame === "string" ? message.type : "binary");
    return undefined;
  }

  close(code: number): void {
    this.log.push(`close ${code}`);
  }

  /** Types of the messages received, in order. */
  types(): string[] {
    return this.log.filter((line) => !line.startsWith("close"));
  }
}

function setup(
  engineOverrides: Partial<EngineOptions> = {},
  edgeOverrides: Partial<EdgeOptions> = {},
) {
  const events: EdgeEvent[] = [];
  let ids = 0;
  const engine = new Engine(testOptions(engineOverrides));
  const edge = new Edge(engine, {
    maxMessageSize: 65536,
    newId: () => `conn-${++ids}`,
    onEvent: (event) => events.push(event),
    ...edgeOverrides,
  });
  const connect = (info: PeerInfo = { ip: "127.0.0.1" }) => {
    const peer = new RecordingPeer();
    return { peer, id: edge.connect(peer, info, T0) };
  };
  const send = (id: string, message: unknown, now = T0) =>
    edge.receive(id, JSON.stringify(message), now);
  const join = (id: string, name: string, code = "ROOM01") =>
    send(id, {
      type: "JoinRoom",
      data: { game_name: "orbit", room_code: code, player_name: name, max_players: 4 },
    });
  return { engine, edge, events, connect, send, join };
}

Deno.test("Edge: a slow consumer is closed with 1013 and its seat held as truncated", () => {
  const { engine, edge, events, connect, send, join } = setup({ enableReconnection: true });
  const alice = connect();
  const bob = connect();
  join(alice.id, "Alice");
  join(bob.id, "Bob");
  bob.peer.refuse = { reason: "overflow", dropped: 5 };
  send(alice.id, { type: "GameData", data: { data: { n: 1 } } });
  deepEqual(bob.peer.log.slice(-1), ["close 1013"]);
  equal(edge.size, 1);
  equal(engine.stats().heldSeats, 1);
  deepEqual(events.filter((e) => e.type === "slow_consumer"), [
    { type: "slow_consumer", connectionId: bob.id, dropped: 5 },
  ]);
  ok(events.some((e) => e.type === "seat_held" && e.truncated));
  deepEqual(events.filter((e) => e.type === "messages_dropped"), [
    { type: "messages_dropped", count: 5 },
  ]);
});

Deno.test("Edge: a member closed as a slow consumer while its room starts is told of after the start: the others get LobbyStateChanged, GameStarting at once after it, then PlayerDisconnected (docs/spec/PROTOCOL.md §7.4, docs/spec/EXTENSIONS.md E10)", () => {
  const { engine, connect, send } = setup({ enableReconnection: true });
  const [alice, bob, carol] = [connect(), connect(), connect()];
  for (const [member, name] of [[alice, "Alice"], [bob, "Bob"], [carol, "Carol"]] as const) {
    send(member.id, {
      type: "Authenticate",
      data: { app_id: "orbit", features: ["presence-events"] },
    });
    send(member.id, {
      type: "JoinRoom",
      data: { game_name: "orbit", room_code: "ROOM01", player_name: name, max_players: 3 },
    });
  }
  send(alice.id, { type: "PlayerReady" });
  send(bob.id, { type: "PlayerReady" });
  const [seenByAlice, seenByCarol] = [alice.peer.log.length, carol.peer.log.length];
  // Bob stops reading: the start's first message to him overflows.
  bob.peer.refuse = { reason: "overflow", dropped: 3 };
  send(carol.id, { type: "PlayerReady" });
  deepEqual(bob.peer.log.slice(-1), ["close 1013"]);
  equal(engine.stats().heldSeats, 1);
  const start = ["LobbyStateChanged", "GameStarting", "PlayerDisconnected"];
  deepEqual(alice.peer.log.slice(seenByAlice), start);
  deepEqual(carol.peer.log.slice(seenByCarol), start);
});

Deno.test("Edge: a seat held while its room starts gets the start in its replay before a teardown the start's messages found, as the live members get them (docs/spec/PROTOCOL.md §7.4, §7.11.2)", () => {
  // Player and room ids as the wire has them (a Reconnect names two UUIDs).
  const { connect, send } = setup(
    { enableReconnection: true, newId: () => crypto.randomUUID() },
    { newId: () => crypto.randomUUID() },
  );
  const [alice, bob, carol, dave] = [connect(), connect(), connect(), connect()];
  for (const [member, name] of [[alice, "Alice"], [bob, "Bob"], [carol, "Carol"]] as const) {
    send(member.id, {
      type: "JoinRoom",
      data: { game_name: "orbit", room_code: "ROOM01", player_name: name, max_players: 3 },
    });
  }
  send(dave.id, {
    type: "JoinAsSpectator",
    data: { game_name: "orbit", room_code: "ROOM01", spectator_name: "Dave" },
  });
  send(alice.id, { type: "PlayerReady" });
  send(bob.id, { type: "PlayerReady" });
  const joined = bob.peer.frames.find((frame) => (frame as { type: string }).type === "RoomJoined");
  const { room_id, reconnection_token } = (joined as {
    data: { room_id: string; reconnection_token: string };
  }).data;
  const seenByAlice = alice.peer.log.length;
  // Bob stops reading (the start's first message overflows him) and Dave's socket has closed
  // unnoticed: both are found by the start's first message, Bob first (seats before spectators).
  bob.peer.refuse = { reason: "overflow", dropped: 1 };
  dave.peer.refuse = { reason: "closed" };
  send(carol.id, { type: "PlayerReady" });
  deepEqual(alice.peer.log.slice(seenByAlice), [
    "LobbyStateChanged",
    "GameStarting",
    "SpectatorDisconnected",
  ]);
  // Bob's replay has what the others got after his seat was held, in their order.
  const again = connect();
  send(again.id, {
    type: "Reconnect",
    data: { player_id: bob.id, room_id, auth_token: reconnection_token },
  });
  const reconnected = again.peer.frames.find((frame) =>
    (frame as { type: string }).type === "Reconnected"
  ) as { data: { missed_events: { type: string }[]; replay_truncated: boolean } } | undefined;
  ok(reconnected, JSON.stringify(again.peer.frames));
  deepEqual(reconnected.data.missed_events.map((event) => event.type), [
    "GameStarting",
    "SpectatorDisconnected",
  ]);
  equal(reconnected.data.replay_truncated, true);
});

Deno.test("Edge command close_all closes every socket before any seat is released", () => {
  const { edge, events, connect, join } = setup();
  const alice = connect();
  const bob = connect();
  join(alice.id, "Alice");
  join(bob.id, "Bob");
  const before = [alice.peer.log.length, bob.peer.log.length];
  equal(
    edge.command({ kind: "close_all", code: 1001, reason: "Server shutting down" }, T0),
    undefined,
  );
  // Nobody is told about players leaving with them (docs/spec/PROTOCOL.md §7.12).
  deepEqual(alice.peer.log.slice(before[0]), ["close 1001"]);
  deepEqual(bob.peer.log.slice(before[1]), ["close 1001"]);
  equal(edge.size, 0);
  equal(events.filter((e) => e.type === "seat_released").length, 2);
  equal(events.filter((e) => e.type === "disconnected").length, 2);
});

Deno.test("Edge: a frame without its token-binding proof gets Error UNAUTHORIZED, then 1008", () => {
  const { edge, connect, send } = setup();
  const bound = connect({
    ip: "127.0.0.1",
    tokenBinding: { secret: new Uint8Array(16), requireFingerprint: false },
  });
  send(bound.id, { type: "Ping" });
  deepEqual(bound.peer.frames, [{
    type: "Error",
    data: { message: "Token binding proof missing", error_code: "UNAUTHORIZED" },
  }]);
  deepEqual(bound.peer.log, ["Error", "close 1008"]);
  equal(edge.size, 0);
});

Deno.test("Edge: an oversize frame gets Error MESSAGE_TOO_LARGE, then 1009, before decoding", () => {
  const { edge, events, connect } = setup({}, { maxMessageSize: 100 });
  const alice = connect();
  edge.receive(alice.id, "x".repeat(101), T0);
  deepEqual(alice.peer.frames, [{
    type: "Error",
    data: {
      message: "Message too large (101 bytes, max 100 bytes)",
      error_code: "MESSAGE_TOO_LARGE",
    },
  }]);
  deepEqual(alice.peer.log, ["Error", "close 1009"]);
  ok(!events.some((e) => e.type === "invalid_message"), "never decoded");
  edge.receive(alice.id, new Uint8Array(200), T0); // a closed connection's frames are ignored
  equal(alice.peer.log.length, 2);
});

/** A router whose bind answers only when the test says so (a home on another node). */
class DeferredBindRouter implements Router {
  readonly pending: (() => void)[] = [];
  readonly #local = new LocalRouter();
  attach: Router["attach"] = (node, endpoints) => this.#local.attach(node, endpoints);
  detach: Router["detach"] = (node) => this.#local.detach(node);
  forward: Router["forward"] = (...args) => this.#local.forward(...args);
  closed: Router["closed"] = (...args) => this.#local.closed(...args);
  deliver: Router["deliver"] = (...args) => this.#local.deliver(...args);
  direct: Router["direct"] = (...args) => this.#local.direct(...args);
  flush: Router["flush"] = () => this.#local.flush();
  command: Router["command"] = (...args) => this.#local.command(...args);
  bind(...args: Parameters<Router["bind"]>): Promise<BindOutcome> {
    return new Promise((resolve) => this.pending.push(() => resolve(this.#local.bind(...args))));
  }
}

Deno.test("Edge: frames wait behind a pending bind request and then run in arrival order", async () => {
  const router = new DeferredBindRouter();
  const { connect, send, join } = setup({}, { router });
  const alice = connect();
  join(alice.id, "Alice");
  send(alice.id, { type: "Ping" });
  send(alice.id, { type: "PlayerReady" });
  deepEqual(alice.peer.types(), [], "nothing answered while the join is pending");
  router.pending.shift()!();
  await Promise.resolve();
  await Promise.resolve();
  deepEqual(alice.peer.types(), ["RoomJoined", "Pong", "LobbyStateChanged"]);
});

Deno.test("Edge: a queue behind a pending request over max_buffered_bytes closes with 1013", () => {
  const router = new DeferredBindRouter();
  const { edge, events, connect, send, join } = setup({}, { router, maxQueuedBytes: 40 });
  const alice = connect();
  join(alice.id, "Alice");
  send(alice.id, { type: "Ping" }); // 15 bytes
  send(alice.id, { type: "Ping" }); // 30
  deepEqual(alice.peer.log, []);
  send(alice.id, { type: "Ping" }); // 45 > 40
  deepEqual(alice.peer.log, ["close 1013"]);
  equal(edge.size, 0);
  deepEqual(events.filter((e) => e.type === "slow_consumer"), [
    { type: "slow_consumer", connectionId: alice.id, dropped: 3 },
  ]);
});

Deno.test("Edge command: tick and sweep run the engine's timers; room commands reach the home", () => {
  const { edge, events, connect, join } = setup({ enableReconnection: true });
  const alice = connect();
  const bob = connect();
  join(alice.id, "Alice");
  join(bob.id, "Bob");
  deepEqual(edge.command({ kind: "room", command: inspect("ROOM01") }, T0), {
    ok: true,
    summary: {
      room_code: "ROOM01",
      game_name: "orbit",
      players: 2,
      max_players: 4,
      spectators: 0,
      lobby_state: "waiting",
      supports_authority: true,
      relay_type: "matchbox",
      authority_handover: false,
    },
  });
  deepEqual(edge.command({ kind: "room", command: inspect("NOROOM") }, T0), {
    ok: false,
    reason: "not_found",
  });
  edge.disconnect(alice.id, T0);
  edge.command({ kind: "tick" }, T0 + 299_999);
  ok(!events.some((e) => e.type === "seat_expired"));
  edge.command({ kind: "tick" }, T0 + 300_000);
  ok(events.some((e) => e.type === "seat_expired"));
  deepEqual(bob.peer.types().slice(-2), ["PlayerLeft", "AuthorityChanged"]);
  edge.disconnect(bob.id, T0 + 300_000);
  edge.command({ kind: "tick" }, T0 + 600_000);
  edge.command({ kind: "sweep" }, T0 + 899_999);
  ok(!events.some((e) => e.type === "room_deleted"));
  edge.command({ kind: "sweep" }, T0 + 900_000);
  ok(events.some((e) => e.type === "room_deleted" && e.reason === "empty"));
  equal(edge.directory.lookup("orbit", "ROOM01"), undefined, "the directory entry is released");
});

function inspect(roomCode: string) {
  return { kind: "inspect", gameName: "orbit", roomCode } as const;
}

Deno.test("Edge command: operator actions issued on another node reach the room's home", () => {
  // Two nodes sharing one router and directory: the room lives on "a", the operator asks "b".
  const router = new LocalRouter();
  const directory = new MemoryRoomDirectory();
  const nodes = ["a", "b"].map((node) => {
    let ids = 0;
    const engine = new Engine(testOptions({ enableReconnection: true }));
    const edge = new Edge(engine, {
      maxMessageSize: 65536,
      newId: () => `${node}-conn-${++ids}`,
      node,
      router,
      directory,
    });
    return { engine, edge };
  });
  const [a, b] = nodes as [typeof nodes[0], typeof nodes[0]];
  const peers = [new RecordingPeer(), new RecordingPeer()];
  const [alice, bob] = peers.map((peer) => a.edge.connect(peer, { ip: "127.0.0.1" }, T0)) as [
    string,
    string,
  ];
  for (const [id, name] of [[alice, "Alice"], [bob, "Bob"]] as const) {
    a.edge.receive(
      id,
      JSON.stringify({
        type: "JoinRoom",
        data: { game_name: "orbit", room_code: "ROOM01", player_name: name, max_players: 4 },
      }),
      T0,
    );
  }
  const room = { gameName: "orbit", roomCode: "ROOM01" };
  const detail = b.edge.command({ kind: "room", command: { kind: "detail", ...room } }, T0 + 1000);
  ok(detail && !(detail instanceof Promise) && detail.ok);
  deepEqual(detail.detail?.members.map((m) => m.name), ["Alice", "Bob"]);
  equal(detail.detail?.age_secs, 1);

  const remove = { kind: "remove_player", ...room, playerId: bob } as const;
  deepEqual(b.edge.command({ kind: "room", command: remove }, T0 + 2000), {
    ok: true,
    summary: detail.summary,
  });
  deepEqual(peers[1]!.types().at(-1), "RoomLeft");
  deepEqual(peers[0]!.types().at(-1), "PlayerLeft");
  deepEqual(b.edge.command({ kind: "room", command: remove }, T0 + 2000), {
    ok: false,
    reason: "player_not_found",
  });

  const close = b.edge.command({ kind: "room", command: { kind: "close", ...room } }, T0 + 3000);
  ok(close && !(close instanceof Promise) && close.ok);
  deepEqual(peers[0]!.types().at(-1), "RoomLeft");
  equal(directory.lookup("orbit", "ROOM01"), undefined, "the home released the entry");
  deepEqual(b.edge.command({ kind: "room", command: { kind: "close", ...room } }, T0 + 3000), {
    ok: false,
    reason: "not_found",
  });

  // Maintenance is a node's own setting.
  b.edge.command({ kind: "maintenance", enabled: true }, T0);
  deepEqual([a.engine.maintenance, b.engine.maintenance], [false, true]);
});

Deno.test("Edge: past websocket.max_buffered_bytes_total the connections buffering the most are closed as slow consumers at the tick", () => {
  // Before, each connection had its own budget and nothing bounded them together: 300 sockets
  // that stopped reading (31 addresses) held +156 MB of the server's memory, and the number of
  // connections (the open-file limit) was the only bound.
  const { engine, edge, events, join } = setup(
    { enableReconnection: true },
    { maxBufferedBytesTotal: 1000 },
  );
  class BufferingPeer extends RecordingPeer {
    pending = 0;
    pendingBytes(): number {
      return this.pending;
    }
  }
  const member = (name: string) => {
    const peer = new BufferingPeer();
    const id = edge.connect(peer, { ip: "127.0.0.1" }, T0);
    join(id, name);
    return { peer, id };
  };
  const [a, b, c, d] = [member("A"), member("B"), member("C"), member("D")];
  a.peer.pending = 300;
  b.peer.pending = 600;
  c.peer.pending = 100;
  d.peer.pending = 0;
  // 1000 buffered: within the budget, nobody is closed.
  edge.command({ kind: "tick" }, T0 + 1000);
  equal(edge.size, 4);
  // 1150: the one with the most (B) goes, which is enough.
  c.peer.pending = 250;
  edge.command({ kind: "tick" }, T0 + 2000);
  equal(edge.bufferedBytes, 1150);
  deepEqual(b.peer.log.slice(-1), ["close 1013"]);
  equal(edge.size, 3);
  for (const other of [a, c, d]) ok(!other.peer.log.includes("close 1013"));
  deepEqual(events.filter((e) => e.type === "slow_consumer"), [
    { type: "slow_consumer", connectionId: b.id, dropped: 0 },
  ]);
  ok(events.some((e) => e.type === "seat_held" && e.truncated));
  equal(engine.stats().heldSeats, 1);
  // 1300 without B: A (300) then C (250) bring it to 750.
  a.peer.pending = 700;
  c.peer.pending = 350;
  d.peer.pending = 250;
  edge.command({ kind: "tick" }, T0 + 3000);
  deepEqual(a.peer.log.slice(-1), ["close 1013"]);
  equal(edge.size, 2);
  ok(!c.peer.log.includes("close 1013"));
  ok(!d.peer.log.includes("close 1013"));
});

Deno.test("Edge: without max_buffered_bytes_total the tick closes nobody, however much is buffered", () => {
  const { edge, connect } = setup();
  const peer = Object.assign(new RecordingPeer(), { pendingBytes: () => 1e12 });
  edge.connect(peer, { ip: "127.0.0.1" }, T0);
  connect();
  edge.command({ kind: "tick" }, T0 + 1000);
  equal(edge.size, 2);
});

Deno.test("Edge reports each connection's end once: its own closes as the server's, a socket found closed as its peer tells", () => {
  const { edge, events, connect, join, send } = setup();
  const ends = () =>
    events.flatMap((e) =>
      e.type === "disconnected" ? [[e.connectionId, e.code, e.initiator, e.cause, e.error]] : []
    );
  const alice = connect();
  const bob = connect();
  const eve = connect();
  const frank = connect();
  join(alice.id, "Alice");
  join(bob.id, "Bob");
  join(eve.id, "Eve");
  join(frank.id, "Frank");
  // Bob's and Eve's sockets ended unseen by the transport: the next frame finds them closed. Bob's
  // peer tells how (a reset); Eve's cannot.
  bob.peer.refuse = { reason: "closed" };
  bob.peer.ended = () => ({ code: 1006, initiator: "client", cause: "reset", error: "ECONNRESET" });
  eve.peer.refuse = { reason: "closed" };
  // Frank reads too slowly: closed by the server with 1013.
  frank.peer.refuse = { reason: "overflow", dropped: 1 };
  send(alice.id, { type: "GameData", data: { data: { n: 1 } } });
  deepEqual(ends(), [
    [bob.id, 1006, "client", "reset", "ECONNRESET"],
    [eve.id, 1006, "client", "unknown", undefined],
    [frank.id, 1013, "server", undefined, undefined],
  ]);
  deepEqual(frank.peer.log.slice(-1), ["close 1013"]);
  const carol = connect();
  // The server's own close; the client's close frame (reported by the transport, twice: once).
  edge.close(alice.id, 1008, "Token binding violation", T0);
  edge.disconnect(carol.id, T0, undefined, { code: 1000, initiator: "client" });
  edge.disconnect(carol.id, T0, undefined, { code: 1006, initiator: "client", cause: "eof" });
  // Shutdown closes the rest with its code.
  const dave = connect();
  edge.command({ kind: "close_all", code: 1001, reason: "Server shutting down" }, T0);
  deepEqual(ends().slice(3), [
    [alice.id, 1008, "server", undefined, undefined],
    [carol.id, 1000, "client", undefined, undefined],
    [dave.id, 1001, "server", undefined, undefined],
  ]);
});
