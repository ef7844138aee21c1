/**
 * The browser files the server serves beside the protocol: the demo page at `/`, its script, its
 * icon (`/favicon.svg`) and the bundled client library at `/client.js` (built by
 * `deno task bundle`). They are text imports of `static/` (`static_assets.ts`), part of the module
 * graph: serving them needs no file system access and a compiled binary carries them. That module is
 * imported on the first request for one of them, so a server that never serves the page does not
 * hold their text.
 *
 * @module
 */
import { methodNotAllowed, notFound } from "./responses.ts";
import type { Awaitable } from "../coordination/awaitable.ts";

/** `static_assets.ts`'s texts, once the first request for one of them has loaded it. */
let texts: Promise<Readonly<Record<string, string>>> | undefined;

/** URL path → file in `static/` and its media type. */
const FILES: ReadonlyMap<string, { file: string; type: string }> = new Map([
  ["/", { file: "index.html", type: "text/html; charset=utf-8" }],
  ["/index.html", { file: "index.html", type: "text/html; charset=utf-8" }],
  ["/client.js", { file: "client.js", type: "text/javascript; charset=utf-8" }],
  ["/demo.js", { file: "demo.js", type: "text/javascript; charset=utf-8" }],
  ["/favicon.svg", { file: "favicon.svg", type: "image/svg+xml" }],
]);

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

function load(file: string, assets: Readonly<Record<string, string>>): Loaded | null {
  let loaded = cache.get(file);
  if (loaded === undefined) {
    const text = Object.hasOwn(assets, file) ? assets[file] : undefined;
    if (text === undefined) loaded = null;
    else {
      const body = new TextEncoder().encode(text);
      loaded = { body, etag: `"${fnv1a(body)}-${body.length}"` };
    }
    cache.set(file, loaded);
  }
  return loaded;
}

/** True when `path` names one of the static files. */
export function isStaticPath(path: string): boolean {
  return FILES.has(path);
}

/** An in-memory asset: its bytes and validator ({@linkcode asset}). */
export interface Asset {
  readonly body: Uint8Array<ArrayBuffer>;
  readonly etag: string;
  /** The media type, e.g. `text/javascript; charset=utf-8`. */
  readonly type: string;
}

/** Encodes `text` once as an asset of media type `type`, with its ETag. */
export function asset(text: string, type: string): Asset {
  const body = new TextEncoder().encode(text);
  return { body, etag: `"${fnv1a(body)}-${body.length}"`, type };
}

/**
 * Answers GET or HEAD for `served` like {@linkcode serveStatic} (ETag, `304`, `no-cache`,
 * `nosniff`), with `extra` headers (e.g. a content security policy); other methods get `405`.
 */
export function serveAsset(
  request: Request,
  served: Asset,
  extra: Record<string, string> = {},
): Response {
  if (request.method !== "GET" && request.method !== "HEAD") return methodNotAllowed();
  const headers = {
    "content-type": served.type,
    "cache-control": "no-cache",
    etag: served.etag,
    "x-content-type-options": "nosniff",
    ...extra,
  };
  const match = request.headers.get("if-none-match");
  if (match !== null && match.split(",").some((tag) => tag.trim() === served.etag)) {
    return new Response(null, { status: 304, headers });
  }
  return new Response(request.method === "HEAD" ? null : served.body, { headers });
}

/**
 * Answers a request for a static file: `200` with the file (`cache-control: no-cache` plus an
 * ETag, so browsers revalidate and get `304` while it is unchanged), `405` for methods other
 * than GET/HEAD, `404` when the file is missing from the build. Files are read once and kept
 * in memory. Returns `undefined` when `path` is not a static file.
 */
export function serveStatic(request: Request, path: string): Awaitable<Response> | undefined {
  const entry = FILES.get(path);
  if (!entry) return undefined;
  if (request.method !== "GET" && request.method !== "HEAD") return methodNotAllowed();
  const cached = cache.get(entry.file);
  if (cached !== undefined) return answer(request, entry.type, cached);
  texts ??= import("./static_assets.ts").then((module) => module.STATIC_ASSETS);
  return texts.then((assets) => answer(request, entry.type, load(entry.file, assets)));
}

function answer(request: Request, type: string, loaded: Loaded | null): Response {
  if (!loaded) return notFound();
  const headers = {
    "content-type": type,
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
