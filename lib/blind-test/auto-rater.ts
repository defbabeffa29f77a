// The automatic rater: scores a grid of images 1–7 from the dataset's attribute labels, so the blind test runs
// unattended (CI, the demo) and a person's ratings can be compared with a fixed, documented yardstick.
//
// A grid looks consistent when its images share attributes more than images picked at random would. For each
// attribute a, let p be the fraction of the grid's images that have it and q the fraction in the whole dataset.
// The surprise of the grid's share is the Kullback–Leibler divergence KL(p ‖ q) in bits: 0 when the grid looks
// like the dataset, 1 bit when all images share an attribute half the dataset has (or all lack it), more for
// rarer attributes. The score is the mean of the TOP_ATTRIBUTES largest divergences (the grid's most-shared
// attributes), and the rating maps it linearly onto 1–7, reaching 7 at FULL_SCALE_BITS:
//     rating = 1 + round(6 · min(1, score / FULL_SCALE_BITS)).
// A random grid of 16 scores about 0.1–0.3 bits (sampling noise), a rating of 1–2; a grid of 16 images sharing
// three even attributes scores 1 bit or more: 7. The rater sees only the row indices of the grid, never whether
// the grid came from a dense or a sparse feature. A grid of fewer faces (a feature that fires on few) is scored the
// same way on the faces it has; an empty one gets 1.

import type { AttributeTable } from "../data/celeba-metadata";
import { Rng } from "../util/random";

/** How many of the most-shared attributes make the score. */
export const TOP_ATTRIBUTES = 3;
/** The score (bits) that earns the top rating. */
export const FULL_SCALE_BITS = 1;

/** KL(p ‖ q) in bits between two Bernoulli distributions (q clamped away from 0 and 1). */
export function bernoulliKlBits(p: number, q: number): number {
  const qc = Math.min(1 - 1e-9, Math.max(1e-9, q));
  const term = (a: number, b: number): number => (a > 0 ? a * Math.log2(a / b) : 0);
  return term(p, qc) + term(1 - p, 1 - qc);
}

/** How one grid scored: its rating and the attributes that decided it. */
export interface AutoRating {
  readonly rating: number;
  readonly scoreBits: number;
  /** The most-shared attributes: the grid's fraction with each and the dataset's. */
  readonly attributes: readonly { readonly name: string; readonly grid: number; readonly dataset: number; readonly bits: number }[];
}

/** The dataset's fraction of images with each attribute. */
export function attributeBaseRates(table: AttributeTable): Float64Array {
  const A = table.names.length;
  const rates = new Float64Array(A);
  for (let i = 0; i < table.files.length; i++) for (let a = 0; a < A; a++) if (table.values[i * A + a] > 0) rates[a]++;
  for (let a = 0; a < A; a++) rates[a] /= Math.max(1, table.files.length);
  return rates;
}

/**
 * Rates the grid showing dataset rows `rows` (see the header for the rule). An empty grid (a feature that fires on
 * no face) shows nothing consistent: it gets the lowest rating.
 */
export function autoRate(rows: readonly number[], table: AttributeTable, baseRates: Float64Array = attributeBaseRates(table)): AutoRating {
  if (rows.length === 0) return { rating: 1, scoreBits: 0, attributes: [] };
  const A = table.names.length;
  if (A === 0) throw new Error("autoRate: the dataset has no attribute labels; use blindTest.rater=human");
  const scored = table.names.map((name, a) => {
    let have = 0;
    for (const r of rows) {
      if (r < 0 || r >= table.files.length) throw new RangeError(`autoRate: row ${r} is outside the attribute table (${table.files.length} rows)`);
      if (table.values[r * A + a] > 0) have++;
    }
    const grid = have / rows.length;
    return { name, grid, dataset: baseRates[a], bits: bernoulliKlBits(grid, baseRates[a]) };
  });
  scored.sort((x, y) => y.bits - x.bits);
  const top = scored.slice(0, Math.min(TOP_ATTRIBUTES, scored.length));
  const scoreBits = top.reduce((s, t) => s + t.bits, 0) / top.length;
  return { rating: 1 + Math.round(6 * Math.min(1, scoreBits / FULL_SCALE_BITS)), scoreBits, attributes: top };
}

/**
 * The chance row of the blind test: the automatic rater's ratings of `grids` grids of `k` random faces (distinct
 * within a grid, seeded). A grid of features that mean something should be rated above these.
 */
export function rateRandomGrids(table: AttributeTable, grids: number, k: number, seed: number, baseRates: Float64Array = attributeBaseRates(table)): number[] {
  const faces = table.files.length;
  if (faces === 0) throw new Error("rateRandomGrids: the attribute table has no faces");
  const rng = new Rng(seed, 0x7a4d0);
  return Array.from({ length: grids }, () => {
    const rows = new Set<number>();
    while (rows.size < Math.min(k, faces)) rows.add(Math.floor(rng.next() * faces));
    return autoRate([...rows], table, baseRates).rating;
  });
}
