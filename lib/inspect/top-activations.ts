// The images that activate a feature most, found in one streaming pass over N rows without sorting N × F values.
//
// The post sorts a whole column per feature (`torch.argsort(feats_normed[:, i], descending=True)`), which needs all
// N × F activations in memory (202,599 × 16,384 floats is 13 GB). Here every feature keeps a min-heap of its k best
// rows: a new value is compared with the heap's smallest and replaces it only when larger, so a pass costs
// O(N·F) comparisons plus O(log k) per replacement, and memory is F·k. Ties keep the earlier row (listing order),
// which is what a stable descending sort does. A tracker can be told to keep only rows above a threshold (the
// faces that activate a feature): a feature that fires on 7 faces then has 7 top rows, not 16 with 9 it ignores.
//
// Activations come from `activationBatches`: the face vectors (dense dimensions) or the SAE's encoding of them
// (sparse features), read from face_vectors.npy a batch at a time, with rows L2-normalised as the post does
// (`torch.nn.functional.normalize`, eps 1e-12) or raw.

import { tf } from "../kernels/backend";
import { existsSync, readFileSync } from "node:fs";
import { openNpyReader } from "../formats/npy";
import { writeFileAtomicSync } from "../util/atomic-write";
import type { FeatureKind } from "./kinds";

/** One feature's best rows, best first. */
export interface FeatureTop {
  readonly feature: number;
  /** Row (image) indices in listing order's numbering, highest activation first. */
  readonly rows: readonly number[];
  readonly values: readonly number[];
}

/** A block of consecutive rows of activations: `data` is rows × width, row-major; its first row is `firstRow`. */
export interface ActivationBatch {
  readonly firstRow: number;
  readonly rows: number;
  readonly width: number;
  readonly data: Float32Array;
}

/** Is (value a, row ra) worse than (value b, row rb)? Smaller values are worse; among equals, the later row. */
function worse(a: number, ra: number, b: number, rb: number): boolean {
  return a < b || (a === b && ra > rb);
}

/** A fixed-capacity min-heap of (value, row) pairs, ordered by `worse`, stored in two flat arrays. */
class BoundedHeap {
  readonly values: Float64Array;
  readonly rows: Int32Array;
  size = 0;

  constructor(readonly capacity: number) {
    this.values = new Float64Array(capacity);
    this.rows = new Int32Array(capacity);
  }

  /** Offers a pair: kept when the heap is not full or when it beats the worst kept pair. */
  offer(value: number, row: number): void {
    if (this.size < this.capacity) {
      let i = this.size++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!worse(value, row, this.values[parent], this.rows[parent])) break;
        this.values[i] = this.values[parent];
        this.rows[i] = this.rows[parent];
        i = parent;
      }
      this.values[i] = value;
      this.rows[i] = row;
      return;
    }
    if (!worse(this.values[0], this.rows[0], value, row)) return;
    // Replace the root and sift down.
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= this.size) break;
      const right = left + 1;
      const child = right < this.size && worse(this.values[right], this.rows[right], this.values[left], this.rows[left]) ? right : left;
      if (!worse(this.values[child], this.rows[child], value, row)) break;
      this.values[i] = this.values[child];
      this.rows[i] = this.rows[child];
      i = child;
    }
    this.values[i] = value;
    this.rows[i] = row;
  }

  /** The kept pairs, best first. */
  sorted(): { rows: number[]; values: number[] } {
    const order = Array.from({ length: this.size }, (_, i) => i).sort((a, b) =>
      worse(this.values[a], this.rows[a], this.values[b], this.rows[b]) ? 1 : -1,
    );
    return { rows: order.map((i) => this.rows[i]), values: order.map((i) => this.values[i]) };
  }
}

/** Keeps the k highest-activating rows of each chosen feature while batches of rows stream past. */
export class TopKTracker {
  private readonly heaps: BoundedHeap[];
  private rowsSeen = 0;
  private readonly above: number;

  /**
   * `features`: column indices to track; `k`: rows kept per feature (the post: 16); `above`: only rows whose value
   * exceeds it are kept (default: every row, as the post's argsort).
   */
  constructor(readonly features: readonly number[], readonly k: number, options: { readonly above?: number } = {}) {
    this.above = options.above ?? -Infinity;
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`TopKTracker: k must be a positive integer, got ${k}`);
    const bad = features.find((f) => !Number.isInteger(f) || f < 0);
    if (bad !== undefined) throw new RangeError(`TopKTracker: feature ${bad} is not a column index`);
    this.heaps = features.map(() => new BoundedHeap(k));
  }

  /** Rows offered so far. */
  get rows(): number {
    return this.rowsSeen;
  }

  /** Offers a batch of rows (every column of the batch; only the tracked features are read). */
  add(batch: ActivationBatch): void {
    const { data, rows, width, firstRow } = batch;
    if (data.length < rows * width) throw new RangeError(`TopKTracker.add: ${rows} × ${width} values expected, got ${data.length}`);
    this.features.forEach((feature, f) => {
      if (feature >= width) {
        throw new RangeError(`feature ${feature} does not exist: the activations have ${width} columns (0–${width - 1}); pick features below ${width}`);
      }
      const heap = this.heaps[f];
      for (let r = 0; r < rows; r++) {
        const value = data[r * width + feature];
        if (value > this.above) heap.offer(value, firstRow + r);
      }
    });
    this.rowsSeen += rows;
  }

  /** Each tracked feature's best rows, best first (fewer than k when fewer rows were seen). */
  results(): FeatureTop[] {
    return this.features.map((feature, f) => ({ feature, ...this.heaps[f].sorted() }));
  }
}

/** Divides each row by its L2 norm (at least eps), in place: `torch.nn.functional.normalize(x, dim=1)`. */
export function normalizeRows(data: Float32Array, width: number, eps = 1e-12): Float32Array {
  for (let start = 0; start < data.length; start += width) {
    let ss = 0;
    for (let j = 0; j < width; j++) ss += data[start + j] * data[start + j];
    const scale = 1 / Math.max(Math.sqrt(ss), eps);
    for (let j = 0; j < width; j++) data[start + j] *= scale;
  }
  return data;
}

/** Anything that maps face vectors to sparse features: the SAE of lib/sae/sae.ts fits. */
export interface FeatureEncoder {
  encode(x: tf.Tensor2D): tf.Tensor2D;
}

/** Which activations to stream. */
export type ActivationSource =
  | { readonly kind: "dense"; readonly normalize: boolean }
  | { readonly kind: "sparse"; readonly encoder: FeatureEncoder; readonly normalize: boolean };

export interface ActivationBatchOptions {
  /** Rows per batch (default 512, the post's SAE batch). */
  readonly batchRows?: number;
  /** Only the first `limit` rows. */
  readonly limit?: number;
}

/**
 * The activations of every face, a batch at a time: rows of face_vectors.npy (dense) or their SAE encoding
 * (sparse), L2-normalised per row when asked. Tensors are disposed batch by batch.
 */
export async function* activationBatches(
  vectorsPath: string,
  source: ActivationSource,
  options: ActivationBatchOptions = {},
): AsyncGenerator<ActivationBatch> {
  const reader = await openNpyReader(vectorsPath, "float32");
  try {
    if (reader.header.shape.length !== 2) {
      throw new Error(`${vectorsPath} has shape [${reader.header.shape.join(", ")}]; face vectors are N × 512: run notebook 03-embed again`);
    }
    const total = Math.min(reader.rows, options.limit ?? reader.rows);
    const batchRows = options.batchRows ?? 512;
    for (let firstRow = 0; firstRow < total; firstRow += batchRows) {
      const rows = Math.min(batchRows, total - firstRow);
      const vectors = await reader.readRows(firstRow, rows);
      let data: Float32Array;
      let width = reader.rowSize;
      if (source.kind === "sparse") {
        const encoded = tf.tidy(() => source.encoder.encode(tf.tensor2d(vectors, [rows, reader.rowSize])));
        try {
          width = encoded.shape[1];
          data = (await encoded.data()) as Float32Array;
        } finally {
          encoded.dispose();
        }
      } else {
        data = vectors;
      }
      if (source.normalize === true) normalizeRows(data, width);
      yield { firstRow, rows, width, data };
    }
  } finally {
    await reader.close();
  }
}

/** The top rows of every feature of one kind, as notebook 05 stores them for notebook 06. */
export interface TopActivationsRecord {
  /** Rows per feature. */
  readonly k: number;
  /** Whether activations were L2-normalised per row before ranking (the post's way). */
  readonly normalized: boolean;
  readonly rows: number;
  readonly tops: readonly FeatureTop[];
}

/** runs/<run>/top_activations.json: the tops of every feature of each kind (the recommended SAE's when there is one). */
export type TopActivationsFile = { readonly dense: TopActivationsRecord; readonly sparse: TopActivationsRecord } & {
  readonly [K in FeatureKind]?: TopActivationsRecord;
};

/** Writes the file atomically (temp + rename). */
export function saveTopActivations(path: string, record: TopActivationsFile): void {
  writeFileAtomicSync(path, JSON.stringify(record) + "\n");
}

export function loadTopActivations(path: string): TopActivationsFile {
  if (!existsSync(path)) throw new Error(`${path} does not exist: run notebook 05-inspect first (it finds each feature's top images)`);
  return JSON.parse(readFileSync(path, "utf8")) as TopActivationsFile;
}

/** One kind's record of the file, with a clear error when notebook 05 did not write it. */
export function kindRecord(file: TopActivationsFile, kind: FeatureKind): TopActivationsRecord {
  const record = file[kind];
  if (record === undefined) throw new Error(`top_activations.json has no ${kind} features: run notebook 05-inspect again (after notebook 04 trained that SAE)`);
  return record;
}

/** A feature's entry of a record, with a clear error for a feature that does not exist. */
export function topOf(record: TopActivationsRecord, feature: number, kind: string): FeatureTop {
  const top = record.tops.find((t) => t.feature === feature);
  if (top === undefined) {
    throw new Error(`${kind} feature ${feature} does not exist (there are ${record.tops.length}: 0–${record.tops.length - 1}); pick features below ${record.tops.length}`);
  }
  return top;
}

/**
 * Checks that face_vectors.npy's rows are the dataset's images in order (face_vectors.files.txt lists them), so
 * row i's top images are the dataset's image i. Throws naming the first difference and the fix.
 */
export function checkVectorFiles(filesPath: string, datasetFiles: readonly string[], rows: number): void {
  if (!existsSync(filesPath)) throw new Error(`${filesPath} does not exist: run notebook 03-embed again (it lists the image of every row)`);
  const listed = readFileSync(filesPath, "utf8").split("\n").filter((line) => line !== "");
  if (listed.length !== rows) throw new Error(`${filesPath} lists ${listed.length} images but face_vectors.npy has ${rows} rows: run notebook 03-embed again`);
  if (rows > datasetFiles.length) throw new Error(`face_vectors.npy has ${rows} rows but the dataset has ${datasetFiles.length} images: run notebook 03-embed again with this dataset`);
  const bad = listed.findIndex((file, i) => file !== datasetFiles[i]);
  if (bad >= 0) {
    throw new Error(`row ${bad} of face_vectors.npy is ${listed[bad]} but the dataset's image ${bad} is ${datasetFiles[bad]}: the vectors belong to another dataset or limit; run notebook 03-embed again`);
  }
}
