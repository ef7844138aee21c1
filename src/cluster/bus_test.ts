/**
 * The bus contract (docs/spec/SERVER.md §8.4.1, §8.5.1) over the in-memory twin and Redis: FIFO per pair,
 * bytes unchanged (0x00 and 0xff included), a publish nobody receives reported lost; then the
 * twin's faults, and Redis's resubscription after a restart.
 */
import { deepEqual, equal } from "node:assert/strict";
import { IGNORE_WITHOUT_REDIS, startRedis } from "../../tests/redis_server.ts";
import { RedisBus } from "./bus.ts";
import { MemoryNetwork } from "./memory_bus.ts";
import { RedisLink } from "./store.ts";
import type { BusHandlers, ClusterBus } from "./types.ts";

type Cleanups = (() => Promise<void> | void)[];
type MakeBus = (node: string, cleanups: Cleanups) => Promise<ClusterBus>;

/** Resolves once `check()` holds (polled every 5 ms), rejects after 5 s. */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function recorder() {
  const received: number[][] = [];
  const lost: string[] = [];
  const handlers: BusHandlers = {
    receive: (bytes) => void received.push([...bytes]),
    lost: (to) => void lost.push(to),
  };
  return { received, lost, handlers };
}

const BUSES: { name: string; ignore?: boolean; setup: (c: Cleanups) => Promise<MakeBus> }[] = [
  {
    name: "memory twin",
    setup: () => {
      const network = new MemoryNetwork();
      return Promise.resolve((node) => Promise.resolve(network.bus(node)));
    },
  },
  {
    name: "redis",
    ignore: IGNORE_WITHOUT_REDIS,
    setup: async (cleanups) => {
      const server = await startRedis();
      cleanups.push(() => server.stop());
      return async (node, c) => {
        const link = new RedisLink({ url: server.url });
        await link.connect();
        const bus = new RedisBus(link, node, "sf:");
        c.push(() => bus.close());
        return bus;
      };
    },
  },
];

/**
 * One contract test per bus: `body` gets the buses of nodes `a@1` and `b@2`, not yet started;
 * everything is closed afterwards.
 */
function busContract(title: string, body: (a: ClusterBus, b: ClusterBus) => Promise<void>): void {
  for (const { name, ignore, setup } of BUSES) {
    Deno.test({
      name: `ClusterBus (${name}): ${title}`,
      ignore,
      fn: async () => {
        const cleanups: Cleanups = [];
        try {
          const make = await setup(cleanups);
          await body(await make("a@1", cleanups), await make("b@2", cleanups));
        } finally {
          for (const cleanup of cleanups.reverse()) await cleanup();
        }
      },
    });
  }
}

busContract(
  "FIFO per pair, bytes unchanged, unheard publishes lost (heartbeats not)",
  async (a, b) => {
    const atA = recorder();
    const atB = recorder();
    await a.start(atA.handlers);
    await b.start(atB.handlers);
    const sent: number[][] = [];
    for (let i = 0; i < 200; i++) {
      const bytes = new Uint8Array([i & 0xff, 0x00, 0xff, i >> 8]);
      sent.push([...bytes]);
      // A view into a larger buffer: only its own bytes travel.
      const big = new Uint8Array(16);
      big.set(bytes, 6);
      a.publish("b@2", big.subarray(6, 10));
    }
    await until(() => atB.received.length === 200, "200 envelopes");
    deepEqual(atB.received, sent);
    b.publish("a@1", new Uint8Array([7]));
    await until(() => atA.received.length === 1, "the answer");
    // A heartbeat nobody hears is not reported (it carries no seq, docs/spec/SERVER.md §8.5.1); the envelope
    // published after it is.
    a.publish("ghost@0", new Uint8Array([1]), true);
    a.publish("nobody@0", new Uint8Array([1]));
    await until(() => atA.lost.length === 1, "the lost report");
    b.publish("a@1", new Uint8Array([8]));
    await until(() => atA.received.length === 2, "a later envelope");
    deepEqual(atA.lost, ["nobody@0"]);
  },
);

busContract(
  "operator channels reach every listener, the sender too, until it stops listening; envelopes unaffected",
  async (a, b) => {
    const atB = recorder();
    await a.start(recorder().handlers);
    await b.start(atB.handlers);
    const heard: Record<string, string[]> = { a: [], b: [], events: [] };
    await a.listen("watch", (payload) => heard.a!.push(payload));
    await b.listen("watch", (payload) => heard.b!.push(payload));
    await b.listen("events", (payload) => heard.events!.push(payload));
    a.broadcast("watch", "notice é 1");
    a.broadcast("events", '{"n":1}');
    await until(() => heard.a!.length === 1 && heard.b!.length === 1, "the notice");
    await until(() => heard.events!.length === 1, "the event");
    deepEqual([heard.a, heard.b, heard.events], [["notice é 1"], ["notice é 1"], ['{"n":1}']]);
    // Listening again replaces the listener; `undefined` stops it.
    const again: string[] = [];
    await b.listen("events", (payload) => again.push(payload));
    await b.listen("watch", undefined);
    a.broadcast("events", '{"n":2}');
    a.broadcast("watch", "notice 2");
    await until(() => again.length === 1 && heard.a!.length === 2, "after the change");
    deepEqual([heard.events, again, heard.b], [['{"n":1}'], ['{"n":2}'], ["notice é 1"]]);
    // The node's own channel still carries envelopes.
    a.publish("b@2", new Uint8Array([5]));
    await until(() => atB.received.length === 1, "an envelope");
    deepEqual(atB.received, [[5]]);
  },
);

Deno.test("MemoryNetwork: drop, duplicate, reorder, delay and fail per envelope", async () => {
  const network = new MemoryNetwork();
  const a = network.bus("a");
  const b = network.bus("b");
  const atA = recorder();
  const atB = recorder();
  await a.start(atA.handlers);
  await b.start(atB.handlers);
  const plan: Record<number, ReturnType<NonNullable<MemoryNetwork["fault"]>>> = {
    1: "drop",
    2: "duplicate",
    3: "reorder",
    5: { delayMs: 20 },
    6: "fail",
  };
  network.fault = (_from, _to, bytes) => plan[bytes[0]!] ?? "deliver";
  for (let i = 0; i <= 7; i++) a.publish("b", new Uint8Array([i]));
  await until(() => atB.received.length === 7 && atA.lost.length === 1, "the faults");
  // 1 dropped; 2 twice; 3 after 4; 5 last (delayed); 6 never arrives, reported lost.
  deepEqual(atB.received.map((r) => r[0]), [0, 2, 2, 4, 3, 7, 5]);
  deepEqual(atA.lost, ["b"]);
  network.close();
});

Deno.test("MemoryNetwork: a late or stalled envelope keeps its pair's order; other pairs pass it", async () => {
  const network = new MemoryNetwork();
  const [a, b, c] = [network.bus("a"), network.bus("b"), network.bus("c")];
  const [atB, atC] = [recorder(), recorder()];
  await a.start(recorder().handlers);
  await b.start(atB.handlers);
  await c.start(atC.handlers);
  const plan: Record<number, ReturnType<NonNullable<MemoryNetwork["fault"]>>> = {
    1: { lateMs: 40 },
    3: { lateMs: 5 },
    4: "duplicate",
    6: { stallMs: 30 },
  };
  network.fault = (_from, _to, bytes) => plan[bytes[0]!] ?? "deliver";
  for (let i = 0; i <= 7; i++) a.publish(i === 2 ? "c" : "b", new Uint8Array([i]));
  // The other pair's envelope is not held back by the late one.
  await until(() => atC.received.length === 1, "a → c");
  equal(atB.received.length, 1, "only the envelope before the late one has reached b");
  await until(() => atB.received.length === 8, "a → b, all of it");
  // 3 is due before 1 but waits behind it; 4 twice; 6 stalled, 7 behind it.
  deepEqual(atB.received.map((r) => r[0]), [0, 1, 3, 4, 4, 5, 6, 7]);
  network.close();
});

Deno.test({
  name: "RedisBus: the subscriber comes back by itself after Redis restarts",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    const server = await startRedis();
    const linkA = new RedisLink({ url: server.url });
    const linkB = new RedisLink({ url: server.url });
    const a = new RedisBus(linkA, "a@1", "sf:");
    const b = new RedisBus(linkB, "b@2", "sf:");
    try {
      await Promise.all([linkA.connect(), linkB.connect()]);
      const atA = recorder();
      const atB = recorder();
      await a.start(atA.handlers);
      await b.start(atB.handlers);
      a.publish("b@2", new Uint8Array([1]));
      await until(() => atB.received.length === 1, "before the restart");
      await server.restart();
      // Publish until one gets through: lost publishes are reported, none is delivered twice.
      let sent = 1;
      await until(() => {
        if (atB.received.length === 1 && linkA.state === "up" && linkB.state === "up") {
          a.publish("b@2", new Uint8Array([++sent]));
        }
        return atB.received.length >= 2;
      }, "delivery after the restart");
      equal(atB.received[0]![0], 1);
      equal(atB.received.length, new Set(atB.received.map((r) => r[0])).size, "no duplicates");
    } finally {
      await a.close();
      await b.close();
      await server.stop();
    }
  },
});
