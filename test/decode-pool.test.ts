import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDecodePool, DecodeImageError, DecodeThreadError, decodePool, DECODE_THREADS_ENV, parseDecodeThreads } from "../lib/data/decode-pool";
import { BadImageError, createImageLoader, decodeImage, decodeUint8, type ImageBatch } from "../lib/data/image-loader";

let dir: string;
let files: string[];
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "decode-pool-test-"));
  await mkdir(dir, { recursive: true });
  files = [];
  for (let i = 0; i < 7; i++) {
    const [w, h] = [30 + 7 * i, 41 - 2 * i];
    const pixels = Buffer.from(Array.from({ length: w * h * 3 }, (_, k) => (k * 29 + i * 53 + ((k * k) % 89)) % 256));
    const file = join(dir, `face${i}.${i === 3 ? "png" : "jpg"}`); // one PNG: decoded by sharp inside the thread
    const image = sharp(pixels, { raw: { width: w, height: h, channels: 3 } });
    await (i === 3 ? image.png() : image.jpeg({ quality: 85 })).toFile(file);
    files.push(file);
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(batches: AsyncGenerator<ImageBatch>): Promise<ImageBatch[]> {
  const out: ImageBatch[] = [];
  for await (const b of batches) out.push(b);
  return out;
}

describe("decoding on worker threads", () => {
  it("gives the batches the main thread gives, in memory of their own or, when allowed, in reused shared memory", async () => {
    expect(decodePool()?.threads).toBeGreaterThan(0);
    const expected = await Promise.all(files.map(async (f) => Array.from((await decodeImage(f, { size: 24, mode: "post" })).data))); // this thread
    const check = (batch: ImageBatch): void => {
      for (const [k, index] of batch.indices.entries()) expect(Array.from(batch.data.subarray(k * 1728, (k + 1) * 1728))).toEqual(expected[index % files.length]);
    };
    const loader = createImageLoader(files, { size: 24, mode: "post", batchSize: 3 });
    const batches = await collect(loader.batches());
    await loader.close();
    expect(batches.map((b) => b.shape[0])).toEqual([3, 3, 1]);
    for (const batch of batches) {
      expect(batch.data.buffer).not.toBeInstanceOf(SharedArrayBuffer); // kept batches stay valid
      check(batch);
    }
    // reuseBatchMemory: each batch is checked before the next is asked for; their memory goes round.
    const buffers = new Set<ArrayBufferLike>();
    for (let pass = 0; pass < 3; pass++) {
      const reusing = createImageLoader([...files, ...files, ...files], { size: 24, mode: "post", batchSize: 3, reuseBatchMemory: true });
      for await (const batch of reusing.batches()) {
        expect(batch.data.buffer).toBeInstanceOf(SharedArrayBuffer);
        check(batch);
        buffers.add(batch.data.buffer);
      }
      await reusing.close();
    }
    expect(buffers.size).toBeLessThanOrEqual(6); // 21 batches over 3 loaders, in the few buffers in flight (prefetch 2)
  });

  it("builds the uint8 cache on the threads, with the main thread's values", async () => {
    const loader = createImageLoader(files, { size: 10, mode: "post", batchSize: 4, cache: join(dir, "cache.npy") });
    const batches = await collect(loader.batches());
    expect(loader.stats.cache).toBe("built");
    await loader.close();
    for (const batch of batches) {
      for (const [k, index] of batch.indices.entries()) {
        const row = await decodeUint8(files[index], { size: 10, mode: "post" });
        expect(Array.from(batch.data.subarray(k * 300, (k + 1) * 300), (v) => Math.round(v * 255))).toEqual(Array.from(row));
      }
    }
  });

  it("reports an image a thread cannot decode as a BadImageError naming the file", async () => {
    const bad = join(dir, "cut.jpg");
    const whole = await sharp(files[0]).jpeg().toBuffer();
    writeFileSync(bad, whole.subarray(0, whole.length - 30));
    const pool = decodePool()!;
    await expect(pool.decodeUint8(bad, 8)).rejects.toBeInstanceOf(DecodeImageError);
    const loader = createImageLoader([files[0], bad], { size: 8, mode: "post", batchSize: 2 });
    await expect(collect(loader.batches())).rejects.toThrow(BadImageError);
    await expect(collect(loader.batches())).rejects.toThrow(`Could not decode image ${bad}: Premature end of JPEG file`);
    await loader.close();
    expect(pool.working).toBe(true); // a bad image is not a failed thread
  });

  it("turns itself off, saying why, when a thread fails (the loader then decodes on the main thread)", async () => {
    const broken = createDecodePool(1, join(dir, "no-such-worker.ts"));
    await expect(broken.decodeUint8(files[0], 8)).rejects.toBeInstanceOf(DecodeThreadError);
    expect(broken.working).toBe(false);
    await expect(broken.decodeUint8(files[0], 8)).rejects.toThrow(/decode threads are off/);
  });

  it("lets a script exit by itself, and CELEBA_SAE_DECODE_THREADS=0 decodes on the main thread", () => {
    const script = join(mkdtempSync(join(tmpdir(), "decode-pool-")), "probe.mts");
    writeFileSync(script, [
      `const { createImageLoader } = await import(${JSON.stringify(resolve("lib/data/image-loader.ts"))});`,
      `const loader = createImageLoader(${JSON.stringify(files)}, { size: 16, mode: "post", batchSize: 7, reuseBatchMemory: true });`,
      "for await (const b of loader.batches()) console.log(b.data.buffer.constructor.name, b.data.reduce((a, v) => a + v, 0).toFixed(3));",
      "await loader.close();",
    ].join("\n"));
    const threaded = spawnSync("npx", ["tsx", script], { encoding: "utf8", timeout: 60_000 });
    const here = spawnSync("npx", ["tsx", script], { encoding: "utf8", timeout: 60_000, env: { ...process.env, [DECODE_THREADS_ENV]: "0" } });
    expect(threaded.status, threaded.stderr).toBe(0); // a timeout (null status) would mean the threads kept it alive
    expect(here.status, here.stderr).toBe(0);
    const [kind, sum] = threaded.stdout.trim().split(" ");
    expect(kind).toBe("SharedArrayBuffer");
    expect(here.stdout.trim()).toBe(`ArrayBuffer ${sum}`); // the same values, in memory of its own
  });

  it("reads CELEBA_SAE_DECODE_THREADS", () => {
    expect(parseDecodeThreads(undefined, 2)).toBe(2);
    expect(parseDecodeThreads("", 32)).toBe(8);
    expect(parseDecodeThreads("0", 2)).toBe(0);
    expect(parseDecodeThreads(" 3 ", 2)).toBe(3);
    expect(() => parseDecodeThreads("-1")).toThrow(/CELEBA_SAE_DECODE_THREADS must be a whole number from 0 \(decode on the main thread\) to 16, got "-1"/);
    expect(() => parseDecodeThreads("two")).toThrow(/got "two"/);
  });
});
