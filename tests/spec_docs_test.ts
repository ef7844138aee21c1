/**
 * The documents stand alone: every spec reference in code, README, docs, the bundled client,
 * scripts and benchmarks (`SERVER.md §1.2`, `PROTOCOL.md Appendix A`, `EXTENSIONS.md E4`, a bare
 * `§7.11`) names a document and a section heading that exist in this repository (docs/spec/), every
 * `*.md` name mentioned there is a file of the repository, every relative Markdown link resolves,
 * the configuration keys and defaults of docs/spec/SERVER.md §2.7 (with its "This implementation"
 * note) match the schema, and docs/spec/EXTENSIONS.md E8 names every field of `/v2/status`.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { dirname, join, relative } from "node:path";
import { configEnvNames } from "../src/config/load.ts";
import { DEFAULT_CONFIG } from "../src/config/schema.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const SPEC_DIR = join(ROOT, "docs/spec");
const SPEC_DOCS = ["PROTOCOL.md", "SERVER.md", "EXTENSIONS.md"] as const;

/** What a user can read: every source, script, document and shipped asset. */
const SCANNED_DIRS = ["src", "scripts", "docs", "static", "bench", "tests", "demo", "deploy"];
const SCANNED_FILES = ["main.ts", "README.md", "SECURITY.md", "BENCHMARKS.md", "deno.json"];
const SCANNED_EXTENSIONS = /\.(ts|js|md|html|json|conf|service|env|toml|yaml|yml)$|Caddyfile$/;
const SKIPPED = /(^|\/)(node_modules|results|artifacts)\//;

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return out;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...filesUnder(path));
    else if (entry.isFile && SCANNED_EXTENSIONS.test(entry.name)) out.push(path);
  }
  return out;
}

function scannedFiles(): string[] {
  return [
    ...SCANNED_FILES.map((file) => join(ROOT, file)),
    ...SCANNED_DIRS.flatMap((dir) => filesUnder(join(ROOT, dir))),
  ].filter((path) => !SKIPPED.test(relative(ROOT, path)));
}

/**
 * Section ids of a spec document from its headings: `## 1. Transport` → `1`, `### 7.11.2 …` →
 * `7.11.2`, `## Appendix A. …` → `Appendix A`, `## E4. …` → `E4`.
 */
function sectionIds(markdown: string): Set<string> {
  const ids = new Set<string>();
  for (const line of markdown.split("\n")) {
    const heading = /^#{1,6}\s+(.*)$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const id = /^(\d+(?:\.\d+)*)\.?\s/.exec(heading)?.[1] ??
      /^(Appendix [A-Z])\b/.exec(heading)?.[1] ??
      /^(E\d+)\./.exec(heading)?.[1];
    if (id !== undefined) ids.add(id);
  }
  return ids;
}

/** One reference found in a file: the document (undefined for a bare `§x`) and the section. */
interface Reference {
  doc: string | undefined;
  section: string | undefined;
  line: number;
}

const SECTION = String.raw`(?:§\s?\d+(?:\.\d+)*|Appendix [A-Z]\b|E\d+\b)`;
const JOINER = String.raw`(?:\s*(?:,|and|or|/|–|-|to)\s*|\s+)`;
const NAMED = new RegExp(
  String.raw`\b(PROTOCOL|SERVER|EXTENSIONS)\.md\b((?:${JOINER}?${SECTION})*)`,
  "g",
);
const BARE = /§\s?(\d+(?:\.\d+)*)/g;

function normalise(section: string): string {
  return section.replace(/^§\s?/, "").replace(/\.$/, "");
}

/**
 * Every spec reference in `text`: a document name followed by any number of sections (`§7.1–§7.3`,
 * `E1, E2`), and every `§x` not following a document name (those count for whichever document
 * has that section).
 */
function findReferences(text: string): Reference[] {
  const refs: Reference[] = [];
  const named = new Set<number>();
  const lineOf = (index: number) => text.slice(0, index).split("\n").length;
  for (const match of text.matchAll(NAMED)) {
    const doc = `${match[1]}.md`;
    const tail = match[2] ?? "";
    const sections = [...tail.matchAll(new RegExp(SECTION, "g"))].map((m) => normalise(m[0]));
    if (sections.length === 0) refs.push({ doc, section: undefined, line: lineOf(match.index) });
    for (const section of sections) refs.push({ doc, section, line: lineOf(match.index) });
    const start = match.index + match[0].length - tail.length;
    for (const m of tail.matchAll(/§/g)) named.add(start + m.index);
  }
  for (const match of text.matchAll(BARE)) {
    if (named.has(match.index)) continue;
    refs.push({ doc: undefined, section: match[1], line: lineOf(match.index) });
  }
  return refs;
}

function specSections(): Map<string, Set<string>> {
  return new Map(
    SPEC_DOCS.map((doc) => [doc, sectionIds(Deno.readTextFileSync(join(SPEC_DIR, doc)))]),
  );
}

Deno.test("sectionIds and findReferences read headings and references as written", () => {
  deepEqual(
    [...sectionIds(
      "# T\n## 1. HTTP\n### 1.2 Routes\n#### 8.4.1 Envelopes\n## Appendix A. X\n" +
        "## E4. `GameData.to_player`\n## Ambiguities\n",
    )],
    ["1", "1.2", "8.4.1", "Appendix A", "E4"],
  );
  const refs = findReferences(
    "see SERVER.md §2.1–§2.6 and PROTOCOL.md Appendix A\n(EXTENSIONS.md E1, E2) §7.7 PROTOCOL.md",
  );
  deepEqual(refs.map((r) => [r.doc, r.section, r.line]), [
    ["SERVER.md", "2.1", 1],
    ["SERVER.md", "2.6", 1],
    ["PROTOCOL.md", "Appendix A", 1],
    ["EXTENSIONS.md", "E1", 2],
    ["EXTENSIONS.md", "E2", 2],
    ["PROTOCOL.md", undefined, 2],
    [undefined, "7.7", 2],
  ]);
});

Deno.test("every spec reference names a document and a section of docs/spec/", () => {
  const sections = specSections();
  const all = new Set([...sections.values()].flatMap((ids) => [...ids]));
  const broken: string[] = [];
  let checked = 0;
  for (const path of scannedFiles()) {
    const text = Deno.readTextFileSync(path);
    for (const ref of findReferences(text)) {
      checked++;
      const where = `${relative(ROOT, path)}:${ref.line}`;
      if (ref.doc === undefined) {
        if (!all.has(ref.section!)) broken.push(`${where}: §${ref.section} is in no spec document`);
        continue;
      }
      const ids = sections.get(ref.doc);
      if (ids === undefined) broken.push(`${where}: ${ref.doc} is not in docs/spec/`);
      else if (ref.section !== undefined && !ids.has(ref.section)) {
        broken.push(`${where}: ${ref.doc} has no section ${ref.section}`);
      }
    }
  }
  ok(checked > 500, `only ${checked} references found: is the scan still reading the sources?`);
  deepEqual(broken, []);
});

Deno.test("every *.md name and relative Markdown link points at a file of the repository", () => {
  const files = scannedFiles();
  const names = new Set(
    [...files, ...SPEC_DOCS.map((doc) => join(SPEC_DIR, doc))].map((path) => path.split("/").pop()),
  );
  const broken: string[] = [];
  for (const path of files) {
    const text = Deno.readTextFileSync(path);
    for (const match of text.matchAll(/\b([A-Za-z0-9_-]+\.md)\b/g)) {
      if (!names.has(match[1])) broken.push(`${relative(ROOT, path)}: ${match[1]} does not exist`);
    }
    if (!path.endsWith(".md")) continue;
    for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = match[1]!.split("#")[0]!;
      if (target === "" || /^[a-z]+:/i.test(target)) continue;
      try {
        Deno.statSync(join(dirname(path), target));
      } catch {
        broken.push(`${relative(ROOT, path)}: link (${match[1]}) does not resolve`);
      }
    }
  }
  deepEqual(broken, []);
});

/**
 * The configuration keys documented in docs/spec/SERVER.md §2.7: table rows under each `#### `x.*``
 * heading.
 */
function documentedKeys(server: string): Set<string> {
  const start = server.indexOf("### 2.7 Key reference");
  const end = server.indexOf("### 2.8 ");
  ok(start >= 0 && end > start, "docs/spec/SERVER.md has §2.7 and §2.8");
  const keys = new Set<string>();
  let prefix = "";
  let inApps = false;
  for (const line of server.slice(start, end).split("\n")) {
    const heading = /^#### `([a-z_]+)\.\*`/.exec(line)?.[1];
    if (heading !== undefined) {
      prefix = `${heading}.`;
      inApps = false;
    } else if (line.startsWith("#### Root")) prefix = "";
    else if (line.startsWith("`security.authorized_apps[]`")) inApps = true;
    const key = /^\| `([a-z0-9_.]+)` \|/.exec(line)?.[1];
    if (key !== undefined && !inApps) keys.add(prefix + key);
  }
  return keys;
}

/** The note after the tables: keys this build adds, and keys of the tables it does not accept. */
function noteKeys(server: string): { added: Set<string>; missing: Set<string> } {
  const note = server.slice(server.indexOf("### 2.7 Key reference"), server.indexOf("### 2.8 "));
  const text = note.slice(note.lastIndexOf("`This implementation:`"));
  const [added, missing] = text.split("does not accept yet");
  const keys = (part = "") =>
    new Set([...part.matchAll(/`([a-z_][a-z0-9_]*\.[a-z0-9_.]+)`/g)].map((m) => m[1]!));
  return { added: keys(added), missing: keys(missing) };
}

/** The schema's leaf keys (maps and arrays count as one key), from its environment names. */
function schemaKeys(): Set<string> {
  const paths = configEnvNames()
    .filter((name) => name.startsWith("SIGNAL_FISH_") && !name.startsWith("SIGNAL_FISH__"))
    .filter((name) => !name.startsWith("SIGNAL_FISH_CONFIG_"))
    .map((name) => name.slice("SIGNAL_FISH_".length).toLowerCase().split("__").join("."));
  const all = new Set(paths);
  all.delete("server.heartbeat_db_throttle_secs"); // an alias (§2.2)
  return new Set([...all].filter((path) => ![...all].some((p) => p.startsWith(`${path}.`))));
}

Deno.test("SERVER.md §2.7 and its note list exactly the configuration keys of the schema", () => {
  const server = Deno.readTextFileSync(join(SPEC_DIR, "SERVER.md"));
  const documented = documentedKeys(server);
  const { added, missing } = noteKeys(server);
  const schema = schemaKeys();
  ok(schema.has("port") && schema.has("security.transport.tls.enabled"), "schema keys read");
  ok(documented.has("server.default_max_players"), "§2.7 tables read");
  const undocumented = [...schema].filter((key) => !documented.has(key) && !added.has(key));
  equal(
    undocumented.join(", "),
    "",
    `keys of src/config/schema.ts missing from docs/spec/SERVER.md §2.7: ${
      undocumented.join(", ")
    }` +
      " (add them to its 'This implementation' note)",
  );
  const notInSchema = [...documented].filter((key) => !schema.has(key)).sort();
  deepEqual(
    notInSchema,
    [...missing].sort(),
    "the keys SERVER.md §2.7 documents but the schema lacks must be exactly those its note lists " +
      "as not accepted yet",
  );
  const addedButDocumented = [...added].filter((key) => documented.has(key) || !schema.has(key));
  deepEqual(addedButDocumented, [], "keys the note adds are in the schema and not in the tables");
});

/**
 * The default of every key in the tables of docs/spec/SERVER.md §2.7 and in its "This
 * implementation" note (`key` (… default `value` …)), as written: the first backticked value of a
 * table row's default column, parsed as JSON when it is JSON.
 */
function documentedDefaults(server: string): Map<string, unknown> {
  const part = server.slice(server.indexOf("### 2.7 Key reference"), server.indexOf("### 2.8 "));
  const parse = (text: string) => {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  };
  const defaults = new Map<string, unknown>();
  let prefix = "";
  let inApps = false;
  for (const line of part.split("\n")) {
    const section = /^#### `([a-z_]+)\.\*`/.exec(line)?.[1];
    if (section !== undefined) {
      prefix = `${section}.`;
      inApps = false;
    } else if (line.startsWith("#### Root")) prefix = "";
    else if (line.startsWith("`security.authorized_apps[]`")) inApps = true;
    const row = /^\| `([a-z0-9_.]+)` \|[^|]*\| \**`([^`]*)`/.exec(line);
    if (row !== null && !inApps) defaults.set(prefix + row[1], parse(row[2]!));
  }
  const note = part.slice(part.lastIndexOf("`This implementation:`"));
  for (
    const m of note.matchAll(/`([a-z_]+\.[a-z0-9_.]+)`\s+\((?:[^()`]*?,\s+)?default\s+`([^`]+)`/g)
  ) {
    defaults.set(m[1]!, parse(m[2]!));
  }
  return defaults;
}

Deno.test("docs/spec/SERVER.md §2.7: every default its tables and note state is the schema's", () => {
  const server = Deno.readTextFileSync(join(SPEC_DIR, "SERVER.md"));
  const defaults = documentedDefaults(server);
  ok(defaults.size > 100, `§2.7 defaults read: ${defaults.size}`);
  ok(defaults.has("security.ipv6_prefix_length"), "the note's defaults read");
  const wrong = [...defaults].flatMap(([key, documented]) => {
    const actual = key.split(".").reduce<unknown>(
      (node, part) => (node as Record<string, unknown> | undefined)?.[part],
      DEFAULT_CONFIG,
    );
    return JSON.stringify(actual) === JSON.stringify(documented)
      ? []
      : [`${key}: documented ${JSON.stringify(documented)}, schema ${JSON.stringify(actual)}`];
  });
  deepEqual(wrong, [], "docs/spec/SERVER.md §2.7 states defaults the schema does not have");
});

Deno.test("docs/spec/EXTENSIONS.md E8 names every field of the /v2/status body (src/http/metrics_routes.ts StatusBody)", () => {
  const source = Deno.readTextFileSync(join(ROOT, "src/http/metrics_routes.ts"));
  const body = /export interface StatusBody \{([\s\S]*?)\n\}/.exec(source)?.[1];
  ok(body !== undefined, "StatusBody found");
  const fields = [...body.matchAll(/^ {2}([a-z_]+)\??:/gm)].map((m) => m[1]!);
  ok(fields.includes("held_seats"), `fields read: ${fields}`);
  const extensions = Deno.readTextFileSync(join(SPEC_DIR, "EXTENSIONS.md"));
  const e8 = extensions.slice(extensions.indexOf("## E8."), extensions.indexOf("## E9."));
  deepEqual(fields.filter((field) => !e8.includes(`"${field}":`)), [], "fields E8 does not name");
});
