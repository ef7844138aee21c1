/**
 * {@linkcode PublishWatch} (docs/spec/SERVER.md §8.5.1): only publishes left unanswered past the
 * timeout are reported, each once; while the oldest is one, new publishes are refused; a late
 * answer ends the refusal. Thousands of flights answered out of order keep the queue short.
 */
import { deepEqual, equal } from "node:assert/strict";
import { type Flight, PublishWatch } from "./publish_watch.ts";
import { until } from "./testing.ts";

Deno.test("PublishWatch times out only unanswered publishes, once each; refuses while the oldest is one", async () => {
  const timedOut: Flight[] = [];
  const watch = new PublishWatch(30, (flight) => timedOut.push(flight));
  try {
    const flights = Array.from({ length: 3000 }, (_, i) => watch.begin(`p${i % 3}`, i === 7));
    equal(watch.refuse(), false);
    // Everything answered but flights 1500 and 7 (a heartbeat), in reverse order.
    for (let i = flights.length - 1; i >= 0; i--) {
      if (i !== 1500 && i !== 7) equal(watch.end(flights[i]!), true);
    }
    equal(watch.pending, 2);
    await until(() => timedOut.length === 2, "two timeouts");
    deepEqual(timedOut.map((f) => [f.to, f.heartbeat]), [["p1", true], ["p0", false]]);
    equal(watch.timedOut, 2);
    // The oldest unanswered publish has timed out: new ones are refused (and counted).
    equal(watch.refuse(), true);
    equal(watch.refuse(), true);
    equal(watch.refused, 2);
    // Late answers: reported as late (false), and the refusal ends with the last of them.
    equal(watch.end(flights[7]!), false);
    equal(watch.refuse(), true, "flight 1500 is still unanswered");
    equal(watch.end(flights[1500]!), false);
    equal(watch.refuse(), false);
    equal(watch.pending, 0);
    // A new publish answered in time is never reported.
    const next = watch.begin("p2", false);
    equal(watch.end(next), true);
    await new Promise((resolve) => setTimeout(resolve, 60));
    equal(timedOut.length, 2);
  } finally {
    watch.close();
  }
});
