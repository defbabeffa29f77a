// The whole notebook series on a dataset with bad images in the middle (an empty JPEG and a truncated one among 48
// synthetic faces), under real Jupyter: with onBadImage=skip every notebook finishes and every stage uses the same 46
// images (face_vectors.npy's rows are the usable images, which notebook 05 checks against the dataset); with
// onBadImage=error notebook 01 lists the bad images and stops at the first it decodes (its grid), naming it.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSyntheticFaces } from "../lib/data/synthetic/faces";
import { projectRoot } from "../lib/util/project";
import { runDir, runFiles } from "../lib/run/files";
import { outputsOf, readNotebook, streamText } from "./notebook-helpers";

const skipRun = `test-bad-skip-${process.pid}`;
const errorRun = `test-bad-error-${process.pid}`;
const scratch = mkdtempSync(join(tmpdir(), "bad-images-nb-"));
const data = join(scratch, "faces");
const image = (n: number): string => join(data, "img_align_celeba", `${String(n).padStart(6, "0")}.jpg`);
const SMALL = [
  `dataset=${data}`, "imageSize=32", "finetune.batchSize=8", "finetune.chunkSize=8", "finetune.maxSteps=3", "embed.batchSize=16",
  "sae.epochs=2", "inspect.rotationSample=16",
];

function runNotebooks(args: readonly string[]): Promise<{ status: number; output: string }> {
  const child = spawn("npx", ["tsx", "scripts/run-notebooks.ts", ...args], { cwd: projectRoot() });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ status: code ?? 1, output })));
}

const executed = (run: string, name: string): string => join(runDir(run), "notebooks", `${name}.ipynb`);

beforeAll(async () => {
  await generateSyntheticFaces({ outDir: data, count: 48, identities: 6, seed: 5 });
  writeFileSync(image(3), ""); // 0 bytes
  truncateSync(image(20), Math.floor(readFileSync(image(20)).length / 2)); // header intact, scan data cut
}, 120_000);
afterAll(() => {
  if (process.env.KEEP_TEST_OUTPUT) return;
  for (const run of [skipRun, errorRun]) rmSync(runDir(run), { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

describe("bad images in the middle of the dataset", () => {
  it("onBadImage=skip: every notebook finishes, and every stage leaves out the same two images", async () => {
    const result = await runNotebooks(["--run", skipRun, ...SMALL.flatMap((s) => ["--set", s]), "--set", "onBadImage=skip"]);
    expect(result.status, result.output).toBe(0);
    const first = streamText(readNotebook(executed(skipRun, "01-download")));
    expect(first).toMatch(/2 of 48 images cannot be decoded: img_align_celeba\/000003\.jpg \(the file is empty \(0 bytes\)\); img_align_celeba\/000020\.jpg \(/);
    expect(first).toContain("46 images in");
    const files = readFileSync(runFiles(skipRun).faceVectorsFiles, "utf8").trim().split("\n");
    expect(files).toHaveLength(46);
    expect(files).not.toContain("img_align_celeba/000003.jpg");
    expect(files).not.toContain("img_align_celeba/000020.jpg");
    expect(files[2]).toBe("img_align_celeba/000004.jpg");
    expect(streamText(readNotebook(executed(skipRun, "03-embed")))).toMatch(/face_vectors: \(46, 512\)[\s\S]*2 unreadable images left out \(onBadImage=skip\)/);
    for (const name of ["05-inspect", "06-blind-test", "07-publish"]) {
      expect(outputsOf(readNotebook(executed(skipRun, name))).filter((o) => o.output_type === "error"), name).toEqual([]);
    }
  }, 900_000);

  it("onBadImage=error: notebook 01 lists the bad images, then stops at the first it decodes, naming it", async () => {
    const result = await runNotebooks(["--run", errorRun, "--only", "01", ...SMALL.flatMap((s) => ["--set", s])]);
    expect(result.status).not.toBe(0);
    const first = readNotebook(executed(errorRun, "01-download"));
    expect(streamText(first)).toMatch(/2 of 48 images cannot be decoded[\s\S]*With onBadImage=error \(this run's setting\) the first step to decode one of them stops, naming it/);
    // The 4×4 grid of the first 16 faces holds 000003.jpg: the run stops there, naming it and the fix.
    expect(result.output).toMatch(/Could not decode image [^\n]*img_align_celeba\/000003\.jpg: the file is empty \(0 bytes\)\. Replace or delete the file, or set onBadImage: "skip"/);
    expect(result.output).toMatch(/01-download\] FAILED/);
  }, 600_000);
});
