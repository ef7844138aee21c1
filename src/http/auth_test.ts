import { equal } from "node:assert/strict";
import { bearerMatches } from "./auth.ts";

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
