// Our ResNet18 as an ONNX model, for onnxruntime (lib/embed/onnx-embed) or any other ONNX runtime.
//
// The graph computes exactly what `embedBatch` (lib/embed/embed) computes in TF.js eval mode, from the same input:
//
//   images [N, H, W, 3] float32 in [0, 1] (NHWC, as the image loader gives them)
//   → optional (x − mean) / std per channel (the `recommended` preset; `post` feeds pixels as they are)
//   → Transpose to NCHW → conv1 7×7/2 pad 3 (+ bn1 folded in) → Relu → MaxPool 3×3/2 pad 1
//   → 8 BasicBlocks (Conv+BN → Relu → Conv+BN, + shortcut (1×1/2 Conv+BN where shapes change), Relu)
//   → GlobalAveragePool → Flatten → embedding [N, 8·width]
//
// BatchNorm (eval: running statistics, eps BN_EPS) is folded into the convolution before it:
// w' = w·γ/√(var+eps), b' = β − mean·γ/√(var+eps), computed in float64 and stored as float32. ONNX's MaxPool pads
// with −∞ where TF.js pads with zeros; after the Relu every input is ≥ 0 and every 3×3/2 window with padding 1
// holds at least one real value, so both give the same maximum. The batch is symbolic; so are the height and width
// unless the graph is made for one image size (`imageSize`), where convolutions with at most 4 output pixels run
// as matrix products over the windows their pixels read (`windowProductsPay`).
//
// The ONNX messages themselves are written by lib/model/onnx/proto (no protobuf library).

import { convOutputSize } from "../../kernels/fast-gradients";
import type { ResNet18 } from "../resnet18";
import { BN_EPS, resnet18Layout, type ConvLayout } from "../resnet18-layout";
import { encodeModel, GraphBuilder, type OnnxAttribute, type OnnxGraph } from "./proto";

// ---------------------------------------------------------------------------------------------------------------
// ResNet18 → ONNX

/** A state_dict entry as plain data (PyTorch layout: OIHW for conv weights). */
export interface PlainTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface ResNet18OnnxOptions {
  /** Per-channel input normalisation (x − mean) / std inside the graph; null: the pixels go in as they are. */
  readonly normalize: { readonly mean: readonly number[]; readonly std: readonly number[] } | null;
  /** Name of the NHWC image input (default "images") and of the embedding output (default "embedding"). */
  readonly inputName?: string;
  readonly outputName?: string;
  /** Extra ModelProto metadata_props (e.g. the run and the preset). */
  readonly metadata?: Readonly<Record<string, string>>;
  /**
   * The one image size the graph will see. Given it, the input's height and width are fixed, and convolutions
   * with at most 4 output pixels (layer4 at 64 px) become plain matrix products over the windows their pixels
   * read (see `windowProductsPay`). Without it the graph takes any size.
   */
  readonly imageSize?: { readonly height: number; readonly width: number };
}

export const ONNX_IR_VERSION = 7;
export const ONNX_OPSET = 13;

function isModel(source: ResNet18 | ReadonlyMap<string, PlainTensor>): source is ResNet18 {
  return typeof (source as ResNet18).stateDict === "function";
}

/** The state_dict of a model (or a plain one) as float32 arrays by torchvision name. */
export function plainStateDict(source: ResNet18 | ReadonlyMap<string, PlainTensor>): ReadonlyMap<string, PlainTensor> {
  if (!isModel(source)) return source;
  const state = source.stateDict();
  try {
    const plain = new Map<string, PlainTensor>();
    for (const [name, t] of state) if (t.dtype === "float32") plain.set(name, { shape: t.shape, data: (t.dataSync() as Float32Array).slice() });
    return plain;
  } finally {
    for (const t of state.values()) t.dispose();
  }
}

function entry(state: ReadonlyMap<string, PlainTensor>, name: string, shape: readonly number[]): Float32Array {
  const t = state.get(name);
  if (t === undefined) throw new Error(`resnet18ToOnnx: the state_dict has no ${name}`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`resnet18ToOnnx: ${name} has shape [${t.shape.join(", ")}], expected [${shape.join(", ")}]`);
  }
  return t.data;
}

/** A convolution's OIHW weight and bias with the BatchNorm after it folded in (eval mode). */
export function foldBatchNorm(
  weight: Float32Array,
  bn: { readonly gamma: Float32Array; readonly beta: Float32Array; readonly mean: Float32Array; readonly variance: Float32Array },
  eps: number = BN_EPS,
): { weight: Float32Array; bias: Float32Array } {
  const out = bn.gamma.length;
  const per = weight.length / out;
  const folded = new Float32Array(weight.length);
  const bias = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    const scale = bn.gamma[o] / Math.sqrt(bn.variance[o] + eps);
    for (let k = 0; k < per; k++) folded[o * per + k] = weight[o * per + k] * scale;
    bias[o] = bn.beta[o] - bn.mean[o] * scale;
  }
  return { weight: folded, bias };
}

/** A value of the graph and, when the image size is fixed, its feature map's height and width. */
interface MapValue {
  readonly name: string;
  readonly size: MapSize | null;
}

function convBn(g: GraphBuilder, state: ReadonlyMap<string, PlainTensor>, input: MapValue, conv: ConvLayout, bnName: string): MapValue {
  const shape = [conv.outChannels, conv.inChannels, conv.kernel, conv.kernel];
  const c = [conv.outChannels];
  const { weight, bias } = foldBatchNorm(entry(state, `${conv.name}.weight`, shape), {
    gamma: entry(state, `${bnName}.weight`, c),
    beta: entry(state, `${bnName}.bias`, c),
    mean: entry(state, `${bnName}.running_mean`, c),
    variance: entry(state, `${bnName}.running_var`, c),
  });
  const size = sizeAfter(input.size, conv.kernel, conv.stride, conv.pad);
  if (input.size !== null && windowProductsPay(conv, input.size.height, input.size.width)) {
    return { name: convAsWindowProducts(g, input.name, conv, weight, bias, input.size.height, input.size.width), size };
  }
  const w = g.constant(`${conv.name}.weight`, shape, weight);
  const b = g.constant(`${conv.name}.bias`, c, bias);
  const name = g.add("Conv", [input.name, w, b], {
    kernel_shape: { ints: [conv.kernel, conv.kernel] },
    strides: { ints: [conv.stride, conv.stride] },
    pads: { ints: [conv.pad, conv.pad, conv.pad, conv.pad] },
    dilations: { ints: [1, 1] },
    group: { int: 1 },
  });
  return { name, size };
}

/** A feature map's height and width. */
export interface MapSize {
  readonly height: number;
  readonly width: number;
}

/** A feature map's size after a window (conv or pool) of this kernel, stride and padding. */
export function mapSizeAfter(size: MapSize, kernel: number, stride: number, pad: number): MapSize {
  return { height: convOutputSize(size.height, kernel, stride, pad), width: convOutputSize(size.width, kernel, stride, pad) };
}

/** mapSizeAfter for a size that may not be fixed (null). */
function sizeAfter(size: MapSize | null, kernel: number, stride: number, pad: number): MapSize | null {
  return size === null ? null : mapSizeAfter(size, kernel, stride, pad);
}

/** An op that keeps the feature map's size (Relu, Add). */
function mapOp(g: GraphBuilder, op: string, inputs: readonly MapValue[], attributes?: Readonly<Record<string, OnnxAttribute>>): MapValue {
  return { name: g.add(op, inputs.map((v) => v.name), attributes), size: inputs[0].size };
}

/** The part of the input map an output pixel reads: rows top…top+height−1, columns left…left+width−1. */
export interface ConvWindow {
  readonly top: number;
  readonly left: number;
  readonly height: number;
  readonly width: number;
}

/** Output pixels up to which a convolution runs as matrix products over each pixel's window (see windowProductsPay). */
const WINDOW_PRODUCT_MAX_PIXELS = 4;

/**
 * Whether a convolution is better run as plain matrix products, one per output pixel over the input window it
 * reads, [n, cin·window] × [cin·window, cout] (pixels reading the same window share one product): when the output
 * has at most 4 pixels (layer4 at 64 px). Those products skip the padding taps (a 3×3 conv with padding 1 on a 2×2
 * map reads 4 of its 9 taps) and run near ONNX Runtime's GEMM peak, where its convolution of such tiny maps does
 * not (bench/results.md).
 */
export function windowProductsPay(conv: ConvLayout, height: number, width: number): boolean {
  const pixels = convOutputSize(height, conv.kernel, conv.stride, conv.pad) * convOutputSize(width, conv.kernel, conv.stride, conv.pad);
  return conv.kernel > 1 && pixels <= WINDOW_PRODUCT_MAX_PIXELS;
}

/** The window each output pixel of the convolution reads on an h×w map, in row-major pixel order. */
export function convWindows(conv: ConvLayout, height: number, width: number): { windows: ConvWindow[]; outHeight: number; outWidth: number } {
  const { kernel: k, stride: s, pad: p } = conv;
  const outHeight = convOutputSize(height, k, s, p);
  const outWidth = convOutputSize(width, k, s, p);
  const span = (start: number, size: number): [number, number] => [Math.max(start, 0), Math.min(start + k, size) - Math.max(start, 0)];
  const windows: ConvWindow[] = [];
  for (let i = 0; i < outHeight; i++) {
    for (let j = 0; j < outWidth; j++) {
      const [top, h] = span(i * s - p, height);
      const [left, w] = span(j * s - p, width);
      windows.push({ top, left, height: h, width: w });
    }
  }
  return { windows, outHeight, outWidth };
}

/**
 * The convolution (weight [cout, cin, k, k]) at the given output pixels, all reading `window`, as the matrix
 * [cin·wh·ww, cout·pixels] (rows in NCHW's (c, y, x) order within the window, columns (o, pixel)):
 * M[(c,y,x), (o,q)] = weight[o, c, top + y − i_q·s + p, left + x − j_q·s + p] where that tap exists, else 0.
 */
export function windowMatrix(weight: Float32Array, conv: ConvLayout, window: ConvWindow, pixels: readonly { readonly i: number; readonly j: number }[]): Float32Array {
  const { kernel: k, stride: s, pad: p, inChannels: ci, outChannels: co } = conv;
  const cols = co * pixels.length;
  const matrix = new Float32Array(ci * window.height * window.width * cols);
  pixels.forEach(({ i, j }, q) => {
    for (let y = 0; y < window.height; y++) {
      const a = window.top + y - i * s + p;
      if (a < 0 || a >= k) continue;
      for (let x = 0; x < window.width; x++) {
        const b = window.left + x - j * s + p;
        if (b < 0 || b >= k) continue;
        for (let c = 0; c < ci; c++) {
          const row = (c * window.height + y) * window.width + x;
          for (let o = 0; o < co; o++) matrix[row * cols + o * pixels.length + q] = weight[((o * ci + c) * k + a) * k + b];
        }
      }
    }
  });
  return matrix;
}

/**
 * The convolution (BatchNorm folded) on a tiny map as window products (see windowProductsPay): one Gemm when every
 * output pixel reads the same window (the whole map, for stride 1), else one per pixel, put back in NCHW order.
 */
function convAsWindowProducts(g: GraphBuilder, input: string, conv: ConvLayout, weight: Float32Array, bias: Float32Array, height: number, width: number): string {
  const { windows, outHeight, outWidth } = convWindows(conv, height, width);
  const co = conv.outChannels;
  const pixels = windows.map((_, q) => ({ i: Math.floor(q / outWidth), j: q % outWidth }));
  const same = windows.every((w) => w.top === windows[0].top && w.left === windows[0].left && w.height === windows[0].height && w.width === windows[0].width);
  const groups = same ? [{ window: windows[0], pixels }] : windows.map((window, q) => ({ window, pixels: [pixels[q]] }));
  const products = groups.map(({ window, pixels: ps }, n) => {
    const whole = window.top === 0 && window.left === 0 && window.height === height && window.width === width;
    const region = whole
      ? input
      : g.add("Slice", [
          input,
          g.int64Constant(`${conv.name}.window${n}.starts`, [window.top, window.left]),
          g.int64Constant(`${conv.name}.window${n}.ends`, [window.top + window.height, window.left + window.width]),
          g.int64Constant(`${conv.name}.window${n}.axes`, [2, 3]),
        ]);
    const rows = conv.inChannels * window.height * window.width;
    const flat = g.add("Reshape", [region, g.int64Constant(`${conv.name}.window${n}.flat`, [-1, rows])]);
    const groupBias = new Float32Array(co * ps.length);
    for (let o = 0; o < co; o++) groupBias.fill(bias[o], o * ps.length, (o + 1) * ps.length);
    const matrix = g.constant(`${conv.name}.window${n}.matrix`, [rows, co * ps.length], windowMatrix(weight, conv, window, ps));
    return g.add("Gemm", [flat, matrix, g.constant(`${conv.name}.window${n}.bias`, [co * ps.length], groupBias)]);
  });
  const mapShape = g.int64Constant(`${conv.name}.map_shape`, [-1, co, outHeight, outWidth]);
  if (same) return g.add("Reshape", [products[0], mapShape]); // columns (o, pixel) are NCHW's order
  // one product per pixel: [n, pixels·cout] in (pixel, o) order → (o, pixel)
  const byPixel = g.add("Reshape", [g.add("Concat", products, { axis: { int: 1 } }), g.int64Constant(`${conv.name}.by_pixel`, [-1, windows.length, co])]);
  return g.add("Reshape", [g.add("Transpose", [byPixel], { perm: { ints: [0, 2, 1] } }), mapShape]);
}

/** The ONNX graph of a ResNet18 (eval mode, BatchNorm folded); the width comes from conv1.weight. */
export function resnet18OnnxGraph(source: ResNet18 | ReadonlyMap<string, PlainTensor>, options: ResNet18OnnxOptions): OnnxGraph {
  const state = plainStateDict(source);
  const stem = state.get("conv1.weight");
  if (stem === undefined || stem.shape.length !== 4) throw new Error("resnet18ToOnnx: no 4-D conv1.weight, so this is not a torchvision resnet18 state_dict");
  const width = stem.shape[0];
  const layout = resnet18Layout(width);
  const inputName = options.inputName ?? "images";
  const outputName = options.outputName ?? "embedding";
  const g = new GraphBuilder();

  let x = inputName;
  if (options.normalize !== null) {
    const { mean, std } = options.normalize;
    if (mean.length !== 3 || std.length !== 3) throw new RangeError("resnet18ToOnnx: normalize needs 3 means and 3 standard deviations");
    x = g.add("Sub", [x, g.constant("input_mean", [3], Float32Array.from(mean))]);
    x = g.add("Div", [x, g.constant("input_std", [3], Float32Array.from(std))]);
  }
  const image: MapValue = { name: g.add("Transpose", [x], { perm: { ints: [0, 3, 1, 2] } }), size: options.imageSize ?? null };
  const stemOut = mapOp(g, "Relu", [convBn(g, state, image, layout.stem, layout.stemBn)]);
  let map: MapValue = {
    name: g.add("MaxPool", [stemOut.name], { kernel_shape: { ints: [3, 3] }, strides: { ints: [2, 2] }, pads: { ints: [1, 1, 1, 1] } }),
    size: sizeAfter(stemOut.size, 3, 2, 1),
  };
  for (const block of layout.blocks) {
    const out = mapOp(g, "Relu", [convBn(g, state, map, block.conv1, block.bn1)]);
    const main = convBn(g, state, out, block.conv2, block.bn2);
    const shortcut = block.downsample === undefined ? map : convBn(g, state, map, block.downsample.conv, block.downsample.bn);
    map = mapOp(g, "Relu", [mapOp(g, "Add", [main, shortcut])]);
  }
  g.add("Flatten", [g.add("GlobalAveragePool", [map.name])], { axis: { int: 1 } }, outputName);

  return {
    name: "resnet18_embedding",
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [{ name: inputName, dims: ["batch", options.imageSize?.height ?? "height", options.imageSize?.width ?? "width", 3] }],
    outputs: [{ name: outputName, dims: ["batch", 8 * width] }],
  };
}

/**
 * The model as ONNX bytes (a `.onnx` file): NHWC float32 images in [0, 1] → [N, 8·width] embeddings, equal to
 * `embedBatch` (TF.js, eval mode) with the same normalisation.
 */
export function resnet18ToOnnx(source: ResNet18 | ReadonlyMap<string, PlainTensor>, options: ResNet18OnnxOptions): Uint8Array {
  const graph = resnet18OnnxGraph(source, options);
  const normalisation = options.normalize === null ? "none: pixels in [0, 1] as they are" : `(x - [${options.normalize.mean.join(", ")}]) / [${options.normalize.std.join(", ")}]`;
  return encodeModel(graph, {
    irVersion: ONNX_IR_VERSION,
    opsetVersion: ONNX_OPSET,
    producerName: "celeba-sae",
    producerVersion: "1",
    docString:
      `torchvision's ResNet18 with fc = identity, eval mode, BatchNorm folded into the convolutions. ` +
      `Input "${graph.inputs[0].name}": [batch, height, width, 3] float32 RGB in [0, 1] (NHWC). Normalisation inside the graph: ${normalisation}. ` +
      `Output "${graph.outputs[0].name}": [batch, ${graph.outputs[0].dims[1]}] float32.`,
    metadata: { input_layout: "NHWC", input_range: "0..1", normalization: normalisation, ...(options.metadata ?? {}) },
  });
}
