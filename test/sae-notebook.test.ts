// Notebook 04-sae executed headless by `npm run notebooks` on a tiny fabricated run: 600 face vectors with planted
// sparse structure stand in for notebook 03's output.

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend, tf } from "../lib/kernels/backend";
import { applyOverrides, defaultConfig, saveRunConfig } from "../lib/run/config";
import { readNpy, writeNpy } from "../lib/formats/npy";
import { projectRoot } from "../lib/util/project";
import { runDir, runFiles } from "../lib/run/files";
import { loadSae } from "../lib/sae/sae";
import { loadFeatureStats } from "../lib/sae/features";
import { joinText, outputsOf, readNotebook, streamText } from "./notebook-helpers";

const run = `test-sae-${process.pid}`;
const ROWS = 600;
const DIM = 512;

/** Non-negative rows, each a sum of 4 of 64 random non-negative directions (like pooled ResNet features). */
function fabricatedVectors(): Float32Array {
  let s = 12345;
  const random = (): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
  const gaussian = (): number => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const atoms = Float32Array.from({ length: 64 * DIM }, () => Math.abs(gaussian()));
  const data = new Float32Array(ROWS * DIM);
  for (let r = 0; r < ROWS; r++) {
    for (let k = 0; k < 4; k++) {
      const a = Math.floor(random() * 64);
      const c = 0.5 + random();
      for (let j = 0; j < DIM; j++) data[r * DIM + j] += 0.1 * c * atoms[a * DIM + j];
    }
  }
  return data;
}

beforeAll(async () => {
  await initBackend();
  saveRunConfig(applyOverrides(defaultConfig(run), []));
  await writeNpy(runFiles(run).faceVectors, fabricatedVectors(), [ROWS, DIM]);
});
afterAll(() => {
  if (!process.env.KEEP_TEST_OUTPUT) rmSync(runDir(run), { recursive: true, force: true });
});

describe("notebook 04-sae", () => {
  it("trains, saves, sweeps and extracts on a tiny fabricated run, headless", async () => {
    const r = spawnSync(
      "npx",
      ["tsx", "scripts/run-notebooks.ts", "--run", run, "--only", "04", "--set", "sae.epochs=2", "--set", "sae.sweep=0.05,0.3", "--set", "sae.preset=recommended"],
      { cwd: projectRoot(), encoding: "utf8", timeout: 300_000 },
    );
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    const nb = readNotebook(join(runDir(run), "notebooks", "04-sae.ipynb"));
    const outputs = outputsOf(nb);
    expect(outputs.filter((o) => o.output_type === "error")).toEqual([]);
    const text = streamText(nb);
    expect(text).toContain(`runs/${run}/face_vectors.npy: ${ROWS} faces × ${DIM} values`);
    expect(text).toMatch(/recommended preset, relu, 512 features, 2 epochs\./);
    expect(text).toMatch(/sae_features\.npy written/);
    // Figures carry a PNG for the exported post, tables carry HTML; the progress bars end at 100 %.
    const pngs = outputs.filter((o) => o.data?.["image/png"] !== undefined);
    expect(pngs.length).toBe(5); // 3 metric curves, the density histogram, the sweep
    const html = outputs.filter((o) => o.data?.["text/html"] !== undefined).map((o) => joinText(o.data?.["text/html"] as string | string[]));
    expect(html.some((h) => h.includes("Per-epoch metrics"))).toBe(true);
    expect(html.some((h) => /The sweep[\s\S]*λ = 0\.05[\s\S]*λ = 0\.3[\s\S]*this run \(recommended\)[\s\S]*the post&#39;s recipe|the post's recipe/.test(h))).toBe(true);
    const bars = outputs.map((o) => joinText(o.data?.["text/plain"] as string | string[] | undefined)).filter((t) => t.startsWith("Training sparse autoencoder"));
    expect(bars).toHaveLength(2);
    for (const bar of bars) expect(bar).toMatch(/100%\|█+\| 600\/600 .*loss_sae=.*recon=.*compl=/);

    // What it leaves behind loads, and agrees with itself.
    const sae = await loadSae(runDir(run));
    expect(sae.meta).toMatchObject({ preset: "recommended", architecture: "relu", inputDim: DIM, dictionarySize: 512 });
    expect(sae.meta.metrics?.epochs).toBe(2);
    expect(sae.meta.metrics?.explainedVariance).toBeGreaterThan(0.2);
    const stats = await loadFeatureStats(runDir(run));
    expect(stats.rows).toBe(ROWS);
    expect(stats.topK).toBe(64);
    const dense = await readNpy(join(runDir(run), "sae_features.npy"));
    expect(dense.shape).toEqual([ROWS, 512]);
    const vectors = await readNpy(runFiles(run).faceVectors);
    const f = tf.tidy(() => sae.encode(tf.tensor2d(vectors.data.subarray(0, 3 * DIM) as Float32Array, [3, DIM])).dataSync());
    const stored = dense.data.subarray(0, 3 * 512);
    let worst = 0;
    for (let i = 0; i < f.length; i++) worst = Math.max(worst, Math.abs(f[i] - stored[i]));
    expect(worst).toBeLessThan(1e-4);
    const busiest = stats.density.indexOf(Math.max(...stats.density));
    expect(stats.top[busiest].rows.length).toBe(Math.min(64, Math.round(stats.density[busiest] * ROWS)));
    expect(existsSync(join(runDir(run), "sae.safetensors.tmp"))).toBe(false);
    expect(JSON.parse(readFileSync(join(runDir(run), "sae.json"), "utf8")).inputScaling.kind).toBe("fixed-scale");
    sae.dispose();
  }, 300_000);
});
