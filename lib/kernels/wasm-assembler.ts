// A small WebAssembly assembler for the hand-written SIMD kernels (lib/kernels/resize-kernel,
// lib/kernels/winograd-kernel): the binary format's encodings (LEB128 integers, sections, function types), the
// instructions those kernels use, loops and local variables. It computes nothing itself: code is a flat list of
// bytes built by spreading these pieces; see https://webassembly.github.io/spec/core/binary/ for the format. It is
// tested through the kernels it assembles (test/winograd.test.ts, test/image-loader.test.ts): a wrong encoding
// fails to compile, a wrong instruction gives wrong numbers there.

/** Value types. */
export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;

/** Unsigned LEB128. */
export function uleb(value: number): number[] {
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
export function sleb(value: number): number[] {
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

export const vec = (items: readonly number[][]): number[] => [...uleb(items.length), ...items.flat()];
export const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
export const name = (text: string): number[] => [...uleb(text.length), ...Array.from(text, (c) => c.charCodeAt(0))];
/** A function type with these parameters and no results. */
export const funcType = (params: readonly number[]): number[] => [0x60, ...vec(params.map((p) => [p])), ...vec([])];
/** The module header (magic and version). */
export const MODULE_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

// Instructions (memory arguments: alignment hint 0, offset 0).
export const get = (i: number): number[] => [0x20, ...uleb(i)];
export const set = (i: number): number[] => [0x21, ...uleb(i)];
export const i32 = (v: number): number[] => [0x41, ...sleb(v)];
export const I32_ADD = [0x6a];
export const I32_MUL = [0x6c];
export const I32_DIV_U = [0x6e];
export const I32_REM_U = [0x70];
export const I32_AND = [0x71];
export const I32_LT_U = [0x49];
export const I32_GE_U = [0x4f];
export const I32_LOAD = [0x28, 0, 0];
export const F32_LOAD = [0x2a, 0, 0];
export const F32_STORE = [0x38, 0, 0];
export const F32_ADD = [0x92];
export const F32_MUL = [0x94];
/** f32.const 0.5 */
export const F32_HALF = [0x43, 0x00, 0x00, 0x00, 0x3f];
export const V128_LOAD = [0xfd, ...uleb(0x00), 0, 0];
export const V128_STORE = [0xfd, ...uleb(0x0b), 0, 0];
export const V128_ZERO = [0xfd, ...uleb(0x0c), ...new Array<number>(16).fill(0)];
export const F32X4_SPLAT = [0xfd, ...uleb(0x13)];
export const I16X8_EXTEND_LOW_I8X16_U = [0xfd, ...uleb(0x89)];
export const I16X8_EXTEND_HIGH_I8X16_U = [0xfd, ...uleb(0x8a)];
export const I32X4_EXTEND_LOW_I16X8_U = [0xfd, ...uleb(0xa9)];
export const I32X4_EXTEND_HIGH_I16X8_U = [0xfd, ...uleb(0xaa)];
export const F32X4_CONVERT_I32X4_U = [0xfd, ...uleb(0xfb)];
export const F32X4_ADD = [0xfd, ...uleb(0xe4)];
export const F32X4_SUB = [0xfd, ...uleb(0xe5)];
export const F32X4_MUL = [0xfd, ...uleb(0xe6)];
export const F32X4_DIV = [0xfd, ...uleb(0xe7)];
export const F32X4_MAX = [0xfd, ...uleb(0xe9)];

/** `if (condition on the stack) { body }`. */
export const ifThen = (body: number[]): number[] => [0x04, 0x40, ...body, 0x0b];
/** `while (!(a >= b)) { body }` with a and b pushed by the given code (unsigned). */
export const whileBelow = (a: number[], b: number[], body: number[]): number[] => [0x02, 0x40, 0x03, 0x40, ...a, ...b, ...I32_GE_U, 0x0d, 1, ...body, 0x0c, 0, 0x0b, 0x0b];
/** `local += by`. */
export const increment = (local: number, by: number[]): number[] => [...get(local), ...by, ...I32_ADD, ...set(local)];
/** `for (counter = 0; counter < limit; counter += step) { body }` (i32 locals). */
export const forBelow = (counter: number, limit: number, step: number, body: number[]): number[] => [
  ...i32(0), ...set(counter),
  ...whileBelow(get(counter), get(limit), [...body, ...increment(counter, i32(step))]),
];

/** A function's local variables, numbered after its parameters. */
export class Locals {
  private readonly groups: number[][] = [];
  private next: number;
  constructor(params: number) {
    this.next = params;
  }
  take(type: number, count = 1): number[] {
    const ids = Array.from({ length: count }, (_, k) => this.next + k);
    this.next += count;
    this.groups.push([...uleb(count), type]);
    return ids;
  }
  one(type: number): number {
    return this.take(type)[0];
  }
  /** The locals' declaration, which starts a function body. */
  declaration(): number[] {
    return vec(this.groups);
  }
}

/** A WebAssembly.Memory (the project's TypeScript libs do not declare the WebAssembly API). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  grow(pages: number): number;
}

/** The parts of the WebAssembly API the kernels use. */
export interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports?: Record<string, Record<string, unknown>>) => { readonly exports: Record<string, unknown> };
}

/** Compiles and instantiates a module. */
export function instantiate(bytes: Uint8Array, imports?: Record<string, Record<string, unknown>>): Record<string, unknown> {
  const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
  return new wasm.Instance(new wasm.Module(bytes), imports).exports;
}
