/**
 * The Deno counterpart of bench/wakeup/echo.c: echoes what it reads on loopback TCP, over
 * `Deno.listen` (`--node` = over `node:net`, the socket layer ours' transport sits on).
 * Usage: `deno run --allow-net bench/wakeup/echo.ts [--node] <port>` (BENCHMARKS.md "Session 32").
 * @module
 */
import { createServer } from "node:net";

const port = Number(Deno.args.at(-1));
if (Deno.args.includes("--node")) {
  createServer((socket) => {
    socket.setNoDelay(true);
    socket.on("data", (chunk) => socket.write(chunk));
  }).listen(port, "127.0.0.1");
} else {
  for await (const connection of Deno.listen({ hostname: "127.0.0.1", port })) {
    connection.setNoDelay(true);
    (async () => {
      const buffer = new Uint8Array(65536);
      try {
        for (let n = await connection.read(buffer); n !== null; n = await connection.read(buffer)) {
          await connection.write(buffer.subarray(0, n));
        }
      } catch {
        // The pinger went away.
      }
      connection.close();
    })();
  }
}
