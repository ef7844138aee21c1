/**
 * Comparing secrets (app secrets, reconnection tokens, the metrics bearer token, client
 * fingerprints) without leaking where they differ: both sides are hashed with SHA-256 and the
 * digests compared in constant time, so neither content nor length shows in the timing.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";

/** SHA-256 of `text`'s UTF-8 bytes (32 bytes). */
export function sha256(text: string): Uint8Array {
  return createHash("sha256").update(text, "utf8").digest();
}

/** True when `a` and `b` are the same string, compared in constant time (see the module). */
export function secretEquals(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}
