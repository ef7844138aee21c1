/**
 * The state file (docs/spec/SERVER.md §2.7 `server.state_file`; README "Rooms survive a restart"): the
 * file I/O around the engine's pure snapshot and restore (`engine/snapshot.ts`). Writes are
 * atomic (a temporary file of this process in the same directory, flushed, then renamed over the
 * old one, and the directory flushed) and bounded by `server.state_file_max_bytes`; reads refuse a
 * path that is not a regular file and a missing-format, foreign-version, corrupt or oversized file
 * with one log line that never quotes the file and move it aside (`<path>.rejected-<UTC time>`),
 * and the server then starts with no rooms. Both are synchronous so the snapshot can be written
 * from an `unload` handler (`deno run --watch` restarts the program without a signal).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { createHash } from "node:crypto";
import { decodeSnapshot, type Effect, type Engine } from "./engine/engine.ts";

const log = getLogger(["signal-fish", "state"]);

/** Where the snapshot lives and how large it may be. */
export interface StateFileOptions {
  /** `server.state_file`, relative to the working directory. */
  path: string;
  /** `server.state_file_max_bytes`: larger snapshots are neither read nor written. */
  maxBytes: number;
}

/**
 * What became of a save or a restore; `reason` is also what was logged. A restore's `effects`
 * publish the restored rooms to the room directory (apply them with the edge).
 */
export type StateOutcome =
  | { ok: true; rooms: number; seats: number; bytes: number; effects?: Effect[] }
  | { ok: false; reason: string };

/**
 * The SHA-256 digest of a reconnection token, base64url without padding: what the snapshot keeps
 * instead of the token (`EngineOptions.tokenDigest`).
 */
export function sha256TokenDigest(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}

/**
 * Writes `engine`'s snapshot at `now` (ms) to `options.path` atomically: a temporary file (mode
 * 0600) next to it, named for this process and a random part (`<path>.<pid>-<8 hex>.tmp`, created
 * new, so two servers given the same path never write or rename each other's), flushed to disk and
 * renamed over the old file; then the directory is flushed too where the platform allows it, so
 * that the rename survives a power loss. The directory is created when missing. A snapshot over
 * `maxBytes` is not written. Logs one line either way; never throws. `whileRunning`: the server
 * goes on serving after it (the snapshot says so, docs/spec/SERVER.md §2.7), else it is the
 * shutdown's.
 */
export function saveState(
  engine: Engine,
  options: StateFileOptions,
  now: number,
  whileRunning = false,
): StateOutcome {
  const encoded = encodeState(engine, options, now, whileRunning);
  if (!encoded.ok) return encoded;
  const { path } = options;
  const temporary = temporaryPath(path);
  let created = false;
  try {
    const directory = stateDirectory(path);
    const file = Deno.openSync(temporary, { write: true, createNew: true, mode: 0o600 });
    created = true;
    try {
      let written = 0;
      const bytes = encoded.bytes;
      while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
      file.syncSync();
    } finally {
      file.close();
    }
    Deno.renameSync(temporary, path);
    created = false;
    syncDirectory(directory);
    return saved(encoded, path, "info");
  } catch (error) {
    if (created) removeQuietly(temporary);
    return refused(
      "Cannot save rooms to {path}: {error}; rooms will not survive this restart",
      { path, error: String(error) },
      String(error),
    );
  }
}

/** A snapshot encoded for the file, with what it holds. */
type EncodedState = { ok: true; bytes: Uint8Array; rooms: number; seats: number };

/**
 * `engine`'s snapshot at `now` as the file's bytes, or the refusal (logged) when it is over
 * `maxBytes` or cannot be taken. `whileRunning` is recorded in the snapshot; the log line says
 * what the rooms would not survive then: a crash (a snapshot while running), else this restart.
 */
function encodeState(
  engine: Engine,
  { path, maxBytes }: StateFileOptions,
  now: number,
  whileRunning: boolean,
): EncodedState | { ok: false; reason: string } {
  const survives = whileRunning ? "a crash" : "this restart";
  try {
    const snapshot = engine.snapshot(now, whileRunning);
    const bytes = new TextEncoder().encode(JSON.stringify(snapshot));
    if (bytes.length > maxBytes) {
      return refused(
        `Cannot save rooms to {path}: the snapshot is {bytes} bytes, over server.state_file_max_bytes ({max}); rooms will not survive ${survives}`,
        { path, bytes: bytes.length, max: maxBytes },
        `snapshot is ${bytes.length} bytes, over ${maxBytes}`,
      );
    }
    const seats = snapshot.rooms.reduce((sum, room) => sum + room.seats.length, 0);
    return { ok: true, bytes, rooms: snapshot.rooms.length, seats };
  } catch (error) {
    return refused(
      `Cannot save rooms to {path}: {error}; rooms will not survive ${survives}`,
      { path, error: String(error) },
      String(error),
    );
  }
}

/** A temporary file next to `path`, named for this process and a random part. */
function temporaryPath(path: string): string {
  return `${path}.${Deno.pid}-${crypto.randomUUID().slice(0, 8)}.tmp`;
}

/** The directory of `path`, created when missing. */
function stateDirectory(path: string): string {
  const slash = path.lastIndexOf("/");
  const directory = slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
  if (slash > 0) Deno.mkdirSync(directory, { recursive: true });
  return directory;
}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // Nothing was left behind.
  }
}

/** Logs a written snapshot at `level` and returns its outcome. */
function saved(encoded: EncodedState, path: string, level: "info" | "debug"): StateOutcome {
  const { rooms, seats, bytes } = encoded;
  log[level]("Saved {rooms} rooms and {seats} seats to {path} ({bytes} bytes)", {
    rooms,
    seats,
    path,
    bytes: bytes.length,
  });
  return { ok: true, rooms, seats, bytes: bytes.length };
}

/**
 * Snapshots taken while the server runs (`server.state_save_interval_secs`, docs/spec/SERVER.md
 * §2.7 `state_file`), so that rooms survive a crash too, as they were at most one interval
 * earlier. Each snapshot is taken at once (the engine's state at one instant; about 80 ms of the
 * event loop for 20,000 rooms of 4) and written without blocking: a temporary file written and
 * flushed asynchronously, then renamed over the state file synchronously, unless {@linkcode stop}
 * came first (the shutdown's own snapshot is newer: the temporary file is removed). A snapshot is
 * not started while the previous one is being written. Each success is logged at debug level,
 * each failure as an error.
 */
export class PeriodicStateSaves {
  readonly #engine: Engine;
  readonly #options: StateFileOptions;
  readonly #intervalMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #writing = false;
  #stopped = false;
  /** When the last snapshot was written (this kind or the shutdown's), ms since the epoch; 0 before. */
  lastSavedAt = 0;

  /** `intervalMs` > 0: how often a snapshot is taken. */
  constructor(engine: Engine, options: StateFileOptions, intervalMs: number) {
    this.#engine = engine;
    this.#options = options;
    this.#intervalMs = intervalMs;
  }

  /** Starts taking snapshots every interval (the timer does not keep the process alive). */
  start(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#timer = setInterval(() => void this.saveNow(), this.#intervalMs);
    Deno.unrefTimer(this.#timer);
  }

  /**
   * Takes and writes one snapshot now, unless one is being written or the saves were stopped.
   * Resolves with its outcome (`undefined` when none was taken); never rejects.
   */
  async saveNow(now = Date.now()): Promise<StateOutcome | undefined> {
    if (this.#writing || this.#stopped) return undefined;
    const encoded = encodeState(this.#engine, this.#options, now, true);
    if (!encoded.ok) return encoded;
    const { path } = this.#options;
    const temporary = temporaryPath(path);
    this.#writing = true;
    let created = false;
    try {
      const directory = stateDirectory(path);
      const file = await Deno.open(temporary, { write: true, createNew: true, mode: 0o600 });
      created = true;
      try {
        let written = 0;
        const bytes = encoded.bytes;
        while (written < bytes.length) written += await file.write(bytes.subarray(written));
        await file.sync();
      } finally {
        file.close();
      }
      // Checked and renamed in one step of the event loop: a shutdown's snapshot written while
      // this one was on its way is newer and stays.
      if (this.#stopped) return undefined;
      Deno.renameSync(temporary, path);
      created = false;
      syncDirectory(directory);
      this.lastSavedAt = now;
      return saved(encoded, path, "debug");
    } catch (error) {
      return refused(
        "Cannot save rooms to {path}: {error}; rooms will not survive a crash",
        { path, error: String(error) },
        String(error),
      );
    } finally {
      if (created) removeQuietly(temporary);
      this.#writing = false;
    }
  }

  /** Stops the saves: no snapshot starts after this, and one on its way is not renamed into place. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * Flushes `directory`'s entries (a rename in it) to disk. Best effort: some platforms cannot
 * open a directory as a file (Windows) or flush one; the rename has happened either way.
 */
function syncDirectory(directory: string): void {
  try {
    const handle = Deno.openSync(directory, { read: true });
    try {
      handle.syncSync();
    } finally {
      handle.close();
    }
  } catch {
    // Not possible here; the snapshot is in place, only its durability across a power loss is not.
  }
}

/**
 * Restores the rooms of `options.path` into `engine` (which has none) at `now` (ms); every seat
 * is held for the reconnection window. No file: nothing to do (one info line), `undefined`. A path that is not a
 * regular file (a symbolic link, a FIFO, a device, a directory), a file that is too large,
 * unreadable, not JSON, of another format or version, or inconsistent is refused with one error
 * line (naming the problem, never quoting the file), nothing is restored, and the file is moved
 * aside to `<path>.rejected-<UTC time>` (e.g. `rooms.json.rejected-2026-03-04T180000.000Z`) so
 * that the next shutdown's snapshot does not replace it. At most `maxBytes` + 1 bytes are read,
 * even from a file that grows meanwhile. The caller deletes a restored file once it serves
 * ({@linkcode consumeState}), unless snapshots are taken while running. Never throws.
 */
export function restoreState(
  engine: Engine,
  options: StateFileOptions,
  now: number,
): StateOutcome | undefined {
  const { path } = options;
  const read = readStateFile(options);
  if (read === undefined) {
    log.info("No state file at {path}: starting with no rooms; they are saved there at shutdown", {
      path,
    });
    return undefined;
  }
  if (typeof read === "string") return refusedAtStart(path, read, now);
  const decoded = decodeSnapshot(new TextDecoder().decode(read));
  if (!decoded.ok) return refusedAtStart(path, decoded.reason, now);
  const restored = engine.restore(decoded.value, now);
  if (!restored.ok) return refusedAtStart(path, restored.reason, now);
  const { rooms, seats, effects, drift } = restored.value;
  log.info("Restored {rooms} rooms and {seats} held seats from {path}", { rooms, seats, path });
  if (drift.length > 0) {
    log.warn(
      "Restored rooms the current configuration would not admit; they go on as they were until they end: {drift}",
      { drift: drift.join("; ") },
    );
  }
  return { ok: true, rooms, seats, bytes: read.length, effects };
}

/**
 * The bytes of the state file, `undefined` when there is none, or why it is refused. The path
 * itself must be a regular file: it is looked at without following a symbolic link (Deno cannot
 * open without following one), so a link, a FIFO (whose opening would block start-up), a device
 * (`/dev/zero` never ends) or a directory is refused before it is opened, and the read stops after
 * `maxBytes` + 1 bytes.
 */
function readStateFile({ path, maxBytes }: StateFileOptions): Uint8Array | string | undefined {
  let entry: Deno.FileInfo;
  try {
    entry = Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    return String(error);
  }
  if (!entry.isFile) return `it is ${entryKind(entry)}, not a regular file`;
  if (entry.size > maxBytes) {
    return `it is ${entry.size} bytes, over server.state_file_max_bytes (${maxBytes})`;
  }
  try {
    const file = Deno.openSync(path, { read: true });
    try {
      let buffer = new Uint8Array(entry.size + 1);
      let length = 0;
      for (;;) {
        if (length === buffer.length) {
          if (length > maxBytes) {
            return `it grew over server.state_file_max_bytes (${maxBytes}) while being read`;
          }
          const larger = new Uint8Array(Math.min(buffer.length * 2, maxBytes + 1));
          larger.set(buffer);
          buffer = larger;
        }
        const read = file.readSync(buffer.subarray(length));
        if (read === null) return buffer.subarray(0, length);
        length += read;
      }
    } finally {
      file.close();
    }
  } catch (error) {
    return String(error);
  }
}

/** What a path that is not a regular file is, for a log line. */
function entryKind(entry: Deno.FileInfo): string {
  if (entry.isSymlink) return "a symbolic link";
  if (entry.isDirectory) return "a directory";
  if (entry.isFifo) return "a FIFO";
  if (entry.isSocket) return "a socket";
  if (entry.isCharDevice || entry.isBlockDevice) return "a device";
  return "a special file";
}

/**
 * Deletes a state file whose rooms were restored, once the server is up, so that a later crash
 * (no snapshot written) cannot bring back stale rooms. Not called while snapshots are taken while
 * running (`server.state_save_interval_secs`, docs/spec/SERVER.md §2.7): then the server replaces
 * the restored file at once with a snapshot while running of the restored rooms, which a crash
 * before the first periodic one restores again.
 * Logs a warning when it cannot.
 */
export function consumeState(options: StateFileOptions): void {
  try {
    Deno.removeSync(options.path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    log.warn("Cannot remove the restored state file {path}: {error}", {
      path: options.path,
      error: String(error),
    });
  }
}

/**
 * Logs why the state file at `path` is refused and moves it aside to
 * `<path>.rejected-<UTC time of now>`, so that the snapshot written at the next shutdown does not
 * replace it: a newer build's file (after a rollback) can be renamed back for that build, a bad
 * one stays for a look. One error line, naming where it went or why it could not be moved.
 */
function refusedAtStart(path: string, reason: string, now: number): StateOutcome {
  const aside = `${path}.rejected-${new Date(now).toISOString().replaceAll(":", "")}`;
  try {
    Deno.renameSync(path, aside);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return refused("Cannot restore rooms from {path}: {reason}; starting with no rooms", {
        path,
        reason,
      }, reason);
    }
    return refused(
      "Cannot restore rooms from {path}: {reason}; cannot move it aside ({error}), so the next shutdown may replace it; starting with no rooms",
      { path, reason, error: String(error) },
      reason,
    );
  }
  pruneRejected(path);
  return refused(
    "Cannot restore rooms from {path}: {reason}; moved it to {aside}; starting with no rooms",
    { path, reason, aside },
    reason,
  );
}

/** How many refused state files (`<path>.rejected-<UTC time>`) are kept, the newest. */
export const MAX_REJECTED_KEPT = 5;

/**
 * Deletes the refused state files next to `path` beyond the newest {@linkcode MAX_REJECTED_KEPT}
 * (their names sort by time), so that a server refused at every start does not fill its disk with
 * snapshots of up to `server.state_file_max_bytes` each. One info line per file deleted; never throws.
 */
function pruneRejected(path: string): void {
  const slash = path.lastIndexOf("/");
  const directory = slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
  const prefix = `${path.slice(slash + 1)}.rejected-`;
  try {
    const names: string[] = [];
    for (const entry of Deno.readDirSync(directory)) {
      if (entry.isFile && entry.name.startsWith(prefix)) names.push(entry.name);
    }
    names.sort();
    for (const name of names.slice(0, Math.max(0, names.length - MAX_REJECTED_KEPT))) {
      const old = `${directory}/${name}`;
      Deno.removeSync(old);
      log.info("Deleted the refused state file {old}: only the newest {kept} are kept", {
        old,
        kept: MAX_REJECTED_KEPT,
      });
    }
  } catch (error) {
    log.warn("Cannot delete old refused state files next to {path}: {error}", {
      path,
      error: String(error),
    });
  }
}

function refused(
  message: string,
  fields: Record<string, unknown>,
  reason: string,
): { ok: false; reason: string } {
  log.error(message, fields);
  return { ok: false, reason };
}

/** An exclusive hold on a state file, kept for the life of the server that restores and saves it. */
export interface StateFileLock {
  /** `<state_file>.lock`, the file whose advisory lock is held. */
  readonly path: string;
  /** Gives the lock up (at shutdown, after the snapshot is written). Idempotent. */
  release(): void;
}

/**
 * Takes the state file's lock (docs/spec/SERVER.md §2.7 `server.state_file`): an exclusive advisory
 * lock on `<path>.lock` (created mode 0600 next to the state file, the directory too when missing),
 * taken without waiting and held until `release()` or the process ends — the kernel gives it up
 * when a crashed process's handle closes, so there is no stale lock to clean up. The lock file
 * then holds this process's pid, for the operator. Returns why it cannot be taken instead: another
 * process holds it (its pid named when it wrote one) — two servers on one state file would restore
 * the same rooms and overwrite each other's snapshot — or the path cannot be created or is not a
 * regular file. Never throws.
 */
export function lockStateFile(
  options: StateFileOptions,
): { ok: true; lock: StateFileLock } | { ok: false; reason: string } {
  const path = `${options.path}.lock`;
  let file: Deno.FsFile | undefined;
  try {
    const slash = path.lastIndexOf("/");
    if (slash > 0) Deno.mkdirSync(path.slice(0, slash), { recursive: true });
    try {
      const entry = Deno.lstatSync(path);
      if (!entry.isFile) {
        return { ok: false, reason: `${path} is ${entryKind(entry)}, not a regular file` };
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    file = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
    if (!file.tryLockSync(true)) {
      const holder = lockHolder(file);
      file.close();
      return {
        ok: false,
        reason: `${options.path} is in use by another running server${
          holder === undefined ? "" : ` (pid ${holder})`
        }: its lock ${path} is held; give every server process a state_file of its own`,
      };
    }
    file.truncateSync(0);
    file.writeSync(new TextEncoder().encode(`${Deno.pid}\n`));
  } catch (error) {
    file?.close();
    return { ok: false, reason: `cannot lock ${path}: ${error}` };
  }
  const held = file;
  let released = false;
  return {
    ok: true,
    lock: {
      path,
      release() {
        if (released) return;
        released = true;
        try {
          held.close();
        } catch {
          // Already closed: the lock is gone with the handle.
        }
      },
    },
  };
}

/** The pid a lock's holder wrote in its lock file, when it is one. */
function lockHolder(file: Deno.FsFile): number | undefined {
  try {
    const buffer = new Uint8Array(32);
    const read = file.readSync(buffer) ?? 0;
    const text = new TextDecoder().decode(buffer.subarray(0, read)).trim();
    return /^\d{1,10}$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}
