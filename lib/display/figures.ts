// Plotly-style figures that render everywhere: the module notebooks import to show a figure.
//
// A figure is a typed subset of plotly's figure spec (lib/display/figure-model). It is shown as ONE output
// carrying three forms of the same figure:
//   application/vnd.plotly.v1+json  interactive, in JupyterLab with plotly's renderer,
//   image/png                        a static rendering by our own SVG renderer (figure-svg), rasterised by sharp:
//                                    what classic Notebook, nbconvert HTML/Markdown and the exported post show,
//   text/plain                       a one-line summary, for terminals.
// Our renderer exists because plotly.js draws only into a browser's DOM (plotly.js-dist does not even load in
// Node), so it cannot make the PNG while a notebook runs; it is used only where a browser is, inlined in the HTML
// export. The static renderer follows plotly's semantics where it matters for reading the chart (histogram bins,
// bar gaps, barmode, default colours, autorange padding: figure-marks, figure-axes), and the plotly JSON is
// written with the bins the renderer used, so both show the same bars.

import sharp from "sharp";
import { DisplayHandle, displayBundle, type JsonObject, type JsonValue, type MimeBundle } from "./notebook-display";
import { extent } from "./figure-axes";
import { binHistogram, defaultBargap, histogramXbins } from "./figure-marks";
import {
  DEFAULT_COLORWAY,
  DEFAULT_HEIGHT,
  DEFAULT_WIDTH,
  isCategorical,
  titleText,
  type Axis,
  type BarMarker,
  type Figure,
  type Numbers,
  type ScatterTrace,
  type Title,
  type Trace,
} from "./figure-model";
import { renderFigureSvg } from "./figure-svg";

export type { Axis, BarMarker, BarTrace, Figure, HistogramBins, HistogramTrace, Layout, ScatterTrace, Trace } from "./figure-model";

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
