/**
 * Expected trouble versus bugs on the cluster's error paths (docs/spec/SERVER.md §7.4, §8.5.5),
 * over the in-memory twins: a resolution, its forwarding to a home or a directory write that fails
 * for Redis or the home (no answer in time, not reachable) is a debug line; one that fails with a
 * bug (a `TypeError`) is one ERROR line naming it, with its stack, and
 * `signal_fish_errors_internal_total` +1. The client gets `SERVICE_UNAVAILABLE` (a resolution or a
 * forwarding) or its answer as usual (a directory write).
 */
import { equal, ok } from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { NoAnswer } from "../coordination/no_answer.ts";
import { ServerMetrics } from "../metrics/server_metrics.ts";
import type { EdgeEvent } from "../transport/events.ts";
import { join, type TestClient, testCluster, until } from "./testing.ts";

/** The server's log records, debug up, into the returned array (until `reset()`). */
async function captureLog(): Promise<LogRecord[]> {
  const seen: LogRecord[] = [];
  await configure({
    sinks: { capture: (r: LogRecord) => void seen.push(r) },
    loggers: [
      { category: ["signal-fish"], lowestLevel: "debug", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
    reset: true,
  });
  return seen;
}

/** `signal_fish_errors_internal_total` of a server whose edges reported `events`. */
function internalErrors(events: readonly EdgeEvent[]): number {
  const metrics = new ServerMetrics({
    connections: () => 0,
    players: () => 0,
    rooms: () => 0,
    heldSeats: () => 0,
    eventsBuffered: () => 0,
    seatHistograms: () => [],
  }, {
    reconnection: true,
    version: "0.0.0-test",
    refreshIntervalSecs: 5,
    ttlSecs: 30,
    historyWindowSecs: 300,
    historyFields: [],
  });
  for (const event of events) metrics.observe(event);
  const line = metrics.renderPrometheus().split("\n")
    .find((l) => l.startsWith("signal_fish_errors_internal_total "));
  return Number(line!.split(" ")[1]);
}

const errors = (seen: readonly LogRecord[]) => seen.filter((r) => r.level === "error");
const text = (r: LogRecord) => r.message.map(String).join("");

/** Bob's answer to joining unknown room `code` through node 1 while `resolveCode` fails with `fault`. */
async function joinWith(fault: Error) {
  const cluster = await testCluster({ nodes: 2 });
  const seen = await captureLog();
  try {
    cluster.store.fault = (call) => call === "resolveCode" ? fault : undefined;
    const bob = cluster.nodes[1]!.connect();
    join(bob, "Bob", "NOPE01");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "Bob's answer");
    return {
      answer: bob.last("RoomJoinFailed")!.data!.error_code,
      seen: [...seen],
      internal: internalErrors(cluster.events),
    };
  } finally {
    cluster.store.fault = undefined;
    await cluster.close();
    await reset();
  }
}

Deno.test("Cluster resolve: Redis without an answer (NoAnswer) → SERVICE_UNAVAILABLE, a debug line, no ERROR, errors_internal unchanged", async () => {
  const { answer, seen, internal } = await joinWith(new NoAnswer("Redis resolve timed out"));
  equal(answer, "SERVICE_UNAVAILABLE");
  equal(errors(seen).length, 0, errors(seen).map(text).join("\n"));
  equal(internal, 0);
  ok(
    seen.some((r) => r.level === "debug" && text(r).includes("NoAnswer: Redis resolve timed out")),
    seen.map(text).join("\n"),
  );
});

Deno.test("Cluster resolve: a bug (TypeError from the store) → SERVICE_UNAVAILABLE, one ERROR line naming it with its stack, errors_internal +1", async () => {
  const { answer, seen, internal } = await joinWith(new TypeError("boom in resolveCode"));
  equal(answer, "SERVICE_UNAVAILABLE");
  const lines = errors(seen);
  equal(lines.length, 1, seen.map(text).join("\n"));
  ok(text(lines[0]!).includes("JoinRoom"), text(lines[0]!));
  ok(text(lines[0]!).includes("TypeError: boom in resolveCode"), text(lines[0]!));
  ok(String(lines[0]!.properties.stack).includes("faults_test.ts"), "the stack is logged");
  equal(internal, 1);
});

/**
 * Alice's room on node 0, then the store's `call` fails with `fault` (or Redis is unreachable)
 * while Bob joins it there (a refresh of its entry) or the empty room is cleaned up after Alice left (its release).
 */
async function writeWith(call: "refresh" | "release", fault: Error | "unreachable") {
  const cluster = await testCluster({ nodes: 2 });
  const seen = await captureLog();
  const node = cluster.nodes[0]!;
  const written = (r: LogRecord) => text(r).startsWith("Cannot write the room directory");
  try {
    const alice = node.connect();
    join(alice, "Alice", "DIR001");
    await until(() => alice.last("RoomJoined") !== undefined, "Alice's RoomJoined");
    if (call === "release") {
      alice.say({ type: "LeaveRoom" });
      await until(() => alice.last("RoomLeft") !== undefined, "Alice's RoomLeft");
    }
    if (fault === "unreachable") cluster.store.unreachable = true;
    else cluster.store.fault = (asked) => asked === call ? fault : undefined;
    if (call === "refresh") {
      const bob: TestClient = node.connect();
      join(bob, "Bob", "DIR001");
      await until(() => bob.last("RoomJoined") !== undefined, "Bob's RoomJoined");
    } else {
      // The empty room's cleanup (docs/spec/SERVER.md §4), an hour later.
      node.edge.command({ kind: "sweep" }, Date.now() + 3_600_000);
      equal(node.engine.stats().rooms, 0);
    }
    await until(() => seen.some(written), "the failed write's line");
    return {
      lines: seen.filter(written),
      seen: [...seen],
      internal: internalErrors(cluster.events),
    };
  } finally {
    cluster.store.fault = undefined;
    cluster.store.unreachable = false;
    await cluster.close();
    await reset();
  }
}

Deno.test("Edge directory write: Redis without an answer (NoAnswer) → debug line only, errors_internal unchanged", async () => {
  const { lines, seen, internal } = await writeWith(
    "refresh",
    new NoAnswer("Redis refresh timed out"),
  );
  ok(lines.length >= 1);
  for (const line of lines) equal(line.level, "debug", text(line));
  equal(errors(seen).length, 0, errors(seen).map(text).join("\n"));
  equal(internal, 0);
});

Deno.test("Edge directory write: Redis unreachable (client offline) → the release logged at debug only, errors_internal unchanged", async () => {
  const { lines, seen, internal } = await writeWith("release", "unreachable");
  ok(lines.some((line) => text(line).includes("release")), lines.map(text).join("\n"));
  for (const line of lines) equal(line.level, "debug", text(line));
  equal(errors(seen).length, 0, errors(seen).map(text).join("\n"));
  equal(internal, 0);
});

Deno.test("Edge directory write: a bug (TypeError from the store) → one ERROR line naming it with its stack, errors_internal +1", async () => {
  const { lines, seen, internal } = await writeWith("refresh", new TypeError("boom in refresh"));
  equal(errors(seen).length, 1, seen.map(text).join("\n"));
  equal(lines.length, 1);
  equal(lines[0]!.level, "error");
  ok(text(lines[0]!).includes("TypeError: boom in refresh"), text(lines[0]!));
  ok(String(lines[0]!.properties.stack).includes("faults_test.ts"), "the stack is logged");
  equal(internal, 1);
});

Deno.test("Edge directory write: a bug in a release → one ERROR line, errors_internal +1", async () => {
  const { lines, seen, internal } = await writeWith("release", new TypeError("boom in release"));
  equal(errors(seen).length, 1, seen.map(text).join("\n"));
  ok(text(lines[0]!).includes("release"), text(lines[0]!));
  ok(text(lines[0]!).includes("TypeError: boom in release"), text(lines[0]!));
  equal(internal, 1);
});

/**
 * Alice's room on node 0, then Bob joins it through node 1 while node 1's router fails the request
 * to the home with `fault` (after the directory named node 0 as the room's home).
 */
async function bindWith(fault: Error) {
  const cluster = await testCluster({ nodes: 2 });
  const seen = await captureLog();
  const router = cluster.nodes[1]!.cluster.router;
  const bind = router.bind;
  try {
    const alice = cluster.nodes[0]!.connect();
    join(alice, "Alice", "BIND01");
    await until(() => alice.last("RoomJoined") !== undefined, "Alice's RoomJoined");
    router.bind = () => Promise.reject(fault);
    const bob = cluster.nodes[1]!.connect();
    join(bob, "Bob", "BIND01");
    await until(() => bob.last("RoomJoinFailed") !== undefined, "Bob's answer");
    return {
      answer: bob.last("RoomJoinFailed")!.data!.error_code,
      lines: seen.filter((r) => text(r).startsWith("Cannot resolve the request")),
      seen: [...seen],
      internal: internalErrors(cluster.events),
    };
  } finally {
    router.bind = bind;
    await cluster.close();
    await reset();
  }
}

Deno.test("Edge request to a home: no answer (NoAnswer) → SERVICE_UNAVAILABLE, a debug line, errors_internal unchanged", async () => {
  const { answer, lines, seen, internal } = await bindWith(new NoAnswer("home timed out"));
  equal(answer, "SERVICE_UNAVAILABLE");
  equal(errors(seen).length, 0, errors(seen).map(text).join("\n"));
  equal(lines.length, 1, seen.map(text).join("\n"));
  equal(lines[0]!.level, "debug");
  equal(internal, 0);
});

Deno.test("Edge request to a home: a bug (TypeError) → SERVICE_UNAVAILABLE, one ERROR line with its stack, errors_internal +1", async () => {
  const { answer, lines, seen, internal } = await bindWith(new TypeError("boom in bind"));
  equal(answer, "SERVICE_UNAVAILABLE");
  equal(errors(seen).length, 1, seen.map(text).join("\n"));
  equal(lines.length, 1);
  equal(lines[0]!.level, "error");
  ok(text(lines[0]!).includes("TypeError: boom in bind"), text(lines[0]!));
  ok(String(lines[0]!.properties.stack).includes("faults_test.ts"), "the stack is logged");
  equal(internal, 1);
});
