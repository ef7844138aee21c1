/**
 * A Redis Sentinel failover that loses a claim, with nodes whose link state is never seen going
 * down (docs/spec/SERVER.md §8.3 "Redis's identity"): a real primary, its replica and a sentinel,
 * and two in-process {@linkcode ClusterNode}s over the Sentinel client, `T` = 30 s (so their
 * `T/3` refresh, every 10 s, cannot be what reads the new primary's `run_id`).
 *
 * After `SENTINEL FAILOVER` the sentinel names the replica at once, but the nodes' Sentinel client
 * moves to it only at the sentinel's `+switch-master`, about a second later (measured: 1.1 s);
 * a claim written meanwhile lands on the demoted primary and is lost, the repeatable case of a
 * failover to a replica that missed the last writes. node-redis 6.4 drops its readiness for the
 * ~130 ms of the move, which the link sees only because it reads its state at the
 * `topology-change` event (its 250 ms poll alone missed it in every run measured): the nodes here
 * are told of the link's first `up` only, as a client that moves without dropping readiness would
 * leave them, so only `RedisLinkOptions.onPrimaryChange` → {@linkcode ClusterNode.primaryChanged}
 * tells them. Whenever the directory lacks the lost room, a node must answer unknown codes as in
 * the grace window, read the new `run_id` within a second or two, and the room's home must write
 * its entry back, so that no second room can take its code. Ends within ~10 s.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { RedisBus } from "../src/cluster/bus.ts";
import { ClusterNode } from "../src/cluster/node.ts";
import { storeSettings, testRecord } from "../src/cluster/testing.ts";
import { RedisLink, RedisStore } from "../src/cluster/store.ts";
import type { DirectoryRecord } from "../src/coordination/directory.ts";
import type { DirectoryEntry } from "../src/engine/effects.ts";
import { IGNORE_WITHOUT_REDIS, redisCommand, startSentinelSet } from "./redis_server.ts";

const TTL_MS = 30_000;
const SETTINGS = { ...storeSettings(TTL_MS, "sf:"), timeoutMs: 2_000 };

function entry(code: string): DirectoryEntry {
  const { home: _home, ...rest } = testRecord(code, "a@00000001", { createdAt: Date.now() });
  return rest;
}

/** One in-process node over its own Sentinel-backed link; `homed` are the rooms it homes. */
function sentinelNode(
  sentinelPort: number,
  master: string,
  name: string,
  homed: DirectoryEntry[],
  reads: { at: number; runId: string | undefined }[],
) {
  const holder: { node?: ClusterNode } = {};
  const link = new RedisLink({
    url: "redis://ignored.invalid:6379",
    sentinel: { nodes: [{ host: "127.0.0.1", port: sentinelPort }], master },
    // No onState: the node never hears of the move's readiness drop (see the module's note).
    onPrimaryChange: () => holder.node?.primaryChanged(),
    onError: () => {},
  });
  const store = new RedisStore(link, SETTINGS);
  const identity = store.identity.bind(store);
  store.identity = async () => {
    const runId = await identity();
    reads.push({ at: Date.now(), runId });
    return runId;
  };
  const node = holder.node = new ClusterNode({
    store,
    bus: new RedisBus(link, name, "sf:"),
    ttlMs: TTL_MS,
    heartbeatMs: 200,
    forwardTimeoutMs: 2_000,
    entries: () => homed,
  });
  return { link, store, node };
}

Deno.test({
  name:
    "Redis Sentinel failover that loses a claim, the link never seen down (T = 30 s): unknown codes answer as in grace while the directory lacks the room, the new run_id is read within 2 s, the home writes the room back",
  ignore: IGNORE_WITHOUT_REDIS,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using set = await startSentinelSet();
    // A cluster that has been running: its epoch older than T, so no grace window at start.
    await redisCommand(
      set.primary.port,
      "SET",
      "sf:epoch",
      JSON.stringify({ id: crypto.randomUUID(), createdAt: Date.now() - 2 * TTL_MS }),
    );
    const homed: DirectoryEntry[] = [];
    const readsA: { at: number; runId: string | undefined }[] = [];
    const readsB: { at: number; runId: string | undefined }[] = [];
    const a = sentinelNode(set.sentinelPort, set.master, "a@00000001", homed, readsA);
    const b = sentinelNode(set.sentinelPort, set.master, "b@00000001", [], readsB);
    try {
      await Promise.all([a.link.connect(), b.link.connect()]);
      await Promise.all([a.node.start(), b.node.start()]);
      const before = readsA.at(-1)?.runId;
      ok(before !== undefined, "the primary's run_id read at start");
      ok(!a.node.inGrace(Date.now()) && !b.node.inGrace(Date.now()), "no grace window before");

      await set.failover();
      // The sentinel names the replica; the nodes are still on the old primary, which still
      // takes writes: room LOST01's claim lands there (its home is node A).
      const lost = entry("LOST01");
      const claimed = await a.store.claim({ ...lost, home: a.node.node }, { maxRoomsPerGame: 10 });
      deepEqual(claimed, { status: "ok" });
      homed.push(lost);
      const failedOver = Date.now();

      // Until the home has written LOST01 back, every lookup that misses it (the new primary)
      // finds node B answering unknown codes as in the grace window.
      let misses = 0;
      let record: DirectoryRecord | undefined;
      const deadline = failedOver + 8_000;
      for (;;) {
        record = await b.store.lookup("orbit", "LOST01").catch(() => undefined);
        if (record?.roomId === lost.roomId && misses > 0) break;
        if (record === undefined) {
          misses++;
          ok(b.node.inGrace(Date.now()), `B not in grace while LOST01 is missing (miss ${misses})`);
        }
        ok(Date.now() < deadline, `LOST01 never written back (${misses} misses)`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      ok(misses > 0, "the claim on the demoted primary was lost");
      // Both nodes read the new primary's run_id long before their T/3 refresh.
      const took: string[] = [];
      for (const [name, reads] of [["A", readsA], ["B", readsB]] as const) {
        const changed = reads.find((read) => read.runId !== before && read.runId !== undefined);
        ok(changed !== undefined, `${name} read the new run_id`);
        const after = changed.at - failedOver;
        ok(after < 2_000, `${name} read the new run_id ${after} ms after the failover`);
        took.push(`${name} ${after} ms`);
      }
      console.log(
        `new run_id read after the failover: ${
          took.join(", ")
        }; LOST01 missing at ${misses} lookups`,
      );
      equal(record?.home, a.node.node);
      // The replica had the epoch key: the grace comes from the run_id, not an epoch change.
      equal(a.node.epochChanges + b.node.epochChanges, 0, "no epoch change");
      // The grace window lasts T past each node's re-registration.
      ok(a.node.inGrace(Date.now()) && b.node.inGrace(Date.now()), "grace after the failover");
      equal(
        (await b.store.claim({ ...entry("LOST01"), roomId: "second", home: b.node.node }, {
          maxRoomsPerGame: 10,
        }))
          .status,
        "taken",
        "a second room cannot take LOST01's code",
      );
    } finally {
      await a.node.stop();
      await b.node.stop();
      await a.link.close();
      await b.link.close();
    }
  },
});
