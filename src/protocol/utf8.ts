/**
 * Byte length of text on the wire. Every length limit of the protocol counts UTF-8 bytes
 * (docs/spec/PROTOCOL.md §8, docs/spec/SERVER.md §3), so the transport, the codec and the engine share this one helper.
 *
 * @module
 */

const encoder = new TextEncoder();

// deno-lint-ignore no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;

/** Length of `text` in UTF-8 bytes (the unit of every length limit, docs/spec/PROTOCOL.md §8). */
export function utf8Length(text: string): number {
  // ASCII, the common case, is one byte per code unit; the regex scan runs natively.
  return NON_ASCII.test(text) ? encoder.encode(text).length : text.length;
}
