// Notebook 01 with dataset=celeba, end to end, against a fake Kaggle on 127.0.0.1: credentials from the
// environment, the API's redirect to another host, a download cut mid-way and resumed, the unzip of an archive in
// Kaggle's layout (CSV metadata, no identity file, one corrupt JPEG), the 4×4 grid, and no credential anywhere.

import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";
import { formatAttributeCsv, formatPartitionCsv, parseAttributeTxt } from "../lib/data/celeba-metadata";
import { projectRoot } from "../lib/util/project";
import { runDir } from "../lib/run/files";
import { generateSyntheticFaces } from "../lib/data/synthetic/faces";
import { startFakeKaggle } from "./kaggle-server";
import { outputsOf, readNotebook, streamText } from "./notebook-helpers";
import { buildZip, type ZipWriterEntry } from "./zip-writer";

const run = `test-celeba-${process.pid}`;
const scratch = mkdtempSync(join(tmpdir(), "celeba-nb-"));
const USER = "kaggle-user-7f3e";
const KEY = "kaggle-key-SECRET-91c2d4";
afterAll(() => {
  if (process.env.KEEP_TEST_OUTPUT) return;
  rmSync(runDir(run), { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

/** A zip in Kaggle's CelebA layout: n synthetic faces + one corrupt JPEG, attribute and partition CSVs. */
async function kaggleStyleArchive(n: number): Promise<Buffer> {
  const faces = join(scratch, "faces");
  await generateSyntheticFaces({ outDir: faces, count: n, identities: 10, seed: 7 });
  const attributes = parseAttributeTxt(readFileSync(join(faces, "list_attr_celeba.txt"), "utf8"));
  const corrupt = `${String(n + 1).padStart(6, "0")}.jpg`;
  const files = [...attributes.files, corrupt];
  const entries: ZipWriterEntry[] = attributes.files.map((f) => ({
    name: `img_align_celeba/img_align_celeba/${f}`,
    data: readFileSync(join(faces, "img_align_celeba", f)),
  }));
  entries.push({ name: `img_align_celeba/img_align_celeba/${corrupt}`, data: Buffer.from("not a jpeg at all") });
  const width = attributes.names.length;
  const values = new Int8Array(files.length * width).fill(-1);
  values.set(attributes.values);
  entries.push({ name: "list_attr_celeba.csv", data: Buffer.from(formatAttributeCsv({ names: attributes.names, files, values })), method: "deflate" });
  const split = Uint8Array.from(files, (_, i) => (i < n * 0.8 ? 0 : i < n * 0.9 ? 1 : 2));
  entries.push({ name: "list_eval_partition.csv", data: Buffer.from(formatPartitionCsv({ files, split })), method: "deflate" });
  return buildZip(entries);
}

function runNotebooks(args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ status: number; output: string }> {
  const child = spawn("npx", ["tsx", "scripts/run-notebooks.ts", ...args], { cwd: projectRoot(), env: { ...process.env, ...env } });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ status: code ?? 1, output })));
}

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).map((f) => join(dir, f)).filter((f) => statSync(f).isFile());
}

describe("notebook 01 with Kaggle's CelebA", () => {
  it("downloads (resuming a cut transfer), unzips, reports the layout and shows the grid, leaking no credential", async () => {
    const archive = await kaggleStyleArchive(60);
    const kaggle = await startFakeKaggle({ archive, username: USER, key: KEY, cutAt: [Math.floor(archive.length / 2)], lifetimeMs: 240_000 });
    const data = join(scratch, "data");
    const env = { ...kaggle.env, CELEBA_SAE_DATA: data, HOME: scratch };
    try {
      const args = ["--run", run, "--only", "01", "--set", "dataset=celeba", "--set", "imageSize=64"];
      const result = await runNotebooks(args, env);
      expect(result.status, result.output).toBe(0);
      const nb = readNotebook(join(runDir(run), "notebooks", "01-download.ipynb"));
      const text = streamText(nb);
      expect(text).toContain("CelebA (jessicali9530/celeba-dataset), downloaded with the Kaggle credentials from environment");
      expect(text).toContain("61 images in");
      expect(text).toMatch(/1 of 61 images are unreadable/);
      expect(text).toMatch(/identity/i);
      // The archive was fetched in two parts: the second asked for the rest with Range, and only the API saw credentials.
      const storage = kaggle.requestsTo("storage");
      expect(storage.length).toBeGreaterThanOrEqual(2);
      expect(storage.some((r) => /^bytes=\d+-$/.test(String(r.headers.range ?? "")))).toBe(true);
      expect(storage.every((r) => r.headers.authorization === undefined)).toBe(true);
      expect(kaggle.requestsTo("api").every((r) => String(r.headers.authorization ?? "").startsWith("Basic "))).toBe(true);
      // The extracted files are Kaggle's layout, byte-identical to what was zipped.
      expect(readFileSync(join(data, "celeba", "img_align_celeba", "img_align_celeba", "000001.jpg")).length).toBeGreaterThan(1000);
      // The 4×4 grid of the first 16 faces at 64 px.
      const png = outputsOf(nb).find((o) => typeof o.data?.["image/png"] === "string")?.data?.["image/png"] as string;
      expect((await sharp(Buffer.from(png, "base64")).metadata()).width).toBe(4 * 66 + 2);
      // No credential in anything the run or the download wrote, nor in what the runner printed.
      const basic = Buffer.from(`${USER}:${KEY}`).toString("base64");
      for (const file of [...allFiles(runDir(run)), ...allFiles(data).filter((f) => !f.endsWith(".jpg") && !f.endsWith(".zip"))]) {
        const content = readFileSync(file, "latin1");
        for (const secret of [KEY, basic]) expect(content.includes(secret), `${secret} in ${file}`).toBe(false);
      }
      for (const secret of [KEY, basic]) expect(result.output).not.toContain(secret);

      // A second run skips download and extraction.
      const before = kaggle.requests.length;
      const again = await runNotebooks(args, env);
      expect(again.status, again.output).toBe(0);
      expect(kaggle.requests.length).toBe(before);
      expect(streamText(readNotebook(join(runDir(run), "notebooks", "01-download.ipynb")))).toContain("found in");
    } finally {
      await kaggle.close();
    }
  }, 240_000);

  it("wrong credentials stop the notebook with Kaggle's 401 explained, and without the key", async () => {
    const kaggle = await startFakeKaggle({ archive: Buffer.from("unused"), username: USER, key: "the-right-key", lifetimeMs: 120_000 });
    try {
      const data = join(scratch, "data-401");
      const result = await runNotebooks(["--run", `${run}-401`, "--only", "01", "--set", "dataset=celeba"], {
        ...kaggle.env, KAGGLE_USERNAME: USER, KAGGLE_KEY: KEY, CELEBA_SAE_DATA: data, HOME: scratch,
      });
      expect(result.status).not.toBe(0);
      expect(result.output).toMatch(/HTTP 401/);
      expect(result.output).not.toContain(KEY);
      const nb = readFileSync(join(runDir(`${run}-401`), "notebooks", "01-download.ipynb"), "utf8");
      expect(nb).toMatch(/rejected the credentials/);
      expect(nb).not.toContain(KEY);
    } finally {
      await kaggle.close();
      rmSync(runDir(`${run}-401`), { recursive: true, force: true });
    }
  }, 120_000);
});
