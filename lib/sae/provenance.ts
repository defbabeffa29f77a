// What an SAE was made from, so a finished SAE or a checkpoint is reused only when that is unchanged: the input
// vectors (a SHA-256 of face_vectors.npy with its shape) and the recipe (preset, architecture, sizes, every
// training value). When either differs, `saeChanges` says what, and the old files are set aside under a suffixed
// name (lib/run/files asideName), never deleted.

import { createHash } from "node:crypto";
import { createReadStream, existsSync, renameSync } from "node:fs";
import { basename } from "node:path";
import { readNpyHeader } from "../formats/npy";
import { asideName, asideStamp } from "../run/files";
import type { SaeMeta, VectorsIdentity } from "./sae";

/** The identity of a vectors file: its SHA-256, read in a stream, and its shape from the .npy header. */
export async function vectorsIdentity(path: string): Promise<VectorsIdentity> {
  const header = await readNpyHeader(path);
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return { file: basename(path), sha256: hash.digest("hex"), rows: header.shape[0] ?? 0, cols: header.shape[1] ?? 0 };
}

const short = (sha: string): string => sha.slice(0, 12);

function show(value: unknown): string {
  return value === undefined ? "not recorded" : JSON.stringify(value);
}

/**
 * What differs between the SAE `saved` was made as and the one `wanted` asks for, in words: the vectors first,
 * then the recipe setting by setting (empty when they agree). Input scaling is measured from the data, not asked
 * for, so it is not compared.
 */
export function saeChanges(saved: SaeMeta, wanted: SaeMeta): string[] {
  const changes: string[] = [];
  const a = saved.trainedOn;
  const b = wanted.trainedOn;
  if (b !== undefined) {
    if (a === undefined) changes.push(`the vectors it was trained on are not recorded (now ${b.file}, sha256 ${short(b.sha256)}…)`);
    else if (a.sha256 !== b.sha256 || a.rows !== b.rows || a.cols !== b.cols) {
      changes.push(`${b.file} changed: ${a.rows} × ${a.cols}, sha256 ${short(a.sha256)}… → ${b.rows} × ${b.cols}, sha256 ${short(b.sha256)}…`);
    }
  }
  const top: (keyof SaeMeta)[] = ["format", "preset", "architecture", "inputDim", "dictionarySize", "k"];
  for (const key of top) if (show(saved[key]) !== show(wanted[key])) changes.push(`${key} ${show(saved[key])} → ${show(wanted[key])}`);
  const keys = new Set([...Object.keys(saved.training ?? {}), ...Object.keys(wanted.training)]);
  const before = (saved.training ?? {}) as unknown as Record<string, unknown>;
  const after = wanted.training as unknown as Record<string, unknown>;
  for (const key of keys) if (show(before[key]) !== show(after[key])) changes.push(`training.${key} ${show(before[key])} → ${show(after[key])}`);
  return changes;
}

/** Moves each existing path to its set-aside name (same `when` for all); returns where they went. */
export function setAside(paths: readonly string[], when: Date = new Date()): string[] {
  const moved: string[] = [];
  for (const path of paths) {
    if (!existsSync(path)) continue;
    const target = asideName(path, asideStamp(when));
    renameSync(path, target);
    moved.push(target);
  }
  return moved;
}
