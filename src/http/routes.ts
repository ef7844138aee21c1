/**
 * HTTP surface (SERVER.md §1): the WebSocket endpoint with its pre-upgrade admission checks,
 * health, CORS, and JSON 404s for everything else.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Hub } from "../transport/hub.ts";
import { acceptWebSocket, type OutboundOptions } from "../transport/websocket.ts";
import { sessionSecret, type TokenBinding } from "../transport/token_binding.ts";
import { clientIp, type TrustedProxies } from "./admission.ts";
import { isSwitchingProtocols } from "./handover.ts";
import { isMetricsPath, type MetricsRouteContext, serveMetrics } from "./metrics_routes.ts";
import type { RoomRoutes } from "./rooms.ts";
import { serveStatic } from "./static_files.ts";

const log = getLogger(["signal-fish", "http"]);

/** `websocket.*` defaults (SERVER.md §2.7). */
const DEFAULT_OUTBOUND: OutboundOptions = {
  maxBufferedBytes: 1_048_576,
  enableBatching: true,
  batchSize: 10,
};

/** Route settings derived from the configuration. */
export interface RouteOptions {
  /** `"*"`, or the allowed origins (SERVER.md §1.7), compared ASCII-case-insensitively. */
  corsOrigins: "*" | readonly string[];
  /** Concurrent WebSocket connections per client IP (SERVER.md §3.5). @default 10 */
  maxConnectionsPerIp: number;
  /** `security.max_message_size`, bytes (SERVER.md §3.6). @default 65536 */
  maxMessageSize?: number;
  /** `server.ping_timeout` in seconds. @default 30 */
  idleTimeoutSecs: number;
  /** Per-connection outbound buffer and batching (SERVER.md §5.2–5.3); defaults of §2.7. */
  outbound?: OutboundOptions;
  /**
   * Concurrent WebSocket connections on this instance (`security.max_connections`, resolved by
   * `maxConnections()` of admission.ts); beyond it upgrades get 503. @default unlimited
   */
  maxConnections?: number;
  /** Peers whose `X-Forwarded-For` names the client (SERVER.md §1.9). @default none */
  trustedProxies?: TrustedProxies;
  /** `security.transport.token_binding` when enabled (SERVER.md §1.8, §3.9). @default off */
  tokenBinding?: TokenBindingOptions;
  /**
   * Told the number of upgraded sockets still open whenever it changes; a socket counts until its
   * close handshake is over, so graceful shutdown can wait for the close frames to go out.
   */
  onOpenSockets?: (open: number) => void;
}

/** Token-binding settings (`security.transport.token_binding.*`, PROTOCOL.md Appendix A). */
export interface TokenBindingOptions {
  /** Refuse upgrades that do not offer the subprotocol. */
  required: boolean;
  /** Require a client-certificate fingerprint from a trusted proxy, and in every proof. */
  requireClientFingerprint: boolean;
  /** The subprotocol name. @default "signalfish.tokenbinding.v1" */
  subprotocol: string;
}

/** Client-certificate fingerprint headers, in priority order (SERVER.md §1.8). */
const FINGERPRINT_HEADERS = [
  "x-signalfish-client-cert-sha256",
  "x-forwarded-client-cert-sha256",
  "x-amzn-mtls-clientcert",
];

/**
 * Token-binding negotiation of SERVER.md §1.8 step 6: a plain-text refusal, or the binding to
 * use (`undefined` = the connection proceeds unbound).
 */
function negotiateTokenBinding(
  request: Request,
  peer: string | undefined,
  options: TokenBindingOptions,
  trusted: TrustedProxies | undefined,
): Response | { subprotocol: string; binding: TokenBinding } | undefined {
  let fingerprint: string | undefined;
  if (peer !== undefined && trusted?.has(peer)) {
    for (const name of FINGERPRINT_HEADERS) {
      const value = request.headers.get(name)?.trim();
      if (value) {
        fingerprint = value;
        break;
      }
    }
  }
  if (options.requireClientFingerprint && fingerprint === undefined) {
    return new Response("client certificate fingerprint required", { status: 401 });
  }
  // Headers joins repeated headers with ", "; the first header's entries come first.
  const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",")
    .map((entry) => entry.trim())
    .find((entry) => entry.toLowerCase() === options.subprotocol.toLowerCase());
  if (offered === undefined) {
    if (options.required) {
      return new Response("token binding subprotocol required", { status: 400 });
    }
    return undefined;
  }
  const key = request.headers.get("sec-websocket-key");
  if (key === null) return new Response("Sec-WebSocket-Key header missing", { status: 400 });
  const secret = sessionSecret(key);
  if (!secret) return new Response("invalid token binding handshake", { status: 400 });
  return {
    // Deno.upgradeWebSocket only selects a protocol spelled exactly as the client offered it, so
    // a client offering another letter case gets its own spelling back (SERVER.md §1.8 wants the
    // configured one; the match itself is case-insensitive as specified).
    subprotocol: offered,
    binding: {
      secret,
      requireFingerprint: options.requireClientFingerprint,
      handshakeFingerprint: fingerprint,
    },
  };
}

/** What the routes need from the running server. */
export interface RouteContext {
  /** Receives the upgraded connections. */
  hub: Hub;
  /** True once graceful shutdown has begun (SERVER.md §1.1). */
  isDraining: () => boolean;
  /** Metrics and status routes (SERVER.md §1.4–§1.6, EXTENSIONS.md E8); absent ⇒ 404. */
  metrics?: MetricsRouteContext;
  /** Room lookup and listing (SERVER.md §1.10, `./rooms.ts`). @default undefined (404) */
  roomRoutes?: RoomRoutes;
}

/** An HTTP handler for `Deno.serve`. */
export type Handler = (request: Request, info: Deno.ServeHandlerInfo) => Response;

const JSON_HEADERS = { "content-type": "application/json" };
const KNOWN_GET_PATHS = new Set(["/v2/ws", "/v2/health"]);

function json(status: number, body: unknown, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

/** Normalises a socket address for per-IP keys: IPv4-mapped IPv6 → IPv4, lower case, no zone. */
export function normalizeIp(address: string): string {
  let ip = address.toLowerCase();
  const zone = ip.indexOf("%");
  if (zone >= 0) ip = ip.slice(0, zone);
  if (ip.startsWith("::ffff:") && ip.includes(".")) ip = ip.slice(7);
  return ip;
}

function peerIp(
  request: Request,
  info: Deno.ServeHandlerInfo,
  trusted: TrustedProxies | undefined,
): string {
  const addr = info.remoteAddr as Deno.Addr;
  if (!("hostname" in addr)) return "unknown";
  if (!trusted) return normalizeIp(addr.hostname);
  return normalizeIp(clientIp(addr.hostname, request.headers.get("x-forwarded-for"), trusted));
}

/** A `Sec-WebSocket-Key`: 16 bytes in base64 (RFC 6455 §4.1, item 7). */
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/**
 * A valid RFC 6455 upgrade request (SERVER.md §1.8 check 2): `Upgrade: websocket`,
 * `Connection: upgrade`, version 13 and a key of 16 base64 bytes. Upgrades over HTTP/1.0 or
 * without `Host` never reach the handler: the listener answers them 400 (`./listener.ts`).
 */
function isUpgradeRequest(request: Request): boolean {
  const headers = request.headers;
  const connection = headers.get("connection")?.toLowerCase() ?? "";
  return headers.get("upgrade")?.toLowerCase() === "websocket" &&
    connection.split(",").some((token) => token.trim() === "upgrade") &&
    headers.get("sec-websocket-version") === "13" &&
    WEBSOCKET_KEY.test((headers.get("sec-websocket-key") ?? "").trim());
}

/**
 * Builds the request handler. Per-IP connection counts live in the returned closure: a slot is
 * taken just before the upgrade and given back when the socket closes.
 */
export function createHandler(context: RouteContext, options: RouteOptions): Handler {
  const perIp = new Map<string, number>();
  let total = 0;
  const allowed = options.corsOrigins === "*"
    ? "*"
    : new Set(options.corsOrigins.map((origin) => origin.toLowerCase()));

  function corsHeaders(request: Request): Record<string, string> {
    if (allowed === "*") {
      return { "access-control-allow-origin": "*", "access-control-expose-headers": "*" };
    }
    const headers: Record<string, string> = {
      vary: "origin, access-control-request-method, access-control-request-headers",
    };
    const origin = request.headers.get("origin");
    if (origin && allowed.has(origin.toLowerCase())) {
      headers["access-control-allow-origin"] = origin;
    }
    return headers;
  }

  function originAllowed(request: Request): boolean {
    const origin = request.headers.get("origin");
    return allowed === "*" || origin === null || allowed.has(origin.toLowerCase());
  }

  function upgrade(request: Request, info: Deno.ServeHandlerInfo): Response {
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
    const ip = peerIp(request, info, options.trustedProxies);
    const current = perIp.get(ip) ?? 0;
    const limit = options.maxConnectionsPerIp;
    if (current >= limit) {
      context.metrics?.metrics.rateLimited();
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
      // connection: close gives the descriptor back at once (SERVER.md §2.7 max_connections).
      return json(503, {
        message: "Service temporarily unavailable",
        error_code: "SERVICE_UNAVAILABLE",
      }, { connection: "close" });
    }
    let tokenBinding: { subprotocol: string; binding: TokenBinding } | undefined;
    if (options.tokenBinding) {
      const addr = info.remoteAddr as Deno.Addr;
      const peer = "hostname" in addr ? addr.hostname : undefined;
      const negotiated = negotiateTokenBinding(
        request,
        peer,
        options.tokenBinding,
        options.trustedProxies,
      );
      if (negotiated instanceof Response) return negotiated;
      tokenBinding = negotiated;
    }
    perIp.set(ip, current + 1);
    options.onOpenSockets?.(++total);
    const release = () => {
      options.onOpenSockets?.(--total);
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left > 0) perIp.set(ip, left);
      else perIp.delete(ip);
    };
    try {
      return acceptWebSocket(request, context.hub, {
        ip,
        maxMessageSize: options.maxMessageSize,
        idleTimeoutSecs: options.idleTimeoutSecs,
        onClosed: release,
        outbound: options.outbound ?? DEFAULT_OUTBOUND,
        tokenBinding,
      });
    } catch (error) {
      release();
      log.warn("Cannot upgrade a request from {client_ip}: {error}", { client_ip: ip, error });
      return new Response("Invalid WebSocket upgrade request", { status: 400 });
    }
  }

  function route(request: Request, info: Deno.ServeHandlerInfo): Response {
    const path = new URL(request.url).pathname;
    const method = request.method;
    if (method === "OPTIONS" && request.headers.has("access-control-request-method")) {
      return new Response(null, {
        status: 200,
        headers: {
          ...corsHeaders(request),
          "access-control-allow-methods": "*",
          "access-control-allow-headers": "*",
        },
      });
    }
    if (KNOWN_GET_PATHS.has(path) && method !== "GET" && method !== "HEAD") {
      return new Response(null, { status: 405, headers: { allow: "GET, HEAD" } });
    }
    const rooms = context.roomRoutes?.(
      request,
      path,
      peerIp(request, info, options.trustedProxies),
    );
    if (rooms) return rooms;
    if (context.metrics && isMetricsPath(path)) {
      if (method !== "GET" && method !== "HEAD") {
        return new Response(null, { status: 405, headers: { allow: "GET, HEAD" } });
      }
      return serveMetrics(request, path, context.metrics);
    }
    switch (path) {
      case "/v2/ws":
        return upgrade(request, info);
      case "/v2/health":
        // 503 while draining or at the connection cap: a load balancer then sends players
        // elsewhere (SECURITY.md, `security.max_connections`).
        return context.isDraining() ||
            (options.maxConnections !== undefined && total >= options.maxConnections)
          ? new Response(null, { status: 503 })
          : new Response(method === "HEAD" ? null : "OK", {
            headers: { "content-type": "text/plain; charset=utf-8" },
          });
      default:
        // The demo page and the bundled client (static_files.ts): `/`, `/client.js`, `/demo.js`.
        return serveStatic(request, path) ?? json(404, { message: "Not Found" });
    }
  }

  return (request, info) => {
    const response = route(request, info);
    if (isSwitchingProtocols(response)) return response;
    for (const [name, value] of Object.entries(corsHeaders(request))) {
      response.headers.set(name, value);
    }
    return response;
  };
}
