// ResNet18 against PyTorch/torchvision (golden files from test/fixtures/resnet18/make.py): key mapping of the full
// model, outputs in eval and train mode, running statistics and gradients of a narrow model; saving and loading;
// one Adam step; memory across steps.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { maxAbs, maxAbsDiff } from "./numeric-helpers";
import { initBackend, tf } from "../lib/kernels/backend";
import { createResNet18, loadResNet18, saveResNet18, type ResNet18 } from "../lib/model/resnet18";
import { resnet18StateDictLayout } from "../lib/model/resnet18-layout";
import { readSafetensors, toFloat32, writeSafetensors, type SafetensorsTensor } from "../lib/formats/safetensors";

const FIXTURES = join("test", "fixtures", "resnet18");
const NARROW = join(FIXTURES, "narrow.safetensors");
let io: Map<string, SafetensorsTensor>;
let dir: string;

beforeAll(async () => {
  await initBackend();
  io = await readSafetensors(join(FIXTURES, "narrow-io.safetensors"));
  dir = mkdtempSync(join(tmpdir(), "resnet18-test-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function golden(name: string): { shape: readonly number[]; data: Float32Array } {
  const t = io.get(name);
  if (t === undefined) throw new Error(`fixture narrow-io.safetensors has no ${name}: re-run make.py`);
  return { shape: t.shape, data: toFloat32(t) };
}

/** The fixture's NCHW input as an NHWC tensor. */
function goldenInput(): tf.Tensor4D {
  const { shape, data } = golden("input");
  return tf.tidy(() => tf.transpose(tf.tensor4d(data, shape as [number, number, number, number]), [0, 2, 3, 1]));
}


describe("state_dict layout", () => {
  it("has every key and shape of torchvision's resnet18 except fc, in torchvision's order", () => {
    const full = JSON.parse(readFileSync(join(FIXTURES, "full-keys.json"), "utf8")) as { keys: [string, number[]][] };
    expect(full.keys.length).toBe(120);
    expect(resnet18StateDictLayout(64).map((e) => [e.name, [...e.shape]])).toEqual(full.keys);
  });

  it("creates a width-64 model whose stateDict matches those keys, with torchvision's initialisation", () => {
    const full = JSON.parse(readFileSync(join(FIXTURES, "full-keys.json"), "utf8")) as { keys: [string, number[]][] };
    const model = createResNet18({ seed: 1 });
    const state = model.stateDict();
    try {
      expect(model.embeddingSize).toBe(512);
      expect([...state].map(([k, v]) => [k, v.shape])).toEqual(full.keys);
      expect(model.trainable.length).toBe(60); // 20 convs, 20 BatchNorms × (γ, β); fc is identity
      expect(model.trainableNames.slice(0, 4)).toEqual(["conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight"]);
      // kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / (64 · 7 · 7)) for conv1
      const w = (state.get("conv1.weight") as tf.Tensor).dataSync() as Float32Array;
      const mean = w.reduce((a, b) => a + b, 0) / w.length;
      const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
      expect(std).toBeGreaterThan(0.95 * Math.sqrt(2 / (64 * 49)));
      expect(std).toBeLessThan(1.05 * Math.sqrt(2 / (64 * 49)));
      expect(Array.from((state.get("layer3.1.bn2.weight") as tf.Tensor).dataSync()).every((v) => v === 1)).toBe(true);
      expect(Array.from((state.get("layer3.1.bn2.running_var") as tf.Tensor).dataSync()).every((v) => v === 1)).toBe(true);
    } finally {
      tf.dispose([...state.values()]);
      model.dispose();
    }
  });
});

describe("parity with torchvision (narrow resnet18, width 8)", () => {
  it("matches PyTorch's eval-mode and train-mode outputs, updated running statistics and gradients", async () => {
    const model = await loadResNet18(NARROW);
    const x = goldenInput();
    try {
      expect(model.width).toBe(8);
      const evalOut = model.apply(x, false);
      expect(evalOut.shape).toEqual([3, 64]);
      expect(maxAbsDiff(evalOut.dataSync(), golden("eval_output").data)).toBeLessThan(1e-4);
      evalOut.dispose();

      const probe = tf.tensor2d(golden("probe").data, [3, 64]);
      let trainOut: Float32Array = new Float32Array(0);
      const { value, grads } = tf.variableGrads(() =>
        tf.tidy(() => {
          const e = model.apply(x, true);
          trainOut = e.dataSync() as Float32Array;
          return tf.sum(tf.mul(e, probe)) as tf.Scalar;
        }),
      );
      expect(maxAbsDiff(trainOut, golden("train_output").data)).toBeLessThan(1e-4);

      const names = model.trainableNames;
      for (const name of ["conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer3.1.bn2.bias", "layer4.1.conv2.weight"]) {
        const variable = model.trainable[names.indexOf(name)];
        const g = grads[variable.name];
        const asTorch = g.rank === 4 ? tf.transpose(g, [3, 2, 0, 1]) : g;
        const expected = golden(`grad.${name}`).data;
        expect(maxAbsDiff(asTorch.dataSync(), expected) / Math.max(1, maxAbs(expected)), name).toBeLessThan(1e-4);
        if (asTorch !== g) asTorch.dispose();
      }
      tf.dispose([value, probe, ...Object.values(grads)]);

      const state = model.stateDict();
      let buffers = 0;
      for (const [name, t] of state) {
        if (!name.includes("running") && !name.includes("num_batches")) continue;
        buffers++;
        expect(maxAbsDiff(t.dataSync(), golden(`after_train.${name}`).data), name).toBeLessThan(1e-5);
      }
      expect(buffers).toBe(20 * 3);
      expect((state.get("bn1.num_batches_tracked") as tf.Tensor).dataSync()[0]).toBe(4);
      tf.dispose([...state.values()]);
    } finally {
      x.dispose();
      model.dispose();
    }
  });
});

describe("saving and loading", () => {
  it("round-trips every weight and buffer through safetensors, PyTorch layout and dtypes", async () => {
    const model = createResNet18({ width: 4, seed: 7 });
    const x = tf.randomUniform([2, 32, 32, 3], 0, 1, "float32", 3) as tf.Tensor4D;
    tf.dispose(model.apply(x, true)); // moves the running statistics away from 0 and 1
    const path = join(dir, "model.safetensors");
    await saveResNet18(model, path, { note: "test" });
    const file = await readSafetensors(path);
    expect(file.get("conv1.weight")?.shape).toEqual([4, 3, 7, 7]);
    expect(file.get("bn1.num_batches_tracked")?.dtype).toBe("I64");
    expect(file.has("fc.weight")).toBe(false);
    const loaded = await loadResNet18(path);
    const [a, b] = [model.stateDict(), loaded.stateDict()];
    try {
      expect([...b.keys()]).toEqual([...a.keys()]);
      for (const [k, t] of a) expect(maxAbsDiff((b.get(k) as tf.Tensor).dataSync(), t.dataSync()), k).toBe(0);
      const [ya, yb] = [model.apply(x, false), loaded.apply(x, false)];
      expect(maxAbsDiff(ya.dataSync(), yb.dataSync())).toBe(0);
      tf.dispose([ya, yb]);
    } finally {
      tf.dispose([...a.values(), ...b.values(), x]);
      model.dispose();
      loaded.dispose();
    }
  });

  it("loads a timm-style file: BF16 weights, an fc head, no num_batches_tracked", async () => {
    const source = await readSafetensors(NARROW);
    const timm = new Map<string, SafetensorsTensor>();
    for (const [name, t] of source) {
      if (name.endsWith("num_batches_tracked")) continue;
      const words = new Uint16Array(new Uint32Array(toFloat32(t).buffer.slice(0)).map((bits) => bits >>> 16));
      timm.set(name, { dtype: "BF16", shape: t.shape, data: words });
    }
    timm.set("fc.weight", { dtype: "F32", shape: [1000, 64], data: new Float32Array(64_000) });
    timm.set("fc.bias", { dtype: "F32", shape: [1000], data: new Float32Array(1000) });
    const path = join(dir, "timm.safetensors");
    await writeSafetensors(path, timm);
    const model = await loadResNet18(path);
    const state = model.stateDict();
    try {
      expect(model.width).toBe(8);
      expect((state.get("layer1.0.bn1.num_batches_tracked") as tf.Tensor).dataSync()[0]).toBe(0);
      const expected = toFloat32(timm.get("layer3.0.conv2.weight") as SafetensorsTensor);
      expect(maxAbsDiff((state.get("layer3.0.conv2.weight") as tf.Tensor).dataSync(), expected)).toBe(0);
      // bf16 keeps 8 bits of mantissa: outputs stay near the float32 ones
      const x = goldenInput();
      const y = model.apply(x, false);
      const ref = golden("eval_output").data;
      expect(maxAbsDiff(y.dataSync(), ref) / maxAbs(ref)).toBeLessThan(0.05);
      tf.dispose([x, y]);
    } finally {
      tf.dispose([...state.values()]);
      model.dispose();
    }
  });

  it("names missing and unexpected keys and shape mismatches, and ignores fc.*", () => {
    const model = createResNet18({ width: 2 });
    const state = model.stateDict();
    try {
      const fc = tf.zeros([10, 16]);
      const withFc = new Map(state).set("fc.weight", fc);
      expect(() => model.loadStateDict(withFc)).not.toThrow();
      fc.dispose();

      const broken = new Map(state);
      broken.delete("layer2.0.conv1.weight");
      const extra = tf.zeros([3]);
      broken.set("layer5.0.bn1.weight", extra);
      const wrong = tf.zeros([2, 3, 3, 3]);
      broken.set("conv1.weight", wrong);
      expect(() => model.loadStateDict(broken)).toThrow(
        /missing keys: layer2\.0\.conv1\.weight; unexpected keys: layer5\.0\.bn1\.weight; shape mismatches: conv1\.weight: file \[2, 3, 3, 3\], model \[2, 3, 7, 7\]/,
      );
      tf.dispose([extra, wrong]);
    } finally {
      tf.dispose([...state.values()]);
      model.dispose();
    }
  });

  it("says which file is not a resnet18", async () => {
    await expect(loadResNet18(join(FIXTURES, "narrow-io.safetensors"))).rejects.toThrow(/narrow-io\.safetensors: no 4-D conv1\.weight/);
    await expect(loadResNet18(join(dir, "absent.safetensors"))).rejects.toThrow(/absent\.safetensors: does not exist/);
  });

  it("rejects images that are not NHWC RGB float32", () => {
    const model = createResNet18({ width: 2 });
    const nchw = tf.zeros([1, 3, 16, 16]) as tf.Tensor4D;
    expect(() => model.apply(nchw, false)).toThrow(/expected NHWC images \[n, h, w, 3\], got \[1, 3, 16, 16\]/);
    nchw.dispose();
    model.dispose();
    expect(() => model.apply(nchw, false)).toThrow(/disposed/);
  });
});

describe("lifetime", () => {
  it("gives the same weights for the same seed (seed 0 included) and others for another seed", () => {
    const [a, b, c] = [0, 0, 1].map((seed) => createResNet18({ width: 4, seed }));
    try {
      const first = (m: ResNet18): Float32Array => m.trainable[0].dataSync() as Float32Array;
      expect(Array.from(first(a))).toEqual(Array.from(first(b)));
      expect(Array.from(first(a))).not.toEqual(Array.from(first(c)));
    } finally {
      [a, b, c].forEach((m) => m.dispose());
    }
  });

  it("leaves no tensor behind after create, save, load and dispose", async () => {
    const before = tf.memory().numTensors;
    const dir = mkdtempSync(join(tmpdir(), "resnet18-life-"));
    try {
      const model = createResNet18({ width: 4 });
      await saveResNet18(model, join(dir, "m.safetensors"));
      model.dispose();
      (await loadResNet18(join(dir, "m.safetensors"))).dispose();
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("training", () => {
  let model: ResNet18;
  afterAll(() => model?.dispose());

  it("reduces the loss with one Adam step on a fixed batch, and keeps the tensor count flat from step 2 to 10", () => {
    model = createResNet18({ width: 4, seed: 3 });
    const x = tf.randomUniform([4, 32, 32, 3], 0, 1, "float32", 5) as tf.Tensor4D;
    const target = tf.randomNormal([4, 32], 0, 1, "float32", 6) as tf.Tensor2D;
    const optimizer = tf.train.adam(1e-3);
    const lossOf = (): tf.Scalar => tf.tidy(() => tf.mean(tf.square(tf.sub(model.apply(x, true), target))) as tf.Scalar);
    const step = (): number => {
      const loss = optimizer.minimize(lossOf, true, model.trainable as tf.Variable[]) as tf.Scalar;
      const v = loss.dataSync()[0];
      loss.dispose();
      return v;
    };
    const losses = [step()];
    losses.push(step());
    const after2 = tf.memory().numTensors;
    for (let i = 3; i <= 10; i++) losses.push(step());
    expect(tf.memory().numTensors).toBe(after2);
    expect(losses[1]).toBeLessThan(losses[0]);
    expect(losses[9]).toBeLessThan(losses[0]);
    expect(losses.every(Number.isFinite)).toBe(true);
    optimizer.dispose();
    tf.dispose([x, target]);
  });
});
