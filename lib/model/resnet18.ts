// torchvision's ResNet18 in TensorFlow.js, NHWC inside, with `fc` replaced by identity (the post's embedding model).
//
//   conv1 7×7/2 pad 3 → bn1 → relu → maxpool 3×3/2 pad 1
//   layer1..layer4: two BasicBlocks each (conv3×3 → bn → relu → conv3×3 → bn, + shortcut, relu), widths w, 2w, 4w,
//   8w; the first block of layers 2–4 has stride 2 and a 1×1/2 conv + bn "downsample" shortcut
//   global average pool → [n, 8w] (512 for torchvision's w = 64)
//
// BatchNorm uses torchvision's eps 1e-5 and momentum 0.1; in training mode it normalises with the batch's biased
// variance and moves running_var towards the unbiased one, as PyTorch does. Weights are stored as HWIO variables
// and exchanged under torchvision's state_dict names in PyTorch's OIHW layout, so the same `.safetensors` file
// loads here, in torchvision and in timm (the architecture and those names: lib/model/resnet18-layout). Convolutions
// and training-mode BatchNorm go through lib/kernels/fast-gradients, whose backward passes run on WASM's fast
// forward kernels.

import { tf } from "../kernels/backend";
import { batchNormTrain, conv2d, maxPoolNonNegative } from "../kernels/fast-gradients";
import { readSafetensorsFile, toFloat32, writeSafetensors, type SafetensorsTensor } from "../formats/safetensors";
import { useWinograd, winogradConv3x3, winogradFilter, type WinogradFilter } from "../kernels/winograd";
import { BN_EPS, BN_MOMENTUM, RESNET18_WIDTH, resnet18Layout, resnet18StateDictLayout, type ConvLayout, type ResNet18Layout, type StateDictEntry } from "./resnet18-layout";

export interface ResNet18Options {
  /** Base channels: 64 = torchvision's resnet18; smaller for tests. Stages have w, 2w, 4w, 8w channels. */
  readonly width?: number;
  /** Seed of the initialisation (torchvision's: kaiming_normal fan_out for convs, BN weight 1, bias 0). */
  readonly seed?: number;
}

export interface ResNet18 {
  readonly width: number;
  /** Length of the embedding: 8·width (512 for width 64). */
  readonly embeddingSize: number;
  /** Trainable variables (conv weights, BN gamma/beta), in a stable order (the state_dict's order). */
  readonly trainable: readonly tf.Variable[];
  /** torchvision's state_dict name of each trainable variable, same order (for optimizer checkpoints). */
  readonly trainableNames: readonly string[];
  /** NHWC float32 input → [n, 8·width] embeddings (global-average-pooled, fc = identity). No input normalisation
   *  (the post feeds ToTensor's [0, 1] values straight in).
   *  training=true: BatchNorm uses batch statistics and updates the running mean/var (momentum 0.1, torchvision's),
   *  once per call — so a batch embedded in chunks updates them once per chunk.
   *  Gradients flow to the weights only: the gradient with respect to the images is not computed (zeros). */
  apply(x: tf.Tensor4D, training: boolean): tf.Tensor2D;
  /** Moves BatchNorm `name`'s running statistics as one training-mode `apply` with these batch statistics does
   *  (mean and biased variance over `count` values per channel; momentum 0.1, the unbiased variance): for training
   *  passes computed elsewhere (lib/model/onnx/train). */
  recordBatchStatistics(name: string, mean: tf.Tensor1D, variance: tf.Tensor1D, count: number): void;
  /** All weights and buffers under torchvision's state_dict names, PyTorch layouts (OIHW); num_batches_tracked as
   *  an int32 scalar. New tensors: the caller disposes them. */
  stateDict(): Map<string, tf.Tensor>;
  /** Copies weights in (PyTorch layouts); clear error naming missing/unexpected keys and shape mismatches;
   *  ignores fc.*; a missing num_batches_tracked counts as 0 (some published checkpoints drop it). */
  loadStateDict(state: ReadonlyMap<string, tf.Tensor>): void;
  dispose(): void;
}

/** One BatchNorm2d: trainable weight (γ) and bias (β), running statistics, and the batch counter. */
class BatchNorm {
  numBatchesTracked = 0;
  constructor(
    readonly name: string,
    readonly weight: tf.Variable<tf.Rank.R1>,
    readonly bias: tf.Variable<tf.Rank.R1>,
    readonly runningMean: tf.Variable<tf.Rank.R1>,
    readonly runningVar: tf.Variable<tf.Rank.R1>,
  ) {}

  /** Eval mode's per-channel affine map: y = x·scale + shift, scale = γ / √(running_var + eps). */
  evalScaleShift(): [scale: tf.Tensor1D, shift: tf.Tensor1D] {
    const scale = tf.mul(this.weight, tf.rsqrt(tf.add(this.runningVar, BN_EPS))) as tf.Tensor1D;
    return [scale, tf.sub(this.bias, tf.mul(this.runningMean, scale)) as tf.Tensor1D];
  }

  /** Training mode normalises with the batch's statistics and moves the running ones; eval mode applies the
   *  running statistics' affine map. */
  apply(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    if (training === false) {
      const [scale, shift] = this.evalScaleShift();
      return tf.add(tf.mul(x, scale), shift);
    }
    const { y, mean, variance } = batchNormTrain(x, this.weight, this.bias, BN_EPS);
    this.record(mean, variance, x.size / x.shape[3]);
    return y;
  }

  /** Moves the running statistics towards a batch's (mean, biased variance over `count` values per channel). */
  record(mean: tf.Tensor1D, variance: tf.Tensor1D, count: number): void {
    tf.tidy(() => {
      const unbiased = count > 1 ? tf.mul(variance, count / (count - 1)) : variance;
      this.runningMean.assign(tf.add(tf.mul(this.runningMean, 1 - BN_MOMENTUM), tf.mul(mean, BN_MOMENTUM)));
      this.runningVar.assign(tf.add(tf.mul(this.runningVar, 1 - BN_MOMENTUM), tf.mul(unbiased, BN_MOMENTUM)));
    });
    this.numBatchesTracked += 1;
  }
}

/** One convolution's weight, held as HWIO for TF.js. */
interface Conv {
  readonly layout: ConvLayout;
  readonly weight: tf.Variable<tf.Rank.R4>;
}

/**
 * A convolution with the BatchNorm after it folded in, for eval mode: filter·scale and beta − mean·scale with
 * scale = gamma / √(running_var + eps). Valid while its sources (the weight and the four BatchNorm tensors) hold
 * the same data: TF.js gives a variable new data on every assign (training, loading, optimizer steps).
 */
class FoldedConv {
  private winogradForm: WinogradFilter | null = null;

  private constructor(
    readonly sources: readonly object[],
    readonly filter: tf.Tensor4D,
    readonly bias: tf.Tensor1D,
  ) {}

  static sourcesOf(conv: Conv, bn: BatchNorm): object[] {
    return [conv.weight, bn.weight, bn.bias, bn.runningMean, bn.runningVar].map((v) => v.dataId);
  }

  static fold(conv: Conv, bn: BatchNorm): FoldedConv {
    const [filter, bias] = tf.tidy(() => {
      const [scale, shift] = bn.evalScaleShift();
      return [tf.mul(conv.weight, scale) as tf.Tensor4D, shift];
    });
    return new FoldedConv(FoldedConv.sourcesOf(conv, bn), tf.keep(filter), tf.keep(bias));
  }

  current(conv: Conv, bn: BatchNorm): boolean {
    return FoldedConv.sourcesOf(conv, bn).every((id, k) => id === this.sources[k]);
  }

  /** The filter in Winograd's form (made on first use). */
  winograd(): WinogradFilter {
    if (this.winogradForm === null) {
      const form = winogradFilter(this.filter);
      form.u.forEach((u) => tf.keep(u));
      this.winogradForm = form;
    }
    return this.winogradForm;
  }

  dispose(): void {
    tf.dispose([this.filter, this.bias]);
    this.winogradForm?.dispose();
  }
}

let modelCount = 0;

class ResNet18Model implements ResNet18 {
  readonly embeddingSize: number;
  readonly trainable: readonly tf.Variable[];
  readonly trainableNames: readonly string[];
  private readonly convs = new Map<string, Conv>();
  private readonly bns = new Map<string, BatchNorm>();
  private readonly folded = new Map<string, FoldedConv>();
  private readonly layout: ResNet18Layout;
  private disposed = false;

  constructor(
    readonly width: number,
    seed: number,
  ) {
    if (!Number.isInteger(width) || width < 1) throw new RangeError(`createResNet18: width must be a positive integer, got ${width}`);
    this.embeddingSize = 8 * width;
    this.layout = resnet18Layout(width);
    const scope = `resnet18_${++modelCount}`;
    const trainable: tf.Variable[] = [];
    const names: string[] = [];
    let index = 0;
    const entries = resnet18StateDictLayout(width);
    for (const entry of entries) {
      const varName = `${scope}/${entry.name}`;
      if (entry.kind === "conv") {
        const [o, i, k] = entry.shape;
        // kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / (out_channels · k · k))
        const std = Math.sqrt(2 / (o * k * k));
        // TF.js treats seed 0 as "no seed" (Math.random), so seeds start at 1.
        const w = ownedVariable(tf.randomNormal([k, k, i, o], 0, std, "float32", seed * 1000 + ++index), true, varName) as tf.Variable<tf.Rank.R4>;
        const name = entry.name.slice(0, -".weight".length);
        const layout = this.findConv(name);
        this.convs.set(name, { layout, weight: w });
        trainable.push(w);
        names.push(entry.name);
      } else if (entry.kind === "bn-weight") {
        const name = entry.name.slice(0, -".weight".length);
        const c = entry.shape[0];
        const bn = new BatchNorm(
          name,
          ownedVariable(tf.ones([c]), true, `${scope}/${name}.weight`) as tf.Variable<tf.Rank.R1>,
          ownedVariable(tf.zeros([c]), true, `${scope}/${name}.bias`) as tf.Variable<tf.Rank.R1>,
          ownedVariable(tf.zeros([c]), false, `${scope}/${name}.running_mean`) as tf.Variable<tf.Rank.R1>,
          ownedVariable(tf.ones([c]), false, `${scope}/${name}.running_var`) as tf.Variable<tf.Rank.R1>,
        );
        this.bns.set(name, bn);
        trainable.push(bn.weight, bn.bias);
        names.push(`${name}.weight`, `${name}.bias`);
      }
    }
    this.trainable = trainable;
    this.trainableNames = names;
  }

  private findConv(name: string): ConvLayout {
    if (this.layout.stem.name === name) return this.layout.stem;
    for (const b of this.layout.blocks) {
      for (const c of [b.conv1, b.conv2, b.downsample?.conv]) if (c !== undefined && c.name === name) return c;
    }
    throw new Error(`resnet18: no convolution named ${name}`);
  }

  private checkAlive(what: string): void {
    if (this.disposed) throw new Error(`ResNet18.${what}: the model was disposed`);
  }

  private conv(name: string, x: tf.Tensor4D, inputGrad = true): tf.Tensor4D {
    const c = this.convs.get(name) as Conv;
    return conv2d(x, c.weight, { stride: c.layout.stride, pad: c.layout.pad, inputGrad });
  }

  private bn(name: string, x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return (this.bns.get(name) as BatchNorm).apply(x, training);
  }

  /** The convolution `name` with BatchNorm `bnName` folded in, cached while their weights and statistics stay. */
  private foldedConv(name: string, bnName: string): FoldedConv {
    const conv = this.convs.get(name) as Conv;
    const bn = this.bns.get(bnName) as BatchNorm;
    const known = this.folded.get(name);
    if (known !== undefined && known.current(conv, bn)) return known;
    known?.dispose();
    const fresh = FoldedConv.fold(conv, bn);
    this.folded.set(name, fresh);
    return fresh;
  }

  /** Eval mode: relu?(bn(conv(x)) + residual), with the BatchNorm folded into the convolution. 3×3 stride-1
   *  convolutions run by Winograd (lib/kernels/winograd) where it is available and faster, others as fused convolutions. */
  private evalConv(name: string, bnName: string, x: tf.Tensor4D, relu: boolean, residual?: tf.Tensor4D): tf.Tensor4D {
    const { layout } = this.convs.get(name) as Conv;
    const folded = this.foldedConv(name, bnName);
    if (useWinograd(x.shape, folded.filter.shape, layout.stride, layout.pad)) {
      return winogradConv3x3(x, folded.winograd(), { bias: folded.bias, residual, relu });
    }
    const fused = (activation: "relu" | "linear"): tf.Tensor4D =>
      tf.fused.conv2d({ x, filter: folded.filter, strides: layout.stride, pad: layout.pad, bias: folded.bias, activation });
    if (residual === undefined) return fused(relu ? "relu" : "linear");
    const sum = tf.add(fused("linear"), residual) as tf.Tensor4D;
    return relu ? tf.relu(sum) : sum;
  }

  apply(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    this.checkAlive("apply");
    if (x.rank !== 4 || x.shape[3] !== 3) {
      throw new RangeError(`ResNet18.apply: expected NHWC images [n, h, w, 3], got [${x.shape.join(", ")}]`);
    }
    if (x.dtype !== "float32") throw new TypeError(`ResNet18.apply: expected float32 images, got ${x.dtype}`);
    // Eval mode outside a gradient computation takes the fast inference path; inside one (fine-tuning with
    // BatchNorm on running statistics) it needs the differentiable path.
    const inference = training === false && !tf.engine().isTapeOn();
    return tf.tidy(() => (inference ? this.applyEval(x) : this.applyDifferentiable(x, training)));
  }

  /** Every op with a fast gradient (lib/kernels/fast-gradients); BatchNorm on batch statistics when training, else on the
   *  running ones. */
  private applyDifferentiable(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    const { stem, stemBn, blocks } = this.layout;
    let h = tf.relu(this.bn(stemBn, this.conv(stem.name, x, false), training));
    // PyTorch's MaxPool2d(3, 2, padding=1); the input is ≥ 0 after relu, so zero padding equals −∞ padding.
    h = maxPoolNonNegative(h, 3, 2, 1);
    for (const block of blocks) {
      let out = tf.relu(this.bn(block.bn1, this.conv(block.conv1.name, h), training));
      out = this.bn(block.bn2, this.conv(block.conv2.name, out), training);
      const shortcut = block.downsample === undefined ? h : this.bn(block.downsample.bn, this.conv(block.downsample.conv.name, h), training);
      h = tf.relu(tf.add(out, shortcut) as tf.Tensor4D);
    }
    return tf.mean(h, [1, 2]) as tf.Tensor2D;
  }

  /** Eval mode with every BatchNorm folded into its convolution (no gradients). */
  private applyEval(x: tf.Tensor4D): tf.Tensor2D {
    const { stem, stemBn, blocks } = this.layout;
    let h = this.evalConv(stem.name, stemBn, x, true);
    h = tf.maxPool(tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, "valid");
    for (const block of blocks) {
      const shortcut = block.downsample === undefined ? h : this.evalConv(block.downsample.conv.name, block.downsample.bn, h, false);
      const out = this.evalConv(block.conv1.name, block.bn1, h, true);
      h = this.evalConv(block.conv2.name, block.bn2, out, true, shortcut);
    }
    return tf.mean(h, [1, 2]) as tf.Tensor2D;
  }

  recordBatchStatistics(name: string, mean: tf.Tensor1D, variance: tf.Tensor1D, count: number): void {
    this.checkAlive("recordBatchStatistics");
    const bn = this.bns.get(name);
    if (bn === undefined) throw new Error(`ResNet18.recordBatchStatistics: no BatchNorm named ${name}`);
    bn.record(mean, variance, count);
  }

  stateDict(): Map<string, tf.Tensor> {
    this.checkAlive("stateDict");
    const state = new Map<string, tf.Tensor>();
    for (const entry of resnet18StateDictLayout(this.width)) {
      state.set(entry.name, this.exportEntry(entry));
    }
    return state;
  }

  private bnOf(entry: StateDictEntry): BatchNorm {
    return this.bns.get(entry.name.slice(0, entry.name.lastIndexOf("."))) as BatchNorm;
  }

  private exportEntry(entry: StateDictEntry): tf.Tensor {
    switch (entry.kind) {
      case "conv":
        return tf.transpose((this.convs.get(entry.name.slice(0, -".weight".length)) as Conv).weight, [3, 2, 0, 1]);
      case "bn-weight":
        return this.bnOf(entry).weight.clone();
      case "bn-bias":
        return this.bnOf(entry).bias.clone();
      case "bn-mean":
        return this.bnOf(entry).runningMean.clone();
      case "bn-var":
        return this.bnOf(entry).runningVar.clone();
      case "bn-count":
        return tf.scalar(this.bnOf(entry).numBatchesTracked, "int32");
    }
  }

  loadStateDict(state: ReadonlyMap<string, tf.Tensor>): void {
    this.checkAlive("loadStateDict");
    const layout = resnet18StateDictLayout(this.width);
    const known = new Set(layout.map((e) => e.name));
    const unexpected = [...state.keys()].filter((k) => !known.has(k) && !k.startsWith("fc."));
    const missing = layout.filter((e) => !state.has(e.name) && e.kind !== "bn-count").map((e) => e.name);
    const mismatched = layout
      .filter((e) => state.has(e.name) && !sameShape((state.get(e.name) as tf.Tensor).shape, e.shape))
      .map((e) => `${e.name}: file [${(state.get(e.name) as tf.Tensor).shape.join(", ")}], model [${e.shape.join(", ")}]`);
    const problems: string[] = [];
    if (missing.length > 0) problems.push(`missing keys: ${listSome(missing)}`);
    if (unexpected.length > 0) problems.push(`unexpected keys: ${listSome(unexpected)}`);
    if (mismatched.length > 0) problems.push(`shape mismatches: ${listSome(mismatched)}`);
    if (problems.length > 0) {
      throw new Error(
        `ResNet18.loadStateDict (width ${this.width}): the weights do not fit torchvision's resnet18 layout — ${problems.join("; ")}. ` +
          `Use a torchvision/timm resnet18 state_dict (e.g. timm/resnet18.tv_in1k's model.safetensors) or one saved by saveResNet18.`,
      );
    }
    for (const entry of layout) {
      const value = state.get(entry.name);
      if (value === undefined) {
        this.bnOf(entry).numBatchesTracked = 0;
        continue;
      }
      this.importEntry(entry, value);
    }
  }

  private importEntry(entry: StateDictEntry, value: tf.Tensor): void {
    const f32 = (t: tf.Tensor): tf.Tensor => (t.dtype === "float32" ? t : tf.cast(t, "float32"));
    tf.tidy(() => {
      switch (entry.kind) {
        case "conv":
          (this.convs.get(entry.name.slice(0, -".weight".length)) as Conv).weight.assign(tf.transpose(f32(value), [2, 3, 1, 0]) as tf.Tensor4D);
          return;
        case "bn-weight":
          this.bnOf(entry).weight.assign(f32(value) as tf.Tensor1D);
          return;
        case "bn-bias":
          this.bnOf(entry).bias.assign(f32(value) as tf.Tensor1D);
          return;
        case "bn-mean":
          this.bnOf(entry).runningMean.assign(f32(value) as tf.Tensor1D);
          return;
        case "bn-var":
          this.bnOf(entry).runningVar.assign(f32(value) as tf.Tensor1D);
          return;
        case "bn-count":
          this.bnOf(entry).numBatchesTracked = Math.round(value.dataSync()[0]);
          return;
      }
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const f of this.folded.values()) f.dispose();
    this.folded.clear();
    for (const c of this.convs.values()) c.weight.dispose();
    for (const b of this.bns.values()) {
      b.weight.dispose();
      b.bias.dispose();
      b.runningMean.dispose();
      b.runningVar.dispose();
    }
  }
}

/** A variable made from `initial`, which is then disposed (the variable keeps its own reference to the data). */
function ownedVariable(initial: tf.Tensor, trainable: boolean, name: string): tf.Variable {
  const v = tf.variable(initial, trainable, name);
  initial.dispose();
  return v;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function listSome(items: readonly string[], max = 8): string {
  return items.length <= max ? items.join(", ") : `${items.slice(0, max).join(", ")} and ${items.length - max} more`;
}

/** A ResNet18 with torchvision's initialisation (kaiming_normal fan_out convs, BN weight 1, bias 0, fresh statistics). */
export function createResNet18(options: ResNet18Options = {}): ResNet18 {
  return new ResNet18Model(options.width ?? RESNET18_WIDTH, options.seed ?? 0);
}

/** The state_dict as safetensors tensors: F32, and I64 for num_batches_tracked (PyTorch's dtype). */
export function stateDictToSafetensors(state: ReadonlyMap<string, tf.Tensor>): Map<string, SafetensorsTensor> {
  const out = new Map<string, SafetensorsTensor>();
  for (const [name, t] of state) {
    if (t.dtype === "int32") {
      out.set(name, { dtype: "I64", shape: t.shape, data: BigInt64Array.from(t.dataSync(), (v) => BigInt(v)) });
    } else {
      out.set(name, { dtype: "F32", shape: t.shape, data: t.dataSync() as Float32Array });
    }
  }
  return out;
}

/** Reads a ResNet18 from a `.safetensors` file with torchvision/timm key names; the width comes from conv1.weight. */
export async function loadResNet18(path: string): Promise<ResNet18> {
  const { tensors } = await readSafetensorsFile(path);
  const stem = tensors.get("conv1.weight");
  if (stem === undefined || stem.shape.length !== 4) {
    throw new Error(`${path}: no 4-D conv1.weight, so this is not a torchvision/timm resnet18 state_dict`);
  }
  const model = createResNet18({ width: stem.shape[0] });
  const state = new Map<string, tf.Tensor>();
  try {
    for (const [name, t] of tensors) {
      if (name.startsWith("fc.")) continue;
      state.set(name, t.dtype === "I64" ? tf.scalar(Number((t.data as BigInt64Array)[0] ?? 0n), "int32") : tf.tensor(toFloat32(t), [...t.shape], "float32"));
    }
    model.loadStateDict(state);
  } catch (e) {
    model.dispose();
    throw e instanceof Error && !e.message.includes(path) ? new Error(`${path}: ${e.message}`) : e;
  } finally {
    for (const t of state.values()) t.dispose();
  }
  return model;
}

/** Writes the model's state_dict (no fc) as `.safetensors`, atomically; PyTorch loads it with load_state_dict
 *  into a resnet18 whose fc is Identity (or with strict=False). */
export async function saveResNet18(model: ResNet18, path: string, metadata?: Readonly<Record<string, string>>): Promise<void> {
  const state = model.stateDict();
  try {
    await writeSafetensors(path, stateDictToSafetensors(state), { format: "pt", ...(metadata ?? {}) });
  } finally {
    for (const t of state.values()) t.dispose();
  }
}
