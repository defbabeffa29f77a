// The post as Markdown, in the shape of a notebook exported to a Jekyll blog (nbconvert's Markdown, as the
// original post): front matter, prose, fenced code, outputs indented by four spaces, images linked by site path,
// tables as raw HTML, plotly figures as a div (interactive where the blog runs scripts) holding a static image.

import type { JsonObject } from "../display/notebook-display";
import type { ImageAsset, PostBlock } from "./export-notebook";

/** The post's identity: what Jekyll's front matter and file name say. */
export interface PostMeta {
  readonly title: string;
  /** YYYY-MM-DD */
  readonly date: string;
  readonly tags: readonly string[];
  readonly slug: string;
  /** The post's URL path, e.g. /posts/2026/11/sparse-autoencoder */
  readonly permalink: string;
  /** Site path of the post's images, e.g. /images/posts/2026/11/sparse-autoencoder */
  readonly imagePath: string;
}

/** A title as a URL slug: lower case, ASCII letters and digits joined by single dashes. */
export function slugify(title: string): string {
  const slug = title
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return slug === "" ? "post" : slug;
}

/** The post's metadata from the export settings (empty date: `today`; empty permalink: /posts/<year>/<month>/<slug>). */
export function postMeta(settings: { title: string; date: string; tags: string; permalink: string; slug?: string }, today: Date = new Date()): PostMeta {
  const date = settings.date !== "" ? settings.date : today.toISOString().slice(0, 10);
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (m === null) throw new Error(`export.date "${date}" must be YYYY-MM-DD (or "" for the day of the export): --set export.date=2026-11-27`);
  const [, year, month] = m;
  const fromPermalink = settings.permalink.replace(/\/+$/, "").split("/").pop() ?? "";
  const slug = settings.slug !== undefined && settings.slug !== "" ? slugify(settings.slug) : settings.permalink !== "" && fromPermalink !== "" ? slugify(fromPermalink) : slugify(settings.title);
  const permalink = settings.permalink !== "" ? settings.permalink : `/posts/${year}/${month}/${slug}`;
  const tags = settings.tags.split(",").map((t) => t.trim()).filter((t) => t !== "");
  return { title: settings.title, date, tags, slug, permalink, imagePath: `/images/posts/${year}/${month}/${slug}` };
}

/** A YAML single-quoted scalar. */
function yamlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** Jekyll front matter, as the original post has it. */
export function frontMatter(meta: PostMeta): string {
  const tags = meta.tags.length > 0 ? ["tags:", ...meta.tags.map((t) => `  - ${t}`)] : [];
  return ["---", `title: ${yamlString(meta.title)}`, `date: ${meta.date}`, `permalink: ${meta.permalink}`, ...tags, "---", ""].join("\n");
}

/** How the body refers to images and plotly.js. */
export interface BodyOptions {
  /** The `src` of an image: its site path in the post, a data URI in the HTML export. */
  readonly imageSrc: (image: ImageAsset) => string;
  /** A `<script src>` that loads plotly.js before the first figure; undefined when the page has it already. */
  readonly plotlyScript: string | undefined;
  /** Whether figures get their interactive script (else only the static image). */
  readonly interactive: boolean;
}

const escapeAttr = (s: string): string => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Output text as an indented Markdown code block (four spaces, as nbconvert writes outputs). */
export function indentBlock(text: string): string {
  return text
    .replace(/\s+$/, "")
    .split("\n")
    .map((line) => (line === "" ? "    " : `    ${line}`))
    .join("\n");
}

/** HTML as one raw Markdown block: blank lines removed (a blank line would end the block for CommonMark). */
export function rawHtmlBlock(html: string): string {
  const body = html.split("\n").filter((line) => line.trim() !== "").join("\n");
  return `<div class="output_html">\n${body}\n</div>`;
}

/** JSON safe inside a <script> element. */
export function scriptJson(value: JsonObject): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/>/g, "\\u003e").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

function imageTag(image: ImageAsset, src: string): string {
  const width = image.width !== undefined ? ` width="${image.width}"` : "";
  return `<img src="${escapeAttr(src)}" alt="${escapeAttr(image.alt)}"${width} style="max-width:100%;height:auto">`;
}

function markdownImage(image: ImageAsset, src: string): string {
  if (image.width !== undefined) return imageTag(image, src);
  const alt = image.alt.replace(/[[\]\\]/g, " ").replace(/\s+/g, " ").trim();
  return `![${alt}](${src})`;
}

/** A plotly figure: a div showing the static image, replaced by the interactive plot where scripts run. */
function plotlyBlock(id: string, figure: JsonObject, fallback: ImageAsset | undefined, options: BodyOptions): string {
  const inner = fallback !== undefined ? imageTag(fallback, options.imageSrc(fallback)) : "";
  const div = `<div class="plotly-figure" id="${id}">${inner}</div>`;
  if (!options.interactive) return div;
  const script =
    `<script type="application/json" id="${id}-data">${scriptJson(figure)}</script>\n` +
    `<script>(function(){var d=document.getElementById("${id}");if(!window.Plotly||!d)return;` +
    `var f=JSON.parse(document.getElementById("${id}-data").textContent);d.innerHTML="";` +
    `Plotly.newPlot(d,f.data,f.layout||{},{responsive:true,displaylogo:false});})();</script>`;
  return `${div}\n${script}`;
}

/** The post's body: every block in order, separated by blank lines. */
export function renderBody(blocks: readonly PostBlock[], options: BodyOptions): string {
  const parts: string[] = [];
  let plotlyLoaded = options.plotlyScript === undefined;
  for (const block of blocks) {
    switch (block.kind) {
      case "prose":
        parts.push(block.markdown.replace(/\s+$/, ""));
        break;
      case "code": {
        const longest = Math.max(2, ...Array.from(block.source.matchAll(/`{3,}/g), (m) => m[0].length));
        const fence = "`".repeat(longest + 1);
        parts.push(`${fence}${block.language}\n${block.source}\n${fence}`);
        break;
      }
      case "text":
        parts.push(indentBlock(block.text));
        break;
      case "image":
        parts.push(markdownImage(block.image, options.imageSrc(block.image)));
        break;
      case "html":
        parts.push(rawHtmlBlock(block.html));
        break;
      case "plotly":
        if (options.interactive && !plotlyLoaded && options.plotlyScript !== undefined) {
          parts.push(`<script src="${escapeAttr(options.plotlyScript)}" charset="utf-8"></script>`);
          plotlyLoaded = true;
        }
        parts.push(plotlyBlock(block.id, block.figure, block.fallback, options));
        break;
    }
  }
  return parts.join("\n\n") + "\n";
}

/** The whole Markdown post: front matter, then the body with images linked by their site paths. */
export function renderMarkdownPost(meta: PostMeta, blocks: readonly PostBlock[], options: { plotlyScript: string | undefined; interactive: boolean }): string {
  const body = renderBody(blocks, { imageSrc: (image) => `${meta.imagePath}/${image.file}`, ...options });
  return `${frontMatter(meta)}\n${body}`;
}
