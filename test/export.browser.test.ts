// The exported post in a real browser: a run made by the real notebooks (01 on tiny synthetic faces, plus a small
// notebook of ratings with a figure and a table), exported; the Markdown rendered by marked (a standard renderer,
// as a blog would) and the self-contained HTML, both served from 127.0.0.1 with images at their site paths, opened
// in headless Chromium. Every image must load, the 4×4 grid and the ratings histogram must show real pixels, and
// both pages are screenshotted into test/output/.

import { spawnSync } from "node:child_process";
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize } from "node:path";
import { marked } from "marked";
import { chromium, type Browser, type Page } from "playwright-core";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportRun, type ExportResult } from "../lib/publish/export-post";
import { REDACTED } from "../lib/publish/export-scrub";
import { projectRoot } from "../lib/util/project";
import { runDir, runFiles } from "../lib/run/files";
import { executeNotebook } from "./notebook-helpers";

const run = `test-export-${process.pid}`;
const outputDir = join(projectRoot(), "test", "output");
const FAKE_TOKEN = "tok3nV4lue99";

/** The ratings notebook: a histogram of ratings 1–7 (showFigure), a describe() table, hidden cells, private text. */
function ratingsNotebook(): string {
  const cell = (source: string, tags: string[] = []) => ({ id: `c${Math.random().toString(36).slice(2, 8)}`, cell_type: "code", source, metadata: { tags }, outputs: [], execution_count: null });
  const md = (source: string) => ({ id: `m${Math.random().toString(36).slice(2, 8)}`, cell_type: "markdown", source, metadata: {} });
  return JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: "celeba-sae", display_name: "TypeScript (celeba-sae)", language: "typescript" } },
    cells: [
      md("# 06 · Blind test\n\nEach grid was rated from 1 (no common feature) to 7 (one clear feature)."),
      cell([
        `const sparse = [7, 6, 6, 5, 5, 5, 4, 4, 3, 6, 7, 5, 4, 6, 5, 2];`,
        `const dense = [3, 2, 4, 3, 1, 2, 5, 3, 4, 2, 3, 4, 1, 3, 2, 6];`,
      ].join("\n")),
      cell([
        `import { showFigure } from "./lib/display/figures";`,
        `await showFigure({ data: [`,
        `  { type: "histogram", x: sparse, name: "sparse", xbins: { start: 0.5, end: 7.5, size: 1 }, opacity: 0.75 },`,
        `  { type: "histogram", x: dense, name: "dense", xbins: { start: 0.5, end: 7.5, size: 1 }, opacity: 0.75 },`,
        `], layout: { title: "Ratings", barmode: "overlay", xaxis: { title: "rating", dtick: 1 }, yaxis: { title: "grids" } } });`,
      ].join("\n")),
      cell([
        `import { describeColumns, showTable } from "./lib/display/html-table";`,
        `showTable(describeColumns({ sparse: sparse, dense: dense }), { caption: "Ratings, as pandas' describe()" });`,
      ].join("\n")),
      cell(`//| echo: false\nconsole.log("only the output of this cell shows");`),
      cell(`console.log("this cell is hidden entirely");`, ["hide-cell"]),
      cell(`console.log("rate at http://127.0.0.1:8765/rate?token=${FAKE_TOKEN} from " + process.cwd());`),
    ],
  });
}

function serve(root: string, pages: Readonly<Record<string, string>>): Promise<Server> {
  const types: Record<string, string> = { ".png": "image/png", ".jpg": "image/jpeg", ".js": "text/javascript", ".html": "text/html" };
  const server = createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const page = pages[url];
    if (page !== undefined) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page);
      return;
    }
    const file = normalize(join(root, url));
    if (!file.startsWith(root) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** Pixels of an element as the page shows it. */
async function elementPixels(page: Page, selector: string): Promise<{ data: Buffer; width: number; height: number }> {
  const shot = await page.locator(selector).first().screenshot();
  const { data, info } = await sharp(shot).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

/** Standard deviation of the luminance in a rectangle. */
function regionSpread(p: { data: Buffer; width: number }, x0: number, y0: number, w: number, h: number): number {
  const values: number[] = [];
  for (let y = y0; y < y0 + h; y++) {
    for (let x = x0; x < x0 + w; x++) {
      const i = (y * p.width + x) * 3;
      values.push(0.299 * p.data[i] + 0.587 * p.data[i + 1] + 0.114 * p.data[i + 2]);
    }
  }
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
}

/** How many pixels are (roughly) a given colour, over a white background when blended with opacity. */
function colouredFraction(p: { data: Buffer; width: number; height: number }, rgb: readonly [number, number, number]): number {
  let hits = 0;
  const n = p.width * p.height;
  for (let i = 0; i < n; i++) {
    const d = Math.abs(p.data[3 * i] - rgb[0]) + Math.abs(p.data[3 * i + 1] - rgb[1]) + Math.abs(p.data[3 * i + 2] - rgb[2]);
    if (d < 60) hits++;
  }
  return hits / n;
}

/** The 4×4 grid (the image right under "Celebrities!") has 16 non-blank cells. */
async function expectGrid(page: Page): Promise<void> {
  const p = await elementPixels(page, 'img[alt="Celebrities!"]');
  // The title band sits above a square grid: the grid is the bottom width×width square.
  const side = p.width;
  expect(p.height).toBeGreaterThan(side);
  const top = p.height - side;
  const cell = side / 4;
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      const spread = regionSpread(p, Math.round(c * cell + cell * 0.2), Math.round(top + r * cell + cell * 0.2), Math.round(cell * 0.6), Math.round(cell * 0.6));
      expect(spread, `grid cell ${r},${c}`).toBeGreaterThan(8);
    }
  }
}

const BLUE: readonly [number, number, number] = [31, 119, 180];

async function expectHistogram(page: Page, interactive: boolean): Promise<void> {
  if (interactive) await page.waitForSelector(".plotly-figure .main-svg", { timeout: 20_000 });
  else expect(await page.locator(".plotly-figure img").count()).toBe(1);
  const p = await elementPixels(page, ".plotly-figure");
  expect(p.width).toBeGreaterThan(300);
  // The "sparse" trace's bars (plotly's first colour at 75 % opacity over white: about #5799c7) fill part of the plot.
  const blended: [number, number, number] = [0, 1, 2].map((k) => Math.round(0.75 * BLUE[k] + 0.25 * 255)) as [number, number, number];
  expect(colouredFraction(p, blended) + colouredFraction(p, BLUE)).toBeGreaterThan(0.01);
}

async function expectImagesLoaded(page: Page): Promise<number> {
  // (A string: the page's DOM types are not in this project's TypeScript lib.)
  const images = (await page.evaluate(
    "Array.from(document.images).map((i) => ({ src: i.src.slice(0, 100), ok: i.complete && i.naturalWidth > 0 }))",
  )) as { src: string; ok: boolean }[];
  expect(images.filter((i) => !i.ok)).toEqual([]);
  return images.length;
}

describe("the exported post in headless Chromium", () => {
  let result: ExportResult;
  let server: Server;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    const made = spawnSync(process.execPath, [join(projectRoot(), "node_modules", "tsx", "dist", "cli.mjs"), "scripts/run-notebooks.ts", "--run", run, "--only", "01",
      "--set", "dataset=synthetic", "--set", "synthetic.count=40", "--set", "synthetic.identities=5", "--set", "imageSize=64"], { cwd: projectRoot(), encoding: "utf8", timeout: 240_000 });
    expect(made.status, `${made.stdout}${made.stderr}`).toBe(0);
    const source = join(runDir(run), "ratings-source.ipynb");
    writeFileSync(source, ratingsNotebook());
    const executed = executeNotebook(source, join(runDir(run), "notebooks", "02-ratings.ipynb"), { CELEBA_SAE_RUN: run });
    expect(executed.status, executed.output).toBe(0);
    result = await exportRun(run, { date: "2026-11-27" });

    const markdown = readFileSync(result.markdown, "utf8");
    const body = markdown.replace(/^---\n[\s\S]*?\n---\n/, "");
    const rendered = marked.parse(body, { async: false, gfm: true });
    const postPage = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${result.meta.title}</title></head><body>${rendered}</body></html>`;
    const postDir = runFiles(run).post;
    server = await serve(postDir, { [result.meta.permalink]: postPage, "/export.html": readFileSync(result.html, "utf8") });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  }, 420_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    if (!process.env.KEEP_TEST_OUTPUT) rmSync(runDir(run), { recursive: true, force: true });
  });

  it("the post reads as written: front matter, sections, hidden cells gone, nothing private", () => {
    const markdown = readFileSync(result.markdown, "utf8");
    expect(markdown).toMatch(/^---\ntitle: 'Sparse Autoencoder'\ndate: 2026-11-27\npermalink: \/posts\/2026\/11\/sparse-autoencoder\ntags:\n {2}- projects\n/);
    expect(markdown).toContain("## 01 · Download and load the dataset");
    expect(markdown).toContain("## 06 · Blind test");
    expect(markdown).toContain("    only the output of this cell shows");
    expect(markdown).not.toMatch(/echo: false|this cell is hidden entirely/);
    expect(markdown).toContain(`rate?token=${REDACTED} from .`);
    for (const text of [markdown, readFileSync(result.html, "utf8")]) {
      expect(text).not.toContain(FAKE_TOKEN);
      expect(text).not.toContain(projectRoot());
    }
    expect(result.images.length).toBeGreaterThanOrEqual(3);
    for (const image of result.images) expect(image).toMatch(/post\/images\/posts\/2026\/11\/sparse-autoencoder\/output_\d+_\d+\.png$/);
  });

  for (const [name, path, javaScript] of [
    ["Markdown post (rendered by marked)", "post", true],
    ["self-contained HTML", "html", true],
    ["Markdown post without JavaScript", "post", false],
  ] as const) {
    it(`${name}: every image loads, the 4×4 grid and the ratings histogram show`, async () => {
      const context = await browser.newContext({ viewport: { width: 1000, height: 900 }, javaScriptEnabled: javaScript });
      const page = await context.newPage();
      const failed: string[] = [];
      page.on("requestfailed", (r) => failed.push(r.url()));
      page.on("response", (r) => {
        if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
      });
      const url = path === "post" ? `${base}${result.meta.permalink}` : `${base}/export.html`;
      await page.goto(url, { waitUntil: "load" });
      expect(failed).toEqual([]);
      // Images: the grids (and, without JavaScript, the figure's static fallback).
      expect(await expectImagesLoaded(page)).toBeGreaterThanOrEqual(javaScript ? 2 : 3);
      await expectGrid(page);
      await expectHistogram(page, javaScript);
      // The describe() table arrived as a table.
      expect(await page.locator("table caption", { hasText: "describe()" }).count()).toBe(1);
      mkdirSync(outputDir, { recursive: true });
      const shot = join(outputDir, `export-${path}${javaScript ? "" : "-nojs"}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      expect(existsSync(shot)).toBe(true);
      await context.close();
    });
  }
});
