/**
 * The browser files the server serves beside the protocol: the demo page at `/`, its script and
 * the bundled client library at `/client.js` (built by `deno task bundle`). Files are read from
 * `static/` relative to this module, so they are found from any working directory and in a
 * binary compiled with `--include static`.
 *
 * @module
 */

/** URL path → file in `static/` and its media type. */
const FILES: ReadonlyMap<string, { file: string; type: string }> = new Map([
  ["/", { file: "index.html", type: "text/html; charset=utf-8" }],
  ["/index.html", { file: "index.html", type: "text/html; charset=utf-8" }],
  ["/client.js", { file: "client.js", type: "text/javascript; charset=utf-8" }],
  ["/demo.js", { file: "demo.js", type: "text/javascript; charset=utf-8" }],
]);

const STATIC_DIR = new URL("../../static/", import.meta.url);

interface Loaded {
  body: Uint8Array<ArrayBuffer>;
  etag: string;
}

const cache = new Map<string, Loaded | null>();

/** FNV-1a over the bytes: a cheap, stable validator for the ETag (not a security hash). */
function fnv1a(bytes: Uint8Array): string {
  let hash = 0x811c9dc5;
  for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash.toString(16).padStart(8, "0");
}

function load(file: string): Loaded | null {
  let loaded = cache.get(file);
  if (loaded === undefined) {
    try {
      const body = Deno.readFileSync(new URL(file, STATIC_DIR));
      loaded = { body, etag: `"${fnv1a(body)}-${body.length}"` };
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      loaded = null;
    }
    cache.set(file, loaded);
  }
  return loaded;
}

/** True when `path` names one of the static files. */
export function isStaticPath(path: string): boolean {
  return FILES.has(path);
}

/**
 * Answers a request for a static file: `200` with the file (`cache-control: no-cache` plus an
 * ETag, so browsers revalidate and get `304` while it is unchanged), `405` for methods other
 * than GET/HEAD, `404` when the file is missing from the build. Files are read once and kept
 * in memory. Returns `undefined` when `path` is not a static file.
 */
export function serveStatic(request: Request, path: string): Response | undefined {
  const entry = FILES.get(path);
  if (!entry) return undefined;
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response(null, { status: 405, headers: { allow: "GET, HEAD" } });
  }
  const loaded = load(entry.file);
  if (!loaded) {
    return new Response(JSON.stringify({ message: "Not Found" }), {
      status: 404,
      headers: { "content-type": "application/json" },
    });
  }
  const headers = {
    "content-type": entry.type,
    "cache-control": "no-cache",
    etag: loaded.etag,
    "x-content-type-options": "nosniff",
  };
  const match = request.headers.get("if-none-match");
  if (match !== null && match.split(",").some((tag) => tag.trim() === loaded.etag)) {
    return new Response(null, { status: 304, headers });
  }
  return new Response(request.method === "HEAD" ? null : loaded.body, { headers });
}
