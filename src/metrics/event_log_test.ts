import { deepEqual } from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { logEvent } from "./event_log.ts";

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
