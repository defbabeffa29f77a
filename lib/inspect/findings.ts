// Notebook 05's "What we found", generated from the run's measurements: do SAE features pick out labelled
// attributes better than dense dimensions and than chance, what the top-16 grids really show (how many faces fire,
// how many distinct faces fill them under each ranking), and, on synthetic faces, how many drawn factors each kind
// recovers. Thresholds are in code; every sentence depends on the numbers it reports.

import { compareValues, type Findings, type Measure, type Verdict } from "../run/findings";
import type { GridSetStats } from "./grid-sets";
import type { MeasureSummary } from "./feature-measures";
import type { Ranking } from "./scan";
import { RECOVERED_AUC } from "./factor-recovery";

/** Median lifts (and AUROCs) closer than this are no different. */
const SAME_LIFT = 0.02;
const SAME_AUROC = 0.01;
/** A face in more than this share of a kind's grids makes the grids repeat each other. */
const CROWDED = 0.05;

/** What the sentences need of one kind of SAE feature. */
export interface SaeKindFacts {
  readonly label: string;
  readonly summary: MeasureSummary;
  /** Random sparse scores as dense as its features. */
  readonly chance: MeasureSummary | null;
  /** Its grids under the blind test's ranking and under the other. */
  readonly ranking: Ranking;
  readonly grids: GridSetStats;
  readonly otherGrids: GridSetStats;
}

export interface InspectFacts {
  readonly k: number;
  readonly dense: { readonly label: string; readonly summary: MeasureSummary };
  readonly randomDense: MeasureSummary | null;
  readonly saes: readonly SaeKindFacts[];
  readonly randomGrids: GridSetStats | null;
  /** Factors recovered (AUROC > RECOVERED_AUC) by label, out of `targets`; null when the dataset has no drawn factors. */
  readonly recovery: { readonly targets: number; readonly recovered: Readonly<Record<string, number>> } | null;
}

const two = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : "n/a");
const capital = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
const rankingWords = (r: Ranking): string => (r === "rows" ? "the post's ranking (each face's activations scaled to length 1)" : "ranking by raw activation");

/** How an SAE kind's top-16 lists compare with the dense dimensions' and with chance. */
export function liftSentence(k: number, sae: SaeKindFacts, dense: InspectFacts["dense"]): string {
  const verdict: Verdict = compareValues(sae.summary.liftMedian, dense.summary.liftMedian, SAME_LIFT);
  const numbers = `median top-${k} lift ${two(sae.summary.liftMedian)} against ${two(dense.summary.liftMedian)}`;
  switch (verdict) {
    case "better":
      return `The top-${k} faces of ${sae.label}'s features share a labelled attribute more than the dense dimensions' do: ${numbers}.`;
    case "worse":
      return `The top-${k} faces of ${sae.label}'s features share a labelled attribute less than the dense dimensions' do: ${numbers}.`;
    case "no different":
      return `The top-${k} faces of ${sae.label}'s features share labelled attributes no more than the dense dimensions' do: ${numbers}.`;
    case "not measured":
      return `The top-${k} lift of ${sae.label} was not measured (no attribute labels, or no feature fires).`;
  }
}

/** Whether an SAE kind's measures beat random sparse scores of the same density. */
export function chanceSentence(sae: SaeKindFacts): string | null {
  if (sae.chance === null) return null;
  const verdict = compareValues(sae.summary.liftMedian, sae.chance.liftMedian, SAME_LIFT);
  if (verdict === "not measured") return null;
  return verdict === "better"
    ? `That is above chance: random sparse scores firing as often reach a median lift of ${two(sae.chance.liftMedian)}.`
    : `That is no better than chance: random sparse scores firing as often reach a median lift of ${two(sae.chance.liftMedian)}, so the lift says little about ${sae.label}.`;
}

/** AUROC over all faces, with its caveat. */
export function aurocSentence(sae: SaeKindFacts, dense: InspectFacts["dense"], randomDense: MeasureSummary | null): string {
  const verdict = compareValues(sae.summary.aurocMedian, dense.summary.aurocMedian, SAME_AUROC);
  const numbers = `median best-attribute AUROC ${two(sae.summary.aurocMedian)} against ${two(dense.summary.aurocMedian)}${randomDense === null ? "" : `; random scores: ${two(randomDense.aurocMedian)}`}`;
  const word = verdict === "better" ? "higher than" : verdict === "worse" ? "lower than" : verdict === "no different" ? "about the same as" : "not comparable with";
  return `Over all faces, ${sae.label}'s features rank attributes ${word} the dense dimensions (${numbers}); AUROC over all faces penalises a feature that fires rarely, which is why the top-k measures stand beside it.`;
}

/** What the grids show: short grids, distinct faces, the other ranking. */
export function gridSentences(k: number, sae: SaeKindFacts, randomGrids: GridSetStats | null): string[] {
  const out: string[] = [];
  const g = sae.grids;
  const few = sae.summary.underfull;
  if (few > 0) out.push(`Of ${sae.label}'s features, ${few} fire${few === 1 ? "s" : ""} on fewer than ${k} faces; ${few === 1 ? "its grid shows" : "their grids show"} only the faces that fire.`);
  const dead = sae.summary.dead;
  if (dead > 0) out.push(`${dead} of its features fire${dead === 1 ? "s" : ""} on no face at all and ${dead === 1 ? "has" : "have"} an empty grid.`);
  const crowded = g.grids > 0 && g.maxGridsPerFace / g.grids > CROWDED;
  const chance = randomGrids === null ? "" : ` (lists of random faces: ${randomGrids.distinctFaces} distinct, at most ${randomGrids.maxGridsPerFace} per face)`;
  out.push(
    `Under ${rankingWords(sae.ranking)}, which the blind test's grids use, ${g.distinctFaces} distinct faces fill the ${g.slots} places of ${sae.label}'s ${g.grids} top-${k} lists and one face is in ${g.maxGridsPerFace} of them${chance}` +
      (crowded ? ": the grids repeat each other." : "."),
  );
  const o = sae.otherGrids;
  const other: Ranking = sae.ranking === "rows" ? "raw" : "rows";
  const verdict = compareValues(o.distinctFaces, g.distinctFaces, Math.max(1, 0.02 * g.distinctFaces));
  const change = verdict === "better" ? "more" : verdict === "worse" ? "fewer" : "about as many";
  out.push(`${capital(rankingWords(other))} would show ${change} distinct faces: ${o.distinctFaces}, at most ${o.maxGridsPerFace} grids per face.`);
  return out;
}

/** Factor recovery on synthetic faces. */
export function recoverySentence(recovery: InspectFacts["recovery"], dense: string, saes: readonly string[]): string {
  if (recovery === null) return "Factor recovery was not measured: only the synthetic faces record the factors they were drawn from.";
  const parts = [dense, ...saes].map((label) => `${label} ${recovery.recovered[label] ?? "n/a"}`);
  const chance = Object.entries(recovery.recovered).filter(([label]) => label.startsWith("chance"));
  const chanceText = chance.length === 0 ? "" : `; random scores ${chance.map(([, n]) => n).join(" / ")}`;
  const kinds = [dense, ...saes];
  const most = Math.max(...kinds.map((label) => recovery.recovered[label] ?? -1));
  const leaders = kinds.filter((label) => (recovery.recovered[label] ?? -1) === most);
  const verdict = leaders.length === kinds.length ? "no kind recovers more than the others" : `${leaders.join(" and ")} recover${leaders.length === 1 && leaders[0] !== dense ? "s" : ""} the most`;
  return `Of the ${recovery.targets} yes/no targets made from the drawn factors, this many are separated by a single feature (AUROC > ${RECOVERED_AUC}): ${parts.join(", ")}${chanceText}; ${verdict}.`;
}

/** Notebook 05's findings from its facts. */
export function inspectFindings(f: InspectFacts): Omit<Findings, "format"> {
  const sentences: string[] = [];
  const measures: Record<string, Measure> = {
    "dense lift median": f.dense.summary.liftMedian,
    "dense AUROC median": f.dense.summary.aurocMedian,
    "random lift median": f.randomDense?.liftMedian ?? null,
    "random AUROC median": f.randomDense?.aurocMedian ?? null,
  };
  for (const sae of f.saes) {
    sentences.push(liftSentence(f.k, sae, f.dense));
    const chance = chanceSentence(sae);
    if (chance !== null) sentences.push(chance);
    sentences.push(aurocSentence(sae, f.dense, f.randomDense));
    sentences.push(...gridSentences(f.k, sae, f.randomGrids));
    Object.assign(measures, {
      [`${sae.label} lift median`]: sae.summary.liftMedian,
      [`${sae.label} chance lift median`]: sae.chance?.liftMedian ?? null,
      [`${sae.label} AUROC median`]: sae.summary.aurocMedian,
      [`${sae.label} precision median`]: sae.summary.precisionMedian,
      [`${sae.label} recall median`]: sae.summary.recallMedian,
      [`${sae.label} short grids`]: sae.summary.underfull,
      [`${sae.label} distinct faces`]: sae.grids.distinctFaces,
      [`${sae.label} slots`]: sae.grids.slots,
      [`${sae.label} most grids per face`]: sae.grids.maxGridsPerFace,
    });
  }
  sentences.push(recoverySentence(f.recovery, f.dense.label, f.saes.map((s) => s.label)));
  measures["factor targets"] = f.recovery?.targets ?? null;
  for (const [label, n] of Object.entries(f.recovery?.recovered ?? {})) measures[`${label} factors recovered`] = n;
  return { notebook: "05-inspect", sentences, measures };
}
