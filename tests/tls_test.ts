/**
 * TLS (docs/spec/SERVER.md §3.10): HTTPS and WSS on the configured port with a PEM certificate and key.
 * The certificate is self-signed by openssl for 127.0.0.1; the client runs in a subprocess started
 * with `--cert`, the way to make Deno's WebSocket client trust an extra root.
 */
import { deepEqual, equal, match, rejects } from "node:assert/strict";
import { serve } from "./helpers.ts";

async function selfSignedCertificate(dir: string): Promise<{ cert: string; key: string }> {
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  const { code, stderr } = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
    ], // deno-fmt-ignore
    stdout: "null",
    stderr: "piped",
  }).output();
  equal(code, 0, `openssl failed: ${new TextDecoder().decode(stderr)}`);
  return { cert, key };
}

Deno.test("With TLS enabled a wss:// client completes a game session", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-tls-" });
  try {
    const { cert, key } = await selfSignedCertificate(dir);
    await using server = await serve((config) => {
      config.security.transport.tls.enabled = true;
      config.security.transport.tls.certificate_path = cert;
      config.security.transport.tls.private_key_path = key;
    });
    match(server.url, /^https:\/\//);
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--cert",
        cert,
        "--allow-net",
        // npm:ws, loaded with the server's modules, reads these two when it loads.
        "--allow-env=WS_NO_BUFFER_UTIL,WS_NO_UTF_8_VALIDATE",
        new URL("./wss_client.ts", import.meta.url).pathname,
        server.url,
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    equal(code, 0, new TextDecoder().decode(stderr));
    deepEqual(JSON.parse(new TextDecoder().decode(stdout)), {
      health: 200,
      healthBody: "OK",
      relayed: { op: "hello-over-tls" },
    });
    // Plain HTTP is not served on the TLS port.
    await rejects(fetch(`${server.url.replace("https", "http")}/v2/health`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("A TLS key file without a key makes startup fail", async () => {
  const dir = await Deno.makeTempDir({ prefix: "signal-fish-tls-" });
  try {
    const { cert } = await selfSignedCertificate(dir);
    await Deno.writeTextFile(`${dir}/empty.pem`, "not a key\n");
    await rejects(serve((config) => {
      config.security.transport.tls.enabled = true;
      config.security.transport.tls.certificate_path = cert;
      config.security.transport.tls.private_key_path = `${dir}/empty.pem`;
    }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
