/**
 * Room lookup and listing over HTTP (SERVER.md §1.10, EXTENSIONS.md E5/E6): "join by code"
 * screens can check a code before connecting. Each request takes a token from the client IP's
 * join-attempt bucket, the same one `JoinRoom` uses, so codes are no cheaper to enumerate here.
 *
 * @module
 */
import type { Engine, RoomSummary } from "../engine/engine.ts";
import { joinLimitReason, type RateLimits } from "../engine/rate_limits.ts";
import { checkGameName, checkRoomCode } from "../engine/validation.ts";

/** Settings of {@linkcode roomRoutes}. */
export interface RoomRouteOptions {
  /** Answers the lookups. */
  engine: Engine;
  /** The per-IP buckets shared with the engine; absent = unlimited. */
  rateLimits?: RateLimits;
  /** `security.public_room_listing`: serve `GET /v2/rooms?game_name=`. @default false */
  publicRoomListing: boolean;
  /** `protocol.room_code_length`. @default 6 */
  roomCodeLength: number;
  /** `protocol.max_game_name_length` in UTF-8 bytes. @default 64 */
  maxGameNameLength: number;
  /** Clock in ms. @default Date.now */
  now?: () => number;
  /** Called for each request refused with 429 (counted like the engine's `rate_limited`). */
  onRateLimited?: () => void;
}

/**
 * Answers a request for a room route, or returns `undefined` when `path` is not one (then the
 * caller's 404 applies — also for the listing when it is disabled).
 */
export type RoomRoutes = (request: Request, path: string, ip: string) => Response | undefined;

/** Most rooms in one listing (SERVER.md §1.10). */
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

function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** Builds the handler for `GET /v2/rooms/{game_name}/{room_code}` and `GET /v2/rooms`. */
export function roomRoutes(options: RoomRouteOptions): RoomRoutes {
  const now = options.now ?? Date.now;

  /** Takes a join token; returns the 429 when the bucket is empty. */
  function limited(ip: string): Response | undefined {
    const taken = options.rateLimits?.takeJoin(ip, now());
    if (!taken || taken.ok) return undefined;
    options.onRateLimited?.();
    return reply(429, {
      message: joinLimitReason(taken.retryAfterSecs),
      error_code: "RATE_LIMIT_EXCEEDED",
    }, { "retry-after": String(taken.retryAfterSecs) });
  }

  function lookup(segments: string[], ip: string): Response {
    const refused = limited(ip);
    if (refused) return refused;
    const [gameName, code] = segments.map(decodeSegment);
    if (gameName === undefined || code === undefined) return notFound();
    if (checkGameName(gameName, options.maxGameNameLength) !== undefined) return notFound();
    if (checkRoomCode(code, options.roomCodeLength) !== undefined) return notFound();
    const room = options.engine.lookup(gameName, code.toUpperCase());
    return room ? reply(200, room) : notFound();
  }

  function listing(request: Request, ip: string): Response {
    const refused = limited(ip);
    if (refused) return refused;
    const gameName = new URL(request.url).searchParams.get("game_name");
    if (gameName === null || checkGameName(gameName, options.maxGameNameLength) !== undefined) {
      return reply(400, { message: "game_name is required", error_code: "INVALID_GAME_NAME" });
    }
    const rooms: RoomSummary[] = options.engine.list(gameName, MAX_LISTED_ROOMS);
    return reply(200, { game_name: gameName, rooms });
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
    return segments ? lookup(segments, ip) : listing(request, ip);
  };
}
