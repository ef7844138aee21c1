import { equal, ok } from "node:assert/strict";
import net from "node:net";
import type { Duplex } from "node:stream";
import { switchingProtocols, takeUpgradeSocket } from "./handover.ts";
import {
  DEFAULT_PENDING_LIMITS,
  isPlainHost,
  listen,
  type Listener,
  MAX_UNANSWERED_REQUESTS,
} from "./listener.ts";

/** Reads until the server closes `conn`; rejects after `boundMs` (only stops a failing test). */
async function readUntilClosed(conn: Deno.Conn, boundMs: number): Promise<string> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(4096);
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still open after ${boundMs} ms`)), boundMs);
  });
  try {
    for (;;) {
      const n = await Promise.race([conn.read(buffer).catch(() => null), bound]);
      if (n === null) return text;
      text += decoder.decode(buffer.subarray(0, n));
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms`. */
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Sockets the test route took over (destroyed at the end, so shutdown does not wait). */
const taken: Duplex[] = [];

/** A listener whose idle timeout is short and whose header timeout is far longer. */
function idleListener(): Promise<Listener> {
  return listen({
    hostname: "127.0.0.1",
    port: 0,
    handler: () => new Response("ok"),
    // A WebSocket-like route: takes the socket, answers 101 by hand, keeps it open.
    upgrade: (request) => {
      const upgrade = takeUpgradeSocket(request);
      upgrade?.socket.write("HTTP/1.1 101 Switching Protocols\r\n\r\n");
      if (upgrade) taken.push(upgrade.socket);
      return switchingProtocols();
    },
    limits: { ...DEFAULT_PENDING_LIMITS, headerTimeoutMs: 60_000, idleTimeoutMs: 200 },
  });
}

Deno.test("listen: a silent plain-HTTP connection is closed by the idle timeout (one sweep for all)", async () => {
  const listener = await idleListener();
  try {
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const partial = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await partial.write(new TextEncoder().encode("GET /v2/health HTTP/1.1\r\nHost: x\r\n"));
    // The header timeout (60 s) is far beyond the bound: only the idle timeout closes them.
    equal(await readUntilClosed(silent, 20_000), "");
    equal(await readUntilClosed(partial, 20_000), "");
    silent.close();
    partial.close();
    for (let i = 0; i < 100 && listener.pending > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    equal(listener.pending, 0);
  } finally {
    await listener.shutdown();
  }
});

Deno.test("listen: an upgraded connection is no longer subject to the pending idle timeout", async () => {
  const listener = await idleListener();
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await conn.write(
      new TextEncoder().encode(
        "GET /v2/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      ),
    );
    const buffer = new Uint8Array(256);
    const n = await conn.read(buffer);
    ok(n !== null && new TextDecoder().decode(buffer.subarray(0, n)).startsWith("HTTP/1.1 101"));
    equal(listener.pending, 0, "taken over: not pending");
    // Several idle periods (and sweeps) later it is still open: a read does not see its end.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const still = await Promise.race([
      conn.read(buffer).then((read) => read === null ? "closed" : "data", () => "closed"),
      new Promise<string>((resolve) => timer = setTimeout(() => resolve("open"), 300)),
    ]);
    clearTimeout(timer);
    equal(still, "open");
    conn.close();
  } finally {
    for (const socket of taken.splice(0)) socket.destroy();
    await listener.shutdown();
  }
});

/** The number of HTTP responses in `text` (status lines). */
const responses = (text: string) => text.split("HTTP/1.1 200").length - 1;

Deno.test("listen: a keep-alive connection may send any number of requests one after another, and pipeline up to MAX_UNANSWERED_REQUESTS", async () => {
  const refused: string[] = [];
  const listener = await listen({
    hostname: "127.0.0.1",
    port: 0,
    handler: () => new Response("ok"),
    onRefused: (reason) => refused.push(reason),
  });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const request = new TextEncoder().encode("GET /v2/health HTTP/1.1\r\nHost: x\r\n\r\n");
    const buffer = new Uint8Array(65536);
    // Read until `count` answers came: each is small, none is split here in practice, but
    // count status lines across reads anyway.
    const answers = async (count: number) => {
      let text = "";
      while (responses(text) < count) {
        const n = await conn.read(buffer);
        if (n === null) throw new Error(`closed after ${responses(text)} answers`);
        text += new TextDecoder().decode(buffer.subarray(0, n));
      }
      return text;
    };
    for (let i = 0; i < 3 * MAX_UNANSWERED_REQUESTS; i++) {
      await conn.write(request);
      await answers(1);
    }
    // The most a connection may have waiting, in one write.
    const batch = new Uint8Array(request.length * MAX_UNANSWERED_REQUESTS);
    for (let i = 0; i < MAX_UNANSWERED_REQUESTS; i++) batch.set(request, i * request.length);
    await conn.write(batch);
    equal(responses(await answers(MAX_UNANSWERED_REQUESTS)), MAX_UNANSWERED_REQUESTS);
    conn.close();
    equal(refused.length, 0);
  } finally {
    await listener.shutdown();
  }
});

Deno.test("listen: a connection that pipelines more than MAX_UNANSWERED_REQUESTS requests is closed, and counted", async () => {
  const refused: string[] = [];
  let handled = 0;
  const listener = await listen({
    hostname: "127.0.0.1",
    port: 0,
    handler: () => {
      handled++;
      return new Response("ok");
    },
    onRefused: (reason) => refused.push(reason),
  });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    // 2,000 requests in one write. Before: every one was queued and answered in turn, the event
    // loop held for seconds at a time by a client that kept pipelining (SECURITY.md).
    await conn.write(
      new TextEncoder().encode("GET /v2/health HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2_000)),
    ).catch(() => {});
    const text = await readUntilClosed(conn, 20_000);
    conn.close();
    ok(responses(text) <= MAX_UNANSWERED_REQUESTS, `${responses(text)} answers`);
    ok(handled <= MAX_UNANSWERED_REQUESTS, `${handled} requests handled`);
    equal(refused[0], "pipelined");
  } finally {
    await listener.shutdown();
  }
});

/**
 * A listener on 127.0.0.1 that answers `/probe` with "probe" and any other path with `big`,
 * 16 MiB: more than the kernel takes on a loopback connection whose peer does not read (the
 * sender's buffer, at most `net.ipv4.tcp_wmem`'s 4 MiB here, and the reader's), so most of such an
 * answer stays in the process until the client reads. `handled` lists the paths in the order the
 * handler saw them; `first` resolves when the first big answer is handled.
 */
async function bigAnswers() {
  const big = new Uint8Array(16 * 1024 * 1024);
  const handled: string[] = [];
  const first = Promise.withResolvers<void>();
  const listener = await listen({
    hostname: "127.0.0.1",
    port: 0,
    handler: (request) => {
      const path = new URL(request.url).pathname;
      handled.push(path);
      if (path === "/probe") return new Response("probe");
      first.resolve();
      return new Response(big);
    },
  });
  return { listener, big, handled, first: first.promise };
}

Deno.test("listen: a pipelined request is handled once the answer before it is written out, so a connection that does not read holds one answer", async () => {
  const { listener, big, handled, first } = await bigAnswers();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  try {
    const count = 4;
    let requests = "";
    for (let i = 1; i <= count; i++) requests += `GET /big/${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
    await conn.write(new TextEncoder().encode(requests));
    await first;
    // Another connection's request answered: the pipelined ones, read in one piece before it,
    // have all reached the listener.
    const probe = await answer(
      listener.addr.port,
      "GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    ok(probe.body.includes("probe"), probe.body);
    // Before: all four were handled at once and their answers (64 MiB) queued in the process.
    equal(handled.filter((path) => path !== "/probe").join(), "/big/1");
    // Once the client reads, the others are answered, in order.
    const buffer = new Uint8Array(256 * 1024);
    let received = 0;
    const expected = count * big.byteLength;
    while (received < expected) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error(`closed after ${received} bytes`);
      received += n;
    }
    equal(handled.filter((path) => path !== "/probe").join(), "/big/1,/big/2,/big/3,/big/4");
  } finally {
    conn.close();
    await listener.shutdown();
  }
});

Deno.test("listen: pipelined requests still waiting for their turn when the connection closes are not handled", async () => {
  const { listener, handled, first } = await bigAnswers();
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await conn.write(
      new TextEncoder().encode("GET /big HTTP/1.1\r\nHost: x\r\n\r\n".repeat(4)),
    );
    await first;
    conn.close();
    for (let i = 0; i < 250 && listener.pending > 0; i++) await delay(20);
    equal(listener.pending, 0, "the connection is gone");
    // A probe on another connection: anything the closed one still had queued has run by now.
    const probe = await answer(
      listener.addr.port,
      "GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    ok(probe.status.startsWith("HTTP/1.1 200"), probe.status);
    equal(handled.join(), "/big,/probe");
  } finally {
    await listener.shutdown();
  }
});

Deno.test("isPlainHost: the remembered last host does not change the answers", () => {
  const hosts = ["localhost:3536", "example.com", "[::1]:80", "localhost:70000", "1.2.3.4:80"];
  const expected = [true, true, false, false, true];
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < hosts.length; i++) equal(isPlainHost(hosts[i]!), expected[i], hosts[i]);
    // Each host twice in a row, so a remembered one is asked again.
    for (let i = 0; i < hosts.length; i++) {
      equal(isPlainHost(hosts[i]!), expected[i]);
      equal(isPlainHost(hosts[i]!), expected[i]);
    }
  }
});

/** Sends `head` on a fresh connection and returns the status line and body of the answer. */
async function answer(port: number, head: string): Promise<{ status: string; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(head));
  const text = await readUntilClosed(conn, 10_000);
  conn.close();
  const [top = "", body = ""] = text.split("\r\n\r\n");
  return { status: top.split("\r\n")[0]!, body };
}

Deno.test("listen: the route is the request target's; a Host header that is not host[:port] is 400", async () => {
  const listener = await listen({
    hostname: "127.0.0.1",
    port: 0,
    handler: (request) => {
      const url = new URL(request.url);
      return new Response(url.pathname + url.search);
    },
    upgrade: () => undefined,
  });
  const port = listener.addr.port;
  const get = (target: string, host: string | null, version = "1.1", extra = "") =>
    answer(
      port,
      `GET ${target} HTTP/${version}\r\n${host === null ? "" : `Host: ${host}\r\n`}` +
        `${extra}Connection: close\r\n\r\n`,
    );
  try {
    // Each would otherwise have the URL parser read /admin/api/overview as the path.
    for (
      const host of [
        "127.0.0.1/admin/api/overview?",
        "play.example.com\\admin\\api\\overview?",
        "127.0.0.1:80/admin/api/overview#",
        "127.0.0.1?x",
        "user@127.0.0.1",
        "127.0.0.1%2fadmin",
        "a, b",
      ]
    ) {
      const { status, body } = await get("/v2/health?x=1", host);
      ok(status.startsWith("HTTP/1.1 400"), `${host}: ${status}`);
      ok(!body.includes("admin"), `${host}: ${body}`);
    }
    // The same refusal on an upgrade request (the fast path declines such a Host).
    const upgrade = await get(
      "/v2/health",
      "127.0.0.1/admin/api/events?",
      "1.1",
      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    );
    ok(upgrade.status.startsWith("HTTP/1.1 400"), upgrade.status);
    // Well-formed hosts, none or an empty one: the target's path and query.
    for (const host of ["127.0.0.1", "[::1]:8080", "play.example.com:443", "", null]) {
      const { status, body } = await get("/v2/health?x=1", host, host === null ? "1.0" : "1.1");
      ok(status.includes(" 200"), `${host}: ${status}`);
      // The body alone (HTTP/1.0) or as one chunk (HTTP/1.1).
      ok(body.split("\r\n").includes("/v2/health?x=1"), `${host}: ${JSON.stringify(body)}`);
    }
  } finally {
    await listener.shutdown();
  }
});

Deno.test("listen: an upgrade request answered with a stream never has it read whole; the stream is cancelled", async () => {
  // Routes that answer an upgrade request with a stream (not 101): an event stream (the operator
  // API's, SECURITY.md "Upgrade answers"), an endless body of another type and a silent one.
  // Before, the raw answer awaited `arrayBuffer()` of each: no answer, and the stream (with its
  // slot) stayed open after the client left.
  const cancelled: string[] = [];
  const stream = (name: string, chunk?: Uint8Array) =>
    new ReadableStream<Uint8Array>({
      pull(controller) {
        // The silent stream's pull never settles: it enqueues nothing and never ends.
        if (!chunk) return new Promise(() => {});
        controller.enqueue(chunk);
      },
      cancel: () => void cancelled.push(name),
    });
  const listener = await listen({
    hostname: "127.0.0.1",
    port: 0,
    handler: (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/events") {
        return new Response(stream("events", new TextEncoder().encode("data: x\n\n")), {
          headers: { "content-type": "text/event-stream" },
        });
      }
      if (path === "/endless") return new Response(stream("endless", new Uint8Array(65_536)));
      if (path === "/silent") return new Response(stream("silent"));
      return new Response("plain answer");
    },
    limits: { ...DEFAULT_PENDING_LIMITS, idleTimeoutMs: 300 },
  });
  const upgrade = async (path: string) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    try {
      await conn.write(new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      ));
      return await readUntilClosed(conn, 5_000);
    } finally {
      conn.close();
    }
  };
  const until = async (what: () => boolean) => {
    for (let i = 0; i < 100 && !what(); i++) await new Promise((r) => setTimeout(r, 20));
    return what();
  };
  try {
    const events = await upgrade("/events");
    ok(events.startsWith("HTTP/1.1 400"), events);
    ok(events.includes("event stream is not served on an upgrade request"), events);
    ok(await until(() => cancelled.includes("events")), "the event stream is cancelled");
    const endless = await upgrade("/endless");
    ok(endless.startsWith("HTTP/1.1 500"), endless.slice(0, 100));
    ok(await until(() => cancelled.includes("endless")), "the endless body is cancelled");
    // Nothing to write: the pending idle timeout closes the connection, which cancels the read.
    equal(await upgrade("/silent"), "");
    ok(await until(() => cancelled.includes("silent")), "the silent body is cancelled");
    // Other answers are written whole, as before.
    const plain = await upgrade("/plain");
    ok(plain.startsWith("HTTP/1.1 200") && plain.endsWith("\r\n\r\nplain answer"), plain);
    ok(await until(() => listener.pending === 0), `${listener.pending} connections left`);
  } finally {
    await listener.shutdown();
  }
});

Deno.test("listen: an upgrade pipelined behind requests not answered yet is refused after their answers, in order; one after them upgrades", async () => {
  let upgrades = 0;
  const listener = await listen({
    hostname: "127.0.0.1",
    port: 0,
    // Answers that take a while, so the upgrade request is read before they are written.
    handler: async (request) => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      return new Response(new URL(request.url).pathname);
    },
    upgrade: (request) => {
      upgrades++;
      const upgrade = takeUpgradeSocket(request);
      upgrade?.socket.write("HTTP/1.1 101 Switching Protocols\r\n\r\n");
      if (upgrade) taken.push(upgrade.socket);
      return switchingProtocols();
    },
  });
  const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
  const upgrade = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  const statuses = (text: string) => text.match(/HTTP\/1\.1 \d{3}/g) ?? [];
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await conn.write(new TextEncoder().encode(get("/a") + get("/b") + upgrade));
    const text = await readUntilClosed(conn, 10_000);
    conn.close();
    // Before: 101, then the two answers inside what the client took for the WebSocket stream.
    equal(statuses(text).join(), "HTTP/1.1 200,HTTP/1.1 200,HTTP/1.1 400", text);
    ok(text.indexOf("/a") < text.indexOf("/b"), text);
    ok(text.includes("must not be pipelined"), text);
    equal(upgrades, 0, "the route never saw it");

    // Once the answers are read, an upgrade on the same keep-alive connection is served.
    const keepAlive = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await keepAlive.write(new TextEncoder().encode(get("/a")));
    const buffer = new Uint8Array(4096);
    const n = await keepAlive.read(buffer);
    ok(new TextDecoder().decode(buffer.subarray(0, n ?? 0)).startsWith("HTTP/1.1 200"));
    await keepAlive.write(new TextEncoder().encode(upgrade));
    const m = await keepAlive.read(buffer);
    ok(new TextDecoder().decode(buffer.subarray(0, m ?? 0)).startsWith("HTTP/1.1 101"));
    equal(upgrades, 1);
    keepAlive.close();
  } finally {
    for (const socket of taken.splice(0)) socket.destroy();
    await listener.shutdown();
  }
});

/**
 * Makes every accepted socket report an IPv6 peer address of its own in 2001:db8:1:2::/64 (a
 * host rotating through its /64; loopback has one IPv6 address), told apart by the client's
 * port. Returns the undo and the addresses handed out.
 */
function rotatingIpv6Peers(): { restore: () => void; addresses: Map<number, string> } {
  const proto = net.Socket.prototype as unknown as {
    _getpeername(): { address?: string; port?: number; family?: string };
  };
  const real = proto._getpeername;
  const addresses = new Map<number, string>();
  proto._getpeername = function (this: unknown) {
    const peer = real.call(this);
    const port = peer.port ?? 0;
    if (!addresses.has(port)) {
      addresses.set(port, `2001:db8:1:2::${(addresses.size + 1).toString(16)}`);
    }
    return { ...peer, address: addresses.get(port), family: "IPv6" };
  };
  return { restore: () => proto._getpeername = real, addresses };
}

/**
 * Opens ten connections, each seen as its own address of 2001:db8:1:2::/64, to a listener with a
 * per-address pending cap of 4 (and `ipv6PrefixLength` when given); resolves, once every one is
 * pending or refused, with how many are pending, the refusals' reasons and the addresses seen.
 */
async function tenIpv6Peers(
  ipv6PrefixLength?: number,
): Promise<{ pending: number; refused: string[]; addresses: number }> {
  const peers = rotatingIpv6Peers();
  const refused: string[] = [];
  const listener = await listen({
    hostname: "127.0.0.1",
    port: 0,
    handler: () => new Response("ok"),
    limits: {
      ...DEFAULT_PENDING_LIMITS,
      maxPendingPerIp: 4,
      headerTimeoutMs: 60_000,
      idleTimeoutMs: 60_000,
      ...(ipv6PrefixLength === undefined ? {} : { ipv6PrefixLength }),
    },
    onRefused: (reason) => refused.push(reason),
  });
  const conns: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 10; i++) {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }));
    }
    for (
      let waited = 0;
      listener.pending + refused.length < 10 && waited < 5_000;
      waited += 20
    ) await delay(20);
    return { pending: listener.pending, refused, addresses: peers.addresses.size };
  } finally {
    peers.restore();
    for (const conn of conns) conn.close();
    await listener.shutdown();
  }
}

Deno.test("listen: the per-address pending cap counts an IPv6 peer by its network of ipv6PrefixLength bits", async () => {
  const { pending, refused, addresses } = await tenIpv6Peers();
  // Before: each address had its own 4, so all 10 stayed pending (a /64 could take the whole
  // `max_pending_connections` budget from 32 of its addresses).
  equal(pending, 4);
  equal(refused.length, 6);
  ok(refused.every((reason) => reason === "pending_per_ip"), refused.join());
  ok(addresses >= 10, `${addresses} addresses`);
});

Deno.test("listen: ipv6PrefixLength 128 counts each IPv6 peer address on its own", async () => {
  const { pending, refused } = await tenIpv6Peers(128);
  equal(pending, 10);
  equal(refused.length, 0);
});

/**
 * Sends `head`, then `piece` of body every 100 ms until the server closes the connection;
 * resolves with how long that took, ms, or `boundMs` when it did not close by then.
 */
async function trickleBody(
  port: number,
  head: string,
  boundMs: number,
  piece = " ",
): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const started = Date.now();
  let closed = false;
  const reading = (async () => {
    const buffer = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
    }
    closed = true;
  })();
  try {
    await conn.write(new TextEncoder().encode(head));
    while (!closed && Date.now() - started < boundMs) {
      await delay(100);
      if (closed) break;
      await conn.write(new TextEncoder().encode(piece)).catch(() => closed = true);
    }
    return closed ? Date.now() - started : boundMs;
  } finally {
    conn.close();
    await reading;
  }
}

Deno.test("listen: a request body must arrive within the header timeout, whether the route reads it or not", async () => {
  let bodies = 0;
  const listener = await listen({
    hostname: "127.0.0.1",
    port: 0,
    handler: async (request) => {
      // `/read` reads the body like the operator API's PUT (capped there); the rest ignore it.
      if (new URL(request.url).pathname === "/read") {
        if (await request.arrayBuffer().then(() => true, () => false)) bodies++;
      }
      return new Response("ok");
    },
    // The idle timeout is far beyond the bound: the trickle is traffic, so only a deadline on the
    // request itself can end it.
    limits: { ...DEFAULT_PENDING_LIMITS, headerTimeoutMs: 500, idleTimeoutMs: 60_000 },
  });
  try {
    const head = (path: string, framing: string) =>
      `POST ${path} HTTP/1.1\r\nHost: x\r\n${framing}\r\n\r\n`;
    const lengths = await Promise.all([
      trickleBody(listener.addr.port, head("/ignore", "Content-Length: 100000"), 6_000),
      trickleBody(listener.addr.port, head("/read", "Content-Length: 100000"), 6_000),
      trickleBody(
        listener.addr.port,
        head("/ignore", "Transfer-Encoding: chunked"),
        6_000,
        "1\r\na\r\n",
      ),
    ]);
    // Before: all three were open when the bound came (a byte every 100 ms kept them forever).
    for (const ms of lengths) ok(ms < 3_000, `closed after ${lengths.join(", ")} ms`);
    equal(bodies, 0);
    // A body that comes whole in time is served, on a connection that stays open.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    await conn.write(
      new TextEncoder().encode(
        head("/read", "Content-Length: 5").replace("\r\n\r\n", "\r\n\r\nhello"),
      ),
    );
    const buffer = new Uint8Array(4096);
    const n = await conn.read(buffer);
    ok(new TextDecoder().decode(buffer.subarray(0, n ?? 0)).startsWith("HTTP/1.1 200"));
    await delay(1_000);
    await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    const m = await conn.read(buffer);
    ok(new TextDecoder().decode(buffer.subarray(0, m ?? 0)).startsWith("HTTP/1.1 200"));
    conn.close();
    equal(bodies, 1);
  } finally {
    await listener.shutdown();
  }
});
