// An executed notebook as the blocks of a post: prose, code, text output, image, HTML, plotly figure.
//
// Which cells and outputs are shown follows nbdev/Quarto conventions:
//   cell tags         hide-input | hide-output | hide-cell  (Jupyter Book's remove-input/-output/-cell too)
//   first lines       //| echo: false    (hide the code)     //| output: false  (hide the outputs)
//                     //| include: false (hide both)
// Outputs that must stay private are left out entirely: a cell tagged `secret`, or an output whose metadata
// has `secret: true` (top level, under "celeba-sae", or under any MIME type's metadata).
// Every piece of text passes through the export's scrubber (see export-scrub.ts).

import { existsSync, readFileSync } from "node:fs";
import type { JsonObject, JsonValue } from "../display/notebook-display";
import type { Scrubber } from "./export-scrub";

/** One output of an executed code cell, as nbformat 4 stores it. */
export interface IpynbOutput {
  readonly output_type: "stream" | "display_data" | "execute_result" | "error" | "update_display_data";
  readonly name?: string;
  readonly text?: string | readonly string[];
  readonly data?: Readonly<Record<string, JsonValue>>;
  readonly metadata?: JsonObject;
  readonly ename?: string;
  readonly evalue?: string;
  readonly traceback?: readonly string[];
}

export interface IpynbCell {
  readonly cell_type: "code" | "markdown" | "raw";
  readonly source: string | readonly string[];
  readonly metadata?: JsonObject;
  readonly outputs?: readonly IpynbOutput[];
}

export interface Ipynb {
  readonly cells: readonly IpynbCell[];
  readonly metadata?: JsonObject;
}

/** An image written next to the post: `output_<cell>_<n>.<ext>` in the post's image folder. */
export interface ImageAsset {
  readonly file: string;
  readonly mime: "image/png" | "image/jpeg" | "image/gif";
  readonly bytes: Uint8Array;
  readonly alt: string;
  /** Display width in CSS pixels, when the notebook gave one (e.g. a 2× figure). */
  readonly width?: number;
}

/** What the post shows, in order. */
export type PostBlock =
  | { readonly kind: "prose"; readonly markdown: string }
  | { readonly kind: "code"; readonly source: string; readonly language: string }
  | { readonly kind: "text"; readonly text: string; readonly stream: "stdout" | "stderr" | "result" | "error" }
  | { readonly kind: "image"; readonly image: ImageAsset }
  | { readonly kind: "html"; readonly html: string }
  | { readonly kind: "plotly"; readonly id: string; readonly figure: JsonObject; readonly fallback: ImageAsset | undefined };

/** Reads an executed notebook, or throws naming the file and what is wrong with it. */
export function readIpynb(path: string): Ipynb {
  if (!existsSync(path)) throw new Error(`${path} does not exist: execute the notebooks first (npm run notebooks -- --run NAME)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`${path} is not a notebook (invalid JSON: ${(e as Error).message}); re-run it with npm run notebooks`);
  }
  const cells = (parsed as { cells?: unknown }).cells;
  if (typeof parsed !== "object" || parsed === null || !Array.isArray(cells)) {
    throw new Error(`${path} is not an nbformat 4 notebook (no "cells" list); re-run it with npm run notebooks`);
  }
  return parsed as Ipynb;
}

/** A multiline nbformat string (a string or a list of lines) as one string. */
export function joinSource(text: string | readonly string[] | undefined): string {
  return typeof text === "string" ? text : (text ?? []).join("");
}

/** What of a cell is shown, and its source without the directive lines. */
export interface CellVisibility {
  readonly input: boolean;
  readonly output: boolean;
  /** Outputs are private: never exported. */
  readonly secret: boolean;
  readonly source: string;
}

const DIRECTIVE = /^\s*\/\/\|\s*([A-Za-z-]+)\s*:\s*(.*?)\s*$/;

function cellTags(cell: IpynbCell): string[] {
  const tags = cell.metadata?.tags;
  return Array.isArray(tags) ? tags.filter((t): t is string => typeof t === "string") : [];
}

/** Reads a cell's tags and leading `//|` directives (Quarto's echo/output/include). */
export function cellVisibility(cell: IpynbCell): CellVisibility {
  const tags = new Set(cellTags(cell));
  let input = !(tags.has("hide-input") || tags.has("remove-input") || tags.has("hide-cell") || tags.has("remove-cell"));
  let output = !(tags.has("hide-output") || tags.has("remove-output") || tags.has("hide-cell") || tags.has("remove-cell"));
  const lines = joinSource(cell.source).split("\n");
  let first = 0;
  for (; first < lines.length; first++) {
    const m = DIRECTIVE.exec(lines[first]);
    if (m === null) break;
    const off = m[2].toLowerCase() === "false";
    if (m[1] === "echo" && off) input = false;
    if (m[1] === "output" && off) output = false;
    if (m[1] === "include" && off) input = output = false;
  }
  const source = lines.slice(first).join("\n").replace(/^\n+/, "").replace(/\s+$/, "");
  return { input, output, secret: tags.has("secret"), source };
}

function isSecretOutput(output: IpynbOutput): boolean {
  const meta = output.metadata;
  if (meta === undefined) return false;
  const flagged = (value: JsonValue | undefined): boolean =>
    typeof value === "object" && value !== null && !Array.isArray(value) && value.secret === true;
  return meta.secret === true || Object.values(meta).some(flagged);
}

/** Removes ANSI colour codes and carriage-return overwrites (what a terminal would finally show). */
export function plainTerminalText(text: string): string {
  return text
    .replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "")
    .split("\n")
    .map((line) => {
      const parts = line.split("\r");
      return parts.length > 1 ? (parts.filter((p) => p !== "").pop() ?? "") : line;
    })
    .join("\n");
}

const IMAGE_TYPES = [["image/png", "png"], ["image/jpeg", "jpg"], ["image/gif", "gif"]] as const;

function dataText(value: JsonValue | undefined): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) return (value as string[]).join("");
  return undefined;
}

function imageOf(output: IpynbOutput, cellIndex: number, outputIndex: number, scrub: Scrubber): ImageAsset | undefined {
  const data = output.data ?? {};
  for (const [mime, ext] of IMAGE_TYPES) {
    const b64 = dataText(data[mime]);
    if (b64 === undefined) continue;
    const meta = output.metadata?.[mime];
    const width = typeof meta === "object" && meta !== null && !Array.isArray(meta) && typeof meta.width === "number" ? meta.width : undefined;
    const alt = scrub(plainTerminalText(dataText(data["text/plain"]) ?? ext)).replace(/\s+/g, " ").trim().slice(0, 200) || ext;
    const bytes = new Uint8Array(Buffer.from(b64.replace(/\s+/g, ""), "base64"));
    return { file: `output_${cellIndex}_${outputIndex}.${ext}`, mime, bytes, alt, ...(width !== undefined ? { width } : {}) };
  }
  return undefined;
}

/** The blocks of one output; `cellIndex` counts cells over the whole series (it names the images). */
function outputBlocks(output: IpynbOutput, cellIndex: number, outputIndex: number, scrub: Scrubber): PostBlock[] {
  switch (output.output_type) {
    case "stream": {
      const text = scrub(plainTerminalText(joinSource(output.text)));
      return [{ kind: "text", text, stream: output.name === "stderr" ? "stderr" : "stdout" }];
    }
    case "error": {
      const trace = (output.traceback ?? []).map(plainTerminalText).join("\n");
      const text = scrub(trace.trim() !== "" ? trace : `${output.ename ?? "Error"}: ${output.evalue ?? ""}`);
      return [{ kind: "text", text, stream: "error" }];
    }
    case "display_data":
    case "execute_result": {
      const data = output.data ?? {};
      const image = imageOf(output, cellIndex, outputIndex, scrub);
      const plotly = data["application/vnd.plotly.v1+json"];
      if (typeof plotly === "object" && plotly !== null && !Array.isArray(plotly)) {
        const figure = JSON.parse(scrub(JSON.stringify(plotly))) as JsonObject;
        return [{ kind: "plotly", id: `plotly-output_${cellIndex}_${outputIndex}`, figure, fallback: image }];
      }
      if (image !== undefined) return [{ kind: "image", image }];
      const html = dataText(data["text/html"]);
      if (html !== undefined) return [{ kind: "html", html: scrub(html) }];
      const markdown = dataText(data["text/markdown"]);
      if (markdown !== undefined) return [{ kind: "prose", markdown: scrub(markdown) }];
      const text = dataText(data["text/plain"]);
      if (text !== undefined) return [{ kind: "text", text: scrub(plainTerminalText(text)), stream: "result" }];
      return [];
    }
    default:
      return [];
  }
}

/** Joins adjacent text outputs of the same stream (a cell's console.log lines read as one block). */
function coalesceText(blocks: readonly PostBlock[]): PostBlock[] {
  const out: PostBlock[] = [];
  for (const block of blocks) {
    const last = out[out.length - 1];
    if (block.kind === "text" && last !== undefined && last.kind === "text" && last.stream === block.stream) {
      out[out.length - 1] = { ...last, text: last.text.endsWith("\n") ? last.text + block.text : `${last.text}\n${block.text}` };
    } else {
      out.push(block);
    }
  }
  return out.filter((b) => b.kind !== "text" || b.text.trim() !== "");
}

/** Shifts Markdown headings by `offset` levels (outside fenced code), so each notebook's title becomes a section. */
export function shiftHeadings(markdown: string, offset: number): string {
  if (offset === 0) return markdown;
  let fence: string | undefined;
  return markdown
    .split("\n")
    .map((line) => {
      const f = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
      if (f !== null) {
        if (fence === undefined) fence = f[1][0];
        else if (f[1][0] === fence) fence = undefined;
        return line;
      }
      if (fence !== undefined) return line;
      return line.replace(/^(#{1,6})(\s)/, (_, hashes: string, space: string) => "#".repeat(Math.min(6, Math.max(1, hashes.length + offset))) + space);
    })
    .join("\n");
}

export interface NotebookBlocksOptions {
  /** Index of this notebook's first cell in the whole series (image names count cells across notebooks). */
  readonly firstCell: number;
  readonly scrub: Scrubber;
  /** Heading levels added to Markdown cells (1: a notebook's "# Title" becomes a "## Title" section). */
  readonly headingOffset: number;
  /** The language of code cells' fences. */
  readonly language: string;
}

/** The blocks a notebook contributes to the post, hidden and secret parts left out. */
export function notebookBlocks(nb: Ipynb, options: NotebookBlocksOptions): PostBlock[] {
  const blocks: PostBlock[] = [];
  nb.cells.forEach((cell, i) => {
    const cellIndex = options.firstCell + i;
    const shown = cellVisibility(cell);
    if (cell.cell_type === "markdown") {
      if (shown.input && shown.source.trim() !== "") {
        blocks.push({ kind: "prose", markdown: options.scrub(shiftHeadings(shown.source, options.headingOffset)) });
      }
      return;
    }
    if (cell.cell_type !== "code") return;
    if (shown.input && shown.source.trim() !== "") {
      blocks.push({ kind: "code", source: options.scrub(shown.source), language: options.language });
    }
    if (!shown.output || shown.secret) return;
    const outputs = (cell.outputs ?? []).flatMap((output, n) => (isSecretOutput(output) ? [] : outputBlocks(output, cellIndex, n, options.scrub)));
    blocks.push(...coalesceText(outputs));
  });
  return blocks;
}

/** Every image a list of blocks needs written (figure fallbacks included). */
export function imagesOf(blocks: readonly PostBlock[]): ImageAsset[] {
  return blocks.flatMap((b) => (b.kind === "image" ? [b.image] : b.kind === "plotly" && b.fallback !== undefined ? [b.fallback] : []));
}
