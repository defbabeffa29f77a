// The images of a dataset folder, listed in exactly the order torchvision's `ImageFolder` gives them, with CelebA's
// attribute and identity tables joined row by row.
//
// How the post's `ImageFolder(root="./data")` maps onto this. ImageFolder treats every sub-folder of `root` as a
// class (sorted by name) and lists each class folder with `sorted(os.walk(class_dir, followlinks=True))`, taking
// `sorted(fnames)` in each directory and keeping names whose lower-cased form ends with an image extension. The
// post unzipped Kaggle's archive into `./data`, so `./data` held one class folder, `img_align_celeba`, whose nested
// `img_align_celeba/` held the 202,599 JPEGs (the archive's CSV files sit directly in `./data` and are not in any
// class folder, so ImageFolder ignores them). Dataset index i in the post is therefore the i-th name of
// `sorted(os.listdir("./data/img_align_celeba/img_align_celeba"))`: 000001.jpg, 000002.jpg, …
//
// Here a dataset root is either
//   - a CelebA layout: `<root>/img_align_celeba/` (official: the JPEGs directly inside; Kaggle: nested once more),
//     with `list_attr_celeba.txt` and `identity_CelebA.txt` beside it in `<root>`. Only `img_align_celeba` is
//     listed, walked as ImageFolder walks a class folder: the same order as `ImageFolder(root)` whenever
//     `img_align_celeba` is the only sub-folder holding images (other folders, e.g. a stray `__MACOSX`, are left out).
//   - any other folder: `ImageFolder(root)` order (class folders sorted, each walked as above), preceded by the
//     images lying directly in `root` (which ImageFolder would ignore), so that a flat folder of images also works
//     and lists as `ImageFolder(parent)` would list it.
// Names are compared by Unicode code point, as Python compares `str` (JavaScript's `<` compares UTF-16 code units,
// which differs for characters outside the Basic Multilingual Plane; `localeCompare` differs far more).

import { existsSync } from "node:fs";
import { readdir, realpath, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import {
  CELEBA_METADATA_FILES, readAttributes, readIdentityTxt, readPartition, type AttributeTable, type CelebAMetadataRole, type IdentityTable,
  type PartitionTable,
} from "./celeba-metadata";

/** torchvision's `IMG_EXTENSIONS`: a file is an image when its lower-cased name ends with one of these. */
export const IMG_EXTENSIONS = [".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"] as const;

/** The folder of a CelebA layout, and its metadata files (in the dataset root, beside that folder). */
export const CELEBA_IMAGE_FOLDER = "img_align_celeba";

const HOW_TO_GET_DATA =
  "Download CelebA with `npm run notebooks -- --set dataset=celeba` (needs a Kaggle account), " +
  "or use the embedded synthetic faces with `npm run notebooks -- --set dataset=synthetic`, " +
  "or pass `--set dataset=<folder>` for a folder of your own images.";

/** What to do with images that a metadata file lacks. */
export type MissingMetadata = "error" | "flag";

export interface OpenImageDatasetOptions {
  /** Keep only the first `limit` images of the listing (after sorting). */
  readonly limit?: number;
  /**
   * Images absent from a metadata file that exists: `error` (default) throws naming the first few; `flag` keeps
   * them, with attribute values 0 and identity −1 in the aligned tables, and lists them in `metadata.missing…`.
   */
  readonly onMissingMetadata?: MissingMetadata;
  /** Skip reading the metadata files even if present (faster for a quick listing). */
  readonly skipMetadata?: boolean;
}

/** What joining the metadata found. */
export interface MetadataJoin {
  /** Absolute paths of the metadata files read, or null when absent. */
  readonly attributeFile: string | null;
  readonly identityFile: string | null;
  readonly partitionFile: string | null;
  /** Dataset files (relative paths) that had no row in the attribute / identity file (empty unless `flag`). */
  readonly missingAttributes: readonly string[];
  readonly missingIdentities: readonly string[];
  /** Rows of the metadata files whose image is not in this dataset (e.g. because of `limit`). Not an error. */
  readonly unusedAttributeRows: number;
  readonly unusedIdentityRows: number;
}

/** A listed image dataset. All arrays are in listing order, index i for the i-th image. */
export interface ImageDataset {
  /** The dataset root, absolute. */
  readonly root: string;
  /** `celeba` when `<root>/img_align_celeba/` exists, else `folder`. */
  readonly layout: "celeba" | "folder";
  /** The folder actually walked: `<root>/img_align_celeba` or `<root>`. */
  readonly imageDir: string;
  /** Paths relative to `root`, with `/` separators, e.g. `img_align_celeba/000001.jpg`. */
  readonly files: readonly string[];
  /** Absolute paths. */
  readonly paths: readonly string[];
  readonly count: number;
  /** Images found before `limit` was applied. */
  readonly totalImages: number;
  /** Attribute table aligned with `files` (its `files` are the base names), or null without an attribute file. */
  readonly attributes: AttributeTable | null;
  /** Identity table aligned with `files`, or null without an identity file. */
  readonly identities: IdentityTable | null;
  /** Train/val/test split aligned with `files` (0, 1, 2; 255 where unknown), or null without a partition file. */
  readonly partition: PartitionTable | null;
  readonly metadata: MetadataJoin;
}

/**
 * Compares two strings by Unicode code point, as Python's `<` on `str` does (and so `sorted()`).
 * UTF-16 code units order code points correctly except that surrogates (U+D800–DFFF, used for code points above
 * U+FFFF) must sort after U+E000–FFFF; the remapping below does that.
 */
export function comparePythonStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return fixUp(x) - fixUp(y);
  }
  return a.length - b.length;
}

function fixUp(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

/** Whether torchvision would treat a file name as an image (`filename.lower().endswith(IMG_EXTENSIONS)`). */
export function isImageFileName(name: string): boolean {
  const lower = name.toLowerCase();
  return IMG_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

interface DirEntries {
  readonly dirs: string[];
  readonly files: string[];
}

/** `os.scandir` split as `os.walk` splits it: directories (symlinks followed) and everything else. */
async function scan(dir: string): Promise<DirEntries> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    throw new Error(`cannot list ${dir} (${(error as NodeJS.ErrnoException).code ?? String(error)}); check that it exists and is readable`);
  }
  const dirs: string[] = [];
  const files: string[] = [];
  for (const entry of entries) {
    let isDir = entry.isDirectory();
    if (entry.isSymbolicLink()) isDir = await stat(join(dir, entry.name)).then((s) => s.isDirectory(), () => false);
    (isDir ? dirs : files).push(entry.name);
  }
  return { dirs, files };
}

/**
 * The image files below `dir`, relative to it with `/` separators, in the order of torchvision's
 * `for root, _, fnames in sorted(os.walk(dir, followlinks=True)): for fname in sorted(fnames): …`.
 * `sorted(os.walk(…))` orders directories by their whole path string (so `a b/` comes before `a/c/`, since
 * " " < "/"), not depth-first. A symlink to one of its own ancestors (on which `os.walk` would recurse until the
 * path is too long) is not followed.
 */
export async function walkImageFiles(dir: string): Promise<string[]> {
  const directories: { rel: string; files: string[] }[] = [];
  const visit = async (rel: string, ancestors: ReadonlySet<string>): Promise<void> => {
    const abs = rel === "" ? dir : join(dir, rel);
    const real = await realpath(abs);
    if (ancestors.has(real)) return; // a symlink back up the tree
    const { dirs, files } = await scan(abs);
    directories.push({ rel, files: files.filter(isImageFileName) });
    const inner = new Set(ancestors).add(real);
    for (const sub of dirs) await visit(rel === "" ? sub : `${rel}/${sub}`, inner);
  };
  await visit("", new Set());
  // os.walk yields dirpath = dir + "/" + rel; the common prefix does not change the order, and "" (dir itself) is first.
  directories.sort((a, b) => comparePythonStrings(a.rel, b.rel));
  const out: string[] = [];
  for (const { rel, files } of directories) {
    files.sort(comparePythonStrings);
    for (const f of files) out.push(rel === "" ? f : `${rel}/${f}`);
  }
  return out;
}

/**
 * `ImageFolder(root)`'s listing, relative to `root`: class folders sorted, each walked by `walkImageFiles`.
 * `includeLooseFiles` puts the images lying directly in `root` first (ImageFolder ignores them).
 */
export async function listImageFolder(root: string, includeLooseFiles = true): Promise<string[]> {
  const { dirs, files } = await scan(root);
  const out: string[] = includeLooseFiles ? files.filter(isImageFileName).sort(comparePythonStrings) : [];
  for (const cls of dirs.sort(comparePythonStrings)) {
    for (const f of await walkImageFiles(join(root, cls))) out.push(`${cls}/${f}`);
  }
  return out;
}

function describeFirst(items: readonly string[], n = 5): string {
  const shown = items.slice(0, n).join(", ");
  return items.length > n ? `${shown} and ${items.length - n} more` : shown;
}

interface Joined<T> {
  readonly table: T;
  readonly missing: string[];
  readonly unused: number;
}

/** Row of each base name in a metadata file's `files`. Duplicate rows are an error naming the file. */
function rowIndex(files: readonly string[], source: string): Map<string, number> {
  const index = new Map<string, number>();
  files.forEach((f, i) => {
    if (index.has(f)) throw new Error(`${source} lists ${f} twice (rows ${index.get(f)! + 1} and ${i + 1} of the table); remove one`);
    index.set(f, i);
  });
  return index;
}

function missingError(source: string, missing: readonly string[], count: number): Error {
  return new Error(
    `${source} has no row for ${missing.length} of the ${count} images (${describeFirst(missing)}). ` +
      "Use the metadata file that came with these images, remove the extra images, " +
      "or open the dataset with { onMissingMetadata: \"flag\" } to keep them with unknown labels.",
  );
}

/**
 * Aligns a metadata table's rows with the dataset's images (by base name): `copy(row, i)` takes row `row` for image
 * `i`; images without a row are collected (an error in "error" mode), rows without an image are counted.
 */
function joinRows(tableFiles: readonly string[], names: readonly string[], files: readonly string[], source: string, mode: MissingMetadata, copy: (row: number, i: number) => void): { missing: string[]; unused: number } {
  const index = rowIndex(tableFiles, source);
  const missing: string[] = [];
  const used = new Set<number>();
  names.forEach((name, i) => {
    const row = index.get(name);
    if (row === undefined) {
      missing.push(files[i]);
      return;
    }
    used.add(row);
    copy(row, i);
  });
  if (missing.length > 0 && mode === "error") throw missingError(source, missing, names.length);
  return { missing, unused: tableFiles.length - used.size };
}

function joinAttributes(table: AttributeTable, names: readonly string[], files: readonly string[], source: string, mode: MissingMetadata): Joined<AttributeTable> {
  const width = table.names.length;
  const values = new Int8Array(names.length * width);
  const { missing, unused } = joinRows(table.files, names, files, source, mode, (row, i) =>
    values.set(table.values.subarray(row * width, (row + 1) * width), i * width),
  );
  return { table: { names: table.names, files: names, values }, missing, unused };
}

function joinIdentities(table: IdentityTable, names: readonly string[], files: readonly string[], source: string, mode: MissingMetadata): Joined<IdentityTable> {
  const ids = new Int32Array(names.length).fill(-1);
  const { missing, unused } = joinRows(table.files, names, files, source, mode, (row, i) => (ids[i] = table.ids[row]));
  return { table: { files: names, ids }, missing, unused };
}

function joinPartition(table: PartitionTable, names: readonly string[], files: readonly string[], source: string, mode: MissingMetadata): Joined<PartitionTable> {
  const split = new Uint8Array(names.length).fill(255);
  const { missing, unused } = joinRows(table.files, names, files, source, mode, (row, i) => (split[i] = table.split[row]));
  return { table: { files: names, split }, missing, unused };
}

/** The dataset root's metadata file for `role`: CelebA's official .txt, else Kaggle's .csv, else null. */
function metadataFile(root: string, role: CelebAMetadataRole): string | null {
  const { txt, csv } = CELEBA_METADATA_FILES[role];
  for (const name of csv === undefined ? [txt] : [txt, csv]) if (existsSync(join(root, name))) return join(root, name);
  return null;
}

/** Base names of the files, checking they are unique (metadata rows are keyed by base name). */
function uniqueBaseNames(files: readonly string[], root: string): string[] {
  const names = files.map((f) => basename(f));
  const first = new Map<string, number>();
  names.forEach((name, i) => {
    const j = first.get(name);
    if (j !== undefined) {
      throw new Error(
        `${root}: ${files[j]} and ${files[i]} share the base name ${name}, but CelebA's metadata files key rows by base name; ` +
          "rename one, or remove the metadata files to use the folder without labels",
      );
    }
    first.set(name, i);
  });
  return names;
}

/**
 * Lists a dataset folder (CelebA layout or any folder of images) in ImageFolder order and joins CelebA's metadata
 * files when they are present in the root. Throws, saying what was looked for and how to get data, when the folder
 * is missing or holds no images.
 */
export async function openImageDataset(root: string, options: OpenImageDatasetOptions = {}): Promise<ImageDataset> {
  const { limit, onMissingMetadata = "error", skipMetadata = false } = options;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new RangeError(`limit must be a positive whole number of images, got ${limit}`);
  }
  const absRoot = resolve(root);
  const isDir = await stat(absRoot).then((s) => s.isDirectory(), () => false);
  if (!isDir) {
    throw new Error(`The dataset folder ${absRoot} does not exist (or is not a folder). ${HOW_TO_GET_DATA}`);
  }
  const celebaDir = join(absRoot, CELEBA_IMAGE_FOLDER);
  const hasCelebaFolder = await stat(celebaDir).then((s) => s.isDirectory(), () => false);
  const layout: ImageDataset["layout"] = hasCelebaFolder ? "celeba" : "folder";
  const imageDir = layout === "celeba" ? celebaDir : absRoot;
  const listed = layout === "celeba" ? (await walkImageFiles(celebaDir)).map((f) => `${CELEBA_IMAGE_FOLDER}/${f}`) : await listImageFolder(absRoot);
  if (listed.length === 0) {
    const lookedFor =
      layout === "celeba"
        ? `image files (${IMG_EXTENSIONS.join(", ")}) in ${celebaDir} or below it (Kaggle's archive nests them in img_align_celeba/img_align_celeba/)`
        : `${celebaDir}/*.jpg (CelebA layout), or image files (${IMG_EXTENSIONS.join(", ")}) anywhere below ${absRoot}`;
    throw new Error(`No images in ${absRoot}: looked for ${lookedFor}. ${HOW_TO_GET_DATA}`);
  }
  const files = limit === undefined ? listed : listed.slice(0, limit);
  const paths = files.map((f) => join(absRoot, ...f.split("/")));

  const found = (role: CelebAMetadataRole): string | null => (skipMetadata ? null : metadataFile(absRoot, role));
  const attributeFile = found("attributes");
  const identityFile = found("identity");
  const partitionFile = found("partition");
  const names = attributeFile || identityFile || partitionFile ? uniqueBaseNames(files, absRoot) : [];
  const attributes = attributeFile ? joinAttributes(await readAttributes(attributeFile), names, files, attributeFile, onMissingMetadata) : null;
  const identities = identityFile ? joinIdentities(await readIdentityTxt(identityFile), names, files, identityFile, onMissingMetadata) : null;
  const partition = partitionFile ? joinPartition(await readPartition(partitionFile), names, files, partitionFile, onMissingMetadata) : null;

  return {
    root: absRoot,
    layout,
    imageDir,
    files,
    paths,
    count: files.length,
    totalImages: listed.length,
    attributes: attributes?.table ?? null,
    identities: identities?.table ?? null,
    partition: partition?.table ?? null,
    metadata: {
      attributeFile,
      identityFile,
      partitionFile,
      missingAttributes: attributes?.missing ?? [],
      missingIdentities: identities?.missing ?? [],
      unusedAttributeRows: attributes?.unused ?? 0,
      unusedIdentityRows: identities?.unused ?? 0,
    },
  };
}

/** Rows `indices` of a row-major table `width` values wide. */
function pickRows<T extends Int8Array | Int32Array | Uint8Array>(values: T, width: number, indices: readonly number[], make: (length: number) => T): T {
  const out = make(indices.length * width);
  indices.forEach((i, k) => out.set(values.subarray(i * width, (i + 1) * width), k * width));
  return out;
}

/**
 * The dataset restricted to the images at `indices` (ascending), with their attribute, identity and partition rows:
 * image k of the result is image `indices[k]` of `dataset`. What the run's stages see when images are left out.
 */
export function selectImages(dataset: ImageDataset, indices: readonly number[]): ImageDataset {
  indices.forEach((index, k) => {
    if (!Number.isInteger(index) || index < 0 || index >= dataset.count || (k > 0 && index <= indices[k - 1])) {
      throw new RangeError(`selectImages: indices must ascend within 0 … ${dataset.count - 1}; got ${index} at position ${k}`);
    }
  });
  const pick = <T>(items: readonly T[]): T[] => indices.map((i) => items[i]);
  const { attributes, identities, partition } = dataset;
  return {
    ...dataset,
    files: pick(dataset.files),
    paths: pick(dataset.paths),
    count: indices.length,
    attributes: attributes && { names: attributes.names, files: pick(attributes.files), values: pickRows(attributes.values, attributes.names.length, indices, (n) => new Int8Array(n)) },
    identities: identities && { files: pick(identities.files), ids: pickRows(identities.ids, 1, indices, (n) => new Int32Array(n)) },
    partition: partition && { files: pick(partition.files), split: pickRows(partition.split, 1, indices, (n) => new Uint8Array(n)) },
  };
}
