// `npm run demo`: sets up Jupyter and the kernel if missing, then runs every notebook on the embedded synthetic
// dataset into runs/demo/ (the last one, 07-publish, exports the blog post) and says where everything is.
import { readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { runNotebooks } from "../lib/run/notebook-runner";
import { projectRoot } from "../lib/util/project";
import { runDir, runFiles } from "../lib/run/files";
import { setup } from "../lib/run/setup";

/**
 * The demo's settings: the embedded synthetic faces, and a fine-tuning budget that fits a 2-core CPU in minutes
 * (64×64 images, batches of 32, 20 steps, the held-out people measured at steps 0, 10 and 20 with BatchNorm's
 * statistics recomputed from 256 faces). Fine-tuning uses the `recommended` preset: 20 steps of the post's preset
 * (random batches, each face its own positive) leave held-out people no better told apart than at the start, which
 * is no demonstration of learning; the recommended preset's identity-balanced batches are. Everything else is the
 * post's default; `npm run notebooks -- --run NAME` without these runs the post's full recipe (224×224, batch 128,
 * one epoch, the post's fine-tuning).
 */
export const DEMO_SETTINGS = [
  "dataset=synthetic", "imageSize=64", "finetune.preset=recommended", "finetune.batchSize=32", "finetune.chunkSize=32", "finetune.maxSteps=20",
  "finetune.evalEvery=10", "finetune.batchNormImages=256",
];

const started = Date.now();
try {
  const env = setup();
  console.log(`Jupyter: ${env.python}; ${env.userKernel}`);
  const result = await runNotebooks({ run: "demo", only: [], set: DEMO_SETTINGS, cellTimeout: 0, execute: true });
  const rel = (p: string): string => relative(projectRoot(), p) || ".";
  if (!result.ok) {
    console.error(`\nThe demo stopped: ${rel(result.failed ?? "")} failed. Its executed copy shows the failing cell and error.`);
    process.exit(1);
  }
  const minutes = ((Date.now() - started) / 60000).toFixed(1);
  console.log(`\nDone in ${minutes} min. Everything of this run is in ${rel(runDir("demo"))}/:`);
  console.log(`  config:             ${rel(runDir("demo"))}/config.json`);
  console.log(`  executed notebooks: ${result.executed.map(rel).join("\n                      ")}`);
  const postDir = runFiles("demo").post;
  for (const file of readdirSync(postDir).filter((f) => f.endsWith(".md") || f.endsWith(".html"))) {
    console.log(`  ${file.endsWith(".md") ? "blog post (07-publish)" : "one-page HTML"}: ${rel(join(postDir, file))}`);
  }
  console.log(`Open the notebooks with: jupyter notebook ${rel(result.outputDir)}   (or jupyter lab, see README)`);
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exit(2);
}
