/**
 * Shared set-up of the real-browser tests (tests/browser_test.ts, tests/admin_browser_test.ts):
 * Debian's chromium driven by playwright-core, skipped locally when it is missing but required
 * when SIGNAL_FISH_REQUIRE_BROWSER=1 (set by .ci/run).
 *
 * @module
 */
import { ok } from "node:assert/strict";

/** Where Debian installs chromium. */
export const CHROMIUM = "/usr/bin/chromium";

/** True when the environment demands the browser tests run (SIGNAL_FISH_REQUIRE_BROWSER=1). */
export const REQUIRED = Deno.env.get("SIGNAL_FISH_REQUIRE_BROWSER") === "1";

function chromiumInstalled(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

/** Whether {@linkcode CHROMIUM} is present. */
export const installed: boolean = chromiumInstalled();

/**
 * Chromium flags every browser test uses: no sandbox, no background traffic or updates, and no
 * throttling of the pages a test does not have in front (several players' pages share one
 * browser; Chromium runs the timers of a page it treats as in the background once a second,
 * which a loaded machine makes likelier to matter).
 */
export const CHROMIUM_ARGS: readonly string[] = [
  "--no-sandbox",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-dev-shm-usage",
  "--no-first-run",
  "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows",
];

/**
 * Registers a browser test: ignored when chromium is missing and not {@linkcode REQUIRED}, and
 * failing at once with a clear message when it is required but missing.
 */
export function browserTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name,
    ignore: !installed && !REQUIRED,
    // playwright-core keeps the browser's pipes and child process in its own bookkeeping; they
    // are closed by browser.close() / context.close(), but not in an order Deno's sanitizers
    // can follow.
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      ok(installed, `${CHROMIUM} is missing (install Debian's chromium; .ci/run does)`);
      await fn();
    },
  });
}
