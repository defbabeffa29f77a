// The simple-statistics functions lib/ relies on, pinned against numpy / scipy (test/fixtures/statistics/
// make_library_fixtures.py) and pandas' describe() (make_fixtures.py), so a new version that changes one is caught.
// What lib/ does not take from it is pinned too: its error function is too coarse for p-values.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { errorFunction, gammaln, mean, quantileSorted, sampleStandardDeviation, sampleVariance, standardDeviation, sum } from "simple-statistics";
import { describe, expect, it } from "vitest";
import { projectRoot } from "../lib/util/project";

interface Sample {
  values: number[];
  sum: number;
  mean: number;
  sample_variance: number;
  sample_std: number;
  std: number;
  quantiles: { q: number; value: number }[];
}
interface Library {
  samples: Record<string, Sample>;
  gammaln: { x: number; value: number }[];
  erf: { x: number; value: number }[];
}
interface Describe {
  datasets: Record<string, Record<"a" | "b", number[]> & { describe: Record<"a" | "b", Record<string, number>> }>;
}

const folder = join(projectRoot(), "test", "fixtures", "statistics");
const library = JSON.parse(readFileSync(join(folder, "library.json"), "utf8")) as Library;
const pandas = JSON.parse(readFileSync(join(folder, "statistics.json"), "utf8")) as Describe;

/** |actual − expected| within rel·|expected| (+ a tiny absolute floor). */
function close(actual: number, expected: number, rel: number): void {
  expect(Math.abs(actual - expected), `${actual} vs ${expected}`).toBeLessThanOrEqual(rel * Math.abs(expected) + 1e-300);
}

describe.each(Object.entries(library.samples))("sample %s equals numpy", (_name, s) => {
  const sorted = [...s.values].sort((a, b) => a - b);
  it("sum, mean", () => {
    close(sum(s.values), s.sum, 1e-15);
    close(mean(s.values), s.mean, 1e-15);
  });
  it("sample variance and standard deviation (ddof 1), population standard deviation (ddof 0)", () => {
    close(sampleVariance(s.values), s.sample_variance, 1e-13);
    close(sampleStandardDeviation(s.values), s.sample_std, 1e-13);
    close(standardDeviation(s.values), s.std, 1e-13);
  });
  it("quantileSorted is numpy's 'linear' method", () => {
    for (const { q, value } of s.quantiles) close(quantileSorted(sorted, q), value, 1e-15);
  });
});

describe.each(Object.entries(pandas.datasets))("dataset %s equals pandas' describe()", (_name, d) => {
  it("mean, std and quartiles", () => {
    for (const col of ["a", "b"] as const) {
      const sorted = [...d[col]].sort((x, y) => x - y);
      const expected = d.describe[col];
      close(mean(d[col]), expected.mean, 1e-14);
      close(sampleStandardDeviation(d[col]), expected.std, 1e-13);
      close(quantileSorted(sorted, 0.25), expected["25%"], 1e-15);
      close(quantileSorted(sorted, 0.5), expected["50%"], 1e-15);
      close(quantileSorted(sorted, 0.75), expected["75%"], 1e-15);
    }
  });
});

describe("special functions", () => {
  it("gammaln equals scipy's within 2e-15 (relative; absolute near its zeros at 1 and 2)", () => {
    for (const { x, value } of library.gammaln) {
      expect(Math.abs(gammaln(x) - value), `gammaln(${x}) = ${gammaln(x)} vs ${value}`).toBeLessThanOrEqual(2e-15 * Math.max(1, Math.abs(value)));
    }
  });
  it("errorFunction is about 1e-7 off scipy's erf, which is why lib/ computes the normal tail itself", () => {
    const worst = Math.max(...library.erf.map(({ x, value }) => Math.abs(errorFunction(x) - value)));
    expect(worst).toBeGreaterThan(1e-9);
    expect(worst).toBeLessThan(1e-6);
  });
});
