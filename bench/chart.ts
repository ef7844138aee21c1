/**
 * Draws `bench/results/chart.svg` from the comparison JSON: one bar per target, the ratio ours /
 * baseline, the baseline at 1×, and the target's goal zone shaded, so a met target is a bar that
 * ends in the green band.
 *
 * ```sh
 * deno task bench:chart [--out bench/results/chart.svg] [compare.json …]   # later files win
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Comparison, Metric } from "./compare.ts";

const WIDTH = 860;
const LABEL_WIDTH = 340;
const ROW_HEIGHT = 62;
const TOP = 78;
const PLOT_LEFT = LABEL_WIDTH + 10;
const PLOT_WIDTH = WIDTH - PLOT_LEFT - 30;
/** A white outline behind label text, so it stays legible where it crosses a line. */
const HALO = 'stroke="#ffffff" stroke-width="3" paint-order="stroke"';
const COLOR = { met: "#2e7d32", missed: "#c62828", none: "#9e9e9e", zone: "#e8f5e9" };

function escape(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** A figure with as many decimals as it needs: 17814, 20.83, 0.754. */
function figure(value: number | null): string {
  if (value === null) return "-";
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 1 ? 2 : 3;
  return value.toFixed(digits);
}

/** Renders the comparison as a standalone SVG document. */
export function renderChart(comparison: Comparison): string {
  const metrics = comparison.metrics;
  const scaleMax = Math.max(
    2,
    ...metrics.map((m) => Math.ceil(((m.ratio ?? 0) * 1.1) * 2) / 2),
    ...metrics.map((m) => m.target * 1.2),
  );
  const x = (ratio: number) => PLOT_LEFT + (Math.min(ratio, scaleMax) / scaleMax) * PLOT_WIDTH;
  const height = TOP + metrics.length * ROW_HEIGHT + 48;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
      `viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="16" y="26" font-size="17" font-weight="600">Signal Fish for Deno vs the baseline ` +
      `relay (ratio ours / baseline)</text>`,
  );
  const m = comparison.machine;
  const pressure = comparison.cpuPressure === null
    ? ""
    : `; CPU contended up to ${Math.round(comparison.cpuPressure * 100)} % of the time`;
  const rounds = comparison.roundsMax !== undefined && comparison.roundsMax !== comparison.rounds
    ? `${comparison.rounds}–${comparison.roundsMax}`
    : `${comparison.rounds}`;
  out.push(
    `<text x="16" y="46" fill="#555">${
      escape(
        `${
          comparison.createdAt.slice(0, 16).replace("T", " ")
        } UTC · ${m.nproc} cores ${m.cpuModel} · ` +
          `Deno ${m.deno} · median of ${rounds} interleaved runs${pressure}`,
      )
    }</text>`,
    `<text x="16" y="64" fill="#555">Green band: where the target is met. ` +
      `Dashed line: the baseline (1×).</text>`,
  );
  if ((comparison.cpuPressure ?? 0) > 0.1) {
    out.push(
      `<text x="${WIDTH - 16}" y="64" fill="${COLOR.missed}" text-anchor="end">` +
        `Busy machine: indicative figures only</text>`,
    );
  }
  metrics.forEach((metric: Metric, i) => {
    const top = TOP + i * ROW_HEIGHT;
    const barY = top + 26;
    const barH = 20;
    const zoneFrom = metric.better === "higher" ? x(metric.target) : x(0);
    const zoneTo = metric.better === "higher" ? x(scaleMax) : x(metric.target);
    const color = metric.met === null ? COLOR.none : metric.met ? COLOR.met : COLOR.missed;
    out.push(
      `<text x="16" y="${top + 16}"><tspan font-weight="600">${escape(metric.title)}</tspan>` +
        (metric.notes?.length
          ? `<tspan dx="10" fill="#e65100" font-size="12">⚠ ${
            escape(metric.notes.join("; "))
          }</tspan>`
          : "") +
        `</text>`,
      `<rect x="${zoneFrom}" y="${top + 22}" width="${
        zoneTo - zoneFrom
      }" height="28" fill="${COLOR.zone}"/>`,
      `<text x="16" y="${barY + 15}" fill="#555" font-size="12">${
        escape(
          `ours ${figure(metric.oursMedian)} / baseline ${figure(metric.baselineMedian)} ` +
            `${metric.unit}, ${metric.better} is better`,
        )
      }</text>`,
    );
    if (metric.ratio !== null) {
      out.push(
        `<rect x="${x(0)}" y="${barY}" width="${
          x(metric.ratio) - x(0)
        }" height="${barH}" fill="${color}"/>`,
      );
    }
    out.push(
      `<line x1="${x(metric.target)}" x2="${x(metric.target)}" y1="${top + 20}" y2="${
        top + 52
      }" stroke="${COLOR.met}" stroke-width="2"/>`,
    );
    const label = metric.ratio === null
      ? "no data"
      : `${metric.ratio.toFixed(2)}× (goal ${
        metric.better === "higher" ? "≥" : "≤"
      } ${metric.target}×)`;
    const end = x(metric.ratio ?? 0);
    // The label goes right of the bar, or inside its end when the bar reaches the right edge.
    out.push(
      end + 6 + 170 <= WIDTH
        ? `<text x="${end + 6}" y="${barY + 15}" fill="${color}" font-weight="600" ${HALO}>${
          escape(label)
        }</text>`
        : `<text x="${end - 6}" y="${
          barY + 15
        }" fill="#ffffff" font-weight="600" text-anchor="end">${escape(label)}</text>`,
    );
  });
  const axisY = TOP + metrics.length * ROW_HEIGHT + 4;
  out.push(
    `<line x1="${x(1)}" x2="${
      x(1)
    }" y1="${TOP}" y2="${axisY}" stroke="#333" stroke-dasharray="4 3"/>`,
    `<line x1="${x(0)}" x2="${x(scaleMax)}" y1="${axisY}" y2="${axisY}" stroke="#333"/>`,
  );
  for (let tick = 0; tick <= scaleMax + 1e-9; tick += 0.5) {
    out.push(
      `<line x1="${x(tick)}" x2="${x(tick)}" y1="${axisY}" y2="${axisY + 5}" stroke="#333"/>`,
      `<text x="${x(tick)}" y="${axisY + 19}" text-anchor="middle">${tick}×</text>`,
    );
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/**
 * Combines comparisons, e.g. a full run and a later rerun of some experiments: each target is
 * taken from the newest comparison that has a ratio for it. The header shows the oldest date,
 * the range of round counts and the highest CPU pressure (our own server and generator count in
 * it: churn keeps both busy).
 */
export function mergeComparisons(comparisons: readonly Comparison[]): Comparison {
  const sorted = [...comparisons].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  const newest = sorted[sorted.length - 1];
  if (!newest) throw new TypeError("Cannot merge zero comparisons");
  const metrics = newest.metrics.map((metric) =>
    [...sorted].reverse().map((c) => c.metrics.find((m) => m.id === metric.id))
      .find((m) => m?.ratio !== null && m !== undefined) ?? metric
  );
  const pressures = sorted.map((c) => c.cpuPressure).filter((p): p is number => p !== null);
  return {
    ...newest,
    createdAt: sorted[0]!.createdAt,
    rounds: Math.min(...sorted.map((c) => c.rounds)),
    roundsMax: Math.max(...sorted.map((c) => c.roundsMax ?? c.rounds)),
    metrics,
    cpuPressure: pressures.length ? Math.max(...pressures) : null,
    runs: [],
  };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      out: { type: "string", default: new URL("./results/chart.svg", import.meta.url).pathname },
    },
  });
  const inputs = positionals.length > 0
    ? positionals
    : [new URL("./results/compare.json", import.meta.url).pathname];
  const comparisons = await Promise.all(
    inputs.map(async (path) => JSON.parse(await Deno.readTextFile(path)) as Comparison),
  );
  await Deno.writeTextFile(values.out, renderChart(mergeComparisons(comparisons)));
  console.log(`wrote ${values.out} from ${inputs.join(", ")}`);
}
