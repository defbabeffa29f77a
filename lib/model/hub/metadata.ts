// Asking the Hub about a file (huggingface_hub's get_hf_file_metadata): a HEAD of its resolve URL, following
// redirects only within the Hub's origin (a renamed repo), with the token only for that origin. The answer names
// the commit (X-Repo-Commit), the blob (X-Linked-Etag, else ETag) and its size, and where to GET the bytes.

import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from "node:http";
import { asError, header, redirectTarget, REDIRECT_STATUSES, sendRequest } from "../../util/http-download";
import { HubError } from "./errors";
import { hubFileUrl, isSafeSegment } from "./cache-layout";
import { notTheHub, statusError, unreachableError, type Call } from "./call";

export const MAX_REDIRECTS = 10;
const USER_AGENT = `celeba-sae/0.1 (node ${process.version}; huggingface_hub-compatible)`;

// ---------------------------------------------------------------------------------------------------------------
// Requests

/** The headers of a request to `url`: the token only for the endpoint's own origin. */
export function headersFor(call: Call, url: URL, extra: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { "user-agent": USER_AGENT, "accept-encoding": "identity", ...extra };
  if (call.token !== undefined && url.origin === call.endpointOrigin) headers.authorization = call.token.bearer();
  return headers;
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

/** A redirect's target, or a HubError saying what is wrong with it. */
export function hubRedirect(call: Call, location: string | undefined, from: URL, status: number): URL {
  const next = redirectTarget(location, from);
  if ("problem" in next) throw new HubError("not-the-hub", `${from.host} answered HTTP ${status} for ${call.what}: it ${next.problem}.`, { status });
  return next;
}
// ---------------------------------------------------------------------------------------------------------------
// The HEAD

export interface FileMetadata {
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

export async function fetchMetadata(call: Call): Promise<FileMetadata> {
  let url = new URL(hubFileUrl(call.settings.endpoint, call.repo, call.revision, call.filename));
  for (let hops = 0; ; hops++) {
    let response: IncomingMessage;
    try {
      response = await sendRequest(url, "HEAD", headersFor(call, url), call.connectTimeoutMs, call.etagTimeoutMs);
    } catch (error) {
      throw unreachableError(call, url.host, asError(error));
    }
    response.resume();
    const status = response.statusCode ?? 0;
    if (REDIRECT_STATUSES.has(status)) {
      const target = hubRedirect(call, header(response.headers, "location"), url, status);
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
