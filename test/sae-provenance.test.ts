// An SAE and its checkpoint are reused only when they were made from the same face vectors with the same recipe;
// otherwise they are set aside under a suffixed name (never deleted) and the notes say what changed.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initBackend, tf } from "../lib/kernels/backend";
import { describeEngine } from "../lib/kernels/onnxruntime";
import { chooseSaeEngine } from "../lib/sae/onnx-step";
import { trainSae } from "../lib/sae/train";
import { applyOverrides, defaultConfig, saveRunConfig } from "../lib/run/config";
import { writeNpy } from "../lib/formats/npy";
import { runDir, runFiles } from "../lib/run/files";
import { createSae, presetTraining } from "../lib/sae/sae";
import { saeChanges, vectorsIdentity } from "../lib/sae/provenance";
import { createSaeFor, runSaeSpecs, trainRunSae } from "../lib/sae/run-saes";
import { Rng } from "../lib/util/random";

const run = `test-sae-provenance-${process.pid}`;
const ROWS = 64;
const DIM = 8;

function vectors(seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: ROWS * DIM }, () => rng.uniform(0, 1));
}

beforeAll(async () => {
  await initBackend();
  mkdirSync(runDir(run), { recursive: true });
});
afterAll(() => {
  if (!process.env.KEEP_TEST_OUTPUT) rmSync(runDir(run), { recursive: true, force: true });
});

describe("the identity of the vectors", () => {
  it("is the SHA-256 of face_vectors.npy and its shape", async () => {
    const path = runFiles(run).faceVectors;
    await writeNpy(path, vectors(1), [ROWS, DIM]);
    const id = await vectorsIdentity(path);
    expect(id).toEqual({ file: "face_vectors.npy", sha256: createHash("sha256").update(readFileSync(path)).digest("hex"), rows: ROWS, cols: DIM });
  });

  it("saeChanges names what differs: the vectors, then the recipe, setting by setting", () => {
    const training = { ...presetTraining("post", "relu"), batchSize: 8, seed: 0 };
    const a = createSae({ preset: "post", architecture: "relu", inputDim: DIM, dictionarySize: 16, training });
    const b = createSae({ preset: "post", architecture: "relu", inputDim: DIM, dictionarySize: 16, training: { ...training, l1: 0.3 } });
    const idA = { file: "face_vectors.npy", sha256: "a".repeat(64), rows: ROWS, cols: DIM };
    const idB = { ...idA, sha256: "b".repeat(64) };
    expect(saeChanges({ ...a.meta, trainedOn: idA }, { ...a.meta, trainedOn: idA })).toEqual([]);
    expect(saeChanges({ ...a.meta, trainedOn: idA }, { ...b.meta, trainedOn: idB })).toEqual([
      `face_vectors.npy changed: ${ROWS} × ${DIM}, sha256 aaaaaaaaaaaa… → ${ROWS} × ${DIM}, sha256 bbbbbbbbbbbb…`,
      "training.l1 0.1 → 0.3",
    ]);
    expect(saeChanges(a.meta, { ...a.meta, trainedOn: idA })[0]).toMatch(/the vectors it was trained on are not recorded/);
    a.dispose();
    b.dispose();
  });
});

describe("trainRunSae", () => {
  it("reuses a finished SAE made from the same vectors and recipe, and sets aside one made from others", async () => {
    const config = applyOverrides(defaultConfig(run), ["sae.dictionarySize=16", "sae.batchSize=16", "sae.epochs=2", "inspect.features=0-15", "blindTest.features=0-15"]);
    saveRunConfig(config);
    const path = runFiles(run).faceVectors;
    const [spec] = runSaeSpecs(config);
    await writeNpy(path, vectors(1), [ROWS, DIM]);
    const data = { data: vectors(1), rows: ROWS, cols: DIM };
    const engine = describeEngine(chooseSaeEngine(config.sae.engine), tf.getBackend());
    const first = await trainRunSae(config, spec, data, await vectorsIdentity(path), { progress: "silent" });
    expect(first.notes).toEqual([`Trained the post's SAE on ${engine}.`]);
    expect(first.sae.meta.trainedOn?.sha256).toBe((await vectorsIdentity(path)).sha256);
    first.sae.dispose();

    const again = await trainRunSae(config, spec, data, await vectorsIdentity(path), { progress: "silent" });
    expect(again.notes).toHaveLength(1); // no step taken: no engine named
    expect(again.notes[0]).toMatch(/^Reused the post's SAE finished earlier \(runs\/.*sae-checkpoint, step 8\): same vectors, same recipe\.$/);
    again.sae.dispose();

    // New vectors: both the finished SAE and its checkpoint are set aside, and it trains afresh.
    await writeNpy(path, vectors(2), [ROWS, DIM]);
    const changed = await trainRunSae(config, spec, { data: vectors(2), rows: ROWS, cols: DIM }, await vectorsIdentity(path), { progress: "silent" });
    expect(changed.notes).toHaveLength(3);
    expect(changed.notes[2]).toBe(`Trained the post's SAE on ${engine}.`);
    expect(changed.notes[0]).toMatch(/^The saved SAE \(the post's SAE\) was made differently \(face_vectors\.npy changed: 64 × 8, sha256 [0-9a-f]{12}… → 64 × 8, sha256 [0-9a-f]{12}…\): set aside as runs\/.*sae\.before-\d{8}-\d{6}\.safetensors, .*sae\.before-\d{8}-\d{6}\.json/);
    expect(changed.notes[1]).toMatch(/^Its checkpoint was made differently \(face_vectors\.npy changed: .*\): set aside as .*sae-checkpoint\.before-\d{8}-\d{6}; trained afresh\.$/);
    const names = readdirSync(runDir(run));
    expect(names.filter((n) => /^sae\.before-\d{8}-\d{6}\.safetensors$/.test(n))).toHaveLength(1);
    expect(names.filter((n) => /^sae\.before-\d{8}-\d{6}\.json$/.test(n))).toHaveLength(1);
    expect(names.filter((n) => /^sae-checkpoint\.before-\d{8}-\d{6}$/.test(n))).toHaveLength(1);
    expect(existsSync(runFiles(run).sae.weights)).toBe(true);
    expect(changed.history.map((h) => h.step)).toEqual([4, 8]);
    changed.sae.dispose();

    // Killed after its first evaluation on TF.js, continued on the configured engine: the note says which steps ran where.
    rmSync(runFiles(run).sae.checkpoint, { recursive: true, force: true });
    const killed = createSaeFor(config, spec, DIM);
    const trainedOn = await vectorsIdentity(path);
    const kill = trainSae(killed, { data: vectors(2), rows: ROWS, cols: DIM }, { progress: "silent", checkpointDir: runFiles(run).sae.checkpoint, trainedOn, engine: chooseSaeEngine("tfjs"), onEval: () => { throw new Error("killed"); } });
    await expect(kill).rejects.toThrow("killed");
    killed.dispose();
    const continued = await trainRunSae(config, spec, { data: vectors(2), rows: ROWS, cols: DIM }, trainedOn, { progress: "silent" });
    expect(continued.notes.slice(-2)).toEqual([
      `Continued the post's SAE from its checkpoint (runs/${run}/sae-checkpoint) at step 4: same vectors, same recipe.`,
      `Trained the post's SAE on ${engine} (steps 5–8; the earlier ones came from its checkpoint).`,
    ]);
    continued.sae.dispose();
  });
});
