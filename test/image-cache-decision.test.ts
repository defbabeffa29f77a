// imageCache=auto caches decoded images when the cache is small enough to pay (CelebA at 64 px) and not when it would
// cost more than decoding (CelebA at 224 px: 30 GB) or more than the free disk; true insists, with a clear error when
// the disk is too small; false never caches.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { IMAGE_CACHE_AUTO_MAX_BYTES, imageCacheDecision } from "../lib/data/datasets";
import type { ImageDataset } from "../lib/data/image-dataset";
import { applyOverrides, defaultConfig } from "../lib/run/config";
import type { FreeSpace } from "../lib/util/disk";

const root = mkdtempSync(join(tmpdir(), "cache-decision-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Only the fields the decision reads: where the dataset is and how many images it has. */
const dataset = (count: number): ImageDataset => ({ root, count }) as unknown as ImageDataset;
const plenty = (): FreeSpace => ({ bytes: 1e15, blockSize: 4096 });
const little = (): FreeSpace => ({ bytes: 1e8, blockSize: 4096 });
const CELEBA = 202_599;

describe("imageCache", () => {
  it("defaults to auto", () => {
    expect(defaultConfig("x").imageCache).toBe("auto");
  });

  it("auto caches CelebA at 64 px (2.5 GB) and not at 224 px (30 GB)", () => {
    const small = imageCacheDecision(applyOverrides(defaultConfig("x"), ["imageSize=64"]), dataset(CELEBA), plenty);
    expect(small.path).toBe(join(root, ".celeba-sae-cache", `images-post-64-n${CELEBA}.npy`));
    expect(small.why).toMatch(/^decoded images are cached in .* \(2\.49 GB\)$/);
    expect(CELEBA * 64 * 64 * 3).toBeLessThan(IMAGE_CACHE_AUTO_MAX_BYTES);
    const large = imageCacheDecision(applyOverrides(defaultConfig("x"), ["imageSize=224"]), dataset(CELEBA), plenty);
    expect(large.path).toBeUndefined();
    expect(large.why).toMatch(/^no image cache: it would take 30\.5 GB, and decoding on the threads is as fast as reading that back \(imageCache=true makes it anyway\)$/);
  });

  it("auto without the disk for it decodes instead; true is an error naming what it needs and the way out", () => {
    const auto = imageCacheDecision(applyOverrides(defaultConfig("x"), ["imageSize=64"]), dataset(CELEBA), little);
    expect(auto.path).toBeUndefined();
    expect(auto.why).toMatch(/^no image cache: it needs 2\.49 GB in .*, which has 100 MB free$/);
    expect(() => imageCacheDecision(applyOverrides(defaultConfig("x"), ["imageSize=64", "imageCache=true"]), dataset(CELEBA), little)).toThrow(
      /^Not enough free disk for the decoded-image cache: it needs 2\.49 GB in .*, which has 100 MB free\. Free some space there, or set imageCache=false/,
    );
    expect(imageCacheDecision(applyOverrides(defaultConfig("x"), ["imageSize=224", "imageCache=true"]), dataset(1000), plenty).path).toBeDefined();
  });

  it("false never caches", () => {
    expect(imageCacheDecision(applyOverrides(defaultConfig("x"), ["imageCache=false"]), dataset(10), plenty)).toEqual({ path: undefined, why: "imageCache is false: every pass decodes the JPEGs" });
  });
});
