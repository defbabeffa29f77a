// Decoded images to size×size values in [0, 1] (float32, or uint8 as the image cache keeps them), the post's way or
// a better way.
//
// Resize modes
//   post         The post's `T.Compose([T.ToTensor(), T.Resize((224, 224))])`: the image becomes a float tensor in
//                [0, 1] first, then `Resize` on a tensor calls `F.interpolate(mode="bilinear", align_corners=False,
//                antialias=False)` (torchvision < 0.17 defaulted `antialias=None`, which means False for tensors —
//                the warning printed in the post). That stretches to size×size ignoring the aspect ratio and, when
//                shrinking, samples just the 2×2 nearest pixels, so it aliases. sharp has no such non-antialiased
//                kernel, so the image is only decoded (to RGB uint8 at its own size — byte-identical to PIL on
//                CelebA's JPEGs: lib/kernels/turbojpeg's TurboJPEG where it loads, else sharp, all libjpeg-turbo) and
//                `resizeBilinearTorch` below applies torch's formula (in lib/kernels/resize-kernel's WebAssembly SIMD).
//                Against PIL's decode plus torchvision's own transforms (torch 1.13) it differs by at most 1.2e-7
//                (one float32 step) on real CelebA faces at 224, 100 and 64 px; test/image-loader.test.ts checks it
//                against PyTorch's output (test/fixtures/resize) and against the formula written out independently.
//                sharp's own "linear" kernel (different pixel-centre convention, antialiased when shrinking) is up to
//                0.24 away (mean 0.011) on the same faces, hence not used.
//   recommended  Centre-crop to a square (torchvision `CenterCrop` offsets), then resize with sharp's antialiased
//                Lanczos-3 kernel: faces keep their proportions and downscaling does not alias.
// Both: values in [0, 1] (RGB at the image's own size comes from lib/data/image-decode).

import { resizeKernel } from "../kernels/resize-kernel";
import { checkResizeOptions, decodeRecommended, decodeRgb, type ResizeOptions, type RgbImage } from "./image-decode";

interface AxisTable {
  readonly i0: Int32Array;
  readonly i1: Int32Array;
  readonly w0: Float32Array;
  readonly w1: Float32Array;
  /** Source indices some output uses, ascending (the rows the horizontal pass must compute). */
  readonly used: Int32Array;
  /** i0 and i1 as byte offsets of RGB float32 pixels (× 12): the column tables the resize kernel reads. */
  readonly bytes0: Int32Array;
  readonly bytes1: Int32Array;
}

/**
 * Source pixels and weights along one axis as torch 1.13's `F.interpolate(mode="bilinear", align_corners=False)`
 * computes them (measured against it, see test/fixtures/resize): `scale = in / out` in float32, then
 * `src = max(scale · (dst + 0.5) − 0.5, 0)` and `λ = src − floor(src)` in float64, λ rounded to float32 and
 * `1 − λ` in float32; neighbours `floor(src)` and the next one (clamped at the edge).
 */
function axisTable(inSize: number, outSize: number): AxisTable {
  const scale = Math.fround(inSize / outSize);
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w0 = new Float32Array(outSize);
  const w1 = new Float32Array(outSize);
  const isUsed = new Uint8Array(inSize);
  for (let d = 0; d < outSize; d++) {
    const src = Math.max(scale * (d + 0.5) - 0.5, 0);
    const lo = Math.min(Math.floor(src), inSize - 1);
    const lambda = Math.fround(Math.min(Math.max(src - lo, 0), 1));
    i0[d] = lo;
    i1[d] = lo < inSize - 1 ? lo + 1 : lo;
    w1[d] = lambda;
    w0[d] = Math.fround(1 - lambda);
    isUsed[i0[d]] = isUsed[i1[d]] = 1;
  }
  const used = Int32Array.from(isUsed.keys()).filter((i) => isUsed[i] === 1);
  return { i0, i1, w0, w1, used, bytes0: i0.map((i) => i * 12), bytes1: i1.map((i) => i * 12) };
}

const axisTables = new Map<string, AxisTable>();
function cachedAxisTable(inSize: number, outSize: number): AxisTable {
  const key = `${inSize}>${outSize}`;
  let table = axisTables.get(key);
  if (!table) {
    if (axisTables.size > 64) axisTables.clear();
    table = axisTable(inSize, outSize);
    axisTables.set(key, table);
  }
  return table;
}

const align16 = (bytes: number): number => (bytes + 15) & ~15;

/**
 * torchvision's `ToTensor()` then tensor `Resize((outH, outW))` with `antialias=False` (bilinear,
 * `align_corners=False`) of an RGB uint8 image, into `out` from `offset`: each byte divided by `divisor` (255 gives
 * the post's [0, 1] floats, 1 keeps 0–255), then `h0·(w0·a + w1·b) + h1·(w0·c + w1·d)` in float32 in torch's order
 * (within one float32 step of torch, 1.2e-7), the inner sums being a horizontal pass over each source row some
 * output row uses, computed once and shared by the output rows using it.
 * The passes run in lib/kernels/resize-kernel's WebAssembly SIMD module, whose memory holds (16-byte aligned) the column
 * tables, the image's bytes and floats, the horizontal rows and the output.
 */
export function resizeBilinearTorch(image: RgbImage, outH: number, outW: number, out: Float32Array, offset = 0, divisor = 255): void {
  const { data, width, height } = image;
  if (data.length !== width * height * 3) throw new RangeError(`an RGB image of ${width}×${height} needs ${width * height * 3} values, got ${data.length}`);
  const rows = cachedAxisTable(height, outH);
  const cols = cachedAxisTable(width, outW);
  const kernel = resizeKernel();
  const table = align16(outW * 4);
  const rowBytes = outW * 12;
  const padded = align16(data.length + 16); // unit converts 16 bytes at a time, hrow reads a float past a row's end
  const [off0, off1, w0, w1, src] = [0, table, 2 * table, 3 * table, 4 * table];
  const floats = src + padded;
  const horizontal = floats + 4 * padded;
  const output = horizontal + align16(height * rowBytes + 4); // hrow writes one float past a row's last pixel
  kernel.reserve(output + outH * rowBytes);
  const memory = kernel.memory.buffer;
  new Int32Array(memory, off0, outW).set(cols.bytes0);
  new Int32Array(memory, off1, outW).set(cols.bytes1);
  new Float32Array(memory, w0, outW).set(cols.w0);
  new Float32Array(memory, w1, outW).set(cols.w1);
  new Uint8Array(memory, src, data.length).set(data);
  const sourceRow = align16(width * 3);
  for (const sy of rows.used) {
    kernel.unit(src + sy * width * 3, floats + sy * width * 12, sourceRow, divisor);
    kernel.hrow(floats + sy * width * 12, horizontal + sy * rowBytes, outW, off0, off1, w0, w1);
  }
  for (let y = 0; y < outH; y++) {
    kernel.vrow(horizontal + rows.i0[y] * rowBytes, horizontal + rows.i1[y] * rowBytes, output + y * rowBytes, outW * 3, rows.w0[y], rows.w1[y]);
  }
  out.set(new Float32Array(memory, output, outH * outW * 3), offset);
}

let uint8Scratch = new Float32Array(0);

/** `resizeBilinearTorch` with the result (0–255) rounded to uint8, as the cache stores it. */
export function resizeBilinearTorchUint8(image: RgbImage, outH: number, outW: number, out: Uint8Array, offset = 0): void {
  const n = outH * outW * 3;
  if (uint8Scratch.length < n) uint8Scratch = new Float32Array(n);
  resizeBilinearTorch(image, outH, outW, uint8Scratch, 0, 1);
  // Values are in [0, 255]; storing x + 0.5 into a Uint8Array truncates, i.e. rounds half up like Math.round.
  for (let i = 0; i < n; i++) out[offset + i] = uint8Scratch[i] + 0.5;
}

/** `value / 255` as float32 for every byte value: converting by table is exact and faster than dividing. */
const UNIT_FLOAT = Float32Array.from({ length: 256 }, (_, i) => i / 255);

/** Writes `bytes[i] / 255` into `out` from `offset`. */
export function bytesToUnitFloat(bytes: Uint8Array, out: Float32Array, offset = 0): void {
  for (let i = 0; i < bytes.length; i++) out[offset + i] = UNIT_FLOAT[bytes[i]];
}

/** Decodes and resizes one image into `out` (float32 in [0, 1]) starting at `offset` (`blocking`: see decodeRgb). */
export async function decodeInto(file: string, options: ResizeOptions, out: Float32Array, offset = 0, blocking = false): Promise<void> {
  if (options.mode === "post") resizeBilinearTorch(await decodeRgb(file, blocking), options.size, options.size, out, offset);
  else bytesToUnitFloat((await decodeRecommended(file, options.size)).data, out, offset);
}

/** Decodes and resizes one image to uint8 (0–255), as the cache stores it. */
export async function decodeUint8(file: string, options: ResizeOptions, blocking = false): Promise<Uint8Array> {
  const { size, mode } = options;
  if (mode === "recommended") return (await decodeRecommended(file, size)).data;
  const out = new Uint8Array(size * size * 3);
  resizeBilinearTorchUint8(await decodeRgb(file, blocking), size, size, out);
  return out;
}

/** One image as float32 HWC in [0, 1], `shape = [size, size, 3]`. */
export async function decodeImage(file: string, options: ResizeOptions): Promise<{ data: Float32Array; shape: [number, number, number] }> {
  checkResizeOptions(options);
  const data = new Float32Array(options.size * options.size * 3);
  await decodeInto(file, options, data);
  return { data, shape: [options.size, options.size, 3] };
}
