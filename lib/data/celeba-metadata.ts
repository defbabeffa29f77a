// CelebA's metadata files, as typed tables keyed by image file name.
//
// The formats are CelebA's own (the official release's .txt files):
//   list_attr_celeba.txt   line 1: image count; line 2: attribute names; then `000001.jpg -1  1 …` (±1 values)
//   identity_CelebA.txt    `000001.jpg 2880` per line
// The synthetic dataset writes the same files, so every later step reads both datasets the same way. Kaggle's
// archive has CSV versions of some of them instead (see below); `readAttributes` and `readPartition` read either.

import { readFile } from "node:fs/promises";

/** What each of CelebA's metadata files holds. */
export type CelebAMetadataRole = "attributes" | "partition" | "identity" | "bbox" | "landmarks";

/** CelebA's metadata file names: the official release's .txt and Kaggle's .csv (identity has no CSV on Kaggle). */
export const CELEBA_METADATA_FILES: Readonly<Record<CelebAMetadataRole, { readonly txt: string; readonly csv: string | undefined }>> = {
  attributes: { txt: "list_attr_celeba.txt", csv: "list_attr_celeba.csv" },
  partition: { txt: "list_eval_partition.txt", csv: "list_eval_partition.csv" },
  identity: { txt: "identity_CelebA.txt", csv: undefined },
  bbox: { txt: "list_bbox_celeba.txt", csv: "list_bbox_celeba.csv" },
  landmarks: { txt: "list_landmarks_align_celeba.txt", csv: "list_landmarks_align_celeba.csv" },
};

/** Attribute labels: `values[i * names.length + j]` is +1 or −1 for image `files[i]` and attribute `names[j]`. */
export interface AttributeTable {
  readonly names: readonly string[];
  readonly files: readonly string[];
  readonly values: Int8Array;
}

/** Identity labels: `ids[i]` is the person shown in `files[i]`. */
export interface IdentityTable {
  readonly files: readonly string[];
  readonly ids: Int32Array;
}

/** A line of a metadata file that does not parse, named with the file and line number. */
export class MetadataFormatError extends Error {
  constructor(file: string, line: number, problem: string) {
    super(`${file}, line ${line}: ${problem}`);
    this.name = "MetadataFormatError";
  }
}

/** Formats an attribute table exactly as CelebA's `list_attr_celeba.txt` (values right-aligned in 2 columns). */
export function formatAttributeTxt(table: AttributeTable): string {
  const width = table.names.length;
  const lines = [String(table.files.length), table.names.join(" ")];
  table.files.forEach((file, i) => {
    const row: string[] = [];
    for (let j = 0; j < width; j++) row.push(table.values[i * width + j] > 0 ? " 1" : "-1");
    lines.push(`${file} ${row.join(" ")}`);
  });
  return lines.join("\n") + "\n";
}

/**
 * Parses CelebA's `list_attr_celeba.txt` format: a count line, a names line, then one row per image with ±1 values
 * separated by one or more spaces. 0/1 values are read as −1/+1. `source` names the file in errors.
 */
export function parseAttributeTxt(text: string, source = "list_attr_celeba.txt"): AttributeTable {
  const lines = text.split(/\r?\n/);
  const countText = (lines[0] ?? "").trim();
  if (!/^\d+$/.test(countText)) throw new MetadataFormatError(source, 1, `expected the image count (a whole number), found "${lines[0] ?? ""}"`);
  const count = Number(countText);
  const rows = lines.slice(2).filter((line) => line.trim() !== "").length;
  if (count > rows) throw new MetadataFormatError(source, 1, `the image count ${countText} is more than the ${rows} rows below it`);
  const names = (lines[1] ?? "").trim().split(/\s+/).filter((s) => s.length > 0);
  if (names.length === 0) throw new MetadataFormatError(source, 2, "expected the attribute names");
  const files: string[] = [];
  const values = new Int8Array(count * names.length);
  for (let n = 2; n < lines.length; n++) {
    const fields = lines[n].trim().split(/\s+/);
    if (fields.length === 1 && fields[0] === "") continue;
    if (fields.length !== names.length + 1) {
      throw new MetadataFormatError(source, n + 1, `expected a file name and ${names.length} values, found ${fields.length} fields`);
    }
    if (files.length >= count) throw new MetadataFormatError(source, n + 1, `more rows than the ${count} announced on line 1`);
    const i = files.length;
    for (let j = 0; j < names.length; j++) {
      const v = fields[j + 1];
      if (v === "1") values[i * names.length + j] = 1;
      else if (v === "-1" || v === "0") values[i * names.length + j] = -1;
      else throw new MetadataFormatError(source, n + 1, `value "${v}" for ${names[j]} is not 1, -1 or 0`);
    }
    files.push(fields[0]);
  }
  if (files.length !== count) throw new MetadataFormatError(source, lines.length, `${count} rows announced, ${files.length} found`);
  return { names, files, values };
}

/** Formats an identity table exactly as CelebA's `identity_CelebA.txt`. */
export function formatIdentityTxt(table: IdentityTable): string {
  return table.files.map((file, i) => `${file} ${table.ids[i]}\n`).join("");
}

/** The largest identity number: identities are kept as 32-bit integers (−1 marks an unknown one). */
const MAX_IDENTITY = 2 ** 31 - 1;

/** Parses CelebA's `identity_CelebA.txt` format: `file identity` per line. */
export function parseIdentityTxt(text: string, source = "identity_CelebA.txt"): IdentityTable {
  const files: string[] = [];
  const ids: number[] = [];
  text.split(/\r?\n/).forEach((line, n) => {
    const fields = line.trim().split(/\s+/);
    if (fields.length === 1 && fields[0] === "") return;
    const id = Number(fields[1]);
    if (fields.length !== 2 || !Number.isInteger(id)) {
      throw new MetadataFormatError(source, n + 1, `expected "<file> <integer identity>", found "${line}"`);
    }
    if (id < 0 || id > MAX_IDENTITY) {
      throw new MetadataFormatError(source, n + 1, `identity ${fields[1]} is out of range: identities are whole numbers from 0 to ${MAX_IDENTITY}`);
    }
    files.push(fields[0]);
    ids.push(id);
  });
  return { files, ids: Int32Array.from(ids) };
}

/** Reads and parses an identity file, naming the file in any error. */
export async function readIdentityTxt(path: string): Promise<IdentityTable> {
  return parseIdentityTxt(await readFile(path, "utf8"), path);
}

/** The ±1 value of one attribute for one row, or throws naming the attribute when the table lacks it. */
export function attributeColumn(table: AttributeTable, name: string): Int8Array {
  const j = table.names.indexOf(name);
  if (j < 0) throw new Error(`attribute "${name}" is not in the table (it has: ${table.names.join(", ")})`);
  const column = new Int8Array(table.files.length);
  for (let i = 0; i < column.length; i++) column[i] = table.values[i * table.names.length + j];
  return column;
}

// ---------------------------------------------------------------------------------------------------------------
// Kaggle's CSV files and the evaluation partition
//
//   list_attr_celeba.csv      Kaggle's: `image_id,5_o_Clock_Shadow,…` then `000001.jpg,-1,1,…` (±1; 0/1 read too)
//   list_eval_partition.csv   Kaggle's: `image_id,partition` then `000001.jpg,0` (0 = train, 1 = val, 2 = test)
//   list_eval_partition.txt   official: `000001.jpg 0` per line

/** CelebA's evaluation splits, in the order of their numbers in the partition files (0, 1, 2). */
export const SPLIT_NAMES = ["train", "val", "test"] as const;
export type SplitName = (typeof SPLIT_NAMES)[number];

/** The evaluation partition: `split[i]` (0 = train, 1 = val, 2 = test) is the split of image `files[i]`. */
export interface PartitionTable {
  readonly files: readonly string[];
  readonly split: Uint8Array;
}

/** Splits one CSV line into fields (RFC 4180 quoting, no line breaks inside fields). */
function splitCsvLine(line: string, source: string, lineNumber: number): string[] {
  if (!line.includes('"')) return line.split(",");
  const fields: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      fields.push(field);
      field = "";
    } else field += c;
  }
  if (quoted) throw new MetadataFormatError(source, lineNumber, "a quoted field is not closed");
  fields.push(field);
  return fields;
}

/** The lines of a text file, without a byte-order mark, each with its 1-based number; blank lines dropped. */
function dataLines(text: string): { line: string; n: number }[] {
  const out: { line: string; n: number }[] = [];
  text.replace(/^\uFEFF/, "").split(/\r?\n/).forEach((line, i) => {
    if (line.trim() !== "") out.push({ line, n: i + 1 });
  });
  return out;
}

/** Throws when `file` was already seen, naming both lines. */
function noteFile(seen: Map<string, number>, file: string, source: string, n: number): void {
  const earlier = seen.get(file);
  if (earlier !== undefined) throw new MetadataFormatError(source, n, `${file} is listed again (first on line ${earlier})`);
  seen.set(file, n);
}

/** Parses one attribute value: 1 → +1; −1 or 0 → −1 (as `parseAttributeTxt`). */
function attributeValue(text: string, name: string, source: string, n: number): 1 | -1 {
  const v = text.trim();
  if (v === "1") return 1;
  if (v === "-1" || v === "0") return -1;
  throw new MetadataFormatError(source, n, `value "${text}" for ${name} is not 1, -1 or 0`);
}

/**
 * Parses Kaggle's `list_attr_celeba.csv`: a header `image_id,<attribute names…>`, then one row per image with ±1
 * (or 0/1) values. The same table as `parseAttributeTxt` gives for the official file. `source` names the file in errors.
 */
export function parseAttributeCsv(text: string, source = "list_attr_celeba.csv"): AttributeTable {
  const lines = dataLines(text);
  if (lines.length === 0) throw new MetadataFormatError(source, 1, "the file is empty; expected a header `image_id,<attribute names>`");
  const header = splitCsvLine(lines[0].line, source, lines[0].n).map((f) => f.trim());
  if (header.length < 2 || /^\d+$/.test(header[0])) {
    throw new MetadataFormatError(source, lines[0].n, `expected a header \`image_id,<attribute names>\`, found "${lines[0].line}"`);
  }
  const names = header.slice(1);
  const empty = names.findIndex((name) => name === "");
  if (empty >= 0) throw new MetadataFormatError(source, lines[0].n, `attribute name ${empty + 1} is empty`);
  const rows = lines.slice(1);
  const files: string[] = [];
  const values = new Int8Array(rows.length * names.length);
  const seen = new Map<string, number>();
  rows.forEach(({ line, n }, i) => {
    const fields = splitCsvLine(line, source, n);
    if (fields.length !== names.length + 1) {
      throw new MetadataFormatError(source, n, `expected a file name and ${names.length} values, found ${fields.length} fields`);
    }
    const file = fields[0].trim();
    if (file === "") throw new MetadataFormatError(source, n, "the image file name is empty");
    noteFile(seen, file, source, n);
    for (let j = 0; j < names.length; j++) values[i * names.length + j] = attributeValue(fields[j + 1], names[j], source, n);
    files.push(file);
  });
  return { names, files, values };
}

/** Formats an attribute table as Kaggle's `list_attr_celeba.csv`. */
export function formatAttributeCsv(table: AttributeTable): string {
  const width = table.names.length;
  const lines = [["image_id", ...table.names].join(",")];
  table.files.forEach((file, i) => {
    const row = [file];
    for (let j = 0; j < width; j++) row.push(table.values[i * width + j] > 0 ? "1" : "-1");
    lines.push(row.join(","));
  });
  return lines.join("\n") + "\n";
}

function splitValue(text: string, source: string, n: number): number {
  const v = text.trim();
  if (v === "0" || v === "1" || v === "2") return Number(v);
  throw new MetadataFormatError(source, n, `partition "${text}" is not 0 (train), 1 (val) or 2 (test)`);
}

function partitionTable(rows: readonly { file: string; split: number }[]): PartitionTable {
  return { files: rows.map((r) => r.file), split: Uint8Array.from(rows, (r) => r.split) };
}

/** Parses Kaggle's `list_eval_partition.csv`: header `image_id,partition`, then `000001.jpg,0` rows. */
export function parsePartitionCsv(text: string, source = "list_eval_partition.csv"): PartitionTable {
  const lines = dataLines(text);
  if (lines.length === 0) throw new MetadataFormatError(source, 1, "the file is empty; expected a header `image_id,partition`");
  const header = splitCsvLine(lines[0].line, source, lines[0].n).map((f) => f.trim());
  if (header.length !== 2 || /^\d+$/.test(header[1])) {
    throw new MetadataFormatError(source, lines[0].n, `expected the header \`image_id,partition\`, found "${lines[0].line}"`);
  }
  const seen = new Map<string, number>();
  const rows = lines.slice(1).map(({ line, n }) => {
    const fields = splitCsvLine(line, source, n);
    if (fields.length !== 2 || fields[0].trim() === "") {
      throw new MetadataFormatError(source, n, `expected "<file>,<partition>", found "${line}"`);
    }
    const file = fields[0].trim();
    noteFile(seen, file, source, n);
    return { file, split: splitValue(fields[1], source, n) };
  });
  return partitionTable(rows);
}

/** Parses the official `list_eval_partition.txt`: `000001.jpg 0` per line. */
export function parsePartitionTxt(text: string, source = "list_eval_partition.txt"): PartitionTable {
  const seen = new Map<string, number>();
  const rows = dataLines(text).map(({ line, n }) => {
    const fields = line.trim().split(/\s+/);
    if (fields.length !== 2) throw new MetadataFormatError(source, n, `expected "<file> <partition>", found "${line}"`);
    noteFile(seen, fields[0], source, n);
    return { file: fields[0], split: splitValue(fields[1], source, n) };
  });
  return partitionTable(rows);
}

/** Formats a partition table as the official `list_eval_partition.txt`. */
export function formatPartitionTxt(table: PartitionTable): string {
  return table.files.map((file, i) => `${file} ${table.split[i]}\n`).join("");
}

/** Formats a partition table as Kaggle's `list_eval_partition.csv`. */
export function formatPartitionCsv(table: PartitionTable): string {
  return ["image_id,partition", ...table.files.map((file, i) => `${file},${table.split[i]}`)].join("\n") + "\n";
}

/** The files of one split, in table order. */
export function filesInSplit(table: PartitionTable, split: SplitName): string[] {
  const code = SPLIT_NAMES.indexOf(split);
  return table.files.filter((_, i) => table.split[i] === code);
}

/** How many images each split has. */
export function splitCounts(table: PartitionTable): Record<SplitName, number> {
  const counts: Record<SplitName, number> = { train: 0, val: 0, test: 0 };
  for (const code of table.split) if (code < SPLIT_NAMES.length) counts[SPLIT_NAMES[code]]++;
  return counts;
}

/** Which of CelebA's two text formats a metadata file is in. */
export type MetadataFormat = "csv" | "txt";

/** The format of a metadata file: by extension (.csv/.txt), else by its first line (commas mean CSV). */
export function metadataFormat(path: string, text: string): MetadataFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith(".csv")) return "csv";
  if (lower.endsWith(".txt")) return "txt";
  const first = text.replace(/^\uFEFF/, "").split(/\r?\n/, 1)[0] ?? "";
  return first.includes(",") ? "csv" : "txt";
}

/** Reads an attribute file in either format (Kaggle's CSV or the official TXT), naming the file and line in errors. */
export async function readAttributes(path: string): Promise<AttributeTable> {
  const text = await readFile(path, "utf8");
  return metadataFormat(path, text) === "csv" ? parseAttributeCsv(text, path) : parseAttributeTxt(text, path);
}

/** Reads an evaluation partition in either format (Kaggle's CSV or the official TXT), naming file and line in errors. */
export async function readPartition(path: string): Promise<PartitionTable> {
  const text = await readFile(path, "utf8");
  return metadataFormat(path, text) === "csv" ? parsePartitionCsv(text, path) : parsePartitionTxt(text, path);
}
