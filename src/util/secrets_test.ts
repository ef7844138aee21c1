import { deepEqual, equal } from "node:assert/strict";
import { secretEquals, sha256 } from "./secrets.ts";

Deno.test("secretEquals() is true only for the same string, whatever the lengths", () => {
  equal(secretEquals("s3cret", "s3cret"), true);
  equal(secretEquals("s3cret", "s3creT"), false);
  equal(secretEquals("s3cret", "s3cret-longer"), false);
  equal(secretEquals("", ""), true);
  equal(secretEquals("é", "e"), false);
});

Deno.test("sha256() hashes the UTF-8 bytes (known vector)", () => {
  const hex = Array.from(sha256("abc"), (b) => b.toString(16).padStart(2, "0")).join("");
  deepEqual(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
});
