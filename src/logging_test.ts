import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { LogLevel, LogRecord } from "@logtape/logtape";
import {
  formatJsonLine,
  formatTextLine,
  isoTimestamp,
  logFileName,
  logLevel,
  openFileSink,
  openStdoutSink,
  REDACTED,
  renderMessage,
  splitTemplate,
  type StdoutSink,
  type StdoutSinkOptions,
} from "./logging.ts";
import { prng } from "./engine/testing.ts";

function record(
  message: unknown[],
  properties: Record<string, unknown> = {},
  timestamp = Date.UTC(2025, 0, 31, 23, 59, 59, 500),
  level: LogLevel = "info",
): LogRecord {
  return {
    category: ["signal-fish", "hub"],
    level,
    message,
    rawMessage: "",
    timestamp,
    properties,
  };
}

Deno.test("logLevel() maps logging.level case-insensitively, aliases included", () => {
  deepEqual(
    [null, "TRACE", "debug", "Info", "warn", "WARNING", "error", "err"].map(logLevel),
    ["info", "trace", "debug", "info", "warning", "warning", "error", "error"],
  );
});

Deno.test("formatJsonLine() writes timestamp, level, message and flat fields", () => {
  const line = formatJsonLine(
    record(
      ["Room ", "Q7KM3P", " created for ", "orbit", ""],
      {
        game_name: "orbit",
        room_code: "Q7KM3P",
        player_id: "p1",
        error: new TypeError("boom"),
      },
      undefined,
      "warning",
    ),
  );
  ok(line.endsWith("\n"));
  equal(line.indexOf("\n"), line.length - 1);
  deepEqual(JSON.parse(line), {
    timestamp: "2025-01-31T23:59:59.500Z",
    level: "WARN",
    category: "signal-fish.hub",
    message: "Room Q7KM3P created for orbit",
    game_name: "orbit",
    room_code: "Q7KM3P",
    player_id: "p1",
    error: "TypeError: boom",
  });
});

Deno.test("formatJsonLine() and formatTextLine() never print secrets or tokens", () => {
  const secrets = {
    app_secret: "hunter2",
    metrics_auth_token: "tok-123",
    reconnection_token: "abc",
    Authorization: "Bearer tok-123",
    redis_password: "pw",
  };
  const json = JSON.parse(formatJsonLine(record(["x"], secrets)));
  for (const key of Object.keys(secrets)) equal(json[key], REDACTED, key);
  const text = formatTextLine(record(["x"], secrets));
  for (const value of Object.values(secrets)) equal(text.includes(value), false, value);
});

Deno.test("formatTextLine() writes '<timestamp> <LEVEL> <category>: <message> k=v'", () => {
  equal(
    formatTextLine(record(["Player ", "p1", " joined"], { room_code: "Q7KM3P", note: "a b" })),
    '2025-01-31T23:59:59.500Z INFO signal-fish.hub: Player p1 joined room_code=Q7KM3P note="a b"\n',
  );
  ok(formatTextLine(record(["x"]), true).includes("\x1b[32mINFO\x1b[0m"));
  equal(formatTextLine(record(["x"]), false).includes("\x1b"), false);
});

Deno.test("logFileName() names files per UTC day or hour, or not at all", () => {
  const t = Date.UTC(2025, 0, 31, 7, 5);
  equal(logFileName("server.log", "daily", t), "server.log.2025-01-31");
  equal(logFileName("server.log", "hourly", t), "server.log.2025-01-31-07");
  equal(logFileName("server.log", "never", t), "server.log");
});

Deno.test("openFileSink() creates the directory and starts a new file after the day boundary", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = `${root}/nested/logs`;
    const sink = openFileSink({
      dir,
      filename: "server.log",
      rotation: "daily",
      format: formatJsonLine,
    });
    if ("warning" in sink) throw new Error(sink.warning);
    const before = Date.UTC(2025, 0, 31, 23, 59, 59);
    const after = Date.UTC(2025, 1, 1, 0, 0, 1);
    sink(record(["first"], {}, before));
    sink(record(["second"], {}, before));
    sink(record(["third"], {}, after));
    await sink[Symbol.asyncDispose]();
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    deepEqual(names.sort(), ["server.log.2025-01-31", "server.log.2025-02-01"]);
    const day1 = (await Deno.readTextFile(`${dir}/server.log.2025-01-31`)).trim().split("\n");
    deepEqual(day1.map((line) => JSON.parse(line).message), ["first", "second"]);
    const day2 = await Deno.readTextFile(`${dir}/server.log.2025-02-01`);
    equal(JSON.parse(day2).message, "third");
    equal(sink.dropped, 0);
    // Appends on reopen instead of truncating.
    const again = openFileSink({
      dir,
      filename: "server.log",
      rotation: "daily",
      format: formatJsonLine,
    });
    if ("warning" in again) throw new Error(again.warning);
    again(record(["fourth"], {}, after));
    await again[Symbol.asyncDispose]();
    equal((await Deno.readTextFile(`${dir}/server.log.2025-02-01`)).trim().split("\n").length, 2);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("openFileSink() drops lines instead of queueing without bound", async () => {
  const root = await Deno.makeTempDir();
  try {
    const sink = openFileSink({
      dir: root,
      filename: "s.log",
      rotation: "never",
      format: (r) => `${r.message[0]}\n`,
      maxPendingBytes: 10,
    });
    if ("warning" in sink) throw new Error(sink.warning);
    for (let i = 0; i < 5; i++) sink(record([`line${i}`])); // 6 bytes each, queued synchronously
    await sink[Symbol.asyncDispose]();
    equal(sink.dropped, 4);
    equal(await Deno.readTextFile(`${root}/s.log`), "line0\n");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("openFileSink() returns a warning when the directory cannot be created", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${root}/file`, "");
    const sink = openFileSink({
      dir: `${root}/file/logs`,
      filename: "server.log",
      rotation: "daily",
      format: formatJsonLine,
    });
    ok("warning" in sink);
    match(sink.warning, /cannot create the log directory/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/**
 * A stdout sink whose lines (the record's first message part) go to `writes`, one entry per
 * write; `failing()` true makes the write throw as a closed stdout would.
 */
function recordingStdoutSink(
  options: Partial<StdoutSinkOptions> & { failing?: () => boolean } = {},
): { sink: StdoutSink; writes: string[] } {
  const writes: string[] = [];
  const decoder = new TextDecoder();
  const sink = openStdoutSink({
    format: (r) => `${r.message[0]}\n`,
    write: (bytes) => {
      if (options.failing?.()) throw new Deno.errors.BrokenPipe("closed");
      writes.push(decoder.decode(bytes));
    },
    flushDelayMs: options.flushDelayMs ?? 60_000,
    maxBufferedChars: options.maxBufferedChars,
  });
  return { sink, writes };
}

Deno.test("openStdoutSink() writes lines together, in order, within the flush delay", async () => {
  const { sink, writes } = recordingStdoutSink({ flushDelayMs: 20 });
  using _ = sink;
  for (let i = 0; i < 5; i++) sink(record([`line ${i}`]));
  equal(writes.length, 0, "nothing is written while lines wait");
  await new Promise((resolve) => setTimeout(resolve, 100));
  deepEqual(writes, ["line 0\nline 1\nline 2\nline 3\nline 4\n"]);
  sink(record(["later"]));
  sink.flush();
  deepEqual(writes.at(-1), "later\n");
  sink.flush();
  equal(writes.length, 2, "an empty flush writes nothing");
});

Deno.test("openStdoutSink() writes at once past maxBufferedChars and on dispose", () => {
  const { sink: scoped, writes } = recordingStdoutSink({ maxBufferedChars: 10 });
  {
    using sink = scoped;
    sink(record(["abcd"]));
    equal(writes.length, 0);
    sink(record(["efghij"]));
    deepEqual(writes, ["abcd\nefghij\n"]);
    sink(record(["tail"]));
  }
  // Leaving the scope disposed the sink: the waiting line is written and its timer cleared
  // (the test would otherwise fail Deno's leak check).
  deepEqual(writes, ["abcd\nefghij\n", "tail\n"]);
});

Deno.test("openStdoutSink() writes what waits when the process unloads", () => {
  const { sink, writes } = recordingStdoutSink();
  using _ = sink;
  sink(record(["before exit"]));
  globalThis.dispatchEvent(new Event("unload"));
  deepEqual(writes, ["before exit\n"]);
});

Deno.test("isoTimestamp() writes what Date.toISOString() writes, across seconds and back", () => {
  const random = prng(7);
  const base = Date.UTC(2026, 10, 21, 23, 59, 58, 990);
  const times = [0, 1, 999, 1000, -1, -1001, 253402300799999, base];
  for (let i = 0; i < 3000; i++) times.push(base + Math.floor(random() * 3000) - 500);
  for (let i = 0; i < 500; i++) times.push(Math.floor(random() * 4e12) - 1e12);
  for (const t of times) equal(isoTimestamp(t), new Date(t).toISOString(), String(t));
  equal(isoTimestamp(base + 0.5), new Date(base + 0.5).toISOString());
  equal(isoTimestamp(8.64e15), new Date(8.64e15).toISOString()); // year +275760
});

Deno.test("renderMessage() renders plain templates itself, as logtape would", async () => {
  const { configure, getLogger, reset } = await import("@logtape/logtape");
  const seen: LogRecord[] = [];
  await configure({
    sinks: { capture: (r: LogRecord) => void seen.push(r) },
    loggers: [
      { category: ["render-test"], lowestLevel: "debug", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
    reset: true,
  });
  try {
    const log = getLogger(["render-test"]);
    log.info("Connection {connection_id} closed ({code})", { connection_id: "c-1", code: 1001 });
    log.info("Room {room_code} for {game}", { room_code: "ABC123", game: { n: 1 } });
    log.info("no placeholders", {});
    log.info("{missing} value", {});
    log.info("braces {{literal}} and {value}", { value: "v" });
    log.info("nested {a.b} path", { a: { b: 2 } });
    log.info("{ spaced } key", { spaced: "s" });
    for (const r of seen) {
      const viaLogtape = r.message.map((part, i) =>
        i % 2 === 0
          ? String(part)
          : typeof part === "string"
          ? part
          : JSON.stringify(part) ?? String(part)
      ).join("");
      equal(renderMessage(r), viaLogtape, String(r.rawMessage));
    }
    equal(seen.length, 7);
  } finally {
    await reset();
  }
  deepEqual(splitTemplate("a {x} b {y}"), ["a ", "x", " b ", "y", ""]);
  equal(splitTemplate("braces {{literal}}"), null);
  equal(splitTemplate("{a.b}"), null);
  equal(splitTemplate("unclosed {x"), null);
});

Deno.test("openStdoutSink() survives a failing stdout and keeps logging", () => {
  let fail = true;
  const { sink, writes } = recordingStdoutSink({ failing: () => fail });
  using _ = sink;
  sink(record(["lost"]));
  sink.flush();
  equal(sink.failedWrites, 1);
  fail = false;
  sink(record(["kept"]));
  sink.flush();
  deepEqual(writes, ["kept\n"]);
});
