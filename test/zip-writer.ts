// A tiny zip WRITER for tests: stored and deflated entries, any entry name (including malicious ones such as
// `../evil.txt`, `/abs.txt` or names with NUL bytes), symlink entries (Unix mode 0o120000 in the external
// attributes), ZIP64 records on request, and a few deliberate defects (a wrong CRC-32, an unsupported method, the
// encryption flag) to build broken archives, and the shapes of zip bombs (data deflated by the caller, declared
// sizes that lie, central entries pointing at another entry's local header). `buildZip` returns the archive in
// memory; `writeZipFile` streams it to disk entry by entry, for fixtures too big to hold at once.
//
// Layout written (APPNOTE 6.3.x): for each entry a local header (+ ZIP64 extra when zip64), the data, and a data
// descriptor when asked; then the central directory; then, when zip64, the ZIP64 end record and its locator; then
// the classic end record (with 0xFFFF/0xFFFFFFFF placeholders when zip64).

import { createWriteStream } from "node:fs";
import { once } from "node:events";
import { deflateRawSync } from "node:zlib";
import { crc32 } from "../lib/data/zip/directory";

export interface ZipWriterEntry {
  /** The entry name exactly as stored (UTF-8; a name ending in `/` is a directory). */
  readonly name: string;
  readonly data: Buffer;
  /** Default "deflate". */
  readonly method?: "store" | "deflate";
  /** A symbolic link whose target is `data` (Unix mode 0o120777). */
  readonly symlink?: boolean;
  /** Unix mode for the external attributes (default 0o100644 for files, 0o40755 for directories). */
  readonly mode?: number;
  /** CRC-32 to record instead of the real one (a corrupt archive). */
  readonly crc?: number;
  /** Uncompressed size to record instead of the real one (a corrupt archive). */
  readonly size?: number;
  /** Compression method number to record instead of 0/8 (e.g. 12, bzip2), data stored as is. */
  readonly rawMethod?: number;
  /** Sets the "encrypted" flag (the data is not actually encrypted). */
  readonly encrypted?: boolean;
  /** Zero CRC and sizes in the local header and write them in a data descriptor after the data (flag bit 3). */
  readonly dataDescriptor?: boolean;
  /**
   * The entry's data as stored, already deflated (raw DEFLATE) by the caller, e.g. a bomb too big to hold
   * inflated; `data` is then not used: give `size` and `crc` for what it inflates to.
   */
  readonly deflated?: Buffer;
  /**
   * Write no local header and no data for this entry: its central record points at this offset (e.g. 0, the first
   * entry's local header), as overlapping zip bombs do.
   */
  readonly localHeaderOffset?: number;
}

export interface ZipWriterOptions {
  /** Write ZIP64 extra fields in every header and the ZIP64 end records (as tools do past 65,535 entries or 4 GiB). */
  readonly zip64?: boolean;
  /** Archive comment (at the very end of the file). */
  readonly comment?: string;
}

const MAX16 = 0xffff;
const MAX32 = 0xffffffff;
const DOS_TIME = (12 << 11) | (34 << 5) | 28; // 12:34:56
const DOS_DATE = ((2020 - 1980) << 9) | (1 << 5) | 2; // 2020-01-02

interface CentralRecord {
  readonly nameBytes: Buffer;
  readonly flags: number;
  readonly method: number;
  readonly crc: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly offset: number;
  readonly externalAttributes: number;
}

function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(value);
  return b;
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return b;
}

function u64(value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(value));
  return b;
}

function zip64Extra(values: readonly number[]): Buffer {
  return Buffer.concat([u16(0x0001), u16(values.length * 8), ...values.map(u64)]);
}

/** Builds a zip archive entry by entry, keeping the offsets; `add` and `finish` return the bytes to append. */
class ZipAssembler {
  private offset = 0;
  private readonly records: CentralRecord[] = [];

  constructor(private readonly options: ZipWriterOptions) {}

  add(entry: ZipWriterEntry): Buffer[] {
    const nameBytes = Buffer.from(entry.name, "utf8");
    const isDir = entry.name.endsWith("/");
    const deflate = entry.deflated !== undefined || (entry.rawMethod === undefined && (entry.method ?? "deflate") === "deflate" && !isDir);
    const payload = entry.deflated ?? (deflate ? deflateRawSync(entry.data) : entry.data);
    const method = entry.rawMethod ?? (deflate ? 8 : 0);
    const crc = entry.crc ?? crc32(entry.data);
    const ascii = /^[\x00-\x7f]*$/.test(entry.name);
    const flags = (ascii ? 0 : 0x0800) | (entry.encrypted === true ? 0x0001 : 0) | (entry.dataDescriptor === true ? 0x0008 : 0);
    const zip64 = this.options.zip64 === true;
    const mode = entry.mode ?? (entry.symlink === true ? 0o120777 : isDir ? 0o40755 : 0o100644);
    const record: CentralRecord = {
      nameBytes,
      flags,
      method,
      crc,
      compressedSize: payload.length,
      size: entry.size ?? entry.data.length,
      offset: entry.localHeaderOffset ?? this.offset,
      externalAttributes: ((mode << 16) | (isDir ? 0x10 : 0)) >>> 0,
    };
    this.records.push(record);
    if (entry.localHeaderOffset !== undefined) return [];
    const descriptor = entry.dataDescriptor === true;
    const extra = zip64 ? zip64Extra(descriptor ? [0, 0] : [record.size, record.compressedSize]) : Buffer.alloc(0);
    const local = Buffer.concat([
      u32(0x04034b50),
      u16(zip64 ? 45 : 20),
      u16(flags),
      u16(method),
      u16(DOS_TIME),
      u16(DOS_DATE),
      u32(descriptor ? 0 : crc),
      u32(zip64 ? MAX32 : descriptor ? 0 : record.compressedSize),
      u32(zip64 ? MAX32 : descriptor ? 0 : record.size),
      u16(nameBytes.length),
      u16(extra.length),
      nameBytes,
      extra,
    ]);
    const parts = [local, payload];
    if (descriptor) {
      const sizes = zip64 ? [u64(record.compressedSize), u64(record.size)] : [u32(record.compressedSize), u32(record.size)];
      parts.push(Buffer.concat([u32(0x08074b50), u32(crc), ...sizes]));
    }
    for (const p of parts) this.offset += p.length;
    return parts;
  }

  finish(): Buffer[] {
    const zip64 = this.options.zip64 === true;
    const central = this.records.map((r) => {
      const extra = zip64 ? zip64Extra([r.size, r.compressedSize, r.offset]) : Buffer.alloc(0);
      return Buffer.concat([
        u32(0x02014b50),
        u16((3 << 8) | (zip64 ? 45 : 20)), // made by Unix, so the external attributes carry a Unix mode
        u16(zip64 ? 45 : 20),
        u16(r.flags),
        u16(r.method),
        u16(DOS_TIME),
        u16(DOS_DATE),
        u32(r.crc),
        u32(zip64 ? MAX32 : r.compressedSize),
        u32(zip64 ? MAX32 : r.size),
        u16(r.nameBytes.length),
        u16(extra.length),
        u16(0), // comment length
        u16(0), // disk number start
        u16(0), // internal attributes
        u32(r.externalAttributes),
        u32(zip64 ? MAX32 : r.offset),
        r.nameBytes,
        extra,
      ]);
    });
    const cdOffset = this.offset;
    const cdSize = central.reduce((sum, b) => sum + b.length, 0);
    const out = [...central];
    const count = this.records.length;
    if (zip64) {
      const recordOffset = cdOffset + cdSize;
      out.push(
        Buffer.concat([
          u32(0x06064b50),
          u64(44), // size of the rest of this record
          u16((3 << 8) | 45),
          u16(45),
          u32(0),
          u32(0),
          u64(count),
          u64(count),
          u64(cdSize),
          u64(cdOffset),
        ]),
        Buffer.concat([u32(0x07064b50), u32(0), u64(recordOffset), u32(1)]),
      );
    }
    const comment = Buffer.from(this.options.comment ?? "", "utf8");
    out.push(
      Buffer.concat([
        u32(0x06054b50),
        u16(0),
        u16(0),
        u16(zip64 ? MAX16 : count),
        u16(zip64 ? MAX16 : count),
        u32(zip64 ? MAX32 : cdSize),
        u32(zip64 ? MAX32 : cdOffset),
        u16(comment.length),
        comment,
      ]),
    );
    for (const b of out) this.offset += b.length;
    return out;
  }
}

/** A whole zip archive in memory. */
export function buildZip(entries: readonly ZipWriterEntry[], options: ZipWriterOptions = {}): Buffer {
  const zip = new ZipAssembler(options);
  const parts: Buffer[] = [];
  for (const entry of entries) parts.push(...zip.add(entry));
  parts.push(...zip.finish());
  return Buffer.concat(parts);
}

/**
 * Streams a zip archive to `path`, one entry in memory at a time (entries may come from a generator, so a fixture of
 * 200,000 files never exists as a whole). Resolves with the number of entries and the archive's size in bytes.
 */
export async function writeZipFile(
  path: string,
  entries: Iterable<ZipWriterEntry> | AsyncIterable<ZipWriterEntry>,
  options: ZipWriterOptions = {},
): Promise<{ entries: number; bytes: number }> {
  const zip = new ZipAssembler(options);
  const out = createWriteStream(path);
  const failed = once(out, "error").then(([error]: unknown[]) => Promise.reject(error));
  failed.catch(() => undefined);
  const write = async (chunks: Buffer[]): Promise<void> => {
    for (const chunk of chunks) {
      if (!out.write(chunk)) await Promise.race([once(out, "drain"), failed]);
    }
  };
  let count = 0;
  let bytes = 0;
  for await (const entry of entries) {
    const chunks = zip.add(entry);
    bytes += chunks.reduce((s, c) => s + c.length, 0);
    await write(chunks);
    count++;
  }
  const end = zip.finish();
  bytes += end.reduce((s, c) => s + c.length, 0);
  await write(end);
  out.end();
  await Promise.race([once(out, "finish"), failed]);
  return { entries: count, bytes };
}
