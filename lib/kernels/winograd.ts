// 3×3, stride-1, padding-1 convolutions by Winograd's F(2×2, 3×3) algorithm, for inference on the WASM backend:
// y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A for every 4×4 input window d and its 2×2 output block (the matrices are in
// lib/kernels/winograd-kernel), the products summed over input channels. Tested against the direct convolution in
// test/winograd.test.ts.
//
// XNNPACK's direct convolution is already near the WASM SIMD ceiling. Winograd computes each 2×2
// block of outputs from a 4×4 window with 16 multiplications per channel pair instead of 36: the convolution becomes
// 16 independent matrix products [tiles, cin] × [cin, cout] (XNNPACK's fully-connected kernel, multi-threaded),
// 2.25× fewer multiply-adds, between two cheap linear transforms of the data (lib/kernels/winograd-kernel, run in place on
// the backend's memory). The filter transform U = G g Gᵀ runs in the same module. Results differ from
// the direct convolution by rounding only (a few float32 steps: the transforms add and subtract up to 16 values).
//
// No gradient of its own: lib/model/resnet18 uses it in eval mode and lib/kernels/fast-gradients for the forward value and the
// input gradient of 3×3 convolutions (their gradients stay the direct formulas). CELEBA_SAE_WINOGRAD=never turns it off,
// =always uses it for every eligible convolution (tests), and the default uses it where it measured faster.

import { tf } from "./backend";
import type { WasmMemory } from "./wasm-assembler";
import { winogradKernel } from "./winograd-kernel";

export const WINOGRAD_ENV = "CELEBA_SAE_WINOGRAD";

/** A 3×3 filter transformed for Winograd: U_k = (G g Gᵀ)_{ij}, k = 4i + j, each [cin, cout]. */
export interface WinogradFilter {
  readonly u: readonly tf.Tensor2D[];
  readonly inChannels: number;
  readonly outChannels: number;
  dispose(): void;
}

/** tfjs-backend-wasm's view of its memory (the parts used here). */
interface WasmBackendInternals {
  readonly wasm: { readonly wasmMemory: WasmMemory };
  getMemoryOffset(dataId: object): number;
  makeOutput(shape: number[], dtype: "float32" | "int32"): { dataId: object; shape: number[]; dtype: "float32" | "int32" };
}

function wasmBackend(): WasmBackendInternals | null {
  if (tf.getBackend() !== "wasm") return null;
  const backend = tf.backend() as unknown as Partial<WasmBackendInternals>;
  if (backend.wasm?.wasmMemory === undefined || typeof backend.makeOutput !== "function" || typeof backend.getMemoryOffset !== "function") return null;
  return backend as WasmBackendInternals;
}

/** Transforms an HWIO [3, 3, cin, cout] filter (on the wasm backend; cin·cout a multiple of 4). */
export function winogradFilter(filter: tf.Tensor4D): WinogradFilter {
  const [kh, kw, cin, cout] = filter.shape;
  if (kh !== 3 || kw !== 3) throw new RangeError(`winogradFilter: expected a 3×3 filter, got ${kh}×${kw}`);
  if ((cin * cout) % 4 !== 0) throw new RangeError(`winogradFilter: channels must be multiples of 4, got ${cin} → ${cout}`);
  const backend = requireWasm("winogradFilter");
  const u = Array.from({ length: 16 }, () => newTensor<tf.Tensor2D>(backend, [cin, cout]));
  const table = pointerTable(backend, u);
  winogradKernel(backend.wasm.wasmMemory).filter(backend.getMemoryOffset(filter.dataId), backend.getMemoryOffset(table.dataId), cin * cout);
  table.dispose();
  return { u, inChannels: cin, outChannels: cout, dispose: () => tf.dispose(u) };
}

function requireWasm(what: string): WasmBackendInternals {
  const backend = wasmBackend();
  if (backend === null) throw new Error(`${what}: needs the wasm backend (check winogradAvailable first)`);
  return backend;
}

/** Whether winogradConv3x3 can run here with these channel counts (the WASM backend; channels in fours). */
export function winogradAvailable(inChannels: number, outChannels: number): boolean {
  return inChannels % 4 === 0 && outChannels % 4 === 0 && wasmBackend() !== null;
}

/**
 * Whether Winograd is the faster way for a convolution of `tiles` 2×2 output blocks (n·⌈h/2⌉·⌈w/2⌉) with these
 * channels: it beat XNNPACK's direct convolution for every ResNet18 layer at 64 and 224 px (tiles·cin·cout from
 * 2²⁴ up; bench/results.md); on tiny ones (under ~2²² multiply-adds per transformed position) the 16 matrix
 * products' fixed costs lose.
 */
export function winogradPays(tiles: number, inChannels: number, outChannels: number): boolean {
  const mode = (process.env[WINOGRAD_ENV] ?? "auto").trim().toLowerCase();
  if (mode === "never") return false;
  if (mode === "always") return true;
  if (mode !== "auto" && mode !== "") throw new Error(`${WINOGRAD_ENV}=${mode}: expected auto, always or never`);
  return tiles * inChannels * outChannels >= 2 ** 22;
}

/** Whether a convolution of an NHWC input with an HWIO filter should run by winogradConv3x3: 3×3, stride 1,
 *  padding 1, available here, and faster (winogradPays). */
export function useWinograd(inputShape: readonly number[], filterShape: readonly number[], stride: number, pad: number): boolean {
  const [n, h, w] = inputShape;
  const [kh, kw, cin, cout] = filterShape;
  if (kh !== 3 || kw !== 3 || stride !== 1 || pad !== 1 || !winogradAvailable(cin, cout)) return false;
  return winogradPays(n * Math.ceil(h / 2) * Math.ceil(w / 2), cin, cout);
}

export interface WinogradOptions {
  /** Added to every output channel ([cout]); none when left out. */
  readonly bias?: tf.Tensor1D;
  /** Added to the output before the ReLU (a residual connection), same shape as the output. */
  readonly residual?: tf.Tensor4D;
  /** max(·, 0) at the end (default: no). */
  readonly relu?: boolean;
}

/** Writes the heap offsets of `tensors` into a new int32 tensor (the kernel's pointer table). */
function pointerTable(backend: WasmBackendInternals, tensors: readonly tf.Tensor[]): tf.Tensor1D {
  const info = backend.makeOutput([tensors.length], "int32");
  const table = tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor1D;
  const view = new Int32Array(backend.wasm.wasmMemory.buffer, backend.getMemoryOffset(table.dataId), tensors.length);
  tensors.forEach((t, k) => (view[k] = backend.getMemoryOffset(t.dataId)));
  return table;
}

function newTensor<T extends tf.Tensor>(backend: WasmBackendInternals, shape: number[]): T {
  return tf.engine().makeTensorFromTensorInfo(backend.makeOutput(shape, "float32")) as T;
}

/** relu?(conv2d(x, filter, stride 1, padding 1) + bias + residual) for NHWC x, by Winograd F(2×2, 3×3). */
export function winogradConv3x3(x: tf.Tensor4D, filter: WinogradFilter, options: WinogradOptions = {}): tf.Tensor4D {
  const backend = requireWasm("winogradConv3x3");
  const [n, h, w, cin] = x.shape;
  const cout = filter.outChannels;
  if (cin !== filter.inChannels) throw new RangeError(`winogradConv3x3: the input has ${cin} channels, the filter expects ${filter.inChannels}`);
  if (cin % 4 !== 0 || cout % 4 !== 0) throw new RangeError(`winogradConv3x3: channels must be multiples of 4, got ${cin} → ${cout}`);
  if (options.bias !== undefined && options.bias.shape[0] !== cout) {
    throw new RangeError(`winogradConv3x3: bias has ${options.bias.shape[0]} values for ${cout} channels`);
  }
  const residual = options.residual;
  if (residual !== undefined && [n, h, w, cout].some((d, k) => residual.shape[k] !== d)) {
    throw new RangeError(`winogradConv3x3: residual is [${residual.shape.join(", ")}], the output [${[n, h, w, cout].join(", ")}]`);
  }
  const th = Math.ceil(h / 2);
  const tw = Math.ceil(w / 2);
  const tiles = n * th * tw;
  const kernel = winogradKernel(backend.wasm.wasmMemory);
  return tf.tidy(() => {
    const padded = tf.pad(x, [[0, 0], [1, 1 + 2 * th - h], [1, 1 + 2 * tw - w], [0, 0]]);
    const d = Array.from({ length: 16 }, () => newTensor<tf.Tensor2D>(backend, [tiles, cin]));
    const dTable = pointerTable(backend, d);
    kernel.input(backend.getMemoryOffset(padded.dataId), backend.getMemoryOffset(dTable.dataId), n * th, th, 2 * th + 2, 2 * tw + 2, cin);
    tf.dispose([padded, dTable]);
    const m = d.map((dk, k) => {
      const product = tf.matMul(dk, filter.u[k]);
      dk.dispose();
      return product;
    });
    const mTable = pointerTable(backend, m);
    const y = newTensor<tf.Tensor4D>(backend, [n, h, w, cout]);
    const offset = (t: tf.Tensor | undefined): number => (t === undefined ? 0 : backend.getMemoryOffset(t.dataId));
    kernel.output(offset(mTable), offset(y), offset(options.bias), offset(residual), n * th, th, tw, h, w, cout, options.relu === true ? 1 : 0);
    return y;
  });
}
