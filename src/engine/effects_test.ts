import { deepEqual } from "node:assert/strict";
import { error, joinFailed, send, spectatorJoinFailed } from "./effects.ts";

Deno.test("send() addresses one id or a list; error() and the join failures carry error codes", () => {
  deepEqual(send("a", { type: "Pong" }), { kind: "send", to: ["a"], message: { type: "Pong" } });
  const to = ["a", "b"];
  deepEqual(send(to, { type: "RoomLeft" }), { kind: "send", to, message: { type: "RoomLeft" } });
  deepEqual(error("a", "Nope", "INVALID_INPUT"), {
    kind: "send",
    to: ["a"],
    message: { type: "Error", data: { message: "Nope", error_code: "INVALID_INPUT" } },
  });
  deepEqual(joinFailed("a", "Room is full", "ROOM_FULL", false), [
    {
      kind: "send",
      to: ["a"],
      message: {
        type: "RoomJoinFailed",
        data: { reason: "Room is full", error_code: "ROOM_FULL" },
      },
    },
    { kind: "event", event: { type: "join_failed", errorCode: "ROOM_FULL", creating: false } },
  ]);
  deepEqual(spectatorJoinFailed("a", "Room not found", "ROOM_NOT_FOUND"), {
    kind: "send",
    to: ["a"],
    message: {
      type: "SpectatorJoinFailed",
      data: { reason: "Room not found", error_code: "ROOM_NOT_FOUND" },
    },
  });
});
