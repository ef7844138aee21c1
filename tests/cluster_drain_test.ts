/**
 * Drain in cluster mode (docs/spec/SERVER.md §8.7), with a real redis-server and two server processes:
 * SIGTERM keeps the rooms homed on the instance alive for their members on any instance, sends
 * other connections away with 1001, and exits 0 once no room is left; at the drain timeout the
 * rooms still open are deleted and their remote members get `RoomLeft`.
 */
import { equal, ok } from "node:assert/strict";
import { joinRoom, TestClient } from "./helpers.ts";
import { health, startCluster } from "./cluster_helpers.ts";
import { exitWithin } from "./process.ts";
import { IGNORE_WITHOUT_REDIS, redisCommand } from "./redis_server.ts";

const opts = { ignore: IGNORE_WITHOUT_REDIS, sanitizeResources: false, sanitizeOps: false };

/** A room homed on instance 0 with Alice (on 0) and Bob (on 1), and an idle Ivan on 0. */
async function roomOnZero(cluster: Awaited<ReturnType<typeof startCluster>>) {
  const alice = await TestClient.connect(cluster.wsUrl(0));
  const bob = await TestClient.connect(cluster.wsUrl(1));
  const ivan = await TestClient.connect(cluster.wsUrl(0));
  alice.send(joinRoom(null, "Alice"));
  const created = await alice.next("RoomJoined");
  bob.send(joinRoom(created.data.room_code, "Bob"));
  await bob.next("RoomJoined");
  await alice.waitFor("PlayerJoined");
  return { alice, bob, ivan };
}

Deno.test({
  ...opts,
  name:
    "cluster drain: SIGTERM keeps the homed room playing, closes others with 1001, exits 0 when it empties",
  fn: async () => {
    await using cluster = await startCluster(2, { SIGNAL_FISH_CLUSTER__DRAIN_TIMEOUT_SECS: "20" });
    const { alice, bob, ivan } = await roomOnZero(cluster);
    cluster.servers[0]!.child.kill("SIGTERM");
    equal((await ivan.closed).code, 1001, "not a member of a room homed here");
    equal(await health(cluster, 0), 503);
    // The room keeps working for its members on both instances.
    bob.send({ type: "GameData", data: { data: "still here" } });
    equal((await alice.waitFor("GameData")).data.data, "still here");
    alice.send({ type: "GameData", data: { data: "me too" } });
    equal((await bob.waitFor("GameData")).data.data, "me too");
    // Both leave: the room is deleted at once and the drain ends.
    bob.send({ type: "LeaveRoom" });
    await bob.waitFor("RoomLeft");
    alice.send({ type: "LeaveRoom" });
    const status = await exitWithin(cluster.servers[0]!, 10_000);
    equal(status?.code, 0, cluster.servers[0]!.output().slice(-2000));
    await bob.close();
  },
});

Deno.test({
  ...opts,
  name:
    "cluster drain: at the drain timeout the open room is deleted; its remote member gets RoomLeft",
  fn: async () => {
    await using cluster = await startCluster(2, { SIGNAL_FISH_CLUSTER__DRAIN_TIMEOUT_SECS: "1" });
    const { alice, bob } = await roomOnZero(cluster);
    cluster.servers[0]!.child.kill("SIGTERM");
    await bob.waitFor("RoomLeft", 5_000);
    const closed = await alice.closed;
    equal(closed.code, 1001);
    const status = await exitWithin(cluster.servers[0]!, 10_000);
    equal(status?.code, 0);
    // Bob is free again on instance 1: his next room is created there.
    bob.send(joinRoom(null, "Bob"));
    ok((await bob.next("RoomJoined")).data.room_code);
    await bob.close();
  },
});

Deno.test({
  ...opts,
  name:
    "cluster drain: while the draining liveness write waits on Redis, a connection that is no member here is sent away and creates no room",
  fn: async () => {
    await using cluster = await startCluster(2, { SIGNAL_FISH_CLUSTER__DRAIN_TIMEOUT_SECS: "20" });
    const ivan = await TestClient.connect(cluster.wsUrl(0));
    ivan.send({ type: "Ping" });
    await ivan.next("Pong");
    // Redis holds every write for 1.5 s, the drain's liveness write included (reads still go).
    await redisCommand(cluster.redis.port, "CLIENT", "PAUSE", "1500", "WRITE");
    cluster.servers[0]!.child.kill("SIGTERM");
    // The signal is handled a moment later: wait until the drain has begun (health 503).
    for (let i = 0; (await health(cluster, 0)) !== 503; i++) {
      ok(i < 250, "the drain never started");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    ivan.send(joinRoom(null, "Ivan"));
    const closed = await ivan.closed;
    equal(closed.code, 1001);
    const received: string[] = [];
    for (;;) {
      const message = await ivan.next(undefined, 1).catch(() => undefined);
      if (!message) break;
      received.push(message.type);
    }
    ok(!received.includes("RoomJoined"), `a room was created on the draining node: ${received}`);
    // No room holds the drain: the instance exits well before its 20-s drain timeout.
    const status = await exitWithin(cluster.servers[0]!, 10_000);
    equal(status?.code, 0, cluster.servers[0]!.output().slice(-2000));
  },
});
