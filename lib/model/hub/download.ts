// The download itself (huggingface_hub's http_get): GET the bytes into blobs/<etag>.incomplete, continuing an
// earlier partial file with `Range: bytes=N-` (a 200 reply starts it over), resuming after a broken connection up
// to `retries` times, then checking size and SHA-256 before renaming it to blobs/<etag>. Two calls in this process
// for the same blob wait for each other.

import { mkdir, open, rename, rm, type FileHandle } from "node:fs/promises";
import type { IncomingMessage, OutgoingHttpHeaders } from "node:http";
import { basename } from "node:path";
import { asError, availableBytes, describeNetworkError, errorCode, header, receiveBody, REDIRECT_STATUSES, sendRequest, sizeOnDisk, sleep } from "../../util/http-download";
import { HubError } from "./errors";
import { SHA256_HEX } from "./cache-layout";
import { diskFullError, fileSystemError, isTlsError, statusError, unreachableError, type Call } from "./call";
import { sha256File } from "./cache";
import { headersFor, hubRedirect, MAX_REDIRECTS, type FileMetadata } from "./metadata";

/** Fails early when the file system says the rest cannot fit. */
async function checkFreeSpace(call: Call, incomplete: string, onDisk: number, total: number | null): Promise<void> {
  if (total === null) return;
  const available = await availableBytes(call.paths.blobsDir);
  if (available !== undefined && available < total - onDisk) throw diskFullError(call, incomplete, onDisk, total);
}

type Attempt = { kind: "complete" } | { kind: "restart"; reason: string } | { kind: "interrupted"; reason: string; cause?: Error };

/** GET `url` with `Range` from `offset`, following redirects; the token only to the endpoint's origin. */
async function requestBytes(call: Call, start: URL, offset: number): Promise<{ response: IncomingMessage; url: URL }> {
  let url = start;
  for (let hops = 0; ; hops++) {
    const extra: OutgoingHttpHeaders = offset > 0 ? { range: `bytes=${offset}-` } : {};
    const response = await sendRequest(url, "GET", headersFor(call, url, extra), call.connectTimeoutMs, call.downloadTimeoutMs);
    const status = response.statusCode ?? 0;
    if (!REDIRECT_STATUSES.has(status)) return { response, url };
    response.resume();
    if (hops >= MAX_REDIRECTS) throw new HubError("http", `More than ${MAX_REDIRECTS} redirects while downloading ${call.what}, starting at ${start.host}.`);
    url = hubRedirect(call, header(response.headers, "location"), url, status);
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
  let done = start;
  const written = (bytes: number): void => {
    done += bytes;
    call.onProgress?.(done, total);
  };
  written(0);
  try {
    broken = await receiveBody(response, file, written);
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
export async function downloadBlob(call: Call, meta: FileMetadata): Promise<void> {
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

export async function withBlobLock<T>(blob: string, task: () => Promise<T>): Promise<T> {
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
