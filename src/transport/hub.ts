/**
 * The hub connects sockets to the engine: it enforces the inbound size limit, decodes frames,
 * hands messages to the engine and carries out the effects it returns (serialising each message
 * once, however many recipients it has). It owns no socket itself: peers are a `send`/`close`
 * pair, so the same hub serves tests, WebSockets and, later, connections on other instances.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  decodeClientMessage,
  encodeServerMessage,
  INVALID_CLIENT_MESSAGE,
} from "../protocol/codec.ts";
import type { ServerMessage } from "../protocol/messages.ts";
import type { ErrorCode } from "../protocol/error_codes.ts";
import type { ConnId, DisconnectLoss, Effect, Engine, EngineEvent } from "../engine/engine.ts";
import { utf8Length } from "../protocol/utf8.ts";
import type { Fanout, Peer } from "../coordination/fanout.ts";
import { type DeliveryFailure, LocalFanout } from "../coordination/memory.ts";
import { type TokenBinding, verifyProof } from "./token_binding.ts";

const log = getLogger(["signal-fish", "hub"]);
/** The frame every unparsable message gets (PROTOCOL.md §2.3), serialised once. */
const INVALID_FRAME = encodeServerMessage(INVALID_CLIENT_MESSAGE);
/** One GameData in this many is timed for the relay latency histogram (SERVER.md §6.5). */
export const RELAY_TIMING_SAMPLE = 16;

export type { Peer, SendFailure } from "../coordination/fanout.ts";

/** What the hub knows about a connection besides its peer. */
export interface PeerInfo {
  /** Client IP (SERVER.md §1.9). */
  ip: string;
  /** Set when the connection negotiated token binding: every text frame carries a proof. */
  tokenBinding?: TokenBinding;
}

/** Hub settings. */
export interface HubOptions {
  /** Largest accepted inbound frame in bytes (`security.max_message_size`). @default 65536 */
  maxMessageSize: number;
  /** Returns a fresh UUIDv4 connection id. */
  newId: () => string;
  /** Called for every engine event and for transport events (for metrics). */
  onEvent?: (event: HubEvent) => void;
  /**
   * Delivers room output to connections not attached to this hub (cluster mode). Frames for
   * local connections always go straight to their peers. @default undefined (single process)
   */
  remote?: Fanout;
}

/** Transport-level events reported alongside the engine's own. */
export type HubEvent =
  | EngineEvent
  | { type: "connected"; connectionId: ConnId; ip: string }
  /** `idleTimeout`: closed by the idle timeout (1001, no pong), SERVER.md §6.3 #44. */
  | { type: "disconnected"; connectionId: ConnId; ip: string; idleTimeout?: boolean }
  | { type: "invalid_message"; connectionId: ConnId; detail: string }
  | { type: "message_too_large"; connectionId: ConnId; size: number }
  /** A slow consumer was closed with 1013 (SERVER.md §5.2); `dropped` messages discarded. */
  | { type: "slow_consumer"; connectionId: ConnId; dropped: number }
  /** Messages discarded for connections with no seat to replay them to (SERVER.md §5.2). */
  | { type: "messages_dropped"; count: number }
  /** A reply carrying an `error_code` was sent (metrics: validation errors, SERVER.md §6.3). */
  | { type: "error_reply"; errorCode: ErrorCode }
  /** A connection was closed with 1011 after a handler exception (SERVER.md §1.11). */
  | { type: "internal_error"; connectionId: ConnId }
  /** The socket reported a transport error (SERVER.md §6.3 #27). */
  | { type: "websocket_error"; connectionId: ConnId }
  /** Time spent applying one message: engine plus effects, in seconds (SERVER.md §6.5). */
  | {
    type: "handled";
    message: "JoinRoom" | "GameData";
    /** What the message did; failed or dropped messages are not reported. */
    outcome: "created" | "joined" | "relayed";
    seconds: number;
  };

/** Routes frames between peers and the engine: the edge of SERVER.md §8.2 for one instance. */
export class Hub {
  readonly #engine: Engine;
  readonly #options: HubOptions;
  readonly #local = new LocalFanout();
  readonly #info = new Map<ConnId, PeerInfo>();
  #relayCount = 0;
  /** Nesting of {@linkcode Hub.#apply} (a teardown inside a batch applies its own effects). */
  #depth = 0;

  /** Creates a hub that feeds `engine`. */
  constructor(engine: Engine, options: HubOptions) {
    this.#engine = engine;
    this.#options = options;
  }

  /** Number of open connections. */
  get size(): number {
    return this.#local.size;
  }

  /**
   * Registers a connection accepted at `now` (ms) and returns its new connection id
   * (PROTOCOL.md §1.2).
   */
  connect(peer: Peer, info: PeerInfo, now: number = Date.now()): ConnId {
    const id = this.#options.newId();
    this.#local.attach(id, peer);
    this.#info.set(id, info);
    this.#engine.connect(id, { ip: info.ip, now });
    log.info("Connection {connection_id} opened from {client_ip}", {
      connection_id: id,
      client_ip: info.ip,
    });
    this.#options.onEvent?.({ type: "connected", connectionId: id, ip: info.ip });
    return id;
  }

  /**
   * Handles one inbound frame (SERVER.md §1.11) received at `now` (ms): size check, decode,
   * engine, effects. Frames from unknown or closing connections are ignored. Throws only on a bug.
   */
  receive(id: ConnId, frame: string | ArrayBuffer | Uint8Array, now: number): void {
    // Attached connections and `#info` entries come and go together (connect, disconnect).
    const info = this.#info.get(id);
    if (info === undefined) return;
    const size = typeof frame === "string"
      ? textSize(frame, this.#options.maxMessageSize)
      : frame.byteLength;
    if (size > this.#options.maxMessageSize) {
      this.#tooLarge(id, size, now);
      return;
    }
    if (typeof frame !== "string") {
      const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
      this.#apply(this.#engine.handleBinary(id, bytes, now), now);
      return;
    }
    const binding = info.tokenBinding;
    if (binding) {
      const proof = verifyProof(frame, binding.secret, binding);
      if (!proof.ok) {
        this.#bindingViolation(id, proof.message, proof.code, proof.close, now);
        return;
      }
      frame = proof.text;
    }
    const decoded = decodeClientMessage(frame);
    if (!decoded.ok) {
      log.debug("Invalid message from {connection_id}: {detail}", {
        connection_id: id,
        detail: decoded.detail,
      });
      this.#options.onEvent?.({
        type: "invalid_message",
        connectionId: id,
        detail: decoded.detail,
      });
      this.#deliver(INVALID_FRAME, [id], now);
      return;
    }
    const type = decoded.message.type;
    if (type !== "JoinRoom" && type !== "GameData") {
      this.#apply(this.#engine.handle(id, decoded.message, now), now);
      return;
    }
    // Relay latency is sampled (one GameData in RELAY_TIMING_SAMPLE): two clock reads per
    // frame cost more than the rest of the metrics on the hot path. Joins are always timed.
    if (type === "GameData" && ++this.#relayCount % RELAY_TIMING_SAMPLE !== 0) {
      this.#apply(this.#engine.handle(id, decoded.message, now), now);
      return;
    }
    const start = performance.now();
    const effects = this.#engine.handle(id, decoded.message, now);
    this.#apply(effects, now);
    const seconds = (performance.now() - start) / 1000;
    const outcome = outcomeOf(effects);
    if (outcome) this.#options.onEvent?.({ type: "handled", message: type, outcome, seconds });
  }

  /** Reports a transport error on a connection's socket (counted, SERVER.md §6.3 #27). */
  transportError(id: ConnId): void {
    this.#options.onEvent?.({ type: "websocket_error", connectionId: id });
  }

  /**
   * Handles a closed socket (SERVER.md §5.5): a player's seat is held or released, a spectator
   * detached. `loss` tells the engine about messages that could not be written; `code` is the
   * WebSocket close code, when known (for the log); `idleTimeout` says the socket was closed by
   * the idle timeout (metrics). Idempotent.
   */
  disconnect(
    id: ConnId,
    now: number,
    loss?: DisconnectLoss,
    code?: number,
    idleTimeout = false,
  ): void {
    const info = this.#info.get(id);
    if (!info) return;
    this.#local.detach(id);
    this.#info.delete(id);
    this.#apply(this.#engine.disconnect(id, now, loss), now);
    log.info("Connection {connection_id} closed ({code})", { connection_id: id, code });
    this.#options.onEvent?.({ type: "disconnected", connectionId: id, ip: info.ip, idleTimeout });
  }

  /** Closes a connection from the server side and tears it down at once. */
  close(id: ConnId, code: number, reason: string, now: number): void {
    if (!this.#local.has(id)) return;
    if (code === 1011) this.#options.onEvent?.({ type: "internal_error", connectionId: id });
    this.#local.close(id, code, reason);
    this.disconnect(id, now, undefined, code);
  }

  /**
   * Closes every connection (graceful shutdown, SERVER.md §1.1). Every socket is closed and
   * detached before any seat is released, so nobody gets room traffic about players who are
   * leaving with them (PROTOCOL.md §7.12: "nobody is left to notify").
   */
  closeAll(code: number, reason: string, now: number): void {
    const ids = this.#local.ids();
    for (const id of ids) this.#local.close(id, code, reason);
    for (const id of ids) this.#local.detach(id);
    for (const id of ids) this.disconnect(id, now);
  }

  /** Runs the engine's maintenance sweep (SERVER.md §4.2) and delivers its effects. */
  sweep(now: number): void {
    this.#apply(this.#engine.sweep(now), now);
  }

  /** Runs the engine's once-a-second timer (held-seat expiry) and delivers its effects. */
  tick(now: number): void {
    this.#apply(this.#engine.tick(now), now);
  }

  /** A refused token-binding proof (SERVER.md §3.9): `Error`, then close 1008 if `close`. */
  #bindingViolation(
    id: ConnId,
    message: string,
    code: ErrorCode,
    close: boolean,
    now: number,
  ): void {
    log.warn("Token binding violation on {connection_id}: {reason}", {
      connection_id: id,
      reason: message,
    });
    const frame = encodeServerMessage({ type: "Error", data: { message, error_code: code } });
    this.#deliver(frame, [id], now);
    if (close) this.close(id, 1008, "Token binding violation", now);
  }

  /** Closes connections whose auth deadline passed at `now` (ms) (SERVER.md §4.5). */
  expireAuthentication(now: number): void {
    this.#apply(this.#engine.expireAuthentication(now), now);
  }

  #tooLarge(id: ConnId, size: number, now: number): void {
    const max = this.#options.maxMessageSize;
    log.warn("Frame of {size} bytes from {connection_id} exceeds {max}", {
      connection_id: id,
      size,
      max,
    });
    this.#options.onEvent?.({ type: "message_too_large", connectionId: id, size });
    const message: ServerMessage = {
      type: "Error",
      data: {
        message: `Message too large (${size} bytes, max ${max} bytes)`,
        error_code: "MESSAGE_TOO_LARGE",
      },
    };
    const frame = encodeServerMessage(message);
    this.#deliver(frame, [id], now);
    this.close(id, 1009, "Message too large", now);
  }

  /**
   * Hands one frame to its recipients (SERVER.md §5.2): to each local peer, then to the remote
   * fanout. A peer whose socket is no longer open is torn down and the frame goes to its held
   * seat's replay buffer; a slow consumer is closed with 1013, its seat held as truncated.
   */
  #deliver(frame: string | Uint8Array, to: readonly ConnId[], now: number): void {
    const failed = this.#local.deliver(frame, to);
    this.#options.remote?.deliver(frame, to);
    if (failed) this.#undelivered(frame, failed, now);
    // Outside a batch of effects (a lone reply), write at once.
    if (this.#depth === 0) this.#local.flush();
  }

  #undelivered(frame: string | Uint8Array, failed: DeliveryFailure[], now: number): void {
    let dropped = 0;
    for (const { id, failure } of failed) {
      switch (failure.reason) {
        case "gone":
          // Torn down earlier in this batch: replay it if that connection's seat is held.
          if (!this.#engine.replayUndelivered(id, frame)) dropped++;
          break;
        case "closed":
          if (typeof frame === "string") this.disconnect(id, now, { unsent: [frame] });
          else this.disconnect(id, now, { truncated: true });
          break;
        case "overflow":
          log.warn("Closing slow consumer {connection_id} ({dropped} messages dropped)", {
            connection_id: id,
            dropped: failure.dropped,
          });
          dropped += failure.dropped;
          this.#options.onEvent?.({
            type: "slow_consumer",
            connectionId: id,
            dropped: failure.dropped,
          });
          // The seat is held from this decision, not from the socket's close event (§5.2).
          this.#local.close(id, 1013, "Slow consumer");
          this.disconnect(id, now, { truncated: true });
          break;
      }
    }
    if (dropped > 0) this.#options.onEvent?.({ type: "messages_dropped", count: dropped });
  }

  /** Carries out effects in order; each message is serialised once for all its recipients. */
  #apply(effects: Effect[], now: number): void {
    this.#depth++;
    try {
      this.#applyAll(effects, now);
    } finally {
      // Everything this event produced is queued: write it (batching, SERVER.md §5.3).
      if (--this.#depth === 0) this.#local.flush();
    }
  }

  #applyAll(effects: Effect[], now: number): void {
    for (const effect of effects) {
      switch (effect.kind) {
        case "send": {
          const frame = effect.frame ?? encodeServerMessage(effect.message);
          this.#deliver(frame, effect.to, now);
          const errorCode = (effect.message as { data?: { error_code?: ErrorCode } }).data
            ?.error_code;
          if (errorCode) this.#options.onEvent?.({ type: "error_reply", errorCode });
          break;
        }
        case "frame": {
          const frame = effect.frame;
          this.#deliver(frame, effect.to, now);
          break;
        }
        case "close":
          if (this.#local.has(effect.to)) {
            this.close(effect.to, effect.code, effect.reason, now);
          } else this.#options.remote?.close(effect.to, effect.code, effect.reason);
          break;
        case "event":
          logEvent(effect.event);
          this.#options.onEvent?.(effect.event);
          break;
      }
    }
  }
}

/**
 * UTF-8 size of a text frame, computed exactly only when it could exceed `limit` (a UTF-16 code
 * unit is at most 3 UTF-8 bytes).
 */
function textSize(text: string, limit: number): number {
  return text.length * 3 <= limit ? text.length : utf8Length(text);
}

/** What a JoinRoom or GameData achieved, read from its effects (for the latency histograms). */
function outcomeOf(effects: Effect[]): "created" | "joined" | "relayed" | undefined {
  for (const effect of effects) {
    if (effect.kind !== "event") continue;
    switch (effect.event.type) {
      case "room_created":
        return "created";
      case "room_joined":
        return "joined";
      case "game_data":
        return "relayed";
    }
  }
  return undefined;
}

function logEvent(event: EngineEvent): void {
  switch (event.type) {
    case "room_created":
      log.info("Room {room_code} created for {game_name}", {
        game_name: event.gameName,
        room_code: event.roomCode,
        room_id: event.roomId,
        player_id: event.playerId,
      });
      break;
    case "room_joined":
      log.debug("Player {player_id} joined room {room_code}", {
        game_name: event.gameName,
        room_code: event.roomCode,
        room_id: event.roomId,
        player_id: event.playerId,
      });
      break;
    case "seat_released":
      log.debug("Player {player_id} left room {room_code} ({reason})", {
        game_name: event.gameName,
        room_code: event.roomCode,
        player_id: event.playerId,
        reason: event.reason,
      });
      break;
    case "room_deleted":
      log.info("Room {room_code} deleted ({reason})", {
        game_name: event.gameName,
        room_code: event.roomCode,
        room_id: event.roomId,
        reason: event.reason,
      });
      break;
    case "spectator_joined":
    case "spectator_left":
      log.debug("Spectator {player_id} {action} room {room_code}", {
        game_name: event.gameName,
        room_code: event.roomCode,
        player_id: event.spectatorId,
        action: event.type === "spectator_joined" ? "joined" : "left",
      });
      break;
    case "seat_held":
      log.info("Seat of {player_id} in room {room_code} held for reconnection", {
        game_name: event.gameName,
        room_code: event.roomCode,
        player_id: event.playerId,
        truncated: event.truncated,
      });
      break;
    case "player_reconnected":
      log.info("Seat of {player_id} in room {room_code} restored", {
        game_name: event.gameName,
        room_code: event.roomCode,
        player_id: event.playerId,
        takeover: event.takeover,
        missed: event.missed,
      });
      break;
    case "seat_expired":
      log.info("Seat of {player_id} in room {room_code} expired", {
        game_name: event.gameName,
        room_code: event.roomCode,
        player_id: event.playerId,
      });
      break;
    case "authenticated":
      log.info("Client authenticated", { connection_id: event.connectionId, app_id: event.appId });
      break;
    case "auth_failed":
      log.warn("Authentication failed for {connection_id}: {error_code}", {
        connection_id: event.connectionId,
        error_code: event.errorCode,
      });
      break;
    default:
      break;
  }
}
