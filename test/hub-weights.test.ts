// lib/model/hub-weights against a stand-in of the Hugging Face Hub on 127.0.0.1: a "Hub" origin answering
// HEAD/GET /{repo}/resolve/{revision}/{file} with the Hub's headers (X-Repo-Commit, X-Linked-Etag, X-Linked-Size,
// X-Error-Code) and a 302 to a second "storage" origin (another port) that serves the bytes with ETag, Range/206.
// Every test gets its own HF_HOME in a temporary folder and passes its environment explicitly.

import { pseudoRandomBytes } from "./numeric-helpers";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  checkRevision,
  downloadHubFile,
  findCachedHubFile,
  hfHome,
  HubError,
  hubCacheDir,
  hubFileUrl,
  hubSettings,
  isEnvTrue,
  loadImagenetWeights,
  normalizeEtag,
  repoFolderName,
  resolveWeightsSpec,
  RESNET18_IMAGENET_REPO,
  SAFETENSORS_FILENAME,
  type HubDownloadOptions,
  type HubEnv,
} from "../lib/model/hub-weights";
import { closeServer, fakeCommit, listen, sha256, startFakeHub, type FakeHub, type FakeHubOptions, type FakeRepo } from "./hub-server";

// ---------------------------------------------------------------------------------------------------------------
// Test data




const REPO = RESNET18_IMAGENET_REPO;
const FILE = SAFETENSORS_FILENAME;
const WEIGHTS = pseudoRandomBytes(300_000, 18);
const WEIGHTS_V2 = pseudoRandomBytes(200_000, 34);
const MAIN = fakeCommit("main");
const V2 = fakeCommit("v2");
const TOKEN = "hf_DISTINCTIVEtoken4c2e9b7a51";

function defaultRepos(): Record<string, FakeRepo> {
  return {
    [REPO]: { branches: { main: MAIN, v2: V2 }, files: { [MAIN]: { [FILE]: WEIGHTS }, [V2]: { [FILE]: WEIGHTS_V2 } } },
    "someone/private-model": { branches: { main: MAIN }, files: { [MAIN]: { [FILE]: WEIGHTS } }, token: TOKEN },
    "someone/gated-model": { branches: { main: MAIN }, files: { [MAIN]: { [FILE]: WEIGHTS } }, token: TOKEN, gated: true },
  };
}


// ---------------------------------------------------------------------------------------------------------------
// Per-test folders and helpers

let dir: string;
let home: string;
let hfHomeDir: string;
let cacheDir: string;
let logs: string[];
let hubs: FakeHub[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "hub-weights-"));
  home = join(dir, "home");
  hfHomeDir = join(dir, "hf-home");
  cacheDir = join(hfHomeDir, "hub");
  mkdirSync(home, { recursive: true });
  logs = [];
  hubs = [];
});

afterEach(async () => {
  await Promise.all(hubs.map((hub) => hub.close()));
  rmSync(dir, { recursive: true, force: true });
});

async function fakeHub(options: FakeHubOptions = { repos: defaultRepos() }): Promise<FakeHub> {
  const hub = await startFakeHub(options);
  hubs.push(hub);
  return hub;
}

function envFor(endpoint: string, extra: HubEnv = {}): HubEnv {
  return { HF_HOME: hfHomeDir, HF_ENDPOINT: endpoint, ...extra };
}

function options(endpoint: string, extra: Partial<HubDownloadOptions> & { envExtra?: HubEnv } = {}): HubDownloadOptions {
  const { envExtra, ...rest } = extra;
  return { env: envFor(endpoint, envExtra), home, log: (line) => logs.push(line), retryDelayMs: 10, ...rest };
}

const repoDir = (): string => join(cacheDir, "models--timm--resnet18.tv_in1k");

/** Every file and symlink under `root`, relative, sorted. */
function listTree(root: string): string[] {
  const out: string[] = [];
  const walk = (folder: string): void => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.push(relative(root, path));
    }
  };
  if (existsSync(root)) walk(root);
  return out.sort();
}

/** A cache laid out by hand the way Python's huggingface_hub writes it. */
function writePythonCache(commit: string, bytes: Buffer, revision = "main"): string {
  const sha = sha256(bytes);
  mkdirSync(join(repoDir(), "blobs"), { recursive: true });
  writeFileSync(join(repoDir(), "blobs", sha), bytes);
  mkdirSync(join(repoDir(), "snapshots", commit), { recursive: true });
  symlinkSync(join("..", "..", "blobs", sha), join(repoDir(), "snapshots", commit, FILE));
  if (revision !== commit) {
    mkdirSync(join(repoDir(), "refs"), { recursive: true });
    writeFileSync(join(repoDir(), "refs", revision), commit);
  }
  return join(repoDir(), "snapshots", commit, FILE);
}

async function closedPortUrl(): Promise<string> {
  const server = createServer();
  const url = await listen(server);
  await closeServer(server);
  return url;
}

async function rejection(promise: Promise<unknown>): Promise<HubError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof HubError) return error;
    throw error;
  }
  throw new Error("expected a HubError, got a result");
}

// ---------------------------------------------------------------------------------------------------------------

describe("settings from the environment (huggingface_hub/constants.py)", () => {
  it("finds the cache as huggingface_hub does", () => {
    expect(hubCacheDir({}, "/home/u")).toBe("/home/u/.cache/huggingface/hub");
    expect(hubCacheDir({ XDG_CACHE_HOME: "/xdg" }, "/home/u")).toBe("/xdg/huggingface/hub");
    expect(hubCacheDir({ HF_HOME: "/h", XDG_CACHE_HOME: "/xdg" }, "/home/u")).toBe("/h/hub");
    expect(hubCacheDir({ HF_HOME: "~/hf" }, "/home/u")).toBe("/home/u/hf/hub");
    expect(hubCacheDir({ HF_HOME: "$BASE/hf", BASE: "/b" }, "/home/u")).toBe("/b/hf/hub");
    expect(hubCacheDir({ HUGGINGFACE_HUB_CACHE: "/legacy", HF_HOME: "/h" }, "/home/u")).toBe("/legacy");
    expect(hubCacheDir({ HF_HUB_CACHE: "/c", HUGGINGFACE_HUB_CACHE: "/legacy", HF_HOME: "/h" }, "/home/u")).toBe("/c");
    expect(hfHome({}, "/home/u")).toBe("/home/u/.cache/huggingface");
  });

  it("reads the endpoint, the token file and offline mode", () => {
    const defaults = hubSettings({}, "/home/u");
    expect(defaults.endpoint).toBe("https://huggingface.co");
    expect(defaults.tokenPath).toBe("/home/u/.cache/huggingface/token");
    expect(defaults.offlineVar).toBeUndefined();
    expect(hubSettings({ HF_ENDPOINT: "http://127.0.0.1:9/" }, "/home/u").endpoint).toBe("http://127.0.0.1:9");
    expect(hubSettings({ HF_TOKEN_PATH: "/t/token" }, "/home/u").tokenPath).toBe("/t/token");
    expect(hubSettings({ HF_HUB_OFFLINE: "yes" }, "/home/u").offlineVar).toBe("HF_HUB_OFFLINE");
    expect(hubSettings({ TRANSFORMERS_OFFLINE: "1" }, "/home/u").offlineVar).toBe("TRANSFORMERS_OFFLINE");
    // Python reads `HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE`: a set HF_HUB_OFFLINE=0 wins.
    expect(hubSettings({ HF_HUB_OFFLINE: "0", TRANSFORMERS_OFFLINE: "1" }, "/home/u").offlineVar).toBeUndefined();
    expect(() => hubSettings({ HF_ENDPOINT: "ftp://x" }, "/home/u")).toThrow(/HF_ENDPOINT/);
  });

  it("accepts huggingface_hub's true values in any case", () => {
    for (const value of ["1", "ON", "on", "Yes", "TRUE", "true"]) expect(isEnvTrue(value)).toBe(true);
    for (const value of [undefined, "", "0", "off", "no", "false", "2"]) expect(isEnvTrue(value)).toBe(false);
  });

  it("names, URLs and etags as huggingface_hub writes them", () => {
    expect(repoFolderName(REPO)).toBe("models--timm--resnet18.tv_in1k");
    expect(hubFileUrl("https://huggingface.co", REPO, "refs/pr/1", "sub dir/model.safetensors")).toBe(
      "https://huggingface.co/timm/resnet18.tv_in1k/resolve/refs%2Fpr%2F1/sub%20dir/model.safetensors",
    );
    expect(normalizeEtag('"abc"')).toBe("abc");
    expect(normalizeEtag('W/"abc"')).toBe("abc");
    expect(normalizeEtag(undefined)).toBeUndefined();
  });
});

describe("finetune.weights and finetune.weightsRevision", () => {
  it("resolves the weights spec without I/O", () => {
    expect(resolveWeightsSpec("auto")).toEqual({ kind: "hub", mode: "auto" });
    expect(resolveWeightsSpec("ImageNet")).toEqual({ kind: "hub", mode: "imagenet" });
    expect(resolveWeightsSpec("random")).toEqual({ kind: "random" });
    expect(resolveWeightsSpec("")).toEqual({ kind: "random" });
    expect(resolveWeightsSpec(undefined)).toEqual({ kind: "random" });
    expect(resolveWeightsSpec("weights/resnet18.safetensors")).toEqual({ kind: "file", path: "weights/resnet18.safetensors" });
    expect(resolveWeightsSpec("./auto")).toEqual({ kind: "file", path: "./auto" });
  });

  it("checks revisions: a branch or tag, or a full commit hash", () => {
    expect(checkRevision(undefined)).toBe("main");
    expect(checkRevision("")).toBe("main");
    expect(checkRevision("v2")).toBe("v2");
    expect(checkRevision("refs/pr/1")).toBe("refs/pr/1");
    expect(checkRevision(MAIN.toUpperCase())).toBe(MAIN);
    expect(() => checkRevision("a1b2c3d")).toThrow(/full 40-character/);
    expect(() => checkRevision("../../etc")).toThrow(HubError);
    expect(() => checkRevision("main branch")).toThrow(HubError);
  });
});

describe("downloading into huggingface_hub's cache", () => {
  it("downloads, lays the cache out as huggingface_hub does, and reports progress", async () => {
    const hub = await fakeHub();
    const progress: Array<[number, number | null]> = [];
    const file = await downloadHubFile(options(hub.url, { onProgress: (done, total) => progress.push([done, total]) }));
    const sha = sha256(WEIGHTS);

    expect(file).toEqual({ path: join(repoDir(), "snapshots", MAIN, FILE), revision: MAIN, sha256: sha, fromCache: false, repo: REPO, filename: FILE });
    expect(readFileSync(file.path).equals(WEIGHTS)).toBe(true);
    expect(listTree(repoDir())).toEqual([`blobs/${sha}`, "refs/main", `snapshots/${MAIN}/${FILE}`]);
    expect(lstatSync(file.path).isSymbolicLink()).toBe(true);
    expect(readlinkSync(file.path)).toBe(`../../blobs/${sha}`);
    expect(readFileSync(join(repoDir(), "refs", "main"), "utf8")).toBe(MAIN); // no newline: Python reads it raw
    expect(lstatSync(join(repoDir(), "blobs", sha)).isFile()).toBe(true);

    expect(progress.at(-1)).toEqual([WEIGHTS.length, WEIGHTS.length]);
    for (let i = 1; i < progress.length; i++) expect(progress[i][0]).toBeGreaterThanOrEqual(progress[i - 1][0]);

    const head = hub.seen.filter((seen) => seen.server === "hub");
    expect(head.map((seen) => `${seen.method} ${seen.path}`)).toEqual([`HEAD /${REPO}/resolve/main/${FILE}`]);
    expect(hub.seen.filter((seen) => seen.server === "storage").map((seen) => seen.method)).toEqual(["GET"]);
  });

  it("makes no request the second time, and hashes the cached file", async () => {
    const hub = await fakeHub();
    await downloadHubFile(options(hub.url));
    const requests = hub.seen.length;
    const again = await downloadHubFile(options(hub.url));
    expect(hub.seen.length).toBe(requests);
    expect(again).toEqual({ path: join(repoDir(), "snapshots", MAIN, FILE), revision: MAIN, sha256: sha256(WEIGHTS), fromCache: true, repo: REPO, filename: FILE });
    expect(await findCachedHubFile(options(hub.url))).toEqual(again);
  });

  it("reuses a cache laid out by Python without any request", async () => {
    const hub = await fakeHub();
    const pointer = writePythonCache(MAIN, WEIGHTS);
    const file = await downloadHubFile(options(hub.url));
    expect(hub.seen).toEqual([]);
    expect(file).toMatchObject({ path: pointer, revision: MAIN, sha256: sha256(WEIGHTS), fromCache: true });
  });

  it("refuses a corrupt cached file", async () => {
    const hub = await fakeHub();
    writePythonCache(MAIN, WEIGHTS);
    writeFileSync(join(repoDir(), "blobs", sha256(WEIGHTS)), WEIGHTS_V2);
    const error = await rejection(downloadHubFile(options(hub.url)));
    expect(error.kind).toBe("checksum");
    expect(error.message).toContain(repoDir());
  });

  it("links an existing blob into a new snapshot without downloading it", async () => {
    const hub = await fakeHub();
    const sha = sha256(WEIGHTS);
    mkdirSync(join(repoDir(), "blobs"), { recursive: true });
    writeFileSync(join(repoDir(), "blobs", sha), WEIGHTS);
    const file = await downloadHubFile(options(hub.url));
    expect(file).toMatchObject({ fromCache: true, revision: MAIN, sha256: sha });
    expect(hub.seen.filter((seen) => seen.server === "storage")).toEqual([]);
    expect(readlinkSync(file.path)).toBe(`../../blobs/${sha}`);
    expect(readFileSync(join(repoDir(), "refs", "main"), "utf8")).toBe(MAIN);
  });

  it("pins a revision: a branch, or a commit hash (no ref written for a commit)", async () => {
    const hub = await fakeHub();
    const branch = await downloadHubFile(options(hub.url, { revision: "v2" }));
    expect(branch).toMatchObject({ revision: V2, sha256: sha256(WEIGHTS_V2), fromCache: false });
    expect(readFileSync(branch.path).equals(WEIGHTS_V2)).toBe(true);
    expect(readFileSync(join(repoDir(), "refs", "v2"), "utf8")).toBe(V2);

    const commit = await downloadHubFile(options(hub.url, { revision: MAIN }));
    expect(commit).toMatchObject({ path: join(repoDir(), "snapshots", MAIN, FILE), revision: MAIN, sha256: sha256(WEIGHTS), fromCache: false });
    expect(hub.seen.some((seen) => seen.path === `/${REPO}/resolve/${MAIN}/${FILE}`)).toBe(true);
    expect(readdirSync(join(repoDir(), "refs"))).toEqual(["v2"]);

    const requests = hub.seen.length;
    expect(await downloadHubFile(options(hub.url, { revision: MAIN }))).toMatchObject({ fromCache: true, revision: MAIN });
    expect(hub.seen.length).toBe(requests);
  });

  it("with checkForUpdates, follows a branch that moved (as huggingface_hub always does)", async () => {
    const hub = await fakeHub();
    writePythonCache(V2, WEIGHTS_V2, "main"); // main used to be V2 here
    const file = await downloadHubFile(options(hub.url, { checkForUpdates: true }));
    expect(file).toMatchObject({ revision: MAIN, fromCache: false, sha256: sha256(WEIGHTS) });
    expect(readFileSync(join(repoDir(), "refs", "main"), "utf8")).toBe(MAIN);
  });
});

describe("redirects and impostors", () => {
  it("follows a renamed repo's redirect on the Hub (keeping the token there), caching under the requested name", async () => {
    const hub = await fakeHub({ repos: defaultRepos(), renamed: { "timm/old-name": "someone/private-model" } });
    const file = await downloadHubFile({ ...options(hub.url, { envExtra: { HF_TOKEN: TOKEN } }), repo: "timm/old-name" });
    expect(readFileSync(file.path).equals(WEIGHTS)).toBe(true);
    expect(file.path).toBe(join(cacheDir, "models--timm--old-name", "snapshots", MAIN, FILE));
    const onHub = hub.seen.filter((seen) => seen.server === "hub");
    expect(onHub.map((seen) => [seen.path, seen.headers.authorization])).toEqual([
      [`/timm/old-name/resolve/main/${FILE}`, `Bearer ${TOKEN}`],
      [`/someone/private-model/resolve/main/${FILE}`, `Bearer ${TOKEN}`],
    ]);
    for (const seen of hub.seen.filter((one) => one.server === "storage")) expect(seen.headers.authorization).toBeUndefined();
  });

  it("a captive portal (200 without X-Repo-Commit) is not the Hub; auto falls back", async () => {
    const hub = await fakeHub({ repos: defaultRepos(), portal: true });
    const error = await rejection(downloadHubFile(options(hub.url)));
    expect(error.kind).toBe("not-the-hub");
    expect(error.message).toContain("X-Repo-Commit");
    expect(error.message).toContain("HF_ENDPOINT");
    expect(existsSync(repoDir())).toBe(false);
    const auto = await loadImagenetWeights({ ...options(hub.url), mode: "auto" });
    expect(auto).toEqual({ kind: "random", why: expect.stringContaining("X-Repo-Commit") });
  });
});

describe("interrupted downloads", () => {
  it("keeps the partial file and continues it with Range on the next call", async () => {
    const hub = await fakeHub({ repos: defaultRepos(), cutAfter: 100_000, cuts: 1 });
    const error = await rejection(downloadHubFile(options(hub.url, { retries: 0 })));
    expect(error.kind).toBe("interrupted");
    const incomplete = join(repoDir(), "blobs", `${sha256(WEIGHTS)}.incomplete`);
    expect(error.message).toContain(incomplete);
    const partial = statSync(incomplete).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(WEIGHTS.length);
    expect(existsSync(join(repoDir(), "refs", "main"))).toBe(false);

    const file = await downloadHubFile(options(hub.url));
    const gets = hub.seen.filter((seen) => seen.server === "storage");
    expect(gets.map((seen) => seen.headers.range)).toEqual([undefined, `bytes=${partial}-`]);
    expect(readFileSync(file.path).equals(WEIGHTS)).toBe(true);
    expect(file.sha256).toBe(sha256(WEIGHTS));
    expect(existsSync(incomplete)).toBe(false);
    expect(logs.some((line) => line.includes(`from byte ${partial}`))).toBe(true);
  });

  it("resumes within the same call after the connection breaks", async () => {
    const hub = await fakeHub({ repos: defaultRepos(), cutAfter: 50_000, cuts: 2 });
    const file = await downloadHubFile(options(hub.url));
    const ranges = hub.seen.filter((seen) => seen.server === "storage").map((seen) => seen.headers.range);
    expect(ranges.length).toBe(3);
    expect(ranges[0]).toBeUndefined();
    expect(ranges[1]).toMatch(/^bytes=\d+-$/);
    expect(readFileSync(file.path).equals(WEIGHTS)).toBe(true);
  });

  it("continues a partial file left by Python (blobs/<etag>.incomplete)", async () => {
    const hub = await fakeHub();
    const incomplete = join(repoDir(), "blobs", `${sha256(WEIGHTS)}.incomplete`);
    mkdirSync(join(repoDir(), "blobs"), { recursive: true });
    writeFileSync(incomplete, WEIGHTS.subarray(0, 123_456));
    const file = await downloadHubFile(options(hub.url));
    expect(hub.seen.filter((seen) => seen.server === "storage").map((seen) => seen.headers.range)).toEqual(["bytes=123456-"]);
    expect(readFileSync(file.path).equals(WEIGHTS)).toBe(true);
  });

  it("starts over when the server answers a Range request with the whole file (200)", async () => {
    const hub = await fakeHub({ repos: defaultRepos(), ignoreRange: true });
    const incomplete = join(repoDir(), "blobs", `${sha256(WEIGHTS)}.incomplete`);
    mkdirSync(join(repoDir(), "blobs"), { recursive: true });
    writeFileSync(incomplete, Buffer.alloc(5000, 7)); // wrong bytes: appending to them would fail the checksum
    const file = await downloadHubFile(options(hub.url));
    expect(hub.seen.filter((seen) => seen.server === "storage").map((seen) => seen.headers.range)).toEqual(["bytes=5000-"]);
    expect(readFileSync(file.path).equals(WEIGHTS)).toBe(true);
    expect(logs.some((line) => line.includes("from the start"))).toBe(true);
  });
});

describe("checksum", () => {
  it("refuses a file whose SHA-256 is not the etag, and caches nothing", async () => {
    const hub = await fakeHub({ repos: defaultRepos(), corrupt: true });
    const error = await rejection(downloadHubFile(options(hub.url)));
    expect(error.kind).toBe("checksum");
    expect(error.message).toContain(sha256(WEIGHTS));
    expect(error.message).toContain(REPO);
    expect(error.message).toContain(FILE);
    expect(error.message).toMatch(/nothing was cached/);
    expect(readdirSync(join(repoDir(), "blobs"))).toEqual([]);
    expect(existsSync(join(repoDir(), "snapshots"))).toBe(false);
    expect(existsSync(join(repoDir(), "refs"))).toBe(false);
  });
});

describe("offline", () => {
  it("HF_HUB_OFFLINE=1 without a cache: no request, an error naming the variable and the fix", async () => {
    const hub = await fakeHub();
    const error = await rejection(downloadHubFile(options(hub.url, { envExtra: { HF_HUB_OFFLINE: "1" } })));
    expect(error.kind).toBe("offline-mode");
    expect(error.message).toContain("HF_HUB_OFFLINE");
    expect(error.message).toMatch(/unset HF_HUB_OFFLINE/);
    expect(error.message).toContain(cacheDir);
    expect(hub.seen).toEqual([]);
    const auto = await loadImagenetWeights({ ...options(hub.url, { envExtra: { HF_HUB_OFFLINE: "1" } }), mode: "auto" });
    expect(auto).toEqual({ kind: "random", why: expect.stringContaining("HF_HUB_OFFLINE") });
  });

  it("HF_HUB_OFFLINE with a cache: uses it, says so, no request", async () => {
    const hub = await fakeHub();
    writePythonCache(MAIN, WEIGHTS);
    const file = await downloadHubFile(options(hub.url, { envExtra: { HF_HUB_OFFLINE: "True" }, checkForUpdates: true }));
    expect(file).toMatchObject({ fromCache: true, revision: MAIN, sha256: sha256(WEIGHTS) });
    expect(file.notice).toContain("HF_HUB_OFFLINE");
    expect(logs.some((line) => line.includes("HF_HUB_OFFLINE"))).toBe(true);
    expect(hub.seen).toEqual([]);
  });

  it("a closed port fails fast; auto falls back to random with the reason, imagenet throws", async () => {
    const endpoint = await closedPortUrl();
    const started = Date.now();
    const error = await rejection(downloadHubFile(options(endpoint)));
    expect(Date.now() - started).toBeLessThan(3000);
    expect(error.kind).toBe("unreachable");
    expect(error.message).toContain("ECONNREFUSED");
    expect(error.message).toContain(REPO);
    expect(error.message).toMatch(/finetune\.weights/);

    const auto = await loadImagenetWeights({ ...options(endpoint), mode: "auto" });
    expect(auto.kind).toBe("random");
    expect(auto.kind === "random" ? auto.why : "").toMatch(/unreachable.*ECONNREFUSED/);
    expect(auto.kind === "random" ? auto.why.length : 0).toBeLessThan(200);
    await expect(loadImagenetWeights({ ...options(endpoint), mode: "imagenet" })).rejects.toMatchObject({ kind: "unreachable" });
  });

  it("an unresolvable host fails in well under 10 s", async () => {
    const started = Date.now();
    const error = await rejection(downloadHubFile(options("http://nonexistent.invalid")));
    expect(Date.now() - started).toBeLessThan(5000);
    expect(error.kind).toBe("unreachable");
    expect(error.message).toMatch(/ENOTFOUND|EAI_AGAIN|could not connect/);
    const auto = await loadImagenetWeights({ ...options("http://nonexistent.invalid"), mode: "auto" });
    expect(auto).toEqual({ kind: "random", why: expect.stringContaining("nonexistent.invalid") });
  });

  it("a Hub that never answers times out", async () => {
    const hub = await fakeHub({ repos: defaultRepos(), silent: true });
    const started = Date.now();
    const error = await rejection(downloadHubFile(options(hub.url, { etagTimeoutMs: 300 })));
    expect(Date.now() - started).toBeLessThan(3000);
    expect(error.kind).toBe("unreachable");
    expect(error.message).toMatch(/no data .* for 0.3 s/);
  });

  it("unreachable with a cache: uses it and says so (checkForUpdates)", async () => {
    writePythonCache(MAIN, WEIGHTS);
    const file = await downloadHubFile(options(await closedPortUrl(), { checkForUpdates: true }));
    expect(file).toMatchObject({ fromCache: true, revision: MAIN });
    expect(file.notice).toMatch(/using the cached commit/);
    const auto = await loadImagenetWeights({ ...options(await closedPortUrl()), mode: "auto" });
    expect(auto).toMatchObject({ kind: "hub", file: { fromCache: true, revision: MAIN } });
  });
});

describe("tokens and HTTP errors", () => {
  it("sends HF_TOKEN to the Hub and never to the storage host", async () => {
    const hub = await fakeHub();
    const file = await downloadHubFile({ ...options(hub.url, { envExtra: { HF_TOKEN: TOKEN } }), repo: "someone/private-model" });
    expect(readFileSync(file.path).equals(WEIGHTS)).toBe(true);
    expect(hub.seen.filter((seen) => seen.server === "hub").map((seen) => seen.headers.authorization)).toEqual([`Bearer ${TOKEN}`]);
    const storage = hub.seen.filter((seen) => seen.server === "storage");
    expect(storage.length).toBeGreaterThan(0);
    for (const seen of storage) expect(seen.headers.authorization).toBeUndefined();
    expect(JSON.stringify(file)).not.toContain(TOKEN);
  });

  it("reads the token file $HF_HOME/token; HF_HUB_DISABLE_IMPLICIT_TOKEN sends none", async () => {
    const hub = await fakeHub();
    mkdirSync(hfHomeDir, { recursive: true });
    writeFileSync(join(hfHomeDir, "token"), `${TOKEN}\n`);
    await downloadHubFile({ ...options(hub.url), repo: "someone/private-model" });
    expect(hub.seen.find((seen) => seen.server === "hub")?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    const error = await rejection(downloadHubFile({ ...options(hub.url, { envExtra: { HF_HUB_DISABLE_IMPLICIT_TOKEN: "1" } }), repo: "someone/gated-model" }));
    expect(error.kind).toBe("forbidden");
    expect(hub.seen.at(-1)?.headers.authorization).toBeUndefined();
  });

  it("401: says to set HF_TOKEN, without printing the token", async () => {
    const hub = await fakeHub();
    const anonymous = await rejection(downloadHubFile({ ...options(hub.url), repo: "someone/private-model" }));
    expect(anonymous.kind).toBe("unauthorized");
    expect(anonymous.status).toBe(401);
    expect(anonymous.message).toContain("someone/private-model");
    expect(anonymous.message).toMatch(/No token was sent: set HF_TOKEN/);

    const wrong = `${TOKEN}-wrong`;
    const rejected = await rejection(downloadHubFile({ ...options(hub.url, { envExtra: { HF_TOKEN: wrong } }), repo: "someone/private-model" }));
    expect(rejected.kind).toBe("unauthorized");
    expect(rejected.message).toMatch(/token from HF_TOKEN was sent/);
    expect(rejected.message).not.toContain(wrong);
    expect(`${rejected.summary} ${rejected.stack ?? ""} ${logs.join("\n")}`).not.toContain(wrong);
  });

  it("403 gated: says to accept the terms and set HF_TOKEN", async () => {
    const hub = await fakeHub();
    const error = await rejection(downloadHubFile({ ...options(hub.url), repo: "someone/gated-model" }));
    expect(error.kind).toBe("forbidden");
    expect(error.status).toBe(403);
    expect(error.message).toContain(`accept its terms at ${hub.url}/someone/gated-model`);
    expect(error.message).toContain("HF_TOKEN");
    // not a reason for "auto" to fall back silently
    await expect(loadImagenetWeights({ ...options(hub.url), repo: "someone/gated-model", mode: "auto" })).rejects.toMatchObject({ kind: "forbidden" });
  });

  it("404: names the missing file or revision", async () => {
    const hub = await fakeHub();
    const file = await rejection(downloadHubFile({ ...options(hub.url), filename: "pytorch_model.bin" }));
    expect(file.kind).toBe("not-found");
    expect(file.message).toContain(`pytorch_model.bin does not exist in ${REPO} at revision main`);
    const revision = await rejection(downloadHubFile(options(hub.url, { revision: "no-such-branch" })));
    expect(revision.kind).toBe("not-found");
    expect(revision.message).toContain('Revision "no-such-branch" does not exist');
    expect(revision.message).toContain("finetune.weightsRevision");
    expect(existsSync(join(repoDir(), "refs"))).toBe(false);
  });
});

describe("disk full", () => {
  it.skipIf(!existsSync("/dev/full"))("says how many bytes are needed and where", async () => {
    const hub = await fakeHub();
    const incomplete = join(repoDir(), "blobs", `${sha256(WEIGHTS)}.incomplete`);
    mkdirSync(join(repoDir(), "blobs"), { recursive: true });
    symlinkSync("/dev/full", incomplete); // every write to it fails with ENOSPC
    const error = await rejection(downloadHubFile(options(hub.url)));
    expect(error.kind).toBe("disk-full");
    expect(error.message).toContain(`${WEIGHTS.length} more bytes`);
    expect(error.message).toContain(join(repoDir(), "blobs"));
    expect(error.message).toMatch(/HF_HUB_CACHE/);
  });
});
