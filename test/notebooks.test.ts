// The notebooks under real Jupyter: nbclient + our tslab kernel, as `npm run notebooks` runs them.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { projectRoot } from "../lib/util/project";
import { runDir } from "../lib/run/files";
import { executeNotebook, joinText, jupyterPython, notebookJson, outputsOf, readNotebook, streamText } from "./notebook-helpers";

const run = `test-nb-${process.pid}`;
const scratch = join(projectRoot(), "test", "output", run);
afterAll(() => {
  if (process.env.KEEP_TEST_OUTPUT) return;
  rmSync(runDir(run), { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

describe("notebooks under real Jupyter", () => {
  it("every lib module and every runtime dependency imports cleanly in a tslab cell", () => {
    mkdirSync(scratch, { recursive: true });
    const modules = readdirSync(join(projectRoot(), "lib"), { recursive: true, encoding: "utf8" })
      .filter((f) => f.endsWith(".ts"))
      .map((f) => f.slice(0, -".ts".length));
    const cells = [
      modules.map((m, i) => `import * as m${i} from "./lib/${m}";`).join("\n") +
        `\nconsole.log("LIB " + [${modules.map((_, i) => `Object.keys(m${i}).length`).join(", ")}].every((n) => n > 0));`,
      [
        `import sharp from "sharp";`,
        `import * as tf from "@tensorflow/tfjs";`,
        `import * as wasm from "@tensorflow/tfjs-backend-wasm";`,
        `import * as ss from "simple-statistics";`,
        `import * as tslab from "tslab";`,
        `import { existsSync } from "node:fs";`,
        // plotly.js-dist is a browser bundle: the export embeds its file; check that it is there.
        `const plotly = require.resolve("plotly.js-dist");`,
        `console.log("DEPS", typeof sharp, tf.version.tfjs, typeof wasm.setWasmPaths, ss.mean([1, 2, 3]), typeof tslab.display.png, existsSync(plotly));`,
      ].join("\n"),
    ];
    const source = join(scratch, "imports.ipynb");
    writeFileSync(source, notebookJson(cells));
    const result = executeNotebook(source, join(scratch, "imports.out.ipynb"));
    expect(result.status, result.output).toBe(0);
    const text = streamText(readNotebook(join(scratch, "imports.out.ipynb")));
    expect(text).toContain("LIB true");
    expect(text).toMatch(/DEPS function 4\.\d+\.\d+ function 2 function true/);
  });

  it("figures, tables and progress bars reach Jupyter as multi-MIME outputs that survive nbconvert's exports", () => {
    mkdirSync(scratch, { recursive: true });
    const source = join(scratch, "display.ipynb");
    writeFileSync(source, notebookJson([
      [
        `import { showFigure } from "./lib/display/figures";`,
        `await showFigure({ data: [{ type: "histogram", x: [1, 2, 2, 3, 3, 3], xbins: { start: 0.5, end: 7.5, size: 1 }, name: "sparse" }],`,
        `  layout: { title: "Ratings", xaxis: { title: "rating" }, yaxis: { title: "count" } } });`,
      ].join("\n"),
      `import { showTable } from "./lib/display/html-table";\nshowTable({ mean: { sparse: 4.4375, dense: 3.25 } }, { caption: "Means" });`,
      [
        `import { ProgressBar } from "./lib/display/progress";`,
        `const bar = new ProgressBar({ total: 5, desc: "Training", minInterval: 0 });`,
        `for (let i = 0; i < 5; i++) { await new Promise((r) => setTimeout(r, 20)); bar.update(1, { loss: 1 / (i + 1) }); }`,
        `bar.close();`,
      ].join("\n"),
    ]));
    const target = join(scratch, "display.out.ipynb");
    const result = executeNotebook(source, target);
    expect(result.status, result.output).toBe(0);
    const nb = readNotebook(target);
    const [figure, table, progress] = nb.cells.map((c) => c.outputs ?? []);
    expect(figure).toHaveLength(1);
    expect(Object.keys(figure[0].data ?? {}).sort()).toEqual(["application/vnd.plotly.v1+json", "image/png", "text/plain"]);
    expect(Object.keys(table[0].data ?? {}).sort()).toEqual(["text/html", "text/plain"]);
    expect(joinText(table[0].data?.["text/html"] as string | string[])).toMatch(/<table[\s\S]*4\.4375[\s\S]*<\/table>/);
    // The progress bar is ONE output updated in place, ending on its final state.
    expect(progress).toHaveLength(1);
    expect(joinText(progress[0].data?.["text/plain"] as string | string[])).toMatch(/^Training: 100%\|█+\| 5\/5 \[.*loss=0\.2/);
    const python = jupyterPython();
    for (const to of ["markdown", "html"]) {
      const r = spawnSync(python, ["-m", "nbconvert", "--to", to, "--output-dir", scratch, target], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
    }
    const markdown = readFileSync(join(scratch, "display.out.md"), "utf8");
    expect(markdown).toMatch(/!\[png\]\(display\.out_files\/display\.out_0_0\.png\)/);
    expect(existsSync(join(scratch, "display.out_files", "display.out_0_0.png"))).toBe(true);
    const html = readFileSync(join(scratch, "display.out.html"), "utf8");
    expect(html).toContain("data:image/png;base64,");
    expect(html).toMatch(/<table[\s\S]*4\.4375/);
  });

  it("a failing cell stops the notebook, names the cell and its error, and keeps the executed copy", () => {
    mkdirSync(scratch, { recursive: true });
    const source = join(scratch, "fails.ipynb");
    writeFileSync(source, notebookJson([`console.log("before");`, `throw new Error("boom in cell two");`, `console.log("never");`]));
    const target = join(scratch, "fails.out.ipynb");
    const result = executeNotebook(source, target);
    expect(result.status).toBe(1);
    expect(result.output).toContain("boom in cell two");
    expect(result.output).toContain(`throw new Error("boom in cell two");`);
    const nb = readNotebook(target);
    expect(joinText(nb.cells[0].outputs?.[0]?.text)).toContain("before");
    // tslab reports a cell's exception on stderr (and an "error" status to Jupyter), not as an error output.
    expect(nb.cells[1].outputs?.some((o) => o.name === "stderr" && joinText(o.text).includes("Error: boom in cell two"))).toBe(true);
    expect(nb.cells[2].outputs ?? []).toEqual([]);
  });

  it("01-download runs through `npm run notebooks` on a tiny synthetic dataset and shows the 4×4 grid", async () => {
    const r = spawnSync(
      "npx",
      ["tsx", "scripts/run-notebooks.ts", "--run", run, "--only", "01",
        "--set", "dataset=synthetic", "--set", "synthetic.count=40", "--set", "synthetic.identities=5", "--set", "imageSize=64"],
      { cwd: projectRoot(), encoding: "utf8", env: { ...process.env, KAGGLE_USERNAME: "", KAGGLE_KEY: "" } },
    );
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const nb = readNotebook(join(runDir(run), "notebooks", "01-download.ipynb"));
    const outputs = outputsOf(nb);
    expect(outputs.filter((o) => o.output_type === "error" || o.name === "stderr")).toEqual([]);
    const text = streamText(nb);
    // The first cell: versions and backend.
    expect(joinText(nb.cells.find((c) => c.cell_type === "code")?.outputs?.map((o) => joinText(o.text)))).toMatch(
      /01-download · run "test-nb-\d+"[\s\S]*@tensorflow\/tfjs\s+4\.[\s\S]*sharp[\s\S]*TF\.js backend: (wasm|tensorflow|cpu)/,
    );
    expect(text).toContain("40 images in");
    // The post's grid: 16 images at 64 px, nrow 4, padding 2 → 266 px wide, plus a title band above.
    const pngs = outputs.flatMap((o) => (o.data && typeof o.data["image/png"] === "string" ? [o.data["image/png"] as string] : []));
    expect(pngs.length).toBeGreaterThanOrEqual(2);
    const grid = await sharp(Buffer.from(pngs[0], "base64")).metadata();
    expect(grid.width).toBe(4 * (64 + 2) + 2);
    expect(grid.height).toBeGreaterThan(4 * (64 + 2) + 2);
    // The attribute table is an HTML table with a plain-text twin.
    expect(outputs.some((o) => typeof o.data?.["text/html"] === "string" || Array.isArray(o.data?.["text/html"]))).toBe(true);
    // Parameters came from the run's config, not from the cells; paths shown are relative to the project.
    expect(text).not.toContain(projectRoot());
  });
  it("07-publish exports the run's executed notebooks (without itself) as a post, inside the series", () => {
    const r = spawnSync("npx", ["tsx", "scripts/run-notebooks.ts", "--run", run, "--only", "07"], { cwd: projectRoot(), encoding: "utf8" });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const text = streamText(readNotebook(join(runDir(run), "notebooks", "07-publish.ipynb")));
    const md = /Markdown post: (\S+\.md)/.exec(text)?.[1];
    expect(md).toBeDefined();
    const post = readFileSync(join(projectRoot(), md as string), "utf8");
    expect(post).toMatch(/^---\ntitle: 'Sparse Autoencoder'/);
    expect(post).toContain("## 01 · Download and load the dataset");
    expect(post).not.toContain("07 · Publish");
    expect(post).toMatch(/!\[[^\]]*\]\(\/images\/posts\/\d{4}\/\d{2}\/sparse-autoencoder\/output_\d+_\d+\.png\)/);
  });
});
