/**
 * Room lookup and listing over HTTP (docs/spec/SERVER.md §1.10, docs/spec/EXTENSIONS.md E5/E6): "join by code"
 * screens can check a code before connecting. Each request takes a token from the client IP's
 * join-attempt bucket, the same one `JoinRoom` uses, so codes are no cheaper to enumerate here.
 * Both read the room directory (docs/spec/SERVER.md §8.4.3 "HTTP lookup and listing"), never the engine,
 * so any node of a cluster answers them.
 *
 * @module
 */
import { type Awaitable, then } from "../coordination/awaitable.ts";
import type { TokenBuckets } from "../coordination/buckets.ts";
import type { RoomDirectory, RoomSummary } from "../coordination/directory.ts";
import { joinLimitReason } from "../engine/rate_limits.ts";
import type { EdgeEvent } from "../transport/events.ts";
import { checkGameName, checkRoomCode } from "../engine/validation.ts";
import { AppRegistry, type AuthOptions } from "../engine/app_auth.ts";
import { gameScope } from "../engine/room.ts";

/** Settings of {@linkcode roomRoutes}. */
export interface RoomRouteOptions {
  /** Answers the lookups and listings. */
  directory: RoomDirectory;
  /** The per-IP join buckets, shared with `JoinRoom`; absent = unlimited. */
  buckets?: TokenBuckets;
  /** `security.public_room_listing`: serve `GET /v2/rooms?game_name=`. @default false */
  publicRoomListing: boolean;
  /** `protocol.room_code_length`. @default 6 */
  roomCodeLength: number;
  /** `protocol.max_game_name_length` in UTF-8 bytes. @default 64 */
  maxGameNameLength: number;
  /**
   * The directory's game key for a request (auth enabled, issue 14 item 12): the game name
   * in the namespace of the app the request names (`?app_id=`, with header `X-App-Secret` for
   * apps that have a secret), or `undefined` when it names no such app — then every lookup is
   * 404 and every listing empty, so rooms of one app are never visible to another.
   * @default the game name itself (auth disabled: one namespace)
   */
  scope?: (request: Request, gameName: string) => string | undefined;
  /**
   * Cluster mode: whether the epoch's grace window runs at `now` (ms); while it does, a lookup of
   * a code the directory does not know answers 503 instead of 404, because its room may be alive
   * on a home that has not re-registered yet (docs/spec/SERVER.md §8.3 "Grace window").
   * @default never
   */
  inGrace?: (now: number) => boolean;
  /**
   * Cluster mode: whether the shared store answers. Read after the bucket take (which falls back
   * to this node's bucket when Redis does not answer): `false` answers 503 at once instead of
   * waiting for the directory too (docs/spec/SERVER.md §8.5.5 "Redis unreachable"). @default always
   */
  reachable?: () => boolean;
  /** Clock in ms. @default Date.now */
  now?: () => number;
  /** Receives a `rate_limited` event for each request refused with 429 (metrics, logs). */
  onEvent?: (event: EdgeEvent) => void;
}

/**
 * Answers a request for a room route, or returns `undefined` when `path` is not one (then the
 * caller's 404 applies — also for the listing when it is disabled).
 */
export type RoomRoutes = (
  request: Request,
  path: string,
  ip: string,
) => Awaitable<Response> | undefined;

/** Most rooms in one listing (docs/spec/SERVER.md §1.10). */
export const MAX_LISTED_ROOMS = 100;

const LOOKUP_PREFIX = "/v2/rooms/";
const LISTING_PATH = "/v2/rooms";
const HEADERS = { "content-type": "application/json", "cache-control": "no-store" };

function reply(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...HEADERS, ...headers } });
}

function notFound(): Response {
  return reply(404, { message: "Room not found", error_code: "ROOM_NOT_FOUND" });
}

/** The answer while the cluster store is unreachable or in its grace window (§1.10, §8.3). */
function unavailable(): Response {
  return reply(503, {
    message: "Service temporarily unavailable",
    error_code: "SERVICE_UNAVAILABLE",
  });
}

/** `answer`, or 503 when it is a Promise that rejects (the cluster store did not answer). */
function orUnavailable(answer: Awaitable<Response>): Awaitable<Response> {
  return answer instanceof Promise ? answer.catch(unavailable) : answer;
}

function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/**
 * {@linkcode RoomRouteOptions.scope} for `auth` (issue 14 item 12, docs/spec/SERVER.md §1.10): with
 * authentication required, the namespace of the app named by `?app_id=` (with header
 * `X-App-Secret` when the app has a secret), `undefined` for a request naming no such app; with
 * authentication off, `undefined` (the game name itself is the namespace).
 */
export function appRoomScope(
  auth: AuthOptions | undefined,
): ((request: Request, gameName: string) => string | undefined) | undefined {
  if (!auth?.required) return undefined;
  const apps = new AppRegistry(auth.apps);
  return (request, gameName) => {
    const appId = new URL(request.url).searchParams.get("app_id");
    if (appId === null) return undefined;
    const secret = request.headers.get("x-app-secret") ?? undefined;
    return apps.verify(appId, secret) ? gameScope(gameName, appId) : undefined;
  };
}

/** Builds the handler for `GET /v2/rooms/{game_name}/{room_code}` and `GET /v2/rooms`. */
export function roomRoutes(options: RoomRouteOptions): RoomRoutes {
  const now = options.now ?? Date.now;

  /** Takes a join token, then answers with `serve()`, or 429 when the bucket is empty. */
  function limited(ip: string, serve: () => Awaitable<Response>): Awaitable<Response> {
    if (!options.buckets) return serve();
    return then(options.buckets.take("join", ip, now()), (taken) => {
      if (taken.ok) return options.reachable?.() === false ? unavailable() : serve();
      options.onEvent?.({ type: "rate_limited", scope: "join" });
      return reply(429, {
        message: joinLimitReason(taken.retryAfterSecs),
        error_code: "RATE_LIMIT_EXCEEDED",
      }, { "retry-after": String(taken.retryAfterSecs) });
    }) as Awaitable<Response>;
  }

  const scopeOf = options.scope ?? ((_request: Request, gameName: string) => gameName);

  function lookup(request: Request, segments: string[]): Awaitable<Response> {
    const [gameName, code] = segments.map(decodeSegment);
    if (gameName === undefined || code === undefined) return notFound();
    if (checkGameName(gameName, options.maxGameNameLength) !== undefined) return notFound();
    if (checkRoomCode(code, options.roomCodeLength) !== undefined) return notFound();
    const scope = scopeOf(request, gameName);
    if (scope === undefined) return notFound();
    return orUnavailable(then(
      options.directory.lookup(scope, code.toUpperCase()),
      (record) =>
        record
          ? reply(200, record.summary)
          : options.inGrace?.(now()) === true
          ? unavailable()
          : notFound(),
    ) as Awaitable<Response>);
  }

  function listing(request: Request): Awaitable<Response> {
    const gameName = new URL(request.url).searchParams.get("game_name");
    if (gameName === null || checkGameName(gameName, options.maxGameNameLength) !== undefined) {
      return reply(400, { message: "game_name is required", error_code: "INVALID_GAME_NAME" });
    }
    const scope = scopeOf(request, gameName);
    if (scope === undefined) return reply(200, { game_name: gameName, rooms: [] });
    return orUnavailable(then(options.directory.list(scope, MAX_LISTED_ROOMS), (records) => {
      const rooms: RoomSummary[] = records.map((record) => record.summary);
      return reply(200, { game_name: gameName, rooms });
    }) as Awaitable<Response>);
  }

  return (request, path, ip) => {
    let segments: string[] | undefined;
    if (path.startsWith(LOOKUP_PREFIX)) {
      segments = path.slice(LOOKUP_PREFIX.length).split("/");
      if (segments.length !== 2) return undefined;
    } else if (path !== LISTING_PATH || !options.publicRoomListing) {
      return undefined;
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response(null, { status: 405, headers: { allow: "GET, HEAD" } });
    }
    return limited(ip, () => segments ? lookup(request, segments) : listing(request));
  };
}
