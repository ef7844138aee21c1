import { deepEqual, equal, ok } from "node:assert/strict";
import { createHmac } from "node:crypto";
import { UpgradeRequest } from "../http/handover.ts";
import {
  canonicalJson,
  MAX_BOUND_DEPTH,
  negotiateTokenBinding,
  sessionSecret,
  verifyProof,
} from "./token_binding.ts";

// Vectors computed independently with Python: json.dumps(sort_keys=True, separators=(",", ":"),
// ensure_ascii=False), then hmac.new(key, payload + fingerprint, sha256), base64. Integers only
// (docs/spec/SERVER.md §10 item 15).
const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const VECTORS = [
  {
    frame: { type: "Ping" },
    canonical: '{"type":"Ping"}',
    signature: "wikj9KysKHVOEHC/N2Du96XnHOLyj7x62oNk0c2cfh8=",
  },
  {
    frame: {
      type: "JoinRoom",
      data: { room_code: null, game_name: "orbit", player_name: "Zoë", max_players: 4 },
    },
    canonical:
      '{"data":{"game_name":"orbit","max_players":4,"player_name":"Zoë","room_code":null},"type":"JoinRoom"}',
    signature: "AMFiZ3s3tWM+bprkxcHRHgbhCZw9JBqDihm4icDCY9w=",
  },
  {
    frame: { type: "GameData", data: { data: { b: [1, -2, { z: 0, a: "x/y" }], a: true } } },
    canonical: '{"data":{"data":{"a":true,"b":[1,-2,{"a":"x/y","z":0}]}},"type":"GameData"}',
    signature: "Ctxfl4OMOHcyYbQ2QFcBtbo3NFppJY7/mmIXf43hHho=",
    fingerprint: "AB:CD",
  },
];

Deno.test("sessionSecret() needs exactly 16 base64 bytes", () => {
  equal(sessionSecret(KEY)?.length, 16);
  equal(sessionSecret(""), undefined);
  equal(sessionSecret("not base64!"), undefined);
  equal(sessionSecret(btoa("short")), undefined);
});

Deno.test("canonicalJson() sorts keys, compacts, and keeps integer/float spelling", () => {
  for (const vector of VECTORS) {
    equal(canonicalJson(JSON.stringify(vector.frame)), vector.canonical);
  }
  equal(
    canonicalJson(' { "b" : 1.0 , "a" : [ 1e21 , 2.50, 10 ] } '),
    '{"a":[1e21,2.5,10],"b":1.0}',
  );
  equal(canonicalJson('"\\u00e9\\/"'), '"é/"');
});

Deno.test("verifyProof() accepts the test vectors and strips the proof", () => {
  const secret = sessionSecret(KEY)!;
  for (const vector of VECTORS) {
    const frame = JSON.stringify({
      ...vector.frame,
      token_binding: {
        scheme: "sec_websocket_key_sha256",
        signature: vector.signature,
        ...(vector.fingerprint ? { fingerprint: vector.fingerprint } : {}),
      },
    });
    const result = verifyProof(frame, secret, { requireFingerprint: false });
    deepEqual(result.ok && JSON.parse(result.text), vector.frame);
  }
});

Deno.test("verifyProof() refuses each violation with the spec's message", () => {
  const secret = sessionSecret(KEY)!;
  const proof = { scheme: "sec_websocket_key_sha256", signature: VECTORS[0]!.signature };
  const check = (frame: string, message: string, close = true, fingerprint?: string) => {
    const result = verifyProof(frame, secret, {
      requireFingerprint: fingerprint !== undefined,
      handshakeFingerprint: fingerprint,
    });
    deepEqual(result, {
      ok: false,
      message,
      code: message.includes("client message") ? "INVALID_INPUT" : "UNAUTHORIZED",
      close,
    });
  };
  check("{not json", "Invalid client message", false);
  check("[1]", "Malformed client message");
  check('{"type":"Ping"}', "Token binding proof missing");
  check(
    JSON.stringify({ type: "Ping", token_binding: { ...proof, scheme: "x" } }),
    "Invalid token binding proof",
  );
  check(JSON.stringify({ type: "Pong", token_binding: proof }), "Invalid token binding signature");
  check(
    JSON.stringify({ type: "Ping", token_binding: { ...proof, signature: "%%" } }),
    "Invalid token binding signature",
  );
  check(
    JSON.stringify({ type: "Ping", token_binding: proof }),
    "Client fingerprint mismatch",
    true,
    "AB:CD",
  );
});

Deno.test("negotiateTokenBinding() selects the offered subprotocol or refuses as docs/spec/SERVER.md §1.8 says", async () => {
  const options = { required: false, requireClientFingerprint: false, subprotocol: "sf.tb.v1" };
  const request = (headers: Record<string, string>) =>
    new Request("http://127.0.0.1/v2/ws", { headers: { "sec-websocket-key": KEY, ...headers } });
  const status = async (result: ReturnType<typeof negotiateTokenBinding>) => {
    if (!(result instanceof Response)) return result;
    return `${result.status} ${await result.text()}`;
  };

  equal(negotiateTokenBinding(request({}), false, options), undefined);
  equal(
    await status(negotiateTokenBinding(request({}), false, { ...options, required: true })),
    "400 token binding subprotocol required",
  );
  const bound = negotiateTokenBinding(
    request({ "sec-websocket-protocol": "other, SF.TB.v1" }),
    false,
    options,
  );
  if (bound === undefined || bound instanceof Response) throw new Error("expected a binding");
  equal(bound.subprotocol, "SF.TB.v1");
  deepEqual(bound.binding.secret, sessionSecret(KEY));
  equal(bound.binding.handshakeFingerprint, undefined);
  equal(
    await status(negotiateTokenBinding(
      request({ "sec-websocket-protocol": "sf.tb.v1", "sec-websocket-key": "c2hvcnQ=" }),
      false,
      options,
    )),
    "400 invalid token binding handshake",
  );

  const strict = { ...options, requireClientFingerprint: true };
  const withFingerprint = request({
    "sec-websocket-protocol": "sf.tb.v1",
    "x-forwarded-client-cert-sha256": " ab12 ",
  });
  equal(
    await status(negotiateTokenBinding(withFingerprint, false, strict)),
    "401 client certificate fingerprint required",
    "fingerprint headers count only from a trusted proxy",
  );
  const fromProxy = negotiateTokenBinding(withFingerprint, true, strict);
  if (fromProxy === undefined || fromProxy instanceof Response) {
    throw new Error("expected a binding");
  }
  equal(fromProxy.binding.handshakeFingerprint, "ab12");
  equal(fromProxy.binding.requireFingerprint, true);
});

/** `rest` (a JSON object's text) with a valid proof for KEY inserted as member `at` (0 = first). */
function signed(rest: string, at: "first" | "middle" | "last"): string {
  const signature = createHmac("sha256", sessionSecret(KEY)!).update(canonicalJson(rest), "utf8")
    .digest("base64");
  const member =
    `"token_binding" : {"scheme":"sec_websocket_key_sha256","signature":"${signature}"}`;
  const body = rest.trim().slice(1, -1);
  if (at === "first") return `{${member}, ${body}}`;
  if (at === "last") return `{${body} ,${member}}`;
  const comma = body.indexOf(",");
  return `{${body.slice(0, comma)},${member},${body.slice(comma + 1)}}`;
}

Deno.test("verifyProof() hands on the sender's own text without the proof, wherever the proof sits", () => {
  const secret = sessionSecret(KEY)!;
  // Spellings canonical JSON would change: an exponent, escapes, a repeated key, spaces.
  const rest = '{"type":"GameData", "data":{"data":{"z":1,"a":1E2,"s":"\\u00e9\\/","d":1,"d":2}}}';
  for (const at of ["first", "middle", "last"] as const) {
    const result = verifyProof(signed(rest, at), secret, { requireFingerprint: false });
    ok(result.ok, `${at}: ${JSON.stringify(result)}`);
    deepEqual(JSON.parse(result.text), JSON.parse(rest), at);
    ok(result.text.includes('"a":1E2,"s":"\\u00e9\\/","d":1,"d":2'), `${at}: ${result.text}`);
  }
  const alone = verifyProof(
    signed('{"type":"Ping","x":0}', "first").replace(',"x":0', ""),
    secret,
    { requireFingerprint: false },
  );
  equal(alone.ok, false, "the signature covered x");
});

Deno.test("verifyProof() refuses what has no canonical form, too deep a frame and two proofs, without throwing", () => {
  const secret = sessionSecret(KEY)!;
  const options = { requireFingerprint: false };
  const refused = (message: string, close: boolean) => ({
    ok: false,
    message,
    code: close ? "UNAUTHORIZED" : "INVALID_INPUT",
    close,
  });
  deepEqual(
    verifyProof(
      signed('{"type":"Ping","x":1}', "last").replace('"x":1', '"x":1e400'),
      secret,
      options,
    ),
    refused("Invalid client message", false),
  );
  const nested = (depth: number) =>
    `{"type":"Ping","x":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`;
  ok(verifyProof(signed(nested(MAX_BOUND_DEPTH), "first"), secret, options).ok);
  deepEqual(
    verifyProof(
      nested(MAX_BOUND_DEPTH + 1).replace("{", '{"token_binding":{},'),
      secret,
      options,
    ),
    refused(`Message nested too deeply (more than ${MAX_BOUND_DEPTH} levels)`, false),
  );
  const twice = signed('{"type":"Ping"}', "last");
  deepEqual(
    verifyProof(
      twice.replace("{", `{${twice.slice(twice.indexOf('"token_binding"'), -1)},`),
      secret,
      options,
    ),
    refused("Invalid token binding proof", true),
  );
});

Deno.test("canonicalJson() keeps the sign of -0.0 and orders keys by UTF-8 bytes past the BMP", () => {
  equal(canonicalJson('{"x":-0.0,"y":-0,"z":0.0}'), '{"x":-0.0,"y":0,"z":0.0}');
  // U+E000 (EE 80 80) sorts before U+1F600 (F0 9F 98 80); UTF-16 units would put it after.
  equal(canonicalJson('{"\\ud83d\\ude00":1,"\\ue000":2,"a":3}'), '{"a":3,"\ue000":2,"😀":1}');
});

Deno.test("negotiateTokenBinding() reads every Sec-WebSocket-Protocol header as one list and selects the client's spelling (docs/spec/SERVER.md §1.8)", () => {
  const options = { required: true, requireClientFingerprint: false, subprotocol: "sf.tb.v1" };
  // The two header readers of an upgrade: a `Request`'s and the fast path's raw header list.
  const headers = new Headers({ "sec-websocket-key": KEY });
  headers.append("sec-websocket-protocol", "chat");
  headers.append("sec-websocket-protocol", "SF.TB.V1, other");
  const raw = [
    "Host",
    "127.0.0.1",
    "Sec-WebSocket-Key",
    KEY,
    "Sec-WebSocket-Protocol",
    "chat",
    "Sec-WebSocket-Protocol",
    "SF.TB.V1, other",
  ];
  for (
    const request of [
      new Request("http://127.0.0.1/v2/ws", { headers }),
      new UpgradeRequest("GET", raw, "http", "/v2/ws"),
    ]
  ) {
    const bound = negotiateTokenBinding(request, false, options);
    if (bound === undefined || bound instanceof Response) throw new Error("expected a binding");
    equal(bound.subprotocol, "SF.TB.V1");
  }
});
