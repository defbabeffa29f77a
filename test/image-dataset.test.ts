import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatAttributeCsv, formatAttributeTxt, formatIdentityTxt, formatPartitionCsv } from "../lib/data/celeba-metadata";
import { comparePythonStrings, isImageFileName, listImageFolder, openImageDataset, walkImageFiles } from "../lib/data/image-dataset";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "image-dataset-test-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Creates empty files (listing never opens them). */
async function touch(root: string, files: readonly string[]): Promise<void> {
  for (const f of files) {
    await mkdir(dirname(join(root, f)), { recursive: true });
    await writeFile(join(root, f), "");
  }
}

async function tinyJpeg(path: string, r: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await sharp({ create: { width: 4, height: 5, channels: 3, background: { r, g: 0, b: 0 } } }).jpeg().toFile(path);
}

describe("Python's string order", () => {
  it("compares by code point, not UTF-16 unit or locale", () => {
    const names = ["b", "B", "a b", "a/c", "a-1", "é", "\ue000", "\u{1F600}", "img10", "img2", "img1", "Z", "_x"];
    // What Python's sorted() gives for these names.
    const python = ["B", "Z", "_x", "a b", "a-1", "a/c", "b", "img1", "img10", "img2", "é", "\ue000", "\u{1F600}"];
    expect([...names].sort(comparePythonStrings)).toEqual(python);
    // JavaScript's default sort puts the emoji (surrogates D83D DE00) before U+E000: the reason for the comparator.
    expect(["\u{1F600}", "\ue000"].sort()).toEqual(["\u{1F600}", "\ue000"]);
    expect(comparePythonStrings("abc", "abc")).toBe(0);
    expect(comparePythonStrings("ab", "abc")).toBeLessThan(0);
  });

  it("recognises torchvision's image extensions case-insensitively", () => {
    for (const name of ["a.jpg", "a.JPG", "b.JpEg", "c.png", "d.ppm", "e.bmp", "f.pgm", "g.tif", "h.TIFF", "i.webp", ".hidden.jpg"]) {
      expect(isImageFileName(name)).toBe(true);
    }
    for (const name of ["a.gif", "a.jpg.bak", "notes.txt", "jpg", "a.heic"]) expect(isImageFileName(name)).toBe(false);
  });
});

describe("ImageFolder order", () => {
  // The listing torchvision's ImageFolder gives for this tree, computed with torchvision's own make_dataset logic
  // (sorted class folders, sorted(os.walk(followlinks=True)), sorted(fnames), IMG_EXTENSIONS) under Python 3.11.
  const tree = [
    "loose.jpg", "Loose2.PNG", "readme.txt",
    "a/img10.jpg", "a/img2.jpg", "a/img1.jpg", "a/B.JPG", "a/a.jpg", "a/notes.txt", "a/x.jpg.bak", "a/.hidden.jpg",
    "a/c/deep.jpeg", "a/c/d/deeper.webp",
    "a b/space.jpg", "a-1/dash.bmp", "a/sub-x/inner.tif", "a/sub/inner.tiff", "a/sub/zz/leaf.jpg", "a/sub.x/y.pgm",
    "a/\ue000.jpg", "a/\u{1F600}.jpg", "a/é.jpg", "a/e.jpg", "a/Z.ppm",
    "B/upper.jpg", "b/lower.jpg",
  ];
  const imageFolder = [
    "B/upper.jpg", "a/.hidden.jpg", "a/B.JPG", "a/Z.ppm", "a/a.jpg", "a/e.jpg", "a/img1.jpg", "a/img10.jpg", "a/img2.jpg",
    "a/é.jpg", "a/\ue000.jpg", "a/\u{1F600}.jpg", "a/c/deep.jpeg", "a/c/d/deeper.webp", "a/link/upper.jpg",
    "a/sub/inner.tiff", "a/sub-x/inner.tif", "a/sub.x/y.pgm", "a/sub/zz/leaf.jpg", "a b/space.jpg", "a-1/dash.bmp", "b/lower.jpg",
  ];
  let root: string;
  beforeAll(async () => {
    root = join(dir, "tree");
    await touch(root, tree);
    await symlink("../B", join(root, "a/link")); // os.walk(followlinks=True) descends into it
    await mkdir(join(root, "a/folder.jpg")); // a folder named like an image is not a file
    await symlink("..", join(root, "a/c/d/up")); // a loop back up the tree is not followed forever
  });

  it("lists class folders like ImageFolder(root), loose images first", async () => {
    expect(await listImageFolder(root, false)).toEqual(imageFolder);
    expect(await listImageFolder(root)).toEqual(["Loose2.PNG", "loose.jpg", ...imageFolder]);
  });

  it("walks one folder as ImageFolder walks a class folder: by whole directory path, not depth-first", async () => {
    const a = imageFolder.filter((f) => f.startsWith("a/")).map((f) => f.slice(2));
    expect(await walkImageFiles(join(root, "a"))).toEqual(a);
    // "sub-x" and "sub.x" sort before "sub/zz" because "-" and "." come before "/".
    expect(a.indexOf("sub-x/inner.tif")).toBeLessThan(a.indexOf("sub/zz/leaf.jpg"));
  });

  it("opens any folder with its images, recursively", async () => {
    const ds = await openImageDataset(root);
    expect(ds.layout).toBe("folder");
    expect(ds.files).toEqual(["Loose2.PNG", "loose.jpg", ...imageFolder]);
    expect(ds.paths[2]).toBe(join(root, "B", "upper.jpg"));
    expect(ds.count).toBe(imageFolder.length + 2);
    expect(ds.attributes).toBeNull();
    expect(ds.identities).toBeNull();
  });
});

describe("CelebA layouts", () => {
  const names = ["000003.jpg", "000001.jpg", "000010.jpg", "000002.jpg"];
  const sorted = ["000001.jpg", "000002.jpg", "000003.jpg", "000010.jpg"];
  const attributes = {
    names: ["Smiling", "Male"],
    // Rows in a different order from the listing, plus a row whose image is absent (000099.jpg).
    files: ["000010.jpg", "000099.jpg", "000002.jpg", "000001.jpg", "000003.jpg"],
    values: Int8Array.from([1, 1, -1, -1, 1, -1, -1, 1, -1, -1]),
  };
  const identities = { files: ["000001.jpg", "000002.jpg", "000003.jpg", "000010.jpg", "000099.jpg"], ids: Int32Array.from([11, 22, 33, 1010, 9999]) };

  async function makeCeleba(root: string, nested: boolean): Promise<void> {
    const images = nested ? join(root, "img_align_celeba", "img_align_celeba") : join(root, "img_align_celeba");
    for (const [i, n] of names.entries()) await tinyJpeg(join(images, n), i * 50);
    await writeFile(join(images, "Thumbs.db"), "not an image");
    await writeFile(join(root, "list_attr_celeba.txt"), formatAttributeTxt(attributes));
    await writeFile(join(root, "identity_CelebA.txt"), formatIdentityTxt(identities));
    await touch(root, ["stray/elsewhere.jpg"]); // not in img_align_celeba: not part of the dataset
  }

  it("reads the official layout and joins the metadata in listing order", async () => {
    const root = join(dir, "official");
    await makeCeleba(root, false);
    const ds = await openImageDataset(root);
    expect(ds.layout).toBe("celeba");
    expect(ds.imageDir).toBe(join(root, "img_align_celeba"));
    expect(ds.files).toEqual(sorted.map((n) => `img_align_celeba/${n}`));
    expect(ds.attributes!.files).toEqual(sorted);
    expect(ds.attributes!.names).toEqual(["Smiling", "Male"]);
    // 000001: (-1, 1), 000002: (1, -1), 000003: (-1, -1), 000010: (1, 1)
    expect(Array.from(ds.attributes!.values)).toEqual([-1, 1, 1, -1, -1, -1, 1, 1]);
    expect(Array.from(ds.identities!.ids)).toEqual([11, 22, 33, 1010]);
    expect(ds.metadata.unusedAttributeRows).toBe(1);
    expect(ds.metadata.unusedIdentityRows).toBe(1);
  });

  it("reads Kaggle's nested layout the same way", async () => {
    const root = join(dir, "kaggle");
    await makeCeleba(root, true);
    const ds = await openImageDataset(root);
    expect(ds.layout).toBe("celeba");
    expect(ds.files).toEqual(sorted.map((n) => `img_align_celeba/img_align_celeba/${n}`));
    expect(Array.from(ds.identities!.ids)).toEqual([11, 22, 33, 1010]);
  });

  it("reads Kaggle's CSV attributes and the train/val/test partition, aligned like the TXT files", async () => {
    const root = join(dir, "kaggle-csv");
    const images = join(root, "img_align_celeba", "img_align_celeba");
    for (const [i, n] of names.entries()) await tinyJpeg(join(images, n), i * 50);
    await writeFile(join(root, "list_attr_celeba.csv"), formatAttributeCsv(attributes));
    await writeFile(join(root, "list_eval_partition.csv"), formatPartitionCsv({ files: ["000010.jpg", "000001.jpg", "000002.jpg"], split: Uint8Array.from([2, 0, 1]) }));
    const ds = await openImageDataset(root, { onMissingMetadata: "flag" });
    expect(ds.metadata.attributeFile).toBe(join(root, "list_attr_celeba.csv"));
    expect(Array.from(ds.attributes!.values)).toEqual([-1, 1, 1, -1, -1, -1, 1, 1]);
    expect(ds.identities).toBeNull();
    // 000001 train, 000002 val, 000003 unknown (255, flagged), 000010 test.
    expect(Array.from(ds.partition!.split)).toEqual([0, 1, 255, 2]);
    await expect(openImageDataset(root)).rejects.toThrow(/list_eval_partition.csv has no row for 1 of the 4 images/);
  });

  it("keeps the first `limit` images and joins only those", async () => {
    const ds = await openImageDataset(join(dir, "official"), { limit: 2 });
    expect(ds.count).toBe(2);
    expect(ds.totalImages).toBe(4);
    expect(ds.files).toEqual(["img_align_celeba/000001.jpg", "img_align_celeba/000002.jpg"]);
    expect(Array.from(ds.identities!.ids)).toEqual([11, 22]);
    expect(ds.metadata.unusedIdentityRows).toBe(3);
    await expect(openImageDataset(join(dir, "official"), { limit: 0 })).rejects.toThrow(/limit must be a positive whole number/);
  });

  it("names images missing from a metadata file, or flags them when asked", async () => {
    const root = join(dir, "missing-meta");
    await makeCeleba(root, false);
    await tinyJpeg(join(root, "img_align_celeba", "000500.jpg"), 200);
    await tinyJpeg(join(root, "img_align_celeba", "000600.jpg"), 200);
    await expect(openImageDataset(root)).rejects.toThrow(
      /list_attr_celeba\.txt has no row for 2 of the 6 images \(img_align_celeba\/000500\.jpg, img_align_celeba\/000600\.jpg\).*onMissingMetadata: "flag"/,
    );
    const ds = await openImageDataset(root, { onMissingMetadata: "flag" });
    expect(ds.count).toBe(6);
    expect(ds.metadata.missingAttributes).toEqual(["img_align_celeba/000500.jpg", "img_align_celeba/000600.jpg"]);
    expect(ds.metadata.missingIdentities).toEqual(["img_align_celeba/000500.jpg", "img_align_celeba/000600.jpg"]);
    expect(Array.from(ds.attributes!.values.subarray(8))).toEqual([0, 0, 0, 0]);
    expect(Array.from(ds.identities!.ids)).toEqual([11, 22, 33, 1010, -1, -1]);
  });

  it("refuses two images with the same base name when metadata is keyed by base name", async () => {
    const root = join(dir, "dupes");
    await makeCeleba(root, false);
    await tinyJpeg(join(root, "img_align_celeba", "more", "000001.jpg"), 10);
    await expect(openImageDataset(root)).rejects.toThrow(/img_align_celeba\/000001\.jpg and img_align_celeba\/more\/000001\.jpg share the base name 000001\.jpg/);
    expect((await openImageDataset(root, { skipMetadata: true })).count).toBe(5);
  });
});

describe("missing data", () => {
  it("says what was looked for and how to get data when the folder does not exist", async () => {
    const err = openImageDataset(join(dir, "nope"));
    await expect(err).rejects.toThrow(/The dataset folder .*nope does not exist/);
    await expect(openImageDataset(join(dir, "nope"))).rejects.toThrow(/npm run notebooks -- --set dataset=synthetic/);
  });

  it("says what was looked for when a folder has no images", async () => {
    const root = join(dir, "empty");
    await touch(root, ["notes.txt", "sub/data.csv"]);
    await expect(openImageDataset(root)).rejects.toThrow(/No images in .*empty: looked for .*img_align_celeba\/\*\.jpg \(CelebA layout\).*dataset=synthetic/);
    const celeba = join(dir, "empty-celeba");
    await touch(celeba, ["img_align_celeba/readme.txt"]);
    await expect(openImageDataset(celeba)).rejects.toThrow(/No images in .*empty-celeba: looked for image files \(\.jpg, .*Kaggle's archive nests them/);
  });
});
