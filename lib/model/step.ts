// One fine-tuning step: the batch's gradient (gradient cache, chunk by chunk, on TF.js or on ONNX Runtime's native
// kernels) and Adam's update.
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

import { Adam } from "./adam";
import { tf } from "../kernels/backend";
import type { Preset } from "../run/config";
import { withDerivedFilterCache } from "../kernels/fast-gradients";
import type { BatchStatistics, Feeds, NativeTrainer } from "./onnx/train";
import { unsharedFloat32 } from "../kernels/onnxruntime";
import type { ResNet18 } from "./resnet18";
import { preprocess, rotate180 } from "./inputs";
import { contrastiveTargets, finetuneLoss, type LossSettings, type LossTensors, type LossValues } from "./loss";

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


/**
 * A training-mode forward pass of `images` (NHWC in [0, 1]) that only moves BatchNorm's running statistics, chunk by
 * chunk as a step's first pass does (on ONNX Runtime when `native` is given), with no gradient and no update.
 */
export async function statisticsPass(model: ResNet18, images: tf.Tensor4D, options: { readonly preset: Preset; readonly chunkSize: number; readonly native?: NativeTrainer }): Promise<void> {
  const n = images.shape[0];
  const params: Feeds | null = options.native === undefined ? null : Object.fromEntries(model.trainable.map((v, i) => [model.trainableNames[i], feed(v)]));
  for (let s = 0; s < n; s += options.chunkSize) {
    const x = tf.tidy(() => preprocess(images.slice(s, Math.min(options.chunkSize, n - s)) as tf.Tensor4D, options.preset));
    try {
      if (options.native === undefined || params === null) {
        tf.tidy(() => {
          model.apply(x, true);
        });
      } else {
        const f = await options.native.forward(params, feed(x));
        tf.tidy(() => f.statistics.forEach((st) => model.recordBatchStatistics(st.name, tf.tensor1d(st.mean), tf.tensor1d(st.variance), st.count)));
      }
    } finally {
      x.dispose();
    }
  }
}
