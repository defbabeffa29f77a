// Notebook 02 under real Jupyter with finetune.weights=auto and HF_ENDPOINT at a stand-in Hub on 127.0.0.1: it starts
// from the fetched weights and says so (revision, SHA-256). (test/initial-weights.test.ts: a second run takes them
// from huggingface_hub's cache without a request. Without the Hub, as everywhere else in the tests, notebook 02
// starts from random initialisation.)

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../lib/kernels/backend";
import { RESNET18_IMAGENET_REPO, SAFETENSORS_FILENAME } from "../lib/model/hub-weights";
import { createResNet18, saveResNet18 } from "../lib/model/resnet18";
import { runDir, runFiles } from "../lib/run/files";
import { projectRoot } from "../lib/util/project";
import { fakeCommit, sha256, startFakeHub, type FakeHub } from "./hub-server";
import { readNotebook, streamText } from "./notebook-helpers";

const run = `test-hub-${process.pid}`;
const MAIN = fakeCommit("main");
let dir: string;
let bytes: Buffer;
let hub: FakeHub;

/** Runs notebooks 01 and 02 of `run` without blocking this process (the stand-in Hub answers from it). */
async function runSeries(run: string): Promise<void> {
  await promisify(execFile)(
    "npx",
    [
      "tsx", "scripts/run-notebooks.ts", "--run", run, "--only", "01", "--only", "02",
      "--set", "dataset=synthetic", "--set", "synthetic.count=24", "--set", "synthetic.identities=4", "--set", "imageSize=32",
      "--set", "finetune.batchSize=8", "--set", "finetune.chunkSize=8", "--set", "finetune.maxSteps=1",
    ],
    { cwd: projectRoot(), env: { ...process.env, HF_HUB_OFFLINE: "", HF_ENDPOINT: hub.url, HF_HOME: join(dir, "hf-home") }, maxBuffer: 1 << 26 },
  );
}

beforeAll(async () => {
  await initBackend();
  dir = mkdtempSync(join(tmpdir(), "hub-notebook-"));
  const path = join(dir, "model.safetensors");
  const model = createResNet18({ width: 8, seed: 3 });
  await saveResNet18(model, path);
  model.dispose();
  bytes = readFileSync(path);
  hub = await startFakeHub({ repos: { [RESNET18_IMAGENET_REPO]: { branches: { main: MAIN }, files: { [MAIN]: { [SAFETENSORS_FILENAME]: bytes } } } } });
}, 60_000);

afterAll(async () => {
  await hub?.close();
  rmSync(dir, { recursive: true, force: true });
  if (!process.env.KEEP_TEST_OUTPUT) rmSync(runDir(run), { recursive: true, force: true });
});

describe("notebook 02 with the Hugging Face Hub", () => {
  it("starts from the fetched ImageNet weights and names them", async () => {
    await runSeries(run);
    const line = `ImageNet weights: ${RESNET18_IMAGENET_REPO} at revision ${MAIN} (model.safetensors, SHA-256 ${sha256(bytes)})`;
    expect(streamText(readNotebook(join(runFiles(run).notebooks, "02-finetune.ipynb")))).toContain(`Starting from the post's start, torchvision's ImageNet ResNet18: ${line}.`);
    expect(JSON.parse(readFileSync(runFiles(run).initialWeights, "utf8"))).toMatchObject({ spec: "auto", weights: { kind: "imagenet", revision: MAIN, sha256: sha256(bytes) } });
    expect(hub.seen.some((r) => r.server === "storage" && r.method === "GET")).toBe(true);
}, 900_000);
});
