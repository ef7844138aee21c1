/**
 * One contract for each coordination seam, run over every implementation (SERVER.md §8.9):
 * today the in-memory ones; the Redis bus and store join the `IMPLEMENTATIONS` list. Tests
 * `await` every answer, so synchronous and asynchronous implementations pass the same checks.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { RateLimits } from "../engine/rate_limits.ts";
import type { ClientMessage } from "../protocol/messages.ts";
import type { TokenBuckets } from "./buckets.ts";
import type { DirectoryRecord, RoomDirectory } from "./directory.ts";
import { LocalRouter, MemoryRoomDirectory, MemoryTokenBuckets } from "./memory.ts";
import type { EdgeEndpoint, HomeEndpoint, Router } from "./router.ts";

/** Bucket sizes of a contract run: tokens per kind, refilled over `windowMs`. */
interface BucketSpec {
  creation: number;
  join: number;
  windowMs: number;
}

/** How to make a fresh instance of each seam. */
interface Implementation {
  name: string;
  directory: () => RoomDirectory;
  buckets: (spec: BucketSpec) => TokenBuckets;
  router: () => Router;
}

const IMPLEMENTATIONS: Implementation[] = [{
  name: "memory",
  directory: () => new MemoryRoomDirectory(),
  buckets: (spec) =>
    new MemoryTokenBuckets(
      new RateLimits({
        maxRoomCreations: spec.creation,
        maxJoinAttempts: spec.join,
        windowMs: spec.windowMs,
      }),
    ),
  router: () => new LocalRouter(),
}];

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
  Deno.test(`RoomDirectory (${impl.name}): claim is ok once per code, then taken; stale entries are replaced`, async () => {
    const directory = impl.directory();
    deepEqual(await directory.claim(record("AAAAAA"), CAPS), { status: "ok" });
    deepEqual(await directory.lookup("orbit", "AAAAAA"), record("AAAAAA"));
    const rival = record("AAAAAA", { roomId: "id-rival", home: "node-b" });
    deepEqual(await directory.claim(rival, CAPS), { status: "taken", record: record("AAAAAA") });
    equal(await directory.lookup("other", "AAAAAA"), undefined, "codes are per game");
    deepEqual(await directory.claim(rival, CAPS, record("AAAAAA")), { status: "ok" });
    equal((await directory.lookup("orbit", "AAAAAA"))?.home, "node-b");
  });

  Deno.test(`RoomDirectory (${impl.name}): claim enforces the per-game and per-app caps`, async () => {
    const directory = impl.directory();
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
  });

  Deno.test(`RoomDirectory (${impl.name}): refresh rewrites, re-creates or reports a conflict`, async () => {
    const directory = impl.directory();
    equal(await directory.refresh(record("AAAAAA")), "created");
    equal(await directory.refresh(record("AAAAAA", { players: 3 })), "refreshed");
    equal((await directory.lookup("orbit", "AAAAAA"))?.summary.players, 3);
    equal(await directory.refresh(record("AAAAAA", { roomId: "id-rival" })), "conflict");
    equal((await directory.lookup("orbit", "AAAAAA"))?.roomId, "id-AAAAAA");
    // A re-registration is never refused by the caps.
    const full = impl.directory();
    await full.claim(record("AAAAAA"), { maxRoomsPerGame: 1 });
    equal(await full.refresh(record("BBBBBB")), "created");
  });

  Deno.test(`RoomDirectory (${impl.name}): release deletes only the named room's entry`, async () => {
    const directory = impl.directory();
    await directory.claim(record("AAAAAA"), CAPS);
    await directory.release("orbit", "AAAAAA", "id-someone-else");
    ok(await directory.lookup("orbit", "AAAAAA"));
    await directory.release("orbit", "AAAAAA", "id-AAAAAA");
    equal(await directory.lookup("orbit", "AAAAAA"), undefined);
    await directory.release("orbit", "AAAAAA", "id-AAAAAA"); // idempotent
  });

  Deno.test(`RoomDirectory (${impl.name}): list gives rooms with seats of one game, oldest first`, async () => {
    const directory = impl.directory();
    await directory.claim(record("AAAAAA"), CAPS);
    await directory.claim(record("BBBBBB", { players: 0 }), CAPS);
    await directory.claim(record("CCCCCC", { gameName: "other" }), CAPS);
    await directory.claim(record("DDDDDD"), CAPS);
    await directory.claim(record("EEEEEE"), CAPS);
    const codes = async (limit: number) =>
      (await directory.list("orbit", limit)).map((r) => r.roomCode);
    deepEqual(await codes(10), ["AAAAAA", "DDDDDD", "EEEEEE"]);
    deepEqual(await codes(2), ["AAAAAA", "DDDDDD"]);
  });

  Deno.test(`RoomDirectory (${impl.name}): all gives every room of every game, oldest first`, async () => {
    const directory = impl.directory();
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
  });

  Deno.test(`TokenBuckets (${impl.name}): takes until empty, then says when, per kind and key`, async () => {
    const buckets = impl.buckets({ creation: 2, join: 1, windowMs: 60_000 });
    deepEqual(await buckets.take("creation", "10.0.0.1", T0), { ok: true });
    deepEqual(await buckets.take("creation", "10.0.0.1", T0), { ok: true });
    deepEqual(await buckets.take("creation", "10.0.0.1", T0), { ok: false, retryAfterSecs: 30 });
    deepEqual(await buckets.take("join", "10.0.0.1", T0), { ok: true }, "kinds are separate");
    deepEqual(await buckets.take("creation", "10.0.0.2", T0), { ok: true }, "keys are separate");
    deepEqual(await buckets.take("join", "10.0.0.1", T0 + 1), { ok: false, retryAfterSecs: 60 });
    deepEqual(await buckets.take("creation", "10.0.0.1", T0 + 30_000), { ok: true }, "refilled");
  });

  Deno.test(`Router (${impl.name}): carries each crossing to the named node only, in order`, async () => {
    const router = impl.router();
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
    deepEqual(calls.filter((call) => !call.endsWith("flush")), [
      "b bind c1 JoinRoom",
      "b receive c1 Ping",
      "b receive c1 binary",
      "b closed c1 closed",
      "a deliver frame-1 c1,gone",
      "a direct close c1",
    ]);
    ok(calls.includes("a flush"), "flush reaches the edge that got frames");
  });

  Deno.test(`Router (${impl.name}): a detached node is unreachable`, async () => {
    const router = impl.router();
    const ping = { type: "Ping" } as ClientMessage;
    deepEqual(await router.bind("nowhere", "c1", ping, T0), { status: "miss" });
    deepEqual(
      await router.command("nowhere", {
        kind: "inspect",
        gameName: "orbit",
        roomCode: "AAAAAA",
      }, T0),
      { ok: false, reason: "unreachable" },
    );
    const failed = router.deliver("nowhere", "frame", ["c1"]);
    if (failed !== undefined) deepEqual(failed, [{ id: "c1", failure: { reason: "gone" } }]);
    router.forward("nowhere", "c1", ping, "{}", T0); // dropped, never thrown
  });
}
