// Fine-tuning ResNet18 with the post's contrastive + orientation loss (notebook 02): the training loop, top to
// bottom, and the run's fine-tuning. Its parts: lib/model/inputs (preprocessing), lib/model/loss, lib/model/step
// (one step, gradient cache, native passes), lib/model/checkpoints, lib/model/adam.
//
// The post's step, for a batch X of images in [0, 1] (no ImageNet normalisation) and X_rot = X turned 180°:
//   e = model(X), r = model(X_rot)                      (model.train(): BatchNorm uses batch statistics)
//   orientation = mse(e, −r)                            (a face upside down should give the opposite vector)
//   contrastive = cross_entropy(e @ eᵀ, arange(B))      (each face most similar to itself, not to the others)
//   loss = contrastive + orientation; Adam(lr 1e-3), batch 128, shuffled, one epoch.
// The post also computes normalised embeddings and never uses them: the `post` preset keeps the raw dot products.
// The `recommended` preset uses them: cosine similarities over a temperature, the other pictures of the same person
// in the batch as extra positives (when the dataset has identities), the orientation loss on unit vectors, and
// ImageNet normalisation of the inputs (what torchvision's weights were trained with).
//

import { createHash } from "node:crypto";

import { Adam } from "./adam";


import { tf } from "../kernels/backend";


import type { FinetuneConfig, RunConfig } from "../run/config";


import { openRunDataset } from "../data/datasets";


import { showFigure, type Figure } from "../display/figures";


import { createImageLoader, type ImageBatch } from "../data/image-loader";


import { createNativeTrainer, type NativeTrainer } from "./onnx/train";


import { chooseEngine, describeEngine } from "../kernels/onnxruntime";


import { newDisplayHandle, richDisplayAvailable } from "../display/notebook-display";


import { displayPath } from "../util/project";

import { runFiles } from "../run/files";

import { artifactId } from "../util/artifact-id";

import { ProgressBar, type ProgressMode } from "../display/progress";

import type { ResNet18 } from "./resnet18";

import { seededShuffle } from "../util/random";


import { imageCachePath } from "../data/datasets";

import { initialModel, type InitialWeights } from "./initial-weights";

import { loadCheckpoint, resumableCheckpoint, saveCheckpoint, saveFinetunedModel, type TrainingState } from "./checkpoints";

import type { LossValues } from "./loss";


import { NonFiniteLossError, trainStep, type StepOptions } from "./step";



// ---------------------------------------------------------------------------------------------------------------
// The training loop

/** Batches of images (NHWC in [0, 1]) over dataset indices in the given order, `batchSize` at a time. */
export type BatchSource = (order: Int32Array, batchSize: number) => AsyncIterable<ImageBatch>;

/** Epoch `epoch`'s data order: a Fisher–Yates shuffle of 0 … n−1 keyed by (seed, epoch) (DataLoader(shuffle=True)). */
export function shuffledOrder(n: number, seed: number, epoch: number): number[] {
  return seededShuffle(Array.from({ length: n }, (_, i) => i), seed, 0x5eed, epoch);
}

/** The fine-tuning settings of the config (without the weights file) and the run's seed. */
export type TrainSettings = Omit<FinetuneConfig, "weights" | "weightsRevision" | "engine"> & { readonly seed: number };

export interface TrainOptions {
  readonly model: ResNet18;
  /** Images in the dataset. */
  readonly count: number;
  readonly batches: BatchSource;
  /** Person of each dataset image (positives of the recommended loss), or null. */
  readonly identities: ArrayLike<number> | null;
  readonly settings: TrainSettings;
  /** Where checkpoints go (runs/<run>/checkpoints). */
  readonly checkpointDir: string;
  /** Anything else that must match for a checkpoint to be resumed (image size, dataset, initial weights). */
  readonly fingerprintExtra?: Readonly<Record<string, string | number>>;
  readonly progress?: ProgressMode;
  /** A live loss curve through a display handle (default: when running in a notebook). */
  readonly showCurve?: boolean;
  /** BatchNorm in train mode (default true, the post's). */
  readonly training?: boolean;
  /** Runs the passes on ONNX Runtime (lib/model/onnx/train); TF.js when absent. */
  readonly native?: NativeTrainer;
  /** Called after every step (tests use it to stop a run as a kill would). */
  readonly onStep?: (step: number, values: LossValues) => void;
}

export interface TrainResult {
  /** Steps done in total (resumed ones included). */
  readonly steps: number;
  readonly totalSteps: number;
  /** The step the run resumed from, or null when it started fresh. */
  readonly resumedFrom: number | null;
  readonly history: readonly LossValues[];
  /** Steps done by this call, and their time. */
  readonly stepsThisRun: number;
  readonly seconds: number;
  /** Of `seconds`, the time spent waiting for the next batch of images (decoding that had not kept up). */
  readonly dataWaitSeconds: number;
  readonly lastCheckpoint: string | null;
  /** Why old checkpoints were not resumed (settings changed), or "". */
  readonly note: string;
}

/** Steps of a whole run: epochs × ceil(N / batch) (DataLoader keeps the last, smaller batch), at most maxSteps. */
export function totalSteps(count: number, settings: Pick<TrainSettings, "epochs" | "batchSize" | "maxSteps">): number {
  const all = settings.epochs * Math.ceil(count / settings.batchSize);
  return settings.maxSteps === null ? all : Math.min(all, settings.maxSteps);
}

/**
 * What a checkpoint must have been made with to be resumed: every setting that shapes a step, and the inputs
 * (`fingerprintExtra`). Not `maxSteps` nor `epochs`: raising either continues the same run, whose data order for
 * epoch k is fixed by (seed, k).
 */
export function fingerprintOf(options: Pick<TrainOptions, "settings" | "count" | "training" | "fingerprintExtra">): string {
  const s = options.settings;
  return JSON.stringify({
    preset: s.preset, batchSize: s.batchSize, chunkSize: s.chunkSize, learningRate: s.learningRate,
    temperature: s.temperature, seed: s.seed, count: options.count, training: options.training ?? true, ...options.fingerprintExtra,
  });
}

/** The loss curve of a run: loss, contrastive and orientation loss per step (log scale when all positive). */
export function lossCurveFigure(history: readonly LossValues[], title = "Fine-tuning loss"): Figure {
  const x = history.map((_, i) => i + 1);
  const positive = history.every((h) => h.loss > 0 && h.contrastive > 0 && h.orientation > 0);
  const trace = (name: string, y: number[], color: string) => ({ type: "scatter" as const, mode: "lines" as const, name, x, y, line: { color, width: 2 } });
  return {
    data: [
      trace("loss", history.map((h) => h.loss), "#1f77b4"),
      trace("contrastive_loss", history.map((h) => h.contrastive), "#ff7f0e"),
      trace("orientation_loss", history.map((h) => h.orientation), "#2ca02c"),
    ],
    layout: { title, xaxis: { title: "step" }, yaxis: { title: "loss", type: positive ? "log" : "linear" } },
  };
}

/**
 * Trains `model` in place: resumes from the newest checkpoint of the same settings, shuffles each epoch, steps with
 * Adam, checkpoints every `checkpointEvery` steps and at the end, stops on a NaN/infinite loss.
 */
export async function trainModel(options: TrainOptions): Promise<TrainResult> {
  const { model, settings, count } = options;
  const total = totalSteps(count, settings);
  const stepsPerEpoch = Math.ceil(count / settings.batchSize);
  const fingerprint = fingerprintOf(options);
  const adam = new Adam(model.trainable, { learningRate: settings.learningRate });
  const stepOptions: StepOptions = { loss: settings, chunkSize: settings.chunkSize, training: options.training, native: options.native };
  let state: TrainingState = { step: 0, epoch: 0, seed: settings.seed, order: shuffledOrder(count, settings.seed, 0), history: [], fingerprint };
  let resumedFrom: number | null = null;
  let note = "";
  let lastCheckpoint: string | null = null;
  const resumable = resumableCheckpoint(options.checkpointDir, fingerprint);
  note = resumable.note;
  if (resumable.path !== null) {
    state = await loadCheckpoint(resumable.path, model, adam);
    resumedFrom = state.step;
    lastCheckpoint = resumable.path;
  }
  const history = [...state.history];
  const bar = new ProgressBar({ total, desc: "Training...", unit: "it", mode: options.progress });
  const curve = (options.showCurve ?? richDisplayAvailable()) ? newDisplayHandle() : null;
  let lastCurve = 0;
  const drawCurve = async (): Promise<void> => {
    if (curve !== null && history.length > 0) await showFigure(lossCurveFigure(history), { handle: curve });
    lastCurve = performance.now();
  };
  const started = performance.now();
  const firstStep = state.step;
  let dataWaitMs = 0;
  bar.update(state.step);
  try {
    while (state.step < total) {
      const epoch = Math.floor(state.step / stepsPerEpoch);
      if (epoch !== state.epoch) state = { ...state, epoch, order: shuffledOrder(count, settings.seed, epoch) };
      const from = (state.step % stepsPerEpoch) * settings.batchSize;
      const to = Math.min(count, from + (total - state.step) * settings.batchSize);
      let asked = performance.now();
      for await (const batch of options.batches(Int32Array.from(state.order.slice(from, to)), settings.batchSize)) {
        dataWaitMs += performance.now() - asked;
        const ids = options.identities === null ? null : Array.from(batch.indices, (i) => options.identities![i]);
        const images = tf.tensor4d(batch.data, batch.shape);
        let values: LossValues;
        try {
          values = await trainStep(model, adam, images, ids, stepOptions);
        } finally {
          images.dispose();
        }
        if (!Number.isFinite(values.loss)) {
          const keep = lastCheckpoint === null ? "No checkpoint was written yet." : `The last good checkpoint is ${displayPath(lastCheckpoint)}.`;
          throw new NonFiniteLossError(state.step + 1, values, `${keep} Lower finetune.learningRate (now ${settings.learningRate}) and run again: it resumes from there.`);
        }
        history.push(values);
        state = { ...state, step: state.step + 1, history };
        bar.update(1, { loss: values.loss, contrastive_loss: values.contrastive, orientation_loss: values.orientation });
        if (state.step % settings.checkpointEvery === 0 || state.step === total) {
          lastCheckpoint = await saveCheckpoint(options.checkpointDir, model, adam, state);
        }
        options.onStep?.(state.step, values);
        if (performance.now() - lastCurve > 5000) await drawCurve();
        if (state.step >= total || state.step % stepsPerEpoch === 0) break;
        asked = performance.now();
      }
    }
  } finally {
    bar.close();
    adam.dispose();
  }
  await drawCurve();
  return {
    steps: state.step, totalSteps: total, resumedFrom, history, stepsThisRun: state.step - firstStep,
    seconds: (performance.now() - started) / 1000, dataWaitSeconds: dataWaitMs / 1000, lastCheckpoint, note,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The run's fine-tuning (notebook 02)

export interface FinetuneResult extends TrainResult {
  readonly modelPath: string;
  readonly initialWeights: string;
  readonly images: number;
  /** Who ran the passes: "onnxruntime-node 1.30.0 (CPU, 2 threads)" or "TF.js wasm: <why>". */
  readonly engine: string;
}

/** The native trainer config `finetune.engine` asks for and gets (null: TF.js), and who trains, said plainly. */
export function chooseTrainEngine(config: RunConfig, width: number, load?: Parameters<typeof chooseEngine>[1]): { native: NativeTrainer | null; description: string } {
  const engine = chooseEngine(config.finetune.engine, load, "finetune.engine");
  if (engine.name === "tfjs") return { native: null, description: describeEngine(engine, tf.getBackend()) };
  const native = createNativeTrainer(engine, width);
  return { native, description: native.description };
}

/** The id of the initial weights in the checkpoints' fingerprint: the file's SHA-256, or the random initialisation's seed. */
export async function initialWeightsId(weights: InitialWeights): Promise<string> {
  if (weights.kind === "imagenet") return weights.sha256;
  if (weights.kind === "file") return artifactId(weights.path);
  return `torchvision's random initialisation (seed ${weights.seed})`;
}

/** Fine-tunes the run's model on the run's dataset and writes runs/<run>/resnet18.safetensors and its record (resnet18.json). */
export async function finetune(config: RunConfig, options: { progress?: ProgressMode; showCurve?: boolean } = {}): Promise<FinetuneResult> {
  const dataset = await openRunDataset(config);
  const files = runFiles(config.run);
  const { model, source, weights } = await initialModel(config);
  const weightsId = await initialWeightsId(weights);
  const f = config.finetune;
  let engine: ReturnType<typeof chooseTrainEngine>;
  try {
    engine = chooseTrainEngine(config, model.width);
  } catch (error) {
    model.dispose();
    throw error;
  }
  const loader = createImageLoader(dataset.paths, {
    size: config.imageSize, mode: config.resize, batchSize: f.batchSize, prefetch: config.prefetchBatches,
    cache: imageCachePath(config, dataset), onBadImage: config.onBadImage, reuseBatchMemory: true,
  });
  try {
    const identities = dataset.identities === null ? null : dataset.identities.ids;
    const train: TrainOptions = {
      model,
      count: dataset.count,
      batches: (order, batchSize) => loader.batches({ order, batchSize }),
      identities,
      settings: { ...f, seed: config.seed },
      checkpointDir: files.checkpoints,
      fingerprintExtra: {
        imageSize: config.imageSize, resize: config.resize, images: dataset.imagesId, weights: weightsId,
        ...(f.preset === "recommended" ? { identities: identities === null ? "none" : createHash("sha256").update(identities).digest("hex") } : {}),
      },
      progress: options.progress,
      showCurve: options.showCurve,
      native: engine.native ?? undefined,
    };
    const result = await trainModel(train);
    const modelPath = files.model;
    const saved = await saveFinetunedModel(model, files, { fingerprint: fingerprintOf(train), steps: result.steps, trained: result.stepsThisRun > 0, initialWeights: source });
    const note = [result.note, saved.note].filter((n) => n !== "").join(" ");
    return { ...result, note, modelPath, initialWeights: source, images: dataset.count, engine: engine.description };
  } finally {
    await loader.close();
    await engine.native?.close();
    model.dispose();
  }
}

/** The plan of a run in a few lines: preset, batch, chunks, steps, learning rate. */
export function describeTrainPlan(config: RunConfig, count: number): string {
  const f = config.finetune;
  const steps = totalSteps(count, f);
  const chunks = Math.ceil(f.batchSize / f.chunkSize);
  return [
    `preset ${f.preset}: ${f.preset === "post" ? "raw dot products e·eᵀ, mse(e, −e_rot), inputs in [0, 1] (the post's code)" : `cosine similarities / ${f.temperature}, same-person positives, orientation on unit vectors, ImageNet-normalised inputs`}`,
    `${count} images of ${config.imageSize}×${config.imageSize}, batch ${f.batchSize} in ${chunks} chunk${chunks === 1 ? "" : "s"} of ≤ ${f.chunkSize}` +
      (chunks > 1 ? " (gradient cache; BatchNorm statistics per chunk)" : " (one chunk: exactly the post's step)"),
    `${steps} step${steps === 1 ? "" : "s"} (${f.epochs} epoch${f.epochs === 1 ? "" : "s"} of ${Math.ceil(count / f.batchSize)}${f.maxSteps === null ? "" : `, at most ${f.maxSteps}`}), Adam lr ${f.learningRate}, checkpoint every ${f.checkpointEvery} steps`,
  ].join("\n");
}

/** One paragraph about a finished fine-tuning. */
export function describeFinetuneResult(result: FinetuneResult): string {
  const last = result.history[result.history.length - 1];
  const lines = [
    result.resumedFrom === null ? `Trained ${result.stepsThisRun} steps from the start.` : `Resumed from step ${result.resumedFrom}; trained ${result.stepsThisRun} more steps.`,
    result.stepsThisRun > 0
      ? `${result.seconds.toFixed(1)} s, ${(result.seconds / result.stepsThisRun).toFixed(2)} s/step, ${((100 * result.dataWaitSeconds) / result.seconds).toFixed(1)} % of it waiting for images; passes run by ${result.engine}.`
      : "Nothing left to train: the checkpoint had finished.",
    last === undefined ? "" : `Final step: loss ${last.loss.toPrecision(4)}, contrastive ${last.contrastive.toPrecision(4)}, orientation ${last.orientation.toPrecision(4)}.`,
    `Model: ${displayPath(result.modelPath)}${result.lastCheckpoint === null ? "" : `; last checkpoint: ${displayPath(result.lastCheckpoint)}`}.`,
  ];
  if (result.note !== "") lines.push(result.note);
  return lines.filter((l) => l !== "").join("\n");
}
