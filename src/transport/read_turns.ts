/**
 * The read budget of one event-loop turn (SECURITY.md "One connection's reads"), shared by the
 * plain-TCP reads of `websocket.ts` and the TLS reads of `tls_reads.ts`: once a turn's reads have
 * taken {@linkcode READ_TURN_BUDGET_MS}, a connection read a second time in it, or read at all
 * after the budget once stopped it, keeps that read for later and stops; the connections so
 * stopped are handled in turn, after the runtime has polled every socket.
 *
 * @module
 */
import process from "node:process";
import { setImmediate } from "node:timers";

/**
 * How long one event-loop turn may spend handling socket reads before a socket read again in it
 * stops, ms (SECURITY.md "One connection's reads").
 *
 * The runtime reads a socket that has data waiting again at once, within the same turn, and
 * polls for other sockets' readiness only when a turn leaves nothing to do at once: a client
 * that sends faster than its frames are handled (64-KiB MessagePack frames whose JSON conversion
 * took 15 ms each before that conversion became linear, say) kept every other connection of the
 * instance waiting for as long as it kept sending — 3.9–4.7 s for a 19.5-MB flood before,
 * 142–270 ms with this budget (SECURITY.md).
 */
export const READ_TURN_BUDGET_MS = 4;
/** When this turn's first handled read began (`performance.now()`), or -1 before it. */
let readTurnStart = -1;
/** Counts the turns in which some socket was read. */
export let readTurn = 0;

/**
 * The connections holding a read the budget kept for later, in the order they stopped: each
 * entry hands its connection's read on, as a read of the current turn, and starts the connection
 * reading again; it returns whether it had a read to hand on (not when the connection closed
 * meanwhile).
 */
const waiting: (() => boolean)[] = [];
/** Whether a timer will hand on the reads of {@linkcode waiting}. */
let resumeArmed = false;
/** Whether that timer put the hand-over off once already. */
let resumeDeferred = false;
/** When the last turn ended while reads waited (`performance.now()`). */
let lastTurnEnd = 0;

/**
 * The turn's end (`setImmediate`, after the turn's reads): the next read starts a new turn and a
 * new budget, and the reads kept for later are handed on from a 1-ms timer armed here.
 *
 * Deno's runtime (2.9) learns which sockets are ready only when its event loop runs out of work
 * at once: while a turn did any I/O, the next runs straight after it, and tokio's scheduler asks
 * the kernel (`epoll_wait`) only when the loop is idle or once in 61 runs (`event_interval`).
 * Armed after every read of the turn, the timer is not yet due in the turns that follow at once,
 * so the loop goes idle and every socket with data is queued before the kept reads: each
 * stopped connection had a timer of its own before, armed as it stopped, and with two or more
 * of them one was always due — the loop never went idle, and a bystander's `Ping` waited for
 * tokio's 61st run (1–2 s with four clients flooding 64-KiB signed frames).
 */
function endReadTurn(): void {
  readTurnStart = -1;
  readTurn++;
  if (waiting.length === 0) return;
  lastTurnEnd = performance.now();
  if (resumeArmed) return;
  resumeArmed = true;
  setTimeout(resumeReads, 1);
}

/**
 * Hands on the reads kept for later, longest kept first, in a new turn, until it has spent the
 * budget (at least one); the rest wait for the next. The connections whose reads were handed on
 * read again in this turn, and keep their next read as soon as the budget is spent.
 *
 * A timer that came due while a later turn ran (one of reads the runtime found ready, which no
 * hand-over started) puts the hand-over off once, by 1 ms from now, so that the loop goes idle
 * after that turn too.
 */
function resumeReads(): void {
  if (!resumeDeferred && performance.now() - lastTurnEnd < 1) {
    resumeDeferred = true;
    setTimeout(resumeReads, 1);
    return;
  }
  resumeDeferred = false;
  resumeArmed = false;
  readTurnStarts();
  for (let resume = waiting.shift(); resume; resume = waiting.shift()) {
    if (resume() && readTurnSpent()) return;
  }
}

/** Marks the start of the turn's reads at its first read (and schedules the turn's end). */
export function readTurnStarts(): void {
  if (readTurnStart >= 0) return;
  readTurnStart = performance.now();
  setImmediate(endReadTurn);
}

/** Whether this turn's reads have used up {@linkcode READ_TURN_BUDGET_MS}. */
export function readTurnSpent(): boolean {
  return performance.now() - readTurnStart > READ_TURN_BUDGET_MS;
}

/**
 * Queues a connection that kept a read for later (and stopped reading): `resume` hands that read
 * on when its turn comes, and returns whether it had one.
 */
export function readTurnWaits(resume: () => boolean): void {
  waiting.push(resume);
}

/** What {@linkcode replayRead} needs of a runtime stream handle (Node's `LibuvStreamWrap`). */
export interface ReadHandle {
  /** Called by the runtime with each read's bytes, and without them at the end or an error. */
  onread: (this: ReadHandle, bytes?: ArrayBuffer, nread?: number) => unknown;
  /** Stops the handle's reads. */
  readStop(): number;
  /** Starts them, with the `onread` set at that moment. */
  readStart(): number;
}

/**
 * The array through which the runtime tells a stream handle's `onread` how many bytes it read
 * (Node's `streamBaseState`, from `process.binding("stream_wrap")`), with the indexes of that
 * count and of the offset; `undefined` if the runtime has none. `process.binding` is the only way
 * to it in Deno 2.9.6 (see `streamWrap` in `websocket.ts`).
 */
const streamBase = (() => {
  try {
    const binding = (process as unknown as { binding(name: string): unknown }).binding(
      "stream_wrap",
    ) as { streamBaseState?: unknown; kReadBytesOrError?: unknown; kArrayBufferOffset?: unknown };
    const { streamBaseState: state, kReadBytesOrError: count, kArrayBufferOffset: offset } =
      binding;
    if (
      state instanceof Int32Array && typeof count === "number" && typeof offset === "number"
    ) return { state, count, offset };
  } catch {
    // No such binding.
  }
  return undefined;
})();

/**
 * What the runtime tells the `onread` it is calling now besides the bytes: the count of bytes
 * read, or a negative error number (Node's `UV_EOF`, -4095, at the end of the stream) when it
 * calls it without bytes; `undefined` when the runtime has no `streamBaseState`.
 */
export function readResult(): number | undefined {
  return streamBase === undefined ? undefined : streamBase.state[streamBase.count];
}

/**
 * Whether {@linkcode replayRead} can tell a handle's `onread` the count of bytes the way the
 * runtime does, which `node:tls` needs (`tlsReads` takes no connection over without it).
 */
export const readsReplayable = streamBase !== undefined;

/**
 * Hands `bytes`, read earlier and kept, to `onread` (a handle's callback as the runtime set it)
 * the way the runtime calls it: the count of bytes read goes through `streamBaseState`, where
 * `node:net` and `node:tls` read it (Deno's `node:net` also takes it as an argument), and the
 * count of the read under way, if any, is put back after.
 */
export function replayRead(
  handle: ReadHandle,
  onread: ReadHandle["onread"],
  bytes: ArrayBuffer,
): unknown {
  if (streamBase === undefined) return onread.call(handle, bytes, bytes.byteLength);
  const { state, count, offset } = streamBase;
  const countBefore = state[count]!;
  const offsetBefore = state[offset]!;
  state[count] = bytes.byteLength;
  state[offset] = 0;
  try {
    return onread.call(handle, bytes, bytes.byteLength);
  } finally {
    state[count] = countBefore;
    state[offset] = offsetBefore;
  }
}
