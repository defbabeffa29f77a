import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import {
  displayBundle,
  encodeBundle,
  htmlToText,
  inKernel,
  kernelWriter,
  newDisplayHandle,
  pngSize,
  richDisplayAvailable,
  setDisplayWriter,
  showHtml,
  showMarkdown,
  showPng,
  showText,
  type DisplayDataContent,
} from "../lib/display/notebook-display";

interface Sent {
  content: DisplayDataContent;
  update: boolean;
}

function capture(): Sent[] {
  const sent: Sent[] = [];
  setDisplayWriter((content, update) => sent.push({ content, update }));
  return sent;
}

function captureStdout(): { text: () => string; restore: () => void } {
  const chunks: string[] = [];
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString());
    return true;
  });
  return { text: () => chunks.join(""), restore: () => spy.mockRestore() };
}

const tinyPng = () => sharp({ create: { width: 5, height: 3, channels: 3, background: "#ff0000" } }).png().toBuffer();

afterEach(() => setDisplayWriter(undefined));

describe("bundles", () => {
  it("base64-encodes binary types and leaves text and JSON as they are", async () => {
    const png = await tinyPng();
    const data = encodeBundle({
      "image/png": png,
      "text/plain": "red",
      "application/vnd.plotly.v1+json": { data: [], layout: { title: { text: "t" } } },
      "text/html": undefined,
    });
    expect(Object.keys(data).sort()).toEqual(["application/vnd.plotly.v1+json", "image/png", "text/plain"]);
    expect(Buffer.from(data["image/png"] as string, "base64").equals(png)).toBe(true);
    expect(data["application/vnd.plotly.v1+json"]).toEqual({ data: [], layout: { title: { text: "t" } } });
    // A view into a larger buffer encodes only its own bytes.
    const big = new Uint8Array([9, 9, 1, 2, 3, 9]);
    expect(encodeBundle({ "image/jpeg": big.subarray(2, 5) })["image/jpeg"]).toBe(Buffer.from([1, 2, 3]).toString("base64"));
  });

  it("sends one display_data per call, with metadata", () => {
    const sent = capture();
    displayBundle({ "text/plain": "a", "text/html": "<b>a</b>" }, undefined, { "image/png": { width: 100 } });
    expect(sent).toEqual([
      {
        content: { data: { "text/plain": "a", "text/html": "<b>a</b>" }, metadata: { "image/png": { width: 100 } }, transient: {} },
        update: false,
      },
    ]);
  });

  it("updates one output in place through a handle", () => {
    const sent = capture();
    const handle = newDisplayHandle();
    const other = newDisplayHandle();
    expect(handle.id).not.toBe(other.id);
    handle.display({ "text/plain": "step 1" });
    showText("step 2", { handle });
    showText("elsewhere", { handle: other });
    showText("step 3", { handle });
    expect(sent.map((s) => [s.content.transient.display_id, s.update, s.content.data["text/plain"]])).toEqual([
      [handle.id, false, "step 1"],
      [handle.id, true, "step 2"],
      [other.id, false, "elsewhere"],
      [handle.id, true, "step 3"],
    ]);
  });

  it("shows PNG, HTML and Markdown with a text alternative", async () => {
    const sent = capture();
    const png = await tinyPng();
    showPng(png);
    showPng(png, { alt: "a red box", width: 10 });
    showHtml("<p>Tom &amp; <i>Jerry</i></p><p>2 &lt; 3</p>");
    showMarkdown("**bold**");
    expect(sent[0].content.data["text/plain"]).toBe("<PNG image 5×3>");
    expect(sent[1].content.data["text/plain"]).toBe("a red box");
    expect(sent[1].content.metadata).toEqual({ "image/png": { width: 10 } });
    expect(sent[2].content.data).toEqual({ "text/html": "<p>Tom &amp; <i>Jerry</i></p><p>2 &lt; 3</p>", "text/plain": "Tom & Jerry\n2 < 3" });
    expect(sent[3].content.data).toEqual({ "text/markdown": "**bold**", "text/plain": "**bold**" });
    expect(pngSize(png)).toEqual({ width: 5, height: 3 });
    expect(pngSize(new Uint8Array([1, 2, 3]))).toBeUndefined();
    expect(htmlToText("<style>p{}</style><table><tr><td>a</td></tr><tr><td>b</td></tr></table>")).toBe("a\nb");
  });
});

describe("outside a kernel", () => {
  it("is detected as such", () => {
    expect(inKernel()).toBe(false);
    expect(kernelWriter()).toBeUndefined();
    expect(richDisplayAvailable()).toBe(false);
  });

  it("prints the text/plain form to stdout", async () => {
    const out = captureStdout();
    try {
      displayBundle({ "text/plain": "Figure: 2 traces", "image/png": await tinyPng() });
      displayBundle({ "image/png": await tinyPng() });
      showText("done\n");
    } finally {
      out.restore();
    }
    expect(out.text()).toBe("Figure: 2 traces\n<display: image/png>\ndone\n");
  });

  it("falls back to text when the writer fails, without throwing", () => {
    setDisplayWriter(() => {
      throw new Error("socket closed");
    });
    const out = captureStdout();
    const warnings: string[] = [];
    const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      warnings.push(String(chunk));
      return true;
    });
    try {
      expect(() => showText("still here")).not.toThrow();
      expect(() => showText("and here")).not.toThrow();
    } finally {
      out.restore();
      err.mockRestore();
    }
    expect(out.text()).toBe("still here\nand here\n");
    expect(warnings).toEqual(["display failed (socket closed); showing text instead\n"]);
  });
});

describe("inside a tslab kernel", () => {
  // tslab's kernel loads node_modules/tslab/dist/jupyter.js and sets its lastWriteDisplayData while a cell runs.
  // A stand-in module at a path of that shape, loaded into Node's module cache, is what the detection sees.
  const dir = mkdtempSync(join(tmpdir(), "fake-tslab-"));
  const file = join(dir, "node_modules", "tslab", "dist", "jupyter.js");
  mkdirSync(join(dir, "node_modules", "tslab", "dist"), { recursive: true });
  writeFileSync(file, "exports.lastWriteDisplayData = null;\n");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("sends bundles through tslab's lastWriteDisplayData while a cell executes", () => {
    const jupyter = createRequire(file)(file) as { lastWriteDisplayData: ((c: DisplayDataContent, u: boolean) => void) | null };
    expect(inKernel()).toBe(false); // loaded, but no cell executing
    const sent: Sent[] = [];
    jupyter.lastWriteDisplayData = (content, update) => sent.push({ content, update });
    try {
      expect(inKernel()).toBe(true);
      const handle = newDisplayHandle();
      showText("a", { handle });
      showText("b", { handle });
      expect(sent.map((s) => [s.update, s.content.data["text/plain"], s.content.transient.display_id])).toEqual([
        [false, "a", handle.id],
        [true, "b", handle.id],
      ]);
      // An injected writer takes precedence (tests of code that runs in notebooks).
      const injected = capture();
      showText("c");
      expect(injected).toHaveLength(1);
      expect(sent).toHaveLength(2);
    } finally {
      jupyter.lastWriteDisplayData = null;
    }
    expect(inKernel()).toBe(false);
  });
});
