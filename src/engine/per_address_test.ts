/** `PerAddress`: counts per address and the address with the most, against a plain recount. */
import { deepEqual, equal } from "node:assert/strict";
import { PerAddress } from "./per_address.ts";
import { prng } from "./testing.ts";

Deno.test("PerAddress: oldest item per address, the address with the most (first to reach it on ties)", () => {
  const groups = new PerAddress<string>();
  equal(groups.most(), undefined);
  groups.add("a", "a1");
  groups.add("b", "b1");
  groups.add("b", "b2");
  groups.add("a", "a2");
  groups.add("", "unknown"); // not grouped
  deepEqual(groups.most(), { address: "b", count: 2 }); // b reached two first
  equal(groups.oldest("a"), "a1");
  groups.remove("a", "a1");
  equal(groups.oldest("a"), "a2");
  groups.remove("b", "b1");
  groups.remove("b", "b2");
  deepEqual(groups.most(), { address: "a", count: 1 });
  equal(groups.addresses, 1);
  equal(groups.count(""), 0);
  groups.remove("a", "a2");
  equal(groups.most(), undefined);
  equal(groups.addresses, 0);
});

Deno.test("PerAddress: 5,000 random adds and removes agree with a recount", () => {
  const random = prng(29);
  const groups = new PerAddress<number>();
  const truth = new Map<string, number[]>();
  let next = 0;
  for (let step = 0; step < 5_000; step++) {
    const address = `ip${Math.floor(random() * 12)}`;
    const items = truth.get(address) ?? [];
    if (items.length > 0 && random() < 0.45) {
      const [item] = items.splice(Math.floor(random() * items.length), 1);
      groups.remove(address, item!);
      groups.remove(address, item!); // twice: the second does nothing
    } else {
      items.push(next);
      groups.add(address, next++);
    }
    truth.set(address, items);
    const counts = [...truth].map(([a, list]) => [a, list.length] as const);
    const most = Math.max(0, ...counts.map(([, n]) => n));
    equal(groups.most()?.count ?? 0, most, `step ${step}`);
    const top = groups.most();
    if (top) equal(truth.get(top.address)!.length, most);
    for (const [a, list] of truth) {
      equal(groups.count(a), list.length);
      equal(groups.oldest(a), list.length === 0 ? undefined : Math.min(...list));
    }
  }
});
