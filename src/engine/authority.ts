/**
 * Authority (docs/spec/PROTOCOL.md §7.5): who holds a room's authority, requests to claim or release it, and
 * the handover when its holder's seat is released (docs/spec/EXTENSIONS.md E11). Pure functions over a
 * {@linkcode Room}; the home's room logic (`rooms.ts`) calls them.
 *
 * @module
 */
import type { ErrorCode } from "../protocol/error_codes.ts";
import { type Effect, error, send } from "./effects.ts";
import type { Room } from "./room.ts";
import type { Session } from "./sessions.ts";

/**
 * `AuthorityRequest` from `session` (`claim` = `become_authority`): answered exactly once with
 * `AuthorityResponse`, followed by `AuthorityChanged` to every member when the holder changes.
 * Spectators get `Error{SPECTATOR_NOT_ALLOWED}` instead (docs/spec/PROTOCOL.md §7.5).
 */
export function authorityRequest(session: Session, claim: boolean, now: number): Effect[] {
  const id = session.playerId;
  if (session.watching) {
    return [error(id, "Spectators cannot request authority", "SPECTATOR_NOT_ALLOWED")];
  }
  const room = session.playing;
  const deny = (reason: string, code: ErrorCode): Effect =>
    send(id, {
      type: "AuthorityResponse",
      data: { granted: false, reason, error_code: code },
    });
  if (!room) return [deny("Not in a room", "NOT_IN_ROOM")];
  room.lastActivity = now;
  if (!room.supportsAuthority) {
    return [deny("Room does not support authority", "AUTHORITY_NOT_SUPPORTED")];
  }
  const granted = send(id, { type: "AuthorityResponse", data: { granted: true, reason: null } });
  if (claim) {
    if (room.authority === id) return [granted];
    if (room.authority !== null) {
      return [deny("Another player already has authority", "AUTHORITY_CONFLICT")];
    }
    room.authority = id;
  } else {
    if (room.authority !== id) {
      return [deny("You do not have authority to release", "AUTHORITY_DENIED")];
    }
    room.authority = null;
  }
  return [granted, ...authorityChanged(room)];
}

/**
 * Who takes authority when its holder's seat is released in a room created with
 * `authority_handover` (docs/spec/EXTENSIONS.md E11): the connected player seated longest, else the held
 * seat (`held(id)` true) seated longest, else nobody (`null`). Seats are kept in the order they
 * were taken.
 */
export function authoritySuccessor(room: Room, held: (playerId: string) => boolean): string | null {
  let heldFirst: string | null = null;
  for (const playerId of room.seats.keys()) {
    if (!held(playerId)) return playerId;
    heldFirst ??= playerId;
  }
  return heldFirst;
}

/** `AuthorityChanged` to every member, personalised for the holder (docs/spec/PROTOCOL.md §7.5). */
export function authorityChanged(room: Room): Effect[] {
  const holder = room.authority;
  const effects: Effect[] = [];
  if (holder !== null) {
    effects.push(send(holder, {
      type: "AuthorityChanged",
      data: { authority_player: holder, you_are_authority: true },
    }));
  }
  const others = room.membersExcept(holder ?? "");
  if (others.length > 0) {
    effects.push(send(others, {
      type: "AuthorityChanged",
      data: { authority_player: holder, you_are_authority: false },
    }));
  }
  return effects;
}
