// Winograd F(2×2, 3×3) convolutions (lib/kernels/winograd) against TF.js's direct convolution on random shapes: odd and
// even sizes, batch 1, 1×1 maps, with and without the residual and the ReLU; the ResNet18 eval path that uses them
// against PyTorch's outputs (narrow golden model) and against itself with Winograd off; the folded-BatchNorm cache
// following weight changes.
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { maxAbs, maxAbsDiff } from "./numeric-helpers";
import { initBackend, tf } from "../lib/kernels/backend";
import { withDerivedFilterCache } from "../lib/kernels/fast-gradients";
import { createResNet18, loadResNet18 } from "../lib/model/resnet18";
import { readSafetensors, toFloat32 } from "../lib/formats/safetensors";
import { WINOGRAD_ENV, winogradAvailable, winogradConv3x3, winogradFilter, winogradPays } from "../lib/kernels/winograd";

beforeAll(async () => {
  await initBackend();
});

const savedMode = process.env[WINOGRAD_ENV];
afterEach(() => {
  if (savedMode === undefined) delete process.env[WINOGRAD_ENV];
  else process.env[WINOGRAD_ENV] = savedMode;
});

/** relu?(conv2d(x, w, 1, same) + bias + residual) the direct way. */
function direct(x: tf.Tensor4D, w: tf.Tensor4D, bias: tf.Tensor1D, residual: tf.Tensor4D | undefined, relu: boolean): tf.Tensor4D {
  return tf.tidy(() => {
    let y = tf.add(tf.conv2d(x, w, 1, [[0, 0], [1, 1], [1, 1], [0, 0]]), bias) as tf.Tensor4D;
    if (residual !== undefined) y = tf.add(y, residual);
    return relu ? tf.relu(y) : y;
  });
}

describe("winogradConv3x3", () => {
  it("runs on this machine's backend (wasm)", () => {
    expect(tf.getBackend()).toBe("wasm");
    expect(winogradAvailable(64, 64)).toBe(true);
    expect(winogradAvailable(6, 64)).toBe(false);
  });

  const shapes: [n: number, h: number, w: number, cin: number, cout: number][] = [
    [1, 1, 1, 4, 4],
    [1, 2, 2, 8, 4],
    [2, 5, 7, 4, 8],
    [3, 6, 3, 12, 16],
    [1, 9, 9, 8, 8],
    [2, 14, 14, 32, 20],
  ];
  for (const [n, h, w, cin, cout] of shapes) {
    it(`equals the direct convolution at [${n}, ${h}, ${w}, ${cin}] → ${cout}, with and without residual and relu`, () => {
      const seed = n * 1000 + h * 100 + w * 10 + cin;
      const x = tf.randomNormal([n, h, w, cin], 0, 1, "float32", seed) as tf.Tensor4D;
      const filter = tf.randomNormal([3, 3, cin, cout], 0, 0.3, "float32", seed + 1) as tf.Tensor4D;
      const bias = tf.randomNormal([cout], 0, 1, "float32", seed + 2) as tf.Tensor1D;
      const residual = tf.randomNormal([n, h, w, cout], 0, 1, "float32", seed + 3) as tf.Tensor4D;
      const form = winogradFilter(filter);
      try {
        for (const withResidual of [false, true]) {
          for (const relu of [false, true]) {
            const res = withResidual ? residual : undefined;
            const expected = direct(x, filter, bias, res, relu);
            const got = winogradConv3x3(x, form, { bias, residual: res, relu });
            expect(got.shape).toEqual([n, h, w, cout]);
            const exp = expected.dataSync();
            expect(maxAbsDiff(got.dataSync(), exp)).toBeLessThan(2e-6 * Math.max(1, maxAbs(exp)) * 3);
            if (relu) expect(Math.min(...got.dataSync())).toBe(0);
            tf.dispose([expected, got]);
          }
        }
      } finally {
        form.dispose();
        tf.dispose([x, filter, bias, residual]);
      }
    });
  }

  it("adds nothing when given no bias, at ResNet18's widest layer (512 channels)", () => {
    const x = tf.randomNormal([2, 2, 3, 512], 0, 1, "float32", 11) as tf.Tensor4D;
    const filter = tf.randomNormal([3, 3, 512, 512], 0, 0.05, "float32", 12) as tf.Tensor4D;
    const form = winogradFilter(filter);
    const zero = tf.zeros([512]) as tf.Tensor1D;
    try {
      const expected = direct(x, filter, zero, undefined, false);
      const got = winogradConv3x3(x, form);
      const exp = expected.dataSync();
      expect(maxAbsDiff(got.dataSync(), exp)).toBeLessThan(1e-5 * Math.max(1, maxAbs(exp)));
      tf.dispose([expected, got]);
    } finally {
      form.dispose();
      tf.dispose([x, filter, zero]);
    }
  });

  it("leaves no tensors behind and keeps its inputs intact", () => {
    const x = tf.randomNormal([2, 6, 6, 8], 0, 1, "float32", 7) as tf.Tensor4D;
    const form = winogradFilter(tf.randomNormal([3, 3, 8, 8], 0, 0.3, "float32", 8) as tf.Tensor4D);
    const bias = tf.zeros([8]) as tf.Tensor1D;
    const before = Array.from(x.dataSync());
    const count = tf.memory().numTensors;
    const y = winogradConv3x3(x, form, { bias, relu: false });
    expect(tf.memory().numTensors).toBe(count + 1);
    expect(Array.from(x.dataSync())).toEqual(before);
    tf.dispose([x, y, bias]);
    form.dispose();
  });

  it("names what is wrong with its inputs", () => {
    const form = winogradFilter(tf.zeros([3, 3, 8, 4]) as tf.Tensor4D);
    const bias = tf.zeros([4]) as tf.Tensor1D;
    expect(() => winogradConv3x3(tf.zeros([1, 4, 4, 4]) as tf.Tensor4D, form, { bias, relu: false })).toThrow(/input has 4 channels, the filter expects 8/);
    expect(() => winogradConv3x3(tf.zeros([1, 4, 4, 8]) as tf.Tensor4D, form, { bias: tf.zeros([3]) as tf.Tensor1D, relu: false })).toThrow(/bias has 3 values for 4 channels/);
    expect(() => winogradConv3x3(tf.zeros([1, 4, 4, 8]) as tf.Tensor4D, form, { bias, residual: tf.zeros([1, 4, 5, 4]) as tf.Tensor4D, relu: false })).toThrow(/residual is \[1, 4, 5, 4\], the output \[1, 4, 4, 4\]/);
    expect(() => winogradConv3x3(tf.zeros([1, 4, 4, 6]) as tf.Tensor4D, winogradFilter(tf.zeros([3, 3, 6, 4]) as tf.Tensor4D), { bias, relu: false })).toThrow(/multiples of 4, got 6 → 4/);
    expect(() => winogradFilter(tf.zeros([1, 1, 4, 4]) as tf.Tensor4D)).toThrow(/expected a 3×3 filter, got 1×1/);
    form.dispose();
  });

  it("is used where it pays (ResNet18's layers at 64 and 224 px) and as the environment says", () => {
    delete process.env[WINOGRAD_ENV];
    expect(winogradPays(64 * 8 * 8, 64, 64)).toBe(true); // layer1 at 64 px
    expect(winogradPays(64, 512, 512)).toBe(true); // layer4 at 64 px
    expect(winogradPays(3 * 4 * 4, 8, 8)).toBe(false); // tiny
    process.env[WINOGRAD_ENV] = "always";
    expect(winogradPays(1, 4, 4)).toBe(true);
    process.env[WINOGRAD_ENV] = "never";
    expect(winogradPays(64, 512, 512)).toBe(false);
    process.env[WINOGRAD_ENV] = "sometimes";
    expect(() => winogradPays(64, 512, 512)).toThrow(/CELEBA_SAE_WINOGRAD=sometimes: expected auto, always or never/);
  });
});

describe("ResNet18 eval mode with folded BatchNorm and Winograd", () => {
  const FIXTURES = join("test", "fixtures", "resnet18");

  it("matches PyTorch's eval output (narrow model) with Winograd on every 3×3 stride-1 convolution", async () => {
    process.env[WINOGRAD_ENV] = "always";
    const io = await readSafetensors(join(FIXTURES, "narrow-io.safetensors"));
    const input = io.get("input");
    const expected = io.get("eval_output");
    if (input === undefined || expected === undefined) throw new Error("narrow-io.safetensors lacks input/eval_output");
    const model = await loadResNet18(join(FIXTURES, "narrow.safetensors"));
    const x = tf.tidy(() => tf.transpose(tf.tensor4d(toFloat32(input), input.shape as [number, number, number, number]), [0, 2, 3, 1]));
    try {
      const y = model.apply(x, false);
      expect(maxAbsDiff(y.dataSync(), toFloat32(expected))).toBeLessThan(1e-4);
      y.dispose();
    } finally {
      x.dispose();
      model.dispose();
    }
  });

  it("gives the same embeddings with Winograd on and off, and follows weight and statistics changes", () => {
    const model = createResNet18({ width: 8, seed: 3 });
    const x = tf.randomUniform([2, 40, 40, 3], 0, 1, "float32", 4) as tf.Tensor4D;
    const run = (mode: string): Float32Array => {
      process.env[WINOGRAD_ENV] = mode;
      return tf.tidy(() => model.apply(x, false).dataSync() as Float32Array);
    };
    try {
      // give the BatchNorms non-trivial running statistics
      tf.tidy(() => void model.apply(x, true));
      const off = run("never");
      const on = run("always");
      expect(maxAbsDiff(on, off)).toBeLessThan(1e-5 * Math.max(1, maxAbs(off)));
      const tensorsBefore = tf.memory().numTensors;
      expect(maxAbsDiff(run("always"), on)).toBe(0);
      expect(tf.memory().numTensors).toBe(tensorsBefore);
      // an optimizer-style update of one weight and a training step's statistics both reach the eval path
      const w = model.trainable[0];
      w.assign(tf.mul(w, 1.5));
      const changed = run("always");
      expect(maxAbsDiff(changed, on)).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(changed, run("never"))).toBeLessThan(1e-5 * Math.max(1, maxAbs(changed)));
      tf.tidy(() => void model.apply(tf.mul(x, 2), true));
      expect(maxAbsDiff(run("always"), run("never"))).toBeLessThan(1e-5 * Math.max(1, maxAbs(changed)));
      expect(maxAbsDiff(run("always"), changed)).toBeGreaterThan(1e-4);
    } finally {
      x.dispose();
      model.dispose();
    }
  });
});

describe("ResNet18 training with Winograd forward convolutions and input gradients", () => {
  it("gives the same loss and gradients as the direct convolutions (batch and its rotated copy, one filter cache)", () => {
    const model = createResNet18({ width: 8, seed: 5 });
    const x = tf.randomUniform([3, 36, 36, 3], 0, 1, "float32", 6) as tf.Tensor4D;
    const probe = tf.randomNormal([3, 64], 0, 1, "float32", 7) as tf.Tensor2D;
    const run = (mode: string): { loss: number; grads: Float32Array[] } => {
      process.env[WINOGRAD_ENV] = mode;
      const before = model.stateDict();
      try {
        return withDerivedFilterCache(() =>
          tf.tidy(() => {
            const { value, grads } = tf.variableGrads(() => {
              const a = model.apply(x, true);
              const b = model.apply(tf.reverse(x, [1, 2]), true);
              return tf.add(tf.sum(tf.mul(a, probe)), tf.sum(tf.mul(b, tf.square(probe)))) as tf.Scalar;
            }, model.trainable as tf.Variable[]);
            return { loss: value.dataSync()[0], grads: model.trainable.map((v) => grads[v.name].dataSync() as Float32Array) };
          }),
        );
      } finally {
        model.loadStateDict(before); // undo the running statistics' update
        tf.dispose([...before.values()]);
      }
    };
    try {
      const direct = run("never");
      const winograd = run("always");
      expect(Math.abs(winograd.loss - direct.loss)).toBeLessThan(1e-5 * Math.max(1, Math.abs(direct.loss)));
      direct.grads.forEach((g, k) => {
        expect(maxAbsDiff(winograd.grads[k], g)).toBeLessThan(1e-4 * Math.max(1, maxAbs(g)));
      });
      expect(maxAbs(direct.grads[0])).toBeGreaterThan(0);
    } finally {
      tf.dispose([x, probe]);
      model.dispose();
    }
  });
});
