// One stage of a run in a process of its own, for test/fault-injection.test.ts to kill: `npx tsx
// test/fault-injection-stage.ts <run> <stage>`. Prints "ready" when the stage is about to start (after the imports and
// the backend, whose start-up time says nothing about the stage) and "done <ms>" when it finished.

import { initBackend } from "../lib/kernels/backend";
import { loadRunConfig, type RunConfig } from "../lib/run/config";
import { finetune } from "../lib/model/finetune";
import { embedDataset } from "../lib/embed/embed";

/** The stages that resume after a kill, by name. The SAE (notebook 04) and the rating session (06) are added here. */
const STAGES: Readonly<Record<string, (config: RunConfig) => Promise<unknown>>> = {
  finetune: (config) => finetune(config, { progress: "silent", showCurve: false }),
  // One batch per resumable part, so that a kill lands between many part writes.
  embed: (config) => embedDataset(config, { progress: "silent", partRows: config.embed.batchSize }),
};

const [run, stage] = process.argv.slice(2);
const work = STAGES[stage];
if (run === undefined || work === undefined) {
  console.error(`usage: npx tsx test/fault-injection-stage.ts <run> <${Object.keys(STAGES).join("|")}>`);
  process.exit(2);
}
const config = loadRunConfig(run);
await initBackend(config.backend);
console.log("ready");
const started = performance.now();
await work(config);
console.log(`done ${Math.round(performance.now() - started)}`);
