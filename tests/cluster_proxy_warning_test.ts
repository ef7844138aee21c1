/**
 * Cluster mode behind a load balancer without `security.trusted_proxies` (README "Run a cluster",
 * docs/spec/SERVER.md §8.7): the first request carrying `X-Forwarded-For` logs one warning; with
 * the proxy trusted, none. A real server process and redis-server.
 */
import { equal } from "node:assert/strict";
import { startCluster } from "./cluster_helpers.ts";
import { IGNORE_WITHOUT_REDIS } from "./redis_server.ts";

const opts = { ignore: IGNORE_WITHOUT_REDIS, sanitizeResources: false, sanitizeOps: false };
const WARNING = /carries X-Forwarded-For but security\.trusted_proxies is empty/g;

async function forwarded(url: string, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    const response = await fetch(`${url}/v2/health`, {
      headers: { "x-forwarded-for": `203.0.113.${i + 1}` },
    });
    await response.body?.cancel();
  }
  // Log lines reach stdout within 5 ms of being logged (batched writes); leave them time to arrive.
  await new Promise((resolve) => setTimeout(resolve, 200));
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
      await using cluster = await startCluster(1, env);
      await forwarded(cluster.httpUrl(0), 3);
      const output = cluster.servers[0]!.output();
      equal(output.match(WARNING)?.length ?? 0, expected, output);
    },
  });
}

/** A WebSocket upgrade carrying `X-Forwarded-For`, over a raw connection; resolves on its 101. */
async function forwardedUpgrade(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    await conn.write(new TextEncoder().encode(
      `GET /v2/ws HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: Upgrade\r\n` +
        "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
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
    await using cluster = await startCluster(1, {});
    equal(await forwardedUpgrade(cluster.httpUrl(0)), "HTTP/1.1 101 Switching Protocols");
    await new Promise((resolve) => setTimeout(resolve, 200));
    const output = cluster.servers[0]!.output();
    equal(output.match(WARNING)?.length ?? 0, 1, output);
  },
});
