import { deepEqual, equal, throws } from "node:assert/strict";
import { KeyedBuckets, TokenBucket } from "./token_bucket.ts";
import { creationLimitReason, joinLimitReason, RateLimits } from "./rate_limits.ts";

const T0 = 1_000_000;

Deno.test("TokenBucket.take() starts full, empties, then refills continuously", () => {
  const bucket = new TokenBucket(5, 60_000);
  for (let i = 0; i < 5; i++) equal(bucket.take(T0).ok, true, `token ${i + 1}`);
  // One token comes back every 60 s / 5 = 12 s.
  deepEqual(bucket.take(T0), { ok: false, retryAfterSecs: 12 });
  deepEqual(bucket.take(T0 + 11_000), { ok: false, retryAfterSecs: 1 });
  deepEqual(bucket.take(T0 + 11_999), { ok: false, retryAfterSecs: 1 });
  equal(bucket.take(T0 + 12_000).ok, true);
  deepEqual(bucket.take(T0 + 12_000), { ok: false, retryAfterSecs: 12 });
  // A long pause refills to capacity, never beyond it.
  for (let i = 0; i < 5; i++) equal(bucket.take(T0 + 10 * 60_000).ok, true);
  equal(bucket.take(T0 + 10 * 60_000).ok, false);
});

Deno.test("TokenBucket.take() rounds the wait up to whole seconds, at least 1", () => {
  const bucket = new TokenBucket(3, 1_000); // a token every 333.3 ms
  for (let i = 0; i < 3; i++) bucket.take(T0);
  deepEqual(bucket.take(T0), { ok: false, retryAfterSecs: 1 });
  const slow = new TokenBucket(1, 90_500);
  slow.take(T0);
  deepEqual(slow.take(T0), { ok: false, retryAfterSecs: 91 });
  deepEqual(slow.take(T0 + 90_000), { ok: false, retryAfterSecs: 1 });
});

Deno.test("TokenBucket refuses a capacity or window below 1", () => {
  throws(() => new TokenBucket(0, 1000), RangeError);
  throws(() => new TokenBucket(1, 0), RangeError);
});

Deno.test("KeyedBuckets keeps one bucket per key", () => {
  const buckets = new KeyedBuckets(1, 60_000);
  equal(buckets.take("10.0.0.1", T0).ok, true);
  equal(buckets.take("10.0.0.1", T0).ok, false);
  equal(buckets.take("10.0.0.2", T0).ok, true);
  equal(buckets.size, 2);
});

Deno.test("KeyedBuckets.sweep() forgets buckets full for longer than the window only", () => {
  const buckets = new KeyedBuckets(2, 60_000);
  buckets.take("a", T0); // full again at T0 + 30 s
  buckets.take("b", T0);
  buckets.take("b", T0); // full again at T0 + 60 s
  buckets.sweep(T0 + 90_000); // a: full for exactly the window, kept
  equal(buckets.size, 2);
  buckets.sweep(T0 + 90_001);
  equal(buckets.size, 1);
  buckets.sweep(T0 + 120_001);
  equal(buckets.size, 0);
  // A forgotten bucket comes back full: forgetting changes nothing a client can see.
  equal(buckets.take("b", T0 + 120_001).ok, true);
  equal(buckets.take("b", T0 + 120_001).ok, true);
  equal(buckets.take("b", T0 + 120_001).ok, false);
});

Deno.test("KeyedBuckets.sweepDue() sweeps at its first call, then at most once per window", () => {
  const buckets = new KeyedBuckets(2, 60_000);
  buckets.take("a", T0); // full again at T0 + 30 s, forgettable after T0 + 90 s
  buckets.sweepDue(T0); // the first call sweeps (nothing to forget yet)
  equal(buckets.size, 1);
  buckets.sweepDue(T0 + 59_999); // not due: the last sweep was less than a window ago
  buckets.sweepDue(T0 + 95_000); // due, and "a" is forgotten
  equal(buckets.size, 0);
  buckets.take("b", T0 + 95_000); // forgettable after T0 + 185 s
  buckets.sweepDue(T0 + 154_999); // not due (a window after the last sweep is T0 + 155 s)
  equal(buckets.size, 1);
  buckets.sweepDue(T0 + 186_000);
  equal(buckets.size, 0);
});

Deno.test("KeyedBuckets stays within maxKeys under many source addresses", () => {
  const buckets = new KeyedBuckets(5, 60_000, 1000);
  // 50,000 distinct IPv6 addresses, each taking one token, all within one window.
  for (let i = 0; i < 50_000; i++) {
    equal(buckets.take(`2001:db8::${i.toString(16)}`, T0 + i).ok, true);
    if (buckets.size > 1000) throw new Error(`size ${buckets.size} after ${i + 1} keys`);
  }
  equal(buckets.size, 1000);
  // The most recently used buckets are the ones kept.
  equal(buckets.take("2001:db8::c34f", T0 + 50_000).ok, true); // key 49999
  equal(buckets.size, 1000);
  // Once they have been full for a window, a sweep forgets all of them.
  buckets.sweep(T0 + 50_000 + 2 * 60_000 + 1);
  equal(buckets.size, 0);
});

Deno.test("KeyedBuckets at maxKeys drops the least recently used bucket", () => {
  const buckets = new KeyedBuckets(1, 60_000, 2);
  buckets.take("first", T0);
  buckets.take("second", T0 + 1);
  buckets.take("first", T0 + 2); // refused, but makes "first" the most recently used
  buckets.take("third", T0 + 3); // drops "second"
  equal(buckets.size, 2);
  equal(buckets.take("first", T0 + 4).ok, false, "first is still remembered (and empty)");
  equal(buckets.take("second", T0 + 5).ok, true, "second was forgotten, so it starts full");
});

Deno.test("RateLimits keeps separate creation and join buckets per IP", () => {
  const limits = new RateLimits({ maxRoomCreations: 1, maxJoinAttempts: 2, windowMs: 60_000 });
  equal(limits.takeCreation("1.1.1.1", T0).ok, true);
  deepEqual(limits.takeCreation("1.1.1.1", T0), { ok: false, retryAfterSecs: 60 });
  equal(limits.takeJoin("1.1.1.1", T0).ok, true);
  equal(limits.takeJoin("1.1.1.1", T0).ok, true);
  deepEqual(limits.takeJoin("1.1.1.1", T0 + 1_000), { ok: false, retryAfterSecs: 29 });
  equal(limits.takeCreation("2.2.2.2", T0).ok, true);
  equal(limits.size, 3);
  limits.sweep(T0 + 3 * 60_000);
  equal(limits.size, 0);
  equal(
    creationLimitReason(7),
    "Room creation rate limit exceeded. Try again in 7 seconds.",
  );
  equal(joinLimitReason(1), "Join attempt rate limit exceeded. Try again in 1 seconds.");
});

Deno.test("KeyedBuckets.check() tells whether a take would succeed without taking", () => {
  const buckets = new KeyedBuckets(2, 60_000);
  deepEqual(buckets.check("a", 0), { ok: true });
  equal(buckets.size, 0, "checking remembers nothing");
  buckets.take("a", 0);
  deepEqual(buckets.check("a", 0), { ok: true });
  deepEqual(buckets.check("a", 0), { ok: true }, "a check takes nothing");
  buckets.take("a", 0);
  deepEqual(buckets.check("a", 0), { ok: false, retryAfterSecs: 30 });
  deepEqual(buckets.check("a", 30_000), { ok: true });
  deepEqual(buckets.check("b", 0), { ok: true }, "keys are separate");
});

Deno.test("RateLimits in cluster mode: reconnect tokens are taken elsewhere; the failed-Authenticate budget is the edge's verdict", () => {
  const limits = new RateLimits({
    maxRoomCreations: 1,
    maxJoinAttempts: 1,
    maxReconnectAttempts: 1,
    maxAuthFailures: 1,
    windowMs: 60_000,
    roomTokensElsewhere: true,
    authFailuresElsewhere: true,
  });
  for (let i = 0; i < 3; i++) deepEqual(limits.takeReconnect("10.0.0.1", T0), { ok: true });
  // The verdict the edge read from Redis is what the engine sees, and only while it runs.
  const refused = { ok: false as const, retryAfterSecs: 7 };
  const seen = limits.withAuthVerdict(refused, () => limits.canFailAuth("10.0.0.1", T0));
  deepEqual(seen, { result: refused, charged: false });
  deepEqual(limits.canFailAuth("10.0.0.1", T0), { ok: true });
  // A failure charged inside is reported to the edge, not taken here.
  const failed = limits.withAuthVerdict({ ok: true }, () => {
    limits.chargeAuthFailure("10.0.0.1", T0);
    return "answered";
  });
  deepEqual(failed, { result: "answered", charged: true });
  deepEqual(limits.canFailAuth("10.0.0.1", T0), { ok: true });
  deepEqual(limits.withAuthVerdict({ ok: true }, () => 1), { result: 1, charged: false });
});
