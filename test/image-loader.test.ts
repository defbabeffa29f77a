import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { maxAbsDiff } from "./numeric-helpers";
import {
  BadImageError,
  centreSquare,
  createImageLoader,
  decodeImage,
  decodeRgb,
  resizeBilinearTorch,
  resizeBilinearTorchUint8,
  type ImageBatch,
  type LoaderEvent,
  type RgbImage,
} from "../lib/data/image-loader";
import { readNpyHeader, readNpyRows } from "../lib/formats/npy";
import { MAX_IMAGE_PIXELS } from "../lib/kernels/turbojpeg";
import { projectRoot } from "../lib/util/project";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "image-loader-test-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes raw RGB(A) pixels as a lossless PNG. */
async function png(path: string, width: number, height: number, pixels: number[], channels: 1 | 3 | 4 = 3): Promise<string> {
  const image = sharp(Buffer.from(pixels), { raw: { width, height, channels } });
  await (channels === 1 ? image.toColourspace("b-w") : image).png().toFile(path);
  return path;
}

/** A noisy JPEG of the given size, different for each seed. */
async function noiseJpeg(path: string, width: number, height: number, seed: number): Promise<string> {
  const pixels = Array.from({ length: width * height * 3 }, (_, i) => (i * 37 + seed * 101 + ((i * i * (seed + 3)) % 97)) % 256);
  await sharp(Buffer.from(pixels), { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toFile(path);
  return path;
}

/**
 * torch's `F.interpolate(x, (outH, outW), mode="bilinear", align_corners=False)` written out per output pixel in
 * float64, the source coordinates exact or, with `torchCoordinates`, as torch 1.13 computes them (the scale in
 * float32, the weight λ rounded to float32).
 */
function referenceBilinear(image: RgbImage, outH: number, outW: number, torchCoordinates = false): Float64Array {
  const { data, width, height } = image;
  const out = new Float64Array(outH * outW * 3);
  const r = torchCoordinates ? Math.fround : (v: number): number => v;
  const source = (d: number, inSize: number, outSize: number): [number, number, number] => {
    const src = Math.max(r(inSize / outSize) * (d + 0.5) - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    return [i0, Math.min(i0 + 1, inSize - 1), r(src - i0)];
  };
  for (let y = 0; y < outH; y++) {
    const [y0, y1, ly] = source(y, height, outH);
    for (let x = 0; x < outW; x++) {
      const [x0, x1, lx] = source(x, width, outW);
      for (let c = 0; c < 3; c++) {
        const at = (yy: number, xx: number): number => data[(yy * width + xx) * 3 + c] / 255;
        out[(y * outW + x) * 3 + c] = (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
      }
    }
  }
  return out;
}

function randomImage(width: number, height: number, seed: number): RgbImage {
  let s = seed;
  const data = Uint8Array.from({ length: width * height * 3 }, () => ((s = (s * 1103515245 + 12345) % 2147483648), s % 256));
  return { data, width, height };
}

async function collect(batches: AsyncGenerator<ImageBatch>): Promise<ImageBatch[]> {
  const out: ImageBatch[] = [];
  for await (const b of batches) out.push(b);
  return out;
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe("exact pixels", () => {
  it("decodes a 2×2 solid colour at its own size to exactly value/255, in both modes", async () => {
    const file = await png(join(dir, "solid.png"), 2, 2, [10, 128, 255, 10, 128, 255, 10, 128, 255, 10, 128, 255]);
    for (const mode of ["post", "recommended"] as const) {
      const { data, shape } = await decodeImage(file, { size: 2, mode });
      expect(shape).toEqual([2, 2, 3]);
      expect(Array.from(data)).toEqual(Array(4).fill([10, 128, 255].map((v) => Math.fround(v / 255))).flat());
    }
  });

  it("keeps every pixel in place (HWC, row-major) at its own size", async () => {
    const pixels = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24]; // 4 wide, 2 tall
    const file = await png(join(dir, "ramp.png"), 4, 2, pixels);
    const rgb = await decodeRgb(file);
    expect([rgb.width, rgb.height]).toEqual([4, 2]);
    expect(Array.from(rgb.data)).toEqual(pixels);
  });

  it("repeats greyscale into R, G, B and drops alpha as PIL's convert(\"RGB\") does", async () => {
    const grey = await decodeRgb(await png(join(dir, "grey.png"), 2, 1, [146, 30], 1));
    expect(Array.from(grey.data)).toEqual([146, 146, 146, 30, 30, 30]);
    const rgba = await decodeRgb(await png(join(dir, "rgba.png"), 1, 1, [10, 20, 30, 7], 4));
    expect(Array.from(rgba.data)).toEqual([10, 20, 30]);
    const { data } = await decodeImage(join(dir, "rgba.png"), { size: 3, mode: "post" });
    expect(data.length).toBe(27);
  });
});

describe("the post's resize: torch bilinear, antialias=False", () => {
  it("matches torch's known 1-D result: [0, 1] → [0, 0.25, 0.75, 1]", () => {
    const image: RgbImage = { data: Uint8Array.from([0, 0, 0, 255, 255, 255]), width: 2, height: 1 };
    const out = new Float32Array(4 * 3);
    resizeBilinearTorch(image, 1, 4, out);
    expect(Array.from(out.filter((_, i) => i % 3 === 0))).toEqual([0, 0.25, 0.75, 1]);
  });

  // Torch rounds the scale and the weights to float32, as resizeBilinearTorch does. Against exact (float64) weights
  // that costs up to about 1 ulp of a coordinate near 200 (1.5e-5) times a pixel difference.
  it("matches PyTorch's ToTensor + Resize(antialias=None) to one float32 step (test/fixtures/resize)", () => {
    const fixture = JSON.parse(readFileSync(join(projectRoot(), "test", "fixtures", "resize", "cases.json"), "utf8")) as {
      cases: { width: number; height: number; outWidth: number; outHeight: number; pixels: string; resized: string }[];
    };
    expect(fixture.cases.length).toBeGreaterThan(4);
    for (const c of fixture.cases) {
      const pixels = Buffer.from(c.pixels, "base64");
      const bytes = Buffer.from(c.resized, "base64");
      const torch = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      const ours = new Float32Array(c.outWidth * c.outHeight * 3);
      resizeBilinearTorch({ data: new Uint8Array(pixels), width: c.width, height: c.height }, c.outHeight, c.outWidth, ours);
      expect(ours.length).toBe(torch.length);
      expect(maxAbsDiff(ours, torch), `${c.width}×${c.height} → ${c.outWidth}×${c.outHeight}`).toBeLessThanOrEqual(1.2e-7);
    }
  });

  it("matches the formula written out independently, shrinking and enlarging, to float32 rounding", () => {
    const cases: [number, number, number, number][] = [[89, 109, 224, 224], [178, 218, 224, 224], [178, 218, 64, 64], [7, 5, 3, 11], [1, 1, 4, 4], [3, 3, 3, 3]];
    for (const [w, h, outW, outH] of cases) {
      const image = randomImage(w, h, w * 31 + outH);
      const ours = new Float32Array(outW * outH * 3);
      resizeBilinearTorch(image, outH, outW, ours);
      expect(maxAbsDiff(ours, referenceBilinear(image, outH, outW, true))).toBeLessThan(1e-6);
      expect(maxAbsDiff(ours, referenceBilinear(image, outH, outW))).toBeLessThan(3e-5);
      const rounded = new Uint8Array(outW * outH * 3);
      resizeBilinearTorchUint8(image, outH, outW, rounded);
      expect(maxAbsDiff(rounded, Array.from(ours, (v) => v * 255))).toBeLessThanOrEqual(0.5 + 1e-4);
    }
  });

  it("differs from sharp's own 'linear' kernel, which is why sharp only decodes in post mode", async () => {
    const report: string[] = [];
    for (const [w, h, size] of [[178, 218, 64], [89, 109, 224]] as const) {
      const image = randomImage(w, h, 7);
      const viaSharp = await sharp(Buffer.from(image.data), { raw: { width: w, height: h, channels: 3 } })
        .resize(size, size, { fit: "fill", kernel: "linear" })
        .raw()
        .toBuffer();
      const torch = referenceBilinear(image, size, size);
      const diff = maxAbsDiff(Array.from(new Uint8Array(viaSharp), (v) => v / 255), torch);
      report.push(`${w}×${h}→${size}: max |sharp linear − torch bilinear| = ${diff.toFixed(3)}`);
      expect(diff).toBeGreaterThan(2 / 255);
    }
    console.log(report.join("\n"));
  });

  it("stretches to the square ignoring aspect in post mode, centre-crops in recommended mode", async () => {
    // 8 wide × 2 tall: stripes 2 px wide of red, green, blue, white.
    const stripe = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]];
    const row = Array.from({ length: 8 }, (_, x) => stripe[x >> 1]).flat();
    const file = await png(join(dir, "stripes.png"), 8, 2, [...row, ...row]);
    const pixel = (data: Float32Array, size: number, x: number, y: number): number[] => Array.from(data.subarray((y * size + x) * 3, (y * size + x) * 3 + 3), (v) => Math.round(v * 255));
    const post = (await decodeImage(file, { size: 4, mode: "post" })).data;
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) expect(pixel(post, 4, x, y)).toEqual(stripe[x]);
    // The centred 2×2 square is x = 3 (green) and x = 4 (blue): no red, no white.
    const recommended = (await decodeImage(file, { size: 4, mode: "recommended" })).data;
    for (let y = 0; y < 4; y++) {
      const [r0, g0, b0] = pixel(recommended, 4, 0, y);
      const [r3, g3, b3] = pixel(recommended, 4, 3, y);
      expect(g0).toBeGreaterThan(200);
      expect(r0 + b0).toBeLessThan(60);
      expect(b3).toBeGreaterThan(200);
      expect(r3 + g3).toBeLessThan(60);
    }
  });

  it("places the centre square as torchvision's CenterCrop does (Python's round, halves to even)", () => {
    expect(centreSquare(178, 218)).toEqual({ left: 0, top: 20, side: 178 });
    expect(centreSquare(4, 7)).toEqual({ left: 0, top: 2, side: 4 }); // round(1.5) = 2
    expect(centreSquare(4, 9)).toEqual({ left: 0, top: 2, side: 4 }); // round(2.5) = 2
    expect(centreSquare(11, 4)).toEqual({ left: 4, top: 0, side: 4 }); // round(3.5) = 4
  });
});

describe("batches", () => {
  let files: string[];
  beforeAll(async () => {
    await mkdir(join(dir, "set"), { recursive: true });
    files = [];
    for (let i = 0; i < 7; i++) files.push(await noiseJpeg(join(dir, "set", `img${i}.jpg`), 20 + i, 30 - i, i));
  });

  it("gives NHWC float32 batches in [0, 1], in listing order, the last one smaller", async () => {
    for (const mode of ["post", "recommended"] as const) {
      const loader = createImageLoader(files, { size: 16, mode, batchSize: 3 });
      const batches = await collect(loader.batches());
      expect(batches.map((b) => b.shape)).toEqual([[3, 16, 16, 3], [3, 16, 16, 3], [1, 16, 16, 3]]);
      expect(batches.flatMap((b) => Array.from(b.indices))).toEqual([0, 1, 2, 3, 4, 5, 6]);
      expect(batches.flatMap((b) => b.files)).toEqual(files);
      let min = Infinity;
      let max = -Infinity;
      for (const b of batches) {
        expect(b.data.length).toBe(b.shape[0] * 16 * 16 * 3);
        for (const v of b.data) {
          min = Math.min(min, v);
          max = Math.max(max, v);
        }
      }
      expect(min).toBeGreaterThanOrEqual(0);
      expect(max).toBeLessThanOrEqual(1);
      expect(max - min).toBeGreaterThan(0.5); // real content, not zeros
      // Each image in a batch is that file, decoded alone.
      const alone = await decodeImage(files[4], { size: 16, mode });
      expect(Array.from(batches[1].data.subarray(16 * 16 * 3, 2 * 16 * 16 * 3))).toEqual(Array.from(alone.data));
      expect(loader.stats.decoded).toBe(7);
    }
  });

  it("follows a given order", async () => {
    const loader = createImageLoader(files, { size: 8, mode: "post", batchSize: 4 });
    const order = [6, 2, 0, 5, 1];
    const batches = await collect(loader.batches({ order }));
    expect(batches.flatMap((b) => Array.from(b.indices))).toEqual(order);
    expect(batches[0].files[0]).toBe(files[6]);
    const alone = await decodeImage(files[6], { size: 8, mode: "post" });
    expect(Array.from(batches[0].data.subarray(0, 8 * 8 * 3))).toEqual(Array.from(alone.data));
    await expect(loader.batches({ order: [0, 7] }).next()).rejects.toThrow(/order\[1\] = 7 is not an image index \(0 … 6\)/);
  });

  it("decodes ahead: a slow consumer never waits after the first batch, and at most `prefetch` batches are ahead", async () => {
    const many = Array.from({ length: 20 }, (_, i) => files[i % files.length]);
    const events: LoaderEvent[] = [];
    const loader = createImageLoader(many, { size: 32, mode: "post", batchSize: 2, prefetch: 2, onEvent: (e) => events.push(e) });
    let received = 0;
    const ahead: number[] = [];
    for await (const batch of loader.batches()) {
      received++;
      expect(batch.shape[0]).toBe(2);
      // While the consumer works on this batch: batches started but not yet received.
      const started = events.filter((e) => e.type === "batch-start").length;
      ahead.push(started - received);
      await sleep(100); // "compute": far longer than decoding two small images, even on a loaded machine
      ahead.push(events.filter((e) => e.type === "batch-start").length - received);
      // The next batch is already decoded by the time the consumer asks for it.
      if (received < 10) expect(events.some((e) => e.type === "batch-ready" && e.batch === received)).toBe(true);
    }
    const yields = events.filter((e): e is Extract<LoaderEvent, { type: "batch-yield" }> => e.type === "batch-yield");
    expect(yields).toHaveLength(10);
    expect(yields.slice(1).every((e) => e.waitedMs === 0)).toBe(true);
    expect(Math.max(...ahead)).toBe(2); // prefetch is used, and bounded
    expect(Math.min(...ahead.slice(0, -4))).toBe(2);
  });
});

describe("bad images", () => {
  let files: string[];
  let truncated: string;
  let text: string;
  let missing: string;
  beforeAll(async () => {
    await mkdir(join(dir, "bad"), { recursive: true });
    const good = [0, 1, 2, 3].map((i) => join(dir, "bad", `good${i}.jpg`));
    for (const [i, f] of good.entries()) await noiseJpeg(f, 12, 12, i);
    truncated = join(dir, "bad", "truncated.jpg");
    const whole = await readFile(good[0]);
    await writeFile(truncated, whole.subarray(0, Math.floor(whole.length / 2)));
    text = join(dir, "bad", "text.jpg");
    await writeFile(text, "this is not a JPEG");
    missing = join(dir, "bad", "gone.jpg");
    files = [good[0], truncated, good[1], text, good[2], missing, good[3]];
  });

  it("stops with an error naming the file and how to skip it", async () => {
    const loader = createImageLoader(files, { size: 8, mode: "post", batchSize: 2 });
    const seen: number[] = [];
    const run = async (): Promise<void> => {
      for await (const b of loader.batches()) seen.push(...b.indices);
    };
    await expect(run()).rejects.toThrow(BadImageError);
    await expect(collect(loader.batches())).rejects.toThrow(new RegExp(`Could not decode image ${truncated.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: .*onBadImage: "skip"`));
    expect(seen).toEqual([]); // the first batch already holds the bad file
    for (const [file, mode] of [[text, "recommended"], [missing, "post"]] as const) {
      await expect(decodeImage(file, { size: 8, mode })).rejects.toThrow(file);
    }
    await expect(decodeImage(missing, { size: 8, mode: "post" })).rejects.toThrow(/the file does not exist/);
  });

  it("skips them when asked: the batch's indices say which images it holds, stats name the files", async () => {
    const loader = createImageLoader(files, { size: 8, mode: "recommended", batchSize: 2, onBadImage: "skip" });
    const batches = await collect(loader.batches());
    expect(batches.map((b) => Array.from(b.indices))).toEqual([[0], [2], [4], [6]]);
    expect(batches.map((b) => b.shape[0])).toEqual([1, 1, 1, 1]);
    expect(batches[1].files).toEqual([files[2]]);
    expect(batches[1].data.length).toBe(8 * 8 * 3);
    expect(loader.stats.skipped).toBe(3);
    // Found in the order their decodes finish (several run at once): compare as sets.
    expect(loader.stats.badImages.map((b) => b.file).sort()).toEqual([truncated, text, missing].sort());
    expect(loader.stats.badImages.find((b) => b.file === missing)?.reason).toMatch(/does not exist/);
    await collect(loader.batches());
    expect(loader.stats.skipped).toBe(6); // counted per pass
    expect(loader.stats.badImages).toHaveLength(3); // listed once
  });

  it("check() lists every unreadable image in listing order whatever the policy; a complete cache answers it without decoding", async () => {
    const loader = createImageLoader(files, { size: 8, mode: "post", batchSize: 2 }); // onBadImage: "error"
    const progress: number[] = [];
    const found = await loader.check((done) => progress.push(done));
    expect(found.map((b) => [b.index, b.file])).toEqual([[1, truncated], [3, text], [5, missing]]);
    expect(found[2].reason).toMatch(/does not exist/);
    expect(progress[progress.length - 1]).toBe(files.length);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    const cache = join(dir, "cache-check.npy");
    const first = createImageLoader(files, { size: 8, mode: "post", batchSize: 2, cache });
    expect((await first.check()).map((b) => b.index)).toEqual([1, 3, 5]);
    expect(first.stats.cache).toBe("built");
    await first.close();
    const second = createImageLoader(files, { size: 8, mode: "post", batchSize: 2, cache });
    expect((await second.check()).map((b) => b.index)).toEqual([1, 3, 5]);
    expect(second.stats).toMatchObject({ decoded: 0, cacheReads: 0, cache: "hit" });
    await second.close();
  });

  it("an empty (0-byte) file is a bad image named with its file, in both modes and under both policies", async () => {
    const empty = join(dir, "bad", "empty.jpg");
    await writeFile(empty, "");
    const list = [files[0], empty, files[2]];
    const named = new RegExp(`Could not decode image ${escapeRegExp(empty)}: the file is empty \\(0 bytes\\)`);
    for (const mode of ["post", "recommended"] as const) {
      await expect(decodeImage(empty, { size: 8, mode })).rejects.toThrow(named);
      const strict = createImageLoader(list, { size: 8, mode, batchSize: 3 });
      await expect(collect(strict.batches())).rejects.toThrow(named);
      const lenient = createImageLoader(list, { size: 8, mode, batchSize: 3, onBadImage: "skip" });
      const batches = await collect(lenient.batches());
      expect(batches.map((b) => Array.from(b.indices))).toEqual([[0, 2]]);
      expect(lenient.stats.badImages).toEqual([{ file: empty, reason: "the file is empty (0 bytes)" }]);
    }
    await expect(decodeRgb(empty)).rejects.toThrow(BadImageError);
  });

  it("refuses from its header an image claiming more pixels than a face photo has (16000² in a few hundred bytes), in both modes", async () => {
    const small = await readFile(files[0]);
    const sof = small.indexOf(Buffer.from([0xff, 0xc0])); // baseline frame header: FF C0, length, precision, height, width
    const huge = Buffer.from(small);
    huge.writeUInt16BE(16000, sof + 5);
    huge.writeUInt16BE(16000, sof + 7);
    const file = join(dir, "bad", "huge-header.jpg");
    await writeFile(file, huge);
    expect(huge.length).toBeLessThan(1000);
    for (const mode of ["post", "recommended"] as const) {
      const started = performance.now();
      await expect(decodeImage(file, { size: 8, mode })).rejects.toThrow(
        new RegExp(`Could not decode image ${escapeRegExp(file)}: it is 16000×16000 pixels, more than the ${MAX_IMAGE_PIXELS} .*refused from its header`),
      );
      expect(performance.now() - started).toBeLessThan(2000);
    }
    const lenient = createImageLoader([files[0], file, files[2]], { size: 8, mode: "post", batchSize: 3, onBadImage: "skip" });
    expect((await collect(lenient.batches())).map((b) => Array.from(b.indices))).toEqual([[0, 2]]);
  });
});

describe("uint8 cache", () => {
  let files: string[];
  beforeAll(async () => {
    await mkdir(join(dir, "cached"), { recursive: true });
    files = [];
    for (let i = 0; i < 9; i++) files.push(await noiseJpeg(join(dir, "cached", `c${i}.jpg`), 25, 31, i + 10));
  });

  it("decodes once; later passes and later loaders read it (no decoding), with identical values", async () => {
    const cache = join(dir, "cache-a.npy");
    const first = createImageLoader(files, { size: 12, mode: "post", batchSize: 4, cache });
    const pass1 = await collect(first.batches());
    expect(first.stats.decoded).toBe(9);
    expect(first.stats.cache).toBe("built");
    expect(first.stats.cacheNote).toBe("no cache yet");
    const header = await readNpyHeader(cache);
    expect(header).toMatchObject({ dtype: "uint8", shape: [9, 12, 12, 3] });
    expect(JSON.parse(await readFile(`${cache}.json`, "utf8"))).toMatchObject({ size: 12, mode: "post", count: 9, bad: [] });
    const pass2 = await collect(first.batches());
    expect(first.stats.decoded).toBe(9);
    expect(first.stats.cacheReads).toBe(9);
    await first.close();

    const second = createImageLoader(files, { size: 12, mode: "post", batchSize: 4, cache });
    const pass3 = await collect(second.batches());
    expect(second.stats.cache).toBe("hit");
    expect(second.stats.decoded).toBe(0);
    expect(second.stats.cacheReads).toBe(9);
    await second.close();
    for (const pass of [pass2, pass3]) expect(pass.map((b) => Array.from(b.data))).toEqual(pass1.map((b) => Array.from(b.data)));

    // Cached post-mode values are the float result rounded to the nearest 1/255.
    const exact = await decodeImage(files[5], { size: 12, mode: "post" });
    const cached = pass1[1].data.subarray(12 * 12 * 3, 2 * 12 * 12 * 3);
    const diff = maxAbsDiff(cached, exact.data);
    expect(diff).toBeLessThanOrEqual(0.5 / 255 + 1e-6);
    expect(diff).toBeGreaterThan(0);
  });

  it("writes rows at their listing position when the first pass is shuffled, and finishes a partial cache", async () => {
    const cache = join(dir, "cache-b.npy");
    const loader = createImageLoader(files, { size: 10, mode: "recommended", batchSize: 3, cache });
    for await (const _ of loader.batches({ order: [8, 3, 5, 0] })) break; // stop after one batch: 8, 3, 5
    expect(existsSync(cache)).toBe(false);
    expect(loader.stats.decoded).toBe(4); // 8, 3, 5 and the prefetched 0, which is kept in the cache
    await collect(loader.batches({ order: [7, 6, 5, 4, 3, 2, 1, 0, 8] }));
    expect(loader.stats.decoded).toBe(9); // only the 5 missing ones were decoded
    expect(loader.stats.cache).toBe("built");
    for (const i of [0, 5, 8]) {
      const row = await readNpyRows(cache, i, 1);
      const alone = await decodeImage(files[i], { size: 10, mode: "recommended" });
      expect(Array.from(row.data)).toEqual(Array.from(alone.data, (v) => Math.round(v * 255)));
    }
    await loader.close();
    expect((await readdir(dir)).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });

  it("removes what a killed writer left beside the cache, its key's temporary included, whether the cache is reused or rebuilt", async () => {
    const cache = join(dir, "cache-k.npy");
    const first = createImageLoader(files, { size: 8, mode: "post", batchSize: 5, cache });
    await first.buildCache();
    await first.close();
    const dead = spawnSync("true").pid as number;
    const left = [`${cache}.json.tmp-${dead}`, `${cache}.tmp-${dead}`];
    for (const f of left) await writeFile(f, "a killed writer's");
    const live = `${cache}.json.tmp-${process.pid}`; // a writer at work now
    await writeFile(live, "{");
    const again = createImageLoader(files, { size: 8, mode: "post", batchSize: 5, cache });
    await again.buildCache();
    expect(again.stats.cache).toBe("hit");
    await again.close();
    expect(left.filter((f) => existsSync(f))).toEqual([]);
    expect(existsSync(live)).toBe(true);
    await rm(live);
  });

  it("detects a stale cache (other files, size or mode) and rebuilds it", async () => {
    const cache = join(dir, "cache-c.npy");
    const a = createImageLoader(files, { size: 8, mode: "post", batchSize: 5, cache });
    await a.buildCache();
    expect(a.stats).toMatchObject({ decoded: 9, cache: "built" });
    await a.close();

    const fewer = createImageLoader(files.slice(0, 6), { size: 8, mode: "post", batchSize: 5, cache });
    await collect(fewer.batches());
    expect(fewer.stats).toMatchObject({ decoded: 6, cache: "built", cacheNote: "the file list changed" });
    await fewer.close();
    expect((await readNpyHeader(cache)).shape).toEqual([6, 8, 8, 3]);

    const bigger = createImageLoader(files.slice(0, 6), { size: 9, mode: "post", batchSize: 5, cache });
    await bigger.buildCache();
    expect(bigger.stats.cacheNote).toBe("it holds post 8px images, post 9px wanted");
    await bigger.close();

    const same = createImageLoader(files.slice(0, 6), { size: 9, mode: "post", batchSize: 5, cache });
    await same.buildCache();
    expect(same.stats).toMatchObject({ decoded: 0, cache: "hit" });
    await same.close();
  });

  it("is rebuilt when an image is replaced in place under the same name, saying so", async () => {
    const replaced = join(dir, "cached", "replaced.jpg");
    await noiseJpeg(replaced, 25, 31, 1);
    const list = [files[0], replaced, files[2]];
    const cache = join(dir, "cache-replaced.npy");
    const first = createImageLoader(list, { size: 8, mode: "post", batchSize: 3, cache });
    await first.buildCache();
    await first.close();
    await noiseJpeg(replaced, 25, 31, 2); // other pixels, same name
    await utimes(replaced, new Date(), new Date(Date.now() + 5000)); // a later modification time, whatever the clock's grain
    const again = createImageLoader(list, { size: 8, mode: "post", batchSize: 3, cache });
    const [batch] = await collect(again.batches());
    expect(again.stats).toMatchObject({ decoded: 3, cache: "built" });
    expect(again.stats.cacheNote).toMatch(/the images changed since it was built/);
    const fresh = await decodeImage(replaced, { size: 8, mode: "post" });
    expect(maxAbsDiff(batch.data.subarray(8 * 8 * 3, 2 * 8 * 8 * 3), fresh.data)).toBeLessThanOrEqual(0.5 / 255 + 1e-6);
    await again.close();
  });

  it("remembers bad images: skipped again from the cache without decoding, or named in error mode", async () => {
    const bad = join(dir, "cached", "broken.jpg");
    await writeFile(bad, "broken");
    const withBad = [files[0], bad, files[1]];
    const cache = join(dir, "cache-d.npy");
    const first = createImageLoader(withBad, { size: 8, mode: "post", batchSize: 3, cache, onBadImage: "skip" });
    const [batch] = await collect(first.batches());
    expect(Array.from(batch.indices)).toEqual([0, 2]);
    expect(first.stats.cache).toBe("built");
    await first.close();
    expect(JSON.parse(await readFile(`${cache}.json`, "utf8")).bad).toEqual([{ index: 1, reason: expect.any(String) }]);

    const again = createImageLoader(withBad, { size: 8, mode: "post", batchSize: 3, cache, onBadImage: "skip" });
    const [batch2] = await collect(again.batches());
    expect(Array.from(batch2.indices)).toEqual([0, 2]);
    expect(again.stats).toMatchObject({ decoded: 0, skipped: 1, cache: "hit" });
    expect(again.stats.badImages.map((b) => b.file)).toEqual([bad]);
    await again.close();

    const strict = createImageLoader(withBad, { size: 8, mode: "post", batchSize: 3, cache });
    await expect(collect(strict.batches())).rejects.toThrow(new RegExp(`Could not decode image ${bad.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: .*remembered in the cache`));
    await strict.close();
  });
});

describe("options are checked", () => {
  it("names the bad value", () => {
    expect(() => createImageLoader(["a.jpg"], { size: 0, mode: "post", batchSize: 1 })).toThrow(/image size must be a whole number of pixels from 1 to 4096, got 0/);
    expect(() => createImageLoader(["a.jpg"], { size: 8, mode: "bicubic" as "post", batchSize: 1 })).toThrow(/resize mode must be one of post, recommended, got bicubic/);
    expect(() => createImageLoader(["a.jpg"], { size: 8, mode: "post", batchSize: 0 })).toThrow(/batchSize must be a positive whole number, got 0/);
    expect(() => createImageLoader([], { size: 8, mode: "post", batchSize: 1 })).toThrow(/got no files/);
  });
});
