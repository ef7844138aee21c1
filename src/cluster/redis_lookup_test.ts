/**
 * The HTTP room lookup and listing (docs/spec/EXTENSIONS.md E5, E6) through another node between
 * a creation's claim and its home's first refresh, on a private redis-server (the Redis store's
 * claim, list and lookup scripts; src/cluster/cluster_test.ts has the same on the twins): they
 * answer the summary the room has once created (docs/spec/SERVER.md §8.3 script 1).
 */
import { deepEqual, equal } from "node:assert/strict";
import { IGNORE_WITHOUT_REDIS, startRedis } from "../../tests/redis_server.ts";
import { getRooms, redisTestCluster, until } from "./testing.ts";
import type { ClusterStore } from "./types.ts";

Deno.test({
  name:
    "Cluster on Redis: a room looked up or listed through another node before its home's first refresh shows the summary it has, not the claim's placeholder",
  ignore: IGNORE_WITHOUT_REDIS,
  fn: async () => {
    await using redis = await startRedis();
    const cluster = await redisTestCluster(redis.url, {
      nodes: 2,
      engine: { defaultMaxPlayers: 6, relayTypeByGame: { orbit: "webrtc-mesh" } },
    });
    try {
      const [a, b] = cluster.nodes as [typeof cluster.nodes[0], typeof cluster.nodes[0]];
      // A's claims run in Redis; their answers wait until the test lets them go.
      const store = a.edge.directory as unknown as ClusterStore;
      const claim = store.claim.bind(store);
      let claimed = false;
      let answer!: () => void;
      const gate = new Promise<void>((resolve) => answer = resolve);
      store.claim = async (...args) => {
        const result = await claim(...args);
        claimed = true;
        await gate;
        return result;
      };
      const http = (path: string) => getRooms(b, path);
      const alice = a.connect("10.0.0.2");
      alice.say({
        type: "JoinRoom",
        data: { game_name: "orbit", player_name: "Alice", room_code: "REDIS1" },
      });
      await until(() => claimed, "the claim");
      equal(a.engine.lookup("orbit", "REDIS1"), undefined, "the room is not created yet");
      const expected = {
        room_code: "REDIS1",
        game_name: "orbit",
        players: 1,
        max_players: 6,
        spectators: 0,
        lobby_state: "waiting",
        supports_authority: true,
        relay_type: "webrtc-mesh",
        authority_handover: false,
      };
      deepEqual(await http("/v2/rooms/orbit/REDIS1"), { status: 200, body: expected }, "lookup");
      deepEqual(
        await http("/v2/rooms?game_name=orbit"),
        { status: 200, body: { game_name: "orbit", rooms: [expected] } },
        "listing",
      );
      answer();
      await until(() => alice.last("RoomJoined") !== undefined, "Alice's RoomJoined");
      deepEqual(alice.last("RoomJoined")!.data!.max_players, 6);
      deepEqual(
        await http("/v2/rooms/orbit/REDIS1"),
        { status: 200, body: expected },
        "after the creation",
      );
    } finally {
      await cluster.close();
    }
  },
});
