/**
 * Test support: a cluster of N nodes in one process (Engine + Edge + ClusterNode each) over the
 * in-memory bus and store twins (docs/spec/SERVER.md §8.9), or over a real Redis
 * ({@linkcode redisTestCluster}), and recording clients. No sockets; the bus
 * delivers in microtasks, so tests await {@linkcode settle}.
 *
 * @module
 */
import { decode } from "@msgpack/msgpack";
import { createHmac } from "node:crypto";
import { canonicalJson, TOKEN_BINDING_SCHEME } from "../transport/token_binding.ts";
import { Engine, type EngineOptions } from "../engine/engine.ts";
import { testOptions } from "../engine/testing.ts";
import { RateLimits } from "../engine/rate_limits.ts";
import { Edge, type EdgeEvent } from "../transport/edge.ts";
import { appRoomScope, type RoomRoutes, roomRoutes } from "../http/rooms.ts";
import { MemoryTokenBuckets } from "../coordination/memory.ts";
import type { TokenBuckets } from "../coordination/buckets.ts";
import type { SendFailure } from "../transport/peer.ts";
import { MemoryNetwork } from "./memory_bus.ts";
import { MemoryStore } from "./memory_store.ts";
import { ClusterNode } from "./node.ts";
import { clusterResolver, Staging } from "./resolve.ts";
import type { ClusterBus, ClusterStore, StoreSettings } from "./types.ts";
import type { DirectoryRecord } from "../coordination/directory.ts";
import { RedisBus } from "./bus.ts";
import { RedisLink, RedisStore } from "./store.ts";

/**
 * A binary frame as the test client records it: a MessagePack game-data envelope
 * (docs/spec/PROTOCOL.md §7.7) as `{type: "binary", data: {from_player, encoding, payload}}`
 * with the sender's UUID as text and the payload in hex, anything else as its hex bytes.
 */
function binaryMessage(frame: Uint8Array): { type: string; data: Record<string, unknown> } {
  const hex = (bytes: Uint8Array) =>
    Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  try {
    const map = decode(frame) as Record<string, unknown>;
    const from = map.from_player as Uint8Array;
    const h = hex(from);
    const uuid = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${
      h.slice(20)
    }`;
    return {
      type: "binary",
      data: { from_player: uuid, encoding: map.encoding, payload: hex(map.payload as Uint8Array) },
    };
  } catch {
    return { type: "binary", data: { bytes: hex(frame) } };
  }
}

/** The `Reconnect` for the seat of a `RoomJoined`'s (or `Reconnected`'s) `data`. */
export function reconnectFor(
  seat: Record<string, unknown>,
): { type: "Reconnect"; data: Record<string, unknown> } {
  return {
    type: "Reconnect",
    data: {
      player_id: seat.player_id,
      room_id: seat.room_id,
      auth_token: seat.reconnection_token,
    },
  };
}

/**
 * `text` as a client bound by `secret` sends it (docs/spec/PROTOCOL.md Appendix A): canonical
 * JSON with a `token_binding` member holding the HMAC-SHA256 signature; `text` unchanged without
 * a secret.
 */
function signed(text: string, secret: Uint8Array | undefined): string {
  if (secret === undefined) return text;
  const canonical = canonicalJson(text);
  const signature = createHmac("sha256", secret).update(canonical, "utf8").digest("base64");
  const proof = `"token_binding":{"scheme":"${TOKEN_BINDING_SCHEME}","signature":"${signature}"}`;
  return canonical === "{}" ? `{${proof}}` : `${canonical.slice(0, -1)},${proof}}`;
}

/** Messages received by every {@linkcode TestClient} of the process so far. */
let arrivals = 0;

/**
 * How many messages every {@linkcode TestClient} of the process has received so far: a point in
 * the order of {@linkcode TestClient.arrivals}.
 */
export function arrivalsSoFar(): number {
  return arrivals;
}

/** What a torn-down connection answers every later send (as `SocketPeer` does). */
const CLOSED: SendFailure = Object.freeze({ reason: "closed" });

/**
 * A client: what it received (parsed), how it was closed. Its outbound side models the real
 * transport's (`SocketPeer`, src/transport/websocket.ts; docs/spec/SERVER.md §5.2): a client that
 * reads takes every frame at once; one {@linkcode pause}d lets frames wait in a queue of at most
 * `queueLimit` frames (the budget in frames rather than bytes), and the send that finds the queue
 * full is an overflow that discards the whole queue, reported as `dropped` = the frames waiting
 * plus that one. The connection stays open (later sends are taken again) until the server closes
 * it; from then on every send is refused as `closed`. Frames waiting when the server closes it
 * are written before the close frame, so the client gets them, then the close, once it
 * {@linkcode resume}s.
 */
export class TestClient {
  readonly messages: { type: string; data?: Record<string, unknown> }[] = [];
  /**
   * Per message of {@linkcode messages}, its place among the messages every client of the
   * process received (1-based): the order of messages on different connections.
   */
  readonly arrivals: number[] = [];
  /** The close code the client saw (after every frame written before it). */
  closed: number | undefined;
  id = "";
  node!: ScriptNode;

  /**
   * When true, every frame is refused as an outbound-buffer overflow of that frame alone (a
   * reader stalled with nothing queued: the budget is already spent outside the queue).
   */
  stalled = false;

  /**
   * Frames the server had handed over and lost to overflows (each overflow's `dropped`, summed);
   * 0 when none.
   */
  lost = 0;
  /** How many {@linkcode messages} the client had when it first lost frames; undefined if never. */
  lostAt: number | undefined;
  /** {@linkcode arrivalsSoFar} when it first lost frames: its place in the order of arrivals. */
  lostArrival: number | undefined;
  /**
   * Sends made to the connection after it lost frames and before the server closed it: each one
   * is a frame the client may get after a gap without being told (docs/spec/SERVER.md §5.2: a slow
   * consumer is closed with 1013 at once). 0 when the server closed it at once.
   */
  sentAfterLoss = 0;

  /** Frames waiting while the client does not read, oldest first. */
  readonly #queue: (string | Uint8Array)[] = [];
  /** The queue's budget in frames while paused; `Infinity` while reading. */
  #queueLimit = Infinity;
  #reading = true;
  /** The code the server closed with while frames still waited (the close frame behind them). */
  #closing: number | undefined;

  /**
   * The session secret when the connection negotiated token binding: {@linkcode say} then signs
   * every message as a bound client does (docs/spec/PROTOCOL.md Appendix A).
   */
  secret: Uint8Array | undefined;

  /** Whether the client reads its connection (not {@linkcode pause}d). */
  get reading(): boolean {
    return this.#reading;
  }

  /** Frames waiting in the queue now. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Stops reading: from now on frames wait in a queue of at most `queueLimit` frames (≥ 1), and
   * the send that finds it full overflows (see the class notes).
   */
  pause(queueLimit: number): void {
    this.#reading = false;
    this.#queueLimit = Math.max(1, queueLimit);
  }

  /** Reads again: every waiting frame arrives in order, then the close the server sent, if any. */
  resume(): void {
    this.#reading = true;
    this.#queueLimit = Infinity;
    for (const frame of this.#queue.splice(0)) this.#receive(frame);
    if (this.#closing !== undefined) this.closed ??= this.#closing;
  }

  send(frame: string | Uint8Array): SendFailure | undefined {
    if (this.closed !== undefined || this.#closing !== undefined) return CLOSED;
    if (this.lostAt !== undefined) this.sentAfterLoss++;
    if (this.stalled) return this.#overflow(1);
    if (this.#reading) {
      this.#receive(frame);
      return undefined;
    }
    if (this.#queue.length >= this.#queueLimit) {
      const dropped = this.#queue.length + 1;
      this.#queue.length = 0;
      return this.#overflow(dropped);
    }
    this.#queue.push(frame);
    return undefined;
  }

  /** Records `dropped` frames lost to an overflow, and says so as the transport does. */
  #overflow(dropped: number): SendFailure {
    this.lost += dropped;
    this.lostAt ??= this.messages.length;
    this.lostArrival ??= arrivals;
    return { reason: "overflow", dropped };
  }

  #receive(frame: string | Uint8Array): void {
    this.messages.push(typeof frame === "string" ? JSON.parse(frame) : binaryMessage(frame));
    this.arrivals.push(++arrivals);
  }

  close(code: number): void {
    if (this.#queue.length === 0) this.closed ??= code;
    else this.#closing ??= code;
  }

  /** Sends a client message through its edge (with its token-binding proof when bound). */
  say(message: unknown): void {
    this.node.edge.receive(this.id, signed(JSON.stringify(message), this.secret), Date.now());
  }

  /** Message types received, in order. */
  types(): string[] {
    return this.messages.map((m) => m.type);
  }

  /** The last message of `type`. */
  last(type: string): { type: string; data?: Record<string, unknown> } | undefined {
    return this.messages.findLast((m) => m.type === type);
  }
}

/** What a test client needs of its server: the edge it speaks to, and how to connect another. */
export interface ScriptNode {
  edge: Edge;
  /**
   * Connects a new client through this node from `ip`; with `secret` (16 bytes) the connection
   * negotiated token binding and the client signs what it says (docs/spec/PROTOCOL.md Appendix A).
   */
  connect(ip?: string, secret?: Uint8Array): TestClient;
  /**
   * The node's HTTP room lookup and listing (docs/spec/SERVER.md §1.10, listing enabled) over its
   * directory, drawing from the same join buckets as its edge, as `server.ts` wires them.
   */
  rooms: RoomRoutes;
  /**
   * Maintenance mode on or off as the operator API sets it through this node
   * (docs/spec/EXTENSIONS.md E12): the engine's flag, or in a cluster the shared key.
   */
  setMaintenance(enabled: boolean): Promise<void>;
}

/**
 * A single-instance server as `main.ts` runs it without `cluster.redis_url`: one engine and its
 * edge, no resolver, router or store (the engine checks caps and buckets itself: pass
 * `engine.rateLimits` for buckets), with the same test engine settings as
 * {@linkcode testCluster}'s nodes. For the differential's comparisons.
 */
export function singleInstance(engine: Partial<EngineOptions> = {}): ScriptNode {
  const counters = { codes: 0, tokens: 0 };
  const rateLimits = engine.rateLimits;
  const edge = new Edge(
    new Engine(testOptions({
      enableReconnection: true,
      ...engine,
      newId: () => crypto.randomUUID(),
      newRoomCode: () => `C${String(++counters.codes).padStart(5, "0")}`,
      newToken: () => `token-${++counters.tokens}`.padEnd(43, "x"),
      // The engine's own buckets when given (a single instance takes its tokens itself).
      rateLimits: engine.rateLimits,
    })),
    { maxMessageSize: 65_536, newId: () => crypto.randomUUID() },
  );
  return withConnect(
    {
      edge,
      setMaintenance: (enabled: boolean) => {
        edge.command({ kind: "maintenance", enabled }, Date.now());
        return Promise.resolve();
      },
    },
    engine,
    rateLimits && new MemoryTokenBuckets(rateLimits),
  );
}

/**
 * `node` with `connect` (a new recording client through its edge, client IP `ip`) and `rooms`
 * (its HTTP room routes for engine `settings` — app namespaces when authentication is required —
 * drawing join tokens from `buckets` when given).
 */
function withConnect<N extends { edge: Edge; setMaintenance(enabled: boolean): Promise<void> }>(
  node: N,
  settings: Partial<EngineOptions>,
  buckets?: TokenBuckets,
  cluster?: { inGrace: (now: number) => boolean; reachable: () => boolean },
): N & ScriptNode {
  const full = node as N & ScriptNode;
  const scope = appRoomScope(settings.auth);
  full.rooms = roomRoutes({
    directory: node.edge.directory,
    ...(buckets ? { buckets } : {}),
    ...(scope ? { scope } : {}),
    ...(cluster ?? {}),
    publicRoomListing: true,
    roomCodeLength: 6,
    maxGameNameLength: 64,
  });
  full.connect = (ip = "10.0.0.1", secret?: Uint8Array) => {
    const client = new TestClient();
    client.node = full;
    client.secret = secret;
    const tokenBinding = secret && { secret, requireFingerprint: false };
    client.id = full.edge.connect(
      client,
      { ip, ...(tokenBinding ? { tokenBinding } : {}) },
      Date.now(),
    );
    return client;
  };
  return full;
}

/** One node of a test cluster. */
export interface TestNode extends ScriptNode {
  name: string;
  engine: Engine;
  cluster: ClusterNode;
}

/** Settings of {@linkcode testCluster}. */
export interface TestClusterOptions {
  nodes?: number;
  engine?: Partial<EngineOptions>;
  store?: Partial<StoreSettings>;
  forwardTimeoutMs?: number;
  heartbeatMs?: number;
  /** `cluster.envelope_window_ms`. @default 0 (the configuration's default) */
  envelopeWindowMs?: number;
  ttlMs?: number;
  /** Start with the grace window over (a cluster that has been running). @default true */
  pastGrace?: boolean;
  /** The nodes' clock (streams, heartbeats, verdicts), ms. @default Date.now */
  now?: () => number;
  /**
   * Wire `Authenticate` as server.ts does in cluster mode: the failed-attempt budget per address
   * and each app's `rate_limit_per_minute` bucket are taken from the shared store
   * (docs/spec/SERVER.md §3.3, §8.3). @default false (each engine's own app buckets, no failure budget)
   */
  globalAuthBudgets?: boolean;
}

/** A started test cluster; `close()` stops everything. */
export interface TestCluster {
  network: MemoryNetwork;
  store: MemoryStore;
  nodes: TestNode[];
  events: EdgeEvent[];
  close(): Promise<void>;
}

/** The three nodes of a default {@linkcode testCluster}, as a tuple. */
export function threeNodes(cluster: { nodes: TestNode[] }): [TestNode, TestNode, TestNode] {
  return cluster.nodes as [TestNode, TestNode, TestNode];
}

/**
 * Makes `network` drop the next envelope from node `from` to node `to` and deliver every other one
 * (a lost publish: the receiver finds the gap at the next envelope, docs/spec/SERVER.md §8.5.1).
 * Replaces any fault set before. Returns whether that envelope has been dropped yet.
 */
export function dropNextEnvelope(network: MemoryNetwork, from: string, to: string): () => boolean {
  let dropped = false;
  network.fault = (source, target) => {
    if (dropped || source !== from || target !== to) return "deliver";
    dropped = true;
    return "drop";
  };
  return () => dropped;
}

/** Lets the bus and the store's promises run (a few macrotask turns). */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** `client` asks to join room `code` of game `orbit` as `name` (creates it when absent). */
export function join(client: TestClient, name: string, code?: string, maxPlayers = 4): void {
  client.say({
    type: "JoinRoom",
    data: {
      game_name: "orbit",
      player_name: name,
      max_players: maxPlayers,
      ...(code ? { room_code: code } : {}),
    },
  });
}

/**
 * GETs `path` (a room lookup or listing, docs/spec/EXTENSIONS.md E5, E6, e.g.
 * `/v2/rooms/orbit/ABC123`) from `node`'s room routes as client 10.0.0.9: the answer's status and
 * its parsed JSON body.
 */
export async function getRooms(
  node: ScriptNode,
  path: string,
  // deno-lint-ignore no-explicit-any
): Promise<{ status: number; body: any }> {
  const url = new URL(`http://signal-fish.test${path}`);
  const response = await node.rooms(new Request(url), url.pathname, "10.0.0.9")!;
  return { status: response.status, body: await response.json() };
}

/** A client connected through `node` that joined (or created) room `code`, its RoomJoined in. */
export async function joined(
  node: ScriptNode,
  name: string,
  code: string,
  maxPlayers = 4,
): Promise<TestClient> {
  const client = node.connect();
  join(client, name, code, maxPlayers);
  await until(() => client.last("RoomJoined") !== undefined, `${name}'s RoomJoined`);
  return client;
}

/** Polls `check` every 5 ms until true; throws after 5 s naming `what`. */
export async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Starts `options.nodes` (3) nodes sharing one in-memory store and network. */
export async function testCluster(options: TestClusterOptions = {}): Promise<TestCluster> {
  const ttlMs = options.ttlMs ?? 30_000;
  let clock = Date.now();
  // The store's clock may run ahead so the epoch's grace window is over.
  const store = new MemoryStore({
    ...storeSettings(ttlMs, ""),
    now: () => Date.now() + clock,
    ...options.store,
  });
  clock = 0;
  if (options.pastGrace ?? true) {
    // Create the epoch "long ago": no grace window.
    clock = -2 * ttlMs;
    await store.epoch();
    clock = 0;
  }
  const network = new MemoryNetwork();
  const events: EdgeEvent[] = [];
  const nodes: TestNode[] = [];
  const counters = { codes: 0, tokens: 0 };
  for (let i = 0; i < (options.nodes ?? 3); i++) {
    const name = `node${i}@0000000${i}`;
    const bus = network.bus(name, options.forwardTimeoutMs ?? 2_000);
    nodes.push(await startNode(name, store, bus, options, events, counters));
  }
  return {
    network,
    store,
    nodes,
    events,
    close: async () => {
      await closeNodes(nodes);
      network.close();
    },
  };
}

/** A test cluster on a real Redis (no twins): its nodes, their events, `close()`. */
export interface RedisTestCluster {
  nodes: TestNode[];
  events: EdgeEvent[];
  close(): Promise<void>;
}

/**
 * Starts `options.nodes` (3) nodes in this process on the Redis server at `url`, each with its
 * own two connections, store and bus as `open.ts` builds them (docs/spec/SERVER.md §8.9), under
 * a fresh key prefix, with the epoch written long ago (no grace window). `store` and `pastGrace`
 * options do not apply.
 */
export async function redisTestCluster(
  url: string,
  options: TestClusterOptions = {},
): Promise<RedisTestCluster> {
  const ttlMs = options.ttlMs ?? 30_000;
  const prefix = `test-${crypto.randomUUID().slice(0, 8)}:`;
  const events: EdgeEvent[] = [];
  const nodes: TestNode[] = [];
  const links: RedisLink[] = [];
  const counters = { codes: 0, tokens: 0 };
  try {
    for (let i = 0; i < (options.nodes ?? 3); i++) {
      const name = `node${i}@0000000${i}`;
      const holder: { node?: ClusterNode } = {};
      const link = new RedisLink({ url, onState: (state) => holder.node?.linkState(state) });
      links.push(link);
      await link.connect();
      if (i === 0) {
        const epoch = { id: crypto.randomUUID(), createdAt: Date.now() - 2 * ttlMs };
        await link.command.sendCommand(["SET", `${prefix}epoch`, JSON.stringify(epoch)]);
      }
      const store = new RedisStore(link, storeSettings(ttlMs, prefix));
      const node = await startNode(
        name,
        store,
        new RedisBus(link, name, prefix, options.forwardTimeoutMs ?? 2_000),
        options,
        events,
        counters,
      );
      holder.node = node.cluster;
      nodes.push(node);
    }
  } catch (error) {
    await closeNodes(nodes);
    for (const link of links) await link.close();
    throw error;
  }
  return {
    nodes,
    events,
    close: async () => {
      await closeNodes(nodes);
      for (const link of links) await link.close();
    },
  };
}

/** Store settings of the test nodes: TTL `ttlMs`, keys under `prefix`, buckets of 1,000 a minute. */
export function storeSettings(ttlMs: number, prefix: string): StoreSettings {
  return {
    prefix,
    ttlMs,
    reconnectionWindowMs: 300_000,
    buckets: {
      creation: { capacity: 1000, windowMs: 60_000 },
      join: { capacity: 1000, windowMs: 60_000 },
      reconnect: { capacity: 1000, windowMs: 60_000 },
      auth_failure: { capacity: 1000, windowMs: 60_000 },
    },
    timeoutMs: 1_000,
  };
}

async function closeNodes(nodes: TestNode[]): Promise<void> {
  for (const node of nodes) {
    node.edge.command({ kind: "close_all", code: 1001, reason: "Test over" }, Date.now());
    await node.cluster.stop();
  }
}

/** Builds one node (Engine + Edge + ClusterNode) on `store` and `bus` and starts it. */
async function startNode(
  name: string,
  store: ClusterStore,
  bus: ClusterBus,
  options: TestClusterOptions,
  events: EdgeEvent[],
  counters: { codes: number; tokens: number },
): Promise<TestNode> {
  const ttlMs = options.ttlMs ?? 30_000;
  const staging = new Staging(
    () => crypto.randomUUID(),
    () => `C${String(++counters.codes).padStart(5, "0")}`,
  );
  const holder: { cluster?: ClusterNode } = {};
  const authLimits = options.globalAuthBudgets
    ? new RateLimits({
      maxRoomCreations: 1,
      maxJoinAttempts: 1,
      windowMs: 60_000,
      roomTokensElsewhere: true,
      authFailuresElsewhere: true,
    })
    : undefined;
  const engine: Engine = new Engine(testOptions({
    enableReconnection: true,
    ...options.engine,
    newId: staging.roomId,
    newRoomCode: staging.roomCode,
    // Numbered across the cluster's nodes (as random tokens would be distinct), so one and
    // three nodes mint the same sequence (the differential compares them).
    newToken: () => `token-${++counters.tokens}`.padEnd(43, "x"),
    rateLimits: authLimits,
    takeoverTruncated: (conn) => holder.cluster?.router.takeoverTruncated(conn) ?? false,
  }));
  const cluster = holder.cluster = new ClusterNode({
    store,
    bus,
    ttlMs,
    heartbeatMs: options.heartbeatMs ?? 1_000,
    envelopeWindowMs: options.envelopeWindowMs ?? 0,
    forwardTimeoutMs: options.forwardTimeoutMs ?? 2_000,
    entries: () => engine.directoryEntries(),
    ...(options.now ? { now: options.now } : {}),
  });
  // The engine's settings as above (reconnection on unless the test turns it off).
  const engineSettings = testOptions({ enableReconnection: true, ...options.engine });
  const edge = new Edge(engine, {
    maxMessageSize: 65_536,
    newId: () => crypto.randomUUID(),
    onEvent: (event) => events.push(event),
    node: name,
    router: cluster.router,
    forwardTimeoutMs: options.forwardTimeoutMs ?? 2_000,
    directory: store,
    ...(authLimits
      ? {
        authFailures: {
          buckets: store,
          limits: authLimits,
          appTokens: (appId: string, perMinute: number, now: number) =>
            store.takeAppToken(appId, perMinute, now),
        },
      }
      : {}),
    resolver: clusterResolver({
      node: name,
      engine,
      store,
      staging,
      maxRoomsPerGame: engineSettings.maxRoomsPerGame,
      maxRoomsPerIp: engineSettings.maxRoomsPerIp ?? 0,
      enableReconnection: engineSettings.enableReconnection,
      roomCodeLength: engineSettings.roomCodeLength,
      maxGameNameLength: engineSettings.maxGameNameLength,
      nameRules: engineSettings.nameRules,
      appMaxRooms: () => undefined,
      inGrace: (now) => cluster.inGrace(now),
      isDead: (home) => cluster.isDead(home),
      conflicted: (gameName, roomCode) => cluster.isConflicted(gameName, roomCode),
    }),
  });
  // As server.ts: the node's own figures go with its liveness key.
  cluster.counts = () => {
    const stats = engine.stats();
    return {
      connections: edge.size,
      rooms: stats.rooms,
      players: stats.players,
      spectators: stats.spectators,
    };
  };
  cluster.gameCounts = () => engine.gameCounts();
  await cluster.start();
  const setMaintenance = (enabled: boolean) => cluster.setMaintenance(enabled);
  return withConnect({ name, engine, edge, cluster, setMaintenance }, options.engine ?? {}, store, {
    inGrace: (now) => cluster.inGrace(now),
    reachable: () => store.reachable,
  });
}

/**
 * A directory record for store tests (docs/spec/SERVER.md §8.3 `room:` entries): room `id-<code>`
 * of game `orbit`, code `code`, homed on `home`, one player of 4 waiting, created at Unix ms 1;
 * `overrides` replace any field.
 */
export function testRecord(
  code: string,
  home = "a@00000001",
  overrides: Partial<DirectoryRecord> = {},
): DirectoryRecord {
  return {
    roomId: `id-${code}`,
    gameName: "orbit",
    roomCode: code,
    createdAt: 1,
    home,
    summary: {
      room_code: code,
      game_name: "orbit",
      players: 1,
      max_players: 4,
      spectators: 0,
      lobby_state: "waiting",
      supports_authority: true,
      relay_type: "matchbox",
      authority_handover: false,
    },
    ...overrides,
  };
}
