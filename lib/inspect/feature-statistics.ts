// Streaming statistics of one activation matrix (N faces × F features), gathered batch by batch in the same pass
// as the top-k (lib/inspect/scan): per feature, a histogram of its activations over fixed bins, how often it fires,
// and per feature and label (a dataset attribute, or a drawn factor of the synthetic faces) the histogram of the
// faces that have the label and how often the feature fires on them.
//
// The ROC AUC comes from these histograms (the Mann–Whitney form: P(a positive face activates more than a negative
// one), ties counted half); within a bin values count as tied, so it is exact when each bin holds one distinct
// value (e.g. the exact zeros of a ReLU feature, which get a bin of their own) and otherwise off by at most the
// probability mass that positives and negatives share inside one bin. The best F1 of "activation ≥ t" is taken over
// the bin edges, so it is exact up to the same resolution. Precision and recall of "the feature fires" are counted
// exactly. test/feature-measures.test.ts compares all of them with numpy/scipy.

import type { AttributeTable } from "../data/celeba-metadata";
import { precisionRecallFromCounts, type PrecisionRecall } from "../util/classification";
import type { ActivationBatch } from "./top-activations";

/** A feature "fires" on an image when its activation is above this. */
export const FIRING_THRESHOLD = 0;
/** Histogram memory is kept near this many counters (features × (attributes + 1) × bins). */
const COUNTER_BUDGET = 2 ** 25;

/** The attribute a feature predicts best. */
export interface BestAttribute {
  readonly attribute: string;
  /** Its column in the label table. */
  readonly index: number;
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
  /** Faces the feature fires on. */
  fired(feature: number): number;
  /** Precision, recall and F1 of "the feature fires" for the attribute (its absence for direction "absent"). */
  firingPrecisionRecall(feature: number, attribute: number, direction: BestAttribute["direction"]): PrecisionRecall;
  /** The best F1 of "activation ≥ t" for the attribute (for its absence with "absent"), over the histogram's bin edges. */
  bestF1(feature: number, attribute: number, direction: BestAttribute["direction"]): number;
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
  private readonly firedCount: Float64Array;
  /** firedWith[f · A + a]: faces with attribute a that feature f fires on. */
  private readonly firedWith: Float64Array;
  private readonly positives: Float64Array;

  constructor(readonly features: number, private readonly attributes: AttributeTable | null, options: FeatureStatisticsOptions = {}) {
    this.attributeCount = attributes === null ? 0 : attributes.names.length;
    const perBin = features * (this.attributeCount + 1);
    this.bins = options.bins ?? Math.max(16, Math.min(256, Math.floor(COUNTER_BUDGET / perBin)));
    this.counts = new Uint32Array(perBin * this.bins);
    this.firedCount = new Float64Array(features);
    this.firedWith = new Float64Array(features * this.attributeCount);
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
        const fires = value > FIRING_THRESHOLD;
        if (fires) this.firedCount[f]++;
        const bin = this.binOf(value);
        const base = f * (A + 1);
        this.counts[(base + A) * bins + bin]++;
        for (let k = 0; k < p; k++) {
          this.counts[(base + positiveOf[k]) * bins + bin]++;
          if (fires) this.firedWith[f * A + positiveOf[k]]++;
        }
      }
    }
    this.rows += rows;
  }

  density(feature: number): number {
    return this.rows === 0 ? 0 : this.firedCount[feature] / this.rows;
  }

  fired(feature: number): number {
    return this.firedCount[feature];
  }

  firingPrecisionRecall(feature: number, attribute: number, direction: BestAttribute["direction"]): PrecisionRecall {
    const withIt = this.firedWith[feature * this.attributeCount + attribute];
    const fired = this.firedCount[feature];
    const positives = this.positives[attribute];
    return direction === "present"
      ? precisionRecallFromCounts(withIt, fired, positives)
      : precisionRecallFromCounts(fired - withIt, fired, this.rows - positives);
  }

  bestF1(feature: number, attribute: number, direction: BestAttribute["direction"]): number {
    const A = this.attributeCount;
    const bins = this.bins;
    const all = (feature * (A + 1) + A) * bins;
    const pos = (feature * (A + 1) + attribute) * bins;
    const labelled = direction === "present" ? this.positives[attribute] : this.rows - this.positives[attribute];
    if (labelled === 0) return Number.NaN;
    // "activation ≥ t" for each bin edge t, from the top bin down: the label is the attribute, or its absence.
    let best = 0;
    let tp = 0;
    let predicted = 0;
    for (let b = bins - 1; b >= 0; b--) {
      const p = this.counts[pos + b];
      const count = this.counts[all + b];
      tp += direction === "present" ? p : count - p;
      predicted += count;
      if (predicted > 0) best = Math.max(best, (2 * tp) / (predicted + labelled));
    }
    return best;
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
      const candidate: BestAttribute = auc >= 0.5 ? { attribute: name, index: a, auc, direction: "present" } : { attribute: name, index: a, auc: 1 - auc, direction: "absent" };
      if (best === null || candidate.auc > best.auc) best = candidate;
    });
    return best;
  }
}
