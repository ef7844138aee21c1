/**
 * The operator API (docs/spec/EXTENSIONS.md E12) end to end: 404 everywhere without a token, bearer auth
 * with its per-IP bucket of failed attempts, the listings, each action's effect on real
 * WebSocket clients, bad input, the live event stream and its bounds, and the action log.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { type Config, crossFieldIssues } from "../src/config/schema.ts";
import { NoAnswer } from "../src/coordination/no_answer.ts";
import { MemoryRoomDirectory } from "../src/coordination/memory.ts";
import { adminRoutes } from "../src/http/admin.ts";
import { OperatorFeed } from "../src/metrics/operator_feed.ts";
import type { SignalFishServer } from "../src/server.ts";
import { connect, joinAsSpectator, joinRoom, type Received, serve, testConfig } from "./helpers.ts";
import { MAIN_RUN_ARGS, runMain } from "./process.ts";
import { notInCluster, TEST_CLUSTER } from "./cluster_serve.ts";

/** A parsed JSON body or event (shapes are asserted field by field). */
// deno-lint-ignore no-explicit-any
type Json = any;

const TOKEN = "operator-token-for-tests-0123456789abcdef";
const AUTH = { authorization: `Bearer ${TOKEN}` };

function withAdmin(
  extra: (config: Parameters<Parameters<typeof serve>[0] & object>[0]) => void = () => {},
) {
  return serve((config) => {
    config.security.admin_token = TOKEN;
    config.server.max_spectators_per_room = 4;
    extra(config);
  });
}

/** A request to the server; the body is read so no resource is left open. */
async function call(
  server: SignalFishServer,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; headers: Headers; text: string; json: () => Json }> {
  const response = await fetch(`${server.url}${path}`, init);
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: () => JSON.parse(text) };
}

/** alice creates a room, bob joins, carol watches; returns them and the room code. */
async function room(server: SignalFishServer) {
  const alice = await connect(server);
  const bob = await connect(server);
  const carol = await connect(server);
  alice.send(joinRoom(null, "alice", { max_players: 4 }));
  const joined = await alice.next("RoomJoined");
  const code: string = joined.data.room_code;
  bob.send(joinRoom(code, "bob"));
  const bobJoined = await bob.next("RoomJoined");
  await alice.next("PlayerJoined");
  carol.send(joinAsSpectator(code, "carol"));
  await carol.next("SpectatorJoined");
  await alice.next("NewSpectatorJoined");
  await bob.next("NewSpectatorJoined");
  return { alice, bob, carol, code, joined: joined.data, bobJoined: bobJoined.data };
}

Deno.test("Without security.admin_token every /admin path answers exactly like an unknown path", async () => {
  await using server = await serve();
  const unknown = await call(server, "/no-such-path");
  equal(unknown.status, 404);
  for (
    const path of [
      "/admin",
      "/admin/",
      "/admin/admin.js",
      "/admin/uplot.js",
      "/admin/api/overview",
      "/admin/api/nope",
    ]
  ) {
    for (const init of [{}, { headers: AUTH }, { method: "DELETE", headers: AUTH }]) {
      const answer = await call(server, path, init);
      deepEqual(
        [answer.status, answer.text, [...answer.headers].filter(([name]) => name !== "date")],
        [unknown.status, unknown.text, [...unknown.headers].filter(([name]) => name !== "date")],
        path,
      );
    }
  }
});

Deno.test("security.admin_token shorter than 32 characters is a configuration error", () => {
  const short = testConfig((config) => config.security.admin_token = "x".repeat(31));
  ok(crossFieldIssues(short).some((issue) => issue.path.join(".") === "security.admin_token"));
  const long = testConfig((config) => config.security.admin_token = "x".repeat(32));
  equal(
    crossFieldIssues(long).filter((i) => i.path.join(".") === "security.admin_token").length,
    0,
  );
});

Deno.test("The console is served without the token, same-origin only, with uPlot embedded", async () => {
  await using server = await withAdmin();
  for (const path of ["/admin", "/admin/"]) {
    const page = await call(server, path, { headers: { origin: "https://evil.example" } });
    equal(page.status, 200);
    match(page.headers.get("content-type")!, /^text\/html/);
    match(page.headers.get("content-security-policy")!, /frame-ancestors 'none'/);
    equal(page.headers.get("access-control-allow-origin"), null);
    ok(page.text.includes("/admin/admin.js"));
    ok(!page.text.includes(TOKEN));
  }
  const uplot = await call(server, "/admin/uplot.js");
  equal(uplot.status, 200);
  ok(uplot.text.includes("uPlot"));
  equal((await call(server, "/admin/uplot.css")).status, 200);
  equal((await call(server, "/admin/no-such-asset.js")).status, 404);
  // The rest of the server keeps its CORS headers.
  const health = await call(server, "/v2/health", { headers: { origin: "https://game.example" } });
  equal(health.headers.get("access-control-allow-origin"), "*");
});

Deno.test("Operator API: 401 with WWW-Authenticate without a valid token, 429 after 10 wrong tokens", async () => {
  await using server = await withAdmin();
  // Every request without the right token is a 401; only the wrong Bearer tokens are charged.
  const attempts: [string, RequestInit][] = [
    ["/admin/api/overview", {}],
    ["/admin/api/overview", { headers: { authorization: "Bearer wrong" } }],
    ["/admin/api/overview", { headers: { authorization: TOKEN } }], // no "Bearer " prefix
    ["/admin/api/no-such-route", { headers: { authorization: "Bearer wrong" } }], // needs it too
    ["/admin/api/rooms", { headers: { authorization: `Basic ${btoa(`x:${TOKEN}`)}` } }],
  ];
  let charged = 0;
  for (let i = 0; charged < 10; i++) {
    const [path, init] = attempts[i % attempts.length]!;
    const answer = await call(server, path, init);
    equal(answer.status, 401, `${path} attempt ${i + 1}`);
    match(answer.headers.get("www-authenticate")!, /^Bearer/);
    equal(answer.json().error_code, "UNAUTHORIZED");
    equal(answer.headers.get("access-control-allow-origin"), null);
    const authorization = new Headers(init.headers).get("authorization") ?? "";
    if (authorization.startsWith("Bearer ")) charged++;
  }
  const limited = await call(server, "/admin/api/overview");
  equal(limited.status, 429);
  equal(limited.json().error_code, "RATE_LIMIT_EXCEEDED");
  ok(Number(limited.headers.get("retry-after")) >= 1);
  // Once the address's bucket is empty even the right token waits: guessing cannot go faster.
  equal((await call(server, "/admin/api/overview", { headers: AUTH })).status, 429);
  // The console page itself is not behind the bucket.
  equal((await call(server, "/admin")).status, 200);
});

Deno.test("Operator API: requests without a Bearer token and CORS preflights cannot lock the operator out", async () => {
  // What any page the operator's browser visits can send to the console's origin: preflights
  // (a cross-origin fetch with an Authorization header) and credential-less GETs and POSTs
  // (<img>, <form>, no-cors fetch). Before, each took a token from the failed-login bucket, and
  // 6 preflights + 4 GETs locked the right token out with 429 for a minute.
  await using server = await withAdmin();
  const cross = { origin: "https://evil.example" };
  for (let i = 0; i < 30; i++) {
    for (const path of ["/admin/api/maintenance", "/admin/api/overview", "/admin", "/admin/x"]) {
      const preflight = await call(server, path, {
        method: "OPTIONS",
        headers: {
          ...cross,
          "access-control-request-method": "PUT",
          "access-control-request-headers": "authorization",
        },
      });
      equal(preflight.status, 403, `preflight of ${path}`);
      equal(preflight.json().error_code, "UNAUTHORIZED");
      for (const [name] of preflight.headers) ok(!name.startsWith("access-control-"), name);
    }
    const plain = await call(server, "/admin/api/overview", { headers: cross });
    equal(plain.status, 401);
    equal(plain.headers.get("access-control-allow-origin"), null);
    const form = await call(server, "/admin/api/maintenance", {
      method: "POST",
      headers: { ...cross, "content-type": "text/plain" },
      body: '{"enabled":true}',
    });
    equal(form.status, 401);
  }
  const overview = await call(server, "/admin/api/overview", { headers: AUTH });
  equal(overview.status, 200, overview.text);
  // Wrong Bearer tokens are still charged: the bucket stops guessing.
  for (let i = 0; i < 10; i++) {
    const wrong = { authorization: `Bearer guess-${i}` };
    equal((await call(server, "/admin/api/overview", { headers: wrong })).status, 401);
  }
  equal((await call(server, "/admin/api/overview", { headers: AUTH })).status, 429);
});

/**
 * `/admin/api/games` once it answers `expected`: at once in one process (the engine's live
 * counts); behind the cluster proxy each instance's counts are as its last refresh (`T/3`) wrote
 * them, read for the instances the answering one saw at its own last refresh (docs/spec/SERVER.md
 * §8.3 `instance-games:`), so it is read again until it does or 15 s passed (the answer then).
 */
async function gamesOnceSettled(server: SignalFishServer, expected: unknown): Promise<Json> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const games = (await call(server, "/admin/api/games", { headers: AUTH })).json();
    if (TEST_CLUSTER === 0 || Date.now() > deadline) return games;
    if (JSON.stringify(games) === JSON.stringify(expected)) return games;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** `T/3` = 2 s behind the cluster proxy, so that every instance's counts are read soon. */
const SHORT_TTL = (config: Config) => {
  config.cluster.directory_ttl_secs = 6;
};

Deno.test("Operator API lists games and rooms with members, spectators, authority and rates", async () => {
  await using server = await withAdmin(SHORT_TTL);
  const { alice, bob, carol, code, joined } = await room(server);
  try {
    alice.send({ type: "GameData", data: { data: { hello: 1 } } });
    await bob.next("GameData");
    await carol.next("GameData");
    const rooms = (await call(server, "/admin/api/rooms", { headers: AUTH })).json();
    equal(rooms.rooms.length, 1);
    const listed = rooms.rooms[0];
    deepEqual(
      [listed.game_name, listed.room_code, listed.players, listed.spectators, listed.lobby_state],
      ["orbit", code, 2, 1, "waiting"],
    );
    equal(listed.authority, joined.player_id);
    deepEqual(listed.members.map((m: { name: string }) => m.name), ["alice", "bob"]);
    deepEqual(listed.spectator_list.map((s: { name: string }) => s.name), ["carol"]);
    equal(listed.messages_total, 1);
    ok(listed.age_secs >= 0);
    // The room's home: "local" in one process, the home instance's id behind the cluster proxy.
    ok(TEST_CLUSTER > 0 ? /^\S+$/.test(listed.home) : listed.home === "local", listed.home);

    const detail =
      (await call(server, `/admin/api/rooms/orbit/${code.toLowerCase()}`, { headers: AUTH }))
        .json();
    equal(detail.room_id, joined.room_id);
    deepEqual(detail.members, listed.members);
    equal(detail.home, listed.home, "the detail names the room's home as the listing does");

    const games = await gamesOnceSettled(server, {
      games: [{ game_name: "orbit", rooms: 1, players: 2, spectators: 1 }],
    });
    deepEqual(games.games, [{ game_name: "orbit", rooms: 1, players: 2, spectators: 1 }]);
    const overview = (await call(server, "/admin/api/overview", { headers: AUTH })).json();
    deepEqual(overview.games, games.games, "the games of every instance");
    equal(overview.maintenance, false);
    if (TEST_CLUSTER === 0) {
      // The counts of the answering instance (docs/spec/EXTENSIONS.md E12 note): all of them here.
      deepEqual([overview.rooms, overview.players, overview.connections], [1, 2, 3]);
      equal(overview.sample.rooms, 1);
      equal(overview.cluster_totals, undefined);
    } else {
      // The cluster's sums, each instance's from its last refresh (the twins test the sums).
      const totals = overview.cluster_totals;
      ok(totals.instances >= 1 && totals.instances <= TEST_CLUSTER, JSON.stringify(totals));
      for (const field of ["connections", "rooms", "players", "spectators"]) {
        ok(Number.isInteger(totals[field]) && totals[field] >= 0, JSON.stringify(totals));
      }
    }
    const filtered = async (query: string) =>
      (await call(server, `/admin/api/rooms?${query}`, { headers: AUTH })).json().rooms.length;
    equal(await filtered("game_name=other"), 0);
    equal(await filtered(`q=${code.slice(0, 3).toLowerCase()}`), 1);
    equal(await filtered("q=zzzzzzz"), 0);
    const history = (await call(server, "/admin/api/history", { headers: AUTH })).json();
    equal(history.interval_ms, 5000);
    ok(Array.isArray(history.samples));
  } finally {
    await Promise.all([alice.close(), bob.close(), carol.close()]);
  }
});

Deno.test("Operator API: /games counts every room of every game, its players and spectators, as the listing has them", async () => {
  await using server = await withAdmin(SHORT_TTL);
  const clients: Awaited<ReturnType<typeof connect>>[] = [];
  try {
    // Rooms of three games, through the proxy: consecutive connections land on different
    // instances, so the rooms have different homes behind it.
    const plan = [
      { game: "orbit", players: 3, spectators: 1 },
      { game: "orbit", players: 1, spectators: 0 },
      { game: "chess", players: 2, spectators: 2 },
      { game: "kart", players: 1, spectators: 0 },
      { game: "orbit", players: 2, spectators: 0 },
    ];
    for (const [i, room] of plan.entries()) {
      const host = await connect(server);
      clients.push(host);
      host.send(joinRoom(null, `host${i}`, { game_name: room.game, max_players: 4 }));
      const code: string = (await host.next("RoomJoined")).data.room_code;
      for (let p = 1; p < room.players; p++) {
        const guest = await connect(server);
        clients.push(guest);
        guest.send(joinRoom(code, `guest${i}-${p}`, { game_name: room.game }));
        await guest.next("RoomJoined");
      }
      for (let w = 0; w < room.spectators; w++) {
        const watcher = await connect(server);
        clients.push(watcher);
        watcher.send({
          type: "JoinAsSpectator",
          data: { game_name: room.game, room_code: code, spectator_name: `watcher${i}-${w}` },
        });
        await watcher.next("SpectatorJoined");
      }
    }
    const expected = {
      games: [
        { game_name: "chess", rooms: 1, players: 2, spectators: 2 },
        { game_name: "kart", rooms: 1, players: 1, spectators: 0 },
        { game_name: "orbit", rooms: 3, players: 6, spectators: 1 },
      ],
    };
    deepEqual(await gamesOnceSettled(server, expected), expected);
    // The same counts as the listing's rooms.
    const listed = (await call(server, "/admin/api/rooms", { headers: AUTH })).json().rooms;
    for (const game of expected.games) {
      const rooms = listed.filter((room: Json) => room.game_name === game.game_name);
      deepEqual({
        game_name: game.game_name,
        rooms: rooms.length,
        players: rooms.reduce((sum: number, room: Json) => sum + room.players, 0),
        spectators: rooms.reduce((sum: number, room: Json) => sum + room.spectators, 0),
      }, game);
    }
    const overview = (await call(server, "/admin/api/overview", { headers: AUTH })).json();
    deepEqual(overview.games, expected.games);
    equal(overview.other_games, undefined, "no game left out");
    // A player leaves: one process counts it at once.
    clients[0]!.send({ type: "LeaveRoom" });
    await clients[0]!.waitFor("RoomLeft");
    expected.games[2]!.players = 5;
    deepEqual(await gamesOnceSettled(server, expected), expected);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
});

Deno.test("Operator API pages through rooms with offset, filtered by lobby state before the page", async () => {
  await using server = await withAdmin();
  const clients: Awaited<ReturnType<typeof connect>>[] = [];
  try {
    const codes: string[] = [];
    for (let i = 0; i < 5; i++) {
      const host = await connect(server);
      clients.push(host);
      host.send(joinRoom(null, `host${i}`, { max_players: 2 }));
      codes.push((await host.next("RoomJoined")).data.room_code);
    }
    // The third room fills up: its lobby state becomes "lobby".
    const guest = await connect(server);
    clients.push(guest);
    guest.send(joinRoom(codes[2]!, "guest"));
    await guest.next("RoomJoined");
    await clients[2]!.next("PlayerJoined");
    const full3 = codes[2]!;
    const list = async (query: string) => {
      const answer = await call(server, `/admin/api/rooms?${query}`, { headers: AUTH });
      equal(answer.status, 200, answer.text);
      const body = answer.json();
      return {
        codes: body.rooms.map((room: { room_code: string }) => room.room_code),
        offset: body.offset,
        truncated: body.truncated,
      };
    };
    // Oldest first; rooms made in the same millisecond come in code order, so the expected
    // order is the creation times' (the list in full), not the order the test made them in.
    const full = (await call(server, "/admin/api/rooms", { headers: AUTH })).json().rooms as {
      room_code: string;
      created_at: number;
    }[];
    const times = full.map((room) => room.created_at);
    deepEqual(times, [...times].sort((x, y) => x - y), "oldest first");
    deepEqual(full.map((room) => room.room_code).sort(), [...codes].sort());
    codes.splice(0, codes.length, ...full.map((room) => room.room_code));
    // Pages of two: together every room once.
    deepEqual(await list("limit=2"), { codes: codes.slice(0, 2), offset: 0, truncated: true });
    deepEqual(await list("limit=2&offset=2"), {
      codes: codes.slice(2, 4),
      offset: 2,
      truncated: true,
    });
    deepEqual(await list("limit=2&offset=4"), {
      codes: codes.slice(4),
      offset: 4,
      truncated: false,
    });
    deepEqual(await list("offset=9"), { codes: [], offset: 9, truncated: false });
    // The lobby-state filter applies to every room before the page is cut.
    deepEqual((await list("lobby_state=lobby")).codes, [full3]);
    const waiting = codes.filter((code) => code !== full3);
    deepEqual(await list("lobby_state=waiting&limit=2&offset=2"), {
      codes: waiting.slice(2),
      offset: 2,
      truncated: false,
    });
    deepEqual((await list("lobby_state=finalized")).codes, []);
    for (const bad of ["offset=-1", "offset=1.5", "offset=x", "lobby_state=open"]) {
      const answer = await call(server, `/admin/api/rooms?${bad}`, { headers: AUTH });
      equal(answer.status, 400, bad);
      equal(answer.json().error_code, "INVALID_INPUT", bad);
    }
  } finally {
    for (const client of clients) await client.close();
  }
});

/** A room made over real WebSockets: its code, its clients and its players' ids. */
interface SeatedRoom {
  game: string;
  code: string;
  clients: Awaited<ReturnType<typeof connect>>[];
  playerIds: string[];
}

/**
 * `players[0]` creates a room of `game` for `maxPlayers`, the other players join it, then the
 * spectators; with `ready`, every player says so (a full room then becomes `finalized`).
 */
async function seatRoom(
  server: SignalFishServer,
  game: string,
  players: string[],
  maxPlayers: number,
  spectators: string[] = [],
  ready = false,
): Promise<SeatedRoom> {
  const clients: Awaited<ReturnType<typeof connect>>[] = [];
  const playerIds: string[] = [];
  let code: string | null = null;
  for (const name of players) {
    const client = await connect(server);
    clients.push(client);
    client.send({
      type: "JoinRoom",
      data: { game_name: game, room_code: code, player_name: name, max_players: maxPlayers },
    });
    const joined = await client.waitFor("RoomJoined");
    code = joined.data.room_code;
    playerIds.push(joined.data.player_id);
  }
  for (const name of spectators) {
    const client = await connect(server);
    clients.push(client);
    client.send({
      type: "JoinAsSpectator",
      data: { game_name: game, room_code: code, spectator_name: name },
    });
    await client.waitFor("SpectatorJoined");
  }
  if (ready) {
    for (const client of clients.slice(0, players.length)) client.send({ type: "PlayerReady" });
  }
  return { game, code: code!, clients, playerIds };
}

Deno.test("Operator API sorts rooms by every key both ways, ties by game and code, in pages that neither repeat nor skip", async () => {
  await using server = await withAdmin();
  const rooms: SeatedRoom[] = [];
  try {
    // game, players, spectators, lobby state: every key orders them differently.
    rooms.push(await seatRoom(server, "orbit", ["ann"], 4, ["s1", "s2"]));
    rooms.push(await seatRoom(server, "orbit", ["bea", "cid", "dov"], 3));
    rooms.push(await seatRoom(server, "comet", ["eli", "fay"], 2, ["s3"], true));
    rooms.push(await seatRoom(server, "orbit", ["gus"], 4));
    const facts = new Map([
      [rooms[0]!, { players: 1, spectators: 2, lobby: 0 }],
      [rooms[1]!, { players: 3, spectators: 0, lobby: 1 }],
      [rooms[2]!, { players: 2, spectators: 1, lobby: 2 }],
      [rooms[3]!, { players: 1, spectators: 0, lobby: 0 }],
    ]);
    const name = (room: { game_name?: string; game?: string; room_code?: string; code?: string }) =>
      `${room.game_name ?? room.game}/${room.room_code ?? room.code}`;
    const list = async (query: string) => {
      const answer = await call(server, `/admin/api/rooms?${query}`, { headers: AUTH });
      equal(answer.status, 200, answer.text);
      return answer.json();
    };
    // The directory has each room's last summary (in a cluster a moment after the change).
    await untilAsync(
      async () =>
        (await list("sort=-lobby_state")).rooms.map(name).join() ===
          [rooms[2]!, rooms[1]!].map(name).join() + "," +
            [rooms[0]!, rooms[3]!].sort((a, b) => a.code < b.code ? 1 : -1).map(name).join(),
      "the lobby states reach the directory",
    );
    const created = new Map<string, number>(
      (await list("limit=10")).rooms.map((room: Json) => [name(room), room.created_at]),
    );
    // The documented order, written here from the rooms' known figures: the key, then game and
    // code (for `code`: code, then game).
    const text = (a: string, b: string) => a < b ? -1 : a > b ? 1 : 0;
    const value: Record<string, (room: SeatedRoom) => number> = {
      created: (room) => created.get(name(room))!,
      players: (room) => facts.get(room)!.players,
      spectators: (room) => facts.get(room)!.spectators,
      lobby_state: (room) => facts.get(room)!.lobby,
      game: () => 0,
    };
    const expected = (key: string, descending: boolean) => {
      const ascending = [...rooms].sort((a, b) =>
        key === "code"
          ? text(a.code, b.code) || text(a.game, b.game)
          : value[key]!(a) - value[key]!(b) || text(a.game, b.game) || text(a.code, b.code)
      );
      return (descending ? ascending.reverse() : ascending).map(name);
    };
    deepEqual(expected("players", true).slice(0, 2), [name(rooms[1]!), name(rooms[2]!)]);
    deepEqual(expected("game", false)[0], name(rooms[2]!), "comet first");
    for (const key of ["created", "code", "game", "players", "spectators", "lobby_state"]) {
      for (const descending of [false, true]) {
        const sort = `${descending ? "-" : ""}${key}`;
        const whole = await list(`sort=${sort}`);
        deepEqual(whole.rooms.map(name), expected(key, descending), sort);
        deepEqual([whole.sort, whole.truncated, whole.complete], [sort, false, true], sort);
        // Pages of one: every room once, in order.
        const paged: string[] = [];
        for (let offset = 0; offset < 4; offset++) {
          const page = await list(`sort=${sort}&limit=1&offset=${offset}`);
          equal(page.truncated, offset < 3, `${sort} at ${offset}`);
          paged.push(...page.rooms.map(name));
        }
        deepEqual(paged, expected(key, descending), `${sort} in pages`);
      }
    }
    // Without sort: oldest first, and the answer says so.
    const plain = await list("");
    deepEqual([plain.rooms.map(name), plain.sort], [expected("created", false), "created"]);
    // Filters keep the order.
    deepEqual(
      (await list("game_name=orbit&sort=-players")).rooms.map(name),
      expected("players", true).filter((room) => room.startsWith("orbit/")),
    );
    deepEqual(
      (await list("lobby_state=waiting&sort=spectators&limit=1&offset=1")).rooms.map(name),
      [name(rooms[0]!)],
    );
    // A sort the API does not know is refused, saying which it knows.
    for (const bad of ["size", "+players", "players,created", "", "-", "PLAYERS", "--code"]) {
      const answer = await call(server, `/admin/api/rooms?sort=${encodeURIComponent(bad)}`, {
        headers: AUTH,
      });
      equal(answer.status, 400, bad);
      equal(answer.json().error_code, "INVALID_INPUT", bad);
      match(answer.json().message, /created, code, game, players, spectators, lobby_state/);
    }
  } finally {
    for (const room of rooms) for (const client of room.clients) await client.close();
  }
});

Deno.test("Operator API search finds a room by a player's name (any part, any case) or the start of a player's id", async () => {
  await using server = await withAdmin();
  const rooms: SeatedRoom[] = [];
  try {
    rooms.push(await seatRoom(server, "orbit", ["Zelda_Quinn", "otto"], 4, ["watcher"]));
    rooms.push(await seatRoom(server, "orbit", ["mara"], 4));
    rooms.push(await seatRoom(server, "comet", ["quinn"], 4));
    const [zelda, mara, quinn] = rooms as [SeatedRoom, SeatedRoom, SeatedRoom];
    const found = async (query: string, extra = "") => {
      const answer = await call(server, `/admin/api/rooms?q=${encodeURIComponent(query)}${extra}`, {
        headers: AUTH,
      });
      equal(answer.status, 200, answer.text);
      return answer.json().rooms.map((room: Json) => room.room_code).sort();
    };
    // Each room's players reach the directory (in a cluster a moment after they join).
    await untilAsync(async () => (await found("otto")).length === 1, "otto is searchable");
    deepEqual(await found("zelda"), [zelda.code]);
    deepEqual(await found("ZELDA_q"), [zelda.code], "any case");
    deepEqual(await found("quinn"), [zelda.code, quinn.code].sort(), "any part of a name");
    deepEqual(await found("quinn", "&game_name=comet"), [quinn.code], "with the game filter");
    deepEqual(await found("quinn", "&sort=-players"), [zelda.code, quinn.code].sort());
    const id = mara.playerIds[0]!;
    deepEqual(await found(id), [mara.code], "a whole player id");
    deepEqual(await found(id.slice(0, 8).toUpperCase()), [mara.code], "the start of an id");
    deepEqual(await found(id.slice(-12)), [], "not the end of an id");
    deepEqual(await found("watcher"), [], "spectators are not players");
    deepEqual(await found(zelda.code.toLowerCase()), [zelda.code], "codes still match");
    // A player who leaves is no longer found in that room.
    zelda.clients[1]!.send({ type: "LeaveRoom" });
    await zelda.clients[1]!.waitFor("RoomLeft");
    await untilAsync(async () => (await found("otto")).length === 0, "otto left");
    deepEqual(await found("zelda"), [zelda.code]);
  } finally {
    for (const room of rooms) for (const client of room.clients) await client.close();
  }
});

Deno.test("Operator API: bad input gets clear JSON errors with error codes", async () => {
  await using server = await withAdmin();
  const { alice, bob, carol, code } = await room(server);
  try {
    const cases: [string, RequestInit, number, string][] = [
      ["/admin/api/rooms/orbit/ZZZZZZ", {}, 404, "ROOM_NOT_FOUND"],
      ["/admin/api/rooms/orbit/ZZZZZZ", { method: "DELETE" }, 404, "ROOM_NOT_FOUND"],
      ["/admin/api/rooms/orbit/AB!", {}, 400, "INVALID_ROOM_CODE"],
      ["/admin/api/rooms/%E0%A4%A/ABCDEF", {}, 400, "INVALID_INPUT"],
      ["/admin/api/rooms/bad%20game%3F/ABCDEF", {}, 400, "INVALID_GAME_NAME"],
      [
        `/admin/api/rooms/orbit/${code}/players/not-a-uuid`,
        { method: "DELETE" },
        400,
        "INVALID_INPUT",
      ],
      [
        `/admin/api/rooms/orbit/${code}/players/00000000-0000-4000-8000-000000000000`,
        { method: "DELETE" },
        404,
        "PLAYER_NOT_FOUND",
      ],
      [
        `/admin/api/rooms/orbit/${code}/players/00000000-0000-4000-8000-000000000000`,
        {},
        405,
        "METHOD_NOT_ALLOWED",
      ],
      [`/admin/api/rooms/orbit/${code}`, { method: "POST" }, 405, "METHOD_NOT_ALLOWED"],
      ["/admin/api/maintenance", { method: "PUT", body: "{not json" }, 400, "INVALID_INPUT"],
      [
        "/admin/api/maintenance",
        { method: "PUT", body: '{"enabled":"yes"}' },
        400,
        "INVALID_INPUT",
      ],
      ["/admin/api/maintenance", { method: "PUT", body: "" }, 400, "INVALID_INPUT"],
      [
        "/admin/api/maintenance",
        { method: "PUT", body: `{"enabled":true,"pad":"${"x".repeat(2000)}"}` },
        413,
        "PAYLOAD_TOO_LARGE",
      ],
      ["/admin/api/rooms?limit=0", {}, 400, "INVALID_INPUT"],
      ["/admin/api/rooms?limit=abc", {}, 400, "INVALID_INPUT"],
      ["/admin/api/nope", {}, 404, "NOT_FOUND"],
      ["/admin/api/rooms/orbit", {}, 404, "NOT_FOUND"],
    ];
    for (const [path, init, status, errorCode] of cases) {
      const answer = await call(server, path, { ...init, headers: AUTH });
      equal(answer.status, status, `${init.method ?? "GET"} ${path}: ${answer.text}`);
      const body = answer.json();
      equal(body.error_code, errorCode, path);
      ok(typeof body.message === "string" && body.message.length > 0, path);
    }
    // Nothing above changed the room or its players.
    await alice.expectNothingElse();
    await bob.expectNothingElse();
    await carol.expectNothingElse();
    deepEqual((await call(server, "/admin/api/maintenance", { headers: AUTH })).json(), {
      enabled: false,
    });
  } finally {
    await Promise.all([alice.close(), bob.close(), carol.close()]);
  }
});

Deno.test("Operator API: removing a player sends RoomLeft, PlayerLeft to the others, kills the token", async () => {
  await using server = await withAdmin();
  const { alice, bob, carol, code, bobJoined } = await room(server);
  try {
    const bobId = bobJoined.player_id;
    const answer = await call(server, `/admin/api/rooms/orbit/${code}/players/${bobId}`, {
      method: "DELETE",
      headers: AUTH,
    });
    equal(answer.status, 200, answer.text);
    equal(answer.json().removed, bobId);
    await bob.next("RoomLeft");
    equal((await alice.next("PlayerLeft")).data.player_id, bobId);
    equal((await carol.next("PlayerLeft")).data.player_id, bobId);
    // bob's connection stays open but his token no longer restores the seat.
    bob.send({
      type: "Reconnect",
      data: {
        player_id: bobId,
        room_id: bobJoined.room_id,
        auth_token: bobJoined.reconnection_token,
      },
    });
    equal((await bob.next("ReconnectionFailed")).data.error_code, "RECONNECTION_TOKEN_INVALID");
    const detail = (await call(server, `/admin/api/rooms/orbit/${code}`, { headers: AUTH })).json();
    equal(detail.players, 1);
  } finally {
    await Promise.all([alice.close(), bob.close(), carol.close()]);
  }
});

Deno.test("Operator API: closing a room tells members and spectators; tokens then fail", async () => {
  await using server = await withAdmin();
  const { alice, bob, carol, code, joined } = await room(server);
  try {
    const answer = await call(server, `/admin/api/rooms/orbit/${code}`, {
      method: "DELETE",
      headers: AUTH,
    });
    equal(answer.status, 200, answer.text);
    equal(answer.json().closed, true);
    await alice.next("RoomLeft");
    await bob.next("RoomLeft");
    const left: Received = await carol.next("SpectatorLeft");
    equal(left.data.reason, "room_closed");
    alice.send({
      type: "Reconnect",
      data: {
        player_id: joined.player_id,
        room_id: joined.room_id,
        auth_token: joined.reconnection_token,
      },
    });
    equal((await alice.next("ReconnectionFailed")).data.error_code, "RECONNECTION_FAILED");
    equal((await call(server, `/admin/api/rooms/orbit/${code}`, { headers: AUTH })).status, 404);
    deepEqual((await call(server, "/admin/api/rooms", { headers: AUTH })).json().rooms, []);
  } finally {
    await Promise.all([alice.close(), bob.close(), carol.close()]);
  }
});

Deno.test("Operator API: maintenance refuses new rooms, not joins, until turned off", async () => {
  await using server = await withAdmin();
  const { alice, bob, carol, code } = await room(server);
  await using dave = await connect(server);
  try {
    const on = await call(server, "/admin/api/maintenance", {
      method: "PUT",
      headers: AUTH,
      body: JSON.stringify({ enabled: true }),
    });
    deepEqual(on.json(), { enabled: true });
    deepEqual((await call(server, "/admin/api/maintenance", { headers: AUTH })).json(), {
      enabled: true,
    });
    for (const roomCode of [null, "NEWONE"]) {
      dave.send(joinRoom(roomCode, "dave"));
      deepEqual((await dave.next("RoomJoinFailed")).data, {
        reason: "Server is in maintenance",
        error_code: "SERVICE_UNAVAILABLE",
      });
    }
    dave.send(joinRoom(code, "dave"));
    await dave.next("RoomJoined");
    dave.send({ type: "LeaveRoom" });
    await dave.next("RoomLeft");
    await call(server, "/admin/api/maintenance", {
      method: "PUT",
      headers: AUTH,
      body: JSON.stringify({ enabled: false }),
    });
    dave.send(joinRoom(null, "dave"));
    await dave.next("RoomJoined");
  } finally {
    await Promise.all([alice.close(), bob.close(), carol.close()]);
  }
});

Deno.test("Operator API: maintenance Redis does not answer in time is 504 OUTCOME_UNKNOWN, one not sent 503; every attempt goes on the event stream with its outcome", async () => {
  const feed = new OperatorFeed({
    connections: () => 0,
    stats: () => ({ rooms: 0, players: 0, spectators: 0, heldSeats: 0 }),
    maintenance: () => false,
  });
  const actions: Json[] = [];
  feed.subscribe((event) => event.event === "action" && actions.push(event.data));
  let failure: Error | undefined;
  const routes = adminRoutes({
    token: TOKEN,
    directory: new MemoryRoomDirectory(),
    command: () => ({ ok: false, reason: "not_found" }),
    setMaintenance: () => failure ? Promise.reject(failure) : Promise.resolve(),
    maintenance: () => false,
    feed,
    status: () => ({}),
    roomCodeLength: 6,
    maxGameNameLength: 64,
  });
  const put = async (enabled: boolean) => {
    const path = "/admin/api/maintenance";
    const response = await routes.handle(
      new Request(`http://127.0.0.1${path}`, {
        method: "PUT",
        headers: AUTH,
        body: JSON.stringify({ enabled }),
      }),
      path,
      "127.0.0.1",
    )!;
    return { status: response.status, body: await response.json() };
  };
  failure = new NoAnswer("Redis maintenance timed out after 500 ms");
  const unknown = await put(true);
  equal(unknown.status, 504);
  equal(unknown.body.error_code, "OUTCOME_UNKNOWN");
  equal(unknown.body.outcome, "unknown");
  match(unknown.body.message, /outcome is unknown/);
  failure = new Error("The client is closed");
  const refused = await put(true);
  equal(refused.status, 503);
  equal(refused.body.error_code, "SERVICE_UNAVAILABLE");
  failure = undefined;
  deepEqual((await put(false)).body, { enabled: false });
  deepEqual(actions.map((action) => [action.action, action.outcome]), [
    ["maintenance_on", "unknown"],
    ["maintenance_on", "refused"],
    ["maintenance_off", "ok"],
  ]);
});

/** Waits (polling every 20 ms, at most 10 s) until `done()` resolves true. */
async function untilAsync(done: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await done())) {
    ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits (polling every 10 ms, at most 5 s) until `done()` holds. */
async function until(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!done()) {
    ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Reads server-sent events from a fetch body until `until` says stop; fails after 10 s. */
async function readEvents(
  body: ReadableStream<Uint8Array>,
  until: (events: { event: string; data: Json }[]) => boolean,
): Promise<{ event: string; data: Json }[]> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const events: { event: string; data: Json }[] = [];
  let buffer = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no end of the event stream in 10 s: ${JSON.stringify(events)}`)),
      10_000,
    );
  });
  try {
    while (!until(events)) {
      const { value, done } = await Promise.race([reader.read(), timeout]);
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = block.match(/^event: (.*)$/m)?.[1];
        const data = block.match(/^data: (.*)$/m)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) });
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel();
  }
  return events;
}

Deno.test({
  name:
    "Operator event stream: a sample first, then room events and actions as they happen (behind the proxy: made through other instances)",
  fn: eventStream,
});

async function eventStream() {
  await using server = await withAdmin();
  const response = await fetch(`${server.url}/admin/api/events`, { headers: AUTH });
  equal(response.status, 200);
  match(response.headers.get("content-type")!, /^text\/event-stream/);
  const players: Awaited<ReturnType<typeof connect>>[] = [];
  const codes: string[] = [];
  const created = (events: { event: string; data: Json }[]) =>
    events.find((e) =>
      e.event === "room" && e.data.type === "room_created" && codes.includes(e.data.room_code)
    );
  let seen: { event: string; data: Json }[] = [];
  const events = await readEvents(response.body!, (events) => {
    seen = events;
    if (events.length === 1 && players.length === 0) {
      // The first sample arrived: now make something happen. Behind the cluster proxy the
      // room's home may not have heard the stream's watch notice yet (it travels through Redis
      // while this connects): another room then, until one is reported.
      (async () => {
        for (let attempt = 0; attempt < 10 && !created(seen); attempt++) {
          const alice = await connect(server);
          players.push(alice);
          alice.send(joinRoom(null, `alice${attempt}`));
          codes.push((await alice.next("RoomJoined")).data.room_code);
          for (let wait = 0; wait < 50 && !created(seen); wait++) {
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        }
        const code = created(seen)?.data.room_code ?? codes[0];
        await call(server, `/admin/api/rooms/orbit/${code}`, { method: "DELETE", headers: AUTH });
      })();
    }
    return events.some((event) => event.event === "action");
  });
  equal(events[0]!.event, "sample");
  equal(typeof events[0]!.data.connections, "number");
  ok(created(events), JSON.stringify(events));
  const action = events.find((e) => e.event === "action")!.data;
  deepEqual(action.action, "close_room");
  equal(action.target, `orbit/${created(events)!.data.room_code}`);
  if (TEST_CLUSTER > 0) {
    // Every event names the instance it happened on.
    ok(typeof created(events)!.data.instance === "string", JSON.stringify(events));
    ok(typeof action.instance === "string", JSON.stringify(action));
  } else {
    equal(created(events)!.data.instance, undefined);
  }
  for (const player of players) await player.close();
  if (TEST_CLUSTER === 0) {
    await until(() => server.admin!.streams === 0, "the stream is released when its reader goes");
  }
}

Deno.test({
  name: "Operator event stream: capped per address; a reader that stops reading is dropped",
  ignore: notInCluster(
    "stream caps and the feed are per instance (server.admin, server.operatorFeed are one process's)",
  ),
  fn: streamCaps,
});

async function streamCaps() {
  await using server = await withAdmin();
  const open: Response[] = [];
  for (let i = 0; i < 4; i++) {
    const response = await fetch(`${server.url}/admin/api/events`, { headers: AUTH });
    equal(response.status, 200);
    open.push(response);
  }
  const fifth = await call(server, "/admin/api/events", { headers: AUTH });
  equal(fifth.status, 429);
  equal(fifth.json().error_code, "TOO_MANY_STREAMS");
  for (const response of open) await response.body!.cancel();
  await until(() => server.admin!.streams === 0, "the cancelled streams are released");

  // A raw client that sends the request and never reads: the server must drop it.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    await conn.write(new TextEncoder().encode(
      `GET /admin/api/events HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${TOKEN}\r\n\r\n`,
    ));
    const feed = server.operatorFeed!;
    const big = "x".repeat(64 * 1024);
    await until(() => server.admin!.streams === 1, "the raw stream is accepted");
    let published = 0;
    // Bounded: 256 KiB may queue, the kernel buffers a few MiB; 4000 × 64 KiB is far more.
    for (; server.admin!.streams > 0 && published < 4000; published++) {
      feed.publish({ event: "action", data: { action: big, target: "t", at: 0 } });
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    equal(server.admin!.streams, 0, `still open after ${published} events of 64 KiB`);
  } finally {
    conn.close();
  }
}

Deno.test({
  name: "Operator event stream asked as an upgrade: refused with 400, its slot given back at once",
  ignore: notInCluster("stream slots are per instance (server.admin is one process's)"),
  fn: upgradeStreams,
});

/**
 * `GET /admin/api/events` with WebSocket upgrade headers reaches the listener's upgrade path.
 * Before, its raw answer awaited the whole body of the endless stream: no answer, and the slot
 * (4 per address, 32 in all) was never given back, its slow-reader cut never ran and every event
 * was kept in memory (/tmp/s26/a/sse_upgrade_leak.ts: after 4 such requests a normal stream got
 * 429 for good).
 */
async function upgradeStreams() {
  await using server = await withAdmin();
  const asUpgrade = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      await conn.write(new TextEncoder().encode(
        `GET /admin/api/events HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${TOKEN}\r\n` +
          "connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n" +
          "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      ));
      const buffer = new Uint8Array(1024);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const read = await Promise.race([
        conn.read(buffer),
        new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), 3_000)),
      ]);
      clearTimeout(timer);
      return read === "timeout" ? "no answer in 3 s" : new TextDecoder().decode(
        buffer.subarray(0, read ?? 0),
      );
    } finally {
      conn.close();
    }
  };
  for (let i = 0; i < 6; i++) {
    const answer = await asUpgrade();
    ok(answer.startsWith("HTTP/1.1 400"), `request ${i + 1}: ${answer}`);
    ok(!answer.includes("event-stream"), answer);
  }
  await until(() => server.admin!.streams === 0, "every refused stream is released");
  // The address's four slots are all free.
  const open: Response[] = [];
  for (let i = 0; i < 4; i++) {
    const response = await fetch(`${server.url}/admin/api/events`, { headers: AUTH });
    equal(response.status, 200);
    open.push(response);
  }
  for (const response of open) await response.body!.cancel();
  await until(() => server.admin!.streams === 0, "the normal streams are released");
}

Deno.test("Operator actions are logged with action, target and client IP, never the token", async () => {
  const { stdout, stderr } = await runMain({
    SIGNAL_FISH_SECURITY__ADMIN_TOKEN: TOKEN,
    SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING: "false",
  }, async (port) => {
    const base = `http://127.0.0.1:${port}`;
    await (await fetch(`${base}/admin/api/overview`, { headers: { authorization: "Bearer nope" } }))
      .text();
    await (await fetch(`${base}/admin/api/maintenance`, {
      method: "PUT",
      headers: AUTH,
      body: '{"enabled":true}',
    })).text();
    await (await fetch(`${base}/admin/api/rooms/orbit/ABCDEF`, { method: "DELETE", headers: AUTH }))
      .text();
  });
  const action = stdout.split("\n").find((line) => line.includes("maintenance_on"));
  ok(action, stdout);
  match(action, /INF|info/i);
  ok(action.includes("server") && action.includes("127.0.0.1"), action);
  ok(action.includes('"ok"') || /\bok\b/.test(action), action);
  // An attempt that was refused (no such room) is logged too, with its outcome.
  const refused = stdout.split("\n").find((line) => line.includes("close_room"));
  ok(refused, stdout);
  ok(refused.includes("orbit/ABCDEF") && refused.includes("refused"), refused);
  ok(stdout.includes("authentication failed"), stdout);
  ok(!stdout.includes(TOKEN) && !stderr.includes(TOKEN), "the token is never logged");
});

Deno.test("A short security.admin_token stops the server at startup", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [...MAIN_RUN_ARGS],
    env: { NO_COLOR: "1", SIGNAL_FISH_SECURITY__ADMIN_TOKEN: "too-short-a-secret" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  equal(output.code, 2, "configuration errors exit with 2 (docs/spec/SERVER.md §2.6)");
  const stderr = new TextDecoder().decode(output.stderr);
  match(stderr, /security\.admin_token/);
  ok(!stderr.includes("too-short-a-secret"), stderr);
});
