/**
 * End-to-end game flows over real WebSockets against a server on an OS-assigned port.
 */
import { inProcessOnly } from "./cluster_serve.ts";
import { deepEqual, equal, match, notEqual, ok } from "node:assert/strict";
import { connect, joinAsSpectator, joinRoom, serve } from "./helpers.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

Deno.test("JoinRoom without a code creates a room another client joins by its code", async () => {
  await using server = await serve();
  await using mira = await connect(server);
  await using tobias = await connect(server);

  mira.send(joinRoom(null, "Mira", { max_players: 3 }));
  const created = (await mira.next("RoomJoined")).data;
  match(created.room_code, /^[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{6}$/);
  match(created.player_id, UUID);
  match(created.room_id, UUID);
  equal(created.is_authority, true);
  equal(created.lobby_state, "waiting");
  match(created.current_players[0].connected_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  match(created.reconnection_token, /^[A-Za-z0-9_-]{43}$/);

  tobias.send(joinRoom(created.room_code.toLowerCase(), "Tobias"));
  const joined = (await tobias.next("RoomJoined")).data;
  equal(joined.room_id, created.room_id);
  equal(joined.max_players, 3);
  deepEqual(joined.current_players.map((p: { name: string }) => p.name), ["Mira", "Tobias"]);
  notEqual(joined.player_id, created.player_id);

  const announced = (await mira.next("PlayerJoined")).data.player;
  deepEqual([announced.id, announced.name, announced.is_authority, announced.is_ready], [
    joined.player_id,
    "Tobias",
    false,
    false,
  ]);
});

Deno.test("JoinRoom into a full room fails with ROOM_FULL and changes nothing", {
  ignore: inProcessOnly("it reads server.engine.lookup()"),
}, async () => {
  await using server = await serve();
  await using a = await connect(server);
  await using b = await connect(server);
  await using c = await connect(server);
  a.send(joinRoom("FULL01", "a", { max_players: 2 }));
  await a.next("RoomJoined");
  b.send(joinRoom("FULL01", "b"));
  await b.next("RoomJoined");
  c.send(joinRoom("FULL01", "c"));
  deepEqual((await c.next("RoomJoinFailed")).data, {
    reason: "Room is full",
    error_code: "ROOM_FULL",
  });
  await a.next("PlayerJoined");
  await a.next("LobbyStateChanged");
  await a.expectNothingElse();
  equal(server.engine.lookup("orbit", "FULL01")?.players, 2);
});

Deno.test("GameData reaches the other players and spectators, with no echo to the sender", async () => {
  await using server = await serve();
  await using a = await connect(server);
  await using b = await connect(server);
  await using c = await connect(server);
  await using watcher = await connect(server);
  a.send(joinRoom("RELAY1", "a"));
  const { player_id: aId } = (await a.next("RoomJoined")).data;
  b.send(joinRoom("RELAY1", "b"));
  await b.next("RoomJoined");
  c.send(joinRoom("RELAY1", "c"));
  await c.next("RoomJoined");
  watcher.send(joinAsSpectator("relay1", "w"));
  await watcher.next("SpectatorJoined");
  await a.waitFor("NewSpectatorJoined");
  await b.waitFor("NewSpectatorJoined");
  await c.next("NewSpectatorJoined");

  // Exact text is forwarded: number spelling and integers beyond 2^53 survive.
  const rawFrames = [b, c, watcher].map((receiver) =>
    new Promise<string>((resolve) => {
      receiver.socket.addEventListener("message", (event) => resolve(event.data as string), {
        once: true,
      });
    })
  );
  a.send('{"type":"GameData","data":{"data":{"tick":9007199254740993,"x":1.0}}}');
  const expected =
    `{"type":"GameData","data":{"from_player":"${aId}","data":{"tick":9007199254740993,"x":1.0}}}`;
  deepEqual(await Promise.all(rawFrames), [expected, expected, expected]);
  for (const receiver of [b, c, watcher]) {
    equal((await receiver.next("GameData")).data.from_player, aId);
  }
  await a.expectNothingElse();
});

Deno.test("GameData with to_player reaches only the target", async () => {
  await using server = await serve();
  await using a = await connect(server);
  await using b = await connect(server);
  await using c = await connect(server);
  a.send(joinRoom("TARGET", "a"));
  const { player_id: aId } = (await a.next("RoomJoined")).data;
  b.send(joinRoom("TARGET", "b"));
  const { player_id: bId } = (await b.next("RoomJoined")).data;
  c.send(joinRoom("TARGET", "c"));
  await c.next("RoomJoined");
  await a.next("PlayerJoined");
  await a.next("PlayerJoined");
  await b.next("PlayerJoined");

  a.send({ type: "GameData", data: { data: { sdp: "v=0" }, to_player: bId.toUpperCase() } });
  deepEqual((await b.next("GameData")).data, { from_player: aId, data: { sdp: "v=0" } });
  await c.expectNothingElse();
  a.send({ type: "GameData", data: { data: 1, to_player: aId } });
  deepEqual((await a.next("Error")).data, {
    message: "Cannot send game data to yourself",
    error_code: "INVALID_INPUT",
  });
  a.send({ type: "GameData", data: { data: 1, to_player: crypto.randomUUID() } });
  deepEqual((await a.next("Error")).data, {
    message: "Target player is not in this room",
    error_code: "INVALID_INPUT",
  });
  await b.expectNothingElse();
});

Deno.test("Ready players move the lobby to finalized and everyone gets GameStarting", async () => {
  await using server = await serve();
  await using a = await connect(server);
  await using b = await connect(server);
  a.send(joinRoom("LOBBY1", "a", { max_players: 2 }));
  const { player_id: aId } = (await a.next("RoomJoined")).data;
  a.send({ type: "PlayerReady" });
  deepEqual((await a.next("LobbyStateChanged")).data, {
    lobby_state: "waiting",
    ready_players: [aId],
    all_ready: false,
  });
  b.send(joinRoom("LOBBY1", "b"));
  const joined = (await b.next("RoomJoined")).data;
  equal(joined.lobby_state, "lobby");
  deepEqual(joined.ready_players, [aId]);
  equal((await b.next("LobbyStateChanged")).data.lobby_state, "lobby");
  await a.next("PlayerJoined");
  equal((await a.next("LobbyStateChanged")).data.lobby_state, "lobby");

  b.send({
    type: "ProvideConnectionInfo",
    data: {
      connection_info: {
        type: "relay",
        host: "relay.example.net",
        port: 4000,
        allocation_id: "x",
        token: "t",
      },
    },
  });
  b.send({ type: "PlayerReady", data: {} });
  for (const client of [a, b]) {
    deepEqual((await client.next("LobbyStateChanged")).data, {
      lobby_state: "finalized",
      ready_players: [aId, joined.player_id],
      all_ready: true,
    });
    deepEqual((await client.next("GameStarting")).data.peer_connections, [
      { player_id: aId, player_name: "a", is_authority: true, relay_type: "matchbox" },
      {
        player_id: joined.player_id,
        player_name: "b",
        is_authority: false,
        relay_type: "matchbox",
        connection_info: {
          type: "relay",
          host: "relay.example.net",
          port: 4000,
          transport: "auto",
          allocation_id: "x",
          token: "t",
        },
      },
    ]);
  }
});

Deno.test("Authority can be released, claimed and is reported to every member", async () => {
  await using server = await serve();
  await using a = await connect(server);
  await using b = await connect(server);
  await using watcher = await connect(server);
  a.send(joinRoom("AUTH01", "a"));
  const { player_id: aId } = (await a.next("RoomJoined")).data;
  b.send(joinRoom("AUTH01", "b"));
  const { player_id: bId } = (await b.next("RoomJoined")).data;
  await a.next("PlayerJoined");
  watcher.send(joinAsSpectator("AUTH01", "w"));
  await watcher.next("SpectatorJoined");
  await a.next("NewSpectatorJoined");
  await b.next("NewSpectatorJoined");

  b.send({ type: "AuthorityRequest", data: { become_authority: true } });
  deepEqual((await b.next("AuthorityResponse")).data, {
    granted: false,
    reason: "Another player already has authority",
    error_code: "AUTHORITY_CONFLICT",
  });
  await b.expectNothingElse();
  a.send({ type: "AuthorityRequest", data: { become_authority: false } });
  deepEqual((await a.next("AuthorityResponse")).data, { granted: true, reason: null });
  for (const client of [a, b, watcher]) {
    deepEqual((await client.next("AuthorityChanged")).data, {
      authority_player: null,
      you_are_authority: false,
    });
  }
  b.send({ type: "AuthorityRequest", data: { become_authority: true } });
  deepEqual((await b.next("AuthorityResponse")).data, { granted: true, reason: null });
  deepEqual((await b.next("AuthorityChanged")).data, {
    authority_player: bId,
    you_are_authority: true,
  });
  deepEqual((await a.next("AuthorityChanged")).data, {
    authority_player: bId,
    you_are_authority: false,
  });
  deepEqual((await watcher.next("AuthorityChanged")).data, {
    authority_player: bId,
    you_are_authority: false,
  });
  // The holder leaving vacates authority for everyone left.
  b.send({ type: "LeaveRoom" });
  await b.next("RoomLeft");
  deepEqual((await a.next("PlayerLeft")).data, { player_id: bId });
  deepEqual((await a.next("AuthorityChanged")).data, {
    authority_player: null,
    you_are_authority: false,
  });
  equal(aId === bId, false);
});

Deno.test("Spectators watch, may not act, and leave cleanly", async () => {
  await using server = await serve();
  await using player = await connect(server);
  await using jun = await connect(server);
  await using kai = await connect(server);
  player.send(joinRoom("SPEC01", "p"));
  const { room_id } = (await player.next("RoomJoined")).data;

  jun.send(joinAsSpectator("nope00", "Jun"));
  deepEqual((await jun.next("SpectatorJoinFailed")).data, {
    reason: "Room not found",
    error_code: "ROOM_NOT_FOUND",
  });
  jun.send(joinAsSpectator("spec01", "Jun"));
  const joined = (await jun.next("SpectatorJoined")).data;
  deepEqual([joined.room_id, joined.room_code, joined.lobby_state, joined.reason], [
    room_id,
    "SPEC01",
    "waiting",
    "joined",
  ]);
  equal((await player.next("NewSpectatorJoined")).data.spectator.name, "Jun");

  kai.send(joinAsSpectator("SPEC01", "Kai"));
  await kai.next("SpectatorJoined");
  deepEqual(
    (await jun.next("NewSpectatorJoined")).data.current_spectators.map((s: { name: string }) =>
      s.name
    ),
    [
      "Jun",
      "Kai",
    ],
  );
  await player.next("NewSpectatorJoined");

  for (
    const [message, text] of [
      [{ type: "GameData", data: { data: 1 } }, "Spectators cannot send game data"],
      [{ type: "PlayerReady" }, "Spectators cannot change ready status"],
      [
        { type: "AuthorityRequest", data: { become_authority: true } },
        "Spectators cannot request authority",
      ],
      [
        { type: "ProvideConnectionInfo", data: { connection_info: { type: "custom", data: {} } } },
        "Spectators cannot provide connection info",
      ],
    ] as const
  ) {
    jun.send(message);
    deepEqual((await jun.next("Error")).data, {
      message: text,
      error_code: "SPECTATOR_NOT_ALLOWED",
    });
  }
  jun.send(new Uint8Array([0x81, 0xa1, 0x61, 0x01]));
  equal((await jun.next("Error")).data.error_code, "SPECTATOR_NOT_ALLOWED");
  jun.send(joinRoom("SPEC01", "Jun"));
  equal((await jun.next("RoomJoinFailed")).data.error_code, "ALREADY_IN_ROOM");

  jun.send({ type: "LeaveSpectator" });
  deepEqual((await jun.next("SpectatorLeft")).data.reason, "voluntary_leave");
  deepEqual((await player.next("SpectatorDisconnected")).data.reason, "voluntary_leave");
  await kai.next("SpectatorDisconnected");
  await kai.close();
  const gone = (await player.next("SpectatorDisconnected")).data;
  deepEqual([gone.reason, gone.current_spectators], ["disconnected", []]);
  await jun.expectNothingElse();
});

Deno.test(
  "Without reconnection a disconnect releases the seat: PlayerLeft, authority vacated, lobby back to waiting",
  {
    ignore: inProcessOnly("it reads server.engine.lookup()"),
  },
  async () => {
    await using server = await serve((config) => config.server.enable_reconnection = false);
    await using a = await connect(server);
    const b = await connect(server);
    a.send(joinRoom("DROP01", "a", { max_players: 2 }));
    await a.next("RoomJoined");
    b.send(joinRoom("DROP01", "b"));
    const { player_id: bId } = (await b.next("RoomJoined")).data;
    b.send({ type: "AuthorityRequest", data: { become_authority: true } });
    await b.waitFor("AuthorityResponse");
    a.send({ type: "AuthorityRequest", data: { become_authority: false } });
    await a.waitFor("AuthorityResponse");
    b.send({ type: "AuthorityRequest", data: { become_authority: true } });
    await b.waitFor("AuthorityChanged");
    await a.waitFor("AuthorityChanged");
    await a.waitFor("AuthorityChanged");
    await b.close();
    deepEqual((await a.next("PlayerLeft")).data, { player_id: bId });
    deepEqual((await a.next("AuthorityChanged")).data, {
      authority_player: null,
      you_are_authority: false,
    });
    deepEqual((await a.next("LobbyStateChanged")).data, {
      lobby_state: "waiting",
      ready_players: [],
      all_ready: false,
    });
    equal(server.engine.lookup("orbit", "DROP01")?.players, 1);
  },
);

Deno.test("LeaveRoom answers RoomLeft and no more room traffic follows", async () => {
  await using server = await serve();
  await using a = await connect(server);
  await using b = await connect(server);
  a.send(joinRoom("LEAVE1", "a"));
  await a.next("RoomJoined");
  b.send(joinRoom("LEAVE1", "b"));
  await b.next("RoomJoined");
  await a.next("PlayerJoined");
  b.send({ type: "LeaveRoom" });
  await b.next("RoomLeft");
  await a.next("PlayerLeft");
  a.send({ type: "GameData", data: { data: "after" } });
  a.send({ type: "PlayerReady" });
  await a.next("LobbyStateChanged");
  await b.expectNothingElse();
  // A second LeaveRoom gets no reply at all.
  b.send({ type: "LeaveRoom" });
  await b.expectNothingElse();
  b.send(joinRoom("LEAVE1", "b"));
  ok((await b.next("RoomJoined")).data.current_players.length === 2);
});

Deno.test("A single-player room gets GameStarting right after RoomJoined", async () => {
  await using server = await serve();
  await using solo = await connect(server);
  solo.send(joinRoom(null, "solo", { max_players: 1 }));
  const { player_id } = (await solo.next("RoomJoined")).data;
  deepEqual((await solo.next("GameStarting")).data.peer_connections, [
    { player_id, player_name: "solo", is_authority: true, relay_type: "matchbox" },
  ]);
});

Deno.test("Authenticate is answered with Authenticated then ProtocolInfo while auth is off", async () => {
  await using server = await serve();
  await using client = await connect(server);
  client.send({
    type: "Authenticate",
    data: { app_id: "whatever", platform: "unity", sdk_version: "1.12.0" },
  });
  deepEqual((await client.next("Authenticated")).data, {
    app_name: "default",
    rate_limits: { per_minute: 1000, per_hour: 60000, per_day: 1440000 },
  });
  const info = (await client.next("ProtocolInfo")).data;
  deepEqual(
    [info.platform, info.minimum_version, info.recommended_version, info.game_data_formats],
    ["unity", "1.10.0", "1.12.0", ["json", "message_pack"]],
  );
  ok(info.capabilities.includes("targeted-game-data"));
  ok(info.capabilities.includes("reconnection-token"));
  ok(info.capabilities.includes("replay-truncated"));
  ok(info.capabilities.includes("relay-mirror"));
  deepEqual(info.player_name_rules.allowed_symbols, ["-", "_"]);
  client.send({ type: "Authenticate", data: { app_id: "again" } });
  await client.expectNothingElse();
});
