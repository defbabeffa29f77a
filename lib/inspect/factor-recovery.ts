// Ground truth where we have it: the synthetic faces' generator records every factor it drew
// (<dataset>/synthetic_factors.csv, lib/data/synthetic/attributes). Each factor becomes one or more yes/no targets,
// and for each target we ask which single dense dimension, and which single SAE feature, separates the faces that
// have it from those that do not (ROC AUC, and F1 at the best threshold); a target counts as recovered when the
// best AUC exceeds RECOVERED_AUC. Random scores give the chance row (the best of many random features is not 0.5).
//
// Targets: a flag as it is; a category one target per value (e.g. hat=cap); a number split at its median
// ("scale > median"). Left out: the file name and identity, hues (circular: "above the median hue" is not a
// property), and factors drawn for every face but shown only on some (hat hue without a hat, lipstick shade without
// lipstick, the shape and tint of glasses nobody wears). A target that holds for fewer than 1 % of the faces, or
// all but 1 %, is left out too: its AUC would rest on a handful of faces.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { AttributeTable } from "../data/celeba-metadata";
import type { ImageDataset } from "../data/image-dataset";
import { parseSyntheticFactorsCsv, SYNTHETIC_FACTORS, SYNTHETIC_FACTOR_FILE, syntheticFactorColumn, type SyntheticFactorTable } from "../data/synthetic/faces";
import type { Row } from "../display/html-table";
import type { FeatureStatistics } from "./feature-statistics";
import { median } from "./feature-measures";

/** A target counts as recovered by a feature whose best AUC exceeds this. */
export const RECOVERED_AUC = 0.9;
/** Targets rarer than this share of the faces (or commoner than 1 − it) are left out. */
const MIN_SHARE = 0.01;
const LEFT_OUT = new Set(["file", "identity", "hat_hue_deg", "lipstick_shade", "glasses_shape", "tinted_lenses"]);

/** The drawn factors of a synthetic dataset as yes/no targets aligned with its images, or null for other datasets. */
export function factorTargets(dataset: ImageDataset): AttributeTable | null {
  const path = join(dataset.root, SYNTHETIC_FACTOR_FILE);
  if (!existsSync(path)) return null;
  const table = parseSyntheticFactorsCsv(readFileSync(path, "utf8"), path);
  const fileColumn = table.names.indexOf("file");
  const rowOf = new Map(table.rows.map((row, i) => [row[fileColumn], i]));
  const order = dataset.files.map((file) => {
    const base = file.slice(file.lastIndexOf("/") + 1);
    const i = rowOf.get(base);
    if (i === undefined) throw new Error(`${path} has no row for ${base}: the factors belong to another dataset; generate the synthetic faces again`);
    return i;
  });
  return targetsFromFactors(table, order, dataset.files);
}

/** The targets of a factor table, for its rows in `order` (see the file's top). */
export function targetsFromFactors(table: SyntheticFactorTable, order: readonly number[], files: readonly string[]): AttributeTable {
  const columns: { name: string; yes: Uint8Array }[] = [];
  const add = (name: string, yes: Uint8Array): void => {
    const share = yes.reduce((s, v) => s + v, 0) / Math.max(1, yes.length);
    if (share >= MIN_SHARE && share <= 1 - MIN_SHARE) columns.push({ name, yes });
  };
  for (const factor of SYNTHETIC_FACTORS) {
    if (LEFT_OUT.has(factor.name) || factor.name.endsWith("_hue_deg") || !table.names.includes(factor.name)) continue;
    const j = table.names.indexOf(factor.name);
    if (factor.kind === "category") {
      const values = [...new Set(order.map((i) => table.rows[i][j]))].sort();
      for (const value of values) add(`${factor.name}=${value}`, Uint8Array.from(order, (i) => (table.rows[i][j] === value ? 1 : 0)));
    } else {
      const all = syntheticFactorColumn(table, factor.name);
      const column = Float64Array.from(order, (i) => all[i]);
      if (factor.kind === "flag") add(factor.name, Uint8Array.from(column, (v) => (v > 0 ? 1 : 0)));
      else {
        const mid = median(Array.from(column));
        add(`${factor.name} > median`, Uint8Array.from(column, (v) => (v > mid ? 1 : 0)));
      }
    }
  }
  const A = columns.length;
  const values = new Int8Array(order.length * A);
  for (let i = 0; i < order.length; i++) for (let a = 0; a < A; a++) values[i * A + a] = columns[a].yes[i] ? 1 : -1;
  return { names: columns.map((c) => c.name), files, values };
}

/** The feature of one kind that separates a target best. */
export interface BestFeature {
  readonly feature: number;
  /** ≥ 0.5: the better of the target and its absence. */
  readonly auc: number;
  readonly direction: "present" | "absent";
  /** F1 at the best threshold, in that direction. */
  readonly f1: number;
}

/** For target t, the feature with the largest AUC (either way), and its best F1. */
export function bestFeatureFor(stats: FeatureStatistics, target: number): BestFeature | null {
  let best: BestFeature | null = null;
  for (let f = 0; f < stats.features; f++) {
    const raw = stats.auc(f, target);
    if (Number.isNaN(raw)) continue;
    const auc = Math.max(raw, 1 - raw);
    if (best === null || auc > best.auc) best = { feature: f, auc, direction: raw >= 0.5 ? "present" : "absent", f1: Number.NaN };
  }
  return best === null ? null : { ...best, f1: stats.bestF1(best.feature, target, best.direction) };
}

/** Every target's best feature for each kind (kinds by label, in order). */
export interface FactorRecovery {
  readonly targets: readonly string[];
  readonly kinds: readonly string[];
  /** best[kind][target] */
  readonly best: Readonly<Record<string, readonly (BestFeature | null)[]>>;
}

export function factorRecovery(targets: readonly string[], byKind: Readonly<Record<string, FeatureStatistics>>): FactorRecovery {
  const best: Record<string, (BestFeature | null)[]> = {};
  for (const [kind, stats] of Object.entries(byKind)) best[kind] = targets.map((_, t) => bestFeatureFor(stats, t));
  return { targets, kinds: Object.keys(byKind), best };
}

/** How many targets a kind recovers (best AUC > RECOVERED_AUC), and its median best AUC and F1. */
export function recoveryCounts(recovery: FactorRecovery, kind: string): { recovered: number; targets: number; medianAuc: number; medianF1: number } {
  const best = recovery.best[kind] ?? [];
  return {
    recovered: best.filter((b) => b !== null && b.auc > RECOVERED_AUC).length,
    targets: recovery.targets.length,
    medianAuc: median(best.map((b) => b?.auc ?? Number.NaN)),
    medianF1: median(best.map((b) => b?.f1 ?? Number.NaN)),
  };
}

/** One row per target: for each kind, its best feature, AUC and F1. */
export function recoveryTable(recovery: FactorRecovery, kinds: readonly string[] = recovery.kinds): Record<string, Row> {
  const rows: Record<string, Row> = {};
  recovery.targets.forEach((target, t) => {
    const row: Record<string, string | number | null> = {};
    for (const kind of kinds) {
      const b = recovery.best[kind]?.[t] ?? null;
      row[`${kind}: feature`] = b === null ? null : `${b.direction === "absent" ? "−" : ""}${b.feature}`;
      row[`${kind}: AUC`] = b?.auc ?? null;
      row[`${kind}: F1`] = b?.f1 ?? null;
    }
    rows[target] = row;
  });
  return rows;
}

/** One row per kind (chance rows included): targets recovered above RECOVERED_AUC, median best AUC and F1. */
export function recoverySummaryTable(recovery: FactorRecovery): Record<string, Row> {
  return Object.fromEntries(
    recovery.kinds.map((kind) => {
      const c = recoveryCounts(recovery, kind);
      return [kind, { [`recovered (AUC > ${RECOVERED_AUC})`]: c.recovered, targets: c.targets, "median best AUC": c.medianAuc, "median best F1": c.medianF1 }];
    }),
  );
}
