// The blind test's statistics against scipy 1.10 / pandas 1.5 (test/fixtures/statistics/make_fixtures.py).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { projectRoot } from "../lib/util/project";
import {
  bootstrapMeanDifference,
  cohensD,
  compareRatings,
  formatTTest,
  mannWhitneyU,
  normalQuantile,
  normalSf,
  rankAverage,
  regularizedIncompleteBeta,
  sampleSizeForPower,
  studentTQuantile,
  studentTSf,
  tTestFromStats,
  tTestInd,
  welchTTest,
} from "../lib/util/statistics";
import { describeColumns as describeTable } from "../lib/display/html-table";

interface Pair { statistic: number; pvalue: number }
interface Dataset {
  a: number[];
  b: number[];
  student: Pair;
  welch: Pair;
  mannwhitneyu: Pair;
  cohens_d: number;
  describe: Record<"a" | "b", Record<string, number>>;
}
interface Fixtures {
  datasets: Record<string, Dataset>;
  post: Pair;
  t_sf: { t: number; df: number; sf: number }[];
  norm_sf: { z: number; sf: number }[];
  betainc: { a: number; b: number; x: number; value: number }[];
  t_ppf: { p: number; df: number; ppf: number }[];
  power: { d: number; perGroup: number }[];
}

const fixtures = JSON.parse(readFileSync(join(projectRoot(), "test", "fixtures", "statistics", "statistics.json"), "utf8")) as Fixtures;

/** |actual − expected| within rel·|expected| (+ a tiny absolute floor). */
function close(actual: number, expected: number, rel = 1e-9): void {
  expect(Math.abs(actual - expected), `${actual} vs ${expected}`).toBeLessThanOrEqual(rel * Math.abs(expected) + 1e-12);
}

describe("the post's own table", () => {
  it("n = 16 each, means 4.4375 and 3.25, stds 1.547848 and 1.437591: t = 2.2486, p = 0.0320", () => {
    const r = tTestFromStats(4.4375, 1.547848, 16, 3.25, 1.437591, 16);
    expect(r.statistic.toFixed(4)).toBe("2.2486");
    expect(r.pvalue.toFixed(4)).toBe("0.0320");
    expect(r.df).toBe(30);
    close(r.statistic, fixtures.post.statistic, 1e-12);
    close(r.pvalue, fixtures.post.pvalue, 1e-10);
  });
});

describe("distribution functions equal scipy's", () => {
  it("regularized incomplete beta", () => {
    for (const c of fixtures.betainc) close(regularizedIncompleteBeta(c.x, c.a, c.b), c.value, 1e-11);
  });
  it("Student t survival function, both tails, fractional df", () => {
    for (const c of fixtures.t_sf) close(studentTSf(c.t, c.df), c.sf, 1e-9);
  });
  it("normal survival function, far into the tail", () => {
    for (const c of fixtures.norm_sf) close(normalSf(c.z), c.sf, 1e-11);
  });
  it("quantiles invert the CDFs", () => {
    for (const c of fixtures.t_ppf) close(studentTQuantile(c.p, c.df), c.ppf, 1e-9);
    close(normalQuantile(0.975), 1.959963984540054, 1e-10);
  });
  it("rejects impossible arguments by name", () => {
    expect(() => regularizedIncompleteBeta(1.5, 1, 1)).toThrow(/x must be in \[0, 1\]/);
    expect(() => studentTSf(1, 0)).toThrow(/df must be > 0/);
  });
});

describe.each(Object.entries(fixtures.datasets))("dataset %s equals scipy and pandas", (_name, d) => {
  it("Student's t-test (ttest_ind default)", () => {
    const r = tTestInd(d.a, d.b);
    close(r.statistic, d.student.statistic, 1e-10);
    close(r.pvalue, d.student.pvalue, 1e-8);
  });
  it("Welch's t-test (equal_var=False)", () => {
    const r = welchTTest(d.a, d.b);
    close(r.statistic, d.welch.statistic, 1e-10);
    close(r.pvalue, d.welch.pvalue, 1e-8);
  });
  it("Mann–Whitney U (scipy 1.10 defaults)", () => {
    const r = mannWhitneyU(d.a, d.b);
    expect(r.statistic).toBe(d.mannwhitneyu.statistic);
    close(r.pvalue, d.mannwhitneyu.pvalue, 1e-9);
  });
  it("Cohen's d", () => {
    close(cohensD(d.a, d.b), d.cohens_d, 1e-12);
  });
  it("describe() equals pandas", () => {
    const table = describeTable({ a: d.a, b: d.b });
    for (const col of ["a", "b"] as const) {
      for (const [stat, expected] of Object.entries(d.describe[col])) {
        close(table[stat as keyof typeof table][col] as number, expected, 1e-12);
      }
    }
  });
});

describe("Mann–Whitney details", () => {
  it("uses the exact distribution for small samples without ties, the normal one with ties", () => {
    expect(mannWhitneyU(fixtures.datasets.small_exact.a, fixtures.datasets.small_exact.b).method).toBe("exact");
    expect(mannWhitneyU(fixtures.datasets.small_ties.a, fixtures.datasets.small_ties.b).method).toBe("asymptotic");
    expect(mannWhitneyU(fixtures.datasets.ratings_ties.a, fixtures.datasets.ratings_ties.b).method).toBe("asymptotic");
  });
  it("ranks ties by their average", () => {
    expect(rankAverage([3, 1, 3, 2, 3])).toEqual([4, 1, 4, 2, 4]);
  });
});

describe("bootstrap and power", () => {
  const { a, b } = fixtures.datasets.ratings_ties;
  it("the bootstrap interval is seeded, brackets the difference and narrows with the level", () => {
    const ci = bootstrapMeanDifference(a, b, { resamples: 4000, seed: 3 });
    expect(bootstrapMeanDifference(a, b, { resamples: 4000, seed: 3 })).toEqual(ci);
    expect(bootstrapMeanDifference(a, b, { resamples: 4000, seed: 4 }).low).not.toBe(ci.low);
    expect(ci.estimate).toBeCloseTo(3.5 - 4.1875, 12);
    expect(ci.low).toBeLessThan(ci.estimate);
    expect(ci.high).toBeGreaterThan(ci.estimate);
    // The normal-theory half-width is 1.96·SE ≈ 1.0 here; the bootstrap's must be near it.
    expect(ci.high - ci.low).toBeGreaterThan(1.6);
    expect(ci.high - ci.low).toBeLessThan(2.4);
    const narrow = bootstrapMeanDifference(a, b, { resamples: 4000, seed: 3, level: 0.5 });
    expect(narrow.high - narrow.low).toBeLessThan(ci.high - ci.low);
  });
  it("sample size for 80 % power is within one rating of the exact noncentral-t answer", () => {
    for (const c of fixtures.power) {
      const n = sampleSizeForPower(c.d).perGroup;
      expect(Math.abs(n - c.perGroup), `d=${c.d}: ${n} vs ${c.perGroup}`).toBeLessThanOrEqual(1);
    }
    expect(() => sampleSizeForPower(0)).toThrow(/non-zero/);
  });
  it("bad samples are refused with the reason", () => {
    expect(() => tTestInd([1], [2, 3])).toThrow(/at least 2 values/);
    expect(() => tTestInd([1, Number.NaN], [2, 3])).toThrow(/value 1 is NaN/);
  });
});

describe("the analysis table", () => {
  it("reports every test with scipy's numbers, and survives ratings that do not vary", () => {
    const d = fixtures.datasets.ratings_ties;
    const table = compareRatings(d.a, d.b, { seed: 1, resamples: 2000 });
    close(table["Student's t (scipy ttest_ind, the post's)"]["p-value"] as number, d.student.pvalue, 1e-8);
    close(table["Welch's t (equal_var=False)"]["p-value"] as number, d.welch.pvalue, 1e-8);
    close(table["Mann–Whitney U (ratings are ordinal)"]["p-value"] as number, d.mannwhitneyu.pvalue, 1e-9);
    expect(String(table["ratings needed"].note)).toMatch(/^\d+ grids of each kind for 80 % power/);
    const flat = compareRatings([4, 4, 4], [4, 4, 4], { resamples: 100 });
    expect(flat["ratings needed"].note).toMatch(/undefined/);
    expect(formatTTest(tTestFromStats(4.4375, 1.547848, 16, 3.25, 1.437591, 16))).toBe("t-stat: 2.2486, pvalue: 0.0320");
  });
});
