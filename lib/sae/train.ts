// Training the sparse autoencoder: the step (gradients written by hand), Adam as PyTorch computes it, the epoch
// loop with its metrics, and the sweep.
//
// Why hand-written gradients: on the WASM backend a matMul with a transposed operand runs ~25× slower than a plain
// one, and autodiff of a @ b produces exactly those. Every product below is plain; the transposes it needs are
// explicit copies (xbarᵀ and fᵀ per step, and W_dᵀ kept beside W_d). The loss and its gradient, for
// e = x̂ − x (x already scaled as the preset says), mask = 1 where a feature is active:
//   post   L = ‖e‖_F + λ Σ f        ∂L/∂x̂ = e / ‖e‖_F           ∂L/∂f = ∂L/∂x̂ W_dᵀ + λ
//   mse    L = Σ e² / n + λ Σ f / n  ∂L/∂x̂ = 2e / n               ∂L/∂f = ∂L/∂x̂ W_dᵀ + λ / n
//   ∂L/∂pre = ∂L/∂f ⊙ mask;  ∂W_d = fᵀ ∂x̂;  ∂W_e = x̄ᵀ ∂pre;  ∂b_e = Σ_rows ∂pre;  ∂b_d = Σ_rows ∂x̂ − W_e ∂b_e
// AuxK (OpenAI's sparse_autoencoder): the kAux largest pre-activations among dead features reconstruct the
// residual x − x̂ through W_d alone; loss c·‖a W_d − (x − x̂)‖² / ‖x − x̂‖² with the residual held fixed. Its
// activations are NOT rectified, so it also reaches ReLU features whose pre-activations have all gone negative
// (the role Anthropic's ghost grads play).
// test/sae-train.test.ts checks these gradients against TF.js autodiff, and one post step against PyTorch.

import { existsSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Adam } from "../model/adam";
import { seededShuffle } from "../util/random";
import { tf, tidyValues } from "../kernels/backend";
import type { Preset, RunConfig, SaeConfig } from "../run/config";
import type { Figure, Trace } from "../display/figures";
import type { Row } from "../display/html-table";
import { ProgressBar, type ProgressMode } from "../display/progress";
import { checkFiniteRows } from "../formats/npy";
import { readSafetensors, writeSafetensors, type SafetensorsTensor } from "../formats/safetensors";
import {
  activeMask,
  createSae,
  loadSaeModel,
  matMulBias,
  normaliseRows,
  resolveSaeTraining,
  SAE_PARAMETER_NAMES,
  saveSae,
  tensorsOf,
  type SaeArchitecture,
  type SaeMeta,
  type SaeModel,
  type SaeParameterName,
  type SaeTraining,
} from "./sae";

/** Vectors in memory, row-major [rows, cols]. */
export interface Vectors {
  readonly data: Float32Array;
  readonly rows: number;
  readonly cols: number;
}

// ---------------------------------------------------------------------------------------------------------------
// The optimiser: lib/model/adam.ts (torch.optim.Adam), over the parameters in SAE_PARAMETER_NAMES order.

/** Adam over the SAE's parameters, in SAE_PARAMETER_NAMES order, with the recipe's weight decay. */
export function saeOptimizer(model: SaeModel, weightDecay: number): Adam {
  const named = model.named();
  return new Adam(SAE_PARAMETER_NAMES.map((n) => named[n]), { weightDecay });
}

/** The moments by name (m_<param>, v_<param>), for a checkpoint. */
function adamMoments(adam: Adam): Record<string, tf.Variable> {
  return Object.fromEntries(SAE_PARAMETER_NAMES.flatMap((n, i) => [[`m_${n}`, adam.m[i]], [`v_${n}`, adam.v[i]]]));
}

/** Continues from a checkpoint's moments and step count. */
function restoreAdam(adam: Adam, moments: ReadonlyMap<string, SafetensorsTensor>, steps: number): void {
  for (const [key, v] of Object.entries(adamMoments(adam))) {
    const t = moments.get(key);
    if (t === undefined || t.shape.join(",") !== v.shape.join(",")) throw new Error(`the SAE checkpoint's optimiser state has no matching "${key}": delete the checkpoint folder to start over`);
    const values = tf.tensor(t.data as Float32Array, v.shape);
    v.assign(values);
    values.dispose();
  }
  adam.step = steps;
}

// ---------------------------------------------------------------------------------------------------------------
// One step

/** What one step measured (training space). */
export interface StepStats {
  readonly loss: number;
  readonly recon: number;
  readonly sparsity: number;
  readonly aux: number;
  /** Σ (x − x̂)² over the batch. */
  readonly sse: number;
  /** Active features summed over the batch's rows. */
  readonly active: number;
  /** Rows of the batch each feature fired on. */
  readonly fired: Float32Array;
}

/** The rows as the SAE trains on them: L2-normalised (post, torch.nn.functional.normalize) or times the fixed scale. */
export function scaleForTraining(model: SaeModel, x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const s = model.meta.inputScaling;
    if (s.kind === "fixed-scale") return tf.mul(x, s.scale);
    return tf.div(x, tf.maximum(tf.norm(x, 2, 1, true), 1e-12));
  });
}

/** The gradients of one batch (and the loss terms), without changing the model. `dead`: 1 for dead features. */
export function saeGradients(
  model: SaeModel,
  x: tf.Tensor2D,
  l1: number,
  dead: { readonly mask: tf.Tensor1D; readonly count: number } | null,
): { grads: Record<SaeParameterName, tf.Tensor>; terms: Record<"loss" | "recon" | "sparsity" | "aux" | "sse" | "active", tf.Scalar>; fired: tf.Tensor1D } {
  const { training: t, architecture, k, inputDim: d, dictionarySize: m } = model.meta;
  const p = model.params;
  const n = x.shape[0];
  const xs = scaleForTraining(model, x);
  const xbar = tf.sub<tf.Tensor2D>(xs, p.biasDecoder);
  const pre = matMulBias(xbar, p.weightEncoder, p.biasEncoder);
  const mask = activeMask(pre, architecture, k ?? 0);
  const f = tf.mul<tf.Tensor2D>(pre, mask);
  const e = tf.sub<tf.Tensor2D>(matMulBias(f, p.weightDecoder, p.biasDecoder), xs);
  const sse: tf.Scalar = tf.sum(tf.square(e));
  const fSum: tf.Scalar = tf.sum(f);
  let recon: tf.Scalar;
  let sparsity: tf.Scalar;
  let dxhat: tf.Tensor2D;
  let l1Grad: number;
  if (t.loss === "post-l2") {
    recon = tf.sqrt<tf.Scalar>(sse);
    sparsity = tf.mul(fSum, l1);
    dxhat = tf.div(e, recon);
    l1Grad = l1;
  } else {
    recon = tf.div(sse, n);
    sparsity = tf.mul(fSum, l1 / n);
    dxhat = tf.mul(e, 2 / n);
    l1Grad = l1 / n;
  }
  let dpre = tf.mul<tf.Tensor2D>(tf.add(tf.matMul(dxhat, model.decoderT), l1Grad), mask);
  let gWd = tf.matMul(tf.transpose(f), dxhat);
  let aux: tf.Scalar = tf.scalar(0);
  if (dead !== null && dead.count > 0 && t.auxK > 0 && t.auxKCoefficient > 0) {
    const kAux = Math.min(t.auxK, dead.count);
    const preDead = tf.add(pre, tf.mul(tf.sub(1, dead.mask), -1e30));
    const kth = tf.topk(preDead, kAux).values.slice([0, kAux - 1], [n, 1]);
    const auxMask = tf.mul<tf.Tensor2D>(tf.cast(tf.greaterEqual(preDead, kth), "float32"), dead.mask);
    const a = tf.mul<tf.Tensor2D>(pre, auxMask);
    const residual = tf.neg(e);
    const energy = tf.maximum(tf.sum(tf.square(residual)), 1e-12);
    const diff = tf.sub<tf.Tensor2D>(tf.matMul(a, p.weightDecoder), residual);
    aux = tf.div(tf.mul(tf.sum(tf.square(diff)), t.auxKCoefficient), energy);
    const dAhat = tf.div<tf.Tensor2D>(tf.mul(diff, 2 * t.auxKCoefficient), energy);
    gWd = tf.add(gWd, tf.matMul(tf.transpose(a), dAhat));
    dpre = tf.add(dpre, tf.mul(tf.matMul(dAhat, model.decoderT), auxMask));
  }
  const gbe = tf.sum(dpre, 0);
  const gbd = tf.sub(tf.sum(dxhat, 0), tf.reshape(tf.matMul(p.weightEncoder, tf.reshape(gbe, [m, 1])), [d]));
  const gWe = tf.matMul(tf.transpose(xbar), dpre);
  return {
    grads: { weight_encoder: gWe, bias_encoder: gbe, weight_decoder: gWd, bias_decoder: gbd },
    terms: { loss: tf.add<tf.Scalar>(tf.add<tf.Scalar>(recon, sparsity), aux), recon, sparsity, aux, sse, active: tf.sum(mask) },
    fired: tf.sum(mask, 0),
  };
}

/** One optimisation step: gradients, decoder-norm handling, Adam, W_dᵀ refreshed. */
export function saeStep(
  model: SaeModel,
  adam: Adam,
  x: tf.Tensor2D,
  lr: number,
  l1: number,
  dead: { readonly mask: tf.Tensor1D; readonly count: number } | null = null,
): StepStats {
  const { scalars, fired } = tf.tidy(() => {
    // The gradients in a tidy of their own: the forward pass's intermediates are freed before Adam's temporaries
    // are made (together they took the step at dictionary 16,384 to 1.9 GB).
    const { grads, terms, fired } = tf.tidy(() => {
      const g = saeGradients(model, x, l1, dead);
      return { grads: { ...g.grads }, terms: { ...g.terms }, fired: g.fired };
    });
    const wd = model.params.weightDecoder;
    if (model.meta.training.unitNormDecoder) {
      // Remove the component of each decoder row's gradient parallel to that (unit) row.
      grads.weight_decoder = tf.sub(grads.weight_decoder, tf.mul(tf.sum(tf.mul(grads.weight_decoder, wd), 1, true), wd));
    }
    adam.apply(SAE_PARAMETER_NAMES.map((n) => grads[n]), lr);
    if (model.meta.training.unitNormDecoder) wd.assign(normaliseRows(wd));
    model.decoderT.assign(tf.transpose(wd));
    const order = ["loss", "recon", "sparsity", "aux", "sse", "active"] as const;
    return { scalars: tf.stack(order.map((key) => terms[key])), fired };
  });
  const v = scalars.dataSync();
  const firedData = fired.dataSync() as Float32Array;
  tf.dispose([scalars, fired]);
  return { loss: v[0], recon: v[1], sparsity: v[2], aux: v[3], sse: v[4], active: v[5], fired: firedData };
}

// ---------------------------------------------------------------------------------------------------------------
// Data statistics the trainer needs

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

/** A seeded permutation of 0..n-1 (Fisher–Yates, the project's seeded generator). */
export function shuffledOrder(n: number, seed: number): Uint32Array {
  return Uint32Array.from(seededShuffle(Array.from({ length: n }, (_, i) => i), seed, 0x5ae));
}

// ---------------------------------------------------------------------------------------------------------------
// The training loop

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

export interface TrainOptions {
  /** Progress bar mode (default "auto"; "silent" in tests). */
  readonly progress?: ProgressMode;
  /** Called after every epoch. */
  readonly onEpoch?: (metrics: EpochMetrics) => void;
  /** Called after every step with its stats (tests). */
  readonly onStep?: (stats: StepStats, step: number) => void;
  /** Label of the progress bar. */
  readonly desc?: string;
  /**
   * A folder for a checkpoint after every epoch (weights, optimiser state, metrics so far), written atomically;
   * when it holds a checkpoint of the same recipe, training continues after its last epoch.
   */
  readonly checkpointDir?: string;
  /** Told when training resumes from a checkpoint. */
  readonly onResume?: (epoch: number) => void;
}

/** Dense feature: fires on more than this fraction of rows. */
export const DENSE_FRACTION = 0.1;

/** The training loop: epochs of shuffled batches, one progress bar per epoch as the post's tqdm, metrics per epoch. */
export async function trainSae(model: SaeModel, vectors: Vectors, options: TrainOptions = {}): Promise<EpochMetrics[]> {
  const t = model.meta.training;
  prepareForData(model, vectors);
  const { totalVariance } = trainingSpaceStats(vectors, model);
  const m = model.meta.dictionarySize;
  const n = vectors.rows;
  const stepsPerEpoch = Math.ceil(n / t.batchSize);
  const warmupSteps = Math.round(t.warmupFraction * t.epochs * stepsPerEpoch);
  const deadAfter = t.deadAfterRows ?? n;
  const rowsSinceFired = new Float64Array(m);
  const adam = saeOptimizer(model, t.weightDecay);
  const batch = new Float32Array(t.batchSize * vectors.cols);
  const history: EpochMetrics[] = [];
  let firstEpoch = 1;
  try {
    if (options.checkpointDir !== undefined) {
      const resumed = await resumeCheckpoint(options.checkpointDir, model, adam, rowsSinceFired);
      if (resumed !== null) {
        history.push(...resumed);
        firstEpoch = resumed.length + 1;
        options.onResume?.(resumed.length);
      }
    }
    for (let epoch = firstEpoch; epoch <= t.epochs; epoch++) {
      const started = performance.now();
      const order = shuffledOrder(n, t.seed * 1000 + epoch);
      const firedEpoch = new Float64Array(m);
      const sums = { loss: 0, recon: 0, sparsity: 0, aux: 0, sse: 0, active: 0 };
      const bar = new ProgressBar({ total: n, desc: `${options.desc ?? "Training sparse autoencoder"} ${epoch}/${t.epochs}`, mode: options.progress ?? "auto" });
      try {
        for (let start = 0; start < n; start += t.batchSize) {
          const rows = Math.min(t.batchSize, n - start);
          for (let r = 0; r < rows; r++) batch.set(vectors.data.subarray(order[start + r] * vectors.cols, (order[start + r] + 1) * vectors.cols), r * vectors.cols);
          const step = adam.step;
          const ramp = warmupSteps > 0 ? Math.min(1, (step + 1) / warmupSteps) : 1;
          const dead = deadFeatures(rowsSinceFired, deadAfter);
          const x = tf.tensor2d(batch.subarray(0, rows * vectors.cols), [rows, vectors.cols]);
          let stats: StepStats;
          try {
            stats = saeStep(model, adam, x, t.learningRate * ramp, t.l1 * ramp, dead);
          } finally {
            x.dispose();
            if (dead !== null) dead.mask.dispose();
          }
          if (!Number.isFinite(stats.loss)) throw new Error(`SAE training diverged at epoch ${epoch}, step ${step + 1} (loss ${stats.loss}): lower sae.learningRate`);
          for (let j = 0; j < m; j++) {
            firedEpoch[j] += stats.fired[j];
            rowsSinceFired[j] = stats.fired[j] > 0 ? 0 : rowsSinceFired[j] + rows;
          }
          sums.loss += stats.loss;
          sums.recon += stats.recon;
          sums.sparsity += stats.sparsity;
          sums.aux += stats.aux;
          sums.sse += stats.sse;
          sums.active += stats.active;
          options.onStep?.(stats, step + 1);
          bar.update(rows, { loss_sae: stats.loss, recon: stats.recon, compl: stats.sparsity });
          await yieldSometimes();
        }
      } finally {
        bar.close();
      }
      const metrics = epochMetrics(model, epoch, sums, firedEpoch, stepsPerEpoch, n, totalVariance, (performance.now() - started) / 1000);
      history.push(metrics);
      if (options.checkpointDir !== undefined) await writeCheckpoint(options.checkpointDir, model, adam, rowsSinceFired, history);
      options.onEpoch?.(metrics);
    }
  } finally {
    adam.dispose();
  }
  const last = history[history.length - 1];
  if (last === undefined) return history;
  model.meta = {
    ...model.meta,
    metrics: { epochs: history.length, mse: last.mse, explainedVariance: last.explainedVariance, l0: last.l0, dead: last.dead, dense: last.dense },
  };
  return history;
}

/** Checks the vectors, measures the input scale, and sets b_d to the data mean for the "tied-unit" init. */
function prepareForData(model: SaeModel, v: Vectors): void {
  const { inputDim } = model.meta;
  if (v.cols !== inputDim) throw new Error(`the vectors have ${v.cols} values per row but the SAE takes ${inputDim}: use notebook 03's face_vectors.npy (N × ${inputDim})`);
  if (v.rows === 0) throw new Error("there are no vectors to train on: notebook 03 wrote an empty face_vectors.npy");
  if (v.data.length !== v.rows * v.cols) throw new Error(`vectors: ${v.data.length} values is not ${v.rows} × ${v.cols}`);
  checkFiniteRows(v.data, v.cols, "face vectors");
  if (model.meta.inputScaling.kind === "fixed-scale") model.meta = { ...model.meta, inputScaling: { kind: "fixed-scale", scale: meanSquaredNormScale(v) } };
  if (model.meta.training.init === "tied-unit") {
    const { mean } = trainingSpaceStats(v, model);
    model.params.biasDecoder.assign(tf.tensor1d(Float32Array.from(mean)));
  }
}

let lastYield = 0;

/** Lets the event loop run (so a notebook's progress bar redraws) at most every 100 ms of computing. */
export async function yieldSometimes(): Promise<void> {
  const now = performance.now();
  if (now - lastYield < 100) return;
  lastYield = now;
  await new Promise<void>((resolve) => setImmediate(resolve));
}

const CHECKPOINT_PROGRESS = "progress.json";
const CHECKPOINT_ADAM = "adam.safetensors";

interface CheckpointProgress {
  readonly format: "celeba-sae/sae-checkpoint@1";
  readonly adamSteps: number;
  readonly rowsSinceFired: number[];
  readonly history: (Omit<EpochMetrics, "density"> & { readonly density: number[] })[];
}

/** Writes the checkpoint into a fresh folder, then swaps it in for the old one (never a half-written checkpoint). */
async function writeCheckpoint(dir: string, model: SaeModel, adam: Adam, rowsSinceFired: Float64Array, history: readonly EpochMetrics[]): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  const old = `${dir}.old-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await saveSae(model, tmp);
  await writeSafetensors(join(tmp, CHECKPOINT_ADAM), await tensorsOf(adamMoments(adam)));
  const progress: CheckpointProgress = {
    format: "celeba-sae/sae-checkpoint@1",
    adamSteps: adam.step,
    rowsSinceFired: Array.from(rowsSinceFired),
    history: history.map((h) => ({ ...h, density: Array.from(h.density) })),
  };
  await writeFile(join(tmp, CHECKPOINT_PROGRESS), JSON.stringify(progress));
  if (existsSync(dir)) await rename(dir, old);
  await rename(tmp, dir);
  await rm(old, { recursive: true, force: true });
}

/** Loads a checkpoint of the same recipe into the model and optimiser; null when there is none (or another recipe's). */
async function resumeCheckpoint(dir: string, model: SaeModel, adam: Adam, rowsSinceFired: Float64Array): Promise<EpochMetrics[] | null> {
  if (!existsSync(join(dir, CHECKPOINT_PROGRESS))) return null;
  const saved = await loadSaeModel(dir);
  try {
    const same = (a: SaeMeta, b: SaeMeta): boolean =>
      JSON.stringify([a.preset, a.architecture, a.inputDim, a.dictionarySize, a.k, a.training]) === JSON.stringify([b.preset, b.architecture, b.inputDim, b.dictionarySize, b.k, b.training]);
    if (!same(saved.meta, model.meta)) return null;
    const progress = JSON.parse(await readFile(join(dir, CHECKPOINT_PROGRESS), "utf8")) as CheckpointProgress;
    if (progress.history.length > model.meta.training.epochs) return null;
    for (const [name, v] of Object.entries(model.named())) v.assign(saved.named()[name as SaeParameterName]);
    model.syncDecoderTranspose();
    model.meta = { ...model.meta, inputScaling: saved.meta.inputScaling };
    restoreAdam(adam, await readSafetensors(join(dir, CHECKPOINT_ADAM)), progress.adamSteps);
    rowsSinceFired.set(progress.rowsSinceFired);
    return progress.history.map((h) => ({ ...h, density: Float64Array.from(h.density) }));
  } finally {
    saved.dispose();
  }
}

function deadFeatures(rowsSinceFired: Float64Array, deadAfter: number): { mask: tf.Tensor1D; count: number } | null {
  let count = 0;
  const mask = new Float32Array(rowsSinceFired.length);
  for (let j = 0; j < mask.length; j++) {
    if (rowsSinceFired[j] >= deadAfter) {
      mask[j] = 1;
      count++;
    }
  }
  return count === 0 ? null : { mask: tf.tensor1d(mask), count };
}

function epochMetrics(
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

// ---------------------------------------------------------------------------------------------------------------
// The sweep

export interface SweepPoint {
  readonly label: string;
  readonly preset: Preset;
  readonly architecture: SaeArchitecture;
  /** λ (relu) or k (topk). */
  readonly value: number;
  readonly l0: number;
  readonly explainedVariance: number;
  readonly dead: number;
}

/** The sweep's values: λ for relu, whole k for topk ("" gives none). */
export function parseSweep(spec: string, architecture: SaeArchitecture): number[] {
  if (spec.trim() === "") return [];
  return spec.split(",").map((raw) => {
    const value = Number(raw);
    const ok = architecture === "topk" ? Number.isInteger(value) && value >= 1 : Number.isFinite(value) && value >= 0;
    if (!ok) throw new Error(`sae.sweep value "${raw}" is not ${architecture === "topk" ? "a whole k ≥ 1" : "a λ ≥ 0"}: write e.g. ${architecture === "topk" ? '"8,16,32,64"' : '"0.3,1,3"'}`);
    return value;
  });
}

/** Trains one SAE per value (λ, or k for topk) on the same vectors, same recipe otherwise; returns L0 and FVE. */
export async function runSweep(
  base: { readonly preset: Preset; readonly architecture: SaeArchitecture; readonly dictionarySize: number; readonly k?: number; readonly training: SaeTraining },
  values: readonly number[],
  vectors: Vectors,
  options: TrainOptions = {},
): Promise<SweepPoint[]> {
  const points: SweepPoint[] = [];
  for (const value of values) {
    const topk = base.architecture === "topk";
    const sae = createSae({
      preset: base.preset,
      architecture: base.architecture,
      inputDim: vectors.cols,
      dictionarySize: base.dictionarySize,
      k: topk ? value : base.k,
      training: topk ? base.training : { ...base.training, l1: value },
    });
    try {
      const history = await trainSae(sae, vectors, { ...options, desc: `${topk ? "k" : "λ"}=${value}` });
      const last = history[history.length - 1];
      points.push({ label: `${topk ? "k" : "λ"} = ${value}`, preset: base.preset, architecture: base.architecture, value, l0: last.l0, explainedVariance: last.explainedVariance, dead: last.dead });
    } finally {
      sae.dispose();
    }
  }
  return points;
}

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

/** The point of a trained SAE on the sweep plot. */
export function sweepPoint(label: string, meta: SaeMeta, last: EpochMetrics): SweepPoint {
  const value = meta.architecture === "topk" ? (meta.k ?? 0) : meta.training.l1;
  return { label, preset: meta.preset, architecture: meta.architecture, value, l0: last.l0, explainedVariance: last.explainedVariance, dead: last.dead };
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

/**
 * The run's sweep (config sae.sweep: λ values, or k for topk) with the run's recipe otherwise, plus the points to
 * mark: this run's SAE, and the post's recipe (trained here on the same vectors when this run is not it).
 * Returns null when sae.sweep is "".
 */
export async function sweepForRun(
  config: RunConfig,
  vectors: Vectors,
  main: SweepPoint,
  options: TrainOptions = {},
): Promise<{ points: SweepPoint[]; marked: SweepPoint[] } | null> {
  const s = config.sae;
  const values = parseSweep(s.sweep, s.architecture);
  if (values.length === 0) return null;
  const points = await runSweep({ preset: s.preset, architecture: s.architecture, dictionarySize: s.dictionarySize, k: s.k, training: resolveSaeTraining(s, config.seed) }, values, vectors, options);
  const marked = [main];
  if (!(s.preset === "post" && s.architecture === "relu")) {
    const post: SaeConfig = { ...s, preset: "post", architecture: "relu", l1: null, learningRate: null, weightDecay: null };
    const sae = createSae({ preset: "post", architecture: "relu", inputDim: vectors.cols, dictionarySize: s.dictionarySize, training: resolveSaeTraining(post, config.seed) });
    try {
      const history = await trainSae(sae, vectors, { ...options, desc: "the post's recipe" });
      marked.push(sweepPoint("the post's recipe", sae.meta, history[history.length - 1]));
    } finally {
      sae.dispose();
    }
  }
  return { points, marked };
}
