// The SAE's metrics, computed in one place for training (per epoch), the sweep and inspection: explained variance,
// MSE, L0, dead and dense features, the density of every feature, decoder norms (what SAELens logs), and the data
// statistics they need.

import { tf, tidyValues } from "../kernels/backend";
import type { SaeModel } from "./sae";


/** Vectors in memory, row-major [rows, cols]. */
export interface Vectors {
  readonly data: Float32Array;
  readonly rows: number;
  readonly cols: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Data statistics

/** The fixed scale making the rows' mean squared norm equal to their width (SAELens's normalisation). */
export function meanSquaredNormScale(v: Vectors): number {
  let sum = 0;
  for (let i = 0; i < v.data.length; i++) sum += v.data[i] * v.data[i];
  const msn = sum / v.rows;
  if (!(msn > 0)) throw new Error("the vectors are all zero: an SAE cannot learn from them (check notebook 03's face_vectors.npy)");
  return Math.sqrt(v.cols / msn);
}

/** Mean row and total squared deviation Σ‖x − μ‖² of the rows as the model trains on them. */
export function trainingSpaceStats(v: Vectors, model: SaeModel): { mean: Float64Array; totalVariance: number } {
  const s = model.meta.inputScaling;
  const mean = new Float64Array(v.cols);
  let sumSq = 0;
  for (let r = 0; r < v.rows; r++) {
    const off = r * v.cols;
    let factor = 1;
    if (s.kind === "fixed-scale") factor = s.scale;
    else {
      let norm = 0;
      for (let c = 0; c < v.cols; c++) norm += v.data[off + c] ** 2;
      factor = 1 / Math.max(Math.sqrt(norm), 1e-12);
    }
    for (let c = 0; c < v.cols; c++) {
      const x = v.data[off + c] * factor;
      mean[c] += x;
      sumSq += x * x;
    }
  }
  let meanSq = 0;
  for (let c = 0; c < v.cols; c++) {
    mean[c] /= v.rows;
    meanSq += mean[c] ** 2;
  }
  return { mean, totalVariance: sumSq - v.rows * meanSq };
}


// ---------------------------------------------------------------------------------------------------------------
// What an epoch measured

/** What one epoch measured, on its own training batches (as SAELens logs them). */
export interface EpochMetrics {
  readonly epoch: number;
  readonly loss: number;
  readonly recon: number;
  readonly sparsity: number;
  readonly aux: number;
  /** Mean squared error per value, Σ(x − x̂)² / (N · inputDim), in the training space. */
  readonly mse: number;
  /** 1 − Σ‖x − x̂‖² / Σ‖x − μ‖². */
  readonly explainedVariance: number;
  /** Mean active features per row. */
  readonly l0: number;
  /** Features that never fired in the epoch. */
  readonly dead: number;
  /** Features that fired on more than 10 % of the rows. */
  readonly dense: number;
  /** Fraction of rows each feature fired on. */
  readonly density: Float64Array;
  readonly decoderNorm: { readonly min: number; readonly mean: number; readonly max: number };
  readonly seconds: number;
}

/** Dense feature: fires on more than this fraction of rows. */
export const DENSE_FRACTION = 0.1;

/** What an epoch measured, from the sums its steps gathered. */
export function epochMetrics(
  model: SaeModel,
  epoch: number,
  sums: Record<"loss" | "recon" | "sparsity" | "aux" | "sse" | "active", number>,
  fired: Float64Array,
  steps: number,
  rows: number,
  totalVariance: number,
  seconds: number,
): EpochMetrics {
  const density = fired.map((c) => c / rows);
  const norms = tidyValues(() => tf.norm(model.params.weightDecoder, 2, 1));
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const v of norms) {
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
  }
  return {
    epoch,
    loss: sums.loss / steps,
    recon: sums.recon / steps,
    sparsity: sums.sparsity / steps,
    aux: sums.aux / steps,
    mse: sums.sse / (rows * model.meta.inputDim),
    explainedVariance: 1 - sums.sse / totalVariance,
    l0: sums.active / rows,
    dead: density.filter((x) => x === 0).length,
    dense: density.filter((x) => x > DENSE_FRACTION).length,
    density,
    decoderNorm: { min, mean: sum / norms.length, max },
    seconds,
  };
}
