import { deepEqual, equal } from "node:assert/strict";
import { LINK_WARNING_INTERVAL_MS, linkErrorText, LinkReport } from "./link_report.ts";

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
