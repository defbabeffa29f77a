// JPEG decoding straight through libjpeg-turbo's TurboJPEG library, called with koffi (an FFI with prebuilt
// binaries on npm), off the main thread.
//
// It computes a JPEG's RGB pixels: entropy decoding, the inverse DCT of each 8×8 block (the accurate integer one),
// upsampling of the chroma planes ("fancy", triangular) and YCbCr → RGB, all libjpeg-turbo's. sharp spends most of
// a small face's decode setting up a libvips pipeline per image; TurboJPEG decodes the same file several times
// faster, byte-identical to sharp's and PIL's output (all three are libjpeg-turbo with the accurate integer DCT and
// fancy upsampling: flags 0, unlike TJFLAG_FASTDCT). Tested in test/turbojpeg.test.ts (bytes equal to sharp's). Where koffi or the library
// is missing, lib/data/image-decode decodes with sharp, which gives the same bytes more slowly. Formats other than JPEG, and
// CMYK JPEGs (which TurboJPEG cannot turn into RGB; sharp converts them through an ICC profile), always go to sharp.
//
// libturbojpeg: Debian/Ubuntu `libturbojpeg0` (lib/run/setup installs it with apt where it can), macOS Homebrew
// `jpeg-turbo`. `CELEBA_SAE_JPEG_DECODER` = auto (default) | turbojpeg (required: an error when it cannot load) | sharp.

import { requireFromProject } from "../util/project";

export const JPEG_DECODER_ENV = "CELEBA_SAE_JPEG_DECODER";
export type JpegDecoderChoice = "auto" | "turbojpeg" | "sharp";

/** A decoded image: RGB bytes, `data[(y * width + x) * 3 + c]`. */
export interface DecodedRgb {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
}

/** Decodes JPEG bytes to RGB; null when the bytes are not a JPEG TurboJPEG turns into RGB (sharp's turn then). */
export interface TurboJpeg {
  readonly library: string;
  readonly koffiVersion: string;
  /**
   * Rejects with TurboJPEG's message (errors and warnings alike, as sharp's `failOn: "warning"` does). The decode
   * runs on one of koffi's worker threads, or with `blocking` on this thread (cheaper where this thread is a worker).
   */
  decode(bytes: Uint8Array, blocking?: boolean): Promise<DecodedRgb | null>;
}

/** Debian/Ubuntu's package of the library. */
export const DEBIAN_TURBOJPEG_PACKAGE = "libturbojpeg0";

export type TurboJpegLoad =
  | { readonly ok: true; readonly turbo: TurboJpeg }
  | { readonly ok: false; readonly reason: string; readonly missing: "koffi" | "library" | "functions" };

// The few koffi calls used, typed here (koffi is loaded at run time from the project's node_modules).
type Pointer = object;
interface KoffiFunction {
  (...args: unknown[]): unknown;
  async(...args: unknown[]): void;
}
interface KoffiLibrary {
  func(signature: string): KoffiFunction;
}
interface Koffi {
  load(path: string): KoffiLibrary;
  version?: string;
}

/** File names of the library on each platform, tried in order. */
const LIBRARY_NAMES: Readonly<Partial<Record<NodeJS.Platform, readonly string[]>>> = {
  linux: ["libturbojpeg.so.0", "libturbojpeg.so"],
  darwin: ["libturbojpeg.0.dylib", "/opt/homebrew/opt/jpeg-turbo/lib/libturbojpeg.0.dylib", "/usr/local/opt/jpeg-turbo/lib/libturbojpeg.0.dylib"],
  win32: ["turbojpeg.dll"],
};

/**
 * The most pixels an image may have: 4096 × 4096 (16.8 megapixels). Larger images are refused from their header,
 * before any memory is allocated for them. A face photo is far smaller — CelebA's aligned faces are 178 × 218,
 * CelebA-HQ's 1024 × 1024, a phone's photo 12 megapixels — while decoding and resizing an image takes about 18 bytes
 * per pixel (its RGB bytes, then 12 bytes of floats in the resize kernel), 300 MB at this limit. sharp's own default
 * (0x3FFF², 268 megapixels) would let a damaged or hostile 400-byte file whose header claims 16000 × 16000 pixels
 * allocate 768 MB (several gigabytes in the resize) before failing. Raise it here for larger photos.
 */
export const MAX_IMAGE_PIXELS = 4096 * 4096;

/** Why an image of `width` × `height` is refused, or null when it is within MAX_IMAGE_PIXELS. */
export function tooManyPixels(width: number, height: number): string | null {
  if (width * height <= MAX_IMAGE_PIXELS) return null;
  return (
    `it is ${width}×${height} pixels, more than the ${MAX_IMAGE_PIXELS} (4096×4096) a face photo is allowed ` +
    "(MAX_IMAGE_PIXELS in lib/kernels/turbojpeg.ts): refused from its header, before decoding"
  );
}

const TJPF_RGB = 0;
const TJCS_CMYK = 3;
const TJCS_YCCK = 4;

export function parseJpegDecoderChoice(value: string | undefined): JpegDecoderChoice {
  const v = (value ?? "").trim();
  if (v === "") return "auto";
  if (v === "auto" || v === "turbojpeg" || v === "sharp") return v;
  throw new RangeError(`${JPEG_DECODER_ENV} must be auto, turbojpeg or sharp, got "${v}"`);
}

/** JPEG files start with the SOI marker FF D8 FF. */
export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length > 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0].slice(0, 200);
}

/** Loads koffi and libturbojpeg (`load` replaces `require`, `names` the library names, for tests). */
export function loadTurboJpeg(load: (id: string) => unknown = (id) => requireFromProject()(id), names = LIBRARY_NAMES[process.platform] ?? []): TurboJpegLoad {
  let koffi: Koffi;
  try {
    koffi = load("koffi") as Koffi;
  } catch (e) {
    return { ok: false, missing: "koffi", reason: `koffi does not load (${firstLine(e)}); npm install koffi` };
  }
  let lib: KoffiLibrary | undefined;
  let library = "";
  const failures: string[] = [];
  for (const candidate of names) {
    try {
      lib = koffi.load(candidate);
      library = candidate;
      break;
    } catch (e) {
      failures.push(firstLine(e));
    }
  }
  if (lib === undefined) {
    return {
      ok: false,
      missing: "library",
      reason: `libturbojpeg is not installed (${failures[0] ?? `no library name known for ${process.platform}`}); Debian/Ubuntu: sudo apt-get install ${DEBIAN_TURBOJPEG_PACKAGE}`,
    };
  }
  try {
    return { ok: true, turbo: createTurboJpeg(lib, library, koffi.version ?? "unknown") };
  } catch (e) {
    return { ok: false, missing: "functions", reason: `${library} loaded but lacks the TurboJPEG functions used (${firstLine(e)})` };
  }
}

function createTurboJpeg(lib: KoffiLibrary, library: string, koffiVersion: string): TurboJpeg {
  const tjInitDecompress = lib.func("void* tjInitDecompress()");
  const tjDecompressHeader3 = lib.func(
    "int tjDecompressHeader3(void* handle, const uint8_t* jpeg, unsigned long size, _Out_ int* width, _Out_ int* height, _Out_ int* subsamp, _Out_ int* colorspace)",
  );
  const tjDecompress2 = lib.func("int tjDecompress2(void* handle, const uint8_t* jpeg, unsigned long size, uint8_t* dst, int width, int pitch, int height, int format, int flags)");
  const tjGetErrorStr2 = lib.func("const char* tjGetErrorStr2(void* handle)");
  const tjDestroy = lib.func("int tjDestroy(void* handle)");

  // A TurboJPEG handle serves one decode at a time, and one that failed is not reused (TurboJPEG 2.1 leaves a
  // handle whose header read failed unusable). The header is read on this thread with its own handle; each decode
  // in flight on koffi's worker threads takes a handle from the pool and gives it back.
  const newHandle = (): Pointer => {
    const handle = tjInitDecompress() as Pointer | null;
    if (handle === null) throw new Error("tjInitDecompress failed (out of memory?)");
    return handle;
  };
  /** The handle's error, read on this thread, and the handle destroyed. */
  const failure = (handle: Pointer): Error => {
    const error = new Error(String(tjGetErrorStr2(handle)).trim());
    tjDestroy(handle);
    return error;
  };
  let headerHandle = newHandle();
  const idle: Pointer[] = [];

  return {
    library,
    koffiVersion,
    async decode(bytes: Uint8Array, blocking = false): Promise<DecodedRgb | null> {
      if (!isJpeg(bytes)) return null;
      const width = [0];
      const height = [0];
      const subsamp = [0];
      const colorspace = [0];
      if (tjDecompressHeader3(headerHandle, bytes, bytes.length, width, height, subsamp, colorspace) !== 0) {
        const error = failure(headerHandle);
        headerHandle = newHandle();
        throw error;
      }
      if (colorspace[0] === TJCS_CMYK || colorspace[0] === TJCS_YCCK) return null;
      const [w, h] = [width[0], height[0]];
      const refused = tooManyPixels(w, h);
      if (refused !== null) throw new Error(refused);
      const data = new Uint8Array(w * h * 3);
      const decodeWith = (handle: Pointer): unknown[] => [handle, bytes, bytes.length, data, w, 0, h, TJPF_RGB, 0];
      const handle = idle.pop() ?? newHandle();
      if (blocking === true) {
        if (tjDecompress2(...decodeWith(handle)) !== 0) throw failure(handle);
        idle.push(handle);
        return { data, width: w, height: h };
      }
      const status = await new Promise<number>((resolve, reject) => {
        tjDecompress2.async(...decodeWith(handle), (error: unknown, result: unknown) => (error ? reject(error) : resolve(result as number)));
      });
      if (status === 0) {
        idle.push(handle);
        return { data, width: w, height: h };
      }
      // TurboJPEG keeps the message of an error on a worker thread in that thread's storage: decode once more here
      // (only a failing image pays for it) to read it.
      tjDestroy(handle);
      const retry = newHandle();
      if (tjDecompress2(...decodeWith(retry)) !== 0) throw failure(retry);
      tjDestroy(retry);
      return { data, width: w, height: h };
    },
  };
}

let chosen: { readonly turbo: TurboJpeg | null; readonly description: string } | null = null;

/** The decoder lib/data/image-decode uses for JPEGs: TurboJPEG where it loads (unless the environment says sharp). */
export function jpegDecoder(): { readonly turbo: TurboJpeg | null; readonly description: string } {
  if (chosen !== null) return chosen;
  const choice = parseJpegDecoderChoice(process.env[JPEG_DECODER_ENV]);
  if (choice === "sharp") {
    chosen = { turbo: null, description: `sharp (${JPEG_DECODER_ENV}=sharp)` };
    return chosen;
  }
  const loaded = loadTurboJpeg();
  if (loaded.ok === false) {
    if (choice === "turbojpeg") throw new Error(`${JPEG_DECODER_ENV}=turbojpeg, but ${loaded.reason}`);
    chosen = { turbo: null, description: `sharp (${loaded.reason})` };
    return chosen;
  }
  const { turbo } = loaded;
  chosen = { turbo, description: `libjpeg-turbo's TurboJPEG (${turbo.library} through koffi ${turbo.koffiVersion}); sharp for other formats` };
  return chosen;
}
