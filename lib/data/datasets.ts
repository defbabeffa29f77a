// Which images a run uses, made ready on disk: the embedded synthetic faces (generated), Kaggle's CelebA
// (downloaded to data/celeba-dataset.zip and unzipped into data/celeba, or unzipped there by hand), or a folder
// the user names.
// The choice is recorded in runs/<run>/dataset.json so every later notebook opens exactly the same images.

import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { datasetFolder, type RunConfig } from "../run/config";
import { checkCelebAImages, describeCelebALayout, detectCelebALayout } from "./celeba-layout";
import { CELEBA_IMAGE_FOLDER, openImageDataset, selectImages, type ImageDataset } from "./image-dataset";
import { createImageLoader, type ImageBatch } from "./image-loader";
import { credentialsHelp, KaggleError, kaggleCredentialSource, kaggleJsonPath } from "./kaggle-credentials";
import { CELEBA_DATASET, downloadKaggleDataset, kaggleArchivePath } from "./kaggle-download";
import { dataDir, displayPath, displayText, projectRoot } from "../util/project";
import { runDir, runFiles } from "../run/files";
import { ProgressBar } from "../display/progress";
import { generateSyntheticFaces } from "./synthetic/faces";
import { extractZip } from "./zip-extract";
import { EXTRACTION_MARKER } from "./zip/safety";
import { SYNTHETIC_ATTRIBUTES } from "./synthetic/attributes";
import type { Row } from "../display/html-table";
import { writeFileAtomicSync } from "../util/atomic-write";
import { diskFreeSpace, formatBytes, requireFreeSpace, type FreeSpace } from "../util/disk";
import { checkUsableImages, describeUsableImages, storedUsableImages, usableIndices, type UnusableImage, type UsableImagesRecord } from "./usable-images";
import type { ProgressMode } from "../display/progress";

export type DatasetKind = "synthetic" | "celeba" | "folder";

/** What prepareDataset decided, and why, in words for the notebook. */
export interface PreparedDataset {
  readonly kind: DatasetKind;
  readonly folder: string;
  readonly note: string;
}

/** Where the Kaggle archive is kept (as the post's `CelebA/celeba-dataset.zip`): data/celeba-dataset.zip. */
export function celebaArchivePath(): string {
  return kaggleArchivePath(dataDir(), CELEBA_DATASET);
}

/**
 * True when data/celeba holds a finished CelebA: images in CelebA's layout, and no downloaded archive whose
 * extraction is unfinished (a folder unzipped by hand, with no archive beside it, counts as finished).
 */
function celebaReady(folder: string): boolean {
  if (!existsSync(join(folder, CELEBA_IMAGE_FOLDER))) return false;
  return !existsSync(celebaArchivePath()) || existsSync(join(folder, EXTRACTION_MARKER));
}

/** Decides which dataset the run uses (without touching the disk). */
export function resolveDataset(config: RunConfig, credentials = kaggleCredentialSource()): PreparedDataset {
  const celebaFolder = datasetFolder(config, "celeba");
  const synthetic: PreparedDataset = { kind: "synthetic", folder: datasetFolder(config, "synthetic"), note: "" };
  const celeba = (how: string): PreparedDataset => ({ kind: "celeba", folder: celebaFolder, note: `CelebA (${CELEBA_DATASET}), ${how}.` });
  const have = celebaReady(celebaFolder)
    ? `found in ${displayPath(celebaFolder)}`
    : existsSync(celebaArchivePath())
      ? `unzipped from ${displayPath(celebaArchivePath())}`
      : undefined;
  switch (config.dataset) {
    case "synthetic":
      return { ...synthetic, note: "Synthetic faces, as asked (dataset=synthetic)." };
    case "celeba":
      if (have !== undefined) return celeba(have);
      if (credentials === undefined) {
        throw new KaggleError(
          "missing-credentials",
          `dataset=celeba needs Kaggle credentials to download ${CELEBA_DATASET}. ${credentialsHelp(kaggleJsonPath())} ` +
            `Or unzip the archive into ${displayPath(celebaFolder)} by hand, or use --set dataset=synthetic.`,
        );
      }
      return celeba(`downloaded with the Kaggle credentials from ${credentials}`);
    case "auto":
      if (have !== undefined) return celeba(have);
      if (credentials !== undefined) return celeba(`downloaded with the Kaggle credentials from ${credentials} (dataset=auto)`);
      return { ...synthetic, note: "No Kaggle credentials are configured, so this run uses the embedded synthetic faces (no download)." };
    default: {
      const folder = datasetFolder(config, "path");
      if (!existsSync(folder)) throw new Error(`dataset=${config.dataset}: the folder ${folder} does not exist. Give a folder of images in CelebA's layout, or use --set dataset=synthetic.`);
      return { kind: "folder", folder, note: `Images from ${displayPath(folder)}.` };
    }
  }
}

/** Generates the synthetic faces (skipped when already complete), with a progress bar. */
async function prepareSynthetic(config: RunConfig, folder: string): Promise<void> {
  const s = config.synthetic;
  const bar = new ProgressBar({ total: s.count, desc: "Generating synthetic faces", unit: "img" });
  let shown = 0;
  try {
    await generateSyntheticFaces({
      outDir: folder,
      count: s.count,
      identities: s.identities,
      seed: s.seed,
      onProgress: (done) => {
        bar.update(done - shown);
        shown = done;
      },
    });
  } finally {
    bar.close();
  }
}

/**
 * Downloads Kaggle's CelebA zip into data/ (resuming an interrupted download) and unzips it into data/celeba
 * (finishing an interrupted extraction); both steps are skipped when already complete, as the post's
 * `kaggle datasets download` + `unzip` would be re-run by hand.
 */
async function prepareCelebA(folder: string): Promise<void> {
  if (celebaReady(folder)) return;
  const archive = celebaArchivePath();
  if (!existsSync(archive)) await downloadKaggleDataset({ dataset: CELEBA_DATASET, destDir: dirname(archive) });
  await extractZip(archive, folder);
}

/** What a CelebA folder holds and lacks, and how many images cannot be read, as lines for the notebook. */
export async function describeCelebAFolder(folder: string): Promise<string[]> {
  const layout = await detectCelebALayout(folder);
  const lines = describeCelebALayout(layout).map(displayText);
  if (layout.kind === "none") return lines;
  const check = await checkCelebAImages(layout);
  lines.push(
    check.unreadable.length === 0
      ? `All ${check.checked} images have readable JPEG headers.`
      : `${check.unreadable.length} of ${check.checked} images are unreadable (first: ${check.unreadable.slice(0, 3).map((f) => displayPath(f)).join(", ")}); ` +
          `with onBadImage=skip they are left out, with onBadImage=error (the default) a run stops at the first one.`,
  );
  return lines;
}

/**
 * Makes the run's dataset ready — generates the synthetic faces, or downloads and unzips CelebA (each skipped when
 * already complete) — checks that the folder lists images, records the choice in runs/<run>/dataset.json, and
 * decodes every image once to find the usable ones (runs/<run>/usable_images.json); the note says what it found.
 */
export async function prepareDataset(config: RunConfig, options: { progress?: ProgressMode } = {}): Promise<PreparedDataset> {
  const prepared = resolveDataset(config);
  if (prepared.kind === "synthetic") await prepareSynthetic(config, prepared.folder);
  if (prepared.kind === "celeba") await prepareCelebA(prepared.folder);
  const dataset = await openImageDataset(prepared.folder, { limit: config.limit ?? undefined, skipMetadata: true });
  mkdirSync(runDir(config.run), { recursive: true });
  const record = { ...prepared, folder: displayPath(prepared.folder), images: dataset.count };
  const path = runFiles(config.run).dataset;
  writeFileAtomicSync(path, JSON.stringify(record, null, 2) + "\n");
  const usable = await runUsableImages(config, dataset, options.progress);
  const found = describeUsableImages(usable, config.onBadImage, displayPath(runFiles(config.run).usableImages));
  return { ...prepared, note: `${prepared.note}\n${found}` };
}

/**
 * The run's usable images (runs/<run>/usable_images.json), checked now — every image decoded once, filling the image
 * cache — when they have not been, or the dataset's images changed since. Under onBadImage=skip with images left
 * out, the cache of every listed image is removed afterwards: the stages read the usable ones, in a cache of their own.
 */
async function runUsableImages(config: RunConfig, dataset: ImageDataset, progress?: ProgressMode): Promise<UsableImagesRecord> {
  const path = runFiles(config.run).usableImages;
  const stored = await storedUsableImages(path, dataset, config.resize);
  if ("record" in stored) return stored.record;
  if (existsSync(path)) console.log(`Checking the images again: ${stored.stale}.`);
  const cache = imageCachePath(config, dataset);
  const record = await checkUsableImages(path, dataset, { size: config.imageSize, mode: config.resize, cache, progress });
  if (cache !== undefined && config.onBadImage === "skip" && record.unusable.length > 0) {
    for (const file of [cache, `${cache}.json`]) rmSync(file, { force: true });
  }
  return record;
}

/** A run's dataset: the images its stages use, and what they are. */
export interface RunDataset extends ImageDataset {
  /**
   * The id of these images (names, sizes, modification times: lib/data/image-files-id), on which the stages key what
   * they make from them: usable_images.json's `sha256` under onBadImage=skip, the id of every listed image under error.
   */
  readonly imagesId: string;
  /** Images that cannot be decoded: left out (skip), or where the first stage to reach one stops (error). */
  readonly unusable: readonly UnusableImage[];
}

/**
 * Opens the run's dataset as notebook 01 recorded it (with its attribute and identity tables). Under onBadImage=skip
 * it holds only the usable images (checked again first when the images changed), so that every stage sees the same
 * images in the same order.
 */
export async function openRunDataset(config: RunConfig, options: { progress?: ProgressMode } = {}): Promise<RunDataset> {
  const path = runFiles(config.run).dataset;
  if (!existsSync(path)) {
    throw new Error(`${path} does not exist: run notebook 01-download first (npm run notebooks -- --run ${config.run} --only 01).`);
  }
  const record = JSON.parse(readFileSync(path, "utf8")) as PreparedDataset;
  const dataset = await openImageDataset(resolve(projectRoot(), record.folder), { limit: config.limit ?? undefined });
  const usable = await runUsableImages(config, dataset, options.progress);
  if (config.onBadImage === "error" || usable.unusable.length === 0) return { ...dataset, imagesId: usable.listedImagesId, unusable: usable.unusable };
  return { ...selectImages(dataset, usableIndices(dataset, usable)), imagesId: usable.sha256, unusable: usable.unusable };
}

/** Decodes the images at `indices` as the run does (size and resize mode from the config), as one NHWC batch. */
export async function loadImages(dataset: ImageDataset, indices: readonly number[], config: RunConfig): Promise<ImageBatch> {
  const loader = createImageLoader(dataset.paths, {
    size: config.imageSize,
    mode: config.resize,
    batchSize: Math.max(1, indices.length),
    onBadImage: config.onBadImage,
  });
  try {
    for await (const batch of loader.batches({ order: indices })) return batch;
  } finally {
    await loader.close();
  }
  throw new Error(`none of the ${indices.length} images asked for could be decoded (${loader.stats.badImages.map((b) => b.file).join(", ")})`);
}

/** One row per attribute: how many images have it and what fraction that is (and its meaning, for synthetic ones). */
export function attributeSummary(dataset: ImageDataset): Record<string, Row> {
  const table = dataset.attributes;
  if (table === null) return {};
  const described = new Map(SYNTHETIC_ATTRIBUTES.map((a) => [a.name, a.description]));
  const rows: Record<string, Row> = {};
  table.names.forEach((name, j) => {
    let positive = 0;
    for (let i = 0; i < table.files.length; i++) if (table.values[i * table.names.length + j] > 0) positive++;
    rows[name] = {
      images: positive,
      fraction: table.files.length ? positive / table.files.length : 0,
      ...(described.has(name) ? { meaning: described.get(name) } : {}),
    };
  });
  return rows;
}

/** The dataset indices showing the same person as image `index`, in listing order, or [] without identities. */
export function imagesOfSamePerson(dataset: ImageDataset, index: number): number[] {
  const ids = dataset.identities?.ids;
  if (ids === undefined || index < 0 || index >= ids.length) return [];
  const out: number[] = [];
  for (let i = 0; i < ids.length; i++) if (ids[i] === ids[index]) out.push(i);
  return out;
}

/**
 * The largest decoded-image cache `imageCache=auto` makes. Decoding a face on the worker threads costs a fraction of a
 * millisecond, about what reading its pixels back from disk costs once the cache no longer stays in the page cache;
 * so a small cache (CelebA at 64 px: 2.5 GB) pays, a large one (CelebA at 224 px: 30 GB) costs disk and time.
 */
export const IMAGE_CACHE_AUTO_MAX_BYTES = 4 * 2 ** 30;

/** Whether this run caches decoded images, where, and why, in a sentence for people. */
export interface ImageCacheDecision {
  readonly path: string | undefined;
  readonly why: string;
}

/**
 * Where decoded images are cached: a uint8 .npy beside the dataset (shared by the runs that use it), or in the run's
 * folder when the dataset's folder is read-only; keyed by resize mode, size and image count. None when imageCache is
 * false, or "auto" and the cache would be larger than IMAGE_CACHE_AUTO_MAX_BYTES or than the free disk; with true, a
 * disk too small for it is an error naming what it needs.
 */
export function imageCacheDecision(config: RunConfig, dataset: ImageDataset, free: (dir: string) => FreeSpace | undefined = diskFreeSpace): ImageCacheDecision {
  if (config.imageCache === false) return { path: undefined, why: "imageCache is false: every pass decodes the JPEGs" };
  const folder = writableFolder(dataset.root) ? join(dataset.root, ".celeba-sae-cache") : runFiles(config.run).imageCache;
  const path = join(folder, `images-${config.resize}-${config.imageSize}-n${dataset.count}.npy`);
  const bytes = dataset.count * config.imageSize * config.imageSize * 3;
  if (config.imageCache === "auto" && bytes > IMAGE_CACHE_AUTO_MAX_BYTES) {
    return {
      path: undefined,
      why: `no image cache: it would take ${formatBytes(bytes)}, and decoding on the threads is as fast as reading that back (imageCache=true makes it anyway)`,
    };
  }
  if (!existsSync(path)) {
    const space = free(folder);
    if (space !== undefined && space.bytes < bytes) {
      if (config.imageCache === "auto") return { path: undefined, why: `no image cache: it needs ${formatBytes(bytes)} in ${displayPath(folder)}, which has ${formatBytes(space.bytes)} free` };
      requireFreeSpace(folder, bytes, "the decoded-image cache", "set imageCache=false (every pass then decodes the JPEGs)", space);
    }
  }
  return { path, why: `decoded images are cached in ${displayPath(path)} (${formatBytes(bytes)})` };
}

/** The decoded-image cache's path, or undefined when this run keeps none (see imageCacheDecision). */
export function imageCachePath(config: RunConfig, dataset: ImageDataset): string | undefined {
  return imageCacheDecision(config, dataset).path;
}

/** Whether we may write into `folder`: access() says so, and its mode does not mark it read-only (root passes access()). */
function writableFolder(folder: string): boolean {
  try {
    accessSync(folder, constants.W_OK);
    return (statSync(folder).mode & 0o222) !== 0;
  } catch {
    return false;
  }
}
