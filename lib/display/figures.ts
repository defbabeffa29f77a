// Plotly-style figures that render everywhere.
//
// A figure is a typed subset of plotly's figure spec (bar, histogram and scatter traces; a small layout). It is
// shown as ONE output carrying three forms of the same figure:
//   application/vnd.plotly.v1+json  interactive, in JupyterLab with plotly's renderer,
//   image/png                        a static rendering by our own SVG renderer, rasterised by sharp: what
//                                    classic Notebook, nbconvert HTML/Markdown and the exported post show,
//   text/plain                       a one-line summary, for terminals.
// The static renderer follows plotly's semantics where it matters for reading the chart (histogram bins, bar
// gaps, barmode, default colours, autorange padding), and the plotly JSON is written with the bins the renderer
// used, so both show the same bars.

import sharp from "sharp";
import { standardDeviation } from "simple-statistics";
import { escapeXml } from "./image-grid";
import { DisplayHandle, displayBundle, type JsonObject, type JsonValue, type MimeBundle } from "./notebook-display";

/** Numbers from an array or a typed array. */
export type Numbers = ArrayLike<number>;
/** A title: plotly accepts `{ text }`; a bare string is accepted here and written as `{ text }`. */
export type Title = string | { text: string };

export interface MarkerLine {
  color?: string;
  width?: number;
}

export interface BarMarker {
  color?: string;
  opacity?: number;
  /** Outline of each bar. */
  line?: MarkerLine;
}

interface TraceBase {
  name?: string;
  /** Opacity of the whole trace, 0..1. */
  opacity?: number;
  /** Whether the trace gets a legend entry (default: yes when the figure has several traces). */
  showlegend?: boolean;
}

/** Bars at x (numbers, or category names) with heights y. */
export interface BarTrace extends TraceBase {
  type: "bar";
  x: Numbers | readonly string[];
  y: Numbers;
  /** Bar width in x units (numeric x only). Default: the smallest distance between x values. */
  width?: number;
  marker?: BarMarker;
}

/** Histogram bins: [start + k·size, start + (k+1)·size) for every edge below end (plotly's xbins). */
export interface HistogramBins {
  start: number;
  end: number;
  size: number;
}

/**
 * A histogram of x. Raw values are counted; pre-binned data is given as x = bin positions (e.g. centres),
 * y = counts, with histfunc "sum" (plotly's way). Values outside the bins are dropped, as plotly does.
 */
export interface HistogramTrace extends TraceBase {
  type: "histogram";
  x: Numbers;
  y?: Numbers;
  histfunc?: "count" | "sum";
  histnorm?: "" | "percent" | "probability";
  xbins?: HistogramBins;
  /** Maximum number of bins when xbins is not given. */
  nbinsx?: number;
  marker?: BarMarker;
}

export type Dash = "solid" | "dot" | "dash" | "longdash" | "dashdot";

/** Points and/or lines through (x, y); non-finite y values leave a gap. */
export interface ScatterTrace extends TraceBase {
  type: "scatter";
  x: Numbers;
  y: Numbers;
  mode?: "lines" | "markers" | "lines+markers";
  line?: { color?: string; width?: number; dash?: Dash };
  marker?: { color?: string; size?: number; opacity?: number };
}

export type Trace = BarTrace | HistogramTrace | ScatterTrace;

export interface Axis {
  title?: Title;
  /** Visible range; on a log axis in log10 units (plotly's convention). */
  range?: readonly [number, number];
  type?: "linear" | "log";
  /** Distance between ticks (linear axes). */
  dtick?: number;
  /** Explicit tick positions, with optional labels. */
  tickvals?: Numbers;
  ticktext?: readonly string[];
  showgrid?: boolean;
}

export interface Layout {
  title?: Title;
  xaxis?: Axis;
  yaxis?: Axis;
  /** How bars of several traces share an x position. Default "group" (plotly's default). */
  barmode?: "group" | "overlay" | "stack";
  /** Gap between bars of adjacent positions, as a fraction of the position's width. */
  bargap?: number;
  showlegend?: boolean;
  legend?: { title?: Title; orientation?: "v" | "h" };
  /** Size in px. Default 700 × 450. */
  width?: number;
  height?: number;
  /** Trace colours in order. Default: plotly.js's (d3's category10). */
  colorway?: readonly string[];
}

export interface Figure {
  data: readonly Trace[];
  layout?: Layout;
}

/** plotly.js's default trace colours. */
export const DEFAULT_COLORWAY: readonly string[] = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];

export const DEFAULT_WIDTH = 700;
export const DEFAULT_HEIGHT = 450;

const FONT_FAMILY = "DejaVu Sans, Helvetica, Arial, sans-serif";
const TEXT_COLOR = "#2a3f5f";
const AXIS_COLOR = "#444444";
const GRID_COLOR = "#e5e8ee";

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
function clean(value: number, step: number): number {
  const digits = Math.max(0, Math.min(15, -Math.floor(Math.log10(step)) + 2));
  const rounded = Number(value.toFixed(digits));
  return Object.is(rounded, -0) ? 0 : rounded;
}

/** The nice number (1, 2 or 5 × 10^k) nearest to a rough tick step (Heckbert's "nice numbers for graph labels"). */
export function nearestNiceStep(rough: number): number {
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
// Histograms

/** The bin counts of a histogram trace with the bins plotly would use (see `histogramXbins`). */
export interface BinnedHistogram {
  bins: HistogramBins;
  /** edges.length = counts.length + 1 */
  edges: number[];
  counts: number[];
  /** Values that fell outside the bins (dropped). */
  dropped: number;
}

function finiteValues(values: Numbers): number[] {
  const out: number[] = [];
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i])) out.push(values[i]);
  return out;
}

/** Plotly-like automatic bins: a nice size, with integer data centred in integer-wide bins. */
export function autoBins(values: Numbers, nbins?: number): HistogramBins {
  const data = finiteValues(values);
  if (data.length === 0) return { start: 0, end: 1, size: 1 };
  let min = Infinity;
  let max = -Infinity;
  for (const v of data) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  let rough: number;
  if (nbins !== undefined && nbins > 0 && max > min) {
    rough = (max - min) / nbins;
  } else {
    const distinct = [...new Set(data)].sort((a, b) => a - b);
    let minDiff = Infinity;
    for (let i = 1; i < distinct.length; i++) minDiff = Math.min(minDiff, distinct[i] - distinct[i - 1]);
    // plotly's rule uses the population standard deviation.
    const byStdev = (2 * standardDeviation(data)) / data.length ** 0.4;
    rough = Math.max(Number.isFinite(minDiff) ? minDiff : 0, byStdev);
    if (!(rough > 0)) rough = 1;
  }
  const size = niceStep(rough);
  let start = Math.floor(min / size) * size;
  // Integer data and integer bins: put the edges half-way between integers, so each integer sits mid-bin.
  if (Number.isInteger(size) && data.every((v) => Number.isInteger(v))) start = Math.floor(min / size) * size - 0.5;
  if (start > min) start -= size;
  const count = 1 + Math.floor((max - start) / size);
  return { start: clean(start, size), end: clean(start + count * size, size), size };
}

/** The bins a histogram trace uses: its xbins, else automatic ones from its data. */
export function histogramXbins(trace: HistogramTrace): HistogramBins {
  return trace.xbins ?? autoBins(trace.x, trace.nbinsx);
}

/** Counts (or sums, or normalised counts) per bin, binned exactly like plotly (left-closed bins). */
export function binHistogram(trace: HistogramTrace): BinnedHistogram {
  const bins = histogramXbins(trace);
  if (!(bins.size > 0)) throw new RangeError(`histogram "${trace.name ?? ""}": xbins.size must be > 0, got ${bins.size}`);
  const edges: number[] = [];
  const limit = bins.end - bins.size / 1e6;
  for (let e = bins.start; e < limit && edges.length < 100_000; e = bins.start + edges.length * bins.size) {
    edges.push(clean(e, bins.size));
  }
  edges.push(clean(bins.start + edges.length * bins.size, bins.size));
  const counts = new Array<number>(edges.length - 1).fill(0);
  const sum = trace.histfunc === "sum" && trace.y !== undefined;
  let dropped = 0;
  let total = 0;
  for (let i = 0; i < trace.x.length; i++) {
    const v = trace.x[i];
    if (!Number.isFinite(v)) continue;
    const k = Math.floor((v - bins.start) / bins.size + 1e-9);
    const weight = sum ? (trace.y as Numbers)[i] : 1;
    if (k >= 0 && k < counts.length && Number.isFinite(weight)) {
      counts[k] += weight;
      total += weight;
    } else {
      dropped++;
    }
  }
  if (trace.histnorm === "percent" || trace.histnorm === "probability") {
    const factor = (trace.histnorm === "percent" ? 100 : 1) / (total || 1);
    for (let k = 0; k < counts.length; k++) counts[k] *= factor;
  }
  return { bins, edges, counts, dropped };
}

// ---------------------------------------------------------------------------------------------------------------
// From traces to drawable marks (in data coordinates)

interface Bar {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

interface Style {
  name: string;
  color: string;
  opacity: number;
  showlegend: boolean;
}

interface BarMarks extends Style {
  kind: "bars";
  bars: Bar[];
  /** The x extent of the positions the bars occupy (whole slots, gaps included), for autorange. */
  span: [number, number];
  lineColor?: string;
  lineWidth: number;
}

interface LineMarks extends Style {
  kind: "lines";
  xs: number[];
  ys: number[];
  lines: boolean;
  markers: boolean;
  lineWidth: number;
  dash: Dash;
  markerSize: number;
  markerColor: string;
  markerOpacity: number;
}

type Marks = BarMarks | LineMarks;

/** A bar-like trace reduced to positions: centre, slot width, height. */
interface Slots {
  center: number[];
  slot: number[];
  value: number[];
  /** Histogram: bins with a zero count at either end are left out of autorange, as plotly does. */
  trimmed: [number, number];
}

function isCategorical(x: Numbers | readonly string[]): x is readonly string[] {
  return x.length > 0 && typeof x[0] === "string";
}

function categoriesOf(traces: readonly Trace[]): string[] {
  const seen = new Set<string>();
  for (const trace of traces) {
    if (trace.type === "bar" && isCategorical(trace.x)) for (const c of trace.x) seen.add(c);
  }
  return [...seen];
}

function minDistance(values: readonly number[]): number {
  const sorted = [...new Set(values)].sort((a, b) => a - b);
  let min = Infinity;
  for (let i = 1; i < sorted.length; i++) min = Math.min(min, sorted[i] - sorted[i - 1]);
  return Number.isFinite(min) ? min : 1;
}

function slotsOf(trace: BarTrace | HistogramTrace, categories: readonly string[]): Slots {
  if (trace.type === "histogram") {
    const { edges, counts } = binHistogram(trace);
    const center = counts.map((_, k) => (edges[k] + edges[k + 1]) / 2);
    const slot = counts.map((_, k) => edges[k + 1] - edges[k]);
    let first = counts.findIndex((c) => c !== 0);
    let last = counts.length - 1 - [...counts].reverse().findIndex((c) => c !== 0);
    if (first < 0) [first, last] = [0, counts.length - 1];
    return { center, slot, value: counts, trimmed: [first, last] };
  }
  const n = Math.min(trace.x.length, trace.y.length);
  const value = Array.from({ length: n }, (_, i) => trace.y[i]);
  if (isCategorical(trace.x)) {
    const x = trace.x;
    const center = value.map((_, i) => categories.indexOf(x[i]));
    return { center, slot: value.map(() => 1), value, trimmed: [0, n - 1] };
  }
  const center = Array.from({ length: n }, (_, i) => (trace.x as Numbers)[i]);
  const width = trace.width ?? minDistance(center);
  return { center, slot: value.map(() => width), value, trimmed: [0, n - 1] };
}

function styleOf(trace: Trace, index: number, colorway: readonly string[], legendDefault: boolean): Style {
  const color =
    trace.type === "scatter" ? (trace.line?.color ?? trace.marker?.color) : trace.marker?.color;
  return {
    name: trace.name ?? `trace ${index}`,
    color: color ?? colorway[index % colorway.length],
    opacity: trace.opacity ?? 1,
    showlegend: trace.showlegend ?? legendDefault,
  };
}

/** Whether plotly would draw these bars without gaps (histograms on a numeric axis, unless grouped). */
function defaultBargap(traces: readonly Trace[], barmode: Layout["barmode"]): number {
  const barTraces = traces.filter((t) => t.type !== "scatter");
  const histogramOnNumeric = barTraces.some((t) => t.type === "histogram");
  const gapped = (barmode ?? "group") === "group" && barTraces.length > 1;
  return histogramOnNumeric && !gapped ? 0 : 0.2;
}

function marksOf(fig: Figure, categories: readonly string[]): Marks[] {
  const layout = fig.layout ?? {};
  const colorway = layout.colorway ?? DEFAULT_COLORWAY;
  const legendDefault = layout.showlegend ?? fig.data.length > 1;
  const barmode = layout.barmode ?? "group";
  const bargap = layout.bargap ?? defaultBargap(fig.data, barmode);
  const barTraces = fig.data.filter((t): t is BarTrace | HistogramTrace => t.type !== "scatter");
  const stackTop = new Map<number, number>();
  const stackBottom = new Map<number, number>();

  return fig.data.map((trace, index): Marks => {
    const style = styleOf(trace, index, colorway, legendDefault);
    if (trace.type === "scatter") {
      const mode = trace.mode ?? (trace.x.length <= 20 ? "lines+markers" : "lines");
      const n = Math.min(trace.x.length, trace.y.length);
      return {
        ...style,
        kind: "lines",
        xs: Array.from({ length: n }, (_, i) => trace.x[i]),
        ys: Array.from({ length: n }, (_, i) => trace.y[i]),
        lines: mode !== "markers",
        markers: mode !== "lines",
        lineWidth: trace.line?.width ?? 2,
        dash: trace.line?.dash ?? "solid",
        markerSize: trace.marker?.size ?? 6,
        markerColor: trace.marker?.color ?? style.color,
        markerOpacity: trace.marker?.opacity ?? 1,
      };
    }
    const slots = slotsOf(trace, categories);
    const group = barTraces.indexOf(trace);
    const bars: Bar[] = slots.center.map((center, i) => {
      const usable = slots.slot[i] * (1 - bargap);
      const value = slots.value[i];
      if (barmode === "group" && barTraces.length > 1) {
        const sub = usable / barTraces.length;
        const x0 = center - usable / 2 + group * sub;
        return { x0, x1: x0 + sub, y0: 0, y1: value };
      }
      const x0 = center - usable / 2;
      if (barmode === "stack") {
        const key = Math.round(center * 1e9);
        const stack = value >= 0 ? stackTop : stackBottom;
        const base = stack.get(key) ?? 0;
        stack.set(key, base + value);
        return { x0, x1: x0 + usable, y0: base, y1: base + value };
      }
      return { x0, x1: x0 + usable, y0: 0, y1: value };
    });
    const [first, last] = slots.trimmed;
    const span = extent(
      slots.center.flatMap((c, i) => (i >= first && i <= last ? [c - slots.slot[i] / 2, c + slots.slot[i] / 2] : [])),
    );
    return {
      ...style,
      kind: "bars",
      bars: bars.filter((_, i) => i >= first && i <= last),
      span,
      opacity: style.opacity * (trace.marker?.opacity ?? 1),
      lineColor: trace.marker?.line?.color,
      lineWidth: trace.marker?.line?.width ?? 0,
    };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Axes

interface Scale {
  log: boolean;
  /** Range in axis units (log10 units on a log axis). */
  lo: number;
  hi: number;
  ticks: { value: number; label: string }[];
}

function toAxis(value: number, log: boolean): number {
  return log ? (value > 0 ? Math.log10(value) : Number.NaN) : value;
}

function extent(values: Iterable<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

function autorange(values: number[], options: { includeZero: boolean; padLo: number; padHi: number }): [number, number] {
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

function makeScale(axis: Axis | undefined, range: [number, number], lengthPx: number, perTickPx: number): Scale {
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

// ---------------------------------------------------------------------------------------------------------------
// Text measurement (estimates for DejaVu Sans, a little generous for Helvetica/Arial)

const NARROW = new Set(" .,:;'|!iIjl()[]{}ftr-");
const WIDE = new Set("mwMW%@");

/** Estimated rendered width of text in px. */
export function textWidth(text: string, fontSize: number): number {
  let em = 0;
  for (const ch of text) {
    if (NARROW.has(ch)) em += 0.34;
    else if (WIDE.has(ch)) em += 0.92;
    else if (ch >= "0" && ch <= "9") em += 0.64;
    else if (ch === "−") em += 0.84;
    else if (ch >= "A" && ch <= "Z") em += 0.7;
    else em += 0.6;
  }
  return em * fontSize;
}

function titleText(title: Title | undefined): string | undefined {
  if (title === undefined) return undefined;
  const text = typeof title === "string" ? title : title.text;
  return text === "" ? undefined : text;
}

// ---------------------------------------------------------------------------------------------------------------
// SVG

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

function dashArray(dash: Dash, width: number): string | undefined {
  const w = Math.max(1, width);
  switch (dash) {
    case "dot":
      return `${w},${2 * w}`;
    case "dash":
      return `${4 * w},${2 * w}`;
    case "longdash":
      return `${8 * w},${2 * w}`;
    case "dashdot":
      return `${4 * w},${2 * w},${w},${2 * w}`;
    default:
      return undefined;
  }
}

interface LegendEntry {
  name: string;
  marks: Marks;
}

const TITLE_SIZE = 17;
const LABEL_SIZE = 12;
const AXIS_TITLE_SIZE = 14;
const LEGEND_SIZE = 12;

/** Renders a figure as a standalone SVG document (width × height px). */
export function renderFigureSvg(fig: Figure): string {
  const layout = fig.layout ?? {};
  const width = layout.width ?? DEFAULT_WIDTH;
  const height = layout.height ?? DEFAULT_HEIGHT;
  const categories = categoriesOf(fig.data);
  const marks = marksOf(fig, categories);
  const title = titleText(layout.title);
  const xTitle = titleText(layout.xaxis?.title);
  const yTitle = titleText(layout.yaxis?.title);
  const legend: LegendEntry[] = marks.filter((m) => m.showlegend).map((m) => ({ name: m.name, marks: m }));
  const legendTitle = titleText(layout.legend?.title);
  const horizontalLegend = layout.legend?.orientation === "h";

  // Data ranges in axis units.
  const xLog = layout.xaxis?.type === "log" && categories.length === 0;
  const yLog = layout.yaxis?.type === "log";
  const xs: number[] = [];
  const ys: number[] = [];
  let hasBars = false;
  let hasMarkers = false;
  for (const m of marks) {
    if (m.kind === "bars") {
      hasBars = true;
      xs.push(toAxis(m.span[0], xLog), toAxis(m.span[1], xLog));
      for (const b of m.bars) {
        if (b.y1 !== b.y0 || !yLog) ys.push(toAxis(b.y1, yLog));
        if (!yLog) ys.push(b.y0);
      }
    } else {
      hasMarkers ||= m.markers;
      m.xs.forEach((x, i) => {
        if (Number.isFinite(m.ys[i])) {
          xs.push(toAxis(x, xLog));
          ys.push(toAxis(m.ys[i], yLog));
        }
      });
    }
  }
  const xRange: [number, number] =
    categories.length > 0 && !hasMarkers && marks.every((m) => m.kind === "bars")
      ? [-0.5, categories.length - 0.5]
      : autorange(xs, { includeZero: false, padLo: hasMarkers && !hasBars ? 0.04 : 0, padHi: hasMarkers && !hasBars ? 0.04 : 0 });
  const yRange = autorange(ys, { includeZero: hasBars && !yLog, padLo: 0.05, padHi: 0.05 });

  // Margins from what has to fit around the plot.
  const legendWidth = legend.length
    ? Math.max(...legend.map((e) => textWidth(e.name, LEGEND_SIZE)), legendTitle ? textWidth(legendTitle, LEGEND_SIZE) : 0) + 40
    : 0;
  const titleHeight = title ? 46 : 14;
  const legendRowHeight = horizontalLegend && legend.length ? 26 : 0;
  const provisionalY = makeScale(layout.yaxis, yRange, height - titleHeight - 60, 55);
  const yLabelWidth = Math.max(0, ...provisionalY.ticks.map((t) => textWidth(t.label, LABEL_SIZE)));
  const left = Math.ceil(14 + yLabelWidth + 10 + (yTitle ? AXIS_TITLE_SIZE + 10 : 0));
  const right = Math.ceil(legend.length && !horizontalLegend ? legendWidth + 24 : 24);
  const top = titleHeight + legendRowHeight + 8;
  const bottom = Math.ceil(8 + LABEL_SIZE + 10 + (xTitle ? AXIS_TITLE_SIZE + 14 : 0) + 6);
  const plotW = Math.max(20, width - left - right);
  const plotH = Math.max(20, height - top - bottom);

  const yScale = makeScale(layout.yaxis, yRange, plotH, 55);
  const xScale: Scale =
    categories.length > 0
      ? {
          log: false,
          lo: layout.xaxis?.range?.[0] ?? xRange[0],
          hi: layout.xaxis?.range?.[1] ?? xRange[1],
          ticks: categories.map((c, i) => ({ value: i, label: c })),
        }
      : makeScale(layout.xaxis, xRange, plotW, 90);

  const px = (v: number): number => left + ((v - xScale.lo) / (xScale.hi - xScale.lo || 1)) * plotW;
  const py = (v: number): number => top + plotH - ((v - yScale.lo) / (yScale.hi - yScale.lo || 1)) * plotH;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="${FONT_FAMILY}">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<defs><clipPath id="plot-area"><rect x="${left}" y="${top}" width="${plotW}" height="${plotH}"/></clipPath></defs>`);

  // Grid.
  const grid: string[] = [];
  if (layout.yaxis?.showgrid ?? true) {
    for (const t of yScale.ticks) grid.push(`M${left},${fmt(py(t.value))}H${left + plotW}`);
  }
  if ((layout.xaxis?.showgrid ?? !hasBars) && categories.length === 0) {
    for (const t of xScale.ticks) grid.push(`M${fmt(px(t.value))},${top}V${top + plotH}`);
  }
  if (grid.length) out.push(`<path class="grid" d="${grid.join("")}" stroke="${GRID_COLOR}" stroke-width="1" fill="none"/>`);

  // Marks.
  out.push(`<g clip-path="url(#plot-area)">`);
  marks.forEach((m, traceIndex) => {
    if (m.kind === "bars") {
      const stroke = m.lineWidth > 0 ? ` stroke="${escapeXml(m.lineColor ?? "#ffffff")}" stroke-width="${m.lineWidth}"` : "";
      // Opacity on the group, not on each bar, and edges on whole pixels: adjacent bars of one trace then meet
      // without the seams that anti-aliased, separately blended edges leave.
      out.push(`<g class="trace bars" data-trace="${traceIndex}" fill="${escapeXml(m.color)}" opacity="${m.opacity}"${stroke}>`);
      for (const b of m.bars) {
        const base = yLog ? yScale.lo : b.y0;
        const y0 = Math.round(py(yLog ? (b.y0 > 0 ? Math.log10(b.y0) : base) : b.y0));
        const y1 = Math.round(py(toAxis(b.y1, yLog)));
        if (!Number.isFinite(y1) || b.y1 === b.y0) continue;
        const x0 = Math.round(px(toAxis(b.x0, xLog)));
        const x1 = Math.round(px(toAxis(b.x1, xLog)));
        out.push(
          `<rect x="${fmt(Math.min(x0, x1))}" y="${fmt(Math.min(y0, y1))}" width="${fmt(Math.abs(x1 - x0))}" height="${fmt(Math.abs(y1 - y0))}"/>`,
        );
      }
      out.push(`</g>`);
    } else {
      const points = m.xs.map((x, i) => [px(toAxis(x, xLog)), py(toAxis(m.ys[i], yLog))] as const);
      out.push(`<g class="trace scatter" data-trace="${traceIndex}" opacity="${m.opacity}">`);
      if (m.lines) {
        let d = "";
        let pen = false;
        for (const [x, y] of points) {
          if (!Number.isFinite(x) || !Number.isFinite(y)) {
            pen = false;
            continue;
          }
          d += `${pen ? "L" : "M"}${fmt(x)},${fmt(y)}`;
          pen = true;
        }
        const dash = dashArray(m.dash, m.lineWidth);
        out.push(
          `<path class="line" d="${d}" fill="none" stroke="${escapeXml(m.color)}" stroke-width="${m.lineWidth}" ` +
            `stroke-linejoin="round" stroke-linecap="round"${dash ? ` stroke-dasharray="${dash}"` : ""}/>`,
        );
      }
      if (m.markers) {
        out.push(`<g class="points" fill="${escapeXml(m.markerColor)}" fill-opacity="${m.markerOpacity}">`);
        for (const [x, y] of points) {
          if (Number.isFinite(x) && Number.isFinite(y)) out.push(`<circle cx="${fmt(x)}" cy="${fmt(y)}" r="${m.markerSize / 2}"/>`);
        }
        out.push(`</g>`);
      }
      out.push(`</g>`);
    }
  });
  out.push(`</g>`);

  // Axes: lines, ticks, labels.
  const axisY = top + plotH;
  out.push(
    `<path class="axes" d="M${left},${top}V${axisY}H${left + plotW}" stroke="${AXIS_COLOR}" stroke-width="1" fill="none"/>`,
  );
  const tickMarks: string[] = [];
  const labels: string[] = [];
  for (const t of xScale.ticks) {
    const x = px(t.value);
    if (x < left - 0.5 || x > left + plotW + 0.5) continue;
    tickMarks.push(`M${fmt(x)},${axisY}v5`);
    labels.push(`<text x="${fmt(x)}" y="${axisY + 8 + LABEL_SIZE}" text-anchor="middle">${escapeXml(t.label)}</text>`);
  }
  for (const t of yScale.ticks) {
    const y = py(t.value);
    if (y < top - 0.5 || y > axisY + 0.5) continue;
    tickMarks.push(`M${left},${fmt(y)}h-5`);
    labels.push(`<text x="${left - 8}" y="${fmt(y + LABEL_SIZE * 0.35)}" text-anchor="end">${escapeXml(t.label)}</text>`);
  }
  out.push(`<path class="ticks" d="${tickMarks.join("")}" stroke="${AXIS_COLOR}" stroke-width="1"/>`);
  out.push(`<g class="tick-labels" font-size="${LABEL_SIZE}" fill="${AXIS_COLOR}">${labels.join("")}</g>`);

  if (xTitle) {
    out.push(
      `<text class="x-title" x="${fmt(left + plotW / 2)}" y="${height - 10}" text-anchor="middle" font-size="${AXIS_TITLE_SIZE}" ` +
        `fill="${TEXT_COLOR}">${escapeXml(xTitle)}</text>`,
    );
  }
  if (yTitle) {
    const x = 8 + AXIS_TITLE_SIZE;
    const y = top + plotH / 2;
    out.push(
      `<text class="y-title" x="${x}" y="${fmt(y)}" transform="rotate(-90 ${x} ${fmt(y)})" text-anchor="middle" ` +
        `font-size="${AXIS_TITLE_SIZE}" fill="${TEXT_COLOR}">${escapeXml(yTitle)}</text>`,
    );
  }
  if (title) {
    // A long title shrinks (down to 11 px) rather than running off the image.
    const titleSize = Math.max(11, Math.min(TITLE_SIZE, Math.floor((TITLE_SIZE * (width - 20)) / textWidth(title, TITLE_SIZE))));
    out.push(
      `<text class="title" x="${fmt(width / 2)}" y="${30}" text-anchor="middle" font-size="${titleSize}" ` +
        `fill="${TEXT_COLOR}">${escapeXml(title)}</text>`,
    );
  }
  if (legend.length) out.push(renderLegend(legend, legendTitle, horizontalLegend, { left, top, plotW, width, titleHeight }));
  out.push(`</svg>`);
  return out.join("\n");
}

function legendSwatch(marks: Marks, x: number, y: number): string {
  if (marks.kind === "bars") {
    const stroke = marks.lineWidth > 0 ? ` stroke="${escapeXml(marks.lineColor ?? "#ffffff")}"` : "";
    return `<rect x="${x}" y="${y - 6}" width="20" height="12" fill="${escapeXml(marks.color)}" opacity="${marks.opacity}"${stroke}/>`;
  }
  let swatch = "";
  if (marks.lines) {
    const dash = dashArray(marks.dash, marks.lineWidth);
    swatch += `<path d="M${x},${y}h20" stroke="${escapeXml(marks.color)}" stroke-width="${marks.lineWidth}" opacity="${marks.opacity}"${dash ? ` stroke-dasharray="${dash}"` : ""}/>`;
  }
  if (marks.markers) {
    swatch += `<circle cx="${x + 10}" cy="${y}" r="${marks.markerSize / 2}" fill="${escapeXml(marks.markerColor)}" opacity="${marks.opacity}"/>`;
  }
  return swatch;
}

function renderLegend(
  entries: LegendEntry[],
  legendTitle: string | undefined,
  horizontal: boolean,
  box: { left: number; top: number; plotW: number; width: number; titleHeight: number },
): string {
  const out: string[] = [`<g class="legend" font-size="${LEGEND_SIZE}" fill="${TEXT_COLOR}">`];
  if (horizontal) {
    let x = box.left;
    const y = box.titleHeight + 10;
    if (legendTitle) {
      out.push(`<text x="${x}" y="${y + 4}" font-weight="bold">${escapeXml(legendTitle)}</text>`);
      x += textWidth(legendTitle, LEGEND_SIZE) + 14;
    }
    for (const e of entries) {
      out.push(`<g class="legend-item">${legendSwatch(e.marks, x, y)}<text x="${x + 26}" y="${y + 4}">${escapeXml(e.name)}</text></g>`);
      x += 26 + textWidth(e.name, LEGEND_SIZE) + 18;
    }
  } else {
    const x = box.left + box.plotW + 20;
    let y = box.top + 8;
    if (legendTitle) {
      out.push(`<text x="${x}" y="${y + 4}" font-weight="bold">${escapeXml(legendTitle)}</text>`);
      y += 20;
    }
    for (const e of entries) {
      out.push(`<g class="legend-item">${legendSwatch(e.marks, x, y)}<text x="${x + 26}" y="${y + 4}">${escapeXml(e.name)}</text></g>`);
      y += 20;
    }
  }
  out.push(`</g>`);
  return out.join("");
}

// ---------------------------------------------------------------------------------------------------------------
// Output forms

/** Rasterises the figure's SVG rendering to a PNG of width·scale × height·scale pixels. */
export async function figureToPng(fig: Figure, options: { scale?: number } = {}): Promise<Buffer> {
  const scale = options.scale ?? 1;
  if (!(scale > 0)) throw new RangeError(`figureToPng: scale must be > 0, got ${scale}`);
  const width = fig.layout?.width ?? DEFAULT_WIDTH;
  const height = fig.layout?.height ?? DEFAULT_HEIGHT;
  const png = await sharp(Buffer.from(renderFigureSvg(fig)), { density: 72 * scale })
    .flatten({ background: "#ffffff" })
    .png()
    .toBuffer({ resolveWithObject: true });
  const wanted = { width: Math.round(width * scale), height: Math.round(height * scale) };
  if (png.info.width === wanted.width && png.info.height === wanted.height) return png.data;
  return sharp(png.data).resize(wanted.width, wanted.height, { fit: "fill" }).png().toBuffer();
}

function numbersToJson(values: Numbers): JsonValue[] {
  return Array.from({ length: values.length }, (_, i) => (Number.isFinite(values[i]) ? values[i] : null));
}

function titleToJson(title: Title | undefined): JsonObject | undefined {
  const text = titleText(title);
  return text === undefined ? undefined : { text };
}

/** Drops undefined fields, so the result is plain JSON. */
function compact(entries: Record<string, JsonValue | undefined>): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(entries)) if (value !== undefined) out[key] = value;
  return out;
}

function markerToJson(marker: BarMarker | ScatterTrace["marker"] | undefined): JsonObject | undefined {
  if (!marker) return undefined;
  const line = "line" in marker && marker.line ? compact({ color: marker.line.color, width: marker.line.width }) : undefined;
  return compact({
    color: marker.color,
    opacity: marker.opacity,
    size: "size" in marker ? marker.size : undefined,
    line,
  });
}

function traceToJson(trace: Trace): JsonObject {
  const common = { name: trace.name, opacity: trace.opacity, showlegend: trace.showlegend };
  switch (trace.type) {
    case "bar":
      return compact({
        type: "bar",
        ...common,
        x: isCategorical(trace.x) ? [...trace.x] : numbersToJson(trace.x),
        y: numbersToJson(trace.y),
        width: trace.width,
        marker: markerToJson(trace.marker),
      });
    case "histogram": {
      const bins = histogramXbins(trace);
      return compact({
        type: "histogram",
        ...common,
        x: numbersToJson(trace.x),
        y: trace.y ? numbersToJson(trace.y) : undefined,
        histfunc: trace.histfunc,
        histnorm: trace.histnorm,
        xbins: { start: bins.start, end: bins.end, size: bins.size },
        marker: markerToJson(trace.marker),
      });
    }
    case "scatter":
      return compact({
        type: "scatter",
        ...common,
        x: numbersToJson(trace.x),
        y: numbersToJson(trace.y),
        mode: trace.mode ?? (trace.x.length <= 20 ? "lines+markers" : "lines"),
        line: trace.line ? compact({ color: trace.line.color, width: trace.line.width, dash: trace.line.dash }) : undefined,
        marker: markerToJson(trace.marker),
      });
  }
}

function axisToJson(axis: Axis | undefined): JsonObject | undefined {
  if (!axis) return undefined;
  return compact({
    title: titleToJson(axis.title),
    range: axis.range ? [axis.range[0], axis.range[1]] : undefined,
    type: axis.type,
    dtick: axis.dtick,
    tickvals: axis.tickvals ? numbersToJson(axis.tickvals) : undefined,
    ticktext: axis.ticktext ? [...axis.ticktext] : undefined,
    tickmode: axis.tickvals ? "array" : axis.dtick !== undefined ? "linear" : undefined,
    showgrid: axis.showgrid,
  });
}

/** The figure as plotly JSON ({ data, layout }), with titles as { text } and histogram bins made explicit. */
export function toPlotlyJson(fig: Figure): JsonObject {
  const layout = fig.layout ?? {};
  return {
    data: fig.data.map(traceToJson),
    layout: compact({
      title: titleToJson(layout.title),
      xaxis: axisToJson(layout.xaxis),
      yaxis: axisToJson(layout.yaxis),
      barmode: layout.barmode,
      bargap: layout.bargap ?? defaultBargap(fig.data, layout.barmode),
      showlegend: layout.showlegend,
      legend: layout.legend
        ? compact({ title: titleToJson(layout.legend.title), orientation: layout.legend.orientation })
        : undefined,
      width: layout.width,
      height: layout.height,
      colorway: [...(layout.colorway ?? DEFAULT_COLORWAY)],
      plot_bgcolor: "#ffffff",
      paper_bgcolor: "#ffffff",
    }),
  };
}

function describeNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : String(Number(v.toPrecision(4)));
}

function describeTrace(trace: Trace, index: number): string {
  const name = `"${trace.name ?? `trace ${index}`}"`;
  if (trace.type === "histogram") {
    const { counts } = binHistogram(trace);
    return `histogram ${name} (${trace.x.length} values, ${counts.length} bins)`;
  }
  const [lo, hi] = extent(Array.from({ length: trace.y.length }, (_, i) => trace.y[i]));
  const range = Number.isFinite(lo) ? `, y ${describeNumber(lo)}…${describeNumber(hi)}` : "";
  if (trace.type === "bar") return `bar ${name} (${trace.y.length} bars${range})`;
  return `${trace.mode ?? "line"} ${name} (${trace.y.length} points${range})`;
}

/** A one-line text summary of a figure (what a terminal shows). */
export function figureSummary(fig: Figure): string {
  const layout = fig.layout ?? {};
  const title = titleText(layout.title);
  const axes = [titleText(layout.xaxis?.title), titleText(layout.yaxis?.title)];
  const parts = [
    `Figure${title ? ` "${title}"` : ""}: ${fig.data.map(describeTrace).join("; ") || "no traces"}`,
    axes[0] || axes[1] ? `x: ${axes[0] ?? "—"}, y: ${axes[1] ?? "—"}` : undefined,
  ];
  return parts.filter(Boolean).join(" — ");
}

/** The three forms of a figure in one bundle: plotly JSON, PNG, one-line text. */
export async function figureBundle(fig: Figure, options: { scale?: number } = {}): Promise<MimeBundle> {
  return {
    "application/vnd.plotly.v1+json": toPlotlyJson(fig),
    "image/png": await figureToPng(fig, options),
    "text/plain": figureSummary(fig),
  };
}

export interface ShowFigureOptions {
  /** Replace this output in place (live plots). */
  handle?: DisplayHandle;
  /** Pixel density of the PNG (2 for sharper images; shown at the figure's size). Default 1. */
  scale?: number;
}

/** Shows a figure as one output that JupyterLab, classic Notebook, nbconvert and the exported post all render. */
export async function showFigure(fig: Figure, options: ShowFigureOptions = {}): Promise<void> {
  const bundle = await figureBundle(fig, { scale: options.scale });
  const scale = options.scale ?? 1;
  const metadata = scale !== 1 ? { "image/png": { width: fig.layout?.width ?? DEFAULT_WIDTH } } : undefined;
  displayBundle(bundle, options.handle, metadata);
}
