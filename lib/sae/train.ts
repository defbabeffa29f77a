// Training the sparse autoencoder: the loop, top to bottom — epochs of shuffled batches, one progress bar per epoch
// as the post's tqdm, metrics per epoch, a checkpoint after each. Its parts: lib/sae/step (Adam and the
// hand-written gradients), lib/sae/metrics, lib/sae/checkpoint; the sweep is lib/sae/sweep, the tables and figures
// lib/sae/report.

import { seededShuffle } from "../util/random";
import { tf } from "../kernels/backend";
import { ProgressBar, type ProgressMode } from "../display/progress";
import { checkFiniteRows } from "../formats/npy";
import type { SaeModel } from "./sae";
import { resumeCheckpoint, writeCheckpoint } from "./checkpoint";
import { epochMetrics, meanSquaredNormScale, trainingSpaceStats, type EpochMetrics, type Vectors } from "./metrics";
import { saeOptimizer, saeStep, type StepStats } from "./step";
import { yieldSometimes } from "../util/yield";


/** A seeded permutation of 0..n-1 (Fisher–Yates, the project's seeded generator). */
export function shuffledOrder(n: number, seed: number): Uint32Array {
  return Uint32Array.from(seededShuffle(Array.from({ length: n }, (_, i) => i), seed, 0x5ae));
}

// ---------------------------------------------------------------------------------------------------------------
// The training loop

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
