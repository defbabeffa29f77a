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
import { loadFindings } from "../lib/run/findings";
import { joinText, outputsOf, readNotebook, streamText } from "./notebook-helpers";

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

const runs: string[] = [];
async function fabricatedRun(name: string): Promise<string> {
  const run = `test-sae-${name}-${process.pid}`;
  runs.push(run);
  saveRunConfig(applyOverrides(defaultConfig(run), []));
  await writeNpy(runFiles(run).faceVectors, fabricatedVectors(), [ROWS, DIM]);
  return run;
}

function runNotebook04(run: string, set: string[]): void {
  const r = spawnSync("npx", ["tsx", "scripts/run-notebooks.ts", "--run", run, "--only", "04", ...set.flatMap((s) => ["--set", s])], { cwd: projectRoot(), encoding: "utf8", timeout: 600_000 });
  expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
}

beforeAll(async () => {
  await initBackend();
});
afterAll(() => {
  if (!process.env.KEEP_TEST_OUTPUT) for (const run of runs) rmSync(runDir(run), { recursive: true, force: true });
});

const htmlOf = (outputs: ReturnType<typeof outputsOf>): string[] => outputs.filter((o) => o.data?.["text/html"] !== undefined).map((o) => joinText(o.data?.["text/html"] as string | string[]));

describe("notebook 04-sae", () => {
  it("trains the post's SAE and the recommended one beside it, compares them with a chance row, sweeps, extracts and says what it found", async () => {
    const run = await fabricatedRun("post");
    runNotebook04(run, ["sae.epochs=2", "sae.trainingRows=20000", "sae.sweep=0.05,0.3"]);
    const nb = readNotebook(join(runDir(run), "notebooks", "04-sae.ipynb"));
    const outputs = outputsOf(nb);
    expect(outputs.filter((o) => o.output_type === "error")).toEqual([]);
    const text = streamText(nb);
    expect(text).toMatch(new RegExp(`runs/${run}/face_vectors\\.npy: ${ROWS} faces × ${DIM} values \\(sha256 [0-9a-f]{12}…\\)`));
    expect(text).toMatch(/post preset, relu, 512 features; budget 2 epochs\./);
    expect(text).toMatch(/recommended preset, topk \(k = 32\), 512 features; budget at most 20,000 training rows\./);
    expect(text).toMatch(/sae_features\.npy written/);
    // Which engine trained each SAE (sae.engine=auto: onnxruntime-node where it loads), as the first cell foretold.
    const engine = /SAE \(04\): +(.+)/.exec(text)?.[1];
    expect(engine).toMatch(/^(onnxruntime-node \S+ \(CPU, \d+ threads?\)|TF\.js \S+: .+)$/);
    for (const label of ["the post's SAE", "the recommended SAE"]) expect(text).toContain(`Trained ${label} on ${engine}.`);
    const html = htmlOf(outputs);
    expect(html.some((h) => /The SAEs being trained[\s\S]*the post&#39;s SAE[\s\S]*30 epochs|2 epochs/.test(h))).toBe(true);
    const comparison = html.find((h) => h.includes("The run&#39;s SAEs, measured the same way") || h.includes("The run's SAEs, measured the same way"));
    expect(comparison).toBeDefined();
    expect(comparison).toMatch(/the post[\s\S]*the recommended SAE[\s\S]*chance: the mean face, no features/);
    expect(html.some((h) => /The sweep[\s\S]*λ = 0\.05[\s\S]*λ = 0\.3[\s\S]*this run \(post\)/.test(h))).toBe(true);
    // Curves of both SAEs on the evaluation faces, two density histograms and the sweep.
    const figures = outputs.map((o) => joinText(o.data?.["text/plain"] as string | string[] | undefined)).filter((t) => t.startsWith("Figure"));
    expect(figures.filter((f) => f.includes("Explained variance on the evaluation faces"))).toHaveLength(1);
    expect(figures.find((f) => f.includes("Explained variance on the evaluation faces"))).toMatch(/the post's SAE[\s\S]*the recommended SAE/);
    expect(outputs.filter((o) => o.data?.["image/png"] !== undefined)).toHaveLength(6);
    // What we found, generated and saved.
    const markdown = outputs.map((o) => joinText(o.data?.["text/markdown"] as string | string[] | undefined)).join("");
    expect(markdown).toMatch(/The post's SAE (does not reconstruct|reconstructs) its input/);
    expect(markdown).toMatch(/The recommended SAE (meets|misses) the bar/);
    const findings = loadFindings(run, "04-sae");
    expect(findings?.sentences.join(" ")).toBe(markdown);
    expect(typeof findings?.measures["sparse-recommended explained variance"]).toBe("number");

    // Both SAEs load and record what they were made from.
    const post = await loadSae(runDir(run));
    const beside = await loadSae(runFiles(run).saeBeside.dir);
    expect(post.meta).toMatchObject({ preset: "post", architecture: "relu", metrics: { steps: 4, stopped: "budget", measuredOn: "evaluation rows (trained on)" } });
    expect(beside.meta).toMatchObject({ preset: "recommended", architecture: "topk", k: 32, metrics: { steps: 40, measuredOn: "held-out rows" } });
    expect(beside.meta.trainedOn?.sha256).toBe(post.meta.trainedOn?.sha256);
    expect(existsSync(runFiles(run).saeBeside.featureStats)).toBe(true);
    post.dispose();
    beside.dispose();
  }, 600_000);

  it("with sae.preset=recommended and sae.engine=tfjs trains one SAE on TF.js, saves, extracts and agrees with itself", async () => {
    const run = await fabricatedRun("recommended");
    runNotebook04(run, ["sae.epochs=2", "sae.preset=recommended", "sae.engine=tfjs"]);
    const nb = readNotebook(join(runDir(run), "notebooks", "04-sae.ipynb"));
    const outputs = outputsOf(nb);
    expect(outputs.filter((o) => o.output_type === "error")).toEqual([]);
    const text = streamText(nb);
    expect(text).toMatch(/recommended preset, topk \(k = 32\), 512 features; budget 2 epochs\./);
    expect(text).toMatch(/No sweep in this run/);
    expect(text).toMatch(/SAE \(04\): +TF\.js \S+: sae\.engine is tfjs\n/);
    expect(text).toMatch(/Trained the recommended SAE on TF\.js \S+: sae\.engine is tfjs\./);
    expect(existsSync(runFiles(run).saeBeside.meta)).toBe(false);
    // One progress bar per epoch over the training faces (the held-out tenth left out), as the post's tqdm.
    const bars = outputs.map((o) => joinText(o.data?.["text/plain"] as string | string[] | undefined)).filter((t) => t.startsWith("Training the recommended SAE"));
    expect(bars).toHaveLength(2);
    for (const bar of bars) expect(bar).toMatch(/100%\|█+\| 540\/540 .*loss_sae=.*recon=.*compl=/);

    const sae = await loadSae(runDir(run));
    expect(sae.meta).toMatchObject({ preset: "recommended", architecture: "topk", inputDim: DIM, dictionarySize: 512 });
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
  }, 600_000);
});
