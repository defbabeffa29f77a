// Downloads a Kaggle dataset archive (CelebA: jessicali9530/celeba-dataset, 1.33 GB) the way `kaggle datasets
// download -d` does, through Kaggle's public API:
//
//   GET {KAGGLE_API_ENDPOINT or https://www.kaggle.com}/api/v1/datasets/download/{owner}/{dataset}   (HTTP Basic)
//     → 302 to a signed, short-lived link on another host (storage.googleapis.com) → the zip.
//
// - The Authorization header goes to the API's own origin only, never to the host a redirect leads to.
// - The archive streams to `<name>.zip.part` (never held in memory), with a progress bar (bytes, rate, ETA), and is
//   renamed to `<name>.zip` only once its size matches what the server announced. A finished archive is not
//   downloaded again.
// - An interrupted transfer resumes with an HTTP Range request (asking the API for a fresh link each time, since
//   the old one may have expired); `<name>.zip.part.json` remembers the size and ETag, so a resume never splices
//   two versions of the archive (If-Range). A server that answers a Range request with the whole file (200) is
//   written from the start again.
// - Every failure is a KaggleError with a `kind` and a message that says what to do; the credentials appear in
//   none of them, nor in the log, the progress line or any file written.
//
// This module names things and runs the attempts; one attempt (the request, the .part file and its record,
// statuses, the progress bar) is lib/data/kaggle-transfer. Tested in test/kaggle-download.test.ts.

import { mkdirSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { basicAuthorization, credentialsHelp, KaggleError, kaggleJsonPath, resolveKaggleCredentials, tildePath, type KaggleCredentials } from "./kaggle-credentials";
import { formatBytes } from "../util/disk";
import { attemptDownload, discardPart, finishPart, networkError, readPartRecord, type DownloadProgress, type Transfer } from "./kaggle-transfer";
import type { ProgressOptions } from "../display/progress";
import { asError, errorCode, sizeOnDisk, sleep } from "../util/http-download";

export { KaggleError, resolveKaggleCredentials, type KaggleCredentials, type KaggleErrorKind } from "./kaggle-credentials";
export { byteUnit, parseContentRange, type DownloadProgress } from "./kaggle-transfer";

/** The dataset of the post. */
export const CELEBA_DATASET = "jessicali9530/celeba-dataset";
/** Kaggle's site, the default of KAGGLE_API_ENDPOINT (as in the Kaggle CLI and kagglehub). */
export const DEFAULT_KAGGLE_ENDPOINT = "https://www.kaggle.com";

// ---------------------------------------------------------------------------------------------------------------
// Names and URLs

/** `owner/name` of a Kaggle dataset, checked. */
export function parseDataset(dataset: string): { owner: string; name: string } {
  const match = /^([A-Za-z0-9][A-Za-z0-9_.-]*)\/([A-Za-z0-9][A-Za-z0-9_.-]*)$/.exec(dataset);
  if (match === null) throw new Error(`"${dataset}" is not a Kaggle dataset: expected owner/name, like ${CELEBA_DATASET}`);
  return { owner: match[1], name: match[2] };
}

/** The dataset's page on Kaggle (where its terms are accepted). */
export function kaggleDatasetPage(dataset: string): string {
  const { owner, name } = parseDataset(dataset);
  return `${DEFAULT_KAGGLE_ENDPOINT}/datasets/${owner}/${name}`;
}

/**
 * The API's base URL: KAGGLE_API_ENDPOINT (e.g. `http://localhost:8080`) or https://www.kaggle.com, with `/api/v1`
 * appended when absent, without a trailing slash.
 */
export function kaggleApiBase(env: NodeJS.ProcessEnv = process.env): string {
  const configured = (env.KAGGLE_API_ENDPOINT ?? "").trim();
  const raw = configured === "" ? DEFAULT_KAGGLE_ENDPOINT : configured;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw badEndpoint(raw, "it is not a URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw badEndpoint(raw, "it is not an http(s) URL");
  if (url.username !== "" || url.password !== "") throw badEndpoint(raw, "it must not carry a user name or password");
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.origin}${path.endsWith("/api/v1") ? path : `${path}/api/v1`}`;
}

function badEndpoint(raw: string, problem: string): KaggleError {
  // A value with "@" may carry credentials: not quoted.
  const shown = raw.includes("@") ? "" : ` ("${raw}")`;
  return new KaggleError("bad-endpoint", `KAGGLE_API_ENDPOINT${shown} is not usable: ${problem}. Set it like http://localhost:8080 or unset it to use ${DEFAULT_KAGGLE_ENDPOINT}.`);
}

/** `{apiBase}/datasets/download/{owner}/{name}`. */
export function datasetDownloadUrl(apiBase: string, dataset: string): string {
  const { owner, name } = parseDataset(dataset);
  return `${apiBase}/datasets/download/${encodeURIComponent(owner)}/${encodeURIComponent(name)}`;
}

/** Where the archive of `dataset` is saved in `destDir`: `<name>.zip`, as the Kaggle CLI names it. */
export function kaggleArchivePath(destDir: string, dataset: string = CELEBA_DATASET): string {
  return join(resolve(destDir), `${parseDataset(dataset).name}.zip`);
}

// ---------------------------------------------------------------------------------------------------------------
// The download

export interface KaggleDownloadOptions {
  /** `owner/name` (default: CelebA, jessicali9530/celeba-dataset). */
  dataset?: string;
  /** Folder of the archive (`<name>.zip`), created when missing. */
  destDir: string;
  /** Where credentials and KAGGLE_API_ENDPOINT come from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Home folder for ~/.kaggle/kaggle.json (default os.homedir()). */
  home?: string;
  /** Called for every chunk written. */
  onProgress?: (progress: DownloadProgress) => void;
  /** The progress bar's options (mode, stream, …), or false for none. Default: a bar (in place in a notebook). */
  progress?: Omit<ProgressOptions, "total" | "desc" | "unit"> | false;
  /** Milliseconds without a connection or data before the transfer counts as interrupted (default 30 000). */
  fetchTimeoutMs?: number;
  /** Automatic resumes after a network failure within this call (default 3). */
  retries?: number;
  /** Pause before each automatic resume (default 2000 ms). */
  retryDelayMs?: number;
  /** Redirects followed from the API to the archive (default 10). */
  maxRedirects?: number;
  /** Status lines (resuming, skipping, retrying); default console.log. Never given credentials. */
  log?: (line: string) => void;
}

export interface KaggleDownloadResult {
  /** The archive (`<destDir>/<name>.zip`). */
  path: string;
  /** Its size. */
  bytes: number;
  /** Whether the transfer that completed it continued a partial download (HTTP Range) rather than starting at 0. */
  resumed: boolean;
  /** Whether it was already complete, so nothing was downloaded. */
  skipped: boolean;
}

/** The size of a completed archive at `path`, or undefined when there is none. */
function completedArchiveSize(path: string): number | undefined {
  try {
    const info = statSync(path);
    return info.isFile() && info.size > 0 ? info.size : undefined;
  } catch {
    return undefined;
  }
}

function describeSource(credentials: KaggleCredentials, home: string | undefined): string {
  if (credentials.source === "environment") return "the environment's KAGGLE_USERNAME/KAGGLE_KEY";
  return credentials.file === undefined ? "kaggle.json" : tildePath(credentials.file, home);
}

function createTransfer(options: KaggleDownloadOptions, dataset: string, credentials: KaggleCredentials): Transfer {
  const env = options.env ?? process.env;
  const archive = kaggleArchivePath(options.destDir, dataset);
  const apiUrl = new URL(datasetDownloadUrl(kaggleApiBase(env), dataset));
  return {
    dataset,
    destDir: dirname(archive),
    show: (path: string) => tildePath(path, options.home),
    archive,
    part: `${archive}.part`,
    meta: `${archive}.part.json`,
    apiUrl,
    apiOrigin: apiUrl.origin,
    authorization: basicAuthorization(credentials),
    credentialsFrom: describeSource(credentials, options.home),
    howToSetCredentials: credentialsHelp(tildePath(kaggleJsonPath(env, options.home), options.home)),
    endpointConfigured: (env.KAGGLE_API_ENDPOINT ?? "").trim() !== "",
    datasetPage: kaggleDatasetPage(dataset),
    timeoutMs: options.fetchTimeoutMs ?? 30_000,
    maxRedirects: options.maxRedirects ?? 10,
    log: options.log ?? ((line: string) => console.log(line)),
    progress: options.progress ?? {},
    onProgress: options.onProgress,
  };
}

/** Attempts until complete: restarts from 0 at most once, resumes after network failures up to `retries` times. */
async function runAttempts(t: Transfer, retries: number, retryDelayMs: number): Promise<KaggleDownloadResult> {
  let failures = 0;
  let restarted = false;
  for (;;) {
    const outcome = await attemptDownload(t);
    if (outcome.kind === "complete") {
      const bytes = await finishPart(t);
      t.log(`Downloaded ${t.dataset}: ${basename(t.archive)}, ${formatBytes(bytes)} (${bytes} bytes), in ${t.show(t.destDir)}.`);
      return { path: t.archive, bytes, resumed: outcome.resumed, skipped: false };
    }
    if (outcome.kind === "restart") {
      if (restarted) throw new KaggleError("size-mismatch", `${outcome.reason}, again after starting over: giving up. Run again later.`);
      restarted = true;
      t.log(`${outcome.reason}: starting the download of ${t.dataset} again from 0.`);
      await discardPart(t);
      continue;
    }
    const onDisk = await sizeOnDisk(t.part);
    const record = await readPartRecord(t);
    const total = record === undefined || record.total === null ? undefined : record.total;
    failures++;
    if (failures > retries) throw networkError(t, outcome, onDisk, total);
    t.log(`${outcome.reason}. Resuming from ${onDisk} bytes in ${retryDelayMs / 1000} s (retry ${failures} of ${retries}).`);
    await sleep(retryDelayMs);
  }
}

/**
 * Downloads a Kaggle dataset's archive into `destDir` (default dataset: CelebA), like
 * `kaggle datasets download -d jessicali9530/celeba-dataset -p destDir`, resuming an interrupted download and
 * skipping a complete one. Throws a KaggleError (see its `kind`) with a message that says what to do.
 */
export async function downloadKaggleDataset(options: KaggleDownloadOptions): Promise<KaggleDownloadResult> {
  const dataset = options.dataset ?? CELEBA_DATASET;
  const archive = kaggleArchivePath(options.destDir, dataset);
  const log = options.log ?? ((line: string) => console.log(line));
  const existing = completedArchiveSize(archive);
  if (existing !== undefined) {
    log(`${basename(archive)} is already downloaded (${formatBytes(existing)}) in ${tildePath(dirname(archive), options.home)}: nothing to do.`);
    return { path: archive, bytes: existing, resumed: false, skipped: true };
  }
  const credentials = resolveKaggleCredentials(options.env ?? process.env, options.home);
  if (credentials.warning !== undefined) log(credentials.warning);
  const t = createTransfer({ ...options, log }, dataset, credentials);
  try {
    mkdirSync(t.destDir, { recursive: true });
  } catch (error) {
    throw new KaggleError("filesystem", `Could not create the folder ${t.show(t.destDir)}: ${errorCode(error) ?? asError(error).message}.`, { file: t.destDir, cause: asError(error) });
  }
  const onDisk = await sizeOnDisk(t.part);
  if (onDisk > 0) log(`Found ${formatBytes(onDisk)} of an earlier download of ${t.dataset} (${basename(t.part)}): resuming.`);
  return runAttempts(t, options.retries ?? 3, options.retryDelayMs ?? 2000);
}
