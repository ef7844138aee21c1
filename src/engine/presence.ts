/**
 * Presence events (docs/spec/EXTENSIONS.md E10): `PlayerDisconnected{player_id, seat_held_secs}` to the
 * members of a room that opted in with `Authenticate.features: ["presence-events"]`, when a seat
 * becomes held. Connections that did not opt in never receive it (v2: "others are not told").
 *
 * @module
 */
import { type Effect, send } from "./effects.ts";
import type { Room } from "./room.ts";

/**
 * What {@linkcode playerDisconnected} reads of the engine's reconnection state (`Reconnection`
 * in `reconnection.ts`, which imports this module): a member's hold, if its seat is held, else
 * the live session carrying its identity, each with the connection's presence opt-in.
 */
export interface PresenceLookup {
  held(playerId: string): { presence?: boolean } | undefined;
  sessionOf(playerId: string): { presence?: boolean } | undefined;
}

/**
 * `PlayerDisconnected` for `playerId`'s seat of `room`, just held until `expiresAt` (ms), to
 * every opted-in player and spectator except `playerId`: connected members by their own
 * connection's opt-in, held seats by the opt-in of the connection that dropped (the message then
 * goes to their replay buffer when routed). `seat_held_secs` is the window left at `now`, whole
 * seconds rounded up. Returns no effect when nobody opted in.
 */
export function playerDisconnected(
  reconnection: PresenceLookup,
  room: Room,
  playerId: string,
  expiresAt: number,
  now: number,
): Effect[] {
  const to: string[] = [];
  for (const member of room.membersExcept(playerId)) {
    const hold = reconnection.held(member);
    const optedIn = hold ? hold.presence === true : reconnection.sessionOf(member)?.presence;
    if (optedIn) to.push(member);
  }
  if (to.length === 0) return [];
  const seatHeldSecs = secondsLeft(expiresAt, now);
  return [send(to, {
    type: "PlayerDisconnected",
    data: { player_id: playerId, seat_held_secs: seatHeldSecs },
  })];
}

/** The window left at `now` until `expiresAt` (ms), in whole seconds rounded up, never below 0. */
function secondsLeft(expiresAt: number, now: number): number {
  return Math.max(0, Math.ceil((expiresAt - now) / 1000));
}

/**
 * A buffered `PlayerDisconnected` frame (JSON text, as {@linkcode playerDisconnected} made it)
 * as a replay at `now` hands it on (docs/spec/EXTENSIONS.md E10): `seat_held_secs` counts the
 * window left at the replay when that player's seat is still held (`expiresAt(playerId)`, ms),
 * not the one left when the message was buffered. A seat no longer held keeps the frame as it
 * was: the replay holds the `PlayerReconnected` or `PlayerLeft` that followed. Throws only on a
 * frame that is not JSON (never one the engine buffered).
 */
export function replayedPlayerDisconnected(
  frame: string,
  expiresAt: (playerId: string) => number | undefined,
  now: number,
): string {
  const message = JSON.parse(frame) as {
    data: { player_id: string; seat_held_secs: number };
  };
  const until = expiresAt(message.data.player_id);
  if (until === undefined) return frame;
  message.data.seat_held_secs = secondsLeft(until, now);
  return JSON.stringify(message);
}
