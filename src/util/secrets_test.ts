import { deepEqual, equal, match } from "node:assert/strict";
import { randomToken, secretEquals, sha256 } from "./secrets.ts";

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

Deno.test("randomToken() gives distinct 43-character base64url tokens across pool refills", () => {
  const seen = new Set<string>();
  // 1,000 tokens: the 4 KiB pool is refilled seven times.
  for (let i = 0; i < 1000; i++) {
    const token = randomToken();
    match(token, /^[A-Za-z0-9_-]{43}$/);
    seen.add(token);
  }
  equal(seen.size, 1000);
  // 32 random bytes each: every base64url character shows up somewhere in 43,000 of them.
  equal(new Set([...seen].join("")).size, 64);
});
