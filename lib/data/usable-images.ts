// The images a run uses: every image of its dataset that decodes. They are found once per run — by decoding every
// image (or reading what a complete image cache remembers) — and written to runs/<run>/usable_images.json, so that
// fine-tuning, embedding and inspection leave out exactly the same images: row i of face_vectors.npy is usable image
// i, whichever stage looks at it. With onBadImage=skip the run's dataset is its usable images; with onBadImage=error
// it is every image, and the first stage to decode an unusable one stops naming it.
//
// The record is made from the images as they are on disk (lib/data/image-files-id: every listed file's name, size and
// modification time) at one resize mode: when they change, the images are checked again. Its `sha256` is the id of
// the usable images, on which later stages key what they make from them.

import { existsSync, readFileSync } from "node:fs";
import { ProgressBar, type ProgressMode } from "../display/progress";

import { writeFileAtomicSync } from "../util/atomic-write";

import type { BadImagePolicy, ResizeMode } from "./image-decode";

import { imageFilesId } from "./image-files-id";

import type { ImageDataset } from "./image-dataset";

import { createImageLoader, type UnreadableImage } from "./image-loader";


/** An image that cannot be decoded: its dataset-relative file and why. */
export interface UnusableImage {
  readonly file: string;
  readonly reason: string;
}

/** runs/<run>/usable_images.json. */
export interface UsableImagesRecord {
  readonly format: "celeba-sae usable images";
  readonly version: 1;
  /** The id of every listed image as it was checked (lib/data/image-files-id). */
  readonly listedImagesId: string;
  /** The resize mode they were decoded in (the post mode decodes JPEGs with TurboJPEG, the recommended one with sharp). */
  readonly resize: ResizeMode;
  /** Images listed, and of them usable. */
  readonly images: number;
  readonly usable: number;
  /** The images that cannot be decoded, in listing order. */
  readonly unusable: readonly UnusableImage[];
  /** The id of the usable images (their names, sizes and modification times): what later stages key on. */
  readonly sha256: string;
}

export interface CheckImagesOptions {
  readonly size: number;
  readonly mode: ResizeMode;
  /** The decoded-image cache of the listed images (see lib/data/image-cache): checking fills it. */
  readonly cache?: string;
  readonly batchSize?: number;
  readonly progress?: ProgressMode;
}

/** The stored record when it describes `dataset` as it is now in `mode`, else why not. */
export async function storedUsableImages(path: string, dataset: ImageDataset, mode: ResizeMode): Promise<{ record: UsableImagesRecord } | { stale: string }> {
  if (!existsSync(path)) return { stale: "the images have not been checked yet" };
  let record: Partial<UsableImagesRecord>;
  try {
    record = JSON.parse(readFileSync(path, "utf8")) as Partial<UsableImagesRecord>;
  } catch {
    return { stale: `${path} is not valid JSON` };
  }
  if (record.format !== "celeba-sae usable images" || record.version !== 1) return { stale: `${path} was written by another version` };
  if (record.resize !== mode) return { stale: `they were checked in the ${record.resize} resize mode, not ${mode}` };
  if (record.listedImagesId !== (await imageFilesId(dataset.paths, dataset.files))) {
    return { stale: "the dataset's images changed since they were checked (a file was added, removed, or has another size or modification time)" };
  }
  return { record: record as UsableImagesRecord };
}

/** Decodes every image of `dataset` once and writes the record to `path`. */
export async function checkUsableImages(path: string, dataset: ImageDataset, options: CheckImagesOptions): Promise<UsableImagesRecord> {
  const listedImagesId = await imageFilesId(dataset.paths, dataset.files);
  const loader = createImageLoader(dataset.paths, {
    size: options.size, mode: options.mode, batchSize: options.batchSize ?? 64, cache: options.cache, reuseBatchMemory: true,
  });
  const bar = new ProgressBar({ total: dataset.count, desc: "Checking that every image decodes", unit: "img", mode: options.progress });
  let shown = 0;
  let found: UnreadableImage[];
  try {
    found = await loader.check((done) => {
      bar.update(done - shown);
      shown = done;
    });
  } finally {
    bar.close();
    await loader.close();
  }
  const left = new Set(found.map((b) => b.index));
  const usable = dataset.files.map((_, i) => i).filter((i) => !left.has(i));
  const record: UsableImagesRecord = {
    format: "celeba-sae usable images",
    version: 1,
    listedImagesId,
    resize: options.mode,
    images: dataset.count,
    usable: usable.length,
    unusable: found.map((b) => ({ file: dataset.files[b.index], reason: b.reason })),
    sha256: left.size === 0 ? listedImagesId : await imageFilesId(usable.map((i) => dataset.paths[i]), usable.map((i) => dataset.files[i])),
  };
  writeFileAtomicSync(path, JSON.stringify(record, null, 1) + "\n");
  return record;
}

/** The dataset indices of the usable images, ascending. */
export function usableIndices(dataset: ImageDataset, record: UsableImagesRecord): number[] {
  const left = new Set(record.unusable.map((u) => u.file));
  return dataset.files.map((_, i) => i).filter((i) => !left.has(dataset.files[i]));
}

/** What the check found, in a few lines for a notebook (`where`: the record's path as people see it). */
export function describeUsableImages(record: UsableImagesRecord, policy: BadImagePolicy, where: string): string {
  const n = record.unusable.length;
  if (n === 0) return `All ${record.images} images decode (checked once for this run: ${where}).`;
  const shown = record.unusable.slice(0, 5).map((u) => `${u.file} (${u.reason})`).join("; ");
  const list = `${shown}${n > 5 ? `; and ${n - 5} more` : ""}`;
  const head = `${n} of ${record.images} images cannot be decoded: ${list}.`;
  return policy === "skip"
    ? `${head}\nWith onBadImage=skip they are left out of every stage (${record.usable} images remain; the list is in ${where}).`
    : `${head}\nWith onBadImage=error (this run's setting) the first step to decode one of them stops, naming it: replace or delete them, or run with --set onBadImage=skip to leave them out of every stage.`;
}
