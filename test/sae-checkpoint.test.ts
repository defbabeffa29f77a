// The SAE checkpoint's swap (lib/sae/checkpoint writeCheckpoint): a writer killed between renaming the old
// checkpoint aside and the new one into place leaves no sae-checkpoint/ — the next start must put the old one back
// and resume from it, and clear what the dead writer left; a live writer's files stay.

import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../lib/kernels/backend";
import { createSae, presetTraining, type SaeModel } from "../lib/sae/sae";
import { trainSae } from "../lib/sae/train";
import { recoverCheckpoint } from "../lib/sae/checkpoint";
import type { Vectors } from "../lib/sae/metrics";
import { Rng } from "../lib/util/random";

const scratch = mkdtempSync(join(tmpdir(), "sae-checkpoint-"));
const dead = (): number => spawnSync("true").pid as number;

const rng = new Rng(5);
const vectors: Vectors = { data: Float32Array.from({ length: 120 * 8 }, () => rng.next() * 2 - 1), rows: 120, cols: 8 };
const make = (): SaeModel =>
  createSae({ preset: "recommended", architecture: "topk", inputDim: 8, dictionarySize: 16, k: 2, training: { ...presetTraining("recommended", "topk", 16), batchSize: 40, seed: 3, epochs: 3, trainingRows: null, evalEvery: null } });

beforeAll(async () => {
  await initBackend();
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A checkpoint folder holding the state after the second of three evaluations, as a killed run leaves it. */
async function killedAfterSecondEvaluation(name: string): Promise<string> {
  const checkpoint = join(scratch, name, "sae-checkpoint");
  const model = make();
  let evaluations = 0;
  await expect(trainSae(model, vectors, { progress: "silent", checkpointDir: checkpoint, onEval: () => { if (++evaluations === 2) throw new Error("killed"); } })).rejects.toThrow("killed");
  model.dispose();
  return checkpoint;
}

describe("the SAE checkpoint after a kill in its swap", () => {
  it("is put back when the kill came between the two renames, and training resumes from it", async () => {
    const checkpoint = await killedAfterSecondEvaluation("between-renames");
    const pid = dead();
    renameSync(checkpoint, `${checkpoint}.old-${pid}`);
    mkdirSync(`${checkpoint}.tmp-${pid}`);
    writeFileSync(join(`${checkpoint}.tmp-${pid}`, "sae.safetensors"), "half a file");
    const model = make();
    let resumedAt = -1;
    const history = await trainSae(model, vectors, { progress: "silent", checkpointDir: checkpoint, onResume: (step) => (resumedAt = step) });
    model.dispose();
    expect(resumedAt).toBe(2 * 3); // 108 training rows in batches of 40: 3 steps per pass
    expect(history.map((h) => h.step)).toEqual([3, 6, 9]);
    expect(readdirSync(join(scratch, "between-renames"))).toEqual(["sae-checkpoint"]);
  });

  it("removes the old one when the new one was already in place, and leaves a live writer's files alone", async () => {
    const checkpoint = await killedAfterSecondEvaluation("after-renames");
    const pid = dead();
    cpSync(checkpoint, `${checkpoint}.old-${pid}`, { recursive: true });
    mkdirSync(`${checkpoint}.old-${pid}.tmp-${pid}-0badc0de`); // its removal, cut short
    mkdirSync(`${checkpoint}.tmp-${process.pid}`); // a writer at work now
    recoverCheckpoint(checkpoint);
    expect(readdirSync(join(scratch, "after-renames")).sort()).toEqual(["sae-checkpoint", `sae-checkpoint.tmp-${process.pid}`]);
    expect(existsSync(join(checkpoint, "progress.json"))).toBe(true);
  });
});
