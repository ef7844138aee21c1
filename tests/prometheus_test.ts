/**
 * The Prometheus and Grafana files of `deploy/` (README "Prometheus and Grafana") against the real
 * tools and a live server: `promtool check config`, `check rules` and `test rules`; every metric
 * named by the Grafana dashboard and the alert rules exists in a live `/metrics/prom` exposition;
 * a real Prometheus (Debian package `prometheus`) scrapes a running server with the metrics bearer
 * token, answers a query with the server's value, evaluates the alert rules without errors and
 * returns data for every dashboard query.
 *
 * CI (`.ci/run`) installs the package and exports SIGNAL_FISH_REQUIRE_PROMETHEUS=1, so a missing
 * `promtool` or `prometheus` fails there instead of skipping.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import type { SignalFishServer } from "../src/server.ts";
import { connect, createAndJoin, serve } from "./helpers.ts";
import { spawnServer } from "./process.ts";
import { parseExposition } from "./exposition.ts";
import { startCluster } from "./cluster_helpers.ts";
import { IGNORE_WITHOUT_REDIS } from "./redis_server.ts";
import { RawWebSocket } from "./raw_websocket.ts";
import { RELAY_TIMING_SAMPLE } from "../src/transport/edge.ts";
import denoJson from "../deno.json" with { type: "json" };

const DEPLOY = new URL("../deploy/", import.meta.url).pathname;
const PROMETHEUS_CONFIG = `${DEPLOY}prometheus.yml`;
const ALERTS = `${DEPLOY}alerts.yml`;
const ALERTS_TEST = `${DEPLOY}alerts_test.yml`;
const DASHBOARD = `${DEPLOY}grafana/signal-fish.json`;
/** The scrape job name the alert rules and the dashboard select on. */
const JOB = "signal-fish";
/** Series Prometheus makes itself for every target; not in the exposition. */
const SYNTHETIC = new Set(["up"]);
/** Families a node exports only in cluster mode (docs/spec/SERVER.md §6.3, "cluster"). */
const CLUSTER_ONLY = /^signal_fish_cluster_/;
/** Families a server exports only while it serves TLS itself (`security.transport.tls`). */
const TLS_ONLY = /^signal_fish_tls_/;

async function available(program: string): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(program, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

const REQUIRED = Deno.env.get("SIGNAL_FISH_REQUIRE_PROMETHEUS") === "1";
const HAVE_PROMTOOL = await available("promtool");
const HAVE_PROMETHEUS = await available("prometheus");

/** Runs promtool with `args`; returns its exit code and combined output. */
async function promtool(...args: string[]): Promise<{ code: number; output: string }> {
  const { code, stdout, stderr } = await new Deno.Command("promtool", {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
}

// PromQL words that look like metric names but are not.
const PROMQL_KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "inf",
  "nan",
  "atan2",
]);

/**
 * The metric names a PromQL expression selects, in order of appearance: identifiers that are not
 * function calls, keywords, label names (inside `{…}` or grouping clauses), durations, numbers or
 * Grafana variables (`$…`).
 */
export function promqlMetricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, " ");
  const names: string[] = [];
  for (const match of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const before = stripped[match.index - 1] ?? " ";
    if (/[0-9.$]/.test(before)) continue;
    if (stripped.slice(match.index + match[0].length).trimStart().startsWith("(")) continue;
    if (PROMQL_KEYWORDS.has(match[0].toLowerCase())) continue;
    names.push(match[0]);
  }
  return names;
}

Deno.test("promqlMetricNames finds selectors and skips functions, labels, durations, keywords", () => {
  deepEqual(
    promqlMetricNames(
      'histogram_quantile(0.99, sum by (le, instance) (rate(a_bucket{job="x", i=~"$i"}[$__rate_interval])))',
    ),
    ["a_bucket"],
  );
  deepEqual(
    promqlMetricNames(
      "(rate(b_total[5m]) / (rate(c_total[1m]) + d)) > 0.05 and e offset 5m or sum(f) without (le) > bool 1e3",
    ),
    ["b_total", "c_total", "d", "e", "f"],
  );
  deepEqual(promqlMetricNames('up{job="signal-fish"} == 0'), ["up"]);
});

/** Every panel target of the dashboard (rows' nested panels included). */
function dashboardTargets(
  dashboard: DashboardJson,
): { panel: string; expr: string; datasource: unknown }[] {
  const out: { panel: string; expr: string; datasource: unknown }[] = [];
  const walk = (panels: DashboardPanel[] = []) => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        out.push({ panel: panel.title, expr: target.expr, datasource: target.datasource });
      }
      walk(panel.panels);
    }
  };
  walk(dashboard.panels);
  return out;
}

interface DashboardPanel {
  title: string;
  type: string;
  targets?: { expr: string; datasource: unknown }[];
  panels?: DashboardPanel[];
}
interface DashboardJson {
  uid: string;
  panels: DashboardPanel[];
  templating: { list: { name: string; type: string; query: unknown; definition?: string }[] };
}

async function readDashboard(): Promise<DashboardJson> {
  return JSON.parse(await Deno.readTextFile(DASHBOARD));
}

/** The expressions of every alerting rule in deploy/alerts.yml. */
async function alertRules(): Promise<{ alert: string; expr: string }[]> {
  const file = parseYaml(await Deno.readTextFile(ALERTS)) as {
    groups: { rules: { alert: string; expr: string }[] }[];
  };
  return file.groups.flatMap((group) => group.rules);
}

/** The `label_values(<selector>, label)` query of the dashboard's instance variable. */
function instanceVariable(dashboard: DashboardJson): string {
  const variable = dashboard.templating.list.find((v) => v.name === "instance");
  ok(variable, "the dashboard has an instance variable");
  const query = variable.query as { query: string };
  const match = /^label_values\((.+),\s*instance\)$/.exec(query.query);
  ok(match, query.query);
  return match[1]!;
}

/** A session that touches rooms, players, relay (timed), a rejection and an abnormal close. */
async function session(server: SignalFishServer): Promise<void> {
  await using alice = await connect(server);
  await using bob = await connect(server);
  await createAndJoin(alice, bob);
  for (let i = 0; i < 2 * RELAY_TIMING_SAMPLE; i++) {
    alice.send({ type: "GameData", data: { data: { seq: i } } });
    await bob.waitFor("GameData");
  }
  bob.send("{not json");
  equal((await bob.next("Error")).data.error_code, "INVALID_INPUT");
  // A client that ends its TCP connection without a close frame: a 1006 close with its cause.
  const quitter = await RawWebSocket.open(server.port);
  quitter.close();
}

/**
 * A server that has had {@linkcode session} and exports every family of one process: snapshots
 * while running are on, so their gauge is there (SignalFishStateSavesFailing reads it). Disposing
 * it also removes its state directory.
 */
async function servedWithEveryFamily(): Promise<SignalFishServer> {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-prometheus-" });
  const server = await serve((config) => {
    config.server.state_file = `${dir}/rooms.json`;
    config.server.state_save_interval_secs = 3600;
  });
  await session(server);
  return {
    ...server,
    [Symbol.asyncDispose]: async () => {
      await server.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Sample and family names of the server's exposition. */
async function exposedNames(server: SignalFishServer, token?: string): Promise<Set<string>> {
  const headers: HeadersInit = token ? { authorization: `Bearer ${token}` } : {};
  const response = await fetch(`${server.url}/metrics/prom`, { headers });
  equal(response.status, 200);
  const names = new Set<string>();
  for (const key of parseExposition(await response.text()).keys()) {
    names.add(key.replace(/\{.*$/, ""));
  }
  return names;
}

Deno.test({
  name:
    "promtool accepts deploy/prometheus.yml and deploy/alerts.yml, and the alert unit tests pass",
  ignore: !HAVE_PROMTOOL && !REQUIRED,
  async fn() {
    const config = await promtool("check", "config", PROMETHEUS_CONFIG);
    equal(config.code, 0, config.output);
    ok(config.output.includes("1 rule files found"), config.output);
    const rules = await promtool("check", "rules", ALERTS);
    equal(rules.code, 0, rules.output);
    const names = (await alertRules()).map((rule) => rule.alert);
    ok(rules.output.includes(`SUCCESS: ${names.length} rules found`), rules.output);
    const tests = await promtool("test", "rules", ALERTS_TEST);
    equal(tests.code, 0, tests.output);
    // Every alert has at least one firing expectation in the unit tests.
    const testFile = await Deno.readTextFile(ALERTS_TEST);
    for (const name of names) ok(testFile.includes(`alertname: ${name}`), name);
  },
});

Deno.test("Every family of a live exposition (signal_fish_ and process_) is in the metric list of docs/spec/SERVER.md §6.3", async () => {
  await using server = await servedWithEveryFamily();
  const listed = await specMetricNames();
  ok(listed.size >= 60, `only ${listed.size} rows read from §6.3`);
  const missing = [...await exposedNames(server)].filter((name) =>
    !listed.has(name) && !isHistogramPart(name, listed)
  );
  deepEqual(missing, []);
});

Deno.test("Every family of a live exposition is named in README.md (its metric tables or text; `prefix_*` rows cover a prefix)", async () => {
  await using server = await servedWithEveryFamily();
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const named = new Set(
    [...readme.matchAll(/`((?:signal_fish|process)_[a-z0-9_]*)(\*?)/g)].map((m) => m[1]! + m[2]!),
  );
  const prefixes = [...named].filter((name) => name.endsWith("*")).map((name) => name.slice(0, -1));
  const families = [...await exposedNames(server)].filter((name) => !isHistogramPart(name, named));
  ok(families.length >= 40, `only ${families.length} families exposed`);
  const missing = families.filter((name) =>
    !named.has(name) && !prefixes.some((prefix) => name.startsWith(prefix))
  );
  deepEqual(missing, [], "families README.md does not name (add a row to its metric table)");
});

/**
 * Every `signal_fish_` and `process_` name in the metric list of docs/spec/SERVER.md §6.3: the
 * second cell of each numbered row (a row may name several).
 */
async function specMetricNames(): Promise<Set<string>> {
  const spec = await Deno.readTextFile(new URL("../docs/spec/SERVER.md", import.meta.url));
  const section = spec.slice(spec.indexOf("### 6.3 "), spec.indexOf("### 6.4 "));
  return new Set(
    [...section.matchAll(/^\| [\d–]+ \| ([^|]+)\|/gm)].flatMap((row) =>
      [...row[1]!.matchAll(/`((?:signal_fish|process)_[a-z0-9_]+)/g)].map((name) => name[1]!)
    ),
  );
}

/** Whether `name` is the `_bucket`, `_sum` or `_count` sample of a histogram in `listed`. */
function isHistogramPart(name: string, listed: Set<string>): boolean {
  const base = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
  return base !== undefined && listed.has(base);
}

Deno.test("Every metric in the Grafana dashboard and the alert rules is in a live exposition", async () => {
  await using server = await servedWithEveryFamily();
  const exposed = await exposedNames(server);
  const dashboard = await readDashboard();
  const targets = dashboardTargets(dashboard);
  ok(targets.length >= 20, `only ${targets.length} dashboard targets`);
  const missing: string[] = [];
  const check = (where: string, expr: string) => {
    const names = promqlMetricNames(expr);
    ok(names.length > 0, `${where}: no metric in ${expr}`);
    for (const name of names) {
      if (!exposed.has(name) && !SYNTHETIC.has(name)) missing.push(`${where}: ${name}`);
    }
  };
  for (const { panel, expr, datasource } of targets) {
    check(`panel "${panel}"`, expr);
    deepEqual(datasource, { type: "prometheus", uid: "${datasource}" }, panel);
  }
  check("variable instance", instanceVariable(dashboard));
  for (const rule of await alertRules()) {
    // Cluster-only families are checked against a cluster node below; the TLS-only one against a
    // server serving TLS in tests/tls_test.ts.
    if (promqlMetricNames(rule.expr).every((name) => CLUSTER_ONLY.test(name))) continue;
    if (promqlMetricNames(rule.expr).every((name) => TLS_ONLY.test(name))) continue;
    check(`alert ${rule.alert}`, rule.expr);
  }
  deepEqual(missing, []);
  // Wanted on the dashboard (issue 16 item 4).
  const all = targets.map((t) => t.expr).join("\n");
  for (
    const name of [
      "signal_fish_connections_active",
      "signal_fish_rooms_active",
      "signal_fish_players_active",
      "signal_fish_game_data_messages_total",
      "signal_fish_game_data_relay_latency_seconds_bucket",
      "signal_fish_rate_limit_rejections_total",
      "signal_fish_slow_consumer_disconnects_total",
      "signal_fish_connection_closes_total",
      "process_resident_memory_bytes",
      "process_cpu_seconds_total",
      "process_open_fds",
      "signal_fish_build_info",
    ]
  ) ok(all.includes(name), name);
});

Deno.test("The Grafana dashboard's panels fit a 24-column grid without overlapping", async () => {
  const dashboard = await readDashboard();
  type Box = { title: string; gridPos: { x: number; y: number; w: number; h: number } };
  const boxes = dashboard.panels as unknown as Box[];
  equal(dashboard.uid, "signal-fish");
  deepEqual(dashboard.templating.list.map((variable) => variable.name), ["datasource", "instance"]);
  for (const { title, gridPos: { x, y, w, h } } of boxes) {
    ok(x >= 0 && w > 0 && x + w <= 24 && y >= 0 && h > 0, title);
  }
  for (const [i, a] of boxes.entries()) {
    for (const b of boxes.slice(i + 1)) {
      const apart = a.gridPos.x + a.gridPos.w <= b.gridPos.x ||
        b.gridPos.x + b.gridPos.w <= a.gridPos.x ||
        a.gridPos.y + a.gridPos.h <= b.gridPos.y ||
        b.gridPos.y + b.gridPos.h <= a.gridPos.y;
      ok(apart, `"${a.title}" overlaps "${b.title}"`);
    }
  }
});

/** GETs `url` as JSON, giving up after 5 s. */
async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 5000);
  try {
    const response = await fetch(url, { signal: controller.signal });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON (e.g. /-/ready's plain text)
    }
    return { status: response.status, body };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Calls `probe` every 200 ms until it returns a value other than `undefined`; throws with
 * `describe()` after `ms`.
 */
async function until<T>(
  ms: number,
  probe: () => Promise<T | undefined>,
  describe: () => string,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    let value: T | undefined;
    try {
      value = await probe();
    } catch {
      value = undefined;
    }
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Gave up after ${ms} ms: ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The commented `authorization:` block of deploy/prometheus.yml, uncommented and parsed. */
function shippedAuthorization(text: string): { type: string; credentials_file: string } {
  const lines = text.split("\n");
  const start = lines.findIndex((line) => /^\s*# authorization:$/.test(line));
  ok(start >= 0, "deploy/prometheus.yml shows the authorization block");
  const block: string[] = [];
  for (const line of lines.slice(start)) {
    const match = /^(\s*)# (.*)$/.exec(line);
    if (!match || (block.length > 0 && !match[2]!.startsWith("  "))) break;
    block.push(match[2]!);
  }
  return (parseYaml(block.join("\n")) as {
    authorization: { type: string; credentials_file: string };
  }).authorization;
}

type QueryResult = { metric: Record<string, string>; value: [number, string] }[];

Deno.test({
  name: "A real Prometheus scrapes the server with the bearer token and answers with its values",
  ignore: !HAVE_PROMETHEUS && !REQUIRED,
  async fn() {
    const token = "prometheus-scrape-token-0123456789";
    await using server = await serve((config) => {
      config.security.require_metrics_auth = true;
      config.security.metrics_auth_token = token;
    });
    await session(server);
    const target = new URL(server.url).host;

    // Prometheus config = the shipped job with its bearer block uncommented, pointing at the
    // test server, scraped every second, with the shipped alert rules loaded.
    const shippedText = await Deno.readTextFile(PROMETHEUS_CONFIG);
    const shipped = parseYaml(shippedText) as {
      rule_files: string[];
      scrape_configs: Record<string, unknown>[];
    };
    const job = shipped.scrape_configs.find((config) => config.job_name === JOB);
    ok(job, `deploy/prometheus.yml has the ${JOB} job`);
    equal(job.metrics_path, "/metrics/prom");
    deepEqual(shipped.rule_files, ["alerts.yml"]);
    const authorization = shippedAuthorization(shippedText);
    equal(authorization.type, "Bearer");

    const dir = await Deno.makeTempDir({ prefix: "signal-fish-prometheus-" });
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = probe.addr.port;
    probe.close();
    const api = `http://127.0.0.1:${port}`;
    await Deno.writeTextFile(`${dir}/token`, token);
    // YAML is a superset of JSON: Prometheus reads this as its configuration.
    await Deno.writeTextFile(
      `${dir}/prometheus.yml`,
      JSON.stringify({
        global: { scrape_interval: "1s", evaluation_interval: "1s" },
        rule_files: [ALERTS],
        scrape_configs: [{
          ...job,
          scrape_interval: "1s",
          static_configs: [{ targets: [target] }],
          authorization: { ...authorization, credentials_file: `${dir}/token` },
        }],
      }),
    );
    const child = new Deno.Command("prometheus", {
      args: [
        `--config.file=${dir}/prometheus.yml`,
        `--storage.tsdb.path=${dir}/data`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const log = new Response(child.stderr).text();
    const query = async (promql: string): Promise<QueryResult | undefined> => {
      const { status, body } = await getJson(
        `${api}/api/v1/query?query=${encodeURIComponent(promql)}`,
      );
      const answer = body as { status: string; data: { result: QueryResult } };
      return status === 200 && answer.status === "success" ? answer.data.result : undefined;
    };
    try {
      await until(30_000, async () => {
        const { status } = await getJson(`${api}/-/ready`);
        return status === 200 ? true : undefined;
      }, () => "Prometheus never became ready");

      // The server's own value, read with the token, must come back through Prometheus.
      const response = await fetch(`${server.url}/metrics/prom`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const own = parseExposition(await response.text());
      const created = own.get("signal_fish_rooms_created_total");
      equal(created, 1);
      const selector = `{job="${JOB}", instance="${target}"}`;
      await until(30_000, async () => {
        const result = await query(`signal_fish_rooms_created_total${selector}`);
        return result?.length === 1 && Number(result[0]!.value[1]) === created ? true : undefined;
      }, () => "Prometheus never returned signal_fish_rooms_created_total = 1");
      const up = await query(`up${selector}`);
      equal(up?.length, 1);
      equal(up[0]!.value[1], "1");
      const built = await query(`signal_fish_build_info${selector}`);
      equal(built?.length, 1);
      equal(built[0]!.metric.version, denoJson.version);

      // The shipped alert rules load and evaluate without errors on real data.
      const names = (await alertRules()).map((rule) => rule.alert).sort();
      await until(30_000, async () => {
        const { body } = await getJson(`${api}/api/v1/rules`);
        const rules = (body as {
          data: { groups: { rules: { name: string; health: string; state: string }[] }[] };
        }).data.groups.flatMap((group) => group.rules);
        deepEqual(rules.map((rule) => rule.name).sort(), names);
        return rules.every((rule) => rule.health === "ok") ? rules : undefined;
      }, () => "The alert rules never all evaluated with health ok");

      // Every dashboard query (and the instance variable) returns data once a few scrapes exist.
      const dashboard = await readDashboard();
      const queries = dashboardTargets(dashboard).map(({ panel, expr }) => ({
        panel,
        expr: expr.replaceAll("$__rate_interval", "1m").replaceAll("$instance", ".*"),
      }));
      let empty: string[] = [];
      await until(30_000, async () => {
        empty = [];
        for (const { panel, expr } of queries) {
          const result = await query(expr);
          if (!result || result.length === 0) empty.push(`${panel}: ${expr}`);
        }
        return empty.length === 0 ? true : undefined;
      }, () => `dashboard queries without data:\n${empty.join("\n")}`);
      const { body } = await getJson(
        `${api}/api/v1/series?match[]=${encodeURIComponent(instanceVariable(dashboard))}`,
      );
      deepEqual(
        (body as { data: Record<string, string>[] }).data.map((series) => series.instance),
        [target],
      );
    } catch (error) {
      child.kill("SIGKILL");
      throw new Error(`${error}\nprometheus log:\n${(await log).slice(-4000)}`);
    } finally {
      try {
        child.kill("SIGTERM");
      } catch {
        // already ended
      }
      const stopped = await Promise.race([
        child.status,
        new Promise<undefined>((resolve) => {
          const timer = setTimeout(() => resolve(undefined), 10_000);
          child.status.finally(() => clearTimeout(timer));
        }),
      ]);
      if (!stopped) child.kill("SIGKILL");
      await child.status;
      await log;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("Under the executables' permissions the process families are exported, process_open_fds excepted", async () => {
  // Deno reads /proc only with --allow-all, which RUNTIME_PERMISSIONS does not grant.
  await using server = await spawnServer();
  const response = await fetch(`http://127.0.0.1:${server.port}/metrics/prom`);
  equal(response.status, 200);
  const metrics = parseExposition(await response.text());
  ok(metrics.get("process_resident_memory_bytes")! > 0);
  ok(metrics.get("process_cpu_seconds_total")! > 0);
  ok(metrics.get("process_start_time_seconds")! > 0);
  equal(metrics.has("process_open_fds"), false);
  equal(metrics.get(`signal_fish_build_info{version="${denoJson.version}"}`), 1);
  equal(metrics.get("signal_fish_rooms_active"), 0);
});

Deno.test({
  name: "Every metric of the cluster alert rules is in a live cluster node's exposition",
  ignore: IGNORE_WITHOUT_REDIS,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const rules = (await alertRules()).filter((rule) =>
      promqlMetricNames(rule.expr).every((name) => CLUSTER_ONLY.test(name))
    );
    ok(rules.length >= 2, `only ${rules.length} cluster alert rules`);
    await using cluster = await startCluster(1);
    const response = await fetch(`${cluster.httpUrl(0)}/metrics/prom`);
    equal(response.status, 200);
    const exposed = new Set(
      [...parseExposition(await response.text()).keys()].map((key) => key.replace(/\{.*$/, "")),
    );
    const missing = rules.flatMap((rule) =>
      promqlMetricNames(rule.expr).filter((name) => !exposed.has(name)).map((name) =>
        `alert ${rule.alert}: ${name}`
      )
    );
    deepEqual(missing, []);
    // And every family of a cluster node is in docs/spec/SERVER.md §6.3.
    const listed = await specMetricNames();
    deepEqual(
      [...exposed].filter((name) =>
        name.startsWith("signal_fish_") && !listed.has(name) && !isHistogramPart(name, listed)
      ),
      [],
    );
  },
});
