import { deepEqual, equal } from "node:assert/strict";
import { SocketPeer } from "./websocket.ts";
import { LocalPeers } from "./local_peers.ts";

/** A stand-in for a server-side WebSocket that records what it is sent. */
class RecordingSocket {
  readyState = 1; // OPEN
  bufferedAmount = 0;
  sent: (string | Uint8Array)[] = [];
  /** When set, the peer reads nothing: every frame stays in the runtime's buffer. */
  stalled = false;
  send(frame: string | Uint8Array): void {
    this.sent.push(frame);
    if (this.stalled) {
      this.bufferedAmount += typeof frame === "string"
        ? new TextEncoder().encode(frame).length
        : frame.byteLength;
    }
  }
  close(): void {
    this.readyState = 3;
  }
  addEventListener(): void {}
}

function peer(options: { enableBatching: boolean; batchSize?: number; max?: number }) {
  const socket = new RecordingSocket();
  const sockPeer = new SocketPeer(socket as unknown as WebSocket, {
    maxBufferedBytes: options.max ?? 1 << 20,
    enableBatching: options.enableBatching,
    batchSize: options.batchSize ?? 10,
  });
  return { socket, peer: sockPeer };
}

Deno.test("SocketPeer with batching queues frames until flushed or batchSize is reached", () => {
  const { socket, peer: p } = peer({ enableBatching: true, batchSize: 3 });
  equal(p.send("a"), undefined);
  equal(p.send("b"), undefined);
  deepEqual(socket.sent, []);
  p.flush!();
  deepEqual(socket.sent, ["a", "b"]);
  p.send("c");
  p.send("d");
  p.send("e"); // the third queued frame writes the batch at once
  deepEqual(socket.sent, ["a", "b", "c", "d", "e"]);
  p.flush!();
  equal(socket.sent.length, 5, "nothing left to write");
});

Deno.test("SocketPeer without batching writes at once and has nothing to flush", () => {
  const { socket, peer: p } = peer({ enableBatching: false });
  equal(p.flush, undefined);
  p.send("a");
  deepEqual(socket.sent, ["a"]);
  // LocalPeers then keeps no list of peers to flush, and delivery still works.
  const fanout = new LocalPeers();
  fanout.attach("c1", p);
  equal(fanout.deliver("b", ["c1"]), undefined);
  fanout.flush();
  deepEqual(socket.sent, ["a", "b"]);
});

Deno.test("SocketPeer refuses frames to a socket that is not open, and past its budget", () => {
  const closed = peer({ enableBatching: true });
  closed.socket.readyState = 2; // CLOSING
  deepEqual(closed.peer.send("x"), { reason: "closed" });

  const slow = peer({ enableBatching: true, batchSize: 100, max: 65_536 });
  const frame = "x".repeat(30_000);
  equal(slow.peer.send(frame), undefined); // a frame into an empty buffer is always taken
  equal(slow.peer.send(frame), undefined);
  deepEqual(slow.peer.send(frame), { reason: "overflow", dropped: 3 });
  slow.peer.flush!();
  deepEqual(slow.socket.sent, [], "the queue was discarded");
  // Bytes the runtime has not written yet count too: a peer that reads nothing fills them.
  const stalled = peer({ enableBatching: true, max: 65_536 });
  stalled.socket.stalled = true;
  stalled.peer.send(frame);
  stalled.peer.flush!();
  equal(stalled.socket.bufferedAmount, 30_000);
  equal(stalled.peer.send(frame), undefined); // 30,000 + 30,000 fits
  stalled.peer.flush!();
  deepEqual(stalled.peer.send("z".repeat(10_000)), { reason: "overflow", dropped: 1 });
  equal(stalled.socket.sent.length, 2);
});
