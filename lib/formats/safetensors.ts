// The safetensors format (https://huggingface.co/docs/safetensors), the layout of Hugging Face / timm weights and of
// the weights this project saves so that PyTorch users can load them.
//
// Layout: an 8-byte little-endian unsigned header length N, then N bytes of UTF-8 JSON
// `{"name": {"dtype": "F32", "shape": [64, 3, 7, 7], "data_offsets": [begin, end]}, …, "__metadata__": {…}}`
// (padded with spaces to a multiple of 8 bytes), then the tensors' bytes, little-endian, C order; the offsets
// count from the first byte after the header. Every write goes to a temporary file that is renamed over the target.

import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "../util/atomic-write";

/** The dtypes read (F16 and BF16 appear in downloaded weights) and written. */
export type SafetensorsDtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** The typed array holding each dtype's values as stored (F16/BF16 as raw 16-bit words: see `toFloat32`). */
export interface SafetensorsArrayTypes {
  F64: Float64Array;
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
}

/** One tensor: its dtype, shape and values in C order. */
export interface SafetensorsTensor<D extends SafetensorsDtype = SafetensorsDtype> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: SafetensorsArrayTypes[D];
}

/** Everything in a file: the tensors in the file's order and the free-form string metadata. */
export interface SafetensorsFile {
  readonly tensors: Map<string, SafetensorsTensor>;
  readonly metadata: Readonly<Record<string, string>>;
}

/** A safetensors file that cannot be read or written, naming the file and what to do. */
export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = "SafetensorsError";
  }
}

const ITEM_SIZE: Record<SafetensorsDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
/** Headers larger than this are refused (the reference implementation's limit is 100 MB). */
const MAX_HEADER = 100_000_000;

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === "string" && Object.prototype.hasOwnProperty.call(ITEM_SIZE, value);
}

function shapeSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A typed array over a copy of `bytes` (copied so it is aligned and owns its memory; Buffer.slice would not copy). */
function typedArrayOf<D extends SafetensorsDtype>(dtype: D, bytes: Uint8Array): SafetensorsArrayTypes[D] {
  const buffer = new Uint8Array(bytes).buffer;
  const n = bytes.length / ITEM_SIZE[dtype];
  const arrays: { [K in SafetensorsDtype]: () => SafetensorsArrayTypes[K] } = {
    F64: () => new Float64Array(buffer, 0, n),
    F32: () => new Float32Array(buffer, 0, n),
    F16: () => new Uint16Array(buffer, 0, n),
    BF16: () => new Uint16Array(buffer, 0, n),
    I64: () => new BigInt64Array(buffer, 0, n),
    I32: () => new Int32Array(buffer, 0, n),
    I16: () => new Int16Array(buffer, 0, n),
    I8: () => new Int8Array(buffer, 0, n),
    U8: () => new Uint8Array(buffer, 0, n),
    BOOL: () => new Uint8Array(buffer, 0, n),
  };
  return arrays[dtype]();
}

interface HeaderEntry {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

function parseHeaderEntry(file: string, name: string, value: unknown, dataLength: number): HeaderEntry {
  const bad = (problem: string): SafetensorsError =>
    new SafetensorsError(file, `tensor "${name}" in the header ${problem}; the file is not valid safetensors (re-download or re-save it)`);
  if (typeof value !== "object" || value === null) throw bad("is not an object");
  const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (!isDtype(entry.dtype)) {
    throw new SafetensorsError(
      file,
      `tensor "${name}" has dtype ${JSON.stringify(entry.dtype)}, which is not supported (known: ${Object.keys(ITEM_SIZE).join(", ")}); convert the file to F32`,
    );
  }
  const shape = entry.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad("has no valid shape");
  const offsets = entry.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw bad("has no valid data_offsets");
  }
  const [begin, end] = offsets as [number, number];
  const expected = shapeSize(shape as number[]) * ITEM_SIZE[entry.dtype];
  if (end - begin !== expected) {
    throw bad(`has data_offsets [${begin}, ${end}] (${end - begin} bytes) but ${entry.dtype} [${shape.join(", ")}] needs ${expected} bytes`);
  }
  if (end > dataLength) {
    throw new SafetensorsError(
      file,
      `is truncated: tensor "${name}" ends at byte ${end} of the data but the file holds only ${dataLength} data bytes (re-download or re-save it)`,
    );
  }
  return { dtype: entry.dtype, shape: shape as number[], begin, end };
}

/** Parses a whole safetensors file held in memory; `file` names it in errors. */
export function parseSafetensors(bytes: Uint8Array, file = "<buffer>"): SafetensorsFile {
  if (bytes.length < 8) {
    throw new SafetensorsError(file, `is truncated: ${bytes.length} bytes, shorter than the 8-byte header length (re-download or re-save it)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER)) {
    throw new SafetensorsError(file, `says its header is ${headerLength} bytes long, more than ${MAX_HEADER}: it is not a safetensors file`);
  }
  const n = Number(headerLength);
  if (8 + n > bytes.length) {
    throw new SafetensorsError(file, `is truncated: its header needs ${8 + n} bytes but the file has ${bytes.length} (re-download or re-save it)`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new SafetensorsError(file, `has a header that is not valid JSON (${e instanceof Error ? e.message : String(e)}): it is not a safetensors file`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new SafetensorsError(file, "has a header that is not a JSON object: it is not a safetensors file");
  }
  const data = bytes.subarray(8 + n);
  const tensors = new Map<string, SafetensorsTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || !Object.values(value).every((v) => typeof v === "string")) {
        throw new SafetensorsError(file, "has __metadata__ that is not an object of strings: it is not a valid safetensors file");
      }
      metadata = { ...(value as Record<string, string>) };
      continue;
    }
    const entry = parseHeaderEntry(file, name, value, data.length);
    tensors.set(name, { dtype: entry.dtype, shape: entry.shape, data: typedArrayOf(entry.dtype, data.subarray(entry.begin, entry.end)) });
  }
  return { tensors, metadata };
}

/** Reads a whole `.safetensors` file: tensors (file order) and metadata. */
export async function readSafetensorsFile(path: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SafetensorsError(path, code === "ENOENT" ? "does not exist: check the path (or download the weights first)" : `cannot be read (${String(e)})`);
  }
  return parseSafetensors(bytes, path);
}

/** Reads the tensors of a `.safetensors` file by name. */
export async function readSafetensors(path: string): Promise<Map<string, SafetensorsTensor>> {
  return (await readSafetensorsFile(path)).tensors;
}

/** One IEEE half-precision word as a number. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** A tensor's values as float32, whatever its dtype (F16 and BF16 widened exactly). */
export function toFloat32(tensor: SafetensorsTensor): Float32Array {
  const { dtype, data } = tensor;
  if (dtype === "F32") return data as Float32Array;
  if (dtype === "BF16") {
    const words = data as Uint16Array;
    const bits = new Uint32Array(words.length);
    for (let i = 0; i < words.length; i++) bits[i] = words[i] << 16;
    return new Float32Array(bits.buffer);
  }
  if (dtype === "F16") return Float32Array.from(data as Uint16Array, halfToFloat);
  if (dtype === "I64") return Float32Array.from(data as BigInt64Array, (v) => Number(v));
  return Float32Array.from(data as ArrayLike<number>);
}

function bytesOf(data: SafetensorsArrayTypes[SafetensorsDtype]): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** The file's bytes: header (padded with spaces to 8 bytes) and data, tensors in the given order. */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, SafetensorsTensor>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === "__metadata__") throw new Error(`writeSafetensors: "__metadata__" cannot be a tensor name`);
    if (!isDtype(t.dtype)) throw new Error(`writeSafetensors: tensor "${name}" has unknown dtype ${String(t.dtype)}`);
    const expected = shapeSize(t.shape) * ITEM_SIZE[t.dtype];
    if (t.data.byteLength !== expected) {
      throw new RangeError(
        `writeSafetensors: tensor "${name}" is ${t.dtype} [${t.shape.join(", ")}] (${expected} bytes) but its data has ${t.data.byteLength} bytes`,
      );
    }
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, "utf8");
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    out.set(bytesOf(t.data), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Writes tensors (in the map's order) and optional string metadata as a `.safetensors` file, atomically. */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, SafetensorsTensor>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
