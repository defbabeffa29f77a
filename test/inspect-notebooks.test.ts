// Notebooks 05-inspect and 06-blind-test executed headless through Jupyter on a tiny synthetic dataset, with
// fabricated face vectors (informative about the attributes) and a real SAE file, and the automatic rater.

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../lib/kernels/backend";
import { prepareDataset, openRunDataset } from "../lib/data/datasets";
import { RUN_ENV } from "../lib/run/config";
import { writeNpy } from "../lib/formats/npy";
import { prepareRunConfig } from "../lib/run/notebook-runner";
import { projectRoot } from "../lib/util/project";
import { runDir, runFiles } from "../lib/run/files";
import { createResNet18, saveResNet18 } from "../lib/model/resnet18";
import { createSae, resolveSaeTraining, saveSae } from "../lib/sae/sae";
import { Rng } from "../lib/util/random";
import { describeColumns as describeTable } from "../lib/display/html-table";
import { tTestInd } from "../lib/util/statistics";
import { blindTestPaths, BlindSession, ratingsByKind } from "../lib/blind-test/session";
import { loadTopActivations } from "../lib/inspect/top-activations";
import { executeNotebook, joinText, outputsOf, readNotebook, streamText } from "./notebook-helpers";

const run = `test-inspect-${process.pid}`;
const notebooks = join(projectRoot(), "notebooks");
const out = (name: string): string => join(runDir(run), "notebooks", name);

beforeAll(async () => {
  const config = prepareRunConfig(run, ["dataset=synthetic", "synthetic.count=64", "synthetic.identities=8", "imageSize=32", "inspect.features=0-3"]);
  mkdirSync(runFiles(run).notebooks, { recursive: true });
  await prepareDataset(config);
  const dataset = await openRunDataset(config);
  const table = dataset.attributes;
  if (table === null) throw new Error("the synthetic dataset has attribute labels");
  // Face vectors: each attribute pushes along its own random direction, plus noise.
  const n = dataset.count;
  const d = 512;
  const A = table.names.length;
  const rng = new Rng(42);
  const directions = Array.from({ length: A }, () => Float32Array.from({ length: d }, () => rng.uniform(-1, 1)));
  const vectors = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) vectors[i * d + j] = 0.3 * rng.uniform(-1, 1);
    for (let a = 0; a < A; a++) {
      const v = table.values[i * A + a];
      for (let j = 0; j < d; j++) vectors[i * d + j] += v * directions[a][j];
    }
  }
  await writeNpy(runFiles(run).faceVectors, vectors, [n, d]);
  writeFileSync(join(runDir(run), "face_vectors.files.txt"), dataset.files.join("\n") + "\n");
  await initBackend("cpu");
  const sae = createSae({ preset: "post", architecture: "relu", inputDim: d, dictionarySize: 512, training: resolveSaeTraining(config.sae, 0) });
  await saveSae(sae, runDir(run));
  sae.dispose();
  // A ResNet18 with random weights stands in for the fine-tuned one (rotation consistency embeds with it).
  const resnet = createResNet18();
  await saveResNet18(resnet, join(runDir(run), "resnet18.safetensors"));
  resnet.dispose();
}, 300_000);

afterAll(() => {
  if (!process.env.KEEP_TEST_OUTPUT) rmSync(runDir(run), { recursive: true, force: true });
});

function outputsWith(path: string, mime: string): number {
  return outputsOf(readNotebook(path)).filter((o) => o.data?.[mime] !== undefined).length;
}

describe("notebooks 05 and 06 on a tiny dataset", () => {
  it("05-inspect shows dense and sparse grids side by side, histograms and the summary, and saves every feature's top 16", () => {
    const result = executeNotebook(join(notebooks, "05-inspect.ipynb"), out("05-inspect.ipynb"), { [RUN_ENV]: run });
    expect(result.status, result.output).toBe(0);
    const nb = readNotebook(out("05-inspect.ipynb"));
    expect(outputsOf(nb).filter((o) => o.output_type === "error")).toEqual([]);
    // 4 features: one side-by-side PNG and one histogram figure each.
    expect(outputsWith(out("05-inspect.ipynb"), "application/vnd.plotly.v1+json")).toBe(4);
    expect(outputsWith(out("05-inspect.ipynb"), "image/png")).toBe(8);
    const html = outputsOf(nb).map((o) => joinText(o.data?.["text/html"] as string | string[] | undefined)).join("");
    expect(html).toMatch(/Dense dimensions vs SAE features[\s\S]*dead[\s\S]*AUROC (&gt;|>) 0\.9[\s\S]*dense dimensions[\s\S]*SAE features/);
    expect(streamText(nb)).toContain("64 face vectors of 512 dimensions");
    expect(streamText(nb)).toContain("64 faces and their rotated copies embedded");
    expect(html).toMatch(/rotated r median/);
    const tops = loadTopActivations(join(runDir(run), "top_activations.json"));
    expect(tops.dense.tops).toHaveLength(512);
    expect(tops.sparse.tops).toHaveLength(512);
    expect(tops.dense.tops[7].rows).toHaveLength(16);
    expect(new Set(tops.dense.tops[7].rows).size).toBe(16);
  });

  it("06-blind-test rates every grid automatically, unblinds, and reports the post's analysis and more; the key stays apart", () => {
    const result = executeNotebook(join(notebooks, "06-blind-test.ipynb"), out("06-blind-test.ipynb"), { [RUN_ENV]: run });
    expect(result.status, result.output).toBe(0);
    const nb = readNotebook(out("06-blind-test.ipynb"));
    const text = streamText(nb);
    expect(text).toContain("32 grids (features 16-31, dense and sparse), 0 rated so far");
    expect(text).toContain("automatic rater: 32 grids rated now, 32 of 32 in all");
    const paths = blindTestPaths(runDir(run));
    const lines = readFileSync(paths.ratings, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { id: string; rater: string });
    expect(lines).toHaveLength(32);
    expect(new Set(lines.map((l) => l.id)).size).toBe(32);
    // The notebook's numbers are the ratings' numbers.
    const ratings = ratingsByKind(BlindSession.resume(runDir(run)).unblind());
    const t = tTestInd(ratings.sparse, ratings.dense);
    const expected = Number.isNaN(t.statistic) ? "t-stat: NaN" : `t-stat: ${t.statistic.toFixed(4)}, pvalue: ${t.pvalue.toFixed(4)}`;
    expect(text).toContain(expected);
    const figure = outputsOf(nb).find((o) => o.data?.["application/vnd.plotly.v1+json"] !== undefined);
    const plotly = figure?.data?.["application/vnd.plotly.v1+json"] as { data: { xbins: object; opacity: number; x: number[] }[]; layout: { barmode: string } };
    expect(plotly.layout.barmode).toBe("overlay");
    for (const trace of plotly.data) {
      expect(trace.xbins).toEqual({ start: 0.5, end: 7.5, size: 1 });
      expect(trace.opacity).toBe(0.6);
    }
    expect(plotly.data.map((tr) => tr.x)).toEqual([ratings.sparse, ratings.dense]);
    const html = outputsOf(nb).map((o) => joinText(o.data?.["text/html"] as string | string[] | undefined)).join("");
    const mean = describeTable({ sparse: ratings.sparse, dense: ratings.dense }).mean;
    expect(html).toContain(`${(mean.sparse as number).toFixed(6)}`);
    expect(html).toMatch(/Mann–Whitney U[\s\S]*Cohen's d|Mann–Whitney U[\s\S]*Cohen&#39;s d/);
    // Nothing before the unblinding cell says which grid is which kind.
    const cellsBefore = nb.cells.slice(0, nb.cells.findIndex((c) => joinText(c.source).includes("session.unblind()")));
    const earlyOutputs = JSON.stringify(cellsBefore.flatMap((c) => c.outputs ?? []));
    expect(earlyOutputs).not.toMatch(/dense:|sparse:|"kind"/);

    expect(existsSync(paths.key)).toBe(true);
  });
});
