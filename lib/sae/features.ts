// Features of every face (the post's "Generate features for each image"): the trained SAE encodes all face
// vectors in streaming batches of the file, in listing order (no shuffle), as the post's extraction loop does.
//
// The post keeps the whole N × dictionarySize activation matrix (feats). That is 415 MB at the post's sizes and
// 13 GB for 202,599 faces × 16,384 features, so here every batch is reduced on the fly to what later steps need:
//   per feature  how often it fires (density), its mean and largest activation, and its top activations twice —
//                by raw activation, and by the post's ranking (rows L2-normalised first, F.normalize(feats)) —
//                with the rows (face indices) they come from;
//   per face     how many features are active (L0).
// The dense matrix is ALSO written as sae_features.npy (float32, listing order, like the post's
// face_vectors_sparse.pt) when it fits under `denseLimitBytes`; the returned stats say whether it was and why.

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { tf } from "../kernels/backend";
import { checkFiniteRows, createNpyWriter, openNpyReader, type NpyWriter } from "../formats/npy";
import { ProgressBar, type ProgressMode } from "../display/progress";
import type { SparseAutoencoder } from "./sae";
import type { Vectors } from "./metrics";
import { yieldSometimes } from "../util/yield";
import { RUN_FILE_NAMES } from "../run/files";
import { writeFileAtomic } from "../util/atomic-write";


/** The best activations of one feature, best first (at most topK; fewer when it fired on fewer rows). */
export interface FeatureTop {
  /** Row numbers in face_vectors.npy (= dataset listing order). */
  readonly rows: number[];
  readonly values: number[];
}

export interface FeatureStats {
  readonly format: "celeba-sae/feature-stats@1";
  readonly rows: number;
  readonly dictionarySize: number;
  readonly topK: number;
  /** Fraction of rows on which each feature is > 0. */
  readonly density: number[];
  readonly mean: number[];
  readonly max: number[];
  /** Top rows by raw activation. */
  readonly top: FeatureTop[];
  /** Top rows as the post ranks them: activations of each row divided by the row's L2 norm first. */
  readonly topNormalised: FeatureTop[];
  /** Mean active features per row, and rows with none active. */
  readonly l0: number;
  readonly rowsWithNoFeature: number;
  /** Whether sae_features.npy (N × dictionarySize float32) was written, and why. */
  readonly denseFile: { readonly written: boolean; readonly reason: string };
}

export interface ExtractOptions {
  /** Rows per batch (the post: 512). */
  readonly batchSize?: number;
  /** Top activations kept per feature (default 16, the post's 4×4 grids). */
  readonly topK?: number;
  /** Write sae_features.npy into this folder when N × dictionarySize × 4 bytes ≤ denseLimitBytes. */
  readonly denseDir?: string;
  /** Default 512 MiB. */
  readonly denseLimitBytes?: number;
  readonly progress?: ProgressMode;
}

/** Running top-K of one list of (row, value): a small unsorted buffer with its minimum tracked. */
class TopK {
  readonly rows: Int32Array;
  readonly values: Float32Array;
  size = 0;
  min = 0;
  private minAt = 0;

  constructor(private readonly k: number) {
    this.rows = new Int32Array(k);
    this.values = new Float32Array(k);
  }

  /** Adds a value > 0 (callers check `value > this.threshold()` first). */
  push(row: number, value: number): void {
    if (this.size < this.k) {
      this.rows[this.size] = row;
      this.values[this.size] = value;
      this.size++;
      if (this.size === this.k) this.findMin();
      return;
    }
    this.rows[this.minAt] = row;
    this.values[this.minAt] = value;
    this.findMin();
  }

  threshold(): number {
    return this.size < this.k ? 0 : this.min;
  }

  private findMin(): void {
    let at = 0;
    for (let i = 1; i < this.size; i++) if (this.values[i] < this.values[at]) at = i;
    this.minAt = at;
    this.min = this.values[at];
  }

  sorted(): FeatureTop {
    const order = Array.from({ length: this.size }, (_, i) => i).sort((a, b) => this.values[b] - this.values[a] || this.rows[a] - this.rows[b]);
    return { rows: order.map((i) => this.rows[i]), values: order.map((i) => this.values[i]) };
  }
}

/** A source of rows: in memory, or a .npy file read batch by batch. */
type RowSource = Vectors | string;

/** Encodes every row in order, batch by batch, keeping densities, means, maxima and top activations per feature. */
export async function extractFeatures(sae: SparseAutoencoder, source: RowSource, options: ExtractOptions = {}): Promise<FeatureStats> {
  const batchSize = options.batchSize ?? 512;
  const topK = options.topK ?? 16;
  const m = sae.meta.dictionarySize;
  const d = sae.meta.inputDim;
  const reader = typeof source === "string" ? await openNpyReader(source, "float32") : null;
  const rows = reader === null ? (source as Vectors).rows : reader.rows;
  const cols = reader === null ? (source as Vectors).cols : reader.rowSize;
  const label = typeof source === "string" ? source : "vectors";
  let writer: NpyWriter<"float32"> | null = null;
  try {
    if (cols !== d) throw new Error(`${label} has ${cols} values per row but the SAE takes ${d}: use the face vectors this SAE was trained on`);
    const limit = options.denseLimitBytes ?? 512 * 1024 * 1024;
    const bytes = rows * m * 4;
    let denseReason = options.denseDir === undefined ? "not requested" : `${(bytes / 2 ** 20).toFixed(0)} MiB would exceed the ${(limit / 2 ** 20).toFixed(0)} MiB limit`;
    if (options.denseDir !== undefined && bytes <= limit) {
      writer = await createNpyWriter(join(options.denseDir, RUN_FILE_NAMES.saeFeatures), "float32", [rows, m]);
      denseReason = `${(bytes / 2 ** 20).toFixed(1)} MiB, under the ${(limit / 2 ** 20).toFixed(0)} MiB limit`;
    }
    const count = new Float64Array(m);
    const sum = new Float64Array(m);
    const max = new Float64Array(m);
    const top = Array.from({ length: m }, () => new TopK(topK));
    const topNormalised = Array.from({ length: m }, () => new TopK(topK));
    let active = 0;
    let empty = 0;
    const bar = new ProgressBar({ total: rows, desc: "Extracting sparse features", mode: options.progress ?? "auto" });
    try {
      for (let start = 0; start < rows; start += batchSize) {
        const n = Math.min(batchSize, rows - start);
        const x =
          reader === null ? (source as Vectors).data.subarray(start * cols, (start + n) * cols) : await reader.readRows(start, n);
        checkFiniteRows(x, cols, label, start);
        const acts = tf.tidy(() => sae.encode(tf.tensor2d(x, [n, cols])));
        const a = (await acts.data()) as Float32Array;
        acts.dispose();
        for (let r = 0; r < n; r++) {
          const off = r * m;
          let norm = 0;
          let rowActive = 0;
          for (let j = 0; j < m; j++) {
            const v = a[off + j];
            if (v > 0) {
              norm += v * v;
              rowActive++;
            }
          }
          active += rowActive;
          if (rowActive === 0) {
            empty++;
            continue;
          }
          const inv = 1 / Math.max(Math.sqrt(norm), 1e-12);
          const row = start + r;
          for (let j = 0; j < m; j++) {
            const v = a[off + j];
            if (!(v > 0)) continue;
            count[j]++;
            sum[j] += v;
            if (v > max[j]) max[j] = v;
            if (v > top[j].threshold()) top[j].push(row, v);
            const vn = v * inv;
            if (vn > topNormalised[j].threshold()) topNormalised[j].push(row, vn);
          }
        }
        if (writer !== null) await writer.writeRows(a);
        bar.update(n);
        await yieldSometimes();
      }
    } finally {
      bar.close();
    }
    if (writer !== null) await writer.close();
    writer = null;
    return {
      format: "celeba-sae/feature-stats@1",
      rows,
      dictionarySize: m,
      topK,
      density: Array.from(count, (c) => c / rows),
      mean: Array.from(sum, (s) => s / rows),
      max: Array.from(max),
      top: top.map((t) => t.sorted()),
      topNormalised: topNormalised.map((t) => t.sorted()),
      l0: active / rows,
      rowsWithNoFeature: empty,
      denseFile: { written: options.denseDir !== undefined && bytes <= limit, reason: denseReason },
    };
  } finally {
    if (writer !== null) await writer.abort();
    if (reader !== null) await reader.close();
  }
}

/** Writes dir/sae_feature_stats.json atomically. */
export async function saveFeatureStats(stats: FeatureStats, dir: string): Promise<string> {
  const path = join(dir, RUN_FILE_NAMES.saeFeatureStats);
  await writeFileAtomic(path, JSON.stringify(stats));
  return path;
}

/** Reads dir/sae_feature_stats.json (written by notebook 04-sae). */
export async function loadFeatureStats(dir: string): Promise<FeatureStats> {
  const path = join(dir, RUN_FILE_NAMES.saeFeatureStats);
  if (!existsSync(path)) throw new Error(`${path} does not exist: run notebook 04-sae first (it writes the per-feature statistics)`);
  let stats: FeatureStats;
  try {
    stats = JSON.parse(await readFile(path, "utf8")) as FeatureStats;
  } catch (e) {
    throw new Error(`${path} is not valid JSON (${(e as Error).message}): re-run notebook 04-sae`);
  }
  if (stats.format !== "celeba-sae/feature-stats@1") throw new Error(`${path} is not a feature-statistics file of this project: re-run notebook 04-sae`);
  return stats;
}
