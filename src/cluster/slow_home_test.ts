/**
 * A home too slow for `forward_timeout_ms` (docs/spec/SERVER.md §8.4.2 "Timeout", "Late success", §8.4.4
 * `BIND`, §8.5.5), in one process over the in-memory twins with delayed envelopes: the client gets
 * `SERVICE_UNAVAILABLE`; a `BIND` that reaches the home after its deadline is dropped; a success
 * that crosses the timeout is undone with `CLOSED{abandoned}` and nothing of it reaches the client.
 * No ghost player remains either way.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { setImmediate } from "node:timers";
import { decodeBatch, decodeEnvelope, Kind } from "./envelope.ts";
import {
  join,
  joined,
  reconnectFor,
  settle,
  type TestClient,
  type TestCluster,
  testCluster,
  until,
} from "./testing.ts";

/** Bob's request to watch SLOW01 (his next request after a join that timed out). */
const WATCH_SLOW01 = {
  type: "JoinAsSpectator",
  data: { game_name: "orbit", room_code: "SLOW01", spectator_name: "Bob" },
};

const FORWARD_MS = 200;

/**
 * A cluster with Alice's room SLOW01 on A; `slow(from, kind)` delays the next envelope of that
 * kind from that node past the forward timeout. Heartbeats every 10 s: none overtakes it.
 */
async function setup(forwardTimeoutMs = FORWARD_MS) {
  const cluster = await testCluster({ forwardTimeoutMs, heartbeatMs: 10_000 });
  const [a, b] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
  const alice = a.connect();
  join(alice, "Alice", "SLOW01");
  await until(() => alice.last("RoomJoined") !== undefined, "RoomJoined");
  const slow = (from: string, kind: number) => {
    let once = true;
    cluster.network.fault = (sender, _to, bytes) => {
      if (once && sender === from && decodeEnvelope(bytes).kind === kind) {
        once = false;
        return { delayMs: FORWARD_MS + 150 };
      }
      return "deliver";
    };
  };
  return { cluster, a, b, alice, slow };
}

/**
 * Wraps the subscriber of node `node` of `cluster`: the first envelope carrying a `BOUND` for
 * `client` after its `RoomJoinFailed` (a late success) goes to `act` with the function that takes
 * it in; every other envelope is taken in at once.
 */
function onLateSuccess(
  cluster: TestCluster,
  node: string,
  client: TestClient,
  act: (takeIn: () => void) => void,
): void {
  const handlers = cluster.network.subscriber(node)!;
  let seen = false;
  cluster.network.subscribe(node, {
    ...handlers,
    receive: (bytes) => {
      if (
        seen || client.last("RoomJoinFailed") === undefined ||
        !decodeBatch(bytes).bodies.some((body) =>
          body.kind === Kind.OUT &&
          body.items.some((item) => item.tag === "bound" && item.conn === client.id)
        )
      ) {
        return handlers.receive(bytes);
      }
      seen = true;
      act(() => handlers.receive(bytes));
    },
  });
}

/** The body kinds of each envelope node `from` publishes from now on (before the fault runs). */
function kindsSentBy(cluster: TestCluster, from: string): number[][] {
  const sent: number[][] = [];
  const fault = cluster.network.fault;
  cluster.network.fault = (sender, to, bytes) => {
    if (sender === from) sent.push(decodeBatch(bytes).bodies.map((body) => body.kind));
    return fault?.(sender, to, bytes) ?? "deliver";
  };
  return sent;
}

/**
 * `bob`'s answers were `RoomJoinFailed`, `SpectatorJoined` (one process's: the failed join left
 * nothing); his late seat in SLOW01 on `a` goes, leaving `players`, and game data `player` sends
 * reaches him as a spectator.
 */
async function watchesSlow01(
  a: TestCluster["nodes"][number],
  bob: TestClient,
  player: TestClient,
  players: number,
): Promise<void> {
  equal(bob.types().join(), "RoomJoinFailed,SpectatorJoined");
  await until(() => a.engine.lookup("orbit", "SLOW01")?.players === players, "Bob's seat released");
  player.say({ type: "GameData", data: { data: "watched" } });
  await until(() => bob.last("GameData")?.data?.data === "watched", "Bob watches");
}

Deno.test("Cluster (twins): a BIND that reaches the home after its deadline → SERVICE_UNAVAILABLE, dropped by the home, no ghost", async () => {
  const { cluster, a, b, alice, slow } = await setup();
  try {
    slow(b.name, Kind.BIND);
    const bob = b.connect();
    join(bob, "Bob", "SLOW01");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "Bob's answer");
    equal(bob.last("RoomJoinFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    equal(b.cluster.router.counts.bindTimeouts, 1);
    await until(() => a.cluster.router.counts.bindsExpired === 1, "the home drops the BIND");
    await settle();
    equal(a.engine.lookup("orbit", "SLOW01")?.players, 1, "no ghost seat");
    ok(!alice.types().includes("PlayerJoined"), alice.types().join());
    equal(bob.types().join(), "RoomJoinFailed", "nothing else reaches Bob");
    // Bob can try again and joins.
    cluster.network.fault = undefined;
    join(bob, "Bob", "SLOW01");
    await until(() => bob.last("RoomJoined") !== undefined, "Bob joins");
    equal(a.engine.lookup("orbit", "SLOW01")?.players, 2);
  } finally {
    await cluster.close();
  }
});

Deno.test('Cluster (twins): a join whose refusal crosses the timeout, and the connection\'s next join to that home sent before the refusal arrives: one answer per request, the late refusal reaches nobody (docs/spec/SERVER.md §8.4.2 "Late success")', async () => {
  const { cluster, a, b } = await setup();
  try {
    // A create-only join of Alice's code: A refuses it, but its answer arrives after B's timer,
    // as does everything A sends meanwhile (in order).
    const bob = b.connect();
    cluster.network.fault = (from) => from === a.name ? { lateMs: FORWARD_MS + 150 } : "deliver";
    const joinRoom = (create: string) =>
      bob.say({
        type: "JoinRoom",
        data: { game_name: "orbit", player_name: "Bob", room_code: "SLOW01", create },
      });
    joinRoom("always");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "the timeout");
    equal(bob.last("RoomJoinFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    // At once, a join of the same room: its home is the same slow node.
    joinRoom("if_missing");
    await until(() => bob.messages.length >= 2, "the second join's answer");
    await new Promise((resolve) => setTimeout(resolve, FORWARD_MS + 200));
    await settle();
    const answers = bob.messages.filter((m) => /^RoomJoin/.test(m.type));
    equal(answers.length, 2, JSON.stringify(bob.messages));
    ok(
      !answers.some((m) => m.data?.error_code === "ROOM_CREATION_FAILED"),
      "the late refusal of the first join reached the client",
    );
    // Once the home has caught up, Bob joins.
    cluster.network.fault = undefined;
    // (Refused at once while the undo of the second join's late success is on its way there.)
    for (let attempt = 0; attempt < 20 && bob.last("RoomJoined") === undefined; attempt++) {
      const before = bob.messages.length;
      joinRoom("if_missing");
      await until(() => bob.messages.length > before, "an answer");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    ok(bob.last("RoomJoined"), JSON.stringify(bob.messages));
  } finally {
    await cluster.close();
  }
});

Deno.test('Cluster (twins): a join whose success crosses the timeout, and the connection\'s next join to that home sent before the success arrives: the late success is still undone, nothing of it reaches the client, no ghost remains (docs/spec/SERVER.md §8.4.2 "Late success")', async () => {
  const { cluster, a, b, alice } = await setup();
  try {
    const bob = b.connect();
    cluster.network.fault = (from) => from === a.name ? { lateMs: FORWARD_MS + 150 } : "deliver";
    join(bob, "Bob", "SLOW01");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "the timeout");
    // At once, another request to the same home (a spectator's place in that room). The home
    // is fast again: its answer comes right behind the late success, within this request's time.
    bob.say(WATCH_SLOW01);
    cluster.network.fault = undefined;
    await until(() => b.cluster.router.counts.bindsUndone === 1, "the late success undone");
    await until(() => a.engine.lookup("orbit", "SLOW01")?.players === 1, "Bob's seat released");
    await new Promise((resolve) => setTimeout(resolve, FORWARD_MS + 200));
    await settle();
    ok(!bob.types().includes("RoomJoined"), bob.types().join());
    equal(bob.types().join(), "RoomJoinFailed,SpectatorJoinFailed", "one answer per request");
    // The spectator request was answered at the home while the late seat was still there
    // ("Already in a room"): that membership is being undone, so it fails as unavailable.
    equal(bob.last("SpectatorJoinFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    equal(b.engine.binding(bob.id), undefined);
    ok(alice.types().includes("PlayerLeft"), alice.types().join());
    alice.say({ type: "GameData", data: { data: "anyone?" } });
    await settle();
    await new Promise((resolve) => setTimeout(resolve, 50));
    equal(bob.types().join(), "RoomJoinFailed,SpectatorJoinFailed", "nothing of the room");
  } finally {
    await cluster.close();
  }
});

Deno.test('Cluster (twins): a late success\'s undo and the connection\'s next request to that home reach the home in one run: the request\'s answer, produced with the late seat in place, leaves before the undo is taken in, so it fails as unavailable rather than "Already in a room" (docs/spec/SERVER.md §8.4.1, §8.4.2 "Late success")', async () => {
  const forwardMs = 600;
  const { cluster, a, b, alice } = await setup(forwardMs);
  try {
    const bob = b.connect();
    // A's answer to Bob's join reaches B after B's timer. B's next BIND to A is slow too (within
    // its deadline), and B's undo of the late success, sent after it, waits behind it: A reads
    // both in one run, and its answer to the second request is fast.
    let fromA = 0;
    cluster.network.fault = (from, _to, bytes) => {
      if (from === a.name) return ++fromA === 1 ? { lateMs: forwardMs + 150 } : "deliver";
      const kinds = decodeBatch(bytes).bodies.map((body) => body.kind);
      if (kinds.includes(Kind.BIND) && bob.messages.length > 0) {
        return { lateMs: 250, oneStream: true };
      }
      if (kinds.includes(Kind.CLOSED)) return { lateMs: 1, oneStream: true };
      return "deliver";
    };
    join(bob, "Bob", "SLOW01");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "the timeout");
    bob.say(WATCH_SLOW01);
    await until(() => b.cluster.router.counts.bindsUndone === 1, "the late success undone");
    await until(() => bob.last("SpectatorJoinFailed") !== undefined, "the second answer");
    // A ran the spectator request with the late seat in place ("Already in a room"); that seat
    // is being undone, so the request fails as unavailable, and Bob is bound nowhere.
    equal(bob.last("SpectatorJoinFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    equal(bob.types().join(), "RoomJoinFailed,SpectatorJoinFailed");
    equal(b.engine.binding(bob.id), undefined);
    cluster.network.fault = undefined;
    await until(() => a.engine.lookup("orbit", "SLOW01")?.players === 1, "Bob's seat released");
    alice.say({ type: "GameData", data: { data: "anyone?" } });
    await settle();
    await new Promise((resolve) => setTimeout(resolve, 50));
    equal(bob.types().join(), "RoomJoinFailed,SpectatorJoinFailed", "nothing of the room");
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test('Cluster (twins): a late success undone in the turn the connection sends its next request to that home: the request\'s BIND, not yet sent, goes behind the undo, so the home runs it as one process would (docs/spec/SERVER.md §8.4.2 "Late success")', async () => {
  const { cluster, a, b, alice, slow } = await setup();
  try {
    const bob = b.connect();
    slow(a.name, Kind.OUT);
    // When the late success reaches B, Bob sends his next request to A first, and B takes the
    // late success in after that request's BIND has joined its envelope to A, in the same turn.
    onLateSuccess(cluster, b.name, bob, (takeIn) => {
      bob.say(WATCH_SLOW01);
      setImmediate(takeIn);
    });
    const fromB = kindsSentBy(cluster, b.name);
    join(bob, "Bob", "SLOW01");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "the timeout");
    equal(bob.last("RoomJoinFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    await until(() => bob.messages.length >= 2, "the second answer");
    ok(
      fromB.some((kinds) => kinds.includes(Kind.BIND) && kinds.includes(Kind.CLOSED)),
      `the request and the undo in one envelope: ${JSON.stringify(fromB)}`,
    );
    equal(b.cluster.router.counts.bindsUndone, 1);
    // One process: the failed join left nothing, so Bob watches the room.
    await watchesSlow01(a, bob, alice, 1);
    equal(b.engine.binding(bob.id), undefined);
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test('Cluster (twins): a slow consumer whose request to another home times out is closed 1013 by its SERVICE_UNAVAILABLE, as by any frame it cannot take (docs/spec/SERVER.md §5.2, §8.4.2 "Timeout")', async () => {
  const { cluster, a, b, slow } = await setup();
  try {
    slow(a.name, Kind.OUT);
    const bob = b.connect();
    join(bob, "Bob", "SLOW01");
    // Bob stops reading while his join waits: the answer the timeout gives him overflows his
    // outbound buffer, which drops what was queued there; he must not stay open as if nothing
    // had been lost.
    bob.stalled = true;
    await until(() => b.cluster.router.counts.bindTimeouts === 1, "the timeout");
    equal(bob.closed, 1013, "closed as a slow consumer");
    await until(() => b.cluster.router.counts.bindsUndone === 1, "the late BOUND undone");
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a success that crosses the timeout is undone (abandoned); nothing of it reaches the client, no ghost remains", async () => {
  const { cluster, a, b, alice, slow } = await setup();
  try {
    slow(a.name, Kind.OUT);
    const bob = b.connect();
    join(bob, "Bob", "SLOW01");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "Bob's answer");
    equal(bob.last("RoomJoinFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    await until(() => b.cluster.router.counts.bindsUndone === 1, "the late BOUND undone");
    await until(() => a.engine.lookup("orbit", "SLOW01")?.players === 1, "seat released");
    await settle();
    equal(bob.types().join(), "RoomJoinFailed", "no RoomJoined after the failure");
    equal(b.engine.binding(bob.id), undefined);
    // Alice saw Bob come and go; the room is hers alone again and play goes on.
    ok(alice.types().includes("PlayerLeft"), alice.types().join());
    cluster.network.fault = undefined;
    join(bob, "Bob", "SLOW01");
    await until(() => bob.last("RoomJoined") !== undefined, "Bob joins");
    alice.say({ type: "GameData", data: { data: "hi" } });
    await until(() => bob.last("GameData") !== undefined, "relay");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): the answer to a pending join is lost (gap) → SERVICE_UNAVAILABLE, and the home undoes the seat it gave", async () => {
  // A long forward timeout: the gap, not the timer, ends the request.
  const { cluster, a, b, alice } = await setup(5_000);
  try {
    let drop = true;
    cluster.network.fault = (from, _to, bytes) => {
      if (drop && from === a.name && decodeEnvelope(bytes).kind === Kind.OUT) {
        drop = false;
        return "drop";
      }
      return "deliver";
    };
    const bob = b.connect();
    join(bob, "Bob", "SLOW01");
    await until(() => alice.last("PlayerJoined") !== undefined, "Bob seated on A");
    // The next envelope from A to B shows the gap.
    alice.say({ type: "GameData", data: { data: "hello Bob?" } });
    await until(() => bob.last("RoomJoinFailed") !== undefined, "Bob's answer");
    equal(bob.last("RoomJoinFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    await until(() => a.engine.lookup("orbit", "SLOW01")?.players === 1, "no ghost seat");
    await settle();
    equal(bob.types().join(), "RoomJoinFailed");
    equal(bob.closed, undefined, "Bob may try again");
    join(bob, "Bob", "SLOW01");
    await until(() => bob.last("RoomJoined") !== undefined, "Bob joins");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a home's answer and its next frame processed back to back both reach the client", async () => {
  const { cluster, a, b, alice } = await setup(5_000);
  try {
    // Catch A's OUT envelopes from the answer to Bob's BIND up to the one that carries Alice's
    // next frame, then hand them all to B in one synchronous run, as the Redis client does with
    // messages that arrive in one read. Caught by content, not by count: under load the answer
    // and the frame may leave A in one envelope.
    const caught: Uint8Array[] = [];
    const text = new TextDecoder();
    let frameCaught = false;
    cluster.network.fault = (from, _to, bytes) => {
      if (!frameCaught && from === a.name && decodeEnvelope(bytes).kind === Kind.OUT) {
        caught.push(bytes);
        frameCaught = text.decode(bytes).includes("welcome");
        return "drop";
      }
      return "deliver";
    };
    const bob = b.connect();
    join(bob, "Bob", "SLOW01");
    await until(() => alice.last("PlayerJoined") !== undefined, "Bob seated on A");
    alice.say({ type: "GameData", data: { data: "welcome" } });
    await until(() => frameCaught, "the envelopes up to Alice's frame");
    ok(text.decode(caught[0]!).includes("RoomJoined"), "the first caught envelope is the answer");
    const receive = b.cluster.router.busHandlers().receive;
    for (const bytes of caught) receive(bytes);
    await until(() => bob.last("GameData") !== undefined, "the frame right after the answer");
    equal(bob.types().join(), "RoomJoined,GameData");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a Reconnect whose success crosses the timeout is undone: the seat is held again and the token presented works again", async () => {
  const { cluster, a, b, alice, slow } = await setup();
  try {
    const c = cluster.nodes[2]!;
    const bob = b.connect();
    join(bob, "Bob", "SLOW01");
    await until(() => bob.last("RoomJoined") !== undefined, "Bob joins");
    const joined = bob.last("RoomJoined")!.data!;
    const reconnect = reconnectFor(joined);
    b.edge.disconnect(bob.id, Date.now());
    await until(() => a.engine.stats().heldSeats === 1, "Bob's seat held");
    // Bob's Reconnect through B succeeds on A, but the answer arrives after B's timer.
    slow(a.name, Kind.OUT);
    const again = b.connect();
    again.say(reconnect);
    await until(() => again.last("ReconnectionFailed") !== undefined, "the answer");
    equal(again.last("ReconnectionFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    await until(() => b.cluster.router.counts.bindsUndone === 1, "the late success undone");
    await until(() => a.engine.stats().heldSeats === 1, "the seat held again");
    ok(!alice.types().includes("PlayerLeft"), alice.types().join());
    equal(a.engine.lookup("orbit", "SLOW01")?.players, 2);
    equal(again.types().join(), "ReconnectionFailed");
    // The token Bob holds still resumes the seat, through any node; the replay is truncated.
    // Envelopes go at once now, so C's request times out only when this whole process stalls
    // longer than FORWARD_MS (seen on a loaded machine): C answers SERVICE_UNAVAILABLE and counts
    // a bind timeout, and A drops the expired BIND or its late success is undone, as Bob's was.
    // The token works again then, so it is presented again; any other refusal fails.
    cluster.network.fault = undefined;
    for (let attempt = 1;; attempt++) {
      const before = { ...c.cluster.router.counts };
      const expiredBefore = a.cluster.router.counts.bindsExpired;
      const third = c.connect();
      third.say(reconnect);
      await until(
        () => !!third.last("Reconnected") || !!third.last("ReconnectionFailed"),
        "the retry's answer",
      );
      const resumed = third.last("Reconnected");
      if (resumed) {
        equal(resumed.data!.replay_truncated, true);
        break;
      }
      ok(
        attempt < 5 && c.cluster.router.counts.bindTimeouts > before.bindTimeouts,
        JSON.stringify(third.messages),
      );
      await until(
        () =>
          c.cluster.router.counts.bindsUndone > before.bindsUndone ||
          a.cluster.router.counts.bindsExpired > expiredBefore,
        "the timed-out retry undone or dropped",
      );
      await until(() => a.engine.stats().heldSeats === 1, "the seat held again");
    }
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a late UNBIND from a home the connection has left does not unbind it from its new home", async () => {
  const { cluster, a, b, slow } = await setup();
  try {
    const c = cluster.nodes[2]!;
    const host = a.connect();
    host.say({
      type: "JoinRoom",
      data: { game_name: "orbit", player_name: "Host", max_players: 2, room_code: "FULL01" },
    });
    const dave = a.connect();
    await until(() => host.last("RoomJoined") !== undefined, "FULL01");
    join(dave, "Dave", "FULL01");
    const carol = c.connect();
    join(carol, "Carol", "OTHER1");
    await until(() => !!dave.last("RoomJoined") && !!carol.last("RoomJoined"), "rooms");
    // Bob's join of the full room: A's refusal (RoomJoinFailed + UNBIND) arrives late.
    slow(a.name, Kind.OUT);
    const bob = b.connect();
    join(bob, "Bob", "FULL01");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "the timeout");
    join(bob, "Bob", "OTHER1");
    await until(() => bob.last("RoomJoined") !== undefined, "Bob joins Carol's room");
    await new Promise((resolve) => setTimeout(resolve, FORWARD_MS + 200)); // the late OUT lands
    bob.say({ type: "GameData", data: { data: "to Carol" } });
    await until(() => carol.last("GameData") !== undefined, "Bob's data reaches Carol");
    equal(bob.types().join(), "RoomJoinFailed,RoomJoined");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a success that crosses the timeout is undone even when the client has joined a room on a third node meanwhile", async () => {
  const { cluster, a, b, alice, slow } = await setup();
  try {
    const c = cluster.nodes[2]!;
    await joined(c, "Carol", "OTHER1");
    // Bob's join of Alice's room succeeds on A, but the answer arrives after the timeout.
    slow(a.name, Kind.OUT);
    const bob = b.connect();
    join(bob, "Bob", "SLOW01");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "the timeout");
    // At once another request, to another home: the late success from A must still be undone.
    join(bob, "Bob", "OTHER1");
    await until(() => bob.last("RoomJoined") !== undefined, "Bob joins Carol's room");
    await until(() => b.cluster.router.counts.bindsUndone === 1, "the late BOUND undone");
    await until(() => a.engine.lookup("orbit", "SLOW01")?.players === 1, "no ghost seat on A");
    ok(alice.types().includes("PlayerLeft"), alice.types().join());
    equal(bob.types().join(), "RoomJoinFailed,RoomJoined");
    equal(c.engine.lookup("orbit", "OTHER1")?.players, 2);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a member's request to its own home has no timeout: a slow home's late answer is the only answer, and the membership stays (docs/spec/SERVER.md §8.4.2)", async () => {
  const { cluster, a, b, alice, slow } = await setup();
  try {
    const bob = await joined(b, "Bob", "SLOW01");
    // Bob asks his own home for something (a second join of the room): the answer is late,
    // past forward_timeout_ms.
    slow(a.name, Kind.OUT);
    join(bob, "Bob", "SLOW01");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "the answer");
    await new Promise((resolve) => setTimeout(resolve, FORWARD_MS)); // no second answer
    await settle();
    deepEqual(
      bob.messages.filter((m) => m.type === "RoomJoinFailed").map((m) => m.data!.error_code),
      ["ALREADY_IN_ROOM"],
      "one answer, the home's",
    );
    equal(b.cluster.router.counts.bindTimeouts, 0);
    equal(b.cluster.router.counts.bindsUndone, 0);
    const seat = a.engine.roomDetail("orbit", "SLOW01", Date.now())?.members
      .find((member) => member.player_id === bob.id);
    equal(seat?.held, false, "Bob's seat is still live");
    ok(!alice.types().includes("PlayerLeft"), alice.types().join());
    alice.say({ type: "GameData", data: { data: "still there?" } });
    await until(() => bob.last("GameData") !== undefined, "relay to Bob");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a member's request that reaches its home after the request's deadline is still carried out there: its edge never gave up on it (docs/spec/SERVER.md §8.4.2, §8.4.4)", async () => {
  const { cluster, a, b, slow } = await setup();
  try {
    const bob = await joined(b, "Bob", "SLOW01");
    slow(b.name, Kind.BIND);
    bob.say(WATCH_SLOW01);
    await until(() => bob.last("SpectatorJoinFailed") !== undefined, "the answer");
    equal(bob.last("SpectatorJoinFailed")!.data!.error_code, "ALREADY_IN_ROOM");
    equal(a.cluster.router.counts.bindsExpired, 0, "not dropped as expired");
    equal(b.cluster.router.counts.bindTimeouts, 0);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): after a resync undoes a pending join, the connection's next request to that home is not answered by the undone join's late items", async () => {
  const { cluster, a, b, alice } = await setup(2_000);
  try {
    // A's envelopes to B arrive 150 ms late (in order): Bob's join is answered after the resync.
    cluster.network.fault = (from, to) =>
      from === a.name && to === b.name ? { lateMs: 150 } : "deliver";
    const bob = b.connect();
    join(bob, "Bob", "SLOW01");
    await until(() => a.engine.lookup("orbit", "SLOW01")?.players === 2, "Bob seated on A");
    // B resyncs with A (a lost publish): Bob's join fails at once and is undone (abandoned).
    b.cluster.router.streams.lost(a.name);
    await until(() => bob.last("RoomJoinFailed") !== undefined, "Bob's join failed");
    equal(bob.last("RoomJoinFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    // Bob's next request goes to the same home before A has undone the join (a Reconnect to a
    // room there with a token that is not valid).
    const roomId = alice.last("RoomJoined")!.data!.room_id;
    bob.say({
      type: "Reconnect",
      data: { player_id: alice.id, room_id: roomId, auth_token: "x".repeat(43) },
    });
    await until(() => a.engine.lookup("orbit", "SLOW01")?.players === 1, "the join undone on A");
    await new Promise((resolve) => setTimeout(resolve, 400)); // A's late envelopes land
    await settle();
    // Whatever Bob was told, it matches A: he holds no seat there, so he was not told he joined.
    equal(bob.last("RoomJoined"), undefined, bob.types().join());
    equal(b.engine.binding(bob.id), undefined);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a frame bounced by a home the connection has since left is handled as from a connection in no room, and leaves its binding to its new home alone", async () => {
  const { cluster, a, b, alice } = await setup();
  try {
    const carol = await joined(cluster.nodes[2]!, "Carol", "OTHER1");
    const bob = await joined(b, "Bob", "SLOW01");
    await until(() => !!alice.last("PlayerJoined"), "Alice told Bob joined");
    // Bob's next frame reaches A late, after an operator closed the room and Bob joined OTHER1.
    cluster.network.fault = (from, to) =>
      from === b.name && to === a.name ? { lateMs: 150 } : "deliver";
    bob.say({ type: "GameData", data: { data: "for SLOW01" } });
    await a.edge.command({
      kind: "room",
      command: { kind: "close", gameName: "orbit", roomCode: "SLOW01" },
    }, Date.now());
    await until(() => bob.last("RoomLeft") !== undefined, "Bob told the room closed");
    join(bob, "Bob", "OTHER1");
    await until(() => bob.messages.filter((m) => m.type === "RoomJoined").length === 2, "OTHER1");
    // A bounces the late frame (Bob is no member there now).
    await new Promise((resolve) => setTimeout(resolve, 250));
    await settle();
    // As in one process, game data from a player in no room is not answered.
    equal(bob.types().join(), "RoomJoined,RoomLeft,RoomJoined");
    // Bob is still bound to C: his game data reaches Carol, his requests go there.
    equal(b.edge.boundRemote(), 1);
    bob.say({ type: "GameData", data: { data: "for OTHER1" } });
    await until(() => carol.last("GameData") !== undefined, "relay to Carol");
    equal(carol.last("GameData")!.data!.data, "for OTHER1");
    equal(carol.messages.filter((m) => m.type === "GameData").length, 1, "nothing of SLOW01");
    join(bob, "Bob", "OTHER1");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "answer");
    equal(bob.last("RoomJoinFailed")!.data!.error_code, "ALREADY_IN_ROOM");
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster (twins): a join's late success being undone after another connection of the home's node took the player's identity (a Reconnect to a seat homed elsewhere): nothing of the undo reaches that connection (docs/spec/SERVER.md §8.4.2 \"Late success\", docs/spec/PROTOCOL.md §7.11.5)", async () => {
  const { cluster, a, b, alice } = await setup();
  try {
    const c = cluster.nodes[2]!;
    const cole = await joined(c, "Cole", "SEAT01");
    // Bob's join of SLOW01 succeeds on A, but A's answer reaches B after B's timer; from then
    // on whatever B sends A arrives 600 ms late (B's undo among it).
    let late = false;
    let answered = false;
    cluster.network.fault = (from, to, bytes) => {
      if (
        !answered && from === a.name && to === b.name && decodeEnvelope(bytes).kind === Kind.OUT
      ) {
        answered = true;
        return { delayMs: FORWARD_MS + 150 };
      }
      return late && from === b.name && to === a.name ? { lateMs: 600 } : "deliver";
    };
    const bob = b.connect();
    join(bob, "Bob", "SLOW01");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "Bob's answer");
    equal(bob.last("RoomJoinFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    late = true;
    // Bob joins SEAT01 on C instead, then his connection drops (his seat there held).
    join(bob, "Bob", "SEAT01");
    await until(() => bob.last("RoomJoined") !== undefined, "Bob in SEAT01");
    b.edge.disconnect(bob.id, Date.now());
    await until(() => c.engine.stats().heldSeats === 1, "Bob's seat held on C");
    // Larry, on A, takes Bob's identity back with Bob's token.
    const larry = a.connect();
    larry.say(reconnectFor(bob.last("RoomJoined")!.data!));
    await until(() => larry.last("Reconnected") !== undefined, "Larry resumes Bob's seat");
    // B gets A's late answer and undoes it; its CLOSED{abandoned} is on its way to A.
    await until(() => b.cluster.router.counts.bindsUndone === 1, "the late success undone");
    // Meanwhile A still holds Bob's seat in SLOW01. Larry leaves and pings: A answers Larry.
    // Alice's frame goes to her room's members: Bob's seat there, not Larry.
    ok(a.engine.lookup("orbit", "SLOW01")?.players === 2, "Bob's late seat still on A");
    larry.say({ type: "LeaveRoom" });
    await until(() => larry.last("RoomLeft") !== undefined, "Larry leaves SEAT01");
    larry.say({ type: "Ping" });
    await until(() => larry.last("Pong") !== undefined, "Larry's Pong");
    alice.say({ type: "GameData", data: { data: "to SLOW01" } });
    await settle();
    ok(a.engine.lookup("orbit", "SLOW01")?.players === 2, "the undo has not reached A yet");
    // Then the undo reaches A: Bob's seat in SLOW01 goes.
    await until(() => a.engine.lookup("orbit", "SLOW01")?.players === 1, "the undo on A");
    await settle();
    equal(larry.types().join(), "Reconnected,RoomLeft,Pong", "nothing of SLOW01 reaches Larry");
    ok(!cole.types().includes("GameData"), cole.types().join());
    ok(!alice.types().includes("GameData"), alice.types().join());
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test('Cluster (twins): a late success undone in the turn another member of that room sends game data and the connection sends its next request to that home: the game data the home relays to the late seat reaches nobody, the request is answered as one process answers it (docs/spec/SERVER.md §8.4.2 "Late success")', async () => {
  const { cluster, a, b, alice, slow } = await setup();
  try {
    const carol = await joined(b, "Carol", "SLOW01");
    const bob = b.connect();
    slow(a.name, Kind.OUT);
    // When the late success reaches B, Bob sends his next request to A; in the turn B takes the
    // late success in, Carol's game data joins B's envelope to A first, behind that request.
    onLateSuccess(cluster, b.name, bob, (takeIn) => {
      bob.say(WATCH_SLOW01);
      setImmediate(() => {
        carol.say({ type: "GameData", data: { data: "from Carol" } });
        takeIn();
      });
    });
    const fromB = kindsSentBy(cluster, b.name);
    join(bob, "Bob", "SLOW01");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "the timeout");
    equal(bob.last("RoomJoinFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    await until(() => bob.last("SpectatorJoined") !== undefined, "the second answer");
    await until(() => alice.last("GameData")?.data?.data === "from Carol", "Carol's game data");
    await settle();
    equal(b.cluster.router.counts.bindsUndone, 1);
    // B sent Carol's game data, then the undo and the request (the undo in an envelope of its
    // own, so what A relays from the game data is known to come before the undo).
    const sent = fromB.flat().filter((kind) => kind !== Kind.MSG);
    deepEqual(sent.slice(-3), [Kind.DATA, Kind.CLOSED, Kind.BIND], JSON.stringify(fromB));
    // One process: the failed join left nothing; Bob never was in SLOW01, and now watches it.
    await watchesSlow01(a, bob, carol, 2);
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});

Deno.test('Cluster (twins): a late success undone in the turn another member of that room sends game data, while the connection\'s Reconnect waits at that home for a probe: the game data reaches nobody, and the Reconnect fails as unavailable as the undo leaves, which drops it at the home (docs/spec/SERVER.md §8.4.2 "Late success", §8.5.3)', async () => {
  const forwardMs = 600;
  const { cluster, a, b, alice } = await setup(forwardMs);
  try {
    const c = cluster.nodes[2]!;
    const carol = await joined(b, "Carol", "SLOW01");
    // Xena, on C, sits in TWO002 on A; a frame A sends her is not acknowledged by C yet (C sends
    // A nothing), so a Reconnect taking her seat waits at A for a probe of C.
    const yuri = await joined(a, "Yuri", "TWO002");
    const xena = await joined(c, "Xena", "TWO002");
    yuri.say({ type: "GameData", data: { data: "to Xena" } });
    await until(() => xena.last("GameData") !== undefined, "Xena's game data");
    const bob = b.connect();
    // A's answer to Bob's join reaches B after B's timer; once Bob's join has failed, what C
    // sends A (the probe's answer) arrives 300 ms late.
    let lateAnswer = true;
    cluster.network.fault = (from, to, bytes) => {
      if (
        lateAnswer && from === a.name && to === b.name &&
        decodeBatch(bytes).bodies.some((body) =>
          body.kind === Kind.OUT && body.items.some((item) => item.tag === "bound")
        )
      ) {
        lateAnswer = false;
        return { lateMs: forwardMs + 150 };
      }
      if (from === c.name && bob.last("RoomJoinFailed") !== undefined) return { lateMs: 300 };
      return "deliver";
    };
    // When the late success reaches B, Carol's game data goes to A in the same turn as the undo.
    let undone = false;
    onLateSuccess(cluster, b.name, bob, (takeIn) => {
      undone = true;
      carol.say({ type: "GameData", data: { data: "from Carol" } });
      takeIn();
    });
    join(bob, "Bob", "SLOW01");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "the timeout");
    equal(bob.last("RoomJoinFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    bob.say(reconnectFor(xena.last("RoomJoined")!.data!));
    await until(() => b.cluster.router.counts.bindsUndone === 1, "the late success undone");
    ok(undone, "Carol's game data sent as the late success arrived");
    await until(() => alice.last("GameData")?.data?.data === "from Carol", "Alice's game data");
    await until(() => bob.last("ReconnectionFailed") !== undefined, "the Reconnect's answer");
    await settle();
    // B failed the Reconnect as it sent the undo, which drops it at A where it waits for the
    // probe; not at its timeout (the join's is the only one). Xena keeps her seat.
    equal(bob.types().join(), "RoomJoinFailed,ReconnectionFailed");
    equal(bob.last("ReconnectionFailed")!.data!.error_code, "SERVICE_UNAVAILABLE");
    equal(b.cluster.router.counts.bindTimeouts, 1);
    equal(xena.closed, undefined);
    equal(a.engine.lookup("orbit", "SLOW01")?.players, 2, "Alice and Carol");
    yuri.say({ type: "GameData", data: { data: "still Xena's" } });
    await until(() => xena.last("GameData")?.data?.data === "still Xena's", "Xena plays on");
  } finally {
    cluster.network.fault = undefined;
    await cluster.close();
  }
});
