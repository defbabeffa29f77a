// Streaming top-k per feature and the per-feature statistics, against full sorts and direct computations.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend, tf } from "../lib/kernels/backend";
import type { AttributeTable } from "../lib/data/celeba-metadata";
import { FeatureStatisticsAccumulator } from "../lib/inspect/feature-statistics";
import { columnCorrelations, rotate180Nhwc } from "../lib/inspect/rotation";
import { scanActivations } from "../lib/inspect/scan";
import { allFeatureMeasures, summarizeMeasures } from "../lib/inspect/feature-measures";
import { writeNpy } from "../lib/formats/npy";
import { Rng } from "../lib/util/random";
import { activationBatches, normalizeRows, TopKTracker, type ActivationBatch, type FeatureEncoder } from "../lib/inspect/top-activations";

const scratch = mkdtempSync(join(tmpdir(), "top-activations-"));
beforeAll(async () => {
  await initBackend("cpu");
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** N × F values, rounded to a few levels so that ties happen. */
function randomMatrix(n: number, f: number, seed: number, levels = 0): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(n * f);
  for (let i = 0; i < out.length; i++) out[i] = levels ? Math.floor(rng.next() * levels) : rng.uniform(-1, 1);
  return out;
}

/** The k best rows of a column by a stable full sort (descending, earlier row first among equals). */
function fullSortTop(data: Float32Array, width: number, feature: number, k: number): number[] {
  const n = data.length / width;
  return Array.from({ length: n }, (_, i) => i)
    .sort((a, b) => data[b * width + feature] - data[a * width + feature] || a - b)
    .slice(0, k);
}

function batchesOf(data: Float32Array, width: number, batchRows: number): ActivationBatch[] {
  const n = data.length / width;
  const out: ActivationBatch[] = [];
  for (let first = 0; first < n; first += batchRows) {
    const rows = Math.min(batchRows, n - first);
    out.push({ firstRow: first, rows, width, data: data.slice(first * width, (first + rows) * width) });
  }
  return out;
}

describe("TopKTracker", () => {
  it("equals a stable full sort, with and without ties, whatever the batch size", () => {
    for (const [levels, batchRows] of [[0, 7], [5, 13], [3, 1000]] as const) {
      const data = randomMatrix(300, 6, levels + batchRows, levels);
      const tracker = new TopKTracker([0, 2, 5], 16);
      for (const b of batchesOf(data, 6, batchRows)) tracker.add(b);
      for (const top of tracker.results()) {
        expect(top.rows).toEqual(fullSortTop(data, 6, top.feature, 16));
        expect(top.values).toEqual(top.rows.map((r) => data[r * 6 + top.feature]));
      }
    }
  });

  it("keeps what there is when fewer rows than k arrive, and names a missing feature", () => {
    const tracker = new TopKTracker([1], 16);
    tracker.add({ firstRow: 0, rows: 3, width: 2, data: new Float32Array([0, 5, 0, 9, 0, 7]) });
    expect(tracker.results()[0].rows).toEqual([1, 2, 0]);
    const bad = new TopKTracker([4], 2);
    expect(() => bad.add({ firstRow: 0, rows: 1, width: 2, data: new Float32Array(2) })).toThrow(/feature 4 does not exist: .* 2 columns/);
  });
});

describe("activation batches", () => {
  it("normalizeRows is torch.nn.functional.normalize (eps 1e-12)", () => {
    const rows = normalizeRows(new Float32Array([3, 4, 0, 0, 0, 0]), 3);
    expect(Array.from(rows.slice(0, 3))).toEqual([0.6000000238418579, 0.800000011920929, 0]);
    expect(Array.from(rows.slice(3))).toEqual([0, 0, 0]);
  });

  it("streams dense and sparse activations from face_vectors.npy without leaking tensors", async () => {
    const n = 50;
    const d = 8;
    const vectors = randomMatrix(n, d, 11);
    const path = join(scratch, "face_vectors.npy");
    await writeNpy(path, vectors, [n, d]);
    const dense: ActivationBatch[] = [];
    for await (const b of activationBatches(path, { kind: "dense", normalize: true }, { batchRows: 16 })) dense.push(b);
    expect(dense.map((b) => b.rows)).toEqual([16, 16, 16, 2]);
    const expected = normalizeRows(vectors.slice(), d);
    expect(Array.from(dense[1].data.slice(0, d))).toEqual(Array.from(expected.slice(16 * d, 17 * d)));

    // A stand-in encoder (ReLU of a fixed projection to 12 features), as lib/sae/sae.ts's SAE would be used.
    const weights = tf.tensor2d(randomMatrix(d, 12, 3), [d, 12]);
    const encoder: FeatureEncoder = { encode: (x) => tf.relu(tf.matMul(x, weights)) as tf.Tensor2D };
    const before = tf.memory().numTensors;
    const sparse: ActivationBatch[] = [];
    for await (const b of activationBatches(path, { kind: "sparse", encoder, normalize: false }, { batchRows: 16 })) sparse.push(b);
    expect(tf.memory().numTensors).toBe(before);
    expect(sparse[0].width).toBe(12);
    const direct = tf.tidy(() => tf.relu(tf.matMul(tf.tensor2d(vectors, [n, d]), weights)).dataSync());
    expect(Array.from(sparse[3].data)).toEqual(Array.from(direct.slice(48 * 12)));
    weights.dispose();
  });
});

describe("feature statistics", () => {
  // 40 images, 3 features, 2 attributes. Feature 0 equals attribute "A" (1 or 0), feature 1 is exactly zero
  // everywhere (dead), feature 2 grows with the row (so it ranks attribute "Late" perfectly).
  const n = 40;
  const names = ["A", "Late"];
  const values = new Int8Array(n * 2);
  const data = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const a = i % 3 === 0;
    values[i * 2] = a ? 1 : -1;
    values[i * 2 + 1] = i >= 30 ? 1 : -1;
    data[i * 3] = a ? 1 : 0;
    data[i * 3 + 2] = i / n;
  }
  const table: AttributeTable = { names, files: Array.from({ length: n }, (_, i) => `${i}.jpg`), values };

  it("density, AUCs and the best attribute are exact where values fall in distinct bins", async () => {
    const scan = await scanActivations(batchesOf(data, 3, 9), { k: 4, ranking: "raw", attributes: table, range: [0, 1] });
    const s = scan.stats;
    expect(s.rows).toBe(n);
    expect(s.density(0)).toBeCloseTo(14 / 40, 12);
    expect(s.density(1)).toBe(0);
    expect(s.auc(0, 0)).toBe(1);
    expect(s.auc(2, 1)).toBe(1);
    expect(s.bestAttribute(0)).toEqual({ attribute: "A", index: 0, auc: 1, direction: "present" });
    expect(s.bestAttribute(2)).toEqual({ attribute: "Late", index: 1, auc: 1, direction: "present" });
    // Feature 2 vs A: the exact Mann–Whitney AUC, counted pair by pair.
    let wins = 0;
    let pairs = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      if (values[i * 2] > 0 && values[j * 2] < 0) {
        pairs++;
        wins += data[i * 3 + 2] > data[j * 3 + 2] ? 1 : data[i * 3 + 2] === data[j * 3 + 2] ? 0.5 : 0;
      }
    }
    expect(s.auc(2, 0)).toBeCloseTo(wins / pairs, 2);
    expect(scan.tops.raw[2].rows).toEqual([39, 38, 37, 36]);
    // Only faces that fire are kept: feature 0 fires on 14 faces, feature 1 on none.
    expect(scan.tops.raw[1].rows).toEqual([]);
    const hist = s.histogram(1);
    expect(hist.counts[0]).toBe(n);
    expect(hist.counts.reduce((a, b) => a + b, 0)).toBe(n);
    const summary = summarizeMeasures(allFeatureMeasures(s, scan.tops.raw, table), 4);
    expect(summary.dead).toBe(1);
    expect(summary.aurocAbove09).toBeCloseTo(2 / 3, 12);
    expect(summary.features).toBe(3);
  });

  it("without attribute labels there is no best attribute; mismatched rows are named", () => {
    const s = new FeatureStatisticsAccumulator(3, null, { range: [0, 1] });
    s.add(batchesOf(data, 3, 40)[0]);
    expect(s.bestAttribute(0)).toBeNull();
    const short = new FeatureStatisticsAccumulator(3, { ...table, files: table.files.slice(0, 5), values: table.values.slice(0, 10) });
    expect(() => short.add(batchesOf(data, 3, 40)[0])).toThrow(/row 5 has no attribute labels/);
  });
});

describe("rotation consistency helpers", () => {
  it("rotate180Nhwc reverses height and width, twice is the identity", () => {
    // One 2×3 RGB image, pixel (y, x) has channel values 10·y + x, +100, +200.
    const data = new Float32Array(2 * 3 * 3);
    for (let y = 0; y < 2; y++) for (let x = 0; x < 3; x++) for (let c = 0; c < 3; c++) data[(y * 3 + x) * 3 + c] = 10 * y + x + 100 * c;
    const turned = rotate180Nhwc(data, [1, 2, 3, 3]);
    expect(turned[0]).toBe(12); // (0, 0) shows the old (1, 2)
    expect(turned[(1 * 3 + 2) * 3 + 1]).toBe(100); // (1, 2) shows the old (0, 0), channel 1
    expect(Array.from(rotate180Nhwc(turned, [1, 2, 3, 3]))).toEqual(Array.from(data));
  });
  it("columnCorrelations is Pearson's r per column, NaN for a constant column", () => {
    const a = new Float32Array([1, 5, 2, 5, 3, 5, 4, 5]);
    const b = new Float32Array([2, 1, 4, 2, 6, 3, 8, 4]);
    const r = columnCorrelations(a, b, 4, 2);
    expect(r[0]).toBeCloseTo(1, 12);
    expect(r[1]).toBeNaN();
    expect(columnCorrelations(new Float32Array([1, 2, 3]), new Float32Array([3, 1, 2]), 3, 1)[0]).toBeCloseTo(-0.5, 12);
  });
});
