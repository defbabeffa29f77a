// How well each feature picks out a labelled attribute, with measures that do not favour dense dimensions or
// sparse features by construction:
//
//   best-attribute ROC AUC   over all faces, the attribute (or its absence) the activation ranks best. It
//                            penalises a narrow feature: one that fires on 1 % of the faces, all of them smiling,
//                            leaves the other smiling faces tied at zero with everyone else
//   top-k lift               of the faces in the feature's top-16 list (the faces its grid shows), the share with an
//                            attribute minus that attribute's share among all faces, for the attribute where the
//                            gap is largest (either way: "all 16 lack Male" counts like "all 16 have it")
//   precision / recall       of the rule "the feature fires" (activation > 0) against the best-AUROC attribute
//
// Every dense-vs-SAE table gets chance rows: the same measures on random scores for the same faces (dense), and on
// random sparse scores that fire as often as each SAE feature does. test/feature-measures.test.ts checks the
// measures against numpy/scipy.

import type { AttributeTable } from "../data/celeba-metadata";
import type { Row } from "../display/html-table";
import { DENSE_FRACTION } from "../sae/metrics";
import type { BestAttribute, FeatureStatistics } from "./feature-statistics";
import type { FeatureTop } from "./top-activations";

/** The attribute whose share in a top-k list is furthest from its share among all faces. */
export interface BestLift {
  readonly attribute: string;
  /** "present": the list has more of it than the faces at large; "absent": fewer. */
  readonly direction: "present" | "absent";
  /** |share in the list − share among all faces|. */
  readonly lift: number;
  /** Faces in the list. */
  readonly faces: number;
}

/** One feature's measures. */
export interface FeatureMeasures {
  readonly feature: number;
  /** Faces it fires on, and their share. */
  readonly fires: number;
  readonly density: number;
  /** The best-AUROC attribute (null when the feature never fires, or without labels). */
  readonly best: BestAttribute | null;
  /** Of "fires" against the best-AUROC attribute (NaN when it never fires or without labels). */
  readonly precision: number;
  readonly recall: number;
  readonly lift: BestLift | null;
}

/** Each attribute's share among all faces. */
export function baseRates(table: AttributeTable): Float64Array {
  const A = table.names.length;
  const rates = new Float64Array(A);
  for (let i = 0; i < table.files.length; i++) for (let a = 0; a < A; a++) if (table.values[i * A + a] > 0) rates[a]++;
  for (let a = 0; a < A; a++) rates[a] /= Math.max(1, table.files.length);
  return rates;
}

/**
 * The best lift of a top-k list over every attribute, both ways: max over attributes a of |share of the list with
 * a − rates[a]| (null for an empty list or no labels; ties keep the first attribute).
 */
export function bestLift(rows: readonly number[], table: AttributeTable, rates: Float64Array): BestLift | null {
  const A = table.names.length;
  if (rows.length === 0 || A === 0) return null;
  const have = new Float64Array(A);
  for (const r of rows) for (let a = 0; a < A; a++) if (table.values[r * A + a] > 0) have[a]++;
  let best: BestLift | null = null;
  for (let a = 0; a < A; a++) {
    const lift = have[a] / rows.length - rates[a];
    if (best === null || Math.abs(lift) > best.lift) best = { attribute: table.names[a], direction: lift >= 0 ? "present" : "absent", lift: Math.abs(lift), faces: rows.length };
  }
  return best;
}

/** The measures of one feature from its statistics and its top list (the faces its grid shows). */
export function featureMeasures(stats: FeatureStatistics, top: FeatureTop, table: AttributeTable | null, rates: Float64Array | null): FeatureMeasures {
  const f = top.feature;
  // A feature that never fires ranks every face the same: it predicts nothing.
  const best = stats.fired(f) === 0 ? null : stats.bestAttribute(f);
  const pr = best === null ? null : stats.firingPrecisionRecall(f, best.index, best.direction);
  return {
    feature: f,
    fires: stats.fired(f),
    density: stats.density(f),
    best,
    precision: pr?.precision ?? Number.NaN,
    recall: pr?.recall ?? Number.NaN,
    lift: table === null || rates === null ? null : bestLift(top.rows, table, rates),
  };
}

/** Every feature's measures. */
export function allFeatureMeasures(stats: FeatureStatistics, tops: readonly FeatureTop[], table: AttributeTable | null): FeatureMeasures[] {
  const rates = table === null ? null : baseRates(table);
  return tops.map((top) => featureMeasures(stats, top, table, rates));
}

export function median(values: readonly number[]): number {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const mid = finite.length >> 1;
  return finite.length % 2 ? finite[mid] : (finite[mid - 1] + finite[mid]) / 2;
}

/** The numbers of one summary row (see summaryRow). */
export interface MeasureSummary {
  readonly features: number;
  readonly dead: number;
  readonly dense: number;
  /** Features firing on at least one face but fewer than k: their top-k lists are short. */
  readonly underfull: number;
  readonly aurocMedian: number;
  /** Share of all features whose best AUROC exceeds 0.9. */
  readonly aurocAbove09: number;
  readonly liftMedian: number;
  readonly precisionMedian: number;
  readonly recallMedian: number;
}

/** Medians over the features that fire (dead ones have no measure), counts over all. */
export function summarizeMeasures(measures: readonly FeatureMeasures[], k: number): MeasureSummary {
  const live = measures.filter((m) => m.fires > 0);
  const aucs = live.flatMap((m) => (m.best === null ? [] : [m.best.auc]));
  return {
    features: measures.length,
    dead: measures.length - live.length,
    dense: measures.filter((m) => m.density > DENSE_FRACTION).length,
    underfull: live.filter((m) => m.fires < k).length,
    aurocMedian: median(aucs),
    aurocAbove09: measures.length === 0 || aucs.length === 0 ? Number.NaN : aucs.filter((a) => a > 0.9).length / measures.length,
    liftMedian: median(live.map((m) => m.lift?.lift ?? Number.NaN)),
    precisionMedian: median(live.map((m) => m.precision)),
    recallMedian: median(live.map((m) => m.recall)),
  };
}

/** One row of the dense-vs-SAE summary table. */
export function summaryRow(s: MeasureSummary, k: number, rotationMedian?: number): Row {
  return {
    features: s.features,
    dead: s.dead,
    [`dense (> ${DENSE_FRACTION * 100} %)`]: s.dense,
    [`fires on < ${k} faces`]: s.underfull,
    "AUROC median": s.aurocMedian,
    "AUROC > 0.9": s.aurocAbove09,
    [`top-${k} lift median`]: s.liftMedian,
    "precision median": s.precisionMedian,
    "recall median": s.recallMedian,
    ...(rotationMedian === undefined ? {} : { "rotated r median": rotationMedian }),
  };
}

/** "Smiling (AUC 0.93)", "not Male (AUC 0.71)", or "no attribute labels". */
export function describeBest(best: BestAttribute | null): string {
  if (best === null) return "no attribute labels";
  return `${best.direction === "absent" ? "not " : ""}${best.attribute} (AUC ${best.auc.toFixed(2)})`;
}
