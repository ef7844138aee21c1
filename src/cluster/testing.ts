/**
 * Test support: a cluster of N nodes in one process (Engine + Edge + ClusterNode each) over the
 * in-memory bus and store twins (docs/spec/SERVER.md §8.9), and recording clients. No sockets; the bus
 * delivers in microtasks, so tests await {@linkcode settle}.
 *
 * @module
 */
import { Engine, type EngineOptions } from "../engine/engine.ts";
import { testOptions } from "../engine/testing.ts";
import { Edge, type EdgeEvent } from "../transport/edge.ts";
import type { SendFailure } from "../transport/peer.ts";
import { MemoryNetwork } from "./memory_bus.ts";
import { MemoryStore } from "./memory_store.ts";
import { ClusterNode } from "./node.ts";
import { clusterResolver, Staging } from "./resolve.ts";
import type { StoreSettings } from "./types.ts";

/** A client: what it received (parsed), how it was closed. */
export class TestClient {
  readonly messages: { type: string; data?: Record<string, unknown> }[] = [];
  closed: number | undefined;
  id = "";
  node!: TestNode;

  send(frame: string | Uint8Array): SendFailure | undefined {
    if (this.closed !== undefined) return { reason: "closed" };
    this.messages.push(typeof frame === "string" ? JSON.parse(frame) : { type: "binary" });
    return undefined;
  }

  close(code: number): void {
    this.closed ??= code;
  }

  /** Sends a client message through its edge. */
  say(message: unknown): void {
    this.node.edge.receive(this.id, JSON.stringify(message), Date.now());
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

/** One node of a test cluster. */
export interface TestNode {
  name: string;
  engine: Engine;
  edge: Edge;
  cluster: ClusterNode;
  /** Connects a new client through this node. */
  connect(ip?: string): TestClient;
}

/** Settings of {@linkcode testCluster}. */
export interface TestClusterOptions {
  nodes?: number;
  engine?: Partial<EngineOptions>;
  store?: Partial<StoreSettings>;
  forwardTimeoutMs?: number;
  heartbeatMs?: number;
  ttlMs?: number;
  /** Start with the grace window over (a cluster that has been running). @default true */
  pastGrace?: boolean;
  /** The nodes' clock (streams, heartbeats, verdicts), ms. @default Date.now */
  now?: () => number;
}

/** A started test cluster; `close()` stops everything. */
export interface TestCluster {
  network: MemoryNetwork;
  store: MemoryStore;
  nodes: TestNode[];
  events: EdgeEvent[];
  close(): Promise<void>;
}

/** Lets the bus and the store's promises run (a few macrotask turns). */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setTimeout(resolve, 0));
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
    prefix: "",
    ttlMs,
    reconnectionWindowMs: 300_000,
    buckets: {
      creation: { capacity: 1000, windowMs: 60_000 },
      join: { capacity: 1000, windowMs: 60_000 },
    },
    timeoutMs: 1_000,
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
  let codes = 0;
  for (let i = 0; i < (options.nodes ?? 3); i++) {
    const name = `node${i}@0000000${i}`;
    const staging = new Staging(
      () => crypto.randomUUID(),
      () => `C${String(++codes).padStart(5, "0")}`,
    );
    const holder: { cluster?: ClusterNode } = {};
    const engine: Engine = new Engine(testOptions({
      enableReconnection: true,
      ...options.engine,
      newId: staging.roomId,
      newRoomCode: staging.roomCode,
      rateLimits: undefined,
      takeoverTruncated: (conn) => holder.cluster?.router.takeoverTruncated(conn) ?? false,
    }));
    const cluster = holder.cluster = new ClusterNode({
      store,
      bus: network.bus(name),
      ttlMs,
      heartbeatMs: options.heartbeatMs ?? 1_000,
      forwardTimeoutMs: options.forwardTimeoutMs ?? 2_000,
      entries: () => engine.directoryEntries(),
      ...(options.now ? { now: options.now } : {}),
    });
    const engineSettings = testOptions(options.engine);
    const edge = new Edge(engine, {
      maxMessageSize: 65_536,
      newId: () => crypto.randomUUID(),
      onEvent: (event) => events.push(event),
      node: name,
      router: cluster.router,
      forwardTimeoutMs: options.forwardTimeoutMs ?? 2_000,
      directory: store,
      resolver: clusterResolver({
        node: name,
        engine,
        store,
        staging,
        maxRoomsPerGame: engineSettings.maxRoomsPerGame,
        roomCodeLength: engineSettings.roomCodeLength,
        maxGameNameLength: engineSettings.maxGameNameLength,
        nameRules: engineSettings.nameRules,
        appMaxRooms: () => undefined,
        inGrace: (now) => cluster.inGrace(now),
        isDead: (home) => cluster.isDead(home),
        conflicted: (gameName, roomCode) => cluster.isConflicted(gameName, roomCode),
      }),
    });
    await cluster.start();
    const node: TestNode = {
      name,
      engine,
      edge,
      cluster,
      connect: (ip = "10.0.0.1") => {
        const client = new TestClient();
        client.node = node;
        client.id = edge.connect(client, { ip }, Date.now());
        return client;
      },
    };
    nodes.push(node);
  }
  return {
    network,
    store,
    nodes,
    events,
    close: async () => {
      for (const node of nodes) {
        node.edge.command({ kind: "close_all", code: 1001, reason: "Test over" }, Date.now());
        await node.cluster.stop();
      }
      network.close();
    },
  };
}
