// The post as ONE self-contained HTML file: the same body as the Markdown post, rendered with marked, images
// inlined as data URIs (large grids of faces as JPEG), styles inline, and plotly.js inlined (minified with esbuild when it is installed,
// cached) so the figures are interactive offline; without scripts the static images show.

import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { marked } from "marked";
import sharp from "sharp";
import type { ImageAsset, PostBlock } from "./export-notebook";
import { renderBody, type PostMeta } from "./export-markdown";
import { projectRoot } from "../util/project";
import { requireFromProject } from "../util/project";
import { writeFileAtomicSync } from "../util/atomic-write";

/** An image as a data URI. */
export function dataUri(image: ImageAsset): string {
  return `data:${image.mime};base64,${Buffer.from(image.bytes.buffer, image.bytes.byteOffset, image.bytes.byteLength).toString("base64")}`;
}

const escapeHtml = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** The page's styles: a readable column, code and outputs told apart, tables like pandas'. */
export const POST_CSS = `
body { margin: 0; background: #fff; color: #1f2328; font: 16px/1.6 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 860px; margin: 0 auto; padding: 2rem 1.25rem 4rem; }
header.post-header h1 { font-size: 2.1rem; margin: 0 0 .25rem; }
header.post-header .meta { color: #59636e; font-size: .9rem; margin-bottom: 2rem; }
header.post-header .tag { display: inline-block; background: #eef1f4; border-radius: 3px; padding: 0 .4rem; margin-right: .3rem; }
h1, h2, h3 { line-height: 1.25; margin-top: 2rem; }
pre { overflow-x: auto; padding: .75rem 1rem; border-radius: 4px; font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre code[class^="language-"] { color: #24292f; }
pre:has(> code[class^="language-"]) { background: #f6f8fa; border: 1px solid #d8dee4; }
pre:has(> code:not([class])) { background: #fff; border-left: 3px solid #d0d7de; color: #444; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
img { max-width: 100%; height: auto; }
.output_html { overflow-x: auto; margin: 1rem 0; }
.output_html table { border-collapse: collapse; font-size: 13px; }
.output_html th, .output_html td { padding: .25rem .6rem; border: 1px solid #d0d7de; }
.output_html caption { caption-side: top; font-weight: 600; text-align: left; padding-bottom: .3rem; }
.plotly-figure { margin: 1rem 0; max-width: 100%; }
`;

/** What require() is asked for to minify plotly.js (esbuild, installed with tsx). */
interface Minifier {
  transformSync(code: string, options: { minify: boolean; legalComments: "none" | "inline" }): { code: string };
}

function isMinifier(value: unknown): value is Minifier {
  return typeof value === "object" && value !== null && typeof (value as { transformSync?: unknown }).transformSync === "function";
}

/** plotly.js-dist's bundle file and version. */
export function plotlyDist(): { file: string; version: string } {
  const require = requireFromProject();
  let file: string;
  try {
    file = require.resolve("plotly.js-dist");
  } catch {
    throw new Error("plotly.js-dist is not installed: run npm install (or export with interactive: false)");
  }
  const manifest = join(dirname(file), "package.json");
  const version = (JSON.parse(readFileSync(manifest, "utf8")) as { version?: string }).version ?? "unknown";
  return { file, version };
}

/**
 * plotly.js as one script, minified with esbuild when available (the minified copy is cached in
 * node_modules/.cache/celeba-sae/), else plotly.js-dist's bundle as it is.
 */
export function plotlyScript(): { code: string; version: string; minified: boolean } {
  const { file, version } = plotlyDist();
  const cached = join(projectRoot(), "node_modules", ".cache", "celeba-sae", `plotly-${version}.min.js`);
  if (existsSync(cached)) return { code: readFileSync(cached, "utf8"), version, minified: true };
  const code = readFileSync(file, "utf8");
  let esbuild: unknown;
  try {
    esbuild = requireFromProject()("esbuild");
  } catch {
    return { code, version, minified: false };
  }
  if (!isMinifier(esbuild)) return { code, version, minified: false };
  const min = esbuild.transformSync(code, { minify: true, legalComments: "inline" }).code;
  writeFileAtomicSync(cached, min);
  return { code: min, version, minified: true };
}

/** A script's text made safe to inline in a <script> element. */
function inlineScript(code: string): string {
  return code.replace(/<\/script/gi, "<\\/script").replace(/<!--/g, "<\\!--");
}

export interface HtmlOptions {
  /** Inline plotly.js and make figures interactive (default: when there is a figure). */
  readonly interactive: boolean;
  /** The `src` of each image (default: its bytes as a data URI; see `compactDataUris`). */
  readonly imageSrc?: (image: ImageAsset) => string;
}

/** PNGs larger than this are photos (image grids), inlined as JPEG to keep the page small. */
export const COMPACT_PNG_BYTES = 256 * 1024;

/**
 * Data URIs for a page's images: large PNGs (grids of faces) re-encoded as JPEG (quality 90) when that is
 * smaller, figures and small images as they are. Keyed by the image's file name.
 */
export async function compactDataUris(images: readonly ImageAsset[], quality = 90): Promise<Map<string, string>> {
  const uris = new Map<string, string>();
  for (const image of images) {
    if (image.mime === "image/png" && image.bytes.byteLength > COMPACT_PNG_BYTES) {
      const jpeg = await sharp(image.bytes).flatten({ background: "#ffffff" }).jpeg({ quality, mozjpeg: true }).toBuffer();
      if (jpeg.byteLength < image.bytes.byteLength) {
        uris.set(image.file, dataUri({ ...image, mime: "image/jpeg", bytes: new Uint8Array(jpeg) }));
        continue;
      }
    }
    uris.set(image.file, dataUri(image));
  }
  return uris;
}

/** The whole series as one self-contained HTML page. */
export function renderHtmlPost(meta: PostMeta, blocks: readonly PostBlock[], options: HtmlOptions): string {
  const hasFigure = blocks.some((b) => b.kind === "plotly");
  const interactive = options.interactive && hasFigure;
  const body = renderBody(blocks, { imageSrc: options.imageSrc ?? dataUri, plotlyScript: undefined, interactive });
  const html = marked.parse(body, { async: false, gfm: true });
  const plotly = interactive ? `<script charset="utf-8">${inlineScript(plotlyScript().code)}</script>\n` : "";
  const tags = meta.tags.map((t) => `<span class="tag">${escapeHtml(t)}</span>`).join("");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(meta.title)}</title>
<style>${POST_CSS}</style>
${plotly}</head>
<body>
<main>
<header class="post-header"><h1>${escapeHtml(meta.title)}</h1><div class="meta"><time datetime="${meta.date}">${meta.date}</time> ${tags}</div></header>
<article>
${html}
</article>
</main>
</body>
</html>
`;
}
