/**
 * App authentication (docs/spec/PROTOCOL.md §7.1.3, docs/spec/SERVER.md §3.1/§3.3): the allow-list of apps, the
 * constant-time secret check, the per-app `Authenticate` token bucket and the per-app room
 * count. Pure apart from hashing; time is passed in.
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";
import { sha256 } from "../util/secrets.ts";
import type { ErrorCode } from "../protocol/error_codes.ts";
import type { RateLimitInfo } from "../protocol/messages.ts";
import { APP_BUCKET_WINDOW_MS, TokenBucket } from "./token_bucket.ts";

/** One entry of `security.authorized_apps` (docs/spec/SERVER.md §2.7). */
export interface AuthorizedApp {
  /** Public id, matched exactly against `Authenticate.app_id`. */
  appId: string;
  /** Shared secret clients must send as `Authenticate.app_secret`; absent = none needed. */
  appSecret?: string;
  /** Returned as `Authenticated.app_name`. */
  appName: string;
  /** Most rooms existing at once that this app's connections created; absent = unlimited. */
  maxRooms?: number;
  /** Cap on `max_players` of rooms this app's connections create (and on the default). */
  maxPlayersPerRoom?: number;
  /** `Authenticate` attempts per 60 s for this app (token bucket); absent = unlimited. */
  rateLimitPerMinute?: number;
}

/** App authentication settings of the engine. */
export interface AuthOptions {
  /** `security.require_websocket_auth`. @default false */
  required: boolean;
  /** `security.authorized_apps`. @default [] */
  apps: readonly AuthorizedApp[];
  /** `websocket.auth_timeout_secs` × 1000: time to authenticate after connecting. @default 10_000 */
  timeoutMs: number;
  /** `protocol.sdk_compatibility.enforce` (docs/spec/PROTOCOL.md §7.1.4). @default false */
  enforceSdkGate: boolean;
}

/** Why an `Authenticate` failed: the `AuthenticationError` payload and whether to close. */
export interface AuthFailure {
  /** `AuthenticationError.error`, e.g. `"InvalidAppId"`. */
  error: string;
  errorCode: ErrorCode;
  /** Close with 1008 "Authentication failed" after the reply (all but the SDK gate). */
  close: boolean;
}

/** `per_minute` advertised for apps without `rate_limit_per_minute` (docs/spec/PROTOCOL.md §7.1.3). */
export const UNLIMITED_PER_MINUTE = 1000;
const U32_MAX = 4294967295;

/** `Authenticated.rate_limits` for a per-minute value: ×60 per hour, ×1440 per day, ≤ u32 max. */
export function rateLimitInfo(perMinute: number = UNLIMITED_PER_MINUTE): RateLimitInfo {
  return {
    per_minute: Math.min(perMinute, U32_MAX),
    per_hour: Math.min(perMinute * 60, U32_MAX),
    per_day: Math.min(perMinute * 1440, U32_MAX),
  };
}

/** The configured apps with their `Authenticate` buckets. */
export class AppRegistry {
  readonly #apps = new Map<string, AuthorizedApp>();
  readonly #secrets = new Map<string, Uint8Array>();
  readonly #buckets = new Map<string, TokenBucket>();

  /** Indexes `apps` by `appId`; secrets are kept only as SHA-256 digests. */
  constructor(apps: readonly AuthorizedApp[]) {
    for (const app of apps) {
      this.#apps.set(app.appId, app);
      if (app.appSecret !== undefined) this.#secrets.set(app.appId, sha256(app.appSecret));
      if (app.rateLimitPerMinute !== undefined) {
        this.#buckets.set(app.appId, new TokenBucket(app.rateLimitPerMinute, APP_BUCKET_WINDOW_MS));
      }
    }
  }

  /** The configured app with id `appId`, if any (a remote session's app, docs/spec/SERVER.md §8.2). */
  get(appId: string): AuthorizedApp | undefined {
    return this.#apps.get(appId);
  }

  /**
   * Whether `appId` is a configured app and `appSecret` its secret (constant-time), without
   * touching any bucket: how HTTP room lookups name their app when auth is enabled (issue 14
   * item 12).
   */
  verify(appId: string, appSecret: string | undefined): boolean {
    if (!this.#apps.has(appId)) return false;
    const expected = this.#secrets.get(appId);
    return !expected || timingSafeEqual(expected, sha256(appSecret ?? ""));
  }

  /**
   * The app bucket's capacity (`rate_limit_per_minute`, tokens per 60 s) that an `Authenticate`
   * naming `appId` with `appSecret` would take from: `undefined` when the app is unknown, the
   * secret wrong (constant-time) or the app has no bucket, since {@linkcode check} then takes
   * nothing. Cluster mode takes that token from the global bucket before the engine answers
   * (docs/spec/SERVER.md §3.3, §8.3 `bucket:app:<app_id>`).
   */
  rateLimitFor(appId: string, appSecret: string | undefined): number | undefined {
    const perMinute = this.#apps.get(appId)?.rateLimitPerMinute;
    return perMinute !== undefined && this.verify(appId, appSecret) ? perMinute : undefined;
  }

  /**
   * Steps 2–4 of docs/spec/PROTOCOL.md §7.1.3 for one `Authenticate` at `now` (ms): known app, secret
   * (SHA-256 digests compared in constant time), then the app bucket. This implementation
   * (SECURITY.md, issue 14 item 6) checks the secret before taking from the app bucket, so only
   * connections that proved the secret draw from it and wrong secrets cannot lock an app's
   * clients out; guessing is limited by the caller's per-IP failure bucket instead. `appTake`,
   * when given, is the outcome of a take from the app's global bucket (cluster mode,
   * docs/spec/SERVER.md §3.3) and stands for this process's own bucket, which is then not touched.
   * Returns the app or the failure.
   */
  check(
    appId: string,
    appSecret: string | undefined,
    now: number,
    appTake?: { ok: boolean },
  ): { ok: true; app: AuthorizedApp } | { ok: false; failure: AuthFailure } {
    const app = this.#apps.get(appId);
    if (!app) {
      return {
        ok: false,
        failure: { error: "InvalidAppId", errorCode: "INVALID_APP_ID", close: true },
      };
    }
    const expected = this.#secrets.get(appId);
    if (expected && !timingSafeEqual(expected, sha256(appSecret ?? ""))) {
      return {
        ok: false,
        failure: { error: "InvalidAppSecret", errorCode: "UNAUTHORIZED", close: true },
      };
    }
    const bucket = this.#buckets.get(appId);
    if (bucket && !(appTake ?? bucket.take(now)).ok) {
      return {
        ok: false,
        failure: { error: "RateLimitExceeded", errorCode: "RATE_LIMIT_EXCEEDED", close: true },
      };
    }
    // Configured secrets are non-empty (config rule), so a missing app_secret never matches.
    return { ok: true, app };
  }
}

/** How many existing rooms each app's connections created (docs/spec/SERVER.md §3.3 `max_rooms`). */
export class AppRoomCounts {
  readonly #appByRoom = new Map<string, string>();
  readonly #counts = new Map<string, number>();

  /** Rooms currently attributed to `appId`. */
  count(appId: string): number {
    return this.#counts.get(appId) ?? 0;
  }

  /** Records that a connection of `appId` created the room with key `roomKey`. */
  add(appId: string, roomKey: string): void {
    this.#appByRoom.set(roomKey, appId);
    this.#counts.set(appId, this.count(appId) + 1);
  }

  /** Forgets a deleted room; unknown keys (rooms created without an app) are ignored. */
  remove(roomKey: string): void {
    const appId = this.#appByRoom.get(roomKey);
    if (appId === undefined) return;
    this.#appByRoom.delete(roomKey);
    const left = this.count(appId) - 1;
    if (left > 0) this.#counts.set(appId, left);
    else this.#counts.delete(appId);
  }
}
