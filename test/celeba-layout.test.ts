import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { checkCelebAImages, checkImages, describeCelebALayout, detectCelebALayout, type CelebALayout } from "../lib/data/celeba-layout";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "celeba-layout-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A small JPEG of noise (big enough that cutting its end leaves the header intact). */
async function jpeg(seed: number): Promise<Buffer> {
  const raw = Buffer.alloc(48 * 40 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7919 + seed * 104729) % 251;
  return sharp(raw, { raw: { width: 48, height: 40, channels: 3 } }).jpeg().toBuffer();
}

async function writeImages(folder: string, count: number): Promise<void> {
  mkdirSync(folder, { recursive: true });
  for (let i = 1; i <= count; i++) writeFileSync(join(folder, `${String(i).padStart(6, "0")}.jpg`), await jpeg(i));
}

function expectLayout(found: Awaited<ReturnType<typeof detectCelebALayout>>): CelebALayout {
  if (found.kind === "none") throw new Error(`not recognised: ${found.reason}`);
  return found;
}

const KAGGLE_FILES = ["list_attr_celeba.csv", "list_bbox_celeba.csv", "list_eval_partition.csv", "list_landmarks_align_celeba.csv"];

describe("detectCelebALayout", () => {
  it("recognises Kaggle's layout and says that it has no identity file and what that means", async () => {
    await writeImages(join(dir, "img_align_celeba", "img_align_celeba"), 3);
    for (const f of KAGGLE_FILES) writeFileSync(join(dir, f), "image_id\n");
    const layout = expectLayout(await detectCelebALayout(dir));
    expect(layout).toMatchObject({ kind: "kaggle", root: dir, imageDir: join(dir, "img_align_celeba", "img_align_celeba"), imageCount: 3 });
    expect([...layout.present].sort()).toEqual(KAGGLE_FILES);
    expect(layout.missing).toEqual(["identity"]);
    expect(layout.metadata.attributes).toMatchObject({ path: join(dir, "list_attr_celeba.csv"), format: "csv" });
    expect(layout.metadata.identity.path).toBeUndefined();
    const identityNote = layout.notes.find((n) => n.includes("identity_CelebA.txt"));
    expect(identityNote).toMatch(/Kaggle's archive does not include one, so identity-based metrics .* are skipped/);
    expect(layout.notes.some((n) => /^3 images, where the full CelebA has 202,599/.test(n))).toBe(true);
    const text = describeCelebALayout(layout).join("\n");
    expect(text).toContain("Kaggle's layout, 3 images");
    expect(text).toContain("identity-based metrics");
  });

  it("recognises the official layout and reports the files it lacks", async () => {
    await writeImages(join(dir, "img_align_celeba"), 2);
    for (const f of ["list_attr_celeba.txt", "identity_CelebA.txt", "list_eval_partition.txt"]) writeFileSync(join(dir, f), "");
    writeFileSync(join(dir, "img_align_celeba", "notes.md"), "not an image");
    const layout = expectLayout(await detectCelebALayout(dir));
    expect(layout).toMatchObject({ kind: "official", imageDir: join(dir, "img_align_celeba"), imageCount: 2 });
    expect(layout.present).toEqual(["list_attr_celeba.txt", "list_eval_partition.txt", "identity_CelebA.txt"]);
    expect(layout.missing).toEqual(["bbox", "landmarks"]);
    expect(layout.metadata.partition.format).toBe("txt");
    expect(layout.notes).toContain("No list_bbox_celeba.txt or list_bbox_celeba.csv (face bounding boxes in the unaligned images): nothing changes (this project does not use bounding boxes).");
    expect(layout.notes.some((n) => n.includes("identity"))).toBe(false);
  });

  it("uses an identity file added to Kaggle's layout by hand, and prefers each layout's own format", async () => {
    await writeImages(join(dir, "img_align_celeba", "img_align_celeba"), 1);
    for (const f of [...KAGGLE_FILES, "identity_CelebA.txt", "list_attr_celeba.txt"]) writeFileSync(join(dir, f), "");
    const layout = expectLayout(await detectCelebALayout(dir));
    expect(layout.missing).toEqual([]);
    expect(layout.metadata.identity).toMatchObject({ path: join(dir, "identity_CelebA.txt"), format: "txt" });
    expect(layout.metadata.attributes.format).toBe("csv");
  });

  it("reports every metadata file missing, and an empty image folder", async () => {
    mkdirSync(join(dir, "img_align_celeba", "img_align_celeba"), { recursive: true });
    const layout = expectLayout(await detectCelebALayout(dir));
    expect(layout.imageCount).toBe(0);
    expect(layout.missing).toEqual(["attributes", "partition", "identity", "bbox", "landmarks"]);
    expect(layout.notes[0]).toMatch(/holds no images: the extraction is incomplete/);
    expect(layout.notes).toContain("No list_attr_celeba.txt or list_attr_celeba.csv (the 40 binary attributes of each image): comparisons of features with CelebA's attributes are skipped.");
  });

  it("says why a folder is not CelebA", async () => {
    await writeImages(join(dir, "faces"), 1);
    const found = await detectCelebALayout(dir);
    expect(found).toEqual({ kind: "none", root: dir, reason: `${dir} has no img_align_celeba/ folder (CelebA's images are in one)` });
    expect(describeCelebALayout(found)).toEqual([`Not a CelebA folder: ${found.kind === "none" ? found.reason : ""}.`]);
    expect((await detectCelebALayout(join(dir, "absent"))).kind).toBe("none");
  });
});

describe("checking images", () => {
  it("counts unreadable images: garbage, empty files, and (decoding pixels) truncated ones", async () => {
    const images = join(dir, "img_align_celeba", "img_align_celeba");
    await writeImages(images, 4);
    writeFileSync(join(images, "000005.jpg"), "this is not a JPEG");
    writeFileSync(join(images, "000006.jpg"), "");
    const whole = await jpeg(7);
    writeFileSync(join(images, "000007.jpg"), whole.subarray(0, Math.floor(whole.length * 0.8)));
    const layout = expectLayout(await detectCelebALayout(dir));
    expect(layout.imageCount).toBe(7);

    const lines: string[] = [];
    const headers = await checkCelebAImages(layout, { concurrency: 3, progress: { mode: "log", stream: { write: (t: string) => lines.push(t) } } });
    expect(headers.checked).toBe(7);
    expect(headers.unreadable).toEqual([join(images, "000005.jpg"), join(images, "000006.jpg")]);
    expect(headers.errors).toHaveLength(2);
    expect(headers.errors[0]).toMatch(/unsupported image format/);
    expect(lines.at(-1)).toMatch(/^Checking images: 100%.* 7\/7 /);

    const pixels = await checkCelebAImages(layout, { depth: "pixels", progress: false });
    expect(pixels.unreadable).toEqual([join(images, "000005.jpg"), join(images, "000006.jpg"), join(images, "000007.jpg")]);
    // libvips words a truncated JPEG either way, depending on when it notices.
    expect(pixels.errors[2]).toMatch(/premature end|failOn/i);
  });

  it("checks a list of paths, including ones that do not exist", async () => {
    await writeImages(dir, 1);
    const good = join(dir, "000001.jpg");
    const result = await checkImages([good, join(dir, "missing.jpg")], { progress: false });
    expect(result).toMatchObject({ checked: 2, unreadable: [join(dir, "missing.jpg")] });
    expect(await checkImages([], { progress: false })).toEqual({ checked: 0, unreadable: [], errors: [] });
  });
});
