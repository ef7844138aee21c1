/**
 * Bearer-token checks for the HTTP routes that need one (docs/spec/SERVER.md §1.4 metrics; the admin routes
 * of the operator-console issue use the same check).
 *
 * @module
 */
import { secretEquals } from "../util/secrets.ts";

/**
 * Checks the `Authorization` header against `token` (docs/spec/SERVER.md §1.4): exact `Bearer ` prefix,
 * visible ASCII only, constant-time comparison of SHA-256 digests, no trimming.
 */
export function bearerMatches(header: string | null, token: string): boolean {
  if (header === null || !/^[\x20-\x7e]*$/.test(header) || !header.startsWith("Bearer ")) {
    return false;
  }
  return secretEquals(header.slice(7), token);
}

/**
 * True when the `Authorization` header is a Bearer credential, the only form
 * {@linkcode bearerMatches} can accept: a request carrying one is a guess at the token, so a
 * failed one is charged to the client IP's failure bucket (SECURITY.md "Operator console",
 * "Metrics"). A missing header, another scheme (`Basic …`) or a scheme in another case can never
 * match whatever the token, so they are refused without a charge: a page in the operator's
 * browser (a CORS preflight, an `<img>`, a no-cors `fetch`) cannot send a Bearer credential to
 * another origin and so cannot empty the bucket.
 */
export function isBearerCredential(header: string | null): boolean {
  return header !== null && header.startsWith("Bearer ");
}
