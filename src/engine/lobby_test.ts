import { deepEqual, ok } from "node:assert/strict";
import { bare, engineWith, first, join, P1, P2, S1, spectate, summarize } from "./testing.ts";

const T0 = Date.UTC(2026, 2, 4, 18, 22, 5, 123);

Deno.test("Engine.handle() PlayerReady toggles readiness through waiting, lobby and finalized", () => {
  const engine = engineWith([P1, P2]);
  engine.handle(P1, join("ROOM01", "a", { max_players: 2 }), T0);
  deepEqual(first(engine.handle(P1, bare("PlayerReady"), T0), P1, "LobbyStateChanged").data, {
    lobby_state: "waiting",
    ready_players: [P1],
    all_ready: false,
  });
  engine.handle(P2, join("ROOM01", "b"), T0);
  engine.handle(P2, {
    type: "ProvideConnectionInfo",
    data: { connection_info: { type: "direct", host: "198.51.100.7", port: 7777 } },
  }, T0);
  const finalized = engine.handle(P2, bare("PlayerReady"), T0);
  deepEqual(summarize(finalized), [
    "p1 <- LobbyStateChanged finalized",
    "p2 <- LobbyStateChanged finalized",
    "p1 <- GameStarting",
    "p2 <- GameStarting",
  ]);
  deepEqual(first(finalized, P1, "LobbyStateChanged").data.all_ready, true);
  deepEqual(first(finalized, P1, "GameStarting").data.peer_connections, [
    { player_id: P1, player_name: "a", is_authority: true, relay_type: "matchbox" },
    {
      player_id: P2,
      player_name: "b",
      is_authority: false,
      relay_type: "matchbox",
      connection_info: { type: "direct", host: "198.51.100.7", port: 7777 },
    },
  ]);
  // Un-ready goes back to lobby; readying again is a rematch with a new GameStarting.
  deepEqual(summarize(engine.handle(P1, bare("PlayerReady"), T0)), [
    "p1 <- LobbyStateChanged lobby",
    "p2 <- LobbyStateChanged lobby",
  ]);
  ok(first(engine.handle(P1, bare("PlayerReady"), T0), P2, "GameStarting"));
});

Deno.test("Engine.handle() PlayerReady outside a room and from spectators is refused", () => {
  const engine = engineWith([P1, P2, S1]);
  deepEqual(summarize(engine.handle(P1, bare("PlayerReady"), T0)), ["p1 <- Error NOT_IN_ROOM"]);
  engine.handle(P2, join("ROOM01", "b"), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  deepEqual(first(engine.handle(S1, bare("PlayerReady"), T0), S1, "Error").data, {
    message: "Spectators cannot change ready status",
    error_code: "SPECTATOR_NOT_ALLOWED",
  });
});

Deno.test("Engine.handle() ProvideConnectionInfo is stored silently and shows in snapshots", () => {
  const engine = engineWith([P1, P2, S1]);
  const info = { type: "webrtc" as const, sdp: null, ice_candidates: ["candidate:1"] };
  const provide = (from: string) =>
    engine.handle(from, { type: "ProvideConnectionInfo", data: { connection_info: info } }, T0);
  deepEqual(first(provide(P1), P1, "Error").data, {
    message: "Not in a room",
    error_code: "NOT_IN_ROOM",
  });
  engine.handle(P1, join("ROOM01", "a"), T0);
  deepEqual(provide(P1), []);
  const joined = first(engine.handle(P2, join("ROOM01", "b"), T0), P2, "RoomJoined");
  deepEqual(joined.data.current_players[0]?.connection_info, info);
  engine.handle(S1, spectate("ROOM01"), T0);
  deepEqual(first(provide(S1), S1, "Error").data, {
    message: "Spectators cannot provide connection info",
    error_code: "SPECTATOR_NOT_ALLOWED",
  });
});
