import { equal } from "node:assert/strict";
import { Engine } from "../engine/engine.ts";
import { testOptions } from "../engine/testing.ts";
import { Edge } from "../transport/edge.ts";
import { createHandler } from "./routes.ts";

const INFO = {
  remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 50000 },
  completed: Promise.resolve(),
} as unknown as Deno.ServeHandlerInfo;

function handler(draining: boolean) {
  const edge = new Edge(new Engine(testOptions()), {
    maxMessageSize: 65536,
    newId: () => crypto.randomUUID(),
  });
  return createHandler({ edge, isDraining: () => draining }, {
    corsOrigins: "*",
    maxConnectionsPerIp: 10,
    idleTimeoutSecs: 30,
    outbound: { maxBufferedBytes: 1 << 20, enableBatching: true, batchSize: 10 },
  });
}

const UPGRADE_HEADERS = {
  connection: "keep-alive, Upgrade",
  upgrade: "websocket",
  "sec-websocket-version": "13",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
};

Deno.test("createHandler() turns health and upgrades to 503 while draining", async () => {
  const handle = handler(true);
  const health = await handle(new Request("http://localhost/v2/health"), INFO);
  equal(health.status, 503);
  equal(health.body, null);
  equal(
    (await handle(new Request("http://localhost/v2/ws", { headers: UPGRADE_HEADERS }), INFO))
      .status,
    503,
  );
});

Deno.test("createHandler() refuses malformed upgrade requests with 400", async () => {
  const handle = handler(false);
  for (const drop of ["upgrade", "sec-websocket-key", "sec-websocket-version", "connection"]) {
    const headers: Record<string, string> = { ...UPGRADE_HEADERS };
    delete headers[drop];
    equal(
      (await handle(new Request("http://localhost/v2/ws", { headers }), INFO)).status,
      400,
      drop,
    );
  }
  const wrongVersion = { ...UPGRADE_HEADERS, "sec-websocket-version": "8" };
  equal(
    (await handle(new Request("http://localhost/v2/ws", { headers: wrongVersion }), INFO)).status,
    400,
  );
  equal(
    (await handle(new Request("http://localhost/v2/ws", { method: "POST" }), INFO)).status,
    405,
  );
});
