import { mkdtemp, readFile, readdir, rm, writeFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  NpyFormatError,
  createNpyWriter,
  encodeNpyHeader,
  openNpyReader,
  readNpy,
  readNpyHeader,
  readNpyRows,
  writeNpy,
} from "../lib/formats/npy";

// Files made by numpy 1.24 with test/fixtures/npy/make.py.
const fixtures = fileURLToPath(new URL("./fixtures/npy/", import.meta.url));
const fixture = (name: string): string => join(fixtures, name);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "npy-test-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("reading files numpy wrote", () => {
  it("reads a 2×3 float32 array with its exact values", async () => {
    const a = await readNpy(fixture("f4_2x3.npy"));
    expect(a.dtype).toBe("float32");
    expect(a.shape).toEqual([2, 3]);
    expect(Array.from(a.data)).toEqual([-1, -0.5, 0, 0.5, 1, 1.5]);
  });

  it("reads float32 values that are not exactly representable as decimals bit for bit", async () => {
    const a = await readNpy(fixture("f4_thirds_3x2.npy"));
    expect(a.shape).toEqual([3, 2]);
    expect(Array.from(a.data)).toEqual([0, 1, 2, 3, 4, 5].map((v) => Math.fround(Math.fround(v) / Math.fround(3))));
    const b = await readNpy(fixture("f4_1d.npy"));
    expect(b.shape).toEqual([5]);
    expect(Array.from(b.data)).toEqual([3.25, -7, 1e-20, 3.4e38, 0.1].map(Math.fround));
  });

  it("reads uint8 arrays", async () => {
    const a = await readNpy(fixture("u1_2x2x3.npy"));
    expect(a.dtype).toBe("uint8");
    expect(a.data).toBeInstanceOf(Uint8Array);
    expect(a.shape).toEqual([2, 2, 3]);
    expect(Array.from(a.data)).toEqual(Array.from({ length: 12 }, (_, i) => i * 20));
  });

  it("reads 0-d and empty arrays", async () => {
    const scalar = await readNpy(fixture("f4_0d.npy"));
    expect(scalar.shape).toEqual([]);
    expect(Array.from(scalar.data)).toEqual([7.25]);
    const empty = await readNpy(fixture("f4_empty_0x4.npy"));
    expect(empty.shape).toEqual([0, 4]);
    expect(empty.data.length).toBe(0);
  });

  it("reads format version 2.0", async () => {
    const header = await readNpyHeader(fixture("f4_v2_3x2.npy"));
    expect(header.version).toEqual([2, 0]);
    expect(header.dataOffset % 64).toBe(0);
    const a = await readNpy(fixture("f4_v2_3x2.npy"));
    expect(a.shape).toEqual([3, 2]);
    expect(Array.from(a.data)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("reads the header alone", async () => {
    const header = await readNpyHeader(fixture("f4_2x3.npy"));
    expect(header).toMatchObject({ dtype: "float32", descr: "<f4", shape: [2, 3], version: [1, 0], dataOffset: 128, size: 6, itemSize: 4 });
  });
});

describe("writing files numpy reads", () => {
  // np.save's bytes, exactly: same header text, same padding, same data.
  it.each([
    ["f4_2x3.npy", Float32Array.from([-1, -0.5, 0, 0.5, 1, 1.5]), [2, 3]],
    ["u1_2x2x3.npy", Uint8Array.from({ length: 12 }, (_, i) => i * 20), [2, 2, 3]],
    ["f4_1d.npy", Float32Array.from([3.25, -7, 1e-20, 3.4e38, 0.1]), [5]],
    ["f4_0d.npy", Float32Array.from([7.25]), []],
    ["f4_empty_0x4.npy", new Float32Array(0), [0, 4]],
  ] as const)("writes %s byte for byte as np.save does", async (name, data, shape) => {
    const out = join(dir, name);
    await writeNpy(out, data, shape);
    const ours = await readFile(out);
    const numpys = await readFile(fixture(name));
    expect(ours.toString("latin1", 0, 128)).toBe(numpys.toString("latin1", 0, 128));
    expect(Buffer.compare(ours, numpys)).toBe(0);
  });

  it("pads every header so the data starts at a multiple of 64 bytes", () => {
    for (const shape of [[], [1], [7, 512], [202599, 16384], [123456789012, 3, 4, 5, 6, 7]]) {
      const header = encodeNpyHeader("float32", shape);
      expect(header.length % 64).toBe(0);
      expect(header[header.length - 1]).toBe(0x0a);
      expect(header[6]).toBe(1);
    }
  });

  it("round-trips through writeNpy and readNpy", async () => {
    const data = Float32Array.from({ length: 7 * 5 }, (_, i) => Math.sin(i) * 1e3);
    const out = join(dir, "round.npy");
    await writeNpy(out, data, [7, 5]);
    const back = await readNpy(out);
    expect(back.shape).toEqual([7, 5]);
    expect(Array.from(back.data)).toEqual(Array.from(data));
  });

  it("refuses a shape that does not match the data, naming the path", async () => {
    await expect(writeNpy(join(dir, "mismatch.npy"), new Float32Array(6), [2, 4])).rejects.toThrow(/mismatch\.npy.*\[2, 4\] has 8 values but the array has 6/);
  });

  it("overwrites atomically and leaves no temporary files behind", async () => {
    const out = join(dir, "atomic.npy");
    await writeNpy(out, Float32Array.from([1, 2]), [2]);
    await writeNpy(out, Float32Array.from([3, 4, 5]), [3]);
    expect(Array.from((await readNpy(out)).data)).toEqual([3, 4, 5]);
    expect((await readdir(dir)).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });
});

describe("streaming writer", () => {
  it("appends rows and appears only on close()", async () => {
    const out = join(dir, "stream.npy");
    const writer = await createNpyWriter(out, "float32", [5, 3]);
    await writer.writeRows(Float32Array.from([0, 1, 2, 3, 4, 5]));
    expect(writer.rowsWritten).toBe(2);
    await expect(stat(out)).rejects.toThrow(/ENOENT/);
    await writer.writeRows(Float32Array.from([6, 7, 8]));
    await writer.writeRows(Float32Array.from([9, 10, 11, 12, 13, 14]));
    await writer.close();
    const back = await readNpy(out);
    expect(back.shape).toEqual([5, 3]);
    expect(Array.from(back.data)).toEqual(Array.from({ length: 15 }, (_, i) => i));
  });

  it("refuses partial rows, wrong dtypes, overflow, and a close() before every row is written", async () => {
    const out = join(dir, "stream-bad.npy");
    const writer = await createNpyWriter(out, "float32", [2, 3]);
    await expect(writer.writeRows(new Float32Array(4))).rejects.toThrow(/4 values is not a whole number of rows of 3/);
    await expect(writer.writeRows(new Uint8Array(3) as unknown as Float32Array)).rejects.toThrow(/writing uint8 values into a float32 file/);
    await writer.writeRows(new Float32Array(3));
    await expect(writer.writeRows(new Float32Array(6))).rejects.toThrow(/overflows/);
    await expect(writer.close()).rejects.toThrow(/stream-bad\.npy: closed after 1 of 2 rows/);
    await expect(stat(out)).rejects.toThrow(/ENOENT/);
    expect((await readdir(dir)).filter((f) => f.startsWith("stream-bad"))).toEqual([]);
  });

  it("abort() leaves an existing file untouched", async () => {
    const out = join(dir, "keep.npy");
    await writeNpy(out, Uint8Array.from([1, 2, 3]), [3]);
    const writer = await createNpyWriter(out, "uint8", [3]);
    await writer.writeRows(Uint8Array.from([9]));
    await writer.abort();
    expect(Array.from((await readNpy(out)).data)).toEqual([1, 2, 3]);
  });
});

describe("row slices", () => {
  it("reads rows start…start+count−1 of a file numpy wrote", async () => {
    const slice = await readNpyRows(fixture("u1_2x2x3.npy"), 1, 1);
    expect(slice.shape).toEqual([1, 2, 3]);
    expect(Array.from(slice.data)).toEqual([120, 140, 160, 180, 200, 220]);
  });

  it("reads arbitrary slices of a larger file through one reader, into a given array", async () => {
    const rows = 1000;
    const width = 17;
    const data = Float32Array.from({ length: rows * width }, (_, i) => i);
    const out = join(dir, "rows.npy");
    await writeNpy(out, data, [rows, width]);
    const reader = await openNpyReader(out, "float32");
    try {
      expect(reader.rows).toBe(rows);
      expect(reader.rowSize).toBe(width);
      const slice = await reader.readRows(537, 3);
      expect(Array.from(slice)).toEqual(Array.from(data.subarray(537 * width, 540 * width)));
      const target = new Float32Array(width);
      await reader.readRows(rows - 1, 1, target);
      expect(target[width - 1]).toBe(rows * width - 1);
      await expect(reader.readRows(999, 2)).rejects.toThrow(/rows 999…1000 requested, but the file has rows 0…999/);
    } finally {
      await reader.close();
    }
  });

  it("checks the dtype the caller expects", async () => {
    await expect(openNpyReader(fixture("u1_2x2x3.npy"), "float32")).rejects.toThrow(/u1_2x2x3\.npy: holds uint8 \('\|u1'\) but float32 was expected/);
  });
});

describe("bad files are named, with the fix", () => {
  it("wrong magic", async () => {
    const path = join(dir, "not.npy");
    await writeFile(path, "hello, this is text and not an array at all");
    await expect(readNpy(path)).rejects.toThrow(NpyFormatError);
    await expect(readNpy(path)).rejects.toThrow(/not\.npy: is not a \.npy file/);
  });

  it("unsupported dtype, byte order and Fortran order", async () => {
    await expect(readNpy(fixture("bad_i8.npy"))).rejects.toThrow(/bad_i8\.npy: has dtype '<i8'.*astype\(np\.float32\)/);
    await expect(readNpy(fixture("bad_be_f4.npy"))).rejects.toThrow(/bad_be_f4\.npy: holds big-endian float32/);
    await expect(readNpy(fixture("bad_fortran_2x3.npy"))).rejects.toThrow(/bad_fortran_2x3\.npy: is in Fortran.*ascontiguousarray/);
  });

  it("truncated data and truncated header", async () => {
    const whole = await readFile(fixture("f4_2x3.npy"));
    const cut = join(dir, "cut.npy");
    await writeFile(cut, whole.subarray(0, whole.length - 3));
    await expect(readNpy(cut)).rejects.toThrow(/cut\.npy: is truncated: shape \(2, 3\) of float32 needs 152 bytes but the file has 149/);
    await expect(readNpyRows(cut, 0, 1)).rejects.toThrow(/is truncated/);
    const cutHeader = join(dir, "cut-header.npy");
    await writeFile(cutHeader, whole.subarray(0, 40));
    await expect(readNpyHeader(cutHeader)).rejects.toThrow(/cut-header\.npy: is truncated: the header announces 118 bytes/);
  });

  it("a missing file", async () => {
    await expect(readNpy(join(dir, "nowhere.npy"))).rejects.toThrow(/nowhere\.npy: does not exist/);
  });
});
