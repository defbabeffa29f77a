// What one feature is about, beyond the post's grid: a card with its 4×4 grid of maximally activating images, a
// histogram of its activations, its density (how often it fires), and the dataset attribute it predicts best with
// that prediction's ROC AUC; and a summary over all features, dense dimensions vs SAE features.
//
// Everything is gathered in the same streaming pass as the top-k (see top-activations.ts): per feature, a histogram
// of its activations over fixed bins, and per feature and attribute, the histogram of the images that have the
// attribute. The ROC AUC is computed from these histograms (the Mann–Whitney form: P(a positive image activates more
// than a negative one), ties counted half); within a bin values count as tied, so it is exact when each bin holds
// one distinct value (e.g. the exact zeros of a ReLU feature, which get a bin of their own) and otherwise off by at
// most the probability mass that positives and negatives share inside one bin.

import { existsSync } from "node:fs";
import sharp from "sharp";
import { tf, tidyValues } from "../kernels/backend";
import type { AttributeTable } from "../data/celeba-metadata";
import { showFigure, type Figure } from "../display/figures";
import type { Row } from "../display/html-table";
import { makeGrid } from "../display/image-grid";
import { showPng } from "../display/notebook-display";
import type { RunConfig } from "../run/config";
import { loadImages } from "../data/datasets";
import type { ImageDataset } from "../data/image-dataset";
import { createEmbedder } from "../embed/embed";
import type { Embedder } from "../embed/onnx-embed";

import { readNpyHeader } from "../formats/npy";
import { displayPath } from "../util/project";
import { loadResNet18 } from "../model/resnet18";
import { ProgressBar } from "../display/progress";
import {
  activationBatches,
  normalizeRows,
  topOf,
  TopKTracker,
  type ActivationBatch,
  type ActivationSource,
  type FeatureEncoder,
  type FeatureTop,
  type TopActivationsRecord,
} from "./top-activations";
import { runFiles } from "../run/files";

/** A feature "fires" on an image when its activation is above this. */
export const FIRING_THRESHOLD = 0;
/** A feature firing on more than this fraction of images counts as dense (the usual cut of SAE density plots). */
export const DENSE_FRACTION = 0.1;
/** Histogram memory is kept near this many counters (features × (attributes + 1) × bins). */
const COUNTER_BUDGET = 2 ** 25;

/** The attribute a feature predicts best. */
export interface BestAttribute {
  readonly attribute: string;
  /** ROC AUC of the activation for the attribute, ≥ 0.5: the better of the attribute and its absence. */
  readonly auc: number;
  /** "present": high activation means the attribute is there; "absent": it means the attribute is not. */
  readonly direction: "present" | "absent";
}

/** Streaming statistics of one activation matrix (N rows × F features). */
export interface FeatureStatistics {
  readonly features: number;
  readonly rows: number;
  /** Activation range covered by the histograms: bin 0 holds values ≤ low, bins 1… split (low, high]. */
  readonly low: number;
  readonly high: number;
  readonly bins: number;
  /** Fraction of images on which each feature fires (> 0). */
  density(feature: number): number;
  /** Histogram of a feature's activations: bin edges (bins + 1 numbers, the first bin from low to low) and counts. */
  histogram(feature: number): { edges: number[]; counts: number[] };
  /** The best-predicted attribute, or null without attribute labels. */
  bestAttribute(feature: number): BestAttribute | null;
  /** ROC AUC of feature for attribute j (attribute order of the table). */
  auc(feature: number, attribute: number): number;
}

export interface FeatureStatisticsOptions {
  /** Range of the activations (normalised rows: [−1, 1] dense, [0, 1] sparse). Default: from the first batch. */
  readonly range?: readonly [number, number];
  /** Histogram bins (default: 256, fewer when features × attributes is large). */
  readonly bins?: number;
}

/** Accumulates feature statistics batch by batch; `attributes` rows must be aligned with the activation rows. */
export class FeatureStatisticsAccumulator implements FeatureStatistics {
  readonly bins: number;
  low = 0;
  high = 1;
  rows = 0;
  private ranged = false;
  private readonly attributeCount: number;
  /** counts[(f · (A + 1) + a) · bins + b]: a = A is all images, a < A the images with attribute a. */
  private readonly counts: Uint32Array;
  private readonly fired: Float64Array;
  private readonly positives: Float64Array;

  constructor(readonly features: number, private readonly attributes: AttributeTable | null, options: FeatureStatisticsOptions = {}) {
    this.attributeCount = attributes === null ? 0 : attributes.names.length;
    const perBin = features * (this.attributeCount + 1);
    this.bins = options.bins ?? Math.max(16, Math.min(256, Math.floor(COUNTER_BUDGET / perBin)));
    this.counts = new Uint32Array(perBin * this.bins);
    this.fired = new Float64Array(features);
    this.positives = new Float64Array(this.attributeCount);
    if (options.range !== undefined) this.setRange(options.range[0], options.range[1]);
  }

  private setRange(low: number, high: number): void {
    if (!(high > low)) throw new RangeError(`feature statistics: the range must have high > low, got [${low}, ${high}]`);
    this.low = low;
    this.high = high;
    this.ranged = true;
  }

  private binOf(value: number): number {
    if (value <= this.low) return 0;
    const b = 1 + Math.floor(((value - this.low) / (this.high - this.low)) * (this.bins - 1));
    return Math.min(this.bins - 1, b);
  }

  add(batch: ActivationBatch): void {
    const { data, rows, width, firstRow } = batch;
    if (width !== this.features) throw new RangeError(`feature statistics: batch has ${width} features, ${this.features} expected`);
    if (!this.ranged) {
      let min = 0;
      let max = 0;
      for (let i = 0; i < rows * width; i++) {
        if (data[i] < min) min = data[i];
        if (data[i] > max) max = data[i];
      }
      // Room above the first batch's largest value; larger ones later land in the last bin.
      this.setRange(min, max > min ? min + (max - min) * 1.5 : min + 1);
    }
    const table = this.attributes;
    const A = this.attributeCount;
    const bins = this.bins;
    const positiveOf = new Int32Array(A);
    for (let r = 0; r < rows; r++) {
      const image = firstRow + r;
      let p = 0;
      if (table !== null) {
        if (image >= table.files.length) {
          throw new RangeError(`feature statistics: row ${image} has no attribute labels (the table has ${table.files.length} rows); face_vectors.npy and the dataset disagree — run notebook 03 again`);
        }
        for (let a = 0; a < A; a++) if (table.values[image * A + a] > 0) { positiveOf[p++] = a; this.positives[a]++; }
      }
      for (let f = 0; f < width; f++) {
        const value = data[r * width + f];
        if (value > FIRING_THRESHOLD) this.fired[f]++;
        const bin = this.binOf(value);
        const base = f * (A + 1);
        this.counts[(base + A) * bins + bin]++;
        for (let k = 0; k < p; k++) this.counts[(base + positiveOf[k]) * bins + bin]++;
      }
    }
    this.rows += rows;
  }

  density(feature: number): number {
    return this.rows === 0 ? 0 : this.fired[feature] / this.rows;
  }

  histogram(feature: number): { edges: number[]; counts: number[] } {
    const A = this.attributeCount;
    const start = (feature * (A + 1) + A) * this.bins;
    const step = (this.high - this.low) / (this.bins - 1);
    const edges = [this.low, ...Array.from({ length: this.bins }, (_, b) => this.low + b * step)];
    return { edges, counts: Array.from(this.counts.subarray(start, start + this.bins)) };
  }

  auc(feature: number, attribute: number): number {
    const A = this.attributeCount;
    const bins = this.bins;
    const all = (feature * (A + 1) + A) * bins;
    const pos = (feature * (A + 1) + attribute) * bins;
    const nPos = this.positives[attribute];
    const nNeg = this.rows - nPos;
    if (nPos === 0 || nNeg === 0) return Number.NaN;
    let negativesBelow = 0;
    let wins = 0;
    for (let b = 0; b < bins; b++) {
      const p = this.counts[pos + b];
      const n = this.counts[all + b] - p;
      wins += p * (negativesBelow + 0.5 * n);
      negativesBelow += n;
    }
    return wins / (nPos * nNeg);
  }

  bestAttribute(feature: number): BestAttribute | null {
    if (this.attributes === null) return null;
    let best: BestAttribute | null = null;
    this.attributes.names.forEach((name, a) => {
      const auc = this.auc(feature, a);
      if (Number.isNaN(auc)) return;
      const candidate: BestAttribute = auc >= 0.5 ? { attribute: name, auc, direction: "present" } : { attribute: name, auc: 1 - auc, direction: "absent" };
      if (best === null || candidate.auc > best.auc) best = candidate;
    });
    return best;
  }
}

/** What a card shows about one feature. */
export interface FeatureCard {
  readonly label: string;
  /** Correlation of the activation on faces and on the same faces turned 180° (NaN when not measured). */
  readonly rotation: number;
  readonly top: FeatureTop;
  readonly density: number;
  readonly best: BestAttribute | null;
  readonly histogram: { edges: number[]; counts: number[] };
}

export function featureCard(label: string, top: FeatureTop, stats: FeatureStatistics, rotation = Number.NaN): FeatureCard {
  return {
    label,
    rotation,
    top,
    density: stats.density(top.feature),
    best: stats.bestAttribute(top.feature),
    histogram: stats.histogram(top.feature),
  };
}

/** "Smiling (AUC 0.93)", "not Male (AUC 0.71)", or "no attribute labels". */
export function describeBest(best: BestAttribute | null): string {
  if (best === null) return "no attribute labels";
  return `${best.direction === "absent" ? "not " : ""}${best.attribute} (AUC ${best.auc.toFixed(2)})`;
}

/** PNGs side by side on white, top-aligned, with `gap` pixels between them. */
export async function sideBySide(pngs: readonly Buffer[], gap = 12): Promise<Buffer> {
  const sizes = await Promise.all(pngs.map((png) => sharp(png).metadata()));
  const width = sizes.reduce((s, m) => s + (m.width ?? 0), 0) + gap * Math.max(0, pngs.length - 1);
  const height = Math.max(...sizes.map((m) => m.height ?? 0));
  let left = 0;
  const layers = pngs.map((input, i) => {
    const layer = { input, top: 0, left };
    left += (sizes[i].width ?? 0) + gap;
    return layer;
  });
  return sharp({ create: { width, height, channels: 3, background: "#ffffff" } }).composite(layers).removeAlpha().png().toBuffer();
}

/** One row of the dense-vs-sparse summary. */
export function summaryRow(stats: FeatureStatistics, rotation?: Float64Array): Row {
  const aucs: number[] = [];
  let dead = 0;
  let dense = 0;
  for (let f = 0; f < stats.features; f++) {
    const density = stats.density(f);
    if (density === 0) dead++;
    if (density > DENSE_FRACTION) dense++;
    const best = stats.bestAttribute(f);
    if (best !== null && density > 0) aucs.push(best.auc);
  }
  aucs.sort((a, b) => a - b);
  const q = (p: number): number => (aucs.length ? aucs[Math.min(aucs.length - 1, Math.round(p * (aucs.length - 1)))] : Number.NaN);
  return {
    features: stats.features,
    dead: dead,
    [`dense (> ${DENSE_FRACTION * 100} %)`]: dense,
    "AUROC 25 %": q(0.25),
    "AUROC median": q(0.5),
    "AUROC 75 %": q(0.75),
    "AUROC max": q(1),
    "AUROC > 0.9": aucs.length ? aucs.filter((a) => a > 0.9).length / stats.features : Number.NaN,
    ...(rotation === undefined ? {} : { "rotated r median": median(Array.from(rotation).filter((r) => !Number.isNaN(r))) }),
  };
}

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * The summary over all features, one row per kind: how many features, how many never fire (dead) or fire on more
 * than DENSE_FRACTION of the images, the quartiles of the best-attribute AUROC over the features that fire, and the
 * fraction of all features whose best AUROC exceeds 0.9; with rotation correlations, their median.
 */
export function summaryTable(
  kinds: Readonly<Record<string, FeatureStatistics>>,
  rotations: Readonly<Record<string, Float64Array>> = {},
): Record<string, Row> {
  return Object.fromEntries(Object.entries(kinds).map(([name, stats]) => [name, summaryRow(stats, rotations[name])]));
}

/** One kind's pass over all faces: every feature's top rows and its statistics. */
export interface ActivationScan {
  readonly tops: FeatureTop[];
  readonly stats: FeatureStatisticsAccumulator;
}

/**
 * Streams activation batches once, keeping every feature's top k rows and its statistics (density, histogram,
 * attribute AUCs). `onBatch` sees each batch (for a progress bar).
 */
export async function scanActivations(
  batches: AsyncIterable<ActivationBatch> | Iterable<ActivationBatch>,
  options: { k: number; attributes: AttributeTable | null; range?: readonly [number, number]; onBatch?: (rows: number) => void },
): Promise<ActivationScan> {
  let tracker: TopKTracker | undefined;
  let stats: FeatureStatisticsAccumulator | undefined;
  for await (const batch of batches) {
    tracker ??= new TopKTracker(Array.from({ length: batch.width }, (_, f) => f), options.k);
    stats ??= new FeatureStatisticsAccumulator(batch.width, options.attributes, { range: options.range });
    tracker.add(batch);
    stats.add(batch);
    options.onBatch?.(batch.rows);
  }
  if (tracker === undefined || stats === undefined) throw new Error("no activations to scan: face_vectors.npy has no rows");
  return { tops: tracker.results(), stats };
}

/** Scans face_vectors.npy for one kind of activation with a progress bar (see scanActivations). */
export async function scanFaceVectors(
  vectorsPath: string,
  source: ActivationSource,
  options: { k: number; attributes: AttributeTable | null; desc: string; batchRows?: number },
): Promise<ActivationScan> {
  const header = await readNpyHeader(vectorsPath);
  const bar = new ProgressBar({ total: header.shape[0], desc: options.desc, unit: "faces" });
  // Normalised rows lie in [−1, 1], and rectified SAE features in [0, 1]; raw ones take their range from the first batch.
  const range: readonly [number, number] | undefined = source.normalize === true ? (source.kind === "dense" ? [-1, 1] : [0, 1]) : undefined;
  try {
    return await scanActivations(activationBatches(vectorsPath, source, { batchRows: options.batchRows }), {
      k: options.k,
      attributes: options.attributes,
      range,
      onBatch: (rows) => bar.update(rows),
    });
  } finally {
    bar.close();
  }
}

/** What notebook 06 needs of a scan: every feature's top rows. */
export function topRecord(scan: ActivationScan, normalized: boolean): TopActivationsRecord {
  return { k: scan.tops[0]?.rows.length ?? 0, normalized, rows: scan.stats.rows, tops: scan.tops };
}

/** The top images of a feature (dataset rows, best first) as a 4-wide grid PNG, optionally titled. */
export async function topImagesGrid(dataset: ImageDataset, config: RunConfig, rows: readonly number[], title?: string): Promise<Buffer> {
  const images = await loadImages(dataset, rows, config);
  // Small images (the synthetic demo's) are enlarged so a grid is legible.
  const scale = config.imageSize < 96 ? 2 : 1;
  return makeGrid(images, { nrow: 4, title, scale });
}

/** The card of feature `feature`, dense dimension and SAE feature side by side: grids, then both histograms. */
export async function showFeaturePair(
  dataset: ImageDataset,
  config: RunConfig,
  dense: ActivationScan,
  sparse: ActivationScan,
  feature: number,
  rotation: RotationConsistency | null = null,
): Promise<void> {
  const cards = [
    featureCard(`dense dimension ${feature}`, topOf(topRecord(dense, true), feature, "dense"), dense.stats, rotation?.dense[feature]),
    featureCard(`SAE feature ${feature}`, topOf(topRecord(sparse, true), feature, "sparse"), sparse.stats, rotation?.sparse[feature]),
  ];
  const title = (card: FeatureCard): string =>
    `${card.label} · fires on ${(card.density * 100).toFixed(1)} % · ${describeBest(card.best)}` +
    (Number.isNaN(card.rotation) ? "" : ` · rotated r ${card.rotation.toFixed(2)}`);
  const grids = await Promise.all(cards.map((card) => topImagesGrid(dataset, config, card.top.rows, title(card))));
  showPng(await sideBySide(grids), cards.map((c) => `${c.label}: ${describeBest(c.best)}`).join(" | "));
  await showFigure(pairHistogram(cards));
}

/** A card's histogram as bars: bins 1… (bin 0 holds the values at the range's floor: exact zeros of an SAE feature). */
function histogramBars(card: FeatureCard): { x: number[]; y: number[]; width: number } {
  const { edges, counts } = card.histogram;
  const x: number[] = [];
  const y: number[] = [];
  for (let b = 1; b < counts.length; b++) {
    if (counts[b] === 0) continue;
    x.push((edges[b] + edges[b + 1]) / 2);
    y.push(counts[b]);
  }
  return { x, y, width: edges[2] - edges[1] };
}

/** Both cards' activation histograms in one figure (log counts; exact zeros left out, the density says how many). */
export function pairHistogram(cards: readonly FeatureCard[]): Figure {
  const bars = cards.map(histogramBars);
  const xs = bars.flatMap((b) => b.x);
  const pad = Math.max(...bars.map((b) => b.width));
  const range: [number, number] | undefined = xs.length ? [Math.min(...xs) - pad, Math.max(...xs) + pad] : undefined;
  return {
    data: cards.map((card, i) => ({ type: "bar" as const, x: bars[i].x, y: bars[i].y, name: `${card.label} (fires on ${(card.density * 100).toFixed(1)} %)`, width: bars[i].width, opacity: 0.6 })),
    layout: {
      title: `Non-zero activations of ${cards.map((c) => c.label).join(" and ")}`,
      barmode: "overlay",
      xaxis: { title: "activation (rows L2-normalised)", ...(range ? { range } : {}) },
      yaxis: { title: "images", type: "log" },
      width: 700,
      height: 280,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Rotation consistency

/** Per feature, the correlation across faces of its activation on the face and on the face turned 180°. */
export interface RotationConsistency {
  readonly images: number;
  readonly dense: Float64Array;
  readonly sparse: Float64Array;
}

/** Pearson correlation of each column of a with the same column of b (rows × width, row-major); NaN if constant. */
export function columnCorrelations(a: Float32Array, b: Float32Array, rows: number, width: number): Float64Array {
  const out = new Float64Array(width);
  for (let j = 0; j < width; j++) {
    let ma = 0;
    let mb = 0;
    for (let i = 0; i < rows; i++) {
      ma += a[i * width + j];
      mb += b[i * width + j];
    }
    ma /= rows;
    mb /= rows;
    let sab = 0;
    let saa = 0;
    let sbb = 0;
    for (let i = 0; i < rows; i++) {
      const da = a[i * width + j] - ma;
      const db = b[i * width + j] - mb;
      sab += da * db;
      saa += da * da;
      sbb += db * db;
    }
    out[j] = saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : Number.NaN;
  }
  return out;
}

/** NHWC images turned 180° (height and width reversed: torch.rot90(x, 2) as the fine-tuning does). */
export function rotate180Nhwc(data: Float32Array, shape: readonly [number, number, number, number]): Float32Array {
  const [n, h, w, c] = shape;
  const out = new Float32Array(data.length);
  for (let k = 0; k < n; k++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const from = ((k * h + y) * w + x) * c;
        const to = ((k * h + (h - 1 - y)) * w + (w - 1 - x)) * c;
        for (let ch = 0; ch < c; ch++) out[to + ch] = data[from + ch];
      }
    }
  }
  return out;
}

/**
 * How each feature behaves when the face is turned 180°, the transformation the fine-tuning's orientation loss
 * uses: the fine-tuned model embeds a sample of faces (config.inspect.rotationSample, evenly spread) and their rotated copies, both are normalised per row (and
 * encoded by the SAE for the sparse features) as for the grids, and each feature's activations on originals and
 * rotated copies are correlated across the sample. Near 1: the feature ignores orientation; near 0 or below: it
 * responds to it.
 */
export async function rotationConsistency(
  config: RunConfig,
  dataset: ImageDataset,
  encoder: FeatureEncoder,
  options: { sample?: number; batchSize?: number } = {},
): Promise<RotationConsistency> {
  const path = runFiles(config.run).model;
  if (!existsSync(path)) throw new Error(`${displayPath(path)} does not exist: run notebook 02-finetune first`);
  const model = await loadResNet18(path);
  const count = Math.min(options.sample ?? config.inspect.rotationSample, dataset.count);
  const indices = Array.from({ length: count }, (_, i) => Math.floor((i * dataset.count) / count));
  const batchSize = options.batchSize ?? config.embed.batchSize;
  const d = model.embeddingSize;
  const original = new Float32Array(count * d);
  const rotated = new Float32Array(count * d);
  // The engine notebook 03 embedded with (config embed.engine): ONNX Runtime where it is installed, else TF.js.
  let embedder: Embedder;
  try {
    embedder = await createEmbedder(model, config.finetune.preset, config.embed.engine, { imageSize: config.imageSize });
  } catch (error) {
    model.dispose();
    throw error;
  }
  const bar = new ProgressBar({ total: count, desc: "Rotation consistency", unit: "faces" });
  try {
    for (let start = 0; start < count; start += batchSize) {
      const batch = await loadImages(dataset, indices.slice(start, start + batchSize), config);
      original.set(await embedder.embed(batch), start * d);
      const turned = { ...batch, data: rotate180Nhwc(batch.data, batch.shape) };
      rotated.set(await embedder.embed(turned), start * d);
      bar.update(batch.indices.length);
    }
  } finally {
    bar.close();
    await embedder.close();
    model.dispose();
  }
  const encode = (x: Float32Array): { data: Float32Array; width: number } => {
    const data = tidyValues(() => encoder.encode(tf.tensor2d(x, [count, d])));
    return { data, width: count > 0 ? data.length / count : 0 };
  };
  const sparseOriginal = encode(original);
  const sparseRotated = encode(rotated);
  normalizeRows(sparseOriginal.data, sparseOriginal.width);
  normalizeRows(sparseRotated.data, sparseRotated.width);
  normalizeRows(original, d);
  normalizeRows(rotated, d);
  return {
    images: count,
    dense: columnCorrelations(original, rotated, count, d),
    sparse: columnCorrelations(sparseOriginal.data, sparseRotated.data, count, sparseOriginal.width),
  };
}
