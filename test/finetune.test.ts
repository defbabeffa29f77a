// Fine-tuning: the post's losses against PyTorch, gradient-cache chunking, Adam, memory, checkpoints and resume,
// the NaN guard. A tiny stand-in with ResNet18's interface keeps it fast (the cpu backend: it has every gradient).

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tf } from "../lib/kernels/backend";
import { applyOverrides, defaultConfig } from "../lib/run/config";
import { Adam } from "../lib/model/adam";
import { batchGradients, NonFiniteLossError, trainStep } from "../lib/model/step";
import { contrastiveTargets, finetuneLoss, type LossSettings } from "../lib/model/loss";
import { initialModel } from "../lib/model/initial-weights";
import { personSampler, shuffledOrder, totalSteps, trainModel, type BatchSource, type TrainSettings } from "../lib/model/finetune";
import { listCheckpoints } from "../lib/model/checkpoints";
import { rotate180 } from "../lib/model/inputs";
import type { ImageBatch } from "../lib/data/image-loader";
import { projectRoot } from "../lib/util/project";
import { createResNet18, type ResNet18 } from "../lib/model/resnet18";
import { Rng } from "../lib/util/random";

// ---------------------------------------------------------------------------------------------------------------
// A stand-in model: conv → BatchNorm → ReLU → conv → ReLU → global average pool, torchvision's state_dict conventions.

function createStandIn(options: { seed?: number; channels?: number; batchNorm?: boolean } = {}): ResNet18 {
  const c = options.channels ?? 4;
  const seed = options.seed ?? 0;
  const withBn = options.batchNorm ?? true;
  const conv1 = tf.variable(tf.randomNormal([3, 3, 3, c], 0, 0.5, "float32", seed)) as tf.Variable<tf.Rank.R4>;
  const conv2 = tf.variable(tf.randomNormal([3, 3, c, 2 * c], 0, 0.3, "float32", seed + 1)) as tf.Variable<tf.Rank.R4>;
  const gamma = tf.variable(tf.ones([c]));
  const beta = tf.variable(tf.zeros([c]));
  const runningMean = tf.variable(tf.zeros([c]), false);
  const runningVar = tf.variable(tf.ones([c]), false);
  const tracked = tf.variable(tf.scalar(0, "int32"), false);
  const batchNorm = (x: tf.Tensor4D, training: boolean): tf.Tensor4D => {
    if (!training) return tf.batchNorm(x, runningMean as tf.Tensor1D, runningVar as tf.Tensor1D, beta as tf.Tensor1D, gamma as tf.Tensor1D, 1e-5) as tf.Tensor4D;
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    const n = x.shape[0] * x.shape[1] * x.shape[2];
    tf.tidy(() => {
      runningMean.assign(tf.add(tf.mul(runningMean, 0.9), tf.mul(mean, 0.1)));
      runningVar.assign(tf.add(tf.mul(runningVar, 0.9), tf.mul(variance, (0.1 * n) / Math.max(1, n - 1))));
      tracked.assign(tf.add(tracked, tf.scalar(1, "int32")));
    });
    return tf.batchNorm(x, mean as tf.Tensor1D, variance as tf.Tensor1D, beta as tf.Tensor1D, gamma as tf.Tensor1D, 1e-5) as tf.Tensor4D;
  };
  const named: [string, tf.Variable][] = [
    ["conv1.weight", conv1], ["bn1.weight", gamma], ["bn1.bias", beta], ["bn1.running_mean", runningMean],
    ["bn1.running_var", runningVar], ["bn1.num_batches_tracked", tracked], ["conv2.weight", conv2],
  ];
  const isConv = (key: string): boolean => key.startsWith("conv");
  return {
    width: c,
    embeddingSize: 2 * c,
    trainable: withBn ? [conv1, gamma, beta, conv2] : [conv1, conv2],
    trainableNames: withBn ? ["conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight"] : ["conv1.weight", "conv2.weight"],
    apply(x, training) {
      return tf.tidy(() => {
        let h: tf.Tensor4D = tf.conv2d(x, conv1, 2, "same");
        if (withBn) h = batchNorm(h, training);
        h = tf.relu(tf.conv2d(tf.relu(h), conv2, 1, "same"));
        return tf.mean(h, [1, 2]) as tf.Tensor2D;
      });
    },
    recordBatchStatistics() {
      throw new Error("the tiny test network is trained by TF.js only");
    },
    stateDict() {
      return new Map(named.map(([k, v]) => [k, tf.tidy(() => (isConv(k) ? tf.transpose(v, [3, 2, 0, 1]) : v.clone()))]));
    },
    loadStateDict(state) {
      for (const [k, v] of named) {
        const t = state.get(k);
        if (t === undefined) throw new Error(`state dict has no ${k}`);
        tf.tidy(() => v.assign((isConv(k) ? tf.transpose(t, [2, 3, 1, 0]) : t).cast(v.dtype)));
      }
    },
    dispose() {
      tf.dispose(named.map(([, v]) => v));
    },
  };
}

/** Image i: fixed pseudo-random pixels in [0, 1] (NaN for indices in `nan`). */
function fakeImages(indices: ArrayLike<number>, size: number, nan: ReadonlySet<number> = new Set()): Float32Array {
  const pixels = size * size * 3;
  const out = new Float32Array(indices.length * pixels);
  Array.from(indices).forEach((index, k) => {
    const rng = new Rng(99, index);
    for (let p = 0; p < pixels; p++) out[k * pixels + p] = nan.has(index) ? Number.NaN : rng.next();
  });
  return out;
}

function fakeSource(size: number, nan: ReadonlySet<number> = new Set()): BatchSource {
  return async function* (order, batchSize) {
    for (let s = 0; s < order.length; s += batchSize) {
      const indices = order.slice(s, s + batchSize);
      const batch: ImageBatch = { indices, files: [], data: fakeImages(indices, size, nan), shape: [indices.length, size, size, 3] };
      yield batch;
    }
  };
}

const batchOf = (n: number, size = 8): tf.Tensor4D => tf.tensor4d(fakeImages(Array.from({ length: n }, (_, i) => i), size), [n, size, size, 3]);
const values = (ts: readonly (tf.Tensor | null)[]): number[][] => ts.map((t) => (t === null ? [] : Array.from(t.dataSync())));
const maxAbsDiff = (a: number[][], b: number[][]): number => Math.max(...a.flatMap((row, i) => row.map((v, j) => Math.abs(v - b[i][j]))));
const weightsOf = (model: ResNet18): number[][] => {
  const dict = model.stateDict();
  const out = [...dict.values()].map((t) => Array.from(t.dataSync()));
  tf.dispose([...dict.values()]);
  return out;
};

let previousBackend = "";
const scratch = mkdtempSync(join(tmpdir(), "finetune-test-"));
beforeAll(async () => {
  previousBackend = tf.getBackend();
  await tf.setBackend("cpu");
});
afterAll(async () => {
  rmSync(scratch, { recursive: true, force: true });
  if (previousBackend) await tf.setBackend(previousBackend);
});

// ---------------------------------------------------------------------------------------------------------------

interface Reference {
  e: number[][];
  r: number[][];
  ids: number[];
  temperature: number;
  post: { loss: number; contrastive: number; orientation: number; grad_e: number[][]; grad_r: number[][] };
  recommended: { loss: number; contrastive: number; orientation: number; grad_e: number[][]; grad_r: number[][] };
}
const reference = JSON.parse(readFileSync(join(projectRoot(), "test", "fixtures", "finetune", "losses.json"), "utf8")) as Reference;

describe("losses (against PyTorch, test/fixtures/finetune/make.py)", () => {
  for (const preset of ["post", "recommended"] as const) {
    it(`${preset}: loss parts and their gradients match F.cross_entropy / F.mse_loss`, () => {
      const want = reference[preset];
      const settings: LossSettings = { preset, temperature: reference.temperature };
      const e = tf.tensor2d(reference.e);
      const r = tf.tensor2d(reference.r);
      const targets = contrastiveTargets(6, preset === "post" ? null : reference.ids);
      const parts = finetuneLoss(e, r, targets, settings);
      expect(parts.loss.dataSync()[0]).toBeCloseTo(want.loss, 4);
      expect(parts.contrastive.dataSync()[0]).toBeCloseTo(want.contrastive, 4);
      expect(parts.orientation.dataSync()[0]).toBeCloseTo(want.orientation, 5);
      const [ge, gr] = tf.grads((a: tf.Tensor, b: tf.Tensor) => finetuneLoss(a as tf.Tensor2D, b as tf.Tensor2D, targets, settings).loss)([e, r]);
      expect(maxAbsDiff(ge.arraySync() as number[][], want.grad_e)).toBeLessThan(1e-4);
      expect(maxAbsDiff(gr.arraySync() as number[][], want.grad_r)).toBeLessThan(1e-4);
      tf.dispose([e, r, targets, parts.loss, parts.contrastive, parts.orientation, ge, gr]);
    });
  }

  it("targets: the post's arange, or the same person's pictures sharing probability 1", () => {
    const t = contrastiveTargets(4, [7, 3, 7, 7]);
    expect(Array.from(t.dataSync()).map((v) => Math.round(v * 1000) / 1000)).toEqual([
      0.333, 0, 0.333, 0.333, 0, 1, 0, 0, 0.333, 0, 0.333, 0.333, 0.333, 0, 0.333, 0.333,
    ]);
    const eye = contrastiveTargets(3, null);
    expect(Array.from(eye.dataSync())).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1]);
    tf.dispose([t, eye]);
  });

  it("rotate180 is torch.rot90(x, 2, (2, 3)) in NHWC: pixel (y, x) goes to (H−1−y, W−1−x)", () => {
    const x = tf.tensor4d(Array.from({ length: 2 * 3 * 2 }, (_, i) => i), [1, 2, 3, 2]);
    const r = rotate180(x).arraySync()[0];
    const a = x.arraySync()[0];
    for (let y = 0; y < 2; y++) for (let w = 0; w < 3; w++) expect(r[1 - y][2 - w]).toEqual(a[y][w]);
    tf.dispose([x]);
  });
});

describe("gradient cache", () => {
  const settings: LossSettings = { preset: "post", temperature: 0.1 };
  const gradsWith = (model: ResNet18, chunkSize: number, training: boolean): number[][] => {
    const x = batchOf(8);
    const targets = contrastiveTargets(8, null);
    const { grads, losses } = batchGradients(model, x, targets, { loss: settings, chunkSize, training });
    const out = values(grads);
    tf.dispose([x, targets, ...grads.filter((g): g is tf.Tensor => g !== null), losses.loss, losses.contrastive, losses.orientation]);
    return out;
  };

  it("chunks of 3 give the whole batch's gradient when an image's forward pass does not depend on its batch", () => {
    const model = createStandIn({ batchNorm: false });
    const whole = gradsWith(model, 8, true);
    const chunked = gradsWith(model, 3, true);
    expect(whole.flat().some((v) => v !== 0)).toBe(true);
    expect(maxAbsDiff(chunked, whole)).toBeLessThan(1e-5);
    model.dispose();
  });

  it("with BatchNorm on its running statistics (eval mode) chunking is exact too", () => {
    const model = createStandIn({ batchNorm: true });
    expect(maxAbsDiff(gradsWith(model, 2, false), gradsWith(model, 8, false))).toBeLessThan(1e-5);
    model.dispose();
  });

  it("with BatchNorm in train mode chunks are normalised on their own (ghost batch norm): gradients differ, running stats count each chunk once", () => {
    const model = createStandIn({ batchNorm: true });
    const before = weightsOf(model);
    const whole = gradsWith(model, 8, true);
    const afterWhole = weightsOf(model); // keys: conv1, bn1.weight, bn1.bias, running_mean, running_var, tracked, conv2
    expect(afterWhole[5]).toEqual([2]); // model(images) and model(images_rotated): two BN updates, as the post's step
    const chunked = gradsWith(model, 4, true);
    const afterChunked = weightsOf(model);
    expect(afterChunked[5]).toEqual([6]); // 2 chunks × 2 directions, counted once (the second pass is undone)
    expect(maxAbsDiff(chunked, whole)).toBeGreaterThan(1e-6);
    expect(before[0]).toEqual(afterChunked[0]); // gradients only: weights untouched
    model.dispose();
  });
});

describe("optimisation", () => {
  it("Adam's first step moves each parameter by lr · g / (|g| + eps), as torch.optim.Adam", () => {
    const p = tf.variable(tf.tensor1d([1, -2, 0.5]));
    const adam = new Adam([p], { learningRate: 0.1 });
    const g = tf.tensor1d([2, -4, 1e-3]);
    adam.apply([g]);
    const got = Array.from(p.dataSync());
    [1, -2, 0.5].forEach((v, i) => expect(got[i]).toBeCloseTo(v - (0.1 * [2, -4, 1e-3][i]) / (Math.abs([2, -4, 1e-3][i]) + 1e-8), 6));
    tf.dispose([p, g]);
    adam.dispose();
  });

  for (const chunkSize of [4, 6]) it(`steps on a fixed batch reduce the post's loss, and tf.memory().numTensors is the same after step 1 and step 10 (chunks of ${chunkSize} of 6)`, async () => {
    const model = createStandIn();
    const adam = new Adam(model.trainable, { learningRate: 1e-2 });
    const x = batchOf(6);
    const options = { loss: { preset: "post" as const, temperature: 0.1 }, chunkSize };
    const losses: number[] = [];
    let afterFirst = 0;
    for (let step = 1; step <= 10; step++) {
      losses.push((await trainStep(model, adam, x, null, options)).loss);
      if (step === 1) afterFirst = tf.memory().numTensors;
    }
    expect(tf.memory().numTensors).toBe(afterFirst);
    expect(losses[9]).toBeLessThan(losses[0]);
    x.dispose();
    adam.dispose();
    model.dispose();
  });
});

describe("with lib/model/resnet18's ResNet18 (width 4)", () => {
  it("chunked gradients equal whole-batch ones with BatchNorm on running statistics; memory is stable across steps", async () => {
    const model = createResNet18({ width: 4, seed: 1 });
    const x = batchOf(6, 16);
    const targets = contrastiveTargets(6, [0, 0, 1, 1, 2, 2]);
    const loss: LossSettings = { preset: "recommended", temperature: 0.5 };
    const run = (chunkSize: number): number[][] => {
      const { grads, losses } = batchGradients(model, x, targets, { loss, chunkSize, training: false });
      const out = values(grads);
      tf.dispose([...grads.filter((g): g is tf.Tensor => g !== null), losses.loss, losses.contrastive, losses.orientation]);
      return out;
    };
    const whole = run(6);
    expect(whole.length).toBe(model.trainable.length);
    expect(maxAbsDiff(run(4), whole)).toBeLessThan(1e-4);
    const adam = new Adam(model.trainable, { learningRate: 1e-3 });
    const losses: number[] = [];
    let afterFirst = 0;
    for (let step = 1; step <= 10; step++) {
      losses.push((await trainStep(model, adam, x, [0, 0, 1, 1, 2, 2], { loss, chunkSize: 4 })).loss);
      if (step === 1) afterFirst = tf.memory().numTensors;
    }
    expect(tf.memory().numTensors).toBe(afterFirst);
    expect(losses[9]).toBeLessThan(losses[0]);
    tf.dispose([x, targets]);
    adam.dispose();
    model.dispose();
  });
});

describe("training loop", () => {
  const settings: TrainSettings = {
    preset: "recommended", epochs: 2, batchSize: 4, chunkSize: 2, learningRate: 1e-2, temperature: 0.5, checkpointEvery: 2, maxSteps: null, seed: 5,
  };
  const ids = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4];
  const common = { count: 10, identities: ids, settings, progress: "silent" as const, showCurve: false };

  it("data order: a fixed shuffle per (seed, epoch); steps = epochs × ceil(N / batch), capped by maxSteps", () => {
    expect(shuffledOrder(10, 5, 0)).toEqual(shuffledOrder(10, 5, 0));
    expect(shuffledOrder(10, 5, 1)).not.toEqual(shuffledOrder(10, 5, 0));
    expect([...shuffledOrder(10, 5, 1)].sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
    expect(totalSteps(10, { epochs: 2, batchSize: 4, maxSteps: null })).toBe(6);
    expect(totalSteps(10, { epochs: 2, batchSize: 4, maxSteps: 4 })).toBe(4);
  });

  it("a run killed after step 3 resumes from its step-2 checkpoint and ends with the same weights as an uninterrupted run", async () => {
    const straight = createStandIn({ seed: 1 });
    const a = await trainModel({ ...common, model: straight, batches: fakeSource(8), checkpointDir: join(scratch, "a") });
    expect(a.steps).toBe(6);
    expect(listCheckpoints(join(scratch, "a")).map((c) => c.step)).toEqual([4, 6]);
    // the estimate: steps 2–4 timed, the checkpoints (2, 4, 6) apart, step 2's timed before it was made
    expect(a.estimate).toMatchObject({ window: { from: 2, to: 4 }, resumedFrom: null, steps: { count: 6 }, checkpoints: { count: 3 }, measurements: { count: 0 } });
    expect(a.estimate.steps.secondsEach).toBeGreaterThan(0);
    expect(a.estimate.checkpoints.secondsEach).toBeGreaterThan(0);

    const killed = createStandIn({ seed: 1 });
    const kill = (step: number): void => {
      if (step === 3) throw new Error("killed");
    };
    await expect(trainModel({ ...common, model: killed, batches: fakeSource(8), checkpointDir: join(scratch, "b"), onStep: kill })).rejects.toThrow("killed");
    killed.dispose();
    const resumed = createStandIn({ seed: 1 });
    const b = await trainModel({ ...common, model: resumed, batches: fakeSource(8), checkpointDir: join(scratch, "b") });
    expect(b.resumedFrom).toBe(2);
    expect(b.stepsThisRun).toBe(4);
    expect(b.estimate).toMatchObject({ window: { from: 4, to: 5 }, resumedFrom: 2, steps: { count: 4 }, checkpoints: { count: 2 } }); // what was left
    expect(b.history.map((h) => h.loss)).toEqual(a.history.map((h) => h.loss));
    expect(maxAbsDiff(weightsOf(resumed), weightsOf(straight))).toBe(0);

    const done = await trainModel({ ...common, model: resumed, batches: fakeSource(8), checkpointDir: join(scratch, "b") });
    expect(done.stepsThisRun).toBe(0); // a finished run is not trained again
    expect(done.estimate).toMatchObject({ window: null, steps: { count: 0 }, seconds: null });
    const changed = await trainModel({ ...common, settings: { ...settings, learningRate: 1e-3, maxSteps: 1 }, model: resumed, batches: fakeSource(8), checkpointDir: join(scratch, "b") });
    expect(changed.resumedFrom).toBeNull();
    expect(changed.note).toMatch(/other inputs or settings \(learningRate: 0\.01 → 0\.001\): training started afresh, and they were set aside in .*b\.before-/);
    expect(listCheckpoints(join(scratch, "b")).map((c) => c.step)).toEqual([1]);
    const aside = readdirSync(scratch).filter((n) => n.startsWith("b.before-"));
    expect(aside).toHaveLength(1);
    expect(listCheckpoints(join(scratch, aside[0])).map((c) => c.step)).toEqual([4, 6]);
    straight.dispose();
    resumed.dispose();
  });

  it("with identity-balanced batches, augmented views and a held-out measure: measures at 0, every N steps and the last, keeps the curve in its checkpoints, and resumes to the same weights and curve", async () => {
    const people = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5];
    const train = people.flatMap((p, i) => (p < 4 ? [i] : [])); // people 4 and 5 held out
    const sampler = personSampler(train, people, settings, 2);
    expect(sampler.stepsPerEpoch).toBe(4); // 4 people × 2 slots of 2 pictures, 2 people a batch
    const seen: number[][] = [];
    const recording: BatchSource = async function* (order, batchSize) {
      for await (const batch of fakeSource(8)(order, batchSize)) {
        seen.push(Array.from(batch.indices));
        yield batch;
      }
    };
    const measured: number[] = [];
    const heldOut = {
      every: 3,
      measure: (m: ResNet18, step: number) => {
        measured.push(step);
        const w = weightsOf(m)[0][0];
        return { step, recall1: Math.abs(w) % 1, recall10: 1, auc: 0.5, queries: 8, samePairs: 12, differentPairs: 16 };
      },
    };
    const run = { ...common, count: people.length, identities: people, settings: { ...settings, epochs: 3, maxSteps: 10 }, sampler, augment: true, heldOut }; // epochs end at 4 and 8
    const straight = createStandIn({ seed: 6 });
    const a = await trainModel({ ...run, model: straight, batches: recording, checkpointDir: join(scratch, "pk-a") });
    expect(measured).toEqual([0, 3, 6, 9, 10]);
    expect(a.heldOut.map((p) => p.step)).toEqual([0, 3, 6, 9, 10]);
    expect(seen.length).toBe(10);
    for (const batch of seen) {
      expect(batch.length).toBe(4);
      expect(batch.every((i) => people[i] < 4)).toBe(true);
      expect(new Set(batch.map((i) => people[i])).size).toBe(2);
    }

    measured.length = 0;
    const killed = createStandIn({ seed: 6 });
    await expect(trainModel({ ...run, model: killed, batches: fakeSource(8), checkpointDir: join(scratch, "pk-b"), onStep: (step) => {
      if (step === 5) throw new Error("killed");
    } })).rejects.toThrow("killed");
    killed.dispose();
    expect(measured).toEqual([0, 3]);
    measured.length = 0;
    const resumed = createStandIn({ seed: 6 });
    const b = await trainModel({ ...run, model: resumed, batches: fakeSource(8), checkpointDir: join(scratch, "pk-b") });
    expect(b.resumedFrom).toBe(4);
    expect(measured).toEqual([6, 9, 10]); // 0 and 3 came from the checkpoint
    expect(b.heldOut).toEqual(a.heldOut);
    expect(maxAbsDiff(weightsOf(resumed), weightsOf(straight))).toBe(0);
    straight.dispose();
    resumed.dispose();
  });

  it("counts the time spent waiting for batches that were not ready", async () => {
    const slow: BatchSource = async function* (order, batchSize) {
      for await (const batch of fakeSource(8)(order, batchSize)) {
        await new Promise((resolve) => setTimeout(resolve, 60));
        yield batch;
      }
    };
    const model = createStandIn({ seed: 3 });
    const result = await trainModel({ ...common, model, batches: slow, checkpointDir: join(scratch, "wait") });
    expect(result.stepsThisRun).toBe(6);
    expect(result.dataWaitSeconds).toBeGreaterThanOrEqual(6 * 0.055);
    expect(result.dataWaitSeconds).toBeLessThan(result.seconds);
    const fast = await trainModel({ ...common, model, batches: fakeSource(8), checkpointDir: join(scratch, "no-wait") });
    expect(fast.dataWaitSeconds).toBeLessThan(0.05);
    model.dispose();
  });

  it("a NaN loss stops training naming the step, leaves the weights alone and keeps the last good checkpoint", async () => {
    const model = createStandIn({ seed: 2 });
    const order = shuffledOrder(10, settings.seed, 0);
    const poisoned = new Set([order[8]]); // in the third batch
    let weightsAfter2: number[][] = [];
    const error = await trainModel({
      ...common, model, batches: fakeSource(8, poisoned), checkpointDir: join(scratch, "nan"),
      onStep: (step) => {
        if (step === 2) weightsAfter2 = weightsOf(model);
      },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NonFiniteLossError);
    expect((error as Error).message).toMatch(/stopped at step 3: the loss is NaN[\s\S]*last good checkpoint is .*step-000002/);
    expect(listCheckpoints(join(scratch, "nan")).map((c) => c.step)).toEqual([2]);
    const running = weightsOf(model);
    expect(maxAbsDiff([running[0], running[6]], [weightsAfter2[0], weightsAfter2[6]])).toBe(0);
    model.dispose();
  });
});

describe("initial weights", () => {
  it("a finetune.weights file that does not exist is an error saying where to get ImageNet weights", async () => {
    const config = applyOverrides(defaultConfig("unused"), ["finetune.weights=no/such/model.safetensors"]);
    await expect(initialModel(config)).rejects.toThrow(/finetune\.weights = "no\/such\/model\.safetensors" does not exist\. Pass the path of a \.safetensors file .* or finetune\.weights=auto/);
  });
});
