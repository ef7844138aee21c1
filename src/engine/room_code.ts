/**
 * Generated room codes (docs/spec/PROTOCOL.md §7.2.3).
 *
 * @module
 */

/** The 32-character alphabet of generated codes: no `0`, `1`, `I` or `O`. */
export const ROOM_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/**
 * Returns a generator of room codes of exactly `length` characters: the (trimmed, upper-cased)
 * `prefix` followed by characters drawn uniformly from {@linkcode ROOM_CODE_ALPHABET} using
 * `randomBytes` (a cryptographic source in production, a fixed one in tests).
 *
 * @throws {RangeError} when the prefix is not ASCII alphanumeric or not shorter than `length`.
 */
export function roomCodeGenerator(
  length: number,
  prefix: string | null,
  randomBytes: (count: number) => Uint8Array = (count) =>
    crypto.getRandomValues(new Uint8Array(count)),
): () => string {
  const head = (prefix ?? "").trim().toUpperCase();
  if (!/^[A-Z0-9]*$/.test(head) || head.length >= length) {
    throw new RangeError(
      `Cannot generate room codes: prefix "${head}" must be alphanumeric and shorter than ${length}`,
    );
  }
  const count = length - head.length;
  return () => {
    let code = head;
    // 256 is a multiple of 32, so `byte & 31` is uniform.
    for (const byte of randomBytes(count)) code += ROOM_CODE_ALPHABET[byte & 31];
    return code;
  };
}
