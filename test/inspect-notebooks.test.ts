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
import { loadFindings } from "../lib/run/findings";
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
  // The recommended SAE beside the post's, as notebook 04 leaves it (untrained here: the notebooks only read it).
  const recommended = { ...config.sae, preset: "recommended" as const, architecture: null };
  const beside = createSae({ preset: "recommended", architecture: "topk", k: 32, inputDim: d, dictionarySize: 512, training: resolveSaeTraining(recommended, 0) });
  await saveSae(beside, runFiles(run).saeBeside.dir);
  beside.dispose();
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
  it("05-inspect shows three kinds side by side with chance rows, distinct faces, factor recovery and what it found; saves every feature's top faces", () => {
    const result = executeNotebook(join(notebooks, "05-inspect.ipynb"), out("05-inspect.ipynb"), { [RUN_ENV]: run });
    expect(result.status, result.output).toBe(0);
    const nb = readNotebook(out("05-inspect.ipynb"));
    expect(outputsOf(nb).filter((o) => o.output_type === "error")).toEqual([]);
    // 4 features: one side-by-side PNG and one histogram figure each.
    expect(outputsWith(out("05-inspect.ipynb"), "application/vnd.plotly.v1+json")).toBe(4);
    expect(outputsWith(out("05-inspect.ipynb"), "image/png")).toBe(8);
    const html = outputsOf(nb).map((o) => joinText(o.data?.["text/html"] as string | string[] | undefined)).join("").replace(/&#39;/g, "'");
    expect(html).toMatch(/Dense dimensions vs SAE features, and chance[\s\S]*dead[\s\S]*AUROC (&gt;|>) 0\.9[\s\S]*top-16 lift median[\s\S]*precision median[\s\S]*recall median/);
    expect(html).toMatch(/dense dimensions[\s\S]*the post's SAE[\s\S]*the recommended SAE[\s\S]*chance: random scores[\s\S]*chance: random sparse, as dense as the post's SAE[\s\S]*chance: random sparse, as dense as the recommended SAE/);
    expect(html).toMatch(/Distinct faces in the top-16 lists[\s\S]*distinct faces[\s\S]*rows normalised \(the post's\)[\s\S]*raw activations[\s\S]*chance: random faces/);
    expect(html).toMatch(/Drawn factors recovered by a single feature[\s\S]*recovered \(AUC (&gt;|>) 0\.9\)/);
    expect(html).toMatch(/Each factor's best feature[\s\S]*eyeglasses/);
    expect(streamText(nb)).toContain("64 face vectors of 512 dimensions");
    expect(streamText(nb)).toContain("64 faces and their rotated copies embedded");
    expect(html).toMatch(/rotated r median/);
    const markdown = outputsOf(nb).map((o) => joinText(o.data?.["text/markdown"] as string | string[] | undefined)).join("");
    expect(markdown).toMatch(/The top-16 faces of the post's SAE's features share/);
    expect(markdown).toMatch(/Of the \d+ yes\/no targets made from the drawn factors/);
    expect(loadFindings(run, "05-inspect")?.sentences.join(" ")).toBe(markdown);
    const tops = loadTopActivations(join(runDir(run), "top_activations.json"));
    expect(tops.dense.tops).toHaveLength(512);
    expect(tops.sparse.tops).toHaveLength(512);
    expect(tops["sparse-recommended"]?.tops).toHaveLength(512);
    // Only faces that activate a feature are listed.
    for (const record of [tops.dense, tops.sparse]) for (const top of record.tops) for (const v of top.values) expect(v).toBeGreaterThan(0);
    expect(tops.dense.tops[7].rows.length).toBeLessThanOrEqual(16);
    expect(new Set(tops.dense.tops[7].rows).size).toBe(tops.dense.tops[7].rows.length);
  });

  it("06-blind-test rates all three kinds automatically in one session, unblinds, and reports the post's analysis, chance and what it found; the key stays apart", () => {
    const result = executeNotebook(join(notebooks, "06-blind-test.ipynb"), out("06-blind-test.ipynb"), { [RUN_ENV]: run });
    expect(result.status, result.output).toBe(0);
    const nb = readNotebook(out("06-blind-test.ipynb"));
    const text = streamText(nb);
    expect(text).toContain("48 grids (features 16-31; kinds dense, sparse, sparse-recommended), 0 rated so far");
    expect(text).toContain("automatic rater: 48 grids rated now, 48 of 48 in all");
    const paths = blindTestPaths(runDir(run));
    const lines = readFileSync(paths.ratings, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { id: string; rater: string });
    expect(lines).toHaveLength(48);
    expect(new Set(lines.map((l) => l.id)).size).toBe(48);
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
    expect(plotly.data.map((tr) => tr.x)).toEqual([ratings.sparse, ratings.dense, ratings["sparse-recommended"]]);
    const html = outputsOf(nb).map((o) => joinText(o.data?.["text/html"] as string | string[] | undefined)).join("");
    const mean = describeTable({ sparse: ratings.sparse, dense: ratings.dense }).mean;
    expect(html).toContain(`${(mean.sparse as number).toFixed(6)}`);
    expect(html).toMatch(/Ratings of every kind, and of random faces \(chance\)[\s\S]*chance: random faces/);
    expect(html).toMatch(/Every pair of kinds compared[\s\S]*Mann–Whitney[\s\S]*Cohen(&#39;|')s d[\s\S]*grids for 80 % power/);
    const findings = loadFindings(run, "06-blind-test");
    expect(findings?.sentences[0]).toMatch(/^The post's SAE's features are rated (higher than|lower than|no differently from) dense dimensions \(mean/);
    expect(findings?.measures["sparse-recommended ratings"]).toBe(16);
    // Nothing before the unblinding cell says which grid is which kind.
    const cellsBefore = nb.cells.slice(0, nb.cells.findIndex((c) => joinText(c.source).includes("session.unblind()")));
    const earlyOutputs = JSON.stringify(cellsBefore.flatMap((c) => c.outputs ?? []));
    expect(earlyOutputs).not.toMatch(/dense:|sparse:|"kind"/);

    expect(existsSync(paths.key)).toBe(true);
  });
});
