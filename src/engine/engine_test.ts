import { deepEqual } from "node:assert/strict";

import { bare, engineWith, first, join, P1, P2, P3, S1, spectate, summarize } from "./testing.ts";

const T0 = Date.UTC(2026, 2, 4, 18, 22, 5, 123);

Deno.test("Engine.handle() Ping gets Pong and Reconnect fails while reconnection is off", () => {
  const engine = engineWith([P1]);
  deepEqual(summarize(engine.handle(P1, bare("Ping"), T0)), ["p1 <- Pong"]);
  deepEqual(
    first(
      engine.handle(P1, {
        type: "Reconnect",
        data: { player_id: P2, room_id: P3, auth_token: "x" },
      }, T0),
      P1,
      "ReconnectionFailed",
    ).data,
    {
      reason: "Reconnection is not enabled",
      error_code: "RECONNECTION_FAILED",
    },
  );
});

Deno.test("Engine.handleBinary() refuses binary frames from JSON connections and spectators", () => {
  const engine = engineWith([P1, S1]);
  engine.handle(P1, join("ROOM01", "a"), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  deepEqual(first(engine.handleBinary(P1, new Uint8Array([1]), T0), P1, "Error").data, {
    message: "Binary payloads are disabled for this connection",
    error_code: "INVALID_INPUT",
  });
  deepEqual(summarize(engine.handleBinary(S1, new Uint8Array([1]), T0)), [
    "s1 <- Error SPECTATOR_NOT_ALLOWED",
  ]);
});
