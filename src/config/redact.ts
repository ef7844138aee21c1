/**
 * Hiding secrets of the configuration (docs/spec/SERVER.md §2.5 `--print-config`, §2.6 error lines): app
 * secrets, the metrics bearer token and the Redis passwords (`cluster.redis_url`'s, the sentinels').
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

/** `url` with the password of its user info replaced by {@linkcode REDACTED}. */
export function redactUrlPassword(url: string): string {
  const scheme = url.indexOf("://");
  if (scheme < 0) return url.includes("@") ? REDACTED : url;
  const rest = url.slice(scheme + 3);
  const at = rest.lastIndexOf("@");
  const colon = rest.slice(0, Math.max(at, 0)).indexOf(":");
  if (at < 0 || colon < 0) return url;
  return `${url.slice(0, scheme + 3)}${rest.slice(0, colon)}:${REDACTED}${rest.slice(at)}`;
}

/** Hides secrets in a value of any shape (also unvalidated input, so matched by key name). */
export function redactValue(value: unknown, key?: string | number): unknown {
  if (key === "redis_url" && typeof value === "string") return redactUrlPassword(value);
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
 * Returns a copy of `config` with the secrets (`app_secret`, `metrics_auth_token`, `admin_token`, the password of
 * `cluster.redis_url`, `cluster.redis_sentinel_password`) replaced by `"<redacted>"`; unset secrets stay `null`.
 */
export function redactConfig(config: Config): Config {
  const copy = structuredClone(config);
  const { security, cluster } = copy;
  if (security.metrics_auth_token !== null) security.metrics_auth_token = REDACTED;
  if (security.admin_token !== null) security.admin_token = REDACTED;
  for (const app of security.authorized_apps) {
    if (app.app_secret !== null) app.app_secret = REDACTED;
  }
  if (cluster.redis_url !== null) cluster.redis_url = redactUrlPassword(cluster.redis_url);
  if (cluster.redis_sentinel_password !== null) cluster.redis_sentinel_password = REDACTED;
  return copy;
}
