/**
 * The demo page in a real browser (headless Chromium): join-only with the room looked up first,
 * create, the share link, spectate, the player list's markers, the pond game over the WebRTC
 * DataChannel with relay fallback (`?p2p=off`), the authority's round clock, chat, resume after a
 * reload, the 390 px layout and the connection status across a server restart. Each state is
 * saved as a screenshot under `test-artifacts/` (git-ignored) that the test checks is not blank
 * while the page shows the expected text.
 *
 * Needs Debian's chromium at /usr/bin/chromium (driven by playwright-core). Without it the test
 * is skipped locally, but fails when SIGNAL_FISH_REQUIRE_BROWSER=1 (set by .ci/run).
 * playwright-core needs `--allow-all` under Deno (it reads /proc/sys and the home directory),
 * hence `deno task test` runs with `--allow-all`.
 *
 * @module
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import type { SignalFishServer } from "../src/server.ts";
import { browserTest, CHROMIUM, CHROMIUM_ARGS } from "./browser.ts";
import { serve } from "./helpers.ts";

// The page functions below run in the browser; this is the little of its world they use.
// deno-lint-ignore no-explicit-any
type Any = any;
declare const document: Any;
declare const globalThis: Any;

const ARTIFACTS = new URL("../test-artifacts/", import.meta.url);
/** Generous: two cores are shared by many processes, and ICE on a busy machine is slow. */
const UI_TIMEOUT_MS = 30_000;
const GAME = "fish-pond-demo";

async function launch(): Promise<Browser> {
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      ...CHROMIUM_ARGS,
      // Plain host candidates (no mDNS names) so two tabs on one machine find each other
      // without STUN; loopback candidates too, for machines whose only interface is lo.
      "--disable-features=WebRtcHideLocalIpsWithMdns",
      "--allow-loopback-in-peer-connection",
      // Background tabs must keep their timers and animation frames running.
      "--disable-background-timer-throttling",
      "--disable-renderer-backgrounding",
      "--disable-backgrounding-occluded-windows",
    ],
  });
}

/** Waits until the element `selector` has `data-state` equal to `state`. */
async function waitForState(page: Page, selector: string, state: string): Promise<void> {
  await page.waitForSelector(`${selector}[data-state="${state}"]`, { timeout: UI_TIMEOUT_MS });
}

async function waitForText(page: Page, selector: string, text: string): Promise<void> {
  await page.waitForFunction(
    ([selector, text]) => document.querySelector(selector)?.textContent?.includes(text) ?? false,
    [selector, text],
    { timeout: UI_TIMEOUT_MS },
  );
}

/** Waits until `predicate(demo.view())` holds in the page. */
async function waitForView(page: Page, predicate: string, arg?: unknown): Promise<void> {
  await page.waitForFunction(
    ([source, arg]) =>
      new Function("view", "arg", `return (${source})(view, arg)`)(
        globalThis.demo.view(),
        arg,
      ),
    [predicate, arg] as const,
    { timeout: UI_TIMEOUT_MS },
  );
}

/**
 * Saves a full-page screenshot as `test-artifacts/<name>.png` after checking the page shows
 * every text in `expected`, then checks the image is not blank: decoded in the browser, it must
 * have several colours and a fair share of pixels unlike the background.
 */
async function screenshot(
  page: Page,
  analyzer: Page,
  name: string,
  expected: readonly string[],
): Promise<void> {
  const body = await page.evaluate(() => document.body.innerText as string);
  for (const text of expected) ok(body.includes(text), `${name}: "${text}" not in the page`);
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  const path = new URL(`${name}.png`, ARTIFACTS).pathname;
  const png = await page.screenshot({ path, fullPage: true });
  let binary = "";
  for (const byte of png) binary += String.fromCharCode(byte);
  const stats = await analyzer.evaluate(async (base64: string) => {
    const image = new globalThis.Image();
    image.src = `data:image/png;base64,${base64}`;
    await image.decode();
    const canvas = new globalThis.OffscreenCanvas(image.width, image.height);
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    const { data } = context.getImageData(0, 0, image.width, image.height);
    const counts = new Map<number, number>();
    for (let i = 0; i < data.length; i += 4) {
      const key = (data[i] >> 4) << 8 | (data[i + 1] >> 4) << 4 | data[i + 2] >> 4;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const pixels = data.length / 4;
    const background = Math.max(...counts.values());
    return { width: image.width, colours: counts.size, other: 1 - background / pixels };
  }, btoa(binary));
  ok(stats.colours >= 8, `${name}: only ${stats.colours} colours`);
  ok(stats.other >= 0.03, `${name}: ${(stats.other * 100).toFixed(1)}% non-background`);
  console.log(`screenshot ${path}: ${stats.colours} colours, ${(stats.other * 100) | 0}% ink`);
}

interface Frames {
  texts: string[];
}

/** Records every text frame clients send to `server` (anything relayed passes through here). */
function recordFrames(server: SignalFishServer): Frames {
  const frames: Frames = { texts: [] };
  const edge = server.edge;
  const receive = edge.receive.bind(edge);
  edge.receive = (id, frame, now) => {
    frames.texts.push(typeof frame === "string" ? frame : new TextDecoder().decode(frame));
    receive(id, frame, now);
  };
  return frames;
}

async function openPage(context: BrowserContext, url: string, errors: string[]): Promise<Page> {
  const page = await context.newPage();
  page.on("pageerror", (error) => errors.push(`${url}: ${error}`));
  await page.goto(url);
  await waitForState(page, "#connection", "open");
  return page;
}

async function playerId(page: Page): Promise<string> {
  return await page.evaluate(() => globalThis.signalFish.selfId as string);
}

/**
 * Makes `swimmer` swim along `axis` until `observer` sees it more than `distance` px from where
 * it saw it before. It swims towards the farther edge: a fish placed near one edge (the
 * start position comes from a hash of the player id) could never get `distance` further that
 * way, since the world clamps positions.
 */
async function swimAway(
  swimmer: Page,
  observer: Page,
  id: string,
  axis: "x" | "y",
  distance: number,
): Promise<void> {
  const { own, size } = await swimmer.evaluate((axis) => {
    const view = globalThis.demo.view();
    return { own: view.self[axis] as number, size: view.world[axis === "x" ? "w" : "h"] };
  }, axis);
  // Measured from where the observer last saw the fish, so only movement it sees counts.
  const seen = await observer.evaluate(
    ([id, axis]) => globalThis.demo.view().players[id]?.[axis] as number | undefined,
    [id, axis] as const,
  );
  const start = seen ?? own;
  const forward = own < size / 2;
  const key = axis === "x"
    ? (forward ? "ArrowRight" : "ArrowLeft")
    : forward
    ? "ArrowDown"
    : "ArrowUp";
  await swimmer.bringToFront();
  await swimmer.keyboard.down(key);
  try {
    await waitForView(
      observer,
      "(view, [id, axis, start, distance]) => Math.abs((view.players[id]?.[axis] ?? start) - start) > distance",
      [id, axis, start, distance],
    );
  } finally {
    await swimmer.keyboard.up(key);
  }
}

browserTest(
  "Demo page: join, create, share, spectate, play over P2P and relay, resume, restart",
  async () => {
    // Rooms are saved at close and restored at start (server.state_file), as `deno task dev`.
    const stateDir = await Deno.makeTempDir({ prefix: "signal-fish-state-" });
    const stateFile = `${stateDir}/rooms.json`;
    let server = await serve((config) => config.server.state_file = stateFile);
    const port = server.port;
    const frames = recordFrames(server);
    const browser = await launch();
    const errors: string[] = [];
    try {
      // Each player in their own context: separate sessionStorage, like separate people.
      const contexts = await Promise.all([1, 2, 3, 4].map(() => browser.newContext()));
      const [aliceContext, bobContext, carolContext, ninaContext] = contexts as [
        BrowserContext,
        BrowserContext,
        BrowserContext,
        BrowserContext,
      ];
      const analyzer = await aliceContext.newPage();

      // 1. Start: connected, the entry form.
      const alice = await openPage(aliceContext, `${server.url}/`, errors);
      equal(await alice.getAttribute("link[rel=icon]", "href"), "/favicon.svg");
      const favicon = await fetch(`${server.url}/favicon.svg`);
      equal(favicon.headers.get("content-type"), "image/svg+xml");
      ok((await favicon.text()).startsWith("<svg"));
      await screenshot(alice, analyzer, "01-start", ["connected", "Create room", "Spectate"]);

      // 2. Join is join-only: an unknown code is looked up first and reported, nothing created.
      await alice.fill("#name-input", "alice");
      await alice.fill("#code-input", "zzzz99");
      await alice.click("#join");
      await waitForText(alice, "#entry-error", "Room not found: ZZZZ99");
      equal((await fetch(`${server.url}/v2/rooms/${GAME}/ZZZZ99`)).status, 404);
      await screenshot(alice, analyzer, "02-room-not-found", ["Room not found: ZZZZ99"]);

      // 3. Create: the code and the share link.
      await alice.click("#create");
      await alice.waitForFunction(
        () => /^[A-Z0-9]{6}$/.test(document.querySelector("#room-code")?.textContent ?? ""),
        undefined,
        { timeout: UI_TIMEOUT_MS },
      );
      const code = (await alice.textContent("#room-code"))!;
      const link = await alice.inputValue("#share-link");
      equal(link, `${server.url}/?room=${code}`);
      equal(new URL(alice.url()).search, `?room=${code}`);
      await waitForText(alice, "#players", "alice — not ready · ★ authority · (you)");
      await screenshot(alice, analyzer, "03-created", [code, "Invite", "★ authority"]);

      // 4. Bob follows the link: the code is filled in; he joins.
      const bob = await openPage(bobContext, link, errors);
      equal(await bob.inputValue("#code-input"), code);
      await screenshot(bob, analyzer, "04-invited", [`You were invited to room ${code}`]);
      await bob.fill("#name-input", "bob");
      await bob.click("#join");
      for (const page of [alice, bob]) {
        await waitForText(page, "#room-code", code);
        await page.waitForFunction(() => document.querySelectorAll("#players li").length === 2);
        await waitForState(page, "#p2p-status", "open");
      }
      const [aliceId, bobId] = [await playerId(alice), await playerId(bob)];

      // Chat between two peers crosses the DataChannel only.
      const hello = "hello over the data channel 🐟";
      await alice.fill("#chat-input", hello);
      await alice.press("#chat-input", "Enter");
      await waitForText(bob, "#chat-log", `alice: ${hello}`);
      ok(!frames.texts.some((text) => text.includes("over the data channel")), "chat is P2P");

      // Movement: bob swims right; alice sees it through the DataChannel.
      await swimAway(bob, alice, bobId, "x", 40);
      deepEqual(await alice.evaluate(() => globalThis.demo.view().transport), { [bobId]: "P2P" });
      await waitForText(alice, "#players", "bob — not ready · P2P");
      await screenshot(alice, analyzer, "05-two-players-p2p", [
        "bob",
        "1/1 peer(s) over the DataChannel",
      ]);

      // 5. Carol cannot (will not) do peer to peer: everything to and from her is relayed.
      const carol = await openPage(carolContext, `${link}&p2p=off`, errors);
      await carol.fill("#name-input", "carol");
      await carol.click("#join");
      await waitForText(alice, "#players", "carol — not ready · relay");
      const carolId = await playerId(carol);
      await swimAway(carol, alice, carolId, "y", 30);
      const relayed = frames.texts.filter((text) => text.includes(`"to_player":"${aliceId}"`))
        .map((text) => JSON.parse(text).data.data);
      ok(relayed.some((data) => data.g === "pos"), "carol's position went through the relay");
      await screenshot(carol, analyzer, "06-relay-fallback", [
        "0/2 peer(s) over the DataChannel, 2 through the relay",
        "peer to peer off",
      ]);

      // 6. Ready marker.
      await bob.click("#ready");
      await waitForText(alice, "#players", "bob — ✔ ready");

      // 7. The authority holder starts a round; everyone sees the clock.
      await alice.bringToFront();
      await alice.click("#start-round");
      for (const page of [alice, bob, carol]) await waitForState(page, "#clock", "running");

      // 8. Nina watches through the relay: the players and their positions, the clock.
      const nina = await openPage(ninaContext, link, errors);
      await nina.fill("#name-input", "nina");
      await nina.click("#spectate");
      await waitForText(nina, "#role", "(spectating)");
      await waitForState(nina, "#clock", "running");
      await waitForView(nina, "(view, ids) => ids.every((id) => view.players[id])", [
        aliceId,
        bobId,
        carolId,
      ]);
      await waitForText(alice, "#spectators", "1");
      await screenshot(nina, analyzer, "07-spectator", ["(spectating)", "alice", "carol"]);
      await screenshot(alice, analyzer, "08-round-running", ["Round:", "Scores:", "★ authority"]);

      // 9. Bob reloads: his seat comes back from sessionStorage (same id, nobody saw him leave).
      await bob.reload();
      await waitForState(bob, "#connection", "open");
      await waitForText(bob, "#room-notice", "your seat in room");
      equal(await playerId(bob), bobId);
      await waitForText(bob, "#players", "bob — ✔ ready");
      await waitForState(bob, "#p2p-status", "partial"); // Alice P2P again, carol relayed.
      await screenshot(bob, analyzer, "09-resumed-after-reload", [
        "Resumed after the reload",
        code,
      ]);

      // 10. A server restart that keeps its rooms: reconnecting… while it is away, then
      //     reconnected with seat, authority and readiness intact, and the game goes on.
      await server.close();
      await waitForText(alice, "#connection", "reconnecting…");
      await screenshot(alice, analyzer, "10-reconnecting", ["reconnecting…"]);
      server = await serve((config) => {
        config.port = port;
        config.server.state_file = stateFile;
      });
      for (const page of [alice, bob, carol]) {
        await waitForState(page, "#connection", "reconnected");
      }
      await waitForState(nina, "#connection", "reconnected");
      equal(await playerId(bob), bobId);
      await waitForText(alice, "#players", "alice — not ready · ★ authority · (you)");
      await waitForText(alice, "#players", "bob — ✔ ready");
      await waitForText(nina, "#role", "(spectating)");
      await swimAway(carol, alice, carolId, "x", 30);
      await screenshot(alice, analyzer, "11-reconnected-after-restart", [
        "reconnected",
        "Reconnected: your seat was kept.",
        "★ authority",
      ]);

      // 11. Presence (E10): when bob's tab goes away, alice's list marks him dropped.
      await bob.close();
      await waitForText(alice, "#players", "bob — ✔ ready · ⚠ dropped (seat held");
      await screenshot(alice, analyzer, "12-dropped", ["⚠ dropped (seat held"]);

      // 12. Authority handover (E11): alice leaves, the longest-seated connected player (carol;
      //     bob's seat is held) takes authority and the round clock.
      await alice.click("#leave");
      await waitForText(carol, "#players", "carol — not ready · ★ authority · (you)");
      await waitForText(nina, "#authority", "carol");
      await screenshot(carol, analyzer, "13-authority-handed-over", ["★ authority", "carol"]);

      // 11. 390 px wide (a phone): nothing overflows sideways.
      const phone = await browser.newContext({ viewport: { width: 390, height: 844 } });
      const small = await openPage(phone, link, errors);
      const width = await small.evaluate(() => document.documentElement.scrollWidth as number);
      ok(width <= 390, `page is ${width} px wide at 390 px`);
      await screenshot(small, analyzer, "14-mobile-390", ["Create room", `room ${code}`]);
      await phone.close();

      // 14. A restart that does not keep its rooms: the seat is gone, and the page says so.
      await server.close();
      await waitForText(carol, "#connection", "reconnecting…");
      server = await serve((config) => config.port = port);
      await waitForState(carol, "#connection", "lost");
      await waitForText(carol, "#entry-error", `Your place in room ${code} is gone`);
      await screenshot(carol, analyzer, "15-seat-lost-after-restart", [
        "seat lost",
        "join again, or create a new room",
      ]);
      deepEqual(errors, []);
    } finally {
      await browser.close();
      await server.close();
      await Deno.remove(stateDir, { recursive: true });
    }
  },
);
