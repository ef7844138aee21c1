/**
 * Cluster behaviour in one process (docs/spec/SERVER.md §8.4–§8.6): three nodes over the in-memory bus and
 * store twins. A room lives on the node that created it; players and spectators joining through
 * other nodes are remote sessions there; relay, authority, readiness and leaving cross nodes;
 * codes are unique cluster-wide; a lost envelope resyncs only the affected pair.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { decodeBatch, Kind } from "./envelope.ts";
import type { MemoryNetwork } from "./memory_bus.ts";
import type { EdgeEvent } from "../transport/events.ts";
import type { ConnId } from "../engine/effects.ts";
import {
  dropNextEnvelope,
  getRooms,
  join,
  joined,
  reconnectFor,
  settle,
  type TestClient,
  type TestCluster,
  testCluster,
  type TestNode,
  threeNodes,
  until,
} from "./testing.ts";

/** `client` asks to watch room `code` of game `orbit` as `name` (docs/spec/PROTOCOL.md §5.10). */
const spectate = (client: TestClient, code: string, name: string) =>
  client.say({
    type: "JoinAsSpectator",
    data: { game_name: "orbit", room_code: code, spectator_name: name },
  });

/** Alice's room HOMEAA homed on the first node, Bob's HOMEBB on the second. */
async function twoRooms(cluster: { nodes: TestNode[] }) {
  const [a, b] = cluster.nodes as [TestNode, TestNode];
  const alice = a.connect();
  const bob = b.connect();
  join(alice, "Alice", "HOMEAA");
  join(bob, "Bob", "HOMEBB");
  await until(() => !!alice.last("RoomJoined") && !!bob.last("RoomJoined"), "rooms");
  return { a, b, alice, bob };
}

/** Whether an envelope carries a `BIND` (for faults that act when a request leaves an edge). */
const carriesBind = (bytes: Uint8Array) =>
  decodeBatch(bytes).bodies.some((body) => body.kind === Kind.BIND);

Deno.test("Cluster (twins): a room created on A is joined through B and C; data, to_player, authority, ready and leave cross nodes", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = threeNodes(cluster);
    const alice = a.connect();
    join(alice, "Alice", undefined, 3);
    await until(() => alice.last("RoomJoined") !== undefined, "Alice's RoomJoined");
    const code = alice.last("RoomJoined")!.data!.room_code as string;
    equal(a.engine.stats().rooms, 1, "the room is homed on A");
    const bob = b.connect();
    const carol = c.connect();
    join(bob, "Bob", code);
    await until(() => bob.last("RoomJoined") !== undefined, "Bob's RoomJoined");
    join(carol, "Carol", code);
    await until(() => carol.last("RoomJoined") !== undefined, "Carol's RoomJoined");
    equal(b.engine.stats().rooms + c.engine.stats().rooms, 0, "no room on B or C");
    equal(bob.last("RoomJoined")!.data!.room_id, alice.last("RoomJoined")!.data!.room_id);
    await until(() => alice.types().filter((t) => t === "PlayerJoined").length === 2, "joins");

    // Relay: Bob (on B) to everyone, then Carol (on C) to Alice only.
    bob.say({ type: "GameData", data: { data: { x: 1.50 } } });
    await until(
      () => alice.last("GameData") !== undefined && carol.last("GameData") !== undefined,
      "relay",
    );
    deepEqual(carol.last("GameData")!.data, { from_player: bob.id, data: { x: 1.5 } });
    equal(bob.last("GameData"), undefined, "not echoed to the sender");
    carol.say({ type: "GameData", data: { data: { hi: "alice" }, to_player: alice.id } });
    await until(
      () => alice.messages.filter((m) => m.type === "GameData").length === 2,
      "to_player",
    );
    equal(bob.messages.filter((m) => m.type === "GameData").length, 0, "Bob gets nothing");

    // Authority held by the creator; a remote request is refused the same way as a local one.
    bob.say({ type: "AuthorityRequest", data: { become_authority: true } });
    await until(() => bob.last("AuthorityResponse") !== undefined, "authority answer");
    equal(bob.last("AuthorityResponse")!.data!.granted, false);

    // Everyone ready → GameStarting everywhere.
    for (const client of [alice, bob, carol]) client.say({ type: "PlayerReady" });
    await until(
      () => [alice, bob, carol].every((client) => client.last("GameStarting") !== undefined),
      "GameStarting",
    );

    // Bob leaves: LeaveRoom is a barrier, so his next frames wait for the home's answer and
    // are then handled on B, his own edge: the GameData reaches nobody, the room is made on B.
    bob.say({ type: "LeaveRoom" });
    bob.say({ type: "GameData", data: { data: "after leaving" } });
    join(bob, "Bob", "BOBS01");
    await until(() => bob.last("RoomJoined")?.data?.room_code === "BOBS01", "Bob's new room");
    const order = bob.types();
    ok(order.lastIndexOf("RoomLeft") < order.lastIndexOf("RoomJoined"), order.join());
    await until(() => alice.last("PlayerLeft") !== undefined, "PlayerLeft");
    equal(b.engine.stats().rooms, 1, "created on B");
    equal(
      alice.messages.filter((m) => m.type === "GameData").length,
      2,
      "the frame after LeaveRoom reached nobody",
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a spectator on C watches a room homed on A", async () => {
  const cluster = await testCluster();
  try {
    const [a, , c] = cluster.nodes;
    const alice = a!.connect();
    join(alice, "Alice", "WATCH1");
    await until(() => alice.last("RoomJoined") !== undefined, "RoomJoined");
    const sam = c!.connect();
    sam.say({
      type: "JoinAsSpectator",
      data: { game_name: "orbit", room_code: "watch1", spectator_name: "Sam" },
    });
    await until(() => sam.last("SpectatorJoined") !== undefined, "SpectatorJoined");
    alice.say({ type: "GameData", data: { data: { move: 3 } } });
    await until(() => sam.last("GameData") !== undefined, "relay to the spectator");
    sam.say({ type: "GameData", data: { data: 1 } });
    await until(() => sam.last("Error") !== undefined, "spectators cannot send");
    equal(sam.last("Error")!.data!.error_code, "SPECTATOR_NOT_ALLOWED");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a spectator switches between rooms homed on two other nodes", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = threeNodes(cluster);
    const alice = a.connect();
    const bob = b.connect();
    join(alice, "Alice", "ROOMAA");
    join(bob, "Bob", "ROOMBB");
    await until(() => !!alice.last("RoomJoined") && !!bob.last("RoomJoined"), "rooms");
    const sam = c.connect();
    const watch = (code: string) => spectate(sam, code, "Sam");
    watch("ROOMAA");
    await until(() => alice.last("NewSpectatorJoined") !== undefined, "Sam watches A's room");
    watch("ROOMBB");
    await until(() => bob.last("NewSpectatorJoined") !== undefined, "Sam watches B's room");
    // As in one process: the old room's members see a voluntary leave; Sam is told nothing.
    await until(() => alice.last("SpectatorDisconnected") !== undefined, "the old room told");
    equal(alice.last("SpectatorDisconnected")!.data!.reason, "voluntary_leave");
    equal(sam.last("SpectatorLeft"), undefined);
    alice.say({ type: "GameData", data: { data: "A" } });
    bob.say({ type: "GameData", data: { data: "B" } });
    await until(() => sam.last("GameData")?.data?.data === "B", "B's data");
    await settle();
    deepEqual(
      sam.messages.filter((m) => m.type === "GameData").map((m) => m.data!.data),
      ["B"],
      "nothing from the room Sam left",
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a player of a room homed on its own node cannot also watch a room homed elsewhere (ALREADY_IN_ROOM, as in one process)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = cluster.nodes;
    const alice = a!.connect();
    const ann = a!.connect();
    const bob = b!.connect();
    join(alice, "Alice", "HOMEAA");
    join(bob, "Bob", "HOMEBB");
    await until(() => !!alice.last("RoomJoined") && !!bob.last("RoomJoined"), "rooms");
    join(ann, "Ann", "HOMEAA");
    await until(() => ann.last("RoomJoined") !== undefined, "Ann joins Alice's room");
    // Alice plays in a room homed on her own node and asks to watch Bob's room on B.
    alice.say({
      type: "JoinAsSpectator",
      data: { game_name: "orbit", room_code: "HOMEBB", spectator_name: "Alice" },
    });
    await until(() => alice.last("SpectatorJoinFailed") !== undefined, "refused");
    deepEqual(alice.last("SpectatorJoinFailed")!.data, {
      reason: "Already in a room",
      error_code: "ALREADY_IN_ROOM",
    });
    await settle(20);
    equal(bob.last("NewSpectatorJoined"), undefined, "Bob's room got no spectator");
    // Alice still plays in her room: her game data reaches Ann, not Bob.
    alice.say({ type: "GameData", data: { data: "still here" } });
    await until(() => ann.last("GameData")?.data?.data === "still here", "relay to Ann");
    await settle(20);
    equal(bob.last("GameData"), undefined);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a member of a room homed on its own node cannot Reconnect into a seat homed elsewhere (ALREADY_IN_ROOM, as in one process)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = cluster.nodes;
    const alice = a!.connect();
    const sam = a!.connect();
    const bob = b!.connect();
    join(alice, "Alice", "HOMEAA");
    join(bob, "Bob", "HOMEBB");
    await until(() => !!alice.last("RoomJoined") && !!bob.last("RoomJoined"), "rooms");
    sam.say({
      type: "JoinAsSpectator",
      data: { game_name: "orbit", room_code: "HOMEAA", spectator_name: "Sam" },
    });
    await until(() => sam.last("SpectatorJoined") !== undefined, "Sam watches Alice's room");
    const seat = bob.last("RoomJoined")!.data!;
    const takeOver = reconnectFor(seat);
    // A player and a spectator of a room homed on A present Bob's seat (homed on B).
    for (const member of [alice, sam]) {
      member.say(takeOver);
      await until(() => member.last("ReconnectionFailed") !== undefined, "refused");
      deepEqual(member.last("ReconnectionFailed")!.data, {
        reason: "Already in a room",
        error_code: "ALREADY_IN_ROOM",
      });
    }
    await settle(20);
    // Bob keeps his seat and his connection.
    equal(bob.closed, undefined);
    equal(alice.last("Reconnected"), undefined);
    equal(sam.last("Reconnected"), undefined);
  } finally {
    await cluster.close();
  }
});

/**
 * Peter's room WATCHB on B (the second node) is watched by Sam through A (the first); Xena's seat
 * `seatCode` on `seatNode` is held. B closes WATCHB with its envelopes to A 30 ms late, so A still
 * holds Sam bound to B when Sam presents Xena's seat (`Reconnect`). Resolves with Sam, who has an
 * answer by then, and Xena; the late envelopes are over.
 */
async function reconnectAsWatchedRoomCloses(
  cluster: TestCluster,
  seatNode: TestNode,
  seatCode: string,
): Promise<{ sam: TestClient; xena: TestClient }> {
  const [a, b] = cluster.nodes as [TestNode, TestNode];
  await joined(b, "Peter", "WATCHB");
  const xena = await joined(seatNode, "Xena", seatCode);
  const seat = xena.last("RoomJoined")!.data!;
  seatNode.edge.disconnect(xena.id, Date.now());
  await until(() => seatNode.engine.seatHeld(xena.id), "Xena's seat held");
  const sam = a.connect();
  spectate(sam, "WATCHB", "Sam");
  await until(() => sam.last("SpectatorJoined") !== undefined, "Sam watches Peter's room");
  cluster.network.fault = (from, to) =>
    from === b.name && to === a.name ? { lateMs: 30 } : "deliver";
  try {
    b.edge.command({
      kind: "room",
      command: { kind: "close", gameName: "orbit", roomCode: "WATCHB" },
    }, Date.now());
    sam.say(reconnectFor(seat));
    await until(
      () => sam.last("Reconnected") !== undefined || sam.last("ReconnectionFailed") !== undefined,
      "an answer",
    );
  } finally {
    cluster.network.fault = undefined;
  }
  return { sam, xena };
}

Deno.test("Cluster (twins): a spectator whose room elsewhere closes while its Reconnect goes to that room's home gets the seat it names, as one process gives it: the old home answers MISS, not its own verdict on a room it never homed (docs/spec/SERVER.md §8.4.4)", async () => {
  const cluster = await testCluster({ engine: { enableReconnection: true } });
  const [, , c] = threeNodes(cluster);
  try {
    // Xena's seat is on C: Sam's request goes to B as its member's.
    const { sam, xena } = await reconnectAsWatchedRoomCloses(cluster, c, "SEATCC");
    // One process: the room closed first, so Sam is in no room and resumes the seat.
    deepEqual(sam.types(), ["SpectatorJoined", "SpectatorLeft", "Reconnected"]);
    equal(sam.last("Reconnected")!.data!.player_id, xena.id);
    equal(c.engine.seatConnection(xena.id), sam.id);
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a spectator of a room homed elsewhere switches to a room homed on its own node; the old room lets it go", async () => {
  const cluster = await testCluster();
  try {
    const { a, alice, bob } = await twoRooms(cluster);
    const sam = a.connect();
    const watch = (code: string) => spectate(sam, code, "Sam");
    watch("HOMEBB");
    await until(() => bob.last("NewSpectatorJoined") !== undefined, "Sam watches Bob's room");
    watch("HOMEAA");
    await until(() => alice.last("NewSpectatorJoined") !== undefined, "Sam watches Alice's room");
    // As in one process: the old room's members see a voluntary leave; Sam is told nothing.
    await until(() => bob.last("SpectatorDisconnected") !== undefined, "the old room told");
    equal(bob.last("SpectatorDisconnected")!.data!.reason, "voluntary_leave");
    equal(sam.last("SpectatorLeft"), undefined);
    // Sam's input now goes to the room he watches: a spectator there.
    sam.say({ type: "AuthorityRequest", data: { become_authority: true } });
    await until(() => sam.last("Error") !== undefined, "spectators cannot");
    equal(sam.last("Error")!.data!.error_code, "SPECTATOR_NOT_ALLOWED");
    bob.say({ type: "GameData", data: { data: "B" } });
    alice.say({ type: "GameData", data: { data: "A" } });
    await until(() => sam.last("GameData")?.data?.data === "A", "Alice's data");
    await settle(20);
    deepEqual(
      sam.messages.filter((m) => m.type === "GameData").map((m) => m.data!.data),
      ["A"],
      "nothing from the room Sam left",
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a spectator of a room homed on its own node switches to a room homed elsewhere, and the answer arrives in one run with game data of its old room: nothing of the old room reaches it after its SpectatorJoined (docs/spec/SERVER.md §8.4.2 BOUND)", async () => {
  const cluster = await testCluster({ heartbeatMs: 10_000 });
  try {
    const { a, b, alice, bob } = await twoRooms(cluster);
    // Pat plays in Alice's room (homed on A) through B.
    const pat = b.connect();
    join(pat, "Pat", "HOMEAA");
    await until(() => !!pat.last("RoomJoined"), "Pat joins");
    const sam = a.connect();
    const watch = (code: string) => spectate(sam, code, "Sam");
    watch("HOMEAA");
    await until(() => !!sam.last("SpectatorJoined"), "Sam watches Alice's room");
    // From now on, B's envelopes to A arrive together at one time, as several messages read
    // from Redis in one chunk are handled in one run: the answer to Sam's switch, then Pat's
    // game data for the room Sam leaves.
    const release = Date.now() + 150;
    cluster.network.fault = (from, to) =>
      from === b.name && to === a.name ? { lateMs: Math.max(0, release - Date.now()) } : "deliver";
    watch("HOMEBB");
    await until(() => bob.last("NewSpectatorJoined") !== undefined, "B seats Sam");
    pat.say({ type: "GameData", data: { data: "old room" } });
    await until(() => alice.last("GameData") !== undefined, "Pat's data reaches Alice");
    await settle(20);
    const after = sam.messages.findIndex((m) =>
      m.type === "SpectatorJoined" && m.data!.room_code === "HOMEBB"
    );
    ok(after > 0, sam.types().join());
    deepEqual(
      sam.messages.slice(after + 1).map((m) => m.type),
      [],
      "nothing of Alice's room after the answer",
    );
    equal(alice.last("SpectatorDisconnected")!.data!.reason, "voluntary_leave");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a spectator of a room homed on another node switches to a room homed on a third, and the answer arrives in one run with game data of its old room: nothing of the old room reaches it after its SpectatorJoined (docs/spec/SERVER.md §8.4.2 BOUND)", async () => {
  const cluster = await testCluster({ heartbeatMs: 10_000 });
  try {
    const [a, b, c] = threeNodes(cluster);
    const bob = b.connect();
    const carol = c.connect();
    join(bob, "Bob", "HOMEBB");
    join(carol, "Carol", "HOMECC");
    await until(() => !!bob.last("RoomJoined") && !!carol.last("RoomJoined"), "rooms");
    const sam = a.connect();
    const watch = (code: string) => spectate(sam, code, "Sam");
    watch("HOMEBB");
    await until(() => !!sam.last("SpectatorJoined"), "Sam watches Bob's room");
    // C's answer to Sam's switch (after B's MISS: the room is not B's), then Bob's game data,
    // arrive at A together at one time, read from one subscriber connection in one chunk.
    const release = Date.now() + 500;
    const late = new Set([c.name]);
    cluster.network.fault = (from, to) =>
      to === a.name && late.has(from)
        ? { lateMs: Math.max(0, release - Date.now()), oneStream: true }
        : "deliver";
    watch("HOMECC");
    await until(() => carol.last("NewSpectatorJoined") !== undefined, "C seats Sam");
    late.add(b.name);
    bob.say({ type: "GameData", data: { data: "old room" } });
    ok(Date.now() < release - 100, "Bob's data is sent well before the release");
    await until(() => !!sam.messages.find((m) => m.data?.room_code === "HOMECC"), "the answer");
    await settle(20);
    const after = sam.messages.findIndex((m) =>
      m.type === "SpectatorJoined" && m.data!.room_code === "HOMECC"
    );
    deepEqual(
      sam.messages.slice(after + 1).map((m) => m.type),
      [],
      "nothing of Bob's room after the answer",
    );
    await until(() => bob.last("SpectatorDisconnected") !== undefined, "the old room told");
    equal(bob.last("SpectatorDisconnected")!.data!.reason, "voluntary_leave");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a member of a room homed elsewhere draws a token for each JoinRoom, JoinAsSpectator and Reconnect, as one process does (docs/spec/PROTOCOL.md §7.2.1 step 1)", async () => {
  const cluster = await testCluster({
    store: {
      buckets: {
        creation: { capacity: 10, windowMs: 60_000 },
        join: { capacity: 3, windowMs: 60_000 },
        reconnect: { capacity: 1, windowMs: 60_000 },
        auth_failure: { capacity: 10, windowMs: 60_000 },
      },
    },
  });
  try {
    const [a, b] = cluster.nodes;
    const alice = a!.connect("10.0.0.1");
    join(alice, "Alice", "HOMEAA");
    await until(() => !!alice.last("RoomJoined"), "Alice's room");
    // Bob joins through B (one join token), then asks twice more while in the room.
    const bob = b!.connect("10.0.0.2");
    join(bob, "Bob", "HOMEAA");
    await until(() => !!bob.last("RoomJoined"), "Bob in Alice's room");
    const failures = () =>
      bob.messages.filter((m) => m.type.endsWith("Failed")).map((m) => m.data!.error_code);
    join(bob, "Bob", "HOMEAA");
    await until(() => failures().length === 1, "the second JoinRoom answered");
    bob.say({
      type: "JoinAsSpectator",
      data: { game_name: "orbit", room_code: "HOMEAA", spectator_name: "Bob" },
    });
    await until(() => failures().length === 2, "JoinAsSpectator answered");
    // The join bucket (3) is empty now: the home is not asked again.
    join(bob, "Bob", "HOMEAA");
    await until(() => failures().length === 3, "the third JoinRoom answered");
    // The reconnect bucket (1): "Already in a room" once, then the limit.
    const seat = bob.last("RoomJoined")!.data!;
    const reconnect = {
      type: "Reconnect",
      data: {
        player_id: seat.player_id,
        room_id: seat.room_id,
        auth_token: seat.reconnection_token,
      },
    };
    bob.say(reconnect);
    await until(() => failures().length === 4, "the first Reconnect answered");
    bob.say(reconnect);
    await until(() => failures().length === 5, "the second Reconnect answered");
    deepEqual(failures(), [
      "ALREADY_IN_ROOM",
      "ALREADY_IN_ROOM",
      "RATE_LIMIT_EXCEEDED",
      "ALREADY_IN_ROOM",
      "RATE_LIMIT_EXCEEDED",
    ]);
    // Alice's address kept its own buckets.
    const carol = a!.connect("10.0.0.1");
    join(carol, "Carol", "HOMEAA");
    await until(() => !!carol.last("RoomJoined"), "Carol joins from Alice's address");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a creation refused for its max_players claims no code; one the engine refuses after the claim (maintenance) releases it (docs/spec/SERVER.md §8.3, §8.4.3)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = cluster.nodes;
    const ben = b!.connect();
    ben.say({
      type: "JoinRoom",
      data: { game_name: "orbit", player_name: "Ben", room_code: "PHANTO", max_players: 101 },
    });
    await until(() => !!ben.last("RoomJoinFailed"), "Ben refused");
    equal(ben.last("RoomJoinFailed")!.data!.error_code, "INVALID_INPUT");
    // Maintenance mode refuses creations in the engine, after the resolver's claim.
    b!.engine.maintenance = true;
    join(ben, "Ben", "MAINTE");
    await until(() => ben.messages.filter((m) => m.type === "RoomJoinFailed").length === 2, "2nd");
    equal(ben.last("RoomJoinFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    await settle(20);
    equal(
      await cluster.store.lookup("orbit", "PHANTO"),
      undefined,
      "no entry for a room never made",
    );
    equal(await cluster.store.lookup("orbit", "MAINTE"), undefined, "nor in maintenance");
    // So the code is free: Alice creates it through A at once, homed there.
    const alice = a!.connect();
    join(alice, "Alice", "PHANTO");
    await settle(20);
    equal(alice.last("RoomJoined")?.data?.room_code, "PHANTO", "created without waiting");
    equal((await cluster.store.lookup("orbit", "PHANTO"))?.home, a!.name);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): server.max_rooms counts the rooms homed on each node; a creation it refuses after the claim leaves the code free", async () => {
  const cluster = await testCluster({ engine: { maxRooms: 1 } });
  try {
    const [a, b] = cluster.nodes;
    const alice = a!.connect();
    join(alice, "Alice", "FIRSTA");
    await until(() => !!alice.last("RoomJoined"), "Alice's room on A");
    const ben = a!.connect();
    join(ben, "Ben", "SECOND");
    await until(() => !!ben.last("RoomJoinFailed"), "Ben refused on A");
    deepEqual(ben.last("RoomJoinFailed")!.data, {
      reason: "The server already has 1 rooms (limit 1)",
      error_code: "MAX_ROOMS_PER_GAME_EXCEEDED",
    });
    await settle(20);
    equal(await cluster.store.lookup("orbit", "SECOND"), undefined, "its claim released");
    // B homes rooms of its own: the code is free there.
    const carol = b!.connect();
    join(carol, "Carol", "SECOND");
    await until(() => !!carol.last("RoomJoined"), "Carol's room on B");
    equal((await cluster.store.lookup("orbit", "SECOND"))?.home, b!.name);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): Reconnect for a room that is gone is answered by the node that homed it, through any node, as one process answers; the directory answers once that node is gone (docs/spec/SERVER.md §8.4.3)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = cluster.nodes;
    const alice = a!.connect();
    join(alice, "Alice", "GONEAA");
    await until(() => !!alice.last("RoomJoined"), "Alice's room");
    const bob = c!.connect();
    join(bob, "Bob", "GONEAA");
    await until(() => !!bob.last("RoomJoined"), "Bob joined through C");
    const aliceSeat = alice.last("RoomJoined")!.data!;
    const bobSeat = bob.last("RoomJoined")!.data!;
    alice.say({ type: "LeaveRoom" });
    await until(() => !!alice.last("RoomLeft"), "Alice left");
    // The operator closes the room with Bob still in it.
    const closed = await b!.edge.command({
      kind: "room",
      command: { kind: "close", gameName: "orbit", roomCode: "GONEAA" },
    }, Date.now());
    equal(closed?.ok, true);
    await until(() => !!bob.last("RoomLeft") || !!bob.last("Error"), "Bob told");
    await settle(20);
    equal(await cluster.store.lookup("orbit", "GONEAA"), undefined, "its entry released");
    const answer = async (through: TestNode, seat: Record<string, unknown>, what: string) => {
      const client = through.connect();
      client.say(reconnectFor(seat));
      await until(() => !!client.last("ReconnectionFailed"), what);
      return client.last("ReconnectionFailed")!.data!;
    };
    // Alice gave her token up (LeaveRoom): check 2 fails before check 4, on A as in one
    // process, and through B and C, which ask A.
    for (const node of [a!, b!, c!]) {
      equal(
        (await answer(node, aliceSeat, `Alice through ${node.name}`)).error_code,
        "RECONNECTION_TOKEN_INVALID",
        `Alice through ${node.name}`,
      );
    }
    // Bob's token is still his: check 4 answers, through every node.
    for (const node of [a!, b!, c!]) {
      const failed = await answer(node, bobSeat, `Bob through ${node.name}`);
      equal(failed.error_code, "RECONNECTION_FAILED", `Bob through ${node.name}`);
      equal(failed.reason, "Room no longer exists");
    }
    // A gone (its instance key expired): only the directory is left to answer, check 4.
    cluster.store.expire((key) => key === `instance:${a!.name}`);
    const failed = await answer(b!, aliceSeat, "Alice through B, A gone");
    equal(failed.error_code, "RECONNECTION_FAILED");
    equal(failed.reason, "Room no longer exists");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): maintenance mode set through one node refuses new rooms through every node at once, joins go on, and turning it off through another frees creation at once (docs/spec/EXTENSIONS.md E12)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = cluster.nodes;
    const alice = a!.connect();
    join(alice, "Alice", "OPENAA");
    await until(() => !!alice.last("RoomJoined"), "Alice's room");
    await a!.cluster.setMaintenance(true);
    const refused = (client: TestClient) => client.last("RoomJoinFailed")?.data;
    // A code nobody holds, through B; a generated code, through C: refused before any claim.
    const bob = b!.connect("10.0.0.2");
    join(bob, "Bob", "NEWBBB");
    const carol = c!.connect("10.0.0.3");
    join(carol, "Carol");
    await until(() => !!refused(bob) && !!refused(carol), "both refused");
    for (const client of [bob, carol]) {
      deepEqual(refused(client), {
        reason: "Server is in maintenance",
        error_code: "SERVICE_UNAVAILABLE",
      });
    }
    equal(await cluster.store.lookup("orbit", "NEWBBB"), undefined, "no claim");
    // Joining a room that exists goes on, through a node that is not its home.
    const dave = c!.connect("10.0.0.4");
    join(dave, "Dave", "OPENAA");
    await until(() => !!dave.last("RoomJoined"), "Dave joined");
    // Every node reads the mode at its refresh (status, console).
    await b!.cluster.refresh();
    equal(b!.cluster.maintenance, true);
    equal(await c!.cluster.readMaintenance(), true);
    // Off through C: B creates at once, without waiting for a refresh.
    await c!.cluster.setMaintenance(false);
    join(bob, "Bob", "NEWBBB");
    await until(() => !!bob.last("RoomJoined"), "Bob's room");
    equal(bob.last("RoomJoined")!.data!.room_code, "NEWBBB");
    equal(b!.cluster.maintenance, true, "B has not refreshed: creation did not wait for it");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a JoinRoom by a free code refused in maintenance mode draws no creation token, as in one process (docs/spec/PROTOCOL.md §7.2.1)", async () => {
  // One creation per address per minute.
  const cluster = await testCluster({
    store: {
      buckets: {
        creation: { capacity: 1, windowMs: 60_000 },
        join: { capacity: 100, windowMs: 60_000 },
        reconnect: { capacity: 100, windowMs: 60_000 },
        auth_failure: { capacity: 100, windowMs: 60_000 },
      },
    },
  });
  try {
    const [a, b] = cluster.nodes;
    await a!.cluster.setMaintenance(true);
    const bob = b!.connect("10.0.0.2");
    join(bob, "Bob", "NEWBBB");
    await until(() => !!bob.last("RoomJoinFailed"), "refused");
    equal(bob.last("RoomJoinFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    await a!.cluster.setMaintenance(false);
    // The address's one creation token is still there.
    join(bob, "Bob", "NEWBBB");
    const failures = () => bob.types().filter((type) => type === "RoomJoinFailed").length;
    await until(() => !!bob.last("RoomJoined") || failures() === 2, "answered");
    equal(bob.last("RoomJoined")?.data?.room_code, "NEWBBB", JSON.stringify(bob.types()));
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): the operator's cluster totals sum every node's figures once (its own now, the others' from their liveness keys)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = cluster.nodes;
    const alice = a!.connect();
    join(alice, "Alice", "SUMSUM");
    await until(() => !!alice.last("RoomJoined"), "Alice's room");
    const bob = b!.connect();
    join(bob, "Bob", "SUMSUM");
    const carol = c!.connect();
    carol.say({
      type: "JoinAsSpectator",
      data: { game_name: "orbit", room_code: "SUMSUM", spectator_name: "Carol" },
    });
    c!.connect(); // a connection in no room
    await until(() => !!bob.last("RoomJoined") && !!carol.last("SpectatorJoined"), "joined");
    // Every node writes its figures, then every node reads the others'.
    for (const node of cluster.nodes) await node.cluster.refresh();
    for (const node of cluster.nodes) await node.cluster.refresh();
    const expected = { instances: 3, connections: 4, rooms: 1, players: 2, spectators: 1 };
    for (const node of cluster.nodes) deepEqual(node.cluster.totals(), expected, node.name);
    // The node's own figures are live; the others' wait for their next refresh.
    bob.say({ type: "LeaveRoom" });
    await until(() => !!bob.last("RoomLeft"), "Bob left");
    equal(a!.cluster.totals().players, 1, "A homes the room: its own count is current");
    equal(b!.cluster.totals().players, 2, "B reads A's count from A's last refresh");
    await a!.cluster.refresh();
    await b!.cluster.refresh();
    equal(b!.cluster.totals().players, 1);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): the operator's counts per game sum every node's instance-games key once, and count a node that writes none from the directory's entries", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = cluster.nodes;
    // Orbit: a room homed on A (Alice, Bob from B, Carol watching from C) and one on C (Dave).
    const alice = await joined(a!, "Alice", "GAMEAA");
    await joined(b!, "Bob", "GAMEAA");
    const carol = c!.connect();
    carol.say({
      type: "JoinAsSpectator",
      data: { game_name: "orbit", room_code: "GAMEAA", spectator_name: "Carol" },
    });
    await until(() => !!carol.last("SpectatorJoined"), "Carol watches");
    await joined(c!, "Dave", "GAMECC");
    // Chess: a room homed on B.
    const erin = b!.connect();
    erin.say({
      type: "JoinRoom",
      data: { game_name: "chess", player_name: "Erin", max_players: 2, room_code: "GAMEBB" },
    });
    await until(() => !!erin.last("RoomJoined"), "Erin's room");
    const expected = {
      games: [
        { game_name: "chess", rooms: 1, players: 1, spectators: 0 },
        { game_name: "orbit", rooms: 2, players: 3, spectators: 1 },
      ],
    };
    // Every node writes its counts, then every node learns the others' names.
    for (const node of cluster.nodes) await node.cluster.refresh();
    for (const node of cluster.nodes) await node.cluster.refresh();
    for (const node of cluster.nodes) deepEqual(await node.cluster.games(), expected, node.name);
    // The node's own counts are live; the others' wait for their next refresh.
    alice.say({ type: "LeaveRoom" });
    await until(() => !!alice.last("RoomLeft"), "Alice left");
    equal((await a!.cluster.games()).games[1]!.players, 2, "A homes the room: current");
    equal((await b!.cluster.games()).games[1]!.players, 3, "B reads A's last refresh");
    await a!.cluster.refresh();
    equal((await b!.cluster.games()).games[1]!.players, 2);
    // C runs a version that writes no counts (a rolling deploy): its rooms are counted from
    // the directory's entries that name it.
    c!.cluster.gameCounts = undefined;
    await cluster.store.deleteLiveness(c!.cluster.node);
    await c!.cluster.refresh();
    const partial = await a!.cluster.games();
    deepEqual(partial, {
      games: [
        { game_name: "chess", rooms: 1, players: 1, spectators: 0 },
        { game_name: "orbit", rooms: 2, players: 2, spectators: 1 },
      ],
    });
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a creation whose claim ran but whose answer was lost answers SERVICE_UNAVAILABLE and releases the claim, at once or once Redis answers again", async () => {
  const cluster = await testCluster();
  try {
    const [a] = cluster.nodes;
    // The claim runs in the store, then its answer is lost (a timeout after the fact).
    cluster.store.hold = (method) =>
      method === "claim" ? Promise.reject(new Error("answer lost")) : undefined;
    const alice = a!.connect("10.0.0.2");
    join(alice, "Alice", "LOSTAA");
    await until(() => !!alice.last("RoomJoinFailed"), "refused");
    equal(alice.last("RoomJoinFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    await settle(10);
    equal(await cluster.store.lookup("orbit", "LOSTAA"), undefined, "released at once");
    // Again, and Redis stops answering before the release can run: released when it answers.
    cluster.store.hold = (method) => {
      if (method !== "claim") return undefined;
      cluster.store.unreachable = true;
      return Promise.reject(new Error("answer lost"));
    };
    join(alice, "Alice", "LOSTBB");
    await until(
      () => alice.messages.filter((m) => m.type === "RoomJoinFailed").length === 2,
      "refused again",
    );
    await settle(10);
    cluster.store.hold = undefined;
    cluster.store.unreachable = false;
    const held = (await cluster.store.lookup("orbit", "LOSTBB"))?.roomCode;
    equal(held, "LOSTBB", "still held while Redis did not answer");
    await settle(10);
    equal(await cluster.store.lookup("orbit", "LOSTBB"), undefined, "released once it answered");
    // The codes are free: Alice creates one of them now.
    join(alice, "Alice", "LOSTBB");
    await until(() => !!alice.last("RoomJoined"), "created");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a member's JoinRoom whose home lets it go while its token is drawn is resolved through the directory, not created unclaimed", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = cluster.nodes;
    const alice = a!.connect();
    join(alice, "Alice", "HOMEAA");
    const dave = c!.connect();
    join(dave, "Dave", "DAVEDD");
    await until(() => !!alice.last("RoomJoined") && !!dave.last("RoomJoined"), "two rooms");
    const bob = b!.connect();
    join(bob, "Bob", "HOMEAA");
    await until(() => !!bob.last("RoomJoined"), "Bob in Alice's room (homed on A)");
    // Bob asks for Dave's room; while his join token is drawn, the operator closes Alice's
    // room, so A lets Bob go (UNBIND) before the answer comes back.
    const drawn = gate();
    cluster.store.hold = (method) => method === "take" ? drawn.wait : undefined;
    join(bob, "Bob", "DAVEDD");
    await settle(5);
    cluster.store.hold = undefined;
    const closed = await a!.edge.command({
      kind: "room",
      command: { kind: "close", gameName: "orbit", roomCode: "HOMEAA" },
    }, Date.now());
    equal(closed?.ok, true);
    await until(() => !!bob.last("RoomLeft"), "Bob let go");
    drawn.open();
    // Bob joins Dave's room on C (the directory's), not a second DAVEDD made on B unclaimed.
    await until(() => bob.messages.filter((m) => m.type === "RoomJoined").length === 2, "joined");
    await until(() => !!dave.last("PlayerJoined"), "Dave sees Bob");
    equal(bob.last("RoomJoined")!.data!.room_id, dave.last("RoomJoined")!.data!.room_id);
    equal(b!.engine.lookup("orbit", "DAVEDD"), undefined, "no room DAVEDD on B");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a connection keeps the player id it adopted by Reconnect in rooms homed on other nodes (docs/spec/PROTOCOL.md §1.2)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = cluster.nodes;
    const alice = a!.connect();
    const bob = b!.connect();
    const cy = c!.connect();
    join(alice, "Alice", "HOMEAA");
    join(bob, "Bob", "HOMEBB");
    join(cy, "Cy", "HOMECC");
    await until(
      () => !!alice.last("RoomJoined") && !!bob.last("RoomJoined") && !!cy.last("RoomJoined"),
      "rooms",
    );
    const seat = bob.last("RoomJoined")!.data!;
    // Carol, on A, takes over Bob's seat in the room homed on B, then leaves it.
    const carol = a!.connect();
    carol.say(reconnectFor(seat));
    await until(() => carol.last("Reconnected") !== undefined, "Reconnected");
    equal(carol.last("Reconnected")!.data!.player_id, seat.player_id);
    carol.say({ type: "LeaveRoom" });
    await until(() => carol.last("RoomLeft") !== undefined, "left");
    // As in one process, the adopted id is Carol's in the rooms she joins next: one homed on C,
    // then one homed on her own node.
    join(carol, "Carol", "HOMECC");
    await until(() => carol.last("RoomJoined") !== undefined, "joined C's room");
    equal(carol.last("RoomJoined")!.data!.player_id, seat.player_id);
    await until(() => cy.last("PlayerJoined") !== undefined, "Cy told");
    equal((cy.last("PlayerJoined")!.data!.player as { id: string }).id, seat.player_id);
    cy.say({ type: "GameData", data: { data: "to Carol", to_player: seat.player_id } });
    await until(() => carol.last("GameData")?.data?.data === "to Carol", "targeted data");
    carol.say({ type: "LeaveRoom" });
    await until(() => carol.types().filter((t) => t === "RoomLeft").length === 2, "left C's");
    join(carol, "Carol", "HOMEAA");
    await until(() => alice.last("PlayerJoined") !== undefined, "joined A's room");
    equal((alice.last("PlayerJoined")!.data!.player as { id: string }).id, seat.player_id);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a connection that opted in to presence events gets PlayerDisconnected from a room homed on another node (docs/spec/EXTENSIONS.md E10)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = cluster.nodes;
    const bob = b!.connect();
    join(bob, "Bob", "HOMEBB");
    await until(() => bob.last("RoomJoined") !== undefined, "room");
    const pat = a!.connect();
    pat.say({ type: "Authenticate", data: { app_id: "orbit", features: ["presence-events"] } });
    await until(() => pat.last("Authenticated") !== undefined, "Authenticated");
    deepEqual(pat.last("Authenticated")!.data!.features, ["presence-events"]);
    join(pat, "Pat", "HOMEBB");
    await until(() => pat.last("RoomJoined") !== undefined, "Pat joins Bob's room");
    b!.edge.disconnect(bob.id, Date.now());
    await until(() => pat.last("PlayerDisconnected") !== undefined, "PlayerDisconnected");
    equal(pat.last("PlayerDisconnected")!.data!.player_id, bob.last("RoomJoined")!.data!.player_id);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a member that authenticates with presence events after joining a room homed on another node gets PlayerDisconnected, as a member on the home does (docs/spec/EXTENSIONS.md E10, docs/spec/PROTOCOL.md §7.1.2)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = cluster.nodes as [TestNode, TestNode];
    const bob = await joined(b, "Bob", "HOMEBB");
    // Pat through A and Carl on the home both join first and opt in afterwards (auth is off, so
    // Authenticate may come at any time, also after joining).
    const pat = a.connect();
    const carl = b.connect();
    for (const [client, name] of [[pat, "Pat"], [carl, "Carl"]] as const) {
      join(client, name, "HOMEBB");
      await until(() => client.last("RoomJoined") !== undefined, `${name} joins`);
      client.say({
        type: "Authenticate",
        data: { app_id: "orbit", features: ["presence-events"] },
      });
      await until(() => client.last("Authenticated") !== undefined, `${name}'s Authenticated`);
      deepEqual(client.last("Authenticated")!.data!.features, ["presence-events"]);
      // A frame behind the Authenticate reaches the home after it: the home has heard of it.
      client.say({ type: "GameData", data: { data: name } });
      await until(() => bob.last("GameData")?.data?.data === name, `${name}'s frame`);
    }
    // A spectator through A too: a frame behind its Authenticate (refused by the home) shows
    // the home heard of it.
    const sam = a.connect();
    sam.say({
      type: "JoinAsSpectator",
      data: { game_name: "orbit", room_code: "HOMEBB", spectator_name: "Sam" },
    });
    await until(() => sam.last("SpectatorJoined") !== undefined, "Sam watches");
    sam.say({ type: "Authenticate", data: { app_id: "orbit", features: ["presence-events"] } });
    sam.say({ type: "GameData", data: { data: "Sam" } });
    await until(() => sam.last("Error") !== undefined, "Sam's frame refused by the home");
    b.edge.disconnect(bob.id, Date.now());
    await until(() => carl.last("PlayerDisconnected") !== undefined, "Carl is told");
    // Pat's answer, if any, came in the same turn as Carl's or before a frame that follows.
    carl.say({ type: "GameData", data: { data: "after" } });
    await until(() => pat.last("GameData")?.data?.data === "after", "Carl's frame reaches Pat");
    deepEqual(pat.last("PlayerDisconnected")?.data, carl.last("PlayerDisconnected")!.data);
    await until(() => sam.last("GameData")?.data?.data === "after", "Carl's frame reaches Sam");
    deepEqual(sam.last("PlayerDisconnected")?.data, carl.last("PlayerDisconnected")!.data);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a member that negotiates MessagePack after joining a room homed on another node gets binary game data as binary, as a member on the home does (docs/spec/PROTOCOL.md §7.1.2, §7.7)", async () => {
  const cluster = await testCluster({ engine: { messagePack: true } });
  try {
    const [a, b] = cluster.nodes as [TestNode, TestNode];
    const msgpack = {
      type: "Authenticate",
      data: { app_id: "orbit", game_data_format: "message_pack" },
    };
    const bob = b.connect();
    bob.say(msgpack);
    await until(() => bob.last("Authenticated") !== undefined, "Bob's Authenticated");
    join(bob, "Bob", "HOMEBB");
    await until(() => bob.last("RoomJoined") !== undefined, "room");
    const pat = a.connect();
    const carl = b.connect();
    for (const [client, name] of [[pat, "Pat"], [carl, "Carl"]] as const) {
      join(client, name, "HOMEBB");
      await until(() => client.last("RoomJoined") !== undefined, `${name} joins`);
      client.say(msgpack);
      await until(() => client.last("Authenticated") !== undefined, `${name}'s Authenticated`);
      // A frame behind the Authenticate reaches the home after it: the home has heard of it.
      client.say({ type: "GameData", data: { data: name } });
      await until(() => bob.last("GameData")?.data?.data === name, `${name}'s frame`);
    }
    b.edge.receive(bob.id, new Uint8Array([0x93, 1, 2, 3]), Date.now());
    /** Bob's frame as `client` got it: binary, or its JSON conversion. */
    const fromBob = (client: TestClient) =>
      client.messages.find((m) =>
        m.type === "binary" || (m.type === "GameData" && m.data?.from_player === bob.id)
      );
    await until(() => fromBob(carl) !== undefined, "Carl gets Bob's frame");
    equal(fromBob(carl)!.type, "binary", "binary on the home");
    await until(() => fromBob(pat) !== undefined, "Pat gets Bob's frame");
    deepEqual(fromBob(pat), fromBob(carl));
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a seat resumed through a third node gets the PlayerDisconnected buffered for it only when the resuming connection opted in (docs/spec/EXTENSIONS.md E10)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = threeNodes(cluster);
    const bob = await joined(b, "Bob", "HOMEBB");
    const seats: Record<string, unknown>[] = [];
    for (const name of ["Pat", "Quinn"]) {
      const player = a.connect();
      player.say({
        type: "Authenticate",
        data: { app_id: "orbit", features: ["presence-events"] },
      });
      await until(() => player.last("Authenticated") !== undefined, "Authenticated");
      join(player, name, "HOMEBB");
      await until(() => player.last("RoomJoined") !== undefined, `${name} joins`);
      seats.push(player.last("RoomJoined")!.data!);
    }
    // Pat's seat is held, then Quinn's, then Bob's: presence events go into both replay buffers.
    a.edge.disconnect(seats[0]!.player_id as string, Date.now());
    await until(() => b.engine.stats().heldSeats === 1, "Pat held");
    a.edge.disconnect(seats[1]!.player_id as string, Date.now());
    await until(() => b.engine.stats().heldSeats === 2, "Quinn held");
    b.edge.disconnect(bob.id, Date.now());
    await until(() => b.engine.stats().heldSeats === 3, "Bob held");
    const missed = (client: TestClient) =>
      (client.last("Reconnected")!.data!.missed_events as { type: string }[]).map((m) => m.type);
    // Pat comes back through C on a connection that did not opt in: not told, as in one process.
    const plain = c.connect();
    plain.say(reconnectFor(seats[0]!));
    await until(() => plain.last("Reconnected") !== undefined, "Pat's Reconnected");
    deepEqual(missed(plain), []);
    // Quinn's seat, resumed through C by a connection that opted in, gets what was buffered.
    const opted = c.connect();
    opted.say({ type: "Authenticate", data: { app_id: "orbit", features: ["presence-events"] } });
    await until(() => opted.last("Authenticated") !== undefined, "Authenticated");
    opted.say(reconnectFor(seats[1]!));
    await until(() => opted.last("Reconnected") !== undefined, "Quinn's Reconnected");
    deepEqual(missed(opted), ["PlayerDisconnected", "PlayerReconnected"]);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): with authentication required, a connection that has not authenticated cannot join, watch or reconnect into a room homed on another node", async () => {
  const cluster = await testCluster({
    engine: {
      auth: {
        required: true,
        apps: [{ appId: "app-a", appName: "A" }],
        timeoutMs: 60_000,
        enforceSdkGate: false,
      },
    },
  });
  try {
    const [a, b] = cluster.nodes;
    const bob = b!.connect();
    bob.say({ type: "Authenticate", data: { app_id: "app-a" } });
    await until(() => bob.last("Authenticated") !== undefined, "Bob authenticated");
    join(bob, "Bob", "HOMEBB");
    await until(() => bob.last("RoomJoined") !== undefined, "Bob's room");
    const seat = bob.last("RoomJoined")!.data!;
    const requests = [
      { type: "JoinRoom", data: { game_name: "orbit", player_name: "Eve", room_code: "HOMEBB" } },
      {
        type: "JoinAsSpectator",
        data: { game_name: "orbit", room_code: "HOMEBB", spectator_name: "Eve" },
      },
      reconnectFor(seat),
    ];
    // Each request from a fresh connection on A that skipped Authenticate: as in one process,
    // `Error` AUTHENTICATION_REQUIRED and close 1008, and Bob's room never sees it.
    for (const request of requests) {
      const eve = a!.connect();
      eve.say(request);
      await until(() => eve.closed !== undefined, `${request.type} refused`);
      equal(eve.closed, 1008);
      deepEqual(eve.types(), ["Error"]);
      equal(eve.last("Error")!.data!.error_code, "AUTHENTICATION_REQUIRED");
    }
    await settle(20);
    deepEqual(bob.types(), ["Authenticated", "ProtocolInfo", "RoomJoined"]);
    equal(bob.closed, undefined);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): an app's rate_limit_per_minute bucket is one for the cluster, taken only after its secret is proved (docs/spec/SERVER.md §3.3)", async () => {
  const cluster = await testCluster({
    globalAuthBudgets: true,
    engine: {
      auth: {
        required: true,
        apps: [{ appId: "app-a", appName: "A", appSecret: "sesame", rateLimitPerMinute: 2 }],
        timeoutMs: 60_000,
        enforceSdkGate: false,
      },
    },
  });
  try {
    const [a, b] = cluster.nodes;
    const authenticate = async (node: TestNode, secret: string) => {
      const client = node.connect();
      client.say({ type: "Authenticate", data: { app_id: "app-a", app_secret: secret } });
      await until(
        () =>
          client.last("Authenticated") !== undefined ||
          client.last("AuthenticationError") !== undefined,
        "an answer to Authenticate",
      );
      return client.last("AuthenticationError")?.data?.error_code ?? "Authenticated";
    };
    // Wrong secrets draw nothing from the app's bucket (they are charged to the address).
    equal(await authenticate(b!, "wrong"), "UNAUTHORIZED");
    equal(await authenticate(a!, "sesame"), "Authenticated");
    equal(await authenticate(a!, "sesame"), "Authenticated");
    // Before, each node had its own bucket: the third went through another node.
    equal(await authenticate(b!, "sesame"), "RATE_LIMIT_EXCEEDED");
    equal(await authenticate(a!, "sesame"), "RATE_LIMIT_EXCEEDED");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): 30 concurrent joins of one code over three nodes make exactly one room", async () => {
  const cluster = await testCluster({ engine: { defaultMaxPlayers: 100, maxPlayersLimit: 100 } });
  try {
    const clients: TestClient[] = [];
    for (let i = 0; i < 30; i++) {
      const client = cluster.nodes[i % 3]!.connect();
      clients.push(client);
      client.say({
        type: "JoinRoom",
        data: { game_name: "orbit", player_name: `P${i}`, room_code: "RACE01", max_players: 30 },
      });
    }
    await until(
      () => clients.every((c) => c.last("RoomJoined") || c.last("RoomJoinFailed")),
      "every answer",
    );
    const rooms = cluster.nodes.reduce((n, node) => n + node.engine.stats().rooms, 0);
    equal(rooms, 1);
    const ids = new Set(clients.map((c) => c.last("RoomJoined")?.data?.room_id));
    equal(ids.size, 1, "everyone is in the one room");
    equal(clients.filter((c) => c.last("RoomJoined")).length, 30);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a lost envelope closes only that pair's connections with 1012; Reconnect through another node resumes the seat", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = threeNodes(cluster);
    const alice = a.connect();
    join(alice, "Alice", "LOSS01");
    await until(() => alice.last("RoomJoined") !== undefined, "RoomJoined");
    const bob = b.connect();
    const carol = c.connect();
    join(bob, "Bob", "LOSS01");
    join(carol, "Carol", "LOSS01");
    await until(() => !!bob.last("RoomJoined") && !!carol.last("RoomJoined"), "joins");
    await settle();
    // Drop the next envelope from A to B: the one after it shows the gap.
    dropNextEnvelope(cluster.network, a.name, b.name);
    alice.say({ type: "GameData", data: { data: 1 } });
    alice.say({ type: "GameData", data: { data: 2 } });
    await until(() => bob.closed !== undefined, "Bob's resync close");
    equal(bob.closed, 1012);
    equal(carol.closed, undefined, "the A–C pair is untouched");
    await until(() => carol.messages.filter((m) => m.type === "GameData").length === 2, "Carol");
    // Bob reconnects through C: his held seat resumes, marked truncated.
    const joined = bob.last("RoomJoined")!.data!;
    const again = c.connect();
    again.say(reconnectFor(joined));
    await until(() => !!again.last("Reconnected") || !!again.last("ReconnectionFailed"), "answer");
    const reconnected = again.last("Reconnected");
    ok(reconnected, JSON.stringify(again.messages));
    equal(reconnected.data!.replay_truncated, true);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a resync that finds a member's own request pending at its home holds the seat (CLOSED{closed}, not an undo): the member's Reconnect resumes it and nobody is told it left (docs/spec/SERVER.md §8.5.2, §8.4.2 \"Timeout\")", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = threeNodes(cluster);
    const alice = await joined(a, "Alice", "LOSS02");
    const bob = await joined(b, "Bob", "LOSS02");
    await settle();
    // Bob's JoinRoom to his own home: A runs it ("Already in a room") and its answer is lost.
    const dropped = dropNextEnvelope(cluster.network, a.name, b.name);
    join(bob, "Bob", "LOSS02");
    await until(dropped, "A's answer sent (and lost)");
    // A's next envelope to B shows the gap: B resyncs the pair with the request pending.
    alice.say({ type: "GameData", data: { data: 1 } });
    await until(() => bob.closed !== undefined, "Bob's resync close");
    equal(bob.closed, 1012);
    await settle(10);
    equal(alice.last("PlayerLeft"), undefined, "the seat is held, not released");
    const again = c.connect();
    again.say(reconnectFor(bob.last("RoomJoined")!.data!));
    await until(() => !!again.last("Reconnected") || !!again.last("ReconnectionFailed"), "answer");
    ok(again.last("Reconnected"), JSON.stringify(again.messages));
    equal(alice.last("PlayerLeft"), undefined);
    equal(alice.last("PlayerReconnected")?.type, "PlayerReconnected");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): the common GameData path makes no store call", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = cluster.nodes;
    const alice = a!.connect();
    join(alice, "Alice", "FAST01");
    await until(() => alice.last("RoomJoined") !== undefined, "RoomJoined");
    const bob = b!.connect();
    join(bob, "Bob", "FAST01");
    await until(() => bob.last("RoomJoined") !== undefined, "Bob");
    await settle();
    const calls = cluster.store.calls;
    const published = cluster.network.published;
    for (let i = 0; i < 10; i++) bob.say({ type: "GameData", data: { data: i } });
    await until(() => alice.messages.filter((m) => m.type === "GameData").length === 10, "relay");
    equal(cluster.store.calls, calls, "no Redis call per frame");
    // One MSG per forwarded frame (B → A); Alice is local to the home: no OUT back.
    ok(cluster.network.published - published <= 10 + 2, "one publish per forwarded frame");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): GameData crossing an UNBIND comes back as BOUNCE and gets the single-instance treatment", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
    const alice = a.connect();
    join(alice, "Alice", "BNCE01");
    await until(() => alice.last("RoomJoined") !== undefined, "Alice");
    const bob = b.connect();
    join(bob, "Bob", "BNCE01");
    await until(() => bob.last("RoomJoined") !== undefined, "Bob");
    await settle();
    const bobId = bob.last("RoomJoined")!.data!.player_id as string;
    const bodies: string[] = [];
    cluster.network.fault = (from, to, bytes) => {
      for (const body of decodeBatch(bytes).bodies) {
        bodies.push(`${from === a.name ? "A" : "B"}>${to === a.name ? "A" : "B"}:${body.kind}`);
        if (body.kind === Kind.BOUNCE) equal(JSON.parse(body.frame as string).data.data.x, 1);
      }
      return "deliver";
    };
    // In one turn: the home removes Bob, and Bob's edge forwards his GameData (a DATA body)
    // before it has heard of the UNBIND. The home bounces it; the edge handles it as a single
    // instance would for a roomless connection (no answer, nobody else gets it).
    const reply = a.edge.command({
      kind: "room",
      command: { kind: "remove_player", gameName: "orbit", roomCode: "BNCE01", playerId: bobId },
    }, Date.now());
    bob.say({ type: "GameData", data: { data: { x: 1 } } });
    ok(await reply);
    await until(() => bodies.includes(`A>B:${Kind.BOUNCE}`), "the BOUNCE");
    ok(bodies.includes(`B>A:${Kind.DATA}`), bodies.join());
    bob.say({ type: "Ping" });
    await until(() => bob.last("Pong") !== undefined, "Pong");
    deepEqual(bob.types(), ["RoomJoined", "RoomLeft", "Pong"]);
    equal(alice.messages.filter((m) => m.type === "GameData").length, 0);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a room whose code the directory gives to another room gets no joins by code, even on its own home (docs/spec/SERVER.md §8.3, §8.4.3)", async () => {
  const cluster = await testCluster({ nodes: 2 });
  try {
    const [a, b] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
    const alice = a.connect();
    join(alice, "Alice");
    await until(() => alice.last("RoomJoined") !== undefined, "Alice's RoomJoined");
    const code = alice.last("RoomJoined")!.data!.room_code as string;
    // The directory loses A's entry (a pause longer than T); B creates a room under the code.
    cluster.store.expire((key) => key.startsWith("room:"));
    const bob = b.connect();
    join(bob, "Bob", code);
    await until(() => bob.last("RoomJoined") !== undefined, "Bob's RoomJoined");
    const owner = bob.last("RoomJoined")!.data!.room_id;
    ok(owner !== alice.last("RoomJoined")!.data!.room_id, "a second room under the code");
    await a.cluster.refresh();
    ok(a.cluster.isConflicted("orbit", code), "A's refresh found the conflict");
    // A join by code through A goes to the owner on B, not to A's own room.
    const carol = a.connect();
    join(carol, "Carol", code);
    await until(() => carol.last("RoomJoined") !== undefined, "Carol's RoomJoined");
    equal(carol.last("RoomJoined")!.data!.room_id, owner);
    equal(alice.types().includes("PlayerJoined"), false, "nobody joined A's room");
    // A's room closes: the next refresh forgets its conflict (no room here has that code).
    ok(a.engine.closeRoom("orbit", code, Date.now()));
    await a.cluster.refresh();
    equal(a.cluster.conflicts.size, 0, [...a.cluster.conflicts].join());
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): replay truncation is decided per connection — a frame in flight to a neighbour on the same edge does not mark a seat (docs/spec/SERVER.md §8.5.3)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = threeNodes(cluster);
    const alice = a.connect();
    join(alice, "Alice", "CONN01");
    await until(() => alice.last("RoomJoined") !== undefined, "RoomJoined");
    const bob = b.connect();
    const carol = b.connect();
    join(bob, "Bob", "CONN01");
    await until(() => !!bob.last("RoomJoined"), "Bob joined");
    join(carol, "Carol", "CONN01");
    await until(() => !!carol.last("RoomJoined") && !!bob.last("PlayerJoined"), "Carol joined");
    await settle();
    const reconnect = (joined: Record<string, unknown>) => {
      const again = c.connect();
      again.say(reconnectFor(joined));
      return again;
    };

    // A frame for Carol only is on its way to B when Bob's socket goes: the OUT carrying it is
    // past what B had handed Bob, but carries nothing for him.
    alice.say({ type: "GameData", data: { data: "for carol", to_player: carol.id } });
    b.edge.disconnect(bob.id, Date.now());
    const bobBack = reconnect(bob.last("RoomJoined")!.data!);
    await until(() => !!bobBack.last("Reconnected"), "Bob's Reconnected");
    equal(bobBack.last("Reconnected")!.data!.replay_truncated, false);
    equal(carol.last("GameData")!.data!.data, "for carol");

    // A frame for Carol herself in flight when her socket goes: her replay is truncated.
    alice.say({ type: "GameData", data: { data: "lost", to_player: carol.id } });
    b.edge.disconnect(carol.id, Date.now());
    const carolBack = reconnect(carol.last("RoomJoined")!.data!);
    await until(() => !!carolBack.last("Reconnected"), "Carol's Reconnected");
    equal(carolBack.last("Reconnected")!.data!.replay_truncated, true);
  } finally {
    await cluster.close();
  }
});

/**
 * Three twin nodes on a clock that moves only when the test says (heartbeats tick every 50 ms
 * of real time; a takeover's probe waits one period of real time), Alice on A homing room
 * `TAKE01`, and helpers for the takeover tests of docs/spec/SERVER.md §8.5.3.
 */
async function takeoverCluster() {
  let clock = Date.now();
  const cluster = await testCluster({ heartbeatMs: 50, now: () => clock });
  const [a, b, c] = threeNodes(cluster);
  const streams = a.cluster.router.streams;
  const alice = await joined(a, "Alice", "TAKE01", 8);
  return {
    cluster,
    a,
    b,
    c,
    alice,
    streams,
    /** A player on B, joined, its joining acknowledged to A. */
    seatedOnB: async (name: string) => {
      const client = b.connect();
      join(client, name, "TAKE01");
      await until(() => !!client.last("RoomJoined"), `${name} joined`);
      clock += 60; // a heartbeat period passes: B's heartbeat carries its ack
      await until(() => streams.acked(b.name) >= streams.lastSent(b.name), "B's ack");
      return client;
    },
    /** `client`'s seat taken over through `node`; its Reconnected's replay_truncated. */
    takeOver: async (client: TestClient, node: typeof a) => {
      const again = node.connect();
      again.say(reconnectFor(client.last("RoomJoined")!.data!));
      await until(() => !!again.last("Reconnected"), "Reconnected");
      return again.last("Reconnected")!.data!.replay_truncated;
    },
  };
}

Deno.test("Cluster (twins): a takeover of a connection on a live edge reports nothing missed, as one process, acknowledged or not (docs/spec/SERVER.md §8.5.3)", async () => {
  const { cluster, b, c, alice, streams, seatedOnB, takeOver } = await takeoverCluster();
  try {
    // Everything acknowledged: nothing to ask.
    const bob = await seatedOnB("Bob");
    equal(await takeOver(bob, c), false);
    await until(() => bob.closed === 4001, "Bob replaced");
    // A frame reaches Dave; B's acknowledgement of it is held back, then B's traffic flows again
    // but B sends nothing unasked (the clock stands still): the home asks B, which answers.
    const dave = await seatedOnB("Dave");
    cluster.network.fault = (from, to) => from === b.name && to !== b.name ? "drop" : "deliver";
    alice.say({ type: "GameData", data: { data: "delivered", to_player: dave.id } });
    await until(() => dave.last("GameData")?.data?.data === "delivered", "Dave's frame");
    ok(streams.acked(b.name) < streams.lastSent(b.name), "unacknowledged at A");
    cluster.network.fault = undefined;
    equal(await takeOver(dave, c), false);
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

for (const through of ["a third node", "the home"]) {
  Deno.test(`Cluster (twins): a takeover through ${through} right after the edge of the replaced connection was cut off, a frame to it lost, reports replay_truncated (docs/spec/SERVER.md §8.5.3)`, async () => {
    const { cluster, a, b, c, alice, seatedOnB, takeOver } = await takeoverCluster();
    try {
      const carol = await seatedOnB("Carol");
      cluster.network.fault = (from, to) => from === b.name || to === b.name ? "drop" : "deliver";
      alice.say({ type: "GameData", data: { data: "lost", to_player: carol.id } });
      await settle();
      // At once: B has been silent for less than one heartbeat period; it does not answer the
      // home's probe.
      equal(await takeOver(carol, through === "the home" ? a : c), true);
    } finally {
      cluster.network.fault = undefined;
      await cluster.close();
    }
  });
}

Deno.test("Cluster (twins): a takeover through the replaced connection's own edge, crossing a frame that edge then fails to hand (a slow consumer), reports replay_truncated, as one process (docs/spec/SERVER.md §8.5.3, §5.2)", async () => {
  const { cluster, a, b, alice, seatedOnB, takeOver } = await takeoverCluster();
  try {
    const bob = await seatedOnB("Bob");
    bob.stalled = true;
    // Alice's frame to Bob reaches B late; meanwhile Bob's new connection on B asks A for his
    // seat. B's request crosses the frame, and B closes the old connection (1013) when the frame
    // arrives: the frame is lost, and one process would have held the seat as truncated before
    // the takeover.
    cluster.network.fault = (from, to) =>
      from === a.name && to === b.name ? { lateMs: 40 } : "deliver";
    alice.say({ type: "GameData", data: { data: "lost", to_player: bob.id } });
    await settle(1);
    equal(await takeOver(bob, b), true);
    equal(bob.closed, 1013, "the old connection was a slow consumer");
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a takeover through the replaced connection's own edge, whose request that edge makes just before, in the same turn, it takes in a frame to the old connection and fails to hand it (a slow consumer), reports replay_truncated: the envelope carrying the request acknowledges only what the edge had taken in when it made it (docs/spec/SERVER.md §8.5.3, §5.2; found by the consistency test's MessagePack run, seed 1)", async () => {
  const { cluster, a, b, alice, seatedOnB } = await takeoverCluster();
  const handlers = cluster.network.subscriber(b.name)!;
  const streams = b.cluster.router.streams;
  const send = streams.send;
  try {
    const bob = await seatedOnB("Bob");
    bob.stalled = true;
    const again = b.connect();
    // Alice's frame to Bob reaches B and waits there until Bob's new connection's request for
    // his seat has joined B's envelope to A; it is taken in right after, before that envelope
    // leaves at the end of the turn. B closes the old connection (1013): the frame is lost, and
    // one process would have held the seat as truncated before the takeover.
    let held: Uint8Array | undefined;
    cluster.network.subscribe(b.name, {
      ...handlers,
      receive: (bytes) => {
        const frame = decodeBatch(bytes).bodies.some((body) =>
          body.kind === Kind.OUT &&
          body.items.some((item) => item.tag === "frame" && item.to.includes(bob.id))
        );
        if (held !== undefined || !frame) return handlers.receive(bytes);
        held = bytes;
        again.say(reconnectFor(bob.last("RoomJoined")!.data!));
      },
    });
    streams.send = (peer, body) => {
      const seq = send.call(streams, peer, body);
      if (peer === a.name && body.kind === Kind.BIND && body.conn === again.id && held) {
        const bytes = held;
        queueMicrotask(() => handlers.receive(bytes));
      }
      return seq;
    };
    alice.say({ type: "GameData", data: { data: "lost", to_player: bob.id } });
    await until(() => !!again.last("Reconnected"), "Reconnected");
    ok(held !== undefined, "the frame was held back");
    equal(bob.closed, 1013, "the old connection was a slow consumer");
    equal(again.last("Reconnected")!.data!.replay_truncated, true);
  } finally {
    streams.send = send;
    cluster.network.subscribe(b.name, handlers);
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a takeover whose probe is answered before a frame sent to the replaced connection after the probe reaches it (a slow consumer, closed 1013 by that frame) reports replay_truncated, as one process (docs/spec/SERVER.md §8.5.3, §5.2)", async () => {
  const { cluster, a, b, c, alice, streams, seatedOnB } = await takeoverCluster();
  try {
    const bob = await seatedOnB("Bob");
    // A first frame reaches Bob; B does not acknowledge it yet (its clock stands still), so a
    // takeover must ask B.
    alice.say({ type: "GameData", data: { data: "first", to_player: bob.id } });
    await until(() => bob.last("GameData")?.data?.data === "first", "Bob's first frame");
    ok(streams.acked(b.name) < streams.lastSent(b.name), "unacknowledged at A");
    bob.stalled = true;
    // A's envelopes reach B 40 ms late (in order): the probe A sends for Carol's takeover, then
    // Alice's second frame to Bob. B answers the probe, then fails to hand Bob the frame and
    // closes him (1013): its CLOSED reaches A after the answer.
    cluster.network.fault = (from, to) =>
      from === a.name && to === b.name ? { lateMs: 40 } : "deliver";
    const carol = c.connect();
    const before = streams.lastSent(b.name);
    carol.say(reconnectFor(bob.last("RoomJoined")!.data!));
    // The BIND reached A, which parked it and sent B the probe. (settle() was no wait for it:
    // C publishes the BIND at the end of its turn, which an overdue timer runs ahead of.)
    await until(() => streams.lastSent(b.name) > before, "A's probe of B");
    alice.say({ type: "GameData", data: { data: "lost", to_player: bob.id } });
    await until(() => !!carol.last("Reconnected"), "Reconnected");
    equal(bob.closed, 1013, "the old connection was a slow consumer");
    equal(carol.last("Reconnected")!.data!.replay_truncated, true);
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a takeover while frames keep going to the replaced connection asks its edge a bounded number of times, then reports replay_truncated rather than wait for a pause (docs/spec/SERVER.md §8.5.3)", async () => {
  const { cluster, a, b, c, alice, streams, seatedOnB } = await takeoverCluster();
  let stream: ReturnType<typeof setInterval> | undefined;
  try {
    const bob = await seatedOnB("Bob");
    alice.say({ type: "GameData", data: { data: "first", to_player: bob.id } });
    await until(() => bob.last("GameData")?.data?.data === "first", "Bob's first frame");
    ok(streams.acked(b.name) < streams.lastSent(b.name), "unacknowledged at A");
    // B answers A 20 ms late, and Alice sends Bob a frame every 5 ms: every answer to a probe
    // comes after more frames went to Bob. (The test's clock stands still: only the bound on
    // probes ends the wait.)
    cluster.network.fault = (from, to) =>
      from === b.name && to === a.name ? { lateMs: 20 } : "deliver";
    let n = 0;
    stream = setInterval(() => {
      alice.say({ type: "GameData", data: { data: { n: n++ }, to_player: bob.id } });
    }, 5);
    const carol = c.connect();
    carol.say(reconnectFor(bob.last("RoomJoined")!.data!));
    await until(() => !!carol.last("Reconnected"), "Reconnected");
    equal(carol.last("Reconnected")!.data!.replay_truncated, true);
    equal(bob.closed, 4001, "Bob replaced");
  } finally {
    clearInterval(stream);
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

/**
 * Ann (through A) and Carol (through C) in TAKE02, homed on A, and a frame to Carol that C has
 * not acknowledged yet (the takeover cluster's clock stands still): taking Carol's seat means
 * asking C first (docs/spec/SERVER.md §8.5.3).
 */
async function carolUnacknowledged(
  { a, c, streams }: Awaited<ReturnType<typeof takeoverCluster>>,
) {
  const ann = await joined(a, "Ann", "TAKE02");
  const carol = await joined(c, "Carol", "TAKE02");
  ann.say({ type: "GameData", data: { data: "hi", to_player: carol.id } });
  await until(() => carol.last("GameData") !== undefined, "Carol's frame");
  ok(streams.acked(c.name) < streams.lastSent(c.name), "unacknowledged at A");
  return { ann, carol };
}

/**
 * Bob's `Reconnect` took Carol's seat and he was told; Carol was replaced (4001); Bob's frames
 * reach the room he was told he is in (Ann's TAKE02), not his old one (Alice's TAKE01).
 */
async function tookCarolsSeat(
  { a, alice }: Awaited<ReturnType<typeof takeoverCluster>>,
  { ann, carol }: Awaited<ReturnType<typeof carolUnacknowledged>>,
  bob: TestClient,
) {
  equal(bob.last("Reconnected")?.data?.player_id, carol.id);
  equal(a.engine.seatConnection(carol.id), bob.id);
  await until(() => carol.closed === 4001, "Carol replaced");
  bob.say({ type: "GameData", data: { data: "from Bob" } });
  await until(() => ann.last("GameData")?.data?.data === "from Bob", "Bob's frame");
  equal(alice.last("GameData"), undefined);
}

Deno.test("Cluster (twins): a member's Reconnect waiting at its home for a probe while an operator removes it from its room: the removal's UNBIND is not taken for the request's answer, which reaches the client, so its home holds no seat it was not told of (docs/spec/SERVER.md §8.4.2, §8.5.3)", async () => {
  const takeover = await takeoverCluster();
  const { cluster, a, c, streams, seatedOnB } = takeover;
  try {
    const seat = await carolUnacknowledged(takeover);
    // C's answers reach A 40 ms late.
    cluster.network.fault = (from, to) =>
      from === c.name && to === a.name ? { lateMs: 40 } : "deliver";
    // Bob, a member of TAKE01 homed on A, asks for Carol's seat: A holds his request for the
    // probe. Meanwhile an operator removes Bob from TAKE01, which ends his binding to A.
    const bob = await seatedOnB("Bob");
    const before = streams.lastSent(c.name);
    bob.say(reconnectFor(seat.carol.last("RoomJoined")!.data!));
    await until(() => streams.lastSent(c.name) > before, "A's probe of C");
    await a.edge.command({
      kind: "room",
      command: { kind: "remove_player", gameName: "orbit", roomCode: "TAKE01", playerId: bob.id },
    }, Date.now());
    // Then the request runs: Bob is in no room, so he takes Carol's seat, and is told so.
    await until(() => !!bob.last("Reconnected") || !!bob.last("ReconnectionFailed"), "an answer");
    await tookCarolsSeat(takeover, seat, bob);
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a removal a home carries out in the turn that also brings a member's Reconnect waiting for a probe leaves with the ack it was produced under: its UNBIND is not taken for the request's answer, which reaches the client (docs/spec/SERVER.md §8.4.1, §8.4.2)", async () => {
  const takeover = await takeoverCluster();
  const { cluster, a, b, c } = takeover;
  try {
    const bob = await takeover.seatedOnB("Bob");
    const seat = await carolUnacknowledged(takeover);
    // B's envelopes reach A late and in one run, as one read from Redis: an operator's removal
    // of Bob from TAKE01 (through B), then Bob's request for Carol's seat. A removes him, then
    // parks the request for its probe of C: the removal's UNBIND must not leave with an `ack`
    // that reaches the request.
    // C's acknowledgements reach A late.
    let fromB = 0;
    cluster.network.fault = (from, to) =>
      to !== a.name
        ? "deliver"
        : from === c.name
        ? { lateMs: 60 }
        : { lateMs: ++fromB === 1 ? 30 : 1, oneStream: true };
    const removal = b.edge.command({
      kind: "room",
      command: { kind: "remove_player", gameName: "orbit", roomCode: "TAKE01", playerId: bob.id },
    }, Date.now());
    bob.say(reconnectFor(seat.carol.last("RoomJoined")!.data!));
    await removal;
    await until(
      () => !!bob.last("Reconnected") || !!bob.last("ReconnectionFailed"),
      "an answer to Bob",
    );
    // One process: removed first, Bob is in no room and takes Carol's seat, and is told so.
    cluster.network.fault = undefined;
    await tookCarolsSeat(takeover, seat, bob);
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a takeover request waiting for its probe is dropped when its connection closes meanwhile: the seat stays where it was (docs/spec/SERVER.md §8.5.3)", async () => {
  const { cluster, a, b, c, alice, streams, seatedOnB } = await takeoverCluster();
  const send = streams.send;
  try {
    const carol = await seatedOnB("Carol");
    cluster.network.fault = (from, to) => from === b.name || to === b.name ? "drop" : "deliver";
    alice.say({ type: "GameData", data: { data: "lost", to_player: carol.id } });
    await settle();
    const again = c.connect();
    // The home parks the BIND and asks B, which never answers: the request waits one heartbeat
    // period (50 ms) of real time. The connection closes while it waits, whatever the load: at
    // the probe, before any timer can run, and C's CLOSED leaves at once. (Closed after a few
    // turns instead, a stall of 50 ms let the wait end first and the takeover run.)
    let probed = false;
    streams.send = (peer, body) => {
      const seq = send.call(streams, peer, body);
      if (!probed && peer === b.name && body.kind === Kind.CONTROL) {
        probed = true;
        queueMicrotask(() => {
          c.edge.disconnect(again.id, Date.now());
          c.cluster.router.streams.flush();
        });
      }
      return seq;
    };
    again.say(reconnectFor(carol.last("RoomJoined")!.data!));
    await until(() => probed, "the home's probe of B");
    // Past the probe's wait (a timer due earlier runs earlier): a request still waiting would
    // have taken the seat by now.
    await new Promise((resolve) => setTimeout(resolve, 120));
    await settle();
    equal(a.engine.seatConnection(carol.id), carol.id, "not taken over");
    equal(again.last("Reconnected"), undefined);
  } finally {
    streams.send = send;
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a request of a connection replaced by a takeover that crosses its close is not carried out: the identity stays with the connection that took the seat (docs/spec/SERVER.md §8.4.4)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = threeNodes(cluster);
    const alice = await joined(a, "Alice", "FIRST1");
    await joined(a, "Ann", "OTHER1");
    const bob = await joined(b, "Bob", "FIRST1");
    // Bob's edge acknowledges all it got (a frame of Bob's carries its ack), so the takeover
    // below needs no probe.
    bob.say({ type: "GameData", data: { data: "hi" } });
    await until(() => alice.last("GameData") !== undefined, "Bob's frame");
    // Bob asks for the other room of his home; his request reaches it only after Carol, through
    // a third node, took his seat with his token.
    cluster.network.fault = (from, to) =>
      from === b.name && to === a.name ? { delayMs: 100 } : "deliver";
    join(bob, "Bob", "OTHER1");
    await settle(); // B resolved the request and sent it
    const carol = c.connect();
    carol.say(reconnectFor(bob.last("RoomJoined")!.data!));
    await until(() => !!carol.last("Reconnected"), "Carol took the seat");
    await until(() => bob.closed === 4001, "Bob replaced");
    await new Promise((resolve) => setTimeout(resolve, 200));
    await settle();
    equal(carol.last("RoomJoined"), undefined, "Bob's answer does not reach Carol");
    equal(a.engine.lookup("orbit", "OTHER1")?.players, 1, "no seat for Bob's late request");
    equal(a.engine.seatConnection(bob.id), carol.id, "Bob's identity stays with Carol");
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

/** The numbers (`data.n`) of the game data `client` received, in order. */
function numbered(client: TestClient): number[] {
  return client.messages.filter((m) => m.type === "GameData")
    .map((m) => (m.data!.data as { n: number }).n);
}

/**
 * Alice's room FIRST1 on A, Bob and Dave in it through B; then an envelope from B to A is lost
 * (Bob's frame) and the next (Dave's) shows A the gap, so A resyncs: Bob's and Dave's seats
 * held, `CLOSE{1012}` on its way to B and held back there 100 ms. Returns Bob, whose edge does
 * not know yet.
 */
async function homeResyncedWithBob(cluster: { nodes: TestNode[]; network: MemoryNetwork }) {
  const [a, b] = threeNodes(cluster);
  await joined(a, "Alice", "FIRST1");
  const bob = await joined(b, "Bob", "FIRST1");
  const dave = await joined(b, "Dave", "FIRST1");
  let lost = false;
  cluster.network.fault = (from, to) => {
    if (from === b.name && to === a.name && !lost) {
      lost = true;
      return "drop";
    }
    return from === a.name && to === b.name ? { delayMs: 100 } : "deliver";
  };
  bob.say({ type: "GameData", data: { data: "lost" } });
  await settle();
  dave.say({ type: "GameData", data: { data: "shows the gap" } });
  await until(() => a.engine.seatHeld(bob.id), "A resynced with B");
  return bob;
}

Deno.test("Cluster (twins): a request of a connection whose home resynced with its edge, crossing the CLOSE{1012}, is not carried out: no second seat with the held seat's id (docs/spec/SERVER.md §8.4.4, §8.5.2)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = threeNodes(cluster);
    await joined(a, "Ann", "OTHER1");
    const bob = await homeResyncedWithBob(cluster);
    // B does not know yet: Bob's request goes to his home A, which also homes the room he asks for.
    join(bob, "Bob", "OTHER1");
    await until(() => bob.closed === 1012, "Bob closed by the resync");
    await settle(20);
    equal(bob.last("RoomJoined")?.data?.room_code, "FIRST1", "no answer to the crossed request");
    equal(a.engine.lookup("orbit", "OTHER1")?.players, 1, "no seat for Bob's crossed request");
    equal(a.engine.seatHeld(bob.id), true, "Bob's seat in FIRST1 is still held for his Reconnect");
    // His Reconnect through any node resumes it.
    const back = b.connect();
    back.say(reconnectFor(bob.last("RoomJoined")!.data!));
    await until(() => back.last("Reconnected") !== undefined, "Bob back");
    equal(back.last("Reconnected")!.data!.room_code, "FIRST1");
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): the same crossing request for a room on a third node is not sent on there either: the held seat's id is not seated twice in the cluster (docs/spec/SERVER.md §8.4.4)", async () => {
  const cluster = await testCluster();
  try {
    const [a, , c] = threeNodes(cluster);
    await joined(c, "Cole", "THIRD1");
    const bob = await homeResyncedWithBob(cluster);
    join(bob, "Bob", "THIRD1");
    await until(() => bob.closed === 1012, "Bob closed by the resync");
    await settle(20);
    equal(c.engine.lookup("orbit", "THIRD1")?.players, 1, "no seat for Bob on C");
    equal(c.engine.seatHeld(bob.id), false, "nor a held one");
    equal(a.engine.seatHeld(bob.id), true, "Bob's seat in FIRST1 is held for his Reconnect");
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): frames a home bounces back while the connection's next request is pending are handled as from a connection in no room (never relayed into the room it joins next), and the request is answered although the bounces split the home's answer envelope (docs/spec/SERVER.md §8.4.2, docs/spec/PROTOCOL.md §1.5)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = threeNodes(cluster);
    const alice = await joined(a, "Alice", "HERE01");
    const cole = await joined(c, "Cole", "OTHER1");
    const bob = await joined(b, "Bob", "HERE01");
    // Bob sends three frames to his home A and then asks for a room on C; A removes him before
    // they arrive, so it bounces all three back while his request is pending.
    for (const n of [1, 2, 3]) bob.say({ type: "GameData", data: { data: { n } } });
    void a.edge.command({
      kind: "room",
      command: { kind: "remove_player", gameName: "orbit", roomCode: "HERE01", playerId: bob.id },
    }, Date.now());
    join(bob, "Bob", "OTHER1");
    await until(() => bob.last("RoomJoined")?.data?.room_code === "OTHER1", "Bob in OTHER1");
    await until(() => a.cluster.router.streams.stats.bodiesOut >= 3, "A's bounces sent");
    // As in one process: sent before the join, after the removal, they reach no room.
    bob.say({ type: "GameData", data: { data: { n: 4 } } });
    await until(() => cole.last("GameData") !== undefined, "frame 4");
    await settle();
    deepEqual(numbered(cole), [4], "only what Bob sent in OTHER1");
    equal(alice.messages.filter((m) => m.type === "GameData").length, 0, "nor in HERE01");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a token-bound connection's frames sent right behind an operator's removal issued through its own edge, while its join of another room is pending, come back and reach no room, as in one process (docs/spec/SERVER.md §8.4.2, docs/spec/PROTOCOL.md §7.6, Appendix A)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = threeNodes(cluster);
    const alice = await joined(a, "Alice", "HERE01");
    const cole = await joined(c, "Cole", "OTHER1");
    const dan = b.connect("10.0.0.3", crypto.getRandomValues(new Uint8Array(16)));
    join(dan, "Dan", "HERE01");
    await until(() => dan.last("RoomJoined") !== undefined, "Dan's RoomJoined");
    // An operator removes Dan through B: the command leaves B in the envelope that carries Dan's
    // next frames, behind it, so A removes him first and bounces the frames. Dan's join of OTHER1
    // is pending at B meanwhile.
    const sent = b.cluster.router.streams.stats.bodiesOut;
    const removed = b.edge.command({
      kind: "room",
      command: { kind: "remove_player", gameName: "orbit", roomCode: "HERE01", playerId: dan.id },
    }, Date.now());
    // The command's CONTROL joins B's next envelope to A once B has looked up the room's home
    // (promises only): the frames follow it in that envelope.
    for (let i = 0; i < 100 && b.cluster.router.streams.stats.bodiesOut === sent; i++) {
      await Promise.resolve();
    }
    ok(b.cluster.router.streams.stats.bodiesOut > sent, "the command queued at B");
    for (const n of [1, 2]) dan.say({ type: "GameData", data: { data: { n } } });
    join(dan, "Dan", "OTHER1");
    ok(await removed);
    await until(
      () => dan.last("RoomJoined")?.data?.room_code === "OTHER1" || dan.closed !== undefined,
      "Dan in OTHER1",
    );
    equal(dan.closed, undefined, "not closed as a token binding violation");
    dan.say({ type: "GameData", data: { data: { n: 3 } } });
    await until(() => cole.last("GameData") !== undefined, "frame 3");
    await settle();
    // As one process: removed first, then two frames from a connection in no room (dropped),
    // then the join.
    deepEqual(numbered(cole), [3], "only what Dan sent in OTHER1");
    equal(alice.messages.filter((m) => m.type === "GameData").length, 0, "nor in HERE01");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a token-bound connection's frames that a home bounces back are handled without a second proof check, whether or not a request is pending (docs/spec/PROTOCOL.md Appendix A, docs/spec/SERVER.md §8.4.2)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = threeNodes(cluster);
    const alice = await joined(a, "Alice", "HERE01");
    const cole = await joined(c, "Cole", "OTHER1");
    const remove = (player: TestClient) =>
      a.edge.command({
        kind: "room",
        command: {
          kind: "remove_player",
          gameName: "orbit",
          roomCode: "HERE01",
          playerId: player.id,
        },
      }, Date.now());
    const secret = () => crypto.getRandomValues(new Uint8Array(16));
    // No request pending: Bob's frame crosses his removal and comes back to B.
    const bob = b.connect("10.0.0.2", secret());
    join(bob, "Bob", "HERE01");
    await until(() => bob.last("RoomJoined") !== undefined, "Bob's RoomJoined");
    const bounced = a.cluster.router.streams.stats.bodiesOut;
    const removed = remove(bob);
    bob.say({ type: "GameData", data: { data: { n: 1 } } });
    ok(await removed);
    await until(() => a.cluster.router.streams.stats.bodiesOut > bounced, "A's bounce");
    bob.say({ type: "Ping" });
    await until(() => bob.last("Pong") !== undefined || bob.closed !== undefined, "Pong");
    equal(bob.closed, undefined, "not closed as a token binding violation");
    deepEqual(bob.types(), ["RoomJoined", "RoomLeft", "Pong"]);
    // A request pending: Dan's frames come back while his join on C waits.
    const dan = b.connect("10.0.0.3", secret());
    join(dan, "Dan", "HERE01");
    await until(() => dan.last("RoomJoined") !== undefined, "Dan's RoomJoined");
    for (const n of [2, 3]) dan.say({ type: "GameData", data: { data: { n } } });
    void remove(dan);
    join(dan, "Dan", "OTHER1");
    await until(
      () => dan.last("RoomJoined")?.data?.room_code === "OTHER1" || dan.closed !== undefined,
      "Dan in OTHER1",
    );
    equal(dan.closed, undefined, "not closed as a token binding violation");
    dan.say({ type: "GameData", data: { data: { n: 4 } } });
    await until(() => cole.last("GameData") !== undefined, "frame 4");
    await settle();
    equal(dan.messages.filter((m) => m.type === "Error").length, 0, dan.types().join());
    deepEqual(cole.messages.filter((m) => m.type === "GameData").map((m) => m.data!.data), [{
      n: 4,
    }]);
    equal(alice.messages.filter((m) => m.type === "GameData").length, 0);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a member's request that reaches its home in the turn the home removed it is still answered, and its edge no longer holds it bound there (docs/spec/SERVER.md §8.4.2)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = threeNodes(cluster);
    await joined(a, "Alice", "HERE01");
    await joined(c, "Cole", "ELSE01");
    const bob = await joined(b, "Bob", "HERE01");
    // When Bob's next request leaves B for his home A, an operator removes him there at once:
    // A's answer to the request and its removal leave in one envelope, the removal first.
    let removed = false;
    cluster.network.fault = (from, to, bytes) => {
      if (!removed && from === b.name && to === a.name) {
        if (carriesBind(bytes)) {
          removed = true;
          // As an operator's removal runs at the home (synchronously, before A reads the BIND).
          const effects = a.engine.removePlayer("orbit", "HERE01", bob.id, Date.now());
          if (typeof effects === "string") throw new Error(effects);
          a.edge.apply(effects, Date.now());
        }
      }
      return "deliver";
    };
    join(bob, "Bob", "ELSE01");
    await until(() => removed, "the removal");
    await until(() => bob.last("RoomLeft") !== undefined, "Bob's RoomLeft");
    await until(
      () => bob.last("RoomJoined")?.data?.room_code === "ELSE01" || !!bob.last("RoomJoinFailed"),
      "an answer to Bob's JoinRoom",
    );
    equal(bob.last("RoomJoined")?.data?.room_code, "ELSE01", "not in a room any more: joined");
    equal(b.edge.boundRemote(), 1, "bound to C's room only");
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a spectator's switch answered MISS by its home, which then closes the room in the same turn, is still carried out (docs/spec/SERVER.md §8.4.2)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b, c] = threeNodes(cluster);
    await joined(a, "Alice", "HERE02");
    await joined(c, "Cole", "ELSE02");
    const watch = (code: string) => ({
      type: "JoinAsSpectator",
      data: { game_name: "orbit", room_code: code, spectator_name: "Sam" },
    });
    const sam = b.connect();
    sam.say(watch("HERE02"));
    await until(() => sam.last("SpectatorJoined") !== undefined, "Sam watching");
    // When Sam's switch leaves B for his home A, A closes his room right after answering it
    // (MISS: the new room is elsewhere), in the same turn: one envelope, the answer first.
    let closed = false;
    cluster.network.fault = (from, to, bytes) => {
      if (!closed && from === b.name && to === a.name) {
        if (carriesBind(bytes)) {
          closed = true;
          // Two microtasks on: after the delivery of this envelope, before the turn ends.
          queueMicrotask(() =>
            queueMicrotask(() =>
              a.edge.apply(a.engine.closeRoom("orbit", "HERE02", Date.now())!, Date.now())
            )
          );
        }
      }
      return "deliver";
    };
    sam.say(watch("ELSE02"));
    await until(() => closed, "the close");
    await until(
      () => sam.last("SpectatorJoined")?.data?.room_code === "ELSE02",
      "Sam watching the other room",
    );
    equal(sam.last("SpectatorLeft")?.data?.reason, "room_closed");
    equal(b.edge.boundRemote(), 1, "bound to C's room only");
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a player removed in the turn its join was answered, in the same envelope, is not left bound to that home (docs/spec/SERVER.md §8.4.2)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = threeNodes(cluster);
    await joined(a, "Alice", "HERE03");
    // When Bob's join leaves B for A, A removes Bob right after seating him, in the same turn:
    // BOUND (the answer), RoomLeft and UNBIND travel in one envelope.
    let removed = false;
    const bob = b.connect();
    cluster.network.fault = (from, to, bytes) => {
      if (!removed && from === b.name && to === a.name && carriesBind(bytes)) {
        removed = true;
        queueMicrotask(() =>
          queueMicrotask(() => {
            const effects = a.engine.removePlayer("orbit", "HERE03", bob.id, Date.now());
            if (typeof effects === "string") throw new Error(effects);
            a.edge.apply(effects, Date.now());
          })
        );
      }
      return "deliver";
    };
    join(bob, "Bob", "HERE03");
    await until(() => bob.last("RoomLeft") !== undefined, "Bob's RoomLeft");
    await settle();
    deepEqual(bob.types(), ["RoomJoined", "RoomLeft"]);
    equal(b.edge.boundRemote(), 0, "not bound to A any more");
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a connection that closes while its JoinRoom's answer is on its way leaves its seat held at the home, as after any unexpected disconnect (docs/spec/SERVER.md §8.4.2)", async () => {
  const cluster = await testCluster();
  try {
    const [a, , c] = threeNodes(cluster);
    await joined(a, "Alice", "GONE01");
    // The home's answers to C are held back while Bob's request is carried out.
    cluster.network.fault = (from, to) =>
      from === a.name && to === c.name ? { delayMs: 150 } : "deliver";
    const bob = c.connect();
    join(bob, "Bob", "GONE01");
    await until(() => a.engine.seatConnection(bob.id) === bob.id, "Bob seated at the home");
    c.edge.disconnect(bob.id, Date.now());
    cluster.network.fault = undefined;
    await until(() => a.engine.seatConnection(bob.id) === undefined, "Bob's seat no longer live");
    equal(a.engine.lookup("orbit", "GONE01")?.players, 2, "held, not removed");
    equal(bob.last("RoomJoined"), undefined, "the answer never reached the closed connection");
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a join-only JoinRoom (E9) for an unknown code claims nothing; without a code it creates nothing", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
    const ann = a.connect();
    ann.say({
      type: "JoinRoom",
      data: { game_name: "orbit", player_name: "Ann", room_code: "NOSUCH", create: "never" },
    });
    await until(() => ann.last("RoomJoinFailed") !== undefined, "Ann's refusal");
    equal(ann.last("RoomJoinFailed")!.data!.error_code, "ROOM_NOT_FOUND");
    equal((await cluster.store.resolveCode("orbit", "NOSUCH")).status, "absent");
    ann.say({
      type: "JoinRoom",
      data: { game_name: "orbit", player_name: "Ann", create: "never" },
    });
    await until(
      () => ann.messages.filter((m) => m.type === "RoomJoinFailed").length === 2,
      "the second refusal",
    );
    equal(a.engine.stats().rooms, 0, "no room was created");
    // The code is still free: a create through another node gets it.
    const bob = b.connect();
    join(bob, "Bob", "NOSUCH");
    await until(() => bob.last("RoomJoined") !== undefined, "Bob's RoomJoined");
    equal(bob.last("RoomJoined")!.data!.room_code, "NOSUCH");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a stalled reader on B in a room homed on A is closed with 1013 and its seat held on A", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
    const alice = a.connect();
    join(alice, "Alice");
    await until(() => alice.last("RoomJoined") !== undefined, "Alice's RoomJoined");
    const code = alice.last("RoomJoined")!.data!.room_code as string;
    const bob = b.connect();
    join(bob, "Bob", code);
    await until(() => bob.last("RoomJoined") !== undefined, "Bob's RoomJoined");
    bob.stalled = true;
    alice.say({ type: "GameData", data: { data: "are you there?" } });
    await until(() => bob.closed !== undefined, "Bob's close");
    equal(bob.closed, 1013);
    ok(cluster.events.some((e) => e.type === "slow_consumer"), "a slow-consumer decision");
    await until(() => a.engine.stats().heldSeats === 1, "Bob's seat held on A");
  } finally {
    await cluster.close();
  }
});

/**
 * Holds `node`'s next `refreshAll` until the returned `release` is called, so a test can change
 * the node's rooms between the refresh's snapshot of its entries and the script's answer.
 */
function holdRefresh(node: TestNode) {
  const store = node.cluster.store;
  const original = store.refreshAll.bind(store);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  let held = false;
  store.refreshAll = async (records) => {
    held = true;
    store.refreshAll = original;
    await gate;
    return original(records);
  };
  return { release, held: () => held };
}

Deno.test("Cluster (twins): a room closed while its refresh is in flight neither marks its code conflicted nor revives its directory entry (docs/spec/SERVER.md §8.3)", async () => {
  for (const reused of [true, false]) {
    const cluster = await testCluster({ nodes: 1 });
    try {
      const [a] = cluster.nodes as [TestNode];
      const alice = a.connect();
      join(alice, "Alice");
      await until(() => alice.last("RoomJoined") !== undefined, "Alice's RoomJoined");
      const code = alice.last("RoomJoined")!.data!.room_code as string;
      const first = alice.last("RoomJoined")!.data!.room_id as string;
      const hold = holdRefresh(a);
      const refreshing = a.cluster.refresh();
      await until(() => hold.held(), "the refresh took its snapshot");
      // An operator closes Alice's room, which releases the code; maybe Bob reuses it at once.
      await a.edge.command(
        { kind: "room", command: { kind: "close", gameName: "orbit", roomCode: code } },
        Date.now(),
      );
      await until(() => alice.last("RoomLeft") !== undefined, "Alice's RoomLeft");
      await settle();
      equal(await cluster.store.lookup("orbit", code), undefined, "the code released");
      let second: string | undefined;
      if (reused) {
        const bob = a.connect();
        join(bob, "Bob", code);
        await until(() => bob.last("RoomJoined") !== undefined, "Bob's RoomJoined");
        second = bob.last("RoomJoined")!.data!.room_id as string;
        ok(second !== first, "a new room under the code");
      }
      const conflictsBefore = a.cluster.conflictCount;
      hold.release();
      await refreshing;
      await settle();
      equal(a.cluster.conflictCount, conflictsBefore, "no conflict counted");
      equal(a.cluster.isConflicted("orbit", code), false, "the code is not held conflicted");
      equal((await cluster.store.lookup("orbit", code))?.roomId, second);
    } finally {
      await cluster.close();
    }
  }
});

/** A promise and its resolver. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => open = resolve);
  return { wait, open };
}

for (
  const race of [
    "the second request finds the first one's fresh entry (named here, room not created yet)",
    "the second request's claim finds the code taken by the first one's claim (room not created yet)",
    "the second request finds the first one's fresh entry, and the room is created before that answer arrives",
  ]
) {
  Deno.test(`Cluster (twins): two creations of one code on one node race; ${race} → one room, its entry names it, no conflict`, async () => {
    const cluster = await testCluster({ nodes: 1 });
    try {
      const node = cluster.nodes[0]!;
      const joinX = (client: ReturnType<typeof node.connect>, name: string) =>
        client.say({
          type: "JoinRoom",
          data: { game_name: "orbit", player_name: name, room_code: "RACE01" },
        });
      const first = node.connect();
      const second = node.connect();
      const firstClaim = gate();
      const secondAnswer = gate();
      let claims = 0;
      let resolves = 0;
      if (race.endsWith("(named here, room not created yet)")) {
        // First's claim runs, its answer is held; second resolves the code (finds first's entry),
        // and its answer (and any claim it makes) is held until first's room exists.
        cluster.store.hold = (method) =>
          method === "claim" ? (claims++ === 0 ? firstClaim.wait : secondAnswer.wait) : undefined;
        joinX(first, "First");
        await until(() => claims === 1, "first claim");
        joinX(second, "Second");
        await settle();
        firstClaim.open();
        await until(() => first.last("RoomJoined") !== undefined, "first's room");
        secondAnswer.open();
      } else if (race.endsWith("before that answer arrives")) {
        // First's claim answer is held; second's lookup finds first's entry, its answer is held
        // until first's room exists (no creation is pending any more when it arrives).
        cluster.store.hold = (method) => {
          if (method === "claim" && claims++ === 0) return firstClaim.wait;
          // Lookup 0 is first's (the code is not in the directory yet), 1 second's.
          if (method === "resolveCode" && resolves++ === 1) return secondAnswer.wait;
          return undefined;
        };
        joinX(first, "First");
        await until(() => claims === 1, "first claim");
        joinX(second, "Second");
        await until(() => resolves === 2, "second's lookup");
        firstClaim.open();
        await until(() => first.last("RoomJoined") !== undefined, "first's room");
        secondAnswer.open();
      } else {
        // Second resolves the code before first claims it (answer held), then claims after
        // first's claim: taken by a room not created yet.
        cluster.store.hold = (method) => {
          if (method === "resolveCode" && resolves++ === 0) return secondAnswer.wait;
          if (method === "claim" && claims++ === 0) return firstClaim.wait;
          return undefined;
        };
        joinX(second, "Second");
        await until(() => resolves === 1, "second's lookup");
        joinX(first, "First");
        await until(() => claims === 1, "first claim");
        secondAnswer.open();
        await settle();
        firstClaim.open();
      }
      await until(
        () => first.last("RoomJoined") !== undefined && second.last("RoomJoined") !== undefined,
        "both joined",
      );
      const roomId = first.last("RoomJoined")!.data!.room_id;
      equal(second.last("RoomJoined")!.data!.room_id, roomId, "one room");
      cluster.store.hold = undefined;
      await node.cluster.refresh();
      equal(node.cluster.conflictCount, 0, "no conflict at the refresh");
      equal((await cluster.store.lookup("orbit", "RACE01"))?.roomId, roomId);
    } finally {
      await cluster.close();
    }
  });
}

Deno.test("Cluster (twins): a spectator for a code claimed on this node whose room is not created yet waits for it and joins (docs/spec/SERVER.md §8.3)", async () => {
  const cluster = await testCluster({ nodes: 1 });
  try {
    const node = cluster.nodes[0]!;
    const host = node.connect();
    const watcher = node.connect();
    const firstClaim = gate();
    let claims = 0;
    // The host's claim is applied, its answer held: the directory names this node for a room
    // the engine does not have yet when the spectator's lookup comes back.
    cluster.store.hold = (method) =>
      method === "claim" && claims++ === 0 ? firstClaim.wait : undefined;
    host.say({
      type: "JoinRoom",
      data: { game_name: "orbit", player_name: "Host", room_code: "RACE02" },
    });
    await until(() => claims === 1, "the host's claim");
    watcher.say({
      type: "JoinAsSpectator",
      data: { game_name: "orbit", room_code: "RACE02", spectator_name: "Watcher" },
    });
    await settle();
    equal(watcher.last("SpectatorJoinFailed"), undefined, "no failure while the room is coming");
    firstClaim.open();
    await until(() => watcher.last("SpectatorJoined") !== undefined, "the spectator joined");
    equal(
      watcher.last("SpectatorJoined")!.data!.room_id,
      host.last("RoomJoined")!.data!.room_id,
      "the host's room",
    );
    cluster.store.hold = undefined;
    await node.cluster.refresh();
    equal(node.cluster.conflictCount, 0, "no conflict at the refresh");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a connection's CLOSED lost on its way to the home, with a frame for it arriving after the close: the resync marks its replay truncated (docs/spec/SERVER.md §8.5.1, §8.5.3)", async () => {
  const cluster = await testCluster({ heartbeatMs: 50, engine: { enableReconnection: true } });
  try {
    const [a, b, c] = threeNodes(cluster);
    const alice = await joined(a, "Alice", "LOST01");
    const bob = await joined(b, "Bob", "LOST01");
    await until(() => !!alice.last("PlayerJoined"), "Alice told Bob joined");
    await settle();
    // Bob's socket goes; the envelope carrying his CLOSED is lost. Alice's frame for him leaves A
    // before A can know, and reaches B after he is gone: never handed to him.
    let lose = true;
    cluster.network.fault = (from, to) => {
      if (lose && from === b.name && to === a.name) {
        lose = false;
        return "drop";
      }
      return "deliver";
    };
    b.edge.disconnect(bob.id, Date.now());
    alice.say({ type: "GameData", data: { data: "never handed to Bob" } });
    // B's next envelope (a heartbeat naming the lost seq, acknowledging A's frame) shows A the gap.
    await until(() => a.cluster.router.streams.stats.resyncs > 0, "A resyncs with B");
    const again = c.connect();
    again.say(reconnectFor(bob.last("RoomJoined")!.data!));
    await until(() => !!again.last("Reconnected"), "Bob's Reconnected");
    const { replay_truncated, missed_events } = again.last("Reconnected")!.data! as {
      replay_truncated: boolean;
      missed_events: unknown[];
    };
    // Either the frame is replayed or the client is told frames may be missing.
    ok(replay_truncated || JSON.stringify(missed_events).includes("never handed"), "told");
    equal(replay_truncated, true);
  } finally {
    await cluster.close();
  }
});

/**
 * Removes `member` from its room `code` on `node`, as an operator would, in a microtask after
 * `node`'s engine first answers `probe` for it with an answer `fires` accepts (default: any
 * truthy one): the moment the resolver has left a request to that engine ("Already in a room"),
 * before the engine runs it. Returns whether it has fired.
 */
function removeWhenResolved(
  node: TestNode,
  member: { id: ConnId },
  code: string,
  probe: "joinRefused" | "binding",
  fires: (answer: unknown) => boolean = Boolean,
): () => boolean {
  const engine = node.engine as unknown as Record<string, (...args: unknown[]) => unknown>;
  const original = engine[probe]!.bind(node.engine);
  let fired = false;
  engine[probe] = (...args: unknown[]) => {
    const answer = original(...args);
    if (!fired && args[0] === member.id && fires(answer)) {
      fired = true;
      queueMicrotask(() => {
        const effects = node.engine.removePlayer("orbit", code, member.id, Date.now());
        if (typeof effects === "string") throw new Error(effects);
        node.edge.apply(effects, Date.now());
      });
    }
    return answer;
  };
  return () => fired;
}

Deno.test("Cluster (twins): a member's join resolved as 'already in a room' that finds the member removed by the time it runs is resolved again, never creating a second room with a code another home holds (docs/spec/SERVER.md §8.3)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = threeNodes(cluster);
    const alice = await joined(a, "Alice", "TAKEN1");
    const bob = await joined(b, "Bob", "MINE01");
    // Right after the resolver decides that B's engine answers ("Already in a room"), and before
    // that runs, an operator removes Bob from his room here.
    const crossed = removeWhenResolved(b, bob, "MINE01", "joinRefused");
    join(bob, "Bob", "TAKEN1");
    await until(() => bob.last("RoomJoined")?.data?.room_code === "TAKEN1", "Bob's join");
    equal(crossed(), true, "the removal crossed the resolution");
    equal(bob.last("RoomJoined")!.data!.room_id, alice.last("RoomJoined")!.data!.room_id);
    equal(b.engine.lookup("orbit", "TAKEN1"), undefined, "no second TAKEN1 on B");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a gap found in the same run as the answer that bound a connection resyncs that connection too (closed 1012, not left bound with a frame lost) (docs/spec/SERVER.md §8.5.1, §8.5.2)", async () => {
  const cluster = await testCluster({ engine: { enableReconnection: true } });
  try {
    const [a, b] = threeNodes(cluster);
    const alice = await joined(a, "Alice", "GAP001");
    // A's answer to Bob's join is late; A's next envelope to B (Alice's first frame) is lost;
    // the one after waits behind the answer, so B reads both in one run.
    let fromA = 0;
    cluster.network.fault = (from, to) => {
      if (from !== a.name || to !== b.name) return "deliver";
      fromA++;
      return fromA === 1 ? { lateMs: 60 } : fromA === 2 ? "drop" : "deliver";
    };
    const bob = b.connect();
    join(bob, "Bob", "GAP001");
    await until(() => alice.last("PlayerJoined") !== undefined, "Bob seated on A");
    alice.say({ type: "GameData", data: { data: "lost" } });
    await settle();
    alice.say({ type: "GameData", data: { data: "after the gap" } });
    await until(() => bob.closed !== undefined, "Bob's connection closed");
    equal(bob.closed, 1012);
    equal(fromA >= 3, true, "the envelope that shows the gap was sent");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a node gone for good (its instance key expired, silent for T) leaves no stream state on the others, which stop their heartbeats to it (docs/spec/SERVER.md §8.5.1)", async () => {
  let clock = Date.now();
  const cluster = await testCluster({ heartbeatMs: 50, ttlMs: 3_000, now: () => clock });
  try {
    const [a, , c] = threeNodes(cluster);
    const streams = a.cluster.router.streams;
    await joined(a, "Alice", "GONE77", 8);
    const carol = await joined(c, "Carol", "GONE77", 8);
    carol.say({ type: "LeaveRoom" });
    await until(() => !!carol.last("RoomLeft"), "Carol left");
    ok(streams.peers().includes(c.name), "A and C have exchanged envelopes");
    // C vanishes (a kill -9): nothing more arrives from it, and its instance key expires.
    cluster.network.fault = (from) => from === c.name ? "drop" : "deliver";
    cluster.store.expire((key) => key === `instance:${c.name}`);
    await a.cluster.refresh();
    ok(streams.peers().includes(c.name), "not silent for T yet");
    clock += 3_001;
    await a.cluster.refresh();
    equal(streams.peers().includes(c.name), false, streams.peers().join());
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a member's JoinRoom without a code resolved as 'already in a room' that finds the member removed by the time it runs creates its room under a claimed code, never a generated code another home holds (docs/spec/SERVER.md §8.3, §8.6)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = threeNodes(cluster);
    // The next generated code is C00001 (the test cluster numbers them): A holds it already.
    const alice = await joined(a, "Alice", "C00001");
    const bob = await joined(b, "Bob", "MINE01");
    const crossed = removeWhenResolved(b, bob, "MINE01", "joinRefused");
    join(bob, "Bob");
    await until(
      () => bob.messages.filter((m) => m.type === "RoomJoined").length === 2,
      "Bob's RoomJoined",
    );
    equal(crossed(), true, "the removal crossed the resolution");
    const code = bob.last("RoomJoined")!.data!.room_code as string;
    ok(code !== "C00001", `Bob's new room took code ${code}, held by Alice's room on A`);
    equal(b.engine.lookup("orbit", "C00001"), undefined, "no second C00001 on B");
    await settle();
    const entry = await cluster.store.lookup("orbit", "C00001");
    equal(
      entry?.roomId,
      alice.last("RoomJoined")!.data!.room_id,
      "C00001 still names Alice's room",
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a member's Reconnect resolved as 'already in a room' that finds the member removed by the time it runs resumes the seat it names on another home, as one process does, not RECONNECTION_TOKEN_INVALID from a node that never homed it (docs/spec/SERVER.md §8.4.3, §8.6)", async () => {
  const cluster = await testCluster({ engine: { enableReconnection: true } });
  try {
    const [, b, c] = threeNodes(cluster);
    const xena = await joined(c, "Xena", "SEATCC");
    const seat = xena.last("RoomJoined")!.data!;
    c.edge.disconnect(xena.id, Date.now());
    await until(() => c.engine.seatHeld(xena.id), "Xena's seat held");
    const bob = await joined(b, "Bob", "MINE01");
    // Right after the resolver decides that B's engine answers ("Already in a room"), and before
    // that runs, an operator removes Bob from his room here.
    const crossed = removeWhenResolved(b, bob, "MINE01", "binding");
    bob.say(reconnectFor(seat));
    await until(
      () => bob.last("Reconnected") !== undefined || bob.last("ReconnectionFailed") !== undefined,
      "an answer",
    );
    equal(crossed(), true, "the removal crossed the resolution");
    // One process: the removal came first, so Bob is in no room and resumes the seat.
    deepEqual(bob.types(), ["RoomJoined", "RoomLeft", "Reconnected"]);
    equal(c.engine.seatConnection(xena.id), bob.id);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a player's JoinAsSpectator resolved as 'already in a room' that finds the player removed by the time it runs watches the room it names on another home, as one process does, not ROOM_NOT_FOUND (docs/spec/SERVER.md §8.4.3, §8.6)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = threeNodes(cluster);
    await joined(a, "Alice", "WATCHA");
    const bob = await joined(b, "Bob", "MINE01");
    const crossed = removeWhenResolved(
      b,
      bob,
      "MINE01",
      "binding",
      (answer) => answer === "player",
    );
    spectate(bob, "WATCHA", "Bob");
    await until(
      () =>
        bob.last("SpectatorJoined") !== undefined || bob.last("SpectatorJoinFailed") !== undefined,
      "an answer",
    );
    equal(crossed(), true, "the removal crossed the resolution");
    deepEqual(bob.types(), ["RoomJoined", "RoomLeft", "SpectatorJoined"]);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a spectator whose room closes as its Reconnect reaches that room's home, for a seat on that same home, keeps the resumed player id in the rooms it joins next, as one process does (docs/spec/PROTOCOL.md §1.2, §7.11.5; docs/spec/SERVER.md §8.4.1)", async () => {
  const cluster = await testCluster({ engine: { enableReconnection: true } });
  const [, b, c] = threeNodes(cluster);
  try {
    const cy = await joined(c, "Cy", "HOMECC");
    // Xena's seat is on B too: the request goes to B as its member's, and B, which let Sam go,
    // seats it.
    const { sam, xena } = await reconnectAsWatchedRoomCloses(cluster, b, "SEATBB");
    deepEqual(sam.types(), ["SpectatorJoined", "SpectatorLeft", "Reconnected"]);
    equal(sam.last("Reconnected")!.data!.player_id, xena.id);
    sam.say({ type: "LeaveRoom" });
    await until(() => sam.last("RoomLeft") !== undefined, "left");
    // As in one process, the adopted id is Sam's in the room it joins next (homed on C).
    join(sam, "Sam", "HOMECC");
    await until(() => sam.last("RoomJoined") !== undefined, "joined C's room");
    equal(sam.last("RoomJoined")!.data!.player_id, xena.id);
    await until(() => cy.last("PlayerJoined") !== undefined, "Cy told");
    equal((cy.last("PlayerJoined")!.data!.player as { id: string }).id, xena.id);
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

/** The `handled` events of `events` for JoinRoom with `outcome` (the latency samples of §6.3 #61/#62). */
function joinTimings(events: readonly EdgeEvent[], outcome: "created" | "joined"): number[] {
  return events.flatMap((event) =>
    event.type === "handled" && event.outcome === outcome ? [event.seconds] : []
  );
}

Deno.test("Cluster (twins): a join through another node is timed once, from its JoinRoom to its RoomJoined, forwarding included (docs/spec/SERVER.md §6.3 #62)", async () => {
  const cluster = await testCluster({ nodes: 2 });
  try {
    const [a, b] = cluster.nodes as [TestNode, TestNode];
    await joined(a, "Alice", "TIMEDJ");
    const before = cluster.events.length;
    // Every envelope takes 60 ms (in order): Bob's BIND to A, and its answer back to B.
    cluster.network.fault = () => ({ delayMs: 60 });
    await joined(b, "Bob", "TIMEDJ");
    const samples = joinTimings(cluster.events.slice(before), "joined");
    equal(samples.length, 1, "one sample for one join (the edge's, not also the home's)");
    ok(samples[0]! >= 0.1, `${samples[0]} s: the forwarding is included`);
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a creation is timed from its JoinRoom, the Redis claim included (docs/spec/SERVER.md §6.3 #61)", async () => {
  const cluster = await testCluster({ nodes: 2 });
  try {
    const [a] = cluster.nodes as [TestNode, TestNode];
    // Each Redis call takes 40 ms: the join token and the code's claim come before the room.
    cluster.store.latency = () => 40;
    const before = cluster.events.length;
    await joined(a, "Alice", "TIMEDC");
    const samples = joinTimings(cluster.events.slice(before), "created");
    equal(samples.length, 1);
    ok(samples[0]! >= 0.04, `${samples[0]} s: the claim is included`);
  } finally {
    cluster.store.latency = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): Authenticate after joining a room homed elsewhere (auth off) switches the home's output to MessagePack and lets binary frames through, as in one process (docs/spec/PROTOCOL.md §7.1.2, docs/spec/SERVER.md §8.4.2 item 2)", async () => {
  const cluster = await testCluster({ engine: { messagePack: true } });
  try {
    const [a, b] = threeNodes(cluster);
    const alice = a.connect();
    alice.say({ type: "Authenticate", data: { app_id: "t", game_data_format: "message_pack" } });
    join(alice, "Alice", "LATEMP");
    await until(() => alice.last("RoomJoined") !== undefined, "Alice's RoomJoined");
    const bob = b.connect();
    join(bob, "Bob", "LATEMP");
    await until(() => alice.last("PlayerJoined") !== undefined, "Bob joined through B");
    bob.say({ type: "Authenticate", data: { app_id: "t", game_data_format: "message_pack" } });
    await until(() => bob.last("ProtocolInfo") !== undefined, "Bob's ProtocolInfo");
    a.edge.receive(alice.id, encode({ n: 1 }), Date.now());
    await until(() => bob.types().at(-1) !== "ProtocolInfo", "the relay to Bob");
    deepEqual(bob.types().slice(-1), ["binary"]);
    equal(bob.messages.at(-1)!.data!.payload, "81a16e01");
    b.edge.receive(bob.id, encode({ n: 2 }), Date.now());
    await until(() => alice.types().at(-1) === "binary", "Bob's binary frame relayed");
    equal(alice.messages.at(-1)!.data!.payload, "81a16e02");
    equal(bob.last("Error"), undefined);
    // Answered once, by the home, in order with the room's output.
    deepEqual(bob.types(), ["RoomJoined", "Authenticated", "ProtocolInfo", "binary"]);
    deepEqual(bob.last("ProtocolInfo")!.data!.game_data_formats, ["json", "message_pack"]);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): an Authenticate sent to a remote home that has just let the connection go comes back as BOUNCE and is answered by its edge, once (docs/spec/SERVER.md §8.4.2 item 2)", async () => {
  const cluster = await testCluster({ engine: { messagePack: true } });
  try {
    const [a, b] = threeNodes(cluster);
    await joined(a, "Alice", "BNCE02");
    const bob = await joined(b, "Bob", "BNCE02");
    await settle();
    const bobId = bob.last("RoomJoined")!.data!.player_id as string;
    const bodies: string[] = [];
    cluster.network.fault = (from, _to, bytes) => {
      for (const body of decodeBatch(bytes).bodies) bodies.push(`${from}:${body.kind}`);
      return "deliver";
    };
    // In one turn: the home removes Bob, and Bob's edge forwards his first Authenticate.
    const reply = a.edge.command({
      kind: "room",
      command: { kind: "remove_player", gameName: "orbit", roomCode: "BNCE02", playerId: bobId },
    }, Date.now());
    bob.say({ type: "Authenticate", data: { app_id: "t", game_data_format: "message_pack" } });
    ok(await reply);
    await until(() => bodies.includes(`${a.name}:${Kind.BOUNCE}`), "the BOUNCE");
    await until(() => bob.last("ProtocolInfo") !== undefined, "Bob's answer");
    bob.say({ type: "Ping" });
    await until(() => bob.last("Pong") !== undefined, "Pong");
    deepEqual(bob.types(), ["RoomJoined", "RoomLeft", "Authenticated", "ProtocolInfo", "Pong"]);
    deepEqual(bob.last("ProtocolInfo")!.data!.game_data_formats, ["json", "message_pack"]);
    // Its next room gets its MessagePack format with the BIND.
    join(bob, "Bob", "BNCE03");
    await until(() => bob.last("RoomJoined")?.data?.room_code === "BNCE03", "Bob's new room");
    const carol = a.connect();
    carol.say({ type: "Authenticate", data: { app_id: "t", game_data_format: "message_pack" } });
    join(carol, "Carol", "BNCE03");
    await until(() => bob.last("PlayerJoined") !== undefined, "Carol joined");
    a.edge.receive(carol.id, encode(7), Date.now());
    await until(() => bob.types().at(-1) === "binary", "Carol's binary frame as an envelope");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a room looked up or listed through another instance between its claim and its home's first refresh shows the summary the room has, not the claim's placeholder (docs/spec/EXTENSIONS.md E5, E6; docs/spec/SERVER.md §8.3)", async () => {
  const cluster = await testCluster({
    engine: { defaultMaxPlayers: 6, relayTypeByGame: { orbit: "webrtc-mesh" } },
  });
  try {
    const [a, b] = threeNodes(cluster);
    const http = (path: string) => getRooms(b, path);
    // Each creation's claim runs in the store; its answer waits until the test lets it go, so
    // the entry holds the claim's summary while B answers the lookup and the listing.
    for (const code of ["FRESH1", undefined]) {
      let claimed = false;
      let answer!: () => void;
      const gate = new Promise<void>((resolve) => answer = resolve);
      cluster.store.hold = (method) => {
        if (method !== "claim") return undefined;
        claimed = true;
        return gate;
      };
      const alice = a.connect(code ? "10.0.0.2" : "10.0.0.3");
      // No max_players: the engine's default (6) applies; the game's relay type is mapped.
      alice.say({
        type: "JoinRoom",
        data: {
          game_name: "orbit",
          player_name: "Alice",
          authority_handover: true,
          ...(code ? { room_code: code } : {}),
        },
      });
      await until(() => claimed, "the claim");
      const key = cluster.store.keys().find((k) =>
        k.startsWith("room:orbit:") && (code === undefined ? k !== "room:orbit:FRESH1" : true)
      );
      const roomCode = code ?? key!.slice("room:orbit:".length);
      const expected = {
        room_code: roomCode,
        game_name: "orbit",
        players: 1,
        max_players: 6,
        spectators: 0,
        lobby_state: "waiting",
        supports_authority: true,
        relay_type: "webrtc-mesh",
        authority_handover: true,
      };
      const during = await http(`/v2/rooms/orbit/${roomCode}`);
      equal(a.engine.lookup("orbit", roomCode), undefined, "the room is not created yet");
      deepEqual(during, { status: 200, body: expected }, "the lookup before the home's refresh");
      const listed = await http("/v2/rooms?game_name=orbit");
      deepEqual(
        listed.body.rooms.find((room: { room_code: string }) => room.room_code === roomCode),
        expected,
        "the listing before the home's refresh",
      );
      cluster.store.hold = undefined;
      answer();
      await until(() => alice.last("RoomJoined") !== undefined, "Alice's RoomJoined");
      await settle();
      deepEqual(
        await http(`/v2/rooms/orbit/${roomCode}`),
        { status: 200, body: expected },
        "the same summary once the home has refreshed the entry",
      );
    }
  } finally {
    cluster.store.hold = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a creation whose connection closes while its token is drawn claims no code (no entry for a room that is never created)", async () => {
  const cluster = await testCluster();
  try {
    const [a] = threeNodes(cluster);
    const drawn = gate();
    const calls: string[] = [];
    cluster.store.hold = (method) => {
      calls.push(method);
      return method === "take" ? drawn.wait : undefined;
    };
    const alice = a.connect("10.0.0.2");
    join(alice, "Alice", "GONE77");
    await until(() => calls.includes("take"), "the join token's take");
    a.edge.disconnect(alice.id, Date.now());
    drawn.open();
    await settle(10);
    // The resolver goes on (the directory, the creation token) but claims nothing.
    deepEqual(calls, ["take", "resolveCode", "take"]);
    deepEqual(cluster.store.keys().filter((key) => key.startsWith("room")), []);
  } finally {
    cluster.store.hold = undefined;
    await cluster.close();
  }
});
