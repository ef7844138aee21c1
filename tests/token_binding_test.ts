import { deepEqual, equal, match, rejects } from "node:assert/strict";
import { inProcessOnly } from "./cluster_serve.ts";
import { createHmac } from "node:crypto";
import { serve } from "./helpers.ts";
import { RawWebSocket } from "./raw_websocket.ts";
import { canonicalJson } from "../src/transport/token_binding.ts";
import { WebSocket as WsClient } from "ws";

const SUBPROTOCOL = "signalfish.tokenbinding.v1";

/** A raw client with a known handshake key, so it can sign frames as a bound client does. */
async function boundClient(port: number, protocols: string | null) {
  const key = crypto.getRandomValues(new Uint8Array(16));
  const headers: Record<string, string> = protocols ? { "sec-websocket-protocol": protocols } : {};
  const socket = await RawWebSocket.open(port, "/v2/ws", { key, headers });
  return {
    socket,
    /**
     * Sends `text` with its proof, or with `signature` when given. The MAC is over `signed`,
     * by default `text` itself (then compact, keys sorted: already canonical).
     */
    sendSigned(text: string, signature?: string, signed = text): Promise<void> {
      const mac = createHmac("sha256", key).update(signed, "utf8").digest("base64");
      const proof = `"token_binding":{"scheme":"sec_websocket_key_sha256","signature":"${
        signature ?? mac
      }"}`;
      return socket.sendText(`${text.slice(0, -1)},${proof}}`);
    },
    /** The next text frame. */
    async next(): Promise<string> {
      for (;;) {
        const frame = await socket.readFrame();
        if (!frame) throw new Error("Connection closed");
        if (frame.opcode === 1) return new TextDecoder().decode(frame.payload);
      }
    },
  };
}

Deno.test(
  "Token binding: a bound connection's signed frames work; unsigned or forged ones close it with 1008",
  {
    ignore: inProcessOnly(
      "required token binding without TLS or trusted_proxies fails startup validation (docs/spec/SERVER.md §2.6)",
    ),
  },
  async () => {
    await using server = await serve((config) => {
      config.security.transport.token_binding.enabled = true;
      config.security.transport.token_binding.required = true;
    });
    // Not offered while required: refused before the upgrade.
    await rejects(() => boundClient(server.port, null), /Upgrade refused: HTTP\/1\.1 400/);

    const client = await boundClient(server.port, `chat, ${SUBPROTOCOL.toUpperCase()}`);
    match(client.socket.head, new RegExp(`sec-websocket-protocol: ${SUBPROTOCOL}`, "i"));
    await client.sendSigned('{"type":"Ping"}');
    equal(await client.next(), '{"type":"Pong"}');
    await client.sendSigned(
      '{"data":{"game_name":"orbit","player_name":"bound","room_code":"TBIND1"},"type":"JoinRoom"}',
    );
    equal(JSON.parse(await client.next()).type, "RoomJoined");
    await client.sendSigned('{"type":"Ping"}', "AAAA");
    deepEqual(JSON.parse(await client.next()), {
      type: "Error",
      data: { message: "Invalid token binding signature", error_code: "UNAUTHORIZED" },
    });
    equal((await client.socket.readClose()).code, 1008);
    client.socket.close();

    await using unsigned = await RawWebSocket.open(server.port, "/v2/ws", {
      headers: { "sec-websocket-protocol": SUBPROTOCOL },
    });
    await unsigned.sendText('{"type":"Ping"}');
    const { code, text } = await unsigned.readClose();
    deepEqual(text.map((frame) => JSON.parse(frame)), [{
      type: "Error",
      data: { message: "Token binding proof missing", error_code: "UNAUTHORIZED" },
    }]);
    equal(code, 1008);
  },
);

Deno.test("Token binding: optional binding lets clients that do not offer it play unbound", async () => {
  await using server = await serve((config) => {
    config.security.transport.token_binding.enabled = true;
  });
  await using client = await RawWebSocket.open(server.port);
  equal(/sec-websocket-protocol/i.test(client.head), false);
  await client.sendText('{"type":"Ping"}');
  const frame = await client.readFrame();
  equal(frame && new TextDecoder().decode(frame.payload), '{"type":"Pong"}');
});

Deno.test("Token binding: a bound player's game data reaches the room as sent, not in canonical form", async () => {
  await using server = await serve((config) => {
    config.security.transport.token_binding.enabled = true;
  });
  const bound = await boundClient(server.port, SUBPROTOCOL);
  await using _bound = bound.socket;
  await bound.sendSigned(
    '{"data":{"game_name":"orbit","player_name":"bound","room_code":"TBEXA1"},"type":"JoinRoom"}',
  );
  equal(JSON.parse(await bound.next()).type, "RoomJoined");
  const other = await boundClient(server.port, null); // unbound
  await using _other = other.socket;
  await other.socket.sendText(
    '{"type":"JoinRoom","data":{"game_name":"orbit","player_name":"other","room_code":"TBEXA1"}}',
  );
  equal(JSON.parse(await other.next()).type, "RoomJoined");
  equal(JSON.parse(await bound.next()).type, "PlayerJoined");
  // Signed over the canonical form; sent with an exponent, escapes and a key order of its own.
  const sent = '{"type":"GameData","data":{"data":{"z":1,"a":1E2,"s":"\\u00e9\\/","n":-0.0}}}';
  await bound.sendSigned(sent, undefined, canonicalJson(sent));
  let relayed: string;
  do relayed = await other.next(); while (!relayed.includes('"GameData"'));
  match(relayed, /"data":\{"z":1,"a":1E2,"s":"\\u00e9\\\/","n":-0\.0\}/);
});

Deno.test("Token binding: the 101 selects the subprotocol as the client spelled it, offered in any Sec-WebSocket-Protocol header (docs/spec/SERVER.md §1.8)", async () => {
  await using server = await serve((config) => {
    config.security.transport.token_binding.enabled = true;
  });
  // `ws`'s client, as browsers: it fails a handshake whose subprotocol it did not offer, compared
  // exactly, so the configured spelling would fail it (Deno's own client does not check).
  const upper = SUBPROTOCOL.toUpperCase();
  const ws = new WsClient(`ws://127.0.0.1:${server.port}/v2/ws`, [upper]);
  const opened = await new Promise<string>((resolve) => {
    ws.once("open", () => resolve(`open ${ws.protocol}`));
    ws.once("error", (error: Error) => resolve(`failed: ${error.message}`));
  });
  equal(opened, `open ${upper}`);
  const closed = new Promise<number>((resolve) =>
    ws.once("close", (code: number) => resolve(code))
  );
  // Bound: an unsigned frame is refused with 1008.
  ws.send('{"type":"Ping"}');
  equal(await closed, 1008);

  // The offer in a second header counts: several headers are one list (RFC 6455 section 11.3.4).
  await using second = await RawWebSocket.open(server.port, "/v2/ws", {
    headers: { "Sec-WebSocket-Protocol": "chat", "sec-websocket-protocol": upper },
  });
  const selected = second.head.split("\r\n")
    .filter((line) => /^sec-websocket-protocol:/i.test(line))
    .map((line) => line.slice(line.indexOf(":") + 1).trim());
  deepEqual(selected, [upper]);
  await second.sendText('{"type":"Ping"}');
  equal((await second.readClose()).code, 1008);
});
