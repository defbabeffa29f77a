// The run's SAEs (notebook 04): the one `sae.preset` asks for and, when that is the post's recipe, the recommended
// recipe's beside it — trained on the same vectors, measured on the same held-out faces, compared in one table.
// A finished SAE (or its checkpoint) is reused only when it was made from the same vectors with the same recipe;
// otherwise the old files are set aside with a suffix and a note says what changed.

import { existsSync, readFileSync } from "node:fs";
import type { Preset, RunConfig, SaeConfig } from "../run/config";
import { runFiles, type SaeFiles } from "../run/files";
import type { Row } from "../display/html-table";
import { displayPath } from "../util/project";
import type { ProgressMode } from "../display/progress";
import { createSae, resolveArchitecture, resolveSaeTraining, saveSae, type SaeMeta, type SaeModel, type VectorsIdentity } from "./sae";
import { DENSE_FRACTION, evaluationSplit, heldOutMetrics, selectRows, type EvalMetrics, type HeldOutMetrics, type Vectors } from "./metrics";
import { trainingPlan, trainSae } from "./train";
import { chooseSaeEngine } from "./onnx-step";
import { saeChanges, setAside } from "./provenance";

/** Which SAE: the run's (`sae.preset`), or the recommended one trained beside the post's. */
export type SaeKind = "sparse" | "sparse-recommended";

export interface RunSaeSpec {
  readonly kind: SaeKind;
  /** How tables and figures name it. */
  readonly label: string;
  readonly preset: Preset;
  readonly files: SaeFiles;
}

/** How a run's SAE of `preset` is named: "the post's SAE" or "the recommended SAE". */
export function saeLabel(preset: Preset): string {
  return preset === "post" ? "the post's SAE" : "the recommended SAE";
}

/** The run's SAEs: its own, and the recommended one beside it when its own is the post's. */
export function runSaeSpecs(config: RunConfig): RunSaeSpec[] {
  const files = runFiles(config.run);
  const own: RunSaeSpec = { kind: "sparse", label: saeLabel(config.sae.preset), preset: config.sae.preset, files: files.sae };
  if (config.sae.preset !== "post") return [own];
  return [own, { kind: "sparse-recommended", label: saeLabel("recommended"), preset: "recommended", files: files.saeBeside }];
}

/**
 * The sae.* settings of `spec`: the run's own; for the one beside it, the recommended preset (the run's dictionary
 * size, batch, k and sae.trainingRows; the values that tune the post's SAE do not apply).
 */
export function specSettings(config: RunConfig, spec: RunSaeSpec): SaeConfig {
  if (spec.kind === "sparse") return config.sae;
  return { ...config.sae, preset: "recommended", architecture: null, l1: null, learningRate: null, weightDecay: null, epochs: null, sweep: "" };
}

/** A new SAE for `spec` (see specSettings), for vectors of `inputDim` values. */
export function createSaeFor(config: RunConfig, spec: RunSaeSpec, inputDim: number): SaeModel {
  const s = specSettings(config, spec);
  return createSae({ preset: s.preset, architecture: resolveArchitecture(s), inputDim, dictionarySize: s.dictionarySize, k: s.k, training: resolveSaeTraining(s, config.seed) });
}

/** One row per SAE: its recipe, and what it means for `rows` faces (steps, evaluations). */
export function recipeTable(config: RunConfig, specs: readonly RunSaeSpec[], rows: number): Record<string, Row> {
  return Object.fromEntries(
    specs.map((spec) => {
      const s = specSettings(config, spec);
      const architecture = resolveArchitecture(s);
      const t = resolveSaeTraining(s, config.seed);
      const plan = trainingPlan(t, rows);
      const es = t.earlyStopping;
      return [
        spec.label,
        {
          architecture: architecture === "topk" ? `topk, k = ${s.k}` : "relu",
          features: s.dictionarySize,
          λ: t.l1,
          "learning rate": t.learningRate,
          "weight decay": t.weightDecay,
          budget: t.epochs !== null ? `${t.epochs} epochs` : `${(t.trainingRows ?? 0).toLocaleString("en-US")} rows`,
          "steps at most": plan.maxSteps,
          batch: t.batchSize,
          loss: t.loss,
          init: t.init,
          "unit-norm decoder": t.unitNormDecoder,
          AuxK: t.auxK,
          "trains on": `${plan.trainingRows} faces${t.holdOut ? ` (${plan.evaluationRows} held out)` : " (all)"}`,
          "evaluated every": `${plan.evalEvery} steps`,
          "stops early": es === null ? "no" : `after ${es.patience} evaluations < ${es.minImprovement * 100} % better, from step ${es.minSteps}`,
          keeps: t.keepBest ? "best evaluation" : "last step",
        },
      ];
    }),
  );
}

/** The first few changes, and how many more. */
function summarizeChanges(changes: readonly string[], shown = 3): string {
  const more = changes.length - shown;
  return changes.slice(0, shown).join("; ") + (more > 0 ? `; and ${more} more` : "");
}

/** A trained SAE of the run, with its evaluations and what happened to earlier files. */
export interface TrainedSae {
  readonly spec: RunSaeSpec;
  readonly sae: SaeModel;
  readonly history: EvalMetrics[];
  /** Sentences: reused, resumed, set aside (and why). */
  readonly notes: string[];
}

/** The meta a saved SAE was written with, or null. */
function savedMeta(files: SaeFiles): SaeMeta | null {
  if (!existsSync(files.meta)) return null;
  try {
    return JSON.parse(readFileSync(files.meta, "utf8")) as SaeMeta;
  } catch {
    return null;
  }
}

/**
 * Trains (or resumes, or reuses) one SAE of the run and saves it into its folder. Files made from other vectors
 * or with another recipe are set aside first (see the file's top).
 */
export async function trainRunSae(
  config: RunConfig,
  spec: RunSaeSpec,
  vectors: Vectors,
  trainedOn: VectorsIdentity,
  options: { readonly progress?: ProgressMode } = {},
): Promise<TrainedSae> {
  const sae = createSaeFor(config, spec, vectors.cols);
  const notes: string[] = [];
  const wanted: SaeMeta = { ...sae.meta, trainedOn };
  const saved = savedMeta(spec.files);
  if (saved !== null) {
    const changes = saeChanges(saved, wanted);
    if (changes.length > 0) {
      const moved = setAside([spec.files.weights, spec.files.meta, spec.files.featureStats, spec.files.features]);
      notes.push(`The saved SAE (${spec.label}) was made differently (${summarizeChanges(changes)}): set aside as ${moved.map((p) => displayPath(p)).join(", ")}.`);
    }
  }
  let ranOn = null as { engine: string; fromStep: number } | null;
  const history = await trainSae(sae, vectors, {
    progress: options.progress,
    desc: `Training ${spec.label}`,
    checkpointDir: spec.files.checkpoint,
    trainedOn,
    engine: chooseSaeEngine(config.sae.engine),
    onSteps: (engine, fromStep) => (ranOn = { engine, fromStep }),
    onResume: (step, finished) =>
      notes.push(
        finished
          ? `Reused ${spec.label} finished earlier (${displayPath(spec.files.checkpoint)}, step ${step}): same vectors, same recipe.`
          : `Continued ${spec.label} from its checkpoint (${displayPath(spec.files.checkpoint)}) at step ${step}: same vectors, same recipe.`,
      ),
    onSetAside: (changes, moved) => notes.push(`Its checkpoint was made differently (${summarizeChanges(changes)}): set aside as ${moved.map((p) => displayPath(p)).join(", ")}; trained afresh.`),
  });
  if (ranOn !== null) {
    const steps = ranOn.fromStep > 0 ? ` (steps ${ranOn.fromStep + 1}–${sae.meta.metrics?.steps ?? "?"}; the earlier ones came from its checkpoint)` : "";
    notes.push(`Trained ${spec.label} on ${ranOn.engine}${steps}.`);
  }
  await saveSae(sae, spec.files.dir);
  return { spec, sae, history, notes };
}

// ---------------------------------------------------------------------------------------------------------------
// The comparison

/** One SAE measured for the comparison: on the evaluation rows, and its densities over every face. */
export interface SaeComparison {
  readonly label: string;
  readonly meta: SaeMeta;
  /** On the run's evaluation rows, with the kept weights. */
  readonly evaluation: HeldOutMetrics;
  /** Whether the recipe held those rows out of training (the post's trains on every face). */
  readonly heldOut: boolean;
  /** Features that fire on no face / on more than DENSE_FRACTION of the faces, over every face. */
  readonly dead: number;
  readonly dense: number;
}

/** Measures each trained SAE the same way: the same evaluation rows (the run's seed), densities over all faces. */
export function compareSaes(trained: readonly TrainedSae[], vectors: Vectors, seed: number): SaeComparison[] {
  const evaluation = selectRows(vectors, evaluationSplit(vectors.rows, seed).evaluation);
  return trained.map(({ spec, sae }) => {
    const all = heldOutMetrics(sae, vectors);
    return {
      label: spec.label,
      meta: sae.meta,
      evaluation: heldOutMetrics(sae, evaluation),
      heldOut: sae.meta.training.holdOut,
      dead: all.density.filter((d) => d === 0).length,
      dense: all.density.filter((d) => d > DENSE_FRACTION).length,
    };
  });
}

/**
 * What predicting every evaluation face by the mean of the other faces explains (a little below 0: the chance row
 * of the comparison, an SAE with no features).
 */
export function meanFaceExplainedVariance(vectors: Vectors, seed: number): number {
  const split = evaluationSplit(vectors.rows, seed);
  const d = vectors.cols;
  const mean = new Float64Array(d);
  for (const r of split.rest) for (let c = 0; c < d; c++) mean[c] += vectors.data[r * d + c];
  for (let c = 0; c < d; c++) mean[c] /= Math.max(1, split.rest.length);
  const own = new Float64Array(d);
  for (const r of split.evaluation) for (let c = 0; c < d; c++) own[c] += vectors.data[r * d + c];
  for (let c = 0; c < d; c++) own[c] /= Math.max(1, split.evaluation.length);
  let error = 0;
  let total = 0;
  for (const r of split.evaluation) {
    for (let c = 0; c < d; c++) {
      const x = vectors.data[r * d + c];
      error += (x - mean[c]) ** 2;
      total += (x - own[c]) ** 2;
    }
  }
  return total > 0 ? 1 - error / total : Number.NaN;
}

/** The comparison table: one row per SAE, and the mean face as the chance row. */
export function comparisonTable(rows: readonly SaeComparison[], meanFace: number): Record<string, Row> {
  const table: Record<string, Row> = {};
  for (const c of rows) {
    const m = c.meta.dictionarySize;
    const s = c.meta.metrics;
    table[c.label] = {
      recipe: `${c.meta.preset}, ${c.meta.architecture}${c.meta.architecture === "topk" ? ` k=${c.meta.k}` : ""}`,
      steps: s?.steps ?? null,
      "kept step": s?.keptStep ?? null,
      "rows measured": c.heldOut ? "held out" : "trained on",
      "MSE per value": c.evaluation.mse,
      "explained var.": c.evaluation.explainedVariance,
      L0: c.evaluation.l0,
      "L0 / features": c.evaluation.l0 / m,
      dead: c.dead,
      [`dense (> ${DENSE_FRACTION * 100} %)`]: c.dense,
    };
  }
  table["chance: the mean face, no features"] = {
    recipe: "every face reconstructed as the mean of the training faces",
    steps: null,
    "kept step": null,
    "rows measured": "held out",
    "MSE per value": null,
    "explained var.": meanFace,
    L0: 0,
    "L0 / features": 0,
    dead: null,
    [`dense (> ${DENSE_FRACTION * 100} %)`]: null,
  };
  return table;
}
