/**
 * The operator console (docs/spec/EXTENSIONS.md E12) in a real browser: headless Chromium logs in with the
 * token, sees a room appear while scripted players join over real WebSockets, opens it, removes
 * a player (who gets `RoomLeft`), closes the room (the last player gets `RoomLeft`), and keeps
 * the token across a reload. Screenshots at 1440 px and 390 px go to `artifacts/admin/`; the
 * test decodes each one (in the browser, through a canvas) and requires it to be non-blank.
 *
 * Needs Debian's chromium at /usr/bin/chromium (driven by playwright-core). Without it the test
 * is skipped locally, but fails when SIGNAL_FISH_REQUIRE_BROWSER=1 (set by .ci/run).
 *
 * @module
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { type BrowserContext, chromium, type Page, type Route } from "playwright-core";
import { browserTest, CHROMIUM, CHROMIUM_ARGS } from "./browser.ts";
import { connect, joinRoom, openApps, serve, type TestClient, testConfig } from "./helpers.ts";
import { serveCluster } from "./cluster_serve.ts";
import { RawWebSocket } from "./raw_websocket.ts";
import { MAX_GAMES_PER_INSTANCE } from "../src/coordination/game_counts.ts";
import type { SignalFishServer } from "../src/server.ts";

// The page functions below run in the browser; this is the little of the DOM they use.
declare const document: {
  querySelector(selector: string): { textContent: string | null } | null;
  querySelectorAll(
    selector: string,
  ): { length: number; [index: number]: { getAttribute(name: string): string | null } };
  documentElement: { scrollWidth: number };
  activeElement: { getAttribute(name: string): string | null } | null;
  createElement(tag: "canvas"): {
    width: number;
    height: number;
    getContext(kind: "2d"): {
      drawImage(image: unknown, x: number, y: number): void;
      getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray };
    };
  };
};
declare const sessionStorage: { getItem(key: string): string | null };
/** The console's charts and its live-sample entry (globals of admin.js, a classic script). */
declare const charts: Record<string, { data: (number | null | undefined)[][]; lastT: number }>;
declare function pushSample(sample: Record<string, number | null>): void;
declare function showSample(sample: Record<string, number | boolean | null>): void;
declare function clusterLine(totals: Record<string, number | string[]>): void;
declare const Image: new () => {
  src: string;
  width: number;
  height: number;
  decode(): Promise<void>;
};

const ARTIFACTS = new URL("../artifacts/admin/", import.meta.url);
const TOKEN = "browser-test-operator-token-0123456789abcdef";
/** Generous: two cores are shared by many processes. */
const UI_TIMEOUT_MS = 30_000;

async function launch(userDataDir: string): Promise<BrowserContext> {
  return await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: [
      ...CHROMIUM_ARGS,
    ],
  });
}

/**
 * Stops the page's clock (installed with `page.clock.install()`, so running in real time) at
 * about its current time, moving it on by at most 100 ms. `pauseAt` refuses a time the page's
 * clock has already passed, and on a loaded machine the round trip from reading the page's time
 * to the pause taking effect can outlast any fixed margin ("Cannot fast-forward to the past").
 * Playwright pauses the clock before it refuses, so the next attempt reads the stopped time.
 * Throws any other error, or that one again after 5 attempts.
 */
async function pauseClock(page: Page): Promise<void> {
  for (let attempt = 1;; attempt++) {
    const pageNow = await page.evaluate(() => Date.now());
    try {
      await page.clock.pauseAt(pageNow + 100);
      return;
    } catch (error) {
      if (attempt === 5 || !String(error).includes("Cannot fast-forward to the past")) throw error;
    }
  }
}

async function waitForText(
  page: Page,
  selector: string,
  text: string,
  timeout = UI_TIMEOUT_MS,
): Promise<void> {
  await page.waitForFunction(
    ([selector, text]) => document.querySelector(selector!)?.textContent?.includes(text!) ?? false,
    [selector, text],
    { timeout },
  );
}

/** The pill while the event stream is open: "live", or "degraded" when other parts fail. */
const STREAM_OPEN = '#connection-state:is([data-state="live"], [data-state="degraded"])';

/** Opens the console at `url`, logs in with the token and waits until its stream is open. */
async function logIn(page: Page, url: string): Promise<void> {
  await page.goto(`${url}/admin`);
  await page.waitForSelector("#login:not([hidden])", { timeout: UI_TIMEOUT_MS });
  await page.fill("#token-input", TOKEN);
  await page.click("#login-button");
  await page.waitForSelector(STREAM_OPEN, { timeout: UI_TIMEOUT_MS });
}

/** Clicks "Confirm" in the console's confirmation dialog. */
async function confirm(page: Page): Promise<void> {
  await page.waitForSelector("#confirm-dialog[open]", { timeout: UI_TIMEOUT_MS });
  await page.click("#confirm-yes");
}

/** PNG width and height from the IHDR chunk. */
function pngSize(png: Uint8Array): { width: number; height: number } {
  deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG signature");
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/**
 * Decodes `png` in a blank page through a canvas and returns the standard deviation of its
 * luminance and how many distinct colours it has (sampled on a grid): a blank or single-colour
 * screenshot has a deviation near 0 and a handful of colours.
 */
async function pixelStats(
  page: Page,
  png: Uint8Array,
): Promise<{ deviation: number; colours: number }> {
  const base64 = png.toBase64();
  return await page.evaluate(async (data) => {
    const image = new Image();
    image.src = `data:image/png;base64,${data}`;
    await image.decode();
    const canvas = document.createElement("canvas");
    canvas.width = image.width;
    canvas.height = image.height;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    const pixels = context.getImageData(0, 0, image.width, image.height).data;
    let sum = 0;
    let squares = 0;
    let n = 0;
    const colours = new Set<number>();
    for (let i = 0; i < pixels.length; i += 4 * 7) {
      const [r, g, b] = [pixels[i]!, pixels[i + 1]!, pixels[i + 2]!];
      const y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
      sum += y;
      squares += y * y;
      n++;
      colours.add((r << 16) | (g << 8) | b);
    }
    const mean = sum / n;
    return { deviation: Math.sqrt(Math.max(0, squares / n - mean * mean)), colours: colours.size };
  }, base64);
}

async function screenshot(
  page: Page,
  decoder: Page,
  name: string,
  width: number,
): Promise<string> {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  const path = new URL(name, ARTIFACTS).pathname;
  await page.screenshot({ path, fullPage: true });
  const png = await Deno.readFile(path);
  equal(pngSize(png).width, width, `${name} is ${width} px wide`);
  const stats = await pixelStats(decoder, png);
  ok(stats.deviation > 10 && stats.colours > 50, `${name} is not blank: ${JSON.stringify(stats)}`);
  console.log(`screenshot: ${path} ${JSON.stringify(stats)}`);
  return path;
}

/** What a test of the console sees of its page. */
interface ConsoleSession {
  page: Page;
  /** `METHOD /path?query` of every request the page made, in order. */
  requests: string[];
}

/**
 * Opens the console of `url` in a fresh browser (logged in unless `login: false`), runs `body`,
 * closes the browser and requires that the page raised no error and logged none (failed loads
 * aside: the tests provoke them).
 */
async function withConsole(
  url: string,
  body: (session: ConsoleSession) => Promise<void>,
  options: { login?: boolean } = {},
): Promise<void> {
  const userDataDir = await Deno.makeTempDir({ prefix: "signal-fish-chromium-" });
  const context = await launch(userDataDir);
  const problems: string[] = [];
  try {
    const page = await context.newPage();
    page.on("pageerror", (error) => problems.push(String(error)));
    page.on("console", (message) => {
      const text = message.text();
      if (message.type() === "error" && !text.startsWith("Failed to load resource")) {
        problems.push(text);
      }
    });
    const requests: string[] = [];
    page.on("request", (request) => {
      const { pathname, search } = new URL(request.url());
      requests.push(`${request.method()} ${pathname}${search}`);
    });
    if (options.login ?? true) await logIn(page, url);
    await body({ page, requests });
  } finally {
    await context.close();
    await Deno.remove(userDataDir, { recursive: true });
  }
  deepEqual(problems, []);
}

/**
 * A server with the operator console on and one room, which Alice created and is seated in:
 * both, and the room's code; disposing of it closes Alice, then the server.
 */
async function consoleWithRoom() {
  const server = await serve((config) => {
    config.security.admin_token = TOKEN;
  });
  try {
    const alice = await connect(server);
    alice.send(joinRoom(null, "alice"));
    const code: string = (await alice.next("RoomJoined")).data.room_code;
    return {
      server,
      alice,
      code,
      async [Symbol.asyncDispose]() {
        await alice.close();
        await server[Symbol.asyncDispose]();
      },
    };
  } catch (error) {
    await server[Symbol.asyncDispose]();
    throw error;
  }
}

/** Waits (polling every 20 ms, at most `ms`) until `done()` holds. */
async function until(done: () => boolean, what: string, ms = UI_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

browserTest(
  "Operator console: log in, watch a room fill, remove a player, close the room",
  async () => {
    await using server = await serve((config) => {
      config.security.admin_token = TOKEN;
      config.server.max_spectators_per_room = 2;
    });
    const userDataDir = await Deno.makeTempDir({ prefix: "signal-fish-chromium-" });
    const context = await launch(userDataDir);
    const problems: string[] = [];
    const players: TestClient[] = [];
    try {
      const page = await context.newPage();
      page.on("pageerror", (error) => problems.push(String(error)));
      // Network errors are checked by URL below; any other console error is a problem.
      page.on("console", (message) => {
        const text = message.text();
        if (message.type() === "error" && !text.startsWith("Failed to load resource")) {
          problems.push(text);
        }
      });
      const failures: string[] = [];
      page.on("response", (response) => {
        if (response.status() >= 400) {
          failures.push(`${response.status()} ${new URL(response.url()).pathname}`);
        }
      });
      const decoder = await context.newPage();

      // Log in: a wrong token is refused, the right one opens the console.
      await page.goto(`${server.url}/admin`);
      await page.waitForSelector("#login:not([hidden])", { timeout: UI_TIMEOUT_MS });
      await page.fill("#token-input", "w".repeat(40));
      await page.click("#login-button");
      await waitForText(page, "#login-error", "refused");
      await page.fill("#token-input", TOKEN);
      await page.click("#login-button");
      await page.waitForSelector('#connection-state[data-state="live"]', {
        timeout: UI_TIMEOUT_MS,
      });
      equal(await page.evaluate(() => sessionStorage.getItem("signal-fish-admin-token")), TOKEN);

      // Scripted players join over real WebSockets; the room appears in the table.
      const [alice, bob, carol] = [
        await connect(server),
        await connect(server),
        await connect(server),
      ];
      players.push(alice, bob, carol);
      alice.send(joinRoom(null, "alice", { max_players: 3 }));
      const code: string = (await alice.next("RoomJoined")).data.room_code;
      const row = `#rooms-table tr[data-room="orbit/${code}"]`;
      await page.waitForSelector(row, { timeout: UI_TIMEOUT_MS });
      bob.send(joinRoom(code, "bob"));
      const bobId: string = (await bob.next("RoomJoined")).data.player_id;
      await alice.next("PlayerJoined");
      carol.send({
        type: "JoinAsSpectator",
        data: { game_name: "orbit", room_code: code, spectator_name: "carol" },
      });
      await carol.next("SpectatorJoined");
      for (let i = 0; i < 20; i++) alice.send({ type: "GameData", data: { data: { tick: i } } });
      await waitForText(page, row, "2/3");
      // Search and filters narrow the table.
      await page.fill("#room-search", "no-such-room");
      await page.waitForSelector(row, { state: "detached", timeout: UI_TIMEOUT_MS });
      await page.fill("#room-search", code.slice(1, 4).toLowerCase()); // part of the code
      await page.waitForSelector(row, { timeout: UI_TIMEOUT_MS });
      await page.selectOption("#state-filter", "finalized");
      await page.waitForSelector(row, { state: "detached", timeout: UI_TIMEOUT_MS });
      await page.selectOption("#state-filter", "waiting");
      await page.selectOption("#game-filter", "orbit");
      await page.fill("#room-search", "");
      await page.click(row);
      await page.waitForSelector(`#room-members li[data-player="${bobId}"]`, {
        timeout: UI_TIMEOUT_MS,
      });
      await waitForText(page, "#room-facts", "alice"); // authority
      await waitForText(page, "#room-spectators", "carol");
      await waitForText(page, '[data-tile="players"] .value', "2");
      await waitForText(page, '[data-tile="rooms"] .value', "1");
      const wide = await screenshot(page, decoder, "admin-1440.png", 1440);

      // Remove bob, behind a confirmation: he gets RoomLeft, alice PlayerLeft.
      await page.click(`button[data-action="remove"][data-player="${bobId}"]`);
      await confirm(page);
      await bob.waitFor("RoomLeft");
      equal((await alice.waitFor("PlayerLeft")).data.player_id, bobId);
      await page.waitForFunction(
        () => document.querySelectorAll("#room-members li").length === 1,
        undefined,
        { timeout: UI_TIMEOUT_MS },
      );
      await waitForText(page, row, "1/3");

      // The phone layout: nothing wider than the screen.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.waitForFunction(() => document.documentElement.scrollWidth <= 390, undefined, {
        timeout: UI_TIMEOUT_MS,
      });
      const narrow = await screenshot(page, decoder, "admin-390.png", 390);

      // Close the room: alice gets RoomLeft, carol SpectatorLeft{room_closed}; the row goes.
      await page.click("#close-room");
      await confirm(page);
      await alice.waitFor("RoomLeft");
      equal((await carol.waitFor("SpectatorLeft")).data.reason, "room_closed");
      await page.waitForFunction(
        (selector) => document.querySelector(selector) === null,
        row,
        { timeout: UI_TIMEOUT_MS },
      );
      await waitForText(page, "#event-log", "close room");

      // Maintenance from the header: new rooms are refused until it is turned off.
      await page.click("#maintenance-button");
      await confirm(page);
      await page.waitForSelector("#maintenance-banner:not([hidden])", { timeout: UI_TIMEOUT_MS });
      alice.send(joinRoom(null, "alice"));
      deepEqual((await alice.next("RoomJoinFailed")).data, {
        reason: "Server is in maintenance",
        error_code: "SERVICE_UNAVAILABLE",
      });
      await page.click("#maintenance-button");
      await confirm(page);
      await page.waitForSelector("#maintenance-banner", {
        state: "hidden",
        timeout: UI_TIMEOUT_MS,
      });
      equal(server.engine.maintenance, false);

      // The token is asked once per tab: a reload goes straight back to the console.
      await page.reload();
      await page.waitForSelector('#connection-state[data-state="live"]', {
        timeout: UI_TIMEOUT_MS,
      });
      ok(await page.isHidden("#login"));
      // The only failed requests: the wrong token, and perhaps a look at the room just closed.
      equal(failures[0], "401 /admin/api/history");
      for (const failure of failures.slice(1)) {
        equal(failure, `404 /admin/api/rooms/orbit/${code}`);
      }
      console.log(`checked: ${wide}, ${narrow}`);
    } finally {
      for (const player of players) await player.close();
      await context.close();
      await Deno.remove(userDataDir, { recursive: true });
    }
    deepEqual(problems, []);
  },
);

browserTest(
  "Operator console with app auth: rooms of two apps with one code are told apart and acted on apart",
  async () => {
    await using server = await serve((config) => {
      config.security.admin_token = TOKEN;
      config.security.require_websocket_auth = true;
      config.security.authorized_apps = openApps("app-a", "app-b");
    });
    const userDataDir = await Deno.makeTempDir({ prefix: "signal-fish-chromium-" });
    const context = await launch(userDataDir);
    const players: TestClient[] = [];
    const problems: string[] = [];
    try {
      const page = await context.newPage();
      page.on("pageerror", (error) => problems.push(String(error)));
      await logIn(page, server.url);
      // Two apps, each with a room "SHARE1" of the game "orbit" (docs/spec/SERVER.md §3.3).
      for (const app of ["app-a", "app-b"]) {
        const player = await connect(server);
        players.push(player);
        player.send({ type: "Authenticate", data: { app_id: app } });
        await player.next("Authenticated");
        await player.next("ProtocolInfo");
        player.send(joinRoom("SHARE1", `host-${app}`, { max_players: 2 }));
        equal((await player.next("RoomJoined")).data.room_code, "SHARE1");
      }
      const [playerA, playerB] = players as [TestClient, TestClient];
      await waitForText(page, "#rooms-table", "orbit (app-b)");
      await waitForText(page, "#rooms-table", "orbit (app-a)");
      const cells = await page.locator("#rooms-table td").allTextContents();
      ok(cells.every((text) => !text.includes("\u0001")), `no raw namespace: ${cells}`);
      // The game filter offers each app's game by its label (read with the overview, which may
      // answer after the table shows both rooms).
      await waitForText(page, "#game-filter", "orbit (app-a)");
      await waitForText(page, "#game-filter", "orbit (app-b)");
      const options = await page.locator("#game-filter option").allTextContents();
      deepEqual(options.slice(1).sort(), ["orbit (app-a)", "orbit (app-b)"]);

      // Open app B's room and close it: only app B's player is sent out.
      await page.click('#rooms-table tr:has-text("orbit (app-b)")');
      await waitForText(page, "#room-title", "orbit (app-b)");
      await waitForText(page, "#room-members", "host-app-b");
      await page.click("#close-room");
      await confirm(page);
      await playerB.waitFor("RoomLeft");
      await page.waitForSelector('#rooms-table tr:has-text("orbit (app-b)")', {
        state: "detached",
        timeout: UI_TIMEOUT_MS,
      });
      await waitForText(page, "#rooms-table", "orbit (app-a)");
      playerA.send({ type: "Ping" });
      await playerA.next("Pong"); // app A's room was not touched: no RoomLeft came first
    } finally {
      for (const player of players) await player.close();
      await context.close();
      await Deno.remove(userDataDir, { recursive: true });
    }
    deepEqual(problems, []);
  },
);

browserTest(
  "Operator console in cluster mode: the cluster's sums beside the answering instance's figures, every instance's events in the log",
  async () => {
    // Three instances on a private redis-server behind the round-robin proxy, as test:proxied
    // runs them (tests/cluster_serve.ts).
    await using server = await serveCluster(
      testConfig((config) => {
        config.security.admin_token = TOKEN;
      }),
      {},
      3,
    );
    const userDataDir = await Deno.makeTempDir({ prefix: "signal-fish-chromium-" });
    const context = await launch(userDataDir);
    const problems: string[] = [];
    const players: TestClient[] = [];
    try {
      const page = await context.newPage();
      page.on("pageerror", (error) => problems.push(String(error)));
      await logIn(page, server.url);
      await page.waitForSelector("#cluster-line:not([hidden])", { timeout: UI_TIMEOUT_MS });
      const line = await page.locator("#cluster-line").textContent() ?? "";
      ok(/^Cluster: [1-3] instances, \d+ connections, \d+ rooms, /.test(line), line);
      ok(
        /The figures above are instance \S+'s; the event log is every instance's\.$/.test(line),
        line,
      );

      // Rooms made through the proxy land on several instances; the log shows them all, each
      // with its instance. (Until the watch notice of the page's stream has reached an instance,
      // its rooms are not reported: more rooms then, at most 12.)
      const instances = async () =>
        new Set(
          (await page.locator("#event-log").textContent() ?? "").match(
            /room created · orbit\/\w+ · on (\S+)/g,
          )?.map((entry) => entry.split(" on ")[1]) ?? [],
        );
      for (let i = 0; i < 12 && (await instances()).size < 2; i++) {
        const player = await connect(server);
        players.push(player);
        player.send(joinRoom(null, `host${i}`));
        const code = (await player.next("RoomJoined")).data.room_code;
        await page.waitForFunction(
          (code) => document.querySelector("#event-log")?.textContent?.includes(code) ?? false,
          code,
          { timeout: 1_000 },
        ).catch(() => {});
      }
      ok((await instances()).size >= 2, await page.locator("#event-log").textContent() ?? "");
      // The cluster line turns live: every instance's latest sample, summed each second.
      await page.waitForFunction(
        () =>
          /^Cluster: 3 instances, \d+ connections, .* deliveries\/s, .* rejections\/s, [\d.,]+ dropped connections\/s\. The figures above/
            .test(document.querySelector("#cluster-line")?.textContent ?? ""),
        undefined,
        { timeout: UI_TIMEOUT_MS },
      );
    } finally {
      for (const player of players) await player.close();
      await context.close();
      await Deno.remove(userDataDir, { recursive: true });
    }
    deepEqual(problems, []);
  },
);

browserTest(
  "Operator console in cluster mode: an instance with more games than it reports gives the filter an 'other games' line",
  async () => {
    // Each instance writes its MAX_GAMES_PER_INSTANCE busiest games and sums the rest as `other`
    // (docs/spec/SERVER.md §8.3 `instance-games:`); a refresh every second (T = 3 s).
    await using server = await serveCluster(
      testConfig((config) => {
        config.security.admin_token = TOKEN;
        config.server.max_rooms_per_ip = 1000;
        config.cluster.directory_ttl_secs = 3;
      }),
      {},
      3,
    );
    // One connection's rooms are all homed on its instance: one game more than it reports.
    const host = await connect(server);
    const userDataDir = await Deno.makeTempDir({ prefix: "signal-fish-chromium-" });
    const context = await launch(userDataDir);
    const problems: string[] = [];
    try {
      const games = MAX_GAMES_PER_INSTANCE + 1;
      for (let i = 0; i < games; i++) {
        await emptyRooms(host, `game${String(i).padStart(3, "0")}`, 1);
      }
      const page = await context.newPage();
      page.on("pageerror", (error) => problems.push(String(error)));
      // The overview is read at login and every 10 s; the counts leave with the next refresh.
      // Until the overview has them, read it again with a reload: the tab keeps the token, so
      // the console opens without the login form (logging in again would wait for that form).
      let other: string[] = [];
      const deadline = Date.now() + UI_TIMEOUT_MS;
      await logIn(page, server.url);
      for (;;) {
        await page.waitForFunction(
          () => document.querySelectorAll("#game-filter option").length > 1,
          undefined,
          { timeout: UI_TIMEOUT_MS },
        );
        other = (await page.locator("#game-filter option").allTextContents())
          .filter((text) => text.startsWith("(other games"));
        if (other.length > 0 || Date.now() > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 500));
        await page.reload();
        await page.waitForSelector(STREAM_OPEN, { timeout: UI_TIMEOUT_MS });
      }
      // The game the instance left out is its least busy: one room, summed into `other`.
      deepEqual(other, ["(other games: 1 room; search to find them)"]);
      const named = (await page.locator("#game-filter option:not([disabled])").allTextContents())
        .filter((text) => text.startsWith("game"));
      equal(named.length, MAX_GAMES_PER_INSTANCE);
      ok(await page.locator("#game-filter option[disabled]").count() === 1);
    } finally {
      await host.close();
      await context.close();
      await Deno.remove(userDataDir, { recursive: true });
    }
    deepEqual(problems, []);
  },
);

browserTest(
  "Operator console: an action answered 504 OUTCOME_UNKNOWN is reported and the state is read again",
  async () => {
    await using server = await serve((config) => {
      config.security.admin_token = TOKEN;
    });
    await withConsole(server.url, async ({ page, requests }) => {
      // As a cluster answers when Redis takes the command but does not answer in time.
      await page.route(
        "**/admin/api/maintenance",
        (route) =>
          route.request().method() === "PUT"
            ? route.fulfill({
              status: 504,
              contentType: "application/json",
              body: JSON.stringify({
                message: "Redis did not answer in time: the outcome is unknown",
                error_code: "OUTCOME_UNKNOWN",
                outcome: "unknown",
              }),
            })
            : route.continue(),
      );
      await page.click("#maintenance-button");
      await confirm(page);
      await waitForText(page, "#event-log", "OUTCOME_UNKNOWN");
      await until(
        () => requests.includes("GET /admin/api/maintenance"),
        "maintenance is read again",
        5_000,
      );
      await waitForText(page, "#event-log", "reading the state again");
    });
  },
);

/**
 * `count` rooms of `game` made through one connection: each is created, then left (an empty room
 * stays until `server.empty_room_timeout`). Returns their codes, oldest first.
 */
async function emptyRooms(client: TestClient, game: string, count: number): Promise<string[]> {
  const codes: string[] = [];
  for (let i = 0; i < count; i++) {
    client.send(joinRoom(null, "host", { game_name: game }));
    codes.push((await client.next("RoomJoined")).data.room_code);
    client.send({ type: "LeaveRoom" });
    await client.next("RoomLeft");
  }
  return codes;
}

browserTest(
  "Operator console with more rooms than a page: search and filters reach every room, the count says how many, Next shows the rest",
  async () => {
    await using server = await serve((config) => {
      config.security.admin_token = TOKEN;
      config.server.max_rooms_per_ip = 1000;
    });
    await using host = await connect(server);
    await emptyRooms(host, "orbit", 104);
    // The newest rooms, beyond the first page of 100 (oldest first).
    const comet = await emptyRooms(host, "comet", 3);
    await withConsole(server.url, async ({ page }) => {
      const rows = () => page.locator("#rooms-table tbody tr").count();
      await waitForText(page, "#room-count", "(first 100 of 107)");
      equal(await rows(), 100);
      // Every game is offered, not only those of the rooms shown.
      deepEqual(await page.locator("#game-filter option").allTextContents(), [
        "All games",
        "comet",
        "orbit",
      ]);
      await page.click("#page-next");
      await waitForText(page, "#room-count", "(rooms 101–107 of 107)");
      equal(await rows(), 7);
      ok(await page.isDisabled("#page-next"));
      // A search is the server's, over every room.
      await page.fill("#room-search", comet[1]!.toLowerCase());
      await page.waitForSelector(`#rooms-table tr[data-room="comet/${comet[1]}"]`, {
        timeout: UI_TIMEOUT_MS,
      });
      await waitForText(page, "#room-count", "(1)");
      await page.fill("#room-search", "");
      await page.selectOption("#game-filter", "comet");
      await waitForText(page, "#room-count", "(3)");
      equal(await rows(), 3);
      await page.selectOption("#state-filter", "lobby");
      await waitForText(page, "#rooms-empty", "No rooms match.");
      ok(await page.isVisible("#rooms-empty"));
    });
  },
);

browserTest(
  "Operator console: room list reads run one at a time, the last one wins",
  async () => {
    await using server = await serve((config) => {
      config.security.admin_token = TOKEN;
      config.server.max_rooms_per_ip = 1000;
    });
    await using host = await connect(server);
    await withConsole(server.url, async ({ page }) => {
      let inFlight = 0;
      let most = 0;
      const isList = (url: string) => new URL(url).pathname === "/admin/api/rooms";
      page.on("request", (request) => {
        if (isList(request.url())) most = Math.max(most, ++inFlight);
      });
      const done = (request: { url(): string }) => {
        if (isList(request.url())) inFlight--;
      };
      page.on("requestfinished", done);
      page.on("requestfailed", done);
      // Each listing answers 500 ms late (a loaded cluster) while rooms come every 100 ms.
      await page.route("**/admin/api/rooms?*", async (route) => {
        await new Promise((resolve) => setTimeout(resolve, 500));
        await route.continue();
      });
      const codes = await (async () => {
        const made: string[] = [];
        for (let i = 0; i < 12; i++) {
          made.push(...await emptyRooms(host, "orbit", 1));
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        return made;
      })();
      await waitForText(page, "#room-count", "(12)");
      await page.waitForSelector(`#rooms-table tr[data-room="orbit/${codes.at(-1)}"]`, {
        timeout: UI_TIMEOUT_MS,
      });
      equal(most, 1, "at most one listing in flight");
    });
  },
);

/** Answers the matched request as the API does while Redis does not answer (a cluster outage). */
function redisDown(route: Route): Promise<void> {
  return route.fulfill({
    status: 503,
    contentType: "application/json",
    body: JSON.stringify({
      message: "Service temporarily unavailable",
      error_code: "SERVICE_UNAVAILABLE",
    }),
  });
}

browserTest(
  "Operator console while the room directory does not answer: log in and reload work, the banner says what is missing, and the console recovers by itself",
  async () => {
    await using room = await consoleWithRoom();
    const { server, code } = room; // Alice stays seated until `room` is disposed of
    await withConsole(server.url, async ({ page }) => {
      // What needs the directory fails, as behind a cluster whose Redis is down.
      await page.route("**/admin/api/overview", redisDown);
      await page.route("**/admin/api/rooms?*", redisDown);
      await logIn(page, server.url);
      await waitForText(page, "#status-list", "Rooms: Service temporarily unavailable");
      await waitForText(page, "#status-list", "Overview: Service temporarily unavailable");
      // Never read: the table does not claim there are no rooms.
      await waitForText(page, "#rooms-empty", "The rooms cannot be read now.");
      equal(await page.textContent("#room-count"), "");
      ok(await page.isHidden("#room-pager"));
      await page.reload();
      await page.waitForSelector(STREAM_OPEN, { timeout: UI_TIMEOUT_MS });
      ok(await page.isHidden("#login"));
      await waitForText(page, "#status-list", "Rooms: Service temporarily unavailable");
      // Redis answers again: every part is read again by itself, no reload needed.
      await page.unroute("**/admin/api/overview");
      await page.unroute("**/admin/api/rooms?*");
      await page.waitForSelector(`#rooms-table tr[data-room="orbit/${code}"]`, {
        timeout: UI_TIMEOUT_MS,
      });
      await page.waitForSelector("#status-banner", { state: "hidden", timeout: UI_TIMEOUT_MS });
      await waitForText(page, '[data-tile="rooms"] .value', "1");
    }, { login: false });
  },
);

browserTest(
  "Operator console: when the event stream comes back, the rooms, overview and history are read again",
  async () => {
    await using room = await consoleWithRoom();
    const { server, alice, code } = room;
    await withConsole(server.url, async ({ page, requests }) => {
      const row = `#rooms-table tr[data-room="orbit/${code}"]`;
      await page.waitForSelector(row, { timeout: UI_TIMEOUT_MS });
      // The stream drops and stays down (as across a server restart) while the room goes.
      await page.route("**/admin/api/events", (route) => route.abort());
      server.admin!.close();
      await page.waitForSelector('#connection-state[data-state="retrying"]', {
        timeout: UI_TIMEOUT_MS,
      });
      alice.send({ type: "LeaveRoom" });
      await alice.next("RoomLeft");
      const closed = await fetch(`${server.url}/admin/api/rooms/orbit/${code}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      equal(closed.status, 200, await closed.text());
      const before = requests.length;
      await page.unroute("**/admin/api/events");
      await page.waitForSelector('#connection-state[data-state="live"]', {
        timeout: UI_TIMEOUT_MS,
      });
      await page.waitForSelector(row, { state: "detached", timeout: UI_TIMEOUT_MS });
      const after = requests.slice(before);
      for (const path of ["/admin/api/history", "/admin/api/overview"]) {
        ok(after.includes(`GET ${path}`), `${path} read again: ${after}`);
      }
    });
  },
);

browserTest(
  "Operator console: logging out and in again leaves no listeners behind (charts freed)",
  async () => {
    await using server = await serve((config) => {
      config.security.admin_token = TOKEN;
    });
    await withConsole(server.url, async ({ page }) => {
      const cdp = await page.context().newCDPSession(page);
      const listeners = async () => {
        let count = 0;
        for (const expression of ["window", "document"]) {
          const { result } = await cdp.send("Runtime.evaluate", { expression });
          const { listeners } = await cdp.send("DOMDebugger.getEventListeners", {
            objectId: result.objectId!,
            depth: -1,
          });
          count += listeners.length;
        }
        return count;
      };
      await page.waitForSelector("#chart-load .uplot", { timeout: UI_TIMEOUT_MS });
      const first = await listeners();
      for (let i = 0; i < 3; i++) {
        await page.click("#logout-button");
        await page.waitForSelector("#login:not([hidden])", { timeout: UI_TIMEOUT_MS });
        await page.fill("#token-input", TOKEN);
        await page.click("#login-button");
        await page.waitForSelector('#connection-state[data-state="live"]', {
          timeout: UI_TIMEOUT_MS,
        });
        await page.waitForSelector("#chart-load .uplot", { timeout: UI_TIMEOUT_MS });
      }
      equal(await listeners(), first, "as many listeners as after the first log-in");
    });
  },
);

browserTest(
  "Operator console: ages and idle times count up between reads, and the rooms are read again every 5 s without room events",
  async () => {
    await using room = await consoleWithRoom();
    const { server, code } = room; // Alice stays seated until `room` is disposed of
    await withConsole(server.url, async ({ page, requests }) => {
      // The page's timers and clock run on Playwright's clock, moved on by the test.
      await page.clock.install();
      await logIn(page, server.url);
      const row = `#rooms-table tr[data-room="orbit/${code}"]`;
      await page.click(row);
      await waitForText(page, "#room-facts", "Idle");
      const seconds = async (selector: string) =>
        parseInt(await page.locator(selector).textContent() ?? "", 10);
      const idle = "#room-facts div:nth-child(7) dd";
      const rowAge = `${row} td:nth-child(7)`;
      const [idle0, age0] = [await seconds(idle), await seconds(rowAge)];
      ok(idle0 < 30 && age0 < 30, `${idle0} ${age0}`);
      const reads = () => requests.filter((r) => r.startsWith("GET /admin/api/rooms?")).length;
      const before = reads();
      await page.clock.runFor(3_000);
      // Shown at each 1 s tick: at least 2 s more after 3 s.
      ok(await seconds(idle) >= idle0 + 2, `idle ${idle0} → ${await seconds(idle)}`);
      ok(await seconds(rowAge) >= age0 + 2, `age ${age0} → ${await seconds(rowAge)}`);
      await page.clock.runFor(2_500);
      await until(() => reads() > before, "the rooms are read again", 5_000);
    }, { login: false });
  },
);

browserTest(
  "Operator console in an outage: what cannot be read is named and greyed, the pill says so, maintenance is unknown without the server, charts leave gaps",
  async () => {
    await using room = await consoleWithRoom();
    const { server, code } = room; // Alice stays seated until `room` is disposed of
    await withConsole(server.url, async ({ page }) => {
      await page.clock.install();
      await logIn(page, server.url);
      await page.waitForSelector(`#rooms-table tr[data-room="orbit/${code}"]`, {
        timeout: UI_TIMEOUT_MS,
      });
      await waitForText(page, "#maintenance-button", "Maintenance: off");
      // The room directory stops answering (Redis down): at the next reads the table is
      // greyed, the pill is no longer plain "live", maintenance is the last known.
      await page.route("**/admin/api/overview", redisDown);
      await page.route("**/admin/api/rooms?*", redisDown);
      // A read asked by a filter fails like any other: in the banner at once, tried again.
      await page.selectOption("#state-filter", "waiting");
      await waitForText(page, "#status-list", "Rooms: Service temporarily unavailable", 2_000);
      await page.clock.runFor(10_500);
      await page.waitForSelector("#rooms-panel .table-wrap.stale", { timeout: UI_TIMEOUT_MS });
      await waitForText(page, "#connection-state", "live, partly unavailable");
      await waitForText(page, "#maintenance-button", "Maintenance: off (last known)");
      // The server cannot be reached at all: the stream drops; the tiles are greyed and
      // maintenance is unknown (the button disabled). The page's clock stands still from here:
      // the stream is tried again 0.5–1 s after it dropped, and that attempt's failure says
      // "cannot connect" instead of "interrupted" (a slow test missed the interruption).
      await pauseClock(page);
      await page.route("**/admin/api/events", (route) => route.abort());
      server.admin!.close();
      await page.waitForSelector('#connection-state[data-state="retrying"]', {
        timeout: UI_TIMEOUT_MS,
      });
      await page.waitForSelector("#tiles.stale", { timeout: UI_TIMEOUT_MS });
      await waitForText(page, "#maintenance-button", "Maintenance: unknown");
      ok(await page.isDisabled("#maintenance-button"));
      await waitForText(page, "#status-list", "Live events: interrupted");
      // A sample after missed ones: a null point first, so no line bridges the gap.
      const tail = await page.evaluate(() => {
        pushSample({
          t: charts.load!.lastT + 30_000,
          connections: 1,
          rooms: 1,
          players: 1,
          delivered_per_sec: 0,
          relay_p99_ms: null,
          rejections_per_sec: 0,
        });
        return charts.load!.data[1]!.slice(-2);
      });
      deepEqual(tail, [null, 1]);
    }, { login: false });
  },
);

browserTest(
  "Operator console: a room that cannot be read is reported in its view, not as an uncaught error",
  async () => {
    await using room = await consoleWithRoom();
    const { server, code } = room; // Alice stays seated until `room` is disposed of
    await withConsole(server.url, async ({ page }) => {
      const row = `#rooms-table tr[data-room="orbit/${code}"]`;
      await page.waitForSelector(row, { timeout: UI_TIMEOUT_MS });
      const detail = `**/admin/api/rooms/orbit/${code}`;
      // The server is gone when the row is opened.
      await page.route(detail, (route) => route.abort());
      await page.click(row);
      await waitForText(
        page,
        "#room-error",
        "Cannot read this room now: The server cannot be reached",
      );
      await page.unroute(detail);
      // The room's home does not answer (cluster).
      await page.route(detail, (route) =>
        route.fulfill({
          status: 503,
          contentType: "application/json",
          body: JSON.stringify({
            message: "The room's home did not answer",
            error_code: "SERVICE_UNAVAILABLE",
          }),
        }));
      await page.press(row, "Enter");
      await waitForText(
        page,
        "#room-error",
        "The room's home did not answer (SERVICE_UNAVAILABLE)",
      );
      await page.unroute(detail);
      await page.click(row);
      await waitForText(page, "#room-members", "alice");
      ok(await page.isHidden("#room-error"));
    });
  },
);

browserTest(
  "Operator console: keyboard focus stays on its row and on its Remove button when the table and the room are read again",
  async () => {
    await using server = await serve((config) => {
      config.security.admin_token = TOKEN;
    });
    const players: TestClient[] = [];
    try {
      const join = async (code: string | null, name: string) => {
        const player = await connect(server);
        players.push(player);
        player.send(joinRoom(code, name, { max_players: 4 }));
        return (await player.next("RoomJoined")).data;
      };
      const code: string = (await join(null, "alice")).room_code;
      const bobId: string = (await join(code, "bob")).player_id;
      await withConsole(server.url, async ({ page }) => {
        const row = `#rooms-table tr[data-room="orbit/${code}"]`;
        await waitForText(page, row, "2/4");
        const focused = (attribute: string) =>
          page.evaluate((name) => document.activeElement?.getAttribute(name) ?? null, attribute);
        await page.focus(row);
        await join(code, "carol"); // a room event: the table is read again
        await waitForText(page, row, "3/4");
        equal(await focused("data-room"), `orbit/${code}`);
        await page.press(row, "Enter");
        const remove = `#room-members button[data-action="remove"][data-player="${bobId}"]`;
        await page.waitForSelector(remove, { timeout: UI_TIMEOUT_MS });
        await page.focus(remove);
        await join(code, "dave"); // the room view is read again
        await page.waitForFunction(
          () => document.querySelectorAll("#room-members li").length === 4,
          undefined,
          { timeout: UI_TIMEOUT_MS },
        );
        equal(await focused("data-player"), bobId);
      });
    } finally {
      for (const player of players) await player.close();
    }
  },
);

browserTest(
  "Operator console: a stream refused for the address's stream limit says so; the deliveries tile says what it counts",
  async () => {
    await using server = await serve((config) => {
      config.security.admin_token = TOKEN;
    });
    // Four other consoles of this address hold its four event streams.
    const held: Response[] = [];
    for (let i = 0; i < 4; i++) {
      const response = await fetch(`${server.url}/admin/api/events`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      equal(response.status, 200);
      held.push(response);
    }
    try {
      await withConsole(server.url, async ({ page }) => {
        await page.goto(`${server.url}/admin`);
        await page.fill("#token-input", TOKEN);
        await page.click("#login-button");
        await waitForText(page, "#status-list", "Live events: cannot connect: too many consoles");
        await waitForText(page, "#status-list", "close a console tab you do not need");
        equal(await page.textContent('[data-tile="delivered"] .label'), "Deliveries/s");
        match(
          await page.getAttribute('[data-tile="delivered"]', "title") ?? "",
          /once per recipient/,
        );
        // A console closes: this one's stream opens at its next try.
        await held.pop()!.body!.cancel();
        await page.waitForSelector('#connection-state[data-state="live"]', {
          timeout: UI_TIMEOUT_MS,
        });
      }, { login: false });
    } finally {
      for (const response of held) await response.body!.cancel();
    }
  },
);

browserTest(
  "Operator console: a client connection dropped without a close frame shows in the dropped-connections tile and the connection-ends chart",
  async () => {
    await using server = await serve((config) => {
      config.security.admin_token = TOKEN;
    });
    await withConsole(server.url, async ({ page }) => {
      equal(await page.textContent('[data-tile="drops"] .label'), "Dropped connections/s");
      match(
        await page.getAttribute('[data-tile="drops"]', "title") ?? "",
        /without a close handshake \(code 1006/,
      );
      await page.waitForSelector("#chart-closes .uplot", { timeout: UI_TIMEOUT_MS });
      // A client ends its TCP connection without a close frame: the server sees EOF (1006). The
      // tile shows one live sample (a second), so a client drops again until the tile was seen.
      let seen = false;
      for (let i = 0; i < 20 && !seen; i++) {
        const raw = await RawWebSocket.open(server.port);
        raw.close();
        seen = await page.waitForFunction(
          () => Number(document.querySelector('[data-tile="drops"] .value')?.textContent) > 0,
          undefined,
          { timeout: 1_500, polling: 50 },
        ).then(() => true, () => false);
      }
      ok(seen, "the dropped-connections tile showed a rate above 0");
      // The chart keeps it: a drop rate above 0, within the connection ends of its sample.
      const points = await page.evaluate(() => {
        const [, ended, dropped] = charts.closes!.data;
        return ended!.map((value, i) => [value ?? 0, dropped![i] ?? 0]);
      });
      ok(
        points.some(([ended, dropped]) => dropped! > 0 && ended! >= dropped!),
        JSON.stringify(points),
      );
      // A rolling deploy: a sample from a server of an older version, without the figure, leaves
      // the tile unknown rather than 0; a cluster sum with an older instance is a lower bound.
      const [tile, line] = await page.evaluate(() => {
        showSample({
          connections: 1,
          rooms: 0,
          players: 0,
          relay_p99_ms: null,
          maintenance: false,
        });
        clusterLine({
          instances: 2,
          connections: 1,
          rooms: 0,
          players: 0,
          spectators: 0,
          delivered_per_sec: 0,
          rejections_per_sec: 0,
          connection_closes_per_sec: 2,
          connection_drops_per_sec: 0.5,
          partial: ["connection_closes_per_sec", "connection_drops_per_sec"],
        });
        return [
          document.querySelector('[data-tile="drops"] .value')?.textContent,
          document.querySelector("#cluster-line")?.textContent,
        ];
      });
      equal(tile, "–");
      match(
        line ?? "",
        /, 0\.5 dropped connections\/s or more \(an older instance does not count them\)\./,
      );
    });
  },
);

browserTest(
  "Operator console: an event storm is written once per frame, the newest lines and a line for those left out",
  async () => {
    await using server = await serve((config) => {
      config.security.admin_token = TOKEN;
    });
    await withConsole(server.url, async ({ page }) => {
      const feed = server.operatorFeed!;
      // 3,000 events in batches of 200 (all at once would make the stream's reader slow:
      // dropped at 256 KiB queued).
      for (let i = 0; i < 3000; i++) {
        feed.publish({
          event: "action",
          data: { action: "close_room", target: `orbit/STORM${i}`, outcome: "refused", at: i },
        });
        if (i % 200 === 199) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await waitForText(page, "#event-log li:first-child", "orbit/STORM2999");
      await waitForText(page, "#event-log", "more events (not shown)");
      const lines = await page.locator("#event-log li").allTextContents();
      equal(lines.length, 50);
      ok(lines.some((line) => /^\+[\d,]+ more events \(not shown\)$/.test(line)), `${lines}`);
    });
  },
);

/**
 * The sortable headers against `server` (one process, or three instances on Redis): click and
 * keyboard, `aria-sort`, the order and search in the address across a reload, and the note when
 * the server's search stopped early.
 */
async function sortingHeaders(server: SignalFishServer): Promise<void> {
  const players: TestClient[] = [];
  /** Creates a room of game orbit with `names` seated; resolves with its row's key. */
  const room = async (names: string[]) => {
    let code: string | null = null;
    for (const name of names) {
      const player = await connect(server);
      players.push(player);
      player.send(joinRoom(code, name, { max_players: 4 }));
      code = (await player.waitFor("RoomJoined")).data.room_code;
    }
    return `orbit/${code}`;
  };
  try {
    const one = await room(["ann"]);
    const three = await room(["bea", "cid", "dov"]);
    const two = await room(["eliana", "fay"]);
    await withConsole(server.url, async ({ page, requests }) => {
      const order = (expected: string[], what: string) =>
        page.waitForFunction(
          (expected) =>
            Array.from(
              document.querySelectorAll("#rooms-table tbody tr"),
              (row) => row.getAttribute("data-room"),
            ).join() === expected,
          expected.join(),
          { timeout: UI_TIMEOUT_MS },
        ).catch(async (error) => {
          const shown = await page.locator("#rooms-table tbody tr").evaluateAll((rows) =>
            rows.map((row) => row.getAttribute("data-room"))
          );
          throw new Error(`${what}: rooms shown ${shown}, not ${expected}`, { cause: error });
        });
      const sorted = async () => {
        const headers = page.locator("#rooms-table th[aria-sort]");
        equal(await headers.count(), 1, "one sorted header");
        return [await headers.textContent(), await headers.getAttribute("aria-sort")];
      };
      // Oldest first, as the server lists by default: the Age column reads descending.
      await order([one, three, two], "oldest first");
      deepEqual(await sorted(), ["Age", "descending"]);

      // A click on Players: the most players first, asked of the server.
      await page.click('#rooms-table th[data-sort="players"] button');
      await order([three, two, one], "most players first");
      deepEqual(await sorted(), ["Players", "descending"]);
      ok(
        requests.some((r) => r.startsWith("GET /admin/api/rooms?") && r.includes("sort=-players")),
      );
      // Clicked again: reversed.
      await page.click('#rooms-table th[data-sort="players"] button');
      await order([one, two, three], "fewest players first");
      deepEqual(await sorted(), ["Players", "ascending"]);

      // The keyboard: the headers are buttons in the tab order.
      await page.focus('#rooms-table th[data-sort="code"] button');
      await page.keyboard.press("Enter");
      const byCode = [one, two, three].sort();
      await order(byCode, "by code");
      deepEqual(await sorted(), ["Room", "ascending"]);
      await page.keyboard.press("Tab"); // to Game
      await page.keyboard.press(" ");
      deepEqual(await sorted(), ["Game", "ascending"]);
      await page.keyboard.press("Shift+Tab"); // back to Room
      await page.keyboard.press(" ");
      deepEqual(await sorted(), ["Room", "ascending"]);
      await order(byCode, "by code again");
      await page.keyboard.press(" ");
      deepEqual(await sorted(), ["Room", "descending"]);
      await order([...byCode].reverse(), "by code, descending");

      // The order and the search live in the address: a reload shows the same rooms.
      await page.fill("#room-search", "LIAN");
      await order([two], "the search finds a player by name");
      const url = page.url();
      ok(url.endsWith("#sort=-code&q=LIAN"), url);
      const before = requests.length;
      await page.reload();
      await page.waitForSelector(STREAM_OPEN, { timeout: UI_TIMEOUT_MS });
      await order([two], "the search after the reload");
      deepEqual(await sorted(), ["Room", "descending"]);
      equal(await page.inputValue("#room-search"), "LIAN");
      ok(
        requests.slice(before).some((r) =>
          r.startsWith("GET /admin/api/rooms?") && r.includes("sort=-code") &&
          r.includes("q=LIAN")
        ),
        requests.slice(before).join("\n"),
      );
      await page.fill("#room-search", "");
      await order([...byCode].reverse(), "every room, by code descending");

      // A search the server stopped early (cluster mode's budget of rooms looked at) says so.
      await page.route("**/admin/api/rooms?*", (route) =>
        route.fulfill({
          status: 200,
          contentType: "application/json",
          body: JSON.stringify({
            rooms: [],
            offset: 0,
            truncated: false,
            sort: "-code",
            complete: false,
            examined: 20_000,
          }),
        }));
      await page.fill("#room-search", "nobody");
      await waitForText(page, "#rooms-incomplete", "the first 20,000 rooms in this order only");
      await waitForText(page, "#rooms-empty", "No rooms match among those the server looked at");
    });
  } finally {
    for (const player of players) await player.close();
  }
}

browserTest(
  "Operator console: the column headers sort the rooms on the server (click or keyboard, aria-sort), the order and search kept in the address across a reload",
  async () => {
    await using server = await serve((config) => {
      config.security.admin_token = TOKEN;
    });
    await sortingHeaders(server);
  },
);

browserTest(
  "Operator console in cluster mode: the column headers sort every instance's rooms through Redis",
  async () => {
    await using server = await serveCluster(
      testConfig((config) => {
        config.security.admin_token = TOKEN;
      }),
      {},
      3,
    );
    await sortingHeaders(server);
  },
);
