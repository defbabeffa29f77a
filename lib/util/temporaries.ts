// Temporary files and folders that a killed process left behind. Everything the project writes atomically goes to
// `<final name>.tmp-<pid>[-<random>]` first and is renamed into place; a kill -9 in between leaves the temporary
// (a fine-tuning checkpoint is 55 MB, an image cache gigabytes). The next start removes those whose process is no
// longer alive; a temporary of a live process (another notebook writing now) is left alone.

import { existsSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { temporaryPathFor } from "./atomic-write";

const TEMPORARY = /\.tmp-(\d+)(?:-[0-9a-f]+)?$/;

/** True when a process with this id exists (also when it belongs to another user). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the temporaries in `folder` (files or folders named `<name>.tmp-<pid>…`) whose process is gone; with
 * `prefix`, only those whose name starts with it. Returns the names removed.
 */
export function removeDeadTemporaries(folder: string, prefix = ""): string[] {
  if (!existsSync(folder)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(folder)) {
    const match = TEMPORARY.exec(name);
    if (match === null || !name.startsWith(prefix) || processAlive(Number(match[1]))) continue;
    rmSync(join(folder, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Removes the temporaries of dead writers anywhere below `folder` (a run folder: small), for the files no stage
 * cleans on its own because it does not write them again (a finished artifact reused, a record, a grid). Returns
 * their paths relative to `folder`.
 */
export function removeDeadTemporariesBelow(folder: string): string[] {
  const removed = removeDeadTemporaries(folder);
  if (!existsSync(folder)) return removed;
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    if (entry.isDirectory()) removed.push(...removeDeadTemporariesBelow(join(folder, entry.name)).map((name) => `${entry.name}/${name}`));
  }
  return removed;
}

/**
 * Removes a folder (or file) so that a kill in the middle leaves it whole or gone, never half deleted: it is renamed
 * to a temporary of this process first (a name of its own, not one this process is writing; one rename, atomic),
 * which is then deleted; a kill during the deletion leaves only that temporary, which the next start's
 * removeDeadTemporaries clears.
 */
export function removeWhole(path: string): void {
  if (!existsSync(path)) return;
  const doomed = temporaryPathFor(path);
  renameSync(path, doomed);
  rmSync(doomed, { recursive: true, force: true });
}
