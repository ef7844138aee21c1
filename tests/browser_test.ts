/**
 * The demo page in a real browser: two Chromium tabs load `/` (which imports `/client.js`),
 * meet in a room, swap WebRTC offer/answer/ICE through the server as targeted GameData, open a
 * DataChannel and chat over it. The server must see only signaling, never the chat.
 *
 * Needs Debian's chromium at /usr/bin/chromium (driven by playwright-core). Without it the test
 * is skipped locally, but fails when SIGNAL_FISH_REQUIRE_BROWSER=1 (set by .ci/run).
 * playwright-core needs `--allow-all` under Deno (it reads /proc/sys and the home directory),
 * hence `deno task test` runs with `--allow-all`.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { serve } from "./helpers.ts";

// The page functions below run in the browser; this is the little of the DOM they use.
declare const document: {
  querySelector(selector: string): { textContent: string | null } | null;
  querySelectorAll(selector: string): { length: number };
};

const CHROMIUM = "/usr/bin/chromium";
const REQUIRED = Deno.env.get("SIGNAL_FISH_REQUIRE_BROWSER") === "1";
const ARTIFACTS = new URL("../artifacts/", import.meta.url);
/** Generous: two cores are shared by many processes, and ICE on a busy machine is slow. */
const UI_TIMEOUT_MS = 30_000;

function chromiumInstalled(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

const installed = chromiumInstalled();

async function launch(userDataDir: string): Promise<BrowserContext> {
  return await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-dev-shm-usage",
      "--no-first-run",
      // Plain host candidates (no mDNS names) so two tabs on one machine find each other
      // without STUN; loopback candidates too, for machines whose only interface is lo.
      "--disable-features=WebRtcHideLocalIpsWithMdns",
      "--allow-loopback-in-peer-connection",
    ],
  });
}

/** Waits until the element `selector` has `data-state` equal to `state`. */
async function waitForState(page: Page, selector: string, state: string): Promise<void> {
  await page.waitForSelector(`${selector}[data-state="${state}"]`, { timeout: UI_TIMEOUT_MS });
}

async function waitForText(page: Page, selector: string, text: string): Promise<void> {
  await page.waitForFunction(
    ([selector, text]) => document.querySelector(selector!)?.textContent?.includes(text!) ?? false,
    [selector, text],
    { timeout: UI_TIMEOUT_MS },
  );
}

Deno.test({
  name: "Demo page: two tabs connect peer to peer and chat over a DataChannel, not the server",
  ignore: !installed && !REQUIRED,
  // playwright-core keeps the browser's pipes and child process in its own bookkeeping; they
  // are closed by context.close(), but not in an order Deno's sanitizers can follow.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    ok(installed, `${CHROMIUM} is missing (install Debian's chromium; .ci/run does)`);
    await using server = await serve();
    // Record every frame a client sends: anything the server relays, it first receives here.
    const frames: (string | Uint8Array)[] = [];
    const edge = server.edge;
    const receive = edge.receive.bind(edge);
    edge.receive = (id, frame, now) => {
      frames.push(typeof frame === "string" ? frame : new Uint8Array(frame));
      receive(id, frame, now);
    };

    const userDataDir = await Deno.makeTempDir({ prefix: "signal-fish-chromium-" });
    const context = await launch(userDataDir);
    const pageErrors: string[] = [];
    try {
      const [alice, bob] = [await context.newPage(), await context.newPage()];
      for (const page of [alice, bob]) {
        page.on("pageerror", (error) => pageErrors.push(String(error)));
        await page.goto(`${server.url}/`);
        await waitForState(page, "#connection", "open");
      }

      await alice.fill("#name-input", "alice");
      await alice.click("#create");
      await alice.waitForFunction(
        () => /^[A-Z0-9]{6}$/.test(document.querySelector("#room-code")?.textContent ?? ""),
        undefined,
        { timeout: UI_TIMEOUT_MS },
      );
      const code = (await alice.textContent("#room-code"))!;
      await bob.fill("#name-input", "bob");
      await bob.fill("#code-input", code.toLowerCase());
      await bob.click("#join");

      // Both tabs show the full room, then the DataChannel opens on both sides.
      for (const page of [alice, bob]) {
        await waitForText(page, "#room-code", code);
        await waitForText(page, "#lobby-state", "lobby");
        await page.waitForFunction(() => document.querySelectorAll("#players li").length === 2);
        await waitForState(page, "#p2p-status", "open");
      }
      await waitForText(bob, "#authority", "alice");

      // Lobby controls: both ready up (finalized), authority moves from alice to bob.
      await alice.click("#ready");
      await waitForText(bob, "#players", "alice — ✔ ready");
      await bob.click("#ready");
      for (const page of [alice, bob]) await waitForText(page, "#lobby-state", "finalized");
      await alice.click("#authority-button"); // Release.
      await waitForText(bob, "#authority", "nobody");
      await bob.click("#authority-button"); // Claim.
      await waitForText(alice, "#authority", "bob");

      // Chat crosses the DataChannel both ways.
      const hello = "hello over the data channel 🐟";
      const reply = "and back again";
      await alice.fill("#chat-input", hello);
      await alice.press("#chat-input", "Enter");
      await waitForText(bob, "#chat-log", `alice: ${hello}`);
      await bob.fill("#chat-input", reply);
      await bob.click("#chat-send");
      await waitForText(alice, "#chat-log", `bob: ${reply}`);

      await Deno.mkdir(ARTIFACTS, { recursive: true });
      for (const [page, name] of [[alice, "browser-creator.png"], [bob, "browser.png"]] as const) {
        const path = new URL(name, ARTIFACTS).pathname;
        await page.screenshot({ path, fullPage: true });
        console.log(`screenshot: ${path}`);
      }
    } finally {
      await context.close();
      await Deno.remove(userDataDir, { recursive: true });
    }
    deepEqual(pageErrors, []);

    // The server saw signaling only: targeted offer/answer/ICE, and never the chat text.
    const gameData = frames.flatMap((frame) => {
      if (typeof frame !== "string") return [frame];
      const message = JSON.parse(frame);
      return message.type === "GameData" ? [message.data] : [];
    });
    for (const data of gameData) {
      ok(!(data instanceof Uint8Array), "no binary game data was sent");
      ok(typeof data.to_player === "string", `untargeted GameData: ${JSON.stringify(data)}`);
      ok(["offer", "answer", "ice"].includes(data.data?.signal), JSON.stringify(data));
    }
    const signals = gameData.map((data) => data.data.signal);
    equal(signals.filter((s) => s === "offer").length, 1);
    equal(signals.filter((s) => s === "answer").length, 1);
    ok(signals.includes("ice"), "ICE candidates were exchanged through the server");
    for (const frame of frames) {
      const text = typeof frame === "string" ? frame : new TextDecoder().decode(frame);
      ok(!text.includes("data channel") && !text.includes("and back again"), text);
    }
  },
});
