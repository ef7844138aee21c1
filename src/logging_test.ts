import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { LogLevel, LogRecord } from "@logtape/logtape";
import {
  clipValue,
  escapeControls,
  type FileSink,
  type FileSinkOptions,
  formatJsonLine,
  formatTextLine,
  isoTimestamp,
  type LogFile,
  logFileName,
  logLevel,
  MAX_LOG_STACK_CHARS,
  MAX_LOG_VALUE_CHARS,
  newLogStats,
  openFileSink,
  openRateLimitedSink,
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

/** Runs `body` with a fresh temporary directory, removed afterwards whatever happens. */
async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * A file sink writing `s.log` in `dir`, one line per record (its first message part), with no
 * time rotation unless `options` says otherwise; fails the test if it only returns a warning.
 */
function lineSink(dir: string, options: Partial<FileSinkOptions> = {}): FileSink {
  const sink = openFileSink({
    dir,
    filename: "s.log",
    rotation: "never",
    format: (r) => `${r.message[0]}\n`,
    ...options,
  });
  if ("warning" in sink) throw new Error(sink.warning);
  return sink;
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

Deno.test("formatTextLine() escapes control characters of interpolated values: one record, one honest line", () => {
  // Client-supplied values (an Origin header, a player name) with a tab, a line feed, ESC, DEL,
  // a C1 CSI, a line separator and a right-to-left override. Before, the message part carried
  // them raw: "\tINFO signal-fish.admin: Operator action close_room" made a second-looking record.
  const hostile = "https://evil.example\tINFO signal-fish.admin: Operator action close_room" +
    "\n\r\x1b[2J\x7f\x9b31m\u2028\u202efake";
  const line = formatTextLine(
    record(["Refused a WebSocket upgrade from origin ", hostile, ""], {
      origin: hostile,
      bare: "no-space\x9b31m\x7f",
      [`key\n`]: "v",
    }),
  );
  equal(
    line,
    "2025-01-31T23:59:59.500Z INFO signal-fish.hub: Refused a WebSocket upgrade from origin " +
      "https://evil.example\\tINFO signal-fish.admin: Operator action close_room" +
      "\\n\\r\\u001b[2J\\u007f\\u009b31m\\u2028\\u202efake" +
      ' origin="https://evil.example\\tINFO signal-fish.admin: Operator action close_room' +
      '\\n\\r\\u001b[2J\\u007f\\u009b31m\\u2028\\u202efake"' +
      ' bare="no-space\\u009b31m\\u007f" key\\n=v\n',
  );
  const raw = [...line.slice(0, -1)].filter((c) =>
    c < " " || (c >= "\x7f" && c <= "\x9f") ||
    "\u2028\u2029\u202a\u202b\u202c\u202d\u202e".includes(c)
  );
  deepEqual(raw, []);
  equal(line.indexOf("\n"), line.length - 1);
  // Values without controls are written as before; escaping changes nothing else.
  equal(escapeControls("Ünïcödé and \\ backslash"), "Ünïcödé and \\ backslash");
  equal(escapeControls("\u0000\u0085\u2066"), "\\u0000\\u0085\\u2066");
  // The message of a record logtape parsed (not a plain template) is escaped the same way.
  equal(
    renderMessage({ ...record(["a ", "x\ty", " b"]), rawMessage: "a {v.w} b" }, true),
    "a x\\ty b",
  );
  // JSON lines keep the raw value in the message (JSON.stringify escapes C0 itself).
  equal(JSON.parse(formatJsonLine(record(["o ", hostile, ""]))).message, `o ${hostile}`);
});

Deno.test("formatJsonLine() and formatTextLine() cut long values: an Origin header of 15,000 bytes makes a short line", () => {
  // Before, a refused upgrade's 15,000-character Origin went into the line twice (message and
  // field): 29 kB a line, 20 lines a second under the per-kind limit, 2.4 GB an hour from one client.
  const origin = "https://" + "a".repeat(15_000) + ".example";
  const hostile = record(
    ["Refused a WebSocket upgrade from origin ", origin, ""],
    {
      origin,
      list: Array.from({ length: 2000 }, (_, i) => i),
      short: "kept whole",
    },
    undefined,
    "warning",
  );
  const json = formatJsonLine(hostile);
  const text = formatTextLine(hostile);
  ok(json.length < 1200, `json line of ${json.length} chars`);
  ok(text.length < 1200, `text line of ${text.length} chars`);
  const parsed = JSON.parse(json);
  equal(parsed.origin, clipValue(origin));
  equal(parsed.message, `Refused a WebSocket upgrade from origin ${clipValue(origin)}`);
  equal(parsed.short, "kept whole");
  match(parsed.origin, /^https:\/\/a{248}…\[\+14760 chars\]$/);
  match(parsed.list, /^\[0,1,2,.*…\[\+\d+ chars\]$/);
  ok(text.includes('short="kept whole"'));
  // A value at the limit is kept; a surrogate pair at the cut is not split.
  equal(clipValue("x".repeat(256)), "x".repeat(256));
  equal(clipValue("x".repeat(255) + "😀" + "y"), "x".repeat(255) + "…[+3 chars]");
});

Deno.test("a bug's stack field is shown up to MAX_LOG_STACK_CHARS, other fields up to MAX_LOG_VALUE_CHARS", () => {
  // A real stack, 20 frames deep: far past 256 characters, within 4,096.
  const dive = (depth: number): Error => depth === 0 ? new Error("unexpected") : dive(depth - 1);
  const stack = dive(19).stack!;
  ok(
    stack.length > MAX_LOG_VALUE_CHARS * 2 && stack.length < MAX_LOG_STACK_CHARS,
    `${stack.length}`,
  );
  const bug = record(
    ["Store call, unexpected error: ", "Error: unexpected", ""],
    {
      stack,
      other: stack,
    },
    undefined,
    "error",
  );
  const json = JSON.parse(formatJsonLine(bug));
  equal(json.stack, stack);
  equal(json.other, clipValue(stack));
  const text = formatTextLine(bug);
  ok(text.includes(` stack=${JSON.stringify(stack)}`), text);
  // The deepest frame the operator needs, past the first 256 characters, is on the line.
  const lastFrame = stack.split("\n").at(-1)!.trim();
  ok(stack.lastIndexOf(lastFrame) > MAX_LOG_VALUE_CHARS && json.stack.endsWith(lastFrame));
  // A longer stack is still cut, at MAX_LOG_STACK_CHARS.
  const huge = `Error: x\n${"    at f (file:///a.ts:1:1)\n".repeat(400)}`;
  const cut = JSON.parse(formatJsonLine(record(["x"], { stack: huge }, undefined, "error")));
  equal(cut.stack, clipValue(huge, MAX_LOG_STACK_CHARS));
  match(cut.stack, /…\[\+\d+ chars\]$/);
  equal(cut.stack.length < MAX_LOG_STACK_CHARS + 20, true);
});

Deno.test("logFileName() names files per UTC day or hour, or not at all", () => {
  const t = Date.UTC(2025, 0, 31, 7, 5);
  equal(logFileName("server.log", "daily", t), "server.log.2025-01-31");
  equal(logFileName("server.log", "hourly", t), "server.log.2025-01-31-07");
  equal(logFileName("server.log", "never", t), "server.log");
});

Deno.test("openFileSink() creates the directory and starts a new file after the day boundary", async () => {
  await withTempDir(async (root) => {
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
  });
});

Deno.test("openFileSink() drops lines instead of queueing without bound", async () => {
  await withTempDir(async (root) => {
    const sink = lineSink(root, {
      maxPendingBytes: 10,
    });
    for (let i = 0; i < 5; i++) sink(record([`line${i}`])); // 6 bytes each, queued synchronously
    await sink[Symbol.asyncDispose]();
    equal(sink.dropped, 4);
    equal(await Deno.readTextFile(`${root}/s.log`), "line0\n");
  });
});

Deno.test("openFileSink() returns a warning when the directory cannot be created", async () => {
  await withTempDir(async (root) => {
    await Deno.writeTextFile(`${root}/file`, "");
    const sink = openFileSink({
      dir: `${root}/file/logs`,
      filename: "server.log",
      rotation: "daily",
      format: formatJsonLine,
    });
    ok("warning" in sink);
    match(sink.warning, /cannot create the log directory/);
  });
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

/** A record of `template` (its own category) at `timestamp`, rendered by its first part. */
function event(template: string, timestamp: number, level: LogLevel = "info"): LogRecord {
  return {
    category: ["signal-fish", "hub"],
    level,
    message: [template],
    rawMessage: template,
    timestamp,
    properties: {},
  };
}

Deno.test("openRateLimitedSink() passes maxPerSecond lines per event kind and summarises the rest", async () => {
  const seen: LogRecord[] = [];
  const stats = newLogStats();
  const t0 = Date.UTC(2026, 0, 1, 12, 0, 0, 0);
  const sink = openRateLimitedSink({
    sinks: [(r) => void seen.push(r)],
    maxPerSecond: 3,
    stats,
    now: () => t0 + 5000,
  });
  // A flood of one kind within one second, another kind in between.
  for (let i = 0; i < 1000; i++) {
    sink(event("Connection {connection_id} opened", t0 + i % 1000));
    if (i === 500) sink(event("Room {room_code} created", t0 + 500, "warning"));
  }
  deepEqual(seen.map((r) => r.rawMessage), [
    "Connection {connection_id} opened",
    "Connection {connection_id} opened",
    "Connection {connection_id} opened",
    "Room {room_code} created",
  ]);
  equal(stats.linesSuppressed, 997);
  // The next second: first the summary, then the line.
  sink(event("Connection {connection_id} opened", t0 + 1200));
  equal(seen.length, 6);
  const summary = seen[4]!;
  equal(summary.level, "info");
  deepEqual(summary.category, ["signal-fish", "hub"]);
  equal(summary.properties.suppressed, 997);
  equal(summary.properties.event, "Connection {connection_id} opened");
  equal(summary.properties.since, new Date(t0 + 3).toISOString());
  equal(renderMessage(summary), "Suppressed 997 log lines like: Connection {connection_id} opened");
  equal(seen[5]!.timestamp, t0 + 1200);
  // Suppressed again in this second; dispose writes the pending summary.
  for (let i = 0; i < 10; i++) sink(event("Connection {connection_id} opened", t0 + 1300));
  equal(seen.length, 8);
  await sink[Symbol.asyncDispose]();
  equal(seen.length, 9);
  equal(seen[8]!.properties.suppressed, 8);
  equal(stats.linesSuppressed, 1005);
});

Deno.test("openRateLimitedSink().suppresses() drops exactly the lines the sink would, before their records", async () => {
  const category = ["signal-fish", "hub"];
  const templates = ["Connection {connection_id} opened", "Room {room_code} created", "a"];
  const t0 = Date.UTC(2026, 0, 1, 12, 0, 0, 0);
  const random = prng(18);
  // One seeded stream of lines: three kinds, bursts within a second, jumps across seconds.
  const lines: { template: string; timestamp: number; level: LogLevel }[] = [];
  let time = t0;
  for (let i = 0; i < 3000; i++) {
    time += random() < 0.01 ? Math.floor(random() * 2500) : random() < 0.5 ? 1 : 0;
    const template = templates[Math.floor(random() * templates.length)]!;
    lines.push({ template, timestamp: time, level: template === "a" ? "warning" : "info" });
  }
  const run = async (early: boolean) => {
    const seen: LogRecord[] = [];
    const stats = newLogStats();
    const sink = openRateLimitedSink({
      sinks: [(r) => void seen.push(r)],
      maxPerSecond: 4,
      stats,
      now: () => time + 5000,
    });
    let built = 0;
    for (const { template, timestamp, level } of lines) {
      if (early && sink.suppresses(category, template, level, timestamp)) continue;
      built++;
      sink({
        category,
        level,
        message: [template],
        rawMessage: template,
        timestamp,
        properties: {},
      });
    }
    await sink[Symbol.asyncDispose]();
    const written = seen.map((r) => [r.level, r.rawMessage, r.timestamp, r.properties]);
    return { written, stats, built };
  };
  const late = await run(false);
  const early = await run(true);
  deepEqual(early.written, late.written);
  deepEqual(early.stats, late.stats);
  ok(late.stats.linesSuppressed > 1000, `only ${late.stats.linesSuppressed} suppressed`);
  // The early check spared the records of all but a few suppressed lines.
  ok(early.built < lines.length - late.stats.linesSuppressed + 50, `${early.built} built`);
});

Deno.test("openRateLimitedSink().suppresses() never drops a kind the sink has not passed", async () => {
  const category = ["signal-fish", "hub"];
  await using sink = openRateLimitedSink({ sinks: [() => {}], maxPerSecond: 1 });
  const now = Date.UTC(2026, 0, 1, 12, 0, 0, 0);
  // Never seen (e.g. below the logger's level, so logtape drops it first): left to logtape.
  for (let i = 0; i < 10; i++) equal(sink.suppresses(category, "b", "debug", now), false);
  sink({
    category,
    level: "info",
    message: ["b"],
    rawMessage: "b",
    timestamp: now,
    properties: {},
  });
  equal(sink.suppresses(category, "b", "info", now + 999 - (now % 1000)), true);
  // Another second, another category array or template: the sink decides.
  equal(sink.suppresses(category, "b", "info", now + 1000), false);
  equal(sink.suppresses(["signal-fish", "hub"], "b", "info", now), false);
  equal(sink.suppresses(category, "c", "info", now), false);
});

Deno.test("openRateLimitedSink() writes a pending summary by timer when the flood stops", async () => {
  const seen: LogRecord[] = [];
  await using sink = openRateLimitedSink({ sinks: [(r) => void seen.push(r)], maxPerSecond: 1 });
  const now = Date.now();
  sink(event("a", now));
  sink(event("a", now));
  sink(event("a", now));
  equal(seen.length, 1);
  for (let i = 0; i < 60 && seen.length < 2; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  equal(seen.length, 2, "no summary within 3 s");
  equal(seen[1]!.properties.suppressed, 2);
});

Deno.test("openRateLimitedSink() with maxPerSecond 0 passes everything", async () => {
  let count = 0;
  await using sink = openRateLimitedSink({ sinks: [() => void count++], maxPerSecond: 0 });
  for (let i = 0; i < 500; i++) sink(event("x", 1000));
  equal(count, 500);
});

/** Names and contents of the files in `dir`, sorted by name. */
async function filesIn(dir: string): Promise<Map<string, string>> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  names.sort();
  const out = new Map<string, string>();
  for (const name of names) out.set(name, await Deno.readTextFile(`${dir}/${name}`));
  return out;
}

Deno.test("openFileSink() rotates at maxFileBytes and keeps maxFiles files, lines whole", async () => {
  await withTempDir(async (dir) => {
    const sink = lineSink(dir, {
      maxFileBytes: 100,
      maxFiles: 3,
    });
    // 40 lines of 9 bytes: 11 per file of ≤ 100 bytes, so 4 files, of which 3 are kept.
    for (let i = 0; i < 40; i++) {
      sink(record([`line-${String(i).padStart(3, "0")}`]));
      // Separate drains, so retention sees distinct modification times.
      if (i % 10 === 9) await sink.flush();
    }
    await sink[Symbol.asyncDispose]();
    const files = await filesIn(dir);
    equal(files.size, 3, [...files.keys()].join());
    ok(files.has("s.log"));
    let lines: string[] = [];
    for (const [name, content] of files) {
      ok(new TextEncoder().encode(content).length <= 100, name);
      ok(content.endsWith("\n"), name);
      lines = lines.concat(content.trim().split("\n"));
    }
    // The newest lines are kept, each whole: the first file (11 lines) was deleted.
    deepEqual(
      lines.sort(),
      Array.from({ length: 29 }, (_, i) => `line-${String(i + 11).padStart(3, "0")}`),
    );
    ok(files.get("s.log")!.endsWith("line-039\n"));
  });
});

Deno.test("openFileSink() gives a line larger than maxFileBytes a file of its own", async () => {
  await withTempDir(async (dir) => {
    const sink = lineSink(dir, {
      maxFileBytes: 10,
    });
    sink(record(["short"]));
    sink(record(["a line longer than ten bytes"]));
    sink(record(["tail"]));
    await sink[Symbol.asyncDispose]();
    deepEqual(
      [...(await filesIn(dir)).entries()],
      [["s.log", "tail\n"], ["s.log.1", "short\n"], ["s.log.2", "a line longer than ten bytes\n"]],
    );
  });
});

/** A log file in memory whose writes fail after `budget` bytes (a disk filling up). */
class FillingFile implements LogFile {
  content = new Uint8Array(0);
  constructor(public budget: number) {}
  write(bytes: Uint8Array): Promise<number> {
    if (this.budget <= 0) return Promise.reject(new Deno.errors.WriteZero("No space left"));
    const n = Math.min(bytes.length, this.budget);
    this.budget -= n;
    const next = new Uint8Array(this.content.length + n);
    next.set(this.content);
    next.set(bytes.subarray(0, n), this.content.length);
    this.content = next;
    return Promise.resolve(n);
  }
  truncate(length = 0): Promise<void> {
    this.content = this.content.slice(0, length);
    return Promise.resolve();
  }
  stat(): Promise<{ size: number }> {
    return Promise.resolve({ size: this.content.length });
  }
  close(): void {}
}

Deno.test("openFileSink() never tears a line when the disk fills, warns once, recovers", async () => {
  await withTempDir(async (dir) => {
    const file = new FillingFile(15);
    const stats = newLogStats();
    const warnings: string[] = [];
    const sink = lineSink(dir, {
      stats,
      warn: (message, fields) => warnings.push(`${message} ${JSON.stringify(fields)}`),
      open: () => Promise.resolve(file),
    });
    sink(record(["one"])); // 4 bytes
    await sink.flush();
    sink(record(["two-two"])); // 8 bytes: 12 of 15
    await sink.flush();
    sink(record(["three-three"])); // 12 bytes: 3 written, then the disk is full
    await sink.flush();
    sink(record(["four"]));
    await sink.flush();
    const decoder = new TextDecoder();
    equal(decoder.decode(file.content), "one\ntwo-two\n", "the failed line is cut back");
    equal(stats.writeFailures, 2);
    equal(stats.linesDropped, 2);
    equal(warnings.length, 1);
    match(warnings[0]!, /Cannot write the log file .*s\.log/);
    file.budget = 100; // space freed
    sink(record(["five"]));
    await sink[Symbol.asyncDispose]();
    equal(decoder.decode(file.content), "one\ntwo-two\nfive\n");
    equal(warnings.length, 2);
    match(warnings[1]!, /again; \{lost\} lines were lost .*"lost":2/);
  });
});

Deno.test("openFileSink() survives a log file it cannot open (counted, warned, never thrown)", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/s.log`); // the file's name is taken by a directory
    const stats = newLogStats();
    const warnings: string[] = [];
    const sink = lineSink(dir, {
      stats,
      warn: (message) => warnings.push(message),
    });
    for (let i = 0; i < 5; i++) {
      sink(record([`line ${i}`]));
      await sink.flush();
    }
    await sink[Symbol.asyncDispose]();
    equal(stats.writeFailures, 5);
    equal(stats.linesDropped, 5);
    equal(sink.dropped, 5);
    equal(warnings.length, 1);
  });
});

Deno.test("openFileSink() on a full device (/dev/full) loses lines without tearing or throwing", async () => {
  await withTempDir(async (dir) => {
    await Deno.symlink("/dev/full", `${dir}/s.log`);
    const stats = newLogStats();
    const sink = lineSink(dir, {
      stats,
    });
    sink(record(["lost"]));
    await sink[Symbol.asyncDispose]();
    equal(stats.writeFailures, 1);
    equal(stats.linesDropped, 1);
  });
});

Deno.test("openStdoutSink() counts failed writes and their lines in stats, warns once per run", () => {
  const stats = newLogStats();
  const warnings: string[] = [];
  let fail = true;
  using sink = openStdoutSink({
    format: (r) => `${r.message[0]}\n`,
    write: () => {
      if (fail) throw new Deno.errors.BrokenPipe("closed");
    },
    flushDelayMs: 60_000,
    stats,
    warn: (message) => warnings.push(message),
  });
  sink(record(["a"]));
  sink(record(["b"]));
  sink.flush();
  sink(record(["c"]));
  sink.flush();
  deepEqual(stats, { writeFailures: 2, linesDropped: 3, linesSuppressed: 0 });
  equal(warnings.length, 1);
  fail = false;
  sink(record(["d"]));
  sink.flush();
  equal(warnings.length, 2);
  match(warnings[1]!, /3 lines were lost/);
});

Deno.test("openRateLimitedSink() disposes its inner sinks after the last summary", async () => {
  const order: string[] = [];
  const syncSink = Object.assign((r: LogRecord) => void order.push(`sync ${r.rawMessage}`), {
    [Symbol.dispose]: () => void order.push("sync disposed"),
  });
  const asyncSink = Object.assign((r: LogRecord) => void order.push(`async ${r.rawMessage}`), {
    [Symbol.asyncDispose]: () => Promise.resolve(void order.push("async disposed")),
  });
  const sink = openRateLimitedSink({ sinks: [syncSink, asyncSink], maxPerSecond: 1 });
  sink(event("x", 1000));
  sink(event("x", 1000));
  await sink[Symbol.asyncDispose]();
  equal(order.length, 6);
  equal(order[4], "sync disposed");
  equal(order[5], "async disposed");
  match(order[2]!, /^sync Suppressed/);
});

Deno.test("openFileSink() keeps writing when rotation fails (no permission to list the directory)", async () => {
  await withTempDir(async (dir) => {
    const stats = newLogStats();
    const warnings: string[] = [];
    const sink = lineSink(dir, {
      maxFileBytes: 10,
      stats,
      warn: (message) => warnings.push(message),
    });
    sink(record(["first"]));
    await sink.flush();
    // Rotation lists the directory; make that fail by replacing the directory under the sink.
    const readDir = Deno.readDir;
    Object.defineProperty(Deno, "readDir", {
      value: () => {
        throw new Deno.errors.PermissionDenied("not allowed");
      },
      configurable: true,
    });
    try {
      sink(record(["second"])); // 6 + 7 > 10: rotation, which fails
      sink(record(["3"])); // 13 + 2 ≤ 6 + 10: no new attempt yet
      await sink.flush();
    } finally {
      Object.defineProperty(Deno, "readDir", { value: readDir, configurable: true });
    }
    await sink[Symbol.asyncDispose]();
    equal(await Deno.readTextFile(`${dir}/s.log`), "first\nsecond\n3\n", "no line lost");
    equal(stats.linesDropped, 0);
    equal(stats.writeFailures, 1, "one failed rotation; the next waits for another 10 bytes");
    equal(warnings.length, 1);
    match(warnings[0]!, /Cannot rotate the log file/);
  });
});

Deno.test("openRateLimitedSink() tracks at most 1024 event kinds; the rest share one window", async () => {
  let passed = 0;
  const stats = newLogStats();
  const sink = openRateLimitedSink({ sinks: [() => void passed++], maxPerSecond: 3, stats });
  for (let i = 0; i < 2000; i++) sink(event(`kind ${i}`, 5000));
  equal(passed, 1024 + 3);
  equal(stats.linesSuppressed, 2000 - 1024 - 3);
  await sink[Symbol.asyncDispose]();
  equal(passed, 1024 + 3 + 1, "one summary for the shared window");
});

Deno.test("openFileSink() applies retention when the day changes", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/other.txt`, "not a log file\n");
    const sink = lineSink(dir, {
      rotation: "daily",
      maxFiles: 2,
    });
    for (const day of [1, 2, 3, 4]) {
      sink(record([`day ${day}`], {}, Date.UTC(2025, 0, day, 12)));
      await sink.flush();
    }
    await sink[Symbol.asyncDispose]();
    deepEqual([...(await filesIn(dir)).entries()], [
      ["other.txt", "not a log file\n"],
      ["s.log.2025-01-03", "day 3\n"],
      ["s.log.2025-01-04", "day 4\n"],
    ]);
  });
});
