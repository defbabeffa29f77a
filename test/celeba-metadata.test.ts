import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  attributeColumn,
  filesInSplit,
  formatAttributeCsv,
  formatAttributeTxt,
  formatPartitionCsv,
  formatPartitionTxt,
  metadataFormat,
  MetadataFormatError,
  parseAttributeCsv,
  parseAttributeTxt,
  parsePartitionCsv,
  parseIdentityTxt,
  parsePartitionTxt,
  readAttributes,
  readIdentityTxt,
  readPartition,
  splitCounts,
  type AttributeTable,
} from "../lib/data/celeba-metadata";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "celeba-metadata-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

// Three rows of the real files' shapes (official TXT: count line, names line, values right-aligned in two columns).
const NAMES = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Smiling", "Young"];
const TXT = ["3", NAMES.join(" "), "000001.jpg -1  1  1  1", "000002.jpg -1 -1  1  1", "000003.jpg  1 -1 -1 -1", ""].join("\n");
const CSV_PM = ["image_id," + NAMES.join(","), "000001.jpg,-1,1,1,1", "000002.jpg,-1,-1,1,1", "000003.jpg,1,-1,-1,-1", ""].join("\n");
const CSV_01 = ["image_id," + NAMES.join(","), "000001.jpg,0,1,1,1", "000002.jpg,0,0,1,1", "000003.jpg,1,0,0,0"].join("\r\n");
const EXPECTED: AttributeTable = {
  names: NAMES,
  files: ["000001.jpg", "000002.jpg", "000003.jpg"],
  values: Int8Array.from([-1, 1, 1, 1, -1, -1, 1, 1, 1, -1, -1, -1]),
};

function errorOf(run: () => unknown): MetadataFormatError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(MetadataFormatError);
    return error as MetadataFormatError;
  }
  throw new Error("expected a MetadataFormatError");
}

describe("attribute files", () => {
  it("reads the same table from the official TXT and Kaggle's CSV, with ±1 or 0/1 values", () => {
    expect(parseAttributeTxt(TXT)).toEqual(EXPECTED);
    expect(parseAttributeCsv(CSV_PM)).toEqual(EXPECTED);
    expect(parseAttributeCsv(CSV_01)).toEqual(EXPECTED);
    expect(parseAttributeCsv("\uFEFF" + CSV_PM)).toEqual(EXPECTED);
    expect(Array.from(attributeColumn(parseAttributeCsv(CSV_01), "Smiling"))).toEqual([1, 1, -1]);
  });

  it("formats a table as Kaggle's CSV and reads it back; TXT and CSV convert into each other", () => {
    expect(formatAttributeCsv(EXPECTED)).toBe(CSV_PM);
    expect(parseAttributeCsv(formatAttributeCsv(parseAttributeTxt(TXT)))).toEqual(EXPECTED);
    expect(formatAttributeTxt(parseAttributeCsv(CSV_01))).toBe(TXT);
  });

  it("reads quoted CSV fields", () => {
    const quoted = ['"image_id","A","B"', '"000001.jpg","1","-1"'].join("\n");
    expect(parseAttributeCsv(quoted)).toEqual({ names: ["A", "B"], files: ["000001.jpg"], values: Int8Array.from([1, -1]) });
  });

  it("names the file and line of a bad value, a short row, a repeated image and a missing header", () => {
    const bad = CSV_PM.replace("000002.jpg,-1,-1,1,1", "000002.jpg,-1,yes,1,1");
    expect(errorOf(() => parseAttributeCsv(bad, "data/list_attr_celeba.csv")).message).toBe(
      'data/list_attr_celeba.csv, line 3: value "yes" for Arched_Eyebrows is not 1, -1 or 0',
    );
    const short = CSV_PM.replace("000003.jpg,1,-1,-1,-1", "000003.jpg,1,-1");
    expect(errorOf(() => parseAttributeCsv(short, "f.csv")).message).toBe("f.csv, line 4: expected a file name and 4 values, found 3 fields");
    const twice = CSV_PM.replace("000003.jpg", "000001.jpg");
    expect(errorOf(() => parseAttributeCsv(twice, "f.csv")).message).toBe("f.csv, line 4: 000001.jpg is listed again (first on line 2)");
    expect(errorOf(() => parseAttributeCsv(TXT, "f.csv")).message).toMatch(/^f\.csv, line 1: expected a header `image_id,<attribute names>`, found "3"/);
    expect(errorOf(() => parseAttributeCsv("", "f.csv")).message).toMatch(/^f\.csv, line 1: the file is empty/);
    // Blank lines are skipped but still counted.
    expect(errorOf(() => parseAttributeCsv(CSV_PM.replace("\n000002", "\n\n000002").replace(",1,1\n000003", ",x,1\n000003"), "f.csv")).message).toMatch(
      /^f\.csv, line 4: value "x"/,
    );
  });
});

describe("evaluation partition", () => {
  const PART_TXT = "000001.jpg 0\n000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n";
  const PART_CSV = "image_id,partition\n000001.jpg,0\n000002.jpg,0\n000003.jpg,1\n000004.jpg,2\n";

  it("reads the same table from the official TXT and Kaggle's CSV, and writes both back", () => {
    const txt = parsePartitionTxt(PART_TXT);
    expect(txt).toEqual({ files: ["000001.jpg", "000002.jpg", "000003.jpg", "000004.jpg"], split: Uint8Array.from([0, 0, 1, 2]) });
    expect(parsePartitionCsv(PART_CSV)).toEqual(txt);
    expect(parsePartitionCsv(PART_CSV.replace(/\n/g, "\r\n"))).toEqual(txt);
    expect(formatPartitionTxt(txt)).toBe(PART_TXT);
    expect(formatPartitionCsv(txt)).toBe(PART_CSV);
    expect(filesInSplit(txt, "train")).toEqual(["000001.jpg", "000002.jpg"]);
    expect(filesInSplit(txt, "test")).toEqual(["000004.jpg"]);
    expect(splitCounts(txt)).toEqual({ train: 2, val: 1, test: 1 });
  });

  it("names the file and line of a bad split, a bad row, a repeated image and a missing header", () => {
    expect(errorOf(() => parsePartitionTxt(PART_TXT.replace("000003.jpg 1", "000003.jpg 3"), "p.txt")).message).toBe(
      'p.txt, line 3: partition "3" is not 0 (train), 1 (val) or 2 (test)',
    );
    expect(errorOf(() => parsePartitionTxt("000001.jpg 0\n000002.jpg\n", "p.txt")).message).toBe('p.txt, line 2: expected "<file> <partition>", found "000002.jpg"');
    expect(errorOf(() => parsePartitionTxt("000001.jpg 0\n000001.jpg 1\n", "p.txt")).message).toBe("p.txt, line 2: 000001.jpg is listed again (first on line 1)");
    expect(errorOf(() => parsePartitionCsv(PART_CSV.replace("000004.jpg,2", "000004.jpg,train"), "p.csv")).message).toBe(
      'p.csv, line 5: partition "train" is not 0 (train), 1 (val) or 2 (test)',
    );
    expect(errorOf(() => parsePartitionCsv("000001.jpg,0\n", "p.csv")).message).toMatch(/^p\.csv, line 1: expected the header `image_id,partition`/);
    expect(errorOf(() => parsePartitionCsv("image_id,partition\n000001.jpg,0,1\n", "p.csv")).message).toMatch(/^p\.csv, line 2: expected "<file>,<partition>"/);
  });
});

describe("reading files in either format", () => {
  it("picks the parser by extension, or by content when the extension says nothing", async () => {
    const files: [string, string][] = [
      ["list_attr_celeba.txt", TXT],
      ["list_attr_celeba.csv", CSV_PM],
      ["attributes-csv", CSV_01],
      ["attributes-txt", TXT],
    ];
    for (const [name, text] of files) {
      writeFileSync(join(dir, name), text);
      expect(await readAttributes(join(dir, name)), name).toEqual(EXPECTED);
    }
    writeFileSync(join(dir, "list_eval_partition.csv"), "image_id,partition\n000001.jpg,2\n");
    writeFileSync(join(dir, "list_eval_partition.txt"), "000001.jpg 2\n");
    writeFileSync(join(dir, "partition"), "image_id,partition\n000001.jpg,2\n");
    for (const name of ["list_eval_partition.csv", "list_eval_partition.txt", "partition"]) {
      expect(await readPartition(join(dir, name)), name).toEqual({ files: ["000001.jpg"], split: Uint8Array.from([2]) });
    }
    expect(metadataFormat("X.CSV", "")).toBe("csv");
  });

  it("names the full path in errors", async () => {
    const path = join(dir, "list_attr_celeba.csv");
    writeFileSync(path, CSV_PM.replace("000003.jpg,1", "000003.jpg,2"));
    await expect(readAttributes(path)).rejects.toThrow(`${path}, line 4: value "2" for 5_o_Clock_Shadow is not 1, -1 or 0`);
    const partition = join(dir, "list_eval_partition.txt");
    writeFileSync(partition, "000001.jpg 0\n000002.jpg 5\n");
    await expect(readPartition(partition)).rejects.toThrow(`${partition}, line 2: partition "5"`);
  });
});

describe("numbers out of range are errors naming the file and line", () => {
  it("an attribute file announcing more images than it has rows (1e12) fails on line 1 before allocating anything", async () => {
    const file = join(dir, "list_attr_celeba.txt");
    writeFileSync(file, TXT.replace(/^3\n/, "1000000000000\n"));
    await expect(readAttributes(file)).rejects.toThrow(MetadataFormatError);
    await expect(readAttributes(file)).rejects.toThrow(`${file}, line 1: the image count 1000000000000 is more than the 3 rows below it`);
    writeFileSync(file, TXT.replace(/^3\n/, "1e12\n"));
    await expect(readAttributes(file)).rejects.toThrow(`${file}, line 1: expected the image count (a whole number), found "1e12"`);
  });

  it("an identity beyond 32 bits is refused instead of wrapping", async () => {
    const file = join(dir, "identity_CelebA.txt");
    writeFileSync(file, "000001.jpg 2880\n000002.jpg 99999999999\n");
    await expect(readIdentityTxt(file)).rejects.toThrow(
      `${file}, line 2: identity 99999999999 is out of range: identities are whole numbers from 0 to 2147483647`,
    );
    expect(() => parseIdentityTxt("000001.jpg -3\n", "ids.txt")).toThrow("ids.txt, line 1: identity -3 is out of range");
    expect(Array.from(parseIdentityTxt("000001.jpg 2147483647\n").ids)).toEqual([2147483647]);
  });
});
