/**
 * Shared helpers for the client library's tests (tests/client_*_test.ts): waiting for one event,
 * matching a typed refusal, and an in-memory session store.
 *
 * @module
 */
import { deepEqual, ok } from "node:assert/strict";
import { type ClientEvents, type SignalFishClient, SignalFishError } from "../src/client/client.ts";
import { TIMEOUT_MS } from "./helpers.ts";

/**
 * Resolves with the next `event` of `client` that `accept` takes (any, by default), or rejects
 * after `timeoutMs` (default {@link TIMEOUT_MS}); the listener is removed either way.
 */
export function nextEvent<E extends keyof ClientEvents>(
  client: SignalFishClient,
  event: E,
  accept: (payload: ClientEvents[E]) => boolean = () => true,
  timeoutMs: number = TIMEOUT_MS,
): Promise<ClientEvents[E]> {
  const { promise, resolve, reject } = Promise.withResolvers<ClientEvents[E]>();
  const timer = setTimeout(() => {
    off();
    reject(new Error(`Timed out waiting for ${event}`));
  }, timeoutMs);
  const off = client.on(event, (payload) => {
    if (!accept(payload)) return;
    off();
    clearTimeout(timer);
    resolve(payload);
  });
  return promise;
}

/**
 * An error matcher for `rejects()`: passes only a SignalFishError carrying `code` and
 * `messageType` (the server message that refused the request).
 */
export function refusedWith(code: string, messageType: string): (error: unknown) => true {
  return (error: unknown) => {
    ok(error instanceof SignalFishError, `expected SignalFishError, got ${error}`);
    deepEqual([error.code, error.messageType], [code, messageType]);
    return true;
  };
}

/**
 * A session store over a Map, as an app outside the browser would supply; `map` is exposed so a
 * test can look at what was stored.
 */
export function memoryStore(): {
  map: Map<string, string>;
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
} {
  const map = new Map<string, string>();
  return {
    map,
    getItem: (key: string) => map.get(key) ?? null,
    setItem: (key: string, value: string) => void map.set(key, value),
    removeItem: (key: string) => void map.delete(key),
  };
}
