/**
 * Binary game data (docs/spec/PROTOCOL.md §7.7): the MessagePack envelope sent to `message_pack` clients
 * and the JSON conversion sent to `json` clients and replay buffers. Encoding and decoding are
 * done by npm:@msgpack/msgpack; this module only adds the envelope shape and the strictness the
 * spec asks for (no `bin`/`ext`, string keys only, valid UTF-8).
 *
 * @module
 */
import { decode, encode, ExtData } from "@msgpack/msgpack";

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

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Map keys are decoded strictly: invalid UTF-8 throws, so the conversion fails. */
const strictKeys = {
  canBeCached: () => true,
  decode: (bytes: Uint8Array, offset: number, length: number) =>
    strictUtf8.decode(bytes.subarray(offset, offset + length)),
};

function stringKeysOnly(key: unknown): string {
  if (typeof key !== "string") throw new TypeError("Map keys must be strings");
  return key;
}

class Unconvertible extends Error {}

/**
 * Converts one MessagePack value to JSON text for a `json` recipient (docs/spec/PROTOCOL.md §7.7):
 * nil, booleans, integers (exactly, also beyond ±2^53), floats (float32 widened; NaN and
 * infinities become `null`, as JSON has no such numbers), strings, arrays and maps with string
 * keys. Returns `undefined` when the payload is not exactly one valid MessagePack value or holds
 * `bin` or `ext` values, non-string map keys or invalid UTF-8 — that recipient then gets nothing.
 */
export function msgpackToJson(payload: Uint8Array): string | undefined {
  try {
    // Two decodings of the same bytes: `typed` tells strings from binary values, `raw` keeps
    // every string's bytes so they can be checked as strict UTF-8 (the decoder is lenient).
    const options = { useBigInt64: true, keyDecoder: strictKeys, mapKeyConverter: stringKeysOnly };
    const typed = decode(payload, options);
    const raw = decode(payload, { ...options, rawStrings: true });
    return JSON.stringify(
      strict(typed, raw),
      (_key, value) => typeof value === "bigint" ? rawJson(value.toString()) : value,
    );
  } catch {
    return undefined;
  }
}

/** Rebuilds `typed` with strictly decoded strings; throws on anything JSON cannot carry. */
function strict(typed: unknown, raw: unknown): unknown {
  if (typeof typed === "string") return strictUtf8.decode(raw as Uint8Array);
  if (typed === null || typeof typed !== "object") return typed;
  if (typed instanceof Uint8Array || typed instanceof ExtData || typed instanceof Date) {
    throw new Unconvertible("bin and ext values have no JSON form");
  }
  if (Array.isArray(typed)) {
    const rawItems = raw as unknown[];
    return typed.map((item, i) => strict(item, rawItems[i]));
  }
  const rawMap = raw as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(typed)) {
    out[key] = strict((typed as Record<string, unknown>)[key], rawMap[key]);
  }
  return out;
}

/** `JSON.rawJSON` (V8): lets the replacer write an integer's exact digits. */
const rawJson = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;
