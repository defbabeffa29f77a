// NumPy's `.npy` format (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html) for the two dtypes
// this project stores: float32 (`<f4`, face vectors, SAE features) and uint8 (`|u1`, the decoded-image cache).
//
// Layout: the magic `\x93NUMPY`, a version (1.0 here; 2.0 and 3.0 are also read), the header length (uint16 LE in
// 1.0, uint32 LE in 2.0/3.0), then a Python dict literal such as
// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 512), }` padded with spaces and a final `\n` so the data
// starts at a multiple of 64 bytes, then the values in C (row-major) order, little-endian.
//
// The header is written byte for byte as numpy ≥ 1.23 writes it (`np.save`), including the spare spaces numpy
// leaves so the first dimension can grow in place; test/fixtures/npy/ holds files made by numpy to prove it.
// Every write goes through lib/util/atomic-write (temporary file, fsync, rename), so a reader never sees half a file.

import { open, type FileHandle } from "node:fs/promises";
import { endianness } from "node:os";
import { openAtomic } from "../util/atomic-write";

/** The dtypes read and written: float32 and uint8. */
export type NpyDtype = "float32" | "uint8";

/** The typed array holding values of each dtype. */
export interface NpyArrayTypes {
  float32: Float32Array;
  uint8: Uint8Array;
}

/** A typed array of one of the supported dtypes. */
export type NpyData = NpyArrayTypes[NpyDtype];

/** What the header of a `.npy` file says. */
export interface NpyHeader {
  readonly dtype: NpyDtype;
  /** The `descr` string as written in the file, e.g. `<f4` or `|u1`. */
  readonly descr: string;
  readonly shape: readonly number[];
  /** The format version the file was written in, e.g. `[1, 0]`. */
  readonly version: readonly [number, number];
  /** Byte offset of the first value (a multiple of 64 for files numpy or this module wrote). */
  readonly dataOffset: number;
  /** Number of values (product of the shape; 1 for a 0-d array). */
  readonly size: number;
  /** Bytes per value. */
  readonly itemSize: number;
}

/** An array read from a `.npy` file. */
export interface NpyArray<D extends NpyDtype = NpyDtype> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: NpyArrayTypes[D];
}

/** A `.npy` file that cannot be read, with the file named and what to do about it. */
export class NpyFormatError extends Error {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = "NpyFormatError";
  }
}

const MAGIC = Uint8Array.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
const ALIGN = 64;
/** numpy ≥ 1.23 pads the header so that the first dimension can grow to this many digits in place. */
const GROWTH_AXIS_MAX_DIGITS = 21;
const DESCR: Record<NpyDtype, string> = { float32: "<f4", uint8: "|u1" };
const ITEM_SIZE: Record<NpyDtype, number> = { float32: 4, uint8: 1 };
/** Reads larger than this are split: a single read(2) moves at most ~2 GiB. */
const MAX_READ = 1 << 30;

if (endianness() !== "LE") {
  throw new Error("lib/formats/npy.ts reads and writes little-endian data through typed arrays, which needs a little-endian machine");
}

/** The dtype of a typed array, or throws naming what was passed. */
export function npyDtypeOf(data: NpyData): NpyDtype {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Uint8Array) return "uint8";
  throw new TypeError(`only Float32Array and Uint8Array can be stored as .npy here, got ${describe(data)}`);
}

/** The product of a shape's dimensions, checking each is a non-negative integer. */
export function shapeSize(shape: readonly number[], what = "shape"): number {
  let size = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`${what} [${shape.join(", ")}] has a dimension that is not a non-negative integer`);
    size *= d;
  }
  return size;
}

/** Python's repr of a tuple of ints: `()`, `(3,)`, `(3, 4)`. */
function pythonTuple(shape: readonly number[]): string {
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(", ")})`;
}

/**
 * The full header (magic, version, length, dict, padding, newline) numpy writes for this dtype and shape.
 * Its length is a multiple of 64, so the data that follows is aligned.
 */
export function encodeNpyHeader(dtype: NpyDtype, shape: readonly number[]): Uint8Array {
  shapeSize(shape);
  let dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${pythonTuple(shape)}, }`;
  if (shape.length > 0) dict += " ".repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length));
  // Version 1.0 stores the header length in 2 bytes; numpy switches to 2.0 (4 bytes) only when that overflows.
  let version = 1;
  let prefix = MAGIC.length + 2 + 2;
  let padded = dict.length + 1;
  padded += (ALIGN - ((prefix + padded) % ALIGN)) % ALIGN;
  if (padded > 0xffff) {
    version = 2;
    prefix = MAGIC.length + 2 + 4;
    padded = dict.length + 1;
    padded += (ALIGN - ((prefix + padded) % ALIGN)) % ALIGN;
  }
  const text = dict + " ".repeat(padded - dict.length - 1) + "\n";
  const out = new Uint8Array(prefix + padded);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, padded, true);
  else view.setUint32(8, padded, true);
  out.set(Buffer.from(text, "latin1"), prefix);
  return out;
}

/** Parses the header bytes of a `.npy` file (at least the first 10–12 bytes plus the header). */
function parseHeader(file: string, bytes: Uint8Array, fileSize: number): NpyHeader {
  const magicOk = bytes.length >= 8 && MAGIC.every((b, i) => bytes[i] === b);
  if (!magicOk) {
    throw new NpyFormatError(file, "is not a .npy file (it does not start with \\x93NUMPY); write it with numpy.save or lib/formats/npy.ts writeNpy");
  }
  const major = bytes[6];
  const minor = bytes[7];
  if (major < 1 || major > 3) throw new NpyFormatError(file, `has .npy format version ${major}.${minor}; versions 1.0, 2.0 and 3.0 are read`);
  const lengthBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lengthBytes) throw new NpyFormatError(file, `is truncated: it ends inside the header (${fileSize} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataOffset = 8 + lengthBytes + headerLength;
  if (bytes.length < dataOffset) {
    throw new NpyFormatError(file, `is truncated: the header announces ${headerLength} bytes but the file has ${fileSize} bytes in all`);
  }
  const text = Buffer.from(bytes.subarray(8 + lengthBytes, dataOffset)).toString(major === 3 ? "utf8" : "latin1");

  const descrMatch = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(text);
  const fortranMatch = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text);
  const shapeMatch = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descrMatch || !fortranMatch || !shapeMatch) {
    throw new NpyFormatError(file, `has a header without 'descr', 'fortran_order' and 'shape': ${JSON.stringify(text.trim())}`);
  }
  const descr = descrMatch[1];
  let dtype: NpyDtype;
  if (descr === "<f4") dtype = "float32";
  else if (descr === "|u1" || descr === "<u1" || descr === ">u1" || descr === "=u1") dtype = "uint8";
  else if (descr === ">f4") {
    throw new NpyFormatError(file, "holds big-endian float32 ('>f4'); re-save it little-endian: np.save(path, a.astype('<f4'))");
  } else {
    throw new NpyFormatError(file, `has dtype '${descr}'; only float32 ('<f4') and uint8 ('|u1') are read: re-save with np.save(path, a.astype(np.float32))`);
  }
  if (fortranMatch[1] === "True") {
    throw new NpyFormatError(file, "is in Fortran (column-major) order; re-save it in C order: np.save(path, np.ascontiguousarray(a))");
  }
  const shapeText = shapeMatch[1].trim();
  const shape = shapeText === "" ? [] : shapeText.split(",").map((s) => s.trim()).filter((s) => s !== "").map((s) => Number(s.replace(/L$/, "")));
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new NpyFormatError(file, `has an invalid shape (${shapeText})`);
  const size = shape.reduce((a, b) => a * b, 1);
  const itemSize = ITEM_SIZE[dtype];
  const needed = dataOffset + size * itemSize;
  if (fileSize < needed) {
    throw new NpyFormatError(
      file,
      `is truncated: shape (${shape.join(", ")}) of ${dtype} needs ${needed} bytes but the file has ${fileSize}; it was probably cut off while being written — make it again`,
    );
  }
  return { dtype, descr, shape, version: [major, minor], dataOffset, size, itemSize };
}

/** Reads exactly `length` bytes at `position` into `target`, in pieces when large; throws naming the file if short. */
async function readFully(fh: FileHandle, file: string, target: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const want = Math.min(MAX_READ, target.length - done);
    const { bytesRead } = await fh.read(target, done, want, position + done);
    if (bytesRead === 0) throw new NpyFormatError(file, `is truncated: a read at byte ${position + done} returned nothing`);
    done += bytesRead;
  }
}

/** Writes all of `source` at `position` (or at the current end when null). */
async function writeFully(fh: FileHandle, source: Uint8Array, position: number | null): Promise<void> {
  let done = 0;
  while (done < source.length) {
    const want = Math.min(MAX_READ, source.length - done);
    const { bytesWritten } = await fh.write(source, done, want, position === null ? null : position + done);
    done += bytesWritten;
  }
}

function bytesOf(data: NpyData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function allocate<D extends NpyDtype>(dtype: D, length: number): NpyArrayTypes[D] {
  return (dtype === "float32" ? new Float32Array(length) : new Uint8Array(length)) as NpyArrayTypes[D];
}

function describe(value: unknown): string {
  return value === null ? "null" : typeof value === "object" ? (value.constructor?.name ?? "object") : typeof value;
}

async function readHeaderFrom(fh: FileHandle, file: string): Promise<NpyHeader> {
  const { size: fileSize } = await fh.stat();
  const first = new Uint8Array(Math.min(fileSize, 12));
  if (first.length > 0) await fh.read(first, 0, first.length, 0);
  if (first.length < 10 || !MAGIC.every((b, i) => first[i] === b)) return parseHeader(file, first, fileSize);
  const lengthBytes = first[6] === 1 ? 2 : 4;
  const view = new DataView(first.buffer);
  const headerLength = lengthBytes === 2 ? view.getUint16(8, true) : first.length >= 12 ? view.getUint32(8, true) : 0;
  const all = new Uint8Array(Math.min(fileSize, 8 + lengthBytes + headerLength));
  await fh.read(all, 0, all.length, 0);
  return parseHeader(file, all, fileSize);
}

async function openForReading(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new NpyFormatError(path, "does not exist");
    throw new NpyFormatError(path, `cannot be opened (${code ?? String(error)})`);
  }
}

/** Reads only the header of a `.npy` file. */
export async function readNpyHeader(path: string): Promise<NpyHeader> {
  const fh = await openForReading(path);
  try {
    return await readHeaderFrom(fh, path);
  } finally {
    await fh.close();
  }
}

/** An open `.npy` file from which row ranges are read without loading the rest. Close it when done. */
export interface NpyReader<D extends NpyDtype = NpyDtype> {
  readonly path: string;
  readonly header: NpyHeader & { readonly dtype: D };
  /** Values per row (product of the shape after the first dimension). */
  readonly rowSize: number;
  /** Number of rows (the first dimension). */
  readonly rows: number;
  /** Rows `start … start+count−1` as one typed array of `count × rowSize` values; `into` is filled when given. */
  readRows(start: number, count: number, into?: NpyArrayTypes[D]): Promise<NpyArrayTypes[D]>;
  close(): Promise<void>;
}

/** Opens a `.npy` file for row-slice reads; `dtype`, when given, must match the file's. */
export async function openNpyReader<D extends NpyDtype = NpyDtype>(path: string, dtype?: D): Promise<NpyReader<D>> {
  const fh = await openForReading(path);
  let header: NpyHeader;
  try {
    header = await readHeaderFrom(fh, path);
    if (dtype !== undefined && header.dtype !== dtype) {
      throw new NpyFormatError(path, `holds ${header.dtype} ('${header.descr}') but ${dtype} was expected`);
    }
    if (header.shape.length === 0) throw new NpyFormatError(path, "holds a 0-d array, which has no rows; use readNpy");
  } catch (error) {
    await fh.close();
    throw error;
  }
  const rows = header.shape[0];
  const rowSize = header.shape.slice(1).reduce((a, b) => a * b, 1);
  const typed = header as NpyHeader & { readonly dtype: D };
  return {
    path,
    header: typed,
    rowSize,
    rows,
    async readRows(start: number, count: number, into?: NpyArrayTypes[D]): Promise<NpyArrayTypes[D]> {
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 0 || start + count > rows) {
        throw new RangeError(`${path}: rows ${start}…${start + count - 1} requested, but the file has rows 0…${rows - 1}`);
      }
      const out = into ?? allocate(typed.dtype, count * rowSize);
      if (out.length < count * rowSize) throw new RangeError(`${path}: the target array holds ${out.length} values, ${count * rowSize} needed`);
      const bytes = new Uint8Array(out.buffer, out.byteOffset, count * rowSize * header.itemSize);
      await readFully(fh, path, bytes, header.dataOffset + start * rowSize * header.itemSize);
      return out;
    },
    close: () => fh.close(),
  };
}

/** Reads rows `start … start+count−1` of a `.npy` file (first dimension), reading only those bytes. */
export async function readNpyRows(path: string, start: number, count: number): Promise<NpyArray> {
  const reader = await openNpyReader(path);
  try {
    const data = await reader.readRows(start, count);
    return { dtype: reader.header.dtype, shape: [count, ...reader.header.shape.slice(1)], data } as NpyArray;
  } finally {
    await reader.close();
  }
}

/** Reads a whole `.npy` file. */
export async function readNpy(path: string): Promise<NpyArray> {
  const fh = await openForReading(path);
  try {
    const header = await readHeaderFrom(fh, path);
    const data = allocate(header.dtype, header.size);
    await readFully(fh, path, bytesOf(data), header.dataOffset);
    return { dtype: header.dtype, shape: header.shape, data } as NpyArray;
  } finally {
    await fh.close();
  }
}

/** Writes a whole array as a `.npy` file atomically (temporary file, then rename). */
export async function writeNpy(path: string, data: NpyData, shape: readonly number[]): Promise<void> {
  const dtype = npyDtypeOf(data);
  const size = shapeSize(shape);
  if (size !== data.length) {
    throw new RangeError(`writeNpy(${path}): shape [${shape.join(", ")}] has ${size} values but the array has ${data.length}`);
  }
  const writer = await createNpyWriter(path, dtype, shape);
  try {
    if (shape.length === 0) await writer.writeRaw(data);
    else await writer.writeRows(data);
    await writer.close();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

/** A `.npy` file written row by row; it appears at its path only when `close()` succeeds. */
export interface NpyWriter<D extends NpyDtype = NpyDtype> {
  readonly path: string;
  readonly dtype: D;
  readonly shape: readonly number[];
  /** Rows appended so far. */
  readonly rowsWritten: number;
  /** Appends whole rows (a multiple of the row size in values). */
  writeRows(rows: NpyArrayTypes[D]): Promise<void>;
  /** Appends values without the whole-row check (0-d arrays). */
  writeRaw(values: NpyArrayTypes[D]): Promise<void>;
  /** Checks every row was written, flushes, and renames the temporary file to `path`. */
  close(): Promise<void>;
  /** Removes the temporary file; `path` is left as it was. Safe to call twice or after `close()`. */
  abort(): Promise<void>;
}

/**
 * Starts writing a `.npy` file of the given dtype and shape. Rows go to a temporary file beside `path`; `close()`
 * renames it into place once `shape[0]` rows were written, so an interrupted write never leaves a partial file.
 */
export async function createNpyWriter<D extends NpyDtype>(path: string, dtype: D, shape: readonly number[]): Promise<NpyWriter<D>> {
  const total = shapeSize(shape, `createNpyWriter(${path}): shape`);
  const rowSize = shape.length === 0 ? 1 : shape.slice(1).reduce((a, b) => a * b, 1);
  const rowsExpected = shape.length === 0 ? 1 : shape[0];
  const file = await openAtomic(path);
  const fh = file.handle;
  let finished = false;
  let valuesWritten = 0;
  try {
    await writeFully(fh, encodeNpyHeader(dtype, shape), null);
  } catch (error) {
    await file.abort();
    throw error;
  }
  const check = (values: NpyData): void => {
    if (finished) throw new Error(`${path}: the writer was already closed`);
    if (npyDtypeOf(values) !== dtype) throw new TypeError(`${path}: writing ${npyDtypeOf(values)} values into a ${dtype} file`);
    if (valuesWritten + values.length > total) {
      throw new RangeError(`${path}: shape [${shape.join(", ")}] holds ${total} values; writing ${values.length} more after ${valuesWritten} overflows it`);
    }
  };
  const writer: NpyWriter<D> = {
    path,
    dtype,
    shape,
    get rowsWritten() {
      return rowSize === 0 ? 0 : Math.floor(valuesWritten / rowSize);
    },
    async writeRows(rows) {
      check(rows);
      if (rowSize > 0 && rows.length % rowSize !== 0) {
        throw new RangeError(`${path}: ${rows.length} values is not a whole number of rows of ${rowSize} values`);
      }
      await writeFully(fh, bytesOf(rows), null);
      valuesWritten += rows.length;
    },
    async writeRaw(values) {
      check(values);
      await writeFully(fh, bytesOf(values), null);
      valuesWritten += values.length;
    },
    async close() {
      if (finished) return;
      if (valuesWritten !== total) {
        await writer.abort();
        throw new Error(
          `${path}: closed after ${writer.rowsWritten} of ${rowsExpected} rows (shape [${shape.join(", ")}]); nothing was written — write every row before close()`,
        );
      }
      finished = true;
      await file.commit();
    },
    async abort() {
      if (finished) return;
      finished = true;
      await file.abort();
    },
  };
  return writer;
}

/** Throws naming the first row with a NaN or infinite value (data is row-major [rows, cols]). */
export function checkFiniteRows(data: Float32Array, cols: number, source: string, firstRow = 0): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      const row = firstRow + Math.floor(i / cols);
      throw new Error(`${source}: row ${row} has a ${Number.isNaN(data[i]) ? "NaN" : "infinite"} value (column ${i % cols}): re-create the vectors (notebook 03) or drop that row`);
    }
  }
}
