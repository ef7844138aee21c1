/**
 * A small, dependency-free MessagePack encoder and decoder for the client's binary game data
 * (docs/spec/PROTOCOL.md §7.7). It covers the types a game value and the server's binary envelope use:
 * nil, bool, integers (up to 64 bits), float32/float64, str, bin, array and map. Extension types
 * are refused.
 *
 * JavaScript ↔ MessagePack mapping:
 *
 * | JavaScript | MessagePack |
 * |---|---|
 * | `null`, `undefined` | nil |
 * | `boolean` | bool |
 * | integer `number` (safe range) | smallest int/uint form |
 * | other `number` | float64 |
 * | `bigint` | int64/uint64 (decoded back as `bigint` only outside the safe integer range) |
 * | `string` | str (UTF-8) |
 * | `Uint8Array` (or other `ArrayBufferView`, `ArrayBuffer`) | bin |
 * | `Array` | array |
 * | plain object / `Map` | map (objects: own enumerable string keys; `undefined` members skipped) |
 *
 * @module
 */

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Growable byte buffer used by {@linkcode encodeMessagePack}. */
class Writer {
  #bytes = new Uint8Array(64);
  #view = new DataView(this.#bytes.buffer);
  length = 0;

  #reserve(extra: number): void {
    if (this.length + extra <= this.#bytes.length) return;
    let size = this.#bytes.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#bytes.subarray(0, this.length));
    this.#bytes = next;
    this.#view = new DataView(next.buffer);
  }

  u8(value: number): void {
    this.#reserve(1);
    this.#bytes[this.length++] = value;
  }

  u16(value: number): void {
    this.#reserve(2);
    this.#view.setUint16(this.length, value);
    this.length += 2;
  }

  u32(value: number): void {
    this.#reserve(4);
    this.#view.setUint32(this.length, value);
    this.length += 4;
  }

  u64(value: bigint): void {
    this.#reserve(8);
    this.#view.setBigUint64(this.length, value);
    this.length += 8;
  }

  i64(value: bigint): void {
    this.#reserve(8);
    this.#view.setBigInt64(this.length, value);
    this.length += 8;
  }

  f64(value: number): void {
    this.#reserve(8);
    this.#view.setFloat64(this.length, value);
    this.length += 8;
  }

  bytes(value: Uint8Array): void {
    this.#reserve(value.length);
    this.#bytes.set(value, this.length);
    this.length += value.length;
  }

  result(): Uint8Array {
    return this.#bytes.slice(0, this.length);
  }
}

/**
 * Encodes one JavaScript value as MessagePack (mapping in the module docs).
 *
 * @throws {TypeError} for values with no MessagePack form (functions, symbols, cyclic structures
 * deeper than 512 levels).
 */
export function encodeMessagePack(value: unknown): Uint8Array {
  const writer = new Writer();
  write(writer, value, 0);
  return writer.result();
}

/**
 * Writes a str/bin/array/map header: the fix form when `fix` is given and `length` fits
 * `fixMax`, else the 8-bit form (if the family has one), else 16- or 32-bit.
 */
function writeHeader(
  w: Writer,
  length: number,
  fix: { code: number; max: number } | undefined,
  code8: number | undefined,
  code16: number,
  code32: number,
): void {
  if (fix && length <= fix.max) w.u8(fix.code | length);
  else if (code8 !== undefined && length <= 0xff) (w.u8(code8), w.u8(length));
  else if (length <= 0xffff) (w.u8(code16), w.u16(length));
  else (w.u8(code32), w.u32(length));
}

function writeInteger(w: Writer, value: number): void {
  if (value >= 0) {
    if (value < 0x80) w.u8(value);
    else if (value <= 0xff) (w.u8(0xcc), w.u8(value));
    else if (value <= 0xffff) (w.u8(0xcd), w.u16(value));
    else if (value <= 0xffffffff) (w.u8(0xce), w.u32(value));
    else (w.u8(0xcf), w.u64(BigInt(value)));
  } else {
    if (value >= -32) w.u8(value & 0xff);
    else if (value >= -0x80) (w.u8(0xd0), w.u8(value & 0xff));
    else if (value >= -0x8000) (w.u8(0xd1), w.u16(value & 0xffff));
    else if (value >= -0x80000000) (w.u8(0xd2), w.u32(value >>> 0));
    else (w.u8(0xd3), w.i64(BigInt(value)));
  }
}

function write(w: Writer, value: unknown, depth: number): void {
  if (depth > 512) throw new TypeError("Cannot encode MessagePack: value nested too deeply");
  if (value === null || value === undefined) return w.u8(0xc0);
  switch (typeof value) {
    case "boolean":
      return w.u8(value ? 0xc3 : 0xc2);
    case "number":
      if (Number.isSafeInteger(value)) return writeInteger(w, value);
      w.u8(0xcb);
      return w.f64(value);
    case "bigint":
      if (value >= 0n) {
        if (value > 0xffffffffffffffffn) break;
        w.u8(0xcf);
        return w.u64(value);
      }
      if (value < -0x8000000000000000n) break;
      w.u8(0xd3);
      return w.i64(value);
    case "string": {
      const bytes = utf8Encoder.encode(value);
      writeHeader(w, bytes.length, { code: 0xa0, max: 31 }, 0xd9, 0xda, 0xdb);
      return w.bytes(bytes);
    }
    case "object": {
      if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
        const bytes = value instanceof Uint8Array
          ? value
          : value instanceof ArrayBuffer
          ? new Uint8Array(value)
          : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
        writeHeader(w, bytes.length, undefined, 0xc4, 0xc5, 0xc6);
        return w.bytes(bytes);
      }
      if (Array.isArray(value)) {
        writeHeader(w, value.length, { code: 0x90, max: 15 }, undefined, 0xdc, 0xdd);
        for (const item of value) write(w, item, depth + 1);
        return;
      }
      const entries = value instanceof Map
        ? [...value.entries()]
        : Object.entries(value).filter(([, item]) => item !== undefined);
      writeHeader(w, entries.length, { code: 0x80, max: 15 }, undefined, 0xde, 0xdf);
      for (const [key, item] of entries) {
        write(w, key, depth + 1);
        write(w, item, depth + 1);
      }
      return;
    }
  }
  throw new TypeError(`Cannot encode MessagePack: unsupported value of type ${typeof value}`);
}

/**
 * Decodes exactly one MessagePack value from `bytes` (mapping in the module docs; maps with
 * string keys become plain objects, other maps become `Map`s; bin becomes `Uint8Array`).
 *
 * @throws {RangeError} when `bytes` is not exactly one valid MessagePack value, holds an
 * extension type, or a string is not valid UTF-8.
 */
export function decodeMessagePack(bytes: Uint8Array): unknown {
  const reader = new Reader(bytes);
  const value = reader.value(0);
  if (reader.offset !== bytes.length) {
    throw new RangeError("Cannot decode MessagePack: trailing bytes after the value");
  }
  return value;
}

class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  offset = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  #need(count: number): number {
    const at = this.offset;
    if (at + count > this.#bytes.length) {
      throw new RangeError("Cannot decode MessagePack: unexpected end of data");
    }
    this.offset += count;
    return at;
  }

  #u8 = () => this.#view.getUint8(this.#need(1));
  #u16 = () => this.#view.getUint16(this.#need(2));
  #u32 = () => this.#view.getUint32(this.#need(4));

  #big(value: bigint): number | bigint {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value;
  }

  #str(length: number): string {
    const at = this.#need(length);
    try {
      return utf8Decoder.decode(this.#bytes.subarray(at, at + length));
    } catch {
      throw new RangeError("Cannot decode MessagePack: string is not valid UTF-8");
    }
  }

  #bin(length: number): Uint8Array {
    const at = this.#need(length);
    return this.#bytes.slice(at, at + length);
  }

  #array(length: number, depth: number): unknown[] {
    const items: unknown[] = [];
    for (let i = 0; i < length; i++) items.push(this.value(depth + 1));
    return items;
  }

  #map(length: number, depth: number): Record<string, unknown> | Map<unknown, unknown> {
    const entries: [unknown, unknown][] = [];
    for (let i = 0; i < length; i++) entries.push([this.value(depth + 1), this.value(depth + 1)]);
    if (!entries.every(([key]) => typeof key === "string")) return new Map(entries);
    const object: Record<string, unknown> = {};
    for (const [key, item] of entries) {
      // defineProperty keeps a "__proto__" key an ordinary member.
      Object.defineProperty(object, key as string, {
        value: item,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return object;
  }

  value(depth: number): unknown {
    if (depth > 512) throw new RangeError("Cannot decode MessagePack: value nested too deeply");
    const code = this.#u8();
    if (code < 0x80) return code;
    if (code >= 0xe0) return code - 0x100;
    if (code >= 0xa0 && code <= 0xbf) return this.#str(code & 0x1f);
    if (code >= 0x90 && code <= 0x9f) return this.#array(code & 0x0f, depth);
    if (code >= 0x80 && code <= 0x8f) return this.#map(code & 0x0f, depth);
    switch (code) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return this.#bin(this.#u8());
      case 0xc5:
        return this.#bin(this.#u16());
      case 0xc6:
        return this.#bin(this.#u32());
      case 0xca:
        return this.#view.getFloat32(this.#need(4));
      case 0xcb:
        return this.#view.getFloat64(this.#need(8));
      case 0xcc:
        return this.#u8();
      case 0xcd:
        return this.#u16();
      case 0xce:
        return this.#u32();
      case 0xcf:
        return this.#big(this.#view.getBigUint64(this.#need(8)));
      case 0xd0:
        return this.#view.getInt8(this.#need(1));
      case 0xd1:
        return this.#view.getInt16(this.#need(2));
      case 0xd2:
        return this.#view.getInt32(this.#need(4));
      case 0xd3:
        return this.#big(this.#view.getBigInt64(this.#need(8)));
      case 0xd9:
        return this.#str(this.#u8());
      case 0xda:
        return this.#str(this.#u16());
      case 0xdb:
        return this.#str(this.#u32());
      case 0xdc:
        return this.#array(this.#u16(), depth);
      case 0xdd:
        return this.#array(this.#u32(), depth);
      case 0xde:
        return this.#map(this.#u16(), depth);
      case 0xdf:
        return this.#map(this.#u32(), depth);
    }
    throw new RangeError(
      `Cannot decode MessagePack: unsupported type byte 0x${code.toString(16).padStart(2, "0")}`,
    );
  }
}
