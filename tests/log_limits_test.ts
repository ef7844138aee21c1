/**
 * Log volume and log sink failures through the real entry point (issue 14 item 11, docs/spec/SERVER.md
 * §7.3): a connect flood writes a bounded number of lines per second (the rest summarised), the
 * log files stay under their size cap and retention, and a log sink that fails is warned about
 * and counted while the server keeps serving.
 */
import { equal, match, ok } from "node:assert/strict";
import { TestClient } from "./helpers.ts";
import { spawnServer } from "./process.ts";

const DENO_JSON = new URL("../deno.json", import.meta.url).pathname;
const OPENED = "Connection {connection_id} opened from {client_ip}";

/** The value of an unlabelled Prometheus sample in `text`; undefined when absent. */
function sample(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

async function prometheus(port: number): Promise<string> {
  return await (await fetch(`http://127.0.0.1:${port}/metrics/prom`)).text();
}

/** Opens and closes `count` WebSockets one after another (the attack: connect+close lines). */
async function connectFlood(port: number, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const client = await TestClient.connect(`ws://127.0.0.1:${port}/v2/ws`);
    await client.close();
  }
}

/** Polls `read` until `done(value)` or 5 s pass; returns the last value. */
async function until<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (let i = 0; i < 100 && !done(value); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    value = await read();
  }
  return value;
}

Deno.test("a connect flood logs a bounded number of lines per second; files capped and whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-logflood-" });
  try {
    const flood = 300;
    const perSecond = 5;
    const server = await spawnServer({
      cwd: dir,
      denoFlags: ["--config", DENO_JSON],
      env: {
        SIGNAL_FISH_LOGGING__FORMAT: "json",
        SIGNAL_FISH_LOGGING__ROTATION: "never",
        SIGNAL_FISH_LOGGING__MAX_LINES_PER_EVENT_PER_SECOND: String(perSecond),
        SIGNAL_FISH_LOGGING__MAX_FILE_SIZE_BYTES: "4096",
        SIGNAL_FISH_LOGGING__MAX_FILES: "3",
        SIGNAL_FISH_SECURITY__MAX_CONNECTIONS_PER_IP: "1000",
      },
    });
    try {
      await connectFlood(server.port, flood);
      const text = await prometheus(server.port);
      ok(sample(text, "signal_fish_log_lines_suppressed_total")! > 0, text);
      equal(sample(text, "signal_fish_log_write_failures_total"), 0);
    } finally {
      server.child.kill("SIGTERM"); // a clean stop writes the pending summaries
    }
    equal((await server.exited).code, 0, server.output());
    const lines = server.output().split("\n").filter((l) => l.startsWith("{")).map((l) =>
      JSON.parse(l)
    );
    const opened = lines.filter((l) => /^Connection \S+ opened from /.test(l.message));
    const summaries = lines.filter((l) => l.event === OPENED);
    ok(summaries.length > 0, "no summary line");
    for (const summary of summaries) match(summary.message, /^Suppressed \d+ log lines like: /);
    const suppressed = summaries.reduce((sum, l) => sum + l.suppressed, 0);
    // Every connection is accounted for: written, or counted in a summary.
    equal(opened.length + suppressed, flood);
    // At most `perSecond` lines in each second of the flood.
    const perSecondCounts = new Map<string, number>();
    for (const line of opened) {
      const second = line.timestamp.slice(0, 19);
      perSecondCounts.set(second, (perSecondCounts.get(second) ?? 0) + 1);
    }
    for (const [second, count] of perSecondCounts) ok(count <= perSecond, `${count} in ${second}`);

    // The file logs: at most 3 files of at most 4096 bytes, every line whole JSON.
    const files: string[] = [];
    for await (const entry of Deno.readDir(`${dir}/logs`)) files.push(entry.name);
    ok(files.length >= 1 && files.length <= 3, String(files));
    for (const name of files) {
      const bytes = await Deno.readFile(`${dir}/logs/${name}`);
      ok(bytes.length <= 4096, `${name}: ${bytes.length} bytes`);
      const content = new TextDecoder().decode(bytes);
      ok(content.endsWith("\n"), name);
      for (const line of content.trimEnd().split("\n")) JSON.parse(line);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a log file on a full disk: one warning, a metric, and the server keeps serving", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-logfull-" });
  try {
    await Deno.mkdir(`${dir}/logs`);
    await Deno.symlink("/dev/full", `${dir}/logs/server.log`); // every write: ENOSPC
    await using server = await spawnServer({
      cwd: dir,
      denoFlags: ["--config", DENO_JSON],
      permissions: ["--allow-all"],
      env: { SIGNAL_FISH_LOGGING__FORMAT: "json", SIGNAL_FISH_LOGGING__ROTATION: "never" },
    });
    const failures = await until(
      async () => sample(await prometheus(server.port), "signal_fish_log_write_failures_total"),
      (value) => value !== undefined && value > 0,
    );
    ok(failures! > 0, `signal_fish_log_write_failures_total ${failures}`);
    // More lines keep failing; the server still serves.
    await connectFlood(server.port, 5);
    await using client = await TestClient.connect(`ws://127.0.0.1:${server.port}/v2/ws`);
    client.send({ type: "Ping" });
    await client.next("Pong");
    const text = await until(
      () => prometheus(server.port),
      (t) => sample(t, "signal_fish_log_lines_dropped_total")! > 5,
    );
    ok(sample(text, "signal_fish_log_lines_dropped_total")! > 5, text);
    const warnings = server.output().split("\n").filter((l) =>
      l.includes('"level":"WARN"') && l.includes("Cannot write the log file")
    );
    equal(warnings.length, 1, server.output());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a log directory the server may not write: warning, metric, stdout only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-logro-" });
  try {
    // The baked-in permissions allow writes to ./logs only: another directory is read-only.
    await using server = await spawnServer({
      cwd: dir,
      denoFlags: ["--config", DENO_JSON],
      env: {
        SIGNAL_FISH_LOGGING__FORMAT: "json",
        SIGNAL_FISH_LOGGING__DIR: `${dir}/elsewhere`,
      },
    });
    match(server.output(), /Warning: cannot create the log directory/);
    equal(sample(await prometheus(server.port), "signal_fish_log_write_failures_total"), 1);
    await using client = await TestClient.connect(`ws://127.0.0.1:${server.port}/v2/ws`);
    client.send({ type: "Ping" });
    await client.next("Pong");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
