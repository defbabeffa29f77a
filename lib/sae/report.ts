// What notebook 04 shows of a training: the per-evaluation table, the held-out curves of one or more SAEs, the
// density histogram, the sweep, a few sentences, and the side-by-side comparison of the run's SAEs.

import type { Figure, Trace } from "../display/figures";
import type { Row } from "../display/html-table";
import type { SaeMeta } from "./sae";
import { DENSE_FRACTION, type EvalMetrics } from "./metrics";
import type { SweepPoint } from "./sweep";
import { percent } from "../run/findings";

// ---------------------------------------------------------------------------------------------------------------
// One training

/** One table row per evaluation: the window of training batches before it, then the evaluation rows (held out by the recommended recipe, trained on by the post's). */
export function evaluationTable(history: readonly EvalMetrics[]): Row[] {
  return history.map((h) => ({
    step: h.step,
    epoch: h.epoch,
    loss: h.loss,
    recon: h.recon,
    sparsity: h.sparsity,
    aux: h.aux,
    "explained var.": h.explainedVariance,
    L0: h.l0,
    dead: h.dead,
    dense: h.dense,
    "evaluation: explained var.": h.heldOut?.explainedVariance ?? null,
    "evaluation: L0": h.heldOut?.l0 ?? null,
    "evaluation: loss": h.heldOut?.loss ?? null,
    "‖W_d row‖ min": h.decoderNorm.min,
    "‖W_d row‖ max": h.decoderNorm.max,
    seconds: h.seconds,
  }));
}

/** One SAE's training, as the curves show it. */
export interface TrainingRun {
  readonly label: string;
  readonly history: readonly EvalMetrics[];
}

const fmt = (x: number): string => (Math.abs(x) >= 1e3 ? x.toExponential(1) : x.toFixed(3));

/**
 * Explained variance of the evaluation rows (held out by the recommended recipe) against the step, one line per SAE. The y axis spans 0–1 and whatever lies in
 * [−1, 1]; a curve far below (the post's recipe can explain less variance than the mean face, a large negative
 * fraction) is drawn along the bottom edge, with its true range in the legend.
 */
export function explainedVarianceFigure(runs: readonly TrainingRun[]): Figure {
  const values = runs.flatMap((r) => r.history.flatMap((h) => (h.heldOut === null ? [] : [h.heldOut.explainedVariance])));
  const bottom = Math.min(0, ...values.filter((v) => v >= -1)) - 0.05;
  return {
    data: runs.map((r): Trace => {
      const ys = r.history.map((h) => h.heldOut?.explainedVariance ?? Number.NaN);
      const finite = ys.filter(Number.isFinite);
      const below = finite.some((y) => y < bottom);
      const name = below ? `${r.label} (${fmt(Math.min(...finite))} … ${fmt(Math.max(...finite))}, drawn at the bottom edge)` : r.label;
      return { type: "scatter", mode: "lines+markers", name, x: r.history.map((h) => h.step), y: ys.map((y) => (y < bottom ? bottom : y)) };
    }),
    layout: {
      title: "Explained variance on the evaluation faces",
      xaxis: { title: "step" },
      yaxis: { title: "fraction of variance explained", range: [bottom, 1.02] },
      width: 700,
      height: 340,
      showlegend: true,
    },
  };
}

/** One per-evaluation measure against the step, one line per SAE. */
export function trainingCurveFigure(runs: readonly TrainingRun[], metric: "heldOutL0" | "dead", title: string): Figure {
  const value = (h: EvalMetrics): number => (metric === "dead" ? h.dead : (h.heldOut?.l0 ?? Number.NaN));
  return {
    data: runs.map((r): Trace => ({ type: "scatter", mode: "lines+markers", name: r.label, x: r.history.map((h) => h.step), y: r.history.map(value) })),
    layout: { title, xaxis: { title: "step" }, yaxis: { title }, width: 700, height: 320, showlegend: true },
  };
}

/** log10 of each live feature's firing frequency in an evaluation's window (dead features counted in the title). */
export function densityHistogramFigure(metrics: EvalMetrics, label = ""): Figure {
  const live = Array.from(metrics.density).filter((x) => x > 0).map((x) => Math.log10(x));
  return {
    data: [{ type: "histogram", x: live, xbins: { start: Math.floor(Math.min(-1, ...live)), end: 0.0001, size: 0.25 } }],
    layout: {
      title: `Feature density${label ? ` of ${label}` : ""}, step ${metrics.step} (${metrics.dead} dead features not shown)`,
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
  const bottom = Math.min(0, ...inRange.filter((v) => v >= -1)) - 0.05;
  const top = Math.max(1, ...inRange) + 0.02;
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

/** A few sentences on what a recipe gave: how long it trained and why it stopped, sparsity, reconstruction. */
export function describeTraining(meta: SaeMeta, history: readonly EvalMetrics[]): string {
  const s = meta.metrics;
  const pct = (x: number): string => percent(x);
  if (s === undefined || history.length === 0) return `${meta.preset} preset: not trained yet.`;
  const m = meta.dictionarySize;
  const t = meta.training;
  const budget = t.epochs !== null ? `${t.epochs} epochs` : `at most ${t.trainingRows?.toLocaleString("en-US")} training rows`;
  const stopped = s.stopped === "plateau" ? "stopped early: the held-out loss had stopped falling" : "stopped when its budget was spent";
  const kept = s.keptStep === s.steps ? "the last weights are kept" : `the weights of step ${s.keptStep}, its best evaluation, are kept`;
  return [
    `${meta.preset} preset, ${meta.architecture}${meta.architecture === "topk" ? ` (k = ${meta.k})` : ""}, ${m} features; budget ${budget}.`,
    `Trained ${s.steps} steps (${s.epochs.toFixed(1)} passes over the training faces), ${stopped}; ${kept}.`,
    `On the ${s.measuredOn}: a face activates ${s.l0.toFixed(1)} features on average (L0, ${pct(s.l0 / m)} of the dictionary) and the reconstruction explains ${pct(s.explainedVariance)} of the variance (MSE ${s.mse.toExponential(3)} per value, in the space the SAE trains in).`,
    `In the training batches before that evaluation ${s.dead} of ${m} features never fired (${pct(s.dead / m)}) and ${s.dense} fired on more than ${pct(DENSE_FRACTION)} of the faces.`,
  ].join("\n");
}
