/**
 * The edge half of the engine (docs/spec/SERVER.md §8.2 "edge, every connection"): per-connection
 * sessions, `Authenticate` with the app checks and format negotiation (docs/spec/PROTOCOL.md §7.1), the
 * auth deadline (docs/spec/SERVER.md §4.5), the per-IP rate-limit takes of `JoinRoom` and
 * `JoinAsSpectator` (docs/spec/PROTOCOL.md §7.13) and the room a connection is bound to.
 *
 * @module
 */
import {
  type ClientData,
  type GameDataEncoding,
  type PlayerNameRules,
  PRESENCE_EVENTS,
  type ServerMessage,
} from "../protocol/messages.ts";
import type { ConnectionFeature } from "../protocol/wire.ts";
import { AppRegistry, type AuthFailure, type AuthorizedApp, rateLimitInfo } from "./app_auth.ts";
import { type ConnId, type Effect, error, event, send } from "./effects.ts";
import type { ConnectInfo, EngineOptions } from "./options.ts";
import { creationLimitReason, joinLimitReason, reconnectLimitReason } from "./rate_limits.ts";
import type { Room } from "./room.ts";
import { checkSdk } from "./sdk_gate.ts";
import type { TokenBucket } from "./token_bucket.ts";

/** Rate limits advertised when auth is disabled (docs/spec/PROTOCOL.md §7.1.2). */
const DEFAULT_RATE_LIMITS = { per_minute: 1000, per_hour: 60000, per_day: 1440000 };

const FORMAT_NAMES: Record<GameDataEncoding, string> = {
  json: "Json",
  message_pack: "MessagePack",
  rkyv: "Rkyv",
};

/** Per-connection state. */
export interface Session {
  /** The connection id the edge knows the socket by. */
  readonly id: ConnId;
  /**
   * The identity used on the wire and in rooms (player id, spectator id). Equal to `id` until a
   * `Reconnect` makes the connection adopt the reconnected player's id (docs/spec/PROTOCOL.md §7.11.5).
   */
  playerId: string;
  /** Client IP, the key of its rate-limit buckets. */
  readonly ip: string;
  /** False until a successful `Authenticate` when auth is required (docs/spec/PROTOCOL.md §7.1.1). */
  authenticated: boolean;
  /** The authenticated app (auth enabled only); its per-app limits apply (docs/spec/SERVER.md §3.3). */
  app?: AuthorizedApp;
  /** `Authenticate` already answered (docs/spec/PROTOCOL.md §7.1.2: only the first is). */
  authenticateAnswered: boolean;
  /** Negotiated game-data format (docs/spec/PROTOCOL.md §7.1.5). */
  format: "json" | "message_pack";
  /**
   * Opted in to presence events with `Authenticate.features` (docs/spec/EXTENSIONS.md E10); absent =
   * false. Belongs to the connection, not the seat.
   */
  presence?: boolean;
  /**
   * A remote session (docs/spec/SERVER.md §8.2): `Authenticate` reaches it only as the first one
   * of a connection that joined before it authenticated (auth disabled, §8.4.2 item 2), which
   * this home answers once (`false` until then).
   */
  remote?: { answered: boolean };
  /** The room this connection is a player of, if any (its binding, docs/spec/SERVER.md §8.4.2). */
  playing?: Room;
  /** The room this connection spectates, if any (exclusive with `playing`). */
  watching?: Room;
  /**
   * This connection's bucket of lobby changes (`EngineOptions.lobbyChanges`), made at its
   * first `PlayerReady` or `AuthorityRequest` as a player.
   */
  lobbyChanges?: TokenBucket;
}

/**
 * What a cluster `BIND` carries about a connection's session (docs/spec/SERVER.md §8.4.1): its
 * app, negotiated format, presence opt-in (docs/spec/EXTENSIONS.md E10) and the player id it
 * adopted by `Reconnect` (absent while that is its connection id, docs/spec/PROTOCOL.md §1.2).
 */
export interface SessionMeta {
  appId?: string;
  format: "json" | "message_pack";
  presence?: boolean;
  playerId?: string;
}

/** Every connection's session, the auth deadlines and the configured apps. */
export class Sessions {
  readonly #options: EngineOptions;
  readonly #sessions = new Map<ConnId, Session>();
  readonly #apps: AppRegistry;
  /** Auth deadlines (ms) of unauthenticated connections, in accept order (docs/spec/SERVER.md §4.5). */
  readonly #authDeadlines = new Map<ConnId, number>();
  readonly #nameRules: PlayerNameRules;

  /** Creates an empty session table. */
  constructor(options: EngineOptions) {
    this.#options = options;
    this.#apps = new AppRegistry(options.auth?.apps ?? []);
    const rules = options.nameRules;
    this.#nameRules = {
      max_length: rules.maxLength,
      min_length: 1,
      allow_unicode_alphanumeric: rules.allowUnicodeAlphanumeric,
      allow_spaces: rules.allowSpaces,
      allow_leading_trailing_whitespace: rules.allowLeadingTrailingWhitespace,
      allowed_symbols: [...rules.allowedSymbols],
      additional_allowed_characters: rules.additionalAllowedCharacters,
    };
  }

  /** Number of registered connections. */
  get size(): number {
    return this.#sessions.size;
  }

  /** The session of connection `id`, if registered. */
  get(id: ConnId): Session | undefined {
    return this.#sessions.get(id);
  }

  /** Sessions by connection id, read-only (the engine's per-message lookup, without a call). */
  get byId(): ReadonlyMap<ConnId, Session> {
    return this.#sessions;
  }

  /**
   * Registers a newly accepted connection (docs/spec/PROTOCOL.md §1.2). When auth is required its
   * deadline starts at `info.now` (docs/spec/SERVER.md §4.5).
   */
  connect(id: ConnId, info: ConnectInfo): void {
    const auth = this.#options.auth;
    const authenticated = !auth?.required;
    // Every member set here, the optional ones too: members added later move the session to a
    // property store outside the object (BENCHMARKS.md "Session 6: memory").
    this.#sessions.set(id, {
      id,
      playerId: id,
      ip: info.ip ?? "",
      authenticated,
      app: undefined,
      authenticateAnswered: false,
      format: "json",
      presence: undefined,
      playing: undefined,
      watching: undefined,
    });
    if (!authenticated) this.#authDeadlines.set(id, (info.now ?? 0) + auth!.timeoutMs);
  }

  /**
   * Registers a connection authenticated on another node (a remote session, docs/spec/SERVER.md §8.2):
   * authenticated, with the app, game-data format and presence opt-in of its `BIND`, no auth
   * deadline. An existing session of `id` is kept (a spectator switching rooms on this home):
   * returns whether a session was created.
   */
  connectRemote(id: ConnId, remote: SessionMeta & { ip: string }): boolean {
    if (this.#sessions.has(id)) return false;
    const app = remote.appId !== undefined ? this.#apps.get(remote.appId) : undefined;
    this.#sessions.set(id, {
      id,
      playerId: id,
      ip: remote.ip,
      authenticated: true,
      app,
      authenticateAnswered: true,
      format: remote.format,
      presence: remote.presence === true ? true : undefined,
      remote: { answered: false },
      playing: undefined,
      watching: undefined,
    });
    return true;
  }

  /** Forgets connection `id` (closed or replaced); returns its session. */
  remove(id: ConnId): Session | undefined {
    const session = this.#sessions.get(id);
    if (!session) return undefined;
    this.#sessions.delete(id);
    this.#authDeadlines.delete(id);
    return session;
  }

  /** `Authenticate` (docs/spec/PROTOCOL.md §7.1.2–§7.1.5): answered once, negotiating the format. */
  authenticate(session: Session, data: ClientData<"Authenticate">, now: number): Effect[] {
    if (session.remote) {
      // Checked by the edge, which forwarded it for this home to answer in order with the
      // room's output (docs/spec/SERVER.md §8.4.2 item 2); counted there.
      if (session.remote.answered) return [];
      session.remote.answered = true;
      return this.#answerUncounted(session, data);
    }
    if (session.authenticateAnswered) return [];
    if (this.#options.auth?.required) {
      const refused = this.#checkApp(session, data, now);
      if (refused) return refused;
    }
    session.authenticateAnswered = true;
    return this.#answer(session, data);
  }

  /**
   * The answer to connection `session`'s first `Authenticate`, already taken here, whose remote
   * home bounced it back instead of answering it (docs/spec/SERVER.md §8.4.2 item 2): the same
   * answer as then, without the `authenticated` event (counted then).
   */
  answerBounced(session: Session, data: ClientData<"Authenticate">): Effect[] {
    return this.#answerUncounted(session, data);
  }

  /** {@linkcode Sessions.#answer} without its `authenticated` event (the edge counted it). */
  #answerUncounted(session: Session, data: ClientData<"Authenticate">): Effect[] {
    return this.#answer(session, data).filter((effect) => effect.kind !== "event");
  }

  /**
   * The answer to an accepted `Authenticate` (docs/spec/PROTOCOL.md §7.1.3 steps 6–8, §7.1.2):
   * negotiates `session`'s format (§7.1.5) and features (docs/spec/EXTENSIONS.md E10); returns
   * [`Error` `UNSUPPORTED_GAME_DATA_FORMAT`], `Authenticated`, `ProtocolInfo` and the
   * `authenticated` event.
   */
  #answer(session: Session, data: ClientData<"Authenticate">): Effect[] {
    const effects: Effect[] = [];
    const requested = data.game_data_format ?? "json";
    const supported: GameDataEncoding[] = this.#options.messagePack
      ? ["json", "message_pack"]
      : ["json"];
    if (requested === "json" || (requested === "message_pack" && this.#options.messagePack)) {
      session.format = requested;
    } else {
      session.format = "json";
      const names = supported.map((format) => FORMAT_NAMES[format]).join(", ");
      effects.push(error(
        session.playerId,
        `Requested game data format ${
          FORMAT_NAMES[requested]
        } is not supported. Server supports: ${names}. Falling back to JSON.`,
        "UNSUPPORTED_GAME_DATA_FORMAT",
      ));
    }
    const authenticated: Extract<ServerMessage, { type: "Authenticated" }>["data"] = session.app
      ? {
        app_name: session.app.appName,
        rate_limits: rateLimitInfo(session.app.rateLimitPerMinute),
      }
      : { app_name: "default", rate_limits: { ...DEFAULT_RATE_LIMITS } };
    if (data.features !== undefined) authenticated.features = this.#acceptFeatures(session, data);
    effects.push(
      send(session.playerId, { type: "Authenticated", data: authenticated }),
      send(session.playerId, { type: "ProtocolInfo", data: this.#protocolInfo(data, supported) }),
      event({ type: "authenticated", appId: session.app?.appId, connectionId: session.id }),
    );
    return effects;
  }

  /**
   * `Authenticate.features` (docs/spec/EXTENSIONS.md E10): accepts `presence-events` when reconnection is
   * enabled (there are no held seats otherwise) and ignores every other string. Returns the
   * accepted list for `Authenticated.features`.
   */
  #acceptFeatures(
    session: Session,
    data: ClientData<"Authenticate">,
  ): ConnectionFeature[] {
    const presence = this.#options.enableReconnection &&
      (data.features ?? []).includes(PRESENCE_EVENTS);
    if (presence) session.presence = true;
    return presence ? [PRESENCE_EVENTS] : [];
  }

  /**
   * The `rate_limit_per_minute` of the app an `Authenticate` with `data` would take a token from
   * (auth required, known app, right secret), else `undefined` (docs/spec/SERVER.md §3.3).
   */
  appRateLimit(data: ClientData<"Authenticate">): number | undefined {
    if (!this.#options.auth?.required) return undefined;
    return this.#apps.rateLimitFor(data.app_id, data.app_secret);
  }

  /**
   * Steps 2–5 of docs/spec/PROTOCOL.md §7.1.3 (auth enabled). On success marks the session
   * authenticated, remembers its app, stops its deadline and returns `undefined`; otherwise
   * returns the refusal (`AuthenticationError`, then close 1008 except for the SDK gate).
   */
  #checkApp(
    session: Session,
    data: ClientData<"Authenticate">,
    now: number,
  ): Effect[] | undefined {
    // Failed attempts are charged to the client IP, not the app (issue 14 item 6): an IP that
    // used up its failure budget is refused before its secret is looked at.
    const limits = this.#options.rateLimits;
    if (limits && !limits.canFailAuth(session.ip, now).ok) {
      return this.#authFailed(session.id, {
        error: "RateLimitExceeded",
        errorCode: "RATE_LIMIT_EXCEEDED",
        close: true,
      }, "auth_failures");
    }
    const checked = this.#apps.check(data.app_id, data.app_secret, now, limits?.appTake());
    if (!checked.ok) {
      if (checked.failure.errorCode !== "RATE_LIMIT_EXCEEDED") {
        limits?.chargeAuthFailure(session.ip, now);
      }
      return this.#authFailed(session.id, checked.failure, "app");
    }
    if (this.#options.auth?.enforceSdkGate) {
      const problem = checkSdk(this.#options.sdk, data.platform, data.sdk_version);
      if (problem !== undefined) {
        return this.#authFailed(session.id, {
          error: problem,
          errorCode: "SDK_VERSION_UNSUPPORTED",
          close: false,
        });
      }
    }
    session.authenticated = true;
    session.app = checked.app;
    this.#authDeadlines.delete(session.id);
    return undefined;
  }

  #authFailed(
    id: ConnId,
    failure: AuthFailure,
    scope: "app" | "auth_failures" = "app",
  ): Effect[] {
    const effects: Effect[] = [
      send(id, {
        type: "AuthenticationError",
        data: { error: failure.error, error_code: failure.errorCode },
      }),
    ];
    if (failure.errorCode === "RATE_LIMIT_EXCEEDED") {
      effects.push(event({ type: "rate_limited", scope }));
    }
    effects.push(event({ type: "auth_failed", errorCode: failure.errorCode, connectionId: id }));
    if (failure.close) {
      effects.push({ kind: "close", to: id, code: 1008, reason: "Authentication failed" });
    }
    return effects;
  }

  /** A message before authentication (docs/spec/PROTOCOL.md §7.1.1): `Error`, then close 1008. */
  authenticationRequired(id: ConnId, message: string): Effect[] {
    return [
      error(id, message, "AUTHENTICATION_REQUIRED"),
      { kind: "close", to: id, code: 1008, reason: "Authentication required" },
      event({ type: "auth_failed", errorCode: "AUTHENTICATION_REQUIRED", connectionId: id }),
    ];
  }

  /**
   * Closes connections whose auth deadline has passed at `now` (ms): `Error`
   * `AUTHENTICATION_TIMEOUT`, then close 1008 (docs/spec/SERVER.md §4.5). Cheap when nothing expired.
   */
  expireAuthentication(now: number): Effect[] {
    const effects: Effect[] = [];
    const timeoutMs = this.#options.auth?.timeoutMs ?? 0;
    for (const [id, deadline] of this.#authDeadlines) {
      // Deadlines are in accept order, so the first one still running ends the scan.
      if (deadline > now) break;
      this.#authDeadlines.delete(id);
      effects.push(
        error(
          id,
          `Authentication timeout - must authenticate within ${timeoutMs / 1000} seconds`,
          "AUTHENTICATION_TIMEOUT",
        ),
        { kind: "close", to: id, code: 1008, reason: "Authentication timeout" },
        event({ type: "auth_failed", errorCode: "AUTHENTICATION_TIMEOUT", connectionId: id }),
      );
    }
    return effects;
  }

  /**
   * Takes one token from the client IP's creation, join or reconnect bucket (docs/spec/PROTOCOL.md
   * §7.13, docs/spec/SERVER.md §3.4). Returns
   * `undefined` when taken, else the rejection reason and its `rate_limited` event.
   */
  takeToken(
    session: Session,
    scope: "create" | "join" | "reconnect",
    now: number,
  ): { reason: string; event: Effect } | undefined {
    const limits = this.#options.rateLimits;
    if (!limits) return undefined;
    const taken = scope === "create"
      ? limits.takeCreation(session.ip, now)
      : scope === "join"
      ? limits.takeJoin(session.ip, now)
      : limits.takeReconnect(session.ip, now);
    if (taken.ok) return undefined;
    return {
      reason: scope === "create"
        ? creationLimitReason(taken.retryAfterSecs)
        : scope === "join"
        ? joinLimitReason(taken.retryAfterSecs)
        : reconnectLimitReason(taken.retryAfterSecs),
      event: event({ type: "rate_limited", scope }),
    };
  }

  #protocolInfo(
    data: ClientData<"Authenticate">,
    formats: GameDataEncoding[],
  ): Extract<ServerMessage, { type: "ProtocolInfo" }>["data"] {
    const { sdk, extensionCapabilities } = this.#options;
    const key = data.platform?.toLowerCase();
    const platformOnly = <T>(map: Readonly<Record<string, T>>) =>
      key !== undefined && Object.hasOwn(map, key) ? map[key] : undefined;
    const capabilities = new Set<string>([
      ...(sdk.capabilities["_default"] ?? []),
      ...(platformOnly(sdk.capabilities) ?? []),
      ...extensionCapabilities,
    ]);
    return {
      platform: data.platform,
      sdk_version: data.sdk_version,
      minimum_version: platformOnly(sdk.minimumVersions),
      recommended_version: platformOnly(sdk.recommendedVersions),
      capabilities: [...capabilities],
      notes: platformOnly(sdk.notes) ??
        (Object.hasOwn(sdk.notes, "_default") ? sdk.notes["_default"] : undefined),
      game_data_formats: formats,
      player_name_rules: this.#nameRules,
    };
  }
}
