import assert from "node:assert/strict";
import { isJsonValue } from "./json_scan.ts";
import { prng } from "../engine/testing.ts";

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

Deno.test("isJsonValue() agrees with JSON.parse on hand-picked edge cases", () => {
  const cases = [
    "",
    " ",
    "0",
    "-0",
    "01",
    "-",
    "1.",
    ".5",
    "1.5e",
    "1e+",
    "1E-7",
    "1e07",
    "-12.50e+3",
    "+1",
    "0x10",
    "Infinity",
    "NaN",
    "true",
    "tru",
    "truee",
    "false",
    "null",
    "nul",
    "True",
    '""',
    '"',
    '"abc',
    '"a\\"b"',
    '"\\u00e9\\uD83D\\uDE00"',
    '"\\u12"',
    '"\\u12G4"',
    '"\\x41"',
    '"\\/\\b\\f\\n\\r\\t\\\\"',
    '"tab\there"',
    '"new\nline"',
    '"\u007f\u2028é😀"',
    "[]",
    "[ ]",
    "[,]",
    "[1,]",
    "[1 2]",
    "[1,2]",
    "[[[[]]]]",
    "[[[[]]]",
    "{}",
    "{ }",
    '{"a":1}',
    '{"a" : 1 , "b" : [ ] }',
    '{"a":1,}',
    '{"a"}',
    '{"a":}',
    "{a:1}",
    "{'a':1}",
    '{"a":1 "b":2}',
    '{"a":{"b":{"c":[1,{"d":null}]}}}',
    '{"a":[}',
    "[}",
    "{]",
    " \t\r\n 1 \t\r\n ",
    "\u00a01",
    "1 1",
    '{"a":1}}',
    '1},"x":{"y":2',
    '{"bk":0,"bh":1,"bq":2,"bt":123.456,"bp":"xxxx"}',
  ];
  for (const text of cases) {
    assert.equal(isJsonValue(text, 0, text.length), parses(text), JSON.stringify(text));
  }
});

Deno.test("isJsonValue() judges only the slice between start and end", () => {
  const text = 'xx{"a":[1,2]}yy';
  assert.equal(isJsonValue(text, 2, 13), true);
  assert.equal(isJsonValue(text, 2, 12), false); // `{"a":[1,2]` is cut short
  assert.equal(isJsonValue(text, 1, 13), false);
  assert.equal(isJsonValue("truex", 0, 4), true);
  assert.equal(isJsonValue("tru", 0, 3), false);
  assert.equal(isJsonValue('"\\u00411"', 0, 6), false); // the escape runs past the end
  assert.equal(isJsonValue("123", 0, 2), true);
  assert.equal(isJsonValue("1.5", 0, 2), false);
});

Deno.test("isJsonValue() accepts nesting far deeper than its initial stack", () => {
  for (const depth of [255, 256, 257, 5000]) {
    const text = "[".repeat(depth) + '{"k":' + "[".repeat(depth) + "0" + "]".repeat(depth) +
      "}" + "]".repeat(depth);
    assert.equal(isJsonValue(text, 0, text.length), true, `depth ${depth}`);
    assert.equal(isJsonValue(text, 0, text.length - 1), false, `depth ${depth}, cut`);
  }
});

/** A random JSON value as text, with random whitespace, escapes and number spellings. */
function randomJson(random: () => number, depth: number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const ws = () => (random() < 0.8 ? "" : pick([" ", "\n", "\t", "\r", "  "]));
  const kind = depth > 4 ? Math.floor(random() * 4) : Math.floor(random() * 6);
  switch (kind) {
    case 0:
      return pick(["true", "false", "null"]);
    case 1: {
      const sign = random() < 0.3 ? "-" : "";
      const int = random() < 0.2 ? "0" : String(1 + Math.floor(random() * 99999));
      const frac = random() < 0.3 ? "." + String(Math.floor(random() * 1000)) : "";
      const exp = random() < 0.2
        ? pick(["e", "E"]) + pick(["", "+", "-"]) + String(Math.floor(random() * 30))
        : "";
      return sign + int + frac + exp;
    }
    case 2:
    case 3: {
      let s = '"';
      const length = Math.floor(random() * 8);
      for (let k = 0; k < length; k++) {
        s += pick([
          "a",
          "Z",
          " ",
          "é",
          "😀",
          "\u2028",
          '\\"',
          "\\\\",
          "\\/",
          "\\n",
          "\\u00e9",
          "\\uD83D",
          "\\t",
        ]);
      }
      return s + '"';
    }
    case 4: {
      const items = Array.from(
        { length: Math.floor(random() * 4) },
        () => ws() + randomJson(random, depth + 1) + ws(),
      );
      return "[" + ws() + items.join(",") + "]";
    }
    default: {
      const members = Array.from(
        { length: Math.floor(random() * 4) },
        () =>
          ws() + randomJson(random, 5).replace(/^[^"]*$/, '"k"') + ws() + ":" + ws() +
          randomJson(random, depth + 1) + ws(),
      );
      return "{" + ws() + members.join(",") + "}";
    }
  }
}

const MUTATION_CHARS = [
  "{",
  "}",
  "[",
  "]",
  ",",
  ":",
  '"',
  "\\",
  " ",
  "\n",
  "\u0001",
  "\u001f",
  "0",
  "1",
  "9",
  "-",
  "+",
  ".",
  "e",
  "E",
  "t",
  "u",
  "n",
  "x",
  "é",
  "\u00a0",
];

Deno.test("isJsonValue() agrees with JSON.parse on 60,000 seeded random and mutated values", () => {
  const random = prng(20261121);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  let valid = 0;
  for (let n = 0; n < 60_000; n++) {
    let text = randomJson(random, 0);
    const mutations = n % 3 === 0 ? 0 : 1 + Math.floor(random() * 3);
    for (let m = 0; m < mutations; m++) {
      const at = Math.floor(random() * (text.length + 1));
      switch (Math.floor(random() * 4)) {
        case 0:
          text = text.slice(0, at) + text.slice(at + 1);
          break;
        case 1:
          text = text.slice(0, at) + pick(MUTATION_CHARS) + text.slice(at);
          break;
        case 2:
          text = text.slice(0, at) + pick(MUTATION_CHARS) + text.slice(at + 1);
          break;
        default:
          text = text.slice(0, at);
      }
    }
    const expected = parses(text);
    if (expected) valid++;
    assert.equal(isJsonValue(text, 0, text.length), expected, JSON.stringify(text));
    // The same text inside a larger frame, judged by its bounds.
    const framed = `{"data":${text}}}`;
    assert.equal(isJsonValue(framed, 8, 8 + text.length), expected, JSON.stringify(framed));
  }
  // Both verdicts are well represented, so the agreement means something.
  assert.ok(valid > 20_000 && valid < 50_000, `valid ${valid}`);
});
