/**
 * A Redis that comes back rewound, its `epoch` key intact (docs/spec/SERVER.md §8.3 "Epoch",
 * §8.5.5): a real redis-server that saved a dump (`SAVE`, as the RDB snapshots of a distribution's
 * default redis.conf do) before room B was created, then was killed and started again on the same
 * port and directory, loading that dump, and three real server processes. B's `room:` entry is
 * missing from the loaded directory until B's home re-registers; meanwhile a `JoinRoom` with B's
 * code through another instance must answer `SERVICE_UNAVAILABLE`, never create a second room
 * with B's code, and once B's home has re-registered it must join room B. Earlier builds saw no
 * epoch change and created the second room (the conflict rule then took B's code from B).
 * Each test ends within ~20 s.
 */
import { equal, ok } from "node:assert/strict";
import { joinRoom, type Received, TestClient } from "./helpers.ts";
import { metric, pause, type RealCluster, startCluster } from "./cluster_helpers.ts";
import { IGNORE_WITHOUT_REDIS, redisCommand } from "./redis_server.ts";

const opts = { ignore: IGNORE_WITHOUT_REDIS, sanitizeResources: false, sanitizeOps: false };

/** Room A on instance 0, `SAVE`, then room B (code `ROOMB1`) on instance 0 with a member on 1. */
async function roomsAroundADump(
  cluster: RealCluster,
  beforeSave: () => Promise<void> = () => Promise.resolve(),
): Promise<{ roomB: Received; clients: TestClient[] }> {
  const port = cluster.redis.port;
  const alice = await TestClient.connect(cluster.wsUrl(0));
  alice.send(joinRoom("ROOMA1", "Alice"));
  await alice.next("RoomJoined");
  await beforeSave();
  equal(await redisCommand(port, "SAVE"), "OK");
  const bob = await TestClient.connect(cluster.wsUrl(0));
  bob.send(joinRoom("ROOMB1", "Bob", { max_players: 8 }));
  const roomB = await bob.next("RoomJoined");
  const carol = await TestClient.connect(cluster.wsUrl(1));
  carol.send(joinRoom("ROOMB1", "Carol"));
  await carol.next("RoomJoined");
  bob.send({ type: "GameData", data: { data: "before the restart" } });
  await carol.waitFor("GameData");
  return { roomB, clients: [alice, bob, carol] };
}

/**
 * Joins `ROOMB1` through instance 2 until a `RoomJoined` (every ~50 ms, at most `ms`); every
 * other answer must be `SERVICE_UNAVAILABLE`. Returns the answers.
 */
async function joinUntilJoined(cluster: RealCluster, ms: number): Promise<Received[]> {
  const answers: Received[] = [];
  const deadline = Date.now() + ms;
  for (let i = 0; Date.now() < deadline; i++) {
    await using dave = await TestClient.connect(cluster.wsUrl(2));
    dave.send(joinRoom("ROOMB1", `Dave${i}`));
    const answer = await dave.next(undefined, 4_000);
    answers.push(answer);
    if (answer.type === "RoomJoined") return answers;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`never joined: ${JSON.stringify(answers.map((a) => a.data))}`);
}

/** Asserts the answers: retry-later until the join reached room B itself. */
function checkAnswers(answers: Received[], roomB: Received): void {
  const summary = answers.map((a) => `${a.type} ${a.data?.error_code ?? a.data?.room_id}`);
  const joined = answers.at(-1)!;
  equal(joined.data.room_id, roomB.data.room_id, `a second room ROOMB1: ${summary.join(", ")}`);
  for (const answer of answers.slice(0, -1)) {
    equal(answer.data?.error_code, "SERVICE_UNAVAILABLE", summary.join(", "));
  }
}

async function noConflicts(cluster: RealCluster): Promise<void> {
  for (let i = 0; i < 3; i++) {
    equal(await metric(cluster, i, "signal_fish_cluster_code_conflicts_total"), 0, `instance ${i}`);
  }
}

Deno.test({
  ...opts,
  name:
    "cluster: Redis restarted from an old dump while B's home is away → SERVICE_UNAVAILABLE, then the join reaches room B, never a second room",
  fn: async () => {
    await using cluster = await startCluster(3);
    await cluster.pastGrace();
    const { roomB, clients } = await roomsAroundADump(cluster);
    try {
      // B's home is away through the restart (paused: its reconnect comes late), so only its
      // re-registration can bring B's entry back.
      const resume = pause(cluster.servers[0]!.child.pid);
      try {
        await cluster.redis.restart();
        const early = await joinUntilJoined(cluster, 1_500).catch(() => undefined);
        ok(early === undefined, `joined while B's home was away: ${JSON.stringify(early?.at(-1))}`);
      } finally {
        resume();
      }
      const answers = await joinUntilJoined(cluster, 10_000);
      checkAnswers(answers, roomB);
      ok(
        cluster.servers[2]!.output().includes("Redis restarted or failed over (run_id changed)"),
        "warned",
      );
      await noConflicts(cluster);
    } finally {
      for (const client of clients) await client[Symbol.asyncDispose]();
    }
  },
});

Deno.test({
  ...opts,
  name:
    "cluster: Redis restarted from an old dump, answering LOADING for a while → SERVICE_UNAVAILABLE until B's home re-registered, then room B, never a second room",
  fn: async () => {
    // T = 6 s: the homes refresh every 2 s, so a re-registration that failed with LOADING and
    // waited for the next refresh left a window of up to 2 s after the load.
    await using cluster = await startCluster(3, {}, { ttlSecs: 6 });
    // Keys enough that loading the dump takes about a second (in steps, so Redis keeps answering).
    const pad = async () => {
      for (let i = 0; i < 15; i++) {
        await redisCommand(
          cluster.redis.port,
          "EVAL",
          "for i = ARGV[1], ARGV[1] + 99999 do redis.call('SET', 'pad:' .. i, 'x') end return 1",
          "0",
          String(i * 100_000),
        );
      }
    };
    await Promise.all([pad(), cluster.pastGrace()]);
    const { roomB, clients } = await roomsAroundADump(cluster);
    try {
      await cluster.redis.restart();
      await new Promise((resolve) => setTimeout(resolve, 100));
      await redisCommand(cluster.redis.port, "GET", "pad:1").then(
        () => ok(false, "expected LOADING: make the dump bigger"),
        (error: Error) => ok(error.message.startsWith("LOADING"), error.message),
      );
      const answers = await joinUntilJoined(cluster, 15_000);
      checkAnswers(answers, roomB);
      await noConflicts(cluster);
    } finally {
      for (const client of clients) await client[Symbol.asyncDispose]();
    }
  },
});
