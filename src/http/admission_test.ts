import { deepEqual, equal, throws } from "node:assert/strict";
import {
  clientIp,
  DEFAULT_MAX_CONNECTIONS,
  ipKey,
  maxConnections,
  parseIp,
  parseNetwork,
  parseOpenFileLimit,
  readOpenFileLimit,
  TrustedProxies,
} from "./admission.ts";

Deno.test("parseIp() reads IPv4, IPv6, mapped IPv4 and zone ids; rejects the rest", () => {
  deepEqual(parseIp("10.1.2.3"), new Uint8Array([10, 1, 2, 3]));
  deepEqual(parseIp("::ffff:10.1.2.3"), new Uint8Array([10, 1, 2, 3]));
  deepEqual(parseIp("::1"), new Uint8Array([...new Array(15).fill(0), 1]));
  deepEqual(parseIp("fe80::1%eth0"), parseIp("fe80::1"));
  deepEqual(parseIp("[2001:db8::1]"), parseIp("2001:db8:0:0:0:0:0:1"));
  for (const bad of ["", "1.2.3", "1.2.3.256", "01234.1.1.1", "::1::", "1:2:3:4:5:6:7:8:9", "x"]) {
    equal(parseIp(bad), undefined, bad);
  }
});

Deno.test("TrustedProxies.has() matches addresses and CIDR ranges of both families", () => {
  const trusted = new TrustedProxies([
    "10.0.0.0/8",
    "192.168.1.1",
    "fd00::/8",
    "::ffff:172.16.0.0/108",
  ]);
  equal(trusted.has("10.200.3.4"), true);
  equal(trusted.has("::ffff:10.0.0.1"), true);
  equal(trusted.has("11.0.0.1"), false);
  equal(trusted.has("192.168.1.1"), true);
  equal(trusted.has("192.168.1.2"), false);
  equal(trusted.has("fdab::1"), true);
  equal(trusted.has("fe00::1"), false);
  equal(trusted.has("172.16.9.9"), true);
  equal(trusted.has("172.32.0.1"), false);
  equal(trusted.has("not an ip"), false);
  equal(parseNetwork("10.0.0.0/33"), undefined);
  throws(() => new TrustedProxies(["10.0.0.0/x"]), /trusted_proxies entry "10.0.0.0\/x"/);
});

Deno.test("clientIp() walks X-Forwarded-For from the right, skipping trusted entries (§1.9)", () => {
  const trusted = new TrustedProxies(["10.0.0.0/8"]);
  // Untrusted peer: the header is ignored.
  equal(clientIp("203.0.113.9", "198.51.100.1", trusted), "203.0.113.9");
  // Trusted peer: right-most untrusted entry wins, spoofed left entries are ignored.
  equal(clientIp("10.0.0.1", "1.1.1.1, 198.51.100.7, 10.0.0.2", trusted), "198.51.100.7");
  equal(clientIp("10.0.0.1", "2001:db8::5", trusted), "2001:db8::5");
  // Invalid right-most untrusted entry, every entry trusted, or no header: the peer.
  equal(clientIp("10.0.0.1", "1.1.1.1, garbage", trusted), "10.0.0.1");
  equal(clientIp("10.0.0.1", "10.9.9.9, 10.8.8.8", trusted), "10.0.0.1");
  equal(clientIp("10.0.0.1", null, trusted), "10.0.0.1");
  equal(clientIp("10.0.0.1", "1.1.1.1", new TrustedProxies([])), "10.0.0.1");
});

Deno.test("maxConnections() prefers the setting, else the open-file limit minus headroom", () => {
  const limits = [
    "Limit                     Soft Limit           Hard Limit           Units     ",
    "Max processes             63460                63460                processes ",
    "Max open files            256                  4096                 files     ",
  ].join("\n");
  equal(parseOpenFileLimit(limits), 256);
  equal(parseOpenFileLimit("Max open files  unlimited  unlimited  files"), undefined);
  equal(readOpenFileLimit(() => limits), 256);
  equal(
    readOpenFileLimit(() => {
      throw new Deno.errors.NotCapable("no");
    }),
    undefined,
  );
  deepEqual(maxConnections(50, 256), { limit: 50, source: "config" });
  deepEqual(maxConnections(null, 256), { limit: 192, source: "open-file limit" });
  deepEqual(maxConnections(null, 65536), { limit: 58982, source: "open-file limit" });
  deepEqual(maxConnections(null, 20), { limit: 1, source: "open-file limit" });
  deepEqual(maxConnections(null, undefined), { limit: DEFAULT_MAX_CONNECTIONS, source: "default" });
});

Deno.test("ipKey() keys IPv6 by its /64 (configurable), IPv4 and mapped IPv4 by the address", () => {
  // Every address of one /64 shares a key; the next /64 has another.
  const sameNet = ["2001:db8:1:2::1", "2001:DB8:1:2:ffff:ffff:ffff:ffff", "[2001:db8:1:2::9]"]
    .map((ip) => ipKey(ip, 64));
  deepEqual(new Set(sameNet), new Set(["2001:db8:1:2::/64"]));
  equal(ipKey("2001:db8:1:3::1", 64), "2001:db8:1:3::/64");
  equal(ipKey("fe80::1%eth0", 64), "fe80::/64");
  equal(ipKey("::1", 64), "::/64");
  // Other prefix lengths, non-byte boundaries included.
  equal(ipKey("2001:db8:1:2::1", 48), "2001:db8:1::/48");
  equal(ipKey("2001:db8:1:2::1", 56), "2001:db8:1::/56");
  equal(ipKey("2001:db8:1:ff::1", 60), "2001:db8:1:f0::/60");
  equal(ipKey("2001:db8::1", 128), "2001:db8::1");
  equal(ipKey("1:0:0:2:0:0:0:3", 128), "1:0:0:2::3", "the longest zero run is shortened");
  equal(ipKey("1:0:0:2:0:0:3:4", 128), "1::2:0:0:3:4", "the first of equal runs");
  equal(ipKey("1:2:3:4:5:6:0:8", 128), "1:2:3:4:5:6:0:8", "a single zero group stays");
  equal(ipKey("2001:db8::1", 0), "::/0");
  // IPv4 is keyed by the address (/32), whether written as IPv4 or IPv4-mapped IPv6.
  equal(ipKey("192.0.2.7", 64), "192.0.2.7");
  equal(ipKey("::ffff:192.0.2.7", 64), "192.0.2.7");
  equal(ipKey("::FFFF:c000:0207", 64), "192.0.2.7");
  equal(ipKey("Unknown", 64), "unknown");
  // Written with leading zeros or out of range: parsed, not taken as written.
  equal(ipKey("192.000.02.7", 64), "192.0.2.7");
  equal(ipKey("0.0.0.0", 64), "0.0.0.0");
  equal(ipKey("256.0.0.1", 64), "256.0.0.1");
  equal(ipKey("1.2.3", 64), "1.2.3");
  equal(ipKey("1.2.3.4.", 64), "1.2.3.4.");
  // At /128 the key is the normalised address: mapped IPv4 → IPv4, lower case, no zone id.
  deepEqual(
    ["::ffff:10.1.2.3", "FE80::1%eth0", "127.0.0.1", "2001:DB8::1"].map((ip) => ipKey(ip, 128)),
    ["10.1.2.3", "fe80::1", "127.0.0.1", "2001:db8::1"],
  );
});
