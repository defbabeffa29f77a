import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { gridGeometry, makeGrid, makeGridRgb, showGrid, toByte, wrapText, type NhwcImages } from "../lib/display/image-grid";
import { setDisplayWriter, type DisplayDataContent } from "../lib/display/notebook-display";

/** n images of h × w where image k is filled with a distinct colour (k+1)·10 / 255 in R, and a gradient in G. */
function batch(n: number, h: number, w: number): NhwcImages {
  const data = new Float32Array(n * h * w * 3);
  for (let k = 0; k < n; k++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const p = ((k * h + y) * w + x) * 3;
        data[p] = ((k + 1) * 10) / 255;
        data[p + 1] = (y * w + x) / 255;
        data[p + 2] = 1;
      }
    }
  }
  return { data, shape: [n, h, w, 3] };
}

async function decodePng(png: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

describe("gridGeometry (torchvision make_grid)", () => {
  it.each([
    // n, h, w, nrow, padding, expected [height, width]
    [16, 64, 64, 4, 2, 4 * 66 + 2, 4 * 66 + 2], // the post's 4×4 grid
    [16, 64, 64, 8, 2, 2 * 66 + 2, 8 * 66 + 2], // torchvision's default nrow
    [5, 10, 20, 4, 2, 2 * 12 + 2, 4 * 22 + 2], // last row partly empty
    [3, 10, 20, 8, 2, 12 + 2, 3 * 22 + 2], // fewer images than nrow: xmaps = n
    [7, 5, 5, 3, 0, 3 * 5, 3 * 5], // no padding
    [1, 8, 6, 4, 5, 8 + 10, 6 + 10],
  ])("n=%i %ix%i nrow=%i padding=%i → %i×%i", (n, h, w, nrow, padding, height, width) => {
    const g = gridGeometry(n, h, w, nrow, padding);
    expect([g.height, g.width]).toEqual([height, width]);
  });

  it("places image k at row k / xmaps, column k % xmaps", () => {
    const g = gridGeometry(10, 7, 9, 4, 3);
    expect(g.xmaps).toBe(4);
    expect(g.ymaps).toBe(3);
    expect(g.offset(0)).toEqual({ y: 3, x: 3 });
    expect(g.offset(5)).toEqual({ y: 1 * 10 + 3, x: 1 * 12 + 3 });
    expect(g.offset(9)).toEqual({ y: 2 * 10 + 3, x: 1 * 12 + 3 });
  });

  it("rejects nonsense with a message naming the value", () => {
    expect(() => gridGeometry(0, 4, 4)).toThrow(/number of images/);
    expect(() => gridGeometry(4, 4, 4, 0)).toThrow(/nrow/);
    expect(() => gridGeometry(4, 4, 4, 2, -1)).toThrow(/padding/);
  });
});

describe("makeGrid", () => {
  it("converts floats like torchvision's save_image", () => {
    expect([toByte(0), toByte(1), toByte(0.5), toByte(-3), toByte(7), toByte(Number.NaN)]).toEqual([0, 255, 128, 0, 255, 0]);
    expect(toByte(2 / 255)).toBe(2);
  });

  it("puts every image's pixels at torchvision's offsets and padValue everywhere else", async () => {
    const n = 7;
    const h = 5;
    const w = 6;
    const padding = 3;
    const padValue = 0.2;
    const png = await makeGrid(batch(n, h, w), { nrow: 3, padding, padValue });
    const img = await decodePng(png);
    const g = gridGeometry(n, h, w, 3, padding);
    expect([img.height, img.width]).toEqual([g.height, g.width]);
    expect(img.channels).toBe(3);

    const covered = new Uint8Array(img.width * img.height);
    for (let k = 0; k < n; k++) {
      const { y: oy, x: ox } = g.offset(k);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const p = ((oy + y) * img.width + ox + x) * 3;
          covered[(oy + y) * img.width + ox + x] = 1;
          expect([img.data[p], img.data[p + 1], img.data[p + 2]]).toEqual([(k + 1) * 10, y * w + x, 255]);
        }
      }
    }
    let padPixels = 0;
    for (let p = 0; p < covered.length; p++) {
      if (covered[p]) continue;
      padPixels++;
      expect([img.data[p * 3], img.data[p * 3 + 1], img.data[p * 3 + 2]]).toEqual([51, 51, 51]);
    }
    expect(padPixels).toBe(g.width * g.height - n * h * w);
  });

  it("accepts uint8 RGB buffers, uint8 NHWC and greyscale float", async () => {
    const a = new Uint8Array(2 * 2 * 3).fill(100);
    const b = new Uint8Array(2 * 2 * 3).fill(200);
    const fromBuffers = await makeGridRgb({ rgb: [a, b], height: 2, width: 2 }, { padding: 1, padValue: [1, 0, 0] });
    expect([fromBuffers.height, fromBuffers.width]).toEqual([4, 7]);
    expect(Array.from(fromBuffers.rgb.subarray(0, 3))).toEqual([255, 0, 0]);
    expect(fromBuffers.rgb[(1 * 7 + 1) * 3]).toBe(100);
    expect(fromBuffers.rgb[(1 * 7 + 4) * 3]).toBe(200);

    const nhwc = new Uint8Array(2 * 2 * 2 * 3);
    nhwc.set(a, 0);
    nhwc.set(b, 12);
    const fromNhwc = await makeGridRgb({ data: nhwc, shape: [2, 2, 2, 3] }, { padding: 1, padValue: [1, 0, 0] });
    expect(fromNhwc.rgb).toEqual(fromBuffers.rgb);

    const grey = await makeGridRgb({ data: new Float32Array([0, 1, 0.5, 0.25]), shape: [1, 2, 2, 1] }, { padding: 0 });
    expect(Array.from(grey.rgb)).toEqual([0, 0, 0, 255, 255, 255, 128, 128, 128, 64, 64, 64]);
  });

  it("normalizes floats to the data's range when asked", async () => {
    const grid = await makeGridRgb({ data: new Float32Array([-2, 0, 2]), shape: [1, 1, 3, 1] }, { padding: 0, normalize: true });
    expect(Array.from(grid.rgb.filter((_, i) => i % 3 === 0))).toEqual([0, 128, 255]);
  });

  it("explains a shape that does not match the data", async () => {
    await expect(makeGrid({ data: new Float32Array(10), shape: [1, 2, 2, 3] })).rejects.toThrow(/10 values.*needs 12/);
  });

  describe("from files", () => {
    const dir = mkdtempSync(join(tmpdir(), "grid-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("decodes and resizes files, greyscale and alpha included", async () => {
      const red = join(dir, "red.png");
      const grey = join(dir, "grey.jpg");
      await sharp({ create: { width: 30, height: 20, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 1 } } }).png().toFile(red);
      await sharp({ create: { width: 10, height: 10, channels: 3, background: { r: 90, g: 90, b: 90 } } })
        .greyscale()
        .jpeg({ quality: 100 })
        .toFile(grey);
      const grid = await makeGridRgb({ paths: [red, grey], height: 8, width: 8 }, { padding: 2 });
      expect([grid.height, grid.width]).toEqual([12, 22]);
      const at = (y: number, x: number) => Array.from(grid.rgb.subarray((y * 22 + x) * 3, (y * 22 + x) * 3 + 3));
      expect(at(5, 5)).toEqual([255, 0, 0]);
      const g = at(5, 15);
      expect(Math.abs(g[0] - 90)).toBeLessThanOrEqual(2);
      expect(g[0]).toBe(g[1]);
      expect(g[1]).toBe(g[2]);
    });

    it("names a file it cannot read", async () => {
      await expect(makeGrid({ paths: [join(dir, "missing.jpg")], height: 4, width: 4 })).rejects.toThrow(/missing\.jpg/);
    });
  });

  it("adds a title band above the grid and keeps the grid pixels below it", async () => {
    const images = batch(16, 16, 16);
    const plain = await decodePng(await makeGrid(images, { nrow: 4 }));
    const titled = await decodePng(await makeGrid(images, { nrow: 4, title: "Celebrities!" }));
    expect(titled.width).toBe(plain.width);
    expect(titled.channels).toBe(3);
    const extra = titled.height - plain.height;
    expect(extra).toBeGreaterThan(10);
    expect(extra).toBeLessThan(40);
    // The grid is unchanged under the band.
    const c = titled.channels;
    for (const [y, x] of [[0, 0], [2, 2], [40, 41], [plain.height - 1, plain.width - 1]]) {
      for (let ch = 0; ch < 3; ch++) {
        expect(titled.data[((y + extra) * titled.width + x) * c + ch]).toBe(plain.data[(y * plain.width + x) * 3 + ch]);
      }
    }
    // The band is white with some dark (text) pixels.
    let dark = 0;
    for (let p = 0; p < extra * titled.width; p++) if (titled.data[p * c] < 128) dark++;
    expect(titled.data[0]).toBe(255);
    expect(dark).toBeGreaterThan(20);
  });

  it("wraps a long title instead of cutting it", async () => {
    expect(wrapText("How visually consistent do these images appear", 20)).toEqual([
      "How visually",
      "consistent do these",
      "images appear",
    ]);
    const narrow = await decodePng(await makeGrid(batch(2, 8, 8), { nrow: 2, title: "a rather long title for such a small grid" }));
    const short = await decodePng(await makeGrid(batch(2, 8, 8), { nrow: 2, title: "ok" }));
    expect(narrow.height).toBeGreaterThan(short.height);
  });

  it("scales the grid: integer factors replicate pixels", async () => {
    const small = await makeGridRgb(batch(4, 4, 4), { nrow: 2 });
    const big = await decodePng(await makeGrid(batch(4, 4, 4), { nrow: 2, scale: 3 }));
    expect([big.height, big.width]).toEqual([small.height * 3, small.width * 3]);
    for (const [y, x] of [[0, 0], [3, 4], [small.height - 1, small.width - 1]]) {
      for (let dy = 0; dy < 3; dy++) {
        const p = ((y * 3 + dy) * big.width + x * 3 + 2) * big.channels;
        expect(big.data[p]).toBe(small.rgb[(y * small.width + x) * 3]);
      }
    }
  });

  it("showGrid displays the PNG with the title as its text form", async () => {
    const sent: DisplayDataContent[] = [];
    setDisplayWriter((content) => sent.push(content));
    try {
      await expect(showGrid(batch(4, 4, 4), { nrow: 2, title: "Top 4" })).resolves.toBeUndefined();
    } finally {
      setDisplayWriter(undefined);
    }
    expect(sent).toHaveLength(1);
    expect(sent[0].data["text/plain"]).toBe("Top 4");
    const png = Buffer.from(sent[0].data["image/png"] as string, "base64");
    expect((await sharp(png).metadata()).width).toBe(gridGeometry(4, 4, 4, 2).width);
  });
});
