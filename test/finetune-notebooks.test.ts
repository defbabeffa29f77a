// Notebooks 02-finetune and 03-embed under real Jupyter, after 01 on 48 synthetic faces at 32×32, 3 steps.

import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";


import { projectRoot } from "../lib/util/project";
import { runDir, runFiles } from "../lib/run/files";
import { joinText, outputsOf, readNotebook, type Notebook, type NotebookOutput } from "./notebook-helpers";

const run = `test-ft-${process.pid}`;
const executed = (name: string): Notebook => readNotebook(join(runDir(run), "notebooks", `${name}.ipynb`));
const plain = (o: NotebookOutput): string => joinText(o.data?.["text/plain"] as string | string[] | undefined);
let runnerOutput = "";
let runnerStatus = 1;

beforeAll(() => {
  const r = spawnSync(
    "npx",
    [
      "tsx", "scripts/run-notebooks.ts", "--run", run, "--only", "01", "--only", "02", "--only", "03",
      "--set", "dataset=synthetic", "--set", "synthetic.count=48", "--set", "synthetic.identities=6", "--set", "imageSize=32",
      "--set", "finetune.batchSize=8", "--set", "finetune.chunkSize=4", "--set", "finetune.maxSteps=3", "--set", "embed.batchSize=16",
    ],
    { cwd: projectRoot(), encoding: "utf8" },
  );
  runnerStatus = r.status ?? 1;
  runnerOutput = `${r.stdout}${r.stderr}`;
}, 600_000);
afterAll(() => {
  if (!process.env.KEEP_TEST_OUTPUT) rmSync(runDir(run), { recursive: true, force: true });
});

describe("notebooks 02-finetune and 03-embed", () => {
  it("execute without errors or stderr output", () => {
    expect(runnerStatus, runnerOutput).toBe(0);
    for (const name of ["02-finetune", "03-embed"]) {
      const bad = outputsOf(executed(name)).filter((o) => o.output_type === "error" || (o.output_type === "stream" && o.name === "stderr"));
      expect(bad, name).toEqual([]);
    }
  });

  it("02 estimates its time and the post's above the progress bar, trains 3 steps with the post's bar, draws the loss curve as a PNG and writes the model and a checkpoint", () => {
    const outputs = outputsOf(executed("02-finetune"));
    const text = outputs.map((o) => (o.output_type === "stream" ? joinText(o.text) : plain(o))).join("\n");
    expect(text).toMatch(/starts\s+from torchvision's random initialisation/);
    expect(text).toMatch(/Training\.\.\.: 100%\|█+\| 3\/3 \[.*loss=.*contrastive_loss=.*orientation_loss=/);
    // the estimate: one output before the bar's, made from step 2 (3 steps: step 1 warms up, step 3 is left)
    const estimate = outputs.findIndex((o) => plain(o).startsWith("Estimated time of this run: "));
    const bar = outputs.findIndex((o) => plain(o).startsWith("Training...: "));
    expect(estimate, "an estimate output").toBeGreaterThanOrEqual(0);
    expect(estimate).toBeLessThan(bar);
    expect(plain(outputs[estimate])).toMatch(
      /^Estimated time of this run: 3 steps × [\d.e-]+ (s|min)\/step \+ 4 held-out measurements × [\d.e-]+ (s|min) ≈ [\d.]+ (s|min) on this machine \((onnxruntime-node \d|TF\.js).*; timed on step 2, waiting for images included; held-out measurements as the ones so far took\)\.\nNot timed: 1 checkpoint write\.\n/,
    );
    expect(plain(outputs[estimate])).toMatch(
      /\nAt the post's size \(202,599 faces at 224 px, 1 epoch, batches of 128 in chunks of 32: 1,583 steps\): ≈ [\d.]+ (min|h|days?) here, scaled from a gradient pass over 4 images of 224 px in chunks of 2 \([\d.]+ (s|min) after a warm-up pass: [\d.]+ s an image × 202,599\)\./,
    );
    expect(text).toMatch(/^The estimate made from step 2 said ≈ [\d.]+ (s|min); training took [\d.]+ (s|min) \(steps, held-out measurements and checkpoint writes\)\.$/m);
    const curve = outputs.find((o) => plain(o).startsWith('Figure "Fine-tuning loss"'));
    expect(curve, "a loss-curve output").toBeDefined();
    expect(Buffer.from(joinText(curve?.data?.["image/png"] as string | string[]), "base64").subarray(1, 4).toString()).toBe("PNG");
    expect(existsSync(runFiles(run).model)).toBe(true);
    expect(existsSync(join(runFiles(run).checkpoints, "step-000003", "state.json"))).toBe(true);
  });

  it("02 measures 2 held-out people (16 faces, the fewest it holds out) at every step beside the loss, and ends with a verdict saved as the run's findings", () => {
    const outputs = outputsOf(executed("02-finetune"));
    const text = outputs.map((o) => (o.output_type === "stream" ? joinText(o.text) : plain(o))).join("\n");
    expect(text).toMatch(/2 people \(16 faces\) held out, seeded; 16 of their faces measured at every step — and trained on too, since the post trains on every face/);
    const curve = outputs.find((o) => plain(o).startsWith('Figure "Telling held-out people apart"'));
    expect(curve, "a held-out curve").toBeDefined();
    expect(Buffer.from(joinText(curve?.data?.["image/png"] as string | string[]), "base64").subarray(1, 4).toString()).toBe("PNG");
    const table = outputs.map((o) => joinText(o.data?.["text/html"] as string | string[] | undefined)).find((h) => h.includes("Held-out people, eval mode"));
    expect(table).toMatch(/chance \(random similarities\)[\s\S]*step 0[\s\S]*step 1[\s\S]*step 2[\s\S]*step 3/);
    expect(text).toMatch(/^Verdict: (better|worse|no different)\. After 3 steps of the post preset, the model (tells these people apart (better|worse) than|is no different from|is not clearly better or worse than) its start \(torchvision's random initialisation/m);
    expect(text).toMatch(/these people were held out of the measure only: the post's preset trains on every face/i);
    const findings = JSON.parse(readFileSync(runFiles(run).finetuneFindings, "utf8")) as Record<string, unknown>;
    expect(findings).toMatchObject({ preset: "post", steps: 3, imageSize: 32, heldOutPeople: 2, heldOutFaces: 16, heldOutOfTraining: false });
    expect(["better", "worse", "no different"]).toContain(findings.verdict);
    expect((findings.curve as { step: number }[]).map((p) => p.step)).toEqual([0, 1, 2, 3]);
    expect(text).toContain(findings.sentence as string);
  });

  it("03 writes face_vectors.npy of shape (48, 512) that numpy reads, and shows the identity metrics as tables and plots", () => {
    const python = `import numpy; a = numpy.load(${JSON.stringify(runFiles(run).faceVectors)}); print(a.shape, a.dtype, bool(numpy.isfinite(a).all()))`;
    expect(execFileSync("/usr/bin/python3", ["-c", python], { encoding: "utf8" }).trim()).toBe("(48, 512) float32 True");
    const outputs = outputsOf(executed("03-embed"));
    const streams = outputs.filter((o) => o.output_type === "stream").map((o) => joinText(o.text)).join("");
    expect(streams).toContain("(48, 512)");
    expect(streams).toMatch(/images\/s/);
    expect(streams).toMatch(/Embedded by (onnxruntime-node \d+\.\d+\.\d+ \(CPU|TF\.js \w+: )/);
    const tables = outputs.map((o) => joinText(o.data?.["text/html"] as string | string[] | undefined)).filter((h) => h.includes("<table"));
    expect(tables[0]).toMatch(/retrieval recall@1[\s\S]*retrieval recall@10[\s\S]*verification ROC AUC[\s\S]*mean linear-probe accuracy/);
    expect(tables[1]).toMatch(/majority baseline[\s\S]*Eyeglasses/);
    const pngs = outputs.filter((o) => o.data?.["image/png"] !== undefined).map(plain);
    expect(pngs.some((t) => t.startsWith('Figure "Telling people apart (16 faces)"'))).toBe(true);
    expect(pngs.some((t) => t.startsWith('Figure "Linear-probe accuracy of'))).toBe(true);
    expect(streams).toMatch(/Measured on the 16 faces of 2 held-out people that notebook 02 measured \(people held out of the measure but not of training/);
    const found = JSON.parse(readFileSync(runFiles(run).embedFindings, "utf8")) as Record<string, unknown>;
    expect(found).toMatchObject({ preset: "post", sample: 16, heldOutOfTraining: false });
    expect(streams).toContain(found.sentence as string);
  });
});
