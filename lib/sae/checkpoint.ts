// The SAE trainer's checkpoint (runs/<run>/sae-checkpoint/, named by lib/run/files), written at every evaluation and
// swapped in whole: the weights and the meta they were made with (sae.safetensors + sae.json, including the
// vectors' identity), Adam's moments, the dead-feature counters, the evaluations so far, the best evaluation's
// weights (best.safetensors, when the recipe keeps the best) and whether training had finished.
// A checkpoint is resumed only when it was made from the same vectors with the same recipe; otherwise the caller
// is told what changed and sets it aside (lib/sae/provenance).

import { existsSync, readdirSync, renameSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Adam } from "../model/adam";
import { readSafetensors, writeSafetensors, type SafetensorsTensor } from "../formats/safetensors";
import { loadSaeModel, saveSae, tensorsOf, type SaeModel, type SaeParameterName } from "./sae";
import { adamMoments, restoreAdam } from "./step";
import type { EvalMetrics } from "./metrics";
import { saeChanges } from "./provenance";
import { processAlive, removeDeadTemporaries, removeWhole } from "../util/temporaries";

const CHECKPOINT_PROGRESS = "progress.json";
const CHECKPOINT_ADAM = "adam.safetensors";
const CHECKPOINT_BEST = "best.safetensors";
const FORMAT = "celeba-sae/sae-checkpoint@2";

/** How training ended, once it has. */
export type StopReason = "budget" | "plateau";

/** Weights by parameter name (copies). */
export type WeightSnapshot = ReadonlyMap<string, SafetensorsTensor>;

/** What a checkpoint holds besides the model and the optimiser. */
export interface CheckpointState {
  readonly step: number;
  readonly history: readonly EvalMetrics[];
  /** The best evaluation's step and weights (null when the recipe keeps the last weights, or before any). */
  readonly best: { readonly step: number; readonly weights: WeightSnapshot } | null;
  /** Set once training has ended. */
  readonly stopped: StopReason | null;
}

interface CheckpointProgress {
  readonly format: typeof FORMAT;
  readonly step: number;
  readonly adamSteps: number;
  readonly rowsSinceFired: number[];
  readonly history: (Omit<EvalMetrics, "density"> & { readonly density: number[] })[];
  readonly bestStep: number | null;
  readonly stopped: StopReason | null;
}

/** The model's weights as copies, to keep the best ones while training goes on. */
export async function snapshotWeights(model: SaeModel): Promise<WeightSnapshot> {
  return tensorsOf(model.named());
}

/** The name the checkpoint it replaces has during a swap (writeCheckpoint), by the writer's process id. */
const REPLACED = /^(.*)\.old-(\d+)$/;

/**
 * Writes the checkpoint into a fresh folder, then swaps it in for the old one (never a half-written checkpoint):
 * the old one is renamed aside, the new one into place, the old one removed. A kill between the two renames leaves
 * no `dir` but the old one whole beside it, which the next start puts back (recoverCheckpoint).
 */
export async function writeCheckpoint(dir: string, model: SaeModel, adam: Adam, rowsSinceFired: Float64Array, state: CheckpointState): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  const old = `${dir}.old-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await saveSae(model, tmp);
  await writeSafetensors(join(tmp, CHECKPOINT_ADAM), await tensorsOf(adamMoments(adam)));
  if (state.best !== null) await writeSafetensors(join(tmp, CHECKPOINT_BEST), new Map(state.best.weights));
  const progress: CheckpointProgress = {
    format: FORMAT,
    step: state.step,
    adamSteps: adam.step,
    rowsSinceFired: Array.from(rowsSinceFired),
    history: state.history.map((h) => ({ ...h, density: Array.from(h.density) })),
    bestStep: state.best?.step ?? null,
    stopped: state.stopped,
  };
  await writeFile(join(tmp, CHECKPOINT_PROGRESS), JSON.stringify(progress));
  if (existsSync(dir)) await rename(dir, old);
  await rename(tmp, dir);
  removeWhole(old);
}

/**
 * What a writer killed mid-write left beside `dir`: its unfinished new checkpoint (`.tmp-<pid>`) is removed; the
 * checkpoint it was replacing (`.old-<pid>`) is put back when `dir` is missing (the kill came between the swap's
 * two renames) and removed otherwise. Leaves a live writer's files alone.
 */
export function recoverCheckpoint(dir: string): void {
  const parent = dirname(dir);
  if (!existsSync(parent)) return;
  removeDeadTemporaries(parent, `${basename(dir)}.`);
  for (const name of readdirSync(parent)) {
    const match = REPLACED.exec(name);
    if (match === null || match[1] !== basename(dir) || processAlive(Number(match[2]))) continue;
    if (existsSync(dir)) removeWhole(join(parent, name));
    else renameSync(join(parent, name), dir);
  }
}

/** What `resumeCheckpoint` found. */
export type ResumeResult =
  | { readonly kind: "none" }
  /** A checkpoint of other vectors or another recipe (or an older format): what differs; nothing was loaded. */
  | { readonly kind: "different"; readonly changes: readonly string[] }
  | ({ readonly kind: "resumed" } & CheckpointState);

/**
 * Loads a checkpoint made from the same vectors with the same recipe into the model and optimiser (the model's
 * meta must already carry `trainedOn` when the caller knows it). Reports a different one without touching it.
 */
export async function resumeCheckpoint(dir: string, model: SaeModel, adam: Adam, rowsSinceFired: Float64Array): Promise<ResumeResult> {
  recoverCheckpoint(dir);
  const progressPath = join(dir, CHECKPOINT_PROGRESS);
  if (!existsSync(progressPath)) return existsSync(dir) ? { kind: "different", changes: [`${dir} holds no finished checkpoint (no ${CHECKPOINT_PROGRESS})`] } : { kind: "none" };
  let progress: CheckpointProgress;
  try {
    progress = JSON.parse(await readFile(progressPath, "utf8")) as CheckpointProgress;
  } catch (e) {
    return { kind: "different", changes: [`${progressPath} is not valid JSON (${(e as Error).message})`] };
  }
  if (progress.format !== FORMAT) return { kind: "different", changes: [`checkpoint format ${JSON.stringify(progress.format)} → ${FORMAT}`] };
  const saved = await loadSaeModel(dir);
  try {
    const changes = saeChanges(saved.meta, model.meta);
    if (changes.length > 0) return { kind: "different", changes };
    for (const [name, v] of Object.entries(model.named())) v.assign(saved.named()[name as SaeParameterName]);
    model.syncDecoderTranspose();
    model.meta = { ...model.meta, inputScaling: saved.meta.inputScaling };
    restoreAdam(adam, await readSafetensors(join(dir, CHECKPOINT_ADAM)), progress.adamSteps);
    rowsSinceFired.set(progress.rowsSinceFired);
    const best = progress.bestStep === null ? null : { step: progress.bestStep, weights: await readSafetensors(join(dir, CHECKPOINT_BEST)) };
    return {
      kind: "resumed",
      step: progress.step,
      history: progress.history.map((h) => ({ ...h, density: Float64Array.from(h.density) })),
      best,
      stopped: progress.stopped,
    };
  } finally {
    saved.dispose();
  }
}
