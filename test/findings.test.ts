// The generated "What we found" paragraphs of notebooks 04, 05 and 06 and the exported post's Findings section: every
// branch (better, worse, no different, not measured) comes from the numbers, never from fixed prose.

import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { compareByTest, compareValues, loadFindings, percent, saveFindings, type Findings } from "../lib/run/findings";
import { runDir, runFiles } from "../lib/run/files";
import { comparisonSentence, oneSaeSentences, saeFindings, shortfalls, type SaeFacts } from "../lib/sae/findings";
import { inspectFindings, liftSentence, recoverySentence, type InspectFacts, type SaeKindFacts } from "../lib/inspect/findings";
import type { MeasureSummary } from "../lib/inspect/feature-measures";
import { blindTestFindings, postTestSentence, testRatings, type BlindFacts } from "../lib/blind-test/analysis";
import { findingsMarkdown, reproductionLines, type RunFacts, type RunFindings } from "../lib/publish/findings-section";

const run = `test-findings-${process.pid}`;
afterAll(() => rmSync(runDir(run), { recursive: true, force: true }));

describe("verdicts", () => {
  it("compareValues: better, worse, no different within the margin, not measured without a number", () => {
    expect(compareValues(0.9, 0.5, 0.01)).toBe("better");
    expect(compareValues(0.5, 0.9, 0.01)).toBe("worse");
    expect(compareValues(0.505, 0.5, 0.01)).toBe("no different");
    expect(compareValues(null, 0.5, 0.01)).toBe("not measured");
    expect(compareValues(Number.NaN, 0.5, 0.01)).toBe("not measured");
  });

  it("compareByTest: a difference counts at p < 0.05 and has the sign of the difference", () => {
    expect(compareByTest(1.2, 0.032)).toBe("better");
    expect(compareByTest(-1.2, 0.01)).toBe("worse");
    expect(compareByTest(1.2, 0.3)).toBe("no different");
    expect(compareByTest(undefined, 0.01)).toBe("not measured");
  });

  it("percent writes huge fractions in exponent form", () => {
    expect(percent(-1.4e6)).toBe("-1.4e+8 %");
    expect(percent(0.852)).toBe("85.2 %");
  });
});

const sae = (over: Partial<SaeFacts>): SaeFacts => ({
  kind: "sparse-recommended",
  label: "the recommended SAE",
  preset: "recommended",
  inputDim: 512,
  dictionarySize: 512,
  explainedVariance: 0.95,
  l0: 32,
  dead: 3,
  heldOut: true,
  steps: 700,
  learningRate: 2e-3,
  ...over,
});

describe("notebook 04", () => {
  it("says whether each SAE reconstructs its input, and why the post's does not", () => {
    expect(oneSaeSentences(sae({}), 0)[0]).toBe("The recommended SAE reconstructs its input: it explains 95.0 % of the variance of the held-out faces.");
    expect(oneSaeSentences(sae({ explainedVariance: 0.6 }), 0)[0]).toMatch(/^The recommended SAE reconstructs its input only in part: it explains 60\.0 %/);
    const post = oneSaeSentences(sae({ kind: "sparse", label: "the post's SAE", preset: "post", explainedVariance: -1.4e6, l0: 244, dead: 102, heldOut: false, steps: 300, learningRate: 1e-5 }), -0.003);
    expect(post[0]).toBe("The post's SAE does not reconstruct its input: it explains -1.4e+8 % of the variance of the evaluation faces (which it trained on, as the post trains on every face), no more than the mean face does (-0.3 %).");
    expect(post[1]).toMatch(/about √512 ≈ 22\.6 long .* learning rate of 1e-5 moves a weight by at most about 0\.0030 in its 300 steps/);
    expect(post[2]).toBe("It is not sparse: a face activates 244.0 of its 512 features (47.7 %; sparse would be at most 10 %).");
    expect(post[3]).toMatch(/^102 of its 512 features never fire on any face \(19\.9 %\): they are dead weight\.$/);
    expect(oneSaeSentences(sae({}), 0)[1]).toBe("It is sparse: a face activates 32.0 of its 512 features (6.3 %).");
  });

  it("names what misses the bar, and compares the recipes (better, worse, no different, not measured)", () => {
    expect(shortfalls(sae({}))).toEqual([]);
    expect(shortfalls(sae({ explainedVariance: 0.85, l0: 60, dead: 40 }))).toEqual(["explains 85.0 % (bar: 90 %)", "L0 is 11.7 % of the dictionary (bar: 10 %)", "7.8 % of its features are dead (bar: 5 %)"]);
    const post = sae({ preset: "post", explainedVariance: 0.5 });
    expect(comparisonSentence(post, sae({ explainedVariance: 0.9 }))).toMatch(/^The recommended recipe reconstructs better than the post's/);
    expect(comparisonSentence(post, sae({ explainedVariance: 0.2 }))).toMatch(/^The recommended recipe reconstructs worse than the post's/);
    expect(comparisonSentence(post, sae({ explainedVariance: 0.505 }))).toMatch(/^The recommended recipe reconstructs no better than the post's/);
    expect(comparisonSentence(post, sae({ explainedVariance: Number.NaN }))).toMatch(/could not be compared/);
    expect(comparisonSentence(post, undefined)).toBeNull();
    const f = saeFindings([post, sae({ explainedVariance: 0.85 })], 0);
    expect(f.sentences.some((s) => s.startsWith("The recommended SAE misses the bar"))).toBe(true);
    expect(f.measures["sparse-recommended explained variance"]).toBe(0.85);
  });
});

const summary = (over: Partial<MeasureSummary>): MeasureSummary => ({
  features: 512, dead: 0, dense: 0, underfull: 0, aurocMedian: 0.6, aurocAbove09: 0.01, liftMedian: 0.3, precisionMedian: 0.5, recallMedian: 0.5, ...over,
});
const grids = { grids: 512, slots: 8192, distinctFaces: 809, maxGridsPerFace: 107, mostSharedFace: 3, short: 0 };
const saeKind = (over: Partial<SaeKindFacts>): SaeKindFacts => ({ label: "the recommended SAE", summary: summary({}), chance: summary({ liftMedian: 0.25 }), ranking: "rows", grids, otherGrids: { ...grids, distinctFaces: 3000, maxGridsPerFace: 12 }, ...over });

describe("notebook 05", () => {
  const dense = { label: "dense dimensions", summary: summary({ liftMedian: 0.3 }) };
  it("compares top-16 lifts: better, worse, no different, not measured", () => {
    expect(liftSentence(16, saeKind({ summary: summary({ liftMedian: 0.5 }) }), dense)).toMatch(/share a labelled attribute more than the dense dimensions' do: median top-16 lift 0\.50 against 0\.30/);
    expect(liftSentence(16, saeKind({ summary: summary({ liftMedian: 0.1 }) }), dense)).toMatch(/share a labelled attribute less than/);
    expect(liftSentence(16, saeKind({ summary: summary({ liftMedian: 0.31 }) }), dense)).toMatch(/no more than the dense dimensions' do/);
    expect(liftSentence(16, saeKind({ summary: summary({ liftMedian: Number.NaN }) }), dense)).toMatch(/was not measured/);
  });

  it("reports crowded grids and what the other ranking changes; factor recovery or its absence", () => {
    const facts: InspectFacts = { k: 16, dense, randomDense: summary({ liftMedian: 0.26 }), saes: [saeKind({ summary: summary({ underfull: 7, dead: 2 }) })], randomGrids: { ...grids, distinctFaces: 4029, maxGridsPerFace: 7 }, recovery: null };
    const s = inspectFindings(facts).sentences.join(" ");
    expect(s).toContain("Of the recommended SAE's features, 7 fire on fewer than 16 faces; their grids show only the faces that fire.");
    expect(inspectFindings({ ...facts, saes: [saeKind({ summary: summary({ underfull: 1, dead: 1 }) })] }).sentences).toEqual(
      expect.arrayContaining(["Of the recommended SAE's features, 1 fires on fewer than 16 faces; its grid shows only the faces that fire.", "1 of its features fires on no face at all and has an empty grid."]),
    );
    expect(s).toContain("809 distinct faces fill the 8192 places of the recommended SAE's 512 top-16 lists and one face is in 107 of them (lists of random faces: 4029 distinct, at most 7 per face): the grids repeat each other.");
    expect(s).toContain("Ranking by raw activation would show more distinct faces: 3000, at most 12 grids per face.");
    expect(s).toContain("Factor recovery was not measured");
    expect(recoverySentence({ targets: 64, recovered: { "dense dimensions": 3, "the recommended SAE": 9, "chance: random scores": 0 } }, "dense dimensions", ["the recommended SAE"])).toBe(
      "Of the 64 yes/no targets made from the drawn factors, this many are separated by a single feature (AUROC > 0.9): dense dimensions 3, the recommended SAE 9; random scores 0; the recommended SAE recovers the most.",
    );
    expect(recoverySentence({ targets: 64, recovered: { "dense dimensions": 1, "the recommended SAE": 1 } }, "dense dimensions", ["the recommended SAE"])).toMatch(/no kind recovers more than the others\.$/);
  });
});

describe("notebook 06", () => {
  it("the post's test: reproduces, opposite, no different, not measured", () => {
    const high = [5, 6, 5, 6, 5, 6, 5, 6];
    const low = [2, 3, 2, 3, 2, 3, 2, 3];
    expect(postTestSentence("the post's SAE", testRatings(high, low), true)).toMatch(/^The post's SAE's features are rated higher than dense dimensions \(mean 5\.50 against 2\.50, t = .*, p < 0\.001\): this reproduces the post's result \(its SAE's features rated higher: 4\.44 against 3\.25, t = 2\.2486, p = 0\.032\)\.$/);
    expect(postTestSentence("the post's SAE", testRatings(low, high), true)).toMatch(/rated lower than dense dimensions .*: the opposite of the post's result/);
    expect(postTestSentence("the post's SAE", testRatings([3, 4, 5, 4], [4, 3, 4, 5]), true)).toMatch(/rated no differently from dense dimensions .*: this does not reproduce the post's result/);
    expect(postTestSentence("the post's SAE", testRatings([], low), true)).toMatch(/was not measured/);
    expect(testRatings([4, 4, 4], [4, 4, 4]).verdict).toBe("no different");
  });

  it("explains a result against the post from what the run is, and says when there is no chance row", () => {
    const facts: BlindFacts = {
      rater: "auto",
      ratings: { sparse: [3, 4, 3, 4], dense: [4, 5, 4, 5], "sparse-recommended": [] },
      labels: { dense: "dense dimensions", sparse: "the post's SAE", "sparse-recommended": "the recommended SAE" },
      runPreset: "post",
      chance: null,
      postSaeExplainedVariance: -1.4e6,
      dataset: "synthetic",
      emptyGrids: { dense: 0, sparse: 2, "sparse-recommended": 0 },
    };
    const f = blindTestFindings(facts);
    expect(f.sentences).toContain("Grids of random faces were not rated (a person rated this session), so there is no chance row.");
    expect(f.sentences).toContain("The ratings here come from the automatic rater, which sees only the labelled attributes of the faces; the post's author rated by eye.");
    expect(f.sentences.some((s) => s.startsWith("The post's SAE does not reconstruct its input in this run (it explains -1.4e+8 %"))).toBe(true);
    expect(f.measures["sparse mean rating"]).toBe(3.5);
    expect(f.sentences).toContain("2 of the 4 grids of the post's SAE are empty: their features fire on no face, and an empty grid is rated 1.");
    const better = blindTestFindings({ ...facts, ratings: { ...facts.ratings, sparse: [6, 7, 6, 7], "sparse-recommended": [5, 5, 6, 6] }, chance: [2, 2, 3, 2] });
    expect(better.sentences.some((s) => s.startsWith("The ratings here come from"))).toBe(false);
    expect(better.sentences).toContain("The recommended SAE's features are rated higher than grids of random faces (mean 5.50 against 2.25, t = 8.5105, p < 0.001).");
    expect(better.sentences).toContain("The recommended SAE's features are rated lower than the post's SAE's (mean 5.50 against 6.50, t = -2.4495, p = 0.0498).");
  });
});

describe("findings files and the exported post's Findings section", () => {
  it("saves and loads a notebook's findings, and names a broken file", () => {
    const f: Omit<Findings, "format"> = { notebook: "04-sae", sentences: ["One."], measures: { x: 1 } };
    saveFindings(run, f);
    expect(loadFindings(run, "04-sae")).toEqual({ format: "celeba-sae/findings@1", ...f });
    expect(loadFindings(run, "02-finetune")).toBeNull();
    mkdirSync(runFiles(run).findings.dir, { recursive: true });
    writeFileSync(runFiles(run).findings["05-inspect"], "{}");
    expect(() => loadFindings(run, "05-inspect")).toThrow(/is not a findings file of this project/);
  });

  const facts: RunFacts = { dataset: "synthetic", faces: 5000, imageSize: 64, weights: "torchvision's random initialisation", finetuneSteps: 20, rater: "auto" };
  const none: RunFindings = { "02-finetune": null, "03-embed": null, "04-sae": null, "05-inspect": null, "06-blind-test": null };

  it("says 'not measured' for every notebook that saved nothing, and gives the run's limits", () => {
    const md = findingsMarkdown(none, facts);
    expect(md).toMatch(/^## Findings\n/);
    expect(md).toContain("| blind test: mean rating of the post's SAE's features | 4.44 | not measured |");
    expect(md).toContain("- **Fine-tuning (02).** not measured: the notebook saved no findings.");
    expect(md).toContain("The post's blind test (its SAE's features against dense dimensions): not measured.");
    expect(md).toContain("Fine-tuning started from torchvision's random initialisation.");
    expect(md).toContain("Images of 64 × 64 pixels (the post: 224 × 224); fine-tuning took 20 steps");
    expect(md).toContain("The grids were rated by the automatic rater");
  });

  it("reports what reproduced and what did not from the verdicts", () => {
    const blind = (verdict: string): RunFindings => ({ ...none, "06-blind-test": { format: "celeba-sae/findings@1", notebook: "06-blind-test", sentences: ["Rated."], measures: { "post test verdict": verdict, "sparse mean rating": 3.75, "dense mean rating": 4.25, "post test t": -1.0171, "post test p": 0.3172 } } });
    expect(reproductionLines(blind("better"))[0]).toMatch(/^Reproduced:/);
    expect(reproductionLines(blind("worse"))[0]).toBe("Not reproduced: the post's SAE's features are rated lower than dense dimensions, where the post rated them higher.");
    expect(reproductionLines(blind("no different"))[0]).toMatch(/rated no differently from dense dimensions/);
    expect(reproductionLines(blind("not measured"))[0]).toMatch(/not measured/);
    const md = findingsMarkdown(blind("no different"), facts);
    expect(md).toContain("| blind test: Student's t (sparse − dense) | 2.2486 | -1.0171 |");
    expect(md).toContain("| blind test: p | 0.032 | 0.3172 |");
    expect(md).toContain("- **The blind test (06).** Rated.");
  });
});
