// The TF.js side of `npm run bench`: each workload times the same work as bench/pytorch_baseline.py does in
// PyTorch, under the same name, so the report can put them side by side.

import { join } from "node:path";
import { Adam } from "../lib/adam";
import { tf } from "../lib/backend";
import { trainStep } from "../lib/finetune";
import { openImageDataset } from "../lib/image-dataset";
import { createImageLoader } from "../lib/image-loader";
import { createResNet18 } from "../lib/resnet18";
import { createSae, presetTraining } from "../lib/sae";
import { saeOptimizer, saeStep } from "../lib/sae-train";

export interface BenchOptions {
  readonly reps: number;
  readonly data: string | undefined;
  readonly images: number;
}

export interface Measurement {
  readonly name: string;
  /** Seconds per repetition. */
  readonly seconds: readonly number[];
  /** Items per repetition (images, vectors) and their unit. */
  readonly items: number;
  readonly unit: string;
  /** Floating-point operations per repetition, when meaningful. */
  readonly flops?: number;
  /** Peak resident memory of this process while it ran. */
  readonly peakMb: number;
}

export interface Workload {
  readonly name: string;
  readonly group: "decode" | "sae" | "resnet";
  readonly needsData?: boolean;
  run(options: BenchOptions): Promise<Measurement[]>;
}

/** Samples the process's RSS while `fn` runs, returning its peak in MB. */
export async function withPeakMemory<T>(fn: () => Promise<T>): Promise<{ result: T; peakMb: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { result, peakMb: peak / 2 ** 20 };
  } finally {
    clearInterval(timer);
  }
}

/** Times `fn` `reps` times after `warmup` untimed runs. */
export async function timed(fn: () => Promise<void>, reps: number, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    out.push((performance.now() - t) / 1000);
  }
  return out;
}

/** JPEG decode + resize to float32 NHWC batches of 64, the post's `post` resize, no cache (the first epoch). */
const decode: Workload = {
  name: "decode",
  group: "decode",
  needsData: true,
  async run(options) {
    const dataset = await openImageDataset(options.data ?? join("data"), { limit: options.images, skipMetadata: true });
    const out: Measurement[] = [];
    for (const size of [224, 64]) {
      const pass = async (): Promise<void> => {
        const loader = createImageLoader(dataset.paths, { size, mode: "post", batchSize: 64, prefetch: 2 });
        for await (const batch of loader.batches()) void batch;
        await loader.close();
      };
      const { result, peakMb } = await withPeakMemory(() => timed(pass, options.reps));
      out.push({ name: `decode ${size}`, seconds: result, items: dataset.count, unit: "img", peakMb });
    }
    return out;
  },
};

/** ResNet18's forward pass at 224×224: 1.82 G multiply-adds per image (torchvision's figure), ×2 for FLOPs. */
const RESNET18_FLOPS_224 = 2 * 1.82e9;
const resnetFlops = (size: number): number => RESNET18_FLOPS_224 * (size / 224) ** 2;

/** One fine-tuning step of the post's loss (batch and its 180° copy, Adam), at the sizes of the notes. */
const resnetTrain: Workload = {
  name: "resnet18 train",
  group: "resnet",
  async run(options) {
    const out: Measurement[] = [];
    for (const [batch, size] of [[32, 64], [8, 224]] as const) {
      const model = createResNet18({ width: 64, seed: 1 });
      const adam = new Adam(model.trainable, { learningRate: 1e-3 });
      const images = tf.randomUniform([batch, size, size, 3], 0, 1, "float32", 7) as tf.Tensor4D;
      const step = async (): Promise<void> => void trainStep(model, adam, images, null, { loss: { preset: "post", temperature: 0.1 }, chunkSize: batch });
      const { result, peakMb } = await withPeakMemory(() => timed(step, options.reps));
      // forward + backward ≈ 3 forwards, over the batch and its rotated copy
      out.push({ name: `resnet18 train ${batch}x${size}`, seconds: result, items: batch, unit: "img", flops: 3 * 2 * batch * resnetFlops(size), peakMb });
      tf.dispose([images]);
      adam.dispose();
      model.dispose();
    }
    return out;
  },
};

/** Eval-mode embedding of a batch of 64 (notebook 03's work). */
const resnetEmbed: Workload = {
  name: "resnet18 embed",
  group: "resnet",
  async run(options) {
    const out: Measurement[] = [];
    const model = createResNet18({ width: 64, seed: 1 });
    for (const size of [64, 224]) {
      const images = tf.randomUniform([64, size, size, 3], 0, 1, "float32", 7) as tf.Tensor4D;
      const embed = async (): Promise<void> => void tf.tidy(() => model.apply(images, false).dataSync());
      const { result, peakMb } = await withPeakMemory(() => timed(embed, options.reps));
      out.push({ name: `resnet18 embed 64x${size}`, seconds: result, items: 64, unit: "img", flops: 64 * resnetFlops(size), peakMb });
      images.dispose();
    }
    model.dispose();
    return out;
  },
};

/** Vectors in an SAE epoch over CelebA (202,599 faces) and its steps at batch 512. */
export const CELEBA_FACES = 202_599;

/** One step of the post's SAE at batch 512 (d = 512), for the dictionaries of the notes. */
const saeSteps: Workload = {
  name: "sae step",
  group: "sae",
  async run(options) {
    const out: Measurement[] = [];
    const x = tf.randomNormal([512, 512], 0, 1, "float32", 3) as tf.Tensor2D;
    for (const m of [512, 4096, 16384]) {
      const training = { ...presetTraining("post", "relu"), batchSize: 512, seed: 1 };
      const sae = createSae({ preset: "post", architecture: "relu", inputDim: 512, dictionarySize: m, training });
      const adam = saeOptimizer(sae, training.weightDecay);
      const step = async (): Promise<void> => void saeStep(sae, adam, x, training.learningRate, training.l1);
      const { result, peakMb } = await withPeakMemory(() => timed(step, options.reps, 2));
      // forward 4·B·d·m, backward ≈ 2× forward
      out.push({ name: `sae step ${m}`, seconds: result, items: 512, unit: "vec", flops: 12 * 512 * 512 * m, peakMb });
      adam.dispose();
      sae.dispose();
    }
    x.dispose();
    return out;
  },
};

export const WORKLOADS: readonly Workload[] = [decode, resnetTrain, resnetEmbed, saeSteps];
