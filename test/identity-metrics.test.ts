// Identity metrics: ROC AUC, same-identity retrieval, linear probes and the evaluation sample, on hand-checked data.

import { beforeAll, describe, expect, it } from "vitest";
import { initBackend, tf } from "../lib/kernels/backend";
import {
  cosineSimilarities,
  describeEmbedFindings,
  embedFindings,
  evaluationFaces,
  evaluationSample,
  identityMetrics,
  linearProbe,
  probeSplit,
  retrievalRecall,
  verificationAuc,
} from "../lib/embed/identity-metrics";
import { rocAuc } from "../lib/util/classification";
import { Rng } from "../lib/util/random";
import { applyOverrides, defaultConfig } from "../lib/run/config";
import { chanceRecall, identityScores } from "../lib/util/retrieval";
import { projectRoot } from "../lib/util/project";
import { readFileSync } from "node:fs";
import { join } from "node:path";

beforeAll(async () => {
  await initBackend();
});

describe("ROC AUC", () => {
  it("matches sklearn's roc_auc_score on its documented example and averages ties", () => {
    expect(rocAuc([0.1, 0.4, 0.35, 0.8], [false, false, true, true])).toBeCloseTo(0.75, 12);
    expect(rocAuc([1, 1, 0], [true, false, false])).toBeCloseTo(0.75, 12); // a tie counts half
    expect(rocAuc([3, 2, 1], [true, true, false])).toBe(1);
    expect(rocAuc([1, 2], [true, true])).toBeNaN();
  });
});

describe("same-identity retrieval and verification", () => {
  // Two people, two pictures each, in 2-D: person 0 near (1, 0), person 1 near (0, 1); face 3 is closer to person 0.
  const vectors = Float32Array.from([1, 0.1, 1, -0.1, 0.2, 1, 1, 0.3]);
  const ids = [0, 0, 1, 1];

  it("cosine similarities are those of the normalised vectors", () => {
    const sim = cosineSimilarities(vectors, 2);
    const cos = (a: number, b: number): number => {
      const [x1, y1, x2, y2] = [vectors[2 * a], vectors[2 * a + 1], vectors[2 * b], vectors[2 * b + 1]];
      return (x1 * x2 + y1 * y2) / Math.hypot(x1, y1) / Math.hypot(x2, y2);
    };
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) expect(sim[i * 4 + j]).toBeCloseTo(cos(i, j), 5);
  });

  it("recall@k counts a query as found when fewer than k other people's faces are at least as similar as its best match", () => {
    const sim = cosineSimilarities(vectors, 2);
    const r = retrievalRecall(sim, ids, [1, 2, 3]);
    expect(r.queries).toBe(4);
    // face 0: face 3 (0.982) beats its twin face 1 (0.980); face 1: twin first; face 2: twin first;
    // face 3: faces 0 and 1 (0.982, 0.925) beat its twin face 2 (0.470).
    expect(r.recall).toEqual({ 1: 0.5, 2: 0.75, 3: 1 });
    expect(retrievalRecall(sim, [0, 1, 2, 3]).queries).toBe(0); // nobody appears twice
  });

  it("verification AUC is 1 for perfectly separated people and about 0.5 for random vectors", () => {
    const clean = Float32Array.from([1, 0, 0.9, 0.1, 0, 1, 0.1, 0.9]);
    expect(verificationAuc(cosineSimilarities(clean, 2), ids)).toBe(1);
    const rng = new Rng(3);
    const n = 200;
    const random = Float32Array.from({ length: n * 16 }, () => rng.next() - 0.5);
    const randomIds = Array.from({ length: n }, (_, i) => i % 20);
    expect(Math.abs(verificationAuc(cosineSimilarities(random, 16), randomIds) - 0.5)).toBeLessThan(0.05);
  });
});

describe("retrieval and verification against numpy (test/fixtures/retrieval)", () => {
  // 34 faces of 12 people (1 to 6 pictures each, so some have no partner), two exact duplicate pairs (ties)
  const fixture = JSON.parse(readFileSync(join(projectRoot(), "test", "fixtures", "retrieval", "retrieval.json"), "utf8")) as {
    ids: number[]; dim: number; vectors: number[]; similarities: number[]; recall: Record<string, number>; queries: number; auc: number;
  };

  it("recall@k and verification AUC of numpy's similarity matrix are numpy's, exactly", () => {
    const r = retrievalRecall(fixture.similarities, fixture.ids, [1, 2, 5, 10]);
    expect(r.queries).toBe(fixture.queries);
    for (const k of [1, 2, 5, 10]) expect(r.recall[k]).toBeCloseTo(fixture.recall[String(k)], 12);
    expect(verificationAuc(fixture.similarities, fixture.ids)).toBeCloseTo(fixture.auc, 12);
  });

  it("from the vectors: cosine similarities within float32 rounding of numpy's, and the same scores", () => {
    const sim = cosineSimilarities(Float32Array.from(fixture.vectors), fixture.dim);
    let worst = 0;
    sim.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - fixture.similarities[i]))));
    expect(worst).toBeLessThan(1e-6);
    const scores = identityScores(sim, fixture.ids);
    expect(scores.recall1).toBeCloseTo(fixture.recall["1"], 12);
    expect(scores.recall10).toBeCloseTo(fixture.recall["10"], 12);
    expect(scores.auc).toBeCloseTo(fixture.auc, 6);
    expect(scores.queries).toBe(31);
    expect([scores.samePairs, scores.differentPairs]).toEqual([46, 515]); // Σ C(count, 2) over 1,2,3,6,1,4,2,5,1,3,2,4; C(34, 2) − 46
    expect(fixture.recall).toEqual({ "1": 13 / 31, "2": 15 / 31, "5": 21 / 31, "10": 27 / 31 });
  });
});

describe("retrieval by chance", () => {
  it("is 1 − C(n−1−m, k) / C(n−1, k) averaged over queries, as random similarities score", () => {
    expect(chanceRecall([0, 0, 1, 1], 1)).toBeCloseTo(1 / 3, 12);
    expect(chanceRecall([0, 0, 1, 1], 2)).toBeCloseTo(2 / 3, 12);
    expect(chanceRecall([0, 0, 1, 1], 3)).toBe(1);
    expect(chanceRecall([0, 1, 2], 1)).toBeNaN();
    // 50 people × 20 pictures: m = 19 of 999 others
    expect(chanceRecall(Array.from({ length: 1000 }, (_, i) => i % 50), 1)).toBeCloseTo(19 / 999, 12);
    const ids = [0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 5];
    const rng = new Rng(5);
    let sum = 0;
    const trials = 4000;
    for (let t = 0; t < trials; t++) {
      const sim = Float32Array.from({ length: ids.length ** 2 }, () => rng.next());
      sum += retrievalRecall(sim, ids, [3]).recall[3];
    }
    expect(Math.abs(sum / trials - chanceRecall(ids, 3))).toBeLessThan(0.01);
  });
});

describe("linear probes", () => {
  it("find an attribute written into one dimension, and stay near the majority baseline for a random one", () => {
    const rng = new Rng(7);
    const n = 400;
    const dim = 8;
    const vectors = new Float32Array(n * dim);
    const values = new Int8Array(n * 2);
    for (let i = 0; i < n; i++) {
      for (let d = 0; d < dim; d++) vectors[i * dim + d] = rng.next() - 0.5;
      values[i * 2] = vectors[i * dim + 3] > 0 ? 1 : -1; // readable from dimension 3
      values[i * 2 + 1] = rng.next() < 0.7 ? 1 : -1; // noise, 70 % positive
    }
    const test = probeSplit(n, null, 0.25, 1);
    const before = tf.memory().numTensors;
    const [signal, noise] = linearProbe(vectors, dim, { names: ["signal", "noise"], values }, test);
    expect(tf.memory().numTensors).toBe(before);
    expect(signal.accuracy).toBeGreaterThan(0.9);
    expect(noise.accuracy).toBeLessThan(noise.baseline + 0.1);
    expect(noise.baseline).toBeGreaterThan(0.55);
    expect(signal.testSize + signal.trainSize).toBe(n);
  });

  it("hold out whole people when identities are known", () => {
    const ids = Array.from({ length: 100 }, (_, i) => Math.floor(i / 4));
    const test = probeSplit(100, ids, 0.2, 0);
    for (let i = 0; i < 100; i++) expect(test[i]).toBe(test[ids[i] * 4]);
    expect(test.filter((t) => t).length).toBeGreaterThan(0);
    expect(test.filter((t) => !t).length).toBeGreaterThan(0);
  });
});

describe("evaluation sample and the whole report", () => {
  it("takes everything when small, else whole identities with two or more pictures, in listing order", () => {
    expect(evaluationSample(5, null, 10, 0)).toEqual([0, 1, 2, 3, 4]);
    const ids = Array.from({ length: 60 }, (_, i) => (i < 50 ? i % 10 : 100 + i)); // 10 people × 5, then 10 singletons
    const sample = evaluationSample(60, ids, 22, 0);
    expect(sample.length).toBe(20);
    expect([...sample].sort((a, b) => a - b)).toEqual(sample);
    const people = new Set(sample.map((i) => ids[i]));
    for (const p of people) expect(sample.filter((i) => ids[i] === p).length).toBe(5);
  });

  it("identityMetrics without identities reports NaN for retrieval and still probes attributes", () => {
    const vectors = Float32Array.from({ length: 40 }, (_, i) => Math.sin(i));
    const m = identityMetrics(vectors, 4, null, { names: ["a"], values: Int8Array.from({ length: 10 }, (_, i) => (i % 2 ? 1 : -1)) });
    expect(m.recallAt1).toBeNaN();
    expect(m.verificationAuc).toBeNaN();
    expect(m.probes).toHaveLength(1);
  });
});

describe("notebook 03's findings", () => {
  const probe = (accuracy: number, baseline = 0.7) => ({ attribute: "a", accuracy, baseline, trainSize: 800, testSize: 200 });
  const metrics = (recall1: number, auc: number, probeAccuracy: number) => ({
    recallAt1: recall1, recallAt10: 0.5, verificationAuc: auc, queries: 1000, samePairs: 9500, differentPairs: 490_000, probes: [probe(probeAccuracy)],
  });
  const evaluation = (after: ReturnType<typeof metrics>, heldOutOfTraining: boolean | null = true) => ({
    sample: 1000, faces: "the 1000 faces of 50 held-out people that notebook 02 measured (people fine-tuning never saw)", heldOutOfTraining,
    chance: { recallAt1: 0.019, recallAt10: 0.175 },
    before: metrics(0.15, 0.59, 0.76), after, initialWeights: "random initialisation",
  });
  const config = defaultConfig("unused");

  it("say better, worse or no different from recall@1, AUC and mean probe accuracy against their margins", () => {
    const better = embedFindings(config, evaluation(metrics(0.22, 0.75, 0.78)));
    expect(better).toMatchObject({ verdict: "better", sample: 1000, heldOutOfTraining: true, before: { recall1: 0.15, auc: 0.59, probeAccuracy: 0.76 }, probeBaseline: 0.7 });
    expect(better.margins.map((m) => m.name)).toEqual(["recall@1", "verification AUC", "mean probe accuracy"]);
    // probe accuracy over 200 test faces: 2·√((0.76·0.24 + 0.72·0.28) / 200) = 0.0874
    expect(embedFindings(config, evaluation(metrics(0.15, 0.59, 0.72))).margins[2].margin).toBeCloseTo(0.0874, 3);
    expect(embedFindings(config, evaluation(metrics(0.08, 0.55, 0.72))).verdict).toBe("worse");
    expect(embedFindings(config, evaluation(metrics(0.16, 0.595, 0.75))).verdict).toBe("no different");
  });

  it("'What we found' names the faces, warns when fine-tuning saw them, and places the probes against the majority baseline", () => {
    const text = describeEmbedFindings(embedFindings(config, evaluation(metrics(0.22, 0.75, 0.72), false)));
    expect(text).toMatch(/^The fine-tuned model tells these people apart better than its start \(random initialisation\): recall@1 0\.150 → 0\.220/);
    expect(text).toContain("Measured on the 1000 faces of 50 held-out people");
    expect(text).toContain("Since fine-tuning saw these people");
    expect(text).toMatch(/The attribute probes read 0\.760 before and 0\.720 after fine-tuning, against 0\.700 for always guessing the majority answer: at it before, at it after/);
  });

  it("measure the held-out people's faces notebook 02 measured, or whole people drawn at random without a held-out split", () => {
    const ids = Int32Array.from({ length: 200 }, (_, i) => i % 20);
    const dataset = { count: 200, identities: { files: [], ids } };
    const held = evaluationFaces(applyOverrides(config, ["finetune.preset=recommended", "finetune.heldOutPeople=0.25", "finetune.heldOutImages=60"]), dataset, 2000);
    expect(held.heldOutOfTraining).toBe(true);
    expect(held.sample.length).toBe(50); // 5 whole people of 10 pictures fit in 60
    expect(held.faces).toBe("the 50 faces of 5 held-out people that notebook 02 measured (people fine-tuning never saw)");
    expect(evaluationFaces(config, dataset, 2000).heldOutOfTraining).toBe(false);
    const none = evaluationFaces(applyOverrides(config, ["finetune.heldOutPeople=0"]), dataset, 100);
    expect(none).toMatchObject({ heldOutOfTraining: null, faces: "100 faces of whole people drawn at random, which fine-tuning trained on" });
  });
});
