// Tables for notebooks: an HTML table (what JupyterLab, nbconvert and the exported post show) with an aligned
// plain-text twin (what a terminal shows), like a pandas DataFrame's two reprs. Numbers are right-aligned and
// formatted with a configurable number of decimals; an index column (row labels, like pandas' describe()) is
// optional. `describeColumns` computes pandas' describe() table.

import { mean, quantileSorted, sampleStandardDeviation } from "simple-statistics";
import { DisplayHandle, displayBundle, type MimeBundle } from "./notebook-display";

/** What a cell can hold. null/undefined are shown empty. */
export type Cell = string | number | bigint | boolean | null | undefined;
/** One row: column name → value. */
export type Row = Readonly<Record<string, Cell>>;
/** Rows as an array, or keyed by row label (the labels become the index column). */
export type Rows = readonly Row[] | Readonly<Record<string, Row>>;

export interface TableOptions {
  /** Columns to show, in order (default: every key, in order of first appearance). */
  columns?: readonly string[];
  caption?: string;
  /** Decimals of non-integer numbers: one for all columns or per column (default 4). */
  digits?: number | Readonly<Record<string, number>>;
  /**
   * Whether integers get decimals too: true always ("16.000000", pandas' style for float columns), false never,
   * "column" (default) when their column holds a non-integer number, so a column's decimals line up.
   */
  fixedDecimals?: boolean | "column";
  /** Custom formatting; return undefined to use the default for that cell. */
  format?: (value: Cell, column: string) => string | undefined;
  /**
   * The index column: true shows row labels (the keys of keyed rows, else 0, 1, 2…), false hides it, an array
   * gives the labels. Default: shown for keyed rows, hidden for an array.
   */
  index?: boolean | readonly string[];
  /** Header of the index column (default empty, like pandas). */
  indexName?: string;
}

/** The table as strings and alignments, shared by the HTML and text renderings. */
export interface TableModel {
  columns: string[];
  /** Row labels, or undefined without an index column. */
  index: string[] | undefined;
  indexName: string;
  cells: string[][];
  /** Per column: right-aligned when every value in it is a number. */
  numeric: boolean[];
  /** Per cell: whether the raw value was a number (right-aligned even in a mixed column). */
  isNumber: boolean[][];
  caption: string | undefined;
}

const DEFAULT_DIGITS = 4;

function isNumeric(value: Cell): value is number | bigint {
  return typeof value === "number" || typeof value === "bigint";
}

/**
 * Formats one value: integers as they are (or with `digits` decimals when `fixedDecimals`), other numbers with
 * `digits` decimals (exponential when that would show only zeros), NaN/inf spelled out, missing values empty.
 */
export function formatCell(value: Cell, digits = DEFAULT_DIGITS, fixedDecimals = false): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number") {
    if (Number.isNaN(value)) return "NaN";
    if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
    if (Number.isInteger(value) && Math.abs(value) < 1e21 && !fixedDecimals) return String(value);
    if (value !== 0 && Math.abs(value) < 10 ** -digits) return value.toExponential(Math.max(0, digits - 1));
    return value.toFixed(digits);
  }
  return String(value);
}

function rowsOf(rows: Rows): { list: readonly Row[]; keys: string[] | undefined } {
  if (Array.isArray(rows)) return { list: rows as readonly Row[], keys: undefined };
  const keyed = rows as Readonly<Record<string, Row>>;
  const keys = Object.keys(keyed);
  return { list: keys.map((k) => keyed[k]), keys };
}

/** Builds the table model (formatted strings and alignment) from rows and options. */
export function tableModel(rows: Rows, options: TableOptions = {}): TableModel {
  const { list, keys } = rowsOf(rows);
  const columns = options.columns ? [...options.columns] : [...new Set(list.flatMap((row) => Object.keys(row)))];
  let index: string[] | undefined;
  const wantIndex = options.index ?? keys !== undefined;
  if (Array.isArray(wantIndex)) {
    if (wantIndex.length !== list.length) {
      throw new RangeError(`htmlTable: index has ${wantIndex.length} labels for ${list.length} rows`);
    }
    index = [...wantIndex];
  } else if (wantIndex === true) {
    index = keys ?? list.map((_, i) => String(i));
  }
  const digitsOf = (column: string): number =>
    typeof options.digits === "number" ? options.digits : (options.digits?.[column] ?? DEFAULT_DIGITS);
  const fixed = options.fixedDecimals ?? "column";
  const fixedIn = new Map(
    columns.map((column) => [
      column,
      fixed === "column" ? list.some((row) => typeof row[column] === "number" && !Number.isInteger(row[column])) : fixed,
    ]),
  );
  const cells = list.map((row) =>
    columns.map(
      (column) => options.format?.(row[column], column) ?? formatCell(row[column], digitsOf(column), fixedIn.get(column)),
    ),
  );
  const isNumber = list.map((row) => columns.map((column) => isNumeric(row[column])));
  const numeric = columns.map((column) => {
    const present = list.map((row) => row[column]).filter((v) => v !== null && v !== undefined);
    return present.length > 0 && present.every(isNumeric);
  });
  return { columns, index, indexName: options.indexName ?? "", cells, numeric, isNumber, caption: options.caption };
}

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);
}

const RIGHT = ' style="text-align: right;"';
const LEFT = ' style="text-align: left;"';

/** The model as an HTML table (pandas-like markup, inline alignment so it renders the same everywhere). */
export function renderHtml(model: TableModel): string {
  const out: string[] = [];
  out.push('<table border="1" class="dataframe" style="border-collapse: collapse; font-variant-numeric: tabular-nums;">');
  if (model.caption !== undefined) out.push(`  <caption>${escapeHtml(model.caption)}</caption>`);
  out.push("  <thead>", "    <tr>");
  if (model.index) out.push(`      <th${LEFT}>${escapeHtml(model.indexName)}</th>`);
  model.columns.forEach((column, c) => out.push(`      <th${model.numeric[c] ? RIGHT : LEFT}>${escapeHtml(column)}</th>`));
  out.push("    </tr>", "  </thead>", "  <tbody>");
  model.cells.forEach((row, r) => {
    out.push("    <tr>");
    if (model.index) out.push(`      <th${LEFT}>${escapeHtml(model.index[r])}</th>`);
    row.forEach((cell, c) => out.push(`      <td${model.isNumber[r][c] ? RIGHT : LEFT}>${escapeHtml(cell)}</td>`));
    out.push("    </tr>");
  });
  out.push("  </tbody>", "</table>");
  return out.join("\n");
}

/** Display width of a string (code points; good enough for the labels of a table). */
function width(text: string): number {
  return [...text].length;
}

function pad(text: string, size: number, right: boolean): string {
  const fill = " ".repeat(Math.max(0, size - width(text)));
  return right ? fill + text : text + fill;
}

/** The model as an aligned plain-text table, like pandas' text repr. */
export function renderText(model: TableModel): string {
  const lines: string[] = [];
  if (model.caption !== undefined) lines.push(model.caption);
  const indexWidth = model.index ? Math.max(width(model.indexName), ...model.index.map(width)) : 0;
  const widths = model.columns.map((column, c) => Math.max(width(column), ...model.cells.map((row) => width(row[c]))));
  const line = (label: string | undefined, values: string[], right: (c: number) => boolean): string => {
    const parts = values.map((v, c) => pad(v, widths[c], right(c)));
    if (model.index) parts.unshift(pad(label ?? "", indexWidth, false));
    return parts.join("  ").replace(/\s+$/, "");
  };
  lines.push(line(model.indexName, model.columns, (c) => model.numeric[c]));
  model.cells.forEach((row, r) => lines.push(line(model.index?.[r], row, (c) => model.isNumber[r][c])));
  return lines.join("\n");
}

/** An HTML table of rows (escaped, numbers right-aligned and formatted). */
export function htmlTable(rows: Rows, options: TableOptions = {}): string {
  return renderHtml(tableModel(rows, options));
}

/** The same table as aligned plain text. */
export function textTable(rows: Rows, options: TableOptions = {}): string {
  return renderText(tableModel(rows, options));
}

/** The table's display bundle: text/html plus its plain-text twin. */
export function tableBundle(rows: Rows, options: TableOptions = {}): MimeBundle {
  const model = tableModel(rows, options);
  return { "text/html": renderHtml(model), "text/plain": renderText(model) };
}

/** Shows a table in the notebook (HTML, with aligned text for terminals). */
export function showTable(rows: Rows, options: TableOptions & { handle?: DisplayHandle } = {}): void {
  displayBundle(tableBundle(rows, options), options.handle);
}

/** The statistics of pandas' describe(), in its order. */
export const DESCRIBE_STATS = ["count", "mean", "std", "min", "25%", "50%", "75%", "max"] as const;
export type DescribeStat = (typeof DESCRIBE_STATS)[number];

/**
 * pandas' `DataFrame(columns).describe()`: count, mean, sample std (ddof 1), min, quartiles, max per column,
 * keyed by statistic so `showTable(describeColumns(...))` shows it with the statistics as index.
 * Non-finite values are ignored, as pandas ignores NaN.
 */
export function describeColumns(columns: Readonly<Record<string, ArrayLike<number>>>): Record<DescribeStat, Row> {
  const table = Object.fromEntries(DESCRIBE_STATS.map((stat) => [stat, {} as Record<string, number>])) as Record<
    DescribeStat,
    Record<string, number>
  >;
  for (const [name, values] of Object.entries(columns)) {
    const finite = Array.from(values).filter(Number.isFinite).sort((a, b) => a - b);
    const n = finite.length;
    // pandas' quartiles are numpy's "linear" quantiles, as simple-statistics' quantileSorted.
    const quartile = (q: number): number => (n ? quantileSorted(finite, q) : Number.NaN);
    table.count[name] = n;
    table.mean[name] = n ? mean(finite) : Number.NaN;
    table.std[name] = n > 1 ? sampleStandardDeviation(finite) : Number.NaN;
    table.min[name] = n ? finite[0] : Number.NaN;
    table["25%"][name] = quartile(0.25);
    table["50%"][name] = quartile(0.5);
    table["75%"][name] = quartile(0.75);
    table.max[name] = n ? finite[n - 1] : Number.NaN;
  }
  return table;
}
