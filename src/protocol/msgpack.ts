/**
 * Binary game data (docs/spec/PROTOCOL.md §7.7): the MessagePack envelope sent to `message_pack` clients
 * and the JSON conversion sent to `json` clients and replay buffers. Encoding and decoding are
 * done by npm:@msgpack/msgpack; this module only adds the envelope shape and the strictness the
 * spec asks for (no `bin`/`ext`, string keys only, valid UTF-8).
 *
 * @module
 */
import { encode } from "@msgpack/msgpack";

/**
 * Builds the binary envelope of docs/spec/PROTOCOL.md §7.7: a MessagePack map with exactly the keys
 * `from_player` (bin 16, the UUID's raw bytes), `encoding` (`"message_pack"`) and `payload`
 * (bin, the sender's frame unchanged), in that order.
 *
 * @param fromPlayer the sender's player id, a lower-case hyphenated UUID
 * @param payload the sender's binary frame, never inspected
 */
export function encodeGameDataEnvelope(fromPlayer: string, payload: Uint8Array): Uint8Array {
  return encode({ from_player: uuidBytes(fromPlayer), encoding: "message_pack", payload });
}

/** The 16 RFC 4122 bytes of a hyphenated UUID. */
export function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replaceAll("-", "");
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** JSON text of every one-byte integer type byte: positive fixint 0–127, negative fixint −32…−1. */
const FIXINT_TEXT: string[] = Array.from({ length: 256 }, (_, b) => String(b < 0x80 ? b : b - 256));

/** JSON text of every `uint 8` value. */
const UINT8_TEXT: string[] = Array.from({ length: 256 }, (_, b) => String(b));

/**
 * Bytes that follow the type byte before a value's content, for type bytes 0xc0–0xdf (MessagePack
 * spec "formats"); −1 for the types JSON cannot carry (`bin`, `ext`, `fixext`) and for 0xc1,
 * which is never used.
 */
// deno-fmt-ignore
const HEADER_SIZE: Int8Array = Int8Array.from([
  0, -1, 0, 0, -1, -1, -1, -1, -1, -1, 4, 8, 1, 2, 4, 8, // c0–cf
  1, 2, 4, 8, -1, -1, -1, -1, -1, 1, 2, 4, 2, 4, 2, 4, // d0–df
]);

/** Strings up to this many bytes are decoded by {@linkcode stringJson} itself. */
const SHORT_STRING_MAX = 64;

/**
 * Converts one MessagePack value to JSON text for a `json` recipient (docs/spec/PROTOCOL.md §7.7):
 * nil, booleans, integers (exactly, also beyond ±2^53), floats (float32 widened; NaN and
 * infinities become `null`, as JSON has no such numbers), strings, arrays and maps with string
 * keys, at any depth. Returns `undefined` when the payload is not exactly one valid MessagePack
 * value or holds `bin` or `ext` values, non-string map keys or invalid UTF-8 — that recipient
 * then gets nothing.
 *
 * The value is transcoded in one pass over the bytes, with an explicit stack instead of recursion,
 * so the cost is linear in the payload's length whatever its shape (at most ~2 ms for a hostile
 * 64-KiB payload, see BENCHMARKS.md "Session 25") and no nesting is too deep. Map entries keep the
 * sender's order, and a key sent twice is written twice, as a JSON sender's text is relayed
 * unchanged (§7.6); a key `__proto__` is a key like any other. npm:@msgpack/msgpack cannot do
 * this: it refuses `__proto__` keys, decodes strings leniently (a second decode was needed to
 * find invalid UTF-8) and builds the whole value, which `JSON.stringify` then walks recursively.
 *
 * @param payload the sender's binary frame (at most `max_message_size` bytes, §1.4)
 * @returns the value as JSON text, or `undefined` when it has no JSON form
 */
export function msgpackToJson(payload: Uint8Array): string | undefined {
  const end = payload.length;
  const view = new DataView(payload.buffer, payload.byteOffset, end);
  // The arrays and maps open around the next item, innermost last, each as (items left) × 2,
  // + 1 for a map. A map's items are its keys and its values, so a map with an even number of
  // items left expects a key next.
  const open: number[] = [];
  let out = "";
  // Separators and closing brackets not written yet: they go out with the next value, so each
  // value costs one concatenation onto `out` (a long text built of many pieces costs more to
  // flatten, and the socket write flattens it).
  let pending = "";
  let pos = 0;
  while (pos < end) {
    const type = payload[pos++]!;
    const top = open.length > 0 ? open[open.length - 1]! : 0;
    const isKey = top % 4 === 1;
    if (isKey && (type < 0xa0 || type > 0xbf) && (type < 0xd9 || type > 0xdb)) return undefined;
    let piece = "";
    let items = -1; // an array's or a map's length
    let isMap = 0;
    let stringLength = -1;
    if (type <= 0x7f || type >= 0xe0) piece = FIXINT_TEXT[type]!;
    else if (type <= 0x8f) {
      items = type & 0x0f;
      isMap = 1;
    } else if (type <= 0x9f) items = type & 0x0f;
    else if (type <= 0xbf) stringLength = type & 0x1f;
    else {
      const size = HEADER_SIZE[type - 0xc0]!;
      if (size < 0 || pos + size > end) return undefined;
      switch (type) {
        case 0xc0:
          piece = "null";
          break;
        case 0xc2:
          piece = "false";
          break;
        case 0xc3:
          piece = "true";
          break;
        case 0xca:
          piece = numberJson(view.getFloat32(pos));
          break;
        case 0xcb:
          piece = numberJson(view.getFloat64(pos));
          break;
        case 0xcc:
          piece = UINT8_TEXT[payload[pos]!]!;
          break;
        case 0xcd:
          piece = String(view.getUint16(pos));
          break;
        case 0xce:
          piece = String(view.getUint32(pos));
          break;
        case 0xcf:
          piece = String(view.getBigUint64(pos));
          break;
        case 0xd0:
          piece = String(view.getInt8(pos));
          break;
        case 0xd1:
          piece = String(view.getInt16(pos));
          break;
        case 0xd2:
          piece = String(view.getInt32(pos));
          break;
        case 0xd3:
          piece = String(view.getBigInt64(pos));
          break;
        case 0xd9:
          stringLength = payload[pos]!;
          break;
        case 0xda:
          stringLength = view.getUint16(pos);
          break;
        case 0xdb:
          stringLength = view.getUint32(pos);
          break;
        case 0xdc:
          items = view.getUint16(pos);
          break;
        case 0xdd:
          items = view.getUint32(pos);
          break;
        case 0xde:
          items = view.getUint16(pos);
          isMap = 1;
          break;
        case 0xdf:
          items = view.getUint32(pos);
          isMap = 1;
          break;
      }
      pos += size;
    }
    if (stringLength >= 0) {
      if (stringLength > end - pos) return undefined;
      const text = stringJson(payload, pos, stringLength);
      if (text === undefined) return undefined;
      pos += stringLength;
      if (isKey) {
        out += pending + text;
        pending = ":";
        open[open.length - 1] = top - 2;
        continue;
      }
      piece = text;
    } else if (items > 0) {
      if (isMap) items *= 2;
      // Every item takes at least one byte: a longer declared length cannot be complete.
      if (items > end - pos) return undefined;
      open.push(items * 2 + isMap);
      out += pending + (isMap ? "{" : "[");
      pending = "";
      continue;
    } else if (items === 0) piece = isMap ? "{}" : "[]";
    out += pending + piece;
    pending = "";
    // One value is complete: count it in its container, and close each container it completes.
    for (;;) {
      const depth = open.length;
      if (depth === 0) return pos === end ? out + pending : undefined;
      const left = open[depth - 1]! - 2;
      if (left > 1) {
        open[depth - 1] = left;
        pending += ",";
        break;
      }
      open.pop();
      pending += left === 1 ? "}" : "]";
      if (pending.length >= 12) {
        out += pending;
        pending = "";
      }
    }
  }
  return undefined;
}

/** A finite number as JSON writes it; NaN and the infinities have no JSON form and become `null`. */
function numberJson(value: number): string {
  return Number.isFinite(value) ? String(value) : "null";
}

/** JSON's escapes of the ASCII characters that cannot stand in a string literal as themselves. */
const ESCAPED: string[] = Array.from(
  { length: 0x80 },
  (_, c) =>
    c < 0x20 || c === 0x22 || c === 0x5c ? JSON.stringify(String.fromCharCode(c)).slice(1, -1) : "",
);

/**
 * The JSON string literal of `length` bytes of UTF-8 at `start`, escaped as `JSON.stringify`
 * escapes, or `undefined` when they are not valid UTF-8 (WHATWG's rules: no overlong forms, no
 * surrogates, nothing past U+10FFFF; a leading U+FEFF is kept). Strings up to
 * {@linkcode SHORT_STRING_MAX} bytes are decoded here, longer ones by `TextDecoder`: a call to
 * it costs about as much as decoding a short string byte by byte.
 */
function stringJson(bytes: Uint8Array, start: number, length: number): string | undefined {
  if (length > SHORT_STRING_MAX) {
    try {
      return JSON.stringify(strictUtf8.decode(bytes.subarray(start, start + length)));
    } catch {
      return undefined;
    }
  }
  const end = start + length;
  let text = '"';
  for (let i = start; i < end;) {
    const byte = bytes[i++]!;
    if (byte < 0x80) {
      const escaped = ESCAPED[byte]!;
      text += escaped === "" ? String.fromCharCode(byte) : escaped;
      continue;
    }
    // A sequence of 2, 3 or 4 bytes: its lead byte's payload, then 6 bits per continuation byte.
    let point: number;
    let continuations: number;
    let least: number;
    if (byte >= 0xc2 && byte <= 0xdf) {
      point = byte & 0x1f;
      continuations = 1;
      least = 0x80;
    } else if (byte >= 0xe0 && byte <= 0xef) {
      point = byte & 0x0f;
      continuations = 2;
      least = 0x800;
    } else if (byte >= 0xf0 && byte <= 0xf4) {
      point = byte & 0x07;
      continuations = 3;
      least = 0x10000;
    } else return undefined;
    if (i + continuations > end) return undefined;
    for (let k = 0; k < continuations; k++) {
      const next = bytes[i++]!;
      if ((next & 0xc0) !== 0x80) return undefined;
      point = (point << 6) | (next & 0x3f);
    }
    if (point < least || point > 0x10ffff || (point >= 0xd800 && point <= 0xdfff)) {
      return undefined;
    }
    text += String.fromCodePoint(point);
  }
  return text + '"';
}
