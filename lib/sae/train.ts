// Training the sparse autoencoder: the loop, top to bottom. Shuffled batches of the training rows, one Adam step
// each; every `evalEvery` steps (or once per pass, for the post's recipe) an evaluation: the training batches since
// the last one, and the held-out rows measured with the weights of that step; a checkpoint after each evaluation.
//
// The budget is the recipe's: passes over the data (the post's 30 epochs), or training rows (the recommended
// recipe's, as SAELens counts training tokens), so a dataset of 5,000 faces and one of 200,000 get the same number
// of steps. The recommended recipe also stops early, once the held-out loss has stopped falling (a plateau), and
// keeps the weights of its best evaluation rather than the last ones.
// Its parts: lib/sae/onnx-step (the step, on ONNX Runtime's native kernels or on TF.js: `sae.engine`), lib/sae/step
// (Adam and the hand-written gradients), lib/sae/metrics, lib/sae/checkpoint; the sweep is lib/sae/sweep, the
// tables and figures lib/sae/report.
//
// On ONNX Runtime the parameters and Adam's moments stay native between steps, and the held-out rows are measured
// there too; the TF.js model and optimiser are brought up to date (`syncToModel`) at each evaluation, before anything
// reads them (the decoder norms, the best weights, the checkpoint), and so hold the last step's state at the end.
// Either engine gives the same weights and measures to float32 rounding (test/sae-train.test.ts).

import { seededShuffle } from "../util/random";
import { tf } from "../kernels/backend";
import type { Engine } from "../kernels/onnxruntime";
import { ProgressBar, type ProgressMode } from "../display/progress";
import { checkFiniteRows } from "../formats/npy";
import type { SaeMetricsSummary, SaeModel, SaeParameterName, SaeTraining, VectorsIdentity } from "./sae";
import { resumeCheckpoint, snapshotWeights, writeCheckpoint, type StopReason, type WeightSnapshot } from "./checkpoint";
import { emptyWindow, evalMetrics, evaluationSplit, measureHeldOut, meanSquaredNormScale, selectRows, trainingSpaceStats, type EvalMetrics, type Vectors } from "./metrics";
import { saeOptimizer, type StepStats } from "./step";
import { chooseSaeEngine, createSaeStepper, deadFeatureMask, type SaeStepper } from "./onnx-step";
import { setAside } from "./provenance";
import { yieldSometimes } from "../util/yield";

/** A seeded permutation of 0..n-1 (Fisher–Yates, the project's seeded generator). */
export function shuffledOrder(n: number, seed: number): Uint32Array {
  return Uint32Array.from(seededShuffle(Array.from({ length: n }, (_, i) => i), seed, 0x5ae));
}

// ---------------------------------------------------------------------------------------------------------------
// The budget

/** How long a recipe trains on `rows` faces, and how often it is evaluated. */
export interface TrainingPlan {
  /** Rows it trains on (all, or all but the held-out ones) and the rows it measures. */
  readonly trainingRows: number;
  readonly evaluationRows: number;
  readonly stepsPerEpoch: number;
  /** The budget in steps (early stopping may end sooner). */
  readonly maxSteps: number;
  readonly evalEvery: number;
  readonly warmupSteps: number;
}

/** The plan of `training` for `rows` faces (see the file's top). */
export function trainingPlan(training: SaeTraining, rows: number): TrainingPlan {
  const evaluationRows = evaluationSplit(rows, training.seed).evaluation.length;
  const trainingRows = training.holdOut ? rows - evaluationRows : rows;
  const stepsPerEpoch = Math.ceil(trainingRows / training.batchSize);
  let maxSteps: number;
  if (training.epochs !== null) maxSteps = training.epochs * stepsPerEpoch;
  else if (training.trainingRows !== null) maxSteps = Math.ceil(training.trainingRows / training.batchSize);
  else throw new Error("the SAE recipe has neither epochs nor trainingRows: set sae.epochs or sae.trainingRows");
  const evalEvery = Math.min(maxSteps, training.evalEvery ?? stepsPerEpoch);
  return { trainingRows, evaluationRows, stepsPerEpoch, maxSteps, evalEvery, warmupSteps: Math.round(training.warmupFraction * maxSteps) };
}

/** Evaluations since the last one that lowered the held-out loss by `minImprovement` (a fraction) below the one before. */
export function evaluationsWithoutImprovement(losses: readonly number[], minImprovement: number): number {
  let reference = Infinity;
  let since = 0;
  for (const loss of losses) {
    if (loss < reference * (1 - minImprovement)) {
      reference = loss;
      since = 0;
    } else since++;
  }
  return since;
}

// ---------------------------------------------------------------------------------------------------------------
// The training loop

export interface TrainOptions {
  /** Progress bar mode (default "auto"; "silent" in tests). */
  readonly progress?: ProgressMode;
  /** Called after every evaluation. */
  readonly onEval?: (metrics: EvalMetrics) => void;
  /** Called after every step with its stats (tests). */
  readonly onStep?: (stats: StepStats, step: number) => void;
  /** Label of the progress bar. */
  readonly desc?: string;
  /**
   * A folder for a checkpoint after every evaluation (weights, optimiser state, evaluations so far), written
   * atomically; when it holds a checkpoint of the same vectors and recipe, training continues from it (a finished
   * one is reused as it is); one of other vectors or another recipe is set aside (renamed with a suffix).
   */
  readonly checkpointDir?: string;
  /** Told when training resumes from a checkpoint: its step, and whether it had finished (then it is reused as it is). */
  readonly onResume?: (step: number, finished: boolean) => void;
  /** Told when a checkpoint of other vectors or another recipe was set aside: what changed, and where it went. */
  readonly onSetAside?: (changes: readonly string[], movedTo: readonly string[]) => void;
  /** The vectors' identity (lib/sae/provenance vectorsIdentity), recorded in the SAE's meta and its checkpoints. */
  readonly trainedOn?: VectorsIdentity;
  /** Who runs the steps (lib/sae/onnx-step `chooseSaeEngine`; default: `chooseSaeEngine("auto")`, as sae.engine's default). */
  readonly engine?: Engine;
  /** Told before the first step this call takes: the engine's description ("onnxruntime-node 1.30.0 (CPU, 2 threads)") and the step it starts from. */
  readonly onSteps?: (engine: string, fromStep: number) => void;
}

/** Trains `model` on `vectors` as its recipe says (see the file's top); returns every evaluation. */
export async function trainSae(model: SaeModel, vectors: Vectors, options: TrainOptions = {}): Promise<EvalMetrics[]> {
  const t = model.meta.training;
  prepareForData(model, vectors, options.trainedOn);
  const m = model.meta.dictionarySize;
  const plan = trainingPlan(t, vectors.rows);
  const split = evaluationSplit(vectors.rows, t.seed);
  const trainRows = t.holdOut ? split.rest : Uint32Array.from({ length: vectors.rows }, (_, i) => i);
  const evaluation = split.evaluation.length > 0 ? selectRows(vectors, split.evaluation) : null;
  const variancePerRow = trainingSpaceStats(vectors, model, trainRows).totalVariance / trainRows.length;
  const deadAfter = t.deadAfterRows ?? trainRows.length;
  const rowsSinceFired = new Float64Array(m);
  const adam = saeOptimizer(model, t.weightDecay);
  const batch = new Float32Array(t.batchSize * vectors.cols);
  const history: EvalMetrics[] = [];
  let step = 0;
  let best: { step: number; loss: number; weights: WeightSnapshot } | null = null;
  let stopped: StopReason | null = null;
  let stepper: SaeStepper | null = null;
  try {
    if (options.checkpointDir !== undefined) {
      const resumed = await resumeCheckpoint(options.checkpointDir, model, adam, rowsSinceFired);
      if (resumed.kind === "different") options.onSetAside?.(resumed.changes, setAside([options.checkpointDir]));
      if (resumed.kind === "resumed") {
        history.push(...resumed.history);
        step = resumed.step;
        stopped = resumed.stopped;
        if (resumed.best !== null) {
          const kept = resumed.history.find((h) => h.step === resumed.best?.step);
          best = { step: resumed.best.step, loss: kept?.heldOut?.loss ?? Infinity, weights: resumed.best.weights };
        }
        options.onResume?.(step, stopped !== null);
      }
    }
    // Made after the resume, so its first step starts from the restored state.
    stepper = createSaeStepper(model, adam, options.engine ?? chooseSaeEngine("auto"));
    if (stopped === null && step < plan.maxSteps) options.onSteps?.(stepper.description, step);
    const perEpochBars = t.epochs !== null;
    let bar: ProgressBar | null = null;
    const label = options.desc ?? "Training sparse autoencoder";
    let order: Uint32Array | null = null;
    let orderEpoch = -1;
    let window = emptyWindow(m);
    let windowStarted = performance.now();
    try {
      while (stopped === null && step < plan.maxSteps) {
        const epoch = Math.floor(step / plan.stepsPerEpoch);
        const within = step % plan.stepsPerEpoch;
        if (orderEpoch !== epoch || order === null) {
          order = shuffledOrder(trainRows.length, t.seed * 1000 + epoch + 1);
          orderEpoch = epoch;
        }
        if (bar === null) {
          bar = perEpochBars
            ? new ProgressBar({ total: trainRows.length, desc: `${label} ${epoch + 1}/${t.epochs}`, mode: options.progress ?? "auto" })
            : new ProgressBar({ total: plan.maxSteps, desc: label, unit: "steps", mode: options.progress ?? "auto" });
          const done = perEpochBars ? within * t.batchSize : step;
          if (done > 0) bar.update(done);
        }
        const start = within * t.batchSize;
        const rows = Math.min(t.batchSize, trainRows.length - start);
        for (let r = 0; r < rows; r++) {
          const row = trainRows[order[start + r]];
          batch.set(vectors.data.subarray(row * vectors.cols, (row + 1) * vectors.cols), r * vectors.cols);
        }
        const ramp = plan.warmupSteps > 0 ? Math.min(1, (stepper.steps + 1) / plan.warmupSteps) : 1;
        const stats = await stepper.step(batch, rows, t.learningRate * ramp, t.l1 * ramp, deadFeatureMask(rowsSinceFired, deadAfter));
        step++;
        if (!Number.isFinite(stats.loss)) throw new Error(`SAE training diverged at step ${step} (loss ${stats.loss}): lower sae.learningRate`);
        for (let j = 0; j < m; j++) {
          window.fired[j] += stats.fired[j];
          rowsSinceFired[j] = stats.fired[j] > 0 ? 0 : rowsSinceFired[j] + rows;
        }
        window.loss += stats.loss;
        window.recon += stats.recon;
        window.sparsity += stats.sparsity;
        window.aux += stats.aux;
        window.sse += stats.sse;
        window.active += stats.active;
        window.steps++;
        window.rows += rows;
        options.onStep?.(stats, step);
        const last = history[history.length - 1];
        const postfix = { loss_sae: stats.loss, recon: stats.recon, compl: stats.sparsity, ...(!perEpochBars && last?.heldOut ? { "held-out EV": last.heldOut.explainedVariance } : {}) };
        bar.update(perEpochBars ? rows : 1, postfix);
        const epochEnds = within === plan.stepsPerEpoch - 1;
        if (perEpochBars && epochEnds) {
          bar.close();
          bar = null;
        }
        if (step % plan.evalEvery === 0 || step === plan.maxSteps) {
          stepper.syncToModel(); // the decoder norms, the best weights and the checkpoint below read the TF.js model and optimiser
          // measured on the engine that trains (on ONNX Runtime, a forward pass there is several times TF.js's speed)
          const heldOut = evaluation === null ? null : await measureHeldOut(model, evaluation, stepper);
          const rowsSeen = epoch * trainRows.length + start + rows;
          const metrics = evalMetrics(model, { step, rowsSeen, trainingRows: trainRows.length }, window, variancePerRow, heldOut, (performance.now() - windowStarted) / 1000);
          history.push(metrics);
          if (t.keepBest && heldOut !== null && (best === null || heldOut.loss < best.loss)) {
            best = { step, loss: heldOut.loss, weights: await snapshotWeights(model) };
          }
          const es = t.earlyStopping;
          const losses = history.flatMap((h) => (h.heldOut === null ? [] : [h.heldOut.loss]));
          if (es !== null && heldOut !== null && step >= es.minSteps && evaluationsWithoutImprovement(losses, es.minImprovement) >= es.patience) {
            stopped = "plateau";
            // The bar ends short of its total: say why.
            if (bar !== null) bar.desc = `${bar.desc ?? label} (stopped early: held-out loss flat)`;
          } else if (step === plan.maxSteps) stopped = "budget";
          if (options.checkpointDir !== undefined) {
            await writeCheckpoint(options.checkpointDir, model, adam, rowsSinceFired, { step, history, best, stopped });
          }
          options.onEval?.(metrics);
          window = emptyWindow(m);
          windowStarted = performance.now();
        }
        await yieldSometimes();
      }
    } finally {
      bar?.close();
    }
    stepper.syncToModel(); // a no-op: the last step was followed by an evaluation
  } finally {
    await stepper?.close();
    adam.dispose();
  }
  if (best !== null && best.step !== step) restoreWeights(model, best.weights);
  const keptStep = best?.step ?? step;
  const kept = history.find((h) => h.step === keptStep) ?? history[history.length - 1];
  if (kept !== undefined) model.meta = { ...model.meta, metrics: summary(model, kept, step, plan, stopped ?? "budget") };
  return history;
}

function summary(model: SaeModel, kept: EvalMetrics, steps: number, plan: TrainingPlan, stopped: StopReason): SaeMetricsSummary {
  const held = kept.heldOut;
  const measuredOn = held === null ? "training batches" : model.meta.training.holdOut ? "held-out rows" : "evaluation rows (trained on)";
  return {
    steps,
    epochs: steps / Math.max(1, plan.stepsPerEpoch),
    keptStep: kept.step,
    stopped,
    mse: held?.mse ?? kept.mse,
    explainedVariance: held?.explainedVariance ?? kept.explainedVariance,
    l0: held?.l0 ?? kept.l0,
    measuredOn,
    dead: kept.dead,
    dense: kept.dense,
  };
}

function restoreWeights(model: SaeModel, weights: WeightSnapshot): void {
  for (const [name, v] of Object.entries(model.named())) {
    const saved = weights.get(name as SaeParameterName);
    if (saved === undefined) throw new Error(`the kept SAE weights have no "${name}"`);
    const values = tf.tensor(saved.data as Float32Array, v.shape);
    v.assign(values);
    values.dispose();
  }
  model.syncDecoderTranspose();
}

/** Checks the vectors, records their identity, measures the input scale, and sets b_d to the data mean for "tied-unit". */
function prepareForData(model: SaeModel, v: Vectors, trainedOn: VectorsIdentity | undefined): void {
  const { inputDim } = model.meta;
  if (v.cols !== inputDim) throw new Error(`the vectors have ${v.cols} values per row but the SAE takes ${inputDim}: use notebook 03's face_vectors.npy (N × ${inputDim})`);
  if (v.rows === 0) throw new Error("there are no vectors to train on: notebook 03 wrote an empty face_vectors.npy");
  if (v.data.length !== v.rows * v.cols) throw new Error(`vectors: ${v.data.length} values is not ${v.rows} × ${v.cols}`);
  checkFiniteRows(v.data, v.cols, "face vectors");
  if (trainedOn !== undefined) model.meta = { ...model.meta, trainedOn };
  // The scale and the mean are measured on every row (SAELens estimates its scale from a sample of the data too).
  if (model.meta.inputScaling.kind === "fixed-scale") model.meta = { ...model.meta, inputScaling: { kind: "fixed-scale", scale: meanSquaredNormScale(v) } };
  if (model.meta.training.init === "tied-unit") {
    const { mean } = trainingSpaceStats(v, model);
    const values = tf.tensor1d(Float32Array.from(mean));
    model.params.biasDecoder.assign(values);
    values.dispose();
  }
}
