import { deepEqual, equal } from "node:assert/strict";
import { LocalFanout } from "./memory.ts";

Deno.test("LocalFanout.deliver() hands the same frame to each attached peer, reporting others", () => {
  const fanout = new LocalFanout();
  const got: Record<string, unknown[]> = { a: [], b: [], full: [] };
  for (const id of ["a", "b"]) {
    fanout.attach(id, {
      send: (frame) => void got[id]!.push(frame),
      close: (code) => got[id]!.push(code),
    });
  }
  fanout.attach("full", {
    send: () => ({ reason: "overflow", dropped: 3 }),
    close: (code) => got.full!.push(code),
  });
  deepEqual(fanout.deliver("frame-1", ["a", "b", "gone", "full"]), [
    { id: "gone", failure: { reason: "gone" } },
    { id: "full", failure: { reason: "overflow", dropped: 3 } },
  ]);
  fanout.close("b", 1001, "bye");
  equal(fanout.detach("a"), true);
  equal(fanout.deliver("frame-2", ["b"]), undefined);
  deepEqual(got, { a: ["frame-1"], b: ["frame-1", 1001, "frame-2"], full: [] });
  equal(fanout.size, 2);
});
