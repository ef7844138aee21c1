/**
 * Token binding proofs (docs/spec/SERVER.md §3.9, docs/spec/PROTOCOL.md Appendix A): every text frame of a bound
 * connection carries `token_binding: { scheme, signature, fingerprint? }`, an HMAC-SHA256 over the
 * canonical JSON of the rest of the frame, keyed with the 16 bytes of the handshake's
 * `Sec-WebSocket-Key`. Pure functions: {@linkcode negotiateTokenBinding} runs at the upgrade
 * (docs/spec/SERVER.md §1.8 step 6), {@linkcode verifyProof} checks each frame in the hub.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { secretEquals } from "../util/secrets.ts";
import type { HeaderReader } from "../http/handover.ts";

/** What a bound connection needs to check its frames (docs/spec/SERVER.md §3.9). */
export interface TokenBinding {
  /** The 16-byte session secret ({@linkcode sessionSecret}). */
  secret: Uint8Array;
  /** `security.transport.token_binding.require_client_fingerprint`. */
  requireFingerprint: boolean;
  /** The client-certificate fingerprint a trusted proxy sent at the upgrade, if any. */
  handshakeFingerprint?: string;
}

/** The only scheme (`security.transport.token_binding.scheme`). */
export const TOKEN_BINDING_SCHEME = "sec_websocket_key_sha256";

/**
 * The session secret: base64-decoded `Sec-WebSocket-Key`, which must be exactly 16 bytes.
 * Undefined when the key is blank, not base64 or of another length ("invalid token binding
 * handshake", docs/spec/SERVER.md §1.8).
 */
export function sessionSecret(secWebSocketKey: string): Uint8Array | undefined {
  const key = secWebSocketKey.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(key) || key.length % 4 !== 0) return undefined;
  const bytes = Uint8Array.from(atob(key), (c) => c.charCodeAt(0));
  return bytes.length === 16 ? bytes : undefined;
}

/** Token-binding settings (`security.transport.token_binding.*`, docs/spec/PROTOCOL.md Appendix A). */
export interface TokenBindingOptions {
  /** Refuse upgrades that do not offer the subprotocol. */
  required: boolean;
  /** Require a client-certificate fingerprint from a trusted proxy, and in every proof. */
  requireClientFingerprint: boolean;
  /** The subprotocol name. @default "signalfish.tokenbinding.v1" */
  subprotocol: string;
}

/** Client-certificate fingerprint headers, in priority order (docs/spec/SERVER.md §1.8). */
const FINGERPRINT_HEADERS = [
  "x-signalfish-client-cert-sha256",
  "x-forwarded-client-cert-sha256",
  "x-amzn-mtls-clientcert",
];

/**
 * Token-binding negotiation of docs/spec/SERVER.md §1.8 step 6: a plain-text refusal (401 without a
 * required fingerprint, 400 without a required subprotocol or with a bad `Sec-WebSocket-Key`), or
 * the subprotocol to select and the binding to use (`undefined` = the connection proceeds unbound).
 * The subprotocol is looked for in every `Sec-WebSocket-Protocol` header, ignoring letter case,
 * and selected as the client spelled it.
 *
 * @param fromTrustedProxy whether the socket peer is a trusted proxy, whose fingerprint headers
 *   count (docs/spec/SERVER.md §1.9)
 */
export function negotiateTokenBinding(
  request: { readonly headers: HeaderReader },
  fromTrustedProxy: boolean,
  options: TokenBindingOptions,
): Response | { subprotocol: string; binding: TokenBinding } | undefined {
  let fingerprint: string | undefined;
  if (fromTrustedProxy) {
    for (const name of FINGERPRINT_HEADERS) {
      const value = request.headers.get(name)?.trim();
      if (value) {
        fingerprint = value;
        break;
      }
    }
  }
  if (options.requireClientFingerprint && fingerprint === undefined) {
    return new Response("client certificate fingerprint required", { status: 401 });
  }
  // Several headers are one list (RFC 6455 section 11.3.4): `get` joins them with ", " in order.
  const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",")
    .map((entry) => entry.trim())
    .find((entry) => entry.toLowerCase() === options.subprotocol.toLowerCase());
  if (offered === undefined) {
    if (options.required) {
      return new Response("token binding subprotocol required", { status: 400 });
    }
    return undefined;
  }
  const key = request.headers.get("sec-websocket-key");
  if (key === null) return new Response("Sec-WebSocket-Key header missing", { status: 400 });
  const secret = sessionSecret(key);
  if (!secret) return new Response("invalid token binding handshake", { status: 400 });
  return {
    // The client's own spelling (docs/spec/SERVER.md §1.8 note): a client fails a handshake whose
    // subprotocol it did not offer, compared exactly; the match above ignores letter case.
    subprotocol: offered,
    binding: {
      secret,
      requireFingerprint: options.requireClientFingerprint,
      handshakeFingerprint: fingerprint,
    },
  };
}

/** A parsed JSON value that remembers each number's spelling and kind. */
type Json =
  | { kind: "number"; text: string; integer: boolean }
  | { kind: "string" | "literal"; text: string }
  | { kind: "array"; items: Json[] }
  | { kind: "object"; members: Map<string, Json> };

/** Where one member of the top-level object sits in the frame: `start` its key's `"`, `end` past its value. */
interface MemberSpan {
  key: string;
  start: number;
  end: number;
}

/**
 * Deepest nesting of arrays and objects a bound frame may have (docs/spec/SERVER.md §3.9 note):
 * the reader and the canonical writer recurse once per level.
 */
export const MAX_BOUND_DEPTH = 1000;

/** A frame nested deeper than {@linkcode MAX_BOUND_DEPTH}. */
class TooDeep extends RangeError {}

// deno-lint-ignore no-control-regex -- JSON forbids raw control characters in strings
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;

/**
 * A JSON reader that keeps what canonical JSON needs (number spellings) and where the top-level
 * object's members are. One pass, linear in the frame: tokens are matched in place (sticky
 * expressions, no copies of the rest of the text), so a 64-KiB frame of many small tokens costs
 * about what `JSON.parse` of it does, not its square.
 */
class JsonReader {
  #at = 0;
  #depth = 0;
  /** The members of the top-level object, in text order (after {@linkcode JsonReader.document}). */
  readonly spans: MemberSpan[] = [];
  constructor(readonly text: string) {}

  document(): Json {
    const value = this.value();
    this.#space();
    if (this.#at !== this.text.length) throw new SyntaxError("Unexpected text after JSON");
    return value;
  }

  value(): Json {
    this.#space();
    const text = this.text;
    const at = this.#at;
    switch (text.charCodeAt(at)) {
      case 0x7b: // {
        return this.#object();
      case 0x5b: // [
        return this.#array();
      case 0x22: // "
        return { kind: "string", text: this.#string() };
      case 0x74: // t
        return this.#literal("true");
      case 0x66: // f
        return this.#literal("false");
      case 0x6e: // n
        return this.#literal("null");
    }
    return this.#number();
  }

  #literal(literal: "true" | "false" | "null"): Json {
    if (!this.text.startsWith(literal, this.#at)) {
      throw new SyntaxError(`Unexpected character at ${this.#at}`);
    }
    this.#at += literal.length;
    return { kind: "literal", text: literal };
  }

  /** `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`, scanned by hand (no match arrays). */
  #number(): Json {
    const text = this.text;
    const start = this.#at;
    let at = start;
    if (text.charCodeAt(at) === 0x2d /* - */) at++;
    const first = text.charCodeAt(at);
    if (first === 0x30 /* 0 */) at++;
    else if (first >= 0x31 && first <= 0x39) at = digits(text, at + 1);
    else throw new SyntaxError(`Unexpected character at ${start}`);
    let integer = true;
    if (text.charCodeAt(at) === 0x2e /* . */) {
      const end = digits(text, at + 1);
      if (end === at + 1) throw new SyntaxError(`Invalid number at ${start}`);
      at = end;
      integer = false;
    }
    const e = text.charCodeAt(at);
    if (e === 0x65 || e === 0x45 /* e E */) {
      let from = at + 1;
      const sign = text.charCodeAt(from);
      if (sign === 0x2b || sign === 0x2d) from++;
      const end = digits(text, from);
      if (end === from) throw new SyntaxError(`Invalid number at ${start}`);
      at = end;
      integer = false;
    }
    this.#at = at;
    return { kind: "number", text: text.slice(start, at), integer };
  }

  #space(): void {
    const text = this.text;
    let at = this.#at;
    for (;;) {
      const c = text.charCodeAt(at);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
      at++;
    }
    this.#at = at;
  }

  #expect(c: string): void {
    this.#space();
    if (this.text[this.#at] !== c) throw new SyntaxError(`Expected "${c}" at ${this.#at}`);
    this.#at++;
  }

  #string(): string {
    STRING.lastIndex = this.#at;
    const match = STRING.exec(this.text);
    if (!match) throw new SyntaxError(`Invalid string at ${this.#at}`);
    this.#at += match[0].length;
    const quoted = match[0];
    return quoted.includes("\\") ? JSON.parse(quoted) : quoted.slice(1, -1);
  }

  #enter(): void {
    if (++this.#depth > MAX_BOUND_DEPTH) throw new TooDeep();
  }

  #object(): Json {
    const top = this.#depth === 0;
    this.#enter();
    this.#expect("{");
    const members = new Map<string, Json>();
    this.#space();
    if (this.text[this.#at] === "}") {
      this.#at++;
      this.#depth--;
      return { kind: "object", members };
    }
    for (;;) {
      this.#space();
      const start = this.#at;
      const key = this.#string();
      this.#expect(":");
      members.set(key, this.value()); // a repeated key: the last one wins
      if (top) this.spans.push({ key, start, end: this.#at });
      this.#space();
      if (this.text[this.#at] === "}") {
        this.#at++;
        this.#depth--;
        return { kind: "object", members };
      }
      this.#expect(",");
    }
  }

  #array(): Json {
    this.#enter();
    this.#expect("[");
    const items: Json[] = [];
    this.#space();
    if (this.text[this.#at] === "]") {
      this.#at++;
      this.#depth--;
      return { kind: "array", items };
    }
    for (;;) {
      items.push(this.value());
      this.#space();
      if (this.text[this.#at] === "]") {
        this.#at++;
        this.#depth--;
        return { kind: "array", items };
      }
      this.#expect(",");
    }
  }
}

/** Where the run of ASCII digits from `at` ends. */
function digits(text: string, at: number): number {
  for (;;) {
    const c = text.charCodeAt(at);
    if (c < 0x30 || c > 0x39) return at;
    at++;
  }
}

/**
 * Orders two strings by their UTF-8 bytes, which is code point order: UTF-16 code units compare
 * the same way except that a surrogate (a code point above U+FFFF) must sort after U+E000–U+FFFF.
 */
function compareUtf8(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** A UTF-16 code unit's place in code point order (surrogates after U+E000–U+FFFF). */
function codePointRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}

/** A number whose canonical form does not exist (too large for a double: `1e400`). */
class OutOfRange extends RangeError {}

function canonicalNumber(number: { text: string; integer: boolean }): string {
  // An integer keeps its spelling (JSON has no leading zeros or `+`), minus a `-0`'s sign.
  if (number.integer) return number.text === "-0" ? "0" : number.text;
  const value = Number(number.text);
  if (!Number.isFinite(value)) throw new OutOfRange(number.text);
  if (Object.is(value, -0)) return "-0.0";
  const text = String(value).replace("e+", "e");
  return /[.e]/.test(text) ? text : `${text}.0`;
}

function write(value: Json): string {
  switch (value.kind) {
    case "number":
      return canonicalNumber(value);
    case "string":
      return JSON.stringify(value.text);
    case "literal":
      return value.text;
    case "array": {
      const items = value.items;
      let out = "[";
      for (let i = 0; i < items.length; i++) {
        out += i === 0 ? write(items[i]!) : `,${write(items[i]!)}`;
      }
      return `${out}]`;
    }
    case "object": {
      const members = value.members;
      const keys = [...members.keys()].sort(compareUtf8);
      let out = "{";
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!;
        out += `${i === 0 ? "" : ","}${JSON.stringify(key)}:${write(members.get(key)!)}`;
      }
      return `${out}}`;
    }
  }
}

/**
 * `frame` without the top-level member `spans[index]` and the comma that separated it from a
 * neighbour: the sender's own text otherwise (docs/spec/PROTOCOL.md §7.6 forwards it exactly).
 */
function withoutMember(frame: string, spans: readonly MemberSpan[], index: number): string {
  const span = spans[index]!;
  const next = spans[index + 1];
  if (next !== undefined) return frame.slice(0, span.start) + frame.slice(next.start);
  const previous = spans[index - 1];
  if (previous !== undefined) return frame.slice(0, previous.end) + frame.slice(span.end);
  return frame.slice(0, span.start) + frame.slice(span.end);
}

/**
 * Canonical JSON of docs/spec/SERVER.md §3.9 step 4: compact, object keys sorted by UTF-8 bytes at every
 * level, integers as integers, floats in shortest round-trip form keeping `.0` (`1.0`, `1e21`),
 * strings minimally escaped (non-ASCII raw, `/` unescaped). Throws SyntaxError on invalid JSON.
 * Float spelling follows JavaScript's shortest form, whose exponent thresholds may differ from
 * upstream's (docs/spec/SERVER.md §10 item 15). Throws RangeError for a number too large for a
 * double (`1e400`, which has no canonical form) or nesting deeper than
 * {@linkcode MAX_BOUND_DEPTH}.
 */
export function canonicalJson(text: string): string {
  return write(new JsonReader(text).document());
}

/** Why a proof was refused: the `Error` message and whether the connection closes (1008). */
export type ProofResult =
  /**
   * `text` is the frame without its `token_binding` member (the sender's text otherwise), for
   * the client-message parser.
   */
  | { ok: true; text: string }
  | { ok: false; message: string; code: "INVALID_INPUT" | "UNAUTHORIZED"; close: boolean };

const refuse = (message: string, close = true): ProofResult => ({
  ok: false,
  message,
  code: close ? "UNAUTHORIZED" : "INVALID_INPUT",
  close,
});

/**
 * Verifies one text frame of a bound connection (docs/spec/SERVER.md §3.9 steps 1–6) and returns the frame
 * without its `token_binding` member, ready for the client-message parser (step 7).
 *
 * @param secret the 16-byte session secret ({@linkcode sessionSecret})
 * @param handshakeFingerprint the client-certificate fingerprint from a trusted proxy, if any
 */
export function verifyProof(
  frame: string,
  secret: Uint8Array,
  options: { requireFingerprint: boolean; handshakeFingerprint?: string },
): ProofResult {
  const reader = new JsonReader(frame);
  let parsed: Json;
  try {
    parsed = reader.document();
  } catch (error) {
    return error instanceof TooDeep ? tooDeep() : refuse("Invalid client message", false);
  }
  if (parsed.kind !== "object") {
    return { ok: false, message: "Malformed client message", code: "INVALID_INPUT", close: true };
  }
  const proofNode = parsed.members.get("token_binding");
  if (proofNode === undefined) return refuse("Token binding proof missing");
  const proofAt = reader.spans.findIndex((span) => span.key === "token_binding");
  // Two proofs: which one the rest of the frame would be read with is not clear.
  if (reader.spans.findLastIndex((span) => span.key === "token_binding") !== proofAt) {
    return refuse("Invalid token binding proof");
  }
  parsed.members.delete("token_binding");
  let proof: { scheme?: unknown; signature?: unknown; fingerprint?: unknown };
  let canonical: string;
  try {
    proof = JSON.parse(write(proofNode));
    canonical = write(parsed);
  } catch (error) {
    // A number without a canonical form (`1e400`) in the frame or its proof.
    if (error instanceof OutOfRange) return refuse("Invalid client message", false);
    throw error;
  }
  if (
    typeof proof !== "object" || proof === null || Array.isArray(proof) ||
    proof.scheme !== TOKEN_BINDING_SCHEME || typeof proof.signature !== "string" ||
    (proof.fingerprint !== undefined && proof.fingerprint !== null &&
      typeof proof.fingerprint !== "string")
  ) {
    return refuse("Invalid token binding proof");
  }
  const fingerprint = typeof proof.fingerprint === "string" ? proof.fingerprint : undefined;
  if (options.requireFingerprint) {
    if (options.handshakeFingerprint === undefined) return refuse("Client fingerprint required");
    if (fingerprint === undefined || !secretEquals(fingerprint, options.handshakeFingerprint)) {
      return refuse("Client fingerprint mismatch");
    }
  }
  const expected = createHmac("sha256", secret).update(canonical + (fingerprint ?? ""), "utf8")
    .digest();
  const signature = proof.signature;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(signature) || signature.length % 4 !== 0) {
    return refuse("Invalid token binding signature");
  }
  const given = Uint8Array.from(atob(signature), (c) => c.charCodeAt(0));
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return refuse("Invalid token binding signature");
  }
  // The sender's own text without its proof: game data is relayed as sent (docs/spec/PROTOCOL.md §7.6).
  return { ok: true, text: withoutMember(frame, reader.spans, proofAt) };
}

/** The refusal of a frame nested deeper than {@linkcode MAX_BOUND_DEPTH} (kept open). */
function tooDeep(): ProofResult {
  return refuse(`Message nested too deeply (more than ${MAX_BOUND_DEPTH} levels)`, false);
}
