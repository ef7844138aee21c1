import { deepEqual, equal, match } from "node:assert/strict";
import { createHmac } from "node:crypto";
import { serve } from "./helpers.ts";

const SUBPROTOCOL = "signalfish.tokenbinding.v1";

/**
 * A minimal WebSocket client over TCP that chooses its own `Sec-WebSocket-Key` (the token-binding
 * secret), so the test can sign frames the way a bound client does.
 */
async function rawClient(port: number, protocols: string | null) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const keyBytes = crypto.getRandomValues(new Uint8Array(16));
  const key = btoa(String.fromCharCode(...keyBytes));
  await conn.write(new TextEncoder().encode(
    `GET /v2/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
      (protocols ? `Sec-WebSocket-Protocol: ${protocols}\r\n` : "") + "\r\n",
  ));
  let data = new Uint8Array(0);
  const buffer = new Uint8Array(1 << 16);
  const more = async () => {
    const n = await conn.read(buffer);
    if (n === null) throw new Error("Connection closed");
    const next = new Uint8Array(data.length + n);
    next.set(data);
    next.set(buffer.subarray(0, n), data.length);
    data = next;
  };
  let head = "";
  for (;;) {
    const text = new TextDecoder().decode(data);
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      head = text.slice(0, end);
      data = data.subarray(new TextEncoder().encode(text.slice(0, end + 4)).length);
      break;
    }
    await more();
  }
  return {
    head,
    /** Sends `text` signed with the handshake key (or with `signature` when given). */
    async sendSigned(text: string, signature?: string) {
      const mac = createHmac("sha256", keyBytes).update(text, "utf8").digest("base64");
      const proof = `"token_binding":{"scheme":"sec_websocket_key_sha256","signature":"${
        signature ?? mac
      }"}`;
      await this.send(`${text.slice(0, -1)},${proof}}`);
    },
    async send(text: string) {
      const payload = new TextEncoder().encode(text);
      const mask = crypto.getRandomValues(new Uint8Array(4));
      // Client frames are masked; lengths up to 65535 (7-bit or 16-bit form).
      const head = payload.length < 126
        ? [0x81, 0x80 | payload.length]
        : [0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff];
      const frame = new Uint8Array(head.length + 4 + payload.length);
      frame.set(head);
      frame.set(mask, head.length);
      payload.forEach((byte, i) => frame[head.length + 4 + i] = byte ^ mask[i % 4]!);
      await conn.write(frame);
    },
    /** The next frame: text as a string, close as its code. */
    async next(): Promise<string | number> {
      for (;;) {
        if (data.length >= 2) {
          const opcode = data[0]! & 0x0f;
          let length = data[1]! & 0x7f;
          let header = 2;
          if (length === 126 && data.length >= 4) {
            length = (data[2]! << 8) | data[3]!;
            header = 4;
          }
          if (data.length >= header + length) {
            const body = data.subarray(header, header + length);
            data = data.subarray(header + length);
            if (opcode === 1) return new TextDecoder().decode(body);
            if (opcode === 8) return (body[0]! << 8) | body[1]!;
            continue; // ping and others
          }
        }
        await more();
      }
    },
    close: () => conn.close(),
  };
}

Deno.test("Token binding: a bound connection's signed frames work; unsigned or forged ones close it with 1008", async () => {
  await using server = await serve((config) => {
    config.security.transport.token_binding.enabled = true;
    config.security.transport.token_binding.required = true;
  });
  // Not offered while required: refused before the upgrade.
  const refused = await rawClient(server.port, null);
  match(refused.head, /^HTTP\/1\.1 400/);
  refused.close();

  const client = await rawClient(server.port, `chat, ${SUBPROTOCOL.toUpperCase()}`);
  match(client.head, /^HTTP\/1\.1 101/);
  match(client.head, new RegExp(`sec-websocket-protocol: ${SUBPROTOCOL}`, "i"));
  await client.sendSigned('{"type":"Ping"}');
  equal(await client.next(), '{"type":"Pong"}');
  await client.sendSigned(
    '{"data":{"game_name":"orbit","player_name":"bound","room_code":"TBIND1"},"type":"JoinRoom"}',
  );
  equal(JSON.parse(await client.next() as string).type, "RoomJoined");
  await client.sendSigned('{"type":"Ping"}', "AAAA");
  deepEqual(JSON.parse(await client.next() as string), {
    type: "Error",
    data: { message: "Invalid token binding signature", error_code: "UNAUTHORIZED" },
  });
  equal(await client.next(), 1008);
  client.close();

  const unsigned = await rawClient(server.port, SUBPROTOCOL);
  await unsigned.send('{"type":"Ping"}');
  deepEqual(JSON.parse(await unsigned.next() as string), {
    type: "Error",
    data: { message: "Token binding proof missing", error_code: "UNAUTHORIZED" },
  });
  equal(await unsigned.next(), 1008);
  unsigned.close();
});

Deno.test("Token binding: optional binding lets clients that do not offer it play unbound", async () => {
  await using server = await serve((config) => {
    config.security.transport.token_binding.enabled = true;
  });
  const client = await rawClient(server.port, null);
  match(client.head, /^HTTP\/1\.1 101/);
  equal(/sec-websocket-protocol/i.test(client.head), false);
  await client.send('{"type":"Ping"}');
  equal(await client.next(), '{"type":"Pong"}');
  client.close();
});
