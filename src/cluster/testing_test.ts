/**
 * The test client's outbound model against the transport it stands for (`SocketPeer`,
 * src/transport/websocket.ts; docs/spec/SERVER.md §5.2).
 */
import { deepEqual, equal } from "node:assert/strict";
import { TestClient } from "./testing.ts";

const frame = (n: number) => JSON.stringify({ type: "GameData", data: { n } });
const received = (client: TestClient) => client.messages.map((m) => m.data?.n);

Deno.test("TestClient: a paused client's frames wait in order and arrive when it reads again", () => {
  const client = new TestClient();
  client.pause(3);
  equal(client.send(frame(1)), undefined);
  equal(client.send(frame(2)), undefined);
  deepEqual([received(client), client.queued], [[], 2]);
  client.resume();
  deepEqual([received(client), client.queued, client.lost], [[1, 2], 0, 0]);
  equal(client.send(frame(3)), undefined);
  deepEqual(received(client), [1, 2, 3]);
});

Deno.test("TestClient: the send that finds the queue full drops every waiting frame and itself, as SocketPeer reports it; the connection stays open until the server closes it, then every send is refused as closed", () => {
  const client = new TestClient();
  client.send(frame(0));
  client.pause(2);
  client.send(frame(1));
  client.send(frame(2));
  deepEqual(client.send(frame(3)), { reason: "overflow", dropped: 3 });
  deepEqual([client.queued, client.lost, client.lostAt, client.sentAfterLoss], [0, 3, 1, 0]);
  // Open until closed: a path that ignored the overflow would get this frame through.
  equal(client.send(frame(4)), undefined);
  equal(client.sentAfterLoss, 1);
  client.close(1013);
  deepEqual(client.send(frame(5)), { reason: "closed" });
  client.resume();
  // After the gap, frame 4 arrives before the close: the loss the consistency check reports.
  deepEqual([received(client), client.closed], [[0, 4], 1013]);
});

Deno.test("TestClient: a close while frames wait comes behind them: the client sees it once it reads them", () => {
  const client = new TestClient();
  client.pause(4);
  client.send(frame(1));
  client.close(4001);
  deepEqual([client.closed, client.send(frame(2))], [undefined, { reason: "closed" }]);
  client.resume();
  deepEqual([received(client), client.closed, client.lost], [[1], 4001, 0]);
});

Deno.test("TestClient: a stalled client refuses each frame alone as an overflow", () => {
  const client = new TestClient();
  client.stalled = true;
  deepEqual(client.send(frame(1)), { reason: "overflow", dropped: 1 });
  deepEqual([client.lost, client.lostAt], [1, 0]);
});
