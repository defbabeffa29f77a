import { mkdir, mkdtemp, readFile, readdir, rm, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attributeColumn, parseAttributeTxt, parseIdentityTxt } from "../lib/data/celeba-metadata";
import {
  type FaceSpec, SYNTHETIC_ATTRIBUTES, SYNTHETIC_ATTRIBUTE_NAMES, SYNTHETIC_FACTORS, SyntheticDatasetMismatchError,
  faceLandmarks, faceToImage, generateSyntheticFaces, parseSyntheticFactorsCsv, renderFaceJpeg, renderFaceSvg, syntheticAttributeValues,
  syntheticFaceSpec, syntheticFaceSpecs, syntheticFactorColumn, syntheticIdentityOf,
} from "../lib/data/synthetic/faces";

// CelebA's 40 attribute names, so our CelebA-named columns can be checked against the real list.
const CELEBA_NAMES = "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young".split(" ");

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "synthetic-faces-test-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Raw {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
}

async function decode(jpeg: Buffer | string): Promise<Raw> {
  const { data, info } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

function pixel(img: Raw, x: number, y: number): [number, number, number] {
  const xi = Math.min(img.width - 1, Math.max(0, Math.round(x)));
  const yi = Math.min(img.height - 1, Math.max(0, Math.round(y)));
  const o = (yi * img.width + xi) * img.channels;
  return [img.data[o], img.data[o + 1], img.data[o + 2]];
}

const luma = ([r, g, b]: readonly number[]): number => 0.299 * r + 0.587 * g + 0.114 * b;

/** Per-channel median of a (2r+1)² box: robust to the thin strand lines drawn in hair. */
function medianColour(img: Raw, cx: number, cy: number, r: number): [number, number, number] {
  const channels: number[][] = [[], [], []];
  for (let y = cy - r; y <= cy + r; y++) for (let x = cx - r; x <= cx + r; x++) pixel(img, x, y).forEach((v, c) => channels[c].push(v));
  const med = (v: number[]): number => v.sort((a, b) => a - b)[v.length >> 1];
  return [med(channels[0]), med(channels[1]), med(channels[2])];
}

function meanLuma(img: Raw, points: readonly (readonly [number, number])[]): number {
  return points.reduce((s, [x, y]) => s + luma(pixel(img, x, y)), 0) / points.length;
}

function pearson(a: readonly number[], b: readonly number[]): number {
  const ma = a.reduce((s, v) => s + v, 0) / a.length, mb = b.reduce((s, v) => s + v, 0) / b.length;
  let sab = 0, saa = 0, sbb = 0;
  a.forEach((v, i) => { sab += (v - ma) * (b[i] - mb); saa += (v - ma) ** 2; sbb += (b[i] - mb) ** 2; });
  return sab / Math.sqrt(saa * sbb);
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(path)));
    else out.push(path);
  }
  return out.sort();
}

async function mtimes(dir: string): Promise<Map<string, number>> {
  const files = await listFiles(dir);
  return new Map(await Promise.all(files.map(async (f) => [f, (await stat(f)).mtimeMs] as const)));
}

function withFactors(spec: FaceSpec, factors: Partial<FaceSpec["factors"]>): FaceSpec {
  return { ...spec, factors: { ...spec.factors, ...factors } };
}

describe("specs (pure, no rendering)", () => {
  const plan = { seed: 11, count: 2000, identities: 100 };
  const specs = syntheticFaceSpecs(plan);

  it("are deterministic and depend on the seed", () => {
    expect(syntheticFaceSpec(plan, 123)).toEqual(specs[123]);
    expect(syntheticFaceSpec(plan, 123)).toEqual(syntheticFaceSpec({ ...plan }, 123));
    const other = syntheticFaceSpec({ ...plan, seed: 12 }, 123);
    expect(other.factors).not.toEqual(specs[123].factors);
    expect(renderFaceSvg(specs[5])).toBe(renderFaceSvg(syntheticFaceSpec(plan, 5)));
  });

  it("deal every identity ⌊count/identities⌋ or ⌈count/identities⌉ images, spread over the file list", () => {
    const counts = new Map<number, number[]>();
    specs.forEach((s) => counts.set(s.identity.id, [...(counts.get(s.identity.id) ?? []), s.index]));
    expect(counts.size).toBe(100);
    for (const indices of counts.values()) {
      expect(indices.length).toBe(20);
      expect(Math.max(...indices) - Math.min(...indices)).toBeGreaterThan(500); // not one consecutive block
    }
    const uneven = { seed: 3, count: 23, identities: 5 };
    const sizes = new Map<number, number>();
    for (let i = 0; i < 23; i++) sizes.set(syntheticIdentityOf(uneven, i), (sizes.get(syntheticIdentityOf(uneven, i)) ?? 0) + 1);
    expect([...sizes.values()].sort()).toEqual([4, 4, 5, 5, 5]);
  });

  it("keep an identity's traits fixed while the photo factors vary", () => {
    const ofOne = specs.filter((s) => s.identity.id === 7);
    for (const s of ofOne) expect(s.identity).toEqual(ofOne[0].identity);
    const rotations = new Set(ofOne.map((s) => s.factors.rotationDeg));
    const backgrounds = new Set(ofOne.map((s) => s.factors.backgroundHueDeg));
    expect(rotations.size).toBe(ofOne.length);
    expect(backgrounds.size).toBe(ofOne.length);
  });

  it("give every attribute both values over 2,000 images, and use CelebA's names where they apply", () => {
    const rows = specs.map(syntheticAttributeValues);
    SYNTHETIC_ATTRIBUTE_NAMES.forEach((name, j) => {
      const positives = rows.filter((r) => r[j] > 0).length;
      expect(positives, name).toBeGreaterThan(20);
      expect(positives, name).toBeLessThan(1980);
    });
    expect(new Set(SYNTHETIC_ATTRIBUTE_NAMES).size).toBe(SYNTHETIC_ATTRIBUTE_NAMES.length);
    for (const a of SYNTHETIC_ATTRIBUTES) {
      expect(CELEBA_NAMES.includes(a.name), a.name).toBe(a.inCelebA);
      expect(a.description.length).toBeGreaterThan(10);
    }
    // Spot checks of the thresholds against the factors they document.
    const j = (name: string): number => SYNTHETIC_ATTRIBUTE_NAMES.indexOf(name);
    specs.forEach((s, i) => {
      expect(rows[i][j("Tilted_Clockwise")] > 0).toBe(s.factors.rotationDeg > 0);
      expect(rows[i][j("Smiling")] > 0).toBe(s.factors.smile > 0.5);
      expect(rows[i][j("Bright_Background")] > 0).toBe(s.factors.backgroundLightness > 0.5);
      expect(rows[i][j("Large_Face")] > 0).toBe(s.factors.scale > 1);
      expect(rows[i][j("Eyeglasses")] > 0).toBe(s.factors.eyeglasses);
      if (s.identity.facialHair !== "none" && s.identity.facialHair !== "stubble") expect(s.identity.male).toBe(true);
    });
  });

  it("reject bad plans and indices with messages that name the value", () => {
    expect(() => syntheticFaceSpec({ seed: 1, count: 0, identities: 1 }, 0)).toThrow(/count must be an integer from 1/);
    expect(() => syntheticFaceSpec({ seed: 1, count: 10, identities: 11 }, 0)).toThrow(/identities must be an integer from 1 to count \(10\), got 11/);
    expect(() => syntheticFaceSpec({ seed: -1, count: 10, identities: 1 }, 0)).toThrow(/seed must be an integer/);
    expect(() => syntheticFaceSpec({ seed: 1, count: 10, identities: 1 }, 10)).toThrow(/index 10 is outside 0..9/);
  });
});

describe("generated dataset", () => {
  const count = 40;
  const identities = 5;
  let dirA: string;
  let dirB: string;
  let dirC: string;

  beforeAll(async () => {
    dirA = join(root, "a");
    dirB = join(root, "b");
    dirC = join(root, "c");
    await generateSyntheticFaces({ outDir: dirA, count, identities, seed: 7 });
    await generateSyntheticFaces({ outDir: dirB, count, identities, seed: 7, concurrency: 1 });
    await generateSyntheticFaces({ outDir: dirC, count, identities, seed: 8 });
  });

  it("is byte-identical for the same seed and different for another seed", async () => {
    const filesA = await listFiles(dirA);
    const rel = (dir: string, files: string[]): string[] => files.map((f) => f.slice(dir.length));
    expect(rel(dirB, await listFiles(dirB))).toEqual(rel(dirA, filesA));
    expect(filesA.length).toBe(count + 4);
    for (const f of filesA) {
      const same = (await readFile(f)).equals(await readFile(dirB + f.slice(dirA.length)));
      expect(same, f).toBe(true);
    }
    let differing = 0;
    for (const f of filesA) if (!(await readFile(f)).equals(await readFile(dirC + f.slice(dirA.length)))) differing++;
    expect(differing).toBe(filesA.length); // every image, the metadata and the manifest (its seed) differ
  });

  it("has CelebA's layout: names, 178×218 RGB JPEGs, attribute and identity files", async () => {
    const images = (await readdir(join(dirA, "img_align_celeba"))).sort();
    expect(images).toEqual(Array.from({ length: count }, (_, i) => `${String(i + 1).padStart(6, "0")}.jpg`));
    for (const name of [images[0], images[count - 1]]) {
      const meta = await sharp(join(dirA, "img_align_celeba", name)).metadata();
      expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(["jpeg", 178, 218, 3]);
    }
    const attrs = parseAttributeTxt(await readFile(join(dirA, "list_attr_celeba.txt"), "utf8"));
    expect(attrs.names).toEqual(SYNTHETIC_ATTRIBUTE_NAMES);
    expect(attrs.files).toEqual(images);
    const ids = parseIdentityTxt(await readFile(join(dirA, "identity_CelebA.txt"), "utf8"));
    expect(ids.files).toEqual(images);
    const perId = new Map<number, number>();
    ids.ids.forEach((id) => perId.set(id, (perId.get(id) ?? 0) + 1));
    expect([...perId.keys()].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
    expect([...perId.values()]).toEqual([8, 8, 8, 8, 8]);
    const manifest = JSON.parse(await readFile(join(dirA, "synthetic.json"), "utf8")) as Record<string, unknown>;
    expect(manifest).toMatchObject({ seed: 7, count, identities, width: 178, height: 218 });
  });

  it("records the exact factors, with each identity's fixed traits equal on all its images", async () => {
    const table = parseSyntheticFactorsCsv(await readFile(join(dirA, "synthetic_factors.csv"), "utf8"));
    expect(table.names).toEqual(SYNTHETIC_FACTORS.map((f) => f.name));
    expect(table.rows.length).toBe(count);
    const specs = syntheticFaceSpecs({ seed: 7, count, identities });
    expect(Array.from(syntheticFactorColumn(table, "rotation_deg"))).toEqual(specs.map((s) => s.factors.rotationDeg));
    expect(Array.from(syntheticFactorColumn(table, "background_lightness"))).toEqual(specs.map((s) => s.factors.backgroundLightness));
    expect(table.rows.map((r) => r[0])).toEqual(specs.map((s) => s.file));
    const ids = parseIdentityTxt(await readFile(join(dirA, "identity_CelebA.txt"), "utf8"));
    expect(Array.from(syntheticFactorColumn(table, "identity"))).toEqual(Array.from(ids.ids));
    const fixed = ["male", "skin_tone", "eye_color", "hair_color", "hair_style", "facial_hair", "age"].map((n) => table.names.indexOf(n));
    const varying = ["rotation_deg", "scale", "smile", "background_hue_deg"].map((n) => table.names.indexOf(n));
    const byId = new Map<string, (readonly string[])[]>();
    for (const row of table.rows) byId.set(row[1], [...(byId.get(row[1]) ?? []), row]);
    for (const rows of byId.values()) {
      for (const j of fixed) expect(new Set(rows.map((r) => r[j])).size).toBe(1);
      for (const j of varying) expect(new Set(rows.map((r) => r[j])).size).toBe(rows.length);
    }
    // The attribute file agrees with the traits: Male and the hair colours are fixed per identity too.
    const attrs = parseAttributeTxt(await readFile(join(dirA, "list_attr_celeba.txt"), "utf8"));
    for (const name of ["Male", "Black_Hair", "Blond_Hair", "Pale_Skin"]) {
      const column = attributeColumn(attrs, name);
      for (const [id] of byId) {
        const values = new Set(Array.from(ids.ids).flatMap((v, i) => (String(v) === id ? [column[i]] : [])));
        expect(values.size, `${name} of identity ${id}`).toBe(1);
      }
    }
  });

  it("brightens the top corners of Bright_Background images", async () => {
    const attrs = parseAttributeTxt(await readFile(join(dirA, "list_attr_celeba.txt"), "utf8"));
    const bright = attributeColumn(attrs, "Bright_Background");
    const specs = syntheticFaceSpecs({ seed: 7, count, identities });
    const corner: number[] = [];
    for (const spec of specs) {
      const img = await decode(join(dirA, "img_align_celeba", spec.file));
      const patch: [number, number][] = [];
      for (let y = 1; y < 7; y++) for (let x = 1; x < 7; x++) patch.push([x, y], [177 - x, y]);
      corner.push(meanLuma(img, patch));
    }
    expect(pearson(corner, specs.map((s) => s.factors.backgroundLightness))).toBeGreaterThan(0.85);
    const mean = (sign: number): number => {
      const v = corner.filter((_, i) => bright[i] === sign);
      return v.reduce((s, x) => s + x, 0) / v.length;
    };
    expect(mean(1) - mean(-1)).toBeGreaterThan(60);
  });
});

describe("attributes agree with the pixels", () => {
  const specs = syntheticFaceSpecs({ seed: 21, count: 600, identities: 120 });

  it("blond hair is bright and yellow at the crown; black hair is dark and grey", async () => {
    const usable = (s: FaceSpec): boolean => s.factors.hat === "none" && s.identity.hairStyle !== "bald" && s.factors.blurSigma === 0;
    const blond = specs.filter((s) => usable(s) && s.identity.hairColor === "blond").slice(0, 8);
    const black = specs.filter((s) => usable(s) && s.identity.hairColor === "black").slice(0, 8);
    expect(blond.length).toBe(8);
    expect(black.length).toBe(8);
    const measure = async (s: FaceSpec): Promise<{ yellow: number; light: number }> => {
      const img = await decode(await renderFaceJpeg(s));
      const [x, y] = faceLandmarks(s).crown;
      const c = medianColour(img, Math.round(x), Math.round(y), 3);
      return { yellow: (c[0] + c[1]) / 2 - c[2], light: luma(c) };
    };
    const b = await Promise.all(blond.map(measure));
    const k = await Promise.all(black.map(measure));
    expect(Math.min(...b.map((m) => m.yellow))).toBeGreaterThan(25);
    expect(Math.max(...k.map((m) => m.yellow))).toBeLessThan(15);
    expect(Math.min(...b.map((m) => m.light))).toBeGreaterThan(Math.max(...k.map((m) => m.light)) + 40);
  });

  it("rotated faces are rotated by the recorded angle about the face centre", async () => {
    const base = specs.find((s) => s.factors.hat === "none" && s.factors.blurSigma === 0 && !s.factors.eyeglasses)!;
    const upright = withFactors(base, { rotationDeg: 0, lightX: 0 });
    const ref = await decode(await renderFaceJpeg(upright));
    const [cx, cy] = faceToImage(upright, 0, 0); // the face centre, about which the renderer rotates
    const radius = 40 * base.factors.scale;
    // Rotate the upright render by `deg` (clockwise in the image) and compare inside a disc around the face centre.
    const error = (img: Raw, deg: number): number => {
      const a = (deg * Math.PI) / 180;
      let sum = 0, n = 0;
      for (let y = Math.ceil(cy - radius); y <= cy + radius; y++) {
        for (let x = Math.ceil(cx - radius); x <= cx + radius; x++) {
          if ((x - cx) ** 2 + (y - cy) ** 2 > radius * radius) continue;
          const sx = cx + (x - cx) * Math.cos(a) + (y - cy) * Math.sin(a); // inverse rotation
          const sy = cy - (x - cx) * Math.sin(a) + (y - cy) * Math.cos(a);
          sum += (luma(pixel(ref, sx, sy)) - luma(pixel(img, x, y))) ** 2;
          n++;
        }
      }
      return sum / n;
    };
    for (const angle of [20, -14, base.factors.rotationDeg]) {
      const img = await decode(await renderFaceJpeg(withFactors(upright, { rotationDeg: angle })));
      let best = 0, bestError = Infinity;
      for (let deg = -30; deg <= 30; deg += 1) {
        const e = error(img, deg);
        if (e < bestError) [best, bestError] = [deg, e];
      }
      expect(Math.abs(best - angle), `recorded ${angle}°, measured ${best}°`).toBeLessThanOrEqual(1.5);
      if (Math.abs(angle) >= 5) expect(bestError).toBeLessThan(error(img, -angle) / 3);
    }
  });

  it("eyeglasses put dark frame pixels around the eyes", async () => {
    const withGlasses = specs.filter((s) => s.factors.eyeglasses && s.factors.hat === "none").slice(0, 10);
    expect(withGlasses.length).toBe(10);
    expect(new Set(withGlasses.map((s) => s.identity.glassesShape)).size).toBe(2);
    for (const spec of withGlasses) {
      const on = await decode(await renderFaceJpeg(withFactors(spec, { blurSigma: 0 })));
      const off = await decode(await renderFaceJpeg(withFactors(spec, { blurSigma: 0, eyeglasses: false })));
      const { leftEye, rightEye } = faceLandmarks(spec);
      const k = spec.factors.scale;
      // Pixels in a box around each eye that the glasses make dark, and how much they change the box at all.
      let darkened = 0, change = 0;
      for (const [ex, ey] of [leftEye, rightEye]) {
        for (let y = Math.round(ey - 12 * k); y <= ey + 10 * k; y++) {
          for (let x = Math.round(ex - 14 * k); x <= ex + 14 * k; x++) {
            const a = luma(pixel(on, x, y)), b = luma(pixel(off, x, y));
            if (a < b - 25 && a < 100) darkened++;
            change += Math.abs(a - b);
          }
        }
      }
      expect(change / (2 * 29 * 23 * k * k), `${spec.file}: mean change around the eyes`).toBeGreaterThan(6);
      // On all but the deepest skin tones the frame is darker than the skin it covers.
      if (spec.identity.skinTone > 0.3) expect(darkened, `${spec.file}: darkened pixels`).toBeGreaterThan(120 * k * k);
    }
  });

  it("side light brightens the lit side of the face", async () => {
    const base = withFactors(specs.find((s) => s.factors.hat === "none")!, { rotationDeg: 0, blurSigma: 0, exposure: 1 });
    const { leftEye, rightEye } = faceLandmarks(base);
    const cheek = (img: Raw, side: readonly [number, number]): number => meanLuma(img, [[side[0], side[1] + 14], [side[0] + 1, side[1] + 15], [side[0] - 1, side[1] + 15]]);
    const fromLeft = await decode(await renderFaceJpeg(withFactors(base, { lightX: -1 })));
    const fromRight = await decode(await renderFaceJpeg(withFactors(base, { lightX: 1 })));
    expect(cheek(fromLeft, leftEye)).toBeGreaterThan(cheek(fromLeft, rightEye) + 15);
    expect(cheek(fromRight, rightEye)).toBeGreaterThan(cheek(fromRight, leftEye) + 15);
  });
});

describe("resuming and refusing", () => {
  it("skips a complete dataset without touching it, and restores a deleted image identically", async () => {
    const outDir = join(root, "resume");
    const first = await generateSyntheticFaces({ outDir, count: 24, identities: 4, seed: 5 });
    expect([first.rendered, first.skipped]).toEqual([24, false]);
    const before = await mtimes(outDir);
    const started = performance.now();
    const progress: [number, number][] = [];
    const again = await generateSyntheticFaces({ outDir, count: 24, identities: 4, seed: 5, onProgress: (d, t) => progress.push([d, t]) });
    expect(performance.now() - started).toBeLessThan(500);
    expect([again.rendered, again.skipped]).toEqual([0, true]);
    expect(progress).toEqual([[24, 24]]);
    expect(await mtimes(outDir)).toEqual(before);

    const victim = join(outDir, "img_align_celeba", "000005.jpg");
    const original = await readFile(victim);
    await unlink(victim);
    await unlink(join(outDir, "synthetic.json"));
    await writeFile(join(outDir, "img_align_celeba", "000006.jpg.tmp-123-0badf00d"), "half a jpeg");
    const repaired = await generateSyntheticFaces({ outDir, count: 24, identities: 4, seed: 5 });
    expect([repaired.rendered, repaired.skipped]).toEqual([1, false]);
    expect((await readFile(victim)).equals(original)).toBe(true);
    const after = await mtimes(outDir);
    for (const [file, time] of before) {
      if (file !== victim && !file.endsWith("synthetic.json")) expect(after.get(file), file).toBe(time);
    }
    expect(after.has(join(outDir, "img_align_celeba", "000006.jpg.tmp-123-0badf00d"))).toBe(false);
    expect(after.has(join(outDir, "synthetic.json"))).toBe(true);

    // A missing image under a present manifest is noticed and repaired too.
    await unlink(victim);
    const fixed = await generateSyntheticFaces({ outDir, count: 24, identities: 4, seed: 5 });
    expect([fixed.rendered, fixed.skipped]).toEqual([1, false]);
    expect((await readFile(victim)).equals(original)).toBe(true);

    // So is a deleted metadata file: rewritten identically, images left alone.
    const factorFile = join(outDir, "synthetic_factors.csv");
    const factors = await readFile(factorFile);
    const imagesBefore = await mtimes(join(outDir, "img_align_celeba"));
    await unlink(factorFile);
    const rewritten = await generateSyntheticFaces({ outDir, count: 24, identities: 4, seed: 5 });
    expect([rewritten.rendered, rewritten.skipped]).toEqual([0, false]);
    expect((await readFile(factorFile)).equals(factors)).toBe(true);
    expect(await mtimes(join(outDir, "img_align_celeba"))).toEqual(imagesBefore);
  });

  it("rejects bad counts and options with a clear error", async () => {
    const outDir = join(root, "bad");
    await expect(generateSyntheticFaces({ outDir, count: 0 })).rejects.toThrow(/count must be a positive integer.*got 0/);
    await expect(generateSyntheticFaces({ outDir, count: -3 })).rejects.toThrow(/count must be a positive integer.*got -3/);
    await expect(generateSyntheticFaces({ outDir, count: 2.5 })).rejects.toThrow(/count must be a positive integer.*got 2.5/);
    await expect(generateSyntheticFaces({ outDir, count: Number.NaN })).rejects.toThrow(/count must be a positive integer.*got NaN/);
    await expect(generateSyntheticFaces({ outDir, count: 1_000_000 })).rejects.toThrow(/999999.*6-digit/);
    await expect(generateSyntheticFaces({ outDir, count: 10, identities: 0 })).rejects.toThrow(/identities must be an integer/);
    await expect(generateSyntheticFaces({ outDir, count: 10, seed: 1.5 })).rejects.toThrow(/seed must be an integer/);
    await expect(generateSyntheticFaces({ outDir, count: 10, concurrency: 0 })).rejects.toThrow(/concurrency must be a positive integer/);
    await expect(stat(outDir)).rejects.toThrow(/ENOENT/); // nothing was created
  });

  it("refuses a folder holding a different dataset, naming both, and leaves it untouched", async () => {
    const outDir = join(root, "other");
    await generateSyntheticFaces({ outDir, count: 10, identities: 2, seed: 1 });
    const before = await mtimes(outDir);
    await expect(generateSyntheticFaces({ outDir, count: 10, identities: 2, seed: 2 })).rejects.toThrow(SyntheticDatasetMismatchError);
    await expect(generateSyntheticFaces({ outDir, count: 10, identities: 2, seed: 2 })).rejects.toThrow(/seed 1, count 10, identities 2.*you asked for seed 2, count 10/);
    await expect(generateSyntheticFaces({ outDir, count: 12, identities: 2, seed: 1 })).rejects.toThrow(/count 10.*you asked for seed 1, count 12/);
    // Unfinished (no manifest) but from another seed: refused as well, not mixed.
    await unlink(join(outDir, "synthetic.json"));
    await expect(generateSyntheticFaces({ outDir, count: 10, identities: 2, seed: 2 })).rejects.toThrow(/unfinished synthetic dataset that differs/);
    const after = await mtimes(outDir);
    before.delete(join(outDir, "synthetic.json"));
    expect(after).toEqual(before);

    // A CelebA-like folder that is not ours (images and attribute file, no synthetic files).
    const foreign = join(root, "foreign");
    await mkdir(join(foreign, "img_align_celeba"), { recursive: true });
    await writeFile(join(foreign, "img_align_celeba", "000001.jpg"), await readFile(join(outDir, "img_align_celeba", "000001.jpg")));
    await writeFile(join(foreign, "list_attr_celeba.txt"), "1\nSmiling\n000001.jpg 1\n");
    await expect(generateSyntheticFaces({ outDir: foreign, count: 5 })).rejects.toThrow(/not a synthetic-faces set.*refusing to mix/);
    expect(await readdir(foreign)).toEqual(["img_align_celeba", "list_attr_celeba.txt"]);
  });
});

it("draws the pupils where faceLandmarks puts the eyes, for any pose", async () => {
  const specs = syntheticFaceSpecs({ seed: 4, count: 12, identities: 12 });
  for (const s of specs) {
    const spec = withFactors(s, { eyeglasses: false, blurSigma: 0, yaw: 0, lightX: 0 });
    const img = await decode(await renderFaceJpeg(spec));
    const { leftEye, rightEye } = faceLandmarks(spec);
    for (const [x, y] of [leftEye, rightEye]) {
      const pupil = luma(pixel(img, x, y - 0.5 * spec.factors.scale));
      expect(pupil, spec.file).toBeLessThan(45);
      expect(pupil, spec.file).toBeLessThan(luma(pixel(img, x, y + 14 * spec.factors.scale)));
    }
  }
});
