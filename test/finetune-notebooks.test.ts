// Notebooks 02-finetune and 03-embed under real Jupyter, after 01 on 48 synthetic faces at 32×32, 3 steps.

import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
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

  it("02 trains 3 steps with the post's progress bar, draws the loss curve as a PNG and writes the model and a checkpoint", () => {
    const outputs = outputsOf(executed("02-finetune"));
    const text = outputs.map((o) => (o.output_type === "stream" ? joinText(o.text) : plain(o))).join("\n");
    expect(text).toMatch(/starts\s+from torchvision's random initialisation/);
    expect(text).toMatch(/Training\.\.\.: 100%\|█+\| 3\/3 \[.*loss=.*contrastive_loss=.*orientation_loss=/);
    const curve = outputs.find((o) => plain(o).startsWith('Figure "Fine-tuning loss"'));
    expect(curve, "a loss-curve output").toBeDefined();
    expect(Buffer.from(joinText(curve?.data?.["image/png"] as string | string[]), "base64").subarray(1, 4).toString()).toBe("PNG");
    expect(existsSync(runFiles(run).model)).toBe(true);
    expect(existsSync(join(runFiles(run).checkpoints, "step-000003", "state.json"))).toBe(true);
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
    expect(pngs.some((t) => t.startsWith('Figure "Telling people apart (48 faces)"'))).toBe(true);
    expect(pngs.some((t) => t.startsWith('Figure "Linear-probe accuracy of'))).toBe(true);
  });
});
