/**
 * The bundled client (`static/client.js`) under Node.js: the same file a browser imports must
 * run there too, and a throwing event listener must not end the process. Skipped when `node` is not installed; Node < 22 gets `--experimental-websocket`
 * (Node 22 has a global WebSocket).
 *
 * @module
 */
import { equal, ok } from "node:assert/strict";
import { serve } from "./helpers.ts";

function nodeVersion(): number | undefined {
  try {
    const { success, stdout } = new Deno.Command("node", { args: ["--version"] }).outputSync();
    return success ? Number(new TextDecoder().decode(stdout).match(/^v(\d+)/)?.[1]) : undefined;
  } catch {
    return undefined;
  }
}

const NODE_MAJOR = nodeVersion();

/**
 * Runs `script` as an ES module under Node with `url` as its argument; fails unless it exits 0.
 * Returns the JSON its stdout printed and its stderr.
 */
async function runNode<T>(script: string, url: string): Promise<{ result: T; stderr: string }> {
  const flags = NODE_MAJOR! < 22 ? ["--experimental-websocket", "--no-warnings"] : [];
  const output = await new Deno.Command("node", {
    args: [...flags, "--input-type=module", "-e", script, url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  equal(output.code, 0, stderr);
  return { result: JSON.parse(new TextDecoder().decode(output.stdout)) as T, stderr };
}

Deno.test({
  name: "static/client.js runs under Node.js: create a room, ping, leave",
  ignore: NODE_MAJOR === undefined || NODE_MAJOR < 20,
  async fn() {
    await using server = await serve();
    const bundle = new URL("../static/client.js", import.meta.url).href;
    const script = `
      const { SignalFishClient } = await import(${JSON.stringify(bundle)});
      const client = await SignalFishClient.connect(process.argv[1], { heartbeatIntervalMs: 0 });
      const auth = await client.authenticate({ app_id: "node", platform: "node" });
      const room = await client.createRoom({ game_name: "orbit", player_name: "node" });
      const rtt = await client.ping();
      await client.leave();
      await client.close();
      console.log(JSON.stringify({ app: auth.authenticated.app_name, code: room.room_code,
        rtt: typeof rtt, left: client.room === undefined, status: client.status }));
    `;
    const { result } = await runNode<
      { app: string; code: string; rtt: string; left: boolean; status: string }
    >(script, server.url);
    equal(result.app, "default");
    ok(/^[A-Z0-9]{6}$/.test(result.code), result.code);
    equal(result.rtt, "number");
    equal(result.left, true);
    equal(result.status, "closed");
  },
});

Deno.test({
  name: "static/client.js under Node.js: a throwing listener is reported, not fatal",
  ignore: NODE_MAJOR === undefined || NODE_MAJOR < 20,
  async fn() {
    await using server = await serve();
    const bundle = new URL("../static/client.js", import.meta.url).href;
    const script = `
      const { SignalFishClient } = await import(${JSON.stringify(bundle)});
      const hooked = [];
      const client = await SignalFishClient.connect(process.argv[1], {
        heartbeatIntervalMs: 0,
        onListenerError: (error, event) => hooked.push(event + ": " + error.message),
      });
      const plain = await SignalFishClient.connect(process.argv[1], { heartbeatIntervalMs: 0 });
      let after = 0;
      for (const c of [client, plain]) {
        c.once("room", () => { throw new Error("listener bug"); });
        c.on("room", () => after++);
        await c.createRoom({ game_name: "orbit", player_name: "node" });
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      const rtt = await plain.ping();
      await client.close();
      await plain.close();
      console.log(JSON.stringify({ hooked, after, rtt: typeof rtt }));
    `;
    const { result, stderr } = await runNode<{ hooked: string[]; after: number; rtt: string }>(
      script,
      server.url,
    );
    equal(result.hooked.join(), "room: listener bug");
    equal(result.after, 4, "every other listener ran (two joins, two closes)");
    equal(result.rtt, "number");
    ok(stderr.includes('a "room" listener threw: Error: listener bug'), stderr);
  },
});
