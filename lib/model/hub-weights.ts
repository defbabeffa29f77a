// Fetches one file of a Hugging Face Hub repository — by default ResNet18's ImageNet weights,
// `model.safetensors` of `timm/resnet18.tv_in1k` — the way Python's `huggingface_hub.hf_hub_download` does, into
// the same cache, so a download made here serves Python and one made by Python serves us.
//
// What it mirrors of huggingface_hub (constants.py, file_download.py, utils/_auth.py):
// - Cache folder: $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, with HF_HOME defaulting to
//   $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface (`~` and `$VAR` expanded, as Python's expanduser and
//   expandvars do). Layout, for repo `owner/name`:
//     models--owner--name/blobs/<etag>                           the bytes (etag = SHA-256 for LFS files)
//     models--owner--name/snapshots/<commit>/<filename>          relative symlink to ../../blobs/<etag>
//     models--owner--name/refs/<revision>                        the commit hash, no newline (branches and tags only)
// - Metadata: `HEAD {HF_ENDPOINT or https://huggingface.co}/{repo}/resolve/{revision}/{filename}` without following
//   redirects that leave the Hub's origin (those within it, a renamed repo, are followed); X-Repo-Commit is the
//   commit, X-Linked-Etag (else ETag, without W/ and quotes) the blob name, X-Linked-Size (else, when not a
//   redirect, Content-Length) the size, and a 3xx's Location the place to GET the bytes from.
// - Token: $HF_TOKEN, else $HUGGING_FACE_HUB_TOKEN, else the file $HF_TOKEN_PATH (default $HF_HOME/token), unless
//   HF_HUB_DISABLE_IMPLICIT_TOKEN is true. It goes as `Authorization: Bearer` to the endpoint's origin only, never
//   to a redirect target elsewhere (the signed storage link), and into no message, log line or file.
// - Download into blobs/<etag>.incomplete, continuing an earlier one with `Range: bytes=N-` (a 200 reply to that
//   starts the file over), then rename to blobs/<etag>, symlink the snapshot, write refs/<revision>. (That is
//   huggingface_hub 0.x's partial file, which it resumes too; 1.x writes a per-process temporary file instead and
//   ignores ours.)
// - HF_HUB_OFFLINE (else TRANSFORMERS_OFFLINE) in {1, ON, YES, TRUE}, any case: no network, the cache only. When the
//   Hub cannot be reached (or answers an error other than "not found"), a cached copy of the revision is used, and
//   the result says so.
//
// Where it deliberately differs:
// - A revision already cached is used without asking the Hub whether the branch moved (huggingface_hub sends a
//   HEAD every time); `checkForUpdates: true` asks, like Python.
// - Unreachable means unreachable, fast: DNS and connect are bounded by `connectTimeoutMs` (default 3 s) and a
//   failed HEAD is not retried (huggingface_hub retries a few times when nothing is cached).
// - The finished file's SHA-256 is checked against the etag when the etag is one (LFS files); a mismatch deletes
//   the partial file and caches nothing. huggingface_hub only checks the size.
// - No cross-process lock (huggingface_hub's .locks/ uses flock, out of reach without a native module); two calls
//   in this process for the same blob do wait for each other. No proxy support (HTTPS_PROXY is ignored).
//
// Also here: the resolver of the config value `finetune.weights` ("auto" | "imagenet" | "random" | a path) and
// loadImagenetWeights, which for "auto" degrades to random initialisation (with the reason) when the Hub cannot
// be reached and nothing is cached.

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, open, readFile, readlink, rename, rm, stat, statfs, symlink, type FileHandle } from "node:fs/promises";
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { homedir } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import { temporaryPathFor, writeFileAtomic } from "../util/atomic-write";

// ---------------------------------------------------------------------------------------------------------------
// Constants

/** torchvision's ImageNet ResNet18 weights, as timm publishes them in safetensors. */
export const RESNET18_IMAGENET_REPO = "timm/resnet18.tv_in1k";
/** The weights file in that repo. */
export const SAFETENSORS_FILENAME = "model.safetensors";
/** huggingface_hub's DEFAULT_REVISION. */
export const DEFAULT_REVISION = "main";
/** huggingface_hub's default ENDPOINT. */
export const DEFAULT_HUB_ENDPOINT = "https://huggingface.co";
/** Milliseconds for DNS + TCP connect before the Hub counts as unreachable. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 3000;

/** huggingface_hub's DEFAULT_ETAG_TIMEOUT / DEFAULT_DOWNLOAD_TIMEOUT, in seconds. */
const DEFAULT_ETAG_TIMEOUT_S = 10;
const DEFAULT_DOWNLOAD_TIMEOUT_S = 10;
/** huggingface_hub's REGEX_COMMIT_HASH. */
const COMMIT_HASH = /^[0-9a-f]{40}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** huggingface_hub's ENV_VARS_TRUE_VALUES. */
const TRUE_VALUES: ReadonlySet<string> = new Set(["1", "ON", "YES", "TRUE"]);
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;
const USER_AGENT = `celeba-sae/0.1 (node ${process.version}; huggingface_hub-compatible)`;

/** Environment variables, as in process.env; passed in so tests need not change process.env. */
export type HubEnv = Readonly<Record<string, string | undefined>>;

// ---------------------------------------------------------------------------------------------------------------
// Errors

/** What can go wrong; each kind's message names the repo and file and says what to do. */
export type HubErrorKind =
  | "bad-argument"
  | "offline-mode"
  | "unreachable"
  | "interrupted"
  | "unauthorized"
  | "forbidden"
  | "not-found"
  | "http"
  | "tls"
  | "not-the-hub"
  | "checksum"
  | "disk-full"
  | "filesystem";

/** Kinds that mean "the Hub cannot be used right now" (rather than "something is misconfigured"). */
const CANNOT_REACH: ReadonlySet<HubErrorKind> = new Set(["offline-mode", "unreachable", "interrupted", "http", "not-the-hub"]);

/** Failures of a HEAD after which huggingface_hub falls back to a cached copy (all but "not found" and TLS). */
const CACHE_FALLBACK: ReadonlySet<HubErrorKind> = new Set(["unreachable", "http", "not-the-hub", "unauthorized", "forbidden"]);

export class HubError extends Error {
  override readonly name = "HubError";
  /** One line, without the advice: what loadImagenetWeights gives as its `why`. */
  readonly summary: string;
  readonly status: number | undefined;

  constructor(
    readonly kind: HubErrorKind,
    message: string,
    details: { summary?: string; status?: number; cause?: Error } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.summary = details.summary ?? message;
    this.status = details.status;
  }
}

/** Whether an error means the Hub cannot be used now (offline mode, network down, server trouble). */
export function isHubUnavailable(error: unknown): error is HubError {
  return error instanceof HubError && CANNOT_REACH.has(error.kind);
}

function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error && typeof error.code === "string" ? error.code : undefined;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** "getaddrinfo ENOTFOUND host", "connect ECONNREFUSED 127.0.0.1:9" … (Node's messages name hosts, never headers). */
function describeNetworkError(error: Error): string {
  const code = errorCode(error);
  return code === undefined || error.message.includes(code) ? error.message : `${error.message} (${code})`;
}

function isTlsError(error: Error): boolean {
  const code = errorCode(error) ?? "";
  return code.startsWith("ERR_TLS") || code.startsWith("ERR_SSL") || code.includes("CERT") || code === "DEPTH_ZERO_SELF_SIGNED_CERT";
}

// ---------------------------------------------------------------------------------------------------------------
// Settings from the environment (huggingface_hub/constants.py)

/** huggingface_hub's `_is_true`: "1", "ON", "YES", "TRUE" in any case. */
export function isEnvTrue(value: string | undefined): boolean {
  return value !== undefined && TRUE_VALUES.has(value.toUpperCase());
}

/** A variable's value, or undefined when unset or empty. */
function envValue(env: HubEnv, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === "" ? undefined : value;
}

/** Python's os.path.expanduser then expandvars ($VAR and ${VAR}; unknown ones stay as written). */
function expandPath(path: string, env: HubEnv, home: string): string {
  const user = path === "~" ? home : path.startsWith("~/") ? join(home, path.slice(2)) : path;
  return user.replace(/\$(\w+)|\$\{([^}]+)\}/g, (whole: string, bare: string | undefined, braced: string | undefined) => env[bare ?? braced ?? ""] ?? whole);
}

export interface HubSettings {
  /** The Hub's base URL, without a trailing slash. */
  readonly endpoint: string;
  /** Whether HF_ENDPOINT set it. */
  readonly endpointFromEnv: boolean;
  /** $HF_HOME (default $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface). */
  readonly hfHome: string;
  /** The hub cache: $HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE or $HF_HOME/hub. */
  readonly cacheDir: string;
  /** The token file: $HF_TOKEN_PATH or $HF_HOME/token. */
  readonly tokenPath: string;
  /** The variable that turned offline mode on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE), if one did. */
  readonly offlineVar: string | undefined;
  readonly disableImplicitToken: boolean;
  readonly etagTimeoutMs: number;
  readonly downloadTimeoutMs: number;
}

function secondsFromEnv(env: HubEnv, name: string, fallback: number): number {
  const value = Number(envValue(env, name));
  return Number.isFinite(value) && value > 0 ? value * 1000 : fallback * 1000;
}

/** Which variable enables offline mode: `HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE`, as Python reads them. */
function offlineVariable(env: HubEnv): string | undefined {
  const name = envValue(env, "HF_HUB_OFFLINE") !== undefined ? "HF_HUB_OFFLINE" : "TRANSFORMERS_OFFLINE";
  return isEnvTrue(envValue(env, name)) ? name : undefined;
}

/** The Hub endpoint from HF_ENDPOINT (default https://huggingface.co), checked, without a trailing slash. */
export function hubEndpoint(env: HubEnv = process.env): string {
  const raw = (envValue(env, "HF_ENDPOINT") ?? DEFAULT_HUB_ENDPOINT).replace(/\/+$/, "");
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new HubError("bad-argument", `HF_ENDPOINT ("${raw}") is not a URL: set it like https://huggingface.co or unset it.`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new HubError("bad-argument", `HF_ENDPOINT must be an http(s) URL, not ${url.protocol}: set it like https://huggingface.co or unset it.`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new HubError("bad-argument", "HF_ENDPOINT must not carry a user name or password: put the token in HF_TOKEN instead.");
  }
  return raw;
}

/** huggingface_hub's HF_HOME. */
export function hfHome(env: HubEnv = process.env, home: string = homedir()): string {
  const fallback = join(envValue(env, "XDG_CACHE_HOME") ?? join(home, ".cache"), "huggingface");
  return resolve(expandPath(envValue(env, "HF_HOME") ?? fallback, env, home));
}

/** huggingface_hub's HF_HUB_CACHE: where `models--owner--name` folders live. */
export function hubCacheDir(env: HubEnv = process.env, home: string = homedir()): string {
  const configured = envValue(env, "HF_HUB_CACHE") ?? envValue(env, "HUGGINGFACE_HUB_CACHE");
  return resolve(configured === undefined ? join(hfHome(env, home), "hub") : expandPath(configured, env, home));
}

/** Everything the environment decides, read once per call. */
export function hubSettings(env: HubEnv = process.env, home: string = homedir()): HubSettings {
  const hf = hfHome(env, home);
  const tokenPath = envValue(env, "HF_TOKEN_PATH");
  return {
    endpoint: hubEndpoint(env),
    endpointFromEnv: envValue(env, "HF_ENDPOINT") !== undefined,
    hfHome: hf,
    cacheDir: hubCacheDir(env, home),
    tokenPath: tokenPath === undefined ? join(hf, "token") : resolve(expandPath(tokenPath, env, home)),
    offlineVar: offlineVariable(env),
    disableImplicitToken: isEnvTrue(envValue(env, "HF_HUB_DISABLE_IMPLICIT_TOKEN")),
    etagTimeoutMs: secondsFromEnv(env, "HF_HUB_ETAG_TIMEOUT", DEFAULT_ETAG_TIMEOUT_S),
    downloadTimeoutMs: secondsFromEnv(env, "HF_HUB_DOWNLOAD_TIMEOUT", DEFAULT_DOWNLOAD_TIMEOUT_S),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The token (utils/_auth.py), kept out of sight

/** A token and where it came from; the value is a private field (not shown by console.log, inspect or JSON). */
class HubToken {
  readonly #value: string;

  constructor(
    value: string,
    readonly from: string,
  ) {
    this.#value = value;
  }

  bearer(): string {
    return `Bearer ${this.#value}`;
  }

  /** The text with the token replaced by "***" (for anything a server says back). */
  redact(text: string): string {
    return text.split(this.#value).join("***");
  }

  toJSON(): string {
    return `[token from ${this.from}]`;
  }
}

/** huggingface_hub's `_clean_token`: no CR/LF, trimmed, empty → none. */
function cleanToken(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const token = value.replace(/[\r\n]/g, "").trim();
  return token === "" ? undefined : token;
}

async function findToken(env: HubEnv, settings: HubSettings, explicit: string | false | undefined): Promise<HubToken | undefined> {
  if (explicit === false) return undefined;
  if (explicit !== undefined) {
    const token = cleanToken(explicit);
    return token === undefined ? undefined : new HubToken(token, "the token option");
  }
  if (settings.disableImplicitToken) return undefined;
  for (const name of ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]) {
    const token = cleanToken(env[name]);
    if (token !== undefined) return new HubToken(token, name);
  }
  try {
    const token = cleanToken(await readFile(settings.tokenPath, "utf8"));
    return token === undefined ? undefined : new HubToken(token, settings.tokenPath);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Names, URLs, cache paths

/** A path segment that is safe to put in the cache (a commit hash, an etag). */
function isSafeSegment(value: string): boolean {
  return /^[A-Za-z0-9._-]+$/.test(value) && value !== "." && value !== "..";
}

/** `owner/name` (or `name`), checked as huggingface_hub's validate_repo_id does. */
export function checkRepoId(repo: string): string {
  const ok = /^(?:[\w.-]+\/)?[\w.-]+$/.test(repo) && !repo.includes("--") && !repo.includes("..") && !/^[.-]|[.-]$/.test(repo) && repo.length <= 96;
  if (!ok) throw new HubError("bad-argument", `"${repo}" is not a Hub repo id: expected owner/name, like ${RESNET18_IMAGENET_REPO}.`);
  return repo;
}

/** A file path inside a repo: relative, "/"-separated, no "." or ".." segments. */
function checkFilename(filename: string): string {
  const parts = filename.split("/");
  if (filename === "" || parts.some((part) => part === "" || part === "." || part === ".." || part.includes("\\"))) {
    throw new HubError("bad-argument", `"${filename}" is not a file path inside a Hub repo (like ${SAFETENSORS_FILENAME}).`);
  }
  return filename;
}

/**
 * A revision: a branch or tag name, or a full 40-hex commit hash (returned in lower case). Empty → "main".
 * Abbreviated hashes are refused: the cache (like huggingface_hub) only recognises full ones.
 */
export function checkRevision(revision: string | undefined): string {
  const value = (revision ?? "").trim();
  if (value === "") return DEFAULT_REVISION;
  if (/^[0-9a-fA-F]{40}$/.test(value)) return value.toLowerCase();
  if (/^[0-9a-fA-F]{7,39}$/.test(value) && /\d/.test(value)) {
    throw new HubError("bad-argument", `Revision "${value}" looks like an abbreviated commit hash: give the full 40-character hash, or a branch or tag name.`);
  }
  const segments = value.split("/");
  if (!/^[A-Za-z0-9._\/-]+$/.test(value) || value.length > 255 || segments.some((part) => part === "" || part === "." || part === "..")) {
    throw new HubError("bad-argument", `Revision "${value}" is not a branch, tag or 40-character commit hash.`);
  }
  return value;
}

/** huggingface_hub's repo_folder_name for a model repo: `models--owner--name`. */
export function repoFolderName(repo: string): string {
  return ["models", ...checkRepoId(repo).split("/")].join("--");
}

/** huggingface_hub's hf_hub_url: `{endpoint}/{repo}/resolve/{revision}/{filename}`, revision and filename quoted. */
export function hubFileUrl(endpoint: string, repo: string, revision: string, filename: string): string {
  const file = filename.split("/").map(encodeURIComponent).join("/");
  return `${endpoint.replace(/\/+$/, "")}/${repo}/resolve/${encodeURIComponent(revision)}/${file}`;
}

/** Where one file of one repo lives in the cache. */
interface CachePaths {
  readonly repoDir: string;
  readonly blobsDir: string;
  readonly blob: (etag: string) => string;
  readonly pointer: (commit: string) => string;
  readonly ref: string;
}

function cachePaths(cacheDir: string, repo: string, revision: string, filename: string): CachePaths {
  const repoDir = join(cacheDir, repoFolderName(repo));
  const blobsDir = join(repoDir, "blobs");
  return {
    repoDir,
    blobsDir,
    blob: (etag: string) => join(blobsDir, etag),
    pointer: (commit: string) => join(repoDir, "snapshots", commit, ...filename.split("/")),
    ref: join(repoDir, "refs", ...revision.split("/")),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Options, result, the context of one call

export interface HubDownloadOptions {
  /** `owner/name` (default timm/resnet18.tv_in1k). */
  repo?: string;
  /** File in the repo (default model.safetensors). */
  filename?: string;
  /** Branch, tag or 40-hex commit (default "main"). */
  revision?: string;
  /** Environment to read HF_* variables from (default process.env). */
  env?: HubEnv;
  /** Home folder for `~` and the default cache (default os.homedir()). */
  home?: string;
  /** A token to use instead of HF_TOKEN / the token file; false: send none. */
  token?: string | false;
  /** DNS + TCP connect limit, ms (default 3000). */
  connectTimeoutMs?: number;
  /** Wait for the HEAD's answer, ms (default HF_HUB_ETAG_TIMEOUT or 10 s). */
  etagTimeoutMs?: number;
  /** Longest pause in the download's data, ms (default HF_HUB_DOWNLOAD_TIMEOUT or 10 s). */
  downloadTimeoutMs?: number;
  /** Resumes (Range) within this call after the connection breaks mid-download (default 3). */
  retries?: number;
  /** Pause before each resume, ms (default 1000). */
  retryDelayMs?: number;
  /** Ask the Hub whether a cached branch moved (huggingface_hub always does; default false: the cache is used as is). */
  checkForUpdates?: boolean;
  /** Bytes of the file on disk so far, and its size when known. */
  onProgress?: (done: number, total: number | null) => void;
  /** Status lines (resuming, using the cache while offline …); default console.log. Never given the token. */
  log?: (line: string) => void;
}

export interface HubFile {
  /** The snapshot path (snapshots/<commit>/<filename>, a symlink into blobs/), as hf_hub_download returns. */
  path: string;
  /** The commit hash the file belongs to (X-Repo-Commit). */
  revision: string;
  /** SHA-256 of the file's bytes, hex. */
  sha256: string;
  /** Whether the file was already cached (nothing downloaded). */
  fromCache: boolean;
  repo: string;
  filename: string;
  /** Why the cache was used without asking the Hub (offline mode, Hub unreachable), when that is why. */
  notice?: string;
}

interface Call {
  readonly repo: string;
  readonly filename: string;
  readonly revision: string;
  /** "model.safetensors of timm/resnet18.tv_in1k (revision main)", for messages. */
  readonly what: string;
  readonly settings: HubSettings;
  readonly paths: CachePaths;
  readonly token: HubToken | undefined;
  readonly endpointOrigin: string;
  /** Whether a proxy variable is set (this downloader does not use proxies: said when the Hub is unreachable). */
  readonly proxyConfigured: boolean;
  readonly connectTimeoutMs: number;
  readonly etagTimeoutMs: number;
  readonly downloadTimeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly onProgress: ((done: number, total: number | null) => void) | undefined;
  readonly log: (line: string) => void;
}

async function prepareCall(options: HubDownloadOptions): Promise<Call> {
  const env = options.env ?? process.env;
  const settings = hubSettings(env, options.home ?? homedir());
  const repo = checkRepoId(options.repo ?? RESNET18_IMAGENET_REPO);
  const filename = checkFilename(options.filename ?? SAFETENSORS_FILENAME);
  const revision = checkRevision(options.revision);
  return {
    repo,
    filename,
    revision,
    what: `${filename} of ${repo} (revision ${revision})`,
    settings,
    paths: cachePaths(settings.cacheDir, repo, revision, filename),
    token: await findToken(env, settings, options.token),
    endpointOrigin: new URL(settings.endpoint).origin,
    proxyConfigured: ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"].some((name) => envValue(env, name) !== undefined),
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    etagTimeoutMs: options.etagTimeoutMs ?? settings.etagTimeoutMs,
    downloadTimeoutMs: options.downloadTimeoutMs ?? settings.downloadTimeoutMs,
    retries: options.retries ?? 3,
    retryDelayMs: options.retryDelayMs ?? 1000,
    onProgress: options.onProgress,
    log: options.log ?? ((line: string) => console.log(line)),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Reading the cache

interface CachedEntry {
  readonly commit: string;
  readonly pointer: string;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** The commit a revision stands for in the cache: itself when a commit hash, else refs/<revision>. */
async function cachedCommit(call: Call): Promise<string | undefined> {
  if (COMMIT_HASH.test(call.revision)) return call.revision;
  try {
    const commit = (await readFile(call.paths.ref, "utf8")).trim();
    return isSafeSegment(commit) ? commit : undefined;
  } catch {
    return undefined;
  }
}

/** The cached snapshot file of the revision (as try_to_load_from_cache finds it), if there is one. */
async function findCached(call: Call): Promise<CachedEntry | undefined> {
  const commit = await cachedCommit(call);
  if (commit === undefined) return undefined;
  const pointer = call.paths.pointer(commit);
  return (await isFile(pointer)) ? { commit, pointer } : undefined;
}

/** SHA-256 of a file, streamed. */
async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** The cached file as a result; its bytes are hashed, and checked when its blob is named by a SHA-256. */
async function cachedResult(call: Call, entry: CachedEntry, notice: string | undefined): Promise<HubFile> {
  const sha256 = await sha256File(entry.pointer);
  let target: string | undefined;
  try {
    target = basename(await readlink(entry.pointer));
  } catch {
    target = undefined; // a plain file (a cache made where symlinks are not available)
  }
  if (target !== undefined && SHA256_HEX.test(target) && target !== sha256) {
    throw new HubError(
      "checksum",
      `The cached ${call.what} is corrupt: its SHA-256 is ${sha256}, but its blob is named ${target}. ` +
        `Delete ${call.paths.repoDir} and run again to download it afresh.`,
      { summary: `the cached ${call.filename} of ${call.repo} is corrupt` },
    );
  }
  if (notice !== undefined) call.log(notice);
  return { path: entry.pointer, revision: entry.commit, sha256, fromCache: true, repo: call.repo, filename: call.filename, ...(notice === undefined ? {} : { notice }) };
}

/** Looks the file up in the cache only (no network): the result, or undefined when it is not cached. */
export async function findCachedHubFile(options: HubDownloadOptions = {}): Promise<HubFile | undefined> {
  const call = await prepareCall({ ...options, token: false });
  const entry = await findCached(call);
  return entry === undefined ? undefined : cachedResult(call, entry, undefined);
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP

/**
 * One request, not following redirects. DNS + connect must finish within connectMs (a fresh connection each time,
 * agent: false); after that, idleMs bounds every pause. Network failures reject (with Node's error).
 */
function send(url: URL, method: "HEAD" | "GET", headers: OutgoingHttpHeaders, connectMs: number, idleMs: number): Promise<IncomingMessage> {
  return new Promise<IncomingMessage>((resolvePromise, reject) => {
    const request = (url.protocol === "https:" ? httpsRequest : httpRequest)(url, { method, headers, agent: false });
    let response: IncomingMessage | undefined;
    const fail = (error: Error): void => {
      if (response !== undefined) response.destroy(error);
      request.destroy(error);
    };
    const connectTimer = setTimeout(() => {
      fail(Object.assign(new Error(`could not connect to ${url.host} within ${connectMs / 1000} s`), { code: "ETIMEDOUT" }));
    }, connectMs);
    request.on("socket", (socket) => {
      if (!socket.connecting) clearTimeout(connectTimer);
      else socket.once("connect", () => clearTimeout(connectTimer));
    });
    request.setTimeout(idleMs, () => {
      fail(Object.assign(new Error(`no data from ${url.host} for ${idleMs / 1000} s`), { code: "ETIMEDOUT" }));
    });
    request.on("error", (error: Error) => {
      clearTimeout(connectTimer);
      reject(error);
    });
    request.on("response", (res: IncomingMessage) => {
      clearTimeout(connectTimer);
      response = res;
      resolvePromise(res);
    });
    request.end();
  });
}

/** The headers of a request to `url`: the token only for the endpoint's own origin. */
function headersFor(call: Call, url: URL, extra: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { "user-agent": USER_AGENT, "accept-encoding": "identity", ...extra };
  if (call.token !== undefined && url.origin === call.endpointOrigin) headers.authorization = call.token.bearer();
  return headers;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  const text = Array.isArray(value) ? value[0] : value;
  return text === undefined || text === "" ? undefined : text;
}

/** huggingface_hub's _normalize_etag: without a weak `W/` prefix and the quotes. */
export function normalizeEtag(etag: string | undefined): string | undefined {
  if (etag === undefined) return undefined;
  const value = etag.trim().replace(/^W\//, "").replace(/^"+|"+$/g, "");
  return value === "" ? undefined : value;
}

function parseSize(value: string | undefined): number | null {
  return value !== undefined && /^\d+$/.test(value.trim()) ? Number(value.trim()) : null;
}

function redirectTarget(call: Call, location: string | undefined, from: URL, status: number): URL {
  if (location === undefined) throw new HubError("not-the-hub", `${from.host} answered HTTP ${status} (a redirect) without a Location for ${call.what}.`, { status });
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new HubError("not-the-hub", `${from.host} redirected ${call.what} to something that is not a URL.`, { status });
  }
  if (next.protocol !== "http:" && next.protocol !== "https:") {
    throw new HubError("not-the-hub", `${from.host} redirected ${call.what} to a ${next.protocol} URL, which cannot be downloaded.`, { status });
  }
  return next;
}

// ---------------------------------------------------------------------------------------------------------------
// Messages for network failures and HTTP statuses

function pythonFix(call: Call): string {
  return `hf download ${call.repo} ${call.filename}${call.revision === DEFAULT_REVISION ? "" : ` --revision ${call.revision}`}`;
}

function unreachableError(call: Call, host: string, cause: Error): HubError {
  if (isTlsError(cause)) {
    return new HubError(
      "tls",
      `Could not download ${call.what}: the TLS connection to ${host} failed (${describeNetworkError(cause)}). ` +
        "A proxy that inspects HTTPS may be in the way: give Node its certificate with NODE_EXTRA_CA_CERTS=/path/to/ca.pem.",
      { summary: `TLS failure with ${host}: ${describeNetworkError(cause)}`, cause },
    );
  }
  const proxy = call.proxyConfigured
    ? " (A proxy variable is set, but this downloader connects directly: download with Python instead, into the same cache.)"
    : "";
  const endpoint = call.settings.endpointFromEnv ? ` HF_ENDPOINT is set to ${call.settings.endpoint}: check it.` : "";
  return new HubError(
    "unreachable",
    `Could not reach the Hugging Face Hub at ${host} to download ${call.what}: ${describeNetworkError(cause)}. ` +
      `Nothing is cached for that revision in ${call.settings.cacheDir}.${endpoint} ` +
      `Fixes: check the internet connection and run again; or, on a machine with internet, run \`${pythonFix(call)}\` ` +
      `and copy its ${repoFolderName(call.repo)} folder into ${call.settings.cacheDir}; or set finetune.weights to "random" ` +
      `or to the path of a local .safetensors file.${proxy}`,
    { summary: `the Hub (${host}) is unreachable: ${describeNetworkError(cause)}`, cause },
  );
}

function offlineModeError(call: Call): HubError {
  const name = call.settings.offlineVar ?? "HF_HUB_OFFLINE";
  return new HubError(
    "offline-mode",
    `${name} is set, so the Hub is not contacted, and ${call.what} is not in the cache (${call.settings.cacheDir}). ` +
      `Fixes: unset ${name} (or set it to 0) to download it once; or copy a cache made elsewhere (its ${repoFolderName(call.repo)} folder, ` +
      `e.g. from \`${pythonFix(call)}\`) into ${call.settings.cacheDir}; or set finetune.weights to "random" or a local .safetensors path.`,
    { summary: `${name} is set and ${call.filename} of ${call.repo} is not cached` },
  );
}

/** The token, in words, for messages: where it came from (never its value). */
function tokenHelp(call: Call): string {
  return call.token === undefined
    ? "No token was sent: set HF_TOKEN to a read token (https://huggingface.co/settings/tokens) or log in with `hf auth login`."
    : `The token from ${call.token.from} was sent: check it is valid and has read access, or set HF_TOKEN to one that does.`;
}

/** huggingface_hub's hf_raise_for_status, in words that say what to do. */
function statusError(call: Call, status: number, headers: IncomingHttpHeaders, url: URL): HubError {
  const code = header(headers, "x-error-code");
  const said = header(headers, "x-error-message");
  const hub = said === undefined ? "" : ` The Hub says: "${call.token === undefined ? said : call.token.redact(said)}".`;
  const at = `(HTTP ${status} from ${url.host})`;
  const repoPage = `${call.settings.endpoint}/${call.repo}`;
  if (code === "GatedRepo" || (status === 403 && code === undefined && said !== undefined && /gated/i.test(said))) {
    return new HubError(
      "forbidden",
      `${call.repo} is a gated repo ${at}: accept its terms at ${repoPage} while logged in, then use a token of that account. ${tokenHelp(call)}${hub}`,
      { summary: `${call.repo} is gated (HTTP ${status})`, status },
    );
  }
  if (code === "RevisionNotFound") {
    return new HubError(
      "not-found",
      `Revision "${call.revision}" does not exist in ${call.repo} ${at}: use an existing branch, tag or full 40-character commit hash ` +
        `(finetune.weightsRevision), or leave it empty for "main".${hub}`,
      { summary: `revision ${call.revision} of ${call.repo} not found`, status },
    );
  }
  if (code === "EntryNotFound") {
    return new HubError("not-found", `${call.filename} does not exist in ${call.repo} at revision ${call.revision} ${at}: check the file name (see ${repoPage}/tree/${call.revision}).${hub}`, {
      summary: `${call.filename} not found in ${call.repo}@${call.revision}`,
      status,
    });
  }
  if (code === "RepoNotFound" || status === 401) {
    return new HubError(
      status === 401 ? "unauthorized" : "not-found",
      `Repository ${call.repo} was not found on ${url.host} ${at}, or it is private or gated and the request was not authorised. ` +
        `Check the repo id. ${tokenHelp(call)}${hub}`,
      { summary: `${call.repo}: not found or not authorised (HTTP ${status})`, status },
    );
  }
  if (status === 403) {
    return new HubError(
      "forbidden",
      `Access to ${call.what} was refused ${at}. If the repo is gated, accept its terms at ${repoPage}; otherwise the token lacks permission. ${tokenHelp(call)}${hub}`,
      { summary: `access to ${call.repo} refused (HTTP 403)`, status },
    );
  }
  if (status === 404) {
    const endpoint = call.settings.endpointFromEnv ? ` HF_ENDPOINT is set to ${call.settings.endpoint}: check it serves the Hub.` : "";
    return new HubError(
      "not-found",
      `Not found ${at}: ${call.repo}, its revision "${call.revision}" or its file ${call.filename} does not exist. Check the repo id, the revision and the file name.${endpoint}${hub}`,
      { summary: `${call.what} not found (HTTP 404)`, status },
    );
  }
  const later = status === 429 || status >= 500 ? " The Hub is busy or down: run again later." : "";
  return new HubError("http", `The Hub answered HTTP ${status} for ${call.what} ${at}.${later}${hub}`, { summary: `the Hub answered HTTP ${status}`, status });
}

// ---------------------------------------------------------------------------------------------------------------
// Metadata: the HEAD (get_hf_file_metadata)

interface FileMetadata {
  readonly commit: string;
  readonly etag: string;
  readonly size: number | null;
  /** Where to GET the bytes: the redirect's target, else the resolve URL. */
  readonly downloadUrl: URL;
}

function readMetadata(call: Call, headers: IncomingHttpHeaders, downloadUrl: URL, host: string, redirected: boolean): FileMetadata {
  const commit = header(headers, "x-repo-commit");
  const etag = normalizeEtag(header(headers, "x-linked-etag") ?? header(headers, "etag"));
  if (commit === undefined || etag === undefined || !isSafeSegment(commit) || !isSafeSegment(etag)) {
    const missing = commit === undefined ? "X-Repo-Commit" : etag === undefined ? "ETag" : "a usable commit hash or ETag";
    return notTheHub(call, host, missing);
  }
  // A redirect's Content-Length is its own (empty) body's, not the file's.
  const size = parseSize(header(headers, "x-linked-size") ?? (redirected ? undefined : header(headers, "content-length")));
  return { commit, etag, size, downloadUrl };
}

function notTheHub(call: Call, host: string, missing: string): never {
  throw new HubError(
    "not-the-hub",
    `${host} answered the request for ${call.what} without ${missing}, so it does not look like the Hugging Face Hub. ` +
      `A captive portal, proxy or firewall may be in the way${call.settings.endpointFromEnv ? `, or HF_ENDPOINT (${call.settings.endpoint}) is wrong` : ""}: check the network and run again.`,
    { summary: `${host} does not answer like the Hub (no ${missing})` },
  );
}

async function fetchMetadata(call: Call): Promise<FileMetadata> {
  let url = new URL(hubFileUrl(call.settings.endpoint, call.repo, call.revision, call.filename));
  for (let hops = 0; ; hops++) {
    let response: IncomingMessage;
    try {
      response = await send(url, "HEAD", headersFor(call, url), call.connectTimeoutMs, call.etagTimeoutMs);
    } catch (error) {
      throw unreachableError(call, url.host, asError(error));
    }
    response.resume();
    const status = response.statusCode ?? 0;
    if (REDIRECT_STATUSES.has(status)) {
      const target = redirectTarget(call, header(response.headers, "location"), url, status);
      if (target.origin === url.origin && hops < MAX_REDIRECTS) {
        url = target;
        continue;
      }
      return readMetadata(call, response.headers, target, url.host, true);
    }
    if (status >= 200 && status < 300) return readMetadata(call, response.headers, url, url.host, false);
    throw statusError(call, status, response.headers, url);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Writing the cache

async function sizeOnDisk(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** refs/<revision> ← commit, for branches and tags (huggingface_hub's _cache_commit_hash_for_specific_revision). */
async function writeRef(call: Call, commit: string): Promise<void> {
  if (call.revision === commit) return;
  try {
    if ((await readFile(call.paths.ref, "utf8")) === commit) return;
  } catch {
    // no ref yet
  }
  await writeFileAtomic(call.paths.ref, commit);
}

/** snapshots/<commit>/<filename> → relative symlink to the blob, replaced atomically (a copy where symlinks fail). */
async function linkSnapshot(blob: string, pointer: string): Promise<void> {
  await mkdir(dirname(pointer), { recursive: true });
  const temporary = temporaryPathFor(pointer);
  try {
    try {
      await symlink(relative(dirname(pointer), blob), temporary);
    } catch (error) {
      const code = errorCode(error);
      if (code !== "EPERM" && code !== "EACCES" && code !== "ENOTSUP" && code !== "EOPNOTSUPP") throw error;
      await copyFile(blob, temporary);
    }
    await rename(temporary, pointer);
  } finally {
    await rm(temporary, { force: true });
  }
}

function fileSystemError(call: Call, path: string, error: unknown): HubError {
  const code = errorCode(error) ?? asError(error).message;
  return new HubError("filesystem", `Could not write ${path} while caching ${call.what}: ${code}. Fix the folder's permissions or point HF_HUB_CACHE (or HF_HOME) elsewhere.`, {
    summary: `could not write the cache (${code})`,
    cause: asError(error),
  });
}

/** Snapshot link, then ref: the last steps, once the blob is in place. */
async function publish(call: Call, meta: FileMetadata): Promise<string> {
  const pointer = call.paths.pointer(meta.commit);
  try {
    await linkSnapshot(call.paths.blob(meta.etag), pointer);
    await writeRef(call, meta.commit);
  } catch (error) {
    throw fileSystemError(call, pointer, error);
  }
  return pointer;
}

// ---------------------------------------------------------------------------------------------------------------
// The download (http_get): blobs/<etag>.incomplete, resumed with Range

function diskFullError(call: Call, incomplete: string, onDisk: number, total: number | null, cause?: Error): HubError {
  const needed = total === null ? "more bytes than are free" : `${total - onDisk} more bytes (the file is ${total} bytes)`;
  return new HubError(
    "disk-full",
    `Disk full while downloading ${call.what}: ${needed} are needed in ${call.paths.blobsDir}. ` +
      `${onDisk} bytes are kept in ${incomplete} and the download continues from there. ` +
      "Free space there, or point HF_HUB_CACHE (or HF_HOME) to a disk with room, and run again.",
    { summary: `disk full: ${total === null ? "" : `${total - onDisk} bytes `}needed in ${call.paths.blobsDir}`, cause },
  );
}

/** Fails early when the file system says the rest cannot fit (0 available is "unknown" on some file systems). */
async function checkFreeSpace(call: Call, incomplete: string, onDisk: number, total: number | null): Promise<void> {
  if (total === null) return;
  let available: number;
  try {
    const info = await statfs(call.paths.blobsDir);
    available = Number(info.bavail) * Number(info.bsize);
  } catch {
    return;
  }
  if (available > 0 && available < total - onDisk) throw diskFullError(call, incomplete, onDisk, total);
}

type Attempt = { kind: "complete" } | { kind: "restart"; reason: string } | { kind: "interrupted"; reason: string; cause?: Error };

/** GET `url` with `Range` from `offset`, following redirects; the token only to the endpoint's origin. */
async function requestBytes(call: Call, start: URL, offset: number): Promise<{ response: IncomingMessage; url: URL }> {
  let url = start;
  for (let hops = 0; ; hops++) {
    const extra: OutgoingHttpHeaders = offset > 0 ? { range: `bytes=${offset}-` } : {};
    const response = await send(url, "GET", headersFor(call, url, extra), call.connectTimeoutMs, call.downloadTimeoutMs);
    const status = response.statusCode ?? 0;
    if (!REDIRECT_STATUSES.has(status)) return { response, url };
    response.resume();
    if (hops >= MAX_REDIRECTS) throw new HubError("http", `More than ${MAX_REDIRECTS} redirects while downloading ${call.what}, starting at ${start.host}.`);
    url = redirectTarget(call, header(response.headers, "location"), url, status);
  }
}

/** Where the response's bytes go: from 0 (200), or after the `offset` bytes on disk (206 starting there). */
function planWrite(call: Call, response: IncomingMessage, offset: number): { start: number } | { restart: string } {
  if (response.statusCode === 200) {
    if (offset > 0) call.log(`${response.headers.server ?? "The server"} sent the whole of ${call.filename} instead of the rest from byte ${offset}: writing it from the start.`);
    return { start: 0 };
  }
  const range = /^bytes\s+(\d+)-\d+\/(?:\d+|\*)$/i.exec(header(response.headers, "content-range") ?? "");
  if (range !== null && Number(range[1]) !== offset) return { restart: `the server resumed at byte ${range[1]} instead of ${offset}` };
  return { start: offset };
}

async function writeAll(file: FileHandle, chunk: Buffer): Promise<void> {
  for (let offset = 0; offset < chunk.length; ) {
    const { bytesWritten } = await file.write(chunk, offset, chunk.length - offset);
    if (bytesWritten === 0) throw Object.assign(new Error("no bytes could be written"), { code: "EIO" });
    offset += bytesWritten;
  }
}

/** Streams the body into the file; a broken connection is returned, a failed write thrown. */
async function receive(call: Call, response: IncomingMessage, file: FileHandle, start: number, total: number | null): Promise<Error | undefined> {
  const chunks: AsyncIterator<Buffer> = response[Symbol.asyncIterator]();
  let done = start;
  call.onProgress?.(done, total);
  for (;;) {
    let next: IteratorResult<Buffer>;
    try {
      next = await chunks.next();
    } catch (error) {
      return asError(error);
    }
    if (next.done === true) return undefined;
    try {
      await writeAll(file, next.value);
    } catch (error) {
      response.destroy();
      throw error;
    }
    done += next.value.length;
    call.onProgress?.(done, total);
  }
}

async function writeBody(call: Call, response: IncomingMessage, incomplete: string, start: number, total: number | null): Promise<Attempt> {
  let file: FileHandle;
  try {
    await checkFreeSpace(call, incomplete, start, total);
    file = await open(incomplete, start === 0 ? "w" : "a");
  } catch (error) {
    response.destroy();
    if (error instanceof HubError) throw error;
    throw errorCode(error) === "ENOSPC" ? diskFullError(call, incomplete, start, total, asError(error)) : fileSystemError(call, incomplete, error);
  }
  let broken: Error | undefined;
  try {
    broken = await receive(call, response, file, start, total);
    if (broken === undefined) await file.sync();
  } catch (error) {
    await file.close().catch(() => undefined);
    const code = errorCode(error);
    if (code === "ENOSPC" || code === "EDQUOT") throw diskFullError(call, incomplete, await sizeOnDisk(incomplete), total, asError(error));
    throw fileSystemError(call, incomplete, error);
  }
  await file.close();
  const onDisk = await sizeOnDisk(incomplete);
  if (broken !== undefined) return { kind: "interrupted", reason: `the connection broke after ${onDisk} bytes: ${describeNetworkError(broken)}`, cause: broken };
  if (total !== null && onDisk < total) return { kind: "interrupted", reason: `the connection ended after ${onDisk} of ${total} bytes` };
  return { kind: "complete" };
}

/** One GET: continues from what blobs/<etag>.incomplete holds. */
async function attemptDownload(call: Call, meta: FileMetadata, incomplete: string): Promise<Attempt> {
  const offset = await sizeOnDisk(incomplete);
  if (meta.size !== null && offset > 0 && offset === meta.size) return { kind: "complete" };
  if (meta.size !== null && offset > meta.size) return { kind: "restart", reason: `${basename(incomplete)} is larger than the file` };
  let exchange: { response: IncomingMessage; url: URL };
  try {
    exchange = await requestBytes(call, meta.downloadUrl, offset);
  } catch (error) {
    if (error instanceof HubError) throw error;
    if (isTlsError(asError(error))) throw unreachableError(call, meta.downloadUrl.host, asError(error));
    return { kind: "interrupted", reason: `could not reach ${meta.downloadUrl.host}: ${describeNetworkError(asError(error))}`, cause: asError(error) };
  }
  const { response, url } = exchange;
  const status = response.statusCode ?? 0;
  if (status === 416) {
    response.resume();
    return meta.size !== null && offset === meta.size ? { kind: "complete" } : { kind: "restart", reason: `the server cannot continue from byte ${offset} (HTTP 416)` };
  }
  if (status === 429 || status >= 500) {
    response.resume();
    return { kind: "interrupted", reason: `${url.host} answered HTTP ${status}` };
  }
  if (status !== 200 && status !== 206) {
    response.resume();
    if (url.origin === call.endpointOrigin) throw statusError(call, status, response.headers, url);
    throw new HubError("http", `The storage host ${url.host} answered HTTP ${status} to the download of ${call.what} (its signed link may have expired): run again.`, {
      summary: `the storage host answered HTTP ${status}`,
      status,
    });
  }
  const plan = planWrite(call, response, offset);
  if ("restart" in plan) {
    response.destroy();
    return { kind: "restart", reason: plan.restart };
  }
  return writeBody(call, response, incomplete, plan.start, meta.size);
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

/** Deletes the partial file and says why nothing was cached. */
async function refuse(call: Call, incomplete: string, message: string, summary: string): Promise<never> {
  await rm(incomplete, { force: true });
  throw new HubError("checksum", `${message} The partial file was deleted and nothing was cached. Run again; if it happens again, a proxy or mirror is altering the file.`, { summary });
}

/** Size and SHA-256 (when the etag is one) of the finished download; on a mismatch nothing is kept. */
async function verifyDownload(call: Call, meta: FileMetadata, incomplete: string): Promise<void> {
  const size = await sizeOnDisk(incomplete);
  if (meta.size !== null && size !== meta.size) {
    await refuse(call, incomplete, `The download of ${call.what} has ${size} bytes, but the Hub announced ${meta.size}.`, `size mismatch for ${call.filename} (${size} ≠ ${meta.size})`);
  }
  if (!SHA256_HEX.test(meta.etag)) return;
  const sha256 = await sha256File(incomplete);
  if (sha256 !== meta.etag) {
    await refuse(call, incomplete, `Checksum mismatch for ${call.what}: the downloaded ${size} bytes have SHA-256 ${sha256}, but the Hub announced ${meta.etag}.`, `checksum mismatch for ${call.filename}`);
  }
}

/** Downloads into blobs/<etag>.incomplete (resuming), verifies, renames to blobs/<etag>. */
async function downloadBlob(call: Call, meta: FileMetadata): Promise<void> {
  const blob = call.paths.blob(meta.etag);
  const incomplete = `${blob}.incomplete`;
  try {
    await mkdir(call.paths.blobsDir, { recursive: true });
  } catch (error) {
    throw fileSystemError(call, call.paths.blobsDir, error);
  }
  const already = await sizeOnDisk(incomplete);
  if (already > 0) call.log(`Resuming the download of ${call.what} from byte ${already} (${basename(incomplete)}).`);
  let failures = 0;
  let restarted = false;
  for (;;) {
    const attempt = await attemptDownload(call, meta, incomplete);
    if (attempt.kind === "complete") break;
    if (attempt.kind === "restart") {
      if (restarted) throw new HubError("http", `Could not download ${call.what}: ${attempt.reason}, again after starting over. Run again later.`, { summary: attempt.reason });
      restarted = true;
      call.log(`${attempt.reason}: downloading ${call.filename} again from the start.`);
      await rm(incomplete, { force: true });
      continue;
    }
    failures++;
    const onDisk = await sizeOnDisk(incomplete);
    if (failures > call.retries) {
      throw new HubError(
        "interrupted",
        `The download of ${call.what} was interrupted: ${attempt.reason}. ${onDisk} bytes${meta.size === null ? "" : ` of ${meta.size}`} are kept in ${incomplete}; ` +
          "run again to continue from there (huggingface_hub before 1.0 resumes from it too).",
        { summary: `download interrupted: ${attempt.reason}`, cause: attempt.cause },
      );
    }
    call.log(`${attempt.reason}. Resuming from byte ${onDisk} in ${call.retryDelayMs / 1000} s (retry ${failures} of ${call.retries}).`);
    await sleep(call.retryDelayMs);
  }
  await verifyDownload(call, meta, incomplete);
  try {
    await rename(incomplete, blob);
  } catch (error) {
    throw fileSystemError(call, blob, error);
  }
}

/** Downloads of one blob in this process run one at a time (no cross-process lock: see the header). */
const blobLocks = new Map<string, Promise<unknown>>();

async function withBlobLock<T>(blob: string, task: () => Promise<T>): Promise<T> {
  const before = blobLocks.get(blob) ?? Promise.resolve();
  const run = before.then(task, task);
  const settled = run.catch(() => undefined);
  blobLocks.set(blob, settled);
  try {
    return await run;
  } finally {
    if (blobLocks.get(blob) === settled) blobLocks.delete(blob);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// hf_hub_download

/**
 * Returns the cached file of `repo`/`filename` at `revision`, downloading it (into huggingface_hub's cache) when it
 * is not cached. Throws a HubError whose `kind` says what failed and whose message says what to do.
 */
export async function downloadHubFile(options: HubDownloadOptions = {}): Promise<HubFile> {
  const call = await prepareCall(options);
  const cached = await findCached(call);
  const offline = call.settings.offlineVar;
  if (cached !== undefined && (offline !== undefined || options.checkForUpdates !== true || COMMIT_HASH.test(call.revision))) {
    const notice = offline === undefined ? undefined : `${offline} is set: using the cached ${call.what}, commit ${cached.commit}.`;
    return cachedResult(call, cached, notice);
  }
  if (offline !== undefined) throw offlineModeError(call);
  let meta: FileMetadata;
  try {
    meta = await fetchMetadata(call);
  } catch (error) {
    if (cached !== undefined && error instanceof HubError && CACHE_FALLBACK.has(error.kind)) {
      return cachedResult(call, cached, `Could not check the Hub for a newer ${call.what} (${error.summary}): using the cached commit ${cached.commit}.`);
    }
    throw error;
  }
  const pointer = call.paths.pointer(meta.commit);
  if (await isFile(pointer)) {
    await writeRef(call, meta.commit).catch((error: unknown) => {
      throw fileSystemError(call, call.paths.ref, error);
    });
    return cachedResult(call, { commit: meta.commit, pointer }, undefined);
  }
  const blob = call.paths.blob(meta.etag);
  const fromCache = await isFile(blob);
  if (!fromCache) await withBlobLock(blob, async () => ((await isFile(blob)) ? undefined : downloadBlob(call, meta)));
  await publish(call, meta);
  if (fromCache) return cachedResult(call, { commit: meta.commit, pointer }, undefined);
  return { path: pointer, revision: meta.commit, sha256: SHA256_HEX.test(meta.etag) ? meta.etag : await sha256File(pointer), fromCache: false, repo: call.repo, filename: call.filename };
}

// ---------------------------------------------------------------------------------------------------------------
// finetune.weights

/** What `finetune.weights` asks for: the Hub's ImageNet weights (required or if possible), random init, or a file. */
export type WeightsPlan = { kind: "hub"; mode: "auto" | "imagenet" } | { kind: "random" } | { kind: "file"; path: string };

/**
 * Reads `finetune.weights`: "auto" (ImageNet weights from the Hub or its cache, else random initialisation),
 * "imagenet" (the Hub's weights, or an error), "random" or "" (random initialisation), anything else a path to a
 * .safetensors file (write "./auto" for a file named auto). Keywords are case-insensitive. Pure: no I/O.
 */
export function resolveWeightsSpec(spec: string | undefined): WeightsPlan {
  const value = (spec ?? "").trim();
  const keyword = value.toLowerCase();
  if (keyword === "auto" || keyword === "imagenet") return { kind: "hub", mode: keyword };
  if (keyword === "random" || keyword === "") return { kind: "random" };
  return { kind: "file", path: value };
}

export interface ImagenetWeightsOptions extends HubDownloadOptions {
  /** "auto": random initialisation when the Hub cannot be used and nothing is cached; "imagenet": throw instead. */
  mode: "auto" | "imagenet";
}

export type ImagenetWeights = { kind: "hub"; file: HubFile } | { kind: "random"; why: string };

/**
 * ResNet18's ImageNet weights (timm/resnet18.tv_in1k, model.safetensors) from the cache or the Hub. With mode
 * "auto", a Hub that cannot be used (offline mode, no network, server trouble) and no cached copy give
 * `{ kind: "random", why }`; every other failure (bad token, not found, TLS, checksum, disk) is thrown, as is every
 * failure with mode "imagenet". `revision` (finetune.weightsRevision) pins a branch, tag or 40-hex commit.
 */
export async function loadImagenetWeights(options: ImagenetWeightsOptions): Promise<ImagenetWeights> {
  try {
    return { kind: "hub", file: await downloadHubFile(options) };
  } catch (error) {
    if (options.mode !== "auto" || !isHubUnavailable(error)) throw error;
    const log = options.log ?? ((line: string) => console.log(line));
    log(`finetune.weights is "auto" and the ImageNet weights are unavailable (${error.summary}): starting from random initialisation.`);
    return { kind: "random", why: error.summary };
  }
}
