// Every custom gradient of lib/kernels/fast-gradients against TF.js's own gradients on the cpu backend (plain JavaScript
// kernels, including the Conv2DBackpropFilter that WASM lacks), on random shapes as ResNet uses them.
import { beforeAll, describe, expect, it } from "vitest";
import { maxAbs, maxAbsDiff } from "./numeric-helpers";
import { initBackend, tf } from "../lib/kernels/backend";
import {
  DILATED_FILTER_GRAD_MIN_PIXELS,
  batchNormTrain,
  conv2d,
  convFilterGradDilated,
  convFilterGradIm2col,
  convInputGradPhases,
  convInputGradPointwise,
  convInputGradUpsampled,
  convOutputSize,
  flipFilter,
  im2col,
  matMul,
  maxPoolNonNegative,
  GRADIENT_REWRITES_ENV,
  rewritesGradients,
  withDerivedFilterCache,
  zeroUpsample,
  type ConvSpec,
} from "../lib/kernels/fast-gradients";

let backend = "";
beforeAll(async () => {
  backend = (await initBackend()).name;
});

function randomArray(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Runs fn on another backend and switches back. */
async function onBackend<T>(name: string, fn: () => T): Promise<T> {
  const previous = tf.getBackend();
  await tf.setBackend(name);
  try {
    return fn();
  } finally {
    await tf.setBackend(previous);
  }
}


/** Value and gradients of sum(f(inputs) · r) for a fixed random r, as plain arrays. */
function valueAndGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: readonly Float32Array[], shapes: readonly number[][], seed: number): Float32Array[] {
  return tf.tidy(() => {
    const xs = inputs.map((d, i) => tf.tensor(d, shapes[i]));
    const probe = f(...xs);
    const r = tf.tensor(randomArray(probe.size, seed), probe.shape);
    const g = tf.grads((...ts: tf.Tensor[]) => tf.sum(tf.mul(f(...ts), r)));
    return [probe.dataSync() as Float32Array, ...g(xs).map((t) => t.dataSync() as Float32Array)];
  });
}

function expectClose(fast: Float32Array[], reference: Float32Array[], tolerance: number): void {
  fast.forEach((a, i) => {
    const scale = Math.max(1, maxAbs(reference[i]));
    expect(maxAbsDiff(a, reference[i]) / scale, `output ${i}`).toBeLessThan(tolerance);
  });
}

interface ConvCase {
  readonly name: string;
  readonly x: number[];
  readonly kernel: number;
  readonly out: number;
  readonly spec: ConvSpec;
}

const convCases: ConvCase[] = [
  { name: "7×7/2 pad 3 (stem), batch 1, odd height", x: [1, 13, 12, 3], kernel: 7, out: 4, spec: { stride: 2, pad: 3 } },
  { name: "3×3/1 pad 1, batch 3", x: [3, 5, 7, 4], kernel: 3, out: 5, spec: { stride: 1, pad: 1 } },
  { name: "3×3/2 pad 1, even size", x: [2, 8, 6, 3], kernel: 3, out: 6, spec: { stride: 2, pad: 1 } },
  { name: "3×3/2 pad 1, odd size, batch 1", x: [1, 7, 9, 5], kernel: 3, out: 2, spec: { stride: 2, pad: 1 } },
  { name: "1×1/2 downsample, even and odd", x: [3, 8, 7, 5], kernel: 1, out: 4, spec: { stride: 2, pad: 0 } },
  { name: "1×1/1", x: [2, 3, 4, 6], kernel: 1, out: 3, spec: { stride: 1, pad: 0 } },
  // ≥ DILATED_FILTER_GRAD_MIN_PIXELS output pixels: the filter gradient takes the dilated-conv form
  { name: "7×7/2 pad 3, 15×15 output", x: [1, 30, 29, 3], kernel: 7, out: 4, spec: { stride: 2, pad: 3 } },
  { name: "3×3/2 pad 1, 13×13 output, odd input", x: [2, 25, 26, 2], kernel: 3, out: 3, spec: { stride: 2, pad: 1 } },
  { name: "3×3/1 pad 1, 12×13 output", x: [1, 12, 13, 3], kernel: 3, out: 2, spec: { stride: 1, pad: 1 } },
  { name: "1×1/2, 13×13 output, odd input", x: [2, 25, 25, 3], kernel: 1, out: 2, spec: { stride: 2, pad: 0 } },
];

describe("conv2d", () => {
  it.each(convCases)("matches TF.js's conv2d and its gradients on cpu: $name", async ({ x, kernel, out, spec }) => {
    const w = [kernel, kernel, x[3], out];
    const inputs = [randomArray(size(x), 11), randomArray(size(w), 12)];
    const pad: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [spec.pad, spec.pad], [spec.pad, spec.pad], [0, 0]];
    const fast = valueAndGrads((a, b) => conv2d(a as tf.Tensor4D, b as tf.Tensor4D, spec), inputs, [x, w], 13);
    const reference = await onBackend("cpu", () =>
      valueAndGrads((a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, spec.stride, pad), inputs, [x, w], 13),
    );
    expect(reference[0].length).toBe(x[0] * convOutputSize(x[1], kernel, spec.stride, spec.pad) * convOutputSize(x[2], kernel, spec.stride, spec.pad) * out);
    expectClose(fast, reference, 1e-5);
    // every form of each gradient, whichever conv2d picked
    const oh = convOutputSize(x[1], kernel, spec.stride, spec.pad);
    const ow = convOutputSize(x[2], kernel, spec.stride, spec.pad);
    const dyValues = randomArray(x[0] * oh * ow * out, 13);
    for (const form of [convFilterGradIm2col, convFilterGradDilated]) {
      const dw = tf.tidy(() => {
        const xt = tf.tensor4d(inputs[0], x as [number, number, number, number]);
        return form(xt, tf.tensor4d(dyValues, [x[0], oh, ow, out]), w, spec).dataSync() as Float32Array;
      });
      expectClose([dw], [reference[2]], 1e-5);
    }
    const inputForms = [convInputGradUpsampled, ...(spec.stride > 1 ? [convInputGradPhases] : []), ...(kernel === 1 ? [convInputGradPointwise] : [])];
    for (const form of inputForms) {
      const dx = tf.tidy(() => {
        const wt = tf.tensor4d(inputs[1], w as [number, number, number, number]);
        return form(tf.tensor4d(dyValues, [x[0], oh, ow, out]), wt, x, spec).dataSync() as Float32Array;
      });
      expectClose([dx], [reference[1]], 1e-5);
    }
  });

  it("covers both forms of the filter gradient that conv2d chooses between", () => {
    const pixels = convCases.map(({ x, kernel, spec }) => convOutputSize(x[1], kernel, spec.stride, spec.pad) * convOutputSize(x[2], kernel, spec.stride, spec.pad));
    expect(pixels.filter((p) => p >= DILATED_FILTER_GRAD_MIN_PIXELS).length).toBe(4);
    expect(pixels.filter((p) => p < DILATED_FILTER_GRAD_MIN_PIXELS).length).toBe(6);
  });

  it("returns a zero input gradient when inputGrad is false, and the same filter gradient", () => {
    const x = [2, 9, 9, 3];
    const w = [7, 7, 3, 4];
    const inputs = [randomArray(size(x), 1), randomArray(size(w), 2)];
    const full = valueAndGrads((a, b) => conv2d(a as tf.Tensor4D, b as tf.Tensor4D, { stride: 2, pad: 3 }), inputs, [x, w], 3);
    const skip = valueAndGrads((a, b) => conv2d(a as tf.Tensor4D, b as tf.Tensor4D, { stride: 2, pad: 3, inputGrad: false }), inputs, [x, w], 3);
    expect(maxAbs(skip[1])).toBe(0);
    expect(maxAbs(full[1])).toBeGreaterThan(0.1);
    expect(maxAbsDiff(skip[2], full[2])).toBe(0);
  });

  it("refuses padding the flipped-filter trick cannot express", () => {
    const x = tf.zeros([1, 4, 4, 1]) as tf.Tensor4D;
    const w = tf.zeros([3, 3, 1, 1]) as tf.Tensor4D;
    expect(() => conv2d(x, w, { stride: 1, pad: 3 })).toThrow(/padding 3 is larger than the filter/);
    tf.dispose([x, w]);
  });
});

describe("helpers", () => {
  it("zeroUpsample puts stride − 1 zeros after every row and column", () => {
    const x = tf.tensor4d([1, 2, 3, 4, 5, 6], [1, 2, 3, 1]);
    const up = zeroUpsample(x, 2);
    expect(up.shape).toEqual([1, 4, 6, 1]);
    expect(Array.from(up.dataSync())).toEqual([1, 0, 2, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 5, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
    tf.dispose([x, up]);
  });

  it("im2col lists each receptive field in (channel, row, column) order, zero-padded", () => {
    // 1 image, 3×3, 2 channels: channel 0 holds 1..9, channel 1 holds 10..90
    const values = Array.from({ length: 9 }, (_, i) => [i + 1, 10 * (i + 1)]).flat();
    const x = tf.tensor4d(values, [1, 3, 3, 2]);
    const cols = im2col(x, 3, 3, { stride: 2, pad: 1 });
    expect(cols.shape).toEqual([1, 2, 2, 18]);
    const d = Array.from(cols.dataSync());
    // output pixel (0,0) sees rows −1..1, columns −1..1
    expect(d.slice(0, 18)).toEqual([0, 0, 0, 0, 1, 2, 0, 4, 5, 0, 0, 0, 0, 10, 20, 0, 40, 50]);
    // output pixel (1,1) sees rows 1..3, columns 1..3
    expect(d.slice(54, 72)).toEqual([5, 6, 0, 8, 9, 0, 0, 0, 0, 50, 60, 0, 80, 90, 0, 0, 0, 0]);
    tf.dispose([x, cols]);
  });

  it("flipFilter flips in space and swaps channels", () => {
    const w = tf.tensor4d(Array.from({ length: 2 * 3 * 2 * 1 }, (_, i) => i), [2, 3, 2, 1]);
    const f = flipFilter(w);
    expect(f.shape).toEqual([2, 3, 1, 2]);
    const a = w.arraySync();
    const b = f.arraySync();
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let c = 0; c < 2; c++) expect(b[i][j][0][c]).toBe(a[1 - i][2 - j][c][0]);
    tf.dispose([w, f]);
  });
});

describe("batchNormTrain", () => {
  it.each([
    { name: "batch 3, odd sizes", shape: [3, 5, 3, 4] },
    { name: "batch 1", shape: [1, 4, 4, 6] },
    { name: "1×1 spatial (the last stage at small inputs)", shape: [5, 1, 1, 3] },
  ])("matches autodiff of the textbook formula on cpu: $name", async ({ shape }) => {
    const c = shape[3];
    const inputs = [randomArray(size(shape), 21).map((v) => 3 * v + 0.5), randomArray(c, 22).map((v) => 1 + v), randomArray(c, 23)];
    const shapes = [shape, [c], [c]];
    const fast = valueAndGrads((x, g, b) => batchNormTrain(x as tf.Tensor4D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5).y, inputs, shapes, 24);
    const reference = await onBackend("cpu", () =>
      valueAndGrads(
        (x, g, b) => {
          const { mean, variance } = tf.moments(x, [0, 1, 2]);
          return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b);
        },
        inputs,
        shapes,
        24,
      ),
    );
    expectClose(fast, reference, 2e-5);
  });

  it("returns the batch mean and biased variance", () => {
    const x = tf.tensor4d([1, 10, 3, 20, 5, 60, 7, 10], [2, 2, 1, 2]);
    const g = tf.ones([2]) as tf.Tensor1D;
    const b = tf.zeros([2]) as tf.Tensor1D;
    const { y, mean, variance } = batchNormTrain(x, g, b, 0);
    expect(Array.from(mean.dataSync())).toEqual([4, 25]);
    expect(Array.from(variance.dataSync())).toEqual([5, 425]);
    expect(y.dataSync()[0]).toBeCloseTo(-3 / Math.sqrt(5), 5);
    tf.dispose([x, g, b, y, mean, variance]);
  });

  it("leaves no tensors behind in a gradient step", () => {
    const x = tf.tensor4d(randomArray(2 * 3 * 3 * 4, 5), [2, 3, 3, 4]);
    const g = tf.variable(tf.ones([4])) as tf.Variable<tf.Rank.R1>;
    const b = tf.variable(tf.zeros([4])) as tf.Variable<tf.Rank.R1>;
    const step = (): void => {
      const { grads, value } = tf.variableGrads(() => tf.tidy(() => tf.sum(tf.square(batchNormTrain(x, g, b, 1e-5).y)) as tf.Scalar));
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, g, b]);
  });
});

describe("withDerivedFilterCache", () => {
  it.each([
    { name: "3×3/1 pad 1", kernel: 3, spec: { stride: 1, pad: 1 } },
    { name: "3×3/2 pad 1", kernel: 3, spec: { stride: 2, pad: 1 } },
    { name: "1×1/2 (downsample)", kernel: 1, spec: { stride: 2, pad: 0 } },
  ])("two passes over one weight: the same gradients as without it, one derived filter, nothing left behind: $name", async ({ kernel, spec }) => {
    const xShape: [number, number, number, number] = [2, 7, 6, 5];
    const wShape: [number, number, number, number] = [kernel, kernel, 5, 4];
    const gradients = (): Float32Array[] =>
      tf.tidy(() => {
        const a = tf.tensor4d(randomArray(size(xShape), 51), xShape);
        const b = tf.tensor4d(randomArray(size(xShape), 52), xShape);
        const w = tf.variable(tf.tensor4d(randomArray(size(wShape), 53), wShape));
        // the batch and its rotated copy, as in a fine-tuning step: two forward passes, two input gradients
        const loss = (): tf.Scalar => tf.add(tf.sum(tf.square(conv2d(a, w, spec))), tf.sum(conv2d(tf.reverse(b, [1, 2]), w, spec))) as tf.Scalar;
        const { grads } = tf.variableGrads(loss, [w]);
        const ga = tf.grad((x: tf.Tensor) => tf.sum(tf.square(conv2d(x as tf.Tensor4D, w, spec))))(a);
        const out = [grads[w.name].dataSync() as Float32Array, ga.dataSync() as Float32Array];
        w.dispose();
        return out;
      });
    const plain = gradients();
    const before = tf.memory().numTensors;
    const cached = withDerivedFilterCache(gradients);
    expect(tf.memory().numTensors).toBe(before);
    expect(cached).toEqual(plain);
    // the filter is derived (a product with a permutation, or a transpose) once instead of once per pass
    const kernels = async (f: () => void): Promise<number> => (await tf.profile(f)).kernels.filter((k) => k.name === "BatchMatMul" || k.name === "Transpose").length;
    expect(await kernels(() => void withDerivedFilterCache(gradients))).toBeLessThan(await kernels(() => void gradients()));
  });
});

describe("maxPoolNonNegative", () => {
  it.each([
    { name: "3×3/2 pad 1, even size", shape: [2, 8, 10, 3] },
    { name: "3×3/2 pad 1, odd size, batch 1", shape: [1, 9, 7, 4] },
  ])("matches TF.js's max pool after a ReLU and its gradient on cpu: $name", async ({ shape }) => {
    const inputs = [randomArray(size(shape), 41)];
    const fast = valueAndGrads((x) => maxPoolNonNegative(tf.relu(x) as tf.Tensor4D, 3, 2, 1), inputs, [shape], 42);
    const reference = await onBackend("cpu", () =>
      valueAndGrads((x) => tf.maxPool(tf.pad(tf.relu(x), [[0, 0], [1, 1], [1, 1], [0, 0]]) as tf.Tensor4D, 3, 2, "valid"), inputs, [shape], 42),
    );
    expect(fast[0].length).toBe(shape[0] * convOutputSize(shape[1], 3, 2, 1) * convOutputSize(shape[2], 3, 2, 1) * shape[3]);
    expectClose(fast, reference, 1e-6);
  });

  it("gives exact zeros for windows of zeros (WASM's MaxPoolWithArgmax gives 1.18e-38, which slows the next convs 20–30×)", async () => {
    const shape = [2, 16, 16, 8];
    const inputs = [randomArray(size(shape), 43)];
    // Mostly zeros after the shifted ReLU, as on dark regions of real photos.
    const pooled = (x: tf.Tensor): tf.Tensor4D => maxPoolNonNegative(tf.relu(tf.sub(x, 0.7)) as tf.Tensor4D, 3, 2, 1);
    const fast = valueAndGrads(pooled, inputs, [shape], 44);
    const reference = await onBackend("cpu", () =>
      valueAndGrads((x) => tf.maxPool(tf.pad(tf.relu(tf.sub(x, 0.7)), [[0, 0], [1, 1], [1, 1], [0, 0]]) as tf.Tensor4D, 3, 2, "valid"), inputs, [shape], 44),
    );
    const zeros = reference[0].filter((v) => v === 0).length;
    expect(zeros).toBeGreaterThan(reference[0].length / 4);
    expect(fast[0]).toEqual(reference[0]); // exactly: no tiny non-zero values where the maximum is 0
    expectClose(fast, reference, 1e-6);
  });
});

describe("matMul", () => {
  it.each([
    { ta: false, tb: false, a: [5, 3], b: [3, 4] },
    { ta: true, tb: false, a: [3, 5], b: [3, 4] },
    { ta: false, tb: true, a: [1, 3], b: [4, 3] },
    { ta: true, tb: true, a: [3, 7], b: [2, 3] },
  ])("matches tf.matMul and its gradients on cpu (transposeA $ta, transposeB $tb)", async ({ ta, tb, a, b }) => {
    const inputs = [randomArray(size(a), 31), randomArray(size(b), 32)];
    const fast = valueAndGrads((x, y) => matMul(x as tf.Tensor2D, y as tf.Tensor2D, ta, tb), inputs, [a, b], 33);
    const reference = await onBackend("cpu", () => valueAndGrads((x, y) => tf.matMul(x, y, ta, tb), inputs, [a, b], 33));
    expectClose(fast, reference, 1e-5);
  });
});

describe("only where they are needed", () => {
  it("rewrites gradients on wasm and cpu, not on TensorFlow's C library (tfjs-node and tfjs-node-gpu register \"tensorflow\")", () => {
    expect(rewritesGradients("wasm", undefined)).toBe(true);
    expect(rewritesGradients("cpu", "auto")).toBe(true);
    expect(rewritesGradients("tensorflow", undefined)).toBe(false);
    expect(rewritesGradients("tensorflow", "always")).toBe(true);
    expect(rewritesGradients("wasm", "never")).toBe(false);
    expect(() => rewritesGradients("wasm", "sometimes")).toThrow(/CELEBA_SAE_GRADIENT_REWRITES="sometimes": use auto, always or never/);
  });

  it("without the rewrites each op is TF.js's own, with the same values and gradients", async () => {
    const x = [2, 9, 8, 3];
    const w = [3, 3, 3, 4];
    const inputs = [randomArray(size(x), 31).map((v) => Math.abs(v)), randomArray(size(w), 32), randomArray(4, 33).map((v) => 1 + v), randomArray(4, 34)];
    const shapes = [x, w, [4], [4]];
    const net = (a: tf.Tensor, f: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor => {
      const conv = conv2d(a as tf.Tensor4D, f as tf.Tensor4D, { stride: 2, pad: 1 });
      const bn = batchNormTrain(conv, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5);
      const pooled = maxPoolNonNegative(tf.relu(bn.y), 3, 2, 1);
      const flat = tf.reshape(pooled, [pooled.shape[0], -1]) as tf.Tensor2D;
      return matMul(flat, flat, false, true);
    };
    const previous = process.env[GRADIENT_REWRITES_ENV];
    try {
      const rewritten = await onBackend("cpu", () => {
        process.env[GRADIENT_REWRITES_ENV] = "always";
        return valueAndGrads(net, inputs, shapes, 35);
      });
      const plain = await onBackend("cpu", () => {
        process.env[GRADIENT_REWRITES_ENV] = "never";
        return valueAndGrads(net, inputs, shapes, 35);
      });
      expectClose(plain, rewritten, 1e-4);
    } finally {
      if (previous === undefined) delete process.env[GRADIENT_REWRITES_ENV];
      else process.env[GRADIENT_REWRITES_ENV] = previous;
    }
  });
});

describe("backend", () => {
  it("runs these tests on the project's default backend (wasm here)", () => {
    expect(["wasm", "tensorflow", "tensorflow-gpu", "cpu"]).toContain(backend);
    expect(tf.getBackend()).toBe(backend === "tensorflow-gpu" ? "tensorflow" : backend);
  });
});
