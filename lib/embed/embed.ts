// Embedding every face (notebook 03): the fine-tuned ResNet18 in eval mode over the images in listing order — the
// post's "Notably, we *DO NOT SHUFFLE*!" — into runs/<run>/face_vectors.npy (N × 512 float32, numpy-readable) and
// runs/<run>/face_vectors.files.txt (the dataset-relative file of each row).
//
// Who computes the vectors is the run config's `embed.engine` (lib/embed/onnx-embed): onnxruntime-node when it is installed
// (the model exported to ONNX, also written to runs/<run>/resnet18.onnx), else TF.js; both give the same vectors.
//
// Resumable: rows are written in parts (runs/<run>/face_vectors.parts/part-000000.npy + .txt, each atomic); an
// interrupted run keeps its finished parts and embeds only the rest. The parts are joined into face_vectors.npy at
// the end and removed. A finished embedding is not computed again when it was made from the same model (its SHA-256,
// not its name or time), the same images (the run's usable images' id) and settings, and face_vectors.npy still has
// the SHA-256 face_vectors.json records (`sha256`, on which later stages key); otherwise the earlier vectors are set
// aside (face_vectors.before-<stamp>.npy …) and the images embedded afresh, and the result's note says why.

import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { basename, dirname, join } from "node:path";

import { tf, tidyValues } from "../kernels/backend";

import type { EngineChoice } from "../kernels/backend-names";

import type { Preset, RunConfig } from "../run/config";

import { openRunDataset, type RunDataset } from "../data/datasets";

import { imageCachePath } from "../data/datasets";

import { preprocess } from "../model/inputs";

import type { ImageDataset } from "../data/image-dataset";

import { BadImageError, createImageLoader, type ImageBatch } from "../data/image-loader";

import { checkFiniteRows, createNpyWriter, readNpy, writeNpy } from "../formats/npy";
import { requireFreeSpace } from "../util/disk";

import { writeFileAtomicSync } from "../util/atomic-write";
import { chooseEngine, describeEngine, loadOnnxRuntime, type OrtLoad } from "../kernels/onnxruntime";

import { createOnnxEmbedder, type Embedder } from "./onnx-embed";

import { displayPath } from "../util/project";

import { asideName, asideStamp, runFiles } from "../run/files";

import { artifactId } from "../util/artifact-id";

import { removeDeadTemporaries, removeWhole } from "../util/temporaries";

import { ProgressBar, type ProgressMode } from "../display/progress";

import { loadResNet18, type ResNet18 } from "../model/resnet18";


/** What an embedding is made from: the same key, the same vectors. */
interface EmbedKey {
  readonly format: "celeba-sae face vectors";
  readonly version: 2;
  /** SHA-256 of resnet18.safetensors: a model fine-tuned again is embedded again, whatever its name and time. */
  readonly model: string;
  /** The id of the images embedded (the run's usable images, see lib/data/datasets `RunDataset.imagesId`). */
  readonly images: string;
  readonly count: number;
  readonly imageSize: number;
  readonly resize: Preset;
  readonly preset: Preset;
}

/** runs/<run>/face_vectors.json: what made the vectors, and their id. */
interface EmbedRecord {
  readonly key: EmbedKey;
  readonly rows: number;
  readonly dim: number;
  readonly skipped: readonly string[];
  readonly engine?: string;
  readonly onnx?: string | null;
  /** SHA-256 of face_vectors.npy (lib/util/artifact-id): what later stages key on. */
  readonly sha256?: string;
}

/** The model's embeddings of a batch (eval mode: BatchNorm's running statistics), preprocessed as in training. */
export function embedBatch(model: ResNet18, batch: ImageBatch, preset: Preset): Float32Array {
  return tidyValues(() => model.apply(preprocess(tf.tensor4d(batch.data, batch.shape), preset), false));
}

export interface EmbedderOptions {
  /** Where the ONNX export is also written (ONNX Runtime only). */
  readonly onnxPath?: string;
  /** The side of the square images to embed (ONNX Runtime fixes its graph to it: see createOnnxEmbedder). */
  readonly imageSize?: number;
  /** Replaces loading onnxruntime-node (tests). */
  readonly loadOnnxRuntime?: () => OrtLoad;
}

/**
 * The embedder `choice` asks for (config `embed.engine`): ONNX Runtime running the exported model where
 * onnxruntime-node loads ("auto", "onnxruntime"), else TF.js running `embedBatch`. A forced "onnxruntime" that does
 * not load is an error naming the fix. Close it after use; the model stays the caller's.
 */
export async function createEmbedder(model: ResNet18, preset: Preset, choice: EngineChoice, options: EmbedderOptions = {}): Promise<Embedder> {
  const engine = chooseEngine(choice, options.loadOnnxRuntime ?? (() => loadOnnxRuntime()));
  let why = engine.name === "tfjs" ? engine.why : "";
  if (engine.name === "onnxruntime") {
    try {
      return await createOnnxEmbedder(model, preset, engine, { savePath: options.onnxPath, imageSize: options.imageSize });
    } catch (error) {
      if (choice === "onnxruntime") throw error;
      why = `onnxruntime-node ${engine.version} could not run the model (${(error instanceof Error ? error.message : String(error)).split("\n")[0]})`;
    }
  }
  const description = describeEngine({ name: "tfjs", why }, tf.getBackend());
  return {
    engine: "tfjs",
    description,
    embed: (batch) => Promise.resolve(embedBatch(model, batch, preset)),
    close: () => Promise.resolve(),
  };
}

export interface EmbedImagesOptions {
  readonly batchSize: number;
  readonly preset: Preset;
  readonly progress?: ProgressMode;
  readonly desc?: string;
  /** Replaces loading onnxruntime-node (tests). */
  readonly loadOnnxRuntime?: () => OrtLoad;
}

/** Embeddings of the dataset images at `indices` (rows in that order), e.g. a sample for the identity metrics, by the
 *  engine of `config.embed.engine`. */
export async function embedImages(model: ResNet18, dataset: ImageDataset, indices: readonly number[], config: RunConfig, options: EmbedImagesOptions): Promise<Float32Array> {
  const embedder = await createEmbedder(model, options.preset, config.embed.engine, { imageSize: config.imageSize, loadOnnxRuntime: options.loadOnnxRuntime });
  const loader = createImageLoader(dataset.paths, {
    size: config.imageSize, mode: config.resize, batchSize: options.batchSize, prefetch: config.prefetchBatches,
    cache: imageCachePath(config, dataset), onBadImage: "error", reuseBatchMemory: true,
  });
  const out = new Float32Array(indices.length * model.embeddingSize);
  const bar = new ProgressBar({ total: indices.length, desc: options.desc ?? "Embedding", unit: "img", mode: options.progress });
  let row = 0;
  try {
    for await (const batch of loader.batches({ order: indices })) {
      out.set(await embedder.embed(batch), row * model.embeddingSize);
      row += batch.indices.length;
      bar.update(batch.indices.length);
    }
  } finally {
    bar.close();
    await loader.close();
    await embedder.close();
  }
  return out;
}

export interface EmbedResult {
  readonly path: string;
  readonly filesPath: string;
  /** Rows written (images that could be read). */
  readonly rows: number;
  readonly dim: number;
  /** Rows taken from an interrupted earlier run (or all of them when the embedding was already complete). */
  readonly resumedRows: number;
  /** Time and throughput of the images embedded by this call. */
  readonly seconds: number;
  readonly imagesPerSecond: number;
  readonly alreadyDone: boolean;
  readonly skippedImages: readonly string[];
  /** Which engine embedded and why, e.g. "onnxruntime-node 1.30.0 (CPU, 2 threads)" (when already done: the one that did). */
  readonly engine: string;
  /** The model exported to ONNX (runs/<run>/resnet18.onnx) when ONNX Runtime embedded, else null. */
  readonly onnxPath: string | null;
  /** SHA-256 of face_vectors.npy, as face_vectors.json records it. */
  readonly sha256: string;
  /** What was not reused and why (earlier vectors set aside, an unfinished embedding discarded), or "". */
  readonly note: string;
}

export interface EmbedOptions {
  readonly progress?: ProgressMode;
  /** Images per resumable part (default 16 batches). */
  readonly partRows?: number;
  /** Called after each finished part (tests stop a run here, as a kill would). */
  readonly onPart?: (part: number) => void;
  /** Replaces loading onnxruntime-node (tests). */
  readonly loadOnnxRuntime?: () => OrtLoad;
}

async function embedKey(config: RunConfig, dataset: RunDataset, modelPath: string): Promise<EmbedKey> {
  return {
    format: "celeba-sae face vectors", version: 2, model: await artifactId(modelPath), images: dataset.imagesId, count: dataset.count,
    imageSize: config.imageSize, resize: config.resize, preset: config.finetune.preset,
  };
}

const sameKey = (a: unknown, b: EmbedKey): boolean => JSON.stringify(a) === JSON.stringify(b);

/** What differs between the key of earlier vectors and this one, in words. */
function keyChanges(before: unknown, after: EmbedKey): string {
  const old = (before ?? {}) as Partial<Record<keyof EmbedKey, unknown>>;
  if (old.format !== after.format || old.version !== after.version) return "they were made by an earlier version of this project";
  const words: Partial<Record<keyof EmbedKey, string>> = { model: "the fine-tuned model changed (resnet18.safetensors has another SHA-256)", images: "the images changed" };
  const keys = Object.keys(after) as (keyof EmbedKey)[];
  return keys.filter((k) => JSON.stringify(old[k]) !== JSON.stringify(after[k])).map((k) => words[k] ?? `${k}: ${String(old[k])} → ${String(after[k])}`).join("; ");
}

/** Sets face_vectors.npy, .files.txt and .json aside (see lib/run/files asideName); returns the .npy's new path. */
function setVectorsAside(run: string): string {
  const files = runFiles(run);
  const stamp = asideStamp();
  const aside = asideName(files.faceVectors, stamp);
  for (const path of [files.faceVectors, files.faceVectorsFiles, files.faceVectorsRecord]) if (existsSync(path)) renameSync(path, asideName(path, stamp));
  return aside;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as unknown;
  } catch {
    return null;
  }
}

const partName = (k: number): string => `part-${String(k).padStart(6, "0")}`;

/**
 * Embeds every image of the run's dataset with the fine-tuned model (runs/<run>/resnet18.safetensors) into
 * face_vectors.npy + face_vectors.files.txt, resuming from finished parts.
 */
export async function embedDataset(config: RunConfig, options: EmbedOptions = {}): Promise<EmbedResult> {
  const modelPath = runFiles(config.run).model;
  if (!existsSync(modelPath)) {
    throw new Error(`${displayPath(modelPath)} does not exist: run notebook 02-finetune first (npm run notebooks -- --run ${config.run} --only 02).`);
  }
  const dataset = await openRunDataset(config);
  const key = await embedKey(config, dataset, modelPath);
  const path = runFiles(config.run).faceVectors;
  const filesPath = runFiles(config.run).faceVectorsFiles;
  const record = runFiles(config.run).faceVectorsRecord;
  const { faceVectors, faceVectorsFiles, faceVectorsRecord, onnxModel } = runFiles(config.run);
  const parts = runFiles(config.run).faceVectorsParts;
  for (const written of [faceVectors, faceVectorsFiles, faceVectorsRecord, onnxModel, parts]) removeDeadTemporaries(dirname(written), `${basename(written)}.tmp-`);
  const done = readJson(record) as EmbedRecord | null;
  const finished = done !== null && existsSync(path) && existsSync(filesPath);
  const intact = finished && typeof done.sha256 === "string" && done.sha256 === (await artifactId(path));
  const stored = readJson(join(parts, "key.json")) as { key: EmbedKey; partRows: number } | null;
  if (finished && intact && sameKey(done.key, key)) {
    // The parts of this very embedding, when a kill came between writing its record and removing them.
    if (stored !== null && sameKey(stored.key, key)) removeWhole(parts);
    const onnx = typeof done.onnx === "string" && existsSync(done.onnx) ? done.onnx : null;
    return {
      path, filesPath, rows: done.rows, dim: done.dim, resumedRows: done.rows, seconds: 0, imagesPerSecond: 0, alreadyDone: true, skippedImages: done.skipped,
      engine: done.engine ?? "not recorded", onnxPath: onnx, sha256: done.sha256 ?? "", note: "",
    };
  }

  const partRows = options.partRows ?? 16 * config.embed.batchSize;
  const resumable = stored !== null && sameKey(stored.key, key);
  const notes: string[] = [];
  if (!resumable) {
    if (stored !== null) notes.push(`An unfinished embedding in ${displayPath(parts)} was made from other inputs (${keyChanges(stored.key, key)}): it was discarded.`);
    if (existsSync(path)) {
      const why = !finished ? "it has no record of what made it" : !intact ? "it changed since it was written (its SHA-256 is not the one in face_vectors.json)" : keyChanges(done.key, key);
      notes.push(`The face vectors made before were not reused (${why}): they were set aside as ${displayPath(setVectorsAside(config.run))}.`);
    }
    removeWhole(parts);
    mkdirSync(parts, { recursive: true });
    writeFileAtomicSync(join(parts, "key.json"), JSON.stringify({ key, partRows }));
  }
  removeDeadTemporaries(parts);
  const storedPartRows = resumable ? stored.partRows : partRows;
  const partCount = Math.ceil(dataset.count / storedPartRows);
  const isDone = (k: number): boolean => existsSync(join(parts, `${partName(k)}.npy`)) && existsSync(join(parts, `${partName(k)}.txt`));
  const rowsOf = (k: number): number => Math.min(dataset.count, (k + 1) * storedPartRows) - k * storedPartRows;

  const model = await loadResNet18(modelPath);
  const dim = model.embeddingSize;
  // The parts, then face_vectors.npy joined from them: twice the vectors' size until the parts are removed.
  const vectorBytes = dataset.count * dim * 4;
  try {
    requireFreeSpace(runFiles(config.run).dir, 2 * vectorBytes, `${dataset.count} face vectors of ${dim} floats (face_vectors.npy and its parts)`, "move runs/ to a larger disk");
  } catch (error) {
    model.dispose();
    throw error;
  }
  let embedder: Embedder;
  try {
    embedder = await createEmbedder(model, config.finetune.preset, config.embed.engine, { onnxPath: runFiles(config.run).onnxModel, imageSize: config.imageSize, loadOnnxRuntime: options.loadOnnxRuntime });
  } catch (error) {
    model.dispose();
    throw error;
  }
  const onnxPath = embedder.engine === "onnxruntime" ? runFiles(config.run).onnxModel : null;
  // The run's images were checked (runs/<run>/usable_images.json): under onBadImage=skip the unreadable ones are not
  // in `dataset`, and leaving out one more here would shift every later row, so any image that fails now stops.
  const loader = createImageLoader(dataset.paths, {
    size: config.imageSize, mode: config.resize, batchSize: config.embed.batchSize, prefetch: config.prefetchBatches,
    cache: imageCachePath(config, dataset), onBadImage: "error", reuseBatchMemory: true,
  });
  let resumedRows = 0;
  for (let k = 0; k < partCount; k++) if (isDone(k)) resumedRows += rowsOf(k);
  const bar = new ProgressBar({ total: dataset.count, desc: "Generating output vectors...", unit: "img", mode: options.progress });
  bar.update(resumedRows);
  const started = performance.now();
  let embedded = 0;
  try {
    for (let k = 0; k < partCount; k++) {
      if (isDone(k)) continue;
      const first = k * storedPartRows;
      const order = Int32Array.from({ length: rowsOf(k) }, (_, i) => first + i);
      const vectors = new Float32Array(order.length * dim);
      const files: string[] = [];
      for await (const batch of loader.batches({ order })) {
        vectors.set(await embedder.embed(batch), files.length * dim);
        for (const i of batch.indices) files.push(dataset.files[i]);
        bar.update(batch.indices.length);
      }
      bar.update(order.length - files.length); // images left out (onBadImage=skip) still count as visited
      embedded += files.length;
      writeFileAtomicSync(join(parts, `${partName(k)}.txt`), files.map((f) => `${f}\n`).join(""));
      await writeNpy(join(parts, `${partName(k)}.npy`), vectors.subarray(0, files.length * dim), [files.length, dim]);
      options.onPart?.(k);
    }
  } catch (error) {
    if (error instanceof BadImageError && config.onBadImage === "skip") {
      throw new Error(
        `Could not decode image ${error.file}: ${error.reason}. It decoded when the run's images were checked and changed since without a new ` +
          `size or modification time: delete ${displayPath(runFiles(config.run).usableImages)} to check them again, then run notebook 02 and this one again.`,
      );
    }
    throw error;
  } finally {
    bar.close();
    await loader.close();
    await embedder.close();
    model.dispose();
  }
  const seconds = (performance.now() - started) / 1000;

  // join the parts
  let rows = 0;
  const allFiles: string[] = [];
  for (let k = 0; k < partCount; k++) {
    const text = readFileSync(join(parts, `${partName(k)}.txt`), "utf8");
    const list = text === "" ? [] : text.slice(0, -1).split("\n");
    allFiles.push(...list);
    rows += list.length;
  }
  const writer = await createNpyWriter(path, "float32", [rows, dim]);
  try {
    for (let k = 0; k < partCount; k++) await writer.writeRows((await readNpy(join(parts, `${partName(k)}.npy`))).data as Float32Array);
    await writer.close();
  } catch (error) {
    await writer.abort();
    throw error;
  }
  writeFileAtomicSync(filesPath, allFiles.map((f) => `${f}\n`).join(""));
  const skipped = dataset.unusable.map((u) => u.file);
  const sha256 = await artifactId(path);
  const made: EmbedRecord = { key, rows, dim, skipped, engine: embedder.description, onnx: onnxPath, sha256 };
  writeFileAtomicSync(record, JSON.stringify(made, null, 1) + "\n");
  removeWhole(parts);
  return {
    path, filesPath, rows, dim, resumedRows, seconds, imagesPerSecond: seconds > 0 ? embedded / seconds : 0, alreadyDone: false, skippedImages: skipped,
    engine: embedder.description, onnxPath, sha256, note: notes.join("\n"),
  };
}

/** The run's face vectors (all rows: fine for notebooks on samples; 202,599 × 512 floats is 415 MB). */
/** A face-vector file, checked: it exists, holds float32 [N, D], and no row has NaN or infinity. */
export async function readFaceVectorsFile(path: string): Promise<{ data: Float32Array; rows: number; cols: number }> {
  if (!existsSync(path)) throw new Error(`${path} does not exist: run notebook 03-embed first (it writes the face vectors)`);
  const array = await readNpy(path);
  if (array.dtype !== "float32" || array.shape.length !== 2) {
    throw new Error(`${path} holds ${array.dtype} of shape [${array.shape.join(", ")}]; face vectors are float32 [N, 512]: re-run notebook 03-embed`);
  }
  const vectors = { data: array.data as Float32Array, rows: array.shape[0], cols: array.shape[1] };
  checkFiniteRows(vectors.data, vectors.cols, path);
  return vectors;
}

/** The run's face vectors (checked, see readFaceVectorsFile) and the dataset file of each row. */
export async function readFaceVectors(run: string): Promise<{ vectors: Float32Array; rows: number; dim: number; files: string[] }> {
  const { data, rows, cols } = await readFaceVectorsFile(runFiles(run).faceVectors);
  const files = readFileSync(runFiles(run).faceVectorsFiles, "utf8").split("\n").filter((line) => line !== "");
  return { vectors: data, rows, dim: cols, files };
}

/** One paragraph about an embedding: shape, where, throughput. */
export function describeEmbedResult(result: EmbedResult): string {
  const lines = [`face_vectors: (${result.rows}, ${result.dim}) float32 in ${displayPath(result.path)}, files in ${displayPath(result.filesPath)}`];
  lines.push(`${result.alreadyDone ? "Embedded earlier by" : "Embedded by"} ${result.engine}.`);
  if (result.onnxPath !== null) lines.push(`The model as ONNX (NHWC images in [0, 1] in, embeddings out): ${displayPath(result.onnxPath)}`);
  if (result.alreadyDone) lines.push("Already computed with this model and these settings: nothing to do.");
  else {
    if (result.resumedRows > 0) lines.push(`Resumed: ${result.resumedRows} rows were kept from an interrupted run.`);
    lines.push(`${result.rows - result.resumedRows} images in ${result.seconds.toFixed(1)} s: ${result.imagesPerSecond.toFixed(1)} images/s.`);
  }
  if (result.skippedImages.length > 0) lines.push(`${result.skippedImages.length} unreadable images left out (onBadImage=skip), e.g. ${result.skippedImages[0]}.`);
  if (result.note !== "") lines.push(result.note);
  return lines.join("\n");
}
