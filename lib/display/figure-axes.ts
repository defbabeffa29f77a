// Axes of a static figure, as plotly lays them out: "nice" tick steps (1, 2 or 5 × 10^k), tick labels (0.25,
// 1.5k, 2M, 1e−5), log-axis ticks, autorange padding, and the scale from data to axis units.

import type { Axis } from "./figure-model";

// ---------------------------------------------------------------------------------------------------------------
// Numbers: nice ticks and their labels

/** The smallest "nice" number (1, 2 or 5 × 10^k, as plotly uses) not below a rough tick step. */
export function niceStep(rough: number): number {
  if (!(rough > 0) || !Number.isFinite(rough)) return 1;
  const exponent = Math.floor(Math.log10(rough));
  const base = 10 ** exponent;
  const fraction = rough / base;
  const nice = fraction <= 1 + 1e-9 ? 1 : fraction <= 2 + 1e-9 ? 2 : fraction <= 5 + 1e-9 ? 5 : 10;
  return nice * base;
}

/** Rounds away floating-point noise relative to a step (0.30000000000000004 → 0.3). */
export function clean(value: number, step: number): number {
  const digits = Math.max(0, Math.min(15, -Math.floor(Math.log10(step)) + 2));
  const rounded = Number(value.toFixed(digits));
  return Object.is(rounded, -0) ? 0 : rounded;
}

/** The nice number (1, 2 or 5 × 10^k) nearest to a rough tick step (Heckbert's "nice numbers for graph labels"). */
function nearestNiceStep(rough: number): number {
  if (!(rough > 0) || !Number.isFinite(rough)) return 1;
  const base = 10 ** Math.floor(Math.log10(rough));
  const fraction = rough / base;
  return (fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10) * base;
}

/** Ticks: multiples of a nice step inside [lo, hi], about `target` of them (at least two when possible). */
export function niceTicks(lo: number, hi: number, target = 6): { step: number; ticks: number[] } {
  if (hi < lo) [lo, hi] = [hi, lo];
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return { step: 1, ticks: [] };
  if (hi === lo) return { step: 1, ticks: [lo] };
  let step = nearestNiceStep((hi - lo) / Math.max(1, target - 1));
  const ticksFor = (s: number): number[] => {
    const ticks: number[] = [];
    const first = Math.ceil(lo / s - 1e-9);
    for (let k = first; k * s <= hi + s * 1e-9; k++) ticks.push(clean(k * s, s));
    return ticks;
  };
  let ticks = ticksFor(step);
  // Fewer than two ticks inside: the next smaller nice step (…, 0.1, 0.05, 0.02, 0.01, …) until there are two, which
  // takes at most a few steps down to (hi − lo) / 2. (niceStep(step / 2.01) rounds 0.05/2.01 up to 0.05 again.)
  for (let i = 0; ticks.length < 2 && i < 64; i++) {
    step = smallerNiceStep(step);
    ticks = ticksFor(step);
  }
  return { step, ticks };
}

/** The nice number (1, 2 or 5 × 10^k) just below a nice number. */
export function smallerNiceStep(step: number): number {
  const base = 10 ** Math.floor(Math.log10(step) + 1e-9);
  const leading = Math.round(step / base);
  return leading >= 5 ? 2 * base : leading >= 2 ? base : base / 2;
}

/** Ticks at a fixed distance dtick inside [lo, hi]. */
function fixedTicks(lo: number, hi: number, dtick: number): number[] {
  const ticks: number[] = [];
  const count = (hi - lo) / dtick;
  if (!(dtick > 0) || count > 1000) return niceTicks(lo, hi).ticks;
  for (let k = Math.ceil(lo / dtick - 1e-9); k * dtick <= hi + dtick * 1e-9; k++) ticks.push(clean(k * dtick, dtick));
  return ticks;
}

const SI_PREFIXES: readonly [number, string][] = [
  [1e12, "T"],
  [1e9, "G"],
  [1e6, "M"],
  [1e3, "k"],
];

/** A tick label for `value` on an axis whose ticks are `step` apart (plotly-like: 0.25, 1.5k, 2M, 1e−5). */
export function formatTick(value: number, step: number): string {
  if (value === 0) return "0";
  const abs = Math.abs(value);
  const sign = value < 0 ? "−" : "";
  if (abs >= 1e4) {
    for (const [size, prefix] of SI_PREFIXES) {
      if (abs >= size) return sign + trimZeros((abs / size).toFixed(decimalsFor(step / size))) + prefix;
    }
  }
  if (abs < 1e-3 || step < 1e-4) return sign + exponential(abs);
  return sign + trimZeros(abs.toFixed(decimalsFor(step)));
}

function decimalsFor(step: number): number {
  for (let d = 0; d < 10; d++) {
    const scaled = step * 10 ** d;
    if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, scaled)) return d;
  }
  return 10;
}

function trimZeros(text: string): string {
  return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
}

function exponential(abs: number): string {
  const [mantissa, exponent] = abs.toExponential(2).split("e");
  const m = trimZeros(mantissa);
  const e = Number(exponent);
  return `${m === "1" ? "1" : m}e${e < 0 ? "−" : ""}${Math.abs(e)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Scales

export interface Scale {
  log: boolean;
  /** Range in axis units (log10 units on a log axis). */
  lo: number;
  hi: number;
  ticks: { value: number; label: string }[];
}

export function toAxis(value: number, log: boolean): number {
  return log ? (value > 0 ? Math.log10(value) : Number.NaN) : value;
}

export function extent(values: Iterable<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

export function autorange(values: number[], options: { includeZero: boolean; padLo: number; padHi: number }): [number, number] {
  let [lo, hi] = extent(values);
  if (!Number.isFinite(lo)) return [0, 1];
  if (options.includeZero) {
    lo = Math.min(lo, 0);
    hi = Math.max(hi, 0);
  }
  if (hi === lo) {
    const half = lo === 0 ? 1 : Math.abs(lo) * 0.5;
    return [lo - half, hi + half];
  }
  const span = hi - lo;
  return [lo === 0 && options.includeZero ? 0 : lo - span * options.padLo, hi === 0 && options.includeZero ? 0 : hi + span * options.padHi];
}

function logTicks(lo: number, hi: number, target: number): { value: number; label: string }[] {
  const decades = hi - lo;
  const multipliers = decades <= 1.2 ? [1, 2, 5] : decades <= 3 ? [1, 2, 5] : [1];
  const every = Math.max(1, Math.ceil(decades / Math.max(2, target)));
  const ticks: { value: number; label: string }[] = [];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
    if (multipliers.length === 1 && e % every !== 0) continue;
    for (const m of multipliers) {
      const position = e + Math.log10(m);
      if (position < lo - 1e-9 || position > hi + 1e-9) continue;
      const value = m * 10 ** e;
      ticks.push({ value: position, label: formatTick(value, 10 ** e) });
    }
  }
  return ticks;
}

export function makeScale(axis: Axis | undefined, range: [number, number], lengthPx: number, perTickPx: number): Scale {
  const log = axis?.type === "log";
  const [lo, hi] = axis?.range ? [axis.range[0], axis.range[1]] : range;
  const target = Math.max(2, Math.min(10, Math.round(lengthPx / perTickPx)));
  let ticks: { value: number; label: string }[];
  if (axis?.tickvals) {
    const vals = Array.from(axis.tickvals);
    ticks = vals
      .map((v, i) => ({ value: toAxis(v, log), label: axis.ticktext?.[i] ?? formatTick(v, niceTicks(lo, hi, target).step) }))
      .filter((t) => t.value >= Math.min(lo, hi) - 1e-9 && t.value <= Math.max(lo, hi) + 1e-9);
  } else if (log) {
    ticks = logTicks(Math.min(lo, hi), Math.max(lo, hi), target);
  } else {
    const nice = axis?.dtick ? { step: axis.dtick, ticks: fixedTicks(Math.min(lo, hi), Math.max(lo, hi), axis.dtick) } : niceTicks(lo, hi, target);
    ticks = nice.ticks.map((v) => ({ value: v, label: formatTick(v, nice.step) }));
  }
  return { log, lo, hi, ticks };
}
