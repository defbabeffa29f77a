// The SAE trainer's checkpoint (runs/<run>/sae-checkpoint/, named by lib/run/files): weights, Adam's moments, the
// dead-feature counters and the metrics so far, after every epoch, swapped in whole.

import { existsSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Adam } from "../model/adam";
import { readSafetensors, writeSafetensors } from "../formats/safetensors";
import { loadSaeModel, saveSae, tensorsOf, type SaeMeta, type SaeModel, type SaeParameterName } from "./sae";
import { adamMoments, restoreAdam } from "./step";
import type { EpochMetrics } from "./metrics";


const CHECKPOINT_PROGRESS = "progress.json";
const CHECKPOINT_ADAM = "adam.safetensors";

interface CheckpointProgress {
  readonly format: "celeba-sae/sae-checkpoint@1";
  readonly adamSteps: number;
  readonly rowsSinceFired: number[];
  readonly history: (Omit<EpochMetrics, "density"> & { readonly density: number[] })[];
}

/** Writes the checkpoint into a fresh folder, then swaps it in for the old one (never a half-written checkpoint). */
export async function writeCheckpoint(dir: string, model: SaeModel, adam: Adam, rowsSinceFired: Float64Array, history: readonly EpochMetrics[]): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  const old = `${dir}.old-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await saveSae(model, tmp);
  await writeSafetensors(join(tmp, CHECKPOINT_ADAM), await tensorsOf(adamMoments(adam)));
  const progress: CheckpointProgress = {
    format: "celeba-sae/sae-checkpoint@1",
    adamSteps: adam.step,
    rowsSinceFired: Array.from(rowsSinceFired),
    history: history.map((h) => ({ ...h, density: Array.from(h.density) })),
  };
  await writeFile(join(tmp, CHECKPOINT_PROGRESS), JSON.stringify(progress));
  if (existsSync(dir)) await rename(dir, old);
  await rename(tmp, dir);
  await rm(old, { recursive: true, force: true });
}

/** Loads a checkpoint of the same recipe into the model and optimiser; null when there is none (or another recipe's). */
export async function resumeCheckpoint(dir: string, model: SaeModel, adam: Adam, rowsSinceFired: Float64Array): Promise<EpochMetrics[] | null> {
  if (!existsSync(join(dir, CHECKPOINT_PROGRESS))) return null;
  const saved = await loadSaeModel(dir);
  try {
    const same = (a: SaeMeta, b: SaeMeta): boolean =>
      JSON.stringify([a.preset, a.architecture, a.inputDim, a.dictionarySize, a.k, a.training]) === JSON.stringify([b.preset, b.architecture, b.inputDim, b.dictionarySize, b.k, b.training]);
    if (!same(saved.meta, model.meta)) return null;
    const progress = JSON.parse(await readFile(join(dir, CHECKPOINT_PROGRESS), "utf8")) as CheckpointProgress;
    if (progress.history.length > model.meta.training.epochs) return null;
    for (const [name, v] of Object.entries(model.named())) v.assign(saved.named()[name as SaeParameterName]);
    model.syncDecoderTranspose();
    model.meta = { ...model.meta, inputScaling: saved.meta.inputScaling };
    restoreAdam(adam, await readSafetensors(join(dir, CHECKPOINT_ADAM)), progress.adamSteps);
    rowsSinceFired.set(progress.rowsSinceFired);
    return progress.history.map((h) => ({ ...h, density: Float64Array.from(h.density) }));
  } finally {
    saved.dispose();
  }
}
