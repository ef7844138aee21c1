/**
 * Everything the edge reports to its observers (metrics, logs, tests): the engine's events
 * plus the transport's own. One stream: `startServer` hands every event to the event log
 * (`metrics/event_log.ts`) and the server metrics through one observer.
 *
 * @module
 */
import type { ConnId, EngineEvent } from "../engine/effects.ts";
import type { ErrorCode } from "../protocol/error_codes.ts";
import type { AbnormalCause, CloseInitiator } from "./peer.ts";

/** Engine events and transport events. */
export type EdgeEvent =
  | EngineEvent
  | { type: "connected"; connectionId: ConnId; ip: string }
  /**
   * A connection ended, reported once (docs/spec/SERVER.md §6.3 #3, #97, §7.4): its close code,
   * who ended it, and for 1006 why there was no close handshake (`cause`) and the socket error
   * (`error`, when a read or write failed); `idleTimeout`: closed by the idle timeout (1001, no
   * pong), docs/spec/SERVER.md §6.3 #44. Fields as in `ConnectionEnd` (`peer.ts`).
   */
  | {
    type: "disconnected";
    connectionId: ConnId;
    ip: string;
    code: number;
    initiator: CloseInitiator;
    cause?: AbnormalCause;
    error?: string;
    idleTimeout?: boolean;
  }
  | { type: "invalid_message"; connectionId: ConnId; detail: string }
  /** A frame of `size` bytes over the limit `max` (docs/spec/SERVER.md §3.6). */
  | { type: "message_too_large"; connectionId: ConnId; size: number; max?: number }
  /**
   * A slow consumer was closed with 1013 (docs/spec/SERVER.md §5.2, §8.4.2): `dropped` messages
   * discarded (outbound buffer, or inbound frames queued behind a pending request).
   */
  | { type: "slow_consumer"; connectionId: ConnId; dropped: number }
  /** Messages discarded for connections with no seat to replay them to (docs/spec/SERVER.md §5.2). */
  | { type: "messages_dropped"; count: number }
  /** A reply carrying an `error_code` was sent (metrics: validation errors, docs/spec/SERVER.md §6.3). */
  | { type: "error_reply"; errorCode: ErrorCode }
  /**
   * A bug (docs/spec/SERVER.md §6.3 #26): a connection closed with 1011 after a handler exception
   * (§1.11), or an unexpected error of a cluster store call on an error path (a request's
   * resolution, answered `SERVICE_UNAVAILABLE`; a directory write, with no connection; §8.5.5).
   */
  | { type: "internal_error"; connectionId?: ConnId }
  /** The socket reported a transport error (docs/spec/SERVER.md §6.3 #27). */
  | { type: "websocket_error"; connectionId: ConnId }
  /** An upgrade refused by the per-IP connection limit (docs/spec/SERVER.md §3.5), counted as a rejection. */
  | { type: "rate_limited"; scope: "connections" }
  /** Time spent applying one message: engine plus effects, in seconds (docs/spec/SERVER.md §6.5). */
  | {
    type: "handled";
    message: "JoinRoom" | "GameData";
    /** What the message did; failed or dropped messages are not reported. */
    outcome: "created" | "joined" | "relayed";
    seconds: number;
  };
