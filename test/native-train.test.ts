// Fine-tuning's passes on ONNX Runtime (lib/model/onnx/train, lib/model/onnx/train-graph): the hand-written backward graph
// against TF.js's gradients (lib/kernels/fast-gradients, themselves checked against TF.js's reference ones) for both presets,
// whole batches and chunks, odd batch and image sizes (stride-2 layers with and without output padding); the running
// statistics; memory across steps; and the choice of engine.

import { beforeAll, describe, expect, it } from "vitest";
import { Adam } from "../lib/model/adam";
import { initBackend, tf } from "../lib/kernels/backend";
import { applyOverrides, defaultConfig } from "../lib/run/config";
import { batchGradients, nativeBatchGradients, trainStep } from "../lib/model/step";
import { chooseTrainEngine } from "../lib/model/finetune";
import { contrastiveTargets, type LossSettings } from "../lib/model/loss";
import { createNativeTrainer, type NativeTrainer } from "../lib/model/onnx/train";
import { resnet18TrainGraph, trainBatchNorms, trainParameterInputs } from "../lib/model/onnx/train-graph";
import { loadOnnxRuntime, type OrtLoad } from "../lib/kernels/onnxruntime";
import { createResNet18, type ResNet18 } from "../lib/model/resnet18";
import { maxAbs } from "./numeric-helpers";

const ort = loadOnnxRuntime();

beforeAll(async () => {
  await initBackend();
});

/** A width-4 ResNet18 whose BatchNorm weights and biases are not 1 and 0. */
function model(seed: number): ResNet18 {
  const m = createResNet18({ width: 4, seed });
  m.trainable.forEach((v, i) => {
    if (v.rank === 1) v.assign(tf.randomUniform(v.shape, 0.5, 1.5, "float32", seed * 100 + i));
  });
  return m;
}

function images(n: number, size: number, seed: number): tf.Tensor4D {
  return tf.randomUniform([n, size, size, 3], 0, 1, "float32", seed) as tf.Tensor4D;
}

/** max |a − b| / max |b| over each pair of tensors, the worst pair. */
function worstRelative(a: readonly (tf.Tensor | null)[], b: readonly (tf.Tensor | null)[]): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  a.forEach((t, i) => {
    const x = t?.dataSync() ?? new Float32Array();
    const y = b[i]?.dataSync() ?? new Float32Array();
    expect(x.length).toBe(y.length);
    let diff = 0;
    for (let k = 0; k < x.length; k++) diff = Math.max(diff, Math.abs(x[k] - y[k]));
    worst = Math.max(worst, diff / Math.max(maxAbs(y), 1e-6));
  });
  return worst;
}

const runningStatistics = (m: ResNet18): Float32Array[] => {
  const state = m.stateDict();
  const out = [...state].filter(([k]) => k.endsWith("running_mean") || k.endsWith("running_var")).map(([, t]) => t.dataSync() as Float32Array);
  for (const t of state.values()) t.dispose();
  return out;
};

describe("the training graphs", () => {
  it("take the parameters in model.trainableNames' order and give the BatchNorms' statistics in the network's order", () => {
    const m = createResNet18({ width: 4, seed: 1 });
    try {
      expect(trainParameterInputs(4).map((p) => p.name)).toEqual(m.trainableNames);
      expect(trainParameterInputs(4).map((p) => p.dims)).toEqual(m.trainable.map((v) => v.shape));
    } finally {
      m.dispose();
    }
    const norms = trainBatchNorms(4, { height: 45, width: 45 });
    expect(norms.slice(0, 4)).toEqual([
      { name: "bn1", size: { height: 23, width: 23 } },
      { name: "layer1.0.bn1", size: { height: 12, width: 12 } },
      { name: "layer1.0.bn2", size: { height: 12, width: 12 } },
      { name: "layer1.1.bn1", size: { height: 12, width: 12 } },
    ]);
    expect(norms.at(-1)).toEqual({ name: "layer4.1.bn2", size: { height: 2, width: 2 } });
    expect(norms).toHaveLength(20);
  });

  it("a step graph takes both passes and the targets, and gives the loss parts, every gradient and both passes' statistics", () => {
    const graph = resnet18TrainGraph(4, { height: 32, width: 32 }, { kind: "step", loss: { preset: "post", temperature: 0.1 } });
    expect(graph.inputs.slice(0, 3).map((v) => v.name)).toEqual(["x", "x_rotated", "targets"]);
    const outputs = graph.outputs.map((v) => v.name);
    expect(outputs.slice(0, 3)).toEqual(["loss", "contrastive", "orientation"]);
    expect(outputs.filter((o) => o.endsWith(".grad"))).toHaveLength(trainParameterInputs(4).length);
    expect(outputs.filter((o) => o.startsWith("pass1/") && o.endsWith(".batch_var"))).toHaveLength(20);
  });
});

describe.skipIf(ort.ok !== true)("native training passes on onnxruntime-node", () => {
  const engine = ort.ok === true ? { ort: ort.ort, version: ort.version } : null;
  let trainer: NativeTrainer;
  beforeAll(() => {
    trainer = createNativeTrainer(engine!, 4);
    return () => trainer.close();
  });

  const cases: [LossSettings["preset"], number, number, number][] = [
    ["post", 3, 32, 3],
    ["recommended", 5, 45, 5],
    ["recommended", 5, 45, 2],
    ["post", 4, 33, 3],
  ];
  it.each(cases)("%s preset, batch %i of %i px in chunks of %i: loss, gradients and running statistics equal TF.js's", async (preset, n, size, chunkSize) => {
    const loss: LossSettings = { preset, temperature: 0.5 };
    const x = images(n, size, n + size);
    const targets = contrastiveTargets(n, preset === "post" ? null : [0, 1, 0, 2, 1].slice(0, n));
    const viaTfjs = model(7);
    const viaOrt = model(7);
    try {
      const expected = batchGradients(viaTfjs, x, targets, { loss, chunkSize });
      const got = await nativeBatchGradients(viaOrt, trainer, x, targets, { loss, chunkSize });
      for (const part of ["loss", "contrastive", "orientation"] as const) {
        const want = expected.losses[part].dataSync()[0];
        expect(Math.abs(got.losses[part].dataSync()[0] - want)).toBeLessThanOrEqual(1e-4 + 1e-5 * Math.abs(want));
      }
      expect(expected.losses.loss.dataSync()[0]).toBeGreaterThan(0.1);
      expect(worstRelative(got.grads, expected.grads)).toBeLessThan(1e-3);
      const [a, b] = [runningStatistics(viaOrt), runningStatistics(viaTfjs)];
      a.forEach((stat, k) => stat.forEach((v, i) => expect(v).toBeCloseTo(b[k][i], 4)));
      tf.dispose([...got.grads, ...expected.grads].filter((g): g is tf.Tensor => g !== null));
      tf.dispose([...Object.values(got.losses), ...Object.values(expected.losses)]);
    } finally {
      tf.dispose([x, targets]);
      viaTfjs.dispose();
      viaOrt.dispose();
    }
  });

  it("trainStep with the native trainer lowers the loss, leaves no tensor behind, and its gradients are not all zero", async () => {
    const m = model(3);
    const adam = new Adam(m.trainable, { learningRate: 1e-2 });
    const x = images(6, 32, 11);
    const options = { loss: { preset: "post" as const, temperature: 0.1 }, chunkSize: 6, native: trainer };
    const before = (m.trainable[0].dataSync() as Float32Array).slice();
    const losses: number[] = [];
    let afterFirst = 0;
    try {
      for (let step = 1; step <= 8; step++) {
        losses.push((await trainStep(m, adam, x, null, options)).loss);
        if (step === 1) afterFirst = tf.memory().numTensors;
      }
      expect(tf.memory().numTensors).toBe(afterFirst);
      expect(losses[7]).toBeLessThan(losses[0]);
      expect(maxAbs((m.trainable[0].dataSync() as Float32Array).map((v, i) => v - before[i]))).toBeGreaterThan(0);
    } finally {
      x.dispose();
      adam.dispose();
      m.dispose();
    }
  });

  it("says it was closed", async () => {
    const t = createNativeTrainer(engine!, 4);
    await t.close();
    await expect(t.forward({}, { data: new Float32Array(3), shape: [1, 1, 1, 3] })).rejects.toThrow(/forward\(\) after close\(\)/);
  });
});

describe("finetune.engine", () => {
  const notInstalled = (): OrtLoad => ({ ok: false, reason: "onnxruntime-node is not installed" });

  it("tfjs and auto without onnxruntime-node train on TF.js, saying why; a forced but missing one is an error naming the fix", () => {
    const config = applyOverrides(defaultConfig("t"), ["finetune.engine=tfjs"]);
    expect(chooseTrainEngine(config, 4)).toMatchObject({ native: null, description: expect.stringMatching(/finetune\.engine is tfjs/) });
    const auto = applyOverrides(defaultConfig("t"), ["finetune.engine=auto"]);
    expect(chooseTrainEngine(auto, 4, notInstalled)).toMatchObject({ native: null, description: expect.stringMatching(/onnxruntime-node is not installed/) });
    const forced = applyOverrides(defaultConfig("t"), ["finetune.engine=onnxruntime"]);
    expect(() => chooseTrainEngine(forced, 4, notInstalled)).toThrow(/finetune\.engine is "onnxruntime" but onnxruntime-node is not installed: install it with `npm install onnxruntime-node`/);
    expect(() => applyOverrides(defaultConfig("t"), ["finetune.engine=gpu"])).toThrow(/finetune\.engine/);
  });

  it.runIf(ort.ok === true)("auto trains on onnxruntime-node where it loads", async () => {
    const { native, description } = chooseTrainEngine(defaultConfig("t"), 4);
    expect(description).toMatch(/^onnxruntime-node \S+ \(CPU, \d+ threads?\)$/);
    await native?.close();
  });
});
