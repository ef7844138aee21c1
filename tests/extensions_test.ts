/**
 * docs/spec/EXTENSIONS.md E9–E11 over real WebSockets: capabilities in the spec's order, an unknown
 * `create` value is a parse error, join-only and create-only, presence events to opted-in
 * connections only, and authority handover reported in the room lookup and announced on leave.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { connect, joinRoom, serve } from "./helpers.ts";

Deno.test("E9–E11 capabilities follow the spec's order; presence-events only with reconnection", async () => {
  await using server = await serve((config) => config.security.public_room_listing = true);
  await using client = await connect(server);
  client.send({ type: "Authenticate", data: { app_id: "orbit" } });
  await client.next("Authenticated");
  const capabilities: string[] = (await client.next("ProtocolInfo")).data.capabilities;
  deepEqual(capabilities.slice(capabilities.indexOf("reconnection-token")), [
    "reconnection-token",
    "replay-truncated",
    "targeted-game-data",
    "room-lookup",
    "room-listing",
    "join-modes",
    "presence-events",
    "authority-handover",
  ]);

  await using off = await serve((config) => config.server.enable_reconnection = false);
  await using other = await connect(off);
  other.send({ type: "Authenticate", data: { app_id: "orbit", features: ["presence-events"] } });
  deepEqual((await other.next("Authenticated")).data.features, []);
  const without: string[] = (await other.next("ProtocolInfo")).data.capabilities;
  ok(!without.includes("presence-events"));
  ok(without.includes("join-modes") && without.includes("authority-handover"));
});

Deno.test("E9 over the wire: join-only, create-only, and a bad create value", async () => {
  await using server = await serve();
  await using mira = await connect(server);
  await using tobias = await connect(server);
  tobias.send(joinRoom("Q7KM3P", "Tobias", { create: "sometimes" }));
  deepEqual((await tobias.next("Error")).data, {
    message: "Invalid client message",
    error_code: "INVALID_INPUT",
  });
  tobias.send(joinRoom("Q7KM3P", "Tobias", { create: "never" }));
  deepEqual((await tobias.next("RoomJoinFailed")).data, {
    reason: "Room not found",
    error_code: "ROOM_NOT_FOUND",
  });
  mira.send(joinRoom("Q7KM3P", "Mira", { create: "always", authority_handover: true }));
  await mira.next("RoomJoined");
  tobias.send(joinRoom("Q7KM3P", "Tobias", { create: "always" }));
  equal((await tobias.next("RoomJoinFailed")).data.error_code, "ROOM_CREATION_FAILED");
  tobias.send(joinRoom("q7km3p", "Tobias", { create: "never" }));
  await tobias.next("RoomJoined");
  const summary = await (await fetch(`${server.url}/v2/rooms/orbit/Q7KM3P`)).json();
  equal(summary.authority_handover, true);
});

Deno.test("E10/E11 over the wire: presence to the opted-in only, handover on leave", async () => {
  await using server = await serve();
  await using mira = await connect(server);
  await using tobias = await connect(server);
  await using nina = await connect(server);
  mira.send({ type: "Authenticate", data: { app_id: "orbit", features: ["presence-events"] } });
  deepEqual((await mira.next("Authenticated")).data.features, ["presence-events"]);
  await mira.next("ProtocolInfo");
  mira.send(joinRoom("HAND01", "Mira", { max_players: 3, authority_handover: true }));
  await mira.next("RoomJoined");
  tobias.send(joinRoom("HAND01", "Tobias"));
  const tobiasJoined = await tobias.next("RoomJoined");
  nina.send(joinRoom("HAND01", "Nina"));
  const ninaJoined = await nina.next("RoomJoined");
  await tobias.waitFor("LobbyStateChanged");
  await mira.waitFor("LobbyStateChanged");

  await nina.close();
  deepEqual((await mira.next("PlayerDisconnected")).data, {
    player_id: ninaJoined.data.player_id,
    seat_held_secs: 300,
  });
  await tobias.expectNothingElse(); // not opted in: v2, nobody is told

  mira.send({ type: "LeaveRoom" });
  await mira.next("RoomLeft");
  await tobias.next("PlayerLeft");
  deepEqual((await tobias.next("AuthorityChanged")).data, {
    authority_player: tobiasJoined.data.player_id,
    you_are_authority: true,
  });
});
