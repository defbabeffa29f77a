// Fine-tuning ResNet18 with the post's contrastive + orientation loss (notebook 02), in one place:
// the losses, Adam, one step with gradient-cache chunking, checkpoints, and the training loop.
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
// Memory: a batch of 128 at 224×224 does not fit in WASM's 4 GiB. A batch is therefore cut into chunks
// (gradient cache): (1) embed every chunk without a tape, (2) compute the loss and d loss / d embeddings on the whole
// batch, (3) re-run each chunk with the tape, back-propagating its slice of the embedding gradient, and sum the
// parameter gradients. This is the full batch's gradient exactly when the forward pass of a chunk does not depend
// on the rest of the batch. BatchNorm in train mode does (batch statistics): with chunks, each chunk is normalised
// with its own statistics ("ghost batch norm", as in large-batch training), and the running statistics are updated
// once per chunk, as if each chunk were a batch of its own. With chunkSize ≥ batchSize there is a single chunk and
// the step is exactly the post's.
//
// Where onnxruntime-node loads (config finetune.engine), the forward and backward passes run natively instead
// (lib/model/onnx/train): the same step, chunks included, with the same gradients to float32 rounding.

import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { Adam } from "./adam";
import { tf } from "../kernels/backend";
import type { FinetuneConfig, Preset, RunConfig } from "../run/config";
import { openRunDataset } from "../data/datasets";
import { withDerivedFilterCache } from "../kernels/fast-gradients";
import { showFigure, type Figure } from "../display/figures";
import type { ImageDataset } from "../data/image-dataset";
import { createImageLoader, type ImageBatch } from "../data/image-loader";
import { IMAGENET_MEAN, IMAGENET_STD } from "./imagenet";
import { createNativeTrainer, type BatchStatistics, type Feeds, type NativeTrainer } from "./onnx/train";
import { chooseEngine, describeEngine, unsharedFloat32 } from "./onnx/session";
import { newDisplayHandle, richDisplayAvailable } from "../display/notebook-display";
import { readNpy, writeNpy } from "../formats/npy";
import { displayPath, projectRoot } from "../util/project";
import { runDir, runFiles } from "../run/files";
import { ProgressBar, type ProgressMode } from "../display/progress";
import { createResNet18, loadResNet18, saveResNet18, type ResNet18 } from "./resnet18";
import { seededShuffle } from "../util/random";

// ---------------------------------------------------------------------------------------------------------------
// Inputs

export { IMAGENET_MEAN, IMAGENET_STD };

/** What the model sees: `post` the loader's [0, 1] pixels as they are (ToTensor()), `recommended` ImageNet-normalised. */
export function preprocess(x: tf.Tensor4D, preset: Preset): tf.Tensor4D {
  if (preset === "post") return x.clone();
  return tf.tidy(() => tf.div(tf.sub(x, IMAGENET_MEAN), IMAGENET_STD) as tf.Tensor4D);
}

/** The images turned 180°: torch.rot90(images, 2, (2, 3)) on NCHW is a flip of height and width (NHWC axes 1, 2). */
export function rotate180(x: tf.Tensor4D): tf.Tensor4D {
  return tf.reverse(x, [1, 2]);
}

// ---------------------------------------------------------------------------------------------------------------
// Losses

export interface LossParts<T> {
  readonly loss: T;
  readonly contrastive: T;
  readonly orientation: T;
}
export type LossTensors = LossParts<tf.Scalar>;
export type LossValues = LossParts<number>;

export interface LossSettings {
  readonly preset: Preset;
  /** Softmax temperature of the recommended contrastive loss. */
  readonly temperature: number;
}

/**
 * The contrastive targets of a batch: row i spreads probability 1 evenly over the batch positions showing the same
 * person as image i (i included). Without identities (and always in the `post` preset) that is the identity
 * matrix: the post's `arange` targets.
 */
export function contrastiveTargets(n: number, ids: ArrayLike<number> | null): tf.Tensor2D {
  const t = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    if (ids === null) {
      t[i * n + i] = 1;
      continue;
    }
    let same = 0;
    for (let j = 0; j < n; j++) if (ids[j] === ids[i]) same++;
    for (let j = 0; j < n; j++) if (ids[j] === ids[i]) t[i * n + j] = 1 / same;
  }
  return tf.tensor2d(t, [n, n]);
}

/** Cross-entropy of logits against target distributions, averaged over rows (= F.cross_entropy for one-hot targets). */
export function softCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.sub(logits, tf.logSumExp(logits, 1, true))), 1))) as tf.Scalar);
}

/** torch.nn.functional.normalize(x, dim=1): rows divided by max(‖row‖, 1e-12). */
export function normalizeRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x), 1, true)), 1e-12)) as tf.Tensor2D);
}

/** The loss of a batch from its embeddings `e` and those of its rotated copy `r` (both [B, D]). */
export function finetuneLoss(e: tf.Tensor2D, r: tf.Tensor2D, targets: tf.Tensor2D, settings: LossSettings): LossTensors {
  return tf.tidy(() => {
    let contrastive: tf.Scalar;
    let orientation: tf.Scalar;
    if (settings.preset === "post") {
      orientation = tf.mean(tf.square(tf.add(e, r))) as tf.Scalar; // mse_loss(e, −r)
      contrastive = softCrossEntropy(tf.matMul(e, e, false, true), targets); // raw dot products, as the post
    } else {
      const z = normalizeRows(e);
      const zr = normalizeRows(r);
      orientation = tf.mean(tf.sum(tf.square(tf.add(z, zr)), 1)) as tf.Scalar; // 2(1 + cos(e, r)): 0 when opposite
      contrastive = softCrossEntropy(tf.div(tf.matMul(z, z, false, true), settings.temperature), targets);
    }
    return { loss: tf.add(contrastive, orientation) as tf.Scalar, contrastive, orientation };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// One step

export interface StepOptions {
  readonly loss: LossSettings;
  /** Images per forward/backward chunk (gradient cache); ≥ the batch size: one chunk, the post's step exactly. */
  readonly chunkSize: number;
  /** BatchNorm in train mode (the post's model.train(), default) or with its running statistics (tests of exactness). */
  readonly training?: boolean;
  /** Runs the passes on ONNX Runtime (train mode only); TF.js when absent. */
  readonly native?: NativeTrainer;
}

/** A batch's gradients (`grads[i]` for `model.trainable[i]`, null when it has none) and its loss parts. */
export interface BatchGradients {
  readonly grads: (tf.Tensor | null)[];
  readonly losses: LossTensors;
}

const gradsInOrder = (model: ResNet18, grads: tf.NamedTensorMap): (tf.Tensor | null)[] => model.trainable.map((v) => grads[v.name] ?? null);

function embedPair(model: ResNet18, images: tf.Tensor4D, preset: Preset, training: boolean): [tf.Tensor2D, tf.Tensor2D] {
  return tf.tidy(() => {
    const x = preprocess(images, preset);
    return [model.apply(x, training), model.apply(rotate180(x), training)];
  });
}

/** The gradient of the batch's loss with respect to `model.trainable`, computed chunk by chunk (see the top). */
export function batchGradients(model: ResNet18, images: tf.Tensor4D, targets: tf.Tensor2D, options: StepOptions): BatchGradients {
  // The weights do not change within the step: their input-gradient filters are derived (and packed) once.
  return withDerivedFilterCache(() => batchGradientsOnce(model, images, targets, options));
}

function batchGradientsOnce(model: ResNet18, images: tf.Tensor4D, targets: tf.Tensor2D, options: StepOptions): BatchGradients {
  const training = options.training ?? true;
  const n = images.shape[0];
  const preset = options.loss.preset;
  const vars = [...model.trainable];
  if (options.chunkSize >= n) {
    let contrastive: tf.Scalar | undefined;
    let orientation: tf.Scalar | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const [e, r] = embedPair(model, images, preset, training);
      const p = finetuneLoss(e, r, targets, options.loss);
      contrastive = tf.keep(p.contrastive);
      orientation = tf.keep(p.orientation);
      return p.loss;
    }, vars);
    return { grads: gradsInOrder(model, grads), losses: { loss: value, contrastive: contrastive!, orientation: orientation! } };
  }
  const starts: number[] = [];
  for (let s = 0; s < n; s += options.chunkSize) starts.push(s);
  const slice = <T extends tf.Tensor>(t: T, s: number): T => t.slice(s, Math.min(options.chunkSize, n - s)) as T;
  // (1) every chunk's embeddings, without a tape
  const [e, r] = tf.tidy(() => {
    const pairs = starts.map((s) => embedPair(model, slice(images, s), preset, training));
    return [tf.concat(pairs.map((p) => p[0])), tf.concat(pairs.map((p) => p[1]))] as [tf.Tensor2D, tf.Tensor2D];
  });
  // the running statistics after one pass over the batch; the second pass below must not count again
  const afterFirstPass = training ? model.stateDict() : null;
  // (2) the loss and its gradient with respect to the embeddings, on the whole batch
  const losses = finetuneLoss(e, r, targets, options.loss);
  const [ge, gr] = tf.grads((a: tf.Tensor, b: tf.Tensor) => finetuneLoss(a as tf.Tensor2D, b as tf.Tensor2D, targets, options.loss).loss)([e, r]);
  tf.dispose([e, r]);
  // (3) each chunk again with the tape, back-propagating its slice of the embedding gradient
  let sum: (tf.Tensor | null)[] = vars.map(() => null);
  for (const s of starts) {
    const { value, grads } = tf.variableGrads(() => {
      const [ec, rc] = embedPair(model, slice(images, s), preset, training);
      return tf.add(tf.sum(tf.mul(ec, slice(ge, s))), tf.sum(tf.mul(rc, slice(gr, s)))) as tf.Scalar;
    }, vars);
    value.dispose();
    const chunk = gradsInOrder(model, grads);
    sum = sum.map((acc, i) => {
      const g = chunk[i];
      if (acc === null || g === null) return acc ?? g;
      const total = tf.add(acc, g);
      tf.dispose([acc, g]);
      return total;
    });
  }
  tf.dispose([ge, gr]);
  if (afterFirstPass !== null) {
    model.loadStateDict(afterFirstPass);
    tf.dispose([...afterFirstPass.values()]);
  }
  return { grads: sum, losses };
}

/** Thrown when the loss is NaN or infinite: the weights are left as they were before the step. */
export class NonFiniteLossError extends Error {
  constructor(
    readonly step: number,
    readonly values: LossValues,
    hint: string,
  ) {
    super(
      `Fine-tuning stopped at step ${step}: the loss is ${values.loss} (contrastive ${values.contrastive}, orientation ${values.orientation}). ` +
        `The weights were not updated with it. ${hint}`,
    );
    this.name = "NonFiniteLossError";
  }
}

/** A tensor's float32 data, in memory ONNX Runtime accepts. */
const plainData = (t: tf.Tensor): Float32Array => unsharedFloat32(t.dataSync() as Float32Array);

const feed = (t: tf.Tensor): Feeds[string] => ({ data: plainData(t), shape: t.shape });

/** batchGradients with the passes on ONNX Runtime (lib/model/onnx/train): the same chunks, statistics and gradients. */
export async function nativeBatchGradients(model: ResNet18, trainer: NativeTrainer, images: tf.Tensor4D, targets: tf.Tensor2D, options: StepOptions): Promise<BatchGradients> {
  if (trainer.parameterNames.join() !== model.trainableNames.join()) throw new Error("nativeBatchGradients: the trainer was made for another network");
  const n = images.shape[0];
  const params: Feeds = Object.fromEntries(model.trainable.map((v, i) => [model.trainableNames[i], feed(v)]));
  const record = (stats: readonly BatchStatistics[]): void =>
    tf.tidy(() => stats.forEach((s) => model.recordBatchStatistics(s.name, tf.tensor1d(s.mean), tf.tensor1d(s.variance), s.count)));
  const gradTensors = (grads: readonly Float32Array[]): tf.Tensor[] => grads.map((g, i) => tf.tensor(g, model.trainable[i].shape));
  const inputs = (chunk: tf.Tensor4D): [Feeds[string], Feeds[string]] => {
    const x = preprocess(chunk, options.loss.preset);
    const rotated = rotate180(x);
    try {
      return [feed(x), feed(rotated)];
    } finally {
      tf.dispose([x, rotated]);
    }
  };
  if (options.chunkSize >= n) {
    const [x, rotated] = inputs(images);
    const r = await trainer.step(params, x, rotated, feed(targets), options.loss);
    r.statistics.forEach(record);
    const losses = { loss: tf.scalar(r.loss), contrastive: tf.scalar(r.contrastive), orientation: tf.scalar(r.orientation) };
    return { grads: gradTensors(r.grads), losses };
  }
  // (1) every chunk's embeddings, straight and rotated, moving the running statistics chunk by chunk
  const chunks: [Feeds[string], Feeds[string]][] = [];
  const embedded: Float32Array[][] = [[], []];
  for (let s = 0; s < n; s += options.chunkSize) {
    const part = images.slice(s, Math.min(options.chunkSize, n - s)) as tf.Tensor4D;
    const pair = inputs(part);
    part.dispose();
    chunks.push(pair);
    for (const [k, x] of pair.entries()) {
      const f = await trainer.forward(params, x);
      record(f.statistics);
      embedded[k].push(f.embedding);
    }
  }
  // (2) the loss and its gradient with respect to the embeddings, on the whole batch
  const dim = model.embeddingSize;
  const joined = embedded.map((parts) => {
    const all = new Float32Array(n * dim);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return tf.tensor2d(all, [n, dim]);
  });
  const losses = finetuneLoss(joined[0], joined[1], targets, options.loss);
  const dEmbeddings = tf.grads((a: tf.Tensor, b: tf.Tensor) => finetuneLoss(a as tf.Tensor2D, b as tf.Tensor2D, targets, options.loss).loss)(joined);
  const dRows = dEmbeddings.map((d) => plainData(d));
  tf.dispose([...joined, ...dEmbeddings]);
  // (3) each chunk's gradients, straight and rotated, summed
  const sum = model.trainable.map((v) => new Float32Array(v.size));
  let row = 0;
  for (const pair of chunks) {
    const rows = pair[0].shape[0];
    for (const [k, x] of pair.entries()) {
      const d = { data: dRows[k].subarray(row * dim, (row + rows) * dim), shape: [rows, dim] };
      const grads = await trainer.gradients(params, x, d);
      grads.forEach((g, i) => {
        const acc = sum[i];
        for (let j = 0; j < acc.length; j++) acc[j] += g[j];
      });
    }
    row += rows;
  }
  return { grads: gradTensors(sum), losses };
}

/** One optimisation step on a batch (NHWC in [0, 1]); returns the loss parts before the update. */
export async function trainStep(model: ResNet18, adam: Adam, images: tf.Tensor4D, ids: ArrayLike<number> | null, options: StepOptions): Promise<LossValues> {
  const targets = contrastiveTargets(images.shape[0], options.loss.preset === "post" ? null : ids);
  const native = (options.training ?? true) ? options.native : undefined; // the graphs run BatchNorm in train mode
  const { grads, losses } = native !== undefined ? await nativeBatchGradients(model, native, images, targets, options) : batchGradients(model, images, targets, options);
  const values: LossValues = { loss: losses.loss.dataSync()[0], contrastive: losses.contrastive.dataSync()[0], orientation: losses.orientation.dataSync()[0] };
  tf.dispose([targets, losses.loss, losses.contrastive, losses.orientation]);
  try {
    if (Number.isFinite(values.loss)) adam.apply(grads);
  } finally {
    tf.dispose(grads.filter((g): g is tf.Tensor => g !== null));
  }
  return values;
}

// ---------------------------------------------------------------------------------------------------------------
// Checkpoints: runs/<run>/checkpoints/step-000025/ with model.npy (every state_dict tensor, flat), adam.npy and
// state.json; written into a temporary folder that is renamed into place, so a checkpoint is complete or absent.

export interface TrainingState {
  /** Optimisation steps done. */
  readonly step: number;
  readonly epoch: number;
  /** The run's seed: epoch k's data order is a shuffle keyed by (seed, k). */
  readonly seed: number;
  /** The data order of `epoch` (dataset indices). */
  readonly order: readonly number[];
  /** Loss parts of every step so far. */
  readonly history: readonly LossValues[];
  /** The settings the run was started with: a checkpoint of other settings is not resumed. */
  readonly fingerprint: string;
}

interface TensorEntry {
  readonly key: string;
  readonly shape: number[];
  readonly dtype: tf.DataType;
}

interface CheckpointFile extends TrainingState {
  readonly format: "celeba-sae finetune checkpoint";
  readonly adamStep: number;
  readonly tensors: readonly TensorEntry[];
}

const CHECKPOINT_NAME = /^step-(\d+)$/;

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(6, "0")}`;
}

export async function saveCheckpoint(folder: string, model: ResNet18, adam: Adam, state: TrainingState, keep = 2): Promise<string> {
  const final = join(folder, checkpointName(state.step));
  const temp = `${final}.tmp-${process.pid}`;
  rmSync(temp, { recursive: true, force: true });
  mkdirSync(temp, { recursive: true });
  const dict = model.stateDict();
  try {
    const tensors: TensorEntry[] = [...dict].map(([key, t]) => ({ key, shape: t.shape, dtype: t.dtype }));
    const flat = new Float32Array(tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0));
    let at = 0;
    for (const t of dict.values()) {
      flat.set(Float32Array.from(t.dataSync() as ArrayLike<number>), at);
      at += t.size;
    }
    await writeNpy(join(temp, "model.npy"), flat, [flat.length]);
    const moments = adam.state();
    await writeNpy(join(temp, "adam.npy"), moments, [2, moments.length / 2]);
    const file: CheckpointFile = { format: "celeba-sae finetune checkpoint", ...state, adamStep: adam.step, tensors };
    writeFileSync(join(temp, "state.json"), JSON.stringify(file));
  } finally {
    tf.dispose([...dict.values()]);
  }
  rmSync(final, { recursive: true, force: true });
  renameSync(temp, final);
  for (const old of listCheckpoints(folder).slice(0, -keep)) rmSync(old.path, { recursive: true, force: true });
  return final;
}

/** The complete checkpoints in `folder`, oldest first. */
export function listCheckpoints(folder: string): { step: number; path: string }[] {
  if (!existsSync(folder)) return [];
  return readdirSync(folder)
    .map((name) => ({ name, match: CHECKPOINT_NAME.exec(name) }))
    .filter((c) => c.match !== null && existsSync(join(folder, c.name, "state.json")))
    .map((c) => ({ step: Number(c.match![1]), path: join(folder, c.name) }))
    .sort((a, b) => a.step - b.step);
}

/** Reads a checkpoint's state (without touching any model). */
export function readCheckpointState(path: string): TrainingState {
  const file = JSON.parse(readFileSync(join(path, "state.json"), "utf8")) as CheckpointFile;
  if (file.format !== "celeba-sae finetune checkpoint") throw new Error(`${displayPath(path)}/state.json is not a fine-tuning checkpoint`);
  return { step: file.step, epoch: file.epoch, seed: file.seed, order: file.order, history: file.history, fingerprint: file.fingerprint };
}

/** Loads a checkpoint's weights, buffers and Adam state into `model` and `adam`; returns its training state. */
export async function loadCheckpoint(path: string, model: ResNet18, adam: Adam): Promise<TrainingState> {
  const file = JSON.parse(readFileSync(join(path, "state.json"), "utf8")) as CheckpointFile;
  const flat = (await readNpy(join(path, "model.npy"))).data as Float32Array;
  const dict = new Map<string, tf.Tensor>();
  let at = 0;
  for (const t of file.tensors) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    const values = flat.subarray(at, at + size);
    dict.set(t.key, t.dtype === "float32" ? tf.tensor(values, t.shape, "float32") : tf.tensor(Array.from(values), t.shape, t.dtype));
    at += size;
  }
  try {
    model.loadStateDict(dict);
  } finally {
    tf.dispose([...dict.values()]);
  }
  adam.load((await readNpy(join(path, "adam.npy"))).data as Float32Array, file.adamStep);
  return readCheckpointState(path);
}

// ---------------------------------------------------------------------------------------------------------------
// The training loop

/** Batches of images (NHWC in [0, 1]) over dataset indices in the given order, `batchSize` at a time. */
export type BatchSource = (order: Int32Array, batchSize: number) => AsyncIterable<ImageBatch>;

/** Epoch `epoch`'s data order: a Fisher–Yates shuffle of 0 … n−1 keyed by (seed, epoch) (DataLoader(shuffle=True)). */
export function shuffledOrder(n: number, seed: number, epoch: number): number[] {
  return seededShuffle(Array.from({ length: n }, (_, i) => i), seed, 0x5eed, epoch);
}

/** The fine-tuning settings of the config (without the weights file) and the run's seed. */
export type TrainSettings = Omit<FinetuneConfig, "weights" | "engine"> & { readonly seed: number };

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

function fingerprintOf(options: TrainOptions): string {
  const s = options.settings;
  return JSON.stringify({
    preset: s.preset, epochs: s.epochs, batchSize: s.batchSize, chunkSize: s.chunkSize, learningRate: s.learningRate,
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
  const latest = listCheckpoints(options.checkpointDir).pop();
  if (latest !== undefined) {
    if (readCheckpointState(latest.path).fingerprint === fingerprint) {
      state = await loadCheckpoint(latest.path, model, adam);
      resumedFrom = state.step;
      lastCheckpoint = latest.path;
    } else {
      const aside = join(options.checkpointDir, "other-settings");
      rmSync(aside, { recursive: true, force: true });
      mkdirSync(aside, { recursive: true });
      for (const old of listCheckpoints(options.checkpointDir)) renameSync(old.path, join(aside, basename(old.path)));
      note = `The checkpoints in ${displayPath(options.checkpointDir)} were made with other settings: training started afresh, and they were moved to ${displayPath(aside)}.`;
    }
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

/**
 * Where decoded images are cached: a uint8 .npy beside the dataset (shared by the runs that use it), or in the run's
 * folder when the dataset's folder is read-only; keyed by resize mode, size and image count.
 */
export function imageCachePath(config: RunConfig, dataset: ImageDataset): string | undefined {
  if (!config.imageCache) return undefined;
  let folder = join(dataset.root, ".celeba-sae-cache");
  try {
    accessSync(dataset.root, constants.W_OK);
  } catch {
    folder = runFiles(config.run).imageCache;
  }
  return join(folder, `images-${config.resize}-${config.imageSize}-n${dataset.count}.npy`);
}

/** The model fine-tuning starts from: ImageNet weights from `finetune.weights`, else torchvision's random init. */
export async function initialModel(config: RunConfig): Promise<{ model: ResNet18; source: string }> {
  const weights = config.finetune.weights;
  if (weights === "") {
    return { model: createResNet18({ seed: config.seed }), source: `torchvision's random initialisation (seed ${config.seed}): no ImageNet weights given` };
  }
  const path = resolve(projectRoot(), weights);
  if (!existsSync(path)) {
    throw new Error(
      `finetune.weights = "${weights}" does not exist. Download model.safetensors of timm/resnet18.tv_in1k from Hugging Face ` +
        `(https://huggingface.co/timm/resnet18.tv_in1k) and pass its path, or set finetune.weights="" to start from random weights.`,
    );
  }
  return { model: await loadResNet18(path), source: `ImageNet weights from ${displayPath(path)}` };
}

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

/** Fine-tunes the run's model on the run's dataset and writes runs/<run>/resnet18.safetensors. */
export async function finetune(config: RunConfig, options: { progress?: ProgressMode; showCurve?: boolean } = {}): Promise<FinetuneResult> {
  const dataset = await openRunDataset(config);
  const { model, source } = await initialModel(config);
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
    const result = await trainModel({
      model,
      count: dataset.count,
      batches: (order, batchSize) => loader.batches({ order, batchSize }),
      identities: dataset.identities === null ? null : dataset.identities.ids,
      settings: { ...f, seed: config.seed },
      checkpointDir: runFiles(config.run).checkpoints,
      fingerprintExtra: { imageSize: config.imageSize, resize: config.resize, dataset: dataset.root, weights: f.weights },
      progress: options.progress,
      showCurve: options.showCurve,
      native: engine.native ?? undefined,
    });
    const modelPath = runFiles(config.run).model;
    if (result.stepsThisRun > 0 || !existsSync(modelPath)) {
      mkdirSync(dirname(modelPath), { recursive: true });
      await saveResNet18(model, modelPath); // atomic; untouched when nothing was trained, so 03's vectors stay valid
    }
    return { ...result, modelPath, initialWeights: source, images: dataset.count, engine: engine.description };
  } finally {
    await loader.close();
    await engine.native?.close();
    model.dispose();
  }
}

/** What fine-tuning starts from, said plainly (and how to get ImageNet weights when none are given). */
export function initialWeightsNote(config: RunConfig): string {
  if (config.finetune.weights !== "") return `Starting from the ImageNet weights in ${config.finetune.weights}.`;
  return [
    "No ImageNet weights were given (finetune.weights is empty), and nothing can be downloaded here: the model starts",
    `from torchvision's random initialisation (seed ${config.seed}), not from the pretrained network the post fine-tunes.`,
    "To start from ImageNet as the post does, download model.safetensors of timm/resnet18.tv_in1k",
    "(https://huggingface.co/timm/resnet18.tv_in1k; the same weights as torchvision's ResNet18_Weights.IMAGENET1K_V1)",
    "and run with --set finetune.weights=<path of that file>.",
  ].join("\n");
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
