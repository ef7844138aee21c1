/**
 * Hiding secrets of the configuration (docs/spec/SERVER.md §2.5 `--print-config`, §2.6 error lines): app
 * secrets, the metrics and admin tokens and the Redis passwords (`cluster.redis_url`'s user info and
 * query values, the sentinels').
 *
 * @module
 */
import type { Config, Path } from "./schema.ts";

/** What a hidden secret reads as. */
export const REDACTED = "<redacted>";

const SECRET_KEY = /secret|token|password/i;

/** True for a plain object (not `null`, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * `url` (a `cluster.redis_url`, valid or not) with what may be a secret replaced by
 * {@linkcode REDACTED} (docs/spec/SERVER.md §2.5): the whole user info, since `redis://PASSWORD@host`
 * is a password without a user name (`rediss://<redacted>@cache:6380/1`), every query value
 * (`?password=<redacted>`) and a fragment. The user info ends at the last `@`, as a password may
 * hold an unescaped `@`, `/`, `?` or `#`. A text without `://` is hidden whole (a pasted password).
 */
export function redactUrl(url: string): string {
  const scheme = url.indexOf("://");
  // Not a URL at all: it may be a pasted password, nothing of it is shown.
  if (scheme < 0) return REDACTED;
  let rest = url.slice(scheme + 3);
  const at = rest.lastIndexOf("@");
  if (at >= 0) rest = `${REDACTED}${rest.slice(at)}`;
  const hash = rest.indexOf("#");
  if (hash >= 0) rest = `${rest.slice(0, hash)}#${REDACTED}`;
  const question = rest.indexOf("?");
  if (question >= 0) {
    const end = hash >= 0 ? rest.indexOf("#") : rest.length;
    const query = rest.slice(question + 1, end).split("&").map((pair) => {
      const equals = pair.indexOf("=");
      return equals < 0 ? pair : `${pair.slice(0, equals)}=${REDACTED}`;
    });
    rest = `${rest.slice(0, question)}?${query.join("&")}${rest.slice(end)}`;
  }
  return `${url.slice(0, scheme + 3)}${rest}`;
}

/** Hides secrets in a value of any shape (also unvalidated input, so matched by key name). */
export function redactValue(value: unknown, key?: string | number): unknown {
  if (key === "redis_url" && typeof value === "string") return redactUrl(value);
  if (typeof key === "string" && SECRET_KEY.test(key) && value != null && !isRecord(value)) {
    return REDACTED;
  }
  if (Array.isArray(value)) return value.map((item) => redactValue(item));
  if (isRecord(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValue(v, k)]));
  }
  return value;
}

/** True when the value at `path` may hold a secret, so its raw text must not be echoed. */
export function holdsSecret(path: Path): boolean {
  const key = path.join(".");
  return [
    "security.metrics_auth_token",
    "security.admin_token",
    "security.authorized_apps",
    "cluster.redis_url",
    "cluster.redis_sentinel_password",
  ]
    .some((secret) => secret === key || secret.startsWith(`${key}.`));
}

/**
 * Returns a copy of `config` with the secrets (`app_secret`, `metrics_auth_token`, `admin_token`, the user info and
 * query values of `cluster.redis_url` ({@linkcode redactUrl}), `cluster.redis_sentinel_password`) replaced by
 * `"<redacted>"`; unset secrets stay `null`.
 */
export function redactConfig(config: Config): Config {
  const copy = structuredClone(config);
  const { security, cluster } = copy;
  if (security.metrics_auth_token !== null) security.metrics_auth_token = REDACTED;
  if (security.admin_token !== null) security.admin_token = REDACTED;
  for (const app of security.authorized_apps) {
    if (app.app_secret !== null) app.app_secret = REDACTED;
  }
  if (cluster.redis_url !== null) cluster.redis_url = redactUrl(cluster.redis_url);
  if (cluster.redis_sentinel_password !== null) cluster.redis_sentinel_password = REDACTED;
  return copy;
}
