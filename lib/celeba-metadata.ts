// CelebA's metadata files, as typed tables keyed by image file name.
//
// The formats are CelebA's own (the official release's .txt files):
//   list_attr_celeba.txt   line 1: image count; line 2: attribute names; then `000001.jpg -1  1 …` (±1 values)
//   identity_CelebA.txt    `000001.jpg 2880` per line
// The synthetic dataset writes the same files, so every later step reads both datasets the same way.

import { readFile } from "node:fs/promises";

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
  const count = Number(lines[0]?.trim());
  if (!Number.isInteger(count) || count < 0) {
    throw new MetadataFormatError(source, 1, `expected the image count, found "${lines[0] ?? ""}"`);
  }
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
    files.push(fields[0]);
    ids.push(id);
  });
  return { files, ids: Int32Array.from(ids) };
}

/** Reads and parses an attribute file, naming the file in any error. */
export async function readAttributeTxt(path: string): Promise<AttributeTable> {
  return parseAttributeTxt(await readFile(path, "utf8"), path);
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
