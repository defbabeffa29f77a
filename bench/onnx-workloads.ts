// The ONNX Runtime side of the embedding benchmark: the same eval-mode ResNet18 embedding as "resnet18 embed" in
// bench/workloads.ts and bench/pytorch_baseline.py (torchvision's width, batch of 64 random images), exported to
// ONNX (lib/onnx-export) and run by onnxruntime-node's CPU provider on every core, as notebook 03 runs it.

import { initBackend } from "../lib/backend";
import type { ImageBatch } from "../lib/image-loader";
import { createOnnxEmbedder, loadOnnxRuntime } from "../lib/onnx-embed";
import { createResNet18 } from "../lib/resnet18";
import { timed, withPeakMemory, type Measurement, type Workload } from "./workloads";

export interface OnnxEmbedTiming {
  readonly medianSeconds: number;
  readonly minSeconds: number;
  readonly maxSeconds: number;
  /** Seconds of each timed repetition. */
  readonly seconds: readonly number[];
  /** Peak resident memory of this process while it ran. */
  readonly peakMb: number;
  /** e.g. "onnxruntime-node 1.30.0 (CPU, 2 threads)". */
  readonly engine: string;
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
 * Times `reps` embeddings of `batch` random `size`×`size` images (after one untimed warm-up, which also lets ONNX
 * Runtime plan its memory) with torchvision's ResNet18 width. Throws, naming the fix, when onnxruntime-node is
 * not installed.
 */
export async function benchOnnxEmbed(batch: number, size: number, reps: number): Promise<OnnxEmbedTiming> {
  const loaded = loadOnnxRuntime();
  if (loaded.ok === false) throw new Error(`benchOnnxEmbed: ${loaded.reason} (npm install onnxruntime-node)`);
  await initBackend(); // the TF.js model is only exported, but its weights are TF.js tensors
  const model = createResNet18({ width: 64, seed: 1 });
  try {
    const embedder = await createOnnxEmbedder(model, "post", loaded);
    try {
      const images = randomImages(batch, size);
      const { result, peakMb } = await withPeakMemory(() => timed(async () => void (await embedder.embed(images)), reps));
      return { medianSeconds: median(result), minSeconds: Math.min(...result), maxSeconds: Math.max(...result), seconds: result, peakMb, engine: embedder.description };
    } finally {
      await embedder.close();
    }
  } finally {
    model.dispose();
  }
}

/** ResNet18's forward pass at 224×224: 1.82 G multiply-adds per image (as bench/workloads.ts counts), ×2 for FLOPs. */
const resnetFlops = (size: number): number => 2 * 1.82e9 * (size / 224) ** 2;

/** "resnet18 embed onnx 64x64" and "… 64x224", for the report beside TF.js's and PyTorch's "resnet18 embed". */
export const onnxEmbedWorkload: Workload = {
  name: "resnet18 embed onnx",
  group: "resnet",
  async run(options) {
    const out: Measurement[] = [];
    for (const size of [64, 224]) {
      const t = await benchOnnxEmbed(64, size, options.reps);
      out.push({ name: `resnet18 embed onnx 64x${size}`, seconds: t.seconds, items: 64, unit: "img", flops: 64 * resnetFlops(size), peakMb: t.peakMb });
    }
    return out;
  },
};
