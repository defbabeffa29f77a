// One stage of a run in a process of its own, for test/fault-injection.test.ts to kill: `npx tsx
// test/fault-injection-stage.ts <run> <stage>`. Prints "ready" when the stage is about to start (after the imports and
// the backend, whose start-up time says nothing about the stage) and "done <ms>" when it finished.

import { setTimeout as sleep } from "node:timers/promises";
import { initBackend } from "../lib/kernels/backend";
import { loadRunConfig, parseFeatureList, type RunConfig } from "../lib/run/config";
import { runDir, runFiles } from "../lib/run/files";
import { finetune } from "../lib/model/finetune";
import { embedDataset, readFaceVectorsFile } from "../lib/embed/embed";
import { vectorsIdentity } from "../lib/sae/provenance";
import { runSaeSpecs, trainRunSae } from "../lib/sae/run-saes";
import { openRunDataset } from "../lib/data/datasets";
import { topImagesGrid } from "../lib/inspect/feature-cards";
import { FEATURE_KINDS } from "../lib/inspect/kinds";
import { BlindSession } from "../lib/blind-test/session";
import { attributeBaseRates, autoRate } from "../lib/blind-test/auto-rater";
import { removeDeadTemporariesBelow } from "../lib/util/temporaries";

/** Notebook 04's work: every SAE of the run trained (or resumed) on its face vectors and saved. */
async function trainSaes(config: RunConfig): Promise<void> {
  const path = runFiles(config.run).faceVectors;
  const vectors = await readFaceVectorsFile(path);
  const trainedOn = await vectorsIdentity(path);
  for (const spec of runSaeSpecs(config)) (await trainRunSae(config, spec, vectors, trainedOn, { progress: "silent" })).sae.dispose();
}

/** A rater's pause between two grids, so that kills land among the ratings as well as in the making of the grids. */
const RATER_PAUSE_MS = 40;

/**
 * Notebook 06's work for a rater: the session opened (its grids made, the first time) and every unrated grid rated,
 * one at a time, as the rating page records them. The grids show fixed rows per kind and feature (notebook 05's top
 * faces are not what is tested here) and each is rated by the automatic rater, so two runs rate alike.
 */
async function rateSession(config: RunConfig): Promise<void> {
  const dataset = await openRunDataset(config);
  const table = dataset.attributes;
  if (table === null) throw new Error("the rating stage needs a dataset with attributes (the synthetic faces have them)");
  const session = await BlindSession.open(runDir(config.run), {
    features: parseFeatureList(config.blindTest.features),
    kinds: ["dense", "sparse"],
    seed: config.blindTest.seed,
    rowsOf: (kind, feature) => Array.from({ length: config.inspect.topImages }, (_, j) => (feature * 7 + FEATURE_KINDS.indexOf(kind) * 13 + j * 3) % dataset.count),
    renderGrid: (rows) => topImagesGrid(dataset, config, rows),
  });
  const baseRates = attributeBaseRates(table);
  for (let id = session.next(); id !== undefined; id = session.next()) {
    session.rate(id, autoRate(session.gridRows(id), table, baseRates).rating, "auto");
    await sleep(RATER_PAUSE_MS);
  }
  session.close();
}

/** The stages that resume after a kill, by name. */
const STAGES: Readonly<Record<string, (config: RunConfig) => Promise<unknown>>> = {
  finetune: (config) => finetune(config, { progress: "silent", showCurve: false }),
  // One batch per resumable part, so that a kill lands between many part writes.
  embed: (config) => embedDataset(config, { progress: "silent", partRows: config.embed.batchSize }),
  sae: trainSaes,
  "blind-test": rateSession,
};

const [run, stage] = process.argv.slice(2);
const work = STAGES[stage];
if (run === undefined || work === undefined) {
  console.error(`usage: npx tsx test/fault-injection-stage.ts <run> <${Object.keys(STAGES).join("|")}>`);
  process.exit(2);
}
const config = loadRunConfig(run);
removeDeadTemporariesBelow(runDir(run)); // as every notebook's first cell does (lib/run/notebook-setup startNotebook)
await initBackend(config.backend);
console.log("ready");
const started = performance.now();
await work(config);
console.log(`done ${Math.round(performance.now() - started)}`);
