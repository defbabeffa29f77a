// The statistics of the blind test's analysis, equal to the Python tools the post used (scipy's ttest_ind; pandas'
// describe() table is lib/display/html-table `describeColumns`) and to the ones a careful analysis adds (Welch's
// t-test, Mann–Whitney U, Cohen's d, a bootstrap confidence interval, the sample size for 80 % power).
//
// simple-statistics gives the plain sample statistics (mean, sample variance, sum, numpy's "linear" quantile) and
// ln Γ (Lanczos, g = 607/128: within 2e-15 of scipy). It has no Student t distribution and its error function is
// an approximation about 1e-7 off, too coarse for p-values, so the distributions are our own: the t CDF is the
// regularized incomplete beta function (continued fraction, Lentz's method), the normal one the regularized
// incomplete gamma function of ½ (erfc); both agree with scipy to ~1e-14.
// Checked against scipy 1.10 / pandas 1.5 in test/fixtures/statistics/ (test/statistics.test.ts; the
// simple-statistics functions themselves in test/simple-statistics.test.ts).

import { gammaln, mean, quantileSorted, sampleVariance, sum } from "simple-statistics";
import { Rng } from "./random";

// ---------------------------------------------------------------------------------------------------------------
// Special functions

const EPS = 1e-16;
const TINY = 1e-300;
const MAX_ITERATIONS = 10_000;

/** The continued fraction of the incomplete beta function (Numerical Recipes' betacf, modified Lentz). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= MAX_ITERATIONS; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPS) return h;
  }
  throw new Error(`incomplete beta: no convergence for a=${a}, b=${b}, x=${x}`);
}

/** The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 ≤ x ≤ 1. */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (!(a > 0) || !(b > 0)) throw new RangeError(`regularizedIncompleteBeta: a and b must be > 0, got a=${a}, b=${b}`);
  if (!(x >= 0 && x <= 1)) throw new RangeError(`regularizedIncompleteBeta: x must be in [0, 1], got ${x}`);
  if (x === 0 || x === 1) return x;
  const logFront = gammaln(a + b) - gammaln(a) - gammaln(b) + a * Math.log(x) + b * Math.log1p(-x);
  // The continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry I_x(a,b) = 1 − I_{1−x}(b,a) above.
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(logFront) * betaContinuedFraction(a, b, x)) / a;
  return 1 - (Math.exp(logFront) * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** The regularized upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a). */
export function regularizedGammaQ(a: number, x: number): number {
  if (!(a > 0) || !(x >= 0)) throw new RangeError(`regularizedGammaQ: needs a > 0 and x ≥ 0, got a=${a}, x=${x}`);
  if (x === 0) return 1;
  const logFront = -x + a * Math.log(x) - gammaln(a);
  if (x < a + 1) {
    // Series for P(a, x).
    let ap = a;
    let sum = 1 / a;
    let del = sum;
    for (let n = 0; n < MAX_ITERATIONS; n++) {
      ap += 1;
      del *= x / ap;
      sum += del;
      if (Math.abs(del) < Math.abs(sum) * EPS) return 1 - sum * Math.exp(logFront);
    }
    throw new Error(`incomplete gamma: no convergence for a=${a}, x=${x}`);
  }
  // Continued fraction for Q(a, x) (modified Lentz).
  let b = x + 1 - a;
  let c = 1 / TINY;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i <= MAX_ITERATIONS; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < TINY) d = TINY;
    c = b + an / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPS) return Math.exp(logFront) * h;
  }
  throw new Error(`incomplete gamma: no convergence for a=${a}, x=${x}`);
}

/** The standard normal survival function P(Z > z) (accurate in both tails). */
export function normalSf(z: number): number {
  if (Number.isNaN(z)) return Number.NaN;
  if (!Number.isFinite(z)) return z > 0 ? 0 : 1;
  const q = 0.5 * regularizedGammaQ(0.5, (z * z) / 2);
  return z >= 0 ? q : 1 - q;
}

/** Student's t survival function P(T > t) with `df` degrees of freedom (df > 0, not necessarily an integer). */
export function studentTSf(t: number, df: number): number {
  if (!(df > 0)) throw new RangeError(`studentTSf: df must be > 0, got ${df}`);
  if (Number.isNaN(t)) return Number.NaN;
  if (!Number.isFinite(t)) return t > 0 ? 0 : 1;
  // P(|T| > |t|) = I_x(df/2, ½) with x = df/(df+t²); for small t, 1 − x = t²/(df+t²) is computed directly (x itself
  // would round to 1) and the symmetric form I_x(a, b) = 1 − I_{1−x}(b, a) is used.
  const t2 = t * t;
  const tail = t2 < df ? 0.5 * (1 - regularizedIncompleteBeta(t2 / (df + t2), 0.5, df / 2)) : 0.5 * regularizedIncompleteBeta(df / (df + t2), df / 2, 0.5);
  return t >= 0 ? tail : 1 - tail;
}

/** Inverts a decreasing survival function by bisection on a bracket that is widened as needed. */
function invertSf(sf: (x: number) => number, p: number, what: string): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`${what}: probability must be in (0, 1), got ${p}`);
  let lo = -1;
  let hi = 1;
  while (sf(lo) < p) lo *= 2;
  while (sf(hi) > p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-13 * Math.max(1, Math.abs(lo)); i++) {
    const mid = (lo + hi) / 2;
    if (sf(mid) > p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The standard normal quantile: z with P(Z ≤ z) = p. */
export function normalQuantile(p: number): number {
  return invertSf((z) => normalSf(z), 1 - p, "normalQuantile");
}

/** Student's t quantile: t with P(T ≤ t) = p. */
export function studentTQuantile(p: number, df: number): number {
  return invertSf((t) => studentTSf(t, df), 1 - p, "studentTQuantile");
}

// ---------------------------------------------------------------------------------------------------------------
// Samples

function sampleOf(values: ArrayLike<number>, name: string, minimum: number): number[] {
  const out = Array.from(values);
  const bad = out.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new RangeError(`${name}: value ${bad} is ${out[bad]}; give finite numbers only (drop missing ratings first)`);
  if (out.length < minimum) throw new RangeError(`${name}: needs at least ${minimum} values, got ${out.length}`);
  return out;
}

/** A test's result, named as scipy names them. */
export interface TestResult {
  readonly statistic: number;
  readonly pvalue: number;
}

export interface TTestResult extends TestResult {
  readonly df: number;
}

/** A t-test from summary statistics (scipy's `ttest_ind_from_stats`): Student's pooled test, or Welch's. */
export function tTestFromStats(
  mean1: number, std1: number, n1: number,
  mean2: number, std2: number, n2: number,
  equalVariance = true,
): TTestResult {
  const v1 = std1 * std1;
  const v2 = std2 * std2;
  let df: number;
  let denominator: number;
  if (equalVariance) {
    df = n1 + n2 - 2;
    const pooled = ((n1 - 1) * v1 + (n2 - 1) * v2) / df;
    denominator = Math.sqrt(pooled * (1 / n1 + 1 / n2));
  } else {
    const a = v1 / n1;
    const b = v2 / n2;
    df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n2 - 1));
    denominator = Math.sqrt(a + b);
  }
  const statistic = (mean1 - mean2) / denominator;
  // Samples that do not vary leave t (or Welch's df) undefined: NaN, as scipy's nan.
  if (Number.isNaN(statistic) || !(df > 0)) return { statistic, df, pvalue: Number.NaN };
  return { statistic, df, pvalue: Math.min(1, 2 * studentTSf(Math.abs(statistic), df)) };
}

/** scipy's `ttest_ind(a, b)` (default: Student's two-sample t-test, pooled variance, two-sided). */
export function tTestInd(a: ArrayLike<number>, b: ArrayLike<number>, options: { equalVariance?: boolean } = {}): TTestResult {
  const x = sampleOf(a, "tTestInd (first sample)", 2);
  const y = sampleOf(b, "tTestInd (second sample)", 2);
  return tTestFromStats(mean(x), Math.sqrt(sampleVariance(x)), x.length, mean(y), Math.sqrt(sampleVariance(y)), y.length, options.equalVariance ?? true);
}

/** Welch's t-test: scipy's `ttest_ind(a, b, equal_var=False)`. */
export function welchTTest(a: ArrayLike<number>, b: ArrayLike<number>): TTestResult {
  return tTestInd(a, b, { equalVariance: false });
}

/** Ranks with ties given their average rank (scipy's `rankdata`, method "average"), 1-based. */
export function rankAverage(values: readonly number[]): number[] {
  const order = values.map((_, i) => i).sort((i, j) => values[i] - values[j]);
  const ranks = new Array<number>(values.length);
  for (let start = 0; start < order.length; ) {
    let end = start + 1;
    while (end < order.length && values[order[end]] === values[order[start]]) end++;
    const rank = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) ranks[order[k]] = rank;
    start = end;
  }
  return ranks;
}

/** Σ (t³ − t) over groups of tied values. */
function tieTerm(values: readonly number[]): number {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let sum = 0;
  for (const t of counts.values()) sum += t ** 3 - t;
  return sum;
}

/**
 * How many of the C(m+n, m) arrangements give each U = 0..m·n (the exact null distribution of U): the coefficients
 * of the Gaussian binomial [m+n choose m]_q = ∏_{i=1..m} (1 − q^{n+i}) / (1 − q^i), built with the smaller sample
 * as m, so the work is O(m²·n) and the memory one array of m·n + 1 numbers.
 */
function mannWhitneyCounts(n1: number, n2: number): Float64Array {
  const m = Math.min(n1, n2);
  const n = Math.max(n1, n2);
  const c = new Float64Array(m * n + 1);
  c[0] = 1;
  for (let i = 1; i <= m; i++) {
    const a = n + i;
    for (let k = m * n; k >= a; k--) c[k] -= c[k - a]; // × (1 − q^a)
    for (let k = i; k <= m * n; k++) c[k] += c[k - i]; // ÷ (1 − q^i)
  }
  return c;
}

export interface MannWhitneyResult extends TestResult {
  /** "exact" (small samples without ties) or "asymptotic" (normal approximation, tie and continuity corrected). */
  readonly method: "exact" | "asymptotic";
}

/**
 * scipy 1.10's `mannwhitneyu(x, y)` with its defaults: two-sided, continuity correction, method "auto" — exact
 * when either sample has at most 8 values and there are no ties, else the normal approximation with the tie
 * correction. The statistic is U of the first sample.
 */
export function mannWhitneyU(a: ArrayLike<number>, b: ArrayLike<number>): MannWhitneyResult {
  const x = sampleOf(a, "mannWhitneyU (first sample)", 1);
  const y = sampleOf(b, "mannWhitneyU (second sample)", 1);
  const n1 = x.length;
  const n2 = y.length;
  const all = [...x, ...y];
  const ranks = rankAverage(all);
  const u1 = sum(ranks.slice(0, n1)) - (n1 * (n1 + 1)) / 2;
  const u = Math.max(u1, n1 * n2 - u1);
  const ties = tieTerm(all);
  const method = n1 > 8 && n2 > 8 ? "asymptotic" : ties > 0 ? "asymptotic" : "exact";
  let p: number;
  if (method === "exact") {
    const counts = mannWhitneyCounts(n1, n2);
    let total = 0;
    let atLeast = 0;
    for (let k = 0; k < counts.length; k++) {
      total += counts[k];
      if (k >= u) atLeast += counts[k];
    }
    p = atLeast / total;
  } else {
    const n = n1 + n2;
    const sd = Math.sqrt(((n1 * n2) / 12) * (n + 1 - ties / (n * (n - 1))));
    p = normalSf((u - (n1 * n2) / 2 - 0.5) / sd);
  }
  return { statistic: u1, pvalue: Math.min(1, Math.max(0, 2 * p)), method };
}

/** Cohen's d: the difference of means over the pooled sample standard deviation. */
export function cohensD(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const x = sampleOf(a, "cohensD (first sample)", 2);
  const y = sampleOf(b, "cohensD (second sample)", 2);
  const pooled = ((x.length - 1) * sampleVariance(x) + (y.length - 1) * sampleVariance(y)) / (x.length + y.length - 2);
  return (mean(x) - mean(y)) / Math.sqrt(pooled);
}

export interface ConfidenceInterval {
  readonly estimate: number;
  readonly low: number;
  readonly high: number;
  readonly level: number;
  readonly resamples: number;
  readonly seed: number;
}

/**
 * A percentile bootstrap confidence interval of mean(a) − mean(b): each sample resampled with replacement
 * (separately), `resamples` times, from a seeded generator (the same seed gives the same interval).
 */
export function bootstrapMeanDifference(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  options: { resamples?: number; level?: number; seed?: number } = {},
): ConfidenceInterval {
  const x = sampleOf(a, "bootstrapMeanDifference (first sample)", 1);
  const y = sampleOf(b, "bootstrapMeanDifference (second sample)", 1);
  const resamples = options.resamples ?? 10_000;
  const level = options.level ?? 0.95;
  const seed = options.seed ?? 0;
  if (!(level > 0 && level < 1)) throw new RangeError(`bootstrapMeanDifference: level must be in (0, 1), got ${level}`);
  const rng = new Rng(seed, 0x5eed);
  const resampledMean = (v: readonly number[]): number => {
    let sum = 0;
    for (let i = 0; i < v.length; i++) sum += v[Math.floor(rng.next() * v.length)];
    return sum / v.length;
  };
  const differences = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) differences[r] = resampledMean(x) - resampledMean(y);
  differences.sort();
  const sorted = Array.from(differences);
  const alpha = (1 - level) / 2;
  return {
    estimate: mean(x) - mean(y),
    low: quantileSorted(sorted, alpha),
    high: quantileSorted(sorted, 1 - alpha),
    level,
    resamples,
    seed,
  };
}

export interface PowerEstimate {
  /** Ratings needed per group (dense and sparse each). */
  readonly perGroup: number;
  readonly effectSize: number;
  readonly power: number;
  readonly alpha: number;
}

/**
 * How many ratings per group a two-sided Student t-test needs to detect effect size `d` (Cohen's d) with the
 * given power at level alpha: the smallest n with 2·((t_{1−α/2, 2n−2} + t_{power, 2n−2}) / d)² ≤ n — the normal
 * formula with t quantiles at the design's degrees of freedom (within one rating of the exact noncentral-t answer
 * for the effects that matter here).
 */
export function sampleSizeForPower(d: number, options: { power?: number; alpha?: number } = {}): PowerEstimate {
  const power = options.power ?? 0.8;
  const alpha = options.alpha ?? 0.05;
  if (!(Math.abs(d) > 0) || !Number.isFinite(d)) {
    throw new RangeError(`sampleSizeForPower: the effect size must be a non-zero finite number, got ${d}`);
  }
  const required = (n: number): number => {
    const df = 2 * n - 2;
    return 2 * ((studentTQuantile(1 - alpha / 2, df) + studentTQuantile(power, df)) / Math.abs(d)) ** 2;
  };
  // t quantiles exceed normal ones, so the normal formula's n is a lower bound: count up from there.
  const normal = 2 * ((normalQuantile(1 - alpha / 2) + normalQuantile(power)) / Math.abs(d)) ** 2;
  let n = Math.max(2, Math.floor(normal));
  while (required(n) > n) n++;
  return { perGroup: n, effectSize: d, power, alpha };
}

/** "t-stat: 2.2486, pvalue: 0.0320", as the post prints scipy's result. */
export function formatTTest(result: TestResult): string {
  return `t-stat: ${result.statistic.toFixed(4)}, pvalue: ${result.pvalue.toFixed(4)}`;
}

/**
 * One row of `compareRatings`: a test's statistic, its p-value where it has one, and how it was computed. A type, not
 * an interface, so that it is a table row (lib/display/html-table's Row, a record of cells) as notebook 06 shows it.
 */
export type ComparisonRow = {
  readonly statistic: number | null;
  readonly "p-value": number | null;
  readonly note: string;
};

/**
 * Everything the blind test's analysis reports beyond the post's t-test, as table rows (test → statistic, p-value,
 * note). Degenerate samples (all ratings equal) give NaN where scipy gives nan, and the power row says why.
 */
export function compareRatings(
  sparse: readonly number[],
  dense: readonly number[],
  options: { seed?: number; resamples?: number } = {},
): Record<string, ComparisonRow> {
  const student = tTestInd(sparse, dense);
  const welch = welchTTest(sparse, dense);
  const mwu = mannWhitneyU(sparse, dense);
  const d = cohensD(sparse, dense);
  const ci = bootstrapMeanDifference(sparse, dense, { seed: options.seed ?? 0, resamples: options.resamples ?? 10_000 });
  let power: string;
  if (Number.isFinite(d) && d !== 0) {
    const estimate = sampleSizeForPower(d);
    power = `${estimate.perGroup} grids of each kind for 80 % power at α = 0.05 (d = ${d.toFixed(2)})`;
  } else {
    power = "undefined: the observed effect is zero or the ratings do not vary";
  }
  return {
    "Student's t (scipy ttest_ind, the post's)": { statistic: student.statistic, "p-value": student.pvalue, note: `df = ${student.df}` },
    "Welch's t (equal_var=False)": { statistic: welch.statistic, "p-value": welch.pvalue, note: `df = ${welch.df.toFixed(1)}` },
    "Mann–Whitney U (ratings are ordinal)": { statistic: mwu.statistic, "p-value": mwu.pvalue, note: `${mwu.method}, two-sided` },
    "Cohen's d (sparse − dense)": { statistic: d, "p-value": null, note: "pooled sample standard deviation" },
    "mean difference, bootstrap CI": {
      statistic: ci.estimate,
      "p-value": null,
      note: `${(ci.level * 100).toFixed(0)} % CI [${ci.low.toFixed(3)}, ${ci.high.toFixed(3)}] (${ci.resamples} resamples, seed ${ci.seed})`,
    },
    "ratings needed": { statistic: null, "p-value": null, note: power },
  };
}
