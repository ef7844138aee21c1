import { deepEqual, equal } from "node:assert/strict";
import { LocalFanout } from "./memory.ts";

Deno.test("LocalFanout.deliver() hands the same frame to each attached peer, skipping others", () => {
  const fanout = new LocalFanout();
  const got: Record<string, unknown[]> = { a: [], b: [] };
  for (const id of ["a", "b"]) {
    fanout.attach(id, {
      send: (frame) => got[id]!.push(frame),
      close: (code) => got[id]!.push(code),
    });
  }
  fanout.deliver("frame-1", ["a", "b", "gone"]);
  fanout.close("b", 1001, "bye");
  equal(fanout.detach("a"), true);
  fanout.deliver("frame-2", ["a", "b"]);
  deepEqual(got, { a: ["frame-1"], b: ["frame-1", 1001, "frame-2"] });
  equal(fanout.size, 1);
});
