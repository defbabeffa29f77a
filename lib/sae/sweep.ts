// The λ (or k) sweep of notebook 04: one SAE per value with the run's recipe otherwise, and its figure.

import type { Preset, RunConfig, SaeConfig } from "../run/config";
import { createSae, resolveArchitecture, resolveSaeTraining, type SaeArchitecture, type SaeMeta, type SaeTraining } from "./sae";
import type { Vectors } from "./metrics";
import { trainSae, type TrainOptions } from "./train";
import { chooseSaeEngine } from "./onnx-step";


// ---------------------------------------------------------------------------------------------------------------
// The sweep

export interface SweepPoint {
  readonly label: string;
  readonly preset: Preset;
  readonly architecture: SaeArchitecture;
  /** λ (relu) or k (topk). */
  readonly value: number;
  readonly l0: number;
  readonly explainedVariance: number;
  readonly dead: number;
}

/** The sweep's values: λ for relu, whole k for topk ("" gives none). */
export function parseSweep(spec: string, architecture: SaeArchitecture): number[] {
  if (spec.trim() === "") return [];
  return spec.split(",").map((raw) => {
    const value = Number(raw);
    const ok = architecture === "topk" ? Number.isInteger(value) && value >= 1 : Number.isFinite(value) && value >= 0;
    if (!ok) throw new Error(`sae.sweep value "${raw}" is not ${architecture === "topk" ? "a whole k ≥ 1" : "a λ ≥ 0"}: write e.g. ${architecture === "topk" ? '"8,16,32,64"' : '"0.3,1,3"'}`);
    return value;
  });
}

/** Trains one SAE per value (λ, or k for topk) on the same vectors, same recipe otherwise; returns L0 and FVE. */
export async function runSweep(
  base: { readonly preset: Preset; readonly architecture: SaeArchitecture; readonly dictionarySize: number; readonly k?: number; readonly training: SaeTraining },
  values: readonly number[],
  vectors: Vectors,
  options: TrainOptions = {},
): Promise<SweepPoint[]> {
  const points: SweepPoint[] = [];
  for (const value of values) {
    const topk = base.architecture === "topk";
    const sae = createSae({
      preset: base.preset,
      architecture: base.architecture,
      inputDim: vectors.cols,
      dictionarySize: base.dictionarySize,
      k: topk ? value : base.k,
      training: topk ? base.training : { ...base.training, l1: value },
    });
    try {
      await trainSae(sae, vectors, { ...options, desc: `${topk ? "k" : "λ"}=${value}` });
      points.push(sweepPoint(`${topk ? "k" : "λ"} = ${value}`, sae.meta));
    } finally {
      sae.dispose();
    }
  }
  return points;
}


/**
 * The run's sweep (config sae.sweep: λ values, or k for topk) with the run's recipe otherwise, plus the points to
 * mark: this run's SAE, and the post's recipe (trained here on the same vectors when this run is not it).
 * Returns null when sae.sweep is "".
 */
export async function sweepForRun(
  config: RunConfig,
  vectors: Vectors,
  main: SweepPoint,
  options: TrainOptions = {},
): Promise<{ points: SweepPoint[]; marked: SweepPoint[] } | null> {
  const s = config.sae;
  const architecture = resolveArchitecture(s);
  const values = parseSweep(s.sweep, architecture);
  if (values.length === 0) return null;
  const train: TrainOptions = { ...options, engine: options.engine ?? chooseSaeEngine(s.engine) };
  const points = await runSweep({ preset: s.preset, architecture, dictionarySize: s.dictionarySize, k: s.k, training: resolveSaeTraining(s, config.seed) }, values, vectors, train);
  const marked = [main];
  if (!(s.preset === "post" && architecture === "relu")) {
    const post: SaeConfig = { ...s, preset: "post", architecture: "relu", l1: null, learningRate: null, weightDecay: null };
    const sae = createSae({ preset: "post", architecture: "relu", inputDim: vectors.cols, dictionarySize: s.dictionarySize, training: resolveSaeTraining(post, config.seed) });
    try {
      await trainSae(sae, vectors, { ...train, desc: "the post's recipe" });
      marked.push(sweepPoint("the post's recipe", sae.meta));
    } finally {
      sae.dispose();
    }
  }
  return { points, marked };
}

/** The point of a trained SAE on the sweep plot: its kept weights' measures (held-out rows where it has them). */
export function sweepPoint(label: string, meta: SaeMeta): SweepPoint {
  const value = meta.architecture === "topk" ? (meta.k ?? 0) : meta.training.l1;
  const m = meta.metrics;
  if (m === undefined) throw new Error(`sweep point "${label}": the SAE has not been trained`);
  return { label, preset: meta.preset, architecture: meta.architecture, value, l0: m.l0, explainedVariance: m.explainedVariance, dead: m.dead };
}
