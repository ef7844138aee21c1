import { equal, ok, rejects } from "node:assert/strict";
import { OneAtATime, then } from "./awaitable.ts";

Deno.test("then() applies at once to a value and after resolution to a Promise", async () => {
  const now = then(2, (n) => n * 3);
  equal(now, 6, "no Promise when the seat answered synchronously");
  const later = then(Promise.resolve(2), (n) => n * 3);
  ok(later instanceof Promise);
  equal(await later, 6);
});

Deno.test("OneAtATime: tasks of one key run one after another, other keys at once; values stay values", async () => {
  const queue = new OneAtATime();
  const log: string[] = [];
  const step = (name: string, ms: number) => async () => {
    log.push(`${name} start`);
    await new Promise((resolve) => setTimeout(resolve, ms));
    log.push(`${name} end`);
    if (name === "a1") throw new Error("a1 fails");
    return name;
  };
  const a1 = queue.run("a", step("a1", 20));
  const a2 = queue.run("a", step("a2", 1));
  const b1 = queue.run("b", step("b1", 1));
  equal(queue.size, 2);
  await rejects(Promise.resolve(a1), /a1 fails/);
  equal(await a2, "a2");
  equal(await b1, "b1");
  // a2 waited for a1 (which failed), b1 did not.
  ok(log.indexOf("a2 start") > log.indexOf("a1 end"));
  ok(log.indexOf("b1 start") < log.indexOf("a1 end"));
  await new Promise((resolve) => setTimeout(resolve, 0));
  equal(queue.size, 0);
  // A synchronous task of a free key answers synchronously.
  equal(queue.run("c", () => 42), 42);
  equal(queue.size, 0);
});
