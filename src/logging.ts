/**
 * Log formatting and the rotating file sink (SERVER.md §7). `main.ts` passes these to logtape's
 * `configure()`; nothing here configures logging itself.
 *
 * @module
 */
import type { LogLevel, LogRecord, Sink } from "@logtape/logtape";

/** `logging.level` values (SERVER.md §2.7, aliases included) → logtape levels. */
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

/** Spec level names (SERVER.md §7.2): `TRACE|DEBUG|INFO|WARN|ERROR`; fatal is logged as ERROR. */
const LEVEL_NAMES: Readonly<Record<LogLevel, string>> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARN",
  error: "ERROR",
  fatal: "ERROR",
};

/**
 * Property names whose values are never logged (SERVER.md §7.2 "Never logged"): secrets,
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
 * The record's message with its values substituted. A string template of plain `{name}`
 * placeholders is split once and rendered from the record's properties (reading
 * `record.message` makes logtape parse the template again for every line); anything else
 * renders logtape's parsed `message`.
 */
export function renderMessage(record: LogRecord): string {
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
        out += (typeof value === "string" ? value : text(value)) + parts[i + 1]!;
      }
      return out;
    }
  }
  const parts = record.message;
  let out = "";
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    out += i % 2 === 0 ? String(part) : typeof part === "string" ? part : text(part);
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

/** The record's properties, secrets replaced by {@linkcode REDACTED}. */
export function safeProperties(record: LogRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record.properties)) {
    out[key] = SECRET_KEY.test(key) ? REDACTED : scalar(value);
  }
  return out;
}

/**
 * One JSON object per line (SERVER.md §7.2 `json`): `timestamp` (RFC 3339 UTC), `level`,
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
    let json: string | undefined;
    if (typeof value === "string") json = JSON.stringify(value);
    else {
      try {
        json = JSON.stringify(scalar(value));
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
 * One human-readable line (SERVER.md §7.2 `text`): `<timestamp> <LEVEL> <category>: <message>
 * k=v …`; the level is coloured only when `colors` (a TTY, never a file).
 */
export function formatTextLine(record: LogRecord, colors = false): string {
  const level = LEVEL_NAMES[record.level];
  const shown = colors ? `${COLORS[level]}${level}\x1b[0m` : level;
  let line = `${new Date(record.timestamp).toISOString()} ${shown} ${record.category.join(".")}: ${
    renderMessage(record)
  }`;
  for (const [key, value] of Object.entries(safeProperties(record))) {
    const shownValue = typeof value === "string" && /^[^\s"=]+$/.test(value)
      ? value
      : JSON.stringify(value) ?? String(value);
    line += ` ${key}=${shownValue}`;
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
}

/** The console sink: `flush()` writes what waits; disposing flushes and detaches it. */
export type StdoutSink = Sink & Disposable & {
  /** Writes every line accepted so far, synchronously. */
  flush(): void;
  /** Writes that failed (stdout closed or full); their lines are lost, nothing is thrown. */
  readonly failedWrites: number;
};

/**
 * The stdout sink (SERVER.md §7.2): each record is formatted when logged, and lines are written
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
  let pending = "";
  let failedWrites = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (pending === "") return;
    const text = pending;
    pending = "";
    try {
      write(encoder.encode(text));
    } catch {
      // stdout is gone (closed pipe, full disk): the lines cannot be written anywhere, and a
      // throw from the flush timer would end the process.
      failedWrites++;
    }
  };
  const sink = markImmediate(
    ((record: LogRecord) => {
      pending += options.format(record);
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

/** `logging.rotation` (SERVER.md §7.3). */
export type Rotation = "hourly" | "daily" | "never";

/**
 * The log file name for a write at `timestamp` (ms, UTC, SERVER.md §7.3): `<filename>.YYYY-MM-DD`
 * (daily), `<filename>.YYYY-MM-DD-HH` (hourly) or `<filename>` (never).
 */
export function logFileName(filename: string, rotation: Rotation, timestamp: number): string {
  if (rotation === "never") return filename;
  const iso = new Date(timestamp).toISOString(); // YYYY-MM-DDTHH:…
  return rotation === "daily"
    ? `${filename}.${iso.slice(0, 10)}`
    : `${filename}.${iso.slice(0, 10)}-${iso.slice(11, 13)}`;
}

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
}

/** A logtape sink writing to rotating files; `dispose()` flushes and closes. */
export type FileSink = Sink & AsyncDisposable & {
  /** Resolves once every line accepted so far is written. */
  flush(): Promise<void>;
  /** Lines dropped because the disk could not keep up (or a write failed). */
  readonly dropped: number;
};

/**
 * Opens a rotating file sink (SERVER.md §7.3). Returns a warning instead when the directory
 * cannot be created (e.g. no write permission); the caller then logs to stdout only. Writes are
 * queued and written asynchronously, so logging never blocks the event loop.
 */
export function openFileSink(options: FileSinkOptions): FileSink | { warning: string } {
  try {
    Deno.mkdirSync(options.dir, { recursive: true });
  } catch (error) {
    return {
      warning: `cannot create the log directory "${options.dir}" (${
        error instanceof Error ? error.message : error
      }); logging to stdout only`,
    };
  }
  const maxPending = options.maxPendingBytes ?? 4 * 1024 * 1024;
  const encoder = new TextEncoder();
  let queue: { name: string; line: string }[] = [];
  let pendingBytes = 0;
  let dropped = 0;
  let writing: Promise<void> | undefined;
  let file: Deno.FsFile | undefined;
  let openName: string | undefined;

  async function drain(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      let start = 0;
      while (start < batch.length) {
        const name = batch[start]!.name;
        let end = start;
        let chunk = "";
        while (end < batch.length && batch[end]!.name === name) chunk += batch[end++]!.line;
        try {
          if (openName !== name) {
            file?.close();
            file = undefined;
            file = await Deno.open(`${options.dir}/${name}`, { append: true, create: true });
            openName = name;
          }
          const bytes = encoder.encode(chunk);
          for (let written = 0; written < bytes.length;) {
            written += await file!.write(bytes.subarray(written));
          }
        } catch {
          dropped += end - start;
          openName = undefined;
        }
        // Bytes count as pending until written, so a stalled disk makes new lines drop.
        pendingBytes -= chunk.length;
        start = end;
      }
    }
    writing = undefined;
  }

  const sink = markImmediate(
    ((record: LogRecord) => {
      const line = options.format(record);
      if (pendingBytes + line.length > maxPending) {
        dropped++;
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
    file?.close();
    file = undefined;
    openName = undefined;
  };
  return sink;
}
