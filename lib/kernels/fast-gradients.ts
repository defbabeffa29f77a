// Convolution, BatchNorm and matrix product with gradients written as FORWARD ops (tf.customGrad). For y = conv(x, w)
// with output gradient dy they compute dx = conv_transpose(dy, w) and dw = correlate(x, dy); for BatchNorm over the
// batch, y = γ·x̂ + β with x̂ = (x − μ)/σ, the closed form dx = γσ⁻¹·(dy − mean(dy) − x̂·mean(dy·x̂)),
// dγ = Σ dy·x̂, dβ = Σ dy; for z = a·b, da = dz·bᵀ and db = aᵀ·dz.
//
// Why: tfjs-backend-wasm has no Conv2DBackpropFilter kernel at all, and its Conv2DBackpropInput, transposed MatMul
// and BatchNorm-gradient paths are slow (bench/results.md has the numbers). XNNPACK's forward convolution and
// non-transposed matrix product are fast, so every backward pass here is re-expressed with them:
//   • input gradient of a conv  = forward conv of the output gradient with the filter flipped in space (a
//     permutation matMul: WASM's Reverse is slow) and transposed in/out (the "full" correlation); for stride s > 1,
//     one such conv per s×s phase of the input with the taps that reach it, interleaved by depthToSpace (instead of
//     convolving an s²-times larger zero-upsampled gradient);
//   • filter gradient of a conv = for large images, one forward conv of the input (batch and channels swapped) with
//     the output gradient as a filter dilated by the stride; for small ones, im2col of the input (one depthwise conv
//     with one-hot filters) times the output gradient as one plain matMul;
//   • matMul gradients          = plain matMuls of explicitly transposed operands;
//   • BatchNorm (batch statistics) = one per-channel multiply-add forward, and its closed-form gradient as another.
//   • 3×3 stride-1 convolutions (the forward value and the input gradient) run by Winograd F(2×2, 3×3) on WASM where
//     it is faster (lib/kernels/winograd), with the filter transformed once per weight and step.
// The rewrites serve only the backends that need them (`rewritesGradients`: wasm and cpu); on TensorFlow's C library
// (tfjs-node, tfjs-node-gpu) each op is the plain TF.js op with TF.js's own gradient.
// Each op is checked against TF.js's own gradients on the cpu backend in test/fast-gradients.test.ts.
// Layouts are TF.js's: NHWC activations, HWIO filters. Padding is PyTorch's (symmetric, explicit).

import { tf } from "./backend";
import { useWinograd, winogradConv3x3, winogradFilter, type WinogradFilter } from "./winograd";

/** A 2-D convolution as PyTorch's Conv2d(bias=False) computes it: square stride, symmetric zero padding. */
export interface ConvSpec {
  readonly stride: number;
  readonly pad: number;
  /** false: the gradient with respect to the input is not needed (e.g. the stem conv on images) and is returned as zeros. */
  readonly inputGrad?: boolean;
}

/** Output size along one axis of a conv or pool, PyTorch's floor rule. */
export function convOutputSize(size: number, kernel: number, stride: number, pad: number): number {
  return Math.floor((size + 2 * pad - kernel) / stride) + 1;
}

/** What a custom op's forward gives: its value and the function from its output gradient to its inputs' gradients. */
interface CustomOpResult<T extends tf.Tensor> {
  readonly value: T;
  readonly gradFunc: (dy: T, saved: tf.Tensor[]) => tf.Tensor[];
}

/** tf.customGrad with typed inputs: `forward(inputs, save)` gets the op's tensors and the save function. */
function customOp<T extends tf.Tensor>(
  forward: (inputs: readonly tf.Tensor[], save: tf.GradSaveFunc) => CustomOpResult<T>,
): (...inputs: tf.Tensor[]) => T {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    return forward(args.slice(0, -1) as tf.Tensor[], save);
  });
  return (...inputs: tf.Tensor[]) => op(...inputs) as T;
}

/** Pads (positive amounts) or crops (negative amounts) the two spatial axes of an NHWC tensor. */
function padOrCrop(x: tf.Tensor4D, top: number, bottom: number, left: number, right: number): tf.Tensor4D {
  let y = x;
  if (top > 0 || bottom > 0 || left > 0 || right > 0) {
    y = tf.pad(y, [[0, 0], [Math.max(top, 0), Math.max(bottom, 0)], [Math.max(left, 0), Math.max(right, 0)], [0, 0]]);
  }
  if (top < 0 || bottom < 0 || left < 0 || right < 0) {
    const [n, h, w, c] = y.shape;
    const t = Math.max(-top, 0);
    const l = Math.max(-left, 0);
    y = tf.slice(y, [0, t, l, 0], [n, h - t - Math.max(-bottom, 0), w - l - Math.max(-right, 0), c]);
  }
  return y;
}

/** Inserts stride−1 zeros after every row and column of an NHWC tensor: [n,h,w,c] → [n,h·s,w·s,c]. */
export function zeroUpsample(x: tf.Tensor4D, stride: number): tf.Tensor4D {
  if (stride === 1) return x;
  const [n, h, w, c] = x.shape;
  const spread = tf.pad(tf.reshape(x, [n, h, 1, w, 1, c]), [[0, 0], [0, 0], [0, stride - 1], [0, 0], [0, stride - 1], [0, 0]]);
  return tf.reshape(spread, [n, h * stride, w * stride, c]);
}

/** Constant tensors made once per backend and shape (one-hot im2col filters, flip permutations). */
const constants = new Map<string, tf.Tensor>();

function constant<T extends tf.Tensor>(key: string, make: () => T): T {
  const full = `${tf.getBackend()}:${key}`;
  let t = constants.get(full);
  if (t === undefined || t.isDisposed) {
    t = tf.keep(tf.tidy(make));
    constants.set(full, t);
  }
  return t as T;
}

/**
 * Filters derived from a weight for its input gradient (flipped and transposed, or one phase's taps) and its
 * Winograd forms, kept for the length of `withDerivedFilterCache`, by the weight's data and what was derived.
 */
let derivedFilters: Map<object, Map<string, tf.Tensor4D | WinogradFilter>> | null = null;

/**
 * Runs `fn` computing each derived filter once per weight and freeing them all at the end. In a training step the
 * same weight serves several forward passes (the batch and its rotated copy, the chunks of a large batch): with the
 * cache their input gradients share one derived filter, which XNNPACK also packs only once — packing a 3×3×512×512
 * filter can cost more than the convolution it serves (layer4's, on small images).
 */
export function withDerivedFilterCache<T>(fn: () => T): T {
  const outer = derivedFilters;
  const cache = new Map<object, Map<string, tf.Tensor4D | WinogradFilter>>();
  derivedFilters = cache;
  try {
    return fn();
  } finally {
    derivedFilters = outer;
    for (const byKind of cache.values()) for (const t of byKind.values()) t.dispose();
  }
}

/**
 * `make()`, from the cache when `withDerivedFilterCache` is running (the result must not be disposed then). `weight`
 * names the weight it derives from: the data of the tensor the forward pass used (the copy that tf.customGrad saves
 * for the gradient has data of its own each time).
 */
function derivedFilter(weight: object, kind: string, make: () => tf.Tensor4D): tf.Tensor4D {
  return derived(weight, kind, make);
}

/** The Winograd form of `filter()` (see derivedFilter). */
function derivedWinograd(weight: object, kind: string, filter: () => tf.Tensor4D): WinogradFilter {
  return derived(weight, `winograd:${kind}`, () => winogradFilter(filter()));
}

const tensorsOf = (d: tf.Tensor4D | WinogradFilter): readonly tf.Tensor[] => (d instanceof tf.Tensor ? [d] : d.u);

/** derivedFilter's cache, for anything derived (a kind always derives the same type). */
function derived<T extends tf.Tensor4D | WinogradFilter>(weight: object, kind: string, make: () => T): T {
  if (derivedFilters === null) return make();
  let byKind = derivedFilters.get(weight);
  if (byKind === undefined) {
    byKind = new Map();
    derivedFilters.set(weight, byKind);
  }
  const known = byKind.get(kind);
  if (known !== undefined && tensorsOf(known).every((t) => !t.isDisposed)) return known as T;
  // tf.tidy keeps the tensors of what `make` returns (also inside an object such as a WinogradFilter), frees the rest
  const made = tf.tidy(() => make() as unknown as tf.TensorContainer) as unknown as T;
  tensorsOf(made).forEach((t) => tf.keep(t));
  byKind.set(kind, made);
  return made;
}

/** [k, k] matrix reversing the order of k rows (k = kh·kw: flips a filter in space). */
function reversal(k: number): tf.Tensor2D {
  return constant(`reversal:${k}`, () => tf.reverse(tf.eye(k), [0]) as tf.Tensor2D);
}

/** The filter flipped in space and with in/out channels swapped: [kh,kw,ci,co] → [kh,kw,co,ci]. */
export function flipFilter(filter: tf.Tensor4D): tf.Tensor4D {
  const [kh, kw, ci, co] = filter.shape;
  // A [k,k] permutation matrix times the filter as [kh·kw, ci·co] rows: one fast matMul instead of WASM's slow Reverse.
  const flipped = kh * kw === 1 ? filter : tf.reshape(tf.matMul(reversal(kh * kw), tf.reshape(filter, [kh * kw, ci * co])), [kh, kw, ci, co]);
  return tf.transpose(flipped, [0, 1, 3, 2]) as tf.Tensor4D;
}

/**
 * Gradient of conv2d with respect to its input, as one forward conv over the zero-upsampled output gradient
 * (the textbook form; for stride > 1 it multiplies s² times more zeros than needed: see convInputGradPhases).
 */
export function convInputGradUpsampled(dy: tf.Tensor4D, filter: tf.Tensor4D, inputShape: readonly number[], spec: ConvSpec, weight: object = filter.dataId): tf.Tensor4D {
  const [kh, kw] = filter.shape;
  const [, h, w] = inputShape;
  const s = spec.stride;
  // The upsampled gradient is [oh·s, ow·s]: the last s−1 rows/columns are zeros beyond the (oh−1)·s+1 that matter.
  const up = zeroUpsample(dy, s);
  const top = kh - 1 - spec.pad;
  const left = kw - 1 - spec.pad;
  const bottom = h + kh - 1 - (dy.shape[1] - 1) * s - 1 - top - (s - 1);
  const right = w + kw - 1 - (dy.shape[2] - 1) * s - 1 - left - (s - 1);
  const flipped = (): tf.Tensor4D => derivedFilter(weight, "flipped", () => flipFilter(filter));
  // stride 1, 3×3, padding 1: a 3×3 convolution with padding 1 again
  if (s === 1 && useWinograd(dy.shape, [kh, kw, filter.shape[3], filter.shape[2]], 1, spec.pad)) {
    return winogradConv3x3(dy, derivedWinograd(weight, "flipped", flipped));
  }
  if (top >= 0 && left >= 0 && bottom >= 0 && right >= 0) {
    return tf.conv2d(up, flipped(), 1, [[0, 0], [top, bottom], [left, right], [0, 0]]);
  }
  return tf.conv2d(padOrCrop(up, top, bottom, left, right), flipped(), 1, "valid");
}

/** Along one axis, output phase c (input rows y = s·m + c) uses filter taps `taps` (already flipped) on dy[m + shift − t]. */
interface Phase {
  readonly taps: readonly number[];
  readonly shift: number;
}

function phasesOf(kernel: number, stride: number, pad: number): Phase[] {
  return Array.from({ length: stride }, (_, c) => {
    const first = (c + pad) % stride;
    const taps: number[] = [];
    for (let a = first; a < kernel; a += stride) taps.unshift(a);
    return { taps, shift: Math.floor((c + pad) / stride) };
  });
}

/** [th·tw, kh·kw] matrix picking the taps of one phase out of a filter laid out as [kh·kw, ci·co] rows. */
function tapSelection(rows: readonly number[], cols: readonly number[], kh: number, kw: number): tf.Tensor2D {
  return constant(`taps:${kh}x${kw}:${rows.join(",")}:${cols.join(",")}`, () => {
    const m = new Float32Array(rows.length * cols.length * kh * kw);
    rows.forEach((a, u) => cols.forEach((b, v) => (m[(u * cols.length + v) * kh * kw + a * kw + b] = 1)));
    return tf.tensor2d(m, [rows.length * cols.length, kh * kw]);
  });
}

/**
 * Gradient of conv2d with respect to its input for stride s > 1 without the zeros: the input rows and columns
 * fall into s×s phases (y mod s); each phase is one small forward conv of dy with the filter taps that reach it,
 * and depthToSpace interleaves the phases. Same result as convInputGradUpsampled with s² fewer multiplications.
 */
export function convInputGradPhases(dy: tf.Tensor4D, filter: tf.Tensor4D, inputShape: readonly number[], spec: ConvSpec, weight: object = filter.dataId): tf.Tensor4D {
  const [kh, kw, ci, co] = filter.shape;
  const [n, oh, ow] = dy.shape;
  const [, h, w] = inputShape;
  const s = spec.stride;
  const rowsOut = Math.ceil(h / s);
  const colsOut = Math.ceil(w / s);
  const parts: tf.Tensor4D[] = [];
  for (const ph of phasesOf(kh, s, spec.pad)) {
    for (const pw of phasesOf(kw, s, spec.pad)) {
      const th = ph.taps.length;
      const tw = pw.taps.length;
      if (th === 0 || tw === 0) {
        parts.push(tf.zeros([n, rowsOut, colsOut, ci]));
        continue;
      }
      const sub = derivedFilter(weight, `phase:${s}:${spec.pad}:${ph.taps.join(",")}:${pw.taps.join(",")}`, () => {
        const flat = tf.reshape(filter, [kh * kw, ci * co]);
        const taps = tf.reshape(tf.matMul(tapSelection(ph.taps, pw.taps, kh, kw), flat), [th, tw, ci, co]);
        return tf.transpose(taps, [0, 1, 3, 2]) as tf.Tensor4D;
      });
      const top = th - 1 - ph.shift;
      const left = tw - 1 - pw.shift;
      const bottom = rowsOut - oh - top + th - 1;
      const right = colsOut - ow - left + tw - 1;
      parts.push(
        top >= 0 && left >= 0 && bottom >= 0 && right >= 0
          ? tf.conv2d(dy, sub, 1, [[0, 0], [top, bottom], [left, right], [0, 0]])
          : tf.conv2d(padOrCrop(dy, top, bottom, left, right), sub, 1, "valid"),
      );
    }
  }
  const interleaved = tf.depthToSpace(tf.concat(parts, 3) as tf.Tensor4D, s);
  return rowsOut * s === h && colsOut * s === w ? interleaved : (tf.slice(interleaved, [0, 0, 0, 0], [n, h, w, ci]) as tf.Tensor4D);
}

/** Gradient of a 1×1 conv without padding (ResNet's downsample) with respect to its input: the product, then spread. */
export function convInputGradPointwise(dy: tf.Tensor4D, filter: tf.Tensor4D, inputShape: readonly number[], spec: ConvSpec, weight: object = filter.dataId): tf.Tensor4D {
  const [, h, w] = inputShape;
  const [, oh, ow] = dy.shape;
  const s = spec.stride;
  const transposed = derivedFilter(weight, "transposed", () => tf.transpose(filter, [0, 1, 3, 2]) as tf.Tensor4D);
  const small = tf.conv2d(dy, transposed, 1, "valid");
  return padOrCrop(zeroUpsample(small, s), 0, h - oh * s, 0, w - ow * s);
}

/**
 * Gradient of conv2d with respect to its input, by forward convs only (see the top of the file), the fastest form.
 * `weight` identifies the weight for `withDerivedFilterCache` (default: the filter's own data).
 */
export function convInputGrad(dy: tf.Tensor4D, filter: tf.Tensor4D, inputShape: readonly number[], spec: ConvSpec, weight: object = filter.dataId): tf.Tensor4D {
  if (spec.stride === 1) return convInputGradUpsampled(dy, filter, inputShape, spec, weight);
  const [kh, kw] = filter.shape;
  if (kh === 1 && kw === 1 && spec.pad === 0) return convInputGradPointwise(dy, filter, inputShape, spec, weight);
  return convInputGradPhases(dy, filter, inputShape, spec, weight);
}

/** The one-hot depthwise filter whose output channel c·kh·kw + a·kw + b copies input channel c at offset (a, b). */
function im2colFilter(kh: number, kw: number, channels: number): tf.Tensor4D {
  return constant(`im2col:${kh}x${kw}x${channels}`, () => {
    const k = kh * kw;
    const eye = tf.reshape(tf.eye(k), [kh, kw, 1, k]);
    return tf.tile(eye, [1, 1, channels, 1]) as tf.Tensor4D;
  });
}

/**
 * im2col: [n,h,w,ci] → [n,oh,ow,ci·kh·kw], each output pixel's receptive field in (ci, kh, kw) order, made by one
 * depthwise conv with one-hot filters (far faster on WASM than strided slices and a concat).
 */
export function im2col(x: tf.Tensor4D, kh: number, kw: number, spec: ConvSpec): tf.Tensor4D {
  if (kh === 1 && kw === 1 && spec.stride === 1) return x;
  const p = spec.pad;
  return tf.depthwiseConv2d(x, im2colFilter(kh, kw, x.shape[3]), spec.stride, [[0, 0], [p, p], [p, p], [0, 0]]);
}

/** Output pixels per image from which the filter gradient is a dilated conv rather than im2col + matMul (the faster in bench). */
export const DILATED_FILTER_GRAD_MIN_PIXELS = 144;

/** Filter gradient as im2col of the input times the output gradient: one plain matMul (best for small images). */
export function convFilterGradIm2col(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: readonly number[], spec: ConvSpec): tf.Tensor4D {
  const [kh, kw, ci, co] = filterShape;
  const [n, oh, ow] = dy.shape;
  const rows = n * oh * ow;
  const patches = tf.reshape(im2col(x, kh, kw, spec), [rows, ci * kh * kw]);
  const dyT = tf.transpose(tf.reshape(dy, [rows, co]));
  const gradOIHW = tf.reshape(tf.matMul(dyT, patches), [co, ci, kh, kw]);
  return tf.transpose(gradOIHW, [2, 3, 1, 0]) as tf.Tensor4D;
}

/**
 * Filter gradient as one forward conv (best for large images): the input with batch and channels swapped,
 * [ci,h,w,n], correlated with the output gradient as a filter [oh,ow,n,co] dilated by the stride → [ci,kh,kw,co].
 */
export function convFilterGradDilated(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: readonly number[], spec: ConvSpec): tf.Tensor4D {
  const [kh, kw, ci, co] = filterShape;
  const [, h, w] = x.shape;
  const [, oh, ow] = dy.shape;
  const { stride: s, pad: p } = spec;
  const swapped = tf.transpose(x, [3, 1, 2, 0]) as tf.Tensor4D;
  const filter = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D;
  const out = tf.conv2d(swapped, filter, 1, [[0, 0], [p, p], [p, p], [0, 0]], "NHWC", s);
  // Rows beyond kh appear when the last input rows fall outside every window (they are not part of the gradient).
  const outH = h + 2 * p - (oh - 1) * s;
  const outW = w + 2 * p - (ow - 1) * s;
  const cut = outH === kh && outW === kw ? out : tf.slice(out, [0, 0, 0, 0], [ci, kh, kw, co]);
  return tf.transpose(cut, [1, 2, 0, 3]) as tf.Tensor4D;
}

/** Gradient of conv2d with respect to its filter, by whichever of the two forms is faster for the image size. */
export function convFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: readonly number[], spec: ConvSpec): tf.Tensor4D {
  const pixels = dy.shape[1] * dy.shape[2];
  return pixels >= DILATED_FILTER_GRAD_MIN_PIXELS ? convFilterGradDilated(x, dy, filterShape, spec) : convFilterGradIm2col(x, dy, filterShape, spec);
}

/** Forces the rewrites on or off ("always", "never"); "auto" (the default) decides by backend (tests use it). */
export const GRADIENT_REWRITES_ENV = "CELEBA_SAE_GRADIENT_REWRITES";

/**
 * Whether the ops below use the rewritten gradients: on the backends that need them — tfjs-backend-wasm (missing and
 * slow gradient kernels) and the plain-JS cpu backend — and not on TensorFlow's C library (tfjs-node, tfjs-node-gpu),
 * whose own gradient kernels are fast (and, on a GPU, far faster than any rewrite). Elsewhere each op is the plain
 * TF.js op with TF.js's own gradient.
 */
export function rewritesGradients(backend: string = tf.getBackend(), env: string | undefined = process.env[GRADIENT_REWRITES_ENV]): boolean {
  if (env === "always") return true;
  if (env === "never") return false;
  if (env !== undefined && env !== "" && env !== "auto") throw new Error(`${GRADIENT_REWRITES_ENV}="${env}": use auto, always or never`);
  return backend === "wasm" || backend === "cpu";
}

/** conv2d (NHWC input, HWIO filter, no bias) with both gradients computed by fast forward kernels. */
export function conv2d(x: tf.Tensor4D, filter: tf.Tensor4D, spec: ConvSpec): tf.Tensor4D {
  const [kh, kw] = filter.shape;
  if (spec.pad > kh - 1 || spec.pad > kw - 1) {
    throw new RangeError(`conv2d: padding ${spec.pad} is larger than the filter (${kh}×${kw}) minus one; not supported`);
  }
  if (!rewritesGradients()) return tf.conv2d(x, filter, spec.stride, [[0, 0], [spec.pad, spec.pad], [spec.pad, spec.pad], [0, 0]]);
  const op = customOp<tf.Tensor4D>(([input, w], save) => {
    const x4 = input as tf.Tensor4D;
    const w4 = w as tf.Tensor4D;
    save([x4, w4]);
    const weight = w4.dataId;
    const value = useWinograd(x4.shape, w4.shape, spec.stride, spec.pad)
      ? winogradConv3x3(x4, derivedWinograd(weight, "forward", () => w4))
      : tf.conv2d(x4, w4, spec.stride, [[0, 0], [spec.pad, spec.pad], [spec.pad, spec.pad], [0, 0]]);
    const gradFunc = (dy4: tf.Tensor4D, saved: tf.Tensor[]): tf.Tensor[] => {
      const [sx, sw] = saved as tf.Tensor4D[];
      const dx = spec.inputGrad === false ? tf.zerosLike(sx) : convInputGrad(dy4, sw, sx.shape, spec, weight);
      return [dx, convFilterGrad(sx, dy4, sw.shape, spec)];
    };
    return { value, gradFunc };
  });
  return op(x, filter);
}

/**
 * PyTorch's MaxPool2d(kernel, stride, padding) for inputs ≥ 0 (after a ReLU, as in ResNet's stem), with a gradient
 * that scatters dy to each window's argmax (MaxPoolWithArgmax + ScatterNd, faster than WASM's MaxPoolGrad).
 * Zero padding equals PyTorch's −∞ padding for such inputs; where a window's maximum is tied (only zeros in
 * practice) the gradient may go to a different tied position than PyTorch's, which the preceding ReLU zeroes anyway.
 *
 * The value comes from MaxPool, not from MaxPoolWithArgmax: tfjs-backend-wasm's MaxPoolWithArgmax starts each
 * window's maximum at FLT_MIN (1.18e-38, the smallest normal float) instead of −∞, so a window of zeros — common
 * after a ReLU on dark or smooth regions of real photos — gives 1.18e-38, not 0. The convolutions after it then
 * multiply such values by weights below 1, producing subnormal floats, which the CPU handles many times slower (WASM
 * cannot flush them to zero): on real faces a training step took more than twice as long. Its argmax
 * indexes are right (they point at a zero of the window), so the gradient still uses them.
 */
export function maxPoolNonNegative(x: tf.Tensor4D, kernel: number, stride: number, pad: number): tf.Tensor4D {
  const padded = pad > 0 ? (tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) as tf.Tensor4D) : x;
  if (!rewritesGradients()) return tf.maxPool(padded, kernel, stride, "valid");
  const op = customOp<tf.Tensor4D>(([input], save) => {
    const xp = input as tf.Tensor4D;
    save([xp]);
    const gradFunc = (dy: tf.Tensor4D, saved: tf.Tensor[]): tf.Tensor[] => {
      const { result, indexes } = tf.maxPoolWithArgmax(saved[0] as tf.Tensor4D, kernel, stride, "valid", true);
      result.dispose();
      const flat = tf.scatterND(tf.reshape(indexes, [-1, 1]), tf.reshape(dy, [-1]), [xp.size]);
      return [tf.reshape(flat, xp.shape)];
    };
    return { value: tf.maxPool(xp, kernel, stride, "valid"), gradFunc };
  });
  return op(padded);
}

/**
 * Per-channel sums of an NHWC tensor over n, h, w: each image's average pool over its whole h×w (XNNPACK), times
 * h·w, summed over n. Much faster than a [1, m] × [m, c] product with ones (XNNPACK repacks the m × c operand on
 * every call, as it is new every step) and closer to the exact sum (~3e-7 of it at 32×32×32×64, against ~8e-6).
 */
export function channelSums(x: tf.Tensor): tf.Tensor1D {
  if (x.rank !== 4) throw new RangeError(`channelSums: an NHWC tensor is needed, got shape [${x.shape.join(", ")}]`);
  const [n, h, w, c] = x.shape;
  const means = tf.reshape(tf.avgPool(x as tf.Tensor4D, [h, w], 1, "valid"), [n, c]);
  return tf.mul(n === 1 ? tf.reshape(means, [c]) : tf.sum(means, 0), h * w) as tf.Tensor1D;
}

/** What a BatchNorm with batch statistics gives: the output and the statistics it used. */
export interface BatchNormResult {
  readonly y: tf.Tensor4D;
  /** Per-channel batch mean. */
  readonly mean: tf.Tensor1D;
  /** Per-channel biased batch variance (what normalises; PyTorch's running_var takes the unbiased one). */
  readonly variance: tf.Tensor1D;
}

/**
 * BatchNorm over n, h, w with the batch's own statistics (PyTorch's training mode), gradients with respect to x,
 * gamma and beta in closed form:  dx = γ·σ⁻¹·(dy − mean(dy) − x̂·mean(dy·x̂)),  dγ = Σ dy·x̂,  dβ = Σ dy.
 */
export function batchNormTrain(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): BatchNormResult {
  if (!rewritesGradients()) {
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    return { y: tf.batchNorm(x, mean, variance, beta, gamma, eps) as tf.Tensor4D, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
  }
  let stats: { mean: tf.Tensor1D; variance: tf.Tensor1D } | undefined;
  const op = customOp<tf.Tensor4D>(([x4, g, b], save) => {
    const input = x4 as tf.Tensor4D;
    const count = input.size / input.shape[3];
    const mean = tf.div(channelSums(input), count) as tf.Tensor1D;
    const centred = tf.sub(input, mean);
    const variance = tf.div(channelSums(tf.square(centred)), count) as tf.Tensor1D;
    const invStd = tf.rsqrt(tf.add(variance, eps)) as tf.Tensor1D;
    const scale = tf.mul(g, invStd);
    const value = tf.add(tf.mul(centred, scale), b) as tf.Tensor4D;
    // The forward pass runs inside a tidy of the engine: keep the statistics past it (re-tracked below).
    stats = { mean: tf.keep(mean), variance: tf.keep(variance) };
    save([input, g, mean, invStd]);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
      const [sx, sg, sMean, sInvStd] = saved;
      const m = sx.size / (sx as tf.Tensor4D).shape[3];
      const sumDy = channelSums(dy);
      // Σ dy·x̂ = σ⁻¹·(Σ dy·x − μ·Σ dy)
      const sumDyXhat = tf.mul(tf.sub(channelSums(tf.mul(dy, sx)), tf.mul(sMean, sumDy)), sInvStd);
      const a = tf.mul(sg, sInvStd); // γσ⁻¹
      const bx = tf.mul(tf.mul(a, sInvStd), tf.div(sumDyXhat, -m)); // coefficient of x
      const c = tf.sub(tf.div(tf.mul(a, sumDy), -m), tf.mul(bx, sMean)); // constant term
      const dx = tf.add(tf.add(tf.mul(dy, a), tf.mul(sx, bx)), c);
      return [dx, sumDyXhat, sumDy];
    };
    return { value, gradFunc };
  });
  const y = op(x, gamma, beta);
  if (stats === undefined) throw new Error("batchNormTrain: the forward pass did not run");
  // Clones share the data and belong to the caller's scope; the kept originals are released.
  const mean = tf.clone(stats.mean);
  const variance = tf.clone(stats.variance);
  stats.mean.dispose();
  stats.variance.dispose();
  return { y, mean, variance };
}

/** a·b for 2-D a [m,k], b [k,n], with transposes done explicitly (transposed products are slow on WASM). */
export function matMul(a: tf.Tensor2D, b: tf.Tensor2D, transposeA = false, transposeB = false): tf.Tensor2D {
  if (!rewritesGradients()) return tf.matMul(a, b, transposeA, transposeB);
  const op = customOp<tf.Tensor2D>(([x, y], save) => {
    const left = (transposeA ? tf.transpose(x) : x) as tf.Tensor2D;
    const right = (transposeB ? tf.transpose(y) : y) as tf.Tensor2D;
    save([left, right]);
    const value = tf.matMul(left, right) as tf.Tensor2D;
    const gradFunc = (d: tf.Tensor2D, saved: tf.Tensor[]): tf.Tensor[] => {
      const [l, r] = saved as tf.Tensor2D[];
      const dLeft = tf.matMul(d, tf.transpose(r)); // [m,k]
      const dRight = tf.matMul(tf.transpose(l), d); // [k,n]
      return [transposeA ? tf.transpose(dLeft) : dLeft, transposeB ? tf.transpose(dRight) : dRight];
    };
    return { value, gradFunc };
  });
  return op(a, b);
}
