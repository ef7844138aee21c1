/**
 * `server.state_file` in cluster mode (docs/spec/SERVER.md §2.7 note, issue 15 leftovers): rooms
 * restored at startup claim their codes in the Redis directory before they take joins; a room
 * whose code another room took while its instance was down is dropped with a log line, and its
 * players' `Reconnect` answers `RECONNECTION_FAILED` instead of reaching a room nobody can join by
 * code. Real processes, a private redis-server.
 */
import { equal, ok } from "node:assert/strict";
import { joinRoom, type Received, TestClient } from "./helpers.ts";
import { IGNORE_WITHOUT_REDIS, type RedisServer, startRedis } from "./redis_server.ts";
import { exitWithin, type ServerProcess, spawnServer } from "./process.ts";

const opts = { ignore: IGNORE_WITHOUT_REDIS, sanitizeResources: false, sanitizeOps: false };
const DENO_JSON = new URL("../deno.json", import.meta.url).pathname;
const TTL_SECS = 3;

function start(redis: RedisServer, id: string, cwd: string): Promise<ServerProcess> {
  return spawnServer({
    cwd,
    denoFlags: ["--config", DENO_JSON],
    env: {
      SIGNAL_FISH_SERVER__STATE_FILE: "./state/rooms.json",
      SIGNAL_FISH_CLUSTER__REDIS_URL: redis.url,
      SIGNAL_FISH_CLUSTER__INSTANCE_ID: id,
      SIGNAL_FISH_CLUSTER__DIRECTORY_TTL_SECS: String(TTL_SECS),
      SIGNAL_FISH_CLUSTER__FORWARD_TIMEOUT_MS: "1500",
      SIGNAL_FISH_CLUSTER__HEARTBEAT_MS: "250",
      // SIGTERM shuts down at once (no drain), writing the state file.
      SIGNAL_FISH_CLUSTER__DRAIN_TIMEOUT_SECS: "0",
      SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING: "false",
      SIGNAL_FISH_SECURITY__MAX_CONNECTIONS_PER_IP: "1000",
      SIGNAL_FISH_RATE_LIMIT__MAX_ROOM_CREATIONS: "1000",
      SIGNAL_FISH_RATE_LIMIT__MAX_JOIN_ATTEMPTS: "1000",
    },
  });
}

async function healthy(server: ServerProcess): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const response = await fetch(`http://127.0.0.1:${server.port}/v2/health`);
    await response.body?.cancel();
    if (response.status === 200) return;
    ok(Date.now() < deadline, `never healthy:\n${server.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function stop(server: ServerProcess): Promise<void> {
  server.child.kill("SIGTERM");
  const status = await exitWithin(server, 15_000);
  ok(status, "still running after SIGTERM");
  equal(status.code, 0, server.output());
}

async function rooms(server: ServerProcess): Promise<number> {
  return (await (await fetch(`http://127.0.0.1:${server.port}/v2/status`)).json()).rooms;
}

function reconnect(joined: Received): unknown {
  return {
    type: "Reconnect",
    data: {
      player_id: joined.data.player_id,
      room_id: joined.data.room_id,
      auth_token: joined.data.reconnection_token,
    },
  };
}

/** A cluster of two instances; instance 0 keeps its rooms in `dir`/state. */
async function twoInstances(dir: string) {
  const redis = await startRedis();
  const servers: ServerProcess[] = [];
  const other = await Deno.makeTempDir({ prefix: "sf-state-other-" });
  servers.push(await start(redis, "keeper", dir), await start(redis, "other", other));
  for (const server of servers) await healthy(server);
  return {
    redis,
    servers,
    async [Symbol.asyncDispose]() {
      for (const server of servers) await server[Symbol.asyncDispose]();
      await redis.stop();
      await Deno.remove(other, { recursive: true });
    },
  };
}

Deno.test({
  ...opts,
  name:
    "cluster: a room restored from server.state_file claims its code again; Reconnect and joins reach it through another instance",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "sf-state-" });
    try {
      await using cluster = await twoInstances(dir);
      const [keeper, other] = cluster.servers as [ServerProcess, ServerProcess];
      const alice = await TestClient.connect(`ws://127.0.0.1:${keeper.port}/v2/ws`);
      alice.send(joinRoom(null, "Alice", { max_players: 3 }));
      const created = await alice.next("RoomJoined");
      const code = created.data.room_code as string;
      await stop(keeper);
      await alice.closed;

      const restarted = cluster.servers[0] = await start(cluster.redis, "keeper", dir);
      await healthy(restarted);
      ok(/Restored 1 rooms/.test(restarted.output()), restarted.output());
      equal(await rooms(restarted), 1);
      ok(!restarted.output().includes("Cannot write the room directory"), restarted.output());
      // Found from the other instance: by code (HTTP lookup, JoinRoom) and by room id (Reconnect).
      const lookup = await fetch(`http://127.0.0.1:${other.port}/v2/rooms/orbit/${code}`);
      equal(lookup.status, 200);
      await lookup.body?.cancel();
      await using again = await TestClient.connect(`ws://127.0.0.1:${other.port}/v2/ws`);
      again.send(reconnect(created));
      const reconnected = await again.next("Reconnected");
      equal(reconnected.data.room_code, code);
      await using bob = await TestClient.connect(`ws://127.0.0.1:${other.port}/v2/ws`);
      bob.send(joinRoom(code, "Bob"));
      equal((await bob.next("RoomJoined")).data.room_id, created.data.room_id);
      await again.waitFor("PlayerJoined");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  ...opts,
  name:
    "cluster: a restored room whose code another room took meanwhile is dropped with a log line; its Reconnect fails",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "sf-state-" });
    try {
      await using cluster = await twoInstances(dir);
      const [keeper, other] = cluster.servers as [ServerProcess, ServerProcess];
      const alice = await TestClient.connect(`ws://127.0.0.1:${keeper.port}/v2/ws`);
      alice.send(joinRoom(null, "Alice"));
      const created = await alice.next("RoomJoined");
      const code = created.data.room_code as string;
      await stop(keeper);
      await alice.closed;
      // While the keeper is down its code is free (released at shutdown): another room takes it.
      // Past the epoch's grace window, a join by an unknown code creates.
      await new Promise((resolve) => setTimeout(resolve, TTL_SECS * 1000 + 200));
      await using carol = await TestClient.connect(`ws://127.0.0.1:${other.port}/v2/ws`);
      carol.send(joinRoom(code, "Carol"));
      const taken = await carol.next("RoomJoined");
      ok(taken.data.room_id !== created.data.room_id, "a new room under the same code");

      const restarted = cluster.servers[0] = await start(cluster.redis, "keeper", dir);
      await healthy(restarted);
      ok(/Restored 1 rooms/.test(restarted.output()), restarted.output());
      ok(
        /Dropping restored room [A-Z0-9]+ of [^:]+: its code is held by another room/.test(
          restarted.output(),
        ),
        restarted.output(),
      );
      equal(await rooms(restarted), 0);
      // The code still leads to Carol's room, from either instance.
      await using dave = await TestClient.connect(`ws://127.0.0.1:${restarted.port}/v2/ws`);
      dave.send(joinRoom(code, "Dave"));
      equal((await dave.next("RoomJoined")).data.room_id, taken.data.room_id);
      // Alice's seat went with the dropped room.
      await using back = await TestClient.connect(`ws://127.0.0.1:${other.port}/v2/ws`);
      back.send(reconnect(created));
      equal((await back.next("ReconnectionFailed")).data.error_code, "RECONNECTION_FAILED");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
