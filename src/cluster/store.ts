/**
 * The Redis side of cluster mode, part 1 (docs/spec/SERVER.md §8.3, §8.9): the node's two Redis
 * connections ({@linkcode RedisLink}) and the shared state on them ({@linkcode RedisStore}):
 * directory, caps, token buckets, liveness and epoch, each a Lua script invoked by SHA with a
 * `NOSCRIPT` reload and one retry. Every time they keep or compare is Redis's own clock (`TIME`),
 * never the calling node's (§8.1). Only this file and `bus.ts` know Redis.
 *
 * Client: node-redis (`npm:@redis/client`), one connection for commands and publishes and its
 * `duplicate()` for the subscription (ordering, §8.4.1); `disableOfflineQueue`, so a command
 * fails at once while Redis is down instead of waiting for the reconnect; reconnect backoff
 * 100 ms doubling to 5 s, with jitter; a ping every 5 s; every call bounded by `cluster.forward_timeout_ms`.
 *
 * @module
 */
import { createClient, createSentinel, ErrorReply, type RedisClientType } from "@redis/client";
import { Buffer } from "node:buffer";
import {
  APP_BUCKET_WINDOW_MS,
  AppFallbackBuckets,
  type KeyedBuckets,
  keyedBucketsPerKind,
} from "../engine/token_bucket.ts";
import type { QueryObserver } from "../metrics/server_metrics.ts";
import type { BucketKind, BucketTake } from "../coordination/buckets.ts";
import { NoAnswer } from "../coordination/no_answer.ts";
import {
  type ClaimCaps,
  type ClaimResult,
  type DirectoryRecord,
  holdsCaps,
  lobbyRank,
  OLDEST_FIRST,
  type RefreshResult,
  ROOM_SORT_KEYS,
  type RoomPage,
  type RoomPageRequest,
  type RoomSortKey,
} from "../coordination/directory.ts";
import type { InstanceGames } from "../coordination/game_counts.ts";
import { gameTag, Keys } from "./keys.ts";
import { refusalReason } from "./link_report.ts";
import {
  type ClusterStore,
  type EpochRead,
  type LinkState,
  type Liveness,
  type NodeId,
  PendingReleases,
  Reachability,
  type Resolved,
  type StoreSettings,
  UnindexedScans,
} from "./types.ts";

// deno-lint-ignore no-explicit-any
type Client = RedisClientType<any, any, any, any, any>;

/** What the store and the bus use of the command connection (publishes included). */
export interface CommandConnection {
  /** Sends one command (strings or bytes) and resolves with Redis's reply. */
  sendCommand<T = unknown>(args: (string | Buffer)[]): Promise<T>;
  /** Whether it can send now. */
  readonly isReady: boolean;
}

/** What the bus uses of the subscribing connection. */
export interface SubscriberConnection {
  /** Subscribes `listener` to `channel`, messages as bytes. */
  subscribe(channel: string, listener: (message: Buffer) => void, buffers: true): Promise<unknown>;
  /** Removes `listener` from `channel` (the channel is left when it has no listener). */
  unsubscribe(
    channel: string,
    listener: (message: Buffer) => void,
    buffers: true,
  ): Promise<unknown>;
  /** Whether it is connected and subscribed. */
  readonly isReady: boolean;
}

/**
 * The sentinels of a Sentinel-backed link (`cluster.redis_sentinel*`, docs/spec/SERVER.md §2.7,
 * §8.8): where they listen, the primary's name, and how to reach them.
 */
export interface SentinelOptions {
  /** `host` and `port` of each sentinel asked for the primary. */
  nodes: { host: string; port: number }[];
  /** The primary's name in the sentinels' `sentinel monitor` lines. */
  master: string;
  /** ACL user for the sentinels (`AUTH username password`); needs `password`. */
  username?: string;
  /** The sentinels' `requirepass`. */
  password?: string;
  /** TLS to the sentinels, trusting {@linkcode RedisLinkOptions.ca} when given. */
  tls?: boolean;
}

/** How to reach Redis (`cluster.redis_url`, docs/spec/SERVER.md §2.7). */
export interface RedisLinkOptions {
  /** `redis://` or `rediss://` URL. */
  url: string;
  /** PEM of a private CA for `rediss://` (`cluster.redis_tls_ca_path`). */
  ca?: string;
  /** Connect timeout, ms. @default 2000 */
  connectTimeoutMs?: number;
  /**
   * Redis Sentinel (`cluster.redis_sentinels`, `cluster.redis_sentinel_master`): the primary of
   * `master` is found through these sentinels and followed across failovers; `url` then gives
   * the scheme, credentials and database only.
   */
  sentinel?: SentinelOptions;
  /** Called on every change of the link's state (both connections ready = `up`). */
  onState?: (state: LinkState) => void;
  /** Called with every connection error (logged by the caller; the client reconnects). */
  onError?: (error: unknown) => void;
  /** Called when {@linkcode RedisLink.reopen} drops and reopens the connections. */
  onReopen?: () => void;
  /**
   * With `sentinel`: called when the Sentinel client moves its connections to another primary
   * (node-redis's `topology-change` event of type `MASTER_CHANGE`, after a failover), once
   * {@linkcode RedisLink.connect} has resolved (not for the first primary found). The new
   * primary may lack the last writes (asynchronous replication), and the link's state need not
   * go `down` on the way (docs/spec/SERVER.md §8.3 "Redis's identity"). Commands sent from the
   * callback reach the new primary once the client is connected to it.
   */
  onPrimaryChange?: () => void;
}

/**
 * Reconnect delay, ms, after `retries` failed attempts: 100 ms doubling to 5 s, each drawn
 * uniformly from the last quarter below that bound (75–100 %), so that the instances of a cluster
 * that lost Redis together do not all come back in the same millisecond (docs/spec/SERVER.md
 * §8.5.5). `random` is a number in [0, 1) (`Math.random` unless given).
 */
export function reconnectDelay(retries: number, random: () => number = Math.random): number {
  const bound = Math.min(100 * 2 ** Math.min(retries, 16), 5_000);
  return Math.round(bound * (1 - 0.25 * random()));
}

/**
 * The `run_id` in the text of Redis's `INFO server` answer (`run_id:<40 hex digits>` on a line of
 * its own), or `undefined` when there is none (docs/spec/SERVER.md §8.3 "Epoch").
 */
export function runIdOf(info: string): string | undefined {
  return /^run_id:([0-9a-zA-Z]+)\r?$/m.exec(info)?.[1];
}

/**
 * node-redis's `reconnectStrategy`: {@linkcode reconnectDelay} of the retry count (node-redis
 * passes the error as a second argument, which is not a random source).
 */
const reconnectStrategy = (retries: number): number => reconnectDelay(retries);

/** The least time between two {@linkcode RedisLink.reopen}s, ms. */
export const REOPEN_INTERVAL_MS = 1_000;

/** How often the state of a Sentinel-backed link is read again, ms (it has no ready events). */
const SENTINEL_STATE_MS = 250;

/**
 * The node's two Redis connections: `command` (commands and publishes) and `subscriber`. Errors
 * are reported, never thrown (an unhandled client `error` event would end the process). With
 * `sentinel`, both go to the primary the sentinels name, through node-redis's Sentinel client
 * (one reserved connection for commands, so publishes keep their order, and its pub/sub
 * connection), which moves them to the new primary after a failover.
 */
export class RedisLink {
  readonly command: CommandConnection;
  readonly subscriber: SubscriberConnection;
  #state: LinkState = "down";
  readonly #options: RedisLinkOptions;
  #closed = false;
  readonly #open: () => Promise<void>;
  readonly #destroy: () => void;
  /** Drops both connections and opens them again (undefined: Sentinel, which follows failovers). */
  readonly #reconnect: (() => Promise<void>) | undefined;
  #reopening = false;
  #lastReopen = -Infinity;
  /** Times {@linkcode RedisLink.reopen} dropped and reopened the connections. */
  reopens = 0;
  #poll: ReturnType<typeof setInterval> | undefined;

  /** Creates the clients; {@linkcode RedisLink.connect} opens them. */
  constructor(options: RedisLinkOptions) {
    this.#options = options;
    const tls = options.url.toLowerCase().startsWith("rediss://");
    const socket = {
      connectTimeout: options.connectTimeoutMs ?? 2_000,
      reconnectStrategy,
      ...(tls ? { tls: true as const, ...(options.ca ? { ca: options.ca } : {}) } : {}),
    };
    if (options.sentinel) {
      const url = new URL(options.url);
      const database = Number(url.pathname.slice(1) || "0");
      const sentinel = createSentinel({
        name: options.sentinel.master,
        sentinelRootNodes: options.sentinel.nodes,
        masterPoolSize: 1,
        reserveClient: true,
        nodeClientOptions: {
          disableOfflineQueue: true,
          pingInterval: 5_000,
          ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
          ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
          ...(database ? { database } : {}),
          socket,
        },
        sentinelClientOptions: {
          ...(options.sentinel.username ? { username: options.sentinel.username } : {}),
          ...(options.sentinel.password ? { password: options.sentinel.password } : {}),
          socket: options.sentinel.tls
            ? {
              connectTimeout: socket.connectTimeout,
              reconnectStrategy,
              tls: true as const,
              ...(options.ca ? { ca: options.ca } : {}),
            }
            : {
              connectTimeout: socket.connectTimeout,
              reconnectStrategy,
            },
        },
        passthroughClientErrorEvents: true,
      });
      sentinel.on("error", (error: unknown) => options.onError?.(error));
      let opened = false;
      sentinel.on("topology-change", (event: { type?: string }) => {
        this.#update();
        if (opened && !this.#closed && event.type === "MASTER_CHANGE") {
          options.onPrimaryChange?.();
        }
      });
      this.command = {
        sendCommand: <T>(args: (string | Buffer)[]) => sentinel.sendCommand<T>(false, args),
        get isReady() {
          return sentinel.isReady;
        },
      };
      this.subscriber = {
        subscribe: (channel, listener, buffers) => sentinel.subscribe(channel, listener, buffers),
        unsubscribe: (channel, listener, buffers) =>
          // The same listener type as `subscribe`'s, which node-redis declares more narrowly.
          sentinel.unsubscribe(
            channel,
            listener as Parameters<typeof sentinel.unsubscribe>[1],
            buffers,
          ),
        get isReady() {
          return sentinel.isReady;
        },
      };
      this.#open = async () => {
        await sentinel.connect();
        opened = true;
        // node-redis's Sentinel client emits no ready or end events: read its state often.
        this.#poll = setInterval(() => this.#update(), SENTINEL_STATE_MS);
      };
      this.#destroy = () => void sentinel.destroy().catch(() => {});
      this.#reconnect = undefined;
      return;
    }
    const command = createClient({
      url: options.url,
      disableOfflineQueue: true,
      pingInterval: 5_000,
      socket,
    }) as unknown as Client;
    const subscriber = command.duplicate() as Client;
    for (const client of [command, subscriber]) {
      client.on("error", (error: unknown) => options.onError?.(error));
      client.on("ready", () => this.#update());
      client.on("end", () => this.#update());
      client.on("reconnecting", () => this.#update());
    }
    this.command = command as unknown as CommandConnection;
    this.subscriber = subscriber as unknown as SubscriberConnection;
    this.#open = async () => {
      await Promise.all([command.connect(), subscriber.connect()]);
    };
    this.#destroy = () => {
      for (const client of [command, subscriber]) {
        try {
          client.destroy();
        } catch { /* never opened */ }
      }
    };
    // node-redis keeps a connection on an error reply: destroyed and connected again, each
    // client opens a new socket to the URL's address (resolved and routed again) and the
    // subscriber subscribes again to its channels.
    this.#reconnect = async () => {
      this.#destroy();
      this.#update();
      if (this.#closed) return;
      await Promise.all([command.connect(), subscriber.connect()]);
      this.#update();
    };
  }

  /**
   * Drops both connections and opens them again, for an address that now reaches a replica
   * (Redis answered `READONLY`: a failover behind a virtual IP, DNS name or proxy that has moved
   * since the connections were opened, docs/spec/SERVER.md §8.5.5 "Redis refuses writes").
   * Pending commands fail; the link goes `down`, then `up` as after any reconnect. At most once
   * per {@linkcode REOPEN_INTERVAL_MS}, and not while a reopen is under way. Returns whether it
   * reopens now: never with Sentinel (whose client moves to the primary the sentinels name) or
   * once closed.
   */
  reopen(): boolean {
    const reconnect = this.#reconnect;
    const now = performance.now();
    if (
      reconnect === undefined || this.#closed || this.#reopening ||
      now - this.#lastReopen < REOPEN_INTERVAL_MS
    ) {
      return false;
    }
    this.#reopening = true;
    this.#lastReopen = now;
    this.reopens++;
    this.#options.onReopen?.();
    reconnect().catch((error: unknown) => this.#options.onError?.(error)).finally(() => {
      this.#reopening = false;
    });
    return true;
  }

  /** Whether {@linkcode close} was called: the link is down for good, not retrying. */
  get closed(): boolean {
    return this.#closed;
  }

  /** `up` while both connections are ready. */
  get state(): LinkState {
    return this.#state;
  }

  #update(): void {
    const state: LinkState = !this.#closed && this.command.isReady && this.subscriber.isReady
      ? "up"
      : "down";
    if (state === this.#state) return;
    this.#state = state;
    this.#options.onState?.(state);
  }

  /** Opens both connections; resolves when both are ready for the first time. */
  async connect(): Promise<void> {
    await this.#open();
    this.#update();
  }

  /** Closes both connections at once (pending commands fail). Idempotent. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    clearInterval(this.#poll);
    this.#destroy();
    this.#update();
    return Promise.resolve();
  }
}

/** Wraps bytes for node-redis without copying (a bare Uint8Array is rejected, §8.9). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Rejects with {@linkcode NoAnswer} when `promise` has not settled within `ms`: the command was
 * handed to the client (which has no offline queue, so it went out or failed at once) and Redis
 * may still carry it out (docs/spec/SERVER.md §8.5.5).
 */
export function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NoAnswer(`Redis ${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// Scripts (docs/spec/SERVER.md §8.3 "Scripts"). Values: room entry = JSON DirectoryRecord; room-id = JSON
// {home, gameName, roomCode, appId?} or "gone"; set scores = expiry ms by Redis's clock.

/** Sends one command on the command connection and resolves with Redis's reply. */
type Send = (args: string[]) => Promise<unknown>;

/** A Lua script with its SHA-1 (computed by Redis at the first load). */
class Script {
  readonly source: string;
  #sha: string | undefined;

  constructor(source: string) {
    this.source = source;
  }

  /** EVALSHA; on NOSCRIPT (a restarted Redis) loads the script and retries once. */
  async run(send: Send, keys: string[], args: string[]): Promise<unknown> {
    const call = (sha: string) => send(["EVALSHA", sha, String(keys.length), ...keys, ...args]);
    if (this.#sha === undefined) this.#sha = await this.#load(send);
    try {
      return await call(this.#sha);
    } catch (error) {
      if (!String((error as Error)?.message ?? error).startsWith("NOSCRIPT")) throw error;
      this.#sha = await this.#load(send);
      return await call(this.#sha);
    }
  }

  /** Loads the script (`SCRIPT LOAD`), so the next run needs no retry. */
  async load(send: Send): Promise<void> {
    this.#sha = await this.#load(send);
  }

  async #load(send: Send): Promise<string> {
    return String(await send(["SCRIPT", "LOAD", this.source]));
  }
}

/** `text` with Redis's glob characters (`*`, `?`, `[`, `]`, `\\`) escaped, for `SCAN … MATCH`. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}

/** Every script of this module, for {@linkcode RedisStore.prepare}. */
const SCRIPTS: Script[] = [];

/** A script of this module (registered for {@linkcode RedisStore.prepare}). */
function script(source: string): Script {
  const made = new Script(source);
  SCRIPTS.push(made);
  return made;
}

/**
 * Lua that sets local `now` to Redis's own clock, ms (`TIME`): every time a script stores or
 * compares (set scores, a bucket's last refill, the epoch's creation) is on this one clock, so
 * the nodes' clocks never meet in Redis (docs/spec/SERVER.md §8.1). `ARGV[slot]`, when not
 * empty, replaces it: the Redis clock of tests ({@linkcode StoreSettings.redisNow}), as Redis's
 * cannot be set; production passes "". Redis ≥ 5 replicates a script's effects, not its text, so
 * a script may write after `TIME`.
 */
function redisNow(slot: number): string {
  return `
local now
if ARGV[${slot}] ~= '' then
  now = tonumber(ARGV[${slot}])
else
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end`;
}

/** The `rooms-by:` sort keys in the `KEYS` order of the claim, refresh and release scripts. */
const SORT_KEYS: readonly RoomSortKey[] = ROOM_SORT_KEYS;

/**
 * Lua that writes a room's members of the six `rooms-by:` sets, `KEYS[first]` to
 * `KEYS[first + 5]` in {@linkcode SORT_KEYS} order, from `ARGV[arg]` (creation time) and
 * `ARGV[arg + 1]` to `ARGV[arg + 5]`: sort member, code sort member, players, spectators, lobby
 * rank; skipped when Lua expression `unchanged` holds (the entry is byte for byte the one
 * written before and still indexed: the periodic refresh). The six sets hold the same rooms, so
 * they share one TTL, renewed to `4 T` once less than `T` is left: they expire a few `T` after
 * the cluster stops writing, and a refresh costs one `PTTL` instead of six `PEXPIRE`s.
 */
function indexRoom(first: number, arg: number, unchanged = "false"): string {
  const member = `ARGV[${arg + 1}]`;
  return `
if not (${unchanged}) then
  redis.call('ZADD', KEYS[${first}], tonumber(ARGV[${arg}]), ${member})
  redis.call('ZADD', KEYS[${first + 1}], 0, ARGV[${arg + 2}])
  redis.call('ZADD', KEYS[${first + 2}], 0, ${member})
  redis.call('ZADD', KEYS[${first + 3}], tonumber(ARGV[${arg + 3}]), ${member})
  redis.call('ZADD', KEYS[${first + 4}], tonumber(ARGV[${arg + 4}]), ${member})
  redis.call('ZADD', KEYS[${first + 5}], tonumber(ARGV[${arg + 5}]), ${member})
end
if redis.call('PTTL', KEYS[${first}]) < ttl then
  for i = ${first}, ${first + 5} do redis.call('PEXPIRE', KEYS[i], 4 * ttl) end
end`;
}

/**
 * Lua functions of the scripts that walk the `rooms-by:` sets: `forget(prefix, game, code, tag)`
 * removes a room whose entry is gone from every `rooms-by:` set and its game's `game-order`;
 * `parse(member, codeFirst)` splits a sort member into game, code and tag (nil if malformed).
 */
const ROOM_MEMBERS = `
local function forget(prefix, game, code, tag)
  local member = game .. '\\0' .. code .. '\\0' .. tag
  for _, key in ipairs({'created', 'game', 'players', 'spectators', 'lobby_state'}) do
    redis.call('ZREM', prefix .. 'rooms-by:' .. key, member)
  end
  redis.call('ZREM', prefix .. 'rooms-by:code', code .. '\\0' .. game .. '\\0' .. tag)
  redis.call('ZREM', prefix .. 'game-order:' .. tag .. ':' .. game, code)
end
local function parse(member, codeFirst)
  local a = string.find(member, '\\0', 1, true)
  if not a then return nil end
  local b = string.find(member, '\\0', a + 1, true)
  if not b then return nil end
  local first, second = string.sub(member, 1, a - 1), string.sub(member, a + 1, b - 1)
  if codeFirst then return second, first, string.sub(member, b + 1) end
  return first, second, string.sub(member, b + 1)
end
`;

/**
 * Lua that Redis refuses with `OOM` while it is at `maxmemory` under `noeviction`, writing nothing
 * otherwise (`ZADD XX` of the empty member, which no code is), for scripts that add state (the
 * claim). Redis checks a script's memory at its first write only ("it cannot stop in the
 * middle"): a script whose first write frees or keeps memory (`ZREMRANGEBYSCORE`, `DEL`) runs
 * whole when Redis is full, so this must come before any other write (docs/spec/SERVER.md §8.5.5
 * "Redis full").
 */
const MEMORY_GUARD = "redis.call('ZADD', KEYS[2], 'XX', 0, '')";

/**
 * Claim. KEYS: room, game-rooms, app-rooms, room-id, game-empty, ip-rooms, app-empty,
 * game-order, maintenance, then the six `rooms-by:` sets ({@linkcode SORT_KEYS}). A code another
 * room holds answers `taken`; otherwise maintenance mode refuses (`maintenance`), then the caps.
 * ARGV: entry, room id, code, Redis's clock for tests ("" = `TIME`, {@linkcode redisNow}), T,
 * room-id TTL, max per game, max per app (-1 = none), stale room id ("" = none), room-id value,
 * has app ("1"/"0"), max per IP (-1 = none), has IP ("1"/"0"), ip-rooms prefix of the game,
 * creation time, sort member, code sort member, players, spectators, lobby rank. The
 * expiry-scored sets' members score Redis's clock + `T` (ms) and are expired by Redis's clock,
 * so every node counts the same rooms whatever its own clock (docs/spec/SERVER.md §8.1). Rooms
 * in game-empty / app-empty (no seat, or unattended, at their last refresh) do not count. Past the taken and maintenance checks (reads only), a
 * Redis at `maxmemory` refuses it with `OOM` before it writes anything ({@linkcode MEMORY_GUARD}).
 */
const CLAIM = script(`${redisNow(4)}
local ttl = tonumber(ARGV[5])
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current).roomId ~= ARGV[9] then
  return {'taken', current}
end
if redis.call('EXISTS', KEYS[9]) == 1 then return {'maintenance'} end
${MEMORY_GUARD}
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
local games = redis.call('ZCARD', KEYS[2]) - redis.call('ZCARD', KEYS[5])
if redis.call('ZSCORE', KEYS[2], ARGV[3]) and not redis.call('ZSCORE', KEYS[5], ARGV[3]) then
  games = games - 1
end
if games < 0 then games = 0 end
if games >= tonumber(ARGV[7]) then return {'capped', 'game', games} end
local maxApp = tonumber(ARGV[8])
if ARGV[11] == '1' and maxApp >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now)
  local apps = redis.call('ZCARD', KEYS[3]) - redis.call('ZCARD', KEYS[7])
  if ARGV[9] ~= '' and redis.call('ZSCORE', KEYS[3], ARGV[9])
    and not redis.call('ZSCORE', KEYS[7], ARGV[9]) then
    apps = apps - 1
  end
  if apps < 0 then apps = 0 end
  if apps >= maxApp then return {'capped', 'app', apps} end
end
local maxIp = tonumber(ARGV[12])
if ARGV[13] == '1' and maxIp > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
  local ips = redis.call('ZCARD', KEYS[6])
  if redis.call('ZSCORE', KEYS[6], ARGV[3]) then ips = ips - 1 end
  if ips >= maxIp then return {'capped', 'ip', ips} end
end
if current then
  local ip = cjson.decode(current).creatorIp
  if type(ip) == 'string' then redis.call('ZREM', ARGV[14] .. ip, ARGV[3]) end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[8], tonumber(ARGV[15]), ARGV[3])
redis.call('PEXPIRE', KEYS[8], ttl)${indexRoom(10, 15)}
redis.call('ZREM', KEYS[5], ARGV[3])
if ARGV[13] == '1' then
  redis.call('ZADD', KEYS[6], now + ttl, ARGV[3])
  redis.call('PEXPIRE', KEYS[6], ttl)
end
if ARGV[11] == '1' then
  if ARGV[9] ~= '' then
    redis.call('ZREM', KEYS[3], ARGV[9])
    redis.call('ZREM', KEYS[7], ARGV[9])
  end
  redis.call('ZADD', KEYS[3], now + ttl, ARGV[2])
  redis.call('PEXPIRE', KEYS[3], ttl)
end
redis.call('SET', KEYS[4], ARGV[10], 'PX', tonumber(ARGV[6]))
return {'ok'}
`);

/**
 * Refresh (compare-and-set). KEYS: as the claim's (maintenance unused). ARGV: entry, room id,
 * code, Redis's clock for tests ("" = `TIME`, {@linkcode redisNow}), T, room-id TTL, room-id
 * value, has app, empty ("1" = no seat or unattended, see `holdsCaps`), has IP, creation time,
 * sort member, code sort member, players, spectators, lobby rank. Set scores and expiries as the
 * claim's (Redis's clock). An empty room joins game-empty and app-empty and leaves its ip-rooms
 * set; a room that holds the caps the reverse. The app sets follow the room id even in a
 * conflict.
 */
const REFRESH = script(`${redisNow(4)}
local ttl = tonumber(ARGV[5])
-- Members whose room stopped being refreshed (its home crashed) leave the expiry-scored sets
-- here too, not only when a claim counts them: a busy game's sets never expire as a whole.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
if ARGV[8] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now)
end
local current = redis.call('GET', KEYS[1])
local result = 'created'
if current then
  if cjson.decode(current).roomId == ARGV[2] then result = 'refreshed' else result = 'conflict' end
end
if result ~= 'conflict' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('ZADD', KEYS[8], tonumber(ARGV[11]), ARGV[3])
  redis.call('PEXPIRE', KEYS[8], ttl)${
  indexRoom(10, 11, "current == ARGV[1] and redis.call('ZSCORE', KEYS[10], ARGV[12])")
}
  if ARGV[9] == '1' then
    redis.call('ZADD', KEYS[5], now + ttl, ARGV[3])
    redis.call('PEXPIRE', KEYS[5], ttl)
    if ARGV[10] == '1' then redis.call('ZREM', KEYS[6], ARGV[3]) end
  else
    redis.call('ZREM', KEYS[5], ARGV[3])
    if ARGV[10] == '1' then
      redis.call('ZADD', KEYS[6], now + ttl, ARGV[3])
      redis.call('PEXPIRE', KEYS[6], ttl)
    end
  end
end
redis.call('SET', KEYS[4], ARGV[7], 'PX', tonumber(ARGV[6]))
if ARGV[8] == '1' then
  redis.call('ZADD', KEYS[3], now + ttl, ARGV[2])
  redis.call('PEXPIRE', KEYS[3], ttl)
  if ARGV[9] == '1' then
    redis.call('ZADD', KEYS[7], now + ttl, ARGV[2])
    redis.call('PEXPIRE', KEYS[7], ttl)
  else
    redis.call('ZREM', KEYS[7], ARGV[2])
  end
end
return result
`);

/**
 * Release. KEYS: room, game-rooms, room-id, game-empty, game-order, then the six `rooms-by:`
 * sets. ARGV: room id, code, `gone` TTL, key prefix, ip-rooms prefix of the game, sort member,
 * code sort member. The `room-id` tombstone keeps the home that released it
 * (`{"gone":true,"home":…}`; a bare `gone` when the id's value had expired).
 */
const RELEASE = script(`
local current = redis.call('GET', KEYS[1])
if current then
  local entry = cjson.decode(current)
  if entry.roomId == ARGV[1] then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[2], ARGV[2])
    redis.call('ZREM', KEYS[4], ARGV[2])
    redis.call('ZREM', KEYS[5], ARGV[2])
    for i = 6, 11 do
      if i == 7 then redis.call('ZREM', KEYS[i], ARGV[7]) else redis.call('ZREM', KEYS[i], ARGV[6]) end
    end
    if type(entry.creatorIp) == 'string' then
      redis.call('ZREM', ARGV[5] .. entry.creatorIp, ARGV[2])
    end
  end
end
local id = redis.call('GET', KEYS[3])
local gone = 'gone'
if id and id ~= 'gone' then
  local value = cjson.decode(id)
  if value.gone then
    gone = id
  else
    if type(value.appId) == 'string' then
      redis.call('ZREM', ARGV[4] .. 'app-rooms:' .. value.appId, ARGV[1])
      redis.call('ZREM', ARGV[4] .. 'app-empty:' .. value.appId, ARGV[1])
    end
    gone = cjson.encode({gone = true, home = value.home})
  end
end
redis.call('SET', KEYS[3], gone, 'PX', tonumber(ARGV[3]))
return 1
`);

/**
 * Take (token bucket in token-milliseconds, as engine/token_bucket.ts). KEYS: bucket, value
 * `units:at` (`at`: the last refill, ms). ARGV: capacity, window ms, Redis's clock for tests
 * ("" = `TIME`, {@linkcode redisNow}), "0" to only look (nothing written). Refills by Redis's
 * clock, so a bucket refills alike whichever node took from it last (docs/spec/SERVER.md §8.1);
 * a last refill ahead of that clock (written by a node of an earlier version whose clock ran
 * ahead) refills nothing and is brought back to it. Returns 0 (a token is there, and was taken
 * unless looking) or the whole seconds to wait (≥ 1).
 */
const TAKE = script(`${redisNow(3)}
local cap = tonumber(ARGV[1])
local win = tonumber(ARGV[2])
local full = cap * win
local units = full
local at = now
local v = redis.call('GET', KEYS[1])
if v then
  local s = string.find(v, ':', 1, true)
  units = tonumber(string.sub(v, 1, s - 1))
  at = tonumber(string.sub(v, s + 1))
end
if now > at then units = math.min(full, units + (now - at) * cap) end
at = now
local wait = 0
if units >= win then units = units - win else wait = (win - units) / cap end
if ARGV[4] ~= '0' then
  redis.call('SET', KEYS[1], string.format('%.0f:%.0f', units, at), 'PX', 2 * win)
end
if wait == 0 then return 0 end
return math.max(1, math.ceil(wait / 1000))
`);

/**
 * Resolve. KEYS: room or room-id key, then (lookups by code) the maintenance key. ARGV: key
 * prefix. Returns {value or '', alive 0|1, maintenance 0|1} ('' = absent).
 */
const RESOLVE = script(`
local m = 0
if KEYS[2] then m = redis.call('EXISTS', KEYS[2]) end
local v = redis.call('GET', KEYS[1])
if not v then return {'', 0, m} end
if v == 'gone' then return {v, 0, m} end
local home = cjson.decode(v).home
if not home then return {v, 0, m} end
return {v, redis.call('EXISTS', ARGV[1] .. 'instance:' .. home), m}
`);

/**
 * Walk (the public room listing). KEYS: a game's `game-order` (code → creation time), then its
 * `game-rooms`. ARGV: prefix that makes a member its entry's key, limit, "1" to keep only rooms
 * with players, Redis's clock for tests ("" = `TIME`, {@linkcode redisNow}: `game-rooms`
 * members whose expiry it has passed are not counted). Reads entries in the set's order until
 * `limit` are kept and the next member is younger than the last kept one (so the caller can order
 * rooms created in the same millisecond by game and code), dropping members whose entry has
 * expired. Returns false when `game-rooms` has more live members than the order set (rooms an
 * older version claimed, not refreshed by this one yet): the caller reads every entry instead.
 */
const WALK = script(`${redisNow(4)}
local limit = tonumber(ARGV[2])
if KEYS[2] and redis.call('ZCARD', KEYS[1]) < redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf') then
  return false
end
local out = {}
local expired = {}
local start = 0
local last = nil
local done = false
while not done do
  local batch = redis.call('ZRANGE', KEYS[1], start, start + 127, 'WITHSCORES')
  if #batch == 0 then break end
  for i = 1, #batch, 2 do
    local score = tonumber(batch[i + 1])
    if #out >= limit and score ~= last then
      done = true
      break
    end
    local value = redis.call('GET', ARGV[1] .. batch[i])
    if not value then
      expired[#expired + 1] = batch[i]
    elseif ARGV[3] ~= '1' or cjson.decode(value).summary.players > 0 then
      out[#out + 1] = value
      last = score
    end
  end
  start = start + 128
end
for _, member in ipairs(expired) do redis.call('ZREM', KEYS[1], member) end
return out
`);

/**
 * Live members (the public room listing while `game-order` is incomplete). KEYS: a game's
 * `game-rooms`. ARGV: Redis's clock for tests ("" = `TIME`, {@linkcode redisNow}). Returns the
 * codes whose expiry Redis's clock has not passed.
 */
const LIVE = script(`${redisNow(1)}
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
`);

/**
 * Liveness (docs/spec/SERVER.md §8.3 `instance:`, `instances`). KEYS: `instance:<node>`,
 * `instances`. ARGV: the JSON value, node, `T` (ms), Redis's clock for tests ("" = `TIME`,
 * {@linkcode redisNow}). Writes the key with TTL `T`, removes from the index the members whose
 * expiry is more than `T` past (see {@linkcode NODES}), adds the node scored with its key's
 * expiry (Redis's clock + `T`, ms), and keeps the index for `2 T` after the last write of any
 * node. The pruning comes first (reading `TIME` is no write): Redis checks a script's memory at
 * its first write only, so a Redis at `maxmemory` under `noeviction` still runs it whole, as it
 * does the refresh and release scripts (a rewrite of the node's key, not new state), and
 * liveness survives a full Redis (docs/spec/SERVER.md §8.5.5 "Redis full").
 */
const LIVENESS = script(`${redisNow(4)}
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - ttl))
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[2])
redis.call('PEXPIRE', KEYS[2], 2 * ttl)
return 1
`);

/**
 * Node listing (docs/spec/SERVER.md §8.3 `instances`). KEYS: `instances`. ARGV: the prefix of the
 * `instance:` keys, `T` (ms), Redis's clock for tests ("" = `TIME`, {@linkcode redisNow}), then
 * nodes to read besides the index's members (instances of a version without the index, found by
 * a scan). Removes the members whose expiry is more than `T` past by Redis's clock (the extra
 * `T` is for members an earlier version scored by its own clock, during a rolling deploy; a
 * dead node's member lingers for it, unlisted), then reads the `instance:` key of every member
 * and of every node given, 500 per `MGET`; returns `{node, value, …}` for the keys that exist
 * (the key decides, not the score).
 */
const NODES = script(`${redisNow(3)}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])))
local nodes = redis.call('ZRANGE', KEYS[1], 0, -1)
local seen = {}
for _, node in ipairs(nodes) do seen[node] = true end
for i = 4, #ARGV do
  if not seen[ARGV[i]] then
    seen[ARGV[i]] = true
    nodes[#nodes + 1] = ARGV[i]
  end
end
local out = {}
for first = 1, #nodes, 500 do
  local last = math.min(first + 499, #nodes)
  local keys = {}
  for i = first, last do keys[#keys + 1] = ARGV[1] .. nodes[i] end
  local values = redis.call('MGET', unpack(keys))
  for i = first, last do
    local value = values[i - first + 1]
    if value then
      out[#out + 1] = nodes[i]
      out[#out + 1] = value
    end
  end
end
return out
`);

/**
 * Epoch (docs/spec/SERVER.md §8.3 "Epoch"). KEYS: `epoch`. ARGV: the id of a new epoch, Redis's
 * clock for tests ("" = `TIME`, {@linkcode redisNow}). Creates the key when missing, JSON
 * `{"id", "createdAt"}` with the creation time by Redis's clock (ms; an earlier version wrote its
 * own clock's, as `SET NX`), no TTL. Returns {value, Redis's clock (ms)}, so the reader reckons the
 * epoch's age on one clock. Writes nothing when the key exists (a Redis that refuses writes
 * still answers).
 */
const EPOCH = script(`${redisNow(2)}
local value = redis.call('GET', KEYS[1])
if not value then
  value = '{"id":' .. cjson.encode(ARGV[1]) .. ',"createdAt":' .. string.format('%.0f', now) .. '}'
  redis.call('SET', KEYS[1], value)
end
return {value, string.format('%.0f', now)}
`);

/**
 * Order sweep. KEYS: `rooms-by:created`. ARGV: key prefix, start rank, count. Looks at `count`
 * members of `rooms-by:created` from rank `start`; a room whose `room:` key is gone (its home
 * crashed, so nobody released it) leaves every `rooms-by:` set and its game's `game-order`.
 * Returns the rank to start from next time (0 after the end) and how many were removed.
 */
const SWEEP_ORDER = script(`${ROOM_MEMBERS}
local start = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local batch = redis.call('ZRANGE', KEYS[1], start, start + count - 1)
local removed = 0
for _, member in ipairs(batch) do
  local game, code, tag = parse(member, false)
  if not game then
    redis.call('ZREM', KEYS[1], member)
    removed = removed + 1
  elseif redis.call('EXISTS', ARGV[1] .. 'room:' .. tag .. ':' .. game .. ':' .. code) == 0 then
    forget(ARGV[1], game, code, tag)
    removed = removed + 1
  end
end
if #batch < count then return {0, removed} end
return {start + #batch - removed, removed}
`);

/**
 * Page (the operator's listing, docs/spec/SERVER.md §8.3 "Page"). KEYS: the order walked, a
 * `rooms-by:` set or (a game's rooms by creation time) its `game-order`. ARGV: key prefix, "1" =
 * descending, first rank, members to look at, matches to pass over, matches to return, member
 * form (`g`: sort member, `c`: code sort member, `o`: a `game-order` code), game (the game
 * filter; with `o` the order's game), that game's tag (with `o`), lobby state ("" = any), query
 * (lower-case, "" = none), the query as JSON writes it (without quotes), "1" = keep only the
 * game's rooms (forms `g`, `c`), "1" = forget rooms whose entry is gone. Looks at members from
 * the first rank on, in order, until it has the matches to return or has looked at the count;
 * reads a member's entry only when its game passes, and matches the lobby state and the query
 * in the entry's text ({@linkcode entryJson}), never decoding it. Returns {members looked at,
 * members removed, matches seen, members in the order, entries...}.
 */
const PAGE = script(`${ROOM_MEMBERS}
local SEP = '\\127'
local function keeps(value, code, game, lobby, query, written)
  if lobby ~= '' and not string.find(value, '"lobby_state":"' .. lobby .. '"', 1, true) then
    return false
  end
  if query == '' or string.find(string.lower(code), query, 1, true) then return true end
  local at = string.find(value, '"search":{"ids":"', 1, true)
  if not at then return string.find(string.lower(game), query, 1, true) ~= nil end
  local ids = at + 17
  local terms = string.find(value, '","terms":"', ids, true)
  if not terms then return false end
  -- The terms are the text's last string: it ends with '"}}'.
  local s, e = string.find(value, written, terms + 11, true)
  if s and e <= #value - 3 then return true end
  s, e = string.find(value, SEP .. written, ids, true)
  return s ~= nil and e < terms
end
local prefix = ARGV[1]
local first = tonumber(ARGV[3])
local count = tonumber(ARGV[4])
local skip = tonumber(ARGV[5])
local want = tonumber(ARGV[6])
local form = ARGV[7]
local game = ARGV[8]
local lobby = ARGV[10]
local query = ARGV[11]
local written = ARGV[12]
local byGame = ARGV[13] == '1'
local members
if ARGV[2] == '1' then
  members = redis.call('ZREVRANGE', KEYS[1], first, first + count - 1)
else
  members = redis.call('ZRANGE', KEYS[1], first, first + count - 1)
end
local reply = {0, 0, 0, redis.call('ZCARD', KEYS[1])}
local looked, matched, returned = 0, 0, 0
local dead = {}
for _, member in ipairs(members) do
  if returned >= want then break end
  looked = looked + 1
  local g, code, tag
  if form == 'o' then
    g, code, tag = game, member, ARGV[9]
  else
    g, code, tag = parse(member, form == 'c')
  end
  if g and (not byGame or g == game) then
    local value = redis.call('GET', prefix .. 'room:' .. tag .. ':' .. g .. ':' .. code)
    if not value then
      dead[#dead + 1] = {g, code, tag}
    elseif keeps(value, code, g, lobby, query, written) then
      matched = matched + 1
      if matched > skip then
        returned = returned + 1
        reply[#reply + 1] = value
      end
    end
  end
end
if ARGV[14] == '1' then
  for _, room in ipairs(dead) do forget(prefix, room[1], room[2], room[3]) end
  reply[2] = #dead
end
reply[1] = looked
reply[3] = matched
return reply
`);

/**
 * Members one {@linkcode PAGE} call looks at, at most: a call reads and matches an entry per
 * member (about 4 µs each with four seated players) while Redis serves nobody else, so a long
 * walk is cut into calls of about a millisecond.
 */
const PAGE_CALL_MEMBERS = 250;

/** Order of listings: creation time, then game name, then code. */
function oldestFirst(a: DirectoryRecord, b: DirectoryRecord): number {
  return a.createdAt - b.createdAt ||
    (a.gameName < b.gameName ? -1 : a.gameName > b.gameName ? 1 : 0) ||
    (a.roomCode < b.roomCode ? -1 : a.roomCode > b.roomCode ? 1 : 0);
}

/**
 * The `room:` value of a record: its JSON with the search terms last, `ids` before `terms`, so
 * the {@linkcode PAGE} script finds them in the text (`…"search":{"ids":"…","terms":"…"}}`).
 */
function entryJson(record: DirectoryRecord): string {
  const { search, ...rest } = record;
  return JSON.stringify(
    search === undefined ? rest : { ...rest, search: { ids: search.ids, terms: search.terms } },
  );
}

/** The `room-id:` value of a record. */
function roomIdValue(record: DirectoryRecord): string {
  return JSON.stringify({
    home: record.home,
    gameName: record.gameName,
    roomCode: record.roomCode,
    ...(record.appId !== undefined ? { appId: record.appId } : {}),
  });
}

/**
 * {@linkcode ClusterStore} on Redis (docs/spec/SERVER.md §8.3). A bucket take that fails (Redis down or
 * slow) falls back to this node's own buckets (§3.4, §8.4.3); everything else rejects.
 */
export class RedisStore implements ClusterStore {
  readonly #client: CommandConnection;
  readonly #keys: Keys;
  readonly #settings: StoreSettings;
  /** This node's clock: its schedule of scans only, never a time Redis keeps (docs/spec/SERVER.md §8.1). */
  readonly #now: () => number;
  readonly #fallback: Record<BucketKind, KeyedBuckets>;
  /** This node's own app buckets, answering while Redis cannot be reached. */
  readonly #appFallback = new AppFallbackBuckets();
  /**
   * Told about every command this store sends and the round trip of every answer
   * (docs/spec/SERVER.md §6.3 #19, #23, #63; publishes go through the bus and are not counted).
   * Set once the metrics exist.
   */
  onQuery: QueryObserver | undefined;
  /**
   * Told, with Redis's error reply, of every command Redis refused while answering (`OOM`,
   * `MISCONF`, `READONLY`: `refusalReason`, link_report.ts), and, with `undefined`, of every
   * write that was accepted: `needsMemory` `true` for those that may grow memory (a claim, a
   * bucket take, the counts per game), `false` for the liveness script (docs/spec/SERVER.md
   * §8.5.5 "Redis full", "Redis refuses writes"). Set by the owner (a `RefusalReport`,
   * link_report.ts, and the node).
   */
  onRefusal: ((refusal: unknown, needsMemory: boolean) => void) | undefined;
  readonly #link: RedisLink;

  /** A store on `link`'s command connection. */
  constructor(link: RedisLink, settings: StoreSettings) {
    this.#link = link;
    this.#client = link.command;
    this.#keys = new Keys(settings.prefix);
    this.#settings = settings;
    this.#now = settings.now ?? Date.now;
    this.#fallback = keyedBucketsPerKind(settings.buckets);
  }

  readonly #reachability = new Reachability();

  watchReachable(listener: (reachable: boolean) => void): void {
    this.#reachability.watch(listener);
  }

  /**
   * Whether the last call answered: a call that times out or fails for want of a connection
   * makes it `false`, the next answer (an error reply included) `true` (docs/spec/SERVER.md §8.5.5).
   */
  get reachable(): boolean {
    return this.#reachability.reachable;
  }

  #bounded<T>(promise: Promise<T>, what: string): Promise<T> {
    return bounded(promise, this.#settings.timeoutMs, what).then(
      (value) => {
        this.#reachability.answered(true);
        return value;
      },
      (error) => {
        // An error reply is an answer; a timeout or a connection failure is not.
        this.#reachability.answered(error instanceof ErrorReply);
        const refusal = refusalReason(error);
        if (refusal !== undefined) this.onRefusal?.(error, refusal === "oom");
        // The address reaches a replica (a failover it has not followed): only new connections
        // can reach the primary (docs/spec/SERVER.md §8.5.5 "Redis refuses writes").
        if (refusal === "readonly") this.#link.reopen();
        throw error;
      },
    );
  }

  /**
   * Sends one command, counted and timed for {@linkcode RedisStore.onQuery}: the round trip
   * ends with Redis's reply, an error reply included; a command that fails without one (link
   * down, connection lost) is counted but not timed.
   */
  readonly #send = <T = unknown>(args: string[]): Promise<T> => {
    const observer = this.onQuery;
    if (observer === undefined) return this.#client.sendCommand<T>(args);
    observer.sent();
    const start = performance.now();
    return this.#client.sendCommand<T>(args).then((reply) => {
      observer.answered((performance.now() - start) / 1000);
      return reply;
    }, (error) => {
      if (error instanceof ErrorReply) observer.answered((performance.now() - start) / 1000);
      throw error;
    });
  };

  /** Loads every script (see {@linkcode ClusterStore.prepare}), within `forward_timeout_ms`. */
  async prepare(): Promise<void> {
    await this.#bounded(Promise.all(SCRIPTS.map((each) => each.load(this.#send))), "script load");
  }

  #script(script: Script, keys: string[], args: string[], what: string): Promise<unknown> {
    return this.#bounded(script.run(this.#send, keys, args), what);
  }

  #roomIdTtl(): number {
    return this.#settings.ttlMs + this.#settings.reconnectionWindowMs;
  }

  /**
   * The scripts' clock argument ({@linkcode redisNow}): "" (Redis's own clock), or the time of
   * {@linkcode StoreSettings.redisNow} in tests.
   */
  #redisNow(): string {
    const clock = this.#settings.redisNow;
    return clock === undefined ? "" : String(clock());
  }

  async claim(
    record: DirectoryRecord,
    caps: ClaimCaps,
    stale?: DirectoryRecord,
  ): Promise<ClaimResult> {
    const k = this.#keys;
    const hasApp = record.appId !== undefined;
    const reply = await this.#script(CLAIM, this.#recordKeys(record), [
      entryJson(record),
      record.roomId,
      record.roomCode,
      this.#redisNow(),
      String(this.#settings.ttlMs),
      String(this.#roomIdTtl()),
      String(caps.maxRoomsPerGame),
      String(caps.maxAppRooms ?? -1),
      stale?.roomId ?? "",
      roomIdValue(record),
      hasApp ? "1" : "0",
      String(caps.maxRoomsPerIp ?? -1),
      record.creatorIp !== undefined ? "1" : "0",
      k.ipRoomsPrefix(record.gameName),
      ...this.#indexArgs(record),
    ], "claim") as [string, ...unknown[]];
    switch (reply[0]) {
      case "ok":
        this.onRefusal?.(undefined, true);
        return { status: "ok" };
      case "maintenance":
        return { status: "maintenance" };
      case "taken":
        return { status: "taken", record: JSON.parse(String(reply[1])) };
      default: {
        const scope = reply[1] === "app" ? "app" : reply[1] === "ip" ? "ip" : "game";
        return {
          status: "capped",
          scope,
          count: Number(reply[2]),
          limit: scope === "app"
            ? caps.maxAppRooms!
            : scope === "ip"
            ? caps.maxRoomsPerIp!
            : caps.maxRoomsPerGame,
        };
      }
    }
  }

  /** The keys the claim and refresh scripts take for `record`, in their `KEYS` order. */
  #recordKeys(record: DirectoryRecord): string[] {
    const k = this.#keys;
    return [
      k.room(record.gameName, record.roomCode),
      k.gameRooms(record.gameName),
      k.appRooms(record.appId ?? ""),
      k.roomId(record.roomId),
      k.gameEmpty(record.gameName),
      k.ipRooms(record.gameName, record.creatorIp ?? ""),
      k.appEmpty(record.appId ?? ""),
      k.gameOrder(record.gameName),
      k.maintenance(),
      ...SORT_KEYS.map((key) => k.roomsBy(key)),
    ];
  }

  /**
   * The last arguments of the claim and refresh scripts ({@linkcode indexRoom}): creation time,
   * sort member, code sort member, players, spectators, lobby rank.
   */
  #indexArgs(record: DirectoryRecord): string[] {
    const k = this.#keys;
    return [
      String(record.createdAt),
      k.sortMember(record.gameName, record.roomCode),
      k.codeSortMember(record.gameName, record.roomCode),
      String(record.summary.players),
      String(record.summary.spectators),
      String(lobbyRank(record.summary.lobby_state)),
    ];
  }

  #refreshArgs(record: DirectoryRecord): [string[], string[]] {
    return [this.#recordKeys(record), [
      entryJson(record),
      record.roomId,
      record.roomCode,
      this.#redisNow(),
      String(this.#settings.ttlMs),
      String(this.#roomIdTtl()),
      roomIdValue(record),
      record.appId !== undefined ? "1" : "0",
      // "Empty" for the caps: no seat, or unattended (docs/spec/SERVER.md §8.3 "Claim").
      holdsCaps(record) ? "0" : "1",
      record.creatorIp !== undefined ? "1" : "0",
      ...this.#indexArgs(record),
    ]];
  }

  async refresh(record: DirectoryRecord): Promise<RefreshResult> {
    const [keys, args] = this.#refreshArgs(record);
    return String(await this.#script(REFRESH, keys, args, "refresh")) as RefreshResult;
  }

  async refreshAll(records: readonly DirectoryRecord[]): Promise<RefreshResult[]> {
    if (records.length === 0) return [];
    // Loads the script once if needed, then sends every call without waiting (pipelined).
    const [keys, args] = this.#refreshArgs(records[0]!);
    const first = await this.#script(REFRESH, keys, args, "refresh");
    const rest = records.slice(1).map((record) => {
      const [k, a] = this.#refreshArgs(record);
      return REFRESH.run(this.#send, k, a);
    });
    const replies = await this.#bounded(Promise.all(rest), "refresh");
    return [first, ...replies].map((reply) => String(reply) as RefreshResult);
  }

  /** Releases that failed, sent again once Redis answers ({@linkcode PendingReleases}). */
  readonly #releases = new PendingReleases(
    this.#reachability,
    (gameName, roomCode, roomId) => this.#release(gameName, roomCode, roomId),
  );

  /** Releases waiting for Redis to answer again. */
  get pendingReleases(): number {
    return this.#releases.size;
  }

  release(gameName: string, roomCode: string, roomId: string): Promise<void> {
    return this.#releases.release(gameName, roomCode, roomId);
  }

  async #release(gameName: string, roomCode: string, roomId: string): Promise<void> {
    const k = this.#keys;
    await this.#script(
      RELEASE,
      [
        k.room(gameName, roomCode),
        k.gameRooms(gameName),
        k.roomId(roomId),
        k.gameEmpty(gameName),
        k.gameOrder(gameName),
        ...SORT_KEYS.map((key) => k.roomsBy(key)),
      ],
      [
        roomId,
        roomCode,
        String(this.#settings.reconnectionWindowMs),
        k.prefix,
        k.ipRoomsPrefix(gameName),
        k.sortMember(gameName, roomCode),
        k.codeSortMember(gameName, roomCode),
      ],
      "release",
    );
  }

  async lookup(gameName: string, roomCode: string): Promise<DirectoryRecord | undefined> {
    const value = await this.#bounded(
      this.#send<string | null>(["GET", this.#keys.room(gameName, roomCode)]),
      "lookup",
    );
    return value === null || value === undefined ? undefined : JSON.parse(String(value));
  }

  /**
   * Oldest first (creation time, then code); rooms without players are left out. One script
   * call that reads entries only until `limit` are found (the `game-order` index); while that
   * index is incomplete, every entry of the game is read here instead.
   */
  async list(gameName: string, limit: number): Promise<DirectoryRecord[]> {
    if (limit <= 0) return [];
    const k = this.#keys;
    const listed = await this.#walk(
      [k.gameOrder(gameName), k.gameRooms(gameName)],
      k.room(gameName, ""),
      limit,
      true,
    );
    return listed ?? await this.#listAll(gameName, limit);
  }

  /**
   * The {@linkcode WALK} script over `keys`: at most `limit` entries, oldest first (creation
   * time, game, code); `undefined` when the index is incomplete.
   */
  async #walk(
    keys: string[],
    prefix: string,
    limit: number,
    withPlayers: boolean,
  ): Promise<DirectoryRecord[] | undefined> {
    const values = await this.#script(
      WALK,
      keys,
      [prefix, String(Math.min(limit, 2 ** 31)), withPlayers ? "1" : "0", this.#redisNow()],
      "list",
    ) as unknown[] | null;
    if (!Array.isArray(values)) return undefined;
    const records = values.map((value) => JSON.parse(String(value)) as DirectoryRecord);
    return records.sort(oldestFirst).slice(0, limit);
  }

  /** Every entry of the game, filtered and sorted here (the index is incomplete). */
  async #listAll(gameName: string, limit: number): Promise<DirectoryRecord[]> {
    const k = this.#keys;
    const codes = await this.#script(
      LIVE,
      [k.gameRooms(gameName)],
      [this.#redisNow()],
      "list",
    ) as string[];
    if (codes.length === 0) return [];
    const values = await this.#bounded(
      this.#send<(string | null)[]>([
        "MGET",
        ...codes.map((code) => k.room(gameName, String(code))),
      ]),
      "list",
    );
    const records: DirectoryRecord[] = [];
    for (const value of values) {
      if (value === null) continue;
      const record = JSON.parse(String(value)) as DirectoryRecord;
      if (record.summary.players > 0) records.push(record);
    }
    return records.sort(oldestFirst).slice(0, limit);
  }

  /**
   * Every room, oldest first (creation time, game, code), at most `limit`: the `rooms-by:created`
   * index from the first rank, {@linkcode PAGE_CALL_MEMBERS} members per call.
   */
  async all(limit: number): Promise<DirectoryRecord[]> {
    if (limit <= 0) return [];
    return (await this.page({ offset: 0, limit })).records;
  }

  /**
   * A page of the operator's listing (docs/spec/SERVER.md §8.3 "Page"). The order is a
   * `rooms-by:` index (a game's `game-order` for a game filter sorted by creation). Without
   * another filter the page is the index's ranks `offset` to `offset + limit - 1`: one call per
   * {@linkcode PAGE_CALL_MEMBERS} members, reading one entry each (a room whose entry is gone
   * leaves a gap until the order sweep, never a repeat on the next page). With one, the index is
   * walked from its first rank, a call per {@linkcode PAGE_CALL_MEMBERS} members, until the page
   * and one more room match or `budget` members were looked at (then `complete: false`); rooms
   * whose entry is gone are forgotten on the way.
   */
  async page(request: RoomPageRequest): Promise<RoomPage> {
    const { offset, limit, filter } = request;
    const sort = request.sort ?? OLDEST_FIRST;
    const k = this.#keys;
    const game = filter?.gameName;
    const byGameOrder = game !== undefined && sort.key === "created";
    const gameFilter = game !== undefined && !byGameOrder;
    const lobby = filter?.lobbyState ?? "";
    const query = filter?.query ?? "";
    const order = byGameOrder ? k.gameOrder(game) : k.roomsBy(sort.key);
    const call = async (
      first: number,
      count: number,
      skip: number,
      want: number,
      prune: boolean,
    ) => {
      const reply = await this.#script(PAGE, [order], [
        k.prefix,
        sort.descending ? "1" : "0",
        String(first),
        String(count),
        String(skip),
        String(want),
        byGameOrder ? "o" : sort.key === "code" ? "c" : "g",
        game ?? "",
        byGameOrder ? gameTag(game) : "",
        lobby,
        query,
        JSON.stringify(query).slice(1, -1),
        gameFilter ? "1" : "0",
        prune ? "1" : "0",
      ], "list") as unknown[];
      return {
        looked: Number(reply[0]),
        removed: Number(reply[1]),
        matched: Number(reply[2]),
        size: Number(reply[3]),
        records: reply.slice(4).map((value) => JSON.parse(String(value)) as DirectoryRecord),
      };
    };
    const records: DirectoryRecord[] = [];
    let examined = 0;
    if (!gameFilter && lobby === "" && query === "") {
      // The page is a range of ranks: as cheap at offset 100,000 as at 0.
      const end = offset + limit;
      let size = 0;
      for (let first = offset; first < end;) {
        const count = Math.min(PAGE_CALL_MEMBERS, end - first);
        const answer = await call(first, count, 0, count, false);
        examined += answer.looked;
        size = answer.size;
        records.push(...answer.records);
        if (answer.looked < count) break;
        first += count;
      }
      return { records, truncated: size > end, complete: true, examined };
    }
    const budget = request.budget ?? Infinity;
    let rank = 0;
    let skip = offset;
    let want = limit + 1;
    let ended = false;
    while (want > 0 && examined < budget) {
      const count = Math.min(PAGE_CALL_MEMBERS, budget - examined);
      const answer = await call(rank, count, skip, want, true);
      examined += answer.looked;
      records.push(...answer.records);
      want -= answer.records.length;
      skip = Math.max(0, skip - answer.matched);
      if (want > 0 && answer.looked < count) {
        ended = true;
        break;
      }
      // Forgotten members were before the next rank: it moves back by as many.
      rank += answer.looked - answer.removed;
    }
    const truncated = records.length > limit;
    return {
      records: records.slice(0, limit),
      truncated,
      complete: truncated || ended,
      examined,
    };
  }

  take(kind: BucketKind, key: string, now: number): Promise<BucketTake> {
    return this.#bucket(kind, key, now, true);
  }

  /**
   * Removes from the listing orders (`rooms-by:` sets, `game-order`) up to `count` rooms whose entry
   * is gone, looking at `count` members from rank `start`; resolves with the rank to start
   * from next time (0 after the end) and how many were removed. Rejects like every call.
   */
  async sweepOrder(start: number, count: number): Promise<{ next: number; removed: number }> {
    const reply = await this.#script(
      SWEEP_ORDER,
      [this.#keys.roomsBy("created")],
      [this.#keys.prefix, String(start), String(count)],
      "sweep",
    ) as unknown[];
    return { next: Number(reply[0]), removed: Number(reply[1]) };
  }

  sweepFallback(now: number): void {
    for (const buckets of Object.values(this.#fallback)) buckets.sweep(now);
  }

  check(kind: BucketKind, key: string, now: number): Promise<BucketTake> {
    return this.#bucket(kind, key, now, false);
  }

  takeAppToken(appId: string, perMinute: number, now: number): Promise<BucketTake> {
    const spec = { capacity: perMinute, windowMs: APP_BUCKET_WINDOW_MS };
    return this.#shared(
      this.#keys.bucket("app", appId),
      spec,
      true,
      () => this.#appFallback.take(appId, perMinute, now),
    );
  }

  /**
   * A take or look at the shared bucket, refilled by Redis's clock (the {@linkcode TAKE} script);
   * `now`, this node's clock, only times this node's fallback bucket when Redis cannot be
   * reached (docs/spec/SERVER.md §8.4.3).
   */
  #bucket(kind: BucketKind, key: string, now: number, take: boolean): Promise<BucketTake> {
    const fallback = this.#fallback[kind];
    return this.#shared(
      this.#keys.bucket(kind, key),
      this.#settings.buckets[kind],
      take,
      () => take ? fallback.take(key, now) : fallback.check(key, now),
    );
  }

  /**
   * A take (`take`) or look at the shared bucket `bucketKey` of `spec.capacity` tokens refilled
   * over `spec.windowMs` by Redis's clock (the {@linkcode TAKE} script); `fallback`, this node's
   * own bucket, answers when Redis cannot be reached (docs/spec/SERVER.md §8.4.3).
   */
  async #shared(
    bucketKey: string,
    spec: { capacity: number; windowMs: number },
    take: boolean,
    fallback: () => BucketTake,
  ): Promise<BucketTake> {
    try {
      const wait = Number(
        await this.#script(TAKE, [bucketKey], [
          String(spec.capacity),
          String(spec.windowMs),
          this.#redisNow(),
          take ? "1" : "0",
        ], take ? "take" : "check"),
      );
      if (take) this.onRefusal?.(undefined, true);
      return wait === 0 ? { ok: true } : { ok: false, retryAfterSecs: wait };
    } catch {
      return fallback();
    }
  }

  async #resolve(key: string, byCode: boolean): Promise<Resolved> {
    const keys = byCode ? [key, this.#keys.maintenance()] : [key];
    const reply = await this.#script(RESOLVE, keys, [this.#keys.prefix], "resolve") as unknown[];
    const maintenance = byCode ? { maintenance: Number(reply[2]) === 1 } : {};
    const value = String(reply[0]);
    if (value === "") return { status: "absent", ...maintenance };
    if (value === "gone") return { status: "gone" };
    const parsed = JSON.parse(value);
    if (parsed.gone === true) {
      return { status: "gone", home: parsed.home, homeAlive: Number(reply[1]) === 1 };
    }
    return {
      ...maintenance,
      status: "found",
      home: parsed.home,
      homeAlive: Number(reply[1]) === 1,
      record: { roomId: parsed.roomId, gameName: parsed.gameName, roomCode: parsed.roomCode },
      ...(parsed.summary ? { entry: parsed as DirectoryRecord } : {}),
    };
  }

  resolveCode(gameName: string, roomCode: string): Promise<Resolved> {
    return this.#resolve(this.#keys.room(gameName, roomCode), true);
  }

  async resolveRoomId(roomId: string): Promise<Resolved> {
    const resolved = await this.#resolve(this.#keys.roomId(roomId), false);
    if (resolved.status === "found") resolved.record.roomId = roomId;
    return resolved;
  }

  /**
   * Writes `instance:<node>` with TTL `T` and its member of the `instances` index (score: the
   * key's expiry by Redis's clock) in one script call (docs/spec/SERVER.md §8.3).
   */
  async writeLiveness(node: NodeId, liveness: Liveness): Promise<void> {
    await this.#script(LIVENESS, [this.#keys.instance(node), this.#keys.instances()], [
      JSON.stringify(liveness),
      node,
      String(this.#settings.ttlMs),
      this.#redisNow(),
    ], "liveness");
    this.onRefusal?.(undefined, false);
  }

  async writeGames(node: NodeId, games: InstanceGames): Promise<void> {
    await this.#bounded(
      this.#send([
        "SET",
        this.#keys.instanceGames(node),
        JSON.stringify(games),
        "PX",
        String(this.#settings.ttlMs),
      ]),
      "games",
    );
    this.onRefusal?.(undefined, true);
  }

  async readGames(nodes: readonly NodeId[]): Promise<Map<NodeId, InstanceGames | null>> {
    const found = new Map<NodeId, InstanceGames | null>();
    if (nodes.length === 0) return found;
    const keys = nodes.flatMap((node) => [
      this.#keys.instance(node),
      this.#keys.instanceGames(node),
    ]);
    const values = await this.#bounded(
      this.#send<(string | null)[]>(["MGET", ...keys]),
      "games",
    );
    nodes.forEach((node, i) => {
      const liveness = values[2 * i];
      if (liveness === null || liveness === undefined) return;
      const games = values[2 * i + 1];
      found.set(node, games === null || games === undefined ? null : JSON.parse(String(games)));
    });
    return found;
  }

  async deleteLiveness(node: NodeId): Promise<void> {
    // Pipelined, one round trip; the key decides whether a node is listed, so the order between
    // the two does not matter.
    await this.#bounded(
      Promise.all([
        this.#send(["DEL", this.#keys.instance(node), this.#keys.instanceGames(node)]),
        this.#send(["ZREM", this.#keys.instances(), node]),
      ]),
      "liveness",
    );
  }

  async liveness(node: NodeId): Promise<Liveness | undefined> {
    const value = await this.#bounded(
      this.#send<string | null>(["GET", this.#keys.instance(node)]),
      "liveness",
    );
    return value === null || value === undefined ? undefined : JSON.parse(String(value));
  }

  /** When to scan for instances outside the `instances` index (a rolling deploy). */
  readonly #unindexed = new UnindexedScans();

  /**
   * Every node with an `instance:` key (docs/spec/SERVER.md §8.3 `instances`): one script call
   * that prunes the `instances` index and reads the `instance:` key of each member (a member
   * whose key is gone is left out), at a cost that follows the number of instances, not of keys.
   * Rolling deploys: instances of a version without the index write only their key, so the
   * first listing of this store also scans the keyspace for `instance:*` keys (`SCAN` +
   * `MGET`, 1,000 keys a call), and while the last scan found one outside the index the scan
   * is repeated at most once per {@linkcode UNINDEXED_SCAN_MS}; the ones it found are read with
   * the index's members meanwhile. An unindexed instance started after a scan that found none
   * is not listed by this store. Rejects like every call.
   */
  async nodes(): Promise<Map<NodeId, Liveness>> {
    const now = this.#now();
    const scan = this.#unindexed.due(now);
    let scanned: Map<NodeId, Liveness> | undefined;
    if (scan) {
      scanned = new Map();
      const prefix = this.#keys.instance("");
      await this.#scanValues(`${globEscape(prefix)}*`, (key, value) => {
        scanned!.set(key.slice(prefix.length), JSON.parse(value));
      });
    }
    const reply = await this.#script(
      NODES,
      [this.#keys.instances()],
      [
        this.#keys.instance(""),
        String(this.#settings.ttlMs),
        this.#redisNow(),
        ...(scan ? [] : this.#unindexed.extra()),
      ],
      "nodes",
    ) as unknown[];
    const found = new Map<NodeId, Liveness>();
    for (let i = 0; i + 1 < reply.length; i += 2) {
      found.set(String(reply[i]), JSON.parse(String(reply[i + 1])));
    }
    this.#unindexed.settle(now, found, scanned);
    return found;
  }

  /**
   * Every key matching glob `pattern` with its value, a `SCAN` page (up to 1,000 keys) and one
   * `MGET` at a time (keys gone between the two are skipped), each call bounded as `"scan"`.
   */
  async #scanValues(pattern: string, each: (key: string, value: string) => void): Promise<void> {
    let cursor = "0";
    do {
      const [next, keys] = await this.#bounded(
        this.#send<[string, string[]]>(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"]),
        "scan",
      );
      cursor = String(next);
      if (keys.length === 0) continue;
      const values = await this.#bounded(
        this.#send<(string | null)[]>(["MGET", ...keys.map(String)]),
        "scan",
      );
      keys.forEach((key, i) => {
        const value = values[i];
        if (value !== null && value !== undefined) each(String(key), String(value));
      });
    } while (cursor !== "0");
  }

  /**
   * Redis's `maxmemory-policy` (`CONFIG GET`, docs/spec/SERVER.md §8.5.5 "Redis full"), or
   * `undefined` when Redis will not say: `CONFIG` disabled, renamed or denied by an ACL, as on
   * managed Redis (the error reply is swallowed). Rejects only when Redis does not answer.
   */
  async memoryPolicy(): Promise<string | undefined> {
    let reply: unknown;
    try {
      reply = await this.#bounded(
        this.#send(["CONFIG", "GET", "maxmemory-policy"]),
        "config",
      );
    } catch (error) {
      if (error instanceof ErrorReply) return undefined;
      throw error;
    }
    // RESP2: [name, value]; RESP3: {name: value}.
    const value = Array.isArray(reply)
      ? reply[1]
      : (reply as Record<string, unknown> | null)?.["maxmemory-policy"];
    return value === undefined || value === null ? undefined : String(value);
  }

  /**
   * Redis's `run_id` (`INFO server`, docs/spec/SERVER.md §8.3 "Epoch"), or `undefined` when Redis
   * will not say: `INFO` disabled, renamed or denied by an ACL, or an answer without a `run_id`
   * line (the error reply is swallowed). With Sentinel the command goes to the primary. Rejects
   * only when Redis does not answer.
   */
  async identity(): Promise<string | undefined> {
    let reply: unknown;
    try {
      reply = await this.#bounded(this.#send(["INFO", "server"]), "info");
    } catch (error) {
      if (error instanceof ErrorReply) return undefined;
      throw error;
    }
    return runIdOf(String(reply));
  }

  async setMaintenance(enabled: boolean): Promise<void> {
    const key = this.#keys.maintenance();
    await this.#bounded(
      this.#send(enabled ? ["SET", key, "1"] : ["DEL", key]),
      "maintenance",
    );
  }

  async maintenance(): Promise<boolean> {
    const key = this.#keys.maintenance();
    return Number(await this.#bounded(this.#send(["EXISTS", key]), "maintenance")) === 1;
  }

  /**
   * Reads the epoch, creating it when missing (the {@linkcode EPOCH} script: one call, the
   * creation time by Redis's clock), with its age by Redis's clock (docs/spec/SERVER.md §8.3
   * "Epoch"). An epoch an earlier version created while its clock ran ahead has a negative age:
   * answered as 0. Rejects like every call.
   */
  async epoch(): Promise<EpochRead> {
    const reply = await this.#script(
      EPOCH,
      [this.#keys.epoch()],
      [crypto.randomUUID(), this.#redisNow()],
      "epoch",
    ) as [unknown, unknown];
    const epoch = JSON.parse(String(reply[0]));
    return { ...epoch, ageMs: Math.max(0, Number(reply[1]) - epoch.createdAt) };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
