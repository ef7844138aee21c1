/**
 * Items grouped by client address key (docs/spec/SERVER.md §1.9: an IPv4 address or an IPv6
 * network), with the address that has the most of them found in O(1). The held seats' caps use
 * it (`server.max_held_seats_per_ip`, and which hold `server.max_held_seats` ends first,
 * docs/spec/SERVER.md §4.6): an address past its share gives up its own oldest item, and the
 * instance-wide cap takes from the address that has the most.
 *
 * Items of the empty address (unknown: a seat restored from a state file, an in-process test)
 * are not grouped: {@linkcode add} and {@linkcode remove} ignore them.
 */
export class PerAddress<T> {
  /** Each address's items, in the order they were added (the first is the oldest). */
  readonly #items = new Map<string, Set<T>>();
  /**
   * `#byCount[n]`: the addresses that have exactly `n` items, in the order they reached `n`
   * (index 0 unused).
   */
  readonly #byCount: Set<string>[] = [];
  /** The largest `n` with a non-empty `#byCount[n]`, 0 when no address has an item. */
  #most = 0;

  /** Adds `item` to `address`'s items (nothing for the empty address or an item already in). */
  add(address: string, item: T): void {
    if (address === "") return;
    let items = this.#items.get(address);
    if (!items) this.#items.set(address, items = new Set());
    const before = items.size;
    items.add(item);
    if (items.size !== before) this.#moved(address, before, items.size);
  }

  /** Removes `item` from `address`'s items, if it is there. */
  remove(address: string, item: T): void {
    const items = this.#items.get(address);
    if (!items?.delete(item)) return;
    if (items.size === 0) this.#items.delete(address);
    this.#moved(address, items.size + 1, items.size);
  }

  /** How many items `address` has. */
  count(address: string): number {
    return this.#items.get(address)?.size ?? 0;
  }

  /** The item `address` added first of those it still has. */
  oldest(address: string): T | undefined {
    return this.#items.get(address)?.values().next().value;
  }

  /**
   * The address with the most items and that number; of several with as many, the one that
   * reached it first. Undefined when no address has an item.
   */
  most(): { address: string; count: number } | undefined {
    if (this.#most === 0) return undefined;
    const address = this.#byCount[this.#most]!.values().next().value!;
    return { address, count: this.#most };
  }

  /** Number of addresses with at least one item. */
  get addresses(): number {
    return this.#items.size;
  }

  #moved(address: string, from: number, to: number): void {
    if (from > 0) this.#byCount[from]!.delete(address);
    if (to > 0) (this.#byCount[to] ??= new Set()).add(address);
    if (to > this.#most) this.#most = to;
    // Counts move by one, so the new largest is at most one lower.
    while (this.#most > 0 && (this.#byCount[this.#most]?.size ?? 0) === 0) this.#most--;
  }
}
