// How many different faces a set of top-16 lists shows. Sixteen faces per feature over 512 features is 8,192 slots;
// when a few faces fill many of them (a face with large activations everywhere tops many features once each face's
// activations are scaled to length 1), the grids repeat each other and say less than they seem to. The chance row
// is the same number of lists of random faces.

import type { Row } from "../display/html-table";
import { Rng } from "../util/random";
import type { FeatureTop } from "./top-activations";

export interface GridSetStats {
  /** Lists (grids) in the set, and the faces they show in all (slots filled). */
  readonly grids: number;
  readonly slots: number;
  readonly distinctFaces: number;
  /** The face shown in the most grids, and in how many. */
  readonly maxGridsPerFace: number;
  readonly mostSharedFace: number | null;
  /** Grids with fewer than k faces (features that fire on fewer than k faces). */
  readonly short: number;
}

/** The statistics of the top lists of `features` (all when omitted). */
export function gridSetStats(tops: readonly FeatureTop[], k: number, features?: readonly number[]): GridSetStats {
  const chosen = features === undefined ? tops : features.map((f) => tops.find((t) => t.feature === f)).filter((t): t is FeatureTop => t !== undefined);
  const count = new Map<number, number>();
  let slots = 0;
  for (const top of chosen) {
    for (const row of top.rows) count.set(row, (count.get(row) ?? 0) + 1);
    slots += top.rows.length;
  }
  let maxGridsPerFace = 0;
  let mostSharedFace: number | null = null;
  for (const [row, n] of count) {
    if (n > maxGridsPerFace || (n === maxGridsPerFace && mostSharedFace !== null && row < mostSharedFace)) {
      maxGridsPerFace = n;
      mostSharedFace = row;
    }
  }
  return { grids: chosen.length, slots, distinctFaces: count.size, maxGridsPerFace, mostSharedFace, short: chosen.filter((t) => t.rows.length < k).length };
}

/** `grids` lists of k distinct random faces out of `faces` (seeded): what the statistics look like by chance. */
export function randomGridSetStats(grids: number, k: number, faces: number, seed: number): GridSetStats {
  const rng = new Rng(seed, 0x9d5e7);
  const tops: FeatureTop[] = [];
  for (let g = 0; g < grids; g++) {
    const rows = new Set<number>();
    while (rows.size < Math.min(k, faces)) rows.add(Math.floor(rng.next() * faces));
    tops.push({ feature: g, rows: [...rows], values: [] });
  }
  return gridSetStats(tops, k);
}

/** A row of the distinct-faces table. */
export function gridSetRow(all: GridSetStats, shown: GridSetStats, usedByBlindTest: boolean | null): Row {
  return {
    grids: all.grids,
    "faces shown (slots)": all.slots,
    "distinct faces": all.distinctFaces,
    "most grids one face is in": all.maxGridsPerFace,
    "short grids": all.short,
    "blind test's grids: distinct faces": shown.distinctFaces,
    "of slots": shown.slots,
    "blind test uses this ranking": usedByBlindTest === null ? "" : usedByBlindTest ? "yes" : "no",
  };
}
