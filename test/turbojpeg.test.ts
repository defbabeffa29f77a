import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp, { type JpegOptions } from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadImageError, decodeRgb } from "../lib/data/image-loader";
import { isJpeg, jpegDecoder, loadTurboJpeg, parseJpegDecoderChoice, type TurboJpeg } from "../lib/kernels/turbojpeg";

/** A noisy RGB image (JPEG blocks with real detail), deterministic. */
function noise(width: number, height: number, seed: number): Buffer {
  return Buffer.from(Array.from({ length: width * height * 3 }, (_, i) => (i * 37 + seed * 101 + ((i * i * (seed + 3)) % 97)) % 256));
}

async function jpeg(width: number, height: number, seed: number, options: JpegOptions = {}): Promise<Buffer> {
  return sharp(noise(width, height, seed), { raw: { width, height, channels: 3 } }).jpeg({ quality: 90, ...options }).toBuffer();
}

async function sharpRgb(bytes: Buffer): Promise<Buffer> {
  return sharp(bytes).removeAlpha().toColourspace("srgb").raw().toBuffer();
}

let turbo: TurboJpeg;
let dir: string;
beforeAll(async () => {
  const loaded = loadTurboJpeg();
  // npm test's setup installs libturbojpeg (lib/run/setup); without it this is the error to see, not a skip.
  if (loaded.ok === false) throw new Error(loaded.reason);
  turbo = loaded.turbo;
  dir = await mkdtemp(join(tmpdir(), "turbojpeg-test-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("TurboJPEG decoding", () => {
  it("gives sharp's bytes exactly (4:2:0, 4:4:4, greyscale, odd sizes, progressive)", async () => {
    const images = [
      await jpeg(178, 218, 1),
      await jpeg(31, 17, 2, { chromaSubsampling: "4:4:4" }),
      await jpeg(9, 13, 3, { progressive: true }),
      await sharp(noise(20, 11, 4), { raw: { width: 20, height: 11, channels: 3 } }).greyscale().jpeg().toBuffer(),
    ];
    for (const bytes of images) {
      const decoded = await turbo.decode(bytes);
      const meta = await sharp(bytes).metadata();
      expect(decoded).not.toBeNull();
      expect([decoded!.width, decoded!.height]).toEqual([meta.width, meta.height]);
      expect(Buffer.from(decoded!.data).equals(await sharpRgb(bytes))).toBe(true);
    }
  });

  it("decodes many images at once, each into its own bytes", async () => {
    const images = await Promise.all(Array.from({ length: 24 }, (_, i) => jpeg(40 + i, 30, i)));
    const decoded = await Promise.all(images.map((b) => turbo.decode(b)));
    for (const [i, d] of decoded.entries()) expect(Buffer.from(d!.data).equals(await sharpRgb(images[i]))).toBe(true);
  });

  it("leaves other formats and CMYK JPEGs to sharp (null)", async () => {
    const png = await sharp(noise(4, 4, 1), { raw: { width: 4, height: 4, channels: 3 } }).png().toBuffer();
    expect(isJpeg(png)).toBe(false);
    expect(await turbo.decode(png)).toBeNull();
    const cmyk = await sharp(noise(8, 8, 2), { raw: { width: 8, height: 8, channels: 3 } }).toColourspace("cmyk").jpeg().toBuffer();
    expect(isJpeg(cmyk)).toBe(true);
    expect(await turbo.decode(cmyk)).toBeNull();
  });

  it("rejects truncated and corrupt JPEGs with libjpeg's message, and decodes good ones after them", async () => {
    const good = await jpeg(12, 12, 5);
    const truncated = good.subarray(0, Math.floor(good.length / 2)); // cut inside the Huffman tables: the header fails
    const cutData = good.subarray(0, good.length - 40); // header fine, scan data cut: the decode fails
    const notJpeg = Buffer.from([0xff, 0xd8, 0xff, 0x00, 1, 2, 3, 4, 5]);
    for (const bad of [truncated, cutData, notJpeg]) await expect(turbo.decode(bad)).rejects.toThrow(/\w/);
    await expect(turbo.decode(cutData)).rejects.toThrow(/Premature end of JPEG file/);
    // A failed handle is not reused: every good image after the failures still decodes exactly.
    const after = await Promise.all([good, good, good].map((b) => turbo.decode(b)));
    for (const d of after) expect(Buffer.from(d!.data).equals(await sharpRgb(good))).toBe(true);
  });

  it("refuses an image larger than MAX_IMAGE_PIXELS before allocating it", async () => {
    const bytes = Buffer.from(await jpeg(16, 16, 7));
    const sof = bytes.indexOf(Buffer.from([0xff, 0xc0])); // baseline frame header: FF C0, length, precision, height, width
    bytes.writeUInt16BE(60000, sof + 5);
    bytes.writeUInt16BE(60000, sof + 7);
    await expect(turbo.decode(bytes)).rejects.toThrow(/it is 60000×60000 pixels, more than the 16777216 \(4096×4096\) a face photo is allowed/);
  });

  it("is what decodeRgb uses, naming the file in its errors", async () => {
    expect(jpegDecoder().turbo).not.toBeNull();
    expect(jpegDecoder().description).toMatch(/TurboJPEG \(libturbojpeg/);
    const file = join(dir, "cut.jpg");
    const good = await jpeg(16, 16, 6);
    await writeFile(file, good.subarray(0, good.length - 40));
    await expect(decodeRgb(file)).rejects.toThrow(BadImageError);
    await expect(decodeRgb(file)).rejects.toThrow(`Could not decode image ${file}: Premature end of JPEG file`);
    await writeFile(file, good);
    expect(Buffer.from((await decodeRgb(file)).data).equals(await sharpRgb(good))).toBe(true);
  });
});

describe("loading", () => {
  it("says what is missing and how to install it", () => {
    const noKoffi = loadTurboJpeg(() => {
      throw Object.assign(new Error("Cannot find module 'koffi'"), { code: "MODULE_NOT_FOUND" });
    });
    expect(noKoffi).toMatchObject({ ok: false, missing: "koffi", reason: expect.stringMatching(/npm install koffi/) });
    const noLibrary = loadTurboJpeg(undefined, ["libturbojpeg-not-here.so.9"]);
    expect(noLibrary).toMatchObject({ ok: false, missing: "library", reason: expect.stringMatching(/apt-get install libturbojpeg0/) });
  });

  it("reads CELEBA_SAE_JPEG_DECODER", () => {
    expect(parseJpegDecoderChoice(undefined)).toBe("auto");
    expect(parseJpegDecoderChoice(" sharp ")).toBe("sharp");
    expect(parseJpegDecoderChoice("turbojpeg")).toBe("turbojpeg");
    expect(() => parseJpegDecoderChoice("libjpeg")).toThrow(/CELEBA_SAE_JPEG_DECODER must be auto, turbojpeg or sharp, got "libjpeg"/);
  });
});
