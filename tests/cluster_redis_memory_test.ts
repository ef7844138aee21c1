/**
 * Cluster mode when Redis is at its memory limit, and when it would evict our keys
 * (docs/spec/SERVER.md §8.5.5 "Redis full", "Eviction"), over a real redis-server and real server
 * processes (T = 3 s). Under `noeviction` at `maxmemory` Redis refuses every command that may grow
 * memory: creations answer `SERVICE_UNAVAILABLE`, existing rooms keep working on every instance
 * however long it lasts (no node looks dead, no code goes to a second room), the operator gets one
 * warning per 30 s and a counter, and freeing memory brings everything back without a restart.
 * Before: creations succeeded past `maxmemory` (the claim script's first write was a pruning one,
 * which Redis does not check), and the refused liveness write ended every refresh, so after `T`
 * the rooms' entries and the liveness keys expired: a join of a live room's code created a second
 * room, and a `Reconnect` through another instance was answered `RECONNECTION_FAILED`.
 */
import { equal, ok } from "node:assert/strict";
import { ask, joinAsSpectator, joinRoom, relayed, TestClient } from "./helpers.ts";
import { health, metric, startCluster, TEST_TTL_SECS } from "./cluster_helpers.ts";
import { logged, loggedLines, type ServerProcess, spawnServer } from "./process.ts";
import { IGNORE_WITHOUT_REDIS, redisCommand, startRedis } from "./redis_server.ts";

const opts = { ignore: IGNORE_WITHOUT_REDIS, sanitizeResources: false, sanitizeOps: false };

const FULL_WARNING =
  /"level":"WARN","category":"signal-fish\.cluster","message":"Redis refuses writes for memory \(OOM command not allowed when used memory > 'maxmemory'\): [^"]*Raise maxmemory[^"]*"/;

Deno.test({
  ...opts,
  name:
    "cluster, Redis full: creations SERVICE_UNAVAILABLE, existing rooms joined, watched, relayed and resumed through any instance past T, one warning, counted; freeing memory brings creations back",
  fn: async () => {
    // Heartbeats every 500 ms (suspect after 1.5 s): Dave, on another instance than his room's
    // home, must stay connected through some 7 s of refusals, and with 250 ms a pause of 500 ms
    // of either node on a loaded machine resynced his pair (1012).
    await using cluster = await startCluster(2, {}, { heartbeatMs: 500 });
    await cluster.pastGrace();
    const [home, edge] = [cluster.wsUrl(0), cluster.wsUrl(1)];
    await using alice = await TestClient.connect(home);
    alice.send(joinRoom("LIVE01", "Alice", { max_players: 8 }));
    const created = await alice.next("RoomJoined");
    const bob = await TestClient.connect(edge);
    bob.send(joinRoom("LIVE01", "Bob"));
    const joined = await bob.next("RoomJoined");
    await alice.waitFor("PlayerJoined");

    await redisCommand(cluster.redis.port, "CONFIG", "SET", "maxmemory", "1");
    // Creations need memory: refused at once with the outage's answer, never a hang.
    for (const code of [null, "NEW001"]) {
      const answer = await ask(edge, joinRoom(code, "Carol"));
      equal(answer.type, "RoomJoinFailed", JSON.stringify(answer));
      equal(answer.data.error_code, "SERVICE_UNAVAILABLE");
    }
    // The existing room: joined and watched through the other instance, relayed both ways.
    await using dave = await TestClient.connect(edge);
    dave.send(joinRoom("LIVE01", "Dave"));
    equal((await dave.next("RoomJoined")).data.room_id, created.data.room_id);
    await using sam = await TestClient.connect(edge);
    sam.send(joinAsSpectator("LIVE01", "Sam"));
    equal((await sam.next("SpectatorJoined")).data.room_code, "LIVE01");
    bob.send({ type: "GameData", data: { data: "while Redis is full" } });
    await relayed(alice, "while Redis is full");
    // An HTTP lookup reads only.
    const lookup = await fetch(`${cluster.httpUrl(1)}/v2/rooms/orbit/LIVE01`);
    equal(lookup.status, 200);
    await lookup.body?.cancel();
    await logged(cluster.servers[1]!, FULL_WARNING);
    ok(
      await metric(cluster, 1, `signal_fish_cluster_redis_write_refusals_total{reason="oom"}`) >= 3,
    );

    // Longer than T: every node keeps its liveness key and its rooms' entries.
    await new Promise((resolve) => setTimeout(resolve, 2 * TEST_TTL_SECS * 1000 + 500));
    for (const i of [0, 1]) {
      equal(await health(cluster, i), 200);
      const status = await (await fetch(`${cluster.httpUrl(i)}/v2/status`)).json();
      equal(status.cluster_nodes.length, 2, JSON.stringify(status));
    }
    await bob.close(4000);
    const resumed = await ask(edge, {
      type: "Reconnect",
      data: {
        player_id: joined.data.player_id,
        room_id: joined.data.room_id,
        auth_token: joined.data.reconnection_token,
      },
    });
    equal(resumed.type, "Reconnected", JSON.stringify(resumed));
    const again = await ask(edge, joinRoom("LIVE01", "Erin"));
    equal(again.type, "RoomJoined", JSON.stringify(again));
    equal(again.data.room_id, created.data.room_id, "the live room, never a second one");
    alice.send({ type: "GameData", data: { data: "still relayed" } });
    await relayed(dave, "still relayed");
    for (const server of cluster.servers) {
      // Refused every T/3 meanwhile, warned about once (at most every 30 s).
      equal(loggedLines(server, new RegExp(FULL_WARNING.source)), 1, server.output());
      // No death verdict, no refresh given up, no second room, no release of a claim that
      // wrote nothing.
      const trouble = /held dead|Cluster refresh failed|is held by another room|Cannot release/;
      equal(trouble.exec(server.output())?.[0], undefined, server.output());
      ok(!/maxmemory-policy is/.test(server.output()), "noeviction is not warned about");
    }
    equal(await metric(cluster, 0, "signal_fish_cluster_peer_deaths_total"), 0);
    equal(await metric(cluster, 1, "signal_fish_cluster_peer_deaths_total"), 0);

    // Memory freed: creations work again at once, and the operator is told.
    await redisCommand(cluster.redis.port, "CONFIG", "SET", "maxmemory", "0");
    const fresh = await ask(edge, joinRoom(null, "Frank"));
    equal(fresh.type, "RoomJoined", JSON.stringify(fresh));
    await logged(
      cluster.servers[1]!,
      /"level":"INFO","category":"signal-fish\.cluster","message":"Redis accepts writes again after \d+ s of refusals for memory"/,
    );
  },
});

const POLICY_WARNING = (policy: string) =>
  new RegExp(
    `"level":"WARN","category":"signal-fish\\.cluster","message":"Redis maxmemory-policy is ${policy}: [^"]*Set maxmemory-policy noeviction[^"]*"`,
  );

/** A server in cluster mode on `redisUrl`, logging at the default level. */
function clusterServer(redisUrl: string): Promise<ServerProcess> {
  return spawnServer({
    env: {
      SIGNAL_FISH_CLUSTER__REDIS_URL: redisUrl,
      SIGNAL_FISH_CLUSTER__DRAIN_TIMEOUT_SECS: "0",
      SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING: "false",
    },
  });
}

Deno.test({
  ...opts,
  name:
    "cluster: an evicting maxmemory-policy is warned about at start and after a reconnect; a Redis without CONFIG starts quietly",
  fn: async () => {
    await using redis = await startRedis(["--maxmemory-policy", "allkeys-lru"]);
    await using server = await clusterServer(redis.url);
    await logged(server, POLICY_WARNING("allkeys-lru"));
    // A reconnect reads the policy again.
    await redisCommand(redis.port, "CONFIG", "SET", "maxmemory-policy", "volatile-lru");
    await redisCommand(redis.port, "CLIENT", "KILL", "TYPE", "normal");
    await logged(server, POLICY_WARNING("volatile-lru"));
    equal(loggedLines(server, POLICY_WARNING("allkeys-lru")), 1, server.output());

    // CONFIG renamed away (managed Redis): no warning, no error, healthy.
    await using managed = await startRedis(["--rename-command", "CONFIG", ""]);
    await using quiet = await clusterServer(managed.url);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const response = await fetch(`http://127.0.0.1:${quiet.port}/v2/health`);
      await response.body?.cancel();
      if (response.status === 200) break;
      ok(Date.now() < deadline, `never healthy:\n${quiet.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    ok(!/maxmemory-policy|"level":"(WARN|ERROR)"/.test(quiet.output()), quiet.output());
  },
});
