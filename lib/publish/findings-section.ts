// The exported post's last section, "Findings": the post's numbers beside this run's (the blind test's ratings, t and
// p, and the measures beyond the post), what reproduced and what did not, what each notebook found, and the limits
// of this run (the weights fine-tuning started from, image size, steps, who rated). It is composed from the
// findings every notebook saved (runs/<run>/findings/, lib/run/findings); a notebook without a findings file is
// "not measured", never guessed.

import { describeInitialWeights, recordedInitialWeights } from "../model/initial-weights";
import { existsSync, readFileSync } from "node:fs";
import type { RunConfig } from "../run/config";
import { runFiles, type FindingsNotebook } from "../run/files";
import { loadFindings, percent, pValue, type Findings, type Measure } from "../run/findings";
import { listCheckpoints, readCheckpointState } from "../model/checkpoints";
import { POST_RESULT } from "../blind-test/analysis";

const NOT_MEASURED = "not measured";

/** Each notebook's findings (null where it saved none). */
export type RunFindings = Readonly<Record<FindingsNotebook, Findings | null>>;

export function loadRunFindings(run: string): RunFindings {
  return {
    "02-finetune": loadFindings(run, "02-finetune"),
    "03-embed": loadFindings(run, "03-embed"),
    "04-sae": loadFindings(run, "04-sae"),
    "05-inspect": loadFindings(run, "05-inspect"),
    "06-blind-test": loadFindings(run, "06-blind-test"),
  };
}

/** What the Findings section needs to know about the run besides its findings. */
export interface RunFacts {
  readonly dataset: string;
  readonly faces: number | null;
  readonly imageSize: number;
  /** What fine-tuning started from, in words. */
  readonly weights: string;
  /** Fine-tuning steps taken (null: not recorded). */
  readonly finetuneSteps: number | null;
  readonly rater: "auto" | "human";
}

/** The run's facts from its config, dataset record, notebook 02's findings or checkpoints. */
export function runFacts(config: RunConfig, findings: RunFindings): RunFacts {
  const files = runFiles(config.run);
  let dataset = config.dataset;
  let faces: number | null = null;
  if (existsSync(files.dataset)) {
    const record = JSON.parse(readFileSync(files.dataset, "utf8")) as { kind?: string; images?: number };
    dataset = record.kind ?? dataset;
    faces = typeof record.images === "number" ? record.images : null;
  }
  const finetune = findings["02-finetune"]?.measures ?? {};
  const recordedWeights = finetune["initial weights"];
  const recorded = recordedInitialWeights(config.run);
  const weights =
    typeof recordedWeights === "string"
      ? recordedWeights
      : recorded !== null
        ? describeInitialWeights(recorded)
        : ["", "random"].includes(config.finetune.weights)
          ? "torchvision's random initialisation, not the post's ImageNet weights"
          : `finetune.weights=${config.finetune.weights} (as configured: notebook 02 did not record what it loaded)`;
  const recordedSteps = finetune["steps"];
  const latest = listCheckpoints(files.checkpoints).at(-1);
  const finetuneSteps = typeof recordedSteps === "number" ? recordedSteps : latest === undefined ? null : readCheckpointState(latest.path).step;
  return { dataset, faces, imageSize: config.imageSize, weights, finetuneSteps, rater: config.blindTest.rater };
}

const num = (m: Measure | undefined, digits = 2): string => (typeof m === "number" && Number.isFinite(m) ? m.toFixed(digits) : NOT_MEASURED);
const pct = (m: Measure | undefined): string => (typeof m === "number" && Number.isFinite(m) ? percent(m) : NOT_MEASURED);
const cell = (text: string): string => text.replace(/\|/g, "\\|");

/** The table of the post's numbers beside this run's. */
export function comparisonRows(f: RunFindings, facts: RunFacts): [string, string, string][] {
  const blind = f["06-blind-test"]?.measures ?? {};
  const sae = f["04-sae"]?.measures ?? {};
  const inspect = f["05-inspect"]?.measures ?? {};
  const p = blind["post test p"];
  const sparseLabel = typeof sae["sparse label"] === "string" ? sae["sparse label"] : "the run's SAE";
  const recLabel = typeof sae["sparse-recommended label"] === "string" ? sae["sparse-recommended label"] : null;
  const rows: [string, string, string][] = [
    ["blind test: mean rating of the post's SAE's features", POST_RESULT.sparseMean.toFixed(2), num(blind["sparse mean rating"])],
    ["blind test: mean rating of dense dimensions", POST_RESULT.denseMean.toFixed(2), num(blind["dense mean rating"])],
    ["blind test: Student's t (sparse − dense)", String(POST_RESULT.t), num(blind["post test t"], 4)],
    ["blind test: p", String(POST_RESULT.p), typeof p === "number" && Number.isFinite(p) ? pValue(p) : NOT_MEASURED],
    ["blind test: who rated", "the author, by eye", facts.rater === "auto" ? "the automatic rater (labelled attributes)" : "a person"],
    ["blind test: random faces (chance)", "not measured", num(blind["chance mean rating"])],
    [`${sparseLabel}: explained variance`, "not reported", pct(sae["sparse explained variance"])],
    [`${sparseLabel}: L0 (share of features)`, "not reported", pct(sae["sparse L0 share"])],
  ];
  if (recLabel !== null) {
    rows.push([`${recLabel}: explained variance (held-out faces)`, "—", pct(sae["sparse-recommended explained variance"])]);
    rows.push([`${recLabel}: L0 (share of features)`, "—", pct(sae["sparse-recommended L0 share"])]);
    rows.push([`${recLabel}: mean blind-test rating`, "—", num(blind["sparse-recommended mean rating"])]);
  }
  rows.push(["top-16 lift median: dense dimensions / random scores", "—", `${num(inspect["dense lift median"])} / ${num(inspect["random lift median"])}`]);
  for (const label of [sparseLabel, recLabel]) {
    if (label === null) continue;
    rows.push([`top-16 lift median: ${label} / random sparse`, "—", `${num(inspect[`${label} lift median`])} / ${num(inspect[`${label} chance lift median`])}`]);
  }
  const targets = inspect["factor targets"];
  if (typeof targets === "number") {
    const recovered = Object.entries(inspect).filter(([key]) => key.endsWith(" factors recovered")).map(([key, v]) => `${key.replace(" factors recovered", "")} ${num(v, 0)}`);
    rows.push([`drawn factors recovered (AUROC > 0.9) of ${targets}`, "—", recovered.join(", ")]);
  } else rows.push(["drawn factors recovered", "—", `${NOT_MEASURED} (CelebA records no drawn factors)`]);
  return rows;
}

/** What reproduced and what did not, from the blind test's verdict and notebook 04's measures. */
export function reproductionLines(f: RunFindings): string[] {
  const blind = f["06-blind-test"]?.measures;
  const sae = f["04-sae"]?.measures;
  const lines: string[] = [];
  const verdict = blind?.["post test verdict"];
  if (verdict === undefined || verdict === null || verdict === "not measured") lines.push(`The post's blind test (its SAE's features against dense dimensions): ${NOT_MEASURED}.`);
  else if (verdict === "better") lines.push("Reproduced: the post's SAE's features are rated higher than dense dimensions, as in the post.");
  else lines.push(`Not reproduced: the post's SAE's features are rated ${verdict === "worse" ? "lower than" : "no differently from"} dense dimensions, where the post rated them higher.`);
  const ev = sae?.["sparse explained variance"];
  if (typeof ev === "number" && sae?.["sparse preset"] === "post") {
    lines.push(ev < 0 ? `The post's SAE does not reconstruct the face vectors it decomposes (explained variance ${percent(ev)}); the post did not measure this.` : `The post's SAE explains ${percent(ev)} of the variance of the face vectors; the post did not measure this.`);
  }
  return lines;
}

/** The run's limits, in words. */
export function limitLines(facts: RunFacts): string[] {
  return [
    `Faces: ${facts.dataset === "synthetic" ? "the embedded synthetic drawings, not CelebA's photographs" : facts.dataset}${facts.faces === null ? "" : `, ${facts.faces.toLocaleString("en-US")} of them`} (the post: CelebA's 202,599).`,
    `Fine-tuning started from ${facts.weights}.`,
    `Images of ${facts.imageSize} × ${facts.imageSize} pixels (the post: 224 × 224); fine-tuning took ${facts.finetuneSteps === null ? "a number of steps that was not recorded" : `${facts.finetuneSteps} steps`} (the post: one epoch, 1,583 steps of 128 images).`,
    facts.rater === "auto" ? "The grids were rated by the automatic rater, which sees only labelled attributes, not by a person as in the post." : "The grids were rated by a person, as in the post.",
  ];
}

/** The whole section as Markdown. */
export function findingsMarkdown(f: RunFindings, facts: RunFacts): string {
  const table = ["| | the post | this run |", "| --- | --- | --- |", ...comparisonRows(f, facts).map(([what, post, run]) => `| ${cell(what)} | ${cell(post)} | ${cell(run)} |`)];
  const notebooks: [FindingsNotebook, string][] = [
    ["02-finetune", "Fine-tuning (02)"],
    ["03-embed", "Embedding (03)"],
    ["04-sae", "The sparse autoencoders (04)"],
    ["05-inspect", "Inspecting the features (05)"],
    ["06-blind-test", "The blind test (06)"],
  ];
  const found = notebooks.map(([name, title]) => {
    const sentences = f[name]?.sentences;
    return `- **${title}.** ${sentences === undefined || sentences.length === 0 ? `${NOT_MEASURED}: the notebook saved no findings.` : sentences.join(" ")}`;
  });
  return [
    "## Findings",
    "",
    "Generated from this run's measurements; the post's numbers are its own.",
    "",
    ...table,
    "",
    "### What reproduced and what did not",
    "",
    ...reproductionLines(f).map((l) => `- ${l}`),
    "",
    "### What each step found",
    "",
    ...found,
    "",
    "### Limits of this run",
    "",
    ...limitLines(facts).map((l) => `- ${l}`),
  ].join("\n");
}
