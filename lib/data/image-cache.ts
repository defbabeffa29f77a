// The decoded-image cache of lib/data/image-loader (its option `cache: path.npy`): a uint8 `.npy` of shape
// (N, size, size, 3) with its key — size, mode, count and a SHA-256 of the file list — in `path.npy.json`. A missing
// or stale cache is built during the first pass (rows written at their offsets into a temporary file, renamed into
// place when every row is written); later passes read batches from it with positioned reads, never the whole file.
// Cached values are uint8, so in `post` mode they are the float result rounded to the nearest 1/255 (at most
// 0.5/255 ≈ 0.002 away); every pass of a cached loader, including the first, returns these rounded values, so all
// epochs see identical inputs. The key covers the list of paths, not the files' contents: after replacing images in
// place under the same names, delete the cache. A pass over only some images (a partial order, or stopping early)
// leaves the cache unfinished; a later pass of the same loader decodes only what is missing, and `buildCache()`
// finishes it outright.

import { createHash } from "node:crypto";

import { existsSync } from "node:fs";

import { readFile, type FileHandle } from "node:fs/promises";

import { readNpyHeader } from "../formats/npy";

import type { ResizeMode } from "./image-decode";

import { imageFilesId } from "./image-files-id";


/** Key of a cache: the cache is valid only for the same images (as they are on disk), size and mode. */
export interface CacheKey {
  readonly format: "celeba-sae image cache";
  readonly version: 2;
  readonly size: number;
  readonly mode: ResizeMode;
  readonly count: number;
  /** SHA-256 of the absolute file paths joined by newlines. */
  readonly filesHash: string;
  /** The files' names, sizes and modification times (lib/data/image-files-id): replacing an image changes it. */
  readonly imagesId: string;
}

export interface CacheMeta extends CacheKey {
  /** Images that could not be decoded: their rows are zeros. */
  readonly bad: readonly { readonly index: number; readonly reason: string }[];
}

function filesHash(files: readonly string[]): string {
  return createHash("sha256").update(files.join("\n")).digest("hex");
}

/** The key a cache of `paths` at `size` in `mode` must have (stats every file: about a second for CelebA). */
export async function cacheKeyFor(paths: readonly string[], size: number, mode: ResizeMode): Promise<CacheKey> {
  return { format: "celeba-sae image cache", version: 2, size, mode, count: paths.length, filesHash: filesHash(paths), imagesId: await imageFilesId(paths) };
}

/** Why the stored cache is not valid for `key`, or null when it is. */
export async function staleReason(path: string, key: CacheKey): Promise<string | null> {
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
  if (meta.imagesId !== key.imagesId) return "the images changed since it was built (a file's size or modification time differs): rebuilt from them";
  try {
    const header = await readNpyHeader(path);
    if (header.dtype !== "uint8") return `it holds ${header.dtype}, not uint8`;
    if (header.shape.join() !== [key.count, key.size, key.size, 3].join()) return `its shape is (${header.shape.join(", ")})`;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  return null;
}

/** Reads exactly `target.length` bytes at `position`, or throws naming the cache file. */
export async function readAt(fh: FileHandle, file: string, target: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const { bytesRead } = await fh.read(target, done, target.length - done, position + done);
    if (bytesRead === 0) throw new Error(`the image cache ${file} ended early (at byte ${position + done}); delete it and it will be rebuilt`);
    done += bytesRead;
  }
}


export const NOT_WRITTEN = 0;
export const WRITTEN = 1;
export const BAD = 2;

/** An open cache file: row i starts at `dataOffset + i × size × size × 3`. */
export interface RowFile {
  readonly fh: FileHandle;
  readonly dataOffset: number;
}

/**
 * The cache while this loader writes it: rows land at their offsets in a temporary file. Once every row is written
 * the file is renamed into place and the same handle keeps serving reads (a rename does not disturb open handles),
 * so a batch reading while another finishes the cache never sees a closed file.
 */
export interface BuildingCache extends RowFile {
  readonly kind: "building";
  readonly temp: string;
  /** The key it is built for, written beside it once complete. */
  readonly key: CacheKey;
  /** Per image: NOT_WRITTEN, WRITTEN or BAD. */
  readonly state: Uint8Array;
  readonly reasons: Map<number, string>;
  remaining: number;
  readonly writes: Set<Promise<void>>;
}

export interface ReadyCache extends RowFile {
  readonly kind: "ready";
  readonly bad: Map<number, string>;
}

export type CacheState = { readonly kind: "off" } | BuildingCache | ReadyCache;
