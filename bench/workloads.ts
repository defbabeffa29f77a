// The TF.js side of `npm run bench`: each workload prepares one repetition of the same work as the PyTorch workload
// of the same name in bench/pytorch_baseline.py, so the report can put them side by side. bench/run.ts times the
// repetitions, runs every workload in a process of its own (its peak memory is then its own) and profiles kernels.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Adam } from "../lib/model/adam";
import { tf, tidyValues } from "../lib/kernels/backend";
import { defaultConfig } from "../lib/run/config";
import { chooseTrainEngine, trainModel } from "../lib/model/finetune";
import { trainStep } from "../lib/model/step";
import { openImageDataset } from "../lib/data/image-dataset";
import { decodePool } from "../lib/data/decode-pool";
import { createImageLoader, type ImageBatch } from "../lib/data/image-loader";
import { createNativeTrainer, type NativeTrainer } from "../lib/model/onnx/train";
import { createOnnxEmbedder } from "../lib/embed/onnx-embed";
import { loadOnnxRuntime } from "../lib/kernels/onnxruntime";
import { createResNet18 } from "../lib/model/resnet18";
import { jpegDecoder } from "../lib/kernels/turbojpeg";
import { createSae, presetTraining } from "../lib/sae/sae";
import { chooseSaeEngine } from "../lib/sae/onnx-step";
import { trainSae } from "../lib/sae/train";
import type { Vectors } from "../lib/sae/metrics";

export interface BenchOptions {
  readonly reps: number;
  readonly data: string | undefined;
  readonly images: number;
}

/** One workload, ready to run: `step` is one timed repetition. */
export interface Prepared {
  /** One repetition; when it returns a number, that is its time in seconds (it timed itself), else its wall time counts. */
  readonly step: () => Promise<void | number>;
  /** Items per repetition (images, vectors) and their unit. */
  readonly items: number;
  readonly unit: string;
  /** Floating-point operations per repetition, when meaningful. */
  readonly flops?: number;
  /** Untimed repetitions first (default 1). */
  readonly warmup?: number;
  /** A line for the report after the repetitions ran (e.g. the share of time spent waiting for data). */
  readonly summary?: () => string;
  dispose(): void | Promise<void>;
}

export interface Workload {
  readonly name: string;
  readonly group: "decode" | "resnet" | "onnx" | "sae" | "data";
  /** The PyTorch workload to compare with (default: the same name); null when there is none. */
  readonly baseline?: string | null;
  readonly needsData?: boolean;
  /** Whether a per-kernel TF.js profile of one repetition means something (the work runs in TF.js kernels). */
  readonly kernels?: boolean;
  /** Runs native code (ONNX Runtime), not WASM. */
  readonly native?: boolean;
  prepare(options: BenchOptions): Promise<Prepared>;
}

/** Vectors in an SAE epoch over CelebA (202,599 faces); at batch 512 an epoch is 396 steps. */
export const CELEBA_FACES = 202_599;

/** ResNet18's forward pass at 224×224: 1.82 G multiply-adds per image (torchvision's figure), ×2 for FLOPs. */
const RESNET18_FLOPS_224 = 2 * 1.82e9;
export const resnetFlops = (size: number): number => RESNET18_FLOPS_224 * (size / 224) ** 2;

/** JPEG decode + resize to float32 NHWC batches of 64, the post's `post` resize, no cache (the first epoch). */
function decode(size: number): Workload {
  return {
    name: `decode ${size}`,
    group: "decode",
    needsData: true,
    async prepare(options) {
      const dataset = await openImageDataset(options.data ?? "data", { limit: options.images, skipMetadata: true });
      return {
        items: dataset.count,
        unit: "img",
        async step() {
          // As notebook 03 embeds (lib/embed/embed): each batch is done with when the next is asked for.
          const loader = createImageLoader(dataset.paths, { size, mode: "post", batchSize: 64, prefetch: 2, reuseBatchMemory: true });
          for await (const batch of loader.batches()) void batch;
          await loader.close();
        },
        summary: () =>
          `${jpegDecoder().description}, on ${decodePool()?.threads ?? 0} decode threads; batches reuse their memory ` +
          "(reuseBatchMemory) as notebook 03's embedding does. PyTorch: the post's ImageFolder + ToTensor + Resize, DataLoader(batch_size=64)",
        dispose() {},
      };
    },
  };
}

/** The native trainer (notebook 02's engine where onnxruntime-node loads), or an error saying how to get it. */
function nativeTrainer(): NativeTrainer {
  const loaded = loadOnnxRuntime();
  if (loaded.ok === false) throw new Error(`${loaded.reason} (npm install onnxruntime-node)`);
  return createNativeTrainer(loaded, 64);
}

/**
 * One fine-tuning step of the post's loss (the batch and its 180° copy, Adam), the batch in one chunk: its passes
 * on TF.js (WASM), or on onnxruntime-node (lib/model/onnx/train, notebook 02's engine when it is installed).
 */
function resnetTrain(batch: number, size: number, engine: "tfjs" | "onnxruntime"): Workload {
  const native = engine === "onnxruntime";
  return {
    name: `resnet18 train ${native ? "onnx " : ""}${batch}x${size}`,
    group: native ? "onnx" : "resnet",
    kernels: !native,
    native,
    baseline: `resnet18 train ${batch}x${size}`,
    async prepare() {
      const trainer = native ? nativeTrainer() : undefined;
      const model = createResNet18({ width: 64, seed: 1 });
      const adam = new Adam(model.trainable, { learningRate: 1e-3 });
      const images = tf.randomUniform([batch, size, size, 3], 0, 1, "float32", 7) as tf.Tensor4D;
      return {
        items: batch,
        unit: "img",
        // forward + backward ≈ 3 forwards, over the batch and its rotated copy
        flops: 3 * 2 * batch * resnetFlops(size),
        step: async () => void (await trainStep(model, adam, images, null, { loss: { preset: "post", temperature: 0.1 }, chunkSize: batch, native: trainer })),
        async dispose() {
          images.dispose();
          adam.dispose();
          model.dispose();
          await trainer?.close();
        },
      };
    },
  };
}

/** Eval-mode embedding of a batch (notebook 03's work) on the TF.js backend. */
function resnetEmbed(batch: number, size: number): Workload {
  return {
    name: `resnet18 embed ${batch}x${size}`,
    group: "resnet",
    kernels: true,
    async prepare() {
      const model = createResNet18({ width: 64, seed: 1 });
      const images = tf.randomUniform([batch, size, size, 3], 0, 1, "float32", 7) as tf.Tensor4D;
      return {
        items: batch,
        unit: "img",
        flops: batch * resnetFlops(size),
        step: async () => void tidyValues(() => model.apply(images, false)),
        dispose() {
          images.dispose();
          model.dispose();
        },
      };
    },
  };
}

/** The same embedding on onnxruntime-node (the model exported to ONNX, BatchNorm folded), notebook 03's engine. */
function onnxEmbed(batch: number, size: number): Workload {
  return {
    name: `resnet18 embed onnx ${batch}x${size}`,
    group: "onnx",
    native: true,
    baseline: `resnet18 embed ${batch}x${size}`,
    async prepare() {
      const loaded = loadOnnxRuntime();
      if (loaded.ok === false) throw new Error(`${loaded.reason} (npm install onnxruntime-node)`);
      const model = createResNet18({ width: 64, seed: 1 });
      const embedder = await createOnnxEmbedder(model, "post", loaded, { imageSize: size });
      const images = tidyValues(() => tf.randomUniform([batch, size, size, 3], 0, 1, "float32", 7));
      const input: ImageBatch = { indices: Int32Array.from({ length: batch }, (_, i) => i), files: [], data: images, shape: [batch, size, size, 3] };
      return {
        items: batch,
        unit: "img",
        flops: batch * resnetFlops(size),
        step: async () => void (await embedder.embed(input)),
        async dispose() {
          await embedder.close();
          model.dispose();
        },
      };
    },
  };
}

/** Vectors of one timed SAE epoch: 8 steps of 512 (a few thousand 512-d rows). */
const SAE_EPOCH_ROWS = 8 * 512;

/**
 * The post's SAE (d = 512, batch 512) trained as notebook 04 trains it: lib/sae/train `trainSae` (shuffled batches,
 * the loop's per-step work, an evaluation per epoch) with the step on the engine of `sae.engine` — TF.js
 * (lib/sae/step) or onnxruntime-node (lib/sae/onnx-step: forward, backward and Adam in one graph, the weights kept
 * native between steps). A repetition trains two epochs of SAE_EPOCH_ROWS vectors (8 steps each) and times the
 * second, per step, so that the row compares with PyTorch's bare step and the epoch row (× 396 steps) is a CelebA
 * epoch of notebook 04: a step with its loop work plus an eighth of the epoch's evaluation. The first epoch opens
 * the engine's sessions and warms its kernels, which a run does once.
 */
function saeEpochWorkload(dictionary: number, engine: "tfjs" | "onnxruntime" = "tfjs"): Workload {
  const native = engine === "onnxruntime";
  return {
    name: `sae step ${native ? "onnx " : ""}${dictionary}`,
    group: "sae",
    kernels: !native,
    native,
    baseline: `sae step ${dictionary}`,
    async prepare() {
      const chosen = chooseSaeEngine(engine);
      const x = tf.randomNormal([SAE_EPOCH_ROWS, 512], 0, 1, "float32", 3);
      const vectors: Vectors = { data: (x.dataSync() as Float32Array).slice(), rows: SAE_EPOCH_ROWS, cols: 512 };
      x.dispose();
      const training = { ...presetTraining("post", "relu"), batchSize: 512, epochs: 2, seed: 1 };
      const sae = createSae({ preset: "post", architecture: "relu", inputDim: 512, dictionarySize: dictionary, training });
      const steps = SAE_EPOCH_ROWS / 512;
      const stepSeconds: number[] = [];
      const evalSeconds: number[] = [];
      let ranOn = "";
      const medianMs = (xs: readonly number[]): string => (1000 * [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]).toFixed(1);
      return {
        items: 512,
        unit: "vec",
        // forward 4·B·d·m, backward ≈ 2× forward
        flops: 12 * 512 * 512 * dictionary,
        warmup: 0, // each repetition warms up in its first epoch
        async step() {
          // marks: the first epoch's 8 steps and evaluation, then the second's
          const marks: number[] = [];
          const mark = (): void => void marks.push(performance.now());
          await trainSae(sae, vectors, { progress: "silent", engine: chosen, onSteps: (description) => (ranOn = description), onStep: mark, onEval: mark });
          if (marks.length !== 2 * (steps + 1)) throw new Error(`expected 2 epochs of ${steps} steps and an evaluation, saw ${marks.length} marks`);
          const perStep = (marks[2 * steps] - marks[steps]) / steps / 1000;
          const evaluation = (marks[2 * steps + 1] - marks[2 * steps]) / 1000;
          stepSeconds.push(perStep);
          evalSeconds.push(evaluation);
          return perStep + evaluation / steps;
        },
        summary: () =>
          `notebook 04's loop (trainSae) on ${ranOn}: a step with its loop work ${medianMs(stepSeconds)} ms, ` +
          `the evaluation of ${Math.round(SAE_EPOCH_ROWS / 10)} rows ${medianMs(evalSeconds)} ms per epoch of ${steps} steps (medians of the second epochs)`,
        dispose() {
          sae.dispose();
        },
      };
    },
  };
}

/**
 * Fine-tuning as `npm run demo` does it (64 px, batch 32) on real JPEGs decoded during the steps (the first
 * epoch, no cache): how much of the training time is spent waiting for the next batch.
 */
function trainingDataWait(steps: number): Workload {
  return {
    name: `fine-tuning ${steps} steps at 32x64, decoding`,
    group: "data",
    baseline: null,
    needsData: true,
    async prepare(options) {
      const dataset = await openImageDataset(options.data ?? "data", { limit: options.images, skipMetadata: true });
      const defaults = defaultConfig("bench");
      const settings = { ...defaults.finetune, batchSize: 32, chunkSize: 32, maxSteps: steps, checkpointEvery: 10_000, seed: 0 };
      const engine = chooseTrainEngine(defaults, 64); // the default engine, as the demo trains
      const scratch = mkdtempSync(join(tmpdir(), "bench-finetune-"));
      let waited = 0;
      let total = 0;
      return {
        items: steps * settings.batchSize,
        unit: "img",
        warmup: 0,
        async step() {
          const model = createResNet18({ width: 64, seed: 1 });
          const loader = createImageLoader(dataset.paths, { size: 64, mode: "post", batchSize: 32, prefetch: defaults.prefetchBatches, reuseBatchMemory: true });
          rmSync(scratch, { recursive: true, force: true });
          try {
            const result = await trainModel({
              model, count: dataset.count, batches: (order, batchSize) => loader.batches({ order, batchSize }), identities: null,
              settings, checkpointDir: scratch, progress: "silent", showCurve: false, native: engine.native ?? undefined,
            });
            waited += result.dataWaitSeconds;
            total += result.seconds;
          } finally {
            await loader.close();
            model.dispose();
          }
        },
        summary: () => `waited for images ${((100 * waited) / total).toFixed(1)} % of the training time (${waited.toFixed(2)} s of ${total.toFixed(1)} s); passes run by ${engine.description}`,
        async dispose() {
          rmSync(scratch, { recursive: true, force: true });
          await engine.native?.close();
        },
      };
    },
  };
}

export const WORKLOADS: readonly Workload[] = [
  decode(224),
  decode(64),
  resnetTrain(32, 64, "tfjs"),
  resnetTrain(8, 224, "tfjs"),
  resnetTrain(32, 64, "onnxruntime"),
  resnetTrain(8, 224, "onnxruntime"),
  resnetEmbed(64, 64),
  resnetEmbed(64, 224),
  onnxEmbed(64, 64),
  onnxEmbed(64, 224),
  saeEpochWorkload(512),
  saeEpochWorkload(4096),
  saeEpochWorkload(16384),
  saeEpochWorkload(512, "onnxruntime"),
  saeEpochWorkload(4096, "onnxruntime"),
  saeEpochWorkload(16384, "onnxruntime"),
  trainingDataWait(12),
];
