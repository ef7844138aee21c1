/**
 * Cluster mode behind a load balancer without `security.trusted_proxies` (README "Run a cluster",
 * docs/spec/SERVER.md §8.7): the first request carrying `X-Forwarded-For` logs one warning; with
 * the proxy trusted, none. A real server process and redis-server.
 */
import { equal } from "node:assert/strict";
import { type RealCluster, startCluster } from "./cluster_helpers.ts";
import { logged } from "./process.ts";
import { IGNORE_WITHOUT_REDIS } from "./redis_server.ts";

const opts = { ignore: IGNORE_WITHOUT_REDIS, sanitizeResources: false, sanitizeOps: false };
const WARNING = /carries X-Forwarded-For but security\.trusted_proxies is empty/g;

/** Only this origin may open a WebSocket: an upgrade from another logs a line on demand. */
const ENV = { SIGNAL_FISH_SECURITY__CORS_ORIGINS: "https://game.example" };

async function forwarded(url: string, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    const response = await fetch(`${url}/v2/health`, {
      headers: { "x-forwarded-for": `203.0.113.${i + 1}` },
    });
    await response.body?.cancel();
  }
}

/**
 * The server's output once every line it logged for the requests made so far has arrived: a
 * refused upgrade logs a line after them (one process writes its lines in order), and its arrival
 * is waited for. (A fixed wait let a late line go uncounted under load.)
 */
async function outputSoFar(cluster: RealCluster): Promise<string> {
  const status = await upgrade(cluster.httpUrl(0), "Origin: https://marker.example");
  equal(status, "HTTP/1.1 403 Forbidden");
  const server = cluster.servers[0]!;
  await logged(server, /Refused a WebSocket upgrade from origin https:\/\/marker\.example/);
  return server.output();
}

for (
  const [name, env, expected] of [
    ["without trusted_proxies: warned once", {}, 1],
    [
      "with the load balancer trusted: no warning",
      { SIGNAL_FISH_SECURITY__TRUSTED_PROXIES: "127.0.0.1" },
      0,
    ],
  ] as const
) {
  Deno.test({
    ...opts,
    name: `cluster: requests with X-Forwarded-For ${name}`,
    fn: async () => {
      await using cluster = await startCluster(1, { ...ENV, ...env });
      await forwarded(cluster.httpUrl(0), 3);
      const output = await outputSoFar(cluster);
      equal(output.match(WARNING)?.length ?? 0, expected, output);
    },
  });
}

/**
 * A WebSocket upgrade with the extra header line `header`, over a raw connection; resolves with
 * the status line of the answer.
 */
async function upgrade(url: string, header: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    await conn.write(new TextEncoder().encode(
      `GET /v2/ws HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: Upgrade\r\n` +
        "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${header}\r\n\r\n`,
    ));
    const buffer = new Uint8Array(1024);
    const read = await conn.read(buffer);
    return new TextDecoder().decode(buffer.subarray(0, read ?? 0)).split("\r\n")[0]!;
  } finally {
    conn.close();
  }
}

Deno.test({
  ...opts,
  name: "cluster: a WebSocket upgrade with X-Forwarded-For is warned about too",
  fn: async () => {
    await using cluster = await startCluster(1, ENV);
    equal(
      await upgrade(cluster.httpUrl(0), "X-Forwarded-For: 203.0.113.9"),
      "HTTP/1.1 101 Switching Protocols",
    );
    const output = await outputSoFar(cluster);
    equal(output.match(WARNING)?.length ?? 0, 1, output);
  },
});
