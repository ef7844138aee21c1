import { deepEqual, equal, ok } from "node:assert/strict";
import { type FeedEvent, OperatorFeed } from "../metrics/operator_feed.ts";
import { MemoryNetwork } from "./memory_bus.ts";
import { ClusterOperatorEvents } from "./operator_events.ts";

const T0 = 1_700_000_000_000;

/** Lets queued microtasks (the twin network's deliveries) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** Three nodes, each with a feed and its relay, on one network and one fake clock. */
function cluster(options: { maxPerSecond?: number } = {}) {
  const network = new MemoryNetwork();
  const clock = { now: T0 };
  const nodes = ["a@1", "b@1", "c@1"].map((name) => {
    const feed = new OperatorFeed(
      {
        connections: () => 0,
        stats: () => ({ rooms: 0, players: 0, spectators: 0, heldSeats: 0 }),
        maintenance: () => false,
      },
      { instance: name },
      T0,
    );
    const relay = new ClusterOperatorEvents(network.bus(name), name, (e) => feed.deliver(e), {
      leaseMs: 15_000,
      now: () => clock.now,
      ...options,
    });
    feed.setRelay(relay);
    const seen: FeedEvent[] = [];
    return { name, feed, relay, seen, read: () => feed.subscribe((e) => seen.push(e)) };
  });
  return { network, clock, nodes };
}

function roomCreated(code: string) {
  return { type: "room_created" as const, gameName: "orbit", roomCode: code } as never;
}

/** A connection's end with close code `code` (1006: no close handshake, the client's EOF). */
function ended(code: number) {
  return {
    type: "disconnected" as const,
    connectionId: "c",
    ip: "203.0.113.7",
    code,
    initiator: "client" as const,
    ...(code === 1006 ? { cause: "eof" as const } : {}),
  };
}

const rooms = (seen: FeedEvent[]) =>
  seen.filter((e) => e.event === "room").map((e) => [e.data.room_code, e.data.instance]);

Deno.test("Cluster operator events: nothing is published while no console watches", async () => {
  const { nodes } = cluster();
  await settle();
  for (const node of nodes) node.feed.observe(roomCreated(`R-${node.name}`));
  await settle();
  deepEqual(nodes.map((n) => n.relay.counts.published), [0, 0, 0]);
  ok(nodes.every((n) => !n.relay.wanted));
});

Deno.test("Cluster operator events: a reader on one node sees every node's room events and actions once, named by instance", async () => {
  const { nodes } = cluster();
  await settle();
  const [a, b, c] = nodes as [typeof nodes[0], typeof nodes[0], typeof nodes[0]];
  a.read();
  await settle();
  ok(b.relay.wanted && c.relay.wanted, "the watch notice reached the others");
  equal(a.relay.wanted, false, "a node does not publish for its own readers");
  a.feed.observe(roomCreated("AAAA"));
  b.feed.observe(roomCreated("BBBB"));
  c.feed.publish({ event: "action", data: { action: "close_room", target: "orbit/AAAA", at: 1 } });
  await settle();
  deepEqual(rooms(a.seen), [["AAAA", "a@1"], ["BBBB", "b@1"]]);
  const action = a.seen.find((e) => e.event === "action");
  deepEqual(action?.data, { action: "close_room", target: "orbit/AAAA", at: 1, instance: "c@1" });
  // B and C have no readers: they hear nothing from the events channel.
  deepEqual([b.relay.counts.received, c.relay.counts.received], [0, 0]);
  equal(a.relay.counts.published, 0);
});

Deno.test("Cluster operator events: the lease is renewed while a reader stays and ends after it leaves", async () => {
  const { nodes, clock } = cluster();
  await settle();
  const [a, b] = nodes as [typeof nodes[0], typeof nodes[0]];
  const leave = a.read();
  await settle();
  // 40 s with the reader: renewed every 5 s, so B keeps publishing.
  for (let s = 1; s <= 40; s++) {
    clock.now = T0 + s * 1000;
    for (const node of nodes) node.feed.tick(clock.now);
    await settle();
  }
  ok(b.relay.wanted);
  b.feed.observe(roomCreated("LATE"));
  await settle();
  deepEqual(rooms(a.seen).at(-1), ["LATE", "b@1"]);
  leave();
  // Within the lease B still publishes (nobody reads it), then stops.
  clock.now += 14_000;
  ok(b.relay.wanted);
  clock.now += 2_000;
  equal(b.relay.wanted, false);
  const published = b.relay.counts.published;
  b.feed.observe(roomCreated("GONE"));
  await settle();
  equal(b.relay.counts.published, published);
});

Deno.test("Cluster operator events: over the rate a node leaves events out and says how many", async () => {
  const { nodes, clock } = cluster({ maxPerSecond: 20 });
  await settle();
  const [a, b] = nodes as [typeof nodes[0], typeof nodes[0]];
  a.read();
  await settle();
  for (let i = 0; i < 30; i++) b.feed.observe(roomCreated(`R${i}`));
  clock.now += 1000;
  b.feed.tick(clock.now);
  await settle();
  equal(rooms(a.seen).length, 20);
  deepEqual(a.seen.filter((e) => e.event === "skipped").map((e) => e.data), [
    { count: 10, instance: "b@1" },
  ]);
  // A second later the bucket has refilled.
  b.feed.observe(roomCreated("NEXT"));
  await settle();
  deepEqual(rooms(a.seen).at(-1), ["NEXT", "b@1"]);
});

Deno.test("Cluster operator events: malformed notices and events are ignored", async () => {
  const { network, nodes } = cluster();
  await settle();
  const [a, b] = nodes as [typeof nodes[0], typeof nodes[0]];
  for (const payload of ["", "[]", "null", '{"from":"x@1"}', '{"from":"x@1","lease_ms":-5}']) {
    network.broadcast("watch", payload);
  }
  await settle();
  equal(b.relay.wanted, false);
  a.read();
  await settle();
  for (
    const payload of [
      "{",
      '{"from":"x@1","event":{"event":"sample","data":{}}}',
      '{"from":"x@1","event":{"event":"room","data":[]}}',
      '{"from":"x@1","event":{"event":"room"}}',
    ]
  ) {
    network.broadcast("events", payload);
  }
  network.broadcast(
    "events",
    '{"from":"x@1","event":{"event":"room","data":{"type":"room_created","game_name":"g","room_code":"OK","instance":"x@1"}}}',
  );
  await settle();
  deepEqual(rooms(a.seen), [["OK", "x@1"]]);
});

Deno.test("Cluster operator events: a watching node's samples carry the cluster's sums of every live instance's latest sample", async () => {
  const network = new MemoryNetwork();
  const clock = { now: T0 };
  const figures = [
    { connections: 10, rooms: 2, players: 5, spectators: 1, heldSeats: 0 },
    { connections: 20, rooms: 3, players: 7, spectators: 0, heldSeats: 1 },
    { connections: 30, rooms: 4, players: 9, spectators: 2, heldSeats: 0 },
  ];
  const nodes = ["a@1", "b@1", "c@1"].map((name, i) => {
    const feed = new OperatorFeed(
      {
        connections: () => figures[i]!.connections,
        stats: () => figures[i]!,
        maintenance: () => false,
      },
      { instance: name },
      T0,
    );
    const relay = new ClusterOperatorEvents(network.bus(name), name, (e) => feed.deliver(e), {
      now: () => clock.now,
    });
    feed.setRelay(relay);
    return { feed, relay };
  });
  await settle();
  const samples: FeedEvent[] = [];
  nodes[0]!.feed.subscribe((e) => e.event === "sample" && samples.push(e));
  await settle();
  // One second: every node samples; B's and C's reach A before A's next tick.
  for (const second of [1, 2]) {
    clock.now = T0 + second * 1000;
    nodes[1]!.feed.observe({ type: "game_data", recipients: 4 });
    nodes[1]!.feed.observe(ended(1000));
    nodes[2]!.feed.observe(ended(1006));
    for (const node of nodes) node.feed.tick(clock.now);
    await settle();
  }
  const last = samples.at(-1);
  ok(last?.event === "sample");
  equal(last.data.connections, 10, "the tiles stay this instance's");
  deepEqual(last.data.cluster, {
    instances: 3,
    connections: 60,
    rooms: 9,
    players: 21,
    spectators: 3,
    held_seats: 1,
    delivered_per_sec: 4,
    relay_p99_ms: null,
    rejections_per_sec: 0,
    connection_closes_per_sec: 2,
    connection_drops_per_sec: 1,
  });
  // C goes quiet: 3 s later it no longer counts.
  clock.now += 3_500;
  nodes[0]!.feed.tick(clock.now);
  nodes[1]!.feed.tick(clock.now);
  await settle();
  clock.now += 500;
  nodes[0]!.feed.tick(clock.now);
  const quiet = samples.at(-1);
  ok(quiet?.event === "sample");
  equal(quiet.data.cluster?.instances, 2);
  equal(quiet.data.cluster?.connections, 30);
  // Without readers, no sums: B's relay gives its feed none, where A's (read) gives the sum.
  const own = nodes[1]!.feed.tick(clock.now);
  equal(nodes[1]!.relay.tick(clock.now, own), undefined);
  equal(nodes[0]!.relay.tick(clock.now, own)?.instances, 2);
});

Deno.test("Cluster operator events: subscriptions that fail (Redis not yet reachable) are made again at the next tick", async () => {
  const network = new MemoryNetwork();
  const clock = { now: T0 };
  let refusals = 3;
  const flaky = (name: string) => {
    const bus = network.bus(name);
    const listen = bus.listen.bind(bus);
    bus.listen = (kind, listener) =>
      refusals-- > 0 ? Promise.reject(new Error("Redis away")) : listen(kind, listener);
    return bus;
  };
  const make = (name: string) => {
    const feed = new OperatorFeed(
      {
        connections: () => 0,
        stats: () => ({ rooms: 0, players: 0, spectators: 0, heldSeats: 0 }),
        maintenance: () => false,
      },
      { instance: name },
      T0,
    );
    const relay = new ClusterOperatorEvents(flaky(name), name, (e) => feed.deliver(e), {
      now: () => clock.now,
    });
    feed.setRelay(relay);
    return { feed, relay };
  };
  // A's watch subscription fails; B's events subscription (when its reader comes) fails too.
  const a = make("a@1");
  const b = make("b@1");
  await settle();
  const seen: FeedEvent[] = [];
  b.feed.subscribe((e) => seen.push(e));
  await settle();
  equal(a.relay.wanted, false, "A did not hear B's notice: it was not subscribed");
  // The next ticks subscribe again and B renews its notice within a third of the lease.
  for (let second = 1; second <= 6; second++) {
    clock.now = T0 + second * 1000;
    a.feed.tick(clock.now);
    b.feed.tick(clock.now);
    await settle();
  }
  ok(a.relay.wanted, "A heard a later notice");
  a.feed.observe(roomCreated("LATER"));
  await settle();
  deepEqual(rooms(seen), [["LATER", "a@1"]]);
});

Deno.test("Cluster operator events: an older instance's sample without the connection ends still counts, and those sums say they are partial", async () => {
  const { network, clock, nodes } = cluster();
  await settle();
  const [a, b] = nodes as [typeof nodes[0], typeof nodes[0]];
  a.read();
  await settle();
  // An instance of the version before connection_closes_per_sec (a rolling deploy), and one
  // whose figure is not a number (ignored as malformed).
  const old = {
    t: T0,
    connections: 5,
    rooms: 1,
    players: 2,
    spectators: 0,
    held_seats: 0,
    delivered_per_sec: 3,
    relay_p99_ms: null,
    rejections_per_sec: 1,
    maintenance: false,
  };
  network.broadcast(
    "events",
    JSON.stringify({ from: "old@0", event: { event: "sample", data: old } }),
  );
  network.broadcast(
    "events",
    JSON.stringify({
      from: "bad@0",
      event: { event: "sample", data: { ...old, connection_drops_per_sec: "many" } },
    }),
  );
  clock.now = T0 + 1000;
  a.feed.observe(ended(1006));
  b.feed.observe(ended(1006));
  b.feed.observe(ended(1000));
  b.feed.tick(clock.now);
  await settle();
  const sums = () => {
    a.feed.tick(clock.now);
    const last = a.seen.at(-1);
    return last?.event === "sample" ? last.data.cluster : undefined;
  };
  deepEqual(sums(), {
    instances: 3,
    connections: 5,
    rooms: 1,
    players: 2,
    spectators: 0,
    held_seats: 0,
    delivered_per_sec: 3,
    relay_p99_ms: null,
    rejections_per_sec: 1,
    connection_closes_per_sec: 3,
    connection_drops_per_sec: 2,
    partial: ["connection_closes_per_sec", "connection_drops_per_sec"],
  });
  // Once the older instance is gone (no sample for 3 s), the sums are whole again.
  clock.now += 3_500;
  b.feed.tick(clock.now);
  await settle();
  const whole = sums();
  deepEqual([whole?.instances, whole?.partial], [2, undefined]);
});
