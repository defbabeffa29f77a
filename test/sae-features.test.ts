import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend, tf } from "../lib/kernels/backend";
import { readNpy, writeNpy } from "../lib/formats/npy";
import { createSae, presetTraining, type SaeModel } from "../lib/sae/sae";
import { readFaceVectorsFile } from "../lib/embed/embed";
import { extractFeatures, loadFeatureStats, saveFeatureStats } from "../lib/sae/features";
import { RUN_FILE_NAMES } from "../lib/run/files";

const dir = mkdtempSync(join(tmpdir(), "sae-features-test-"));
beforeAll(async () => {
  await initBackend();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ROWS = 203;
const DIM = 8;
const FEATURES = 12;

function vectors(): Float32Array {
  return Float32Array.from({ length: ROWS * DIM }, (_, i) => Math.abs(Math.sin(i * 12.9898) * 3));
}

function model(): SaeModel {
  const sae = createSae({ preset: "post", architecture: "relu", inputDim: DIM, dictionarySize: FEATURES, training: { ...presetTraining("post", "relu"), batchSize: 8, seed: 5 } });
  sae.params.biasEncoder.assign(tf.fill([FEATURES], -3));
  return sae;
}

describe("extractFeatures", () => {
  it("streams a .npy in batches and keeps the same top activations, densities and L0 as the full matrix", async () => {
    const data = vectors();
    const path = join(dir, "face_vectors.npy");
    await writeNpy(path, data, [ROWS, DIM]);
    const sae = model();
    const full = tf.tidy(() => sae.encode(tf.tensor2d(data, [ROWS, DIM])).arraySync());
    const stats = await extractFeatures(sae, path, { batchSize: 50, topK: 5, denseDir: dir, progress: "silent" });
    expect(stats.rows).toBe(ROWS);
    let active = 0;
    for (let j = 0; j < FEATURES; j++) {
      const column = full.map((row, r) => ({ r, v: row[j] })).filter((e) => e.v > 0);
      active += column.length;
      expect(stats.density[j]).toBeCloseTo(column.length / ROWS, 12);
      const best = [...column].sort((a, b) => b.v - a.v || a.r - b.r).slice(0, 5);
      expect(stats.top[j].rows).toEqual(best.map((e) => e.r));
      expect(stats.top[j].values.map((v) => Math.fround(v))).toEqual(best.map((e) => Math.fround(e.v)));
      // The post's ranking: each row divided by its L2 norm (torch.nn.functional.normalize(feats)) first.
      const normed = column.map((e) => ({ r: e.r, v: e.v / Math.hypot(...full[e.r]) })).sort((a, b) => b.v - a.v || a.r - b.r).slice(0, 5);
      expect(stats.topNormalised[j].rows).toEqual(normed.map((e) => e.r));
    }
    expect(active).toBeGreaterThan(0);
    expect(stats.l0).toBeCloseTo(active / ROWS, 10);
    // Small enough: the dense matrix is written too, in listing order.
    expect(stats.denseFile.written).toBe(true);
    const dense = await readNpy(join(dir, RUN_FILE_NAMES.saeFeatures));
    expect(dense.shape).toEqual([ROWS, FEATURES]);
    expect(Array.from(dense.data.subarray(FEATURES * 17, FEATURES * 18))).toEqual(full[17].map((v) => Math.fround(v)));
    // The in-memory source gives the same answer.
    const again = await extractFeatures(sae, { data, rows: ROWS, cols: DIM }, { batchSize: 64, topK: 5, progress: "silent" });
    expect(again.top).toEqual(stats.top);
    expect(again.denseFile.written).toBe(false);
    await saveFeatureStats(stats, dir);
    expect(await loadFeatureStats(dir)).toEqual(stats);
    sae.dispose();
  });

  it("skips the dense file when it would be too big and says why", async () => {
    const sae = model();
    const stats = await extractFeatures(sae, { data: vectors(), rows: ROWS, cols: DIM }, { denseDir: join(dir, "none"), denseLimitBytes: 1000, progress: "silent" });
    expect(stats.denseFile).toEqual({ written: false, reason: expect.stringMatching(/would exceed the 0 MiB limit/) });
    sae.dispose();
  });

  it("names the file and the fix for a missing file, a wrong width or a NaN row", async () => {
    await expect(readFaceVectorsFile(join(dir, "missing.npy"))).rejects.toThrow(/does not exist: run notebook 03-embed first/);
    const sae = model();
    const wide = join(dir, "wide.npy");
    await writeNpy(wide, new Float32Array(3 * 9), [3, 9]);
    await expect(extractFeatures(sae, wide, { progress: "silent" })).rejects.toThrow(/has 9 values per row but the SAE takes 8/);
    const nan = vectors();
    nan[150 * DIM + 2] = Number.NaN;
    const nanPath = join(dir, "nan.npy");
    await writeNpy(nanPath, nan, [ROWS, DIM]);
    await expect(readFaceVectorsFile(nanPath)).rejects.toThrow(/row 150 has a NaN value/);
    await expect(extractFeatures(sae, nanPath, { batchSize: 64, progress: "silent" })).rejects.toThrow(/row 150 has a NaN value/);
    await expect(loadFeatureStats(join(dir, "nowhere"))).rejects.toThrow(/run notebook 04-sae first/);
    sae.dispose();
  });
});
