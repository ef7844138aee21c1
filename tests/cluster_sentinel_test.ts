/**
 * Cluster mode with Redis Sentinel (`cluster.redis_sentinels`, README "Run a cluster"): a real
 * primary, its replica and a sentinel; the store and the bus of two nodes reach the primary the
 * sentinel names, and after a failover they work on the new primary without a restart: claims,
 * lookups of what was written before, envelopes between the nodes. One more test runs two
 * server processes configured with the sentinel (their `redis_url` names another, empty Redis,
 * which they must not use) through a failover. Two more run the same with a password and TLS on
 * every server (`cluster.redis_sentinel_password`, `cluster.redis_sentinel_tls`). The link reports
 * the move to the new primary (`onPrimaryChange`), and each server process is told of it
 * (docs/spec/SERVER.md §8.3 "Redis's identity"; tests/cluster_sentinel_rewind_test.ts).
 *
 * @module
 */
import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { RedisBus } from "../src/cluster/bus.ts";
import type { LinkState } from "../src/cluster/types.ts";
import { storeSettings, testRecord } from "../src/cluster/testing.ts";
import type { DirectoryRecord } from "../src/coordination/directory.ts";
import { RUNTIME_PERMISSIONS } from "../scripts/permissions.ts";
import { bounded, RedisLink, RedisStore, runIdOf } from "../src/cluster/store.ts";
import {
  IGNORE_WITHOUT_REDIS,
  makeCertificates,
  redisCommand,
  type SentinelSet,
  startSentinelSet,
} from "./redis_server.ts";
import { health, startCluster } from "./cluster_helpers.ts";
import { joinRoom, TestClient } from "./helpers.ts";

const SETTINGS = { ...storeSettings(30_000, "sf:"), timeoutMs: 2_000 };

/** A record of room `code` created now (the store's tests use Unix ms 1). */
function record(code: string): DirectoryRecord {
  return testRecord(code, "a@00000001", { createdAt: Date.now() });
}

/** Polls `check` every 50 ms until it resolves true (a rejection counts as false), ≤ `ms`. */
async function eventually(check: () => Promise<boolean>, what: string, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The store and bus of two nodes on `linkA` and `linkB`: a claim and an envelope, then `before`,
 * then a failover of `set`, after which a claim, a lookup of what was written before and an
 * envelope must work without a restart. Closes the buses (and so the links).
 */
async function throughFailover(
  set: SentinelSet,
  linkA: RedisLink,
  linkB: RedisLink,
  before: (busA: RedisBus, busB: RedisBus) => Promise<void> = () => Promise.resolve(),
): Promise<void> {
  const busA = new RedisBus(linkA, "a@00000001", "sf:");
  const busB = new RedisBus(linkB, "b@00000001", "sf:");
  try {
    await Promise.all([linkA.connect(), linkB.connect()]);
    equal(linkA.state, "up");
    const store = new RedisStore(linkA, SETTINGS);
    const received: number[] = [];
    await busA.start({ receive: (bytes) => void received.push(bytes[0]!), lost: () => {} });
    await busB.start({ receive: () => {}, lost: () => {} });
    deepEqual(await store.claim(record("BEFORE"), { maxRoomsPerGame: 10 }), { status: "ok" });
    busB.publish("a@00000001", new Uint8Array([1]));
    await eventually(() => Promise.resolve(received.includes(1)), "an envelope before");
    await before(busA, busB);

    const serverId = async () =>
      runIdOf(String(await linkA.command.sendCommand(["INFO", "server"])));
    const oldPrimary = await serverId();
    // SENTINEL FAILOVER promotes the replica without waiting for it to catch up, and replication
    // is asynchronous: a write made milliseconds before may be lost for real (under load the
    // lookup below failed a few times in 30 runs). What is checked here is that the client reads
    // the new primary, so the writes are replicated first (WAIT: one replica acknowledged them).
    equal(
      Number(await linkA.command.sendCommand(["WAIT", "1", "5000"])),
      1,
      "the replica acknowledged the writes before the failover",
    );
    await set.failover();
    // The sentinel names the replica about a second before the client moves to it (at the
    // sentinel's +switch-master; until then commands reach the old primary, still a primary):
    // wait for the move, so that what follows runs on the new primary.
    await eventually(async () => (await serverId()) !== oldPrimary, "commands on the new primary");
    // Commands and the subscription follow the new primary, with no restart.
    await eventually(
      async () => (await store.claim(record("AFTER1"), { maxRoomsPerGame: 10 })).status === "ok",
      "a claim on the new primary",
    );
    const role = String(
      await linkA.command.sendCommand(["INFO", "replication"]),
    ).match(/role:(\w+)/)?.[1];
    equal(role, "master");
    ok((await store.lookup("orbit", "BEFORE")) !== undefined, "written before, replicated");
    await eventually(async () => {
      busB.publish("a@00000001", new Uint8Array([2]));
      await new Promise((resolve) => setTimeout(resolve, 100));
      return received.includes(2);
    }, "an envelope after the failover");
    // The link reports "up" once both of its connections are back; the command connection may
    // be up before the subscriber's reconnect has finished (CI saw "down" here once).
    await eventually(() => Promise.resolve(linkA.state === "up"), "the link up again");
  } finally {
    await busA.close();
    await busB.close();
  }
}

Deno.test({
  name:
    "Redis Sentinel: store and bus reach the primary the sentinel names, and the new one after a failover",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    await using set = await startSentinelSet();
    const sentinel = { nodes: [{ host: "127.0.0.1", port: set.sentinelPort }], master: set.master };
    const states: LinkState[] = [];
    let primaryChanges = 0;
    const linkA = new RedisLink({
      url: "redis://ignored.invalid:6379",
      sentinel,
      onState: (state) => states.push(state),
      onPrimaryChange: () => primaryChanges++,
    });
    const linkB = new RedisLink({ url: "redis://ignored.invalid:6379", sentinel });
    await throughFailover(set, linkA, linkB, async () => {
      equal(await set.primaryAddress(), `127.0.0.1:${set.primary.port}`);
      equal(primaryChanges, 0, "not for the first primary found");
    });
    equal(states[0], "up");
    equal(primaryChanges, 1, "the move to the new primary reported");
  },
});

Deno.test({
  name:
    "Redis Sentinel: two server processes keep relaying across a failover; new rooms cross instances after it",
  ignore: IGNORE_WITHOUT_REDIS,
  sanitizeResources: false,
  fn: async () => {
    await using set = await startSentinelSet();
    await using cluster = await startCluster(2, {
      SIGNAL_FISH_CLUSTER__REDIS_SENTINELS: `127.0.0.1:${set.sentinelPort}`,
      SIGNAL_FISH_CLUSTER__REDIS_SENTINEL_MASTER: set.master,
    });
    // A room across both instances, before.
    await using alice = await TestClient.connect(cluster.wsUrl(0));
    await using bob = await TestClient.connect(cluster.wsUrl(1));
    alice.send(joinRoom(null, "Alice"));
    const code = (await alice.next("RoomJoined")).data.room_code;
    bob.send(joinRoom(code, "Bob"));
    await bob.next("RoomJoined");
    alice.send({ type: "GameData", data: { data: "before" } });
    equal((await bob.waitFor("GameData")).data.data, "before");

    // The instances use the primary the sentinel names, not the address in redis_url.
    ok(Number(await redisCommand(set.primary.port, "DBSIZE")) > 0, "keys on the primary");
    equal(Number(await redisCommand(cluster.redis.port, "DBSIZE")), 0, "none at redis_url");

    await set.failover();
    // Each instance was told that its Sentinel client moved to the new primary, which may lack
    // the last writes, and reads its run_id again at once (docs/spec/SERVER.md §8.3 "Redis's
    // identity"; tests/cluster_sentinel_rewind_test.ts).
    await eventually(
      () =>
        Promise.resolve(
          cluster.servers.every((server) => server.output().includes("Redis's primary changed")),
        ),
      "both instances told of the new primary",
    );

    // After: every instance healthy again, and a new room crosses instances.
    await eventually(
      async () => (await health(cluster, 0)) === 200 && (await health(cluster, 1)) === 200,
      "both instances healthy on the new primary",
    );
    let room = "";
    await eventually(async () => {
      await using carol = await TestClient.connect(cluster.wsUrl(1));
      carol.send(joinRoom(null, "Carol"));
      const answer = await carol.next();
      if (answer.type !== "RoomJoined") return false;
      room = answer.data.room_code;
      await using dave = await TestClient.connect(cluster.wsUrl(0));
      dave.send(joinRoom(room, "Dave"));
      if ((await dave.next()).type !== "RoomJoined") return false;
      dave.send({ type: "GameData", data: { data: "after" } });
      return (await carol.waitFor("GameData")).data.data === "after";
    }, "a room made and joined across instances after the failover");
    ok(room !== "");
  },
});

Deno.test({
  name:
    "Redis Sentinel: a primary killed with SIGKILL: commands fail (bounded) until the sentinel promotes the replica, then work there",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    await using set = await startSentinelSet();
    const link = new RedisLink({
      url: "redis://ignored.invalid:6379",
      sentinel: { nodes: [{ host: "127.0.0.1", port: set.sentinelPort }], master: set.master },
      onError: () => {},
    });
    try {
      await link.connect();
      const store = new RedisStore(link, { ...SETTINGS, timeoutMs: 500 });
      deepEqual(await store.claim(record("BEFORE"), { maxRoomsPerGame: 10 }), { status: "ok" });
      await set.primary.stop();
      const killed = Date.now();
      let failures = 0;
      await eventually(async () => {
        try {
          const claimed = await store.claim(record("AFTER1"), { maxRoomsPerGame: 10 });
          // A claim that timed out may still have run once the replica took over: its own
          // entry then answers `taken` (an unknown outcome, docs/spec/SERVER.md §8.5.1).
          return claimed.status === "ok" ||
            (claimed.status === "taken" && claimed.record.roomId === "id-AFTER1");
        } catch (error) {
          failures++;
          throw error;
        }
      }, "a claim once the replica is promoted");
      ok(failures > 0, "the dead primary's commands failed");
      equal(await set.primaryAddress(), `127.0.0.1:${set.replica.port}`);
      console.log(`commands answered again ${Date.now() - killed} ms after the kill`);
    } finally {
      await link.close();
    }
  },
});

const SECRET = "sentinel-test-secret";

Deno.test({
  name:
    "Redis Sentinel with a password and TLS everywhere: store and bus work through a failover; a wrong sentinel password or an untrusted CA gets no link",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const tls = await makeCertificates(dir);
    const ca = await Deno.readTextFile(tls.ca);
    await using set = await startSentinelSet({ password: SECRET, tls });
    const nodes = [{ host: "127.0.0.1", port: set.sentinelPort }];
    const url = `rediss://:${SECRET}@ignored.invalid:6379`;
    const link = new RedisLink({
      url,
      ca,
      sentinel: { nodes, master: set.master, password: SECRET, tls: true },
      onError: () => {},
    });
    const peer = new RedisLink({
      url,
      ca,
      sentinel: { nodes, master: set.master, password: SECRET, tls: true },
      onError: () => {},
    });
    const wrongPassword = new RedisLink({
      url,
      ca,
      connectTimeoutMs: 500,
      sentinel: { nodes, master: set.master, password: "not-the-secret", tls: true },
      onError: () => {},
    });
    const untrusted = new RedisLink({
      url,
      connectTimeoutMs: 500,
      sentinel: { nodes, master: set.master, password: SECRET, tls: true },
      onError: () => {},
    });
    try {
      await throughFailover(set, link, peer, async (busA, busB) => {
        // The operator channels (docs/spec/EXTENSIONS.md E12) through the Sentinel client too:
        // subscribed, heard, unsubscribed.
        const heard: string[] = [];
        await busA.listen("events", (payload) => heard.push(payload));
        await busA.listen("watch", (payload) => heard.push(payload));
        busB.broadcast("events", "one");
        await eventually(() => Promise.resolve(heard.includes("one")), "an operator event");
        await busA.listen("events", undefined);
        busB.broadcast("events", "two");
        busB.broadcast("watch", "three");
        await eventually(() => Promise.resolve(heard.includes("three")), "a watch notice");
        deepEqual(heard, ["one", "three"]);
      });

      // The sentinel refuses the wrong password; the system roots do not know the private CA.
      await rejects(bounded(wrongPassword.connect(), 1_500, "connect"));
      await rejects(bounded(untrusted.connect(), 1_500, "connect"));
      ok(wrongPassword.state !== "up" && untrusted.state !== "up");
    } finally {
      await wrongPassword.close();
      await untrusted.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "Redis Sentinel with a password and TLS, configured by environment: two server processes relay a room across instances",
  ignore: IGNORE_WITHOUT_REDIS,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const tls = await makeCertificates(dir);
    try {
      await using set = await startSentinelSet({ password: SECRET, tls });
      await using cluster = await startCluster(2, {
        SIGNAL_FISH_CLUSTER__REDIS_URL: `rediss://:${SECRET}@ignored.invalid:6379`,
        SIGNAL_FISH_CLUSTER__REDIS_TLS_CA_PATH: tls.ca,
        SIGNAL_FISH_CLUSTER__REDIS_SENTINELS: `127.0.0.1:${set.sentinelPort}`,
        SIGNAL_FISH_CLUSTER__REDIS_SENTINEL_MASTER: set.master,
        SIGNAL_FISH_CLUSTER__REDIS_SENTINEL_PASSWORD: SECRET,
        SIGNAL_FISH_CLUSTER__REDIS_SENTINEL_TLS: "true",
      }, {
        // The executables' permissions, with the CA's directory readable (the README's advice
        // for a file outside /etc/signal-fish).
        permissions: RUNTIME_PERMISSIONS.map((flag) =>
          flag.startsWith("--allow-read=") ? `${flag},${dir}` : flag
        ),
      });
      await using alice = await TestClient.connect(cluster.wsUrl(0));
      await using bob = await TestClient.connect(cluster.wsUrl(1));
      alice.send(joinRoom(null, "Alice"));
      const code = (await alice.next("RoomJoined")).data.room_code;
      bob.send(joinRoom(code, "Bob"));
      await bob.next("RoomJoined");
      alice.send({ type: "GameData", data: { data: "over TLS" } });
      equal((await bob.waitFor("GameData")).data.data, "over TLS");
      // Nothing went to the plain Redis the helper started: the sentinel's primary holds it.
      equal(
        Number(await redisCommand(cluster.redis.port, "DBSIZE")),
        0,
        "none at the helper's Redis",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
