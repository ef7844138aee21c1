/**
 * The drain of docs/spec/SERVER.md §8.7 over the in-memory twins: a member of a room homed on the
 * draining node who leaves it is sent away at once (step 2), and its next request creates no
 * room there (step 3), even when it arrives before the next periodic drain step.
 */
import { deepEqual, equal } from "node:assert/strict";
import { join, joined, settle, testCluster, threeNodes } from "./testing.ts";

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
