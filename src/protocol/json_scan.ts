/**
 * A JSON validator for the relay hot path (issue 5): decides whether part of a string is exactly
 * one JSON value (RFC 8259, the grammar `JSON.parse` accepts) without building it. Relaying a
 * game payload needs only its validity, not its value; `JSON.parse` of a typical 100-byte
 * payload was a third of the server's JavaScript per relayed frame, most of it spent creating
 * objects that were thrown away at once.
 *
 * No allocation per call: nesting is tracked on a shared stack that grows only when a value
 * nests deeper than any before.
 *
 * @module
 */

const enum C {
  Tab = 0x09,
  Newline = 0x0a,
  Return = 0x0d,
  Space = 0x20,
  Quote = 0x22,
  Plus = 0x2b,
  Comma = 0x2c,
  Minus = 0x2d,
  Dot = 0x2e,
  Slash = 0x2f,
  Zero = 0x30,
  One = 0x31,
  Nine = 0x39,
  Colon = 0x3a,
  UpperA = 0x41,
  UpperE = 0x45,
  UpperF = 0x46,
  OpenBracket = 0x5b,
  Backslash = 0x5c,
  CloseBracket = 0x5d,
  LowerA = 0x61,
  LowerB = 0x62,
  LowerE = 0x65,
  LowerF = 0x66,
  LowerN = 0x6e,
  LowerR = 0x72,
  LowerT = 0x74,
  LowerU = 0x75,
  OpenBrace = 0x7b,
  CloseBrace = 0x7d,
}

/** Closing characters of the containers open around the current value, innermost last. */
let stack = new Uint16Array(256);

/**
 * True when `text.slice(start, end)` is exactly one JSON value, optionally surrounded by JSON
 * whitespace — the same verdict as `JSON.parse` on that slice, without building the value.
 * `start` and `end` are UTF-16 indices with `0 <= start <= end <= text.length`. Never throws.
 */
export function isJsonValue(text: string, start: number, end: number): boolean {
  let i = start;
  let depth = 0;
  let c = 0;
  for (;;) {
    // A value starts after optional whitespace.
    while (i < end && isWhitespace(c = text.charCodeAt(i))) i++;
    if (i >= end) return false;
    if (c === C.Quote) {
      i = scanString(text, i, end);
    } else if (c === C.OpenBrace || c === C.OpenBracket) {
      const close = c === C.OpenBrace ? C.CloseBrace : C.CloseBracket;
      i++;
      while (i < end && isWhitespace(c = text.charCodeAt(i))) i++;
      if (i < end && c === close) {
        i++;
      } else {
        if (depth === stack.length) grow();
        stack[depth++] = close;
        if (close === C.CloseBrace) {
          i = scanMemberName(text, i, end);
          if (i < 0) return false;
        }
        continue;
      }
    } else if (c === C.Minus || (c >= C.Zero && c <= C.Nine)) {
      i = scanNumber(text, i, end);
    } else if (c === C.LowerT) {
      i = scanLiteral(text, i, end, "true");
    } else if (c === C.LowerF) {
      i = scanLiteral(text, i, end, "false");
    } else if (c === C.LowerN) {
      i = scanLiteral(text, i, end, "null");
    } else {
      return false;
    }
    if (i < 0) return false;
    // After a value: close containers until a comma asks for the next value.
    for (;;) {
      while (i < end && isWhitespace(c = text.charCodeAt(i))) i++;
      if (depth === 0) return i === end;
      if (i >= end) return false;
      const close = stack[depth - 1];
      if (c === C.Comma) {
        i++;
        if (close === C.CloseBrace) {
          while (i < end && isWhitespace(c = text.charCodeAt(i))) i++;
          i = scanMemberName(text, i, end);
          if (i < 0) return false;
        }
        break;
      }
      if (c !== close) return false;
      depth--;
      i++;
    }
  }
}

function grow(): void {
  const bigger = new Uint16Array(stack.length * 2);
  bigger.set(stack);
  stack = bigger;
}

function isWhitespace(c: number): boolean {
  return c === C.Space || c === C.Newline || c === C.Return || c === C.Tab;
}

/**
 * `"name"` `:` and the whitespace after it, from the opening quote at `i`; the index of the
 * member's value, or -1 when malformed.
 */
function scanMemberName(text: string, i: number, end: number): number {
  if (i >= end || text.charCodeAt(i) !== C.Quote) return -1;
  i = scanString(text, i, end);
  if (i < 0) return -1;
  let c = 0;
  while (i < end && isWhitespace(c = text.charCodeAt(i))) i++;
  return i < end && c === C.Colon ? i + 1 : -1;
}

/** A string from its opening quote at `i`: the index after the closing quote, or -1. */
function scanString(text: string, i: number, end: number): number {
  i++;
  while (i < end) {
    const c = text.charCodeAt(i);
    if (c === C.Quote) return i + 1;
    if (c === C.Backslash) {
      if (i + 1 >= end) return -1;
      const escaped = text.charCodeAt(i + 1);
      if (escaped === C.LowerU) {
        if (i + 6 > end) return -1;
        for (let k = i + 2; k < i + 6; k++) if (!isHexDigit(text.charCodeAt(k))) return -1;
        i += 6;
        continue;
      }
      if (
        escaped !== C.Quote && escaped !== C.Backslash && escaped !== C.Slash &&
        escaped !== C.LowerB && escaped !== C.LowerF && escaped !== C.LowerN &&
        escaped !== C.LowerR && escaped !== C.LowerT
      ) return -1;
      i += 2;
      continue;
    }
    if (c < C.Space) return -1;
    i++;
  }
  return -1;
}

function isHexDigit(c: number): boolean {
  return (c >= C.Zero && c <= C.Nine) || (c >= C.LowerA && c <= C.LowerF) ||
    (c >= C.UpperA && c <= C.UpperF);
}

function isDigit(c: number): boolean {
  return c >= C.Zero && c <= C.Nine;
}

/** `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` from `i`: the index after it, or -1. */
function scanNumber(text: string, i: number, end: number): number {
  if (text.charCodeAt(i) === C.Minus) i++;
  if (i >= end) return -1;
  let c = text.charCodeAt(i);
  if (c === C.Zero) {
    i++;
  } else if (c >= C.One && c <= C.Nine) {
    i++;
    while (i < end && isDigit(text.charCodeAt(i))) i++;
  } else {
    return -1;
  }
  if (i < end && text.charCodeAt(i) === C.Dot) {
    i++;
    if (i >= end || !isDigit(text.charCodeAt(i))) return -1;
    while (i < end && isDigit(text.charCodeAt(i))) i++;
  }
  if (i < end) {
    c = text.charCodeAt(i);
    if (c === C.LowerE || c === C.UpperE) {
      i++;
      if (i < end) {
        c = text.charCodeAt(i);
        if (c === C.Plus || c === C.Minus) i++;
      }
      if (i >= end || !isDigit(text.charCodeAt(i))) return -1;
      while (i < end && isDigit(text.charCodeAt(i))) i++;
    }
  }
  return i;
}

function scanLiteral(text: string, i: number, end: number, literal: string): number {
  const after = i + literal.length;
  return after <= end && text.startsWith(literal, i) ? after : -1;
}
