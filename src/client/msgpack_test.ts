import { deepEqual, equal, throws } from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { decodeMessagePack, encodeMessagePack } from "./msgpack.ts";

// Values covering every size class of every type the codec supports.
const VALUES: unknown[] = [
  null,
  true,
  false,
  0,
  1,
  127,
  128,
  255,
  256,
  65535,
  65536,
  2 ** 32 - 1,
  2 ** 32,
  Number.MAX_SAFE_INTEGER,
  -1,
  -32,
  -33,
  -128,
  -129,
  -32768,
  -32769,
  -(2 ** 31),
  -(2 ** 31) - 1,
  Number.MIN_SAFE_INTEGER,
  0.5,
  -12.5,
  1e300,
  "",
  "fish 🐟",
  "x".repeat(31),
  "x".repeat(32),
  "x".repeat(256),
  "x".repeat(70000),
  Uint8Array.of(),
  Uint8Array.of(1, 2, 3),
  new Uint8Array(300).fill(7),
  new Uint8Array(70000).fill(9),
  [],
  [1, "two", [3], { four: 4 }],
  Array.from({ length: 16 }, (_, i) => i),
  Array.from({ length: 70000 }, (_, i) => i % 3),
  {},
  { op: "steer", angle: -12.5, tick: 4411, nested: { ok: true, list: [null] } },
  Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i])),
];

Deno.test("encodeMessagePack() output decodes with @msgpack/msgpack to the same value", () => {
  for (const value of VALUES) deepEqual(decode(encodeMessagePack(value)), value);
});

Deno.test("decodeMessagePack() reads @msgpack/msgpack output back to the same value", () => {
  for (const value of VALUES) deepEqual(decodeMessagePack(encode(value)), value);
});

Deno.test("encodeMessagePack() picks the smallest form, like the reference encoder", () => {
  for (const value of VALUES) deepEqual(encodeMessagePack(value), encode(value), String(value));
});

Deno.test("MessagePack 64-bit integers beyond 2^53 round-trip as bigint", () => {
  for (const value of [2n ** 63n, 2n ** 64n - 1n, -(2n ** 63n), -(2n ** 60n)]) {
    equal(decodeMessagePack(encodeMessagePack(value)), value);
  }
  equal(decodeMessagePack(Uint8Array.of(0xca, 0x3f, 0xc0, 0, 0)), 1.5); // float32
});

Deno.test("decodeMessagePack() refuses truncated data, trailing bytes, ext types and bad UTF-8", () => {
  throws(() => decodeMessagePack(Uint8Array.of(0x92, 0x01)), RangeError);
  throws(() => decodeMessagePack(Uint8Array.of(0x01, 0x02)), RangeError);
  throws(() => decodeMessagePack(Uint8Array.of(0xd4, 0x01, 0x00)), RangeError);
  throws(() => decodeMessagePack(Uint8Array.of(0xa2, 0xc3, 0x28)), RangeError);
  throws(() => decodeMessagePack(Uint8Array.of()), RangeError);
  throws(() => encodeMessagePack(() => 1), TypeError);
});

Deno.test("decodeMessagePack() keeps a __proto__ key as data and non-string keys in a Map", () => {
  const decoded = decodeMessagePack(encode({ ["__proto__"]: { polluted: true } })) as object;
  equal(Object.getPrototypeOf(decoded), Object.prototype);
  deepEqual(Object.keys(decoded), ["__proto__"]);
  deepEqual(decodeMessagePack(Uint8Array.of(0x81, 0x01, 0x02)), new Map([[1, 2]]));
});
