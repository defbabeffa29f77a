// safetensors: files written by the Python script (numpy/torch), round trips, half precision, and clear errors.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeSafetensors, parseSafetensors, readSafetensors, readSafetensorsFile, toFloat32, writeSafetensors, type SafetensorsTensor } from "../lib/formats/safetensors";

const FIXTURES = join("test", "fixtures", "resnet18");
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "safetensors-test-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A file made of an 8-byte length, the given header text and data bytes. */
function rawFile(header: string, data: Uint8Array = new Uint8Array(0), declaredLength?: number): Uint8Array {
  const h = Buffer.from(header, "utf8");
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredLength ?? h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe("reading files written in Python", () => {
  it("reads the narrow resnet18: F32 weights in OIHW, I64 counters, metadata", async () => {
    const { tensors, metadata } = await readSafetensorsFile(join(FIXTURES, "narrow.safetensors"));
    expect(metadata).toEqual({ format: "pt", width: "8" });
    const conv1 = tensors.get("conv1.weight");
    expect(conv1?.dtype).toBe("F32");
    expect(conv1?.shape).toEqual([8, 3, 7, 7]);
    expect(conv1?.data.length).toBe(8 * 3 * 49);
    const count = tensors.get("bn1.num_batches_tracked");
    expect(count?.dtype).toBe("I64");
    expect(count?.shape).toEqual([]);
    expect(Array.from(count?.data as BigInt64Array)).toEqual([3n]);
    expect(tensors.size).toBe(120);
    expect([...tensors.keys()][0]).toBe("conv1.weight");
  });

  it("widens F16 and BF16 exactly to the float32 values torch computes", async () => {
    const t = await readSafetensors(join(FIXTURES, "half.safetensors"));
    const f16 = t.get("f16") as SafetensorsTensor;
    expect(f16.dtype).toBe("F16");
    expect(f16.shape).toEqual([4, 8]);
    expect(Array.from(toFloat32(f16))).toEqual(Array.from(toFloat32(t.get("f16_as_f32") as SafetensorsTensor)));
    expect(Array.from(toFloat32(f16)).slice(0, 10)).toEqual([0, -0, 1, -2, 0.5, 65504, 5.960464477539063e-8, Math.fround(1.0013580322265625e-5), Infinity, -Infinity]);
    const bf16 = t.get("bf16") as SafetensorsTensor;
    expect(bf16.dtype).toBe("BF16");
    expect(Array.from(toFloat32(bf16))).toEqual(Array.from(toFloat32(t.get("bf16_as_f32") as SafetensorsTensor)));
  });
});

describe("writing", () => {
  it("round-trips F32, I64 and U8 tensors, scalar and empty shapes, and metadata, with an 8-byte aligned header", async () => {
    const path = join(dir, "a.safetensors");
    const tensors = new Map<string, SafetensorsTensor>([
      ["w", { dtype: "F32", shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-30, -Infinity]) }],
      ["count", { dtype: "I64", shape: [], data: BigInt64Array.from([123456789012n]) }],
      ["bytes", { dtype: "U8", shape: [3], data: Uint8Array.from([0, 7, 255]) }],
      ["empty", { dtype: "F32", shape: [0, 4], data: new Float32Array(0) }],
    ]);
    await writeSafetensors(path, tensors, { format: "pt", note: "ü" });
    const bytes = readFileSync(path);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect(headerLength % 8).toBe(0);
    expect(bytes.length).toBe(8 + headerLength + 24 + 8 + 3);
    const back = await readSafetensorsFile(path);
    expect(back.metadata).toEqual({ format: "pt", note: "ü" });
    expect([...back.tensors.keys()]).toEqual(["w", "count", "bytes", "empty"]);
    for (const [name, t] of tensors) {
      const b = back.tensors.get(name) as SafetensorsTensor;
      expect(b.dtype).toBe(t.dtype);
      expect(b.shape).toEqual(t.shape);
      expect(Array.from(b.data as ArrayLike<unknown>)).toEqual(Array.from(t.data as ArrayLike<unknown>));
    }
    expect(readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });

  it("replaces an existing file atomically and refuses data that does not fit the shape", async () => {
    const path = join(dir, "b.safetensors");
    writeFileSync(path, "old");
    await expect(writeSafetensors(path, new Map([["x", { dtype: "F32", shape: [3], data: new Float32Array(2) }]]))).rejects.toThrow(
      /tensor "x" is F32 \[3\] \(12 bytes\) but its data has 8 bytes/,
    );
    expect(readFileSync(path, "utf8")).toBe("old");
    await writeSafetensors(path, new Map([["x", { dtype: "F32", shape: [2], data: Float32Array.from([4, 5]) }]]));
    expect(Array.from((await readSafetensors(path)).get("x")?.data as Float32Array)).toEqual([4, 5]);
  });
});

describe("errors", () => {
  const good = encodeSafetensors(new Map([["x", { dtype: "F32", shape: [4], data: Float32Array.from([1, 2, 3, 4]) }]]));

  it("names a truncated file", () => {
    expect(() => parseSafetensors(good.subarray(0, 5), "w.safetensors")).toThrow(/w\.safetensors: is truncated: 5 bytes, shorter than the 8-byte header length/);
    expect(() => parseSafetensors(good.subarray(0, 20), "w.safetensors")).toThrow(/w\.safetensors: is truncated: its header needs \d+ bytes but the file has 20/);
    expect(() => parseSafetensors(good.subarray(0, good.length - 1), "w.safetensors")).toThrow(
      /w\.safetensors: is truncated: tensor "x" ends at byte 16 of the data but the file holds only 15 data bytes/,
    );
  });

  it("names a bad header", () => {
    expect(() => parseSafetensors(rawFile("{not json"), "h.st")).toThrow(/h\.st: has a header that is not valid JSON/);
    expect(() => parseSafetensors(rawFile("[1, 2]"), "h.st")).toThrow(/h\.st: has a header that is not a JSON object/);
    expect(() => parseSafetensors(rawFile("{}", new Uint8Array(0), 2 ** 40), "h.st")).toThrow(/h\.st: says its header is \d+ bytes long/);
    expect(() => parseSafetensors(rawFile('{"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}', new Uint8Array(8)), "h.st")).toThrow(
      /tensor "x" in the header has data_offsets \[0, 8\] \(8 bytes\) but F32 \[3\] needs 12 bytes/,
    );
    expect(() => parseSafetensors(rawFile('{"x": {"dtype": "F32", "data_offsets": [0, 4]}}', new Uint8Array(4)), "h.st")).toThrow(/tensor "x" in the header has no valid shape/);
  });

  it("names an unknown dtype", () => {
    expect(() => parseSafetensors(rawFile('{"x": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}', new Uint8Array(1)), "q.st")).toThrow(
      /q\.st: tensor "x" has dtype "F8_E4M3", which is not supported \(known: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL\)/,
    );
  });

  it("names a missing file", async () => {
    await expect(readSafetensors(join(dir, "nope.safetensors"))).rejects.toThrow(/nope\.safetensors: does not exist/);
  });
});
