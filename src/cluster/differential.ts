/**
 * The differential oracle of issue 15 item 2 (docs/spec/SERVER.md §8.6 "nothing different in normal
 * operation"): one scripted session, a normaliser for ids, tokens, codes and times, and a runner
 * that plays the script on a test cluster with clients assigned to nodes round-robin. Used by
 * src/cluster/differential_test.ts (in-memory twins) and tests/cluster_differential_test.ts (a
 * real redis-server).
 *
 * @module
 */
import { encode } from "@msgpack/msgpack";
import { type ScriptNode, settle, type TestClient } from "./testing.ts";

/** One step: which client sends which message. */
export type Step = [client: number, message: unknown];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Replaces ids, tokens, codes and times by placeholders numbered in order of appearance, and a
 * rate limit's wait in seconds by `<s>`.
 */
export function normalise(messages: unknown[]): unknown[] {
  const names = new Map<string, string>();
  const name = (kind: string, value: string) => {
    const key = `${kind}:${value}`;
    if (!names.has(key)) names.set(key, `<${kind}${names.size}>`);
    return names.get(key)!;
  };
  const walk = (value: unknown, key = ""): unknown => {
    if (Array.isArray(value)) return value.map((v) => walk(v));
    if (value !== null && typeof value === "object") {
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, walk(v, k)]),
      );
    }
    if (typeof value !== "string") return value;
    if (UUID.test(value)) return name("id", value);
    if (key === "reconnection_token" || key === "auth_token") return name("token", value);
    if (key === "room_code") return name("code", value);
    if (key.endsWith("_at") || /^\d{4}-\d{2}-\d{2}T/.test(value)) return "<time>";
    // A rate limit's wait depends on when the script's steps ran (docs/spec/PROTOCOL.md §7.13).
    return value.replace(/Try again in \d+ seconds/, "Try again in <s> seconds");
  };
  return messages.map((m) => walk(m));
}

/** The step that drops a client's connection (an unexpected disconnect, code 1006). */
export const DROP = "DROP";

/** A step sending `value` as a binary frame: its MessagePack encoding (docs/spec/PROTOCOL.md §7.7). */
export interface BinaryStep {
  binary: unknown;
}

/**
 * An operator's command (docs/spec/EXTENSIONS.md E12) sent through the sending client's node:
 * close a room, remove a player (`PLAYER<k>` placeholders apply) from it, or turn maintenance
 * mode on or off (`enabled`; the whole cluster's). Its replies are compared too.
 */
export interface OperatorStep {
  operator: "close" | "remove_player" | "maintenance";
  enabled?: boolean;
  code: string;
  player?: string;
}

/**
 * An HTTP request of the sending client's (its node, its IP): the lookup of room `code` of game
 * `orbit` (docs/spec/EXTENSIONS.md E5) or the listing of the game's rooms (E6). Its status and
 * body are compared too.
 */
export interface HttpStep {
  http: "lookup" | "list";
  code?: string;
  /** `?app_id=` of the request (the app namespace to look in, authentication required). */
  app?: string;
}

/** Settings of {@linkcode runScript}. */
export interface RunOptions {
  /** Awaited after each step. @default 20 timer turns (`settle(20)`) */
  wait?: (clients: readonly TestClient[]) => Promise<void>;
  /** Client IP of client `i`. @default `10.0.0.<i>` */
  ipOf?: (client: number) => string;
  /**
   * A dropped client's next connection goes through the next node (client `i`'s `k`-th
   * through node `(i + k) % nodes`), so its `Reconnect` crosses nodes. @default false (the same node)
   */
  moveOnDrop?: boolean;
}

/** The seat a client holds, from its latest `RoomJoined` or `Reconnected`. */
function seatOf(client: TestClient | undefined): Record<string, unknown> | undefined {
  return client?.messages.findLast((m) => m.type === "RoomJoined" || m.type === "Reconnected")
    ?.data;
}

/**
 * Plays `script` on `nodes` (a started cluster, or one {@linkcode singleInstance}), client `i` connected through node
 * `i % nodes.length` from client IP `options.ipOf(i)`, one step at a time, awaiting `options.wait(clients)` after each so the order of
 * different senders' messages is the script's. In a message, `CODE` stands for the first room's
 * code, and `PLAYER<k>`, `ROOMID<k>`, `ROOMCODE<k>` and `TOKEN<k>` for the player id, room id,
 * room code and reconnection token of client `k`'s latest `RoomJoined` or `Reconnected`. A {@linkcode DROP} step ends the
 * client's connection as an unexpected disconnect and connects a new one in its place through
 * the same node (the next one with `options.moveOnDrop`); an {@linkcode OperatorStep} runs a room command through the client's node; an
 * {@linkcode HttpStep} a room lookup or listing through the client's node. Resolves
 * with each client slot's normalised messages, every connection's close code after its messages
 * (`{ closed }`, `null` for a connection still open), and, when there were operator or HTTP steps,
 * one more list: their normalised replies, in step order.
 */
export async function runScript(
  nodes: readonly ScriptNode[],
  clients: number,
  script: readonly Step[],
  options: RunOptions = {},
): Promise<unknown[][]> {
  const wait = options.wait ?? (() => settle(20));
  const ipOf = options.ipOf ?? ((client: number) => `10.0.0.${client}`);
  const all: TestClient[] = [];
  const ended: unknown[][] = [];
  /** Connections client `i` has had; its next one goes through node `(i + moves) % nodes`. */
  const moves: number[] = [];
  for (let i = 0; i < clients; i++) {
    all.push(nodes[i % nodes.length]!.connect(ipOf(i)));
    ended.push([]);
    moves.push(0);
  }
  let code = "";
  const seatField = (field: string) => (_: string, k: string) =>
    String(seatOf(all[Number(k)])?.[field] ?? "");
  // `ROOMCODE<k>` before `CODE`, which it contains.
  const substitute = (message: unknown) =>
    JSON.stringify(message)
      .replace(/ROOMCODE(\d+)/g, seatField("room_code"))
      .replaceAll("CODE", code)
      .replace(/PLAYER(\d+)/g, seatField("player_id"))
      .replace(/ROOMID(\d+)/g, seatField("room_id"))
      .replace(/TOKEN(\d+)/g, seatField("reconnection_token"));
  const replies: unknown[] = [];
  for (const [who, message] of script) {
    const client = all[who]!;
    if (typeof message === "object" && message !== null && "operator" in message) {
      const step = JSON.parse(substitute(message)) as OperatorStep;
      if (step.operator === "maintenance") {
        await client.node.setMaintenance(step.enabled ?? false);
        replies.push({ operator: step.operator, enabled: step.enabled ?? false });
        await wait(all);
        continue;
      }
      const reply = await client.node.edge.command({
        kind: "room",
        command: step.operator === "close"
          ? { kind: "close", gameName: "orbit", roomCode: step.code }
          : {
            kind: "remove_player",
            gameName: "orbit",
            roomCode: step.code,
            playerId: step.player ?? "",
          },
      }, Date.now());
      replies.push({ operator: step.operator, reply: reply ?? null });
    } else if (typeof message === "object" && message !== null && "http" in message) {
      const step = JSON.parse(substitute(message)) as HttpStep;
      const path = step.http === "lookup" ? `/v2/rooms/orbit/${step.code}` : "/v2/rooms";
      const params = new URLSearchParams();
      if (step.http === "list") params.set("game_name", "orbit");
      if (step.app !== undefined) params.set("app_id", step.app);
      const query = params.size > 0 ? `?${params}` : "";
      const response = await client.node.rooms(
        new Request(`http://signal-fish.test${path}${query}`),
        path,
        ipOf(who),
      )!;
      replies.push({
        http: step.http,
        client: who,
        status: response.status,
        body: await response.json(),
      });
    } else if (message === DROP) {
      client.node.edge.disconnect(client.id, Date.now());
      ended[who]!.push(...client.messages, { closed: client.closed ?? 1006 });
      const node = options.moveOnDrop ? nodes[(who + ++moves[who]!) % nodes.length]! : client.node;
      all[who] = node.connect(ipOf(who));
    } else if (typeof message === "object" && message !== null && "binary" in message) {
      client.node.edge.receive(client.id, encode((message as BinaryStep).binary), Date.now());
    } else {
      client.node.edge.receive(client.id, substitute(message), Date.now());
    }
    await wait(all);
    code ||= String(all[0]!.last("RoomJoined")?.data?.room_code ?? "");
  }
  const outcome = all.map((client, i) =>
    normalise([...ended[i]!, ...client.messages, { closed: client.closed ?? null }])
  );
  // The operator's and HTTP replies, when the script had such steps, after the clients' lists.
  return replies.length > 0 ? [...outcome, normalise(replies)] : outcome;
}

/**
 * Waits until no client has received anything for `quietMs` (polled every 5 ms), at most
 * `limitMs`: for clusters whose envelopes cross real sockets.
 */
export async function quiet(
  clients: readonly TestClient[],
  quietMs = 50,
  limitMs = 3_000,
): Promise<void> {
  const count = () => clients.reduce((sum, client) => sum + client.messages.length, 0);
  const end = Date.now() + limitMs;
  let last = count();
  let since = Date.now();
  while (Date.now() < end && Date.now() - since < quietMs) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const now = count();
    if (now !== last) {
      last = now;
      since = Date.now();
    }
  }
}

const join = (name: string, code: string | null, extra: object = {}) => ({
  type: "JoinRoom",
  data: { game_name: "orbit", player_name: name, room_code: code, ...extra },
});

/** The scripted session: 6 clients, one room, every kind of room traffic. */
export const SCRIPT: Step[] = [
  [0, join("Ann", null, { max_players: 3 })],
  [1, join("Ben", "CODE")],
  [2, join("Cat", "CODE")],
  [3, {
    type: "JoinAsSpectator",
    data: { game_name: "orbit", room_code: "CODE", spectator_name: "Sid" },
  }],
  [4, join("Ann", "CODE")],
  [1, { type: "GameData", data: { data: { x: 1.25, tag: "from Ben" } } }],
  [2, { type: "GameData", data: { data: "to Ann", to_player: "PLAYER0" } }],
  [1, { type: "AuthorityRequest", data: { become_authority: true } }],
  [0, { type: "AuthorityRequest", data: { become_authority: false } }],
  [1, { type: "AuthorityRequest", data: { become_authority: true } }],
  [2, {
    type: "ProvideConnectionInfo",
    data: { connection_info: { type: "direct", host: "10.1.1.1", port: 7777 } },
  }],
  [0, { type: "PlayerReady" }],
  [1, { type: "PlayerReady" }],
  [2, { type: "PlayerReady" }],
  [3, { type: "GameData", data: { data: "spectators cannot" } }],
  [1, { type: "LeaveRoom" }],
  [1, { type: "GameData", data: { data: "after leaving" } }],
  [4, join("Dee", "CODE")],
  [3, { type: "LeaveSpectator" }],
  [0, { type: "Ping" }],
  [5, join("Eve", "NOROOM")],
  [5, { type: "GameData", data: { data: "in my own room" } }],
];

/**
 * A random script of `steps` steps for `clients` clients (a seeded `random` in [0, 1)): joins,
 * creations and spectating of two fixed room codes and client 0's first room in one game (names
 * drawn from three, so some collide; some joins join-only or create-only, some without a code,
 * some with a field the checks refuse),
 * game data to all and to one player, readiness, authority requests, connection info, leaving,
 * dropped connections, `Reconnect` with any client's seat (a resume or a takeover), operator
 * commands ({@linkcode OperatorStep}), HTTP room lookups and listings ({@linkcode HttpStep}) and
 * pings, in any order and from any client, so most steps
 * are valid and some are refused. All clients but one ask for MessagePack game data first, most of
 * them with presence events. The differential runs it on a single-instance server, on one node and
 * on three, and requires the same messages.
 */
export function randomScript(
  random: () => number,
  clients: number,
  steps: number,
  options: { apps?: readonly string[] } = {},
): Step[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  // `CODE` is client 0's first room (a generated code, once it has one).
  const codes = ["ROOM01", "ROOM02", "CODE"];
  const names = ["Ann", "Ben", "Cat"];
  // First, clients ask for MessagePack game data (docs/spec/PROTOCOL.md §7.1.5), all but the last
  // of them with presence events (docs/spec/EXTENSIONS.md E10); client 4 stays a plain v2 client,
  // unless `options.apps` are given (authentication required): then every client authenticates,
  // client k as app `apps[k % apps.length]`, so the apps' room namespaces are compared too.
  const apps = options.apps;
  const script: Step[] = [];
  for (let k = 0; k < clients; k++) {
    if (k === 4 && apps === undefined) continue;
    script.push([k, {
      type: "Authenticate",
      data: {
        app_id: apps?.[k % apps.length] ?? "orbit",
        ...(k !== 4 ? { game_data_format: "message_pack" } : {}),
        ...(k < clients - 1 && k !== 4 ? { features: ["presence-events"] } : {}),
      },
    }]);
  }
  /**
   * `message` with one field the checks of docs/spec/PROTOCOL.md §7.2.1 / §7.9 refuse (game
   * name, player or spectator name, room code, `max_players`), or join-only without a code.
   */
  const spoilt = (message: { data: Record<string, unknown> }) => {
    const data = { ...message.data };
    const nameKey = "player_name" in data ? "player_name" : "spectator_name";
    const field = pick(["game_name", "name", "room_code", "max_players", "never"]);
    if (field === "game_name") data.game_name = pick(["", "g".repeat(65)]);
    else if (field === "name") data[nameKey] = pick(["", "n".repeat(33)]);
    else if (field === "room_code") data.room_code = pick(["AB1", "ROOM-1"]);
    else if (field === "max_players" && nameKey === "player_name") {
      data.max_players = pick([0, 101]);
    } else if (nameKey === "player_name") {
      data.room_code = null;
      data.create = "never";
    }
    return { ...message, data };
  };
  for (let step = 0; step < steps; step++) {
    const who = Math.floor(random() * clients);
    const roll = random();
    let message: unknown;
    if (roll < 0.2) {
      // A join or creation by code, now and then join-only (E9), without a code (a generated
      // one) or with E11's authority handover.
      const kind = random();
      message = join(pick(names), kind < 0.1 ? null : pick(codes), {
        max_players: pick([2, 3, 4]),
        ...(kind > 0.9
          ? { create: "always" }
          : kind > 0.8
          ? { create: "never" }
          : kind > 0.7
          ? { authority_handover: true }
          : {}),
      });
      if (random() < 0.15) message = spoilt(message as { data: Record<string, unknown> });
    } else if (roll < 0.28) {
      message = {
        type: "JoinAsSpectator",
        data: { game_name: "orbit", room_code: pick(codes), spectator_name: pick(names) },
      };
      if (random() < 0.15) message = spoilt(message as { data: Record<string, unknown> });
    } else if (roll < 0.36) {
      message = { type: "GameData", data: { data: { step, from: who } } };
    } else if (roll < 0.38) {
      // An HTTP lookup of a room by code, or the game's listing (docs/spec/EXTENSIONS.md E5, E6).
      // With apps, mostly in the client's own app's namespace, sometimes in the other's.
      const app = apps && (random() < 0.7 ? apps[who % apps.length] : pick(apps));
      message = {
        ...(random() < 0.7
          ? { http: "lookup", code: random() < 0.5 ? `ROOMCODE${who}` : pick(codes) }
          : { http: "list" }),
        ...(app !== undefined ? { app } : {}),
      } satisfies HttpStep;
    } else if (roll < 0.45) {
      // Binary game data: a value JSON recipients get converted, or one they cannot (bytes).
      message = {
        binary: random() < 0.7 ? { step, from: who } : new Uint8Array([step & 255, who]),
      } satisfies BinaryStep;
    } else if (roll < 0.55) {
      const to = Math.floor(random() * clients);
      message = { type: "GameData", data: { data: `to ${to}`, to_player: `PLAYER${to}` } };
    } else if (roll < 0.65) {
      message = { type: "PlayerReady" };
    } else if (roll < 0.73) {
      message = { type: "AuthorityRequest", data: { become_authority: random() < 0.7 } };
    } else if (roll < 0.78) {
      message = {
        type: "ProvideConnectionInfo",
        data: { connection_info: { type: "direct", host: `10.1.1.${who}`, port: 7000 + step } },
      };
    } else if (roll < 0.86) {
      message = { type: "LeaveRoom" };
    } else if (roll < 0.89) {
      message = { type: "LeaveSpectator" };
    } else if (roll < 0.94) {
      message = DROP;
    } else if (roll < 0.96) {
      // The operator closes a room, removes a player or (now and then) turns maintenance mode
      // on or off (docs/spec/EXTENSIONS.md E12).
      const k = Math.floor(random() * clients);
      // Mostly the room client k last joined (`ROOMCODE<k>`).
      const code = random() < 0.8 ? `ROOMCODE${k}` : pick(codes);
      const kind = random();
      message = kind < 0.4
        ? { operator: "close", code } satisfies OperatorStep
        : kind < 0.8
        ? { operator: "remove_player", code, player: `PLAYER${k}` } satisfies OperatorStep
        : { operator: "maintenance", code: "", enabled: random() < 0.6 } satisfies OperatorStep;
    } else if (roll < 0.99) {
      // Resume (or take over) the seat of any client, its own included.
      const k = Math.floor(random() * clients);
      message = {
        type: "Reconnect",
        data: { player_id: `PLAYER${k}`, room_id: `ROOMID${k}`, auth_token: `TOKEN${k}` },
      };
    } else {
      message = { type: "Ping" };
    }
    script.push([who, message]);
  }
  return script;
}
