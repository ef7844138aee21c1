/**
 * The demo page's files as text imports of `static/` (docs/spec/SERVER.md §1.2): loaded by
 * `static_files.ts` with a dynamic import on the first request for one of them, so a server that
 * never serves the page does not hold their source (about 90 kB of text) in memory. The import
 * specifier is a literal, so `deno compile` still carries them.
 *
 * @module
 */
import clientJs from "../../static/client.js" with { type: "text" };
import demoJs from "../../static/demo.js" with { type: "text" };
import faviconSvg from "../../static/favicon.svg" with { type: "text" };
import indexHtml from "../../static/index.html" with { type: "text" };

/** File name under `static/` → its text. */
export const STATIC_ASSETS: Readonly<Record<string, string>> = {
  "index.html": indexHtml,
  "client.js": clientJs,
  "demo.js": demoJs,
  "favicon.svg": faviconSvg,
};
