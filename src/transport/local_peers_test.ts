import { deepEqual, equal } from "node:assert/strict";
import { LocalPeers } from "./local_peers.ts";

Deno.test("LocalPeers.deliver() hands the same frame to each attached peer, reporting others", () => {
  const peers = new LocalPeers();
  const got: Record<string, unknown[]> = { a: [], b: [], full: [] };
  for (const id of ["a", "b"]) {
    peers.attach(id, {
      send: (frame) => void got[id]!.push(frame),
      close: (code) => got[id]!.push(code),
    });
  }
  peers.attach("full", {
    send: () => ({ reason: "overflow", dropped: 3 }),
    close: (code) => got.full!.push(code),
  });
  deepEqual(peers.deliver("frame-1", ["a", "b", "gone", "full"]), [
    { id: "gone", failure: { reason: "gone" } },
    { id: "full", failure: { reason: "overflow", dropped: 3 } },
  ]);
  peers.close("b", 1001, "bye");
  equal(peers.detach("a"), true);
  equal(peers.deliver("frame-2", ["b"]), undefined);
  deepEqual(got, { a: ["frame-1"], b: ["frame-1", 1001, "frame-2"], full: [] });
  equal(peers.size, 2);
});

Deno.test("LocalPeers.flush() writes each peer that queued frames once, in queue order", () => {
  const peers = new LocalPeers();
  const flushed: string[] = [];
  for (const id of ["a", "b"]) {
    peers.attach(id, { send: () => undefined, flush: () => flushed.push(id), close: () => {} });
  }
  peers.deliver("x", ["b"]);
  peers.deliver("y", ["a", "b"]);
  peers.flush();
  peers.flush();
  deepEqual(flushed, ["b", "a"]);
});
