// How well a score (or a yes/no rule) picks out a binary label: the measures shared by the embedding's evaluation
// (embed/identity-metrics) and the features' (inspect/), computed exactly.
//
//   rocAuc          P(a positive scores above a negative), ties counted half: 0.5 is chance, 1 a perfect ranking
//   precision, recall and F1 of a yes/no rule ("the feature fires") against the label, from its counts:
//                   precision P(label | yes), recall P(yes | label), and their harmonic mean
// test/feature-measures.test.ts checks them against numpy/scipy (test/fixtures/feature-measures/make.py).

/** ROC AUC of scores for binary labels (Mann–Whitney U with average ranks for ties); NaN without both classes. */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<boolean>): number {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let positives = 0;
  let rankSum = 0;
  for (let start = 0; start < n; ) {
    let end = start + 1;
    while (end < n && scores[order[end]] === scores[order[start]]) end++;
    const rank = (start + 1 + end) / 2; // average of ranks start+1 … end
    for (let k = start; k < end; k++) {
      if (labels[order[k]]) {
        positives++;
        rankSum += rank;
      }
    }
    start = end;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return Number.NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** A yes/no rule against a label. */
export interface PrecisionRecall {
  /** P(label | yes); NaN when the rule never says yes. */
  readonly precision: number;
  /** P(yes | label); NaN when no item has the label. */
  readonly recall: number;
  /** 2·precision·recall / (precision + recall), 0 when nothing is right, NaN when either is undefined. */
  readonly f1: number;
}

/** Precision, recall and F1 from the counts of a rule: true positives, items it says yes to, items with the label. */
export function precisionRecallFromCounts(truePositives: number, predicted: number, positives: number): PrecisionRecall {
  const precision = predicted > 0 ? truePositives / predicted : Number.NaN;
  const recall = positives > 0 ? truePositives / positives : Number.NaN;
  const f1 = predicted > 0 && positives > 0 ? (2 * truePositives) / (predicted + positives) : Number.NaN;
  return { precision, recall, f1 };
}
