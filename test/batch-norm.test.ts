// BatchNorm's running statistics recomputed after training (lib/model/batch-norm): the plain average of the chunks'
// batch statistics, whatever the running statistics were before, the weights untouched, on TF.js and ONNX Runtime.

import { beforeAll, describe, expect, it } from "vitest";
import { initBackend, tf } from "../lib/kernels/backend";
import { updateBatchNorm, updateBatchNormOn } from "../lib/model/batch-norm";
import type { FaceSet } from "../lib/model/held-out";
import { createNativeTrainer } from "../lib/model/onnx/train";
import { loadOnnxRuntime } from "../lib/kernels/onnxruntime";
import { createResNet18, type ResNet18 } from "../lib/model/resnet18";
import { statisticsPass } from "../lib/model/step";

beforeAll(async () => {
  await initBackend();
});

const SIZE = 16;

function faces(n: number, seed: number): FaceSet {
  let x = seed;
  const pixels = Uint8Array.from({ length: n * SIZE * SIZE * 3 }, () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x >>> 24;
  });
  return { indices: [...Array(n).keys()], pixels, size: SIZE };
}

function state(model: ResNet18): Map<string, Float32Array> {
  const dict = model.stateDict();
  const out = new Map([...dict].map(([k, t]) => [k, Float32Array.from(t.dataSync() as ArrayLike<number>)]));
  tf.dispose([...dict.values()]);
  return out;
}

/** Running statistics set to values no batch gives, so that an average that leaks them shows. */
function scramble(model: ResNet18): void {
  const dict = model.stateDict();
  const changed = new Map(
    [...dict].map(([k, t]) => [k, k.endsWith("running_mean") ? tf.fill(t.shape, 5) : k.endsWith("running_var") ? tf.fill(t.shape, 9) : t.clone()]),
  );
  model.loadStateDict(changed);
  tf.dispose([...dict.values(), ...changed.values()]);
}

const maxRelative = (a: Float32Array, b: Float32Array): number => {
  let worst = 0;
  const scale = Math.max(1e-3, ...Array.from(b, Math.abs));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / scale);
  return worst;
};

describe("recomputing BatchNorm's running statistics", () => {
  const ort = loadOnnxRuntime();

  it("gives each BatchNorm the average of the chunks' batch means and unbiased variances (as update_bn), weights untouched", async () => {
    const model = createResNet18({ width: 4, seed: 3 });
    const set = faces(15, 7);
    scramble(model);
    const weightsBefore = state(model);
    const chunks = await updateBatchNormOn(model, set, { preset: "post", chunkSize: 5 });
    expect(chunks).toBe(3);
    const after = state(model);
    for (const [k, v] of weightsBefore) if (!k.includes("running_") && !k.endsWith("num_batches_tracked")) expect(after.get(k)).toEqual(v);

    // the reference: each chunk's statistics from ONNX Runtime's training graph, averaged by hand
    if (!ort.ok) return;
    const trainer = createNativeTrainer(ort, model.width, 1);
    try {
      const params = Object.fromEntries(model.trainable.map((v, i) => [model.trainableNames[i], { data: Float32Array.from(v.dataSync() as Float32Array), shape: v.shape }]));
      const sums = new Map<string, { mean: Float64Array; variance: Float64Array }>();
      for (let c = 0; c < 3; c++) {
        const x = tf.tidy(() => tf.div(tf.tensor4d(set.pixels.subarray(c * 5 * SIZE * SIZE * 3, (c + 1) * 5 * SIZE * SIZE * 3), [5, SIZE, SIZE, 3], "int32"), 255));
        const f = await trainer.forward(params, { data: Float32Array.from(x.dataSync() as Float32Array), shape: x.shape });
        x.dispose();
        for (const s of f.statistics) {
          const sum = sums.get(s.name) ?? { mean: new Float64Array(s.mean.length), variance: new Float64Array(s.mean.length) };
          s.mean.forEach((v, i) => (sum.mean[i] += v / 3));
          s.variance.forEach((v, i) => (sum.variance[i] += (v * s.count) / (s.count - 1) / 3));
          sums.set(s.name, sum);
        }
      }
      expect(sums.size).toBeGreaterThan(10);
      for (const [name, sum] of sums) {
        expect(maxRelative(after.get(`${name}.running_mean`)!, Float32Array.from(sum.mean)), name).toBeLessThan(1e-4);
        expect(maxRelative(after.get(`${name}.running_var`)!, Float32Array.from(sum.variance)), name).toBeLessThan(1e-4);
      }
    } finally {
      await trainer.close();
      model.dispose();
    }
  });

  it("gives the same statistics with the passes on ONNX Runtime", async () => {
    if (!ort.ok) return;
    const a = createResNet18({ width: 4, seed: 4 });
    const b = createResNet18({ width: 4, seed: 4 });
    const set = faces(12, 8);
    const trainer = createNativeTrainer(ort, 4, 1);
    try {
      await updateBatchNormOn(a, set, { preset: "recommended", chunkSize: 4 });
      await updateBatchNormOn(b, set, { preset: "recommended", chunkSize: 4, native: trainer });
      const [sa, sb] = [state(a), state(b)];
      for (const [k, v] of sa) if (k.includes("running_")) expect(maxRelative(sb.get(k)!, v), k).toBeLessThan(1e-4);
    } finally {
      await trainer.close();
      a.dispose();
      b.dispose();
    }
  });

  it("without passes leaves the model alone, and frees what it made", async () => {
    const model = createResNet18({ width: 4, seed: 5 });
    const before = state(model);
    expect(await updateBatchNorm(model, [])).toBe(0);
    expect(state(model)).toEqual(before);
    const x = tf.zeros([2, SIZE, SIZE, 3]) as tf.Tensor4D;
    await updateBatchNorm(model, [() => statisticsPass(model, x, { preset: "post", chunkSize: 2 })]); // warm-up
    const tensors = tf.memory().numTensors;
    await updateBatchNorm(model, [() => statisticsPass(model, x, { preset: "post", chunkSize: 2 })]);
    expect(tf.memory().numTensors).toBe(tensors);
    x.dispose();
    model.dispose();
  });
});
