// The ONNX exporter: protobuf wire format (known bytes from protobuf's encoding guide, and a decode-back of our
// messages), and the exported ResNet18 run by onnxruntime-node equal to the TF.js eval path (`embedBatch`) to 1e-4,
// with non-trivial BatchNorm statistics, at batch 1 and 3, 64×64 and 45×45, both presets.

import { beforeAll, describe, expect, it } from "vitest";
import { initBackend, tf } from "../lib/kernels/backend";
import type { Preset } from "../lib/run/config";
import { embedBatch } from "../lib/embed/embed";
import type { ImageBatch } from "../lib/data/image-loader";
import { createOnnxEmbedder } from "../lib/embed/onnx-embed";
import { loadOnnxRuntime } from "../lib/kernels/onnxruntime";
import { convWindows, foldBatchNorm, resnet18OnnxGraph, resnet18ToOnnx, windowMatrix, windowProductsPay } from "../lib/model/onnx/export";
import {
  bytesField,
  encodeAttribute,
  encodeModel,
  encodeVarint,
  floatField,
  joinProto,
  message,
  stringField,
  varintField,
  type OnnxGraph,
} from "../lib/model/onnx/proto";
import { createResNet18, type ResNet18 } from "../lib/model/resnet18";
import { resnet18StateDictLayout } from "../lib/model/resnet18-layout";
import { maxAbs, maxAbsDiff } from "./numeric-helpers";

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

/** One decoded protobuf field: varints as bigint, fixed32 as its 4 bytes, length-delimited as bytes. */
interface Field {
  readonly field: number;
  readonly wire: number;
  readonly value: bigint | Uint8Array;
}

function readVarint(bytes: Uint8Array, at: number): [bigint, number] {
  let value = 0n;
  let shift = 0n;
  for (;;) {
    const b = bytes[at++];
    value |= BigInt(b & 0x7f) << shift;
    shift += 7n;
    if ((b & 0x80) === 0) return [value, at];
  }
}

function decode(bytes: Uint8Array): Field[] {
  const fields: Field[] = [];
  let at = 0;
  while (at < bytes.length) {
    const [key, next] = readVarint(bytes, at);
    at = next;
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      const [v, n] = readVarint(bytes, at);
      fields.push({ field, wire, value: v });
      at = n;
    } else if (wire === 2) {
      const [len, n] = readVarint(bytes, at);
      fields.push({ field, wire, value: bytes.subarray(n, n + Number(len)) });
      at = n + Number(len);
    } else if (wire === 5) {
      fields.push({ field, wire, value: bytes.subarray(at, at + 4) });
      at += 4;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  expect(at).toBe(bytes.length);
  return fields;
}

const all = (fields: Field[], n: number): Field[] => fields.filter((f) => f.field === n);
const one = (fields: Field[], n: number): Field => {
  const found = all(fields, n);
  expect(found, `exactly one field ${n}`).toHaveLength(1);
  return found[0];
};
const text = (f: Field): string => new TextDecoder().decode(f.value as Uint8Array);
const sub = (f: Field): Field[] => decode(f.value as Uint8Array);

describe("protobuf wire format", () => {
  it("writes varints as protobuf's encoding guide does, negatives as 10-byte two's complement", () => {
    expect(hex(encodeVarint(0))).toBe("00");
    expect(hex(encodeVarint(1))).toBe("01");
    expect(hex(encodeVarint(127))).toBe("7f");
    expect(hex(encodeVarint(150))).toBe("9601");
    expect(hex(encodeVarint(300))).toBe("ac02");
    expect(hex(encodeVarint(2 ** 40))).toBe("808080808020");
    expect(hex(encodeVarint(-1))).toBe("ffffffffffffffffff01");
    expect(() => encodeVarint(0.5)).toThrow(/not a safe integer/);
  });

  it("writes fields with their tags: varint, length-delimited string, fixed32 float, nested message", () => {
    expect(hex(joinProto(varintField(1, 150)))).toBe("089601"); // the guide's Test1 { a = 150 }
    expect(hex(joinProto(stringField(2, "testing")))).toBe("120774657374696e67"); // Test2 { b = "testing" }
    expect(hex(joinProto(bytesField(3, message([varintField(1, 150)]))))).toBe("1a03089601"); // Test3 { c.a = 150 }
    expect(hex(joinProto(floatField(2, 1.5)))).toBe("150000c03f");
  });

  it("writes AttributeProto with its type discriminator (20) beside f (2), i (3) or repeated ints (8)", () => {
    const ints = decode(joinProto(encodeAttribute("pads", { ints: [3, 3, 1, 1] })));
    expect(text(one(ints, 1))).toBe("pads");
    expect(one(ints, 20).value).toBe(7n);
    expect(all(ints, 8).map((f) => f.value)).toEqual([3n, 3n, 1n, 1n]);
    const int = decode(joinProto(encodeAttribute("axis", { int: 1 })));
    expect([one(int, 20).value, one(int, 3).value]).toEqual([2n, 1n]);
    const float = decode(joinProto(encodeAttribute("alpha", { float: 0.25 })));
    expect(one(float, 20).value).toBe(1n);
    expect(new DataView((one(float, 2).value as Uint8Array).slice().buffer).getFloat32(0, true)).toBe(0.25);
  });

  it("writes a ModelProto that decodes back: IR version, opset 13, graph with nodes, float initializers, symbolic batch", () => {
    const graph: OnnxGraph = {
      name: "g",
      nodes: [{ opType: "Add", name: "add0", inputs: ["x", "b"], outputs: ["y"] }],
      initializers: [{ name: "b", dims: [2], data: Float32Array.of(1, -2) }],
      inputs: [{ name: "x", dims: ["batch", 2] }],
      outputs: [{ name: "y", dims: ["batch", 2] }],
    };
    const model = decode(encodeModel(graph, { irVersion: 7, opsetVersion: 13, producerName: "celeba-sae", producerVersion: "1", metadata: { k: "v" } }));
    expect(one(model, 1).value).toBe(7n);
    expect(text(one(model, 2))).toBe("celeba-sae");
    const opset = sub(one(model, 8));
    expect([text(one(opset, 1)), one(opset, 2).value]).toEqual(["", 13n]);
    const meta = sub(one(model, 14));
    expect([text(one(meta, 1)), text(one(meta, 2))]).toEqual(["k", "v"]);
    const g = sub(one(model, 7));
    expect(text(one(g, 2))).toBe("g");
    const node = sub(one(g, 1));
    expect(all(node, 1).map(text)).toEqual(["x", "b"]);
    expect([text(one(node, 2)), text(one(node, 3)), text(one(node, 4))]).toEqual(["y", "add0", "Add"]);
    const init = sub(one(g, 5));
    expect([one(init, 1).value, one(init, 2).value, text(one(init, 8))]).toEqual([2n, 1n, "b"]);
    expect(hex(one(init, 9).value as Uint8Array)).toBe("0000803f000000c0"); // 1, −2 as little-endian float32
    const input = sub(one(g, 11));
    expect(text(one(input, 1))).toBe("x");
    const tensorType = sub(one(sub(one(input, 2)), 1));
    expect(one(tensorType, 1).value).toBe(1n); // FLOAT
    const dims = all(sub(one(tensorType, 2)), 1).map(sub);
    expect(text(one(dims[0], 2))).toBe("batch");
    expect(one(dims[1], 1).value).toBe(2n);
    expect(text(one(sub(one(g, 12)), 1))).toBe("y");
  });
});

describe("ResNet18 graph", () => {
  beforeAll(async () => {
    await initBackend();
  });

  it("folds BatchNorm into the conv: w·γ/√(var+eps), β − mean·γ/√(var+eps)", () => {
    // two output channels of two weights each; scales 4/√(3+1) = 2 and 3/√(8+1) = 1
    const { weight, bias } = foldBatchNorm(Float32Array.of(1, 2, 3, 4), {
      gamma: Float32Array.of(4, 3), beta: Float32Array.of(0.5, 0), mean: Float32Array.of(1, -1), variance: Float32Array.of(3, 8),
    }, 1);
    expect(Array.from(weight)).toEqual([2, 4, 3, 4]);
    expect(Array.from(bias)).toEqual([0.5 - 1 * 2, 0 + 1 * 1]);
  });

  it("has no BatchNorm node, 20 convs with folded biases, a symbolic batch, height and width, and 8·width outputs", () => {
    const model = createResNet18({ width: 4, seed: 1 });
    try {
      const graph = resnet18OnnxGraph(model, { normalize: null });
      const ops = graph.nodes.map((n) => n.opType);
      expect(ops).not.toContain("BatchNormalization");
      expect(ops.filter((o) => o === "Conv")).toHaveLength(20);
      expect(ops.slice(0, 4)).toEqual(["Transpose", "Conv", "Relu", "MaxPool"]);
      expect(ops.slice(-2)).toEqual(["GlobalAveragePool", "Flatten"]);
      expect(graph.initializers.filter((t) => t.name.endsWith(".bias"))).toHaveLength(20);
      expect(graph.inputs).toEqual([{ name: "images", dims: ["batch", "height", "width", 3] }]);
      expect(graph.outputs).toEqual([{ name: "embedding", dims: ["batch", 32] }]);
      expect(resnet18OnnxGraph(model, { normalize: { mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2] } }).nodes.slice(0, 3).map((n) => n.opType)).toEqual(["Sub", "Div", "Transpose"]);
    } finally {
      model.dispose();
    }
  });

  it("fixed to one image size: layer4's 3×3 convolutions (2×2 outputs at 64 px) become window products, the input size is fixed", () => {
    const model = createResNet18({ width: 4, seed: 1 });
    try {
      const at64 = resnet18OnnxGraph(model, { normalize: null, imageSize: { height: 64, width: 64 } });
      const ops = at64.nodes.map((n) => n.opType);
      // layer4.0.conv1 (stride 2 from a 4×4 map): one product per output pixel, each over the window it reads;
      // the stride-1 ones read the whole 2×2 map from every pixel: one product each; the 1×1 downsample stays
      expect(at64.nodes.filter((n) => n.opType === "Gemm").map((n) => n.inputs[1])).toEqual([
        ...[0, 1, 2, 3].map((q) => `layer4.0.conv1.window${q}.matrix`),
        "layer4.0.conv2.window0.matrix", "layer4.1.conv1.window0.matrix", "layer4.1.conv2.window0.matrix",
      ]);
      expect(ops.filter((o) => o === "Conv")).toHaveLength(16);
      expect(at64.inputs).toEqual([{ name: "images", dims: ["batch", 64, 64, 3] }]);
      // 224 px: layer4 works on 7×7 maps, all convolutions stay
      expect(resnet18OnnxGraph(model, { normalize: null, imageSize: { height: 224, width: 224 } }).nodes.filter((n) => n.opType === "Conv")).toHaveLength(20);
    } finally {
      model.dispose();
    }
  });

  it("runs a convolution as window products: each output pixel's window, and its matrix times the window equals the convolution", () => {
    const conv = { name: "c", kernel: 3, inChannels: 2, outChannels: 3, stride: 1, pad: 1 };
    expect(windowProductsPay(conv, 2, 2)).toBe(true);
    expect(windowProductsPay({ ...conv, stride: 2 }, 4, 4)).toBe(true);
    expect(windowProductsPay(conv, 3, 3)).toBe(false); // 9 output pixels
    expect(windowProductsPay({ ...conv, kernel: 1, pad: 0 }, 2, 2)).toBe(false);
    expect(convWindows({ ...conv, stride: 2 }, 4, 4).windows).toEqual([
      { top: 0, left: 0, height: 2, width: 2 }, { top: 0, left: 1, height: 2, width: 3 },
      { top: 1, left: 0, height: 3, width: 2 }, { top: 1, left: 1, height: 3, width: 3 },
    ]);
    for (const [stride, h, w] of [[1, 2, 2], [1, 3, 2], [2, 4, 3], [2, 5, 5]]) {
      const spec = { ...conv, stride };
      const weight = Float32Array.from({ length: 3 * 2 * 9 }, (_, i) => Math.sin(i + 1));
      const x = Float32Array.from({ length: 2 * h * w }, (_, i) => Math.cos(3 * i));
      const { windows, outHeight: oh, outWidth: ow } = convWindows(spec, h, w);
      expect([oh, ow]).toEqual([Math.floor((h - 1) / stride) + 1, Math.floor((w - 1) / stride) + 1]);
      windows.forEach((win, q) => {
        const i = Math.floor(q / ow);
        const j = q % ow;
        const matrix = windowMatrix(weight, spec, win, [{ i, j }]);
        expect(matrix).toHaveLength(2 * win.height * win.width * 3);
        for (let o = 0; o < 3; o++) {
          let direct = 0;
          for (let c = 0; c < 2; c++) {
            for (let a = 0; a < 3; a++) {
              for (let b = 0; b < 3; b++) {
                const y = i * stride + a - 1;
                const xx = j * stride + b - 1;
                if (y >= 0 && y < h && xx >= 0 && xx < w) direct += weight[((o * 2 + c) * 3 + a) * 3 + b] * x[(c * h + y) * w + xx];
              }
            }
          }
          let product = 0;
          for (let c = 0; c < 2; c++) {
            for (let y = 0; y < win.height; y++) {
              for (let xx = 0; xx < win.width; xx++) product += x[(c * h + win.top + y) * w + win.left + xx] * matrix[((c * win.height + y) * win.width + xx) * 3 + o];
            }
          }
          expect(product).toBeCloseTo(direct, 5);
        }
      });
    }
  });

  it("names a state_dict that is not a resnet18", () => {
    expect(() => resnet18ToOnnx(new Map(), { normalize: null })).toThrow(/no 4-D conv1\.weight/);
    const broken = new Map([["conv1.weight", { shape: [4, 3, 7, 7], data: new Float32Array(4 * 3 * 49) }]]);
    expect(() => resnet18ToOnnx(broken, { normalize: null })).toThrow(/state_dict has no bn1\.weight/);
  });
});

/** A model with random weights and non-trivial BatchNorm statistics (as after training), not the fresh 0/1 ones. */
function trainedLookingModel(width: number, seed: number): ResNet18 {
  const model = createResNet18({ width, seed });
  const state = model.stateDict();
  let k = 0;
  for (const e of resnet18StateDictLayout(width)) {
    const s = seed * 100 + ++k;
    const shape = [...e.shape];
    const random =
      e.kind === "bn-weight" ? tf.randomUniform(shape, 0.5, 1.5, "float32", s)
      : e.kind === "bn-bias" ? tf.randomNormal(shape, 0, 0.2, "float32", s)
      : e.kind === "bn-mean" ? tf.randomNormal(shape, 0, 0.3, "float32", s)
      : e.kind === "bn-var" ? tf.randomUniform(shape, 0.3, 3, "float32", s)
      : null;
    if (random !== null) {
      state.get(e.name)?.dispose();
      state.set(e.name, random);
    }
  }
  model.loadStateDict(state);
  for (const t of state.values()) t.dispose();
  return model;
}

function randomBatch(n: number, size: number, seed: number): ImageBatch {
  let s = seed;
  const data = Float32Array.from({ length: n * size * size * 3 }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  });
  return { indices: Int32Array.from({ length: n }, (_, i) => i), files: [], data, shape: [n, size, size, 3] };
}

const ort = loadOnnxRuntime();

describe.skipIf(ort.ok !== true)("the exported ResNet18 under onnxruntime-node", () => {
  const engine = ort.ok === true ? { ort: ort.ort, version: ort.version } : null;
  let model: ResNet18;
  beforeAll(async () => {
    await initBackend();
    model = trainedLookingModel(8, 5);
    return () => model.dispose();
  });

  const cases: [Preset, number, number][] = [
    ["post", 1, 64],
    ["post", 3, 45],
    ["recommended", 3, 64],
    ["recommended", 1, 45],
  ];
  it.each(cases)("equals embedBatch to 1e-4 (preset %s, batch %i, images %i px square)", async (preset, n, size) => {
    const batch = randomBatch(n, size, n * 1000 + size);
    const expected = embedBatch(model, batch, preset);
    const embedder = await createOnnxEmbedder(model, preset, engine!);
    try {
      const got = await embedder.embed(batch);
      expect(got).toHaveLength(n * 64);
      expect(maxAbs(expected)).toBeGreaterThan(0.1); // not all zeros
      expect(maxAbsDiff(got, expected)).toBeLessThan(1e-4);
    } finally {
      await embedder.close();
    }
  });

  it("at torchvision's width 64 too (batch 2, 64×64), one session for any batch size", async () => {
    const full = trainedLookingModel(64, 7);
    const embedder = await createOnnxEmbedder(full, "recommended", engine!);
    try {
      for (const n of [2, 1]) {
        const batch = randomBatch(n, 64, 42 + n);
        const got = await embedder.embed(batch);
        expect(got).toHaveLength(n * 512);
        expect(maxAbsDiff(got, embedBatch(full, batch, "recommended"))).toBeLessThan(1e-4);
      }
    } finally {
      await embedder.close();
      full.dispose();
    }
  });

  it("with the image size given: layer4 as window products equals embedBatch to 1e-4; another size gets its own session", async () => {
    const full = trainedLookingModel(64, 9);
    const embedder = await createOnnxEmbedder(full, "post", engine!, { imageSize: 64 });
    try {
      for (const [n, size] of [[3, 64], [2, 45], [1, 64]]) {
        const batch = randomBatch(n, size, 7 * n + size);
        const got = await embedder.embed(batch);
        expect(got).toHaveLength(n * 512);
        expect(maxAbsDiff(got, embedBatch(full, batch, "post"))).toBeLessThan(1e-4);
      }
    } finally {
      await embedder.close();
      full.dispose();
    }
  });

  it("leaves no TF.js tensor behind when exporting", () => {
    const before = tf.memory().numTensors;
    resnet18ToOnnx(model, { normalize: null });
    expect(tf.memory().numTensors).toBe(before);
  });
});
