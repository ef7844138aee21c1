import { deepEqual, equal, ok } from "node:assert/strict";
import { decodeClientMessage, encodeServerMessage } from "./codec.ts";
import { normalizeUuid, RawJson, type ServerMessage } from "./messages.ts";

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
