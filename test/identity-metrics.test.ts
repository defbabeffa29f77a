// Identity metrics: ROC AUC, same-identity retrieval, linear probes and the evaluation sample, on hand-checked data.

import { beforeAll, describe, expect, it } from "vitest";
import { initBackend, tf } from "../lib/kernels/backend";
import {
  cosineSimilarities,
  evaluationSample,
  identityMetrics,
  linearProbe,
  probeSplit,
  retrievalRecall,
  verificationAuc,
} from "../lib/embed/identity-metrics";
import { rocAuc } from "../lib/util/classification";
import { Rng } from "../lib/util/random";

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
