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

import { mkdirSync, statSync } from "node:fs";
import { open, readFile, rename, rm, stat, statfs, type FileHandle } from "node:fs/promises";
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { basename, dirname, join, resolve } from "node:path";
import { basicAuthorization, credentialsHelp, KaggleError, kaggleJsonPath, resolveKaggleCredentials, tildePath, type KaggleCredentials } from "./kaggle-credentials";
import { ProgressBar, type ProgressOptions } from "../display/progress";
import { writeFileAtomic } from "../util/atomic-write";

export { KaggleError, resolveKaggleCredentials, type KaggleCredentials, type KaggleErrorKind } from "./kaggle-credentials";

/** The dataset of the post. */
export const CELEBA_DATASET = "jessicali9530/celeba-dataset";
/** Kaggle's site, the default of KAGGLE_API_ENDPOINT (as in the Kaggle CLI and kagglehub). */
export const DEFAULT_KAGGLE_ENDPOINT = "https://www.kaggle.com";

const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

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
// Small formatting and parsing helpers

/** A byte count for people, in SI units like the Kaggle CLI's tqdm: "1.33 GB". */
export function formatBytes(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}

/** A `Content-Range: bytes start-end/total` header (total undefined for `*`); undefined when malformed. */
export function parseContentRange(header: string | undefined): { start: number; end: number; total: number | undefined } | undefined {
  const match = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec((header ?? "").trim());
  if (match === null) return undefined;
  const start = Number(match[1]);
  const end = Number(match[2]);
  const total = match[3] === "*" ? undefined : Number(match[3]);
  if (end < start || (total !== undefined && end >= total)) return undefined;
  return { start, end, total };
}

/** The complete size from an unsatisfied range's `Content-Range: bytes *\/total`. */
function unsatisfiedRangeTotal(header: string | undefined): number | undefined {
  const match = /^bytes\s+\*\/(\d+)$/i.exec((header ?? "").trim());
  return match === null ? undefined : Number(match[1]);
}

function contentLength(headers: IncomingHttpHeaders): number | undefined {
  const value = headers["content-length"];
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** A strong ETag (usable in If-Range), else undefined. */
function strongEtag(headers: IncomingHttpHeaders): string | undefined {
  const etag = headers.etag;
  return etag !== undefined && etag !== "" && !etag.startsWith("W/") ? etag : undefined;
}

function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error && typeof error.code === "string" ? error.code : undefined;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** A Node network error in words: "aborted (ECONNRESET)". Node's messages name hosts and ports, never headers. */
function describeNetworkError(error: Error): string {
  const code = errorCode(error);
  return code === undefined || error.message.includes(code) ? error.message : `${error.message} (${code})`;
}

/** A request that got no response (refused, DNS, reset, timed out), with the host it was for. */
class UnreachableError extends Error {
  constructor(
    readonly host: string,
    readonly failure: Error,
  ) {
    super(`could not reach ${host}: ${describeNetworkError(failure)}`);
  }
}

function percent(part: number, total: number | undefined): string {
  return total === undefined || total === 0 ? "" : ` (${((100 * part) / total).toFixed(1)}%)`;
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP: one GET, then the redirect chain

/** A GET with a socket timeout covering the connection and every pause in the response (idle timeout). */
function httpGet(url: URL, headers: OutgoingHttpHeaders, timeoutMs: number): Promise<IncomingMessage> {
  return new Promise<IncomingMessage>((resolvePromise, reject) => {
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    // agent: false: a fresh connection, closed after the response (nothing lingers in a notebook kernel).
    const request = send(url, { method: "GET", headers, timeout: timeoutMs, agent: false });
    let response: IncomingMessage | undefined;
    request.on("timeout", () => {
      const error = Object.assign(new Error(`timed out after ${timeoutMs / 1000} s without data from ${url.host}`), { code: "ETIMEDOUT" });
      if (response !== undefined) response.destroy(error);
      request.destroy(error);
    });
    request.on("error", reject);
    request.on("response", (res: IncomingMessage) => {
      response = res;
      resolvePromise(res);
    });
    request.end();
  });
}

/** What every request of one download shares. */
interface Transfer {
  readonly dataset: string;
  readonly destDir: string;
  /** A path as messages show it (the home folder as ~). */
  readonly show: (path: string) => string;
  readonly archive: string;
  readonly part: string;
  readonly meta: string;
  readonly apiUrl: URL;
  /** Only requests to this origin carry the Authorization header. */
  readonly apiOrigin: string;
  readonly authorization: string;
  /** Where the credentials came from, in words (never the values). */
  readonly credentialsFrom: string;
  readonly howToSetCredentials: string;
  readonly endpointConfigured: boolean;
  readonly timeoutMs: number;
  readonly maxRedirects: number;
  readonly log: (line: string) => void;
  readonly progress: Omit<ProgressOptions, "total" | "desc" | "unit"> | false;
  readonly onProgress: ((progress: DownloadProgress) => void) | undefined;
}

function requestHeaders(t: Transfer, url: URL, offset: number, ifRange: string | undefined): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { "user-agent": "celeba-sae (node)", accept: "*/*" };
  if (url.origin === t.apiOrigin) headers.authorization = t.authorization;
  if (offset > 0) {
    headers.range = `bytes=${offset}-`;
    if (ifRange !== undefined) headers["if-range"] = ifRange;
  }
  return headers;
}

/** Where a redirect leads (relative Locations resolved); only http(s). */
function redirectTarget(location: string, from: URL): URL {
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    throw new KaggleError("http", `${from.host} redirected to something that is not a URL.`);
  }
  if (next.protocol !== "http:" && next.protocol !== "https:") {
    throw new KaggleError("http", `${from.host} redirected to a ${next.protocol} URL, which cannot be downloaded.`);
  }
  return next;
}

/** Follows redirects from the API to the archive (at most t.maxRedirects); returns the first non-redirect response. */
async function requestArchive(t: Transfer, offset: number, ifRange: string | undefined): Promise<{ response: IncomingMessage; url: URL }> {
  let url = t.apiUrl;
  for (let hops = 0; ; hops++) {
    let response: IncomingMessage;
    try {
      response = await httpGet(url, requestHeaders(t, url, offset, ifRange), t.timeoutMs);
    } catch (error) {
      throw new UnreachableError(url.host, asError(error));
    }
    if (!REDIRECT_STATUSES.has(response.statusCode ?? 0)) return { response, url };
    response.resume();
    const location = response.headers.location;
    if (location === undefined || location === "") {
      throw new KaggleError("http", `${url.host} answered HTTP ${response.statusCode} (a redirect) without a Location header.`, { status: response.statusCode });
    }
    if (hops >= t.maxRedirects) throw new KaggleError("http", `More than ${t.maxRedirects} redirects, starting at ${t.apiUrl.host}: giving up.`);
    url = redirectTarget(location, url);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Statuses

/** What one attempt came to. */
type AttemptOutcome =
  | { kind: "complete"; resumed: boolean }
  | { kind: "interrupted"; failure: "network" | "http"; reason: string; status?: number; cause?: Error }
  | { kind: "restart"; reason: string };

/** The KaggleError for a status that retrying cannot fix, or undefined for statuses that may be retried. */
function statusError(t: Transfer, status: number, url: URL): KaggleError | undefined {
  const fromApi = url.origin === t.apiOrigin;
  if (status === 401 && fromApi) {
    return new KaggleError(
      "unauthorized",
      `Kaggle rejected the credentials from ${t.credentialsFrom} (HTTP 401 from ${url.host}): the username or API key is wrong, ` +
        `or the token has expired or been revoked. Create a new token at kaggle.com → Settings → API → Create New Token. ` +
        t.howToSetCredentials,
      { status },
    );
  }
  if (status === 403 && fromApi) {
    const page = kaggleDatasetPage(t.dataset);
    return new KaggleError(
      "forbidden",
      `Kaggle refused to download ${t.dataset} (HTTP 403 from ${url.host}). Its terms/rules have probably not been accepted ` +
        `yet: open ${page} while signed in with the account of your API key, accept them, and run again. ` +
        `If you have accepted them, the key (from ${t.credentialsFrom}) lacks access to this dataset.`,
      { status },
    );
  }
  if (status === 404 && fromApi) {
    const endpoint = t.endpointConfigured ? ` KAGGLE_API_ENDPOINT is set: check that ${t.apiOrigin} is Kaggle's API.` : "";
    return new KaggleError(
      "not-found",
      `Kaggle has no dataset ${t.dataset} (HTTP 404 from ${url.host}). Check the name: owner/dataset as in ${kaggleDatasetPage(t.dataset)}.${endpoint}`,
      { status },
    );
  }
  if (status === 429 || status >= 500) return undefined;
  if (status !== 200 && status !== 206 && status !== 416) {
    const what = fromApi ? "Kaggle's API" : `The archive host ${url.host}`;
    return new KaggleError("http", `${what} answered HTTP ${status} to the download of ${t.dataset}${fromApi ? "" : ` (reached through ${t.apiUrl.host}'s redirect)`}; run again later.`, { status });
  }
  return undefined;
}

/** A web page or JSON where the archive should be (a login page, an error object) is an error, not a zip. */
function notAnArchive(t: Transfer, response: IncomingMessage, url: URL): KaggleError | undefined {
  const type = (response.headers["content-type"] ?? "").toLowerCase();
  if (!type.startsWith("text/html") && !type.startsWith("application/json")) return undefined;
  return new KaggleError("http", `${url.host} answered with ${type.split(";")[0]} instead of the archive of ${t.dataset}; run again later.`, { status: response.statusCode });
}

// ---------------------------------------------------------------------------------------------------------------
// The .part file and its side record (size and ETag only: never credentials or the signed link)

interface PartRecord {
  dataset: string;
  total: number | null;
  etag: string | null;
}

async function readPartRecord(t: Transfer): Promise<PartRecord | undefined> {
  try {
    const parsed = JSON.parse(await readFile(t.meta, "utf8")) as Partial<PartRecord>;
    if (parsed.dataset !== t.dataset) return undefined;
    return { dataset: t.dataset, total: typeof parsed.total === "number" ? parsed.total : null, etag: typeof parsed.etag === "string" ? parsed.etag : null };
  } catch {
    return undefined;
  }
}

async function writePartRecord(t: Transfer, record: PartRecord): Promise<void> {
  try {
    await writeFileAtomic(t.meta, `${JSON.stringify(record)}\n`);
  } catch (error) {
    throw fileError(t, t.meta, asError(error), await sizeOnDisk(t.part), record.total ?? undefined);
  }
}

/** Bytes in the .part file (0 when there is none). */
async function sizeOnDisk(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function discardPart(t: Transfer): Promise<void> {
  await rm(t.part, { force: true });
  await rm(t.meta, { force: true });
}

/** Makes the finished (already synced) .part the archive, and removes its record. */
async function finishPart(t: Transfer): Promise<number> {
  await rename(t.part, t.archive);
  await rm(t.meta, { force: true });
  return (await stat(t.archive)).size;
}

// ---------------------------------------------------------------------------------------------------------------
// Errors about the disk and the network

/** ENOSPC (or a quota): how much space is needed and where; what was written stays. */
function diskFullError(t: Transfer, onDisk: number, total: number | undefined, cause?: Error): KaggleError {
  const dir = t.show(t.destDir);
  const need = total === undefined ? "" : ` The archive needs ${total} bytes (${formatBytes(total)}) in ${dir}: free at least ${total - onDisk} more bytes (${formatBytes(total - onDisk)}) there`;
  const then = total === undefined ? ` Free space in ${dir}` : "";
  return new KaggleError(
    "disk-full",
    `Disk full: could not write ${t.show(t.part)} after ${onDisk} bytes${total === undefined ? "" : ` of ${total}`}.${need}${then} and run again: ` +
      `the download continues from ${onDisk} bytes (kept in ${basename(t.part)}).`,
    { file: t.part, bytesOnDisk: onDisk, cause },
  );
}

function fileError(t: Transfer, path: string, error: Error, onDisk: number, total: number | undefined): KaggleError {
  const code = errorCode(error);
  if (code === "ENOSPC" || code === "EDQUOT") return diskFullError(t, onDisk, total, error);
  return new KaggleError("filesystem", `Could not write ${t.show(path)}: ${code ?? error.message}. ${onDisk} bytes are kept in ${basename(t.part)}; fix this and run again.`, {
    file: path,
    bytesOnDisk: onDisk,
    cause: error,
  });
}

function networkError(t: Transfer, outcome: { failure: "network" | "http"; reason: string; status?: number; cause?: Error }, onDisk: number, total: number | undefined): KaggleError {
  const resume =
    onDisk > 0
      ? `The download is resumable: ${onDisk} bytes${total === undefined ? "" : ` of ${total}`}${percent(onDisk, total)} are kept in ${t.show(t.part)}; ` +
        `run again and it continues from ${onDisk} bytes.`
      : outcome.failure === "network"
        ? `Nothing was written yet; check the connection${t.endpointConfigured ? " and KAGGLE_API_ENDPOINT" : ""} and run again.`
        : "Nothing was written yet; run again later.";
  const what = outcome.failure === "network" ? "Network failure" : "The server failed";
  return new KaggleError(outcome.failure, `${what} while downloading ${t.dataset}: ${outcome.reason}. ${resume}`, {
    status: outcome.status,
    file: t.part,
    bytesOnDisk: onDisk,
    cause: outcome.cause,
  });
}

/** Fails early when the file system says the rest of the archive cannot fit (0 is "unknown" on some file systems). */
async function checkFreeSpace(t: Transfer, onDisk: number, total: number | undefined): Promise<void> {
  if (total === undefined) return;
  try {
    const fs = await statfs(t.destDir);
    const available = Number(fs.bavail) * Number(fs.bsize);
    if (available > 0 && available < total - onDisk) {
      throw diskFullError(t, onDisk, total);
    }
  } catch (error) {
    if (error instanceof KaggleError) throw error;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Progress

/** Progress of the bytes of the archive, for callers that show it their own way. */
export interface DownloadProgress {
  /** Bytes of the archive on disk so far (including what an earlier attempt left). */
  bytes: number;
  /** The archive's size, when the server said it. */
  total: number | undefined;
  /** Where this attempt started (0 for a fresh download). */
  resumedFrom: number;
}

/** The bar's unit: whole MB (or kB, or bytes for tiny files), so counts and rates read like tqdm's scaled ones. */
export function byteUnit(bytes: number | undefined): { unit: "B" | "kB" | "MB"; scale: number } {
  if (bytes === undefined || bytes >= 10_000_000) return { unit: "MB", scale: 1_000_000 };
  return bytes >= 10_000 ? { unit: "kB", scale: 1000 } : { unit: "B", scale: 1 };
}

/** A progress bar over the bytes this attempt fetches (its rate and ETA are this attempt's), plus onProgress. */
class ByteMeter {
  private readonly bar: ProgressBar | undefined;
  private readonly scale: number;
  private written = 0;
  private shownUnits = 0;

  constructor(
    private readonly t: Transfer,
    private readonly start: number,
    private readonly total: number | undefined,
  ) {
    const remaining = total === undefined ? undefined : total - start;
    const { unit, scale } = byteUnit(remaining);
    this.scale = scale;
    const name = basename(t.archive);
    const desc = start > 0 ? `${name} from ${formatBytes(start)}${percent(start, total)}` : name;
    this.bar = t.progress === false ? undefined : new ProgressBar({ ...t.progress, total: remaining === undefined ? undefined : Math.ceil(remaining / scale), desc, unit });
  }

  add(bytes: number): void {
    this.written += bytes;
    const units = Math.floor(this.written / this.scale);
    if (units > this.shownUnits && this.bar !== undefined) this.bar.update(units - this.shownUnits);
    this.shownUnits = Math.max(this.shownUnits, units);
    if (this.t.onProgress !== undefined) this.t.onProgress({ bytes: this.start + this.written, total: this.total, resumedFrom: this.start });
  }

  /** Ends the bar; a finished transfer shows its last partial unit too. */
  close(finished: boolean): void {
    if (this.bar === undefined) return;
    if (finished && this.bar.total !== undefined && this.bar.n < this.bar.total) this.bar.update(this.bar.total - this.bar.n);
    this.bar.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Receiving the body

async function writeAll(file: FileHandle, chunk: Buffer): Promise<void> {
  for (let offset = 0; offset < chunk.length; ) {
    const { bytesWritten } = await file.write(chunk, offset, chunk.length - offset);
    if (bytesWritten === 0) throw Object.assign(new Error("no bytes could be written"), { code: "EIO" });
    offset += bytesWritten;
  }
}

/**
 * Copies the response into the file chunk by chunk (what has been counted is on disk). A broken connection is
 * returned (the caller decides about resuming); a failed write is thrown.
 */
async function receiveBody(body: IncomingMessage, file: FileHandle, meter: ByteMeter): Promise<{ kind: "ended" } | { kind: "broken"; cause: Error }> {
  const chunks: AsyncIterator<Buffer> = body[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<Buffer>;
    try {
      next = await chunks.next();
    } catch (error) {
      return { kind: "broken", cause: asError(error) };
    }
    if (next.done === true) return { kind: "ended" };
    try {
      await writeAll(file, next.value);
    } catch (error) {
      body.destroy();
      throw error;
    }
    meter.add(next.value.length);
  }
}

/** How the response is written: from 0 (200) or appended (206 at the expected offset); else start over. */
type WritePlan = { kind: "write"; start: number; total: number | undefined } | { kind: "restart"; reason: string };

function planWrite(t: Transfer, response: IncomingMessage, offset: number, record: PartRecord | undefined): WritePlan {
  const length = contentLength(response.headers);
  if (response.statusCode === 200) {
    if (offset > 0) t.log(`${response.headers.server ?? "The server"} sent the whole archive instead of the rest from ${offset} bytes: writing it from the start.`);
    return { kind: "write", start: 0, total: length };
  }
  const range = parseContentRange(response.headers["content-range"]);
  if (range === undefined) return { kind: "restart", reason: "The server answered the resume request without a valid Content-Range" };
  if (range.start !== offset) return { kind: "restart", reason: `The server resumed at byte ${range.start} instead of ${offset}` };
  const total = range.total ?? (length === undefined ? undefined : offset + length);
  const known = record === undefined ? null : record.total;
  if (known !== null && total !== undefined && total !== known) {
    return { kind: "restart", reason: `The archive on the server is now ${total} bytes, not the ${known} of the partial download` };
  }
  const etag = strongEtag(response.headers);
  if (record !== undefined && record.etag !== null && etag !== undefined && etag !== record.etag) {
    return { kind: "restart", reason: "The archive on the server has changed since the partial download" };
  }
  return { kind: "write", start: offset, total };
}

/** Writes the response into the .part file; the outcome says whether it is complete. */
async function writeResponse(t: Transfer, response: IncomingMessage, plan: { start: number; total: number | undefined }, newRecord: boolean): Promise<AttemptOutcome> {
  let file: FileHandle;
  try {
    await checkFreeSpace(t, plan.start, plan.total);
    if (newRecord) await writePartRecord(t, { dataset: t.dataset, total: plan.total ?? null, etag: strongEtag(response.headers) ?? null });
    try {
      file = await open(t.part, plan.start === 0 ? "w" : "a");
    } catch (error) {
      throw fileError(t, t.part, asError(error), plan.start, plan.total);
    }
  } catch (error) {
    response.destroy();
    throw error;
  }
  const meter = new ByteMeter(t, plan.start, plan.total);
  let result: { kind: "ended" } | { kind: "broken"; cause: Error };
  try {
    result = await receiveBody(response, file, meter);
    if (result.kind === "ended") await file.sync();
  } catch (error) {
    meter.close(false);
    await file.close().catch(() => undefined);
    throw fileError(t, t.part, asError(error), await sizeOnDisk(t.part), plan.total);
  }
  await file.close();
  const onDisk = await sizeOnDisk(t.part);
  meter.close(result.kind === "ended" && (plan.total === undefined || onDisk === plan.total));
  if (result.kind === "broken") {
    return { kind: "interrupted", failure: "network", reason: `the connection broke after ${onDisk} bytes: ${describeNetworkError(result.cause)}`, cause: result.cause };
  }
  if (plan.total !== undefined && onDisk < plan.total) {
    return { kind: "interrupted", failure: "network", reason: `the connection ended after ${onDisk} of ${plan.total} bytes` };
  }
  if (plan.total !== undefined && onDisk > plan.total) {
    await discardPart(t);
    throw new KaggleError("size-mismatch", `The server sent ${onDisk} bytes of ${t.dataset} but announced ${plan.total}; the partial file was removed. Run again.`);
  }
  return { kind: "complete", resumed: plan.start > 0 };
}

// ---------------------------------------------------------------------------------------------------------------
// One attempt: ask the API (fresh link), continue from what is on disk

async function attemptDownload(t: Transfer): Promise<AttemptOutcome> {
  const record = await readPartRecord(t);
  const offset = await sizeOnDisk(t.part);
  const known = record === undefined ? null : record.total;
  if (known !== null && offset > 0 && offset === known) return { kind: "complete", resumed: true };
  if (known !== null && offset > known) return { kind: "restart", reason: `${basename(t.part)} is larger than the archive` };
  let exchange: { response: IncomingMessage; url: URL };
  try {
    exchange = await requestArchive(t, offset, record === undefined || record.etag === null ? undefined : record.etag);
  } catch (error) {
    if (error instanceof UnreachableError) return { kind: "interrupted", failure: "network", reason: error.message, cause: error.failure };
    throw error;
  }
  const { response, url } = exchange;
  const status = response.statusCode ?? 0;
  const fatal = statusError(t, status, url) ?? (status === 200 || status === 206 ? notAnArchive(t, response, url) : undefined);
  if (fatal !== undefined) {
    response.resume();
    throw fatal;
  }
  if (status === 429 || status >= 500) {
    response.resume();
    return { kind: "interrupted", failure: "http", status, reason: `${url.host} answered HTTP ${status}` };
  }
  if (status === 416) {
    response.resume();
    if (offset > 0 && unsatisfiedRangeTotal(response.headers["content-range"]) === offset) return { kind: "complete", resumed: true };
    return { kind: "restart", reason: `The server cannot continue from ${offset} bytes (HTTP 416)` };
  }
  const plan = planWrite(t, response, offset, record);
  if (plan.kind === "restart") {
    response.destroy();
    return plan;
  }
  return writeResponse(t, response, plan, plan.start === 0 || record === undefined);
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
    timeoutMs: options.fetchTimeoutMs ?? 30_000,
    maxRedirects: options.maxRedirects ?? 10,
    log: options.log ?? ((line: string) => console.log(line)),
    progress: options.progress ?? {},
    onProgress: options.onProgress,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
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
