import { deepEqual, equal } from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { logEvent, setSuppressedLineCheck } from "./event_log.ts";

Deno.test("logEvent() writes one line per loggable event at its level, nothing for counters", async () => {
  const seen: LogRecord[] = [];
  await configure({
    sinks: { capture: (r: LogRecord) => void seen.push(r) },
    loggers: [
      { category: ["signal-fish", "hub"], lowestLevel: "debug", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
    reset: true,
  });
  try {
    logEvent({ type: "connected", connectionId: "c1", ip: "127.0.0.1" });
    logEvent({ type: "game_data", recipients: 3 });
    logEvent({ type: "message_too_large", connectionId: "c1", size: 70000, max: 65536 });
    logEvent({ type: "slow_consumer", connectionId: "c1", dropped: 4 });
    logEvent({ type: "messages_dropped", count: 4 });
    logEvent({ type: "disconnected", connectionId: "c1", ip: "127.0.0.1", code: 1013 });
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
      ["info", "Connection {connection_id} closed ({code})", { connection_id: "c1", code: 1013 }],
    ]);
  } finally {
    await reset();
  }
});

Deno.test("logEvent() asks the rate limit's early check first and skips the lines it drops", async () => {
  const seen: LogRecord[] = [];
  await configure({
    sinks: { capture: (r: LogRecord) => void seen.push(r) },
    loggers: [
      { category: ["signal-fish", "hub"], lowestLevel: "info", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
    reset: true,
  });
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
