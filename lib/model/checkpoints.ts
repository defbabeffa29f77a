// Fine-tuning checkpoints (runs/<run>/checkpoints/, named by lib/run/files): the model, Adam's state and the
// training state, complete or absent; resumed only when made from the same inputs and settings (the fingerprint),
// else set aside. And the fine-tuned model with its record (resnet18.json: its SHA-256 and what made it).

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { Adam } from "./adam";
import { tf } from "../kernels/backend";
import { readNpy, writeNpy } from "../formats/npy";
import { temporaryPathFor, writeFileAtomicSync } from "../util/atomic-write";
import { requireFreeSpace } from "../util/disk";
import { asideName, asideStamp, type RunFiles } from "../run/files";
import { artifactId } from "../util/artifact-id";
import { displayPath } from "../util/project";
import { removeDeadTemporaries, removeWhole } from "../util/temporaries";
import type { HeldOutPoint } from "./held-out";
import type { LossValues } from "./loss";
import { saveResNet18, type ResNet18 } from "./resnet18";

// ---------------------------------------------------------------------------------------------------------------
// Checkpoints: runs/<run>/checkpoints/step-000025/ with model.npy (every state_dict tensor, flat), adam.npy and
// state.json; written into a temporary folder that is renamed into place, so a checkpoint is complete or absent.

export interface TrainingState {
  /** Optimisation steps done. */
  readonly step: number;
  readonly epoch: number;
  /** The run's seed: epoch k's data order is a shuffle keyed by (seed, k). */
  readonly seed: number;
  /** The data order of `epoch` (dataset indices). */
  readonly order: readonly number[];
  /** Loss parts of every step so far. */
  readonly history: readonly LossValues[];
  /** The settings the run was started with: a checkpoint of other settings is not resumed. */
  readonly fingerprint: string;
  /** The held-out measurements so far (lib/model/held-out); absent in older checkpoints. */
  readonly heldOut?: readonly HeldOutPoint[];
}

interface TensorEntry {
  readonly key: string;
  readonly shape: number[];
  readonly dtype: tf.DataType;
}

interface CheckpointFile extends TrainingState {
  readonly format: "celeba-sae finetune checkpoint";
  readonly adamStep: number;
  readonly tensors: readonly TensorEntry[];
}

const CHECKPOINT_NAME = /^step-(\d+)$/;

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(6, "0")}`;
}

export async function saveCheckpoint(folder: string, model: ResNet18, adam: Adam, state: TrainingState, keep = 2): Promise<string> {
  const final = join(folder, checkpointName(state.step));
  const temp = `${final}.tmp-${process.pid}`;
  rmSync(temp, { recursive: true, force: true });
  mkdirSync(temp, { recursive: true });
  const dict = model.stateDict();
  try {
    const tensors: TensorEntry[] = [...dict].map(([key, t]) => ({ key, shape: t.shape, dtype: t.dtype }));
    const flat = new Float32Array(tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0));
    // The model, Adam's two moments, and the checkpoint it replaces until the rename: asked before a byte is written.
    requireFreeSpace(folder, 4 * flat.length * 3, `the fine-tuning checkpoint ${checkpointName(state.step)}`, "raise finetune.checkpointEvery or free space");
    let at = 0;
    for (const t of dict.values()) {
      flat.set(Float32Array.from(t.dataSync() as ArrayLike<number>), at);
      at += t.size;
    }
    await writeNpy(join(temp, "model.npy"), flat, [flat.length]);
    const moments = adam.state();
    await writeNpy(join(temp, "adam.npy"), moments, [2, moments.length / 2]);
    const file: CheckpointFile = { format: "celeba-sae finetune checkpoint", ...state, adamStep: adam.step, tensors };
    writeFileSync(join(temp, "state.json"), JSON.stringify(file));
  } finally {
    tf.dispose([...dict.values()]);
  }
  removeWhole(final);
  renameSync(temp, final);
  for (const old of listCheckpoints(folder).slice(0, -keep)) removeWhole(old.path);
  return final;
}

/** The complete checkpoints in `folder`, oldest first. */
export function listCheckpoints(folder: string): { step: number; path: string }[] {
  if (!existsSync(folder)) return [];
  return readdirSync(folder)
    .map((name) => ({ name, match: CHECKPOINT_NAME.exec(name) }))
    .filter((c) => c.match !== null && existsSync(join(folder, c.name, "state.json")))
    .map((c) => ({ step: Number(c.match![1]), path: join(folder, c.name) }))
    .sort((a, b) => a.step - b.step);
}

/** Reads a checkpoint's state (without touching any model). */
export function readCheckpointState(path: string): TrainingState {
  const file = JSON.parse(readFileSync(join(path, "state.json"), "utf8")) as CheckpointFile;
  if (file.format !== "celeba-sae finetune checkpoint") throw new Error(`${displayPath(path)}/state.json is not a fine-tuning checkpoint`);
  return { step: file.step, epoch: file.epoch, seed: file.seed, order: file.order, history: file.history, fingerprint: file.fingerprint, heldOut: file.heldOut ?? [] };
}

/** Loads a checkpoint's weights, buffers and Adam state into `model` and `adam`; returns its training state. */
export async function loadCheckpoint(path: string, model: ResNet18, adam: Adam): Promise<TrainingState> {
  const file = JSON.parse(readFileSync(join(path, "state.json"), "utf8")) as CheckpointFile;
  const flat = (await readNpy(join(path, "model.npy"))).data as Float32Array;
  const dict = new Map<string, tf.Tensor>();
  let at = 0;
  for (const t of file.tensors) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    const values = flat.subarray(at, at + size);
    dict.set(t.key, t.dtype === "float32" ? tf.tensor(values, t.shape, "float32") : tf.tensor(Array.from(values), t.shape, t.dtype));
    at += size;
  }
  try {
    model.loadStateDict(dict);
  } finally {
    tf.dispose([...dict.values()]);
  }
  adam.load((await readNpy(join(path, "adam.npy"))).data as Float32Array, file.adamStep);
  return readCheckpointState(path);
}


// ---------------------------------------------------------------------------------------------------------------
// Resuming only what the same inputs made

/** Inputs named in words when they change (their values are ids, which say nothing to a person). */
const CHANGED_INPUT: Readonly<Record<string, string>> = {
  images: "the images changed", weights: "the initial weights changed", identities: "the identities changed",
};

/** What differs between two fingerprints (JSON objects), e.g. "preset: post → recommended; the images changed". */
export function fingerprintChanges(before: string, after: string): string {
  const parse = (text: string): Record<string, unknown> => {
    try {
      const value: unknown = JSON.parse(text);
      return value !== null && typeof value === "object" ? (value as Record<string, unknown>) : {};
    } catch {
      return {};
    }
  };
  const [a, b] = [parse(before), parse(after)];
  const shown = (v: unknown): string => (v === undefined ? "(none)" : typeof v === "string" ? v : JSON.stringify(v));
  const changes = [...new Set([...Object.keys(a), ...Object.keys(b)])]
    .filter((key) => JSON.stringify(a[key]) !== JSON.stringify(b[key]))
    .map((key) => CHANGED_INPUT[key] ?? `${key}: ${shown(a[key])} → ${shown(b[key])}`);
  return changes.length > 0 ? changes.join("; ") : "an unreadable record";
}

/**
 * The newest checkpoint in `folder` made with `fingerprint`, or null. Checkpoints of another fingerprint are set
 * aside (the whole folder, renamed `<folder>.before-<stamp>`), and `note` says what changed; temporaries of a
 * checkpoint write that a kill cut short are removed.
 */
export function resumableCheckpoint(folder: string, fingerprint: string): { path: string | null; note: string } {
  removeDeadTemporaries(folder);
  const latest = listCheckpoints(folder).pop();
  if (latest === undefined) return { path: null, note: "" };
  const before = readCheckpointState(latest.path).fingerprint;
  if (before === fingerprint) return { path: latest.path, note: "" };
  const aside = asideName(folder);
  renameSync(folder, aside);
  return {
    path: null,
    note:
      `The checkpoints in ${displayPath(folder)} were made from other inputs or settings (${fingerprintChanges(before, fingerprint)}): ` +
      `training started afresh, and they were set aside in ${displayPath(aside)}.`,
  };
}

/** runs/<run>/resnet18.json: the fine-tuned model's id and what made it. */
export interface ModelRecord {
  readonly format: "celeba-sae fine-tuned model";
  /** SHA-256 of resnet18.safetensors (lib/util/artifact-id). */
  readonly sha256: string;
  readonly steps: number;
  /** The training's fingerprint: its settings and the ids of its inputs. */
  readonly fingerprint: string;
  readonly initialWeights: string;
}

/** The run's model record, or null (none, or unreadable). */
function readModelRecord(path: string): Partial<ModelRecord> | null {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Partial<ModelRecord>;
  } catch {
    return null;
  }
}

/**
 * Writes the fine-tuned model and its record when this training changed it (`trained`), or when the model there is
 * not the one its record says a training of this `fingerprint` made. A model made from other inputs is set aside, not
 * overwritten (one whose bytes equal the new model's is simply replaced: a kill between writing a model and its
 * record leaves that). Untouched otherwise, so that face vectors made from it stay valid. Returns a note when
 * something was set aside.
 */
export async function saveFinetunedModel(
  model: ResNet18,
  files: Pick<RunFiles, "model" | "modelRecord">,
  made: { readonly fingerprint: string; readonly steps: number; readonly trained: boolean; readonly initialWeights: string },
): Promise<{ note: string }> {
  const record = readModelRecord(files.modelRecord);
  const present = existsSync(files.model) ? await artifactId(files.model) : null;
  const recorded = present !== null && record?.sha256 === present; // the model there is the one its record describes
  if (!made.trained && recorded && record?.fingerprint === made.fingerprint) return { note: "" };
  mkdirSync(dirname(files.model), { recursive: true });
  for (const path of [files.model, files.modelRecord]) removeDeadTemporaries(dirname(path), `${basename(path)}.tmp-`);
  const temp = temporaryPathFor(files.model);
  await saveResNet18(model, temp);
  const sha256 = await artifactId(temp);
  let note = "";
  if (present !== null && present !== sha256 && !(recorded && record?.fingerprint === made.fingerprint)) {
    const stamp = asideStamp();
    const aside = asideName(files.model, stamp);
    renameSync(files.model, aside);
    if (existsSync(files.modelRecord)) renameSync(files.modelRecord, asideName(files.modelRecord, stamp));
    note = `The model trained before from other inputs or settings was set aside as ${displayPath(aside)}.`;
  }
  renameSync(temp, files.model);
  const written: ModelRecord = { format: "celeba-sae fine-tuned model", sha256, steps: made.steps, fingerprint: made.fingerprint, initialWeights: made.initialWeights };
  writeFileAtomicSync(files.modelRecord, JSON.stringify(written, null, 1) + "\n");
  return { note };
}
