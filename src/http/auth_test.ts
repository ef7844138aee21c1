import { equal } from "node:assert/strict";
import { bearerMatches, isBearerCredential } from "./auth.ts";

Deno.test("bearerMatches() wants the exact 'Bearer ' prefix and the exact token", () => {
  const token = "s3cret-token";
  equal(bearerMatches(`Bearer ${token}`, token), true);
  for (
    const header of [
      null,
      "",
      token,
      `bearer ${token}`,
      `Bearer  ${token}`,
      `Bearer ${token} `,
      `Bearer ${token}x`,
      `Bearer ${token.slice(1)}`,
      `Bearer ${token}\u00e9`,
      `Basic ${token}`,
    ]
  ) {
    equal(bearerMatches(header, token), false, String(header));
  }
});

Deno.test("isBearerCredential() is true only for the form bearerMatches() can accept", () => {
  for (const header of ["Bearer x", "Bearer ", "Bearer  x", "Bearer \u00e9"]) {
    equal(isBearerCredential(header), true, header);
  }
  for (const header of [null, "", "bearer x", "Basic eDp5", "Bearer", "x Bearer y"]) {
    equal(isBearerCredential(header), false, String(header));
  }
});
