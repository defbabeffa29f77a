// The figure model: a typed subset of plotly's figure spec (bar, histogram and scatter traces; a small layout),
// with plotly.js's defaults. lib/display/figures shows a figure; figure-marks, figure-axes and figure-svg draw it.

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

/** A title's text, or undefined when there is none. */
export function titleText(title: Title | undefined): string | undefined {
  if (title === undefined) return undefined;
  const text = typeof title === "string" ? title : title.text;
  return text === "" ? undefined : text;
}

/** Whether bar positions are category names rather than numbers. */
export function isCategorical(x: Numbers | readonly string[]): x is readonly string[] {
  return x.length > 0 && typeof x[0] === "string";
}
