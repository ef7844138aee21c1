import { deepEqual, equal, ok } from "node:assert/strict";
import {
  isMemoryRefusal,
  LINK_WARNING_INTERVAL_MS,
  linkErrorText,
  LinkReport,
  refusalReason,
  RefusalReport,
  refusesEveryWrite,
  reportMemoryPolicy,
} from "./link_report.ts";

/** A report on a fake clock, and the lines it wrote above debug (`level message` with fields). */
function reporting() {
  let now = 1_000_000;
  const lines: string[] = [];
  const write = (level: string) => (message: string, fields: Record<string, unknown>) => {
    if (level !== "debug") lines.push(`${level} ${message} ${JSON.stringify(fields)}`);
  };
  const report = new LinkReport(
    { debug: write("debug"), info: write("info"), warn: write("warn") },
    { node: "a@1" },
    () => now,
  );
  return { report, lines, advance: (ms: number) => now += ms };
}

Deno.test("LinkReport warns at once when Redis cannot be reached, then at most every 30 s, and logs its return", () => {
  const { report, lines, advance } = reporting();
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6379"), {
    code: "ECONNREFUSED",
  });
  report.error(refused);
  report.error(refused);
  advance(LINK_WARNING_INTERVAL_MS - 1);
  report.error(refused);
  deepEqual(lines, [
    'warn Redis link down: {error}; retrying {"node":"a@1","error":"connect ECONNREFUSED 127.0.0.1:6379"}',
  ]);
  advance(1);
  report.error(new Error("WRONGPASS invalid username-password pair or user is disabled."));
  equal(
    lines[1],
    'warn Redis link still down after {seconds} s: {error}; retrying {"node":"a@1","error":"WRONGPASS invalid username-password pair or user is disabled.","seconds":30}',
  );
  advance(15_000);
  report.state("up");
  equal(
    lines[2],
    'info Redis link up again after {seconds} s {"node":"a@1","state":"up","seconds":45}',
  );
  equal(lines.length, 3);
});

Deno.test("LinkReport warns when a link that was up goes down, with the error that came with it", () => {
  const { report, lines, advance } = reporting();
  report.state("up");
  deepEqual(lines, ['info Redis link {state} {"node":"a@1","state":"up"}']);
  // The client reports the error, then the state change; errors while up are not warned about.
  report.error(new Error("Socket closed unexpectedly"));
  equal(lines.length, 1);
  report.state("down");
  equal(
    lines[1],
    'warn Redis link down: {error}; retrying {"node":"a@1","error":"Socket closed unexpectedly"}',
  );
  advance(2_000);
  report.state("up");
  equal(
    lines[2],
    'info Redis link up again after {seconds} s {"node":"a@1","state":"up","seconds":2}',
  );
  // A flap within 30 s of the last warning is an info line, as before.
  advance(1_000);
  report.state("down");
  report.state("up");
  deepEqual(lines.slice(3), [
    'info Redis link {state} {"node":"a@1","state":"down"}',
    'info Redis link {state} {"node":"a@1","state":"up"}',
  ]);
  // Without an error: "connection lost".
  advance(LINK_WARNING_INTERVAL_MS);
  report.state("down");
  equal(
    lines[5],
    'warn Redis link down: {error}; retrying {"node":"a@1","error":"connection lost"}',
  );
});

Deno.test("linkErrorText() gives the message, else the code or class, never a URL's credentials", () => {
  equal(
    linkErrorText(new Error("connect ECONNREFUSED 127.0.0.1:6379")),
    "connect ECONNREFUSED 127.0.0.1:6379",
  );
  equal(linkErrorText(Object.assign(new Error(""), { code: "ECONNRESET" })), "ECONNRESET");
  equal(linkErrorText(new AggregateError([], "")), "AggregateError");
  equal(linkErrorText("plain"), "plain");
  equal(
    linkErrorText(new Error("cannot parse redis://user:hunter2@cache:6379/0 and rediss://pw@x")),
    "cannot parse redis://<redacted>@cache:6379/0 and rediss://<redacted>@x",
  );
});

/** A memory report on a fake clock, and every line it wrote (`level message` with fields). */
function memoryReporting() {
  let now = 1_000_000;
  const lines: string[] = [];
  const write = (level: string) => (message: string, fields: Record<string, unknown>) => {
    lines.push(`${level} ${message} ${JSON.stringify(fields)}`);
  };
  const log = { debug: write("debug"), info: write("info"), warn: write("warn") };
  const report = new RefusalReport(log, { node: "a@1" }, () => now);
  return { report, lines, log, advance: (ms: number) => now += ms };
}

const OOM = "OOM command not allowed when used memory > 'maxmemory'.";

Deno.test("isMemoryRefusal: Redis's OOM error replies, plain or from a script, and nothing else", () => {
  equal(isMemoryRefusal(new Error(OOM)), true);
  equal(isMemoryRefusal(new Error(`${OOM} script: f9d8f0e2, on @user_script:21.`)), true);
  equal(isMemoryRefusal(new Error("NOSCRIPT No matching script.")), false);
  equal(isMemoryRefusal(new Error("ERR unknown command 'CONFIG'")), false);
  equal(isMemoryRefusal(undefined), false);
});

Deno.test("MemoryReport warns at the first OOM refusal with what to do, then at most every 30 s, counts each, and logs when writes are accepted again", () => {
  const { report, lines, advance } = memoryReporting();
  report.accepted(); // nothing refused: nothing to say
  equal(lines.length, 0);
  report.refused(new Error(`${OOM} script: f9d8f0e2, on @user_script:21.`));
  report.refused(new Error(OOM));
  advance(LINK_WARNING_INTERVAL_MS - 1);
  report.refused(new Error(OOM));
  const warnings = () => lines.filter((line) => line.startsWith("warn "));
  equal(warnings().length, 1, lines.join("\n"));
  const warning = warnings()[0]!;
  for (
    const part of [
      "Redis refuses writes for memory ({error})",
      "maxmemory is reached under noeviction",
      "SERVICE_UNAVAILABLE",
      "Raise maxmemory",
      `"error":"OOM command not allowed when used memory > 'maxmemory'"`,
      '"refusals":1',
    ]
  ) ok(warning.includes(part), `${part} in ${warning}`);
  equal(report.refusals, 3);
  equal(report.refusing(), true);
  advance(1);
  report.refused(new Error(OOM));
  equal(warnings().length, 2);
  ok(warnings()[1]!.includes('"refusals":4,"seconds":30'), warnings()[1]);
  advance(5_000);
  report.accepted();
  equal(report.refusing(), false);
  equal(
    lines.at(-1),
    'info Redis accepts writes again after {seconds} s of refusals for memory {"node":"a@1","reason":"oom","seconds":35}',
  );
  report.accepted(); // once per run of refusals
  equal(lines.filter((line) => line.startsWith("info ")).length, 1);
  // A new run of refusals is warned about at once.
  report.refused(new Error(OOM));
  equal(warnings().length, 3);
});

Deno.test("reportMemoryPolicy: a warning for an evicting policy, a debug line for noeviction or an unknown policy", () => {
  const { lines, log } = memoryReporting();
  reportMemoryPolicy(log, "noeviction", { node: "a@1" });
  reportMemoryPolicy(log, undefined, { node: "a@1" });
  deepEqual(lines.map((line) => line.split(" ")[0]), ["debug", "debug"]);
  reportMemoryPolicy(log, "allkeys-lru", { node: "a@1" });
  equal(
    lines.at(-1),
    "warn Redis maxmemory-policy is {policy}: Redis may evict the room directory's keys at its " +
      "memory limit, letting a second room take a live room's code. Set maxmemory-policy " +
      'noeviction on this Redis {"node":"a@1","policy":"allkeys-lru"}',
  );
});

const MISCONF =
  "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";
const READONLY = "READONLY You can't write against a read only replica.";

Deno.test("refusalReason / refusesEveryWrite: OOM, MISCONF and READONLY error replies, plain or from a script; nothing else", () => {
  equal(refusalReason(new Error(OOM)), "oom");
  equal(refusalReason(new Error(`${MISCONF} script: 81831b00, on @user_script:1.`)), "misconf");
  equal(refusalReason(new Error(READONLY)), "readonly");
  equal(refusalReason(new Error("LOADING Redis is loading the dataset in memory")), undefined);
  equal(refusalReason(new Error("The client is offline")), undefined);
  equal(refusesEveryWrite(new Error(MISCONF)), true);
  equal(refusesEveryWrite(new Error(READONLY)), true);
  equal(refusesEveryWrite(new Error(OOM)), false);
});

Deno.test("RefusalReport: a warning per reason naming the cause and the fix, each rate-limited on its own, counted by reason; a liveness write ends MISCONF and READONLY runs but not OOM's", () => {
  const { report, lines, advance } = memoryReporting();
  const counted: string[] = [];
  report.counter = { inc: (values) => counted.push(values.join()) };
  report.refused(new Error(`${MISCONF} script: 81831b00, on @user_script:1.`));
  report.refused(new Error(READONLY));
  report.refused(new Error(OOM));
  report.refused(new Error(MISCONF));
  report.refused(new Error("ERR something else"));
  const warnings = lines.filter((line) => line.startsWith("warn "));
  equal(warnings.length, 3, lines.join("\n"));
  ok(warnings[0]!.includes("Free disk space or fix the save directory"), warnings[0]);
  ok(
    warnings[0]!.includes(
      `"error":"MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk"`,
    ),
    warnings[0],
  );
  ok(
    warnings[1]!.includes("Point cluster.redis_url at the primary, or use cluster.redis_sentinels"),
  );
  ok(warnings[1]!.includes("Reconnecting both connections"), warnings[1]);
  deepEqual(counted, ["misconf", "readonly", "oom", "misconf"]);
  deepEqual(report.counts, { oom: 1, misconf: 2, readonly: 1 });
  advance(2_000);
  report.accepted(false); // the liveness script: Redis is still full
  equal(report.refusing("misconf"), false);
  equal(report.refusing("readonly"), false);
  equal(report.refusing("oom"), true);
  const infos = lines.filter((line) => line.startsWith("info "));
  deepEqual(infos.map((line) => line.replace(/ {"node".*/, "")), [
    "info Redis accepts writes again after {seconds} s of refusals after a failed background save (MISCONF)",
    "info Redis accepts writes again after {seconds} s of refusals by a read-only replica (READONLY)",
  ]);
});

Deno.test("LinkReport: a link the server closed is one info line, never a warning", () => {
  const lines: string[] = [];
  const log = {
    debug: (m: string, p: Record<string, unknown>) => lines.push(`debug ${m} ${JSON.stringify(p)}`),
    info: (m: string, p: Record<string, unknown>) => lines.push(`info ${m} ${JSON.stringify(p)}`),
    warn: (m: string, p: Record<string, unknown>) => lines.push(`warn ${m} ${JSON.stringify(p)}`),
  };
  const report = new LinkReport(log, { node: "a@1" });
  report.state("up");
  report.closed();
  report.error(new Error("Socket closed unexpectedly"));
  report.closed();
  deepEqual(lines, [
    'info Redis link {state} {"node":"a@1","state":"up"}',
    'info Redis link closed {"node":"a@1"}',
    'debug Redis connection error: {error} {"node":"a@1","error":"Socket closed unexpectedly"}',
  ]);
});
