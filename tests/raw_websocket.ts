/**
 * A byte-level WebSocket client for tests that must send what a browser's `WebSocket` cannot:
 * invalid UTF-8 in text frames, unmasked or reserved-bit frames, unknown opcodes, broken
 * fragmentation (RFC 6455 §5).
 *
 * @module
 */

/** One frame received from the server. */
export interface RawFrame {
  /** RFC 6455 opcode: 1 text, 2 binary, 8 close, 9 ping, 10 pong. */
  opcode: number;
  payload: Uint8Array;
}

/** Options of {@linkcode RawWebSocket.sendFrame}. */
export interface FrameOptions {
  /** FIN bit. @default true */
  fin?: boolean;
  /** Mask the payload, as clients must. @default true */
  mask?: boolean;
  /** RSV1–RSV3 bits (0–7). @default 0 */
  rsv?: number;
}

/** A raw WebSocket connection over TCP. */
export class RawWebSocket implements AsyncDisposable {
  readonly #conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /**
   * Connects to `ws://127.0.0.1:<port><path>` and completes the upgrade handshake, with the 16
   * key bytes and extra request headers given (random key, none by default). Throws
   * `Upgrade refused: <status line>` when the server answers anything but 101.
   */
  static async open(
    port: number,
    path = "/v2/ws",
    options: { key?: Uint8Array; headers?: Record<string, string> } = {},
  ): Promise<RawWebSocket> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const socket = new RawWebSocket(conn);
    const keyBytes = options.key ?? crypto.getRandomValues(new Uint8Array(16));
    const key = btoa(String.fromCharCode(...keyBytes));
    const extra = Object.entries(options.headers ?? {}).map(([name, value]) =>
      `${name}: ${value}\r\n`
    ).join("");
    await socket.#write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
          `${extra}\r\n`,
      ),
    );
    const head = await socket.#readUntilHeadEnd();
    if (!head.startsWith("HTTP/1.1 101")) {
      conn.close();
      throw new Error(`Upgrade refused: ${head.split("\r\n")[0]}`);
    }
    socket.head = head;
    return socket;
  }

  /** The 101 response's status line and headers. */
  head = "";

  /** Sends one frame with `opcode` and `payload`. */
  sendFrame(opcode: number, payload: Uint8Array, options: FrameOptions = {}): Promise<void> {
    return this.#write(encodeFrame(opcode, payload, options));
  }

  /** Sends one frame with `opcode` per payload of `payloads`, all in one write. */
  sendFrames(opcode: number, payloads: readonly Uint8Array[]): Promise<void> {
    const frames = payloads.map((payload) => encodeFrame(opcode, payload, {}));
    const bytes = new Uint8Array(frames.reduce((sum, frame) => sum + frame.length, 0));
    let offset = 0;
    for (const frame of frames) {
      bytes.set(frame, offset);
      offset += frame.length;
    }
    return this.#write(bytes);
  }

  /** Sends a text frame holding exactly `bytes` (which need not be valid UTF-8). */
  sendText(bytes: Uint8Array | string, options?: FrameOptions): Promise<void> {
    return this.sendFrame(
      1,
      typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes,
      options,
    );
  }

  /**
   * Reads the next frame, or `undefined` when the server closed the TCP connection. Fails after
   * `timeoutMs`.
   */
  async readFrame(timeoutMs = 3000): Promise<RawFrame | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = this.#parse();
      if (frame) return frame;
      if (!(await this.#fill(deadline))) return undefined;
    }
  }

  /** Reads frames until a close frame and returns its status code (1005 when it has none). */
  async readClose(timeoutMs = 3000): Promise<{ code: number; text: string[] }> {
    const text: string[] = [];
    for (;;) {
      const frame = await this.readFrame(timeoutMs);
      if (!frame) return { code: 1006, text };
      if (frame.opcode === 1) text.push(new TextDecoder().decode(frame.payload));
      if (frame.opcode === 8) {
        const p = frame.payload;
        return { code: p.length >= 2 ? (p[0]! << 8) | p[1]! : 1005, text };
      }
    }
  }

  /** Closes the TCP connection. */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  async #write(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
  }

  async #fill(deadline: number): Promise<boolean> {
    const chunk = new Uint8Array(65536);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(1, deadline - Date.now()));
    });
    let read: number | null | "timeout";
    try {
      read = await Promise.race([this.#conn.read(chunk), timeout]);
    } catch {
      read = null; // connection reset
    } finally {
      clearTimeout(timer);
    }
    if (read === "timeout") throw new Error("Timed out waiting for a frame");
    if (read === null) return false;
    const next = new Uint8Array(this.#buffer.length + read);
    next.set(this.#buffer, 0);
    next.set(chunk.subarray(0, read), this.#buffer.length);
    this.#buffer = next;
    return true;
  }

  async #readUntilHeadEnd(): Promise<string> {
    const deadline = Date.now() + 3000;
    for (;;) {
      const text = new TextDecoder().decode(this.#buffer);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        this.#buffer = this.#buffer.slice(new TextEncoder().encode(text.slice(0, end + 4)).length);
        return text.slice(0, end);
      }
      if (!(await this.#fill(deadline))) throw new Error("Connection closed during handshake");
    }
  }

  #parse(): RawFrame | undefined {
    const b = this.#buffer;
    if (b.length < 2) return undefined;
    let length = b[1]! & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (b.length < 4) return undefined;
      length = (b[2]! << 8) | b[3]!;
      offset = 4;
    } else if (length === 127) {
      if (b.length < 10) return undefined;
      length = Number(new DataView(b.buffer, b.byteOffset + 2, 8).getBigUint64(0));
      offset = 10;
    }
    if (b.length < offset + length) return undefined;
    const frame = { opcode: b[0]! & 0x0f, payload: b.slice(offset, offset + length) };
    this.#buffer = b.slice(offset + length);
    return frame;
  }
}

/** One client frame (RFC 6455 §5.2) with `opcode` and `payload`, shaped by `options`. */
function encodeFrame(opcode: number, payload: Uint8Array, options: FrameOptions): Uint8Array {
  const { fin = true, mask = true, rsv = 0 } = options;
  const length = payload.length;
  const header: number[] = [(fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)];
  const maskBit = mask ? 0x80 : 0;
  if (length < 126) header.push(maskBit | length);
  else if (length < 65536) header.push(maskBit | 126, length >> 8, length & 0xff);
  else {
    header.push(maskBit | 127, 0, 0, 0, 0);
    header.push((length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff);
    header.push(length & 0xff);
  }
  const key = mask ? crypto.getRandomValues(new Uint8Array(4)) : new Uint8Array(0);
  const body = new Uint8Array(length);
  for (let i = 0; i < length; i++) body[i] = payload[i]! ^ (mask ? key[i % 4]! : 0);
  const frame = new Uint8Array(header.length + key.length + length);
  frame.set(header, 0);
  frame.set(key, header.length);
  frame.set(body, header.length + key.length);
  return frame;
}
