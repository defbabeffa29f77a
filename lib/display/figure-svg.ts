// The static rendering of a figure: a standalone SVG document (plot area, grid, bars and lines, axes with ticks
// and titles, legend), laid out from estimated text widths. lib/display/figures rasterises it to a PNG with sharp.

import { escapeXml } from "./image-grid";
import { autorange, makeScale, toAxis, type Scale } from "./figure-axes";
import { DEFAULT_HEIGHT, DEFAULT_WIDTH, titleText, type Dash, type Figure } from "./figure-model";
import { categoriesOf, marksOf, type Marks } from "./figure-marks";

const FONT_FAMILY = "DejaVu Sans, Helvetica, Arial, sans-serif";
const TEXT_COLOR = "#2a3f5f";
const AXIS_COLOR = "#444444";
const GRID_COLOR = "#e5e8ee";

// ---------------------------------------------------------------------------------------------------------------
// Text measurement (estimates for DejaVu Sans, a little generous for Helvetica/Arial)

const NARROW = new Set(" .,:;'|!iIjl()[]{}ftr-");
const WIDE = new Set("mwMW%@");

/** Estimated rendered width of text in px. */
function textWidth(text: string, fontSize: number): number {
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
