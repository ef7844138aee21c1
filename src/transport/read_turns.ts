/**
 * The read budget of one event-loop turn (SECURITY.md "One connection's reads"), shared by the
 * plain-TCP reads of `websocket.ts` and the TLS reads of `tls_reads.ts`: a connection read a second
 * time within a turn whose reads have taken {@linkcode READ_TURN_BUDGET_MS} waits for a timer.
 *
 * @module
 */
import { setImmediate } from "node:timers";

/**
 * How long one event-loop turn may spend handling socket reads before a socket read again in it
 * waits, ms (SECURITY.md "One connection's reads").
 *
 * The runtime reads a socket that has data waiting again at once, within the same turn, and
 * polls for other sockets' readiness only when a turn leaves nothing to do at once: a client
 * that sends faster than its frames are handled (64-KiB MessagePack frames whose JSON conversion
 * took 15 ms each before that conversion became linear, say) kept every other connection of the
 * instance waiting for as long as it kept sending — 3.9–4.7 s for a 19.5-MB flood before,
 * 142–270 ms with this budget (SECURITY.md).
 * A socket read again after the budget is spent stops reading and starts again from a 1-ms timer;
 * `setImmediate` was not enough (0.8–1.3 s), since the turn it starts again in still has work to
 * do at once.
 */
export const READ_TURN_BUDGET_MS = 4;
/** When this turn's first handled read began (`performance.now()`), or -1 before it. */
let readTurnStart = -1;
/** Counts the turns in which some socket was read. */
export let readTurn = 0;

/** The turn's end (`setImmediate`): the next read starts a new turn and a new budget. */
function endReadTurn(): void {
  readTurnStart = -1;
  readTurn++;
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
