import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { chooseBackend, describeBackend, initBackend, nativeBackendLoad, tf, tidyValues, type BackendLoad, type BackendProbe } from "../lib/kernels/backend";
import { rewritesGradients } from "../lib/kernels/fast-gradients";
import { chooseEngine, describeEngine, type OrtLoad, type OrtModule } from "../lib/kernels/onnxruntime";
import { BACKEND_ORDER, parseBackendChoice, type BackendName } from "../lib/kernels/backend-names";
import { describeEngines } from "../lib/run/notebook-setup";
import { applyOverrides, defaultConfig } from "../lib/run/config";

function fake(name: BackendName, ok: boolean, log: string[]): BackendProbe {
  return {
    name,
    async load() {
      log.push(name);
      return ok ? { ok: true, details: `${name} works`, warnings: [] } : { ok: false, reason: `${name} missing` };
    },
  };
}

describe("backend selection", () => {
  it("auto takes the fastest backend that loads and says why faster ones were skipped", async () => {
    const log: string[] = [];
    const probes = [fake("cpu", true, log), fake("wasm", true, log), fake("tensorflow", false, log), fake("tensorflow-gpu", false, log)];
    const report = await chooseBackend("auto", probes);
    expect(report.name).toBe("wasm");
    expect(log).toEqual(["tensorflow-gpu", "tensorflow", "wasm"]);
    expect(report.skipped).toEqual([
      { name: "tensorflow-gpu", reason: "tensorflow-gpu missing" },
      { name: "tensorflow", reason: "tensorflow missing" },
    ]);
    expect(describeBackend(report)).toMatch(/^TF.js backend: wasm \(wasm works\)\n  not used: tensorflow-gpu: tensorflow-gpu missing/);
  });

  it("prefers the GPU package when it loads", async () => {
    const report = await chooseBackend("auto", BACKEND_ORDER.map((n) => fake(n, true, [])));
    expect(report.name).toBe("tensorflow-gpu");
    expect(report.skipped).toEqual([]);
  });

  it("a forced backend that fails is an error, never a silent fallback", async () => {
    const probes = BACKEND_ORDER.map((n) => fake(n, n !== "tensorflow", []));
    await expect(chooseBackend("tensorflow", probes)).rejects.toThrow(/tensorflow backend was asked for .* did not load: tensorflow missing/);
    expect((await chooseBackend("cpu", probes)).name).toBe("cpu");
  });

  it("fails with every reason when nothing loads", async () => {
    await expect(chooseBackend("auto", BACKEND_ORDER.map((n) => fake(n, false, [])))).rejects.toThrow(/wasm: wasm missing; cpu: cpu missing/);
  });

  it("a GPU package running on the CPU is reported loudly", () => {
    const cpuOnly = nativeBackendLoad("tensorflow-gpu", "@tensorflow/tfjs-node-gpu", false);
    expect(cpuOnly.ok && cpuOnly.warnings[0]).toMatch(/found NO GPU and fell back to the CPU/);
    const gpu = nativeBackendLoad("tensorflow-gpu", "@tensorflow/tfjs-node-gpu", true);
    expect(gpu.ok && gpu.warnings).toEqual([]);
  });

  it("parses choices and names the allowed values", () => {
    expect(parseBackendChoice(undefined)).toBe("auto");
    expect(parseBackendChoice(" wasm ")).toBe("wasm");
    expect(() => parseBackendChoice("gpu")).toThrow(/CELEBA_SAE_BACKEND="gpu" is not a backend: use one of auto, tensorflow-gpu/);
  });

  it("on this machine picks a real backend that computes, with WASM files from node_modules", async () => {
    const report = await initBackend();
    const { tf } = await import("../lib/kernels/backend");
    expect(tf.getBackend()).toBe(report.name === "tensorflow-gpu" ? "tensorflow" : report.name);
    expect(Array.from(tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync())).toEqual([11]);
    const faster = BACKEND_ORDER.slice(0, BACKEND_ORDER.indexOf(report.name));
    expect(report.skipped.map((s) => s.name)).toEqual(faster);
    if (report.name === "wasm") expect(report.details).toMatch(/SIMD on/);
  });

  it("CELEBA_SAE_BACKEND forces a backend in a fresh process", () => {
    const script = join(mkdtempSync(join(tmpdir(), "backend-")), "probe.mts");
    writeFileSync(script, `import { initBackend } from ${JSON.stringify(resolve("lib/kernels/backend.ts"))};\nconst r = await initBackend("wasm");\nconsole.log("BACKEND=" + r.name);\n`);
    const out = spawnSync("npx", ["tsx", script], { encoding: "utf8", env: { ...process.env, CELEBA_SAE_BACKEND: "cpu" } });
    expect(out.stdout).toContain("BACKEND=cpu");
    const bad = spawnSync("npx", ["tsx", script], { encoding: "utf8", env: { ...process.env, CELEBA_SAE_BACKEND: "tensorflow" } });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/tensorflow backend was asked for/);
  });
});

describe("tidyValues", () => {
  it("returns the tensor's values and frees every tensor it made", async () => {
    await initBackend();
    const before = tf.memory().numTensors;
    const values = tidyValues(() => tf.mul(tf.range(0, 4), tf.scalar(2)));
    expect(Array.from(values)).toEqual([0, 2, 4, 6]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("the engine of each heavy stage: the fastest that loads", () => {
  const ort = { InferenceSession: { create: () => Promise.reject(new Error("unused")) }, Tensor: class {}, env: {} } as unknown as OrtModule;
  const ortLoads = (): OrtLoad => ({ ok: true, ort, version: "1.30.0" });
  const ortMissing = (): OrtLoad => ({ ok: false, reason: "onnxruntime-node is not installed" });
  const probe = (name: BackendName, load: BackendLoad): BackendProbe => ({ name, load: async () => load });
  const missing = (name: BackendName): BackendProbe => probe(name, { ok: false, reason: `${name} is not installed` });
  const wasmOk = probe("wasm", { ok: true, details: "XNNPACK", warnings: [] });
  const cases: { name: string; probes: BackendProbe[]; ort: () => OrtLoad; backend: BackendName; engine: string; rewrites: boolean }[] = [
    {
      name: "GPU seen: TF.js on tensorflow-gpu, ONNX Runtime not even loaded",
      probes: [probe("tensorflow-gpu", nativeBackendLoad("tensorflow-gpu", "@tensorflow/tfjs-node-gpu", true)), wasmOk],
      ort: () => {
        throw new Error("must not be loaded");
      },
      backend: "tensorflow-gpu",
      engine: "TF.js tensorflow-gpu: it runs on the GPU, faster than ONNX Runtime on the CPU (finetune.engine is auto)",
      rewrites: false,
    },
    {
      name: "the GPU package loads without a device: ONNX Runtime on the CPU",
      probes: [probe("tensorflow-gpu", nativeBackendLoad("tensorflow-gpu", "@tensorflow/tfjs-node-gpu", false)), wasmOk],
      ort: ortLoads,
      backend: "tensorflow-gpu",
      engine: "onnxruntime-node 1.30.0 (CPU, 2 threads)",
      rewrites: false,
    },
    {
      name: "native CPU TF.js and ONNX Runtime: ONNX Runtime",
      probes: [missing("tensorflow-gpu"), probe("tensorflow", nativeBackendLoad("tensorflow", "@tensorflow/tfjs-node", false)), wasmOk],
      ort: ortLoads,
      backend: "tensorflow",
      engine: "onnxruntime-node 1.30.0 (CPU, 2 threads)",
      rewrites: false,
    },
    {
      name: "native CPU TF.js without ONNX Runtime: TF.js on tensorflow, its own gradients",
      probes: [missing("tensorflow-gpu"), probe("tensorflow", nativeBackendLoad("tensorflow", "@tensorflow/tfjs-node", false)), wasmOk],
      ort: ortMissing,
      backend: "tensorflow",
      engine: "TF.js tensorflow: onnxruntime-node is not installed",
      rewrites: false,
    },
    {
      name: "nothing native: TF.js on WASM with the gradient rewrites",
      probes: [missing("tensorflow-gpu"), missing("tensorflow"), wasmOk],
      ort: ortMissing,
      backend: "wasm",
      engine: "TF.js wasm: onnxruntime-node is not installed",
      rewrites: true,
    },
  ];
  it.each(cases)("$name", async (c) => {
    const report = await chooseBackend("auto", c.probes);
    expect(report.name).toBe(c.backend);
    const engine = chooseEngine("auto", c.ort, "finetune.engine", { backend: report.name, gpu: report.gpu });
    expect(describeEngine(engine, report.name, 2)).toBe(c.engine);
    expect(rewritesGradients(report.name, undefined)).toBe(c.rewrites);
  });

  it("a forced engine is used even where another would be faster", () => {
    const onGpu = { backend: "tensorflow-gpu", gpu: true };
    expect(chooseEngine("onnxruntime", ortLoads, "embed.engine", onGpu)).toMatchObject({ name: "onnxruntime" });
    expect(chooseEngine("tfjs", ortLoads, "embed.engine", { backend: "wasm", gpu: false })).toEqual({ name: "tfjs", why: "embed.engine is tfjs" });
  });
});

describe("the first cell's engine lines", () => {
  const report = (name: BackendName, gpu: boolean) => ({ name, details: "", gpu, warnings: [], skipped: [] });
  it("name the engine of fine-tuning, embedding and the SAE's training, each chosen by its setting", () => {
    const forced = applyOverrides(defaultConfig("t"), ["finetune.engine=tfjs", "embed.engine=tfjs", "sae.engine=tfjs"]);
    const lines = describeEngines(forced, report("wasm", false)).split("\n");
    expect(lines.slice(1, 4)).toEqual([
      "  fine-tuning (02): TF.js wasm: finetune.engine is tfjs",
      "  embedding (03):   TF.js wasm: embed.engine is tfjs",
      "  SAE (04):         TF.js wasm: sae.engine is tfjs",
    ]);
    expect(describeEngines(defaultConfig("t"), report("tensorflow-gpu", true))).toContain("  SAE (04):         TF.js tensorflow-gpu: it runs on the GPU, faster than ONNX Runtime on the CPU (sae.engine is auto)");
    const auto = describeEngines(defaultConfig("t"), report("wasm", false)).split("\n")[3];
    expect(auto).toMatch(/^ {2}SAE \(04\): {9}(onnxruntime-node \S+ \(CPU, \d+ threads?\)|TF\.js wasm: onnxruntime-node .*)$/);
  });
});
