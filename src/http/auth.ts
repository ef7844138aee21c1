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
