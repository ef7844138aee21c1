/**
 * CORS (docs/spec/SERVER.md §1.7): the response headers for `security.cors_origins`, and the origin check
 * of WebSocket upgrades.
 *
 * @module
 */

import type { HeaderReader } from "./handover.ts";

/** What the policy reads of a request: its headers (a `Request`, or the upgrade's head). */
type WithHeaders = { readonly headers: HeaderReader };

/** The CORS policy of `security.cors_origins`. */
export class Cors {
  readonly #allowed: "*" | ReadonlySet<string>;

  /** @param origins `"*"`, or the allowed origins, compared ASCII-case-insensitively. */
  constructor(origins: "*" | readonly string[]) {
    this.#allowed = origins === "*" ? "*" : new Set(origins.map((origin) => origin.toLowerCase()));
  }

  /** The CORS headers of a response to `request` (docs/spec/SERVER.md §1.7). */
  headers(request: WithHeaders): Record<string, string> {
    const allowed = this.#allowed;
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

  /** True when `request` has no `Origin` or an allowed one (docs/spec/SERVER.md §1.8 step 3). */
  allows(request: WithHeaders): boolean {
    const origin = request.headers.get("origin");
    return this.#allowed === "*" || origin === null || this.#allowed.has(origin.toLowerCase());
  }

  /** The answer to a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`). */
  preflight(request: Request): Response {
    return new Response(null, {
      status: 200,
      headers: {
        ...this.headers(request),
        "access-control-allow-methods": "*",
        "access-control-allow-headers": "*",
      },
    });
  }
}
