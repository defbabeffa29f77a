// The inner loops of torch's bilinear resize (lib/image-loader `resizeBilinearTorch`) as a WebAssembly SIMD module.
//
// In JavaScript the two passes cost ~1.1 ms per 178×218 → 224×224 image (5 ns per value: typed-array bounds checks
// and float64 ↔ float32 conversions), five times the JPEG decode itself. WebAssembly's 128-bit SIMD does one RGB
// pixel (plus one spare lane) per instruction. The module is small enough to be written out here instruction by
// instruction, so no compiler and no binary file are needed; Node has run WebAssembly SIMD since version 16.4.
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
// of torch's (test/image-loader.test.ts checks them against PyTorch).

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

/** Unsigned LEB128. */
function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

/** Signed LEB128 (i32 constants). */
function sleb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    if ((value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const vec = (items: readonly number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (text: string): number[] => [...uleb(text.length), ...Array.from(text, (c) => c.charCodeAt(0))];

// Instructions (memory arguments: alignment hint 0, offset 0).
const get = (i: number): number[] => [0x20, ...uleb(i)];
const set = (i: number): number[] => [0x21, ...uleb(i)];
const tee = (i: number): number[] => [0x22, ...uleb(i)];
const i32 = (v: number): number[] => [0x41, ...sleb(v)];
const I32_ADD = [0x6a];
const I32_MUL = [0x6c];
const I32_AND = [0x71];
const I32_GE_U = [0x4f];
const I32_LOAD = [0x28, 0, 0];
const F32_LOAD = [0x2a, 0, 0];
const F32_STORE = [0x38, 0, 0];
const F32_ADD = [0x92];
const F32_MUL = [0x94];
const V128_LOAD = [0xfd, ...uleb(0x00), 0, 0];
const V128_STORE = [0xfd, ...uleb(0x0b), 0, 0];
const F32X4_SPLAT = [0xfd, ...uleb(0x13)];
const I16X8_EXTEND_LOW_I8X16_U = [0xfd, ...uleb(0x89)];
const I16X8_EXTEND_HIGH_I8X16_U = [0xfd, ...uleb(0x8a)];
const I32X4_EXTEND_LOW_I16X8_U = [0xfd, ...uleb(0xa9)];
const I32X4_EXTEND_HIGH_I16X8_U = [0xfd, ...uleb(0xaa)];
const F32X4_CONVERT_I32X4_U = [0xfd, ...uleb(0xfb)];
const F32X4_ADD = [0xfd, ...uleb(0xe4)];
const F32X4_MUL = [0xfd, ...uleb(0xe6)];
const F32X4_DIV = [0xfd, ...uleb(0xe7)];
/** `while (!(a >= b)) { body }` with a and b pushed by the given code. */
const whileBelow = (a: number[], b: number[], body: number[]): number[] => [0x02, 0x40, 0x03, 0x40, ...a, ...b, ...I32_GE_U, 0x0d, 1, ...body, 0x0c, 0, 0x0b, 0x0b];

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
  const funcType = (params: number[]): number[] => [0x60, ...vec(params.map((p) => [p])), ...vec([])];
  const bodies = [unitBody(), hrowBody(), vrowBody()];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([funcType([I32, I32, I32, F32]), funcType([I32, I32, I32, I32, I32, I32, I32]), funcType([I32, I32, I32, I32, F32, F32])])),
    ...section(3, vec([[0], [1], [2]])),
    ...section(5, vec([[0x00, ...uleb(1)]])),
    ...section(7, vec([[...name("memory"), 0x02, 0], [...name("unit"), 0x00, 0], [...name("hrow"), 0x00, 1], [...name("vrow"), 0x00, 2]])),
    ...section(10, vec(bodies.map((b) => [...uleb(b.length), ...b]))),
  ]);
}

/** The parts of the WebAssembly API used here (the project's TypeScript libs do not declare them). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { readonly exports: Record<string, unknown> };
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
  const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
  const { exports } = new wasm.Instance(new wasm.Module(resizeKernelBytes()));
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
