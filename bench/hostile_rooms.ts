/**
 * Before/after figures for the room-side attacks of issue 14 (items 4–8, 12): runs each attack
 * against a server started from a worktree, interleaved (base, ours, base, ours), and prints
 * one JSON line per run. Loopback only, bounded in connections and time.
 *
 *   deno run -A bench/hostile_rooms.ts /work/wt-base /work/wt-hostile [rounds=2]
 *
 * @module
 */

type Env = Record<string, string>;

const COMMON: Env = {
  SIGNAL_FISH_SECURITY__MAX_CONNECTIONS_PER_IP: "100000",
  SIGNAL_FISH_SECURITY__TRUSTED_PROXIES: "127.0.0.0/8",
  SIGNAL_FISH_RATE_LIMIT__MAX_ROOM_CREATIONS: "1000000",
  SIGNAL_FISH_RATE_LIMIT__MAX_JOIN_ATTEMPTS: "1000000",
  SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING: "false",
  SIGNAL_FISH_LOGGING__LEVEL: "error",
};

interface Server extends AsyncDisposable {
  pid: number;
  port: number;
  /** True once the process has exited (e.g. out of heap). */
  exited: () => boolean;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function spawn(tree: string, env: Env): Promise<Server> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${tree}/main.ts`, "--port", String(port)],
    env: { ...COMMON, ...env },
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/v2/health`);
      await response.body?.cancel();
      if (response.ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`${tree} did not start`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    pid: child.pid,
    port,
    exited: () => exited,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
    },
  };
}

function rssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = status.match(/VmRSS:\s+(\d+)/);
  return match ? Number(match[1]) : 0; // 0: the process is gone (a zombie has no VmRSS)
}

// deno-lint-ignore no-explicit-any
type Msg = { type: string; data?: any };

/** A small client: counts received bytes, waits for message types. */
class Client {
  readonly ws: WebSocket;
  bytes = 0;
  readonly queue: Msg[] = [];
  #wake: (() => void) | undefined;
  closed: Promise<number>;
  constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) =>
      ws.onclose = (e) => {
        resolve(e.code);
        this.#wake?.();
      }
    );
    ws.onmessage = (e) => {
      this.bytes += (e.data as string).length;
      this.queue.push(JSON.parse(e.data as string));
      this.#wake?.();
    };
  }
  static async open(port: number, ip = "127.0.0.1"): Promise<Client> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v2/ws`, {
      headers: { "x-forwarded-for": ip },
    });
    const client = new Client(ws);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("connect failed"));
    });
    return client;
  }
  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }
  async next(types: string[], timeoutMs = 60_000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.queue.findIndex((m) => types.includes(m.type));
      if (i >= 0) return this.queue.splice(i, 1)[0]!;
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${types}`);
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`closed waiting for ${types}`);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  }
  close(): void {
    try {
      this.ws.close();
    } catch { /* closed */ }
  }
}

const join = (code: string | null, name: string, extra = {}) => ({
  type: "JoinRoom",
  data: { game_name: "orbit", room_code: code, player_name: name, ...extra },
});

/** Item 4: bytes one player receives while 300 spectators join. */
async function spectators(tree: string, env: Env = {}): Promise<Record<string, unknown>> {
  await using server = await spawn(tree, env);
  const player = await Client.open(server.port);
  player.send(join("SPEC01", "mira"));
  await player.next(["RoomJoined"]);
  player.bytes = 0;
  const watchers: Client[] = [];
  let accepted = 0;
  for (let i = 0; i < 300; i++) {
    const w = await Client.open(server.port, `10.1.${i >> 8}.${i & 255}`);
    watchers.push(w);
    w.send({
      type: "JoinAsSpectator",
      data: { game_name: "orbit", room_code: "SPEC01", spectator_name: `w${i}` },
    });
    const reply = await w.next(["SpectatorJoined", "SpectatorJoinFailed"]);
    if (reply.type === "SpectatorJoined") accepted++;
  }
  player.send({ type: "Ping" });
  await player.next(["Pong"]);
  const result = { accepted, playerBytes: player.bytes };
  for (const w of watchers) w.close();
  player.close();
  return result;
}

/** Item 5: bystander Ping RTT while one address loops takeovers, then floods 64 KiB tokens. */
async function reconnectFlood(tree: string, env: Env = {}): Promise<Record<string, unknown>> {
  await using server = await spawn(tree, env);
  const bystander = await Client.open(server.port, "10.9.9.9");
  bystander.send(join("BYST01", "nina"));
  await bystander.next(["RoomJoined"]);
  const victim = await Client.open(server.port, "10.2.0.1");
  victim.send(join("LOOP01", "loop"));
  const seat = (await victim.next(["RoomJoined"])).data;
  let token = seat.reconnection_token as string;
  let takeovers = 0;
  let holder = victim;
  for (let i = 0; i < 1000; i++) {
    const next = await Client.open(server.port, "10.2.0.1");
    next.send({
      type: "Reconnect",
      data: { player_id: seat.player_id, room_id: seat.room_id, auth_token: token },
    });
    const reply = await next.next(["Reconnected", "ReconnectionFailed"]);
    if (reply.type !== "Reconnected") {
      next.close();
      break;
    }
    takeovers++;
    token = reply.data.reconnection_token;
    holder.close();
    holder = next;
  }
  // Flood: 100 Reconnects with 64 KiB tokens for the looped seat, while the bystander pings.
  const attacker = await Client.open(server.port, "10.3.0.1");
  const huge = "A".repeat(65_000);
  const rtts: number[] = [];
  let flooding = true;
  const pinger = (async () => {
    while (flooding) {
      const t = performance.now();
      bystander.send({ type: "Ping" });
      await bystander.next(["Pong"]);
      rtts.push(performance.now() - t);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  const t0 = performance.now();
  for (let i = 0; i < 100; i++) {
    attacker.send({
      type: "Reconnect",
      data: { player_id: seat.player_id, room_id: seat.room_id, auth_token: huge },
    });
  }
  for (let i = 0; i < 100; i++) await attacker.next(["ReconnectionFailed"]);
  const floodMs = performance.now() - t0;
  flooding = false;
  await pinger;
  rtts.sort((a, b) => a - b);
  bystander.close();
  attacker.close();
  holder.close();
  return {
    takeovers,
    floodMs: Math.round(floodMs),
    pingP50Ms: Math.round(rtts[rtts.length >> 1] ?? 0),
    pingMaxMs: Math.round(rtts.at(-1) ?? 0),
  };
}

/** Item 6: how many of 10 legitimate clients get in after 40 wrong secrets from one address. */
async function lockout(tree: string): Promise<Record<string, unknown>> {
  await using server = await spawn(tree, {
    SIGNAL_FISH_SECURITY__REQUIRE_WEBSOCKET_AUTH: "true",
    SIGNAL_FISH_SECURITY__AUTHORIZED_APPS: JSON.stringify([{
      app_id: "orbit",
      app_secret: "right",
      app_name: "Orbit",
      rate_limit_per_minute: 30,
    }]),
  });
  for (let i = 0; i < 40; i++) {
    const c = await Client.open(server.port, "10.6.6.6");
    c.send({ type: "Authenticate", data: { app_id: "orbit", app_secret: `wrong${i}` } });
    await c.next(["AuthenticationError"]);
    await c.closed;
  }
  let admitted = 0;
  for (let i = 0; i < 10; i++) {
    const c = await Client.open(server.port, `10.7.0.${i + 1}`);
    c.send({ type: "Authenticate", data: { app_id: "orbit", app_secret: "right" } });
    if ((await c.next(["Authenticated", "AuthenticationError"])).type === "Authenticated") {
      admitted++;
    }
    c.close();
  }
  return { legitimateAdmitted: admitted };
}

/** Item 7: 201 addresses × 5 rooms created and left; can a real player then create one? */
async function squatting(tree: string): Promise<Record<string, unknown>> {
  await using server = await spawn(tree, {});
  let created = 0;
  for (let a = 0; a < 201; a++) {
    const c = await Client.open(server.port, `10.8.${a >> 8}.${a & 255}`);
    for (let r = 0; r < 5; r++) {
      c.send(join(null, "squat"));
      const reply = await c.next(["RoomJoined", "RoomJoinFailed"]);
      if (reply.type === "RoomJoined") {
        created++;
        c.send({ type: "LeaveRoom" });
        await c.next(["RoomLeft"]);
      }
    }
    c.close();
  }
  const real = await Client.open(server.port, "10.99.0.1");
  real.send(join(null, "real"));
  const reply = await real.next(["RoomJoined", "RoomJoinFailed"]);
  real.close();
  return { squatRooms: created, realPlayer: reply.data.error_code ?? "RoomJoined" };
}

/**
 * Item 8: RSS growth for 1000 held seats (250 rooms of a sender and 4 seats that left), each
 * sent 34 targeted 8 KiB messages (unique per seat, so nothing is shared between buffers).
 */
async function heldSeats(tree: string, env: Env = {}): Promise<Record<string, unknown>> {
  await using server = await spawn(tree, env);
  const senders: { client: Client; seats: string[] }[] = [];
  const before = rssKiB(server.pid);
  for (let r = 0; r < 250; r++) {
    const code = `H${String(r).padStart(5, "0")}`;
    const sender = await Client.open(server.port, `10.5.${r >> 8}.${r & 255}`);
    sender.send(join(code, "sender", { max_players: 5 }));
    const created = await sender.next(["RoomJoined", "RoomJoinFailed", "Error"], 10_000);
    if (created.type !== "RoomJoined") throw new Error(`room ${r}: ${JSON.stringify(created)}`);
    const seats = await Promise.all(
      Array.from({ length: 4 }, () => Client.open(server.port, "10.5.0.2")),
    );
    const ids: string[] = [];
    for (const [i, seat] of seats.entries()) {
      seat.send(join(code, `s${i}`));
      ids.push((await seat.next(["RoomJoined"])).data.player_id);
      seat.close();
    }
    senders.push({ client: sender, seats: ids });
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  let peakKiB = 0;
  for (const { client, seats } of senders) {
    const rss = rssKiB(server.pid);
    if (server.exited() || rss === 0) break;
    peakKiB = Math.max(peakKiB, rss);
    for (let i = 0; i < 34; i++) {
      for (const seat of seats) {
        client.send({
          type: "GameData",
          data: { data: `${i}${seat}`.padEnd(8192, "x"), to_player: seat },
        });
      }
    }
    client.send({ type: "Ping" });
    try {
      await client.next(["Pong"], 120_000);
    } catch {
      break; // the server died
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  if (server.exited() || rssKiB(server.pid) === 0) {
    for (const { client } of senders) client.close();
    return { survived: false, peakRssGrowthMiB: Math.round((peakKiB - before) / 1024) };
  }
  const after = rssKiB(server.pid);
  // Let V8's memory reducer collect what the buffers dropped, then read RSS again.
  await new Promise((resolve) => setTimeout(resolve, 15_000));
  const settled = rssKiB(server.pid);
  const prom = await (await fetch(`http://127.0.0.1:${server.port}/metrics/prom`)).text();
  const gauge = prom.match(/^signal_fish_replay_buffer_bytes (\d+)/m)?.[1];
  const held = prom.match(/^signal_fish_reconnection_sessions_active (\d+)/m)?.[1];
  for (const { client } of senders) client.close();
  return {
    survived: true,
    heldSeats: Number(held),
    rssGrowthMiB: Math.round((after - before) / 1024),
    rssGrowthSettledMiB: Math.round((settled - before) / 1024),
    replayBufferBytes: gauge ?? "n/a",
  };
}

/** Item 12: does app B reach app A's room, does a spectator see an address? */
async function isolation(tree: string): Promise<Record<string, unknown>> {
  await using server = await spawn(tree, {
    SIGNAL_FISH_SECURITY__REQUIRE_WEBSOCKET_AUTH: "true",
    SIGNAL_FISH_SECURITY__AUTHORIZED_APPS: JSON.stringify([
      { app_id: "a", app_name: "A" },
      { app_id: "b", app_name: "B" },
    ]),
  });
  const as = async (app: string) => {
    const c = await Client.open(server.port);
    c.send({ type: "Authenticate", data: { app_id: app } });
    await c.next(["ProtocolInfo"]);
    return c;
  };
  const a = await as("a");
  a.send(join("ISO001", "mira"));
  await a.next(["RoomJoined"]);
  a.send({
    type: "ProvideConnectionInfo",
    data: { connection_info: { type: "direct", host: "192.0.2.1", port: 1 } },
  });
  const b = await as("b");
  b.send(join("ISO001", "intruder"));
  const joined = (await b.next(["RoomJoined"])).data;
  const w = await as("a");
  w.send({
    type: "JoinAsSpectator",
    data: { game_name: "orbit", room_code: "ISO001", spectator_name: "fan" },
  });
  const watched = await w.next(["SpectatorJoined"]);
  const result = {
    bJoinedAsRoom: joined.current_players.length === 2,
    spectatorSawAddress: JSON.stringify(watched).includes("192.0.2.1"),
  };
  for (const c of [a, b, w]) c.close();
  return result;
}

const [base, ours, roundsArg] = Deno.args;
if (!base || !ours) throw new Error("usage: hostile_rooms.ts <base tree> <our tree> [rounds]");
const rounds = Number(roundsArg ?? 2);
const scenarios: [string, (tree: string) => Promise<Record<string, unknown>>][] = [
  ["spectators", (tree) => spectators(tree)],
  [
    "spectators_cap_300",
    (tree) => spectators(tree, { SIGNAL_FISH_SERVER__MAX_SPECTATORS_PER_ROOM: "300" }),
  ],
  ["reconnect_flood", (tree) => reconnectFlood(tree)],
  [
    "reconnect_flood_no_bucket",
    (tree) =>
      reconnectFlood(tree, { SIGNAL_FISH_RATE_LIMIT__MAX_RECONNECT_ATTEMPTS: "1000000000" }),
  ],
  ["lockout", lockout],
  ["squatting", squatting],
  ["held_seats", (tree) => heldSeats(tree)],
  [
    "held_seats_heap_256mib",
    (tree) => heldSeats(tree, { DENO_V8_FLAGS: "--max-old-space-size=256" }),
  ],
  [
    "held_seats_no_budget",
    (tree) => heldSeats(tree, { SIGNAL_FISH_SERVER__EVENT_BUFFER_TOTAL_MAX_BYTES: "0" }),
  ],
  ["isolation", isolation],
];
const only = Deno.env.get("ONLY");
for (const [name, run] of scenarios) {
  if (only && !only.split(",").includes(name)) continue;
  for (let round = 0; round < rounds; round++) {
    for (const [label, tree] of [["base", base], ["ours", ours]] as const) {
      const result = await run(tree);
      console.log(JSON.stringify({ scenario: name, round, tree: label, ...result }));
    }
  }
}
