// Image files to RGB pixels at their own size: TurboJPEG (lib/kernels/turbojpeg) for JPEGs where it loads, sharp for
// everything else, and the `recommended` mode's centre-crop and Lanczos-3 resize (sharp). An image that cannot be read
// or decoded is a BadImageError naming the file.
//
// RGB: an alpha channel is dropped, as PIL's `convert("RGB")` drops it; greyscale is repeated in R, G, B. EXIF
// orientation is not applied (PIL, and so ImageFolder, does not apply it either). CMYK JPEGs are converted through an
// ICC profile by sharp, unlike PIL's naive formula; CelebA has none.

import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import sharp, { type Metadata, type Sharp } from "sharp";
import { jpegDecoder, MAX_IMAGE_PIXELS, tooManyPixels } from "../kernels/turbojpeg";

/** How images become size×size: the post's stretch-and-bilinear, or centre-crop and Lanczos-3. */
export type ResizeMode = "post" | "recommended";
export const RESIZE_MODES: readonly ResizeMode[] = ["post", "recommended"];

/** What to do with an image that cannot be read or decoded. */
export type BadImagePolicy = "error" | "skip";

export interface ResizeOptions {
  /** Side of the square output, in pixels (the post: 224). */
  readonly size: number;
  readonly mode: ResizeMode;
}

/** One decoded image: `data[(y * width + x) * 3 + c]`, RGB. */
export interface RgbImage<T extends Uint8Array | Float32Array = Uint8Array> {
  readonly data: T;
  readonly width: number;
  readonly height: number;
}

/** An image that could not be read or decoded, naming the file (absolute path) and how to go on without it. */
export class BadImageError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(
      `Could not decode image ${file}: ${reason}. Replace or delete the file, or set onBadImage: "skip" ` +
        "to leave unreadable images out of the batches (they are counted and listed in the loader's stats).",
    );
    this.name = "BadImageError";
  }
}

export function checkResizeOptions({ size, mode }: ResizeOptions): void {
  if (!Number.isSafeInteger(size) || size < 1 || size > 4096) throw new RangeError(`image size must be a whole number of pixels from 1 to 4096, got ${size}`);
  if (!RESIZE_MODES.includes(mode)) throw new RangeError(`resize mode must be one of ${RESIZE_MODES.join(", ")}, got ${String(mode)}`);
}

/** Keeps R, G, B of 1–4 channel pixels: grey is repeated, alpha dropped. */
function toRgb(data: Uint8Array, pixels: number, channels: number): Uint8Array {
  if (channels === 3) return data;
  const out = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    const s = p * channels;
    if (channels <= 2) {
      out[p * 3] = out[p * 3 + 1] = out[p * 3 + 2] = data[s];
    } else {
      out[p * 3] = data[s];
      out[p * 3 + 1] = data[s + 1];
      out[p * 3 + 2] = data[s + 2];
    }
  }
  return out;
}

/** The file's bytes; `blocking` reads on this thread (for a small file, 5–10× cheaper than the async read). */
async function readBytes(file: string, blocking = false): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = blocking ? readFileSync(file) : await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new BadImageError(file, code === "ENOENT" ? "the file does not exist" : `the file cannot be read (${code ?? String(error)})`);
  }
  if (bytes.length === 0) throw new BadImageError(file, "the file is empty (0 bytes)");
  return bytes;
}

/** A sharp pipeline over an image's bytes: warnings are errors, and images over MAX_IMAGE_PIXELS are refused. */
function sharpOf(bytes: Buffer): Sharp {
  return sharp(bytes, { failOn: "warning", limitInputPixels: MAX_IMAGE_PIXELS });
}

/** libvips repeats its warnings over several lines; one line, each message once, reads better in an error. */
function reasonOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return [...new Set(text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== ""))].join("; ");
}

/** Runs a sharp pipeline to RGB bytes; anything sharp throws, building or running it, is a BadImageError. */
async function rawRgb(file: string, pipeline: () => Sharp): Promise<RgbImage> {
  try {
    const { data, info } = await pipeline().raw().toBuffer({ resolveWithObject: true });
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return { data: toRgb(bytes, info.width * info.height, info.channels), width: info.width, height: info.height };
  } catch (error) {
    throw new BadImageError(file, reasonOf(error));
  }
}

/**
 * Decodes an image file to RGB uint8 at its own size (what PIL's `Image.open(f).convert("RGB")` gives). With
 * `blocking`, the file read and a TurboJPEG decode block this thread (lib/data/decode-worker's threads do that).
 */
export async function decodeRgb(file: string, blocking = false): Promise<RgbImage> {
  const bytes = await readBytes(file, blocking);
  const { turbo } = jpegDecoder();
  if (turbo !== null) {
    let image: RgbImage | null;
    try {
      image = await turbo.decode(bytes, blocking);
    } catch (error) {
      throw new BadImageError(file, reasonOf(error));
    }
    if (image !== null) return image;
  }
  return rawRgb(file, () => sharpOf(bytes));
}

/** Python's `round()`: halves go to the even neighbour (torchvision's `CenterCrop` uses it for its offsets). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The centred square torchvision's `CenterCrop(min(w, h))` keeps: left, top and side. */
export function centreSquare(width: number, height: number): { left: number; top: number; side: number } {
  const side = Math.min(width, height);
  return { left: roundHalfEven((width - side) / 2), top: roundHalfEven((height - side) / 2), side };
}

/** Decodes, centre-crops to a square and resizes with Lanczos-3 (the `recommended` mode), RGB uint8. */
export async function decodeRecommended(file: string, size: number): Promise<RgbImage> {
  const bytes = await readBytes(file);
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { failOn: "warning", limitInputPixels: false }).metadata(); // the header only
  } catch (error) {
    throw new BadImageError(file, reasonOf(error));
  }
  const refused = tooManyPixels(meta.width ?? 0, meta.height ?? 0);
  if (refused !== null) throw new BadImageError(file, refused);
  const { left, top, side } = centreSquare(meta.width ?? 0, meta.height ?? 0);
  return rawRgb(file, () => sharpOf(bytes).extract({ left, top, width: side, height: side }).resize(size, size, { fit: "fill", kernel: "lanczos3" }));
}
