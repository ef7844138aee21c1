/**
 * HTTP surface (SERVER.md §1): the WebSocket endpoint with its pre-upgrade admission checks,
 * health, CORS, and JSON 404s for everything else.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Hub } from "../transport/hub.ts";
import { acceptWebSocket, type OutboundOptions } from "../transport/websocket.ts";
import { serveStatic } from "./static_files.ts";

const log = getLogger(["signal-fish", "http"]);

/** Route settings derived from the configuration. */
export interface RouteOptions {
  /** `"*"`, or the allowed origins (SERVER.md §1.7), compared ASCII-case-insensitively. */
  corsOrigins: "*" | readonly string[];
  /** Concurrent WebSocket connections per client IP (SERVER.md §3.5). @default 10 */
  maxConnectionsPerIp: number;
  /** `server.ping_timeout` in seconds. @default 30 */
  idleTimeoutSecs: number;
  /** Per-connection outbound buffer and batching (SERVER.md §5.2–5.3). */
  outbound: OutboundOptions;
}

/** What the routes need from the running server. */
export interface RouteContext {
  /** Receives the upgraded connections. */
  hub: Hub;
  /** True once graceful shutdown has begun (SERVER.md §1.1). */
  isDraining: () => boolean;
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

function peerIp(info: Deno.ServeHandlerInfo): string {
  const addr = info.remoteAddr as Deno.Addr;
  return "hostname" in addr ? normalizeIp(addr.hostname) : "unknown";
}

function isUpgradeRequest(request: Request): boolean {
  const headers = request.headers;
  const connection = headers.get("connection")?.toLowerCase() ?? "";
  return headers.get("upgrade")?.toLowerCase() === "websocket" &&
    connection.split(",").some((token) => token.trim() === "upgrade") &&
    headers.get("sec-websocket-version") === "13" &&
    (headers.get("sec-websocket-key") ?? "").trim() !== "";
}

/**
 * Builds the request handler. Per-IP connection counts live in the returned closure: a slot is
 * taken just before the upgrade and given back when the socket closes.
 */
export function createHandler(context: RouteContext, options: RouteOptions): Handler {
  const perIp = new Map<string, number>();
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
    const ip = peerIp(info);
    const current = perIp.get(ip) ?? 0;
    const limit = options.maxConnectionsPerIp;
    if (current >= limit) {
      log.warn("Refused a WebSocket upgrade from {client_ip}: {current}/{limit} connections", {
        client_ip: ip,
        current,
        limit,
      });
      return json(429, {
        message: `Too many connections from your IP (${current}/${limit})`,
        error_code: "TOO_MANY_CONNECTIONS",
      });
    }
    perIp.set(ip, current + 1);
    const release = () => {
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left > 0) perIp.set(ip, left);
      else perIp.delete(ip);
    };
    try {
      return acceptWebSocket(request, context.hub, {
        ip,
        idleTimeoutSecs: options.idleTimeoutSecs,
        onClosed: release,
        outbound: options.outbound,
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
    switch (path) {
      case "/v2/ws":
        return upgrade(request, info);
      case "/v2/health":
        return context.isDraining()
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
    if (response.status === 101) return response;
    for (const [name, value] of Object.entries(corsHeaders(request))) {
      response.headers.set(name, value);
    }
    return response;
  };
}
