// The SAE's training step on ONNX Runtime's native CPU kernels where onnxruntime-node loads, TF.js otherwise: one
// interface, `SaeStepper`, over both engines, so a training loop calls the same `step` either way.
//
// Why: TF.js runs the step on WASM (128-bit SIMD, no FMA), at 5–6× PyTorch's time here (shared notes); the step is
// three matrix products and elementwise work, which ONNX Runtime's MLAS runs at native speed. The whole step —
// forward, the hand-written backward pass, the decoder's unit-norm handling and Adam — is one ONNX graph
// (lib/sae/onnx-graph), so the parameters and Adam's moments never come back to JavaScript between steps: they live
// in two sets of buffers, the step reads one set and ONNX Runtime writes the next values straight into the other
// (preallocated outputs, no copy either way: onnxruntime-node wraps a typed array's memory as it is), then the two
// swap. Per step only the batch goes in and the loss parts and per-feature firing counts come out.
//
// TF.js's copy of the model and the optimiser's moments are left as they were until `syncToModel()` copies the
// current state back (parameters, W_dᵀ, Adam's moments and step count; nothing when no step was taken since): call
// it before anything reads the model or the optimiser — metrics, checkpoints, saving. After TF.js's state was
// changed (a checkpoint restored into it), `reloadFromModel()` makes the next step start from it.
//
// The results equal TF.js's step (lib/sae/step) to float32 rounding: test/sae-onnx.test.ts step by step, and
// test/sae-train.test.ts over whole runs of both presets. Config `sae.engine`: "auto" (the fastest that loads:
// TF.js on a GPU, else this where onnxruntime-node loads, else TF.js on the CPU), "onnxruntime" (must load), "tfjs".
//
// The loop (lib/sae/train `trainSae`, which notebook 04 runs through lib/sae/run-saes) calls it like this:
//   const adam = saeOptimizer(model, t.weightDecay);
//   … resume from a checkpoint into the TF.js model and adam, if there is one; then
//   const stepper = createSaeStepper(model, adam, chooseSaeEngine(config.sae.engine));
//   … per batch: const stats = await stepper.step(batch, rows, lr, l1, deadFeatureMask(rowsSinceFired, deadAfter));
//   … at each evaluation: measureHeldOut(model, rows, stepper) (lib/sae/metrics: the forward pass on this engine,
//     no sync needed), and stepper.syncToModel() before the decoder norms, the best weights and the checkpoint;
//   finally: await stepper.close();

import type { Adam } from "../model/adam";
import { tf } from "../kernels/backend";
import type { EngineChoice } from "../kernels/backend-names";
import { chooseEngine, createCpuSession, describeEngine, onnxThreads, unsharedFloat32, type Engine, type OrtLoad, type OrtModule, type OrtSession, type OrtTensor, type TfjsOn } from "../kernels/onnxruntime";
import { SAE_PARAMETER_NAMES, type SaeModel } from "./sae";
import { saeStep, type StepStats } from "./step";
import { tfjsBatchSums, type BatchSums } from "./metrics";
import { nextName, SAE_STAT_NAMES, SAE_STATE_NAMES, SAE_SUM_NAMES, saeGraphRecipe, saeMeasureModel, saeScalarInputs, saeStateShapes, saeStepModel, type SaeGraphRecipe } from "./onnx-graph";

/** The features AuxK may use in a step: 1 in `mask` for each dead feature, `count` of them. */
export interface DeadFeatureMask {
  readonly mask: Float32Array;
  readonly count: number;
}

/** One SAE training step on either engine. */
export interface SaeStepper {
  readonly engine: "onnxruntime" | "tfjs";
  /** "onnxruntime-node 1.30.0 (CPU, 2 threads)" or "TF.js wasm: <why not ONNX Runtime>". */
  readonly description: string;
  /** Updates made so far (the optimiser's `step` shows it only after syncToModel() on ONNX Runtime). */
  readonly steps: number;
  /**
   * One optimisation step on the first `rows` rows of `batch` (raw vectors, row-major, inputDim values each) with
   * this learning rate and λ, AuxK on `dead` features: as lib/sae/step `saeStep`.
   */
  step(batch: Float32Array, rows: number, learningRate: number, l1: number, dead: DeadFeatureMask | null): Promise<StepStats>;
  /**
   * The first `rows` rows of `xs` (already in training space) measured with the current weights, forward only, on
   * this engine (no syncToModel() needed): for lib/sae/metrics `measureHeldOut`.
   */
  measure(xs: Float32Array, rows: number): Promise<BatchSums>;
  /** The current parameters (and W_dᵀ), Adam's moments and step count copied into the TF.js model and optimiser. */
  syncToModel(): void;
  /** The next step starts from the TF.js model's parameters and the optimiser's moments and step count. */
  reloadFromModel(): void;
  /** Releases the native sessions (not the model or the optimiser); the state buffers go with the stepper. */
  close(): Promise<void>;
}

/** The dead features of a loop's counters (rows since each feature last fired), or null when none is dead. */
export function deadFeatureMask(rowsSinceFired: Float64Array, deadAfter: number): DeadFeatureMask | null {
  const mask = new Float32Array(rowsSinceFired.length);
  let count = 0;
  for (let j = 0; j < mask.length; j++) {
    if (rowsSinceFired[j] >= deadAfter) {
      mask[j] = 1;
      count++;
    }
  }
  return count === 0 ? null : { mask, count };
}

/** Which engine runs the SAE's step (`sae.engine`): see lib/kernels/onnxruntime `chooseEngine`. */
export function chooseSaeEngine(choice: EngineChoice, load?: () => OrtLoad, tfjs?: TfjsOn): Engine {
  return chooseEngine(choice, load, "sae.engine", tfjs);
}

/** The stepper of the chosen engine, over this model and its optimiser (lib/sae/step `saeOptimizer`). */
export function createSaeStepper(model: SaeModel, adam: Adam, engine: Engine, threads: number = onnxThreads()): SaeStepper {
  return engine.name === "onnxruntime" ? createNativeSaeStepper(model, adam, engine, threads) : createTfjsSaeStepper(model, adam, describeEngine(engine, tf.getBackend()));
}

// ---------------------------------------------------------------------------------------------------------------
// TF.js (lib/sae/step)

export function createTfjsSaeStepper(model: SaeModel, adam: Adam, description = `TF.js ${tf.getBackend()}`): SaeStepper {
  const d = model.meta.inputDim;
  return {
    engine: "tfjs",
    description,
    get steps() {
      return adam.step;
    },
    async step(batch, rows, learningRate, l1, dead) {
      checkBatch(batch, rows, d);
      const x = tf.tensor2d(batch.subarray(0, rows * d), [rows, d]);
      const deadMask = dead === null || dead.count === 0 ? null : { mask: tf.tensor1d(dead.mask), count: dead.count };
      try {
        return saeStep(model, adam, x, learningRate, l1, deadMask);
      } finally {
        x.dispose();
        deadMask?.mask.dispose();
      }
    },
    async measure(xs, rows) {
      checkBatch(xs, rows, d);
      return tfjsBatchSums(model, xs, rows);
    },
    syncToModel() {},
    reloadFromModel() {},
    async close() {},
  };
}

function checkBatch(batch: Float32Array, rows: number, d: number): void {
  if (!(Number.isInteger(rows) && rows > 0 && rows * d <= batch.length)) {
    throw new Error(`SAE step: ${rows} rows of ${d} values do not fit a batch of ${batch.length} values`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// ONNX Runtime (lib/sae/onnx-graph)

const BETA1 = 0.9;
const BETA2 = 0.999;

/** The native stepper: the parameters and Adam's moments stay in its buffers between steps. */
export function createNativeSaeStepper(model: SaeModel, adam: Adam, engine: { readonly ort: OrtModule; readonly version: string }, threads: number = onnxThreads()): SaeStepper {
  const { inputDim: d, dictionarySize: m } = model.meta;
  const named = model.named();
  SAE_PARAMETER_NAMES.forEach((name, i) => {
    if (adam.params[i] !== named[name]) throw new Error(`native SAE step: the optimiser's parameter ${i} is not the model's ${name}: make it with saeOptimizer(model, …)`);
  });
  const shapes = saeStateShapes(d, m);
  const tensor = (data: Float32Array, dims: readonly number[]): OrtTensor => new engine.ort.Tensor("float32", data, dims);
  // Two sets of state buffers: a step reads sets[current] and writes sets[1 − current].
  const sets = [0, 1].map(() => shapes.map((shape) => new Float32Array(shape.reduce((a, b) => a * b, 1))));
  const setTensors = sets.map((set) => shapes.map((shape, i) => tensor(set[i], shape)));
  const stats = new Float32Array(SAE_STAT_NAMES.length);
  const fired = new Float32Array(m);
  const outTensors = { stats: tensor(stats, [stats.length]), fired: tensor(fired, [m]) };
  const sums = new Float32Array(SAE_SUM_NAMES.length);
  const measured = new Float32Array(m);
  const measureTensors = { sums: tensor(sums, [sums.length]), fired: tensor(measured, [m]) };
  const sessions = new Map<string, Promise<OrtSession>>();
  const session = (recipe: SaeGraphRecipe, kind: "step" | "measure" = "step"): Promise<OrtSession> => {
    const key = `${kind} ${JSON.stringify(recipe)}`;
    let made = sessions.get(key);
    if (made === undefined) {
      made = createCpuSession(engine.ort, kind === "step" ? saeStepModel(recipe) : saeMeasureModel(recipe), threads);
      sessions.set(key, made);
    }
    return made;
  };
  let current = 0;
  let steps = 0;
  let loaded = false;
  /** Steps taken since the state was last loaded from or copied to TF.js. */
  let unsynced = 0;
  let closed = false;

  const load = (): void => {
    const values = [...SAE_PARAMETER_NAMES.map((n) => named[n]), ...adam.m, ...adam.v];
    values.forEach((v, i) => sets[current][i].set(v.dataSync() as Float32Array));
    steps = adam.step;
    loaded = true;
    unsynced = 0;
  };

  return {
    engine: "onnxruntime",
    description: describeEngine({ name: "onnxruntime", ...engine }, tf.getBackend(), threads),
    get steps() {
      return loaded ? steps : adam.step;
    },
    async step(batch, rows, learningRate, l1, dead) {
      if (closed) throw new Error("native SAE step: step() after close()");
      checkBatch(batch, rows, d);
      if (!loaded) load();
      const t = model.meta.training;
      const withAux = dead !== null && dead.count > 0 && t.auxK > 0 && t.auxKCoefficient > 0;
      const recipe = saeGraphRecipe(model.meta, withAux);
      const s = await session(recipe);
      const update = steps + 1;
      const scalars: Record<string, number> = {
        lr_step: learningRate / (1 - BETA1 ** update),
        bc2_sqrt: Math.sqrt(1 - BETA2 ** update),
        l1_scale: t.loss === "mse" ? l1 / rows : l1,
        count: rows,
        e_scale: 2 / rows,
        input_scale: model.meta.inputScaling.kind === "fixed-scale" ? model.meta.inputScaling.scale : 1,
      };
      const feeds: Record<string, OrtTensor> = { x: tensor(unsharedFloat32(batch.subarray(0, rows * d)), [rows, d]) };
      for (const name of saeScalarInputs(recipe)) feeds[name] = tensor(Float32Array.of(scalars[name]), []);
      if (recipe.auxK && dead !== null) {
        feeds.dead = tensor(unsharedFloat32(dead.mask), [m]);
        feeds.aux_k = tensor(Float32Array.of(Math.min(t.auxK, dead.count)), [1]);
      }
      const fetches: Record<string, OrtTensor> = { ...outTensors };
      SAE_STATE_NAMES.forEach((name, i) => {
        feeds[name] = setTensors[current][i];
        fetches[nextName(name)] = setTensors[1 - current][i];
      });
      await s.run(feeds, fetches);
      current = 1 - current;
      steps = update;
      unsynced++;
      const [loss, recon, sparsity, aux, sse, active] = stats;
      return { loss, recon, sparsity, aux, sse, active, fired: fired.slice() };
    },
    async measure(xs, rows) {
      if (closed) throw new Error("native SAE step: measure() after close()");
      checkBatch(xs, rows, d);
      if (!loaded) load();
      const s = await session(saeGraphRecipe(model.meta, false), "measure");
      const feeds: Record<string, OrtTensor> = { xs: tensor(unsharedFloat32(xs.subarray(0, rows * d)), [rows, d]) };
      SAE_PARAMETER_NAMES.forEach((name, i) => (feeds[name] = setTensors[current][i]));
      await s.run(feeds, measureTensors);
      const [sse, l1, active] = sums;
      return { sse, l1, active, fired: measured.slice() };
    },
    syncToModel() {
      if (!loaded || unsynced === 0) return; // nothing has moved since TF.js's state
      const values = [...SAE_PARAMETER_NAMES.map((n) => named[n]), ...adam.m, ...adam.v];
      values.forEach((v, i) => {
        // a copy: the CPU backend would keep the array itself, which the next step overwrites
        const t = tf.tensor(sets[current][i].slice(), v.shape);
        v.assign(t);
        t.dispose();
      });
      model.syncDecoderTranspose();
      adam.step = steps;
      unsynced = 0;
    },
    reloadFromModel() {
      loaded = false;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const made of sessions.values()) await (await made).release();
      sessions.clear();
    },
  };
}
