// A zip archive's central directory, read as APPNOTE 6.3.x lays it out: the end-of-central-directory record at the
// end of the file (and, when present, the ZIP64 locator and ZIP64 end record before it, needed past 65,535 entries
// or 4 GiB), then the central directory in one read, with sizes and offsets taken from ZIP64 extra fields where the
// 32-bit fields hold 0xFFFFFFFF; CRC-32, and the errors that name the archive and the entry. Used by
// lib/data/zip-extract; tested in test/zip-extract.test.ts.

import { open, stat, type FileHandle } from "node:fs/promises";
import * as zlib from "node:zlib";


// ---------------------------------------------------------------------------------------------------------------
// CRC-32

const CRC_TABLE = ((): Int32Array => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** CRC-32 (zip's, ISO-HDLC) computed with a lookup table; `previous` continues an earlier value. */
export function crc32Table(data: Uint8Array, previous = 0): number {
  let c = ~previous;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

type Crc32 = (data: Uint8Array, previous?: number) => number;
const nativeCrc32 = (zlib as { crc32?: Crc32 }).crc32;

/** CRC-32 as zip records it: node:zlib's (Node ≥ 20.15) when available, else the table version. */
export const crc32: Crc32 = typeof nativeCrc32 === "function" ? (data, previous = 0) => nativeCrc32(data, previous) : crc32Table;

// ---------------------------------------------------------------------------------------------------------------
// Errors

/**
 * What went wrong: a damaged archive, an entry refused for safety (unsafe names, overlapping entries), a size
 * limit (compression ratio, total size, free disk space), or a feature this reader does not have.
 */
export type ZipErrorKind = "corrupt" | "unsafe" | "limit" | "unsupported";

/** An archive that cannot be extracted, naming the archive and (when one is at fault) the entry. */
export class ZipError extends Error {
  constructor(
    readonly kind: ZipErrorKind,
    readonly archive: string,
    readonly entry: string | undefined,
    problem: string,
  ) {
    super(zipErrorMessage(kind, archive, entry, problem));
    this.name = "ZipError";
  }
}

function zipErrorMessage(kind: ZipErrorKind, archive: string, entry: string | undefined, problem: string): string {
  const where = entry === undefined ? archive : `${archive}, entry ${JSON.stringify(entry)}`;
  switch (kind) {
    case "corrupt":
      return (
        `${where}: ${problem}. The archive is damaged or incomplete (an interrupted download?): delete it and download ` +
        `it again. Files already extracted are kept.`
      );
    case "unsafe":
      return `${where}: refusing to extract this entry: ${problem}. Nothing was extracted from this archive.`;
    case "limit":
      return `${where}: refusing to extract: ${problem}. Nothing was written (files from an earlier extraction are kept).`;
    case "unsupported":
      return `${where}: ${problem}. Nothing was extracted from this archive; unzip it with another tool.`;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The central directory

/** One entry of the central directory. Sizes and offsets are bytes (exact up to 2^53). */
export interface ZipEntry {
  /** Position in the central directory. */
  readonly index: number;
  /** The name as stored (UTF-8 when flagged, else code page 437), `/`-separated, `…/` for a folder. */
  readonly name: string;
  /** 0 = stored, 8 = deflated; anything else is unsupported. */
  readonly method: number;
  /** General-purpose flags (bit 0: encrypted, bit 3: data descriptor, bit 11: UTF-8 name). */
  readonly flags: number;
  readonly crc32: number;
  readonly compressedSize: number;
  /** Uncompressed size. */
  readonly size: number;
  readonly localHeaderOffset: number;
  readonly isDirectory: boolean;
  /** Unix mode from the external attributes (0 when the archive records none). */
  readonly unixMode: number;
  readonly isSymlink: boolean;
  readonly encrypted: boolean;
}

/** An archive's central directory, and the archive's identity on disk. */
export interface ZipDirectory {
  readonly archive: string;
  readonly archiveSize: number;
  readonly archiveMtimeMs: number;
  /** Whether ZIP64 end records were present. */
  readonly zip64: boolean;
  readonly centralDirectoryOffset: number;
  readonly entries: readonly ZipEntry[];
}

export const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;
const SIG_END64 = 0x06064b50;
const SIG_LOCATOR64 = 0x07064b50;
const END_SIZE = 22;
const LOCATOR64_SIZE = 20;
const END64_SIZE = 56;
const CENTRAL_SIZE = 46;
export const LOCAL_SIZE = 30;
const MAX_COMMENT = 0xffff;
const MAX_CENTRAL_DIRECTORY = 1 << 30;

/** Code page 437, bytes 0x80–0xFF (the encoding of names without the UTF-8 flag). */
const CP437_HIGH =
  "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0";

function decodeCp437(bytes: Buffer): string {
  let out = "";
  for (const b of bytes) out += b < 0x80 ? String.fromCharCode(b) : CP437_HIGH[b - 0x80];
  return out;
}

function readU64(buf: Buffer, offset: number, corrupt: (problem: string) => ZipError): number {
  const value = buf.readBigUInt64LE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`a 64-bit size or offset (${value}) is impossibly large`);
  return Number(value);
}

/** Reads exactly `length` bytes at `position`, or throws `short` if the file ends first. */
async function readExactly(fh: FileHandle, length: number, position: number, short: () => Error): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) throw short();
    done += bytesRead;
  }
  return buf;
}

interface EndRecord {
  readonly entries: number;
  readonly cdSize: number;
  readonly cdOffset: number;
  /** Where the central directory must end: the ZIP64 end record, or the classic end record. */
  readonly cdEnd: number;
  readonly zip64: boolean;
}

/** Finds the classic end record in the archive's tail: the last signature whose comment ends exactly at the end. */
function findEndRecord(tail: Buffer): number {
  for (let i = tail.length - END_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_END && i + END_SIZE + tail.readUInt16LE(i + 20) === tail.length) return i;
  }
  return -1;
}

async function readEndRecord(fh: FileHandle, archive: string, size: number): Promise<EndRecord> {
  const corrupt = (problem: string) => new ZipError("corrupt", archive, undefined, problem);
  if (size < END_SIZE) throw corrupt(`it is ${size} bytes long, too short to be a zip archive`);
  const tailLength = Math.min(size, END_SIZE + MAX_COMMENT + LOCATOR64_SIZE);
  const tailStart = size - tailLength;
  const tail = await readExactly(fh, tailLength, tailStart, () => corrupt("it ends early"));
  const at = findEndRecord(tail);
  if (at < 0) throw corrupt("it has no end-of-central-directory record (the file is cut short, or is not a zip archive)");
  const endPos = tailStart + at;
  const disk = tail.readUInt16LE(at + 4);
  const cdDisk = tail.readUInt16LE(at + 6);
  let entries = tail.readUInt16LE(at + 10);
  let cdSize = tail.readUInt32LE(at + 12);
  let cdOffset = tail.readUInt32LE(at + 16);
  let cdEnd = endPos;
  const hasLocator = at >= LOCATOR64_SIZE && tail.readUInt32LE(at - LOCATOR64_SIZE) === SIG_LOCATOR64;
  if (hasLocator) {
    const end64Pos = readU64(tail, at - LOCATOR64_SIZE + 8, corrupt);
    if (end64Pos + END64_SIZE > endPos - LOCATOR64_SIZE) throw corrupt("its ZIP64 locator points outside the archive");
    const end64 = await readExactly(fh, END64_SIZE, end64Pos, () => corrupt("it ends early"));
    if (end64.readUInt32LE(0) !== SIG_END64) throw corrupt(`no ZIP64 end record at offset ${end64Pos}, where its locator points`);
    if (end64.readUInt32LE(16) !== 0 || end64.readUInt32LE(20) !== 0) {
      throw new ZipError("unsupported", archive, undefined, "it is a split (multi-part) archive, which is not supported");
    }
    entries = readU64(end64, 32, corrupt);
    cdSize = readU64(end64, 40, corrupt);
    cdOffset = readU64(end64, 48, corrupt);
    cdEnd = end64Pos;
  } else if (entries === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    throw corrupt("its end record asks for ZIP64 values, but there is no ZIP64 end record");
  } else if (disk !== 0 || cdDisk !== 0) {
    throw new ZipError("unsupported", archive, undefined, "it is a split (multi-part) archive, which is not supported");
  }
  if (cdOffset + cdSize !== cdEnd) {
    throw corrupt(`its central directory (${cdSize} bytes at offset ${cdOffset}) does not end where the end record is (${cdEnd})`);
  }
  if (cdSize > MAX_CENTRAL_DIRECTORY) throw corrupt(`its central directory claims ${cdSize} bytes`);
  return { entries, cdSize, cdOffset, cdEnd, zip64: hasLocator };
}

/** The ZIP64 extra field's values, in its fixed order, for the 32-bit fields that hold 0xFFFFFFFF. */
function applyZip64Extra(
  extra: Buffer,
  fields: { size: number; compressedSize: number; localHeaderOffset: number },
  corrupt: (problem: string) => ZipError,
): void {
  for (let p = 0; p + 4 <= extra.length; ) {
    const id = extra.readUInt16LE(p);
    const length = extra.readUInt16LE(p + 2);
    const body = p + 4;
    if (body + length > extra.length) break;
    if (id === 0x0001) {
      let q = body;
      const next = (): number => {
        if (q + 8 > body + length) throw corrupt("its ZIP64 extra field is too short");
        const v = readU64(extra, q, corrupt);
        q += 8;
        return v;
      };
      if (fields.size === 0xffffffff) fields.size = next();
      if (fields.compressedSize === 0xffffffff) fields.compressedSize = next();
      if (fields.localHeaderOffset === 0xffffffff) fields.localHeaderOffset = next();
      return;
    }
    p = body + length;
  }
  if (fields.size === 0xffffffff || fields.compressedSize === 0xffffffff || fields.localHeaderOffset === 0xffffffff) {
    throw corrupt("it needs a ZIP64 extra field for its sizes or offset, and has none");
  }
}

/** The Info-ZIP Unicode Path extra field (0x7075), when present and made for this very name. */
function unicodePath(extra: Buffer, rawName: Buffer): string | undefined {
  for (let p = 0; p + 4 <= extra.length; ) {
    const id = extra.readUInt16LE(p);
    const length = extra.readUInt16LE(p + 2);
    if (p + 4 + length > extra.length) return undefined;
    if (id === 0x7075 && length >= 5 && extra[p + 4] === 1 && extra.readUInt32LE(p + 5) === crc32(rawName)) {
      return extra.subarray(p + 9, p + 4 + length).toString("utf8");
    }
    p += 4 + length;
  }
  return undefined;
}

function parseCentralDirectory(cd: Buffer, end: EndRecord, archive: string): ZipEntry[] {
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let index = 0; index < end.entries; index++) {
    const corrupt = (problem: string) =>
      new ZipError("corrupt", archive, undefined, `central directory entry ${index + 1} of ${end.entries}: ${problem}`);
    if (p + CENTRAL_SIZE > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) throw corrupt("its signature is missing");
    const madeBy = cd.readUInt16LE(p + 4);
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    const crc = cd.readUInt32LE(p + 16);
    const nameLength = cd.readUInt16LE(p + 28);
    const extraLength = cd.readUInt16LE(p + 30);
    const commentLength = cd.readUInt16LE(p + 32);
    const external = cd.readUInt32LE(p + 38);
    const next = p + CENTRAL_SIZE + nameLength + extraLength + commentLength;
    if (next > cd.length) throw corrupt("it runs past the end of the central directory");
    const rawName = cd.subarray(p + CENTRAL_SIZE, p + CENTRAL_SIZE + nameLength);
    const extra = cd.subarray(p + CENTRAL_SIZE + nameLength, p + CENTRAL_SIZE + nameLength + extraLength);
    const name = (flags & 0x0800) !== 0 ? rawName.toString("utf8") : (unicodePath(extra, rawName) ?? decodeCp437(rawName));
    const fields = { size: cd.readUInt32LE(p + 24), compressedSize: cd.readUInt32LE(p + 20), localHeaderOffset: cd.readUInt32LE(p + 42) };
    applyZip64Extra(extra, fields, (problem) => new ZipError("corrupt", archive, name, problem));
    // The high 16 bits hold a Unix mode when the archive was made on Unix (3) or macOS (19); MS-DOS attributes
    // (the low byte) have no symlinks.
    const host = madeBy >> 8;
    const unixMode = host === 3 || host === 19 ? external >>> 16 : 0;
    entries.push({
      index,
      name,
      method,
      flags,
      crc32: crc,
      compressedSize: fields.compressedSize,
      size: fields.size,
      localHeaderOffset: fields.localHeaderOffset,
      isDirectory: name.endsWith("/") || (external & 0x10) !== 0 || (unixMode & 0o170000) === 0o040000,
      unixMode,
      isSymlink: (unixMode & 0o170000) === 0o120000,
      encrypted: (flags & 0x0001) !== 0 || (flags & 0x0040) !== 0,
    });
    p = next;
  }
  return entries;
}

/** Reads an archive's central directory (the archive itself is not read beyond its end records and directory). */
export async function readZipDirectory(archive: string): Promise<ZipDirectory> {
  const info = await stat(archive).catch((error: NodeJS.ErrnoException) => {
    throw new Error(`cannot read the archive ${archive} (${error.code ?? error.message})`, { cause: error });
  });
  const fh = await open(archive, "r");
  try {
    const end = await readEndRecord(fh, archive, info.size);
    const cd = await readExactly(fh, end.cdSize, end.cdOffset, () => new ZipError("corrupt", archive, undefined, "it ends early"));
    const entries = parseCentralDirectory(cd, end, archive);
    for (const e of entries) {
      if (e.localHeaderOffset + LOCAL_SIZE + e.compressedSize > end.cdOffset) {
        throw new ZipError("corrupt", archive, e.name, `its data (${e.compressedSize} bytes at offset ${e.localHeaderOffset}) runs into the central directory`);
      }
    }
    return {
      archive,
      archiveSize: info.size,
      archiveMtimeMs: info.mtimeMs,
      zip64: end.zip64,
      centralDirectoryOffset: end.cdOffset,
      entries,
    };
  } finally {
    await fh.close();
  }
}

/** The entries of an archive, in central-directory order. */
export async function listZipEntries(archive: string): Promise<ZipEntry[]> {
  return [...(await readZipDirectory(archive)).entries];
}
