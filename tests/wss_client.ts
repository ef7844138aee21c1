/**
 * A two-player session over wss://, run as a subprocess by tls_test.ts with `--cert <ca.pem>` so
 * Deno's WebSocket client trusts the test's self-signed certificate. Prints one JSON line with
 * what it observed; exits 1 on any failure.
 *
 * Usage: deno run --cert ca.pem --allow-net tests/wss_client.ts <https base URL>
 */
import { joinRoom, TestClient } from "./helpers.ts";

const base = Deno.args[0];
if (!base) throw new TypeError("Usage: wss_client.ts <https base URL>");
const health = await fetch(`${base}/v2/health`);
const wsUrl = `${base.replace(/^https/, "wss")}/v2/ws`;
const alice = await TestClient.connect(wsUrl);
const bob = await TestClient.connect(wsUrl);
alice.send(joinRoom(null, "alice", { max_players: 2 }));
const created = await alice.next("RoomJoined");
bob.send(joinRoom(created.data.room_code, "bob"));
await bob.next("RoomJoined");
alice.send({ type: "PlayerReady" });
bob.send({ type: "PlayerReady" });
await alice.waitFor("GameStarting");
await bob.waitFor("GameStarting");
alice.send({ type: "GameData", data: { data: { op: "hello-over-tls" } } });
const relayed = await bob.waitFor("GameData");
await alice.close();
await bob.close();
console.log(JSON.stringify({
  health: health.status,
  healthBody: await health.text(),
  relayed: relayed.data.data,
}));
