/**
 * Differential test (issue 15 item 2, docs/spec/SERVER.md §8.6 "nothing different in normal operation"):
 * the same scripted sessions against one node and against three (connections assigned
 * round-robin) must give every client the same message sequence once ids, tokens, codes and
 * times are normalised. Steps run one at a time and the cluster is let settle in between, so the
 * order of different senders' messages is the script's.
 */
import { deepEqual, ok } from "node:assert/strict";
import { settle, type TestClient, testCluster } from "./testing.ts";

type Step = [client: number, message: unknown];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Replaces ids, tokens, codes and times by placeholders numbered in order of appearance. */
function normalise(messages: unknown[]): unknown[] {
  const names = new Map<string, string>();
  const name = (kind: string, value: string) => {
    const key = `${kind}:${value}`;
    if (!names.has(key)) names.set(key, `<${kind}${names.size}>`);
    return names.get(key)!;
  };
  const walk = (value: unknown, key = ""): unknown => {
    if (Array.isArray(value)) return value.map((v) => walk(v));
    if (value !== null && typeof value === "object") {
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, walk(v, k)]),
      );
    }
    if (typeof value !== "string") return value;
    if (UUID.test(value)) return name("id", value);
    if (key === "reconnection_token" || key === "auth_token") return name("token", value);
    if (key === "room_code") return name("code", value);
    if (key.endsWith("_at") || /^\d{4}-\d{2}-\d{2}T/.test(value)) return "<time>";
    return value;
  };
  return messages.map((m) => walk(m));
}

/** Runs `script` (with `CODE` standing for the first room's code) on `nodes` nodes. */
async function run(nodes: number, clients: number, script: Step[]): Promise<unknown[][]> {
  const cluster = await testCluster({ nodes, engine: { enableReconnection: true } });
  try {
    const all: TestClient[] = [];
    for (let i = 0; i < clients; i++) all.push(cluster.nodes[i % nodes]!.connect(`10.0.0.${i}`));
    let code = "";
    for (const [who, message] of script) {
      const text = JSON.stringify(message).replaceAll("CODE", code).replaceAll(
        "PLAYER0",
        String(all[0]!.last("RoomJoined")?.data?.player_id ?? ""),
      );
      all[who]!.node.edge.receive(all[who]!.id, text, Date.now());
      await settle(20);
      code ||= String(all[0]!.last("RoomJoined")?.data?.room_code ?? "");
    }
    return all.map((client) => normalise(client.messages));
  } finally {
    await cluster.close();
  }
}

const join = (name: string, code: string | null, extra: object = {}) => ({
  type: "JoinRoom",
  data: { game_name: "orbit", player_name: name, room_code: code, ...extra },
});

const SCRIPT: Step[] = [
  [0, join("Ann", null, { max_players: 3 })],
  [1, join("Ben", "CODE")],
  [2, join("Cat", "CODE")],
  [3, {
    type: "JoinAsSpectator",
    data: { game_name: "orbit", room_code: "CODE", spectator_name: "Sid" },
  }],
  [4, join("Ann", "CODE")],
  [1, { type: "GameData", data: { data: { x: 1.25, tag: "from Ben" } } }],
  [2, { type: "GameData", data: { data: "to Ann", to_player: "PLAYER0" } }],
  [1, { type: "AuthorityRequest", data: { become_authority: true } }],
  [0, { type: "AuthorityRequest", data: { become_authority: false } }],
  [1, { type: "AuthorityRequest", data: { become_authority: true } }],
  [2, {
    type: "ProvideConnectionInfo",
    data: { connection_info: { type: "direct", host: "10.1.1.1", port: 7777 } },
  }],
  [0, { type: "PlayerReady" }],
  [1, { type: "PlayerReady" }],
  [2, { type: "PlayerReady" }],
  [3, { type: "GameData", data: { data: "spectators cannot" } }],
  [1, { type: "LeaveRoom" }],
  [1, { type: "GameData", data: { data: "after leaving" } }],
  [4, join("Dee", "CODE")],
  [3, { type: "LeaveSpectator" }],
  [0, { type: "Ping" }],
  [5, join("Eve", "NOROOM")],
  [5, { type: "GameData", data: { data: "in my own room" } }],
];

Deno.test("Differential: one node and three nodes give every client the same messages", async () => {
  const single = await run(1, 6, SCRIPT);
  const three = await run(3, 6, SCRIPT);
  ok(single.every((messages) => messages.length > 0), "every client got something");
  const types = (i: number) => single[i]!.map((m) => (m as { type: string }).type);
  // The script does what it says (so equality is about something).
  ok(types(0).includes("GameStarting") && types(3).includes("GameStarting"), types(0).join());
  ok(types(1).includes("RoomLeft") && types(4).includes("RoomJoinFailed"), types(4).join());
  ok(types(3).includes("SpectatorLeft") && types(5).at(-1) === "RoomJoined", types(5).join());
  for (let i = 0; i < single.length; i++) {
    deepEqual(three[i], single[i], `client ${i}`);
  }
});
