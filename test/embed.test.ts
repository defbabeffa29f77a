// Embedding: every image in listing order, eval mode, into face_vectors.npy (read back by numpy) and its file list;
// resumable in parts; not recomputed when done. A narrow ResNet18 (width 4) on 12 synthetic faces at 32×32.

import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend, tf } from "../lib/kernels/backend";
import { applyOverrides, defaultConfig, saveRunConfig, type RunConfig } from "../lib/run/config";
import { loadImages, openRunDataset, prepareDataset } from "../lib/data/datasets";
import { embedBatch, embedDataset, readFaceVectors } from "../lib/embed/embed";

import { runDir, runFiles } from "../lib/run/files";
import { createResNet18, saveResNet18 } from "../lib/model/resnet18";
import { artifactId } from "../lib/util/artifact-id";

const run = `test-embed-${process.pid}`;
let config: RunConfig;

beforeAll(async () => {
  await initBackend();
  config = applyOverrides(defaultConfig(run), [
    "dataset=synthetic", "synthetic.count=12", "synthetic.identities=3", "imageSize=32", "embed.batchSize=4", "finetune.preset=recommended", "imageCache=false",
  ]);
  saveRunConfig(config);
  await prepareDataset(config);
}, 120_000);
afterAll(() => rmSync(runDir(run), { recursive: true, force: true }));

describe("embedDataset", () => {
  it("says to run notebook 02 first when there is no fine-tuned model", async () => {
    await expect(embedDataset(config, { progress: "silent" })).rejects.toThrow(/resnet18\.safetensors does not exist: run notebook 02-finetune first/);
  });

  it("writes N × 8·width float32 rows in listing order that numpy reads, resumes after a kill, and is not redone", async () => {
    const model = createResNet18({ width: 4, seed: 3 });
    await saveResNet18(model, runFiles(run).model);
    const dataset = await openRunDataset(config);
    const batch = await loadImages(dataset, [...Array(12).keys()], config);
    const expected = embedBatch(model, batch, "recommended");
    model.dispose();

    let parts = 0;
    const kill = (): void => {
      if (++parts === 2) throw new Error("killed");
    };
    await expect(embedDataset(config, { progress: "silent", partRows: 5, onPart: kill })).rejects.toThrow("killed");
    expect(existsSync(runFiles(run).faceVectors)).toBe(false);
    const before = tf.memory().numTensors;
    const result = await embedDataset(config, { progress: "silent", partRows: 3 }); // the stored part size wins
    expect(tf.memory().numTensors).toBe(before);
    expect(result).toMatchObject({ rows: 12, dim: 32, resumedRows: 10, alreadyDone: false, skippedImages: [] });
    expect(result.imagesPerSecond).toBeGreaterThan(0);

    const { vectors, files } = await readFaceVectors(run);
    expect(files).toEqual(dataset.files);
    expect(readFileSync(runFiles(run).faceVectorsFiles, "utf8").split("\n")[0]).toBe("img_align_celeba/000001.jpg");
    let maxDiff = 0;
    for (let i = 0; i < expected.length; i++) maxDiff = Math.max(maxDiff, Math.abs(vectors[i] - expected[i]));
    expect(maxDiff).toBeLessThan(1e-4);

    const python = `import numpy; a = numpy.load(${JSON.stringify(runFiles(run).faceVectors)}); print(a.shape, a.dtype, repr(float(a[7, 5])))`;
    const printed = execFileSync("/usr/bin/python3", ["-c", python], { encoding: "utf8" }).trim();
    expect(printed).toMatch(/^\(12, 32\) float32 /);
    expect(Number(printed.split(" ").pop())).toBeCloseTo(vectors[7 * 32 + 5], 6);

    const again = await embedDataset(config, { progress: "silent" });
    expect(again.alreadyDone).toBe(true);
    expect(again.rows).toBe(12);
  });

  it("records the vectors' SHA-256, and embeds again — setting the old vectors aside — when the model changes under the same name, size and time", async () => {
    const record = JSON.parse(readFileSync(runFiles(run).faceVectorsRecord, "utf8")) as { sha256: string };
    expect(record.sha256).toBe(await artifactId(runFiles(run).faceVectors));
    const before = readFileSync(runFiles(run).faceVectors);
    const { atime, mtime, size } = statSync(runFiles(run).model);
    const other = createResNet18({ width: 4, seed: 4 }); // fine-tuned again, say, and restored with its old time
    await saveResNet18(other, runFiles(run).model);
    other.dispose();
    utimesSync(runFiles(run).model, atime, mtime);
    expect(statSync(runFiles(run).model).size).toBe(size);

    const result = await embedDataset(config, { progress: "silent" });
    expect(result.alreadyDone).toBe(false);
    expect(result.note).toMatch(/not reused \(the fine-tuned model changed .*\): they were set aside as runs\/.*\/face_vectors\.before-\d{8}-\d{6}\.npy/);
    expect(readFileSync(runFiles(run).faceVectors).equals(before)).toBe(false);
    const aside = readdirSync(runDir(run)).filter((n) => n.startsWith("face_vectors.before-")).sort();
    expect(aside.map((n) => n.replace(/\d{8}-\d{6}/, "*"))).toEqual(["face_vectors.before-*.files.txt", "face_vectors.before-*.json", "face_vectors.before-*.npy"]);
    expect(readFileSync(join(runDir(run), aside[2])).equals(before)).toBe(true);
    expect(result.sha256).toBe(await artifactId(runFiles(run).faceVectors));
  });

  it("does not trust face_vectors.npy changed since it was written", async () => {
    const bytes = readFileSync(runFiles(run).faceVectors);
    bytes[bytes.length - 1] ^= 0x55;
    writeFileSync(runFiles(run).faceVectors, bytes);
    const result = await embedDataset(config, { progress: "silent" });
    expect(result.alreadyDone).toBe(false);
    expect(result.note).toMatch(/it changed since it was written/);
    expect((await embedDataset(config, { progress: "silent" })).alreadyDone).toBe(true);
  });

  it("a kill between writing the record and removing the parts leaves nothing behind on the next start", async () => {
    const key = (JSON.parse(readFileSync(runFiles(run).faceVectorsRecord, "utf8")) as { key: unknown }).key;
    mkdirSync(runFiles(run).faceVectorsParts, { recursive: true });
    writeFileSync(join(runFiles(run).faceVectorsParts, "key.json"), JSON.stringify({ key, partRows: 4 }));
    expect((await embedDataset(config, { progress: "silent" })).alreadyDone).toBe(true);
    expect(existsSync(runFiles(run).faceVectorsParts)).toBe(false);
  });

  it("a kill while the parts were being removed leaves nothing behind on the next start", async () => {
    // The parts are renamed to a temporary before they are deleted, so a cut-short removal leaves only that.
    const left = `${runFiles(run).faceVectorsParts}.tmp-${spawnSync("true").pid}-0badc0de`;
    mkdirSync(left, { recursive: true });
    writeFileSync(join(left, "part-000001.npy"), "the parts not yet deleted");
    expect((await embedDataset(config, { progress: "silent" })).alreadyDone).toBe(true);
    expect(existsSync(left)).toBe(false);
  });

  it("removes the temporaries of a killed embedding on the next start", async () => {
    const dead = spawnSync("true").pid;
    const left = `${runFiles(run).faceVectors}.tmp-${dead}-0badc0de`;
    writeFileSync(left, "half a file");
    rmSync(runFiles(run).faceVectorsRecord);
    await embedDataset(config, { progress: "silent" });
    expect(existsSync(left)).toBe(false);
  });
});
