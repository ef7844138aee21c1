/**
 * Loading the configuration (docs/spec/SERVER.md §2.1–§2.6): built-in defaults < config file < environment
 * variables < `--port`, checked against the one schema of `schema.ts`, every error collected as a
 * line `invalid configuration: <key> = <value> (from <source>): <rule>` (secrets redacted; an
 * unknown key without its value: `invalid configuration: <key> (from <source>): unknown key`).
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { type Config, ConfigFields, crossFieldIssues, type Issue, type Path } from "./schema.ts";
import { checkTlsPem } from "../util/tls_pem.ts";
import { holdsSecret, isRecord, REDACTED, redactValue } from "./redact.ts";

// ---------------------------------------------------------------------------------------------
// The key tree, derived once from the schema. It tells the file walker which keys exist and which
// are objects to descend into, and the environment parser which type each key's value has.

type ScalarType = "int" | "bool" | "string" | "enum";
type Leaf = {
  kind: "leaf";
  path: string[];
  type: ScalarType | "list" | "json";
  element?: ScalarType;
  nullable: boolean;
};
type Branch = { kind: "branch"; path: string[]; children: Map<string, Node> };
type Node = Leaf | Branch;

/** Edit distance (insertions, deletions, substitutions) between `a` and `b`. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The documented (`SIGNAL_FISH_` + path) name `name` was likely meant as: one a small edit away
 * (`SIGNAL_FISH_PROT` → `SIGNAL_FISH_PORT`), else the one key of the same object whose name
 * contains the last segment (`SIGNAL_FISH_SERVER__MAX_PLAYERS` →
 * `SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS`).
 */
function closestEnvName(name: string): string | undefined {
  const upper = name.toUpperCase();
  const candidates = configEnvNames().filter((candidate) => !candidate.startsWith("SIGNAL_FISH__"));
  let best: { name: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(upper, candidate);
    if (best === undefined || distance < best.distance) best = { name: candidate, distance };
  }
  if (best !== undefined && best.distance <= Math.max(2, Math.floor(upper.length / 8))) {
    return best.name;
  }
  const cut = upper.lastIndexOf("__") + 2;
  const [parent, last] = cut > 1 ? [upper.slice(0, cut), upper.slice(cut)] : ["", ""];
  if (last.length < 4) return undefined;
  const containing = candidates.filter((candidate) =>
    candidate.startsWith(parent) && !candidate.slice(parent.length).includes("__") &&
    candidate.slice(parent.length).includes(last)
  );
  return containing.length === 1 ? containing[0] : undefined;
}

/** Alternative key names (full path => canonical key of the same object). */
const ALIASES: Record<string, string> = {
  "server.heartbeat_db_throttle_secs": "heartbeat_throttle_secs",
};

function unwrap(schema: z.ZodType): { core: z.ZodType; nullable: boolean } {
  let core = schema;
  let nullable = false;
  for (;;) {
    if (core instanceof z.ZodNullable) nullable = true;
    if (
      core instanceof z.ZodNullable || core instanceof z.ZodDefault ||
      core instanceof z.ZodPrefault || core instanceof z.ZodOptional
    ) {
      core = core.unwrap() as z.ZodType;
    } else if (core instanceof z.ZodPipe) {
      // z.preprocess() is transform -> schema; .transform() is schema -> transform.
      core = (core.in instanceof z.ZodTransform ? core.out : core.in) as z.ZodType;
    } else {
      return { core, nullable };
    }
  }
}

function scalarType(schema: z.ZodType): ScalarType | undefined {
  const { core } = unwrap(schema);
  if (core instanceof z.ZodNumber) return "int";
  if (core instanceof z.ZodBoolean) return "bool";
  if (core instanceof z.ZodString) return "string";
  if (core instanceof z.ZodEnum) return "enum";
  return undefined;
}

function describe(schema: z.ZodType, path: string[]): Node {
  const { core, nullable } = unwrap(schema);
  if (core instanceof z.ZodObject) {
    const entries = Object.entries(core.shape as Record<string, z.ZodType>);
    return {
      kind: "branch",
      path,
      children: new Map(entries.map(([key, child]) => [key, describe(child, [...path, key])])),
    };
  }
  const scalar = scalarType(core);
  if (scalar) return { kind: "leaf", path, type: scalar, nullable };
  const element = core instanceof z.ZodArray ? scalarType(core.element as z.ZodType) : undefined;
  return element
    ? { kind: "leaf", path, type: "list", element, nullable }
    : { kind: "leaf", path, type: "json", nullable };
}

const KEY_TREE = describe(ConfigFields, []) as Branch;

function child(branch: Branch, key: string): Node | undefined {
  return branch.children.get(key) ??
    branch.children.get(ALIASES[[...branch.path, key].join(".")] ?? "");
}

/** The leaf (or, for a path that leaves the tree, the path itself) a value at `path` belongs to. */
function leafKey(path: Path): string {
  let node: Node = KEY_TREE;
  for (const [depth, segment] of path.entries()) {
    const next: Node | undefined = node.kind === "branch"
      ? child(node, String(segment))
      : undefined;
    if (!next) return path.slice(0, depth + 1).join(".");
    if (next.kind === "leaf") return next.path.join(".");
    node = next;
  }
  return path.join(".");
}

// ---------------------------------------------------------------------------------------------
// Error text.

function formatPath(path: Path): string {
  return path.reduce<string>((out, segment) => {
    if (typeof segment === "number") return `${out}[${segment}]`;
    if (out !== "" && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(segment)) {
      return `${out}[${JSON.stringify(segment)}]`;
    }
    return out === "" ? segment : `${out}.${segment}`;
  }, "");
}

function formatValue(path: Path, value: unknown): string {
  if (value === undefined) return "<missing>";
  const shown = redactValue(value, path.at(-1));
  return shown === REDACTED ? REDACTED : JSON.stringify(shown);
}

function configError(path: Path, value: unknown, source: string, rule: string): string {
  return `invalid configuration: ${formatPath(path)} = ${formatValue(path, value)} ` +
    `(from ${source}): ${rule}`;
}

/**
 * The line for a key that is not in the schema: its name only. Its value is never shown, since a
 * misspelt secret's name (`admin_tokne`) does not say it is one.
 */
function unknownKeyError(path: Path, source: string): string {
  return `invalid configuration: ${formatPath(path)} (from ${source}): unknown key`;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Where a JSON syntax error is: offset in UTF-16 code units, or undefined for "end of input". */
type JsonFailure = { ok: false; rule: string; position: number | undefined };

/** JSON.parse's position only: V8's message may quote the (possibly secret) input. */
function parseJson(text: string): { ok: true; value: unknown } | JsonFailure {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    const found = /at position (\d+)/.exec(errorMessage(error))?.[1];
    const position = found === undefined ? undefined : Number(found);
    return {
      ok: false,
      rule: `must be valid JSON${
        position !== undefined ? ` (syntax error at position ${position})` : ""
      }`,
      position,
    };
  }
}

/**
 * 1-based line and column of `position` in `text` (the end of the text when undefined), columns
 * counted in characters: what an editor shows for a syntax error in the config file.
 */
export function lineAndColumn(text: string, position: number | undefined): {
  line: number;
  column: number;
} {
  const before = text.slice(0, position ?? text.length);
  const lines = before.split("\n");
  return { line: lines.length, column: [...lines.at(-1)!].length + 1 };
}

// ---------------------------------------------------------------------------------------------
// Collecting values from the file and the environment.

type Assigned = { leaf: Leaf; value: unknown; source: string };

class Collector {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  /** Winning value per leaf key (later sources overwrite earlier ones). */
  readonly values = new Map<string, Assigned>();
  /** Leaves whose value could not even be read; cross-field rules skip them. */
  readonly failed = new Set<string>();
  /** `SIGNAL_FISH_*` names that are not configuration keys (warned about). */
  readonly unknownEnv: UnknownEnvName[] = [];
  /** Absolute path of the config file that was read, if any. */
  file: string | undefined;

  assign(leaf: Leaf, value: unknown, source: string): void {
    this.values.set(leaf.path.join("."), { leaf, value, source });
  }

  reject(path: Path, value: unknown, source: string, rule: string): void {
    this.errors.push(configError(path, value, source, rule));
    this.failed.add(leafKey(path));
  }

  /** Reports a key the schema does not have, by name only. */
  unknown(path: Path, source: string): void {
    this.errors.push(unknownKeyError(path, source));
    this.failed.add(leafKey(path));
  }

  /** The source of the value at `path`, which may lie inside a map or array leaf. */
  sourceOf(path: Path): string {
    return this.values.get(leafKey(path))?.source ?? "default";
  }

  /** The raw (pre-schema) input: the assigned leaves, minus `exclude`, as a nested object. */
  input(exclude: ReadonlySet<string> = new Set()): Record<string, unknown> {
    const root: Record<string, unknown> = {};
    for (const [key, { leaf, value }] of this.values) {
      if (exclude.has(key)) continue;
      let object = root;
      for (const segment of leaf.path.slice(0, -1)) {
        object = (object[segment] ??= {}) as Record<string, unknown>;
      }
      object[leaf.path.at(-1)!] = value;
    }
    return root;
  }
}

/** Walks one JSON object of the file (or of an object-valued env var) against the key tree. */
function collectObject(
  branch: Branch,
  object: Record<string, unknown>,
  source: string,
  out: Collector,
): void {
  for (const [key, value] of Object.entries(object)) {
    const path = [...branch.path, key];
    const alias = ALIASES[path.join(".")];
    if (alias !== undefined && Object.hasOwn(object, alias)) {
      out.reject(
        path,
        value,
        source,
        `alias of ${[...branch.path, alias].join(".")}; set only one`,
      );
      continue;
    }
    const node = child(branch, key);
    if (!node) {
      out.unknown(path, source);
    } else if (node.kind === "leaf") {
      out.assign(node, value, source);
    } else if (isRecord(value)) {
      collectObject(node, value, source, out);
    } else {
      out.reject(path, value, source, "must be an object");
    }
  }
}

function isNotFound(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound ||
    (isRecord(error) && error.code === "ENOENT");
}

function collectFile(
  explicit: { path: string; origin: string } | undefined,
  cwd: string,
  read: (path: string) => string,
  out: Collector,
): void {
  const path = resolve(cwd, explicit?.path ?? "config.json");
  let text: string;
  try {
    text = read(path);
  } catch (error) {
    if (!explicit && isNotFound(error)) return; // ./config.json is optional
    const origin = explicit ? `from ${explicit.origin}` : "found in the working directory";
    out.errors.push(
      `invalid configuration: cannot read config file ${path} (${origin}): ${errorMessage(error)}`,
    );
    return;
  }
  out.file = path;
  const parsed = parseJson(text);
  if (!parsed.ok) {
    const { line, column } = lineAndColumn(text, parsed.position);
    const what = parsed.position === undefined || parsed.position >= text.length
      ? "unexpected end of input"
      : "syntax error";
    out.errors.push(
      `invalid configuration: config file ${path} is not valid JSON: ${what} at line ${line}, ` +
        `column ${column}`,
    );
  } else if (!isRecord(parsed.value)) {
    out.errors.push(`invalid configuration: config file ${path} must contain a JSON object`);
  } else {
    collectObject(KEY_TREE, parsed.value, `config file ${path}`, out);
  }
}

const ENV_PREFIXES = ["SIGNAL_FISH__", "SIGNAL_FISH_"];
const ENV_CONFIG_PATH = "SIGNAL_FISH_CONFIG_PATH";
const ENV_UNSUPPORTED = ["SIGNAL_FISH_CONFIG_JSON", "SIGNAL_FISH_CONFIG_STDIN"];

function resolveEnvName(name: string): Node | undefined {
  const prefix = ENV_PREFIXES.find((p) => name.startsWith(p));
  if (prefix === undefined || name.length === prefix.length) return undefined;
  let node: Node = KEY_TREE;
  for (const segment of name.slice(prefix.length).split("__")) {
    const next: Node | undefined = node.kind === "branch"
      ? child(node, segment.toLowerCase())
      : undefined; // no paths into maps and arrays
    if (!next) return undefined;
    node = next;
  }
  return node;
}

function parseScalar(type: ScalarType, text: string): unknown {
  if (type === "int") return /^\d+$/.test(text) ? Number(text) : text;
  if (type === "bool") {
    const lower = text.toLowerCase();
    if (lower === "true" || lower === "1") return true;
    if (lower === "false" || lower === "0") return false;
  }
  return text; // strings; anything unparsed is left for the schema to reject with its rule
}

/** Parses an environment value by its key's type (docs/spec/SERVER.md §2.3 table). */
function parseEnvValue(node: Node, raw: string): { ok: true; value: unknown } | {
  ok: false;
  rule: string;
} {
  if (node.kind === "branch") return parseJson(raw);
  if (node.type === "string") return { ok: true, value: node.nullable && raw === "" ? null : raw };
  const trimmed = raw.trim();
  if (node.nullable && trimmed === "") return { ok: true, value: null };
  switch (node.type) {
    case "json":
      return parseJson(trimmed);
    case "list":
      if (trimmed.startsWith("[")) return parseJson(trimmed);
      return {
        ok: true,
        value: trimmed === ""
          ? []
          : trimmed.split(",").map((item) => parseScalar(node.element!, item.trim())),
      };
    default:
      return { ok: true, value: parseScalar(node.type, trimmed) };
  }
}

/** True when the value at `path` may hold a secret, so its raw text must not be echoed. */
function collectEnv(env: Record<string, string>, out: Collector): void {
  for (const name of ENV_UNSUPPORTED) {
    if (name in env) {
      out.errors.push(
        `invalid configuration: ${name} is not supported; put the configuration in a file and ` +
          `pass --config <path> (or set ${ENV_CONFIG_PATH})`,
      );
    }
  }
  // Sorted names put the documented SIGNAL_FISH_X before upstream's SIGNAL_FISH__X, so it is the
  // reported source when both forms agree.
  const byPath = new Map<string, { node: Node; names: string[] }>();
  for (const name of Object.keys(env).sort()) {
    if (!ENV_PREFIXES.some((p) => name.startsWith(p))) continue;
    if (name === ENV_CONFIG_PATH || ENV_UNSUPPORTED.includes(name)) continue;
    const node = resolveEnvName(name);
    if (!node) {
      const hint = closestEnvName(name);
      out.warnings.push(
        `ignoring environment variable ${name}: not a configuration key` +
          (hint === undefined ? "" : ` (did you mean ${hint}?)`),
      );
      out.unknownEnv.push({ name, hint });
      continue;
    }
    const key = node.path.join(".");
    byPath.set(key, { node, names: [...byPath.get(key)?.names ?? [], name] });
  }
  // Whole objects first, so a variable naming one of their keys wins over them.
  const targets = [...byPath.values()].sort((a, b) => a.node.path.length - b.node.path.length);
  for (const { node, names } of targets) {
    const values: { name: string; value: unknown }[] = [];
    for (const name of names) {
      const result = parseEnvValue(node, env[name]!);
      if (result.ok) values.push({ name, value: result.value });
      else out.reject(node.path, holdsSecret(node.path) ? REDACTED : env[name], name, result.rule);
    }
    if (values.length < names.length) continue;
    const [first, ...others] = values as [(typeof values)[number], ...typeof values];
    const conflict = others.find((o) => JSON.stringify(o.value) !== JSON.stringify(first.value));
    if (conflict) {
      const rule = `conflicts with ${first.name} = ${formatValue(node.path, first.value)}; ` +
        "set only one of them";
      out.reject(node.path, conflict.value, conflict.name, rule);
    } else if (node.kind === "leaf") {
      out.assign(node, first.value, first.name);
    } else if (isRecord(first.value)) {
      collectObject(node, first.value, first.name, out);
    } else {
      out.reject(node.path, first.value, first.name, "must be a JSON object");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Validation.

/** Messages for issues the building blocks above do not word themselves. */
function fallbackRule(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code !== "invalid_type") return undefined;
  if (issue.input === undefined) return "is required";
  const article = /^[aeiou]/.test(issue.expected) ? "an" : "a";
  return `must be ${article} ${issue.expected === "record" ? "object" : issue.expected}`;
}

/** Expands zod issues into one [path, rule] per offending key; `unknown` marks unknown keys. */
function issuesOf(error: z.ZodError): (Issue & { unknown?: true })[] {
  return error.issues.flatMap((issue) =>
    issue.code === "unrecognized_keys"
      ? issue.keys.map((key) => ({
        path: [...issue.path, key] as Path,
        message: "unknown key",
        unknown: true as const,
      }))
      : [{ path: issue.path as Path, message: issue.message }]
  );
}

function valueAt(root: unknown, path: Path): unknown {
  let value = root;
  for (const segment of path) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, segment)) {
      return undefined;
    }
    value = (value as Record<string | number, unknown>)[segment];
  }
  return value;
}

/**
 * `security.transport.tls`'s files (docs/spec/SERVER.md §2.6 rule 2): both readable, the
 * certificate and key parse and belong together ({@linkcode checkTlsPem}); a certificate out of
 * its validity period at `now`, or ending within 14 days, is a warning.
 */
function unusableTlsFiles(
  config: Config,
  cwd: string,
  read: (path: string) => string,
  now: number,
  out: Collector,
): void {
  const { tls } = config.security.transport;
  if (!tls.enabled) return;
  const texts: Partial<Record<"certificate_path" | "private_key_path", string>> = {};
  for (const key of ["certificate_path", "private_key_path"] as const) {
    const file = tls[key];
    const path = ["security", "transport", "tls", key];
    if (file === null || file.trim() === "" || out.failed.has(path.join("."))) continue;
    try {
      texts[key] = read(resolve(cwd, file));
    } catch (error) {
      out.reject(path, file, out.sourceOf(path), `cannot read file: ${errorMessage(error)}`);
    }
  }
  if (texts.certificate_path === undefined || texts.private_key_path === undefined) return;
  const checked = checkTlsPem(texts.certificate_path, texts.private_key_path, now);
  if (!checked.ok) {
    const path = ["security", "transport", "tls", checked.file];
    out.reject(path, tls[checked.file], out.sourceOf(path), checked.rule);
  } else if (checked.warning !== undefined) {
    out.warnings.push(
      `security.transport.tls.certificate_path ${JSON.stringify(tls.certificate_path)}: ` +
        checked.warning,
    );
  }
}

/** `cluster.redis_tls_ca_path` must be a readable PEM certificate (docs/spec/SERVER.md §2.6 rule 18). */
function unreadableRedisCa(
  config: Config,
  cwd: string,
  read: (path: string) => string,
  out: Collector,
): void {
  const file = config.cluster.redis_tls_ca_path;
  const path = ["cluster", "redis_tls_ca_path"];
  if (file === null || out.failed.has(path.join("."))) return;
  let text: string;
  try {
    text = read(resolve(cwd, file));
  } catch (error) {
    out.reject(path, file, out.sourceOf(path), `cannot read file: ${errorMessage(error)}`);
    return;
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    out.reject(path, file, out.sourceOf(path), "is not a PEM file with a CA certificate");
  }
}

/** `server.state_file` must be restorable and writable (docs/spec/SERVER.md §2.6 rule 19). */
function unusableStateFile(
  config: Config,
  cwd: string,
  check: (path: string) => string | undefined,
  out: Collector,
): void {
  const file = config.server.state_file;
  const path = ["server", "state_file"];
  if (file === null || out.failed.has(path.join("."))) return;
  const problem = check(resolve(cwd, file));
  if (problem !== undefined) out.reject(path, file, out.sourceOf(path), problem);
}

function granted(descriptor: Deno.PermissionDescriptor): boolean {
  return Deno.permissions.querySync(descriptor).state === "granted";
}

/**
 * Why this process could not restore or save `server.state_file` at `path` (absolute), or
 * undefined when it can (docs/spec/SERVER.md §2.6 rule 19): the file must lie within the paths
 * the process may read and its directory within those it may write (`--allow-read`,
 * `--allow-write`), and that directory, or the nearest existing one above it (saving creates the
 * missing ones), must be a directory the operating system lets this user write: a probe file
 * `.signal-fish-write-check-<uuid>` is created there and removed at once. A directory this
 * process may not look at (`--allow-read`), or that does not exist yet under one it may not write,
 * is taken on trust.
 */
export function stateFileProblem(path: string): string | undefined {
  const dir = dirname(path);
  if (!granted({ name: "write", path: dir })) {
    return `this process may not write its directory ${dir} (it is outside the --allow-write ` +
      "paths; the executables write only ./state and /var/lib/signal-fish)";
  }
  if (!granted({ name: "read", path })) {
    return "this process may not read it (it is outside the --allow-read paths; the executables " +
      "read only ./state and /var/lib/signal-fish)";
  }
  let existing = dir;
  for (;;) {
    try {
      if (!Deno.statSync(existing).isDirectory) return `${existing} is not a directory`;
      break;
    } catch (error) {
      // A directory this process may not look at is taken on trust.
      if (error instanceof Deno.errors.NotCapable) return undefined;
      if (!(error instanceof Deno.errors.NotFound)) {
        return `cannot check ${existing}: ${errorMessage(error)}`;
      }
      if (dirname(existing) === existing) return undefined;
      existing = dirname(existing);
    }
  }
  if (existing !== dir && !granted({ name: "write", path: existing })) return undefined;
  const probe = join(existing, `.signal-fish-write-check-${crypto.randomUUID()}`);
  try {
    Deno.openSync(probe, { write: true, createNew: true, mode: 0o600 }).close();
  } catch (error) {
    return `cannot write a file in ${existing}: ${errorMessage(error)}`;
  }
  try {
    Deno.removeSync(probe);
  } catch {
    // Left behind, empty; saving does not look at it.
  }
  return undefined;
}

function configWarnings(config: Config): string[] {
  const { security } = config;
  const warnings: string[] = [];
  if (config.server.reuse_port && config.cluster.redis_url === null) {
    // docs/spec/SERVER.md §1.1 note: a shared port is only useful in cluster mode.
    warnings.push(
      "server.reuse_port is true but cluster.redis_url is not set: every process on the shared " +
        "port is a separate server with its own rooms, and the kernel hands each connection to " +
        "any of them (set cluster.redis_url, or turn server.reuse_port off)",
    );
  }
  if (!security.require_metrics_auth) {
    warnings.push(
      "metrics endpoints are unauthenticated (security.require_metrics_auth is false)",
    );
  } else if ((security.metrics_auth_token ?? "").length < 16) {
    warnings.push("security.metrics_auth_token is shorter than 16 characters");
  }
  if (security.require_websocket_auth) {
    if (security.authorized_apps.length === 0) {
      warnings.push(
        "security.require_websocket_auth is true but security.authorized_apps is empty: " +
          "every Authenticate fails with INVALID_APP_ID",
      );
    }
    const withSecret = security.authorized_apps.filter((app) => app.app_secret !== null);
    if (withSecret.length > 0) {
      warnings.push(
        `apps with an app_secret accept only clients that send Authenticate.app_secret ` +
          `(released SDKs do not): ${withSecret.map((app) => app.app_id).join(", ")}`,
      );
    }
  }
  return warnings;
}

/** Where and how to load the configuration; everything external is injectable for tests. */
export interface LoadOptions {
  /** Config file named by `--config` (relative to `cwd`); it must exist and parse. */
  configPath?: string;
  /** `--port` override; beats every other source. */
  port?: number;
  /** `--host` override of `server.host`; beats every other source. */
  host?: string;
  /** The process environment (`SIGNAL_FISH_*` overrides, `SIGNAL_FISH_CONFIG_PATH`). */
  env: Record<string, string>;
  /**
   * Directory that relative paths and the implicit `./config.json` are resolved against.
   * @default Deno.cwd()
   */
  cwd?: string;
  /**
   * Reads a file as UTF-8 text (config file, TLS certificate and key, Redis CA); throws when
   * unreadable.
   * @default Deno.readTextFileSync
   */
  readTextFile?: (path: string) => string;
  /**
   * Why `server.state_file` (an absolute path) cannot be restored or saved, or undefined when it
   * can.
   * @default stateFileProblem
   */
  checkStateFile?: (path: string) => string | undefined;
  /**
   * The time the TLS certificate's validity is judged at, ms since the epoch.
   * @default Date.now()
   */
  now?: number;
}

/** A `SIGNAL_FISH_*` variable that names no key, and the documented name it is closest to. */
export interface UnknownEnvName {
  name: string;
  /** A likely intended name (a small edit away), if any. */
  hint: string | undefined;
}

/**
 * The outcome of {@linkcode loadConfig}: the effective configuration plus warnings for stderr, or
 * every error found, each a line `invalid configuration: <key> = <value> (from <source>): <rule>`.
 */
export type LoadResult =
  | {
    ok: true;
    config: Config;
    warnings: string[];
    file: string | undefined;
    unknownEnv: UnknownEnvName[];
  }
  | { ok: false; errors: string[]; file: string | undefined };

/**
 * Builds the effective configuration from defaults < config file < environment < `port`
 * (docs/spec/SERVER.md §2.1) and validates it (§2.6), collecting all errors. Never throws.
 */
export function loadConfig(options: LoadOptions): LoadResult {
  const out = new Collector();
  try {
    const { env } = options;
    const cwd = options.cwd ?? Deno.cwd();
    const read = options.readTextFile ?? Deno.readTextFileSync;
    const envPath = env[ENV_CONFIG_PATH];
    const explicit = options.configPath !== undefined
      ? { path: options.configPath, origin: "--config" }
      : envPath // an empty value counts as unset
      ? { path: envPath, origin: ENV_CONFIG_PATH }
      : undefined;
    collectFile(explicit, cwd, read, out);
    collectEnv(env, out);
    if (options.port !== undefined) {
      out.assign(KEY_TREE.children.get("port") as Leaf, options.port, "--port");
    }
    if (options.host !== undefined) {
      const server = KEY_TREE.children.get("server") as Branch;
      out.assign(server.children.get("host") as Leaf, options.host, "--host");
    }

    const input = out.input();
    const parsed = ConfigFields.safeParse(input, { error: fallbackRule });
    const invalid = new Set(out.failed);
    if (!parsed.success) {
      for (const { path, message, unknown } of issuesOf(parsed.error)) {
        out.errors.push(
          unknown
            ? unknownKeyError(path, out.sourceOf(path))
            : configError(path, valueAt(input, path), out.sourceOf(path), message),
        );
        invalid.add(leafKey(path));
      }
    }
    // Cross-field rules run on the valid keys, with defaults standing in for invalid ones.
    const config = parsed.success ? parsed.data : ConfigFields.safeParse(out.input(invalid)).data;
    if (config) {
      for (const { path, message } of crossFieldIssues(config)) {
        if (invalid.has(leafKey(path))) continue;
        const value = valueAt(input, path) ?? valueAt(config, path);
        out.errors.push(configError(path, value, out.sourceOf(path), message));
        out.failed.add(leafKey(path)); // its file is not checked too
      }
      unusableTlsFiles(config, cwd, read, options.now ?? Date.now(), out);
      unreadableRedisCa(config, cwd, read, out);
      unusableStateFile(config, cwd, options.checkStateFile ?? stateFileProblem, out);
    }
    if (out.errors.length > 0 || !config) return { ok: false, errors: out.errors, file: out.file };
    return {
      ok: true,
      config,
      warnings: [...out.warnings, ...configWarnings(config)],
      file: out.file,
      unknownEnv: out.unknownEnv,
    };
  } catch (error) {
    // A bug here must still surface as a configuration failure, not an exception.
    return {
      ok: false,
      errors: [...out.errors, `cannot load configuration: ${errorMessage(error)}`],
      file: out.file,
    };
  }
}

/**
 * The stdout text of a successful `--validate-config` (docs/spec/SERVER.md §2.5 and its note),
 * newline-terminated. `file` is the config file that was read (undefined: none).
 */
export function validationSummary(config: Config, file?: string): string {
  return [
    "Configuration validation passed",
    "",
    "Configuration summary:",
    `  Port: ${config.port}`,
    `  Storage backend: ${config.cluster.redis_url === null ? "InMemory" : "Redis"}`,
    `  TLS enabled: ${config.security.transport.tls.enabled}`,
    `  Metrics auth required: ${config.security.require_metrics_auth}`,
    `  Reconnection enabled: ${config.server.enable_reconnection}`,
    `  Max players per room: ${config.server.default_max_players}`,
    `  Deployment region: ${config.server.region_id}`,
    // Not in docs/spec/SERVER.md §2.5's list; added after it (see the note there).
    `  Bind address: ${config.server.host}`,
    `  Config file: ${file ?? "none (built-in defaults and environment variables)"}`,
    "",
  ].join("\n");
}

/**
 * Every environment variable name the configuration reads, upper case (docs/spec/SERVER.md §2.3): both
 * prefixes (`SIGNAL_FISH_` and `SIGNAL_FISH__`) for every key and object of the key tree, the
 * aliases, and the reserved names. Used when the process may read only `SIGNAL_FISH_*` variables
 * and so cannot list the environment.
 */
export function configEnvNames(): string[] {
  const paths: string[][] = [];
  const walk = (node: Node) => {
    if (node.path.length > 0) paths.push(node.path);
    if (node.kind === "branch") node.children.forEach(walk);
  };
  walk(KEY_TREE);
  for (const alias of Object.keys(ALIASES)) paths.push(alias.split("."));
  const names = new Set([ENV_CONFIG_PATH, ...ENV_UNSUPPORTED]);
  for (const path of paths) {
    for (const prefix of ENV_PREFIXES) names.add(prefix + path.join("__").toUpperCase());
  }
  return [...names].sort();
}

/**
 * The environment the configuration is loaded from. With full env access that is the whole
 * environment (so unknown `SIGNAL_FISH_*` names get their warning and lower-case spellings work);
 * with access limited to `SIGNAL_FISH_*` (the compiled executable, `--allow-env=SIGNAL_FISH_*`)
 * it is the upper-case names of {@linkcode configEnvNames} that are set.
 */
export function readConfigEnv(): Record<string, string> {
  try {
    return Deno.env.toObject();
  } catch (error) {
    if (
      !(error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied)
    ) {
      throw error;
    }
    const env: Record<string, string> = {};
    for (const name of configEnvNames()) {
      const value = Deno.env.get(name);
      if (value !== undefined) env[name] = value;
    }
    return env;
  }
}
