// Images in, float32 NHWC batches out: decoding (TurboJPEG or sharp, on lib/data/decode-pool's threads in `post` mode),
// resizing the post's way or a better way, decoding ahead of the consumer, and an optional uint8 cache so that later
// epochs do not decode again.
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
// Both: RGB (an alpha channel is dropped, as PIL's `convert("RGB")` drops it; greyscale is repeated in R, G, B),
// values in [0, 1], EXIF orientation not applied (PIL, and so ImageFolder, does not apply it either).
// CMYK JPEGs are converted through an ICC profile by sharp, unlike PIL's naive formula; CelebA has none.
//
// The cache (`cache: path.npy`) is a uint8 `.npy` of shape (N, size, size, 3) with its key — size, mode, count and
// a SHA-256 of the file list — in `path.npy.json`. A missing or stale cache is built during the first pass (rows
// written at their offsets into a temporary file, renamed into place when every row is written); later passes read
// batches from it with positioned reads, never the whole file. Cached values are uint8, so in `post` mode they are
// the float result rounded to the nearest 1/255 (at most 0.5/255 ≈ 0.002 away); every pass of a cached loader,
// including the first, returns these rounded values, so all epochs see identical inputs. The key covers the list of
// paths, not the files' contents: after replacing images in place under the same names, delete the cache. A pass
// over only some images (a partial order, or stopping early) leaves the cache unfinished; a later pass of the same
// loader decodes only what is missing, and `buildCache()` finishes it outright.

import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, open, readFile, readdir, rename, rm, type FileHandle } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { basename, dirname, join } from "node:path";
import sharp, { type Metadata, type Sharp } from "sharp";
import { encodeNpyHeader, readNpyHeader } from "../formats/npy";
import { temporaryPathFor, writeFileAtomic } from "../util/atomic-write";
import { DecodeImageError, DecodeThreadError, decodePool, type DecodePool } from "./decode-pool";
import { resizeKernel } from "../kernels/resize-kernel";
import { jpegDecoder } from "../kernels/turbojpeg";

/** How images become size×size: the post's stretch-and-bilinear, or centre-crop and Lanczos-3. */
export type ResizeMode = "post" | "recommended";
export const RESIZE_MODES: readonly ResizeMode[] = ["post", "recommended"];

/** What to do with an image that cannot be read or decoded. */
export type BadImagePolicy = "error" | "skip";

export interface ResizeOptions {
  /** Side of the square output, in pixels (the post: 224). */
  readonly size: number;
  readonly mode: ResizeMode;
}

/** One decoded image: `data[(y * width + x) * 3 + c]`, RGB. */
export interface RgbImage<T extends Uint8Array | Float32Array = Uint8Array> {
  readonly data: T;
  readonly width: number;
  readonly height: number;
}

/** An image that could not be read or decoded, naming the file (absolute path) and how to go on without it. */
export class BadImageError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(
      `Could not decode image ${file}: ${reason}. Replace or delete the file, or set onBadImage: "skip" ` +
        "to leave unreadable images out of the batches (they are counted and listed in the loader's stats).",
    );
    this.name = "BadImageError";
  }
}

function checkResizeOptions({ size, mode }: ResizeOptions): void {
  if (!Number.isSafeInteger(size) || size < 1 || size > 4096) throw new RangeError(`image size must be a whole number of pixels from 1 to 4096, got ${size}`);
  if (!RESIZE_MODES.includes(mode)) throw new RangeError(`resize mode must be one of ${RESIZE_MODES.join(", ")}, got ${String(mode)}`);
}

/** Keeps R, G, B of 1–4 channel pixels: grey is repeated, alpha dropped. */
function toRgb(data: Uint8Array, pixels: number, channels: number): Uint8Array {
  if (channels === 3) return data;
  const out = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    const s = p * channels;
    if (channels <= 2) {
      out[p * 3] = out[p * 3 + 1] = out[p * 3 + 2] = data[s];
    } else {
      out[p * 3] = data[s];
      out[p * 3 + 1] = data[s + 1];
      out[p * 3 + 2] = data[s + 2];
    }
  }
  return out;
}

/** The file's bytes; `blocking` reads on this thread (for a small file, much cheaper than the async read). */
async function readBytes(file: string, blocking = false): Promise<Buffer> {
  try {
    return blocking ? readFileSync(file) : await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new BadImageError(file, code === "ENOENT" ? "the file does not exist" : `the file cannot be read (${code ?? String(error)})`);
  }
}

/** libvips repeats its warnings over several lines; one line, each message once, reads better in an error. */
function reasonOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return [...new Set(text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== ""))].join("; ");
}

async function rawRgb(file: string, pipeline: Sharp): Promise<RgbImage> {
  try {
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return { data: toRgb(bytes, info.width * info.height, info.channels), width: info.width, height: info.height };
  } catch (error) {
    throw new BadImageError(file, reasonOf(error));
  }
}

/**
 * Decodes an image file to RGB uint8 at its own size (what PIL's `Image.open(f).convert("RGB")` gives). With
 * `blocking`, the file read and a TurboJPEG decode block this thread (lib/data/decode-worker's threads do that).
 */
export async function decodeRgb(file: string, blocking = false): Promise<RgbImage> {
  const bytes = await readBytes(file, blocking);
  const { turbo } = jpegDecoder();
  if (turbo !== null) {
    let image: RgbImage | null;
    try {
      image = await turbo.decode(bytes, blocking);
    } catch (error) {
      throw new BadImageError(file, reasonOf(error));
    }
    if (image !== null) return image;
  }
  return rawRgb(file, sharp(bytes, { failOn: "warning" }));
}

/** Python's `round()`: halves go to the even neighbour (torchvision's `CenterCrop` uses it for its offsets). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The centred square torchvision's `CenterCrop(min(w, h))` keeps: left, top and side. */
export function centreSquare(width: number, height: number): { left: number; top: number; side: number } {
  const side = Math.min(width, height);
  return { left: roundHalfEven((width - side) / 2), top: roundHalfEven((height - side) / 2), side };
}

/** Decodes, centre-crops to a square and resizes with Lanczos-3 (the `recommended` mode), RGB uint8. */
export async function decodeRecommended(file: string, size: number): Promise<RgbImage> {
  const bytes = await readBytes(file);
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { failOn: "warning" }).metadata();
  } catch (error) {
    throw new BadImageError(file, reasonOf(error));
  }
  const { left, top, side } = centreSquare(meta.width ?? 0, meta.height ?? 0);
  const pipeline = sharp(bytes, { failOn: "warning" })
    .extract({ left, top, width: side, height: side })
    .resize(size, size, { fit: "fill", kernel: "lanczos3" });
  return rawRgb(file, pipeline);
}

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

/**
 * Runs `onThreads` on lib/data/decode-pool's threads where they are on (`onThreads` null: never), else — or when a
 * thread failed — `here` on this thread. An image a thread could not decode is a BadImageError naming `file`.
 */
async function onDecodeThreads<T>(file: string, onThreads: ((pool: DecodePool) => Promise<T>) | null, here: () => Promise<T>): Promise<T> {
  const pool = onThreads === null ? null : decodePool();
  if (onThreads === null || pool === null || !pool.working) return here();
  try {
    return await onThreads(pool);
  } catch (error) {
    if (error instanceof DecodeImageError) throw new BadImageError(file, error.reason);
    if (error instanceof DecodeThreadError) return here();
    throw error;
  }
}

/** One image as float32 HWC in [0, 1], `shape = [size, size, 3]`. */
export async function decodeImage(file: string, options: ResizeOptions): Promise<{ data: Float32Array; shape: [number, number, number] }> {
  checkResizeOptions(options);
  const data = new Float32Array(options.size * options.size * 3);
  await decodeInto(file, options, data);
  return { data, shape: [options.size, options.size, 3] };
}

// ---------------------------------------------------------------------------------------------------------------
// Batches

// Shared memory the decode threads write batches into, kept for reuse by every loader of the process (at most
// SHARED_BATCHES_KEPT_BYTES of it idle): SharedArrayBuffers are freed only by a full garbage collection, so a new one
// per batch let a process grow by gigabytes.
const SHARED_BATCHES_KEPT_BYTES = 512 * 2 ** 20;
const sharedBatches: SharedArrayBuffer[] = [];

function takeShared(bytes: number): SharedArrayBuffer {
  const i = sharedBatches.findIndex((b) => b.byteLength === bytes);
  return i >= 0 ? sharedBatches.splice(i, 1)[0] : new SharedArrayBuffer(bytes);
}

function releaseShared(data: Float32Array): void {
  const { buffer } = data;
  if (!(buffer instanceof SharedArrayBuffer) || sharedBatches.includes(buffer)) return;
  sharedBatches.push(buffer);
  let kept = sharedBatches.reduce((sum, b) => sum + b.byteLength, 0);
  while (kept > SHARED_BATCHES_KEPT_BYTES) kept -= (sharedBatches.shift() as SharedArrayBuffer).byteLength; // oldest first
}

/** A batch of images, NHWC float32 in [0, 1]. `indices[k]` is the dataset index of image k of the batch. */
export interface ImageBatch {
  readonly indices: Int32Array;
  /** Absolute paths, `files[k]` for `indices[k]`. */
  readonly files: string[];
  readonly data: Float32Array;
  readonly shape: [number, number, number, 3];
}

export interface ImageLoaderOptions extends ResizeOptions {
  readonly batchSize: number;
  /** Batches decoded ahead of the consumer (default 2). Memory: at most `prefetch + 1` batches exist at once. */
  readonly prefetch?: number;
  /**
   * Images decoded at the same time (default: twice the CPU cores, 4–8). More than the cores, so that every decode
   * thread (lib/data/decode-pool) has the next image queued when it finishes one.
   */
  readonly concurrency?: number;
  /** `error` (default): stop with an error naming the file. `skip`: leave it out of its batch and record it. */
  readonly onBadImage?: BadImagePolicy;
  /** Path of a uint8 `.npy` cache of the decoded images (its key goes to `<path>.json`); none when omitted. */
  readonly cache?: string;
  /** Called as batches are started, decoded and handed over (for progress display and tests). */
  readonly onEvent?: (event: LoaderEvent) => void;
  /**
   * Lets a batch's `data` be shared memory that the loader reuses once the next batch is asked for (default false:
   * every batch gets memory of its own). For loops that are done with a batch when they ask for the next one, as
   * embedding and fine-tuning are: the decode threads then write straight into the batch, skipping a copy and the
   * first touch of fresh memory (at 224 px about half the decode time).
   */
  readonly reuseBatchMemory?: boolean;
}

/** What the loader is doing: batch `batch` (0-based position in this pass) started, decoded, or handed over. */
export type LoaderEvent =
  | { readonly type: "batch-start"; readonly batch: number }
  | { readonly type: "batch-ready"; readonly batch: number }
  | { readonly type: "batch-yield"; readonly batch: number; readonly waitedMs: number }
  | { readonly type: "cache-built"; readonly path: string };

/** Counters for the caller; they grow over every pass of the loader. */
export interface LoaderStats {
  /** Images decoded with sharp. */
  decoded: number;
  /** Images read from the cache file instead. */
  cacheReads: number;
  /** Images left out of batches (each time one was left out). */
  skipped: number;
  /** Every unreadable image found, once each, with the reason. */
  readonly badImages: { readonly file: string; readonly reason: string }[];
  /** Milliseconds the consumer waited for a batch that was not decoded yet when it asked. */
  waitMs: number;
  /** `off` (no cache), `pending` (not opened yet), `hit` (a valid cache was found), `building` (being written) or `built`. */
  cache: "off" | "pending" | "hit" | "building" | "built";
  /** Why the cache was (re)built, e.g. `no cache yet` or `the file list changed`. */
  cacheNote: string;
}

export interface BatchOptions {
  /** Dataset indices in the order to visit them (default 0 … N−1). Shuffle here for training. */
  readonly order?: ArrayLike<number>;
  /** Overrides the loader's batch size for this pass. */
  readonly batchSize?: number;
}

export interface ImageLoader {
  readonly count: number;
  readonly size: number;
  readonly mode: ResizeMode;
  readonly stats: LoaderStats;
  /** Batches over `order` (default: listing order), decoded ahead with bounded prefetch. */
  batches(options?: BatchOptions): AsyncGenerator<ImageBatch, void, undefined>;
  /** Makes sure the cache file exists and is complete, decoding what is missing (no-op without `cache`). */
  buildCache(): Promise<void>;
  /** Closes the cache file; an unfinished cache's temporary file is removed. */
  close(): Promise<void>;
}

/** Key of a cache: the cache is valid only for the same images, size and mode. */
interface CacheKey {
  readonly format: "celeba-sae image cache";
  readonly version: 1;
  readonly size: number;
  readonly mode: ResizeMode;
  readonly count: number;
  /** SHA-256 of the absolute file paths joined by newlines. */
  readonly filesHash: string;
}

interface CacheMeta extends CacheKey {
  /** Images that could not be decoded: their rows are zeros. */
  readonly bad: readonly { readonly index: number; readonly reason: string }[];
}

function filesHash(files: readonly string[]): string {
  return createHash("sha256").update(files.join("\n")).digest("hex");
}

/** Why the stored cache is not valid for `key`, or null when it is. */
async function staleReason(path: string, key: CacheKey): Promise<string | null> {
  if (!existsSync(path)) return "no cache yet";
  let meta: Partial<CacheMeta>;
  try {
    meta = JSON.parse(await readFile(`${path}.json`, "utf8")) as Partial<CacheMeta>;
  } catch {
    return `its key file ${path}.json is missing or unreadable`;
  }
  if (meta.format !== key.format || meta.version !== key.version) return "it was written by another version";
  if (meta.size !== key.size || meta.mode !== key.mode) return `it holds ${meta.mode} ${meta.size}px images, ${key.mode} ${key.size}px wanted`;
  if (meta.count !== key.count || meta.filesHash !== key.filesHash) return "the file list changed";
  try {
    const header = await readNpyHeader(path);
    if (header.dtype !== "uint8") return `it holds ${header.dtype}, not uint8`;
    if (header.shape.join() !== [key.count, key.size, key.size, 3].join()) return `its shape is (${header.shape.join(", ")})`;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  return null;
}

/** Removes temporary cache files left by processes that no longer run. */
async function removeDeadTemporaries(path: string): Promise<void> {
  const prefix = `${basename(path)}.tmp-`;
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split("-")[0]);
    let alive = false;
    try {
      process.kill(pid, 0);
      alive = true;
    } catch (error) {
      alive = (error as NodeJS.ErrnoException).code === "EPERM";
    }
    if (!alive) await rm(join(dirname(path), name), { force: true });
  }
}

/** Reads exactly `target.length` bytes at `position`, or throws naming the cache file. */
async function readAt(fh: FileHandle, file: string, target: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await fh.read(target, done, target.length - done, position + done);
    if (bytesRead === 0) throw new Error(`the image cache ${file} ended early (at byte ${position + done}); delete it and it will be rebuilt`);
    done += bytesRead;
  }
}

/** A FIFO limit on how many tasks run at once. */
function createLimiter(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active >= limit) await new Promise<void>((resolve) => queue.push(resolve)); // a finishing task hands over its slot
    else active++;
    try {
      return await task();
    } finally {
      const next = queue.shift();
      if (next) next();
      else active--;
    }
  };
}

const NOT_WRITTEN = 0;
const WRITTEN = 1;
const BAD = 2;

/** An open cache file: row i starts at `dataOffset + i × size × size × 3`. */
interface RowFile {
  readonly fh: FileHandle;
  readonly dataOffset: number;
}

/**
 * The cache while this loader writes it: rows land at their offsets in a temporary file. Once every row is written
 * the file is renamed into place and the same handle keeps serving reads (a rename does not disturb open handles),
 * so a batch reading while another finishes the cache never sees a closed file.
 */
interface BuildingCache extends RowFile {
  readonly kind: "building";
  readonly temp: string;
  /** Per image: NOT_WRITTEN, WRITTEN or BAD. */
  readonly state: Uint8Array;
  readonly reasons: Map<number, string>;
  remaining: number;
  readonly writes: Set<Promise<void>>;
}

interface ReadyCache extends RowFile {
  readonly kind: "ready";
  readonly bad: Map<number, string>;
}

type CacheState = { readonly kind: "off" } | BuildingCache | ReadyCache;

/**
 * A loader over a list of image files (absolute paths, e.g. `dataset.paths`), giving float32 NHWC batches of
 * size×size RGB images in [0, 1].
 */
export function createImageLoader(files: readonly string[] | { readonly paths: readonly string[] }, options: ImageLoaderOptions): ImageLoader {
  const paths = "paths" in files ? files.paths : files;
  checkResizeOptions(options);
  const { size, mode, onBadImage = "error", onEvent } = options;
  const prefetch = options.prefetch ?? 2;
  const concurrency = options.concurrency ?? Math.min(8, Math.max(4, 2 * availableParallelism()));
  const positive = (value: number, name: string): void => {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive whole number, got ${value}`);
  };
  positive(options.batchSize, "batchSize");
  positive(prefetch, "prefetch");
  positive(concurrency, "concurrency");
  if (onBadImage !== "error" && onBadImage !== "skip") throw new RangeError(`onBadImage must be "error" or "skip", got ${String(onBadImage)}`);
  if (paths.length === 0) throw new RangeError("the image loader got no files; open the dataset first and pass dataset.paths");

  const count = paths.length;
  const pixels = size * size * 3;
  const reuseBatchMemory = options.reuseBatchMemory === true;
  const limit = createLimiter(concurrency);
  const stats: LoaderStats = { decoded: 0, cacheReads: 0, skipped: 0, badImages: [], waitMs: 0, cache: options.cache ? "pending" : "off", cacheNote: "" };
  const badSeen = new Set<number>();
  let cache: CacheState = { kind: "off" };
  let cacheInit: Promise<void> | null = null;
  let finalizing: Promise<void> | null = null;

  const recordBad = (index: number, reason: string): void => {
    if (badSeen.has(index)) return;
    badSeen.add(index);
    stats.badImages.push({ file: paths[index], reason });
  };

  const initCache = async (path: string): Promise<void> => {
    const key: CacheKey = { format: "celeba-sae image cache", version: 1, size, mode, count, filesHash: filesHash(paths) };
    const reason = await staleReason(path, key);
    if (reason === null) {
      const meta = JSON.parse(await readFile(`${path}.json`, "utf8")) as CacheMeta;
      const { dataOffset } = await readNpyHeader(path);
      cache = { kind: "ready", fh: await open(path, "r"), dataOffset, bad: new Map(meta.bad.map((b) => [b.index, b.reason])) };
      stats.cache = "hit";
      return;
    }
    stats.cache = "building";
    stats.cacheNote = reason;
    await mkdir(dirname(path), { recursive: true });
    await removeDeadTemporaries(path);
    const temp = temporaryPathFor(path);
    const header = encodeNpyHeader("uint8", [count, size, size, 3]);
    const fh = await open(temp, "w+");
    await fh.write(header, 0, header.length, 0);
    await fh.truncate(header.length + count * pixels);
    cache = { kind: "building", fh, temp, dataOffset: header.length, state: new Uint8Array(count), reasons: new Map(), remaining: count, writes: new Set() };
  };

  const ensureCacheState = (): Promise<void> => {
    if (!options.cache) return Promise.resolve();
    cacheInit ??= initCache(options.cache);
    return cacheInit;
  };

  /** Renames a completely written cache into place, with its key beside it. */
  const finalizeCache = async (building: BuildingCache): Promise<void> => {
    const path = options.cache!;
    await Promise.all(building.writes);
    await building.fh.sync();
    const bad = [...building.reasons].map(([index, reason]) => ({ index, reason })).sort((a, b) => a.index - b.index);
    const meta: CacheMeta = { format: "celeba-sae image cache", version: 1, size, mode, count, filesHash: filesHash(paths), bad };
    await rm(`${path}.json`, { force: true });
    await rename(building.temp, path);
    await writeFileAtomic(`${path}.json`, JSON.stringify(meta, null, 1));
    cache = { kind: "ready", fh: building.fh, dataOffset: building.dataOffset, bad: building.reasons };
    stats.cache = "built";
    onEvent?.({ type: "cache-built", path });
  };

  /** Decodes image `index` into `out` at `offset` (float32) — and into the cache when one is being built. */
  const decodeOne = async (index: number, out: Float32Array, offset: number): Promise<boolean> => {
    const building = cache.kind === "building" ? cache : null;
    try {
      const file = paths[index];
      const threaded = mode === "post";
      if (building) {
        const row = await onDecodeThreads(file, threaded ? (pool) => pool.decodeUint8(file, size) : null, () => decodeUint8(file, options));
        stats.decoded++;
        const write = building.fh.write(row, 0, pixels, building.dataOffset + index * pixels).then(() => undefined);
        building.writes.add(write);
        await write.finally(() => building.writes.delete(write));
        if (building.state[index] === NOT_WRITTEN) {
          building.state[index] = WRITTEN;
          building.remaining--;
        }
        bytesToUnitFloat(row, out, offset);
      } else {
        const { buffer } = out;
        const shared = threaded && buffer instanceof SharedArrayBuffer && out.byteOffset === 0 ? buffer : null;
        await onDecodeThreads(file, shared ? (pool) => pool.decodeInto(file, size, shared, offset) : null, () => decodeInto(file, options, out, offset));
        stats.decoded++;
      }
      return true;
    } catch (error) {
      if (!(error instanceof BadImageError)) throw error;
      recordBad(index, error.reason);
      if (building && building.state[index] === NOT_WRITTEN) {
        building.state[index] = BAD;
        building.reasons.set(index, error.reason);
        building.remaining--;
      }
      if (onBadImage === "error") throw error;
      return false;
    }
  };

  /** Reads cached rows for `indices[k]`, k in `ks`, into `out` at `k * pixels`; contiguous runs are read at once. */
  const readCached = async ({ fh, dataOffset }: RowFile, indices: ArrayLike<number>, ks: number[], out: Float32Array): Promise<void> => {
    let start = 0;
    while (start < ks.length) {
      let end = start + 1;
      while (end < ks.length && indices[ks[end]] === indices[ks[end - 1]] + 1 && ks[end] === ks[end - 1] + 1) end++;
      const run = end - start;
      const first = indices[ks[start]];
      const bytes = new Uint8Array(run * pixels);
      await readAt(fh, options.cache!, bytes, dataOffset + first * pixels);
      bytesToUnitFloat(bytes, out, ks[start] * pixels);
      stats.cacheReads += run;
      start = end;
    }
  };

  /** Loads one batch: indices in, the images that could be read out. */
  const loadBatch = async (indices: Int32Array): Promise<ImageBatch> => {
    await ensureCacheState();
    const n = indices.length;
    // Images decoded on lib/data/decode-pool's threads are written straight into the batch: shared memory. Unless the
    // consumer lets the loader reuse it, the batch it gets is a copy and the shared memory is reused at once.
    const pool = mode === "post" && cache.kind !== "ready" ? decodePool() : null;
    const data = pool !== null && pool.working ? new Float32Array(takeShared(n * pixels * 4)) : new Float32Array(n * pixels);
    try {
      const batch = await decodeBatch(indices, data);
      if (batch.data !== data) releaseShared(data); // images were left out: the batch holds a compacted copy
      else if (!reuseBatchMemory && data.buffer instanceof SharedArrayBuffer) {
        const own = data.slice(); // a Float32Array of its own, not shared
        releaseShared(data);
        return { ...batch, data: own };
      }
      return batch;
    } catch (error) {
      releaseShared(data);
      throw error;
    }
  };

  /** Decodes (or reads from the cache) the images of one batch into `data`. */
  const decodeBatch = async (indices: Int32Array, data: Float32Array): Promise<ImageBatch> => {
    const n = indices.length;
    const ok = new Uint8Array(n);
    const current = cache;
    const fromFile: number[] = [];
    const toDecode: number[] = [];
    for (let k = 0; k < n; k++) {
      const index = indices[k];
      if (current.kind === "ready" || (current.kind === "building" && current.state[index] !== NOT_WRITTEN)) {
        const reason = current.kind === "ready" ? current.bad.get(index) : current.reasons.get(index);
        if (reason !== undefined) {
          recordBad(index, reason);
          if (onBadImage === "error") throw new BadImageError(paths[index], `${reason} (remembered in the cache ${options.cache}; delete that file to try decoding again)`);
          continue;
        }
        fromFile.push(k);
        ok[k] = 1;
      } else toDecode.push(k);
    }
    const work: Promise<void>[] = toDecode.map((k) => limit(() => decodeOne(indices[k], data, k * pixels)).then((good) => void (ok[k] = good ? 1 : 0)));
    if (fromFile.length > 0 && current.kind !== "off") work.push(readCached(current, indices, fromFile, data));
    const settled = await Promise.allSettled(work); // every piece finishes before the batch succeeds or fails
    const failure = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failure) throw failure.reason;
    if (cache.kind === "building" && cache.remaining === 0) {
      finalizing ??= finalizeCache(cache);
      await finalizing;
    }
    let kept = 0;
    for (let k = 0; k < n; k++) kept += ok[k];
    stats.skipped += n - kept;
    if (kept === n) return { indices, files: Array.from(indices, (i) => paths[i]), data, shape: [n, size, size, 3] };
    const keptIndices = new Int32Array(kept);
    const keptData = new Float32Array(kept * pixels);
    for (let k = 0, j = 0; k < n; k++) {
      if (!ok[k]) continue;
      keptIndices[j] = indices[k];
      keptData.set(data.subarray(k * pixels, (k + 1) * pixels), j * pixels);
      j++;
    }
    return { indices: keptIndices, files: Array.from(keptIndices, (i) => paths[i]), data: keptData, shape: [kept, size, size, 3] };
  };

  const checkedOrder = (order: ArrayLike<number> | undefined): Int32Array => {
    if (order === undefined) return Int32Array.from({ length: count }, (_, i) => i);
    const out = new Int32Array(order.length);
    for (let i = 0; i < order.length; i++) {
      const v = order[i];
      if (!Number.isInteger(v) || v < 0 || v >= count) throw new RangeError(`order[${i}] = ${v} is not an image index (0 … ${count - 1})`);
      out[i] = v;
    }
    return out;
  };

  async function* batches(batchOptions: BatchOptions = {}): AsyncGenerator<ImageBatch, void, undefined> {
    const order = checkedOrder(batchOptions.order);
    const batchSize = batchOptions.batchSize ?? options.batchSize;
    positive(batchSize, "batchSize");
    const total = Math.ceil(order.length / batchSize);
    const inflight: { batch: number; promise: Promise<ImageBatch>; ready: boolean }[] = [];
    let next = 0;
    const start = (): void => {
      while (inflight.length < prefetch && next < total) {
        const batch = next++;
        onEvent?.({ type: "batch-start", batch });
        const entry = { batch, promise: loadBatch(order.slice(batch * batchSize, Math.min(order.length, (batch + 1) * batchSize))), ready: false };
        entry.promise.then(
          () => {
            entry.ready = true;
            onEvent?.({ type: "batch-ready", batch });
          },
          () => undefined, // awaited (and so reported) below, in order
        );
        inflight.push(entry);
      }
    };
    try {
      start();
      while (inflight.length > 0) {
        const entry = inflight.shift()!;
        const asked = performance.now();
        const wasReady = entry.ready;
        const result = await entry.promise;
        const waitedMs = wasReady ? 0 : performance.now() - asked;
        stats.waitMs += waitedMs;
        start(); // the consumer is about to work on `result`: keep `prefetch` batches decoding meanwhile
        onEvent?.({ type: "batch-yield", batch: entry.batch, waitedMs });
        if (result.indices.length > 0) yield result;
        if (reuseBatchMemory) releaseShared(result.data); // the consumer asked for the next batch: done with this one
      }
    } finally {
      // Stopped early or failed: let batches still decoding finish so that no work outlives the pass unseen.
      await Promise.allSettled(inflight.map((e) => e.promise));
    }
  }

  return {
    count,
    size,
    mode,
    stats,
    batches,
    async buildCache() {
      if (!options.cache) return;
      await ensureCacheState();
      if (cache.kind !== "building") return;
      const missing: number[] = [];
      for (let i = 0; i < count; i++) if (cache.state[i] === NOT_WRITTEN) missing.push(i);
      for await (const _ of batches({ order: missing })) {
        // decoding is the work; the batches themselves are not needed
      }
    },
    async close() {
      const current = cache;
      cache = { kind: "off" };
      cacheInit = null;
      finalizing = null;
      if (current.kind === "ready") await current.fh.close();
      if (current.kind === "building") {
        await Promise.allSettled(current.writes);
        await current.fh.close();
        await rm(current.temp, { force: true });
      }
    },
  };
}
