// The ONNX Runtime side of the embedding benchmark: the same eval-mode ResNet18 embedding as "resnet18 embed" in
// bench/workloads.ts and bench/pytorch_baseline.py (torchvision's width, a batch of random images), exported to
// ONNX (lib/onnx-export) and run by onnxruntime-node's CPU provider on every core, as notebook 03 runs it.
// Self-contained (its own timing), so it does not depend on how bench/run.ts times the other workloads.

import { initBackend } from "../lib/backend";
import type { ImageBatch } from "../lib/image-loader";
import { createOnnxEmbedder, loadOnnxRuntime } from "../lib/onnx-embed";
import { createResNet18 } from "../lib/resnet18";

export interface OnnxEmbedTiming {
  readonly medianSeconds: number;
  readonly minSeconds: number;
  readonly maxSeconds: number;
  /** Seconds of each timed repetition. */
  readonly seconds: readonly number[];
  /** Peak resident memory of this process while the repetitions ran. */
  readonly peakMb: number;
  /** e.g. "onnxruntime-node 1.30.0 (CPU, 2 threads)". */
  readonly engine: string;
}

/** One prepared embedding workload: `step` embeds the batch once; `dispose` frees the session and the model. */
export interface PreparedOnnxEmbed {
  readonly step: () => Promise<void>;
  readonly engine: string;
  dispose(): Promise<void>;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function randomImages(batch: number, size: number): ImageBatch {
  const data = new Float32Array(batch * size * size * 3);
  let state = 7;
  for (let i = 0; i < data.length; i++) {
    state = (state * 1664525 + 1013904223) >>> 0;
    data[i] = state / 2 ** 32;
  }
  return { indices: Int32Array.from({ length: batch }, (_, i) => i), files: [], data, shape: [batch, size, size, 3] };
}

/**
 * torchvision's ResNet18 (random weights, fc = identity) exported to ONNX in an ONNX Runtime session, and a batch of
 * `batch` random `size`×`size` images. Throws, naming the fix, when onnxruntime-node is not installed.
 */
export async function prepareOnnxEmbed(batch: number, size: number): Promise<PreparedOnnxEmbed> {
  const loaded = loadOnnxRuntime();
  if (loaded.ok === false) throw new Error(`benchOnnxEmbed: ${loaded.reason} (npm install onnxruntime-node)`);
  await initBackend(); // the model's weights are TF.js tensors until exported
  const model = createResNet18({ width: 64, seed: 1 });
  try {
    const embedder = await createOnnxEmbedder(model, "post", loaded);
    const images = randomImages(batch, size);
    return {
      step: async () => void (await embedder.embed(images)),
      engine: embedder.description,
      async dispose() {
        await embedder.close();
        model.dispose();
      },
    };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** Times `reps` embeddings after one untimed warm-up (which also lets ONNX Runtime plan its memory). */
export async function benchOnnxEmbed(batch: number, size: number, reps: number): Promise<OnnxEmbedTiming> {
  const prepared = await prepareOnnxEmbed(batch, size);
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    await prepared.step();
    const seconds: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t = performance.now();
      await prepared.step();
      seconds.push((performance.now() - t) / 1000);
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    return {
      medianSeconds: median(seconds), minSeconds: Math.min(...seconds), maxSeconds: Math.max(...seconds), seconds, peakMb: peak / 2 ** 20, engine: prepared.engine,
    };
  } finally {
    clearInterval(sampler);
    await prepared.dispose();
  }
}
