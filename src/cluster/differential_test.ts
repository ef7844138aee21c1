/**
 * Differential test (issue 15 item 2, docs/spec/SERVER.md §8.6 "nothing different in normal operation"):
 * the same scripted sessions against one node and against three (connections assigned
 * round-robin) must give every client the same message sequence once ids, tokens, codes and
 * times are normalised, on the in-memory twins (tests/cluster_differential_test.ts runs it on a
 * real redis-server).
 */
import { deepEqual, ok } from "node:assert/strict";
import { runScript, SCRIPT } from "./differential.ts";
import { testCluster } from "./testing.ts";

/** Runs the script on `nodes` twin nodes (`windowMs` = `cluster.envelope_window_ms`). */
async function run(nodes: number, windowMs = 0): Promise<unknown[][]> {
  const cluster = await testCluster({
    nodes,
    envelopeWindowMs: windowMs,
    engine: { enableReconnection: true },
  });
  try {
    return await runScript(cluster.nodes, 6, SCRIPT);
  } finally {
    await cluster.close();
  }
}

Deno.test("Differential: one node and three nodes give every client the same messages", async () => {
  const single = await run(1);
  const three = await run(3);
  ok(single.every((messages) => messages.length > 0), "every client got something");
  const types = (i: number) => single[i]!.map((m) => (m as { type: string }).type);
  // The script does what it says (so equality is about something).
  ok(types(0).includes("GameStarting") && types(3).includes("GameStarting"), types(0).join());
  ok(types(1).includes("RoomLeft") && types(4).includes("RoomJoinFailed"), types(4).join());
  ok(types(3).includes("SpectatorLeft") && types(5).at(-1) === "RoomJoined", types(5).join());
  for (let i = 0; i < single.length; i++) {
    deepEqual(three[i], single[i], `client ${i}`);
  }
});

Deno.test("Differential: with an envelope window (cluster.envelope_window_ms) three nodes still match one", async () => {
  const single = await run(1);
  const three = await run(3, 5);
  for (let i = 0; i < single.length; i++) {
    deepEqual(three[i], single[i], `client ${i}`);
  }
});
