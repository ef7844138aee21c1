import { deepEqual, equal } from "node:assert/strict";
import { type FeedEvent, OperatorFeed } from "./operator_feed.ts";

const T0 = 1_700_000_000_000;

function feed(historySamples = 3) {
  const counts = { rooms: 2, players: 5, spectators: 1, heldSeats: 0 };
  let maintenance = false;
  const subject = new OperatorFeed(
    {
      connections: () => 7,
      stats: () => counts,
      maintenance: () => maintenance,
    },
    { liveIntervalMs: 1000, historyIntervalMs: 5000, historySamples },
    T0,
  );
  return { subject, counts, setMaintenance: (on: boolean) => maintenance = on };
}

Deno.test("OperatorFeed.tick() samples delivered messages, p99 relay latency and rejections per second", () => {
  const { subject } = feed();
  subject.observe({ type: "game_data", recipients: 3 });
  subject.observe({ type: "game_data", recipients: 1 });
  for (let i = 0; i < 99; i++) {
    subject.observe({ type: "handled", message: "GameData", outcome: "relayed", seconds: 0.001 });
  }
  subject.observe({ type: "handled", message: "GameData", outcome: "relayed", seconds: 0.5 });
  subject.observe({ type: "handled", message: "JoinRoom", outcome: "joined", seconds: 9 });
  subject.observe({ type: "join_failed", errorCode: "ROOM_FULL", creating: false });
  subject.observe({ type: "rate_limited", scope: "join" }); // its join_failed is counted
  subject.observe({ type: "rate_limited", scope: "connections" });
  const sample = subject.tick(T0 + 2000);
  deepEqual(
    [sample.delivered_per_sec, sample.rejections_per_sec, sample.connections, sample.rooms],
    [2, 1, 7, 2],
  );
  equal(Math.round(sample.relay_p99_ms!), 1, "the rank-99 sample of 100 is a 1 ms one");
  const quiet = subject.tick(T0 + 3000);
  deepEqual([quiet.delivered_per_sec, quiet.relay_p99_ms, quiet.rejections_per_sec], [0, null, 0]);
});

Deno.test("OperatorFeed.tick() samples connection ends and drops (code 1006 only, any cause or initiator) per second of each interval", () => {
  const { subject } = feed();
  const ended = (code: number, initiator: "client" | "server", cause?: "eof" | "destroyed") =>
    subject.observe({
      type: "disconnected",
      connectionId: `c${code}`,
      ip: "203.0.113.7",
      code,
      initiator,
      ...(cause ? { cause } : {}),
    });
  ended(1000, "client");
  ended(1001, "server"); // the idle timeout: a close handshake
  ended(1011, "server");
  ended(1006, "client", "eof");
  ended(1006, "server", "destroyed");
  const sample = subject.tick(T0 + 2000);
  deepEqual([sample.connection_closes_per_sec, sample.connection_drops_per_sec], [2.5, 1]);
  ended(1006, "client", "eof");
  const next = subject.tick(T0 + 3000);
  deepEqual([next.connection_closes_per_sec, next.connection_drops_per_sec], [1, 1]);
  const quiet = subject.tick(T0 + 5000);
  deepEqual([quiet.connection_closes_per_sec, quiet.connection_drops_per_sec], [0, 0]);
  // The history's 5 s interval counts all six ends, three of them drops.
  const [history] = subject.history();
  deepEqual([history?.connection_closes_per_sec, history?.connection_drops_per_sec], [1.2, 0.6]);
});

Deno.test("OperatorFeed.history() keeps the last samples of each history interval, oldest first", () => {
  const { subject, counts } = feed(3);
  for (let second = 1; second <= 25; second++) {
    counts.rooms = second;
    subject.tick(T0 + second * 1000);
  }
  // Every 5 s a sample: at 5, 10, 15, 20, 25 s; the ring holds 3.
  deepEqual(subject.history().map((s) => [s.t - T0, s.rooms]), [
    [15_000, 15],
    [20_000, 20],
    [25_000, 25],
  ]);
  equal(feed().subject.history().length, 0);
});

Deno.test("OperatorFeed publishes samples, room events and actions to subscribers until they leave", () => {
  const { subject, setMaintenance } = feed();
  const seen: FeedEvent[] = [];
  subject.observe({
    type: "room_created",
    gameName: "orbit",
    roomCode: "AAAAAA",
    roomId: "r",
    playerId: "p",
  });
  const leave = subject.subscribe((event) => seen.push(event));
  equal(subject.subscribers, 1);
  subject.observe({
    type: "room_created",
    gameName: "orbit",
    roomCode: "BBBBBB",
    roomId: "r",
    playerId: "p",
  });
  subject.observe({ type: "game_data", recipients: 1 }); // counted, not published
  setMaintenance(true);
  subject.tick(T0 + 1000);
  subject.publish({
    event: "action",
    data: { action: "close_room", target: "orbit/BBBBBB", at: 1 },
  });
  leave();
  subject.tick(T0 + 2000);
  deepEqual(seen.map((e) => e.event), ["room", "sample", "action"]);
  deepEqual(seen[0]!.data, { type: "room_created", game_name: "orbit", room_code: "BBBBBB" });
  equal((seen[1]!.data as { maintenance: boolean }).maintenance, true);
  equal(subject.subscribers, 0);
});
