// Rich output for notebooks: one Jupyter `display_data` message carrying several MIME types at once, like IPython's
// `display(obj)` does. tslab's public `display` API sends a single MIME type per call, and nbconvert drops MIME types
// it does not know (plotly's) on export; a bundle lets every front end pick the richest form it can render:
// JupyterLab takes plotly JSON, nbconvert's HTML and Markdown exporters take the PNG, a terminal takes the text.
//
// Inside a tslab kernel the bundle goes through tslab's internal `lastWriteDisplayData` (the function its own
// `display.raw()` uses, see node_modules/tslab/dist/public.js), found in Node's module cache, so nothing is
// loaded when this runs outside a kernel. Outside a kernel (scripts, tests, a terminal) the text/plain form is
// printed to stdout. Tests inject a writer with `setDisplayWriter`.

import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { join } from "node:path";

/** Any JSON value (what Jupyter's JSON-valued MIME types carry). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/**
 * What one output shows, keyed by MIME type. Text types are strings, binary images are raw bytes (base64-encoded
 * on the wire), JSON types are JSON values. Front ends pick the richest type they can render.
 */
export interface MimeBundle {
  "text/plain"?: string;
  "text/html"?: string;
  "text/markdown"?: string;
  "text/latex"?: string;
  "image/svg+xml"?: string;
  "image/png"?: Uint8Array;
  "image/jpeg"?: Uint8Array;
  "image/gif"?: Uint8Array;
  "application/json"?: JsonValue;
  "application/vnd.plotly.v1+json"?: JsonObject;
}

/** The MIME types a `MimeBundle` can carry. */
export type MimeType = keyof MimeBundle;

/** Per-MIME-type metadata, e.g. `{ "image/png": { width: 400 } }` to show a 2× PNG at 400 CSS pixels. */
export type MimeMetadata = Partial<Record<MimeType, JsonObject>>;

/** The content of a Jupyter `display_data` / `update_display_data` message, as sent on the wire. */
export interface DisplayDataContent {
  data: Partial<Record<MimeType, JsonValue>>;
  metadata: MimeMetadata;
  transient: { display_id?: string };
}

/** Sends one display message; `update` makes it an `update_display_data` for `content.transient.display_id`. */
export type DisplayWriter = (content: DisplayDataContent, update: boolean) => void;

/** An output that can be replaced in place: the first display creates it, later ones update it. */
export class DisplayHandle {
  /** Whether this handle's output has been created (later displays are updates). */
  shown = false;
  constructor(readonly id: string) {}

  /** Shows `bundle` in this handle's output (creating it the first time). */
  display(bundle: MimeBundle, metadata?: MimeMetadata): void {
    displayBundle(bundle, this, metadata);
  }
}

/** A new display handle with a random id, for outputs updated in place (progress bars, live loss curves). */
export function newDisplayHandle(): DisplayHandle {
  return new DisplayHandle(randomBytes(8).toString("hex"));
}

const BINARY_TYPES: ReadonlySet<MimeType> = new Set<MimeType>(["image/png", "image/jpeg", "image/gif"]);

/** The wire form of a bundle: binary values base64-encoded, empty entries dropped. */
export function encodeBundle(bundle: MimeBundle): Partial<Record<MimeType, JsonValue>> {
  const data: Partial<Record<MimeType, JsonValue>> = {};
  for (const mime of Object.keys(bundle) as MimeType[]) {
    const value = bundle[mime];
    if (value === undefined) continue;
    if (BINARY_TYPES.has(mime)) {
      const bytes = value as Uint8Array;
      data[mime] = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
    } else {
      data[mime] = value as JsonValue;
    }
  }
  return data;
}

/** The `display_data` content for a bundle (and handle, if the output is to be updated later). */
export function displayContent(bundle: MimeBundle, handle?: DisplayHandle, metadata: MimeMetadata = {}): DisplayDataContent {
  return {
    data: encodeBundle(bundle),
    metadata,
    transient: handle ? { display_id: handle.id } : {},
  };
}

interface TslabJupyterModule {
  lastWriteDisplayData: DisplayWriter | null;
}

const TSLAB_JUPYTER = /[\\/]tslab[\\/]dist[\\/]jupyter\.js$/;
let tslabJupyter: TslabJupyterModule | undefined;

function isTslabJupyter(exports: unknown): exports is TslabJupyterModule {
  return typeof exports === "object" && exports !== null && "lastWriteDisplayData" in exports;
}

/** tslab's `dist/jupyter` module if a tslab kernel has loaded it into this process (never loads it itself). */
function findTslabJupyter(): TslabJupyterModule | undefined {
  if (tslabJupyter !== undefined) return tslabJupyter;
  const cache = createRequire(join(process.cwd(), "noop.js")).cache;
  for (const key of Object.keys(cache)) {
    if (!TSLAB_JUPYTER.test(key)) continue;
    const exports: unknown = cache[key]?.exports;
    if (isTslabJupyter(exports)) {
      tslabJupyter = exports;
      return exports;
    }
  }
  return undefined;
}

/** The writer of the tslab kernel executing this code, or undefined outside a kernel. */
export function kernelWriter(): DisplayWriter | undefined {
  const write = findTslabJupyter()?.lastWriteDisplayData;
  return typeof write === "function" ? write : undefined;
}

/** Whether this code runs inside a tslab Jupyter kernel that is executing a cell. */
export function inKernel(): boolean {
  return kernelWriter() !== undefined;
}

let injected: DisplayWriter | undefined;
let warnedFailure = false;

/**
 * Replaces the writer used by `displayBundle` (tests, or a custom front end); `undefined` restores the default
 * (the tslab kernel's, else printing text/plain). Returns the previous injected writer.
 */
export function setDisplayWriter(writer: DisplayWriter | undefined): DisplayWriter | undefined {
  const previous = injected;
  injected = writer;
  return previous;
}

/** The writer rich displays go to: an injected one, else the kernel's; undefined means "plain text only". */
export function richDisplayWriter(): DisplayWriter | undefined {
  return injected ?? kernelWriter();
}

/** Whether displays reach a rich front end (a kernel or an injected writer) rather than stdout. */
export function richDisplayAvailable(): boolean {
  return richDisplayWriter() !== undefined;
}

/** What a terminal shows for a bundle: its text/plain, else a short description of what it holds. */
export function plainTextOf(bundle: MimeBundle): string {
  const text = bundle["text/plain"];
  if (text !== undefined) return text;
  const kinds = (Object.keys(bundle) as MimeType[]).filter((mime) => bundle[mime] !== undefined);
  return `<display: ${kinds.join(", ") || "empty"}>`;
}

/**
 * Shows a MIME bundle as one output. With a handle, the first call creates the output and later calls replace
 * it in place. Outside a kernel prints the text/plain form to stdout. Never throws because of the front end.
 */
export function displayBundle(bundle: MimeBundle, handle?: DisplayHandle, metadata?: MimeMetadata): void {
  const writer = richDisplayWriter();
  const update = handle?.shown ?? false;
  if (writer !== undefined) {
    try {
      writer(displayContent(bundle, handle, metadata), update);
      if (handle) handle.shown = true;
      return;
    } catch (error) {
      // A broken channel must not break the computation: say so (once) and fall back to text.
      if (!warnedFailure) process.stderr.write(`display failed (${(error as Error).message}); showing text instead\n`);
      warnedFailure = true;
    }
  }
  if (handle) handle.shown = true;
  process.stdout.write(plainTextOf(bundle).replace(/\n?$/, "\n"));
}

/** Options shared by the single-type helpers. */
export interface ShowOptions {
  /** Update this output in place instead of adding a new one. */
  handle?: DisplayHandle;
}

/** Reads a PNG's pixel size from its IHDR chunk (undefined if the bytes are not a PNG). */
export function pngSize(png: Uint8Array): { width: number; height: number } | undefined {
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (png.length < 24 || signature.some((byte, i) => png[i] !== byte)) return undefined;
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** Options of `showPng`. */
export interface ShowPngOptions extends ShowOptions {
  /** Text for front ends without images (and the terminal). */
  alt?: string;
  /** Displayed width in CSS pixels (e.g. half the pixel width for a 2× image). */
  width?: number;
}

/** Shows a PNG (with a text/plain alternative: `alt`, or its size). */
export function showPng(png: Uint8Array, alt?: string | ShowPngOptions): void {
  const options: ShowPngOptions = typeof alt === "string" ? { alt } : (alt ?? {});
  const size = pngSize(png);
  const text = options.alt ?? (size ? `<PNG image ${size.width}×${size.height}>` : `<PNG image, ${png.length} bytes>`);
  const metadata: MimeMetadata = options.width !== undefined ? { "image/png": { width: options.width } } : {};
  displayBundle({ "image/png": png, "text/plain": text }, options.handle, metadata);
}

/** Shows HTML (with a text/plain alternative: `text`, or the HTML with its tags stripped). */
export function showHtml(html: string, options: ShowOptions & { text?: string } = {}): void {
  const text = options.text ?? htmlToText(html);
  displayBundle({ "text/html": html, "text/plain": text }, options.handle);
}

/** Shows plain text as a display output (unlike console.log, it can be updated in place through a handle). */
export function showText(text: string, options: ShowOptions = {}): void {
  displayBundle({ "text/plain": text }, options.handle);
}

/** Shows Markdown (with its source as the text/plain alternative). */
export function showMarkdown(markdown: string, options: ShowOptions = {}): void {
  displayBundle({ "text/markdown": markdown, "text/plain": markdown }, options.handle);
}

const ENTITIES: Readonly<Record<string, string>> = { amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'", nbsp: " " };

/** A rough plain-text rendering of HTML: tags removed, common entities decoded, whitespace collapsed. */
export function htmlToText(html: string): string {
  return html
    .replace(/<(script|style)[\s\S]*?<\/\1>/gi, "")
    .replace(/<br\s*\/?>|<\/(p|div|tr|li|h[1-6])>/gi, "\n")
    .replace(/<[^>]*>/g, "")
    .replace(/&(amp|lt|gt|quot|#39|nbsp);/g, (_, name: string) => ENTITIES[name] ?? "")
    .replace(/[ \t]+/g, " ")
    .replace(/\n\s*\n+/g, "\n")
    .trim();
}
