/**
 * The drain of docs/spec/SERVER.md §8.7 over the in-memory twins: a member of a room homed on the
 * draining node who leaves it is sent away at once (step 2), and its next request creates no
 * room there (step 3), even when it arrives before the next periodic drain step.
 */
import { deepEqual, equal } from "node:assert/strict";
import { drainHome } from "../server.ts";
import { withDefaults } from "../config/testing.ts";
import { join, joined, settle, testCluster, threeNodes, until } from "./testing.ts";

Deno.test("Cluster drain (twins): a member who leaves a room homed on the draining node and asks for a new room at once is closed 1001 after its RoomLeft, and no room is created there (docs/spec/SERVER.md §8.7 steps 2–3)", async () => {
  const cluster = await testCluster();
  try {
    const [a, b] = threeNodes(cluster);
    const alice = await joined(a, "Alice", "DRAIN1");
    const bob = await joined(b, "Bob", "DRAIN1");
    await a.cluster.drain();
    a.edge.command({ kind: "drain", final: false }, Date.now());
    await settle();
    // A member's frames that leave it a member (a Ping, game data) keep it here.
    alice.say({ type: "Ping" });
    alice.say({ type: "GameData", data: { data: "still playing" } });
    await settle();
    equal(alice.closed, undefined, "a member of a room homed here stays");
    equal(bob.last("GameData")?.data?.data, "still playing");
    // Between two periodic drain steps: leave, then create (with and without a code).
    alice.say({ type: "LeaveRoom" });
    join(alice, "Alice");
    join(alice, "Alice", "DRAIN2");
    await settle(20);
    deepEqual(alice.types(), ["RoomJoined", "PlayerJoined", "Pong", "RoomLeft"]);
    equal(alice.closed, 1001, "sent away as soon as it stopped being a member");
    deepEqual(a.engine.stats().rooms, 1, "no room created on the draining node");
    deepEqual(bob.types(), ["RoomJoined", "GameData", "PlayerLeft", "AuthorityChanged"]);
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster drain (twins): a member removed from its room on the draining node while its JoinRoom waits on Redis is sent away, and no room is created there (docs/spec/SERVER.md §8.7 steps 2–3)", async () => {
  const cluster = await testCluster();
  try {
    const [a] = threeNodes(cluster);
    await joined(a, "Alice", "DRAIN3");
    const bob = await joined(a, "Bob", "DRAIN3");
    await a.cluster.drain();
    a.edge.command({ kind: "drain", final: false }, Date.now());
    await settle();
    equal(bob.closed, undefined, "a member of a room homed here stays");
    // Bob's JoinRoom arrives while he is a member (it is resolved, not refused by the drain);
    // its first bucket take is answered only after an operator removed him from DRAIN3, well
    // before the next periodic drain step (250 ms).
    const { promise: removed, resolve: release } = Promise.withResolvers<void>();
    let held = false;
    cluster.store.hold = (method) => {
      if (method !== "take" || held) return undefined;
      held = true;
      return removed;
    };
    join(bob, "Bob", "DRAIN4");
    await settle();
    equal(held, true, "the JoinRoom's bucket take is held");
    const remove = {
      kind: "remove_player",
      gameName: "orbit",
      roomCode: "DRAIN3",
      playerId: bob.id,
    } as const;
    const reply = await a.edge.command({ kind: "room", command: remove }, Date.now());
    equal(reply?.ok, true);
    release();
    await settle(20);
    equal(bob.closed, 1001, "sent away once no member here, instead of its request resolved");
    equal(bob.last("RoomJoined")?.data?.room_code, "DRAIN3", "no room joined after DRAIN3");
    equal(a.engine.stats().rooms, 1, "no room created on the draining node");
    equal(
      cluster.store.keys().some((key) => key.includes("DRAIN4")),
      false,
      "no code claimed for it",
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("Cluster drain (twins): drainHome sends connections that are no members here away before its liveness write, so a request arriving while that write waits on Redis creates no room (docs/spec/SERVER.md §8.7 steps 1–3)", async () => {
  const cluster = await testCluster();
  try {
    const [a] = threeNodes(cluster);
    const ivan = a.connect();
    ivan.say({ type: "Ping" });
    await settle();
    equal(ivan.last("Pong")?.type, "Pong");
    // The drain's liveness write (`draining`) waits until the test lets it through.
    const { promise: letThrough, resolve: release } = Promise.withResolvers<void>();
    const write = cluster.store.writeLiveness.bind(cluster.store);
    cluster.store.writeLiveness = async (...args) => {
      await letThrough;
      return await write(...args);
    };
    let end: (() => void) | undefined;
    const drained = drainHome({
      config: withDefaults({ cluster: { drain_timeout_secs: 10 } }),
      engine: a.engine,
      edge: a.edge,
      node: a.cluster,
      listener: { addr: { port: 0 }, shutdown: () => Promise.resolve() },
      onEndable: (resolve) => end = resolve,
    });
    join(ivan, "Ivan");
    await settle(20);
    equal(ivan.last("RoomJoined"), undefined, "a room created on the draining node");
    equal(ivan.closed, 1001, "sent away at once");
    equal(a.engine.stats().rooms, 0);
    release();
    await until(() => end !== undefined, "the drain under way");
    end!();
    await drained;
  } finally {
    await cluster.close();
  }
});
