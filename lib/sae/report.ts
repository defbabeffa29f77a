// What notebook 04 shows of a training: the per-epoch table, metric curves, the density histogram and a few
// sentences.

import type { Figure, Trace } from "../display/figures";
import type { Row } from "../display/html-table";
import type { SaeMeta } from "./sae";
import { DENSE_FRACTION, type EpochMetrics } from "./metrics";
import type { SweepPoint } from "./sweep";


// ---------------------------------------------------------------------------------------------------------------
// What notebook 04 shows: tables and figures of the metrics

/** One table row per epoch. */
export function epochTable(history: readonly EpochMetrics[]): Row[] {
  return history.map((h) => ({
    epoch: h.epoch,
    loss: h.loss,
    recon: h.recon,
    sparsity: h.sparsity,
    aux: h.aux,
    MSE: h.mse,
    "explained var.": h.explainedVariance,
    L0: h.l0,
    dead: h.dead,
    dense: h.dense,
    "‖W_d row‖ min": h.decoderNorm.min,
    "‖W_d row‖ mean": h.decoderNorm.mean,
    "‖W_d row‖ max": h.decoderNorm.max,
    seconds: h.seconds,
  }));
}

/** One metric over the epochs as a line. */
export function epochFigure(history: readonly EpochMetrics[], metric: "explainedVariance" | "l0" | "dead" | "mse" | "loss", title: string): Figure {
  return {
    data: [{ type: "scatter", mode: "lines+markers", x: history.map((h) => h.epoch), y: history.map((h) => h[metric]) }],
    layout: { title, xaxis: { title: "epoch" }, yaxis: { title }, width: 600, height: 320 },
  };
}

/** log10 of each live feature's firing frequency (dead features, which never fired, counted in the title). */
export function densityHistogramFigure(metrics: EpochMetrics): Figure {
  const live = Array.from(metrics.density).filter((x) => x > 0).map((x) => Math.log10(x));
  return {
    data: [{ type: "histogram", x: live, xbins: { start: Math.floor(Math.min(-1, ...live)), end: 0.0001, size: 0.25 } }],
    layout: {
      title: `Feature density, epoch ${metrics.epoch} (${metrics.dead} dead features not shown)`,
      xaxis: { title: "log10(fraction of inputs the feature fires on)" },
      yaxis: { title: "features" },
      width: 650,
      height: 350,
    },
  };
}

/**
 * The sweep: L0 against explained variance, the frontier as a line, other SAEs (this run, the post's recipe) as
 * marked points. The y axis spans the sweep and this run; a marked point far below it (the post's recipe can
 * explain less variance than the mean face, i.e. a large negative fraction) is drawn on the bottom edge with its
 * true value in the legend.
 */
export function sweepFigure(points: readonly SweepPoint[], marked: readonly SweepPoint[]): Figure {
  const sorted = [...points].sort((a, b) => a.l0 - b.l0);
  const inRange = [...points, ...marked.slice(0, 1)].map((p) => p.explainedVariance);
  const bottom = Math.min(0, ...inRange) - 0.05;
  const top = Math.max(1, ...inRange) + 0.02;
  const fmt = (x: number): string => (Math.abs(x) >= 1e3 ? x.toExponential(1) : x.toFixed(3));
  return {
    data: [
      { type: "scatter", mode: "lines+markers", name: `sweep (${points[0]?.preset ?? ""} ${points[0]?.architecture ?? ""})`, x: sorted.map((p) => p.l0), y: sorted.map((p) => p.explainedVariance) },
      ...marked.map((p): Trace => {
        const off = p.explainedVariance < bottom;
        return { type: "scatter", mode: "markers", name: off ? `${p.label} (${fmt(p.explainedVariance)}, below)` : p.label, x: [p.l0], y: [off ? bottom : p.explainedVariance], marker: { size: 12 } };
      }),
    ],
    layout: {
      title: "Sparsity against reconstruction",
      xaxis: { title: "L0 (mean active features per face)" },
      yaxis: { title: "fraction of variance explained", range: [bottom, top] },
      width: 760,
      height: 420,
    },
  };
}


/** A few sentences on what the recipe gave: dead and dense features, sparsity, reconstruction. */
export function describeTraining(meta: SaeMeta, history: readonly EpochMetrics[]): string {
  const last = history[history.length - 1];
  const m = meta.dictionarySize;
  const pct = (x: number): string => `${(100 * x).toFixed(1)} %`;
  const lines = [
    `${meta.preset} preset, ${meta.architecture}${meta.architecture === "topk" ? ` (k = ${meta.k})` : ""}, ${m} features, ${history.length} epochs.`,
    `Last epoch: ${last.dead} of ${m} features never fired (${pct(last.dead / m)}), ${last.dense} fired on more than ${pct(DENSE_FRACTION)} of the faces.`,
    `A face activates ${last.l0.toFixed(1)} features on average (L0), ${pct(last.l0 / m)} of the dictionary; the reconstruction explains ${pct(last.explainedVariance)} of the variance (MSE ${last.mse.toExponential(3)} per value, in the space the SAE trains in).`,
    `Decoder row norms: min ${last.decoderNorm.min.toFixed(3)}, mean ${last.decoderNorm.mean.toFixed(3)}, max ${last.decoderNorm.max.toFixed(3)}.`,
  ];
  return lines.join("\n");
}
