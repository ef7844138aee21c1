/**
 * Log formatting and the rotating file sink (docs/spec/SERVER.md §7). `main.ts` passes these to logtape's
 * `configure()`; nothing here configures logging itself.
 *
 * @module
 */
import type { LogLevel, LogRecord, Sink } from "@logtape/logtape";

/** `logging.level` values (docs/spec/SERVER.md §2.7, aliases included) → logtape levels. */
const LEVELS: Readonly<Record<string, LogLevel>> = {
  trace: "trace",
  debug: "debug",
  info: "info",
  warn: "warning",
  warning: "warning",
  error: "error",
  err: "error",
};

/** The lowest logtape level for `logging.level` (case-insensitive; `null` ⇒ `info`, §7.1). */
export function logLevel(level: string | null): LogLevel {
  return LEVELS[level?.toLowerCase() ?? "info"] ?? "info";
}

/** Spec level names (docs/spec/SERVER.md §7.2): `TRACE|DEBUG|INFO|WARN|ERROR`; fatal is logged as ERROR. */
const LEVEL_NAMES: Readonly<Record<LogLevel, string>> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARN",
  error: "ERROR",
  fatal: "ERROR",
};

/**
 * Property names whose values are never logged (docs/spec/SERVER.md §7.2 "Never logged"): secrets,
 * tokens, passwords and `Authorization` headers. Matched case-insensitively as substrings.
 */
const SECRET_KEY = /secret|token|password|authorization/i;
/** What a secret property's value is replaced with. */
export const REDACTED = "[REDACTED]";

function scalar(value: unknown): unknown {
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "symbol" || typeof value === "function") return String(value);
  return value;
}

function text(value: unknown): string {
  const plain = scalar(value);
  if (typeof plain === "string") return plain;
  try {
    return JSON.stringify(plain) ?? String(plain);
  } catch {
    return String(plain);
  }
}

/**
 * Longest value, in UTF-16 code units, a line shows of one interpolated value or field (SECURITY.md
 * "Logging"): an `Origin` header or a URL may be 16 KiB, and the per-kind line rate limit alone let
 * one client write 2.4 GB an hour of such lines. Longer values are cut with
 * {@linkcode clipValue}.
 */
export const MAX_LOG_VALUE_CHARS = 256;

/**
 * Longest `stack` field, in UTF-16 code units, a line shows (SECURITY.md "Logging"). A stack is
 * logged only with an ERROR line for a bug (`logFault` in src/coordination/faults.ts), whose
 * frames an operator needs beyond the first 256 characters; its lines are bounded by
 * `logging.max_lines_per_event_per_second` like every other kind.
 */
export const MAX_LOG_STACK_CHARS = 4096;

/**
 * The fields of an ERROR line for a bug (docs/spec/SERVER.md §7.4): `{ error }`, plus `stack`
 * (shown up to {@linkcode MAX_LOG_STACK_CHARS}) when `error` carries a string `stack`. Spread
 * into a line's fields: `log.error("…: {error}", { connection_id, ...bugFields(error) })`.
 */
export function bugFields(error: unknown): { error: unknown; stack?: string } {
  let stack: unknown;
  try {
    stack = (error as { stack?: unknown } | null | undefined)?.stack;
  } catch {
    stack = undefined; // a getter that throws: the line keeps the error alone
  }
  return typeof stack === "string" ? { error, stack } : { error };
}

/** The longest a line shows of field `key` (its name as logged). */
function maxCharsOf(key: string): number {
  return key === "stack" ? MAX_LOG_STACK_CHARS : MAX_LOG_VALUE_CHARS;
}

/**
 * `value` cut to `max` code units ({@linkcode MAX_LOG_VALUE_CHARS} unless given) followed by
 * `…[+<n> chars]`, `n` being how many were left out; `value` itself when it is not longer. A
 * surrogate pair is never split.
 */
export function clipValue(value: string, max: number = MAX_LOG_VALUE_CHARS): string {
  if (value.length <= max) return value;
  let end = max;
  const last = value.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${value.slice(0, end)}…[+${value.length - end} chars]`;
}

/**
 * Characters a text line never carries raw in a value (docs/spec/SERVER.md §7.2 note): the C0
 * controls (tab, line feed and carriage return included), DEL, the C1 controls (U+0080–U+009F;
 * U+009B is a terminal's CSI), the Unicode line and paragraph separators and the bidirectional
 * embedding, override and isolate controls. From a client-supplied value (an `Origin` header, a
 * player name) any of them could end a line, start a terminal escape sequence or reorder what a
 * viewer shows, and so forge the look of a log line.
 */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const UNSAFE_IN_TEXT = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const UNSAFE_IN_TEXT_ALL = new RegExp(UNSAFE_IN_TEXT.source, "g");
const SHORT_ESCAPES: Readonly<Record<string, string>> = { "\t": "\\t", "\n": "\\n", "\r": "\\r" };

/**
 * `text` with every character of {@linkcode UNSAFE_IN_TEXT} written as an escape: `\t`, `\n`,
 * `\r`, else `\uXXXX` (four lower-case hex digits), as JSON writes C0 controls. Other characters,
 * backslashes included, are kept: the result is for people reading a line, not for parsing back.
 * Returns `text` itself when there is nothing to escape.
 */
export function escapeControls(text: string): string {
  if (!UNSAFE_IN_TEXT.test(text)) return text;
  return text.replace(
    UNSAFE_IN_TEXT_ALL,
    (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * The record's message with its values substituted. A string template of plain `{name}`
 * placeholders is split once and rendered from the record's properties (reading
 * `record.message` makes logtape parse the template again for every line); anything else
 * renders logtape's parsed `message`. With `escape` (text lines, docs/spec/SERVER.md §7.2) each
 * substituted value goes through {@linkcode escapeControls}; the template's own text is this
 * program's and is kept as written. JSON lines need no escape here: `JSON.stringify` escapes
 * the message.
 */
export function renderMessage(record: LogRecord, escape = false): string {
  const raw = record.rawMessage;
  if (typeof raw === "string" && raw !== "") {
    let parts = templates.get(raw);
    if (parts === undefined && !templates.has(raw)) {
      parts = splitTemplate(raw);
      // Templates are the literal strings of this program's log calls: a small, fixed set.
      if (templates.size < 1024) templates.set(raw, parts);
    }
    if (parts) {
      const properties = record.properties;
      let out = parts[0]!;
      for (let i = 1; i < parts.length; i += 2) {
        const value = properties[parts[i]!];
        const shown = clipValue(typeof value === "string" ? value : text(value));
        out += (escape ? escapeControls(shown) : shown) + parts[i + 1]!;
      }
      return out;
    }
  }
  const parts = record.message;
  let out = "";
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (i % 2 === 0) {
      out += String(part);
      continue;
    }
    const shown = clipValue(typeof part === "string" ? part : text(part));
    out += escape ? escapeControls(shown) : shown;
  }
  return out;
}

/** Split templates: text, name, text, …, text; `null` when logtape must render it. */
const templates = new Map<string, readonly string[] | null>();
const PLACEHOLDER_NAME = /^[A-Za-z_$][\w$]*$/;

/**
 * Splits `template` at its `{name}` placeholders, or returns `null` when it has anything
 * logtape gives a meaning to beyond those (`{{`/`}}` escapes, `{*}`, paths, spaces).
 */
export function splitTemplate(template: string): string[] | null {
  const parts: string[] = [];
  let start = 0;
  for (;;) {
    const open = template.indexOf("{", start);
    const text = template.slice(start, open < 0 ? template.length : open);
    if (text.includes("}")) return null;
    parts.push(text);
    if (open < 0) return parts;
    const close = template.indexOf("}", open + 1);
    if (close < 0) return null;
    const name = template.slice(open + 1, close);
    if (!PLACEHOLDER_NAME.test(name)) return null;
    parts.push(name);
    start = close + 1;
  }
}

/**
 * The record's properties, secrets replaced by {@linkcode REDACTED}, strings longer than
 * {@linkcode MAX_LOG_VALUE_CHARS} ({@linkcode MAX_LOG_STACK_CHARS} for `stack`) cut by
 * {@linkcode clipValue}.
 */
export function safeProperties(record: LogRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record.properties)) {
    out[key] = SECRET_KEY.test(key) ? REDACTED : clipped(scalar(value), maxCharsOf(key));
  }
  return out;
}

/**
 * `value` as a line shows it: a string cut by {@linkcode clipValue} to `max`; another value whose
 * JSON is longer than `max` becomes that JSON, cut, as a string.
 */
function clipped(value: unknown, max: number): unknown {
  if (typeof value === "string") return clipValue(value, max);
  if (value === null || typeof value !== "object") return value;
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    return value; // circular: the formatter drops or prints it as before
  }
  return json !== undefined && json.length > max ? clipValue(json, max) : value;
}

/**
 * One JSON object per line (docs/spec/SERVER.md §7.2 `json`): `timestamp` (RFC 3339 UTC), `level`,
 * `category`, `message`, then the structured fields, flat.
 */
export function formatJsonLine(record: LogRecord): string {
  // Built as text, not as an object to stringify: this runs for every lifecycle event.
  let line = `{"timestamp":"${isoTimestamp(record.timestamp)}","level":"${
    LEVEL_NAMES[record.level]
  }","category":${categoryJson(record.category)},"message":${
    JSON.stringify(renderMessage(record))
  }`;
  const properties = record.properties;
  for (const key in properties) {
    const prefix = fieldPrefix(key);
    if (prefix === undefined) continue;
    if (prefix === REDACTED_FIELD) {
      line += `,${JSON.stringify(key)}:"${REDACTED}"`;
      continue;
    }
    const value = properties[key];
    const max = maxCharsOf(key);
    let json: string | undefined;
    if (typeof value === "string") json = JSON.stringify(clipValue(value, max));
    else {
      try {
        json = JSON.stringify(scalar(value));
        if (json !== undefined && json.length > max) {
          json = JSON.stringify(clipValue(json, max));
        }
      } catch {
        json = undefined; // circular: the field is dropped, the line kept
      }
    }
    if (json !== undefined) line += prefix + json;
  }
  return line + "}\n";
}

/** {@linkcode fieldPrefix} of a field whose value is replaced by {@linkcode REDACTED}. */
const REDACTED_FIELD = "";
/** `,"key":` per field name; `REDACTED_FIELD` for secrets; undefined for the line's own keys. */
const fieldPrefixes = new Map<string, string | undefined>();

function fieldPrefix(key: string): string | undefined {
  let prefix = fieldPrefixes.get(key);
  if (prefix === undefined && !fieldPrefixes.has(key)) {
    prefix = key === "timestamp" || key === "level" || key === "category" || key === "message"
      ? undefined
      : SECRET_KEY.test(key)
      ? REDACTED_FIELD
      : `,${JSON.stringify(key)}:`;
    // Field names come from this program's log calls: a small, fixed set.
    if (fieldPrefixes.size < 1024) fieldPrefixes.set(key, prefix);
  }
  return prefix;
}

let lastSecond = Number.NaN;
/** `YYYY-MM-DDTHH:MM:SS.` of `lastSecond`. */
let secondPrefix = "";

/**
 * RFC 3339 UTC of `timestamp` (ms), as `Date.toISOString()` writes it; the part up to the
 * seconds is built once per second (`toISOString` was most of a line's formatting time).
 */
export function isoTimestamp(timestamp: number): string {
  const second = Math.floor(timestamp / 1000);
  if (second !== lastSecond || !Number.isInteger(timestamp)) {
    const iso = new Date(timestamp).toISOString();
    // Fractions of a millisecond, or years outside 0000–9999: as the runtime writes them.
    if (!Number.isInteger(timestamp) || iso.length !== 24) return iso;
    lastSecond = second;
    secondPrefix = iso.slice(0, 20);
  }
  const ms = timestamp - second * 1000;
  return `${secondPrefix}${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}Z`;
}

const categories = new WeakMap<readonly string[], string>();

/** `["signal-fish", "hub"]` → `"signal-fish.hub"` as JSON, cached per category array. */
function categoryJson(category: readonly string[]): string {
  let json = categories.get(category);
  if (json === undefined) {
    json = JSON.stringify(category.join("."));
    categories.set(category, json);
  }
  return json;
}

const COLORS: Readonly<Record<string, string>> = {
  TRACE: "\x1b[90m",
  DEBUG: "\x1b[36m",
  INFO: "\x1b[32m",
  WARN: "\x1b[33m",
  ERROR: "\x1b[31m",
};

/**
 * One human-readable line (docs/spec/SERVER.md §7.2 `text`): `<timestamp> <LEVEL> <category>: <message>
 * k=v …`; the level is coloured only when `colors` (a TTY, never a file). Values never bring a
 * control character into the line ({@linkcode escapeControls}): in the message they are
 * escaped, a field value with one (or with whitespace, `"` or `=`) is written as JSON with them
 * escaped, so one record is always one line that looks like what it is.
 */
export function formatTextLine(record: LogRecord, colors = false): string {
  const level = LEVEL_NAMES[record.level];
  const shown = colors ? `${COLORS[level]}${level}\x1b[0m` : level;
  let line = `${new Date(record.timestamp).toISOString()} ${shown} ${record.category.join(".")}: ${
    renderMessage(record, true)
  }`;
  for (const [key, value] of Object.entries(safeProperties(record))) {
    const shownValue = typeof value === "string" && /^[^\s"=]+$/.test(value) &&
        !UNSAFE_IN_TEXT.test(value)
      ? value
      : escapeControls(JSON.stringify(value) ?? String(value));
    line += ` ${escapeControls(key)}=${shownValue}`;
  }
  return line + "\n";
}

/**
 * logtape copies every record (its properties, through property descriptors) before handing it
 * to a sink that might keep it for later; a sink carrying this registry symbol consumes the
 * record before it returns, so logtape skips the copy, as it does for its own stream sink. The
 * copy was about 2 µs of the 5 µs logtape spent per line (measured with a no-op sink).
 */
const IMMEDIATE_SINK = Symbol.for("LogTape.sinkSnapshotPolicy.immediate");

/** Marks `sink` as formatting each record before it returns (see {@linkcode IMMEDIATE_SINK}). */
export function markImmediate<T extends Sink>(sink: T): T {
  Object.defineProperty(sink, IMMEDIATE_SINK, { value: true });
  return sink;
}

/** Options of {@linkcode openStdoutSink}. */
export interface StdoutSinkOptions {
  /** Formats one record as a line, `\n` included. */
  format: (record: LogRecord) => string;
  /** Writes bytes completely and synchronously. @default a `Deno.stdout.writeSync` loop */
  write?: (bytes: Uint8Array) => void;
  /** Longest a line waits before it is written, ms. @default 5 */
  flushDelayMs?: number;
  /** Lines are written at once when this many characters wait. @default 65536 */
  maxBufferedChars?: number;
  /** Counts failed writes and their lines. @default a private {@linkcode LogStats} */
  stats?: LogStats;
  /** Told once when writes start failing and once when they work again. */
  warn?: (message: string) => void;
}

/** The console sink: `flush()` writes what waits; disposing flushes and detaches it. */
export type StdoutSink = Sink & Disposable & {
  /** Writes every line accepted so far, synchronously. */
  flush(): void;
  /** Writes that failed (stdout closed or full); their lines are lost, nothing is thrown. */
  readonly failedWrites: number;
};

/**
 * The stdout sink (docs/spec/SERVER.md §7.2): each record is formatted when logged, and lines are written
 * together at most `flushDelayMs` later (or as soon as `maxBufferedChars` wait), one write for
 * many lines instead of a system call per line. Lines are never dropped and stay in order; what
 * waits is written when the process unloads (`Deno.exit`, end of the event loop), on an
 * uncaught error or unhandled rejection, and on `dispose()`. Only a process killed outright
 * loses up to `flushDelayMs` of lines, or all of them when stdout itself fails (counted in
 * `failedWrites`; logging never throws).
 */
export function openStdoutSink(options: StdoutSinkOptions): StdoutSink {
  const encoder = new TextEncoder();
  const write = options.write ?? ((bytes: Uint8Array) => {
    for (let written = 0; written < bytes.length;) {
      written += Deno.stdout.writeSync(bytes.subarray(written));
    }
  });
  const delay = options.flushDelayMs ?? 5;
  const maxChars = options.maxBufferedChars ?? 65_536;
  const stats = options.stats ?? newLogStats();
  let pending = "";
  let pendingLines = 0;
  let failedWrites = 0;
  /** Lines lost since writes began failing; `undefined` while they work. */
  let lostInRun: number | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (pending === "") return;
    const text = pending;
    const lines = pendingLines;
    pending = "";
    pendingLines = 0;
    try {
      write(encoder.encode(text));
    } catch (error) {
      // stdout is gone (closed pipe, full disk): the lines cannot be written anywhere, and a
      // throw from the flush timer would end the process.
      failedWrites++;
      stats.writeFailures++;
      stats.linesDropped += lines;
      if (lostInRun === undefined) {
        lostInRun = lines;
        options.warn?.(`Cannot write log lines to stdout: ${errorText(error)}`);
      } else lostInRun += lines;
      return;
    }
    if (lostInRun !== undefined) {
      options.warn?.(`Writing log lines to stdout again; ${lostInRun} lines were lost`);
      lostInRun = undefined;
    }
  };
  const sink = markImmediate(
    ((record: LogRecord) => {
      pending += options.format(record);
      pendingLines++;
      if (pending.length >= maxChars) flush();
      else if (timer === undefined) timer = setTimeout(flush, delay);
    }) as StdoutSink,
  );
  sink.flush = flush;
  Object.defineProperty(sink, "failedWrites", { get: () => failedWrites });
  const events = ["unload", "error", "unhandledrejection"] as const;
  for (const event of events) globalThis.addEventListener(event, flush);
  sink[Symbol.dispose] = () => {
    for (const event of events) globalThis.removeEventListener(event, flush);
    flush();
  };
  return sink;
}

/** `logging.rotation` (docs/spec/SERVER.md §7.3). */
export type Rotation = "hourly" | "daily" | "never";

/**
 * The log file name for a write at `timestamp` (ms, UTC, docs/spec/SERVER.md §7.3): `<filename>.YYYY-MM-DD`
 * (daily), `<filename>.YYYY-MM-DD-HH` (hourly) or `<filename>` (never).
 */
export function logFileName(filename: string, rotation: Rotation, timestamp: number): string {
  if (rotation === "never") return filename;
  const iso = new Date(timestamp).toISOString(); // YYYY-MM-DDTHH:…
  return rotation === "daily"
    ? `${filename}.${iso.slice(0, 10)}`
    : `${filename}.${iso.slice(0, 10)}-${iso.slice(11, 13)}`;
}

/**
 * Counts of lines the log sinks could not write or chose not to (docs/spec/SERVER.md §7.3 and its note), read by
 * the metrics at scrape time (`signal_fish_log_write_failures_total`,
 * `signal_fish_log_lines_dropped_total`, `signal_fish_log_lines_suppressed_total`). One object
 * is shared by every sink of the process.
 */
export interface LogStats {
  /** Failed sink operations: a log file that cannot be opened, written or rotated, a failed
   * stdout write, a log directory that cannot be created. */
  writeFailures: number;
  /** Lines lost: to failed writes, or waiting for a disk that cannot keep up. */
  linesDropped: number;
  /** Lines left out by the per-event rate limit (each summarised in a "Suppressed" line). */
  linesSuppressed: number;
}

/** A fresh {@linkcode LogStats} with every count at 0. */
export function newLogStats(): LogStats {
  return { writeFailures: 0, linesDropped: 0, linesSuppressed: 0 };
}

/** What {@linkcode openFileSink} needs of an open log file (`Deno.FsFile` has it). */
export interface LogFile {
  /** Writes some of `bytes` at the end of the file; resolves with how many. */
  write(bytes: Uint8Array): Promise<number>;
  /** Cuts the file to `length` bytes. */
  truncate(length?: number): Promise<void>;
  /** The file's current size in bytes. */
  stat(): Promise<{ size: number }>;
  /** Closes the file. */
  close(): void;
}

/** Opens `path` for appending, creating it (the default: `Deno.open` with append and create). */
export type OpenLogFile = (path: string) => Promise<LogFile>;

/** Options of {@linkcode openFileSink}. */
export interface FileSinkOptions {
  /** Directory, created recursively (`logging.dir`). */
  dir: string;
  /** Base file name (`logging.filename`). */
  filename: string;
  /** `logging.rotation`. */
  rotation: Rotation;
  /** Formats one record as a line (the console's format, without colours). */
  format: (record: LogRecord) => string;
  /** Lines waiting for the disk beyond this many bytes are dropped. @default 4 MiB */
  maxPendingBytes?: number;
  /**
   * `logging.max_file_size_bytes`: a file that would grow past this many bytes is closed and
   * renamed `<name>.<n>` (n = 1, 2, … ; higher is newer) and a new one started; a single line
   * larger than this gets a file of its own. `0` = no size cap. @default 0
   */
  maxFileBytes?: number;
  /**
   * `logging.max_files`: after every rotation, files of this sink in `dir` (`<filename>` and
   * `<filename>.*`) beyond this many, the file being written included, are deleted, oldest
   * (by modification time) first. `0` = keep every file. @default 0
   */
  maxFiles?: number;
  /** Counts failures and dropped lines. @default a private {@linkcode LogStats} */
  stats?: LogStats;
  /**
   * Told once when the sink starts failing (first failure after success) and once when it
   * works again; the sink never throws. `fields` are structured log fields.
   */
  warn?: (message: string, fields: Record<string, unknown>) => void;
  /** Opens a file for appending (tests inject failures). @default `Deno.open` append+create */
  open?: OpenLogFile;
}

/** A logtape sink writing to rotating files; `dispose()` flushes and closes. */
export type FileSink = Sink & AsyncDisposable & {
  /** Resolves once every line accepted so far is written. */
  flush(): Promise<void>;
  /** Lines dropped because the disk could not keep up (or a write failed). */
  readonly dropped: number;
};

const openForAppend: OpenLogFile = (path) => Deno.open(path, { append: true, create: true });

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Opens a rotating file sink (docs/spec/SERVER.md §7.3). Returns a warning instead when the directory
 * cannot be created (e.g. no write permission); the caller then logs to stdout only. Writes are
 * queued and written asynchronously, so logging never blocks the event loop.
 *
 * Files: the time-based name of {@linkcode logFileName}; past `maxFileBytes` the file is renamed
 * `<name>.<n>` and a new one begun; after each rotation only the newest `maxFiles` files are
 * kept. A line is written whole or not at all: when a write fails part-way (full disk), the file
 * is cut back to its size before the write. A failure (read-only directory, wrong owner, full
 * disk) never throws: the lines are dropped and counted in `stats`, and `warn` is told once per
 * run of failures.
 */
export function openFileSink(options: FileSinkOptions): FileSink | { warning: string } {
  try {
    Deno.mkdirSync(options.dir, { recursive: true });
  } catch (error) {
    if (options.stats) options.stats.writeFailures++;
    return {
      warning: `cannot create the log directory "${options.dir}" (${
        errorText(error)
      }); logging to stdout only`,
    };
  }
  const maxPending = options.maxPendingBytes ?? 4 * 1024 * 1024;
  const maxFileBytes = options.maxFileBytes ?? 0;
  const maxFiles = options.maxFiles ?? 0;
  const stats = options.stats ?? newLogStats();
  const open = options.open ?? openForAppend;
  const dir = options.dir;
  const encoder = new TextEncoder();
  let queue: { name: string; line: string }[] = [];
  let pendingBytes = 0;
  let dropped = 0;
  let writing: Promise<void> | undefined;
  let file: LogFile | undefined;
  let openName: string | undefined;
  /** Bytes in the open file (as far as this sink knows). */
  let size = 0;
  /** The last file whose write failed and could not be cut back, and its good size. */
  let repair: { name: string; size: number } | undefined;
  /** Lines lost since the current run of failures began; `undefined` while healthy. */
  let lostInRun: number | undefined;
  /** The file name written last (retention runs when it changes). */
  let lastName: string | undefined;
  /** Size past which the open file is rotated: `maxFileBytes`, more after a failed rotation. */
  let rotateAt = maxFileBytes;
  /** Whether a rotation or retention failure was warned about. */
  let housekeepingWarned = false;

  function fail(lines: number, error: unknown, path: string) {
    stats.writeFailures++;
    lose(lines);
    if (lostInRun === undefined) {
      lostInRun = lines;
      options.warn?.("Cannot write the log file {path}: {error}; dropping file log lines", {
        path,
        error: errorText(error),
      });
    } else lostInRun += lines;
  }

  function lose(lines: number) {
    dropped += lines;
    stats.linesDropped += lines;
  }

  function succeeded(path: string) {
    if (lostInRun === undefined) return;
    const lost = lostInRun;
    lostInRun = undefined;
    options.warn?.("Writing the log file {path} again; {lost} lines were lost", { path, lost });
  }

  function closeFile() {
    try {
      file?.close();
    } catch {
      // Already closed: nothing to release.
    }
    file = undefined;
    openName = undefined;
  }

  /** Opens `name` for appending; a torn tail left by an earlier failed write is cut off. */
  async function openFile(name: string): Promise<void> {
    closeFile();
    const handle = await open(`${dir}/${name}`);
    try {
      let current = (await handle.stat()).size;
      if (repair?.name === name && current > repair.size) {
        await handle.truncate(repair.size);
        current = repair.size;
      }
      repair = undefined;
      size = current;
      rotateAt = maxFileBytes;
    } catch (error) {
      handle.close();
      throw error;
    }
    file = handle;
    openName = name;
  }

  /** The sink's files in `dir`: `filename` itself and `filename.*`. */
  async function ownFiles(): Promise<{ name: string; mtime: number }[]> {
    const out: { name: string; mtime: number }[] = [];
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile) continue;
      if (entry.name !== options.filename && !entry.name.startsWith(`${options.filename}.`)) {
        continue;
      }
      try {
        const info = await Deno.stat(`${dir}/${entry.name}`);
        out.push({ name: entry.name, mtime: info.mtime?.getTime() ?? 0 });
      } catch {
        // Removed meanwhile.
      }
    }
    return out;
  }

  /**
   * Deletes the oldest files beyond `maxFiles` (retention). A failure (e.g. no permission to
   * list the directory) is counted and warned about once; lines are still written.
   */
  async function prune(): Promise<void> {
    if (maxFiles <= 0) return;
    try {
      const files = await ownFiles();
      // Newest first; the file being written always stays.
      files.sort((a, b) =>
        a.name === openName ? -1 : b.name === openName ? 1 : b.mtime - a.mtime ||
          // Same time: `s.log.10` is newer than `s.log.9`.
          b.name.localeCompare(a.name, "en", { numeric: true })
      );
      for (const { name } of files.slice(maxFiles)) await Deno.remove(`${dir}/${name}`);
    } catch (error) {
      housekeepingFailed("delete old log files", error);
    }
  }

  /**
   * Renames the full file `name` to `name.<n>` (n one above the highest in use) and opens a new
   * `name`. When that fails (e.g. no permission to list or rename), the failure is counted and
   * warned about once and the current file is kept: lines go on being written to it, and the
   * next attempt waits until it has grown by another `maxFileBytes`.
   */
  async function rotateBySize(name: string): Promise<void> {
    try {
      let highest = 0;
      for await (const entry of Deno.readDir(dir)) {
        if (!entry.name.startsWith(`${name}.`)) continue;
        const n = Number(entry.name.slice(name.length + 1));
        if (Number.isSafeInteger(n) && n > highest) highest = n;
      }
      await Deno.rename(`${dir}/${name}`, `${dir}/${name}.${highest + 1}`);
    } catch (error) {
      housekeepingFailed("rotate the log file", error);
      rotateAt = size + maxFileBytes;
      return;
    }
    closeFile();
    await openFile(name);
    await prune();
  }

  function housekeepingFailed(what: string, error: unknown) {
    stats.writeFailures++;
    if (housekeepingWarned) return;
    housekeepingWarned = true;
    options.warn?.(`Cannot ${what} in {path}: {error}`, { path: dir, error: errorText(error) });
  }

  /** Writes `bytes` whole or, on failure, cuts the file back to where it was. */
  async function writeWhole(bytes: Uint8Array, name: string): Promise<void> {
    const before = size;
    try {
      for (let written = 0; written < bytes.length;) {
        written += await file!.write(bytes.subarray(written));
      }
      size += bytes.length;
    } catch (error) {
      try {
        await file!.truncate(before);
      } catch {
        repair = { name, size: before };
      }
      closeFile();
      throw error;
    }
  }

  async function drain(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      let i = 0;
      while (i < batch.length) {
        const name = batch[i]!.name;
        const path = `${dir}/${name}`;
        let end = i;
        while (end < batch.length && batch[end]!.name === name) end++;
        try {
          if (openName !== name) {
            await openFile(name);
            // A new period's file (daily/hourly), or the first file: apply retention.
            if (lastName !== name) {
              lastName = name;
              await prune();
            }
          }
          // Lines i..end go to `name`, in groups that fit under the size cap.
          while (i < end) {
            const group: Uint8Array[] = [];
            let bytes = 0;
            let j = i;
            while (j < end) {
              const encoded = encoder.encode(batch[j]!.line);
              if (maxFileBytes > 0 && size + bytes + encoded.length > rotateAt) {
                if (bytes > 0) break;
                if (size > 0) await rotateBySize(name);
              }
              group.push(encoded);
              bytes += encoded.length;
              j++;
            }
            await writeWhole(group.length === 1 ? group[0]! : concat(group, bytes), name);
            i = j;
            succeeded(path);
          }
        } catch (error) {
          fail(end - i, error, path);
          i = end;
        }
      }
      // Bytes count as pending until written, so a stalled disk makes new lines drop.
      for (const { line } of batch) pendingBytes -= line.length;
    }
    writing = undefined;
  }

  const sink = markImmediate(
    ((record: LogRecord) => {
      const line = options.format(record);
      if (pendingBytes + line.length > maxPending) {
        lose(1);
        if (lostInRun === undefined) {
          lostInRun = 1;
          options.warn?.("The log file in {path} cannot keep up; dropping file log lines", {
            path: dir,
          });
        } else lostInRun++;
        return;
      }
      queue.push({ name: logFileName(options.filename, options.rotation, record.timestamp), line });
      pendingBytes += line.length;
      writing ??= drain();
    }) as FileSink,
  );
  const flush = async () => {
    while (writing) await writing;
  };
  Object.defineProperty(sink, "dropped", { get: () => dropped });
  sink.flush = flush;
  sink[Symbol.asyncDispose] = async () => {
    await flush();
    closeFile();
  };
  return sink;
}

function concat(parts: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Options of {@linkcode openRateLimitedSink}. */
export interface RateLimitedSinkOptions {
  /**
   * Where the lines that pass go, in order (e.g. stdout and the file sink). They belong to the
   * rate-limited sink from now on: disposing it disposes them.
   */
  sinks: readonly Sink[];
  /**
   * `logging.max_lines_per_event_per_second`: lines of one event kind (category and message
   * template) written per second of record time; the rest are counted and summarised in one
   * line once the second is over. `0` = no limit.
   */
  maxPerSecond: number;
  /** Counts suppressed lines. @default a private {@linkcode LogStats} */
  stats?: LogStats;
  /** The clock of the summary timer (ms). @default `Date.now` */
  now?: () => number;
}

/**
 * A sink that limits lines per event kind; disposing it writes the pending summaries, then
 * disposes its inner sinks (those that are `Disposable` or `AsyncDisposable`).
 */
export type RateLimitedSink = Sink & AsyncDisposable & {
  /**
   * Decides, before a record is built, whether a line would be suppressed: when lines of this
   * kind (`category`, the logger's own array, and the literal `template`) have already used up
   * the second of `timestamp` (ms), counts it as the sink would have (`stats.linesSuppressed`,
   * the summary) and returns `true`; the caller then skips the log call. Otherwise changes
   * nothing and returns `false`: the caller logs as usual and the sink decides. Only a kind
   * whose lines reached this sink in that second can be suppressed here, so a level or filter
   * that drops them upstream is never bypassed.
   */
  suppresses(
    category: readonly string[],
    template: string,
    level: LogLevel,
    timestamp: number,
  ): boolean;
};

/** Per event kind: the current one-second window. */
interface EventWindow {
  /** Start of the window (ms, a whole second of record time). */
  second: number;
  /** Lines passed in this window. */
  passed: number;
  /** Lines suppressed since the last summary. */
  suppressed: number;
  /** Record time of the first suppressed line since the last summary (ms). */
  firstSuppressed: number;
  /** Category, level and template of the suppressed lines (for the summary line). */
  sample: Pick<LogRecord, "category" | "level"> & { template: string } | undefined;
}

/**
 * Event kinds tracked at most; beyond, every other kind shares one window. Kinds are the literal
 * templates of this program's log calls, far fewer; the cap only bounds memory.
 */
const MAX_EVENT_KINDS = 1024;
/** The summary line's template. */
const SUMMARY_TEMPLATE = "Suppressed {suppressed} log lines like: {event}";

function templateOf(record: LogRecord): string {
  const raw = record.rawMessage;
  return typeof raw === "string" ? raw : raw.join("{}");
}

/**
 * Rate limit per event kind for log lines (issue 14 item 11): a client that connects and closes
 * thousands of times a second cannot fill the disk with "Connection opened/closed" lines. An
 * event kind is a record's category and message template (a literal of this program, so the
 * set is small). At most `maxPerSecond` lines of a kind pass per second of record time; the rest
 * are dropped and counted (`stats.linesSuppressed`), and once their second is over one line at
 * the suppressed lines' level says how many were left out (`Suppressed <n> log lines like:
 * <template>`, fields `suppressed`, `event`, `since`). The summary is written when the next line
 * of that kind arrives, or by a timer a second later, or on dispose.
 */
export function openRateLimitedSink(options: RateLimitedSinkOptions): RateLimitedSink {
  const { sinks, maxPerSecond } = options;
  const stats = options.stats ?? newLogStats();
  const now = options.now ?? Date.now;
  /** Every kind's window, by `category\0template` (at most `MAX_EVENT_KINDS`, then "other"). */
  const windows = new Map<string, EventWindow>();
  /** The same windows by category array and raw template (no key string per line). */
  const byCategory = new WeakMap<readonly string[], Map<unknown, EventWindow>>();
  let timer: ReturnType<typeof setTimeout> | undefined;

  const windowOf = (record: LogRecord): EventWindow => {
    let known = byCategory.get(record.category);
    let window = known?.get(record.rawMessage);
    if (window !== undefined) return window;
    let key = `${record.category.join(".")}\u0000${templateOf(record)}`;
    window = windows.get(key);
    if (window === undefined && windows.size >= MAX_EVENT_KINDS) {
      key = "\u0000other";
      window = windows.get(key);
    }
    if (window === undefined) {
      window = { second: 0, passed: 0, suppressed: 0, firstSuppressed: 0, sample: undefined };
      windows.set(key, window);
    }
    if (known === undefined) byCategory.set(record.category, known = new Map());
    if (known.size < MAX_EVENT_KINDS) known.set(record.rawMessage, window);
    return window;
  };

  const emit = (record: LogRecord) => {
    for (const sink of sinks) sink(record);
  };

  const summarise = (window: EventWindow, timestamp: number) => {
    const sample = window.sample!;
    const properties = {
      suppressed: window.suppressed,
      event: sample.template,
      since: new Date(window.firstSuppressed).toISOString(),
    };
    emit({
      category: sample.category,
      level: sample.level,
      rawMessage: SUMMARY_TEMPLATE,
      message: ["Suppressed ", properties.suppressed, " log lines like: ", properties.event, ""],
      timestamp,
      properties,
    });
    window.suppressed = 0;
    window.sample = undefined;
  };

  /** Writes the summaries of windows that ended before `time`. */
  const summariseEnded = (time: number) => {
    timer = undefined;
    let waiting = false;
    for (const window of windows.values()) {
      if (window.suppressed === 0) continue;
      if (window.second + 1000 <= time) summarise(window, time);
      else waiting = true;
    }
    if (waiting) schedule();
  };

  const schedule = () => {
    if (timer !== undefined) return;
    timer = setTimeout(() => summariseEnded(now()), 1000);
    // A pending summary must not keep the process alive.
    Deno.unrefTimer(timer);
  };

  /** Counts one suppressed line of `window`'s kind; `line` gives its template. */
  const suppress = (
    window: EventWindow,
    category: readonly string[],
    level: LogLevel,
    line: LogRecord | string,
    timestamp: number,
  ) => {
    if (window.suppressed === 0) {
      window.firstSuppressed = timestamp;
      window.sample = {
        category,
        level,
        template: typeof line === "string" ? line : templateOf(line),
      };
    }
    window.suppressed++;
    stats.linesSuppressed++;
    schedule();
  };

  const sink = markImmediate(
    ((record: LogRecord) => {
      if (maxPerSecond <= 0) return emit(record);
      const window = windowOf(record);
      const second = Math.floor(record.timestamp / 1000) * 1000;
      if (second !== window.second) {
        if (window.suppressed > 0) summarise(window, record.timestamp);
        window.second = second;
        window.passed = 0;
      }
      if (window.passed < maxPerSecond) {
        window.passed++;
        return emit(record);
      }
      // The record itself is not kept: logtape may reuse it once the sink returns.
      suppress(window, record.category, record.level, record, record.timestamp);
    }) as RateLimitedSink,
  );
  sink.suppresses = (category, template, level, timestamp) => {
    if (maxPerSecond <= 0) return false;
    const window = byCategory.get(category)?.get(template);
    if (
      window === undefined || window.passed < maxPerSecond ||
      window.second !== Math.floor(timestamp / 1000) * 1000
    ) return false;
    suppress(window, category, level, template, timestamp);
    return true;
  };
  sink[Symbol.asyncDispose] = async () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const time = now();
    for (const window of windows.values()) {
      if (window.suppressed > 0) summarise(window, time);
    }
    for (const inner of sinks) {
      if (Symbol.asyncDispose in inner) await (inner as AsyncDisposable)[Symbol.asyncDispose]();
      else if (Symbol.dispose in inner) (inner as Disposable)[Symbol.dispose]();
    }
  };
  return sink;
}
