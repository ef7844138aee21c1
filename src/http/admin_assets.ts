/**
 * The operator console's files (docs/spec/EXTENSIONS.md E12): `static/admin/` and uPlot from its
 * npm package (pinned in deno.lock), as text imports. `admin.ts` loads this module with a dynamic
 * import on the first request for one of them, so a server whose console is never opened does not
 * hold their source (about 85 kB of text, and its encoded bytes) in memory. The import specifier
 * is a literal, so `deno compile` still carries them.
 *
 * @module
 */
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };
import uplotJs from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import adminCss from "../../static/admin/admin.css" with { type: "text" };
import adminHtml from "../../static/admin/index.html" with { type: "text" };
import adminJs from "../../static/admin/admin.js" with { type: "text" };
import { type Asset, asset } from "./static_files.ts";

const HTML = "text/html; charset=utf-8";
const JS = "text/javascript; charset=utf-8";
const CSS = "text/css; charset=utf-8";

/** Path → the console's asset; the keys are `admin.ts`'s `ASSET_PATHS`. */
export const ADMIN_ASSETS: ReadonlyMap<string, Asset> = new Map([
  ["/admin", asset(adminHtml, HTML)],
  ["/admin/", asset(adminHtml, HTML)],
  ["/admin/admin.js", asset(adminJs, JS)],
  ["/admin/admin.css", asset(adminCss, CSS)],
  ["/admin/uplot.js", asset(uplotJs, JS)],
  ["/admin/uplot.css", asset(uplotCss, CSS)],
]);
