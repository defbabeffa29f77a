// After unblinding (notebook 06): which kinds a session rates, the ratings of every kind side by side with the
// chance row (the automatic rater's ratings of grids of random faces), every pair of kinds compared, and the
// "What we found" paragraph — generated from the ratings with thresholds in code, the post's own numbers beside
// them. The post's t-test (its SAE's features against dense dimensions) is computed exactly as the post did.

import { existsSync, readFileSync } from "node:fs";
import type { RunConfig } from "../run/config";
import { runFiles } from "../run/files";
import type { Row } from "../display/html-table";
import { compareByTest, loadFindings, pValue, type Findings, type Measure, type Verdict } from "../run/findings";
import { mean } from "simple-statistics";
import { bootstrapMeanDifference, cohensD, mannWhitneyU, sampleSizeForPower, tTestInd, welchTTest } from "../util/statistics";
import { kindLabel, parseKinds, type FeatureKind } from "../inspect/kinds";
import { POST_KINDS, type BlindSession, type UnblindedRating } from "./session";

/** The post's blind test: its numbers, to set beside this run's. */
export const POST_RESULT = { sparseMean: 4.4375, denseMean: 3.25, sparseSd: 1.547848, denseSd: 1.437591, n: 16, t: 2.2486, p: 0.032 } as const;

/**
 * The kinds this run's session rates: blindTest.kinds, or for "auto" every kind there is with the automatic rater
 * and the post's two with a person. A kind asked for that the run does not have is an error naming the fix.
 */
export function blindTestKinds(config: RunConfig, available: readonly FeatureKind[]): FeatureKind[] {
  const spec = config.blindTest.kinds;
  if (spec === "auto") return config.blindTest.rater === "auto" ? [...available] : [...POST_KINDS];
  const kinds = parseKinds(spec);
  const missing = kinds.filter((k) => !available.includes(k));
  if (missing.length > 0) throw new Error(`blindTest.kinds asks for ${missing.join(", ")}, which this run does not have (it has ${available.join(", ")}): run notebooks 04 and 05 with sae.preset=post, or change blindTest.kinds`);
  return kinds;
}

/** Who rated a session: "auto" when the automatic rater gave every rating, else "human". */
export function sessionRater(results: readonly UnblindedRating[]): "auto" | "human" {
  return results.every((r) => r.rater === "auto") ? "auto" : "human";
}

/** How tables name each kind in this run. */
export function kindLabels(config: RunConfig): Record<FeatureKind, string> {
  return { dense: kindLabel("dense", config.sae.preset), sparse: kindLabel("sparse", config.sae.preset), "sparse-recommended": kindLabel("sparse-recommended", config.sae.preset) };
}

/** The rated kinds' ratings by label, and the chance column when there is one. */
export function ratingColumns(ratings: Readonly<Record<FeatureKind, readonly number[]>>, labels: Readonly<Record<FeatureKind, string>>, chance: readonly number[] | null): Record<string, readonly number[]> {
  const columns: Record<string, readonly number[]> = {};
  for (const kind of ["sparse", "dense", "sparse-recommended"] as const) if (ratings[kind].length > 0) columns[labels[kind]] = ratings[kind];
  if (chance !== null) columns["chance: random faces"] = chance;
  return columns;
}

/** Two groups of ratings compared: the tests a reader needs, one row. */
export function comparisonRow(a: readonly number[], b: readonly number[], seed: number): Row {
  if (a.length < 2 || b.length < 2) return { "mean difference": null, "Student's t": null, "p (Student)": null, "p (Welch)": null, "p (Mann–Whitney)": null, "Cohen's d": null, "95 % CI of the difference": "too few ratings", "grids for 80 % power": null };
  const student = tTestInd(a, b);
  const ci = bootstrapMeanDifference(a, b, { seed, resamples: 10_000 });
  const d = cohensD(a, b);
  return {
    "mean difference": mean(a) - mean(b),
    "Student's t": student.statistic,
    "p (Student)": student.pvalue,
    "p (Welch)": welchTTest(a, b).pvalue,
    "p (Mann–Whitney)": mannWhitneyU(a, b).pvalue,
    "Cohen's d": d,
    "95 % CI of the difference": `[${ci.low.toFixed(2)}, ${ci.high.toFixed(2)}]`,
    "grids for 80 % power": Number.isFinite(d) && d !== 0 ? sampleSizeForPower(d).perGroup : null,
  };
}

/** Every pair of rated kinds (SAE kinds first), and every kind against chance. */
export function comparisonTable(columns: Readonly<Record<string, readonly number[]>>, seed: number): Record<string, Row> {
  const names = Object.keys(columns);
  const rows: Record<string, Row> = {};
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) rows[`${names[i]} − ${names[j]}`] = comparisonRow(columns[names[i]], columns[names[j]], seed);
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------------
// What we found

export interface BlindFacts {
  readonly rater: "auto" | "human";
  readonly ratings: Readonly<Record<FeatureKind, readonly number[]>>;
  readonly labels: Readonly<Record<FeatureKind, string>>;
  /** The run's SAE's preset: the post's t-test is "sparse vs dense" only when it is the post's SAE. */
  readonly runPreset: "post" | "recommended";
  /** The automatic rater's ratings of random grids, or null (a person rated, or no labels). */
  readonly chance: readonly number[] | null;
  /** From notebook 04's findings: the post's SAE's explained variance, or null when not measured. */
  readonly postSaeExplainedVariance: number | null;
  /** The dataset: "synthetic" faces or "celeba" (or a folder). */
  readonly dataset: string;
  /** Grids of each kind with no face at all (features that fire on no face). */
  readonly emptyGrids: Readonly<Record<FeatureKind, number>>;
}

/** How many of each kind's grids show no face (a feature that fires on no face: rated 1 by the automatic rater). */
export function emptyGrids(session: BlindSession, results: readonly UnblindedRating[]): Record<FeatureKind, number> {
  const counts: Record<FeatureKind, number> = { dense: 0, sparse: 0, "sparse-recommended": 0 };
  for (const r of results) if (session.gridRows(r.id).length === 0) counts[r.kind]++;
  return counts;
}

interface Test {
  readonly verdict: Verdict;
  readonly a: number;
  readonly b: number;
  readonly t: number;
  readonly p: number;
}

/** Student's t-test of a against b (the post's), with the verdict at p < 0.05; "not measured" below 2 ratings each. */
export function testRatings(a: readonly number[], b: readonly number[]): Test {
  if (a.length < 2 || b.length < 2) return { verdict: "not measured", a: Number.NaN, b: Number.NaN, t: Number.NaN, p: Number.NaN };
  const r = tTestInd(a, b);
  const difference = mean(a) - mean(b);
  // Ratings that do not vary at all leave t undefined; equal means are no difference whatever the p-value.
  const verdict: Verdict = Number.isNaN(r.pvalue) ? (difference === 0 ? "no different" : "not measured") : compareByTest(difference, r.pvalue);
  return { verdict, a: mean(a), b: mean(b), t: r.statistic, p: r.pvalue };
}

const pText = (p: number): string => (!Number.isFinite(p) ? "p = n/a" : p < 0.001 ? "p < 0.001" : `p = ${pValue(p)}`);
const stats = (t: Test): string => `mean ${t.a.toFixed(2)} against ${t.b.toFixed(2)}, t = ${Number.isFinite(t.t) ? t.t.toFixed(4) : "n/a"}, ${pText(t.p)}`;
const POST_NUMBERS = `${POST_RESULT.sparseMean.toFixed(2)} against ${POST_RESULT.denseMean.toFixed(2)}, t = ${POST_RESULT.t}, p = ${POST_RESULT.p}`;
const capital = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/** The post's test in words: the run's SAE's features against dense dimensions, and whether that reproduces the post. */
export function postTestSentence(label: string, t: Test, isPostSae: boolean): string {
  const post = isPostSae ? `the post's result (its SAE's features rated higher: ${POST_NUMBERS})` : "the post's result (with the post's own SAE: SAE features rated higher)";
  switch (t.verdict) {
    case "better":
      return `${capital(label)}'s features are rated higher than dense dimensions (${stats(t)}): this reproduces ${post}.`;
    case "worse":
      return `${capital(label)}'s features are rated lower than dense dimensions (${stats(t)}): the opposite of ${post}.`;
    case "no different":
      return `${capital(label)}'s features are rated no differently from dense dimensions (${stats(t)}): this does not reproduce ${post}.`;
    case "not measured":
      return `${capital(label)}'s features against dense dimensions was not measured: the session lacks ratings of one of them.`;
  }
}

/** A kind against another, or against chance, in words. */
export function pairSentence(aLabel: string, bLabel: string, t: Test): string {
  switch (t.verdict) {
    case "better":
      return `${capital(aLabel)} are rated higher than ${bLabel} (${stats(t)}).`;
    case "worse":
      return `${capital(aLabel)} are rated lower than ${bLabel} (${stats(t)}).`;
    case "no different":
      return `${capital(aLabel)} are rated no differently from ${bLabel} (${stats(t)}).`;
    case "not measured":
      return `${capital(aLabel)} against ${bLabel} was not measured.`;
  }
}

/** What may explain a result that goes against the post, from what this run is. */
export function explanations(f: BlindFacts): string[] {
  const out: string[] = [];
  if (f.rater === "auto") out.push("The ratings here come from the automatic rater, which sees only the labelled attributes of the faces; the post's author rated by eye.");
  if (f.postSaeExplainedVariance !== null && f.postSaeExplainedVariance < 0) {
    out.push(`The post's SAE does not reconstruct its input in this run (it explains ${(100 * f.postSaeExplainedVariance).toExponential(1)} % of the variance), so its features are close to random projections of the face vectors.`);
  }
  const empty = f.emptyGrids.sparse;
  if (empty > 0) out.push(`${empty} of the ${f.ratings.sparse.length} grids of ${f.labels.sparse} are empty: their features fire on no face, and an empty grid is rated 1.`);
  if (f.dataset === "synthetic") out.push("The faces are the synthetic drawings, not CelebA's photographs.");
  return out;
}

/** The facts of this run's blind test: its ratings, and what notebooks 01 and 04 recorded. */
export function blindFacts(
  config: RunConfig,
  ratings: Readonly<Record<FeatureKind, readonly number[]>>,
  rater: "auto" | "human",
  chance: readonly number[] | null,
  empty: Readonly<Record<FeatureKind, number>>,
): BlindFacts {
  const sae = loadFindings(config.run, "04-sae")?.measures;
  const ev = sae?.["sparse explained variance"];
  const datasetPath = runFiles(config.run).dataset;
  const dataset = existsSync(datasetPath) ? ((JSON.parse(readFileSync(datasetPath, "utf8")) as { kind?: string }).kind ?? config.dataset) : config.dataset;
  return {
    rater,
    ratings,
    labels: kindLabels(config),
    runPreset: config.sae.preset,
    chance,
    postSaeExplainedVariance: config.sae.preset === "post" && typeof ev === "number" ? ev : null,
    dataset,
    emptyGrids: empty,
  };
}

/** Notebook 06's findings (see the file's top). */
export function blindTestFindings(f: BlindFacts): Omit<Findings, "format"> {
  const sentences: string[] = [];
  const measures: Record<string, Measure> = { rater: f.rater };
  const post = testRatings(f.ratings.sparse, f.ratings.dense);
  sentences.push(postTestSentence(f.labels.sparse, post, f.runPreset === "post"));
  const rec = f.ratings["sparse-recommended"];
  if (rec.length > 0) {
    sentences.push(pairSentence(`${f.labels["sparse-recommended"]}'s features`, "dense dimensions", testRatings(rec, f.ratings.dense)));
    sentences.push(pairSentence(`${f.labels["sparse-recommended"]}'s features`, `${f.labels.sparse}'s`, testRatings(rec, f.ratings.sparse)));
  }
  if (f.chance !== null) {
    for (const kind of ["dense", "sparse", "sparse-recommended"] as const) {
      if (f.ratings[kind].length === 0) continue;
      const name = kind === "dense" ? "Dense dimensions" : `${f.labels[kind]}'s features`;
      sentences.push(pairSentence(name, `grids of random faces`, testRatings(f.ratings[kind], f.chance)));
    }
  } else sentences.push("Grids of random faces were not rated (a person rated this session), so there is no chance row.");
  if (post.verdict !== "better" && post.verdict !== "not measured" && f.runPreset === "post") sentences.push(...explanations(f));
  Object.assign(measures, {
    "post test t": Number.isFinite(post.t) ? post.t : null,
    "post test p": Number.isFinite(post.p) ? post.p : null,
    "post test verdict": post.verdict,
    "chance mean rating": f.chance === null || f.chance.length === 0 ? null : mean(f.chance),
  });
  for (const kind of ["dense", "sparse", "sparse-recommended"] as const) {
    const r = f.ratings[kind];
    measures[`${kind} label`] = f.labels[kind];
    measures[`${kind} ratings`] = r.length;
    measures[`${kind} mean rating`] = r.length === 0 ? null : mean(r);
    measures[`${kind} empty grids`] = f.emptyGrids[kind];
  }
  return { notebook: "06-blind-test", sentences, measures };
}
