import { equal } from "node:assert/strict";
import { checkGameName, checkPlayerName, checkRoomCode, DEFAULT_NAME_RULES } from "./validation.ts";

Deno.test("checkGameName() allows Unicode letters, digits, '-', '_' and spaces within 64 bytes", () => {
  equal(checkGameName("orbit-racers_2", 64), undefined);
  equal(checkGameName(" spaced out ", 64), undefined);
  equal(checkGameName("宇宙", 64), undefined);
  equal(checkGameName("", 64), "Game name cannot be empty");
  equal(checkGameName("é".repeat(33), 64), "Game name too long (max 64 characters)");
  equal(checkGameName("a.b", 64), "Game name contains invalid characters");
  equal(checkGameName("tab\there", 64), "Game name contains invalid characters");
});

Deno.test("checkPlayerName() applies the docs/spec/PROTOCOL.md §8.2 rules in order", () => {
  const check = (name: string) => checkPlayerName(name, DEFAULT_NAME_RULES);
  equal(check("Mira"), undefined);
  equal(check("Caster Jun"), undefined);
  equal(check("ナナ-_7"), undefined);
  equal(check(""), "Player name cannot be empty");
  equal(check("x".repeat(33)), "Player name too long (max 32 characters)");
  equal(check("日本語日本語日本語日本語"), "Player name too long (max 32 characters)"); // 36 bytes
  equal(check("   "), "Player name cannot be blank");
  equal(check(" Mira"), "Player name cannot have leading or trailing whitespace");
  equal(check("Mira\u00a0"), "Player name cannot have leading or trailing whitespace");
  equal(check("Mi\tra"), "Player name cannot contain whitespace characters");
  equal(check("Mi\u00a0ra"), "Player name cannot contain whitespace characters");
  equal(check("Mira!"), "Player name contains invalid characters");
  equal(check("zero\u200bwidth"), "Player name contains invalid characters");
  equal(check("\ufeffbom"), "Player name contains invalid characters"); // U+FEFF is not White_Space
});

Deno.test("checkPlayerName() honours the configurable rules", () => {
  equal(
    checkPlayerName("a b", { ...DEFAULT_NAME_RULES, allowSpaces: false }),
    "Player name cannot contain spaces",
  );
  equal(
    checkPlayerName("ñ", { ...DEFAULT_NAME_RULES, allowUnicodeAlphanumeric: false }),
    "Player name contains invalid characters",
  );
  equal(
    checkPlayerName("a.b", { ...DEFAULT_NAME_RULES, additionalAllowedCharacters: "." }),
    undefined,
  );
  equal(
    checkPlayerName(" a ", { ...DEFAULT_NAME_RULES, allowLeadingTrailingWhitespace: true }),
    undefined,
  );
});

Deno.test("checkRoomCode() requires exactly the configured number of ASCII letters and digits", () => {
  equal(checkRoomCode("q7km3p", 6), undefined);
  equal(checkRoomCode("", 6), "Room code cannot be empty");
  equal(checkRoomCode("ABCDE", 6), "Room code must be exactly 6 characters");
  equal(checkRoomCode("ABCDÉ", 6), "Room code must be alphanumeric"); // 6 bytes, not ASCII
  equal(checkRoomCode("AB CD1", 6), "Room code must be alphanumeric");
});

Deno.test("§8 limits are inclusive and counted in UTF-8 bytes: exactly at the limit passes, one byte over fails", () => {
  equal(checkGameName("g".repeat(64), 64), undefined);
  equal(checkGameName("g".repeat(65), 64), "Game name too long (max 64 characters)");
  equal(checkGameName("é".repeat(32), 64), undefined);
  const check = (name: string) => checkPlayerName(name, DEFAULT_NAME_RULES);
  equal(check("x".repeat(32)), undefined);
  equal(check("é".repeat(16)), undefined);
  equal(check("日本語日本語日本語日"), undefined); // 10 CJK characters: 30 bytes
  equal(check("é".repeat(16) + "x"), "Player name too long (max 32 characters)");
  equal(checkPlayerName("x".repeat(40), { ...DEFAULT_NAME_RULES, maxLength: 40 }), undefined);
  equal(checkRoomCode("ABCDEFG", 6), "Room code must be exactly 6 characters");
  equal(checkRoomCode("0O1I9z", 6), undefined);
  equal(checkRoomCode("ABCD", 4), undefined);
});
