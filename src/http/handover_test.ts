import { deepEqual, equal } from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { Duplex } from "node:stream";
import {
  attachUpgradeSocket,
  dropUpgradeSocket,
  takeUpgradeSocket,
  UpgradeRequest,
} from "./handover.ts";

function upgradeRequest(): UpgradeRequest {
  return new UpgradeRequest("GET", ["Host", "localhost"], "http", "/v2/ws");
}

Deno.test("takeUpgradeSocket hands the socket over once and tells the listener (onTaken) first", () => {
  const request = upgradeRequest();
  const socket = new Duplex();
  const taken: Duplex[] = [];
  attachUpgradeSocket(request, {
    message: {} as IncomingMessage,
    socket,
    head: new Uint8Array(0),
    onTaken: (s) => taken.push(s),
  });
  equal(takeUpgradeSocket(request)?.socket, socket);
  deepEqual(taken, [socket]);
  equal(takeUpgradeSocket(request), undefined, "a second take gets nothing");
  deepEqual(taken, [socket], "and does not call onTaken again");
  socket.destroy();
});

Deno.test("dropUpgradeSocket forgets the socket without calling onTaken", () => {
  const request = upgradeRequest();
  const socket = new Duplex();
  let calls = 0;
  attachUpgradeSocket(request, {
    message: {} as IncomingMessage,
    socket,
    head: new Uint8Array(0),
    onTaken: () => calls++,
  });
  dropUpgradeSocket(request);
  equal(calls, 0);
  equal(takeUpgradeSocket(request), undefined);
  equal(calls, 0);
  socket.destroy();
});
