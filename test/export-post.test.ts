// The export of executed notebooks as a blog post: scrubbing, hiding, Markdown and HTML rendering, exportRun.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { blindTestPaths, BlindSession, type FeatureKind } from "../lib/blind-test/session";
import { applyOverrides, defaultConfig, saveRunConfig } from "../lib/run/config";
import { cellVisibility, notebookBlocks, plainTerminalText, shiftHeadings, type Ipynb, type IpynbCell } from "../lib/publish/export-notebook";
import { COMPACT_PNG_BYTES, compactDataUris } from "../lib/publish/export-html";
import { frontMatter, postMeta, renderMarkdownPost, slugify } from "../lib/publish/export-markdown";
import { documentLeaks, executedNotebooks, exportRun } from "../lib/publish/export-post";
import { BLINDED, blindKeyIds, createScrubber, findLeaks, privateValues, REDACTED } from "../lib/publish/export-scrub";
import { projectRoot } from "../lib/util/project";
import { runDir, runFiles } from "../lib/run/files";
import { saveFindings } from "../lib/run/findings";
import { jupyterPython } from "./notebook-helpers";

const run = `test-export-unit-${process.pid}`;
afterAll(() => {
  if (!process.env.KEEP_TEST_OUTPUT) rmSync(runDir(run), { recursive: true, force: true });
});

// A 1×1 PNG (a real one: decoders accept it).
const PNG_1x1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
const KEY = "0123456789abcdef0123456789abcdef";
const ENV = { KAGGLE_USERNAME: "alice", KAGGLE_KEY: KEY, GITHUB_TOKEN: "ghp_abcdefghijklmnop", HOME: "/home/alice" };
const BASIC = Buffer.from(`alice:${KEY}`).toString("base64");

const code = (source: string, outputs: IpynbCell["outputs"] = [], tags: string[] = []): IpynbCell => ({ cell_type: "code", source, metadata: { tags }, outputs });
const md = (source: string, tags: string[] = []): IpynbCell => ({ cell_type: "markdown", source, metadata: { tags } });
const stdout = (text: string) => ({ output_type: "stream" as const, name: "stdout", text });

/** A blind-test session in `runFolder`, made by the blind-test code itself (so its key file is the real one). */
function blindSession(runFolder: string): Promise<BlindSession> {
  return BlindSession.open(runFolder, {
    features: [16, 17],
    seed: 4,
    rowsOf: (kind: FeatureKind, feature: number) => [feature, kind === "dense" ? 0 : 1],
    renderGrid: (rows) => sharp({ create: { width: 4, height: 4, channels: 3, background: { r: rows[1] * 200, g: 0, b: 0 } } }).png().toBuffer(),
  });
}

describe("scrubbing private values", () => {
  // A root outside the temp folders, wherever this checkout lives (CI clones may be under /tmp).
  const root = "/srv/work/celeba-sae";
  const values = privateValues({ root, env: ENV, home: "/home/alice" });
  const scrub = createScrubber(values);

  it("removes credentials, Basic-auth strings, URL tokens, URL passwords and local paths", () => {
    const text = [
      `key ${KEY} and Authorization: Basic ${BASIC}, bare ${BASIC}`,
      `rate at http://127.0.0.1:8123/rate?token=s3cr3tTok&page=2 or https://bob:hunter22@example.org/x`,
      `gh ghp_abcdefghijklmnop; {"key": "abcdefgh"}`,
      `${root}/runs/demo/face_vectors.npy, cwd ${root}, /home/alice/.kaggle/kaggle.json, /tmp/vitest-1/a.txt`,
      `https://example.org/home/alice stays; ${root}2/x stays`,
    ].join("\n");
    expect(scrub(text)).toBe(
      [
        `key ${REDACTED} and Authorization: Basic ${REDACTED}, bare ${REDACTED}`,
        `rate at http://127.0.0.1:8123/rate?token=${REDACTED}&page=2 or https://${REDACTED}@example.org/x`,
        `gh ${REDACTED}; {"key": "${REDACTED}"}`,
        `runs/demo/face_vectors.npy, cwd ., ~/.kaggle/kaggle.json, $TMPDIR/vitest-1/a.txt`,
        `https://example.org/home/alice stays; ${root}2/x stays`,
      ].join("\n"),
    );
    expect(findLeaks(scrub(text).replace(`${root}2/x`, ""), values)).toEqual([]);
    const kinds = new Set(findLeaks(text, values).map((l) => l.kind));
    expect([...kinds].sort()).toEqual(["path", "secret", "token"]);
  });

  it("collects the ids of the key file the blind test writes (blind-test-key.json) and scrubs them", async () => {
    const folder = join(runDir(run), "blind-keys");
    const session = await blindSession(folder);
    const order = session.file.order;
    const ids = blindKeyIds(folder);
    expect([...ids].sort()).toEqual([...order].sort());
    expect(privateValues({ root, runFolder: folder, env: {}, home: "/home/alice" }).blindIds).toEqual(ids);
    const s = createScrubber({ paths: [], secrets: [], blindIds: ids });
    expect(s(`grid ${order[0]} is sparse; ${order[0]}x is not an id; ${order[3]}.`)).toBe(`grid ${BLINDED} is sparse; ${order[0]}x is not an id; ${BLINDED}.`);
    // Other shapes of key: id-like object keys, …Id fields; the session's other files are not keys.
    writeFileSync(blindTestPaths(folder).key, JSON.stringify({ version: "1.0.0", created: "2026-11-27", grids: { g7x2k9: { kind: "sparse", feature: 17, name: "feature_17" } }, order: [{ gridId: "q4m1z8", feature: 3 }] }));
    writeFileSync(join(folder, "blind-test", "ratings.json"), JSON.stringify({ zz99zz: 5 }));
    expect(blindKeyIds(folder).sort()).toEqual(["g7x2k9", "q4m1z8"]);
    writeFileSync(blindTestPaths(folder).key, "{ not json");
    expect(() => blindKeyIds(folder)).toThrow(/blind-test-key\.json is not valid JSON.*fix or remove it/);
  });
});

describe("which cells show", () => {
  it("reads hide tags and Quarto directives, and drops the directive lines", () => {
    expect(cellVisibility(code("x()", [], ["hide-input"]))).toMatchObject({ input: false, output: true, source: "x()" });
    expect(cellVisibility(code("x()", [], ["hide-output"]))).toMatchObject({ input: true, output: false });
    expect(cellVisibility(code("x()", [], ["hide-cell"]))).toMatchObject({ input: false, output: false });
    expect(cellVisibility(code("//| echo: false\nx()"))).toEqual({ input: false, output: true, secret: false, source: "x()" });
    expect(cellVisibility(code("//| output: false\n//| echo: true\n\nx()"))).toEqual({ input: true, output: false, secret: false, source: "x()" });
    expect(cellVisibility(code("//| include: false\nx()"))).toMatchObject({ input: false, output: false });
    expect(cellVisibility(code("x()\n//| echo: false"))).toMatchObject({ input: true, source: "x()\n//| echo: false" });
    expect(cellVisibility(code("x()", [], ["secret"]))).toMatchObject({ secret: true });
  });

  it("shifts headings outside fenced code only", () => {
    expect(shiftHeadings("# A\n```sh\n# comment\n```\n## B\n#notaheading", 1)).toBe("## A\n```sh\n# comment\n```\n### B\n#notaheading");
  });

  it("shows the final state of terminal text", () => {
    expect(plainTerminalText("\u001b[31mred\u001b[0m\n10%\r50%\r100%")).toBe("red\n100%");
  });
});

describe("post metadata", () => {
  it("fills the date and permalink as the blog expects", () => {
    const settings = defaultConfig().export;
    expect(postMeta(settings, new Date("2026-03-05T10:00:00Z"))).toEqual({
      title: "Sparse Autoencoder",
      date: "2026-03-05",
      tags: ["projects", "interpretability", "machine-learning"],
      slug: "sparse-autoencoder",
      permalink: "/posts/2026/03/sparse-autoencoder",
      imagePath: "/images/posts/2026/03/sparse-autoencoder",
    });
    const post = postMeta({ ...settings, date: "2023-10-22", permalink: "/posts/2023/10/celeba-sparse-autoencoder" });
    expect(post.slug).toBe("celeba-sparse-autoencoder");
    expect(post.imagePath).toBe("/images/posts/2023/10/celeba-sparse-autoencoder");
    expect(frontMatter(post)).toBe(
      "---\ntitle: 'Sparse Autoencoder'\ndate: 2023-10-22\npermalink: /posts/2023/10/celeba-sparse-autoencoder\ntags:\n  - projects\n  - interpretability\n  - machine-learning\n---\n",
    );
    expect(slugify("Ça, c'est l'SAE — v2!")).toBe("ca-c-est-l-sae-v2");
    expect(() => postMeta({ ...settings, date: "22/10/2023" })).toThrow(/export\.date "22\/10\/2023" must be YYYY-MM-DD/);
  });
});

describe("a notebook as Markdown", () => {
  const nb: Ipynb = {
    cells: [
      md("# 06 · Ratings\n\nSome *prose*."),
      code("console.log(1)", [stdout("one\n"), stdout("two\n"), { output_type: "stream", name: "stderr", text: "careful\n" }]),
      code("//| echo: false\nshowGrid()", [{ output_type: "display_data", data: { "image/png": PNG_1x1, "text/plain": "A [grid]" }, metadata: {} }]),
      code("secret()", [stdout("the key\n")], ["secret"]),
      code("hidden()", [stdout("hidden\n")], ["hide-cell"]),
      code("table()", [
        { output_type: "display_data", data: { "text/html": "<table>\n\n  <tr><td>1</td></tr>\n</table>", "text/plain": "1" }, metadata: {} },
        { output_type: "display_data", data: { "text/plain": "key map" }, metadata: { "celeba-sae": { secret: true } } },
      ]),
      code("fig()", [{ output_type: "display_data", data: { "application/vnd.plotly.v1+json": { data: [{ type: "bar", x: [1], y: [2], name: "</script>" }] }, "image/png": PNG_1x1, "text/plain": "Figure" }, metadata: {} }]),
      code("boom()", [{ output_type: "error", ename: "Error", evalue: "x", traceback: ["\u001b[31mError: x\u001b[0m", "    at <cell>:1"] }]),
    ],
  };
  const meta = postMeta({ title: "T", date: "2026-11-27", tags: "a", permalink: "" });
  const blocks = notebookBlocks(nb, { firstCell: 10, scrub: (s) => s, headingOffset: 1, language: "typescript" });

  it("renders prose, fenced code, indented outputs, linked images, raw HTML and plotly figures with a fallback", () => {
    const markdown = renderMarkdownPost(meta, blocks, { plotlyScript: "/assets/js/plotly.min.js", interactive: true });
    const figureJson = '{"data":[{"type":"bar","x":[1],"y":[2],"name":"\\u003c/script\\u003e"}]}';
    expect(markdown).toBe(
      [
        "---\ntitle: 'T'\ndate: 2026-11-27\npermalink: /posts/2026/11/t\ntags:\n  - a\n---",
        "## 06 · Ratings\n\nSome *prose*.",
        "```typescript\nconsole.log(1)\n```",
        "    one\n    two",
        "    careful",
        "![A grid](/images/posts/2026/11/t/output_12_0.png)",
        // A secret cell's code shows; its outputs never do.
        "```typescript\nsecret()\n```",
        "```typescript\ntable()\n```",
        '<div class="output_html">\n<table>\n  <tr><td>1</td></tr>\n</table>\n</div>',
        "```typescript\nfig()\n```",
        '<script src="/assets/js/plotly.min.js" charset="utf-8"></script>',
        '<div class="plotly-figure" id="plotly-output_16_0"><img src="/images/posts/2026/11/t/output_16_0.png" alt="Figure" style="max-width:100%;height:auto"></div>\n' +
          `<script type="application/json" id="plotly-output_16_0-data">${figureJson}</script>\n` +
          '<script>(function(){var d=document.getElementById("plotly-output_16_0");if(!window.Plotly||!d)return;var f=JSON.parse(document.getElementById("plotly-output_16_0-data").textContent);d.innerHTML="";Plotly.newPlot(d,f.data,f.layout||{},{responsive:true,displaylogo:false});})();</script>',
        "```typescript\nboom()\n```",
        "    Error: x\n        at <cell>:1\n",
      ].join("\n\n"),
    );
    expect(markdown).not.toMatch(/the key|hidden|key map|showGrid/);
  });

  it("renders figures as static images only when asked", () => {
    const markdown = renderMarkdownPost(meta, blocks, { plotlyScript: "/assets/js/plotly.min.js", interactive: false });
    expect(markdown).not.toMatch(/<script/);
    expect(markdown).toContain('<div class="plotly-figure" id="plotly-output_16_0"><img src="/images/posts/2026/11/t/output_16_0.png"');
  });
});

describe("the reference: nbconvert's Markdown export", () => {
  it("names images by cell and output index and shows prose, code and outputs the same way", () => {
    const nb: Ipynb = {
      metadata: { language_info: { name: "typescript" } },
      cells: [
        md("# T\n\nprose"),
        code("f()", [stdout("one\ntwo\n"), { output_type: "display_data", data: { "image/png": PNG_1x1, "text/plain": "grid" }, metadata: {} }]),
        code("g()", [{ output_type: "display_data", data: { "text/plain": "x" }, metadata: {} }, { output_type: "display_data", data: { "image/png": PNG_1x1, "text/plain": "g2" }, metadata: {} }]),
      ],
    };
    const dir = join(runDir(run), "nbconvert");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "ref.ipynb"), JSON.stringify({ nbformat: 4, nbformat_minor: 5, ...nb, cells: nb.cells.map((c, i) => ({ id: `c${i}`, execution_count: c.cell_type === "code" ? i : undefined, ...c })) }));
    const r = spawnSync(jupyterPython(), ["-m", "nbconvert", "--to", "markdown", "--output-dir", dir, join(dir, "ref.ipynb")], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    // Both, with image links reduced to their cell_output numbers and blank lines dropped.
    const normalise = (text: string): string[] =>
      text.split("\n").filter((l) => l.trim() !== "").map((l) => l.replace(/^!\[[^\]]*\]\([^)]*?_(\d+_\d+)\.png\)$/, "IMAGE $1"));
    const reference = normalise(readFileSync(join(dir, "ref.md"), "utf8"));
    const blocks = notebookBlocks(nb, { firstCell: 0, scrub: (s) => s, headingOffset: 0, language: "typescript" });
    const ours = normalise(renderMarkdownPost(postMeta({ title: "T", date: "2026-11-27", tags: "", permalink: "" }), blocks, { plotlyScript: undefined, interactive: false }).replace(/^---\n[\s\S]*?\n---\n/, ""));
    expect(reference).toEqual(["# T", "prose", "```typescript", "f()", "```", "    one", "    two", "IMAGE 1_1", "```typescript", "g()", "```", "    x", "IMAGE 2_1"]);
    expect(ours).toEqual(reference);
  });
});

describe("the HTML page's images", () => {
  it("inlines large photo PNGs as smaller JPEGs and keeps small images (figures) as PNG", async () => {
    const noise = Buffer.alloc(400 * 400 * 3);
    let state = 12345;
    for (let i = 0; i < noise.length; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      noise[i] = state >>> 24;
    }
    const big = new Uint8Array(await sharp(noise, { raw: { width: 400, height: 400, channels: 3 } }).png().toBuffer());
    expect(big.byteLength).toBeGreaterThan(COMPACT_PNG_BYTES);
    const small = new Uint8Array(Buffer.from(PNG_1x1, "base64"));
    const uris = await compactDataUris([
      { file: "output_1_0.png", mime: "image/png", bytes: big, alt: "grid" },
      { file: "output_2_0.png", mime: "image/png", bytes: small, alt: "figure" },
    ]);
    const jpeg = uris.get("output_1_0.png") ?? "";
    expect(jpeg.startsWith("data:image/jpeg;base64,")).toBe(true);
    const decoded = Buffer.from(jpeg.slice("data:image/jpeg;base64,".length), "base64");
    expect(decoded.byteLength).toBeLessThan(big.byteLength);
    expect(await sharp(decoded).metadata()).toMatchObject({ format: "jpeg", width: 400, height: 400 });
    expect(uris.get("output_2_0.png")).toBe(`data:image/png;base64,${PNG_1x1}`);
  });
});

describe("exportRun", () => {
  /** A grid id of the run's blind test (set by the first test). */
  let blindId = "";
  const notebook = (cells: IpynbCell[]): string => JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata: {}, cells });

  it("writes the post, its images and one self-contained HTML page, with nothing private in them", async () => {
    saveRunConfig(applyOverrides(defaultConfig(run), ["export.date=2026-11-27", "export.title=Faces, sparsely", "export.tags=a, b"]));
    const dir = runFiles(run).notebooks;
    mkdirSync(dir, { recursive: true });
    blindId = (await blindSession(runDir(run))).file.order[0];
    const root = projectRoot();
    writeFileSync(join(dir, "01-a.ipynb"), notebook([
      md("# One"),
      code("load()", [stdout(`read ${root}/data/x.csv with ${KEY}\n`), { output_type: "display_data", data: { "image/png": PNG_1x1, "text/plain": "grid" }, metadata: {} }]),
    ]));
    writeFileSync(join(dir, "02-b.ipynb"), notebook([
      md("# Two"),
      code("rate()", [stdout(`grid ${blindId} → http://127.0.0.1:9/rate?token=abcdef\n`), { output_type: "display_data", data: { "image/png": PNG_1x1 }, metadata: {} }]),
    ]));
    const result = await exportRun(run, { env: ENV, now: new Date("2030-01-01T00:00:00Z") });
    const post = runFiles(run).post;
    expect(result.markdown).toBe(join(post, "2026-11-27-faces-sparsely.md"));
    expect(result.html).toBe(join(post, "2026-11-27-faces-sparsely.html"));
    // Cells are numbered across the series: 02's code cell is cell 3.
    expect(result.images).toEqual([
      join(post, "images/posts/2026/11/faces-sparsely/output_1_1.png"),
      join(post, "images/posts/2026/11/faces-sparsely/output_3_1.png"),
    ]);
    for (const image of result.images) expect(readFileSync(image).toString("base64")).toBe(PNG_1x1);
    const markdown = readFileSync(result.markdown, "utf8");
    expect(markdown).toContain("title: 'Faces, sparsely'\ndate: 2026-11-27\npermalink: /posts/2026/11/faces-sparsely\ntags:\n  - a\n  - b\n---");
    expect(markdown).toContain("## One");
    expect(markdown).toContain(`    read data/x.csv with ${REDACTED}`);
    expect(markdown).toContain(`    grid ${BLINDED} → http://127.0.0.1:9/rate?token=${REDACTED}`);
    expect(markdown).toContain("![grid](/images/posts/2026/11/faces-sparsely/output_1_1.png)");
    const html = readFileSync(result.html, "utf8");
    const values = privateValues({ root, runFolder: runDir(run), env: ENV, home: "/home/alice" });
    expect(documentLeaks(markdown, values)).toEqual([]);
    expect(documentLeaks(html, values)).toEqual([]);
    for (const text of [markdown, html]) expect(text).not.toMatch(new RegExp(`${KEY}|${blindId}|abcdef\\b|${root}`));
    // Self-contained: every image inline, nothing fetched.
    expect(html.match(/<img [^>]*src="data:image\/png;base64,/g)).toHaveLength(2);
    expect(html).not.toMatch(/(src|href)="(?!data:)/);
    expect(html).toContain("<h2>One</h2>");
    expect(html).toMatch(/<pre><code class="language-typescript">load\(\)\n<\/code><\/pre>/);
    // No figure: no plotly.js anywhere.
    expect(html).not.toContain("Plotly");
    expect(existsSync(join(post, "assets"))).toBe(false);
  });

  it("inlines plotly.js in the HTML and copies it for the Markdown post when there is a figure", async () => {
    const figure = { output_type: "display_data" as const, data: { "application/vnd.plotly.v1+json": { data: [{ type: "histogram", x: [1, 2, 2] }] }, "image/png": PNG_1x1, "text/plain": "Figure" }, metadata: {} };
    writeFileSync(join(runDir(run), "notebooks", "03-c.ipynb"), notebook([code("showFigure()", [figure])]));
    const result = await exportRun(run, { env: ENV });
    const markdown = readFileSync(result.markdown, "utf8");
    const script = /<script src="(\/assets\/js\/plotly-[\d.]+\.min\.js)"/.exec(markdown);
    expect(script).not.toBeNull();
    expect(existsSync(join(runDir(run), "post", script?.[1] ?? ""))).toBe(true);
    const html = readFileSync(result.html, "utf8");
    expect(html).toContain('<div class="plotly-figure" id="plotly-output_4_0"><img src="data:image/png;base64,');
    expect(html).toMatch(/<script charset="utf-8">[\s\S]{1000000,}<\/script>/);
    expect(html).not.toMatch(/<script src=/);
    const staticOnly = await exportRun(run, { env: ENV, interactive: false });
    expect(readFileSync(staticOnly.html, "utf8")).not.toContain("<script");
    expect(existsSync(join(runDir(run), "post", "assets"))).toBe(false);
  });

  it("ends the post with a Findings section composed from the findings the notebooks saved, 'not measured' where none", async () => {
    saveFindings(run, { notebook: "06-blind-test", sentences: ["The post's SAE's features are rated lower than dense dimensions."], measures: { "post test verdict": "worse", "sparse mean rating": 3.75, "dense mean rating": 4.25, "post test t": -1.0171, "post test p": 0.3172 } });
    const result = await exportRun(run, { env: ENV, interactive: false });
    const markdown = readFileSync(result.markdown, "utf8");
    const findings = markdown.slice(markdown.indexOf("## Findings"));
    expect(markdown.indexOf("## Findings")).toBeGreaterThan(markdown.indexOf("## Two"));
    expect(findings).toContain("| blind test: mean rating of the post's SAE's features | 4.44 | 3.75 |");
    expect(findings).toContain("Not reproduced: the post's SAE's features are rated lower than dense dimensions, where the post rated them higher.");
    expect(findings).toContain("- **The blind test (06).** The post's SAE's features are rated lower than dense dimensions.");
    expect(findings).toContain("- **The sparse autoencoders (04).** not measured: the notebook saved no findings.");
    expect(findings).toMatch(/### Limits of this run[\s\S]*Fine-tuning started from finetune\.weights=auto \(as configured: notebook 02 did not record what it loaded\)/);
    expect(readFileSync(result.html, "utf8")).toContain("<h2>Findings</h2>");
  });

  it("shows the blind-test ids once asked to, and never replaces a folder it did not write", async () => {
    const revealed = await exportRun(run, { env: ENV, interactive: false, revealBlindKeys: true });
    expect(readFileSync(revealed.markdown, "utf8")).toContain(`    grid ${blindId} →`);
    const foreign = join(runDir(run), "someone-elses");
    mkdirSync(foreign, { recursive: true });
    writeFileSync(join(foreign, "notes.txt"), "keep me");
    await expect(exportRun(run, { env: ENV, outDir: foreign })).rejects.toThrow(/someone-elses exists and was not written by an export: choose another outDir/);
    expect(readFileSync(join(foreign, "notes.txt"), "utf8")).toBe("keep me");
  });

  it("says how to make the notebooks when a run has none, and creates nothing", async () => {
    expect(() => executedNotebooks(`${run}-none`)).toThrow(/has no executed notebooks in runs\/.*-none\/notebooks\/: run npm run notebooks -- --run/);
    await expect(exportRun(`${run}-none`)).rejects.toThrow(/has no executed notebooks/);
    expect(existsSync(runDir(`${run}-none`))).toBe(false);
  });
});
