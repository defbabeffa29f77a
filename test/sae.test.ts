import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend, tf } from "../lib/kernels/backend";
import { applyOverrides, defaultConfig } from "../lib/run/config";
import { createRunSae, createSae, loadSae, loadSaeModel, presetTraining, resolveArchitecture, resolveSaeTraining, saveSae, type SaeModel } from "../lib/sae/sae";
import { trainingPlan } from "../lib/sae/train";
import { RUN_FILE_NAMES } from "../lib/run/files";

const dir = mkdtempSync(join(tmpdir(), "sae-test-"));

beforeAll(async () => {
  await initBackend();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function small(preset: "post" | "recommended", architecture: "relu" | "topk" = "relu"): SaeModel {
  return createSae({ preset, architecture, inputDim: 6, dictionarySize: 10, k: 3, training: { ...presetTraining(preset, architecture), batchSize: 4, seed: 7 } });
}

describe("presets", () => {
  it("post: the post's hyper-parameters and N(0, 1) weights", () => {
    const t = resolveSaeTraining(defaultConfig().sae, 0);
    expect(t).toMatchObject({ l1: 0.1, learningRate: 1e-5, weightDecay: 1e-4, epochs: 30, batchSize: 512, loss: "post-l2", unitNormDecoder: false, auxK: 0 });
    const sae = createSae({ preset: "post", architecture: "relu", inputDim: 64, dictionarySize: 128, training: t });
    const we = sae.params.weightEncoder.dataSync() as Float32Array;
    const mean = we.reduce((a, b) => a + b, 0) / we.length;
    const variance = we.reduce((a, b) => a + (b - mean) ** 2, 0) / we.length;
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
    expect(Array.from(sae.params.biasEncoder.dataSync())).toEqual(new Array(128).fill(0));
    sae.dispose();
  });

  it("recommended: unit decoder rows, encoder = decoder transposed; config values override the preset", () => {
    const config = { ...defaultConfig().sae, preset: "recommended" as const, learningRate: 0.01 };
    const t = resolveSaeTraining(config, 3);
    expect(t).toMatchObject({ learningRate: 0.01, loss: "mse", unitNormDecoder: true, init: "tied-unit", seed: 3 });
    const sae = createSae({ preset: "recommended", architecture: "relu", inputDim: 6, dictionarySize: 10, training: t });
    const norms = tf.tidy(() => tf.norm(sae.params.weightDecoder, 2, 1).dataSync());
    for (const n of norms) expect(n).toBeCloseTo(1, 5);
    const transposed = tf.tidy(() => sae.params.weightDecoder.transpose().dataSync());
    expect(Array.from(sae.params.weightEncoder.dataSync())).toEqual(Array.from(transposed));
    sae.dispose();
  });
});

describe("the recommended budget", () => {
  it("counts training rows, not epochs, holds out, stops early and keeps the best; sae.epochs or sae.trainingRows override", () => {
    const base = { ...defaultConfig().sae, preset: "recommended" as const };
    expect(resolveArchitecture(base)).toBe("topk");
    expect(resolveArchitecture(defaultConfig().sae)).toBe("relu");
    const t = resolveSaeTraining(base, 0);
    expect(t).toMatchObject({ epochs: null, trainingRows: 1_000_000, holdOut: true, evalEvery: 50, keepBest: true, l1: 0 });
    expect(t.earlyStopping).toEqual({ patience: 4, minImprovement: 0.005, minSteps: 500 });
    // The step size follows the dictionary: 2e-3 at 512 features, 1/√features beyond.
    expect(t.learningRate).toBeCloseTo(2e-3, 12);
    expect(resolveSaeTraining({ ...base, dictionarySize: 2048 }, 0).learningRate).toBeCloseTo(1e-3, 12);
    expect(resolveSaeTraining({ ...base, epochs: 3 }, 0)).toMatchObject({ epochs: 3, trainingRows: null });
    expect(resolveSaeTraining({ ...base, trainingRows: 5000 }, 0)).toMatchObject({ epochs: null, trainingRows: 5000 });
    // sae.trainingRows is the recommended recipe's budget: the post's recipe keeps its epochs.
    expect(resolveSaeTraining({ ...defaultConfig().sae, trainingRows: 5000 }, 0)).toMatchObject({ epochs: 30, trainingRows: null });
    // The post keeps its 30 epochs over every face and its last weights.
    expect(resolveSaeTraining(defaultConfig().sae, 0)).toMatchObject({ epochs: 30, trainingRows: null, holdOut: false, evalEvery: null, earlyStopping: null, keepBest: false });
    // The same budget in steps whatever the dataset's size.
    expect(trainingPlan({ ...t, batchSize: 512 }, 5000).maxSteps).toBe(trainingPlan({ ...t, batchSize: 512 }, 200_000).maxSteps);
    expect(trainingPlan({ ...t, batchSize: 512 }, 5000)).toMatchObject({ trainingRows: 4500, evaluationRows: 500, stepsPerEpoch: 9, maxSteps: 1954, evalEvery: 50 });
    expect(trainingPlan({ ...resolveSaeTraining(defaultConfig().sae, 0) }, 5000)).toMatchObject({ trainingRows: 5000, evaluationRows: 500, maxSteps: 300, evalEvery: 10 });
  });
});

describe("initialisation", () => {
  it("is the same for the same seed, 0 included (TF.js would draw from Math.random() for a seed of 0)", () => {
    for (const preset of ["post", "recommended"] as const) {
      const make = (seed: number): SaeModel => createSae({ preset, architecture: "relu", inputDim: 6, dictionarySize: 10, training: { ...presetTraining(preset, "relu"), batchSize: 4, seed } });
      const [a, b, c] = [make(0), make(0), make(1)];
      expect(Array.from(a.params.weightEncoder.dataSync())).toEqual(Array.from(b.params.weightEncoder.dataSync()));
      expect(Array.from(a.params.weightDecoder.dataSync())).toEqual(Array.from(b.params.weightDecoder.dataSync()));
      expect(Array.from(a.params.weightEncoder.dataSync())).not.toEqual(Array.from(c.params.weightEncoder.dataSync()));
      for (const m of [a, b, c]) m.dispose();
    }
  });
});

describe("createRunSae", () => {
  it("builds the SAE a run's config asks for", () => {
    const config = applyOverrides(defaultConfig("x"), ["sae.preset=recommended", "sae.architecture=topk", "sae.k=4", "sae.dictionarySize=16", "blindTest.features=0-15", "sae.epochs=3", "seed=9"]);
    const sae = createRunSae(config, 8);
    expect(sae.meta).toMatchObject({ preset: "recommended", architecture: "topk", k: 4, inputDim: 8, dictionarySize: 16, inputScaling: { kind: "fixed-scale" } });
    expect(sae.meta.training).toMatchObject({ epochs: 3, seed: 9, l1: 0, auxK: 16 });
    sae.dispose();
  });
});

describe("encode and decode", () => {
  it("post: encode takes raw vectors (no normalisation) as the post's extraction loop", () => {
    const sae = small("post");
    const x = tf.tensor2d([[1, 2, 3, 4, 5, 6], [0, 0, 1, 0, 0, 0]]);
    const f = sae.encode(x);
    const p = sae.params;
    const expected = tf.tidy(() => tf.relu(tf.add(tf.matMul(tf.sub(x, p.biasDecoder), p.weightEncoder), p.biasEncoder)));
    expect(Array.from(f.dataSync())).toEqual(Array.from(expected.dataSync()));
    tf.dispose([x, f, expected]);
    sae.dispose();
  });

  it("topk keeps exactly k active features per row; recommended encode scales and decode unscales", () => {
    const sae = small("recommended", "topk");
    sae.meta = { ...sae.meta, inputScaling: { kind: "fixed-scale", scale: 2 } };
    const x = tf.tensor2d([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1], [1, 1, 1, 1, 1, 1]]);
    const f = sae.encode(x);
    const rows = f.arraySync();
    for (const row of rows) expect(row.filter((v) => v > 0).length).toBeLessThanOrEqual(3);
    expect(rows.some((row) => row.filter((v) => v > 0).length === 3)).toBe(true);
    // decode(encode(x)) = (f W_d + b_d) / scale
    const xhat = sae.decode(f);
    const expected = tf.tidy(() => tf.div(tf.add(tf.matMul(f, sae.params.weightDecoder), sae.params.biasDecoder), 2));
    expect(Array.from(xhat.dataSync())).toEqual(Array.from(expected.dataSync()));
    tf.dispose([x, f, xhat, expected]);
    sae.dispose();
  });

  it("names the fix when the vector width is wrong", () => {
    const sae = small("post");
    const x = tf.zeros([2, 5]) as tf.Tensor2D;
    expect(() => sae.encode(x)).toThrow(/got rows of 5 values, the SAE takes 6/);
    x.dispose();
    sae.dispose();
  });
});

describe("sae.safetensors + sae.json", () => {
  it("round-trips weights and meta exactly", async () => {
    const sae = small("recommended", "topk");
    sae.meta = { ...sae.meta, inputScaling: { kind: "fixed-scale", scale: 1.25 }, metrics: { steps: 4, epochs: 2, keptStep: 3, stopped: "plateau", mse: 0.5, explainedVariance: 0.8, l0: 3, measuredOn: "held-out rows", dead: 1, dense: 0 } };
    const out = join(dir, "roundtrip");
    await saveSae(sae, out);
    const loaded = await loadSaeModel(out);
    expect(loaded.meta).toEqual(sae.meta);
    for (const [name, v] of Object.entries(sae.named())) expect(Array.from(loaded.named()[name as keyof ReturnType<typeof sae.named>].dataSync())).toEqual(Array.from(v.dataSync()));
    const x = tf.randomNormal([4, 6], 0, 1, "float32", 1) as tf.Tensor2D;
    const a = sae.encode(x);
    const b = loaded.encode(x);
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    tf.dispose([x, a, b]);
    // The file is standard safetensors: 8-byte header length, JSON header with the post's key names.
    const bytes = readFileSync(join(out, RUN_FILE_NAMES.saeWeights));
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect(headerLength % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8")) as Record<string, { dtype: string; shape: number[] }>;
    expect(header.weight_encoder).toMatchObject({ dtype: "F32", shape: [6, 10] });
    expect(header.weight_decoder).toMatchObject({ dtype: "F32", shape: [10, 6] });
    expect(bytes.length).toBe(8 + headerLength + 4 * (60 + 10 + 60 + 6));
    loaded.dispose();
    sae.dispose();
  });

  it("gives clear errors for a missing, corrupt or mismatched file", async () => {
    await expect(loadSae(join(dir, "nothing-here"))).rejects.toThrow(/sae\.json does not exist: train the SAE first \(notebook 04-sae/);
    const sae = small("post");
    const out = join(dir, "broken");
    await saveSae(sae, out);
    const meta = JSON.parse(readFileSync(join(out, RUN_FILE_NAMES.saeMeta), "utf8")) as { dictionarySize: number };
    writeFileSync(join(out, RUN_FILE_NAMES.saeMeta), JSON.stringify({ ...meta, dictionarySize: 11 }));
    await expect(loadSae(out)).rejects.toThrow(/"weight_encoder" has shape \[6, 10\] but sae\.json says \[6, 11\]/);
    writeFileSync(join(out, RUN_FILE_NAMES.saeMeta), JSON.stringify(meta));
    writeFileSync(join(out, RUN_FILE_NAMES.saeWeights), Buffer.from([1, 2, 3]));
    await expect(loadSae(out)).rejects.toThrow(/sae\.safetensors: .*re-run notebook 04-sae/);
    writeFileSync(join(out, RUN_FILE_NAMES.saeMeta), "{ nope");
    await expect(loadSae(out)).rejects.toThrow(/sae\.json is not valid JSON/);
    sae.dispose();
  });
});
