import { deepEqual, equal, ok } from "node:assert/strict";
import { checkedJoinRoom, decodeClientMessage, encodeServerMessage } from "./codec.ts";
import { ClientMessage, normalizeUuid, RawJson, type ServerMessage } from "./messages.ts";

function decoded(text: string) {
  const result = decodeClientMessage(text);
  if (!result.ok) throw new Error(`Expected ${text} to decode: ${result.detail}`);
  return result.message;
}

function rejected(text: string): boolean {
  return !decodeClientMessage(text).ok;
}

Deno.test("decodeClientMessage() accepts payload-less messages with no data, null or {}", () => {
  for (const type of ["LeaveRoom", "PlayerReady", "Ping", "LeaveSpectator"]) {
    equal(decoded(`{"type":"${type}"}`).type, type);
    equal(decoded(`{"type":"${type}","data":null}`).type, type);
    equal(decoded(`{"type":"${type}","data":{}}`).type, type);
    ok(rejected(`{"type":"${type}","data":5}`));
    ok(rejected(`{"type":"${type}","data":[]}`));
  }
});

Deno.test("decodeClientMessage() rejects what docs/spec/PROTOCOL.md §2.3 calls parse failures", () => {
  const bad = [
    "not json",
    "[]",
    '[{"type":"Ping"}]',
    '"Ping"',
    '{"type":"Unknown"}',
    '{"type":"ping"}',
    '{"data":{}}',
    '{"type":"JoinRoom"}',
    '{"type":"JoinRoom","data":{"game_name":"g"}}',
    '{"type":"JoinRoom","data":{"game_name":1,"player_name":"p"}}',
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":"p","max_players":256}}',
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":"p","max_players":-1}}',
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":"p","max_players":2.5}}',
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":"p","max_players":"2"}}',
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":"p","relay_transport":"TCP"}}',
    '{"type":"JoinRoom","data":{"game_name":"g","player_name":"p","supports_authority":"true"}}',
    '{"type":"GameData","data":{}}',
    '{"type":"GameData","data":{"data":1,"to_player":"not-a-uuid"}}',
    '{"type":"AuthorityRequest","data":{"become_authority":1}}',
    '{"type":"Authenticate","data":{"app_id":"a","game_data_format":"JSON"}}',
    '{"type":"Reconnect","data":{"player_id":"x","room_id":"y","auth_token":"t"}}',
    '{"type":"ProvideConnectionInfo","data":{"connection_info":{"type":"direct","host":"h","port":70000}}}',
    '{"type":"ProvideConnectionInfo","data":{"connection_info":{"type":"relay","host":"h","port":1,"transport":null,"allocation_id":"a","token":"t"}}}',
    '{"type":"ProvideConnectionInfo","data":{"connection_info":{"type":"webrtc","sdp":"x"}}}',
    '{"type":"ProvideConnectionInfo","data":{"connection_info":{"type":"custom"}}}',
    '{"type":"ProvideConnectionInfo","data":{"connection_info":{"type":"carrier-pigeon"}}}',
  ];
  for (const text of bad) ok(rejected(text), `expected a parse failure for ${text}`);
});

Deno.test("decodeClientMessage() treats null optional fields as absent and ignores unknown members", () => {
  const message = decoded(
    '{"type":"JoinRoom","extra":1,"data":{"game_name":"g","room_code":null,"player_name":"p","max_players":4.0,"relay_transport":null,"unknown":true}}',
  );
  ok(message.type === "JoinRoom");
  const { game_name, room_code, player_name, max_players, relay_transport, supports_authority } =
    message.data;
  deepEqual([game_name, room_code, player_name, max_players, relay_transport, supports_authority], [
    "g",
    undefined,
    "p",
    4,
    undefined,
    undefined,
  ]);
  equal("unknown" in message.data, false);
});

Deno.test("decodeClientMessage() keeps the exact text of GameData's inner data", () => {
  const message = decoded(
    '{"type":"GameData","data":{"data": {"tick": 9007199254740993, "x": 1.0, "s": "}\\"{"} ,"to_player":null}}',
  );
  ok(message.type === "GameData");
  deepEqual(message.data.data, new RawJson('{"tick": 9007199254740993, "x": 1.0, "s": "}\\"{"}'));
  // Duplicate members: the last one wins, as in JSON.parse; escaped keys are decoded.
  const dup = decoded(
    '{"type":"GameData","data":{"data":1,"\\u0064ata":[2.50, null]},"data":{"data":"last"}}',
  );
  ok(dup.type === "GameData");
  deepEqual(dup.data.data, new RawJson('"last"'));
  const nul = decoded('{"data":{"data":null},"type":"GameData"}');
  ok(nul.type === "GameData");
  deepEqual(nul.data.data, new RawJson("null"));
});

Deno.test("decodeClientMessage() normalises UUIDs in any standard spelling", () => {
  const id = "3f2b8c1e-9a47-4d0b-8e21-6c5f0a9d7b34";
  for (
    const spelling of [
      id,
      id.toUpperCase(),
      id.replaceAll("-", ""),
      `{${id}}`,
      `urn:uuid:${id}`,
      `URN:UUID:${id.toUpperCase()}`,
    ]
  ) {
    const message = decoded(`{"type":"GameData","data":{"data":0,"to_player":"${spelling}"}}`);
    ok(message.type === "GameData");
    equal(message.data.to_player, id);
  }
  equal(normalizeUuid(`{${id.replaceAll("-", "")}}`), undefined);
  equal(normalizeUuid(id.slice(1)), undefined);
});

Deno.test("decodeClientMessage() canonicalises ConnectionInfo", () => {
  const info = (json: string) => {
    const message = decoded(`{"type":"ProvideConnectionInfo","data":{"connection_info":${json}}}`);
    ok(message.type === "ProvideConnectionInfo");
    return JSON.stringify(message.data.connection_info);
  };
  equal(
    info('{"port":7777,"type":"direct","host":"h","x":1}'),
    '{"type":"direct","host":"h","port":7777}',
  );
  equal(
    info('{"type":"relay","token":"t","allocation_id":"a","port":1,"host":"h"}'),
    '{"type":"relay","host":"h","port":1,"transport":"auto","allocation_id":"a","token":"t"}',
  );
  equal(
    info(
      '{"type":"relay","host":"h","port":1,"transport":"udp","allocation_id":"a","token":"t","client_id":7}',
    ),
    '{"type":"relay","host":"h","port":1,"transport":"udp","allocation_id":"a","token":"t","client_id":7}',
  );
  equal(
    info('{"type":"webrtc","ice_candidates":[]}'),
    '{"type":"webrtc","sdp":null,"ice_candidates":[]}',
  );
  equal(info('{"type":"custom","data":null}'), '{"type":"custom","data":null}');
  equal(
    info('{"type":"unity_relay","key":"k","allocation_id":"a","connection_data":"c"}'),
    '{"type":"unity_relay","allocation_id":"a","connection_data":"c","key":"k"}',
  );
});

Deno.test("encodeServerMessage() writes type first, omits data for payload-less messages", () => {
  equal(encodeServerMessage({ type: "Pong" }), '{"type":"Pong"}');
  equal(encodeServerMessage({ type: "RoomLeft" }), '{"type":"RoomLeft"}');
  equal(
    encodeServerMessage({ type: "AuthorityResponse", data: { granted: true, reason: null } }),
    '{"type":"AuthorityResponse","data":{"granted":true,"reason":null}}',
  );
  const info: ServerMessage = {
    type: "ProtocolInfo",
    data: { platform: undefined, capabilities: [], game_data_formats: ["json"] },
  };
  equal(
    encodeServerMessage(info),
    '{"type":"ProtocolInfo","data":{"capabilities":[],"game_data_formats":["json"]}}',
  );
});

Deno.test("encodeServerMessage() forwards raw game data verbatim", () => {
  const from = "3f2b8c1e-9a47-4d0b-8e21-6c5f0a9d7b34";
  equal(
    encodeServerMessage({
      type: "GameData",
      data: { from_player: from, data: new RawJson("[1.0, 9007199254740993]") },
    }),
    `{"type":"GameData","data":{"from_player":"${from}","data":[1.0, 9007199254740993]}}`,
  );
  equal(
    encodeServerMessage({ type: "GameData", data: { from_player: from, data: { a: "b" } } }),
    `{"type":"GameData","data":{"from_player":"${from}","data":{"a":"b"}}}`,
  );
  const text = encodeServerMessage({ type: "GameData", data: { from_player: from, data: null } });
  deepEqual(JSON.parse(text).data, { from_player: from, data: null });
});

Deno.test("decodeClientMessage() decodes bare payload-less frames as the schema does", () => {
  for (const type of ["LeaveRoom", "Ping", "PlayerReady", "LeaveSpectator"]) {
    const fast = decodeClientMessage(`{"type":"${type}"}`);
    // Another spelling of the same message takes the general path (parse + schema).
    const general = decodeClientMessage(`{ "type": "${type}" }`);
    deepEqual(fast, general, type);
    equal(fast.ok, true);
  }
  // Unknown or payload-carrying types are not on the fast path.
  equal(decodeClientMessage('{"type":"JoinRoom"}').ok, false);
  equal(decodeClientMessage('{"type":"Reconnect"}').ok, false);
});

/**
 * `value` as text that tells `{a: undefined}` from `{}` and `undefined` from `null`, members in
 * order (`deepEqual` of `node:assert/strict` takes `null` for `undefined` under Deno).
 */
function shape(value: unknown): string {
  return JSON.stringify(value, (_key, member) => member === undefined ? "<undefined>" : member);
}

Deno.test("JoinRoom without the schema run gives exactly what the schema gives, on valid and invalid input", () => {
  // Seeded (mulberry32): the same 20,000 cases every run.
  let seed = 18;
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  const junk = [null, 0, -1, 1.5, 256, 255, -0, 4, true, false, "", "x", [], {}, ["a"], { a: 1 }];
  // Per member: values the schema accepts, then more it may not.
  const members: Record<string, [readonly unknown[], readonly unknown[]]> = {
    game_name: [["game", "", "ünï"], junk],
    room_code: [["ABC123", "", null], junk],
    player_name: [["a", ""], junk],
    max_players: [[0, 1, 8, 255, -0, null], [256, -1, 2.5, 1e300, "4", ...junk]],
    supports_authority: [[true, false, null], junk],
    relay_transport: [["tcp", "udp", "websocket", "auto", null], ["TCP", "quic", ...junk]],
    create: [["if_missing", "never", "always", null], ["sometimes", ...junk]],
    authority_handover: [[true, false, null], junk],
    extra: [["ignored", ...junk], []],
    ["__proto__"]: [[{ polluted: true }, ...junk], []],
  };
  let accepted = 0;
  let rejected = 0;
  for (let i = 0; i < 20_000; i++) {
    const data: Record<string, unknown> = {};
    // Random member order; each member absent, valid (mostly) or maybe invalid.
    for (const name of Object.keys(members).sort(() => random() - 0.5)) {
      const roll = random();
      if (roll < 0.25) continue;
      const [valid, other] = members[name]!;
      const value = roll < 0.95 || other.length === 0 ? pick(valid) : pick(other);
      Object.defineProperty(data, name, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    const roll = random();
    const raw: unknown = roll < 0.9
      ? { type: "JoinRoom", data }
      : roll < 0.93
      ? { data, type: "JoinRoom", extra: 1 }
      : roll < 0.96
      ? { type: "JoinRoom", data: pick([null, [], "x", 1, [data]]) }
      : { type: pick(["joinroom", "JoinAsSpectator", "GameData"]), data };
    const text = JSON.stringify(raw);
    const parsed = JSON.parse(text);
    const schema = ClientMessage.safeParse(parsed);
    const fast = checkedJoinRoom(JSON.parse(text));
    if (schema.success) {
      accepted++;
      equal(shape(fast), shape(schema.data), text);
    } else {
      rejected++;
      equal(fast, undefined, text);
    }
    // And the decoder as a whole answers as the schema does.
    const decoded = decodeClientMessage(text);
    equal(decoded.ok, schema.success, text);
    if (decoded.ok && schema.success) equal(shape(decoded.message), shape(schema.data), text);
  }
  // Both sides were exercised.
  ok(accepted > 2_000 && rejected > 2_000, `${accepted} accepted, ${rejected} rejected`);
});
