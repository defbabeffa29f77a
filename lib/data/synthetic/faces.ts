// The embedded default dataset: procedurally drawn faces written in CelebA's own on-disk layout, so the whole
// pipeline runs with no account and no download.
//
//   <outDir>/img_align_celeba/000001.jpg …   178×218 RGB JPEGs, face centred like CelebA's aligned crops
//   <outDir>/list_attr_celeba.txt            CelebA's ±1 attribute format (SYNTHETIC_ATTRIBUTES says what each means)
//   <outDir>/identity_CelebA.txt             `000001.jpg 17`: each identity is one made-up person, shown ~20 times
//   <outDir>/synthetic_factors.csv           the exact factors of every image (SYNTHETIC_FACTORS), in file order
//   <outDir>/synthetic.json                  the manifest, written last: its presence means "complete"
//
// Everything is a pure function of (seed, count, identities): the same plan gives byte-identical files. The metadata
// files go first (they also fingerprint the plan, so a folder holding another dataset is refused, never mixed),
// then the images (each to a temporary name, then renamed), then the manifest. A call on a complete folder returns
// at once; a call on a half-written one renders only what is missing.

import { access, mkdir, readFile, readdir, rm } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";
import sharp from "sharp";
import { formatAttributeTxt, formatIdentityTxt } from "../celeba-metadata";
import { SYNTHETIC_ATTRIBUTE_NAMES, syntheticAttributeValues, syntheticFactorHeader, syntheticFactorRow } from "./attributes";
import {
  type FaceSpec, type IdentityTraits, type SyntheticPlan, SYNTHETIC_GENERATOR_VERSION, SYNTHETIC_IMAGE_HEIGHT, SYNTHETIC_IMAGE_WIDTH,
  defaultIdentityCount, syntheticFileName, syntheticIdentity, syntheticIdentityOf, syntheticImageFactors, validatePlan,
} from "./spec";
import { renderFaceSvg } from "./svg";
import { isTemporaryPath, writeFileAtomic } from "../../util/atomic-write";

export * from "./spec";
export * from "./attributes";
export { renderFaceSvg } from "./svg";
export { faceToImage, faceLandmarks, FACE_CENTRE, type FaceLandmarks } from "./face-geometry";

export const SYNTHETIC_IMAGE_DIR = "img_align_celeba";
export const SYNTHETIC_ATTRIBUTE_FILE = "list_attr_celeba.txt";
export const SYNTHETIC_IDENTITY_FILE = "identity_CelebA.txt";
export const SYNTHETIC_FACTOR_FILE = "synthetic_factors.csv";
export const SYNTHETIC_MANIFEST_FILE = "synthetic.json";
/** The seed used when none is given. */
export const DEFAULT_SYNTHETIC_SEED = 1;
/** JPEG quality of the images (CelebA's own files are high-quality JPEGs). */
export const SYNTHETIC_JPEG_QUALITY = 90;
const GENERATOR_NAME = "celeba-sae/synthetic-faces";

export interface SyntheticFacesOptions {
  /** Folder to write; created if missing. */
  readonly outDir: string;
  /** Number of images, 1..999,999. */
  readonly count: number;
  /** Number of distinct people; default `round(count / 20)`, at least 1. */
  readonly identities?: number;
  /** Any integer 0..2³²−1; default DEFAULT_SYNTHETIC_SEED. */
  readonly seed?: number;
  /** Images rendered at once; default 2 × the number of CPUs. */
  readonly concurrency?: number;
  /** Called with (images present, count) as images are written. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** The manifest `synthetic.json`: what the folder holds. Written last, so its presence means "complete". */
export interface SyntheticManifest {
  readonly generator: string;
  readonly version: number;
  readonly seed: number;
  readonly count: number;
  readonly identities: number;
  readonly width: number;
  readonly height: number;
  readonly imageDir: string;
  readonly attributeFile: string;
  readonly identityFile: string;
  readonly factorFile: string;
  readonly attributes: readonly string[];
}

export interface SyntheticDatasetSummary {
  readonly outDir: string;
  readonly imageDir: string;
  readonly attributeFile: string;
  readonly identityFile: string;
  readonly factorFile: string;
  readonly manifestFile: string;
  readonly manifest: SyntheticManifest;
  /** Images rendered by this call (0 when the dataset was already complete). */
  readonly rendered: number;
  /** True when the folder already held this complete dataset and nothing was written. */
  readonly skipped: boolean;
  readonly seconds: number;
}

/** The folder holds something other than the requested dataset; nothing was written. */
export class SyntheticDatasetMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SyntheticDatasetMismatchError";
  }
}

/** Renders one spec to JPEG bytes (178×218, 3 channels). */
export async function renderFaceJpeg(spec: FaceSpec): Promise<Buffer> {
  let image = sharp(Buffer.from(renderFaceSvg(spec)), { density: 72 }).removeAlpha();
  if (spec.factors.blurSigma >= 0.3) image = image.blur(spec.factors.blurSigma);
  return image.jpeg({ quality: SYNTHETIC_JPEG_QUALITY }).toBuffer();
}

/** All specs of a plan in file order (identities are computed once each). */
export function syntheticFaceSpecs(plan: SyntheticPlan): FaceSpec[] {
  validatePlan(plan);
  const people = new Map<number, IdentityTraits>();
  const specs: FaceSpec[] = [];
  for (let index = 0; index < plan.count; index++) {
    const id = syntheticIdentityOf(plan, index);
    let identity = people.get(id);
    if (identity === undefined) {
      identity = syntheticIdentity(plan.seed, id);
      people.set(id, identity);
    }
    specs.push({ index, file: syntheticFileName(index), identity, factors: syntheticImageFactors(plan.seed, index, identity) });
  }
  return specs;
}

/** The texts of the three metadata files for these specs. */
export function syntheticMetadataTexts(specs: readonly FaceSpec[]): { attributes: string; identities: string; factors: string } {
  const names = SYNTHETIC_ATTRIBUTE_NAMES;
  const values = new Int8Array(specs.length * names.length);
  specs.forEach((spec, i) => values.set(syntheticAttributeValues(spec), i * names.length));
  const files = specs.map((s) => s.file);
  return {
    attributes: formatAttributeTxt({ names, files, values }),
    identities: formatIdentityTxt({ files, ids: Int32Array.from(specs, (s) => s.identity.id) }),
    factors: [syntheticFactorHeader(), ...specs.map(syntheticFactorRow)].join("\n") + "\n",
  };
}

function manifestFor(plan: SyntheticPlan): SyntheticManifest {
  return {
    generator: GENERATOR_NAME,
    version: SYNTHETIC_GENERATOR_VERSION,
    seed: plan.seed,
    count: plan.count,
    identities: plan.identities,
    width: SYNTHETIC_IMAGE_WIDTH,
    height: SYNTHETIC_IMAGE_HEIGHT,
    imageDir: SYNTHETIC_IMAGE_DIR,
    attributeFile: SYNTHETIC_ATTRIBUTE_FILE,
    identityFile: SYNTHETIC_IDENTITY_FILE,
    factorFile: SYNTHETIC_FACTOR_FILE,
    attributes: SYNTHETIC_ATTRIBUTE_NAMES,
  };
}

function describe(m: Pick<SyntheticManifest, "seed" | "count" | "identities" | "version">): string {
  return `seed ${m.seed}, count ${m.count}, identities ${m.identities}, generator version ${m.version}`;
}

/** The manifest of a synthetic dataset folder, or undefined when there is none (not generated, or not finished). */
export async function readSyntheticManifest(dir: string): Promise<SyntheticManifest | undefined> {
  const path = join(dir, SYNTHETIC_MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new SyntheticDatasetMismatchError(`${path} is not valid JSON: delete it (the dataset will be checked and completed on the next call)`);
  }
  const m = parsed as Partial<SyntheticManifest>;
  if (m.generator !== GENERATOR_NAME || typeof m.seed !== "number" || typeof m.count !== "number" || typeof m.identities !== "number" || typeof m.version !== "number") {
    throw new SyntheticDatasetMismatchError(`${path} is not a synthetic-faces manifest: this folder holds something else; choose an empty folder for outDir`);
  }
  return m as SyntheticManifest;
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

async function listDir(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}

/** Writes a metadata file unless it already holds exactly `text` (so a resumed run leaves it untouched). */
async function writeMetadata(path: string, text: string): Promise<void> {
  if ((await readIfExists(path)) !== text) await writeFileAtomic(path, text);
}

/** Runs `job(0..total−1)` with at most `limit` in flight; stops starting new jobs after the first failure. */
async function pool(total: number, limit: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < total) {
      const i = next++;
      try {
        await job(i);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, total) }, worker));
}

function resolvePlan(options: SyntheticFacesOptions): SyntheticPlan {
  const { count } = options;
  if (typeof count !== "number" || !Number.isInteger(count) || count < 1) {
    throw new RangeError(`generateSyntheticFaces: count must be a positive integer (number of images), got ${String(count)}`);
  }
  const plan: SyntheticPlan = { seed: options.seed ?? DEFAULT_SYNTHETIC_SEED, count, identities: options.identities ?? defaultIdentityCount(count) };
  validatePlan(plan);
  return plan;
}

/**
 * Writes the synthetic dataset of `count` images into `outDir` (see the file header for the layout), or returns at
 * once when `outDir` already holds exactly that dataset. Throws SyntheticDatasetMismatchError, before writing
 * anything, when `outDir` holds a different dataset (another seed, count, identities or generator version, or a
 * non-synthetic dataset such as real CelebA).
 */
export async function generateSyntheticFaces(options: SyntheticFacesOptions): Promise<SyntheticDatasetSummary> {
  const started = performance.now();
  const plan = resolvePlan(options);
  const concurrency = options.concurrency ?? 2 * availableParallelism();
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`generateSyntheticFaces: concurrency must be a positive integer, got ${concurrency}`);
  }
  const outDir = resolve(options.outDir);
  const imageDir = join(outDir, SYNTHETIC_IMAGE_DIR);
  const paths = {
    attributeFile: join(outDir, SYNTHETIC_ATTRIBUTE_FILE),
    identityFile: join(outDir, SYNTHETIC_IDENTITY_FILE),
    factorFile: join(outDir, SYNTHETIC_FACTOR_FILE),
    manifestFile: join(outDir, SYNTHETIC_MANIFEST_FILE),
  };
  const manifest = manifestFor(plan);
  const summary = (rendered: number, skipped: boolean): SyntheticDatasetSummary => ({
    outDir, imageDir, ...paths, manifest, rendered, skipped, seconds: (performance.now() - started) / 1000,
  });
  const files = Array.from({ length: plan.count }, (_, i) => syntheticFileName(i));

  // 1. A manifest: the same dataset (complete → done; files missing → repair), or a different one (refuse).
  const existing = await readSyntheticManifest(outDir);
  if (existing !== undefined) {
    if (existing.seed !== plan.seed || existing.count !== plan.count || existing.identities !== plan.identities || existing.version !== manifest.version) {
      throw new SyntheticDatasetMismatchError(
        `${outDir} already holds a synthetic dataset with ${describe(existing)}; you asked for ${describe(manifest)}. ` +
        `Use another outDir, or delete ${outDir} to replace it.`);
    }
    const present = new Set(await listDir(imageDir));
    const exists = (path: string): Promise<boolean> => access(path).then(() => true, () => false);
    const metadataPresent = (await Promise.all([paths.attributeFile, paths.identityFile, paths.factorFile].map(exists))).every(Boolean);
    if (metadataPresent && files.every((f) => present.has(f))) {
      options.onProgress?.(plan.count, plan.count);
      return summary(0, true);
    }
    await rm(paths.manifestFile); // incomplete: not "complete" again until repaired
  }

  // 2. Metadata. Without a matching manifest, a factor file that is there must be exactly ours: it fingerprints
  //    seed, count and identities. Images or CelebA files without one belong to some other dataset.
  const specs = syntheticFaceSpecs(plan);
  const texts = syntheticMetadataTexts(specs);
  const trusted = existing !== undefined;
  const oldFactors = trusted ? undefined : await readIfExists(paths.factorFile);
  const presentBefore = await listDir(imageDir);
  if (oldFactors !== undefined && oldFactors !== texts.factors) {
    const rows = oldFactors.split("\n").filter((l) => l.length > 0).length - 1;
    throw new SyntheticDatasetMismatchError(
      `${outDir} holds an unfinished synthetic dataset that differs from ${describe(manifest)} (its ${SYNTHETIC_FACTOR_FILE} has ${rows} rows ` +
      `and other values). Use another outDir, or delete ${outDir} to replace it.`);
  }
  if (!trusted && oldFactors === undefined) {
    const foreign = presentBefore.some((f) => f.endsWith(".jpg")) || (await readIfExists(paths.attributeFile)) !== undefined || (await readIfExists(paths.identityFile)) !== undefined;
    if (foreign) {
      throw new SyntheticDatasetMismatchError(
        `${outDir} holds a dataset that is not a synthetic-faces set (it has images or CelebA metadata but no ${SYNTHETIC_FACTOR_FILE} or ${SYNTHETIC_MANIFEST_FILE}); ` +
        `refusing to mix. Choose an empty or new outDir.`);
    }
  }
  await mkdir(imageDir, { recursive: true });
  await writeMetadata(paths.factorFile, texts.factors);
  await writeMetadata(paths.attributeFile, texts.attributes);
  await writeMetadata(paths.identityFile, texts.identities);

  // 3. Images: leftovers of an interrupted write are removed; images already present are complete (renamed in place).
  await Promise.all(presentBefore.filter(isTemporaryPath).map((f) => rm(join(imageDir, f), { force: true })));
  const present = new Set(presentBefore);
  const missing = specs.filter((s) => !present.has(s.file));
  let done = plan.count - missing.length;
  options.onProgress?.(done, plan.count);
  await pool(missing.length, concurrency, async (i) => {
    const spec = missing[i];
    await writeFileAtomic(join(imageDir, spec.file), await renderFaceJpeg(spec), { durable: false });
    done++;
    options.onProgress?.(done, plan.count);
  });

  // 4. The manifest, last.
  await writeFileAtomic(paths.manifestFile, JSON.stringify(manifest, null, 2) + "\n");
  return summary(missing.length, false);
}
