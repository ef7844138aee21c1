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
    const epochId = crypto.randomUUID();
    await redisCommand(
      set.primary.port,
      "SET",
      "sf:epoch",
      JSON.stringify({ id: epochId, createdAt: Date.now() - 2 * TTL_MS }),
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

      // The home writes LOST01 back only once B's lookup has missed it (or 3 s after it first
      // tries): measured, the directory lacked it for 1 to 4 of B's lookups 10 ms apart, and on a
      // busy machine (load 7 on two cores) the home's write-back fell between two of them in 1
      // run of 8, so no lookup saw the window this test is about. A home slower to re-register
      // than another node is an ordinary case (§8.3 "Redis's identity"), not a delay that hides
      // anything: B must answer as in grace however long the window lasts.
      const missed = Promise.withResolvers<void>();
      const writtenBack: string[] = [];
      /** The home's first refresh of LOST01: "created" when it wrote the lost entry back. */
      const firstWriteBack = Promise.withResolvers<string>();
      const refreshAll = a.store.refreshAll.bind(a.store);
      a.store.refreshAll = async (records) => {
        const at = records.findIndex((record) => record.roomCode === "LOST01");
        if (at < 0) return await refreshAll(records);
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          missed.promise,
          new Promise((resolve) => timer = setTimeout(resolve, 3_000)),
        ]);
        clearTimeout(timer);
        const results = await refreshAll(records);
        writtenBack.push(results[at]!);
        firstWriteBack.resolve(results[at]!);
        return results;
      };

      // Every write so far reached the replica (replication is asynchronous), so that the
      // failover loses only what is written after it starts (but see the epoch check below).
      equal(await redisCommand(set.primary.port, "WAIT", "1", "5000"), 1, "replica in sync");
      const failingOver = set.failover();
      // Awaited below; a failure before that must not turn into an unhandled rejection when the
      // set is stopped (it hid the assertion that had failed).
      failingOver.catch(() => {});
      // The replica is promoted (polled on it, not on the sentinel, which names it up to a second
      // later); the nodes are still on the old primary, which still takes writes: room LOST01's
      // claim lands there (its home is node A) and is lost. Waiting for the sentinel to name the
      // replica first left as little as 150 ms before the nodes moved, and under load the claim
      // once went to the new primary (1 run of 15: "refreshed", the claim not lost).
      for (let i = 0;; i++) {
        // The sentinel closes the clients of an instance it reconfigures (CLIENT KILL).
        const role = String(
          await redisCommand(set.replica.port, "INFO", "replication").catch(() => ""),
        );
        if (/^role:master\r?$/m.test(role)) break;
        ok(i < 4_000, "the replica was never promoted");
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const lost = entry("LOST01");
      const claimed = await a.store.claim({ ...lost, home: a.node.node }, { maxRoomsPerGame: 10 });
      deepEqual(claimed, { status: "ok" });
      homed.push(lost);
      await failingOver;
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
          missed.resolve();
        }
        ok(
          Date.now() < deadline,
          `LOST01 never written back (${misses} misses; the home's refreshes of it: ${
            writtenBack.join() || "none"
          }, "refreshed" = the claim was not lost)`,
        );
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      ok(misses > 0, "the claim on the demoted primary was lost");
      // Its answer may come after B's lookup that saw the entry (two connections).
      equal(await firstWriteBack.promise, "created", "written back by its home");
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
      // Seen under load (about 1 run in 20, WAIT having answered 1; not explained): the promoted
      // replica lacked the epoch key (its INFO said `second_repl_offset:1`, as if promoted at
      // replication offset 0), and the nodes created a new epoch there, an epoch change as
      // docs/spec/SERVER.md §8.3 wants. Then the run_id is not alone in opening the grace window,
      // and the nodes must have seen the change.
      const changes = a.node.epochChanges + b.node.epochChanges;
      const epochNow = String(await redisCommand(set.replica.port, "GET", "sf:epoch"));
      if (epochNow.includes(epochId)) equal(changes, 0, "no epoch change");
      else {
        ok(changes >= 1, `the new primary's epoch ${epochNow} went unnoticed`);
        console.log("the replica was promoted without the epoch key: an epoch change too");
      }
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
