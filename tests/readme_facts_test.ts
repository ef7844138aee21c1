/**
 * Facts the README and the protocol guide state about the code, checked against the code: the
 * executables' permission list and file names, the `start` task's command, the defaults in the
 * configuration table, the flags of `--help` and their precedence, the startup banner, the close
 * codes (against docs/spec/PROTOCOL.md §1.6), the families with labels (docs/spec/SERVER.md §6.2),
 * the VPS guide's configuration check, certificate step and systemd units (exit 2 is not
 * restarted; the template's per-instance files), and deploy/'s proxies and scrape target (the env
 * file's port and trusted proxies, timeouts above the idle timeout).
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { RUNTIME_PERMISSIONS } from "../scripts/permissions.ts";
import { TARGETS } from "../scripts/compile.ts";
import { DEFAULT_CONFIG } from "../src/config/schema.ts";
import { startupBanner, USAGE } from "../src/cli.ts";
import { fileDescriptorHeadroom } from "../src/http/admission.ts";

const README = Deno.readTextFileSync(new URL("../README.md", import.meta.url));
const GUIDE = Deno.readTextFileSync(new URL("../docs/protocol.md", import.meta.url));
const PROTOCOL = Deno.readTextFileSync(new URL("../docs/spec/PROTOCOL.md", import.meta.url));

/** The text of `markdown` between the heading line starting with `heading` and the next heading. */
function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n${heading}`);
  ok(start >= 0, `heading ${heading} exists`);
  const rest = markdown.slice(start + 1);
  const end = rest.slice(1).search(/\n#{1,4} /);
  return end < 0 ? rest : rest.slice(0, end + 1);
}

Deno.test("README: the executables' permission list is scripts/permissions.ts's", () => {
  const block = /carry a narrower set[\s\S]*?```text\n([\s\S]*?)```/.exec(README)?.[1];
  ok(block !== undefined, "the permission block exists");
  deepEqual(block.split(/\s+/).filter(Boolean), [...RUNTIME_PERMISSIONS]);
});

Deno.test("README: `deno task start` runs what deno.json says", () => {
  const quoted = /`deno task start` runs\n`([^`]+)`/.exec(README)?.[1];
  ok(quoted !== undefined, "the start command is quoted");
  equal(quoted.replace(/\s+/g, " "), denoJson.tasks.start);
});

Deno.test("README: the defaults in the configuration table are DEFAULT_CONFIG's", () => {
  let checked = 0;
  for (const line of README.split("\n")) {
    const row = /^\| `([a-z0-9_.]+)` +\| `([^`]+)` +\|/.exec(line);
    if (row === null) continue;
    let value: unknown = DEFAULT_CONFIG;
    for (const key of row[1]!.split(".")) {
      value = typeof value === "object" && value !== null
        ? (value as Record<string, unknown>)[key]
        : undefined;
    }
    if (value === undefined) continue; // a row of another table (e.g. the logging keys)
    equal(row[2], JSON.stringify(value), `README default of ${row[1]}`);
    checked++;
  }
  ok(checked >= 20, `only ${checked} default values found in the README`);
});

/** The close codes of the first Markdown table in `text`, in order. */
function closeCodes(text: string): string[] {
  return [...text.matchAll(/^\| `(\d{4})` +\|/gm)].map((m) => m[1]!);
}

Deno.test("docs/protocol.md: the close codes are docs/spec/PROTOCOL.md §1.6's, cluster-only 1012 explained", () => {
  const spec = new Set(closeCodes(section(PROTOCOL, "### 1.6 Close codes")));
  const guide = new Set(closeCodes(section(GUIDE, "### Close codes")));
  ok(spec.size >= 7 && spec.has("1012"), "spec close codes read");
  deepEqual([...guide].sort(), [...spec].sort());
  const several = section(GUIDE, "## Servers with several instances");
  ok(several.includes("`1012`") && several.includes("`SERVICE_UNAVAILABLE`"), several);
});

Deno.test("README: the quick start shows the banner deno task start prints", () => {
  const shown = /It prints where to go[^\n]*\n\n```text\n([\s\S]*?)```/.exec(README)?.[1];
  ok(shown !== undefined, "the banner block exists");
  equal(shown, startupBanner("http://127.0.0.1:3536", DEFAULT_CONFIG));
});

/** Whether the dotted `path` names a key of DEFAULT_CONFIG (a leaf or a table). */
function isConfigKey(path: string): boolean {
  let value: unknown = DEFAULT_CONFIG;
  for (const key of path.split(".")) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
    if (!Object.hasOwn(value, key)) return false;
    value = (value as Record<string, unknown>)[key];
  }
  return true;
}

Deno.test("README and deploy/: every configuration key and SIGNAL_FISH_ variable they name exists", () => {
  const sections = Object.keys(DEFAULT_CONFIG).filter((key) =>
    typeof (DEFAULT_CONFIG as Record<string, unknown>)[key] === "object"
  );
  const keyPattern = new RegExp(`\`((?:${sections.join("|")})\\.[a-z0-9_.]+)\``, "g");
  const keys = [...README.matchAll(keyPattern)].map((m) => m[1]!)
    // File names in the logging table (`server.log`).
    .filter((key) => !/\.(log|json)$/.test(key));
  ok(keys.includes("server.reuse_port") && keys.includes("cluster.redis_url"), "keys read");
  deepEqual(keys.filter((key) => !isConfigKey(key)), [], "README names keys the schema lacks");

  const deploy = new URL("../deploy/", import.meta.url);
  const texts = [
    README,
    ...["signal-fish.env", "signal-fish.service", "signal-fish@.service"].map((file) =>
      Deno.readTextFileSync(new URL(file, deploy))
    ),
  ];
  // Spellings the README shows on purpose: a rejected name and the accepted double underscore.
  const shownWrong = new Set(["SIGNAL_FISH_SERVER__MAX_PLAYERS"]);
  const other = new Set(["SIGNAL_FISH_CONFIG_PATH"]); // docs/spec/SERVER.md §2.4
  const names = texts.flatMap((text) => [...text.matchAll(/SIGNAL_FISH_[A-Z0-9_]*[A-Z0-9]/g)])
    .map((m) => m[0]).filter((name) => !shownWrong.has(name) && !other.has(name));
  ok(names.includes("SIGNAL_FISH_SERVER__REUSE_PORT"), "the template's variables read");
  const unknown = names.filter((name) => {
    const path = name.slice("SIGNAL_FISH_".length).replace(/^_/, "").toLowerCase()
      .split("__").join(".");
    return !isConfigKey(path);
  });
  deepEqual([...new Set(unknown)], [], "variables that name no configuration key");
});

const DEPLOY = new URL("../deploy/", import.meta.url);
const UNITS = ["signal-fish.service", "signal-fish@.service"];
const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** PATH, HOME and DENO_DIR of the test process: what a `deno` subprocess needs, no SIGNAL_FISH_. */
function denoEnv(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["PATH", "HOME", "DENO_DIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

Deno.test("deploy/: both systemd units restart on failure but not after a configuration error (exit 2)", async () => {
  for (const unit of UNITS) {
    const text = Deno.readTextFileSync(new URL(unit, DEPLOY));
    ok(/^Restart=on-failure$/m.test(text), `${unit}: Restart=on-failure`);
    ok(/^RestartPreventExitStatus=2$/m.test(text), `${unit}: RestartPreventExitStatus=2`);
  }
  // Exit 2 is what the server returns for an invalid setting.
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", MAIN, "--validate-config"],
    clearEnv: true,
    env: { ...denoEnv(), SIGNAL_FISH_SERVER__DEFAULT_MAX_PLAYERS: "0" },
    stdout: "null",
    stderr: "null",
  }).output();
  equal(code, 2);
});

Deno.test("README: the VPS guide's configuration check loads the environment file the units load", async () => {
  const units = UNITS.map((unit) => Deno.readTextFileSync(new URL(unit, DEPLOY)));
  const envFiles = units.map((text) => /^EnvironmentFile=-?(\S+)$/m.exec(text)?.[1]);
  equal(new Set(envFiles).size, 1, `the units' EnvironmentFile= lines: ${envFiles.join(", ")}`);
  const envFile = envFiles[0]!;
  const vps = section(README, "## Run on a VPS");
  // The shell command run as the service's user, with the variables of the environment file.
  const script = /sudo -u signal-fish sh -c '([^']*--validate-config[^']*)'/.exec(vps)?.[1];
  ok(script !== undefined, "the check runs through sh -c '…' as signal-fish");
  ok(script.includes(` ${envFile} `), `the check reads ${envFile}`);

  // Run it with the paths replaced: the shipped environment file passes, one with a misspelled
  // name fails with exit 2 (it passed when the check did not read the file).
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-readme-" });
  try {
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(
      `${dir}/bin/signal-fish-server`,
      `#!/bin/sh\nexec "${Deno.execPath()}" run --allow-read --allow-env "${MAIN}" "$@"\n`,
      { mode: 0o755 },
    );
    await Deno.writeTextFile(`${dir}/config.json`, "{}");
    const typo = `${dir}/typo.env`;
    await Deno.writeTextFile(
      typo,
      Deno.readTextFileSync(new URL("signal-fish.env", DEPLOY)) +
        "SIGNAL_FISH_SERVER__MAX_PLAYER=8\n",
    );
    const check = async (environmentFile: string) => {
      const env = denoEnv();
      const output = await new Deno.Command("/bin/sh", {
        args: [
          "-c",
          script.replaceAll(envFile, environmentFile)
            .replaceAll("/etc/signal-fish/config.json", `${dir}/config.json`),
        ],
        clearEnv: true,
        env: { ...env, PATH: `${dir}/bin:${env.PATH ?? "/usr/bin:/bin"}` },
      }).output();
      return { code: output.code, stderr: new TextDecoder().decode(output.stderr) };
    };
    const shipped = await check(new URL("signal-fish.env", DEPLOY).pathname);
    equal(shipped.code, 0, shipped.stderr);
    const misspelled = await check(typo);
    equal(misspelled.code, 2, misspelled.stderr);
    ok(misspelled.stderr.includes("SIGNAL_FISH_SERVER__MAX_PLAYER "), misspelled.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("README: the flag table lists exactly the flags of --help, and the precedence list ends with the flags that set keys", () => {
  const usageFlags = [...USAGE.matchAll(/^ {2}(-[\w-]+(?:, -[\w-]+)?)/gm)]
    .flatMap((m) => m[1]!.split(", "));
  const table = /Command-line flags:\n([\s\S]*?)\n\n/.exec(README)?.[1];
  ok(table !== undefined, "the flag table exists");
  const readmeFlags = [...table.matchAll(/`(-[a-zA-Z-]+)/g)].map((m) => m[1]!);
  deepEqual(readmeFlags.sort(), usageFlags.sort());
  // --help's "Precedence: … < --port and --host": both beat the environment in the README too.
  const usageLast = /Precedence: .* < (.*)\.$/m.exec(USAGE)?.[1];
  const overriding = [...(usageLast ?? "").matchAll(/--[a-z-]+/g)].map((m) => m[0]);
  deepEqual(overriding, ["--port", "--host"], "--help's precedence line read");
  const list = /lowest precedence first:\n([\s\S]*?)\n\n/.exec(README)?.[1];
  ok(list !== undefined, "the precedence list exists");
  const last = list.split(/\n(?=\d\. )/).at(-1)!;
  deepEqual([...last.matchAll(/`(--[a-z-]+)/g)].map((m) => m[1]), overriding, last);
});

Deno.test("README: 'Build executables' names every compile target with the file-name suffix the VPS guide installs", () => {
  const build = section(README, "### Build executables");
  for (const [target, suffix] of Object.entries(TARGETS)) {
    ok(build.includes(`\`${target}\` (\`${suffix}\`)`), `${target} (${suffix}) in:\n${build}`);
  }
  const installed = /dist\/signal-fish-server-\*-(\S+) \/usr\/local\/bin/.exec(README)?.[1];
  equal(installed, TARGETS["x86_64-unknown-linux-gnu"], "the VPS guide installs the x86_64 build");
});

Deno.test("README: the families with labels are those docs/spec/SERVER.md §6.2 allows labels on", () => {
  const server = Deno.readTextFileSync(new URL("../docs/spec/SERVER.md", import.meta.url));
  const rule = /no labels except histogram `le`,([\s\S]*?)\(each from a fixed set/.exec(server)
    ?.[1];
  ok(rule !== undefined, "§6.2's label rule found");
  const numbers = [...rule.matchAll(/#(\d+)/g)].map((m) => m[1]!);
  ok(numbers.length >= 3, `families of the rule: ${numbers}`);
  const names = numbers.map((n) =>
    new RegExp(`^\\| ${n} \\| \`([a-z_]+)\``, "m").exec(server)?.[1]
  );
  const sentence = /Prometheus families \(per instance; no labels except([\s\S]*?)\):/.exec(README)
    ?.[1];
  ok(sentence !== undefined, "README's label sentence found");
  deepEqual(names.filter((name) => name === undefined || !sentence.includes(`\`${name}\``)), []);
});

Deno.test("deploy/: nginx, Caddy and Prometheus reach the port of signal-fish.env on an address it trusts, and the proxies outlast the idle timeout", () => {
  const read = (file: string) => Deno.readTextFileSync(new URL(file, DEPLOY));
  const env = read("signal-fish.env");
  const port = /^SIGNAL_FISH_PORT=(\d+)$/m.exec(env)?.[1];
  const trusted = /^SIGNAL_FISH_SECURITY__TRUSTED_PROXIES=(.*)$/m.exec(env)?.[1]?.split(",");
  ok(port !== undefined && trusted !== undefined, "signal-fish.env sets the port and the proxies");
  const nginx = read("nginx.conf");
  const upstreams = [...nginx.matchAll(/^\s*server (\S+):(\d+);/gm)];
  ok(upstreams.length > 0, "nginx upstream servers read");
  const caddy = /reverse_proxy (\S+):(\d+)/.exec(read("Caddyfile"));
  ok(caddy !== null, "Caddy's reverse_proxy read");
  const targets = /targets: \["([^"]+):(\d+)"\]/.exec(read("prometheus.yml"));
  ok(targets !== null, "Prometheus's target read");
  for (const [, host, proxyPort] of [...upstreams, caddy, targets]) {
    equal(proxyPort, port, `${host}:${proxyPort} is the server's port`);
  }
  for (const [, host] of [...upstreams, caddy]) {
    ok(trusted.includes(host!), `${host} is in security.trusted_proxies (${trusted})`);
  }
  // The server pings an idle WebSocket at half of server.ping_timeout; a proxy timeout shorter
  // than that would cut idle players off before the server decides.
  const ping = DEFAULT_CONFIG.server.ping_timeout;
  for (const m of nginx.matchAll(/proxy_(?:read|send)_timeout (\d+)s;/g)) {
    ok(Number(m[1]) > ping, `nginx ${m[0]} outlasts server.ping_timeout (${ping} s)`);
  }
  const tunnel = /timeout tunnel (\d+)s/.exec(README)?.[1];
  ok(tunnel !== undefined && Number(tunnel) > ping, `HAProxy's timeout tunnel ${tunnel} s`);
});

Deno.test("README: the VPS guide gets the certificate deploy/nginx.conf names before it enables the site", () => {
  const nginx = Deno.readTextFileSync(new URL("nginx.conf", DEPLOY));
  const certificate = /^\s*ssl_certificate\s+(\S+);/m.exec(nginx)?.[1];
  ok(certificate?.startsWith("/etc/letsencrypt/live/"), `nginx.conf's certificate: ${certificate}`);
  const vps = section(README, "## Run on a VPS");
  const block = /\*\*5\. Reverse proxy\.\*\*[\s\S]*?```sh\n([\s\S]*?)```/.exec(vps)?.[1];
  ok(block !== undefined, "step 5's commands read");
  const lines = block.split("\n");
  const obtain = lines.findIndex((line) => /certbot certonly/.test(line));
  const enable = lines.findIndex((line) => line.includes("/etc/nginx/sites-enabled"));
  const reload = lines.findIndex((line) =>
    /nginx -t|reload nginx/.test(line) && !/certbot/.test(line)
  );
  ok(
    obtain >= 0 && enable > obtain && reload > enable,
    `certificate, then site, then reload:\n${block}`,
  );
});

Deno.test("README: the Prometheus guide says instances sharing a port (the template) cannot be scraped one by one", () => {
  const template = Deno.readTextFileSync(new URL("signal-fish@.service", DEPLOY));
  ok(/^Environment=SIGNAL_FISH_SERVER__REUSE_PORT=true$/m.test(template), "the template shares");
  const guide = section(README, "## Prometheus and Grafana");
  ok(/Instances sharing a port\*\* \(`server\.reuse_port`/.test(guide), guide);
  ok(
    guide.includes("--port 353%i") && template.includes("--port 353%i"),
    "the way out is the same",
  );
});

Deno.test("deploy/signal-fish@.service: each instance has a log file name of its own, and the shared environment file sets none", () => {
  const template = Deno.readTextFileSync(new URL("signal-fish@.service", DEPLOY));
  const env = Deno.readTextFileSync(new URL("signal-fish.env", DEPLOY));
  ok(/^Environment=SIGNAL_FISH_LOGGING__FILENAME=\S*%i\S*$/m.test(template), "per-instance file");
  ok(!/^SIGNAL_FISH_LOGGING__FILENAME=/m.test(env), "signal-fish.env would override it");
  ok(!/^SIGNAL_FISH_SERVER__STATE_FILE=/m.test(env), "nor a shared state file");
});

Deno.test("deploy/: signal-fish.env's connection cap leaves the server's own headroom below both units' LimitNOFILE", () => {
  const env = Deno.readTextFileSync(new URL("signal-fish.env", DEPLOY));
  const cap = Number(/^SIGNAL_FISH_SECURITY__MAX_CONNECTIONS=(\d+)$/m.exec(env)?.[1]);
  for (const unit of UNITS) {
    const text = Deno.readTextFileSync(new URL(unit, DEPLOY));
    const limit = Number(/^LimitNOFILE=(\d+)$/m.exec(text)?.[1]);
    ok(limit > 0, `${unit}: LimitNOFILE read`);
    // What the server would derive itself from that limit (security.max_connections: null).
    equal(cap, limit - fileDescriptorHeadroom(limit), `${unit}: LimitNOFILE=${limit}, cap ${cap}`);
  }
});
