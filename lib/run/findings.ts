// What a notebook found, as data: the sentences of its "What we found" paragraph, generated from the run's numbers
// with thresholds in code, and the numbers themselves. Each notebook saves its findings as
// runs/<run>/findings/<notebook>.json (lib/run/files); the exported post's Findings section composes them. A
// notebook whose findings file is missing is reported as "not measured", never guessed.

import { existsSync, readFileSync } from "node:fs";
import { runFiles, type FindingsNotebook } from "./files";

import { showMarkdown } from "../display/notebook-display";

import { writeFileAtomicSync } from "../util/atomic-write";


/** A measured value, or null when it was not measured. */
export type Measure = number | string | boolean | null;

export interface Findings {
  readonly format: "celeba-sae/findings@1";
  readonly notebook: FindingsNotebook;
  /** The "What we found" paragraph, one sentence per entry. */
  readonly sentences: readonly string[];
  /** The numbers behind them, by name (e.g. "sparse mean rating"). */
  readonly measures: Readonly<Record<string, Measure>>;
}

/** Writes runs/<run>/findings/<notebook>.json atomically; returns its path. */
export function saveFindings(run: string, findings: Omit<Findings, "format">): string {
  const path = runFiles(run).findings[findings.notebook];
  writeFileAtomicSync(path, JSON.stringify({ format: "celeba-sae/findings@1", ...findings }, null, 1) + "\n");
  return path;
}

/** A notebook's findings, or null when it has not recorded any (not run, or a notebook that records none yet). */
export function loadFindings(run: string, notebook: FindingsNotebook): Findings | null {
  const path = runFiles(run).findings[notebook];
  if (!existsSync(path)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`${path} is not valid JSON (${(e as Error).message}): re-run notebook ${notebook}`);
  }
  const f = parsed as Partial<Findings>;
  if (f.format !== "celeba-sae/findings@1" || !Array.isArray(f.sentences) || typeof f.measures !== "object" || f.measures === null) {
    throw new Error(`${path} is not a findings file of this project (format "celeba-sae/findings@1"): re-run notebook ${notebook}`);
  }
  return { format: f.format, notebook, sentences: f.sentences, measures: f.measures };
}

/** How one measurement compares with another, or with a yardstick. */
export type Verdict = "better" | "worse" | "no different" | "not measured";

/**
 * `a` against `b` where higher is better: "better" when a exceeds b by more than `margin`, "worse" when it falls
 * short by more, else "no different"; "not measured" when either is missing or not a number.
 */
export function compareValues(a: number | null | undefined, b: number | null | undefined, margin: number): Verdict {
  if (a === null || a === undefined || b === null || b === undefined || !Number.isFinite(a) || !Number.isFinite(b)) return "not measured";
  if (a - b > margin) return "better";
  if (b - a > margin) return "worse";
  return "no different";
}

/**
 * Two groups compared by a test: "better" / "worse" when p < alpha and the difference has that sign, "no
 * different" otherwise; "not measured" without a p-value or a difference.
 */
export function compareByTest(difference: number | null | undefined, p: number | null | undefined, alpha = 0.05): Verdict {
  if (difference === null || difference === undefined || p === null || p === undefined || !Number.isFinite(difference) || !Number.isFinite(p)) return "not measured";
  if (p >= alpha || difference === 0) return "no different";
  return difference > 0 ? "better" : "worse";
}

/** A fraction as a percentage; large ones in exponent form (an SAE can explain −1.4e8 % of the variance). */
export function percent(x: number, digits = 1): string {
  const p = 100 * x;
  return Math.abs(p) >= 1e4 ? `${p.toExponential(1)} %` : `${p.toFixed(digits)} %`;
}

/** A p-value as the post prints it (4 decimals: 0.0320), or "< 0.001". */
export function pValue(p: number): string {
  return p < 0.001 ? "< 0.001" : p.toFixed(4);
}

/** Shows a notebook's findings as its "What we found" paragraph. */
export function showFindings(findings: Pick<Findings, "sentences">): void {
  showMarkdown(findings.sentences.join(" "));
}
