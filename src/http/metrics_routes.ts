/**
 * The metrics and status routes (docs/spec/SERVER.md §1.2, §1.4–§1.6; docs/spec/EXTENSIONS.md E8): Prometheus text,
 * the JSON metrics body and `/v2/status`, all behind the optional metrics bearer token. Wrong
 * tokens are charged to a per-client-IP bucket ({@linkcode MetricsAuthLimits}); an address whose
 * bucket is empty gets `429` before its token is looked at (SECURITY.md "Metrics").
 *
 * @module
 */
import { bearerMatches, isBearerCredential } from "./auth.ts";
import { getLogger } from "@logtape/logtape";
import { KeyedBuckets } from "../engine/token_bucket.ts";
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

/** Limits of the metrics token check (SECURITY.md "Metrics"). */
export interface MetricsAuthLimits {
  /** Wrong Bearer tokens per client IP per minute before `429`. @default 10 */
  failedAttemptsPerMinute: number;
  /** Client IPs whose failed attempts are remembered (least recently seen forgotten first). @default 10000 */
  maxTrackedIps: number;
}

/** The defaults of {@linkcode MetricsAuthLimits}. */
export const DEFAULT_METRICS_AUTH_LIMITS: Readonly<MetricsAuthLimits> = {
  failedAttemptsPerMinute: 10,
  maxTrackedIps: 10_000,
};

/** What the metrics routes read. */
export interface MetricsRouteContext {
  /** The server's metrics. */
  metrics: ServerMetrics;
  /** The status body right now. */
  status: () => StatusBody;
  /** `security.metrics_auth_token` when `require_metrics_auth`, else `null` (no auth). */
  authToken: string | null;
  /** Limits of the token check; missing fields take {@linkcode DEFAULT_METRICS_AUTH_LIMITS}. */
  authLimits?: Partial<MetricsAuthLimits>;
  /** Current time in ms (Unix epoch). @default Date.now */
  now?: () => number;
}

/**
 * Answers a GET/HEAD on a metrics or status path (method already checked) from client IP `ip`
 * (docs/spec/SERVER.md §1.9 key).
 */
export type MetricsRoutes = (request: Request, path: string, ip: string) => Response;

/** True for the paths {@linkcode metricsRoutes} answers. */
export function isMetricsPath(path: string): boolean {
  return PROMETHEUS_PATHS.has(path) || JSON_METRICS_PATHS.has(path) || path === STATUS_PATH;
}

/**
 * The metrics and status routes over `context` (docs/spec/SERVER.md §1.4–§1.6,
 * docs/spec/EXTENSIONS.md E8): one bucket of failed attempts per client IP for all of them. With
 * a token configured: an address whose bucket is empty gets `429` with `Retry-After` (whole
 * seconds) and a plain-text body before its token is looked at; a missing or wrong token is `401`
 * with an empty body (docs/spec/SERVER.md §1.4), and only a wrong Bearer token
 * (`Authorization: Bearer …`, the one form that can match) takes from the bucket, so a scraper
 * with the right token never spends it and requests without a credential cannot lock an address
 * out. Then `400` for a bad `includeSnapshot` (JSON paths only).
 */
export function metricsRoutes(context: MetricsRouteContext): MetricsRoutes {
  const limits: MetricsAuthLimits = { ...DEFAULT_METRICS_AUTH_LIMITS, ...context.authLimits };
  const failures = new KeyedBuckets(limits.failedAttemptsPerMinute, 60_000, limits.maxTrackedIps);
  const clock = context.now ?? Date.now;
  return (request, path, ip) => {
    if (context.authToken !== null) {
      const t = clock();
      failures.sweepDue(t);
      const blocked = failures.check(ip, t);
      if (!blocked.ok) {
        const secs = blocked.retryAfterSecs;
        return new Response(`Too many failed authentication attempts; retry in ${secs} s`, {
          status: 429,
          headers: { "content-type": "text/plain; charset=utf-8", "retry-after": String(secs) },
        });
      }
      const header = request.headers.get("authorization");
      if (!bearerMatches(header, context.authToken)) {
        const guess = isBearerCredential(header);
        if (guess) failures.take(ip, t);
        log.warn("Refused a metrics request from {client_ip}: {reason}", {
          path,
          client_ip: ip,
          reason: header === null
            ? "missing Authorization header"
            : guess
            ? "wrong bearer token"
            : "not a Bearer credential",
        });
        return new Response(null, { status: 401 });
      }
    }
    return serve(request, path, context, clock());
  };
}

/** The answer of an authorised request (docs/spec/SERVER.md §1.5, §1.6; docs/spec/EXTENSIONS.md E8). */
function serve(
  request: Request,
  path: string,
  context: MetricsRouteContext,
  now: number,
): Response {
  const head = request.method === "HEAD";
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
