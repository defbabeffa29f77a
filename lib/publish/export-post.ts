// The executed notebooks of a run as a blog post: `exportRun(run)` writes runs/<run>/post/ with
//   <date>-<slug>.md                                   Jekyll front matter + the series as one post
//   images/posts/<year>/<month>/<slug>/output_<cell>_<n>.png   the images, linked by that site path
//   assets/js/plotly-<version>.min.js                  plotly.js for the interactive figures (when there are any)
//   <date>-<slug>.html                                 ONE self-contained page of the whole series
//   .celeba-sae-export                                 marks the folder as an export (the next one replaces it)
// Cells are numbered over the whole series (01's cells, then 02's, …), so image names never collide. The post ends
// with a Findings section composed from the findings each notebook saved (findings-section.ts).
// Everything private is scrubbed (export-scrub.ts); hidden cells and secret outputs are left out
// (export-notebook.ts). The folder is written beside the old one and swapped in at the end.

import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadRunConfig } from "../run/config";
import { imagesOf, notebookBlocks, readIpynb, type PostBlock } from "./export-notebook";
import { compactDataUris, plotlyScript, renderHtmlPost } from "./export-html";
import { postMeta, renderMarkdownPost, type PostMeta } from "./export-markdown";
import { createScrubber, findLeaks, privateValues, type Leak, type PrivateValues } from "./export-scrub";
import { dataDir, displayPath, projectRoot } from "../util/project";
import { findingsMarkdown, loadRunFindings, runFacts } from "./findings-section";
import { runDir, runFiles } from "../run/files";

export interface ExportOptions {
  /** Override the run's `export` settings. */
  readonly title?: string;
  readonly date?: string;
  readonly tags?: string;
  readonly permalink?: string;
  /** The post's slug (default: from the permalink, else from the title). */
  readonly slug?: string;
  /** Interactive plotly figures (plotly.js linked in the Markdown, inlined in the HTML). Default true. */
  readonly interactive?: boolean;
  /** Heading levels added to Markdown cells. Default 1: each notebook's "# title" becomes a "##" section. */
  readonly headingOffset?: number;
  /** Where to write (default runs/<run>/post). */
  readonly outDir?: string;
  /** "Today" for an empty export.date. */
  readonly now?: Date;
  /** The environment whose secrets are scrubbed (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Show the ids of the blind test's key file (runs/<run>/blind-test-key.json). Default false: they are
   * replaced by [blinded]; pass true only once the test is unblinded.
   */
  readonly revealBlindKeys?: boolean;
}

export interface ExportResult {
  /** Path of the Markdown post. */
  readonly markdown: string;
  /** Path of the self-contained HTML page. */
  readonly html: string;
  /** Paths of the images written for the Markdown post. */
  readonly images: string[];
  /** The executed notebooks exported, in order. */
  readonly notebooks: string[];
  readonly meta: PostMeta;
}

/** The executed notebooks of a run (runs/<run>/notebooks/NN-*.ipynb), in order; an error says how to make them. */
export function executedNotebooks(run: string): string[] {
  const dir = runFiles(run).notebooks;
  // The series, without the notebook that publishes it (NN-publish.ipynb calls this while it runs).
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => /^\d\d-.*\.ipynb$/.test(f) && !/^\d\d-publish\.ipynb$/.test(f)).sort() : [];
  if (files.length === 0) {
    throw new Error(`run "${run}" has no executed notebooks in ${displayPath(dir)}/: run npm run notebooks -- --run ${run} first`);
  }
  return files.map((f) => join(dir, f));
}

/** The series' blocks: each notebook's, cells numbered across the series. */
export function seriesBlocks(notebooks: readonly string[], scrub: (text: string) => string, headingOffset: number): PostBlock[] {
  const blocks: PostBlock[] = [];
  let firstCell = 0;
  for (const path of notebooks) {
    const nb = readIpynb(path);
    blocks.push(...notebookBlocks(nb, { firstCell, scrub, headingOffset, language: "typescript" }));
    firstCell += nb.cells.length;
  }
  return blocks;
}

/** The private values of a run on this machine (see export-scrub.ts). */
export function runPrivateValues(run: string, env: NodeJS.ProcessEnv = process.env, revealBlindKeys = false): PrivateValues {
  const data = dataDir();
  const outside = !data.startsWith(`${projectRoot()}/`);
  const values = privateValues({ root: projectRoot(), runFolder: runDir(run), env, extraPaths: outside ? [[data, "$CELEBA_SAE_DATA"]] : [] });
  return revealBlindKeys === true ? { ...values, blindIds: [] } : values;
}

/** Marks a folder written by exportRun: only such a folder (or none, or an empty one) is replaced. */
export const EXPORT_MARKER = ".celeba-sae-export";

function checkReplaceable(outDir: string): void {
  if (!existsSync(outDir)) return;
  const entries = readdirSync(outDir);
  if (entries.length > 0 && !entries.includes(EXPORT_MARKER)) {
    throw new Error(`${displayPath(outDir)} exists and was not written by an export: choose another outDir, or empty it first`);
  }
}

/** Private things in an exported document, inlined scripts and data URIs aside (an empty list: clean). */
export function documentLeaks(document: string, values: PrivateValues): Leak[] {
  const visible = document.replace(/<script(?![^>]*application\/json)[^>]*>[\s\S]*?<\/script>/gi, "").replace(/data:[a-z/+]+;base64,[A-Za-z0-9+/=]+/g, "");
  return findLeaks(visible, values);
}

function writeBytes(path: string, bytes: Uint8Array | string): void {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, bytes);
}

/** Exports a run's executed notebooks as a blog post and one HTML page into runs/<run>/post/ (see the file's top). */
export async function exportRun(run: string, options: ExportOptions = {}): Promise<ExportResult> {
  const notebooks = executedNotebooks(run);
  const config = loadRunConfig(run);
  const settings = { ...config.export, ...definedOnly(options) };
  const meta = postMeta(settings, options.now ?? new Date());
  const values = runPrivateValues(run, options.env ?? process.env, options.revealBlindKeys === true);
  const scrub = createScrubber(values);
  const findings = loadRunFindings(run);
  const blocks: PostBlock[] = [...seriesBlocks(notebooks, scrub, options.headingOffset ?? 1), { kind: "prose", markdown: scrub(findingsMarkdown(findings, runFacts(config, findings))) }];
  const interactive = (options.interactive ?? true) && blocks.some((b) => b.kind === "plotly");

  const outDir = options.outDir ?? runFiles(run).post;
  checkReplaceable(outDir);
  const staging = `${outDir}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  const plotly = interactive ? plotlyScript() : undefined;
  const plotlyPath = plotly !== undefined ? `/assets/js/plotly-${plotly.version}.min.js` : undefined;
  const markdown = renderMarkdownPost(meta, blocks, { plotlyScript: plotlyPath, interactive });
  const uris = await compactDataUris(imagesOf(blocks));
  const html = renderHtmlPost(meta, blocks, { interactive, imageSrc: (image) => uris.get(image.file) ?? "" });
  for (const [name, doc] of [["Markdown", markdown], ["HTML", html]] as const) {
    const leaks = documentLeaks(doc, values);
    if (leaks.length > 0) {
      throw new Error(`the ${name} export still shows private values (${leaks.map((l) => `${l.kind} ${l.sample}`).join(", ")}); nothing was written`);
    }
  }

  const base = `${meta.date}-${meta.slug}`;
  writeBytes(join(staging, EXPORT_MARKER), `exported from run "${run}" by celeba-sae; this folder is replaced by the next export\n`);
  writeBytes(join(staging, `${base}.md`), markdown);
  writeBytes(join(staging, `${base}.html`), html);
  const images = imagesOf(blocks).map((image) => {
    writeBytes(join(staging, meta.imagePath, image.file), image.bytes);
    return join(outDir, meta.imagePath, image.file);
  });
  if (plotly !== undefined && plotlyPath !== undefined) writeBytes(join(staging, plotlyPath), plotly.code);
  rmSync(outDir, { recursive: true, force: true });
  renameSync(staging, outDir);
  return { markdown: join(outDir, `${base}.md`), html: join(outDir, `${base}.html`), images, notebooks, meta };
}

type Settings = { title?: string; date?: string; tags?: string; permalink?: string; slug?: string };

function definedOnly(options: ExportOptions): Settings {
  const out: Settings = {};
  if (options.title !== undefined) out.title = options.title;
  if (options.date !== undefined) out.date = options.date;
  if (options.tags !== undefined) out.tags = options.tags;
  if (options.permalink !== undefined) out.permalink = options.permalink;
  if (options.slug !== undefined) out.slug = options.slug;
  return out;
}
