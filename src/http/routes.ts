/**
 * The HTTP surface (docs/spec/SERVER.md §1): the route table of §1.2 with CORS (§1.7) around it. Each row
 * names its paths and handler; a known path asked with another method gets 405, anything else the
 * plain-text 404.
 *
 * @module
 */
import type { Awaitable } from "../coordination/awaitable.ts";
import { type AdminRoutes, isAdminPath } from "./admin.ts";
import { peerIp } from "./admission.ts";
import { Cors } from "./cors.ts";
import { isMetricsPath, type MetricsRouteContext, metricsRoutes } from "./metrics_routes.ts";
import { methodNotAllowed, notFound } from "./responses.ts";
import type { RoomRoutes } from "./rooms.ts";
import { isStaticPath, serveStatic } from "./static_files.ts";
import { isSwitchingProtocols, type RequestHead, type UpgradeRequest } from "./handover.ts";
import {
  type UpgradeContext,
  type UpgradeOptions,
  type WebsocketEndpoint,
  websocketEndpoint,
} from "./upgrade.ts";

/** Route settings derived from the configuration. */
export interface RouteOptions extends UpgradeOptions {
  /** `"*"`, or the allowed origins (docs/spec/SERVER.md §1.7), compared ASCII-case-insensitively. */
  corsOrigins: "*" | readonly string[];
}

/** What the routes need from the running server. */
export interface RouteContext extends UpgradeContext {
  /** Metrics and status routes (docs/spec/SERVER.md §1.4–§1.6, docs/spec/EXTENSIONS.md E8); absent ⇒ 404. */
  metrics?: MetricsRouteContext;
  /** Room lookup and listing (docs/spec/SERVER.md §1.10, `./rooms.ts`). @default undefined (404) */
  roomRoutes?: RoomRoutes;
  /**
   * Cluster mode: false while Redis is unreachable or the node has not registered, when
   * `/v2/health` answers 503 (docs/spec/SERVER.md §8.5.5). @default always healthy
   */
  isHealthy?: () => boolean;
  /**
   * The operator API and console (docs/spec/EXTENSIONS.md E12, `./admin.ts`), when `security.admin_token`
   * is set. @default undefined (every `/admin…` path is an unknown path)
   */
  adminRoutes?: AdminRoutes;
}

/** An HTTP handler for `Deno.serve`. */
export type Handler = (
  request: Request,
  info: Deno.ServeHandlerInfo,
) => Response | Promise<Response>;

/**
 * The request handler, and the WebSocket route for upgrades read from their head alone
 * (`listen`'s `upgrade`, src/http/listener.ts): `websocket` answers a `GET /v2/ws` upgrade as
 * the handler would, or returns undefined for every other request (the handler answers it).
 */
export type RouteHandler = Handler & {
  websocket(request: UpgradeRequest, info: Deno.ServeHandlerInfo): Response | undefined;
};

/** True for a request target whose path is `/v2/ws` as the URL parser reads it. */
function isWebsocketTarget(target: string): boolean {
  return target === "/v2/ws" || target.startsWith("/v2/ws?");
}

/** One row of the route table (docs/spec/SERVER.md §1.2). */
interface Route {
  /** The row's paths as the spec writes them. */
  readonly paths: string;
  /** True for the paths this row serves. */
  readonly matches: (path: string) => boolean;
  /**
   * `"GET"`: GET and HEAD reach the handler, other methods get 405. `"own"`: every method reaches
   * the handler, which answers 405 itself (the room routes, whose paths depend on settings).
   */
  readonly methods: "GET" | "own";
  /** Answers the request (later when it reads a remote directory), or `undefined` for the 404. */
  readonly handle: (
    request: Request,
    path: string,
    info: Deno.ServeHandlerInfo,
  ) => Awaitable<Response> | undefined;
}

/** The route table of docs/spec/SERVER.md §1.2, in its order; rows whose feature is off are left out. */
function routeTable(
  upgrade: WebsocketEndpoint,
  context: RouteContext,
  options: RouteOptions,
): Route[] {
  const metrics = context.metrics && metricsRoutes(context.metrics);
  const routes: (Route | false)[] = [
    {
      paths: "/v2/ws",
      matches: (path) => path === "/v2/ws",
      methods: "GET",
      handle: (request, _path, info) => upgrade(request, info),
    },
    {
      paths: "/v2/health",
      matches: (path) => path === "/v2/health",
      methods: "GET",
      // 503 while draining or at the connection cap: a load balancer then sends players
      // elsewhere (SECURITY.md, `security.max_connections`).
      handle: (request) =>
        context.isDraining() || upgrade.atCapacity() || context.isHealthy?.() === false
          ? new Response(null, { status: 503 })
          : new Response(request.method === "HEAD" ? null : "OK", {
            headers: { "content-type": "text/plain; charset=utf-8" },
          }),
    },
    context.roomRoutes !== undefined && {
      paths: "/v2/rooms/{game_name}/{room_code}, /v2/rooms?game_name=<g>",
      matches: (path) => path === "/v2/rooms" || path.startsWith("/v2/rooms/"),
      methods: "own",
      handle: (request, path, info) =>
        context.roomRoutes?.(
          request,
          path,
          peerIp(request, info, options.trustedProxies, options.ipv6PrefixLength),
        ),
    },
    metrics !== undefined && {
      paths: "/metrics, /v1/metrics, /v2/metrics (+ /prom), /v2/status",
      matches: isMetricsPath,
      methods: "GET",
      handle: (request, path, info) =>
        metrics(
          request,
          path,
          peerIp(request, info, options.trustedProxies, options.ipv6PrefixLength),
        ),
    },
    context.adminRoutes !== undefined && {
      paths: "/admin, /admin/…, /admin/api/… (docs/spec/EXTENSIONS.md E12)",
      matches: isAdminPath,
      methods: "own",
      handle: (request, path, info) =>
        context.adminRoutes?.handle(
          request,
          path,
          peerIp(request, info, options.trustedProxies, options.ipv6PrefixLength),
        ),
    },
    {
      paths: "/, /demo.js, /client.js, /favicon.svg",
      matches: isStaticPath,
      methods: "GET",
      handle: serveStatic,
    },
  ];
  return routes.filter((route) => route !== false);
}

/**
 * Builds the request handler: CORS preflights, then the first row of the route table whose paths
 * match, else the plain-text 404 (docs/spec/SERVER.md §1.2); CORS headers on every response but an upgrade
 * and the operator routes' (same origin only, docs/spec/EXTENSIONS.md E12).
 */
export function createHandler(context: RouteContext, options: RouteOptions): RouteHandler {
  const cors = new Cors(options.corsOrigins);
  const upgrade = websocketEndpoint(context, options, cors);
  const table = routeTable(upgrade, context, options);

  const admin = context.adminRoutes !== undefined;

  function route(
    request: Request,
    path: string,
    info: Deno.ServeHandlerInfo,
  ): Awaitable<Response> {
    // The operator routes are same-origin only (docs/spec/EXTENSIONS.md E12): they refuse
    // preflights themselves (403, no CORS headers, nothing charged to the failed-login bucket).
    const preflight = request.method === "OPTIONS" &&
      request.headers.has("access-control-request-method");
    if (preflight && !(admin && isAdminPath(path))) return cors.preflight(request);
    const row = table.find((route) => route.matches(path));
    if (!row) return notFound();
    if (row.methods === "GET" && request.method !== "GET" && request.method !== "HEAD") {
      return methodNotAllowed();
    }
    return row.handle(request, path, info) ?? notFound();
  }

  const withCors = (request: RequestHead, response: Response): Response => {
    if (isSwitchingProtocols(response)) return response;
    for (const [name, value] of Object.entries(cors.headers(request))) {
      response.headers.set(name, value);
    }
    return response;
  };
  const handler: Handler = (request, info) => {
    const path = new URL(request.url).pathname;
    const response = route(request, path, info);
    if (admin && isAdminPath(path)) return response;
    // Room routes answer later when the directory is remote (docs/spec/SERVER.md §8.4.3).
    return response instanceof Promise
      ? response.then((answer) => withCors(request, answer))
      : withCors(request, response);
  };
  // The first row of the table for a GET of /v2/ws: the upgrade route with CORS headers on a
  // refusal, as above, without a `Request`. Preflights, HEAD and other methods go the full way.
  const websocket = (request: UpgradeRequest, info: Deno.ServeHandlerInfo) =>
    request.method === "GET" && isWebsocketTarget(request.target)
      ? withCors(request, upgrade(request, info))
      : undefined;
  return Object.assign(handler, { websocket });
}
