/**
 * The hand-over between the listener and the WebSocket layer (docs/spec/SERVER.md §1.8): the listener
 * turns an HTTP upgrade into a request ({@linkcode UpgradeRequest} on the WebSocket route, a
 * `Request` elsewhere) and remembers its raw socket here; the WebSocket layer takes the socket
 * over and answers with a marker response telling the listener that the socket is no longer its
 * to answer.
 *
 * @module
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";

/** Header lookups as `Headers` answers them: case-insensitive, repeats joined with `", "`. */
export interface HeaderReader {
  get(name: string): string | null;
  has(name: string): boolean;
}

/**
 * The part of a `Request` the WebSocket route reads (docs/spec/SERVER.md §1.8): method, URL and
 * header lookups. A `Request` is one; so is an {@linkcode UpgradeRequest}.
 */
export interface RequestHead {
  readonly method: string;
  /** Absolute URL, `scheme://host/target`. */
  readonly url: string;
  readonly headers: HeaderReader;
}

/** HTTP whitespace `Headers` strips from both ends of a value (Fetch: "normalize"). */
function isHttpSpace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

/**
 * A {@linkcode RequestHead} read straight from the parsed request head (`rawHeaders`), for the
 * WebSocket upgrade: no `Request`, `Headers` or URL object is built (together about an eighth of
 * the server's CPU per connect/close cycle, BENCHMARKS.md "Session 5: churn and memory"). Lookups
 * give what a `Headers` built from the same raw headers gives: names compared case-insensitively,
 * values stripped of HTTP whitespace, repeats joined with `", "` in order.
 */
export class UpgradeRequest implements RequestHead, HeaderReader {
  readonly method: string;
  /** The request target, starting with `/` (path and query). */
  readonly target: string;
  readonly #raw: readonly string[];
  readonly #scheme: string;

  /**
   * @param rawHeaders names and values in turn, as received (`IncomingMessage.rawHeaders`)
   * @param scheme `http` or `https`
   * @param target the request target, starting with `/`
   */
  constructor(method: string, rawHeaders: readonly string[], scheme: string, target: string) {
    this.method = method;
    this.#raw = rawHeaders;
    this.#scheme = scheme;
    this.target = target;
  }

  /** Built when asked (logs): `scheme://host/target`. */
  get url(): string {
    return `${this.#scheme}://${this.get("host") ?? ""}${this.target}`;
  }

  /** This object: it answers the lookups itself. */
  get headers(): HeaderReader {
    return this;
  }

  /** The value of header `name` (any case), repeats joined with `", "`; null when absent. */
  get(name: string): string | null {
    const raw = this.#raw;
    const length = name.length;
    let lower: string | undefined;
    let out: string | null = null;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const key = raw[i]!;
      if (key.length !== length) continue;
      lower ??= name.toLowerCase();
      if (key !== lower && key.toLowerCase() !== lower) continue;
      const value = strip(raw[i + 1]!);
      out = out === null ? value : `${out}, ${value}`;
    }
    return out;
  }

  /** True when header `name` (any case) is present. */
  has(name: string): boolean {
    return this.get(name) !== null;
  }
}

function strip(value: string): string {
  const n = value.length;
  if (n === 0 || (!isHttpSpace(value.charCodeAt(0)) && !isHttpSpace(value.charCodeAt(n - 1)))) {
    return value;
  }
  let start = 0;
  let end = n;
  while (start < end && isHttpSpace(value.charCodeAt(start))) start++;
  while (end > start && isHttpSpace(value.charCodeAt(end - 1))) end--;
  return value.slice(start, end);
}

/** The raw side of one upgrade request. */
export interface UpgradeSocket {
  /** The parsed request head. */
  message: IncomingMessage;
  /** The connection (TCP or TLS), not yet written to. */
  socket: Duplex;
  /** Bytes that followed the request head (the first frames, if the client did not wait). */
  head: Uint8Array;
  /**
   * Called by {@linkcode takeUpgradeSocket} with `socket` as it is taken over, before its new
   * owner adds listeners: the listener drops its pending-time ones there, so the owner's are
   * not added to listener arrays that then keep their grown capacity (BENCHMARKS.md
   * "Session 6: memory").
   */
  onTaken?: (socket: Duplex) => void;
}

const sockets = new WeakMap<RequestHead, UpgradeSocket>();

/** Remembers the raw socket of an upgrade `request` (the listener calls this). */
export function attachUpgradeSocket(request: RequestHead, upgrade: UpgradeSocket): void {
  sockets.set(request, upgrade);
}

/**
 * The raw socket of `request`, once: a second call returns undefined, so a socket is taken over
 * by one owner only. Undefined for requests that did not arrive as an HTTP/1.1 upgrade.
 */
export function takeUpgradeSocket(request: RequestHead): UpgradeSocket | undefined {
  const upgrade = sockets.get(request);
  sockets.delete(request);
  upgrade?.onTaken?.(upgrade.socket);
  return upgrade;
}

/** Forgets the raw socket of `request` without taking it (`onTaken` is not called). */
export function dropUpgradeSocket(request: RequestHead): void {
  sockets.delete(request);
}

/**
 * The marker: one response for every upgrade (a `Response` per upgrade cost a few µs); nobody
 * reads or changes it, the listener only recognises it.
 */
const SWITCHED = new Response(null, { status: 200 });

/** The marker response meaning "the socket was taken over" (the 101 was or will be sent). */
export function switchingProtocols(): Response {
  return SWITCHED;
}

/** True for the response of {@linkcode switchingProtocols}. */
export function isSwitchingProtocols(response: Response): boolean {
  return response === SWITCHED;
}
