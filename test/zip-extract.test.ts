import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { constants as zlibConstants, deflateRawSync } from "node:zlib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { crc32, crc32Table, listZipEntries, readZipDirectory, ZipError } from "../lib/data/zip/directory";
import { DEFAULT_ZIP_LIMITS, EXTRACTION_MARKER, EXTRACTION_TEMP_DIR, unsafeEntryNameReason } from "../lib/data/zip/safety";
import { diskFreeSpace, type FreeSpace } from "../lib/util/disk";
import { extractZip, readExtractionMarker, type ExtractOptions, type ExtractProgress } from "../lib/data/zip-extract";
import { buildZip, writeZipFile, type ZipWriterEntry } from "./zip-writer";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "zip-extract-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const quiet: ExtractOptions = { progress: false };

/** Deterministic bytes that deflate does not shrink. */
function noise(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function writeArchive(name: string, entries: readonly ZipWriterEntry[], options?: Parameters<typeof buildZip>[1]): string {
  const path = join(dir, name);
  writeFileSync(path, buildZip(entries, options));
  return path;
}

/** Every file below `root` (relative, `/`-separated) with its bytes. */
function readTree(root: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) walk(r);
      else out.set(r, readFileSync(join(root, r)));
    }
  };
  walk("");
  return out;
}

async function rejection(promise: Promise<unknown>): Promise<ZipError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ZipError);
  return error as ZipError;
}

const SAMPLE: ZipWriterEntry[] = [
  { name: "img_align_celeba/", data: Buffer.alloc(0) },
  { name: "img_align_celeba/img_align_celeba/000001.jpg", data: noise(5000, 1), method: "store" },
  { name: "img_align_celeba/img_align_celeba/000002.jpg", data: noise(7000, 2), method: "deflate" },
  { name: "list_attr_celeba.csv", data: Buffer.from("image_id,Smiling\n000001.jpg,1\n000002.jpg,-1\n".repeat(200)) },
  { name: "deep/a/b/c/empty.txt", data: Buffer.alloc(0) },
  { name: "deep/a/b/c/empty-stored.txt", data: Buffer.alloc(0), method: "store" },
  { name: "ünïcödé/名前.txt", data: Buffer.from("utf-8 names\n") },
  { name: "described.bin", data: noise(3000, 3), dataDescriptor: true },
  { name: "big/compressible.bin", data: Buffer.from("abcdefgh".repeat(300_000)) },
  { name: "big/incompressible.bin", data: noise(1_500_000, 4) },
];

function expectSampleExtracted(dest: string, entries: readonly ZipWriterEntry[] = SAMPLE): void {
  const tree = readTree(dest);
  tree.delete(EXTRACTION_MARKER);
  const files = entries.filter((e) => !e.name.endsWith("/"));
  expect([...tree.keys()].sort()).toEqual(files.map((e) => e.name).sort());
  for (const e of files) expect(tree.get(e.name)!.equals(e.data), e.name).toBe(true);
}

describe("crc32", () => {
  it("gives zip's CRC-32, natively and from the table, also when continued", () => {
    const check = Buffer.from("123456789");
    expect(crc32(check)).toBe(0xcbf43926);
    expect(crc32Table(check)).toBe(0xcbf43926);
    const data = noise(10_000, 7);
    expect(crc32Table(data)).toBe(crc32(data));
    expect(crc32Table(data.subarray(4000), crc32Table(data.subarray(0, 4000)))).toBe(crc32(data));
  });
});

describe("reading the central directory", () => {
  it("lists names, methods, sizes and folders as written", async () => {
    const archive = writeArchive("a.zip", SAMPLE, { comment: "an archive comment\u0006\u0005KP with a fake end signature" });
    const entries = await listZipEntries(archive);
    expect(entries.map((e) => e.name)).toEqual(SAMPLE.map((e) => e.name));
    expect(entries.map((e) => e.size)).toEqual(SAMPLE.map((e) => e.data.length));
    expect(entries[0].isDirectory).toBe(true);
    expect(entries[1]).toMatchObject({ method: 0, compressedSize: 5000, isSymlink: false, encrypted: false });
    expect(entries[2].method).toBe(8);
    expect(entries[8].compressedSize).toBeLessThan(entries[8].size / 100);
    expect(entries.every((e) => e.crc32 === crc32(SAMPLE[e.index].data))).toBe(true);
  });

  it("reads ZIP64 end records and extra fields (and more than 65,535 entries)", async () => {
    const count = 70_000;
    const many: ZipWriterEntry[] = Array.from({ length: count }, (_, i) => ({
      name: `img/${String(i + 1).padStart(6, "0")}.jpg`,
      data: Buffer.from(String(i)),
      method: "store" as const,
    }));
    const archive = writeArchive("many.zip", many, { zip64: true });
    const directory = await readZipDirectory(archive);
    expect(directory.zip64).toBe(true);
    expect(directory.entries.length).toBe(count);
    const last = directory.entries[count - 1];
    expect(last).toMatchObject({ name: "img/070000.jpg", size: 5, compressedSize: 5 });
    expect(last.localHeaderOffset).toBeGreaterThan(0xffff);
    const wanted = new Set(["img/000001.jpg", "img/065536.jpg", "img/070000.jpg"]);
    const result = await extractZip(archive, join(dir, "out"), { ...quiet, filter: (e) => wanted.has(e.name) });
    expect(result).toMatchObject({ entries: 3, written: 3, skipped: false });
    expect(readFileSync(join(dir, "out/img/065536.jpg"), "utf8")).toBe("65535");
    expect(readdirSync(join(dir, "out/img")).length).toBe(3);
  });

  it("says a truncated archive is damaged, names it and asks to download it again, writing nothing", async () => {
    const whole = buildZip(SAMPLE);
    for (const length of [Math.floor(whole.length / 2), whole.length - 5, 10]) {
      const archive = join(dir, `cut-${length}.zip`);
      writeFileSync(archive, whole.subarray(0, length));
      const error = await rejection(extractZip(archive, join(dir, "out"), quiet));
      expect(error.kind).toBe("corrupt");
      expect(error.message).toContain(archive);
      expect(error.message).toMatch(/delete it and download it again/);
      expect(existsSync(join(dir, "out"))).toBe(false);
    }
  });

  it("says so when the central directory does not match the end record", async () => {
    const whole = buildZip(SAMPLE);
    const archive = join(dir, "shifted.zip");
    writeFileSync(archive, Buffer.concat([whole.subarray(0, 100), whole.subarray(200)])); // 100 bytes lost in the data
    const error = await rejection(listZipEntries(archive));
    expect(error.kind).toBe("corrupt");
    expect(error.message).toMatch(/central directory/);
  });
});

describe("extracting", () => {
  it("round-trips stored, deflated, empty, nested, UTF-8 and data-descriptor entries byte for byte", async () => {
    const archive = writeArchive("a.zip", SAMPLE);
    const dest = join(dir, "out");
    const progress: ExtractProgress[] = [];
    const result = await extractZip(archive, dest, { ...quiet, onProgress: (p) => progress.push(p) });
    expectSampleExtracted(dest);
    const files = SAMPLE.filter((e) => !e.name.endsWith("/"));
    const bytes = files.reduce((s, e) => s + e.data.length, 0);
    expect(result).toMatchObject({ skipped: false, entries: SAMPLE.length, bytes, written: files.length, kept: 0 });
    expect(progress.at(-1)).toEqual({ entries: SAMPLE.length, totalEntries: SAMPLE.length, bytes, totalBytes: bytes });
    expect(existsSync(join(dest, EXTRACTION_TEMP_DIR))).toBe(false);
    expect(await readExtractionMarker(dest)).toMatchObject({ archive: "a.zip", entries: SAMPLE.length, bytes, archiveSize: statSync(archive).size });
  });

  it("streams entries bigger than the buffer limit through the same checks", async () => {
    const archive = writeArchive("a.zip", SAMPLE);
    const dest = join(dir, "out");
    await extractZip(archive, dest, { ...quiet, bufferLimit: 0 });
    expectSampleExtracted(dest);
  });

  it("extracts ZIP64 archives (sizes and offsets from the extra fields)", async () => {
    const archive = writeArchive("a64.zip", SAMPLE, { zip64: true });
    for (const bufferLimit of [undefined, 0]) {
      const dest = join(dir, `out-${bufferLimit}`);
      await extractZip(archive, dest, { ...quiet, bufferLimit });
      expectSampleExtracted(dest);
    }
  });

  it("extracts an archive written by the streaming writer", async () => {
    const archive = join(dir, "streamed.zip");
    function* entries(): Generator<ZipWriterEntry> {
      for (let i = 0; i < 300; i++) yield { name: `img/${String(i).padStart(6, "0")}.jpg`, data: noise(100 + i, i + 1) };
    }
    const written = await writeZipFile(archive, entries(), { zip64: true });
    expect(written).toEqual({ entries: 300, bytes: statSync(archive).size });
    await extractZip(archive, join(dir, "out"), quiet);
    expectSampleExtracted(join(dir, "out"), [...entries()]);
  });

  it("shows a progress bar in bytes with the file count", async () => {
    const archive = writeArchive("a.zip", SAMPLE);
    const lines: string[] = [];
    await extractZip(archive, join(dir, "out"), { progress: { mode: "log", stream: { write: (t: string) => lines.push(t) } } });
    const last = lines.at(-1)!;
    expect(last).toMatch(/^Extracting a\.zip: 100%\|██████████\| \d+\/\d+ \[.*kB\/s, files=10\/10\]\n$/);
    const [done, total] = /\| (\d+)\/(\d+) /.exec(last)!.slice(1).map(Number);
    expect(done).toBe(total);
    expect(total).toBe(Math.ceil(SAMPLE.reduce((s, e) => s + e.data.length, 0) / 1000));
  });

  it("names the entry whose CRC-32 does not match, keeps what was extracted before it and writes no marker", async () => {
    const entries: ZipWriterEntry[] = [
      { name: "first.txt", data: Buffer.from("fine") },
      { name: "bad/second.bin", data: noise(2000, 9), crc: 0x12345678 },
      { name: "third.txt", data: Buffer.from("never reached") },
    ];
    const archive = writeArchive("crc.zip", entries);
    for (const bufferLimit of [undefined, 0]) {
      const dest = join(dir, `out-${bufferLimit}`);
      const error = await rejection(extractZip(archive, dest, { ...quiet, bufferLimit }));
      expect(error).toMatchObject({ kind: "corrupt", archive, entry: "bad/second.bin" });
      expect(error.message).toContain('entry "bad/second.bin"');
      expect(error.message).toMatch(/CRC-32 is 0x[0-9a-f]{8} where the archive records 0x12345678/);
      expect(error.message).toMatch(/delete it and download it again\. Files already extracted are kept/);
      expect(readFileSync(join(dest, "first.txt"), "utf8")).toBe("fine");
      expect(existsSync(join(dest, "bad/second.bin"))).toBe(false);
      expect(existsSync(join(dest, "third.txt"))).toBe(false);
      expect(existsSync(join(dest, EXTRACTION_MARKER))).toBe(false);
      expect(existsSync(join(dest, EXTRACTION_TEMP_DIR))).toBe(false);
    }
  });

  it("removes the marker of an earlier extraction before writing, so a failed one is never taken as complete", async () => {
    const dest = join(dir, "out");
    await extractZip(writeArchive("good.zip", SAMPLE), dest, quiet);
    expect(existsSync(join(dest, EXTRACTION_MARKER))).toBe(true);
    const bad = writeArchive("bad.zip", [{ name: "x.txt", data: Buffer.from("x"), crc: 1 }]);
    await rejection(extractZip(bad, dest, quiet));
    expect(existsSync(join(dest, EXTRACTION_MARKER))).toBe(false);
    expect(await readExtractionMarker(dest)).toBeUndefined();
  });

  it("names the entry whose deflated data is damaged", async () => {
    const data = Buffer.from("The quick brown fox jumps over the lazy dog. ".repeat(2000));
    const whole = buildZip([{ name: "ok.txt", data: Buffer.from("ok") }, { name: "damaged.txt", data }]);
    const start = whole.indexOf(Buffer.from("damaged.txt")) + "damaged.txt".length; // data follows the local name
    for (let i = start + 20; i < start + 60; i++) whole[i] ^= 0x5a;
    const archive = join(dir, "damaged.zip");
    writeFileSync(archive, whole);
    for (const bufferLimit of [undefined, 0]) {
      const error = await rejection(extractZip(archive, join(dir, `out-${bufferLimit}`), { ...quiet, bufferLimit }));
      expect(error).toMatchObject({ kind: "corrupt", entry: "damaged.txt" });
      expect(error.message).toMatch(/deflated data is invalid|CRC-32|bytes of data/);
    }
  });

  it("refuses data that inflates beyond the size recorded, and data shorter than it", async () => {
    const data = Buffer.from("x".repeat(100_000));
    for (const size of [1000, 200_000]) {
      const archive = writeArchive(`size-${size}.zip`, [{ name: "bomb.txt", data, size }]);
      for (const bufferLimit of [undefined, 0]) {
        const error = await rejection(extractZip(archive, join(dir, `out-${size}-${bufferLimit}`), { ...quiet, bufferLimit }));
        expect(error).toMatchObject({ kind: "corrupt", entry: "bomb.txt" });
        expect(error.message).toMatch(size < data.length ? /more than the 1000 bytes recorded/ : /100000 bytes of data where the archive records 200000/);
      }
    }
  });

  it("refuses unsupported methods and encryption before writing anything, unless filtered out", async () => {
    for (const bad of [
      { name: "b.bz2", data: Buffer.from("BZh9"), rawMethod: 12 },
      { name: "secret.txt", data: Buffer.from("xx"), encrypted: true },
    ] satisfies ZipWriterEntry[]) {
      const archive = writeArchive(`${bad.name}.zip`, [{ name: "ok.txt", data: Buffer.from("ok") }, bad]);
      const dest = join(dir, `out-${bad.name}`);
      const error = await rejection(extractZip(archive, dest, quiet));
      expect(error).toMatchObject({ kind: "unsupported", entry: bad.name });
      expect(error.message).toMatch(bad.name === "b.bz2" ? /compression method 12/ : /encrypted/);
      expect(existsSync(dest)).toBe(false);
      const filtered = await extractZip(archive, dest, { ...quiet, filter: (e) => e.name === "ok.txt" });
      expect(filtered.written).toBe(1);
    }
  });
});

describe("zip-slip and other unsafe entries", () => {
  const UNSAFE: [string, RegExp][] = [
    ["../evil.txt", /'\.\.' segment/],
    ["./../evil.txt", /'\.\.' segment/],
    ["a/../../evil.txt", /'\.\.' segment/],
    ["a/b/../../../evil.txt", /'\.\.' segment/],
    ["a/../b.txt", /'\.\.' segment/],
    ["..", /'\.\.' segment/],
    ["/abs.txt", /absolute path/],
    ["//server/share/x.txt", /absolute path/],
    ["C:\\x.txt", /drive letter/],
    ["C:/x.txt", /drive letter/],
    ["c:x.txt", /drive letter/],
    ["\\\\server\\share\\x.txt", /network path/],
    ["..\\evil.txt", /backslash/],
    ["a\\..\\..\\evil.txt", /backslash/],
    ["x.txt:stream", /':'/],
    ["nul\0byte.txt", /NUL byte/],
    ["../\0.txt", /NUL byte/],
    [EXTRACTION_MARKER, /reserved/],
    [`${EXTRACTION_TEMP_DIR}/0.tmp`, /reserved/],
  ];

  it.each(UNSAFE)("refuses %j, naming it, before writing anything", async (name, reason) => {
    expect(unsafeEntryNameReason(name)).toMatch(reason);
    const archive = writeArchive("slip.zip", [
      { name: "a/ok.txt", data: Buffer.from("harmless") },
      { name, data: Buffer.from("evil") },
      { name: "z/ok.txt", data: Buffer.from("harmless") },
    ]);
    const dest = join(dir, "deep", "out");
    const error = await rejection(extractZip(archive, dest, quiet));
    expect(error).toMatchObject({ kind: "unsafe", entry: name });
    expect(error.message).toContain(`entry ${JSON.stringify(name)}`);
    expect(error.message).toMatch(reason);
    expect(error.message).toMatch(/Nothing was extracted/);
    expect(existsSync(dest)).toBe(false);
    expect(readdirSync(dir).sort()).toEqual(["slip.zip"]);
  });

  it("accepts ordinary names, with or without ./ and doubled slashes", () => {
    for (const name of ["a.txt", "a/b/c.jpg", "./a.txt", "a//b.txt", "dir/", "...txt", "a..b/c", "名前/ü.jpg"]) {
      expect(unsafeEntryNameReason(name), name).toBeUndefined();
    }
  });

  it("refuses symlink entries, whatever their target", async () => {
    for (const target of ["/etc/passwd", "../outside", "inside.txt"]) {
      const archive = writeArchive("link.zip", [
        { name: "ok.txt", data: Buffer.from("ok") },
        { name: "img_align_celeba", data: Buffer.from(target), symlink: true },
      ]);
      const dest = join(dir, "out");
      const error = await rejection(extractZip(archive, dest, quiet));
      expect(error).toMatchObject({ kind: "unsafe", entry: "img_align_celeba" });
      expect(error.message).toMatch(/symbolic link/);
      expect(existsSync(dest)).toBe(false);
    }
  });

  it("refuses two entries with the same path, and a file where a folder is needed", async () => {
    const cases: [ZipWriterEntry[], string, RegExp][] = [
      [[{ name: "a.txt", data: Buffer.from("1") }, { name: "./a.txt", data: Buffer.from("2") }], "./a.txt", /same path/],
      [[{ name: "a", data: Buffer.from("file") }, { name: "a/b.txt", data: Buffer.from("x") }], "a/b.txt", /needs a\/ as a folder/],
      [[{ name: "a/b.txt", data: Buffer.from("x") }, { name: "a", data: Buffer.from("file") }], "a", /same path/],
      [[{ name: "a", data: Buffer.from("file") }, { name: "a/", data: Buffer.alloc(0) }], "a/", /is a file at the same path/],
    ];
    for (const [entries, culprit, reason] of cases) {
      const archive = writeArchive("clash.zip", entries);
      const error = await rejection(extractZip(archive, join(dir, "out"), quiet));
      expect(error).toMatchObject({ kind: "unsafe", entry: culprit });
      expect(error.message).toMatch(reason);
      expect(existsSync(join(dir, "out"))).toBe(false);
    }
  });
});

describe("idempotence and resuming", () => {
  const OLD = new Date("2001-02-03T04:05:06Z");

  function snapshot(dest: string, names: readonly string[]): Map<string, { ino: number; mtimeMs: number }> {
    return new Map(names.map((n) => [n, { ino: statSync(join(dest, n)).ino, mtimeMs: statSync(join(dest, n)).mtimeMs }]));
  }

  const files = SAMPLE.filter((e) => !e.name.endsWith("/")).map((e) => e.name);

  it("skips a completed extraction without touching a file, and re-checks after the archive changes", async () => {
    const archive = writeArchive("a.zip", SAMPLE);
    const dest = join(dir, "out");
    await extractZip(archive, dest, quiet);
    for (const f of files) utimesSync(join(dest, f), OLD, OLD);
    const before = snapshot(dest, files);
    const marker = readFileSync(join(dest, EXTRACTION_MARKER), "utf8");

    const again = await extractZip(archive, dest, quiet);
    expect(again).toMatchObject({ skipped: true, written: 0, kept: 0, entries: SAMPLE.length });
    expect(snapshot(dest, files)).toEqual(before);
    expect(readFileSync(join(dest, EXTRACTION_MARKER), "utf8")).toBe(marker);

    // The same archive downloaded again (new mtime): checked, everything kept, marker renewed.
    utimesSync(archive, new Date(), new Date(Date.now() + 5000));
    const renewed = await extractZip(archive, dest, quiet);
    expect(renewed).toMatchObject({ skipped: false, written: 0, kept: files.length });
    expect(snapshot(dest, files)).toEqual(before);
    expect((await readExtractionMarker(dest))!.archiveMtimeMs).toBe(statSync(archive).mtimeMs);
  });

  it("does not take a marker for a different selection as complete", async () => {
    const archive = writeArchive("a.zip", SAMPLE);
    const dest = join(dir, "out");
    const some = await extractZip(archive, dest, { ...quiet, filter: (e) => e.name.startsWith("big/") });
    expect(some).toMatchObject({ entries: 2, written: 2 });
    const all = await extractZip(archive, dest, quiet);
    expect(all).toMatchObject({ skipped: false, written: files.length - 2, kept: 2 });
    expectSampleExtracted(dest);
  });

  it("resumes a partial extraction: missing and incomplete files are written, complete ones untouched", async () => {
    const archive = writeArchive("a.zip", SAMPLE);
    const dest = join(dir, "out");
    await extractZip(archive, dest, quiet);
    for (const f of files) utimesSync(join(dest, f), OLD, OLD);
    const removed = ["img_align_celeba/img_align_celeba/000002.jpg", "big/incompressible.bin", "ünïcödé/名前.txt"];
    for (const f of removed) rmSync(join(dest, f));
    truncateSync(join(dest, "big/compressible.bin"), 1000); // as a tool writing in place leaves a killed file
    rmSync(join(dest, "deep"), { recursive: true });
    rmSync(join(dest, EXTRACTION_MARKER));
    mkdirSync(join(dest, EXTRACTION_TEMP_DIR));
    writeFileSync(join(dest, EXTRACTION_TEMP_DIR, "1.tmp"), "left over by a killed run");
    const rewritten = [...removed, "big/compressible.bin", "deep/a/b/c/empty.txt", "deep/a/b/c/empty-stored.txt"];
    const untouched = files.filter((f) => !rewritten.includes(f));
    const before = snapshot(dest, untouched);

    const result = await extractZip(archive, dest, quiet);
    expect(result).toMatchObject({ skipped: false, written: rewritten.length, kept: untouched.length });
    expectSampleExtracted(dest);
    expect(snapshot(dest, untouched)).toEqual(before);
    for (const f of rewritten) expect(statSync(join(dest, f)).mtimeMs).toBeGreaterThan(OLD.getTime());
    expect(existsSync(join(dest, EXTRACTION_TEMP_DIR))).toBe(false);
    expect(existsSync(join(dest, EXTRACTION_MARKER))).toBe(true);
  });

  it("keeps a same-size damaged file when judging by size, and rewrites it when verifying CRC-32", async () => {
    const archive = writeArchive("a.zip", SAMPLE);
    const dest = join(dir, "out");
    await extractZip(archive, dest, quiet);
    const victim = join(dest, "img_align_celeba/img_align_celeba/000001.jpg");
    const damaged = Buffer.from(readFileSync(victim));
    damaged[100] ^= 0xff;
    writeFileSync(victim, damaged);
    rmSync(join(dest, EXTRACTION_MARKER));
    expect(await extractZip(archive, dest, quiet)).toMatchObject({ written: 0 });
    expect(readFileSync(victim).equals(damaged)).toBe(true);
    rmSync(join(dest, EXTRACTION_MARKER));
    expect(await extractZip(archive, dest, { ...quiet, verify: "crc" })).toMatchObject({ written: 1, kept: files.length - 1 });
    expectSampleExtracted(dest);
  });
});

describe("size limits (zip bombs)", () => {
  const MIB = 1 << 20;

  /**
   * Raw DEFLATE data inflating to `mib` MiB of zeros, about 1 kB per MiB: one MiB deflated with a full
   * flush (no reference back past it), repeated, then a final empty block; with its real size and CRC-32.
   */
  function deflatedZeros(mib: number): { deflated: Buffer; size: number; crc: number } {
    const zeros = Buffer.alloc(MIB);
    const block = deflateRawSync(zeros, { finishFlush: zlibConstants.Z_FULL_FLUSH });
    let crc = 0;
    for (let i = 0; i < mib; i++) crc = crc32(zeros, crc);
    return { deflated: Buffer.concat([...Array<Buffer>(mib).fill(block), deflateRawSync(Buffer.alloc(0))]), size: mib * MIB, crc };
  }

  /** An entry whose data is `zeros`, deflated by the test (`data` unused). */
  function zerosEntry(name: string, zeros: ReturnType<typeof deflatedZeros>, extra: Partial<ZipWriterEntry> = {}): ZipWriterEntry {
    return { name, data: Buffer.alloc(0), deflated: zeros.deflated, size: zeros.size, crc: zeros.crc, ...extra };
  }

  /** Refused before writing: the destination does not exist, and `dir` holds only the archives. */
  function expectNothingWritten(dest: string): void {
    expect(existsSync(dest)).toBe(false);
    expect(readdirSync(dir).every((f) => f.endsWith(".zip"))).toBe(true);
  }

  it("refuses an entry that inflates 1000:1 (300 kB → 300 MB), naming it and maxRatio, before writing anything", async () => {
    const archive = writeArchive("ratio.zip", [
      { name: "img_align_celeba/000001.jpg", data: noise(7000, 1) },
      zerosEntry("img_align_celeba/000002.jpg", deflatedZeros(300)),
    ]);
    expect(statSync(archive).size).toBeLessThan(400_000);
    const dest = join(dir, "out");
    const error = await rejection(extractZip(archive, dest, quiet));
    expect(error).toMatchObject({ kind: "limit", archive, entry: "img_align_celeba/000002.jpg" });
    expect(error.message).toContain(`${archive}, entry "img_align_celeba/000002.jpg": refusing to extract`);
    expect(error.message).toMatch(/inflate 10\d\d:1 \(315 MB from 3\d\d kB\), more than the 100:1 allowed for one entry \(maxRatio\)/);
    expect(error.message).toMatch(/zip bomb .*pass a higher maxRatio/);
    expectNothingWritten(dest);
  });

  it("refuses an archive of small entries that inflates 1000:1 overall; maxTotalRatio lets it through", async () => {
    const zeros = deflatedZeros(1); // each 1 MiB from 1 kB: below the 4 MiB from which an entry's own ratio counts
    const entries = Array.from({ length: 10 }, (_, i) => zerosEntry(`zeros/${i}.bin`, zeros));
    const archive = writeArchive("small-bombs.zip", entries);
    const dest = join(dir, "out");
    const error = await rejection(extractZip(archive, dest, quiet));
    expect(error).toMatchObject({ kind: "limit", archive, entry: "zeros/0.bin" });
    expect(error.message).toMatch(/the archive as a whole would inflate 10\d\d:1 \(10\.5 MB from 10\.\d kB\), more than the 20:1 allowed \(maxTotalRatio\)/);
    expectNothingWritten(dest);
    const result = await extractZip(archive, dest, { ...quiet, maxTotalRatio: 2000 });
    expect(result).toMatchObject({ written: 10, bytes: 10 * MIB });
    expect(readFileSync(join(dest, "zeros/9.bin")).equals(Buffer.alloc(MIB))).toBe(true);
  });

  it("refuses 20 central entries sharing one local header (21 kB → 420 MB), whatever the ratio limits", async () => {
    const zeros = deflatedZeros(20);
    const entries = Array.from({ length: 20 }, (_, i) =>
      zerosEntry(`img/${String(i).padStart(3, "0")}.jpg`, zeros, i === 0 ? {} : { localHeaderOffset: 0 }),
    );
    const archive = writeArchive("shared.zip", entries);
    expect(statSync(archive).size).toBeLessThan(25_000);
    expect((await listZipEntries(archive)).reduce((sum, e) => sum + e.size, 0)).toBe(20 * 20 * MIB);
    const dest = join(dir, "out");
    const error = await rejection(extractZip(archive, dest, { ...quiet, maxRatio: Infinity, maxTotalRatio: Infinity }));
    expect(error).toMatchObject({ kind: "unsafe", archive, entry: "img/001.jpg" });
    expect(error.message).toMatch(/shares its local header \(offset 0\) with entry "img\/000\.jpg"/);
    expect(error.message).toMatch(/zip bombs .*download it again/);
    expectNothingWritten(dest);
  });

  it("refuses an entry whose local header lies inside another entry's data, even when not selected", async () => {
    const first = { name: "first.bin", data: noise(5000, 1), method: "store" as const };
    const archive = writeArchive("overlap.zip", [
      first,
      { name: "ok.txt", data: Buffer.from("ok") },
      { name: "second.bin", data: noise(3000, 2), method: "store", localHeaderOffset: 30 + first.name.length + 1000 },
    ]);
    const dest = join(dir, "out");
    const error = await rejection(extractZip(archive, dest, { ...quiet, filter: (e) => e.name === "ok.txt" }));
    expect(error).toMatchObject({ kind: "unsafe", archive, entry: "second.bin" });
    expect(error.message).toMatch(/its local header \(offset 1039\) lies inside entry "first\.bin"'s header and data \(offset 0 to at least 5030\)/);
    expectNothingWritten(dest);

    // A local header longer than the central directory implies (its extra field, 20 bytes, hides the next entry's
    // header): unseen in the central directory, caught when the entry is read.
    const bytes = buildZip([first, { name: "second.bin", data: noise(3000, 2), method: "store" }]);
    bytes.writeUInt16LE(20, 28);
    const slight = join(dir, "slight.zip");
    writeFileSync(slight, bytes);
    const late = await rejection(extractZip(slight, dest, quiet));
    expect(late).toMatchObject({ kind: "corrupt", archive: slight, entry: "first.bin" });
    expect(late.message).toMatch(/its data \(5000 bytes at offset 59\) runs into the next entry's local header \(offset 5039\)/);
    expect(readTree(dest).size).toBe(0);
  });

  it("refuses a selection above maxTotalBytes (default 4 GB), naming the largest entry", async () => {
    const sample = writeArchive("a.zip", SAMPLE);
    const dest = join(dir, "out");
    const small = await rejection(extractZip(sample, dest, { ...quiet, maxTotalBytes: 1_000_000 }));
    expect(small).toMatchObject({ kind: "limit", archive: sample, entry: "big/compressible.bin" });
    expect(small.message).toMatch(/its 10 selected entries would unzip to 3\.92 MB, more than the 1\.00 MB allowed \(maxTotalBytes; Kaggle's CelebA unzips to about 1\.4 GB\), this entry being the largest \(2\.40 MB\)/);
    expect(small.message).toMatch(/pass a higher maxTotalBytes/);
    expectNothingWritten(dest);

    // Two entries recording 2.5 GB each (ratio limits lifted, so that the total is what refuses them).
    const huge = writeArchive("huge.zip", [
      { name: "a.bin", data: noise(1000, 1), size: 2_500_000_000 },
      { name: "b.bin", data: noise(1000, 2), size: 2_600_000_000 },
    ]);
    const error = await rejection(extractZip(huge, dest, { ...quiet, maxRatio: Infinity, maxTotalRatio: Infinity }));
    expect(DEFAULT_ZIP_LIMITS.maxTotalBytes).toBe(4e9);
    expect(error).toMatchObject({ kind: "limit", entry: "b.bin" });
    expect(error.message).toMatch(/unzip to 5\.10 GB, more than the 4\.00 GB allowed/);
    expectNothingWritten(dest);
  });

  it("refuses to extract more than the free disk space, counting what an interrupted run already wrote", async () => {
    const archive = writeArchive("a.zip", SAMPLE);
    const dest = join(dir, "out");
    const asked: string[] = [];
    const free = (bytes: number) => (destDir: string): FreeSpace => {
      asked.push(destDir);
      return { bytes, blockSize: 4096 };
    };
    const error = await rejection(extractZip(archive, dest, { ...quiet, freeSpace: free(1_000_000) }));
    expect(asked).toEqual([dest]);
    expect(error).toMatchObject({ kind: "limit", archive, entry: "big/compressible.bin" });
    expect(error.message).toMatch(/the 9 files still to extract need about 3\.9\d MB on disk at /);
    expect(error.message).toContain(`${resolve(dest)}, but only 1.00 MB are free there; the disk would fill with this entry. Free at least 2.9`);
    expectNothingWritten(dest);

    // Resuming: all but one file are there; 1 MB is too little for the missing 1.5 MB, 2 MB is enough.
    await extractZip(archive, dest, quiet);
    const files = SAMPLE.filter((e) => !e.name.endsWith("/")).map((e) => e.name);
    rmSync(join(dest, "big/incompressible.bin"));
    rmSync(join(dest, EXTRACTION_MARKER));
    const listing = (): string[] => [...readTree(dest)].map(([name, data]) => `${name} ${data.length} ${statSync(join(dest, name)).mtimeMs}`);
    const before = listing();
    const resumed = await rejection(extractZip(archive, dest, { ...quiet, freeSpace: free(1_000_000) }));
    expect(resumed).toMatchObject({ kind: "limit", entry: "big/incompressible.bin" });
    expect(resumed.message).toMatch(/the file still to extract needs about 1\.50 MB on disk at .* \(2\.42 MB are already extracted\), but only 1\.00 MB are free/);
    expect(listing()).toEqual(before); // nothing written, not even the temporary folder
    const result = await extractZip(archive, dest, { ...quiet, freeSpace: free(2_000_000) });
    expect(result).toMatchObject({ written: 1, kept: files.length - 1 });
    expectSampleExtracted(dest);
  });

  it("measures free space at the destination's nearest existing folder", () => {
    const space = diskFreeSpace(join(dir, "not", "yet", "there"));
    expect(space).toBeDefined();
    expect(space!.bytes).toBeGreaterThan(0);
    expect(space!.blockSize).toBeGreaterThan(0);
  });

  it("stops an entry that inflates past the size the central directory records (300 MB recorded as 1 MB)", async () => {
    const archive = writeArchive("liar.zip", [
      { name: "first.txt", data: Buffer.from("fine") },
      zerosEntry("liar.jpg", deflatedZeros(300), { size: 1_000_000 }),
      { name: "third.txt", data: Buffer.from("never reached") },
    ]);
    for (const bufferLimit of [undefined, 0]) {
      const dest = join(dir, `out-${bufferLimit}`);
      const error = await rejection(extractZip(archive, dest, { ...quiet, bufferLimit }));
      expect(error).toMatchObject({ kind: "corrupt", archive, entry: "liar.jpg" });
      expect(error.message).toMatch(/it inflates to more than the 1000000 bytes recorded/);
      expect([...readTree(dest).keys()]).toEqual(["first.txt"]);
    }
  });

  it("extracts and resumes a CelebA-shaped archive (JPEG-like noise, a 5 MB attribute CSV) under the default limits", async () => {
    let seed = 1;
    const sign = (): string => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % 5 === 0 ? "1" : "-1";
    };
    const rows = ["image_id," + Array.from({ length: 40 }, (_, i) => `attribute_${i}`).join(",")];
    for (let i = 1; i <= 45_000; i++) rows.push(`${String(i).padStart(6, "0")}.jpg,${Array.from({ length: 40 }, sign).join(",")}`);
    const entries: ZipWriterEntry[] = [
      { name: "list_attr_celeba.csv", data: Buffer.from(rows.join("\n") + "\n") },
      ...Array.from({ length: 200 }, (_, i) => ({ name: `img_align_celeba/img_align_celeba/${String(i + 1).padStart(6, "0")}.jpg`, data: noise(7000, i + 1) })),
    ];
    const archive = writeArchive("celeba-dataset.zip", entries);
    const csv = (await listZipEntries(archive))[0];
    expect(csv.size).toBeGreaterThan(DEFAULT_ZIP_LIMITS.ratioMinSize); // so its ratio is checked, and passes
    expect(csv.size / csv.compressedSize).toBeGreaterThan(5);
    const dest = join(dir, "out");
    expect(await extractZip(archive, dest, quiet)).toMatchObject({ written: 201 });
    rmSync(join(dest, EXTRACTION_MARKER));
    for (const e of entries.slice(150)) rmSync(join(dest, e.name));
    const result = await extractZip(archive, dest, { ...quiet, freeSpace: () => ({ bytes: 51 * 8192, blockSize: 4096 }) });
    expect(result).toMatchObject({ written: 51, kept: 150 });
    expectSampleExtracted(dest, entries);
  });
});
