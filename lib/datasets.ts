// Which images a run uses, made ready on disk: the embedded synthetic faces (generated), Kaggle's CelebA
// (data/celeba, downloaded by issue #3's downloader or unzipped there by hand), or a folder the user names.
// The choice is recorded in runs/<run>/dataset.json so every later notebook opens exactly the same images.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { datasetFolder, type RunConfig } from "./config";
import { openImageDataset, type ImageDataset } from "./image-dataset";
import { createImageLoader, type ImageBatch } from "./image-loader";
import { kaggleCredentialSource } from "./kaggle-credentials";
import { displayPath, projectRoot, runDir } from "./paths";
import { ProgressBar } from "./progress";
import { generateSyntheticFaces } from "./synthetic-faces";
import { SYNTHETIC_ATTRIBUTES } from "./synthetic-faces-attributes";
import type { Row } from "./html-table";

export type DatasetKind = "synthetic" | "celeba" | "folder";

/** What prepareDataset decided, and why, in words for the notebook. */
export interface PreparedDataset {
  readonly kind: DatasetKind;
  readonly folder: string;
  readonly note: string;
}

const CELEBA_BY_HAND =
  "download `jessicali9530/celeba-dataset` from Kaggle and unzip it into data/celeba (so that " +
  "data/celeba/img_align_celeba/ holds the JPEGs)";

/** True when a CelebA-layout folder with its image folder is present. */
function hasCelebA(folder: string): boolean {
  return existsSync(join(folder, "img_align_celeba"));
}

/** Decides which dataset the run uses (without touching the disk). */
export function resolveDataset(config: RunConfig, credentials = kaggleCredentialSource()): PreparedDataset {
  const celeba = datasetFolder(config, "celeba");
  const synthetic: PreparedDataset = { kind: "synthetic", folder: datasetFolder(config, "synthetic"), note: "" };
  switch (config.dataset) {
    case "synthetic":
      return { ...synthetic, note: "Synthetic faces, as asked (dataset=synthetic)." };
    case "celeba":
      if (hasCelebA(celeba)) return { kind: "celeba", folder: celeba, note: `CelebA, found in ${displayPath(celeba)}.` };
      if (credentials === undefined) {
        throw new Error(
          "dataset=celeba needs Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY, or put kaggle.json in ~/.kaggle/ " +
            `(kaggle.com → Settings → API → Create New Token). Or ${CELEBA_BY_HAND}. Or use --set dataset=synthetic.`,
        );
      }
      throw new Error(
        `Kaggle credentials were found (${credentials}), but downloading CelebA from the notebook is not built yet (issue #3). ` +
          `Until it is, ${CELEBA_BY_HAND}, then run again. Or use --set dataset=synthetic.`,
      );
    case "auto":
      if (hasCelebA(celeba)) return { kind: "celeba", folder: celeba, note: `CelebA, found in ${displayPath(celeba)}.` };
      if (credentials !== undefined) {
        return {
          ...synthetic,
          note:
            `Kaggle credentials were found (${credentials}), but downloading CelebA is not built yet (issue #3), so this run ` +
            `uses the synthetic faces. To use CelebA now, ${CELEBA_BY_HAND}.`,
        };
      }
      return { ...synthetic, note: "No Kaggle credentials are configured, so this run uses the embedded synthetic faces (no download)." };
    default: {
      const folder = datasetFolder(config, "path");
      if (!existsSync(folder)) throw new Error(`dataset=${config.dataset}: the folder ${folder} does not exist. Give a folder of images in CelebA's layout, or use --set dataset=synthetic.`);
      return { kind: "folder", folder, note: `Images from ${displayPath(folder)}.` };
    }
  }
}

/** The run's record of its dataset. */
export function datasetRecordPath(run: string): string {
  return join(runDir(run), "dataset.json");
}

/**
 * Makes the run's dataset ready: generates the synthetic faces when they are the choice (skipped when already
 * complete), checks that the folder lists images, and records the choice in runs/<run>/dataset.json.
 */
export async function prepareDataset(config: RunConfig): Promise<PreparedDataset> {
  const prepared = resolveDataset(config);
  if (prepared.kind === "synthetic") {
    const s = config.synthetic;
    const bar = new ProgressBar({ total: s.count, desc: "Generating synthetic faces", unit: "img" });
    let shown = 0;
    try {
      await generateSyntheticFaces({
        outDir: prepared.folder,
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
  const dataset = await openImageDataset(prepared.folder, { limit: config.limit ?? undefined, skipMetadata: true });
  mkdirSync(runDir(config.run), { recursive: true });
  const record = { ...prepared, folder: displayPath(prepared.folder), images: dataset.count };
  const path = datasetRecordPath(config.run);
  writeFileSync(`${path}.tmp`, JSON.stringify(record, null, 2) + "\n");
  renameSync(`${path}.tmp`, path);
  return prepared;
}

/** Opens the run's dataset as notebook 01 recorded it (with its attribute and identity tables). */
export async function openRunDataset(config: RunConfig): Promise<ImageDataset> {
  const path = datasetRecordPath(config.run);
  if (!existsSync(path)) {
    throw new Error(`${path} does not exist: run notebook 01-download first (npm run notebooks -- --run ${config.run} --only 01).`);
  }
  const record = JSON.parse(readFileSync(path, "utf8")) as PreparedDataset;
  return openImageDataset(resolve(projectRoot(), record.folder), { limit: config.limit ?? undefined });
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
