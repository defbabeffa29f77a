// Does an embedding tell one person from another? The arithmetic of the identity measures, on a similarity matrix
// and the person of each row (no tensors, no I/O): fine-tuning's held-out curve (lib/model/held-out) and notebook
// 03's before/after table (lib/embed/identity-metrics) both count with these.
//
//   same-identity retrieval   for each face with another picture of the same person: is one of them the nearest
//                             neighbour (recall@1), among the 10 nearest (recall@10)?
//   verification ROC AUC      over all pairs: how well the similarity separates same-person pairs from
//                             different-person pairs (0.5 = chance, 1 = perfect)

import { rocAuc } from "./classification";

export interface RetrievalResult {
  /** recall[k] for each k asked. */
  readonly recall: Readonly<Record<number, number>>;
  /** Faces with at least one other picture of the same person in the sample. */
  readonly queries: number;
}

/**
 * Same-identity retrieval from an n × n similarity matrix: a query counts as found at k when fewer than k faces of
 * other people are at least as similar as its most similar same-person face (ties count against it).
 */
export function retrievalRecall(sim: ArrayLike<number>, ids: ArrayLike<number>, ks: readonly number[] = [1, 10]): RetrievalResult {
  const n = ids.length;
  if (sim.length !== n * n) throw new Error(`retrievalRecall: ${sim.length} similarities for ${n} faces (expected ${n * n})`);
  const hits = ks.map(() => 0);
  let queries = 0;
  for (let i = 0; i < n; i++) {
    let best = -Infinity;
    for (let j = 0; j < n; j++) if (j !== i && ids[j] === ids[i]) best = Math.max(best, sim[i * n + j]);
    if (best === -Infinity) continue;
    queries++;
    let above = 0;
    for (let j = 0; j < n; j++) if (ids[j] !== ids[i] && sim[i * n + j] >= best) above++;
    ks.forEach((k, m) => {
      if (above < k) hits[m]++;
    });
  }
  const recall: Record<number, number> = {};
  ks.forEach((k, m) => (recall[k] = queries > 0 ? hits[m] / queries : Number.NaN));
  return { recall, queries };
}

/** Verification ROC AUC over all pairs i < j: the similarity as the score, "same person" as the label. */
export function verificationAuc(sim: ArrayLike<number>, ids: ArrayLike<number>): number {
  const n = ids.length;
  const pairs = (n * (n - 1)) / 2;
  const scores = new Float32Array(pairs);
  const same: boolean[] = new Array<boolean>(pairs);
  let p = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      scores[p] = sim[i * n + j];
      same[p++] = ids[i] === ids[j];
    }
  }
  return rocAuc(scores, same);
}

/** The three identity numbers of one embedding of a sample. */
export interface IdentityScores {
  readonly recall1: number;
  readonly recall10: number;
  readonly auc: number;
  /** Faces with another picture of the same person in the sample (recall's denominator). */
  readonly queries: number;
  /** Pairs of the sample showing one person, and two (the AUC's positives and negatives). */
  readonly samePairs: number;
  readonly differentPairs: number;
}

/** Same-person and different-person pairs i < j among faces of these people. */
export function pairCounts(ids: ArrayLike<number>): { same: number; different: number } {
  const counts = new Map<number, number>();
  for (let i = 0; i < ids.length; i++) counts.set(ids[i], (counts.get(ids[i]) ?? 0) + 1);
  let same = 0;
  for (const c of counts.values()) same += (c * (c - 1)) / 2;
  return { same, different: (ids.length * (ids.length - 1)) / 2 - same };
}

/** recall@1, recall@10 and verification AUC of a similarity matrix. */
export function identityScores(sim: ArrayLike<number>, ids: ArrayLike<number>): IdentityScores {
  const r = retrievalRecall(sim, ids, [1, 10]);
  const pairs = pairCounts(ids);
  return { recall1: r.recall[1], recall10: r.recall[10], auc: verificationAuc(sim, ids), queries: r.queries, samePairs: pairs.same, differentPairs: pairs.different };
}

/**
 * The standard error of a ROC AUC over `positives` and `negatives` (Hanley & McNeil, 1982). Pairs that share a face
 * are not independent, so it errs on the small side; it grows large when few pairs show one person.
 */
export function aucStandardError(auc: number, positives: number, negatives: number): number {
  if (!(positives > 0 && negatives > 0) || !Number.isFinite(auc)) return Number.POSITIVE_INFINITY;
  const q1 = auc / (2 - auc);
  const q2 = (2 * auc * auc) / (1 + auc);
  const a2 = auc * auc;
  return Math.sqrt((auc * (1 - auc) + (positives - 1) * (q1 - a2) + (negatives - 1) * (q2 - a2)) / (positives * negatives));
}

/**
 * recall@k by chance: the expected recall when the similarities are random (no ties). For a query with m other
 * pictures of its person among the n − 1 other faces, the k nearest miss all of them with probability
 * C(n − 1 − m, k) / C(n − 1, k); recall@k by chance is the mean over queries of one minus that.
 */
export function chanceRecall(ids: ArrayLike<number>, k: number): number {
  const n = ids.length;
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) counts.set(ids[i], (counts.get(ids[i]) ?? 0) + 1);
  let sum = 0;
  let queries = 0;
  for (let i = 0; i < n; i++) {
    const m = counts.get(ids[i])! - 1;
    if (m === 0) continue;
    queries++;
    // C(n−1−m, k) / C(n−1, k) = Π_{j<k} (n−1−m−j) / (n−1−j)
    let miss = 1;
    for (let j = 0; j < k && miss > 0; j++) miss *= Math.max(0, n - 1 - m - j) / (n - 1 - j);
    sum += 1 - miss;
  }
  return queries > 0 ? sum / queries : Number.NaN;
}
