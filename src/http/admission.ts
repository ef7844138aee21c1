/**
 * Pre-upgrade admission helpers (docs/spec/SERVER.md §1.8, §1.9, §2.7 `security.*`): the client IP behind
 * trusted proxies and its normalised per-IP key, and the global connection cap derived from the
 * open-file limit.
 *
 * @module
 */

import type { HeaderReader } from "./handover.ts";

/** An IP network: address bytes (4 or 16) and prefix length in bits. */
interface Network {
  bytes: Uint8Array;
  prefix: number;
}

/** Parses a dotted-quad IPv4 address into 4 bytes; undefined when invalid. */
function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (const [i, part] of parts.entries()) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return undefined;
    bytes[i] = Number(part);
  }
  return bytes;
}

/**
 * True for `a.b.c.d` with each part 0–255 written without a leading zero: the text
 * {@linkcode ipKey} would make of it anyway.
 */
function isCanonicalIpv4(text: string): boolean {
  let parts = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const code = i < text.length ? text.charCodeAt(i) : 0x2e;
    if (code === 0x2e) {
      if (digits === 0 || ++parts > 4) return false;
      value = 0;
      digits = 0;
    } else if (code >= 0x30 && code <= 0x39) {
      if (digits === 1 && value === 0) return false; // a leading zero
      value = value * 10 + (code - 0x30);
      if (++digits > 3 || value > 255) return false;
    } else {
      return false;
    }
  }
  return parts === 4;
}

/** Parses an IPv6 address (with `::` and an optional dotted IPv4 tail) into 16 bytes. */
function parseIpv6(text: string): Uint8Array | undefined {
  if (!text.includes(":")) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (half: string): number[] | undefined => {
    if (half === "") return [];
    const out: number[] = [];
    const pieces = half.split(":");
    for (const [i, piece] of pieces.entries()) {
      if (i === pieces.length - 1 && piece.includes(".")) {
        const v4 = parseIpv4(piece);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-f]{1,4}$/i.test(piece)) {
        out.push(parseInt(piece, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...new Array(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

/**
 * Parses an IP address for comparison: IPv4 as 4 bytes; IPv6 as 16 bytes, except IPv4-mapped
 * IPv6 (`::ffff:a.b.c.d`), which is its IPv4 address. A zone id (`%eth0`) is dropped.
 * Returns undefined when `text` is not an IP address.
 */
export function parseIp(text: string): Uint8Array | undefined {
  const trimmed = text.trim();
  const bare = trimmed.startsWith("[") && trimmed.endsWith("]") ? trimmed.slice(1, -1) : trimmed;
  const zone = bare.indexOf("%");
  const address = zone >= 0 ? bare.slice(0, zone) : bare;
  const v4 = parseIpv4(address);
  if (v4) return v4;
  const v6 = parseIpv6(address);
  if (!v6) return undefined;
  const mapped = v6.subarray(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
  return mapped ? v6.slice(12) : v6;
}

/** `security.ipv6_prefix_length` default: one per-IP budget per IPv6 /64 (issue 14 item 10). */
export const DEFAULT_IPV6_PREFIX_LENGTH = 64;

/** RFC 5952 text of 16 address bytes: lower-case hex, the first longest zero run as `::`. */
function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestStart = -1;
  let bestLength = 1; // a single zero group is not shortened
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/**
 * The key every per-IP limit counts under (docs/spec/SERVER.md §1.9, §3.4, §3.5; issue 14 item 10): an
 * IPv4 address (IPv4-mapped IPv6 included) is its own key, `a.b.c.d`; an IPv6 address is keyed by
 * its network of `ipv6PrefixLength` bits (`security.ipv6_prefix_length`, default 64), written as
 * `<network>/<prefix>` (`2001:db8:1:2::/64`), or the bare address when the prefix is 128. So a
 * host that owns a /64 (the smallest block a site is normally given) gets one budget, not 2^64.
 * Text that is not an IP address (e.g. `unknown`) is its own key, lower-cased.
 *
 * @param address a client IP in any textual form (brackets and zone ids allowed)
 * @param ipv6PrefixLength 0–128 bits
 */
export function ipKey(address: string, ipv6PrefixLength: number): string {
  // The usual case, checked without splitting or a regular expression: already its own key.
  if (isCanonicalIpv4(address)) return address;
  const bytes = parseIp(address);
  if (!bytes) return address.toLowerCase();
  if (bytes.length === 4) return bytes.join(".");
  const prefix = Math.max(0, Math.min(128, Math.trunc(ipv6PrefixLength)));
  if (prefix === 128) return formatIpv6(bytes);
  const network = new Uint8Array(16);
  for (let i = 0, left = prefix; left > 0; i++, left -= 8) {
    network[i] = bytes[i]! & (left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff);
  }
  return `${formatIpv6(network)}/${prefix}`;
}

/**
 * Parses a `security.trusted_proxies` entry: an IP address or a CIDR range (`10.0.0.0/8`,
 * `fd00::/8`). Returns undefined when invalid.
 */
export function parseNetwork(text: string): Network | undefined {
  const slash = text.indexOf("/");
  const bytes = parseIp(slash >= 0 ? text.slice(0, slash) : text);
  if (!bytes) return undefined;
  const bits = bytes.length * 8;
  if (slash < 0) return { bytes, prefix: bits };
  const prefixText = text.slice(slash + 1).trim();
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  let prefix = Number(prefixText);
  // An IPv4-mapped IPv6 range (::ffff:10.0.0.0/104) was turned into IPv4 above.
  if (bytes.length === 4 && text.includes(":")) prefix -= 96;
  if (prefix < 0 || prefix > bits) return undefined;
  return { bytes, prefix };
}

function contains(network: Network, ip: Uint8Array): boolean {
  if (network.bytes.length !== ip.length) return false;
  let left = network.prefix;
  for (let i = 0; left > 0; i++, left -= 8) {
    const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff;
    if ((network.bytes[i]! & mask) !== (ip[i]! & mask)) return false;
  }
  return true;
}

/** The set of `security.trusted_proxies`; answers "is this peer a trusted proxy?". */
export class TrustedProxies {
  readonly #networks: Network[];

  /** Throws a RangeError naming the first entry that is not an IP address or CIDR range. */
  constructor(entries: readonly string[]) {
    this.#networks = entries.map((entry) => {
      const network = parseNetwork(entry);
      if (!network) {
        throw new RangeError(
          `Cannot use security.trusted_proxies entry "${entry}": not an IP address or CIDR range`,
        );
      }
      return network;
    });
  }

  /** True when no proxy is trusted (the default). */
  get empty(): boolean {
    return this.#networks.length === 0;
  }

  /** True when `address` (any textual form) lies in one of the trusted networks. */
  has(address: string): boolean {
    const ip = parseIp(address);
    return ip !== undefined && this.#networks.some((network) => contains(network, ip));
  }
}

/**
 * The client IP of docs/spec/SERVER.md §1.9: the socket peer, unless the peer is a trusted proxy; then the
 * right-most `X-Forwarded-For` entry that is not itself a trusted proxy, if it is a valid IP
 * address (else the peer). Returns the address as written (the caller normalises it).
 *
 * @param peer the socket peer address
 * @param forwardedFor every `X-Forwarded-For` header value, comma-joined in order (as `Headers`
 *   gives them), or null when absent
 */
export function clientIp(
  peer: string,
  forwardedFor: string | null,
  trusted: TrustedProxies,
): string {
  if (trusted.empty || forwardedFor === null || !trusted.has(peer)) return peer;
  const entries = forwardedFor.split(",").map((entry) => entry.trim());
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i]!;
    if (trusted.has(entry)) continue;
    return parseIp(entry) ? entry.replace(/^\[(.*)\]$/, "$1") : peer;
  }
  return peer;
}

/**
 * The per-IP key of a request (docs/spec/SERVER.md §1.9), the one place every per-IP limit gets its key
 * from (connection slots, the creation/join/reconnect token buckets, room lookups): the socket
 * peer, or behind `trusted` proxies the client they name ({@linkcode clientIp}), keyed by
 * {@linkcode ipKey} (IPv6 by its network of `ipv6PrefixLength` bits, IPv4 and IPv4-mapped IPv6
 * by address); `"unknown"` for a peer without an IP address (a Unix socket).
 *
 * @param ipv6PrefixLength `security.ipv6_prefix_length` (0–128)
 */
export function peerIp(
  request: { readonly headers: HeaderReader },
  info: Deno.ServeHandlerInfo,
  trusted: TrustedProxies | undefined,
  ipv6PrefixLength: number = DEFAULT_IPV6_PREFIX_LENGTH,
): string {
  const addr = info.remoteAddr as Deno.Addr;
  if (!("hostname" in addr)) return "unknown";
  const ip = trusted
    ? clientIp(addr.hostname, request.headers.get("x-forwarded-for"), trusted)
    : addr.hostname;
  return ipKey(ip, ipv6PrefixLength);
}

/** Fallback of `security.max_connections` when the open-file limit cannot be read (§2.7). */
export const DEFAULT_MAX_CONNECTIONS = 16_000;

/**
 * Descriptors kept free below the open-file limit: 10% of it, at least 64. They cover the
 * listener, stdio, log files, a Redis connection, and, above all, requests being answered with
 * 503/429 while the cap is reached (each holds a descriptor until its response is written).
 */
export function fileDescriptorHeadroom(limit: number): number {
  return Math.max(64, Math.ceil(limit / 10));
}

/**
 * The soft "Max open files" limit from the text of `/proc/self/limits`; undefined when absent or
 * "unlimited".
 */
export function parseOpenFileLimit(limits: string): number | undefined {
  const line = limits.split("\n").find((l) => l.startsWith("Max open files"));
  const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
  return soft !== undefined && /^\d+$/.test(soft) ? Number(soft) : undefined;
}

/**
 * Reads the process's soft open-file limit from `/proc/self/limits` (Linux), else from the
 * `RLIMIT_NOFILE` environment variable. Undefined when neither can be read: another OS, or a Deno
 * permission set without `--allow-all` (Deno treats `/proc/self` as privileged) and no variable.
 */
export function readOpenFileLimit(
  read: (path: string) => string = Deno.readTextFileSync,
  env: (name: string) => string | undefined = readEnv,
): number | undefined {
  try {
    return parseOpenFileLimit(read("/proc/self/limits"));
  } catch {
    // `deno task start` passes `ulimit -n` in RLIMIT_NOFILE (deno.json), for runs without
    // `--allow-all`.
    const text = env(OPEN_FILE_LIMIT_ENV)?.trim();
    return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
  }
}

/** The environment variable `deno task start` sets to the soft open-file limit (`ulimit -n`). */
export const OPEN_FILE_LIMIT_ENV = "RLIMIT_NOFILE";

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * The effective global connection cap: `configured` when set, else the open-file limit minus
 * {@linkcode fileDescriptorHeadroom} (at least 1), else {@linkcode DEFAULT_MAX_CONNECTIONS}.
 */
export function maxConnections(
  configured: number | null,
  openFileLimit: number | undefined,
): { limit: number; source: "config" | "open-file limit" | "default" } {
  if (configured !== null) return { limit: configured, source: "config" };
  if (openFileLimit === undefined) return { limit: DEFAULT_MAX_CONNECTIONS, source: "default" };
  return {
    limit: Math.max(1, openFileLimit - fileDescriptorHeadroom(openFileLimit)),
    source: "open-file limit",
  };
}
