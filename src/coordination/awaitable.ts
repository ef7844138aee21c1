/**
 * `Awaitable<T>`: what a coordination seam answers (docs/spec/SERVER.md §8.9). The in-memory
 * implementations answer synchronously, so single-instance mode never awaits; a Redis
 * implementation answers with a Promise. Callers that can wait use {@linkcode then}; the
 * common GameData path calls no seam that can answer asynchronously (docs/spec/SERVER.md §8.4.2 item 5).
 *
 * @module
 */

/** A value now, or a Promise of it. */
export type Awaitable<T> = T | Promise<T>;

/** Applies `next` to `value` at once when it is not a Promise, else when it resolves. */
export function then<T, U>(value: Awaitable<T>, next: (value: T) => U): Awaitable<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}
