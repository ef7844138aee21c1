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

/** Bytes of one {@linkcode randomToken}. */
const TOKEN_BYTES = 32;
/** Random bytes for {@linkcode randomToken}, refilled 128 tokens at a time. */
const tokenPool = new Uint8Array(TOKEN_BYTES * 128);
/** Next unused byte of `tokenPool`; at its length the pool is spent. */
let tokenPoolAt = tokenPool.length;

/**
 * 32 bytes from the system's cryptographic RNG, base64url without padding (43 characters): a
 * reconnection token (docs/spec/PROTOCOL.md §7.11.1). The bytes are drawn 4 KiB at a time (one
 * system call per 128 tokens instead of one each); each slice is used once and zeroed.
 */
export function randomToken(): string {
  if (tokenPoolAt === tokenPool.length) {
    crypto.getRandomValues(tokenPool);
    tokenPoolAt = 0;
  }
  const bytes = tokenPool.subarray(tokenPoolAt, tokenPoolAt += TOKEN_BYTES);
  const token = bytes.toBase64({ alphabet: "base64url", omitPadding: true });
  bytes.fill(0);
  return token;
}
