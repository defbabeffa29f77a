// From a figure's traces to what is drawn, in data coordinates: histogram bins and counts exactly as plotly bins
// them (left-closed bins, automatic bin sizes, integer data centred in its bin), bar slots and gaps for each
// barmode, and scatter lines and markers, each with its colour from the colorway.

import { standardDeviation } from "simple-statistics";
import { clean, extent, niceStep } from "./figure-axes";
import {
  DEFAULT_COLORWAY,
  isCategorical,
  type BarTrace,
  type Dash,
  type Figure,
  type HistogramBins,
  type HistogramTrace,
  type Layout,
  type Numbers,
  type Trace,
} from "./figure-model";

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
// Traces to marks

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

export type Marks = BarMarks | LineMarks;

/** A bar-like trace reduced to positions: centre, slot width, height. */
interface Slots {
  center: number[];
  slot: number[];
  value: number[];
  /** Histogram: bins with a zero count at either end are left out of autorange, as plotly does. */
  trimmed: [number, number];
}

export function categoriesOf(traces: readonly Trace[]): string[] {
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
export function defaultBargap(traces: readonly Trace[], barmode: Layout["barmode"]): number {
  const barTraces = traces.filter((t) => t.type !== "scatter");
  const histogramOnNumeric = barTraces.some((t) => t.type === "histogram");
  const gapped = (barmode ?? "group") === "group" && barTraces.length > 1;
  return histogramOnNumeric && !gapped ? 0 : 0.2;
}

export function marksOf(fig: Figure, categories: readonly string[]): Marks[] {
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
