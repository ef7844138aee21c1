/**
 * A small round-robin TCP proxy for tests (issue 15 item 3, the cluster research note's test plan
 * §6.2 "conformance through a load balancer"): it listens on a free 127.0.0.1 port and pipes
 * each accepted connection, both directions, to the next of N upstream ports in turn — a load
 * balancer without sticky sessions, in front of the instances of a cluster (docs/spec/SERVER.md
 * §8.1). An end of stream is passed on as a half-close; both sockets are closed once both directions
 * are over, or 5 s after the first one ended. Bounded: at most
 * `maxConnections` piped at once (more are closed on accept), one fixed 16 KiB buffer per
 * direction.
 *
 * @module
 */

/** A running proxy. */
export interface TcpProxy extends AsyncDisposable {
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  /** Connections accepted so far, refused ones included. */
  readonly accepted: number;
  /** Connections piped now. */
  readonly active: number;
  /** How many accepted connections went to each upstream, in `upstreams` order. */
  readonly perUpstream: readonly number[];
  /**
   * Stops listening and closes every piped connection (both sockets); resolves once the accept
   * loop and every pump have ended. Idempotent.
   */
  close(): Promise<void>;
  /** Stops accepting (new connections are refused by the OS); piped ones carry on. Idempotent. */
  stopListening(): void;
  /**
   * Sends connections accepted from now on to `upstreams` (ports on 127.0.0.1) instead; piped
   * ones stay where they are, as behind a virtual IP, DNS name or proxy moved after a Redis
   * failover. `perUpstream` keeps counting by position.
   */
  retarget(upstreams: readonly number[]): void;
}

/** Options of {@linkcode startTcpProxy}. */
export interface TcpProxyOptions {
  /** Most connections piped at once; further ones are closed on accept. @default 2048 */
  maxConnections?: number;
}

const BUFFER_BYTES = 16 * 1024;
/** How long one direction may go on after the other has ended, ms. */
const LINGER_MS = 5_000;

/**
 * Copies `from` to `to` until `from` ends, then half-closes `to` (FIN), as a load balancer does.
 * If writing to `to` fails (its peer is gone), it keeps reading and discarding `from` until that
 * ends too, so unread bytes never turn the other side's close into a reset that could destroy a
 * close frame still in flight. Never rejects.
 */
async function pump(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(BUFFER_BYTES);
  let writable = true;
  try {
    for (;;) {
      const n = await from.read(buffer);
      if (n === null) break;
      try {
        for (let offset = 0; writable && offset < n;) {
          offset += await to.write(buffer.subarray(offset, n));
        }
      } catch {
        writable = false;
      }
    }
  } catch {
    // `from` was reset, or closed by close(): this direction is over.
  }
  try {
    await to.closeWrite();
  } catch { /* already closed */ }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/**
 * Starts a proxy on a free 127.0.0.1 port in front of `upstreams` (ports on 127.0.0.1). The n-th
 * accepted connection goes to `upstreams[n % upstreams.length]`; if that upstream refuses, the
 * client's connection is closed (as a load balancer with a dead backend would).
 */
export function startTcpProxy(
  upstreams: readonly number[],
  options: TcpProxyOptions = {},
): TcpProxy {
  if (upstreams.length === 0) throw new Error("a proxy needs at least one upstream");
  let targets = [...upstreams];
  const maxConnections = options.maxConnections ?? 2048;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const perUpstream = upstreams.map(() => 0);
  const open = new Set<Deno.Conn>();
  const pipes = new Set<Promise<void>>();
  let accepted = 0;
  let active = 0;
  let listening = true;
  let closed = false;

  const pipe = async (client: Deno.TcpConn, upstreamPort: number) => {
    let upstream: Deno.TcpConn;
    try {
      upstream = await Deno.connect({ hostname: "127.0.0.1", port: upstreamPort });
    } catch {
      open.delete(client);
      closeQuietly(client);
      return;
    }
    if (closed) {
      open.delete(client);
      closeQuietly(client);
      closeQuietly(upstream);
      return;
    }
    open.add(upstream);
    try {
      upstream.setNoDelay(true);
      client.setNoDelay(true);
    } catch { /* not fatal */ }
    const directions = [pump(client, upstream), pump(upstream, client)];
    // Once one direction is over, the other gets LINGER_MS to finish before both are closed.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race(directions);
    await Promise.race([
      Promise.all(directions),
      new Promise((resolve) => timer = setTimeout(resolve, LINGER_MS)),
    ]);
    clearTimeout(timer);
    for (const conn of [client, upstream]) {
      open.delete(conn);
      closeQuietly(conn);
    }
    await Promise.all(directions);
  };

  const acceptLoop = (async () => {
    for (;;) {
      let client: Deno.TcpConn;
      try {
        client = await listener.accept();
      } catch {
        return; // the listener was closed
      }
      const n = accepted++;
      if (active >= maxConnections) {
        closeQuietly(client);
        continue;
      }
      const target = n % targets.length;
      perUpstream[target] = (perUpstream[target] ?? 0) + 1;
      active++;
      open.add(client);
      const done = pipe(client, targets[target]!).finally(() => {
        active--;
        pipes.delete(done);
      });
      pipes.add(done);
    }
  })();

  const stopListening = () => {
    if (!listening) return;
    listening = false;
    try {
      listener.close();
    } catch { /* already closed */ }
  };

  const close = async () => {
    closed = true;
    stopListening();
    await acceptLoop;
    for (const conn of open) closeQuietly(conn);
    open.clear();
    while (pipes.size > 0) await Promise.all([...pipes]);
  };

  return {
    port,
    get accepted() {
      return accepted;
    },
    get active() {
      return active;
    },
    perUpstream,
    close,
    stopListening,
    retarget: (next) => {
      if (next.length === 0) throw new Error("a proxy needs at least one upstream");
      targets = [...next];
    },
    [Symbol.asyncDispose]: close,
  };
}
