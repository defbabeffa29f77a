// One attempt at Kaggle's archive (lib/data/kaggle-download runs the attempts): ask the API for a fresh signed
// link, follow it, and continue the `<name>.zip.part` file from what is on disk (HTTP Range, with If-Range on the
// ETag that `<name>.zip.part.json` remembers), with a progress bar over the bytes. Statuses that retrying cannot
// fix, a full disk and a file that is not an archive are KaggleErrors that say what to do; a broken connection is
// an outcome the caller may resume. The Authorization header goes to the API's own origin only.

import { formatBytes } from "../util/disk";
import { open, readFile, rename, rm, stat, type FileHandle } from "node:fs/promises";
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from "node:http";
import { basename } from "node:path";
import { KaggleError } from "./kaggle-credentials";
import { ProgressBar, type ProgressOptions } from "../display/progress";
import { writeFileAtomic } from "../util/atomic-write";
import {
  asError,
  availableBytes,
  describeNetworkError,
  errorCode,
  header,
  receiveBody,
  redirectTarget,
  REDIRECT_STATUSES,
  sendRequest,
  sizeOnDisk,
} from "../util/http-download";

// ---------------------------------------------------------------------------------------------------------------
// Small formatting and parsing helpers

/** A `Content-Range: bytes start-end/total` header (total undefined for `*`); undefined when malformed. */
export function parseContentRange(value: string | undefined): { start: number; end: number; total: number | undefined } | undefined {
  const match = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec((value ?? "").trim());
  if (match === null) return undefined;
  const start = Number(match[1]);
  const end = Number(match[2]);
  const total = match[3] === "*" ? undefined : Number(match[3]);
  if (end < start || (total !== undefined && end >= total)) return undefined;
  return { start, end, total };
}

/** The complete size from an unsatisfied range's `Content-Range: bytes *\/total`. */
function unsatisfiedRangeTotal(value: string | undefined): number | undefined {
  const match = /^bytes\s+\*\/(\d+)$/i.exec((value ?? "").trim());
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

/** What every request of one download shares. */
export interface Transfer {
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
  /** The dataset's page on Kaggle (where its terms are accepted), for messages. */
  readonly datasetPage: string;
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

/** Follows redirects from the API to the archive (at most t.maxRedirects); returns the first non-redirect response. */
async function requestArchive(t: Transfer, offset: number, ifRange: string | undefined): Promise<{ response: IncomingMessage; url: URL }> {
  let url = t.apiUrl;
  for (let hops = 0; ; hops++) {
    let response: IncomingMessage;
    try {
      response = await sendRequest(url, "GET", requestHeaders(t, url, offset, ifRange), t.timeoutMs, t.timeoutMs);
    } catch (error) {
      throw new UnreachableError(url.host, asError(error));
    }
    if (!REDIRECT_STATUSES.has(response.statusCode ?? 0)) return { response, url };
    response.resume();
    const next = redirectTarget(header(response.headers, "location"), url);
    if ("problem" in next) throw new KaggleError("http", `${url.host} answered HTTP ${response.statusCode}: it ${next.problem}.`, { status: response.statusCode });
    if (hops >= t.maxRedirects) throw new KaggleError("http", `More than ${t.maxRedirects} redirects, starting at ${t.apiUrl.host}: giving up.`);
    url = next;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Statuses

/** What one attempt came to. */
export type AttemptOutcome =
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
    const page = t.datasetPage;
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
      `Kaggle has no dataset ${t.dataset} (HTTP 404 from ${url.host}). Check the name: owner/dataset as in ${t.datasetPage}.${endpoint}`,
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

export interface PartRecord {
  dataset: string;
  total: number | null;
  etag: string | null;
}

export async function readPartRecord(t: Transfer): Promise<PartRecord | undefined> {
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

export async function discardPart(t: Transfer): Promise<void> {
  await rm(t.part, { force: true });
  await rm(t.meta, { force: true });
}

/** Makes the finished (already synced) .part the archive, and removes its record. */
export async function finishPart(t: Transfer): Promise<number> {
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

export function networkError(t: Transfer, outcome: { failure: "network" | "http"; reason: string; status?: number; cause?: Error }, onDisk: number, total: number | undefined): KaggleError {
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

/** Fails early when the file system says the rest of the archive cannot fit. */
async function checkFreeSpace(t: Transfer, onDisk: number, total: number | undefined): Promise<void> {
  if (total === undefined) return;
  const available = await availableBytes(t.destDir);
  if (available !== undefined && available < total - onDisk) throw diskFullError(t, onDisk, total);
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
  let broken: Error | undefined;
  try {
    broken = await receiveBody(response, file, (bytes) => meter.add(bytes));
    if (broken === undefined) await file.sync();
  } catch (error) {
    meter.close(false);
    await file.close().catch(() => undefined);
    throw fileError(t, t.part, asError(error), await sizeOnDisk(t.part), plan.total);
  }
  await file.close();
  const onDisk = await sizeOnDisk(t.part);
  meter.close(broken === undefined && (plan.total === undefined || onDisk === plan.total));
  if (broken !== undefined) {
    return { kind: "interrupted", failure: "network", reason: `the connection broke after ${onDisk} bytes: ${describeNetworkError(broken)}`, cause: broken };
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

export async function attemptDownload(t: Transfer): Promise<AttemptOutcome> {
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
