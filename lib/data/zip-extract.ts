// Streaming, safe, resumable extraction of a zip archive (CelebA's Kaggle download is one of 1.33 GB and 202,599+
// entries), without loading the archive into memory and without any zip library.
//
// Its parts: lib/data/zip/directory reads the central directory (APPNOTE 6.3.x, ZIP64 included); lib/data/zip/safety
// checks the WHOLE directory before anything is written — safe names, no symlinks, no overlapping entries, ratios
// no photo archive has, a total above the expected dataset's bound or the free disk (zip bombs). Then each entry is
// read at its local header, one at a time: small ones (CelebA's JPEGs) with one positioned read, one inflate and one
// write, synchronously, in short slices between which the event loop runs (progress display, kernel messages); big
// ones streamed (`createReadStream` over the compressed range → `createInflateRaw` → a temporary file). While
// inflating, no entry may produce more bytes than the directory records for it, so a lying directory cannot fill
// the disk. Size and CRC-32 are checked before the temporary file is renamed into place. Only stored (0) and
// deflated (8) entries are supported.
//
// Why not yauzl (the maintained reader): it reads the central directory with two asynchronous reads per entry and
// each entry through streams, which cost several times the CPU of the one read and synchronous path here on
// CelebA's 202,599 small entries (measured; bench-style numbers in the commit that chose this), and it checks
// neither CRC-32 nor overlapping entries nor ratios, so these checks would all stay.
//
// Resumability: `.celeba-sae-extracted.json` (archive size, mtime, entry count and bytes) is written LAST, so its
// presence means "complete"; a later call (after reading and checking the central directory, a fraction of a
// second) finds it and returns (`skipped: true`). Without it, files already
// present with the right size (and CRC-32 with `verify: "crc"`) are kept and the others written, so a killed
// extraction resumes where it stopped. A damaged archive gives a `ZipError` naming the archive (and the entry) and
// telling to delete it and download it again; nothing already extracted is deleted.

import { closeSync, createReadStream, createWriteStream, existsSync, mkdirSync, openSync, readSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as zlib from "node:zlib";
import { ProgressBar, type ProgressOptions } from "../display/progress";
import { writeFileAtomicSync } from "../util/atomic-write";
import { yielder } from "../util/yield";
import { checkFreeSpace, checkOverlaps, checkRatios, checkTotal, DEFAULT_ZIP_LIMITS, EXTRACTION_MARKER, EXTRACTION_TEMP_DIR, fileSize, planExtraction, type PlannedEntry } from "./zip/safety";
import { diskFreeSpace, type FreeSpace } from "../util/disk";
import { crc32, LOCAL_SIZE, readZipDirectory, SIG_LOCAL, type ZipDirectory, type ZipEntry, ZipError } from "./zip/directory";



// ---------------------------------------------------------------------------------------------------------------
// Extraction

/** How far an extraction is. */
export interface ExtractProgress {
  /** Selected entries done (written or kept). */
  readonly entries: number;
  readonly totalEntries: number;
  /** Uncompressed bytes done. */
  readonly bytes: number;
  readonly totalBytes: number;
}

export interface ExtractOptions {
  /** Extract only the entries for which this returns true (all entries are still checked for safety). */
  readonly filter?: (entry: ZipEntry) => boolean;
  /** Called after each entry. */
  readonly onProgress?: (progress: ExtractProgress) => void;
  /** The progress bar's options, or false for no bar (default: a bar in bytes, with the entry count beside it). */
  readonly progress?: ProgressOptions | false;
  /** How a file already present is judged complete when resuming: its size (default), or size and CRC-32. */
  readonly verify?: "size" | "crc";
  /** Entries up to this size (compressed and not) are read and inflated in one piece, bigger ones streamed (default 1 MiB). */
  readonly bufferLimit?: number;
  /** The most bytes the selected entries may unzip to (default 4 GB: Kaggle's CelebA unzips to about 1.4 GB). */
  readonly maxTotalBytes?: number;
  /** The highest compression ratio (uncompressed ÷ compressed) of an entry of 4 MiB or more (default 100). */
  readonly maxRatio?: number;
  /** The highest compression ratio of all the archive's files together, when they unzip to 4 MiB or more (default 20). */
  readonly maxTotalRatio?: number;
  /** The free space at the destination folder (default `diskFreeSpace`, from statfs; undefined: unknown, not checked). */
  readonly freeSpace?: (destDir: string) => FreeSpace | undefined;
}

export interface ExtractResult {
  /** True when a completion marker showed the extraction already done (nothing was extracted or written). */
  readonly skipped: boolean;
  /** Selected entries (files and folders) and their uncompressed bytes. */
  readonly entries: number;
  readonly bytes: number;
  /** Files written now, and files kept because they were already complete. */
  readonly written: number;
  readonly kept: number;
  readonly seconds: number;
  /** The completion marker's path. */
  readonly marker: string;
}

/** The completion marker's content. */
export interface ExtractionMarker {
  readonly version: 1;
  readonly archive: string;
  readonly archiveSize: number;
  readonly archiveMtimeMs: number;
  readonly entries: number;
  readonly bytes: number;
  readonly completedAt: string;
}

/** The completion marker of `destDir`, or undefined when there is none (or it is unreadable). */
export async function readExtractionMarker(destDir: string): Promise<ExtractionMarker | undefined> {
  try {
    const value = JSON.parse(await readFile(join(destDir, EXTRACTION_MARKER), "utf8")) as Partial<ExtractionMarker>;
    if (value.version !== 1 || typeof value.archiveSize !== "number" || typeof value.entries !== "number") return undefined;
    return value as ExtractionMarker;
  } catch {
    return undefined;
  }
}

function markerMatches(marker: ExtractionMarker | undefined, directory: ZipDirectory, entries: number, bytes: number): boolean {
  return (
    marker !== undefined &&
    marker.archiveSize === directory.archiveSize &&
    marker.archiveMtimeMs === directory.archiveMtimeMs &&
    marker.entries === entries &&
    marker.bytes === bytes
  );
}

/** Counts bytes and CRC-32 of what passes, refusing more than `limit` bytes. */
class CheckStream extends Transform {
  crc = 0;
  bytes = 0;
  constructor(
    private readonly limit: number,
    private readonly onBytes: (n: number) => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      callback(new EntryDataError(`it inflates to more than the ${this.limit} bytes recorded`));
      return;
    }
    this.crc = crc32(chunk, this.crc);
    this.onBytes(chunk.length);
    callback(null, chunk);
  }
}

/** A problem with an entry's data (becomes a "corrupt" ZipError naming the entry). */
class EntryDataError extends Error {}

function isZlibError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return typeof code === "string" && code.startsWith("Z_");
}

/** What an extraction shares between its entries. */
interface ExtractionContext {
  readonly directory: ZipDirectory;
  /** Where each entry's data must end (by index): the next local header in file order, or the central directory. */
  readonly dataEnds: Float64Array;
  readonly fd: number;
  readonly tempDir: string;
  readonly bufferLimit: number;
  readonly verify: "size" | "crc";
  readonly folders: Set<string>;
  readonly onBytes: (n: number) => void;
}

type EntryOutcome = "written" | "kept" | "folder";

function ensureFolder(context: ExtractionContext, folder: string): void {
  if (context.folders.has(folder)) return;
  mkdirSync(folder, { recursive: true });
  context.folders.add(folder);
}

/** Reads up to `length` bytes at `position` (fewer only at the end of the file). */
function readAt(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

/** Room for a local header's name and extra field read together with it (they may differ from the central ones). */
const LOCAL_SLACK = 1024;

/** The entry's local header, read together with the `after` bytes that follow it (up to the next entry). */
function readLocal(context: ExtractionContext, entry: ZipEntry, after: number): { start: number; skip: number; chunk: Buffer } {
  const { archive, centralDirectoryOffset } = context.directory;
  const corrupt = (problem: string) => new ZipError("corrupt", archive, entry.name, problem);
  const end = context.dataEnds[entry.index];
  const wanted = Math.min(end - entry.localHeaderOffset, LOCAL_SIZE + LOCAL_SLACK + after);
  const chunk = readAt(context.fd, wanted, entry.localHeaderOffset);
  if (chunk.length < LOCAL_SIZE) throw corrupt("the archive ends in its local header");
  if (chunk.readUInt32LE(0) !== SIG_LOCAL) throw corrupt(`no local header at offset ${entry.localHeaderOffset}`);
  const skip = LOCAL_SIZE + chunk.readUInt16LE(26) + chunk.readUInt16LE(28);
  const start = entry.localHeaderOffset + skip;
  if (start + entry.compressedSize > end) {
    const into = end === centralDirectoryOffset ? "the central directory" : "the next entry's local header";
    throw corrupt(`its data (${entry.compressedSize} bytes at offset ${start}) runs into ${into} (offset ${end})`);
  }
  return { start, skip, chunk };
}

/** The entry's compressed data, read with its local header in one read when it fits. */
function readCompressed(context: ExtractionContext, entry: ZipEntry): Buffer {
  const { start, skip, chunk } = readLocal(context, entry, entry.compressedSize);
  const end = skip + entry.compressedSize;
  const data = end <= chunk.length ? chunk.subarray(skip, end) : readAt(context.fd, entry.compressedSize, start);
  if (data.length < entry.compressedSize) throw new EntryDataError("the archive ends inside its data");
  return data;
}

/** Whether the file already at `target` (of size `present`) is this entry, complete (size, and CRC-32 when asked). */
async function alreadyComplete(target: string, present: number | undefined, entry: ZipEntry, verify: "size" | "crc"): Promise<boolean> {
  if (present !== entry.size) return false;
  if (verify === "size") return true;
  let crc = 0;
  for await (const chunk of createReadStream(target)) crc = crc32(chunk as Buffer, crc);
  return crc === entry.crc32;
}

/** A small entry: read, inflated, checked and written in one piece each, synchronously (fast for many small files). */
function writeSmallEntry(context: ExtractionContext, entry: ZipEntry, temp: string): void {
  const raw = readCompressed(context, entry);
  let data: Buffer;
  try {
    data = entry.method === 8 ? zlib.inflateRawSync(raw, { maxOutputLength: entry.size + 1 }) : raw;
  } catch (error) {
    if (error instanceof RangeError) throw new EntryDataError(`it inflates to more than the ${entry.size} bytes recorded`);
    throw error;
  }
  checkData(entry, data.length, crc32(data));
  writeFileSync(temp, data);
  context.onBytes(data.length);
}

/** A big entry: streamed from the archive through inflate and the checks to the temporary file. */
async function writeLargeEntry(context: ExtractionContext, entry: ZipEntry, temp: string): Promise<void> {
  const { start } = readLocal(context, entry, 0);
  const check = new CheckStream(entry.size, context.onBytes);
  const source =
    entry.compressedSize === 0
      ? Readable.from([])
      : createReadStream(context.directory.archive, { start, end: start + entry.compressedSize - 1, highWaterMark: 1 << 20 });
  const stages = entry.method === 8 ? [source, zlib.createInflateRaw({ chunkSize: 1 << 18 }), check] : [source, check];
  await pipeline([...stages, createWriteStream(temp, { highWaterMark: 1 << 20 })]);
  checkData(entry, check.bytes, check.crc);
}

function checkData(entry: ZipEntry, size: number, crc: number): void {
  if (size !== entry.size) throw new EntryDataError(`it has ${size} bytes of data where the archive records ${entry.size}`);
  if (crc !== entry.crc32) {
    throw new EntryDataError(`its CRC-32 is ${hex(crc)} where the archive records ${hex(entry.crc32)} (the data is damaged)`);
  }
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}

/** Extracts one planned entry (or keeps the complete file already there, of size `present`). */
async function extractEntry(context: ExtractionContext, planned: PlannedEntry, present: number | undefined): Promise<EntryOutcome> {
  const { entry, target } = planned;
  if (entry.isDirectory) {
    ensureFolder(context, target);
    return "folder";
  }
  if (await alreadyComplete(target, present, entry, context.verify)) {
    context.onBytes(entry.size);
    return "kept";
  }
  const temp = join(context.tempDir, `${entry.index}.tmp`);
  try {
    ensureFolder(context, dirname(target));
    if (entry.compressedSize <= context.bufferLimit && entry.size <= context.bufferLimit) writeSmallEntry(context, entry, temp);
    else await writeLargeEntry(context, entry, temp);
    renameSync(temp, target);
  } catch (error) {
    rmSync(temp, { force: true });
    if (error instanceof ZipError) throw error;
    if (error instanceof EntryDataError) throw new ZipError("corrupt", context.directory.archive, entry.name, error.message);
    if (isZlibError(error)) {
      throw new ZipError("corrupt", context.directory.archive, entry.name, `its deflated data is invalid (${(error as Error).message})`);
    }
    throw new Error(`extracting ${JSON.stringify(entry.name)} from ${context.directory.archive} to ${target}: ${(error as Error).message}`, { cause: error });
  }
  return "written";
}

/** A scale for a byte count that keeps the bar's numbers short: B, kB, MB or GB. */
function byteUnit(total: number): { unit: string; scale: number } {
  if (total >= 100e9) return { unit: "GB", scale: 1e9 };
  if (total >= 100e6) return { unit: "MB", scale: 1e6 };
  if (total >= 100e3) return { unit: "kB", scale: 1e3 };
  return { unit: "B", scale: 1 };
}

function writeMarker(destDir: string, marker: ExtractionMarker): string {
  const path = join(destDir, EXTRACTION_MARKER);
  writeFileAtomicSync(path, JSON.stringify(marker, null, 2) + "\n");
  return path;
}

/**
 * Extracts `archive` into `destDir` (created if needed): every entry is checked first (nothing is written when one
 * is unsafe or unsupported, when entries overlap, or when a size limit is passed: compression ratio, total size,
 * free disk space), then each selected entry is written through a temporary file, size and CRC-32
 * checked, and renamed into place; the completion marker is written last. A completed extraction of the same
 * archive (same size and mtime, same selection) is skipped; an interrupted one resumes, keeping complete files.
 *
 * Entries are extracted one at a time: small ones (the JPEGs) with synchronous reads and writes, in slices of
 * 20 ms between which the event loop runs; big ones streamed.
 */
export async function extractZip(archive: string, destDir: string, options: ExtractOptions = {}): Promise<ExtractResult> {
  const started = performance.now();
  const directory = await readZipDirectory(archive);
  const filter = options.filter;
  const plan = planExtraction(directory, destDir, (entry) => filter === undefined || filter(entry));
  const totalBytes = plan.reduce((sum, p) => sum + (p.entry.isDirectory ? 0 : p.entry.size), 0);
  const dataEnds = checkOverlaps(directory);
  checkRatios(directory, options.maxRatio ?? DEFAULT_ZIP_LIMITS.maxRatio, options.maxTotalRatio ?? DEFAULT_ZIP_LIMITS.maxTotalRatio);
  checkTotal(directory, plan, totalBytes, options.maxTotalBytes ?? DEFAULT_ZIP_LIMITS.maxTotalBytes);
  const markerPath = join(destDir, EXTRACTION_MARKER);
  const result = (skipped: boolean, written: number, kept: number): ExtractResult => ({
    skipped,
    entries: plan.length,
    bytes: totalBytes,
    written,
    kept,
    seconds: (performance.now() - started) / 1000,
    marker: markerPath,
  });
  if (markerMatches(await readExtractionMarker(destDir), directory, plan.length, totalBytes)) return result(true, 0, 0);

  // Files an interrupted run left (their sizes, looked up once here): kept when complete, not counted as needed.
  const present = existsSync(destDir) ? plan.map((p) => (p.entry.isDirectory ? undefined : fileSize(p.target))) : plan.map(() => undefined);
  checkFreeSpace(directory, destDir, plan, present, (options.freeSpace ?? diskFreeSpace)(destDir));
  rmSync(markerPath, { force: true });
  const tempDir = join(destDir, EXTRACTION_TEMP_DIR);
  mkdirSync(tempDir, { recursive: true });
  const { unit, scale } = byteUnit(totalBytes);
  const total = Math.ceil(totalBytes / scale);
  const bar = options.progress === false ? undefined : new ProgressBar({ desc: `Extracting ${basename(archive)}`, ...options.progress, unit, total });
  let bytes = 0;
  let shown = 0;
  let written = 0;
  let kept = 0;
  const fd = openSync(archive, "r");
  const context: ExtractionContext = {
    directory,
    dataEnds,
    fd,
    tempDir,
    bufferLimit: options.bufferLimit ?? 1024 * 1024,
    verify: options.verify ?? "size",
    folders: new Set([resolve(destDir)]),
    onBytes: (n) => {
      bytes += n;
    },
  };
  const pause = yielder();
  try {
    for (let done = 1; done <= plan.length; done++) {
      const outcome = await extractEntry(context, plan[done - 1], present[done - 1]);
      if (outcome === "written") written++;
      else if (outcome === "kept") kept++;
      const units = done === plan.length ? total : Math.floor(bytes / scale);
      bar?.update(units - shown, { files: `${done}/${plan.length}` });
      shown = units;
      options.onProgress?.({ entries: done, totalEntries: plan.length, bytes, totalBytes });
      await pause();
    }
  } finally {
    bar?.close();
    closeSync(fd);
    rmSync(tempDir, { recursive: true, force: true });
  }
  writeMarker(destDir, {
    version: 1,
    archive: basename(archive),
    archiveSize: directory.archiveSize,
    archiveMtimeMs: directory.archiveMtimeMs,
    entries: plan.length,
    bytes: totalBytes,
    completedAt: new Date().toISOString(),
  });
  return result(false, written, kept);
}
