// Notebook 04's "What we found", generated from the run's measurements with the thresholds below: does each SAE
// reconstruct its input, is it sparse, how many features are dead, and how the recommended recipe compares with
// the post's. Nothing here is fixed prose: every sentence depends on the numbers it reports.

import { compareValues, percent, type Findings, type Measure } from "../run/findings";
import type { SaeComparison } from "./run-saes";

/** Explained variance at or above which an SAE reconstructs its input. */
export const RECONSTRUCTS = 0.9;
/** L0 as a share of the dictionary at or below which an SAE is sparse. */
export const SPARSE_L0 = 0.1;
/** Dead features as a share of the dictionary at or below which they are few. */
export const FEW_DEAD = 0.05;
/** Explained variance above the mean face's by more than this counts as reconstructing something. */
const ABOVE_CHANCE = 0.05;
/** Explained variance differences smaller than this are no difference. */
const SAME_EV = 0.01;

/** What the sentences need of one SAE. */
export interface SaeFacts {
  readonly kind: "sparse" | "sparse-recommended";
  readonly label: string;
  readonly preset: "post" | "recommended";
  readonly inputDim: number;
  readonly dictionarySize: number;
  readonly explainedVariance: number;
  readonly l0: number;
  readonly dead: number;
  /** Whether the measured rows were held out of its training. */
  readonly heldOut: boolean;
  readonly steps: number;
  readonly learningRate: number;
}

export function saeFacts(kind: SaeFacts["kind"], c: SaeComparison): SaeFacts {
  return {
    kind,
    label: c.label,
    preset: c.meta.preset,
    inputDim: c.meta.inputDim,
    dictionarySize: c.meta.dictionarySize,
    explainedVariance: c.evaluation.explainedVariance,
    l0: c.evaluation.l0,
    dead: c.dead,
    heldOut: c.heldOut,
    steps: c.meta.metrics?.steps ?? 0,
    learningRate: c.meta.training.learningRate,
  };
}

const capital = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/** Does it meet the bar: ≥ 90 % explained at L0 ≤ 10 % of the dictionary with ≤ 5 % dead? What falls short. */
export function shortfalls(s: SaeFacts): string[] {
  const out: string[] = [];
  if (!(s.explainedVariance >= RECONSTRUCTS)) out.push(`explains ${percent(s.explainedVariance)} (bar: ${percent(RECONSTRUCTS, 0)})`);
  if (!(s.l0 / s.dictionarySize <= SPARSE_L0)) out.push(`L0 is ${percent(s.l0 / s.dictionarySize)} of the dictionary (bar: ${percent(SPARSE_L0, 0)})`);
  if (!(s.dead / s.dictionarySize <= FEW_DEAD)) out.push(`${percent(s.dead / s.dictionarySize)} of its features are dead (bar: ${percent(FEW_DEAD, 0)})`);
  return out;
}

/** The sentences about one SAE. */
export function oneSaeSentences(s: SaeFacts, meanFace: number): string[] {
  const rows = s.heldOut ? "held-out faces" : "evaluation faces (which it trained on, as the post trains on every face)";
  const ev = percent(s.explainedVariance);
  const out: string[] = [];
  if (s.explainedVariance >= RECONSTRUCTS) out.push(`${capital(s.label)} reconstructs its input: it explains ${ev} of the variance of the ${rows}.`);
  else if (s.explainedVariance > meanFace + ABOVE_CHANCE) out.push(`${capital(s.label)} reconstructs its input only in part: it explains ${ev} of the variance of the ${rows}.`);
  else {
    out.push(`${capital(s.label)} does not reconstruct its input: it explains ${ev} of the variance of the ${rows}, no more than the mean face does (${percent(meanFace)}).`);
    if (s.preset === "post") {
      const start = Math.sqrt(s.inputDim);
      out.push(
        `What may explain it: the post's N(0, 1) initialisation makes every decoder row about √${s.inputDim} ≈ ${start.toFixed(1)} long while the SAE trains on unit-length vectors, ` +
          `and Adam at the post's learning rate of ${s.learningRate.toExponential(0)} moves a weight by at most about ${(s.learningRate * s.steps).toPrecision(2)} in its ${s.steps} steps, so the SAE stays near its random start.`,
      );
    }
  }
  const share = s.l0 / s.dictionarySize;
  out.push(
    share <= SPARSE_L0
      ? `It is sparse: a face activates ${s.l0.toFixed(1)} of its ${s.dictionarySize} features (${percent(share)}).`
      : `It is not sparse: a face activates ${s.l0.toFixed(1)} of its ${s.dictionarySize} features (${percent(share)}; sparse would be at most ${percent(SPARSE_L0, 0)}).`,
  );
  const dead = s.dead / s.dictionarySize;
  out.push(dead <= FEW_DEAD ? `${s.dead} of its features never fire on any face (${percent(dead)}).` : `${s.dead} of its ${s.dictionarySize} features never fire on any face (${percent(dead)}): they are dead weight.`);
  return out;
}

/** The recommended SAE against the post's, in one sentence. */
export function comparisonSentence(post: SaeFacts | undefined, recommended: SaeFacts | undefined): string | null {
  if (post === undefined || recommended === undefined) return null;
  const verdict = compareValues(recommended.explainedVariance, post.explainedVariance, SAME_EV);
  const numbers = `${percent(recommended.explainedVariance)} against ${percent(post.explainedVariance)} of the variance, at L0 ${recommended.l0.toFixed(1)} against ${post.l0.toFixed(1)}`;
  switch (verdict) {
    case "better":
      return `The recommended recipe reconstructs better than the post's on the same vectors: ${numbers}.`;
    case "worse":
      return `The recommended recipe reconstructs worse than the post's on the same vectors: ${numbers}.`;
    case "no different":
      return `The recommended recipe reconstructs no better than the post's on the same vectors: ${numbers}.`;
    case "not measured":
      return "The two recipes' reconstructions could not be compared (one was not measured).";
  }
}

/** Notebook 04's findings from its measurements: every SAE's sentences, the bar, the comparison, and the numbers. */
export function saeFindings(saes: readonly SaeFacts[], meanFace: number): Omit<Findings, "format"> {
  const sentences: string[] = [];
  const measures: Record<string, Measure> = { "mean face explained variance": meanFace };
  for (const s of saes) {
    sentences.push(...oneSaeSentences(s, meanFace));
    if (s.preset === "recommended") {
      const missing = shortfalls(s);
      sentences.push(
        missing.length === 0
          ? `${capital(s.label)} meets the bar of ≥ ${percent(RECONSTRUCTS, 0)} explained at L0 ≤ ${percent(SPARSE_L0, 0)} of the dictionary with ≤ ${percent(FEW_DEAD, 0)} dead features.`
          : `${capital(s.label)} misses the bar of ≥ ${percent(RECONSTRUCTS, 0)} explained at L0 ≤ ${percent(SPARSE_L0, 0)} of the dictionary with ≤ ${percent(FEW_DEAD, 0)} dead features: it ${missing.join("; ")}.`,
      );
    }
    Object.assign(measures, {
      [`${s.kind} label`]: s.label,
      [`${s.kind} preset`]: s.preset,
      [`${s.kind} explained variance`]: s.explainedVariance,
      [`${s.kind} L0`]: s.l0,
      [`${s.kind} L0 share`]: s.l0 / s.dictionarySize,
      [`${s.kind} dead`]: s.dead,
      [`${s.kind} features`]: s.dictionarySize,
      [`${s.kind} measured on held-out faces`]: s.heldOut,
    });
  }
  const post = saes.find((s) => s.preset === "post");
  const recommended = saes.find((s) => s.preset === "recommended");
  const comparison = comparisonSentence(post, recommended);
  if (comparison !== null) sentences.push(comparison);
  return { notebook: "04-sae", sentences, measures };
}
