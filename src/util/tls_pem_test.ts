import { deepEqual, equal, match, ok } from "node:assert/strict";
import { EC_KEY, RSA_KEY, selfSigned } from "../../tests/certificates.ts";
import { checkTlsPem } from "./tls_pem.ts";

/** A self-signed certificate for 127.0.0.1 valid 30 days and its key (`newkey`: RSA or EC). */
async function selfSignedPair(newkey: readonly string[]): Promise<{ cert: string; key: string }> {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-pem-" });
  try {
    const made = await selfSigned(dir, { days: 30, newkey });
    return { cert: made.certPem, key: made.keyPem };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const RSA = RSA_KEY;
const EC = EC_KEY;

Deno.test("checkTlsPem() accepts a certificate with its own key and refuses another key", async () => {
  const [a, b, ec] = await Promise.all([
    selfSignedPair(RSA),
    selfSignedPair(RSA),
    selfSignedPair(EC),
  ]);
  const good = checkTlsPem(a.cert, a.key);
  ok(good.ok);
  equal(good.warning, undefined);
  equal(checkTlsPem(ec.cert, ec.key).ok, true);
  const foreign = {
    ok: false,
    file: "private_key_path",
    rule: "is not the private key of the certificate in security.transport.tls.certificate_path " +
      "(every TLS handshake would fail)",
  };
  deepEqual(checkTlsPem(a.cert, b.key), foreign);
  // Another key type: an EC key for an RSA certificate, and the other way round.
  deepEqual(checkTlsPem(a.cert, ec.key), foreign);
  deepEqual(checkTlsPem(ec.cert, a.key), foreign);
  // A chain: the first certificate is the server's.
  equal(checkTlsPem(`${a.cert}${b.cert}`, a.key).ok, true);
  deepEqual(checkTlsPem(`${b.cert}${a.cert}`, a.key), foreign);
});

Deno.test("checkTlsPem() names the file that does not parse", async () => {
  const { cert, key } = await selfSignedPair(EC);
  const garbage = checkTlsPem("garbage\n", key);
  equal(garbage.ok, false);
  ok(!garbage.ok && garbage.file === "certificate_path");
  match(!garbage.ok ? garbage.rule : "", /^is not a PEM certificate \(/);
  for (const bad of ["", "not a key\n", cert]) {
    const checked = checkTlsPem(cert, bad);
    ok(!checked.ok && checked.file === "private_key_path", bad);
    match(
      !checked.ok ? checked.rule : "",
      /^is not an unencrypted PEM private key \(PKCS#8, PKCS#1 or SEC1\) \(/,
    );
  }
  equal(checkTlsPem(key, cert).ok, false);
});

Deno.test("checkTlsPem() warns when the certificate has expired, is not valid yet or expires within 14 days", async () => {
  const { cert, key } = await selfSignedPair(RSA);
  const valid = checkTlsPem(cert, key);
  if (!valid.ok) throw new Error(valid.rule);
  const { validFrom, validTo } = valid;
  const day = 86_400_000;
  equal(Math.round((validTo.getTime() - validFrom.getTime()) / day), 30);
  const at = (now: number) => {
    const checked = checkTlsPem(cert, key, now);
    return checked.ok ? checked.warning : checked.rule;
  };
  const to = validTo.toISOString();
  equal(at(validTo.getTime() - 15 * day), undefined);
  equal(
    at(validTo.getTime() - 13.5 * day),
    `the certificate expires on ${to}, in 13 days: renew it`,
  );
  equal(
    at(validTo.getTime() - 1000),
    `the certificate expires on ${to}, in less than a day: renew it`,
  );
  equal(at(validTo.getTime() - 1.5 * day), `the certificate expires on ${to}, in 1 day: renew it`);
  equal(
    at(validTo.getTime() + 3.5 * day),
    `the certificate expired on ${to.slice(0, 10)} (3 days ago): clients refuse it`,
  );
  equal(
    at(validFrom.getTime() - day),
    `the certificate is not valid before ${validFrom.toISOString().slice(0, 10)}: clients ` +
      "refuse it until then",
  );
});
