/**
 * The JSON metrics body under attacker-chosen game names (issue 14 item 9, docs/spec/SERVER.md §6.4, §6.6):
 * its size is bounded by `metrics.dashboard_max_games`, not by the number of games, and its
 * dashboard part is serialised once per refresh however many clients fetch it.
 */
import { equal, ok } from "node:assert/strict";
import { connect, serve, type TestClient } from "./helpers.ts";

/** Creates one room per name from `client` and leaves it (the room stays, empty). */
async function squat(client: TestClient, names: readonly string[]): Promise<void> {
  const batch = 250;
  for (let start = 0; start < names.length; start += batch) {
    const slice = names.slice(start, start + batch);
    for (const name of slice) {
      client.send({ type: "JoinRoom", data: { game_name: name, player_name: "squatter" } });
      client.send({ type: "LeaveRoom" });
    }
    for (let i = 0; i < slice.length; i++) {
      await client.next("RoomJoined");
      await client.next("RoomLeft");
    }
  }
}

Deno.test("20,000 game names: JSON /metrics stays under its bound and is served from cache", async () => {
  const maxGames = 20;
  const refreshSecs = 3600; // the server's own refresh timer stays out of the test
  await using server = await serve((config) => {
    config.rate_limit.max_room_creations = 100_000;
    // Above the 20,003 rooms made here: the instance's room cap is not what this test is about.
    config.server.max_rooms = 30_000;
    config.server.empty_room_timeout = 3600;
    config.metrics.dashboard_max_games = maxGames;
    config.metrics.dashboard_cache_refresh_interval_secs = refreshSecs;
    config.metrics.dashboard_cache_history_window_secs = 60 * refreshSecs; // 60 entries
  });
  // The attack: 20,000 distinct 64-byte game names, one room each, from four sockets.
  const names = Array.from({ length: 20_000 }, (_, i) => `g${i}`.padEnd(64, "x"));
  const attackers = await Promise.all([0, 1, 2, 3].map(() => connect(server)));
  try {
    await Promise.all(attackers.map((a, k) => squat(a, names.slice(k * 5000, (k + 1) * 5000))));
  } finally {
    for (const attacker of attackers) await attacker.close();
  }
  // A real game with more rooms than any squatted name.
  const players = await Promise.all([0, 1, 2].map(() => connect(server)));
  try {
    for (const [i, player] of players.entries()) {
      player.send({ type: "JoinRoom", data: { game_name: "orbit", player_name: `p${i}` } });
      await player.next("RoomJoined");
    }
    // A full history: 60 refreshes while the rooms exist.
    const start = Date.now();
    for (let i = 0; i < 60; i++) server.metrics.refreshDashboard(start + i);
    const rendersBefore = server.metrics.dashboardRenders;

    // Many fetchers on all three paths at once.
    const paths = ["/metrics", "/v1/metrics", "/v2/metrics"];
    const responses = await Promise.all(
      Array.from({ length: 24 }, (_, i) => fetch(`${server.url}${paths[i % 3]}`)),
    );
    const bodies = await Promise.all(responses.map((response) => response.text()));
    equal(server.metrics.dashboardRenders, rendersBefore + 1, "serialised once for 24 requests");
    for (const text of bodies) {
      // 61 maps of ≤ 21 games (64-byte names + six percentiles): ~0.4 MB at most; 83.6 MB before.
      ok(text.length < 500_000, `${text.length} bytes`);
      const body = JSON.parse(text);
      equal(body.activeRooms, 20_003);
      equal(Object.keys(body.roomsByGame).length, maxGames + 1);
      equal(body.roomsByGame.orbit, 3);
      equal(body.roomsByGame["(other)"], 20_000 - (maxGames - 1));
      equal(Object.keys(body.gamePercentiles).length, maxGames + 1);
      equal(body.dashboardCache.history.length, 60);
      for (const entry of body.dashboardCache.history) {
        ok(Object.keys(entry.roomsByGame).length <= maxGames + 1);
        ok(Object.keys(entry.gamePercentiles).length <= maxGames + 1);
      }
    }
    // Another client is still served.
    players[0]!.send({ type: "Ping" });
    await players[0]!.next("Pong");
  } finally {
    for (const player of players) await player.close();
  }
});
