// What an archive must pass before anything of it is written (lib/data/zip-extract): safe entry names (no NUL,
// backslash or colon, nothing absolute, no `..`, no collisions, no symlinks), and size limits against zip bombs —
// entries whose local header and data overlap, a compression ratio no photo archive has, a total above the bound
// derived from the expected dataset, and a total larger than the free disk. Tested in test/zip-extract.test.ts.

import { statSync } from "node:fs";
import { resolve, sep } from "node:path";
import { formatBytes, type FreeSpace } from "../../util/disk";
import { LOCAL_SIZE, type ZipDirectory, type ZipEntry, ZipError } from "./directory";




// ---------------------------------------------------------------------------------------------------------------
// Safety

/** Written last, when every selected entry is in place. */
export const EXTRACTION_MARKER = ".celeba-sae-extracted.json";
/** Temporary files of entries being written (removed at the end). */
export const EXTRACTION_TEMP_DIR = ".celeba-sae-partial";

/**
 * Why an entry name must not be extracted, or undefined when it is safe: its path segments (empty and `.` ones
 * dropped) then lie inside the target folder whatever the platform.
 */
export function unsafeEntryNameReason(name: string): string | undefined {
  if (name.includes("\0")) return "its name contains a NUL byte";
  if (name.startsWith("/")) return "its name is an absolute path";
  if (/^[A-Za-z]:/.test(name)) return "its name starts with a drive letter (an absolute path on Windows)";
  if (name.startsWith("\\\\")) return "its name is a Windows network path (\\\\server\\…)";
  if (name.includes("\\")) return "its name contains a backslash (a path separator on Windows)";
  if (name.includes(":")) return "its name contains ':' (a drive or an alternate data stream on Windows)";
  const segments = entrySegments(name);
  if (segments.includes("..")) return "its name has a '..' segment (it would climb out of the target folder)";
  if (segments.length > 0 && (segments[0] === EXTRACTION_MARKER || segments[0] === EXTRACTION_TEMP_DIR)) {
    return `its name is reserved for the extraction's own bookkeeping (${segments[0]})`;
  }
  if (segments.length === 0 && !name.endsWith("/")) return "its name is empty";
  return undefined;
}

/** The path segments of an entry name, without empty and `.` segments. */
function entrySegments(name: string): string[] {
  return name.split("/").filter((s) => s !== "" && s !== ".");
}

/** Where a (safe) entry lands below `destDir`, absolute; throws when it would not be inside. */
function entryTarget(destDir: string, entry: ZipEntry, archive: string): string {
  const root = resolve(destDir);
  const target = resolve(root, ...entrySegments(entry.name));
  if (target !== root && !target.startsWith(root + sep)) {
    throw new ZipError("unsafe", archive, entry.name, `it would be written to ${target}, outside ${root}`);
  }
  return target;
}

/** One entry to extract, and where. */
export interface PlannedEntry {
  readonly entry: ZipEntry;
  readonly target: string;
}

/**
 * Checks every entry of the directory (unsafe names, symlinks, collisions) and those selected (method, encryption),
 * before anything is written. Returns the selected entries with their targets.
 */
export function planExtraction(directory: ZipDirectory, destDir: string, selected: (entry: ZipEntry) => boolean): PlannedEntry[] {
  const archive = directory.archive;
  const files = new Map<string, string>();
  const folders = new Map<string, string>();
  const plan: PlannedEntry[] = [];
  for (const entry of directory.entries) {
    const reason = unsafeEntryNameReason(entry.name);
    if (reason !== undefined) throw new ZipError("unsafe", archive, entry.name, reason);
    if (entry.isSymlink) throw new ZipError("unsafe", archive, entry.name, "it is a symbolic link (symlinks are never extracted)");
    const target = entryTarget(destDir, entry, archive);
    const segments = entrySegments(entry.name);
    for (let k = 1; k < segments.length; k++) {
      const folder = segments.slice(0, k).join("/");
      const clash = files.get(folder);
      if (clash !== undefined) throw new ZipError("unsafe", archive, entry.name, `it needs ${folder}/ as a folder, but entry ${JSON.stringify(clash)} is a file there`);
      folders.set(folder, entry.name);
    }
    const path = segments.join("/");
    if (entry.isDirectory) {
      if (files.has(path)) throw new ZipError("unsafe", archive, entry.name, `entry ${JSON.stringify(files.get(path))} is a file at the same path`);
      if (path !== "") folders.set(path, entry.name);
    } else {
      const other = files.get(path) ?? folders.get(path);
      if (other !== undefined) throw new ZipError("unsafe", archive, entry.name, `entry ${JSON.stringify(other)} has the same path`);
      files.set(path, entry.name);
    }
    if (!selected(entry)) continue;
    if (!entry.isDirectory) {
      if (entry.encrypted) throw new ZipError("unsupported", archive, entry.name, "it is encrypted, which is not supported");
      if (entry.method !== 0 && entry.method !== 8) {
        throw new ZipError("unsupported", archive, entry.name, `it uses compression method ${entry.method}; only stored (0) and deflated (8) entries are supported`);
      }
    }
    plan.push({ entry, target });
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------------------------
// Size limits (zip bombs)

/**
 * The size limits' defaults (options of `extractZip`, but `ratioMinSize`), from what the expected archive holds: Kaggle's CelebA is 1.33 GB zipped and about
 * 1.4 GB unzipped, 202,599 JPEGs (which deflate barely shrinks: JPEG data is already entropy-coded) and a few CSV
 * files of digits (which deflate shrinks about 12:1, as for the 40 columns of ±1 of list_attr_celeba.csv).
 */
export const DEFAULT_ZIP_LIMITS = {
  /** Uncompressed bytes of the selected entries: the dataset's 1.4 GB, with room for a bigger release. */
  maxTotalBytes: 4e9,
  /**
   * Uncompressed ÷ compressed size of one entry. Deflate's ceiling is about 1032:1, reached by long runs of one
   * byte, which is what zip bombs are made of; no photo (about 1:1) or CSV file comes near 100:1, so 100:1 leaves
   * real data ten times the room it needs and still refuses any bomb made of runs.
   */
  maxRatio: 100,
  /**
   * The same ratio over all the archive's files: a photo archive is close to 1:1 overall (CelebA: 1.1:1), and
   * even one of nothing but such CSV files stays under 20:1; many small entries of runs, each under the
   * `ratioMinSize` below, are not.
   */
  maxTotalRatio: 20,
  /**
   * Entries (and archives) unzipping to less than this (4 MiB) are exempt from the ratio limits: one cannot fill a
   * disk, many are caught by the overall ratio and the total size, and small, very compressible files are ordinary.
   */
  ratioMinSize: 4 * 1024 * 1024,
} as const;

function ratioText(size: number, compressed: number): string {
  if (compressed === 0) return "∞:1";
  const ratio = size / compressed;
  return `${ratio < 1000 ? ratio.toFixed(1) : Math.round(ratio)}:1`;
}

const BOMB_ADVICE = "No zip tool writes such an archive; it is how zip bombs are built. Delete it and download it again from its source";

/**
 * Refuses entries whose local header and data overlap another's (or share its local header: the same compressed
 * bytes extracted again and again), and returns where each entry's data must end: the next local header in file
 * order, or the central directory. Overlaps are found from the central directory alone: sorted by offset, each
 * entry needs at least its 30-byte local header and its compressed data before the next one starts.
 */
export function checkOverlaps(directory: ZipDirectory): Float64Array {
  const { archive, entries, centralDirectoryOffset } = directory;
  const order = entries.map((e) => e.index);
  let sorted = true;
  for (let k = 1; k < entries.length && sorted; k++) sorted = entries[k - 1].localHeaderOffset <= entries[k].localHeaderOffset;
  if (!sorted) order.sort((a, b) => entries[a].localHeaderOffset - entries[b].localHeaderOffset);
  const ends = new Float64Array(entries.length);
  for (let k = 0; k < order.length; k++) {
    const entry = entries[order[k]];
    if (k + 1 === order.length) {
      ends[entry.index] = centralDirectoryOffset;
      continue;
    }
    const next = entries[order[k + 1]];
    ends[entry.index] = next.localHeaderOffset;
    const minEnd = entry.localHeaderOffset + LOCAL_SIZE + entry.compressedSize;
    if (next.localHeaderOffset === entry.localHeaderOffset) {
      throw new ZipError(
        "unsafe",
        archive,
        next.name,
        `it shares its local header (offset ${next.localHeaderOffset}) with entry ${JSON.stringify(entry.name)}, so the same ` +
          `compressed data would be extracted twice. ${BOMB_ADVICE}`,
      );
    }
    if (minEnd > next.localHeaderOffset) {
      throw new ZipError(
        "unsafe",
        archive,
        next.name,
        `its local header (offset ${next.localHeaderOffset}) lies inside entry ${JSON.stringify(entry.name)}'s header and data ` +
          `(offset ${entry.localHeaderOffset} to at least ${minEnd}): overlapping entries extract the same compressed data twice. ${BOMB_ADVICE}`,
      );
    }
  }
  return ends;
}

/** Refuses an entry, or the archive as a whole, that would inflate more than any photo archive does. */
export function checkRatios(directory: ZipDirectory, maxRatio: number, maxTotalRatio: number): void {
  const { archive, entries } = directory;
  const minSize = DEFAULT_ZIP_LIMITS.ratioMinSize;
  const advice = (option: string) =>
    `Photos barely compress (JPEG data is already compressed), so this is a zip bomb or not the archive expected: ` +
    `delete it and download it again from its source, or, if you trust it, pass a higher ${option}`;
  let size = 0;
  let compressed = 0;
  let biggest: ZipEntry | undefined;
  for (const e of entries) {
    if (e.isDirectory) continue;
    size += e.size;
    compressed += e.compressedSize;
    if (biggest === undefined || e.size - e.compressedSize > biggest.size - biggest.compressedSize) biggest = e;
    if (e.size >= minSize && e.size > maxRatio * e.compressedSize) {
      throw new ZipError(
        "limit",
        archive,
        e.name,
        `it would inflate ${ratioText(e.size, e.compressedSize)} (${formatBytes(e.size)} from ${formatBytes(e.compressedSize)}), ` +
          `more than the ${maxRatio}:1 allowed for one entry (maxRatio). ${advice("maxRatio")}`,
      );
    }
  }
  if (biggest !== undefined && size >= minSize && size > maxTotalRatio * compressed) {
    throw new ZipError(
      "limit",
      archive,
      biggest.name,
      `the archive as a whole would inflate ${ratioText(size, compressed)} (${formatBytes(size)} from ${formatBytes(compressed)}), ` +
        `more than the ${maxTotalRatio}:1 allowed (maxTotalRatio); this entry grows the most, ${ratioText(biggest.size, biggest.compressedSize)} ` +
        `(${formatBytes(biggest.size)}). ${advice("maxTotalRatio")}`,
    );
  }
}

/** Refuses a selection that unzips to more than `maxTotalBytes`, naming its largest entry. */
export function checkTotal(directory: ZipDirectory, plan: readonly PlannedEntry[], totalBytes: number, maxTotalBytes: number): void {
  if (totalBytes <= maxTotalBytes) return;
  let largest = plan[0].entry;
  for (const { entry } of plan) if (entry.size > largest.size) largest = entry;
  throw new ZipError(
    "limit",
    directory.archive,
    largest.name,
    `its ${plan.length} selected entries would unzip to ${formatBytes(totalBytes)}, more than the ${formatBytes(maxTotalBytes)} allowed ` +
      `(maxTotalBytes; Kaggle's CelebA unzips to about 1.4 GB), this entry being the largest (${formatBytes(largest.size)}). ` +
      `It is not the archive expected, or it is damaged: delete it and download it again; if you trust it, pass a higher maxTotalBytes`,
  );
}

/**
 * Refuses an extraction that would not fit in `free`: the files still to write (rounded up to whole blocks), less
 * the incomplete files they replace; complete files (from an interrupted run) need nothing more. Names the entry
 * with which the disk would fill.
 */
export function checkFreeSpace(directory: ZipDirectory, destDir: string, plan: readonly PlannedEntry[], present: readonly (number | undefined)[], free: FreeSpace | undefined): void {
  if (free === undefined) return;
  const block = Math.max(1, free.blockSize);
  const onDisk = (bytes: number) => Math.ceil(bytes / block) * block;
  let needed = 0;
  let files = 0;
  let already = 0;
  let full: ZipEntry | undefined;
  plan.forEach(({ entry }, i) => {
    if (entry.isDirectory) return;
    const had = present[i];
    if (had === entry.size) {
      already += had;
      return;
    }
    needed += onDisk(entry.size) - (had === undefined ? 0 : onDisk(had));
    files++;
    if (full === undefined && needed > free.bytes) full = entry;
  });
  if (needed <= free.bytes || full === undefined) return;
  throw new ZipError(
    "limit",
    directory.archive,
    full.name,
    `the ${files === 1 ? "file" : `${files} files`} still to extract need${files === 1 ? "s" : ""} about ${formatBytes(needed)} on disk at ${resolve(destDir)}` +
      `${already > 0 ? ` (${formatBytes(already)} are already extracted)` : ""}, but only ${formatBytes(free.bytes)} are free there; ` +
      `the disk would fill with this entry. Free at least ${formatBytes(needed - free.bytes)} there, or extract elsewhere, and run again`,
  );
}

/** The size of the regular file at `path`, or undefined when there is none. */
export function fileSize(path: string): number | undefined {
  try {
    const info = statSync(path, { throwIfNoEntry: false });
    return info !== undefined && info.isFile() ? info.size : undefined;
  } catch {
    return undefined;
  }
}
