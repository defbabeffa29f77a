// An id of a list of image files as they are on disk now: the SHA-256 of every file's name, size and modification
// time, in order. Hashing the images' bytes would read the whole dataset (1.3 GB for CelebA) every time a stage
// starts; sizes and modification times are what make, rsync and git's index use to notice a changed file, and cost
// one stat per image (about a second for CelebA's 202,599). Replacing an image in place under the same name changes
// its modification time, so whatever was made from the old image (a cache, the list of usable images, a model, face
// vectors) is noticed as stale.

import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";

/** Files stat'ed at once. */
const STATS_IN_FLIGHT = 64;

/**
 * The id of the files at `paths` (hashed under `names`, e.g. dataset-relative names so that moving the dataset
 * folder keeps its id): 64 hex digits. A missing file counts as missing, not as an error.
 */
export async function imageFilesId(paths: readonly string[], names: readonly string[] = paths): Promise<string> {
  if (names.length !== paths.length) throw new RangeError(`imageFilesId: ${paths.length} paths but ${names.length} names`);
  const lines: string[] = new Array<string>(paths.length);
  for (let start = 0; start < paths.length; start += STATS_IN_FLIGHT) {
    const end = Math.min(paths.length, start + STATS_IN_FLIGHT);
    await Promise.all(
      paths.slice(start, end).map(async (path, k) => {
        const i = start + k;
        const info = await stat(path).catch(() => null);
        lines[i] = info === null ? `${names[i]}\tmissing\n` : `${names[i]}\t${info.size}\t${info.mtimeMs}\n`;
      }),
    );
  }
  const hash = createHash("sha256");
  for (const line of lines) hash.update(line);
  return hash.digest("hex");
}
