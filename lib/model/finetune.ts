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
import { existsSync } from "node:fs";
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
import { saveFindings } from "../run/findings";
import { artifactId } from "../util/artifact-id";
import { ProgressBar, type ProgressMode } from "../display/progress";
import type { Row } from "../display/html-table";
import { chanceRecall } from "../util/retrieval";
import type { ResNet18 } from "./resnet18";
import { seededShuffle } from "../util/random";
import { imageCachePath } from "../data/datasets";
import { initialModel, type InitialWeights } from "./initial-weights";
import { listCheckpoints, loadCheckpoint, readCheckpointState, resumableCheckpoint, saveCheckpoint, saveFinetunedModel, type TrainingState } from "./checkpoints";
import type { LossValues } from "./loss";
import { NonFiniteLossError, trainStep, type StepOptions } from "./step";
import { augmentViews } from "./inputs";
import {
  EstimateDisplay, POST_RUN, RunClock, describeEstimateCheck, postSizeEstimate, runsAtPostSize, stepsScaleToPostSize, timeGradientPass, type PostSizeEstimate, type RunEstimate,
} from "./estimate";
import { updateBatchNormOn } from "./batch-norm";
import { heldOutSample, personBatchEpoch, personBatchSteps, splitPeople, type PeopleSplit } from "../data/people";
import type { ImageDataset } from "../data/image-dataset";
import {
  finetuneFindings, heldOutFigure, isMeasuredStep, loadFaces, loadHeldOutSet, measureEvery, measureHeldOut, writeFindings, type FinetuneFindings, type HeldOutPoint,
} from "./held-out";



// ---------------------------------------------------------------------------------------------------------------
// The training loop

/** Batches of images (NHWC in [0, 1]) over dataset indices in the given order, `batchSize` at a time. */
export type BatchSource = (order: Int32Array, batchSize: number) => AsyncIterable<ImageBatch>;

/** Epoch `epoch`'s data order: a Fisher–Yates shuffle of 0 … n−1 keyed by (seed, epoch) (DataLoader(shuffle=True)). */
export function shuffledOrder(n: number, seed: number, epoch: number): number[] {
  return seededShuffle(Array.from({ length: n }, (_, i) => i), seed, 0x5eed, epoch);
}

/** Where each epoch's batches come from: its order of dataset indices, batch after batch, and its number of steps. */
export interface EpochSampler {
  readonly stepsPerEpoch: number;
  order(epoch: number): readonly number[];
}

/** Shuffled batches of the faces `indices` (all of them: the post's DataLoader(shuffle=True)), the last one smaller. */
export function shuffledSampler(indices: readonly number[], settings: Pick<TrainSettings, "batchSize" | "seed">): EpochSampler {
  return {
    stepsPerEpoch: Math.ceil(indices.length / settings.batchSize),
    order: (epoch) => shuffledOrder(indices.length, settings.seed, epoch).map((i) => indices[i]),
  };
}

/** Identity-balanced batches (lib/data/people): P people × K pictures, every person's pictures once an epoch. */
export function personSampler(indices: readonly number[], ids: ArrayLike<number>, settings: Pick<TrainSettings, "batchSize" | "seed">, imagesPerPerson: number): EpochSampler {
  const batch = { batchSize: settings.batchSize, imagesPerPerson, seed: settings.seed };
  return { stepsPerEpoch: personBatchSteps(indices, ids, batch), order: (epoch) => personBatchEpoch(indices, ids, batch, epoch).order };
}

/** Measures the model on held-out people (lib/model/held-out) every `every` steps, at step 0 and at the last step. */
export interface HeldOutMeasure {
  readonly every: number;
  measure(model: ResNet18, step: number): HeldOutPoint | Promise<HeldOutPoint>;
}

/** The fine-tuning settings of the config (without the weights file and what only the run's fine-tuning reads) and
 *  the run's seed. */
export type TrainSettings = Omit<
  FinetuneConfig,
  "weights" | "weightsRevision" | "engine" | "imagesPerPerson" | "augment" | "batchNormImages" | "heldOutPeople" | "heldOutImages" | "evalEvery"
> & {
  readonly seed: number;
};

export interface TrainOptions {
  readonly model: ResNet18;
  /** Images in the dataset. */
  readonly count: number;
  readonly batches: BatchSource;
  /** The batches of each epoch (default: shuffled batches of all `count` images, the post's). */
  readonly sampler?: EpochSampler;
  /** Each batch's faces as random views of themselves (lib/model/inputs augmentViews; default false, the post's). */
  readonly augment?: boolean;
  /** Held-out measurements during training, kept in the checkpoints and drawn beside the loss curve. */
  readonly heldOut?: HeldOutMeasure;
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
  /** Where the estimate of the run's time, made from its first steps (lib/model/estimate), is shown (not shown
   *  when absent; TrainResult.estimate has it either way). */
  readonly estimate?: EstimateDisplay;
}

export interface TrainResult {
  /** Steps done in total (resumed ones included). */
  readonly steps: number;
  readonly totalSteps: number;
  /** The step the run resumed from, or null when it started fresh. */
  readonly resumedFrom: number | null;
  readonly history: readonly LossValues[];
  /** The held-out measurements, step 0 first ([] without `heldOut`). */
  readonly heldOut: readonly HeldOutPoint[];
  /** Steps done by this call, and their time. */
  readonly stepsThisRun: number;
  readonly seconds: number;
  /** Of `seconds`, the time spent waiting for the next batch of images (decoding that had not kept up). */
  readonly dataWaitSeconds: number;
  /** Of `seconds`, the time spent measuring held-out people. */
  readonly measureSeconds: number;
  readonly lastCheckpoint: string | null;
  /** Why old checkpoints were not resumed (settings changed), or "". */
  readonly note: string;
  /** This call's time as estimated from its first steps (lib/model/estimate; `seconds` null when too short to time). */
  readonly estimate: RunEstimate;
}

/** Steps of a whole run of epochs of `stepsPerEpoch` steps, at most maxSteps. */
export function runSteps(stepsPerEpoch: number, settings: Pick<TrainSettings, "epochs" | "maxSteps">): number {
  const all = settings.epochs * stepsPerEpoch;
  return settings.maxSteps === null ? all : Math.min(all, settings.maxSteps);
}

/** Steps of a whole run of shuffled batches: epochs × ceil(N / batch) (DataLoader keeps the last, smaller batch), at
 *  most maxSteps. */
export function totalSteps(count: number, settings: Pick<TrainSettings, "epochs" | "batchSize" | "maxSteps">): number {
  return runSteps(Math.ceil(count / settings.batchSize), settings);
}

/**
 * What a checkpoint must have been made with to be resumed: every setting that shapes a step, and the inputs
 * (`fingerprintExtra`). Not `maxSteps`: raising it continues the same run, whose data order for epoch k is fixed by
 * (seed, k).
 */
export function fingerprintOf(options: Pick<TrainOptions, "settings" | "count" | "training" | "augment" | "fingerprintExtra">): string {
  const s = options.settings;
  return JSON.stringify({
    preset: s.preset, epochs: s.epochs, batchSize: s.batchSize, chunkSize: s.chunkSize, learningRate: s.learningRate,
    temperature: s.temperature, seed: s.seed, count: options.count, training: options.training ?? true,
    ...(options.augment ? { augment: true } : {}), ...options.fingerprintExtra,
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
  const sampler = options.sampler ?? shuffledSampler(Array.from({ length: count }, (_, i) => i), settings);
  const stepsPerEpoch = sampler.stepsPerEpoch;
  const total = runSteps(stepsPerEpoch, settings);
  const fingerprint = fingerprintOf(options);
  const adam = new Adam(model.trainable, { learningRate: settings.learningRate });
  const stepOptions: StepOptions = { loss: settings, chunkSize: settings.chunkSize, training: options.training, native: options.native };
  let state: TrainingState = { step: 0, epoch: 0, seed: settings.seed, order: sampler.order(0), history: [], fingerprint, heldOut: [] };
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
  const heldOut = [...(state.heldOut ?? [])];
  const showCurves = options.showCurve ?? richDisplayAvailable();
  const curve = showCurves ? newDisplayHandle() : null;
  const heldOutCurve = showCurves && options.heldOut !== undefined ? newDisplayHandle() : null;
  let lastCurve = 0;
  const drawCurve = async (): Promise<void> => {
    if (curve !== null && history.length > 0) await showFigure(lossCurveFigure(history), { handle: curve });
    if (heldOutCurve !== null && heldOut.length > 0) await showFigure(heldOutFigure(heldOut), { handle: heldOutCurve });
    lastCurve = performance.now();
  };
  // The estimate: steps 2–4 of this call timed (lib/model/estimate), measurements and checkpoints apart.
  const clock = new RunClock({ firstStep: state.step, totalSteps: total, measureEvery: options.heldOut?.every ?? null, checkpointEvery: settings.checkpointEvery });
  let estimate: RunEstimate | null = clock.window === null ? clock.untimed() : null;
  let measureMs = 0;
  const measure = async (): Promise<void> => {
    if (options.heldOut === undefined || heldOut.some((p) => p.step === state.step)) return;
    if (!isMeasuredStep(state.step, options.heldOut.every, total)) return;
    const t = performance.now();
    heldOut.push(await options.heldOut.measure(model, state.step));
    state = { ...state, heldOut };
    const ms = performance.now() - t;
    measureMs += ms;
    clock.aside("measure", ms);
  };
  const bar = new ProgressBar({ total, desc: "Training...", unit: "it", mode: options.progress });
  if (estimate !== null) options.estimate?.showRun(estimate, (line) => bar.write(line));
  const started = performance.now();
  const firstStep = state.step;
  let dataWaitMs = 0;
  bar.update(state.step);
  try {
    await measure(); // step 0: the "before" (nothing when resuming: it is in the checkpoint)
    while (state.step < total) {
      const epoch = Math.floor(state.step / stepsPerEpoch);
      if (epoch !== state.epoch) state = { ...state, epoch, order: sampler.order(epoch) };
      const from = (state.step % stepsPerEpoch) * settings.batchSize;
      const to = Math.min(state.order.length, from + (total - state.step) * settings.batchSize);
      let asked = performance.now();
      for await (const batch of options.batches(Int32Array.from(state.order.slice(from, to)), settings.batchSize)) {
        dataWaitMs += performance.now() - asked;
        const ids = options.identities === null ? null : Array.from(batch.indices, (i) => options.identities![i]);
        const loaded = tf.tensor4d(batch.data, batch.shape);
        const images = options.augment ? augmentViews(loaded, settings.seed, state.step) : loaded;
        if (images !== loaded) loaded.dispose();
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
        const measured = heldOut.length;
        await measure();
        if (heldOut.length > measured) await drawCurve();
        if (state.step % settings.checkpointEvery === 0 || state.step === total) {
          const t = performance.now();
          lastCheckpoint = await saveCheckpoint(options.checkpointDir, model, adam, state);
          clock.aside("checkpoint", performance.now() - t);
        }
        options.onStep?.(state.step, values);
        if (performance.now() - lastCurve > 5000) await drawCurve();
        const made = clock.stepDone(state.step);
        if (made !== null) {
          estimate = made;
          options.estimate?.showRun(made, (line) => bar.write(line));
        }
        if (state.step >= total || state.step % stepsPerEpoch === 0) break;
        asked = performance.now();
      }
    }
  } finally {
    if (estimate === null) options.estimate?.abandon(state.step);
    bar.close();
    adam.dispose();
  }
  await drawCurve();
  return {
    steps: state.step, totalSteps: total, resumedFrom, history, heldOut, stepsThisRun: state.step - firstStep,
    seconds: (performance.now() - started) / 1000, dataWaitSeconds: dataWaitMs / 1000, measureSeconds: measureMs / 1000, lastCheckpoint, note,
    estimate: estimate ?? clock.untimed(),
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
  readonly plan: TrainingPlan;
  /** The person of each measured face ([] without a held-out measure). */
  readonly heldOutIds: readonly number[];
  /** The held-out curve and verdict (also in runs/<run>/finetune_findings.json), or null without a held-out measure. */
  readonly findings: FinetuneFindings | null;
  /** The time the post's run (lib/model/estimate POST_RUN) would take here, or null when not estimated (a silent run,
   *  a network narrower than ResNet18's, a run at the post's size, too few steps). */
  readonly postSize: PostSizeEstimate | null;
}

/** Whether the newest checkpoint in `folder` was made with this fingerprint and reached `total` steps (read only:
 *  trainModel's resumableCheckpoint decides, and sets aside what does not match). */
function finishedCheckpoint(folder: string, fingerprint: string, total: number): boolean {
  const latest = listCheckpoints(folder).pop();
  if (latest === undefined || latest.step < total) return false;
  try {
    return readCheckpointState(latest.path).fingerprint === fingerprint;
  } catch {
    return false; // unreadable: trainModel says why
  }
}

/** torchvision's ResNet18 width: the post-size estimate is made only for it (tests train narrower networks). */
const RESNET18_WIDTH = 64;

/**
 * Shows the estimate's lines before training (lib/model/estimate) and makes the post-size one: from a gradient pass
 * timed at the post's image size (a few seconds, on a trainer of its own whose sessions are released after), or later
 * from the run's own steps when they are at that size. Nothing is timed for a silent run or a finished one.
 */
async function startEstimate(
  config: RunConfig,
  run: { readonly model: ResNet18; readonly faces: number; readonly engine: string; readonly batchNormFaces: number; readonly finished: boolean },
  progress: ProgressMode | undefined,
): Promise<EstimateDisplay> {
  const f = config.finetune;
  const display = new EstimateDisplay(progress, { engine: run.engine, batchNormFaces: run.batchNormFaces });
  const wanted =
    display.mode !== "silent" && !run.finished && run.model.width === RESNET18_WIDTH && !runsAtPostSize({ imageSize: config.imageSize, faces: run.faces, maxSteps: f.maxSteps });
  if (!wanted) {
    display.start(null);
  } else if (stepsScaleToPostSize({ imageSize: config.imageSize, batchSize: f.batchSize, chunkSize: f.chunkSize })) {
    display.postSizeFromRun = { batchSize: f.batchSize, chunkSize: f.chunkSize };
    display.start("At the post's size: from this run's first steps…");
  } else {
    display.start(`At the post's size: timing a gradient pass at ${POST_RUN.imageSize} px…`);
    const engine = chooseTrainEngine(config, run.model.width);
    try {
      const pass = await timeGradientPass(run.model, { imageSize: POST_RUN.imageSize, preset: f.preset, temperature: f.temperature, native: engine.native ?? undefined });
      display.showPostSize(postSizeEstimate({ kind: "pass", pass }));
    } catch (error) {
      display.showPostSize(`At the post's size: no estimate (the pass at ${POST_RUN.imageSize} px failed: ${(error as Error).message}).`);
    } finally {
      await engine.native?.close();
    }
  }
  return display;
}

/** The native trainer config `finetune.engine` asks for and gets (null: TF.js), and who trains, said plainly. */
export function chooseTrainEngine(config: RunConfig, width: number, load?: Parameters<typeof chooseEngine>[1]): { native: NativeTrainer | null; description: string } {
  const engine = chooseEngine(config.finetune.engine, load, "finetune.engine");
  if (engine.name === "tfjs") return { native: null, description: describeEngine(engine, tf.getBackend()) };
  const native = createNativeTrainer(engine, width);
  return { native, description: native.description };
}

/** The recommended preset's K: pictures of each person in an identity-balanced batch. */
export const RECOMMENDED_IMAGES_PER_PERSON = 4;
/** The recommended preset's number of training faces whose batch statistics become BatchNorm's running statistics. */
export const RECOMMENDED_BATCH_NORM_IMAGES = 1024;

/** Who a run trains on and who it measures. */
export interface HeldOutPlan {
  /** Dataset indices trained on. */
  readonly trainIndices: readonly number[];
  /** The people split (null without identities or with finetune.heldOutPeople = 0). */
  readonly split: PeopleSplit | null;
  /** Whether the held-out people are left out of training (the recommended preset) or trained on (the post's). */
  readonly heldOutOfTraining: boolean;
  /** The faces measured during training, and by notebook 03 (dataset indices); [] without a held-out measure. */
  readonly measured: readonly number[];
}

/** The run's held-out people (lib/data/people): a seeded split of the identities, left out of training by the
 *  recommended preset; the post's preset trains on every face, as the post does. */
export function heldOutPlan(config: RunConfig, dataset: Pick<ImageDataset, "count" | "identities">): HeldOutPlan {
  const f = config.finetune;
  const ids = dataset.identities === null ? null : dataset.identities.ids;
  const split = ids !== null && f.heldOutPeople > 0 ? splitPeople(ids, f.heldOutPeople, config.seed) : null;
  const heldOutOfTraining = split !== null && f.preset === "recommended";
  const trainIndices = heldOutOfTraining ? split.trainIndices : Array.from({ length: dataset.count }, (_, i) => i);
  const measured = split === null ? [] : heldOutSample(split, ids!, f.heldOutImages, config.seed);
  return { trainIndices, split, heldOutOfTraining, measured };
}

/** How a run trains: on which faces, in which batches, measured on whom. */
export interface TrainingPlan extends HeldOutPlan {
  /** K of identity-balanced batches, or 1 for shuffled batches. */
  readonly imagesPerPerson: number;
  readonly augment: boolean;
  /** Training faces (dataset indices) whose batch statistics become BatchNorm's running statistics after training
   *  and before each held-out measurement (lib/model/batch-norm); [] keeps the running averages (the post's). */
  readonly batchNormFaces: readonly number[];
  readonly sampler: EpochSampler;
  readonly steps: number;
  /** The batches in words, e.g. "identity-balanced batches of 8 people × 4 pictures, augmented views". */
  readonly batches: string;
  /** What differs from what the settings asked, said plainly (e.g. no identities: random batches, no held-out measure). */
  readonly notes: readonly string[];
}

/** The run's training plan (lib/data/people for the split and the batches). */
export function trainingPlan(config: RunConfig, dataset: Pick<ImageDataset, "count" | "identities">): TrainingPlan {
  const f = config.finetune;
  const ids = dataset.identities === null ? null : dataset.identities.ids;
  const notes: string[] = [];
  const people = heldOutPlan(config, dataset);
  if (ids === null) notes.push("The dataset has no identity file: no people can be held out, so there is no held-out measure of retrieval during training.");
  let k = f.imagesPerPerson ?? (f.preset === "post" ? 1 : RECOMMENDED_IMAGES_PER_PERSON);
  if (k > 1 && ids === null) {
    notes.push(`Identity-balanced batches (${k} pictures per person) need the dataset's identities, which it lacks: the batches are drawn at random instead.`);
    k = 1;
  }
  const augment = f.augment === "on" || (f.augment === "auto" && f.preset === "recommended");
  const batchNormImages = f.batchNormImages ?? (f.preset === "post" ? 0 : RECOMMENDED_BATCH_NORM_IMAGES);
  const batchNormFaces = seededShuffle(people.trainIndices, config.seed, 0xb2).slice(0, batchNormImages).sort((a, b) => a - b);
  const settings = { batchSize: f.batchSize, seed: config.seed };
  const sampler = k > 1 ? personSampler(people.trainIndices, ids!, settings, k) : shuffledSampler(people.trainIndices, settings);
  const steps = runSteps(sampler.stepsPerEpoch, f);
  const batches =
    (k > 1 ? `identity-balanced batches of ${f.batchSize / k} people × ${k} pictures` : `shuffled batches of ${f.batchSize}`) +
    (augment ? ", each face a random crop and mirror of itself" : "");
  return { ...people, imagesPerPerson: k, augment, batchNormFaces, sampler, steps, batches, notes };
}

/** The id of the initial weights in the checkpoints' fingerprint: the file's SHA-256, or the random initialisation's seed. */
export async function initialWeightsId(weights: InitialWeights): Promise<string> {
  if (weights.kind === "imagenet") return weights.sha256;
  if (weights.kind === "file") return artifactId(weights.path);
  return `torchvision's random initialisation (seed ${weights.seed})`;
}

/** Fine-tunes the run's model on the run's dataset and writes runs/<run>/resnet18.safetensors with its record
 *  (resnet18.json), and the held-out curve and verdict to runs/<run>/finetune_findings.json. */
export async function finetune(config: RunConfig, options: { progress?: ProgressMode; showCurve?: boolean } = {}): Promise<FinetuneResult> {
  const dataset = await openRunDataset(config);
  const plan = trainingPlan(config, dataset);
  const files = runFiles(config.run);
  const f = config.finetune;
  const ids = dataset.identities === null ? null : dataset.identities.ids;
  const decode = { size: config.imageSize, mode: config.resize };
  const heldOutSet = plan.measured.length > 0 && ids !== null ? await loadHeldOutSet(dataset.paths, plan.measured, ids, decode) : null;
  const batchNormSet = plan.batchNormFaces.length > 0 ? await loadFaces(dataset.paths, plan.batchNormFaces, decode) : null;
  const { model, source, weights } = await initialModel(config);
  const weightsId = await initialWeightsId(weights);
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
  const recalibrate = async (m: ResNet18): Promise<void> => {
    if (batchNormSet !== null) await updateBatchNormOn(m, batchNormSet, { preset: f.preset, chunkSize: f.chunkSize, native: engine.native ?? undefined });
  };
  // step 0 is the start as it is (notebook 03's "before"); later steps as the run will leave the model
  const measure = async (m: ResNet18, step: number): Promise<HeldOutPoint> => {
    if (heldOutSet === null) throw new Error("measure: no held-out faces");
    if (step === 0 || batchNormSet === null) return measureHeldOut(m, heldOutSet, f.preset, step);
    const saved = m.stateDict();
    try {
      await recalibrate(m);
      return measureHeldOut(m, heldOutSet, f.preset, step);
    } finally {
      m.loadStateDict(saved);
      tf.dispose([...saved.values()]);
    }
  };
  try {
    const untrained: Omit<TrainOptions, "estimate"> = {
      model,
      count: dataset.count,
      batches: (order, batchSize) => loader.batches({ order, batchSize }),
      sampler: plan.sampler,
      augment: plan.augment,
      heldOut: heldOutSet === null ? undefined : { every: measureEvery(f.evalEvery, plan.steps), measure },
      identities: ids,
      settings: { ...f, seed: config.seed },
      checkpointDir: files.checkpoints,
      fingerprintExtra: {
        imageSize: config.imageSize, resize: config.resize, images: dataset.imagesId, weights: weightsId, batches: plan.batches,
        trained: plan.trainIndices.length, measured: plan.measured.length, heldOutPeople: f.heldOutPeople, batchNormImages: plan.batchNormFaces.length,
        ...(f.preset === "recommended" ? { identities: ids === null ? "none" : createHash("sha256").update(ids).digest("hex") } : {}),
      },
      progress: options.progress,
      showCurve: options.showCurve,
      native: engine.native ?? undefined,
    };
    const finished = finishedCheckpoint(files.checkpoints, fingerprintOf(untrained), plan.steps);
    const estimate = await startEstimate(config, { model, faces: dataset.count, engine: engine.description, batchNormFaces: plan.batchNormFaces.length, finished }, options.progress);
    const train: TrainOptions = { ...untrained, estimate };
    const result = await trainModel(train);
    // The model saved is the one measured: BatchNorm's statistics recomputed with the final weights (recommended).
    if ((result.stepsThisRun > 0 || !existsSync(files.model)) && result.steps > 0) await recalibrate(model);
    const saved = await saveFinetunedModel(model, files, { fingerprint: fingerprintOf(train), steps: result.steps, trained: result.stepsThisRun > 0, initialWeights: source });
    const note = [result.note, saved.note].filter((n) => n !== "").join(" ");
    const findings =
      heldOutSet === null || result.heldOut.length === 0
        ? null
        : finetuneFindings(result.heldOut, {
            preset: f.preset, imageSize: config.imageSize, initialWeights: source, batches: plan.batches, heldOutOfTraining: plan.heldOutOfTraining,
            heldOutPeople: heldOutSet.people, heldOutFaces: heldOutSet.indices.length,
          });
    if (findings !== null) writeFindings(files.finetuneFindings, findings);
    // The exported post's Findings section reads every notebook's findings in one form (lib/run/findings).
    saveFindings(config.run, {
      notebook: "02-finetune",
      sentences: findings === null ? ["No people could be held out (the dataset names no identities): whether fine-tuning learns was not measured."] : [findings.sentence],
      measures: {
        "initial weights": source, steps: result.steps, verdict: findings?.verdict ?? "not measured",
        "recall@1 before": findings?.before.recall1 ?? null, "recall@1 after": findings?.after.recall1 ?? null,
        "AUC before": findings?.before.auc ?? null, "AUC after": findings?.after.auc ?? null,
      },
    });
    return {
      ...result, note, modelPath: files.model, initialWeights: source, images: dataset.count, engine: engine.description, plan, heldOutIds: heldOutSet?.ids ?? [], findings,
      postSize: estimate.postSize,
    };
  } finally {
    await loader.close();
    await engine.native?.close();
    model.dispose();
  }
}

/** The plan of a run in a few lines: preset, batches, who is held out, chunks, steps, learning rate. */
export function describeTrainPlan(config: RunConfig, dataset: Pick<ImageDataset, "count" | "identities">): string {
  const f = config.finetune;
  const plan = trainingPlan(config, dataset);
  const chunks = Math.ceil(f.batchSize / f.chunkSize);
  const split = plan.split;
  const every = measureEvery(f.evalEvery, plan.steps);
  const heldOut =
    split === null
      ? "no held-out people"
      : `${split.heldOutPeople.length} people (${split.heldOutIndices.length} faces) held out, seeded; ${plan.measured.length} of their faces measured ${every === 1 ? "at every step" : `every ${every} steps`}` +
        (plan.heldOutOfTraining ? " and never trained on" : " — and trained on too, since the post trains on every face: retrieval on them is not a held-out measure in the strict sense");
  return [
    `preset ${f.preset}: ${f.preset === "post" ? "raw dot products e·eᵀ, mse(e, −e_rot), inputs in [0, 1] (the post's code)" : `cosine similarities / ${f.temperature}, same-person positives, orientation on unit vectors, ImageNet-normalised inputs`}`,
    `${plan.trainIndices.length} of ${dataset.count} images of ${config.imageSize}×${config.imageSize} trained on, in ${plan.batches}`,
    `${heldOut}`,
    `batch ${f.batchSize} in ${chunks} chunk${chunks === 1 ? "" : "s"} of ≤ ${f.chunkSize}` + (chunks > 1 ? " (gradient cache; BatchNorm statistics per chunk)" : " (one chunk: exactly the post's step)"),
    plan.batchNormFaces.length > 0
      ? `BatchNorm's running statistics recomputed from ${plan.batchNormFaces.length} training faces once the weights are final (torch.optim.swa_utils.update_bn)`
      : "BatchNorm keeps the running averages training leaves (the post's)",
    `${plan.steps} step${plan.steps === 1 ? "" : "s"} (${f.epochs} epoch${f.epochs === 1 ? "" : "s"} of ${plan.sampler.stepsPerEpoch}${f.maxSteps === null ? "" : `, at most ${f.maxSteps}`}), Adam lr ${f.learningRate}, checkpoint every ${f.checkpointEvery} steps`,
    ...(f.preset === "recommended" ? ["Not the post's recipe: the post's loss, data and batches are finetune.preset=post."] : []),
    ...plan.notes,
  ].join("\n");
}

/** One paragraph about a finished fine-tuning. */
export function describeFinetuneResult(result: FinetuneResult): string {
  const last = result.history[result.history.length - 1];
  const lines = [
    result.resumedFrom === null ? `Trained ${result.stepsThisRun} steps from the start.` : `Resumed from step ${result.resumedFrom}; trained ${result.stepsThisRun} more steps.`,
    result.stepsThisRun > 0
      ? `${result.seconds.toFixed(1)} s, ${((result.seconds - result.measureSeconds) / result.stepsThisRun).toFixed(2)} s/step, ${((100 * result.dataWaitSeconds) / result.seconds).toFixed(1)} % of it waiting for images` +
        `${result.measureSeconds > 0 ? `, ${result.measureSeconds.toFixed(1)} s measuring held-out people` : ""}; passes run by ${result.engine}.`
      : "Nothing left to train: the checkpoint had finished.",
    describeEstimateCheck(result),
    last === undefined ? "" : `Final step: loss ${last.loss.toPrecision(4)}, contrastive ${last.contrastive.toPrecision(4)}, orientation ${last.orientation.toPrecision(4)}.`,
    `Model: ${displayPath(result.modelPath)}${result.lastCheckpoint === null ? "" : `; last checkpoint: ${displayPath(result.lastCheckpoint)}`}.`,
  ];
  if (result.note !== "") lines.push(result.note);
  return lines.filter((l) => l !== "").join("\n");
}

/** The held-out curve as table rows: per measured step, recall@1, recall@10, AUC and the mean loss of the steps
 *  since the previous measurement; and what random similarities would score on the same faces. */
export function heldOutRows(result: Pick<TrainResult, "heldOut" | "history">, ids: ArrayLike<number> | null = null): Record<string, Row> {
  const rows: Record<string, Row> = {};
  if (ids !== null) rows["chance (random similarities)"] = { "recall@1": chanceRecall(ids, 1), "recall@10": chanceRecall(ids, 10), "verification AUC": 0.5 };
  let from = 0;
  for (const p of result.heldOut) {
    const losses = result.history.slice(from, p.step).map((h) => h.loss);
    rows[`step ${p.step}`] = {
      "recall@1": p.recall1, "recall@10": p.recall10, "verification AUC": p.auc,
      "mean loss since the last": losses.length > 0 ? losses.reduce((a, b) => a + b, 0) / losses.length : undefined,
    };
    from = p.step;
  }
  return rows;
}

/** Whether the model learned, said from the run's numbers: the verdict line, on whom it was measured, and how. */
export function describeHeldOut(result: FinetuneResult): string {
  const findings = result.findings;
  if (findings === null) return ["No held-out measure in this run.", ...result.plan.notes].join("\n");
  const lines = [
    `Verdict: ${findings.verdict}. ${findings.sentence}`,
    `Measured on ${findings.heldOutFaces} faces of ${findings.heldOutPeople} held-out people, embedded in eval mode as notebook 03 embeds` +
      (result.plan.batchNormFaces.length > 0 ? `, after BatchNorm's running statistics were recomputed on ${result.plan.batchNormFaces.length} training faces (every step but 0).` : "."),
  ];
  if (!findings.heldOutOfTraining) {
    lines.push("These people were held out of the measure only: the post's preset trains on every face, as the post does, so this run saw them in training.");
  }
  return lines.join("\n");
}
