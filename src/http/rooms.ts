/**
 * Room lookup and listing over HTTP (docs/spec/SERVER.md §1.10, docs/spec/EXTENSIONS.md E5/E6): "join by code"
 * screens can check a code before connecting. Each request takes a token from the client IP's
 * join-attempt bucket, the same one `JoinRoom` uses, so codes are no cheaper to enumerate here.
 * Both read the room directory (docs/spec/SERVER.md §8.4.3 "HTTP lookup and listing"), never the engine,
 * so any node of a cluster answers them.
 *
 * With app authentication required (docs/spec/SERVER.md §3.3 note) a request names its app with
 * `?app_id=` and, for an app with a secret, header `X-App-Secret`. A request carrying that header
 * is a guess at the secret like an `Authenticate`: it draws from the same per-IP failure budget
 * (`rate_limit.max_auth_failures`, the `auth_failure` bucket — Redis in a cluster): an IP with
 * none left gets `429` before the secret is checked, and an unknown app or a wrong secret is a
 * `401` that takes one from it.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type Awaitable, OneAtATime, then } from "../coordination/awaitable.ts";
import type { BucketTake, TokenBuckets } from "../coordination/buckets.ts";
import type { RoomDirectory, RoomSummary } from "../coordination/directory.ts";
import { joinLimitReason } from "../engine/rate_limits.ts";
import type { EdgeEvent } from "../transport/events.ts";
import { checkGameName, checkRoomCode } from "../engine/validation.ts";
import { AppRegistry, type AuthOptions } from "../engine/app_auth.ts";
import { gameScope } from "../engine/room.ts";

const log = getLogger(["signal-fish", "http"]);

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
   * apps that have a secret), so rooms of one app are never visible to another; or why not
   * ({@linkcode AppVerdict}). Called only after the failure budget was checked for a request
   * that carries `X-App-Secret`. {@linkcode appRoomScope} builds it from the configured apps.
   * @default the game name itself (auth disabled: one namespace)
   */
  scope?: (request: Request, gameName: string) => AppVerdict;
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
 * Which app a room request names (docs/spec/SERVER.md §1.10, §3.3 note), as
 * {@linkcode RoomRouteOptions.scope} answers it.
 */
export type AppVerdict =
  /** The directory's game key: the game in the app's namespace. */
  | { ok: true; scope: string }
  /**
   * `no_app`: no `?app_id=` (a lookup is 404, a listing has no rooms, as before: nothing was
   * presented); `unknown_app`: no configured app has that id (`401` `INVALID_APP_ID`);
   * `missing_secret` / `wrong_secret`: the app has a secret and `X-App-Secret` is absent or
   * another (`401` `UNAUTHORIZED`).
   */
  | { ok: false; reason: "no_app" | "unknown_app" | "missing_secret" | "wrong_secret" };

/**
 * The header carrying an app's secret on the room routes (lower case, as `Headers` reads it).
 * A request with it is a guess at the secret and is charged when it fails.
 */
export const APP_SECRET_HEADER = "x-app-secret";

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
 * {@linkcode RoomRouteOptions.scope} for `auth` (issue 14 item 12, docs/spec/SERVER.md §1.10, §3.3
 * note): with authentication required, the namespace of the app named by `?app_id=` (with header
 * `X-App-Secret` when the app has a secret; compared in constant time) or why the request names
 * none; with authentication off, `undefined` (the game name itself is the namespace).
 */
export function appRoomScope(
  auth: AuthOptions | undefined,
): ((request: Request, gameName: string) => AppVerdict) | undefined {
  if (!auth?.required) return undefined;
  const apps = new AppRegistry(auth.apps);
  return (request, gameName) => {
    const appId = new URL(request.url).searchParams.get("app_id");
    if (appId === null) return { ok: false, reason: "no_app" };
    const app = apps.get(appId);
    if (app === undefined) return { ok: false, reason: "unknown_app" };
    const secret = request.headers.get(APP_SECRET_HEADER);
    if (app.appSecret !== undefined && secret === null) {
      return { ok: false, reason: "missing_secret" };
    }
    return apps.verify(appId, secret ?? undefined)
      ? { ok: true, scope: gameScope(gameName, appId) }
      : { ok: false, reason: "wrong_secret" };
  };
}

/** The refusal of a request naming an unknown app or without its right secret (§1.10). */
function appRefused(reason: "unknown_app" | "missing_secret" | "wrong_secret"): Response {
  return reply(
    401,
    reason === "unknown_app"
      ? { message: "Unknown app_id", error_code: "INVALID_APP_ID" }
      : reason === "missing_secret"
      ? { message: "This app needs its secret in header X-App-Secret", error_code: "UNAUTHORIZED" }
      : { message: "Wrong app secret", error_code: "UNAUTHORIZED" },
  );
}

/** The refusal of an address with no failed-authentication budget left (§1.10). */
function authBudgetSpent(retryAfterSecs: number): Response {
  return reply(429, {
    message: `Too many failed authentication attempts. Try again in ${retryAfterSecs} seconds.`,
    error_code: "RATE_LIMIT_EXCEEDED",
  }, { "retry-after": String(retryAfterSecs) });
}

const TAKEN: BucketTake = { ok: true };

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

  /**
   * The app check of docs/spec/SERVER.md §1.10 (auth required): `serve` with the request's
   * namespace, `none()` when it names no app, or the refusal. A request carrying `X-App-Secret`
   * is checked against the IP's failed-authentication budget first (`429` when it is spent,
   * before the secret is looked at) and charged one when its app is unknown or its secret
   * wrong, as `Authenticate` is (docs/spec/SERVER.md §3.3 note; in a cluster the budget is the
   * global one in Redis, as the edge's `Authenticate` reads it). A request without the header
   * cannot be a guess at a secret and is refused without a charge, so a page of another origin
   * (which may send only simple requests unless `security.cors_origins` lets it) cannot spend an
   * address's budget.
   */
  /** The last guess at an app secret of each address, while one is being checked. */
  const guesses = new OneAtATime();

  function withApp(
    request: Request,
    ip: string,
    gameName: string,
    serve: (scope: string) => Awaitable<Response>,
    none: () => Response,
  ): Awaitable<Response> {
    const scopeOf = options.scope;
    if (scopeOf === undefined) return serve(gameName);
    const buckets = options.buckets;
    const guess = buckets !== undefined && request.headers.has(APP_SECRET_HEADER);
    const check = (budget: Awaitable<BucketTake>): Awaitable<Response> =>
      then(budget, (left): Awaitable<Response> => {
        if (!left.ok) {
          options.onEvent?.({ type: "rate_limited", scope: "auth_failures" });
          return authBudgetSpent(left.retryAfterSecs);
        }
        const verdict = scopeOf(request, gameName);
        if (verdict.ok) return serve(verdict.scope);
        const reason = verdict.reason;
        if (reason === "no_app") return none();
        if (!guess || reason === "missing_secret") return appRefused(reason);
        log.warn("Refused a room request from {client_ip}: {reason}", {
          client_ip: ip,
          reason: reason === "unknown_app" ? "unknown app_id" : "wrong app secret",
        });
        return then(
          buckets!.take("auth_failure", ip, now()),
          () => appRefused(reason),
        ) as Awaitable<Response>;
      }) as Awaitable<Response>;
    if (!guess) return check(TAKEN);
    // One guess at a time per address: with the cluster's buckets (Redis, asynchronous)
    // concurrent guesses would all read the budget before any failure is taken.
    return guesses.run(ip, () => check(buckets.check("auth_failure", ip, now())));
  }

  function lookup(request: Request, segments: string[], ip: string): Awaitable<Response> {
    const [gameName, code] = segments.map(decodeSegment);
    if (gameName === undefined || code === undefined) return notFound();
    if (checkGameName(gameName, options.maxGameNameLength) !== undefined) return notFound();
    if (checkRoomCode(code, options.roomCodeLength) !== undefined) return notFound();
    return withApp(request, ip, gameName, (scope) =>
      then(
        options.directory.lookup(scope, code.toUpperCase()),
        (record) =>
          record
            ? reply(200, record.summary)
            : options.inGrace?.(now()) === true
            ? unavailable()
            : notFound(),
      ) as Awaitable<Response>, notFound);
  }

  function listing(request: Request, ip: string): Awaitable<Response> {
    const gameName = new URL(request.url).searchParams.get("game_name");
    if (gameName === null || checkGameName(gameName, options.maxGameNameLength) !== undefined) {
      return reply(400, { message: "game_name is required", error_code: "INVALID_GAME_NAME" });
    }
    return withApp(
      request,
      ip,
      gameName,
      (scope) =>
        then(options.directory.list(scope, MAX_LISTED_ROOMS), (records) => {
          const rooms: RoomSummary[] = records.map((record) => record.summary);
          return reply(200, { game_name: gameName, rooms });
        }) as Awaitable<Response>,
      () => reply(200, { game_name: gameName, rooms: [] }),
    );
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
    return limited(
      ip,
      () => orUnavailable(segments ? lookup(request, segments, ip) : listing(request, ip)),
    );
  };
}
