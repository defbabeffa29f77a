// Does the model tell one person from another? (the question the post ends its training with, measured)
//
//   same-identity retrieval   for each face with another picture of the same person in the sample: is one of them
//                             the nearest neighbour by cosine similarity (recall@1), among the 10 nearest (recall@10)?
//   verification ROC AUC      over all pairs of the sample: how well cosine similarity separates same-person pairs
//                             from different-person pairs (0.5 = chance, 1 = perfect)
//   linear-probe accuracy     per attribute: a logistic regression on the standardised vectors, trained on 80 % of
//                             the people and tested on the other 20 % (held-out identities), against always guessing
//                             the training set's majority label
// `evaluateRun` computes them for the fine-tuned vectors and for the initial model's on the same sample.

import { tf, tidyValues } from "../kernels/backend";
import type { AttributeTable } from "../data/celeba-metadata";
import type { Preset, RunConfig } from "../run/config";
import { openRunDataset } from "../data/datasets";
import type { ImageDataset } from "../data/image-dataset";
import { heldOutPlan } from "../model/finetune";
import { embedImages, readFaceVectors } from "./embed";
import type { Figure } from "../display/figures";
import { initialModel } from "../model/initial-weights";
import type { Row } from "../display/html-table";
import type { ProgressMode } from "../display/progress";
import { Rng } from "../util/random";
import { chanceRecall, identityScores } from "../util/retrieval";
import { cosineSimilarities, identityChanges, proportionMargin, verdictOf, verdictSentence, writeFindings, type MeasureChange, type Verdict } from "../model/held-out";
import { runFiles } from "../run/files";
import { saveFindings } from "../run/findings";

// The retrieval and verification arithmetic lives in lib/util/retrieval (fine-tuning's held-out curve counts with it
// too), the cosine similarities in lib/model/held-out; both are re-exported here for notebook 03's readers.
export { retrievalRecall, verificationAuc, type RetrievalResult } from "../util/retrieval";
export { rocAuc } from "../util/classification";
export { cosineSimilarities } from "../model/held-out";

export interface ProbeResult {
  readonly attribute: string;
  /** Accuracy on the held-out faces. */
  readonly accuracy: number;
  /** Accuracy of always answering the training set's majority label. */
  readonly baseline: number;
  readonly trainSize: number;
  readonly testSize: number;
}

export interface ProbeOptions {
  /** Fraction of people (of images without identities) held out for testing (default 0.2). */
  readonly testFraction?: number;
  readonly seed?: number;
  readonly steps?: number;
  readonly learningRate?: number;
  /** L2 penalty on the weights (default 1e-4). */
  readonly l2?: number;
}

/** Which rows are test rows: whole identities when `ids` are given (no person on both sides), else single rows. */
export function probeSplit(n: number, ids: ArrayLike<number> | null, testFraction: number, seed: number): boolean[] {
  const rng = new Rng(seed, 0x9b0be);
  if (ids === null) {
    const test = Array.from({ length: n }, () => rng.next() < testFraction);
    if (!test.some((t) => t)) test[0] = true;
    return test;
  }
  const people = [...new Set(Array.from(ids))].sort((a, b) => a - b);
  const held = new Set(people.filter(() => rng.next() < testFraction));
  if (held.size === 0 || held.size === people.length) {
    held.clear();
    held.add(people[0]);
  }
  return Array.from({ length: n }, (_, i) => held.has(ids[i]));
}

/**
 * One logistic regression per attribute (all fitted at once: W is dim × attributes), on vectors standardised with
 * the training rows' mean and deviation, full-batch Adam on the mean log-loss plus an L2 penalty.
 */
export function linearProbe(vectors: Float32Array, dim: number, table: Pick<AttributeTable, "names" | "values">, test: readonly boolean[], options: ProbeOptions = {}): ProbeResult[] {
  const n = vectors.length / dim;
  const a = table.names.length;
  const trainRows = test.flatMap((t, i) => (t ? [] : [i]));
  const testRows = test.flatMap((t, i) => (t ? [i] : []));
  const steps = options.steps ?? 300;
  const lr = options.learningRate ?? 0.1;
  const l2 = options.l2 ?? 1e-4;
  const predictions = tidyValues<Uint8Array>(() => {
    const x = tf.tensor2d(vectors, [n, dim]);
    const y = tf.tensor2d(Float32Array.from(table.values, (v) => (v > 0 ? 1 : 0)), [n, a]);
    const xTrain = tf.gather(x, trainRows);
    const { mean, variance } = tf.moments(xTrain, 0, true);
    const scale = tf.add(tf.sqrt(variance), 1e-6);
    const standardise = (t: tf.Tensor2D): tf.Tensor2D => tf.div(tf.sub(t, mean), scale) as tf.Tensor2D;
    const xs = standardise(xTrain);
    const xsT = tf.transpose(xs);
    const ys = tf.gather(y, trainRows);
    let w = tf.zeros([dim, a]);
    let b = tf.zeros([1, a]);
    let mw = tf.zerosLike(w), vw = tf.zerosLike(w), mb = tf.zerosLike(b), vb = tf.zerosLike(b);
    for (let s = 1; s <= steps; s++) {
      const [nw, nb, nmw, nvw, nmb, nvb] = tf.tidy(() => {
        const error = tf.sub(tf.sigmoid(tf.add(tf.matMul(xs, w), b)), ys); // d log-loss / d logits
        const gw = tf.add(tf.div(tf.matMul(xsT, error), trainRows.length), tf.mul(w, 2 * l2));
        const gb = tf.mean(error, 0, true);
        const adam = (p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor): tf.Tensor[] => {
          const m2 = tf.add(tf.mul(m, 0.9), tf.mul(g, 0.1));
          const v2 = tf.add(tf.mul(v, 0.999), tf.mul(tf.square(g), 0.001));
          const step = tf.div(tf.div(m2, 1 - 0.9 ** s), tf.add(tf.sqrt(tf.div(v2, 1 - 0.999 ** s)), 1e-8));
          return [tf.sub(p, tf.mul(step, lr)), m2, v2];
        };
        const [w2, mw2, vw2] = adam(w, gw, mw, vw);
        const [b2, mb2, vb2] = adam(b, gb, mb, vb);
        return [w2, b2, mw2, vw2, mb2, vb2];
      });
      tf.dispose([w, b, mw, vw, mb, vb]);
      [w, b, mw, vw, mb, vb] = [nw, nb, nmw, nvw, nmb, nvb];
    }
    const logits = tf.add(tf.matMul(standardise(tf.gather(x, testRows)), w), b);
    return tf.greater(logits, 0);
  });
  return table.names.map((attribute, j) => {
    const label = (row: number): boolean => table.values[row * a + j] > 0;
    const trainPositive = trainRows.filter(label).length;
    const majority = trainPositive * 2 >= trainRows.length;
    let correct = 0;
    let baseline = 0;
    testRows.forEach((row, k) => {
      if ((predictions[k * a + j] === 1) === label(row)) correct++;
      if (majority === label(row)) baseline++;
    });
    return { attribute, accuracy: correct / testRows.length, baseline: baseline / testRows.length, trainSize: trainRows.length, testSize: testRows.length };
  });
}

/** Up to `max` dataset indices for evaluation, whole identities first picked at random (seeded), in listing order. */
export function evaluationSample(count: number, ids: ArrayLike<number> | null, max: number, seed: number): number[] {
  if (count <= max) return Array.from({ length: count }, (_, i) => i);
  const rng = new Rng(seed, 0x5a3b1e);
  if (ids === null) {
    const all = Array.from({ length: count }, (_, i) => i);
    for (let i = count - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [all[i], all[j]] = [all[j], all[i]];
    }
    return all.slice(0, max).sort((x, y) => x - y);
  }
  const byPerson = new Map<number, number[]>();
  for (let i = 0; i < count; i++) byPerson.set(ids[i], [...(byPerson.get(ids[i]) ?? []), i]);
  const people = [...byPerson.keys()].filter((p) => byPerson.get(p)!.length > 1);
  for (let i = people.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [people[i], people[j]] = [people[j], people[i]];
  }
  const out: number[] = [];
  for (const p of people) {
    const images = byPerson.get(p)!;
    if (out.length + images.length > max) continue;
    out.push(...images);
  }
  return out.sort((x, y) => x - y);
}

export interface IdentityMetrics {
  readonly recallAt1: number;
  readonly recallAt10: number;
  readonly verificationAuc: number;
  readonly queries: number;
  /** Same-person and different-person pairs of the sample (0 without identities). */
  readonly samePairs: number;
  readonly differentPairs: number;
  readonly probes: readonly ProbeResult[];
}

/** All the metrics of one set of vectors (ids/attributes aligned with its rows; either may be null). */
export function identityMetrics(vectors: Float32Array, dim: number, ids: ArrayLike<number> | null, attributes: Pick<AttributeTable, "names" | "values"> | null, options: ProbeOptions = {}): IdentityMetrics {
  let recallAt1 = Number.NaN;
  let recallAt10 = Number.NaN;
  let auc = Number.NaN;
  let queries = 0;
  let samePairs = 0;
  let differentPairs = 0;
  if (ids !== null) {
    const scores = identityScores(cosineSimilarities(vectors, dim), ids);
    ({ recall1: recallAt1, recall10: recallAt10, queries, auc, samePairs, differentPairs } = scores);
  }
  const n = vectors.length / dim;
  const probes = attributes === null ? [] : linearProbe(vectors, dim, attributes, probeSplit(n, ids, options.testFraction ?? 0.2, options.seed ?? 0), options);
  return { recallAt1, recallAt10, verificationAuc: auc, queries, samePairs, differentPairs, probes };
}

// ---------------------------------------------------------------------------------------------------------------
// Before and after fine-tuning (notebook 03)

export interface RunEvaluation {
  readonly sample: number;
  /** Which faces were measured, in words (held-out people, and whether fine-tuning saw them). */
  readonly faces: string;
  /** True when the faces are of people fine-tuning never saw, false when they are held-out people the run trained on
   *  anyway (the post's preset), null when the sample is not of held-out people. */
  readonly heldOutOfTraining: boolean | null;
  readonly before: IdentityMetrics;
  readonly after: IdentityMetrics;
  /** recall@1 and @10 of random similarities on the same faces (lib/util/retrieval chanceRecall; NaN without identities). */
  readonly chance: { readonly recallAt1: number; readonly recallAt10: number };
  /** What the "before" model was (ImageNet weights, or the random initialisation). */
  readonly initialWeights: string;
}

/** The faces notebook 03 measures: the held-out people's faces that notebook 02 measured (lib/model/finetune
 *  heldOutPlan), else up to `maxImages` faces of whole people (or any faces, without identities). */
export function evaluationFaces(config: RunConfig, dataset: Pick<ImageDataset, "count" | "identities">, maxImages: number): { sample: number[]; faces: string; heldOutOfTraining: boolean | null } {
  const plan = heldOutPlan(config, dataset);
  const ids = dataset.identities === null ? null : dataset.identities.ids;
  if (plan.split !== null && plan.measured.length > 0) {
    const people = new Set(plan.measured.map((i) => ids![i])).size;
    const seen = plan.heldOutOfTraining
      ? "people fine-tuning never saw"
      : "people held out of the measure but not of training: the post's preset trains on every face, so fine-tuning saw them";
    return { sample: [...plan.measured], faces: `the ${plan.measured.length} faces of ${people} held-out people that notebook 02 measured (${seen})`, heldOutOfTraining: plan.heldOutOfTraining };
  }
  const sample = evaluationSample(dataset.count, ids, maxImages, config.seed);
  return { sample, faces: `${sample.length} faces ${ids === null ? "drawn at random (the dataset has no identities)" : "of whole people drawn at random"}, which fine-tuning trained on`, heldOutOfTraining: null };
}

/**
 * The metrics of the fine-tuned vectors (face_vectors.npy) and of the initial model's vectors, on the same faces
 * (evaluationFaces: the held-out people's when the run has them, else at most `maxImages` faces of whole people).
 */
export async function evaluateRun(config: RunConfig, options: { maxImages?: number; progress?: ProgressMode } = {}): Promise<RunEvaluation> {
  const dataset = await openRunDataset(config);
  const ids = dataset.identities === null ? null : dataset.identities.ids;
  const { vectors, dim, files } = await readFaceVectors(config.run);
  const rowOf = new Map(files.map((f, r) => [f, r]));
  const chosen = evaluationFaces(config, dataset, options.maxImages ?? 2000);
  const sample = chosen.sample.filter((i) => rowOf.has(dataset.files[i]));
  const after = new Float32Array(sample.length * dim);
  sample.forEach((i, k) => {
    const r = rowOf.get(dataset.files[i])!;
    after.set(vectors.subarray(r * dim, (r + 1) * dim), k * dim);
  });
  const { model, source } = await initialModel(config);
  let before: Float32Array;
  try {
    before = await embedImages(model, dataset, sample, config, { batchSize: config.embed.batchSize, preset: config.finetune.preset, progress: options.progress, desc: "Embedding with the initial weights" });
  } finally {
    model.dispose();
  }
  const sampleIds = ids === null ? null : sample.map((i) => ids[i]);
  const table = dataset.attributes;
  const attributes = table === null ? null : { names: table.names, values: Int8Array.from(sample.flatMap((i) => Array.from(table.values.subarray(i * table.names.length, (i + 1) * table.names.length)))) };
  const probeOptions: ProbeOptions = { seed: config.seed };
  return {
    sample: sample.length,
    faces: chosen.faces,
    heldOutOfTraining: chosen.heldOutOfTraining,
    chance: sampleIds === null ? { recallAt1: Number.NaN, recallAt10: Number.NaN } : { recallAt1: chanceRecall(sampleIds, 1), recallAt10: chanceRecall(sampleIds, 10) },
    before: identityMetrics(before, dim, sampleIds, attributes, probeOptions),
    after: identityMetrics(after, dim, sampleIds, attributes, probeOptions),
    initialWeights: source,
  };
}

const meanAccuracy = (m: IdentityMetrics): number => (m.probes.length ? m.probes.reduce((s, p) => s + p.accuracy, 0) / m.probes.length : Number.NaN);

/** The headline numbers as table rows: metric → before, after (retrieval rows only with identities, probes only with attributes). */
export function summaryRows(evaluation: RunEvaluation): Record<string, Row> {
  const meanBaseline = evaluation.after.probes.length ? evaluation.after.probes.reduce((s, p) => s + p.baseline, 0) / evaluation.after.probes.length : Number.NaN;
  const row = (before: number, after: number, chance: number | null = null): Row => ({ "before fine-tuning": before, "after fine-tuning": after, chance: chance ?? undefined });
  const { before, after } = evaluation;
  const rows: Record<string, Row> = {};
  if (Number.isFinite(after.recallAt1)) {
    rows["retrieval recall@1"] = row(before.recallAt1, after.recallAt1, evaluation.chance.recallAt1);
    rows["retrieval recall@10"] = row(before.recallAt10, after.recallAt10, evaluation.chance.recallAt10);
    rows["verification ROC AUC"] = row(before.verificationAuc, after.verificationAuc, 0.5);
  }
  if (after.probes.length > 0) rows["mean linear-probe accuracy"] = row(meanAccuracy(before), meanAccuracy(after), meanBaseline);
  return rows;
}

/** Per attribute: majority baseline and probe accuracy before and after. */
export function probeRows(evaluation: RunEvaluation): Record<string, Row> {
  const rows: Record<string, Row> = {};
  evaluation.after.probes.forEach((p, j) => {
    rows[p.attribute] = { "majority baseline": p.baseline, "before fine-tuning": evaluation.before.probes[j]?.accuracy, "after fine-tuning": p.accuracy };
  });
  return rows;
}

/** A grouped bar chart of the headline numbers, before and after (chance level beside them). */
export function evaluationFigure(evaluation: RunEvaluation): Figure {
  const labels = ["recall@1", "recall@10", "ROC AUC", "probe accuracy"];
  const values = (m: IdentityMetrics): number[] => [m.recallAt1, m.recallAt10, m.verificationAuc, meanAccuracy(m)].map((v) => (Number.isFinite(v) ? v : 0));
  const baseline = evaluation.after.probes.length ? evaluation.after.probes.reduce((s, p) => s + p.baseline, 0) / evaluation.after.probes.length : 0;
  return {
    data: [
      { type: "bar", name: "before fine-tuning", x: labels, y: values(evaluation.before) },
      { type: "bar", name: "after fine-tuning", x: labels, y: values(evaluation.after) },
      { type: "bar", name: "chance / majority", x: labels, y: [0, 0, 0.5, baseline], marker: { color: "#bbbbbb" } },
    ],
    layout: { title: `Telling people apart (${evaluation.sample} faces)`, yaxis: { title: "score", range: [0, 1] }, barmode: "group" },
  };
}

/** Each attribute's probe accuracy after fine-tuning against before (points above the diagonal improved). */
export function probeFigure(evaluation: RunEvaluation): Figure {
  const before = evaluation.before.probes.map((p) => p.accuracy);
  const after = evaluation.after.probes.map((p) => p.accuracy);
  return {
    data: [
      { type: "scatter", mode: "lines", name: "no change", x: [0, 1], y: [0, 1], line: { color: "#bbbbbb", dash: "dash", width: 1 } },
      { type: "scatter", mode: "markers", name: "attribute", x: before, y: after, marker: { size: 8, opacity: 0.8 } },
    ],
    layout: {
      title: `Linear-probe accuracy of ${after.length} attributes`,
      xaxis: { title: "before fine-tuning", range: [0, 1] },
      yaxis: { title: "after fine-tuning", range: [0, 1] },
      showlegend: false,
      width: 520,
      height: 480,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// What notebook 03 found (runs/<run>/embed_findings.json)

interface EmbedScores {
  readonly recall1: number;
  readonly recall10: number;
  readonly auc: number;
  /** Mean linear-probe accuracy over the attributes (NaN without attributes). */
  readonly probeAccuracy: number;
}

export interface EmbedFindings {
  readonly preset: Preset;
  readonly imageSize: number;
  readonly initialWeights: string;
  /** Which faces, in words, and whether fine-tuning saw them (see RunEvaluation). */
  readonly faces: string;
  readonly heldOutOfTraining: boolean | null;
  readonly sample: number;
  readonly before: EmbedScores;
  readonly after: EmbedScores;
  /** Mean accuracy of always answering the majority label (NaN without attributes). */
  readonly probeBaseline: number;
  readonly verdict: Verdict;
  readonly sentence: string;
  readonly margins: readonly { readonly name: string; readonly margin: number }[];
}

const scoresOf = (m: IdentityMetrics): EmbedScores => ({ recall1: m.recallAt1, recall10: m.recallAt10, auc: m.verificationAuc, probeAccuracy: meanAccuracy(m) });

/** Before against after: recall@1 and verification AUC (with identities), mean probe accuracy (with attributes),
 *  each against its margin (lib/model/held-out VERDICT_MARGINS), and the verdict in a sentence. */
export function embedFindings(config: RunConfig, evaluation: RunEvaluation): EmbedFindings {
  const { before, after } = evaluation;
  const changes: MeasureChange[] = [];
  if (Number.isFinite(after.recallAt1)) {
    changes.push(...identityChanges({ ...scoresOf(before), ...before }, { ...scoresOf(after), ...after }));
  }
  const testSize = after.probes[0]?.testSize ?? 0;
  if (after.probes.length > 0) {
    const [b, a] = [meanAccuracy(before), meanAccuracy(after)];
    changes.push({ name: "mean probe accuracy", before: b, after: a, margin: proportionMargin(b, a, testSize) });
  }
  const verdict = verdictOf(changes);
  const baseline = after.probes.length ? after.probes.reduce((s, p) => s + p.baseline, 0) / after.probes.length : Number.NaN;
  const sentence =
    changes.length === 0
      ? "Nothing to compare: the dataset has neither identities nor attributes."
      : verdictSentence(verdict, changes, "The fine-tuned model", evaluation.initialWeights);
  return {
    preset: config.finetune.preset, imageSize: config.imageSize, initialWeights: evaluation.initialWeights, faces: evaluation.faces,
    heldOutOfTraining: evaluation.heldOutOfTraining, sample: evaluation.sample, before: scoresOf(before), after: scoresOf(after),
    probeBaseline: baseline, verdict, sentence, margins: changes.map((c) => ({ name: c.name, margin: c.margin })),
  };
}

/** Notebook 03's "What we found", from the findings: the verdict, on which faces, and what the probes say. */
export function describeEmbedFindings(findings: EmbedFindings): string {
  const lines = [findings.sentence, `Measured on ${findings.faces}.`];
  if (findings.heldOutOfTraining === false) {
    lines.push("Since fine-tuning saw these people, a gain here could be remembering their faces rather than learning to tell people apart.");
  }
  if (Number.isFinite(findings.probeBaseline)) {
    const margin = findings.margins.find((m) => m.name === "mean probe accuracy")?.margin ?? 0;
    const above = (accuracy: number): string =>
      accuracy - findings.probeBaseline >= margin ? "above" : findings.probeBaseline - accuracy >= margin ? "below" : "at";
    lines.push(
      `The attribute probes read ${findings.before.probeAccuracy.toFixed(3)} before and ${findings.after.probeAccuracy.toFixed(3)} after fine-tuning, ` +
        `against ${findings.probeBaseline.toFixed(3)} for always guessing the majority answer: ${above(findings.before.probeAccuracy)} it before, ${above(findings.after.probeAccuracy)} it after (counting from ±${margin.toFixed(3)}).`,
    );
  }
  return lines.join(" ");
}

/** embedFindings of the run, written to runs/<run>/embed_findings.json (for the exported post). */
export function saveEmbedFindings(config: RunConfig, evaluation: RunEvaluation): EmbedFindings {
  const findings = embedFindings(config, evaluation);
  writeFindings(runFiles(config.run).embedFindings, findings);
  // The exported post's Findings section reads every notebook's findings in one form (lib/run/findings).
  saveFindings(config.run, {
    notebook: "03-embed",
    sentences: [findings.sentence],
    measures: {
      verdict: findings.verdict, faces: findings.faces, "initial weights": findings.initialWeights,
      "recall@1 before": findings.before.recall1, "recall@1 after": findings.after.recall1,
      "AUC before": findings.before.auc, "AUC after": findings.after.auc,
    },
  });
  return findings;
}
