// Fine-tuning's held-out measure (lib/model/held-out): the verdict and its thresholds in each branch, the findings
// a run writes, the measured steps, the curve, and a measurement of a model on decoded faces.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend, tf } from "../lib/kernels/backend";
import {
  aucMargin, changeSign, embedHeldOut, finetuneFindings, heldOutFigure, identityChanges, isMeasuredStep, measureEvery, measureHeldOut, proportionMargin,
  VERDICT_MARGINS, verdictOf, verdictSentence, writeFindings, type HeldOutPoint, type HeldOutSet, type MeasureChange,
} from "../lib/model/held-out";
import { createResNet18 } from "../lib/model/resnet18";
import { aucStandardError } from "../lib/util/retrieval";

const scratch = mkdtempSync(join(tmpdir(), "held-out-"));
beforeAll(async () => {
  await initBackend();
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A measurement of 1000 faces of 50 people with 20 pictures each: 9,500 same-person pairs, 490,000 others. */
const point = (step: number, recall1: number, auc: number, queries = 1000): HeldOutPoint => ({
  step, recall1, recall10: Math.min(1, Math.round(3000 * recall1) / 1000), auc, queries, samePairs: 9500, differentPairs: 490_000,
});

describe("the verdict", () => {
  it("a recall's margin is 2 standard errors of the difference of two proportions on q faces, at least 0.01", () => {
    // √((0.10·0.90 + 0.15·0.85) / 1000) = 0.014748 → × 2
    expect(proportionMargin(0.1, 0.15, 1000)).toBeCloseTo(0.029496, 5);
    expect(proportionMargin(0.001, 0.001, 100_000)).toBe(VERDICT_MARGINS.floor);
    expect(proportionMargin(0.5, 0.5, 0)).toBe(Number.POSITIVE_INFINITY);
    expect(VERDICT_MARGINS).toEqual({ floor: 0.01, sigmas: 2 });
  });

  it("an AUC's margin is 2 standard errors (Hanley & McNeil) of the difference, at least 0.01: large when few pairs show one person", () => {
    // A = 0.5 over 100 positive and 1000 negative pairs: Q1 = Q2 = 1/3, SE² = (0.25 + 99/12 + 999/12) / 10⁵
    expect(aucStandardError(0.5, 100, 1000)).toBeCloseTo(0.0302903, 6);
    expect(aucMargin(0.5, 0.5, 100, 1000)).toBeCloseTo(0.0856738, 6);
    // 502 real faces of 462 people (about 40 same-person pairs): a change of 0.05 is within the noise
    expect(aucMargin(0.528, 0.582, 40, 125_000)).toBeCloseTo(0.13254, 4);
    // 1000 faces of 50 people: the floor
    expect(aucMargin(0.585, 0.78, 9500, 490_000)).toBe(0.01);
    expect(aucMargin(0.5, 0.6, 0, 10)).toBe(Number.POSITIVE_INFINITY);
  });

  const change = (before: number, after: number, margin = 0.02): MeasureChange => ({ name: "m", before, after, margin });

  it("better: a measure rose by its margin and none fell by its", () => {
    expect(verdictOf([change(0.1, 0.12), change(0.6, 0.6)])).toBe("better");
    expect(verdictOf([change(0.1, 0.15), change(0.6, 0.65)])).toBe("better");
    expect(verdictOf(identityChanges(point(0, 0.15, 0.59), point(20, 0.2, 0.62)))).toBe("better");
  });

  it("worse: a measure fell by its margin and none rose by its", () => {
    expect(verdictOf([change(0.12, 0.1), change(0.6, 0.595)])).toBe("worse");
    expect(verdictOf(identityChanges(point(0, 0.105, 0.59), point(20, 0.06, 0.55)))).toBe("worse");
  });

  it("no different: nothing moved by its margin, or the measures disagree", () => {
    expect(verdictOf([change(0.1, 0.119), change(0.6, 0.581)])).toBe("no different");
    expect(verdictOf([change(0.1, 0.2), change(0.6, 0.5)])).toBe("no different");
    expect(verdictOf([change(0.1, Number.NaN)])).toBe("no different");
    // recall@1 0.105 → 0.085 on 1000 queries is inside its margin (0.0262); AUC 0.59 → 0.585 inside 0.01
    const small = identityChanges(point(0, 0.105, 0.59), point(20, 0.085, 0.585));
    expect(small[0].margin).toBeCloseTo(0.02619, 4);
    expect(small.map(changeSign)).toEqual([0, 0]);
    expect(verdictOf(small)).toBe("no different");
  });

  it("the sentence says which way and carries the numbers and margins", () => {
    const changes = identityChanges(point(0, 0.15, 0.589), point(20, 0.21, 0.64));
    const text = verdictSentence(verdictOf(changes), changes, "After 20 steps, the model", "random initialisation");
    expect(text).toBe(
      "After 20 steps, the model tells these people apart better than its start (random initialisation): " +
        "recall@1 0.150 → 0.210 (+0.060; counts from ±0.034), verification AUC 0.589 → 0.640 (+0.051; counts from ±0.010).",
    );
    const mixed = [change(0.1, 0.2), change(0.6, 0.5)];
    expect(verdictSentence("no different", mixed, "It", "x")).toMatch(/not clearly better or worse .* the measures disagree/);
    expect(verdictSentence("no different", [change(0.1, 0.1)], "It", "x")).toMatch(/no different from its start \(x\) beyond the noise/);
    expect(verdictSentence("worse", [change(0.2, 0.1)], "It", "x")).toMatch(/^It tells these people apart worse than its start/);
  });
});

describe("the findings of a fine-tuning", () => {
  const curve = [point(0, 0.15, 0.589, 600), point(10, 0.17, 0.6, 600), point(20, 0.24, 0.66, 600)];
  const context = {
    preset: "recommended" as const, imageSize: 64, initialWeights: "torchvision's random initialisation (seed 0): offline", batches: "identity-balanced batches of 8 people × 4 pictures",
    heldOutOfTraining: true, heldOutPeople: 30, heldOutFaces: 600,
  };

  it("take the first point as before and the last as after, and are written as JSON", () => {
    const findings = finetuneFindings(curve, context);
    expect(findings).toMatchObject({
      preset: "recommended", steps: 20, imageSize: 64, heldOutPeople: 30, heldOutFaces: 600, heldOutOfTraining: true, verdict: "better",
      before: { recall1: 0.15, recall10: 0.45, auc: 0.589 }, after: { recall1: 0.24, recall10: 0.72, auc: 0.66 },
    });
    expect(findings.sentence).toMatch(/^After 20 steps of the recommended preset, the model tells these people apart better than its start \(torchvision's random initialisation/);
    expect(findings.curve).toEqual(curve);
    const path = join(scratch, "finetune_findings.json");
    writeFindings(path, findings);
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual(JSON.parse(JSON.stringify(findings)));
    expect(() => finetuneFindings([], context)).toThrow(/no measurement/);
  });

  it("measure at step 0, every N steps and the last; about ten times a run by default", () => {
    expect([...Array(26).keys()].filter((s) => isMeasuredStep(s, 10, 25))).toEqual([0, 10, 20, 25]);
    expect(measureEvery(null, 1583)).toBe(159);
    expect(measureEvery(null, 5)).toBe(1);
    expect(measureEvery(7, 1583)).toBe(7);
  });

  it("the curve has recall@1, recall@10, AUC and AUC's chance level over steps", () => {
    const figure = heldOutFigure(curve);
    expect(figure.data.map((t) => t.name)).toEqual(["recall@1", "recall@10", "verification ROC AUC", "AUC by chance"]);
    expect(Array.from(figure.data[0].x as ArrayLike<number>)).toEqual([0, 10, 20]);
    expect(Array.from(figure.data[2].y as ArrayLike<number>)).toEqual([0.589, 0.6, 0.66]);
  });
});

describe("a measurement", () => {
  it("embeds the held-out faces in eval mode, as notebook 03 does, and scores them", () => {
    const model = createResNet18({ width: 4, seed: 1 });
    const size = 16;
    const n = 12;
    const pixels = Uint8Array.from({ length: n * size * size * 3 }, (_, i) => (i * 37 + Math.floor(i / 97) * 11) % 256);
    const set: HeldOutSet = { indices: [...Array(n).keys()], ids: [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3], people: 4, pixels, size };
    embedHeldOut(model, set, "post", 5); // the first pass caches the weights' derived filters
    const before = tf.memory().numTensors;
    const vectors = embedHeldOut(model, set, "post", 5);
    expect(tf.memory().numTensors).toBe(before);
    const whole = tf.tidy(() => model.apply(tf.div(tf.tensor4d(pixels, [n, size, size, 3], "int32"), 255) as tf.Tensor4D, false).dataSync() as Float32Array);
    let worst = 0;
    vectors.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - whole[i]))));
    expect(worst).toBeLessThan(1e-5 * Math.max(...Array.from(whole, Math.abs)));
    const p = measureHeldOut(model, set, "post", 7);
    expect(p.step).toBe(7);
    expect(p.queries).toBe(12);
    for (const v of [p.recall1, p.recall10, p.auc]) expect(v).toBeGreaterThanOrEqual(0);
    expect(p.recall10).toBe(1); // with 9 strangers per face, fewer than 10 can beat its best match
    model.dispose();
  });
});
