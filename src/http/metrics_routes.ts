/**
 * The metrics and status routes (docs/spec/SERVER.md §1.2, §1.4–§1.6; docs/spec/EXTENSIONS.md E8): Prometheus text,
 * the JSON metrics body and `/v2/status`, all behind the optional metrics bearer token.
 *
 * @module
 */
import { bearerMatches } from "./auth.ts";
import { getLogger } from "@logtape/logtape";
import { PROMETHEUS_CONTENT_TYPE } from "../metrics/registry.ts";
import type { ServerMetrics } from "../metrics/server_metrics.ts";

const log = getLogger(["signal-fish", "http"]);

/** Paths served as Prometheus text (docs/spec/SERVER.md §1.2). */
export const PROMETHEUS_PATHS: ReadonlySet<string> = new Set([
  "/metrics/prom",
  "/v1/metrics/prom",
  "/v2/metrics/prom",
]);
/** Paths served as the JSON metrics body (docs/spec/SERVER.md §1.2). */
export const JSON_METRICS_PATHS: ReadonlySet<string> = new Set([
  "/metrics",
  "/v1/metrics",
  "/v2/metrics",
]);
/** The status path (docs/spec/EXTENSIONS.md E8). */
export const STATUS_PATH = "/v2/status";

/** The `/v2/status` body (docs/spec/EXTENSIONS.md E8). */
export interface StatusBody {
  status: "ok" | "draining";
  version: string;
  instance_id: string;
  /** Whole seconds since the server started. */
  uptime_secs: number;
  rooms: number;
  players: number;
  spectators: number;
  connections: number;
  held_seats: number;
  /** Cluster mode: this node's name (`<instance_id>@<boot>`, docs/spec/SERVER.md §8.2). */
  node?: string;
  /** Cluster mode: the nodes with a liveness key at the last refresh, this one included. */
  cluster_nodes?: string[];
}

/** What the metrics routes read. */
export interface MetricsRouteContext {
  /** The server's metrics. */
  metrics: ServerMetrics;
  /** The status body right now. */
  status: () => StatusBody;
  /** `security.metrics_auth_token` when `require_metrics_auth`, else `null` (no auth). */
  authToken: string | null;
  /** Current time in ms (Unix epoch). @default Date.now */
  now?: () => number;
}

/** True for the paths {@linkcode serveMetrics} answers. */
export function isMetricsPath(path: string): boolean {
  return PROMETHEUS_PATHS.has(path) || JSON_METRICS_PATHS.has(path) || path === STATUS_PATH;
}

/**
 * Answers a GET/HEAD on a metrics or status path (method already checked). 401 with an empty
 * body for a missing or wrong token; 400 for a bad `includeSnapshot` (JSON paths only).
 */
export function serveMetrics(
  request: Request,
  path: string,
  context: MetricsRouteContext,
): Response {
  if (context.authToken !== null) {
    const header = request.headers.get("authorization");
    if (!bearerMatches(header, context.authToken)) {
      log.warn("Refused a metrics request: {reason}", {
        path,
        reason: header === null ? "missing Authorization header" : "wrong bearer token",
      });
      return new Response(null, { status: 401 });
    }
  }
  const head = request.method === "HEAD";
  const now = (context.now ?? Date.now)();
  if (PROMETHEUS_PATHS.has(path)) {
    return new Response(head ? null : context.metrics.renderPrometheus(), {
      headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
    });
  }
  if (path === STATUS_PATH) {
    const body = context.status();
    return new Response(head ? null : JSON.stringify(body), {
      status: body.status === "draining" ? 503 : 200,
      headers: { "content-type": "application/json", "cache-control": "no-store" },
    });
  }
  const params = new URL(request.url).searchParams;
  const include = params.get("includeSnapshot");
  if (include !== null && include !== "true" && include !== "false") {
    return new Response("Invalid query parameter: includeSnapshot", {
      status: 400,
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  }
  // The body's dashboard part is serialised once per refresh (ServerMetrics.jsonText).
  const body = head ? null : context.metrics.jsonText({
    timeRange: params.get("time_range") ?? "1h",
    includeSnapshot: include === "true",
  }, now);
  return new Response(body, {
    headers: { "content-type": "application/json" },
  });
}
