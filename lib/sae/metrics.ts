// The SAE's metrics, computed in one place for training, the sweep and the comparison of SAEs: explained variance,
// MSE, L0, dead and dense features, the density of every feature, decoder norms (what SAELens logs), and the data
// statistics they need. Training measures two things at every evaluation (see lib/sae/train):
//   the window   the training batches since the previous evaluation, as they went by (SAELens's training logs)
//   held out     a fixed, seeded share of the faces the recipe does not train on, measured with the weights as they
//                are at that step: the honest measure of reconstruction, and what early stopping watches

import { tf, tidyValues } from "../kernels/backend";
import { Rng } from "../util/random";
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

/** Row r as the model trains on it, into `out`: L2-normalised (post) or times the fixed scale. */
function trainingSpaceRow(v: Vectors, r: number, model: SaeModel, out: Float64Array): void {
  const s = model.meta.inputScaling;
  const off = r * v.cols;
  let factor = 1;
  if (s.kind === "fixed-scale") factor = s.scale;
  else {
    let norm = 0;
    for (let c = 0; c < v.cols; c++) norm += v.data[off + c] ** 2;
    factor = 1 / Math.max(Math.sqrt(norm), 1e-12);
  }
  for (let c = 0; c < v.cols; c++) out[c] = v.data[off + c] * factor;
}

/** Mean row and total squared deviation Σ‖x − μ‖² of the rows (all, or those listed) as the model trains on them. */
export function trainingSpaceStats(v: Vectors, model: SaeModel, rows?: ArrayLike<number>): { mean: Float64Array; totalVariance: number } {
  const mean = new Float64Array(v.cols);
  const x = new Float64Array(v.cols);
  const count = rows?.length ?? v.rows;
  let sumSq = 0;
  for (let i = 0; i < count; i++) {
    trainingSpaceRow(v, rows === undefined ? i : rows[i], model, x);
    for (let c = 0; c < v.cols; c++) {
      mean[c] += x[c];
      sumSq += x[c] * x[c];
    }
  }
  let meanSq = 0;
  for (let c = 0; c < v.cols; c++) {
    mean[c] /= count;
    meanSq += mean[c] ** 2;
  }
  return { mean, totalVariance: sumSq - count * meanSq };
}

/** Some rows of `v`, copied, in the order given. */
export function selectRows(v: Vectors, rows: ArrayLike<number>): Vectors {
  const data = new Float32Array(rows.length * v.cols);
  for (let i = 0; i < rows.length; i++) data.set(v.data.subarray(rows[i] * v.cols, (rows[i] + 1) * v.cols), i * v.cols);
  return { data, rows: rows.length, cols: v.cols };
}

// ---------------------------------------------------------------------------------------------------------------
// Held-out rows

/** Share of the faces set aside to measure reconstruction (the same rows for every SAE of a run). */
export const EVALUATION_FRACTION = 0.1;

/** The split of a run's faces: a fixed, seeded EVALUATION_FRACTION to measure on, the rest (both ascending). */
export interface RowSplit {
  readonly evaluation: Uint32Array;
  readonly rest: Uint32Array;
}

/**
 * The evaluation rows of `n` faces: a seeded draw of round(fraction · n) rows (at least 1 when n ≥ 2), the same for
 * the same n and seed, so every SAE of a run is measured on the same faces.
 */
export function evaluationSplit(n: number, seed: number, fraction = EVALUATION_FRACTION): RowSplit {
  if (!(fraction >= 0 && fraction < 1)) throw new RangeError(`the held-out fraction must be in [0, 1), got ${fraction}`);
  const count = n < 2 || fraction === 0 ? 0 : Math.max(1, Math.round(fraction * n));
  const picked = new Uint8Array(n);
  const rng = new Rng(seed, 0xe7a1, n);
  // Floyd's algorithm: `count` distinct rows, each subset equally likely.
  for (let j = n - count; j < n; j++) {
    const t = Math.floor(rng.next() * (j + 1));
    picked[picked[t] ? j : t] = 1;
  }
  const evaluation = new Uint32Array(count);
  const rest = new Uint32Array(n - count);
  let e = 0;
  let r = 0;
  for (let i = 0; i < n; i++) {
    if (picked[i]) evaluation[e++] = i;
    else rest[r++] = i;
  }
  return { evaluation, rest };
}

/** What an SAE does on a set of rows it is not updated on. */
export interface HeldOutMetrics {
  readonly rows: number;
  /** Mean squared error per value, in the space the SAE trains in. */
  readonly mse: number;
  /** 1 − Σ‖x − x̂‖² / Σ‖x − μ‖², μ the mean of these rows. */
  readonly explainedVariance: number;
  /** Mean active features per row. */
  readonly l0: number;
  /** The training objective on these rows with the full λ (what early stopping compares): MSE loss + λ·mean ‖f‖₁, or the post's ‖x − x̂‖₂ + λ Σ|f|. */
  readonly loss: number;
  /** Fraction of these rows each feature fires on. */
  readonly density: Float64Array;
}

/** What the forward pass measured on a batch of rows in training space. */
export interface BatchSums {
  /** Σ (x̂ − x)² */
  readonly sse: number;
  /** Σ f */
  readonly l1: number;
  /** Active features summed over the rows. */
  readonly active: number;
  /** Rows each feature fired on. */
  readonly fired: Float32Array;
}

/** The first `n` rows of `xs` (row-major, already in training space) measured by TF.js's forward pass. */
export function tfjsBatchSums(model: SaeModel, xs: Float32Array, n: number): BatchSums {
  const d = model.meta.inputDim;
  const [sums, fired] = tidyValuesPair(() => {
    const x = tf.tensor2d(xs.subarray(0, n * d), [n, d]);
    const f = model.activate(model.preActivations(x));
    const xhat = tf.add(tf.matMul(f, model.params.weightDecoder), model.params.biasDecoder);
    const on = tf.step(f);
    return [tf.stack([tf.sum(tf.square(tf.sub(xhat, x))), tf.sum(f), tf.sum(on)]), tf.sum(on, 0)];
  });
  return { sse: sums[0], l1: sums[1], active: sums[2], fired };
}

/** Measures the SAE on `v`'s rows (forward passes only, in batches, on TF.js), in the space it trains in. */
export function heldOutMetrics(model: SaeModel, v: Vectors, batchSize = 512): HeldOutMetrics {
  const totals = new HeldOutTotals(model, v);
  for (const [xs, n] of trainingSpaceBatches(model, v, batchSize)) totals.add(tfjsBatchSums(model, xs, n));
  return totals.metrics();
}

/** heldOutMetrics with another forward pass: a lib/sae/onnx-step stepper's `measure`, on the engine that trains. */
export async function measureHeldOut(
  model: SaeModel,
  v: Vectors,
  on: { measure(xs: Float32Array, rows: number): Promise<BatchSums> },
  batchSize = 512,
): Promise<HeldOutMetrics> {
  const totals = new HeldOutTotals(model, v);
  for (const [xs, n] of trainingSpaceBatches(model, v, batchSize)) totals.add(await on.measure(xs, n));
  return totals.metrics();
}

/** `v`'s rows in batches, as the model trains on them (computed in float64, stored as float32); one buffer reused. */
function* trainingSpaceBatches(model: SaeModel, v: Vectors, batchSize: number): Generator<[Float32Array, number]> {
  if (v.rows === 0) throw new Error("no rows to measure the SAE on");
  const xs = new Float32Array(Math.min(batchSize, v.rows) * v.cols);
  const row = new Float64Array(v.cols);
  for (let start = 0; start < v.rows; start += batchSize) {
    const n = Math.min(batchSize, v.rows - start);
    for (let r = 0; r < n; r++) {
      trainingSpaceRow(v, start + r, model, row);
      xs.set(row, r * v.cols);
    }
    yield [xs, n];
  }
}

/** The batches' sums, in float64, and what they give. */
class HeldOutTotals {
  private sse = 0;
  private l1 = 0;
  private active = 0;
  private readonly fired: Float64Array;

  constructor(
    private readonly model: SaeModel,
    private readonly v: Vectors,
  ) {
    this.fired = new Float64Array(model.meta.dictionarySize);
  }

  add(b: BatchSums): void {
    this.sse += b.sse;
    this.l1 += b.l1;
    this.active += b.active;
    for (let j = 0; j < this.fired.length; j++) this.fired[j] += b.fired[j];
  }

  metrics(): HeldOutMetrics {
    const { model, v, sse, l1 } = this;
    const { totalVariance } = trainingSpaceStats(v, model);
    const t = model.meta.training;
    return {
      rows: v.rows,
      mse: sse / (v.rows * v.cols),
      explainedVariance: 1 - sse / totalVariance,
      l0: this.active / v.rows,
      loss: t.loss === "post-l2" ? Math.sqrt(sse) + t.l1 * l1 : (sse + t.l1 * l1) / v.rows,
      density: this.fired.map((c) => c / v.rows),
    };
  }
}

/** Two tensors' values out of one tidy. */
function tidyValuesPair(fn: () => [tf.Tensor, tf.Tensor]): [Float32Array, Float32Array] {
  const [a, b] = tf.tidy(fn);
  try {
    return [a.dataSync() as Float32Array, b.dataSync() as Float32Array];
  } finally {
    tf.dispose([a, b]);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// What an evaluation measured

/** Dense feature: fires on more than this fraction of rows. */
export const DENSE_FRACTION = 0.1;

/** One evaluation during training: the training batches since the previous one (the window), and the held-out rows. */
export interface EvalMetrics {
  /** Optimisation steps done. */
  readonly step: number;
  /** Training rows seen so far, and the same in passes over the training rows. */
  readonly rowsSeen: number;
  readonly epoch: number;
  /** The window's mean loss and its terms per step. */
  readonly loss: number;
  readonly recon: number;
  readonly sparsity: number;
  readonly aux: number;
  /** The window's mean squared error per value, Σ(x − x̂)² / (rows · inputDim), in the training space. */
  readonly mse: number;
  /** The window's 1 − Σ‖x − x̂‖² / (rows · the training rows' variance per row). */
  readonly explainedVariance: number;
  /** The window's mean active features per row. */
  readonly l0: number;
  /** Features that never fired in the window. */
  readonly dead: number;
  /** Features that fired on more than DENSE_FRACTION of the window's rows. */
  readonly dense: number;
  /** Fraction of the window's rows each feature fired on. */
  readonly density: Float64Array;
  /** The held-out rows, measured at this step (null when the recipe holds none out and none were measured). */
  readonly heldOut: Omit<HeldOutMetrics, "density"> | null;
  readonly decoderNorm: { readonly min: number; readonly mean: number; readonly max: number };
  /** Seconds the window took. */
  readonly seconds: number;
}

/** The window's sums, gathered step by step. */
export interface WindowSums {
  loss: number;
  recon: number;
  sparsity: number;
  aux: number;
  sse: number;
  active: number;
  steps: number;
  rows: number;
  readonly fired: Float64Array;
}

export function emptyWindow(features: number): WindowSums {
  return { loss: 0, recon: 0, sparsity: 0, aux: 0, sse: 0, active: 0, steps: 0, rows: 0, fired: new Float64Array(features) };
}

/** What an evaluation measured, from its window's sums, the variance per training row and the held-out metrics. */
export function evalMetrics(
  model: SaeModel,
  at: { readonly step: number; readonly rowsSeen: number; readonly trainingRows: number },
  w: WindowSums,
  variancePerRow: number,
  heldOut: HeldOutMetrics | null,
  seconds: number,
): EvalMetrics {
  const density = w.fired.map((c) => c / Math.max(1, w.rows));
  // √Σ w² rather than tf.norm, which on WASM took 13× as long (87 vs 7 ms at 16,384 × 512)
  const norms = tidyValues(() => tf.sqrt(tf.sum(tf.square(model.params.weightDecoder), 1)));
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const v of norms) {
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
  }
  const steps = Math.max(1, w.steps);
  return {
    step: at.step,
    rowsSeen: at.rowsSeen,
    epoch: at.rowsSeen / at.trainingRows,
    loss: w.loss / steps,
    recon: w.recon / steps,
    sparsity: w.sparsity / steps,
    aux: w.aux / steps,
    mse: w.sse / (Math.max(1, w.rows) * model.meta.inputDim),
    explainedVariance: 1 - w.sse / (variancePerRow * Math.max(1, w.rows)),
    l0: w.active / Math.max(1, w.rows),
    dead: density.filter((x) => x === 0).length,
    dense: density.filter((x) => x > DENSE_FRACTION).length,
    density,
    heldOut: heldOut === null ? null : { rows: heldOut.rows, mse: heldOut.mse, explainedVariance: heldOut.explainedVariance, l0: heldOut.l0, loss: heldOut.loss },
    decoderNorm: { min, mean: sum / norms.length, max },
    seconds,
  };
}
