/**
 * Several instances on one port (issue 15 item 6; `server.reuse_port`, docs/spec/SERVER.md §1.1
 * note): three server processes in cluster mode bound to the same port with `SO_REUSEPORT` and a
 * private redis-server. Clients connecting to that one port are spread over the processes by the
 * kernel, and a game whose players landed on different processes plays as on one server.
 *
 * What is asserted is what the kernel guarantees: every connection is accepted by exactly one of
 * the processes (their connection counts add up), and with 30 connections more than one process
 * gets some (Linux hashes each connection's addresses and ports; all 30 on one of three
 * processes has probability 3 × 3^-30). Which client lands where is read from the processes'
 * `/v2/status`, never assumed.
 */
import { equal, ok } from "node:assert/strict";
import { joinRoom, TestClient } from "./helpers.ts";
import { freePort, IGNORE_WITHOUT_REDIS, startRedis } from "./redis_server.ts";
import { exitWithin, type ServerProcess, spawnServer } from "./process.ts";

const opts = { ignore: IGNORE_WITHOUT_REDIS, sanitizeResources: false, sanitizeOps: false };

/** One HTTP GET on a new TCP connection (HTTP/1.0: no chunks, closed after), so the kernel picks a process. */
async function freshGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.0\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
      ),
    );
    let text = "";
    const decoder = new TextDecoder();
    const buffer = new Uint8Array(16_384);
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
    return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } finally {
    try {
      conn.close();
    } catch { /* closed by the server */ }
  }
}

/**
 * The open connections of every process, by instance id: `/v2/status` over new connections until
 * each of the `ids` has answered (bounded: 400 requests).
 */
async function connectionsByInstance(
  port: number,
  ids: readonly string[],
): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < 400 && seen.size < ids.length; i++) {
    const { status, body } = await freshGet(port, "/v2/status");
    if (status !== 200) continue;
    const parsed = JSON.parse(body);
    seen.set(parsed.instance_id, parsed.connections);
  }
  equal(seen.size, ids.length, `every instance answered /v2/status: ${[...seen.keys()]}`);
  return seen;
}

/** Starts one cluster process on the shared `port`. */
function startShared(redisUrl: string, port: number, id: string): Promise<ServerProcess> {
  return spawnServer({
    args: ["--port", String(port), "--host", "127.0.0.1"],
    env: {
      SIGNAL_FISH_SERVER__REUSE_PORT: "true",
      SIGNAL_FISH_CLUSTER__REDIS_URL: redisUrl,
      SIGNAL_FISH_CLUSTER__INSTANCE_ID: id,
      SIGNAL_FISH_CLUSTER__DIRECTORY_TTL_SECS: "3",
      SIGNAL_FISH_CLUSTER__FORWARD_TIMEOUT_MS: "1500",
      SIGNAL_FISH_CLUSTER__HEARTBEAT_MS: "250",
      SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING: "false",
      SIGNAL_FISH_SECURITY__MAX_CONNECTIONS_PER_IP: "1000",
      SIGNAL_FISH_RATE_LIMIT__MAX_ROOM_CREATIONS: "1000",
      SIGNAL_FISH_RATE_LIMIT__MAX_JOIN_ATTEMPTS: "1000",
    },
  });
}

/** Waits (≤ 15 s) until every process has registered its node in Redis. */
async function registered(servers: ServerProcess[]): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!servers.every((s) => s.output().includes("registered"))) {
    ok(Date.now() < deadline, servers.map((s) => s.output()).join("\n---\n"));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

Deno.test({
  ...opts,
  name:
    "cluster: three processes share one port (server.reuse_port); clients spread over them and play across instances",
  fn: async () => {
    const redis = await startRedis();
    const port = freePort();
    const ids = ["shared-0", "shared-1", "shared-2"];
    const servers: ServerProcess[] = [];
    const clients: TestClient[] = [];
    try {
      for (const id of ids) servers.push(await startShared(redis.url, port, id));
      for (const server of servers) equal(server.port, port, "every process bound the shared port");
      await registered(servers);

      // Clients one at a time; after each, the process whose count went up is where it landed.
      const where: string[] = [];
      let before = await connectionsByInstance(port, ids);
      for (let i = 0; i < 30; i++) {
        clients.push(await TestClient.connect(`ws://127.0.0.1:${port}/v2/ws`));
        const after = await connectionsByInstance(port, ids);
        const grew = ids.filter((id) => after.get(id)! > before.get(id)!);
        equal(grew.length, 1, `one process accepted client ${i}: ${JSON.stringify([...after])}`);
        where.push(grew[0]!);
        before = after;
      }
      const total = [...before.values()].reduce((a, b) => a + b, 0);
      equal(total, 30, "each connection is on exactly one process");
      const used = new Set(where);
      ok(used.size >= 2, `30 connections all landed on ${[...used]}`);

      // A game between clients on different processes: one per process that got any.
      const players = [...used].map((id) => clients[where.indexOf(id)]!);
      const [host, ...guests] = players;
      host!.send(joinRoom(null, "Host", { max_players: players.length }));
      const created = await host!.next("RoomJoined");
      const code = created.data.room_code as string;
      for (const [i, guest] of guests.entries()) {
        guest.send(joinRoom(code, `Guest${i}`));
        equal((await guest.next("RoomJoined")).data.room_id, created.data.room_id);
        await host!.waitFor("PlayerJoined");
      }
      guests[0]!.send({ type: "GameData", data: { data: { move: 7 } } });
      for (const player of [host!, ...guests.slice(1)]) {
        equal((await player.waitFor("GameData")).data.data.move, 7);
      }
      for (const player of players) player.send({ type: "PlayerReady" });
      for (const player of players) {
        equal((await player.waitFor("GameStarting")).data.peer_connections.length, players.length);
      }
      // The room lives on one process (its home); the others forward.
      let rooms = 0;
      for (let i = 0, seen = new Set<string>(); i < 400 && seen.size < ids.length; i++) {
        const { status, body } = await freshGet(port, "/v2/status");
        if (status !== 200) continue;
        const parsed = JSON.parse(body);
        if (seen.has(parsed.instance_id)) continue;
        seen.add(parsed.instance_id);
        rooms += parsed.rooms;
      }
      equal(rooms, 1, "one room in the cluster");
      // The accept-loop watchdog probes a shared port without mistaking another process's accept
      // for a dead loop of its own.
      for (const server of servers) ok(!server.output().includes("stopped accepting"));
    } finally {
      await Promise.all(clients.map((client) => client.close()));
      for (const server of servers) await server[Symbol.asyncDispose]();
      await redis.stop();
    }
  },
});

Deno.test({
  ...opts,
  name:
    "cluster: on a shared port a draining instance stops accepting; new connections reach the other, its room plays on",
  fn: async () => {
    const redis = await startRedis();
    const port = freePort();
    const ids = ["drain-0", "drain-1"];
    const servers: ServerProcess[] = [];
    const clients: TestClient[] = [];
    try {
      for (const id of ids) servers.push(await startShared(redis.url, port, id));
      await registered(servers);
      const alice = await TestClient.connect(`ws://127.0.0.1:${port}/v2/ws`);
      clients.push(alice);
      const counts = await connectionsByInstance(port, ids);
      const home = ids.find((id) => counts.get(id) === 1)!;
      const other = ids.find((id) => id !== home)!;
      alice.send(joinRoom(null, "Alice", { max_players: 2 }));
      const code = (await alice.next("RoomJoined")).data.room_code as string;

      const draining = servers[ids.indexOf(home)]!;
      draining.child.kill("SIGTERM");
      const deadline = Date.now() + 10_000;
      while (!draining.output().includes("no longer accepting on shared port")) {
        ok(Date.now() < deadline, draining.output());
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // Every new connection now lands on the other instance (the closed socket left the group).
      for (let i = 0; i < 20; i++) {
        const { status, body } = await freshGet(port, "/v2/status");
        equal(status, 200);
        equal(JSON.parse(body).instance_id, other);
      }
      // The room homed on the draining instance plays on through the other one.
      const bob = await TestClient.connect(`ws://127.0.0.1:${port}/v2/ws`);
      clients.push(bob);
      bob.send(joinRoom(code, "Bob"));
      await bob.next("RoomJoined");
      bob.send({ type: "GameData", data: { data: "still here" } });
      equal((await alice.waitFor("GameData")).data.data, "still here");
      // Once the room empties the drain ends and the instance exits 0.
      for (const client of [alice, bob]) client.send({ type: "LeaveRoom" });
      const status = await exitWithin(draining, 10_000);
      ok(status, "the drained instance exited");
      equal(status.code, 0, draining.output());
    } finally {
      await Promise.all(clients.map((client) => client.close()));
      for (const server of servers) await server[Symbol.asyncDispose]();
      await redis.stop();
    }
  },
});
