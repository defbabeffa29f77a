// Notebook 05's passes over the run's faces, in one place: every kind of feature (the dense dimensions, the run's
// SAE, and the recommended SAE beside the post's when notebook 04 trained one), the chance rows (random scores for
// the same faces; random sparse scores as dense as each SAE), their measures, the factor recovery of the synthetic
// faces, and the distinct-face counts of their top-16 lists under both rankings.

import { existsSync } from "node:fs";
import type { ImageDataset } from "../data/image-dataset";
import type { Row } from "../display/html-table";
import { ProgressBar } from "../display/progress";
import type { RunConfig } from "../run/config";
import { runFiles } from "../run/files";
import { loadSae, type SparseAutoencoder } from "../sae/sae";
import { factorRecovery, factorTargets, recoveryCounts, type FactorRecovery } from "./factor-recovery";
import type { InspectFacts } from "./findings";
import { allFeatureMeasures, summarizeMeasures, summaryRow, type FeatureMeasures, type MeasureSummary } from "./feature-measures";
import { gridSetRow, gridSetStats, randomGridSetStats, type GridSetStats } from "./grid-sets";
import { kindLabel, type FeatureKind } from "./kinds";
import { RANKINGS, randomActivationBatches, scanActivations, scanFaceVectors, topRecord, type ActivationScan, type RankedScan, type Ranking } from "./scan";
import type { TopActivationsFile, TopActivationsRecord } from "./top-activations";

/** One kind's scan and its measures. */
export interface KindResult {
  readonly kind: FeatureKind;
  readonly label: string;
  /** The scan, without its factor statistics (kept in `recovery`). */
  readonly scan: RankedScan;
  readonly measures: readonly FeatureMeasures[];
  readonly summary: MeasureSummary;
}

/** A chance row: the measures of random scores. */
export interface ChanceResult {
  readonly label: string;
  readonly summary: MeasureSummary;
}

export interface InspectResult {
  readonly kinds: readonly KindResult[];
  readonly chance: readonly ChanceResult[];
  /** The SAEs by kind ("sparse", and "sparse-recommended" when there is one), for the rotation check; disposeSaes frees them. */
  readonly saes: Readonly<Record<string, SparseAutoencoder>>;
  /** Drawn factors recovered by each kind and each chance row (synthetic faces only). */
  readonly recovery: FactorRecovery | null;
}

/** The run's SAEs by kind: its own, and the recommended one notebook 04 trained beside the post's, if any. */
export async function loadRunSaes(config: RunConfig): Promise<Record<string, SparseAutoencoder>> {
  const files = runFiles(config.run);
  const saes: Record<string, SparseAutoencoder> = { sparse: await loadSae(files.sae.dir) };
  if (config.sae.preset === "post" && existsSync(files.saeBeside.meta)) saes["sparse-recommended"] = await loadSae(files.saeBeside.dir);
  return saes;
}

export function disposeSaes(result: Pick<InspectResult, "saes">): void {
  for (const sae of Object.values(result.saes)) sae.dispose();
}

/** The ranking a kind's grids use: the post's row normalisation for dense dimensions, inspect.normalize for SAEs. */
export function gridRanking(config: RunConfig, kind: FeatureKind): Ranking {
  return kind === "dense" ? "rows" : config.inspect.normalize;
}

/** Scans every kind and the chance rows (see the file's top). */
export async function inspectRun(config: RunConfig, dataset: ImageDataset): Promise<InspectResult> {
  const vectorsPath = runFiles(config.run).faceVectors;
  const k = config.inspect.topImages;
  const attributes = dataset.attributes;
  const factors = factorTargets(dataset);
  const saes = await loadRunSaes(config);
  const kinds: KindResult[] = [];
  const factorStats: Record<string, NonNullable<ActivationScan["factors"]>> = {};
  const sources: [FeatureKind, SparseAutoencoder | null][] = [["dense", null], ...Object.entries(saes).map(([kind, sae]): [FeatureKind, SparseAutoencoder] => [kind as FeatureKind, sae])];
  for (const [kind, sae] of sources) {
    const label = kindLabel(kind, config.sae.preset);
    const { factors: byFactor, ...scan } = await scanFaceVectors(vectorsPath, sae === null ? { kind: "dense" } : { kind: "sparse", encoder: sae }, {
      k,
      ranking: gridRanking(config, kind),
      attributes,
      factors,
      desc: label,
    });
    if (byFactor !== null) factorStats[label] = byFactor;
    const measures = allFeatureMeasures(scan.stats, scan.tops[scan.ranking], attributes);
    kinds.push({ kind, label, scan, measures, summary: summarizeMeasures(measures, k) });
  }
  const chance: ChanceResult[] = [];
  const rows = kinds[0].scan.stats.rows;
  const randomSpecs: { label: string; densities?: number[]; features: number; ranking: Ranking }[] = [
    { label: "chance: random scores", features: kinds[0].scan.stats.features, ranking: "rows" },
    ...kinds.slice(1).map((kr) => ({
      label: `chance: random sparse, as dense as ${kr.label}`,
      features: kr.scan.stats.features,
      densities: Array.from({ length: kr.scan.stats.features }, (_, f) => kr.scan.stats.density(f)),
      ranking: kr.scan.ranking,
    })),
  ];
  for (const [i, spec] of randomSpecs.entries()) {
    const bar = new ProgressBar({ total: rows, desc: spec.label, unit: "faces" });
    try {
      const { factors: byFactor, ...scan } = await scanActivations(randomActivationBatches({ rows, features: spec.features, densities: spec.densities, seed: config.seed + i }), {
        k,
        ranking: spec.ranking,
        attributes,
        factors,
        range: spec.ranking === "rows" ? (spec.densities === undefined ? [-1, 1] : [0, 1]) : spec.densities === undefined ? [-5, 5] : [0, 1],
        onBatch: (n) => bar.update(n),
      });
      if (byFactor !== null) factorStats[spec.label] = byFactor;
      chance.push({ label: spec.label, summary: summarizeMeasures(allFeatureMeasures(scan.stats, scan.tops[scan.ranking], attributes), k) });
    } finally {
      bar.close();
    }
  }
  const recovery = factors === null ? null : factorRecovery(factors.names, factorStats);
  return { kinds, chance, saes, recovery };
}

/** The summary table: one row per kind, then the chance rows; rotation medians where measured. */
export function inspectSummaryTable(result: InspectResult, k: number, rotationMedians: Readonly<Partial<Record<FeatureKind, number>>> = {}): Record<string, Row> {
  const rows: Record<string, Row> = {};
  for (const kr of result.kinds) rows[kr.label] = summaryRow(kr.summary, k, rotationMedians[kr.kind]);
  for (const c of result.chance) rows[c.label] = summaryRow(c.summary, k);
  return rows;
}

/** top_activations.json's content: each kind's top rows under its grid ranking. */
export function topActivationsFile(result: InspectResult): TopActivationsFile {
  const byKind: Partial<Record<FeatureKind, TopActivationsRecord>> = {};
  for (const kr of result.kinds) byKind[kr.kind] = topRecord(kr.scan);
  const { dense, sparse } = byKind;
  if (dense === undefined || sparse === undefined) throw new Error("inspectRun found no dense dimensions or no SAE: run notebooks 03 and 04 first");
  return { ...byKind, dense, sparse };
}

/** The distinct-face statistics of each kind under each ranking: all features, and the blind test's features. */
export interface GridSetResult {
  readonly label: string;
  readonly kind: FeatureKind | "chance";
  readonly ranking: Ranking | null;
  readonly all: GridSetStats;
  readonly blindTest: GridSetStats;
  /** Whether the blind test's grids use this ranking (null for the chance row). */
  readonly usedByBlindTest: boolean | null;
}

export function gridSets(config: RunConfig, result: InspectResult, blindTestFeatures: readonly number[]): GridSetResult[] {
  const k = config.inspect.topImages;
  const out: GridSetResult[] = [];
  for (const kr of result.kinds) {
    for (const ranking of RANKINGS) {
      const tops = kr.scan.tops[ranking];
      out.push({
        label: `${kr.label}, ${ranking === "rows" ? "rows normalised (the post's)" : "raw activations"}`,
        kind: kr.kind,
        ranking,
        all: gridSetStats(tops, k),
        blindTest: gridSetStats(tops, k, blindTestFeatures),
        usedByBlindTest: gridRanking(config, kr.kind) === ranking,
      });
    }
  }
  const features = result.kinds[0]?.scan.stats.features ?? 0;
  const faces = result.kinds[0]?.scan.stats.rows ?? 0;
  out.push({
    label: "chance: random faces",
    kind: "chance",
    ranking: null,
    all: randomGridSetStats(features, k, faces, config.seed),
    blindTest: randomGridSetStats(blindTestFeatures.length, k, faces, config.seed + 1),
    usedByBlindTest: null,
  });
  return out;
}

export function gridSetTable(sets: readonly GridSetResult[]): Record<string, Row> {
  return Object.fromEntries(sets.map((s) => [s.label, gridSetRow(s.all, s.blindTest, s.usedByBlindTest)]));
}

/** The facts notebook 05's "What we found" is generated from (lib/inspect/findings). */
export function inspectFacts(config: RunConfig, result: InspectResult, sets: readonly GridSetResult[]): InspectFacts {
  const [dense, ...saeKinds] = result.kinds;
  const gridsOf = (kind: FeatureKind, ranking: Ranking): GridSetStats => {
    const found = sets.find((s) => s.kind === kind && s.ranking === ranking);
    if (found === undefined) throw new Error(`no grid statistics for ${kind}, ${ranking}`);
    return found.all;
  };
  const recovered: Record<string, number> = {};
  if (result.recovery !== null) for (const kind of result.recovery.kinds) recovered[kind] = recoveryCounts(result.recovery, kind).recovered;
  return {
    k: config.inspect.topImages,
    dense: { label: dense.label, summary: dense.summary },
    randomDense: result.chance[0]?.summary ?? null,
    saes: saeKinds.map((kr, i) => {
      const ranking = gridRanking(config, kr.kind);
      return {
        label: kr.label,
        summary: kr.summary,
        chance: result.chance[i + 1]?.summary ?? null,
        ranking,
        grids: gridsOf(kr.kind, ranking),
        otherGrids: gridsOf(kr.kind, ranking === "rows" ? "raw" : "rows"),
      };
    }),
    randomGrids: sets.find((s) => s.kind === "chance")?.all ?? null,
    recovery: result.recovery === null ? null : { targets: result.recovery.targets.length, recovered },
  };
}
