// torchvision.utils.make_grid, as a PNG made with sharp.
//
// The geometry is exactly torchvision's: xmaps = min(nrow, n) columns, ymaps = ceil(n / xmaps) rows, every cell
// (h + padding) × (w + padding), the canvas (ymaps·(h+padding)+padding) × (xmaps·(w+padding)+padding) filled with
// padValue, image k at row ⌊k / xmaps⌋, column k mod xmaps, its top-left pixel at
// (row·(h+padding)+padding, col·(w+padding)+padding). Float pixels are converted like torchvision's save_image:
// round(clamp(v·255)). An optional title is drawn above the grid (SVG text composited by sharp).

import sharp from "sharp";
import { showPng } from "./notebook-display";

/** A batch of images in NHWC layout: float32 in [0, 1] (like a tfjs tensor's data) or uint8 in [0, 255]. */
export interface NhwcImages {
  data: Float32Array | Uint8Array;
  /** [n, height, width, channels]; channels 3 (RGB) or 1 (grey, shown as grey RGB). */
  shape: readonly [number, number, number, 1 | 3];
}

/** Separate uint8 RGB images (height·width·3 bytes each, row-major), all the same size. */
export interface RgbBuffers {
  rgb: readonly Uint8Array[];
  height: number;
  width: number;
}

/** Image files (anything sharp reads), decoded and resized to height × width. */
export interface ImageFiles {
  paths: readonly string[];
  height: number;
  width: number;
  /** How a file is fitted to height × width: "cover" crops (default), "contain" letterboxes, "fill" stretches. */
  fit?: "cover" | "contain" | "fill";
}

/** Everything `makeGrid` accepts. */
export type GridImages = NhwcImages | RgbBuffers | ImageFiles;

/** An RGB colour with components in [0, 1]. */
export type Rgb01 = readonly [number, number, number];

export interface GridOptions {
  /** Images per row (torchvision's nrow). Default 8. */
  nrow?: number;
  /** Pixels between and around images. Default 2. */
  padding?: number;
  /** Padding colour as an intensity in [0, 1] (grey) or an RGB triple in [0, 1]. Default 0 (black). */
  padValue?: number | Rgb01;
  /** Float inputs only: shift and scale pixels from valueRange (default: the data's min..max) to [0, 1]. */
  normalize?: boolean;
  /** The range mapped to [0, 1] when normalize is on. */
  valueRange?: readonly [number, number];
  /** Title drawn above the grid. */
  title?: string;
  /** Title font size in px (default: 14, smaller for narrow grids). */
  titleSize?: number;
  /** Enlarges the grid (not the title) by this factor: integers replicate pixels, others resample. Default 1. */
  scale?: number;
}

/** The layout of a grid, as torchvision computes it. */
export interface GridGeometry {
  xmaps: number;
  ymaps: number;
  /** Canvas size without title or scaling. */
  height: number;
  width: number;
  /** Top-left pixel (y, x) of image k. */
  offset(k: number): { y: number; x: number };
}

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`makeGrid: ${name} must be an integer ≥ ${min}, got ${value}`);
  }
}

/** torchvision's make_grid geometry for n images of h × w. */
export function gridGeometry(n: number, h: number, w: number, nrow = 8, padding = 2): GridGeometry {
  checkCount("the number of images", n, 1);
  checkCount("the image height", h, 1);
  checkCount("the image width", w, 1);
  checkCount("nrow", nrow, 1);
  checkCount("padding", padding, 0);
  const xmaps = Math.min(nrow, n);
  const ymaps = Math.ceil(n / xmaps);
  return {
    xmaps,
    ymaps,
    height: ymaps * (h + padding) + padding,
    width: xmaps * (w + padding) + padding,
    offset: (k) => ({
      y: Math.floor(k / xmaps) * (h + padding) + padding,
      x: (k % xmaps) * (w + padding) + padding,
    }),
  };
}

/** n images as h × w × 3 uint8 RGB, ready to paste. */
interface DecodedImages {
  n: number;
  height: number;
  width: number;
  /** Pixel k of image i at (i·h·w + k)·3. */
  rgb: Uint8Array;
}

/** torchvision's float → byte conversion: round half up, clamped; NaN becomes 0. */
export function toByte(value: number): number {
  const v = Math.floor(value * 255 + 0.5);
  return v >= 255 ? 255 : v > 0 ? v : 0;
}

function fromNhwc(images: NhwcImages, options: GridOptions): DecodedImages {
  const [n, height, width, channels] = images.shape;
  if (channels !== 1 && channels !== 3) throw new RangeError(`makeGrid: expected 1 or 3 channels, got ${channels}`);
  const expected = n * height * width * channels;
  if (images.data.length !== expected) {
    throw new RangeError(
      `makeGrid: data has ${images.data.length} values but shape [${images.shape.join(", ")}] needs ${expected}`,
    );
  }
  const pixels = n * height * width;
  const rgb = new Uint8Array(pixels * 3);
  const byteOf = byteConverter(images.data, options);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < 3; c++) rgb[p * 3 + c] = byteOf(images.data[p * channels + (channels === 3 ? c : 0)]);
  }
  return { n, height, width, rgb };
}

function byteConverter(data: Float32Array | Uint8Array, options: GridOptions): (v: number) => number {
  if (data instanceof Uint8Array) return (v) => v;
  if (!options.normalize) return toByte;
  let [lo, hi] = options.valueRange ?? [Infinity, -Infinity];
  if (!options.valueRange) {
    for (const v of data) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  const span = Math.max(hi - lo, 1e-5); // torchvision's norm_ip: clamp, then divide by max(hi - lo, 1e-5)
  return (v) => toByte((Math.min(Math.max(v, lo), hi) - lo) / span);
}

function fromBuffers(images: RgbBuffers): DecodedImages {
  const { height, width } = images;
  const size = height * width * 3;
  const rgb = new Uint8Array(images.rgb.length * size);
  images.rgb.forEach((buffer, i) => {
    if (buffer.length !== size) {
      throw new RangeError(`makeGrid: image ${i} has ${buffer.length} bytes, expected ${height}×${width}×3 = ${size}`);
    }
    rgb.set(buffer, i * size);
  });
  return { n: images.rgb.length, height, width, rgb };
}

async function decodeFile(path: string, height: number, width: number, fit: ImageFiles["fit"]): Promise<Buffer> {
  try {
    return await sharp(path)
      .resize(width, height, { fit: fit ?? "cover", background: { r: 0, g: 0, b: 0 } })
      .removeAlpha()
      .toColourspace("srgb")
      .raw()
      .toBuffer();
  } catch (error) {
    throw new Error(`makeGrid: cannot read image ${path}: ${(error as Error).message}`);
  }
}

async function fromFiles(images: ImageFiles): Promise<DecodedImages> {
  const { height, width, paths } = images;
  const size = height * width * 3;
  const rgb = new Uint8Array(paths.length * size);
  const concurrency = 4;
  for (let start = 0; start < paths.length; start += concurrency) {
    const chunk = paths.slice(start, start + concurrency);
    const decoded = await Promise.all(chunk.map((path) => decodeFile(path, height, width, images.fit)));
    decoded.forEach((buffer, j) => {
      if (buffer.length !== size) throw new Error(`makeGrid: ${chunk[j]} did not decode to ${width}×${height} RGB`);
      rgb.set(buffer, (start + j) * size);
    });
  }
  return { n: paths.length, height, width, rgb };
}

async function decode(images: GridImages, options: GridOptions): Promise<DecodedImages> {
  if ("shape" in images) return fromNhwc(images, options);
  if ("rgb" in images) return fromBuffers(images);
  return fromFiles(images);
}

function padColour(padValue: number | Rgb01 = 0): [number, number, number] {
  if (typeof padValue === "number") return [toByte(padValue), toByte(padValue), toByte(padValue)];
  return [toByte(padValue[0]), toByte(padValue[1]), toByte(padValue[2])];
}

/** The grid as raw RGB pixels (no title, no scaling): torchvision's make_grid, HWC uint8. */
export async function makeGridRgb(
  images: GridImages,
  options: GridOptions = {},
): Promise<{ rgb: Uint8Array; height: number; width: number }> {
  const decoded = await decode(images, options);
  const geometry = gridGeometry(decoded.n, decoded.height, decoded.width, options.nrow ?? 8, options.padding ?? 2);
  const { width, height } = geometry;
  const canvas = new Uint8Array(width * height * 3);
  const [r, g, b] = padColour(options.padValue);
  for (let p = 0; p < width * height; p++) {
    canvas[p * 3] = r;
    canvas[p * 3 + 1] = g;
    canvas[p * 3 + 2] = b;
  }
  const rowBytes = decoded.width * 3;
  for (let k = 0; k < decoded.n; k++) {
    const { y, x } = geometry.offset(k);
    for (let row = 0; row < decoded.height; row++) {
      const source = (k * decoded.height + row) * rowBytes;
      canvas.set(decoded.rgb.subarray(source, source + rowBytes), ((y + row) * width + x) * 3);
    }
  }
  return { rgb: canvas, height, width };
}

const FONT_FAMILY = "DejaVu Sans, Helvetica, Arial, sans-serif";

/** Escapes text for SVG/XML content and attributes. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Splits text into lines no wider than maxChars (words longer than that stay whole). */
export function wrapText(text: string, maxChars: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > maxChars) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.length ? lines : [""];
}

/** An SVG band of `width` px holding the title, centred and word-wrapped. */
function titleBand(title: string, width: number, fontSize: number): { svg: string; height: number } {
  const charWidth = fontSize * 0.6; // a generous average for DejaVu Sans / Helvetica
  const lines = wrapText(title, Math.max(1, Math.floor((width - 8) / charWidth)));
  const lineHeight = Math.round(fontSize * 1.3);
  const height = lines.length * lineHeight + Math.round(fontSize * 0.8);
  const text = lines
    .map(
      (line, i) =>
        `<text x="${width / 2}" y="${Math.round(fontSize * 0.4) + (i + 1) * lineHeight - Math.round(fontSize * 0.3)}" ` +
        `text-anchor="middle">${escapeXml(line)}</text>`,
    )
    .join("");
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<rect width="100%" height="100%" fill="#ffffff"/>` +
    `<g font-family="${FONT_FAMILY}" font-size="${fontSize}" fill="#222222">${text}</g></svg>`;
  return { svg, height };
}

/**
 * A grid of images as a PNG, like `torchvision.utils.make_grid(images, nrow, padding, pad_value)` saved with
 * `save_image`, optionally scaled up and with a title above.
 */
export async function makeGrid(images: GridImages, options: GridOptions = {}): Promise<Buffer> {
  const grid = await makeGridRgb(images, options);
  const scale = options.scale ?? 1;
  if (!(scale > 0)) throw new RangeError(`makeGrid: scale must be > 0, got ${scale}`);
  let body = sharp(Buffer.from(grid.rgb.buffer, grid.rgb.byteOffset, grid.rgb.byteLength), {
    raw: { width: grid.width, height: grid.height, channels: 3 },
  });
  let width = grid.width;
  let height = grid.height;
  if (scale !== 1) {
    width = Math.max(1, Math.round(grid.width * scale));
    height = Math.max(1, Math.round(grid.height * scale));
    body = sharp(
      await body.resize(width, height, { kernel: Number.isInteger(scale) ? "nearest" : "lanczos3" }).raw().toBuffer(),
      { raw: { width, height, channels: 3 } },
    );
  }
  if (options.title === undefined || options.title === "") return body.png().toBuffer();

  const fontSize = options.titleSize ?? Math.max(10, Math.min(14, Math.round(width / 20)));
  const band = titleBand(options.title, width, fontSize);
  const bodyRaw = await body.raw().toBuffer();
  return sharp({ create: { width, height: height + band.height, channels: 3, background: "#ffffff" } })
    .composite([
      { input: Buffer.from(band.svg), top: 0, left: 0 },
      { input: bodyRaw, raw: { width, height, channels: 3 }, top: band.height, left: 0 },
    ])
    .removeAlpha()
    .png()
    .toBuffer();
}

/**
 * Makes a grid (see `makeGrid`) and shows it in the notebook, with `alt` (or the title) as its text form.
 * Resolves to nothing, so that awaiting it as a cell's last expression prints nothing more.
 */
export async function showGrid(images: GridImages, options: GridOptions & { alt?: string } = {}): Promise<void> {
  const png = await makeGrid(images, options);
  showPng(png, options.alt ?? options.title ?? "image grid");
}
