/**
 * The server's timers (docs/spec/SERVER.md §4): the maintenance sweep (§4.2), the once-a-second tick that
 * expires held seats (§4.1, docs/spec/PROTOCOL.md §7.11.3), the auth deadline check (§4.5) and the
 * dashboard cache refresh (§4.8). Each runs through the edge's one command entry.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { bugFields } from "./logging.ts";
import type { Edge } from "./transport/edge.ts";

const log = getLogger(["signal-fish", "server"]);

/** Timers treat delays above 2^31 - 1 ms as 1 ms; delays are clamped to this. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Periods of the timers. */
export interface MaintenanceOptions {
  /** `server.room_cleanup_interval` in ms. */
  sweepIntervalMs: number;
  /**
   * `websocket.auth_timeout_secs` in ms when auth is required (the check runs four times per
   * deadline, between 20 ms and 1 s apart); `undefined` = no deadlines to check.
   */
  authTimeoutMs?: number;
  /** `metrics.dashboard_cache_refresh_interval_secs` in ms. */
  dashboardIntervalMs: number;
  /** Refreshes the dashboard cache at `now` (ms). */
  refreshDashboard: (now: number) => void;
  /**
   * The operator console's sampler (docs/spec/EXTENSIONS.md E12): `tick(now)` every `intervalMs`.
   * @default undefined (console off)
   */
  operatorFeed?: { intervalMs: number; tick: (now: number) => void };
}

/** Running timers; {@linkcode Maintenance.stop} clears them all. */
export interface Maintenance {
  /** Clears every timer. Idempotent. */
  stop(): void;
}

/** Starts the timers for `edge`; the dashboard is refreshed once at start. */
export function startMaintenance(edge: Edge, options: MaintenanceOptions): Maintenance {
  const refreshDashboard = () => {
    try {
      options.refreshDashboard(Date.now());
    } catch (error) {
      log.error("Cannot refresh the dashboard cache: {error}", bugFields(error));
    }
  };
  refreshDashboard();
  const timers = [
    setInterval(refreshDashboard, Math.min(options.dashboardIntervalMs, MAX_TIMER_MS)),
    setInterval(
      () => edge.command({ kind: "sweep" }, Date.now()),
      Math.min(options.sweepIntervalMs, MAX_TIMER_MS),
    ),
    // Held-seat expiry is processed within a second of the window's end (docs/spec/PROTOCOL.md §7.11.3).
    setInterval(() => edge.command({ kind: "tick" }, Date.now()), 1000),
  ];
  const feed = options.operatorFeed;
  if (feed !== undefined) {
    timers.push(setInterval(() => {
      try {
        feed.tick(Date.now());
      } catch (error) {
        log.error("Cannot sample the operator figures: {error}", bugFields(error));
      }
    }, Math.min(Math.max(1, feed.intervalMs), MAX_TIMER_MS)));
  }
  if (options.authTimeoutMs !== undefined) {
    // The auth deadline (docs/spec/SERVER.md §4.5) needs a finer clock than the maintenance sweep.
    timers.push(setInterval(
      () => edge.command({ kind: "expire_authentication" }, Date.now()),
      Math.min(1000, Math.max(20, options.authTimeoutMs / 4)),
    ));
  }
  return {
    stop: () => {
      for (const timer of timers) clearInterval(timer);
      timers.length = 0;
    },
  };
}
