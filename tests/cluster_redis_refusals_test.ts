/**
 * Cluster mode when Redis refuses every write while it still answers (docs/spec/SERVER.md §8.5.5
 * "Redis refuses writes"), over real redis-servers and real server processes (T = 3 s):
 *
 * - `MISCONF`: the last background save failed under `stop-writes-on-bgsave-error yes`;
 * - `READONLY`: a failover behind an address (the test TCP proxy) that moved to the new primary
 *   while the nodes' connections stayed on the demoted one.
 *
 * Before: with every write refused for longer than `T`, the liveness keys and the rooms' entries
 * expired and a node that was not a peer of a room's home held the home dead, answering
 * `RECONNECTION_FAILED` to a `Reconnect` into a live room (and `ROOM_NOT_FOUND` to a spectator);
 * nothing told the operator what was wrong (`Cluster refresh failed` every `T/3`). Behind a moved
 * address node-redis kept its connections to the demoted primary: every write was refused
 * (`READONLY`) until the process restarted, and creations answered `SERVICE_UNAVAILABLE` forever.
 */
import { equal, ok } from "node:assert/strict";
import { ask, joinAsSpectator, joinRoom, type Received, relayed, TestClient } from "./helpers.ts";
import { parseExposition } from "./exposition.ts";
import { logged, loggedLines, type ServerProcess, spawnServer } from "./process.ts";
import { IGNORE_WITHOUT_REDIS, redisCommand, startRedis } from "./redis_server.ts";
import { startTcpProxy } from "./tcp_proxy.ts";
import { clusterEnv, waitHealthy } from "./cluster_helpers.ts";

const opts = { ignore: IGNORE_WITHOUT_REDIS, sanitizeResources: false, sanitizeOps: false };

/** `T`, seconds. */
const T = 3;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `n` servers in cluster mode on `redisUrl` (T = 3 s, `heartbeatMs`), healthy. */
async function servers(
  redisUrl: string,
  n: number,
  heartbeatMs?: number,
): Promise<ServerProcess[] & AsyncDisposable> {
  const list = [] as unknown as ServerProcess[] & AsyncDisposable;
  list[Symbol.asyncDispose] = async () => {
    for (const server of list) await server[Symbol.asyncDispose]();
  };
  for (let i = 0; i < n; i++) {
    list.push(
      await spawnServer({
        env: {
          ...clusterEnv(i, redisUrl, { ttlSecs: T, ...(heartbeatMs ? { heartbeatMs } : {}) }),
          SIGNAL_FISH_CLUSTER__DRAIN_TIMEOUT_SECS: "0",
        },
      }),
    );
  }
  const deadline = Date.now() + 15_000;
  for (const server of list) await waitHealthy(server, deadline);
  // Past the epoch's grace window (the first node created the epoch before the others started).
  await sleep(T * 1000 + 200);
  return list;
}

const ws = (server: ServerProcess) => `ws://127.0.0.1:${server.port}/v2/ws`;

async function health(server: ServerProcess): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${server.port}/v2/health`);
  await response.body?.cancel();
  return response.status;
}

/** The series of `name` with labels `labels` (`reason="misconf"`) on the server's exposition. */
async function metric(server: ServerProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics/prom`)).text();
  return parseExposition(text).get(name) ?? 0;
}

/** The value of the series `line` (name and labels as exposed) on the server, or undefined. */
async function series(server: ServerProcess, line: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics/prom`)).text();
  const found = text.split("\n").find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

function reconnectOf(joined: Received): unknown {
  return {
    type: "Reconnect",
    data: {
      player_id: joined.data.player_id,
      room_id: joined.data.room_id,
      auth_token: joined.data.reconnection_token,
    },
  };
}

/** Lines no refusal may cause: a death verdict, a second room, a released claim, a failed refresh. */
const TROUBLE = /Node \S+ held dead|is held by another room|Cannot release|Cluster refresh failed/;

const MISCONF_WARNING =
  /"level":"WARN","category":"signal-fish\.cluster","message":"Redis refuses every write \(MISCONF [^"]*Free disk space or fix the save directory[^"]*"/;

Deno.test({
  ...opts,
  name:
    "cluster, Redis's background save failed (MISCONF) for longer than T: creations SERVICE_UNAVAILABLE, the live room relays and is never held dead (Reconnect and spectators through a non-peer answer SERVICE_UNAVAILABLE, not RECONNECTION_FAILED), one warning, counted; a working save brings everything back without a restart",
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "signal-fish-misconf-" });
    try {
      await using redis = await startRedis(["--dir", dir, "--save", "3600 1"]);
      // Heartbeats every 500 ms (suspect after 1.5 s): Carol, on another instance than her
      // room's home, must stay connected through some 9 s of refusals, and with 250 ms a pause
      // of 500 ms of any of the four processes on a loaded machine resynced her pair (1012).
      await using nodes = await servers(redis.url, 3, 500);
      const [home, edge, far] = nodes.map(ws) as [string, string, string];
      await using alice = await TestClient.connect(home);
      alice.send(joinRoom("LIVE01", "Alice", { max_players: 8 }));
      const created = await alice.next("RoomJoined");
      const bob = await TestClient.connect(edge);
      bob.send(joinRoom("LIVE01", "Bob"));
      const joined = await bob.next("RoomJoined");
      await using carol = await TestClient.connect(edge);
      carol.send(joinRoom("LIVE01", "Carol"));
      await carol.next("RoomJoined");

      // The save's target is a directory: the save fails, and Redis refuses every write.
      Deno.mkdirSync(`${dir}/dump.rdb`);
      await redisCommand(redis.port, "BGSAVE");
      for (
        let i = 0;
        !/bgsave_status:err/.test(String(await redisCommand(redis.port, "INFO", "persistence")));
        i++
      ) {
        ok(i < 100, "the save never failed");
        await sleep(20);
      }
      for (const code of [null, "NEW001"]) {
        const answer = await ask(far, joinRoom(code, "Dave"));
        equal(answer.type, "RoomJoinFailed", JSON.stringify(answer));
        equal(answer.data.error_code, "SERVICE_UNAVAILABLE");
      }

      // Longer than T: every liveness key and room entry has expired (nobody could write them).
      await sleep(2 * T * 1000 + 500);
      await bob.close(4000);
      // Node 2 is no peer of the home (nothing heard from it): a Reconnect through it must not
      // end in a death verdict.
      const resumed = await ask(far, reconnectOf(joined));
      equal(resumed.type, "ReconnectionFailed", JSON.stringify(resumed));
      equal(resumed.data.error_code, "SERVICE_UNAVAILABLE", JSON.stringify(resumed));
      const watcher = await ask(far, joinAsSpectator("LIVE01", "Sam"));
      equal(watcher.data.error_code, "SERVICE_UNAVAILABLE", JSON.stringify(watcher));
      // The live room keeps playing across instances, and its home still seats players.
      alice.send({ type: "GameData", data: { data: "while writes are refused" } });
      await relayed(carol, "while writes are refused");
      equal((await ask(home, joinRoom("LIVE01", "Erin"))).data.room_id, created.data.room_id);
      for (const node of nodes) {
        equal(await health(node), 200);
        equal(loggedLines(node, new RegExp(MISCONF_WARNING.source)), 1, node.output());
        equal(TROUBLE.exec(node.output())?.[0], undefined, node.output());
        equal(await metric(node, "signal_fish_cluster_peer_deaths_total"), 0);
      }
      ok(
        (await series(
          nodes[2]!,
          'signal_fish_cluster_redis_write_refusals_total{reason="misconf"}',
        ) ??
          0) >= 2,
        "refusals counted by reason",
      );

      // The save works again: each node notices within a heartbeat and writes its rooms back.
      Deno.removeSync(`${dir}/dump.rdb`, { recursive: true });
      await redisCommand(redis.port, "BGSAVE");
      for (const node of nodes) {
        await logged(
          node,
          /"level":"INFO","category":"signal-fish\.cluster","message":"Redis accepts writes again after \d+ s of refusals after a failed background save \(MISCONF\)"/,
        );
      }
      // Past the short grace that lets every node's refresh write its rooms' entries back.
      await sleep(T * 1000 / 3 + 300);
      const back = await ask(far, reconnectOf(joined));
      equal(back.type, "Reconnected", JSON.stringify(back));
      const again = await ask(far, joinRoom("LIVE01", "Frank"));
      equal(again.data.room_id, created.data.room_id, JSON.stringify(again));
      equal((await ask(far, joinRoom(null, "Gina"))).type, "RoomJoined");
      for (const node of nodes) {
        equal(TROUBLE.exec(node.output())?.[0], undefined, node.output());
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

const READONLY_WARNING =
  /"level":"WARN","category":"signal-fish\.cluster","message":"Redis refuses every write \(READONLY [^"]*Point cluster\.redis_url at the primary, or use cluster\.redis_sentinels[^"]*"/;

Deno.test({
  ...opts,
  name:
    "cluster, failover behind a moved address (READONLY from the demoted primary): the nodes reopen their connections and reach the new primary, with a warning; creations work again, the live room keeps its code and its players, nobody is held dead",
  fn: async () => {
    await using old = await startRedis();
    await using next = await startRedis(["--replicaof", "127.0.0.1", String(old.port)]);
    await using proxy = startTcpProxy([old.port]);
    await using nodes = await servers(`redis://127.0.0.1:${proxy.port}`, 2);
    const [home, edge] = nodes.map(ws) as [string, string];
    await using alice = await TestClient.connect(home);
    alice.send(joinRoom("LIVE01", "Alice", { max_players: 8 }));
    const created = await alice.next("RoomJoined");
    const bob = await TestClient.connect(edge);
    bob.send(joinRoom("LIVE01", "Bob"));
    const joined = await bob.next("RoomJoined");
    await alice.waitFor("PlayerJoined");
    for (
      let i = 0;
      !/master_link_status:up/.test(String(await redisCommand(next.port, "INFO", "replication")));
      i++
    ) {
      ok(i < 250, "the replica never synced");
      await sleep(20);
    }

    // The failover: the replica is promoted, the old primary demoted under it, and the address
    // moved; the nodes' connections still reach the old primary.
    await redisCommand(next.port, "REPLICAOF", "NO", "ONE");
    await redisCommand(old.port, "REPLICAOF", "127.0.0.1", String(next.port));
    proxy.retarget([next.port]);

    // The first write that meets READONLY reopens the connections: creations work again soon.
    const deadline = Date.now() + 8_000;
    for (;;) {
      const answer = await ask(edge, joinRoom(null, "Carol"));
      if (answer.type === "RoomJoined") break;
      equal(answer.data.error_code, "SERVICE_UNAVAILABLE", JSON.stringify(answer));
      ok(Date.now() < deadline, `creations never came back:\n${nodes[1]!.output()}`);
      await sleep(250);
    }
    await logged(nodes[1]!, READONLY_WARNING);

    // Longer than T later: the room keeps its code and players on every instance.
    await sleep(2 * T * 1000);
    const again = await ask(edge, joinRoom("LIVE01", "Dave"));
    equal(again.type, "RoomJoined", JSON.stringify(again));
    equal(again.data.room_id, created.data.room_id, "the live room, never a second one");
    await bob.close(4000);
    const resumed = await ask(edge, reconnectOf(joined));
    equal(resumed.type, "Reconnected", JSON.stringify(resumed));
    alice.send({ type: "GameData", data: { data: "after the failover" } });
    await using erin = await TestClient.connect(edge);
    erin.send(joinRoom("LIVE01", "Erin"));
    await erin.next("RoomJoined");
    alice.send({ type: "GameData", data: { data: "to Erin" } });
    await relayed(erin, "to Erin");
    for (const node of nodes) {
      equal(await health(node), 200);
      // (A refresh or claim under way when the connections are reopened fails, "client is
      // offline", as in any reconnect: its release is sent again.)
      const trouble = /Node \S+ held dead|is held by another room/;
      equal(trouble.exec(node.output())?.[0], undefined, node.output());
      equal(await metric(node, "signal_fish_cluster_peer_deaths_total"), 0);
    }
  },
});
