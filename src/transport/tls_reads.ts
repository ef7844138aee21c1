/**
 * Reads of the connections the server terminates TLS for (SECURITY.md "Reads of TLS
 * connections"): their pauses stop their TCP handle, which keeps the read budget of
 * `read_turns.ts`.
 *
 * @module
 */
import type { Socket } from "node:net";
import { getSystemErrorName } from "node:util";
import {
  type ReadHandle,
  readResult,
  readsReplayable,
  readTurn,
  readTurnSpent,
  readTurnStarts,
  readTurnWaits,
  replayRead,
} from "./read_turns.ts";

/** What {@linkcode tlsReads} reads of a `Readable`'s state (Node's `_readableState`). */
interface ReadableState {
  readonly destroyed: boolean;
}

/** TLS connections whose TCP handle follows their pauses and the read budget, counted. */
export const tlsReadsTaken = { connections: 0 };

/** The TLS handles {@linkcode tlsReads} took over. */
const tlsReading = new WeakSet<object>();

/** The read errors that ended TLS connections, by TLS socket ({@linkcode tlsReadError}). */
const readErrors = new WeakMap<object, string>();

/**
 * The error (`ECONNRESET`, `ETIMEDOUT`, …) of the read that ended the TCP connection under the
 * TLS socket `stream`, if a read failed: Deno's `node:tls` ends the TLS socket as if the client
 * had ended the stream (an EOF, no `errored`), so a client's reset would read as its EOF
 * (docs/spec/SERVER.md §6.3 #97). Known for the connections {@linkcode tlsReads} took over.
 */
export function tlsReadError(stream: object): string | undefined {
  return readErrors.get(stream);
}

/**
 * Reads of a connection the server terminates TLS for: the TLS socket's pauses stop its TCP
 * handle, and that handle keeps the read budget of `read_turns.ts` (SECURITY.md "One connection's
 * reads" and "Reads of TLS connections").
 *
 * Deno's `node:tls` reads the encrypted bytes with the connection's own TCP handle (the
 * `TLSWrap`'s `_nativeTcpHandle`), whose read decrypts them and hands the cleartext on to the TLS
 * socket's `Readable` and `ws`' parser within the read. The runtime reads that handle again at once
 * while it has data, as it does a plain socket's, and a pause of the TLS socket (`TLSWrap`'s
 * `readStop`) only holds the cleartext back while the TCP handle goes on reading: a paused
 * connection (one that sent too large a message, or one `ws` asks to wait) kept taking everything
 * its client sent into memory (2.5 GiB in the 2 s before such a connection is dropped, the
 * server's RSS from 79 to 394 MB; an HTTPS request body no route reads, 930 MB in 5 s). So the
 * TCP handle reads only while the TLS socket is not
 * paused, has not ended and has not been stopped by the budget: a read of a turn that has spent
 * the budget (its second in the turn, or any once the budget has stopped it) is kept and stops
 * it until its turn, when the read is handed to `node:tls` as the runtime would have
 * ({@linkcode replayRead}) and the handle reads again.
 *
 * The listener calls it for every TLS connection once its handshake is done, so the HTTP requests
 * before an upgrade have it as much as the WebSocket after it (a second call does nothing).
 * Nothing happens when the handles do not look as expected; `tests/tls_test.ts` fails then
 * ({@linkcode tlsReadsTaken} does not count the connections).
 *
 * @param stream a `node:tls` socket (a `TLSSocket`) after its handshake
 */
export function tlsReads(stream: Socket): void {
  type TlsHandle = Partial<ReadHandle> & { _nativeTcpHandle?: Partial<ReadHandle> | null };
  const tls = (stream as unknown as { _handle?: TlsHandle | null })._handle;
  const tcp = tls?._nativeTcpHandle;
  if (
    !tls || !tcp || typeof tcp.onread !== "function" || typeof tcp.readStop !== "function" ||
    typeof tcp.readStart !== "function" || typeof tls.readStop !== "function" ||
    typeof tls.readStart !== "function" || tlsReading.has(tls) || !readsReplayable
  ) return;
  tlsReading.add(tls);
  const plain = tcp.onread;
  const pauseTls = tls.readStop;
  const resumeTls = tls.readStart;
  const state = (stream as unknown as { _readableState: ReadableState })._readableState;
  let reading = true; // the TCP handle, once restarted below
  let paused = false; // `node:tls` stopped the TLS handle
  let waiting = false; // the read budget stopped the TCP handle
  let ended = false; // the TCP handle read its end (it stops itself then)
  // Starts or stops the TCP handle to match; `node:tls` lets go of it when the socket closes.
  const sync = () => {
    if (ended || tls._nativeTcpHandle !== tcp) return;
    const wanted = !paused && !waiting && !state.destroyed;
    if (wanted === reading) return;
    reading = wanted;
    if (wanted) tcp.readStart!();
    else tcp.readStop!();
  };
  // This handle's reads in the current turn (`readTurn`), and whether the budget stopped it once
  // (as in `websocket.ts`).
  let turn = -1;
  let reads = 0;
  let heavy = false;
  // The read the budget kept for later (`read_turns.ts`), handed on as a read of the turn when
  // its turn comes, unless the connection closed meanwhile.
  let kept: ArrayBuffer | undefined;
  const resume = () => {
    waiting = false;
    const bytes = kept;
    kept = undefined;
    const handed = bytes !== undefined && !ended && tls._nativeTcpHandle === tcp &&
      !state.destroyed;
    if (handed) {
      turn = readTurn;
      reads = 1;
      replayRead(tcp as ReadHandle, plain, bytes);
    }
    sync();
    return handed;
  };
  tls.readStop = function (this: TlsHandle) {
    paused = true;
    const status = pauseTls.call(this);
    sync();
    return status;
  };
  tls.readStart = function (this: TlsHandle) {
    paused = false;
    const status = resumeTls.call(this);
    sync();
    return status;
  };
  tcp.onread = function (bytes) {
    // Not while it waits (only `resume` starts it again), but a kept read must never be lost.
    if (kept !== undefined) {
      const earlier = kept;
      kept = undefined;
      replayRead(tcp as ReadHandle, plain, earlier);
    }
    // Called without bytes only for the end of the stream or an error (the runtime's
    // LibUvStreamWrap), after which the handle has stopped itself.
    if (bytes === undefined) {
      ended = true;
      reading = false;
      // A read error, not the end of the stream (`UV_EOF`): kept for the connection's end, which
      // `node:tls` reports as an EOF (`tlsReadError`).
      const status = readResult();
      if (status !== undefined && status < 0) {
        const name = errorName(status);
        if (name !== "EOF") readErrors.set(stream, name);
      }
      return plain.apply(this, arguments as unknown as [ArrayBuffer | undefined]);
    }
    readTurnStarts();
    if (turn !== readTurn) {
      turn = readTurn;
      reads = 0;
    }
    if ((++reads > 1 || heavy) && readTurnSpent()) {
      // Kept for later: the handle stops until its turn (`read_turns.ts`).
      kept = bytes;
      heavy = true;
      waiting = true;
      sync();
      readTurnWaits(resume);
      return undefined;
    }
    return plain.apply(this, arguments as unknown as [ArrayBuffer | undefined]);
  };
  // The handle took `onread` when it started reading: restart it to take this one.
  tcp.readStop();
  tcp.readStart();
  tlsReadsTaken.connections++;
}

/** The name of a negative error number (`ECONNRESET`; `EOF` for `UV_EOF`), or the number. */
function errorName(status: number): string {
  try {
    return getSystemErrorName(status);
  } catch {
    return String(status);
  }
}
