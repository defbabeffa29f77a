// The Kaggle downloader against a fake Kaggle on 127.0.0.1 (test/kaggle-server.ts): an API origin that answers
// with a redirect to a storage origin, like www.kaggle.com → storage.googleapis.com.

import { pseudoRandomBytes } from "./numeric-helpers";
import { formatBytes } from "../lib/util/disk";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { format, inspect } from "node:util";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { kaggleConfigDir, kaggleCredentialSource, kaggleJsonPath } from "../lib/data/kaggle-credentials";
import {
  CELEBA_DATASET,
  byteUnit,
  datasetDownloadUrl,
  downloadKaggleDataset,
  kaggleApiBase,
  kaggleArchivePath,
  KaggleError,
  parseContentRange,
  resolveKaggleCredentials,
  type DownloadProgress,
  type KaggleDownloadOptions,
} from "../lib/data/kaggle-download";
import { startFakeKaggle, type FakeKaggle, type FakeKaggleOptions } from "./kaggle-server";

// Distinctive credentials: none of these strings may appear in any message, output or file.
const USER = "u53r-DISTINCTIVE-name-41ab";
const KEY = "k3y-DISTINCTIVE-s3cret-7f9c2e1d";
const BASIC = Buffer.from(`${USER}:${KEY}`).toString("base64");
const SECRETS = [USER, KEY, BASIC];

const SIZE = 3_000_000;


const ARCHIVE = pseudoRandomBytes(SIZE, 1234);

let dir: string;
let destDir: string;
let home: string;
let fakes: FakeKaggle[];
let logs: string[];
let progress: string[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "kaggle-download-"));
  destDir = join(dir, "data", "celeba");
  home = join(dir, "home");
  mkdirSync(home, { recursive: true });
  fakes = [];
  logs = [];
  progress = [];
});

afterEach(async () => {
  // Whatever happened, the storage host (another origin) never received the credentials.
  for (const fake of fakes) {
    for (const request of fake.requestsTo("storage")) expect(request.headers.authorization).toBeUndefined();
    await fake.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

async function fake(options: Partial<FakeKaggleOptions> = {}): Promise<FakeKaggle> {
  const started = await startFakeKaggle({ archive: ARCHIVE, username: USER, key: KEY, ...options });
  fakes.push(started);
  return started;
}

/** Options for a download from `server`, with quiet, captured log and progress. */
function options(server: FakeKaggle, extra: Partial<KaggleDownloadOptions> = {}): KaggleDownloadOptions {
  return {
    destDir,
    env: { ...server.env },
    home,
    log: (line) => logs.push(line),
    progress: { mode: "log", logInterval: 0, stream: { write: (text: string) => progress.push(text) } },
    retries: 0,
    retryDelayMs: 0,
    fetchTimeoutMs: 5000,
    ...extra,
  };
}

const archivePath = (): string => join(destDir, "celeba-dataset.zip");
const partPath = (): string => `${archivePath()}.part`;

/** The rejection of `promise`, which must be a KaggleError. */
async function kaggleError(promise: Promise<unknown>): Promise<KaggleError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KaggleError);
  return error as KaggleError;
}

/** Every file under `root`, recursively. */
function filesUnder(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true }).flatMap((entry) => {
    const path = join(root, entry.name);
    return entry.isDirectory() ? filesUnder(path) : [path];
  });
}

function expectNoSecrets(text: string, where: string): void {
  for (const secret of SECRETS) expect(text.includes(secret), `${where} contains a credential`).toBe(false);
}

function expectNoSecretsInFiles(root: string): void {
  for (const file of filesUnder(root)) {
    if (file.endsWith(".part") && lstatSync(file).isSymbolicLink()) continue;
    const bytes = readFileSync(file);
    for (const secret of SECRETS) expect(bytes.includes(Buffer.from(secret)), `${file} contains a credential`).toBe(false);
  }
}

describe("downloadKaggleDataset", () => {
  it("downloads the archive through the API's redirect, byte for byte, with progress, and leaves no temporary files", async () => {
    const server = await fake();
    const seen: DownloadProgress[] = [];
    const result = await downloadKaggleDataset(options(server, { onProgress: (p) => seen.push(p) }));

    expect(result).toEqual({ path: archivePath(), bytes: SIZE, resumed: false, skipped: false });
    expect(readFileSync(archivePath()).equals(ARCHIVE)).toBe(true);
    expect(readdirSync(destDir)).toEqual(["celeba-dataset.zip"]);

    const [apiRequest] = server.requestsTo("api");
    expect(server.requestsTo("api")).toHaveLength(1);
    expect(apiRequest.url).toBe("/api/v1/datasets/download/jessicali9530/celeba-dataset");
    expect(apiRequest.headers.authorization).toBe(`Basic ${BASIC}`);
    expect(apiRequest.status).toBe(302);
    const storage = server.requestsTo("storage");
    expect(storage).toHaveLength(1);
    expect(storage[0].headers.range).toBeUndefined();
    expect(storage[0].status).toBe(200);

    expect(seen.length).toBeGreaterThan(1);
    expect(seen.every((p, i) => p.total === SIZE && p.resumedFrom === 0 && (i === 0 || p.bytes > seen[i - 1].bytes))).toBe(true);
    expect(seen[seen.length - 1].bytes).toBe(SIZE);
    // The last progress line: all of it, in kB (3 MB), with elapsed time and a rate.
    expect(progress[progress.length - 1]).toMatch(/^celeba-dataset\.zip: 100%\|█+\| 3000\/3000 \[\d\d:\d\d<00:00, +[\d.]+kB\/s\]\n$/);
    expect(logs.join("\n")).toMatch(/Downloaded jessicali9530\/celeba-dataset: celeba-dataset\.zip, 3\.00 MB \(3000000 bytes\)/);
  });

  it("skips an archive that is already complete, without credentials or network", async () => {
    const server = await fake();
    await downloadKaggleDataset(options(server));
    const before = statSync(archivePath()).mtimeMs;
    const result = await downloadKaggleDataset({ ...options(server), env: { KAGGLE_API_ENDPOINT: "http://127.0.0.1:9" } });
    expect(result).toEqual({ path: archivePath(), bytes: SIZE, resumed: false, skipped: true });
    expect(server.requests).toHaveLength(2);
    expect(statSync(archivePath()).mtimeMs).toBe(before);
    expect(logs[logs.length - 1]).toMatch(/celeba-dataset\.zip is already downloaded \(3\.00 MB\)/);
  });

  it("says that the username or key is wrong on 401, and writes nothing", async () => {
    const server = await fake();
    const error = await kaggleError(downloadKaggleDataset(options(server, { env: { ...server.env, KAGGLE_KEY: "not-the-key" } })));
    expect(error.kind).toBe("unauthorized");
    expect(error.status).toBe(401);
    expect(error.message).toMatch(/^Kaggle rejected the credentials from the environment's KAGGLE_USERNAME\/KAGGLE_KEY \(HTTP 401 from 127\.0\.0\.1:\d+\)/);
    expect(error.message).toMatch(/username or API key is wrong/);
    expect(error.message).toMatch(/Create New Token/);
    expect(error.message).not.toContain("not-the-key");
    expect(server.requestsTo("storage")).toHaveLength(0);
    expect(filesUnder(destDir)).toEqual([]);
  });

  it("says to accept the dataset's rules on its page on 403", async () => {
    const server = await fake({ apiStatus: 403 });
    const error = await kaggleError(downloadKaggleDataset(options(server)));
    expect(error.kind).toBe("forbidden");
    expect(error.status).toBe(403);
    expect(error.message).toContain("open https://www.kaggle.com/datasets/jessicali9530/celeba-dataset");
    expect(error.message).toMatch(/accept them, and run again/);
    expect(error.message).toMatch(/lacks access/);
    expect(filesUnder(destDir)).toEqual([]);
  });

  it("says the dataset does not exist on 404", async () => {
    const server = await fake();
    const error = await kaggleError(downloadKaggleDataset(options(server, { dataset: "nobody/no-such-dataset" })));
    expect(error.kind).toBe("not-found");
    expect(error.status).toBe(404);
    expect(error.message).toMatch(/^Kaggle has no dataset nobody\/no-such-dataset \(HTTP 404 from 127\.0\.0\.1:\d+\)/);
    expect(error.message).toContain("KAGGLE_API_ENDPOINT is set");
    expect(server.requestsTo("api")[0].url).toBe("/api/v1/datasets/download/nobody/no-such-dataset");
  });

  it("keeps the .part file when the connection breaks, and the next run resumes it with Range through a fresh link", async () => {
    const server = await fake({ cutAt: [1_000_000] });
    const error = await kaggleError(downloadKaggleDataset(options(server)));
    expect(error.kind).toBe("network");
    const kept = error.bytesOnDisk ?? -1;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(1_000_000);
    expect(error.message).toMatch(/the connection broke after \d+ bytes: aborted \(ECONNRESET\)/);
    expect(error.message).toContain(`The download is resumable: ${kept} bytes of ${SIZE}`);
    expect(error.message).toContain(`run again and it continues from ${kept} bytes`);
    expect(readFileSync(partPath()).equals(ARCHIVE.subarray(0, kept))).toBe(true);
    expect(existsSync(archivePath())).toBe(false);

    const result = await downloadKaggleDataset(options(server));
    expect(result).toEqual({ path: archivePath(), bytes: SIZE, resumed: true, skipped: false });
    expect(readFileSync(archivePath()).equals(ARCHIVE)).toBe(true);
    expect(readdirSync(destDir)).toEqual(["celeba-dataset.zip"]);
    // A fresh redirect from the API for the resume (the first link was single-use), then Range from the kept size.
    expect(server.requestsTo("api")).toHaveLength(2);
    const storage = server.requestsTo("storage");
    expect(storage).toHaveLength(2);
    expect(storage[1].url).not.toBe(storage[0].url);
    expect(storage[1].headers.range).toBe(`bytes=${kept}-`);
    expect(storage[1].headers["if-range"]).toMatch(/^"[0-9a-f]{40}"$/);
    expect(storage[1].status).toBe(206);
    expect(logs.join("\n")).toMatch(/Found .* of an earlier download of jessicali9530\/celeba-dataset \(celeba-dataset\.zip\.part\): resuming/);
  });

  it("resumes by itself within one call when retries are allowed", async () => {
    const server = await fake({ cutAt: [700_000, 2_000_000] });
    const result = await downloadKaggleDataset(options(server, { retries: 2 }));
    expect(result).toMatchObject({ bytes: SIZE, resumed: true, skipped: false });
    expect(readFileSync(archivePath()).equals(ARCHIVE)).toBe(true);
    const ranges = server.requestsTo("storage").map((r) => r.headers.range);
    expect(ranges).toHaveLength(3);
    expect(ranges[0]).toBeUndefined();
    expect(ranges.slice(1).every((r) => /^bytes=\d+-$/.test(r ?? ""))).toBe(true);
    expect(logs.filter((l) => /Resuming from \d+ bytes in 0 s \(retry \d of 2\)/.test(l))).toHaveLength(2);
  });

  it("gives up with the network error after its retries", async () => {
    const server = await fake({ cutAt: [500_000, 1_000_000, 1_500_000] });
    const error = await kaggleError(downloadKaggleDataset(options(server, { retries: 1 })));
    expect(error.kind).toBe("network");
    expect(server.requestsTo("storage")).toHaveLength(2);
    expect(readFileSync(partPath()).equals(ARCHIVE.subarray(0, error.bytesOnDisk))).toBe(true);
  });

  it("starts again from 0, cleanly, when the server answers a Range request with the whole archive", async () => {
    const server = await fake({ cutAt: [1_000_000], ignoreRange: true });
    const result = await downloadKaggleDataset(options(server, { retries: 1 }));
    expect(result).toMatchObject({ bytes: SIZE, resumed: false, skipped: false });
    expect(readFileSync(archivePath()).equals(ARCHIVE)).toBe(true);
    const storage = server.requestsTo("storage");
    expect(storage[1].headers.range).toMatch(/^bytes=\d+-$/);
    expect(storage[1].status).toBe(200);
    expect(logs.join("\n")).toMatch(/sent the whole archive instead of the rest from \d+ bytes: writing it from the start/);
  });

  it("never splices two versions: a changed archive (new ETag) is downloaded whole", async () => {
    const first = await fake({ cutAt: [1_000_000] });
    await kaggleError(downloadKaggleDataset(options(first)));
    await first.close();
    const changed = pseudoRandomBytes(SIZE, 999);
    const second = await fake({ archive: changed });
    const result = await downloadKaggleDataset(options(second));
    expect(result.resumed).toBe(false);
    expect(readFileSync(archivePath()).equals(changed)).toBe(true);
    expect(second.requestsTo("storage")[0].headers["if-range"]).toBeDefined();
    expect(second.requestsTo("storage")[0].status).toBe(200);
  });

  it("treats a stalled transfer as a network failure after the idle timeout, and resumes it", async () => {
    const server = await fake({ stallAt: 800_000 });
    const error = await kaggleError(downloadKaggleDataset(options(server, { fetchTimeoutMs: 1000 })));
    expect(error.kind).toBe("network");
    expect(error.message).toMatch(/the connection broke after \d+ bytes: no data from 127\.0\.0\.1:\d+ for 1 s \(ETIMEDOUT\)/);
    expect(error.message).toMatch(/run again and it continues from \d+ bytes/);
    expect(error.bytesOnDisk).toBeGreaterThan(0);
    const result = await downloadKaggleDataset(options(server));
    expect(result.resumed).toBe(true);
    expect(readFileSync(archivePath()).equals(ARCHIVE)).toBe(true);
  });

  it("reports an unreachable API as a network failure with nothing written", async () => {
    const server = await fake();
    await server.close();
    const error = await kaggleError(downloadKaggleDataset(options(server)));
    expect(error.kind).toBe("network");
    expect(error.message).toMatch(/^Network failure while downloading jessicali9530\/celeba-dataset: could not reach 127\.0\.0\.1:\d+: connect ECONNREFUSED 127\.0\.0\.1:\d+\./);
    expect(error.message).toMatch(/Nothing was written yet; check the connection and KAGGLE_API_ENDPOINT and run again/);
  });

  it("starts over when the .part file is larger than the archive (HTTP 416)", async () => {
    const server = await fake();
    mkdirSync(destDir, { recursive: true });
    writeFileSync(partPath(), Buffer.alloc(SIZE + 10, 7));
    const result = await downloadKaggleDataset(options(server));
    expect(result.bytes).toBe(SIZE);
    expect(readFileSync(archivePath()).equals(ARCHIVE)).toBe(true);
    expect(server.requestsTo("storage").map((r) => r.status)).toEqual([416, 200]);
    expect(logs.join("\n")).toMatch(/cannot continue from 3000010 bytes \(HTTP 416\): starting the download .* again from 0/);
  });

  it("finishes a .part that is already complete (a run stopped before the rename) from the server's 416", async () => {
    const server = await fake();
    mkdirSync(destDir, { recursive: true });
    writeFileSync(partPath(), ARCHIVE);
    const result = await downloadKaggleDataset(options(server));
    expect(result).toMatchObject({ bytes: SIZE, resumed: true });
    expect(readFileSync(archivePath()).equals(ARCHIVE)).toBe(true);
    expect(existsSync(partPath())).toBe(false);
  });

  it("accepts an archive sent without Content-Length (chunked)", async () => {
    const server = await fake({ chunked: true });
    const result = await downloadKaggleDataset(options(server));
    expect(result.bytes).toBe(SIZE);
    expect(readFileSync(archivePath()).equals(ARCHIVE)).toBe(true);
  });

  it("follows a bounded number of redirects", async () => {
    const server = await fake();
    const error = await kaggleError(downloadKaggleDataset(options(server, { maxRedirects: 0 })));
    expect(error.kind).toBe("http");
    expect(error.message).toMatch(/^More than 0 redirects, starting at 127\.0\.0\.1:\d+: giving up\.$/);
    expect(server.requestsTo("storage")).toHaveLength(0);
  });

  it("refuses a web page where the archive should be", async () => {
    const server = await fake({ contentType: "text/html; charset=utf-8" });
    const error = await kaggleError(downloadKaggleDataset(options(server)));
    expect(error.kind).toBe("http");
    expect(error.message).toMatch(/answered with text\/html instead of the archive/);
    expect(existsSync(archivePath())).toBe(false);
  });

  it.skipIf(!existsSync("/dev/full"))("says how much space is needed and where when the disk is full, and keeps the .part file", async () => {
    const server = await fake();
    mkdirSync(destDir, { recursive: true });
    symlinkSync("/dev/full", partPath()); // every write to it fails with ENOSPC
    // Paths under the home folder are shown from ~ (no home folder names in notebook outputs).
    const error = await kaggleError(downloadKaggleDataset(options(server, { home: dir })));
    expect(error.kind).toBe("disk-full");
    expect(error.bytesOnDisk).toBe(0);
    expect(error.file).toBe(partPath());
    expect(error.message).toContain(`Disk full: could not write ~/data/celeba/celeba-dataset.zip.part after 0 bytes of ${SIZE}`);
    expect(error.message).toContain(`The archive needs ${SIZE} bytes (3.00 MB) in ~/data/celeba: free at least ${SIZE} more bytes`);
    expect(error.message).toMatch(/run again: the download continues from 0 bytes/);
    expect(lstatSync(partPath()).isSymbolicLink()).toBe(true);
    expect(existsSync(archivePath())).toBe(false);
  });

  it("uses kaggle.json when the environment has no credentials", async () => {
    const server = await fake();
    mkdirSync(join(home, ".kaggle"));
    writeFileSync(join(home, ".kaggle", "kaggle.json"), JSON.stringify({ username: USER, key: KEY }), { mode: 0o600 });
    const result = await downloadKaggleDataset(options(server, { env: { KAGGLE_API_ENDPOINT: server.endpoint } }));
    expect(result.bytes).toBe(SIZE);
    expect(server.requestsTo("api")[0].headers.authorization).toBe(`Basic ${BASIC}`);
  });

  it("prefers the environment's credentials to kaggle.json, as the Kaggle CLI does", async () => {
    const server = await fake();
    const configDir = join(dir, "config");
    mkdirSync(configDir);
    writeFileSync(join(configDir, "kaggle.json"), JSON.stringify({ username: "someone-else", key: "wrong" }), { mode: 0o600 });
    const result = await downloadKaggleDataset(options(server, { env: { ...server.env, KAGGLE_CONFIG_DIR: configDir } }));
    expect(result.bytes).toBe(SIZE);
    const error = await kaggleError(
      downloadKaggleDataset(options(server, { destDir: join(dir, "other"), env: { KAGGLE_API_ENDPOINT: server.endpoint, KAGGLE_CONFIG_DIR: configDir } })),
    );
    expect(error.kind).toBe("unauthorized");
    expect(error.message).toContain(`credentials from ${join(configDir, "kaggle.json")} (HTTP 401`);
  });

  it.each([
    ["without /api/v1", (endpoint: string) => endpoint],
    ["with /api/v1", (endpoint: string) => `${endpoint}/api/v1`],
    ["with /api/v1/", (endpoint: string) => `${endpoint}/api/v1/`],
  ])("reaches the API at KAGGLE_API_ENDPOINT %s", async (_, endpointOf) => {
    const server = await fake();
    const result = await downloadKaggleDataset(options(server, { env: { ...server.env, KAGGLE_API_ENDPOINT: endpointOf(server.endpoint) } }));
    expect(result.bytes).toBe(SIZE);
    expect(server.requestsTo("api")[0].url).toBe("/api/v1/datasets/download/jessicali9530/celeba-dataset");
  });

  it("never shows the credentials: in errors, console output, progress, or any file written", async () => {
    const captured: string[] = [];
    const capture = (...args: unknown[]): void => void captured.push(format(...args));
    const spies = [
      vi.spyOn(console, "log").mockImplementation(capture),
      vi.spyOn(console, "info").mockImplementation(capture),
      vi.spyOn(console, "warn").mockImplementation(capture),
      vi.spyOn(console, "error").mockImplementation(capture),
      vi.spyOn(process.stdout, "write").mockImplementation(((chunk: string | Uint8Array) => capture(String(chunk))) as typeof process.stdout.write),
      vi.spyOn(process.stderr, "write").mockImplementation(((chunk: string | Uint8Array) => capture(String(chunk))) as typeof process.stderr.write),
    ];
    const errors: unknown[] = [];
    // Default log (console.log) and default progress (process.stderr): the real outputs.
    const run = async (server: FakeKaggle, extra: Partial<KaggleDownloadOptions> = {}): Promise<void> => {
      const { log: _log, progress: _progress, ...rest } = options(server, extra);
      await downloadKaggleDataset(rest).then(
        () => undefined,
        (error: unknown) => void errors.push(error),
      );
    };
    try {
      const badKey = { ...(await fake()).env, KAGGLE_KEY: `${KEY}-wrong` };
      await run(fakes[0], { env: badKey }); // 401
      await run(await fake({ apiStatus: 403 })); // 403
      await run(await fake({ apiStatus: 404 })); // 404
      await run(await fake({ apiStatus: 500 })); // 5xx
      const cut = await fake({ cutAt: [1_000_000] });
      await run(cut); // network failure, .part kept
      await run(cut, { retries: 1 }); // resumed
      rmSync(destDir, { recursive: true });
      mkdirSync(destDir, { recursive: true });
      if (existsSync("/dev/full")) symlinkSync("/dev/full", partPath());
      await run(await fake()); // disk full
      rmSync(destDir, { recursive: true });
      await run(await fake({ cutAt: [1_000_000], ignoreRange: true }), { retries: 1 }); // restart from 0
      await run(await fake(), { env: { KAGGLE_KEY: KEY }, destDir: join(dir, "missing") }); // missing (only the key set)
      mkdirSync(join(home, ".kaggle"));
      writeFileSync(join(home, ".kaggle", "kaggle.json"), `{"username": "${USER}", "key": "${KEY}",,}`, { mode: 0o644 });
      await run(await fake(), { env: { KAGGLE_API_ENDPOINT: "http://127.0.0.1:9" }, destDir: join(dir, "malformed") }); // malformed kaggle.json
      writeFileSync(join(home, ".kaggle", "kaggle.json"), JSON.stringify({ username: USER, key: KEY }), { mode: 0o644 });
      chmodSync(join(home, ".kaggle", "kaggle.json"), 0o644);
      await run(fakes[0], { env: { KAGGLE_API_ENDPOINT: fakes[0].endpoint }, destDir: join(dir, "from-file") }); // world-readable warning
      await run(fakes[0], { env: { KAGGLE_API_ENDPOINT: `http://${USER}:${KEY}@127.0.0.1:9` }, destDir: join(dir, "endpoint") }); // bad endpoint
    } finally {
      for (const spy of spies) spy.mockRestore();
    }
    const kinds = errors.map((e) => (e instanceof KaggleError ? e.kind : String(e)));
    const expected = ["unauthorized", "forbidden", "not-found", "http", "network", "missing-credentials", "bad-credentials-file", "bad-endpoint"];
    expect(kinds).toEqual(existsSync("/dev/full") ? [...expected.slice(0, 5), "disk-full", ...expected.slice(5)] : expected);
    for (const error of errors) {
      const e = error as KaggleError;
      expectNoSecrets(`${e.message}\n${e.stack ?? ""}\n${inspect(e, { depth: 5, showHidden: true })}\n${JSON.stringify(e)}`, `the ${e.kind} error`);
    }
    const output = captured.join("");
    expect(output).toMatch(/celeba-dataset\.zip: 100%\|/); // the progress bar was captured…
    expect(output).toMatch(/Warning: your Kaggle API key in ~\/\.kaggle\/kaggle\.json is readable by other users; run `chmod 600/); // …and the log
    expectNoSecrets(output, "the console output");
    expectNoSecretsInFiles(join(dir, "data"));
    for (const sub of ["missing", "malformed", "from-file", "endpoint"]) expectNoSecretsInFiles(join(dir, sub));
  });
});

describe("Kaggle credentials", () => {
  const write = (path: string, text: string): void => {
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(path, text, { mode: 0o600 });
  };

  it("come from KAGGLE_USERNAME/KAGGLE_KEY first, then kaggle.json, and are hidden when printed", () => {
    write(join(home, ".kaggle", "kaggle.json"), JSON.stringify({ username: "file-user", key: "file-key" }));
    const fromEnv = resolveKaggleCredentials({ KAGGLE_USERNAME: USER, KAGGLE_KEY: KEY }, home);
    expect([fromEnv.username, fromEnv.key, fromEnv.source]).toEqual([USER, KEY, "environment"]);
    expectNoSecrets(`${inspect(fromEnv, { showHidden: false })}${JSON.stringify(fromEnv)}${String(fromEnv)}`, "printed credentials");
    const fromFile = resolveKaggleCredentials({ KAGGLE_USERNAME: USER }, home);
    expect([fromFile.username, fromFile.key, fromFile.source, fromFile.file, fromFile.warning]).toEqual([
      "file-user",
      "file-key",
      "kaggle.json",
      join(home, ".kaggle", "kaggle.json"),
      undefined,
    ]);
    expect(JSON.stringify(fromFile)).toBe(JSON.stringify({ source: "kaggle.json", file: join(home, ".kaggle", "kaggle.json") }));
    expect(kaggleCredentialSource({ KAGGLE_USERNAME: USER, KAGGLE_KEY: KEY }, home)).toBe("environment");
    expect(kaggleCredentialSource({}, home)).toBe("kaggle.json");
  });

  it("honour KAGGLE_CONFIG_DIR", () => {
    const configDir = join(dir, "elsewhere");
    write(join(configDir, "kaggle.json"), JSON.stringify({ username: "there", key: "there-key" }));
    expect(kaggleConfigDir({ KAGGLE_CONFIG_DIR: configDir }, home)).toBe(configDir);
    expect(kaggleJsonPath({}, home)).toBe(join(home, ".kaggle", "kaggle.json"));
    expect(resolveKaggleCredentials({ KAGGLE_CONFIG_DIR: configDir }, home).key).toBe("there-key");
    expect(kaggleCredentialSource({}, home)).toBeUndefined();
    expect(kaggleCredentialSource({ KAGGLE_CONFIG_DIR: configDir }, home)).toBe("kaggle.json");
  });

  it("say exactly how to set them when there are none", () => {
    let error: unknown;
    try {
      resolveKaggleCredentials({ KAGGLE_KEY: KEY, KAGGLE_USERNAME: "" }, home);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(KaggleError);
    const e = error as KaggleError;
    expect(e.kind).toBe("missing-credentials");
    expect(e.message).toBe(
      "No Kaggle credentials: KAGGLE_KEY is set but KAGGLE_USERNAME is not, and there is no ~/.kaggle/kaggle.json. " +
        "Set KAGGLE_USERNAME and KAGGLE_KEY in the environment, or save your API token as ~/.kaggle/kaggle.json " +
        "(kaggle.com → Settings → API → Create New Token downloads kaggle.json) and run `chmod 600 ~/.kaggle/kaggle.json`.",
    );
    expect(() => resolveKaggleCredentials({}, home)).toThrow(/^No Kaggle credentials: KAGGLE_USERNAME\/KAGGLE_KEY are not set and there is no ~\/\.kaggle\/kaggle\.json\./);
  });

  it.each([
    ["not JSON", `{"username": "${USER}", "key": "${KEY}"`, "it is not valid JSON"],
    ["not an object", `["${USER}", "${KEY}"]`, "it is not a JSON object"],
    ["without a key", JSON.stringify({ username: USER }), 'it has no "key"'],
    ["with a number for the key", JSON.stringify({ username: USER, key: 12345 }), 'its "key" is not a non-empty string'],
  ])("name a malformed kaggle.json (%s) without quoting it", (_, text, problem) => {
    const path = join(home, ".kaggle", "kaggle.json");
    write(path, text);
    let error: unknown;
    try {
      resolveKaggleCredentials({}, home);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(KaggleError);
    const e = error as KaggleError;
    expect(e.kind).toBe("bad-credentials-file");
    expect(e.file).toBe(path);
    expect(e.message).toContain(`~/.kaggle/kaggle.json is not usable Kaggle credentials: ${problem}.`);
    expectNoSecrets(`${e.message}${inspect(e, { showHidden: true })}`, "the malformed-file error");
  });

  it("warn, like the CLI, when kaggle.json is readable by others", () => {
    const path = join(home, ".kaggle", "kaggle.json");
    write(path, JSON.stringify({ username: USER, key: KEY }));
    chmodSync(path, 0o644);
    expect(resolveKaggleCredentials({}, home).warning).toBe(
      "Warning: your Kaggle API key in ~/.kaggle/kaggle.json is readable by other users; run `chmod 600 ~/.kaggle/kaggle.json`.",
    );
  });
});

describe("Kaggle API addresses and helpers", () => {
  it("builds the API base like the Kaggle CLI and kagglehub: /api/v1 appended when absent", () => {
    expect(kaggleApiBase({})).toBe("https://www.kaggle.com/api/v1");
    expect(kaggleApiBase({ KAGGLE_API_ENDPOINT: "" })).toBe("https://www.kaggle.com/api/v1");
    expect(kaggleApiBase({ KAGGLE_API_ENDPOINT: "http://localhost:8080" })).toBe("http://localhost:8080/api/v1");
    expect(kaggleApiBase({ KAGGLE_API_ENDPOINT: "http://localhost:8080/" })).toBe("http://localhost:8080/api/v1");
    expect(kaggleApiBase({ KAGGLE_API_ENDPOINT: "http://localhost:8080/api/v1" })).toBe("http://localhost:8080/api/v1");
    expect(kaggleApiBase({ KAGGLE_API_ENDPOINT: "https://proxy.example/kaggle/api/v1/" })).toBe("https://proxy.example/kaggle/api/v1");
    expect(kaggleApiBase({ KAGGLE_API_ENDPOINT: "https://proxy.example/kaggle" })).toBe("https://proxy.example/kaggle/api/v1");
    expect(datasetDownloadUrl(kaggleApiBase({}), CELEBA_DATASET)).toBe("https://www.kaggle.com/api/v1/datasets/download/jessicali9530/celeba-dataset");
  });

  it("rejects an unusable KAGGLE_API_ENDPOINT, never quoting one that carries a password", () => {
    expect(() => kaggleApiBase({ KAGGLE_API_ENDPOINT: "ftp://host" })).toThrow(/KAGGLE_API_ENDPOINT \("ftp:\/\/host"\) is not usable: it is not an http\(s\) URL/);
    expect(() => kaggleApiBase({ KAGGLE_API_ENDPOINT: "not a url" })).toThrow(/it is not a URL/);
    let message = "";
    try {
      kaggleApiBase({ KAGGLE_API_ENDPOINT: `https://${USER}:${KEY}@www.kaggle.com` });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^KAGGLE_API_ENDPOINT is not usable: it must not carry a user name or password/);
    expectNoSecrets(message, "the endpoint error");
  });

  it("names the archive like the CLI and parses Content-Range", () => {
    expect(kaggleArchivePath("/data/celeba")).toBe("/data/celeba/celeba-dataset.zip");
    expect(() => kaggleArchivePath("/data", "no-slash")).toThrow(/not a Kaggle dataset: expected owner\/name/);
    expect(parseContentRange("bytes 100-199/1000")).toEqual({ start: 100, end: 199, total: 1000 });
    expect(parseContentRange("bytes 100-199/*")).toEqual({ start: 100, end: 199, total: undefined });
    expect(parseContentRange("bytes 100-1000/1000")).toBeUndefined();
    expect(parseContentRange("bytes */1000")).toBeUndefined();
    expect(parseContentRange(undefined)).toBeUndefined();
    expect(formatBytes(1_334_000_000)).toBe("1.33 GB");
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(45_600_000)).toBe("45.6 MB");
    expect(byteUnit(1_334_000_000)).toEqual({ unit: "MB", scale: 1_000_000 });
    expect(byteUnit(3_000_000)).toEqual({ unit: "kB", scale: 1000 });
    expect(byteUnit(500)).toEqual({ unit: "B", scale: 1 });
  });
});
