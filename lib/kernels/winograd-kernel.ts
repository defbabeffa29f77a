// The transforms of Winograd's F(2×2, 3×3) convolution (lib/kernels/winograd.ts) as a WebAssembly SIMD module:
// a 3×3 convolution y = x ∗ g becomes, per 4×4 input window d and 2×2 output block, y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A,
// where ⊙ is taken per channel pair and summed over input channels by 16 matrix products (XNNPACK's, not here).
// This module computes the three linear maps — the input transform Bᵀ d B, the output transform Aᵀ M A (+ bias,
// residual, ReLU) and the filter transform G g Gᵀ — in place on tfjs-backend-wasm's own memory: it imports the
// backend's WebAssembly.Memory, so it reads tensors and writes new ones at their heap offsets, with no copy in or
// out. Written out instruction by instruction (lib/kernels/wasm-assembler), so no compiler and no binary file are
// needed. Tested against direct convolutions in test/winograd.test.ts.
//
//   input(x, table, rows, th, hp, wp, c)
//       x: a zero-padded NHWC image batch [n, hp, wp, c] with hp = 2·th + 2 and wp = 2·tw + 2 (tw = (wp − 2) / 2),
//       rows = n·th; table: 16 pointers to [n·th·tw, c] outputs D₀…D₁₅. For each 4×4 window at (2ty, 2tx) and each
//       4 channels, D_{4i+j} = (Bᵀ d B)_{ij}. c is a multiple of 4.
//   output(table, y, bias, res, rows, th, tw, h, w, c, relu)
//       table: 16 pointers to the [n·th·tw, c] products M₀…M₁₅; y: [n, h, w, c] output with h ≤ 2·th, w ≤ 2·tw.
//       y at (2ty + a, 2tx + b) = (Aᵀ M A)_{ab} + bias (+ res at the same place if res ≠ 0), then max(·, 0) if
//       relu ≠ 0. Values of the last tile row or column that fall outside h × w are dropped.
//       bias may be 0 (none).
//   filter(g, table, plane)
//       g: an HWIO [3, 3, cin, cout] filter, plane = cin·cout (a multiple of 4); table: 16 pointers to [cin, cout]
//       outputs U₀…U₁₅: U_{4i+j} = (G g Gᵀ)_{ij}.
//
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]     Aᵀ = [1 1 1 0; 0 1 −1 −1]     G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
//
// All arithmetic is float32 (additions and subtractions, and halvings in G), 4 channels per instruction.

import {
  F32_HALF, F32X4_ADD, F32X4_MAX, F32X4_MUL, F32X4_SPLAT, F32X4_SUB, I32, I32_ADD, I32_DIV_U, I32_LOAD, I32_LT_U, I32_MUL, I32_REM_U,
  Locals, MODULE_HEADER, V128, V128_LOAD, V128_STORE, V128_ZERO, forBelow, funcType, get, i32, ifThen, increment, instantiate, name,
  section, set, uleb, vec, type WasmMemory,
} from "./wasm-assembler";

/** The 4 values a, b, c, d (locals) → Bᵀ·(a b c d): a − c, b + c, c − b, b − d, written back, using 4 temporaries. */
function inputTransform4(v: readonly number[], tmp: readonly number[]): number[] {
  const [a, b, c, d] = v;
  return [
    ...get(a), ...get(c), ...F32X4_SUB, ...set(tmp[0]),
    ...get(b), ...get(c), ...F32X4_ADD, ...set(tmp[1]),
    ...get(c), ...get(b), ...F32X4_SUB, ...set(tmp[2]),
    ...get(b), ...get(d), ...F32X4_SUB, ...set(tmp[3]),
    ...v.flatMap((local, k) => [...get(tmp[k]), ...set(local)]),
  ];
}

/** Loads the 16 table pointers into locals. */
const loadTable = (table: number, ptr: readonly number[]): number[] => ptr.flatMap((p, k) => [...get(table), ...i32(4 * k), ...I32_ADD, ...I32_LOAD, ...set(p)]);

function inputBody(): number[] {
  const [x, table, rows, th, hp, wp, c] = [0, 1, 2, 3, 4, 5, 6];
  const L = new Locals(7);
  const ptr = L.take(I32, 16);
  const off = L.take(I32, 16); // byte offset of window value (r, s): r·rowBytes + s·pixelBytes
  const [row, rowBase, tx, tw, base, o, pixelBytes, rowBytes, dOff] = L.take(I32, 9);
  const d = L.take(V128, 16);
  const tmp = L.take(V128, 4);
  const inner = [
    ...d.flatMap((local, k) => [...get(base), ...get(o), ...I32_ADD, ...get(off[k]), ...I32_ADD, ...V128_LOAD, ...set(local)]),
    // rows: for each column s, transform (d0s, d1s, d2s, d3s); then columns: each row i, (di0, di1, di2, di3)
    ...[0, 1, 2, 3].flatMap((s) => inputTransform4([d[s], d[4 + s], d[8 + s], d[12 + s]], tmp)),
    ...[0, 1, 2, 3].flatMap((r) => inputTransform4([d[4 * r], d[4 * r + 1], d[4 * r + 2], d[4 * r + 3]], tmp)),
    ...d.flatMap((local, k) => [...get(ptr[k]), ...get(dOff), ...I32_ADD, ...get(local), ...V128_STORE]),
    ...increment(dOff, i32(16)),
  ];
  const perTile = [
    ...get(rowBase), ...get(tx), ...i32(2), ...I32_MUL, ...get(pixelBytes), ...I32_MUL, ...I32_ADD, ...set(base),
    ...forBelow(o, pixelBytes, 16, inner),
  ];
  const perRow = [
    // rowBase = x + ((row / th)·hp + 2·(row % th))·rowBytes
    ...get(x),
    ...get(row), ...get(th), ...I32_DIV_U, ...get(hp), ...I32_MUL, ...get(row), ...get(th), ...I32_REM_U, ...i32(2), ...I32_MUL, ...I32_ADD,
    ...get(rowBytes), ...I32_MUL, ...I32_ADD, ...set(rowBase),
    ...forBelow(tx, tw, 1, perTile),
  ];
  const setup = [
    ...loadTable(table, ptr),
    ...get(c), ...i32(4), ...I32_MUL, ...set(pixelBytes),
    ...get(wp), ...get(pixelBytes), ...I32_MUL, ...set(rowBytes),
    ...get(wp), ...i32(-2), ...I32_ADD, ...i32(2), ...I32_DIV_U, ...set(tw),
    ...off.flatMap((local, k) => [...get(rowBytes), ...i32(k >> 2), ...I32_MUL, ...get(pixelBytes), ...i32(k & 3), ...I32_MUL, ...I32_ADD, ...set(local)]),
  ];
  return [...L.declaration(), ...setup, ...forBelow(row, rows, 1, perRow), 0x0b];
}

function outputBody(): number[] {
  const [table, y, bias, res, rows, th, tw, h, w, c, relu] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const L = new Locals(11);
  const ptr = L.take(I32, 16);
  const [row, ty, tx, o, pixelBytes, rowBytes, mOff, at, lastRow, lastCol] = L.take(I32, 10);
  const m = L.take(V128, 16);
  const [p0, vb] = L.take(V128, 2);
  // Aᵀ·(a b c d) = (a + b + c, b − c − d)
  const first = (a: number, b: number, c2: number): number[] => [...get(a), ...get(b), ...F32X4_ADD, ...get(c2), ...F32X4_ADD];
  const second = (b: number, c2: number, d2: number): number[] => [...get(b), ...get(c2), ...F32X4_SUB, ...get(d2), ...F32X4_SUB];
  /** Finishes the value on the stack (bias, residual, relu) and stores it at y + at + extra. */
  const store = (extra: number[]): number[] => {
    const v = p0;
    return [
      ...get(vb), ...F32X4_ADD, ...set(v),
      ...get(res), ...ifThen([...get(v), ...get(res), ...get(at), ...I32_ADD, ...extra, ...I32_ADD, ...V128_LOAD, ...F32X4_ADD, ...set(v)]),
      ...get(relu), ...ifThen([...get(v), ...V128_ZERO, ...F32X4_MAX, ...set(v)]),
      ...get(y), ...get(at), ...I32_ADD, ...extra, ...I32_ADD, ...get(v), ...V128_STORE,
    ];
  };
  // Columns first: for row i, q_i0 = m_i0 + m_i1 + m_i2 and q_i1 = m_i1 − m_i2 − m_i3, kept in m_i0 and m_i1.
  const columns = [0, 1, 2, 3].flatMap((i) => {
    const [a, b, c2, d2] = [m[4 * i], m[4 * i + 1], m[4 * i + 2], m[4 * i + 3]];
    return [...first(a, b, c2), ...set(p0), ...second(b, c2, d2), ...set(b), ...get(p0), ...set(a)];
  });
  // Then rows, for output column b: y_0b = q_0b + q_1b + q_2b, y_1b = q_1b − q_2b − q_3b
  const outputs = [0, 1].flatMap((b) => {
    const q = (i: number): number => m[4 * i + b];
    const colOffset = b === 0 ? [] : [...get(pixelBytes), ...I32_ADD];
    const guardCol = (code: number[]): number[] => (b === 0 ? code : [...get(lastCol), ...ifThen(code)]);
    return [
      ...guardCol([...first(q(0), q(1), q(2)), ...store(b === 0 ? i32(0) : [...i32(0), ...colOffset])]),
      ...get(lastRow), ...ifThen(guardCol([...second(q(1), q(2), q(3)), ...store([...get(rowBytes), ...colOffset])])),
    ];
  });
  const inner = [
    ...m.flatMap((local, k) => [...get(ptr[k]), ...get(mOff), ...I32_ADD, ...V128_LOAD, ...set(local)]),
    ...V128_ZERO, ...set(vb),
    ...get(bias), ...ifThen([...get(bias), ...get(o), ...I32_ADD, ...V128_LOAD, ...set(vb)]),
    ...columns,
    ...outputs,
    ...increment(mOff, i32(16)),
    ...increment(at, i32(16)),
  ];
  const perTile = [
    // at = byte offset of output pixel (2ty, 2tx) of image row / th; lastCol: is column 2tx + 1 inside w?
    ...get(row), ...get(th), ...I32_DIV_U, ...get(h), ...I32_MUL, ...get(ty), ...i32(2), ...I32_MUL, ...I32_ADD, ...get(rowBytes), ...I32_MUL,
    ...get(tx), ...i32(2), ...I32_MUL, ...get(pixelBytes), ...I32_MUL, ...I32_ADD, ...set(at),
    ...get(tx), ...i32(2), ...I32_MUL, ...i32(1), ...I32_ADD, ...get(w), ...I32_LT_U, ...set(lastCol),
    ...forBelow(o, pixelBytes, 16, inner),
  ];
  const perRow = [
    ...get(row), ...get(th), ...I32_REM_U, ...set(ty),
    ...get(ty), ...i32(2), ...I32_MUL, ...i32(1), ...I32_ADD, ...get(h), ...I32_LT_U, ...set(lastRow),
    ...forBelow(tx, tw, 1, perTile),
  ];
  const setup = [
    ...loadTable(table, ptr),
    ...get(c), ...i32(4), ...I32_MUL, ...set(pixelBytes),
    ...get(w), ...get(pixelBytes), ...I32_MUL, ...set(rowBytes),
  ];
  return [...L.declaration(), ...setup, ...forBelow(row, rows, 1, perRow), 0x0b];
}

/** U = G g Gᵀ for 4 (cin, cout) pairs at a time; G·(a b c) = (a, ½(a + b + c), ½(a − b + c), c). */
function filterBody(): number[] {
  const [g, table, plane] = [0, 1, 2];
  const L = new Locals(3);
  const ptr = L.take(I32, 16);
  const [p, planeBytes] = L.take(I32, 2);
  const tap = L.take(V128, 9);
  const r = L.take(V128, 12); // r[3i + b] = (G·column b)_i
  const half = L.one(V128);
  const sum = (a: number, b: number, c: number): number[] => [...get(a), ...get(b), ...F32X4_ADD, ...get(c), ...F32X4_ADD, ...get(half), ...F32X4_MUL];
  const diff = (a: number, b: number, c: number): number[] => [...get(a), ...get(b), ...F32X4_SUB, ...get(c), ...F32X4_ADD, ...get(half), ...F32X4_MUL];
  /** G applied to (a, b, c): the four results' code. */
  const apply = (a: number, b: number, c: number): number[][] => [get(a), sum(a, b, c), diff(a, b, c), get(c)];
  const store = (k: number, value: number[]): number[] => [...get(ptr[k]), ...get(p), ...I32_ADD, ...value, ...V128_STORE];
  const inner = [
    ...tap.flatMap((local, k) => [...get(g), ...get(planeBytes), ...i32(k), ...I32_MUL, ...I32_ADD, ...get(p), ...I32_ADD, ...V128_LOAD, ...set(local)]),
    // columns of the 3×3 taps (index a·3 + b: a is the row): r_{i,b} = (G·(g_0b, g_1b, g_2b))_i
    ...[0, 1, 2].flatMap((b) => apply(tap[b], tap[3 + b], tap[6 + b]).flatMap((code, i) => [...code, ...set(r[3 * i + b])])),
    // then each row i: U_{i,j} = (G·(r_i0, r_i1, r_i2))_j
    ...[0, 1, 2, 3].flatMap((i) => apply(r[3 * i], r[3 * i + 1], r[3 * i + 2]).flatMap((code, j) => store(4 * i + j, code))),
  ];
  const setup = [
    ...loadTable(table, ptr),
    ...get(plane), ...i32(4), ...I32_MUL, ...set(planeBytes),
    ...F32_HALF, ...F32X4_SPLAT, ...set(half),
  ];
  return [...L.declaration(), ...setup, ...forBelow(p, planeBytes, 16, inner), 0x0b];
}

/** The module's bytes; `shared` must match the memory it will import. */
export function winogradKernelBytes(shared: boolean): Uint8Array {
  const i32Params = (count: number): number[] => funcType(new Array<number>(count).fill(I32));
  const bodies = [inputBody(), outputBody(), filterBody()];
  // memory limits: shared memories need a maximum; 65536 pages = 4 GiB, wasm32's whole address space
  const limits = shared ? [0x03, ...uleb(1), ...uleb(65536)] : [0x00, ...uleb(1)];
  return Uint8Array.from([
    ...MODULE_HEADER,
    ...section(1, vec([i32Params(7), i32Params(11), i32Params(3)])),
    ...section(2, vec([[...name("env"), ...name("memory"), 0x02, ...limits]])),
    ...section(3, vec([[0], [1], [2]])),
    ...section(7, vec([[...name("input"), 0x00, 0], [...name("output"), 0x00, 1], [...name("filter"), 0x00, 2]])),
    ...section(10, vec(bodies.map((b) => [...uleb(b.length), ...b]))),
  ]);
}


export interface WinogradKernel {
  input(x: number, table: number, rows: number, th: number, hp: number, wp: number, c: number): void;
  output(table: number, y: number, bias: number, res: number, rows: number, th: number, tw: number, h: number, w: number, c: number, relu: number): void;
  filter(g: number, table: number, plane: number): void;
}

const kernels = new WeakMap<WasmMemory, WinogradKernel>();

/** The kernel instantiated on `memory` (once per memory). */
export function winogradKernel(memory: WasmMemory): WinogradKernel {
  const known = kernels.get(memory);
  if (known !== undefined) return known;
  const shared = typeof SharedArrayBuffer !== "undefined" && memory.buffer instanceof SharedArrayBuffer;
  const kernel = instantiate(winogradKernelBytes(shared), { env: { memory } }) as unknown as WinogradKernel;
  kernels.set(memory, kernel);
  return kernel;
}
