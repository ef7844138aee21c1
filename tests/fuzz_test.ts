/**
 * Seeded, bounded fuzzing over real sockets (issue 8 item 5): several connections send at least
 * 10,000 generated malformed and almost-valid frames while two players relay numbered game data
 * in another room. Afterwards the server must still answer, the game must have missed nothing
 * (count and order), and the heap must be back near its baseline.
 *
 * Reproduce a failure with `FUZZ_SEED=<seed> deno task test tests/fuzz_test.ts`.
 */
import { prng as random } from "../src/engine/testing.ts";
import { deepEqual, equal, ok } from "node:assert/strict";
import { connect, guardedRoom, type Received, serve, type TestClient } from "./helpers.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 0x5eed_f15);
const FUZZERS = 4;
const FRAMES_PER_FUZZER = 2_560;
const BATCH = 128;
/** Frames over `max_message_size`, each on its own short-lived connection (close 1009). */
const OVERSIZED = 8;
const MB = 1024 * 1024;

/** Generates fuzz frames; never names the guarded game and never sends a valid `Ping`. */
class FrameGenerator {
  readonly #next: () => number;

  constructor(seed: number) {
    this.#next = random(seed);
  }

  int(max: number): number {
    return Math.floor(this.#next() * max);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  chance(p: number): boolean {
    return this.#next() < p;
  }

  string(maxLength: number): string {
    const alphabets = [
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
      " -_!@#$%^&*()[]{}<>\"'\\/:;,.?~`|+=",
      "\u200b\u200d\u202e\u0301\ufeff\u00a0\u3000\u2028\t\n\r\u0000",
      "ÄéßАаＡ日本語שלוםمرحبا🐟\ud800\udfff",
    ];
    let text = "";
    const length = this.int(maxLength + 1);
    for (let i = 0; i < length; i++) text += this.pick([...this.pick(alphabets)]);
    return text;
  }

  scalar(): unknown {
    switch (this.int(10)) {
      case 0:
        return null;
      case 1:
        return this.chance(0.5);
      case 2:
        return this.int(300) - 20;
      case 3:
        return this.pick([2.5, -0, 1e308, -1e-308, 4.0, 2 ** 53 + 1, 255, 256, 65535, 65536]);
      case 4:
        return this.string(12);
      case 5:
        return this.string(300);
      case 6:
        return crypto.randomUUID();
      case 7:
        return this.pick(["json", "message_pack", "rkyv", "direct", "relay", "tcp", "TCP"]);
      case 8:
        return [];
      default:
        return {};
    }
  }

  value(depth = 0): unknown {
    if (depth > 3 || this.chance(0.6)) return this.scalar();
    if (this.chance(0.5)) {
      return Array.from({ length: this.int(4) }, () => this.value(depth + 1));
    }
    const object: Record<string, unknown> = {};
    for (let i = this.int(4); i > 0; i--) object[this.string(6)] = this.value(depth + 1);
    return object;
  }

  roomCode(): string {
    return this.pick(["FUZZ01", "FUZZ02", "fuzz01", "", "ABC", "ABCDEFG", "ÄBCDEF", "FUZ 01"]);
  }

  gameName(): string {
    return this.pick(["fuzz", "fuzz-b", "", "bad!", "a".repeat(65), "日本", this.string(8)]);
  }

  playerName(): string {
    return this.pick(["fz", "Fz", "x".repeat(33), " lead", "zero\u200bwidth", this.string(10)]);
  }

  connectionInfo(): unknown {
    return this.pick<unknown>([
      { type: "direct", host: this.string(20), port: this.int(70_000) },
      { type: "webrtc", ice_candidates: [this.string(30)] },
      { type: "relay", host: "r", port: 1, allocation_id: "a", token: "t", transport: null },
      { type: "custom", data: this.value() },
      { type: "unity_relay", allocation_id: 1 },
    ]);
  }

  /** A valid-looking message of any type but `Ping`. */
  message(): Record<string, unknown> {
    switch (this.int(10)) {
      case 0:
        return {
          type: "Authenticate",
          data: {
            app_id: this.string(8),
            platform: this.pick(["unity", "godot", undefined, this.string(5)]),
            sdk_version: this.pick(["1.12.0", "1.2", "x", undefined]),
            game_data_format: this.pick(["json", "message_pack", "rkyv", undefined]),
          },
        };
      case 1:
      case 2:
        return {
          type: "JoinRoom",
          data: {
            game_name: this.gameName(),
            room_code: this.chance(0.3) ? undefined : this.roomCode(),
            player_name: this.playerName(),
            max_players: this.pick([undefined, 0, 1, 2, 8, 100, 101]),
            supports_authority: this.pick([undefined, true, false]),
          },
        };
      case 3:
        return { type: this.pick(["LeaveRoom", "PlayerReady", "LeaveSpectator"]) };
      case 4:
        return {
          type: "GameData",
          data: {
            data: this.value(),
            to_player: this.chance(0.2) ? crypto.randomUUID() : undefined,
          },
        };
      case 5:
        return { type: "AuthorityRequest", data: { become_authority: this.chance(0.5) } };
      case 6:
        return { type: "ProvideConnectionInfo", data: { connection_info: this.connectionInfo() } };
      case 7:
        return {
          type: "Reconnect",
          data: {
            player_id: crypto.randomUUID(),
            room_id: crypto.randomUUID(),
            auth_token: this.string(this.chance(0.1) ? 300 : 43),
          },
        };
      default:
        return {
          type: "JoinAsSpectator",
          data: {
            game_name: this.gameName(),
            room_code: this.roomCode(),
            spectator_name: this.playerName(),
          },
        };
    }
  }

  /** Breaks a valid message in one of many small ways. */
  mutate(message: Record<string, unknown>): Record<string, unknown> {
    const copy = structuredClone(message) as Record<string, unknown>;
    const data = copy.data as Record<string, unknown> | undefined;
    switch (this.int(7)) {
      case 0:
        if (data) delete data[this.pick(Object.keys(data).concat("x"))];
        break;
      case 1:
        if (data) data[this.pick(Object.keys(data).concat("x"))] = this.value();
        else copy.data = this.value();
        break;
      case 2:
        copy.type = this.pick(["joinroom", "JOINROOM", "Join Room", "", 7, null, "Pong", "Error"]);
        break;
      case 3:
        copy[this.string(5)] = this.value();
        if (data) data[this.string(5)] = this.value();
        break;
      case 4:
        delete copy.data;
        break;
      case 5:
        copy.data = this.pick<unknown>([null, [], "data", 1, true]);
        break;
      default:
        // Change a field to the wrong JSON type.
        if (data) {
          const key = this.pick(Object.keys(data).concat("game_name"));
          data[key] = this.pick<unknown>([[data[key]], { v: data[key] }, String(data[key]), 1]);
        }
    }
    return copy;
  }

  /** One text or binary frame. */
  frame(): string | Uint8Array {
    switch (this.int(12)) {
      case 0:
        return this.string(80);
      case 1:
        return crypto.getRandomValues(new Uint8Array(this.int(64)));
      case 2: {
        // Truncated or spliced JSON.
        const text = JSON.stringify(this.message());
        const cut = this.int(text.length);
        return this.chance(0.5)
          ? text.slice(0, cut)
          : text.slice(0, cut) + this.string(3) + text.slice(cut);
      }
      case 3: {
        // Deep nesting inside game data or connection info.
        const depth = 1 + this.int(8_000);
        const nested = this.chance(0.5)
          ? "[".repeat(depth) + "]".repeat(depth)
          : '{"a":'.repeat(depth / 2) + "0" + "}".repeat(depth / 2);
        return this.chance(0.5)
          ? `{"type":"GameData","data":{"data":${nested}}}`
          : `{"type":"ProvideConnectionInfo","data":{"connection_info":{"type":"custom","data":${nested}}}}`;
      }
      case 4:
        return this.pick([
          "[]",
          "null",
          "{}",
          '{"type":"Ping","data":5}',
          '{"type":"JoinRoom","data":{"game_name":"fuzz","player_name":"a","max_players":1e400}}',
          '{"type":"GameData","data":{"data":NaN}}',
          '{"type":"GameData","data":{"data":1,"data":2}}',
          '{"__proto__":{"type":"LeaveRoom"}}',
          '{"type":"constructor","data":{}}',
        ]);
      case 5:
      case 6:
        return JSON.stringify(this.message());
      default:
        return JSON.stringify(this.mutate(this.message()));
    }
  }
}

async function sendBatch(
  server: { wsUrl: string },
  state: { client: TestClient },
  frames: (string | Uint8Array)[],
): Promise<void> {
  for (const frame of frames) state.client.send(frame);
  // Only this Ping can produce a Pong (the generator never sends a valid Ping), so its Pong
  // means every earlier frame of this connection was handled (docs/spec/PROTOCOL.md §1.5).
  state.client.send({ type: "Ping" });
  await state.client.waitFor("Pong", 15_000);
  state.client.drain();
  ok(state.client.socket.readyState === WebSocket.OPEN, `fuzzer closed (${server.wsUrl})`);
}

function gameData(messages: (Received | Uint8Array)[]): number[] {
  return messages.map((message) => {
    if (message instanceof Uint8Array || message.type !== "GameData") {
      throw new Error(`Unexpected message for a player: ${JSON.stringify(message)}`);
    }
    return message.data.data.seq;
  });
}

function heapUsed(): number {
  // deno task test passes --v8-flags=--expose-gc; without it the bound below is generous.
  (globalThis as { gc?: () => void }).gc?.();
  (globalThis as { gc?: () => void }).gc?.();
  return Deno.memoryUsage().heapUsed;
}

Deno.test(`Fuzzing ${FUZZERS * FRAMES_PER_FUZZER + OVERSIZED} frames (seed ${SEED}) leaves another room's game intact`, async () => {
  await using server = await serve();
  const [a, b] = await guardedRoom(server);

  const fuzzers = await Promise.all(
    Array.from({ length: FUZZERS }, async (_, i) => ({
      generator: new FrameGenerator(SEED + i),
      state: { client: await connect(server) },
    })),
  );
  // Warm up (JIT, pools) before taking the heap baseline.
  await Promise.all(
    fuzzers.map(({ generator, state }) =>
      sendBatch(server, state, Array.from({ length: BATCH }, () => generator.frame()))
    ),
  );
  const baseline = heapUsed();

  let sent = 0;
  let seq = 0;
  for (let round = 0; round * BATCH < FRAMES_PER_FUZZER; round++) {
    const batches = fuzzers.map(({ generator, state }) => {
      const frames = Array.from({ length: BATCH }, () => generator.frame());
      sent += frames.length;
      return sendBatch(server, state, frames);
    });
    // The players' frames are queued while the fuzzers' batches are in flight.
    for (let i = 0; i < 5; i++) {
      seq++;
      a.send({ type: "GameData", data: { data: { seq } } });
      b.send({ type: "GameData", data: { data: { seq } } });
    }
    await Promise.all(batches);
  }
  for (let i = 0; i < OVERSIZED; i++) {
    const throwaway = await connect(server);
    throwaway.send(`{"type":"GameData","data":{"data":"${"z".repeat(65_536 + i)}"}}`);
    equal((await throwaway.closed).code, 1009);
    sent++;
  }
  ok(sent >= 10_000, `sent ${sent} frames`);

  // The game missed nothing: every message, in order, and nothing else.
  a.send({ type: "Ping" });
  b.send({ type: "Ping" });
  const toA: (Received | Uint8Array)[] = [];
  const toB: (Received | Uint8Array)[] = [];
  for (const [client, into] of [[a, toA], [b, toB]] as const) {
    for (;;) {
      const message = await client.next(undefined, 15_000);
      if (message.type === "Pong") break;
      into.push(message);
    }
  }
  const expected = Array.from({ length: seq }, (_, i) => i + 1);
  deepEqual(gameData(toA), expected);
  deepEqual(gameData(toB), expected);

  // The server still answers: health, a new game, and the guarded room is unchanged.
  const health = await fetch(`${server.url}/v2/health`);
  equal(await health.text(), "OK");
  await using probe = await connect(server);
  probe.send({ type: "JoinRoom", data: { game_name: "after", player_name: "probe" } });
  await probe.next("RoomJoined");
  const room = server.engine.lookup("guarded", "GUARD1");
  equal(room?.players, 2);
  equal(room?.spectators, 0);

  // Memory: fuzzers gone, their empty rooms past empty_room_timeout, heap near baseline.
  for (const { state } of fuzzers) await state.client.close();
  await probe.close();
  // Dropped players' seats are held for the reconnection window first, then their rooms empty.
  const windowEnd = Date.now() + 301_000;
  server.edge.command({ kind: "tick" }, windowEnd);
  server.edge.command({ kind: "sweep" }, windowEnd + 301_000);
  equal(server.engine.stats().rooms, 1, "only the guarded room is left");
  const after = heapUsed();
  const hasGc = typeof (globalThis as { gc?: unknown }).gc === "function";
  const bound = hasGc ? 8 * MB : 64 * MB;
  ok(
    after - baseline < bound,
    `heap grew by ${((after - baseline) / MB).toFixed(1)} MiB (baseline ${
      (baseline / MB).toFixed(1)
    } MiB, after ${(after / MB).toFixed(1)} MiB, gc ${hasGc})`,
  );
  console.log(
    `fuzz: seed ${SEED}, ${sent} frames, ${seq} game messages each way, heap ${
      (baseline / MB).toFixed(1)
    } -> ${(after / MB).toFixed(1)} MiB (gc ${hasGc})`,
  );
  await a.close();
  await b.close();
});

Deno.test(`Fuzzing before authentication (seed ${SEED}) never gets past the auth gate`, async () => {
  await using server = await serve((config) => {
    config.security.require_websocket_auth = true;
    config.security.authorized_apps = [{
      app_id: "guarded-app",
      app_secret: "not guessable by the fuzzer",
      app_name: "Guarded",
      max_rooms: null,
      max_players_per_room: null,
      rate_limit_per_minute: null,
    }];
  });
  const generator = new FrameGenerator(SEED ^ 0xa5a5);
  const allowed = new Set([
    "Error INVALID_INPUT", // parse failures keep the connection (docs/spec/PROTOCOL.md §2.3)
    "Error AUTHENTICATION_REQUIRED",
    "AuthenticationError INVALID_APP_ID",
  ]);
  let frames = 0;
  let closed = 0;
  let abnormal = 0;
  const CONNECTIONS = 100;
  for (let round = 0; round < CONNECTIONS; round += 10) {
    await Promise.all(Array.from({ length: 10 }, async () => {
      const client = await connect(server);
      for (let i = 0; i < 20 && client.socket.readyState === WebSocket.OPEN; i++) {
        client.send(generator.frame());
        frames++;
      }
      if (client.socket.readyState === WebSocket.OPEN) client.send({ type: "Ping" });
      // The gate closes with 1008 (a Ping is not allowed before Authenticate either). When the
      // client keeps streaming large frames after the server's close frame, the runtime may
      // reset the TCP connection and the client sees an abnormal close instead (code 0/1006);
      // the refusal must then still have been delivered.
      const { code } = await client.closed;
      const replies = client.drain();
      const last = replies.at(-1);
      const refused = last !== undefined && !(last instanceof Uint8Array) &&
        ["AUTHENTICATION_REQUIRED", "INVALID_APP_ID"].includes(last.data?.error_code);
      ok(code === 1008 || ([0, 1006].includes(code) && refused), `close ${code}`);
      if (code !== 1008) abnormal++;
      closed++;
      for (const message of replies) {
        const key = message instanceof Uint8Array
          ? "binary"
          : `${message.type} ${message.data?.error_code ?? ""}`;
        ok(allowed.has(key), `unexpected reply before authentication: ${key}`);
      }
    }));
  }
  equal(closed, CONNECTIONS);
  ok(frames >= 1_000, `sent ${frames} frames`);
  equal(server.engine.stats().rooms, 0);
  equal(server.edge.size, 0);
  console.log(
    `fuzz (auth on): ${frames} frames on ${CONNECTIONS} connections, ${abnormal} reset after the refusal`,
  );
});
