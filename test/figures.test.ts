import sharp from "sharp";
import { afterEach, describe, expect, it } from "vitest";
import { figureBundle, figureSummary, figureToPng, showFigure, toPlotlyJson, type Figure } from "../lib/display/figures";
import { formatTick, niceStep, niceTicks, smallerNiceStep } from "../lib/display/figure-axes";
import { autoBins, binHistogram } from "../lib/display/figure-marks";
import { renderFigureSvg } from "../lib/display/figure-svg";
import { setDisplayWriter, type DisplayDataContent } from "../lib/display/notebook-display";

/** Checks that every tag is closed in order and attributes are quoted; returns the element names seen. */
function parseXml(xml: string): string[] {
  const stack: string[] = [];
  const names: string[] = [];
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g;
  let last = 0;
  for (let m = tag.exec(xml); m; m = tag.exec(xml)) {
    const between = xml.slice(last, m.index);
    if (between.includes("<") || between.includes(">")) throw new Error(`stray markup before ${m[0]}: ${between}`);
    if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(between)) throw new Error(`unescaped & in ${between}`);
    last = tag.lastIndex;
    const [, closing, name, , selfClosing] = m;
    if (closing) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}>`);
    } else {
      names.push(name);
      if (!selfClosing) stack.push(name);
    }
  }
  if (stack.length) throw new Error(`unclosed: ${stack.join(", ")}`);
  if (xml.slice(last).trim()) throw new Error("text after the root element");
  return names;
}

/** The inner markup of the first <g class="…cls…" data-trace="i"> group. */
function traceGroup(svg: string, cls: string, index: number): string {
  const start = svg.indexOf(`<g class="trace ${cls}" data-trace="${index}"`);
  expect(start).toBeGreaterThanOrEqual(0);
  let depth = 0;
  const tag = /<(\/?)g[\s>]/g;
  tag.lastIndex = start;
  for (let m = tag.exec(svg); m; m = tag.exec(svg)) {
    depth += m[1] ? -1 : 1;
    if (depth === 0) return svg.slice(start, m.index);
  }
  throw new Error("unbalanced group");
}

function rects(markup: string): { x: number; y: number; width: number; height: number }[] {
  return [...markup.matchAll(/<rect x="([\d.-]+)" y="([\d.-]+)" width="([\d.]+)" height="([\d.]+)"\/>/g)].map((m) => ({
    x: Number(m[1]),
    y: Number(m[2]),
    width: Number(m[3]),
    height: Number(m[4]),
  }));
}

const sparse = [1, 3, 3, 4, 4, 4, 5, 5, 5, 5, 6, 6, 7, 7, 7];
const dense = [1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 4, 5];
const ratingsHistogram: Figure = {
  data: [
    { type: "histogram", name: "Sparse features", x: sparse, xbins: { start: 0.5, end: 7.5, size: 1 }, opacity: 0.6 },
    { type: "histogram", name: "Dense features", x: dense, xbins: { start: 0.5, end: 7.5, size: 1 }, opacity: 0.6 },
  ],
  layout: {
    title: "Blind interpretability ratings",
    barmode: "overlay",
    xaxis: { title: "Rating", dtick: 1 },
    yaxis: { title: "Count" },
  },
};

describe("nice ticks", () => {
  it("picks 1, 2 or 5 × 10^k", () => {
    expect([niceStep(0.7), niceStep(1), niceStep(1.2), niceStep(2.8), niceStep(7), niceStep(0.013), niceStep(4200)]).toEqual([
      1, 1, 2, 5, 10, 0.02, 5000,
    ]);
  });

  it("covers the range with clean multiples of the step", () => {
    expect(niceTicks(0, 16.8, 6)).toEqual({ step: 5, ticks: [0, 5, 10, 15] });
    expect(niceTicks(0, 2.4, 6)).toEqual({ step: 0.5, ticks: [0, 0.5, 1, 1.5, 2] });
    expect(niceTicks(0, 1, 5)).toEqual({ step: 0.2, ticks: [0, 0.2, 0.4, 0.6, 0.8, 1] });
    expect(niceTicks(-3.2, 7.9, 5).ticks).toEqual([-2, 0, 2, 4, 6]);
    expect(niceTicks(0, 307_200, 5).ticks).toEqual([0, 100_000, 200_000, 300_000]);
    expect(niceTicks(0.081, 0.0835, 4).ticks).toEqual([0.081, 0.082, 0.083]);
    // a narrow range still gets at least two ticks
    expect(niceTicks(0.5, 1.6, 1).ticks.length).toBeGreaterThanOrEqual(2);
    // 0.1 gives no tick inside and 0.05 one: stepping down must reach 0.02, not halve and round back up to 0.05
    // forever (a feature card's histogram with a wide legend hung notebook 05 on this range)
    expect(niceTicks(0.001960784313725518, 0.09411764705882342, 2)).toEqual({ step: 0.02, ticks: [0.02, 0.04, 0.06, 0.08] });
    expect([0.1, 0.05, 0.02, 0.01, 5].map(smallerNiceStep)).toEqual([0.05, 0.02, 0.01, 0.005, 2]);
  });

  it("labels ticks like plotly", () => {
    expect(formatTick(0.2, 0.2)).toBe("0.2");
    expect(formatTick(1.5, 0.5)).toBe("1.5");
    expect(formatTick(3, 1)).toBe("3");
    expect(formatTick(-2, 1)).toBe("−2");
    expect(formatTick(1500, 500)).toBe("1500");
    expect(formatTick(200_000, 100_000)).toBe("200k");
    expect(formatTick(15_000, 5000)).toBe("15k");
    expect(formatTick(2_500_000, 500_000)).toBe("2.5M");
    expect(formatTick(2.5e-5, 5e-6)).toBe("2.5e−5");
    expect(formatTick(0, 0.1)).toBe("0");
  });
});

describe("histogram binning (plotly's semantics)", () => {
  it("counts values in left-closed bins", () => {
    const { edges, counts, dropped } = binHistogram(ratingsHistogram.data[0] as never);
    expect(edges).toEqual([0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]);
    expect(counts).toEqual([1, 0, 2, 3, 4, 2, 3]);
    expect(dropped).toBe(0);
  });

  it("drops values on or past the end edge, as plotly does (matplotlib would not)", () => {
    const { counts, dropped } = binHistogram({ type: "histogram", x: [1, 1.5, 2, 6.99, 7, 8, 0], xbins: { start: 1, end: 7, size: 1 } });
    expect(counts).toEqual([2, 1, 0, 0, 0, 1]);
    expect(dropped).toBe(3);
  });

  it("sums pre-binned counts and normalises", () => {
    const prebinned = binHistogram({ type: "histogram", x: [1, 2, 3], y: [5, 0, 15], histfunc: "sum", xbins: { start: 0.5, end: 3.5, size: 1 } });
    expect(prebinned.counts).toEqual([5, 0, 15]);
    const percent = binHistogram({ type: "histogram", x: [1, 1, 2, 3], histnorm: "percent", xbins: { start: 0.5, end: 3.5, size: 1 } });
    expect(percent.counts).toEqual([50, 25, 25]);
  });

  it("bins integer data automatically with the integers mid-bin", () => {
    // Many ratings: the 1-apart values set the size, edges at half-integers.
    expect(autoBins(Array.from({ length: 20 }, () => sparse).flat())).toEqual({ start: 0.5, end: 7.5, size: 1 });
    // Few ratings: plotly's 2·stdev/n^0.4 rule asks for wider bins (1.22 → 2), still centred on integers' gaps.
    expect(autoBins(sparse)).toEqual({ start: -0.5, end: 7.5, size: 2 });
    const waves = Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 10);
    const bins = autoBins(waves);
    expect([1, 2, 5, 10]).toContain(bins.size);
    expect(bins.start).toBeLessThanOrEqual(Math.min(...waves));
    expect(bins.end).toBeGreaterThan(Math.max(...waves));
    expect(binHistogram({ type: "histogram", x: waves }).dropped).toBe(0);
    expect(autoBins([0, 100], 10).size).toBe(10);
  });
});

describe("renderFigureSvg", () => {
  it("draws one rect per non-empty bin of each overlaid histogram, at the bin's place", () => {
    const svg = renderFigureSvg(ratingsHistogram);
    expect(parseXml(svg)[0]).toBe("svg");
    const sparseBars = rects(traceGroup(svg, "bars", 0));
    const denseBars = rects(traceGroup(svg, "bars", 1));
    expect(sparseBars).toHaveLength(6); // bin 2 is empty
    expect(denseBars).toHaveLength(5); // bins 1–5
    // Overlay with no gap: every bar of a trace is one bin wide, bins are adjacent.
    // (edges are snapped to whole pixels, so widths differ by at most one pixel)
    const widths = sparseBars.map((r) => r.width);
    expect(Math.max(...widths) - Math.min(...widths)).toBeLessThanOrEqual(1);
    for (let i = 2; i < sparseBars.length; i++) expect(sparseBars[i].x).toBe(sparseBars[i - 1].x + sparseBars[i - 1].width);
    // The tallest sparse bar (rating 5, count 4) is twice as tall as rating 3 (count 2).
    const heights = sparseBars.map((r) => r.height);
    expect(heights[3] / heights[1]).toBeCloseTo(2, 1);
    // Same bin, same x for both traces in overlay mode.
    expect(denseBars[0].x).toBeCloseTo(sparseBars[0].x, 1);
    expect(traceGroup(svg, "bars", 0)).toMatch(/^<g class="trace bars" data-trace="0" fill="#1f77b4" opacity="0.6">/);
    expect(svg).toContain(">Blind interpretability ratings</text>");
    expect(svg).toContain(">Sparse features</text>");
    // Rating ticks 1..7
    for (let r = 1; r <= 7; r++) expect(svg).toMatch(new RegExp(`text-anchor="middle">${r}</text>`));
  });

  it("groups bars side by side with a gap in group mode", () => {
    const svg = renderFigureSvg({ ...ratingsHistogram, layout: { ...ratingsHistogram.layout, barmode: "group" } });
    const a = rects(traceGroup(svg, "bars", 0));
    const b = rects(traceGroup(svg, "bars", 1));
    // Bin 1 has only a dense bar, bin 3 has both: the dense bar sits right of the sparse one, same width.
    const sparse3 = a[1];
    const dense3 = b[2];
    expect(dense3.x).toBe(sparse3.x + sparse3.width);
    expect(Math.abs(dense3.width - sparse3.width)).toBeLessThanOrEqual(1);
    // bargap 0.2: the two bars fill 80% of a bin; a bin is the distance between bin 3 and bin 4 bars.
    expect((2 * sparse3.width) / (a[2].x - a[1].x)).toBeCloseTo(0.8, 1);
  });

  it("draws lines as one path with a point per value and markers as circles", () => {
    const y = [3, 2.5, 1.2, 0.8, Number.NaN, 0.5, 0.45];
    const svg = renderFigureSvg({
      data: [
        { type: "scatter", name: "loss", x: y.map((_, i) => i), y, mode: "lines" },
        { type: "scatter", name: "val", x: [0, 3, 6], y: [3.1, 0.9, 0.6], mode: "markers" },
        { type: "scatter", name: "both", x: [0, 6], y: [1, 1], mode: "lines+markers", line: { dash: "dash" } },
      ],
      layout: { title: "Loss & <stuff>" },
    });
    parseXml(svg);
    expect(svg).toContain("Loss &#38; &#60;stuff&#62;");
    const line = traceGroup(svg, "scatter", 0);
    const d = /d="([^"]+)"/.exec(line)?.[1] ?? "";
    expect(d.match(/[ML]/g)).toHaveLength(6); // NaN leaves a gap: 6 points, 2 sub-paths
    expect(d.match(/M/g)).toHaveLength(2);
    expect(line).not.toContain("<circle");
    expect(traceGroup(svg, "scatter", 1).match(/<circle/g)).toHaveLength(3);
    const both = traceGroup(svg, "scatter", 2);
    expect(both.match(/<circle/g)).toHaveLength(2);
    expect(both).toContain("stroke-dasharray");
  });

  it("renders an empty figure and shrinks a title too long for the width", () => {
    expect(parseXml(renderFigureSvg({ data: [] }))[0]).toBe("svg");
    const long = "A very long title that would never fit into a figure only three hundred pixels wide";
    const svg = renderFigureSvg({ data: [], layout: { title: long, width: 300, height: 200 } });
    expect(Number(/class="title"[^>]*font-size="(\d+)"/.exec(svg)?.[1])).toBeLessThan(17);
    expect(renderFigureSvg({ data: [], layout: { title: "Short" } })).toMatch(/class="title"[^>]*font-size="17"/);
  });

  it("puts categories on the x axis for string x", () => {
    const svg = renderFigureSvg({ data: [{ type: "bar", x: ["dense", "sparse"], y: [3.1, 4.6] }] });
    const bars = rects(traceGroup(svg, "bars", 0));
    expect(bars).toHaveLength(2);
    expect(svg).toContain(">dense</text>");
    expect(svg).toContain(">sparse</text>");
    expect(bars[1].height / bars[0].height).toBeCloseTo(4.6 / 3.1, 1);
    expect(svg).not.toContain('class="legend"'); // one trace: no legend
  });

  it("honours log axes and explicit ranges", () => {
    const svg = renderFigureSvg({
      data: [{ type: "scatter", x: [1, 2, 3], y: [1, 100, 10000], mode: "markers" }],
      layout: { yaxis: { type: "log" }, xaxis: { range: [0, 4] } },
    });
    for (const label of ["1", "100", "10k"]) expect(svg).toContain(`text-anchor="end">${label}</text>`);
    const ys = [...traceGroup(svg, "scatter", 0).matchAll(/cy="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(ys[0] - ys[1]).toBeCloseTo(ys[1] - ys[2], 1); // equal steps in log space
    const xs = [...traceGroup(svg, "scatter", 0).matchAll(/cx="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(xs[1] - xs[0]).toBeCloseTo(xs[2] - xs[1], 1);
    expect(svg).toMatch(/text-anchor="middle">4<\/text>/);
  });
});

describe("PNG and bundle", () => {
  afterEach(() => setDisplayWriter(undefined));

  it("rasterises at the requested size with the bars where the SVG puts them", async () => {
    const fig: Figure = { data: [{ type: "bar", x: [1, 2, 3], y: [1, 2, 3] }], layout: { width: 400, height: 300 } };
    const png = await figureToPng(fig);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([400, 300]);
    const bars = rects(traceGroup(renderFigureSvg(fig), "bars", 0));
    const pixel = (x: number, y: number): number[] => {
      const p = (y * info.width + x) * info.channels;
      return [data[p], data[p + 1], data[p + 2]];
    };
    for (const bar of bars) {
      const [r, g, b] = pixel(Math.round(bar.x + bar.width / 2), Math.round(bar.y + bar.height / 2));
      expect(Math.abs(r - 0x1f) + Math.abs(g - 0x77) + Math.abs(b - 0xb4)).toBeLessThan(6); // #1f77b4
    }
    // Above the shortest bar, inside the plot: background.
    const [r, g, b] = pixel(Math.round(bars[0].x + bars[0].width / 2), Math.round(bars[0].y - 20));
    expect(Math.min(r, g, b)).toBeGreaterThan(200);
    const scaled = await sharp(await figureToPng(fig, { scale: 2 })).metadata();
    expect([scaled.width, scaled.height]).toEqual([800, 600]);
  });

  it("bundles plotly JSON with explicit bins, a PNG and a one-line summary", async () => {
    const bundle = await figureBundle(ratingsHistogram);
    expect(Object.keys(bundle).sort()).toEqual(["application/vnd.plotly.v1+json", "image/png", "text/plain"]);
    const meta = await sharp(bundle["image/png"]).metadata();
    expect([meta.width, meta.height]).toEqual([700, 450]);
    const summary = bundle["text/plain"] ?? "";
    expect(summary).not.toContain("\n");
    expect(summary).toContain('histogram "Sparse features" (15 values, 7 bins)');
    expect(summary).toBe(figureSummary(ratingsHistogram));

    const json = toPlotlyJson({ data: [{ type: "histogram", x: [1, 2, 2, Number.NaN] }], layout: { title: "t", xaxis: { title: "x" } } });
    expect(json).toMatchObject({
      data: [{ type: "histogram", x: [1, 2, 2, null], xbins: { start: 0.5, end: 2.5, size: 1 } }],
      layout: { title: { text: "t" }, xaxis: { title: { text: "x" } }, bargap: 0 },
    });
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
  });

  it("showFigure sends one display_data with the three MIME types", async () => {
    const sent: DisplayDataContent[] = [];
    setDisplayWriter((content) => sent.push(content));
    await showFigure(ratingsHistogram);
    expect(sent).toHaveLength(1);
    const data = sent[0].data;
    expect(Object.keys(data).sort()).toEqual(["application/vnd.plotly.v1+json", "image/png", "text/plain"]);
    const png = Buffer.from(data["image/png"] as string, "base64");
    expect(png.subarray(1, 4).toString()).toBe("PNG");
  });
});
