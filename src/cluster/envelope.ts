/**
 * Envelopes between nodes (docs/spec/SERVER.md §8.4.1): binary, versioned, internal. One
 * envelope (one publish, one `seq`) carries the bodies a node produced for one peer in one
 * event-loop turn, in order (docs/spec/SERVER.md §8.4.1 "This implementation"). Layout, integers
 * big-endian:
 *
 * ```text
 * header  u8 version (1) | str source node | u32 seq | u32 ack | u16 n
 *         then n bodies, each: u8 kind | …   (n = 0: a HEARTBEAT, seq = the last seq sent)
 * str     u32 byte length | UTF-8 bytes
 * frame   u8 0 + str (text frame) | u8 1 + u32 length + bytes (binary frame)
 * BIND    str conn | str ip | str app id ("" = none) | u8 format (0 json, 1 message_pack)
 *         | f64 deadline (Unix ms) | frame request
 * BINDX   (kind 10) a BIND of a connection that opted in to presence events, adopted a
 *         player id by `Reconnect`, or is sent to the home it is a member of: str conn | str ip
 *         | str app id | u8 format | u8 flags (bit 0: presence events; bit 1: member, sent
 *         to the home the edge holds the connection bound to) | str player id ("" = the
 *         connection id) | f64 deadline | frame request. Decoded as a BIND; written only when
 *         one of the three applies, so every other BIND stays readable by the previous release
 *         (which ignores bit 1).
 * MSG     str conn | frame
 * DATA    str conn | str V: the client frame `{"type":"GameData","data":{"data":V}}` (an untargeted
 *         GameData the edge has validated; the home needs no second decode)
 * CLOSED  str conn | u8 cause (0 closed, 1 switched, 2 abandoned) | u32 delivered
 * OUT     u32 items, each: u8 tag | …
 *           0 frame: frame | u32 n | n × str conn
 *           1 BOUND: str conn | u8 role (0 player, 1 spectator)
 *           2 UNBIND: str conn        3 MISS: str conn
 *           4 CLOSE: str conn | u16 code | str reason
 * BOUNCE  str conn | u32 seq of the MSG | frame
 * CONTROL / REPLY  u32 request id | str JSON
 * HEARTBEAT  nothing (as a body: a no-op)
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { ConnId } from "../engine/effects.ts";
import type { NodeId } from "./types.ts";

/** The format version written and accepted. */
export const ENVELOPE_VERSION = 1;

/** Envelope kinds. */
export const Kind = {
  BIND: 1,
  MSG: 2,
  CLOSED: 3,
  OUT: 4,
  BOUNCE: 5,
  CONTROL: 6,
  REPLY: 7,
  HEARTBEAT: 8,
  DATA: 9,
} as const;
/** The wire kind of a `BIND` with presence events or an adopted player id (decoded as a BIND). */
const BIND_EXTENDED = 10;
export type Kind = typeof Kind[keyof typeof Kind];

/** A client or output frame as it travels: text or bytes. */
export type Frame = string | Uint8Array;

/** Binding items and frame items of an `OUT` envelope. */
export type OutItem =
  | { tag: "frame"; frame: Frame; to: ConnId[] }
  | { tag: "bound"; conn: ConnId; role: "player" | "spectator" }
  | { tag: "unbind"; conn: ConnId }
  | { tag: "miss"; conn: ConnId }
  | { tag: "close"; conn: ConnId; code: number; reason: string };

/** The remote-session data a `BIND` carries once (docs/spec/SERVER.md §8.2 "Remote session"). */
export interface BindMeta {
  ip: string;
  appId?: string;
  format: "json" | "message_pack";
  /** Opted in to presence events at `Authenticate` (docs/spec/EXTENSIONS.md E10). */
  presence?: boolean;
  /**
   * The player id the connection adopted by a successful `Reconnect`, when it differs from the
   * connection id (docs/spec/PROTOCOL.md §1.2: the identity for the rest of the socket's life).
   */
  playerId?: string;
  /**
   * Sent to the home the edge holds the connection bound to, as that home's member's request
   * (docs/spec/SERVER.md §8.4.2): a `Reconnect` the home no longer has the connection for is
   * answered `MISS` unless the room it names is there (§8.4.4).
   */
  member?: boolean;
}

/** A decoded envelope. */
export type Envelope =
  & { source: NodeId; seq: number; ack: number }
  & (
    | { kind: typeof Kind.BIND; conn: ConnId; meta: BindMeta; deadline: number; frame: Frame }
    | { kind: typeof Kind.MSG; conn: ConnId; frame: Frame }
    | { kind: typeof Kind.DATA; conn: ConnId; value: string }
    | {
      kind: typeof Kind.CLOSED;
      conn: ConnId;
      cause: "closed" | "switched" | "abandoned";
      delivered: number;
    }
    | { kind: typeof Kind.OUT; items: OutItem[] }
    | { kind: typeof Kind.BOUNCE; conn: ConnId; msgSeq: number; frame: Frame }
    | { kind: typeof Kind.CONTROL | typeof Kind.REPLY; requestId: number; json: string }
    | { kind: typeof Kind.HEARTBEAT }
  );

/** The body of an envelope, without the header the stream fills in. */
export type Body = Envelope extends infer E
  ? E extends Envelope ? Omit<E, "source" | "seq" | "ack"> : never
  : never;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CAUSES = ["closed", "switched", "abandoned"] as const;

/** A growable byte writer, reused for every envelope (encoding is synchronous). */
class Writer {
  #buf = new Uint8Array(4096);
  #view = new DataView(this.#buf.buffer);
  length = 0;

  #room(n: number): void {
    if (this.length + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.length));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.#room(1);
    this.#buf[this.length++] = v;
  }

  u16(v: number): void {
    this.#room(2);
    this.#view.setUint16(this.length, v);
    this.length += 2;
  }

  u32(v: number): void {
    this.#room(4);
    this.#view.setUint32(this.length, v);
    this.length += 4;
  }

  /** Overwrites a u16 written earlier at `at`. */
  u16At(at: number, v: number): void {
    this.#view.setUint16(at, v);
  }

  f64(v: number): void {
    this.#room(8);
    this.#view.setFloat64(this.length, v);
    this.length += 8;
  }

  bytes(b: Uint8Array): void {
    this.u32(b.byteLength);
    this.#room(b.byteLength);
    this.#buf.set(b, this.length);
    this.length += b.byteLength;
  }

  str(s: string): void {
    const n = s.length;
    // Worst case 3 bytes per UTF-16 code unit.
    this.#room(4 + n * 3);
    const buf = this.#buf;
    const at = this.length + 4;
    // Short ASCII strings (connection ids, node names, most frames) without a runtime call.
    if (n <= 64) {
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[at + i] = c;
      }
      if (i === n) {
        this.#view.setUint32(this.length, n);
        this.length = at + n;
        return;
      }
    }
    const { written } = encoder.encodeInto(s, buf.subarray(at));
    this.#view.setUint32(this.length, written);
    this.length = at + written;
  }

  frame(f: Frame): void {
    if (typeof f === "string") {
      this.u8(0);
      this.str(f);
    } else {
      this.u8(1);
      this.bytes(f);
    }
  }

  /** Starts a new envelope. */
  reset(): void {
    this.length = 0;
  }

  /**
   * A copy of what was written (the bus may hold it after this returns), from Node's pooled
   * buffer slabs: a small envelope costs no `ArrayBuffer` allocation of its own.
   */
  done(): Uint8Array {
    const out = Buffer.allocUnsafe(this.length);
    out.set(this.#buf.subarray(0, this.length));
    return out;
  }
}

/** A byte reader; throws a RangeError past the end (a malformed envelope). */
class Reader {
  readonly #buf: Uint8Array;
  readonly #end: number;
  at = 0;

  constructor(buf: Uint8Array) {
    this.#buf = buf;
    this.#end = buf.byteLength;
  }

  get done(): boolean {
    return this.at >= this.#end;
  }

  #need(n: number): number {
    const at = this.at;
    if (at + n > this.#end) throw new RangeError("Truncated envelope");
    this.at = at + n;
    return at;
  }

  u8(): number {
    return this.#buf[this.#need(1)]!;
  }

  u16(): number {
    const at = this.#need(2);
    const b = this.#buf;
    return (b[at]! << 8) | b[at + 1]!;
  }

  u32(): number {
    const at = this.#need(4);
    const b = this.#buf;
    return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
  }

  f64(): number {
    const at = this.#need(8);
    const b = this.#buf;
    return new DataView(b.buffer, b.byteOffset + at, 8).getFloat64(0);
  }

  bytes(): Uint8Array {
    const n = this.u32();
    const at = this.#need(n);
    // A copy (the bus may reuse its buffer), even when it is a Node Buffer (whose slice is a view).
    return Uint8Array.prototype.slice.call(this.#buf, at, at + n);
  }

  str(): string {
    const n = this.u32();
    const at = this.#need(n);
    const buf = this.#buf;
    // Short ASCII strings without a runtime call (connection ids, node names).
    if (n <= 64) {
      let ascii = true;
      for (let i = at; i < at + n; i++) {
        if (buf[i]! >= 0x80) {
          ascii = false;
          break;
        }
      }
      if (ascii) return String.fromCharCode.apply(null, buf.subarray(at, at + n) as never);
    }
    return decoder.decode(buf.subarray(at, at + n));
  }

  frame(): Frame {
    return this.u8() === 0 ? this.str() : this.bytes();
  }
}

const writer = new Writer();

/** The most bodies one envelope carries (u16 count). */
export const MAX_BODIES = 0xffff;

/** Serialises one envelope carrying `body`. */
export function encodeEnvelope(source: NodeId, seq: number, ack: number, body: Body): Uint8Array {
  return encodeBatch(source, seq, ack, [body]);
}

/**
 * Serialises one envelope carrying `bodies` in order (at most {@linkcode MAX_BODIES}); none =
 * a heartbeat, whose `seq` is the last one sent.
 */
export function encodeBatch(
  source: NodeId,
  seq: number,
  ack: number,
  bodies: readonly Body[],
): Uint8Array {
  if (bodies.length > MAX_BODIES) throw new RangeError("Too many bodies for one envelope");
  const w = writer;
  w.reset();
  w.u8(ENVELOPE_VERSION);
  w.str(source);
  w.u32(seq);
  w.u32(ack);
  w.u16(bodies.length);
  for (let i = 0; i < bodies.length; i++) writeBody(w, bodies[i]!);
  return w.done();
}

function writeBody(w: Writer, body: Body): void {
  if (body.kind === Kind.BIND) {
    const { meta } = body;
    const extended = meta.presence === true || meta.playerId !== undefined ||
      meta.member === true;
    w.u8(extended ? BIND_EXTENDED : Kind.BIND);
    w.str(body.conn);
    w.str(meta.ip);
    w.str(meta.appId ?? "");
    w.u8(meta.format === "message_pack" ? 1 : 0);
    if (extended) {
      w.u8((meta.presence === true ? 1 : 0) | (meta.member === true ? 2 : 0));
      w.str(meta.playerId ?? "");
    }
    w.f64(body.deadline);
    w.frame(body.frame);
    return;
  }
  w.u8(body.kind);
  switch (body.kind) {
    case Kind.MSG:
      w.str(body.conn);
      w.frame(body.frame);
      break;
    case Kind.DATA:
      w.str(body.conn);
      w.str(body.value);
      break;
    case Kind.CLOSED:
      w.str(body.conn);
      w.u8(CAUSES.indexOf(body.cause));
      w.u32(body.delivered);
      break;
    case Kind.OUT:
      w.u32(body.items.length);
      for (const item of body.items) {
        switch (item.tag) {
          case "frame": {
            w.u8(0);
            w.frame(item.frame);
            const to = item.to;
            w.u32(to.length);
            for (let i = 0; i < to.length; i++) w.str(to[i]!);
            break;
          }
          case "bound":
            w.u8(1);
            w.str(item.conn);
            w.u8(item.role === "player" ? 0 : 1);
            break;
          case "unbind":
            w.u8(2);
            w.str(item.conn);
            break;
          case "miss":
            w.u8(3);
            w.str(item.conn);
            break;
          case "close":
            w.u8(4);
            w.str(item.conn);
            w.u16(item.code);
            w.str(item.reason);
            break;
        }
      }
      break;
    case Kind.BOUNCE:
      w.str(body.conn);
      w.u32(body.msgSeq);
      w.frame(body.frame);
      break;
    case Kind.CONTROL:
    case Kind.REPLY:
      w.u32(body.requestId);
      w.str(body.json);
      break;
    case Kind.HEARTBEAT:
      break;
  }
}

/** A decoded envelope: its header and its bodies, each with the header filled in. */
export interface Batch {
  source: NodeId;
  seq: number;
  ack: number;
  /** In order; empty for a heartbeat. */
  bodies: Envelope[];
}

/**
 * Parses one envelope. Throws a RangeError for another version, an unknown kind or malformed
 * bytes (the receiver counts and drops it).
 */
export function decodeBatch(bytes: Uint8Array): Batch {
  const r = new Reader(bytes);
  const version = r.u8();
  if (version !== ENVELOPE_VERSION) throw new RangeError(`Unknown envelope version ${version}`);
  const source = r.str();
  const seq = r.u32();
  const ack = r.u32();
  const n = r.u16();
  const bodies: Envelope[] = [];
  for (let i = 0; i < n; i++) bodies.push(readBody(r, source, seq, ack));
  if (!r.done) throw new RangeError("Trailing bytes after the envelope");
  return { source, seq, ack, bodies };
}

/**
 * Parses an envelope of one body (or a heartbeat, returned as a `HEARTBEAT` envelope); throws a
 * RangeError as {@linkcode decodeBatch} does, or when it carries several bodies.
 */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  const batch = decodeBatch(bytes);
  if (batch.bodies.length === 0) {
    return { source: batch.source, seq: batch.seq, ack: batch.ack, kind: Kind.HEARTBEAT };
  }
  if (batch.bodies.length > 1) throw new RangeError("Several bodies in the envelope");
  return batch.bodies[0]!;
}

function readBody(r: Reader, source: NodeId, seq: number, ack: number): Envelope {
  const kind = r.u8();
  switch (kind) {
    case Kind.BIND:
    case BIND_EXTENDED: {
      const conn = r.str();
      const ip = r.str();
      const appId = r.str();
      const format = r.u8() === 1 ? "message_pack" as const : "json" as const;
      const meta: BindMeta = { ip, format, ...(appId ? { appId } : {}) };
      if (kind === BIND_EXTENDED) {
        const flags = r.u8();
        if ((flags & 1) === 1) meta.presence = true;
        if ((flags & 2) === 2) meta.member = true;
        const playerId = r.str();
        if (playerId !== "") meta.playerId = playerId;
      }
      const deadline = r.f64();
      return { source, seq, ack, kind: Kind.BIND, conn, meta, deadline, frame: r.frame() };
    }
    case Kind.MSG: {
      const conn = r.str();
      return { source, seq, ack, kind, conn, frame: r.frame() };
    }
    case Kind.DATA: {
      const conn = r.str();
      return { source, seq, ack, kind, conn, value: r.str() };
    }
    case Kind.CLOSED: {
      const conn = r.str();
      const cause = CAUSES[r.u8()];
      if (cause === undefined) throw new RangeError("Unknown CLOSED cause");
      return { source, seq, ack, kind, conn, cause, delivered: r.u32() };
    }
    case Kind.OUT: {
      const n = r.u32();
      const items: OutItem[] = [];
      for (let i = 0; i < n; i++) {
        const tag = r.u8();
        switch (tag) {
          case 0: {
            const frame = r.frame();
            const count = r.u32();
            const to: ConnId[] = [];
            for (let j = 0; j < count; j++) to.push(r.str());
            items.push({ tag: "frame", frame, to });
            break;
          }
          case 1: {
            const conn = r.str();
            items.push({ tag: "bound", conn, role: r.u8() === 0 ? "player" : "spectator" });
            break;
          }
          case 2:
            items.push({ tag: "unbind", conn: r.str() });
            break;
          case 3:
            items.push({ tag: "miss", conn: r.str() });
            break;
          case 4: {
            const conn = r.str();
            const code = r.u16();
            items.push({ tag: "close", conn, code, reason: r.str() });
            break;
          }
          default:
            throw new RangeError(`Unknown OUT item ${tag}`);
        }
      }
      return { source, seq, ack, kind, items };
    }
    case Kind.BOUNCE: {
      const conn = r.str();
      const msgSeq = r.u32();
      return { source, seq, ack, kind, conn, msgSeq, frame: r.frame() };
    }
    case Kind.CONTROL:
    case Kind.REPLY:
      return { source, seq, ack, kind, requestId: r.u32(), json: r.str() };
    case Kind.HEARTBEAT:
      return { source, seq, ack, kind };
    default:
      throw new RangeError(`Unknown envelope kind ${kind}`);
  }
}
