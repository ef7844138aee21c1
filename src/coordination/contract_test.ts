/**
 * One contract for each coordination seam, run over every implementation (docs/spec/SERVER.md §8.9):
 * today the in-memory ones; the Redis bus and store join the `IMPLEMENTATIONS` list. Tests
 * `await` every answer, so synchronous and asynchronous implementations pass the same checks.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { RateLimits } from "../engine/rate_limits.ts";
import type { ClientMessage } from "../protocol/messages.ts";
import type { TokenBuckets } from "./buckets.ts";
import {
  compareRooms,
  type DirectoryRecord,
  ROOM_SORT_KEYS,
  type RoomDirectory,
  type RoomFilter,
  type RoomSort,
  type RoomSortKey,
} from "./directory.ts";
import { LocalRouter, MemoryRoomDirectory, MemoryTokenBuckets } from "./memory.ts";
import type {
  ClosedCause,
  Directive,
  EdgeEndpoint,
  HomeEndpoint,
  RoomCommand,
  Router,
} from "./router.ts";
import type { Awaitable } from "./awaitable.ts";
import { roomSearch } from "../engine/directory.ts";
import { MemoryStore } from "../cluster/memory_store.ts";
import { RedisLink, RedisStore } from "../cluster/store.ts";
import { RedisBus } from "../cluster/bus.ts";
import { MemoryNetwork } from "../cluster/memory_bus.ts";
import { ClusterRouter } from "../cluster/router.ts";
import type { ClusterBus, StoreSettings } from "../cluster/types.ts";
import { IGNORE_WITHOUT_REDIS, startRedis } from "../../tests/redis_server.ts";

/** Bucket sizes of a contract run: tokens per kind, refilled over `windowMs`. */
interface BucketSpec {
  creation: number;
  join: number;
  reconnect: number;
  windowMs: number;
}

/** Cleanups a test registers while it builds implementations; run in reverse at its end. */
type Cleanups = (() => Promise<void> | void)[];

/** How to make a fresh instance of each seam (after `cleanups`, nothing of it is left running). */
interface Implementation {
  name: string;
  /** Skip this implementation's tests (e.g. no redis-server outside CI). */
  ignore?: boolean;
  directory: (cleanups: Cleanups) => Awaitable<RoomDirectory>;
  /**
   * Buckets of sizes `spec`. In memory they refill by the `now` of each take; the cluster's
   * buckets refill by Redis's clock (docs/spec/SERVER.md §8.1), here `clock` (the twin's clock,
   * the Redis store's `redisNow`), which the tests keep equal to the `now` they pass.
   */
  buckets: (spec: BucketSpec, clock: () => number, cleanups: Cleanups) => Awaitable<TokenBuckets>;
  /** Absent until the implementation has a router. */
  router?: (cleanups: Cleanups) => Awaitable<Router>;
}

/**
 * The cluster router seen as one {@linkcode Router}: one `ClusterRouter` per attached node over a
 * shared bus, and every call made from an extra node `origin` (an edge and operator elsewhere).
 * A connection bound through `bind` is held by that home as a remote session of `origin`.
 */
class ClusterRouters implements Router {
  readonly #makeBus: (node: string) => Promise<ClusterBus>;
  readonly #nodes = new Map<string, ClusterRouter>();
  readonly #cleanups: Cleanups;
  #origin: ClusterRouter | undefined;
  readonly #ready: Promise<void>[] = [];

  constructor(makeBus: (node: string) => Promise<ClusterBus>, cleanups: Cleanups) {
    this.#makeBus = makeBus;
    this.#cleanups = cleanups;
  }

  async #router(node: string): Promise<ClusterRouter> {
    const bus = await this.#makeBus(node);
    const router = new ClusterRouter(bus, {
      forwardTimeoutMs: 2_000,
      heartbeatMs: 60_000,
      idleMs: 60_000,
    });
    await bus.start(router.busHandlers());
    this.#cleanups.push(async () => {
      router.stop();
      await bus.close();
    });
    return router;
  }

  /** Creates the origin node. */
  async init(): Promise<this> {
    this.#origin = await this.#router("origin");
    this.#origin.attach("origin", {
      edge: { deliver: () => undefined, direct: () => {}, flush: () => {} },
      home: {
        bind: () => ({ status: "miss" }),
        receive: () => {},
        closed: () => {},
        command: () => ({ ok: false, reason: "not_found" }),
      },
    });
    return this;
  }

  attach(node: string, endpoints: { edge: EdgeEndpoint; home: HomeEndpoint }): void {
    const held = new Map<string, string>();
    const home: HomeEndpoint = {
      ...endpoints.home,
      bind: (conn, message, now, remote) => {
        const outcome = endpoints.home.bind(conn, message, now, remote);
        if (outcome.status === "bound" && remote) held.set(conn, remote.edge);
        return outcome;
      },
      edgeOf: (conn) => held.get(conn),
    };
    this.#ready.push(
      this.#router(node).then((router) => {
        router.attach(node, { edge: endpoints.edge, home });
        this.#nodes.set(node, router);
      }),
    );
  }

  detach(node: string): void {
    this.#nodes.get(node)?.detach(node);
  }

  /** Resolves once every attached node is subscribed. */
  ready(): Promise<void> {
    return Promise.all(this.#ready).then(() => {});
  }

  /** Resolves once every node has processed what the origin sent it before (FIFO per pair). */
  async settle(): Promise<void> {
    for (const node of this.#nodes.keys()) {
      await this.#origin!.command(node, { kind: "inspect", gameName: "", roomCode: "" }, 0);
    }
    // Their answers to the origin (OUT items) travel on the same pairs, before the replies.
  }

  bind(home: string, conn: string, message: ClientMessage, now: number) {
    return this.#origin!.bind(home, conn, message, now, {
      frame: JSON.stringify(message),
      meta: { ip: "10.0.0.1", format: "json" },
    });
  }

  forward(
    home: string,
    conn: string,
    input: ClientMessage | Uint8Array,
    frame: string | Uint8Array,
    now: number,
  ) {
    this.#origin!.forward(home, conn, input, frame, now);
  }

  closed(home: string, conn: string, cause: ClosedCause, now: number) {
    this.#origin!.closed(home, conn, cause, now);
  }

  deliver(edge: string, frame: string | Uint8Array, to: readonly string[]) {
    return this.#origin!.deliver(edge, frame, to);
  }

  direct(edge: string, directive: Directive, now: number) {
    this.#origin!.direct(edge, directive, now);
  }

  flush() {
    this.#origin!.flush();
  }

  command(home: string, command: RoomCommand, now: number) {
    return this.#origin!.command(home, command, now);
  }
}

/** Cluster routers over the in-memory bus twin. */
async function twinRouters(cleanups: Cleanups): Promise<ClusterRouters> {
  const network = new MemoryNetwork();
  cleanups.push(() => network.close());
  return await new ClusterRouters((node) => Promise.resolve(network.bus(node)), cleanups).init();
}

/** Cluster routers over Redis pub/sub on a private redis-server. */
async function redisRouters(cleanups: Cleanups): Promise<ClusterRouters> {
  const server = await startRedis();
  cleanups.push(() => server.stop());
  return await new ClusterRouters(async (node) => {
    const link = new RedisLink({ url: server.url });
    await link.connect();
    return new RedisBus(link, node, "contract:");
  }, cleanups).init();
}

/** Store settings of a contract run with bucket sizes `spec` (T = 30 s). */
function storeSettings(
  spec: BucketSpec = { creation: 1, join: 1, reconnect: 1, windowMs: 60_000 },
): StoreSettings {
  return {
    prefix: "contract:",
    ttlMs: 30_000,
    reconnectionWindowMs: 300_000,
    buckets: {
      creation: { capacity: spec.creation, windowMs: spec.windowMs },
      join: { capacity: spec.join, windowMs: spec.windowMs },
      reconnect: { capacity: spec.reconnect, windowMs: spec.windowMs },
      auth_failure: { capacity: spec.reconnect, windowMs: spec.windowMs },
    },
    timeoutMs: 5_000,
  };
}

/**
 * A Redis store on a private redis-server, both stopped by the test's cleanups; its scripts take
 * `clock` for Redis's when given.
 */
async function redisStore(
  spec: BucketSpec | undefined,
  clock: (() => number) | undefined,
  cleanups: Cleanups,
): Promise<RedisStore> {
  const server = await startRedis();
  cleanups.push(() => server.stop());
  const link = new RedisLink({ url: server.url });
  cleanups.push(() => link.close());
  await link.connect();
  return new RedisStore(link, { ...storeSettings(spec), ...(clock ? { redisNow: clock } : {}) });
}

const IMPLEMENTATIONS: Implementation[] = [{
  name: "memory",
  directory: () => new MemoryRoomDirectory(),
  buckets: (spec) =>
    new MemoryTokenBuckets(
      new RateLimits({
        maxRoomCreations: spec.creation,
        maxJoinAttempts: spec.join,
        maxReconnectAttempts: spec.reconnect,
        maxAuthFailures: spec.reconnect,
        windowMs: spec.windowMs,
      }),
    ),
  router: () => new LocalRouter(),
}, {
  name: "cluster memory twin",
  directory: () => new MemoryStore(storeSettings()),
  buckets: (spec, clock) => new MemoryStore({ ...storeSettings(spec), now: clock }),
  router: twinRouters,
}, {
  name: "redis",
  ignore: IGNORE_WITHOUT_REDIS,
  directory: (cleanups) => redisStore(undefined, undefined, cleanups),
  buckets: (spec, clock, cleanups) => redisStore(spec, clock, cleanups),
  router: redisRouters,
}];

/** A contract test of `impl`: `body` gets the cleanup list, run whatever the outcome. */
function contract(
  impl: Implementation,
  name: string,
  body: (cleanups: Cleanups) => Promise<void>,
): void {
  Deno.test({
    name: `${name.replace("%", impl.name)}`,
    ignore: impl.ignore,
    fn: async () => {
      const cleanups: Cleanups = [];
      try {
        await body(cleanups);
      } finally {
        for (const cleanup of cleanups.reverse()) await cleanup();
      }
    },
  });
}

const T0 = 1_700_000_000_000;

function record(
  code: string,
  overrides: Partial<DirectoryRecord> & { players?: number } = {},
): DirectoryRecord {
  const { players = 1, ...rest } = overrides;
  return {
    roomId: `id-${code}`,
    gameName: "orbit",
    roomCode: code,
    createdAt: T0,
    home: "node-a",
    summary: {
      room_code: code,
      game_name: rest.gameName ?? "orbit",
      players,
      max_players: 4,
      spectators: 0,
      lobby_state: "waiting",
      supports_authority: true,
      relay_type: "matchbox",
      authority_handover: false,
    },
    ...rest,
  };
}

const CAPS = { maxRoomsPerGame: 10 };

for (const impl of IMPLEMENTATIONS) {
  contract(
    impl,
    `RoomDirectory (%): claim is ok once per code, then taken; stale entries are replaced`,
    async (cleanups) => {
      const directory = await impl.directory(cleanups);
      deepEqual(await directory.claim(record("AAAAAA"), CAPS), { status: "ok" });
      deepEqual(await directory.lookup("orbit", "AAAAAA"), record("AAAAAA"));
      const rival = record("AAAAAA", { roomId: "id-rival", home: "node-b" });
      deepEqual(await directory.claim(rival, CAPS), { status: "taken", record: record("AAAAAA") });
      equal(await directory.lookup("other", "AAAAAA"), undefined, "codes are per game");
      deepEqual(await directory.claim(rival, CAPS, record("AAAAAA")), { status: "ok" });
      equal((await directory.lookup("orbit", "AAAAAA"))?.home, "node-b");
    },
  );

  contract(
    impl,
    `RoomDirectory (%): claim enforces the per-game and per-app caps`,
    async (cleanups) => {
      const directory = await impl.directory(cleanups);
      const caps = { maxRoomsPerGame: 2, maxAppRooms: 1 };
      deepEqual(await directory.claim(record("AAAAAA", { appId: "app" }), caps), { status: "ok" });
      deepEqual(await directory.claim(record("BBBBBB", { appId: "app" }), caps), {
        status: "capped",
        scope: "app",
        count: 1,
        limit: 1,
      });
      deepEqual(await directory.claim(record("BBBBBB"), caps), { status: "ok" });
      deepEqual(await directory.claim(record("CCCCCC"), caps), {
        status: "capped",
        scope: "game",
        count: 2,
        limit: 2,
      });
      deepEqual(
        await directory.claim(record("CCCCCC", { gameName: "other" }), caps),
        { status: "ok" },
        "caps are per game",
      );
      await directory.release("orbit", "AAAAAA", "id-AAAAAA");
      deepEqual(await directory.claim(record("DDDDDD", { appId: "app" }), caps), { status: "ok" });
    },
  );

  contract(
    impl,
    `RoomDirectory (%): rooms without a seat stop counting against an app's max_rooms`,
    async (cleanups) => {
      const directory = await impl.directory(cleanups);
      const caps = { maxRoomsPerGame: 10, maxAppRooms: 2 };
      const app = { appId: "app" };
      const capped = (count: number) => ({ status: "capped", scope: "app", count, limit: 2 });
      // Claimed rooms count before their first refresh, in every game of the app.
      deepEqual(await directory.claim(record("AAAAAA", { ...app, players: 0 }), caps), {
        status: "ok",
      });
      deepEqual(await directory.claim(record("BBBBBB", { ...app, gameName: "other" }), caps), {
        status: "ok",
      });
      deepEqual(await directory.claim(record("CCCCCC", app), caps), capped(2));
      // AAAAAA loses its last seat: it no longer counts.
      equal(await directory.refresh(record("AAAAAA", { ...app, players: 0 })), "refreshed");
      deepEqual(await directory.claim(record("CCCCCC", app), caps), { status: "ok" });
      deepEqual(await directory.claim(record("DDDDDD", app), caps), capped(2));
      // A seat again: it counts again (a refresh is never refused, the count may exceed the cap).
      equal(await directory.refresh(record("AAAAAA", { ...app, players: 1 })), "refreshed");
      deepEqual(await directory.claim(record("DDDDDD", app), caps), capped(3));
      // Releasing an empty room frees nothing more than it held.
      equal(await directory.refresh(record("AAAAAA", { ...app, players: 0 })), "refreshed");
      await directory.release("orbit", "AAAAAA", "id-AAAAAA");
      deepEqual(await directory.claim(record("DDDDDD", app), caps), capped(2));
      // An empty room replaced as stale leaves the empty set with its slot.
      equal(await directory.refresh(record("CCCCCC", { ...app, players: 0 })), "refreshed");
      const rival = record("CCCCCC", { ...app, roomId: "id-rival", home: "node-b" });
      deepEqual(await directory.claim(rival, caps, record("CCCCCC", app)), { status: "ok" });
      deepEqual(await directory.claim(record("DDDDDD", app), caps), capped(2));
      deepEqual(await directory.claim(record("DDDDDD", { appId: "other-app" }), caps), {
        status: "ok",
      });
    },
  );

  contract(
    impl,
    `RoomDirectory (%): rooms without a seat stop counting against the game and IP caps`,
    async (cleanups) => {
      const directory = await impl.directory(cleanups);
      const caps = { maxRoomsPerGame: 2, maxRoomsPerIp: 1 };
      const ip = { creatorIp: "203.0.113.7" };
      // A claimed room counts before its first refresh (its creator is about to sit).
      deepEqual(await directory.claim(record("AAAAAA", { ...ip, players: 0 }), caps), {
        status: "ok",
      });
      deepEqual(await directory.claim(record("BBBBBB", ip), caps), {
        status: "capped",
        scope: "ip",
        count: 1,
        limit: 1,
      });
      deepEqual(await directory.claim(record("BBBBBB", { creatorIp: "198.51.100.1" }), caps), {
        status: "ok",
      });
      deepEqual(await directory.claim(record("CCCCCC"), caps), {
        status: "capped",
        scope: "game",
        count: 2,
        limit: 2,
      });
      // AAAAAA loses its last seat: it no longer counts for the game nor for its creator's IP.
      equal(await directory.refresh(record("AAAAAA", { ...ip, players: 0 })), "refreshed");
      deepEqual(await directory.claim(record("CCCCCC", ip), caps), { status: "ok" });
      ok(await directory.lookup("orbit", "AAAAAA"), "the empty room's entry stays");
      deepEqual(await directory.claim(record("DDDDDD"), caps), {
        status: "capped",
        scope: "game",
        count: 2,
        limit: 2,
      });
      // A seat again: it counts again (a refresh is never refused, the count may exceed the cap).
      equal(await directory.refresh(record("AAAAAA", { ...ip, players: 1 })), "refreshed");
      deepEqual(await directory.claim(record("DDDDDD"), caps), {
        status: "capped",
        scope: "game",
        count: 3,
        limit: 2,
      });
      // Released rooms free their slots; other games and IPs are separate.
      await directory.release("orbit", "AAAAAA", "id-AAAAAA");
      await directory.release("orbit", "CCCCCC", "id-CCCCCC");
      deepEqual(await directory.claim(record("DDDDDD", ip), caps), { status: "ok" });
      deepEqual(await directory.claim(record("EEEEEE", { ...ip, gameName: "other" }), caps), {
        status: "ok",
      });
    },
  );

  contract(
    impl,
    `RoomDirectory (%): unattended rooms (every seat held) stop counting against the game, app and IP caps`,
    async (cleanups) => {
      const directory = await impl.directory(cleanups);
      const caps = { maxRoomsPerGame: 2, maxAppRooms: 2, maxRoomsPerIp: 1 };
      const mine = { appId: "app", creatorIp: "203.0.113.7" };
      const capped = (scope: string, count: number, limit: number) => ({
        status: "capped",
        scope,
        count,
        limit,
      });
      deepEqual(await directory.claim(record("AAAAAA", mine), caps), { status: "ok" });
      deepEqual(await directory.claim(record("BBBBBB", { appId: "app" }), caps), { status: "ok" });
      deepEqual(
        await directory.claim(record("CCCCCC", { appId: "app" }), caps),
        capped("game", 2, 2),
      );
      // AAAAAA's players all drop (seats held): it no longer counts for the game, app or IP.
      equal(
        await directory.refresh(record("AAAAAA", { ...mine, unattended: true })),
        "refreshed",
      );
      ok((await directory.lookup("orbit", "AAAAAA"))?.unattended, "the entry says so");
      deepEqual(await directory.claim(record("CCCCCC", mine), caps), { status: "ok" });
      // A player back: it counts again (a refresh is never refused, the count may exceed a cap).
      equal(await directory.refresh(record("AAAAAA", mine)), "refreshed");
      deepEqual(await directory.claim(record("DDDDDD"), caps), capped("game", 3, 2));
      deepEqual(
        await directory.claim(record("DDDDDD", { ...mine, gameName: "other" }), caps),
        capped("app", 3, 2),
      );
    },
  );

  contract(
    impl,
    `RoomDirectory (%): refresh rewrites, re-creates or reports a conflict`,
    async (cleanups) => {
      const directory = await impl.directory(cleanups);
      equal(await directory.refresh(record("AAAAAA")), "created");
      equal(await directory.refresh(record("AAAAAA", { players: 3 })), "refreshed");
      equal((await directory.lookup("orbit", "AAAAAA"))?.summary.players, 3);
      equal(await directory.refresh(record("AAAAAA", { roomId: "id-rival" })), "conflict");
      equal((await directory.lookup("orbit", "AAAAAA"))?.roomId, "id-AAAAAA");
      // A re-registration is never refused by the caps.
      const full = await impl.directory(cleanups);
      await full.claim(record("AAAAAA"), { maxRoomsPerGame: 1 });
      equal(await full.refresh(record("BBBBBB")), "created");
    },
  );

  contract(
    impl,
    `RoomDirectory (%): release deletes only the named room's entry`,
    async (cleanups) => {
      const directory = await impl.directory(cleanups);
      await directory.claim(record("AAAAAA"), CAPS);
      await directory.release("orbit", "AAAAAA", "id-someone-else");
      ok(await directory.lookup("orbit", "AAAAAA"));
      await directory.release("orbit", "AAAAAA", "id-AAAAAA");
      equal(await directory.lookup("orbit", "AAAAAA"), undefined);
      await directory.release("orbit", "AAAAAA", "id-AAAAAA"); // idempotent
    },
  );

  contract(
    impl,
    `RoomDirectory (%): list gives rooms with seats of one game, oldest first`,
    async (cleanups) => {
      const directory = await impl.directory(cleanups);
      await directory.claim(record("AAAAAA"), CAPS);
      await directory.claim(record("BBBBBB", { players: 0 }), CAPS);
      await directory.claim(record("CCCCCC", { gameName: "other" }), CAPS);
      await directory.claim(record("DDDDDD"), CAPS);
      await directory.claim(record("EEEEEE"), CAPS);
      const codes = async (limit: number) =>
        (await directory.list("orbit", limit)).map((r) => r.roomCode);
      deepEqual(await codes(10), ["AAAAAA", "DDDDDD", "EEEEEE"]);
      deepEqual(await codes(2), ["AAAAAA", "DDDDDD"]);
    },
  );

  contract(
    impl,
    `RoomDirectory (%): list matches its definition over seeded random claims, refreshes and releases`,
    async (cleanups) => {
      // The definition: the game's entries with players, by creation time then code, the
      // first `limit`. Creation times rise as rooms are created (as in an engine; one process's
      // directory keeps entries in creation order); more rooms than one read batch of an
      // index, rooms whose players come and go, codes claimed again by later rooms.
      const directory = await impl.directory(cleanups);
      let state = 7;
      const random = (n: number) => {
        state = (Math.imul(state, 1103515245) + 12345) >>> 0;
        return (state >>> 8) % n;
      };
      const model = new Map<string, DirectoryRecord>();
      const code = (i: number) => `R${String(i).padStart(5, "0")}`;
      const caps = { maxRoomsPerGame: 10_000 };
      let ids = 0;
      const expected = (limit: number) =>
        [...model.values()]
          .filter((entry) => entry.summary.players > 0)
          .sort((a, b) => a.createdAt - b.createdAt || (a.roomCode < b.roomCode ? -1 : 1))
          .slice(0, limit)
          .map((entry) => `${entry.roomCode}/${entry.roomId}`);
      const listed = async (limit: number) =>
        (await directory.list("orbit", limit)).map((entry) => `${entry.roomCode}/${entry.roomId}`);
      for (let step = 0; step < 400; step++) {
        const roomCode = code(random(180));
        const current = model.get(roomCode);
        const roll = random(10);
        if (current === undefined || roll < 2) {
          // A claim, or a claim over the current entry (held stale) by another room.
          const fresh = record(roomCode, {
            roomId: `id-${ids++}`,
            createdAt: T0 + step * 3 + random(3),
            players: random(3),
          });
          equal((await directory.claim(fresh, caps, current)).status, "ok", `claim ${step}`);
          model.set(roomCode, fresh);
        } else if (roll < 7) {
          const changed = {
            ...current,
            summary: {
              ...current.summary,
              players: random(3),
              spectators: random(3),
              lobby_state: ["waiting", "lobby", "finalized"][random(3)]!,
            },
          };
          equal(await directory.refresh(changed), "refreshed", `refresh ${step}`);
          model.set(roomCode, changed);
        } else {
          await directory.release("orbit", roomCode, current.roomId);
          model.delete(roomCode);
        }
        if (step % 40 === 39) {
          for (const limit of [1, 30, 100, 1000]) {
            deepEqual(await listed(limit), expected(limit), `step ${step}, limit ${limit}`);
            // The operator's listing: every room, empty ones too, in the same order.
            const all = (await directory.all(limit)).map((e) => `${e.roomCode}/${e.roomId}`);
            const every = [...model.values()]
              .sort((a, b) => a.createdAt - b.createdAt || (a.roomCode < b.roomCode ? -1 : 1))
              .slice(0, limit)
              .map((entry) => `${entry.roomCode}/${entry.roomId}`);
            deepEqual(all, every, `all: step ${step}, limit ${limit}`);
          }
          // The operator's sorted pages: every key, both ways, from a random offset.
          for (const key of ROOM_SORT_KEYS) {
            for (const descending of [false, true]) {
              const sort = { key, descending };
              const ordered = [...model.values()].sort(compareRooms(sort));
              const offset = random(ordered.length + 1);
              const page = await directory.page({ offset, limit: 25, sort });
              const id = (entry: DirectoryRecord) => `${entry.roomCode}/${entry.roomId}`;
              const what = `page: step ${step}, ${descending ? "-" : ""}${key} from ${offset}`;
              deepEqual(page.records.map(id), ordered.slice(offset, offset + 25).map(id), what);
              equal(page.truncated, ordered.length > offset + 25, what);
            }
          }
        }
      }
    },
  );

  contract(
    impl,
    `RoomDirectory (%): all gives every room of every game, oldest first`,
    async (cleanups) => {
      const directory = await impl.directory(cleanups);
      await directory.claim(record("AAAAAA"), CAPS);
      await directory.claim(record("BBBBBB", { players: 0 }), CAPS);
      await directory.claim(record("CCCCCC", { gameName: "other", home: "node-b" }), CAPS);
      await directory.claim(record("DDDDDD"), CAPS);
      await directory.release("orbit", "DDDDDD", "id-DDDDDD");
      const rooms = async (limit: number) =>
        (await directory.all(limit)).map((r) => `${r.gameName}/${r.roomCode}@${r.home}`);
      deepEqual(await rooms(10), [
        "orbit/AAAAAA@node-a",
        "orbit/BBBBBB@node-a",
        "other/CCCCCC@node-b",
      ]);
      deepEqual(await rooms(1), ["orbit/AAAAAA@node-a"]);
      deepEqual(await rooms(0), []);
    },
  );

  contract(
    impl,
    `RoomDirectory (%): page with a filter keeps a game's rooms, those matching a query or those in a lobby state, before the page`,
    async (cleanups) => {
      const directory = await impl.directory(cleanups);
      // Twelve rooms of one game first, then the other game's: the filter must look past them.
      for (let i = 0; i < 12; i++) {
        const code = `AA${String(i).padStart(4, "0")}`;
        await directory.claim(record(code, { createdAt: T0 + i }), { maxRoomsPerGame: 100 });
      }
      await directory.claim(
        record("QUIZ01", { gameName: "other", createdAt: T0 + 20, players: 0 }),
        CAPS,
      );
      await directory.claim(record("ZZZZZZ", { gameName: "other", createdAt: T0 + 21 }), CAPS);
      await directory.claim(record("BBQUIZ", { createdAt: T0 + 22 }), { maxRoomsPerGame: 100 });
      const full = record("FULL01", { gameName: "third", createdAt: T0 + 23 });
      full.summary.lobby_state = "lobby";
      await directory.claim(full, CAPS);
      const rooms = async (limit: number, filter: RoomFilter) =>
        (await directory.page({ offset: 0, limit, filter })).records.map((r) =>
          `${r.gameName}/${r.roomCode}`
        );
      deepEqual(await rooms(5, { gameName: "other" }), ["other/QUIZ01", "other/ZZZZZZ"]);
      deepEqual(await rooms(1, { gameName: "other" }), ["other/QUIZ01"]);
      deepEqual(await rooms(5, { query: "quiz" }), ["other/QUIZ01", "orbit/BBQUIZ"]);
      deepEqual(await rooms(5, { query: "othe" }), ["other/QUIZ01", "other/ZZZZZZ"]);
      deepEqual(await rooms(5, { gameName: "orbit", query: "quiz" }), ["orbit/BBQUIZ"]);
      deepEqual(await rooms(5, { gameName: "none" }), []);
      deepEqual(await rooms(5, { lobbyState: "lobby" }), ["third/FULL01"]);
      deepEqual(await rooms(5, { gameName: "orbit", lobbyState: "lobby" }), []);
      deepEqual(await rooms(2, { gameName: "other", lobbyState: "waiting" }), [
        "other/QUIZ01",
        "other/ZZZZZZ",
      ]);
      equal((await rooms(100, {})).length, 16);
      equal((await directory.all(100)).length, 16);
      // The filter applies before the page is cut: the offset counts matching rooms only.
      const second = await directory.page({ offset: 1, limit: 1, filter: { query: "quiz" } });
      deepEqual(second.records.map((r) => r.roomCode), ["BBQUIZ"]);
      deepEqual([second.truncated, second.complete], [false, true]);
      const first = await directory.page({ offset: 0, limit: 1, filter: { query: "quiz" } });
      deepEqual([first.truncated, first.complete], [true, true]);
    },
  );

  contract(
    impl,
    `RoomDirectory (%): page sorts by each key both ways, ties by game and code, in pages that neither repeat nor skip`,
    async (cleanups) => {
      const directory = await impl.directory(cleanups);
      const rooms: [string, string, number, number, number, string][] = [
        // game, code, created (+T0), players, spectators, lobby state
        ["orbit", "MMMM01", 5, 2, 0, "waiting"],
        ["comet", "AAAA02", 1, 4, 3, "finalized"],
        ["orbit", "ZZZZ03", 1, 0, 1, "waiting"],
        ["comet", "MMMM01", 3, 2, 0, "lobby"],
        ["orbit", "BBBB04", 1, 3, 0, "lobby"],
        ["comet", "QQQQ05", 9, 1, 2, "waiting"],
      ];
      for (const [gameName, code, created, players, spectators, lobby] of rooms) {
        const entry = record(code, { gameName, createdAt: T0 + created, players });
        entry.summary.spectators = spectators;
        entry.summary.lobby_state = lobby;
        equal((await directory.claim(entry, CAPS)).status, "ok");
      }
      // Ascending orders, written out (descending is each reversed).
      const expected: Record<RoomSortKey, string[]> = {
        created: [
          "comet/AAAA02",
          "orbit/BBBB04",
          "orbit/ZZZZ03",
          "comet/MMMM01",
          "orbit/MMMM01",
          "comet/QQQQ05",
        ],
        code: [
          "comet/AAAA02",
          "orbit/BBBB04",
          "comet/MMMM01",
          "orbit/MMMM01",
          "comet/QQQQ05",
          "orbit/ZZZZ03",
        ],
        game: [
          "comet/AAAA02",
          "comet/MMMM01",
          "comet/QQQQ05",
          "orbit/BBBB04",
          "orbit/MMMM01",
          "orbit/ZZZZ03",
        ],
        players: [
          "orbit/ZZZZ03",
          "comet/QQQQ05",
          "comet/MMMM01",
          "orbit/MMMM01",
          "orbit/BBBB04",
          "comet/AAAA02",
        ],
        spectators: [
          "comet/MMMM01",
          "orbit/BBBB04",
          "orbit/MMMM01",
          "orbit/ZZZZ03",
          "comet/QQQQ05",
          "comet/AAAA02",
        ],
        lobby_state: [
          "comet/QQQQ05",
          "orbit/MMMM01",
          "orbit/ZZZZ03",
          "comet/MMMM01",
          "orbit/BBBB04",
          "comet/AAAA02",
        ],
      };
      const names = (records: DirectoryRecord[]) =>
        records.map((r) => `${r.gameName}/${r.roomCode}`);
      for (const key of ROOM_SORT_KEYS) {
        for (const descending of [false, true]) {
          const sort = { key, descending };
          const want = descending ? [...expected[key]].reverse() : expected[key];
          deepEqual(
            names((await directory.page({ offset: 0, limit: 10, sort })).records),
            want,
            `${key} ${descending}`,
          );
          // Pages of two: every room once, in order; the last one says nothing follows.
          const pages = [];
          for (let offset = 0; offset < 6; offset += 2) {
            const page = await directory.page({ offset, limit: 2, sort });
            equal(page.truncated, offset < 4, `${key} ${descending} at ${offset}`);
            pages.push(...names(page.records));
          }
          deepEqual(pages, want, `${key} ${descending} in pages`);
        }
      }
      // The orders follow refreshes and releases.
      const busy = record("ZZZZ03", { createdAt: T0 + 1, players: 5 });
      busy.summary.spectators = 1;
      equal(await directory.refresh(busy), "refreshed");
      await directory.release("comet", "AAAA02", "id-AAAA02");
      deepEqual(
        names(
          (await directory.page({
            offset: 0,
            limit: 10,
            sort: { key: "players", descending: true },
          })).records,
        ),
        ["orbit/ZZZZ03", "orbit/BBBB04", "orbit/MMMM01", "comet/MMMM01", "comet/QQQQ05"],
      );
      deepEqual(
        names(
          (await directory.page({ offset: 3, limit: 10, sort: { key: "code", descending: false } }))
            .records,
        ),
        ["comet/QQQQ05", "orbit/ZZZZ03"],
      );
      // A game filter keeps the order (a game's rooms by creation time, and by another key).
      deepEqual(
        names(
          (await directory.page({
            offset: 0,
            limit: 10,
            filter: { gameName: "orbit" },
            sort: { key: "created", descending: true },
          })).records,
        ),
        ["orbit/MMMM01", "orbit/ZZZZ03", "orbit/BBBB04"],
      );
      deepEqual(
        names(
          (await directory.page({
            offset: 1,
            limit: 1,
            filter: { gameName: "orbit" },
            sort: { key: "players", descending: false },
          })).records,
        ),
        ["orbit/BBBB04"],
      );
    },
  );

  contract(
    impl,
    `RoomDirectory (%): a page's query finds a seated player by name (any part, any case) or by the start of the id`,
    async (cleanups) => {
      const directory = await impl.directory(cleanups);
      const seated = (
        code: string,
        created: number,
        names: string[],
        ids: string[],
        gameName = "orbit",
      ) => {
        const entry = record(code, { gameName, createdAt: T0 + created, players: names.length });
        entry.search = roomSearch(
          gameName,
          names.map((name, i) => ({ id: ids[i]!, nameKey: name })),
        );
        return entry;
      };
      const ALICE = "3f2a9c10-0000-4000-8000-00000000a11c";
      const BOB = "77b0e2d4-0000-4000-8000-000000000b0b";
      await directory.claim(seated("ROOM01", 1, ["alice", "bob"], [ALICE, BOB]), CAPS);
      await directory.claim(
        seated("ROOM02", 2, ["émile"], ["c0ffee00-0000-4000-8000-000000000001"]),
        CAPS,
      );
      await directory.claim(seated("ROOM03", 3, [], [], "app-1\u0001Quiz Night"), CAPS);
      await directory.claim(record("ROOM04", { createdAt: T0 + 4 }), CAPS); // no search terms
      const found = async (query: string, sort?: RoomSort) =>
        (await directory.page({
          offset: 0,
          limit: 10,
          filter: { query },
          ...(sort ? { sort } : {}),
        }))
          .records.map((r) => r.roomCode);
      deepEqual(await found("alice"), ["ROOM01"]);
      deepEqual(await found("lic"), ["ROOM01"], "any part of the name");
      deepEqual(await found("émile"), ["ROOM02"]);
      deepEqual(await found("3f2a9c10"), ["ROOM01"], "the start of an id");
      deepEqual(await found(ALICE), ["ROOM01"], "a whole id");
      deepEqual(await found("9c10"), [], "not the middle of an id");
      deepEqual(await found("quiz night"), ["ROOM03"], "the game name, lower-cased");
      deepEqual(await found("app-1"), ["ROOM03"], "the app's namespace is part of it");
      deepEqual(await found("room0"), ["ROOM01", "ROOM02", "ROOM03", "ROOM04"], "codes");
      deepEqual(
        await found("orbit"),
        ["ROOM01", "ROOM02", "ROOM04"],
        "the game name, without terms too",
      );
      deepEqual(await found("room0", { key: "players", descending: true }), [
        // Descending reverses the ties' order too: ROOM04 before ROOM02 (1 player each).
        "ROOM01",
        "ROOM04",
        "ROOM02",
        "ROOM03",
      ]);
      deepEqual(await found("nobody"), []);
      // Redis matches in the entry's JSON text: its keys, values and punctuation never match.
      for (
        const query of [
          "search",
          "terms",
          "ids",
          "lobby_state",
          "waiting",
          "}",
          "]",
          ",",
          ":",
          '"',
          "\\",
          "node-a",
          "id-room",
        ]
      ) {
        deepEqual(await found(query), [], query);
      }
      await directory.claim(
        seated("ROOM05", 5, ['o"brien\\'], ["deadbeef-0000-4000-8000-000000000005"]),
        CAPS,
      );
      deepEqual(await found('o"b'), ["ROOM05"], "a quote in a name");
      deepEqual(await found('"'), ["ROOM05"]);
      deepEqual(await found("\\"), ["ROOM05"], "a backslash in a name");
      deepEqual(await found("brien\\"), ["ROOM05"]);
      await directory.release("orbit", "ROOM05", "id-ROOM05");
      // The terms follow the room: bob leaves.
      const after = seated("ROOM01", 1, ["alice"], [ALICE]);
      equal(await directory.refresh(after), "refreshed");
      deepEqual(await found("bob"), []);
      deepEqual(await found("77b0"), []);
      deepEqual(await found("alice"), ["ROOM01"]);
      // With the other filters: all must hold.
      deepEqual(
        (await directory.page({
          offset: 0,
          limit: 10,
          filter: { query: "alice", gameName: "orbit", lobbyState: "waiting" },
        })).records.map((r) => r.roomCode),
        ["ROOM01"],
      );
      deepEqual(
        (await directory.page({
          offset: 0,
          limit: 10,
          filter: { query: "alice", lobbyState: "lobby" },
        })).records,
        [],
      );
    },
  );

  contract(
    impl,
    `RoomDirectory (%): a filtered page looks at most at its budget of rooms (cluster) and says when it stopped`,
    async (cleanups) => {
      const directory = await impl.directory(cleanups);
      for (let i = 0; i < 30; i++) {
        const code = `B${String(i).padStart(5, "0")}`;
        await directory.claim(record(code, { createdAt: T0 + i }), { maxRoomsPerGame: 100 });
      }
      // Only the last rooms match; a budget of 10 stops the walk before them.
      const filter = { query: "b0002" };
      const cut = await directory.page({ offset: 0, limit: 5, filter, budget: 10 });
      const whole = await directory.page({ offset: 0, limit: 5, filter, budget: 40 });
      const codes = (page: { records: DirectoryRecord[] }) => page.records.map((r) => r.roomCode);
      deepEqual(codes(whole), ["B00020", "B00021", "B00022", "B00023", "B00024"]);
      deepEqual([whole.truncated, whole.complete], [true, true]);
      if (impl.name === "memory") {
        // One process looks at every room: no Redis to spare.
        deepEqual(codes(cut), codes(whole));
        equal(cut.complete, true);
      } else {
        deepEqual([codes(cut), cut.truncated, cut.complete, cut.examined], [[], false, false, 10]);
        // Matches found before the budget is spent are answered, with complete: false.
        const partial = await directory.page({ offset: 0, limit: 5, filter, budget: 22 });
        deepEqual([codes(partial), partial.complete, partial.examined], [
          ["B00020", "B00021"],
          false,
          22,
        ]);
        // Newest first, the same budget finds them at once.
        const newest = await directory.page({
          offset: 0,
          limit: 5,
          filter,
          budget: 10,
          sort: { key: "created", descending: true },
        });
        deepEqual([codes(newest), newest.truncated, newest.complete], [
          ["B00029", "B00028", "B00027", "B00026", "B00025"],
          true,
          true,
        ]);
        // An unfiltered page reads its ranks only, however far in.
        const deep = await directory.page({ offset: 25, limit: 3, budget: 1 });
        deepEqual([codes(deep), deep.truncated, deep.complete, deep.examined], [
          ["B00025", "B00026", "B00027"],
          true,
          true,
          3,
        ]);
      }
    },
  );

  contract(
    impl,
    `TokenBuckets (%): takes until empty, then says when, per kind and key`,
    async (cleanups) => {
      // The time of the takes, and the cluster buckets' clock (Redis's): the same.
      let time = T0;
      const at = (ms: number) => time = T0 + ms;
      const buckets = await impl.buckets(
        { creation: 2, join: 1, reconnect: 3, windowMs: 60_000 },
        () => time,
        cleanups,
      );
      deepEqual(await buckets.take("creation", "10.0.0.1", at(0)), { ok: true });
      deepEqual(await buckets.take("creation", "10.0.0.1", at(0)), { ok: true });
      deepEqual(await buckets.take("creation", "10.0.0.1", at(0)), {
        ok: false,
        retryAfterSecs: 30,
      });
      deepEqual(await buckets.take("join", "10.0.0.1", at(0)), { ok: true }, "kinds are separate");
      deepEqual(
        await buckets.take("creation", "10.0.0.2", at(0)),
        { ok: true },
        "keys are separate",
      );
      deepEqual(await buckets.take("join", "10.0.0.1", at(1)), { ok: false, retryAfterSecs: 60 });
      deepEqual(await buckets.take("creation", "10.0.0.1", at(30_000)), { ok: true }, "refilled");
      for (let i = 0; i < 3; i++) {
        deepEqual(
          await buckets.take("reconnect", "10.0.0.1", time),
          { ok: true },
          `reconnect ${i}`,
        );
      }
      deepEqual(await buckets.take("reconnect", "10.0.0.1", time), {
        ok: false,
        retryAfterSecs: 20,
      });
      // check looks without taking (the failed-Authenticate budget, same capacity here).
      for (let i = 0; i < 5; i++) {
        deepEqual(
          await buckets.check("auth_failure", "10.0.0.1", time),
          { ok: true },
          `check ${i}`,
        );
      }
      for (let i = 0; i < 3; i++) await buckets.take("auth_failure", "10.0.0.1", time);
      deepEqual(await buckets.check("auth_failure", "10.0.0.1", time), {
        ok: false,
        retryAfterSecs: 20,
      });
      deepEqual(await buckets.check("auth_failure", "10.0.0.1", at(50_000)), { ok: true });
      deepEqual(await buckets.check("reconnect", "10.0.0.2", time), { ok: true });
    },
  );

  const makeRouter = impl.router;
  if (makeRouter === undefined) continue;
  contract(
    impl,
    `Router (%): carries each crossing to the named node only, in order`,
    async (cleanups) => {
      const router = await makeRouter(cleanups);
      const calls: string[] = [];
      const node = (name: string): { edge: EdgeEndpoint; home: HomeEndpoint } => ({
        edge: {
          deliver: (frame, to) => {
            calls.push(`${name} deliver ${frame} ${to.join(",")}`);
            return to.includes("gone") ? [{ id: "gone", failure: { reason: "gone" } }] : undefined;
          },
          direct: (directive) =>
            void calls.push(`${name} direct ${directive.kind} ${directive.conn}`),
          flush: () => void calls.push(`${name} flush`),
        },
        home: {
          bind: (conn, message) => {
            calls.push(`${name} bind ${conn} ${message.type}`);
            return { status: "bound", role: "player" };
          },
          receive: (conn, input) =>
            void calls.push(
              `${name} receive ${conn} ${input instanceof Uint8Array ? "binary" : input.type}`,
            ),
          closed: (conn, cause) => void calls.push(`${name} closed ${conn} ${cause}`),
          command: (command) =>
            command.roomCode === "AAAAAA"
              ? { ok: true, summary: record("AAAAAA").summary }
              : { ok: false, reason: "not_found" },
        },
      });
      router.attach("a", node("a"));
      router.attach("b", node("b"));
      if (router instanceof ClusterRouters) await router.ready();
      const join = {
        type: "JoinRoom",
        data: { game_name: "orbit", player_name: "Mira" },
      } as ClientMessage;
      const ping = { type: "Ping" } as ClientMessage;
      deepEqual(await router.bind("b", "c1", join, T0), { status: "bound", role: "player" });
      router.forward("b", "c1", ping, '{"type":"Ping"}', T0);
      router.forward("b", "c1", new Uint8Array([1]), new Uint8Array([1]), T0);
      router.closed("b", "c1", "closed", T0);
      const failed = router.deliver("a", "frame-1", ["c1", "gone"]);
      if (failed !== undefined) deepEqual(failed, [{ id: "gone", failure: { reason: "gone" } }]);
      router.direct("a", { kind: "close", conn: "c1", code: 4001, reason: "Replaced" }, T0);
      router.flush();
      deepEqual(
        (await router.command("b", {
          kind: "inspect",
          gameName: "orbit",
          roomCode: "AAAAAA",
        }, T0)).ok,
        true,
      );
      if (router instanceof ClusterRouters) await router.settle();
      // Order is guaranteed per destination node (one stream per pair, docs/spec/SERVER.md §8.4.1).
      const at = (node: string) =>
        calls.filter((call) => call.startsWith(`${node} `) && !call.endsWith("flush"));
      deepEqual(at("b"), [
        "b bind c1 JoinRoom",
        "b receive c1 Ping",
        "b receive c1 binary",
        "b closed c1 closed",
      ]);
      deepEqual(at("a"), ["a deliver frame-1 c1,gone", "a direct close c1"]);
      ok(calls.includes("a flush"), "flush reaches the edge that got frames");
    },
  );

  contract(
    impl,
    `Router (%): a detached node is unreachable (memory) or does not answer (cluster)`,
    async (cleanups) => {
      const router = await makeRouter(cleanups);
      const ping = { type: "Ping" } as ClientMessage;
      // Not bound: `miss` in memory; a lost BIND across nodes resolves `unbound` (the client got
      // SERVICE_UNAVAILABLE, docs/spec/SERVER.md §8.5.1).
      const outcome = await router.bind("nowhere", "c1", ping, T0);
      ok(outcome.status === "miss" || outcome.status === "unbound", outcome.status);
      // In memory no home takes the command (`unreachable`); across nodes it was sent and nothing
      // answered in time (`no_answer`: the outcome is unknown).
      const reply = await router.command("nowhere", {
        kind: "inspect",
        gameName: "orbit",
        roomCode: "AAAAAA",
      }, T0);
      deepEqual(reply, { ok: false, reason: impl.name === "memory" ? "unreachable" : "no_answer" });
      const failed = router.deliver("nowhere", "frame", ["c1"]);
      if (failed !== undefined) deepEqual(failed, [{ id: "c1", failure: { reason: "gone" } }]);
      router.forward("nowhere", "c1", ping, "{}", T0); // dropped, never thrown
    },
  );
}
