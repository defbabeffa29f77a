// Free disk space, asked before anything large is written (the decoded-image cache, face vectors, checkpoints, an
// archive's entries), so a full disk is an error naming what needs how much and where, not a half-written file.

import { existsSync, statfsSync } from "node:fs";
import { dirname, resolve } from "node:path";

/** Free space where the files go: bytes available to this user, and the block size files are rounded up to. */
export interface FreeSpace {
  readonly bytes: number;
  readonly blockSize: number;
}

/** The free space of the file system holding `dir` (or its nearest existing parent), or undefined when unknown. */
export function diskFreeSpace(dir: string): FreeSpace | undefined {
  let at = resolve(dir);
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  try {
    const info = statfsSync(at);
    // Files take whole blocks: 4 KiB on ext4, XFS, APFS, NTFS. Some file systems (ZFS) report a bigger "optimal
    // transfer size" as bsize yet store small files in small blocks, so no more than 4 KiB a block is assumed.
    return { bytes: Number(info.bavail) * Number(info.bsize), blockSize: Math.min(Number(info.bsize), 4096) };
  } catch {
    return undefined;
  }
}

/** A byte count for people, in SI units: "1.33 GB". */
export function formatBytes(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}

/** Throws, naming `what`, the bytes it needs and where, when the disk holding `dir` has less free space than that. */
export function requireFreeSpace(dir: string, bytes: number, what: string, fix: string, free: FreeSpace | undefined = diskFreeSpace(dir)): void {
  if (free === undefined || free.bytes >= bytes) return;
  throw new Error(
    `Not enough free disk for ${what}: it needs ${formatBytes(bytes)} in ${dir}, which has ${formatBytes(free.bytes)} free. ` +
      `Free some space there, or ${fix}.`,
  );
}
