// Fault injection: fine-tuning, embedding, the SAEs' training and a rating session are killed with SIGKILL at random
// points, several times each, and restarted until they finish; what they made must then equal an uninterrupted run's.
//
// Byte-identical, not merely close: a stage resumes from checkpoints that hold every float it needs exactly
// (weights, BatchNorm statistics and Adam's moments as float32 .npy, the step and the data order as JSON; the
// embedding's finished parts as .npy rows; the SAE's weights, Adam's moments, its dead-feature counters and its
// evaluations so far), and the work after the resume point is the same computation on the same inputs (the shuffles
// are keyed by (seed, epoch), the decoded images come from the same uint8 cache, an embedding part is the same
// batches), so nothing may differ — a difference means state lost or doubled on the way. A rating session's grids
// get random ids and its records a time of day, so there the same means: the same grids (PNG bytes) for each kind
// and feature, and the same ratings of them in the same order, each grid rated once.
//
// Each stage runs in a child process (test/fault-injection-stage.ts) on 40 synthetic faces at 32×32 with a narrow
// ResNet18 (width 4) as its initial weights; the kill comes a random time after the child says it is starting the
// stage, within 60 % of the time an uninterrupted run of the stage took (less for later kills: less is left), so kills
// land in setup, between steps, inside checkpoint, part, grid and rating writes, and after the work. The two runs
// read two copies of the dataset, so that the killed run also builds its own image cache. The stages run in
// pipeline order (the SAEs train on the face vectors the embedding stage made). The seed is printed (FAULT_SEED=<n>
// repeats a sequence of kills).

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../lib/kernels/backend";
import { applyOverrides, defaultConfig, saveRunConfig } from "../lib/run/config";
import { prepareDataset } from "../lib/data/datasets";
import { generateSyntheticFaces } from "../lib/data/synthetic/faces";
import { createResNet18, saveResNet18 } from "../lib/model/resnet18";
import { projectRoot } from "../lib/util/project";
import { runDir, runFiles, type RunFiles } from "../lib/run/files";
import { Rng } from "../lib/util/random";

const straight = `test-fault-straight-${process.pid}`;
const killed = `test-fault-killed-${process.pid}`;
const scratch = mkdtempSync(join(tmpdir(), "fault-injection-"));
const seed = Number(process.env.FAULT_SEED ?? Date.now() % 1_000_000);
const rng = new Rng(seed);
const KILLS = 3;

interface StageRun {
  /** The child was killed before it finished. */
  readonly killed: boolean;
  /** Milliseconds the stage took (a finished child only). */
  readonly ms: number;
  readonly output: string;
}

/**
 * Runs one stage of `run` in a child process (node itself, not npx: a SIGKILL must reach the process doing the
 * work), killing it `killAfterMs` after it said "ready" (never, when null).
 */
function runStage(run: string, stage: string, killAfterMs: number | null): Promise<StageRun> {
  const child = spawn(process.execPath, ["--import", "tsx", join("test", "fault-injection-stage.ts"), run, stage], { cwd: projectRoot() });
  let output = "";
  let armed = killAfterMs !== null;
  child.stdout.on("data", (d: Buffer) => {
    output += d.toString();
    if (armed && /^ready$/m.test(output)) {
      armed = false;
      setTimeout(() => child.kill("SIGKILL"), killAfterMs ?? 0);
    }
  });
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  return new Promise((resolve) =>
    child.on("close", (code, signal) => {
      const done = /^done (\d+)$/m.exec(output);
      if (signal === null && code !== 0) resolve({ killed: false, ms: Number.NaN, output: `exit ${code}: ${output}` });
      else resolve({ killed: signal === "SIGKILL" && done === null, ms: done === null ? Number.NaN : Number(done[1]), output });
    }),
  );
}

/** Kills the stage KILLS times at random points of its work, then lets it finish; returns how many kills interrupted it. */
async function killAndFinish(stage: string, uninterruptedMs: number): Promise<number> {
  let interrupted = 0;
  for (let k = 0; k < KILLS; k++) {
    // Within the first 60 % of an uninterrupted run's time (a child on a busy machine may run faster than the one
    // measured), and sooner for later kills: each restart has less left to do.
    const delay = Math.floor(rng.next() * 0.6 * uninterruptedMs * (1 - k / (KILLS + 1)));
    const result = await runStage(killed, stage, delay);
    expect(result.output, `${stage}: a child failed instead of being killed`).not.toMatch(/^exit [1-9]/);
    if (result.killed) interrupted++;
    console.log(`fault injection (FAULT_SEED=${seed}): ${stage} killed ${delay} ms into its work${result.killed ? "" : " — it had finished already"}`);
  }
  const last = await runStage(killed, stage, null);
  expect(last.ms, last.output).not.toBeNaN();
  return interrupted;
}

/** Temporaries (`*.tmp-<pid>…`) anywhere below a folder. */
function temporariesBelow(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => /\.tmp-\d+/.test(f));
}

beforeAll(async () => {
  await initBackend();
  const faces = join(scratch, "faces");
  await generateSyntheticFaces({ outDir: faces, count: 40, identities: 4, seed: 11 });
  cpSync(faces, join(scratch, "faces-copy"), { recursive: true });
  const weights = join(scratch, "weights.safetensors");
  const model = createResNet18({ width: 4, seed: 2 });
  await saveResNet18(model, weights);
  model.dispose();
  for (const [run, folder] of [[straight, faces], [killed, join(scratch, "faces-copy")]] as const) {
    const config = applyOverrides(defaultConfig(run), [
      `dataset=${folder}`, "imageSize=32", `finetune.weights=${weights}`, "finetune.batchSize=4", "finetune.chunkSize=4", "finetune.maxSteps=10",
      "finetune.checkpointEvery=1", "embed.batchSize=2",
      // The post's SAE (30 passes, a checkpoint after each) and the recommended one beside it (a checkpoint every 50
      // steps), both small.
      "sae.dictionarySize=64", "sae.k=8", "sae.batchSize=4", "sae.trainingRows=2000",
      "blindTest.features=0-15", "inspect.topImages=4",
    ]);
    saveRunConfig(config);
    await prepareDataset(config, { progress: "silent" });
  }
  console.log(`fault injection: FAULT_SEED=${seed}`);
}, 120_000);
afterAll(() => {
  if (process.env.KEEP_TEST_OUTPUT) return;
  for (const run of [straight, killed]) rmSync(runDir(run), { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

/** A stage that resumes after a kill, and what must come out the same. */
interface Stage {
  readonly name: string;
  /** What the stage made, as it must be equal between the two runs (it names any file that is missing). */
  readonly outcome: (files: RunFiles) => unknown;
}

const sha256 = (path: string): string => {
  if (!existsSync(path)) throw new Error(`${path} is missing`);
  return createHash("sha256").update(readFileSync(path)).digest("hex");
};

/** Files that must be byte-identical: their hashes, by name. */
const sameBytes =
  (artifacts: (files: RunFiles) => readonly string[]) =>
  (files: RunFiles): Record<string, string> =>
    Object.fromEntries(artifacts(files).map((path) => [relative(files.dir, path), sha256(path)]));

/**
 * A rating session by what it means: each rating as (kind, feature, rating, rater) in the order given — not its
 * random grid id or its time (a grid rated twice shows as two entries) — and each grid's PNG by kind and feature. Its folder holds the session's grids and
 * nothing else (no image of an unfinished first attempt), and no writer's lock is left behind.
 */
function ratingSession(files: RunFiles): unknown {
  const { blindTest } = files;
  const key = JSON.parse(readFileSync(blindTest.key, "utf8")) as { items: { id: string; kind: string; feature: number }[] };
  const item = new Map(key.items.map((i) => [i.id, `${i.kind} ${i.feature}`]));
  const order = (JSON.parse(readFileSync(blindTest.session, "utf8")) as { order: string[] }).order;
  expect(readdirSync(blindTest.images).sort()).toEqual(order.map((id) => `${id}.png`).sort());
  expect(existsSync(blindTest.lock), `${blindTest.lock} was left behind`).toBe(false);
  const ratings = readFileSync(blindTest.ratings, "utf8").split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as { id: string; rating: number; rater: string });
  return {
    ratings: ratings.map((r) => `${item.get(r.id) ?? `unknown grid ${r.id}`}: ${r.rating} by ${r.rater}`),
    grids: Object.fromEntries(order.map((id) => [item.get(id), sha256(join(blindTest.images, `${id}.png`))])),
  };
}

const STAGES: readonly Stage[] = [
  { name: "finetune", outcome: sameBytes((f) => [f.model]) },
  { name: "embed", outcome: sameBytes((f) => [f.faceVectors, f.faceVectorsFiles]) },
  { name: "sae", outcome: sameBytes((f) => [f.sae.weights, f.sae.meta, f.saeBeside.weights, f.saeBeside.meta]) },
  { name: "blind-test", outcome: ratingSession },
];

describe("killed at random points and restarted, a stage ends with the artifacts of an uninterrupted run", () => {
  for (const stage of STAGES) {
    it(`${stage.name}: byte-identical after ${KILLS} SIGKILLs`, async () => {
      const clean = await runStage(straight, stage.name, null);
      expect(clean.ms, clean.output).not.toBeNaN();
      console.log(`fault injection: ${stage.name} takes ${clean.ms} ms uninterrupted`);
      const interrupted = await killAndFinish(stage.name, clean.ms);
      expect(interrupted, "no kill landed before the stage finished").toBeGreaterThan(0);
      expect(stage.outcome(runFiles(killed))).toEqual(stage.outcome(runFiles(straight)));
      expect(temporariesBelow(runDir(killed))).toEqual([]);
      // A kill is not a change of inputs: nothing may have been set aside as if it were.
      expect(readdirSync(runDir(killed)).filter((n) => n.includes(".before-"))).toEqual([]);
      expect(temporariesBelow(join(scratch, "faces-copy"))).toEqual([]); // the image cache's, beside the dataset
      expect(existsSync(runFiles(killed).faceVectorsParts)).toBe(false);
    }, 120_000);
  }

  it("their records name the same artifacts", () => {
    const recorded = (path: string): string => (JSON.parse(readFileSync(path, "utf8")) as { sha256: string }).sha256;
    expect(recorded(runFiles(killed).modelRecord)).toBe(recorded(runFiles(straight).modelRecord));
    expect(recorded(runFiles(killed).faceVectorsRecord)).toBe(recorded(runFiles(straight).faceVectorsRecord));
  });
});
