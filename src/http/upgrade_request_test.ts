import { deepEqual, equal } from "node:assert/strict";
import { Engine } from "../engine/engine.ts";
import { testOptions } from "../engine/testing.ts";
import { Edge } from "../transport/edge.ts";
import { UpgradeRequest } from "./handover.ts";
import { isPlainHost } from "./listener.ts";
import { createHandler } from "./routes.ts";

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = ["Host", "host", "Origin", "ORIGIN", "Sec-WebSocket-Key", "X-Forwarded-For", "x-a"];
const VALUES = ["a", " b", "c ", "\tdd\t", "", "1.2.3.4", "  ", "e, f", "UPPER"];

Deno.test("UpgradeRequest looks headers up as a Headers built from the same raw headers", () => {
  const next = random(18);
  const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)]!;
  for (let round = 0; round < 2_000; round++) {
    const raw: string[] = [];
    const count = Math.floor(next() * 6);
    for (let i = 0; i < count; i++) raw.push(pick(NAMES), pick(VALUES));
    const headers = new Headers();
    for (let i = 0; i < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
    const request = new UpgradeRequest("GET", raw, "http", "/v2/ws");
    for (const name of [...NAMES, "absent"]) {
      equal(request.headers.get(name), headers.get(name), `${JSON.stringify(raw)} ${name}`);
      equal(request.headers.has(name), headers.has(name), `${JSON.stringify(raw)} ${name}`);
    }
  }
});

Deno.test("UpgradeRequest builds its URL from the scheme, the Host header and the target", () => {
  const request = new UpgradeRequest("GET", ["Host", "example.com:8080"], "https", "/v2/ws?x=1");
  equal(request.url, "https://example.com:8080/v2/ws?x=1");
  equal(request.target, "/v2/ws?x=1");
});

Deno.test("isPlainHost() accepts only hosts the URL parser surely takes unchanged", () => {
  const hosts = [
    "127.0.0.1",
    "127.0.0.1:65535",
    "127.0.0.1:65536",
    "999.1.1.1",
    "127.0.0.08",
    "127.000.0.1",
    "localhost:3536",
    "a.b-c.d_e",
    "1.2.3",
    "0x7f.1",
    "a.0x1",
    "a.0xg",
    "foo.123",
    ":80",
    "a b",
    "a, b",
    "[::1]:80",
    "host:",
    "a/b",
    "a@b",
    "a.b.",
    "h:99999",
    "1.2.3.4.5",
    "01.2.3.4",
    "\u00ff.com",
  ];
  const plain = hosts.filter(isPlainHost);
  for (const host of plain) new URL(`http://${host}/v2/ws`); // throws if it should not be plain
  deepEqual(plain, ["127.0.0.1", "127.0.0.1:65535", "localhost:3536", "a.b-c.d_e", "a.0xg"]);
});

const INFO = {
  remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 50000 },
  completed: Promise.resolve(),
} as unknown as Deno.ServeHandlerInfo;

const UPGRADE = [
  "Host",
  "localhost",
  "Connection",
  "Upgrade",
  "Upgrade",
  "websocket",
  "Sec-WebSocket-Version",
  "13",
  "Sec-WebSocket-Key",
  "dGhlIHNhbXBsZSBub25jZQ==",
  "Origin",
  "https://evil.example",
];

Deno.test("the handler's websocket route answers GET /v2/ws as the full route does, else declines", async () => {
  const edge = new Edge(new Engine(testOptions()), {
    maxMessageSize: 65536,
    newId: () => crypto.randomUUID(),
  });
  const handle = createHandler({ edge, isDraining: () => false }, {
    corsOrigins: ["https://game.example"],
    maxConnectionsPerIp: 10,
    idleTimeoutSecs: 30,
    outbound: { maxBufferedBytes: 1 << 20, enableBatching: true, batchSize: 10 },
  });
  // A refused origin: the same status, body and CORS headers either way.
  const fast = handle.websocket(new UpgradeRequest("GET", UPGRADE, "http", "/v2/ws?v=1"), INFO)!;
  const headers = new Headers();
  for (let i = 0; i < UPGRADE.length; i += 2) headers.append(UPGRADE[i]!, UPGRADE[i + 1]!);
  const full = await handle(new Request("http://localhost/v2/ws?v=1", { headers }), INFO);
  equal(fast.status, 403);
  equal(fast.status, full.status);
  deepEqual([...fast.headers], [...full.headers]);
  equal(await fast.text(), await full.text());
  // Not GET /v2/ws: left to the full route.
  for (const [method, target] of [["HEAD", "/v2/ws"], ["OPTIONS", "/v2/ws"], ["GET", "/v2/wsx"]]) {
    equal(handle.websocket(new UpgradeRequest(method!, UPGRADE, "http", target!), INFO), undefined);
  }
});
