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

/**
 * Runs tasks one at a time per key: a task for a key with a task still running starts when that
 * one has settled (whatever its outcome). A task for a free key runs at once, and its answer is
 * returned as it is (a value stays a value). Used where a budget is read, then charged after an
 * asynchronous step, so that concurrent requests of one client address cannot all read it before
 * any is charged (the failed-`Authenticate` budget, docs/spec/SERVER.md §3.4, §8.3). Memory: one
 * entry per key with a task running.
 */
export class OneAtATime {
  readonly #running = new Map<string, Promise<void>>();

  /** Keys with a task running or waiting. */
  get size(): number {
    return this.#running.size;
  }

  /** Runs `task` for `key` when the key's earlier tasks have settled; its answer. */
  run<T>(key: string, task: () => Awaitable<T>): Awaitable<T> {
    const previous = this.#running.get(key);
    const answer = previous === undefined ? task() : previous.then(task);
    if (answer instanceof Promise) {
      const settled: Promise<void> = answer.then(() => {}, () => {});
      this.#running.set(key, settled);
      settled.then(() => {
        if (this.#running.get(key) === settled) this.#running.delete(key);
      });
    }
    return answer;
  }
}
