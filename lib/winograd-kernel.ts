// The two data transforms of Winograd's F(2×2, 3×3) convolution (lib/winograd.ts) as a WebAssembly SIMD module
// that works in place on tfjs-backend-wasm's own memory: it imports the backend's WebAssembly.Memory, so it reads
// tensors and writes new ones at their heap offsets, with no copy in or out. Written out instruction by instruction,
// like lib/resize-kernel, so no compiler and no binary file are needed.
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

const I32 = 0x7f;
const V128 = 0x7b;

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

const get = (i: number): number[] => [0x20, ...uleb(i)];
const set = (i: number): number[] => [0x21, ...uleb(i)];
const i32 = (v: number): number[] => [0x41, ...sleb(v)];
const ADD = [0x6a];
const MUL = [0x6c];
const DIV_U = [0x6e];
const REM_U = [0x70];
const LT_U = [0x49];
const GE_U = [0x4f];
const I32_LOAD = [0x28, 2, 0];
const V_LOAD = [0xfd, 0x00, 0, 0];
const V_STORE = [0xfd, 0x0b, 0, 0];
const V_ZERO = [0xfd, 0x0c, ...new Array<number>(16).fill(0)];
const FADD = [0xfd, ...uleb(0xe4)];
const FSUB = [0xfd, ...uleb(0xe5)];
const FMUL = [0xfd, ...uleb(0xe6)];
const FMAX = [0xfd, ...uleb(0xe9)];
const F32X4_SPLAT = [0xfd, ...uleb(0x13)];
const F32_CONST_HALF = [0x43, 0x00, 0x00, 0x00, 0x3f];
const IF = (body: number[]): number[] => [0x04, 0x40, ...body, 0x0b];
/** `while (a < b) { body }`. */
const whileBelow = (a: number[], b: number[], body: number[]): number[] => [0x02, 0x40, 0x03, 0x40, ...a, ...b, ...GE_U, 0x0d, 1, ...body, 0x0c, 0, 0x0b, 0x0b];
const inc = (local: number, by: number[]): number[] => [...get(local), ...by, ...ADD, ...set(local)];

/** Allocates a function's locals after its parameters. */
class Locals {
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
  declaration(): number[] {
    return vec(this.groups);
  }
}

/** The 4 values a, b, c, d (locals) → Bᵀ·(a b c d): a − c, b + c, c − b, b − d, written back, using 4 temporaries. */
function inputTransform4(v: readonly number[], tmp: readonly number[]): number[] {
  const [a, b, c, d] = v;
  return [
    ...get(a), ...get(c), ...FSUB, ...set(tmp[0]),
    ...get(b), ...get(c), ...FADD, ...set(tmp[1]),
    ...get(c), ...get(b), ...FSUB, ...set(tmp[2]),
    ...get(b), ...get(d), ...FSUB, ...set(tmp[3]),
    ...v.flatMap((local, k) => [...get(tmp[k]), ...set(local)]),
  ];
}

/** Loads the 16 table pointers into locals. */
const loadTable = (table: number, ptr: readonly number[]): number[] => ptr.flatMap((p, k) => [...get(table), ...i32(4 * k), ...ADD, ...I32_LOAD, ...set(p)]);

function inputBody(): number[] {
  const [x, table, rows, th, hp, wp, c] = [0, 1, 2, 3, 4, 5, 6];
  const L = new Locals(7);
  const ptr = L.take(I32, 16);
  const off = L.take(I32, 16); // byte offset of window value (r, s): r·rowBytes + s·pixelBytes
  const [row, rowBase, tx, tw, base, o, pixelBytes, rowBytes, dOff] = L.take(I32, 9);
  const d = L.take(V128, 16);
  const tmp = L.take(V128, 4);
  const inner = [
    ...d.flatMap((local, k) => [...get(base), ...get(o), ...ADD, ...get(off[k]), ...ADD, ...V_LOAD, ...set(local)]),
    // rows: for each column s, transform (d0s, d1s, d2s, d3s); then columns: each row i, (di0, di1, di2, di3)
    ...[0, 1, 2, 3].flatMap((s) => inputTransform4([d[s], d[4 + s], d[8 + s], d[12 + s]], tmp)),
    ...[0, 1, 2, 3].flatMap((r) => inputTransform4([d[4 * r], d[4 * r + 1], d[4 * r + 2], d[4 * r + 3]], tmp)),
    ...d.flatMap((local, k) => [...get(ptr[k]), ...get(dOff), ...ADD, ...get(local), ...V_STORE]),
    ...inc(dOff, i32(16)),
    ...inc(o, i32(16)),
  ];
  const perTile = [
    ...get(rowBase), ...get(tx), ...i32(2), ...MUL, ...get(pixelBytes), ...MUL, ...ADD, ...set(base),
    ...i32(0), ...set(o),
    ...whileBelow(get(o), get(pixelBytes), inner),
    ...inc(tx, i32(1)),
  ];
  const perRow = [
    // rowBase = x + ((row / th)·hp + 2·(row % th))·rowBytes
    ...get(x),
    ...get(row), ...get(th), ...DIV_U, ...get(hp), ...MUL, ...get(row), ...get(th), ...REM_U, ...i32(2), ...MUL, ...ADD,
    ...get(rowBytes), ...MUL, ...ADD, ...set(rowBase),
    ...i32(0), ...set(tx),
    ...whileBelow(get(tx), get(tw), perTile),
    ...inc(row, i32(1)),
  ];
  const setup = [
    ...loadTable(table, ptr),
    ...get(c), ...i32(4), ...MUL, ...set(pixelBytes),
    ...get(wp), ...get(pixelBytes), ...MUL, ...set(rowBytes),
    ...get(wp), ...i32(-2), ...ADD, ...i32(2), ...DIV_U, ...set(tw),
    ...off.flatMap((local, k) => [...get(rowBytes), ...i32(k >> 2), ...MUL, ...get(pixelBytes), ...i32(k & 3), ...MUL, ...ADD, ...set(local)]),
  ];
  return [...L.declaration(), ...setup, ...whileBelow(get(row), get(rows), perRow), 0x0b];
}

function outputBody(): number[] {
  const [table, y, bias, res, rows, th, tw, h, w, c, relu] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const L = new Locals(11);
  const ptr = L.take(I32, 16);
  const [row, ty, tx, o, pixelBytes, rowBytes, mOff, at, lastRow, lastCol] = L.take(I32, 10);
  const m = L.take(V128, 16);
  const [p0, p1, p2, p3, vb] = L.take(V128, 5);
  // Aᵀ·(a b c d) = (a + b + c, b − c − d)
  const first = (a: number, b: number, c2: number): number[] => [...get(a), ...get(b), ...FADD, ...get(c2), ...FADD];
  const second = (b: number, c2: number, d2: number): number[] => [...get(b), ...get(c2), ...FSUB, ...get(d2), ...FSUB];
  /** Finishes the value on the stack (bias, residual, relu) and stores it at y + at + extra. */
  const store = (extra: number[]): number[] => {
    const v = p0;
    return [
      ...get(vb), ...FADD, ...set(v),
      ...get(res), ...IF([...get(v), ...get(res), ...get(at), ...ADD, ...extra, ...ADD, ...V_LOAD, ...FADD, ...set(v)]),
      ...get(relu), ...IF([...get(v), ...V_ZERO, ...FMAX, ...set(v)]),
      ...get(y), ...get(at), ...ADD, ...extra, ...ADD, ...get(v), ...V_STORE,
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
    const colOffset = b === 0 ? [] : [...get(pixelBytes), ...ADD];
    const guardCol = (code: number[]): number[] => (b === 0 ? code : [...get(lastCol), ...IF(code)]);
    return [
      ...guardCol([...first(q(0), q(1), q(2)), ...store(b === 0 ? i32(0) : [...i32(0), ...colOffset])]),
      ...get(lastRow), ...IF(guardCol([...second(q(1), q(2), q(3)), ...store([...get(rowBytes), ...colOffset])])),
    ];
  });
  const inner = [
    ...m.flatMap((local, k) => [...get(ptr[k]), ...get(mOff), ...ADD, ...V_LOAD, ...set(local)]),
    ...V_ZERO, ...set(vb),
    ...get(bias), ...IF([...get(bias), ...get(o), ...ADD, ...V_LOAD, ...set(vb)]),
    ...columns,
    ...outputs,
    ...inc(mOff, i32(16)),
    ...inc(o, i32(16)),
    ...inc(at, i32(16)),
  ];
  const perTile = [
    // at = byte offset of output pixel (2ty, 2tx) of image row / th; lastCol: is column 2tx + 1 inside w?
    ...get(row), ...get(th), ...DIV_U, ...get(h), ...MUL, ...get(ty), ...i32(2), ...MUL, ...ADD, ...get(rowBytes), ...MUL,
    ...get(tx), ...i32(2), ...MUL, ...get(pixelBytes), ...MUL, ...ADD, ...set(at),
    ...get(tx), ...i32(2), ...MUL, ...i32(1), ...ADD, ...get(w), ...LT_U, ...set(lastCol),
    ...i32(0), ...set(o),
    ...whileBelow(get(o), get(pixelBytes), inner),
    ...inc(tx, i32(1)),
  ];
  const perRow = [
    ...get(row), ...get(th), ...REM_U, ...set(ty),
    ...get(ty), ...i32(2), ...MUL, ...i32(1), ...ADD, ...get(h), ...LT_U, ...set(lastRow),
    ...i32(0), ...set(tx),
    ...whileBelow(get(tx), get(tw), perTile),
    ...inc(row, i32(1)),
  ];
  const setup = [
    ...loadTable(table, ptr),
    ...get(c), ...i32(4), ...MUL, ...set(pixelBytes),
    ...get(w), ...get(pixelBytes), ...MUL, ...set(rowBytes),
  ];
  return [...L.declaration(), ...setup, ...whileBelow(get(row), get(rows), perRow), 0x0b];
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
  const sum = (a: number, b: number, c: number): number[] => [...get(a), ...get(b), ...FADD, ...get(c), ...FADD, ...get(half), ...FMUL];
  const diff = (a: number, b: number, c: number): number[] => [...get(a), ...get(b), ...FSUB, ...get(c), ...FADD, ...get(half), ...FMUL];
  /** G applied to (a, b, c): the four results' code. */
  const apply = (a: number, b: number, c: number): number[][] => [get(a), sum(a, b, c), diff(a, b, c), get(c)];
  const store = (k: number, value: number[]): number[] => [...get(ptr[k]), ...get(p), ...ADD, ...value, ...V_STORE];
  const inner = [
    ...tap.flatMap((local, k) => [...get(g), ...get(planeBytes), ...i32(k), ...MUL, ...ADD, ...get(p), ...ADD, ...V_LOAD, ...set(local)]),
    // columns of the 3×3 taps (index a·3 + b: a is the row): r_{i,b} = (G·(g_0b, g_1b, g_2b))_i
    ...[0, 1, 2].flatMap((b) => apply(tap[b], tap[3 + b], tap[6 + b]).flatMap((code, i) => [...code, ...set(r[3 * i + b])])),
    // then each row i: U_{i,j} = (G·(r_i0, r_i1, r_i2))_j
    ...[0, 1, 2, 3].flatMap((i) => apply(r[3 * i], r[3 * i + 1], r[3 * i + 2]).flatMap((code, j) => store(4 * i + j, code))),
    ...inc(p, i32(16)),
  ];
  const setup = [
    ...loadTable(table, ptr),
    ...get(plane), ...i32(4), ...MUL, ...set(planeBytes),
    ...F32_CONST_HALF, ...F32X4_SPLAT, ...set(half),
  ];
  return [...L.declaration(), ...setup, ...whileBelow(get(p), get(planeBytes), inner), 0x0b];
}

/** The module's bytes; `shared` must match the memory it will import. */
export function winogradKernelBytes(shared: boolean): Uint8Array {
  const funcType = (params: number): number[] => [0x60, ...vec(new Array<number[]>(params).fill([I32])), ...vec([])];
  const bodies = [inputBody(), outputBody(), filterBody()];
  // memory limits: shared memories need a maximum; 65536 pages = 4 GiB, wasm32's whole address space
  const limits = shared ? [0x03, ...uleb(1), ...uleb(65536)] : [0x00, ...uleb(1)];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([funcType(7), funcType(11), funcType(3)])),
    ...section(2, vec([[...name("env"), ...name("memory"), 0x02, ...limits]])),
    ...section(3, vec([[0], [1], [2]])),
    ...section(7, vec([[...name("input"), 0x00, 0], [...name("output"), 0x00, 1], [...name("filter"), 0x00, 2]])),
    ...section(10, vec(bodies.map((b) => [...uleb(b.length), ...b]))),
  ]);
}

/** The parts of the WebAssembly API used here (the project's TypeScript libs do not declare them). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { readonly exports: Record<string, unknown> };
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
  const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
  const shared = typeof SharedArrayBuffer !== "undefined" && memory.buffer instanceof SharedArrayBuffer;
  const { exports } = new wasm.Instance(new wasm.Module(winogradKernelBytes(shared)), { env: { memory } });
  const kernel = exports as unknown as WinogradKernel;
  kernels.set(memory, kernel);
  return kernel;
}
