import { equal, match, throws } from "node:assert/strict";
import { ROOM_CODE_ALPHABET, roomCodeGenerator } from "./room_code.ts";

Deno.test("roomCodeGenerator() draws from the 32-character alphabet after the prefix", () => {
  let next = 0;
  const generate = roomCodeGenerator(
    6,
    " eu ",
    (count) => Uint8Array.from({ length: count }, () => next++),
  );
  equal(generate(), "EU2345");
  equal(generate(), "EU6789");
  const random = roomCodeGenerator(8, null);
  for (let i = 0; i < 100; i++) match(random(), /^[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{8}$/);
  equal(ROOM_CODE_ALPHABET.length, 32);
});

Deno.test("roomCodeGenerator() rejects a prefix that is not alphanumeric or too long", () => {
  throws(() => roomCodeGenerator(6, "AB-"), RangeError);
  throws(() => roomCodeGenerator(6, "ABCDEF"), RangeError);
});
