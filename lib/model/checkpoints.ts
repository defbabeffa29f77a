// Fine-tuning checkpoints (runs/<run>/checkpoints/, named by lib/run/files): the model, Adam's state and the
// training state, complete or absent.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Adam } from "./adam";
import { tf } from "../kernels/backend";
import { readNpy, writeNpy } from "../formats/npy";
import { displayPath } from "../util/project";
import type { HeldOutPoint } from "./held-out";
import type { LossValues } from "./loss";
import type { ResNet18 } from "./resnet18";

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
  rmSync(final, { recursive: true, force: true });
  renameSync(temp, final);
  for (const old of listCheckpoints(folder).slice(0, -keep)) rmSync(old.path, { recursive: true, force: true });
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

