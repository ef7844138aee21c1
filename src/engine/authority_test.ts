import { deepEqual } from "node:assert/strict";
import { engineWith, first, join, P1, P2, P3, S1, spectate, summarize } from "./testing.ts";

const T0 = Date.UTC(2026, 2, 4, 18, 22, 5, 123);

Deno.test("Engine.handle() AuthorityRequest answers exactly once per request", () => {
  const engine = engineWith([P1, P2, P3, S1]);
  const request = (from: string, become_authority: boolean) =>
    engine.handle(from, { type: "AuthorityRequest", data: { become_authority } }, T0);
  deepEqual(first(request(P1, true), P1, "AuthorityResponse").data, {
    granted: false,
    reason: "Not in a room",
    error_code: "NOT_IN_ROOM",
  });
  engine.handle(P1, join("ROOM01", "a"), T0);
  engine.handle(P2, join("ROOM01", "b"), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  deepEqual(summarize(request(P1, true)), ["p1 <- AuthorityResponse"]); // already holder
  deepEqual(first(request(P2, true), P2, "AuthorityResponse").data, {
    granted: false,
    reason: "Another player already has authority",
    error_code: "AUTHORITY_CONFLICT",
  });
  deepEqual(first(request(P2, false), P2, "AuthorityResponse").data, {
    granted: false,
    reason: "You do not have authority to release",
    error_code: "AUTHORITY_DENIED",
  });
  const released = request(P1, false);
  deepEqual(summarize(released), [
    "p1 <- AuthorityResponse",
    "p1 <- AuthorityChanged",
    "p2 <- AuthorityChanged",
    "s1 <- AuthorityChanged",
  ]);
  deepEqual(first(released, P1, "AuthorityResponse").data, { granted: true, reason: null });
  const claimed = request(P2, true);
  deepEqual(summarize(claimed), [
    "p2 <- AuthorityResponse",
    "p2 <- AuthorityChanged",
    "p1 <- AuthorityChanged",
    "s1 <- AuthorityChanged",
  ]);
  deepEqual(first(claimed, P2, "AuthorityChanged").data, {
    authority_player: P2,
    you_are_authority: true,
  });
  deepEqual(first(claimed, S1, "AuthorityChanged").data, {
    authority_player: P2,
    you_are_authority: false,
  });
  deepEqual(first(request(S1, true), S1, "Error").data, {
    message: "Spectators cannot request authority",
    error_code: "SPECTATOR_NOT_ALLOWED",
  });
  engine.handle(P3, join("ROOM02", "c", { supports_authority: false }), T0);
  deepEqual(first(request(P3, true), P3, "AuthorityResponse").data, {
    granted: false,
    reason: "Room does not support authority",
    error_code: "AUTHORITY_NOT_SUPPORTED",
  });
});
