/**
 * The HTTP listener (docs/spec/SERVER.md §1.1, §3.10, SECURITY.md): a `node:http` (or `node:https`) server
 * that bounds connections which have not become WebSockets yet, turns each request into a
 * `Request` for the route handler and each upgrade into a `Request` whose raw socket the
 * WebSocket layer takes over (`./handover.ts`).
 *
 * Why not `Deno.serve`: its WebSocket upgrade reassembles fragmented messages with no size limit
 * (one client could exhaust memory, issue 14 item 1), a client resetting before the 101 leaked
 * its slot and descriptor (item 2), and it has no header, idle or handshake timeouts (item 3).
 * Measured against it in BENCHMARKS.md ("Transport").
 *
 * Limits enforced here, per connection that is not (yet) a WebSocket:
 * - the request head must be complete within `headerTimeoutMs`;
 * - a connection idle for `idleTimeoutMs` (before its first request, between keep-alive requests)
 *   is closed; a TLS handshake must finish within `tlsHandshakeTimeoutMs` of the connection's
 *   accept, however its bytes come;
 * - at most `maxPending` such connections in all and `maxPendingPerIp` per socket peer address
 *   (an IPv6 peer by its network of `ipv6PrefixLength` bits);
 *   a connection beyond either cap is closed at once, without reading it;
 * - a request's body must be whole within `headerTimeoutMs` of its head, whether the route reads
 *   it or not;
 * - at most {@linkcode MAX_UNANSWERED_REQUESTS} pipelined requests not answered yet per
 *   connection; one more closes it;
 * - a pipelined request is handled once the answer before it is written out (handed to the
 *   kernel), so a connection that does not read its answers holds one of them, not one per
 *   request; a request still waiting when the connection closes is not handled;
 * - an upgrade request pipelined behind requests not answered yet is refused (`400` after their
 *   answers, then the connection closes), so no answer lands after a 101;
 * - an upgrade request a route does not switch protocols for is answered on the raw socket with
 *   a body of at most {@linkcode MAX_RAW_BODY_BYTES}, never an event stream (`400`), read only
 *   while the socket is open.
 *
 * @module
 */
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { getLogger } from "@logtape/logtape";
import { bugFields } from "../logging.ts";
import { tlsReads } from "../transport/tls_reads.ts";
import { DEFAULT_IPV6_PREFIX_LENGTH, ipKey } from "./admission.ts";
import { checkTlsPem, type TlsPemCheck, tlsPemProblem } from "../util/tls_pem.ts";
import {
  attachUpgradeSocket,
  dropUpgradeSocket,
  isSwitchingProtocols,
  UpgradeRequest,
} from "./handover.ts";

const log = getLogger(["signal-fish", "listener"]);

/** PEM certificate chain and private key for HTTPS/WSS. */
export interface TlsPem {
  cert: string;
  key: string;
}

/** Bounds on connections that are not WebSockets (yet); `security.http.*` (SECURITY.md). */
export interface PendingLimits {
  /** A request head must be complete this long after its first byte was awaited, ms. */
  headerTimeoutMs: number;
  /** A connection with no traffic for this long before it is upgraded is closed, ms. */
  idleTimeoutMs: number;
  /**
   * A TLS handshake must be over this long after the connection was accepted, ms (TLS only):
   * a total, not refreshed by the client's bytes.
   */
  tlsHandshakeTimeoutMs: number;
  /** Connections not upgraded yet, all addresses together. */
  maxPending: number;
  /**
   * Connections not upgraded yet from one socket peer address: an IPv6 peer counts by its network
   * of {@linkcode PendingLimits.ipv6PrefixLength} bits, as every per-IP limit does.
   */
  maxPendingPerIp: number;
  /**
   * `security.ipv6_prefix_length`: the bits of an IPv6 peer's address that
   * {@linkcode PendingLimits.maxPendingPerIp} counts it by (docs/spec/SERVER.md §1.9).
   * @default 64
   */
  ipv6PrefixLength?: number;
}

/** Defaults of {@linkcode PendingLimits} (`security.http.*`). */
export const DEFAULT_PENDING_LIMITS: PendingLimits = {
  headerTimeoutMs: 5_000,
  idleTimeoutMs: 5_000,
  tlsHandshakeTimeoutMs: 5_000,
  maxPending: 1_024,
  maxPendingPerIp: 32,
};

/**
 * Requests one connection may have received and not yet been answered (HTTP/1.1 pipelining);
 * one more closes the connection (SECURITY.md, "Pipelined requests not answered"). `node:http` reads and
 * queues every pipelined request, and answers each after the one before it has finished, from the
 * next tick: one client pipelining `GET /v2/health` as fast as it could (~150,000 requests in 3 s)
 * kept the event loop on its queue for 8–14 s at a time (a bystander's `Ping` waited as long;
 * `Array.shift` on the queue made it quadratic). Browsers do not pipeline; a client that waits
 * for each answer has one request open at a time.
 */
export const MAX_UNANSWERED_REQUESTS = 16;

/** What the handler learns about the connection (the subset of `Deno.ServeHandlerInfo` used). */
export interface RequestInfo {
  remoteAddr: Deno.NetAddr;
}

/** The route handler: every request, upgrades included. */
export type RequestHandler = (
  request: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
) => Response | Promise<Response>;

/**
 * The fast path of upgrades (docs/spec/SERVER.md §1.8): answers an upgrade from its head alone,
 * without a `Request` (the WebSocket route), or returns undefined to have `handler` answer it
 * from a full `Request`. Throwing answers 500, as a throwing `handler` does.
 */
export type UpgradeHandler = (
  request: UpgradeRequest,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
) => Response | undefined;

/** Options of {@linkcode listen}. */
export interface ListenOptions {
  hostname: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Serve HTTPS/WSS with this certificate and key. @default plain HTTP */
  tls?: TlsPem;
  handler: RequestHandler;
  /** Tried first for every upgrade; see {@linkcode UpgradeHandler}. @default none */
  upgrade?: UpgradeHandler;
  /** @default DEFAULT_PENDING_LIMITS */
  limits?: PendingLimits;
  /**
   * Called when a connection is closed because a pending-connection cap is reached (unread) or
   * it pipelined more than {@linkcode MAX_UNANSWERED_REQUESTS} requests.
   */
  onRefused?: (reason: "pending" | "pending_per_ip" | "pipelined") => void;
  /**
   * Bind with `SO_REUSEPORT` (`server.reuse_port`, docs/spec/SERVER.md §1.1): several processes
   * of the same user listen on one address and port, and the kernel spreads new connections
   * over them (Linux: by a hash of the connection's addresses and ports). @default false
   */
  reusePort?: boolean;
}

/** A bound listener. */
export interface Listener {
  /** The bound address (port resolved when 0 was asked for). */
  readonly addr: Deno.NetAddr;
  /**
   * Serves `pem` to every TLS handshake from now on (connections already secure keep theirs), and
   * to the listener bound again after an accept failure; returns its check (validity period and
   * any warning). Throws a `TypeError` naming the file and the rule it breaks when the pair is not
   * usable ({@linkcode checkTlsPem}: then nothing changes), or when this listener serves plain
   * HTTP.
   */
  setTls(pem: TlsPem): TlsPemCheck & { ok: true };
  /** How often the accept loop was found dead and the port bound again (tests, logs). */
  readonly restarts: number;
  /** Connections accepted and not upgraded (yet) (tests, metrics). */
  readonly pending: number;
  /**
   * Stops accepting, closes connections that are not WebSockets (answering in-flight requests
   * first) and resolves; upgraded sockets are left to their owner.
   */
  shutdown(): Promise<void>;
}

/** Bookkeeping of one accepted connection until it is upgraded or closed. */
interface Pending {
  ip: string;
  socket: Socket;
  released: boolean;
  /** Bytes read and written when the idle sweep last saw them change (plain HTTP only). */
  traffic: number;
  /** When the idle sweep last saw traffic, or when the connection came, ms since the epoch. */
  activeMs: number;
  /** Closes the connection if its TLS handshake is not over in time (TLS only, until secure). */
  handshakeTimer?: ReturnType<typeof setTimeout>;
}

/** Bytes read and written on `socket` so far (0 where the runtime does not count them). */
function trafficOf(socket: Socket): number {
  const total = socket.bytesRead + socket.bytesWritten;
  return Number.isFinite(total) ? total : 0;
}

/**
 * The per-IP pending count's key of a socket peer address: {@linkcode ipKey}, so an IPv4-mapped
 * peer counts as its IPv4 address and an IPv6 peer by its network of `ipv6PrefixLength` bits.
 * Before, each IPv6 address was a key of its own: one /64 could hold every pending slot of the
 * instance from `maxPending / maxPendingPerIp` of its addresses (32 by default).
 */
function peerKey(address: string | undefined, ipv6PrefixLength: number): string {
  return address === undefined ? "unknown" : ipKey(address, ipv6PrefixLength);
}

const STATUS_TEXT = http.STATUS_CODES;

/** `ServeHandlerInfo.completed`: nothing here waits for it; one settled promise for all. */
const COMPLETED: Promise<void> = Promise.resolve();

/** A Server-Sent Events answer (docs/spec/EXTENSIONS.md E12): written as it comes, not buffered whole. */
function isEventStream(response: Response): boolean {
  return response.headers.get("content-type")?.startsWith("text/event-stream") ?? false;
}

/**
 * Writes a streamed body chunk by chunk, pulling the next chunk only when the socket has taken
 * the last one (`drain`): a slow reader stops the pulls, so the producer sees its own queue fill
 * and can drop the stream. Ends with the stream; a failed stream or a closed socket destroys the
 * other side.
 */
async function streamBody(response: Response, res: http.ServerResponse): Promise<void> {
  const reader = response.body!.getReader();
  res.once("close", () => reader.cancel().catch(() => {}));
  if (res.destroyed) return;
  const headers: string[] = [];
  response.headers.forEach((value, name) => headers.push(name, value));
  res.writeHead(response.status, response.statusText || STATUS_TEXT[response.status], headers);
  res.flushHeaders();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done || res.destroyed) break;
      if (!res.write(value)) {
        await new Promise<void>((resolve) => {
          const settle = () => {
            res.off("drain", settle);
            res.off("close", settle);
            resolve();
          };
          res.on("drain", settle);
          res.on("close", settle);
        });
      }
    }
    if (!res.destroyed) res.end();
  } catch {
    // The producer dropped the stream (a slow reader) or it failed: cut the connection.
    res.destroy();
  }
}

/** Accept-loop liveness check period and how long a probe may wait to be accepted, ms. */
const WATCH_INTERVAL_MS = 1_000;
const WATCH_TIMEOUT_MS = 2_000;
/** Consecutive unanswered probes before the port is bound again. */
const WATCH_MISSES = 2;
/**
 * With `reusePort`, the kernel hands each probe to any process sharing the port, so one probe
 * proves nothing about this one: each round opens this many at once (any of them, or any
 * client, accepted here proves the accept loop alive), and the port is bound again only after
 * {@linkcode WATCH_MISSES_SHARED} rounds in a row without one. With N processes a live listener
 * misses a round with probability ((N − 1)/N)^16 (N = 3: 0.2 %; N = 8: 12 %).
 */
const SHARED_PROBES = 16;
const WATCH_MISSES_SHARED = 4;
/** First pause before re-binding after a failed bind, ms; doubles up to the maximum. */
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2_000;

/**
 * Binds and serves. Rejects when the bind fails (port in use, a certificate or key that does not
 * parse, a key that is not the certificate's), so the process can exit 1. Accept errors (EMFILE
 * under a descriptor flood) are retried by the runtime with a backoff; the connections already
 * open keep being served.
 */
export async function listen(options: ListenOptions): Promise<Listener> {
  const limits = options.limits ?? DEFAULT_PENDING_LIMITS;
  const ipv6PrefixLength = limits.ipv6PrefixLength ?? DEFAULT_IPV6_PREFIX_LENGTH;
  const pendingByIp = new Map<string, number>();
  const pendingBySocket = new WeakMap<object, Pending>();
  const pendingSet = new Set<Pending>();
  let stopping = false;
  const scheme = options.tls ? "https" : "http";

  // How often the header and request timeouts are checked, ms.
  const connectionsCheckingInterval = Math.min(1_000, limits.headerTimeoutMs);
  if (options.tls) {
    // `node:https` would only fail at the first handshake; a bad file, or a key that is not the
    // certificate's, must fail startup.
    const checked = checkTlsPem(options.tls.cert, options.tls.key);
    if (!checked.ok) throw new TypeError(`Cannot serve TLS: ${tlsPemProblem(checked)}`);
  }
  // The pair served: replaced by `setTls` (a renewed certificate), used by a bind again too.
  let pem = options.tls;
  const makeServer = (): http.Server => {
    const server: http.Server = pem
      ? https.createServer({
        cert: pem.cert,
        key: pem.key,
        // The runtime's own handshake timer is off (0): when it fires it reports a `clientError`
        // and closes nothing, so `onClientError` wrote an HTTP 400 into a socket with no TLS
        // session and the connection stayed until the idle timer (the setting had no effect).
        // `onConnection` arms the one that counts.
        handshakeTimeout: 0,
        connectionsCheckingInterval,
      })
      : http.createServer({ connectionsCheckingInterval });
    server.headersTimeout = limits.headerTimeoutMs;
    server.requestTimeout = limits.headerTimeoutMs;
    server.keepAliveTimeout = limits.idleTimeoutMs;
    // Plain HTTP: no idle timer per connection (`node:http` would arm one for each and refresh
    // it on every read); `sweepIdle` checks every pending connection's traffic instead. TLS keeps
    // the timer, armed in `onConnection` (the sweep reads the raw socket's byte counts, not
    // checked to follow traffic under the TLS layer).
    server.timeout = options.tls ? limits.idleTimeoutMs : 0;
    server.maxHeadersCount = 100;
    server.on("connection", onConnection);
    if (options.tls) server.on("secureConnection", onSecure);
    // Every TLS connection's reads stop when it is paused and keep the read budget, from its
    // first request on (SECURITY.md "Reads of TLS connections").
    if (options.tls) server.on("secureConnection", tlsReads);
    server.on("request", onRequest);
    server.on("upgrade", onUpgrade);
    server.on("clientError", onClientError);
    return server;
  };

  const release = (entry: Pending) => {
    if (entry.released) return;
    entry.released = true;
    clearTimeout(entry.handshakeTimer);
    pendingSet.delete(entry);
    pendingBySocket.delete(entry.socket);
    const left = (pendingByIp.get(entry.ip) ?? 1) - 1;
    if (left > 0) pendingByIp.set(entry.ip, left);
    else pendingByIp.delete(entry.ip);
  };

  /** Connections accepted so far: the accept loop's liveness (see `watchAccept`). */
  let accepted = 0;

  const onConnection = (socket: Socket) => {
    accepted++;
    const ip = peerKey(socket.remoteAddress, ipv6PrefixLength);
    const fromIp = pendingByIp.get(ip) ?? 0;
    if (stopping || pendingSet.size >= limits.maxPending || fromIp >= limits.maxPendingPerIp) {
      const reason = pendingSet.size >= limits.maxPending ? "pending" : "pending_per_ip";
      if (!stopping) options.onRefused?.(reason);
      socket.destroy();
      return;
    }
    const entry: Pending = { ip, socket, released: false, traffic: 0, activeMs: Date.now() };
    pendingSet.add(entry);
    pendingByIp.set(ip, fromIp + 1);
    pendingBySocket.set(socket, entry);
    // A shared listener, removed at the upgrade (`forget`): an upgraded connection keeps nothing
    // of its pending time (BENCHMARKS.md "Session 5: churn and memory").
    socket.on("close", onPendingClose);
    if (options.tls) {
      // A stalled TLS handshake or a silent TLS connection: the socket's idle timer.
      if ((socket as { timeout?: number }).timeout !== limits.idleTimeoutMs) {
        socket.setTimeout(limits.idleTimeoutMs);
      }
      socket.on("timeout", onPendingTimeout);
      // A silent, stalled or trickled handshake: closed `tlsHandshakeTimeoutMs` after the accept,
      // whatever it sent (`onSecure` stops the timer). One timer per handshake in progress.
      entry.handshakeTimer = setTimeout(destroy, limits.tlsHandshakeTimeoutMs, socket);
    }
    // Plain HTTP: a silent connection is closed by `sweepIdle` (BENCHMARKS.md "Session 6: churn").
  };

  /**
   * The idle timeout of plain HTTP connections that are not upgraded (yet): one sweep for all
   * of them every {@linkcode idleSweepMs} instead of a timer per connection. A connection whose
   * byte counts did not move for `idleTimeoutMs` is closed, so it goes between `idleTimeoutMs`
   * and `idleTimeoutMs` + one period after its last traffic.
   */
  const sweepIdle = () => {
    const now = Date.now();
    for (const entry of pendingSet) {
      const traffic = trafficOf(entry.socket);
      if (traffic !== entry.traffic) {
        entry.traffic = traffic;
        entry.activeMs = now;
      } else if (now - entry.activeMs >= limits.idleTimeoutMs) {
        entry.socket.destroy();
      }
    }
  };
  const idleSweepMs = Math.max(10, Math.min(1_000, limits.idleTimeoutMs / 4));
  const idleTimer = options.tls ? undefined : setInterval(sweepIdle, idleSweepMs);
  if (idleTimer !== undefined) Deno.unrefTimer(idleTimer);

  function onPendingClose(this: Socket) {
    const entry = pendingBySocket.get(this);
    if (entry) release(entry);
  }

  /** `secureConnection`: the handshake is over in time; the idle and header timeouts go on. */
  function onSecure(tlsSocket: Socket) {
    const entry = entryOf(tlsSocket);
    if (entry) {
      clearTimeout(entry.handshakeTimer);
      entry.handshakeTimer = undefined;
    }
  }

  function onPendingTimeout(this: Socket) {
    if (pendingBySocket.has(this)) this.destroy();
  }

  /** Releases an upgraded connection's entry and drops its pending-time listeners. */
  const forget = (entry: Pending) => {
    release(entry);
    entry.socket.off("close", onPendingClose);
    if (options.tls) entry.socket.off("timeout", onPendingTimeout);
  };

  /** The handover's `onTaken`: the socket is a WebSocket's from now on. */
  const onTaken = (socket: Duplex) => {
    const entry = entryOf(socket);
    if (entry) forget(entry);
  };

  const entryOf = (socket: Duplex): Pending | undefined =>
    pendingBySocket.get(socket) ??
      pendingBySocket.get((socket as unknown as { _parent?: object })._parent ?? {}) ??
      pendingBySocket.get((socket as unknown as { _handle?: object })._handle ?? {});

  const info = (socket: Duplex): Deno.ServeHandlerInfo<Deno.NetAddr> => {
    const s = socket as Socket;
    return {
      remoteAddr: {
        transport: "tcp",
        hostname: s.remoteAddress ?? "unknown",
        port: s.remotePort ?? 0,
      },
      completed: COMPLETED,
    };
  };

  const toRequest = (message: http.IncomingMessage): Request | undefined => {
    try {
      const headers = new Headers();
      const raw = message.rawHeaders;
      for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
      // The route is the request target's: a Host that is not an authority (a `/`, `\`, `?` or
      // `#` in it would let the URL parser take the path from the Host header, past a proxy's
      // path rules) is refused; none (HTTP/1.0) or an empty one reads as localhost.
      const host = headers.get("host") || `localhost:${addr.port}`;
      if (!isAuthority(host)) return undefined;
      const target = message.url ?? "/";
      if (!target.startsWith("/")) return undefined;
      const method = message.method ?? "GET";
      // A body only where one may come (the operator API's PUT, docs/spec/EXTENSIONS.md E12); the
      // handler reads what it needs and caps it, node discards the rest.
      const body = method === "GET" || method === "HEAD" ? undefined : ReadableStream.from(
        message as AsyncIterable<Uint8Array>,
      );
      return new Request(`${scheme}://${host}${target}`, {
        method,
        headers,
        body,
        ...(body ? { duplex: "half" } : {}),
      });
    } catch {
      return undefined;
    }
  };

  const handle = async (request: Request, socket: Duplex): Promise<Response> => {
    try {
      return await options.handler(request, info(socket));
    } catch (error) {
      log.error("Cannot handle {method} {url}: {error}", {
        method: request.method,
        url: request.url,
        ...bugFields(error),
      });
      return new Response("Internal Server Error", { status: 500 });
    }
  };

  /** Requests of each connection not answered yet ({@linkcode MAX_UNANSWERED_REQUESTS}). */
  const unanswered = new WeakMap<object, number>();
  /** Called once the connection's last unanswered request is answered ({@linkcode answered}). */
  const onAllAnswered = new WeakMap<object, () => void>();

  /**
   * Pipelined requests of each connection waiting for the answer before them to be written out
   * ({@linkcode turn}), oldest first: each is called with true when its turn comes, false when
   * the socket closed first.
   */
  const waiting = new WeakMap<object, ((go: boolean) => void)[]>();

  /** One of `socket`'s requests is answered (its response closed: written, or the socket gone). */
  const answeredOne = (socket: object) => {
    const left = unanswered.get(socket)! - 1;
    unanswered.set(socket, left);
    waiting.get(socket)?.shift()?.(true);
    if (left === 0) onAllAnswered.get(socket)?.();
  };

  /** Ends every wait of a closed socket's pipelined requests (false: not to be handled). */
  function onWaitingClose(this: Duplex) {
    const queue = waiting.get(this);
    waiting.delete(this);
    for (const go of queue?.splice(0) ?? []) go(false);
  }

  /**
   * Resolves true once the request of `socket` before this one is answered, its response written
   * out (handed to the kernel); false when the socket closes first. So a connection that
   * pipelines requests and does not read their answers holds one answer in the process, not one
   * per request (SECURITY.md "Answers held per connection").
   */
  const turn = (socket: Duplex): Promise<boolean> => {
    if (socket.destroyed) return Promise.resolve(false);
    let queue = waiting.get(socket);
    if (queue === undefined) {
      queue = [];
      waiting.set(socket, queue);
      socket.once("close", onWaitingClose);
    }
    const { promise, resolve } = Promise.withResolvers<boolean>();
    queue.push(resolve);
    return promise;
  };

  /**
   * Resolves once every request `socket` has received before its upgrade request is answered
   * (at once when none is waiting), or once the socket closes.
   */
  const answered = (socket: Duplex): Promise<void> => {
    if ((unanswered.get(socket) ?? 0) === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        onAllAnswered.delete(socket);
        socket.off("close", done);
        resolve();
      };
      onAllAnswered.set(socket, done);
      socket.once("close", done);
    });
  };

  /**
   * Closes `socket` when `message`'s body is not whole `headerTimeoutMs` after its head (SECURITY.md
   * "Request body time"). `server.requestTimeout` only covers a request until it is answered, and
   * every route but the operator API's PUT answers without reading the body, which `node:http` then
   * reads and discards for as long as it comes: a byte every second kept such a connection, and its
   * pending slot, for good.
   */
  const bodyDeadline = (message: http.IncomingMessage, socket: Socket) => {
    const expire = () => {
      done();
      if (!message.complete) socket.destroy();
    };
    const timer = setTimeout(expire, limits.headerTimeoutMs);
    const done = () => {
      clearTimeout(timer);
      message.off("end", done);
      socket.off("close", done);
    };
    message.once("end", done);
    socket.once("close", done);
  };

  const onRequest = async (message: http.IncomingMessage, res: http.ServerResponse) => {
    const socket = message.socket;
    const open = (unanswered.get(socket) ?? 0) + 1;
    if (open > MAX_UNANSWERED_REQUESTS) {
      options.onRefused?.("pipelined");
      socket.destroy();
      return;
    }
    unanswered.set(socket, open);
    res.on("close", () => answeredOne(socket));
    if (hasBody(message)) bodyDeadline(message, socket);
    // Behind an answer not written out yet (the client pipelines and does not read it): this
    // one is made when that one is out, not queued beside it.
    if (open > 1 && (!(await turn(socket)) || socket.destroyed)) return;
    const request = toRequest(message);
    const response = request
      ? await handle(request, message.socket)
      : new Response("Bad Request", { status: 400 });
    if (response.body !== null && isEventStream(response)) {
      await streamBody(response, res);
      return;
    }
    const headers: string[] = [];
    response.headers.forEach((value, name) => headers.push(name, value));
    const body = response.body === null
      ? undefined
      : new Uint8Array(await response.arrayBuffer().catch(() => new ArrayBuffer(0)));
    if (res.destroyed) return;
    res.writeHead(response.status, response.statusText || STATUS_TEXT[response.status], headers);
    res.end(body);
  };

  /**
   * The upgrade as an {@linkcode UpgradeRequest}, when building a `Request` of it surely succeeds
   * (a target from `/`, a plain host, see {@linkcode isPlainHost}); else undefined, and the full
   * path decides (it answers 400 to what `Request` refuses).
   */
  const toUpgradeRequest = (message: http.IncomingMessage): UpgradeRequest | undefined => {
    const target = message.url ?? "";
    if (target.charCodeAt(0) !== 0x2f) return undefined;
    const request = new UpgradeRequest(message.method ?? "GET", message.rawHeaders, scheme, target);
    const host = request.get("host");
    return host !== null && isPlainHost(host) ? request : undefined;
  };

  /** Tries `options.upgrade`; undefined when it declines (the full path answers). */
  const handleFast = (request: UpgradeRequest, socket: Duplex): Response | undefined => {
    try {
      return options.upgrade!(request, info(socket));
    } catch (error) {
      log.error("Cannot handle {method} {url}: {error}", {
        method: request.method,
        url: request.url,
        ...bugFields(error),
      });
      return new Response("Internal Server Error", { status: 500 });
    }
  };

  const onUpgrade = async (message: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", ignore);
    const entry = entryOf(socket);
    if ((unanswered.get(socket) ?? 0) > 0) {
      // Pipelined behind requests not answered yet: their answers would follow a 101, inside the
      // WebSocket stream (RFC 9112 section 9.3.2 wants them in the order of the requests). They
      // are written first, then this refusal, then the connection closes.
      await answered(socket);
      await writeRaw(socket, pipelinedUpgradeRefused());
      return;
    }
    // RFC 6455 §4.1: an upgrade is an HTTP/1.1 GET with a Host header; anything else is 400.
    const valid = message.httpVersion === "1.1" && (message.headers.host ?? "").trim() !== "";
    let response: Response | undefined;
    if (valid && options.upgrade) {
      const fast = toUpgradeRequest(message);
      if (fast) {
        attachUpgradeSocket(fast, { message, socket, head, onTaken });
        response = handleFast(fast, socket);
        if (response === undefined) dropUpgradeSocket(fast);
      }
    }
    if (response === undefined) {
      const request = valid ? toRequest(message) : undefined;
      if (request === undefined) {
        response = new Response("Bad Request", { status: 400 });
      } else {
        attachUpgradeSocket(request, { message, socket, head, onTaken });
        response = await handle(request, socket);
      }
    }
    if (isSwitchingProtocols(response)) {
      // A WebSocket now: no longer pending (`onTaken` has forgotten it, unless the route took
      // the socket some other way), no HTTP timeouts (the idle ping takes over).
      if (entry && !entry.released) forget(entry);
      stopTimeout(socket);
      if (entry && entry.socket !== socket) stopTimeout(entry.socket);
      return;
    }
    await writeRaw(socket, response);
  };

  const onClientError = (_error: Error, socket: Duplex) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  };

  const bind = async (port: number): Promise<http.Server> => {
    const server = makeServer();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    server.once("error", reject);
    server.listen(
      { port, host: options.hostname, ...(options.reusePort ? { reusePort: true } : {}) },
      () => resolve(),
    );
    try {
      await promise;
    } finally {
      server.off("error", reject);
    }
    // Errors after the bind are logged here; a failed bind is the caller's to report (main.ts
    // prints "address in use" once, without a log line).
    server.on("error", (error: Error) => log.error("The listener failed: {error}", { error }));
    return server;
  };

  let server = await bind(options.port);
  const bound = server.address();
  if (bound === null || typeof bound === "string") throw new Error("The listener has no address");
  const addr: Deno.NetAddr = { transport: "tcp", hostname: bound.address, port: bound.port };

  // Liveness of the accept loop. The runtime's `node:net` accept loop ends silently when
  // accept() fails (EMFILE under a descriptor flood): every later client would wait forever.
  // A probe connection to ourselves every WATCH_INTERVAL_MS: when no connection at all is
  // accepted within WATCH_TIMEOUT_MS of it, WATCH_MISSES times in a row, the listener is bound
  // again (upgraded sockets are not affected).
  const probeHost = options.hostname === "0.0.0.0" || options.hostname === "::"
    ? "127.0.0.1"
    : options.hostname;
  let watching = true;
  let wake: (() => void) | undefined;
  let sleepTimer: ReturnType<typeof setTimeout> | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      sleepTimer = setTimeout(resolve, ms);
      Deno.unrefTimer(sleepTimer);
    });
  let missed = 0;
  const watchAccept = async () => {
    while (watching) {
      await sleep(WATCH_INTERVAL_MS);
      if (!watching) return;
      const before = accepted;
      const probes: Deno.TcpConn[] = [];
      for (let i = 0; i < (options.reusePort ? SHARED_PROBES : 1); i++) {
        try {
          probes.push(await Deno.connect({ hostname: probeHost, port: addr.port }));
        } catch {
          break; // out of descriptors ourselves, or shutting down: cannot tell
        }
        if (accepted !== before) break;
      }
      if (probes.length === 0) continue;
      // Any connection accepted since the probes started (a probe or a client) proves it.
      for (let waited = 0; waited < WATCH_TIMEOUT_MS && accepted === before; waited += 50) {
        await sleep(50);
      }
      for (const probe of probes) {
        try {
          probe.close();
        } catch { /* closed by the server */ }
      }
      if (accepted !== before || !watching) {
        missed = 0;
        continue;
      }
      if (++missed < (options.reusePort ? WATCH_MISSES_SHARED : WATCH_MISSES)) continue;
      missed = 0;
      log.error(
        "The listener on port {port} stopped accepting (Too many open files?), " +
          "binding it again",
        { port: addr.port },
      );
      const old = server;
      // A shared port can be bound again before the old socket goes: no gap for new clients.
      if (!options.reusePort) old.close();
      for (let delay = RETRY_MIN_MS; watching; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
        try {
          server = await bind(addr.port);
          if (options.reusePort) old.close();
          restarts++;
          log.warn("Listening on port {port} again", { port: addr.port });
          break;
        } catch (error) {
          log.error("Cannot bind port {port} again: {error}", { port: addr.port, error });
          await sleep(delay);
        }
      }
    }
  };
  let restarts = 0;
  const watcher = watchAccept();

  return {
    addr,
    setTls(next: TlsPem) {
      if (!pem) throw new TypeError("This listener does not serve TLS");
      const checked = checkTlsPem(next.cert, next.key);
      if (!checked.ok) throw new TypeError(tlsPemProblem(checked));
      (server as https.Server).setSecureContext({ cert: next.cert, key: next.key });
      pem = next;
      return checked;
    },
    get restarts() {
      return restarts;
    },
    get pending() {
      return pendingSet.size;
    },
    async shutdown() {
      if (stopping) return;
      stopping = true;
      watching = false;
      clearTimeout(sleepTimer);
      clearInterval(idleTimer);
      wake?.();
      const closed = new Promise<void>((done) => server.close(() => done()));
      server.closeIdleConnections?.();
      for (const entry of [...pendingSet]) {
        // Answering requests keep their socket until written; the rest go at once.
        if (!(entry.socket as unknown as { _httpMessage?: unknown })._httpMessage) {
          entry.socket.destroy();
        }
      }
      // Upgraded sockets keep the server "open" until their owner closes them; do not wait.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        closed,
        new Promise<void>((done) => timer = setTimeout(done, limits.headerTimeoutMs)),
      ]);
      clearTimeout(timer);
      for (const entry of [...pendingSet]) entry.socket.destroy();
      await watcher;
    },
  };
}

/** An IPv4 octet as the URL parser accepts it unchanged: 0–255 without a leading zero. */
const OCTET = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
/**
 * Hosts for which `new URL("http://" + host)` surely succeeds: a dotted-quad IPv4 address, or a
 * name of letters, digits, `-` and `_` whose last label is not a number (the URL parser reads a
 * name ending in a number as IPv4 and may refuse it), each with an optional port up to 65535.
 * Anything else (IPv6, ports above 65535, repeated Host headers joined with ", ") goes the full
 * way, where `Request` decides.
 */
const PLAIN_HOST = new RegExp(
  `^(?:(?:${OCTET}\\.){3}${OCTET}|(?:[A-Za-z0-9_-]+\\.)*(?!0[xX][0-9A-Fa-f]*(?::|$))` +
    `[A-Za-z0-9_-]*[A-Za-z_-][A-Za-z0-9_-]*)(?::(\\d{1,5}))?$`,
);

/**
 * A Host header value of the form `host [ ":" port ]` (RFC 9110 section 7.2): an IP literal in
 * brackets or a registered name of the unreserved and sub-delimiter characters of RFC 3986
 * section 3.2.2 (no percent-encoding), then an optional port of digits.
 */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=]+)(?::\d{0,5})?$/;

/**
 * True when `host` is an authority ({@linkcode AUTHORITY}), so `scheme://host/target` keeps the
 * request target as the URL's path and query. False for anything with a `/`, `\`, `?`, `#`, `@`,
 * `%`, space or control character, which the URL parser would read as the start of a path, a
 * query, user information or an encoded character.
 */
export function isAuthority(host: string): boolean {
  return AUTHORITY.test(host);
}

/** The last Host value {@linkcode isPlainHost} accepted: clients of one server mostly send one. */
let lastPlainHost = "";

/** True for a Host header value that {@linkcode PLAIN_HOST} accepts with a port ≤ 65535. */
export function isPlainHost(host: string): boolean {
  if (host === lastPlainHost) return true;
  const match = PLAIN_HOST.exec(host);
  const plain = match !== null && (match[1] === undefined || Number(match[1]) <= 65_535);
  if (plain) lastPlainHost = host;
  return plain;
}

/**
 * True when a request declares a body (`Transfer-Encoding`, or a `Content-Length` other than 0):
 * the only requests {@linkcode listen}'s body deadline is armed for.
 */
function hasBody(message: http.IncomingMessage): boolean {
  const headers = message.headers;
  if (headers["transfer-encoding"] !== undefined) return true;
  const length = headers["content-length"];
  return length !== undefined && length !== "0";
}

/** The error listener of an upgrade's socket (errors end in `close`, handled by its owner). */
function ignore(): void {}

/** Closes `socket` at once (a timer's callback, without a closure per connection). */
function destroy(socket: Duplex): void {
  socket.destroy();
}

/** The runtime's private key of a socket's idle timer (`node:net`), found on first use. */
let timerKey: symbol | null | undefined;

/**
 * Stops the idle timer of a socket that became a WebSocket. `setTimeout(0)` cancels the timer
 * but the runtime still refreshes the cancelled timer on every read and write; forgetting it
 * saves that call per frame (about 1 % of the relay's CPU, BENCHMARKS.md "Socket layer").
 */
function stopTimeout(socket: Duplex): void {
  const s = socket as Socket;
  if (typeof s.setTimeout !== "function") return;
  if (timerKey === undefined) {
    timerKey = Object.getOwnPropertySymbols(s).find((key) => key.description === "timeout") ??
      null;
  }
  const timers = s as unknown as Record<symbol, unknown>;
  // No timer was ever armed (plain HTTP, first request an upgrade): nothing to stop.
  if (timerKey !== null && timerKey in s && timers[timerKey] == null) return;
  s.setTimeout(0);
  if (timerKey !== null && timerKey in s) timers[timerKey] = null;
}

/**
 * Most bytes of a body written whole on an upgrade's raw socket ({@linkcode writeRaw}): the
 * answer of a route that an upgrade request reached and that did not switch protocols (a
 * refusal, or a request with `Upgrade` headers for a plain route). Every such answer is a few
 * KiB but the largest listings (the operator API's 500 rooms in detail, the JSON metrics body);
 * a longer body is not sent (`500`, an error line), so no route's stream is held whole in memory.
 */
export const MAX_RAW_BODY_BYTES = 4 * 1024 * 1024;

/** Why {@linkcode readBounded} did not read a body whole. */
type Unread = "too_large" | "closed" | "failed";

/**
 * Reads `response`'s body whole, at most {@linkcode MAX_RAW_BODY_BYTES}, while `socket` is open.
 * Beyond the limit, or once the socket closes (the client left, or the pending idle timeout
 * closed a connection whose answer did not come: the socket has no traffic while it is read),
 * the body is cancelled — its producer learns it at once (an operator event stream gives back
 * its slot) — and the reason returned instead.
 */
async function readBounded(response: Response, socket: Duplex): Promise<Uint8Array | Unread> {
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  let closed = false;
  const onClose = () => {
    closed = true;
    reader.cancel().catch(() => {});
  };
  if (socket.destroyed) onClose();
  else socket.once("close", onClose);
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (closed) return "closed";
      if (done) break;
      size += value.byteLength;
      if (size > MAX_RAW_BODY_BYTES) {
        await reader.cancel().catch(() => {});
        return "too_large";
      }
      chunks.push(value);
    }
  } catch {
    return closed ? "closed" : "failed";
  } finally {
    socket.off("close", onClose);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/**
 * The answer to an upgrade request that a route answered with an event stream
 * (docs/spec/EXTENSIONS.md E12 `GET /admin/api/events`): a stream never ends, so it cannot be
 * written whole on the raw socket, and an `EventSource` never asks for an upgrade.
 */
function eventStreamRefused(): Response {
  return new Response(
    "Bad Request: an event stream is not served on an upgrade request " +
      "(send it without Upgrade and Connection: upgrade headers)",
    { status: 400, headers: { "content-type": "text/plain; charset=utf-8" } },
  );
}

/**
 * The answer to an upgrade request pipelined behind requests of the same connection that are not
 * answered yet (docs/spec/SERVER.md §1.8 note): `400`, plain text, after their answers.
 */
function pipelinedUpgradeRefused(): Response {
  return new Response(
    "Bad Request: an upgrade request must not be pipelined behind requests not answered yet",
    { status: 400, headers: { "content-type": "text/plain; charset=utf-8" } },
  );
}

/**
 * Writes `response` as a complete HTTP/1.1 response on a raw socket, then closes it. The body is
 * read whole first (`content-length`), within bounds: an event stream is cancelled unread and
 * answered `400` ({@linkcode eventStreamRefused}); a body past {@linkcode MAX_RAW_BODY_BYTES}
 * is cancelled and answered `500`; a socket that closes meanwhile cancels the read. So the slot
 * of a stream is always given back and nothing is buffered without bound (SECURITY.md "Upgrade
 * answers").
 */
async function writeRaw(socket: Duplex, response: Response): Promise<void> {
  if (isEventStream(response)) {
    await response.body?.cancel().catch(() => {});
    response = eventStreamRefused();
  }
  let body = await readBounded(response, socket);
  if (body === "closed") return;
  if (typeof body === "string") {
    log.error("Cannot answer an upgrade request with status {status}: {reason}", {
      status: response.status,
      reason: body === "too_large"
        ? `body longer than ${MAX_RAW_BODY_BYTES} bytes`
        : "the body failed",
    });
    response = new Response(null, { status: 500 });
    body = new Uint8Array(0);
  }
  const lines = [
    `HTTP/1.1 ${response.status} ${response.statusText || STATUS_TEXT[response.status] || ""}`,
  ];
  response.headers.forEach((value, name) => {
    if (name !== "content-length" && name !== "connection") lines.push(`${name}: ${value}`);
  });
  lines.push(`content-length: ${body.byteLength}`, "connection: close", "", "");
  if (socket.destroyed) return;
  socket.write(lines.join("\r\n"));
  socket.end(body);
  // A peer that never reads must not keep the descriptor.
  const timer = setTimeout(() => socket.destroy(), 5_000);
  socket.once("close", () => clearTimeout(timer));
}
