/**
 * Expected trouble versus bugs (docs/spec/SERVER.md §7.4, §8.5.5): which errors of a shared
 * store's call (Redis in cluster mode) an operator is told about elsewhere, and which are bugs in
 * this program that must be logged at `ERROR` and counted in `errors_internal`. Shared by the
 * cluster's resolver and the edge's directory writes and forwards ({@linkcode logFault}).
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { bugFields } from "../logging.ts";
import { NoAnswer } from "./no_answer.ts";

/**
 * Classes of the Redis client (node-redis) whose errors mean Redis did not answer, or answered
 * with an error reply, matched by name (node-redis sets no `name`; the module is not imported here,
 * so a single instance never loads it). `ErrorReply` covers its subclasses (`SimpleError`,
 * `BlobError`).
 */
const REDIS_CLIENT_FAULTS: ReadonlySet<string> = new Set([
  "ErrorReply",
  "ClientOfflineError",
  "ClientClosedError",
  "DisconnectsClientError",
  "SocketClosedUnexpectedlyError",
  "SocketTimeoutError",
  "ConnectionTimeoutError",
]);

/** JavaScript's own error classes of a program mistake: never expected of a store. */
const PROGRAM_ERRORS = [TypeError, RangeError, ReferenceError, SyntaxError, EvalError, URIError];

/**
 * Whether `error`, thrown by a call to the shared store (Redis in cluster mode), is expected
 * trouble rather than a bug (docs/spec/SERVER.md §7.4, §8.5.5). Expected, by type or shape:
 *
 * - {@linkcode NoAnswer}: Redis unreachable or too slow for `cluster.forward_timeout_ms`;
 * - an error of one of node-redis's classes (or a subclass) named `ErrorReply` (Redis answered
 *   with an error: the `OOM`, `MISCONF` and `READONLY` write refusals, `LOADING`, …),
 *   `ClientOfflineError` or `ClientClosedError` (no connection: with `disableOfflineQueue` a
 *   command fails at once), `DisconnectsClientError`, `SocketClosedUnexpectedlyError`,
 *   `SocketTimeoutError` or `ConnectionTimeoutError` (the connection was lost);
 * - an operating system's network error, as node-redis fails the commands in flight with its
 *   socket's error: a string `code` (`ECONNRESET`, `EPIPE`, …) and a string `syscall`.
 *
 * These are already reported by the Redis link and refusal reports (warnings while the link is
 * down or Redis refuses writes): a caller logs them at debug at most. Anything else is a bug: a
 * `TypeError`, `RangeError`, `ReferenceError`, `SyntaxError`, `EvalError` or `URIError` always
 * (also one of the shapes above), as is an assertion, a plain `Error`, or a thrown value that is
 * not an `Error`. Never throws.
 */
export function isExpectedFault(error: unknown): boolean {
  try {
    return expected(error);
  } catch {
    return false; // a getter or proxy that throws: not an error of the store's client
  }
}

function expected(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (PROGRAM_ERRORS.some((type) => error instanceof type)) return false;
  if (error instanceof NoAnswer) return true;
  for (
    let proto: unknown = Object.getPrototypeOf(error);
    proto !== null && proto !== Error.prototype && typeof proto === "object";
    proto = Object.getPrototypeOf(proto)
  ) {
    const name = (proto as { constructor?: { name?: unknown } }).constructor?.name;
    if (typeof name === "string" && REDIS_CLIENT_FAULTS.has(name)) return true;
  }
  const system = error as { code?: unknown; syscall?: unknown };
  return typeof system.code === "string" && typeof system.syscall === "string";
}

/**
 * Logs a failed store call or forward the caller recovers from itself (docs/spec/SERVER.md §7.4,
 * §8.5.5): expected trouble ({@linkcode isExpectedFault}) as one debug line `<what>: <error>`;
 * anything else as a bug, one ERROR line `<what>, unexpected error: <error>` with the error's
 * `stack` as a field. `what` is a log template (placeholders filled from `fields`). Returns
 * whether it was a bug, for the caller to count in `errors_internal` (§6.3 #26).
 */
export function logFault(
  log: Logger,
  error: unknown,
  what: string,
  fields: Record<string, unknown>,
): boolean {
  if (isExpectedFault(error)) {
    log.debug(`${what}: {error}`, { ...fields, error });
    return false;
  }
  log.error(`${what}, unexpected error: {error}`, { ...fields, ...bugFields(error) });
  return true;
}
