/**
 * Self-signed certificates for the TLS tests, made by openssl (installed by .ci/run).
 *
 * @module
 */

/** openssl's `-newkey` arguments for an EC P-256 key (the default). */
export const EC_KEY: readonly string[] = [
  "-newkey",
  "ec",
  "-pkeyopt",
  "ec_paramgen_curve:prime256v1",
];
/** openssl's `-newkey` arguments for an RSA 2048-bit key. */
export const RSA_KEY: readonly string[] = ["-newkey", "rsa:2048"];

/** A certificate and its key: the files written and their PEM text. */
export interface SelfSigned {
  /** Path of the PEM certificate. */
  cert: string;
  /** Path of the PEM private key (unencrypted). */
  key: string;
  /** The certificate's PEM text. */
  certPem: string;
  /** The key's PEM text. */
  keyPem: string;
}

/**
 * Writes a self-signed certificate for 127.0.0.1 and `localhost` (`/CN=<name>`, valid `days`
 * days, not a CA) and its key to `dir` as `<name>.crt` and `<name>.key`, `dir` created when
 * missing. Throws with openssl's message when it fails.
 */
export async function selfSigned(
  dir: string,
  { name = "localhost", days = 2, newkey = EC_KEY }: {
    name?: string;
    days?: number;
    newkey?: readonly string[];
  } = {},
): Promise<SelfSigned> {
  await Deno.mkdir(dir, { recursive: true });
  const cert = `${dir}/${name}.crt`;
  const key = `${dir}/${name}.key`;
  const { code, stderr } = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      ...newkey,
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      String(days),
      "-subj",
      `/CN=${name}`,
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
    ], // deno-fmt-ignore
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(`openssl failed: ${new TextDecoder().decode(stderr)}`);
  return {
    cert,
    key,
    certPem: await Deno.readTextFile(cert),
    keyPem: await Deno.readTextFile(key),
  };
}
