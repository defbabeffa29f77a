// The per-feature measures of notebook 05 (best-attribute ROC AUC, precision and recall of "fires", best F1, top-k
// lift of the faces a grid shows) against numpy/scipy (test/fixtures/feature-measures/make.py), the chance rows,
// factor targets and the distinct-face counts of grid sets.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { AttributeTable } from "../lib/data/celeba-metadata";
import { FeatureStatisticsAccumulator } from "../lib/inspect/feature-statistics";
import { allFeatureMeasures, bestLift, baseRates, summarizeMeasures } from "../lib/inspect/feature-measures";
import { bestFeatureFor, factorRecovery, recoveryCounts, targetsFromFactors } from "../lib/inspect/factor-recovery";
import { gridSetStats, randomGridSetStats } from "../lib/inspect/grid-sets";
import { randomActivationBatches, scanActivations } from "../lib/inspect/scan";
import { TopKTracker } from "../lib/inspect/top-activations";
import { rocAuc } from "../lib/util/classification";
import type { SyntheticFactorTable } from "../lib/data/synthetic/attributes";

interface Reference {
  feature: number;
  fires: number;
  aucs: number[];
  best: { attribute: string; index: number; auc: number; direction: "present" | "absent" } | null;
  precision: number | null;
  recall: number | null;
  bestF1: number | null;
  top: number[];
  lift: { attribute: string; direction: "present" | "absent"; lift: number; faces: number } | null;
}

const fx = JSON.parse(readFileSync(join("test", "fixtures", "feature-measures", "measures.json"), "utf8")) as {
  k: number;
  names: string[];
  labels: number[][];
  activations: number[][];
  features: Reference[];
};
const n = fx.labels.length;
const F = fx.activations[0].length;
const table: AttributeTable = {
  names: fx.names,
  files: Array.from({ length: n }, (_, i) => `${i}.jpg`),
  values: Int8Array.from(fx.labels.flat(), (v) => (v ? 1 : -1)),
};
const data = Float32Array.from(fx.activations.flat());

/** The fixture's activations streamed in batches of 37 rows, as a scan streams face vectors. */
function measured(bins: number): ReturnType<typeof allFeatureMeasures> & { stats: FeatureStatisticsAccumulator } {
  const lo = Math.min(...data);
  const hi = Math.max(...data);
  const stats = new FeatureStatisticsAccumulator(F, table, { range: [lo, hi], bins });
  const tracker = new TopKTracker(Array.from({ length: F }, (_, f) => f), fx.k, { above: 0 });
  for (let first = 0; first < n; first += 37) {
    const rows = Math.min(37, n - first);
    const batch = { firstRow: first, rows, width: F, data: data.slice(first * F, (first + rows) * F) };
    stats.add(batch);
    tracker.add(batch);
  }
  return Object.assign(allFeatureMeasures(stats, tracker.results(), table), { stats });
}

describe("feature measures against numpy/scipy", () => {
  it("ROC AUC of every feature for every attribute is scipy's (exactly from the columns, to the bin from the histograms)", () => {
    const { stats } = measured(4096);
    for (const ref of fx.features) {
      const column = Array.from({ length: n }, (_, i) => data[i * F + ref.feature]);
      ref.aucs.forEach((expected, a) => {
        expect(rocAuc(column, fx.labels.map((row) => row[a] === 1))).toBeCloseTo(expected, 12);
        expect(Math.abs(stats.auc(ref.feature, a) - expected)).toBeLessThan(0.005);
      });
    }
  });

  it("best attribute, precision and recall of firing, top-16 faces and lift match; dead features have none", () => {
    const measures = measured(4096);
    for (const ref of fx.features) {
      const m = measures[ref.feature];
      expect(m.fires).toBe(ref.fires);
      if (ref.best === null) {
        expect(m.best).toBeNull();
        expect(m.precision).toBeNaN();
      } else {
        expect(m.best).toMatchObject({ attribute: ref.best.attribute, index: ref.best.index, direction: ref.best.direction });
        expect(Math.abs((m.best?.auc ?? 0) - ref.best.auc)).toBeLessThan(0.005);
        expect(m.precision).toBeCloseTo(ref.precision ?? Number.NaN, 12);
        expect(m.recall).toBeCloseTo(ref.recall ?? Number.NaN, 12);
      }
      // Only faces that fire are listed: feature 4 fires on 7 faces and lists 7, the dead feature none.
      expect(measures.stats.fired(ref.feature)).toBe(ref.fires);
      if (ref.lift === null) expect(m.lift).toBeNull();
      else {
        expect(m.lift).toMatchObject({ attribute: ref.lift.attribute, direction: ref.lift.direction, faces: ref.lift.faces });
        expect(m.lift?.lift).toBeCloseTo(ref.lift.lift, 12);
      }
    }
    const fewFaces = measures[4];
    expect(fewFaces.lift?.faces).toBe(7);
  });

  it("the top-16 lists are numpy's stable descending sort, firing faces only", () => {
    const tracker = new TopKTracker(Array.from({ length: F }, (_, f) => f), fx.k, { above: 0 });
    tracker.add({ firstRow: 0, rows: n, width: F, data });
    const tops = tracker.results();
    for (const ref of fx.features) expect(tops[ref.feature].rows).toEqual(ref.top);
  });

  it("the best F1 over thresholds matches numpy's to the histogram's resolution", () => {
    const { stats } = measured(4096);
    for (const ref of fx.features) {
      if (ref.best === null) continue;
      expect(Math.abs(stats.bestF1(ref.feature, ref.best.index, ref.best.direction) - (ref.bestF1 ?? 0))).toBeLessThan(0.01);
    }
  });

  it("summaries count dead and short lists and take medians over the features that fire", () => {
    const measures = measured(256);
    const s = summarizeMeasures(measures, fx.k);
    expect(s).toMatchObject({ features: 8, dead: 1, underfull: 1 });
    const liftMedian = [...fx.features.flatMap((f) => (f.lift === null ? [] : [f.lift.lift]))].sort((a, b) => a - b)[3];
    expect(s.liftMedian).toBeCloseTo(liftMedian, 12);
  });

  it("bestLift takes either direction and the first attribute on ties", () => {
    const t: AttributeTable = { names: ["x", "y"], files: ["a", "b", "c", "d"], values: Int8Array.from([1, -1, 1, -1, -1, -1, -1, -1]) };
    const rates = baseRates(t);
    expect(Array.from(rates)).toEqual([0.5, 0]);
    expect(bestLift([0, 1], t, rates)).toEqual({ attribute: "x", direction: "present", lift: 0.5, faces: 2 });
    expect(bestLift([2, 3], t, rates)).toEqual({ attribute: "x", direction: "absent", lift: 0.5, faces: 2 });
    expect(bestLift([], t, rates)).toBeNull();
  });
});

describe("chance rows", () => {
  it("random scores rank attributes at chance; random sparse scores fire as often as asked", async () => {
    const dense = await scanActivations(randomActivationBatches({ rows: n, features: 32, seed: 1 }), { k: 16, ranking: "raw", attributes: table, range: [-5, 5] });
    const sd = summarizeMeasures(allFeatureMeasures(dense.stats, dense.tops.raw, table), 16);
    expect(sd.aurocMedian).toBeGreaterThan(0.5);
    expect(sd.aurocMedian).toBeLessThan(0.62);
    const densities = Array.from({ length: 32 }, (_, j) => (j === 0 ? 0 : 0.02 + j / 100));
    const sparse = await scanActivations(randomActivationBatches({ rows: 20_000, features: 32, densities, seed: 2, batchRows: 999 }), { k: 16, ranking: "raw", attributes: null });
    expect(sparse.stats.density(0)).toBe(0);
    for (let j = 1; j < 32; j++) expect(Math.abs(sparse.stats.density(j) - densities[j])).toBeLessThan(0.012);
    // The same seed gives the same scores.
    const again = [...randomActivationBatches({ rows: 10, features: 3, seed: 5 })][0].data;
    expect(Array.from(again)).toEqual(Array.from([...randomActivationBatches({ rows: 10, features: 3, seed: 5 })][0].data));
  });
});

describe("factor recovery", () => {
  const factors: SyntheticFactorTable = {
    names: ["file", "identity", "smile", "eyeglasses", "hat", "hat_hue_deg", "background_hue_deg"],
    rows: Array.from({ length: 200 }, (_, i) => [`${i}.jpg`, String(i % 7), String(i / 200), i % 2 ? "1" : "0", ["none", "cap", "beanie", "none"][i % 4], "10", "20"]),
  };
  const order = Array.from({ length: 200 }, (_, i) => i);

  it("makes yes/no targets: flags as they are, one per category value, numbers at the median; hues and ids left out", () => {
    const t = targetsFromFactors(factors, order, factors.rows.map((r) => r[0]));
    expect(t.names).toEqual(["smile > median", "eyeglasses", "hat=beanie", "hat=cap", "hat=none"]);
    const A = t.names.length;
    expect(t.values[1 * A + 1]).toBe(1);
    expect(t.values[0 * A + 1]).toBe(-1);
    expect(t.values[199 * A + 0]).toBe(1);
  });

  it("finds the feature that separates each target best, either way, and counts those above 0.9", () => {
    const t = targetsFromFactors(factors, order, factors.rows.map((r) => r[0]));
    const A = t.names.length;
    // Feature 0 is the smile itself, feature 1 is high without glasses, feature 2 is noise.
    const stats = new FeatureStatisticsAccumulator(3, t, { range: [0, 1], bins: 512 });
    const x = new Float32Array(200 * 3);
    for (let i = 0; i < 200; i++) {
      x[i * 3] = i / 200;
      x[i * 3 + 1] = t.values[i * A + 1] > 0 ? 0.2 : 0.8;
      x[i * 3 + 2] = ((i * 37) % 101) / 101;
    }
    stats.add({ firstRow: 0, rows: 200, width: 3, data: x });
    expect(bestFeatureFor(stats, 0)).toMatchObject({ feature: 0, auc: 1, direction: "present", f1: 1 });
    expect(bestFeatureFor(stats, 1)).toMatchObject({ feature: 1, auc: 1, direction: "absent", f1: 1 });
    const recovery = factorRecovery(t.names, { features: stats });
    expect(recoveryCounts(recovery, "features")).toMatchObject({ recovered: 2, targets: 5 });
  });
});

describe("grid sets", () => {
  it("count slots, distinct faces, the most grids one face is in, and short lists", () => {
    const tops = [
      { feature: 0, rows: [1, 2, 3], values: [] },
      { feature: 1, rows: [3, 4], values: [] },
      { feature: 2, rows: [3, 1, 5, 6], values: [] },
    ];
    expect(gridSetStats(tops, 4)).toEqual({ grids: 3, slots: 9, distinctFaces: 6, maxGridsPerFace: 3, mostSharedFace: 3, short: 2 });
    expect(gridSetStats(tops, 4, [0, 1])).toMatchObject({ grids: 2, slots: 5, distinctFaces: 4, maxGridsPerFace: 2 });
    const random = randomGridSetStats(512, 16, 5000, 0);
    expect(random.slots).toBe(8192);
    // Expected distinct faces: 5000 · (1 − (1 − 16/5000)^512) ≈ 4029.
    expect(Math.abs(random.distinctFaces - 5000 * (1 - (1 - 16 / 5000) ** 512))).toBeLessThan(60);
  });
});
