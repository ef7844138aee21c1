/**
 * Name and code rules of docs/spec/PROTOCOL.md §8. Pure functions: each returns `undefined` when the value
 * is valid, or the exact wire reason of the first rule it breaks.
 *
 * @module
 */
import { utf8Length } from "../protocol/utf8.ts";

/** Player-name rules (docs/spec/PROTOCOL.md §8.2, `protocol.player_name_validation`). */
export interface NameRules {
  /** Longest name in UTF-8 bytes. @default 32 */
  maxLength: number;
  /** Unicode letters and digits allowed; otherwise ASCII only. @default true */
  allowUnicodeAlphanumeric: boolean;
  /** Internal U+0020 allowed. @default true */
  allowSpaces: boolean;
  /** @default false */
  allowLeadingTrailingWhitespace: boolean;
  /** Single characters allowed besides letters and digits. @default ["-", "_"] */
  allowedSymbols: readonly string[];
  /** Each character of this string is allowed too. @default undefined */
  additionalAllowedCharacters?: string;
}

/** The defaults of `protocol.player_name_validation` and `max_player_name_length`. */
export const DEFAULT_NAME_RULES: NameRules = {
  maxLength: 32,
  allowUnicodeAlphanumeric: true,
  allowSpaces: true,
  allowLeadingTrailingWhitespace: false,
  allowedSymbols: ["-", "_"],
};

const ALPHANUMERIC = /^[\p{Alphabetic}\p{Nd}\p{Nl}\p{No}]$/u;
const ASCII_ALPHANUMERIC = /^[A-Za-z0-9]$/;
const WHITE_SPACE = /^\p{White_Space}$/u;
const LEADING_OR_TRAILING_WHITE_SPACE = /^\p{White_Space}|\p{White_Space}$/u;
const ONLY_WHITE_SPACE = /^\p{White_Space}+$/u;

/** Checks a `game_name` (docs/spec/PROTOCOL.md §8.1). */
export function checkGameName(name: string, maxLength: number): string | undefined {
  if (name.length === 0) return "Game name cannot be empty";
  if (utf8Length(name) > maxLength) return `Game name too long (max ${maxLength} characters)`;
  for (const char of name) {
    if (char !== " " && char !== "-" && char !== "_" && !ALPHANUMERIC.test(char)) {
      return "Game name contains invalid characters";
    }
  }
  return undefined;
}

/** Checks a `player_name` or `spectator_name` (docs/spec/PROTOCOL.md §8.2). */
export function checkPlayerName(name: string, rules: NameRules): string | undefined {
  if (name.length === 0) return "Player name cannot be empty";
  if (utf8Length(name) > rules.maxLength) {
    return `Player name too long (max ${rules.maxLength} characters)`;
  }
  if (ONLY_WHITE_SPACE.test(name)) return "Player name cannot be blank";
  if (!rules.allowLeadingTrailingWhitespace && LEADING_OR_TRAILING_WHITE_SPACE.test(name)) {
    return "Player name cannot have leading or trailing whitespace";
  }
  const alphanumeric = rules.allowUnicodeAlphanumeric ? ALPHANUMERIC : ASCII_ALPHANUMERIC;
  for (const char of name) {
    if (char === " ") {
      if (rules.allowSpaces) continue;
      return "Player name cannot contain spaces";
    }
    if (WHITE_SPACE.test(char)) return "Player name cannot contain whitespace characters";
    if (
      !alphanumeric.test(char) && !rules.allowedSymbols.includes(char) &&
      !rules.additionalAllowedCharacters?.includes(char)
    ) {
      return "Player name contains invalid characters";
    }
  }
  return undefined;
}

/** Checks a client-supplied `room_code` (docs/spec/PROTOCOL.md §8.3); valid codes are then upper-cased. */
export function checkRoomCode(code: string, length: number): string | undefined {
  if (code.length === 0) return "Room code cannot be empty";
  if (utf8Length(code) !== length) return `Room code must be exactly ${length} characters`;
  if (!/^[A-Za-z0-9]+$/.test(code)) return "Room code must be alphanumeric";
  return undefined;
}

/** Unicode lower-casing used for the case-insensitive name uniqueness check (docs/spec/PROTOCOL.md §8.2). */
export function nameKey(name: string): string {
  return name.toLowerCase();
}
