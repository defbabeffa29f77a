// The inner loops of torch's bilinear resize (lib/data/image-resize `resizeBilinearTorch`) as a WebAssembly SIMD module.
//
// Bilinear resize is separable: each output value is out(y, x) = Σ h_k(y) · Σ w_j(x) · in(row_k(y), col_j(x)) over
// the two nearest source rows k and columns j, with torch's weights (align_corners=False). The bytes are first
// made floats (ToTensor's division by 255), then a horizontal pass mixes two source pixels per output pixel and a
// vertical pass two of those rows. In JavaScript these passes cost more than the JPEG decode itself (typed-array
// bounds checks and float64 ↔ float32 conversions); WebAssembly's 128-bit SIMD does one RGB pixel (plus one spare
// lane) per instruction. The module is small enough to be written out here instruction by instruction
// (lib/kernels/wasm-assembler), so no compiler and no binary file are needed; Node has run WebAssembly SIMD since
// version 16.4. Tested against PyTorch's output in test/image-loader.test.ts.
//
//   unit(src, dst, n, d)                     ToTensor: n bytes (a multiple of 16) to floats, dst[i] = src[i] / d.
//   hrow(src, dst, n, off0, off1, w0, w1)    one row of those floats, horizontal pass: for x < n, the RGB values
//                                            dst[3x + c] = w0[x]·src[off0[x] + c] + w1[x]·src[off1[x] + c]
//                                            (off are byte offsets of the left/right source pixels). Each pixel is
//                                            read and stored as 4 floats, the 4th being the next pixel's, so `src`
//                                            needs 4 readable bytes after its last pixel and `dst` 4 spare bytes.
//   vrow(top, bottom, dst, n, h0, h1)        vertical pass over n floats: dst[i] = h0·top[i] + h1·bottom[i].
//
// All compute in float32 in torch's order, every quotient, product and sum rounded to float32; torch's compiled
// kernel rounds a few of them differently (it may fuse a multiply and add), so results are within one float32 step
// of torch's.

import {
  F32, F32_ADD, F32_LOAD, F32_MUL, F32_STORE, F32X4_ADD, F32X4_CONVERT_I32X4_U, F32X4_DIV, F32X4_MUL, F32X4_SPLAT, I16X8_EXTEND_HIGH_I8X16_U,
  I16X8_EXTEND_LOW_I8X16_U, I32, I32_ADD, I32_AND, I32_LOAD, I32_MUL, I32X4_EXTEND_HIGH_I16X8_U, I32X4_EXTEND_LOW_I16X8_U, MODULE_HEADER,
  V128, V128_LOAD, V128_STORE, funcType, get, i32, instantiate, name, section, set, uleb, vec, whileBelow, type WasmMemory,
} from "./wasm-assembler";

function unitBody(): number[] {
  // params 0 src, 1 dst, 2 n, 3 d; locals 4 i (bytes of src), 5 bytes, 6 half, 7 vd
  const [src, dst, n, d, i, bytes, half, vd] = [0, 1, 2, 3, 4, 5, 6, 7];
  /** Four of the 16 values: `half` (8 × u16) extended by `extend`, converted, divided, stored at dst + 4i + at. */
  const quarter = (extend: number[], at: number): number[] => [
    ...get(dst), ...get(i), ...i32(4), ...I32_MUL, ...I32_ADD, ...i32(at), ...I32_ADD,
    ...get(half), ...extend, ...F32X4_CONVERT_I32X4_U, ...get(vd), ...F32X4_DIV, ...V128_STORE,
  ];
  const body = [
    ...get(src), ...get(i), ...I32_ADD, ...V128_LOAD, ...set(bytes),
    ...get(bytes), ...I16X8_EXTEND_LOW_I8X16_U, ...set(half),
    ...quarter(I32X4_EXTEND_LOW_I16X8_U, 0), ...quarter(I32X4_EXTEND_HIGH_I16X8_U, 16),
    ...get(bytes), ...I16X8_EXTEND_HIGH_I8X16_U, ...set(half),
    ...quarter(I32X4_EXTEND_LOW_I16X8_U, 32), ...quarter(I32X4_EXTEND_HIGH_I16X8_U, 48),
    ...get(i), ...i32(16), ...I32_ADD, ...set(i),
  ];
  return [...vec([[...uleb(1), I32], [...uleb(3), V128]]), ...get(d), ...F32X4_SPLAT, ...set(vd), ...whileBelow(get(i), get(n), body), 0x0b];
}

/** The 4 floats at `src + off[x]` times the splatted weight `w[x]`. */
const weightedPixel = (src: number, off: number, w: number, x: number): number[] => [
  ...get(src), ...get(off), ...get(x), ...I32_ADD, ...I32_LOAD, ...I32_ADD, ...V128_LOAD,
  ...get(w), ...get(x), ...I32_ADD, ...F32_LOAD, ...F32X4_SPLAT, ...F32X4_MUL,
];

function hrowBody(): number[] {
  // params 0 src, 1 dst, 2 n, 3 off0, 4 off1, 5 w0, 6 w1; locals 7 x (bytes into the tables), 8 end
  const [src, dst, n, off0, off1, w0, w1, x, end] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const body = [
    ...get(dst), ...weightedPixel(src, off0, w0, x), ...weightedPixel(src, off1, w1, x), ...F32X4_ADD, ...V128_STORE,
    ...get(dst), ...i32(12), ...I32_ADD, ...set(dst),
    ...get(x), ...i32(4), ...I32_ADD, ...set(x),
  ];
  return [...vec([[...uleb(2), I32]]), ...get(n), ...i32(4), ...I32_MUL, ...set(end), ...whileBelow(get(x), get(end), body), 0x0b];
}

function vrowBody(): number[] {
  // params 0 top, 1 bottom, 2 dst, 3 n, 4 h0, 5 h1; locals 6 i (bytes), 7 end4, 8 end, 9 vh0, 10 vh1
  const [top, bottom, dst, n, h0, h1, i, end4, end, vh0, vh1] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const at = (base: number): number[] => [...get(base), ...get(i), ...I32_ADD];
  const simd = [
    ...at(dst),
    ...get(vh0), ...at(top), ...V128_LOAD, ...F32X4_MUL,
    ...get(vh1), ...at(bottom), ...V128_LOAD, ...F32X4_MUL, ...F32X4_ADD, ...V128_STORE,
    ...get(i), ...i32(16), ...I32_ADD, ...set(i),
  ];
  const scalar = [
    ...at(dst),
    ...get(h0), ...at(top), ...F32_LOAD, ...F32_MUL,
    ...get(h1), ...at(bottom), ...F32_LOAD, ...F32_MUL, ...F32_ADD, ...F32_STORE,
    ...get(i), ...i32(4), ...I32_ADD, ...set(i),
  ];
  return [
    ...vec([[...uleb(3), I32], [...uleb(2), V128]]),
    ...get(n), ...i32(4), ...I32_MUL, ...set(end),
    ...get(end), ...i32(-16), ...I32_AND, ...set(end4),
    ...get(h0), ...F32X4_SPLAT, ...set(vh0),
    ...get(h1), ...F32X4_SPLAT, ...set(vh1),
    ...whileBelow(get(i), get(end4), simd),
    ...whileBelow(get(i), get(end), scalar),
    0x0b,
  ];
}

/** The module's bytes. */
export function resizeKernelBytes(): Uint8Array {
  const bodies = [unitBody(), hrowBody(), vrowBody()];
  return Uint8Array.from([
    ...MODULE_HEADER,
    ...section(1, vec([funcType([I32, I32, I32, F32]), funcType([I32, I32, I32, I32, I32, I32, I32]), funcType([I32, I32, I32, I32, F32, F32])])),
    ...section(3, vec([[0], [1], [2]])),
    ...section(5, vec([[0x00, ...uleb(1)]])),
    ...section(7, vec([[...name("memory"), 0x02, 0], [...name("unit"), 0x00, 0], [...name("hrow"), 0x00, 1], [...name("vrow"), 0x00, 2]])),
    ...section(10, vec(bodies.map((b) => [...uleb(b.length), ...b]))),
  ]);
}


export interface ResizeKernel {
  readonly memory: WasmMemory;
  unit(src: number, dst: number, n: number, divisor: number): void;
  hrow(src: number, dst: number, n: number, off0: number, off1: number, w0: number, w1: number): void;
  vrow(top: number, bottom: number, dst: number, n: number, h0: number, h1: number): void;
  /** Makes the memory at least `bytes` long (views on the old buffer become invalid when it grows). */
  reserve(bytes: number): void;
}

let kernel: ResizeKernel | null = null;

/** The compiled kernel, instantiated once per thread. */
export function resizeKernel(): ResizeKernel {
  if (kernel !== null) return kernel;
  const exports = instantiate(resizeKernelBytes());
  const { memory, unit, hrow, vrow } = exports as unknown as Pick<ResizeKernel, "memory" | "unit" | "hrow" | "vrow">;
  kernel = {
    memory,
    unit,
    hrow,
    vrow,
    reserve(bytes: number): void {
      const missing = bytes - memory.buffer.byteLength;
      if (missing > 0) memory.grow(Math.ceil(missing / 65536));
    },
  };
  return kernel;
}
