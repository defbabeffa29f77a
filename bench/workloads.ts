// The TF.js side of `npm run bench`: each workload times the same work as bench/pytorch_baseline.py does in
// PyTorch, under the same name, so the report can put them side by side.

import { join } from "node:path";
import { openImageDataset } from "../lib/image-dataset";
import { createImageLoader } from "../lib/image-loader";

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

export const WORKLOADS: readonly Workload[] = [decode];
