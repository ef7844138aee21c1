/**
 * The SDK compatibility gate (docs/spec/PROTOCOL.md §7.1.4): strict semantic versions and the checks that
 * refuse a client's `Authenticate` when `protocol.sdk_compatibility.enforce` is on.
 *
 * @module
 */

/** A parsed semantic version (semver.org 2.0.0); build metadata is dropped. */
export interface SemVer {
  major: bigint;
  minor: bigint;
  patch: bigint;
  /** Pre-release identifiers, e.g. `["rc", "1"]`; empty for a release. */
  pre: string[];
}

const NUMBER = /^(?:0|[1-9][0-9]*)$/;
const IDENTIFIER = /^[0-9A-Za-z-]+$/;

/**
 * Parses a strict `MAJOR.MINOR.PATCH[-pre][+build]` version. Returns the version, or a string
 * describing the first problem (used in the gate's message).
 */
export function parseSemVer(text: string): SemVer | string {
  if (text === "") return "empty string, expected a semver version";
  const plus = text.indexOf("+");
  const core = plus >= 0 ? text.slice(0, plus) : text;
  if (plus >= 0) {
    const build = text.slice(plus + 1).split(".");
    if (build.some((part) => !IDENTIFIER.test(part))) return "invalid build metadata";
  }
  const dash = core.indexOf("-");
  const numbers = (dash >= 0 ? core.slice(0, dash) : core).split(".");
  const names = ["major", "minor", "patch"];
  for (let i = 0; i < 3; i++) {
    const part = numbers[i];
    if (part === undefined || part === "") {
      return `unexpected end of input while parsing ${names[i]} version number`;
    }
    if (!/^[0-9]+$/.test(part)) return `unexpected character in ${names[i]} version number`;
    if (!NUMBER.test(part)) return `invalid leading zero in ${names[i]} version number`;
  }
  if (numbers.length > 3) return "unexpected character '.' after patch version number";
  const pre = dash >= 0 ? core.slice(dash + 1).split(".") : [];
  for (const part of pre) {
    if (!IDENTIFIER.test(part)) return "invalid pre-release identifier";
    if (/^[0-9]+$/.test(part) && !NUMBER.test(part)) {
      return "invalid leading zero in pre-release identifier";
    }
  }
  return {
    major: BigInt(numbers[0]!),
    minor: BigInt(numbers[1]!),
    patch: BigInt(numbers[2]!),
    pre,
  };
}

/** Semver precedence: negative when `a < b`, zero when equal, positive when `a > b`. */
export function compareSemVer(a: SemVer, b: SemVer): number {
  for (const key of ["major", "minor", "patch"] as const) {
    if (a[key] !== b[key]) return a[key] < b[key] ? -1 : 1;
  }
  if (a.pre.length === 0 || b.pre.length === 0) return b.pre.length - a.pre.length;
  for (let i = 0; i < Math.min(a.pre.length, b.pre.length); i++) {
    const x = a.pre[i]!;
    const y = b.pre[i]!;
    if (x === y) continue;
    const xNumeric = NUMBER.test(x);
    const yNumeric = NUMBER.test(y);
    if (xNumeric && yNumeric) return BigInt(x) < BigInt(y) ? -1 : 1;
    if (xNumeric !== yNumeric) return xNumeric ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return a.pre.length - b.pre.length;
}

/** The parts of the SDK manifest the gate reads (lower-case platform keys). */
export interface SdkGateManifest {
  minimumVersions: Readonly<Record<string, string>>;
  recommendedVersions: Readonly<Record<string, string>>;
  capabilities: Readonly<Record<string, readonly string[]>>;
  notes: Readonly<Record<string, string>>;
}

/**
 * Applies the gate's checks in the order of docs/spec/PROTOCOL.md §7.1.4 and returns the
 * `AuthenticationError.error` text of the first failure, or `undefined` when the client passes.
 * The gate is inactive (always passes) when `minimumVersions` is empty.
 */
export function checkSdk(
  manifest: SdkGateManifest,
  platform: string | undefined,
  sdkVersion: string | undefined,
): string | undefined {
  const { minimumVersions } = manifest;
  if (Object.keys(minimumVersions).length === 0) return undefined;
  if (platform === undefined) return "SDK platform is required for compatibility validation";
  const key = platform.toLowerCase();
  const notRecognized = `SDK platform \`${platform}\` is not recognized`;
  const known = [
    manifest.minimumVersions,
    manifest.recommendedVersions,
    manifest.capabilities,
    manifest.notes,
  ].some((map) => Object.hasOwn(map, key));
  if (!known || !Object.hasOwn(minimumVersions, key)) return notRecognized;
  const minimum = minimumVersions[key]!;
  if (sdkVersion === undefined) return `SDK version is required for platform \`${platform}\``;
  const version = parseSemVer(sdkVersion);
  if (typeof version === "string") {
    return `SDK version \`${sdkVersion}\` for platform \`${platform}\` is invalid: ${version}`;
  }
  const floor = parseSemVer(minimum);
  // Configured minimums are validated at startup; a bad one cannot refuse anybody.
  if (typeof floor !== "string" && compareSemVer(version, floor) < 0) {
    return `SDK version \`${sdkVersion}\` for platform \`${platform}\` is below the minimum supported version \`${minimum}\``;
  }
  return undefined;
}
