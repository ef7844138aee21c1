import { equal, ok } from "node:assert/strict";
import { then } from "./awaitable.ts";

Deno.test("then() applies at once to a value and after resolution to a Promise", async () => {
  const now = then(2, (n) => n * 3);
  equal(now, 6, "no Promise when the seat answered synchronously");
  const later = then(Promise.resolve(2), (n) => n * 3);
  ok(later instanceof Promise);
  equal(await later, 6);
});
