/**
 * HTTP surface (docs/spec/SERVER.md §1): health, 404/405, CORS, and the pre-upgrade admission checks.
 */
import { notInCluster } from "./cluster_serve.ts";
import { deepEqual, equal, rejects } from "node:assert/strict";
import { connect, joinRoom, serve } from "./helpers.ts";

Deno.test("GET /v2/health answers 200 OK as plain text, HEAD with no body", async () => {
  await using server = await serve();
  const response = await fetch(`${server.url}/v2/health`);
  equal(response.status, 200);
  equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
  equal(await response.text(), "OK");
  const head = await fetch(`${server.url}/v2/health`, { method: "HEAD" });
  equal(head.status, 200);
  equal(await head.text(), "");
});

Deno.test("Unknown paths get a plain-text 404 (docs/spec/SERVER.md §1.2) and known paths refuse other methods with 405", async () => {
  await using server = await serve();
  for (const path of ["/health", "/v1/ws", "/v2/healthz", "/v2/ws/extra", "/v2/rooms"]) {
    for (const method of ["GET", "POST"]) {
      const response = await fetch(`${server.url}${path}`, { method });
      equal(response.status, 404, `${method} ${path}`);
      equal(response.headers.get("content-type"), "text/plain; charset=utf-8", path);
      equal(await response.text(), "Not Found", path);
    }
  }
  const post = await fetch(`${server.url}/v2/health`, { method: "POST" });
  equal(post.status, 405);
  equal(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
});

Deno.test("GET /v2/ws without an upgrade is a 400", async () => {
  await using server = await serve();
  const response = await fetch(`${server.url}/v2/ws`);
  equal(response.status, 400);
  await response.body?.cancel();
});

Deno.test("CORS allows any origin by default and answers preflights", async () => {
  await using server = await serve();
  const response = await fetch(`${server.url}/v2/health`, {
    headers: { origin: "https://game.example" },
  });
  equal(response.headers.get("access-control-allow-origin"), "*");
  await response.body?.cancel();
  const preflight = await fetch(`${server.url}/v2/health`, {
    method: "OPTIONS",
    headers: { origin: "https://game.example", "access-control-request-method": "GET" },
  });
  equal(preflight.status, 200);
  equal(preflight.headers.get("access-control-allow-methods"), "*");
  equal(preflight.headers.get("access-control-allow-headers"), "*");
  await preflight.body?.cancel();
});

Deno.test("A CORS origin list echoes allowed origins, case-insensitively, and gates upgrades", async () => {
  await using server = await serve((config) => {
    config.security.cors_origins = "https://play.example, http://localhost:5173";
  });
  const allowed = await fetch(`${server.url}/v2/health`, {
    headers: { origin: "https://PLAY.example" },
  });
  equal(allowed.headers.get("access-control-allow-origin"), "https://PLAY.example");
  equal(
    allowed.headers.get("vary"),
    "origin, access-control-request-method, access-control-request-headers",
  );
  await allowed.body?.cancel();
  const other = await fetch(`${server.url}/v2/health`, {
    headers: { origin: "https://evil.example" },
  });
  equal(other.headers.get("access-control-allow-origin"), null);
  await other.body?.cancel();

  // Browsers send Origin; native clients do not and always pass.
  await using native = await connect(server);
  await using browser = await connect(server, { headers: { origin: "http://localhost:5173" } });
  native.send({ type: "Ping" });
  await native.next("Pong");
  browser.send({ type: "Ping" });
  await browser.next("Pong");
  const refused = await fetch(`${server.url}/v2/ws`, {
    headers: {
      origin: "https://evil.example",
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-version": "13",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    },
  });
  equal(refused.status, 403);
  deepEqual(await refused.json(), { message: "Origin not allowed", error_code: "UNAUTHORIZED" });
});

Deno.test("The per-IP connection limit answers 429 before the upgrade and frees slots on close", {
  ignore: notInCluster(
    'the per-IP connection limit is per instance (docs/spec/SERVER.md §8.6, §8.7 "Connection caps")',
  ),
}, async () => {
  await using server = await serve((config) => config.security.max_connections_per_ip = 2);
  const first = await connect(server);
  await using second = await connect(server);
  const upgrade = {
    connection: "Upgrade",
    upgrade: "websocket",
    "sec-websocket-version": "13",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  };
  const refused = await fetch(`${server.url}/v2/ws`, { headers: upgrade });
  equal(refused.status, 429);
  equal(refused.headers.get("content-type"), "application/json");
  deepEqual(await refused.json(), {
    message: "Too many connections from your IP (2/2)",
    error_code: "TOO_MANY_CONNECTIONS",
  });
  await rejects(connect(server));
  await first.close();
  // The slot is released when the socket closes; a new connection then succeeds.
  let third;
  for (let attempt = 0; attempt < 50 && !third; attempt++) {
    third = await connect(server).catch(() => undefined);
    if (!third) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  equal(third !== undefined, true);
  await third!.close();
  second.send({ type: "Ping" });
  await second.next("Pong");
});

Deno.test("Shutdown closes every socket with 1001 and sends no room traffic first", async () => {
  const server = await serve();
  const a = await connect(server);
  const b = await connect(server);
  a.send(joinRoom("BYE001", "a", { max_players: 2 }));
  await a.next("RoomJoined");
  b.send(joinRoom("BYE001", "b"));
  await b.next("RoomJoined");
  await b.next("LobbyStateChanged");
  await a.next("PlayerJoined");
  await a.next("LobbyStateChanged");
  const closing = server.close();
  deepEqual(await a.closed, { code: 1001, reason: "Server shutting down" });
  deepEqual(await b.closed, { code: 1001, reason: "Server shutting down" });
  await closing;
  // Nobody is told about players who leave with them (no PlayerLeft before the close).
  deepEqual([...a.drain(), ...b.drain()], []);
  await rejects(fetch(`${server.url}/v2/health`));
});
