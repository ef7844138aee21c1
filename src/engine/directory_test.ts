import { deepEqual, equal, ok } from "node:assert/strict";
import { HomeDirectory, roomSummary } from "./directory.ts";
import type { Effect } from "./effects.ts";
import { Room } from "./room.ts";
import {
  bare,
  countUnattended,
  engineWith,
  first,
  join,
  P1,
  P2,
  P3,
  prng,
  S1,
  spectate,
} from "./testing.ts";

const T0 = Date.UTC(2026, 2, 4, 18, 22, 5, 123);

Deno.test("Engine.handle() JoinRoom keys rooms by game name and code", () => {
  const engine = engineWith([P1, P2]);
  engine.handle(P1, join("ROOM01", "a", { game_name: "alpha" }), T0);
  const other = engine.handle(P2, join("ROOM01", "a", { game_name: "beta" }), T0);
  deepEqual(first(other, P2, "RoomJoined").data.current_players.length, 1);
  equal(engine.stats().rooms, 2);
});

Deno.test("Engine.handle() JoinRoom enforces max_rooms_per_game on every kind of creation", () => {
  const engine = engineWith([P1, P2, P3], { maxRoomsPerGame: 1 });
  engine.handle(P1, join("ROOM01", "a"), T0);
  const expected = {
    reason: "Game `orbit` already has 1 rooms (limit 1)",
    error_code: "MAX_ROOMS_PER_GAME_EXCEEDED",
  };
  deepEqual(
    first(engine.handle(P2, join(undefined, "b"), T0), P2, "RoomJoinFailed").data,
    expected,
  );
  deepEqual(first(engine.handle(P2, join("ROOM02", "b"), T0), P2, "RoomJoinFailed").data, expected);
  // Joining the existing room is not a creation.
  ok(first(engine.handle(P3, join("ROOM01", "c"), T0), P3, "RoomJoined"));
  // Other games are counted separately.
  ok(first(engine.handle(P2, join("ROOM01", "b", { game_name: "other" }), T0), P2, "RoomJoined"));
});

Deno.test("Engine.lookup() and Engine.list() summarise rooms", () => {
  const engine = engineWith([P1, P2, S1]);
  engine.handle(P1, join("ROOM01", "a", { max_players: 4 }), T0);
  engine.handle(S1, spectate("ROOM01"), T0);
  engine.handle(P2, join("ROOM02", "b"), T0);
  engine.handle(P2, bare("LeaveRoom"), T0);
  deepEqual(engine.lookup("orbit", "ROOM01"), {
    room_code: "ROOM01",
    game_name: "orbit",
    players: 1,
    max_players: 4,
    spectators: 1,
    lobby_state: "waiting",
    supports_authority: true,
    relay_type: "matchbox",
    authority_handover: false,
  });
  deepEqual(engine.list("orbit", 100).map((room) => room.room_code), ["ROOM01"]);
  deepEqual(engine.stats(), {
    rooms: 2,
    players: 1,
    spectators: 1,
    connections: 3,
    heldSeats: 0,
    eventsBuffered: 0,
    replayBufferBytes: 0,
    replayTruncations: 0,
    heldSeatEvictions: 0,
    heldSeatAddressEvictions: 0,
    unattendedRooms: 0,
    unattendedReclaims: 0,
    tokenRecords: 0,
    adoptedIdentities: 0,
  });
});

Deno.test("Engine directory effects: refresh on create, join, ready and spectate; release on delete", () => {
  const engine = engineWith([P1, P2, S1]);
  const writes = (effects: Effect[]) =>
    effects.flatMap((e) =>
      e.kind === "directory"
        ? [
          e.op === "refresh"
            ? `refresh ${e.entry.summary.players}/${e.entry.summary.spectators} ${e.entry.summary.lobby_state}`
            : `release ${e.roomCode}`,
        ]
        : []
    );
  deepEqual(writes(engine.handle(P1, join("ROOM01", "Mira", { max_players: 2 }), T0)), [
    "refresh 1/0 waiting",
  ]);
  deepEqual(writes(engine.handle(P2, join("ROOM01", "Tobi"), T0)), ["refresh 2/0 lobby"]);
  deepEqual(writes(engine.handle(S1, spectate("ROOM01"), T0)), ["refresh 2/1 lobby"]);
  deepEqual(writes(engine.handle(P1, bare("PlayerReady"), T0)), []);
  deepEqual(writes(engine.handle(P2, bare("PlayerReady"), T0)), ["refresh 2/1 finalized"]);
  deepEqual(writes(engine.handle(P2, bare("LeaveRoom"), T0)), ["refresh 1/1 waiting"]);
  deepEqual(writes(engine.handle(P1, bare("LeaveRoom"), T0)), ["refresh 0/1 waiting"]);
  deepEqual(writes(engine.sweep(T0 + 300_000)), ["release ROOM01"]);
  equal(engine.lookup("orbit", "ROOM01"), undefined);
});

Deno.test("Engine directory entries carry the operator's search terms only with operatorSearch", () => {
  const searched = (effects: Effect[]) =>
    effects.flatMap((e) => e.kind === "directory" && e.op === "refresh" ? [e.entry.search] : []);
  const engine = engineWith([P1, P2, S1], { operatorSearch: true });
  deepEqual(searched(engine.handle(P1, join("ROOM01", "Mira", { game_name: "Orbit X" }), T0)), [
    { terms: "\x7forbit x\x7fmira", ids: `\x7f${P1}` },
  ]);
  deepEqual(searched(engine.handle(P2, join("ROOM01", "ÉLAN", { game_name: "Orbit X" }), T0)), [
    { terms: "\x7forbit x\x7fmira\x7félan", ids: `\x7f${P1}\x7f${P2}` },
  ]);
  // Spectators are not players: the terms stay those of the seats.
  deepEqual(
    searched(engine.handle(S1, {
      type: "JoinAsSpectator",
      data: { game_name: "Orbit X", room_code: "ROOM01", spectator_name: "Watcher" },
    }, T0)),
    [{ terms: "\x7forbit x\x7fmira\x7félan", ids: `\x7f${P1}\x7f${P2}` }],
  );
  deepEqual(searched(engine.handle(P1, bare("LeaveRoom"), T0)), [
    { terms: "\x7forbit x\x7félan", ids: `\x7f${P2}` },
  ]);
  deepEqual(engine.directoryEntries().map((entry) => entry.search?.terms), ["\x7forbit x\x7félan"]);
  // Off (no operator console): player names stay out of the directory.
  const plain = engineWith([P1]);
  deepEqual(searched(plain.handle(P1, join("ROOM01", "Mira"), T0)), [undefined]);
});

Deno.test("HomeDirectory counts rooms per game and per app until removed", () => {
  const directory = new HomeDirectory();
  const room = (code: string, gameName = "orbit") =>
    new Room({
      id: code,
      code,
      gameName,
      maxPlayers: 2,
      supportsAuthority: true,
      relayType: "matchbox",
      now: T0,
    });
  const a = room("AAAAAA");
  const b = room("BBBBBB", "other");
  directory.add(a, "app-1", T0);
  directory.add(b, undefined, T0 + 1);
  deepEqual([directory.gameCount("orbit"), directory.gameCount("other"), directory.size], [
    1,
    1,
    2,
  ]);
  equal(directory.appCount("app-1"), 1);
  equal(directory.get("orbit", "AAAAAA"), a);
  equal(directory.has("other", "AAAAAA"), false);
  equal(directory.byId("BBBBBB"), b);
  const refresh = directory.refresh(a);
  deepEqual(refresh.kind === "directory" && refresh.op === "refresh" && refresh.entry, {
    roomId: "AAAAAA",
    gameName: "orbit",
    roomCode: "AAAAAA",
    appId: "app-1",
    createdAt: T0,
    summary: roomSummary(a),
  });
  directory.remove(a);
  deepEqual([directory.gameCount("orbit"), directory.appCount("app-1"), directory.size], [0, 0, 1]);
  equal(directory.byId("AAAAAA"), undefined);
  equal(directory.byId("BBBBBB"), b);
});

Deno.test("HomeDirectory lists one game's occupied rooms oldest first and tallies members", () => {
  const directory = new HomeDirectory();
  const room = (code: string, gameName: string) =>
    new Room({
      id: code,
      code,
      gameName,
      maxPlayers: 4,
      supportsAuthority: true,
      relayType: "matchbox",
      now: T0,
    });
  const seat = (id: string) => ({ id, name: id, nameKey: id, connectedAt: "" });
  const watcher = (id: string) => ({ id, name: id, connectedAt: "" });
  // Rooms of two games interleaved; one room of each is seated before it is added.
  const rooms = ["A1", "B1", "A2", "B2", "A3"].map((code) =>
    room(code, code.startsWith("A") ? "alpha" : "beta")
  );
  rooms[0]!.addSeat(seat("p1"));
  rooms[1]!.addSeat(seat("p2"));
  for (const each of rooms) directory.add(each, undefined, T0);
  rooms[2]!.addSeat(seat("p3"));
  rooms[4]!.addSeat(seat("p4"));
  rooms[4]!.addSeat(seat("p5"));
  rooms[4]!.addSpectator(watcher("s1"));
  const codes = (game: string, limit = 10) => directory.list(game, limit).map((r) => r.room_code);
  deepEqual(codes("alpha"), ["A1", "A2", "A3"]);
  deepEqual(codes("alpha", 2), ["A1", "A2"]);
  deepEqual(codes("beta"), ["B1"]); // B2 has no seat
  deepEqual(codes("gamma"), []);
  deepEqual(directory.members(), { players: 5, spectators: 1 });
  deepEqual(Object.fromEntries(directory.gameCounts()), {
    alpha: { rooms: 3, players: 4, spectators: 1 },
    beta: { rooms: 2, players: 1, spectators: 0 },
  });
  // A seat set again under its id is not a second seat; removing an absent one changes nothing.
  rooms[4]!.addSeat(seat("p5"));
  equal(rooms[4]!.removeSeat("nobody"), false);
  equal(rooms[4]!.removeSpectator("nobody"), false);
  deepEqual(directory.members(), { players: 5, spectators: 1 });
  rooms[4]!.removeSeat("p4");
  rooms[4]!.removeSpectator("s1");
  deepEqual(directory.members(), { players: 4, spectators: 0 });
  // A removed room stops counting, whatever happens to it afterwards.
  directory.remove(rooms[2]!);
  rooms[2]!.addSeat(seat("p6"));
  rooms[2]!.clearMembers();
  deepEqual(directory.members(), { players: 3, spectators: 0 });
  deepEqual(codes("alpha"), ["A1", "A3"]);
  const later = room("A4", "alpha");
  directory.add(later, undefined, T0 + 1);
  later.addSeat(seat("p7"));
  deepEqual(codes("alpha"), ["A1", "A3", "A4"]);
  equal(directory.gameCount("alpha"), 3);
  rooms[4]!.clearMembers();
  deepEqual(directory.members(), { players: 3, spectators: 0 });
  for (const each of [...directory.rooms()]) directory.remove(each);
  deepEqual(directory.members(), { players: 0, spectators: 0 });
  deepEqual(directory.gameCounts().size, 0, "a game without rooms has no counts");
  deepEqual([directory.gameCount("alpha"), directory.gameCount("beta"), directory.size], [0, 0, 0]);
});

Deno.test("Engine directory effects keep a mirror equal to lookup() over random walks; member tallies, seat histograms and counts per game match the rooms", () => {
  const codes = ["ROOM01", "ROOM02"];
  for (const seed of [11, 12, 13, 14]) {
    const random = prng(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    // Three rooms at most of the four the walk can make: creations reclaim empty and
    // unattended rooms, whose releases the mirror must follow too.
    const engine = engineWith([], {
      enableReconnection: true,
      reconnectionWindowMs: 20_000,
      emptyRoomTimeoutMs: 10_000,
      maxRooms: 3,
    });
    // Five client slots; a slot that disconnects comes back as a new connection id.
    let fresh = 0;
    const slots = Array.from({ length: 5 }, () => `conn-${++fresh}`);
    for (const id of slots) engine.connect(id);
    /** `game/CODE` → [room id, summary], written only from `directory` effects. */
    const mirror = new Map<string, [string, unknown]>();
    const ops = { refresh: 0, release: 0 };
    const write = (effects: Effect[]) => {
      for (const effect of effects) {
        if (effect.kind !== "directory") continue;
        ops[effect.op]++;
        if (effect.op === "refresh") {
          const key = `${effect.entry.gameName}/${effect.entry.roomCode}`;
          mirror.set(key, [effect.entry.roomId, effect.entry.summary]);
        } else if (mirror.get(`${effect.gameName}/${effect.roomCode}`)?.[0] === effect.roomId) {
          mirror.delete(`${effect.gameName}/${effect.roomCode}`);
        }
      }
    };
    let now = T0;
    let reclaims = 0;
    for (let step = 0; step < 1500; step++) {
      now += Math.floor(random() * 4000);
      const slot = Math.floor(random() * slots.length);
      const id = slots[slot]!;
      const roll = random();
      if (roll < 0.05) {
        write(engine.disconnect(id, now));
        slots[slot] = `conn-${++fresh}`;
        engine.connect(slots[slot]!);
      } else if (roll < 0.08) {
        write(engine.tick(now));
      } else if (roll < 0.1) {
        write(engine.sweep(now));
      } else if (roll < 0.35) {
        // Mostly game "orbit", sometimes "chess" (the same codes in another game).
        const game = random() < 0.8 ? "orbit" : "chess";
        write(engine.handle(
          id,
          join(pick(codes), pick(["a", "b", "c"]), { max_players: 2, game_name: game }),
          now,
        ));
      } else if (roll < 0.5) {
        write(engine.handle(id, spectate(pick(codes)), now));
      } else if (roll < 0.7) {
        write(engine.handle(id, bare("PlayerReady"), now));
      } else if (roll < 0.85) {
        write(engine.handle(id, bare("LeaveRoom"), now));
      } else {
        write(engine.handle(id, bare("LeaveSpectator"), now));
      }
      const summed = { players: 0, spectators: 0 };
      /** Rooms per seat count of each game, from the rooms' own summaries. */
      const histograms: Record<string, number[]> = {};
      /** Rooms, seats and spectators of each game, from the rooms' own summaries. */
      const perGame: Record<string, { rooms: number; players: number; spectators: number }> = {};
      for (const game of ["orbit", "chess"]) {
        for (const code of codes) {
          const summary = engine.lookup(game, code);
          deepEqual(mirror.get(`${game}/${code}`)?.[1], summary, `seed ${seed} step ${step}`);
          summed.players += summary?.players ?? 0;
          summed.spectators += summary?.spectators ?? 0;
          if (summary) {
            const counts = perGame[game] ??= { rooms: 0, players: 0, spectators: 0 };
            counts.rooms++;
            counts.players += summary.players;
            counts.spectators += summary.spectators;
            const histogram = histograms[game] ??= [];
            while (histogram.length <= summary.players) histogram.push(0);
            histogram[summary.players]!++;
          }
        }
      }
      // The kept tallies and seat histograms equal the rooms' own counts after every step.
      const { players, spectators } = engine.stats();
      deepEqual({ players, spectators }, summed, `seed ${seed} step ${step}: member tallies`);
      deepEqual(
        Object.fromEntries(engine.seatHistograms().map((g) => [g.gameName, [...g.histogram]])),
        histograms,
        `seed ${seed} step ${step}: seat histograms`,
      );
      deepEqual(
        Object.fromEntries([...engine.gameCounts()].map(([game, counts]) => [game, { ...counts }])),
        perGame,
        `seed ${seed} step ${step}: counts per game`,
      );
      // The unattended index holds exactly the rooms with seats, all held, and no spectator.
      deepEqual(
        engine.stats().unattendedRooms,
        countUnattended(engine, ["orbit", "chess"], codes, now),
        `seed ${seed} step ${step}: unattended rooms`,
      );
      reclaims = engine.stats().unattendedReclaims;
    }
    ok(ops.refresh > 100 && ops.release > 0, `seed ${seed}: ${JSON.stringify(ops)}`);
    ok(reclaims > 0, `seed ${seed}: no unattended room was reclaimed`);
  }
});
