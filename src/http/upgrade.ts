/**
 * The WebSocket endpoint `GET /v2/ws` (docs/spec/SERVER.md §1.8): pre-upgrade admission (draining, origin,
 * per-IP and global connection caps, token-binding negotiation), then the upgrade handed to the
 * transport.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Edge } from "../transport/edge.ts";
import type { EdgeEvent } from "../transport/events.ts";
import { negotiateTokenBinding, type TokenBindingOptions } from "../transport/token_binding.ts";
import {
  type AcceptSettings,
  acceptWebSocketWith,
  type NegotiatedBinding,
  type OutboundOptions,
} from "../transport/websocket.ts";
import { peerIp, type TrustedProxies } from "./admission.ts";
import type { RequestHead } from "./handover.ts";
import type { Cors } from "./cors.ts";

const log = getLogger(["signal-fish", "http"]);

/** `websocket.*` defaults (docs/spec/SERVER.md §2.7). */
const DEFAULT_OUTBOUND: OutboundOptions = {
  maxBufferedBytes: 1_048_576,
  enableBatching: true,
  batchSize: 10,
};

/** Upgrade settings derived from the configuration. */
export interface UpgradeOptions {
  /** Concurrent WebSocket connections per client IP (docs/spec/SERVER.md §3.5). @default 10 */
  maxConnectionsPerIp: number;
  /** `security.max_message_size`, bytes (docs/spec/SERVER.md §3.6). @default 65536 */
  maxMessageSize?: number;
  /** `server.ping_timeout` in seconds. @default 30 */
  idleTimeoutSecs: number;
  /** Per-connection outbound buffer and batching (docs/spec/SERVER.md §5.2–5.3); defaults of §2.7. */
  outbound?: OutboundOptions;
  /**
   * Concurrent WebSocket connections on this instance (`security.max_connections`, resolved by
   * `maxConnections()` of admission.ts); beyond it upgrades get 503. @default unlimited
   */
  maxConnections?: number;
  /** Peers whose `X-Forwarded-For` names the client (docs/spec/SERVER.md §1.9). @default none */
  trustedProxies?: TrustedProxies;
  /**
   * `security.ipv6_prefix_length`: per-IP limits count an IPv6 client by its network of this
   * many bits ({@linkcode peerIp}, issue 14 item 10). @default 64
   */
  ipv6PrefixLength?: number;
  /** `security.transport.token_binding` when enabled (docs/spec/SERVER.md §1.8, §3.9). @default off */
  tokenBinding?: TokenBindingOptions;
  /**
   * Told the number of upgraded sockets still open whenever it changes; a socket counts until its
   * close handshake is over, so graceful shutdown can wait for the close frames to go out.
   */
  onOpenSockets?: (open: number) => void;
}

/** What the upgrade needs from the running server. */
export interface UpgradeContext {
  /** Receives the upgraded connections. */
  edge: Edge;
  /** True once graceful shutdown has begun (docs/spec/SERVER.md §1.1). */
  isDraining: () => boolean;
  /** Receives the route's events (refused upgrades), like the edge's (metrics, logs). */
  onEvent?: (event: EdgeEvent) => void;
}

function json(status: number, body: unknown, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** A `Sec-WebSocket-Key`: 16 bytes in base64 (RFC 6455 §4.1, item 7). */
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/**
 * A valid RFC 6455 upgrade request (docs/spec/SERVER.md §1.8 check 2): `Upgrade: websocket`,
 * `Connection: upgrade`, version 13 and a key of 16 base64 bytes. Upgrades over HTTP/1.0 or
 * without `Host` never reach the handler: the listener answers them 400 (`./listener.ts`).
 */
function isUpgradeRequest(request: RequestHead): boolean {
  const headers = request.headers;
  const connection = headers.get("connection")?.toLowerCase() ?? "";
  return headers.get("upgrade")?.toLowerCase() === "websocket" &&
    connection.split(",").some((token) => token.trim() === "upgrade") &&
    headers.get("sec-websocket-version") === "13" &&
    WEBSOCKET_KEY.test((headers.get("sec-websocket-key") ?? "").trim());
}

/** The `/v2/ws` handler, and whether the connection cap is reached (health, SECURITY.md). */
export type WebsocketEndpoint =
  & ((request: RequestHead, info: Deno.ServeHandlerInfo) => Response)
  & {
    /** True while `maxConnections` sockets are open: `/v2/health` then answers 503. */
    atCapacity(): boolean;
  };

/**
 * Builds the `/v2/ws` handler. Per-IP connection counts live in the returned closure: a slot is
 * taken just before the upgrade and given back when the TCP connection is gone, on every path.
 */
export function websocketEndpoint(
  context: UpgradeContext,
  options: UpgradeOptions,
  cors: Cors,
): WebsocketEndpoint {
  const perIp = new Map<string, number>();
  let total = 0;
  // Gives the slot of a connection from `ip` back (once, when its socket is gone).
  const release = (ip: string) => {
    options.onOpenSockets?.(--total);
    const left = (perIp.get(ip) ?? 1) - 1;
    if (left > 0) perIp.set(ip, left);
    else perIp.delete(ip);
  };
  // One settings object for every connection of this endpoint.
  const settings: AcceptSettings = {
    maxMessageSize: options.maxMessageSize,
    idleTimeoutSecs: options.idleTimeoutSecs,
    onClosed: release,
    outbound: options.outbound ?? DEFAULT_OUTBOUND,
  };
  const originAllowed = (request: RequestHead) => cors.allows(request);

  function upgrade(request: RequestHead, info: Deno.ServeHandlerInfo): Response {
    if (!isUpgradeRequest(request)) {
      return new Response("Expected a WebSocket upgrade request", { status: 400 });
    }
    if (context.isDraining()) return new Response(null, { status: 503 });
    if (!originAllowed(request)) {
      log.warn("Refused a WebSocket upgrade from origin {origin}", {
        origin: request.headers.get("origin"),
      });
      return json(403, { message: "Origin not allowed", error_code: "UNAUTHORIZED" });
    }
    const ip = peerIp(request, info, options.trustedProxies, options.ipv6PrefixLength);
    const current = perIp.get(ip) ?? 0;
    const limit = options.maxConnectionsPerIp;
    if (current >= limit) {
      context.onEvent?.({ type: "rate_limited", scope: "connections" });
      log.warn("Refused a WebSocket upgrade from {client_ip}: {current}/{limit} connections", {
        client_ip: ip,
        current,
        limit,
      });
      return json(429, {
        message: `Too many connections from your IP (${current}/${limit})`,
        error_code: "TOO_MANY_CONNECTIONS",
      }, { connection: "close" });
    }
    if (options.maxConnections !== undefined && total >= options.maxConnections) {
      log.warn("Refused a WebSocket upgrade from {client_ip}: {total} connections (limit)", {
        client_ip: ip,
        total,
      });
      // connection: close gives the descriptor back at once (docs/spec/SERVER.md §2.7 max_connections).
      return json(503, {
        message: "Service temporarily unavailable",
        error_code: "SERVICE_UNAVAILABLE",
      }, { connection: "close" });
    }
    let tokenBinding: NegotiatedBinding | undefined;
    if (options.tokenBinding) {
      const addr = info.remoteAddr as Deno.Addr;
      const peer = "hostname" in addr ? addr.hostname : undefined;
      const negotiated = negotiateTokenBinding(
        request,
        peer !== undefined && (options.trustedProxies?.has(peer) ?? false),
        options.tokenBinding,
      );
      if (negotiated instanceof Response) return negotiated;
      tokenBinding = negotiated;
    }
    perIp.set(ip, current + 1);
    options.onOpenSockets?.(++total);
    try {
      return acceptWebSocketWith(request, context.edge, settings, ip, tokenBinding);
    } catch (error) {
      release(ip);
      log.warn("Cannot upgrade a request from {client_ip}: {error}", { client_ip: ip, error });
      return new Response("Invalid WebSocket upgrade request", { status: 400 });
    }
  }

  return Object.assign(upgrade, {
    atCapacity: () => options.maxConnections !== undefined && total >= options.maxConnections,
  });
}
