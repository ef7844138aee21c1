/**
 * Nodes whose clocks are off (docs/spec/SERVER.md §8.1, §8.3 "Epoch"), over the in-memory twins:
 * the epoch's grace window is `T` from its creation by Redis's clock, reckoned by each node from
 * the epoch's age as Redis gives it, whatever that node's own clock says. (The store's side, over
 * the twin and a real Redis: the "clock skew" tests of store_test.ts.)
 */
import { equal, ok } from "node:assert/strict";
import { testCluster } from "./testing.ts";

const TTL_MS = 30_000;

for (
  const [what, skew] of [
    ["10 minutes ahead", 600_000],
    ["2 T behind", -2 * TTL_MS],
  ] as const
) {
  Deno.test(`ClusterNode.inGrace: the epoch's grace window lasts T from its creation by Redis's clock, for a node whose clock runs ${what}`, async () => {
    let offset = skew;
    const now = () => Date.now() + offset;
    // The twin's clock is the true time; the epoch is created at the node's first refresh.
    const cluster = await testCluster({ nodes: 1, ttlMs: TTL_MS, pastGrace: false, now });
    try {
      const node = cluster.nodes[0]!.cluster;
      ok(node.inGrace(now()), "a fresh epoch: in grace");
      offset += TTL_MS - 1_000;
      ok(node.inGrace(now()), "T - 1 s later by the node's clock: still in grace");
      await node.refresh();
      ok(node.inGrace(now()), "a later read of the epoch does not move the window's end");
      offset += 2_000;
      equal(node.inGrace(now()), false, "T + 1 s later: over");
    } finally {
      await cluster.close();
    }
  });
}
