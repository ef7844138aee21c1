/**
 * Admission before the upgrade (docs/spec/SERVER.md §1.8, §1.9, §2.7): trusted proxies and
 * X-Forwarded-For, the global connection cap, and surviving a flood under a low open-file limit.
 */
import { notInCluster } from "./cluster_serve.ts";
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { connect, joinRoom, serve, TestClient } from "./helpers.ts";
import { spawnServer } from "./process.ts";

/** Sends a raw upgrade request and returns the status line's code and the body (if any). */
async function rawUpgrade(
  port: number,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; conn: Deno.TcpConn }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const lines = [
    "GET /v2/ws HTTP/1.1",
    `Host: 127.0.0.1:${port}`,
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  await conn.write(new TextEncoder().encode(`${lines.join("\r\n")}\r\n\r\n`));
  let text = "";
  const buffer = new Uint8Array(4096);
  const decoder = new TextDecoder();
  for (;;) {
    const head = text.indexOf("\r\n\r\n");
    if (head >= 0) {
      const length = Number(text.slice(0, head).match(/content-length: (\d+)/i)?.[1] ?? 0);
      if (text.length - head - 4 >= length) {
        return { status: Number(text.split(" ")[1]), body: text.slice(head + 4), conn };
      }
    }
    const n = await conn.read(buffer);
    if (n === null) throw new Error(`Connection closed after ${JSON.stringify(text)}`);
    text += decoder.decode(buffer.subarray(0, n));
  }
}

Deno.test("X-Forwarded-For from a trusted proxy keys the per-IP limit by the client", {
  ignore: notInCluster(
    'the per-IP connection limit is per instance (docs/spec/SERVER.md §8.6, §8.7 "Connection caps")',
  ),
}, async () => {
  await using server = await serve((config) => {
    config.security.max_connections_per_ip = 1;
    config.security.trusted_proxies = ["127.0.0.0/8"];
  });
  const xff = (ip: string) => ({ headers: { "x-forwarded-for": `198.51.100.99, ${ip}` } });
  await using a = await connect(server, xff("203.0.113.1"));
  await using b = await connect(server, xff("203.0.113.2")); // another client: own slot
  const again = await rawUpgrade(server.port, { "X-Forwarded-For": "203.0.113.1" });
  again.conn.close();
  equal(again.status, 429);
  deepEqual(JSON.parse(again.body), {
    message: "Too many connections from your IP (1/1)",
    error_code: "TOO_MANY_CONNECTIONS",
  });
  a.send({ type: "Ping" });
  await a.next("Pong");
  b.send({ type: "Ping" });
  await b.next("Pong");
});

Deno.test("X-Forwarded-For from an untrusted peer is ignored", {
  ignore: notInCluster(
    'the per-IP connection limit is per instance (docs/spec/SERVER.md §8.6, §8.7 "Connection caps")',
  ),
}, async () => {
  await using server = await serve((config) => {
    config.security.max_connections_per_ip = 1;
    config.security.trusted_proxies = ["10.0.0.0/8"];
  });
  await using a = await connect(server, { headers: { "x-forwarded-for": "203.0.113.1" } });
  const spoofed = await rawUpgrade(server.port, { "X-Forwarded-For": "203.0.113.2" });
  spoofed.conn.close();
  equal(spoofed.status, 429, "the spoofed header must not buy a second slot");
  a.send({ type: "Ping" });
  await a.next("Pong");
});

Deno.test("security.max_connections answers 503 SERVICE_UNAVAILABLE beyond the cap", {
  ignore: notInCluster(
    'security.max_connections is per instance (docs/spec/SERVER.md §8.6, §8.7 "Connection caps")',
  ),
}, async () => {
  await using server = await serve((config) => {
    config.security.max_connections = 2;
  });
  const a = await connect(server);
  await using _b = await connect(server);
  const refused = await rawUpgrade(server.port);
  refused.conn.close();
  equal(refused.status, 503);
  deepEqual(JSON.parse(refused.body), {
    message: "Service temporarily unavailable",
    error_code: "SERVICE_UNAVAILABLE",
  });
  await a.close();
  // The slot comes back once the socket is torn down.
  let admitted: TestClient | undefined;
  for (let attempt = 0; attempt < 50 && !admitted; attempt++) {
    admitted = await connect(server).catch(() => undefined);
    if (!admitted) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  ok(admitted, "no slot after a connection closed");
  await admitted.close();
});

/** Opens `count` WebSockets, at most `parallel` handshakes at a time; returns the open ones. */
async function flood(url: string, count: number, parallel: number) {
  const open: WebSocket[] = [];
  const refused: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const socket = new WebSocket(url);
      const opened = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 10_000);
        socket.onopen = () => {
          clearTimeout(timer);
          resolve(true);
        };
        socket.onerror = (event) => {
          clearTimeout(timer);
          refused.push((event as ErrorEvent).message);
          resolve(false);
        };
      });
      if (opened) open.push(socket);
      else if (socket.readyState !== WebSocket.CLOSED) socket.close();
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return { open, refused };
}

async function closeAll(sockets: WebSocket[]): Promise<void> {
  await Promise.all(sockets.map((socket) =>
    new Promise<void>((resolve) => {
      if (socket.readyState === WebSocket.CLOSED) return resolve();
      socket.addEventListener("close", () => resolve());
      socket.close();
    })
  ));
}

async function playShortGame(port: number): Promise<void> {
  const url = `ws://127.0.0.1:${port}/v2/ws`;
  await using alice = await TestClient.connect(url);
  await using bob = await TestClient.connect(url);
  alice.send(joinRoom(null, "alice", { max_players: 2 }));
  const { data } = await alice.next("RoomJoined");
  bob.send(joinRoom(data.room_code, "bob"));
  await bob.next("RoomJoined");
  alice.send({ type: "GameData", data: { data: { n: 1 } } });
  deepEqual((await bob.waitFor("GameData")).data.data, { n: 1 });
}

async function health(port: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/v2/health`);
  await response.body?.cancel();
  return response.status;
}

Deno.test({
  name: "under ulimit -n 256 the derived cap refuses a flood of 300 with 503 and keeps serving",
  sanitizeResources: false, // the flood's refused handshakes close asynchronously
  async fn() {
    // --allow-all lets the server read /proc/self/limits and derive the cap: 256 - 64 = 192.
    await using server = await spawnServer({
      permissions: ["--allow-all"],
      openFileLimit: 256,
      env: { SIGNAL_FISH_SECURITY__MAX_CONNECTIONS_PER_IP: "1000" },
    });
    match(server.output(), /"max_connections":192,"max_connections_from":"open-file limit"/);
    const { open, refused } = await flood(`ws://127.0.0.1:${server.port}/v2/ws`, 300, 16);
    try {
      equal(open.length, 192);
      equal(refused.length, 108);
      equal(await health(server.port), 503, "health says 503 while the cap is reached");
    } finally {
      await closeAll(open);
    }
    await playShortGame(server.port);
    equal(await health(server.port), 200);
    match(server.output(), /Refused a WebSocket upgrade/);
  },
});

Deno.test({
  name: "under ulimit -n 256 a burst of 400 without a known limit does not kill the server",
  sanitizeResources: false,
  async fn() {
    // The least-privilege executables cannot read the limit (cap 16000), so accept() itself
    // runs out of descriptors; the listener is bound again and the server keeps serving.
    await using server = await spawnServer({
      openFileLimit: 256,
      env: {
        SIGNAL_FISH_SECURITY__MAX_CONNECTIONS_PER_IP: "1000",
        // No pending-connection cap below the descriptor limit either.
        SIGNAL_FISH_SECURITY__HTTP__MAX_PENDING_CONNECTIONS: "1000",
        SIGNAL_FISH_SECURITY__HTTP__MAX_PENDING_CONNECTIONS_PER_IP: "1000",
      },
    });
    const { open } = await flood(`ws://127.0.0.1:${server.port}/v2/ws`, 400, 400);
    await closeAll(open);
    // The re-bind waits at most a few seconds; poll health until it answers.
    let status = 0;
    for (let attempt = 0; attempt < 100 && status !== 200; attempt++) {
      status = await health(server.port).catch(() => 0);
      if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    equal(status, 200);
    await playShortGame(server.port);
    equal(await exitCodeIfDead(server), undefined, "the server process died");
    // Proof that the flood did exhaust the descriptors (else this test would prove nothing).
    match(server.output(), /Too many open files/);
    match(server.output(), /Listening on port \d+ again/);
  },
});

async function exitCodeIfDead(server: { exited: Promise<Deno.CommandStatus> }) {
  return await Promise.race([
    server.exited.then((status) => status.code),
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 0)),
  ]);
}

Deno.test("addresses of one IPv6 /64 share one per-IP budget: sockets and room creations", {
  ignore: notInCluster(
    'the per-IP connection limit is per instance (docs/spec/SERVER.md §8.6, §8.7 "Connection caps")',
  ),
}, async () => {
  await using server = await serve((config) => {
    config.security.max_connections_per_ip = 3;
    config.security.trusted_proxies = ["127.0.0.1"];
    config.rate_limit.max_room_creations = 2;
  });
  const xff = (ip: string) => ({ headers: { "x-forwarded-for": ip } });
  // The attack: a host owning 2001:db8:1:2::/64 connects from 40 of its addresses.
  const held: Deno.TcpConn[] = [];
  const statuses: number[] = [];
  try {
    for (let i = 1; i <= 40; i++) {
      const { status, conn } = await rawUpgrade(server.port, {
        "X-Forwarded-For": `2001:db8:1:2:${i.toString(16)}::${(i * 7919 % 65536).toString(16)}`,
      });
      statuses.push(status);
      if (status === 101) held.push(conn);
      else conn.close();
    }
    deepEqual(statuses.filter((s) => s === 101).length, 3, String(statuses));
    deepEqual(statuses.filter((s) => s === 429).length, 37);
    // Another /64, and IPv4 written as IPv4-mapped IPv6 (counted as its IPv4 address), are
    // other clients.
    await using other = await connect(server, xff("2001:db8:1:3::1"));
    await using _v4 = await connect(server, xff("::ffff:198.51.100.7"));
    await using _v4Again = await connect(server, xff("198.51.100.7"));
    const v4Third = await rawUpgrade(server.port, { "X-Forwarded-For": "198.51.100.7" });
    held.push(v4Third.conn);
    equal(v4Third.status, 101);
    const v4Fourth = await rawUpgrade(server.port, { "X-Forwarded-For": "::FFFF:198.51.100.7" });
    v4Fourth.conn.close();
    equal(v4Fourth.status, 429, "mapped and plain IPv4 share one budget");
    other.send({ type: "Ping" });
    await other.next("Pong");
  } finally {
    for (const conn of held) conn.close();
  }

  // The room-creation token bucket is shared by the /64 as well.
  const creators: TestClient[] = [];
  try {
    const outcomes: string[] = [];
    for (let i = 1; i <= 3; i++) {
      // Slots come back as the raw sockets above are torn down.
      let client: TestClient | undefined;
      for (let attempt = 0; attempt < 50 && !client; attempt++) {
        client = await connect(server, xff(`2001:db8:5:6::${i}`)).catch(() => undefined);
        if (!client) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      ok(client, "no slot");
      creators.push(client);
      client.send(joinRoom(null, `p${i}`));
      const reply = await client.next();
      outcomes.push(reply.type === "RoomJoined" ? "created" : reply.data.error_code);
    }
    deepEqual(outcomes, ["created", "created", "RATE_LIMIT_EXCEEDED"]);
  } finally {
    for (const client of creators) await client.close();
  }
});
