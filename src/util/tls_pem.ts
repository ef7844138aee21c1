/**
 * Checking the TLS certificate chain and private key of `security.transport.tls`
 * (docs/spec/SERVER.md §2.6 rule 2, §3.10) before serving with them: both must parse and the key
 * must be the certificate's, or every handshake fails while the server looks healthy; a
 * certificate out of its validity period, or near its end, is worth a warning.
 *
 * @module
 */
import { createPrivateKey, X509Certificate } from "node:crypto";

/** A certificate that ends within this many days is warned about. */
export const CERTIFICATE_WARNING_DAYS = 14;

/** One day, ms. */
export const DAY_MS = 86_400_000;

/**
 * What {@linkcode checkTlsPem} found: the file at fault (`certificate_path`, `private_key_path`)
 * and the rule it breaks, or a usable pair with its validity period and, when it is out of that
 * period or ends within {@linkcode CERTIFICATE_WARNING_DAYS}, a warning.
 */
export type TlsPemCheck =
  | { ok: false; file: "certificate_path" | "private_key_path"; rule: string }
  | { ok: true; validFrom: Date; validTo: Date; warning: string | undefined };

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function day(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/** `ms` in whole days, as words: "less than a day", "1 day", "13 days". */
function span(ms: number): string {
  const days = Math.floor(ms / DAY_MS);
  return days === 0 ? "less than a day" : days === 1 ? "1 day" : `${days} days`;
}

/**
 * A failed check in words that follow "Cannot serve TLS:" or start a reason: "the certificate …"
 * or "the private key …" and the rule it breaks.
 */
export function tlsPemProblem(
  check: { file: "certificate_path" | "private_key_path"; rule: string },
): string {
  return `the ${check.file === "certificate_path" ? "certificate" : "private key"} ${check.rule}`;
}

/**
 * Checks the PEM certificate chain `cert` (its first certificate is the server's) and the PEM
 * private key `key` (unencrypted PKCS#8, PKCS#1 or SEC1) at `now` (ms since the epoch). Never
 * throws: a file that does not parse, or a key that is not the certificate's, is reported with
 * the rule it breaks, worded to follow the key's name in an error line.
 */
export function checkTlsPem(cert: string, key: string, now: number = Date.now()): TlsPemCheck {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (error) {
    return {
      ok: false,
      file: "certificate_path",
      rule: `is not a PEM certificate (${reason(error)})`,
    };
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    return {
      ok: false,
      file: "private_key_path",
      rule: `is not an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1) (${reason(error)})`,
    };
  }
  let matches: boolean;
  try {
    matches = certificate.checkPrivateKey(privateKey);
  } catch {
    matches = false; // e.g. an EC key for an RSA certificate
  }
  if (!matches) {
    return {
      ok: false,
      file: "private_key_path",
      rule:
        "is not the private key of the certificate in security.transport.tls.certificate_path " +
        "(every TLS handshake would fail)",
    };
  }
  const validFrom = new Date(certificate.validFrom);
  const validTo = new Date(certificate.validTo);
  const left = validTo.getTime() - now;
  const warning = left <= 0
    ? `the certificate expired on ${day(validTo)} (${span(-left)} ago): clients refuse it`
    : validFrom.getTime() > now
    ? `the certificate is not valid before ${day(validFrom)}: clients refuse it until then`
    : left < CERTIFICATE_WARNING_DAYS * DAY_MS
    ? `the certificate expires on ${validTo.toISOString()}, in ${span(left)}: renew it`
    : undefined;
  return { ok: true, validFrom, validTo, warning };
}
