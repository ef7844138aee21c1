import { equal } from "node:assert/strict";
import { utf8Length } from "./utf8.ts";

Deno.test("utf8Length() counts bytes, not characters", () => {
  equal(utf8Length("abc"), 3);
  equal(utf8Length("é"), 2);
  equal(utf8Length("日"), 3);
  equal(utf8Length("😀"), 4);
});
