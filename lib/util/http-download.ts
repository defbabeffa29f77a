// What both resumable downloaders share (Kaggle's archive, lib/data/kaggle-download; the Hub's files,
// lib/model/hub-weights): one HTTP request with a connect and an idle timeout, redirect targets, streaming a body
// into a file, the size and free space on disk, and Node's errors in words. Each downloader keeps its own protocol
// (resume records, statuses, messages); tested through test/kaggle-download.test.ts and test/hub-weights.test.ts.

import { stat, statfs, type FileHandle } from "node:fs/promises";
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";

export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/** The `code` of a Node error ("ENOSPC", "ECONNRESET" …), if it has one. */
export function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null && "code" in error && typeof error.code === "string" ? error.code : undefined;
}

export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** "getaddrinfo ENOTFOUND host", "aborted (ECONNRESET)" … (Node's messages name hosts and ports, never headers). */
export function describeNetworkError(error: Error): string {
  const code = errorCode(error);
  return code === undefined || error.message.includes(code) ? error.message : `${error.message} (${code})`;
}

/**
 * One request, not following redirects. DNS + connect must finish within connectMs (a fresh connection each time,
 * agent: false, closed after the response: nothing lingers in a notebook kernel); after that, idleMs bounds every
 * pause in the response. Network failures reject (with Node's error).
 */
export function sendRequest(url: URL, method: "HEAD" | "GET", headers: OutgoingHttpHeaders, connectMs: number, idleMs: number): Promise<IncomingMessage> {
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

/** A response header's (first) value, or undefined when absent or empty. */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  const text = Array.isArray(value) ? value[0] : value;
  return text === undefined || text === "" ? undefined : text;
}

/** Where a redirect's Location leads (relative ones resolved), or what is wrong with it ("… to a ftp: URL …"). */
export function redirectTarget(location: string | undefined, from: URL): URL | { problem: string } {
  if (location === undefined || location === "") return { problem: "redirected without a Location header" };
  let next: URL;
  try {
    next = new URL(location, from);
  } catch {
    return { problem: "redirected to something that is not a URL" };
  }
  if (next.protocol !== "http:" && next.protocol !== "https:") return { problem: `redirected to a ${next.protocol} URL, which cannot be downloaded` };
  return next;
}

/** Bytes in a file (0 when there is none). */
export async function sizeOnDisk(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** Bytes free for this user in a folder's file system, or undefined when unknown (0 means unknown on some). */
export async function availableBytes(folder: string): Promise<number | undefined> {
  try {
    const info = await statfs(folder);
    const available = Number(info.bavail) * Number(info.bsize);
    return available > 0 ? available : undefined;
  } catch {
    return undefined;
  }
}

async function writeAll(file: FileHandle, chunk: Buffer): Promise<void> {
  for (let offset = 0; offset < chunk.length; ) {
    const { bytesWritten } = await file.write(chunk, offset, chunk.length - offset);
    if (bytesWritten === 0) throw Object.assign(new Error("no bytes could be written"), { code: "EIO" });
    offset += bytesWritten;
  }
}

/**
 * Copies a response body into the file chunk by chunk, calling `written` after each (what has been counted is on
 * disk). A broken connection is returned (the caller decides about resuming); a failed write is thrown.
 */
export async function receiveBody(body: IncomingMessage, file: FileHandle, written: (bytes: number) => void): Promise<Error | undefined> {
  const chunks: AsyncIterator<Buffer> = body[Symbol.asyncIterator]();
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
      body.destroy();
      throw error;
    }
    written(next.value.length);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
