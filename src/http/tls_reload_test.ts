/**
 * A renewed certificate served without a restart (src/http/tls_reload.ts, docs/spec/SERVER.md §3.10
 * note): a real HTTPS listener, certificates made by openssl, and handshakes that report which
 * certificate they were given.
 */
import { equal, ok, throws } from "node:assert/strict";
import tls from "node:tls";
import { selfSigned } from "../../tests/certificates.ts";
import { listen, type TlsPem } from "./listener.ts";
import { TlsReload } from "./tls_reload.ts";

/** A self-signed certificate for 127.0.0.1 named `/CN=<name>`, valid `days`, made in `dir`. */
async function certificate(dir: string, name: string, days: number): Promise<TlsPem> {
  const made = await selfSigned(dir, { name, days });
  return { cert: made.certPem, key: made.keyPem };
}

/** The common name of the certificate a new handshake with `port` is given. */
function servedName(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      const name = socket.getPeerCertificate().subject?.CN;
      socket.end();
      resolve(String(name));
    });
    socket.on("error", reject);
  });
}

Deno.test("TlsReload: renewed files are served to the next handshake; a pair that does not match keeps the served one until the files change again", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-tls-reload-" });
  const certPath = `${dir}/cert.pem`;
  const keyPath = `${dir}/key.pem`;
  const first = await certificate(dir, "first", 30);
  const renewed = await certificate(dir, "renewed", 90);
  await Deno.writeTextFile(certPath, first.cert);
  await Deno.writeTextFile(keyPath, first.key);
  const listener = await listen({
    hostname: "127.0.0.1",
    port: 0,
    tls: first,
    handler: () => new Response("ok"),
  });
  try {
    const reload = new TlsReload({
      certificatePath: certPath,
      privateKeyPath: keyPath,
      served: first,
      apply: (pem) => listener.setTls(pem),
    });
    const port = listener.addr.port;
    equal(await servedName(port), "first");
    equal(reload.check(), "unchanged");
    const firstEnd = reload.validTo!.getTime();
    ok(Math.abs(firstEnd - (Date.now() + 30 * 86_400_000)) < 2 * 86_400_000, String(firstEnd));
    // A renewal tool writes the certificate first: the new certificate with the old key is not a
    // pair, so the served one stays.
    await Deno.writeTextFile(certPath, renewed.cert);
    equal(reload.check(), "refused");
    equal(await servedName(port), "first");
    equal(reload.validTo!.getTime(), firstEnd);
    // Unchanged since: not read again.
    equal(reload.check(), "unchanged");
    // Then the key: the pair is served from the next handshake on.
    await Deno.writeTextFile(keyPath, renewed.key);
    equal(reload.check(), "reloaded");
    equal(await servedName(port), "renewed");
    ok(reload.validTo!.getTime() > firstEnd + 50 * 86_400_000);
    equal(reload.check(), "unchanged");
    // Files that vanish (a renewal tool relinking them) are not a pair either.
    await Deno.remove(keyPath);
    equal(reload.check(), "refused");
    equal(await servedName(port), "renewed");
  } finally {
    await listener.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Listener.setTls refuses a pair that does not match, and plain HTTP", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-tls-reload-" });
  const a = await certificate(dir, "a", 30);
  const b = await certificate(dir, "b", 30);
  const secure = await listen({
    hostname: "127.0.0.1",
    port: 0,
    tls: a,
    handler: () => new Response("ok"),
  });
  const plain = await listen({ hostname: "127.0.0.1", port: 0, handler: () => new Response("ok") });
  try {
    throws(
      () => secure.setTls({ cert: b.cert, key: a.key }),
      /is not the private key of the certificate/,
    );
    equal(await servedName(secure.addr.port), "a");
    throws(() => plain.setTls(b), /does not serve TLS/);
  } finally {
    await secure.shutdown();
    await plain.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
