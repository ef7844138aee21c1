/**
 * The operator's counts per game (docs/spec/EXTENSIONS.md E12 `/admin/api/games` and the
 * overview's `games`): rooms, players and spectators of each game.
 *
 * One process answers them from its engine's counts, kept as rooms and members change (no walk
 * over the rooms). In a cluster each instance writes the counts of the rooms it homes as one
 * small value, bounded to its {@linkcode MAX_GAMES_PER_INSTANCE} games with the most rooms plus
 * the rest summed ({@linkcode InstanceGames}, the `instance-games:<node>` key of
 * docs/spec/SERVER.md §8.3), and a request sums one such value per live instance
 * ({@linkcode sumGames}).
 *
 * @module
 */
import type { GameCounts } from "../engine/effects.ts";
import { compareText } from "./directory.ts";

export type { GameCounts } from "../engine/effects.ts";

/**
 * Most games one instance writes to its `instance-games:` key: those with the most rooms homed
 * there (then players, then by name); the others are summed as one remainder. Bounds the key to
 * about 100 × (game name + 30) bytes whatever names clients choose.
 */
export const MAX_GAMES_PER_INSTANCE = 100;

/** One game's row of the answer: its directory name and counts. */
export interface GameRow extends GameCounts {
  /** The game as the directory names it (`<app_id>\u0001<game>` with app auth). */
  game_name: string;
  /**
   * Present (`true`) when an instance summed part of this game's rooms into its remainder: the
   * counts are then a lower bound, the rest is in {@linkcode GameTotals.other}.
   */
  partial?: true;
}

/** Games summed as one remainder: how many, and their rooms, players and spectators. */
export interface OtherGames extends GameCounts {
  /** Games summed on each instance, added up (a game summed on two instances counts twice). */
  games: number;
}

/** The counts per game of a whole server or cluster. */
export interface GameTotals {
  /** Every game counted on its own, by name (code point order). */
  games: GameRow[];
  /** Cluster mode: the games left out of `games` because of the per-instance bound, if any. */
  other?: OtherGames;
}

/**
 * What one instance writes (`instance-games:<node>`, JSON): its games with the most rooms, each
 * `[game, rooms, players, spectators]`, at most {@linkcode MAX_GAMES_PER_INSTANCE}, and the rest
 * as `[games, rooms, players, spectators]` (all 0 when nothing was left out).
 */
export interface InstanceGames {
  games: [game: string, rooms: number, players: number, spectators: number][];
  other: [games: number, rooms: number, players: number, spectators: number];
}

/** Orders games by rooms, then players (both descending), then by name. */
function byRoomsFirst(
  [nameA, a]: readonly [string, Readonly<GameCounts>],
  [nameB, b]: readonly [string, Readonly<GameCounts>],
): number {
  return b.rooms - a.rooms || b.players - a.players || compareText(nameA, nameB);
}

/**
 * The value an instance writes for `counts` (its homed rooms per game): the `max` games with
 * the most rooms (then players, then by name), the rest summed. O(g log g) for g games.
 */
export function topGames(
  counts: ReadonlyMap<string, Readonly<GameCounts>>,
  max = MAX_GAMES_PER_INSTANCE,
): InstanceGames {
  const ranked = [...counts].filter(([, game]) => game.rooms > 0);
  if (ranked.length > max) ranked.sort(byRoomsFirst);
  const other: InstanceGames["other"] = [0, 0, 0, 0];
  for (const [, game] of ranked.slice(max)) {
    other[0]++;
    other[1] += game.rooms;
    other[2] += game.players;
    other[3] += game.spectators;
  }
  return {
    games: ranked.slice(0, max).map((
      [name, game],
    ) => [name, game.rooms, game.players, game.spectators]),
    other,
  };
}

/**
 * Every game of `counts` as rows by name, nothing left out (one process: exact and live).
 */
export function listGames(counts: ReadonlyMap<string, Readonly<GameCounts>>): GameTotals {
  const games: GameRow[] = [];
  for (const [game_name, game] of counts) {
    if (game.rooms > 0) {
      games.push({
        game_name,
        rooms: game.rooms,
        players: game.players,
        spectators: game.spectators,
      });
    }
  }
  return { games: games.sort((a, b) => compareText(a.game_name, b.game_name)) };
}

/**
 * Counts per game of directory entries (each room once): the way to count rooms whose home
 * writes no `instance-games:` key (a version without it, during a rolling deploy), and the
 * operator routes' own when they are given no counts.
 */
export function countEntries(
  entries: Iterable<{ gameName: string; summary: { players: number; spectators: number } }>,
): Map<string, GameCounts> {
  const counts = new Map<string, GameCounts>();
  for (const { gameName, summary } of entries) {
    let game = counts.get(gameName);
    if (game === undefined) counts.set(gameName, game = { rooms: 0, players: 0, spectators: 0 });
    game.rooms++;
    game.players += summary.players;
    game.spectators += summary.spectators;
  }
  return counts;
}

/**
 * Sums the values of several instances: a game listed by any instance gets a row with what the
 * instances listed for it, `partial` when an instance that left games out did not list it (its
 * rooms there may be in the remainder); the remainders add up to `other`, absent when no
 * instance left a game out.
 */
export function sumGames(parts: readonly InstanceGames[]): GameTotals {
  const rows = new Map<string, GameRow>();
  const other: OtherGames = { games: 0, rooms: 0, players: 0, spectators: 0 };
  for (const part of parts) {
    for (const [game_name, rooms, players, spectators] of part.games) {
      const row = rows.get(game_name);
      if (row === undefined) {
        rows.set(game_name, { game_name, rooms, players, spectators });
      } else {
        row.rooms += rooms;
        row.players += players;
        row.spectators += spectators;
      }
    }
    other.games += part.other[0];
    other.rooms += part.other[1];
    other.players += part.other[2];
    other.spectators += part.other[3];
  }
  if (other.games > 0) {
    for (const part of parts) {
      if (part.other[0] === 0) continue;
      const listed = new Set(part.games.map(([name]) => name));
      for (const [name, row] of rows) if (!listed.has(name)) row.partial = true;
    }
  }
  const games = [...rows.values()].sort((a, b) => compareText(a.game_name, b.game_name));
  return other.games > 0 ? { games, other } : { games };
}
