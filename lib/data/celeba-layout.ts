// Recognising a CelebA folder: which of the two layouts it is in, where the images are, which metadata files it has
// (and what the missing ones mean for the run), and how many of its images cannot be read.
//
//   Kaggle (jessicali9530/celeba-dataset)     official release / torchvision's CelebA folder
//   img_align_celeba/img_align_celeba/*.jpg   img_align_celeba/*.jpg
//   list_attr_celeba.csv                      list_attr_celeba.txt
//   list_eval_partition.csv                   list_eval_partition.txt
//   list_bbox_celeba.csv                      list_bbox_celeba.txt
//   list_landmarks_align_celeba.csv           list_landmarks_align_celeba.txt
//   (no identity file)                        identity_CelebA.txt
//
// The layout is told by the image folder (nested once more in Kaggle's); the metadata files are looked for in both
// formats in either layout, so a Kaggle folder completed by hand with the official identity_CelebA.txt is used as is.

import { readdir, stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { basename, join, resolve } from "node:path";
import sharp from "sharp";
import { CELEBA_METADATA_FILES, type CelebAMetadataRole } from "./celeba-metadata";
import { CELEBA_IMAGE_FOLDER, comparePythonStrings, isImageFileName } from "./image-dataset";
import { ProgressBar, type ProgressOptions } from "../display/progress";

export type CelebALayoutKind = "kaggle" | "official";

/** The metadata files CelebA comes with, by what they hold. */
export type { CelebAMetadataRole };
export const CELEBA_METADATA_ROLES: readonly CelebAMetadataRole[] = ["attributes", "partition", "identity", "bbox", "landmarks"];

/** The full aligned-and-cropped CelebA set. */
export const CELEBA_IMAGE_COUNT = 202_599;

interface RoleSpec {
  /** File names looked for: [official TXT, Kaggle CSV] (identity has no CSV). */
  readonly txt: string;
  readonly csv: string | undefined;
  readonly holds: string;
  /** What the run does without it. */
  readonly without: string;
}

const ROLES: Readonly<Record<CelebAMetadataRole, RoleSpec>> = {
  attributes: {
    ...CELEBA_METADATA_FILES.attributes,
    holds: "the 40 binary attributes of each image",
    without: "comparisons of features with CelebA's attributes are skipped",
  },
  partition: {
    ...CELEBA_METADATA_FILES.partition,
    holds: "the train/val/test split",
    without: "the official train/val/test split is unknown (the post trains on all images, so nothing changes)",
  },
  identity: {
    ...CELEBA_METADATA_FILES.identity,
    holds: "the person shown in each image",
    without: "identity-based metrics (same-person grids and checks) are skipped",
  },
  bbox: {
    ...CELEBA_METADATA_FILES.bbox,
    holds: "face bounding boxes in the unaligned images",
    without: "nothing changes (this project does not use bounding boxes)",
  },
  landmarks: {
    ...CELEBA_METADATA_FILES.landmarks,
    holds: "five facial landmarks per aligned image",
    without: "nothing changes (this project does not use landmarks)",
  },
};

/** One metadata role: the file found for it (absolute path and format), or none. */
export interface CelebAMetadataFile {
  readonly role: CelebAMetadataRole;
  /** The file names looked for, in the layout's own format first. */
  readonly candidates: readonly string[];
  /** Absolute path of the file found, or undefined when none is present. */
  readonly path: string | undefined;
  readonly format: "csv" | "txt" | undefined;
}

/** A recognised CelebA folder. */
export interface CelebALayout {
  readonly kind: CelebALayoutKind;
  /** The dataset root, absolute. */
  readonly root: string;
  /** The folder holding the JPEGs, absolute. */
  readonly imageDir: string;
  /** Image files directly in `imageDir`. */
  readonly imageCount: number;
  readonly metadata: Readonly<Record<CelebAMetadataRole, CelebAMetadataFile>>;
  /** Names of the metadata files present, and the roles that have none. */
  readonly present: readonly string[];
  readonly missing: readonly CelebAMetadataRole[];
  /** What is missing or unusual, and what it means for a run, in sentences. */
  readonly notes: readonly string[];
}

/** A folder that is not a CelebA layout, and why. */
export interface NotCelebALayout {
  readonly kind: "none";
  readonly root: string;
  readonly reason: string;
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

async function findMetadata(root: string, role: CelebAMetadataRole, kind: CelebALayoutKind): Promise<CelebAMetadataFile> {
  const spec = ROLES[role];
  const both: { name: string; format: "csv" | "txt" }[] = [{ name: spec.txt, format: "txt" }];
  if (spec.csv !== undefined) both[kind === "kaggle" ? "unshift" : "push"]({ name: spec.csv, format: "csv" });
  for (const { name, format } of both) {
    const path = join(root, name);
    if (await isFile(path)) return { role, candidates: both.map((c) => c.name), path, format };
  }
  return { role, candidates: both.map((c) => c.name), path: undefined, format: undefined };
}

function missingNote(role: CelebAMetadataRole, kind: CelebALayoutKind, root: string): string {
  const spec = ROLES[role];
  const names = spec.csv === undefined ? spec.txt : `${spec.txt} or ${spec.csv}`;
  if (role === "identity" && kind === "kaggle") {
    return (
      `No identity file (${spec.txt}): Kaggle's archive does not include one, so ${spec.without}. To get them, download ` +
      `${spec.txt} from the official CelebA release (its Anno/ folder) and put it in ${root}.`
    );
  }
  return `No ${names} (${spec.holds}): ${spec.without}.`;
}

/** Image file names directly in `dir`, sorted as Python sorts them. */
async function imageNames(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => !e.isDirectory() && isImageFileName(e.name))
    .map((e) => e.name)
    .sort(comparePythonStrings);
}

/**
 * Recognises a CelebA folder: Kaggle's layout when `img_align_celeba/img_align_celeba/` exists, the official one
 * when `img_align_celeba/` holds the images itself. Reports the metadata files present and missing, with what each
 * missing one means for a run.
 */
export async function detectCelebALayout(root: string): Promise<CelebALayout | NotCelebALayout> {
  const absRoot = resolve(root);
  if (!(await isDirectory(absRoot))) return { kind: "none", root: absRoot, reason: `${absRoot} is not a folder` };
  const outer = join(absRoot, CELEBA_IMAGE_FOLDER);
  if (!(await isDirectory(outer))) {
    return { kind: "none", root: absRoot, reason: `${absRoot} has no ${CELEBA_IMAGE_FOLDER}/ folder (CelebA's images are in one)` };
  }
  const nested = join(outer, CELEBA_IMAGE_FOLDER);
  const kind: CelebALayoutKind = (await isDirectory(nested)) ? "kaggle" : "official";
  const imageDir = kind === "kaggle" ? nested : outer;
  const imageCount = (await imageNames(imageDir)).length;
  const found = await Promise.all(CELEBA_METADATA_ROLES.map((role) => findMetadata(absRoot, role, kind)));
  const metadata = Object.fromEntries(found.map((f) => [f.role, f])) as Record<CelebAMetadataRole, CelebAMetadataFile>;
  const present = found.filter((f) => f.path !== undefined).map((f) => basename(f.path as string));
  const missing = found.filter((f) => f.path === undefined).map((f) => f.role);
  const notes: string[] = [];
  if (imageCount === 0) notes.push(`${imageDir} holds no images: the extraction is incomplete, or the images are elsewhere.`);
  else if (imageCount < CELEBA_IMAGE_COUNT) {
    notes.push(`${imageCount.toLocaleString("en-US")} images, where the full CelebA has ${CELEBA_IMAGE_COUNT.toLocaleString("en-US")} (a subset, or an incomplete extraction).`);
  }
  for (const role of missing) notes.push(missingNote(role, kind, absRoot));
  return { kind, root: absRoot, imageDir, imageCount, metadata, present, missing, notes };
}

/** A few lines for a notebook or a terminal: the layout, where the images are, what is present and missing. */
export function describeCelebALayout(layout: CelebALayout | NotCelebALayout): string[] {
  if (layout.kind === "none") return [`Not a CelebA folder: ${layout.reason}.`];
  const name = layout.kind === "kaggle" ? "Kaggle's layout" : "the official layout";
  return [
    `${layout.root}: CelebA in ${name}, ${layout.imageCount.toLocaleString("en-US")} images in ${layout.imageDir}.`,
    `Metadata present: ${layout.present.length > 0 ? layout.present.join(", ") : "none"}.`,
    ...layout.notes,
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Unreadable images

export interface ImageCheckOptions {
  /** `header` (default): sharp's `metadata()`, which reads the headers; `pixels`: a full decode (slower, also finds truncated files). */
  readonly depth?: "header" | "pixels";
  /** Images checked at once (default: twice the CPUs, at most 16). */
  readonly concurrency?: number;
  /** The progress bar's options, or false for none. */
  readonly progress?: ProgressOptions | false;
}

/** The outcome of checking images: how many were checked, and those that could not be read, with why. */
export interface ImageCheck {
  readonly checked: number;
  /** Paths (as given) of the images that could not be read, in input order. */
  readonly unreadable: string[];
  /** Why each of `unreadable` failed, same order. */
  readonly errors: string[];
}

async function checkOne(path: string, depth: "header" | "pixels"): Promise<string | undefined> {
  try {
    if (depth === "pixels") {
      await sharp(path, { failOn: "warning" }).raw().toBuffer();
      return undefined;
    }
    const meta = await sharp(path).metadata();
    if (!(meta.width > 0 && meta.height > 0)) return "no image size in its header";
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** Checks that each image can be read (headers by default), with bounded concurrency and a progress bar. */
export async function checkImages(paths: readonly string[], options: ImageCheckOptions = {}): Promise<ImageCheck> {
  const depth = options.depth ?? "header";
  const concurrency = Math.max(1, options.concurrency ?? Math.min(16, 2 * availableParallelism()));
  const failures: (string | undefined)[] = new Array(paths.length);
  const bar = options.progress === false ? undefined : new ProgressBar({ desc: "Checking images", unit: "img", ...options.progress, total: paths.length });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < paths.length) {
      const i = next++;
      failures[i] = await checkOne(paths[i], depth);
      bar?.update(1);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, paths.length)) }, worker));
  } finally {
    bar?.close();
  }
  const unreadable: string[] = [];
  const errors: string[] = [];
  failures.forEach((failure, i) => {
    if (failure === undefined) return;
    unreadable.push(paths[i]);
    errors.push(failure);
  });
  return { checked: paths.length, unreadable, errors };
}

/** Checks every image of a CelebA folder (absolute paths in `unreadable`). */
export async function checkCelebAImages(layout: CelebALayout, options: ImageCheckOptions = {}): Promise<ImageCheck> {
  const names = await imageNames(layout.imageDir);
  return checkImages(names.map((n) => join(layout.imageDir, n)), options);
}
