import { deepStrictEqual as deepEqual, equal, ok } from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { encodeGameDataEnvelope, msgpackToJson } from "./msgpack.ts";

const bytes = (...values: number[]) => new Uint8Array(values);
const utf8 = new TextEncoder();

/** A str 8 holding `content`. */
const str8 = (content: Uint8Array) => new Uint8Array([0xd9, content.length, ...content]);

/** What docs/spec/PROTOCOL.md §7.7 says a JSON recipient gets for a string of these bytes. */
function expectedString(content: Uint8Array): string | undefined {
  try {
    return JSON.stringify(
      new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(content),
    );
  } catch {
    return undefined;
  }
}

Deno.test("msgpackToJson() converts every scalar type (docs/spec/PROTOCOL.md §7.7)", () => {
  const cases: [Uint8Array, string][] = [
    [bytes(0xc0), "null"],
    [bytes(0xc2), "false"],
    [bytes(0xc3), "true"],
    [bytes(0x00), "0"],
    [bytes(0x7f), "127"],
    [bytes(0xe0), "-32"],
    [bytes(0xff), "-1"],
    [bytes(0xcc, 0xff), "255"],
    [bytes(0xcd, 0xff, 0xff), "65535"],
    [bytes(0xce, 0xff, 0xff, 0xff, 0xff), "4294967295"],
    // Integers beyond ±2^53 are written exactly.
    [bytes(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), "18446744073709551615"],
    [bytes(0xcf, 0, 0x20, 0, 0, 0, 0, 0, 1), "9007199254740993"],
    [bytes(0xd0, 0x80), "-128"],
    [bytes(0xd1, 0x80, 0x00), "-32768"],
    [bytes(0xd2, 0x80, 0, 0, 0), "-2147483648"],
    [bytes(0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0), "-9223372036854775808"],
    [bytes(0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe), "-2"],
    // float32 widens to a double; NaN and the infinities have no JSON form.
    [bytes(0xca, 0x3d, 0xcc, 0xcc, 0xcd), "0.10000000149011612"],
    [bytes(0xca, 0x7f, 0x80, 0, 0), "null"],
    [bytes(0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a), "0.1"],
    [bytes(0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0), "null"],
    [bytes(0xcb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0), "null"],
    [bytes(0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0), "0"],
    [bytes(0xcb, 0x44, 0x4b, 0x1a, 0xe4, 0xd6, 0xe2, 0xef, 0x50), "1e+21"],
    [bytes(0xa0), '""'],
    [bytes(0xa3, 0x61, 0x62, 0x63), '"abc"'],
    [bytes(0xda, 0, 2, 0x68, 0x69), '"hi"'],
    [bytes(0xdb, 0, 0, 0, 2, 0x68, 0x69), '"hi"'],
  ];
  for (const [payload, json] of cases) equal(msgpackToJson(payload), json, `${payload}`);
});

Deno.test("msgpackToJson() escapes strings as JSON.stringify does and keeps every character", () => {
  for (
    const text of [
      'say "hi"\\',
      "tab\tnew\nline\r\u0000\u0001\u001f\u007f",
      "é ü 中文 🎮 \u2028\u2029",
      "\ufeffstarts with a byte-order mark",
      "x".repeat(64),
      "x".repeat(65),
      "é".repeat(40),
      '"'.repeat(300),
    ]
  ) {
    equal(msgpackToJson(encode(text)), JSON.stringify(text), text.slice(0, 20));
  }
});

Deno.test("msgpackToJson() decodes UTF-8 strictly, short and long strings alike, as TextDecoder does", () => {
  const candidates: Uint8Array[] = [];
  for (let a = 0; a < 256; a++) {
    candidates.push(bytes(a));
    for (let b = 0; b < 256; b++) candidates.push(bytes(a, b));
  }
  const edges = [0x7f, 0x80, 0xbf, 0xc0];
  for (let lead = 0xe0; lead <= 0xf7; lead++) {
    for (let b = 0; b < 256; b++) {
      for (const c of edges) {
        candidates.push(bytes(lead, b, c));
        for (const d of edges) candidates.push(bytes(lead, b, c, d));
      }
    }
  }
  // Every sequence alone (decoded by msgpackToJson itself); every 7th also after 64 bytes of
  // ASCII (by TextDecoder). Both must accept and refuse exactly what TextDecoder does.
  const pad = utf8.encode("p".repeat(64));
  let accepted = 0;
  for (const [i, content] of candidates.entries()) {
    const expected = expectedString(content);
    if (expected !== undefined) accepted++;
    equal(msgpackToJson(str8(content)), expected, `${[...content]}`);
    if (i % 7 !== 0) continue;
    const padded = new Uint8Array([...pad, ...content]);
    equal(msgpackToJson(str8(padded)), expectedString(padded), `padded ${[...content]}`);
  }
  // The refusals are not all there is: every valid one- and two-byte form is among them.
  ok(accepted > 128 + 1920, `${accepted} accepted`);
});

Deno.test("msgpackToJson() converts arrays and maps, keeping map entries in the sender's order", () => {
  equal(msgpackToJson(bytes(0x90)), "[]");
  equal(msgpackToJson(bytes(0x80)), "{}");
  equal(msgpackToJson(bytes(0x93, 0x01, 0x90, 0x80)), "[1,[],{}]");
  equal(msgpackToJson(bytes(0xdc, 0, 2, 0xc3, 0xc2)), "[true,false]");
  equal(msgpackToJson(bytes(0xdd, 0, 0, 0, 1, 0xc0)), "[null]");
  equal(msgpackToJson(bytes(0xde, 0, 1, 0xa1, 0x6b, 0x90)), '{"k":[]}');
  equal(msgpackToJson(bytes(0xdf, 0, 0, 0, 1, 0xa1, 0x6b, 0x80)), '{"k":{}}');
  equal(
    msgpackToJson(encode({ b: 1, "2": [{ x: null }, "s"], a: { c: {} } })),
    '{"2":[{"x":null},"s"],"b":1,"a":{"c":{}}}',
  );
  // Wire order, not JavaScript's property order (integer-like keys first).
  equal(msgpackToJson(bytes(0x82, 0xa1, 0x62, 0x01, 0xa1, 0x32, 0x02)), '{"b":1,"2":2}');
  // Keys in every string form, escaped like values.
  equal(
    msgpackToJson(bytes(0x83, 0xd9, 1, 0x61, 1, 0xda, 0, 1, 0x22, 2, 0xdb, 0, 0, 0, 0, 3)),
    '{"a":1,"\\"":2,"":3}',
  );
});

Deno.test("msgpackToJson() passes a key named __proto__ and a key sent twice through as sent", () => {
  const proto = bytes(0x81, 0xa9, ...utf8.encode("__proto__"), 0x81, 0xa1, 0x78, 0x01);
  equal(msgpackToJson(proto), '{"__proto__":{"x":1}}');
  deepEqual(Object.keys(JSON.parse(msgpackToJson(proto)!)), ["__proto__"]);
  // A JSON sender's duplicate keys reach JSON recipients unchanged (§7.6); so do these.
  const twice = bytes(0x82, 0xa1, 0x61, 0x01, 0xa1, 0x61, 0x02);
  equal(msgpackToJson(twice), '{"a":1,"a":2}');
  deepEqual(JSON.parse(msgpackToJson(twice)!), { a: 2 });
});

Deno.test("msgpackToJson() converts nesting of any depth without recursion", () => {
  for (const depth of [1, 1000, 65_000, 200_000]) {
    const payload = new Uint8Array(depth + 1).fill(0x91);
    payload[depth] = 0x2a;
    const json = msgpackToJson(payload);
    equal(json, "[".repeat(depth) + "42" + "]".repeat(depth), `depth ${depth}`);
  }
  const maps = new Uint8Array(3 * 50_000 + 1);
  for (let i = 0; i < 50_000; i++) maps.set([0x81, 0xa1, 0x6b], i * 3);
  maps[maps.length - 1] = 0xc3;
  equal(msgpackToJson(maps), '{"k":'.repeat(50_000) + "true" + "}".repeat(50_000));
});

Deno.test("msgpackToJson() gives nothing for what JSON cannot carry or what is not one valid value", () => {
  const refused: [string, Uint8Array][] = [
    ["empty payload", bytes()],
    ["0xc1, never used", bytes(0xc1)],
    ["bin 8", bytes(0xc4, 1, 0)],
    ["bin 16", bytes(0xc5, 0, 1, 0)],
    ["bin 32", bytes(0xc6, 0, 0, 0, 1, 0)],
    ["ext 8", bytes(0xc7, 1, 5, 0)],
    ["ext 16", bytes(0xc8, 0, 1, 5, 0)],
    ["ext 32", bytes(0xc9, 0, 0, 0, 1, 5, 0)],
    ["fixext 1", bytes(0xd4, 5, 0)],
    ["fixext 2", bytes(0xd5, 5, 0, 0)],
    ["fixext 4", bytes(0xd6, 5, 0, 0, 0, 0)],
    ["fixext 8", bytes(0xd7, 5, 0, 0, 0, 0, 0, 0, 0, 0)],
    ["fixext 16", bytes(0xd8, 5, ...new Array(16).fill(0))],
    ["timestamp ext", encode(new Date(0))],
    ["bin deep inside", bytes(0x91, 0x81, 0xa1, 0x6b, 0x92, 0x01, 0xc4, 0)],
    ["integer key", bytes(0x81, 0x01, 0x02)],
    ["nil key", bytes(0x81, 0xc0, 0x02)],
    ["array key", bytes(0x81, 0x90, 0x02)],
    ["map key", bytes(0x81, 0x80, 0x02)],
    ["bin key", bytes(0x81, 0xc4, 0, 0x02)],
    ["second key an integer", bytes(0x82, 0xa1, 0x61, 0x01, 0x05, 0x02)],
    ["invalid UTF-8 in a value", bytes(0xa2, 0xc0, 0xaf)],
    ["invalid UTF-8 in a key", bytes(0x81, 0xa1, 0xff, 0x01)],
    [
      "a surrogate in a long string",
      str8(new Uint8Array([...utf8.encode("a".repeat(70)), 0xed, 0xa0, 0x80])),
    ],
    ["two values", bytes(0x01, 0x02)],
    ["a value and a stray byte", bytes(0x91, 0x01, 0xc0)],
    ["array longer than the payload", bytes(0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0)],
    ["map longer than the payload", bytes(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61, 0xc0)],
    ["string longer than the payload", bytes(0xdb, 0xff, 0xff, 0xff, 0xff, 0x61)],
    ["map missing its last value", bytes(0x81, 0xa1, 0x61)],
  ];
  for (const [label, payload] of refused) equal(msgpackToJson(payload), undefined, label);
  // Every proper prefix of a valid value is incomplete.
  const whole = encode({
    s: "héllo",
    n: [1, -200, 70000, 2n ** 40n, 1.5],
    m: { t: true, z: null },
  }, { useBigInt64: true });
  for (let length = 0; length < whole.length; length++) {
    equal(msgpackToJson(whole.subarray(0, length)), undefined, `prefix of ${length} bytes`);
  }
  ok(msgpackToJson(whole) !== undefined);
});

/** A small deterministic generator (mulberry32), so a failure names the seed that shows it. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random game-like value: no `bin`/`ext`, string keys that start with a letter, no BOM. */
function randomValue(next: () => number, depth: number): unknown {
  const pick = Math.floor(next() * (depth > 4 ? 7 : 9));
  const int = (bits: number) => Math.floor((next() - 0.5) * 2 ** bits);
  switch (pick) {
    case 0:
      return null;
    case 1:
      return next() < 0.5;
    case 2:
      return int([6, 8, 16, 32, 53][Math.floor(next() * 5)]!);
    case 3:
      return (next() - 0.5) * 10 ** Math.floor(next() * 40 - 20);
    case 4:
      return BigInt(int(32)) * 2n ** 31n + BigInt(int(31));
    case 5:
    case 6: {
      const alphabet = ["a", "Z", "0", " ", '"', "\\", "\n", "\u0001", "é", "中", "🎮", "\u2028"];
      const length = Math.floor(next() ** 3 * 300);
      let text = "";
      for (let i = 0; i < length; i++) text += alphabet[Math.floor(next() * alphabet.length)];
      return text;
    }
    case 7:
      return Array.from({ length: Math.floor(next() * 6) }, () => randomValue(next, depth + 1));
    default: {
      const entries = Array.from(
        { length: Math.floor(next() * 6) },
        (_, i) => [`k${i}${"é".repeat(Math.floor(next() * 3))}`, randomValue(next, depth + 1)],
      );
      return Object.fromEntries(entries);
    }
  }
}

/** The JSON `JSON.stringify` writes for a decoded value, integers beyond 2^53 exactly. */
function stringify(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, item) =>
      typeof item === "bigint"
        ? (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON(item.toString())
        : item,
  );
}

Deno.test("msgpackToJson() writes what JSON.stringify writes for the value npm:@msgpack/msgpack decodes", () => {
  for (let seed = 1; seed <= 400; seed++) {
    const next = random(seed);
    const value = randomValue(next, 0);
    const float32 = next() < 0.3;
    const payload = encode(value, { useBigInt64: true, forceFloat32: float32 });
    const expected = stringify(decode(payload, { useBigInt64: true }));
    equal(msgpackToJson(payload), expected, `seed ${seed}`);
  }
});

Deno.test("msgpackToJson() on damaged payloads: refuses what the library refuses, or converts to the same value", () => {
  let converted = 0;
  for (let seed = 1; seed <= 1500; seed++) {
    const next = random(seed);
    const payload = encode(randomValue(next, 0), { useBigInt64: true });
    for (let flips = 1 + Math.floor(next() * 3); flips > 0; flips--) {
      payload[Math.floor(next() * payload.length)] = Math.floor(next() * 256);
    }
    let reference: string | undefined;
    try {
      // The library's decode is lenient with UTF-8 and accepts non-string keys: check both here.
      const value = decode(payload, {
        useBigInt64: true,
        keyDecoder: strictKeys,
        mapKeyConverter: (key) => {
          if (typeof key !== "string") throw new TypeError("not a string key");
          return key;
        },
      });
      const strings = decode(payload, { rawStrings: true, useBigInt64: true });
      reference = hasBinary(value) || !strictStrings(strings) ? undefined : stringify(value);
    } catch {
      reference = undefined;
    }
    const json = msgpackToJson(payload);
    equal(json === undefined, reference === undefined, `seed ${seed}: ${json} / ${reference}`);
    if (json !== undefined) {
      // Key order and repeated keys may differ from the library's object; the value may not.
      deepEqual(JSON.parse(json), JSON.parse(reference!), `seed ${seed}`);
      converted++;
    }
  }
  ok(converted > 100, `only ${converted} damaged payloads still converted`);
});

/** Map keys decoded strictly: invalid UTF-8 throws. */
const strictKeys = {
  canBeCached: () => true,
  decode: (raw: Uint8Array, offset: number, length: number) =>
    new TextDecoder("utf-8", { fatal: true }).decode(raw.subarray(offset, offset + length)),
};

function hasBinary(value: unknown): boolean {
  if (value instanceof Uint8Array || value instanceof Date) return true;
  if (value === null || typeof value !== "object") return false;
  return Object.values(value).some(hasBinary);
}

/** Whether every string (and key) of a `rawStrings` decode is valid UTF-8. */
function strictStrings(value: unknown): boolean {
  const strict = new TextDecoder("utf-8", { fatal: true });
  const valid = (raw: Uint8Array) => {
    try {
      strict.decode(raw);
      return true;
    } catch {
      return false;
    }
  };
  if (value instanceof Uint8Array) return valid(value);
  if (value === null || typeof value !== "object") return true;
  return Object.values(value).every(strictStrings);
}

Deno.test("encodeGameDataEnvelope() writes from_player, encoding and payload in that order (docs/spec/PROTOCOL.md §7.7)", () => {
  const payload = bytes(0x81, 0xa1, 0x61, 0x01);
  const envelope = encodeGameDataEnvelope("3f2b8c1e-9a47-4d0b-8e21-6c5f0a9d7b34", payload);
  deepEqual(
    [...envelope.subarray(0, 13)],
    [0x83, 0xab, ...utf8.encode("from_player")],
  );
  const decoded = decode(envelope) as Record<string, unknown>;
  deepEqual(Object.keys(decoded), ["from_player", "encoding", "payload"]);
  deepEqual(
    decoded.from_player,
    bytes(
      0x3f,
      0x2b,
      0x8c,
      0x1e,
      0x9a,
      0x47,
      0x4d,
      0x0b,
      0x8e,
      0x21,
      0x6c,
      0x5f,
      0x0a,
      0x9d,
      0x7b,
      0x34,
    ),
  );
  equal(decoded.encoding, "message_pack");
  deepEqual(decoded.payload, payload);
});
