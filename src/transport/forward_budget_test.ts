import { equal, throws } from "node:assert/strict";
import { ForwardBudget } from "./forward_budget.ts";

const T0 = 1_000_000;

Deno.test("ForwardBudget: two seconds' worth go at once, then each byte in debt holds reads for its refill time", () => {
  const budget = new ForwardBudget({ perConnection: 1000, perIp: 1_000_000 });
  const conn = budget.connection();
  equal(budget.charge(conn, "198.51.100.1", 1500, T0), 0);
  equal(budget.charge(conn, "198.51.100.1", 500, T0), 0);
  // 250 bytes past the allowance at 1000 bytes/s: 250 ms.
  equal(budget.charge(conn, "198.51.100.1", 250, T0), 250);
  // 100 ms refill 100 bytes; 50 more leave a debt of 200: 200 ms.
  equal(budget.charge(conn, "198.51.100.1", 50, T0 + 100), 200);
  // Much later the bucket is full again, never more.
  equal(budget.charge(conn, "198.51.100.1", 2000, T0 + 60_000), 0);
  equal(budget.charge(conn, "198.51.100.1", 1, T0 + 60_000), 1);
});

Deno.test("ForwardBudget: connections of one address share its bucket; another address has its own", () => {
  const budget = new ForwardBudget({ perConnection: 1000, perIp: 1500 });
  const a = budget.connection();
  const b = budget.connection();
  const c = budget.connection();
  equal(budget.charge(a, "198.51.100.1", 2000, T0), 0);
  // b is within its own 2000 but the address has 1000 left of its 3000.
  equal(budget.charge(b, "198.51.100.1", 1000, T0), 0);
  equal(budget.charge(b, "198.51.100.1", 300, T0), 200);
  equal(budget.charge(c, "203.0.113.9", 2000, T0), 0);
});

Deno.test("ForwardBudget: addresses remembered stay within maxTrackedIps; rates below 1 are refused", () => {
  const budget = new ForwardBudget({ perConnection: 10, perIp: 10, maxTrackedIps: 3 });
  for (let i = 0; i < 50; i++) {
    const conn = budget.connection();
    budget.charge(conn, `198.51.100.${i}`, 100, T0 + i);
    equal(budget.trackedIps <= 3, true);
  }
  throws(() => new ForwardBudget({ perConnection: 0, perIp: 10 }), RangeError);
});

Deno.test("ForwardBudget: the maintenance sweep forgets addresses whose bucket is full again", () => {
  const budget = new ForwardBudget({ perConnection: 1000, perIp: 1000, maxTrackedIps: 10 });
  budget.charge(budget.connection(), "10.0.0.1", 500, 0);
  budget.charge(budget.connection(), "10.0.0.2", 5000, 0);
  equal(budget.trackedIps, 2);
  // 2000 bytes of allowance refilled at 1000 bytes/s: 10.0.0.1 is full again at 0.5 s, and
  // forgotten once it has been for a burst window (2 s); 10.0.0.2, in debt, at 5 s and 7 s.
  budget.sweep(2_400);
  equal(budget.trackedIps, 2);
  budget.sweep(2_600);
  equal(budget.trackedIps, 1, "10.0.0.1 forgotten");
  budget.sweep(60_000);
  equal(budget.trackedIps, 0);
});
