// lib/model/initial-weights: finetune.weights resolved to the Hub's ImageNet weights (against the stand-in Hub of
// test/hub-server.ts), a file, or random initialisation, recorded once per run and loaded with the same parity path
// as a file given by its path.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyOverrides, defaultConfig, type RunConfig } from "../lib/run/config";
import { runDir, runFiles } from "../lib/run/files";
import { initBackend } from "../lib/kernels/backend";
import { RESNET18_IMAGENET_REPO, SAFETENSORS_FILENAME } from "../lib/model/hub-weights";
import { describeInitialWeights, initialModel, initialWeightsNote, resolveInitialWeights } from "../lib/model/initial-weights";
import { createResNet18, loadResNet18, saveResNet18, type ResNet18 } from "../lib/model/resnet18";
import { fakeCommit, sha256, startFakeHub, type FakeHub } from "./hub-server";

const run = `test-initial-weights-${process.pid}`;
const MAIN = fakeCommit("main");
let dir: string;
let weightsFile: string;
let bytes: Buffer;
let hub: FakeHub;

beforeAll(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), "initial-weights-"));
  weightsFile = join(dir, "narrow-resnet18.safetensors");
  const model = createResNet18({ width: 8, seed: 5 });
  await saveResNet18(model, weightsFile);
  model.dispose();
  bytes = readFileSync(weightsFile);
  hub = await startFakeHub({ repos: { [RESNET18_IMAGENET_REPO]: { branches: { main: MAIN }, files: { [MAIN]: { [SAFETENSORS_FILENAME]: bytes } } } } });
});

afterAll(async () => {
  await hub.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(runDir(run), { recursive: true, force: true });
});

const configWith = (...settings: string[]): RunConfig => applyOverrides(defaultConfig(run), settings);
const fresh = (): void => rmSync(runFiles(run).initialWeights, { force: true });
const online = () => ({ HF_HOME: join(dir, "hf-home"), HF_ENDPOINT: hub.url });

function sameWeights(a: ResNet18, b: ResNet18): boolean {
  const sa = a.stateDict();
  const sb = b.stateDict();
  try {
    return [...sa.keys()].every((k) => {
      const x = sa.get(k)!.dataSync();
      const y = sb.get(k)!.dataSync();
      return x.length === y.length && x.every((v, i) => v === y[i]);
    });
  } finally {
    for (const t of [...sa.values(), ...sb.values()]) t.dispose();
  }
}

describe("finetune.weights", () => {
  it("defaults to auto", () => {
    expect(defaultConfig("x").finetune.weights).toBe("auto");
    expect(defaultConfig("x").finetune.weightsRevision).toBe("");
  });

  it("auto fetches timm/resnet18.tv_in1k from the Hub, records revision and SHA-256, and loads what loading the file by path loads", async () => {
    fresh();
    const got = await initialModel(configWith("finetune.weights=auto"), { env: online(), progress: "silent", log: () => {} });
    const byPath = await loadResNet18(weightsFile);
    try {
      expect(got.weights).toMatchObject({ kind: "imagenet", repo: RESNET18_IMAGENET_REPO, revision: MAIN, sha256: sha256(bytes) });
      expect(got.source).toBe(`ImageNet weights: ${RESNET18_IMAGENET_REPO} at revision ${MAIN} (model.safetensors, SHA-256 ${sha256(bytes)})`);
      expect(sameWeights(got.model, byPath)).toBe(true);
    } finally {
      got.model.dispose();
      byPath.dispose();
    }
    const record = JSON.parse(readFileSync(runFiles(run).initialWeights, "utf8")) as { spec: string; weights: { revision: string } };
    expect(record).toMatchObject({ spec: "auto", weights: { revision: MAIN } });
    expect(initialWeightsNote(got.weights)).toMatch(/^Starting from the post's start/);
  });

  it("a run's later stages reuse its record without a request; another run reuses the Hub's cache without a request", async () => {
    const before = hub.seen.length;
    const again = await resolveInitialWeights(configWith("finetune.weights=auto"), { env: online(), progress: "silent" });
    expect(again).toMatchObject({ kind: "imagenet", revision: MAIN });
    fresh();
    const cached = await resolveInitialWeights(configWith("finetune.weights=auto"), { env: online(), progress: "silent", log: () => {} });
    expect(cached).toMatchObject({ kind: "imagenet", sha256: sha256(bytes) });
    expect(hub.seen.length).toBe(before);
  });

  it("auto without the Hub starts from random initialisation, saying why loudly; imagenet is an error naming the fix", async () => {
    fresh();
    const offline = { HF_HOME: join(dir, "empty-hf-home"), HF_HUB_OFFLINE: "1" };
    const w = await resolveInitialWeights(configWith("finetune.weights=auto"), { env: offline, progress: "silent", log: () => {} });
    expect(w).toMatchObject({ kind: "random", seed: 0 });
    expect(describeInitialWeights(w)).toMatch(/^torchvision's random initialisation \(seed 0\): the ImageNet weights could not be had \(.*HF_HUB_OFFLINE/);
    expect(initialWeightsNote(w)).toMatch(/^WARNING: NOT the post's start/);
    fresh();
    await expect(resolveInitialWeights(configWith("finetune.weights=imagenet"), { env: offline, progress: "silent" })).rejects.toThrow(/HF_HUB_OFFLINE/);
  });

  it("the record is made again when the settings change", async () => {
    fresh();
    await resolveInitialWeights(configWith("finetune.weights=random"), { progress: "silent" });
    const w = await resolveInitialWeights(configWith(`finetune.weights=${weightsFile}`), { progress: "silent" });
    expect(w).toEqual({ kind: "file", path: weightsFile });
  });

  it("random and \"\" are random initialisation; a missing file is an error naming the choices", async () => {
    for (const spec of ["random", ""]) {
      fresh();
      expect(await resolveInitialWeights(configWith(`finetune.weights=${spec}`))).toEqual({ kind: "random", seed: 0, why: `finetune.weights is "${spec}"` });
    }
    fresh();
    await expect(resolveInitialWeights(configWith("finetune.weights=no/such.safetensors"))).rejects.toThrow(
      /finetune\.weights = "no\/such\.safetensors" does not exist\. .* finetune\.weights=auto .* finetune\.weights=random/,
    );
  });

  it("a revision that is not a branch, tag or full commit is refused", async () => {
    fresh();
    await expect(resolveInitialWeights(configWith("finetune.weights=imagenet", "finetune.weightsRevision=abc1234"), { env: online(), progress: "silent" })).rejects.toThrow(/abc1234/);
  });
});
