/**
 * The HTTP listener (SERVER.md §1.1, §3.10): `Deno.serve` over TCP or TLS, brought back when it
 * dies. `Deno.serve`'s accept loop ends for good when `accept()` fails, e.g. with "Too many open
 * files" (EMFILE) under a connection flood; upgraded WebSockets survive that, so re-binding the
 * same port after a short pause keeps the server reachable.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";

const log = getLogger(["signal-fish", "listener"]);

/** First pause before re-binding after the listener died, ms; doubles up to the maximum. */
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2_000;

/** PEM certificate chain and private key for HTTPS/WSS. */
export interface TlsPem {
  cert: string;
  key: string;
}

/** Options of {@linkcode listen}. */
export interface ListenOptions {
  hostname: string;
  /** TCP port; 0 picks a free one, which is then kept across re-binds. */
  port: number;
  /** Serve HTTPS/WSS with this certificate and key. @default plain HTTP */
  tls?: TlsPem;
  handler: Deno.ServeHandler<Deno.NetAddr>;
}

/** A bound listener. */
export interface Listener {
  /** The bound address (port resolved when 0 was asked for). */
  readonly addr: Deno.NetAddr;
  /** How often the listener died and was bound again (tests, logs). */
  readonly restarts: number;
  /** Stops accepting and waits for in-flight HTTP requests (not WebSockets) to finish. */
  shutdown(): Promise<void>;
}

/**
 * Binds and serves. Rejects when the first bind fails (port in use, bad certificate), so the
 * process can exit 1; later failures of the accept loop are logged and the port is bound again.
 */
export async function listen(options: ListenOptions): Promise<Listener> {
  let stopping = false;
  let restarts = 0;
  let current: Deno.HttpServer<Deno.NetAddr>;
  let wake: (() => void) | undefined;

  const bind = async (port: number): Promise<Deno.NetAddr> => {
    const { promise, resolve } = Promise.withResolvers<Deno.NetAddr>();
    const init = { hostname: options.hostname, port, onListen: resolve };
    current = options.tls
      ? Deno.serve({ ...init, cert: options.tls.cert, key: options.tls.key }, options.handler)
      : Deno.serve(init, options.handler);
    const addr = await promise;
    watch(current);
    return addr;
  };

  const addr = await bind(options.port);

  function watch(server: Deno.HttpServer<Deno.NetAddr>): void {
    server.finished.catch(async (error) => {
      if (stopping) return;
      log.error("The listener on port {port} failed, binding it again: {error}", {
        port: addr.port,
        error,
      });
      for (let delay = RETRY_MIN_MS; !stopping; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, delay);
        });
        clearTimeout(timer);
        wake = undefined;
        if (stopping) return;
        try {
          await bind(addr.port);
          restarts++;
          log.warn("Listening on port {port} again", { port: addr.port });
          return;
        } catch (bindError) {
          log.error("Cannot bind port {port} again: {error}", {
            port: addr.port,
            error: bindError,
          });
        }
      }
    });
  }

  return {
    addr,
    get restarts() {
      return restarts;
    },
    async shutdown() {
      stopping = true;
      wake?.();
      await current.shutdown().catch(() => {});
    },
  };
}
