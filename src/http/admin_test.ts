/**
 * The operator API's listings over a directory with more rooms than one listing holds
 * (docs/spec/EXTENSIONS.md E12): filters look at every room, not at the oldest ones, and the
 * per-game counts cover every room. No sockets: the routes over an in-memory directory.
 */
import { deepEqual, equal } from "node:assert/strict";
import { MemoryRoomDirectory } from "../coordination/memory.ts";
import type { DirectoryRecord } from "../coordination/directory.ts";
import { OperatorFeed } from "../metrics/operator_feed.ts";
import type { GameTotals } from "../coordination/game_counts.ts";
import { adminRoutes } from "./admin.ts";

const TOKEN = "operator-token-for-tests-0123456789abcdef";

function entry(gameName: string, index: number, players: number): DirectoryRecord {
  const roomCode = `${gameName.slice(0, 1).toUpperCase()}${String(index).padStart(5, "0")}`;
  return {
    roomId: `id-${gameName}-${index}`,
    gameName,
    roomCode,
    createdAt: 1_000 + index,
    home: "local",
    summary: {
      room_code: roomCode,
      game_name: gameName,
      players,
      max_players: 4,
      spectators: 1,
      lobby_state: "waiting",
      supports_authority: true,
      relay_type: "matchbox",
      authority_handover: false,
    },
  };
}

/** 600 rooms of "orbit" (oldest), then 100 of "late"; the routes over them. */
function routes(games?: () => Promise<GameTotals>) {
  const directory = new MemoryRoomDirectory();
  for (let i = 0; i < 600; i++) directory.refresh(entry("orbit", i, 2));
  for (let i = 600; i < 700; i++) directory.refresh(entry("late", i, i % 2));
  const feed = new OperatorFeed({
    connections: () => 0,
    stats: () => ({ rooms: 700, players: 0, spectators: 0, heldSeats: 0 }),
    maintenance: () => false,
  });
  return adminRoutes({
    token: TOKEN,
    directory,
    command: (command) => {
      const record = directory.lookup(command.gameName, command.roomCode);
      return record ? { ok: true, summary: record.summary } : { ok: false, reason: "not_found" };
    },
    setMaintenance: () => {},
    maintenance: () => false,
    feed,
    status: () => ({}),
    roomCodeLength: 6,
    maxGameNameLength: 64,
    ...(games ? { games } : {}),
  });
}

async function get(path: string, games?: () => Promise<GameTotals>) {
  const response = await routes(games).handle(
    new Request(`http://127.0.0.1${path}`, { headers: { authorization: `Bearer ${TOKEN}` } }),
    path.split("?")[0]!,
    "127.0.0.1",
  )!;
  equal(response.status, 200, path);
  // deno-lint-ignore no-explicit-any
  return await response.json() as any;
}

Deno.test("Operator API: a game filter finds the game's rooms past the oldest 500 of all games", async () => {
  const late = await get("/admin/api/rooms?game_name=late");
  equal(late.rooms.length, 100);
  equal(late.truncated, false);
  equal(late.rooms[0].room_code, "L00600", "oldest first");
  const some = await get("/admin/api/rooms?game_name=late&limit=30");
  equal(some.rooms.length, 30);
  equal(some.truncated, true, "more of the game's rooms than listed");
  const all = await get("/admin/api/rooms");
  equal(all.rooms.length, 500);
  equal(all.truncated, true);
  const query = await get("/admin/api/rooms?q=l0069");
  deepEqual(query.rooms.map((room: { room_code: string }) => room.room_code), [
    "L00690",
    "L00691",
    "L00692",
    "L00693",
    "L00694",
    "L00695",
    "L00696",
    "L00697",
    "L00698",
    "L00699",
  ]);
});

Deno.test("Operator API: the per-game counts cover every room, not the listing's first 500", async () => {
  const { games } = await get("/admin/api/games");
  deepEqual(games, [
    { game_name: "late", rooms: 100, players: 50, spectators: 100 },
    { game_name: "orbit", rooms: 600, players: 1200, spectators: 600 },
  ]);
});

Deno.test("Operator API: given counts per game (a cluster's instance-games keys), /games and the overview answer them, with the games left out as other", async () => {
  let asked = 0;
  const totals: GameTotals = {
    games: [{ game_name: "orbit", rooms: 5, players: 9, spectators: 1, partial: true }],
    other: { games: 120, rooms: 300, players: 400, spectators: 2 },
  };
  const games = () => {
    asked++;
    return Promise.resolve(totals);
  };
  deepEqual(await get("/admin/api/games", games), totals, "not the directory's 700 rooms");
  const overview = await get("/admin/api/overview", games);
  deepEqual([overview.games, overview.other_games], [totals.games, totals.other]);
  equal(asked, 2);
  const failing = () => Promise.reject(new Error("Redis down"));
  const response = await routes(failing).handle(
    new Request("http://127.0.0.1/admin/api/games", {
      headers: { authorization: `Bearer ${TOKEN}` },
    }),
    "/admin/api/games",
    "127.0.0.1",
  )!;
  equal(response.status, 503);
  await response.body?.cancel();
});
