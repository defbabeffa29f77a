// Which engine embeds: onnxruntime-node when it loads, TF.js otherwise (said why), an error naming the fix when
// "onnxruntime" is forced but missing; embedDataset through both engines gives the same vectors and writes
// resnet18.onnx beside the model. Missing or broken packages are simulated by injected loaders, not by uninstalling.

import { existsSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend, tf } from "../lib/kernels/backend";
import { applyOverrides, defaultConfig, saveRunConfig, type RunConfig } from "../lib/run/config";
import { loadImages, openRunDataset, prepareDataset } from "../lib/data/datasets";
import { createEmbedder, describeEmbedResult, embedBatch, embedDataset, embedImages, readFaceVectors } from "../lib/embed/embed";

import { chooseEngine, describeEngine, loadOnnxRuntime, type OrtLoad, type OrtModule } from "../lib/kernels/onnxruntime";
import { runDir, runFiles } from "../lib/run/files";
import { createResNet18, saveResNet18, type ResNet18 } from "../lib/model/resnet18";
import { maxAbsDiff } from "./numeric-helpers";

const notInstalled = (): OrtLoad => ({ ok: false, reason: "onnxruntime-node is not installed" });
const real = loadOnnxRuntime();

describe("loadOnnxRuntime", () => {
  it("says the package is not installed when require cannot find it, and what failed when it does not load", () => {
    const missing = (id: string): unknown => {
      throw Object.assign(new Error(`Cannot find module '${id}'\nRequire stack:\n- /x`), { code: "MODULE_NOT_FOUND" });
    };
    expect(loadOnnxRuntime(missing)).toEqual({ ok: false, reason: "onnxruntime-node is not installed" });
    const broken = (): unknown => {
      throw new Error("libonnxruntime.so.1: cannot open shared object file");
    };
    expect(loadOnnxRuntime(broken)).toEqual({ ok: false, reason: "onnxruntime-node does not load (libonnxruntime.so.1: cannot open shared object file)" });
    expect(loadOnnxRuntime(() => ({}))).toMatchObject({ ok: false, reason: expect.stringMatching(/no InferenceSession/) });
  });

  it.runIf(real.ok === true)("loads the installed package from the project, with its version", () => {
    expect(real).toMatchObject({ ok: true, version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
  });
});

describe("chooseEngine", () => {
  it("auto: ONNX Runtime when it loads, else TF.js saying why", () => {
    const fake = { InferenceSession: { create: () => Promise.reject(new Error("unused")) }, Tensor: class {}, env: {} } as unknown as OrtModule;
    const engine = chooseEngine("auto", () => ({ ok: true, ort: fake, version: "9.9.9" }));
    expect(engine).toMatchObject({ name: "onnxruntime", version: "9.9.9" });
    expect(describeEngine(engine, "wasm", 2)).toBe("onnxruntime-node 9.9.9 (CPU, 2 threads)");
    const fallback = chooseEngine("auto", notInstalled);
    expect(fallback).toEqual({ name: "tfjs", why: "onnxruntime-node is not installed" });
    expect(describeEngine(fallback, "wasm")).toBe("TF.js wasm: onnxruntime-node is not installed");
  });

  it("onnxruntime forced but missing: an error naming the fix; tfjs: never loads onnxruntime-node", () => {
    expect(() => chooseEngine("onnxruntime", notInstalled)).toThrow(
      /embed\.engine is "onnxruntime" but onnxruntime-node is not installed: install it with `npm install onnxruntime-node`/,
    );
    const never = (): OrtLoad => {
      throw new Error("must not be called");
    };
    expect(describeEngine(chooseEngine("tfjs", never), "wasm")).toBe("TF.js wasm: embed.engine is tfjs");
  });

  it("embed.engine is a config setting: auto by default, checked", () => {
    expect(defaultConfig().embed.engine).toBe("auto");
    expect(applyOverrides(defaultConfig(), ["embed.engine=tfjs"]).embed.engine).toBe("tfjs");
    expect(() => applyOverrides(defaultConfig(), ["embed.engine=torch"])).toThrow(/embed\.engine takes one of auto, onnxruntime, tfjs/);
  });
});

describe("createEmbedder", () => {
  let model: ResNet18;
  const batch = {
    indices: Int32Array.of(0, 1), files: [], shape: [2, 32, 32, 3] as [number, number, number, 3],
    data: Float32Array.from({ length: 2 * 32 * 32 * 3 }, (_, i) => ((i * 7919) % 1000) / 1000),
  };
  beforeAll(async () => {
    await initBackend();
    model = createResNet18({ width: 4, seed: 9 });
    return () => model.dispose();
  });

  it("falls back to TF.js (embedBatch itself) when onnxruntime-node is not installed", async () => {
    const embedder = await createEmbedder(model, "recommended", "auto", { loadOnnxRuntime: notInstalled });
    expect(embedder.engine).toBe("tfjs");
    expect(embedder.description).toBe(`TF.js ${tf.getBackend()}: onnxruntime-node is not installed`);
    expect(Array.from(await embedder.embed(batch))).toEqual(Array.from(embedBatch(model, batch, "recommended")));
    await embedder.close();
  });

  it("falls back to TF.js when onnxruntime-node loads but cannot run the model, unless it was forced", async () => {
    const failing = { InferenceSession: { create: () => Promise.reject(new Error("bad model")) }, Tensor: class {}, env: {} } as unknown as OrtModule;
    const load = (): OrtLoad => ({ ok: true, ort: failing, version: "1.2.3" });
    const embedder = await createEmbedder(model, "post", "auto", { loadOnnxRuntime: load });
    expect(embedder.description).toMatch(/^TF\.js \w+: onnxruntime-node 1\.2\.3 could not run the model \(bad model\)$/);
    await expect(createEmbedder(model, "post", "onnxruntime", { loadOnnxRuntime: load })).rejects.toThrow("bad model");
    await expect(createEmbedder(model, "post", "onnxruntime", { loadOnnxRuntime: notInstalled })).rejects.toThrow(/npm install onnxruntime-node/);
  });

  it.runIf(real.ok === true)("uses onnxruntime-node when it is installed, with the same vectors", async () => {
    const embedder = await createEmbedder(model, "post", "auto");
    expect(embedder.engine).toBe("onnxruntime");
    expect(embedder.description).toMatch(/^onnxruntime-node \d+\.\d+\.\d+ \(CPU, \d+ threads?\)$/);
    expect(maxAbsDiff(await embedder.embed(batch), embedBatch(model, batch, "post"))).toBeLessThan(1e-4);
    await embedder.close();
    await expect(embedder.embed(batch)).rejects.toThrow(/after close/);
  });
});

describe("embedDataset and embedImages by engine", () => {
  const run = `test-onnx-embed-${process.pid}`;
  let config: RunConfig;
  beforeAll(async () => {
    await initBackend();
    config = applyOverrides(defaultConfig(run), [
      "dataset=synthetic", "synthetic.count=6", "synthetic.identities=2", "imageSize=32", "embed.batchSize=4", "imageCache=false", "finetune.preset=recommended",
    ]);
    saveRunConfig(config);
    await prepareDataset(config);
    const model = createResNet18({ width: 4, seed: 4 });
    await saveResNet18(model, runFiles(run).model);
    model.dispose();
  }, 120_000);
  afterAll(() => rmSync(runDir(run), { recursive: true, force: true }));

  const fresh = (): void => rmSync(`${runDir(run)}/face_vectors.json`, { force: true });

  it("a forced but missing onnxruntime-node stops before anything is written", async () => {
    const forced = applyOverrides(config, ["embed.engine=onnxruntime"]);
    const before = tf.memory().numTensors;
    await expect(embedDataset(forced, { progress: "silent", loadOnnxRuntime: notInstalled })).rejects.toThrow(/npm install onnxruntime-node/);
    expect(tf.memory().numTensors).toBe(before);
    expect(existsSync(`${runDir(run)}/face_vectors.npy`)).toBe(false);
  });

  it("TF.js without onnxruntime-node and ONNX Runtime with it write the same vectors; the ONNX file is kept", async () => {
    const dataset = await openRunDataset(config);
    const images = await loadImages(dataset, [...Array(6).keys()], config);
    const model = createResNet18({ width: 4, seed: 4 });
    const expected = embedBatch(model, images, "recommended");

    const viaTfjs = await embedDataset(config, { progress: "silent", loadOnnxRuntime: notInstalled });
    expect(viaTfjs).toMatchObject({ rows: 6, alreadyDone: false, onnxPath: null, engine: `TF.js ${tf.getBackend()}: onnxruntime-node is not installed` });
    expect(describeEmbedResult(viaTfjs)).toContain("Embedded by TF.js");
    expect(maxAbsDiff((await readFaceVectors(run)).vectors, expected)).toBeLessThan(1e-4);
    const sample = await embedImages(model, dataset, [4, 1], config, { batchSize: 4, preset: "recommended", progress: "silent", loadOnnxRuntime: notInstalled });
    expect(maxAbsDiff(sample, [...expected.subarray(4 * 32, 5 * 32), ...expected.subarray(32, 64)])).toBeLessThan(1e-6);

    if (real.ok === true) {
      fresh();
      const before = tf.memory().numTensors;
      const viaOrt = await embedDataset(config, { progress: "silent" });
      expect(tf.memory().numTensors).toBe(before);
      expect(viaOrt.engine).toMatch(/^onnxruntime-node /);
      expect(viaOrt.onnxPath).toBe(runFiles(run).onnxModel);
      expect(existsSync(runFiles(run).onnxModel)).toBe(true);
      expect(describeEmbedResult(viaOrt)).toMatch(/Embedded by onnxruntime-node[\s\S]*resnet18\.onnx/);
      expect(maxAbsDiff((await readFaceVectors(run)).vectors, expected)).toBeLessThan(1e-4);
      const again = await embedDataset(config, { progress: "silent" });
      expect(again).toMatchObject({ alreadyDone: true, engine: viaOrt.engine, onnxPath: runFiles(run).onnxModel });
      expect(describeEmbedResult(again)).toContain(`Embedded earlier by ${viaOrt.engine}`);
      const sampleOrt = await embedImages(model, dataset, [4, 1], config, { batchSize: 4, preset: "recommended", progress: "silent" });
      expect(maxAbsDiff(sampleOrt, sample)).toBeLessThan(1e-4);
    }
    model.dispose();
  });
});
