// One list of usable images per run (runs/<run>/usable_images.json): made once by decoding every image, used by every
// stage through openRunDataset, made again when the images change. A folder of 8 synthetic faces in CelebA's layout
// with an empty JPEG and a truncated one in the middle.

import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyOverrides, defaultConfig, saveRunConfig, type RunConfig } from "../lib/run/config";
import { imageCachePath, loadImages, openRunDataset, prepareDataset } from "../lib/data/datasets";
import { openImageDataset, selectImages } from "../lib/data/image-dataset";
import { generateSyntheticFaces } from "../lib/data/synthetic/faces";
import { runDir, runFiles } from "../lib/run/files";

const run = `test-usable-${process.pid}`;
const scratch = mkdtempSync(join(tmpdir(), "usable-images-"));
const data = join(scratch, "faces");
const image = (n: number): string => join(data, "img_align_celeba", `${String(n).padStart(6, "0")}.jpg`);
let skip: RunConfig;

beforeAll(async () => {
  await generateSyntheticFaces({ outDir: data, count: 8, identities: 2, seed: 3 });
  writeFileSync(image(3), ""); // 0 bytes
  truncateSync(image(5), Math.floor(readFileSync(image(5)).length / 2));
  skip = applyOverrides(defaultConfig(run), [`dataset=${data}`, "imageSize=32", "onBadImage=skip"]);
  saveRunConfig(skip);
}, 60_000);
afterAll(() => {
  rmSync(runDir(run), { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

describe("the run's usable images", () => {
  it("notebook 01 decodes every image once and says which cannot be decoded and what the policy does with them", async () => {
    const prepared = await prepareDataset(skip, { progress: "silent" });
    expect(prepared.note).toMatch(/2 of 8 images cannot be decoded: img_align_celeba\/000003\.jpg \(the file is empty \(0 bytes\)\); img_align_celeba\/000005\.jpg \(.+\)/);
    expect(prepared.note).toMatch(/With onBadImage=skip they are left out of every stage \(6 images remain/);
    const record = JSON.parse(readFileSync(runFiles(run).usableImages, "utf8")) as { usable: number; unusable: { file: string }[]; sha256: string };
    expect(record.usable).toBe(6);
    expect(record.unusable.map((u) => u.file)).toEqual(["img_align_celeba/000003.jpg", "img_align_celeba/000005.jpg"]);
    expect(record.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("under onBadImage=skip every stage sees the usable images only, with their own metadata rows", async () => {
    const dataset = await openRunDataset(skip);
    const all = await openImageDataset(data);
    expect(dataset.count).toBe(6);
    expect(dataset.files).toEqual(all.files.filter((f) => !/00000[35]\.jpg$/.test(f)));
    expect(Array.from(dataset.identities?.ids ?? [])).toEqual([0, 1, 3, 5, 6, 7].map((i) => all.identities?.ids[i]));
    expect(dataset.attributes?.files).toEqual(dataset.files.map((f) => f.split("/").pop()));
    const batch = await loadImages(dataset, [...Array(6).keys()], skip);
    expect(batch.shape[0]).toBe(6);
  });

  it("under onBadImage=error the run keeps every image, and the note says where it will stop", async () => {
    const strict = applyOverrides(skip, ["onBadImage=error"]);
    expect((await openRunDataset(strict)).count).toBe(8);
    expect((await prepareDataset(strict, { progress: "silent" })).note).toMatch(/With onBadImage=error \(this run's setting\) the first step to decode one of them stops, naming it/);
  });

  it("is made again when the images change: a repaired image is used again", async () => {
    copyFileSync(image(4), image(3));
    utimesSync(image(3), new Date(), new Date(Date.now() + 5000));
    const dataset = await openRunDataset(skip);
    expect(dataset.count).toBe(7);
    expect(dataset.unusable.map((u) => u.file)).toEqual(["img_align_celeba/000005.jpg"]);
  });

  it("selectImages keeps rows in step and refuses indices out of order", async () => {
    const all = await openImageDataset(data);
    const picked = selectImages(all, [1, 6]);
    expect(picked.files).toEqual([all.files[1], all.files[6]]);
    const width = all.attributes?.names.length ?? 0;
    const row = (i: number): number[] => Array.from(all.attributes?.values.subarray(i * width, (i + 1) * width) ?? []);
    expect(width).toBeGreaterThan(1);
    expect(Array.from(picked.attributes?.values ?? [])).toEqual([...row(1), ...row(6)]);
    expect(() => selectImages(all, [3, 2])).toThrow(/indices must ascend/);
  });

  it("decoded images are cached in the run folder when the dataset's folder is read-only, even for root", async () => {
    const dataset = await openRunDataset(skip);
    expect(imageCachePath(skip, dataset)).toBe(join(data, ".celeba-sae-cache", "images-post-32-n7.npy"));
    chmodSync(data, 0o555);
    try {
      expect(imageCachePath(skip, dataset)).toBe(join(runFiles(run).imageCache, "images-post-32-n7.npy"));
    } finally {
      chmodSync(data, 0o755);
    }
  });
});
