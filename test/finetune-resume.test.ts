// Fine-tuning resumes only what the same inputs made: raising finetune.maxSteps continues from the checkpoint, while
// other initial weights (even under the same file name), a changed image or another preset start afresh, say what
// changed, and set the old checkpoints and model aside instead of deleting them. A killed checkpoint write's
// temporary folder is removed on the next start. The real finetune() on 12 synthetic faces at 32 px, with a narrow
// ResNet18 (width 4) as the "ImageNet" weights so that it runs in seconds.

import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../lib/kernels/backend";
import { applyOverrides, defaultConfig, saveRunConfig, type RunConfig } from "../lib/run/config";
import { prepareDataset } from "../lib/data/datasets";
import { generateSyntheticFaces } from "../lib/data/synthetic/faces";
import { finetune } from "../lib/model/finetune";
import { createResNet18, saveResNet18 } from "../lib/model/resnet18";
import { listCheckpoints } from "../lib/model/checkpoints";
import { runDir, runFiles } from "../lib/run/files";
import { artifactId } from "../lib/util/artifact-id";

const run = `test-ft-resume-${process.pid}`;
const scratch = mkdtempSync(join(tmpdir(), "ft-resume-"));
const data = join(scratch, "faces");
const weights = join(scratch, "weights.safetensors");
let base: RunConfig;

async function writeWeights(seed: number): Promise<void> {
  const model = createResNet18({ width: 4, seed });
  await saveResNet18(model, weights);
  model.dispose();
}

const configWith = (...overrides: string[]): RunConfig => {
  const config = applyOverrides(base, overrides);
  saveRunConfig(config);
  return config;
};
const silently = { progress: "silent" as const, showCurve: false };
/** The folders beside runs/<run>/checkpoints that hold set-aside checkpoints. */
const asides = (): string[] => readdirSync(runDir(run)).filter((n) => n.startsWith("checkpoints.before-"));

beforeAll(async () => {
  await initBackend();
  await generateSyntheticFaces({ outDir: data, count: 12, identities: 3, seed: 4 });
  await writeWeights(1);
  base = applyOverrides(defaultConfig(run), [
    `dataset=${data}`, "imageSize=32", "finetune.batchSize=4", "finetune.chunkSize=4", "finetune.maxSteps=2", "finetune.checkpointEvery=1",
    `finetune.weights=${weights}`,
  ]);
  saveRunConfig(base);
  await prepareDataset(base, { progress: "silent" });
}, 120_000);
afterAll(() => {
  rmSync(runDir(run), { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

describe("fine-tuning resumes only from checkpoints of the same inputs", () => {
  it("raising finetune.maxSteps continues where the last run stopped", async () => {
    const first = await finetune(configWith(), silently);
    expect([first.resumedFrom, first.stepsThisRun]).toEqual([null, 2]);
    const record = JSON.parse(readFileSync(runFiles(run).modelRecord, "utf8")) as { sha256: string; steps: number };
    expect(record).toMatchObject({ sha256: await artifactId(runFiles(run).model), steps: 2 });
    const more = await finetune(configWith("finetune.maxSteps=3"), silently);
    expect([more.resumedFrom, more.stepsThisRun, more.note]).toEqual([2, 1, ""]);
  }, 120_000);

  it("a kill between writing the model and its record sets nothing aside: the record is written again", async () => {
    const model = readFileSync(runFiles(run).model);
    rmSync(runFiles(run).modelRecord);
    const again = await finetune(configWith("finetune.maxSteps=3"), silently);
    expect([again.stepsThisRun, again.note]).toEqual([0, ""]);
    expect(readFileSync(runFiles(run).model).equals(model)).toBe(true);
    expect(existsSync(runFiles(run).modelRecord)).toBe(true);
    expect(readdirSync(runDir(run)).filter((n) => n.includes(".before-"))).toEqual([]);
  }, 120_000);

  it("removes the temporary folder a kill -9 left in the middle of writing a checkpoint", async () => {
    const dead = spawnSync("true").pid; // a process that has exited
    const left = join(runFiles(run).checkpoints, `step-000004.tmp-${dead}`);
    mkdirSync(left, { recursive: true });
    writeFileSync(join(left, "model.npy"), "half a checkpoint");
    const live = join(runFiles(run).checkpoints, `step-000004.tmp-${process.pid}`); // a writer still at work
    mkdirSync(live, { recursive: true });
    const again = await finetune(configWith("finetune.maxSteps=3"), silently);
    expect(again.stepsThisRun).toBe(0);
    expect(existsSync(left)).toBe(false);
    expect(existsSync(live)).toBe(true);
    rmSync(live, { recursive: true });
  }, 120_000);

  it("other initial weights under the same file name start afresh, say so, and keep the old checkpoints and model aside", async () => {
    const oldModel = await artifactId(runFiles(run).model);
    await writeWeights(2);
    const result = await finetune(configWith("finetune.maxSteps=3"), silently);
    expect(result.resumedFrom).toBeNull();
    expect(result.stepsThisRun).toBe(3);
    expect(result.note).toMatch(/initial weights changed/);
    expect(result.note).toMatch(/set aside in runs\/.*\/checkpoints\.before-\d{8}-\d{6}(-\d+)?/);
    expect(asides()).toHaveLength(1);
    expect(listCheckpoints(join(runDir(run), asides()[0])).map((c) => c.step)).toEqual([2, 3]);
    const keptModels = readdirSync(runDir(run)).filter((n) => /^resnet18\.before-\d{8}-\d{6}(-\d+)?\.safetensors$/.test(n));
    expect(keptModels).toHaveLength(1);
    expect(await artifactId(join(runDir(run), keptModels[0]))).toBe(oldModel);
  }, 120_000);

  it("an image replaced in place under the same name starts afresh", async () => {
    const image = join(data, "img_align_celeba", "000005.jpg");
    cpSync(join(data, "img_align_celeba", "000006.jpg"), image);
    utimesSync(image, new Date(), new Date(Date.now() + 5000));
    const result = await finetune(configWith("finetune.maxSteps=3"), silently);
    expect(result.resumedFrom).toBeNull();
    expect(result.note).toMatch(/images changed/);
    expect(asides().length).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it("another preset starts afresh", async () => {
    const result = await finetune(configWith("finetune.maxSteps=3", "finetune.preset=recommended", "finetune.imagesPerPerson=2"), silently);
    expect(result.resumedFrom).toBeNull();
    expect(result.note).toMatch(/preset: post → recommended/);
  }, 120_000);
});
