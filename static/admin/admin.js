// The operator console's script (served at /admin/admin.js, no build step; docs/spec/EXTENSIONS.md E12).
// It asks for the operator token once and keeps it in sessionStorage (this tab only), reads the
// JSON API under /admin/api/ with it as a bearer token, follows the live event stream
// (Server-Sent Events read through fetch, since EventSource cannot send an Authorization
// header) and draws the figures with uPlot (/admin/uplot.js, from its npm package).
"use strict";

const TOKEN_KEY = "signal-fish-admin-token";
/** Points kept per chart: 15 minutes of 1 s samples. */
const MAX_POINTS = 900;
/** Room list refreshes are coalesced: at most one per this many ms. */
const REFRESH_MS = 300;
/** Rooms per page of the table (`limit` of `/admin/api/rooms`, E12). */
const PAGE_SIZE = 100;
/** Typing in the search box asks the server this many ms after the last key. */
const SEARCH_MS = 300;
const EVENT_LOG_LINES = 50;

const $ = (id) => document.getElementById(id);
const ui = {
  login: $("login"),
  loginForm: $("login-form"),
  tokenInput: $("token-input"),
  loginError: $("login-error"),
  console: $("console"),
  problems: $("status-banner"),
  problemList: $("status-list"),
  tiles: $("tiles"),
  charts: $("charts"),
  roomsPanel: document.querySelector("#rooms-panel .table-wrap"),
  roomError: $("room-error"),
  state: $("connection-state"),
  logout: $("logout-button"),
  maintenance: $("maintenance-button"),
  banner: $("maintenance-banner"),
  search: $("room-search"),
  gameFilter: $("game-filter"),
  stateFilter: $("state-filter"),
  roomsBody: document.querySelector("#rooms-table tbody"),
  roomsEmpty: $("rooms-empty"),
  roomsIncomplete: $("rooms-incomplete"),
  roomCount: $("room-count"),
  pager: $("room-pager"),
  pagePrev: $("page-prev"),
  pageNext: $("page-next"),
  roomView: $("room-view"),
  roomTitle: $("room-title"),
  roomFacts: $("room-facts"),
  roomMembers: $("room-members"),
  roomSpectators: $("room-spectators"),
  closeRoom: $("close-room"),
  roomBack: $("room-back"),
  eventLog: $("event-log"),
  clusterLine: $("cluster-line"),
  dialog: $("confirm-dialog"),
  confirmText: $("confirm-text"),
};

let token = sessionStorage.getItem(TOKEN_KEY);
/**
 * The page of rooms shown: the server's answer for the search, filters and order (`rooms`,
 * `offset`, `truncated`, `complete`, `examined`, E12), and `games`, the overview's rooms per
 * game (every room counted).
 */
let listing = { rooms: [], offset: 0, truncated: false, complete: true };
/** Whether this session has read the rooms yet (until then the table says it has not). */
let roomsRead = false;
let games = [];
/**
 * Cluster mode: the games the overview left out (each instance lists its 100 games with the most
 * rooms, E12), `{games, rooms, players, spectators}` summed, or null when none was.
 */
let otherGames = null;
/** The first room of the page asked for (0-based). */
let pageOffset = 0;
/** The keys of `/admin/api/rooms?sort=` (E12). */
const SORT_KEYS = ["created", "code", "game", "players", "spectators", "lobby_state"];
const OLDEST_FIRST = { key: "created", descending: false };
/** The rooms' order: a key of SORT_KEYS, ascending unless `descending`. */
let sort = OLDEST_FIRST;
/** The table's sortable headers (`data-sort`: the key; `data-first`, `data-inverted`). */
const sortHeaders = [...document.querySelectorAll("#rooms-table th[data-sort]")];
/** `{game_name, room_code}` of the room shown in the room view, or null. */
let selected = null;
/** Maintenance mode as last read: true, false, or null when unknown. */
let maintenance = null;
/** The stream's state for the pill: `idle`, `connecting`, `live`, `retrying`. */
let streamState = "idle";
let streamAbort = null;
let refreshTimer = null;
/** The session's timers: the rooms (POLL_MS), the overview (OVERVIEW_MS), the age counters. */
let pollTimer = null;
let overviewTimer = null;
let tickTimer = null;
/** Cluster mode: the answering instance's node name, and when a live `cluster` sum last came. */
let clusterNode = null;
let liveClusterAt = 0;
/**
 * While the page is visible the rooms (and the open room) are read every POLL_MS, the server's
 * window for message rates (E12): their figures change without room events.
 */
const POLL_MS = 5_000;
/**
 * The overview (per-game counts, maintenance, the cluster's sums) is read every OVERVIEW_MS
 * while the page is visible.
 */
const OVERVIEW_MS = 10_000;
const charts = {};

// ---------------------------------------------------------------------------------------------
// API

class Unauthorized extends Error {}

async function api(path, init = {}) {
  let response;
  try {
    response = await fetch(`/admin/api/${path}`, {
      ...init,
      headers: { ...init.headers, authorization: `Bearer ${token}` },
      cache: "no-store",
    });
  } catch {
    throw new Error("The server cannot be reached");
  }
  if (response.status === 401) throw new Unauthorized("The token was refused");
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.message ?? `HTTP ${response.status}`);
    error.status = response.status;
    error.code = body.error_code;
    throw error;
  }
  return body;
}

/**
 * How a room's game is shown: with app auth the directory names a game `<app_id>\u0001<game>`
 * (each app has its own rooms, docs/spec/SERVER.md §3.3); the console shows `game (app_id)` and keeps the
 * full name for the API paths.
 */
function gameLabel(gameName) {
  const split = gameName.lastIndexOf("\u0001");
  return split < 0 ? gameName : `${gameName.slice(split + 1)} (${gameName.slice(0, split)})`;
}

const roomPath = (room) =>
  `rooms/${encodeURIComponent(room.game_name)}/${encodeURIComponent(room.room_code)}`;

// ---------------------------------------------------------------------------------------------
// Login

function showLogin(message = "") {
  stop();
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  ui.console.hidden = true;
  ui.logout.hidden = true;
  ui.maintenance.hidden = true;
  ui.login.hidden = false;
  ui.loginError.textContent = message;
  setState("idle");
  ui.tokenInput.focus();
}

ui.loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  token = ui.tokenInput.value.trim();
  // The token is checked with the history, which every instance answers from memory: the
  // overview and the rooms need the room directory (Redis in a cluster), which may be down.
  let history;
  try {
    history = await api("history");
  } catch (error) {
    showLogin(error instanceof Unauthorized ? "That token was refused." : error.message);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  ui.tokenInput.value = "";
  start(history);
});

ui.logout.addEventListener("click", () => showLogin());

// ---------------------------------------------------------------------------------------------
// Start: each part is read on its own and read again, with backoff, until it answers

/** Counts console sessions (log-ins); a timer or answer of an earlier one does nothing. */
let generation = 0;
/** Part → its retry timer. */
const retryTimers = new Map();
/** Part → `{message, retryAt}` while it cannot be read (the status banner lists them). */
const problems = new Map();
/** What each part is called in the status banner. */
const PARTS = {
  history: "History",
  overview: "Overview",
  rooms: "Rooms",
  stream: "Live events",
};

/** Backoff with jitter before attempt `attempt` + 1: 0.5–1 s, doubling, at most 30 s. */
function backoff(attempt) {
  return Math.min(30_000, 1000 * 2 ** attempt) * (0.5 + Math.random() / 2);
}

/**
 * Reads part `part` with `read` (a function returning a Promise); on failure the status banner
 * says so and it is read again after a backoff, until it answers or the session ends. A `401`
 * ends the session. Resolves when the read (this attempt) is over.
 */
function load(part, read, attempt = 0) {
  const mine = generation;
  clearTimeout(retryTimers.get(part));
  retryTimers.delete(part);
  return read().then(() => {
    if (mine === generation) setProblem(part, null);
  }, (error) => {
    if (mine !== generation) return;
    if (error instanceof Unauthorized) return showLogin("The token was refused.");
    const delay = backoff(attempt);
    setProblem(part, error.message, Date.now() + delay);
    retryTimers.set(
      part,
      setTimeout(() => {
        if (mine === generation) load(part, read, attempt + 1);
      }, delay),
    );
  });
}

/** Records that `part` cannot be read (`message`, next try at `retryAt`), or can (`null`). */
function setProblem(part, message, retryAt) {
  if (message === null) {
    if (!problems.delete(part)) return;
  } else {
    problems.set(part, { message, retryAt });
  }
  renderProblems();
}

function renderProblems() {
  const lines = [...problems].map(([part, { message, retryAt }]) => {
    const li = document.createElement("li");
    const wait = retryAt
      ? `; trying again at ${new Date(retryAt).toLocaleTimeString("en-GB")}`
      : "";
    li.textContent = `${PARTS[part]}: ${message}${wait}`;
    return li;
  });
  ui.problemList.replaceChildren(...lines);
  ui.problems.hidden = lines.length === 0;
  // What could not be read again is greyed: it may be out of date.
  const streamDown = problems.has("stream");
  ui.tiles.classList.toggle("stale", streamDown);
  ui.charts.classList.toggle("stale", streamDown || problems.has("history"));
  ui.roomsPanel.classList.toggle("stale", problems.has("rooms"));
  ui.roomView.classList.toggle("stale", problems.has("rooms"));
  ui.clusterLine.classList.toggle("stale", streamDown || problems.has("overview"));
  renderPill();
  renderMaintenance();
  renderEmpty();
}

/** The pill: the stream's state, "degraded" while it is live but another part cannot be read. */
function renderPill() {
  if (streamState === "live" && problems.size > 0) {
    ui.state.dataset.state = "degraded";
    ui.state.textContent = "live, partly unavailable";
    return;
  }
  ui.state.dataset.state = streamState;
  ui.state.textContent = {
    idle: "not connected",
    connecting: "connecting…",
    live: "live",
    retrying: "reconnecting…",
  }[streamState];
}

/** Opens the console: every part on its own (`history`, when given, was read at log-in). */
function start(history) {
  stop();
  const mine = ++generation;
  ui.login.hidden = true;
  ui.console.hidden = false;
  ui.logout.hidden = false;
  ui.maintenance.hidden = false;
  load("history", () => history ? Promise.resolve(showHistory(history)) : readHistory());
  load("overview", readOverview);
  load("rooms", refreshRooms);
  startStream();
  // Rates, ages and idle times change without room events, and in a cluster an instance may
  // leave events out (rate cap) or start while this runs: the rooms and the overview are read
  // again now and then while the page is visible; ages count up every second in between.
  pollTimer = setInterval(() => {
    if (mine === generation && visible()) load("rooms", refreshRooms);
  }, POLL_MS);
  overviewTimer = setInterval(() => {
    if (mine === generation && visible()) load("overview", readOverview);
  }, OVERVIEW_MS);
  tickTimer = setInterval(tickAges, 1000);
}

const visible = () => document.visibilityState === "visible";

document.addEventListener("visibilitychange", () => {
  // Back in view: what changed meanwhile is read at once.
  if (visible() && token && !ui.console.hidden) {
    load("rooms", refreshRooms);
    load("overview", readOverview);
  }
});

/** Ends the session's timers, retries and stream, and frees its charts. */
function stop() {
  generation++;
  stopStream();
  for (const timer of [pollTimer, overviewTimer, tickTimer]) clearInterval(timer);
  pollTimer = overviewTimer = tickTimer = null;
  for (const timer of retryTimers.values()) clearTimeout(timer);
  retryTimers.clear();
  problems.clear();
  // A new session starts from nothing read.
  listing = { rooms: [], offset: 0, truncated: false, complete: true };
  roomsRead = false;
  pageOffset = 0;
  renderRooms();
  renderProblems();
  destroyCharts();
}

/** Reads and shows the history (charts). */
function readHistory() {
  return api("history").then(showHistory);
}

function showHistory(history) {
  buildCharts(history.samples, history.interval_ms ?? 5000);
}

/** Reads and shows the overview: maintenance, the games, the cluster line, the tiles. */
async function readOverview() {
  const overview = await api("overview");
  setMaintenance(overview.maintenance);
  showGames(overview.games, overview.other_games);
  showCluster(overview);
  showSample(overview.sample);
}

/** Reads everything again (the stream came back: the server may have restarted meanwhile). */
function reloadAll() {
  load("history", readHistory);
  load("overview", readOverview);
  load("rooms", refreshRooms);
}

// ---------------------------------------------------------------------------------------------
// Live stream (Server-Sent Events over fetch)

/** Sets the stream's state (`idle`, `connecting`, `live`, `retrying`) for the pill. */
function setState(state) {
  streamState = state;
  renderPill();
}

function stopStream() {
  streamAbort?.abort();
  streamAbort = null;
}

/**
 * Follows the event stream; dropped, it is opened again with backoff. Every time it opens after
 * the first, the history, overview and rooms are read again: events missed meanwhile (a server
 * restart loses its rooms without a `room` event) would otherwise leave them stale.
 */
async function startStream(attempt = 0, reopened = false) {
  stopStream();
  if (streamState !== "retrying") setState("connecting");
  const abort = new AbortController();
  streamAbort = abort;
  let opened = false;
  let failure;
  try {
    const response = await fetch("/admin/api/events", {
      headers: { authorization: `Bearer ${token}` },
      signal: abort.signal,
      cache: "no-store",
    });
    if (response.status === 401) return showLogin("The token was refused.");
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      if (body.error_code === "TOO_MANY_STREAMS") {
        // The server's cap on event streams (per address and in all, E12): other consoles
        // (tabs) hold them; this one waits its turn.
        throw new Error(
          "too many consoles are open (the server's limit on live event streams per address " +
            "or in all was reached); close a console tab you do not need",
        );
      }
      throw new Error(body.message ?? `HTTP ${response.status}`);
    }
    opened = true;
    setState("live");
    setProblem("stream", null);
    attempt = 0;
    if (reopened) reloadAll();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        handleEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  } catch (error) {
    if (abort.signal.aborted) return;
    failure = error instanceof TypeError ? "the server cannot be reached" : error.message;
    if (opened) logLine(`Event stream interrupted: ${error.message}`);
  }
  if (abort.signal.aborted || streamAbort !== abort) return;
  // Dropped (slow tab, restart, network): try again with backoff and jitter.
  const delay = backoff(attempt);
  setState("retrying");
  setProblem(
    "stream",
    opened ? "interrupted" : `cannot connect${failure ? `: ${failure}` : ""}`,
    Date.now() + delay,
  );
  // The samples carried maintenance; without them it is known only from a read.
  if (problems.has("overview") || opened) setMaintenance(null);
  setTimeout(() => {
    if (streamAbort === abort) startStream(attempt + 1, reopened || opened);
  }, delay);
}

function handleEvent(block) {
  let name = "message";
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) name = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (!data) return;
  const payload = JSON.parse(data);
  switch (name) {
    case "sample":
      showSample(payload);
      pushSample(payload);
      if (payload.cluster && clusterNode !== null) {
        liveClusterAt = Date.now();
        clusterLine(payload.cluster);
      }
      break;
    case "room":
      logLine(
        `${payload.type.replaceAll("_", " ")} · ${
          gameLabel(payload.game_name)
        }/${payload.room_code}${where(payload)}`,
      );
      // A game the filter does not offer yet: the overview lists every game, unless it left
      // games out (then the next overview will do).
      if (!otherGames && !games.some((game) => game.game_name === payload.game_name)) {
        refreshGames();
      }
      scheduleRefresh();
      break;
    case "action": {
      // `outcome`: ok, refused (nothing done) or unknown (no answer in time, E12).
      const outcome = payload.outcome && payload.outcome !== "ok" ? ` (${payload.outcome})` : "";
      logLine(
        `operator: ${payload.action.replaceAll("_", " ")} · ${payload.target}${outcome}` +
          where(payload),
      );
      if (payload.action.startsWith("maintenance") && !outcome) {
        setMaintenance(payload.action.endsWith("on"));
      }
      scheduleRefresh();
      break;
    }
    case "skipped":
      logLine(`${format.int(payload.count)} events of ${payload.instance} not shown (rate cap)`);
      scheduleRefresh();
      break;
  }
}

/** Cluster mode: the instance an event happened on. */
function where(payload) {
  return payload.instance ? ` · on ${payload.instance}` : "";
}

// ---------------------------------------------------------------------------------------------
// Tiles and charts

const format = {
  int: (n) => (n ?? 0).toLocaleString("en-US"),
  rate: (n) => (n ?? 0).toLocaleString("en-US", { maximumFractionDigits: 1 }),
  ms: (n) => n === null || n === undefined ? "–" : `${n.toFixed(n < 1 ? 3 : 1)} ms`,
};

function tile(name, text) {
  document.querySelector(`[data-tile="${name}"] .value`).textContent = text;
}

/**
 * Cluster mode: the cluster's sums, and which instance the tiles, charts and event log come
 * from (they are that instance's own).
 */
function showCluster(overview) {
  const totals = overview.cluster_totals;
  if (!totals) return;
  clusterNode = overview.node;
  // The live sums of the stream's samples are newer than the liveness keys' counts.
  if (Date.now() - liveClusterAt > 3 * 1000) clusterLine(totals);
}

/**
 * The cluster line: `totals` from the overview (counts) or from a sample's live `cluster` sums
 * (counts and rates, every second while the stream runs).
 */
function clusterLine(totals) {
  // Drops: absent from an answering server of an older version; `partial` when a summed
  // instance of an older version (a rolling deploy) did not count them (E12).
  const drops = totals.connection_drops_per_sec === undefined
    ? ""
    : `, ${format.rate(totals.connection_drops_per_sec)} dropped connections/s` +
      (totals.partial?.includes("connection_drops_per_sec")
        ? " or more (an older instance does not count them)"
        : "");
  const rates = totals.delivered_per_sec === undefined
    ? ""
    : `${format.rate(totals.delivered_per_sec)} deliveries/s, ` +
      `${format.rate(totals.rejections_per_sec)} rejections/s${drops}. `;
  ui.clusterLine.textContent = `Cluster: ${format.int(totals.instances)} instances, ` +
    `${format.int(totals.connections)} connections, ${format.int(totals.rooms)} rooms, ` +
    `${format.int(totals.players)} players, ${format.int(totals.spectators)} spectators` +
    `${rates ? `; ${rates}` : ". "}` +
    `The figures above are instance ${clusterNode}'s; the event log is every instance's.`;
  ui.clusterLine.hidden = false;
}

function showSample(sample) {
  if (!sample) return;
  tile("connections", format.int(sample.connections));
  tile("rooms", format.int(sample.rooms));
  tile("players", format.int(sample.players));
  tile("delivered", format.rate(sample.delivered_per_sec));
  tile("p99", format.ms(sample.relay_p99_ms));
  tile("rejections", format.rate(sample.rejections_per_sec));
  // Unknown (not 0) from a server of a version before the figure.
  tile(
    "drops",
    sample.connection_drops_per_sec === undefined
      ? "–"
      : format.rate(sample.connection_drops_per_sec),
  );
  if (sample.maintenance !== maintenance) setMaintenance(sample.maintenance);
}

const SERIES = {
  load: [
    ["connections", "Connections", "#4fb3ff"],
    ["rooms", "Rooms", "#3ccf91"],
    ["players", "Players", "#f5b84b"],
  ],
  traffic: [["delivered_per_sec", "Deliveries/s", "#4fb3ff"]],
  latency: [["relay_p99_ms", "p99 ms", "#c792ea"]],
  rejections: [["rejections_per_sec", "Rejections/s", "#ff6b6b"]],
  closes: [
    ["connection_closes_per_sec", "Ended/s", "#4fb3ff"],
    ["connection_drops_per_sec", "Dropped/s", "#f5b84b"],
  ],
};

function chartWidth(element) {
  return Math.max(200, element.parentElement.clientWidth - 24);
}

/** Frees the charts (uPlot's listeners on the window included). */
function destroyCharts() {
  for (const [name, chart] of Object.entries(charts)) {
    chart.plot.destroy();
    delete charts[name];
  }
}

/** Live samples come every second. */
const LIVE_MS = 1000;

/**
 * Whether a sample at `t` (ms) after one at `last`, samples being `spacing` ms apart, leaves a
 * gap (missed samples: the server was down or the stream gone) that the chart must not bridge.
 */
function isGap(last, t, spacing) {
  return last !== undefined && t - last > 2.5 * spacing;
}

/** `samples` (oldest first, `spacing` ms apart) with a gap point in each gap. */
function withGaps(samples, spacing) {
  const out = [];
  for (const sample of samples) {
    const last = out.at(-1)?.t;
    if (isGap(last, sample.t, spacing)) out.push({ t: last + spacing, gap: true });
    out.push(sample);
  }
  return out;
}

/**
 * A sample's figure as uPlot takes it: `null` (a gap, no line across) only for missed samples;
 * a figure a sample lacks (no relay, no p99) is `undefined`, which the line passes over.
 */
function figure(sample, key) {
  return sample.gap ? null : sample[key] ?? undefined;
}

/** Builds the charts from the history's `samples`, `spacing` ms apart. */
function buildCharts(samples, spacing) {
  destroyCharts();
  const points = withGaps(samples, spacing);
  for (const [name, series] of Object.entries(SERIES)) {
    const element = $(`chart-${name}`);
    element.replaceChildren();
    const data = [
      points.map((s) => s.t / 1000),
      ...series.map(([key]) => points.map((s) => figure(s, key))),
    ];
    charts[name] = {
      series,
      data,
      /** When the last point is from (ms), and how far apart its kind of samples are. */
      lastT: samples.at(-1)?.t,
      spacing,
      plot: new uPlot(
        {
          width: chartWidth(element),
          height: 160,
          cursor: { drag: { x: false, y: false } },
          // Counts, rates and latencies start at 0; an idle series still gets a readable axis.
          scales: {
            x: { time: true },
            y: {
              range: (_u, _min, max) => [0, Math.max(name === "latency" ? 0.05 : 1, max * 1.1)],
            },
          },
          axes: [
            { stroke: "#8b9bab", grid: { stroke: "#263444" }, ticks: { stroke: "#263444" } },
            {
              stroke: "#8b9bab",
              grid: { stroke: "#263444" },
              ticks: { stroke: "#263444" },
              size: 48,
            },
          ],
          series: [
            {},
            // A null point is a gap (no figures then): no line across it.
            ...series.map(([, label, color]) => ({
              label,
              stroke: color,
              width: 2,
              spanGaps: false,
            })),
          ],
        },
        data,
        element,
      ),
    };
  }
}

function pushSample(sample) {
  for (const chart of Object.values(charts)) {
    if (isGap(chart.lastT, sample.t, Math.max(LIVE_MS, chart.spacing))) {
      // Missed samples: a null point, so no line is drawn across the gap.
      chart.data[0].push((chart.lastT + LIVE_MS) / 1000);
      for (const column of chart.data.slice(1)) column.push(null);
    }
    chart.lastT = sample.t;
    chart.spacing = LIVE_MS;
    chart.data[0].push(sample.t / 1000);
    chart.series.forEach(([key], i) => chart.data[i + 1].push(figure(sample, key)));
    if (chart.data[0].length > MAX_POINTS) { for (const column of chart.data) column.shift(); }
    chart.plot.setData(chart.data);
  }
}

new ResizeObserver(() => {
  for (const [name, chart] of Object.entries(charts)) {
    chart.plot.setSize({ width: chartWidth($(`chart-${name}`)), height: 160 });
  }
}).observe(document.body);

// ---------------------------------------------------------------------------------------------
// Maintenance

/** Maintenance mode as read (`true`, `false`), or `null` when it is not known. */
function setMaintenance(on) {
  maintenance = on;
  renderMaintenance();
}

/**
 * The maintenance button: on, off, or unknown (not read yet, or the server cannot be reached:
 * then it is disabled); "last known" while the overview cannot be read.
 */
function renderMaintenance() {
  const known = maintenance !== null;
  const stale = known && problems.has("overview") ? " (last known)" : "";
  ui.maintenance.textContent = `Maintenance: ${
    known ? (maintenance ? "on" : "off") : "unknown"
  }${stale}`;
  ui.maintenance.dataset.state = known ? (maintenance ? "on" : "off") : "unknown";
  ui.maintenance.disabled = !known;
  ui.maintenance.title = known ? "" : "Maintenance mode cannot be read now";
  ui.banner.hidden = maintenance !== true;
}

ui.maintenance.addEventListener("click", async () => {
  if (maintenance === null) return;
  const enable = !maintenance;
  const question = enable
    ? "Turn maintenance on? No new rooms can be created until it is turned off."
    : "Turn maintenance off? New rooms can be created again.";
  if (!(await confirmAction(question))) return;
  try {
    const answer = await api("maintenance", {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ enabled: enable }),
    });
    setMaintenance(answer.enabled);
  } catch (error) {
    report(error);
    if (error.status === 504) await rereadAfterUnknown();
  }
});

// ---------------------------------------------------------------------------------------------
// Rooms

function scheduleRefresh() {
  if (refreshTimer !== null) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    load("rooms", refreshRooms);
  }, REFRESH_MS);
}

/** The query of `/admin/api/rooms` for the search, the filters, the order and the page (E12). */
function roomsQuery() {
  const params = new URLSearchParams({
    limit: String(PAGE_SIZE),
    offset: String(pageOffset),
    sort: sortParam(sort),
  });
  const query = ui.search.value.trim();
  if (query) params.set("q", query);
  if (ui.gameFilter.value) params.set("game_name", ui.gameFilter.value);
  if (ui.stateFilter.value) params.set("lobby_state", ui.stateFilter.value);
  return params.toString();
}

/** `sort` as `/admin/api/rooms?sort=` takes it: the key, `-` first for descending. */
function sortParam(order) {
  return `${order.descending ? "-" : ""}${order.key}`;
}

/** The order `text` names (`players`, `-players`), or null. */
function parseSort(text) {
  const match = /^(-?)([a-z_]+)$/.exec(text ?? "");
  return match && SORT_KEYS.includes(match[2])
    ? { key: match[2], descending: match[1] === "-" }
    : null;
}

/**
 * Marks the sorted header with `aria-sort` (the others have none) as the column reads: the Age
 * column is creation time inverted, so oldest first is ages descending.
 */
function renderSort() {
  for (const th of sortHeaders) {
    const button = th.querySelector("button");
    const label = th.dataset.label ?? button.textContent.toLowerCase();
    if (th.dataset.sort !== sort.key) {
      th.removeAttribute("aria-sort");
      button.title = `Sort by ${label}`;
      continue;
    }
    const descending = sort.descending !== (th.dataset.inverted === "true");
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    button.title = `Sorted ${descending ? "descending" : "ascending"}; click to reverse`;
  }
}

/**
 * Keeps the order, search and filters in the page's address (after `#`, never sent to the
 * server), so a reload or a copied link shows the same rooms.
 */
function saveView() {
  const params = new URLSearchParams();
  if (sortParam(sort) !== sortParam(OLDEST_FIRST)) params.set("sort", sortParam(sort));
  const query = ui.search.value.trim();
  if (query) params.set("q", query);
  if (ui.gameFilter.value) params.set("game", ui.gameFilter.value);
  if (ui.stateFilter.value) params.set("state", ui.stateFilter.value);
  const hash = params.toString();
  const url = `${location.pathname}${location.search}${hash ? `#${hash}` : ""}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) {
    history.replaceState(null, "", url);
  }
}

/** Sets the order, search and filters from the page's address (see saveView). */
function restoreView() {
  const params = new URLSearchParams(location.hash.slice(1));
  sort = parseSort(params.get("sort")) ?? OLDEST_FIRST;
  ui.search.value = params.get("q") ?? "";
  const game = params.get("game") ?? "";
  // The game's option comes with the overview; until then it is offered on its own.
  if (game && ![...ui.gameFilter.options].some((option) => option.value === game)) {
    ui.gameFilter.append(new Option(gameLabel(game), game));
  }
  ui.gameFilter.value = game;
  const state = params.get("state") ?? "";
  ui.stateFilter.value = ["waiting", "lobby", "finalized"].includes(state) ? state : "";
  renderSort();
}

/** A sortable header was clicked: its key (the same again reverses the order). */
function sortBy(th) {
  const key = th.dataset.sort;
  sort = sort.key === key ? { key, descending: !sort.descending } : {
    key,
    // `data-first` is the column's direction as it reads (Age is creation time inverted).
    descending: (th.dataset.first === "desc") !== (th.dataset.inverted === "true"),
  };
  pageOffset = 0;
  renderSort();
  saveView();
  load("rooms", refreshRooms);
}

for (const th of sortHeaders) {
  // A button: Enter and Space work, and it is in the tab order.
  th.querySelector("button").addEventListener("click", () => sortBy(th));
}

addEventListener("hashchange", () => {
  restoreView();
  pageOffset = 0;
  if (token && !ui.console.hidden) load("rooms", refreshRooms);
});

/** The room list read in flight, and whether another read is wanted after it. */
let roomsInFlight = null;
let roomsAgain = false;

/**
 * Reads the page of rooms (and the open room) again. One read at a time: asked while one runs,
 * another follows it, so an older answer never overwrites a newer one. Resolves when the table
 * shows what the server answered last; rejects with the last read's error.
 */
function refreshRooms() {
  if (roomsInFlight) {
    roomsAgain = true;
    return roomsInFlight;
  }
  roomsInFlight = (async () => {
    try {
      do {
        roomsAgain = false;
        await loadRooms();
      } while (roomsAgain);
    } finally {
      roomsInFlight = null;
    }
  })();
  return roomsInFlight;
}

async function loadRooms() {
  const answer = await api(`rooms?${roomsQuery()}`);
  // Asked again meanwhile (filters, events): that read's answer is the one to show.
  if (roomsAgain) return;
  listing = answer;
  roomsRead = true;
  if (answer.rooms.length === 0 && answer.offset > 0) {
    // The page emptied (rooms closed): back to the last page that has rooms.
    pageOffset = Math.max(0, answer.offset - PAGE_SIZE);
    return loadRooms();
  }
  renderRooms();
  if (selected) await showRoom(selected, false);
}

/**
 * Reads the overview's games again, one read at a time: asked again while a read is out (a second
 * new game's event), it reads once more after that one, whose answer may predate the new game.
 */
let gamesPending = false;
let gamesAgain = false;
function refreshGames() {
  if (gamesPending) {
    gamesAgain = true;
    return;
  }
  gamesPending = true;
  api("overview").then((overview) => showGames(overview.games, overview.other_games))
    .catch(() => {})
    .finally(() => {
      gamesPending = false;
      if (gamesAgain) {
        gamesAgain = false;
        refreshGames();
      }
    });
}

/**
 * The game filter's options: every game of the overview's counts (all rooms, not only the page
 * shown), plus the one selected; when the counts left games out (`other`), a last line that says
 * how many rooms they hold, which cannot be chosen.
 */
function showGames(list, other) {
  games = list ?? [];
  otherGames = other ?? null;
  const current = ui.gameFilter.value;
  const names = new Set(games.map((game) => game.game_name));
  if (current) names.add(current);
  const options = [new Option("All games", "")];
  for (const game of [...names].sort()) options.push(new Option(gameLabel(game), game));
  if (otherGames) {
    const rest = new Option(
      `(other games: ${format.int(otherGames.rooms)} ${
        otherGames.rooms === 1 ? "room" : "rooms"
      }; search to find them)`,
      "",
    );
    rest.disabled = true;
    options.push(rest);
  }
  ui.gameFilter.replaceChildren(...options);
  ui.gameFilter.value = current;
  renderCount();
}

/**
 * A duration that counts up in the page between reads: shows `seconds` now and, every second
 * after (`tickAges`), that much more.
 */
function counting(element, seconds) {
  if (seconds === undefined) {
    element.textContent = "–";
    delete element.dataset.since;
    return element;
  }
  element.dataset.since = String(Date.now() - seconds * 1000);
  element.textContent = age(seconds);
  return element;
}

/** Counts the ages and idle times shown up to now. */
function tickAges() {
  const now = Date.now();
  for (const element of document.querySelectorAll("[data-since]")) {
    element.textContent = age(
      Math.max(0, Math.floor((now - Number(element.dataset.since)) / 1000)),
    );
  }
}

function age(seconds) {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}

function authorityName(room) {
  if (!room.authority) return "—";
  return room.members?.find((m) => m.player_id === room.authority)?.name ?? room.authority;
}

/**
 * The table's rows by `game/code`: a row is updated in place from one read to the next, so the
 * row with keyboard focus keeps it (and a screen reader its place).
 */
const rowsByKey = new Map();

/** A new row of the table for room `target` (`{game_name, room_code}`), with its eight cells. */
function newRow(target) {
  const tr = document.createElement("tr");
  tr.tabIndex = 0;
  tr.dataset.room = `${target.game_name}/${target.room_code}`;
  for (let i = 0; i < 8; i++) tr.append(document.createElement("td"));
  const open = () => showRoom(target, true).catch(report);
  tr.addEventListener("click", open);
  tr.addEventListener("keydown", (event) => {
    if (event.key === "Enter") open();
  });
  return tr;
}

/** Sets the text of `element` if it changed. */
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function renderRooms() {
  const focused = document.activeElement;
  const keep = new Set();
  const rows = listing.rooms.map((room) => {
    const key = `${room.game_name}/${room.room_code}`;
    keep.add(key);
    let tr = rowsByKey.get(key);
    if (tr === undefined) {
      tr = newRow({ game_name: room.game_name, room_code: room.room_code });
      rowsByKey.set(key, tr);
    }
    const cells = tr.children;
    setText(cells[0], room.room_code);
    setText(cells[1], gameLabel(room.game_name));
    setText(cells[2], `${room.players}/${room.max_players}`);
    setText(cells[3], String(room.spectators));
    setText(cells[4], room.unreachable ? "unreachable" : room.lobby_state);
    setText(cells[5], authorityName(room));
    counting(cells[6], room.age_secs);
    setText(
      cells[7],
      room.messages_per_sec === undefined ? "–" : format.rate(room.messages_per_sec),
    );
    return tr;
  });
  for (const [key, tr] of rowsByKey) {
    if (keep.has(key)) continue;
    tr.remove();
    rowsByKey.delete(key);
  }
  // In order, moving only rows out of place (a moved element loses focus: given back below).
  let next = ui.roomsBody.firstElementChild;
  for (const tr of rows) {
    if (tr === next) next = next.nextElementSibling;
    else ui.roomsBody.insertBefore(tr, next);
  }
  if (focused !== document.activeElement && focused?.isConnected) {
    focused.focus({ preventScroll: true });
  }
  renderEmpty();
  const cut = roomsRead && listing.complete === false;
  ui.roomsIncomplete.hidden = !cut;
  if (cut) {
    ui.roomsIncomplete.textContent = `The server looked at the first ` +
      `${format.int(listing.examined)} rooms in this order only (its limit for a search or ` +
      "filter in cluster mode): rooms after them may match too. Narrow the search, pick a " +
      "game, or change the order.";
  }
  ui.pager.hidden = listing.offset === 0 && !listing.truncated;
  ui.pagePrev.disabled = listing.offset === 0;
  ui.pageNext.disabled = !listing.truncated;
  renderCount();
}

/**
 * How many rooms match, as far as known: every room, or one game's, from the overview's counts
 * (`undefined` with a search or a lobby-state filter, which the counts do not cover, and for a
 * game the counts do not list or list only in part).
 */
function knownTotal() {
  if (ui.search.value.trim() || ui.stateFilter.value) return undefined;
  const game = ui.gameFilter.value;
  if (!game) return games.reduce((sum, g) => sum + g.rooms, otherGames?.rooms ?? 0);
  const row = games.find((g) => g.game_name === game);
  if (row === undefined) return otherGames ? undefined : 0;
  return row.partial ? undefined : row.rooms;
}

/** The line under an empty table: no rooms (matching), or that they have not been read. */
function renderEmpty() {
  const filtered = Boolean(ui.search.value.trim() || ui.gameFilter.value || ui.stateFilter.value);
  ui.roomsEmpty.textContent = !roomsRead
    ? (problems.has("rooms") ? "The rooms cannot be read now." : "Reading the rooms…")
    : listing.complete === false
    ? "No rooms match among those the server looked at."
    : filtered
    ? "No rooms match."
    : "No rooms.";
  ui.roomsEmpty.hidden = listing.rooms.length > 0;
}

/** The count beside the title: the rooms shown and, when more match, how many or that more do. */
function renderCount() {
  if (!roomsRead) {
    ui.roomCount.textContent = "";
    return;
  }
  const shown = listing.rooms.length;
  const first = listing.offset + 1;
  const last = listing.offset + shown;
  if (listing.complete !== false && listing.offset === 0 && !listing.truncated) {
    ui.roomCount.textContent = `(${format.int(shown)})`;
    return;
  }
  const total = listing.truncated ? knownTotal() : last;
  const range = listing.offset === 0
    ? `first ${format.int(shown)}`
    : `rooms ${format.int(first)}–${format.int(last)}`;
  if (listing.complete === false) {
    ui.roomCount.textContent = `(${range}; the search stopped early)`;
    return;
  }
  ui.roomCount.textContent = total !== undefined && total > last
    ? `(${range} of ${format.int(total)})`
    : total === last
    ? `(${range} of ${format.int(last)})`
    : `(${range}; more exist)`;
}

let searchTimer = null;
ui.search.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    pageOffset = 0;
    saveView();
    load("rooms", refreshRooms);
  }, SEARCH_MS);
});
for (const input of [ui.gameFilter, ui.stateFilter]) {
  input.addEventListener("input", () => {
    pageOffset = 0;
    saveView();
    load("rooms", refreshRooms);
  });
}
ui.pagePrev.addEventListener("click", () => {
  pageOffset = Math.max(0, listing.offset - PAGE_SIZE);
  load("rooms", refreshRooms);
});
ui.pageNext.addEventListener("click", () => {
  pageOffset = listing.offset + PAGE_SIZE;
  load("rooms", refreshRooms);
});

// ---------------------------------------------------------------------------------------------
// Room view

/** A fact of the room view: `value` as text, or a number of seconds that counts up. */
function fact(label, value) {
  const div = document.createElement("div");
  const dt = document.createElement("dt");
  const dd = document.createElement("dd");
  dt.textContent = label;
  if (typeof value === "number") counting(dd, value);
  else dd.textContent = value;
  div.append(dt, dd);
  return div;
}

function badge(text, kind) {
  const span = document.createElement("span");
  span.className = `badge ${kind}`;
  span.textContent = text;
  return span;
}

const sameRoom = (a, b) => a && b && a.game_name === b.game_name && a.room_code === b.room_code;

/**
 * Shows room `target` (`{game_name, room_code}`) in the room view, read from the server. A room
 * that is gone closes the view; one that cannot be read (server down, home not answering) is
 * said so in the view, and read again with the room list. Rejects only with `Unauthorized`.
 */
async function showRoom(target, scroll) {
  let room;
  try {
    room = await api(roomPath(target));
  } catch (error) {
    if (error instanceof Unauthorized) throw error;
    if (error.status === 404) {
      if (sameRoom(selected, target)) {
        logLine(`Room ${gameLabel(target.game_name)}/${target.room_code} is gone`);
      }
      hideRoom();
      return;
    }
    roomUnreadable(target, error, scroll);
    return;
  }
  ui.roomError.hidden = true;
  ui.roomFacts.classList.remove("stale");
  selected = target;
  ui.roomView.hidden = false;
  ui.roomView.dataset.room = `${room.game_name}/${room.room_code}`;
  ui.roomTitle.textContent = `Room ${room.room_code} · ${gameLabel(target.game_name)}`;
  ui.roomFacts.replaceChildren(
    fact("Lobby", room.lobby_state),
    fact("Players", `${room.players}/${room.max_players}`),
    fact("Spectators", String(room.spectators)),
    fact("Authority", authorityName(room)),
    fact("Ready", `${room.ready_players.length}/${room.players}`),
    fact("Age", room.age_secs),
    fact("Idle", room.idle_secs),
    fact(
      "Messages",
      `${format.int(room.messages_total)} · ${format.rate(room.messages_per_sec)}/s`,
    ),
    fact("Relay", room.relay_type),
    fact("Home", room.home ?? "–"),
  );
  keepingFocus(ui.roomMembers, () => showMembers(room));
  const spectators = room.spectator_list.map((spectator) => {
    const li = document.createElement("li");
    li.textContent = spectator.name;
    return li;
  });
  if (spectators.length === 0) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "None";
    spectators.push(li);
  }
  ui.roomSpectators.replaceChildren(...spectators);
  if (scroll) ui.roomView.scrollIntoView({ block: "nearest" });
}

/** The room view's players, each with its badges and a Remove button. */
function showMembers(room) {
  ui.roomMembers.replaceChildren(...room.members.map((member) => {
    const li = document.createElement("li");
    li.dataset.player = member.player_id;
    const who = document.createElement("div");
    who.className = "who";
    const name = document.createElement("strong");
    name.textContent = member.name;
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = member.player_id;
    who.append(name);
    if (member.is_authority) who.append(badge("authority", "authority"));
    who.append(badge(member.is_ready ? "ready" : "not ready", member.is_ready ? "ready" : ""));
    if (member.held) who.append(badge("disconnected, seat held", "held"));
    who.append(id);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "danger small";
    remove.dataset.action = "remove";
    remove.dataset.player = member.player_id;
    remove.textContent = "Remove";
    remove.addEventListener("click", () => removePlayer(room, member));
    li.append(who, remove);
    return li;
  }));
}

/**
 * Runs `rebuild`, which replaces the elements of `container`; the element that had focus there
 * (a Remove button: same `data-action` and `data-player`) gets it back in the new elements.
 */
function keepingFocus(container, rebuild) {
  const active = document.activeElement;
  const action = container.contains(active) ? active.dataset.action : undefined;
  rebuild();
  if (action === undefined || active.isConnected) return;
  const again = container.querySelector(
    `[data-action="${CSS.escape(action)}"][data-player="${CSS.escape(active.dataset.player)}"]`,
  );
  again?.focus({ preventScroll: true });
}

/** The room view of `target` when it cannot be read: what it showed stays, greyed, with why. */
function roomUnreadable(target, error, scroll) {
  if (!sameRoom(selected, target)) {
    ui.roomTitle.textContent = `Room ${target.room_code} · ${gameLabel(target.game_name)}`;
    ui.roomFacts.replaceChildren();
    ui.roomMembers.replaceChildren();
    ui.roomSpectators.replaceChildren();
  }
  selected = target;
  ui.roomView.hidden = false;
  ui.roomView.dataset.room = `${target.game_name}/${target.room_code}`;
  ui.roomError.textContent = `Cannot read this room now: ${error.message}` +
    `${error.code ? ` (${error.code})` : ""}. It is read again with the room list.`;
  ui.roomError.hidden = false;
  ui.roomFacts.classList.add("stale");
  if (scroll) ui.roomView.scrollIntoView({ block: "nearest" });
}

function hideRoom() {
  selected = null;
  ui.roomView.hidden = true;
  ui.roomError.hidden = true;
  delete ui.roomView.dataset.room;
}

ui.roomBack.addEventListener("click", hideRoom);

ui.closeRoom.addEventListener("click", async () => {
  if (!selected) return;
  const target = selected;
  const question = `Close room ${target.room_code} (${gameLabel(target.game_name)})? ` +
    "Every player and spectator is sent out and their reconnection tokens stop working.";
  if (!(await confirmAction(question))) return;
  try {
    await api(roomPath(target), { method: "DELETE" });
    logLine(`Closed ${gameLabel(target.game_name)}/${target.room_code}`);
    hideRoom();
    load("rooms", refreshRooms);
  } catch (error) {
    report(error);
    if (error.status === 504) await rereadAfterUnknown();
  }
});

async function removePlayer(room, member) {
  const question = `Remove ${member.name} from room ${room.room_code}? ` +
    "They are sent out of the room and cannot reconnect to the seat.";
  if (!(await confirmAction(question))) return;
  try {
    await api(`${roomPath(room)}/players/${encodeURIComponent(member.player_id)}`, {
      method: "DELETE",
    });
    logLine(`Removed ${member.name} from ${gameLabel(room.game_name)}/${room.room_code}`);
    load("rooms", refreshRooms);
  } catch (error) {
    report(error);
    if (error.status === 504) await rereadAfterUnknown();
  }
}

/**
 * After an action answered `504 OUTCOME_UNKNOWN` (sent, no answer in time: it may still take
 * effect, docs/spec/EXTENSIONS.md E12): reads maintenance, the rooms and the open room again.
 */
async function rereadAfterUnknown() {
  logLine("The outcome is unknown: reading the state again");
  await Promise.allSettled([
    api("maintenance").then((answer) => setMaintenance(answer.enabled)),
    load("rooms", refreshRooms),
  ]);
}

// ---------------------------------------------------------------------------------------------
// Confirmation, errors, event log

function confirmAction(question) {
  ui.confirmText.textContent = question;
  ui.dialog.returnValue = "";
  ui.dialog.showModal();
  return new Promise((resolve) => {
    ui.dialog.addEventListener("close", () => resolve(ui.dialog.returnValue === "yes"), {
      once: true,
    });
  });
}

function report(error) {
  if (error instanceof Unauthorized) showLogin("The token was refused.");
  else logLine(`Error: ${error.message}${error.code ? ` (${error.code})` : ""}`);
}

/** Lines waiting for the next frame (oldest first), and how many were left out meanwhile. */
let pendingLines = [];
let linesLeftOut = 0;
let logFrame = null;

/**
 * Adds a line to the event log. Lines are written once per animation frame, newest first: under
 * thousands of events a second the log shows the newest lines and one "+N more events" line for
 * those left out, instead of rebuilding itself for each event.
 */
function logLine(text) {
  pendingLines.push(`${new Date().toLocaleTimeString("en-GB")} ${text}`);
  // Kept bounded while no frame runs (a hidden tab): only the newest can be shown anyway.
  if (pendingLines.length > 2 * EVENT_LOG_LINES) {
    linesLeftOut += pendingLines.length - EVENT_LOG_LINES;
    pendingLines = pendingLines.slice(-EVENT_LOG_LINES);
  }
  logFrame ??= requestAnimationFrame(flushLog);
}

function flushLog() {
  logFrame = null;
  let lines = pendingLines;
  let leftOut = linesLeftOut;
  pendingLines = [];
  linesLeftOut = 0;
  if (lines.length > EVENT_LOG_LINES - 1) {
    leftOut += lines.length - (EVENT_LOG_LINES - 1);
    lines = lines.slice(-(EVENT_LOG_LINES - 1));
  }
  const fragment = document.createDocumentFragment();
  for (const text of lines.reverse()) {
    const li = document.createElement("li");
    li.textContent = text;
    fragment.append(li);
  }
  if (leftOut > 0) {
    const li = document.createElement("li");
    li.className = "summary";
    li.textContent = `+${format.int(leftOut)} more events (not shown)`;
    fragment.append(li);
  }
  ui.eventLog.prepend(fragment);
  while (ui.eventLog.children.length > EVENT_LOG_LINES) ui.eventLog.lastElementChild.remove();
}

restoreView();
if (token) start();
else showLogin();
