import { afterEach, describe, expect, it } from "vitest";
import {
  describeColumns,
  escapeHtml,
  formatCell,
  htmlTable,
  showTable,
  tableBundle,
  textTable,
} from "../lib/display/html-table";
import { setDisplayWriter, type DisplayDataContent } from "../lib/display/notebook-display";

const sparse = [2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 7, 3.5];
const dense = [1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 6, 1, 2, 4, 5];

/** The text of every <td>/<th> in a row of the HTML, with its alignment. */
function htmlRows(html: string): { tag: string; align: string; text: string }[][] {
  return [...html.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((tr) =>
    [...tr[1].matchAll(/<(td|th) style="text-align: (\w+);">([^<]*)<\/\1>/g)].map((m) => ({ tag: m[1], align: m[2], text: m[3] })),
  );
}

describe("formatCell", () => {
  it("formats numbers with a configurable number of decimals", () => {
    expect(formatCell(16)).toBe("16");
    expect(formatCell(4.4375)).toBe("4.4375");
    expect(formatCell(1.547848, 2)).toBe("1.55");
    expect(formatCell(16, 6, true)).toBe("16.000000");
    expect(formatCell(-0.5, 3)).toBe("-0.500");
    expect(formatCell(0.00001234, 4)).toBe("1.234e-5");
    expect(formatCell(Number.NaN)).toBe("NaN");
    expect(formatCell(-Infinity)).toBe("-inf");
    expect(formatCell(12345678901234567890n)).toBe("12345678901234567890");
    expect(formatCell(null)).toBe("");
    expect(formatCell(undefined)).toBe("");
    expect(formatCell(true)).toBe("true");
  });
});

describe("describeColumns (pandas describe)", () => {
  it("matches numpy/pandas statistics", () => {
    // Expected values computed with numpy: std(ddof=1), percentile (linear interpolation).
    const d = describeColumns({ sparse, dense });
    expect(d.count).toEqual({ sparse: 16, dense: 16 });
    expect(d.mean.sparse).toBeCloseTo(4.46875, 12);
    expect(d.std.sparse).toBeCloseTo(1.3840610535666409, 12);
    expect(d.std.dense).toBeCloseTo(1.4548768561863463, 12);
    expect([d.min.sparse, d["25%"].sparse, d["50%"].sparse, d["75%"].sparse, d.max.sparse]).toEqual([2, 3.375, 4.5, 5.25, 7]);
    expect([d.min.dense, d["25%"].dense, d["50%"].dense, d["75%"].dense, d.max.dense]).toEqual([1, 2, 3, 4, 6]);
    expect(Object.keys(d)).toEqual(["count", "mean", "std", "min", "25%", "50%", "75%", "max"]);
  });

  it("ignores NaN and handles tiny columns", () => {
    const d = describeColumns({ a: [1, Number.NaN, 3], b: [5] });
    expect(d.count).toEqual({ a: 2, b: 1 });
    expect(d.mean.a).toBe(2);
    expect(Number.isNaN(d.std.b as number)).toBe(true);
    const quartiles = describeColumns({ empty: [], four: [4, 2, 1, 3] });
    expect(quartiles["25%"].empty).toBeNaN();
    expect(quartiles["25%"].four).toBe(1.75);
  });
});

describe("htmlTable", () => {
  it("renders a describe() table with the statistics as index, numbers right-aligned", () => {
    const html = htmlTable(describeColumns({ sparse, dense }), { caption: "Ratings" });
    expect(html).toMatch(/^<table border="1" class="dataframe"/);
    expect(html).toContain("<caption>Ratings</caption>");
    const rows = htmlRows(html);
    expect(rows).toHaveLength(9);
    expect(rows[0].map((c) => c.text)).toEqual(["", "sparse", "dense"]);
    expect(rows[0].map((c) => c.align)).toEqual(["left", "right", "right"]);
    expect(rows[1]).toEqual([
      { tag: "th", align: "left", text: "count" },
      { tag: "td", align: "right", text: "16.0000" },
      { tag: "td", align: "right", text: "16.0000" },
    ]);
    expect(rows[2].map((c) => c.text)).toEqual(["mean", "4.4688", "3.1250"]);
    expect(rows[5].map((c) => c.text)).toEqual(["25%", "3.3750", "2.0000"]);
    // Integers keep no decimals when asked, and in columns of integers only.
    expect(htmlRows(htmlTable(describeColumns({ sparse }), { fixedDecimals: false }))[1][1].text).toBe("16");
    expect(htmlRows(htmlTable([{ n: 3 }, { n: 12 }]))[1][0].text).toBe("3");
  });

  it("reproduces pandas' float formatting when asked", () => {
    const rows = htmlRows(htmlTable(describeColumns({ sparse }), { digits: 6, fixedDecimals: true }));
    expect(rows[1][1].text).toBe("16.000000");
    expect(rows[2][1].text).toBe("4.468750");
  });

  it("escapes everything it is given", () => {
    const html = htmlTable([{ "<col>": "a & b", q: `"quoted" 'x'` }], { caption: "<script>alert(1)</script>" });
    expect(html).not.toContain("<script>");
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(html).toContain("<th style=\"text-align: left;\">&lt;col&gt;</th>");
    expect(html).toContain("a &amp; b");
    expect(html).toContain("&quot;quoted&quot; &#39;x&#39;");
    expect(escapeHtml("<&>")).toBe("&lt;&amp;&gt;");
  });

  it("chooses columns, index labels and per-column decimals", () => {
    const rows = [
      { feature: "sae:12", rating: 5, activation: 0.123456 },
      { feature: "dense:7", rating: 2, activation: 1.5 },
    ];
    const html = htmlTable(rows, { columns: ["rating", "activation"], index: ["first", "second"], digits: { activation: 2 } });
    const parsed = htmlRows(html);
    expect(parsed.map((r) => r.map((c) => c.text))).toEqual([
      ["", "rating", "activation"],
      ["first", "5", "0.12"],
      ["second", "2", "1.50"],
    ]);
    expect(htmlRows(htmlTable(rows))[0].map((c) => c.text)).toEqual(["feature", "rating", "activation"]); // no index
    expect(htmlRows(htmlTable(rows, { index: true }))[2][0].text).toBe("1");
    expect(() => htmlTable(rows, { index: ["one"] })).toThrow(/1 labels for 2 rows/);
    const custom = htmlTable(rows, { format: (v, c) => (c === "rating" ? `${String(v)}/7` : undefined) });
    expect(custom).toContain(">5/7<");
    expect(custom).toContain(">0.1235<");
  });

  it("left-aligns text and right-aligns the numbers of a mixed column", () => {
    const parsed = htmlRows(htmlTable([{ v: 1 }, { v: "n/a" }, { v: null }]));
    expect(parsed[0][0].align).toBe("left"); // header of a mixed column
    expect(parsed.slice(1).map((r) => r[0].align)).toEqual(["right", "left", "left"]);
  });
});

describe("textTable", () => {
  it("aligns columns like pandas' text repr", () => {
    const text = textTable({ count: { sparse: 16, dense: 16 }, mean: { sparse: 4.4375, dense: 3.25 }, min: { sparse: 2, dense: 1 } });
    expect(text.split("\n")).toEqual([
      "        sparse    dense",
      "count  16.0000  16.0000",
      "mean    4.4375   3.2500",
      "min     2.0000   1.0000",
    ]);
  });

  it("puts the caption first and left-aligns strings", () => {
    expect(textTable([{ name: "a", n: 10 }, { name: "longer", n: 2 }], { caption: "Counts" }).split("\n")).toEqual([
      "Counts",
      "name     n",
      "a       10",
      "longer   2",
    ]);
  });
});

describe("showTable", () => {
  afterEach(() => setDisplayWriter(undefined));

  it("displays one bundle with text/html and text/plain", () => {
    const sent: DisplayDataContent[] = [];
    setDisplayWriter((content) => sent.push(content));
    const data = describeColumns({ sparse, dense });
    showTable(data);
    expect(sent).toHaveLength(1);
    expect(sent[0].data).toEqual(tableBundle(data));
    expect(Object.keys(sent[0].data).sort()).toEqual(["text/html", "text/plain"]);
  });
});
