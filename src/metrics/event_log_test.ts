import { deepEqual, equal } from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import type { EdgeEvent } from "../transport/events.ts";
import { logEvent, setSuppressedLineCheck } from "./event_log.ts";

/** Sends the hub's log records from `lowestLevel` up to the returned array (until `reset()`). */
async function captureHub(lowestLevel: "debug" | "info"): Promise<LogRecord[]> {
  const seen: LogRecord[] = [];
  await configure({
    sinks: { capture: (r: LogRecord) => void seen.push(r) },
    loggers: [
      { category: ["signal-fish", "hub"], lowestLevel, sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
    reset: true,
  });
  return seen;
}

Deno.test("logEvent() writes one line per loggable event at its level, nothing for counters", async () => {
  const seen = await captureHub("debug");
  try {
    logEvent({ type: "connected", connectionId: "c1", ip: "127.0.0.1" });
    logEvent({ type: "game_data", recipients: 3 });
    logEvent({ type: "message_too_large", connectionId: "c1", size: 70000, max: 65536 });
    logEvent({ type: "slow_consumer", connectionId: "c1", dropped: 4 });
    logEvent({ type: "messages_dropped", count: 4 });
    logEvent({
      type: "disconnected",
      connectionId: "c1",
      ip: "127.0.0.1",
      code: 1013,
      initiator: "server",
    });
    deepEqual(seen.map((r) => [r.level, r.rawMessage, r.properties]), [
      [
        "info",
        "Connection {connection_id} opened from {client_ip}",
        { connection_id: "c1", client_ip: "127.0.0.1" },
      ],
      [
        "warning",
        "Frame of {size} bytes from {connection_id} exceeds {max}",
        { connection_id: "c1", size: 70000, max: 65536 },
      ],
      [
        "warning",
        "Closing slow consumer {connection_id} ({dropped} messages dropped)",
        { connection_id: "c1", dropped: 4 },
      ],
      [
        "info",
        "Connection {connection_id} closed ({code}, by {initiator})",
        { connection_id: "c1", code: 1013, initiator: "server" },
      ],
    ]);
  } finally {
    await reset();
  }
});

Deno.test("logEvent() asks the rate limit's early check first and skips the lines it drops", async () => {
  const seen = await captureHub("info");
  const asked: [readonly string[], string, string][] = [];
  try {
    // Drops every other line it is asked about.
    setSuppressedLineCheck((category, template, level) => {
      asked.push([category, template, level]);
      return asked.length % 2 === 0;
    });
    for (let i = 0; i < 4; i++) {
      logEvent({ type: "connected", connectionId: `c${i}`, ip: "127.0.0.1" });
    }
    deepEqual(seen.map((r) => r.properties.connection_id), ["c0", "c2"]);
    equal(asked.length, 4);
    deepEqual(asked[0], [
      seen[0]!.category,
      "Connection {connection_id} opened from {client_ip}",
      "info",
    ]);
    // The logger's own category array: what the sink's windows are keyed by.
    equal(asked[0]![0], seen[0]!.category);
    setSuppressedLineCheck(undefined);
    logEvent({ type: "connected", connectionId: "c4", ip: "127.0.0.1" });
    equal(seen.length, 3);
  } finally {
    setSuppressedLineCheck(undefined);
    await reset();
  }
});

Deno.test("logEvent() says why a connection ended without a close handshake (1006)", async () => {
  const seen = await captureHub("info");
  try {
    const closed = (end: Partial<Extract<EdgeEvent, { type: "disconnected" }>>) =>
      logEvent({
        type: "disconnected",
        connectionId: "c-1",
        ip: "127.0.0.1",
        code: 1006,
        initiator: "client",
        ...end,
      });
    closed({ cause: "reset", error: "ECONNRESET" });
    closed({ cause: "eof" });
    closed({ initiator: "server", cause: "write_error", error: "EPIPE" });
    closed({ initiator: "server", cause: "destroyed" });
    closed({});
    closed({ cause: "reset" }); // a read error without a code
    closed({ code: 1000 });
    deepEqual(seen.map((r) => r.message.map(String).join("")), [
      "Connection c-1 closed (1006, reset by client: ECONNRESET)",
      "Connection c-1 closed (1006, client ended it without a close frame)",
      "Connection c-1 closed (1006, a write failed: EPIPE)",
      "Connection c-1 closed (1006, ended by server)",
      "Connection c-1 closed (1006, cause unknown)",
      "Connection c-1 closed (1006, reset by client: ?)",
      "Connection c-1 closed (1000, by client)",
    ]);
    deepEqual(seen[0]!.properties, {
      connection_id: "c-1",
      code: 1006,
      initiator: "client",
      cause: "reset",
      error: "ECONNRESET",
    });
    deepEqual(seen[1]!.properties, {
      connection_id: "c-1",
      code: 1006,
      initiator: "client",
      cause: "eof",
    });
    deepEqual(seen[4]!.properties.cause, "unknown");
  } finally {
    await reset();
  }
});
