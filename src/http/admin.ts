/**
 * The operator API and console (docs/spec/EXTENSIONS.md E12), present only when `security.admin_token` is
 * set. `/admin` and the console's assets under `/admin/` are served without the token (the page
 * holds no data); every request under `/admin/api/` must carry `Authorization: Bearer <token>`,
 * checked in constant time before routing. Wrong Bearer tokens take from a per-IP bucket (10 a
 * minute); an IP whose bucket is empty gets `429` before its token is looked at, so guessing
 * stays slow. Requests without a Bearer credential are `401` without a charge. Answers carry no
 * CORS headers (same origin only), CORS preflights get `403` and the token is never logged.
 *
 * Rooms are read through the room directory and changed through the room command entry
 * (`Edge.command` → `Router.command`), so in a cluster every list covers every node and every
 * action reaches the room's home.
 *
 * | method | path | answer |
 * |---|---|---|
 * | GET | `/admin/api/overview` | live counts, maintenance, games, the current sample |
 * | GET | `/admin/api/games` | rooms, players and spectators per game (cluster: bounded per instance, `other`) |
 * | GET | `/admin/api/rooms?game_name=&q=&lobby_state=&sort=&limit=&offset=` | rooms in detail, oldest first or as sorted |
 * | GET | `/admin/api/rooms/{game}/{code}` | one room in detail |
 * | DELETE | `/admin/api/rooms/{game}/{code}` | close the room |
 * | DELETE | `/admin/api/rooms/{game}/{code}/players/{player_id}` | remove one player |
 * | GET, PUT | `/admin/api/maintenance` | maintenance mode; PUT `{"enabled": bool}` |
 * | GET | `/admin/api/history` | samples of the main figures (ring) |
 * | GET | `/admin/api/events` | Server-Sent Events: `sample`, `room`, `action` |
 *
 * Errors are JSON `{message, error_code}`. An action whose outcome is unknown (sent to Redis or
 * the room's home, no answer in time) is `504 OUTCOME_UNKNOWN` with `outcome: "unknown"`; every
 * attempted action is logged with its outcome (`ok`, `refused`, `unknown`).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type Awaitable, then } from "../coordination/awaitable.ts";
import {
  type DirectoryRecord,
  OLDEST_FIRST,
  ROOM_SORT_KEYS,
  type RoomDirectory,
  type RoomFilter,
  type RoomSort,
  type RoomSortKey,
} from "../coordination/directory.ts";
import { countEntries, type GameTotals, listGames } from "../coordination/game_counts.ts";
import { NoAnswer } from "../coordination/no_answer.ts";
import type { CommandReply, RoomCommand } from "../coordination/router.ts";
import type { RoomDetail, RoomSummary } from "../engine/effects.ts";
import { KeyedBuckets } from "../engine/token_bucket.ts";
import { checkGameName, checkRoomCode } from "../engine/validation.ts";
import type { FeedEvent, FeedSample, OperatorFeed } from "../metrics/operator_feed.ts";
import { bearerMatches, isBearerCredential } from "./auth.ts";
import { notFound } from "./responses.ts";
import { type Asset, serveAsset } from "./static_files.ts";

const log = getLogger(["signal-fish", "admin"]);

/** Limits of the operator API (SECURITY.md "Operator console"). */
export interface AdminLimits {
  /** Failed authentications per client IP per minute before `429`. @default 10 */
  failedAttemptsPerMinute: number;
  /** Client IPs whose failed attempts are remembered (oldest forgotten first). @default 10000 */
  maxTrackedIps: number;
  /** Open event streams per client IP. @default 4 */
  maxStreamsPerIp: number;
  /** Open event streams in all. @default 32 */
  maxStreams: number;
  /** Bytes queued for one event stream before its reader counts as slow and is dropped. @default 262144 */
  maxStreamBufferedBytes: number;
  /** Largest accepted request body, bytes. @default 1024 */
  maxBodyBytes: number;
  /** Most rooms in one listing. @default 500 */
  maxListedRooms: number;
  /**
   * Most rooms a filtered listing looks at (cluster mode: index members read from Redis, in
   * calls of 250), in its sort order from the first; past it the listing answers what it found
   * with `complete: false`. One process looks at every room. @default 20000
   */
  maxExaminedRooms: number;
}

/** The defaults of {@linkcode AdminLimits}. */
export const DEFAULT_ADMIN_LIMITS: Readonly<AdminLimits> = {
  failedAttemptsPerMinute: 10,
  maxTrackedIps: 10_000,
  maxStreamsPerIp: 4,
  maxStreams: 32,
  maxStreamBufferedBytes: 262_144,
  maxBodyBytes: 1024,
  maxListedRooms: 500,
  maxExaminedRooms: 20_000,
};

/** What the operator routes need from the running server. */
export interface AdminOptions {
  /** `security.admin_token` (at least 32 characters, checked by the configuration). */
  token: string;
  /** Where rooms are listed (every node's in a cluster). */
  directory: RoomDirectory;
  /** Runs a room command at the room's home (`Edge.command({kind: "room"})`). */
  command: (command: RoomCommand, now: number) => Awaitable<CommandReply>;
  /**
   * Maintenance mode (no new rooms) on or off: this process's engine, or in cluster mode every
   * instance's (the shared `maintenance` key, docs/spec/SERVER.md §8.3). A rejection with
   * `NoAnswer` (sent, no answer in time: it may still take effect) is a `504`, any other (not
   * sent) a `503`.
   */
  setMaintenance: (enabled: boolean, now: number) => Awaitable<void>;
  /** Whether maintenance mode is on (cluster mode: read from Redis, the last known on failure). */
  maintenance: () => Awaitable<boolean>;
  /**
   * The counts per game of `/admin/api/games` and the overview: one process's engine counts
   * (exact, live), or in cluster mode every instance's `instance-games:` key summed
   * (`ClusterNode.games`, docs/spec/SERVER.md §8.3; a rejection is a `503`).
   * @default counted from every entry of `directory` (a walk over every room)
   */
  games?: () => Awaitable<GameTotals>;
  /** Samples, history and the live events. */
  feed: OperatorFeed;
  /** Extra figures for the overview (`/v2/status` fields). */
  status: () => Record<string, unknown>;
  /** `protocol.room_code_length`. */
  roomCodeLength: number;
  /** `protocol.max_game_name_length`. */
  maxGameNameLength: number;
  /** Limits; missing fields take {@linkcode DEFAULT_ADMIN_LIMITS}. */
  limits?: Partial<AdminLimits>;
  /** Clock in ms. @default Date.now */
  now?: () => number;
}

/** The operator routes: a handler plus what shutdown needs. */
export interface AdminRoutes {
  /** Answers a request under `/admin`, or `undefined` when `path` is not one (then 404). */
  handle(request: Request, path: string, ip: string): Awaitable<Response> | undefined;
  /** Open event streams. */
  readonly streams: number;
  /** Ends every event stream (shutdown: the listener waits for open responses). */
  close(): void;
}

/** True for `/admin` and every path under `/admin/`. */
export function isAdminPath(path: string): boolean {
  return path === "/admin" || path.startsWith("/admin/");
}

const API_PREFIX = "/admin/api/";
const JSON_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };
/** The console may load its own scripts and styles and talk to its own origin, nothing else. */
const PAGE_HEADERS = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; " +
    "frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};
/** The largest `offset` of `/admin/api/rooms` (a page is read from the first matching room on). */
const MAX_OFFSET = 100_000;
/** The lobby states `/admin/api/rooms?lobby_state=` takes (docs/spec/PROTOCOL.md §7.4). */
const LOBBY_STATES: ReadonlySet<string> = new Set(["waiting", "lobby", "finalized"]);
/** `/admin/api/rooms?sort=`: a key of {@linkcode ROOM_SORT_KEYS}, `-` first for descending. */
const SORT_PARAM = new RegExp(`^(-?)(${ROOM_SORT_KEYS.join("|")})$`);

/** The `sort=` value of `sort` (`players`, `-players`, …). */
function sortParam(sort: RoomSort): string {
  return `${sort.descending ? "-" : ""}${sort.key}`;
}
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The console's asset paths (`admin_assets.ts`, loaded on the first request for one of them). */
const ASSET_PATHS: ReadonlySet<string> = new Set([
  "/admin",
  "/admin/",
  "/admin/admin.js",
  "/admin/admin.css",
  "/admin/uplot.js",
  "/admin/uplot.css",
]);
let assets: Promise<ReadonlyMap<string, Asset>> | undefined;

/** A JSON answer. */
function reply(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

/** A JSON error answer `{message, error_code}`. */
function problem(
  status: number,
  message: string,
  code: string,
  headers: Record<string, string> = {},
): Response {
  return reply(status, { message, error_code: code }, headers);
}

/**
 * `504 OUTCOME_UNKNOWN` with `outcome: "unknown"`: an action went out and `why` (no answer in
 * time), so it may or may not take effect; the console reads the state again
 * (docs/spec/EXTENSIONS.md E12).
 */
function outcomeUnknown(why: string): Response {
  return reply(504, {
    message: `${why}: the outcome is unknown (the action may still take effect); ` +
      "read the state again",
    error_code: "OUTCOME_UNKNOWN",
    outcome: "unknown",
  });
}

function methodNotAllowed(allow: string): Response {
  return problem(405, `Method not allowed (allowed: ${allow})`, "METHOD_NOT_ALLOWED", { allow });
}

function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** Reads a JSON body of at most `max` bytes; a problem response when it is not one. */
async function readJson(request: Request, max: number): Promise<unknown | Response> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > max) {
    await request.body?.cancel();
    return problem(413, `Request body too large (max ${max} bytes)`, "PAYLOAD_TOO_LARGE");
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    for await (const chunk of request.body) {
      size += chunk.byteLength;
      if (size > max) {
        return problem(413, `Request body too large (max ${max} bytes)`, "PAYLOAD_TOO_LARGE");
      }
      chunks.push(chunk);
    }
  }
  const text = new TextDecoder().decode(concat(chunks, size));
  try {
    return JSON.parse(text);
  } catch {
    return problem(400, "Request body is not valid JSON", "INVALID_INPUT");
  }
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * How an attempted operator action ended, as logged and sent on the event stream
 * (docs/spec/EXTENSIONS.md E12): carried out, refused (nothing was done: not found, or it did not
 * reach Redis or the room's home), or unknown (sent without an answer in time; it may still take
 * effect).
 */
export type ActionOutcome = "ok" | "refused" | "unknown";

/** A room in a listing: its detail from the home, or the directory's summary if unreachable. */
type ListedRoom =
  | (RoomDetail & { home: string })
  | (RoomSummary & {
    home: string;
    created_at: number;
    unreachable: true;
  });

/** Builds the operator routes (docs/spec/EXTENSIONS.md E12). */
export function adminRoutes(options: AdminOptions): AdminRoutes {
  const limits: AdminLimits = { ...DEFAULT_ADMIN_LIMITS, ...options.limits };
  const now = options.now ?? Date.now;
  const failures = new KeyedBuckets(limits.failedAttemptsPerMinute, 60_000, limits.maxTrackedIps);
  const streamsByIp = new Map<string, number>();
  const closers = new Set<() => void>();

  /**
   * Checks the bearer token (docs/spec/EXTENSIONS.md E12); a response when the request may not go
   * on. An address whose failure bucket is empty gets `429` before the token is looked at. Only a
   * wrong Bearer credential takes from the bucket: a request without one (no `Authorization`
   * header, another scheme) could not have matched any token, so it is a `401` without a charge —
   * otherwise any page the operator visits could empty the bucket with credential-less requests
   * and lock the console out (SECURITY.md "Operator console").
   */
  function authenticate(request: Request, ip: string): Response | undefined {
    const t = now();
    failures.sweepDue(t);
    const blocked = failures.check(ip, t);
    if (!blocked.ok) return tooManyAttempts(blocked.retryAfterSecs);
    const header = request.headers.get("authorization");
    if (bearerMatches(header, options.token)) return undefined;
    if (isBearerCredential(header)) {
      const taken = failures.take(ip, t);
      log.info("Operator API authentication failed from {client_ip}", { client_ip: ip });
      if (!taken.ok) return tooManyAttempts(taken.retryAfterSecs);
    }
    return problem(401, "A valid operator token is required", "UNAUTHORIZED", {
      "www-authenticate": 'Bearer realm="signal-fish-admin"',
    });
  }

  function tooManyAttempts(retryAfterSecs: number): Response {
    return problem(
      429,
      `Too many failed authentication attempts; retry in ${retryAfterSecs} s`,
      "RATE_LIMIT_EXCEEDED",
      { "retry-after": String(retryAfterSecs) },
    );
  }

  /**
   * Logs an operator action that was attempted, with its outcome, and tells the event stream
   * (docs/spec/EXTENSIONS.md E12: every action is logged, whether it was carried out, refused or
   * its outcome is unknown).
   */
  function audit(action: string, target: string, ip: string, outcome: ActionOutcome): void {
    log.info("Operator action {action} on {target} from {client_ip}: {outcome}", {
      action,
      target,
      client_ip: ip,
      outcome,
    });
    options.feed.publish({ event: "action", data: { action, target, outcome, at: now() } });
  }

  /** `{game}/{code}` segments checked like the protocol checks them. */
  function roomTarget(
    gameSegment: string,
    codeSegment: string,
  ): { gameName: string; roomCode: string } | Response {
    const gameName = decodeSegment(gameSegment);
    const code = decodeSegment(codeSegment);
    if (gameName === undefined || code === undefined) {
      return problem(400, "Path segments are not valid percent-encoding", "INVALID_INPUT");
    }
    // With app auth a room's directory name is `<app_id>\u0001<game>` (issue 14 item 12,
    // `gameScope`): the console sends it back as listed; the game part is what is checked.
    const gameProblem = checkGameName(
      gameName.slice(gameName.lastIndexOf("\u0001") + 1),
      options.maxGameNameLength,
    );
    if (gameProblem) return problem(400, gameProblem, "INVALID_GAME_NAME");
    const codeProblem = checkRoomCode(code, options.roomCodeLength);
    if (codeProblem) return problem(400, codeProblem, "INVALID_ROOM_CODE");
    return { gameName, roomCode: code.toUpperCase() };
  }

  /**
   * The answer to a failed room command: `404` (no such room or player), `503` (it did not
   * reach the room's home: nothing was done), and for an action whose command went out without
   * an answer in time `504` with `outcome: "unknown"` (it may still be carried out; a read gets
   * `503`).
   */
  function commandFailed(reply: CommandReply & { ok: false }, action = false): Response {
    switch (reply.reason) {
      case "not_found":
        return problem(404, "Room not found", "ROOM_NOT_FOUND");
      case "player_not_found":
        return problem(404, "No such player in this room", "PLAYER_NOT_FOUND");
      case "unreachable":
        return problem(503, "The room's home did not answer", "SERVICE_UNAVAILABLE");
      case "no_answer":
        return action
          ? outcomeUnknown("The room's home did not answer in time")
          : problem(503, "The room's home did not answer", "SERVICE_UNAVAILABLE");
    }
  }

  /** The outcome of a reply to a room action (see {@linkcode commandFailed}). */
  function outcomeOf(reply: CommandReply): ActionOutcome {
    if (reply.ok) return "ok";
    return reply.reason === "no_answer" ? "unknown" : "refused";
  }

  /**
   * `GET /admin/api/rooms/{game}/{code}` (docs/spec/EXTENSIONS.md E12): the room in detail from
   * its home, with `home` (the node holding it, as the directory names it: `local` in one
   * process). `404` when the directory has no such room, `503` when it or the home does not
   * answer.
   */
  function roomDetail(target: { gameName: string; roomCode: string }): Awaitable<Response> {
    const found = options.directory.lookup(target.gameName, target.roomCode);
    return then(found, (record): Awaitable<Response> => {
      if (record === undefined) return problem(404, "Room not found", "ROOM_NOT_FOUND");
      return then(options.command({ kind: "detail", ...target }, now()), (answer) => {
        if (!answer.ok) return commandFailed(answer);
        return reply(200, { ...answer.detail, home: record.home });
      });
    }) as Awaitable<Response>;
  }

  function closeRoom(target: { gameName: string; roomCode: string }, ip: string) {
    return then(options.command({ kind: "close", ...target }, now()), (answer) => {
      audit("close_room", `${target.gameName}/${target.roomCode}`, ip, outcomeOf(answer));
      if (!answer.ok) return commandFailed(answer, true);
      return reply(200, { closed: true, room: answer.summary });
    });
  }

  function removePlayer(
    target: { gameName: string; roomCode: string },
    playerSegment: string,
    ip: string,
  ): Awaitable<Response> {
    const playerId = decodeSegment(playerSegment) ?? "";
    if (!UUID.test(playerId)) {
      return problem(400, "Player id must be a UUID", "INVALID_INPUT");
    }
    const command: RoomCommand = { kind: "remove_player", ...target, playerId };
    return then(options.command(command, now()), (answer) => {
      audit(
        "remove_player",
        `${target.gameName}/${target.roomCode}/${playerId}`,
        ip,
        outcomeOf(answer),
      );
      if (!answer.ok) return commandFailed(answer, true);
      return reply(200, { removed: playerId, room: answer.summary });
    });
  }

  /**
   * `GET /admin/api/rooms` (docs/spec/EXTENSIONS.md E12): the rooms `game_name`, `q` and
   * `lobby_state` keep, in `sort`'s order (oldest first by default), from the `offset`-th
   * (0-based) on, at most `limit`, each in detail from its home. Answers `{rooms, offset,
   * truncated, sort, complete, examined}` (`truncated`: more rooms match after these;
   * `complete: false`: the listing stopped after looking at `examined` rooms, see
   * {@linkcode AdminLimits.maxExaminedRooms}); `400 INVALID_INPUT` for a bad `limit`, `offset`,
   * `lobby_state` or `sort`.
   */
  function listRooms(request: Request): Awaitable<Response> {
    const params = new URL(request.url).searchParams;
    const game = params.get("game_name");
    const query = (params.get("q") ?? "").trim().toLowerCase();
    const lobbyState = params.get("lobby_state");
    const limitParam = params.get("limit");
    const limit = limitParam === null ? limits.maxListedRooms : Number(limitParam);
    if (!Number.isInteger(limit) || limit < 1 || limit > limits.maxListedRooms) {
      return problem(
        400,
        `limit must be an integer from 1 to ${limits.maxListedRooms}`,
        "INVALID_INPUT",
      );
    }
    const offsetParam = params.get("offset");
    const offset = offsetParam === null ? 0 : Number(offsetParam);
    if (!Number.isInteger(offset) || offset < 0 || offset > MAX_OFFSET) {
      return problem(400, `offset must be an integer from 0 to ${MAX_OFFSET}`, "INVALID_INPUT");
    }
    if (lobbyState !== null && !LOBBY_STATES.has(lobbyState)) {
      return problem(
        400,
        `lobby_state must be one of ${[...LOBBY_STATES].join(", ")}`,
        "INVALID_INPUT",
      );
    }
    const sortText = params.get("sort");
    const sortMatch = sortText === null ? null : SORT_PARAM.exec(sortText);
    if (sortText !== null && sortMatch === null) {
      return problem(
        400,
        `sort must be one of ${ROOM_SORT_KEYS.join(", ")}, each ascending or, with "-" ` +
          `before it, descending (e.g. sort=-players)`,
        "INVALID_INPUT",
      );
    }
    const sort: RoomSort = sortMatch
      ? { key: sortMatch[2] as RoomSortKey, descending: sortMatch[1] === "-" }
      : OLDEST_FIRST;
    const filter: RoomFilter = {
      ...(game !== null ? { gameName: game } : {}),
      ...(query !== "" ? { query } : {}),
      ...(lobbyState !== null ? { lobbyState } : {}),
    };
    const page = options.directory.page({
      offset,
      limit,
      filter,
      sort,
      budget: limits.maxExaminedRooms,
    });
    return then(page, (found): Awaitable<Response> => {
      const details = found.records.map((record) => detailOf(record));
      const answer = (rooms: ListedRoom[]) =>
        reply(200, {
          rooms,
          offset,
          truncated: found.truncated,
          sort: sortParam(sort),
          complete: found.complete,
          examined: found.examined,
        });
      return details.some((detail) => detail instanceof Promise)
        ? Promise.all(details).then(answer)
        : answer(details as ListedRoom[]);
    }) as Awaitable<Response>;
  }

  function detailOf(record: DirectoryRecord): Awaitable<ListedRoom> {
    const target = { gameName: record.gameName, roomCode: record.roomCode };
    return then(options.command({ kind: "detail", ...target }, now()), (answer) => {
      // `game_name` is the directory's name of the room, which the actions take back: with app
      // auth it is the app's namespace, `<app_id>\u0001<game>` (issue 14 item 12).
      if (answer.ok && answer.detail) {
        return { ...answer.detail, game_name: record.gameName, home: record.home };
      }
      return {
        ...record.summary,
        home: record.home,
        created_at: record.createdAt,
        unreachable: true as const,
      };
    }) as Awaitable<ListedRoom>;
  }

  /** The counts per game: {@linkcode AdminOptions.games}, or every entry of the directory counted. */
  function games(): Awaitable<GameTotals> {
    if (options.games) return options.games();
    // Every room, not the listing's first ones: the counts are per game over all rooms.
    return then(
      options.directory.all(Number.MAX_SAFE_INTEGER),
      (records) => listGames(countEntries(records)),
    );
  }

  async function maintenance(request: Request, ip: string): Promise<Response> {
    const body = await readJson(request, limits.maxBodyBytes);
    if (body instanceof Response) return body;
    const enabled = (body as { enabled?: unknown } | null)?.enabled;
    if (typeof enabled !== "boolean") {
      return problem(400, 'Body must be {"enabled": true} or {"enabled": false}', "INVALID_INPUT");
    }
    const action = enabled ? "maintenance_on" : "maintenance_off";
    try {
      await options.setMaintenance(enabled, now());
    } catch (error) {
      log.warn("Cannot set maintenance mode: {error}", { error });
      if (error instanceof NoAnswer) {
        // Sent, not answered: Redis may still carry it out (a stalled Redis that resumes).
        audit(action, "server", ip, "unknown");
        return outcomeUnknown("Redis did not answer in time");
      }
      audit(action, "server", ip, "refused");
      return problem(503, "Service temporarily unavailable", "SERVICE_UNAVAILABLE");
    }
    audit(action, "server", ip, "ok");
    return reply(200, { enabled });
  }

  /** The live event stream: bounded per IP and in all; a slow reader is dropped. */
  function events(ip: string): Response {
    const mine = streamsByIp.get(ip) ?? 0;
    if (closers.size >= limits.maxStreams || mine >= limits.maxStreamsPerIp) {
      return problem(
        429,
        `Too many open event streams (max ${limits.maxStreamsPerIp} per address, ` +
          `${limits.maxStreams} in all)`,
        "TOO_MANY_STREAMS",
        { "retry-after": "5" },
      );
    }
    streamsByIp.set(ip, mine + 1);
    const encoder = new TextEncoder();
    let finished = false;
    let unsubscribe = () => {};
    let stop = () => {};
    const finish = () => {
      if (finished) return;
      finished = true;
      unsubscribe();
      closers.delete(stop);
      const left = (streamsByIp.get(ip) ?? 1) - 1;
      if (left > 0) streamsByIp.set(ip, left);
      else streamsByIp.delete(ip);
    };
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const send = (event: FeedEvent) => {
          if (finished) return;
          const size = controller.desiredSize;
          if (size !== null && size <= 0) {
            // The reader does not keep up: drop it rather than buffer without bound.
            log.info("Dropped a slow operator event stream of {client_ip}", { client_ip: ip });
            finish();
            // Aborting is the only way to end a response whose queue is full. Deno's server
            // prints the reason: one line, without a stack (this is not a bug).
            const reason = new Error("Slow reader");
            reason.stack = "Operator event stream dropped: slow reader";
            controller.error(reason);
            return;
          }
          controller.enqueue(
            encoder.encode(`event: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`),
          );
        };
        stop = () => {
          finish();
          try {
            controller.close();
          } catch {
            // Already errored or closed.
          }
        };
        closers.add(stop);
        controller.enqueue(encoder.encode("retry: 2000\n\n"));
        send({ event: "sample", data: options.feed.current(now()) });
        unsubscribe = options.feed.subscribe(send);
      },
      cancel: () => finish(),
    }, new ByteLengthQueuingStrategy({ highWaterMark: limits.maxStreamBufferedBytes }));
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-accel-buffering": "no",
      },
    });
  }

  /**
   * `answer`, or a 503 when it is a Promise that rejects: the cluster's directory did not answer
   * (docs/spec/SERVER.md §8.5.5 "Redis unreachable").
   */
  function orUnavailable(answer: Awaitable<Response>): Awaitable<Response> {
    if (!(answer instanceof Promise)) return answer;
    return answer.catch((error) => {
      log.warn("Cannot read the room directory: {error}", { error });
      return problem(503, "Service temporarily unavailable", "SERVICE_UNAVAILABLE");
    });
  }

  function api(request: Request, path: string, ip: string): Awaitable<Response> {
    const denied = authenticate(request, ip);
    if (denied) return denied;
    const method = request.method;
    const isGet = method === "GET" || method === "HEAD";
    const segments = path.slice(API_PREFIX.length).split("/");
    const [head, ...rest] = segments;
    switch (head) {
      case "overview":
        if (rest.length > 0) break;
        if (!isGet) return methodNotAllowed("GET, HEAD");
        return orUnavailable(
          then(games(), (totals) =>
            then(options.maintenance(), (maintenance) =>
              reply(200, {
                ...options.status(),
                maintenance,
                sample: options.feed.current(now()),
                games: totals.games,
                ...(totals.other ? { other_games: totals.other } : {}),
              }))) as Awaitable<Response>,
        );
      case "games":
        if (rest.length > 0) break;
        if (!isGet) return methodNotAllowed("GET, HEAD");
        return orUnavailable(then(games(), (totals) => reply(200, totals)));
      case "history": {
        if (rest.length > 0) break;
        if (!isGet) return methodNotAllowed("GET, HEAD");
        const samples: FeedSample[] = options.feed.history();
        return reply(200, { interval_ms: options.feed.historyIntervalMs, samples });
      }
      case "events":
        if (rest.length > 0) break;
        if (method !== "GET") return methodNotAllowed("GET");
        return events(ip);
      case "maintenance":
        if (rest.length > 0) break;
        if (isGet) return then(options.maintenance(), (enabled) => reply(200, { enabled }));
        if (method === "PUT") return maintenance(request, ip);
        return methodNotAllowed("GET, HEAD, PUT");
      case "rooms": {
        if (rest.length === 0 || (rest.length === 1 && rest[0] === "")) {
          if (!isGet) return methodNotAllowed("GET, HEAD");
          return orUnavailable(listRooms(request));
        }
        if (rest.length !== 2 && !(rest.length === 4 && rest[2] === "players")) break;
        const target = roomTarget(rest[0]!, rest[1]!);
        if (target instanceof Response) return target;
        if (rest.length === 4) {
          if (method !== "DELETE") return methodNotAllowed("DELETE");
          return removePlayer(target, rest[3]!, ip);
        }
        if (isGet) return orUnavailable(roomDetail(target));
        if (method === "DELETE") return closeRoom(target, ip);
        return methodNotAllowed("GET, HEAD, DELETE");
      }
    }
    return problem(404, `No operator API at ${path}`, "NOT_FOUND");
  }

  return {
    handle(request, path, ip) {
      if (!isAdminPath(path)) return undefined;
      // Same origin only: a CORS preflight (which only a page of another origin sends) is refused
      // with no CORS headers, before authentication, and charges nothing (SECURITY.md).
      if (request.method === "OPTIONS" && request.headers.has("access-control-request-method")) {
        return problem(
          403,
          "The operator API is same-origin only: cross-origin requests are refused",
          "UNAUTHORIZED",
        );
      }
      if (path.startsWith(API_PREFIX) || path === "/admin/api") {
        return api(request, path === "/admin/api" ? API_PREFIX : path, ip);
      }
      if (!ASSET_PATHS.has(path)) return notFound();
      assets ??= import("./admin_assets.ts").then((module) => module.ADMIN_ASSETS);
      return assets.then((loaded) => serveAsset(request, loaded.get(path)!, PAGE_HEADERS));
    },
    get streams() {
      return closers.size;
    },
    close() {
      for (const stop of [...closers]) stop();
    },
  };
}
