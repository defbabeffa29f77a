// Images in, float32 NHWC batches out: decoding (lib/data/image-decode; on lib/data/decode-pool's threads in `post`
// mode), resizing the post's way or a better way (lib/data/image-resize), decoding ahead of the consumer, and an
// optional uint8 cache (lib/data/image-cache) so that later epochs do not decode again.

import { availableParallelism } from "node:os";

import { basename, dirname } from "node:path";

import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { encodeNpyHeader, readNpyHeader } from "../formats/npy";

import { temporaryPathFor, writeFileAtomic } from "../util/atomic-write";

import { DecodeImageError, DecodeThreadError, decodePool, type DecodePool } from "./decode-pool";

import { BadImageError, checkResizeOptions, type BadImagePolicy, type ResizeMode, type ResizeOptions } from "./image-decode";

import { bytesToUnitFloat, decodeInto, decodeUint8 } from "./image-resize";

import {
  BAD, NOT_WRITTEN, WRITTEN, cacheKeyFor, readAt, staleReason, type BuildingCache, type CacheMeta, type CacheState, type RowFile,
} from "./image-cache";

import { removeDeadTemporaries } from "../util/temporaries";


export {
  BadImageError, centreSquare, decodeRecommended, decodeRgb, RESIZE_MODES, type BadImagePolicy, type ResizeMode, type ResizeOptions, type RgbImage,
} from "./image-decode";
export { bytesToUnitFloat, decodeImage, decodeInto, decodeUint8, resizeBilinearTorch, resizeBilinearTorchUint8 } from "./image-resize";

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
  /** Overrides the loader's `onBadImage` for this pass. */
  readonly onBadImage?: BadImagePolicy;
}

/** An image that cannot be decoded: its index in the loader's list, its file and why. */
export interface UnreadableImage {
  readonly index: number;
  readonly file: string;
  readonly reason: string;
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
  /**
   * Decodes every image once — or takes the verdicts a complete cache remembers, reading no pixels — and returns
   * the ones that cannot be decoded, in listing order, whatever `onBadImage` says. The cache, when on, is complete
   * afterwards. `onProgress` gets the number of images looked at so far.
   */
  check(onProgress?: (done: number) => void): Promise<UnreadableImage[]>;
  /** Closes the cache file; an unfinished cache's temporary file is removed. */
  close(): Promise<void>;
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
    // What a killed writer left: the cache's temporary, or its key's (`<cache>.json.tmp-<pid>`, which a kill between
    // the cache's rename and its key's leaves even beside a cache that is then rebuilt or reused).
    removeDeadTemporaries(dirname(path), `${basename(path)}.`);
    const key = await cacheKeyFor(paths, size, mode);
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
    const temp = temporaryPathFor(path);
    const header = encodeNpyHeader("uint8", [count, size, size, 3]);
    const fh = await open(temp, "w+");
    await fh.write(header, 0, header.length, 0);
    await fh.truncate(header.length + count * pixels);
    cache = { kind: "building", fh, temp, key, dataOffset: header.length, state: new Uint8Array(count), reasons: new Map(), remaining: count, writes: new Set() };
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
    const meta: CacheMeta = { ...building.key, bad };
    await rm(`${path}.json`, { force: true });
    await rename(building.temp, path);
    await writeFileAtomic(`${path}.json`, JSON.stringify(meta, null, 1));
    cache = { kind: "ready", fh: building.fh, dataOffset: building.dataOffset, bad: building.reasons };
    stats.cache = "built";
    onEvent?.({ type: "cache-built", path });
  };

  /** Decodes image `index` into `out` at `offset` (float32) — and into the cache when one is being built. */
  const decodeOne = async (index: number, out: Float32Array, offset: number, policy: BadImagePolicy): Promise<boolean> => {
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
      if (policy === "error") throw error;
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
  const loadBatch = async (indices: Int32Array, policy: BadImagePolicy): Promise<ImageBatch> => {
    await ensureCacheState();
    const n = indices.length;
    // Images decoded on lib/data/decode-pool's threads are written straight into the batch: shared memory. Unless the
    // consumer lets the loader reuse it, the batch it gets is a copy and the shared memory is reused at once.
    const pool = mode === "post" && cache.kind !== "ready" ? decodePool() : null;
    const data = pool !== null && pool.working ? new Float32Array(takeShared(n * pixels * 4)) : new Float32Array(n * pixels);
    try {
      const batch = await decodeBatch(indices, data, policy);
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
  const decodeBatch = async (indices: Int32Array, data: Float32Array, policy: BadImagePolicy): Promise<ImageBatch> => {
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
          if (policy === "error") throw new BadImageError(paths[index], `${reason} (remembered in the cache ${options.cache}; delete that file to try decoding again)`);
          continue;
        }
        fromFile.push(k);
        ok[k] = 1;
      } else toDecode.push(k);
    }
    const work: Promise<void>[] = toDecode.map((k) => limit(() => decodeOne(indices[k], data, k * pixels, policy)).then((good) => void (ok[k] = good ? 1 : 0)));
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
    const policy = batchOptions.onBadImage ?? onBadImage;
    positive(batchSize, "batchSize");
    const total = Math.ceil(order.length / batchSize);
    const inflight: { batch: number; promise: Promise<ImageBatch>; ready: boolean }[] = [];
    let next = 0;
    const start = (): void => {
      while (inflight.length < prefetch && next < total) {
        const batch = next++;
        onEvent?.({ type: "batch-start", batch });
        const entry = { batch, promise: loadBatch(order.slice(batch * batchSize, Math.min(order.length, (batch + 1) * batchSize)), policy), ready: false };
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
    async check(onProgress?: (done: number) => void): Promise<UnreadableImage[]> {
      await ensureCacheState();
      const current = cache;
      const order: number[] = [];
      for (let i = 0; i < count; i++) if (current.kind === "off" || (current.kind === "building" && current.state[i] === NOT_WRITTEN)) order.push(i);
      const position = new Map(order.map((index, k) => [index, k]));
      const found = new Map<number, string>();
      const index = new Map(paths.map((file, i) => [file, i]));
      const seen = stats.badImages.length;
      for await (const batch of batches({ order, onBadImage: "skip" })) onProgress?.(count - order.length + (position.get(batch.indices[batch.indices.length - 1]) ?? 0) + 1);
      onProgress?.(count);
      for (const bad of stats.badImages.slice(seen)) found.set(index.get(bad.file) ?? -1, bad.reason);
      const remembered = cache.kind === "ready" ? cache.bad : cache.kind === "building" ? cache.reasons : new Map<number, string>();
      for (const [i, reason] of remembered) found.set(i, reason);
      return [...found].filter(([i]) => i >= 0).sort((a, b) => a[0] - b[0]).map(([i, reason]) => ({ index: i, file: paths[i], reason }));
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
