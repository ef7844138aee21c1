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

class JsonReader {
  #at = 0;
  constructor(readonly text: string) {}

  document(): Json {
    const value = this.value();
    this.#space();
    if (this.#at !== this.text.length) throw new SyntaxError("Unexpected text after JSON");
    return value;
  }

  value(): Json {
    this.#space();
    const c = this.text[this.#at];
    if (c === "{") return this.#object();
    if (c === "[") return this.#array();
    if (c === '"') return { kind: "string", text: this.#string() };
    const literal = /^(?:true|false|null)/.exec(this.text.slice(this.#at, this.#at + 5));
    if (literal) {
      this.#at += literal[0].length;
      return { kind: "literal", text: literal[0] };
    }
    const number = /^-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.text.slice(this.#at));
    if (!number) throw new SyntaxError(`Unexpected character at ${this.#at}`);
    this.#at += number[0].length;
    return { kind: "number", text: number[0], integer: !number[1] && !number[2] };
  }

  #space(): void {
    while (/[ \t\n\r]/.test(this.text[this.#at] ?? "")) this.#at++;
  }

  #expect(c: string): void {
    this.#space();
    if (this.text[this.#at] !== c) throw new SyntaxError(`Expected "${c}" at ${this.#at}`);
    this.#at++;
  }

  #string(): string {
    // deno-lint-ignore no-control-regex -- JSON forbids raw control characters in strings
    const match = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/.exec(
      this.text.slice(this.#at),
    );
    if (!match) throw new SyntaxError(`Invalid string at ${this.#at}`);
    this.#at += match[0].length;
    return JSON.parse(match[0]);
  }

  #object(): Json {
    this.#expect("{");
    const members = new Map<string, Json>();
    this.#space();
    if (this.text[this.#at] === "}") {
      this.#at++;
      return { kind: "object", members };
    }
    for (;;) {
      this.#space();
      const key = this.#string();
      this.#expect(":");
      members.set(key, this.value()); // a repeated key: the last one wins
      this.#space();
      if (this.text[this.#at] === "}") {
        this.#at++;
        return { kind: "object", members };
      }
      this.#expect(",");
    }
  }

  #array(): Json {
    this.#expect("[");
    const items: Json[] = [];
    this.#space();
    if (this.text[this.#at] === "]") {
      this.#at++;
      return { kind: "array", items };
    }
    for (;;) {
      items.push(this.value());
      this.#space();
      if (this.text[this.#at] === "]") {
        this.#at++;
        return { kind: "array", items };
      }
      this.#expect(",");
    }
  }
}

const encoder = new TextEncoder();

function compareUtf8(a: string, b: string): number {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! - y[i]!;
  }
  return x.length - y.length;
}

function canonicalNumber(number: { text: string; integer: boolean }): string {
  if (number.integer) return BigInt(number.text).toString();
  const value = Number(number.text);
  if (!Number.isFinite(value)) throw new RangeError(`Number out of range: ${number.text}`);
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
    case "array":
      return `[${value.items.map(write).join(",")}]`;
    case "object": {
      const keys = [...value.members.keys()].sort(compareUtf8);
      return `{${keys.map((key) => `${JSON.stringify(key)}:${write(value.members.get(key)!)}`)}}`;
    }
  }
}

/**
 * Canonical JSON of docs/spec/SERVER.md §3.9 step 4: compact, object keys sorted by UTF-8 bytes at every
 * level, integers as integers, floats in shortest round-trip form keeping `.0` (`1.0`, `1e21`),
 * strings minimally escaped (non-ASCII raw, `/` unescaped). Throws SyntaxError on invalid JSON.
 * Float spelling follows JavaScript's shortest form, whose exponent thresholds may differ from
 * upstream's (docs/spec/SERVER.md §10 item 15).
 */
export function canonicalJson(text: string): string {
  return write(new JsonReader(text).document());
}

/** Why a proof was refused: the `Error` message and whether the connection closes (1008). */
export type ProofResult =
  /** `text` is the frame without its proof, in canonical form, for the client-message parser. */
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
  let parsed: Json;
  try {
    parsed = new JsonReader(frame).document();
  } catch {
    return refuse("Invalid client message", false);
  }
  if (parsed.kind !== "object") {
    return { ok: false, message: "Malformed client message", code: "INVALID_INPUT", close: true };
  }
  const proofNode = parsed.members.get("token_binding");
  if (proofNode === undefined) return refuse("Token binding proof missing");
  parsed.members.delete("token_binding");
  let proof: { scheme?: unknown; signature?: unknown; fingerprint?: unknown };
  try {
    proof = JSON.parse(write(proofNode));
  } catch {
    return refuse("Invalid token binding proof");
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
  const payload = write(parsed) + (fingerprint ?? "");
  const expected = createHmac("sha256", secret).update(payload, "utf8").digest();
  const signature = proof.signature;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(signature) || signature.length % 4 !== 0) {
    return refuse("Invalid token binding signature");
  }
  const given = Uint8Array.from(atob(signature), (c) => c.charCodeAt(0));
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return refuse("Invalid token binding signature");
  }
  return { ok: true, text: write(parsed) };
}
