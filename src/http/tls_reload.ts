/**
 * A renewed certificate served without a restart (docs/spec/SERVER.md §3.10 note, README "TLS
 * without a proxy"): the files of `security.transport.tls` are looked at every
 * {@linkcode TLS_CHECK_INTERVAL_MS}; when either changed (size, modification time or inode,
 * through symbolic links, as a renewal tool writes or relinks them), the pair is read again and,
 * when usable, served to every later handshake. A pair that is not usable (a key that is not the
 * certificate's, say, between a renewal tool's two writes) leaves the served one in place with one
 * WARN line, and is looked at again when the files change again. A served certificate that ends
 * within 14 days (`CERTIFICATE_WARNING_DAYS`), or has ended, is warned about once a day.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { checkTlsPem, DAY_MS, type TlsPemCheck } from "../util/tls_pem.ts";
import type { TlsPem } from "./listener.ts";

const log = getLogger(["signal-fish", "tls"]);

/** How often the certificate and key files are looked at, ms. */
export const TLS_CHECK_INTERVAL_MS = 60_000;

/** The paths of `security.transport.tls` and what serves a new pair. */
export interface TlsReloadOptions {
  /** `security.transport.tls.certificate_path`. */
  certificatePath: string;
  /** `security.transport.tls.private_key_path`. */
  privateKeyPath: string;
  /** The pair served at start (already checked). */
  served: TlsPem;
  /**
   * Serves a pair from the next handshake on and returns its check (`Listener.setTls`); throws
   * when it is not usable.
   */
  apply(pem: TlsPem): TlsPemCheck & { ok: true };
  /** Reads a file's text. @default Deno.readTextFileSync */
  readTextFile?: (path: string) => string;
}

/** The served certificate's end and the files' last state; {@linkcode TlsReload.check} on a timer. */
export class TlsReload {
  readonly #options: TlsReloadOptions;
  readonly #read: (path: string) => string;
  /** The files' state when last read: `<size>:<mtime>:<ino>` of both. */
  #seen: string;
  #served: TlsPem;
  #validTo: Date | undefined;
  /** The day (ms since the epoch / DAY_MS) of the last expiry warning. */
  #warnedDay = -1;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(options: TlsReloadOptions, now: number = Date.now()) {
    this.#options = options;
    this.#read = options.readTextFile ?? Deno.readTextFileSync;
    this.#seen = this.#signature();
    this.#served = options.served;
    const checked = checkTlsPem(options.served.cert, options.served.key, now);
    this.#validTo = checked.ok ? checked.validTo : undefined;
    // The start-up check has warned about the certificate today already.
    if (checked.ok && checked.warning !== undefined) this.#warnedDay = Math.floor(now / DAY_MS);
  }

  /** When the served certificate ends (`notAfter`), or `undefined` if it cannot be read. */
  get validTo(): Date | undefined {
    return this.#validTo;
  }

  /**
   * Looks at the files once at `now` (ms): serves a changed, usable pair, warns about an unusable
   * one (once per change) and about a served certificate near or past its end (once a day).
   * Returns what happened. Never throws.
   */
  check(now: number = Date.now()): "unchanged" | "reloaded" | "refused" {
    const signature = this.#signature();
    let outcome: "unchanged" | "reloaded" | "refused" = "unchanged";
    if (signature !== this.#seen) {
      this.#seen = signature;
      outcome = this.#reload(now);
    }
    const day = Math.floor(now / DAY_MS);
    if (day !== this.#warnedDay) {
      const checked = checkTlsPem(this.#served.cert, this.#served.key, now);
      if (checked.ok && checked.warning !== undefined) {
        this.#warnedDay = day;
        log.warn("The TLS certificate served from {path}: {warning}", {
          path: this.#options.certificatePath,
          warning: checked.warning,
        });
      }
    }
    return outcome;
  }

  /** Checks the files every `intervalMs` until the returned function is called. */
  start(intervalMs: number = TLS_CHECK_INTERVAL_MS): () => void {
    this.#timer = setInterval(() => this.check(), intervalMs);
    Deno.unrefTimer(this.#timer);
    return () => clearInterval(this.#timer);
  }

  #reload(now: number): "reloaded" | "refused" {
    const { certificatePath, privateKeyPath } = this.#options;
    let pem: TlsPem;
    try {
      pem = { cert: this.#read(certificatePath), key: this.#read(privateKeyPath) };
    } catch (error) {
      return this.#refused(`cannot read it (${error})`);
    }
    let checked: TlsPemCheck & { ok: true };
    try {
      checked = this.#options.apply(pem);
    } catch (error) {
      return this.#refused(error instanceof Error ? error.message : String(error));
    }
    this.#served = pem;
    this.#validTo = checked.validTo;
    log.info("Serving the TLS certificate read again from {path}: valid until {validTo}", {
      path: certificatePath,
      validTo: checked.validTo.toISOString(),
    });
    if (checked.warning !== undefined) {
      this.#warnedDay = Math.floor(now / DAY_MS);
      log.warn("The TLS certificate served from {path}: {warning}", {
        path: certificatePath,
        warning: checked.warning,
      });
    }
    return "reloaded";
  }

  #refused(reason: string): "refused" {
    log.warn(
      "The TLS files changed but cannot be served: {reason}; still serving the certificate valid until {validTo}",
      { reason, validTo: this.#validTo?.toISOString() ?? "unknown" },
    );
    return "refused";
  }

  /** Size, modification time and inode of both files (through links); `-` for one not there. */
  #signature(): string {
    const { certificatePath, privateKeyPath } = this.#options;
    return [certificatePath, privateKeyPath].map((path) => {
      try {
        const info = Deno.statSync(path);
        return `${info.size}:${info.mtime?.getTime()}:${info.ino}`;
      } catch {
        return "-";
      }
    }).join("|");
  }
}
