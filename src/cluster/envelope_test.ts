/**
 * Envelopes (docs/spec/SERVER.md §8.4.1) round-trip byte-exactly; streams (§8.5.1) process in order, drop
 * duplicates, resync on gaps, lost publishes and silence, and heartbeat idle pairs.
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import { type Body, decodeEnvelope, encodeEnvelope, type Envelope, Kind } from "./envelope.ts";
import { MemoryNetwork } from "./memory_bus.ts";
import { Streams } from "./streams.ts";
import type { NodeId } from "./types.ts";

/**
 * Lets the streams end their turns: a turn's batches are published from `setImmediate` and
 * delivered in microtasks, so a few immediates queued after that see it all done, whatever the
 * load. (A timer is no wait for it: an overdue timer runs before a pending immediate, so a stall
 * of a few ms let the assertions run before the turn had ended.)
 */
async function endTurns(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

Deno.test("envelopes: every kind round-trips, text and binary frames unchanged", () => {
  const bodies: Body[] = [
    {
      kind: Kind.BIND,
      conn: "c1",
      meta: { ip: "2001:db8::1", appId: "app", format: "message_pack" },
      deadline: 1_700_000_000_123,
      frame: '{"type":"JoinRoom","data":{"game_name":"ørbit 🚀"}}',
    },
    // A BIND with presence events and an adopted player id (the extended layout), and each alone.
    {
      kind: Kind.BIND,
      conn: "c2",
      meta: { ip: "10.0.0.1", format: "json", presence: true, playerId: "p-adopted" },
      deadline: 1_700_000_000_124,
      frame: '{"type":"JoinRoom"}',
    },
    {
      kind: Kind.BIND,
      conn: "c3",
      meta: { ip: "10.0.0.1", appId: "app", format: "json", presence: true },
      deadline: 1,
      frame: "x",
    },
    {
      kind: Kind.BIND,
      conn: "c4",
      meta: { ip: "10.0.0.1", format: "message_pack", playerId: "p" },
      deadline: 2,
      frame: "y",
    },
    // A member's request to its own home (flag bit 1), alone and with presence events.
    {
      kind: Kind.BIND,
      conn: "c5",
      meta: { ip: "10.0.0.1", format: "json", member: true },
      deadline: 3,
      frame: "z",
    },
    {
      kind: Kind.BIND,
      conn: "c6",
      meta: { ip: "10.0.0.1", format: "json", presence: true, member: true },
      deadline: 4,
      frame: "w",
    },
    { kind: Kind.MSG, conn: "c1", frame: new Uint8Array([0, 255, 7]) },
    { kind: Kind.DATA, conn: "c1", value: '{"x":[1,2,"ü"]}' },
    { kind: Kind.CLOSED, conn: "c1", cause: "abandoned", delivered: 42 },
    {
      kind: Kind.OUT,
      items: [
        { tag: "frame", frame: '{"type":"Pong"}', to: ["c1", "c2"] },
        { tag: "frame", frame: new Uint8Array([1, 2]), to: [] },
        { tag: "bound", conn: "c1", role: "spectator" },
        { tag: "unbind", conn: "c2" },
        { tag: "miss", conn: "c3" },
        { tag: "close", conn: "c4", code: 4001, reason: "Replaced" },
      ],
    },
    { kind: Kind.BOUNCE, conn: "c1", msgSeq: 9, frame: "x" },
    // Short and long strings, ASCII and not (the writer's and reader's two paths).
    { kind: Kind.MSG, conn: "é", frame: "x".repeat(64) + "é" },
    { kind: Kind.MSG, conn: "c".repeat(64), frame: "ü".repeat(200) + "\u0000\u007f" },
    { kind: Kind.CONTROL, requestId: 3, json: '{"kind":"inspect"}' },
    { kind: Kind.REPLY, requestId: 3, json: '{"ok":false}' },
    { kind: Kind.HEARTBEAT },
  ];
  for (const body of bodies) {
    const bytes = encodeEnvelope("a@00000001", 7, 5, body);
    deepEqual(decodeEnvelope(bytes), { source: "a@00000001", seq: 7, ack: 5, ...body });
  }
  // A BIND without presence or adopted id keeps the first release's layout (kind 1, no extra
  // bytes), so instances of that release read it during a rolling deploy.
  const bind = {
    kind: Kind.BIND,
    conn: "c1",
    meta: { ip: "10.0.0.1", format: "json" },
    deadline: 1,
    frame: "x",
  } as const;
  const plain = encodeEnvelope("a", 1, 0, bind);
  const extended = encodeEnvelope("a", 1, 0, { ...bind, meta: { ...bind.meta, presence: true } });
  const kindAt = 1 + 4 + 1 + 4 + 4 + 2; // version, source "a", seq, ack, count
  deepEqual([plain[kindAt], extended[kindAt], extended.length - plain.length], [1, 10, 5]);
  const good = encodeEnvelope("a", 1, 0, { kind: Kind.MSG, conn: "c", frame: "hello" });
  throws(() => decodeEnvelope(good.subarray(0, good.length - 2)), RangeError, "truncated");
  const future = good.slice();
  future[0] = 2;
  throws(() => decodeEnvelope(future), /version/);
});

Deno.test("streams: in order, duplicates dropped, gaps and lost publishes resync the pair", async () => {
  const network = new MemoryNetwork();
  const received: number[] = [];
  const resyncs: string[] = [];
  const make = (node: NodeId) => {
    const bus = network.bus(node);
    const streams = new Streams(
      bus,
      {
        deliver: (envelope) => void received.push(envelope.seq),
        resync: (peer, reason) => void resyncs.push(`${node}:${peer}:${reason}`),
        isPeer: () => true,
      },
      1_000,
      30_000,
    );
    return { bus, streams };
  };
  const a = make("a");
  const b = make("b");
  await a.bus.start({ receive: (x) => a.streams.receive(x), lost: (to) => a.streams.lost(to) });
  await b.bus.start({ receive: (x) => b.streams.receive(x), lost: (to) => b.streams.lost(to) });
  const plan: Record<number, "duplicate" | "drop"> = { 2: "duplicate", 4: "drop" };
  let n = 0;
  network.fault = () => plan[++n] ?? "deliver";
  // One envelope per send: each is flushed as its turn would end.
  for (let i = 0; i < 6; i++) {
    a.streams.send("b", { kind: Kind.MSG, conn: "c", frame: `${i}` });
    a.streams.flush();
  }
  await new Promise((r) => setTimeout(r, 10));
  // 1, 2 (its duplicate dropped), 3; 4 lost → 5 shows the gap (dropped), 6 goes on.
  deepEqual(received, [1, 2, 3, 6]);
  deepEqual(resyncs, ["b:a:gap"]);
  equal(b.streams.stats.duplicates, 1);
  equal(b.streams.stats.gaps, 1);
  // A publish nobody hears is lost: the sender resyncs that pair.
  a.streams.send("nobody", { kind: Kind.HEARTBEAT });
  a.streams.flush();
  await new Promise((r) => setTimeout(r, 10));
  deepEqual(resyncs, ["b:a:gap", "a:nobody:lost"]);
  network.close();
});

Deno.test("streams: one envelope per peer per turn, consecutive OUTs merged, order kept", async () => {
  const network = new MemoryNetwork();
  const received: { seq: number; kind: number; detail: string }[] = [];
  const make = (node: NodeId) => {
    const bus = network.bus(node);
    const streams = new Streams(
      bus,
      {
        deliver: (e) =>
          void received.push({
            seq: e.seq,
            kind: e.kind,
            detail: e.kind === Kind.OUT
              ? e.items.map((item) => item.tag === "frame" ? item.frame : item.tag).join(",")
              : e.kind === Kind.MSG
              ? String(e.frame)
              : "",
          }),
        resync: () => {},
        isPeer: () => true,
      },
      1_000,
      30_000,
    );
    return { bus, streams };
  };
  const a = make("a");
  const b = make("b");
  const c = make("c");
  for (const n of [a, b, c]) {
    await n.bus.start({ receive: (x) => n.streams.receive(x), lost: () => {} });
  }
  const out = (frame: string): Body => ({
    kind: Kind.OUT,
    items: [{ tag: "frame", frame, to: ["x"] }],
  });
  // One turn: two OUTs, a MSG, another OUT to b; one OUT to c.
  equal(a.streams.send("b", out("1")), 1);
  a.streams.send("b", { kind: Kind.OUT, items: [{ tag: "unbind", conn: "x" }] });
  a.streams.send("b", { kind: Kind.MSG, conn: "x", frame: "m" });
  equal(a.streams.send("b", out("2")), 1);
  equal(a.streams.send("c", out("3")), 1);
  equal(network.published, 0, "nothing is published before the turn ends");
  await endTurns();
  equal(network.published, 2, "one envelope per peer");
  deepEqual(received.filter((r) => r.detail !== "3"), [
    { seq: 1, kind: Kind.OUT, detail: "1,unbind" },
    { seq: 1, kind: Kind.MSG, detail: "m" },
    { seq: 1, kind: Kind.OUT, detail: "2" },
  ]);
  // The next turn is the next envelope; a heartbeat names it without a gap.
  equal(a.streams.send("b", out("4")), 2);
  a.streams.tick();
  await endTurns();
  equal(b.streams.stats.gaps, 0);
  equal(b.streams.lastReceived("a"), 2);
  equal(a.streams.stats.bodiesOut, 6);
  equal(b.streams.stats.bodiesIn, 4);
  network.close();
});

Deno.test("streams: what a turn produced for a peer leaves before an envelope with a BIND or CLOSED from that peer is taken in, with the ack it was produced under; an UNBIND or a BIND not yet published can be withdrawn, an envelope cut short (docs/spec/SERVER.md §8.4.1, §8.4.2)", async () => {
  const network = new MemoryNetwork();
  const got: string[] = [];
  const make = (node: NodeId, deliver: (e: Envelope) => void) => {
    const bus = network.bus(node);
    const streams = new Streams(
      bus,
      { deliver, resync: () => {}, isPeer: () => true },
      1_000,
      30_000,
    );
    return { bus, streams };
  };
  const describe = (e: Envelope) =>
    e.kind === Kind.OUT
      ? `${e.seq}/ack${e.ack}:` + e.items.map((i) => i.tag === "frame" ? i.frame : i.tag).join(",")
      : `${e.seq}/ack${e.ack}:${e.kind}`;
  const edge = make("edge", (e) => void got.push(describe(e)));
  // The home answers every BIND it is given with an OUT in the same turn.
  const h = make("home", (e) => {
    if (e.kind === Kind.BIND) {
      h.streams.send("edge", {
        kind: Kind.OUT,
        items: [{ tag: "bound", conn: e.conn, role: "player" }],
      });
    }
  });
  const home = h.streams;
  for (const n of [edge, h]) {
    await n.bus.start({ receive: (x) => n.streams.receive(x), lost: () => {} });
  }
  const bind = (conn: string): Body => ({
    kind: Kind.BIND,
    conn,
    meta: { ip: "10.0.0.1", format: "json" },
    deadline: Date.now() + 1_000,
    frame: "{}",
  });
  const turn = endTurns;
  // The edge's BIND is on its way when the home, in the same turn, produces output for the
  // edge (a room closed): that output leaves before the BIND is taken in, acknowledging nothing.
  edge.streams.send("home", bind("x"));
  edge.streams.flush();
  home.send("edge", {
    kind: Kind.OUT,
    items: [{ tag: "frame", frame: "left", to: ["x"] }, { tag: "unbind", conn: "x" }],
  });
  await turn();
  deepEqual(got, ["1/ack0:left,unbind", "2/ack1:bound"]);
  // A MSG is taken in without that: one envelope at the end of the turn.
  got.length = 0;
  edge.streams.send("home", { kind: Kind.MSG, conn: "x", frame: "m" });
  edge.streams.flush();
  home.send("edge", { kind: Kind.OUT, items: [{ tag: "frame", frame: "f", to: ["x"] }] });
  await turn();
  deepEqual(got, ["3/ack2:f"]);
  // An UNBIND still in the turn's envelope is withdrawn (a request held back), once.
  got.length = 0;
  home.send("edge", {
    kind: Kind.OUT,
    items: [{ tag: "unbind", conn: "x" }, { tag: "frame", frame: "g", to: ["x"] }],
  });
  equal(home.withdrawUnbind("edge", "x"), true);
  equal(home.withdrawUnbind("edge", "x"), false);
  equal(home.withdrawUnbind("nobody", "x"), false);
  await turn();
  deepEqual(got, ["4/ack2:g"]);
  // An undo with a BIND still in the turn's envelope: the BIND comes out, the envelope leaves
  // with the bodies before, and the CLOSED and then the BIND travel in the next one.
  const h2 = make("home2", (e) => void got.push(`${e.seq}/${e.kind}:${"conn" in e ? e.conn : ""}`));
  await h2.bus.start({ receive: (x) => h2.streams.receive(x), lost: () => {} });
  got.length = 0;
  equal(edge.streams.send("home2", bind("y")), 1);
  edge.streams.send("home2", { kind: Kind.MSG, conn: "z", frame: "m" });
  const withdrawn = edge.streams.withdrawBind("home2", "y");
  equal(withdrawn?.conn, "y");
  equal(edge.streams.withdrawBind("home2", "y"), undefined);
  equal(edge.streams.withdrawBind("home2", "nobody"), undefined);
  edge.streams.cut("home2");
  equal(
    edge.streams.send("home2", { kind: Kind.CLOSED, conn: "y", cause: "abandoned", delivered: 0 }),
    2,
  );
  equal(edge.streams.send("home2", withdrawn!), 2);
  await turn();
  deepEqual(got, [`1/${Kind.MSG}:z`, `2/${Kind.CLOSED}:y`, `2/${Kind.BIND}:y`]);
  // Nothing held: a cut publishes nothing (an empty envelope would read as a heartbeat naming a
  // seq never sent), and what follows keeps the open envelope's seq.
  got.length = 0;
  equal(edge.streams.send("home2", bind("w")), 3);
  edge.streams.withdrawBind("home2", "w");
  edge.streams.cut("home2");
  equal(
    edge.streams.send("home2", { kind: Kind.CLOSED, conn: "w", cause: "abandoned", delivered: 0 }),
    3,
  );
  edge.streams.cut("nobody");
  await turn();
  deepEqual(got, [`3/${Kind.CLOSED}:w`]);
  network.close();
});

Deno.test("streams: a window holds the batches of later turns until it ends, in one envelope", async () => {
  const network = new MemoryNetwork();
  const received: string[] = [];
  let clock = 1_000_000;
  const make = (node: NodeId) => {
    const bus = network.bus(node);
    const streams = new Streams(
      bus,
      {
        deliver: (e) => void received.push(`${e.seq}:${e.kind === Kind.MSG ? e.frame : e.kind}`),
        resync: () => {},
        isPeer: () => true,
      },
      1_000,
      30_000,
      () => clock,
      // Longer than the test: only `flush` (a tick, a stop) ends it here.
      60_000,
    );
    return { bus, streams };
  };
  const a = make("a");
  const b = make("b");
  for (const n of [a, b]) {
    await n.bus.start({ receive: (x) => n.streams.receive(x), lost: () => {} });
  }
  const turn = endTurns;
  // No publish in the last window: the first batch leaves at the end of its turn.
  a.streams.send("b", { kind: Kind.MSG, conn: "x", frame: "1" });
  await turn();
  equal(network.published, 1);
  // Within the window: later turns' bodies wait, together.
  clock += 5;
  equal(a.streams.send("b", { kind: Kind.MSG, conn: "x", frame: "2" }), 2);
  await turn();
  equal(a.streams.send("b", { kind: Kind.MSG, conn: "x", frame: "3" }), 2);
  await turn();
  equal(network.published, 1, "held by the window");
  // The window's end (here a flush, as a heartbeat tick or a stop does): one envelope.
  a.streams.flush();
  await turn();
  equal(network.published, 2);
  deepEqual(received, ["1:1", "2:2", "2:3"]);
  // A window after the last publish has passed: the end of the turn again.
  clock += 60_000;
  a.streams.send("b", { kind: Kind.MSG, conn: "x", frame: "4" });
  await turn();
  equal(network.published, 3);
  deepEqual(received.at(-1), "3:4");
  // A batch held by the window leaves with the first send of a turn after the window's end.
  clock += 5;
  a.streams.send("b", { kind: Kind.MSG, conn: "x", frame: "5" });
  await turn();
  equal(network.published, 3, "held by the window");
  clock += 60_000;
  a.streams.send("b", { kind: Kind.MSG, conn: "x", frame: "6" });
  await turn();
  equal(network.published, 4);
  deepEqual(received.slice(-2), ["4:5", "4:6"]);
  // …or with the turn of an envelope received after the window's end.
  clock += 5;
  a.streams.send("b", { kind: Kind.MSG, conn: "x", frame: "7" });
  await turn();
  equal(network.published, 4, "held by the window");
  clock += 60_000;
  b.streams.send("a", { kind: Kind.MSG, conn: "y", frame: "from b" });
  await turn();
  await turn();
  equal(network.published, 6, "b's envelope, then a's held one");
  deepEqual(received.slice(-2), ["1:from b", "5:7"]);
  network.close();
});

Deno.test("streams: a gone node's pair is forgotten once it is no peer and silent for T; live, active or recent ones stay", async () => {
  const network = new MemoryNetwork();
  let clock = 1_000_000;
  let bPeer = false;
  const a = network.bus("a");
  const published: NodeId[] = [];
  const counting = Object.assign(Object.create(a), {
    publish: (to: NodeId, bytes: Uint8Array, heartbeat?: boolean) => {
      published.push(to);
      a.publish(to, bytes, heartbeat);
    },
    forget: (node: NodeId) => void published.push(`forget ${node}`),
  });
  const streams = new Streams(
    counting,
    {
      deliver: () => {},
      resync: () => {},
      isPeer: (peer) => peer === "b" && bPeer,
    },
    1_000,
    30_000,
    () => clock,
  );
  await a.start({ receive: (x) => streams.receive(x), lost: () => {} });
  for (const peer of ["b", "c"]) {
    streams.send(peer, { kind: Kind.MSG, conn: "x", frame: "hello" });
  }
  streams.flush();
  deepEqual(streams.peers(), ["b", "c"]);
  const live = (node: NodeId) => node !== "b" && node !== "c";
  // The heartbeat timer runs every second: each pair gets heartbeats, so it never idles out.
  const wait = (ms: number) => {
    for (const end = clock + ms; clock < end;) {
      clock += 1_000;
      streams.tick();
    }
  };

  wait(29_000); // Not silent for T yet.
  equal(streams.forgetGone(live), 0);
  wait(2_000);
  deepEqual(streams.peers(), ["b", "c"], "heartbeats keep both pairs");
  bPeer = true; // Still bound there: kept, gone or not.
  equal(streams.forgetGone((node) => node !== "b"), 0, "c is live");
  deepEqual(streams.peers(), ["b", "c"]);
  bPeer = false;
  equal(streams.forgetGone((node) => node !== "b"), 1);
  deepEqual(streams.peers(), ["c"]);
  published.length = 0;
  wait(1_000); // Heartbeats go to c only now.
  deepEqual(published, ["c"]);
  equal(streams.forgetGone(live), 1);
  deepEqual(streams.peers(), []);
  deepEqual(published, ["c", "forget c"]);
  await a.close();
});

Deno.test("streams: a node paused for less than 3 × heartbeat_ms suspects no peer that kept sending: its late tick judges nobody, the next one does after the envelopes that waited are read; a peer that fell silent is still suspected (docs/spec/SERVER.md §8.5.1)", async () => {
  const network = new MemoryNetwork();
  const resyncs: string[] = [];
  let clock = 1_000_000;
  const make = (node: NodeId) => {
    const bus = network.bus(node);
    const streams = new Streams(
      bus,
      {
        deliver: () => {},
        resync: (peer, reason) => void resyncs.push(`${node}:${peer}:${reason}`),
        isPeer: () => true,
      },
      250,
      30_000,
      () => clock,
    );
    return { bus, streams };
  };
  const a = make("a");
  const b = make("b");
  for (const n of [a, b]) {
    await n.bus.start({ receive: (x) => n.streams.receive(x), lost: () => {} });
  }
  a.streams.send("b", { kind: Kind.MSG, conn: "x", frame: "from a" });
  b.streams.send("a", { kind: Kind.MSG, conn: "y", frame: "from b" });
  await endTurns();
  // Both tick every 250 ms, B 50 ms after A; each hears the other's heartbeats.
  for (let i = 0; i < 3; i++) {
    clock += 200;
    a.streams.tick();
    await endTurns();
    clock += 50;
    b.streams.tick();
    await endTurns();
  }
  deepEqual(resyncs, []);
  // A is paused 700 ms (its event loop blocked) right after its tick; B goes on ticking, and its
  // heartbeats wait unread at A. A wakes with its tick overdue: the timer runs before A reads
  // them, 900 ms after the last heartbeat A read.
  const waiting: Uint8Array[] = [];
  network.fault = (from, _to, bytes) => {
    if (from !== "b") return "deliver";
    waiting.push(bytes);
    return "drop";
  };
  clock += 200;
  a.streams.tick();
  for (let i = 0; i < 2; i++) {
    clock += 250;
    b.streams.tick();
    await endTurns();
  }
  clock += 200;
  a.streams.tick();
  deepEqual(resyncs, [], "A was paused, B was not silent");
  network.fault = undefined;
  for (const bytes of waiting.splice(0)) a.streams.receive(bytes);
  clock += 50;
  b.streams.tick();
  await endTurns();
  clock += 200;
  a.streams.tick();
  deepEqual(resyncs, [], "B's heartbeats were read");

  // B falls silent after its heartbeat 200 ms before A's last tick: A, on time and then paused
  // twice, suspects it at the second late tick (never two in a row judge nobody).
  network.fault = (from) => from === "b" ? "drop" : "deliver";
  for (let i = 0; i < 2; i++) {
    clock += 250;
    a.streams.tick();
  }
  deepEqual(resyncs, [], "700 ms");
  clock += 700;
  a.streams.tick();
  deepEqual(resyncs, [], "a late tick judges nobody");
  clock += 700;
  a.streams.tick();
  deepEqual(resyncs, ["a:b:suspect"]);
  network.close();
});
