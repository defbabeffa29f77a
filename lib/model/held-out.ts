// Does fine-tuning teach the model to tell people apart? A falling loss does not say: a contrastive loss in which
// every face is its own class can be solved by remembering faces. So notebook 02 measures, every few steps, identity
// retrieval on faces of PEOPLE held out of training (lib/data/people), embedded as notebook 03 embeds (eval mode:
// BatchNorm's running statistics), and says at the end whether the model beats its start (step 0 is the "before").
//
//   the held-out set        up to finetune.heldOutImages faces of the held-out people, decoded once (uint8: the
//                           values the image cache gives training)
//   a measurement           recall@1, recall@10, verification ROC AUC (lib/util/retrieval) over cosine similarities
//   the verdict             better / worse / no different, from the changes of recall@1 and AUC against margins
//                           set here (VERDICT_MARGINS), never fixed prose
//   the findings            runs/<run>/finetune_findings.json: the curve and the verdict, for the exported post

import { tf, tidyValues } from "../kernels/backend";

import type { Preset } from "../run/config";

import type { Figure } from "../display/figures";

import { writeFileAtomicSync } from "../util/atomic-write";

import { createImageLoader, type ResizeMode } from "../data/image-loader";
import { aucStandardError, identityScores, type IdentityScores } from "../util/retrieval";
import { preprocess } from "./inputs";

import type { ResNet18 } from "./resnet18";


/** Row-normalised vectors' cosine similarities, n × n. */
export function cosineSimilarities(vectors: Float32Array, dim: number): Float32Array {
  const n = vectors.length / dim;
  return tidyValues(() => {
    const x = tf.tensor2d(vectors, [n, dim]);
    const z = tf.div(x, tf.maximum(tf.norm(x, "euclidean", 1, true), 1e-12)) as tf.Tensor2D;
    return tf.matMul(z, tf.transpose(z));
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The held-out set and one measurement

/** Faces decoded once and kept as uint8 (the values the image cache gives training), NHWC at the run's size. */
export interface FaceSet {
  /** Dataset indices, in the order of `pixels`. */
  readonly indices: readonly number[];
  readonly pixels: Uint8Array;
  readonly size: number;
}

/** The faces measured during fine-tuning. */
export interface HeldOutSet extends FaceSet {
  /** The person of each face. */
  readonly ids: readonly number[];
  /** Distinct people among them. */
  readonly people: number;
}

/** Decodes the faces `indices` once, as the run decodes them (size, resize mode), into uint8 pixels. */
export async function loadFaces(paths: readonly string[], indices: readonly number[], options: { size: number; mode: ResizeMode }): Promise<FaceSet> {
  const per = options.size * options.size * 3;
  const pixels = new Uint8Array(indices.length * per);
  const loader = createImageLoader(paths, { size: options.size, mode: options.mode, batchSize: 64, onBadImage: "error" });
  let row = 0;
  try {
    for await (const batch of loader.batches({ order: indices })) {
      const at = row * per;
      for (let k = 0; k < batch.data.length; k++) pixels[at + k] = Math.round(batch.data[k] * 255);
      row += batch.indices.length;
    }
  } finally {
    await loader.close();
  }
  return { indices, pixels, size: options.size };
}

/** The held-out faces `indices` with their people. */
export async function loadHeldOutSet(paths: readonly string[], indices: readonly number[], ids: ArrayLike<number>, options: { size: number; mode: ResizeMode }): Promise<HeldOutSet> {
  const faceIds = indices.map((i) => ids[i]);
  return { ...(await loadFaces(paths, indices, options)), ids: faceIds, people: new Set(faceIds).size };
}

/** Faces `from` … `to` − 1 of a set as an NHWC float tensor in [0, 1]. */
export function facesTensor(set: FaceSet, from: number, to: number): tf.Tensor4D {
  const per = set.size * set.size * 3;
  return tf.tidy(() => tf.div(tf.tensor4d(set.pixels.subarray(from * per, to * per), [to - from, set.size, set.size, 3], "int32"), 255) as tf.Tensor4D);
}

/** The held-out faces' embeddings in eval mode (BatchNorm's running statistics, as notebook 03 embeds), in chunks. */
export function embedHeldOut(model: ResNet18, set: FaceSet, preset: Preset, chunk = 64): Float32Array {
  const n = set.indices.length;
  const out = new Float32Array(n * model.embeddingSize);
  for (let s = 0; s < n; s += chunk) {
    const m = Math.min(chunk, n - s);
    out.set(tidyValues(() => model.apply(preprocess(facesTensor(set, s, s + m), preset), false)), s * model.embeddingSize);
  }
  return out;
}

/** One point of the held-out curve. */
export interface HeldOutPoint extends IdentityScores {
  /** Optimisation steps done when it was measured (0: the start). */
  readonly step: number;
}

/** recall@1, recall@10 and verification AUC of the model on the held-out faces, now. */
export function measureHeldOut(model: ResNet18, set: HeldOutSet, preset: Preset, step: number): HeldOutPoint {
  const vectors = embedHeldOut(model, set, preset);
  return { step, ...identityScores(cosineSimilarities(vectors, model.embeddingSize), set.ids) };
}

/** The steps at which to measure: 0, every `every` steps, and the last. */
export function isMeasuredStep(step: number, every: number, total: number): boolean {
  return step === 0 || step === total || step % every === 0;
}

/** Steps between measurements: `every` when set, else about ten measurements over the run. */
export function measureEvery(every: number | null, total: number): number {
  return every ?? Math.max(1, Math.ceil(total / 10));
}

/** The held-out curve: recall@1, recall@10 and AUC over steps, with AUC's chance level. */
export function heldOutFigure(points: readonly HeldOutPoint[], title = "Telling held-out people apart"): Figure {
  const x = points.map((p) => p.step);
  const line = (name: string, y: number[], color: string, dash: "solid" | "dash" = "solid") => ({
    type: "scatter" as const, mode: "lines+markers" as const, name, x, y, line: { color, width: 2, dash }, marker: { color, size: 6 },
  });
  const last = x.length > 0 ? x[x.length - 1] : 1;
  return {
    data: [
      line("recall@1", points.map((p) => p.recall1), "#1f77b4"),
      line("recall@10", points.map((p) => p.recall10), "#ff7f0e"),
      line("verification ROC AUC", points.map((p) => p.auc), "#2ca02c"),
      { type: "scatter", mode: "lines", name: "AUC by chance", x: [0, Math.max(1, last)], y: [0.5, 0.5], line: { color: "#bbbbbb", width: 1, dash: "dash" } },
    ],
    layout: { title, xaxis: { title: "step" }, yaxis: { title: "score (eval mode)", range: [0, 1] } },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The verdict

export type Verdict = "better" | "worse" | "no different";

/** One measure before and after, and the smallest change that counts. */
export interface MeasureChange {
  readonly name: string;
  readonly before: number;
  readonly after: number;
  readonly margin: number;
}

/**
 * The smallest changes that count. A proportion measured on q faces moves by chance by about
 * √(p(1−p)/q) each time, so a recall's change counts when it passes `sigmas` standard errors of the difference
 * of two such measurements (unpaired, so on the cautious side), and at least `floor`. A verification AUC the same
 * way with its standard error over the sample's same-person and different-person pairs (Hanley & McNeil), at least
 * `floor`: large when few pairs show one person.
 */
export const VERDICT_MARGINS = { floor: 0.01, sigmas: 2 } as const;

/** The margin of a proportion measured before and after on `count` items (see VERDICT_MARGINS). */
export function proportionMargin(before: number, after: number, count: number): number {
  if (!(count > 0)) return Number.POSITIVE_INFINITY;
  const se = Math.sqrt((before * (1 - before) + after * (1 - after)) / count);
  return Math.max(VERDICT_MARGINS.floor, VERDICT_MARGINS.sigmas * se);
}

/** The margin of a verification AUC measured before and after on the same pairs (see VERDICT_MARGINS). */
export function aucMargin(before: number, after: number, samePairs: number, differentPairs: number): number {
  const se = Math.hypot(aucStandardError(before, samePairs, differentPairs), aucStandardError(after, samePairs, differentPairs));
  return Math.max(VERDICT_MARGINS.floor, VERDICT_MARGINS.sigmas * se);
}

/** The changes of recall@1 and verification AUC between two measurements of the same faces. */
export function identityChanges(before: IdentityScores, after: IdentityScores): MeasureChange[] {
  return [
    { name: "recall@1", before: before.recall1, after: after.recall1, margin: proportionMargin(before.recall1, after.recall1, after.queries) },
    { name: "verification AUC", before: before.auc, after: after.auc, margin: aucMargin(before.auc, after.auc, after.samePairs, after.differentPairs) },
  ];
}

/** +1 when a measure rose by its margin or more, −1 when it fell by it, 0 otherwise (or when not measured). Equal to
 *  the margin counts (to rounding: 0.12 − 0.10 is 0.01999… in floating point). */
export function changeSign(change: MeasureChange): -1 | 0 | 1 {
  const d = change.after - change.before;
  if (!Number.isFinite(d)) return 0;
  const margin = change.margin - 1e-9;
  return d >= margin ? 1 : d <= -margin ? -1 : 0;
}

/** "better" when some measure rose past its margin and none fell past it, "worse" the other way round, else (nothing
 *  moved past its margin, or they disagree) "no different". */
export function verdictOf(changes: readonly MeasureChange[]): Verdict {
  const signs = changes.map(changeSign);
  const up = signs.includes(1);
  const down = signs.includes(-1);
  if (up && !down) return "better";
  if (down && !up) return "worse";
  return "no different";
}

const signed = (x: number): string => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(3)}`;
/** A measure as people read it; a measure that could not be taken (too few faces: NaN, or null once stored as JSON). */
const measured = (x: number | null): string => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(3) : "not measured");

/** "recall@1 0.150 → 0.210 (+0.060; counts from ±0.032)" for each change. */
export function describeChanges(changes: readonly MeasureChange[]): string {
  return changes.map((c) => `${c.name} ${measured(c.before)} → ${measured(c.after)} (${Number.isFinite(c.before) && Number.isFinite(c.after) ? signed(c.after - c.before) : "not measured"}; counts from ±${measured(c.margin)})`).join(", ");
}

/** One sentence saying whether `subject` beats its start (a describeInitialWeights text: only what precedes its
 *  first ": " is said, e.g. "torchvision's random initialisation (seed 0)"), with the numbers it is drawn from. */
export function verdictSentence(verdict: Verdict, changes: readonly MeasureChange[], subject: string, startDescription: string): string {
  const start = startDescription.split(": ")[0];
  const numbers = describeChanges(changes);
  switch (verdict) {
    case "better":
      return `${subject} tells these people apart better than its start (${start}): ${numbers}.`;
    case "worse":
      return `${subject} tells these people apart worse than its start (${start}): ${numbers}.`;
    case "no different": {
      const signs = changes.map(changeSign);
      const mixed = signs.includes(1) && signs.includes(-1);
      return mixed
        ? `${subject} is not clearly better or worse than its start (${start}): the measures disagree, ${numbers}.`
        : `${subject} is no different from its start (${start}) beyond the noise of the measurement: ${numbers}.`;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The findings of a fine-tuning (runs/<run>/finetune_findings.json)

export interface ScoresRecord {
  readonly recall1: number;
  readonly recall10: number;
  readonly auc: number;
}

export interface FinetuneFindings {
  readonly preset: Preset;
  readonly steps: number;
  readonly imageSize: number;
  /** describeInitialWeights of the start. */
  readonly initialWeights: string;
  /** How batches were drawn and whether the faces were augmented. */
  readonly batches: string;
  readonly before: ScoresRecord;
  readonly after: ScoresRecord;
  /** Held-out people measured, and their faces. */
  readonly heldOutPeople: number;
  readonly heldOutFaces: number;
  /** False when the run trained on the held-out people too (the post's preset keeps the post's data). */
  readonly heldOutOfTraining: boolean;
  readonly verdict: Verdict;
  readonly sentence: string;
  readonly margins: readonly { readonly name: string; readonly margin: number }[];
  readonly curve: readonly HeldOutPoint[];
}

const record = (s: IdentityScores): ScoresRecord => ({ recall1: s.recall1, recall10: s.recall10, auc: s.auc });

export interface FindingsContext {
  readonly preset: Preset;
  readonly imageSize: number;
  readonly initialWeights: string;
  readonly batches: string;
  readonly heldOutOfTraining: boolean;
  readonly heldOutPeople: number;
  readonly heldOutFaces: number;
}

/** The findings of a curve: its first point is "before", its last "after". */
export function finetuneFindings(curve: readonly HeldOutPoint[], context: FindingsContext): FinetuneFindings {
  if (curve.length === 0) throw new Error("finetuneFindings: the held-out curve has no measurement");
  const before = curve[0];
  const after = curve[curve.length - 1];
  const changes = identityChanges(before, after);
  const verdict = verdictOf(changes);
  const subject = `After ${after.step} step${after.step === 1 ? "" : "s"} of the ${context.preset} preset, the model`;
  return {
    ...context,
    steps: after.step,
    before: record(before),
    after: record(after),
    verdict,
    sentence: verdictSentence(verdict, changes, subject, context.initialWeights),
    margins: changes.map((c) => ({ name: c.name, margin: c.margin })),
    curve,
  };
}

/** Writes a findings object as JSON atomically. */
export function writeFindings(path: string, findings: object): void {
  writeFileAtomicSync(path, JSON.stringify(findings, null, 2) + "\n");
}
