/**
 * A strict reader of the Prometheus text exposition for tests (docs/spec/SERVER.md §6.2).
 *
 * @module
 */

/** Parses Prometheus text into `name{labels}` → value, checking HELP/TYPE precede samples. */
export function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (meta) {
      if (meta[1] === "TYPE") typed.add(meta[2]!);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!sample) throw new Error(`Cannot parse exposition line: ${line}`);
    const family = sample[1]!.replace(/_(bucket|sum|count)$/, "");
    if (!typed.has(sample[1]!) && !typed.has(family)) {
      throw new Error(`Sample before its TYPE line: ${line}`);
    }
    samples.set(sample[1]! + (sample[2] ?? ""), Number(sample[3]));
  }
  return samples;
}
