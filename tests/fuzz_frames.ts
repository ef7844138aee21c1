/**
 * The fuzz frame generator shared by the single-instance and the cluster fuzz tests
 * (tests/fuzz_test.ts, tests/cluster_fuzz_test.ts; issue 8 item 5): seeded, malformed and
 * almost-valid client frames of every message type of docs/spec/PROTOCOL.md §2.
 *
 * @module
 */
import { prng as random } from "../src/engine/testing.ts";

/** Generates fuzz frames; never names the guarded game and never sends a valid `Ping`. */
export class FrameGenerator {
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
