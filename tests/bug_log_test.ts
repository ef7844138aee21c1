/**
 * What an operator reads when the server meets a bug (docs/spec/SERVER.md §7.4; SECURITY.md
 * "Logging"): the ERROR line names the error and carries its `stack`, deep enough to find the
 * frame that threw, and the server keeps serving. The bug is made on purpose: the edge is made to
 * throw for one marked frame, and the process guard is handed an error no handler caught.
 */
import { equal, ok } from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { Edge } from "../src/transport/edge.ts";
import { formatJsonLine, MAX_LOG_VALUE_CHARS } from "../src/logging.ts";
import { connect, serve } from "./helpers.ts";
import { inProcessOnly } from "./cluster_serve.ts";

/** The ERROR lines of category `signal-fish`, as the JSON format writes them, while it lives. */
async function errorLines(): Promise<Record<string, unknown>[] & AsyncDisposable> {
  const lines: Record<string, unknown>[] = [];
  await configure({
    sinks: {
      capture: (record: LogRecord) => {
        if (record.level === "error") lines.push(JSON.parse(formatJsonLine(record)));
      },
    },
    loggers: [
      { category: ["signal-fish"], lowestLevel: "error", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
    reset: true,
  });
  return Object.assign(lines, { [Symbol.asyncDispose]: () => reset() });
}

/** Waits (at most 5 s) for a line whose message starts with `prefix`. */
async function lineStarting(
  lines: Record<string, unknown>[],
  prefix: string,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const line = lines.find((l) => String(l.message).startsWith(prefix));
    if (line) return line;
    if (Date.now() > deadline) {
      throw new Error(`no ERROR line "${prefix}…": ${JSON.stringify(lines)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Four nested calls, so that the frame that threw sits past the stack's first characters. */
function explodeDeep(depth: number): never {
  if (depth === 0) throw new TypeError("a planted bug: cannot read 'seat' of undefined");
  return explodeDeep(depth - 1);
}

Deno.test({
  name:
    "A frame whose handling throws: close 1011 for that client, an ERROR line with the stack, others served",
  ignore: inProcessOnly("patches the edge of the server in this process"),
  fn: async () => {
    await using lines = await errorLines();
    const receive = Edge.prototype.receive;
    Edge.prototype.receive = function (id, frame, now) {
      if (typeof frame === "string" && frame.includes("plant-a-bug")) explodeDeep(6);
      return receive.call(this, id, frame, now);
    };
    try {
      await using server = await serve();
      const victim = await connect(server);
      const bystander = await connect(server);
      victim.send({ type: "Ping", data: { note: "plant-a-bug" } });
      equal((await victim.closed).code, 1011);
      const line = await lineStarting(lines, "Cannot handle a frame from ");
      ok(String(line.error).startsWith("TypeError: a planted bug"), String(line.error));
      const stack = String(line.stack);
      ok(stack.length > MAX_LOG_VALUE_CHARS, `a stack of ${stack.length} characters`);
      // The caller of the throwing frame and the edge's patched entry are both on the line.
      ok(stack.split("explodeDeep").length - 1 >= 5, stack);
      ok(/Edge\.receive|receive/.test(stack.slice(MAX_LOG_VALUE_CHARS)), stack);
      // Another connection is still served.
      bystander.send({ type: "Ping" });
      equal((await bystander.next("Pong")).type, "Pong");
      await bystander.close();
    } finally {
      Edge.prototype.receive = receive;
    }
  },
});

Deno.test({
  name: "An error no handler caught: the process guard logs it with its stack and keeps serving",
  ignore: inProcessOnly("dispatches the error in the server's own process"),
  fn: async () => {
    await using lines = await errorLines();
    await using server = await serve();
    let error: Error | undefined;
    try {
      explodeDeep(8);
    } catch (caught) {
      error = caught as Error;
    }
    globalThis.dispatchEvent(new ErrorEvent("error", { error, message: error!.message }));
    const line = await lineStarting(lines, "Uncaught error, still serving: ");
    equal(line.stack, error!.stack);
    ok(String(line.stack).length > MAX_LOG_VALUE_CHARS);
    const client = await connect(server);
    client.send({ type: "Ping" });
    equal((await client.next("Pong")).type, "Pong");
    await client.close();
  },
});
